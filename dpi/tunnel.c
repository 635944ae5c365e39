/*
 * What follows an HTTP/1.1 Upgrade, or an HTTP/2 prior-knowledge preface:
 * the two streams of the flow go to a WebSocket decoder (ws.c) or an
 * HTTP/2 decoder (h2.c) instead of the HTTP/1 parser.
 *
 * A WebSocket message is a file of its own: each complete (defragmented,
 * unmasked, inflated) data message is scanned whole when its last frame
 * arrives, so the packet that completes it is the one held. An HTTP/2
 * stream is an HTTP message like an HTTP/1 one: its body goes through the
 * same decoding, windows and scans (flow_msg_*), one message per stream and
 * direction, so a stream's DATA frames are reassembled in their own order
 * however streams interleave.
 *
 * What the decoders cannot read with certainty (bad frames, a connection
 * error, too many streams to follow) is an anomaly of layer "websocket" or
 * "http2".
 */
#include "dpi_internal.h"
#include "h2.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HTTP/2 streams followed at once per flow; more is an anomaly. */
#define TUNNEL_MAX_STREAMS 128

struct h2_msg {
    int32_t id;
    int dir;                          /* flow direction */
    struct http_request_info request; /* the stream's request, for its response */
    struct http_msg m;
};

struct dpi_tunnel {
    struct dpi_flow *f;
    int kind;
    int client_dir; /* flow direction of the client: dir 0 of the decoders */
    struct ws_session *ws;
    struct http_msg ws_msg[2]; /* facts of the Upgrade request, for alerts */
    struct h2_session *h2;
    struct h2_msg *streams[TUNNEL_MAX_STREAMS];
};

/* Decoder direction (0: client) <-> flow direction. */
static int flow_dir(const struct dpi_tunnel *t, int d)
{
    return d == 0 ? t->client_dir : !t->client_dir;
}

/* --- WebSocket ------------------------------------------------------------- */

static void ws_message(void *ctx, int dir, int opcode, const uint8_t *p, size_t n)
{
    struct dpi_tunnel *t = ctx;
    int fd = flow_dir(t, dir);

    if (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY)
        return;
    flow_scan_message(t->f, &t->ws_msg[fd], fd, p, n,
                      opcode == WS_OP_TEXT ? "websocket:text" : "websocket:binary");
}

static void ws_anomaly(void *ctx, int dir, const char *why)
{
    struct dpi_tunnel *t = ctx;

    flow_anomaly(t->f, flow_dir(t, dir), "websocket", why);
}

static const struct ws_callbacks ws_cb = {ws_message, ws_anomaly};

/* --- HTTP/2 ---------------------------------------------------------------- */

static struct h2_msg *stream_find(struct dpi_tunnel *t, int32_t id, int dir, int make)
{
    struct h2_msg **slot = NULL;

    for (unsigned i = 0; i < TUNNEL_MAX_STREAMS; i++) {
        struct h2_msg *s = t->streams[i];
        if (s && s->id == id && s->dir == dir)
            return s;
        if (s == NULL && slot == NULL)
            slot = &t->streams[i];
    }
    if (!make)
        return NULL;
    if (slot == NULL) {
        flow_anomaly(t->f, dir, "http2", "more concurrent streams than sluice follows");
        return NULL;
    }
    *slot = calloc(1, sizeof(**slot));
    if (*slot == NULL) {
        flow_anomaly(t->f, dir, "http2", "out of memory following a stream");
        return NULL;
    }
    (*slot)->id = id;
    (*slot)->dir = dir;
    return *slot;
}

static void stream_drop(struct dpi_tunnel *t, struct h2_msg *s)
{
    for (unsigned i = 0; i < TUNNEL_MAX_STREAMS; i++)
        if (t->streams[i] == s)
            t->streams[i] = NULL;
    if (s->m.open && s->m.has_body)
        body_release(flow_engine(t->f), &s->m.body);
    free(s);
}

static void copy_cut(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void h2_headers(void *ctx, int dir, int32_t id, const struct h2_head *hh)
{
    struct dpi_tunnel *t = ctx;
    int fd = flow_dir(t, dir);
    struct h2_msg *s = stream_find(t, id, fd, 1);
    struct http_head h;

    if (s == NULL)
        return;
    memset(&h, 0, sizeof(h));
    h.is_request = dir == 0 || hh->push;
    h.version_major = 2;
    h.version_minor = -1; /* "HTTP/2", as curl and RFC 9113 name it */
    h.method = hh->method;
    h.uri = hh->path;
    h.host = hh->authority;
    h.status = hh->status;
    h.content_type = hh->content_type;
    h.content_encoding = hh->content_encoding;
    h.content_length = hh->content_length;
    /* Every HTTP/2 message may carry DATA: its end is END_STREAM. */
    h.framing = HTTP_BODY_EOF;
    if (h.is_request) {
        copy_cut(s->request.method, sizeof(s->request.method), hh->method);
        copy_cut(s->request.uri, sizeof(s->request.uri), hh->path);
        copy_cut(s->request.host, sizeof(s->request.host), hh->authority);
    } else {
        /* The response takes the facts of its stream's request. */
        struct h2_msg *rq = stream_find(t, id, !fd, 0);
        if (rq)
            s->request = rq->request;
        h.request = &s->request;
    }
    flow_stream_context(t->f, (uint32_t)id);
    if (s->m.open)
        flow_msg_end(t->f, &s->m, fd, HTTP_END_OK, NULL); /* trailers are not a new message */
    flow_msg_head(t->f, &s->m, fd, &h);
    flow_stream_context(t->f, 0);
}

static void h2_data(void *ctx, int dir, int32_t id, const uint8_t *p, size_t n)
{
    struct dpi_tunnel *t = ctx;
    int fd = flow_dir(t, dir);
    struct h2_msg *s = stream_find(t, id, fd, 0);

    if (s == NULL) {
        flow_anomaly(t->f, fd, "http2", "DATA on a stream whose headers were not seen");
        return;
    }
    flow_stream_context(t->f, (uint32_t)id);
    flow_msg_body(t->f, &s->m, fd, p, n);
    flow_stream_context(t->f, 0);
}

static void h2_end(void *ctx, int dir, int32_t id, enum h2_end how)
{
    struct dpi_tunnel *t = ctx;
    int fd = flow_dir(t, dir);
    struct h2_msg *s = stream_find(t, id, fd, 0);

    if (s == NULL)
        return;
    flow_stream_context(t->f, (uint32_t)id);
    flow_msg_end(t->f, &s->m, fd, how == H2_END_COMPLETE ? HTTP_END_OK : HTTP_END_TRUNCATED,
                 how == H2_END_RESET ? "stream reset" : "stream ended early");
    flow_stream_context(t->f, 0);
    /* A request's facts stay until its response ended. */
    if (dir == 1 || how != H2_END_COMPLETE) {
        struct h2_msg *rq = stream_find(t, id, t->client_dir, 0);
        if (rq && rq != s && !rq->m.open)
            stream_drop(t, rq);
        stream_drop(t, s);
    }
}

void tunnel_judge_prefix(struct dpi_tunnel *t, int dir, uint32_t id)
{
    struct h2_msg *s = t->h2 ? stream_find(t, (int32_t)id, dir, 0) : NULL;

    if (s == NULL)
        return;
    flow_stream_context(t->f, id);
    flow_msg_judge_prefix(t->f, &s->m, dir);
    flow_stream_context(t->f, 0);
}

static void h2_anomaly(void *ctx, int dir, const char *why)
{
    struct dpi_tunnel *t = ctx;

    flow_anomaly(t->f, flow_dir(t, dir), "http2", why);
}

static const struct h2_callbacks h2_cb = {h2_headers, h2_data, h2_end, h2_anomaly};

/* --- life cycle -------------------------------------------------------------- */

struct dpi_tunnel *tunnel_new(struct dpi_flow *f, int kind, int client_dir,
                              const struct http_msg *upgrade, const char *ws_extensions,
                              const char *h2_settings, int h2_head)
{
    struct dpi_tunnel *t = calloc(1, sizeof(*t));
    const struct rules_policy *p = flow_engine(f)->policy;

    if (t == NULL) {
        flow_anomaly(f, client_dir, "http", "out of memory following a tunnel");
        return NULL;
    }
    t->f = f;
    t->kind = kind;
    t->client_dir = client_dir;
    if (kind == HTTP_TUNNEL_WEBSOCKET) {
        struct ws_params params;
        if (ws_parse_extensions(ws_extensions && *ws_extensions ? ws_extensions : NULL, &params) !=
            0) {
            flow_anomaly(f, !client_dir, "websocket", "WebSocket extensions sluice cannot follow");
            free(t);
            return NULL;
        }
        for (int d = 0; d < 2; d++) {
            t->ws_msg[d] = *upgrade;
            t->ws_msg[d].open = 0;
            t->ws_msg[d].has_body = 0;
            t->ws_msg[d].is_request = d == client_dir;
            snprintf(t->ws_msg[d].protocol, sizeof(t->ws_msg[d].protocol), "websocket");
        }
        t->ws = ws_new(&params, p->limits.body, &ws_cb, t);
    } else if (kind == HTTP_TUNNEL_H2C) {
        t->h2 = h2_new_upgrade(&h2_cb, t, h2_settings, h2_head);
        if (t->h2 == NULL) {
            flow_anomaly(f, client_dir, "http2", "an HTTP2-Settings value sluice cannot read");
            free(t);
            return NULL;
        }
    } else {
        t->h2 = h2_new(&h2_cb, t);
    }
    if (t->ws == NULL && t->h2 == NULL) {
        flow_anomaly(f, client_dir, "http", "out of memory following a tunnel");
        free(t);
        return NULL;
    }
    return t;
}

void tunnel_feed(struct dpi_tunnel *t, int dir, const uint8_t *p, size_t n)
{
    int d = dir == t->client_dir ? 0 : 1;

    if (t->ws)
        ws_feed(t->ws, d, p, n);
    else
        h2_feed(t->h2, d, p, n);
}

void tunnel_eof(struct dpi_tunnel *t, int dir)
{
    if (t->h2)
        h2_eof(t->h2, dir == t->client_dir ? 0 : 1);
}

int tunnel_active(const struct dpi_tunnel *t, int dir)
{
    int d = dir == t->client_dir ? 0 : 1;

    return t->ws ? ws_active(t->ws, d) : h2_active(t->h2, d);
}

void tunnel_free(struct dpi_tunnel *t)
{
    if (t == NULL)
        return;
    ws_free(t->ws);
    h2_free(t->h2);
    for (unsigned i = 0; i < TUNNEL_MAX_STREAMS; i++)
        if (t->streams[i])
            stream_drop(t, t->streams[i]);
    free(t);
}
