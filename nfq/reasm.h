/*
 * TCP reassembly: segments of one direction in, ordered bytes out (internal to nfq).
 *
 * Used by every packet feeder (NFQUEUE workers, the capture reader). A stream
 * delivers in-order payload at once and holds out-of-order segments until the
 * hole before them fills. Overlapping retransmissions keep the bytes seen
 * first (as the receiving stack does for data it has already accepted), so
 * what the engine inspects is what the receiver gets. Holes that cannot fill
 * become gaps: when the peer acknowledges past them, when a limit is reached,
 * or at the end of the flow.
 *
 * Memory is bounded twice: per stream (limit_stream bytes held out of order)
 * and per pool (limit_total for all streams of a worker). When either would be
 * exceeded the stream skips ahead: it reports the hole as a gap and delivers
 * what it holds, so bytes are never silently lost or reordered.
 *
 * Sequence numbers are compared modulo 2^32. No allocation happens for
 * in-order segments; out-of-order ones are copied.
 */
#ifndef NFQ_REASM_H
#define NFQ_REASM_H

#include <stddef.h>
#include <stdint.h>

/* TCP flag bits as in the TCP header. */
#define REASM_FIN 0x01
#define REASM_SYN 0x02
#define REASM_RST 0x04
#define REASM_ACK 0x10

struct reasm_pool {
    uint64_t limit_total; /* bytes held out of order, all streams */
    uint64_t limit_stream;
    uint64_t held;                                         /* current total */
    uint64_t gaps, gap_bytes, overlaps, overlap_conflicts; /* counters */
    uint64_t invalid; /* segments ignored: far outside the window, a SYN with
                       * another ISN, data or a FIN contradicting a known FIN */
};

/* What a stream produces, in order. */
struct reasm_sink {
    void (*data)(void *ctx, const uint8_t *p, size_t n);
    void (*gap)(void *ctx, uint64_t n); /* n bytes will never be delivered */
    void (*end)(void *ctx);             /* FIN reached in order, or RST */
};

struct reasm_seg; /* held out-of-order segment (opaque) */

struct reasm_stream {
    uint32_t next_seq; /* next byte to deliver (valid once started) */
    uint32_t isn;
    uint64_t delivered; /* bytes delivered (data + gaps) */
    uint32_t fin_seq;   /* sequence number of the FIN (valid if fin_seen) */
    uint8_t started;    /* next_seq is known (SYN or first data seen) */
    uint8_t fin_seen;
    uint8_t ended;          /* end was delivered: later segments are ignored */
    struct reasm_seg *segs; /* held segments, sorted by sequence number */
    struct reasm_seg *tail; /* last of segs: appends behind one hole are O(1) */
    struct reasm_seg *tree; /* the same segments, searchable by position */
    uint64_t held;          /* bytes held by this stream */
};

void reasm_pool_init(struct reasm_pool *pool, uint64_t limit_total, uint64_t limit_stream);
void reasm_stream_init(struct reasm_stream *s);

/*
 * One TCP segment of this stream: its sequence number, flags and payload.
 * Delivers whatever becomes in order through sink. A SYN sets the initial
 * sequence number; without one, the first segment seen starts the stream
 * (mid-flow pickup). Returns the number of payload bytes that were new (0 for
 * a pure retransmission).
 */
size_t reasm_segment(struct reasm_pool *pool, struct reasm_stream *s, uint32_t seq, uint8_t flags,
                     const uint8_t *payload, size_t len, const struct reasm_sink *sink, void *ctx);

/* The peer acknowledged up to ack (the next byte it expects from this
 * stream). Bytes before ack that never arrived are a gap: report it and
 * deliver what follows. */
void reasm_ack(struct reasm_pool *pool, struct reasm_stream *s, uint32_t ack,
               const struct reasm_sink *sink, void *ctx);

/* The flow is over: deliver everything held, with gaps for the holes, then end. */
void reasm_flush(struct reasm_pool *pool, struct reasm_stream *s, const struct reasm_sink *sink,
                 void *ctx);

/* Frees held segments (no delivery). */
void reasm_stream_free(struct reasm_pool *pool, struct reasm_stream *s);

#endif
