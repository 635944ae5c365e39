/*
 * Shared between the files of the dpi module only.
 */
#ifndef DPI_INTERNAL_H
#define DPI_INTERNAL_H

#include <ndpi_api.h>
#include <openssl/evp.h>

#include "dpi.h"
#include "codings.h"
#include "http.h"
#include "join.h"
#include "sl_buf.h"

struct dpi_engine {
    struct rules_policy *policy;
    struct ndpi_detection_module_struct *ndpi;
    struct rules_scanner *scanner; /* NULL if the policy has no YARA rules */
    dpi_event_fn emit;
    void *emit_ctx;
    uint64_t alert_risks;        /* nDPI risks that raise alerts */
    uint8_t alert_category[256]; /* nDPI categories that raise alerts */
    uint64_t body_held;          /* bytes held by body buffers of all flows */
    int inline_scans;            /* scan bodies while they arrive */
    int tls_policy;              /* tls.quic and tls.other_ports apply */
    int window_rules;            /* the policy has rules a piece of a body can prove */
    struct join_table *joins;    /* parts of objects fetched in 206 responses */
    struct dpi_engine_stats stats;
};

/* --- bodies (body.c) ------------------------------------------------------ */

/* Called with each full window of a body longer than the policy's body
 * limit, before the window moves on. */
typedef void (*body_window_fn)(void *ctx, const uint8_t *p, size_t n);

/* One HTTP body on its way to YARA: decoded, hashed, kept up to the
 * policy's body limit; longer ones pass in windows of that size. */
struct dpi_body {
    struct dpi_engine *engine;
    struct codings *codings; /* the transfer and content codings to undo */
    int raw;                 /* the codings cannot be undone: kept as received */
    char encoding[64];       /* the codings, as the headers said, for events */
    int chunked;
    EVP_MD_CTX *sha;       /* NULL once hashing stopped */
    struct sl_buf keep;    /* bytes for the scan: the body, or its current window */
    uint64_t size;         /* decoded bytes seen */
    uint64_t wire;         /* transfer-decoded bytes received */
    int cut;               /* longer than one window */
    uint64_t windows;      /* full windows handed to window() so far */
    uint64_t window_start; /* offset of keep.data[0] in the decoded body */
    int unread;            /* out of memory: the rest of the body is not inspected */
    body_window_fn window;
    void *window_ctx;
    int scanned;         /* the scan at the end ran */
    size_t streamed;     /* kept bytes already seen by scans while arriving */
    const char *problem; /* first problem met, or NULL */
    const char *anomaly; /* what cannot be read with certainty, or NULL */
    int anomaly_raised;
};

/* content_encoding: every Content-Encoding value, joined by ", ";
 * transfer_coding: the transfer codings other than chunked (NULL: none). */
void body_begin(struct dpi_engine *e, struct dpi_body *b, const char *content_encoding,
                const char *transfer_coding, int chunked);
/* Adds transfer-decoded (de-chunked) bytes; full windows go to b->window
 * (set it after body_begin). */
void body_feed(struct dpi_engine *e, struct dpi_body *b, const uint8_t *p, size_t n);
/* Finishes hashing; fills facts (sha256, size, state). */
void body_finish(struct dpi_engine *e, struct dpi_body *b, enum dpi_body_state state,
                 struct dpi_body_facts *facts);
/* Drops buffers (after the scan, or on flow end). */
void body_release(struct dpi_engine *e, struct dpi_body *b);

/* --- HTTP messages (flow.c) ------------------------------------------------ */

/* One HTTP message on its way through the engine: its facts for events and
 * its body. An HTTP/1 direction has one at a time; an HTTP/2 stream has
 * its own (tunnel.c). */
struct http_msg {
    struct dpi_flow *flow;
    int open;
    int is_request;
    int has_body;
    int raw; /* the unparsed rest of a stream, not a message as sent */
    int status;
    char method[32];
    char uri[2048];
    char host[256];
    char user_agent[256];
    char content_type[256];
    char content_range[96];
    char protocol[24];
    char problem[192];
    struct dpi_body body;
    uint64_t alerted[RULES_MAX_MATCHES]; /* rules (hashed) that matched this body */
    int nalerted;
};

void flow_msg_head(struct dpi_flow *f, struct http_msg *m, int dir, const struct http_head *h);
void flow_msg_body(struct dpi_flow *f, struct http_msg *m, int dir, const uint8_t *p, size_t n);
void flow_msg_end(struct dpi_flow *f, struct http_msg *m, int dir, enum http_end how,
                  const char *why);
/* The body of m so far, scanned as if it ended now, every rule acting: a
 * feeder lets the held end of an unfinished body go only after this. */
void flow_msg_judge_prefix(struct dpi_flow *f, struct http_msg *m, int dir);
/* A whole message of a tunnel (a WebSocket message): scanned, unpacked. */
void flow_scan_message(struct dpi_flow *f, struct http_msg *m, int dir, const uint8_t *p, size_t n,
                       const char *what);
void flow_anomaly(struct dpi_flow *f, int dir, const char *layer, const char *reason);
struct dpi_engine *flow_engine(const struct dpi_flow *f);
/* What follows belongs to HTTP/2 stream `stream` (0: to no stream), for
 * per-stream blocks. */
void flow_stream_context(struct dpi_flow *f, uint32_t stream);

/* --- tunnels after an Upgrade or a prior-knowledge preface (tunnel.c) ----- */

struct dpi_tunnel;

/* kind: enum http_tunnel (WEBSOCKET, H2C, H2C_PRIOR). client_dir: the flow
 * direction carrying requests. upgrade: the request that asked for it
 * (facts for events; its method says HEAD). NULL if the tunnel cannot be
 * followed (then an anomaly was raised). */
struct dpi_tunnel *tunnel_new(struct dpi_flow *f, int kind, int client_dir,
                              const struct http_msg *upgrade, const char *ws_extensions,
                              const char *h2_settings, int h2_head);
void tunnel_feed(struct dpi_tunnel *t, int dir, const uint8_t *p, size_t n);
void tunnel_eof(struct dpi_tunnel *t, int dir);
/* The body so far of HTTP/2 stream id of flow direction dir, judged as if
 * it ended now (flow_msg_judge_prefix). */
void tunnel_judge_prefix(struct dpi_tunnel *t, int dir, uint32_t id);
int tunnel_active(const struct dpi_tunnel *t, int dir);
void tunnel_free(struct dpi_tunnel *t);

/* --- ndpi glue (engine.c) ------------------------------------------------- */

/* Fills name, id and category strings of proto. */
void engine_describe(struct dpi_engine *e, ndpi_protocol proto, char *name, size_t namelen,
                     char *id, size_t idlen, const char **category);

#endif
