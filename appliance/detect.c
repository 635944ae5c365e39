/*
 * The detection socket (detect.h): one thread, one poll loop over the
 * listening socket and every client.
 *
 * Why these bounds: a scanner may send a burst of thousands of detections,
 * and a broken or hostile one may send garbage, endless lines, or never read
 * its replies. So each client has a fixed input buffer (one line at most),
 * and a bounded output buffer: while its replies are not read, its further
 * lines are not read either (they wait in its socket), and the others go on
 * being served. Nothing a client sends can make the thread block or grow
 * without bound.
 */
#include "detect.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "jsonp.h"
#include "log.h"
#include "sl_sys.h"
#include "usock.h"

#define DETECT_MAX_CLIENTS 256
#define DETECT_IN_CAP      (SL_DETECT_MAX_LINE + 1) /* a whole line and its newline */
#define DETECT_OUT_CAP     (64 * 1024)              /* replies pending before reading pauses */
#define DETECT_REPLY_MAX   1024                     /* one reply line, newline included */
#define DETECT_LOG_BURST   10                       /* log lines per window and kind */
#define DETECT_LOG_WINDOW  10                       /* seconds */

struct client {
    int fd;
    pid_t pid;
    uid_t uid;
    char *in; /* DETECT_IN_CAP bytes */
    size_t in_len;
    int skipping; /* dropping the rest of a line that was too long */
    int eof;      /* the client shut its end: close once replies are out */
    char *out;    /* DETECT_OUT_CAP + DETECT_REPLY_MAX bytes */
    size_t out_off, out_len;
};

/* Log lines of one kind, at most DETECT_LOG_BURST per window. */
struct ratelimit {
    time_t window;
    unsigned n;
    uint64_t dropped;
};

struct sl_detect {
    char *path;
    int fd;
    int stop_pipe[2];
    dev_t dev; /* the socket file we made, so stop removes only ours */
    ino_t ino;
    gid_t gid; /* the socket's group */
    sl_detect_cb cb;
    void *ctx;
    pthread_t thread;
    struct client *clients[DETECT_MAX_CLIENTS];
    size_t nclients;
    uint64_t next_id;
    struct json reply;
    struct ratelimit rl_malformed, rl_refused;
    /* Read by other threads: __atomic. */
    uint64_t accepted, malformed, refused, connected;
};

/* --- the parser -------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies the string member key of o into dst (size cap). 0 when absent or
 * null (dst ""), 1 when set, -1 with err when not a usable string. */
static int get_field(const struct jsonp_value *o, const char *key, char *dst, size_t cap, char *err,
                     size_t errlen)
{
    const struct jsonp_value *v = jsonp_get(o, key);

    dst[0] = '\0';
    if (v == NULL || v->type == JSONP_NULL)
        return 0;
    if (v->type != JSONP_STRING)
        return fail(err, errlen, "\"%s\" is not a string", key);
    if (v->len == 0)
        return fail(err, errlen, "\"%s\" is empty", key);
    if (v->len >= cap) {
        snprintf(err, errlen, "\"%s\" is longer than %zu bytes", key, cap - 1);
        return -1;
    }
    for (size_t i = 0; i < v->len; i++)
        if ((unsigned char)v->str[i] < 0x20 || v->str[i] == 0x7f)
            return fail(err, errlen, "\"%s\" holds a control character", key);
    memcpy(dst, v->str, v->len + 1);
    return 1;
}

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A container ID, an ID prefix or a Docker name ([a-zA-Z0-9][a-zA-Z0-9_.-]*,
 * with or without its leading '/'). */
static int container_ok(char *s)
{
    if (s[0] == '/')
        memmove(s, s + 1, strlen(s));
    if (!isalnum((unsigned char)s[0]))
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
            return 0;
    return 1;
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* RFC 3339 date-time: 2026-01-31T12:00:00[.frac](Z|+hh:mm|-hh:mm), 't' and
 * 'z' and a space for the 'T' accepted as the RFC allows. */
static int rfc3339_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2) ||
        s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return 0;
    int mon = num(s + 5, 2), day = num(s + 8, 2), hour = num(s + 11, 2), min = num(s + 14, 2),
        sec = num(s + 17, 2);
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return 0;
    const char *p = s + 19;
    if (*p == '.') {
        if (!isdigit((unsigned char)p[1]))
            return 0;
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    }
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0')
        return 1;
    return (p[0] == '+' || p[0] == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) &&
           p[6] == '\0' && num(p + 1, 2) < 24 && num(p + 4, 2) < 60;
}

int sl_detection_parse(const char *line, size_t len, struct sl_detection *out, char *err,
                       size_t errlen)
{
    static const char *const actions[] = {"none", "deleted", "quarantined", "stopped"};
    struct sl_detection *d = out;
    char jerr[128];
    int rc = -1;

    memset(d, 0, sizeof(*d));
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len == 0)
        return fail(err, errlen, "empty line");
    struct jsonp_doc *doc = jsonp_parse(line, len, jerr, sizeof(jerr));
    if (doc == NULL) {
        snprintf(err, errlen, "not JSON: %s", jerr);
        return -1;
    }
    const struct jsonp_value *o = jsonp_root(doc);
    if (o->type != JSONP_OBJECT) {
        fail(err, errlen, "not a JSON object");
        goto out;
    }
    int has_container, has_host, has_path, has_sig, has_action;
    if ((has_container =
             get_field(o, "container", d->container, sizeof(d->container), err, errlen)) < 0 ||
        (has_host = get_field(o, "host_path", d->host_path, sizeof(d->host_path), err, errlen)) <
            0 ||
        (has_path = get_field(o, "path", d->path, sizeof(d->path), err, errlen)) < 0 ||
        get_field(o, "sha256", d->sha256, sizeof(d->sha256), err, errlen) < 0 ||
        (has_sig = get_field(o, "signature", d->signature, sizeof(d->signature), err, errlen)) <
            0 ||
        (has_action = get_field(o, "action", d->action, sizeof(d->action), err, errlen)) < 0 ||
        get_field(o, "scanner", d->scanner, sizeof(d->scanner), err, errlen) < 0 ||
        get_field(o, "time", d->time, sizeof(d->time), err, errlen) < 0)
        goto out;
    if (!has_sig) {
        fail(err, errlen, "\"signature\" is missing");
        goto out;
    }
    if (!has_path) {
        fail(err, errlen, "\"path\" is missing");
        goto out;
    }
    if (!has_container && !has_host) {
        fail(err, errlen, "\"container\" or \"host_path\" is needed");
        goto out;
    }
    if (has_container && !container_ok(d->container)) {
        fail(err, errlen, "\"container\" is neither a container ID nor a name");
        goto out;
    }
    if (has_host && d->host_path[0] != '/') {
        fail(err, errlen, "\"host_path\" is not an absolute path");
        goto out;
    }
    if (d->path[0] != '/') {
        fail(err, errlen, "\"path\" is not an absolute path");
        goto out;
    }
    if (d->sha256[0] && (strlen(d->sha256) != 64 || !all_hex(d->sha256, 64))) {
        fail(err, errlen, "\"sha256\" is not 64 hex digits");
        goto out;
    }
    for (char *p = d->sha256; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!has_action)
        snprintf(d->action, sizeof(d->action), "none");
    size_t i;
    for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(d->action, actions[i]) == 0)
            break;
    if (i == sizeof(actions) / sizeof(actions[0])) {
        fail(err, errlen, "\"action\" is not none, deleted, quarantined or stopped");
        goto out;
    }
    if (d->time[0] && !rfc3339_ok(d->time)) {
        fail(err, errlen, "\"time\" is not an RFC 3339 date-time");
        goto out;
    }
    rc = 0;
out:
    jsonp_free(doc);
    if (rc != 0)
        memset(d, 0, sizeof(*d));
    return rc;
}

/* --- the socket ---------------------------------------------------------------- */

static void count(uint64_t *c)
{
    __atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* 1 when a line of this kind may be logged now; says how many were not. */
static int ratelimit_ok(struct ratelimit *r, const char *path, const char *what)
{
    time_t now = time(NULL);
    if (now - r->window >= DETECT_LOG_WINDOW) {
        if (r->dropped)
            log_warnx("%s: %llu more %s not logged", path, (unsigned long long)r->dropped, what);
        r->window = now;
        r->n = 0;
        r->dropped = 0;
    }
    if (r->n < DETECT_LOG_BURST) {
        r->n++;
        return 1;
    }
    r->dropped++;
    return 0;
}

static int lookup_group(const char *group, gid_t *gid, char *err, size_t errlen)
{
    char buf[16384];
    struct group gr, *res = NULL;
    char *end;

    unsigned long n = strtoul(group, &end, 10);
    if (group[0] != '\0' && *end == '\0' && n < (gid_t)-1) {
        *gid = (gid_t)n;
        return 0;
    }
    int rc = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
    if (res == NULL) {
        snprintf(err, errlen, "group %s: %s", group, rc ? strerror(rc) : "no such group");
        return -1;
    }
    *gid = gr.gr_gid;
    return 0;
}

static int make_socket(struct sl_detect *d, const char *group, char *err, size_t errlen)
{
    d->gid = getegid();
    if (group && lookup_group(group, &d->gid, err, errlen) != 0)
        return -1;
    d->fd = sl_usock_listen(d->path, 0660, d->gid, 128, &d->dev, &d->ino, err, errlen);
    return d->fd < 0 ? -1 : 0;
}

/* Root, the daemon's user, and members of the socket's group. */
static int peer_allowed(const struct sl_detect *d, int fd, struct ucred *cred)
{
    socklen_t len = sizeof(*cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) != 0)
        return 0;
    if (cred->uid == 0 || cred->uid == geteuid() || cred->gid == d->gid)
        return 1;
    gid_t groups[256];
    len = sizeof(groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
        return 0;
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == d->gid)
            return 1;
    return 0;
}

static void client_free(struct client *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Appends the reply in d->reply and a newline to c's output. */
static void queue_reply(struct sl_detect *d, struct client *c)
{
    size_t n = d->reply.len;
    if (d->reply.failed || n + 1 > DETECT_REPLY_MAX) {
        static const char fallback[] = "{\"ok\":false,\"error\":\"reply could not be built\"}";
        n = sizeof(fallback) - 1;
        memcpy(c->out + c->out_len, fallback, n);
    } else {
        memcpy(c->out + c->out_len, d->reply.buf, n);
    }
    c->out[c->out_len + n] = '\n';
    c->out_len += n + 1;
}

static void reply_error(struct sl_detect *d, struct client *c, const char *why)
{
    json_reset(&d->reply);
    json_object_begin(&d->reply, NULL);
    json_bool(&d->reply, "ok", 0);
    json_string(&d->reply, "error", why);
    json_object_end(&d->reply);
    queue_reply(d, c);
    count(&d->malformed);
    if (ratelimit_ok(&d->rl_malformed, d->path, "malformed lines"))
        log_warnx("%s: pid %d uid %u: refused a line: %s", d->path, (int)c->pid, (unsigned)c->uid,
                  why);
}

static void handle_line(struct sl_detect *d, struct client *c, const char *line, size_t len)
{
    struct sl_detection det;
    char err[256];

    if (sl_detection_parse(line, len, &det, err, sizeof(err)) != 0) {
        reply_error(d, c, err);
        return;
    }
    uint64_t id = ++d->next_id;
    d->cb(d->ctx, &det, id, c->pid, c->uid);
    count(&d->accepted);
    json_reset(&d->reply);
    json_object_begin(&d->reply, NULL);
    json_bool(&d->reply, "ok", 1);
    json_uint(&d->reply, "id", id);
    json_object_end(&d->reply);
    queue_reply(d, c);
}

/* Answers the complete lines in c's input while its output has room; what
 * is left (a partial line, or lines waiting for room) moves to the front. */
static void process_lines(struct sl_detect *d, struct client *c)
{
    size_t off = 0;
    while (c->out_len < DETECT_OUT_CAP) {
        char *nl = memchr(c->in + off, '\n', c->in_len - off);
        if (nl == NULL)
            break;
        handle_line(d, c, c->in + off, (size_t)(nl - (c->in + off)));
        off = (size_t)(nl - c->in) + 1;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    /* A full buffer without a newline: the line is too long. */
    if (c->in_len == DETECT_IN_CAP && c->out_len < DETECT_OUT_CAP) {
        char why[64];
        snprintf(why, sizeof(why), "line longer than %d bytes", SL_DETECT_MAX_LINE);
        reply_error(d, c, why);
        c->in_len = 0;
        c->skipping = 1;
    }
    /* The client ended without a newline: its last line counts. */
    if (c->eof && c->in_len > 0 && c->out_len < DETECT_OUT_CAP &&
        memchr(c->in, '\n', c->in_len) == NULL) {
        if (!c->skipping)
            handle_line(d, c, c->in, c->in_len);
        c->in_len = 0;
    }
}

/* Sends what c has pending. -1 when the client is gone. */
static int flush_out(struct client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Reads what c sent (once: others get their turn) and answers it. -1 when
 * the client is done or gone. */
static int client_read(struct sl_detect *d, struct client *c)
{
    if (!c->eof && c->out_len < DETECT_OUT_CAP) {
        ssize_t n = recv(c->fd, c->in + c->in_len, DETECT_IN_CAP - c->in_len, MSG_DONTWAIT);
        if (n == 0)
            c->eof = 1;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        else if (n > 0 && c->skipping) {
            char *nl = memchr(c->in, '\n', (size_t)n);
            if (nl) {
                c->skipping = 0;
                c->in_len = (size_t)n - (size_t)(nl + 1 - c->in);
                memmove(c->in, nl + 1, c->in_len);
            }
        } else if (n > 0) {
            c->in_len += (size_t)n;
        }
    }
    /* Lines held back for lack of room go on as long as replies go out. */
    do {
        process_lines(d, c);
        if (flush_out(c) != 0)
            return -1;
    } while (c->out_len == 0 && c->in_len > 0 && memchr(c->in, '\n', c->in_len));
    if (c->eof && c->out_len == 0 && (c->in_len == 0 || !memchr(c->in, '\n', c->in_len)))
        return -1;
    return 0;
}

static void accept_client(struct sl_detect *d)
{
    struct ucred cred;
    int fd = accept4(d->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("%s: accept", d->path);
        /* Out of descriptors: back off instead of spinning on POLLIN. */
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            poll(NULL, 0, 100);
        return;
    }
    if (!peer_allowed(d, fd, &cred)) {
        count(&d->refused);
        if (ratelimit_ok(&d->rl_refused, d->path, "refused clients"))
            log_warnx("%s: refused pid %d uid %u: neither root nor in the socket's group", d->path,
                      (int)cred.pid, (unsigned)cred.uid);
        close(fd);
        return;
    }
    struct client *c = NULL;
    if (d->nclients == DETECT_MAX_CLIENTS || (c = calloc(1, sizeof(*c))) == NULL ||
        (c->in = malloc(DETECT_IN_CAP)) == NULL ||
        (c->out = malloc(DETECT_OUT_CAP + DETECT_REPLY_MAX)) == NULL) {
        static const char busy[] = "{\"ok\":false,\"error\":\"too many clients\"}\n";
        if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_debug("%s: %s", d->path, strerror(errno));
        count(&d->refused);
        if (ratelimit_ok(&d->rl_refused, d->path, "refused clients"))
            log_warnx("%s: refused pid %d: %d clients already", d->path, (int)cred.pid,
                      DETECT_MAX_CLIENTS);
        if (c) {
            free(c->in);
            free(c);
        }
        close(fd);
        return;
    }
    c->fd = fd;
    c->pid = cred.pid;
    c->uid = cred.uid;
    d->clients[d->nclients++] = c;
    __atomic_store_n(&d->connected, d->nclients, __ATOMIC_RELAXED);
}

static void *serve(void *arg)
{
    struct sl_detect *d = arg;
    struct pollfd p[DETECT_MAX_CLIENTS + 2];

    for (;;) {
        p[0] = (struct pollfd){.fd = d->stop_pipe[0], .events = POLLIN};
        p[1] = (struct pollfd){.fd = d->fd, .events = POLLIN};
        for (size_t i = 0; i < d->nclients; i++) {
            struct client *c = d->clients[i];
            short ev = 0;
            if (c->out_len > 0)
                ev |= POLLOUT;
            if (!c->eof && c->out_len < DETECT_OUT_CAP)
                ev |= POLLIN;
            p[i + 2] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        size_t n = d->nclients;
        if (poll(p, n + 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_warn("%s: poll", d->path);
            break;
        }
        if (p[0].revents)
            break;
        /* Clients first, in the order of the array; removal swaps the last
         * in, so walk backwards to keep p[] and clients[] in step. */
        for (size_t i = n; i-- > 0;) {
            if (p[i + 2].revents == 0)
                continue;
            struct client *c = d->clients[i];
            if (client_read(d, c) != 0) {
                client_free(c);
                d->clients[i] = d->clients[--d->nclients];
                __atomic_store_n(&d->connected, d->nclients, __ATOMIC_RELAXED);
            }
        }
        if (p[1].revents & POLLIN)
            accept_client(d);
    }
    return NULL;
}

static void detect_free(struct sl_detect *d)
{
    if (d->fd >= 0)
        close(d->fd);
    for (int i = 0; i < 2; i++)
        if (d->stop_pipe[i] >= 0)
            close(d->stop_pipe[i]);
    for (size_t i = 0; i < d->nclients; i++)
        client_free(d->clients[i]);
    json_free(&d->reply);
    free(d->path);
    free(d);
}

struct sl_detect *sl_detect_start(const char *path, const char *group, sl_detect_cb on_detection,
                                  void *ctx, char *err, size_t errlen)
{
    struct sl_detect *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(d);
        return NULL;
    }
    d->fd = d->stop_pipe[0] = d->stop_pipe[1] = -1;
    d->cb = on_detection;
    d->ctx = ctx;
    json_init(&d->reply);
    if (make_socket(d, group, err, errlen) != 0) {
        detect_free(d);
        return NULL;
    }
    if (pipe2(d->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        unlink(d->path);
        detect_free(d);
        return NULL;
    }
    int rc = sl_thread_start(&d->thread, serve, d);
    if (rc != 0) {
        snprintf(err, errlen, "detection thread: %s", strerror(rc));
        unlink(d->path);
        detect_free(d);
        return NULL;
    }
    return d;
}

void sl_detect_stop(struct sl_detect *d)
{
    if (d == NULL)
        return;
    while (write(d->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(d->thread, NULL);
    sl_usock_unlink(d->path, d->dev, d->ino);
    detect_free(d);
}

void sl_detect_stats(const struct sl_detect *d, struct sl_detect_stats *out)
{
    out->accepted = __atomic_load_n(&d->accepted, __ATOMIC_RELAXED);
    out->malformed = __atomic_load_n(&d->malformed, __ATOMIC_RELAXED);
    out->refused = __atomic_load_n(&d->refused, __ATOMIC_RELAXED);
    out->clients = __atomic_load_n(&d->connected, __ATOMIC_RELAXED);
}
