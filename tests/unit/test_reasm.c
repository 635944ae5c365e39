/*
 * TCP reassembly: ordering, overlaps, the ends of a stream, acks, limits,
 * wraparound, and a randomised property test: whatever the order, duplication
 * and overlap of the segments, every byte of the stream comes out exactly once,
 * at its place, as data or as a gap, and the held counters stay exact.
 *
 * In the small tests, data is the alphabet: the letter for sequence number
 * seq is 'a' + (seq - isn - 1), so a segment's contents show its position.
 */
#include "reasm.h"
#include "check.h"

#include <stdint.h>
#include <time.h>

/* --- a sink that records ----------------------------------------------------- */

enum { KIND_NONE, KIND_DATA, KIND_GAP };

/* What a stream produced: data copied at its offset, '_' for gap bytes, and
 * per offset whether it came as data or as a gap. */
struct rec {
    uint8_t *out; /* NUL-terminated */
    uint8_t *kind;
    size_t cap;
    uint64_t pos; /* offsets produced so far */
    uint64_t data_bytes, gap_bytes;
    unsigned data_calls, gap_calls, ends, after_end, overflow;
    const uint8_t *last_p;
    size_t last_n;
};

static void rec_init(struct rec *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->out = calloc(cap + 1, 1);
    r->kind = calloc(cap + 1, 1);
    r->cap = cap;
}

static void rec_free(struct rec *r)
{
    free(r->out);
    free(r->kind);
}

static void rec_put(struct rec *r, const uint8_t *p, uint64_t n, uint8_t kind)
{
    if (r->ends)
        r->after_end++;
    for (uint64_t i = 0; i < n; i++, r->pos++) {
        if (r->pos >= r->cap) {
            r->overflow++;
            continue;
        }
        r->out[r->pos] = p ? p[i] : '_';
        r->kind[r->pos] = kind;
    }
}

static void rec_data(void *ctx, const uint8_t *p, size_t n)
{
    struct rec *r = ctx;
    rec_put(r, p, n, KIND_DATA);
    r->data_bytes += n;
    r->data_calls++;
    r->last_p = p;
    r->last_n = n;
}

static void rec_gap(void *ctx, uint64_t n)
{
    struct rec *r = ctx;
    rec_put(r, NULL, n, KIND_GAP);
    r->gap_bytes += n;
    r->gap_calls++;
}

static void rec_end(void *ctx)
{
    struct rec *r = ctx;
    r->ends++;
}

static const struct reasm_sink sink = {rec_data, rec_gap, rec_end};

/* --- one stream, one pool ------------------------------------------------------ */

struct one {
    struct reasm_pool pool;
    struct reasm_stream s;
    struct rec r;
};

static void one_init(struct one *t, uint64_t limit_total, uint64_t limit_stream)
{
    reasm_pool_init(&t->pool, limit_total, limit_stream);
    reasm_stream_init(&t->s);
    rec_init(&t->r, 4096);
}

static void one_free(struct one *t)
{
    reasm_stream_free(&t->pool, &t->s);
    CHECK_EQ_INT(t->pool.held, 0);
    CHECK_EQ_INT(t->s.held, 0);
    CHECK(t->s.segs == NULL);
    rec_free(&t->r);
}

static size_t seg(struct one *t, uint32_t seq, uint8_t flags, const char *data)
{
    size_t n = data ? strlen(data) : 0;
    return reasm_segment(&t->pool, &t->s, seq, flags, (const uint8_t *)data, n, &sink, &t->r);
}

static void ack(struct one *t, uint32_t a)
{
    reasm_ack(&t->pool, &t->s, a, &sink, &t->r);
}

static const char *out(const struct one *t)
{
    return (const char *)t->r.out;
}

#define BIG (1u << 30)

/* --- the cases --------------------------------------------------------------- */

static void test_in_order_no_copy(void)
{
    struct one t;
    one_init(&t, BIG, BIG);
    const char *hello = "hello", *world = " world";

    CHECK_EQ_INT(seg(&t, 1000, REASM_SYN, NULL), 0);
    CHECK(t.s.started);
    CHECK_EQ_INT(t.s.next_seq, 1001);
    CHECK_EQ_INT(seg(&t, 1001, REASM_ACK, hello), 5);
    CHECK(t.r.last_p == (const uint8_t *)hello);
    CHECK_EQ_INT(t.r.last_n, 5);
    CHECK_EQ_INT(seg(&t, 1006, REASM_ACK, world), 6);
    CHECK(t.r.last_p == (const uint8_t *)world);
    CHECK_EQ_INT(t.r.data_calls, 2);
    CHECK_EQ_STR(out(&t), "hello world");
    CHECK_EQ_INT(t.s.delivered, 11);
    CHECK_EQ_INT(t.s.next_seq, 1012);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);

    /* a pure ACK, even with a stale or odd sequence number, changes nothing */
    CHECK_EQ_INT(seg(&t, 5, REASM_ACK, NULL), 0);
    CHECK_EQ_INT(t.s.next_seq, 1012);
    CHECK_EQ_INT(t.pool.invalid, 0);
    CHECK_EQ_INT(t.pool.overlaps, 0);
    one_free(&t);
}

static void test_reorder_reverse(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    seg(&t, 0, REASM_SYN, NULL);
    CHECK_EQ_INT(seg(&t, 7, REASM_ACK, "ghi"), 3);
    CHECK_EQ_INT(t.s.held, 3);
    CHECK_EQ_INT(t.pool.held, 3);
    CHECK_EQ_INT(seg(&t, 4, REASM_ACK, "def"), 3);
    CHECK_EQ_INT(t.s.held, 6);
    CHECK_EQ_INT(t.pool.held, 6);
    CHECK_EQ_INT(t.r.data_calls, 0);
    CHECK_EQ_INT(seg(&t, 1, REASM_ACK, "abc"), 3);
    CHECK_EQ_STR(out(&t), "abcdefghi");
    /* "abc" from the caller, then the held run, merged into one */
    CHECK_EQ_INT(t.r.data_calls, 2);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);
    CHECK_EQ_INT(t.s.delivered, 9);
    CHECK_EQ_INT(t.pool.gaps, 0);
    CHECK_EQ_INT(t.pool.overlaps, 0);
    one_free(&t);
}

static void test_retransmissions(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    seg(&t, 0, REASM_SYN, NULL);
    CHECK_EQ_INT(seg(&t, 1, REASM_ACK, "abcd"), 4);
    /* before next_seq: all old, then partly old */
    CHECK_EQ_INT(seg(&t, 1, REASM_ACK, "abcd"), 0);
    CHECK_EQ_INT(t.pool.overlaps, 1);
    CHECK_EQ_INT(seg(&t, 3, REASM_ACK, "cdef"), 2);
    CHECK_EQ_INT(t.pool.overlaps, 2);
    CHECK_EQ_STR(out(&t), "abcdef");

    /* after next_seq: a duplicate of held data, then a partial overlap */
    CHECK_EQ_INT(seg(&t, 11, REASM_ACK, "klm"), 3);
    CHECK_EQ_INT(seg(&t, 11, REASM_ACK, "klm"), 0);
    CHECK_EQ_INT(t.pool.overlaps, 3);
    CHECK_EQ_INT(t.s.held, 3);
    CHECK_EQ_INT(seg(&t, 10, REASM_ACK, "jklmn"), 2);
    CHECK_EQ_INT(t.pool.overlaps, 4);
    CHECK_EQ_INT(t.s.held, 5);
    CHECK_EQ_INT(t.pool.held, 5);
    CHECK_EQ_INT(t.pool.overlap_conflicts, 0);

    /* a different version of held bytes: the first stays, a conflict counts */
    CHECK_EQ_INT(seg(&t, 12, REASM_ACK, "LMNo"), 1);
    CHECK_EQ_INT(t.pool.overlap_conflicts, 1);
    CHECK_EQ_INT(t.s.held, 6);
    CHECK_EQ_INT(seg(&t, 7, REASM_ACK, "ghi"), 3);
    CHECK_EQ_STR(out(&t), "abcdefghijklmno");
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);

    /* an in-order segment over held bytes that differ: it is queued whole,
     * as Linux does, and the held bytes go */
    CHECK_EQ_INT(seg(&t, 19, REASM_ACK, "st"), 2);
    CHECK_EQ_INT(seg(&t, 16, REASM_ACK, "pqrSTu"), 4);
    CHECK_EQ_STR(out(&t), "abcdefghijklmnopqrSTu");
    CHECK_EQ_INT(t.pool.overlap_conflicts, 2);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.gaps, 0);
    one_free(&t);
}

/* A segment spanning several held runs fills only the holes between them. */
static void test_fill_between_runs(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 4, REASM_ACK, "d");
    seg(&t, 7, REASM_ACK, "gh");
    seg(&t, 12, REASM_ACK, "l");
    CHECK_EQ_INT(t.s.held, 4);
    CHECK_EQ_INT(seg(&t, 3, REASM_ACK, "cdefghijklm"), 7);
    CHECK_EQ_INT(t.s.held, 11);
    CHECK_EQ_INT(t.pool.held, 11);
    CHECK_EQ_INT(t.pool.overlaps, 1);
    CHECK_EQ_INT(seg(&t, 1, REASM_ACK, "ab"), 2);
    CHECK_EQ_STR(out(&t), "abcdefghijklm");
    CHECK_EQ_INT(t.r.data_calls, 2);
    CHECK_EQ_INT(t.s.held, 0);
    one_free(&t);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* order: 0 reverse, 1 in order, 2 random; always behind a hole at byte 0 */
static void tiny_run(int order, const uint8_t *data, uint32_t n)
{
    struct one t;
    uint32_t *offs = malloc(n * sizeof(*offs));
    uint64_t x = 0x9e3779b97f4a7c15ULL;

    one_init(&t, BIG, BIG);
    rec_free(&t.r);
    rec_init(&t.r, n);
    for (uint32_t i = 1; i < n; i++)
        offs[i - 1] = order == 0 ? n - i : i;
    for (uint32_t i = n - 2; order == 2 && i > 0; i--) {
        uint32_t j = (uint32_t)(rng_next(&x) % (i + 1));
        uint32_t tmp = offs[i];
        offs[i] = offs[j];
        offs[j] = tmp;
    }
    uint32_t isn = 0xfffff000u; /* and across the wrap, for good measure */
    reasm_segment(&t.pool, &t.s, isn, REASM_SYN, NULL, 0, &sink, &t.r);
    size_t fresh = 0;
    for (uint32_t i = 0; i + 1 < n; i++)
        fresh += reasm_segment(&t.pool, &t.s, isn + 1 + offs[i], REASM_ACK, data + offs[i], 1,
                               &sink, &t.r);
    CHECK_EQ_INT(fresh, n - 1);
    CHECK_EQ_INT(t.s.held, n - 1);
    CHECK_EQ_INT(t.pool.held, n - 1);
    CHECK_EQ_INT(t.r.data_calls, 0);
    reasm_segment(&t.pool, &t.s, isn + 1, REASM_ACK, data, 1, &sink, &t.r);
    CHECK_EQ_INT(t.r.data_bytes, n);
    CHECK(memcmp(t.r.out, data, n) == 0);
    /* everything held had merged into one run */
    CHECK_EQ_INT(t.r.data_calls, 2);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.s.next_seq, isn + 1 + n);
    one_free(&t);
    free(offs);
}

static void test_tiny_segments(void)
{
    const uint32_t n = 100000;
    uint8_t *data = malloc(n);
    for (uint32_t i = 0; i < n; i++)
        data[i] = (uint8_t)('a' + i % 26);

    for (int order = 0; order < 3; order++) {
        double t0 = now_s();
        tiny_run(order, data, n);
        double dt = now_s() - t0;
        /* linear or n log n takes milliseconds here; quadratic takes many seconds */
        if (dt >= 2.0)
            fprintf(stderr, "tiny segments, order %d: %.2f s\n", order, dt);
        CHECK(dt < 2.0);
    }
    free(data);
}

static void test_syn_payload(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    CHECK_EQ_INT(seg(&t, 500, REASM_SYN, "hi"), 2);
    CHECK_EQ_STR(out(&t), "hi");
    CHECK_EQ_INT(t.s.isn, 500);
    CHECK_EQ_INT(t.s.next_seq, 503);
    /* the same SYN again: its payload is old */
    CHECK_EQ_INT(seg(&t, 500, REASM_SYN, "hi"), 0);
    CHECK_EQ_INT(t.pool.overlaps, 1);
    /* another ISN: not a restart, ignored entirely */
    CHECK_EQ_INT(seg(&t, 9000, REASM_SYN | REASM_FIN, "xx"), 0);
    CHECK_EQ_INT(t.pool.invalid, 1);
    CHECK(!t.s.fin_seen);
    CHECK_EQ_INT(t.s.next_seq, 503);
    CHECK_EQ_INT(seg(&t, 503, REASM_ACK, "!"), 1);
    CHECK_EQ_STR(out(&t), "hi!");
    one_free(&t);

    /* SYN with data and FIN: the FIN comes after the data */
    one_init(&t, BIG, BIG);
    CHECK_EQ_INT(seg(&t, 7, REASM_SYN | REASM_FIN, "abc"), 3);
    CHECK_EQ_STR(out(&t), "abc");
    CHECK_EQ_INT(t.s.fin_seq, 11);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK(t.s.ended);
    one_free(&t);
}

static void test_midflow(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    CHECK_EQ_INT(seg(&t, 7000, REASM_ACK, NULL), 0);
    CHECK(!t.s.started);
    CHECK_EQ_INT(seg(&t, 7000, REASM_ACK, "abc"), 3);
    CHECK(t.s.started);
    CHECK_EQ_INT(t.s.next_seq, 7003);
    CHECK_EQ_STR(out(&t), "abc");
    /* earlier bytes than the pickup point are old */
    CHECK_EQ_INT(seg(&t, 6990, REASM_ACK, "0123456789"), 0);
    CHECK_EQ_INT(t.pool.overlaps, 1);
    CHECK_EQ_INT(seg(&t, 7006, REASM_ACK, "ghi"), 3);
    CHECK_EQ_INT(seg(&t, 7003, REASM_ACK, "def"), 3);
    CHECK_EQ_STR(out(&t), "abcdefghi");
    /* the SYN that was missed, arriving late, is recognised as the same one */
    CHECK_EQ_INT(seg(&t, 6999, REASM_SYN, NULL), 0);
    CHECK_EQ_INT(t.pool.invalid, 0);
    one_free(&t);

    /* picked up at a bare FIN: an empty stream that has ended */
    one_init(&t, BIG, BIG);
    CHECK_EQ_INT(seg(&t, 100, REASM_FIN | REASM_ACK, NULL), 0);
    CHECK(t.s.started);
    CHECK(t.s.ended);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_INT(t.s.delivered, 0);
    one_free(&t);
}

static void test_wraparound(void)
{
    struct one t;
    uint32_t isn = 0xfffffff0u;
    one_init(&t, BIG, BIG);

    seg(&t, isn, REASM_SYN, NULL);
    CHECK_EQ_INT(seg(&t, isn + 21, REASM_ACK, "uvwxyz"), 6);
    CHECK_EQ_INT(seg(&t, isn + 11, REASM_ACK, "klmnopqrst"), 10); /* crosses 2^32 */
    CHECK_EQ_INT(t.s.held, 16);
    CHECK_EQ_INT(seg(&t, isn + 1, REASM_ACK, "abcdefghij"), 10);
    CHECK_EQ_STR(out(&t), "abcdefghijklmnopqrstuvwxyz");
    CHECK_EQ_INT(t.s.next_seq, 0x0000000bu);
    CHECK_EQ_INT(t.s.delivered, 26);
    /* an old segment from before the wrap is still old */
    CHECK_EQ_INT(seg(&t, isn + 5, REASM_ACK, "efg"), 0);
    CHECK_EQ_INT(t.pool.overlaps, 1);
    seg(&t, 0x0000000bu, REASM_FIN, NULL);
    CHECK_EQ_INT(t.r.ends, 1);
    one_free(&t);

    /* an ack across the wrap turns the hole into a gap */
    isn = 0xfffffffau;
    one_init(&t, BIG, BIG);
    seg(&t, isn, REASM_SYN, NULL);
    seg(&t, isn + 1, REASM_ACK, "ab");
    seg(&t, isn + 6, REASM_ACK, "fg");
    ack(&t, isn + 8);
    CHECK_EQ_STR(out(&t), "ab___fg");
    CHECK_EQ_INT(t.pool.gap_bytes, 3);
    CHECK_EQ_INT(t.s.next_seq, isn + 8);
    CHECK_EQ_INT(t.s.held, 0);
    one_free(&t);
}

static void test_fin(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    /* FIN with the last data, before the data in the middle */
    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "abc");
    CHECK_EQ_INT(seg(&t, 7, REASM_FIN | REASM_ACK, "ghi"), 3);
    CHECK(t.s.fin_seen);
    CHECK_EQ_INT(t.s.fin_seq, 10);
    CHECK_EQ_INT(t.r.ends, 0);
    CHECK_EQ_INT(t.s.held, 3);
    CHECK_EQ_INT(seg(&t, 4, REASM_ACK, "def"), 3);
    CHECK_EQ_STR(out(&t), "abcdefghi");
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK(t.s.ended);
    CHECK_EQ_INT(t.s.held, 0);
    /* after the end, nothing more */
    CHECK_EQ_INT(seg(&t, 7, REASM_FIN | REASM_ACK, "ghi"), 0);
    CHECK_EQ_INT(seg(&t, 10, REASM_ACK, "jkl"), 0);
    reasm_flush(&t.pool, &t.s, &sink, &t.r);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_INT(t.r.after_end, 0);
    CHECK_EQ_STR(out(&t), "abcdefghi");
    one_free(&t);

    /* a bare FIN waits for the bytes before it */
    one_init(&t, BIG, BIG);
    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "abc");
    seg(&t, 10, REASM_FIN | REASM_ACK, NULL);
    seg(&t, 4, REASM_ACK, "def");
    CHECK_EQ_INT(t.r.ends, 0);
    seg(&t, 7, REASM_ACK, "ghi");
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_STR(out(&t), "abcdefghi");
    CHECK_EQ_INT(t.s.delivered, 9);
    one_free(&t);

    /* nothing after a FIN: data past it is cut, a later FIN is ignored */
    one_init(&t, BIG, BIG);
    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 5, REASM_FIN, NULL);
    CHECK_EQ_INT(seg(&t, 8, REASM_ACK, "hij"), 0);
    CHECK_EQ_INT(t.pool.invalid, 1);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(seg(&t, 3, REASM_ACK, "cdEF"), 2);
    CHECK_EQ_INT(t.pool.invalid, 2);
    CHECK_EQ_INT(t.s.held, 2);
    seg(&t, 7, REASM_FIN, NULL);
    CHECK_EQ_INT(t.pool.invalid, 3);
    CHECK_EQ_INT(t.s.fin_seq, 5);
    CHECK_EQ_INT(seg(&t, 1, REASM_ACK, "abcdEF"), 2);
    CHECK_EQ_STR(out(&t), "abcd");
    CHECK_EQ_INT(t.r.ends, 1);
    one_free(&t);

    /* a FIN before held data contradicts it: the data was first */
    one_init(&t, BIG, BIG);
    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 10, REASM_ACK, "jkl");
    seg(&t, 8, REASM_FIN, NULL);
    CHECK(!t.s.fin_seen);
    CHECK_EQ_INT(t.pool.invalid, 1);
    seg(&t, 13, REASM_FIN, NULL);
    CHECK(t.s.fin_seen);
    seg(&t, 1, REASM_ACK, "abcdefghi");
    CHECK_EQ_STR(out(&t), "abcdefghijkl");
    CHECK_EQ_INT(t.r.ends, 1);
    one_free(&t);
}

static void test_rst(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "ab");
    seg(&t, 9, REASM_ACK, "ij");
    seg(&t, 5, REASM_ACK, "ef");
    CHECK_EQ_INT(t.s.held, 4);
    /* far out of the window: not this connection's */
    CHECK_EQ_INT(seg(&t, 0x50000000u, REASM_RST, NULL), 0);
    CHECK_EQ_INT(t.pool.invalid, 1);
    CHECK(!t.s.ended);
    /* its payload, if any, is not stream data */
    CHECK_EQ_INT(seg(&t, 3, REASM_RST | REASM_ACK, "zz"), 0);
    CHECK_EQ_STR(out(&t), "ab__ef__ij");
    CHECK_EQ_INT(t.pool.gaps, 2);
    CHECK_EQ_INT(t.pool.gap_bytes, 4);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK(t.s.ended);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);
    CHECK_EQ_INT(t.s.delivered, 10);
    CHECK_EQ_INT(seg(&t, 11, REASM_ACK, "kl"), 0);
    ack(&t, 20);
    reasm_flush(&t.pool, &t.s, &sink, &t.r);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_INT(t.r.after_end, 0);
    one_free(&t);

    /* a RST before anything: the stream just ends */
    one_init(&t, BIG, BIG);
    seg(&t, 77, REASM_RST, NULL);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_INT(t.r.pos, 0);
    CHECK_EQ_INT(seg(&t, 78, REASM_ACK, "x"), 0);
    one_free(&t);
}

static void test_ack(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    ack(&t, 1234); /* not started: nothing to skip */
    CHECK(!t.s.started);
    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "ab");
    seg(&t, 6, REASM_ACK, "fgh");
    ack(&t, 4); /* c is gone */
    CHECK_EQ_STR(out(&t), "ab_");
    CHECK_EQ_INT(t.pool.gaps, 1);
    CHECK_EQ_INT(t.s.held, 3);
    ack(&t, 3);               /* behind next_seq */
    ack(&t, 4);               /* at next_seq */
    ack(&t, 4 + 0x50000000u); /* far ahead */
    CHECK_EQ_INT(t.s.delivered, 3);
    /* an ack inside a held run: the hole goes, the whole run follows */
    ack(&t, 7);
    CHECK_EQ_STR(out(&t), "ab___fgh");
    CHECK_EQ_INT(t.pool.gaps, 2);
    CHECK_EQ_INT(t.pool.gap_bytes, 3);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);
    CHECK_EQ_INT(t.s.next_seq, 9);
    /* past everything held: gaps and runs alternate up to the ack */
    seg(&t, 11, REASM_ACK, "k");
    seg(&t, 13, REASM_ACK, "m");
    ack(&t, 16);
    CHECK_EQ_STR(out(&t), "ab___fgh__k_m__");
    CHECK_EQ_INT(t.s.delivered, 15);
    CHECK_EQ_INT(t.pool.gaps, 5);
    CHECK_EQ_INT(t.r.ends, 0);
    one_free(&t);
}

static void test_ack_fin(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "abc");
    seg(&t, 7, REASM_FIN | REASM_ACK, "ghi");
    ack(&t, 11); /* fin_seq + 1 */
    CHECK_EQ_STR(out(&t), "abc___ghi");
    CHECK_EQ_INT(t.pool.gap_bytes, 3);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_INT(t.s.delivered, 9);
    one_free(&t);

    one_init(&t, BIG, BIG);
    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "abc");
    seg(&t, 7, REASM_FIN | REASM_ACK, NULL);
    ack(&t, 6); /* part of the hole */
    CHECK_EQ_INT(t.r.ends, 0);
    ack(&t, 8);
    CHECK_EQ_STR(out(&t), "abc___");
    CHECK_EQ_INT(t.pool.gap_bytes, 3);
    CHECK_EQ_INT(t.pool.gaps, 2);
    CHECK_EQ_INT(t.r.ends, 1);
    one_free(&t);
}

static void test_limit_stream(void)
{
    struct one t;
    one_init(&t, 1000, 10);

    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "ab");
    CHECK_EQ_INT(seg(&t, 4, REASM_ACK, "defg"), 4);
    CHECK_EQ_INT(seg(&t, 9, REASM_ACK, "ijkl"), 4);
    CHECK_EQ_INT(t.s.held, 8);
    /* 4 more do not fit in 10: the first hole gives way, then they fit */
    CHECK_EQ_INT(seg(&t, 14, REASM_ACK, "nopq"), 4);
    CHECK_EQ_STR(out(&t), "ab_defg");
    CHECK_EQ_INT(t.s.held, 8);
    CHECK_EQ_INT(t.pool.held, 8);
    CHECK_EQ_INT(t.pool.gaps, 1);
    CHECK_EQ_INT(t.pool.gap_bytes, 1);

    /* 20 bytes never fit: everything held goes, then a gap up to them */
    const char *big = "EFGHIJKLMNOPQRSTUVWX";
    CHECK_EQ_INT(seg(&t, 31, REASM_ACK, big), 20);
    CHECK_EQ_STR(out(&t), "ab_defg_ijkl_nopq_____________EFGHIJKLMNOPQRSTUVWX");
    CHECK(t.r.last_p == (const uint8_t *)big); /* delivered in order, from the caller */
    CHECK_EQ_INT(t.pool.gaps, 4);
    CHECK_EQ_INT(t.pool.gap_bytes, 16);
    CHECK_EQ_INT(t.s.delivered, 50);
    CHECK_EQ_INT(t.r.data_bytes + t.r.gap_bytes, 50);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);

    /* a segment over held data needs room only for its new bytes */
    seg(&t, 53, REASM_ACK, "bcdefghij");
    CHECK_EQ_INT(t.s.held, 9);
    CHECK_EQ_INT(seg(&t, 53, REASM_ACK, "bcdefghijk"), 1);
    CHECK_EQ_INT(t.s.held, 10);
    CHECK_EQ_INT(t.pool.gaps, 4);
    one_free(&t);

    /* no room at all: every out-of-order segment skips ahead at once */
    one_init(&t, 1000, 0);
    seg(&t, 0, REASM_SYN, NULL);
    CHECK_EQ_INT(seg(&t, 3, REASM_ACK, "cd"), 2);
    CHECK_EQ_STR(out(&t), "__cd");
    CHECK_EQ_INT(seg(&t, 1, REASM_ACK, "ab"), 0);
    CHECK_EQ_INT(t.s.held, 0);
    one_free(&t);
}

static void test_limit_pool(void)
{
    struct reasm_pool pool;
    struct reasm_stream a, b;
    struct rec ra, rb;

    reasm_pool_init(&pool, 8, 100);
    reasm_stream_init(&a);
    reasm_stream_init(&b);
    rec_init(&ra, 64);
    rec_init(&rb, 64);

    reasm_segment(&pool, &a, 0, REASM_SYN, NULL, 0, &sink, &ra);
    reasm_segment(&pool, &b, 0, REASM_SYN, NULL, 0, &sink, &rb);
    reasm_segment(&pool, &a, 3, REASM_ACK, (const uint8_t *)"cdefg", 5, &sink, &ra);
    reasm_segment(&pool, &b, 3, REASM_ACK, (const uint8_t *)"cde", 3, &sink, &rb);
    CHECK_EQ_INT(pool.held, 8);
    /* b is full through the pool: it skips its own hole, not a's */
    CHECK_EQ_INT(reasm_segment(&pool, &b, 11, REASM_ACK, (const uint8_t *)"kl", 2, &sink, &rb), 2);
    CHECK_EQ_STR((const char *)rb.out, "__cde");
    CHECK_EQ_INT(b.held, 2);
    CHECK_EQ_INT(a.held, 5);
    CHECK_EQ_INT(pool.held, 7);
    CHECK_EQ_INT(pool.gaps, 1);
    CHECK_EQ_INT(ra.pos, 0);
    /* a cannot grow past the pool either */
    CHECK_EQ_INT(reasm_segment(&pool, &a, 20, REASM_ACK, (const uint8_t *)"tu", 2, &sink, &ra), 2);
    CHECK_EQ_STR((const char *)ra.out, "__cdefg");
    CHECK_EQ_INT(a.held, 2);
    CHECK_EQ_INT(pool.held, 4);
    CHECK(pool.held <= pool.limit_total);

    reasm_stream_free(&pool, &a);
    CHECK_EQ_INT(pool.held, 2);
    CHECK_EQ_INT(a.held, 0);
    reasm_stream_free(&pool, &b);
    CHECK_EQ_INT(pool.held, 0);
    rec_free(&ra);
    rec_free(&rb);
}

static void test_flush(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "ab");
    seg(&t, 7, REASM_ACK, "gh");
    seg(&t, 4, REASM_ACK, "de");
    reasm_flush(&t.pool, &t.s, &sink, &t.r);
    CHECK_EQ_STR(out(&t), "ab_de_gh");
    CHECK_EQ_INT(t.pool.gaps, 2);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);
    reasm_flush(&t.pool, &t.s, &sink, &t.r);
    CHECK_EQ_INT(t.r.ends, 1);
    one_free(&t);

    /* with a FIN known, the bytes missing before it are a gap too */
    one_init(&t, BIG, BIG);
    seg(&t, 0, REASM_SYN, NULL);
    seg(&t, 1, REASM_ACK, "ab");
    seg(&t, 5, REASM_ACK, "ef");
    seg(&t, 10, REASM_FIN, NULL);
    reasm_flush(&t.pool, &t.s, &sink, &t.r);
    CHECK_EQ_STR(out(&t), "ab__ef___");
    CHECK_EQ_INT(t.s.delivered, 9);
    CHECK_EQ_INT(t.r.ends, 1);
    one_free(&t);

    /* never started */
    one_init(&t, BIG, BIG);
    reasm_flush(&t.pool, &t.s, &sink, &t.r);
    CHECK_EQ_INT(t.r.ends, 1);
    CHECK_EQ_INT(t.r.pos, 0);
    CHECK(t.s.ended);
    one_free(&t);
}

static void test_far_future(void)
{
    struct one t;
    one_init(&t, BIG, BIG);

    seg(&t, 0, REASM_SYN, NULL);
    CHECK_EQ_INT(seg(&t, 1 + (1u << 30) + 1, REASM_ACK, "x"), 0);
    CHECK_EQ_INT(seg(&t, 1 + 0x7fffffffu, REASM_ACK, "x"), 0);
    CHECK_EQ_INT(seg(&t, 1 + 0x50000000u, REASM_FIN, NULL), 0);
    CHECK_EQ_INT(t.pool.invalid, 3);
    CHECK(!t.s.fin_seen);
    CHECK_EQ_INT(t.s.held, 0);
    CHECK_EQ_INT(t.pool.held, 0);
    /* exactly 1 GiB ahead is still a (distant) hole */
    CHECK_EQ_INT(seg(&t, 1 + (1u << 30), REASM_ACK, "y"), 1);
    CHECK_EQ_INT(t.s.held, 1);
    CHECK_EQ_INT(t.pool.held, 1);
    CHECK_EQ_INT(t.r.pos, 0);
    one_free(&t);
}

/* --- property test ------------------------------------------------------------ */

struct pstream {
    struct reasm_stream s;
    struct rec r;
    uint8_t *data;
    uint32_t len, isn;
    uint8_t *seen;  /* offsets fed so far */
    uint64_t scan;  /* seen offsets below this are no longer counted */
    uint64_t ahead; /* seen offsets at or after scan: what must be held */
    int fin_fed;
};

struct ppkt {
    int sid;
    uint32_t off, len; /* payload: data[off .. off + len) */
    uint8_t flags;     /* REASM_SYN: no payload; the SYN itself */
};

struct prop {
    uint64_t rng;
    struct reasm_pool pool;
    struct pstream st[3];
    int nst;
    struct ppkt *pk;
    size_t npk, cap;
    unsigned bad_fresh, bad_held, bad_limit;
};

static uint32_t rnd(struct prop *p, uint32_t n)
{
    return n ? (uint32_t)(rng_next(&p->rng) % n) : 0;
}

static void add_pkt(struct prop *p, int sid, uint32_t off, uint32_t len, uint8_t flags)
{
    if (p->npk == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->pk = realloc(p->pk, p->cap * sizeof(*p->pk));
    }
    p->pk[p->npk++] = (struct ppkt){sid, off, len, flags};
}

/* Cuts stream sid into segments, with duplicates, overlapping copies, a FIN,
 * and a SYN unless the stream is to be picked up mid-flow. Returns the index
 * of the packet that must come first for the stream. */
static size_t gen_stream(struct prop *p, int sid, int midflow)
{
    static const uint32_t lens[] = {40, 2000, 20000};
    static const uint32_t maxsegs[] = {1, 7, 100, 1460};
    struct pstream *ps = &p->st[sid];
    uint32_t L = 1 + rnd(p, lens[rnd(p, 3)]);
    uint32_t maxseg = maxsegs[rnd(p, 4)];

    ps->len = L;
    ps->isn = rnd(p, 3) == 0 ? 0xffffffffu - rnd(p, L + 2) : (uint32_t)rng_next(&p->rng);
    ps->data = malloc(L);
    ps->seen = calloc(L, 1);
    for (uint32_t i = 0; i < L; i++)
        ps->data[i] = (uint8_t)rng_next(&p->rng);
    reasm_stream_init(&ps->s);
    rec_init(&ps->r, L);

    size_t first = p->npk;
    if (!midflow)
        add_pkt(p, sid, 0, 0, REASM_SYN);
    int fin_on_last = rnd(p, 2);
    for (uint32_t off = 0; off < L;) {
        uint32_t n = 1 + rnd(p, maxseg);
        if (n > L - off)
            n = L - off;
        uint8_t flags = REASM_ACK;
        if (off + n == L && fin_on_last)
            flags |= REASM_FIN;
        add_pkt(p, sid, off, n, flags);
        if (rnd(p, 4) == 0)
            add_pkt(p, sid, off, n, flags);
        if (rnd(p, 5) == 0) {
            uint32_t a = rnd(p, L);
            uint32_t span = L - a < 2 * maxseg ? L - a : 2 * maxseg;
            add_pkt(p, sid, a, 1 + rnd(p, span), REASM_ACK);
        }
        off += n;
    }
    if (!fin_on_last)
        add_pkt(p, sid, L, 0, REASM_FIN | REASM_ACK);
    if (!midflow && rnd(p, 2))
        add_pkt(p, sid, 0, 0, REASM_SYN);
    return first; /* the SYN, or the segment at offset 0 */
}

static int same_pkt(const struct ppkt *a, const struct ppkt *b)
{
    return a->sid == b->sid && a->off == b->off && a->len == b->len && a->flags == b->flags;
}

/* Moves each stream's starting packet before the stream's other packets. */
static void shuffle(struct prop *p, const size_t *first)
{
    struct ppkt start[3];
    for (int i = 0; i < p->nst; i++)
        start[i] = p->pk[first[i]];
    for (size_t i = p->npk - 1; i > 0; i--) {
        size_t j = rng_next(&p->rng) % (i + 1);
        struct ppkt tmp = p->pk[i];
        p->pk[i] = p->pk[j];
        p->pk[j] = tmp;
    }
    for (int sid = 0; sid < p->nst; sid++) {
        size_t earliest = SIZE_MAX, at = SIZE_MAX;
        for (size_t i = 0; i < p->npk; i++) {
            if (p->pk[i].sid != sid)
                continue;
            if (earliest == SIZE_MAX)
                earliest = i;
            if (at == SIZE_MAX && same_pkt(&p->pk[i], &start[sid]))
                at = i;
        }
        struct ppkt tmp = p->pk[earliest];
        p->pk[earliest] = p->pk[at];
        p->pk[at] = tmp;
    }
}

/* After every call: what is held is exactly the bytes seen past next_seq,
 * and no limit is exceeded. */
static void check_held(struct prop *p)
{
    uint64_t sum = 0;
    for (int i = 0; i < p->nst; i++) {
        struct pstream *ps = &p->st[i];
        for (; ps->scan < ps->s.delivered && ps->scan < ps->len; ps->scan++)
            if (ps->seen[ps->scan])
                ps->ahead--;
        if (ps->s.held != ps->ahead)
            p->bad_held++;
        if (ps->s.held > p->pool.limit_stream)
            p->bad_limit++;
        sum += ps->s.held;
    }
    if (sum != p->pool.held)
        p->bad_held++;
    if (p->pool.held > p->pool.limit_total)
        p->bad_limit++;
}

static void feed(struct prop *p, const struct ppkt *k)
{
    struct pstream *ps = &p->st[k->sid];
    uint32_t seq = k->flags & REASM_SYN ? ps->isn : ps->isn + 1 + k->off;
    size_t want = 0;

    for (uint32_t i = k->off; i < k->off + k->len; i++) {
        if (!ps->seen[i] && i >= ps->s.delivered)
            want++;
        if (!ps->seen[i] && i >= ps->scan)
            ps->ahead++;
        ps->seen[i] = 1;
    }
    size_t got =
        reasm_segment(&p->pool, &ps->s, seq, k->flags, ps->data + k->off, k->len, &sink, &ps->r);
    if (got != want)
        p->bad_fresh++;
    if (k->flags & REASM_FIN)
        ps->fin_fed = 1;
    check_held(p);
}

static void random_ack(struct prop *p)
{
    struct pstream *ps = &p->st[rnd(p, (uint32_t)p->nst)];
    /* acknowledging the FIN only once it has been sent */
    uint32_t a = ps->isn + 1 + rnd(p, ps->len + 1 + (uint32_t)ps->fin_fed);
    reasm_ack(&p->pool, &ps->s, a, &sink, &ps->r);
    check_held(p);
}

/* Every offset came out once, as data (the right byte) or as a gap. */
static void check_tiling(struct pstream *ps, int want_no_gaps)
{
    unsigned bad_data = 0, bad_kind = 0;

    CHECK_EQ_INT(ps->r.pos, ps->len);
    CHECK_EQ_INT(ps->r.data_bytes + ps->r.gap_bytes, ps->len);
    CHECK_EQ_INT(ps->s.delivered, ps->len);
    CHECK_EQ_INT(ps->r.overflow, 0);
    CHECK_EQ_INT(ps->r.ends, 1);
    CHECK_EQ_INT(ps->r.after_end, 0);
    CHECK_EQ_INT(ps->s.held, 0);
    for (uint32_t i = 0; i < ps->len; i++) {
        if (ps->r.kind[i] == KIND_NONE)
            bad_kind++;
        else if (ps->r.kind[i] == KIND_DATA && ps->r.out[i] != ps->data[i])
            bad_data++;
    }
    CHECK_EQ_INT(bad_kind, 0);
    CHECK_EQ_INT(bad_data, 0);
    if (want_no_gaps) {
        CHECK_EQ_INT(ps->r.gap_bytes, 0);
        CHECK(memcmp(ps->r.out, ps->data, ps->len) == 0);
    }
}

/* mode 0: large limits, no acks: exact bytes, no gaps, the FIN ends it.
 * mode 1: small limits. mode 2: small limits and acks from the peer. */
static void prop_run(uint64_t seed, int mode)
{
    struct prop p;
    size_t first[3];

    memset(&p, 0, sizeof(p));
    p.rng = seed * 0x9e3779b97f4a7c15ULL + 1;
    if (mode == 0)
        reasm_pool_init(&p.pool, BIG, BIG);
    else
        reasm_pool_init(&p.pool, rnd(&p, 6000), rnd(&p, 3000));
    p.nst = 1 + (int)rnd(&p, 3);
    for (int i = 0; i < p.nst; i++)
        first[i] = gen_stream(&p, i, rnd(&p, 4) == 0);
    shuffle(&p, first);

    for (size_t i = 0; i < p.npk; i++) {
        feed(&p, &p.pk[i]);
        if (mode == 2 && rnd(&p, 8) == 0)
            random_ack(&p);
    }
    if (mode == 0)
        for (int i = 0; i < p.nst; i++)
            CHECK_EQ_INT(p.st[i].r.ends, 1); /* before any flush */
    for (int i = 0; i < p.nst; i++) {
        struct pstream *ps = &p.st[i];
        reasm_flush(&p.pool, &ps->s, &sink, &ps->r);
        check_held(&p);
        check_tiling(ps, mode == 0);
        if (mode == 0)
            CHECK_EQ_INT(p.pool.overlap_conflicts, 0);
    }
    CHECK_EQ_INT(p.bad_fresh, 0);
    CHECK_EQ_INT(p.bad_held, 0);
    CHECK_EQ_INT(p.bad_limit, 0);
    CHECK_EQ_INT(p.pool.invalid, 0);
    for (int i = 0; i < p.nst; i++) {
        reasm_stream_free(&p.pool, &p.st[i].s);
        rec_free(&p.st[i].r);
        free(p.st[i].data);
        free(p.st[i].seen);
    }
    CHECK_EQ_INT(p.pool.held, 0);
    free(p.pk);
}

/* --- the connection: the receiving stack's checks ------------------------------ */

/*
 * A client (side 0, ISN 1000) fetches from a server (side 1, ISN 5000); both
 * SYNs ask for timestamps and window scale 7. The server is the attacker: it
 * sends a harmless copy the receiver drops, then the payload at the same
 * sequence number. Each test checks the exact bytes delivered per side and
 * the anomalies raised.
 */
struct cx {
    struct reasm_pool pool;
    struct reasm_conn c;
    struct rec r[2];
    unsigned anomalies[2];
    const char *last_anomaly;
};

static void cx_data(void *ctx, int dir, const uint8_t *p, size_t n)
{
    rec_data(&((struct cx *)ctx)->r[dir], p, n);
}

static void cx_gap(void *ctx, int dir, uint64_t n)
{
    rec_gap(&((struct cx *)ctx)->r[dir], n);
}

static void cx_end(void *ctx, int dir)
{
    rec_end(&((struct cx *)ctx)->r[dir]);
}

static void cx_anomaly(void *ctx, int dir, const char *reason)
{
    struct cx *x = ctx;
    x->anomalies[dir]++;
    x->last_anomaly = reason;
}

static const struct reasm_conn_sink cx_sink = {cx_data, cx_gap, cx_end, cx_anomaly};

static void cx_init(struct cx *x, int passive)
{
    memset(x, 0, sizeof(*x));
    reasm_pool_init(&x->pool, BIG, BIG);
    reasm_conn_init(&x->c, passive);
    rec_init(&x->r[0], 4096);
    rec_init(&x->r[1], 4096);
}

static void cx_free(struct cx *x)
{
    reasm_conn_free(&x->pool, &x->c);
    CHECK_EQ_INT(x->pool.held, 0);
    rec_free(&x->r[0]);
    rec_free(&x->r[1]);
}

/* A segment with the usual options: window 512 (<< 7), timestamps. */
static struct reasm_tcp cx_seg(uint32_t seq, uint32_t ack, uint8_t flags, const char *data,
                               uint32_t tsval, uint32_t tsecr)
{
    struct reasm_tcp t;
    memset(&t, 0, sizeof(t));
    t.seq = seq;
    t.ack = ack;
    t.flags = flags;
    t.csum = REASM_CSUM_GOOD;
    t.window = 512;
    t.has_ts = 1;
    t.tsval = tsval;
    t.tsecr = tsecr;
    t.payload = (const uint8_t *)data;
    t.len = data ? strlen(data) : 0;
    return t;
}

static void cx_send(struct cx *x, int dir, const struct reasm_tcp *t)
{
    reasm_conn_segment(&x->pool, &x->c, dir, t, &cx_sink, x);
}

/* Sends a segment with the usual options. */
static void cx_tx(struct cx *x, int dir, uint32_t seq, uint32_t ack, uint8_t flags,
                  const char *data, uint32_t tsval, uint32_t tsecr)
{
    struct reasm_tcp t = cx_seg(seq, ack, flags, data, tsval, tsecr);
    cx_send(x, dir, &t);
}

/* SYN, SYN-ACK, ACK, and "GET" from the client; the server's next byte is
 * 5001, the client's 1004, the server's timestamps stand at 501. */
static void cx_handshake(struct cx *x)
{
    struct reasm_tcp t = cx_seg(1000, 0, REASM_SYN, NULL, 100, 0);
    t.has_ws = 1;
    t.ws = 7;
    cx_send(x, 0, &t);
    t = cx_seg(5000, 1001, REASM_SYN | REASM_ACK, NULL, 500, 100);
    t.has_ws = 1;
    t.ws = 7;
    cx_send(x, 1, &t);
    cx_tx(x, 0, 1001, 5001, REASM_ACK, NULL, 101, 500);
    cx_tx(x, 0, 1001, 5001, REASM_ACK | REASM_PSH, "GET", 102, 500);
    cx_tx(x, 1, 5001, 1004, REASM_ACK, NULL, 501, 102);
}

static const char *cx_out(const struct cx *x, int dir)
{
    return (const char *)x->r[dir].out;
}

static void test_conn_checksum(void)
{
    struct cx x;

    /* inline: the kernel said the receiver verifies it */
    cx_init(&x, 0);
    cx_handshake(&x);
    struct reasm_tcp t = cx_seg(5001, 1004, REASM_ACK, "harmless", 502, 102);
    t.csum = REASM_CSUM_BAD;
    cx_send(&x, 1, &t);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_STR(cx_out(&x, 0), "GET");
    CHECK_EQ_INT(x.anomalies[1], 0);
    CHECK_EQ_INT(x.pool.dropped, 1);
    cx_free(&x);

    /* a capture: the server side showed right checksums, so a wrong one is
     * a segment the receiver dropped */
    cx_init(&x, 1);
    cx_handshake(&x);
    cx_send(&x, 1, &t);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_free(&x);

    /* a capture taken on the sending host: every checksum of the client is
     * unfinished (offload); its bytes count */
    cx_init(&x, 1);
    t = cx_seg(1000, 0, REASM_SYN, NULL, 100, 0);
    t.csum = REASM_CSUM_BAD;
    cx_send(&x, 0, &t);
    cx_tx(&x, 1, 5000, 1001, REASM_SYN | REASM_ACK, NULL, 500, 100);
    t = cx_seg(1001, 5001, REASM_ACK, "GET /", 101, 500);
    t.csum = REASM_CSUM_BAD;
    cx_send(&x, 0, &t);
    CHECK_EQ_STR(cx_out(&x, 0), "GET /");
    CHECK_EQ_INT(x.pool.dropped, 0);
    cx_free(&x);

    /* unchecked (NFQUEUE: a local sender's partial checksum): taken */
    cx_init(&x, 0);
    cx_handshake(&x);
    t = cx_seg(5001, 1004, REASM_ACK, "data", 502, 102);
    t.csum = REASM_CSUM_UNCHECKED;
    cx_send(&x, 1, &t);
    CHECK_EQ_STR(cx_out(&x, 1), "data");
    cx_free(&x);
}

static void test_conn_no_ack(void)
{
    struct cx x;
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 0, REASM_PSH, "harmless", 502, 102);
    /* a FIN without ACK is dropped too */
    cx_tx(&x, 1, 5001, 0, REASM_FIN, NULL, 502, 102);
    CHECK_EQ_INT(x.r[1].ends, 0);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[1], 0);
    CHECK_EQ_INT(x.pool.dropped, 2);
    cx_free(&x);
}

static void test_conn_md5(void)
{
    struct cx x;
    cx_init(&x, 0);
    cx_handshake(&x);
    struct reasm_tcp t = cx_seg(5001, 1004, REASM_ACK, "harmless", 502, 102);
    t.has_md5 = 1;
    cx_send(&x, 1, &t);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_free(&x);

    /* both ends have keys (both SYNs signed): unsigned segments are dropped,
     * signed ones cannot be verified here and are doubtful */
    cx_init(&x, 0);
    t = cx_seg(1000, 0, REASM_SYN, NULL, 100, 0);
    t.has_md5 = 1;
    cx_send(&x, 0, &t);
    t = cx_seg(5000, 1001, REASM_SYN | REASM_ACK, NULL, 500, 100);
    t.has_md5 = 1;
    cx_send(&x, 1, &t);
    cx_tx(&x, 1, 5001, 1001, REASM_ACK, "unsigned", 501, 100);
    CHECK_EQ_STR(cx_out(&x, 1), "");
    t = cx_seg(5001, 1001, REASM_ACK, "signed", 501, 100);
    t.has_md5 = 1;
    cx_send(&x, 1, &t);
    CHECK_EQ_STR(cx_out(&x, 1), "signed");
    t = cx_seg(5001, 1001, REASM_ACK, "SIGNED", 502, 100);
    t.has_md5 = 1;
    cx_send(&x, 1, &t);
    CHECK_EQ_STR(cx_out(&x, 1), "signed");
    CHECK_EQ_INT(x.anomalies[1], 1);
    CHECK_EQ_STR(x.last_anomaly, "overlapping segment with different data");
    cx_free(&x);
}

static void test_conn_bad_ack(void)
{
    struct cx x;

    /* far past anything the client could have sent: dropped */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1004 + 0x20000000u, REASM_ACK, "harmless", 502, 102);
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_free(&x);

    /* just past what passed sluice: dropped, as the receiver drops it
     * unless its reply is still on the way: reported */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1005, REASM_ACK, "harmless", 502, 102);
    CHECK_EQ_INT(x.anomalies[1], 1);
    CHECK_EQ_STR(x.last_anomaly, "acknowledgement of data not sent");
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    cx_free(&x);

    /* a capture may miss the client's packets: kept, and the other copy is
     * an anomaly */
    cx_init(&x, 1);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1005, REASM_ACK, "harmless", 502, 102);
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "harmless");
    CHECK_EQ_INT(x.anomalies[1], 1);
    CHECK_EQ_STR(x.last_anomaly, "overlapping segment with different data");
    /* the same bytes again are no anomaly */
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "harmless", 504, 102);
    CHECK_EQ_INT(x.anomalies[1], 1);
    cx_free(&x);
}

static void test_conn_paws(void)
{
    struct cx x;
    cx_init(&x, 0);
    cx_handshake(&x);
    /* the client echoed 500: its ts_recent is at least that */
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "harmless", 400, 102);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "EICARxxx", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_free(&x);

    /* older than one the server sent, not (yet) echoed: the receiver may
     * have stored it, so the segment is doubtful; a copy that differs is
     * an anomaly */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "abc", 600, 102);
    cx_tx(&x, 1, 5004, 1004, REASM_ACK, "harmless", 550, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abcharmless");
    cx_tx(&x, 1, 5004, 1004, REASM_ACK, "EICARxxx", 601, 102);
    CHECK_EQ_INT(x.anomalies[1], 1);
    cx_free(&x);

    /* one tick behind is within the PAWS window */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "ok", 499, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "ok");
    cx_free(&x);
}

static void test_conn_overlaps(void)
{
    struct cx x;

    /* identical retransmissions, in order and held: nothing to say */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "abcd", 502, 102);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "abcd", 503, 102);
    cx_tx(&x, 1, 5009, 1004, REASM_ACK, "ijkl", 504, 102);
    cx_tx(&x, 1, 5007, 1004, REASM_ACK, "ghijklmn", 505, 102);
    cx_tx(&x, 1, 5005, 1004, REASM_ACK, "efgh", 506, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abcdefghijklmn");
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_free(&x);

    /* a covering segment in order over held bytes that differ: Linux queues
     * it whole (its bytes win) */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5003, 1004, REASM_ACK, "cd", 502, 102);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "abCDe", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abCDe");
    CHECK_EQ_INT(x.anomalies[1], 1);
    CHECK_EQ_STR(x.last_anomaly, "overlapping segment with different data");
    cx_free(&x);

    /* held, out of order: a later segment at the same start covering the
     * held one replaces it; one starting inside it leaves it; one starting
     * before it wins */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5003, 1004, REASM_ACK, "cd", 502, 102);
    cx_tx(&x, 1, 5003, 1004, REASM_ACK, "CDE", 503, 102);
    cx_tx(&x, 1, 5004, 1004, REASM_ACK, "xyf", 504, 102); /* inside: D E stay, f is new */
    cx_tx(&x, 1, 5010, 1004, REASM_ACK, "jk", 505, 102);
    cx_tx(&x, 1, 5009, 1004, REASM_ACK, "IJK", 506, 102); /* before: wins */
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "ab", 507, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abCDEf");
    cx_tx(&x, 1, 5007, 1004, REASM_ACK, "gh", 508, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abCDEfghIJK");
    CHECK(x.anomalies[1] >= 1);
    cx_free(&x);

    /* partial overlap of delivered data with different bytes: the delivered
     * bytes stay (the receiver has them) */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "abcd", 502, 102);
    cx_tx(&x, 1, 5003, 1004, REASM_ACK, "CDef", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abcdef");
    cx_free(&x);
}

static void test_conn_rst(void)
{
    struct cx x;

    /* an old sequence number, then one in the window but not exact: the
     * receiver goes on (a challenge ACK at most) */
    cx_init(&x, 0);
    cx_handshake(&x);
    cx_tx(&x, 1, 5001, 1004, REASM_ACK, "abc", 502, 102);
    cx_tx(&x, 1, 4000, 1004, REASM_RST | REASM_ACK, NULL, 0, 0);
    cx_tx(&x, 1, 5010, 1004, REASM_RST | REASM_ACK, NULL, 0, 0);
    CHECK_EQ_INT(x.r[1].ends, 0);
    CHECK_EQ_INT(x.r[0].ends, 0);
    CHECK_EQ_INT(x.pool.rst_ignored, 2);
    cx_tx(&x, 1, 5004, 1004, REASM_ACK, "EICAR", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abcEICAR");
    CHECK_EQ_INT(x.anomalies[1], 0);
    /* exactly at the next byte: both ends are over */
    cx_tx(&x, 1, 5009, 1004, REASM_RST, NULL, 0, 0);
    CHECK_EQ_INT(x.r[1].ends, 1);
    CHECK_EQ_INT(x.r[0].ends, 1);
    /* the side that reset goes on sending: the receiver may not have
     * taken the RST */
    cx_tx(&x, 1, 5009, 1004, REASM_ACK, "more", 504, 102);
    CHECK_EQ_INT(x.anomalies[1], 1);
    CHECK_EQ_STR(x.last_anomaly, "data after reset");
    CHECK_EQ_STR(cx_out(&x, 1), "abcEICAR");
    cx_free(&x);

    /* a RST with a wrong checksum resets nothing */
    cx_init(&x, 0);
    cx_handshake(&x);
    struct reasm_tcp t = cx_seg(5001, 1004, REASM_RST, NULL, 0, 0);
    t.csum = REASM_CSUM_BAD;
    cx_send(&x, 1, &t);
    CHECK_EQ_INT(x.r[1].ends, 0);
    cx_free(&x);
}

static void test_conn_urgent(void)
{
    struct cx x;
    cx_init(&x, 0);
    cx_handshake(&x);
    /* urg_ptr 3: the byte at seq + 2 is urgent and leaves the stream */
    struct reasm_tcp t = cx_seg(5001, 1004, REASM_ACK | REASM_URG, "EIXCAR", 502, 102);
    t.urg_ptr = 3;
    cx_send(&x, 1, &t);
    CHECK_EQ_STR(cx_out(&x, 1), "EICAR");
    CHECK_EQ_INT(x.anomalies[1], 1);
    CHECK_EQ_STR(x.last_anomaly, "urgent data");
    /* a pointer to bytes already received changes nothing */
    t = cx_seg(5001, 1004, REASM_ACK | REASM_URG, NULL, 503, 102);
    t.urg_ptr = 2;
    cx_send(&x, 1, &t);
    cx_tx(&x, 1, 5007, 1004, REASM_ACK, "zz", 504, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARzz");
    /* urg_ptr 0 with URG: the byte at seq itself (no decrement) */
    t = cx_seg(5009, 1004, REASM_ACK | REASM_URG, "!y", 505, 102);
    t.urg_ptr = 0;
    cx_send(&x, 1, &t);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARzzy");
    cx_free(&x);

    /* the urgent byte in a later segment */
    cx_init(&x, 0);
    cx_handshake(&x);
    t = cx_seg(5001, 1004, REASM_ACK | REASM_URG, "ab", 502, 102);
    t.urg_ptr = 4;
    cx_send(&x, 1, &t);
    cx_tx(&x, 1, 5003, 1004, REASM_ACK, "cXd", 503, 102);
    CHECK_EQ_STR(cx_out(&x, 1), "abcd");
    cx_free(&x);
}

static void test_conn_syn_data(void)
{
    struct cx x;

    /* no Fast Open: the SYN-ACK acknowledges the SYN only; the data is not
     * the stream's, the retransmission is */
    cx_init(&x, 0);
    cx_tx(&x, 0, 1000, 0, REASM_SYN, "harmless", 100, 0);
    cx_tx(&x, 1, 5000, 1001, REASM_SYN | REASM_ACK, NULL, 500, 100);
    cx_tx(&x, 0, 1001, 5001, REASM_ACK, "EICARxxx", 101, 500);
    CHECK_EQ_STR(cx_out(&x, 0), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[0], 0);
    cx_free(&x);

    /* Fast Open: the SYN-ACK acknowledges the data, which is the stream's */
    cx_init(&x, 0);
    cx_tx(&x, 0, 1000, 0, REASM_SYN, "GET /", 100, 0);
    cx_tx(&x, 1, 5000, 1006, REASM_SYN | REASM_ACK, NULL, 500, 100);
    cx_tx(&x, 0, 1006, 5001, REASM_ACK, " x", 101, 500);
    CHECK_EQ_STR(cx_out(&x, 0), "GET / x");
    cx_free(&x);

    /* data in the SYN-ACK: a Linux client does not queue it */
    cx_init(&x, 0);
    cx_tx(&x, 0, 1000, 0, REASM_SYN, NULL, 100, 0);
    cx_tx(&x, 1, 5000, 1001, REASM_SYN | REASM_ACK, "harmless", 500, 100);
    cx_tx(&x, 0, 1001, 5001, REASM_ACK, NULL, 101, 500);
    cx_tx(&x, 1, 5001, 1001, REASM_ACK, "EICARxxx", 501, 101);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_free(&x);
}

static void test_conn_before_handshake(void)
{
    struct cx x;

    /* the server's data before its SYN-ACK: the client in SYN-SENT drops it */
    cx_init(&x, 0);
    cx_tx(&x, 0, 1000, 0, REASM_SYN, NULL, 100, 0);
    cx_tx(&x, 1, 5001, 1001, REASM_ACK, "harmless", 499, 100);
    cx_tx(&x, 1, 5000, 1001, REASM_SYN | REASM_ACK, NULL, 500, 100);
    cx_tx(&x, 0, 1001, 5001, REASM_ACK, NULL, 101, 500);
    cx_tx(&x, 1, 5001, 1001, REASM_ACK, "EICARxxx", 501, 101);
    CHECK_EQ_STR(cx_out(&x, 1), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[1], 0);
    cx_free(&x);

    /* the client's data before the SYN-ACK: the server drops it */
    cx_init(&x, 0);
    cx_tx(&x, 0, 1000, 0, REASM_SYN, NULL, 100, 0);
    cx_tx(&x, 0, 1001, 777, REASM_ACK, "harmless", 101, 0);
    cx_tx(&x, 1, 5000, 1001, REASM_SYN | REASM_ACK, NULL, 500, 100);
    cx_tx(&x, 0, 1001, 5001, REASM_ACK, "EICARxxx", 102, 500);
    CHECK_EQ_STR(cx_out(&x, 0), "EICARxxx");
    CHECK_EQ_INT(x.anomalies[0], 0);
    cx_free(&x);

    /* in a capture (which may hold one direction only) it is doubtful:
     * kept, and the copy that differs is an anomaly */
    cx_init(&x, 1);
    cx_tx(&x, 0, 1000, 0, REASM_SYN, NULL, 100, 0);
    cx_tx(&x, 0, 1001, 777, REASM_ACK, "harmless", 101, 0);
    cx_tx(&x, 1, 5000, 1001, REASM_SYN | REASM_ACK, NULL, 500, 100);
    cx_tx(&x, 0, 1001, 5001, REASM_ACK, "EICARxxx", 102, 500);
    CHECK_EQ_INT(x.anomalies[0], 1);
    cx_free(&x);
}

static void test_conn_window(void)
{
    struct cx x;
    cx_init(&x, 0);
    cx_handshake(&x);
    /* the client advertised up to 5001 + (512 << 7); far past the largest
     * window it could advertise (65535 << 7): dropped */
    cx_tx(&x, 1, 5001 + 0x1000000u, 1004, REASM_ACK, "far", 502, 102);
    CHECK_EQ_INT(x.pool.dropped, 1);
    /* past the advertised edge but within what a window update could
     * open: kept and doubtful */
    cx_tx(&x, 1, 5001 + (512u << 7), 1004, REASM_ACK, "edge", 503, 102);
    cx_tx(&x, 1, 5001 + (512u << 7), 1004, REASM_ACK, "EDGE", 504, 102);
    CHECK_EQ_INT(x.anomalies[1], 1);
    cx_free(&x);
}

static void test_tcp_header(void)
{
    /* MSS, NOP, window scale 16 (read as 14), SACK-permitted, timestamps,
     * MD5, then EOL */
    uint8_t h[60] = {0};
    h[12] = 15 << 4;
    h[13] = REASM_ACK | REASM_URG;
    h[14] = 0x01;
    h[15] = 0x02;
    h[19] = 7;
    uint8_t opt[] = {2, 4, 5, 0xb4, 1, 3, 3, 16, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8, 19, 18};
    memcpy(h + 20, opt, sizeof(opt));
    struct reasm_tcp t;
    reasm_tcp_header(h, 60, &t);
    CHECK_EQ_INT(t.window, 0x102);
    CHECK_EQ_INT(t.urg_ptr, 7);
    CHECK(t.has_ws);
    CHECK_EQ_INT(t.ws, 14);
    CHECK(t.has_ts);
    CHECK_EQ_INT(t.tsval, 9);
    CHECK_EQ_INT(t.tsecr, 8);
    CHECK(t.has_md5);
    /* an option running past the header ends parsing */
    uint8_t bad[24] = {0};
    bad[20] = 8;
    bad[21] = 10;
    reasm_tcp_header(bad, 24, &t);
    CHECK(!t.has_ts);
}

static void test_property(void)
{
    for (int mode = 0; mode < 3; mode++)
        for (uint64_t seed = 1; seed <= 300; seed++)
            prop_run(seed + 1000 * (uint64_t)mode, mode);
}

int main(void)
{
    test_in_order_no_copy();
    test_reorder_reverse();
    test_retransmissions();
    test_fill_between_runs();
    test_tiny_segments();
    test_syn_payload();
    test_midflow();
    test_wraparound();
    test_fin();
    test_rst();
    test_ack();
    test_ack_fin();
    test_limit_stream();
    test_limit_pool();
    test_flush();
    test_far_future();
    test_property();
    test_conn_checksum();
    test_conn_no_ack();
    test_conn_md5();
    test_conn_bad_ack();
    test_conn_paws();
    test_conn_overlaps();
    test_conn_rst();
    test_conn_urgent();
    test_conn_syn_data();
    test_conn_before_handshake();
    test_conn_window();
    test_tcp_header();
    CHECK_DONE();
}
