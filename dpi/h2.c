/*
 * HTTP/2 cleartext through two libnghttp2 sessions that only listen.
 *
 * side[0] is an nghttp2 server session fed with the client's bytes, side[1]
 * a client session fed with the server's. An endpoint's state depends on
 * what it sent as much as on what it read, so what one side reads is
 * mirrored into the other as if that session had sent it:
 *   - SETTINGS: submitted to the other session, which applies them when it
 *     reads the ACK, exactly as the real sender does (frame sizes, windows,
 *     HPACK table size, push, concurrency);
 *   - a request (new stream): submitted as a request with that stream ID to
 *     the client session, so the response is expected there;
 *   - the server's END_STREAM: submitted as a response to the server
 *     session, so the stream closes there and its memory goes;
 *   - RST_STREAM from either side, and PUSH_PROMISE, likewise.
 * Whatever the sessions write (these frames, ACKs, WINDOW_UPDATEs, GOAWAY)
 * is drained and dropped after each piece of input. Receive windows are
 * opened to the largest size and kept open by automatic window updates, so
 * flow control never hides DATA that a peer sent. HTTP messaging checks are off: every header
 * and every DATA byte is reported, whatever a strict peer would refuse.
 *
 * Anomalies: nghttp2's error messages (connection and stream errors), an
 * input nghttp2 refuses (bad preface, flood), and a reset or GOAWAY the
 * session would have sent without a message. After a connection error that
 * side stops, as the real receiver closes the connection.
 */
#include "h2.h"

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* nghttp2 flags a flood when more than 1000 ACKs wait to be sent: the input
 * is read in pieces small enough that the drain after each keeps it under. */
#define H2_CHUNK 8192

/* The error code of the resets this decoder mirrors; never on the wire. */
#define H2_MIRROR_RST 0x51ce0000u

static const uint8_t h2_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* The values of interest of the header block being read. */
struct h2_block {
    char method[32], scheme[16], authority[256], host[256], path[2048];
    char content_type[256], content_encoding[256];
    int status;
    int64_t content_length;
    int truncated;
    unsigned present; /* H2_HAS_* */
};

enum {
    H2_HAS_METHOD = 1,
    H2_HAS_SCHEME = 2,
    H2_HAS_AUTHORITY = 4,
    H2_HAS_HOST = 8,
    H2_HAS_PATH = 16,
    H2_HAS_CTYPE = 32,
    H2_HAS_CENC = 64,
};

struct h2_stream {
    int32_t id;
    uint8_t started[2]; /* headers or data of that direction were reported */
    uint8_t ended[2];
};

struct h2_side {
    struct h2_session *s;
    nghttp2_session *ng;
    int dir;
    /* Frame boundaries, so that nghttp2 always gets a frame header whole:
     * its CONTINUATION count goes up with every call that reads part of
     * one, so pieces of a few bytes would look like a flood. */
    size_t magic_left; /* bytes of the client preface still to pass */
    uint8_t fh[9];     /* frame header being gathered */
    size_t fh_len;
    size_t payload_left; /* of the current frame */
    int stopped;
    int stop_done; /* its open halves were ended */
    int eof;
    unsigned anomalies; /* said for this side so far */
    unsigned mark;      /* anomalies before the current piece of input */
    struct h2_block blk;
    char why[256];
};

struct h2_session {
    struct h2_callbacks cb;
    void *ctx;
    struct h2_side side[2];
    int mirror_off; /* while the upgrade sets both sessions up */
    int warned_streams;
    size_t nstreams;
    struct h2_stream streams[H2_MAX_STREAMS];
};

int h2_preface_match(const uint8_t *p, size_t n)
{
    size_t k = n < sizeof(h2_preface) ? n : sizeof(h2_preface);

    if (memcmp(p, h2_preface, k) != 0)
        return 0;
    return n >= sizeof(h2_preface) ? 1 : -1;
}

static void h2_anomaly(struct h2_side *sd, const char *why)
{
    sd->anomalies++;
    if (sd->s->cb.anomaly)
        sd->s->cb.anomaly(sd->s->ctx, sd->dir, why);
}

/* --- streams ---------------------------------------------------------------- */

static struct h2_stream *h2_stream_find(struct h2_session *s, int32_t id)
{
    for (size_t i = 0; i < s->nstreams; i++)
        if (s->streams[i].id == id)
            return &s->streams[i];
    return NULL;
}

static struct h2_stream *h2_stream_get(struct h2_side *sd, int32_t id)
{
    struct h2_session *s = sd->s;
    struct h2_stream *st = h2_stream_find(s, id);

    if (st != NULL)
        return st;
    if (s->nstreams == H2_MAX_STREAMS) {
        if (!s->warned_streams) {
            s->warned_streams = 1;
            h2_anomaly(sd, "h2: too many streams open at once to follow");
        }
        return NULL;
    }
    st = &s->streams[s->nstreams++];
    memset(st, 0, sizeof(*st));
    st->id = id;
    return st;
}

static void h2_stream_drop(struct h2_session *s, struct h2_stream *st)
{
    *st = s->streams[--s->nstreams];
}

/* Marks the half of dir begun; 0 when it cannot be tracked. */
static int h2_half_start(struct h2_side *sd, int32_t id)
{
    struct h2_stream *st = h2_stream_get(sd, id);

    if (st == NULL)
        return 0;
    st->started[sd->dir] = 1;
    return 1;
}

static void h2_half_end(struct h2_session *s, struct h2_stream *st, int dir, enum h2_end how)
{
    if (!st->started[dir] || st->ended[dir])
        return;
    st->ended[dir] = 1;
    if (s->cb.end)
        s->cb.end(s->ctx, dir, st->id, how);
}

/* Both halves are over: the stream is forgotten. */
static void h2_stream_done_if_over(struct h2_session *s, struct h2_stream *st)
{
    if (st->ended[0] && st->ended[1])
        h2_stream_drop(s, st);
}

static void h2_end(struct h2_side *sd, int32_t id, enum h2_end how)
{
    struct h2_stream *st = h2_stream_find(sd->s, id);

    if (st == NULL)
        return;
    if (!st->started[sd->dir]) /* END_STREAM on trailers only, say */
        st->started[sd->dir] = 1;
    h2_half_end(sd->s, st, sd->dir, how);
    h2_stream_done_if_over(sd->s, st);
}

/* A reset ends both halves. */
static void h2_reset(struct h2_session *s, int32_t id)
{
    struct h2_stream *st = h2_stream_find(s, id);

    if (st == NULL)
        return;
    for (int d = 0; d < 2; d++) {
        h2_half_end(s, st, d, H2_END_RESET);
        st->ended[d] = 1;
    }
    h2_stream_drop(s, st);
}

/* Every open half of dir ends with how. */
static void h2_end_all(struct h2_session *s, int dir, enum h2_end how)
{
    for (size_t i = 0; i < s->nstreams; i++) {
        struct h2_stream *st = &s->streams[i];
        h2_half_end(s, st, dir, how);
        st->ended[dir] = 1;
        if (st->ended[!dir]) {
            h2_stream_drop(s, st);
            i--;
        }
    }
}

/* --- mirroring into the other session ------------------------------------- */

static struct h2_side *h2_other(struct h2_side *sd)
{
    return &sd->s->side[!sd->dir];
}

static void h2_mirror_settings(struct h2_side *sd, const nghttp2_settings *f)
{
    struct h2_side *o = h2_other(sd);
    nghttp2_settings_entry iv[64];
    size_t n = 0;

    if (sd->s->mirror_off || o->stopped)
        return;
    for (size_t i = 0; i < f->niv && n < 63; i++) {
        nghttp2_settings_entry e = f->iv[i];
        /* A server session has no push to enable: the client's setting. */
        if (o->dir == 0 && e.settings_id == NGHTTP2_SETTINGS_ENABLE_PUSH)
            continue;
        /* Flow control is not judged: see h2_side_init. */
        if (e.settings_id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
            continue;
        if (e.settings_id == NGHTTP2_SETTINGS_HEADER_TABLE_SIZE && e.value > H2_MAX_HEADER_TABLE)
            e.value = H2_MAX_HEADER_TABLE;
        iv[n++] = e;
    }
    iv[n].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
    iv[n++].value = NGHTTP2_MAX_WINDOW_SIZE;
    if (nghttp2_submit_settings(o->ng, NGHTTP2_FLAG_NONE, iv, n) != 0)
        h2_anomaly(sd, "h2: SETTINGS the peer cannot take");
}

static void h2_mirror_request(struct h2_side *sd, int32_t id)
{
    static const nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, NGHTTP2_NV_FLAG_NONE},
    };
    struct h2_side *o = h2_other(sd);

    if (o->stopped || (uint32_t)id < nghttp2_session_get_next_stream_id(o->ng))
        return;
    if (nghttp2_session_set_next_stream_id(o->ng, id) != 0 ||
        nghttp2_submit_request(o->ng, NULL, nva, 3, NULL, NULL) != id)
        h2_anomaly(sd, "h2: a stream the server side cannot follow");
}

static void h2_mirror_response_end(struct h2_side *sd, int32_t id)
{
    static const nghttp2_nv nva[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
    };
    struct h2_side *o = h2_other(sd);

    /* Fails when that stream is gone there already: nothing to close. */
    if (!o->stopped)
        nghttp2_submit_response(o->ng, id, nva, 1, NULL);
}

static void h2_mirror_rst(struct h2_side *sd, int32_t id)
{
    struct h2_side *o = h2_other(sd);

    if (!o->stopped && nghttp2_session_find_stream(o->ng, id) != NULL)
        nghttp2_submit_rst_stream(o->ng, NGHTTP2_FLAG_NONE, id, H2_MIRROR_RST);
}

static void h2_mirror_push(struct h2_side *sd, int32_t assoc, int32_t promised)
{
    static const nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, NGHTTP2_NV_FLAG_NONE},
    };
    struct h2_side *o = h2_other(sd);

    if (o->stopped)
        return;
    if (nghttp2_session_set_next_stream_id(o->ng, promised) != 0 ||
        nghttp2_submit_push_promise(o->ng, NGHTTP2_FLAG_NONE, assoc, nva, 3, NULL) != promised)
        h2_anomaly(sd, "h2: a pushed stream the client side cannot follow");
}

/* --- header blocks ------------------------------------------------------------ */

static void h2_copy(struct h2_block *b, char *dst, size_t size, const uint8_t *v, size_t n)
{
    size_t len = strlen(dst);

    if (n > size - 1 - len) {
        n = size - 1 - len;
        b->truncated = 1;
    }
    memcpy(dst + len, v, n);
    dst[len + n] = '\0';
}

static int h2_name_is(const uint8_t *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp((const char *)name, want, n) == 0;
}

static int64_t h2_number(const uint8_t *v, size_t n)
{
    int64_t x = 0;

    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

static void h2_header(struct h2_block *b, const uint8_t *name, size_t nl, const uint8_t *v,
                      size_t vl)
{
    static const struct {
        const char *name;
        unsigned flag;
        size_t off, size;
    } fields[] = {
        {":method", H2_HAS_METHOD, offsetof(struct h2_block, method), 32},
        {":scheme", H2_HAS_SCHEME, offsetof(struct h2_block, scheme), 16},
        {":authority", H2_HAS_AUTHORITY, offsetof(struct h2_block, authority), 256},
        {"host", H2_HAS_HOST, offsetof(struct h2_block, host), 256},
        {":path", H2_HAS_PATH, offsetof(struct h2_block, path), 2048},
        {"content-type", H2_HAS_CTYPE, offsetof(struct h2_block, content_type), 256},
    };

    if (h2_name_is(name, nl, ":status")) {
        int64_t st = h2_number(v, vl);
        b->status = st >= 0 && st < 1000 ? (int)st : 0;
        return;
    }
    if (h2_name_is(name, nl, "content-length")) {
        if (b->content_length < 0)
            b->content_length = h2_number(v, vl);
        return;
    }
    if (h2_name_is(name, nl, "content-encoding")) {
        /* Every field counts: a receiver applies them all, in order. */
        if (b->present & H2_HAS_CENC)
            h2_copy(b, b->content_encoding, sizeof(b->content_encoding), (const uint8_t *)", ", 2);
        b->present |= H2_HAS_CENC;
        h2_copy(b, b->content_encoding, sizeof(b->content_encoding), v, vl);
        return;
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!h2_name_is(name, nl, fields[i].name) || (b->present & fields[i].flag))
            continue;
        b->present |= fields[i].flag;
        h2_copy(b, (char *)b + fields[i].off, fields[i].size, v, vl);
    }
}

static const char *h2_field(const struct h2_block *b, unsigned flag, const char *v)
{
    return (b->present & flag) ? v : NULL;
}

static void h2_report_headers(struct h2_side *sd, int32_t id, int push)
{
    const struct h2_block *b = &sd->blk;
    struct h2_head h;

    memset(&h, 0, sizeof(h));
    h.push = push;
    h.method = h2_field(b, H2_HAS_METHOD, b->method);
    h.path = h2_field(b, H2_HAS_PATH, b->path);
    h.scheme = h2_field(b, H2_HAS_SCHEME, b->scheme);
    h.authority =
        (b->present & H2_HAS_AUTHORITY) ? b->authority : h2_field(b, H2_HAS_HOST, b->host);
    h.status = b->status;
    h.content_type = h2_field(b, H2_HAS_CTYPE, b->content_type);
    h.content_encoding = h2_field(b, H2_HAS_CENC, b->content_encoding);
    h.content_length = b->content_length;
    h.truncated = b->truncated;
    if (sd->s->cb.headers)
        sd->s->cb.headers(sd->s->ctx, sd->dir, id, &h);
}

/* A HEADERS frame's block is complete: report it unless it is a 1xx
 * response or trailers. */
static void h2_on_headers(struct h2_side *sd, const nghttp2_frame *f)
{
    int32_t id = f->hd.stream_id;
    int report;

    if (sd->dir == 0) {
        report = f->headers.cat == NGHTTP2_HCAT_REQUEST;
    } else if (sd->blk.status >= 100 && sd->blk.status < 200) {
        report = 0;
    } else {
        report = sd->blk.status >= 200 || f->headers.cat != NGHTTP2_HCAT_HEADERS;
    }
    if (report && h2_half_start(sd, id))
        h2_report_headers(sd, id, 0);
    if (sd->dir == 0 && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        h2_mirror_request(sd, id);
}

/* --- nghttp2 callbacks ----------------------------------------------------- */

static int h2_cb_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_side *sd = ud;

    memset(&sd->blk, 0, sizeof(sd->blk));
    sd->blk.content_length = -1;
    return 0;
}

static int h2_cb_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                        const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
    struct h2_side *sd = ud;

    h2_header(&sd->blk, name, nl, v, vl);
    return 0;
}

static int h2_cb_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
                      void *ud)
{
    struct h2_side *sd = ud;
    struct h2_stream *st = h2_stream_find(sd->s, id);

    if (st == NULL || !st->started[sd->dir])
        h2_half_start(sd, id); /* data before any headers: still reported */
    if (n > 0 && sd->s->cb.data)
        sd->s->cb.data(sd->s->ctx, sd->dir, id, p, n);
    return 0;
}

static int h2_cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_side *sd = ud;
    int32_t id = f->hd.stream_id;

    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        h2_on_headers(sd, f);
        break;
    case NGHTTP2_DATA:
        break;
    case NGHTTP2_RST_STREAM:
        h2_mirror_rst(sd, id);
        h2_reset(sd->s, id);
        return 0;
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            h2_mirror_settings(sd, &f->settings);
        return 0;
    case NGHTTP2_PUSH_PROMISE: {
        int32_t promised = f->push_promise.promised_stream_id;
        struct h2_stream *st = h2_stream_get(sd, promised);
        if (st != NULL) /* the promised request is complete as it stands */
            st->started[0] = st->ended[0] = 1;
        h2_report_headers(sd, promised, 1);
        h2_mirror_push(sd, id, promised);
        return 0;
    }
    default:
        return 0;
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        h2_end(sd, id, H2_END_COMPLETE);
        if (sd->dir == 1)
            h2_mirror_response_end(sd, id);
    }
    return 0;
}

static int h2_cb_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct h2_side *sd = ud;
    struct h2_stream *st = h2_stream_find(sd->s, id);

    /* Closed in this session with this half still open: it was cut. */
    if (st != NULL && st->started[sd->dir] && !st->ended[sd->dir]) {
        h2_half_end(sd->s, st, sd->dir, H2_END_RESET);
        h2_stream_done_if_over(sd->s, st);
    }
    return 0;
}

static int h2_cb_error(nghttp2_session *ng, int lib_error, const char *msg, size_t len, void *ud)
{
    struct h2_side *sd = ud;

    snprintf(sd->why, sizeof(sd->why), "h2: %.*s", (int)len, msg);
    h2_anomaly(sd, sd->why);
    return 0;
}

/* A frame the session writes: only its own resets and GOAWAY matter. */
static int h2_cb_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_side *sd = ud;

    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR) {
        if (sd->anomalies == sd->mark) {
            /* nghttp2 says why in the GOAWAY's debug data. */
            char reason[128];
            size_t k;

            for (k = 0; k < f->goaway.opaque_data_len && k + 1 < sizeof(reason); k++) {
                uint8_t c = f->goaway.opaque_data[k];
                reason[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
            }
            reason[k] = '\0';
            snprintf(sd->why, sizeof(sd->why), "h2: connection error %s%s%s%s",
                     nghttp2_http2_strerror(f->goaway.error_code), k ? " (" : "", reason,
                     k ? ")" : "");
            h2_anomaly(sd, sd->why);
        }
        sd->stopped = 1;
    } else if (f->hd.type == NGHTTP2_RST_STREAM && f->rst_stream.error_code != H2_MIRROR_RST &&
               f->rst_stream.error_code != NGHTTP2_REFUSED_STREAM && sd->anomalies == sd->mark) {
        snprintf(sd->why, sizeof(sd->why), "h2: stream %d reset: %s", (int)f->hd.stream_id,
                 nghttp2_http2_strerror(f->rst_stream.error_code));
        h2_anomaly(sd, sd->why);
    }
    return 0;
}

/* --- sessions -------------------------------------------------------------------- */

static void h2_drain(struct h2_side *sd)
{
    const uint8_t *out;
    ssize_t n;

    if (sd->ng == NULL)
        return;
    while ((n = nghttp2_session_mem_send(sd->ng, &out)) > 0)
        ;
    if (n < 0 && !sd->stopped) {
        snprintf(sd->why, sizeof(sd->why), "h2: %s", nghttp2_strerror((int)n));
        h2_anomaly(sd, sd->why);
        sd->stopped = 1;
    }
}

static int h2_side_init(struct h2_session *s, int dir)
{
    struct h2_side *sd = &s->side[dir];
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    int rv;

    sd->s = s;
    sd->dir = dir;
    sd->magic_left = dir == 0 ? sizeof(h2_preface) : 0;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -1;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2_cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_cb_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_cb_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_cb_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, h2_cb_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cbs, h2_cb_error);
    /* Report what a lenient peer takes; a strict one would refuse more. */
    nghttp2_option_set_no_http_messaging(opt, 1);
    /* Closed streams are not kept for priorities: memory stays bounded. */
    nghttp2_option_set_no_closed_streams(opt, 1);
    /* Until the server's SETTINGS arrive, a client may open any number of
     * streams; the mirrored requests must all open. */
    nghttp2_option_set_peer_max_concurrent_streams(opt, (1u << 31) - 1);
    if (dir == 0)
        rv = nghttp2_session_server_new2(&sd->ng, cbs, sd, opt);
    else
        rv = nghttp2_session_client_new2(&sd->ng, cbs, sd, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        return -1;
    /* DATA is reported whatever the flow control windows: a receiver with
     * a larger window than this session would have read it. The connection
     * window is opened all the way here, each stream's with the first
     * SETTINGS ACK (h2_mirror_settings puts the largest initial window in
     * every mirrored SETTINGS). */
    return nghttp2_session_set_local_window_size(sd->ng, NGHTTP2_FLAG_NONE, 0,
                                                 NGHTTP2_MAX_WINDOW_SIZE) == 0
               ? 0
               : -1;
}

struct h2_session *h2_new(const struct h2_callbacks *cb, void *ctx)
{
    struct h2_session *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cb = *cb;
    s->ctx = ctx;
    if (h2_side_init(s, 0) != 0 || h2_side_init(s, 1) != 0) {
        h2_free(s);
        return NULL;
    }
    return s;
}

/* base64url (the standard alphabet and '=' padding taken too) into out;
 * returns the length, or -1. */
static ssize_t h2_base64url(const char *in, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0, len = strlen(in);

    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i], v;

        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-' || c == '+')
            v = 62;
        else if (c == '_' || c == '/')
            v = 63;
        else
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)n;
}

struct h2_session *h2_new_upgrade(const struct h2_callbacks *cb, void *ctx,
                                  const char *http2_settings, int head_request)
{
    uint8_t payload[6 * 64];
    ssize_t n = h2_base64url(http2_settings ? http2_settings : "", payload, sizeof(payload));
    struct h2_session *s;
    struct h2_stream *st;

    if (n < 0 || n % 6 != 0)
        return NULL;
    s = h2_new(cb, ctx);
    if (s == NULL)
        return NULL;
    /* Stream 1 is the upgraded request, half-closed on the client's side:
     * its request went as HTTP/1.1. The client session's upgrade submits
     * the same SETTINGS the server session takes as received. */
    s->mirror_off = 1;
    if (nghttp2_session_upgrade2(s->side[0].ng, payload, (size_t)n, head_request, NULL) != 0 ||
        nghttp2_session_upgrade2(s->side[1].ng, payload, (size_t)n, head_request, NULL) != 0) {
        h2_free(s);
        return NULL;
    }
    s->mirror_off = 0;
    st = h2_stream_get(&s->side[0], 1);
    st->started[0] = st->ended[0] = 1;
    h2_drain(&s->side[0]);
    h2_drain(&s->side[1]);
    return s;
}

void h2_free(struct h2_session *s)
{
    if (s == NULL)
        return;
    for (int d = 0; d < 2; d++)
        if (s->side[d].ng != NULL)
            nghttp2_session_del(s->side[d].ng);
    free(s);
}

int h2_active(const struct h2_session *s, int dir)
{
    const struct h2_side *sd = &s->side[dir & 1];
    return !sd->stopped && !sd->eof;
}

/* The side stopped: the real receiver closed the connection, so every
 * stream half it was reading is cut. */
static void h2_side_stop(struct h2_side *sd)
{
    sd->stopped = 1;
    if (!sd->stop_done) {
        sd->stop_done = 1;
        h2_end_all(sd->s, sd->dir, H2_END_RESET);
    }
}

/* Hands bytes to nghttp2, then drops what both sessions would send. */
static void h2_recv(struct h2_side *sd, const uint8_t *p, size_t n)
{
    struct h2_session *s = sd->s;
    ssize_t rv;

    sd->mark = sd->anomalies;
    rv = nghttp2_session_mem_recv(sd->ng, p, n);
    if (rv < 0) {
        snprintf(sd->why, sizeof(sd->why), "h2: %s", nghttp2_strerror((int)rv));
        h2_anomaly(sd, sd->why);
        sd->stopped = 1;
    }
    h2_drain(sd);
    h2_drain(h2_other(sd));
    for (int d = 0; d < 2; d++)
        if (s->side[d].stopped)
            h2_side_stop(&s->side[d]);
}

void h2_feed(struct h2_session *s, int dir, const uint8_t *p, size_t n)
{
    struct h2_side *sd = &s->side[dir & 1];

    while (n > 0 && !sd->stopped && !sd->eof) {
        size_t m;

        if (sd->magic_left > 0 || sd->payload_left > 0) {
            size_t *left = sd->magic_left > 0 ? &sd->magic_left : &sd->payload_left;
            m = n < *left ? n : *left;
            m = m < H2_CHUNK ? m : H2_CHUNK;
            *left -= m;
            h2_recv(sd, p, m);
        } else {
            m = 9 - sd->fh_len < n ? 9 - sd->fh_len : n;
            memcpy(sd->fh + sd->fh_len, p, m);
            sd->fh_len += m;
            if (sd->fh_len == 9) {
                sd->fh_len = 0;
                sd->payload_left = (size_t)sd->fh[0] << 16 | (size_t)sd->fh[1] << 8 | sd->fh[2];
                h2_recv(sd, sd->fh, 9);
            }
        }
        p += m;
        n -= m;
    }
}

void h2_eof(struct h2_session *s, int dir)
{
    struct h2_side *sd = &s->side[dir & 1];

    sd->eof = 1;
    h2_end_all(s, sd->dir, H2_END_TRUNCATED);
}
