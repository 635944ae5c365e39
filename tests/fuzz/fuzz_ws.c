/*
 * Fuzz target: the WebSocket decoder on two streams.
 *
 * Input layout (seeds in corpus/ws follow it):
 *   byte 0   bit 0: permessage-deflate; bit 1: client_no_context_takeover;
 *            bit 2: server_no_context_takeover; bits 3-5: client window
 *            bits - 8; bits 6-7 with byte 1 bit 0: server window bits - 8
 *   byte 1   bits 1-7: max_message is 16 times this plus 1
 *   2 bytes  length of stream 0 (little endian), cut to what is left
 *   the bytes of stream 0 (client to server), then those of stream 1
 * Each input runs twice: each stream fed whole, then in pieces of one to
 * three bytes; both runs must hand out the same messages and anomalies,
 * and every message must keep the contract of ws.h.
 */
#include "ws.h"

#include <stdlib.h>
#include <string.h>

struct record {
    uint64_t hash;
    uint64_t max;
    int stopped[2];
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void on_message(void *ctx, int dir, int opcode, const uint8_t *p, size_t n)
{
    struct record *r = ctx;

    if (dir < 0 || dir > 1 || r->stopped[dir])
        abort();
    if (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY && opcode != WS_OP_CLOSE &&
        opcode != WS_OP_PING && opcode != WS_OP_PONG)
        abort();
    if ((opcode >= 8 ? n > 125 : n > r->max) || (n > 0 && p == NULL))
        abort();
    r->hash = mix(r->hash, &dir, sizeof(dir));
    r->hash = mix(r->hash, &opcode, sizeof(opcode));
    r->hash = mix(r->hash, &n, sizeof(n));
    r->hash = mix(r->hash, p, n);
}

static void on_anomaly(void *ctx, int dir, const char *why)
{
    struct record *r = ctx;

    if (dir < 0 || dir > 1 || why == NULL || why[0] == '\0' || r->stopped[dir])
        abort();
    r->hash = mix(r->hash, &dir, sizeof(dir));
    r->hash = mix(r->hash, why, strlen(why) + 1);
}

static const struct ws_callbacks callbacks = {on_message, on_anomaly};

static void feed(struct ws_session *s, struct record *r, int dir, const uint8_t *p, size_t n,
                 int pieces)
{
    for (size_t off = 0, k = 0; off < n; k++) {
        size_t m = pieces ? 1 + (k * 7 + off) % 3 : n - off;
        if (m > n - off)
            m = n - off;
        ws_feed(s, dir, p + off, m);
        off += m;
        /* Once stopped, a direction says nothing more. */
        r->stopped[dir] = !ws_active(s, dir);
    }
}

static uint64_t run(const struct ws_params *params, uint64_t max, const uint8_t *s0, size_t n0,
                    const uint8_t *s1, size_t n1, int pieces)
{
    struct record r = {0xcbf29ce484222325ULL, max, {0, 0}};
    struct ws_session *s = ws_new(params, max, &callbacks, &r);

    if (s == NULL)
        return 0;
    feed(s, &r, 0, s0, n0, pieces);
    feed(s, &r, 1, s1, n1, pieces);
    r.hash = mix(r.hash, r.stopped, sizeof(r.stopped));
    ws_free(s);
    return r.hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_params params;
    uint64_t max;
    size_t n0;

    if (size < 4)
        return 0;
    memset(&params, 0, sizeof(params));
    params.deflate = data[0] & 1;
    params.client_no_context_takeover = (data[0] >> 1) & 1;
    params.server_no_context_takeover = (data[0] >> 2) & 1;
    params.client_max_window_bits = 8 + ((data[0] >> 3) & 7);
    params.server_max_window_bits = 8 + ((data[0] >> 6) | (data[1] & 1) << 2);
    max = 1 + 16 * (uint64_t)(data[1] >> 1);
    n0 = (size_t)data[2] | (size_t)data[3] << 8;
    if (n0 > size - 4)
        n0 = size - 4;
    if (run(&params, max, data + 4, n0, data + 4 + n0, size - 4 - n0, 0) !=
        run(&params, max, data + 4, n0, data + 4 + n0, size - 4 - n0, 1))
        abort();
    return 0;
}
