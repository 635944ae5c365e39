/*
 * HTTP/1.1 client for the Docker Engine API on its unix socket (GET, and
 * requests with a body for exec and archives),
 * keep-alive, bodies framed by Content-Length, chunked or the end of the
 * connection. Used by the container map's thread alone: every wait polls a
 * stop descriptor too, so the map can end the thread at any time.
 * Internal to appliance/.
 */
#ifndef SL_DOCKER_API_H
#define SL_DOCKER_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sl_buf.h"

#define DOCKER_API_PREFIX "/v1.41"

struct docker_http {
    int fd;
    int stop_fd;    /* readable when the caller must give up; -1 for none */
    int timeout_ms; /* per wait; -1 waits forever (the event stream) */
    char in[16384];
    size_t in_off, in_len;
    /* Framing of the body being read. */
    int chunked, until_eof, body_done, keep_alive;
    uint64_t remaining; /* bytes left in the body or the current chunk */
    int chunk_crlf;     /* a chunk's data ended: its CRLF comes next */
};

int docker_connect(struct docker_http *h, const char *sock_path, int stop_fd, int timeout_ms,
                   char *err, size_t errlen);
void docker_close(struct docker_http *h);

/* Sends a request (body with its type, or none) and reads the status line
 * and headers. */
int docker_request_begin(struct docker_http *h, const char *method, const char *target,
                         const char *content_type, const void *body, size_t bodylen, int *status,
                         char *err, size_t errlen);
/* Sends GET target and reads the status line and headers. */
int docker_get_begin(struct docker_http *h, const char *target, int *status, char *err,
                     size_t errlen);
/* Appends the next body bytes to out: >0 bytes, 0 at the end of the body,
 * -1 on error (out full counts as one). */
ssize_t docker_body_read(struct docker_http *h, struct sl_buf *out, char *err, size_t errlen);
/* A whole GET: status and body (appended to body). 0 or -1. */
int docker_get(struct docker_http *h, const char *target, int *status, struct sl_buf *body,
               char *err, size_t errlen);

/* One whole request on a connection of its own (reply body appended to
 * reply, at most its limit): exec, archives, stop. 0 or -1. */
#define DOCKER_CALL_TIMEOUT_MS 20000
int docker_call(const char *sock, const char *method, const char *target, const char *ctype,
                const void *body, size_t len, int *status, struct sl_buf *reply, char *err,
                size_t errlen);

/* Percent-encodes s for a query string into out. 0, or -1 if it does not fit. */
int docker_urlencode(const char *s, char *out, size_t outlen);

#endif
