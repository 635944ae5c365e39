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
 * Overlaps resolve as in Linux (net/ipv4/tcp_input.c): delivered bytes never
 * change; a segment in order is queued whole and wins over held bytes
 * (tcp_data_queue, then tcp_ofo_queue skips what it covers); among held
 * bytes, a segment that starts before a run, or at its start and covers it,
 * replaces that run's bytes, and one starting inside a run leaves them
 * (tcp_data_queue_ofo). Runs are Linux's coalesced segments only roughly, so
 * a copy that differs is counted as a conflict either way: someone is
 * sending two versions of the stream, and the connection layer reports it.
 *
 * The second half of the file is that connection layer: the receiving
 * stack's checks in front of the two streams (see reasm.h).
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

/* The urgent byte is not part of what a reader without SO_OOBINLINE gets
 * (tcp_recvmsg skips it): it goes out of the data here. */
static void emit_data(struct reasm_op *op, const uint8_t *p, size_t n)
{
    struct reasm_stream *s = op->s;

    if (s->urg && s->urg_off >= s->delivered && s->urg_off - s->delivered < n) {
        size_t k = (size_t)(s->urg_off - s->delivered);
        s->urg = 0;
        if (k > 0)
            op->sink->data(op->ctx, p, k);
        if (n - k > 1)
            op->sink->data(op->ctx, p + k + 1, n - k - 1);
    } else if (n > 0) {
        op->sink->data(op->ctx, p, n);
    }
    s->delivered += n;
    s->next_seq += (uint32_t)n;
}

static void emit_gap(struct reasm_op *op, uint64_t n)
{
    if (op->s->urg && op->s->urg_off < op->s->delivered + n)
        op->s->urg = 0;
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

/* p starts at next_seq and goes out whole, straight from the caller's
 * buffer: held bytes it covers are compared and let go, a run it covers in
 * part loses its front. */
static void take_in_order(struct reasm_op *op, const uint8_t *p, size_t len)
{
    struct reasm_stream *s = op->s;
    uint64_t end = s->delivered + len;
    size_t seen = 0;
    struct reasm_seg *g;

    while ((g = s->segs) != NULL && g->off < end) {
        size_t n = (size_t)(min_u64(seg_end(g), end) - g->off);
        note_overlap(op, seg_data(g), p + (g->off - s->delivered), n);
        seen += n;
        held_sub(op->pool, s, n);
        if (n == g->len) {
            run_unlink(s, g);
            seg_free(g);
        } else {
            /* the run keeps its place in the treap: nothing lies between */
            g->front += n;
            g->off += n;
            g->len -= n;
        }
    }
    op->fresh += len - seen;
    emit_data(op, p, len);
    deliver_held(op);
}

/* How many bytes of [off, off + len) no run holds. The held ones are compared
 * with the new copy here, once per segment, and replaced where Linux keeps
 * the new copy: the segment starts before the run, or at its start and
 * covers it. */
static size_t count_new(struct reasm_op *op, uint64_t off, const uint8_t *p, size_t len)
{
    uint64_t end = off + len;
    struct reasm_seg *g = run_before(op->s, off);
    size_t seen = 0;

    for (g = g != NULL ? g : op->s->segs; g != NULL && g->off < end; g = g->next) {
        uint64_t a = g->off > off ? g->off : off;
        uint64_t b = min_u64(seg_end(g), end);
        if (a < b) {
            uint8_t *held = seg_data(g) + (a - g->off);
            note_overlap(op, held, p + (a - off), (size_t)(b - a));
            if (off < g->off || (off == g->off && end >= seg_end(g)))
                memcpy(held, p + (a - off), (size_t)(b - a));
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

static size_t stream_segment(struct reasm_op *op, uint32_t seq, uint8_t flags,
                             const uint8_t *payload, size_t len);

size_t reasm_segment(struct reasm_pool *pool, struct reasm_stream *s, uint32_t seq, uint8_t flags,
                     const uint8_t *payload, size_t len, const struct reasm_sink *sink, void *ctx)
{
    struct reasm_op op = {.pool = pool, .s = s, .sink = sink, .ctx = ctx};
    return stream_segment(&op, seq, flags, payload, len);
}

static size_t stream_segment(struct reasm_op *op, uint32_t seq, uint8_t flags,
                             const uint8_t *payload, size_t len)
{
    struct reasm_pool *pool = op->pool;
    struct reasm_stream *s = op->s;

    if (s->ended)
        return 0;
    if (flags & REASM_RST) {
        take_rst(op, seq);
        return 0;
    }
    if (flags & REASM_SYN) {
        if (take_syn(op, seq) != 0)
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
        take_payload(op, rel, payload, len);
    if (flags & REASM_FIN)
        take_fin(op, seq + (uint32_t)len);
    end_if_done(op);

    if (op->overlap)
        pool->overlaps++;
    if (op->conflict)
        pool->overlap_conflicts++;
    return op->fresh;
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

/* --- the connection: what the receiving stack takes ---------------------------- */

/*
 * Each check below drops a segment only where the receiving Linux stack
 * certainly drops it: dropping one it takes would hide its bytes from
 * inspection. Where the receiver may take or drop it (sluice did not see
 * everything the receiver saw), the segment is kept and its bytes are
 * remembered as doubtful: another copy of them with different bytes, even
 * once delivered, is an anomaly. Doubtful bytes are kept until the receiver
 * acknowledges them, within the reassembly limits; past those, an inline
 * connection reports that it can no longer vouch for the stream.
 * References are to net/ipv4/tcp_input.c.
 */

/* tcp_paws_check: a timestamp at most this far behind ts_recent passes. */
#define REASM_PAWS_WINDOW 1
/* Largest window field, and scale (RFC 7323), a receiver can advertise. */
#define REASM_WIN_MAX   65535u
#define REASM_SCALE_MAX 14

struct reasm_doubt {
    struct reasm_doubt *next;
    uint32_t seq;
    size_t len;
    uint8_t data[];
};

struct conn_op {
    struct reasm_pool *pool;
    struct reasm_conn *c;
    const struct reasm_conn_sink *sink;
    void *ctx;
    int dir; /* the stream a reasm_sink call is about */
};

static int seq_after(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

static void co_data(void *x, const uint8_t *p, size_t n)
{
    struct conn_op *o = x;
    o->sink->data(o->ctx, o->dir, p, n);
}

static void co_gap(void *x, uint64_t n)
{
    struct conn_op *o = x;
    o->sink->gap(o->ctx, o->dir, n);
}

static void co_end(void *x)
{
    struct conn_op *o = x;
    o->sink->end(o->ctx, o->dir);
}

static const struct reasm_sink conn_sink = {co_data, co_gap, co_end};

static void co_anomaly(struct conn_op *o, int dir, const char *why)
{
    o->pool->anomalies++;
    if (o->sink->anomaly != NULL)
        o->sink->anomaly(o->ctx, dir, why);
}

/* A segment for stream dir; *conflict: it overlapped held bytes that differ. */
static void conn_stream(struct conn_op *o, int dir, uint32_t seq, uint8_t flags, const uint8_t *p,
                        size_t n, int *conflict)
{
    struct conn_op d = *o;
    d.dir = dir;
    struct reasm_op op = {.pool = o->pool, .s = &o->c->s[dir], .sink = &conn_sink, .ctx = &d};
    stream_segment(&op, seq, flags, p, n);
    if (conflict != NULL)
        *conflict = op.conflict;
}

static void conn_stream_flush(struct conn_op *o, int dir)
{
    struct conn_op d = *o;
    d.dir = dir;
    struct reasm_op op = {.pool = o->pool, .s = &o->c->s[dir], .sink = &conn_sink, .ctx = &d};
    if (!op.s->ended)
        stream_flush(&op);
}

static void conn_stream_ack(struct conn_op *o, int dir, uint32_t ack)
{
    struct conn_op d = *o;
    d.dir = dir;
    reasm_ack(o->pool, &o->c->s[dir], ack, &conn_sink, &d);
}

/* --- the header ----------------------------------------------------------------- */

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void reasm_tcp_header(const uint8_t *h, size_t hdrlen, struct reasm_tcp *t)
{
    const uint8_t *p = h + 20;
    size_t left = hdrlen - 20;
    int md5_known = 0;

    t->seq = rd32(h + 4);
    t->ack = rd32(h + 8);
    t->flags = h[13];
    t->window = (uint16_t)(h[14] << 8 | h[15]);
    t->urg_ptr = (uint16_t)(h[18] << 8 | h[19]);
    t->has_ts = t->has_ws = t->has_md5 = t->has_ao = t->has_tfo = 0;
    /* tcp_parse_options: a malformed option ends parsing, it does not
     * drop the segment. */
    while (left > 0) {
        uint8_t kind = p[0];
        if (kind == 0)
            break;
        if (kind == 1) {
            p++;
            left--;
            continue;
        }
        if (left < 2 || p[1] < 2 || p[1] > left)
            break;
        uint8_t size = p[1];
        if (kind == 3 && size == 3) {
            t->has_ws = 1;
            t->ws = p[2] > REASM_SCALE_MAX ? REASM_SCALE_MAX : p[2];
        } else if (kind == 8 && size == 10) {
            t->has_ts = 1;
            t->tsval = rd32(p + 2);
            t->tsecr = rd32(p + 4 + 2);
        } else if (kind == 19 && !md5_known) {
            /* tcp_parse_md5sig_option: the first one counts */
            md5_known = 1;
            t->has_md5 = size == 18;
        } else if (kind == 29) {
            t->has_ao = 1;
        } else if (kind == 34 || (kind == 254 && size >= 4 && p[2] == 0xf9 && p[3] == 0x89)) {
            t->has_tfo = 1;
        }
        p += size;
        left -= size;
    }
}

/* --- doubtful bytes --------------------------------------------------------------- */

/* 1 if some remembered doubtful bytes of me differ from this copy. */
static int doubt_differs(const struct reasm_side *me, const struct reasm_tcp *t)
{
    for (const struct reasm_doubt *d = me->doubt; d != NULL; d = d->next) {
        int64_t at = (int32_t)(d->seq - t->seq); /* d's start, in t's payload */
        int64_t lo = at > 0 ? at : 0;
        int64_t hi = at + (int64_t)d->len;
        if (hi > (int64_t)t->len)
            hi = (int64_t)t->len;
        if (lo < hi && memcmp(t->payload + lo, d->data + (lo - at), (size_t)(hi - lo)) != 0)
            return 1;
    }
    return 0;
}

/* The receiver acknowledged everything before ack: it has those bytes, and
 * any copy of them that reached it passed sluice and was compared. Their
 * doubtful copies are settled. */
static void doubt_settle(struct reasm_pool *pool, struct reasm_side *me, uint32_t ack)
{
    struct reasm_doubt **pp = &me->doubt;

    while (*pp != NULL) {
        struct reasm_doubt *d = *pp;
        if (!seq_after(d->seq + d->len, ack)) {
            *pp = d->next;
            me->doubt_bytes -= d->len;
            pool->held -= d->len <= pool->held ? d->len : pool->held;
            free(d);
        } else {
            pp = &d->next;
        }
    }
}

static void doubt_keep(struct conn_op *o, struct reasm_side *me, int dir, const struct reasm_tcp *t)
{
    if (me->doubt_full)
        return;
    struct reasm_doubt *d = NULL;
    /* Bounded like out-of-order bytes: per stream and in all. */
    if (me->doubt_bytes + t->len <= o->pool->limit_stream &&
        o->pool->held + t->len <= o->pool->limit_total)
        d = malloc(sizeof(*d) + t->len);
    if (d == NULL) {
        me->doubt_full = 1;
        /* A capture may simply miss what would settle it: only inline
         * does an unsettled stream stop being vouched for. */
        if (!o->c->passive)
            co_anomaly(o, dir, "too many segments the receiver may have dropped");
        return;
    }
    d->seq = t->seq;
    d->len = t->len;
    memcpy(d->data, t->payload, t->len);
    d->next = me->doubt;
    me->doubt = d;
    me->doubt_bytes += t->len;
    o->pool->held += t->len;
}

/* --- the checks ------------------------------------------------------------------- */

static int handshake_seen(const struct reasm_side *me, const struct reasm_side *peer)
{
    return (me->syn || me->synack) && (peer->syn || peer->synack);
}

/* tcp_v4_rcv: a wrong checksum is dropped. A capture taken on the sending
 * host shows the sender's checksums unfinished (offload): a side none of
 * whose packets had a right checksum yet is taken to be such a side. */
static int check_csum(struct conn_op *o, struct reasm_side *me, const struct reasm_tcp *t)
{
    if (t->csum == REASM_CSUM_GOOD)
        me->csum_good = 1;
    if (t->csum != REASM_CSUM_BAD)
        return 1;
    return o->c->passive && !me->csum_good;
}

/* tcp_inbound_hash: a TCP-MD5 option the receiver has no key for, or none
 * where it has one, is dropped; both SYNs carry it when both ends have
 * keys. A hash cannot be verified here, and TCP-AO depends on the
 * receiver's kernel: doubtful. */
static int check_auth(const struct reasm_side *me, const struct reasm_side *peer,
                      const struct reasm_tcp *t, int *doubt)
{
    if (t->has_md5 && t->has_ao)
        return 0;
    if (handshake_seen(me, peer)) {
        int keyed = me->syn_md5 && peer->syn_md5;
        if (t->has_md5 != keyed)
            return 0;
        if (keyed)
            *doubt = 1;
    } else if (t->has_md5) {
        *doubt = 1;
    }
    if (t->has_ao)
        *doubt = 1;
    return 1;
}

/* Data before the handshake: a client in SYN-SENT drops everything but the
 * SYN-ACK (tcp_rcv_synsent_state_process), and a server cannot take data
 * acknowledging a SYN-ACK it has not sent (tcp_check_req). A capture may
 * hold one direction only, so there it is doubtful. */
static int check_handshake(const struct conn_op *o, const struct reasm_side *me,
                           const struct reasm_side *peer, int *doubt)
{
    if (peer->syn && !me->synack && !o->c->s[o->dir].started)
        return 0;
    if (me->syn && !peer->synack) {
        if (!o->c->passive)
            return 0;
        *doubt = 1;
    }
    return 1;
}

/* tcp_ack: an ack of data the receiver never sent drops the segment. What
 * it sent is known up to what sluice saw of it, and it cannot have sent
 * past the window it was given. Inline, a sender cannot have received what
 * has not passed sluice: an ack past it is no honest sender's, and what the
 * receiver did with it (dropped, unless its reply is still on its way) is
 * reported. A capture may just have missed the receiver's packets. */
static int check_ack(struct conn_op *o, const struct reasm_side *me, const struct reasm_side *peer,
                     const struct reasm_tcp *t, int *doubt)
{
    /* RFC 5961 as tcp_ack applies it: an ack older than snd_una minus the
     * largest window is dropped on the slow path, while the fast path has
     * queued the data already: either may happen. */
    if (me->acked && seq_after(me->ack_hi - me->max_win, t->ack))
        *doubt = 1;
    if (!peer->sent || !seq_after(t->ack, peer->snd_end))
        return 1;
    if (o->c->passive) {
        *doubt = 1;
        return 1;
    }
    uint32_t most = peer->snd_end;
    if (me->advertised && seq_after(me->adv_edge, most))
        most = me->adv_edge;
    if (!seq_after(t->ack, most + 1) && (t->len > 0 || (t->flags & REASM_FIN)))
        co_anomaly(o, o->dir, "acknowledgement of data not sent");
    return 0;
}

/* tcp_paws_discard: with timestamps on, a TSval older than the receiver's
 * ts_recent is dropped. The receiver echoes ts_recent in its TSecr, and
 * ts_recent only grows: the highest echo is a floor. */
static int check_paws(const struct reasm_side *me, const struct reasm_side *peer,
                      const struct reasm_tcp *t, int *doubt)
{
    if (!me->syn_ts || !peer->syn_ts || !t->has_ts)
        return 1;
    if (peer->echoed && (int32_t)(peer->tsecr - t->tsval) > REASM_PAWS_WINDOW)
        return 0;
    /* older than one the receiver may have stored by now */
    if (me->ts_seen && (int32_t)(me->ts_hi - t->tsval) > REASM_PAWS_WINDOW)
        *doubt = 1;
    return 1;
}

static uint32_t stream_top(const struct reasm_stream *s)
{
    uint64_t top = s->tail != NULL ? seg_end(s->tail) : s->delivered;
    return s->next_seq + (uint32_t)(top - s->delivered);
}

/* tcp_sequence / tcp_data_queue: data at or past the right edge of the
 * receive window is dropped. The edge sluice saw advertised is a floor of
 * the receiver's (a window update may be on its way); the largest window it
 * could advertise bounds it. */
static int check_window(const struct conn_op *o, const struct reasm_side *me,
                        const struct reasm_side *peer, const struct reasm_tcp *t, int *doubt)
{
    const struct reasm_stream *s = &o->c->s[o->dir];

    if (!s->started || t->len == 0)
        return 1;
    unsigned scale = REASM_SCALE_MAX;
    if (handshake_seen(me, peer))
        scale = me->syn_ws && peer->syn_ws ? peer->ws : 0;
    uint32_t top = stream_top(s);
    if (seq_after(t->seq, top) && seq_after(t->seq, top + (REASM_WIN_MAX << scale)))
        return 0;
    if (peer->advertised && !seq_after(peer->adv_edge, t->seq))
        *doubt = 1;
    return 1;
}

/* What the sender's accepted segment tells about it. */
static void side_learn(const struct reasm_side *peer, struct reasm_side *me,
                       const struct reasm_tcp *t)
{
    uint32_t end = t->seq + (uint32_t)t->len + !!(t->flags & REASM_FIN) + !!(t->flags & REASM_SYN);

    if (!me->sent || seq_after(end, me->snd_end))
        me->snd_end = end;
    me->sent = 1;
    if (t->has_ts && (!me->ts_seen || (int32_t)(t->tsval - me->ts_hi) > 0)) {
        me->ts_hi = t->tsval;
        me->ts_seen = 1;
    }
    if (!(t->flags & REASM_ACK))
        return;
    if (!me->acked || seq_after(t->ack, me->ack_hi))
        me->ack_hi = t->ack;
    me->acked = 1;
    /* A window is scaled once both SYNs asked for it, never in a SYN; with
     * the handshake unseen, the scale is unknown and the edge too. */
    if (t->flags & REASM_SYN || handshake_seen(me, peer)) {
        unsigned scale = !(t->flags & REASM_SYN) && me->syn_ws && peer->syn_ws ? me->ws : 0;
        uint32_t win = (uint32_t)t->window << scale;
        uint32_t edge = t->ack + win;
        if (!me->advertised || seq_after(edge, me->adv_edge))
            me->adv_edge = edge;
        me->advertised = 1;
        if (win > me->max_win)
            me->max_win = win;
    }
    if (t->has_ts && (!me->echoed || (int32_t)(t->tsecr - me->tsecr) > 0)) {
        me->tsecr = t->tsecr;
        me->echoed = 1;
    }
}

/* --- the segments ----------------------------------------------------------------- */

/* RFC 5961 as tcp_validate_incoming applies it: a RST resets only at
 * rcv_nxt (or rcv_nxt - 1 after a FIN, or at the end of the highest SACK
 * block); elsewhere in the window it only draws a challenge ACK. */
static void take_conn_rst(struct conn_op *o, struct reasm_side *me, const struct reasm_tcp *t)
{
    const struct reasm_stream *s = &o->c->s[o->dir];
    int exact = !s->started || t->seq == s->next_seq ||
                (s->fin_seen && (t->seq == s->fin_seq || t->seq == s->fin_seq + 1)) ||
                (s->tail != NULL && t->seq == stream_top(s));

    if (!exact) {
        o->pool->rst_ignored++;
        return;
    }
    me->reset = 1;
    conn_stream_flush(o, o->dir);
    conn_stream_flush(o, !o->dir);
}

/* A SYN starts its side. Its data waits for the SYN-ACK: a server takes it
 * only with TCP Fast Open, and then acknowledges it. A SYN-ACK's data is
 * not queued by a Linux client. A SYN on a started side is a retransmission
 * (its data was decided with the first) or another connection. */
static void take_conn_syn(struct conn_op *o, struct reasm_side *me, struct reasm_side *peer,
                          const struct reasm_tcp *t)
{
    struct reasm_stream *s = &o->c->s[o->dir];
    int synack = (t->flags & REASM_ACK) != 0;

    if (me->syn || me->synack || s->started) {
        if (t->seq != (me->syn || me->synack ? me->isn : s->isn))
            o->pool->invalid++;
        if (t->len > 0)
            o->pool->dropped++;
        return;
    }
    me->isn = t->seq;
    me->syn = !synack;
    me->synack = (uint8_t)synack;
    me->syn_ts = t->has_ts;
    me->syn_ws = t->has_ws;
    me->ws = t->has_ws ? t->ws : 0;
    me->syn_md5 = t->has_md5;
    me->syn_tfo = t->has_tfo;
    conn_stream(o, o->dir, t->seq, REASM_SYN, NULL, 0, NULL);
    side_learn(peer, me, t);
    if (t->len > 0 && !synack) {
        me->syn_data = malloc(t->len);
        if (me->syn_data != NULL) {
            memcpy(me->syn_data, t->payload, t->len);
            me->syn_len = t->len;
        } else {
            co_anomaly(o, o->dir, "data in a SYN not kept");
        }
    } else if (t->len > 0 && peer->syn_tfo && t->ack == peer->isn + 1 + (uint32_t)peer->syn_len) {
        /* tcp_rcv_fastopen_synack: a Fast Open client queues the SYN-ACK's
         * data once its own SYN data (if any) is acknowledged. It is read
         * before any request: no server of ours sends it. */
        conn_stream(o, o->dir, t->seq + 1, REASM_ACK, t->payload, t->len, NULL);
        co_anomaly(o, o->dir, "data in a SYN-ACK to a Fast Open client");
    } else if (t->len > 0) {
        o->pool->dropped++;
    }
    if (synack && peer->syn_data != NULL) {
        if (t->ack == peer->isn + 1 + (uint32_t)peer->syn_len)
            conn_stream(o, !o->dir, peer->isn + 1, REASM_ACK, peer->syn_data, peer->syn_len, NULL);
        else
            o->pool->dropped++;
        free(peer->syn_data);
        peer->syn_data = NULL;
        peer->syn_len = 0;
    }
}

/* tcp_check_urg: the byte at seq + urg_ptr - 1 is urgent unless already
 * received; a newer pointer replaces an older one. Whether the receiving
 * program reads it in line (SO_OOBINLINE) is unknown: the stream leaves it
 * out, as by default, and the ambiguity is reported. */
static void take_conn_urg(struct conn_op *o, const struct reasm_tcp *t)
{
    struct reasm_stream *s = &o->c->s[o->dir];

    if (!(t->flags & REASM_URG) || !s->started)
        return;
    uint32_t ptr = t->seq + t->urg_ptr - (t->urg_ptr ? 1 : 0);
    uint32_t rel = ptr - s->next_seq;
    if (rel >= REASM_WINDOW)
        return; /* already received */
    if (s->urg && s->urg_off >= s->delivered + rel)
        return;
    s->urg = 1;
    s->urg_off = s->delivered + rel;
    co_anomaly(o, o->dir, "urgent data");
}

static void take_conn_data(struct conn_op *o, struct reasm_side *me, const struct reasm_tcp *t,
                           int doubt)
{
    int conflict = 0;

    if (t->len > 0 && me->doubt != NULL && doubt_differs(me, t))
        conflict = 1;
    if (t->len > 0 || (t->flags & REASM_FIN)) {
        int held = 0;
        conn_stream(o, o->dir, t->seq, t->flags & (REASM_FIN | REASM_ACK), t->payload, t->len,
                    &held);
        conflict |= held;
    }
    if (conflict)
        co_anomaly(o, o->dir, "overlapping segment with different data");
    if (doubt && t->len > 0)
        doubt_keep(o, me, o->dir, t);
}

void reasm_conn_init(struct reasm_conn *c, int passive)
{
    memset(c, 0, sizeof(*c));
    c->passive = (uint8_t)(passive != 0);
}

void reasm_conn_segment(struct reasm_pool *pool, struct reasm_conn *c, int dir,
                        const struct reasm_tcp *t, const struct reasm_conn_sink *sink, void *ctx)
{
    struct conn_op o = {.pool = pool, .c = c, .sink = sink, .ctx = ctx, .dir = dir};
    struct reasm_side *me = &c->side[dir], *peer = &c->side[!dir];
    int doubt = 0;

    if (t->len > REASM_WINDOW || !check_csum(&o, me, t) || !check_auth(me, peer, t, &doubt))
        goto drop;
    if (t->flags & REASM_RST) {
        take_conn_rst(&o, me, t);
        return;
    }
    if (t->flags & REASM_SYN) {
        take_conn_syn(&o, me, peer, t);
        return;
    }
    /* tcp_rcv_established and tcp_rcv_state_process drop a segment without
     * ACK; RST and SYN aside. */
    if (!(t->flags & REASM_ACK) || !check_handshake(&o, me, peer, &doubt) ||
        !check_ack(&o, me, peer, t, &doubt) || !check_paws(me, peer, t, &doubt) ||
        !check_window(&o, me, peer, t, &doubt))
        goto drop;
    side_learn(peer, me, t);
    if (peer->doubt != NULL)
        doubt_settle(pool, peer, t->ack);
    if (me->reset) {
        /* the side that reset goes on: the receiver may not have taken the RST */
        if (t->len > 0)
            co_anomaly(&o, dir, "data after reset");
        return;
    }
    take_conn_urg(&o, t);
    take_conn_data(&o, me, t, doubt);
    if (c->passive && !c->s[!dir].ended)
        conn_stream_ack(&o, !dir, t->ack);
    return;
drop:
    if (t->len > 0 || (t->flags & (REASM_FIN | REASM_RST | REASM_SYN)))
        pool->dropped++;
}

void reasm_conn_flush(struct reasm_pool *pool, struct reasm_conn *c, int dir,
                      const struct reasm_conn_sink *sink, void *ctx)
{
    struct conn_op o = {.pool = pool, .c = c, .sink = sink, .ctx = ctx, .dir = dir};
    conn_stream_flush(&o, dir);
}

void reasm_conn_free(struct reasm_pool *pool, struct reasm_conn *c)
{
    for (int d = 0; d < 2; d++) {
        struct reasm_side *side = &c->side[d];
        reasm_stream_free(pool, &c->s[d]);
        free(side->syn_data);
        side->syn_data = NULL;
        while (side->doubt != NULL) {
            struct reasm_doubt *next = side->doubt->next;
            pool->held -= side->doubt->len <= pool->held ? side->doubt->len : pool->held;
            free(side->doubt);
            side->doubt = next;
        }
        side->doubt_bytes = 0;
    }
}
