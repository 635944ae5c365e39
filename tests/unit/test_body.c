/*
 * Body decoding on buffers: codings, pieces of any size, hashing, limits,
 * and what happens when the encoding lies.
 */
#include <openssl/evp.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "dpi_internal.h"

static struct dpi_engine *engine(const char *yaml, struct rules_policy **pp)
{
    char err[RULES_ERRLEN];
    *pp = rules_policy_parse("t.yaml", yaml, strlen(yaml), 0, err, sizeof(err));
    if (*pp == NULL) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return dpi_engine_new(*pp, NULL, NULL, err, sizeof(err));
}

static size_t zip(const void *in, size_t n, uint8_t *out, size_t cap, int wbits)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static void hex_sha(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned len;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Feeds in pieces of `step` bytes, finishes, returns the facts. */
static void run(struct dpi_engine *e, struct dpi_body *b, const char *coding, const uint8_t *p,
                size_t n, size_t step, struct dpi_body_facts *f)
{
    body_begin(e, b, coding, NULL, 0);
    for (size_t i = 0; i < n; i += step)
        body_feed(e, b, p + i, n - i < step ? n - i : step);
    body_finish(e, b, DPI_BODY_COMPLETE, f);
}

static void test_codings(void)
{
    struct rules_policy *p;
    struct dpi_engine *e = engine("", &p);
    static uint8_t plain[100000], enc[120000];
    char ref[65];
    struct dpi_body b;
    struct dpi_body_facts f;

    for (size_t i = 0; i < sizeof(plain); i++)
        plain[i] = (uint8_t)(i * 7 + i / 1000);
    hex_sha(plain, sizeof(plain), ref);

    static const struct {
        const char *coding;
        int wbits;
    } cases[] = {{"gzip", 31},     {"x-gzip", 31},         {"deflate", 15},
                 {"deflate", -15}, {"gzip, identity", 31}, {"GZIP", 31}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t n = zip(plain, sizeof(plain), enc, sizeof(enc), cases[k].wbits);
        size_t steps[] = {1, 2, 3, 1000, n};
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            if (steps[s] == 1 && k > 1)
                continue; /* one-byte feeding once per flavour is enough */
            run(e, &b, cases[k].coding, enc, n, steps[s], &f);
            CHECK_EQ_STR(f.sha256, ref);
            CHECK_EQ_INT(f.size, sizeof(plain));
            CHECK(f.problem == NULL);
            CHECK_EQ_INT(f.state, DPI_BODY_COMPLETE);
            CHECK_EQ_INT(b.keep.len, sizeof(plain));
            body_release(e, &b);
        }
    }
    /* identity, and an empty body */
    run(e, &b, NULL, plain, sizeof(plain), 4096, &f);
    CHECK_EQ_STR(f.sha256, ref);
    body_release(e, &b);
    run(e, &b, "gzip", plain, 0, 1, &f);
    CHECK_EQ_INT(f.size, 0);
    body_release(e, &b);
    struct dpi_engine_stats st;
    dpi_engine_stats(e, &st);
    CHECK_EQ_INT(st.body_bytes_held, 0);
    dpi_engine_free(e);
    rules_policy_unref(p);
}

static void test_gzip_members(void)
{
    struct rules_policy *p;
    struct dpi_engine *e = engine("", &p);
    uint8_t enc[512];
    char ref[65];
    struct dpi_body b;
    struct dpi_body_facts f;
    size_t n1 = zip("hello ", 6, enc, sizeof(enc), 31);
    size_t n2 = zip("world", 5, enc + n1, sizeof(enc) - n1, 31);

    run(e, &b, "gzip", enc, n1 + n2, 7, &f);
    hex_sha("hello world", 11, ref);
    CHECK_EQ_STR(f.sha256, ref);
    body_release(e, &b);
    dpi_engine_free(e);
    rules_policy_unref(p);
}

/* A body that claims an encoding it does not have is still scanned: the
 * bytes are kept as received. */
static void test_lying_encoding(void)
{
    struct rules_policy *p;
    struct dpi_engine *e = engine("", &p);
    const char *text = "not compressed at all, but the header says so";
    struct dpi_body b;
    struct dpi_body_facts f;

    run(e, &b, "gzip", (const uint8_t *)text, strlen(text), 5, &f);
    CHECK(f.problem != NULL);
    CHECK(b.keep.len > 0 && memmem(b.keep.data, b.keep.len, "header says", 11) != NULL);
    body_release(e, &b);

    run(e, &b, "br", (const uint8_t *)text, strlen(text), 5, &f);
    CHECK(f.problem != NULL && b.anomaly != NULL);
    CHECK(b.keep.len > 0 && memmem(b.keep.data, b.keep.len, "says so", 7) != NULL);
    body_release(e, &b);

    run(e, &b, "deflate", (const uint8_t *)"x", 1, 1, &f);
    CHECK(f.problem != NULL && b.anomaly != NULL);
    body_release(e, &b);

    /* A coding no client decodes: an anomaly, the bytes scanned as received. */
    run(e, &b, "compress", (const uint8_t *)text, strlen(text), 5, &f);
    CHECK(b.anomaly != NULL && strstr(b.anomaly, "compress") != NULL);
    CHECK_EQ_INT(b.keep.len, strlen(text));
    body_release(e, &b);

    /* The gzip transfer coding under a br content coding is undone first. */
    body_begin(e, &b, "identity", "gzip", 1);
    uint8_t enc[256];
    size_t n = zip(text, strlen(text), enc, sizeof(enc), 31);
    body_feed(e, &b, enc, n);
    body_finish(e, &b, DPI_BODY_COMPLETE, &f);
    CHECK(b.anomaly == NULL);
    CHECK_EQ_INT(b.keep.len, strlen(text));
    CHECK(f.encoding != NULL && strcmp(f.encoding, "identity, gzip") == 0);
    body_release(e, &b);
    dpi_engine_free(e);
    rules_policy_unref(p);
}

/* A small compressed bomb: decoded until the ratio past the body limit
 * says it is one, then an anomaly. */
static void test_bomb(void)
{
    struct rules_policy *p;
    struct dpi_engine *e = engine("limits:\n  body: 1MiB\n", &p);
    static uint8_t zeros[64 << 20], enc[1 << 20];
    struct dpi_body b;
    struct dpi_body_facts f;
    size_t n = zip(zeros, sizeof(zeros), enc, sizeof(enc), 31);

    CHECK(n < sizeof(enc));
    body_begin(e, &b, "gzip", NULL, 0);
    for (size_t i = 0; i < n; i += 4096)
        body_feed(e, &b, enc + i, n - i < 4096 ? n - i : 4096);
    body_finish(e, &b, DPI_BODY_COMPLETE, &f);
    CHECK(b.anomaly != NULL && strncmp(b.anomaly, "decompression bomb", 18) == 0);
    CHECK(b.size < sizeof(zeros));
    CHECK_EQ_INT(f.state, DPI_BODY_CUT);
    body_release(e, &b);
    dpi_engine_free(e);
    rules_policy_unref(p);
}

int main(void)
{
    test_codings();
    test_gzip_members();
    test_lying_encoding();
    test_bomb();
    CHECK_DONE();
}
