/*
 * Fuzz target: the h2c decoder (libnghttp2 underneath) on two streams.
 *
 * Input layout (seeds in corpus/h2 follow it):
 *   byte 0        low 5 bits: number of control bytes; bit 5: an Upgrade
 *                 session (HTTP2-Settings "AAMAAABkAAQCAAAAAAIAAAAA") instead
 *                 of prior knowledge; bit 6: end both streams at the end
 *   control bytes one piece each: bit 7 the direction, bits 0-6 its length
 *                 code (1..64, then powers of two)
 *   2 bytes       length of stream 0 (little endian), cut to what is left
 *   the bytes of stream 0 (client to server), then those of stream 1
 * The pieces go in the order given, then what is left of stream 0, then of
 * stream 1. Each input runs twice, the second time with every piece cut
 * into slices of one to three bytes: both runs must tell the same story,
 * and each must keep the contract of h2.h.
 */
#include "h2.h"

#include <stdlib.h>
#include <string.h>

#define SEEN 256

struct record {
    uint64_t hash;
    struct {
        int32_t id;
        uint8_t dir, ended;
        uint64_t body; /* hash of the DATA bytes so far */
    } seen[SEEN];
    int nseen;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
    return s ? mix(h, s, strlen(s) + 1) : mix(h, "\xff", 1);
}

/* The (dir, id) entry; NULL when the table is full (checks skipped). */
static int find(struct record *r, int dir, int32_t id, int add)
{
    for (int i = 0; i < r->nseen; i++)
        if (r->seen[i].dir == dir && r->seen[i].id == id)
            return i;
    if (!add || r->nseen == SEEN)
        return -1;
    r->seen[r->nseen].dir = (uint8_t)dir;
    r->seen[r->nseen].id = id;
    r->seen[r->nseen].ended = 0;
    r->seen[r->nseen].body = 0xcbf29ce484222325ULL;
    return r->nseen++;
}

static void on_headers(void *ctx, int dir, int32_t id, const struct h2_head *h)
{
    struct record *r = ctx;
    int i = find(r, dir, h->push ? -id : id, 1);

    if (dir < 0 || dir > 1 || id <= 0 || (i >= 0 && r->seen[i].ended))
        abort();
    if (h->status < 0 || h->status > 999 || h->content_length < -1)
        abort();
    r->hash = mix(r->hash, "H", 1);
    r->hash = mix(r->hash, &dir, sizeof(dir));
    r->hash = mix(r->hash, &id, sizeof(id));
    r->hash = mix(r->hash, &h->push, sizeof(h->push));
    r->hash = mix_str(r->hash, h->method);
    r->hash = mix_str(r->hash, h->path);
    r->hash = mix_str(r->hash, h->authority);
    r->hash = mix_str(r->hash, h->scheme);
    r->hash = mix(r->hash, &h->status, sizeof(h->status));
    r->hash = mix_str(r->hash, h->content_type);
    r->hash = mix_str(r->hash, h->content_encoding);
    r->hash = mix(r->hash, &h->content_length, sizeof(h->content_length));
}

static void on_data(void *ctx, int dir, int32_t id, const uint8_t *p, size_t n)
{
    struct record *r = ctx;
    int i = find(r, dir, id, 1);

    if (dir < 0 || dir > 1 || id <= 0 || n == 0 || (i >= 0 && r->seen[i].ended))
        abort();
    /* DATA is hashed as one stream per (dir, id): how it was cut must not
     * show. Past the table's size the bytes are only read. */
    if (i >= 0)
        r->seen[i].body = mix(r->seen[i].body, p, n);
    else
        (void)mix(0, p, n);
}

static void on_end(void *ctx, int dir, int32_t id, enum h2_end how)
{
    struct record *r = ctx;
    int i = find(r, dir, id, 0);

    if (dir < 0 || dir > 1 || id <= 0 || how < H2_END_COMPLETE || how > H2_END_TRUNCATED)
        abort();
    if (i >= 0) {
        if (r->seen[i].ended)
            abort(); /* one end per half */
        r->seen[i].ended = 1;
        r->hash = mix(r->hash, &r->seen[i].body, sizeof(r->seen[i].body));
    }
    r->hash = mix(r->hash, "E", 1);
    r->hash = mix(r->hash, &dir, sizeof(dir));
    r->hash = mix(r->hash, &id, sizeof(id));
    r->hash = mix(r->hash, &how, sizeof(how));
}

static void on_anomaly(void *ctx, int dir, const char *why)
{
    struct record *r = ctx;

    if (dir < 0 || dir > 1 || why == NULL || why[0] == '\0')
        abort();
    r->hash = mix(r->hash, "A", 1);
    r->hash = mix_str(r->hash, why);
}

static const struct h2_callbacks callbacks = {on_headers, on_data, on_end, on_anomaly};

static size_t length_code(unsigned code)
{
    return code < 64 ? code + 1 : (size_t)1 << ((code - 64) % 16);
}

static void feed(struct h2_session *s, int dir, const uint8_t *p, size_t n, int slices)
{
    for (size_t off = 0, k = 0; off < n; k++) {
        size_t m = slices ? 1 + (k * 7 + off) % 3 : n - off;
        if (m > n - off)
            m = n - off;
        h2_feed(s, dir, p + off, m);
        off += m;
    }
}

struct stream {
    const uint8_t *p;
    size_t n;
};

static uint64_t run(const uint8_t *ctl, size_t nctl, unsigned flags, struct stream s0,
                    struct stream s1, int slices)
{
    static struct record r;
    struct stream st[2] = {s0, s1};
    struct h2_session *s;

    memset(&r, 0, sizeof(r));
    r.hash = 0xcbf29ce484222325ULL;
    s = (flags & 1) ? h2_new_upgrade(&callbacks, &r, "AAMAAABkAAQCAAAAAAIAAAAA", 0)
                    : h2_new(&callbacks, &r);
    if (s == NULL)
        abort();
    for (size_t i = 0; i < nctl; i++) {
        int dir = ctl[i] >> 7;
        size_t len = length_code(ctl[i] & 0x7f);
        len = len < st[dir].n ? len : st[dir].n;
        feed(s, dir, st[dir].p, len, slices);
        st[dir].p += len;
        st[dir].n -= len;
    }
    feed(s, 0, st[0].p, st[0].n, slices);
    feed(s, 1, st[1].p, st[1].n, slices);
    if (flags & 2) {
        h2_eof(s, 0);
        h2_eof(s, 1);
        if (h2_active(s, 0) || h2_active(s, 1))
            abort();
    }
    r.hash = mix(r.hash, "S", 1);
    for (int i = 0; i < r.nseen; i++)
        r.hash = mix(r.hash, &r.seen[i].body, sizeof(r.seen[i].body));
    for (int d = 0; d < 2; d++) {
        int a = h2_active(s, d);
        r.hash = mix(r.hash, &a, sizeof(a));
    }
    h2_free(s);
    return r.hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nctl, n0;
    unsigned flags;
    struct stream s0, s1;

    if (size < 1)
        return 0;
    nctl = data[0] & 0x1f;
    flags = (data[0] >> 5) & 3;
    if (size < 1 + nctl + 2)
        return 0;
    n0 = (size_t)data[1 + nctl] | (size_t)data[2 + nctl] << 8;
    s0.p = data + 3 + nctl;
    s0.n = size - 3 - nctl;
    if (n0 < s0.n)
        s0.n = n0;
    s1.p = s0.p + s0.n;
    s1.n = size - 3 - nctl - s0.n;
    if (run(data + 1, nctl, flags, s0, s1, 0) != run(data + 1, nctl, flags, s0, s1, 1))
        abort();
    return 0;
}
