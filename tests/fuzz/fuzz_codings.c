/*
 * Fuzz target: the content-coding chain (dpi/codings.c).
 *
 * Input layout (seeds in corpus/codings follow it):
 *   byte 0      low 3 bits: number of codings (0..7, so the limit of five
 *               is crossed); bit 3: the list is a Transfer-Encoding value;
 *               bits 4-7: the output limit, 2^(10 + v) bytes
 *   next bytes  one per coding, in the order applied: low 3 bits pick
 *               gzip, x-gzip, deflate, br, zstd, identity, chunked, or an
 *               unknown name
 *   the rest    the encoded body
 *
 * Each input runs whole, then cut into pieces of one to seven bytes: both
 * runs must succeed or fail alike, and when they succeed give the same
 * output (no ratio limit there, since the ratio is measured as bytes
 * arrive). A failed run may have given out less: libbrotlidec and libzstd
 * flush output when they run out of input, so how much of a corrupt stream
 * comes out before the error, and which stage of a stack fails first,
 * depend on the cuts (for curl as well). A third run
 * with a ratio limit only has to keep the contract: no output past the
 * limits, and a problem once -1 is returned.
 */
#include "codings.h"

#include <stdlib.h>
#include <string.h>

struct record {
    uint64_t hash;
    uint64_t n;
};

static void on_out(void *ctx, const uint8_t *p, size_t n)
{
    struct record *r = ctx;

    if (n == 0 || n > CODINGS_PIECE)
        abort();
    for (size_t i = 0; i < n; i++)
        r->hash = (r->hash ^ p[i]) * 0x100000001b3ULL;
    r->n += n;
}

struct outcome {
    struct record rec;
    char problem[200];
    uint64_t ignored;
    int failed;
};

static void run(const char *list, int is_transfer, const struct codings_limits *lim,
                const uint8_t *p, size_t n, int pieces, struct outcome *o)
{
    struct codings *c = codings_new(lim);
    int rc = 0;

    memset(o, 0, sizeof(*o));
    o->rec.hash = 0xcbf29ce484222325ULL;
    if (c == NULL)
        return;
    rc = codings_add(c, list, is_transfer);
    for (size_t off = 0, k = 0; off < n && rc == 0; k++) {
        size_t m = pieces ? 1 + (k * 5 + off) % 7 : n;
        if (m > n - off)
            m = n - off;
        rc = codings_feed(c, p + off, m, on_out, &o->rec);
        off += m;
    }
    if (rc == 0)
        rc = codings_finish(c);
    if (rc != 0 && codings_problem(c) == NULL)
        abort(); /* -1 always names its cause */
    if (rc != 0 && codings_feed(c, p, n, on_out, &o->rec) != -1)
        abort(); /* a failed chain stays failed */
    if (codings_out(c) != o->rec.n || o->rec.n > lim->max_out * (codings_count(c) ? 1 : n + 1))
        abort();
    o->failed = rc != 0;
    o->ignored = codings_ignored(c);
    if (codings_problem(c))
        strncpy(o->problem, codings_problem(c), sizeof(o->problem) - 1);
    codings_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *names[] = {"gzip", "X-Gzip",   "deflate", "br",
                                  "zstd", "identity", "chunked", "compress"};
    char list[128] = "";
    struct outcome a, b, r;

    if (size < 1)
        return 0;
    size_t k = data[0] & 7;
    int is_transfer = (data[0] >> 3) & 1;
    if (size < 1 + k)
        return 0;
    for (size_t i = 0; i < k; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, names[data[1 + i] & 7]);
    }
    const uint8_t *body = data + 1 + k;
    size_t n = size - 1 - k;
    struct codings_limits lim = {1ULL << (10 + (data[0] >> 4)), 0, 0};

    run(list, is_transfer, &lim, body, n, 0, &a);
    run(list, is_transfer, &lim, body, n, 1, &b);
    if (a.failed != b.failed)
        abort();
    if (!a.failed && (a.rec.hash != b.rec.hash || a.rec.n != b.rec.n))
        abort();

    lim.max_ratio = 3;
    lim.ratio_after = 100;
    run(list, is_transfer, &lim, body, n, 1, &r);
    return 0;
}
