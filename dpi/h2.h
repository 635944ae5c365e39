/*
 * HTTP/2 in clear text (h2c) over the two byte streams of a flow (internal
 * to dpi): prior knowledge (the client opens with the preface "PRI *
 * HTTP/2.0\r\n\r\nSM\r\n\r\n") or an HTTP/1.1 Upgrade: h2c answered by 101.
 *
 * Framing, HPACK and stream states are libnghttp2's: an nghttp2 server
 * session reads the client's stream and a client session the server's, so
 * each side is read by the code many real endpoints use. Neither session
 * ever sends: what they would write is dropped; what one side tells the
 * other (SETTINGS, new streams, ends, resets) is mirrored into the session
 * that reads the other side, so both keep the state the real endpoints keep.
 *
 * Direction 0 is the client's stream, 1 the server's. Feed the two
 * directions in the order the bytes travelled (a SETTINGS ACK must come
 * after the SETTINGS it answers, a response after its request), in pieces
 * of any size. Memory is bounded: at most H2_MAX_STREAMS streams are
 * tracked, header values of interest are cut to fixed sizes, nghttp2's
 * HPACK table to H2_MAX_HEADER_TABLE bytes.
 */
#ifndef DPI_H2_H
#define DPI_H2_H

#include <stddef.h>
#include <stdint.h>

#define H2_MAX_STREAMS      1024
#define H2_MAX_HEADER_TABLE 65536

/* A complete header block of a request, a push promise or a final response
 * (1xx responses and trailers are not reported). Strings are NUL-terminated,
 * cut to their buffers (truncated says so), NULL when absent; valid during
 * the callback only. */
struct h2_head {
    int push; /* a PUSH_PROMISE from the server: the request it promises */
    const char *method, *path, *authority, *scheme; /* requests */
    int status;                                     /* responses; 0 for requests */
    const char *content_type;
    const char *content_encoding; /* every content-encoding field, joined with ", " */
    int64_t content_length;       /* -1 when absent or not a number */
    int truncated;                /* a value of interest was longer than its buffer */
};

enum h2_end {
    H2_END_COMPLETE = 0, /* END_STREAM */
    H2_END_RESET,        /* RST_STREAM from either side, GOAWAY, or an error */
    H2_END_TRUNCATED,    /* the stream of that direction ended first (h2_eof) */
};

struct h2_callbacks {
    void (*headers)(void *ctx, int dir, int32_t stream_id, const struct h2_head *h);
    /* DATA payload of a stream, padding removed, flow control ignored. */
    void (*data)(void *ctx, int dir, int32_t stream_id, const uint8_t *p, size_t n);
    /* Once per (dir, stream) whose headers or data were reported. */
    void (*end)(void *ctx, int dir, int32_t stream_id, enum h2_end how);
    /* Bytes of dir a receiver may read otherwise, or cannot read at all;
     * why is valid during the call only. */
    void (*anomaly)(void *ctx, int dir, const char *why);
};

struct h2_session;

/* Prior knowledge: both streams from their first byte. */
struct h2_session *h2_new(const struct h2_callbacks *cb, void *ctx);
/* Upgrade: fed from the first byte after the request head (its body, if
 * any, excluded) and after the 101 response head. http2_settings is the
 * request's HTTP2-Settings header value (base64url); head_request is
 * nonzero for a HEAD request. The request is stream 1 (its headers were
 * HTTP/1.1: only the response is reported). NULL when out of memory or
 * when the value is not a SETTINGS payload. */
struct h2_session *h2_new_upgrade(const struct h2_callbacks *cb, void *ctx,
                                  const char *http2_settings, int head_request);
void h2_free(struct h2_session *s);

void h2_feed(struct h2_session *s, int dir, const uint8_t *p, size_t n);
/* dir ended: every stream half of dir still open ends H2_END_TRUNCATED. */
void h2_eof(struct h2_session *s, int dir);
/* 1 while dir is being decoded; 0 after a connection error. */
int h2_active(const struct h2_session *s, int dir);

/* Whether p starts the client preface: 1 when the 24 bytes are all there,
 * -1 while p is a shorter prefix of it, 0 when it is not. */
int h2_preface_match(const uint8_t *p, size_t n);

#endif
