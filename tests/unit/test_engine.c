/*
 * The engine on buffers: HTTP conversations in, events and verdicts out.
 * What matters to a user: EICAR is found however the body is encoded or cut
 * into pieces, the verdict turns to block on exactly the bytes that complete
 * a malicious body (so the inline feeder holds that packet), clean bodies are
 * hashed like the file they are, and limits are reported.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "dpi.h"

static const char eicar[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

#define MAX_EVENTS 32

struct seen {
    int n;
    enum dpi_event_type type[MAX_EVENTS];
    char sig[MAX_EVENTS][128];
    char sha[MAX_EVENTS][65];
    char url[MAX_EVENTS][128];
    char sni[MAX_EVENTS][128];
    uint64_t size[MAX_EVENTS];
    int state[MAX_EVENTS];
    int to_server[MAX_EVENTS];
    char proto[MAX_EVENTS][64];
};

static void on_event(void *ctx, const struct dpi_event *ev)
{
    struct seen *s = ctx;
    if (s->n >= MAX_EVENTS)
        return;
    int i = s->n++;
    memset(s->sig[i], 0, sizeof(s->sig[i]));
    s->sha[i][0] = s->url[i][0] = s->sni[i][0] = '\0';
    s->type[i] = ev->type;
    snprintf(s->proto[i], sizeof(s->proto[i]), "%s", ev->ndpi->proto);
    if (ev->alert)
        snprintf(s->sig[i], sizeof(s->sig[i]), "%s", ev->alert->signature);
    if (ev->anomaly)
        snprintf(s->sig[i], sizeof(s->sig[i]), "%s: %s", ev->anomaly->layer, ev->anomaly->reason);
    if (ev->body) {
        snprintf(s->sha[i], sizeof(s->sha[i]), "%s", ev->body->sha256);
        s->size[i] = ev->body->size;
        s->state[i] = ev->body->state;
        s->to_server[i] = ev->body->to_server;
    }
    if (ev->http && ev->http->uri)
        snprintf(s->url[i], sizeof(s->url[i]), "%s", ev->http->uri);
    if (ev->tls)
        snprintf(s->sni[i], sizeof(s->sni[i]), "%s", ev->tls->sni);
}

static int count(const struct seen *s, enum dpi_event_type t)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += s->type[i] == t;
    return n;
}

static int find(const struct seen *s, enum dpi_event_type t)
{
    for (int i = 0; i < s->n; i++)
        if (s->type[i] == t)
            return i;
    return -1;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned len;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static struct rules_policy *policy_from(const char *yaml)
{
    char err[RULES_ERRLEN];
    struct rules_policy *p =
        rules_policy_parse("test.yaml", yaml, strlen(yaml), 1, err, sizeof(err));
    if (p == NULL)
        fprintf(stderr, "policy: %s\n", err);
    return p;
}

struct conv {
    struct rules_policy *policy;
    struct dpi_engine *e;
    struct dpi_flow *f;
    struct seen seen;
};

static void conv_open(struct conv *c, const char *yaml)
{
    char err[256];
    struct dpi_flow_meta meta = {
        .flow_id = 1, .family = 4, .l4proto = 6, .sport = 40000, .dport = 80};
    memset(&c->seen, 0, sizeof(c->seen));
    c->policy = policy_from(yaml);
    c->e = dpi_engine_new(c->policy, on_event, &c->seen, err, sizeof(err));
    if (c->e == NULL)
        fprintf(stderr, "engine: %s\n", err);
    c->f = dpi_flow_new(c->e, &meta);
}

static enum dpi_verdict send(struct conv *c, enum dpi_dir d, const void *p, size_t n)
{
    return dpi_flow_stream(c->e, c->f, d, p, n, 1000000);
}

static void conv_close(struct conv *c)
{
    dpi_flow_end(c->e, c->f, 2000000);
    dpi_flow_free(c->e, c->f);
    dpi_engine_free(c->e);
    rules_policy_unref(c->policy);
}

static void get(struct conv *c, const char *url)
{
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: example.org\r\n\r\n", url);
    send(c, DPI_DIR_FWD, req, (size_t)n);
}

static size_t response(char *out, size_t cap, const char *headers, const void *body, size_t n)
{
    size_t h = (size_t)snprintf(out, cap, "HTTP/1.1 200 OK\r\n%s\r\n", headers);
    memcpy(out + h, body, n);
    return h + n;
}

/* The body's last byte flips the verdict, not an earlier one. */
static void test_eicar_verdict_on_last_byte(void)
{
    struct conv c;
    char buf[512];

    conv_open(&c, "");
    get(&c, "/eicar.com");
    size_t n = response(buf, sizeof(buf), "Content-Length: 68\r\n", eicar, 68);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf, n - 1), DPI_PASS);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 0);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf + n - 1, 1), DPI_BLOCK);
    int a = find(&c.seen, DPI_EVENT_ALERT);
    CHECK(a >= 0);
    if (a >= 0) {
        CHECK_EQ_STR(c.seen.sig[a], "EICAR_Test_File");
        CHECK_EQ_STR(c.seen.url[a], "/eicar.com");
    }
    CHECK_EQ_INT(dpi_flow_verdict(c.f), DPI_BLOCK);
    conv_close(&c);
}

static void test_audit_policy_does_not_block(void)
{
    struct conv c;
    char buf[512];

    conv_open(&c, "yara:\n  action: alert\n");
    get(&c, "/eicar.com");
    size_t n = response(buf, sizeof(buf), "Content-Length: 68\r\n", eicar, 68);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf, n), DPI_PASS);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    conv_close(&c);
}

static size_t gzip_bytes(const void *in, size_t n, uint8_t *out, size_t cap, int wbits)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 9, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static void test_encoded_bodies(void)
{
    static const struct {
        const char *name, *encoding;
        int wbits;
        int chunked;
    } cases[] = {
        {"gzip", "gzip", 15 + 16, 0},       {"x-gzip", "x-gzip", 15 + 16, 1},
        {"zlib deflate", "deflate", 15, 0}, {"raw deflate", "deflate", -15, 1},
        {"identity chunked", NULL, 0, 1},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct conv c;
        uint8_t body[4096], wire[8192];
        char head[256], ref[65];
        size_t blen, wlen = 0;

        /* EICAR in the middle of a larger text, so it spans chunks and feeds */
        char plain[2048];
        memset(plain, 'a', sizeof(plain));
        memcpy(plain + 1000, eicar, 68);
        blen = cases[k].encoding
                   ? gzip_bytes(plain, sizeof(plain), body, sizeof(body), cases[k].wbits)
                   : (memcpy(body, plain, sizeof(plain)), sizeof(plain));
        if (cases[k].chunked) {
            for (size_t i = 0; i < blen; i += 37) {
                size_t piece = blen - i < 37 ? blen - i : 37;
                wlen += (size_t)sprintf((char *)wire + wlen, "%zx\r\n", piece);
                memcpy(wire + wlen, body + i, piece);
                wlen += piece;
                memcpy(wire + wlen, "\r\n", 2);
                wlen += 2;
            }
            memcpy(wire + wlen, "0\r\n\r\n", 5);
            wlen += 5;
        } else {
            memcpy(wire, body, blen);
            wlen = blen;
        }
        int h = 0;
        if (cases[k].encoding)
            h += snprintf(head + h, sizeof(head) - (size_t)h, "Content-Encoding: %s\r\n",
                          cases[k].encoding);
        if (cases[k].chunked)
            h += snprintf(head + h, sizeof(head) - (size_t)h, "Transfer-Encoding: chunked\r\n");
        else
            h += snprintf(head + h, sizeof(head) - (size_t)h, "Content-Length: %zu\r\n", wlen);

        conv_open(&c, "");
        get(&c, "/x");
        char start[512];
        int sl = snprintf(start, sizeof(start), "HTTP/1.1 200 OK\r\n%s\r\n", head);
        send(&c, DPI_DIR_REV, start, (size_t)sl);
        /* odd-sized feeds, as segments would cut them */
        for (size_t i = 0; i < wlen; i += 13)
            send(&c, DPI_DIR_REV, wire + i, wlen - i < 13 ? wlen - i : 13);
        int a = find(&c.seen, DPI_EVENT_ALERT);
        if (a < 0)
            fprintf(stderr, "case %s: no alert\n", cases[k].name);
        CHECK(a >= 0);
        int hev = find(&c.seen, DPI_EVENT_HTTP);
        sha256_hex(plain, sizeof(plain), ref);
        CHECK(hev >= 0);
        if (hev >= 0) {
            CHECK_EQ_STR(c.seen.sha[hev], ref);
            CHECK_EQ_INT(c.seen.size[hev], sizeof(plain));
            CHECK_EQ_INT(c.seen.state[hev], DPI_BODY_COMPLETE);
        }
        conv_close(&c);
    }
}

static void test_upload(void)
{
    struct conv c;
    char req[512];

    conv_open(&c, "");
    int n =
        snprintf(req, sizeof(req),
                 "POST /up HTTP/1.1\r\nHost: example.org\r\nContent-Length: 68\r\n\r\n%s", eicar);
    CHECK_EQ_INT(send(&c, DPI_DIR_FWD, req, (size_t)n), DPI_BLOCK);
    int a = find(&c.seen, DPI_EVENT_ALERT);
    CHECK(a >= 0 && c.seen.to_server[a] == 1);
    conv_close(&c);
}

static void test_limits(void)
{
    struct conv c;
    static char big[20000];
    char head[128];

    /* EICAR past the body limit: found in a later window, the cut is reported */
    memset(big, 'b', sizeof(big));
    memcpy(big + 10000, eicar, 68);
    conv_open(&c, "limits:\n  body: 4KiB\n");
    get(&c, "/big");
    int h =
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof(big));
    send(&c, DPI_DIR_REV, head, (size_t)h);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, big, sizeof(big)), DPI_BLOCK);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    conv_close(&c);

    /* the same across a window boundary (4 KiB windows, EICAR at 4090) */
    memset(big, 'b', sizeof(big));
    memcpy(big + 4090, eicar, 68);
    conv_open(&c, "limits:\n  body: 4KiB\n");
    get(&c, "/edge");
    send(&c, DPI_DIR_REV, head, (size_t)h);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, big, sizeof(big)), DPI_BLOCK);
    conv_close(&c);

    /* a clean long body: the cut is reported, nothing alerts */
    memset(big, 'b', sizeof(big));
    conv_open(&c, "limits:\n  body: 4KiB\n");
    get(&c, "/big");
    send(&c, DPI_DIR_REV, head, (size_t)h);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, big, sizeof(big)), DPI_PASS);
    int e = find(&c.seen, DPI_EVENT_HTTP);
    CHECK(e >= 0 && c.seen.state[e] == DPI_BODY_CUT && c.seen.size[e] == sizeof(big));
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 0);
    conv_close(&c);

    /* a gap inside the body: reported incomplete */
    conv_open(&c, "");
    get(&c, "/gap");
    send(&c, DPI_DIR_REV, head, (size_t)h);
    send(&c, DPI_DIR_REV, big, 1000);
    dpi_flow_gap(c.e, c.f, DPI_DIR_REV, 1000, 1000000);
    send(&c, DPI_DIR_REV, big + 2000, sizeof(big) - 2000);
    e = find(&c.seen, DPI_EVENT_HTTP);
    CHECK(e >= 0 && c.seen.state[e] == DPI_BODY_INCOMPLETE);
    conv_close(&c);

    /* the stream ends mid-body: reported incomplete at flow end */
    conv_open(&c, "");
    get(&c, "/short");
    send(&c, DPI_DIR_REV, head, (size_t)h);
    send(&c, DPI_DIR_REV, big, 100);
    conv_close(&c);
}

static void test_memory_total(void)
{
    char err[256];
    struct seen seen = {0};
    struct rules_policy *p = policy_from("limits:\n  body: 1MiB\n  bodies_total: 1MiB\n");
    struct dpi_engine *e = dpi_engine_new(p, on_event, &seen, err, sizeof(err));
    struct dpi_flow_meta meta = {.flow_id = 1, .family = 4, .l4proto = 6};
    struct dpi_flow *f[3];
    static char chunk[600 * 1024];
    char head[128];
    int h = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 1 << 20);
    struct dpi_engine_stats st;

    for (int i = 0; i < 3; i++) {
        f[i] = dpi_flow_new(e, &meta);
        dpi_flow_stream(e, f[i], DPI_DIR_FWD, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, 1);
        dpi_flow_stream(e, f[i], DPI_DIR_REV, (const uint8_t *)head, (size_t)h, 1);
        dpi_flow_stream(e, f[i], DPI_DIR_REV, (const uint8_t *)chunk, sizeof(chunk), 1);
        dpi_engine_stats(e, &st);
        CHECK(st.body_bytes_held <= (1u << 20));
    }
    for (int i = 0; i < 3; i++) {
        dpi_flow_end(e, f[i], 2);
        dpi_flow_free(e, f[i]);
    }
    dpi_engine_stats(e, &st);
    CHECK_EQ_INT(st.body_bytes_held, 0);
    dpi_engine_free(e);
    rules_policy_unref(p);
}

/* A minimal TLS 1.2 ClientHello with server_name sni; returns its length. */
static size_t build_hello(uint8_t *out, const char *sni)
{
    size_t n = strlen(sni), ext = 4 + 5 + n, body = 2 + 32 + 1 + 4 + 2 + 2 + ext, i = 0;

    out[i++] = 0x16, out[i++] = 0x03, out[i++] = 0x01;
    out[i++] = (uint8_t)((body + 4) >> 8), out[i++] = (uint8_t)(body + 4);
    out[i++] = 0x01, out[i++] = 0, out[i++] = (uint8_t)(body >> 8), out[i++] = (uint8_t)body;
    out[i++] = 0x03, out[i++] = 0x03;
    memset(out + i, 0x11, 32), i += 32;                           /* random */
    out[i++] = 0;                                                 /* session id */
    out[i++] = 0, out[i++] = 2, out[i++] = 0xc0, out[i++] = 0x2f; /* one suite */
    out[i++] = 1, out[i++] = 0;                                   /* null compression */
    out[i++] = (uint8_t)(ext >> 8), out[i++] = (uint8_t)ext;
    out[i++] = 0, out[i++] = 0; /* server_name */
    out[i++] = (uint8_t)((5 + n) >> 8), out[i++] = (uint8_t)(5 + n);
    out[i++] = (uint8_t)((3 + n) >> 8), out[i++] = (uint8_t)(3 + n);
    out[i++] = 0, out[i++] = (uint8_t)(n >> 8), out[i++] = (uint8_t)n;
    memcpy(out + i, sni, n);
    return i + n;
}

static void test_tls_hello(void)
{
    struct conv c;
    uint8_t hello[128];
    size_t n = build_hello(hello, "a.example");

    conv_open(&c, "");
    /* three pieces, as three segments */
    send(&c, DPI_DIR_FWD, hello, 3);
    send(&c, DPI_DIR_FWD, hello + 3, 30);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_TLS), 0);
    send(&c, DPI_DIR_FWD, hello + 33, n - 33);
    int t = find(&c.seen, DPI_EVENT_TLS);
    CHECK(t >= 0);
    if (t >= 0)
        CHECK_EQ_STR(c.seen.sni[t], "a.example");
    conv_close(&c);
}

static void test_not_http(void)
{
    struct conv c;
    conv_open(&c, "");
    send(&c, DPI_DIR_FWD, "SSH-2.0-OpenSSH_9.2\r\n", 21);
    send(&c, DPI_DIR_REV, "SSH-2.0-OpenSSH_9.2\r\n", 21);
    conv_close(&c);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_HTTP), 0);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_FLOW), 1);
}

/* nDPI sees packets: an HTTP GET in one IPv4 packet is classified HTTP. */
static void test_ndpi_packets(void)
{
    struct conv c;
    uint8_t pkt[200];
    const char *get_req = "GET / HTTP/1.1\r\nHost: example.org\r\nUser-Agent: curl/7.88\r\n\r\n";
    size_t plen = strlen(get_req), len = 40 + plen;

    memset(pkt, 0, sizeof(pkt));
    pkt[0] = 0x45;
    pkt[2] = (uint8_t)(len >> 8), pkt[3] = (uint8_t)len;
    pkt[8] = 64, pkt[9] = 6;
    memcpy(pkt + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
    pkt[20] = 0x9c, pkt[21] = 0x40, pkt[22] = 0x00, pkt[23] = 80;
    pkt[32] = 0x50, pkt[33] = 0x18;
    memcpy(pkt + 40, get_req, plen);
    conv_open(&c, "");
    dpi_flow_packet(c.e, c.f, DPI_DIR_FWD, pkt, len, 1000);
    conv_close(&c);
    int f = find(&c.seen, DPI_EVENT_FLOW);
    CHECK(f >= 0);
    if (f >= 0)
        CHECK_EQ_STR(c.seen.proto[f], "HTTP");
}

/* A flow with these ports and protocol; tls_policy as the NFQUEUE feeder
 * sets it (dpi_engine_set_tls_policy). */
static void conv_open_ports(struct conv *c, const char *yaml, int l4proto, unsigned sport,
                            unsigned dport, int tls_policy)
{
    char err[256];
    struct dpi_flow_meta meta = {.flow_id = 1,
                                 .family = 4,
                                 .l4proto = (uint8_t)l4proto,
                                 .sport = (uint16_t)sport,
                                 .dport = (uint16_t)dport};
    memset(&c->seen, 0, sizeof(c->seen));
    c->policy = policy_from(yaml);
    c->e = dpi_engine_new(c->policy, on_event, &c->seen, err, sizeof(err));
    if (c->e == NULL)
        fprintf(stderr, "engine: %s\n", err);
    dpi_engine_set_tls_policy(c->e, tls_policy);
    c->f = dpi_flow_new(c->e, &meta);
}

static int find_sig(const struct seen *s, const char *sig)
{
    for (int i = 0; i < s->n; i++)
        if (s->type[i] == DPI_EVENT_ALERT && strcmp(s->sig[i], sig) == 0)
            return i;
    return -1;
}

#define OTHER_ALERT "TLS on a port not intercepted (tls.other_ports: alert)"
#define OTHER_BLOCK "TLS on a port not intercepted (tls.other_ports: block)"
#define QUIC_BLOCK  "QUIC blocked (tls.quic: block)"

/* A ClientHello to dport (or from the server's side, sport): the alert
 * the policy asks for, with the hello's server name, and its verdict. */
static void other_port_case(const char *yaml, unsigned sport, unsigned dport, int tls_policy,
                            enum dpi_dir dir, const char *want_sig, enum dpi_verdict want)
{
    struct conv c;
    uint8_t hello[128];
    size_t n = build_hello(hello, "other.example");

    conv_open_ports(&c, yaml, 6, sport, dport, tls_policy);
    enum dpi_verdict v = send(&c, dir, hello, n);
    CHECK_EQ_INT(v, want);
    int tls = find(&c.seen, DPI_EVENT_TLS);
    CHECK(tls >= 0); /* the tls event is written whatever the port */
    int a = find(&c.seen, DPI_EVENT_ALERT);
    if (want_sig == NULL) {
        CHECK_EQ_INT(a, -1);
    } else {
        CHECK(a > tls);
        if (a >= 0) {
            CHECK_EQ_STR(c.seen.sig[a], want_sig);
            CHECK_EQ_STR(c.seen.sni[a], "other.example");
        }
    }
    conv_close(&c);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), want_sig ? 1 : 0);
}

static void test_tls_other_ports(void)
{
    /* The defaults: tls.ports [443] intercepted, other ports alert. */
    other_port_case("", 40000, 8443, 1, DPI_DIR_FWD, OTHER_ALERT, DPI_PASS);
    other_port_case("", 40000, 443, 1, DPI_DIR_FWD, NULL, DPI_PASS);
    other_port_case("tls: {other_ports: block}\n", 40000, 8443, 1, DPI_DIR_FWD, OTHER_BLOCK,
                    DPI_BLOCK);
    other_port_case("tls: {other_ports: block}\n", 40000, 443, 1, DPI_DIR_FWD, NULL, DPI_PASS);
    other_port_case("tls: {other_ports: pass}\n", 40000, 8443, 1, DPI_DIR_FWD, NULL, DPI_PASS);
    /* Ranges of tls.ports count as intercepted. */
    other_port_case("tls: {ports: [443, \"8000:8999\"]}\n", 40000, 8443, 1, DPI_DIR_FWD, NULL,
                    DPI_PASS);
    other_port_case("tls: {ports: [443, \"8000:8999\"]}\n", 40000, 9443, 1, DPI_DIR_FWD,
                    OTHER_ALERT, DPI_PASS);
    /* Interception off: no port is intercepted. */
    other_port_case("tls: {intercept: false, other_ports: block}\n", 40000, 443, 1, DPI_DIR_FWD,
                    OTHER_BLOCK, DPI_BLOCK);
    /* A flow picked up from the server's side: the hello's receiver is the
     * server, whose port is the flow's source port. */
    other_port_case("", 443, 40000, 1, DPI_DIR_REV, NULL, DPI_PASS);
    other_port_case("", 8443, 40000, 1, DPI_DIR_REV, OTHER_ALERT, DPI_PASS);
    /* Captures and the proxy's plaintext: not this policy's business. */
    other_port_case("tls: {other_ports: block}\n", 40000, 8443, 0, DPI_DIR_FWD, NULL, DPI_PASS);
}

/* A UDP datagram from 10.0.0.1:sport to 10.0.0.2:dport (the start of a
 * QUIC Initial; the block is by port, whatever the bytes). */
static size_t udp_packet(uint8_t *pkt, unsigned sport, unsigned dport)
{
    size_t plen = 64, len = 28 + plen;

    memset(pkt, 0, len);
    pkt[0] = 0x45;
    pkt[2] = (uint8_t)(len >> 8), pkt[3] = (uint8_t)len;
    pkt[8] = 64, pkt[9] = 17;
    memcpy(pkt + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
    pkt[20] = (uint8_t)(sport >> 8), pkt[21] = (uint8_t)sport;
    pkt[22] = (uint8_t)(dport >> 8), pkt[23] = (uint8_t)dport;
    pkt[24] = (uint8_t)((8 + plen) >> 8), pkt[25] = (uint8_t)(8 + plen);
    pkt[28] = 0xc3, pkt[29] = 0, pkt[30] = 0, pkt[31] = 0, pkt[32] = 1; /* long header, v1 */
    return len;
}

static void quic_case(const char *yaml, unsigned dport, int tls_policy, const char *want_sig)
{
    struct conv c;
    uint8_t pkt[128];
    size_t len = udp_packet(pkt, 50000, dport);

    conv_open_ports(&c, yaml, 17, 50000, dport, tls_policy);
    dpi_flow_packet(c.e, c.f, DPI_DIR_FWD, pkt, len, 1000);
    CHECK_EQ_INT(dpi_flow_verdict(c.f), want_sig ? DPI_BLOCK : DPI_PASS);
    /* The client tries again: still blocked, reported once. */
    dpi_flow_packet(c.e, c.f, DPI_DIR_FWD, pkt, len, 2000);
    CHECK_EQ_INT(dpi_flow_verdict(c.f), want_sig ? DPI_BLOCK : DPI_PASS);
    conv_close(&c);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), want_sig ? 1 : 0);
    if (want_sig)
        CHECK(find_sig(&c.seen, want_sig) >= 0);
}

static void test_quic(void)
{
    quic_case("", 443, 1, QUIC_BLOCK);
    quic_case("tls: {quic: pass}\n", 443, 1, NULL);
    quic_case("", 53, 1, NULL);
    quic_case("tls: {ports: [443, 8443]}\n", 8443, 1, QUIC_BLOCK);
    /* Blocked by port whether or not TCP is intercepted there. */
    quic_case("tls: {intercept: false}\n", 443, 1, QUIC_BLOCK);
    quic_case("", 443, 0, NULL);
}

/* Inline: a chunked body whose EICAR bytes arrive before its last chunk is
 * blocked on the packet that completes the signature, not on the last chunk
 * (the receiver writes chunks as they come), and alerts once. */
static void test_inline_scans_while_arriving(void)
{
    char buf[512];

    for (int on = 0; on <= 1; on++) {
        struct conv c;
        conv_open(&c, "");
        dpi_engine_set_inline(c.e, on);
        get(&c, "/eicar.com");
        size_t n = (size_t)snprintf(buf, sizeof(buf),
                                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "44\r\n%s\r\n",
                                    eicar);
        /* Ten bytes at a time, as a server writing small segments sends it. */
        enum dpi_verdict v = DPI_PASS;
        size_t sent = 0, blocked_at = 0;
        while (sent < n) {
            size_t k = n - sent < 10 ? n - sent : 10;
            v = send(&c, DPI_DIR_REV, buf + sent, k);
            sent += k;
            if (v == DPI_BLOCK && blocked_at == 0)
                blocked_at = sent;
        }
        size_t eicar_end = n - 2; /* before the chunk's CRLF */
        if (on) {
            CHECK(blocked_at >= eicar_end && blocked_at < eicar_end + 10);
            CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
        } else {
            CHECK_EQ_INT(blocked_at, 0);
            CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 0);
        }
        CHECK_EQ_INT(send(&c, DPI_DIR_REV, "0\r\n\r\n", 5), DPI_BLOCK);
        CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
        conv_close(&c);
    }

    /* The whole body in one packet: matched while arriving and at its end,
     * reported once. */
    struct conv c;
    conv_open(&c, "");
    dpi_engine_set_inline(c.e, 1);
    get(&c, "/eicar.com");
    size_t n = response(buf, sizeof(buf), "Content-Length: 68\r\n", eicar, 68);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf, n), DPI_BLOCK);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    conv_close(&c);
}

/* One response (or, with upload, a POST) carrying body under headers;
 * returns the verdict after the last byte. */
static enum dpi_verdict exchange(struct conv *c, int upload, const char *headers, const void *body,
                                 size_t n)
{
    static char buf[65536];
    size_t h;

    if (upload) {
        h = (size_t)snprintf(buf, sizeof(buf),
                             "POST /up HTTP/1.1\r\nHost: example.org\r\n%sContent-Length: %zu"
                             "\r\n\r\n",
                             headers, n);
    } else {
        get(c, "/f");
        h = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n%sContent-Length: %zu\r\n\r\n",
                             headers, n);
    }
    memcpy(buf + h, body, n);
    return send(c, upload ? DPI_DIR_FWD : DPI_DIR_REV, buf, h + n);
}

/* Codings stacked in one header or two, and the gzip transfer coding: the
 * body is decoded as curl decodes it. */
static void test_stacked_codings(void)
{
    struct conv c;
    uint8_t once[256], twice[512];
    size_t n1 = gzip_bytes(eicar, 68, once, sizeof(once), 31);
    size_t n2 = gzip_bytes(once, n1, twice, sizeof(twice), 15); /* zlib around gzip */

    conv_open(&c, "");
    CHECK_EQ_INT(
        exchange(&c, 0, "Content-Encoding: gzip\r\nContent-Encoding: deflate\r\n", twice, n2),
        DPI_BLOCK);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ANOMALY), 0);
    conv_close(&c);

    conv_open(&c, "");
    CHECK_EQ_INT(exchange(&c, 0, "Content-Encoding: gzip, deflate\r\n", twice, n2), DPI_BLOCK);
    conv_close(&c);

    /* A coding no client decodes: an anomaly, which blocks by default ... */
    conv_open(&c, "");
    CHECK_EQ_INT(exchange(&c, 0, "Content-Encoding: compress\r\n", "abc", 3), DPI_BLOCK);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ANOMALY), 1);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 0);
    conv_close(&c);
    /* ... or only alerts when the policy says so. */
    conv_open(&c, "http:\n  anomaly: alert\n");
    CHECK_EQ_INT(exchange(&c, 0, "Content-Encoding: compress\r\n", "abc", 3), DPI_PASS);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ANOMALY), 1);
    conv_close(&c);
}

/* What the receiver unpacks: a .gz file, a base64 multipart upload. */
static void test_unpacked(void)
{
    struct conv c;
    uint8_t gz[256];
    size_t n = gzip_bytes(eicar, 68, gz, sizeof(gz), 31);

    conv_open(&c, "");
    CHECK_EQ_INT(exchange(&c, 0, "Content-Type: application/gzip\r\n", gz, n), DPI_BLOCK);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    conv_close(&c);

    /* Not unpacked when nothing is there to unpack: a clean .gz passes. */
    n = gzip_bytes("harmless", 8, gz, sizeof(gz), 31);
    conv_open(&c, "");
    CHECK_EQ_INT(exchange(&c, 0, "Content-Type: application/gzip\r\n", gz, n), DPI_PASS);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT) + count(&c.seen, DPI_EVENT_ANOMALY), 0);
    conv_close(&c);

    static const char multipart[] =
        "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.com\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5E\r\n"
        "QVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=\r\n--XyZ--\r\n";
    conv_open(&c, "");
    CHECK_EQ_INT(exchange(&c, 1, "Content-Type: multipart/form-data; boundary=XyZ\r\n", multipart,
                          sizeof(multipart) - 1),
                 DPI_BLOCK);
    int a = find(&c.seen, DPI_EVENT_ALERT);
    CHECK(a >= 0 && c.seen.to_server[a] == 1);
    conv_close(&c);
}

static char data_dir[4096];

static uint8_t *load(const char *name, size_t *n)
{
    return check_read_file(data_dir, name, n);
}

/* WebSocket captured between python3-websockets client and server (plain,
 * permessage-deflate with and without context takeover): the server's
 * message with EICAR is found, nothing is an anomaly. */
static void test_websocket(void)
{
    static const char *const names[] = {"plain", "deflate", "deflate_nct"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char file[64];
        size_t nc = 0, ns = 0;
        snprintf(file, sizeof(file), "ws/%s.c2s", names[i]);
        uint8_t *c2s = load(file, &nc);
        snprintf(file, sizeof(file), "ws/%s.s2c", names[i]);
        uint8_t *s2c = load(file, &ns);
        if (c2s == NULL || s2c == NULL)
            return;
        const uint8_t *end = memmem(c2s, nc, "\r\n\r\n", 4);
        size_t head = end ? (size_t)(end + 4 - c2s) : nc;
        struct conv c;
        conv_open(&c, "");
        send(&c, DPI_DIR_FWD, c2s, head);
        /* The server's stream, then the client's frames after the 101. */
        enum dpi_verdict v = DPI_PASS;
        for (size_t off = 0; off < ns && v == DPI_PASS; off += 7)
            v = send(&c, DPI_DIR_REV, s2c + off, ns - off < 7 ? ns - off : 7);
        CHECK_EQ_INT(v, DPI_BLOCK);
        CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
        CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ANOMALY), 0);
        conv_close(&c);
        free(c2s);
        free(s2c);
    }
}

/* HTTP/2 cleartext captured from curl and nghttpd (prior knowledge,
 * Upgrade, gzip content coding, an upload), fed in capture order. */
static void http2_captures(int stream_blocks)
{
    static const char *const names[] = {"prior", "upgrade", "gzip", "upload", "pad"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char file[64];
        size_t n[2] = {0, 0}, no = 0;
        uint8_t *s[2];
        snprintf(file, sizeof(file), "h2/%s.c2s", names[i]);
        s[0] = load(file, &n[0]);
        snprintf(file, sizeof(file), "h2/%s.s2c", names[i]);
        s[1] = load(file, &n[1]);
        snprintf(file, sizeof(file), "h2/%s.order", names[i]);
        char *order = (char *)load(file, &no);
        if (s[0] == NULL || s[1] == NULL || order == NULL)
            return;
        struct conv c;
        conv_open(&c, "");
        dpi_flow_stream_blocks(c.f, stream_blocks);
        size_t off[2] = {0, 0};
        enum dpi_verdict v = DPI_PASS;
        char *save = NULL;
        uint32_t ids[8];
        size_t nids = 0;
        for (char *l = strtok_r(order, "\n", &save); l && v == DPI_PASS;
             l = strtok_r(NULL, "\n", &save)) {
            int d;
            size_t k;
            if (sscanf(l, "%d %zu", &d, &k) != 2 || d < 0 || d > 1 || off[d] + k > n[d])
                break;
            v = send(&c, d ? DPI_DIR_REV : DPI_DIR_FWD, s[d] + off[d], k);
            off[d] += k;
            nids += dpi_flow_blocked_streams(c.f, ids + nids, 8 - nids);
        }
        /* A feeder that resets streams: that stream blocked, the flow not,
         * and inspection goes on (the upload's answer is EICAR too). */
        CHECK_EQ_INT(v, stream_blocks ? DPI_PASS : DPI_BLOCK);
        CHECK_EQ_INT(nids, stream_blocks ? (size_t)count(&c.seen, DPI_EVENT_ALERT) : 0);
        for (size_t k = 0; k < nids; k++)
            CHECK(ids[k] == ids[0] && ids[k] % 2 == 1);
        CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), stream_blocks && nids == 2 ? 2 : 1);
        CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ANOMALY), 0);
        int an = find(&c.seen, DPI_EVENT_ANOMALY);
        if (an >= 0)
            fprintf(stderr, "  %s: %s\n", names[i], c.seen.sig[an]);
        conv_close(&c);
        free(s[0]);
        free(s[1]);
        free(order);
    }
}

static void test_http2(void)
{
    http2_captures(0);
    http2_captures(1);
}

/* A file fetched in two Range requests: each part is harmless, the joined
 * object is EICAR. */
static void test_range_join(void)
{
    struct conv c;
    char buf[512];
    conv_open(&c, "");
    get(&c, "/e.com");
    int h = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-33/68\r\n"
                     "Content-Length: 34\r\n\r\n%.34s",
                     eicar);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf, (size_t)h), DPI_PASS);
    get(&c, "/e.com");
    h = snprintf(buf, sizeof(buf),
                 "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 34-67/68\r\n"
                 "Content-Length: 34\r\n\r\n%s",
                 eicar + 34);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf, (size_t)h), DPI_BLOCK);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    conv_close(&c);
}

/* A file split over two responses on two connections: the seam between
 * them is scanned. */
static void test_seam(void)
{
    struct conv c;
    char buf[512];
    static const char rq[] = "GET /half HTTP/1.1\r\nHost: files.example\r\n\r\n";
    struct dpi_flow_meta meta = {
        .flow_id = 2, .family = 4, .l4proto = 6, .sport = 40002, .dport = 80};

    conv_open(&c, "");
    for (int half = 0; half < 2; half++) {
        if (half) {
            dpi_flow_end(c.e, c.f, 1500000);
            dpi_flow_free(c.e, c.f);
            c.f = dpi_flow_new(c.e, &meta); /* same client and server, new connection */
        }
        send(&c, DPI_DIR_FWD, rq, sizeof(rq) - 1);
        int h = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: 34\r\n\r\n%.34s",
                         eicar + 34 * half);
        CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf, (size_t)h), half ? DPI_BLOCK : DPI_PASS);
    }
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    conv_close(&c);
}

/* A value in the query of a request: the server application decodes it. */
static void test_query(void)
{
    struct conv c;
    char uri[512];
    int n = snprintf(uri, sizeof(uri), "/form?a=1&v=");
    for (size_t i = 0; i < 68; i++)
        n += snprintf(uri + n, sizeof(uri) - (size_t)n, "%%%02X", (unsigned char)eicar[i]);
    conv_open(&c, "");
    char req[768];
    int r = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", uri);
    CHECK_EQ_INT(send(&c, DPI_DIR_FWD, req, (size_t)r), DPI_BLOCK);
    conv_close(&c);
    conv_open(&c, "");
    get(&c, "/search?q=harmless+words&page=2");
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT) + count(&c.seen, DPI_EVENT_ANOMALY), 0);
    conv_close(&c);
}

/* HTTP inside a CONNECT tunnel is parsed like a connection of its own. */
static void test_connect(void)
{
    struct conv c;
    char buf[512];
    static const char connect[] =
        "CONNECT files.example:80 HTTP/1.1\r\nHost: files.example:80\r\n\r\n";
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    static const char inner[] = "GET /e.com HTTP/1.1\r\nHost: files.example\r\n\r\n";

    conv_open(&c, "");
    send(&c, DPI_DIR_FWD, connect, sizeof(connect) - 1);
    send(&c, DPI_DIR_REV, ok, sizeof(ok) - 1);
    send(&c, DPI_DIR_FWD, inner, sizeof(inner) - 1);
    int h = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: 68\r\n\r\n%s", eicar);
    CHECK_EQ_INT(send(&c, DPI_DIR_REV, buf, (size_t)h), DPI_BLOCK);
    int a = find(&c.seen, DPI_EVENT_ALERT);
    CHECK(a >= 0 && strcmp(c.seen.url[a], "/e.com") == 0);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ANOMALY), 0);
    conv_close(&c);
}

/* A response without a status line, on a connection seen from its start,
 * is HTTP/0.9: wget saves it. */
static void test_http09(void)
{
    struct conv c;
    struct dpi_flow_meta meta = {
        .flow_id = 9, .family = 4, .l4proto = 6, .sport = 40001, .dport = 80, .from_start = 1};
    conv_open(&c, "");
    dpi_flow_free(c.e, c.f);
    c.f = dpi_flow_new(c.e, &meta);
    get(&c, "/");
    send(&c, DPI_DIR_REV, eicar, 68);
    CHECK_EQ_INT(dpi_flow_stream_end(c.e, c.f, DPI_DIR_REV, 1500000), DPI_BLOCK);
    CHECK_EQ_INT(count(&c.seen, DPI_EVENT_ALERT), 1);
    conv_close(&c);
}

int main(void)
{
    const char *srcdir = getenv("SRCDIR");

    snprintf(data_dir, sizeof(data_dir), "%s/tests/unit/data",
             srcdir != NULL && *srcdir != '\0' ? srcdir : ".");
    test_eicar_verdict_on_last_byte();
    test_inline_scans_while_arriving();
    test_audit_policy_does_not_block();
    test_encoded_bodies();
    test_upload();
    test_stacked_codings();
    test_unpacked();
    test_websocket();
    test_http2();
    test_range_join();
    test_connect();
    test_seam();
    test_query();
    test_http09();
    test_limits();
    test_memory_total();
    test_tls_hello();
    test_tls_other_ports();
    test_quic();
    test_not_http();
    test_ndpi_packets();
    CHECK_DONE();
}
