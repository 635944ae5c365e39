/*
 * Fuzz target: the HTTP/1.x parser on two streams, with gaps and ends.
 *
 * Input layout (seeds in corpus/http follow it):
 *   byte 0        low 5 bits: number of control bytes; bit 5: end both streams
 *                 at the end; bit 6: feed the rest of stream 1 before stream 0;
 *                 bit 7: a capture that may begin mid-flow (no HTTP/0.9)
 *   control bytes one operation each: bit 7 the direction; bits 5-6 the kind
 *                 (0-1 feed, 2 gap, 3 end of stream when bits 0-4 are all set,
 *                 else feed); bits 0-4 a length code (1..16, then powers of two)
 *   2 bytes       length of stream 0 (little endian), cut to what is left
 *   the bytes of stream 0, then the bytes of stream 1
 * A gap skips its length in that stream's bytes, as lost packets would.
 * After the control bytes, what is left of each stream is fed whole.
 *
 * Each input runs twice: as described, then with every feed cut into pieces
 * of one to three bytes. Both runs must tell the same story (same events,
 * same body bytes, same anomalies, same final state), and each must keep the
 * contract of http.h; any breach aborts. In particular nothing stops
 * silently: a message that ends in error is followed by a raw message.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

struct record {
    uint64_t hash;
    uint64_t body_hash[2];
    uint64_t nbody[2];
    int open[2];   /* head delivered, end not yet */
    int silent[2]; /* no callback may come for this direction any more */
    int framing[2];
    int64_t cl[2];
    int role[2];     /* -1 unknown, else is_request of its heads */
    int need_raw[2]; /* the last message ended in error: a raw head is owed */
    int tunnel;
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

static uint64_t mix_int(uint64_t h, int64_t v)
{
    return mix(h, &v, sizeof(v));
}

static void on_head(void *ctx, int dir, const struct http_head *h)
{
    struct record *r = ctx;

    if (r->silent[dir] || r->open[dir] || (r->need_raw[dir] && !h->raw))
        abort();
    r->need_raw[dir] = 0;
    if (h->version_major < 0 || h->version_major > 99 || h->version_minor < 0 ||
        h->version_minor > 99)
        abort();
    if (h->raw || h->http09) {
        /* Synthetic: the rest of the stream, nothing parsed. */
        if (h->method || h->uri || h->status || h->framing != HTTP_BODY_EOF || h->tunnel ||
            h->content_length != -1 || h->host || h->content_encoding || h->transfer_coding ||
            (h->raw && h->http09) || (h->http09 && h->is_request))
            abort();
    } else if (h->is_request) {
        if (h->method == NULL || h->uri == NULL || h->request != NULL || h->method[0] == '\0')
            abort();
    } else if (h->status < 100 || h->status > 999 || h->method || h->uri) {
        abort();
    }
    if (h->transfer_coding && h->transfer_coding[0] == '\0')
        abort();
    if (r->role[dir] >= 0 && r->role[dir] != h->is_request)
        abort();
    if (r->role[!dir] >= 0 && r->role[!dir] == h->is_request)
        abort();
    r->role[dir] = h->is_request;
    if (h->content_length < -1 || (h->framing == HTTP_BODY_LENGTH && h->content_length < 0))
        abort();
    if (h->framing == HTTP_BODY_EOF && h->is_request && !h->raw)
        abort();
    if (h->tunnel && (h->is_request || h->framing != HTTP_BODY_NONE))
        abort();
    r->open[dir] = 1;
    r->framing[dir] = h->framing;
    r->cl[dir] = h->content_length;
    r->nbody[dir] = 0;
    r->body_hash[dir] = 0xcbf29ce484222325ULL;
    r->tunnel |= h->tunnel;

    uint64_t x = mix_int(r->hash, 'H' + 16 * dir);
    x = mix_int(x, h->is_request);
    x = mix_int(x, h->version_minor);
    x = mix_str(x, h->method);
    x = mix_str(x, h->uri);
    x = mix_int(x, h->status);
    x = mix_str(x, h->request ? h->request->method : NULL);
    x = mix_str(x, h->request ? h->request->uri : NULL);
    x = mix_str(x, h->request ? h->request->host : NULL);
    x = mix_str(x, h->request ? h->request->user_agent : NULL);
    x = mix_str(x, h->host);
    x = mix_str(x, h->user_agent);
    x = mix_str(x, h->content_type);
    x = mix_str(x, h->content_encoding);
    x = mix_int(x, h->content_length);
    x = mix_int(x, h->framing);
    x = mix_int(x, h->version_major);
    x = mix_int(x, h->raw + 2 * h->http09);
    x = mix_str(x, h->transfer_coding);
    r->hash = mix_int(x, h->tunnel);
}

static void on_body(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct record *r = ctx;

    if (r->silent[dir] || !r->open[dir] || r->framing[dir] == HTTP_BODY_NONE || n == 0)
        abort();
    r->nbody[dir] += n;
    if (r->framing[dir] == HTTP_BODY_LENGTH && r->nbody[dir] > (uint64_t)r->cl[dir])
        abort();
    /* Body bytes are hashed as one stream: how they were cut must not show. */
    r->body_hash[dir] = mix(r->body_hash[dir], p, n);
}

static void on_end(void *ctx, int dir, enum http_end how, const char *why)
{
    struct record *r = ctx;

    if (r->silent[dir])
        abort();
    if ((how == HTTP_END_OK) != (why == NULL) || (why && why[0] == '\0'))
        abort();
    if (how != HTTP_END_OK && how != HTTP_END_TRUNCATED && how != HTTP_END_ERROR)
        abort();
    if (!r->open[dir] && how == HTTP_END_OK)
        abort(); /* a message cut inside its head cannot have ended well */
    if (how == HTTP_END_OK && r->framing[dir] == HTTP_BODY_LENGTH &&
        r->nbody[dir] != (uint64_t)r->cl[dir])
        abort();
    if (how == HTTP_END_ERROR)
        r->need_raw[dir] = 1;
    r->open[dir] = 0;

    uint64_t x = mix_int(r->hash, 'E' + 16 * dir);
    x = mix_int(x, (int64_t)r->nbody[dir]);
    x = mix_int(x, (int64_t)r->body_hash[dir]);
    x = mix_int(x, how);
    r->hash = mix_str(x, why);
    r->nbody[dir] = 0;
    r->body_hash[dir] = 0;
}

static void on_anomaly(void *ctx, int dir, const char *why)
{
    struct record *r = ctx;

    if (r->silent[dir] || why == NULL || why[0] == '\0')
        abort();
    r->hash = mix_str(mix_int(r->hash, 'A' + 16 * dir), why);
}

static const struct http_callbacks callbacks = {on_head, on_body, on_end, on_anomaly};

struct stream {
    const uint8_t *p;
    size_t n;
};

static size_t length_code(unsigned code)
{
    return code < 16 ? code + 1 : (size_t)1 << (code - 12);
}

static void feed(struct http_parser *p, int dir, const uint8_t *d, size_t n, int pieces)
{
    if (!pieces) {
        http_parser_feed(p, dir, d, n);
        return;
    }
    for (size_t off = 0, k = 0; off < n; k++) {
        size_t m = 1 + (k * 7 + off) % 3;
        if (m > n - off)
            m = n - off;
        http_parser_feed(p, dir, d + off, m);
        off += m;
    }
}

/* Checks what the parser says about itself after every operation. */
static void check_state(struct http_parser *p, struct record *r, int *request_dir)
{
    int rd = http_parser_request_dir(p);

    if (rd < -1 || rd > 1 || (*request_dir >= 0 && rd != *request_dir))
        abort();
    *request_dir = rd;
    for (int d = 0; d < 2; d++) {
        const char *e = http_parser_error(p, d);
        if (e && e[0] == '\0')
            abort();
        if (r->need_raw[d])
            abort(); /* an error not followed by its raw message */
        if (r->role[d] >= 0 && rd >= 0 && (rd == d) != r->role[d])
            abort();
        if (!http_parser_active(p, d)) {
            if (r->open[d])
                abort(); /* stopped with a message left open */
            r->silent[d] = 1;
        }
    }
    int kind = 0;
    uint64_t start[2] = {0, 0};
    int tunnel = http_parser_tunnel(p, &kind, start);
    if (r->tunnel && (!tunnel || kind != r->tunnel))
        abort();
    if (tunnel && (kind <= HTTP_TUNNEL_NONE || kind > HTTP_TUNNEL_OTHER ||
                   http_parser_active(p, 0) || http_parser_active(p, 1)))
        abort();
}

static uint64_t run(const uint8_t *ctl, size_t nctl, unsigned flags, struct stream s0,
                    struct stream s1, int pieces)
{
    struct record r;
    struct http_parser *p;
    struct stream s[2] = {s0, s1};
    int request_dir = -1;
    uint64_t result;

    memset(&r, 0, sizeof(r));
    r.hash = 0xcbf29ce484222325ULL;
    r.role[0] = r.role[1] = -1;
    p = http_parser_new(&callbacks, &r);
    if (p == NULL)
        return 0;
    if (!(flags & 4))
        http_parser_from_start(p);

    for (size_t i = 0; i < nctl; i++) {
        int dir = ctl[i] >> 7;
        unsigned kind = (ctl[i] >> 5) & 3, code = ctl[i] & 0x1f;
        size_t len = length_code(code);

        if (kind == 3 && code == 0x1f) {
            http_parser_eof(p, dir);
        } else if (kind == 2) {
            http_parser_gap(p, dir, len);
            len = len < s[dir].n ? len : s[dir].n;
            s[dir].p += len;
            s[dir].n -= len;
        } else {
            len = len < s[dir].n ? len : s[dir].n;
            feed(p, dir, s[dir].p, len, pieces);
            s[dir].p += len;
            s[dir].n -= len;
        }
        check_state(p, &r, &request_dir);
    }
    for (int k = 0; k < 2; k++) {
        int dir = flags & 2 ? !k : k;
        feed(p, dir, s[dir].p, s[dir].n, pieces);
        check_state(p, &r, &request_dir);
    }
    if (flags & 1) {
        http_parser_eof(p, 0);
        http_parser_eof(p, 1);
        check_state(p, &r, &request_dir);
        /* After both ends nothing is open and nothing is parsed. */
        if (r.open[0] || r.open[1] || http_parser_active(p, 0) || http_parser_active(p, 1))
            abort();
    }

    result = r.hash;
    for (int d = 0; d < 2; d++) {
        result = mix_int(result, http_parser_active(p, d));
        result = mix_str(result, http_parser_error(p, d));
        result = mix_int(result, r.open[d]);
        result = mix_int(result, (int64_t)r.nbody[d]);
        result = mix_int(result, (int64_t)r.body_hash[d]);
    }
    result = mix_int(result, request_dir);
    {
        int kind = 0;
        uint64_t start[2] = {0, 0};
        result = mix_int(result, http_parser_tunnel(p, &kind, start));
        result = mix_int(result, kind);
        result = mix_int(result, (int64_t)start[0]);
        result = mix_int(result, (int64_t)start[1]);
    }
    http_parser_free(p);
    return result;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nctl, n0;
    unsigned flags;
    struct stream s0, s1;

    if (size < 1)
        return 0;
    nctl = data[0] & 0x1f;
    flags = (data[0] >> 5) & 7;
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
