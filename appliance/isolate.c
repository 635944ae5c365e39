/*
 * Network isolation of a compromised container (see isolate.h for what it
 * means per network mode, doc/isolation.md for why).
 *
 * Three layers:
 *   - rule generation, pure: a target (the container's networks and
 *     addresses now) becomes iptables argument vectors;
 *   - the state file: which container IDs are isolated, why, since when;
 *   - enforcement: the host's mangle chains SLUICE-ISO (from FORWARD),
 *     SLUICE-ISO-IN (from INPUT) and SLUICE-ISO-OUT (from OUTPUT) are
 *     rebuilt whole from the cached targets with one iptables-restore
 *     --noflush per family, which replaces exactly those chains in one
 *     transaction: no window where an isolated container is free, no rule
 *     twice, and the rest of the ruleset untouched. The compromised
 *     container's own rules against its overlay peers live in its network
 *     namespace, in filter chains of the same names.
 *
 * Why mangle and not filter (DOCKER-USER): sluice's inspection chains
 * (SLUICE-FWD, SLUICE-OUT, SLUICE-IN, in filter) hand packets to NFQUEUE,
 * and a packet the queue accepts leaves the filter hook without seeing the
 * rules after it; whoever inserts a jump at the top of DOCKER-USER last
 * wins. mangle's hooks run before filter's, so isolation holds whatever
 * the order in filter, and Docker never rebuilds mangle. The jumps are
 * still kept first in their mangle hooks (sl_isolate_check).
 */
#include "isolate.h"

#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

#define CHAIN_FWD "SLUICE-ISO"
#define CHAIN_IN  "SLUICE-ISO-IN"
#define CHAIN_OUT "SLUICE-ISO-OUT"
#define GWBRIDGE  "docker_gwbridge"
#define TAG       "sluice-iso "

/* --- addresses ------------------------------------------------------------ */

/* 4 or 6 for an address without prefix, else 0. */
static int addr_family(const char *s)
{
    unsigned char buf[16];

    if (inet_pton(AF_INET, s, buf) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, buf) == 1)
        return 6;
    return 0;
}

/* 4 or 6 for "ADDR" or "ADDR/LEN", else 0. */
static int cidr_family(const char *s)
{
    char a[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);

    if (n == 0 || n >= sizeof(a))
        return 0;
    memcpy(a, s, n);
    a[n] = '\0';
    int fam = addr_family(a);
    if (fam && slash) {
        char *end;
        errno = 0;
        long len = strtol(slash + 1, &end, 10);
        if (!isdigit((unsigned char)slash[1]) || *end || errno || len < 0 ||
            len > (fam == 4 ? 32 : 128))
            return 0;
    }
    return fam;
}

/* "ADDR/LEN" of the network holding addr: the host bits cleared. */
static int network_of(const char *addr, int len, char *out, size_t outlen)
{
    unsigned char b[16];
    int fam = addr_family(addr);
    int bits = fam == 4 ? 32 : 128;

    if (!fam || len < 0 || len > bits)
        return -1;
    inet_pton(fam == 4 ? AF_INET : AF_INET6, addr, b);
    for (int i = 0; i < bits / 8; i++) {
        int keep = len - i * 8;
        b[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
    char a[INET6_ADDRSTRLEN];
    inet_ntop(fam == 4 ? AF_INET : AF_INET6, b, a, sizeof(a));
    snprintf(out, outlen, "%s/%d", a, len);
    return 0;
}

static int is_hex_id(const char *s, size_t minlen)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]) || isupper((unsigned char)s[n]))
            return 0;
    return n >= minlen && n <= 64;
}

/* --- rule generation -------------------------------------------------------- */

struct builder {
    struct sl_iso_rule *out;
    size_t n, max;
    int overflow;
    const char *tag;
};

static struct sl_iso_rule *rule_new(struct builder *b, int family, int netns, const char *chain)
{
    if (b->n >= b->max) {
        b->overflow = 1;
        return NULL;
    }
    struct sl_iso_rule *r = &b->out[b->n++];
    memset(r, 0, sizeof(*r));
    r->family = family;
    r->netns = netns;
    return r;
}

static void rule_arg(struct builder *b, struct sl_iso_rule *r, const char *a)
{
    size_t used = 0;

    if (r == NULL)
        return;
    for (size_t i = 0; i < r->argc; i++)
        used += strlen(r->args + used) + 1;
    size_t len = strlen(a);
    if (used + len + 1 > sizeof(r->args)) {
        b->overflow = 1;
        return;
    }
    memcpy(r->args + used, a, len + 1);
    r->argc++;
}

/* One rule: "-A chain" + NULL-terminated match + comment + "-j target". */
static void add(struct builder *b, int family, int netns, const char *chain,
                const char *const *match, const char *target)
{
    struct sl_iso_rule *r = rule_new(b, family, netns, chain);

    rule_arg(b, r, "-A");
    rule_arg(b, r, chain);
    for (size_t i = 0; match[i]; i++)
        rule_arg(b, r, match[i]);
    rule_arg(b, r, "-m");
    rule_arg(b, r, "comment");
    rule_arg(b, r, "--comment");
    rule_arg(b, r, b->tag);
    rule_arg(b, r, "-j");
    rule_arg(b, r, target);
}

/* Bridge: the container and the rest of its subnet, both ways. Traffic
 * to the bridge's gateway address is the host's (INPUT) and goes on. */
static void bridge_rules(struct builder *b, int family, const char *ip, const char *subnet)
{
    const char *out[] = {"-s", ip, "-d", subnet, NULL};
    const char *in[] = {"-s", subnet, "-d", ip, NULL};

    add(b, family, 0, CHAIN_FWD, out, "DROP");
    add(b, family, 0, CHAIN_FWD, in, "DROP");
}

/* Overlay, in the container's namespace: nothing to or from the overlay's
 * subnet but its own loopback. */
static void overlay_peer_rules(struct builder *b, int family, const char *subnet)
{
    const char *out[] = {"!", "-o", "lo", "-d", subnet, NULL};
    const char *in[] = {"!", "-i", "lo", "-s", subnet, NULL};

    add(b, family, 1, CHAIN_OUT, out, "DROP");
    add(b, family, 1, CHAIN_IN, in, "DROP");
}

static int seen_before(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* Overlay, on the host: every container of the overlay (the compromised
 * one included) loses the host, by its docker_gwbridge address. */
static int overlay_host_rules(struct builder *b, const struct sl_iso_target *t, char *err,
                              size_t errlen)
{
    const char *done[SL_ISO_MAX_NETS + SL_ISO_MAX_PEERS];
    size_t ndone = 0;

    for (size_t i = 0; i < t->nnets + t->npeers; i++) {
        const char *gw = i < t->nnets ? t->nets[i].gw_ip : t->overlay_peers_gw[i - t->nnets];
        if (i < t->nnets && strcmp(t->nets[i].driver, "overlay") != 0)
            continue;
        if (gw[0] == '\0' || seen_before(done, ndone, gw))
            continue;
        int fam = addr_family(gw);
        if (!fam) {
            snprintf(err, errlen, "%s: bad docker_gwbridge address '%s'", t->id, gw);
            return -1;
        }
        done[ndone++] = gw;
        const char *m[] = {"-i", GWBRIDGE, "-s", gw, NULL};
        add(b, fam, 0, CHAIN_IN, m, "DROP");
    }
    return 0;
}

/* "CIDR", "CIDR:port" or "[CIDR]:port" into cidr and port ("" for none). */
static int parse_allow(const char *s, char *cidr, size_t cidrlen, char *port, size_t portlen)
{
    const char *colon = NULL;
    size_t n;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return -1;
        n = (size_t)(close - s - 1);
        s++;
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* an IPv6 CIDR without port */
        n = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (n == 0 || n >= cidrlen)
        return -1;
    memcpy(cidr, s, n);
    cidr[n] = '\0';
    port[0] = '\0';
    if (colon) {
        char *end;
        errno = 0;
        long p = strtol(colon + 1, &end, 10);
        if (!isdigit((unsigned char)colon[1]) || *end || errno || p < 1 || p > 65535)
            return -1;
        snprintf(port, portlen, "%ld", p);
    }
    return cidr_family(cidr);
}

static int valid_cgroup(const char *p)
{
    if (p[0] != '/')
        return 0;
    for (; *p; p++)
        if (isspace((unsigned char)*p) || *p == '"' || *p == '\'' || *p == '\\' ||
            !isprint((unsigned char)*p))
            return 0;
    return 1;
}

/* Host network: the container's sockets send only to what is allowed.
 * RETURN, not ACCEPT: allowed traffic still meets the rest of the policy. */
static int host_rules(struct builder *b, const struct sl_iso_target *t, const char *const *allow,
                      size_t nallow, char *err, size_t errlen)
{
    if (!valid_cgroup(t->cgroup)) {
        snprintf(err, errlen, "%s: host network without a usable cgroup path ('%s')", t->id,
                 t->cgroup);
        return -1;
    }
    for (size_t i = 0; i < nallow; i++) {
        char cidr[64], port[8];
        int fam = parse_allow(allow[i], cidr, sizeof(cidr), port, sizeof(port));
        if (fam == 0 || fam < 0) {
            snprintf(err, errlen, "allowed destination '%s': want CIDR or CIDR:port", allow[i]);
            return -1;
        }
        if (port[0] == '\0') {
            const char *m[] = {"-m", "cgroup", "--path", t->cgroup, "-d", cidr, NULL};
            add(b, fam, 0, CHAIN_OUT, m, "RETURN");
            continue;
        }
        static const char *const protos[] = {"tcp", "udp"};
        for (size_t p = 0; p < 2; p++) {
            const char *m[] = {"-m", "cgroup",  "--path",  t->cgroup, "-d", cidr,
                               "-p", protos[p], "--dport", port,      NULL};
            add(b, fam, 0, CHAIN_OUT, m, "RETURN");
        }
    }
    const char *m[] = {"-m", "cgroup", "--path", t->cgroup, NULL};
    add(b, 4, 0, CHAIN_OUT, m, "DROP");
    add(b, 6, 0, CHAIN_OUT, m, "DROP");
    return 0;
}

int sl_iso_rules(const struct sl_iso_target *t, const char *const *allow, size_t nallow,
                 struct sl_iso_rule *out, size_t max, char *err, size_t errlen)
{
    char tag[32];
    struct builder b = {out, 0, max, 0, tag};
    int overlay = 0;

    if (!is_hex_id(t->id, 12)) {
        snprintf(err, errlen, "'%s' is not a container ID", t->id);
        return -1;
    }
    snprintf(tag, sizeof(tag), TAG "%.12s", t->id);
    if (t->nnets > SL_ISO_MAX_NETS || t->npeers > SL_ISO_MAX_PEERS) {
        snprintf(err, errlen, "%s: too many networks or peers", t->id);
        return -1;
    }
    for (size_t i = 0; i < t->nnets; i++) {
        const struct sl_iso_net *n = &t->nets[i];
        int is_bridge = strcmp(n->driver, "bridge") == 0;
        int is_overlay = strcmp(n->driver, "overlay") == 0;

        if (strcmp(n->driver, "host") == 0) {
            if (host_rules(&b, t, allow, nallow, err, errlen) < 0)
                return -1;
            continue;
        }
        if (!is_bridge && !is_overlay)
            continue; /* sl_isolate names what it leaves out */
        const char *pairs[2][2] = {{n->ip, n->subnet}, {n->ip6, n->subnet6}};
        for (int f = 0; f < 2; f++) {
            const char *ip = pairs[f][0], *subnet = pairs[f][1];
            int want = f == 0 ? 4 : 6;
            if (ip[0] == '\0' && subnet[0] == '\0')
                continue;
            if ((is_bridge && addr_family(ip) != want) || cidr_family(subnet) != want) {
                snprintf(err, errlen, "%s: network %s: bad address '%s' or subnet '%s'", t->id,
                         n->name, ip, subnet);
                return -1;
            }
            if (is_bridge)
                bridge_rules(&b, want, ip, subnet);
            else
                overlay_peer_rules(&b, want, subnet);
        }
        overlay |= is_overlay;
    }
    if (overlay && overlay_host_rules(&b, t, err, errlen) < 0)
        return -1;
    if (b.overflow) {
        snprintf(err, errlen, "%s: more than %zu rules", t->id, max);
        return -1;
    }
    return (int)b.n;
}

size_t sl_iso_rule_argv(const struct sl_iso_rule *r, const char **argv, size_t max)
{
    size_t used = 0, i;

    for (i = 0; i < r->argc && i + 1 < max; i++) {
        argv[i] = r->args + used;
        used += strlen(r->args + used) + 1;
    }
    argv[i] = NULL;
    return i;
}

int sl_iso_rule_line(const struct sl_iso_rule *r, char *out, size_t outlen)
{
    const char *argv[64];
    size_t n = sl_iso_rule_argv(r, argv, 64), len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int quote = strpbrk(argv[i], " \t") != NULL;
        int w = snprintf(out + len, outlen - len, "%s%s%s%s", i ? " " : "", quote ? "\"" : "",
                         argv[i], quote ? "\"" : "");
        if (w < 0 || (size_t)w >= outlen - len)
            return -1;
        len += (size_t)w;
    }
    return 0;
}

/* --- targets from Docker ------------------------------------------------------ */

static const struct jsonp_value *network_by_id(const struct jsonp_value *const *networks, size_t n,
                                               const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (networks[i] && id[0] && strcmp(jsonp_str(jsonp_get(networks[i], "Id"), ""), id) == 0)
            return networks[i];
    return NULL;
}

/* The container's address on docker_gwbridge ("172.18.0.3/16" there). */
static void gwbridge_ip(const struct jsonp_value *gwbridge, const char *id, char *out, size_t len)
{
    const struct jsonp_value *c = jsonp_get(jsonp_get(gwbridge, "Containers"), id);
    const char *a = jsonp_str(jsonp_get(c, "IPv4Address"), "");

    snprintf(out, len, "%.*s", (int)strcspn(a, "/"), a);
}

static int json_int_of(const struct jsonp_value *v, int dflt)
{
    return v && v->type == JSONP_NUMBER ? (int)v->num : dflt;
}

int sl_iso_target_from_docker(struct sl_iso_target *t, const struct jsonp_value *container,
                              const struct jsonp_value *const *networks, size_t nnetworks,
                              const struct jsonp_value *gwbridge, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    const char *id = jsonp_str(jsonp_get(container, "Id"), "");
    if (!is_hex_id(id, 64)) {
        snprintf(err, errlen, "not a Docker container (no Id)");
        return -1;
    }
    snprintf(t->id, sizeof(t->id), "%s", id);
    const char *name = jsonp_str(jsonp_get(container, "Name"), "");
    snprintf(t->name, sizeof(t->name), "%s", name[0] == '/' ? name + 1 : name);
    t->pid = json_int_of(jsonp_path(container, "State.Pid"), 0);

    const char *mode = jsonp_str(jsonp_path(container, "HostConfig.NetworkMode"), "");
    if (strcmp(mode, "host") == 0) {
        t->nnets = 1;
        snprintf(t->nets[0].name, sizeof(t->nets[0].name), "host");
        snprintf(t->nets[0].driver, sizeof(t->nets[0].driver), "host");
        return 0;
    }
    const struct jsonp_value *nets = jsonp_path(container, "NetworkSettings.Networks");
    for (const struct jsonp_value *v = nets ? nets->child : NULL; v; v = v->next) {
        if (t->nnets == SL_ISO_MAX_NETS) {
            snprintf(err, errlen, "%s: more than %d networks", t->name, SL_ISO_MAX_NETS);
            return -1;
        }
        struct sl_iso_net *n = &t->nets[t->nnets];
        const struct jsonp_value *nw =
            network_by_id(networks, nnetworks, jsonp_str(jsonp_get(v, "NetworkID"), ""));
        snprintf(n->name, sizeof(n->name), "%s", v->key);
        snprintf(n->driver, sizeof(n->driver), "%s",
                 nw ? jsonp_str(jsonp_get(nw, "Driver"), "bridge") : "bridge");
        snprintf(n->ip, sizeof(n->ip), "%s", jsonp_str(jsonp_get(v, "IPAddress"), ""));
        snprintf(n->ip6, sizeof(n->ip6), "%s", jsonp_str(jsonp_get(v, "GlobalIPv6Address"), ""));
        if (n->ip[0] && network_of(n->ip, json_int_of(jsonp_get(v, "IPPrefixLen"), -1), n->subnet,
                                   sizeof(n->subnet)) < 0) {
            snprintf(err, errlen, "%s: network %s: bad address %s", t->name, n->name, n->ip);
            return -1;
        }
        if (n->ip6[0] && network_of(n->ip6, json_int_of(jsonp_get(v, "GlobalIPv6PrefixLen"), -1),
                                    n->subnet6, sizeof(n->subnet6)) < 0) {
            snprintf(err, errlen, "%s: network %s: bad address %s", t->name, n->name, n->ip6);
            return -1;
        }
        if (n->ip[0] == '\0' && n->ip6[0] == '\0')
            continue; /* "none", or not connected yet */
        t->nnets++;
        if (strcmp(n->driver, "overlay") != 0)
            continue;
        gwbridge_ip(gwbridge, t->id, n->gw_ip, sizeof(n->gw_ip));
        const struct jsonp_value *members = jsonp_get(nw, "Containers");
        for (const struct jsonp_value *m = members ? members->child : NULL; m; m = m->next) {
            /* Swarm's load-balancer endpoint is keyed "lb-<network>". */
            if (!is_hex_id(m->key, 64) || strcmp(m->key, t->id) == 0)
                continue;
            char gw[46];
            gwbridge_ip(gwbridge, m->key, gw, sizeof(gw));
            int dup = 0;
            for (size_t i = 0; i < t->npeers; i++)
                dup |= strcmp(t->overlay_peers_gw[i], gw) == 0;
            if (gw[0] == '\0' || dup)
                continue;
            if (t->npeers == SL_ISO_MAX_PEERS) {
                snprintf(err, errlen, "%s: more than %d overlay peers", t->name, SL_ISO_MAX_PEERS);
                return -1;
            }
            snprintf(t->overlay_peers_gw[t->npeers++], 46, "%s", gw);
        }
    }
    return 0;
}

/* --- the state file ------------------------------------------------------------ */

void sl_iso_state_free(struct sl_iso_state *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

struct sl_iso_entry *sl_iso_state_find(const struct sl_iso_state *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].id, id) == 0)
            return &s->v[i];
    return NULL;
}

int sl_iso_state_put(struct sl_iso_state *s, const char *id, const char *name, const char *reason,
                     int64_t since)
{
    struct sl_iso_entry *e = sl_iso_state_find(s, id);

    if (e == NULL) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            struct sl_iso_entry *v = realloc(s->v, cap * sizeof(*v));
            if (v == NULL)
                return -1;
            s->v = v;
            s->cap = cap;
        }
        e = &s->v[s->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", id);
        reason = reason ? reason : "";
    }
    if (name && name[0])
        snprintf(e->name, sizeof(e->name), "%s", name);
    if (reason) {
        snprintf(e->reason, sizeof(e->reason), "%s", reason);
        e->since = since;
    }
    return 0;
}

int sl_iso_state_remove(struct sl_iso_state *s, const char *id)
{
    struct sl_iso_entry *e = sl_iso_state_find(s, id);

    if (e == NULL)
        return 0;
    size_t i = (size_t)(e - s->v);
    memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*e));
    s->n--;
    return 1;
}

static void format_time(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);

    if (end == NULL || *end)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* {"version":1,"isolated":[{"id","name","reason","since"}...]} */
static int state_parse(const char *text, size_t len, struct sl_iso_state *s, char *err,
                       size_t errlen)
{
    char why[200];
    struct jsonp_doc *d = jsonp_parse(text, len, why, sizeof(why));

    if (d == NULL) {
        snprintf(err, errlen, "not JSON (%s)", why);
        return -1;
    }
    const struct jsonp_value *list = jsonp_get(jsonp_root(d), "isolated");
    int rc = 0;
    if (list == NULL || list->type != JSONP_ARRAY) {
        snprintf(err, errlen, "no \"isolated\" array");
        rc = -1;
    }
    size_t i = 0;
    for (const struct jsonp_value *e = list ? list->child : NULL; e && rc == 0; e = e->next, i++) {
        const char *id = jsonp_str(jsonp_get(e, "id"), "");
        const char *since = jsonp_str(jsonp_get(e, "since"), "");
        int64_t t = 0;
        if (!is_hex_id(id, 64)) {
            snprintf(err, errlen, "entry %zu: \"id\" is not a full container ID", i);
            rc = -1;
        } else if (parse_time(since, &t) < 0) {
            snprintf(err, errlen, "entry %zu: \"since\" is not a UTC time", i);
            rc = -1;
        } else if (sl_iso_state_put(s, id, jsonp_str(jsonp_get(e, "name"), ""),
                                    jsonp_str(jsonp_get(e, "reason"), ""), t) < 0) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    jsonp_free(d);
    return rc;
}

int sl_iso_state_load(const char *path, struct sl_iso_state *s, char *err, size_t errlen)
{
    char why[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    memset(s, 0, sizeof(*s));
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > (1 << 24)) {
        snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) : "larger than 16 MiB");
        close(fd);
        return -1;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t len = 0;
    ssize_t got = 0;
    while (
        text && len < (size_t)st.st_size &&
        ((got = read(fd, text + len, (size_t)st.st_size - len)) > 0 || (got < 0 && errno == EINTR)))
        len += got > 0 ? (size_t)got : 0;
    close(fd);
    if (text == NULL || got < 0) {
        snprintf(err, errlen, "%s: %s", path, text ? strerror(errno) : "out of memory");
        free(text);
        return -1;
    }
    if (state_parse(text, len, s, why, sizeof(why)) < 0) {
        snprintf(err, errlen,
                 "%s: not a valid isolation state: %s (fix or remove the file: it is left as "
                 "it is)",
                 path, why);
        sl_iso_state_free(s);
        free(text);
        return -1;
    }
    free(text);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sl_iso_state_save(const char *path, const struct sl_iso_state *s, char *err, size_t errlen)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 8], since[32];
    struct json j;

    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        *(slash == dir ? slash + 1 : slash) = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    json_init(&j);
    json_object_begin(&j, NULL);
    json_int(&j, "version", 1);
    json_array_begin(&j, "isolated");
    for (size_t i = 0; i < s->n; i++) {
        format_time(s->v[i].since, since, sizeof(since));
        json_object_begin(&j, NULL);
        json_string(&j, "id", s->v[i].id);
        json_string(&j, "name", s->v[i].name);
        json_string(&j, "reason", s->v[i].reason);
        json_string(&j, "since", since);
        json_object_end(&j);
    }
    json_array_end(&j);
    json_object_end(&j);
    if (j.failed) {
        json_free(&j);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -1 : 0;
    if (rc == 0 && (write_all(fd, j.buf, j.len) < 0 || write_all(fd, "\n", 1) < 0 || fsync(fd) < 0))
        rc = -1;
    int saved = errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    json_free(&j);
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -1;
        saved = errno;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", fd < 0 ? tmp : path, strerror(saved));
        unlink(tmp);
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* --- running iptables ------------------------------------------------------------ */

/* In sluiced's own namespace: posix_spawn, which neither copies this large,
 * threaded process's page tables nor leaves it copy-on-write faults, as a
 * fork every few seconds (the rule checks) would. -1 with errno. */
static pid_t spawn(const char *tool, const char **argv, int in, int out, int errfd)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;

    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    if (in >= 0)
        posix_spawn_file_actions_adddup2(&fa, in, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    int rc = posix_spawnp(&pid, tool, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

/* Runs tool -w args (every iptables tool waits for the xtables lock with
 * -w, so Docker's own changes are waited for, not failed on), in the network
 * namespace of nspid when nspid > 0 (fork, setns, exec: posix_spawn cannot
 * enter a namespace), feeding input on its standard input when not NULL and
 * keeping its standard output in out.
 * Returns the exit status (-1 if it could not run); the first line of its
 * error output goes to err. */
static int run(int nspid, const char *tool, const char *const *args, const char *input, char *out,
               size_t outlen, char *err, size_t errlen)
{
    const char *argv[80];
    int n = 0, nsfd = -1, inp[2] = {-1, -1}, outp[2], errp[2];

    argv[n++] = tool;
    argv[n++] = "-w";
    for (int i = 0; args && args[i] && n < 78; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (nspid > 0) {
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/ns/net", nspid);
        if ((nsfd = open(p, O_RDONLY | O_CLOEXEC)) < 0) {
            snprintf(err, errlen, "%s: %s", p, strerror(errno));
            return -1;
        }
    }
    if ((input && pipe2(inp, O_CLOEXEC) < 0) || pipe2(outp, O_CLOEXEC) < 0 ||
        pipe2(errp, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        if (nsfd >= 0)
            close(nsfd);
        return -1; /* a pipe end may leak, only when the process is out of them */
    }
    pid_t pid = nsfd >= 0 ? fork() : spawn(tool, argv, input ? inp[0] : -1, outp[1], errp[1]);
    if (pid == 0) {
        if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
            _exit(126);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(input ? inp[0] : devnull, 0);
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        execvp(tool, (char *const *)argv);
        _exit(127);
    }
    if (nsfd >= 0)
        close(nsfd);
    close(outp[1]);
    close(errp[1]);
    if (input)
        close(inp[0]);
    if (pid < 0) {
        snprintf(err, errlen, "%s: %s", nsfd >= 0 ? "fork" : tool, strerror(errno));
        close(outp[0]);
        close(errp[0]);
        if (input)
            close(inp[1]);
        return -1;
    }
    if (input) {
        /* The restore tools read all their input before they write. */
        /* A tool that dies early must not kill the caller: SIGPIPE is
         * held back in this thread alone and discarded. */
        sigset_t pipe_set, old;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        if (write_all(inp[1], input, strlen(input)) < 0 && errno == EPIPE) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(inp[1]);
    }
    char buf[4096];
    size_t len = 0;
    ssize_t got;
    while ((got = read(outp[0], buf, sizeof(buf))) > 0 || (got < 0 && errno == EINTR)) {
        if (out && got > 0 && len + 1 < outlen) {
            size_t take = (size_t)got < outlen - 1 - len ? (size_t)got : outlen - 1 - len;
            memcpy(out + len, buf, take);
            len += take;
        }
    }
    if (out)
        out[len] = '\0';
    char msg[512];
    size_t mlen = 0;
    while ((got = read(errp[0], msg + mlen, sizeof(msg) - 1 - mlen)) > 0 ||
           (got < 0 && errno == EINTR))
        mlen += got > 0 ? (size_t)got : 0;
    msg[mlen] = '\0';
    close(outp[0]);
    close(errp[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0 && err) {
        msg[strcspn(msg, "\n")] = '\0';
        snprintf(err, errlen, "%s: %.400s", tool,
                 msg[0]        ? msg
                 : code == 126 ? "cannot enter the container's network namespace"
                 : code == 127 ? "cannot run"
                               : "failed");
    }
    return code;
}

static int iptables(int family, int nspid, const char *const *args, char *out, size_t outlen,
                    char *err, size_t errlen)
{
    return run(nspid, family == 4 ? "iptables" : "ip6tables", args, NULL, out, outlen, err, errlen);
}

static int restore(int family, int nspid, const char *text, char *err, size_t errlen)
{
    const char *args[] = {"--noflush", NULL};
    return run(nspid, family == 4 ? "iptables-restore" : "ip6tables-restore", args, text, NULL, 0,
               err, errlen);
}

/* A growable text for iptables-restore. */
struct text {
    char *p;
    size_t len, cap;
    int failed;
};

static void text_add(struct text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

/* Where each chain is jumped to from, first. On the host, the mangle table:
 * its hooks run before the filter table's, where sluice's inspection (and
 * anyone's NFQUEUE rule) may accept a packet for good before later rules
 * see it; Docker does not rebuild mangle either. In a container's
 * namespace nothing else queues: the filter table. */
struct hook {
    const char *table, *builtin, *chain;
};

static const struct hook host_hooks[] = {
    {"mangle", "FORWARD", CHAIN_FWD},
    {"mangle", "INPUT", CHAIN_IN},
    {"mangle", "OUTPUT", CHAIN_OUT},
};
static const struct hook ns_hooks[] = {
    {"filter", "INPUT", CHAIN_IN},
    {"filter", "OUTPUT", CHAIN_OUT},
};

/* Makes "-j chain" the first rule of builtin, once. Returns 1 when it had
 * to change something, 0 when it was in place, -1 on failure. */
static int jump_first(int family, int nspid, const char *table, const char *builtin,
                      const char *chain, char *err, size_t errlen)
{
    static __thread char list[65536];
    char want[128];
    const char *show[] = {"-t", table, "-S", builtin, NULL};

    if (iptables(family, nspid, show, list, sizeof(list), err, errlen) != 0)
        return -1;
    snprintf(want, sizeof(want), "-A %s -j %s", builtin, chain);
    /* The first rule line of the listing (the policy or -N line comes first). */
    const char *first = strstr(list, "\n-A ");
    int copies = 0;
    for (const char *p = list; (p = strstr(p, want)) != NULL; p += strlen(want))
        if ((p == list || p[-1] == '\n') && (p[strlen(want)] == '\n' || !p[strlen(want)]))
            copies++;
    if (first && copies == 1 && strncmp(first + 1, want, strlen(want)) == 0 &&
        (first[1 + strlen(want)] == '\n' || !first[1 + strlen(want)]))
        return 0;
    const char *del[] = {"-t", table, "-D", builtin, "-j", chain, NULL};
    for (int i = 0; i < copies; i++)
        iptables(family, nspid, del, NULL, 0, NULL, 0);
    const char *ins[] = {"-t", table, "-I", builtin, "1", "-j", chain, NULL};
    if (iptables(family, nspid, ins, NULL, 0, err, errlen) != 0)
        return -1;
    return 1;
}

static void remove_hooks(int family, int nspid, const struct hook *hooks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *table = hooks[i].table, *builtin = hooks[i].builtin;
        const char *del[] = {"-t", table, "-D", builtin, "-j", hooks[i].chain, NULL};
        for (int guard = 0; guard < 16 && iptables(family, nspid, del, NULL, 0, NULL, 0) == 0;
             guard++)
            ;
        const char *flush[] = {"-t", table, "-F", hooks[i].chain, NULL};
        const char *drop[] = {"-t", table, "-X", hooks[i].chain, NULL};
        iptables(family, nspid, flush, NULL, 0, NULL, 0);
        iptables(family, nspid, drop, NULL, 0, NULL, 0);
    }
}

/* Replaces the chains of hooks (in the namespace of nspid, or the host's)
 * with the rules of family and netns from rules, and puts the jumps first. */
static int apply(int family, int nspid, const struct hook *hooks, size_t nhooks,
                 const struct sl_iso_rule *rules, size_t nrules, char *err, size_t errlen)
{
    struct text t = {0};
    char line[1024], why[400];

    snprintf(line, sizeof(line), "*%s\n", hooks[0].table);
    text_add(&t, line);
    for (size_t i = 0; i < nhooks; i++) {
        snprintf(line, sizeof(line), ":%s - [0:0]\n", hooks[i].chain);
        text_add(&t, line);
    }
    for (size_t i = 0; i < nrules; i++) {
        if (rules[i].family != family || rules[i].netns != (nspid > 0))
            continue;
        if (sl_iso_rule_line(&rules[i], line, sizeof(line) - 1) < 0) {
            snprintf(err, errlen, "rule too long");
            free(t.p);
            return -1;
        }
        text_add(&t, line);
        text_add(&t, "\n");
    }
    text_add(&t, "COMMIT\n");
    if (t.failed) {
        snprintf(err, errlen, "out of memory");
        free(t.p);
        return -1;
    }
    int rc = restore(family, nspid, t.p, why, sizeof(why));
    free(t.p);
    if (rc != 0) {
        snprintf(err, errlen, "%s-restore: %s", family == 4 ? "iptables" : "ip6tables", why);
        return -1;
    }
    for (size_t i = 0; i < nhooks; i++) {
        const char *builtin = hooks[i].builtin;
        if (jump_first(family, nspid, hooks[i].table, builtin, hooks[i].chain, why, sizeof(why)) <
            0) {
            snprintf(err, errlen, "jump from %s to %s: %s", builtin, hooks[i].chain, why);
            return -1;
        }
    }
    return 0;
}

/* --- the handle ------------------------------------------------------------------ */

struct sl_iso {
    pthread_mutex_t lock;
    char path[PATH_MAX];
    struct sl_iso_state state;
    char **allow;
    size_t nallow;
    /* The targets the rules are made of: running isolated containers. */
    struct sl_iso_target *targets;
    size_t ntargets, cap;
    int installed; /* the host's chains exist (for sl_isolate_check) */
};

static void iso_close(struct sl_iso *iso);

static struct sl_iso *iso_open(const char *path, const char *const *allow, size_t nallow, char *err,
                               size_t errlen)
{
    struct sl_iso *iso = calloc(1, sizeof(*iso));

    if (iso == NULL || (nallow && (iso->allow = calloc(nallow, sizeof(char *))) == NULL)) {
        free(iso);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&iso->lock, NULL);
    snprintf(iso->path, sizeof(iso->path), "%s", path ? path : SL_ISO_STATE_FILE);
    for (size_t i = 0; i < nallow; i++) {
        char cidr[64], port[8];
        if (parse_allow(allow[i], cidr, sizeof(cidr), port, sizeof(port)) <= 0) {
            snprintf(err, errlen, "allowed destination '%s': want CIDR or CIDR:port", allow[i]);
            iso_close(iso);
            return NULL;
        }
        if ((iso->allow[iso->nallow] = strdup(allow[i])) == NULL) {
            snprintf(err, errlen, "out of memory");
            iso_close(iso);
            return NULL;
        }
        iso->nallow++;
    }
    if (sl_iso_state_load(iso->path, &iso->state, err, errlen) < 0) {
        iso_close(iso);
        return NULL;
    }
    return iso;
}

static void iso_close(struct sl_iso *iso)
{
    if (iso == NULL)
        return;
    for (size_t i = 0; i < iso->nallow; i++)
        free(iso->allow[i]);
    free(iso->allow);
    free(iso->targets);
    sl_iso_state_free(&iso->state);
    pthread_mutex_destroy(&iso->lock);
    free(iso);
}

/* The cgroup v2 path of pid ("0::/docker/<id>" in /proc/PID/cgroup). */
static int cgroup_of(int pid, char *out, size_t outlen)
{
    char p[64], line[512];

    snprintf(p, sizeof(p), "/proc/%d/cgroup", pid);
    FILE *f = fopen(p, "re");
    if (f == NULL)
        return -1;
    int found = -1;
    while (found < 0 && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, outlen, "%.255s", line + 3);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

/* pid still is a process of container id (its number may have been reused). */
static int pid_in_container(int pid, const char *id)
{
    char cg[256];
    return pid > 0 && cgroup_of(pid, cg, sizeof(cg)) == 0 && strstr(cg, id) != NULL;
}

static int has_overlay(const struct sl_iso_target *t)
{
    for (size_t i = 0; i < t->nnets; i++)
        if (strcmp(t->nets[i].driver, "overlay") == 0)
            return 1;
    return 0;
}

/* A copy of t with what sl_isolate finds itself: the cgroup of a
 * host-network container. */
static int complete(const struct sl_iso_target *t, struct sl_iso_target *out, char *err,
                    size_t errlen)
{
    *out = *t;
    for (size_t i = 0; i < t->nnets; i++) {
        if (strcmp(t->nets[i].driver, "host") != 0 || out->cgroup[0])
            continue;
        if (t->pid <= 0 || cgroup_of(t->pid, out->cgroup, sizeof(out->cgroup)) < 0) {
            snprintf(err, errlen, "%s: host network: cannot read the cgroup of process %d",
                     t->name[0] ? t->name : t->id, t->pid);
            return -1;
        }
    }
    return 0;
}

/* 0 when rules can be made of t, else -1 with the reason. */
static int validate(struct sl_iso *iso, const struct sl_iso_target *t, char *err, size_t errlen)
{
    struct sl_iso_rule *rules = malloc(SL_ISO_MAX_RULES * sizeof(*rules));

    if (rules == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = sl_iso_rules(t, (const char *const *)iso->allow, iso->nallow, rules, SL_ISO_MAX_RULES,
                         err, errlen);
    free(rules);
    return n < 0 ? -1 : 0;
}

static struct sl_iso_rule *all_rules(struct sl_iso *iso, size_t *n, char *err, size_t errlen)
{
    size_t cap = (iso->ntargets ? iso->ntargets : 1) * SL_ISO_MAX_RULES;
    struct sl_iso_rule *rules = malloc(cap * sizeof(*rules));

    *n = 0;
    if (rules == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < iso->ntargets; i++) {
        int got = sl_iso_rules(&iso->targets[i], (const char *const *)iso->allow, iso->nallow,
                               rules + *n, cap - *n, err, errlen);
        if (got < 0) {
            free(rules);
            return NULL;
        }
        *n += (size_t)got;
    }
    return rules;
}

/* Rebuilds the host's chains from the cached targets. IPv6 failures count
 * only when there are IPv6 rules (a host without ip6tables is fine). */
static int rebuild_host(struct sl_iso *iso, char *err, size_t errlen)
{
    size_t n;
    struct sl_iso_rule *rules = all_rules(iso, &n, err, errlen);
    char why[512];

    if (rules == NULL)
        return -1;
    int rc = apply(4, 0, host_hooks, 3, rules, n, err, errlen);
    if (rc == 0 && apply(6, 0, host_hooks, 3, rules, n, why, sizeof(why)) < 0) {
        int needed = 0;
        for (size_t i = 0; i < n; i++)
            needed |= rules[i].family == 6 && !rules[i].netns;
        if (needed) {
            snprintf(err, errlen, "%s", why);
            rc = -1;
        } else {
            remove_hooks(6, 0, host_hooks, 3);
        }
    }
    free(rules);
    iso->installed = rc == 0;
    return rc;
}

/* The compromised container's own rules against its overlay peers, in its
 * network namespace. */
static int apply_netns(struct sl_iso *iso, const struct sl_iso_target *t, char *err, size_t errlen)
{
    struct sl_iso_rule *rules = malloc(SL_ISO_MAX_RULES * sizeof(*rules));
    char why[512];

    if (rules == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = sl_iso_rules(t, (const char *const *)iso->allow, iso->nallow, rules, SL_ISO_MAX_RULES,
                         err, errlen);
    int rc = n < 0 ? -1 : 0;
    for (int fam = 4; rc == 0 && fam <= 6; fam += 2) {
        int any = 0;
        for (int i = 0; i < n; i++)
            any |= rules[i].netns && rules[i].family == fam;
        if (any && apply(fam, t->pid, ns_hooks, 2, rules, (size_t)n, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "in the network namespace of %s: %.300s",
                     t->name[0] ? t->name : t->id, why);
            rc = -1;
        }
    }
    free(rules);
    return rc;
}

static void remove_netns(const struct sl_iso_target *t)
{
    if (!has_overlay(t) || !pid_in_container(t->pid, t->id))
        return;
    remove_hooks(4, t->pid, ns_hooks, 2);
    remove_hooks(6, t->pid, ns_hooks, 2);
}

static struct sl_iso_target *cached(struct sl_iso *iso, const char *id)
{
    for (size_t i = 0; i < iso->ntargets; i++)
        if (strcmp(iso->targets[i].id, id) == 0)
            return &iso->targets[i];
    return NULL;
}

static int cache_put(struct sl_iso *iso, const struct sl_iso_target *t)
{
    struct sl_iso_target *c = cached(iso, t->id);

    if (c == NULL) {
        if (iso->ntargets == iso->cap) {
            size_t cap = iso->cap ? iso->cap * 2 : 4;
            struct sl_iso_target *v = realloc(iso->targets, cap * sizeof(*v));
            if (v == NULL)
                return -1;
            iso->targets = v;
            iso->cap = cap;
        }
        c = &iso->targets[iso->ntargets++];
    }
    *c = *t;
    return 0;
}

static void cache_drop(struct sl_iso *iso, const char *id)
{
    struct sl_iso_target *c = cached(iso, id);

    if (c) {
        size_t i = (size_t)(c - iso->targets);
        memmove(c, c + 1, (iso->ntargets - i - 1) * sizeof(*c));
        iso->ntargets--;
    }
}

/* Names the networks of t that isolation does not cover. */
static int left_out(const struct sl_iso_target *t, char *err, size_t errlen)
{
    size_t len = 0;

    for (size_t i = 0; i < t->nnets; i++) {
        const char *d = t->nets[i].driver;
        if (strcmp(d, "bridge") == 0 || strcmp(d, "overlay") == 0 || strcmp(d, "host") == 0)
            continue;
        len += (size_t)snprintf(err + len, len < errlen ? errlen - len : 0, "%snetwork %s (%s)",
                                len ? ", " : "not isolated: ", t->nets[i].name, d);
        if (len >= errlen)
            break;
    }
    return len > 0;
}

static int iso_isolate(struct sl_iso *iso, const struct sl_iso_target *target, const char *reason,
                       char *err, size_t errlen)
{
    struct sl_iso_target t;
    char why[512];
    int rc = -1;

    /* Checked first: a bad target changes nothing. */
    if (complete(target, &t, err, errlen) < 0 || validate(iso, &t, err, errlen) < 0)
        return -1;

    pthread_mutex_lock(&iso->lock);
    int was = sl_iso_state_find(&iso->state, t.id) != NULL;
    struct sl_iso_entry keep;
    if (was)
        keep = *sl_iso_state_find(&iso->state, t.id);
    if (sl_iso_state_put(&iso->state, t.id, t.name, reason ? reason : (was ? NULL : "manual"),
                         (int64_t)time(NULL)) < 0 ||
        cache_put(iso, &t) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (rebuild_host(iso, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "isolating %s: %s", t.name[0] ? t.name : t.id, why);
        goto undo;
    }
    if (has_overlay(&t) && apply_netns(iso, &t, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "isolating %s from its overlay peers: %s", t.name[0] ? t.name : t.id,
                 why);
        goto undo;
    }
    if (sl_iso_state_save(iso->path, &iso->state, why, sizeof(why)) < 0) {
        /* Enforced but not remembered: say so, keep enforcing. */
        snprintf(err, errlen, "%s is isolated, but the state was not saved: %s",
                 t.name[0] ? t.name : t.id, why);
        rc = 1;
        goto out;
    }
    rc = left_out(&t, err, errlen);
    log_info("isolated container %s (%.12s): %s", t.name, t.id,
             sl_iso_state_find(&iso->state, t.id)->reason);
    goto out;
undo:
    if (was) {
        *sl_iso_state_find(&iso->state, t.id) = keep;
    } else {
        sl_iso_state_remove(&iso->state, t.id);
        cache_drop(iso, t.id);
        remove_netns(&t);
        rebuild_host(iso, why, sizeof(why));
    }
out:
    pthread_mutex_unlock(&iso->lock);
    return rc;
}

static int iso_release(struct sl_iso *iso, const char *id, char *err, size_t errlen)
{
    char why[512];
    int rc = 0;

    pthread_mutex_lock(&iso->lock);
    if (sl_iso_state_find(&iso->state, id) == NULL) {
        snprintf(err, errlen, "%s is not isolated", id);
        pthread_mutex_unlock(&iso->lock);
        return -1;
    }
    struct sl_iso_target *c = cached(iso, id);
    if (c) {
        remove_netns(c);
        cache_drop(iso, id);
    }
    if (rebuild_host(iso, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "releasing %.12s: %s", id, why);
        rc = -1;
    }
    sl_iso_state_remove(&iso->state, id);
    if (sl_iso_state_save(iso->path, &iso->state, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%.12s is released, but the state was not saved: %s", id, why);
        rc = -1;
    }
    if (rc == 0)
        log_info("released container %.12s", id);
    pthread_mutex_unlock(&iso->lock);
    return rc;
}

static int iso_reapply(struct sl_iso *iso, const struct sl_iso_target *targets, size_t n, char *err,
                       size_t errlen)
{
    char why[512];
    int rc = 0;

    pthread_mutex_lock(&iso->lock);
    /* Containers that no longer run (or not with that process) lose their
     * namespace rules with their namespace; the host's go in the rebuild. */
    for (size_t i = 0; i < iso->ntargets;) {
        const struct sl_iso_target *now = NULL;
        for (size_t k = 0; k < n; k++)
            if (strcmp(targets[k].id, iso->targets[i].id) == 0)
                now = &targets[k];
        if (now == NULL || now->pid != iso->targets[i].pid) {
            if (now == NULL)
                remove_netns(&iso->targets[i]);
            cache_drop(iso, iso->targets[i].id);
            continue;
        }
        i++;
    }
    for (size_t k = 0; k < n; k++) {
        struct sl_iso_target t;
        if (sl_iso_state_find(&iso->state, targets[k].id) == NULL)
            continue;
        if (complete(&targets[k], &t, why, sizeof(why)) < 0 ||
            validate(iso, &t, why, sizeof(why)) < 0) {
            /* One broken target must not leave the others unprotected. */
            log_warnx("isolation of %.12s not reapplied: %s", targets[k].id, why);
            snprintf(err, errlen, "%s", why);
            rc = -1;
            continue;
        }
        if (cache_put(iso, &t) < 0) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    if (rebuild_host(iso, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s", why);
        rc = -1;
    }
    for (size_t i = 0; i < iso->ntargets; i++) {
        if (has_overlay(&iso->targets[i]) &&
            apply_netns(iso, &iso->targets[i], why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s", why);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&iso->lock);
    return rc;
}

static int iso_check(struct sl_iso *iso)
{
    char why[512];
    int restored = 0;

    pthread_mutex_lock(&iso->lock);
    if (!iso->installed) {
        pthread_mutex_unlock(&iso->lock);
        return 0;
    }
    for (size_t i = 0; i < 3; i++) {
        const char *has[] = {"-t", host_hooks[i].table, "-S", host_hooks[i].chain, NULL};
        if (iptables(4, 0, has, NULL, 0, NULL, 0) != 0) {
            /* The chain itself is gone: everything is rebuilt. */
            log_warnx("isolation chain %s was removed; putting the rules back",
                      host_hooks[i].chain);
            if (rebuild_host(iso, why, sizeof(why)) < 0)
                log_warnx("isolation rules: %s", why);
            pthread_mutex_unlock(&iso->lock);
            return 1;
        }
    }
    for (int fam = 4; fam <= 6; fam += 2) {
        for (size_t i = 0; i < 3; i++) {
            const char *has[] = {"-t", host_hooks[i].table, "-S", host_hooks[i].chain, NULL};
            if (fam == 6 && iptables(6, 0, has, NULL, 0, NULL, 0) != 0)
                continue; /* no IPv6 chains installed */
            const char *builtin = host_hooks[i].builtin;
            int r = jump_first(fam, 0, host_hooks[i].table, builtin, host_hooks[i].chain, why,
                               sizeof(why));
            if (r < 0)
                log_warnx("isolation: jump from %s: %s", builtin, why);
            restored += r > 0;
        }
    }
    pthread_mutex_unlock(&iso->lock);
    return restored;
}

static size_t iso_list(struct sl_iso *iso, struct sl_iso_entry *out, size_t max)
{
    pthread_mutex_lock(&iso->lock);
    size_t n = iso->state.n;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = iso->state.v[i];
    pthread_mutex_unlock(&iso->lock);
    return n;
}

static int iso_is_isolated(struct sl_iso *iso, const char *id)
{
    pthread_mutex_lock(&iso->lock);
    int r = sl_iso_state_find(&iso->state, id) != NULL;
    pthread_mutex_unlock(&iso->lock);
    return r;
}

static void iso_remove_all(struct sl_iso *iso)
{
    if (iso) {
        pthread_mutex_lock(&iso->lock);
        for (size_t i = 0; i < iso->ntargets; i++)
            remove_netns(&iso->targets[i]);
        iso->ntargets = 0;
        iso->installed = 0;
    }
    remove_hooks(4, 0, host_hooks, 3);
    remove_hooks(6, 0, host_hooks, 3);
    if (iso)
        pthread_mutex_unlock(&iso->lock);
}

/* --- the process's one isolation state ----------------------------------------------- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_iso *g_iso;

int sl_iso_init(const char *path, const char *const *allow, size_t nallow, char *err, size_t errlen)
{
    struct sl_iso *iso = iso_open(path, allow, nallow, err, errlen);

    if (iso == NULL)
        return -1;
    pthread_mutex_lock(&g_lock);
    iso_close(g_iso);
    g_iso = iso;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

void sl_iso_shutdown(void)
{
    pthread_mutex_lock(&g_lock);
    iso_close(g_iso);
    g_iso = NULL;
    pthread_mutex_unlock(&g_lock);
}

/* g_iso is set at start and cleared at exit, when no other thread calls in:
 * the handle's own lock guards the rest. */
static struct sl_iso *ready(char *err, size_t errlen)
{
    pthread_mutex_lock(&g_lock);
    struct sl_iso *iso = g_iso;
    pthread_mutex_unlock(&g_lock);
    if (iso == NULL && err)
        snprintf(err, errlen, "isolation is not set up (no state file loaded)");
    return iso;
}

int sl_iso_set_allow(const char *const *allow, size_t nallow, char *err, size_t errlen)
{
    struct sl_iso *iso = ready(err, errlen);
    char **copy = nallow ? calloc(nallow, sizeof(char *)) : NULL;

    if (iso == NULL || (nallow && copy == NULL)) {
        if (iso)
            snprintf(err, errlen, "out of memory");
        free(copy);
        return -1;
    }
    for (size_t i = 0; i < nallow; i++) {
        char cidr[64], port[8];
        if (parse_allow(allow[i], cidr, sizeof(cidr), port, sizeof(port)) <= 0 ||
            (copy[i] = strdup(allow[i])) == NULL) {
            snprintf(err, errlen, "allowed destination '%s': want CIDR or CIDR:port", allow[i]);
            for (size_t k = 0; k < i; k++)
                free(copy[k]);
            free(copy);
            return -1;
        }
    }
    pthread_mutex_lock(&iso->lock);
    for (size_t i = 0; i < iso->nallow; i++)
        free(iso->allow[i]);
    free(iso->allow);
    iso->allow = copy;
    iso->nallow = nallow;
    int rc = iso->installed ? rebuild_host(iso, err, errlen) : 0;
    pthread_mutex_unlock(&iso->lock);
    return rc;
}

int sl_isolate(const struct sl_iso_target *t, const char *reason, char *err, size_t errlen)
{
    struct sl_iso *iso = ready(err, errlen);
    return iso ? iso_isolate(iso, t, reason, err, errlen) : -1;
}

int sl_release(const char *id, char *err, size_t errlen)
{
    struct sl_iso *iso = ready(err, errlen);
    return iso ? iso_release(iso, id, err, errlen) : -1;
}

int sl_isolate_reapply(const struct sl_iso_target *targets, size_t n, char *err, size_t errlen)
{
    struct sl_iso *iso = ready(err, errlen);
    return iso ? iso_reapply(iso, targets, n, err, errlen) : -1;
}

int sl_isolate_check(void)
{
    struct sl_iso *iso = ready(NULL, 0);
    return iso ? iso_check(iso) : 0;
}

size_t sl_iso_list(struct sl_iso_entry *out, size_t max)
{
    struct sl_iso *iso = ready(NULL, 0);
    return iso ? iso_list(iso, out, max) : 0;
}

int sl_isolated(const char *id)
{
    struct sl_iso *iso = ready(NULL, 0);
    return iso ? iso_is_isolated(iso, id) : 0;
}

void sl_isolate_remove_all_rules(void)
{
    iso_remove_all(ready(NULL, 0));
}
