/*
 * WebSocket frames to messages, one state machine per direction.
 *
 * The rules follow what receivers do (python3-websockets 10.4 was the ground
 * truth): a frame header is 2 to 14 bytes; RSV2/RSV3, RSV1 without
 * permessage-deflate or on a continuation or control frame, reserved
 * opcodes, fragmented or long control frames, a continuation without a
 * message and a new message inside a fragmented one all make the receiver
 * fail the connection, so they stop the direction with an anomaly. Wrong
 * masking (a receiver may or may not check it), frames after a close and
 * messages past max_message are anomalies the decoder reads through.
 *
 * A compressed message is inflated as its frames arrive, then the empty
 * stored block 00 00 ff ff that the sender removed is fed back (RFC 7692
 * 7.2.2). The inflate window survives from one message to the next unless
 * the sender's no_context_takeover was negotiated, in which case it restarts
 * with every message as the receiver's does. After a final deflate block
 * (BFINAL) python3-websockets drops the rest of the message and reads every
 * later message as empty; this decoder drops the rest of the message too
 * (an anomaly if it was more than the 00 00 ff ff tail) but reads the next
 * message as a new deflate stream, which hides nothing.
 */
#include "ws.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* The empty stored block the sender strips from each compressed message. */
static const uint8_t ws_tail[4] = {0x00, 0x00, 0xff, 0xff};

struct ws_dir {
    /* frame header being gathered */
    uint8_t hdr[14];
    size_t hlen;
    int in_payload;
    /* current frame */
    int fin, rsv1, opcode, masked;
    uint8_t mask[4];
    uint64_t left; /* payload bytes still to come */
    uint64_t off;  /* payload bytes seen, for the mask phase */
    /* current data message (msg_opcode 0: none) */
    int msg_opcode;
    int msg_compressed;
    int msg_over;             /* went past max_message: delivered, rest discarded */
    int msg_final;            /* the deflate stream ended inside this message */
    uint64_t msg_after_final; /* message bytes after that end */
    uint8_t *buf;
    size_t len, cap;
    /* current control frame */
    uint8_t ctl[125];
    size_t ctl_len;
    /* inflate state of this sender */
    z_stream z;
    int z_ready;
    int no_takeover;
    int stopped;
    int closed;      /* a close frame was seen */
    int warned_mask; /* anomalies said once per direction */
    int warned_after_close;
};

struct ws_session {
    struct ws_callbacks cb;
    void *ctx;
    int deflate;
    uint64_t max_message;
    struct ws_dir d[2];
};

/* --- Sec-WebSocket-Extensions ------------------------------------------- */

static const char *ws_skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static int ws_token_char(int c)
{
    return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?={}", c) == NULL;
}

/* Copies a token or quoted-string at *sp into out (cut to n - 1 bytes);
 * returns -1 when there is none. */
static int ws_read_word(const char **sp, char *out, size_t n)
{
    const char *s = *sp;
    size_t k = 0;

    if (*s == '"') {
        for (s++; *s != '"'; s++) {
            if (*s == '\0')
                return -1;
            if (*s == '\\' && s[1] != '\0')
                s++;
            if (k + 1 < n)
                out[k++] = *s;
        }
        s++;
    } else {
        if (!ws_token_char((unsigned char)*s))
            return -1;
        for (; ws_token_char((unsigned char)*s); s++)
            if (k + 1 < n)
                out[k++] = *s;
    }
    out[k] = '\0';
    *sp = s;
    return 0;
}

static int ws_bits(const char *v)
{
    if (strlen(v) == 1 && v[0] == '8')
        return 8;
    if (strlen(v) == 1 && v[0] == '9')
        return 9;
    if (strlen(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

/* One parameter of permessage-deflate; seen holds the ones already given. */
static int ws_deflate_param(const char *name, const char *value, int has_value, unsigned *seen,
                            struct ws_params *out)
{
    static const char *const names[] = {"client_no_context_takeover", "server_no_context_takeover",
                                        "client_max_window_bits", "server_max_window_bits"};
    int k, bits;

    for (k = 0; k < 4; k++)
        if (strcasecmp(name, names[k]) == 0)
            break;
    if (k == 4 || (*seen & (1u << k)))
        return -1; /* unknown or repeated: clients refuse the handshake */
    *seen |= 1u << k;
    if (k < 2) {
        if (has_value)
            return -1;
        *(k == 0 ? &out->client_no_context_takeover : &out->server_no_context_takeover) = 1;
        return 0;
    }
    /* In a response both window sizes carry a value. */
    bits = has_value ? ws_bits(value) : -1;
    if (bits < 0)
        return -1;
    *(k == 2 ? &out->client_max_window_bits : &out->server_max_window_bits) = bits;
    return 0;
}

/* One extension element at *sp, up to the next ',' or the end. */
static int ws_extension(const char **sp, struct ws_params *out)
{
    const char *s = ws_skip_ows(*sp);
    char name[64], pname[64], value[64];
    unsigned seen = 0;
    int deflate;

    if (*s == '"' || ws_read_word(&s, name, sizeof(name)) != 0)
        return -1;
    deflate = strcasecmp(name, "permessage-deflate") == 0;
    if (!deflate || out->deflate)
        return -1; /* an extension we cannot follow, or two deflates */
    out->deflate = 1;
    for (s = ws_skip_ows(s); *s == ';'; s = ws_skip_ows(s)) {
        int has_value = 0;

        s = ws_skip_ows(s + 1);
        if (ws_read_word(&s, pname, sizeof(pname)) != 0)
            return -1;
        s = ws_skip_ows(s);
        value[0] = '\0';
        if (*s == '=') {
            s = ws_skip_ows(s + 1);
            if (ws_read_word(&s, value, sizeof(value)) != 0)
                return -1;
            has_value = 1;
        }
        if (ws_deflate_param(pname, value, has_value, &seen, out) != 0)
            return -1;
    }
    *sp = s;
    return 0;
}

int ws_parse_extensions(const char *value, struct ws_params *out)
{
    const char *s = value;

    memset(out, 0, sizeof(*out));
    out->client_max_window_bits = 15;
    out->server_max_window_bits = 15;
    if (s == NULL)
        return 0;
    for (;;) {
        s = ws_skip_ows(s);
        if (*s == '\0')
            return 0;
        if (*s == ',') { /* empty list elements are allowed */
            s++;
            continue;
        }
        if (ws_extension(&s, out) != 0)
            return -1;
        s = ws_skip_ows(s);
        if (*s != ',' && *s != '\0')
            return -1;
    }
}

/* --- session -------------------------------------------------------------- */

struct ws_session *ws_new(const struct ws_params *params, uint64_t max_message,
                          const struct ws_callbacks *cb, void *ctx)
{
    struct ws_session *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cb = *cb;
    s->ctx = ctx;
    s->max_message = max_message > 0 ? max_message : 1;
    s->deflate = params != NULL && params->deflate;
    if (s->deflate) {
        s->d[0].no_takeover = params->client_no_context_takeover;
        s->d[1].no_takeover = params->server_no_context_takeover;
        /* Always a 32 KiB window, whatever max_window_bits says: zlib takes
         * a back-reference past a smaller window when it falls in output of
         * the same inflate call, so a receiver's verdict on it depends on
         * how its input was cut. The full window reads every such
         * reference, the same way however the stream arrives. */
        for (int i = 0; i < 2; i++) {
            if (inflateInit2(&s->d[i].z, -15) != Z_OK) {
                ws_free(s);
                return NULL;
            }
            s->d[i].z_ready = 1;
        }
    }
    return s;
}

void ws_free(struct ws_session *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        if (s->d[i].z_ready)
            inflateEnd(&s->d[i].z);
        free(s->d[i].buf);
    }
    free(s);
}

int ws_active(const struct ws_session *s, int dir)
{
    return !s->d[dir & 1].stopped;
}

static void ws_anomaly(struct ws_session *s, int dir, const char *why)
{
    if (s->cb.anomaly)
        s->cb.anomaly(s->ctx, dir, why);
}

/* A framing error: the receiver fails the connection, nothing more is read. */
static void ws_stop(struct ws_session *s, int dir, const char *why)
{
    s->d[dir].stopped = 1;
    ws_anomaly(s, dir, why);
}

static void ws_deliver(struct ws_session *s, int dir, int opcode, const uint8_t *p, size_t n)
{
    if (s->cb.message)
        s->cb.message(s->ctx, dir, opcode, p, n);
}

/* Adds message bytes, up to max_message; past it the message so far is
 * handed out once and the rest is dropped. -1 on allocation failure. */
static int ws_append(struct ws_session *s, int dir, const uint8_t *p, size_t n)
{
    struct ws_dir *d = &s->d[dir];
    size_t room;

    if (d->msg_over || n == 0)
        return 0;
    room = s->max_message - d->len < n ? (size_t)(s->max_message - d->len) : n;
    if (d->len + room > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        uint8_t *nb;

        while (cap < d->len + room)
            cap *= 2;
        if (cap > s->max_message)
            cap = (size_t)s->max_message;
        nb = realloc(d->buf, cap);
        if (nb == NULL)
            return -1;
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, p, room);
    d->len += room;
    if (room < n) {
        d->msg_over = 1;
        ws_anomaly(s, dir, "ws: message longer than the limit");
        ws_deliver(s, dir, d->msg_opcode, d->buf, d->len);
    }
    return 0;
}

/* Inflates compressed message bytes into the message. */
static int ws_inflate(struct ws_session *s, int dir, const uint8_t *p, size_t n)
{
    struct ws_dir *d = &s->d[dir];
    uint8_t out[16384];

    /* Past the limit the output is dropped, but inflating goes on: with
     * takeover the window must stay right, and either way an error must be
     * found at the same byte however the input was cut. */
    if (d->msg_final) {
        d->msg_after_final += p == ws_tail ? 0 : n;
        return 0;
    }
    d->z.next_in = (Bytef *)p;
    d->z.avail_in = (uInt)n;
    while (d->z.avail_in > 0) {
        int rc;
        size_t got;

        d->z.next_out = out;
        d->z.avail_out = sizeof(out);
        rc = inflate(&d->z, Z_SYNC_FLUSH);
        got = sizeof(out) - d->z.avail_out;
        if (ws_append(s, dir, out, got) != 0) {
            ws_stop(s, dir, "ws: out of memory");
            return -1;
        }
        if (rc == Z_STREAM_END) {
            /* A final block: receivers drop the rest of the message; the
             * next message is read as a new deflate stream. */
            inflateReset(&d->z);
            d->msg_final = 1;
            if (p != ws_tail)
                d->msg_after_final += d->z.avail_in;
            break;
        }
        if (rc == Z_BUF_ERROR && got == 0)
            break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            ws_stop(s, dir, "ws: invalid deflate data");
            return -1;
        }
    }
    return 0;
}

static void ws_message_end(struct ws_session *s, int dir)
{
    struct ws_dir *d = &s->d[dir];

    if (d->msg_compressed) {
        if (ws_inflate(s, dir, ws_tail, sizeof(ws_tail)) != 0)
            return;
        if (d->no_takeover)
            inflateReset(&d->z);
        if (d->msg_after_final > 0)
            ws_anomaly(s, dir, "ws: data after the final deflate block");
    }
    if (!d->msg_over)
        ws_deliver(s, dir, d->msg_opcode, d->buf, d->len);
    d->msg_opcode = 0;
    d->msg_compressed = 0;
    d->msg_over = 0;
    d->msg_final = 0;
    d->msg_after_final = 0;
    d->len = 0;
    /* A large message's buffer is not kept between messages. */
    if (d->cap > 65536) {
        free(d->buf);
        d->buf = NULL;
        d->cap = 0;
    }
}

static size_t ws_header_need(const uint8_t *h, size_t have)
{
    size_t need = 2;

    if (have < 2)
        return need;
    if ((h[1] & 0x7f) == 126)
        need += 2;
    else if ((h[1] & 0x7f) == 127)
        need += 8;
    if (h[1] & 0x80)
        need += 4;
    return need;
}

/* Checks a complete frame header; returns a reason to stop, or NULL. */
static const char *ws_header_check(struct ws_session *s, struct ws_dir *d, int rsv23)
{
    int control = d->opcode >= 8;

    if (rsv23)
        return "ws: reserved bit RSV2 or RSV3 set";
    if ((d->opcode > 2 && d->opcode < 8) || d->opcode > 10)
        return "ws: reserved opcode";
    if (d->rsv1 && !s->deflate)
        return "ws: RSV1 set without permessage-deflate";
    if (control) {
        if (!d->fin)
            return "ws: fragmented control frame";
        if (d->left > 125)
            return "ws: control frame longer than 125 bytes";
        if (d->rsv1)
            return "ws: RSV1 set on a control frame";
        return NULL;
    }
    if (d->opcode == WS_OP_CONTINUATION) {
        if (d->msg_opcode == 0)
            return "ws: continuation frame without a message";
        if (d->rsv1)
            return "ws: RSV1 set on a continuation frame";
    } else if (d->msg_opcode != 0) {
        return "ws: new message inside a fragmented message";
    }
    return NULL;
}

static void ws_header_done(struct ws_session *s, int dir)
{
    struct ws_dir *d = &s->d[dir];
    const uint8_t *h = d->hdr;
    size_t k = 2;
    const char *why;

    d->fin = h[0] >> 7;
    d->rsv1 = (h[0] >> 6) & 1;
    d->opcode = h[0] & 0x0f;
    d->masked = h[1] >> 7;
    d->left = h[1] & 0x7f;
    if (d->left == 126) {
        d->left = (uint64_t)h[2] << 8 | h[3];
        k = 4;
    } else if (d->left == 127) {
        d->left = 0;
        for (int i = 0; i < 8; i++)
            d->left = d->left << 8 | h[2 + i];
        k = 10;
        if (d->left >> 63) {
            ws_stop(s, dir, "ws: frame length over 2^63");
            return;
        }
    }
    if (d->masked)
        memcpy(d->mask, h + k, 4);
    d->off = 0;
    d->hlen = 0;
    why = ws_header_check(s, d, (h[0] >> 4) & 3);
    if (why != NULL) {
        ws_stop(s, dir, why);
        return;
    }
    if (d->masked != (dir == 0) && !d->warned_mask) {
        d->warned_mask = 1;
        ws_anomaly(s, dir, dir == 0 ? "ws: unmasked client frame" : "ws: masked server frame");
    }
    if (d->closed && !d->warned_after_close) {
        d->warned_after_close = 1;
        ws_anomaly(s, dir, "ws: frame after close");
    }
    if (d->opcode >= 8) {
        d->ctl_len = 0;
    } else if (d->opcode != WS_OP_CONTINUATION) {
        d->msg_opcode = d->opcode;
        d->msg_compressed = d->rsv1;
    }
    d->in_payload = 1;
}

/* The current frame's payload is complete. */
static void ws_frame_end(struct ws_session *s, int dir)
{
    struct ws_dir *d = &s->d[dir];

    d->in_payload = 0;
    if (d->opcode >= 8) {
        if (d->opcode == WS_OP_CLOSE)
            d->closed = 1;
        ws_deliver(s, dir, d->opcode, d->ctl, d->ctl_len);
        return;
    }
    if (d->fin)
        ws_message_end(s, dir);
}

/* Unmasked payload bytes of the current frame. */
static int ws_payload(struct ws_session *s, int dir, const uint8_t *p, size_t n)
{
    struct ws_dir *d = &s->d[dir];

    if (d->opcode >= 8) {
        memcpy(d->ctl + d->ctl_len, p, n); /* left <= 125 was checked */
        d->ctl_len += n;
        return 0;
    }
    if (d->msg_compressed)
        return ws_inflate(s, dir, p, n);
    if (ws_append(s, dir, p, n) != 0) {
        ws_stop(s, dir, "ws: out of memory");
        return -1;
    }
    return 0;
}

static size_t ws_feed_payload(struct ws_session *s, int dir, const uint8_t *p, size_t n)
{
    struct ws_dir *d = &s->d[dir];
    uint8_t tmp[4096];
    size_t take = d->left < n ? (size_t)d->left : n;
    size_t done = 0;

    while (done < take) {
        size_t m = take - done < sizeof(tmp) ? take - done : sizeof(tmp);

        for (size_t i = 0; i < m; i++)
            tmp[i] = p[done + i] ^ (d->masked ? d->mask[(d->off + i) & 3] : 0);
        d->off += m;
        d->left -= m;
        done += m;
        if (ws_payload(s, dir, tmp, m) != 0)
            return done;
    }
    if (d->left == 0)
        ws_frame_end(s, dir);
    return take;
}

void ws_feed(struct ws_session *s, int dir, const uint8_t *p, size_t n)
{
    struct ws_dir *d;

    dir &= 1;
    d = &s->d[dir];
    while (!d->stopped && (n > 0 || (d->in_payload && d->left == 0))) {
        if (d->in_payload) {
            size_t used = ws_feed_payload(s, dir, p, n);
            p += used;
            n -= used;
            continue;
        }
        size_t need = ws_header_need(d->hdr, d->hlen);
        while (d->hlen < need && n > 0) {
            d->hdr[d->hlen++] = *p++;
            n--;
            need = ws_header_need(d->hdr, d->hlen);
        }
        if (d->hlen < need)
            return;
        ws_header_done(s, dir);
    }
}
