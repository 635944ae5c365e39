/*
 * Fuzz target: the HTTP/2 frame relay of the TLS proxy (tls/h2relay.c).
 *
 * Input layout (seeds in corpus/h2relay follow it):
 *   byte 0   piece size of the feeds, 1 + (byte % 32)
 *   byte 1   streams whose id & 7 equals (byte & 7) are blocked when a unit
 *            of theirs is inspected; bit 3: judge() blocks streams too
 *   2 bytes  length of direction 0 (little endian), cut to what is left
 *   the bytes of direction 0 (the client's: preface, then frames), then
 *   those of direction 1 (the server's frames)
 * The two directions are fed in alternating pieces, with held DATA released
 * by time now and then; the relay must never write more than a unit's bytes
 * plus its own frames per call, hold more than its limit, or keep anything
 * held once both directions ended.
 */
#include "h2relay.h"

#include <stdlib.h>
#include <string.h>

#define HOLD_LIMIT 4096

struct fuzz_io {
    uint8_t block_mask;
    int judge_blocks;
    uint32_t pending[8];
    size_t npending;
    size_t written[2];
};

static uint32_t stream_of(const uint8_t *p, size_t n)
{
    if (n < 9)
        return 0;
    return ((uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8]) & 0x7fffffffu;
}

static void maybe_block(struct fuzz_io *x, uint32_t stream)
{
    if (stream && (stream & 7) == (x->block_mask & 7) && x->npending < 8)
        x->pending[x->npending++] = stream;
}

static int fz_inspect(void *ctx, int dir, const uint8_t *p, size_t n)
{
    (void)dir;
    maybe_block(ctx, stream_of(p, n));
    return 0;
}

static size_t fz_blocked(void *ctx, uint32_t *ids, size_t max)
{
    struct fuzz_io *x = ctx;
    size_t n = x->npending < max ? x->npending : max;
    memcpy(ids, x->pending, n * sizeof(*ids));
    memmove(x->pending, x->pending + n, (x->npending - n) * sizeof(*ids));
    x->npending -= n;
    return n;
}

static int fz_out(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct fuzz_io *x = ctx;
    if (dir < 0 || dir > 1 || (n > 0 && p == NULL))
        abort();
    x->written[dir] += n;
    return 0;
}

static void fz_judge(void *ctx, int dir, uint32_t stream)
{
    struct fuzz_io *x = ctx;
    if (dir < 0 || dir > 1 || stream == 0)
        abort();
    if (x->judge_blocks)
        maybe_block(x, stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t piece = 1 + data[0] % 32;
    struct fuzz_io x = {.block_mask = data[1], .judge_blocks = (data[1] >> 3) & 1};
    size_t len0 = (size_t)data[2] | (size_t)data[3] << 8;
    data += 4;
    size -= 4;
    if (len0 > size)
        len0 = size;
    const uint8_t *in[2] = {data, data + len0};
    size_t left[2] = {len0, size - len0};
    struct h2r_io io = {&x, fz_inspect, fz_blocked, fz_out, fz_judge};
    struct h2r *r = h2r_new(HOLD_LIMIT);
    int failed[2] = {0, 0};
    uint64_t now = 0;

    if (r == NULL)
        return 0;
    while (left[0] || left[1]) {
        for (int d = 0; d < 2; d++) {
            size_t n = left[d] < piece ? left[d] : piece;
            const char *why = NULL;
            if (n && !failed[d] && h2r_input(r, d, in[d], n, &io, &why) == H2R_ERROR) {
                if (why == NULL)
                    abort();
                failed[d] = 1;
            }
            in[d] += n;
            left[d] -= n;
        }
        if (h2r_held(r) > HOLD_LIMIT + H2R_UNIT_MAX)
            abort();
        now += 300;
        h2r_now(r, now);
        if ((now / 300) % 4 == 0)
            h2r_release_older(r, now - 600, &io);
    }
    h2r_eof(r, 0, &io);
    h2r_eof(r, 1, &io);
    if (h2r_held(r) != 0)
        abort();
    h2r_free(r);
    return 0;
}
