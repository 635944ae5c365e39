/*
 * Content codings of HTTP bodies, decoded the way clients decode them.
 *
 * A chain has one stage per coding; stage 0 takes the bytes from the wire
 * (the coding applied last), each stage hands its output to the next, the
 * last one to the caller. Every stage owns a CODINGS_PIECE output buffer,
 * so memory is bounded by the number of stages plus what zlib, libbrotli
 * (16 MiB window at most) and libzstd (CODINGS_ZSTD_WLOG) keep.
 *
 * The readings follow curl 7.88 and Python urllib3, checked against both
 * with tests/evasion/probe_codings_clients.py; where they differ, the chain
 * takes the one that yields bytes (see codings.h). Once any stage reaches
 * the end of its data for good, nothing further in the chain can produce
 * output, so the whole chain stops and counts what follows as ignored.
 *
 * Bombs: every stage counts its output; past limits.max_out, or past
 * max_ratio times the bytes fed so far once ratio_after is passed, the
 * chain stops with a problem. Counting every stage (not only the last)
 * also bounds the work of a stage whose output a later stage discards.
 */
#include "codings.h"

#include <brotli/decode.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

enum coding { C_GZIP, C_DEFLATE, C_BR, C_ZSTD };

/* zlib input kept while a deflate body may still turn out to be raw. */
#define DEFLATE_HISTORY 65536

/* The largest zstd frame header (ZSTD_FRAMEHEADERSIZE_MAX, which zstd.h
 * only shows to static linking). */
#define ZSTD_HEADER_MAX 18

/* inflate_run(): the chain stopped downstream (not a zlib status). */
#define RUN_STOPPED 1000

struct stage {
    enum coding kind;
    int inside;       /* inside a stream, member or frame: its end is due */
    int ended;        /* its data ended for good: later input is ignored */
    int between;      /* gzip: after a whole member, before the next one */
    uint64_t members; /* whole gzip members or zstd frames */
    uint64_t out;     /* bytes produced */
    z_stream z;
    int z_ready;
    int raw;       /* deflate: reading raw deflate */
    int produced;  /* deflate: the zlib reading has produced output */
    uint8_t *hist; /* deflate: input so far, for the raw retry */
    size_t hist_len;
    int hist_lost; /* deflate: more input than DEFLATE_HISTORY */
    BrotliDecoderState *br;
    ZSTD_DStream *zs;
    /* zstd: the first bytes of a frame, gathered so that libzstd sees a
     * whole frame header in one call (otherwise whether it takes a legacy
     * frame depends on how the bytes were cut). */
    uint8_t zhead[ZSTD_HEADER_MAX];
    size_t zhead_len;
    int zstart;   /* at the start of a frame */
    uint8_t *buf; /* CODINGS_PIECE bytes of output */
};

struct codings {
    struct codings_limits lim;
    /* In the order the codings were applied: the last one decodes first.
     * Stages never move once started (zlib keeps a pointer to z_stream). */
    struct stage st[CODINGS_MAX];
    size_t n;     /* decoding stages */
    size_t names; /* codings named, identity included */
    uint64_t in;  /* encoded bytes fed */
    uint64_t delivered;
    uint64_t ignored;
    int ended;        /* some stage ended for good */
    size_t end_stage; /* the last such stage in decoding order */
    int failed;
    codings_out_fn out;
    void *ctx;
    const char *problem;
    char problem_buf[160];
};

static int stage_feed(struct codings *c, size_t i, const uint8_t *p, size_t n);

/* Stage i of the decoding: 0 takes the bytes from the wire. */
static struct stage *stage_at(struct codings *c, size_t i)
{
    return &c->st[c->n - 1 - i];
}

static int fail(struct codings *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct codings *c, const char *fmt, ...)
{
    va_list ap;

    if (c->failed)
        return -1;
    va_start(ap, fmt);
    vsnprintf(c->problem_buf, sizeof(c->problem_buf), fmt, ap);
    va_end(ap);
    c->problem = c->problem_buf;
    c->failed = 1;
    return -1;
}

/* Stage i reached the end of its data for good; `left` of its input bytes
 * follow and are ignored, like everything it gets from now on. The stages
 * before it go on decoding into the void: their output no longer counts,
 * but their errors and bombs still do, whatever the order in which the
 * stages reach their ends (which depends on how the input was cut). */
static void end_chain(struct codings *c, size_t i, size_t left)
{
    struct stage *s = stage_at(c, i);

    s->inside = 0;
    s->ended = 1;
    if (!c->ended || i > c->end_stage)
        c->end_stage = i;
    c->ended = 1;
    c->ignored += left;
}

/* Output of stage i: counted against the bomb limits, then handed on. */
static int pass_on(struct codings *c, size_t i, const uint8_t *p, size_t n)
{
    struct stage *s = stage_at(c, i);
    uint64_t room = c->lim.max_out - s->out;
    int over = 0;

    if (n > room) {
        n = (size_t)room;
        over = 1;
    }
    s->out += n;
    if (n > 0 && stage_feed(c, i + 1, p, n) != 0)
        return -1;
    if (over)
        return fail(c, "decompression bomb: more than %llu decoded bytes",
                    (unsigned long long)c->lim.max_out);
    if (c->lim.max_ratio && s->out > c->lim.ratio_after && s->out / c->lim.max_ratio > c->in)
        return fail(c, "decompression bomb: more than %u times the %llu encoded bytes",
                    c->lim.max_ratio, (unsigned long long)c->in);
    return 0;
}

/* Runs inflate over p[0..n); its output goes on. Returns the last zlib
 * status, or 1 when the chain stopped downstream; *used says how much input
 * was consumed. */
static int inflate_run(struct codings *c, size_t i, const uint8_t *p, size_t n, size_t *used)
{
    struct stage *s = stage_at(c, i);
    int rc;

    s->z.next_in = (Bytef *)p;
    s->z.avail_in = (uInt)n;
    do {
        s->z.next_out = s->buf;
        s->z.avail_out = CODINGS_PIECE;
        rc = inflate(&s->z, Z_NO_FLUSH);
        size_t got = CODINGS_PIECE - s->z.avail_out;
        if (got > 0) {
            s->produced = 1;
            if (pass_on(c, i, s->buf, got) != 0 || s->ended) {
                *used = n - s->z.avail_in;
                return RUN_STOPPED;
            }
        }
    } while (rc == Z_OK && (s->z.avail_in > 0 || s->z.avail_out == 0));
    *used = n - s->z.avail_in;
    return rc;
}

static const char *zmsg(const struct stage *s, int rc)
{
    if (s->z.msg)
        return s->z.msg;
    return rc == Z_NEED_DICT ? "needs a preset dictionary" : "data error";
}

/* gzip: members one after the other, as many as come. The first may be
 * zlib data (windowBits 32+15 detects both, as curl does); the next ones
 * must be gzip (Python reads them so; curl stops after the first). */
static int gzip_feed(struct codings *c, size_t i, const uint8_t *p, size_t n)
{
    struct stage *s = stage_at(c, i);

    while (n > 0) {
        size_t used;
        if (s->between) {
            if (inflateReset2(&s->z, 16 + MAX_WBITS) != Z_OK)
                return fail(c, "gzip: cannot restart the decoder");
            s->between = 0;
        }
        s->inside = 1;
        int rc = inflate_run(c, i, p, n, &used);
        p += used;
        n -= used;
        if (rc == RUN_STOPPED)
            return c->failed ? -1 : 0;
        if (rc == Z_STREAM_END) {
            s->members++;
            s->inside = 0;
            s->between = 1;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            if (s->members == 0)
                return fail(c, "gzip: %s", zmsg(s, rc));
            /* Not a member: clients stop here and keep what came before. */
            end_chain(c, i, n);
            return 0;
        }
    }
    return 0;
}

/* deflate failed as zlib before any output: read the same bytes as raw
 * deflate from the start, as Python does (curl too when the failure shows
 * in its first read). */
static int deflate_go_raw(struct codings *c, size_t i)
{
    struct stage *s = stage_at(c, i);
    uint8_t *hist = s->hist;
    size_t len = s->hist_len;

    inflateEnd(&s->z);
    s->z_ready = 0;
    memset(&s->z, 0, sizeof(s->z));
    if (inflateInit2(&s->z, -MAX_WBITS) != Z_OK) {
        free(hist);
        s->hist = NULL;
        return fail(c, "deflate: cannot start the decoder");
    }
    s->z_ready = 1;
    s->raw = 1;
    s->hist = NULL;
    s->hist_len = 0;
    int rc = stage_feed(c, i, hist, len);
    free(hist);
    return rc;
}

/* Keeps up to DEFLATE_HISTORY bytes while the zlib reading has produced
 * nothing; returns how many of n bytes were kept (the zlib reading runs on
 * those only, so whether the raw retry is possible depends on where the
 * zlib reading fails, never on how the input was cut). */
static size_t deflate_keep(struct stage *s, const uint8_t *p, size_t n)
{
    if (s->hist == NULL)
        s->hist = malloc(DEFLATE_HISTORY);
    if (s->hist == NULL || s->hist_len == DEFLATE_HISTORY) {
        free(s->hist);
        s->hist = NULL;
        s->hist_lost = 1;
        return n;
    }
    size_t m = n < DEFLATE_HISTORY - s->hist_len ? n : DEFLATE_HISTORY - s->hist_len;
    memcpy(s->hist + s->hist_len, p, m);
    s->hist_len += m;
    return m;
}

static int deflate_feed(struct codings *c, size_t i, const uint8_t *p, size_t n)
{
    struct stage *s = stage_at(c, i);

    s->inside = 1;
    while (n > 0) {
        size_t m = n, used;
        int tentative = !s->raw && !s->produced && !s->hist_lost;
        if (tentative)
            m = deflate_keep(s, p, n);
        int rc = inflate_run(c, i, p, m, &used);
        if (s->produced && s->hist) {
            free(s->hist); /* the zlib reading holds */
            s->hist = NULL;
        }
        if (rc == RUN_STOPPED)
            return c->failed ? -1 : 0;
        if (rc == Z_STREAM_END) {
            end_chain(c, i, n - used);
            return 0;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            if (!tentative || s->produced || s->hist == NULL)
                return fail(c, "deflate: %s", zmsg(s, rc));
            /* The history holds everything up to p + m: go on from there. */
            if (deflate_go_raw(c, i) != 0 || s->ended)
                return c->failed ? -1 : 0;
        }
        p += m;
        n -= m;
    }
    return 0;
}

static int br_feed(struct codings *c, size_t i, const uint8_t *p, size_t n)
{
    struct stage *s = stage_at(c, i);
    size_t avail_in = n;
    const uint8_t *next_in = p;

    s->inside = 1;
    for (;;) {
        size_t avail_out = CODINGS_PIECE;
        uint8_t *next_out = s->buf;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(s->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
        size_t got = CODINGS_PIECE - avail_out;
        if (got > 0 && pass_on(c, i, s->buf, got) != 0)
            return c->failed ? -1 : 0;
        switch (r) {
        case BROTLI_DECODER_RESULT_SUCCESS:
            end_chain(c, i, avail_in); /* one stream per body (curl) */
            return 0;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
            return 0;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
            break;
        default:
            return fail(c, "br: %s", BrotliDecoderErrorString(BrotliDecoderGetErrorCode(s->br)));
        }
    }
}

/* Runs libzstd over p[0..n) until the input is used up or a frame ends.
 * Returns -1 (failed), 0 (input used up, or the chain ended here) or 1 (a
 * frame ended after *used bytes). */
static int zstd_run(struct codings *c, size_t i, const uint8_t *p, size_t n, size_t *used)
{
    struct stage *s = stage_at(c, i);
    ZSTD_inBuffer in = {p, n, 0};

    for (;;) {
        ZSTD_outBuffer out = {s->buf, CODINGS_PIECE, 0};
        size_t r = ZSTD_decompressStream(s->zs, &out, &in);
        *used = in.pos;
        if (out.pos > 0 && pass_on(c, i, s->buf, out.pos) != 0)
            return -1;
        if (ZSTD_isError(r)) {
            /* After whole frames, bytes that are no frame at all end the
             * body (curl stops there); a frame that breaks is a problem. */
            if (s->members == 0 || ZSTD_getErrorCode(r) != ZSTD_error_prefix_unknown)
                return fail(c, "zstd: %s", ZSTD_getErrorName(r));
            end_chain(c, i, n - in.pos);
            return 0;
        }
        if (r == 0) {
            s->members++;
            s->inside = 0;
            return 1;
        }
        s->inside = 1;
        if (in.pos == in.size && out.pos < out.size)
            return 0;
    }
}

/* zstd: frames one after the other, each header handed over whole. With
 * flush set (end of body), what was gathered goes in as it is. */
static int zstd_feed_all(struct codings *c, size_t i, const uint8_t *p, size_t n, int flush)
{
    struct stage *s = stage_at(c, i);

    while ((n > 0 || (flush && s->zhead_len > 0)) && !s->ended) {
        size_t used, left;
        int rc;
        if (s->zstart) {
            size_t take = sizeof(s->zhead) - s->zhead_len;
            take = take < n ? take : n;
            if (take > 0) { /* p is NULL at the end of the body */
                memcpy(s->zhead + s->zhead_len, p, take);
                s->zhead_len += take;
                p += take;
                n -= take;
            }
            if (s->zhead_len < sizeof(s->zhead) && !flush)
                return 0;
            s->inside = 1;
            rc = zstd_run(c, i, s->zhead, s->zhead_len, &used);
            left = s->zhead_len - used;
            memmove(s->zhead, s->zhead + used, left);
            s->zhead_len = left;
            if (rc == 0 && !s->ended) {
                s->zstart = 0; /* inside the frame: the rest goes straight */
                continue;
            }
        } else {
            rc = zstd_run(c, i, p, n, &used);
            p += used;
            n -= used;
        }
        if (rc < 0)
            return -1;
        if (rc == 1)
            s->zstart = 1;
        if (s->ended) {
            c->ignored += n + s->zhead_len;
            s->zhead_len = 0;
        }
    }
    if (s->ended)
        c->ignored += n;
    return 0;
}

static int zstd_feed(struct codings *c, size_t i, const uint8_t *p, size_t n)
{
    return zstd_feed_all(c, i, p, n, 0);
}

static void emit(struct codings *c, const uint8_t *p, size_t n)
{
    c->delivered += n;
    while (n > 0 && c->out) {
        size_t m = n < CODINGS_PIECE ? n : CODINGS_PIECE; /* identity passes through */
        c->out(c->ctx, p, m);
        p += m;
        n -= m;
    }
}

static int stage_feed(struct codings *c, size_t i, const uint8_t *p, size_t n)
{
    if (c->failed)
        return -1;
    if (i == c->n) {
        emit(c, p, n);
        return 0;
    }
    if (stage_at(c, i)->ended) {
        if (i == c->end_stage)
            c->ignored += n;
        return 0;
    }
    switch (stage_at(c, i)->kind) {
    case C_GZIP:
        return gzip_feed(c, i, p, n);
    case C_DEFLATE:
        return deflate_feed(c, i, p, n);
    case C_BR:
        return br_feed(c, i, p, n);
    case C_ZSTD:
        return zstd_feed(c, i, p, n);
    }
    return fail(c, "unknown stage");
}

struct codings *codings_new(const struct codings_limits *lim)
{
    struct codings *c = calloc(1, sizeof(*c));

    if (c)
        c->lim = *lim;
    return c;
}

static int stage_init(struct stage *s, enum coding kind)
{
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->buf = malloc(CODINGS_PIECE);
    if (s->buf == NULL)
        return -1;
    switch (kind) {
    case C_GZIP:
        s->z_ready = inflateInit2(&s->z, 32 + MAX_WBITS) == Z_OK;
        return s->z_ready ? 0 : -1;
    case C_DEFLATE:
        s->z_ready = inflateInit(&s->z) == Z_OK;
        return s->z_ready ? 0 : -1;
    case C_BR:
        s->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
        return s->br ? 0 : -1;
    case C_ZSTD:
        s->zs = ZSTD_createDStream();
        s->zstart = 1;
        if (s->zs == NULL)
            return -1;
        if (ZSTD_isError(ZSTD_DCtx_setParameter(s->zs, ZSTD_d_windowLogMax, CODINGS_ZSTD_WLOG)))
            return -1;
        return 0;
    }
    return -1;
}

static void stage_free(struct stage *s)
{
    if (s->z_ready)
        inflateEnd(&s->z);
    if (s->br)
        BrotliDecoderDestroyInstance(s->br);
    if (s->zs)
        ZSTD_freeDStream(s->zs);
    free(s->hist);
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

/* One coding name; len bytes at name. */
static int add_one(struct codings *c, const char *name, size_t len)
{
    static const struct {
        const char *name;
        int kind; /* -1: decodes nothing */
    } known[] = {{"gzip", C_GZIP}, {"x-gzip", C_GZIP}, {"deflate", C_DEFLATE},
                 {"br", C_BR},     {"zstd", C_ZSTD},   {"identity", -1},
                 {"none", -1}};
    int kind = -2;

    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
        if (strlen(known[k].name) == len && strncasecmp(known[k].name, name, len) == 0)
            kind = known[k].kind;
    }
    if (kind == -2)
        return fail(c, "unsupported content coding: %.*s", (int)(len > 64 ? 64 : len), name);
    if (c->names++ >= CODINGS_MAX)
        return fail(c, "more than %d content codings", CODINGS_MAX);
    if (kind == -1)
        return 0;
    if (stage_init(&c->st[c->n], (enum coding)kind) != 0) {
        stage_free(&c->st[c->n]);
        return fail(c, "cannot start the %.*s decoder: out of memory", (int)len, name);
    }
    c->n++;
    return 0;
}

int codings_add(struct codings *c, const char *value, int is_transfer)
{
    const char *p = value;

    if (c->failed)
        return -1;
    if (c->in > 0)
        return fail(c, "codings added after the body began");
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *name = p;
        size_t len = 0;
        /* A name runs to the comma; blanks at its end are not part of it. */
        for (; *p && *p != ','; p++) {
            if (*p != ' ' && *p != '\t')
                len = (size_t)(p - name) + 1;
        }
        if (len == 0)
            continue;
        if (is_transfer && len == 7 && strncasecmp(name, "chunked", 7) == 0)
            continue;
        if (add_one(c, name, len) != 0)
            return -1;
    }
    return 0;
}

int codings_feed(struct codings *c, const uint8_t *in, size_t n, codings_out_fn out, void *ctx)
{
    if (c->failed)
        return -1;
    c->out = out;
    c->ctx = ctx;
    /* zlib counts input in uInt: hand it over in slices. */
    while (n > 0) {
        size_t m = n > (1u << 30) ? (1u << 30) : n;
        c->in += m;
        if (stage_feed(c, 0, in, m) != 0)
            return -1;
        in += m;
        n -= m;
    }
    return 0;
}

int codings_finish(struct codings *c)
{
    if (c->failed)
        return -1;
    /* Frame headers still gathered go in now, in decoding order. */
    for (size_t i = 0; i < c->n; i++) {
        struct stage *s = stage_at(c, i);
        if (s->kind == C_ZSTD && s->zhead_len > 0 && !s->ended &&
            zstd_feed_all(c, i, NULL, 0, 1) != 0)
            return -1;
    }
    /* Stages before the last one that ended decode nothing that counts. */
    for (size_t i = c->ended ? c->end_stage + 1 : 0; i < c->n; i++) {
        static const char *names[] = {"gzip", "deflate", "br", "zstd"};
        struct stage *s = stage_at(c, i);
        if (!s->inside)
            continue;
        /* A gzip member or zstd frame cut short after whole ones: clients
         * keep what came (Python, curl) and so did the chain; often it is
         * only padding. */
        if (s->members > 0) {
            c->ignored += s->kind == C_GZIP ? s->z.total_in : 1;
            continue;
        }
        return fail(c, "%s: stream truncated", names[s->kind]);
    }
    return 0;
}

const char *codings_problem(const struct codings *c)
{
    return c->problem;
}

size_t codings_count(const struct codings *c)
{
    return c->n;
}

uint64_t codings_ignored(const struct codings *c)
{
    return c->ignored;
}

uint64_t codings_out(const struct codings *c)
{
    return c->delivered;
}

void codings_free(struct codings *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        stage_free(&c->st[i]);
    free(c);
}
