/*
 * TCP reassembly: segments in, the ordered bytes the receiver reads out
 * (internal to nfq).
 *
 * Two layers. A stream (reasm_stream) is one direction's bytes: it delivers
 * in-order payload at once and holds out-of-order segments until the hole
 * before them fills. Overlaps resolve as Linux resolves them: bytes already
 * in order stay; a segment that arrives in order wins over held ones; among
 * held ones, the segment that starts first wins (a later one starting at the
 * same place and covering it replaces it). Holes that cannot fill become
 * gaps: when the peer acknowledges past them, when a limit is reached, or at
 * the end of the flow.
 *
 * A connection (reasm_conn) puts the receiving Linux stack in front of its
 * two streams: segments the receiver certainly drops (wrong checksum, no ACK
 * flag, an unexpected TCP-MD5 option, an acknowledgement of data never sent,
 * an old timestamp (PAWS), far outside the window, data before the handshake
 * or in a SYN nobody took) never reach a stream; only a RST at the exact next
 * sequence number ends the connection; the urgent byte is taken out of the
 * stream as a reader without SO_OOBINLINE sees it. Where the receiver may or
 * may not have dropped a segment, it is kept and remembered: a later copy
 * with different bytes is an anomaly, as is any overlap with different bytes.
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
#define REASM_PSH 0x08
#define REASM_ACK 0x10
#define REASM_URG 0x20

struct reasm_pool {
    uint64_t limit_total; /* bytes held out of order, all streams */
    uint64_t limit_stream;
    uint64_t held;                                         /* current total */
    uint64_t gaps, gap_bytes, overlaps, overlap_conflicts; /* counters */
    uint64_t invalid;     /* segments ignored: far outside the window, a SYN with
                           * another ISN, data or a FIN contradicting a known FIN */
    uint64_t dropped;     /* segments the receiver drops (reasm_conn) */
    uint64_t rst_ignored; /* RSTs the receiver does not take */
    uint64_t anomalies;
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
    uint64_t urg_off;       /* the urgent byte, left out of the data (if urg) */
    uint8_t urg;
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

/* --- a connection, as the receiving Linux stack takes it ---------------------- */

enum reasm_csum {
    REASM_CSUM_UNCHECKED = 0, /* the receiver does not check it (already done, or
                               * a local sender's unfinished checksum) */
    REASM_CSUM_GOOD,
    REASM_CSUM_BAD,
};

/* One TCP segment: header fields and the options the receiver reads. */
struct reasm_tcp {
    uint32_t seq, ack;
    uint8_t flags;
    uint8_t csum; /* enum reasm_csum */
    uint16_t window, urg_ptr;
    uint8_t has_ts, has_ws, has_md5, has_ao, has_tfo;
    uint8_t ws;
    uint32_t tsval, tsecr;
    const uint8_t *payload;
    size_t len;
};

/* Reads a TCP header (hdrlen bytes, options included, hdrlen >= 20) as
 * Linux's tcp_parse_options does. Payload, length and checksum are the
 * caller's to set. */
void reasm_tcp_header(const uint8_t *h, size_t hdrlen, struct reasm_tcp *t);

struct reasm_conn_sink {
    void (*data)(void *ctx, int dir, const uint8_t *p, size_t n);
    void (*gap)(void *ctx, int dir, uint64_t n);
    void (*end)(void *ctx, int dir);
    /* Bytes of dir the receiver may read otherwise than the stream says. */
    void (*anomaly)(void *ctx, int dir, const char *reason);
};

struct reasm_doubt; /* bytes the receiver may have dropped (opaque) */

/* What one side has shown of itself (sequence numbers in its own space,
 * acks and windows in the other's). */
struct reasm_side {
    uint32_t isn;
    uint32_t snd_end;  /* after the last byte it sent (if sent) */
    uint32_t adv_edge; /* highest ack + window it advertised (if advertised) */
    uint32_t tsecr;    /* highest TSecr it echoed: its ts_recent is at least this */
    uint32_t ts_hi;    /* highest TSval it sent */
    uint8_t syn, synack, sent, advertised, echoed, ts_seen;
    uint8_t syn_ts, syn_ws, syn_md5, ws;
    uint8_t syn_tfo;   /* its SYN had a Fast Open option */
    uint8_t acked;     /* ack_hi is valid */
    uint32_t ack_hi;   /* highest ack it sent */
    uint32_t max_win;  /* largest window it advertised, scaled */
    uint8_t csum_good; /* one of its packets had a right checksum */
    uint8_t reset;     /* its RST ended the connection */
    uint8_t doubt_full;
    uint8_t *syn_data; /* its SYN's payload, until the SYN-ACK says if it was taken */
    size_t syn_len;
    struct reasm_doubt *doubt;
    size_t doubt_bytes;
};

struct reasm_conn {
    struct reasm_stream s[2]; /* by sender: 0 the side of the first packet */
    struct reasm_side side[2];
    uint8_t passive; /* a capture: packets may be missing, checksums offloaded */
};

void reasm_conn_init(struct reasm_conn *c, int passive);
/* A segment sent by side dir (0 or 1). */
void reasm_conn_segment(struct reasm_pool *pool, struct reasm_conn *c, int dir,
                        const struct reasm_tcp *t, const struct reasm_conn_sink *sink, void *ctx);
/* The flow is over: dir's held bytes go out, with gaps, and it ends. */
void reasm_conn_flush(struct reasm_pool *pool, struct reasm_conn *c, int dir,
                      const struct reasm_conn_sink *sink, void *ctx);
void reasm_conn_free(struct reasm_pool *pool, struct reasm_conn *c);

#endif
