/*
 * Container IDs from cgroup paths.
 *
 * Every runtime puts a container's processes in a cgroup named after the
 * container's 64-hex ID, but each spells the path its own way, and the
 * spelling also depends on the cgroup driver (cgroupfs or systemd):
 *
 *   docker, cgroupfs        /docker/<id>
 *   docker, systemd         /system.slice/docker-<id>.scope
 *   kubelet, cgroupfs       /kubepods/burstable/pod<uid>/<id>
 *   containerd, systemd     /kubepods.slice/.../cri-containerd-<id>.scope
 *   containerd, cgroup v1   .../kubepods-...-pod<uid>.slice:cri-containerd:<id>
 *   CRI-O                   .../crio-<id>.scope, or crio-<id> with cgroupfs
 *   podman                  /machine.slice/libpod-<id>.scope[/container]
 *   podman, cgroupfs        /libpod_parent/libpod-<id>
 *
 * Runtime helpers sit next to their containers with near names that must
 * not match: crio-conmon-<id>.scope, libpod-conmon-<id>.scope (the monitor
 * process, not the container). Requiring exactly 64 hex digits after the
 * prefix rules them out.
 *
 * The outermost match wins: with Docker in Docker, the host's Docker knows
 * the outer container, and that is the one a host-side report can name.
 */
#include "containers.h"

#include <string.h>

#define ID_LEN 64

static int is_hex_id(const char *s, size_t n)
{
    if (n != ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

struct scope_prefix {
    const char *prefix;
    const char *runtime;
};

/* Component forms "<prefix><id>" with an optional ".scope" after. */
static const struct scope_prefix scope_prefixes[] = {
    {"docker-", "docker"}, {"cri-containerd-", "containerd"}, {"crio-", "cri-o"},
    {"libpod-", "podman"}, {"nerdctl-", "containerd"},
};

/* Separator forms "<slice>:<runtime>:<id>" of the systemd driver on v1. */
static const struct scope_prefix colon_prefixes[] = {
    {":cri-containerd:", "containerd"},
    {":crio:", "cri-o"},
    {":docker:", "docker"},
};

static int match(const char *id, const char *runtime, char out_id[65], char out_rt[16])
{
    memcpy(out_id, id, ID_LEN);
    out_id[ID_LEN] = '\0';
    strncpy(out_rt, runtime, 15);
    out_rt[15] = '\0';
    return 1;
}

/* One path component c of n bytes; parent is the one before it (or NULL). */
static int component(const char *c, size_t n, const char *parent, size_t pn, int kube, char id[65],
                     char runtime[16])
{
    for (size_t i = 0; i < sizeof(scope_prefixes) / sizeof(scope_prefixes[0]); i++) {
        const struct scope_prefix *sp = &scope_prefixes[i];
        size_t pl = strlen(sp->prefix);
        if (n < pl || memcmp(c, sp->prefix, pl) != 0)
            continue;
        size_t rest = n - pl;
        if (rest == ID_LEN + 6 && memcmp(c + pl + ID_LEN, ".scope", 6) == 0)
            rest = ID_LEN;
        if (is_hex_id(c + pl, rest))
            return match(c + pl, sp->runtime, id, runtime);
    }
    for (size_t i = 0; i < sizeof(colon_prefixes) / sizeof(colon_prefixes[0]); i++) {
        const struct scope_prefix *sp = &colon_prefixes[i];
        size_t pl = strlen(sp->prefix);
        if (n < pl + ID_LEN)
            continue;
        const char *at = c + n - ID_LEN - pl;
        if (memcmp(at, sp->prefix, pl) == 0 && is_hex_id(c + n - ID_LEN, ID_LEN))
            return match(c + n - ID_LEN, sp->runtime, id, runtime);
    }
    /* A bare ID: under "docker" (cgroupfs driver), or under a Kubernetes pod
     * directory below "kubepods" (kubelet's cgroupfs driver, any CRI runtime). */
    if (!is_hex_id(c, n) || parent == NULL)
        return 0;
    if (pn == 6 && memcmp(parent, "docker", 6) == 0)
        return match(c, "docker", id, runtime);
    if (kube && pn > 3 && memcmp(parent, "pod", 3) == 0)
        return match(c, "containerd", id, runtime);
    return 0;
}

int sl_cgroup_container_id(const char *cgroup_line, char id[65], char runtime[16])
{
    const char *path = cgroup_line, *end, *c, *parent = NULL;
    size_t pn = 0;
    int kube = 0;

    if (cgroup_line == NULL)
        return 0;
    /* "hierarchy-ID:controllers:path"; the path may hold ':' itself. */
    if (path[0] != '/') {
        const char *p = path;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == path || *p != ':')
            return 0;
        p = strchr(p + 1, ':');
        if (p == NULL || p[1] != '/')
            return 0;
        path = p + 1;
    }
    end = path + strcspn(path, "\r\n");
    for (c = path; c < end;) {
        const char *slash = memchr(c, '/', (size_t)(end - c));
        const char *cend = slash ? slash : end;
        size_t n = (size_t)(cend - c);
        if (n > 0) {
            if (component(c, n, parent, pn, kube, id, runtime))
                return 1;
            if (n >= 8 && memcmp(c, "kubepods", 8) == 0)
                kube = 1;
            parent = c;
            pn = n;
        }
        c = cend + 1;
    }
    return 0;
}
