/*
 * sluice-filescan: the file-detection sidecar.
 *
 * Scans running containers' files with the same YARA rules as sluiced (on
 * demand, `scan`, or as files are written, `watch`), reports every match to
 * sluiced's detection socket (detect.h) and prints it, and acts on it when
 * asked (filescan_act.c).
 *
 * Containers are found the way the container map finds them: a process whose
 * cgroup names a container belongs to it, and the container's lowest process
 * gives its root, /proc/PID/root. Docker is asked only for names and images.
 *
 * Watching uses fanotify, FAN_CLOSE_WRITE on the mounts of each container
 * (its root and volumes): a mount mark sees every write made through that
 * mount, whatever the storage driver (vfs, overlay2), and the mount's id
 * tells which container an event belongs to. The event's descriptor is the
 * file itself: it is scanned from there, and readlink of it gives the path as
 * the container sees it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "containers.h"
#include "docker_api.h"
#include "filescan.h"
#include "json.h"
#include "jsonp.h"
#include "log.h"
#include "rules.h"
#include "sl_buf.h"

#define FS_MAX_CONTAINERS 4096
#define FS_MAX_DEPTH      256
#define FS_RESCAN_MS      2000
#define FS_REPLY_MS       5000
#define FS_MAX_MOUNTS     16384

enum { EXIT_CLEAN = 0, EXIT_FOUND = 1, EXIT_USAGE = 2, EXIT_ERROR = 3 };

struct scan {
    struct rules_policy *policy;
    struct rules_scanner *scanner;
    const char *socket; /* NULL: print only */
    int sock_fd;
    int sock_warned;
    const char *docker_sock;
    enum fs_action action;
    const char *quarantine;
    int json;
    uint64_t limit; /* files larger are skipped */
    uint8_t *buf;
    unsigned long files, skipped, found, errors;
    struct json line;
};

static volatile sig_atomic_t stopping;

/* --- output and reporting --------------------------------------------------- */

static void now_rfc3339(char out[40], size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%.20s.%03dZ", date, (int)(ts.tv_nsec / 1000000) % 1000);
}

static void sha256_hex(const uint8_t *buf, size_t len, char out[65])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        out[0] = '\0';
        return;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int connect_socket(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = FS_REPLY_MS / 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Sends one line, reads its answer. 0 when acknowledged (id set). */
static int send_detection(struct scan *s, const char *line, size_t len, uint64_t *id, char *err,
                          size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (s->sock_fd < 0 && (s->sock_fd = connect_socket(s->socket)) < 0) {
            snprintf(err, errlen, "%s: %s", s->socket, strerror(errno));
            return -1;
        }
        char reply[1100];
        size_t got = 0;
        int ok = send(s->sock_fd, line, len, MSG_NOSIGNAL) == (ssize_t)len &&
                 send(s->sock_fd, "\n", 1, MSG_NOSIGNAL) == 1;
        while (ok && got < sizeof(reply) - 1) {
            ssize_t n = recv(s->sock_fd, reply + got, 1, 0);
            if (n <= 0) {
                ok = 0;
                break;
            }
            if (reply[got] == '\n')
                break;
            got++;
        }
        if (!ok) {
            /* The daemon restarted since the last report: connect again. */
            snprintf(err, errlen, "%s: %s", s->socket, errno ? strerror(errno) : "closed");
            close(s->sock_fd);
            s->sock_fd = -1;
            continue;
        }
        reply[got] = '\0';
        char jerr[128];
        struct jsonp_doc *d = jsonp_parse(reply, got, jerr, sizeof(jerr));
        const struct jsonp_value *r = d ? jsonp_root(d) : NULL;
        const struct jsonp_value *okv = r ? jsonp_get(r, "ok") : NULL;
        int rc = -1;
        if (okv && okv->type == JSONP_BOOL && okv->boolean) {
            const struct jsonp_value *idv = jsonp_get(r, "id");
            *id = idv && idv->type == JSONP_NUMBER ? (uint64_t)idv->num : 0;
            rc = 0;
        } else {
            snprintf(err, errlen, "%s: refused: %.200s", s->socket,
                     r ? jsonp_str(jsonp_get(r, "error"), "no reason") : reply);
        }
        jsonp_free(d);
        return rc;
    }
    return -1;
}

static const char *action_done(enum fs_action a)
{
    static const char *const names[] = {"none", "deleted", "quarantined", "stopped"};
    return names[a];
}

/* Acts on a file found, reports each match and prints it. */
static void found(struct scan *s, struct fs_found *f, const struct rules_match *m, int nmatch)
{
    char err[512], qid[96] = "", sha[65], when[40];
    enum fs_action done = FS_ACTION_NONE;

    sha256_hex(f->buf, f->len, sha);
    now_rfc3339(when, sizeof(when));
    f->sha256 = sha;
    f->time = when;
    f->signature = m[0].rule;
    s->found++;

    int rc = 0;
    switch (s->action) {
    case FS_ACTION_NONE:
        break;
    case FS_ACTION_DELETE:
        rc = fs_delete(f, err, sizeof(err));
        break;
    case FS_ACTION_QUARANTINE:
        rc = fs_quarantine(f, s->quarantine, qid, sizeof(qid), err, sizeof(err));
        break;
    case FS_ACTION_STOP:
        rc = fs_stop(s->docker_sock, f->c->id, err, sizeof(err));
        break;
    }
    if (rc == 0)
        done = s->action;
    else {
        log_warnx("%.12s:%s: %s failed: %s", f->c->id, f->path,
                  s->action == FS_ACTION_DELETE       ? "delete"
                  : s->action == FS_ACTION_QUARANTINE ? "quarantine"
                                                      : "stop",
                  err);
        s->errors++;
    }

    for (int i = 0; i < nmatch && i < RULES_MAX_MATCHES; i++) {
        struct json *j = &s->line;
        json_reset(j);
        json_object_begin(j, NULL);
        json_string(j, "container", f->c->id);
        json_string(j, "path", f->path);
        json_string(j, "sha256", sha);
        json_string(j, "signature", m[i].rule);
        json_string(j, "action", action_done(done));
        json_string(j, "scanner", "sluice-filescan");
        json_string(j, "time", when);
        /* Not part of what the socket reads; for whoever reads our output. */
        if (f->c->name[0])
            json_string(j, "container_name", f->c->name);
        if (f->c->image[0])
            json_string(j, "image", f->c->image);
        if (qid[0])
            json_string(j, "quarantine_id", qid);
        json_object_end(j);
        uint64_t id = 0;
        if (s->socket) {
            if (send_detection(s, j->buf, j->len, &id, err, sizeof(err)) != 0) {
                if (!s->sock_warned++ || s->sock_fd >= 0)
                    log_warnx("detection not reported: %s", err);
                s->errors++;
            } else {
                s->sock_warned = 0;
            }
        }
        if (s->json)
            printf("%.*s\n", (int)j->len, j->buf);
        else
            printf("%s  %-20s  %s  %s  %s%s%s\n", when, f->c->name[0] ? f->c->name : f->c->id,
                   f->path, m[i].rule, action_done(done), qid[0] ? "  " : "", qid);
        fflush(stdout);
    }
}

/* Scans the bytes of one file. */
static void scan_bytes(struct scan *s, struct fs_found *f)
{
    struct rules_match m[RULES_MAX_MATCHES];
    char err[256];

    s->files++;
    int n = rules_scan(s->scanner, f->buf, f->len, m, RULES_MAX_MATCHES, err, sizeof(err));
    if (n < 0) {
        log_warnx("%.12s:%s: %s", f->c->id, f->path, err);
        s->errors++;
        return;
    }
    if (n > 0)
        found(s, f, m, n);
}

/* Reads a whole regular file of at most s->limit bytes from fd into s->buf.
 * Returns its length, or -1. */
static ssize_t read_whole(struct scan *s, int fd, size_t size)
{
    size_t len = 0;
    while (len < size) {
        ssize_t n = pread(fd, s->buf + len, size - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    return (ssize_t)len;
}

static void scan_fd(struct scan *s, const struct fs_container *c, const char *path, int fd,
                    const struct stat *st)
{
    if (!S_ISREG(st->st_mode))
        return;
    if ((uint64_t)st->st_size > s->limit) {
        log_debug("%.12s:%s: %lld bytes, over the limit: skipped", c->id, path,
                  (long long)st->st_size);
        s->skipped++;
        return;
    }
    ssize_t len = read_whole(s, fd, (size_t)st->st_size);
    if (len < 0) {
        log_warn("%.12s:%s: read", c->id, path);
        s->errors++;
        return;
    }
    struct fs_found f = {.c = c, .path = path, .st = *st, .buf = s->buf, .len = (size_t)len};
    scan_bytes(s, &f);
}

/* --- containers ---------------------------------------------------------------- */

static int read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

/* Names and images from Docker's container list. 0, or -1 if Docker did not answer. */
static int docker_names(const char *sock, struct fs_container *cs, int n)
{
    struct sl_buf body;
    char err[256], jerr[128];
    int status, rc = -1;

    sl_buf_init(&body, 64 << 20);
    if (docker_call(sock, "GET", DOCKER_API_PREFIX "/containers/json", NULL, NULL, 0, &status,
                    &body, err, sizeof(err)) != 0 ||
        status != 200) {
        log_debug("docker: %s", status != 200 ? "container list refused" : err);
        goto out;
    }
    struct jsonp_doc *d = jsonp_parse((const char *)body.data, body.len, jerr, sizeof(jerr));
    if (d == NULL)
        goto out;
    for (const struct jsonp_value *v = jsonp_root(d)->child; v; v = v->next) {
        const char *id = jsonp_str(jsonp_get(v, "Id"), "");
        const struct jsonp_value *names = jsonp_get(v, "Names");
        const char *name = names && names->child ? jsonp_str(names->child, "") : "";
        for (int i = 0; i < n; i++) {
            if (strcmp(cs[i].id, id) != 0)
                continue;
            snprintf(cs[i].name, sizeof(cs[i].name), "%s", name[0] == '/' ? name + 1 : name);
            snprintf(cs[i].image, sizeof(cs[i].image), "%s", jsonp_str(jsonp_get(v, "Image"), ""));
        }
    }
    jsonp_free(d);
    rc = 0;
out:
    sl_buf_free(&body);
    return rc;
}

int fs_containers(const char *docker_sock, struct fs_container *out, size_t max, int *docker_ok)
{
    DIR *proc = opendir("/proc");
    struct dirent *de;
    int n = 0;
    char path[64], text[8192];

    *docker_ok = 0;
    if (proc == NULL)
        return -1;
    while ((de = readdir(proc)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(de->d_name);
        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
        if (read_text(path, text, sizeof(text)) <= 0)
            continue;
        char id[65], runtime[16];
        int have = 0;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && !have;
             line = strtok_r(NULL, "\n", &save))
            have = sl_cgroup_container_id(line, id, runtime);
        if (!have)
            continue;
        int i;
        for (i = 0; i < n && strcmp(out[i].id, id) != 0; i++)
            ;
        if (i == n) {
            if ((size_t)n == max)
                continue;
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(out[n].id, id, sizeof(out[n].id));
            out[n++].pid = pid;
        } else if (pid < out[i].pid) {
            out[i].pid = pid;
        }
    }
    closedir(proc);
    if (docker_sock && n > 0)
        *docker_ok = docker_names(docker_sock, out, n) == 0;
    return n;
}

/* Which containers the command line names: IDs, ID prefixes, names, or
 * --all with masks. Marks want[i]; -1 when a name matches none. */
struct selection {
    char **names;
    int nnames;
    int all;
    const char *name_mask, *image_mask;
};

static int selected(const struct selection *sel, const struct fs_container *c)
{
    if (sel->all)
        return (!sel->name_mask || fnmatch(sel->name_mask, c->name, 0) == 0) &&
               (!sel->image_mask || fnmatch(sel->image_mask, c->image, 0) == 0);
    for (int i = 0; i < sel->nnames; i++) {
        const char *a = sel->names[i];
        if (strcmp(a, c->name) == 0 || (strlen(a) >= 1 && strncmp(c->id, a, strlen(a)) == 0))
            return 1;
    }
    return 0;
}

/* Each name must match exactly one container. */
static int check_names(const struct selection *sel, const struct fs_container *cs, int n)
{
    int rc = 0;
    for (int i = 0; i < sel->nnames; i++) {
        int hits = 0, exact = 0;
        for (int k = 0; k < n; k++) {
            if (strcmp(sel->names[i], cs[k].name) == 0 || strcmp(sel->names[i], cs[k].id) == 0)
                exact++;
            else if (strncmp(cs[k].id, sel->names[i], strlen(sel->names[i])) == 0)
                hits++;
        }
        if (exact == 0 && hits != 1) {
            log_warnx("%s: %s", sel->names[i],
                      hits ? "matches several containers" : "no such running container");
            rc = -1;
        }
    }
    return rc;
}

/* --- scan: walking a container's files --------------------------------------------- */

/* File systems with nothing of the container's own: kernel interfaces. */
static int pseudo_fs(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0)
        return 0;
    switch ((unsigned long)sf.f_type) {
    case 0x9fa0:     /* proc */
    case 0x62656572: /* sysfs */
    case 0x1cd1:     /* devpts */
    case 0x27e0eb:   /* cgroup */
    case 0x63677270: /* cgroup2 */
    case 0x19800202: /* mqueue */
    case 0x73636673: /* securityfs */
    case 0x64626720: /* debugfs */
    case 0x74726163: /* tracefs */
    case 0xcafe4a11: /* bpf */
        return 1;
    default:
        return 0;
    }
}

static void walk(struct scan *s, const struct fs_container *c, int dfd, char *path, size_t plen,
                 int depth)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        log_warn("%.12s:%s", c->id, plen ? path : "/");
        close(dfd);
        s->errors++;
        return;
    }
    struct dirent *de;
    while (!stopping && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        struct stat st;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (depth == 0 &&
            (strcmp(name, "proc") == 0 || strcmp(name, "sys") == 0 || strcmp(name, "dev") == 0))
            continue;
        size_t nlen = strlen(name);
        if (plen + 1 + nlen >= 4096) {
            log_warnx("%.12s:%s/%s: path too long: skipped", c->id, path, name);
            s->skipped++;
            continue;
        }
        path[plen] = '/';
        memcpy(path + plen + 1, name, nlen + 1);
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) {
                log_warn("%.12s:%s", c->id, path);
                s->errors++;
            }
        } else if (S_ISDIR(st.st_mode)) {
            int sub =
                openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
            if (sub < 0 && errno == EPERM)
                sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                if (errno != ENOENT) {
                    log_warn("%.12s:%s", c->id, path);
                    s->errors++;
                }
            } else if (pseudo_fs(sub) || depth + 1 >= FS_MAX_DEPTH) {
                close(sub);
            } else {
                walk(s, c, sub, path, plen + 1 + nlen, depth + 1);
            }
        } else if (S_ISREG(st.st_mode)) {
            if ((uint64_t)st.st_size > s->limit) {
                s->skipped++;
            } else {
                int fd = openat(dirfd(d), name,
                                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
                if (fd < 0 && errno == EPERM)
                    fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                struct stat now;
                if (fd < 0) {
                    if (errno != ENOENT) {
                        log_warn("%.12s:%s", c->id, path);
                        s->errors++;
                    }
                } else if (fstat(fd, &now) == 0 && S_ISREG(now.st_mode) &&
                           now.st_ino == st.st_ino && now.st_dev == st.st_dev) {
                    scan_fd(s, c, path, fd, &now);
                }
                if (fd >= 0)
                    close(fd);
            }
        }
        path[plen] = '\0';
    }
    closedir(d);
}

static void scan_container(struct scan *s, const struct fs_container *c)
{
    char root[64], path[4096] = "";
    snprintf(root, sizeof(root), "/proc/%d/root", (int)c->pid);
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_warn("%.12s: %s", c->id, root);
        s->errors++;
        return;
    }
    unsigned long before = s->files;
    walk(s, c, fd, path, 0, 0);
    log_info("%s (%.12s): %lu files scanned", c->name[0] ? c->name : c->id, c->id,
             s->files - before);
}

/* --- watch: fanotify ------------------------------------------------------------ */

struct watched {
    struct fs_container c;
    uint64_t mnt_ids[64]; /* the container's mounts marked */
    int nmnt;
    int seen; /* still running at the last rescan */
};

static int mount_id(int fd, const char *path, uint64_t *id)
{
    struct statx sx;
    if (statx(fd, path, path[0] ? 0 : AT_EMPTY_PATH, STATX_MNT_ID, &sx) != 0 ||
        !(sx.stx_mask & STATX_MNT_ID))
        return -1;
    *id = sx.stx_mnt_id;
    return 0;
}

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

static int skip_mount(const char *mp, const char *fstype)
{
    static const char *const pseudo[] = {"proc",    "sysfs",      "devpts",  "mqueue",  "cgroup",
                                         "cgroup2", "securityfs", "debugfs", "tracefs", "bpf"};
    for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++)
        if (strcmp(fstype, pseudo[i]) == 0)
            return 1;
    return strncmp(mp, "/proc", 5) == 0 || strncmp(mp, "/sys", 4) == 0 || strcmp(mp, "/dev") == 0 ||
           strncmp(mp, "/dev/", 5) == 0;
}

/* Marks the container's mounts: its root and whatever is mounted in it
 * (volumes, bind mounts), kernel interfaces excepted. 0, or -1 when not even
 * its root could be marked. */
static int watch_container(int fan, struct watched *w)
{
    char path[64];
    static char text[1 << 20];

    snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)w->c.pid);
    if (read_text(path, text, sizeof(text)) <= 0)
        return -1;
    w->nmnt = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        /* id parent major:minor root mountpoint options [optional...] - fstype source */
        char mp[4096], fstype[64];
        char *dash = strstr(line, " - ");
        if (dash == NULL || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
            sscanf(dash + 3, "%63s", fstype) != 1)
            continue;
        unescape(mp);
        if (skip_mount(mp, fstype) || w->nmnt == (int)(sizeof(w->mnt_ids) / 8))
            continue;
        /* fanotify_mark takes no O_PATH descriptor. */
        int fd = fs_open_in_root(w->c.pid, mp, O_RDONLY | O_NONBLOCK | O_NOFOLLOW, 0);
        uint64_t id;
        if (fd < 0)
            continue;
        if (mount_id(fd, "", &id) == 0 &&
            fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, fd, NULL) == 0)
            w->mnt_ids[w->nmnt++] = id;
        else if (strcmp(mp, "/") == 0)
            log_warn("%.12s: cannot watch its root", w->c.id);
        close(fd);
    }
    return w->nmnt > 0 ? 0 : -1;
}

struct watch_state {
    struct watched *w;
    int n;
    const struct selection *sel;
};

static void rescan(struct scan *s, struct watch_state *ws, int fan)
{
    static struct fs_container cs[FS_MAX_CONTAINERS];
    int docker_ok = 0;
    int n = fs_containers(NULL, cs, FS_MAX_CONTAINERS, &docker_ok);
    int fresh = 0;

    for (int i = 0; i < ws->n; i++)
        ws->w[i].seen = 0;
    for (int k = 0; k < n; k++) {
        int i;
        for (i = 0; i < ws->n && strcmp(ws->w[i].c.id, cs[k].id) != 0; i++)
            ;
        if (i < ws->n)
            ws->w[i].seen = 1;
        else
            fresh = 1;
    }
    /* Names and images only when a container is new: Docker is not asked every 2 s. */
    if (fresh && s->docker_sock)
        docker_ok = docker_names(s->docker_sock, cs, n) == 0;
    for (int k = 0; k < n && fresh; k++) {
        int i;
        for (i = 0; i < ws->n && strcmp(ws->w[i].c.id, cs[k].id) != 0; i++)
            ;
        if (i < ws->n || ws->n == FS_MAX_CONTAINERS || !selected(ws->sel, &cs[k]))
            continue;
        struct watched *w = &ws->w[ws->n];
        memset(w, 0, sizeof(*w));
        w->c = cs[k];
        w->seen = 1;
        if (watch_container(fan, w) != 0) {
            log_warnx("%.12s: cannot watch it", w->c.id);
            continue;
        }
        ws->n++;
        log_info("watching %s (%.12s, %s): %d mounts", w->c.name[0] ? w->c.name : "-", w->c.id,
                 w->c.image[0] ? w->c.image : "-", w->nmnt);
    }
    /* Gone containers: their marks went with their mounts. */
    for (int i = 0; i < ws->n;) {
        if (ws->w[i].seen) {
            i++;
            continue;
        }
        log_info("%.12s: gone", ws->w[i].c.id);
        ws->w[i] = ws->w[--ws->n];
    }
}

static void on_event(struct scan *s, struct watch_state *ws,
                     const struct fanotify_event_metadata *m)
{
    char link[64], path[4096];
    uint64_t mnt;
    struct stat st;

    if (m->mask & FAN_Q_OVERFLOW) {
        log_warnx("fanotify: events lost (queue overflow): some writes were not scanned");
        s->errors++;
        return;
    }
    if (m->fd < 0 || m->pid == getpid())
        return;
    if (mount_id(m->fd, "", &mnt) != 0 || fstat(m->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    struct watched *w = NULL;
    for (int i = 0; i < ws->n && !w; i++)
        for (int k = 0; k < ws->w[i].nmnt; k++)
            if (ws->w[i].mnt_ids[k] == mnt)
                w = &ws->w[i];
    if (w == NULL)
        return;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", m->fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        return;
    path[n] = '\0';
    if (st.st_nlink == 0) /* removed already */
        return;
    scan_fd(s, &w->c, path, m->fd, &st);
}

static int do_watch(struct scan *s, const struct selection *sel)
{
    struct watch_state ws = {.sel = sel};
    sigset_t mask;

    ws.w = calloc(FS_MAX_CONTAINERS, sizeof(*ws.w));
    int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                            O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    if (ws.w == NULL || fan < 0) {
        log_warn("fanotify_init");
        free(ws.w);
        return EXIT_ERROR;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    struct timespec next = {0};
    static uint8_t events[64 * 1024] __attribute__((aligned(8)));
    while (!stopping) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left =
            (int64_t)(next.tv_sec - now.tv_sec) * 1000 + (next.tv_nsec - now.tv_nsec) / 1000000;
        if (left <= 0) {
            rescan(s, &ws, fan);
            next = now;
            next.tv_sec += FS_RESCAN_MS / 1000;
            left = FS_RESCAN_MS;
        }
        struct pollfd p[2] = {{.fd = fan, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(p, 2, (int)left) < 0 && errno != EINTR) {
            log_warn("poll");
            break;
        }
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        ssize_t len = read(fan, events, sizeof(events));
        if (len < 0) {
            if (errno != EAGAIN && errno != EINTR)
                log_warn("fanotify read");
            continue;
        }
        const struct fanotify_event_metadata *m = (const void *)events;
        for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
            on_event(s, &ws, m);
            if (m->fd >= 0)
                close(m->fd);
        }
    }
    close(fan);
    if (sfd >= 0)
        close(sfd);
    free(ws.w);
    log_info("stopped: %lu files scanned, %lu found", s->files, s->found);
    return EXIT_CLEAN;
}

/* --- the command line --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice-filescan [options] scan CONTAINER... | --all [--name MASK] "
            "[--image MASK]\n"
            "       sluice-filescan [options] watch [--all [--name MASK] [--image MASK] | "
            "CONTAINER...]\n"
            "       sluice-filescan [options] restore ID\n"
            "options:\n"
            "  -c, --config FILE     policy (the YARA rules and limits of sluiced)\n"
            "  -s, --socket PATH     sluiced's detection socket (default: the policy's)\n"
            "  -n, --no-report       print only, report to no socket\n"
            "  -a, --action ACTION   none, delete, quarantine or stop (default none)\n"
            "  -q, --quarantine DIR  quarantine folder (default %s)\n"
            "  -j, --json            print detections as JSON lines\n"
            "  -v, --verbose         say more\n"
            "exit: 0 nothing found, 1 found, 2 usage, 3 errors\n",
            FS_DEFAULT_QUARANTINE);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"no-report", no_argument, NULL, 'n'},
        {"action", required_argument, NULL, 'a'},
        {"quarantine", required_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},
        {"all", no_argument, NULL, 'A'},
        {"name", required_argument, NULL, 'N'},
        {"image", required_argument, NULL, 'I'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct scan s = {.sock_fd = -1, .quarantine = FS_DEFAULT_QUARANTINE};
    struct selection sel = {0};
    const char *config = NULL, *socket_path = NULL;
    int no_report = 0, opt;
    enum log_level level = LOG_LEVEL_INFO;

    log_init("sluice-filescan", LOG_LEVEL_INFO, 0);
    while ((opt = getopt_long(argc, argv, "c:s:na:q:jvh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 's':
            socket_path = optarg;
            break;
        case 'n':
            no_report = 1;
            break;
        case 'a':
            if (strcmp(optarg, "none") == 0)
                s.action = FS_ACTION_NONE;
            else if (strcmp(optarg, "delete") == 0)
                s.action = FS_ACTION_DELETE;
            else if (strcmp(optarg, "quarantine") == 0)
                s.action = FS_ACTION_QUARANTINE;
            else if (strcmp(optarg, "stop") == 0)
                s.action = FS_ACTION_STOP;
            else {
                fprintf(stderr, "sluice-filescan: --action: none, delete, quarantine or stop\n");
                return EXIT_USAGE;
            }
            break;
        case 'q':
            s.quarantine = optarg;
            break;
        case 'j':
            s.json = 1;
            break;
        case 'A':
            sel.all = 1;
            break;
        case 'N':
            sel.name_mask = optarg;
            break;
        case 'I':
            sel.image_mask = optarg;
            break;
        case 'v':
            level = LOG_LEVEL_DEBUG;
            break;
        case 'h':
            usage(stdout);
            return EXIT_CLEAN;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    log_set_level(level);
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind++];
    sel.names = argv + optind;
    sel.nnames = argc - optind;

    if (strcmp(cmd, "restore") == 0) {
        char err[512];
        if (sel.nnames != 1) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if (fs_restore(s.quarantine, sel.names[0], err, sizeof(err)) != 0) {
            log_warnx("restore %s: %s", sel.names[0], err);
            return EXIT_ERROR;
        }
        printf("restored %s\n", sel.names[0]);
        return EXIT_CLEAN;
    }
    int watch = strcmp(cmd, "watch") == 0;
    if (!watch && strcmp(cmd, "scan") != 0) {
        fprintf(stderr, "sluice-filescan: unknown command '%s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    if ((sel.all && sel.nnames) || (!sel.all && !sel.nnames && !watch) ||
        ((sel.name_mask || sel.image_mask) && !sel.all)) {
        fprintf(stderr, "sluice-filescan: name containers, or --all (with --name/--image masks)\n");
        return EXIT_USAGE;
    }
    if (watch && !sel.nnames)
        sel.all = 1;

    char err[RULES_ERRLEN];
    s.policy = rules_policy_load(config, 1, err, sizeof(err));
    if (s.policy == NULL) {
        log_warnx("%s", err);
        return EXIT_ERROR;
    }
    s.scanner = rules_scanner_new(s.policy);
    if (s.scanner == NULL) {
        log_warnx("%s: no YARA rules to scan with", s.policy->path);
        rules_policy_unref(s.policy);
        return EXIT_ERROR;
    }
    s.limit = s.policy->limits.body;
    s.docker_sock = s.policy->containers.docker_socket;
    s.socket = no_report     ? NULL
               : socket_path ? socket_path
                             : s.policy->compromise.detections_socket;
    s.buf = malloc(s.limit ? s.limit : 1);
    json_init(&s.line);
    if (s.buf == NULL) {
        log_warnx("out of memory");
        return EXIT_ERROR;
    }

    int rc;
    if (watch) {
        rc = do_watch(&s, &sel);
    } else {
        static struct fs_container cs[FS_MAX_CONTAINERS];
        int docker_ok = 0;
        int n = fs_containers(s.docker_sock, cs, FS_MAX_CONTAINERS, &docker_ok);
        if (n < 0) {
            log_warn("/proc");
            return EXIT_ERROR;
        }
        if (!docker_ok && (sel.name_mask || sel.image_mask))
            log_warnx("%s: Docker does not answer: containers have no names or images",
                      s.docker_sock);
        if (check_names(&sel, cs, n) != 0)
            s.errors++;
        for (int i = 0; i < n && !stopping; i++)
            if (selected(&sel, &cs[i]))
                scan_container(&s, &cs[i]);
        log_info("%lu files scanned, %lu skipped (over %llu bytes or unreadable), %lu found, "
                 "%lu errors",
                 s.files, s.skipped, (unsigned long long)s.limit, s.found, s.errors);
        rc = s.found ? EXIT_FOUND : s.errors ? EXIT_ERROR : EXIT_CLEAN;
    }
    if (s.sock_fd >= 0)
        close(s.sock_fd);
    json_free(&s.line);
    free(s.buf);
    rules_scanner_free(s.scanner);
    rules_policy_unref(s.policy);
    return rc;
}
