/*
 * WebSocket (RFC 6455) with permessage-deflate (RFC 7692) over the two byte
 * streams of a flow that switched protocols (internal to dpi).
 *
 * The decoder reads frames the way the receiving endpoint does and hands out
 * each message whole: defragmented, unmasked and inflated, with the inflate
 * window kept from message to message unless the sender negotiated
 * no_context_takeover. The window is always 32 KiB: a back-reference past a
 * smaller negotiated window is read, never refused (see ws.c). Control frames (close, ping, pong)
 * are handed out too, since a close reason or a ping payload reaches the application.
 *
 * Direction 0 is the client's stream (client to server), 1 the server's.
 * Pure and incremental: bytes arrive in pieces of any size; memory per
 * direction is one message of at most max_message bytes plus an inflate
 * window. What a receiver cannot read with certainty is an anomaly; after a
 * framing error the receiver fails the connection, so that direction stops.
 */
#ifndef DPI_WS_H
#define DPI_WS_H

#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

/* What the 101 response's Sec-WebSocket-Extensions negotiated. */
struct ws_params {
    int deflate; /* permessage-deflate in use */
    int client_no_context_takeover;
    int server_no_context_takeover;
    int client_max_window_bits; /* 8..15, 15 when not negotiated (checked only) */
    int server_max_window_bits;
};

struct ws_callbacks {
    /* One complete message of dir: opcode WS_OP_TEXT or WS_OP_BINARY for data
     * messages (cut at max_message, see anomaly), or a control frame's
     * payload (WS_OP_CLOSE: 2-byte code then reason; WS_OP_PING, WS_OP_PONG).
     * p is valid during the call only. */
    void (*message)(void *ctx, int dir, int opcode, const uint8_t *p, size_t n);
    /* Bytes of dir a receiver may read otherwise, or cannot read at all. */
    void (*anomaly)(void *ctx, int dir, const char *why);
};

struct ws_session;

/* Parses the value of the response's Sec-WebSocket-Extensions header (several
 * headers joined with ", "; NULL or "" for none) into out. Returns 0, or -1
 * when the value is malformed or names an extension or parameter this decoder
 * cannot follow (the frames that use it would be unreadable: an anomaly). */
int ws_parse_extensions(const char *value, struct ws_params *out);

/* params NULL: no extension. max_message > 0 bounds a message (after
 * inflating). NULL when out of memory. */
struct ws_session *ws_new(const struct ws_params *params, uint64_t max_message,
                          const struct ws_callbacks *cb, void *ctx);
void ws_free(struct ws_session *s);

/* Feeds stream bytes of dir (0 client to server, 1 server to client). */
void ws_feed(struct ws_session *s, int dir, const uint8_t *p, size_t n);

/* 1 while dir is being decoded; 0 once it stopped on an error. */
int ws_active(const struct ws_session *s, int dir);

#endif
