/*
 * The content-coding chain on buffers built here with zlib, libbrotlienc
 * and libzstd: every coding, stacks, gzip members and zstd frames at every
 * split, the readings clients disagree on, corrupt and cut streams, bombs.
 */
#include <brotli/encode.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"
#include "codings.h"

static const char eicar[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/* A growable byte buffer. */
struct bytes {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL)
            abort();
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void drop(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static int contains(const struct bytes *b, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= b->n; i++) {
        if (memcmp(b->p + i, s, k) == 0)
            return 1;
    }
    return 0;
}

static int same(const struct bytes *a, const struct bytes *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

/* --- encoders ------------------------------------------------------------- */

/* wbits: 15+16 gzip, 15 zlib, -15 raw deflate. */
static struct bytes zenc(const struct bytes *in, int wbits, int level)
{
    struct bytes out = {0};
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    uLong bound = deflateBound(&z, in->n) + 64;
    out.p = malloc(bound);
    out.cap = bound;
    z.next_in = in->p;
    z.avail_in = (uInt)in->n;
    z.next_out = out.p;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    out.n = bound - z.avail_out;
    deflateEnd(&z);
    return out;
}

static struct bytes brenc(const struct bytes *in)
{
    struct bytes out = {0};
    size_t len = BrotliEncoderMaxCompressedSize(in->n) + 64;
    out.p = malloc(len);
    out.cap = len;
    if (!BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, in->n, in->p, &len,
                               out.p))
        abort();
    out.n = len;
    return out;
}

static struct bytes zstdenc(const struct bytes *in)
{
    struct bytes out = {0};
    size_t cap = ZSTD_compressBound(in->n);
    ZSTD_CCtx *z = ZSTD_createCCtx();
    out.p = malloc(cap);
    out.cap = cap;
    /* With a checksum, as the zstd tool writes frames. */
    if (z == NULL || ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1)))
        abort();
    out.n = ZSTD_compress2(z, out.p, cap, in->p, in->n);
    if (ZSTD_isError(out.n))
        abort();
    ZSTD_freeCCtx(z);
    return out;
}

/* Encodes with one coding by name. */
static struct bytes enc(const char *name, const struct bytes *in)
{
    if (strcmp(name, "gzip") == 0)
        return zenc(in, 31, 6);
    if (strcmp(name, "deflate") == 0)
        return zenc(in, 15, 6);
    if (strcmp(name, "raw") == 0)
        return zenc(in, -15, 6);
    if (strcmp(name, "br") == 0)
        return brenc(in);
    if (strcmp(name, "zstd") == 0)
        return zstdenc(in);
    abort();
}

static struct bytes str(const char *s)
{
    struct bytes b = {0};
    put(&b, s, strlen(s));
    return b;
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Text that compresses about 5 times, with EICAR in the middle. */
static struct bytes text(size_t n)
{
    static const char *words[] = {"alpha ", "beta ", "gamma\n",       "delta ", "sluice ",
                                  "body ",  "zeta ", "{\"k\": 42}, ", "eta ",   "theta\n"};
    struct bytes b = {0};
    while (b.n < n / 2) {
        const char *w = words[next_rand() % 10];
        put(&b, w, strlen(w));
    }
    put(&b, eicar, strlen(eicar));
    while (b.n < n) {
        char num[24];
        int k = snprintf(num, sizeof(num), "%llu ", (unsigned long long)(next_rand() % 100000));
        put(&b, num, (size_t)k);
        const char *w = words[next_rand() % 10];
        put(&b, w, strlen(w));
    }
    return b;
}

/* --- running the chain ---------------------------------------------------- */

static const struct codings_limits big = {UINT64_MAX / 2, 0, 0};

struct sink {
    struct bytes out;
    size_t largest;
};

static void collect(void *ctx, const uint8_t *p, size_t n)
{
    struct sink *s = ctx;
    put(&s->out, p, n);
    if (n > s->largest)
        s->largest = n;
}

struct result {
    struct bytes out;
    int rc_add, rc_feed, rc_finish;
    char problem[200];
    uint64_t ignored;
    size_t largest;
};

/* How the input is cut: 0 whole, 1 byte by byte, 2 random pieces, else
 * two pieces split at (mode - 3). */
static struct result decode_lim(const char *const *headers, size_t nh, const struct bytes *in,
                                size_t mode, const struct codings_limits *lim)
{
    struct result r;
    struct sink s = {{0}, 0};
    struct codings *c = codings_new(lim);

    memset(&r, 0, sizeof(r));
    if (c == NULL)
        abort();
    for (size_t i = 0; i < nh && r.rc_add == 0; i++)
        r.rc_add = codings_add(c, headers[i], 0);
    for (size_t off = 0; off < in->n && r.rc_feed == 0;) {
        size_t m = in->n - off;
        if (mode == 1)
            m = 1;
        else if (mode == 2)
            m = 1 + next_rand() % (next_rand() % 4 == 0 ? 5000 : 40);
        else if (mode >= 3)
            m = off < mode - 3 ? mode - 3 - off : in->n - off;
        if (m > in->n - off)
            m = in->n - off;
        r.rc_feed = codings_feed(c, in->p + off, m, collect, &s);
        off += m;
    }
    r.rc_finish = codings_finish(c);
    if (codings_problem(c))
        snprintf(r.problem, sizeof(r.problem), "%s", codings_problem(c));
    r.ignored = codings_ignored(c);
    CHECK_EQ_INT(codings_out(c), s.out.n);
    codings_free(c);
    r.out = s.out;
    r.largest = s.largest;
    return r;
}

static struct result decode(const char *const *headers, size_t nh, const struct bytes *in,
                            size_t mode)
{
    return decode_lim(headers, nh, in, mode, &big);
}

/* Decodes whole, byte by byte and in random pieces: same bytes each time,
 * equal to want, no problem. */
static void expect(const char *const *headers, size_t nh, const struct bytes *in,
                   const struct bytes *want)
{
    for (size_t mode = 0; mode < 3; mode++) {
        struct result r = decode(headers, nh, in, mode);
        CHECK_EQ_INT(r.rc_add, 0);
        CHECK_EQ_INT(r.rc_feed, 0);
        CHECK_EQ_INT(r.rc_finish, 0);
        CHECK(r.problem[0] == '\0');
        CHECK(same(&r.out, want));
        CHECK(r.largest <= CODINGS_PIECE);
        if (r.problem[0])
            fprintf(stderr, "  %s (mode %zu): %s\n", headers[0], mode, r.problem);
        drop(&r.out);
    }
}

/* Decoding fails with a problem that starts with prefix. */
static void expect_problem(const char *const *headers, size_t nh, const struct bytes *in,
                           const char *prefix)
{
    for (size_t mode = 0; mode < 3; mode++) {
        struct result r = decode(headers, nh, in, mode);
        CHECK(r.rc_add != 0 || r.rc_feed != 0 || r.rc_finish != 0);
        CHECK(strncmp(r.problem, prefix, strlen(prefix)) == 0);
        if (strncmp(r.problem, prefix, strlen(prefix)) != 0)
            fprintf(stderr, "  want \"%s\", got \"%s\"\n", prefix, r.problem);
        drop(&r.out);
    }
}

/* --- tests ---------------------------------------------------------------- */

static void test_single(void)
{
    struct bytes plain = text(300000);
    static const char *names[] = {"gzip", "deflate", "br", "zstd"};

    for (size_t i = 0; i < 4; i++) {
        struct bytes e = enc(names[i], &plain);
        const char *h[] = {names[i]};
        expect(h, 1, &e, &plain);
        drop(&e);
    }
    struct bytes g = enc("gzip", &plain);
    const char *xg[] = {"X-GZIP"};
    expect(xg, 1, &g, &plain);
    const char *ce[] = {"gzip, chunked"};
    struct result r = decode(ce, 1, &g, 0);
    CHECK(r.rc_add != 0); /* chunked is no content coding */
    drop(&r.out);
    drop(&g);

    const char *id[] = {"identity", " , none"};
    expect(id, 2, &plain, &plain);
    struct bytes empty = {0};
    const char *gz[] = {"gzip"};
    expect(gz, 1, &empty, &empty); /* no body at all is not a cut stream */
    drop(&plain);
}

static void test_transfer(void)
{
    struct bytes plain = str(eicar);
    struct bytes g = enc("gzip", &plain);
    struct codings *c = codings_new(&big);
    struct sink s = {{0}, 0};

    CHECK_EQ_INT(codings_add(c, "gzip, chunked", 1), 0);
    CHECK_EQ_INT(codings_count(c), 1);
    CHECK_EQ_INT(codings_feed(c, g.p, g.n, collect, &s), 0);
    CHECK_EQ_INT(codings_finish(c), 0);
    CHECK(same(&s.out, &plain));
    codings_free(c);
    drop(&s.out);
    drop(&g);
    drop(&plain);
}

static void test_stacked(void)
{
    struct bytes plain = text(100000);
    struct bytes a = enc("deflate", &plain), b = enc("gzip", &a);
    const char *one[] = {"deflate, gzip"};
    const char *two[] = {"deflate", "gzip"};
    expect(one, 1, &b, &plain);
    expect(two, 2, &b, &plain);
    const char *wrong[] = {"gzip, deflate"};
    struct result r = decode(wrong, 1, &b, 0);
    CHECK(r.rc_feed != 0);
    drop(&r.out);

    struct bytes gg = enc("gzip", &b);
    const char *three[] = {"deflate,gzip", "x-gzip"};
    expect(three, 2, &gg, &plain);

    /* Five deep, every kind: br then zstd then gzip then deflate then gzip. */
    struct bytes s1 = enc("br", &plain), s2 = enc("zstd", &s1), s3 = enc("gzip", &s2),
                 s4 = enc("deflate", &s3), s5 = enc("gzip", &s4);
    const char *five[] = {"br, zstd", "gzip", "deflate, gzip"};
    expect(five, 3, &s5, &plain);
    const char *five_id[] = {"br, zstd", "gzip", "identity", "deflate, gzip"};
    expect_problem(five_id, 4, &s5, "more than 5 content codings");
    const char *six[] = {"identity, identity, identity, identity, identity, identity"};
    expect_problem(six, 1, &plain, "more than 5 content codings");
    const char *ok5[] = {"identity, identity, identity, identity, gzip"};
    struct bytes g = enc("gzip", &plain);
    expect(ok5, 1, &g, &plain);
    drop(&g);
    drop(&a), drop(&b), drop(&gg), drop(&s1), drop(&s2), drop(&s3), drop(&s4), drop(&s5);
    drop(&plain);
}

/* Two gzip members (and two zstd frames) split at every byte: a member that
 * starts in another segment or chunk decodes like one in the same piece. */
static void test_members(void)
{
    struct bytes p1 = str("first member; "), p2 = str(eicar);
    struct bytes m1 = enc("gzip", &p1), m2 = enc("gzip", &p2);
    struct bytes both = {0}, want = {0};
    put(&both, m1.p, m1.n);
    put(&both, m2.p, m2.n);
    put(&want, p1.p, p1.n);
    put(&want, p2.p, p2.n);
    const char *gz[] = {"gzip"};
    expect(gz, 1, &both, &want);
    for (size_t k = 0; k <= both.n; k++) {
        struct result r = decode(gz, 1, &both, 3 + k);
        CHECK(r.problem[0] == '\0');
        CHECK(same(&r.out, &want));
        drop(&r.out);
    }
    /* An empty member in between, and a third member: all decoded. */
    struct bytes e = {0}, me = enc("gzip", &e), three = {0}, want3 = {0};
    put(&three, m1.p, m1.n);
    put(&three, me.p, me.n);
    put(&three, m2.p, m2.n);
    put(&three, m2.p, m2.n);
    put(&want3, p1.p, p1.n);
    put(&want3, p2.p, p2.n);
    put(&want3, p2.p, p2.n);
    expect(gz, 1, &three, &want3);

    struct bytes f1 = enc("zstd", &p1), f2 = enc("zstd", &p2), frames = {0};
    put(&frames, f1.p, f1.n);
    put(&frames, f2.p, f2.n);
    const char *zs[] = {"zstd"};
    expect(zs, 1, &frames, &want);
    for (size_t k = 0; k <= frames.n; k++) {
        struct result r = decode(zs, 1, &frames, 3 + k);
        CHECK(r.problem[0] == '\0');
        CHECK(same(&r.out, &want));
        drop(&r.out);
    }
    drop(&p1), drop(&p2), drop(&m1), drop(&m2), drop(&both), drop(&want), drop(&me);
    drop(&three), drop(&want3), drop(&f1), drop(&f2), drop(&frames);
}

/* What clients read although it is not what the label says. */
static void test_mislabelled(void)
{
    struct bytes plain = str(eicar);
    struct bytes z = enc("deflate", &plain), raw = enc("raw", &plain);
    const char *gz[] = {"gzip"}, *df[] = {"deflate"};

    expect(gz, 1, &z, &plain);   /* zlib labelled gzip: curl decodes it */
    expect(df, 1, &raw, &plain); /* raw deflate labelled deflate */

    /* Raw deflate whose first bytes pass zlib's header check: a stored
     * block of one byte (78 01 00 fe ff 'X'), then the rest. zlib reads a
     * valid header, then fails before any output; the raw reading holds. */
    struct bytes looks = {0}, want = str("X");
    static const uint8_t head[] = {0x78, 0x01, 0x00, 0xfe, 0xff, 'X'};
    put(&looks, head, sizeof(head));
    put(&looks, raw.p, raw.n);
    put(&want, eicar, strlen(eicar));
    expect(df, 1, &looks, &want);
    for (size_t k = 0; k <= looks.n; k++) {
        struct result r = decode(df, 1, &looks, 3 + k);
        CHECK(same(&r.out, &want));
        drop(&r.out);
    }
    /* A zlib header asking for a preset dictionary: Python retries raw. */
    struct bytes dict = {0};
    static const uint8_t dh[] = {0x78, 0xbb}; /* FDICT set, check ok */
    CHECK_EQ_INT((0x78 * 256 + 0xbb) % 31, 0);
    put(&dict, dh, 2);
    put(&dict, raw.p, raw.n);
    struct result r = decode(df, 1, &dict, 0);
    CHECK(r.problem[0] != '\0'); /* 78 bb is no valid raw block either */
    drop(&r.out);
    drop(&plain), drop(&z), drop(&raw), drop(&looks), drop(&want), drop(&dict);
}

/* Bytes after the end: ignored, counted, no problem (clients keep what came
 * before); a stream cut short is a problem unless whole members came. */
static void test_trailing_and_cut(void)
{
    struct bytes plain = text(20000);
    static const char *names[] = {"gzip", "deflate", "br", "zstd"};

    for (size_t i = 0; i < 4; i++) {
        const char *h[] = {names[i]};
        struct bytes e = enc(names[i], &plain), junk = {0};
        put(&junk, e.p, e.n);
        put(&junk, "garbage after the stream", 24);
        for (size_t mode = 0; mode < 3; mode++) {
            struct result r = decode(h, 1, &junk, mode);
            CHECK(r.problem[0] == '\0');
            CHECK(same(&r.out, &plain));
            CHECK(r.ignored > 0);
            drop(&r.out);
        }
        struct bytes cut = {0};
        put(&cut, e.p, e.n / 2);
        expect_problem(h, 1, &cut, names[i]);
        struct result r = decode(h, 1, &cut, 0);
        CHECK(r.rc_finish != 0);
        CHECK(strstr(r.problem, "truncated") != NULL);
        drop(&r.out);
        drop(&e), drop(&junk), drop(&cut);
    }
    /* After a whole gzip member, a cut one and a lone byte are padding. */
    struct bytes g = enc("gzip", &plain), tail = {0};
    put(&tail, g.p, g.n);
    put(&tail, g.p, g.n / 2);
    const char *gz[] = {"gzip"};
    struct result r = decode(gz, 1, &tail, 0);
    CHECK(r.problem[0] == '\0');
    CHECK(r.out.n >= plain.n && memcmp(r.out.p, plain.p, plain.n) == 0);
    drop(&r.out);
    drop(&tail);
    put(&tail, g.p, g.n);
    put(&tail, "\n", 1);
    expect(gz, 1, &tail, &plain);
    drop(&g), drop(&tail), drop(&plain);
}

static void test_corrupt(void)
{
    struct bytes plain = text(50000);
    static const char *names[] = {"gzip", "deflate", "br", "zstd"};

    /* br has no checksum: a flipped byte may decode to other bytes. */
    for (size_t i = 0; i < 4; i++) {
        const char *h[] = {names[i]};
        struct bytes e = enc(names[i], &plain);
        for (size_t at = e.n / 3; at < e.n && i != 2; at += e.n / 3) {
            e.p[at] ^= 0x55;
            expect_problem(h, 1, &e, names[i]);
            e.p[at] ^= 0x55;
        }
        drop(&e);
    }
    const char *h[] = {"gzip"};
    struct bytes junk = str("this is not compressed at all, surely not");
    expect_problem(h, 1, &junk, "gzip");
    const char *d[] = {"deflate"};
    expect_problem(d, 1, &junk, "deflate");
    const char *b[] = {"br"};
    expect_problem(b, 1, &junk, "br");
    const char *z[] = {"zstd"};
    expect_problem(z, 1, &junk, "zstd");
    const char *u[] = {"gzip, compress"};
    expect_problem(u, 1, &junk, "unsupported content coding: compress");
    const char *q[] = {"gzip;q=1"};
    expect_problem(q, 1, &junk, "unsupported content coding: gzip;q=1");
    drop(&junk);
    drop(&plain);
}

static struct bytes zeros_gz(size_t n)
{
    struct bytes z = {0};
    z.p = calloc(1, n);
    z.n = z.cap = n;
    struct bytes g = zenc(&z, 31, 9);
    drop(&z);
    return g;
}

static void test_bombs(void)
{
    const char *gz[] = {"gzip"};
    struct bytes g = zeros_gz(32 << 20);
    /* The defaults of the policy: 4 GiB, 100 times past 16 MiB. */
    const struct codings_limits def = {4ULL << 30, 100, 16 << 20};
    struct result r = decode_lim(gz, 1, &g, 0, &def);
    CHECK(strncmp(r.problem, "decompression bomb", 18) == 0);
    CHECK(r.out.n <= (16 << 20) + CODINGS_PIECE);
    drop(&r.out);

    const struct codings_limits small = {1 << 20, 0, 0};
    r = decode_lim(gz, 1, &g, 2, &small);
    CHECK(strncmp(r.problem, "decompression bomb", 18) == 0);
    CHECK_EQ_INT(r.out.n, 1 << 20);
    drop(&r.out);

    /* A bomb in the outer layer of a stack, its output never delivered. */
    struct bytes gg = zenc(&g, 31, 9);
    const char *two[] = {"gzip, gzip"};
    r = decode_lim(two, 1, &gg, 0, &small);
    CHECK(strncmp(r.problem, "decompression bomb", 18) == 0);
    drop(&r.out);

    /* Ordinary text (about 5 times) passes the ratio however long. */
    struct bytes t = text(24 << 20), tg = zenc(&t, 31, 6);
    r = decode_lim(gz, 1, &tg, 2, &def);
    CHECK(r.problem[0] == '\0');
    CHECK(same(&r.out, &t));
    drop(&r.out);
    drop(&g), drop(&gg), drop(&t), drop(&tg);
}

/* The 16 KiB gzip bomb followed by EICAR in the same member: either EICAR
 * is decoded or the chain calls it a bomb; never a silent stop. */
static void test_bomb_then_eicar(void)
{
    const char *gz[] = {"gzip"};
    const struct codings_limits def = {4ULL << 30, 100, 16 << 20};
    struct bytes z = {0};
    z.p = calloc(1, 16 << 20);
    z.n = z.cap = 16 << 20;
    put(&z, eicar, strlen(eicar));
    struct bytes g = zenc(&z, 31, 9);
    struct result r = decode_lim(gz, 1, &g, 0, &def);
    CHECK(contains(&r.out, eicar) || strncmp(r.problem, "decompression bomb", 18) == 0);
    fprintf(stderr, "bomb then EICAR: %zu encoded bytes, %zu decoded, %s\n", g.n, r.out.n,
            r.problem[0] ? r.problem : "no problem");
    drop(&r.out), drop(&z), drop(&g);
}

int main(void)
{
    test_single();
    test_transfer();
    test_stacked();
    test_members();
    test_mislabelled();
    test_trailing_and_cut();
    test_corrupt();
    test_bombs();
    test_bomb_then_eicar();
    CHECK_DONE();
}
