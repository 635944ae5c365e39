/*
 * HTTP/2 relay of the TLS proxy: frame splitting, per-stream holds and
 * resets (see h2relay.h for the rules).
 *
 * Why the order of the frames the relay writes matters:
 *   - a RST_STREAM to the server for a stream it has not heard of (its
 *     request HEADERS not yet passed) would be a connection error there, so
 *     a request blocked by its own header block is passed first, reset after;
 *   - trailers that end a blocked body go after the reset, so the receiver
 *     never sees the body end as if it were whole, yet still decodes them
 *     (its HPACK table must follow the sender's);
 *   - frames of the relay's own go between whole frames only: the splitter
 *     passes nothing but whole units.
 */
#include "h2relay.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* --- frames of our own ------------------------------------------------------------- */

static void put_header(uint8_t *b, uint32_t len, uint8_t type, uint8_t flags, uint32_t stream)
{
    b[0] = (uint8_t)(len >> 16);
    b[1] = (uint8_t)(len >> 8);
    b[2] = (uint8_t)len;
    b[3] = type;
    b[4] = flags;
    b[5] = (uint8_t)(stream >> 24 & 0x7f);
    b[6] = (uint8_t)(stream >> 16);
    b[7] = (uint8_t)(stream >> 8);
    b[8] = (uint8_t)stream;
}

static void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

size_t h2r_frame_rst(uint8_t *buf, uint32_t stream, uint32_t code)
{
    put_header(buf, 4, H2R_FRAME_RST_STREAM, 0, stream);
    put32(buf + 9, code);
    return 13;
}

size_t h2r_frame_window_update(uint8_t *buf, uint32_t stream, uint32_t increment)
{
    put_header(buf, 4, H2R_FRAME_WINDOW_UPDATE, 0, stream);
    put32(buf + 9, increment & 0x7fffffffu);
    return 13;
}

size_t h2r_frame_goaway(uint8_t *buf, uint32_t last_stream, uint32_t code, const char *debug)
{
    size_t dl = debug ? strlen(debug) : 0;

    put_header(buf, (uint32_t)(8 + dl), H2R_FRAME_GOAWAY, 0, 0);
    put32(buf + 9, last_stream & 0x7fffffffu);
    put32(buf + 13, code);
    memcpy(buf + 17, debug ? debug : "", dl);
    return 17 + dl;
}

/* --- the splitter --------------------------------------------------------------- */

void h2r_split_init(struct h2r_split *s, int client)
{
    memset(s, 0, sizeof(*s));
    s->preface_left = client ? sizeof(preface) : 0;
}

void h2r_split_free(struct h2r_split *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = s->frame_at = 0;
}

static int gather(struct h2r_split *s, const uint8_t *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        if (cap > H2R_UNIT_MAX)
            cap = H2R_UNIT_MAX;
        if (cap < s->len + n)
            return -1;
        uint8_t *b = realloc(s->buf, cap);
        if (b == NULL)
            return -1;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

static void frame_info(const uint8_t *h, struct h2r_unit *u)
{
    u->length = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
    u->type = h[3];
    u->flags = h[4];
    u->stream =
        ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu;
}

/* The frame at s->buf + frame_at is whole: a unit, or part of a block. */
static int frame_done(struct h2r_split *s, int (*fn)(void *, const struct h2r_unit *), void *ctx,
                      const char **why)
{
    struct h2r_unit f;
    int rc = 0;

    frame_info(s->buf + s->frame_at, &f);
    if (s->in_block) {
        if (f.type != H2R_FRAME_CONTINUATION || f.stream != s->block.stream) {
            *why = "h2: a header block not followed by its CONTINUATION";
            return -1;
        }
        if (!(f.flags & H2R_FLAG_END_HEADERS)) {
            s->frame_at = s->len;
            return 0;
        }
        s->in_block = 0;
        f = s->block;
    } else if (f.type == H2R_FRAME_CONTINUATION) {
        *why = "h2: a CONTINUATION without a header block";
        return -1;
    } else if ((f.type == H2R_FRAME_HEADERS || f.type == H2R_FRAME_PUSH_PROMISE) &&
               !(f.flags & H2R_FLAG_END_HEADERS)) {
        s->in_block = 1;
        s->block = f;
        s->frame_at = s->len;
        return 0;
    }
    f.p = s->buf;
    f.n = s->len;
    rc = fn(ctx, &f);
    s->len = s->frame_at = 0;
    return rc;
}

int h2r_split_feed(struct h2r_split *s, const uint8_t *p, size_t n,
                   int (*fn)(void *ctx, const struct h2r_unit *u), void *ctx, const char **why)
{
    int rc;

    *why = NULL;
    while (n > 0) {
        if (s->preface_left > 0) {
            size_t m = n < s->preface_left ? n : s->preface_left;
            size_t at = sizeof(preface) - s->preface_left;
            if (memcmp(p, preface + at, m) != 0) {
                *why = "h2: the client did not open with the HTTP/2 preface";
                return -1;
            }
            s->preface_left -= m;
            p += m;
            n -= m;
            if (s->preface_left == 0) {
                struct h2r_unit u = {.type = H2R_PREFACE, .p = preface, .n = sizeof(preface)};
                if ((rc = fn(ctx, &u)) != 0)
                    return rc;
            }
            continue;
        }
        /* The usual case: a whole frame in the input, nothing gathered. */
        if (s->len == 0 && n >= 9) {
            struct h2r_unit u;
            frame_info(p, &u);
            int opens_block = (u.type == H2R_FRAME_HEADERS || u.type == H2R_FRAME_PUSH_PROMISE) &&
                              !(u.flags & H2R_FLAG_END_HEADERS);
            if (!opens_block && u.type != H2R_FRAME_CONTINUATION && n >= 9 + (size_t)u.length) {
                u.p = p;
                u.n = 9 + (size_t)u.length;
                if ((rc = fn(ctx, &u)) != 0)
                    return rc;
                p += u.n;
                n -= u.n;
                continue;
            }
        }
        size_t have = s->len - s->frame_at, need;
        if (have < 9) {
            need = 9 - have;
        } else {
            struct h2r_unit f;
            frame_info(s->buf + s->frame_at, &f);
            need = 9 + (size_t)f.length - have;
        }
        size_t m = n < need ? n : need;
        if (gather(s, p, m) < 0) {
            *why = s->len + m > H2R_UNIT_MAX - 9 ? "h2: a frame or header block larger than "
                                                   "sluice holds"
                                                 : "h2: out of memory";
            return -1;
        }
        p += m;
        n -= m;
        have = s->len - s->frame_at;
        if (have < 9)
            continue;
        struct h2r_unit f;
        frame_info(s->buf + s->frame_at, &f);
        if (s->frame_at + 9 + (size_t)f.length > H2R_UNIT_MAX) {
            *why = "h2: a frame or header block larger than sluice holds";
            return -1;
        }
        if (have == 9 + (size_t)f.length && (rc = frame_done(s, fn, ctx, why)) != 0)
            return rc;
    }
    return 0;
}

/* --- the relay ------------------------------------------------------------------ */

/* A DATA frame held back until its stream's next unit or verdict. */
struct held {
    struct held *next;
    uint32_t stream;
    int dir;
    uint32_t length; /* payload, for flow control */
    uint64_t since_ms;
    size_t n;
    uint8_t bytes[];
};

#define BLOCKED_KEEP 128

struct h2r {
    struct h2r_split split[2];
    struct held *held; /* oldest first */
    size_t held_bytes, hold_limit;
    uint32_t blocked[BLOCKED_KEEP]; /* recent blocked streams, a ring */
    unsigned nblocked, blocked_at;
    uint32_t last_client_stream; /* highest stream whose request went to the server */
    uint64_t now_ms;
    struct h2r_stats st;
    /* the call in progress */
    const struct h2r_io *io;
    int dir;
};

struct h2r *h2r_new(size_t hold_limit)
{
    struct h2r *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    h2r_split_init(&r->split[0], 1);
    h2r_split_init(&r->split[1], 0);
    r->hold_limit = hold_limit;
    return r;
}

void h2r_free(struct h2r *r)
{
    if (r == NULL)
        return;
    while (r->held) {
        struct held *h = r->held;
        r->held = h->next;
        free(h);
    }
    h2r_split_free(&r->split[0]);
    h2r_split_free(&r->split[1]);
    free(r);
}

void h2r_now(struct h2r *r, uint64_t now_ms)
{
    r->now_ms = now_ms;
}

size_t h2r_held(const struct h2r *r)
{
    return r->held_bytes;
}

uint32_t h2r_last_stream(const struct h2r *r)
{
    return r->last_client_stream;
}

void h2r_stats(const struct h2r *r, struct h2r_stats *out)
{
    *out = r->st;
}

static int is_blocked(const struct h2r *r, uint32_t stream)
{
    for (unsigned i = 0; i < r->nblocked && stream; i++)
        if (r->blocked[i] == stream)
            return 1;
    return 0;
}

static void unlink_held(struct h2r *r, struct held *h)
{
    for (struct held **pp = &r->held; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    r->held_bytes -= h->n;
}

static struct held *find_held(struct h2r *r, uint32_t stream, int dir)
{
    for (struct held *h = r->held; h; h = h->next)
        if (h->stream == stream && h->dir == dir)
            return h;
    return NULL;
}

/* A held frame goes on. */
static int release(struct h2r *r, struct held *h, const struct h2r_io *io)
{
    int rc;

    unlink_held(r, h);
    rc = io->out(io->ctx, h->dir, h->bytes, h->n);
    free(h);
    return rc < 0 ? H2R_ERROR : H2R_OK;
}

/* A frame of the relay's own, sent in direction dir. Inspection reads it
 * too, as the receiver will: the engine's view of the stream states stays
 * the endpoints' (a reset stream is over there as well). Its verdict comes
 * with the next unit. */
static int own(const struct h2r_io *io, int dir, const uint8_t *f, size_t n)
{
    (void)io->inspect(io->ctx, dir, f, n);
    return io->out(io->ctx, dir, f, n) < 0 ? H2R_ERROR : H2R_OK;
}

/* DATA of dir that will never arrive: its sender gets the room back. */
static int give_back(const struct h2r_io *io, int dir, uint32_t length)
{
    uint8_t f[13];

    if (length == 0)
        return H2R_OK;
    h2r_frame_window_update(f, 0, length);
    return own(io, !dir, f, sizeof(f));
}

static int send_rst(const struct h2r_io *io, uint32_t stream)
{
    uint8_t f[13];

    h2r_frame_rst(f, stream, H2R_RST_TO_SERVER);
    if (own(io, 0, f, sizeof(f)) != H2R_OK)
        return H2R_ERROR;
    h2r_frame_rst(f, stream, H2R_RST_TO_CLIENT);
    return own(io, 1, f, sizeof(f));
}

/* A stream was blocked: what it holds goes, and both sides are told. */
static int block_stream(struct h2r *r, uint32_t stream, const struct h2r_io *io)
{
    struct held *h;

    r->blocked[r->blocked_at] = stream;
    r->blocked_at = (r->blocked_at + 1) % BLOCKED_KEEP;
    if (r->nblocked < BLOCKED_KEEP)
        r->nblocked++;
    r->st.streams_blocked++;
    while ((h = find_held(r, stream, 0)) != NULL || (h = find_held(r, stream, 1)) != NULL) {
        int dir = h->dir;
        uint32_t length = h->length;
        unlink_held(r, h);
        free(h);
        r->st.frames_dropped++;
        if (give_back(io, dir, length) != H2R_OK)
            return H2R_ERROR;
    }
    return send_rst(io, stream);
}

/* Streams inspection blocked since the last look are reset. */
static int take_blocks(struct h2r *r, const struct h2r_io *io)
{
    uint32_t ids[32];
    size_t nids;
    int rc;

    while ((nids = io->blocked(io->ctx, ids, sizeof(ids) / sizeof(ids[0]))) > 0)
        for (size_t i = 0; i < nids; i++)
            if (!is_blocked(r, ids[i]) && (rc = block_stream(r, ids[i], io)) != H2R_OK)
                return rc;
    return H2R_OK;
}

/* Past hold_limit, the oldest held frames go on unjudged. */
static int hold(struct h2r *r, const struct h2r_unit *u, int dir, const struct h2r_io *io)
{
    struct held *h = malloc(sizeof(*h) + u->n);

    if (h == NULL)
        return H2R_ERROR;
    h->next = NULL;
    h->stream = u->stream;
    h->dir = dir;
    h->length = u->length;
    h->since_ms = r->now_ms;
    h->n = u->n;
    memcpy(h->bytes, u->p, u->n);
    struct held **pp = &r->held;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    r->held_bytes += u->n;
    while (r->held_bytes > r->hold_limit && r->held) {
        r->st.hold_overflows++;
        if (release(r, r->held, io) != H2R_OK)
            return H2R_ERROR;
    }
    return H2R_OK;
}

static int on_unit(void *ctx, const struct h2r_unit *u)
{
    struct h2r *r = ctx;
    const struct h2r_io *io = r->io;
    int dir = r->dir, rc;
    int header_block = u->type == H2R_FRAME_HEADERS || u->type == H2R_FRAME_PUSH_PROMISE;
    /* A request the server has not heard of: a reset before it would be a
     * connection error there. */
    int opens = dir == 0 && u->type == H2R_FRAME_HEADERS && u->stream > r->last_client_stream;
    int passed = 0;

    if (io->inspect(io->ctx, dir, u->p, u->n))
        return H2R_BLOCK;
    if (opens) {
        r->last_client_stream = u->stream;
        if (io->out(io->ctx, dir, u->p, u->n) < 0)
            return H2R_ERROR;
        passed = 1;
    }
    if ((rc = take_blocks(r, io)) != H2R_OK)
        return rc;
    if (passed)
        return H2R_OK;
    if (u->type != H2R_PREFACE && is_blocked(r, u->stream)) {
        if (u->type == H2R_FRAME_DATA) {
            r->st.frames_dropped++;
            return give_back(io, dir, u->length);
        }
        if (u->type == H2R_FRAME_WINDOW_UPDATE || u->type == H2R_FRAME_RST_STREAM)
            return H2R_OK; /* the stream is over on both sides already */
        return io->out(io->ctx, dir, u->p, u->n) < 0 ? H2R_ERROR : H2R_OK;
    }
    /* Only what goes on with the body releases its held frame: more DATA,
     * trailers, a reset. A WINDOW_UPDATE or PRIORITY the sender slips in
     * says nothing of the body and passes it. */
    if (u->stream != 0 &&
        (u->type == H2R_FRAME_DATA || header_block || u->type == H2R_FRAME_RST_STREAM)) {
        struct held *h = find_held(r, u->stream, dir);
        if (h && release(r, h, io) != H2R_OK)
            return H2R_ERROR;
        if (u->type == H2R_FRAME_DATA && !(u->flags & H2R_FLAG_END_STREAM) && u->length > 0)
            return hold(r, u, dir, io);
    }
    return io->out(io->ctx, dir, u->p, u->n) < 0 ? H2R_ERROR : H2R_OK;
}

int h2r_input(struct h2r *r, int dir, const uint8_t *p, size_t n, const struct h2r_io *io,
              const char **why)
{
    int rc;

    r->io = io;
    r->dir = dir & 1;
    rc = h2r_split_feed(&r->split[r->dir], p, n, on_unit, r, why);
    if (rc == H2R_ERROR && *why == NULL)
        *why = "h2: out of room for the frames to relay";
    /* Nothing is gathered between reads on an idle connection. */
    if (r->split[r->dir].len == 0)
        h2r_split_free(&r->split[r->dir]);
    return rc;
}

int h2r_eof(struct h2r *r, int dir, const struct h2r_io *io)
{
    for (struct held *h = r->held, *next; h; h = next) {
        next = h->next;
        if (h->dir == dir && release(r, h, io) != H2R_OK)
            return H2R_ERROR;
    }
    return H2R_OK;
}

int h2r_release_older(struct h2r *r, uint64_t before_ms, const struct h2r_io *io)
{
    while (r->held && r->held->since_ms < before_ms) {
        struct held *h = r->held;
        /* The receiver would then hold the whole body so far: judged whole. */
        if (io->judge) {
            io->judge(io->ctx, h->dir, h->stream);
            if (take_blocks(r, io) != H2R_OK)
                return H2R_ERROR;
            if (r->held != h)
                continue; /* its stream was blocked: the frame went */
        }
        if (release(r, h, io) != H2R_OK)
            return H2R_ERROR;
    }
    return H2R_OK;
}
