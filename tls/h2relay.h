/*
 * HTTP/2 through the proxy (internal to tls): the plaintext of an h2
 * connection cut into frames, so that one stream can be reset while the
 * others go on. HPACK stays in the engine; the relay reads only the 9-byte
 * frame headers.
 *
 * Directions are the proxy's: 0 the client's bytes (to upstream), 1
 * upstream's (to the client). A unit (the client preface, one frame, or a
 * header block: HEADERS or PUSH_PROMISE with its CONTINUATIONs) is handed to
 * inspection whole and only then goes on, is held, or is dropped:
 *   - the most recent DATA frame of each stream and direction is held
 *     until that stream's next unit in that direction, so the verdict on a
 *     body (at END_STREAM, on DATA or on trailers) comes before its last
 *     frame goes;
 *   - a blocked stream gets RST_STREAM both ways; its held and later DATA
 *     are dropped and given back to their sender with a connection
 *     WINDOW_UPDATE, so the connection does not starve; header blocks are
 *     never dropped: the receiver's HPACK decoder must read them all.
 */
#ifndef TLS_H2RELAY_H
#define TLS_H2RELAY_H

#include <stddef.h>
#include <stdint.h>

#define H2R_FRAME_DATA          0x0
#define H2R_FRAME_HEADERS       0x1
#define H2R_FRAME_PRIORITY      0x2
#define H2R_FRAME_RST_STREAM    0x3
#define H2R_FRAME_SETTINGS      0x4
#define H2R_FRAME_PUSH_PROMISE  0x5
#define H2R_FRAME_GOAWAY        0x7
#define H2R_FRAME_WINDOW_UPDATE 0x8
#define H2R_FRAME_CONTINUATION  0x9
#define H2R_FLAG_END_STREAM     0x1
#define H2R_FLAG_END_HEADERS    0x4
#define H2R_PREFACE             0x100 /* unit type of the client preface */

/* Resets the relay sends: to upstream, the stream is no longer wanted; to
 * the client, the server side failed it. */
#define H2R_RST_TO_SERVER 0x8 /* CANCEL */
#define H2R_RST_TO_CLIENT 0x2 /* INTERNAL_ERROR */

/* The largest unit gathered: a frame larger than this (a peer may allow
 * frames of up to 16 MiB) or a longer header block closes the connection. */
#define H2R_UNIT_MAX (1024 * 1024 + 9)

/* --- the splitter: bytes in, units out (pure) ------------------------------------ */

struct h2r_unit {
    unsigned type;    /* of its first frame, or H2R_PREFACE */
    uint8_t flags;    /* of its first frame (END_STREAM of a header block) */
    uint32_t stream;  /* stream ID, reserved bit cleared */
    uint32_t length;  /* payload length of its first frame */
    const uint8_t *p; /* the unit's bytes, frame headers included */
    size_t n;
};

struct h2r_split {
    size_t preface_left; /* client preface bytes still to gather */
    uint8_t *buf;        /* the unit being gathered */
    size_t len, cap;
    size_t frame_at; /* offset of the current frame in buf */
    int in_block;    /* a header block waits for its CONTINUATION */
    struct h2r_unit block;
};

/* client: 1 for direction 0 (it starts with the preface). */
void h2r_split_init(struct h2r_split *s, int client);
void h2r_split_free(struct h2r_split *s);
/*
 * Cuts p into units, calling fn for each complete one (its bytes valid
 * during the call). 0, the first nonzero value fn returned, or -1 with
 * why: not the preface, a CONTINUATION missing or out of place, a unit
 * larger than H2R_UNIT_MAX, out of memory.
 */
int h2r_split_feed(struct h2r_split *s, const uint8_t *p, size_t n,
                   int (*fn)(void *ctx, const struct h2r_unit *u), void *ctx, const char **why);

/* --- the relay -------------------------------------------------------------------- */

struct h2r_io {
    void *ctx;
    /* A unit of dir for the engine, before it goes on; 1 blocks the whole
     * connection. */
    int (*inspect)(void *ctx, int dir, const uint8_t *p, size_t n);
    /* Streams blocked since the last call, at most max. */
    size_t (*blocked)(void *ctx, uint32_t *ids, size_t max);
    /* Bytes to send in direction dir (to the other side); -1 when there is
     * no room, which closes the connection. */
    int (*out)(void *ctx, int dir, const uint8_t *p, size_t n);
    /* Before held DATA of stream goes on before its end: inspection judges
     * the stream's body so far; a block shows in blocked(). May be NULL. */
    void (*judge)(void *ctx, int dir, uint32_t stream);
};

struct h2r_stats {
    uint64_t streams_blocked;
    uint64_t frames_dropped;
    uint64_t hold_overflows; /* DATA sent on before its stream's verdict: hold_limit */
};

struct h2r;

/* hold_limit: bytes of DATA held at once; past it, the oldest go on. */
struct h2r *h2r_new(size_t hold_limit);
void h2r_free(struct h2r *r);

enum { H2R_OK = 0, H2R_BLOCK = 1, H2R_ERROR = -1 };

/* Plaintext of dir, in order. H2R_BLOCK: inspection blocked the whole
 * connection; H2R_ERROR: why says what could not be relayed. */
int h2r_input(struct h2r *r, int dir, const uint8_t *p, size_t n, const struct h2r_io *io,
              const char **why);
/* dir ended and its end was judged: what dir holds goes on. */
int h2r_eof(struct h2r *r, int dir, const struct h2r_io *io);
/* Held DATA older than before_ms (of the clock given to h2r_now) goes on,
 * once io->judge found nothing in its stream's body so far: a peer waiting
 * for an answer before it sends more. A stream blocked then is reset. */
int h2r_release_older(struct h2r *r, uint64_t before_ms, const struct h2r_io *io);
void h2r_now(struct h2r *r, uint64_t now_ms);
size_t h2r_held(const struct h2r *r);
/* The highest client stream the server was told of (for GOAWAY). */
uint32_t h2r_last_stream(const struct h2r *r);
void h2r_stats(const struct h2r *r, struct h2r_stats *out);

/* Writes a frame of the relay's own into buf (at least 9 + 8 bytes + debug
 * length): RST_STREAM, WINDOW_UPDATE or GOAWAY. Returns its length. */
size_t h2r_frame_rst(uint8_t *buf, uint32_t stream, uint32_t code);
size_t h2r_frame_window_update(uint8_t *buf, uint32_t stream, uint32_t increment);
size_t h2r_frame_goaway(uint8_t *buf, uint32_t last_stream, uint32_t code, const char *debug);

#endif
