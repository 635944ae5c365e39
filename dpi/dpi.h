/*
 * dpi: the inspection engine.
 *
 * A flow is two byte streams plus packet metadata. Feeders (the NFQUEUE
 * workers, the TLS proxy, the capture reader) give the engine every packet of
 * a flow for nDPI classification and the reassembled, in-order bytes of each
 * direction for HTTP/1.x and TLS ClientHello parsing; bodies of both
 * directions are decoded (chunked, gzip, deflate), hashed and scanned with
 * YARA. Facts come back as events through one callback, and every call that
 * takes stream bytes returns the verdict for them.
 *
 * One engine per thread (it owns an nDPI module and a YARA scanner); nothing
 * here does I/O, locks or spawns threads.
 */
#ifndef DPI_H
#define DPI_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct dpi_engine;
struct dpi_flow;

/* Who a flow is: set by the feeder when the flow is created. "src" is the
 * source of the first packet seen, normally the client. */
struct dpi_flow_meta {
    uint64_t flow_id;
    uint8_t family; /* 4 or 6 */
    uint8_t l4proto;
    uint16_t vlan;
    uint8_t src[16], dst[16]; /* IPv4 in the first 4 bytes */
    uint16_t sport, dport;
    const char *tunnel; /* "GTP", "TZSP", "CAPWAP" or NULL */
    int from_start;     /* the feeder saw the connection open: streams start at byte 0 */
    void *user;         /* feeder's own data, handed back in events */
};

/* Stream directions, relative to the first packet of the flow. */
enum dpi_dir { DPI_DIR_FWD = 0, DPI_DIR_REV = 1 };

enum dpi_verdict { DPI_PASS = 0, DPI_BLOCK = 1 };

/* --- facts ----------------------------------------------------------------- */

struct dpi_ndpi_facts {
    const char *proto;    /* "TLS.Facebook", as ndpiReader prints it */
    const char *proto_id; /* "91.119" */
    const char *category; /* "SocialNetwork" */
    const char *confidence;
    uint64_t risks; /* bit i = nDPI risk i */
    int guessed;    /* classified by giving up (ports, IPs), not DPI */
};

struct dpi_http_facts {
    const char *method; /* NULL when only a response was seen */
    const char *uri;
    const char *hostname;
    const char *protocol; /* "HTTP/1.1", "HTTP/2" */
    const char *user_agent;
    const char *content_type; /* of the message whose body is reported */
    int status;               /* 0: no response (yet) */
};

enum dpi_body_state {
    DPI_BODY_COMPLETE = 0, /* every byte announced arrived */
    DPI_BODY_CUT,          /* longer than the body limit: the rest was not kept */
    DPI_BODY_INCOMPLETE,   /* the stream ended or had a gap before the end */
    DPI_BODY_OPEN,         /* still arriving (an inline match before the end) */
};

struct dpi_body_facts {
    int to_server;        /* 1: request body (upload), 0: response body (download) */
    uint64_t size;        /* decoded bytes seen (may exceed what was kept) */
    char sha256[65];      /* of the decoded bytes seen; "" if none */
    const char *encoding; /* "gzip", "deflate", NULL for identity */
    int chunked;
    enum dpi_body_state state;
    const char *problem; /* why it is not complete, or a decoding error; NULL */
};

struct dpi_tls_facts {
    const char *sni;     /* "" when absent */
    const char *version; /* highest version offered: "TLS 1.3" */
    const char *alpn;    /* offered protocols, comma separated */
    const char *ja3_hash;
    const char *ja3_string;
    int intercepted; /* decrypted by sluice's TLS proxy */
    /* The TLS proxy's decisions other than interception (event_type "tls"):
     * "spliced", "refused", "intercepted" (a bypass claim not confirmed),
     * "plaintext"; NULL otherwise. */
    const char *action;
    const char *reason;
};

#define DPI_REASON_MAX 320

/* Something the engine cannot read with certainty: bytes a receiver may
 * read otherwise than sluice does, or cannot be decoded by sluice at all. */
struct dpi_anomaly_facts {
    const char *layer;        /* "tcp", "http", "body", "archive", "websocket", "http2" */
    const char *reason;       /* "two different Content-Length values" */
    int to_server;            /* 1: in the client's bytes, 0: in the server's */
    enum rules_action action; /* what the policy asks for */
};

struct dpi_alert_facts {
    const char *signature; /* YARA rule, or "ndpi:risk:..." / "ndpi:category:..." */
    const char *category;
    int severity;
    enum rules_action action; /* what the policy asks for */
    const char *source;       /* "yara", "ndpi" */
    const char *member;       /* what matched inside the body ("zip:a/b.exe"), or NULL */
};

/* nDPI risk bit → its name as ndpiReader prints it ("Known Protocol on Non
 * Standard Port"), NULL for bits nDPI does not define. */
const char *dpi_risk_name(unsigned bit);
/* nDPI risk bit → alert severity: 1 (high or severe), 2 (medium), 3 (low). */
int dpi_risk_severity(unsigned bit);

struct dpi_flow_stats {
    uint64_t pkts[2], bytes[2]; /* by enum dpi_dir */
    uint64_t first_us, last_us;
};

/* --- events ---------------------------------------------------------------- */

enum dpi_event_type {
    DPI_EVENT_FLOW,    /* the flow ended: ndpi + stats */
    DPI_EVENT_HTTP,    /* a transaction, or one body of it (fileinfo) */
    DPI_EVENT_TLS,     /* a ClientHello */
    DPI_EVENT_ALERT,   /* a YARA or policy match */
    DPI_EVENT_ANOMALY, /* bytes the engine cannot read with certainty */
};

struct dpi_event {
    enum dpi_event_type type;
    uint64_t ts_us;
    const char *app_proto; /* "http", "tls", nDPI's name in lower case; NULL if not known yet */
    const struct dpi_flow_meta *meta;
    const struct dpi_ndpi_facts *ndpi;  /* always set (may say Unknown so far) */
    const struct dpi_flow_stats *stats; /* always set */
    const struct dpi_http_facts *http;  /* HTTP, and ALERT from a body */
    const struct dpi_body_facts *body;  /* HTTP with a body, ALERT from a body */
    const struct dpi_tls_facts *tls;    /* TLS */
    const struct dpi_alert_facts *alert;
    const struct dpi_anomaly_facts *anomaly; /* ANOMALY; http set when within a message */
};

typedef void (*dpi_event_fn)(void *ctx, const struct dpi_event *ev);

/* --- engine ---------------------------------------------------------------- */

/* Builds a per-thread engine from a loaded policy (nDPI module with the
 * policy's nDPI files, YARA scanner). NULL with a reason in err. */
struct dpi_engine *dpi_engine_new(struct rules_policy *policy, dpi_event_fn fn, void *ctx,
                                  char *err, size_t errlen);
void dpi_engine_free(struct dpi_engine *e);
/* Inline feeders (NFQUEUE) turn this on: bodies are also scanned while they
 * arrive, each new part together with the DPI_STREAM_OVERLAP bytes before
 * it, so a match stops the very packet that completes it instead of the
 * last packet of the body. The scan at the end still covers the whole kept
 * body; a rule alerts once per body. */
void dpi_engine_set_inline(struct dpi_engine *e, int on);
#define DPI_STREAM_OVERLAP 1024
/* The NFQUEUE feeder turns this on: it sees containers' packets beside the
 * TLS proxy, so what the proxy cannot intercept is policy here. A UDP flow
 * to a port of tls.ports (QUIC) is an alert that blocks when tls.quic is
 * block; TLS (a ClientHello, or nDPI's classification) to a port the proxy
 * does not intercept is an alert per tls.other_ports. Off for captures and
 * for the proxy's own plaintext. */
void dpi_engine_set_tls_policy(struct dpi_engine *e, int on);
/* Checks the policy's nDPI names (categories, risks) against nDPI; 0 if all
 * are known, else -1 with "file:line:column: ..." in err. */
int dpi_policy_check(struct rules_policy *policy, char *err, size_t errlen);

struct dpi_engine_stats {
    uint64_t flows, bodies, bodies_cut, scans, scan_errors, alerts, anomalies;
    uint64_t body_bytes_held; /* current */
};
void dpi_engine_stats(const struct dpi_engine *e, struct dpi_engine_stats *out);

/* --- flows ----------------------------------------------------------------- */

struct dpi_flow *dpi_flow_new(struct dpi_engine *e, const struct dpi_flow_meta *meta);
/* Ends the flow: gives up classification if still running, ends open
 * messages, emits the FLOW event. Call once, before dpi_flow_free. */
void dpi_flow_end(struct dpi_engine *e, struct dpi_flow *f, uint64_t ts_us);
void dpi_flow_free(struct dpi_engine *e, struct dpi_flow *f);

/* Every packet of the flow, as an IP packet (header included), in arrival
 * order: counted and, until classification is done, given to nDPI. */
void dpi_flow_packet(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir, const uint8_t *ip,
                     size_t iplen, uint64_t ts_us);

/* In-order stream bytes of one direction (TCP payload after reassembly, or
 * decrypted bytes from the TLS proxy). */
enum dpi_verdict dpi_flow_stream(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir,
                                 const uint8_t *data, size_t len, uint64_t ts_us);
/* len bytes of this direction are missing and will never come. */
void dpi_flow_gap(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir, uint64_t len,
                  uint64_t ts_us);
/* This direction ended (FIN or RST). */
enum dpi_verdict dpi_flow_stream_end(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir,
                                     uint64_t ts_us);

/* A feeder met bytes of dir it cannot vouch for (TCP segments the
 * receiver may read otherwise): an ANOMALY event, and a block if the
 * policy's action for the layer says so ("tcp": tcp.anomaly, any other:
 * http.anomaly). Reported once per flow, layer and reason. */
enum dpi_verdict dpi_flow_anomaly(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir,
                                  const char *layer, const char *reason, uint64_t ts_us);

/* 1 while the engine still wants this flow's packets or bytes: nDPI has not
 * finished, or an HTTP or ClientHello parser is still reading. A flow for
 * which this is 0 can bypass inspection. */
int dpi_flow_wants_more(const struct dpi_flow *f);
enum dpi_verdict dpi_flow_verdict(const struct dpi_flow *f);
/* 1 while an HTTP message of dir has begun and not ended: a proxy that
 * holds such bytes back can still replace the message (a block page). */
int dpi_flow_mid_message(const struct dpi_flow *f, enum dpi_dir dir);

/* A feeder that can reset one HTTP/2 stream alone (the TLS proxy) turns
 * this on: what the policy blocks inside an HTTP/2 stream (a body, its
 * request's query, an anomaly of its body) blocks that stream only, the
 * flow's verdict stays as it is and its other streams go on being
 * inspected. What cannot be tied to one stream still blocks the flow. */
void dpi_flow_stream_blocks(struct dpi_flow *f, int on);
#define DPI_BLOCKED_STREAMS_MAX 32
/* The HTTP/2 stream IDs blocked since the last call, oldest first, at most
 * max of them (more than DPI_BLOCKED_STREAMS_MAX at once block the flow). */
size_t dpi_flow_blocked_streams(struct dpi_flow *f, uint32_t *ids, size_t max);
/* The body HTTP/2 stream `stream` has sent in dir so far, judged by every
 * rule as if it ended now. A feeder that lets the held end of a body go
 * before the body ended (a sender that waits for an answer) calls it
 * first: a match blocks the stream (see dpi_flow_blocked_streams), so a
 * receiver never holds a whole file that was not judged whole. */
void dpi_flow_judge_held(struct dpi_flow *f, enum dpi_dir dir, uint32_t stream);
/* 1 once the flow's streams carry a WebSocket or HTTP/2 tunnel (after an
 * Upgrade or a preface): no HTTP/1 response can stand in for its bytes. */
int dpi_flow_in_tunnel(const struct dpi_flow *f);
const struct dpi_ndpi_facts *dpi_flow_ndpi(const struct dpi_flow *f);
const struct dpi_flow_meta *dpi_flow_meta(const struct dpi_flow *f);

/* --- TLS ClientHello ------------------------------------------------------- */

/* Facts of a ClientHello, from the first bytes of a client stream (one or
 * more TLS records; the handshake message may span records and segments). */
struct dpi_hello {
    uint16_t legacy_version; /* ClientHello.legacy_version, e.g. 0x0303 */
    uint16_t max_version;    /* highest offered, supported_versions included */
    char sni[256];           /* server_name host_name, "" if absent */
    char alpn[256];          /* offered protocols, comma separated */
    char ja3_string[1024];   /* JA3 string (GREASE removed); cut if longer */
    char ja3_hash[33];       /* MD5 of the JA3 string, lowercase hex */
};

enum dpi_hello_status {
    DPI_HELLO_OK = 0,    /* parsed: out is filled */
    DPI_HELLO_MORE,      /* a prefix of a ClientHello: call again with more bytes */
    DPI_HELLO_NOT_TLS,   /* not a TLS handshake */
    DPI_HELLO_MALFORMED, /* a TLS handshake that is not a valid ClientHello */
};

/* Parses buf (starting at the first byte of the stream). Pure; never reads
 * past len; needs at most 5 + 16384 + handshake header bytes per record. */
enum dpi_hello_status dpi_hello_parse(const uint8_t *buf, size_t len, struct dpi_hello *out);
/* "TLS 1.2" for 0x0303, "SSL 3.0", "0x7f1c" for unknown ones. */
const char *dpi_tls_version_name(uint16_t version, char *buf, size_t buflen);

#endif
