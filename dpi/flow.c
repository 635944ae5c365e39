/*
 * One flow through the engine.
 *
 * Packets go to nDPI exactly as ndpiReader gives them (every packet until
 * the protocol is known and nDPI wants no extra packets, or until 80 TCP / 24
 * UDP packets; then a give-up with guessing), so classifications match
 * ndpiReader's. Ordered stream bytes go to whichever parser the first bytes
 * of a direction call for: a TLS handshake record starts the ClientHello
 * parser, anything else is offered to the HTTP parser, which says quickly
 * when a stream is not HTTP. HTTP bodies flow into body.c and are scanned
 * with YARA when complete (or when the kept part is full), before the call
 * that completed them returns: the caller holds that packet until then.
 */
#include "dpi_internal.h"
#include "extract.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum stream_kind {
    KIND_NONE = 0, /* no byte yet */
    KIND_HTTP,     /* offered to the HTTP parser */
    KIND_HELLO,    /* reading a ClientHello */
    KIND_TUNNEL,   /* after an Upgrade: WebSocket or HTTP/2 (tunnel.c) */
    KIND_DONE,     /* nothing more to learn from this direction */
};

struct http_state {
    struct http_parser *parser;
    struct http_msg msg[2];
    uint64_t fed[2];         /* stream offsets given to the parser (bytes and gaps) */
    char ws_extensions[256]; /* of the last 101 */
    char h2_settings[256];   /* of the last request asking for h2c */
    int h2_head;             /* that request was a HEAD */
    struct dpi_tunnel *tunnel;
    /* The first bytes of each direction, until a message head was read in
     * it: an HTTP/2 server speaks before the client's preface is known. */
    struct sl_buf early[2];
    uint8_t head_seen[2];
};

#define HTTP_EARLY_MAX 16384

struct dpi_flow {
    struct dpi_flow_meta meta;
    struct dpi_engine *e;
    struct ndpi_flow_struct *nf; /* freed once classification is done */
    ndpi_protocol proto;
    uint8_t ndpi_done;
    uint8_t kind[2];
    uint8_t stream_ended[2];
    uint8_t ended;
    enum dpi_verdict verdict;
    uint64_t now; /* timestamp of what is being processed */
    const char *app_proto;
    struct http_state *http;
    struct sl_buf hello;
    uint8_t tls_reported;
    uint8_t tls_port_checked;  /* tls.other_ports was applied */
    struct ndpi_tls *ndpi_tls; /* nDPI's TLS/QUIC facts, kept in case ours are missing */
    struct dpi_ndpi_facts ndpi;
    struct dpi_flow_stats stats;
    char proto_name[64];
    char proto_id[32];
    uint32_t anomalies[8]; /* reported (layer, reason, dir), hashed */
    uint8_t nanomalies;
    /* Per-stream blocks (dpi_flow_stream_blocks): the HTTP/2 stream being
     * read, whether it was blocked by what is being read, and the streams
     * blocked since the feeder last asked. */
    uint8_t stream_blocks;
    uint8_t cur_blocked;
    uint32_t cur_stream;
    uint32_t blocked[DPI_BLOCKED_STREAMS_MAX];
    unsigned nblocked;
};

/* What nDPI read of a ClientHello (TLS over TCP, QUIC, DTLS). sluice's own
 * parser is the source of tls events; these stand in for it where it had
 * nothing: QUIC and DTLS, and hellos too damaged for it that nDPI half-read. */
struct ndpi_tls {
    char sni[80];
    char alpn[128];
    char version[16];
    char ja3_hash[33];
};

static const struct http_callbacks http_cb;

/* --- events ---------------------------------------------------------------- */

static void describe_ndpi(struct dpi_flow *f)
{
    engine_describe(f->e, f->proto, f->proto_name, sizeof(f->proto_name), f->proto_id,
                    sizeof(f->proto_id), &f->ndpi.category);
    f->ndpi.proto = f->proto_name;
    f->ndpi.proto_id = f->proto_id;
}

static void emit(struct dpi_flow *f, struct dpi_event *ev)
{
    struct dpi_engine *e = f->e;

    if (e->emit == NULL)
        return;
    if (!f->ndpi_done)
        describe_ndpi(f); /* classification so far */
    ev->ts_us = f->now;
    ev->app_proto = f->app_proto;
    ev->meta = &f->meta;
    ev->ndpi = &f->ndpi;
    ev->stats = &f->stats;
    e->emit(e->emit_ctx, ev);
}

/* A block: of the HTTP/2 stream being read when the feeder can reset it
 * alone, else of the flow. */
static void flow_block(struct dpi_flow *f)
{
    if (!f->stream_blocks || f->cur_stream == 0) {
        f->verdict = DPI_BLOCK;
        return;
    }
    if (f->cur_blocked)
        return;
    f->cur_blocked = 1;
    for (unsigned i = 0; i < f->nblocked; i++)
        if (f->blocked[i] == f->cur_stream)
            return;
    if (f->nblocked == DPI_BLOCKED_STREAMS_MAX) {
        f->verdict = DPI_BLOCK; /* more than the feeder can be told at once */
        return;
    }
    f->blocked[f->nblocked++] = f->cur_stream;
}

/* Nothing more to decide for what is being read: the flow, or the stream
 * being read, is blocked. */
static int decided(const struct dpi_flow *f)
{
    return f->verdict == DPI_BLOCK || f->cur_blocked;
}

static void raise_alert(struct dpi_flow *f, const struct dpi_alert_facts *a,
                        const struct dpi_http_facts *http, const struct dpi_body_facts *body)
{
    struct dpi_event ev = {.type = DPI_EVENT_ALERT, .alert = a, .http = http, .body = body};

    f->e->stats.alerts++;
    if (a->action == RULES_ACTION_BLOCK)
        flow_block(f);
    emit(f, &ev);
}

/* --- anomalies ------------------------------------------------------------- */

static uint32_t anomaly_key(int dir, const char *layer, const char *reason)
{
    uint32_t h = 2166136261u ^ (uint32_t)dir;
    for (const char *p = layer; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ ':') * 16777619u;
    for (const char *p = reason; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static void http_facts_of_dir(struct dpi_flow *f, int dir, struct dpi_http_facts *h, int *ok);

/* The client's direction: the one carrying requests once HTTP knows it,
 * else the first packet's. */
static int client_dir(const struct dpi_flow *f)
{
    int rq = f->http ? http_parser_request_dir(f->http->parser) : -1;
    return rq >= 0 ? rq : DPI_DIR_FWD;
}

/* Reports what the engine cannot read with certainty, once per flow,
 * direction and reason; the policy decides whether it blocks. */
static void raise_anomaly(struct dpi_flow *f, int dir, const char *layer, const char *reason)
{
    const struct rules_policy *p = f->e->policy;
    uint32_t key = anomaly_key(dir, layer, reason);

    for (unsigned i = 0; i < f->nanomalies; i++)
        if (f->anomalies[i] == key)
            return;
    if (f->nanomalies < sizeof(f->anomalies) / sizeof(f->anomalies[0]))
        f->anomalies[f->nanomalies++] = key;
    struct dpi_anomaly_facts a = {
        .layer = layer,
        .reason = reason,
        .to_server = dir == client_dir(f),
        .action = strcmp(layer, "tcp") == 0 ? p->tcp.anomaly : p->http.anomaly,
    };
    struct dpi_http_facts hf;
    int have_http = 0;
    http_facts_of_dir(f, dir, &hf, &have_http);
    struct dpi_event ev = {
        .type = DPI_EVENT_ANOMALY, .anomaly = &a, .http = have_http ? &hf : NULL};
    f->e->stats.anomalies++;
    if (a.action == RULES_ACTION_BLOCK)
        flow_block(f);
    emit(f, &ev);
}

enum dpi_verdict dpi_flow_anomaly(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir,
                                  const char *layer, const char *reason, uint64_t ts_us)
{
    (void)e;
    f->now = ts_us;
    raise_anomaly(f, (int)dir, layer, reason);
    return f->verdict;
}

/* --- nDPI ------------------------------------------------------------------ */

static void ndpi_alerts(struct dpi_flow *f)
{
    struct dpi_engine *e = f->e;
    char sig[160];
    uint64_t hits = f->ndpi.risks & e->alert_risks;

    for (unsigned bit = 1; bit < 64 && hits; bit++) {
        if (!(hits & (1ULL << bit)))
            continue;
        hits &= ~(1ULL << bit);
        snprintf(sig, sizeof(sig), "nDPI risk: %s", dpi_risk_name(bit));
        struct dpi_alert_facts a = {
            sig, "ndpi-risk", dpi_risk_severity(bit), e->policy->ndpi.action, "ndpi", NULL};
        raise_alert(f, &a, NULL, NULL);
    }
    if (f->proto.category < 256 && e->alert_category[f->proto.category]) {
        snprintf(sig, sizeof(sig), "nDPI category: %s", f->ndpi.category);
        struct dpi_alert_facts a = {sig, "ndpi-category", 2, e->policy->ndpi.action, "ndpi", NULL};
        raise_alert(f, &a, NULL, NULL);
    }
}

/* --- what the TLS proxy cannot see (dpi_engine_set_tls_policy) ------------- */

/* UDP to a TLS port: QUIC, or whatever else is sent there. The proxy can
 * intercept TCP only; blocked by port (not by nDPI's classification, which
 * a new QUIC version or a padded Initial escapes), clients fall back to TCP
 * as they do behind enterprise proxies. Once per flow: its first packet. */
static void quic_check(struct dpi_flow *f)
{
    const struct rules_policy *p = f->e->policy;

    if (!f->e->tls_policy || f->meta.l4proto != IPPROTO_UDP || p->tls.quic != RULES_QUIC_BLOCK ||
        !rules_port_listed(&p->tls.ports, f->meta.dport))
        return;
    struct dpi_alert_facts a = {
        "QUIC blocked (tls.quic: block)", "quic", 3, RULES_ACTION_BLOCK, "tls", NULL};
    raise_alert(f, &a, NULL, NULL);
}

/* TLS to a port the proxy does not intercept: its content passes unread.
 * server_port is the port of the side that did not send the ClientHello;
 * tls the hello's facts, or NULL. Once per flow. */
static void other_port_check(struct dpi_flow *f, unsigned server_port,
                             const struct dpi_tls_facts *tls)
{
    const struct rules_policy *p = f->e->policy;

    if (!f->e->tls_policy || f->tls_port_checked || f->meta.l4proto != IPPROTO_TCP)
        return;
    f->tls_port_checked = 1;
    if (p->tls.other_ports == RULES_OTHER_PASS ||
        (p->tls.intercept && rules_port_listed(&p->tls.ports, server_port)))
        return;
    int block = p->tls.other_ports == RULES_OTHER_BLOCK;
    /* nDPI may only be sure when the flow is over: too late to block. */
    struct dpi_alert_facts a = {block ? "TLS on a port not intercepted (tls.other_ports: block)"
                                      : "TLS on a port not intercepted (tls.other_ports: alert)",
                                "tls-not-intercepted",
                                2,
                                block && !f->ended ? RULES_ACTION_BLOCK : RULES_ACTION_ALERT,
                                "tls",
                                NULL};
    struct dpi_event ev = {.type = DPI_EVENT_ALERT, .alert = &a, .tls = tls};
    f->e->stats.alerts++;
    if (a.action == RULES_ACTION_BLOCK)
        f->verdict = DPI_BLOCK;
    emit(f, &ev);
}

static int uses_tls_facts(u_int16_t proto)
{
    switch (proto) {
    case NDPI_PROTOCOL_TLS:
    case NDPI_PROTOCOL_DTLS:
    case NDPI_PROTOCOL_QUIC:
    case NDPI_PROTOCOL_MAIL_SMTPS:
    case NDPI_PROTOCOL_MAIL_IMAPS:
    case NDPI_PROTOCOL_MAIL_POPS:
        return 1;
    default:
        return 0;
    }
}

static void keep_ndpi_tls(struct dpi_flow *f)
{
    const struct ndpi_flow_struct *nf = f->nf;

    if (f->tls_reported || f->ndpi_tls != NULL ||
        !(uses_tls_facts(f->proto.master_protocol) || uses_tls_facts(f->proto.app_protocol)) ||
        nf->protos.tls_quic.ja3_client[0] == '\0')
        return;
    f->ndpi_tls = calloc(1, sizeof(*f->ndpi_tls));
    if (f->ndpi_tls == NULL)
        return;
    snprintf(f->ndpi_tls->sni, sizeof(f->ndpi_tls->sni), "%s", nf->host_server_name);
    snprintf(f->ndpi_tls->alpn, sizeof(f->ndpi_tls->alpn), "%s",
             nf->protos.tls_quic.alpn ? nf->protos.tls_quic.alpn : "");
    dpi_tls_version_name(nf->protos.tls_quic.ssl_version, f->ndpi_tls->version,
                         sizeof(f->ndpi_tls->version));
    snprintf(f->ndpi_tls->ja3_hash, sizeof(f->ndpi_tls->ja3_hash), "%s",
             nf->protos.tls_quic.ja3_client);
}

static void report_ndpi_tls(struct dpi_flow *f)
{
    if (f->tls_reported || f->ndpi_tls == NULL)
        return;
    struct dpi_tls_facts tls = {
        .sni = f->ndpi_tls->sni,
        .version = f->ndpi_tls->version,
        .alpn = f->ndpi_tls->alpn,
        .ja3_hash = f->ndpi_tls->ja3_hash,
        .ja3_string = NULL,
    };
    struct dpi_event ev = {.type = DPI_EVENT_TLS, .tls = &tls};
    f->tls_reported = 1;
    emit(f, &ev);
}

/* Classification is over: keep the facts, free nDPI's flow state. */
static void ndpi_complete(struct dpi_flow *f, int give_up)
{
    struct dpi_engine *e = f->e;

    if (give_up && f->proto.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
        uint8_t guessed = 0;
        f->proto = ndpi_detection_giveup(e->ndpi, f->nf, 1, &guessed);
        f->ndpi.guessed = guessed;
    }
    f->ndpi.risks = f->nf->risk;
    f->ndpi.confidence = ndpi_confidence_get_name(f->nf->confidence);
    keep_ndpi_tls(f);
    ndpi_flow_free(f->nf);
    f->nf = NULL;
    f->ndpi_done = 1;
    describe_ndpi(f);
    ndpi_alerts(f);
    /* TLS that sluice's own parser did not read (a hello it could not
     * parse, STARTTLS): nDPI's word, when it is not a guess. */
    if (!f->ndpi.guessed &&
        (uses_tls_facts(f->proto.master_protocol) || uses_tls_facts(f->proto.app_protocol)))
        other_port_check(f, f->meta.dport, NULL);
}

static void ndpi_packet(struct dpi_flow *f, const uint8_t *ip, size_t iplen, uint64_t seen)
{
    struct dpi_engine *e = f->e;
    const struct rules_policy *p = e->policy;
    uint64_t ts_us = f->now;

    int enough = (f->meta.l4proto == IPPROTO_TCP && seen > p->ndpi.max_packets_tcp) ||
                 (f->meta.l4proto == IPPROTO_UDP && seen > p->ndpi.max_packets_udp);

    f->proto = ndpi_detection_process_packet(
        e->ndpi, f->nf, ip, (unsigned short)(iplen > 0xffff ? 0xffff : iplen), ts_us / 1000);
    if (!enough && f->proto.app_protocol == NDPI_PROTOCOL_UNKNOWN)
        return;
    /* Like ndpiReader: wait for what nDPI still wants to see (certificates,
     * DNS answers) unless the packet budget is spent. */
    if (!enough && ndpi_extra_dissection_possible(e->ndpi, f->nf))
        return;
    ndpi_complete(f, 1);
}

void dpi_flow_packet(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir, const uint8_t *ip,
                     size_t iplen, uint64_t ts_us)
{
    (void)e;
    f->now = ts_us;
    f->stats.pkts[dir]++;
    f->stats.bytes[dir] += iplen;
    if (f->stats.first_us == 0)
        f->stats.first_us = ts_us;
    f->stats.last_us = ts_us;
    uint64_t seen = f->stats.pkts[0] + f->stats.pkts[1];
    if (!f->ndpi_done && f->nf != NULL)
        ndpi_packet(f, ip, iplen, seen);
    if (seen == 1)
        quic_check(f); /* after nDPI: the alert carries what it saw */
}

/* --- TLS ClientHello -------------------------------------------------------- */

static void hello_done(struct dpi_flow *f, int dir)
{
    f->kind[dir] = KIND_DONE;
    sl_buf_free(&f->hello);
}

static void hello_feed(struct dpi_flow *f, int dir, const uint8_t *p, size_t n)
{
    struct dpi_hello h;
    enum dpi_hello_status st;

    if (f->hello.len == 0) {
        /* Most hellos arrive in one segment: parse in place, copy only if not. */
        st = dpi_hello_parse(p, n, &h);
        if (st == DPI_HELLO_MORE) {
            sl_buf_init(&f->hello, f->e->policy->limits.hello_bytes);
            if (sl_buf_append(&f->hello, p, n) < n)
                hello_done(f, dir);
            return;
        }
    } else {
        size_t got = sl_buf_append(&f->hello, p, n);
        st = dpi_hello_parse(f->hello.data, f->hello.len, &h);
        if (st == DPI_HELLO_MORE) {
            if (got < n)
                hello_done(f, dir); /* larger than the policy allows */
            return;
        }
    }
    hello_done(f, dir);
    if (st != DPI_HELLO_OK)
        return;

    char version[16];
    struct dpi_tls_facts tls = {
        .sni = h.sni,
        .version = dpi_tls_version_name(h.max_version, version, sizeof(version)),
        .alpn = h.alpn,
        .ja3_hash = h.ja3_hash,
        .ja3_string = h.ja3_string,
    };
    struct dpi_event ev = {.type = DPI_EVENT_TLS, .tls = &tls};
    f->app_proto = "tls";
    f->tls_reported = 1;
    /* The other direction is the server's: nothing for the hello parser. */
    if (f->kind[!dir] == KIND_NONE || f->kind[!dir] == KIND_HELLO)
        f->kind[!dir] = KIND_DONE;
    emit(f, &ev);
    other_port_check(f, dir == DPI_DIR_FWD ? f->meta.dport : f->meta.sport, &tls);
}

/* --- HTTP ------------------------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void http_facts(const struct http_msg *m, struct dpi_http_facts *h)
{
    memset(h, 0, sizeof(*h));
    h->method = m->method[0] ? m->method : NULL;
    h->uri = m->uri[0] ? m->uri : NULL;
    h->hostname = m->host[0] ? m->host : NULL;
    h->user_agent = m->user_agent[0] ? m->user_agent : NULL;
    h->content_type = m->content_type[0] ? m->content_type : NULL;
    h->protocol = m->protocol;
    h->status = m->status;
}

/* The HTTP message an anomaly of dir belongs to: the open one of dir, else
 * the one of the other direction. */
static void http_facts_of_dir(struct dpi_flow *f, int dir, struct dpi_http_facts *h, int *ok)
{
    *ok = 0;
    if (f->http == NULL)
        return;
    const struct http_msg *m = &f->http->msg[dir];
    if (!m->open && !f->http->msg[!dir].open)
        return;
    http_facts(m->open ? m : &f->http->msg[!dir], h);
    *ok = 1;
}

static uint64_t rule_key(const struct rules_match *r)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over "namespace:rule" */
    for (const char *p = r->ns; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    h = (h ^ ':') * 1099511628211ULL;
    for (const char *p = r->rule; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return h;
}

/* Alerts for the matches of one scan, once per rule and body; with
 * certain_only, only for rules that a match on a piece proves. */
static void body_alerts(struct dpi_flow *f, struct http_msg *m, const struct rules_match *matches,
                        int n, struct dpi_body_facts *bf, int certain_only, const char *member)
{
    struct dpi_http_facts hf;

    http_facts(m, &hf);
    for (int i = 0; i < n && i < RULES_MAX_MATCHES; i++) {
        if (certain_only && !matches[i].window_certain)
            continue;
        uint64_t key = rule_key(&matches[i]);
        int seen = 0;
        for (int k = 0; k < m->nalerted && !seen; k++)
            seen = m->alerted[k] == key;
        if (seen)
            continue;
        if (m->nalerted < RULES_MAX_MATCHES)
            m->alerted[m->nalerted++] = key;
        struct dpi_alert_facts a = {matches[i].rule,
                                    matches[i].category,
                                    matches[i].severity,
                                    f->e->policy->yara.action,
                                    "yara",
                                    member};
        raise_alert(f, &a, &hf, bf);
    }
}

static int scan_bytes(struct dpi_flow *f, struct http_msg *m, const uint8_t *p, size_t n,
                      struct rules_match *matches)
{
    struct dpi_engine *e = f->e;
    char err[160];

    int found = rules_scan(e->scanner, p, n, matches, RULES_MAX_MATCHES, err, sizeof(err));
    e->stats.scans++;
    if (found < 0) {
        e->stats.scan_errors++;
        snprintf(m->problem, sizeof(m->problem), "scan failed: %s", err);
        m->body.problem = m->problem;
    }
    return found;
}

/* YARA over what is kept of a body: the whole body, or its last window.
 * Every match acts: this is the scan that decides. */
static void scan_kept(struct dpi_flow *f, struct http_msg *m, struct dpi_body_facts *bf)
{
    struct rules_match matches[RULES_MAX_MATCHES];
    struct dpi_body *b = &m->body;

    b->scanned = 1;
    if (f->e->scanner == NULL || b->keep.len == 0)
        return;
    /* After a window, what is kept may be only its overlap, scanned already. */
    if (b->windows > 0 && b->keep.len <= b->streamed && b->keep.len <= DPI_STREAM_OVERLAP)
        return;
    int n = scan_bytes(f, m, b->keep.data, b->keep.len, matches);
    if (n < 0) {
        if (bf)
            bf->problem = m->problem;
        return;
    }
    /* A body cut short is a piece of the file, not the file. */
    int piece = bf && bf->state == DPI_BODY_INCOMPLETE;
    body_alerts(f, m, matches, n, bf, piece, NULL);
}

void flow_msg_judge_prefix(struct dpi_flow *f, struct http_msg *m, int dir)
{
    struct rules_match matches[RULES_MAX_MATCHES];
    struct dpi_body *b = &m->body;

    (void)dir;
    /* A cut body's windows were judged whole as they filled. */
    if (!m->open || !m->has_body || f->e->scanner == NULL || b->keep.len == 0 || b->cut)
        return;
    int n = scan_bytes(f, m, b->keep.data, b->keep.len, matches);
    if (n <= 0)
        return;
    struct dpi_body_facts bf = {
        .to_server = m->is_request, .size = b->size, .chunked = b->chunked, .state = DPI_BODY_OPEN};
    body_alerts(f, m, matches, n, &bf, 0, NULL);
}

/* A body longer than the body limit: each full window is scanned as a file
 * of its own, and every match acts (the whole body is never held). */
static void on_window(void *ctx, const uint8_t *p, size_t n)
{
    struct http_msg *m = ctx;
    struct dpi_flow *f = m->flow;
    struct rules_match matches[RULES_MAX_MATCHES];

    if (f->e->scanner == NULL)
        return;
    int found = scan_bytes(f, m, p, n, matches);
    if (found <= 0)
        return;
    struct dpi_body_facts bf = {.to_server = m->is_request,
                                .size = m->body.size,
                                .chunked = m->body.chunked,
                                .state = DPI_BODY_OPEN};
    body_alerts(f, m, matches, found, &bf, 0, NULL);
}

/* Inline: the new kept bytes and the overlap before them, so a signature
 * split over packets is found in the packet that completes it. Only rules
 * that a match on a piece proves act here; the others wait for the whole
 * body, whose last packet the feeder holds until the scan at the end. */
static void scan_arriving(struct dpi_flow *f, struct http_msg *m)
{
    struct rules_match matches[RULES_MAX_MATCHES];
    struct dpi_body *b = &m->body;

    if (!f->e->inline_scans || f->e->scanner == NULL || !f->e->window_rules ||
        b->keep.len <= b->streamed)
        return;
    size_t from = b->streamed > DPI_STREAM_OVERLAP ? b->streamed - DPI_STREAM_OVERLAP : 0;
    b->streamed = b->keep.len;
    int n = scan_bytes(f, m, b->keep.data + from, b->keep.len - from, matches);
    if (n <= 0)
        return;
    struct dpi_body_facts bf = {
        .to_server = m->is_request, .size = b->size, .chunked = b->chunked, .state = DPI_BODY_OPEN};
    body_alerts(f, m, matches, n, &bf, 1, NULL);
}

/* --- what the receiver unpacks from a body ------------------------------------ */

struct derived_ctx {
    struct dpi_flow *f;
    struct http_msg *m;
    int dir;
    struct dpi_body_facts *bf;
};

/* An archive member, a decoded upload part or value: a file of its own,
 * scanned whole. */
static int scan_derived(void *ctx, const char *what, const uint8_t *p, size_t n)
{
    struct derived_ctx *d = ctx;
    struct rules_match matches[RULES_MAX_MATCHES];

    int found = scan_bytes(d->f, d->m, p, n, matches);
    if (found > 0)
        body_alerts(d->f, d->m, matches, found, d->bf, 0, what);
    return decided(d->f); /* decided: stop unpacking */
}

static void derived_problem(void *ctx, const char *what, const char *reason)
{
    struct derived_ctx *d = ctx;
    char buf[DPI_REASON_MAX];

    snprintf(buf, sizeof(buf), "%s: %s", reason, what);
    raise_anomaly(d->f, d->dir, "archive", buf);
}

/* Members of archives, multipart parts, form and JSON values of a buffer:
 * each scanned as a file of its own. */
static void unpack_buffer(struct dpi_flow *f, struct http_msg *m, int dir,
                          struct dpi_body_facts *bf, const uint8_t *p, size_t n,
                          const char *content_type, unsigned flags)
{
    const struct rules_policy *pol = f->e->policy;
    struct derived_ctx d = {f, m, dir, bf};
    struct extract_limits lim = {
        .depth = pol->limits.archive_depth,
        .total_bytes = pol->limits.archive_bytes,
        .max_ratio = pol->limits.decoded_ratio,
        .ratio_after = pol->limits.body,
        .member_bytes = pol->limits.body,
        .max_members = 10000,
        .max_values = 100,
    };

    extract_body(p, n, content_type, flags, &lim, scan_derived, derived_problem, &d);
}

/* What the receiver unpacks from a body that fits in one window (a longer
 * body: nothing; its windows are scanned as they are). */
static void scan_unpacked(struct dpi_flow *f, struct http_msg *m, int dir,
                          struct dpi_body_facts *bf)
{
    struct dpi_body *b = &m->body;

    if (f->e->scanner == NULL || b->keep.len == 0 || b->windows > 0 || decided(f))
        return;
    unpack_buffer(f, m, dir, bf, b->keep.data, b->keep.len,
                  m->content_type[0] ? m->content_type : NULL,
                  bf->state == DPI_BODY_COMPLETE ? 0 : EXTRACT_TRUNCATED);
}

/* The query of a request target: a server application decodes its values
 * (percent-encoding, '+') like those of a form, so they are files too. */
static void scan_query(struct dpi_flow *f, struct http_msg *m, int dir, const char *uri)
{
    const char *q = strchr(uri, '?');
    struct dpi_body_facts bf = {.to_server = 1, .state = DPI_BODY_COMPLETE};
    struct derived_ctx d = {f, m, dir, &bf};

    if (q == NULL || q[1] == '\0' || f->e->scanner == NULL || decided(f))
        return;
    size_t n = strlen(q + 1);
    bf.size = n;
    scan_derived(&d, "query", (const uint8_t *)q + 1, n);
    if (!decided(f))
        unpack_buffer(f, m, dir, &bf, (const uint8_t *)q + 1, n,
                      "application/x-www-form-urlencoded", 0);
}

void flow_msg_head(struct dpi_flow *f, struct http_msg *m, int dir, const struct http_head *h)
{
    const char *method = h->method, *uri = h->uri, *host = h->host, *ua = h->user_agent;

    (void)dir;
    if (!h->is_request && h->request) {
        method = h->request->method;
        uri = h->request->uri;
        host = h->request->host;
        ua = h->request->user_agent;
    } else if (!h->is_request) {
        method = uri = host = ua = NULL;
    }
    m->flow = f;
    m->open = 1;
    m->is_request = h->is_request;
    m->raw = h->raw;
    m->status = h->is_request ? 0 : h->status;
    copy_str(m->method, sizeof(m->method), method);
    copy_str(m->uri, sizeof(m->uri), uri);
    copy_str(m->host, sizeof(m->host), host);
    copy_str(m->user_agent, sizeof(m->user_agent), ua);
    copy_str(m->content_type, sizeof(m->content_type), h->content_type);
    copy_str(m->content_range, sizeof(m->content_range), h->content_range);
    if (h->version_minor < 0)
        snprintf(m->protocol, sizeof(m->protocol), "HTTP/%d", h->version_major);
    else
        snprintf(m->protocol, sizeof(m->protocol), "HTTP/%d.%d", h->version_major,
                 h->version_minor);
    m->problem[0] = '\0';
    m->nalerted = 0;
    m->has_body = h->framing != HTTP_BODY_NONE;
    if (m->has_body) {
        body_begin(f->e, &m->body, h->content_encoding, h->transfer_coding,
                   h->framing == HTTP_BODY_CHUNKED);
        m->body.window = on_window;
        m->body.window_ctx = m;
    }
    f->app_proto = "http";
    if (h->is_request && h->uri)
        scan_query(f, m, dir, h->uri);
}

static void on_head(void *ctx, int dir, const struct http_head *h)
{
    struct dpi_flow *f = ctx;

    if (h->is_request) {
        /* What a 101 may need to follow the streams after it. */
        copy_str(f->http->h2_settings, sizeof(f->http->h2_settings), h->http2_settings);
        f->http->h2_head = h->method && strcmp(h->method, "HEAD") == 0;
    } else if (h->status == 101) {
        copy_str(f->http->ws_extensions, sizeof(f->http->ws_extensions), h->ws_extensions);
    }
    f->http->head_seen[dir] = 1;
    flow_msg_head(f, &f->http->msg[dir], dir, h);
}

/* A body that cannot be decoded, or inspected at all: once per body. */
static void body_anomaly(struct dpi_flow *f, int dir, struct http_msg *m)
{
    if (m->body.anomaly == NULL || m->body.anomaly_raised)
        return;
    m->body.anomaly_raised = 1;
    raise_anomaly(f, dir, "body", m->body.anomaly);
}

void flow_msg_body(struct dpi_flow *f, struct http_msg *m, int dir, const uint8_t *p, size_t n)
{
    if (!m->open || !m->has_body)
        return;
    body_feed(f->e, &m->body, p, n);
    body_anomaly(f, dir, m);
    if (!m->body.unread)
        scan_arriving(f, m);
}

static void on_body(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct dpi_flow *f = ctx;

    flow_msg_body(f, &f->http->msg[dir], dir, p, n);
}

/* A 206 part: joined with the other parts of the same object this client
 * fetched, and the whole object scanned once complete. */
static void join_range(struct dpi_flow *f, struct http_msg *m, int dir, struct dpi_body_facts *bf)
{
    struct dpi_body *b = &m->body;
    uint64_t first, last, total;
    int cd = client_dir(f);

    if (m->status != 206 || b->windows > 0 || bf->state != DPI_BODY_COMPLETE ||
        f->e->scanner == NULL || decided(f) ||
        join_parse_content_range(m->content_range, &first, &last, &total) != 0 ||
        last - first + 1 != b->keep.len)
        return;
    struct join_key k = {.host = m->host, .uri = m->uri};
    memcpy(k.client, cd == DPI_DIR_FWD ? f->meta.src : f->meta.dst, 16);
    memcpy(k.server, cd == DPI_DIR_FWD ? f->meta.dst : f->meta.src, 16);
    const uint8_t *whole =
        join_part(f->e->joins, &k, first, total, b->keep.data, b->keep.len, f->now);
    if (whole == NULL)
        return;
    struct derived_ctx d = {f, m, dir, bf};
    scan_derived(&d, "joined 206 parts", whole, (size_t)total);
}

/* The seam between this response body and the previous one the client
 * got from the same server: a file split over two responses. Only rules a
 * piece proves act: the seam is a piece of a file the client may build. */
static void scan_seam(struct dpi_flow *f, struct http_msg *m, int dir, struct dpi_body_facts *bf)
{
    struct dpi_body *b = &m->body;
    uint8_t seam[2 * JOIN_SEAM];
    struct rules_match matches[RULES_MAX_MATCHES];
    int cd = client_dir(f);

    if (m->is_request || m->raw || b->windows > 0 || b->keep.len == 0 ||
        bf->state != DPI_BODY_COMPLETE || f->e->scanner == NULL || !f->e->window_rules)
        return;
    /* A body that matched already leaves no tail: its match is reported. */
    size_t prev = join_seam(f->e->joins, cd == DPI_DIR_FWD ? f->meta.src : f->meta.dst,
                            cd == DPI_DIR_FWD ? f->meta.dst : f->meta.src, b->keep.data,
                            m->nalerted ? 0 : b->keep.len, seam, f->now);
    if (prev == 0 || decided(f))
        return;
    size_t head = b->keep.len < JOIN_SEAM ? b->keep.len : JOIN_SEAM;
    memcpy(seam + prev, b->keep.data, head);
    int n = scan_bytes(f, m, seam, prev + head, matches);
    if (n > 0)
        body_alerts(f, m, matches, n, bf, 1, "seam of two responses");
}

void flow_msg_end(struct dpi_flow *f, struct http_msg *m, int dir, enum http_end how,
                  const char *why)
{
    struct dpi_http_facts hf;

    if (!m->open)
        return;
    m->open = 0;
    if (m->has_body) {
        struct dpi_body_facts bf;
        enum dpi_body_state state =
            how == HTTP_END_OK && !m->raw ? DPI_BODY_COMPLETE : DPI_BODY_INCOMPLETE;
        body_finish(f->e, &m->body, state, &bf);
        bf.to_server = m->is_request;
        body_anomaly(f, dir, m);
        if (m->raw && why == NULL)
            why = "the unparsed rest of the stream";
        if ((how != HTTP_END_OK || m->raw) && why && bf.problem == NULL) {
            copy_str(m->problem, sizeof(m->problem), why);
            bf.problem = m->problem;
        }
        /* An empty body is no file (Content-Length: 0, a bare last chunk):
         * report the message as a body-less one. */
        int empty = bf.size == 0 && (bf.state == DPI_BODY_COMPLETE || m->raw);
        if (!empty) {
            scan_kept(f, m, &bf);
            scan_unpacked(f, m, dir, &bf);
            join_range(f, m, dir, &bf);
            scan_seam(f, m, dir, &bf);
        }
        http_facts(m, &hf);
        struct dpi_event ev = {.type = DPI_EVENT_HTTP, .http = &hf, .body = empty ? NULL : &bf};
        if (!empty || (!m->is_request && !m->raw))
            emit(f, &ev);
        body_release(f->e, &m->body);
    } else if (!m->is_request && m->status >= 200) {
        http_facts(m, &hf);
        struct dpi_event ev = {.type = DPI_EVENT_HTTP, .http = &hf};
        emit(f, &ev);
    }
}

static void on_end(void *ctx, int dir, enum http_end how, const char *why)
{
    struct dpi_flow *f = ctx;

    flow_msg_end(f, &f->http->msg[dir], dir, how, why);
}

void flow_scan_message(struct dpi_flow *f, struct http_msg *m, int dir, const uint8_t *p, size_t n,
                       const char *what)
{
    struct derived_ctx d = {f, m, dir, NULL};
    struct dpi_body_facts bf = {
        .to_server = dir == client_dir(f), .size = n, .state = DPI_BODY_COMPLETE};

    d.bf = &bf;
    if (f->e->scanner == NULL || n == 0 || decided(f))
        return;
    m->nalerted = 0;
    scan_derived(&d, what, p, n);
    if (!decided(f))
        unpack_buffer(f, m, dir, &bf, p, n, m->content_type[0] ? m->content_type : NULL, 0);
}

void flow_anomaly(struct dpi_flow *f, int dir, const char *layer, const char *reason)
{
    raise_anomaly(f, dir, layer, reason);
}

struct dpi_engine *flow_engine(const struct dpi_flow *f)
{
    return f->e;
}

void flow_stream_context(struct dpi_flow *f, uint32_t stream)
{
    f->cur_stream = stream;
    f->cur_blocked = 0;
    for (unsigned i = 0; i < f->nblocked && stream; i++)
        if (f->blocked[i] == stream)
            f->cur_blocked = 1;
}

static void on_http_anomaly(void *ctx, int dir, const char *why)
{
    raise_anomaly(ctx, dir, "http", why);
}

static const struct http_callbacks http_cb = {on_head, on_body, on_end, on_http_anomaly};

static void http_release(struct dpi_flow *f)
{
    if (f->http == NULL)
        return;
    for (int d = 0; d < 2; d++)
        if (f->http->msg[d].open && f->http->msg[d].has_body)
            body_release(f->e, &f->http->msg[d].body);
    tunnel_free(f->http->tunnel);
    sl_buf_free(&f->http->early[0]);
    sl_buf_free(&f->http->early[1]);
    http_parser_free(f->http->parser);
    free(f->http);
    f->http = NULL;
}

static int http_start(struct dpi_flow *f, int dir)
{
    f->http = calloc(1, sizeof(*f->http));
    if (f->http)
        f->http->parser = http_parser_new(&http_cb, f);
    if (f->http == NULL || f->http->parser == NULL) {
        free(f->http);
        f->http = NULL;
        f->kind[0] = f->kind[1] = KIND_DONE;
        raise_anomaly(f, dir, "http", "out of memory: the flow is not inspected");
        return -1;
    }
    sl_buf_init(&f->http->early[0], HTTP_EARLY_MAX);
    sl_buf_init(&f->http->early[1], HTTP_EARLY_MAX);
    /* Seen from the handshake on: a response without a status line is
     * HTTP/0.9 (wget reads it), not the middle of a body. */
    if (f->meta.from_start)
        http_parser_from_start(f->http->parser);
    return 0;
}

static void flow_dispatch(struct dpi_flow *f, int dir, const uint8_t *data, size_t len);

/* Bytes [from, to) of stream d, if the early copy still holds them. */
static const uint8_t *early_bytes(struct http_state *h, int d, uint64_t from, uint64_t to)
{
    if (from > to || to > h->early[d].len || h->early[d].data == NULL)
        return from == to ? (const uint8_t *)"" : NULL;
    return h->early[d].data + from;
}

/* The HTTP parser says both streams became a tunnel from start[d] on. The
 * bytes of dir from at on are in p; the rest was fed before. */
static void http_tunnel(struct dpi_flow *f, int dir, const uint8_t *p, size_t n, uint64_t at)
{
    struct http_state *h = f->http;
    uint64_t start[2];
    int kind, cd = client_dir(f);

    if (!http_parser_tunnel(h->parser, &kind, start))
        return;
    /* What each direction sent of the tunnel before it was known. */
    const uint8_t *before_other = early_bytes(h, !dir, start[!dir], h->fed[!dir]);
    const uint8_t *before_dir = start[dir] < at ? early_bytes(h, dir, start[dir], at) : p;
    if (before_other == NULL || before_dir == NULL || start[dir] > at + n) {
        /* A peer that did not wait for the answer, past what was kept. */
        raise_anomaly(f, before_other == NULL ? !dir : dir, "http",
                      "tunnel data sent before the answer");
        f->kind[0] = f->kind[1] = KIND_DONE;
        return;
    }
    size_t other_n = (size_t)(h->fed[!dir] - start[!dir]);
    size_t dir_early = start[dir] < at ? (size_t)(at - start[dir]) : 0;
    const uint8_t *rest = start[dir] < at ? p : p + (start[dir] - at);
    size_t left = start[dir] < at ? n : n - (size_t)(start[dir] - at);
    if (kind == HTTP_TUNNEL_CONNECT) {
        /* Whatever runs inside CONNECT is read like a new connection: HTTP
         * is parsed again, TLS gives its ClientHello. */
        if (other_n > 0 || dir_early > 0) {
            raise_anomaly(f, dir, "http", "tunnel data sent before the answer");
            f->kind[0] = f->kind[1] = KIND_DONE;
            return;
        }
        http_release(f);
        f->kind[0] = f->kind[1] = KIND_NONE;
        if (left > 0)
            flow_dispatch(f, dir, rest, left);
        return;
    }
    if (kind == HTTP_TUNNEL_OTHER) {
        raise_anomaly(f, dir, "http", "upgrade to a protocol sluice cannot read");
        f->kind[0] = f->kind[1] = KIND_DONE;
        return;
    }
    h->tunnel = tunnel_new(f, kind, cd, &h->msg[cd], h->ws_extensions, h->h2_settings, h->h2_head);
    if (h->tunnel == NULL) {
        f->kind[0] = f->kind[1] = KIND_DONE;
        return;
    }
    f->kind[0] = f->kind[1] = KIND_TUNNEL;
    f->app_proto = kind == HTTP_TUNNEL_WEBSOCKET ? "websocket" : "http2";
    if (other_n > 0)
        tunnel_feed(h->tunnel, !dir, before_other, other_n);
    if (dir_early > 0)
        tunnel_feed(h->tunnel, dir, before_dir, dir_early);
    if (left > 0)
        tunnel_feed(h->tunnel, dir, rest, left);
    sl_buf_free(&h->early[0]);
    sl_buf_free(&h->early[1]);
}

/* Keeps the first bytes of dir until a head was read in it. */
static void keep_early(struct http_state *h, int dir, const uint8_t *p, size_t n)
{
    struct sl_buf *b = &h->early[dir];

    if (h->head_seen[dir] || h->fed[dir] != b->len || b->len + n > b->limit) {
        sl_buf_free(b);
        b->limit = 0; /* never again: offsets would no longer match */
        return;
    }
    if (sl_buf_append(b, p, n) < n) {
        sl_buf_free(b);
        b->limit = 0;
    }
}

static void http_feed(struct dpi_flow *f, int dir, const uint8_t *p, size_t n)
{
    if (f->http == NULL && http_start(f, dir) != 0)
        return;
    uint64_t at = f->http->fed[dir];
    if (f->http->early[dir].limit)
        keep_early(f->http, dir, p, n);
    f->http->fed[dir] += n;
    http_parser_feed(f->http->parser, dir, p, n);
    http_tunnel(f, dir, p, n, at);
    if (f->http == NULL || f->kind[dir] == KIND_TUNNEL || f->kind[dir] == KIND_NONE)
        return;
    if (!http_parser_active(f->http->parser, dir))
        f->kind[dir] = KIND_DONE;
    /* Neither direction can be HTTP any more: give the memory back. */
    if (!http_parser_active(f->http->parser, 0) && !http_parser_active(f->http->parser, 1))
        http_release(f);
}

/* --- streams ---------------------------------------------------------------- */

static void flow_dispatch(struct dpi_flow *f, int dir, const uint8_t *data, size_t len)
{
    if (f->kind[dir] == KIND_NONE)
        f->kind[dir] = data[0] == 0x16 ? KIND_HELLO : KIND_HTTP;
    if (f->kind[dir] == KIND_HELLO)
        hello_feed(f, dir, data, len);
    else if (f->kind[dir] == KIND_HTTP)
        http_feed(f, dir, data, len);
    else if (f->kind[dir] == KIND_TUNNEL && f->http && f->http->tunnel)
        tunnel_feed(f->http->tunnel, dir, data, len);
}

enum dpi_verdict dpi_flow_stream(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir,
                                 const uint8_t *data, size_t len, uint64_t ts_us)
{
    (void)e;
    f->now = ts_us;
    if (len == 0 || f->verdict == DPI_BLOCK)
        return f->verdict;
    flow_dispatch(f, dir, data, len);
    return f->verdict;
}

void dpi_flow_gap(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir, uint64_t len,
                  uint64_t ts_us)
{
    (void)e;
    f->now = ts_us;
    if (f->kind[dir] == KIND_HELLO) {
        hello_done(f, dir);
    } else if (f->kind[dir] == KIND_HTTP && f->http) {
        f->http->fed[dir] += len;
        http_parser_gap(f->http->parser, dir, len);
        if (f->http && !http_parser_active(f->http->parser, dir))
            f->kind[dir] = KIND_DONE;
    } else if (f->kind[dir] == KIND_TUNNEL) {
        /* Frames cannot be found again after a hole: what follows is not
         * read, and that is said. */
        raise_anomaly(
            f, dir, f->app_proto && strcmp(f->app_proto, "websocket") == 0 ? "websocket" : "http2",
            "bytes missing in the stream: the rest cannot be read");
        f->kind[dir] = KIND_DONE;
    } else if (f->kind[dir] == KIND_NONE) {
        /* The start of the stream is missing: its first bytes cannot be
         * trusted to tell what it is. */
        f->kind[dir] = KIND_DONE;
    }
}

enum dpi_verdict dpi_flow_stream_end(struct dpi_engine *e, struct dpi_flow *f, enum dpi_dir dir,
                                     uint64_t ts_us)
{
    (void)e;
    f->now = ts_us;
    if (f->stream_ended[dir])
        return f->verdict;
    f->stream_ended[dir] = 1;
    if (f->kind[dir] == KIND_HELLO)
        hello_done(f, dir);
    if (f->http && f->http->tunnel)
        tunnel_eof(f->http->tunnel, dir);
    else if (f->http)
        http_parser_eof(f->http->parser, dir);
    if (f->kind[dir] != KIND_DONE)
        f->kind[dir] = KIND_DONE;
    return f->verdict;
}

/* --- life cycle -------------------------------------------------------------- */

struct dpi_flow *dpi_flow_new(struct dpi_engine *e, const struct dpi_flow_meta *meta)
{
    struct dpi_flow *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->nf = ndpi_flow_malloc(ndpi_detection_get_sizeof_ndpi_flow_struct());
    if (f->nf == NULL) {
        free(f);
        return NULL;
    }
    memset(f->nf, 0, ndpi_detection_get_sizeof_ndpi_flow_struct());
    f->meta = *meta;
    f->e = e;
    f->ndpi.confidence = "Unknown";
    f->ndpi.proto = "Unknown";
    f->ndpi.proto_id = "0";
    f->ndpi.category = "Unspecified";
    sl_buf_init(&f->hello, 0);
    e->stats.flows++;
    return f;
}

/* Suricata-style app_proto: what the parsers saw, else nDPI's master name. */
static const char *app_proto(struct dpi_flow *f, char *buf, size_t len)
{
    if (f->app_proto)
        return f->app_proto;
    if (f->proto.master_protocol == NDPI_PROTOCOL_UNKNOWN &&
        f->proto.app_protocol == NDPI_PROTOCOL_UNKNOWN)
        return "failed";
    snprintf(buf, len, "%s", f->proto_name);
    for (char *c = buf; *c; c++) {
        if (*c == '.') {
            *c = '\0';
            break;
        }
        *c = (char)tolower((unsigned char)*c);
    }
    return buf;
}

void dpi_flow_end(struct dpi_engine *e, struct dpi_flow *f, uint64_t ts_us)
{
    char proto_buf[64];

    (void)e;
    if (f->ended)
        return;
    f->ended = 1;
    f->now = ts_us;
    if (!f->ndpi_done && f->nf)
        ndpi_complete(f, 1);
    for (int d = 0; d < 2; d++)
        dpi_flow_stream_end(e, f, (enum dpi_dir)d, ts_us);
    http_release(f);
    report_ndpi_tls(f);

    const char *ap = app_proto(f, proto_buf, sizeof(proto_buf));
    struct dpi_event ev = {.type = DPI_EVENT_FLOW};
    f->app_proto = ap;
    emit(f, &ev);
}

void dpi_flow_free(struct dpi_engine *e, struct dpi_flow *f)
{
    (void)e;
    if (f == NULL)
        return;
    if (f->nf)
        ndpi_flow_free(f->nf);
    http_release(f);
    sl_buf_free(&f->hello);
    free(f->ndpi_tls);
    free(f);
}

int dpi_flow_wants_more(const struct dpi_flow *f)
{
    if (!f->ndpi_done)
        return 1;
    if (f->verdict == DPI_BLOCK || f->meta.l4proto != IPPROTO_TCP)
        return 0;
    if (f->kind[0] == KIND_NONE && f->kind[1] == KIND_NONE)
        return 1;
    for (int d = 0; d < 2; d++) {
        if (f->kind[d] == KIND_HELLO)
            return 1;
        if (f->kind[d] == KIND_TUNNEL && f->http && f->http->tunnel &&
            tunnel_active(f->http->tunnel, d))
            return 1;
        if (f->kind[d] == KIND_HTTP && f->http && http_parser_active(f->http->parser, d))
            return 1;
    }
    return 0;
}

enum dpi_verdict dpi_flow_verdict(const struct dpi_flow *f)
{
    return f->verdict;
}

const struct dpi_ndpi_facts *dpi_flow_ndpi(const struct dpi_flow *f)
{
    return &f->ndpi;
}

const struct dpi_flow_meta *dpi_flow_meta(const struct dpi_flow *f)
{
    return &f->meta;
}

void dpi_flow_stream_blocks(struct dpi_flow *f, int on)
{
    f->stream_blocks = on != 0;
}

size_t dpi_flow_blocked_streams(struct dpi_flow *f, uint32_t *ids, size_t max)
{
    size_t n = f->nblocked < max ? f->nblocked : max;

    memcpy(ids, f->blocked, n * sizeof(*ids));
    memmove(f->blocked, f->blocked + n, (f->nblocked - n) * sizeof(*ids));
    f->nblocked -= (unsigned)n;
    return n;
}

void dpi_flow_judge_held(struct dpi_flow *f, enum dpi_dir dir, uint32_t stream)
{
    if (f->http && f->http->tunnel)
        tunnel_judge_prefix(f->http->tunnel, (int)dir, stream);
}

int dpi_flow_in_tunnel(const struct dpi_flow *f)
{
    return f->kind[0] == KIND_TUNNEL || f->kind[1] == KIND_TUNNEL || (f->http && f->http->tunnel);
}

int dpi_flow_mid_message(const struct dpi_flow *f, enum dpi_dir dir)
{
    if (f->kind[dir] != KIND_HTTP || f->http == NULL)
        return 0;
    return http_parser_mid_message(f->http->parser, (int)dir);
}
