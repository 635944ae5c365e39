/*
 * The TLS proxy's HTTP/2 relay on buffers: frames cut at every byte, header
 * blocks kept whole, DATA held until its stream's next frame, a blocked
 * stream reset both ways with its DATA given back to the sender, and the
 * other streams untouched.
 */
#include "check.h"
#include "h2relay.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* --- building frames ----------------------------------------------------------- */

struct wire {
    uint8_t b[65536];
    size_t n;
};

static void frame(struct wire *w, uint8_t type, uint8_t flags, uint32_t stream, const char *payload,
                  size_t len)
{
    uint8_t *h = w->b + w->n;
    h[0] = (uint8_t)(len >> 16);
    h[1] = (uint8_t)(len >> 8);
    h[2] = (uint8_t)len;
    h[3] = type;
    h[4] = flags;
    h[5] = (uint8_t)(stream >> 24);
    h[6] = (uint8_t)(stream >> 16);
    h[7] = (uint8_t)(stream >> 8);
    h[8] = (uint8_t)stream;
    memcpy(h + 9, payload, len);
    w->n += 9 + len;
}

/* --- the splitter ------------------------------------------------------------------ */

struct seen {
    unsigned type[64];
    uint32_t stream[64];
    size_t n[64];
    unsigned count;
};

static int on_unit(void *ctx, const struct h2r_unit *u)
{
    struct seen *s = ctx;
    s->type[s->count] = u->type;
    s->stream[s->count] = u->stream;
    s->n[s->count] = u->n;
    s->count++;
    return 0;
}

static void test_split(void)
{
    struct wire w = {0};
    memcpy(w.b, preface, 24);
    w.n = 24;
    frame(&w, H2R_FRAME_SETTINGS, 0, 0, "", 0);
    frame(&w, H2R_FRAME_HEADERS, 0, 1, "abc", 3); /* no END_HEADERS: a block */
    frame(&w, H2R_FRAME_CONTINUATION, 0, 1, "de", 2);
    frame(&w, H2R_FRAME_CONTINUATION, H2R_FLAG_END_HEADERS, 1, "f", 1);
    frame(&w, H2R_FRAME_DATA, H2R_FLAG_END_STREAM, 1, "hello", 5);

    /* Whole, and one byte at a time: the same units. */
    for (size_t step = 1; step <= w.n; step = step == 1 ? w.n : w.n + 1) {
        struct h2r_split sp;
        struct seen s = {0};
        const char *why;
        h2r_split_init(&sp, 1);
        for (size_t at = 0; at < w.n; at += step) {
            size_t m = w.n - at < step ? w.n - at : step;
            CHECK_EQ_INT(h2r_split_feed(&sp, w.b + at, m, on_unit, &s, &why), 0);
        }
        CHECK_EQ_INT(s.count, 4);
        CHECK_EQ_INT(s.type[0], H2R_PREFACE);
        CHECK_EQ_INT(s.type[1], H2R_FRAME_SETTINGS);
        CHECK_EQ_INT(s.type[2], H2R_FRAME_HEADERS);
        CHECK_EQ_INT(s.n[2], 9 * 3 + 6); /* the block with its CONTINUATIONs */
        CHECK_EQ_INT(s.stream[2], 1);
        CHECK_EQ_INT(s.type[3], H2R_FRAME_DATA);
        CHECK_EQ_INT(s.n[3], 14);
        h2r_split_free(&sp);
    }
}

static void test_split_errors(void)
{
    struct h2r_split sp;
    struct seen s = {0};
    const char *why;
    struct wire w = {0};

    h2r_split_init(&sp, 1);
    CHECK_EQ_INT(h2r_split_feed(&sp, (const uint8_t *)"GET / HTTP/1.1\r\n", 16, on_unit, &s, &why),
                 -1);
    CHECK(why && strstr(why, "preface"));
    h2r_split_free(&sp);

    /* A header block interrupted by another frame. */
    h2r_split_init(&sp, 0);
    frame(&w, H2R_FRAME_HEADERS, 0, 1, "abc", 3);
    frame(&w, H2R_FRAME_DATA, 0, 1, "x", 1);
    CHECK_EQ_INT(h2r_split_feed(&sp, w.b, w.n, on_unit, &s, &why), -1);
    CHECK(why && strstr(why, "CONTINUATION"));
    h2r_split_free(&sp);

    /* A frame larger than the relay holds. */
    h2r_split_init(&sp, 0);
    uint8_t big[9] = {0x20, 0, 0, H2R_FRAME_DATA, 0, 0, 0, 0, 1}; /* 2 MiB */
    uint8_t zeros[4096] = {0};
    int rc = h2r_split_feed(&sp, big, 9, on_unit, &s, &why);
    for (int i = 0; i < 300 && rc == 0; i++)
        rc = h2r_split_feed(&sp, zeros, sizeof(zeros), on_unit, &s, &why);
    CHECK_EQ_INT(rc, -1);
    CHECK(why && strstr(why, "larger"));
    h2r_split_free(&sp);
}

/* --- the relay ---------------------------------------------------------------------- */

struct fake {
    struct wire out[2];    /* by direction */
    uint32_t block_on_end; /* block this stream when its END_STREAM is inspected */
    uint32_t pending[4];
    size_t npending;
    unsigned inspected;
    uint32_t block_on_judge; /* block this stream when its held end is judged */
    unsigned judged;
};

static void fake_judge(void *ctx, int dir, uint32_t stream)
{
    struct fake *f = ctx;
    (void)dir;
    f->judged++;
    if (stream == f->block_on_judge)
        f->pending[f->npending++] = stream;
}

static int fake_inspect(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct fake *f = ctx;
    (void)dir;
    f->inspected++;
    if (n >= 9 && (p[4] & H2R_FLAG_END_STREAM) && p[3] != H2R_FRAME_SETTINGS) {
        uint32_t id = (uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8];
        if (id == f->block_on_end)
            f->pending[f->npending++] = id;
    }
    return 0;
}

static size_t fake_blocked(void *ctx, uint32_t *ids, size_t max)
{
    struct fake *f = ctx;
    size_t n = f->npending < max ? f->npending : max;
    memcpy(ids, f->pending, n * sizeof(*ids));
    f->npending = 0;
    return n;
}

static int fake_out(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct fake *f = ctx;
    memcpy(f->out[dir].b + f->out[dir].n, p, n);
    f->out[dir].n += n;
    return 0;
}

/* The frames of a wire, as "TYPE:stream" words. */
static void frames_of(const struct wire *w, size_t skip, char *buf, size_t len)
{
    static const char *names[] = {"DATA", "HEADERS", "PRIORITY", "RST", "SETTINGS",
                                  "PUSH", "PING",    "GOAWAY",   "WU",  "CONT"};
    size_t at = skip, o = 0;
    buf[0] = '\0';
    while (at + 9 <= w->n && o + 32 < len) {
        size_t flen = (size_t)w->b[at] << 16 | (size_t)w->b[at + 1] << 8 | w->b[at + 2];
        unsigned type = w->b[at + 3];
        unsigned id = w->b[at + 8];
        o += (size_t)snprintf(buf + o, len - o, "%s%s:%u", o ? " " : "",
                              type < 10 ? names[type] : "?", id);
        if (type == H2R_FRAME_WINDOW_UPDATE || type == H2R_FRAME_RST_STREAM) {
            unsigned v = (unsigned)w->b[at + 9] << 24 | (unsigned)w->b[at + 10] << 16 |
                         (unsigned)w->b[at + 11] << 8 | w->b[at + 12];
            o += (size_t)snprintf(buf + o, len - o, "=%u", v);
        }
        at += 9 + flen;
    }
}

static void test_relay(void)
{
    struct fake f = {0};
    struct h2r_io io = {&f, fake_inspect, fake_blocked, fake_out, NULL};
    struct h2r *r = h2r_new(1 << 20);
    struct wire up = {0}, down = {0};
    const char *why;
    char got[512];

    memcpy(up.b, preface, 24);
    up.n = 24;
    frame(&up, H2R_FRAME_SETTINGS, 0, 0, "", 0);
    frame(&up, H2R_FRAME_HEADERS, H2R_FLAG_END_HEADERS | H2R_FLAG_END_STREAM, 1, "req1", 4);
    frame(&up, H2R_FRAME_HEADERS, H2R_FLAG_END_HEADERS | H2R_FLAG_END_STREAM, 3, "req3", 4);
    CHECK_EQ_INT(h2r_input(r, 0, up.b, up.n, &io, &why), H2R_OK);
    frames_of(&f.out[0], 24, got, sizeof(got));
    CHECK_EQ_STR(got, "SETTINGS:0 HEADERS:1 HEADERS:3");
    f.block_on_end = 3; /* its response, from now on */

    /* Two responses interleaved: each DATA waits for its stream's next frame. */
    frame(&down, H2R_FRAME_HEADERS, H2R_FLAG_END_HEADERS, 1, "res1", 4);
    frame(&down, H2R_FRAME_HEADERS, H2R_FLAG_END_HEADERS, 3, "res3", 4);
    frame(&down, H2R_FRAME_DATA, 0, 1, "one-a", 5);
    frame(&down, H2R_FRAME_DATA, 0, 3, "bad-a", 5);
    CHECK_EQ_INT(h2r_input(r, 1, down.b, down.n, &io, &why), H2R_OK);
    frames_of(&f.out[1], 0, got, sizeof(got));
    CHECK_EQ_STR(got, "HEADERS:1 HEADERS:3");
    CHECK_EQ_INT(h2r_held(r), 28);

    /* Stream 3 ends with trailers, and its body is blocked: its held DATA
     * goes back to the server as window, both sides get a reset, and the
     * trailers still go (after the reset) for the client's HPACK. */
    down.n = 0;
    frame(&down, H2R_FRAME_DATA, 0, 1, "one-b", 5);
    frame(&down, H2R_FRAME_HEADERS, H2R_FLAG_END_HEADERS | H2R_FLAG_END_STREAM, 3, "trl", 3);
    frame(&down, H2R_FRAME_DATA, 0, 3, "late", 4);
    frame(&down, H2R_FRAME_DATA, H2R_FLAG_END_STREAM, 1, "one-c", 5);
    size_t before = f.out[1].n, before_up = f.out[0].n;
    CHECK_EQ_INT(h2r_input(r, 1, down.b, down.n, &io, &why), H2R_OK);
    frames_of(&f.out[1], before, got, sizeof(got));
    CHECK_EQ_STR(got, "DATA:1 RST:3=2 HEADERS:3 DATA:1 DATA:1");
    frames_of(&f.out[0], before_up, got, sizeof(got));
    CHECK_EQ_STR(got, "WU:0=5 RST:3=8 WU:0=4");
    CHECK_EQ_INT(h2r_held(r), 0);

    struct h2r_stats st;
    h2r_stats(r, &st);
    CHECK_EQ_INT(st.streams_blocked, 1);
    CHECK_EQ_INT(st.frames_dropped, 2);
    h2r_free(r);
}

static void test_relay_request_blocked_by_its_headers(void)
{
    struct fake f = {0};
    struct h2r_io io = {&f, fake_inspect, fake_blocked, fake_out, NULL};
    struct h2r *r = h2r_new(1 << 20);
    struct wire up = {0};
    const char *why;
    char got[256];

    /* The server must hear of the stream before it is reset there. */
    f.block_on_end = 5;
    memcpy(up.b, preface, 24);
    up.n = 24;
    frame(&up, H2R_FRAME_HEADERS, H2R_FLAG_END_HEADERS | H2R_FLAG_END_STREAM, 5, "bad", 3);
    CHECK_EQ_INT(h2r_input(r, 0, up.b, up.n, &io, &why), H2R_OK);
    frames_of(&f.out[0], 24, got, sizeof(got));
    CHECK_EQ_STR(got, "HEADERS:5 RST:5=8");
    frames_of(&f.out[1], 0, got, sizeof(got));
    CHECK_EQ_STR(got, "RST:5=2");
    h2r_free(r);
}

static void test_relay_hold_limit_and_eof(void)
{
    struct fake f = {0};
    struct h2r_io io = {&f, fake_inspect, fake_blocked, fake_out, NULL};
    struct h2r *r = h2r_new(20);
    struct wire down = {0};
    const char *why;
    char got[256];

    frame(&down, H2R_FRAME_DATA, 0, 1, "0123456789", 10);
    frame(&down, H2R_FRAME_DATA, 0, 3, "0123456789", 10); /* past 20 held bytes: 1 goes */
    CHECK_EQ_INT(h2r_input(r, 1, down.b, down.n, &io, &why), H2R_OK);
    frames_of(&f.out[1], 0, got, sizeof(got));
    CHECK_EQ_STR(got, "DATA:1");
    struct h2r_stats st;
    h2r_stats(r, &st);
    CHECK_EQ_INT(st.hold_overflows, 1);
    h2r_now(r, 5000);
    CHECK_EQ_INT(h2r_release_older(r, 1, &io), H2R_OK); /* held since 0 */
    frames_of(&f.out[1], 0, got, sizeof(got));
    CHECK_EQ_STR(got, "DATA:1 DATA:3");
    h2r_free(r);
}

/* Held DATA released before its stream ends is judged first: a stream the
 * judgement blocks loses the frame and is reset; another goes on. */
static void test_relay_release_judged(void)
{
    struct fake f = {0};
    struct h2r_io io = {&f, fake_inspect, fake_blocked, fake_out, fake_judge};
    struct h2r *r = h2r_new(1 << 20);
    struct wire down = {0};
    const char *why;
    char got[256];

    f.block_on_judge = 3;
    frame(&down, H2R_FRAME_DATA, 0, 1, "clean", 5);
    frame(&down, H2R_FRAME_DATA, 0, 3, "whole", 5);
    CHECK_EQ_INT(h2r_input(r, 1, down.b, down.n, &io, &why), H2R_OK);
    CHECK_EQ_INT(f.out[1].n, 0); /* both held */
    h2r_now(r, 5000);
    CHECK_EQ_INT(h2r_release_older(r, 1, &io), H2R_OK);
    CHECK_EQ_INT(f.judged, 2);
    frames_of(&f.out[1], 0, got, sizeof(got));
    CHECK_EQ_STR(got, "DATA:1 RST:3=2");
    frames_of(&f.out[0], 0, got, sizeof(got));
    CHECK_EQ_STR(got, "WU:0=5 RST:3=8");
    CHECK_EQ_INT(h2r_held(r), 0);
    h2r_free(r);
}

int main(void)
{
    test_split();
    test_split_errors();
    test_relay();
    test_relay_request_blocked_by_its_headers();
    test_relay_hold_limit_and_eof();
    test_relay_release_judged();
    CHECK_DONE();
}
