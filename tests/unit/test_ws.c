/*
 * WebSocket decoder: real exchanges captured between python3-websockets 10.4
 * server and client, fed whole, byte by byte and in odd pieces; frames built
 * here for fragmentation, masking, lengths, permessage-deflate with and
 * without context takeover, limits, and the inputs a receiver refuses.
 *
 * The captures are under tests/unit/data/ws/ (NAME.c2s and NAME.s2c: the
 * client's and the server's byte streams, 101 handshake included), made by
 * tests/unit/data/ws/capture.py through a relay on 127.0.0.1. What each
 * side's application received there is what the expectations below say:
 *   plain        no extension
 *   deflate      permessage-deflate as websockets negotiates it by default
 *                (context takeover, 12-bit windows)
 *   deflate_nct  server_no_context_takeover, client_no_context_takeover,
 *                server_max_window_bits=10, client_max_window_bits=9
 * The client sent "hello " EICAR (text), EICAR (binary), EICAR as two
 * fragments (binary), EICAR (text), then a close; the server sent EICAR
 * (text), EICAR (binary), EICAR as three fragments (text), 300 'x' then
 * EICAR (text), then close 1000 "bye".
 */
#include "check.h"
#include "ws.h"

#include <stdint.h>
#include <zlib.h>

#define EICAR "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

static char data_dir[4096];

/* --- recording what the decoder hands out ------------------------------- */

#define MAX_EVENTS 64

struct event {
    int dir, opcode; /* opcode -1: anomaly */
    uint8_t *data;
    size_t n;
    char why[96];
};

struct record {
    struct event ev[MAX_EVENTS];
    int n;
};

static void on_message(void *ctx, int dir, int opcode, const uint8_t *p, size_t n)
{
    struct record *r = ctx;
    struct event *e;

    CHECK(r->n < MAX_EVENTS);
    if (r->n >= MAX_EVENTS)
        return;
    e = &r->ev[r->n++];
    e->dir = dir;
    e->opcode = opcode;
    e->data = malloc(n + 1);
    if (n > 0)
        memcpy(e->data, p, n);
    e->n = n;
}

static void on_anomaly(void *ctx, int dir, const char *why)
{
    struct record *r = ctx;
    struct event *e;

    CHECK(r->n < MAX_EVENTS);
    if (r->n >= MAX_EVENTS)
        return;
    e = &r->ev[r->n++];
    e->dir = dir;
    e->opcode = -1;
    e->data = NULL;
    snprintf(e->why, sizeof(e->why), "%s", why);
}

static const struct ws_callbacks callbacks = {on_message, on_anomaly};

static void record_free(struct record *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->ev[i].data);
    r->n = 0;
}

static int records_equal(const struct record *a, const struct record *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const struct event *x = &a->ev[i], *y = &b->ev[i];
        if (x->dir != y->dir || x->opcode != y->opcode || x->n != y->n ||
            strcmp(x->why, y->why) != 0 || (x->n && memcmp(x->data, y->data, x->n) != 0))
            return 0;
    }
    return 1;
}

static int has_anomaly(const struct record *r, int dir, const char *why)
{
    for (int i = 0; i < r->n; i++)
        if (r->ev[i].opcode == -1 && r->ev[i].dir == dir && strcmp(r->ev[i].why, why) == 0)
            return 1;
    return 0;
}

static int count_anomalies(const struct record *r)
{
    int k = 0;
    for (int i = 0; i < r->n; i++)
        k += r->ev[i].opcode == -1;
    return k;
}

/* The i-th message of dir (anomalies skipped), or NULL. */
static const struct event *message(const struct record *r, int dir, int i)
{
    for (int k = 0; k < r->n; k++)
        if (r->ev[k].opcode != -1 && r->ev[k].dir == dir && i-- == 0)
            return &r->ev[k];
    return NULL;
}

static int message_is(const struct record *r, int dir, int i, int opcode, const void *p, size_t n)
{
    const struct event *e = message(r, dir, i);
    return e != NULL && e->opcode == opcode && e->n == n && (n == 0 || memcmp(e->data, p, n) == 0);
}

/* Feeds a stream in pieces: 0 whole, 1 byte by byte, else sizes cycling
 * through 1..step. */
static void feed(struct ws_session *s, int dir, const uint8_t *p, size_t n, size_t step)
{
    size_t off = 0, k = 0;

    if (step == 0) {
        ws_feed(s, dir, p, n);
        return;
    }
    while (off < n) {
        size_t m = 1 + (k++ * 5 + off) % step;
        if (m > n - off)
            m = n - off;
        ws_feed(s, dir, p + off, m);
        off += m;
    }
}

/* --- frames built here --------------------------------------------------- */

struct buf {
    uint8_t b[1 << 17];
    size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
    CHECK(b->n + n <= sizeof(b->b));
    if (b->n + n > sizeof(b->b))
        return;
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

/* One frame; mask NULL for none. */
static void frame(struct buf *b, int fin, int rsv, int opcode, const uint8_t *mask, const void *p,
                  size_t n)
{
    uint8_t h[14];
    size_t k = 2;
    const uint8_t *d = p;

    h[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (opcode & 0x0f));
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        k = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        k = 10;
    }
    if (mask) {
        h[1] |= 0x80;
        memcpy(h + k, mask, 4);
        k += 4;
    }
    put(b, h, k);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = d[i] ^ (mask ? mask[i & 3] : 0);
        put(b, &c, 1);
    }
}

static const uint8_t mask1[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A raw deflate compressor as a permessage-deflate sender uses it. */
struct sender {
    z_stream z;
    int no_takeover;
};

static void sender_init(struct sender *s, int bits, int no_takeover)
{
    memset(s, 0, sizeof(*s));
    CHECK(deflateInit2(&s->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) ==
          Z_OK);
    s->no_takeover = no_takeover;
}

/* Compresses one message into out, the trailing 00 00 ff ff removed. */
static size_t compress_message(struct sender *s, const void *p, size_t n, uint8_t *out, size_t cap)
{
    size_t len;

    s->z.next_in = (Bytef *)p;
    s->z.avail_in = (uInt)n;
    s->z.next_out = out;
    s->z.avail_out = (uInt)cap;
    CHECK(deflate(&s->z, Z_SYNC_FLUSH) == Z_OK);
    len = cap - s->z.avail_out;
    CHECK(len >= 4 && memcmp(out + len - 4, "\x00\x00\xff\xff", 4) == 0);
    if (s->no_takeover)
        deflateReset(&s->z);
    return len - 4;
}

/* --- captured exchanges -------------------------------------------------- */

static size_t load(const char *name, uint8_t *buf, size_t size)
{
    char path[4096 + 256];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open\n", path);
        CHECK(f != NULL);
        return 0;
    }
    n = fread(buf, 1, size, f);
    CHECK(ferror(f) == 0 && n > 0 && n < size);
    fclose(f);
    return n;
}

/* Offset of the byte after the head "...\r\n\r\n", or 0. */
static size_t head_end(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

/* The value of the Sec-WebSocket-Extensions header of a head, or "". */
static void extensions_header(const uint8_t *p, size_t n, char *out, size_t size)
{
    static const char name[] = "\r\nSec-WebSocket-Extensions:";
    out[0] = '\0';
    for (size_t i = 0; i + sizeof(name) - 1 <= n; i++) {
        if (strncasecmp((const char *)p + i, name, sizeof(name) - 1) != 0)
            continue;
        size_t s = i + sizeof(name) - 1, e = s;
        while (e < n && p[e] != '\r')
            e++;
        snprintf(out, size, "%.*s", (int)(e - s), (const char *)p + s);
        return;
    }
}

static void run_capture(const char *name, size_t step, struct record *r, struct ws_params *params)
{
    static uint8_t c2s[65536], s2c[65536];
    char file[256], ext[512];
    size_t nc, ns, hc, hs;
    struct ws_session *s;

    snprintf(file, sizeof(file), "%s.c2s", name);
    nc = load(file, c2s, sizeof(c2s));
    snprintf(file, sizeof(file), "%s.s2c", name);
    ns = load(file, s2c, sizeof(s2c));
    hc = head_end(c2s, nc);
    hs = head_end(s2c, ns);
    CHECK(hc > 0 && hs > 0);
    extensions_header(s2c, hs, ext, sizeof(ext));
    CHECK_EQ_INT(ws_parse_extensions(ext, params), 0);
    s = ws_new(params, 1 << 20, &callbacks, r);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    feed(s, 0, c2s + hc, nc - hc, step);
    feed(s, 1, s2c + hs, ns - hs, step);
    CHECK(ws_active(s, 0) && ws_active(s, 1));
    ws_free(s);
}

static void check_capture_messages(const char *name, const struct record *r)
{
    static const char close_bye[] = "\x03\xe8"
                                    "bye";
    char big[300 + 68 + 1];

    memset(big, 'x', 300);
    memcpy(big + 300, EICAR, 68);
    if (count_anomalies(r) != 0)
        fprintf(stderr, "%s: %d anomalies, first: %s\n", name, count_anomalies(r), r->ev[0].why);
    CHECK_EQ_INT(count_anomalies(r), 0);
    /* What the server application received. */
    CHECK(message_is(r, 0, 0, WS_OP_TEXT, "hello " EICAR, 74));
    CHECK(message_is(r, 0, 1, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(r, 0, 2, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(r, 0, 3, WS_OP_TEXT, EICAR, 68));
    CHECK(message_is(r, 0, 4, WS_OP_CLOSE, close_bye, 5));
    CHECK(message(r, 0, 5) == NULL);
    /* What the client application received. */
    CHECK(message_is(r, 1, 0, WS_OP_TEXT, EICAR, 68));
    CHECK(message_is(r, 1, 1, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(r, 1, 2, WS_OP_TEXT, EICAR, 68));
    CHECK(message_is(r, 1, 3, WS_OP_TEXT, big, 368));
    CHECK(message_is(r, 1, 4, WS_OP_CLOSE, close_bye, 5));
    CHECK(message(r, 1, 5) == NULL);
}

static void test_captures(void)
{
    static const char *const names[] = {"plain", "deflate", "deflate_nct"};
    static const size_t steps[] = {0, 1, 2, 3, 7, 64};

    for (size_t i = 0; i < 3; i++) {
        struct record whole = {0};
        struct ws_params p;

        run_capture(names[i], 0, &whole, &p);
        check_capture_messages(names[i], &whole);
        CHECK_EQ_INT(p.deflate, i > 0);
        for (size_t k = 1; k < sizeof(steps) / sizeof(steps[0]); k++) {
            struct record pieces = {0};
            run_capture(names[i], steps[k], &pieces, &p);
            CHECK(records_equal(&whole, &pieces));
            record_free(&pieces);
        }
        record_free(&whole);
    }
}

/* The deflate capture depends on the window: the second EICAR the server
 * sent is a back-reference to the first, so decoding it without the kept
 * window must fail. */
static void test_capture_needs_takeover(void)
{
    static uint8_t s2c[65536];
    struct ws_params p;
    struct record r = {0};
    struct ws_session *s;
    size_t n = load("deflate.s2c", s2c, sizeof(s2c)), h = head_end(s2c, n);

    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_max_window_bits=12; "
                                     "client_max_window_bits=12; server_no_context_takeover",
                                     &p),
                 0);
    s = ws_new(&p, 1 << 20, &callbacks, &r);
    ws_feed(s, 1, s2c + h, n - h);
    CHECK(has_anomaly(&r, 1, "ws: invalid deflate data"));
    CHECK(!ws_active(s, 1));
    CHECK(message_is(&r, 1, 0, WS_OP_TEXT, EICAR, 68));
    ws_free(s);
    record_free(&r);
}

/* --- Sec-WebSocket-Extensions -------------------------------------------- */

static void test_extensions(void)
{
    struct ws_params p;

    CHECK_EQ_INT(ws_parse_extensions(NULL, &p), 0);
    CHECK_EQ_INT(p.deflate, 0);
    CHECK_EQ_INT(ws_parse_extensions("", &p), 0);
    CHECK_EQ_INT(p.deflate, 0);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate", &p), 0);
    CHECK_EQ_INT(p.deflate, 1);
    CHECK_EQ_INT(p.client_max_window_bits, 15);
    CHECK_EQ_INT(p.server_max_window_bits, 15);
    CHECK_EQ_INT(p.client_no_context_takeover + p.server_no_context_takeover, 0);
    CHECK_EQ_INT(ws_parse_extensions(" permessage-deflate ;server_no_context_takeover ; "
                                     "client_no_context_takeover;server_max_window_bits=10; "
                                     "client_max_window_bits=\"9\" ",
                                     &p),
                 0);
    CHECK_EQ_INT(p.server_no_context_takeover, 1);
    CHECK_EQ_INT(p.client_no_context_takeover, 1);
    CHECK_EQ_INT(p.server_max_window_bits, 10);
    CHECK_EQ_INT(p.client_max_window_bits, 9);
    CHECK_EQ_INT(ws_parse_extensions("Permessage-Deflate; Server_Max_Window_Bits=8", &p), 0);
    CHECK_EQ_INT(p.server_max_window_bits, 8);
    CHECK_EQ_INT(ws_parse_extensions(", permessage-deflate,", &p), 0);
    CHECK_EQ_INT(p.deflate, 1);

    /* What a client refuses, or what would make frames unreadable. */
    CHECK_EQ_INT(ws_parse_extensions("x-webkit-deflate-frame", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate, permessage-deflate", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate, foo", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; foo=1", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_max_window_bits=16", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_max_window_bits=7", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_max_window_bits=010", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_max_window_bits", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; client_max_window_bits", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_no_context_takeover=1", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_no_context_takeover; "
                                     "server_no_context_takeover",
                                     &p),
                 -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; client_max_window_bits=\"9", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate x", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("\"permessage-deflate\"", &p), -1);
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate;", &p), -1);
}

/* --- frames ---------------------------------------------------------------- */

/* Runs c2s and s2c through a fresh session whole and byte by byte; both
 * runs must agree. Returns the whole run's record. */
static void run_frames(const struct ws_params *p, uint64_t max, const struct buf *c2s,
                       const struct buf *s2c, struct record *r)
{
    struct record one = {0};
    struct ws_session *s = ws_new(p, max, &callbacks, r);
    struct ws_session *t = ws_new(p, max, &callbacks, &one);

    CHECK(s != NULL && t != NULL);
    if (s == NULL || t == NULL)
        return;
    if (c2s) {
        ws_feed(s, 0, c2s->b, c2s->n);
        feed(t, 0, c2s->b, c2s->n, 1);
    }
    if (s2c) {
        ws_feed(s, 1, s2c->b, s2c->n);
        feed(t, 1, s2c->b, s2c->n, 1);
    }
    CHECK(records_equal(r, &one));
    record_free(&one);
    ws_free(s);
    ws_free(t);
}

static struct buf c2s, s2c;

static void reset_bufs(void)
{
    c2s.n = 0;
    s2c.n = 0;
}

static void test_plain_frames(void)
{
    struct record r = {0};
    uint8_t big[70000];

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31 + 7);
    memcpy(big + 40000, EICAR, 68);
    reset_bufs();
    /* Fragments with a ping between them; 16-bit and 64-bit lengths. */
    frame(&s2c, 0, 0, WS_OP_TEXT, NULL, EICAR, 10);
    frame(&s2c, 1, 0, WS_OP_PING, NULL, "pp", 2);
    frame(&s2c, 0, 0, WS_OP_CONTINUATION, NULL, EICAR + 10, 0);
    frame(&s2c, 1, 0, WS_OP_CONTINUATION, NULL, EICAR + 10, 58);
    frame(&s2c, 1, 0, WS_OP_BINARY, NULL, big, 300);
    frame(&s2c, 1, 0, WS_OP_BINARY, NULL, big, sizeof(big));
    frame(&s2c, 1, 0, WS_OP_BINARY, NULL, "", 0);
    /* Masked uploads, one fragmented with different lengths. */
    frame(&c2s, 1, 0, WS_OP_BINARY, mask1, EICAR, 68);
    frame(&c2s, 0, 0, WS_OP_TEXT, mask1, EICAR, 33);
    frame(&c2s, 0, 0, WS_OP_CONTINUATION, mask1, EICAR + 33, 1);
    frame(&c2s, 1, 0, WS_OP_CONTINUATION, mask1, EICAR + 34, 34);
    frame(&c2s, 1, 0, WS_OP_CLOSE, mask1, "\x03\xe8" EICAR, 70);
    run_frames(NULL, 1 << 20, &c2s, &s2c, &r);
    CHECK_EQ_INT(count_anomalies(&r), 0);
    CHECK(message_is(&r, 1, 0, WS_OP_PING, "pp", 2));
    CHECK(message_is(&r, 1, 1, WS_OP_TEXT, EICAR, 68));
    CHECK(message_is(&r, 1, 2, WS_OP_BINARY, big, 300));
    CHECK(message_is(&r, 1, 3, WS_OP_BINARY, big, sizeof(big)));
    CHECK(message_is(&r, 1, 4, WS_OP_BINARY, "", 0));
    CHECK(message_is(&r, 0, 0, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(&r, 0, 1, WS_OP_TEXT, EICAR, 68));
    CHECK(message_is(&r, 0, 2, WS_OP_CLOSE, "\x03\xe8" EICAR, 70));
    record_free(&r);
}

/* Sends three messages compressed with the given sender settings; the
 * second and third repeat the first, so they are back-references when the
 * window is kept. */
static void deflate_case(int bits, int no_takeover, const char *ext)
{
    struct ws_params p;
    struct sender snd, cli;
    struct record r = {0};
    uint8_t z[4096];
    size_t n;

    CHECK_EQ_INT(ws_parse_extensions(ext, &p), 0);
    sender_init(&snd, bits < 9 ? 9 : bits, no_takeover);
    sender_init(&cli, 15, 0);
    reset_bufs();
    for (int i = 0; i < 3; i++) {
        n = compress_message(&snd, EICAR, 68, z, sizeof(z));
        if (i < 2) {
            frame(&s2c, 1, 4, WS_OP_TEXT, NULL, z, n);
        } else { /* fragmented: RSV1 on the first frame only */
            frame(&s2c, 0, 4, WS_OP_BINARY, NULL, z, 3);
            frame(&s2c, 0, 0, WS_OP_CONTINUATION, NULL, z + 3, 0);
            frame(&s2c, 1, 0, WS_OP_CONTINUATION, NULL, z + 3, n - 3);
        }
        n = compress_message(&cli, EICAR, 68, z, sizeof(z));
        frame(&c2s, 1, 4, WS_OP_BINARY, mask1, z, n);
    }
    /* Uncompressed messages may be mixed in. */
    frame(&s2c, 1, 0, WS_OP_TEXT, NULL, "plain", 5);
    n = compress_message(&snd, EICAR, 68, z, sizeof(z));
    frame(&s2c, 1, 4, WS_OP_TEXT, NULL, z, n);
    run_frames(&p, 1 << 20, &c2s, &s2c, &r);
    CHECK_EQ_INT(count_anomalies(&r), 0);
    for (int i = 0; i < 3; i++) {
        CHECK(message_is(&r, 1, i, i < 2 ? WS_OP_TEXT : WS_OP_BINARY, EICAR, 68));
        CHECK(message_is(&r, 0, i, WS_OP_BINARY, EICAR, 68));
    }
    CHECK(message_is(&r, 1, 3, WS_OP_TEXT, "plain", 5));
    CHECK(message_is(&r, 1, 4, WS_OP_TEXT, EICAR, 68));
    deflateEnd(&snd.z);
    deflateEnd(&cli.z);
    record_free(&r);
}

static void test_deflate(void)
{
    deflate_case(15, 0, "permessage-deflate");
    deflate_case(15, 1, "permessage-deflate; server_no_context_takeover");
    deflate_case(10, 0, "permessage-deflate; server_max_window_bits=10");
    deflate_case(9, 1, "permessage-deflate; server_max_window_bits=9; server_no_context_takeover");
    deflate_case(9, 0, "permessage-deflate; server_max_window_bits=8");
}

/* A sender that keeps its window although it promised not to: the receiver
 * resets and cannot read the back-reference. */
static void test_deflate_broken_promise(void)
{
    struct ws_params p;
    struct sender snd;
    struct record r = {0};
    uint8_t z[4096];
    size_t n;

    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate; server_no_context_takeover", &p), 0);
    sender_init(&snd, 15, 0);
    reset_bufs();
    for (int i = 0; i < 2; i++) {
        n = compress_message(&snd, EICAR, 68, z, sizeof(z));
        frame(&s2c, 1, 4, WS_OP_TEXT, NULL, z, n);
    }
    run_frames(&p, 1 << 20, NULL, &s2c, &r);
    CHECK(message_is(&r, 1, 0, WS_OP_TEXT, EICAR, 68));
    CHECK(has_anomaly(&r, 1, "ws: invalid deflate data"));
    deflateEnd(&snd.z);
    record_free(&r);
}

/* A message ending with a final deflate block: the next message starts a
 * new deflate stream. */
static void test_deflate_final_block(void)
{
    struct ws_params p;
    struct record r = {0};
    uint8_t z[4096];
    z_stream d;
    size_t n;

    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate", &p), 0);
    reset_bufs();
    for (int i = 0; i < 3; i++) {
        memset(&d, 0, sizeof(d));
        CHECK(deflateInit2(&d, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
        d.next_in = (Bytef *)EICAR;
        d.avail_in = 68;
        d.next_out = z;
        d.avail_out = sizeof(z);
        CHECK(deflate(&d, Z_FINISH) == Z_STREAM_END);
        n = sizeof(z) - d.avail_out;
        deflateEnd(&d);
        if (i == 2) { /* bytes after the final block: dropped, with an anomaly */
            memcpy(z + n, "\x01\x02\x03", 3);
            n += 3;
        }
        frame(&s2c, 1, 4, WS_OP_BINARY, NULL, z, n);
    }
    frame(&s2c, 1, 0, WS_OP_TEXT, NULL, "plain", 5);
    run_frames(&p, 1 << 20, NULL, &s2c, &r);
    CHECK_EQ_INT(count_anomalies(&r), 1);
    CHECK(has_anomaly(&r, 1, "ws: data after the final deflate block"));
    CHECK(message_is(&r, 1, 0, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(&r, 1, 1, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(&r, 1, 2, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(&r, 1, 3, WS_OP_TEXT, "plain", 5));
    record_free(&r);
}

/* Past max_message: what fits is handed out once, with an anomaly; the
 * stream stays in sync, and with a kept window the next message still
 * decodes. */
static void test_limit(void)
{
    struct ws_params p;
    struct sender snd;
    struct record r = {0};
    static uint8_t bomb[1 << 16], z[1 << 16];
    size_t n;

    memset(bomb, 'A', sizeof(bomb));
    memcpy(bomb, EICAR, 68);
    reset_bufs();
    frame(&s2c, 0, 0, WS_OP_BINARY, NULL, bomb, 60);
    frame(&s2c, 1, 0, WS_OP_CONTINUATION, NULL, bomb + 60, 100);
    frame(&s2c, 1, 0, WS_OP_TEXT, NULL, "ok", 2);
    run_frames(NULL, 100, NULL, &s2c, &r);
    CHECK(has_anomaly(&r, 1, "ws: message longer than the limit"));
    CHECK(message_is(&r, 1, 0, WS_OP_BINARY, bomb, 100));
    CHECK(message_is(&r, 1, 1, WS_OP_TEXT, "ok", 2));
    CHECK(message(&r, 1, 2) == NULL);
    record_free(&r);

    /* A 64 KiB run of 'A' deflates to a few hundred bytes. */
    CHECK_EQ_INT(ws_parse_extensions("permessage-deflate", &p), 0);
    sender_init(&snd, 15, 0);
    reset_bufs();
    n = compress_message(&snd, bomb, sizeof(bomb), z, sizeof(z));
    CHECK(n < 1000);
    frame(&s2c, 1, 4, WS_OP_BINARY, NULL, z, n);
    n = compress_message(&snd, bomb, 100, z, sizeof(z));
    frame(&s2c, 1, 4, WS_OP_BINARY, NULL, z, n);
    run_frames(&p, 1000, NULL, &s2c, &r);
    CHECK_EQ_INT(count_anomalies(&r), 1);
    CHECK(message_is(&r, 1, 0, WS_OP_BINARY, bomb, 1000));
    CHECK(message_is(&r, 1, 1, WS_OP_BINARY, bomb, 100));
    deflateEnd(&snd.z);
    record_free(&r);
}

/* Frames a receiver refuses: an anomaly, and the direction stops; what
 * came before was handed out. */
static void bad_case(const uint8_t *hdr, size_t n, int deflate, const char *why)
{
    struct ws_params p;
    struct record r = {0};
    struct ws_session *s;

    CHECK_EQ_INT(ws_parse_extensions(deflate ? "permessage-deflate" : "", &p), 0);
    s = ws_new(&p, 1 << 20, &callbacks, &r);
    reset_bufs();
    frame(&s2c, 1, 0, WS_OP_TEXT, NULL, "before", 6);
    put(&s2c, hdr, n);
    frame(&s2c, 1, 0, WS_OP_TEXT, NULL, "after", 5);
    feed(s, 1, s2c.b, s2c.n, 3);
    if (!has_anomaly(&r, 1, why))
        fprintf(stderr, "expected anomaly \"%s\", got %d anomalies\n", why, count_anomalies(&r));
    CHECK(has_anomaly(&r, 1, why));
    CHECK_EQ_INT(count_anomalies(&r), 1);
    CHECK(!ws_active(s, 1));
    CHECK(ws_active(s, 0));
    CHECK(message_is(&r, 1, 0, WS_OP_TEXT, "before", 6));
    CHECK(message(&r, 1, 1) == NULL);
    ws_free(s);
    record_free(&r);
}

static void test_bad_frames(void)
{
    bad_case((const uint8_t *)"\xa1\x00", 2, 0, "ws: reserved bit RSV2 or RSV3 set");
    bad_case((const uint8_t *)"\x91\x00", 2, 1, "ws: reserved bit RSV2 or RSV3 set");
    bad_case((const uint8_t *)"\xc1\x00", 2, 0, "ws: RSV1 set without permessage-deflate");
    bad_case((const uint8_t *)"\xc9\x00", 2, 1, "ws: RSV1 set on a control frame");
    bad_case((const uint8_t *)"\x01\x01x\xc0\x00", 5, 1, "ws: RSV1 set on a continuation frame");
    bad_case((const uint8_t *)"\x83\x00", 2, 0, "ws: reserved opcode");
    bad_case((const uint8_t *)"\x8b\x00", 2, 0, "ws: reserved opcode");
    bad_case((const uint8_t *)"\x09\x00", 2, 0, "ws: fragmented control frame");
    bad_case((const uint8_t *)"\x89\x7e\x00\x7e", 4, 0, "ws: control frame longer than 125 bytes");
    bad_case((const uint8_t *)"\x80\x01x", 3, 0, "ws: continuation frame without a message");
    bad_case((const uint8_t *)"\x01\x01x\x81\x01x", 6, 0,
             "ws: new message inside a fragmented message");
    bad_case((const uint8_t *)"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10, 0,
             "ws: frame length over 2^63");
    /* Not deflate data (a block type 3). */
    bad_case((const uint8_t *)"\xc1\x01\xff", 3, 1, "ws: invalid deflate data");
}

/* Read through, with an anomaly once: wrong masking both ways, frames after
 * a close. */
static void test_soft_anomalies(void)
{
    struct record r = {0};

    reset_bufs();
    frame(&c2s, 1, 0, WS_OP_TEXT, NULL, EICAR, 68);
    frame(&c2s, 1, 0, WS_OP_TEXT, NULL, EICAR, 68);
    frame(&s2c, 1, 0, WS_OP_BINARY, mask1, EICAR, 68);
    frame(&s2c, 1, 0, WS_OP_CLOSE, NULL, "", 0);
    frame(&s2c, 1, 0, WS_OP_BINARY, NULL, EICAR, 68);
    frame(&s2c, 1, 0, WS_OP_BINARY, NULL, EICAR, 68);
    run_frames(NULL, 1 << 20, &c2s, &s2c, &r);
    CHECK_EQ_INT(count_anomalies(&r), 3);
    CHECK(has_anomaly(&r, 0, "ws: unmasked client frame"));
    CHECK(has_anomaly(&r, 1, "ws: masked server frame"));
    CHECK(has_anomaly(&r, 1, "ws: frame after close"));
    CHECK(message_is(&r, 0, 0, WS_OP_TEXT, EICAR, 68));
    CHECK(message_is(&r, 0, 1, WS_OP_TEXT, EICAR, 68));
    CHECK(message_is(&r, 1, 0, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(&r, 1, 1, WS_OP_CLOSE, "", 0));
    CHECK(message_is(&r, 1, 2, WS_OP_BINARY, EICAR, 68));
    CHECK(message_is(&r, 1, 3, WS_OP_BINARY, EICAR, 68));
    record_free(&r);
}

int main(void)
{
    const char *srcdir = getenv("SRCDIR");

    snprintf(data_dir, sizeof(data_dir), "%s/tests/unit/data/ws",
             srcdir != NULL && *srcdir != '\0' ? srcdir : ".");
    test_captures();
    test_capture_needs_takeover();
    test_extensions();
    test_plain_frames();
    test_deflate();
    test_deflate_broken_promise();
    test_deflate_final_block();
    test_limit();
    test_bad_frames();
    test_soft_anomalies();
    CHECK_DONE();
}
