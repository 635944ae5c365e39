/*
 * HTTP/1.x over the two reassembled byte streams of one flow (internal to dpi).
 *
 * The parser finds out by itself which stream carries requests (a request
 * line) and which carries responses (a status line), so a capture that starts
 * mid-flow or a flow first seen from the server still parses. It pairs
 * responses with requests in order (keep-alive, pipelining), knows which
 * responses have no body (HEAD, 1xx, 204, 304), and frames bodies by
 * Content-Length, chunked encoding or the end of the stream. Body bytes are
 * handed out transfer-decoded (de-chunked) but not content-decoded.
 *
 * Lenient like the receivers: it reads what curl, wget and Python read
 * (odd versions, "200OK", tabs, lines without colon, NUL, bare CR, CR CR LF,
 * big heads, "+68", "0x22" chunk sizes, HTTP/0.9 responses, ...). Where
 * those clients would frame a body differently (two Content-Lengths,
 * "chunked, identity", an unrequested 101, ...), it takes the reading that
 * hides the least (the longest body, or to the end of the stream) and calls
 * anomaly(). What it cannot read at all in a stream known to be HTTP is an
 * anomaly too, and the rest of that stream is handed out as the body of a
 * synthetic message (head->raw), so every byte still reaches body(). Only a
 * stream that never looked like HTTP (TLS, SSH, binary) is dropped, quietly,
 * on its first bytes.
 *
 * Tunnels: a 101 answering an Upgrade request, a 2xx answering CONNECT, and
 * the HTTP/2 client preface end HTTP parsing of both streams;
 * http_parser_tunnel() says what the streams carry from where on.
 *
 * Pure and incremental: bytes can arrive in pieces of any size, including
 * one byte at a time, with the same callbacks; nothing is read past what was
 * given; memory per flow is bounded (HTTP_MAX_LINE per line, kept header
 * values cut, HTTP_MAX_PENDING requests waiting for their responses).
 */
#ifndef DPI_HTTP_H
#define DPI_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_LINE    (128 * 1024)  /* one line (curl takes 100 KiB) */
#define HTTP_MAX_HEAD    (1024 * 1024) /* raw bytes of a head or of trailers */
#define HTTP_MAX_PENDING 32

enum http_framing {
    HTTP_BODY_NONE = 0,
    HTTP_BODY_LENGTH,  /* Content-Length bytes follow */
    HTTP_BODY_CHUNKED, /* chunked transfer coding */
    HTTP_BODY_EOF,     /* body delimited by the end of the stream */
};

/* What the streams carry once HTTP ends (struct http_head.tunnel). */
enum http_tunnel {
    HTTP_TUNNEL_NONE = 0,
    HTTP_TUNNEL_WEBSOCKET, /* 101 to "Upgrade: websocket" */
    HTTP_TUNNEL_H2C,       /* 101 to "Upgrade: h2c" */
    HTTP_TUNNEL_H2C_PRIOR, /* the client sent the HTTP/2 preface */
    HTTP_TUNNEL_CONNECT,   /* 2xx to CONNECT: any protocol, often TLS */
    HTTP_TUNNEL_OTHER,     /* 101 to another Upgrade token */
};

/* A request as remembered for pairing with its response. */
struct http_request_info {
    char method[32];
    char uri[2048]; /* cut if longer */
    char host[256]; /* Host header, "" if absent */
    char user_agent[256];
    int upgrade; /* enum http_tunnel its Upgrade header asks for, or NONE */
};

/* A parsed message head; pointers are valid only during the head callback. */
struct http_head {
    int is_request;
    int version_major, version_minor; /* 1.1; cut to 0..99; 0.9 for HTTP/0.9; 2.-1 for HTTP/2 */
    /* A synthetic head: the rest of the stream could not be parsed after an
     * anomaly, so it follows as an EOF-delimited body; nothing else is set
     * but is_request, request (responses) and framing. */
    int raw;
    int http09; /* a response without status line: the stream is its body */
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
    const char *content_range;    /* of a 206 response: "bytes 0-99/1000" */
    const char *ws_extensions;    /* Sec-WebSocket-Extensions (a 101's) */
    const char *http2_settings;   /* HTTP2-Settings (an Upgrade: h2c request's) */
    const char *content_encoding; /* every Content-Encoding value, joined by ", " */
    /* Transfer codings other than chunked and identity, in order, joined by
     * ", " ("gzip" for "gzip, chunked"): decode them before the content
     * codings. NULL when there are none. */
    const char *transfer_coding;
    int64_t content_length; /* -1 when absent or not used for framing */
    enum http_framing framing;
    int tunnel; /* enum http_tunnel: after this message both streams are one */
};

enum http_end {
    HTTP_END_OK = 0,    /* message complete */
    HTTP_END_TRUNCATED, /* the stream ended or had a gap inside the message */
    HTTP_END_ERROR,     /* unreadable: a raw message with the rest follows */
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

/* Both streams are seen from their first byte (the flow's handshake was
 * seen): a first response that does not start with "HTTP" is then HTTP/0.9,
 * a body to the end of the stream, as wget reads it. Without this call (a
 * capture may begin inside a response body) such a stream is not HTTP. */
void http_parser_from_start(struct http_parser *p);

/* Feeds stream bytes of dir. */
void http_parser_feed(struct http_parser *p, int dir, const uint8_t *data, size_t len);
/* len bytes of dir are missing: a body of known length or to the end of the
 * stream skips them (and ends HTTP_END_TRUNCATED); anywhere else the message
 * ends HTTP_END_TRUNCATED and the rest of dir follows as a raw message. */
void http_parser_gap(struct http_parser *p, int dir, uint64_t len);
/* dir ended: an EOF-delimited body ends OK, any other open message ends
 * HTTP_END_TRUNCATED. */
void http_parser_eof(struct http_parser *p, int dir);

/* 1 while dir is (or may still turn out to be) HTTP, including while the
 * rest of it is delivered as a raw body or while it waits for the answer to
 * a CONNECT or Upgrade request; 0 once it is known not to be HTTP, it became
 * a tunnel, or it ended. */
int http_parser_active(const struct http_parser *p, int dir);
/* 1 while a message of dir has begun (part of its start line included)
 * and not ended. */
int http_parser_mid_message(const struct http_parser *p, int dir);
/* Which dir carries requests: 0 or 1, or -1 while unknown. */
int http_parser_request_dir(const struct http_parser *p);
/* Why dir stopped or went raw, or NULL. */
const char *http_parser_error(const struct http_parser *p, int dir);
/* 1 once the flow is a tunnel: *kind (enum http_tunnel) says what it
 * carries, start[d] at which offset of stream d (bytes fed and gaps since
 * its beginning) the tunnel's bytes begin. Both streams are no longer
 * parsed from there: hand them to the decoder of kind. */
int http_parser_tunnel(const struct http_parser *p, int *kind, uint64_t start[2]);

#endif
