/*
 * HTTP/1.x parser on scripted flows.
 *
 * A flow is a script of steps (bytes on a direction, a gap, an end of
 * stream). Callbacks are recorded into a text log, one line per event, with
 * the body of each message joined and shown at its end, so a test states the
 * whole expected conversation in one string. Every script is also replayed
 * one byte at a time and in random pieces: the parser must not care where
 * the network cut its input, so the log and the final state must not change.
 */
#include <stdarg.h>
#include <stdint.h>

#include "check.h"
#include "http.h"

/* --- recording ---------------------------------------------------------------- */

#define LOG_MAX  (256 * 1024)
#define BODY_MAX (64 * 1024)

struct outcome {
    char log[LOG_MAX];
    size_t len;
    uint8_t body[2][BODY_MAX];
    size_t blen[2];
    int headed[2];
    int framing[2];
    int64_t cl[2];
    uint64_t nbody[2];
    int bad; /* callback order or byte count broke the contract */
    /* the last head's strings, for tests that look at them */
    char host[512], ua[512], ct[512], ce[512], req_host[512], req_ua[512], req_uri[4096];
    /* final state */
    int active[2];
    int request_dir;
    char error[2][128];
    int tunnel, tkind;
    uint64_t tstart[2];
};

static struct outcome whole, split;
static int midflow; /* runs leave out http_parser_from_start() */

static void log_event(struct outcome *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(o->log + o->len, sizeof(o->log) - o->len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(o->log) - o->len)
        o->len += (size_t)n;
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "(null)");
}

static const char *framing_name(enum http_framing f)
{
    switch (f) {
    case HTTP_BODY_NONE:
        return "none";
    case HTTP_BODY_LENGTH:
        return "len";
    case HTTP_BODY_CHUNKED:
        return "chunked";
    case HTTP_BODY_EOF:
        return "eof";
    }
    return "?";
}

static const char *tunnel_name(int kind)
{
    switch (kind) {
    case HTTP_TUNNEL_WEBSOCKET:
        return "websocket";
    case HTTP_TUNNEL_H2C:
        return "h2c";
    case HTTP_TUNNEL_H2C_PRIOR:
        return "h2c-prior";
    case HTTP_TUNNEL_CONNECT:
        return "connect";
    case HTTP_TUNNEL_OTHER:
        return "other";
    }
    return "?";
}

static void on_head(void *ctx, int dir, const struct http_head *h)
{
    struct outcome *o = ctx;

    if (o->headed[dir])
        o->bad++;
    o->headed[dir] = 1;
    o->framing[dir] = h->framing;
    o->cl[dir] = h->content_length;
    o->nbody[dir] = 0;
    o->blen[dir] = 0;
    if (h->raw)
        log_event(o, "H%d raw", dir);
    else if (h->http09)
        log_event(o, "H%d 0.9 for=%s", dir, h->request ? h->request->uri : "-");
    else if (h->is_request)
        log_event(o, "H%d %s %s %d.%d", dir, h->method, h->uri, h->version_major, h->version_minor);
    else if (h->request)
        log_event(o, "H%d %d %d.%d for=%s %s", dir, h->status, h->version_major, h->version_minor,
                  h->request->method, h->request->uri);
    else
        log_event(o, "H%d %d %d.%d for=-", dir, h->status, h->version_major, h->version_minor);
    if (h->content_length >= 0)
        log_event(o, " cl=%lld", (long long)h->content_length);
    log_event(o, " %s", framing_name(h->framing));
    if (h->transfer_coding)
        log_event(o, " te=%s", h->transfer_coding);
    if (h->tunnel)
        log_event(o, " tunnel=%s", tunnel_name(h->tunnel));
    log_event(o, "\n");
    copy(o->host, sizeof(o->host), h->host);
    copy(o->ua, sizeof(o->ua), h->user_agent);
    copy(o->ct, sizeof(o->ct), h->content_type);
    copy(o->ce, sizeof(o->ce), h->content_encoding);
    copy(o->req_host, sizeof(o->req_host), h->request ? h->request->host : NULL);
    copy(o->req_ua, sizeof(o->req_ua), h->request ? h->request->user_agent : NULL);
    copy(o->req_uri, sizeof(o->req_uri), h->request ? h->request->uri : NULL);
}

static void on_body(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct outcome *o = ctx;

    if (!o->headed[dir] || o->framing[dir] == HTTP_BODY_NONE || n == 0)
        o->bad++;
    o->nbody[dir] += n;
    for (size_t i = 0; i < n && o->blen[dir] < BODY_MAX; i++)
        o->body[dir][o->blen[dir]++] = p[i];
}

static void on_end(void *ctx, int dir, enum http_end how, const char *why)
{
    struct outcome *o = ctx;

    /* An end without head is a message cut inside its head: never OK. */
    if (!o->headed[dir] && how == HTTP_END_OK)
        o->bad++;
    if (how == HTTP_END_OK && o->framing[dir] == HTTP_BODY_LENGTH &&
        o->nbody[dir] != (uint64_t)o->cl[dir])
        o->bad++;
    if ((how == HTTP_END_OK) != (why == NULL))
        o->bad++;
    if (o->blen[dir] > 0) {
        log_event(o, "B%d ", dir);
        for (size_t i = 0; i < o->blen[dir]; i++) {
            uint8_t c = o->body[dir][i];
            if (c == '\r')
                log_event(o, "\\r");
            else if (c == '\n')
                log_event(o, "\\n");
            else if (c >= 0x20 && c < 0x7f && c != '\\')
                log_event(o, "%c", c);
            else
                log_event(o, "\\x%02x", c);
        }
        log_event(o, "\n");
    }
    if (how == HTTP_END_OK)
        log_event(o, "E%d ok\n", dir);
    else
        log_event(o, "E%d %s: %s\n", dir, how == HTTP_END_TRUNCATED ? "trunc" : "error", why);
    o->headed[dir] = 0;
    o->blen[dir] = 0;
}

static void on_anomaly(void *ctx, int dir, const char *why)
{
    struct outcome *o = ctx;

    if (why == NULL || why[0] == '\0')
        o->bad++;
    log_event(o, "A%d %s\n", dir, why ? why : "(null)");
}

static const struct http_callbacks callbacks = {on_head, on_body, on_end, on_anomaly};

/* --- scripts ------------------------------------------------------------------ */

enum op { OP_FEED, OP_GAP, OP_EOF, OP_END };

struct step {
    int dir;
    enum op op;
    const char *data;
    size_t len; /* bytes, or the gap's length */
};

#define FEED(d, s)                                                                                 \
    {                                                                                              \
        (d), OP_FEED, (s), sizeof(s) - 1                                                           \
    }
#define FEEDN(d, p, n)                                                                             \
    {                                                                                              \
        (d), OP_FEED, (const char *)(p), (n)                                                       \
    }
#define GAP(d, n)                                                                                  \
    {                                                                                              \
        (d), OP_GAP, NULL, (n)                                                                     \
    }
#define EOS(d)                                                                                     \
    {                                                                                              \
        (d), OP_EOF, NULL, 0                                                                       \
    }
#define DONE                                                                                       \
    {                                                                                              \
        0, OP_END, NULL, 0                                                                         \
    }

static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* Runs a script. mode 0 feeds each step whole, 1 one byte at a time, and
 * any other value cuts steps into random pieces (seeded by mode). */
static void run(const struct step *v, unsigned mode, struct outcome *o)
{
    struct http_parser *p;

    memset(o, 0, sizeof(*o));
    p = http_parser_new(&callbacks, o);
    if (p == NULL) {
        o->bad++;
        return;
    }
    if (!midflow)
        http_parser_from_start(p);
    rng_state = mode;
    for (; v->op != OP_END; v++) {
        if (v->op == OP_GAP) {
            http_parser_gap(p, v->dir, v->len);
            continue;
        }
        if (v->op == OP_EOF) {
            http_parser_eof(p, v->dir);
            continue;
        }
        for (size_t off = 0; off < v->len;) {
            size_t n = v->len - off;
            if (mode == 1)
                n = 1;
            else if (mode > 1 && n > 1)
                n = 1 + rng() % (rng() % 2 ? n : (n < 8 ? n : 8));
            http_parser_feed(p, v->dir, (const uint8_t *)v->data + off, n);
            off += n;
        }
    }
    for (int d = 0; d < 2; d++) {
        o->active[d] = http_parser_active(p, d);
        copy(o->error[d], sizeof(o->error[d]), http_parser_error(p, d));
    }
    o->request_dir = http_parser_request_dir(p);
    o->tunnel = http_parser_tunnel(p, &o->tkind, o->tstart);
    http_parser_free(p);
}

/* The property: however the bytes are cut, the same story is told. */
static void check_splits(const struct step *v, int line)
{
    for (unsigned mode = 1; mode < 24; mode++) {
        run(v, mode, &split);
        int same = strcmp(split.log, whole.log) == 0 && split.bad == whole.bad &&
                   split.active[0] == whole.active[0] && split.active[1] == whole.active[1] &&
                   split.request_dir == whole.request_dir &&
                   strcmp(split.error[0], whole.error[0]) == 0 &&
                   strcmp(split.error[1], whole.error[1]) == 0 && split.tunnel == whole.tunnel &&
                   split.tkind == whole.tkind && split.tstart[0] == whole.tstart[0] &&
                   split.tstart[1] == whole.tstart[1];
        CHECK(same);
        if (!same) {
            fprintf(stderr, "line %d: split mode %u differs:\n--- whole\n%s--- split\n%s", line,
                    mode, whole.log, split.log);
            return;
        }
    }
}

/* Runs v whole and checks the log, the contract, and the property. */
#define EXPECT(v, want)                                                                            \
    do {                                                                                           \
        run((v), 0, &whole);                                                                       \
        CHECK_EQ_STR(whole.log, (want));                                                           \
        CHECK_EQ_INT(whole.bad, 0);                                                                \
        check_splits((v), __LINE__);                                                               \
    } while (0)

#define EXPECT_STATE(a0, a1, rdir)                                                                 \
    do {                                                                                           \
        CHECK_EQ_INT(whole.active[0], (a0));                                                       \
        CHECK_EQ_INT(whole.active[1], (a1));                                                       \
        CHECK_EQ_INT(whole.request_dir, (rdir));                                                   \
    } while (0)

/* --- requests and responses ------------------------------------------------------ */

static void test_get_content_length(void)
{
    const struct step v[] = {
        FEED(0, "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\n"
                "Accept: */*\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                "Content-Length: 5\r\n\r\nhello"),
        DONE,
    };
    EXPECT(v, "H0 GET /index.html 1.1 none\n"
              "E0 ok\n"
              "H1 200 1.1 for=GET /index.html cl=5 len\n"
              "B1 hello\n"
              "E1 ok\n");
    EXPECT_STATE(1, 1, 0);
    CHECK_EQ_STR(whole.ct, "text/html");
    CHECK_EQ_STR(whole.ce, "gzip");
    CHECK_EQ_STR(whole.host, "(null)");
    CHECK_EQ_STR(whole.req_host, "example.com");
    CHECK_EQ_STR(whole.req_ua, "curl/8.0");
    CHECK_EQ_STR(whole.error[0], "(null)");
}

static void test_request_headers(void)
{
    const struct step v[] = {
        FEED(0, "GET / HTTP/1.0\r\nhOsT:   a.example \t\r\nUSER-AGENT:x\r\nHost: b.example\r\n"
                "\r\n"),
        DONE,
    };
    EXPECT(v, "H0 GET / 1.0 none\nE0 ok\n");
    CHECK_EQ_STR(whole.host, "a.example"); /* trimmed; the first of two */
    CHECK_EQ_STR(whole.ua, "x");
}

static void test_keep_alive(void)
{
    const struct step v[] = {
        FEED(0, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"),
        FEED(0, "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"),
        FEED(1, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        FEED(0, "POST /3 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree"),
        DONE,
    };
    EXPECT(v, "H0 GET /1 1.1 none\nE0 ok\n"
              "H1 200 1.1 for=GET /1 cl=3 len\nB1 one\nE1 ok\n"
              "H0 GET /2 1.1 none\nE0 ok\n"
              "H1 404 1.1 for=GET /2 cl=0 len\nE1 ok\n"
              "H0 POST /3 1.1 cl=4 len\nB0 abcd\nE0 ok\n"
              "H1 200 1.1 for=POST /3 cl=5 len\nB1 three\nE1 ok\n");
    EXPECT_STATE(1, 1, 0);
}

static void test_pipelining(void)
{
    const struct step v[] = {
        FEED(0, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n"
                "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\naaa"
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"),
        DONE,
    };
    EXPECT(v, "H0 GET /a 1.1 none\nE0 ok\n"
              "H0 HEAD /b 1.1 none\nE0 ok\n"
              "H0 GET /c 1.1 none\nE0 ok\n"
              "H1 200 1.1 for=GET /a cl=3 len\nB1 aaa\nE1 ok\n"
              "H1 200 1.1 for=HEAD /b cl=100 none\nE1 ok\n"
              "H1 200 1.1 for=GET /c cl=1 len\nB1 c\nE1 ok\n");
}

static void test_leading_empty_lines(void)
{
    /* Between responses, and before a stream's role is known: skipped. */
    const struct step v[] = {
        FEED(1, "\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny"),
        FEED(0, "\r\n\nGET /a HTTP/1.1\r\n\r\n"),
        FEED(0, "\r\nGET /b HTTP/1.1\r\n\r\n"),
        DONE,
    };
    EXPECT(v, "H1 200 1.1 for=- cl=1 len\nB1 x\nE1 ok\n"
              "H1 200 1.1 for=- cl=1 len\nB1 y\nE1 ok\n"
              "H0 GET /a 1.1 none\nE0 ok\n"
              "H0 GET /b 1.1 none\nE0 ok\n");

    /* Before the first response to a request: wget reads HTTP/0.9 (the
     * whole stream is the body), curl and Python refuse it. */
    const struct step first[] = {
        FEED(0, "GET /a HTTP/1.1\r\n\r\n"),
        FEED(1, "\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
        EOS(1),
        DONE,
    };
    EXPECT(first, "H0 GET /a 1.1 none\nE0 ok\n"
                  "H1 0.9 for=/a eof\n"
                  "B1 \\r\\nHTTP/1.1 200 OK\\r\\nContent-Length: 1\\r\\n\\r\\nx\nE1 ok\n");
}

/* --- chunked -------------------------------------------------------------------- */

static void test_chunked(void)
{
    const struct step v[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5;name=value;flag\r\nhello\r\n"
                "A\r\n0123456789\r\n"
                "1a ; ext\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                "0\r\nX-Checksum: 1234\r\nX-Other: 2\r\n\r\n"
                "HTTP/1.1 204 No Content\r\n\r\n"),
        DONE,
    };
    EXPECT(v, "H1 200 1.1 for=- chunked\n"
              "B1 hello0123456789abcdefghijklmnopqrstuvwxyz\nE1 ok\n"
              "H1 204 1.1 for=- none\nE1 ok\n");
    EXPECT_STATE(1, 1, 0);
}

static void test_chunked_lf_only(void)
{
    const struct step v[] = {
        FEED(1, "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\nF\n0123456789abcde\n"
                "0\nTrailer: x\n\n"),
        DONE,
    };
    EXPECT(v, "H1 200 1.1 for=- chunked\nB1 abc0123456789abcde\nE1 ok\n");
}

static void test_chunked_split(void)
{
    const struct step v[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1"),
        FEED(1, "0\r\n01234"),
        FEED(1, "56789abcdef\r"),
        FEED(1, "\n0"),
        FEED(1, "\r\n\r"),
        FEED(1, "\n"),
        DONE,
    };
    EXPECT(v, "H1 200 1.1 for=- chunked\nB1 0123456789abcdef\nE1 ok\n");
}

static void test_chunked_empty(void)
{
    const struct step v[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0000\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "00000000000000000000001\r\nz\r\n0\r\n\r\n"),
        DONE,
    };
    EXPECT(v, "H1 200 1.1 for=- chunked\nE1 ok\n"
              "H1 200 1.1 for=- chunked\nB1 z\nE1 ok\n");
}

static void test_chunked_errors(void)
{
    const struct step bad_hex[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"),
        FEED(1, "more"),
        DONE,
    };
    EXPECT(bad_hex, "H1 200 1.1 for=- chunked\nA1 invalid chunk size\nB1 hello\n"
                    "E1 error: invalid chunk size\nH1 raw eof\n");
    EXPECT_STATE(1, 1, 0);
    CHECK_EQ_STR(whole.error[1], "invalid chunk size");

    /* The raw rest starts with the line that could not be read. */
    const struct step bad_hex_eof[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"),
        FEED(1, "more"),
        EOS(1),
        DONE,
    };
    EXPECT(bad_hex_eof, "H1 200 1.1 for=- chunked\nA1 invalid chunk size\nB1 hello\n"
                        "E1 error: invalid chunk size\nH1 raw eof\nB1 zz\\r\\nmore\nE1 ok\n");
    EXPECT_STATE(1, 0, 0);

    const struct step empty_size[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;ext\r\n"),
        DONE,
    };
    EXPECT(empty_size, "H1 200 1.1 for=- chunked\nA1 invalid chunk size\n"
                       "E1 error: invalid chunk size\nH1 raw eof\n");

    const struct step overflow[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "10000000000000000\r\n"),
        DONE,
    };
    /* 17 digits: curl refuses, wget and Python read on to the end. */
    EXPECT(overflow, "H1 200 1.1 for=- chunked\n");
    CHECK_EQ_STR(whole.error[1], "(null)");

    /* 16 significant digits fit (the body is then cut by EOF). */
    const struct step big[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "000FFFFFFFFFFFFFFFF\r\nab"),
        EOS(1),
        DONE,
    };
    EXPECT(big, "H1 200 1.1 for=- chunked\nB1 ab\nE1 trunc: stream ended in body\n");

    const struct step no_crlf[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"),
        DONE,
    };
    /* Python skips two bytes ("X\r"), then "\n" is no chunk size. */
    EXPECT(no_crlf, "H1 200 1.1 for=- chunked\nA1 missing crlf after chunk data\n"
                    "A1 invalid chunk size\nB1 abc\nE1 error: invalid chunk size\nH1 raw eof\n");

    const struct step cr_only[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\r\n"),
        DONE,
    };
    EXPECT(cr_only, "H1 200 1.1 for=- chunked\n"); /* CR CR LF: curl and wget go on */

    const struct step bad_trailer[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nNoColon\r\n\r\n"),
        DONE,
    };
    EXPECT(bad_trailer, "H1 200 1.1 for=- chunked\nE1 ok\n"); /* skipped, as clients do */
}

/* --- responses without a body, tunnels ------------------------------------------- */

static void test_no_body_responses(void)
{
    const struct step v[] = {
        FEED(0, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nHEAD /c HTTP/1.1\r\n\r\n"),
        FEED(1, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
                "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        DONE,
    };
    EXPECT(v, "H0 GET /a 1.1 none\nE0 ok\n"
              "H0 GET /b 1.1 none\nE0 ok\n"
              "H0 HEAD /c 1.1 none\nE0 ok\n"
              "H1 204 1.1 for=GET /a cl=10 none\nE1 ok\n"
              "H1 304 1.1 for=GET /b none\nE1 ok\n"
              "H1 200 1.1 for=HEAD /c none\nE1 ok\n"
              "H1 200 1.1 for=- cl=2 len\nB1 ok\nE1 ok\n");
}

static void test_continue(void)
{
    const struct step v[] = {
        FEED(0, "POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n"
                "\r\n"),
        FEED(1, "HTTP/1.1 100 Continue\r\n\r\n"),
        FEED(0, "data"),
        FEED(1, "HTTP/1.1 102 Processing\r\nContent-Length: 5\r\n\r\n"
                "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        DONE,
    };
    EXPECT(v, "H0 POST /up 1.1 cl=4 len\n"
              "H1 100 1.1 for=POST /up none\nE1 ok\n"
              "B0 data\nE0 ok\n"
              "H1 102 1.1 for=POST /up cl=5 none\nE1 ok\n"
              "H1 201 1.1 for=POST /up cl=0 len\nE1 ok\n");
}

static void test_upgrade(void)
{
    const struct step v[] = {
        FEED(0, "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "\r\n"),
        FEED(1, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
        FEED(0, "\x81\x85\x01\x02\x03\x04"
                "abcde"),
        EOS(0),
        EOS(1),
        DONE,
    };
    EXPECT(v, "H0 GET /chat 1.1 none\nE0 ok\n"
              "H1 101 1.1 for=GET /chat none tunnel=websocket\nE1 ok\n");
    EXPECT_STATE(0, 0, 0);
    CHECK_EQ_INT(whole.tunnel, 1);
    CHECK_EQ_INT(whole.tkind, HTTP_TUNNEL_WEBSOCKET);
    CHECK_EQ_INT(whole.tstart[0], 72); /* right after each head */
    CHECK_EQ_INT(whole.tstart[1], 56);
    CHECK_EQ_STR(whole.error[0], "(null)");
    CHECK_EQ_STR(whole.error[1], "(null)");
}

static void test_connect(void)
{
    const struct step v[] = {
        FEED(0, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 Connection established\r\n\r\n"),
        FEED(0, "\x16\x03\x01\x00\x05hello"),
        FEED(1, "\x16\x03\x03\x00\x02hi"),
        DONE,
    };
    EXPECT(v, "H0 CONNECT example.com:443 1.1 none\nE0 ok\n"
              "H1 200 1.1 for=CONNECT example.com:443 none tunnel=connect\nE1 ok\n");
    EXPECT_STATE(0, 0, 0);
    CHECK_EQ_STR(whole.error[0], "(null)");

    /* The client starts TLS before the 200 is read: a tunnel, not an error. */
    const struct step eager[] = {
        FEED(0, "CONNECT example.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x05hello"),
        FEED(1, "HTTP/1.1 200 OK\r\n\r\n\x16\x03"),
        DONE,
    };
    EXPECT(eager, "H0 CONNECT example.com:443 1.1 none\nE0 ok\n"
                  "H1 200 1.1 for=CONNECT example.com:443 none tunnel=connect\nE1 ok\n");
    EXPECT_STATE(0, 0, 0);
    CHECK_EQ_STR(whole.error[0], "(null)");
    CHECK_EQ_INT(whole.tkind, HTTP_TUNNEL_CONNECT);
    CHECK_EQ_INT(whole.tstart[0], 36); /* where the client's TLS began */
    CHECK_EQ_INT(whole.tstart[1], 19);

    /* Refused: the conversation goes on in HTTP. */
    const struct step refused[] = {
        FEED(0, "CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
        FEED(1, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno"),
        FEED(0, "CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 OK\r\n\r\n"),
        DONE,
    };
    EXPECT(refused, "H0 CONNECT example.com:443 1.1 none\nE0 ok\n"
                    "H1 407 1.1 for=CONNECT example.com:443 cl=2 len\nB1 no\nE1 ok\n"
                    "H0 CONNECT example.com:443 1.1 none\nE0 ok\n"
                    "H1 200 1.1 for=CONNECT example.com:443 none tunnel=connect\nE1 ok\n");
}

/* --- bodies ------------------------------------------------------------------------ */

static void test_request_bodies(void)
{
    const struct step v[] = {
        FEED(0, "POST /form HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                "Content-Length: 7\r\n\r\na=1&b=2"
                "PUT /file HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                "4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n"
                "GET /after HTTP/1.1\r\n\r\n"),
        DONE,
    };
    EXPECT(v, "H0 POST /form 1.1 cl=7 len\nB0 a=1&b=2\nE0 ok\n"
              "H0 PUT /file 1.1 chunked\nB0 wikipedia\nE0 ok\n"
              "H0 GET /after 1.1 none\nE0 ok\n");

    const struct step te_not_chunked[] = {
        FEED(0, "POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
        DONE,
    };
    EXPECT(te_not_chunked, "A0 Transfer-Encoding without chunked last\n"
                           "E0 error: Transfer-Encoding without chunked last\nH0 raw eof\n");
    EXPECT_STATE(1, 1, 0);
}

static void test_eof_body(void)
{
    const struct step v[] = {
        FEED(0, "GET / HTTP/1.0\r\n\r\n"),
        FEED(1, "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nsome "),
        FEED(1, "data\r\n"),
        EOS(1),
        FEED(1, "ignored"),
        DONE,
    };
    EXPECT(v, "H0 GET / 1.0 none\nE0 ok\n"
              "H1 200 1.0 for=GET / eof\nB1 some data\\r\\n\nE1 ok\n");
    EXPECT_STATE(1, 0, 0);
    CHECK_EQ_STR(whole.error[1], "(null)");

    /* Transfer-Encoding without chunked: to EOF, the coding for the body layer. */
    const struct step te_gzip[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabcdef"),
        EOS(1),
        DONE,
    };
    EXPECT(te_gzip, "H1 200 1.1 for=- eof te=gzip\nB1 abcdef\nE1 ok\n");

    /* "chunked, gzip": curl and urllib3 de-chunk, wget and http.client do
     * not (they take Content-Length). */
    const struct step te_chunked_gzip[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 2\r\n"
                "\r\n3\r\nabc\r\n0\r\n\r\n"),
        EOS(1),
        DONE,
    };
    EXPECT(te_chunked_gzip, "A1 Transfer-Encoding read differently by clients\n"
                            "H1 200 1.1 for=- chunked te=gzip\nB1 abc\nE1 ok\n");
}

static void test_content_length(void)
{
    const struct step same[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length:3 \r\n\r\nabc"
                "HTTP/1.1 200 OK\r\nContent-Length: 2, 2,002\r\n\r\nde"),
        DONE,
    };
    /* http.client's int("2, 2,002") fails: it reads to the end, the
     * others read 2; the same as long as the stream ends there. */
    EXPECT(same, "H1 200 1.1 for=- cl=3 len\nB1 abc\nE1 ok\nH1 200 1.1 for=- eof\n");
    const struct step same_more[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 2, 2,002\r\n\r\nde"),
        FEED(1, "f"),
        EOS(1),
        DONE,
    };
    EXPECT(same_more, "H1 200 1.1 for=- eof\nA1 Content-Length read differently by clients\n"
                      "B1 def\nE1 ok\n");

    const struct step differ[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        DONE,
    };
    EXPECT(differ, "A1 two different Content-Length values\nH1 200 1.1 for=- eof\n");

    const struct step differ_list[] = {
        FEED(0, "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd"),
        DONE,
    };
    EXPECT(differ_list, "A0 Content-Length list with different values\n"
                        "E0 error: Content-Length list with different values\nH0 raw eof\n");

    const struct step bad[] = {
        FEED(0, "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc"),
        DONE,
    };
    EXPECT(bad, "A0 invalid Content-Length\nE0 error: invalid Content-Length\nH0 raw eof\n");

    const struct step empty[] = {
        FEED(0, "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"),
        DONE,
    };
    EXPECT(empty, "A0 invalid Content-Length\nE0 error: invalid Content-Length\nH0 raw eof\n");

    const struct step max[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387904\r\n\r\nab"),
        DONE,
    };
    EXPECT(max, "H1 200 1.1 for=- cl=4611686018427387904 len\n");

    const struct step too_big[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387905\r\n\r\n"),
        DONE,
    };
    EXPECT(too_big, "H1 200 1.1 for=- eof\n"); /* every client reads to the end */

    const struct step huge[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
        DONE,
    };
    EXPECT(huge, "H1 200 1.1 for=- eof\n");
}

static void test_te_and_cl(void)
{
    const struct step v[] = {
        FEED(0, "POST /smuggle HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
                "\r\n1\r\nZ\r\n0\r\n\r\n"
                "GET /next HTTP/1.1\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\nContent-Length: 100\r\n\r\n"
                "2\r\nok\r\n0\r\n\r\n"),
        DONE,
    };
    EXPECT(v, "A0 Content-Length with chunked Transfer-Encoding\n"
              "H0 POST /smuggle 1.1 chunked\nB0 Z\nE0 ok\n"
              "H0 GET /next 1.1 none\nE0 ok\n"
              "H1 200 1.1 for=POST /smuggle chunked\nB1 ok\nE1 ok\n");

    /* Repeated Transfer-Encoding headers are one list; identity is nothing. */
    const struct step repeated[] = {
        FEED(0, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"
                "\r\n1\r\nz\r\n0\r\n\r\n"),
        DONE,
    };
    EXPECT(repeated, "H0 POST / 1.1 chunked\nB0 z\nE0 ok\n");
    const struct step not_last[] = {
        FEED(0, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
                "\r\n"),
        DONE,
    };
    EXPECT(not_last, "A0 Transfer-Encoding without chunked last\n"
                     "E0 error: Transfer-Encoding without chunked last\nH0 raw eof\n");
}

/* --- header syntax and limits --------------------------------------------------------- */

static void test_header_syntax(void)
{
    const struct step fold[] = {
        FEED(0, "GET / HTTP/1.1\r\nX-A: 1\r\nUser-Agent: foo\r\n  bar \r\n\tbaz\r\n \r\n"
                "Content-Length:\r\n 2\r\n\r\nhi"),
        DONE,
    };
    EXPECT(fold, "H0 GET / 1.1 cl=2 len\nB0 hi\nE0 ok\n");
    CHECK_EQ_STR(whole.ua, "foo bar baz");

    const struct step fold_first[] = {
        FEED(0, "GET / HTTP/1.1\r\n X-A: 1\r\n\r\n"),
        DONE,
    };
    EXPECT(fold_first, "H0 GET / 1.1 none\nE0 ok\n"); /* skipped (wget, Python) */

    const struct step ws_colon[] = {
        FEED(0, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
                "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"),
        DONE,
    };
    EXPECT(ws_colon, "H0 GET / 1.1 none\nE0 ok\n"
                     "A0 whitespace before colon in a framing header\n"
                     "E0 error: whitespace before colon in a framing header\nH0 raw eof\n");
    EXPECT_STATE(1, 1, 0);
    CHECK_EQ_STR(whole.error[0], "whitespace before colon in a framing header");

    const struct step no_colon[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length 5\r\n\r\n"),
        DONE,
    };
    EXPECT(no_colon, "H1 200 1.1 for=- eof\n"); /* a line no client uses */

    const struct step bad_name[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nBad(Name): 5\r\n\r\n"),
        DONE,
    };
    EXPECT(bad_name, "H1 200 1.1 for=- eof\n");

    const struct step empty_name[] = {
        FEED(1, "HTTP/1.1 200 OK\r\n: 5\r\n\r\n"),
        DONE,
    };
    EXPECT(empty_name, "H1 200 1.1 for=- eof\n");

    const struct step nul[] = {
        FEED(0, "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n"),
        DONE,
    };
    EXPECT(nul, "H0 GET / 1.1 none\nE0 ok\n");

    const struct step bare_cr[] = {
        FEED(0, "GET / HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\n"),
        DONE,
    };
    EXPECT(bare_cr, "H0 GET / 1.1 none\nE0 ok\n");
}

static void test_header_limits(void)
{
    static char line[HTTP_MAX_LINE + 64], head[HTTP_MAX_HEAD + 4096];
    static char many[1000 * 16 + 256];
    size_t n;

    /* A line of exactly HTTP_MAX_LINE bytes (CRLF excluded) is fine. */
    n = (size_t)snprintf(line, sizeof(line), "GET / HTTP/1.1\r\nX-Long: ");
    memset(line + n, 'a', HTTP_MAX_LINE - 8);
    n += HTTP_MAX_LINE - 8;
    memcpy(line + n, "\r\n\r\n", 4);
    const struct step fits[] = {FEEDN(0, line, n + 4), DONE};
    EXPECT(fits, "H0 GET / 1.1 none\nE0 ok\n");

    /* One more is not; without a line end, it is refused as soon as even a
     * final CR could not make it fit. */
    n = (size_t)snprintf(line, sizeof(line), "GET / HTTP/1.1\r\nX-Long: ");
    memset(line + n, 'a', HTTP_MAX_LINE + 40);
    const struct step too_long[] = {FEEDN(0, line, n + HTTP_MAX_LINE - 6), DONE};
    EXPECT(too_long, "A0 header line too long\nE0 error: header line too long\nH0 raw eof\n");
    CHECK_EQ_STR(whole.error[0], "header line too long");

    const struct step too_long_lf[] = {FEEDN(0, line, n + HTTP_MAX_LINE - 8), FEED(0, "a\n"), DONE};
    EXPECT(too_long_lf, "A0 header line too long\nE0 error: header line too long\nH0 raw eof\n");

    /* Many short lines: the head as a whole is bounded. */
    n = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; n + 1100 < sizeof(head); i++) {
        n += (size_t)snprintf(head + n, sizeof(head) - n, "X-%03d: ", i);
        memset(head + n, 'h', 1000);
        n += 1000;
        memcpy(head + n, "\r\n", 2);
        n += 2;
    }
    const struct step head_long[] = {FEEDN(1, head, n), DONE};
    EXPECT(head_long, "A1 head too long\nE1 error: head too long\nH1 raw eof\n");

    /* 1000 fields are fine, one more is not. */
    n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "X-%d: v\r\n", i);
    memcpy(many + n, "\r\n", 2);
    const struct step max_fields[] = {FEEDN(0, many, n + 2), DONE};
    EXPECT(max_fields, "H0 GET / 1.1 none\nE0 ok\n");
    memcpy(many + n, "X-Last: v\r\n\r\n", 13);
    const struct step too_many[] = {FEEDN(0, many, n + 13), DONE};
    EXPECT(too_many, "H0 GET / 1.1 none\nE0 ok\n"); /* curl and wget take any number */

    /* A request line over the limit, in a stream known to be HTTP. */
    n = (size_t)snprintf(line, sizeof(line), "GET /");
    memset(line + n, 'u', HTTP_MAX_LINE + 40);
    const struct step long_uri[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\n"),
        FEEDN(0, line, HTTP_MAX_LINE + 20),
        DONE,
    };
    EXPECT(long_uri, "H0 GET / 1.1 none\nE0 ok\nA0 request line too long\n"
                     "E0 error: request line too long\nH0 raw eof\n");
}

/* --- what is not HTTP ------------------------------------------------------------- */

/* Feeds one direction a few bytes and reports whether it is still HTTP. */
static int active_after(const char *bytes, size_t n, const char **error)
{
    struct http_parser *p = http_parser_new(&callbacks, &whole);
    int active;

    memset(&whole, 0, sizeof(whole));
    http_parser_feed(p, 0, (const uint8_t *)bytes, n);
    active = http_parser_active(p, 0);
    static char why[64];
    copy(why, sizeof(why), http_parser_error(p, 0));
    *error = why;
    http_parser_free(p);
    return active;
}

static void test_not_http(void)
{
    const char *why;

    /* Known on the first bytes, without waiting for a line end. */
    CHECK_EQ_INT(active_after("\x16", 1, &why), 0);
    CHECK_EQ_STR(why, "not HTTP");
    CHECK_EQ_INT(active_after("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, &why), 0);
    CHECK_EQ_INT(active_after("SSH", 3, &why), 1);
    CHECK_EQ_INT(active_after("SSH-", 4, &why), 0);
    CHECK_EQ_STR(why, "not HTTP");
    CHECK_EQ_INT(active_after("\x7f"
                              "ELF\x02\x01\x01",
                              7, &why),
                 0);
    CHECK_EQ_INT(active_after("\x00\x00\x00\x10", 4, &why), 0);
    CHECK_EQ_INT(active_after("HTTP/1.2", 8, &why), 1);
    CHECK_EQ_INT(active_after("HTTP/2", 6, &why), 1);
    CHECK_EQ_INT(active_after("HTTX/", 5, &why), 0);
    CHECK_EQ_INT(active_after("http/1.1 200 OK", 15, &why), 0);
    CHECK_EQ_INT(active_after("PRI * HTTP/2.0", 14, &why), 1);
    CHECK_EQ_INT(active_after("GET /", 5, &why), 1);
    CHECK_EQ_INT(active_after("GET  /", 6, &why), 0);
    CHECK_EQ_INT(active_after("GET / HTTP/1.1\r\n", 16, &why), 1);
    CHECK_EQ_INT(active_after("GET /\r\n", 7, &why), 0); /* HTTP/0.9 */
    CHECK_EQ_INT(active_after("HTTP/1.1 099\n", 13, &why), 0);
    CHECK_EQ_INT(active_after("HTTP/1.1 200", 12, &why), 1);
    CHECK_EQ_INT(active_after("HTTP/1.1 2000", 13, &why), 1); /* wget: 200 */
    CHECK_EQ_INT(active_after("HTTP/1.1 20 OK", 14, &why), 0);
    CHECK_EQ_INT(active_after("\r\n\r\n", 4, &why), 1);
    CHECK_EQ_INT(active_after("\r\r", 2, &why), 1);
    CHECK_EQ_INT(active_after("ABCDEFGHIJKLMNOPQRSTUVWXYZabcde", 31, &why), 1);
    CHECK_EQ_INT(active_after("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", 32, &why), 0);

    /* Random binary: rejected early whatever it is. */
    uint8_t blob[64];
    rng_state = 7;
    for (int i = 0; i < 200; i++) {
        for (size_t j = 0; j < sizeof(blob); j++)
            blob[j] = (uint8_t)(rng() | 0x80);
        CHECK_EQ_INT(active_after((const char *)blob, 1, &why), 0);
    }

    /* No callbacks for streams that never were HTTP. */
    const struct step v[] = {
        FEED(0, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
        FEED(1, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
        DONE,
    };
    EXPECT(v, "");
    EXPECT_STATE(0, 0, -1);
    CHECK_EQ_STR(whole.error[1], "not HTTP");
}

static void test_directions(void)
{
    /* A capture that starts inside a head cannot be recognized. */
    const struct step server_first[] = {
        FEED(1, "Content-Length: 3\r\n\r\nabc"),
        DONE,
    };
    EXPECT(server_first, "");
    EXPECT_STATE(1, 0, -1);

    const struct step mid_flow[] = {
        FEED(0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
        FEED(1, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
        FEED(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nn"),
        DONE,
    };
    EXPECT(mid_flow, "H0 200 1.1 for=- cl=3 len\nB0 abc\nE0 ok\n"
                     "H1 GET /next 1.1 none\nE1 ok\n"
                     "H0 200 1.1 for=GET /next cl=1 len\nB0 n\nE0 ok\n");
    EXPECT_STATE(1, 1, 1);

    /* Requests both ways: the answer is no status line, so it is an
     * HTTP/0.9 response (wget saves it). */
    const struct step both[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\n"),
        FEED(1, "GET / HTTP/1.1\r\n\r\n"),
        DONE,
    };
    EXPECT(both, "H0 GET / 1.1 none\nE0 ok\nH1 0.9 for=/ eof\n");
    EXPECT_STATE(1, 1, 0);

    const struct step both_partial[] = {
        FEED(1, "GET /x HT"),
        FEED(0, "GET / HTTP/1.1\r\n\r\n"),
        DONE,
    };
    EXPECT(both_partial, "H0 GET / 1.1 none\nE0 ok\n");
    EXPECT_STATE(1, 0, 0);
    CHECK_EQ_STR(whole.error[1], "requests in both directions");

    const struct step responses_both[] = {
        FEED(0, "HTTP/1.1 20"),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        DONE,
    };
    EXPECT(responses_both, "H1 200 1.1 for=- cl=0 len\nE1 ok\n");
    EXPECT_STATE(0, 1, 0);
    CHECK_EQ_STR(whole.error[0], "responses in both directions");

    /* Known streams are held to their role for every message. */
    const struct step wrong_later[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
        DONE,
    };
    EXPECT(wrong_later, "H0 GET / 1.1 none\nE0 ok\nA0 invalid request line\n"
                        "E0 error: invalid request line\nH0 raw eof\n"
                        "H1 200 1.1 for=GET / cl=0 len\nE1 ok\nA1 invalid status line\n"
                        "E1 error: invalid status line\nH1 raw eof\n");
    EXPECT_STATE(1, 1, 0);
}

/* --- pairing beyond the queue ------------------------------------------------------- */

static void test_pending_overflow(void)
{
    static char reqs[64 * 40], resps[64 * 60], want[64 * 200];
    size_t r = 0, s = 0, w = 0;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    /* 34 requests: the last two do not fit and are only counted. */
    for (int i = 0; i < 34; i++) {
        r += (size_t)snprintf(reqs + r, sizeof(reqs) - r, "GET /%d HTTP/1.1\r\n\r\n", i);
        w += (size_t)snprintf(want + w, sizeof(want) - w, "H0 GET /%d 1.1 none\nE0 ok\n", i);
    }
    /* One response frees a slot, so request 34 is kept again. */
    w += (size_t)snprintf(want + w, sizeof(want) - w, "H1 200 1.1 for=GET /0 cl=0 len\nE1 ok\n");
    w += (size_t)snprintf(want + w, sizeof(want) - w, "H0 GET /34 1.1 none\nE0 ok\n");
    for (int i = 1; i < 35; i++) {
        s += (size_t)snprintf(resps + s, sizeof(resps) - s, "%s", ok);
        if (i == 32 || i == 33)
            w += (size_t)snprintf(want + w, sizeof(want) - w, "H1 200 1.1 for=- cl=0 len\nE1 ok\n");
        else
            w += (size_t)snprintf(want + w, sizeof(want) - w,
                                  "H1 200 1.1 for=GET /%d cl=0 len\nE1 ok\n", i);
    }
    /* And one more response than requests: nothing to pair with. */
    s += (size_t)snprintf(resps + s, sizeof(resps) - s, "%s", ok);
    w += (size_t)snprintf(want + w, sizeof(want) - w, "H1 200 1.1 for=- cl=0 len\nE1 ok\n");

    const struct step v[] = {
        FEEDN(0, reqs, r),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        FEED(0, "GET /34 HTTP/1.1\r\n\r\n"),
        FEEDN(1, resps, s),
        DONE,
    };
    EXPECT(v, want);
}

/* --- gaps and ends ------------------------------------------------------------------ */

static void test_gaps(void)
{
    const struct step in_body[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"), GAP(1, 5), FEED(1, "xyz"),
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),  DONE,
    };
    EXPECT(in_body, "H1 200 1.1 for=- cl=10 len\nB1 abxyz\nE1 trunc: gap in body\n"
                    "H1 200 1.1 for=- cl=2 len\nB1 ok\nE1 ok\n");
    EXPECT_STATE(1, 1, 0);

    const struct step to_end[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"),
        GAP(1, 8),
        FEED(1, "HTTP/1.1 304 Not Modified\r\n\r\n"),
        DONE,
    };
    EXPECT(to_end, "H1 200 1.1 for=- cl=10 len\nB1 ab\nE1 trunc: gap in body\n"
                   "H1 304 1.1 for=- none\nE1 ok\n");

    const struct step past_end[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"),
        GAP(1, 9),
        FEED(1, "HTTP/1.1 304 Not Modified\r\n\r\n"),
        DONE,
    };
    EXPECT(past_end, "H1 200 1.1 for=- cl=10 len\nB1 ab\nE1 trunc: gap in body\nH1 raw eof\n");
    EXPECT_STATE(1, 1, 0);
    CHECK_EQ_STR(whole.error[1], "gap in stream");

    const struct step in_head[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Le"),
        GAP(1, 10),
        FEED(1, "ngth: 0\r\n\r\n"),
        DONE,
    };
    EXPECT(in_head, "E1 trunc: gap in head\nH1 raw eof\n");
    EXPECT_STATE(1, 1, 0);
    CHECK_EQ_STR(whole.error[1], "gap in stream");

    const struct step eof_body[] = {
        FEED(1, "HTTP/1.0 200 OK\r\n\r\nabc"),
        GAP(1, 100),
        FEED(1, "def"),
        DONE,
    };
    EXPECT(eof_body, "H1 200 1.0 for=- eof\n");
    EXPECT_STATE(1, 1, 0);
    const struct step eof_body_end[] = {
        FEED(1, "HTTP/1.0 200 OK\r\n\r\nabc"), GAP(1, 100), FEED(1, "def"), EOS(1), DONE,
    };
    EXPECT(eof_body_end, "H1 200 1.0 for=- eof\nB1 abcdef\nE1 trunc: gap in body\n");

    const struct step chunk[] = {
        FEED(0, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"),
        GAP(0, 3),
        DONE,
    };
    EXPECT(chunk, "H0 POST / 1.1 chunked\nB0 abc\nE0 trunc: gap in body\nH0 raw eof\n");

    const struct step between[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\n"),
        GAP(0, 3),
        FEED(0, "GET / HTTP/1.1\r\n\r\n"),
        DONE,
    };
    EXPECT(between, "H0 GET / 1.1 none\nE0 ok\nH0 raw eof\n");
    EXPECT_STATE(1, 1, 0);
}

static void test_eof(void)
{
    const struct step mid_body[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        EOS(1),
        DONE,
    };
    EXPECT(mid_body, "H1 200 1.1 for=- cl=10 len\nB1 abc\nE1 trunc: stream ended in body\n");
    EXPECT_STATE(1, 0, 0);
    CHECK_EQ_STR(whole.error[1], "(null)");

    const struct step mid_head[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nServer: x"),
        EOS(1),
        DONE,
    };
    EXPECT(mid_head, "E1 trunc: stream ended in head\nH1 raw eof\nB1 Server: x\n"
                     "E1 trunc: stream ended in head\n");

    /* A start line cut short on a stream never known as HTTP: nothing. */
    const struct step unknown[] = {
        FEED(0, "GET /ind"),
        EOS(0),
        DONE,
    };
    EXPECT(unknown, "");
    EXPECT_STATE(0, 1, -1);

    const struct step between[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\n\r\n"),
        EOS(0),
        DONE,
    };
    EXPECT(between, "H0 GET / 1.1 none\nE0 ok\n");

    const struct step next_line[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\nGE"),
        EOS(0),
        DONE,
    };
    EXPECT(next_line, "H0 GET / 1.1 none\nE0 ok\nE0 trunc: stream ended in head\nH0 raw eof\n"
                      "B0 GE\nE0 trunc: stream ended in head\n");

    const struct step chunked[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"),
        EOS(1),
        DONE,
    };
    EXPECT(chunked, "H1 200 1.1 for=- chunked\nB1 abc\nE1 trunc: stream ended in body\n");
}

/* --- corners ------------------------------------------------------------------------ */

static void test_start_line_corners(void)
{
    static char line[HTTP_MAX_LINE + 64];
    const char *why;
    size_t n;

    CHECK_EQ_INT(active_after("GET / HTTP/1.3", 14, &why), 1);
    CHECK_EQ_INT(active_after("GET / HTTP/3.0\n", 15, &why), 0);
    CHECK_EQ_INT(active_after("GET / HTTP/1.1\rX", 16, &why), 0);
    CHECK_EQ_INT(active_after("GET /x\n", 7, &why), 0);
    CHECK_EQ_INT(active_after("HTTP/1.1 200 O\x01K", 16, &why), 1);
    CHECK_EQ_INT(active_after("HTTP/1.1 200 OK\r\r", 17, &why), 1);
    CHECK_EQ_INT(active_after("HTTP/1.1 200 OK\xe2\x9c\x93\r\n", 20, &why), 1);
    CHECK_EQ_INT(active_after("HTTP/1.1 200\r\n", 14, &why), 1);

    /* A CR that does not open an empty line, between messages. */
    const struct step stray_cr[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\n\r(X"),
        DONE,
    };
    EXPECT(stray_cr, "H0 GET / 1.1 none\nE0 ok\nA0 invalid request line\n"
                     "E0 error: invalid request line\nH0 raw eof\n");

    /* Too long, seen at the line end (no CR to allow for). */
    n = (size_t)snprintf(line, sizeof(line), "GET /");
    memset(line + n, 'u', HTTP_MAX_LINE - n - 8);
    memcpy(line + HTTP_MAX_LINE - 8, " HTTP/1.1\n\n", 11);
    const struct step at_lf[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\n"),
        FEEDN(0, line, HTTP_MAX_LINE + 3),
        DONE,
    };
    EXPECT(at_lf, "H0 GET / 1.1 none\nE0 ok\nA0 request line too long\n"
                  "E0 error: request line too long\nH0 raw eof\n");

    /* Exactly HTTP_MAX_LINE: fine. */
    memset(line + 5, 'u', HTTP_MAX_LINE - 5 - 9);
    memcpy(line + HTTP_MAX_LINE - 9, " HTTP/1.1\n\n", 11);
    const struct step fits[] = {FEEDN(0, line, HTTP_MAX_LINE + 2), DONE};
    run(fits, 0, &whole);
    CHECK_EQ_INT(whole.bad, 0);
    CHECK(whole.len > 6 && strcmp(whole.log + whole.len - 6, "E0 ok\n") == 0);
    CHECK_EQ_INT(whole.active[0], 1);
    check_splits(fits, __LINE__);

    /* A status line too long on a stream not yet known: no message. */
    n = (size_t)snprintf(line, sizeof(line), "HTTP/1.1 200 ");
    memset(line + n, 'r', HTTP_MAX_LINE);
    const struct step status[] = {FEEDN(1, line, HTTP_MAX_LINE + 2), DONE};
    EXPECT(status, "");
    CHECK_EQ_STR(whole.error[1], "status line too long");
}

static void test_chunk_corners(void)
{
    const struct step junk[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n"),
        DONE,
    };
    EXPECT(junk, "H1 200 1.1 for=- chunked\nB1 hello\nE1 ok\n"); /* curl, wget: 5 */

    const struct step ext_cr[] = {
        FEED(1,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n"),
        DONE,
    };
    EXPECT(ext_cr, "H1 200 1.1 for=- chunked\nB1 hello\nE1 ok\n");

    /* Transfer-parameters do not hide the coding's name. */
    const struct step params[] = {
        FEED(0, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip;q=1 , chunked ; x=y\r\n\r\n"
                "1\r\na\r\n0\r\n\r\n"),
        DONE,
    };
    EXPECT(params, "H0 POST / 1.1 chunked te=gzip\nB0 a\nE0 ok\n");

    const struct step trailer_fold[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n"
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n d\r\n\r\n"),
        DONE,
    };
    EXPECT(trailer_fold, "H1 200 1.1 for=- chunked\nE1 ok\n"
                         "H1 200 1.1 for=- chunked\nE1 ok\n");

    const struct step trailer_cr[] = {
        FEED(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\rc\r\n\r\n"),
        DONE,
    };
    EXPECT(trailer_cr, "H1 200 1.1 for=- chunked\nE1 ok\n");

    static char many[1000 * 16 + 256];
    size_t n = (size_t)snprintf(many, sizeof(many),
                                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
    for (int i = 0; i <= 1000; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "T-%d: v\r\n", i);
    memcpy(many + n, "\r\n", 2);
    const struct step many_trailers[] = {FEEDN(1, many, n + 2), DONE};
    EXPECT(many_trailers, "H1 200 1.1 for=- chunked\nE1 ok\n");
}

static void test_pairing_corners(void)
{
    static char uri[3100], host[400];
    static char reqs[64 * 40], resps[64 * 40], want[64 * 200];
    size_t r = 0, s = 0, w = 0;

    /* Remembered requests are cut to the field sizes. */
    memset(uri, 'u', sizeof(uri));
    memcpy(uri, "GET /", 5);
    memcpy(uri + 3000, " HTTP/1.1\r\nHost: ", 17);
    memset(host, 'h', sizeof(host));
    memcpy(host + 300, "\r\n\r\n", 4);
    const struct step cut[] = {
        FEEDN(0, uri, 3017),
        FEEDN(0, host, 304),
        FEED(1, "HTTP/1.1 204 No Content\r\n\r\n"),
        DONE,
    };
    run(cut, 0, &whole);
    CHECK_EQ_INT(whole.bad, 0);
    CHECK_EQ_INT(strlen(whole.req_uri), 2047);
    CHECK_EQ_INT(strlen(whole.req_host), 255);
    check_splits(cut, __LINE__);

    /* An interim response with nothing pending. */
    const struct step interim[] = {
        FEED(1, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        DONE,
    };
    EXPECT(interim, "H1 100 1.1 for=- none\nE1 ok\nH1 200 1.1 for=- cl=0 len\nE1 ok\n");

    /* 33 requests, 34 responses: the 33rd was counted, the 34th answers none. */
    for (int i = 0; i < 33; i++) {
        r += (size_t)snprintf(reqs + r, sizeof(reqs) - r, "GET /%d HTTP/1.1\r\n\r\n", i);
        w += (size_t)snprintf(want + w, sizeof(want) - w, "H0 GET /%d 1.1 none\nE0 ok\n", i);
    }
    for (int i = 0; i < 34; i++) {
        s += (size_t)snprintf(resps + s, sizeof(resps) - s, "HTTP/1.1 304 Not Modified\r\n\r\n");
        if (i < 32)
            w += (size_t)snprintf(want + w, sizeof(want) - w,
                                  "H1 304 1.1 for=GET /%d none\nE1 ok\n", i);
        else
            w += (size_t)snprintf(want + w, sizeof(want) - w, "H1 304 1.1 for=- none\nE1 ok\n");
    }
    const struct step tail[] = {FEEDN(0, reqs, r), FEEDN(1, resps, s), DONE};
    EXPECT(tail, want);
}

/* A response head of exactly total bytes (final CRLF included), filled with
 * "X-NNNNN:<filler>\r\n" lines of 10 to 1000 bytes. */
static size_t exact_head(char *buf, size_t total)
{
    size_t n = (size_t)snprintf(buf, 64, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");

    for (int i = 0; n + 2 < total; i++) {
        size_t left = total - 2 - n, line = left > 1000 ? 1000 : left;
        if (left > 1000 && left - 1000 < 10)
            line = left - 10; /* leave room for one more whole line */
        n += (size_t)snprintf(buf + n, 16, "X-%05d:", i);
        memset(buf + n, 'h', line - 10);
        n += line - 10;
        memcpy(buf + n, "\r\n", 2);
        n += 2;
    }
    memcpy(buf + n, "\r\n", 2);
    return n + 2;
}

static void test_head_boundary(void)
{
    static char head[HTTP_MAX_HEAD + 64];
    size_t n;

    n = exact_head(head, HTTP_MAX_HEAD);
    CHECK_EQ_INT(n, HTTP_MAX_HEAD);
    const struct step fits[] = {FEEDN(1, head, n), DONE};
    EXPECT(fits, "H1 200 1.1 for=- cl=0 len\nE1 ok\n");

    /* One byte more: the final LF is the byte too many. */
    n = exact_head(head, HTTP_MAX_HEAD + 1);
    CHECK_EQ_INT(n, HTTP_MAX_HEAD + 1);
    const struct step over[] = {FEEDN(1, head, n), DONE};
    EXPECT(over, "A1 head too long\nE1 error: head too long\nH1 raw eof\n");
}

/* Calls that must do nothing. */
static void test_api_guards(void)
{
    struct http_parser *p = http_parser_new(&callbacks, &whole);
    const char *req = "GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab";

    memset(&whole, 0, sizeof(whole));
    http_parser_feed(p, 0, (const uint8_t *)req, strlen(req));
    http_parser_gap(p, 0, 0);  /* nothing missing */
    http_parser_gap(p, -1, 5); /* no such direction */
    http_parser_eof(p, 3);
    CHECK_EQ_INT(http_parser_active(p, 0), 1);
    CHECK(http_parser_error(p, 7) == NULL);
    http_parser_gap(p, 0, 100); /* past the body: sync lost, raw from here */
    http_parser_gap(p, 0, 1);
    http_parser_eof(p, 0);
    http_parser_gap(p, 0, 1); /* stopped already */
    CHECK_EQ_INT(http_parser_active(p, 0), 0);
    CHECK_EQ_STR(http_parser_error(p, 0), "gap in stream");
    CHECK_EQ_STR(whole.log, "H0 GET / 1.1 cl=4 len\nB0 ab\nE0 trunc: gap in body\nH0 raw eof\n"
                            "E0 trunc: gap in body\n");
    http_parser_free(p);
    CHECK_EQ_INT(http_parser_request_dir(NULL), -1);
}

/* --- what the receivers accept (tests/evasion/probe_http_clients.py) ------------ */

/* The EICAR test file with '-' for its backslash: 68 bytes, hex 44. */
#define EB       "X5O!P%@AP[4-PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
#define REQ      FEED(0, "GET /e HTTP/1.1\r\nHost: h\r\n\r\n")
#define REQ_LOG  "H0 GET /e 1.1 none\nE0 ok\n"
#define CL68     "Content-Length: 68\r\n"
#define TE_CHUNK "Transfer-Encoding: chunked\r\n"
#define OK_68    "H1 200 1.1 for=GET /e cl=68 len\nB1 " EB "\nE1 ok\n"
#define EOF_68   "H1 200 1.1 for=GET /e eof\nB1 " EB "\nE1 ok\n"

/* One response to GET /e, then the end of its stream. */
#define RESPONSE(name, bytes, want)                                                                \
    do {                                                                                           \
        const struct step name[] = {REQ, FEED(1, bytes), EOS(1), DONE};                            \
        EXPECT(name, REQ_LOG want);                                                                \
    } while (0)

static void test_lenient_status_line(void)
{
    RESPONSE(v12, "HTTP/1.2 200 OK\r\n" CL68 "\r\n" EB,
             "H1 200 1.2 for=GET /e cl=68 len\nB1 " EB "\nE1 ok\n");
    RESPONSE(v20, "HTTP/2.0 200 OK\r\n" CL68 "\r\n" EB,
             "H1 200 2.0 for=GET /e cl=68 len\nB1 " EB "\nE1 ok\n");
    RESPONSE(ok_glued, "HTTP/1.1 200OK\r\n" CL68 "\r\n" EB, OK_68);
    RESPONSE(tab, "HTTP/1.1\t200 OK\r\n" CL68 "\r\n" EB, OK_68);
    RESPONSE(two_sp, "HTTP/1.1  200 OK\r\n" CL68 "\r\n" EB, OK_68);
    RESPONSE(four_digits, "HTTP/1.1 2000 OK\r\n" CL68 "\r\n" EB, OK_68); /* wget: 200 */
    RESPONSE(no_version, "HTTP 200 OK\r\n" CL68 "\r\n" EB,
             "H1 200 1.0 for=GET /e cl=68 len\nB1 " EB "\nE1 ok\n");
    RESPONSE(cr_in_reason, "HTTP/1.1 200 O\rK\r\n" CL68 "\r\n" EB, OK_68);
    RESPONSE(cr_cr_lf,
             "HTTP/1.1 200 OK\r\r\n"
             "Content-Length: 68\r\r\n\r\r\n" EB,
             OK_68);
    RESPONSE(lf_only, "HTTP/1.1 200 OK\nContent-Length: 68\n\n" EB, OK_68);

    /* "http/1.1": curl reads a status line, wget HTTP/0.9 (all of it). */
    RESPONSE(lower, "http/1.1 200 OK\r\n" CL68 "\r\n" EB,
             "H1 0.9 for=/e eof\nA1 status line read as HTTP/0.9 by wget\n"
             "B1 http/1.1 200 OK\\r\\nContent-Length: 68\\r\\n\\r\\n" EB "\nE1 ok\n");
    RESPONSE(lead_sp, " HTTP/1.1 200 OK\r\n" CL68 "\r\n" EB,
             "H1 0.9 for=/e eof\nA1 status line read as HTTP/0.9 by wget\n"
             "B1  HTTP/1.1 200 OK\\r\\nContent-Length: 68\\r\\n\\r\\n" EB "\nE1 ok\n");
    /* No status line at all: HTTP/0.9, no anomaly (only wget reads it). */
    RESPONSE(http09, EB, "H1 0.9 for=/e eof\nB1 " EB "\nE1 ok\n");
    /* A capture that began inside a response body is no HTTP/0.9. */
    midflow = 1;
    RESPONSE(midflow_body, EB, "");
    midflow = 0;
    RESPONSE(http09_junk, "garbage\r\n" CL68 "\r\n" EB,
             "H1 0.9 for=/e eof\nB1 garbage\\r\\nContent-Length: 68\\r\\n\\r\\n" EB "\nE1 ok\n");

    /* Nobody reads these status lines; the rest is scanned anyway. */
    const struct step two_digits[] = {
        REQ,
        FEED(1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 20 OK\r\n" CL68 "\r\n" EB),
        EOS(1),
        DONE,
    };
    EXPECT(two_digits,
           REQ_LOG "H1 200 1.1 for=GET /e cl=0 len\nE1 ok\nA1 invalid status line\n"
                   "E1 error: invalid status line\nH1 raw eof\n"
                   "B1 HTTP/1.1 20 OK\\r\\nContent-Length: 68\\r\\n\\r\\n" EB "\nE1 ok\n");
    EXPECT_STATE(1, 0, 0);
    CHECK_EQ_STR(whole.error[1], "invalid status line");

    /* "HTTP" in answer to a request, but no client reads the status. */
    RESPONSE(first_two_digits, "HTTP/1.1 20 OK\r\n" CL68 "\r\n" EB,
             "A1 invalid status line\nH1 raw eof\n"
             "B1 HTTP/1.1 20 OK\\r\\nContent-Length: 68\\r\\n\\r\\n" EB "\nE1 ok\n");

    /* Bare CRs only: the head never ends; what was kept is scanned. */
    RESPONSE(bare_cr, "HTTP/1.1 200 OK\rContent-Length: 68\r\r" EB,
             "H1 raw eof\nB1 HTTP/1.1 200 OK\\rContent-Length: 68\\r\\r" EB
             "\nE1 trunc: stream ended in head\n");
}

static void test_lenient_headers(void)
{
    static char big[80 * 1024], many[200 * 16];
    size_t n;

    /* Lines Python cannot parse end its fields: it reads to the end, curl
     * and wget read 68. The same bytes as long as the stream ends there. */
    RESPONSE(sp_colon, "HTTP/1.1 200 OK\r\nX-Foo : bar\r\n" CL68 "\r\n" EB, EOF_68);
    RESPONSE(no_colon, "HTTP/1.1 200 OK\r\nNoColonHere\r\n" CL68 "\r\n" EB, EOF_68);
    RESPONSE(nul, "HTTP/1.1 200 OK\r\nX-Foo: a\0b\r\n" CL68 "\r\n" EB, EOF_68);
    RESPONSE(sp_colon_more, "HTTP/1.1 200 OK\r\nX-Foo : bar\r\nContent-Length: 10\r\n\r\n" EB,
             "H1 200 1.1 for=GET /e eof\nA1 Content-Length read differently by clients\n"
             "B1 " EB "\nE1 ok\n");
    /* Python splits at a bare CR: it alone sees the Content-Length. */
    RESPONSE(bare_cr_field, "HTTP/1.1 200 OK\r\nX-A: b\rContent-Length: 10\r\n\r\n" EB,
             "H1 200 1.1 for=GET /e eof\nA1 Content-Length read differently by clients\n"
             "B1 " EB "\nE1 ok\n");
    RESPONSE(bad_name, "HTTP/1.1 200 OK\r\nBad(Name): x\r\n" CL68 "\r\n" EB, OK_68);
    RESPONSE(fold_first, "HTTP/1.1 200 OK\r\n X-Foo: bar\r\n" CL68 "\r\n" EB, OK_68);
    RESPONSE(fold_cl, "HTTP/1.1 200 OK\r\nContent-Length:\r\n 68\r\n\r\n" EB, OK_68);
    /* "Content-Length : 10": no client takes it. */
    RESPONSE(sp_colon_cl, "HTTP/1.1 200 OK\r\nContent-Length : 10\r\n\r\n" EB, EOF_68);

    /* A 9000-byte line, a 70 KB head, 130 headers. */
    n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big + n, 'a', 9000);
    n += 9000;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n" CL68 "\r\n%s", EB);
    const struct step line9000[] = {REQ, FEEDN(1, big, n), EOS(1), DONE};
    EXPECT(line9000, REQ_LOG OK_68);
    n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 70; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-H%d: ", i);
        memset(big + n, 'h', 990);
        n += 990;
        n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
    }
    n += (size_t)snprintf(big + n, sizeof(big) - n, CL68 "\r\n%s", EB);
    const struct step head70k[] = {REQ, FEEDN(1, big, n), EOS(1), DONE};
    EXPECT(head70k, REQ_LOG OK_68);
    n = (size_t)snprintf(many, sizeof(many), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 130; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(many + n, sizeof(many) - n, CL68 "\r\n%s", EB);
    const struct step headers130[] = {REQ, FEEDN(1, many, n), EOS(1), DONE};
    EXPECT(headers130, REQ_LOG OK_68);

    /* Repeated Content-Encoding values are one list (clients stack them). */
    RESPONSE(ce_two,
             "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Encoding:  br \r\n" CL68
             "\r\n" EB,
             OK_68);
    CHECK_EQ_STR(whole.ce, "gzip, br");
}

static void test_lenient_content_length(void)
{
    RESPONSE(plus, "HTTP/1.1 200 OK\r\nContent-Length: +68\r\n\r\n" EB, OK_68);
    RESPONSE(zeros, "HTTP/1.1 200 OK\r\nContent-Length: 0068\r\n\r\n" EB, OK_68);
    /* curl and wget read 68, Python reads to the end: same bytes here. */
    RESPONSE(junk, "HTTP/1.1 200 OK\r\nContent-Length: 68abc\r\n\r\n" EB, EOF_68);
    RESPONSE(list_eof, "HTTP/1.1 200 OK\r\nContent-Length: 68, 1000\r\n\r\n" EB,
             "A1 Content-Length list with different values\n" EOF_68);
    RESPONSE(list_more, "HTTP/1.1 200 OK\r\nContent-Length: 10, 68\r\n\r\n" EB,
             "A1 Content-Length list with different values\nH1 200 1.1 for=GET /e eof\nB1 " EB
             "\nE1 ok\n");
    /* Two values: the longest reading is the rest of the stream. */
    RESPONSE(two, "HTTP/1.1 200 OK\r\n" CL68 "Content-Length: 1000\r\n\r\n" EB,
             "A1 two different Content-Length values\n" EOF_68);
    RESPONSE(two_short, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n" CL68 "\r\n" EB,
             "A1 two different Content-Length values\n" EOF_68);
    /* "0x44": curl and wget read 0, Python to the end. */
    RESPONSE(hex, "HTTP/1.1 200 OK\r\nContent-Length: 0x44\r\n\r\n" EB,
             "H1 200 1.1 for=GET /e eof\nA1 Content-Length read differently by clients\nB1 " EB
             "\nE1 ok\n");
    /* "-68": curl fails, the others read to the end. */
    RESPONSE(negative, "HTTP/1.1 200 OK\r\nContent-Length: -68\r\n\r\n" EB, EOF_68);
    /* "1_0": Python reads 10, curl and wget 1. */
    RESPONSE(underscore, "HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n" EB,
             "H1 200 1.1 for=GET /e eof\nA1 Content-Length read differently by clients\nB1 " EB
             "\nE1 ok\n");
    /* Transfer-Encoding wins over Content-Length for every client. */
    RESPONSE(te_cl,
             "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n" TE_CHUNK "\r\n44\r\n" EB "\r\n0\r\n\r\n",
             "H1 200 1.1 for=GET /e chunked\nB1 " EB "\nE1 ok\n");
}

static void test_lenient_chunked(void)
{
#define CHUNKED_OK "H1 200 1.1 for=GET /e chunked\nB1 " EB "\nE1 ok\n"
    RESPONSE(junk, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n44 junk\r\n" EB "\r\n0\r\n\r\n", CHUNKED_OK);
    RESPONSE(plus, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n+44\r\n" EB "\r\n0\r\n\r\n", CHUNKED_OK);
    RESPONSE(space, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n 44\r\n" EB "\r\n0\r\n\r\n", CHUNKED_OK);
    RESPONSE(ext, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n44 ;a=b\r\n" EB "\r\n0\r\n\r\n", CHUNKED_OK);
    /* curl reads "0x44" as the last chunk, wget and Python as 0x44. */
    RESPONSE(hex_prefix, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n0x44\r\n" EB "\r\n0\r\n\r\n",
             "H1 200 1.1 for=GET /e chunked\nA1 chunk size read differently by clients\nB1 " EB
             "\nE1 ok\n");
    /* "4_4": Python 0x44, curl and wget 4. */
    RESPONSE(underscore, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n4_4\r\n" EB "\r\n0\r\n\r\n",
             "H1 200 1.1 for=GET /e chunked\nA1 chunk size read differently by clients\nB1 " EB
             "\nE1 ok\n");
    /* Python skips the two bytes after chunk data, whatever they are. */
    RESPONSE(bad_crlf, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n44\r\n" EB "XX0\r\n\r\n",
             "H1 200 1.1 for=GET /e chunked\nA1 missing crlf after chunk data\nB1 " EB "\nE1 ok\n");
    RESPONSE(lf_only, "HTTP/1.1 200 OK\n" TE_CHUNK "\n44\n" EB "\n0\n\n",
             "H1 200 1.1 for=GET /e chunked\nB1 " EB "\nE1 ok\n");
    RESPONSE(bad_trailer, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n44\r\n" EB "\r\n0\r\nNoColon\r\n\r\n",
             CHUNKED_OK);
    /* A size no client reads: the rest is raw. */
    RESPONSE(negative, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n-44\r\n" EB "\r\n0\r\n\r\n",
             "H1 200 1.1 for=GET /e chunked\nA1 invalid chunk size\nE1 error: invalid chunk size\n"
             "H1 raw eof\nB1 -44\\r\\n" EB "\\r\\n0\\r\\n\\r\\n\nE1 ok\n");

    /* Transfer-Encoding lists. */
    RESPONSE(te_upper,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n44\r\n" EB "\r\n0\r\n\r\n",
             CHUNKED_OK);
    RESPONSE(te_two_ok,
             "HTTP/1.1 200 OK\r\n" TE_CHUNK "Transfer-Encoding: identity\r\n\r\n44\r\n" EB
             "\r\n0\r\n\r\n",
             CHUNKED_OK);
    /* wget and http.client want exactly "chunked" in the first field. */
    RESPONSE(te_one,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n44\r\n" EB
             "\r\n0\r\n\r\n",
             "A1 Transfer-Encoding read differently by clients\n" CHUNKED_OK);
    /* http.client keeps the blank after "chunked": not chunked for it. */
    RESPONSE(te_blank,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked \r\n\r\n44\r\n" EB "\r\n0\r\n\r\n",
             "A1 Transfer-Encoding read differently by clients\n" CHUNKED_OK);
    RESPONSE(te_two_bad,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n" TE_CHUNK "\r\n44\r\n" EB
             "\r\n0\r\n\r\n",
             "A1 Transfer-Encoding read differently by clients\n" CHUNKED_OK);
    /* curl decodes the gzip transfer coding: the body layer is told. */
    RESPONSE(te_gzip,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n44\r\n" EB "\r\n0\r\n\r\n",
             "A1 Transfer-Encoding read differently by clients\n"
             "H1 200 1.1 for=GET /e chunked te=gzip\nB1 " EB "\nE1 ok\n");
    /* A coding curl refuses and no other client decodes: not passed on. */
    RESPONSE(te_xchunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n" EB, EOF_68);
    /* Bare CRs in chunked framing: the line never ends; still scanned. */
    RESPONSE(bare_cr, "HTTP/1.1 200 OK\r\n" TE_CHUNK "\r\n44\r" EB "\r0\r\r",
             "H1 200 1.1 for=GET /e chunked\nE1 trunc: stream ended in body\nH1 raw eof\n"
             "B1 44\\r" EB "\\r0\\r\\r\nE1 trunc: stream ended in body\n");
#undef CHUNKED_OK
}

static void test_lenient_interim(void)
{
    /* An unrequested 101: curl reads on as the body, wget as the next
     * response: the rest of the stream is the body. */
    RESPONSE(unrequested_101, "HTTP/1.1 101 Switching Protocols\r\n\r\n" EB,
             "A1 101 without an upgrade request\nH1 101 1.1 for=GET /e eof\nB1 " EB "\nE1 ok\n");
    CHECK_EQ_INT(whole.tunnel, 0);
    RESPONSE(interim_102, "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\n" CL68 "\r\n" EB,
             "H1 102 1.1 for=GET /e none\nE1 ok\n" OK_68);
    /* Bytes after a body-less response are no status line. */
    RESPONSE(body_204, "HTTP/1.1 204 No Content\r\n" CL68 "\r\n" EB,
             "H1 204 1.1 for=GET /e cl=68 none\nE1 ok\nA1 invalid status line\n"
             "E1 error: invalid status line\nH1 raw eof\nB1 " EB "\nE1 ok\n");
}

static void test_tunnels(void)
{
    /* h2c by Upgrade: the client may send the preface before the 101. */
    const struct step h2c[] = {
        FEED(0, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n"),
        FEED(0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04"),
        FEED(1, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00\x06\x04"),
        DONE,
    };
    EXPECT(h2c, "H0 GET / 1.1 none\nE0 ok\nH1 101 1.1 for=GET / none tunnel=h2c\nE1 ok\n");
    EXPECT_STATE(0, 0, 0);
    CHECK_EQ_INT(whole.tkind, HTTP_TUNNEL_H2C);
    CHECK_EQ_INT(whole.tstart[0], 62); /* the preface */
    CHECK_EQ_INT(whole.tstart[1], 50);

    /* Prior knowledge: the preface is the first thing the client says. */
    const struct step prior[] = {
        FEED(0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
        FEED(1, "\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
        DONE,
    };
    EXPECT(prior, "");
    EXPECT_STATE(0, 0, 0);
    CHECK_EQ_INT(whole.tunnel, 1);
    CHECK_EQ_INT(whole.tkind, HTTP_TUNNEL_H2C_PRIOR);
    CHECK_EQ_INT(whole.tstart[0], 0);
    CHECK_EQ_INT(whole.tstart[1], 0);

    /* Another Upgrade token. */
    const struct step other[] = {
        FEED(0, "GET / HTTP/1.1\r\nUpgrade: foo/2\r\n\r\n"),
        FEED(1, "HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        DONE,
    };
    EXPECT(other, "H0 GET / 1.1 none\nE0 ok\nH1 101 1.1 for=GET / none tunnel=other\nE1 ok\n");

    /* A refused CONNECT after the client already sent tunnel bytes: they
     * were not HTTP, and the rest of that stream is scanned raw. */
    const struct step refused[] = {
        FEED(0, "CONNECT example.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x05hello"),
        FEED(1, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"),
        FEED(0, "more"),
        EOS(0),
        DONE,
    };
    EXPECT(refused, "H0 CONNECT example.com:443 1.1 none\nE0 ok\n"
                    "H1 403 1.1 for=CONNECT example.com:443 cl=2 len\n"
                    "A0 data after a refused CONNECT or Upgrade\nH0 raw eof\nB1 no\nE1 ok\n"
                    "B0 more\nE0 ok\n");
    CHECK_EQ_INT(whole.tunnel, 0);

    /* The HTTP/2 preface in the middle of HTTP/1.1 requests. */
    const struct step inside[] = {
        FEED(0, "GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        DONE,
    };
    EXPECT(inside, "H0 GET / 1.1 none\nE0 ok\nA0 HTTP/2 preface inside HTTP/1\n"
                   "E0 error: HTTP/2 preface inside HTTP/1\nH0 raw eof\n");
}

/* --- bulk bodies --------------------------------------------------------------------- */

struct bulk {
    const uint8_t *base; /* the buffer fed */
    size_t size;
    uint64_t bytes, calls, outside, ends;
};

static void bulk_body(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct bulk *b = ctx;

    b->bytes += n;
    b->calls++;
    if (p < b->base || p + n > b->base + b->size)
        b->outside++; /* a copy: bodies must come from the caller's buffer */
}

static void bulk_end(void *ctx, int dir, enum http_end how, const char *why)
{
    struct bulk *b = ctx;
    if (how == HTTP_END_OK)
        b->ends++;
}

/* 100 MB bodies pass in one call per feed (per chunk), pointing into the
 * input: no copy and no per-byte work, whatever the size. */
static void test_bulk(void)
{
    static const struct http_callbacks cb = {NULL, bulk_body, bulk_end, NULL};
    const size_t piece = 1 << 20, total = 100 * piece;
    uint8_t *buf = malloc(piece + 64);
    struct bulk b = {buf, piece + 64, 0, 0, 0, 0};
    struct http_parser *p = http_parser_new(&cb, &b);
    char head[128];
    int n;

    memset(buf, 'x', piece + 64);
    n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", total);
    http_parser_feed(p, 1, (const uint8_t *)head, (size_t)n);
    for (size_t off = 0; off < total; off += piece)
        http_parser_feed(p, 1, buf, piece);
    CHECK_EQ_INT(b.bytes, total);
    CHECK_EQ_INT(b.calls, 100);
    CHECK_EQ_INT(b.ends, 1);

    /* Chunked, 1 MB chunks: one body call per chunk. */
    const char *te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    http_parser_feed(p, 1, (const uint8_t *)te, strlen(te));
    memcpy(buf, "100000\r\n", 8);
    for (int i = 0; i < 100; i++) {
        http_parser_feed(p, 1, buf, 8);
        http_parser_feed(p, 1, buf + 8, piece);
        http_parser_feed(p, 1, (const uint8_t *)"\r\n", 2);
    }
    http_parser_feed(p, 1, (const uint8_t *)"0\r\n\r\n", 5);
    CHECK_EQ_INT(b.bytes, 2 * total);
    CHECK_EQ_INT(b.calls, 200);
    CHECK_EQ_INT(b.ends, 2);

    /* To EOF. */
    const char *eof = "HTTP/1.1 200 OK\r\n\r\n";
    http_parser_feed(p, 1, (const uint8_t *)eof, strlen(eof));
    for (int i = 0; i < 100; i++)
        http_parser_feed(p, 1, buf, piece);
    http_parser_eof(p, 1);
    CHECK_EQ_INT(b.bytes, 3 * total);
    CHECK_EQ_INT(b.calls, 300);
    CHECK_EQ_INT(b.ends, 3);
    CHECK_EQ_INT(b.outside, 0);
    http_parser_free(p);
    free(buf);
}

/* Callbacks may be absent; the parser still frames and pairs. */
static void test_no_callbacks(void)
{
    static const struct http_callbacks none = {NULL, NULL, NULL, NULL};
    struct http_parser *p = http_parser_new(&none, NULL);
    const char *req = "GET / HTTP/1.1\r\n\r\n";
    const char *up = "GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n";
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 101 Up\r\n\r\n";

    http_parser_feed(p, 0, (const uint8_t *)req, strlen(req));
    http_parser_feed(p, 0, (const uint8_t *)up, strlen(up));
    http_parser_feed(p, 1, (const uint8_t *)resp, strlen(resp));
    CHECK_EQ_INT(http_parser_active(p, 0), 0);
    CHECK_EQ_INT(http_parser_active(p, 1), 0);
    CHECK_EQ_INT(http_parser_request_dir(p), 0);
    http_parser_free(p);

    p = http_parser_new(NULL, NULL);
    http_parser_feed(p, 0, (const uint8_t *)req, strlen(req));
    http_parser_feed(p, 2, (const uint8_t *)req, strlen(req));
    http_parser_gap(p, 0, 10);
    http_parser_eof(p, 0);
    CHECK_EQ_INT(http_parser_active(p, 0), 0);
    CHECK_EQ_INT(http_parser_active(p, 5), 0);
    http_parser_free(p);
    http_parser_free(NULL);
}

int main(void)
{
    test_get_content_length();
    test_request_headers();
    test_keep_alive();
    test_pipelining();
    test_leading_empty_lines();
    test_chunked();
    test_chunked_lf_only();
    test_chunked_split();
    test_chunked_empty();
    test_chunked_errors();
    test_no_body_responses();
    test_continue();
    test_upgrade();
    test_connect();
    test_request_bodies();
    test_eof_body();
    test_content_length();
    test_te_and_cl();
    test_header_syntax();
    test_header_limits();
    test_not_http();
    test_directions();
    test_pending_overflow();
    test_gaps();
    test_eof();
    test_start_line_corners();
    test_chunk_corners();
    test_pairing_corners();
    test_head_boundary();
    test_api_guards();
    test_lenient_status_line();
    test_lenient_headers();
    test_lenient_content_length();
    test_lenient_chunked();
    test_lenient_interim();
    test_tunnels();
    test_bulk();
    test_no_callbacks();
    CHECK_DONE();
}
