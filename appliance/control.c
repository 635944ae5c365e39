/*
 * The control socket: one thread, one connection at a time. Every exchange is
 * one short command line and one JSON reply, so serving connections in turn is
 * enough; what keeps a stuck or hostile client from holding the daemon is the
 * deadline on each connection (CONTROL_CONN_MS) and the cap on the request
 * (CONTROL_MAX_REQUEST), not concurrency.
 *
 * The socket is created 0600 in a 0755 folder: only root (the daemon's user)
 * may talk to it, and the peer's uid is checked again on every connection.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
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

#include "log.h"
#include "sl_sys.h"
#include "usock.h"

#define CONTROL_MAX_REQUEST 1024       /* one command line, arguments included */
#define CONTROL_MAX_REPLY   (16 << 20) /* a container list on a big host stays far below */
#define CONTROL_CONN_MS     2000       /* a client has this long to send and to read */

struct sl_control {
    char *path;
    int fd;
    int stop_pipe[2];
    dev_t dev; /* the socket file we made, so stop removes only ours */
    ino_t ino;
    struct sl_control_ops ops;
    pthread_t thread;
    struct json reply;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before deadline, at least 0. */
static int left_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

/*
 * Connects to path within timeout_ms. Returns the socket, or -1 with errno
 * (ENOENT or ECONNREFUSED: nobody listens; ETIMEDOUT).
 */
static int connect_to(const char *path, int timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (sl_usock_addr(&sun, path, err, errlen) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return fd;
    /* A full backlog gives EAGAIN on a non-blocking Unix socket: retry until
     * the deadline rather than wait on POLLOUT, which Unix sockets do not
     * signal for a pending connect. */
    int64_t deadline = now_ms() + timeout_ms;
    while (errno == EAGAIN && left_ms(deadline) > 0) {
        poll(NULL, 0, 10);
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
            return fd;
    }
    int saved = errno == EAGAIN ? ETIMEDOUT : errno;
    snprintf(err, errlen, "%s: %s", path, strerror(saved));
    close(fd);
    errno = saved;
    return -1;
}

/* Writes all of buf before the deadline; -1 on error or timeout. */
static int write_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int ms = left_ms(deadline);
        if (ms == 0 || poll(&p, 1, ms) <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* --- server ---------------------------------------------------------------- */

static void reply_error(struct json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply_error(struct json *j, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_reset(j);
    json_object_begin(j, NULL);
    json_bool(j, "ok", 0);
    json_string(j, "error", msg);
    json_object_end(j);
}

/* Runs one command line (NUL-terminated, no newline) into c->reply. */
static void run_command(struct sl_control *c, char *line)
{
    static const char *const blanks = " \t\r";
    char *save = NULL;
    char *cmd = strtok_r(line, blanks, &save);
    char *extra = cmd ? strtok_r(NULL, blanks, &save) : NULL;
    int (*op)(void *, struct json *, char *, size_t) = NULL;
    char err[512] = "";

    if (cmd == NULL) {
        reply_error(&c->reply, "empty command");
        return;
    }
    if (strcmp(cmd, "status") == 0)
        op = c->ops.status;
    else if (strcmp(cmd, "containers") == 0)
        op = c->ops.containers;
    else if (strcmp(cmd, "reload") == 0)
        op = c->ops.reload;
    if (op == NULL && c->ops.command) {
        char *words[8] = {cmd};
        int n = 1;
        for (char *w = extra; w && n < 8; w = strtok_r(NULL, blanks, &save))
            words[n++] = w;
        json_reset(&c->reply);
        json_object_begin(&c->reply, NULL);
        json_bool(&c->reply, "ok", 1);
        int rc = c->ops.command(c->ops.ctx, n, words, &c->reply, err, sizeof(err));
        if (rc == 0) {
            json_object_end(&c->reply);
            if (c->reply.failed || c->reply.depth != 0 || c->reply.len > CONTROL_MAX_REPLY)
                reply_error(&c->reply, "%s: the reply could not be built", cmd);
            return;
        }
        if (err[0] != '\0') {
            reply_error(&c->reply, "%s", err);
            return;
        }
    }
    /* sluicectl tells an older daemon by this wording: keep it. */
    if (op == NULL) {
        reply_error(&c->reply, "unknown command '%.64s'", cmd);
        return;
    }
    if (extra) {
        reply_error(&c->reply, "%s takes no arguments", cmd);
        return;
    }
    json_reset(&c->reply);
    json_object_begin(&c->reply, NULL);
    json_bool(&c->reply, "ok", 1);
    if (op(c->ops.ctx, &c->reply, err, sizeof(err)) != 0) {
        reply_error(&c->reply, "%s", err[0] ? err : "failed");
        return;
    }
    json_object_end(&c->reply);
    if (c->reply.failed || c->reply.depth != 0 || c->reply.len > CONTROL_MAX_REPLY)
        reply_error(&c->reply, "%s: the reply could not be built", cmd);
}

/*
 * Reads one line from a client before the deadline or a stop request. Returns
 * its length (newline excluded), -1 to drop the client silently (gone, too
 * slow, stopping), -2 when the line is longer than the cap.
 */
static int read_request(struct sl_control *c, int fd, char *buf, size_t cap, int64_t deadline)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n > 0) {
            char *nl = memchr(buf + len, '\n', (size_t)n);
            len += (size_t)n;
            if (nl) {
                *nl = '\0';
                return (int)(nl - buf);
            }
            if (len == cap - 1)
                return -2;
            continue;
        }
        if (n == 0) { /* a client may end its line with shutdown instead of '\n' */
            buf[len] = '\0';
            return len > 0 ? (int)len : -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -1;
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                              {.fd = c->stop_pipe[0], .events = POLLIN}};
        int ms = left_ms(deadline);
        if (ms == 0 || poll(p, 2, ms) <= 0 || p[1].revents)
            return -1;
    }
}

static int peer_allowed(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return 0;
    return cred.uid == 0 || cred.uid == geteuid();
}

static void serve_client(struct sl_control *c, int fd)
{
    char line[CONTROL_MAX_REQUEST + 1];
    int64_t deadline = now_ms() + CONTROL_CONN_MS;

    if (!peer_allowed(fd)) {
        log_warnx("%s: refused a client that is neither root nor sluiced's user", c->path);
        return;
    }
    int n = read_request(c, fd, line, sizeof(line), deadline);
    if (n == -1)
        return;
    if (n == -2)
        reply_error(&c->reply, "request longer than %d bytes", CONTROL_MAX_REQUEST);
    else
        run_command(c, line);
    if (write_all(fd, c->reply.buf, c->reply.len, deadline) != 0 ||
        write_all(fd, "\n", 1, deadline) != 0)
        log_debug("%s: a client left before its reply: %s", c->path, strerror(errno));
}

static void *serve(void *arg)
{
    struct sl_control *c = arg;
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                          {.fd = c->stop_pipe[0], .events = POLLIN}};

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_warn("%s: poll", c->path);
            break;
        }
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("%s: accept", c->path);
            /* Out of descriptors: back off instead of spinning on POLLIN. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                poll(NULL, 0, 100);
            continue;
        }
        serve_client(c, fd);
        close(fd);
    }
    return NULL;
}

static int make_socket(struct sl_control *c, char *err, size_t errlen)
{
    c->fd = sl_usock_listen(c->path, 0600, (gid_t)-1, 16, &c->dev, &c->ino, err, errlen);
    return c->fd < 0 ? -1 : 0;
}

static void control_free(struct sl_control *c)
{
    if (c->fd >= 0)
        close(c->fd);
    for (int i = 0; i < 2; i++)
        if (c->stop_pipe[i] >= 0)
            close(c->stop_pipe[i]);
    json_free(&c->reply);
    free(c->path);
    free(c);
}

struct sl_control *sl_control_start(const char *path, const struct sl_control_ops *ops, char *err,
                                    size_t errlen)
{
    struct sl_control *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    c->fd = c->stop_pipe[0] = c->stop_pipe[1] = -1;
    c->ops = *ops;
    json_init(&c->reply);
    if (make_socket(c, err, errlen) != 0) {
        control_free(c);
        return NULL;
    }
    if (pipe2(c->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        unlink(c->path);
        control_free(c);
        return NULL;
    }
    int rc = sl_thread_start(&c->thread, serve, c);
    if (rc != 0) {
        snprintf(err, errlen, "control thread: %s", strerror(rc));
        unlink(c->path);
        control_free(c);
        return NULL;
    }
    return c;
}

void sl_control_stop(struct sl_control *c)
{
    if (c == NULL)
        return;
    while (write(c->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(c->thread, NULL);
    sl_usock_unlink(c->path, c->dev, c->ino);
    control_free(c);
}

/* --- client ---------------------------------------------------------------- */

char *sl_control_call(const char *path, const char *cmd, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t cmdlen = strlen(cmd);

    if (cmdlen == 0 || cmdlen > CONTROL_MAX_REQUEST - 1 || memchr(cmd, '\n', cmdlen)) {
        snprintf(err, errlen, "a command is one line of at most %d bytes", CONTROL_MAX_REQUEST - 1);
        return NULL;
    }
    int fd = connect_to(path, timeout_ms, err, errlen);
    if (fd < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            snprintf(err, errlen, "sluiced is not running (nothing listens on %s)", path);
        return NULL;
    }
    char line[CONTROL_MAX_REQUEST + 1];
    memcpy(line, cmd, cmdlen);
    line[cmdlen] = '\n';
    /* A server that answered before reading all of it (an error) has closed
     * its end: its reply is still there to read. */
    if (write_all(fd, line, cmdlen + 1, deadline) != 0 && errno != EPIPE) {
        snprintf(err, errlen, "%s: cannot send the command: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 == cap) {
            if (cap > CONTROL_MAX_REPLY) {
                snprintf(err, errlen, "%s: reply longer than %d bytes", path, CONTROL_MAX_REPLY);
                break;
            }
            char *b = realloc(buf, cap * 2);
            if (b == NULL)
                break;
            buf = b;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0) {
            close(fd);
            buf[len] = '\0';
            if (len == 0) {
                snprintf(err, errlen, "%s: sluiced closed the connection without a reply", path);
                free(buf);
                return NULL;
            }
            return buf;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ms = left_ms(deadline);
        if (ms == 0 || poll(&p, 1, ms) == 0) {
            snprintf(err, errlen, "%s: no reply from sluiced within %d ms", path, timeout_ms);
            break;
        }
    }
    if (buf == NULL)
        snprintf(err, errlen, "out of memory");
    free(buf);
    close(fd);
    return NULL;
}
