/*
 * HTTP/1.x over the two reassembled byte streams of one flow (internal to dpi).
 *
 * The parser finds out by itself which stream carries requests (a request
 * line) and which carries responses (a status line), so a capture that starts
 * mid-flow or a flow first seen from the server still parses. It pairs
 * responses with requests in order (keep-alive, pipelining), knows which
 * responses have no body (HEAD, 1xx, 204, 304, CONNECT 2xx), and frames bodies
 * by Content-Length, chunked encoding or the end of the stream. Body bytes
 * are handed out transfer-decoded (de-chunked) but not content-decoded.
 *
 * Pure and incremental: bytes can arrive in pieces of any size, including
 * one byte at a time; nothing is read past what was given; memory per flow is
 * bounded (HTTP_MAX_LINE per header line, HTTP_MAX_HEAD per message head,
 * HTTP_MAX_PENDING requests waiting for their responses).
 */
#ifndef DPI_HTTP_H
#define DPI_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_LINE    8192
#define HTTP_MAX_HEAD    65536
#define HTTP_MAX_HEADERS 128
#define HTTP_MAX_PENDING 32

enum http_framing {
    HTTP_BODY_NONE = 0,
    HTTP_BODY_LENGTH,  /* Content-Length bytes follow */
    HTTP_BODY_CHUNKED, /* chunked transfer coding */
    HTTP_BODY_EOF,     /* response delimited by the end of the stream */
};

/* A request as remembered for pairing with its response. */
struct http_request_info {
    char method[32];
    char uri[2048]; /* cut if longer */
    char host[256]; /* Host header, "" if absent */
    char user_agent[256];
};

/* A parsed message head; pointers are valid only during the head callback. */
struct http_head {
    int is_request;
    int version_minor; /* HTTP/1.x */
    /* requests */
    const char *method;
    const char *uri;
    /* responses */
    int status;
    const struct http_request_info *request; /* the request this answers, or NULL */
    /* headers of interest (NULL when absent; repeated ones: the first) */
    const char *host;
    const char *user_agent;
    const char *content_type;
    const char *content_encoding; /* raw value, e.g. "gzip" */
    int64_t content_length;       /* -1 when absent */
    enum http_framing framing;
    int tunnel; /* 101 or CONNECT 2xx: after this message the stream is not HTTP */
};

enum http_end {
    HTTP_END_OK = 0,    /* message complete */
    HTTP_END_TRUNCATED, /* the stream ended or had a gap inside the message */
    HTTP_END_ERROR,     /* malformed framing: parsing of this direction stops */
};

struct http_callbacks {
    /* A message head is complete; its body (if any) follows. */
    void (*head)(void *ctx, int dir, const struct http_head *h);
    /* Transfer-decoded body bytes of the current message of dir. */
    void (*body)(void *ctx, int dir, const uint8_t *p, size_t n);
    /* The current message of dir ended; why is set unless how == HTTP_END_OK. */
    void (*end)(void *ctx, int dir, enum http_end how, const char *why);
    /* Bytes of dir that a receiver may read otherwise than this parser
     * does, or cannot be read at all (why says which); parsing goes on
     * with the reading that hides the least. */
    void (*anomaly)(void *ctx, int dir, const char *why);
};

struct http_parser; /* opaque; one per flow */

/* dir is 0 or 1 (the two streams of the flow). */
struct http_parser *http_parser_new(const struct http_callbacks *cb, void *ctx);
void http_parser_free(struct http_parser *p);

/* Feeds stream bytes of dir. */
void http_parser_feed(struct http_parser *p, int dir, const uint8_t *data, size_t len);
/* len bytes of dir are missing: a body of known length skips them (and ends
 * HTTP_END_TRUNCATED); anywhere else the direction loses sync and stops. */
void http_parser_gap(struct http_parser *p, int dir, uint64_t len);
/* dir ended: an EOF-delimited body ends OK, any other open message ends
 * HTTP_END_TRUNCATED. */
void http_parser_eof(struct http_parser *p, int dir);

/* 1 while dir is (or may still turn out to be) HTTP; 0 once it is known not
 * to be, it became a tunnel, or it stopped on an error. */
int http_parser_active(const struct http_parser *p, int dir);
/* 1 while a message of dir has begun (part of its start line included)
 * and not ended. */
int http_parser_mid_message(const struct http_parser *p, int dir);
/* Which dir carries requests: 0 or 1, or -1 while unknown. */
int http_parser_request_dir(const struct http_parser *p);
/* Why parsing of dir stopped, or NULL. */
const char *http_parser_error(const struct http_parser *p, int dir);

#endif
