/*
 * The Docker Engine API over its unix socket, as little HTTP as it needs.
 *
 * Docker answers small requests with Content-Length and large or streamed
 * ones (the event stream) with chunked encoding, so both are decoded here,
 * incrementally: the event stream never ends, and its chunks need not match
 * the JSON objects inside. Every wait goes through poll() with the caller's
 * stop descriptor, so a stuck or silent Docker never holds the map's thread
 * past its shutdown.
 */
#include "docker_api.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int failf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int docker_connect(struct docker_http *h, const char *sock_path, int stop_fd, int timeout_ms,
                   char *err, size_t errlen)
{
    struct sockaddr_un sun;

    memset(h, 0, sizeof(*h));
    h->fd = -1;
    h->stop_fd = stop_fd;
    h->timeout_ms = timeout_ms;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(sock_path) >= sizeof(sun.sun_path))
        return failf(err, errlen, "%s: path too long", sock_path);
    memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
    h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd == -1)
        return failf(err, errlen, "socket: %s", strerror(errno));
    /* A local connect does not wait on the peer: no need to make it async. */
    if (connect(h->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        int e = errno;
        docker_close(h);
        return failf(err, errlen, "connect %s: %s", sock_path, strerror(e));
    }
    return 0;
}

void docker_close(struct docker_http *h)
{
    if (h->fd != -1)
        close(h->fd);
    h->fd = -1;
    h->in_off = h->in_len = 0;
}

/* Waits until fd is ready for events; -1 with err on stop, timeout or error. */
static int wait_fd(struct docker_http *h, short events, char *err, size_t errlen)
{
    struct pollfd pfd[2];
    int n;

    pfd[0].fd = h->fd;
    pfd[0].events = events;
    pfd[1].fd = h->stop_fd;
    pfd[1].events = POLLIN;
    for (;;) {
        n = poll(pfd, h->stop_fd >= 0 ? 2 : 1, h->timeout_ms);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return failf(err, errlen, "poll: %s", strerror(errno));
        if (n == 0)
            return failf(err, errlen, "no reply within %d ms", h->timeout_ms);
        if (h->stop_fd >= 0 && pfd[1].revents)
            return failf(err, errlen, "stopped");
        return 0;
    }
}

static int send_all(struct docker_http *h, const char *p, size_t n, char *err, size_t errlen)
{
    while (n > 0) {
        if (wait_fd(h, POLLOUT, err, errlen) != 0)
            return -1;
        ssize_t w = send(h->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == -1 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w == -1)
            return failf(err, errlen, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more into the input buffer: >0, 0 at the end of the connection, -1. */
static ssize_t fill(struct docker_http *h, char *err, size_t errlen)
{
    if (h->in_off > 0) {
        memmove(h->in, h->in + h->in_off, h->in_len - h->in_off);
        h->in_len -= h->in_off;
        h->in_off = 0;
    }
    if (h->in_len == sizeof(h->in))
        return failf(err, errlen, "header line too long");
    for (;;) {
        if (wait_fd(h, POLLIN, err, errlen) != 0)
            return -1;
        ssize_t r = recv(h->fd, h->in + h->in_len, sizeof(h->in) - h->in_len, MSG_DONTWAIT);
        if (r == -1 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r == -1)
            return failf(err, errlen, "recv: %s", strerror(errno));
        h->in_len += (size_t)r;
        return r;
    }
}

/* One line without its CRLF (or LF), NUL-terminated in place. */
static char *read_line(struct docker_http *h, char *err, size_t errlen)
{
    for (;;) {
        char *start = h->in + h->in_off;
        char *nl = memchr(start, '\n', h->in_len - h->in_off);
        if (nl) {
            h->in_off = (size_t)(nl + 1 - h->in);
            if (nl > start && nl[-1] == '\r')
                nl--;
            *nl = '\0';
            return start;
        }
        ssize_t r = fill(h, err, errlen);
        if (r == 0)
            failf(err, errlen, "connection closed mid-reply");
        if (r <= 0)
            return NULL;
    }
}

int docker_get_begin(struct docker_http *h, const char *target, int *status, char *err,
                     size_t errlen)
{
    return docker_request_begin(h, "GET", target, NULL, NULL, 0, status, err, errlen);
}

int docker_request_begin(struct docker_http *h, const char *method, const char *target,
                         const char *content_type, const void *body, size_t bodylen, int *status,
                         char *err, size_t errlen)
{
    char req[2048];
    char *line;
    int n, minor;

    if (content_type)
        n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: sluice\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     method, target, content_type, bodylen);
    else
        n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: sluice\r\n\r\n", method,
                     target);
    if (n < 0 || (size_t)n >= sizeof(req))
        return failf(err, errlen, "request target too long");
    if (send_all(h, req, (size_t)n, err, errlen) != 0)
        return -1;
    if (bodylen && send_all(h, body, bodylen, err, errlen) != 0)
        return -1;

    line = read_line(h, err, errlen);
    if (line == NULL)
        return -1;
    if (sscanf(line, "HTTP/1.%d %3d", &minor, status) != 2 || *status < 100 || *status > 999)
        return failf(err, errlen, "not an HTTP reply: %.60s", line);
    h->chunked = h->until_eof = h->body_done = h->chunk_crlf = 0;
    h->remaining = 0;
    h->keep_alive = minor >= 1;
    int have_length = 0;
    for (;;) {
        line = read_line(h, err, errlen);
        if (line == NULL)
            return -1;
        if (line[0] == '\0')
            break;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            return failf(err, errlen, "bad header line: %.60s", line);
        *colon = '\0';
        char *val = colon + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        if (strcasecmp(line, "Content-Length") == 0) {
            char *end;
            errno = 0;
            unsigned long long cl = strtoull(val, &end, 10);
            if (errno || end == val || *end != '\0' || val[0] == '-')
                return failf(err, errlen, "bad Content-Length: %.30s", val);
            h->remaining = cl;
            have_length = 1;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            if (strcasecmp(val, "chunked") != 0)
                return failf(err, errlen, "unsupported Transfer-Encoding: %.30s", val);
            h->chunked = 1;
        } else if (strcasecmp(line, "Connection") == 0) {
            h->keep_alive = strcasecmp(val, "close") != 0;
        }
    }
    if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200))
        h->body_done = 1;
    else if (h->chunked)
        h->remaining = 0;
    else if (!have_length)
        h->until_eof = 1, h->keep_alive = 0;
    else if (h->remaining == 0)
        h->body_done = 1;
    return 0;
}

/* Moves up to h->remaining buffered or received bytes into out. */
static ssize_t body_bytes(struct docker_http *h, struct sl_buf *out, char *err, size_t errlen)
{
    if (h->in_off == h->in_len) {
        h->in_off = h->in_len = 0;
        ssize_t r = fill(h, err, errlen);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (h->until_eof) {
                h->body_done = 1;
                return 0;
            }
            return failf(err, errlen, "connection closed mid-body");
        }
    }
    size_t n = h->in_len - h->in_off;
    if (!h->until_eof && n > h->remaining)
        n = (size_t)h->remaining;
    if (sl_buf_append(out, h->in + h->in_off, n) != n)
        return failf(err, errlen, "reply larger than %zu bytes", out->limit);
    h->in_off += n;
    if (!h->until_eof)
        h->remaining -= n;
    return (ssize_t)n;
}

ssize_t docker_body_read(struct docker_http *h, struct sl_buf *out, char *err, size_t errlen)
{
    char *line, *end;

    for (;;) {
        if (h->body_done)
            return 0;
        if (!h->chunked) {
            if (!h->until_eof && h->remaining == 0) {
                h->body_done = 1;
                return 0;
            }
            return body_bytes(h, out, err, errlen);
        }
        if (h->remaining > 0) {
            ssize_t r = body_bytes(h, out, err, errlen);
            if (r > 0 && h->remaining == 0)
                h->chunk_crlf = 1;
            return r;
        }
        if (h->chunk_crlf) {
            line = read_line(h, err, errlen);
            if (line == NULL)
                return -1;
            if (line[0] != '\0')
                return failf(err, errlen, "chunk not followed by CRLF");
            h->chunk_crlf = 0;
        }
        line = read_line(h, err, errlen);
        if (line == NULL)
            return -1;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        if (errno || end == line || (*end != '\0' && *end != ';' && *end != ' '))
            return failf(err, errlen, "bad chunk size: %.30s", line);
        if (size > 0) {
            h->remaining = size;
            continue;
        }
        /* Last chunk: skip the trailer up to its empty line. */
        do {
            line = read_line(h, err, errlen);
            if (line == NULL)
                return -1;
        } while (line[0] != '\0');
        h->body_done = 1;
        return 0;
    }
}

int docker_get(struct docker_http *h, const char *target, int *status, struct sl_buf *body,
               char *err, size_t errlen)
{
    ssize_t r;

    if (docker_get_begin(h, target, status, err, errlen) != 0)
        return -1;
    while ((r = docker_body_read(h, body, err, errlen)) > 0)
        ;
    return r == 0 ? 0 : -1;
}

int docker_urlencode(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (o + (plain ? 1 : 3) >= outlen)
            return -1;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

int docker_call(const char *sock, const char *method, const char *target, const char *ctype,
                const void *body, size_t len, int *status, struct sl_buf *reply, char *err,
                size_t errlen)
{
    struct docker_http h;

    if (docker_connect(&h, sock, -1, DOCKER_CALL_TIMEOUT_MS, err, errlen) != 0)
        return -1;
    int rc = docker_request_begin(&h, method, target, ctype, body, len, status, err, errlen);
    while (rc == 0) {
        ssize_t n = docker_body_read(&h, reply, err, errlen);
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
    }
    docker_close(&h);
    return rc;
}
