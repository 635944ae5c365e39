/*
 * TCP reassembly of one direction of a connection.
 *
 * Positions. Once a stream has started, each of its bytes has a 64-bit stream
 * offset: 0 is the first byte after the SYN (or the first byte picked up
 * mid-flow), and s->delivered is always the offset of next_seq. Sequence
 * numbers are turned into offsets once, on entry, relative to next_seq;
 * everything below the entry points works on offsets and never has to think
 * about wraparound.
 *
 * Held data. Out-of-order bytes are kept as runs: maximal ranges of held
 * bytes, disjoint and never adjacent. A segment that touches a run extends it
 * (the buffer grows geometrically on the side that ran out, so a run built
 * from many small segments, in order or in reverse, costs amortised O(1) per
 * byte), and a segment that fills the hole between two runs joins them, the
 * smaller copied into the larger (a byte is copied O(log n) times at most).
 * So there are as many runs as holes, not as segments.
 *
 * Runs sit on a list in stream order (delivery takes the head; after one lost
 * segment, the rest extend the tail: both O(1)) and in a treap keyed by
 * offset, which finds the run before any offset in O(log n) expected time, so
 * no arrival order, however hostile, makes insertion quadratic.
 *
 * First seen wins: held bytes are never replaced. A later copy that differs is
 * counted as a conflict, since someone is sending two versions of the stream.
 */
#include "reasm.h"

#include <stdlib.h>
#include <string.h>

/* Further than this past next_seq a segment is not data worth waiting for:
 * real receive windows are far smaller, and half the sequence space away the
 * modulo-2^32 order itself stops meaning anything. */
#define REASM_WINDOW (1u << 30)

struct reasm_seg {
    struct reasm_seg *prev, *next;  /* runs in stream order */
    struct reasm_seg *left, *right; /* treap by off */
    uint32_t prio;                  /* treap heap order: random, keeps it balanced */
    uint64_t off;                   /* stream offset of the first held byte */
    size_t len;
    size_t front; /* free bytes in buf before the data */
    size_t cap;   /* bytes allocated in buf */
    uint8_t *buf;
};

/* One call into the stream: where output goes, and what the segment held. */
struct reasm_op {
    struct reasm_pool *pool;
    struct reasm_stream *s;
    const struct reasm_sink *sink;
    void *ctx;
    size_t fresh;     /* payload bytes not seen before */
    uint8_t overlap;  /* some payload bytes had been seen before */
    uint8_t conflict; /* ... and some of those differed from the held ones */
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* --- runs ------------------------------------------------------------------ */

static uint8_t *seg_data(const struct reasm_seg *g)
{
    return g->buf + g->front;
}

static uint64_t seg_end(const struct reasm_seg *g)
{
    return g->off + g->len;
}

/* Treap priorities must not follow the offsets the sender chooses. A hash of
 * the node's address does not, and needs no shared state between workers. */
static uint32_t seg_prio(const struct reasm_seg *g)
{
    uint64_t x = (uint64_t)(uintptr_t)g;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static struct reasm_seg *seg_new(uint64_t off, const uint8_t *p, size_t n)
{
    struct reasm_seg *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->buf = malloc(n);
    if (g->buf == NULL) {
        free(g);
        return NULL;
    }
    memcpy(g->buf, p, n);
    g->off = off;
    g->len = n;
    g->cap = n;
    g->prio = seg_prio(g);
    return g;
}

static void seg_free(struct reasm_seg *g)
{
    free(g->buf);
    free(g);
}

/* Makes room for front bytes before the data and back bytes after it. The
 * side that ran out gets the run's length again as slack, so repeated
 * extension in one direction copies each byte O(1) times on average. */
static int seg_reserve(struct reasm_seg *g, size_t front, size_t back)
{
    size_t tail = g->cap - g->front - g->len;
    if (front <= g->front && back <= tail)
        return 0;
    size_t nfront = front <= g->front ? g->front : front + g->len;
    size_t ntail = back <= tail ? tail : back + g->len;
    uint8_t *buf = malloc(nfront + g->len + ntail);
    if (buf == NULL)
        return -1;
    memcpy(buf + nfront, seg_data(g), g->len);
    free(g->buf);
    g->buf = buf;
    g->front = nfront;
    g->cap = nfront + g->len + ntail;
    return 0;
}

/* These two expect the room to be reserved. put_front moves the run's start:
 * the treap stays ordered because the bytes come from the hole before it. */
static void seg_put_back(struct reasm_seg *g, const uint8_t *p, size_t n)
{
    memcpy(seg_data(g) + g->len, p, n);
    g->len += n;
}

static void seg_put_front(struct reasm_seg *g, const uint8_t *p, size_t n)
{
    g->front -= n;
    g->off -= n;
    g->len += n;
    memcpy(seg_data(g), p, n);
}

/* --- the treap ------------------------------------------------------------- */

/* Joins two treaps, every key of a below every key of b. */
static struct reasm_seg *tree_join(struct reasm_seg *a, struct reasm_seg *b)
{
    struct reasm_seg *root = NULL, **pp = &root;

    while (a != NULL && b != NULL) {
        if (a->prio > b->prio) {
            *pp = a;
            pp = &a->right;
            a = a->right;
        } else {
            *pp = b;
            pp = &b->left;
            b = b->left;
        }
    }
    *pp = a != NULL ? a : b;
    return root;
}

/* Splits t into the keys below off and the keys from off up. */
static void tree_split(struct reasm_seg *t, uint64_t off, struct reasm_seg **lo,
                       struct reasm_seg **hi)
{
    while (t != NULL) {
        if (t->off < off) {
            *lo = t;
            lo = &t->right;
            t = t->right;
        } else {
            *hi = t;
            hi = &t->left;
            t = t->left;
        }
    }
    *lo = NULL;
    *hi = NULL;
}

static void tree_insert(struct reasm_seg **root, struct reasm_seg *g)
{
    struct reasm_seg **pp = root;

    while (*pp != NULL && (*pp)->prio >= g->prio)
        pp = g->off < (*pp)->off ? &(*pp)->left : &(*pp)->right;
    tree_split(*pp, g->off, &g->left, &g->right);
    *pp = g;
}

static void tree_remove(struct reasm_seg **root, struct reasm_seg *g)
{
    struct reasm_seg **pp = root;

    while (*pp != g)
        pp = g->off < (*pp)->off ? &(*pp)->left : &(*pp)->right;
    *pp = tree_join(g->left, g->right);
}

/* The run starting at or before off, or NULL. The ends are checked first:
 * that is where nearly every segment lands. */
static struct reasm_seg *run_before(const struct reasm_stream *s, uint64_t off)
{
    if (s->tail != NULL && s->tail->off <= off)
        return s->tail;
    if (s->segs == NULL || s->segs->off > off)
        return NULL;

    struct reasm_seg *best = NULL;
    for (struct reasm_seg *t = s->tree; t != NULL;) {
        if (t->off <= off) {
            best = t;
            t = t->right;
        } else {
            t = t->left;
        }
    }
    return best;
}

/* --- the run list ------------------------------------------------------------ */

static void held_add(struct reasm_pool *pool, struct reasm_stream *s, size_t n)
{
    pool->held += n;
    s->held += n;
}

static void held_sub(struct reasm_pool *pool, struct reasm_stream *s, size_t n)
{
    pool->held -= n;
    s->held -= n;
}

/* Links g after prev (at the head if prev is NULL). */
static void run_link(struct reasm_stream *s, struct reasm_seg *prev, struct reasm_seg *g)
{
    g->prev = prev;
    g->next = prev != NULL ? prev->next : s->segs;
    if (g->next != NULL)
        g->next->prev = g;
    else
        s->tail = g;
    if (prev != NULL)
        prev->next = g;
    else
        s->segs = g;
    tree_insert(&s->tree, g);
}

static void run_unlink(struct reasm_stream *s, struct reasm_seg *g)
{
    if (g->prev != NULL)
        g->prev->next = g->next;
    else
        s->segs = g->next;
    if (g->next != NULL)
        g->next->prev = g->prev;
    else
        s->tail = g->prev;
    tree_remove(&s->tree, g);
}

/* The piece fills the hole between a and b exactly: the bigger run absorbs
 * the piece and the smaller run. */
static struct reasm_seg *run_join(struct reasm_stream *s, struct reasm_seg *a, struct reasm_seg *b,
                                  const uint8_t *p, size_t n)
{
    if (a->len >= b->len) {
        if (seg_reserve(a, 0, n + b->len) != 0)
            return NULL;
        seg_put_back(a, p, n);
        seg_put_back(a, seg_data(b), b->len);
        run_unlink(s, b);
        seg_free(b);
        return a;
    }
    if (seg_reserve(b, n + a->len, 0) != 0)
        return NULL;
    /* a leaves the treap before b takes over its offset: keys stay unique. */
    run_unlink(s, a);
    seg_put_front(b, p, n);
    seg_put_front(b, seg_data(a), a->len);
    seg_free(a);
    return b;
}

/*
 * Stores the new bytes [off, off + n) found in the hole between prev and next
 * (either may be NULL, and prev may end before the hole starts). Returns the
 * run now holding them, or NULL if memory ran out; then nothing changed.
 */
static struct reasm_seg *hole_fill(struct reasm_op *op, struct reasm_seg *prev,
                                   struct reasm_seg *next, uint64_t off, const uint8_t *p, size_t n)
{
    int after_prev = prev != NULL && seg_end(prev) == off;
    int before_next = next != NULL && next->off == off + n;
    struct reasm_seg *g;

    if (after_prev && before_next) {
        g = run_join(op->s, prev, next, p, n);
    } else if (after_prev) {
        g = seg_reserve(prev, 0, n) == 0 ? prev : NULL;
        if (g != NULL)
            seg_put_back(g, p, n);
    } else if (before_next) {
        g = seg_reserve(next, n, 0) == 0 ? next : NULL;
        if (g != NULL)
            seg_put_front(g, p, n);
    } else {
        g = seg_new(off, p, n);
        if (g != NULL)
            run_link(op->s, prev, g);
    }
    if (g != NULL)
        held_add(op->pool, op->s, n);
    return g;
}

/* --- output ------------------------------------------------------------------ */

static void emit_data(struct reasm_op *op, const uint8_t *p, size_t n)
{
    op->sink->data(op->ctx, p, n);
    op->s->delivered += n;
    op->s->next_seq += (uint32_t)n;
}

static void emit_gap(struct reasm_op *op, uint64_t n)
{
    op->sink->gap(op->ctx, n);
    op->pool->gaps++;
    op->pool->gap_bytes += n;
    op->s->delivered += n;
    op->s->next_seq += (uint32_t)n;
}

/* g starts at next_seq: deliver it and let it go. */
static void run_deliver(struct reasm_op *op, struct reasm_seg *g)
{
    run_unlink(op->s, g);
    held_sub(op->pool, op->s, g->len);
    emit_data(op, seg_data(g), g->len);
    seg_free(g);
}

static void deliver_held(struct reasm_op *op)
{
    while (op->s->segs != NULL && op->s->segs->off == op->s->delivered)
        run_deliver(op, op->s->segs);
}

/* Gives up waiting for anything before off: holes become gaps and held runs
 * go out, in order; then whatever is contiguous follows. */
static void skip_to(struct reasm_op *op, uint64_t off)
{
    struct reasm_stream *s = op->s;

    while (s->delivered < off) {
        struct reasm_seg *g = s->segs;
        uint64_t to = g != NULL && g->off < off ? g->off : off;
        emit_gap(op, to - s->delivered);
        deliver_held(op);
    }
}

static uint64_t fin_off(const struct reasm_stream *s)
{
    return s->delivered + (uint32_t)(s->fin_seq - s->next_seq);
}

static void stream_end(struct reasm_op *op)
{
    op->s->ended = 1;
    op->sink->end(op->ctx);
}

static void end_if_done(struct reasm_op *op)
{
    struct reasm_stream *s = op->s;
    if (s->fin_seen && !s->ended && s->next_seq == s->fin_seq)
        stream_end(op);
}

/* Everything held goes out, with gaps for the holes and for missing bytes
 * before a known FIN, then the stream ends. */
static void stream_flush(struct reasm_op *op)
{
    struct reasm_stream *s = op->s;

    if (s->started) {
        uint64_t last = s->tail != NULL ? seg_end(s->tail) : s->delivered;
        if (s->fin_seen && fin_off(s) > last)
            last = fin_off(s);
        skip_to(op, last);
    }
    stream_end(op);
}

/* --- input ------------------------------------------------------------------- */

static void note_overlap(struct reasm_op *op, const uint8_t *held, const uint8_t *p, size_t n)
{
    op->overlap = 1;
    if (!op->conflict && memcmp(held, p, n) != 0)
        op->conflict = 1;
}

/* p starts at next_seq. New bytes go out straight from the caller's buffer;
 * where a held run starts, its bytes win and go out instead. */
static void take_in_order(struct reasm_op *op, const uint8_t *p, size_t len)
{
    struct reasm_stream *s = op->s;

    while (len > 0) {
        struct reasm_seg *g = s->segs;
        if (g == NULL || g->off - s->delivered >= len) {
            op->fresh += len;
            emit_data(op, p, len);
            break;
        }
        size_t n = (size_t)(g->off - s->delivered);
        if (n > 0) {
            op->fresh += n;
            emit_data(op, p, n);
            p += n;
            len -= n;
        }
        n = len < g->len ? len : g->len;
        note_overlap(op, seg_data(g), p, n);
        p += n;
        len -= n;
        run_deliver(op, g);
    }
    deliver_held(op);
}

/* How many bytes of [off, off + len) no run holds. The held ones are compared
 * with the new copy here, once per segment. */
static size_t count_new(struct reasm_op *op, uint64_t off, const uint8_t *p, size_t len)
{
    uint64_t end = off + len;
    struct reasm_seg *g = run_before(op->s, off);
    size_t seen = 0;

    for (g = g != NULL ? g : op->s->segs; g != NULL && g->off < end; g = g->next) {
        uint64_t a = g->off > off ? g->off : off;
        uint64_t b = min_u64(seg_end(g), end);
        if (a < b) {
            note_overlap(op, seg_data(g) + (a - g->off), p + (a - off), (size_t)(b - a));
            seen += (size_t)(b - a);
        }
    }
    return len - seen;
}

/*
 * Holds the bytes of [off, off + len) that no run holds yet, hole by hole.
 * Returns 0, or -1 when memory ran out, with *stop set to the first byte that
 * could not be stored (the ones before it are held).
 */
static int hold(struct reasm_op *op, uint64_t off, const uint8_t *p, size_t len, uint64_t *stop)
{
    uint64_t end = off + len, at = off;
    struct reasm_seg *prev = run_before(op->s, off);
    struct reasm_seg *next = prev != NULL ? prev->next : op->s->segs;

    if (prev != NULL && seg_end(prev) > at)
        at = min_u64(seg_end(prev), end);
    while (at < end) {
        uint64_t to = next != NULL && next->off < end ? next->off : end;
        struct reasm_seg *run = next;
        if (to > at) {
            run = hole_fill(op, prev, next, at, p + (at - off), (size_t)(to - at));
            if (run == NULL) {
                *stop = at;
                return -1;
            }
            op->fresh += (size_t)(to - at);
        }
        /* run now reaches at least to; continue after it */
        prev = run;
        next = run->next;
        at = min_u64(seg_end(run), end);
    }
    return 0;
}

static uint64_t room(const struct reasm_op *op)
{
    const struct reasm_pool *pool = op->pool;
    uint64_t stream = pool->limit_stream > op->s->held ? pool->limit_stream - op->s->held : 0;
    uint64_t total = pool->limit_total > pool->held ? pool->limit_total - pool->held : 0;
    return min_u64(stream, total);
}

/*
 * Payload at stream offset off, at or after next_seq. In order, it goes out at
 * once; out of order, it is held if it fits. If it does not, the stream skips
 * ahead: the hole before the first run becomes a gap and what is then in
 * order goes out, until the segment fits or is itself in order. Running out
 * of memory skips ahead the same way, so no byte is ever dropped unreported.
 */
static void take_data(struct reasm_op *op, uint64_t off, const uint8_t *p, size_t len)
{
    struct reasm_stream *s = op->s;
    size_t need = 0;
    int counted = 0;

    for (;;) {
        if (off < s->delivered) {
            /* skipping ahead delivered held bytes over the start of p */
            uint64_t old = min_u64(s->delivered - off, len);
            off += old;
            p += old;
            len -= (size_t)old;
            if (len == 0)
                return;
        }
        if (off == s->delivered) {
            take_in_order(op, p, len);
            return;
        }
        /* Runs before off do not change need, and the loop ends as soon as
         * next_seq passes off: counting once is enough. */
        if (!counted) {
            need = count_new(op, off, p, len);
            counted = 1;
        }
        if (need <= room(op)) {
            uint64_t stop;
            if (hold(op, off, p, len, &stop) == 0)
                return;
            skip_to(op, stop);
            continue;
        }
        skip_to(op, s->segs != NULL && s->segs->off < off ? s->segs->off : off);
    }
}

/* Data starting rel bytes after next_seq (rel < 0: before it). */
static void take_payload(struct reasm_op *op, int64_t rel, const uint8_t *p, size_t len)
{
    struct reasm_stream *s = op->s;

    if (rel < 0) {
        op->overlap = 1;
        if ((uint64_t)-rel >= len)
            return; /* an old retransmission */
        p += -rel;
        len -= (size_t)-rel;
        rel = 0;
    }
    uint64_t off = s->delivered + (uint64_t)rel;
    if (s->fin_seen && off + len > fin_off(s)) {
        /* nothing follows a FIN */
        op->pool->invalid++;
        if (off >= fin_off(s))
            return;
        len = (size_t)(fin_off(s) - off);
    }
    take_data(op, off, p, len);
}

/* A FIN at fin_seq. One that contradicts what is known (another FIN, a point
 * already passed, held data after it) is ignored: the first version stands. */
static void take_fin(struct reasm_op *op, uint32_t fin_seq)
{
    struct reasm_stream *s = op->s;
    uint32_t rel = fin_seq - s->next_seq;

    if (s->fin_seen) {
        if (fin_seq != s->fin_seq)
            op->pool->invalid++;
        return;
    }
    if (rel > REASM_WINDOW || (s->tail != NULL && seg_end(s->tail) > s->delivered + rel)) {
        op->pool->invalid++;
        return;
    }
    s->fin_seen = 1;
    s->fin_seq = fin_seq;
}

static void stream_start(struct reasm_stream *s, uint32_t next_seq)
{
    s->next_seq = next_seq;
    /* For a stream picked up mid-flow: the SYN that would have come before,
     * so that its retransmission is recognised. */
    s->isn = next_seq - 1;
    s->started = 1;
}

/* A SYN: starts the stream, or is a retransmission of the one that did. A
 * different ISN is another connection; the caller deals with reuse. */
static int take_syn(struct reasm_op *op, uint32_t seq)
{
    if (!op->s->started)
        stream_start(op->s, seq + 1);
    else if (seq != op->s->isn) {
        op->pool->invalid++;
        return -1;
    }
    return 0;
}

/* A RST ends the stream with what it has; its payload, if any, is a
 * diagnostic the receiver does not deliver, so it is not stream data. */
static void take_rst(struct reasm_op *op, uint32_t seq)
{
    struct reasm_stream *s = op->s;

    if (s->started && (int32_t)(seq - s->next_seq) > (int32_t)REASM_WINDOW) {
        op->pool->invalid++;
        return;
    }
    stream_flush(op);
}

/* --- API --------------------------------------------------------------------- */

void reasm_pool_init(struct reasm_pool *pool, uint64_t limit_total, uint64_t limit_stream)
{
    memset(pool, 0, sizeof(*pool));
    pool->limit_total = limit_total;
    pool->limit_stream = limit_stream;
}

void reasm_stream_init(struct reasm_stream *s)
{
    memset(s, 0, sizeof(*s));
}

size_t reasm_segment(struct reasm_pool *pool, struct reasm_stream *s, uint32_t seq, uint8_t flags,
                     const uint8_t *payload, size_t len, const struct reasm_sink *sink, void *ctx)
{
    struct reasm_op op = {.pool = pool, .s = s, .sink = sink, .ctx = ctx};

    if (s->ended)
        return 0;
    if (flags & REASM_RST) {
        take_rst(&op, seq);
        return 0;
    }
    if (flags & REASM_SYN) {
        if (take_syn(&op, seq) != 0)
            return 0;
        seq++; /* the SYN takes one sequence number before the data */
    }
    if (len == 0 && !(flags & REASM_FIN))
        return 0; /* a pure ACK says nothing about this stream's bytes */
    if (!s->started)
        stream_start(s, seq);

    int32_t rel = (int32_t)(seq - s->next_seq);
    if (rel > (int32_t)REASM_WINDOW || len > REASM_WINDOW) {
        pool->invalid++;
        return 0;
    }
    if (len > 0)
        take_payload(&op, rel, payload, len);
    if (flags & REASM_FIN)
        take_fin(&op, seq + (uint32_t)len);
    end_if_done(&op);

    if (op.overlap)
        pool->overlaps++;
    if (op.conflict)
        pool->overlap_conflicts++;
    return op.fresh;
}

void reasm_ack(struct reasm_pool *pool, struct reasm_stream *s, uint32_t ack,
               const struct reasm_sink *sink, void *ctx)
{
    struct reasm_op op = {.pool = pool, .s = s, .sink = sink, .ctx = ctx};
    uint32_t rel = ack - s->next_seq;

    if (!s->started || s->ended || rel == 0 || rel > REASM_WINDOW)
        return;
    /* The FIN takes a sequence number but is no byte: an ack of fin_seq + 1
     * acknowledges the data up to fin_seq and the FIN, no more. */
    if (s->fin_seen && rel > (uint32_t)(s->fin_seq - s->next_seq))
        rel = s->fin_seq - s->next_seq;
    skip_to(&op, s->delivered + rel);
    end_if_done(&op);
}

void reasm_flush(struct reasm_pool *pool, struct reasm_stream *s, const struct reasm_sink *sink,
                 void *ctx)
{
    struct reasm_op op = {.pool = pool, .s = s, .sink = sink, .ctx = ctx};

    if (!s->ended)
        stream_flush(&op);
}

void reasm_stream_free(struct reasm_pool *pool, struct reasm_stream *s)
{
    struct reasm_seg *g, *next;

    for (g = s->segs; g != NULL; g = next) {
        next = g->next;
        held_sub(pool, s, g->len);
        seg_free(g);
    }
    s->segs = NULL;
    s->tail = NULL;
    s->tree = NULL;
}
