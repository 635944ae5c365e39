/*
 * nfq: the packet side of sluice.
 *
 * Packets become flows here, for every feeder alike: the capture reader hands
 * in link-layer frames, the NFQUEUE workers hand in IP packets. Decoding
 * follows ndpiReader's rules exactly (which packets count, how tunnels are
 * opened, which fragments are kept), so the same capture gives the same flows
 * and the same nDPI results in both tools. A flow table per worker owns the
 * flows, reassembles TCP, feeds the engine and expires idle flows; memory is
 * bounded by the policy (flows, out-of-order bytes).
 */
#ifndef NFQ_H
#define NFQ_H

#include <stddef.h>
#include <stdint.h>

#include "dpi.h"

/* A decoded packet: pointers into the caller's buffer. */
struct nfq_pkt {
    const uint8_t *ip; /* IP header (inner one for tunnels) */
    size_t iplen;      /* captured bytes from ip to the end of the frame */
    uint8_t family;    /* 4 or 6 */
    uint8_t l4proto;
    uint16_t vlan;
    const char *tunnel; /* "GTP", "TZSP", "CAPWAP" or NULL */
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    /* TCP only (has_tcp) */
    uint8_t has_tcp;
    uint8_t tcp_flags;
    uint32_t seq, ack;
    const uint8_t *payload;
    size_t payload_len;
};

enum nfq_decode_status {
    NFQ_DECODE_OK = 0,
    NFQ_DECODE_SKIP, /* not IP, a non-first fragment, truncated: not inspected */
};

/* Link types are libpcap DLT_* values. tunnels: open GTP-U, TZSP and CAPWAP. */
enum nfq_decode_status nfq_decode_frame(int dlt, const uint8_t *frame, size_t caplen, int tunnels,
                                        struct nfq_pkt *out);
/* An IP packet as NFQUEUE delivers it. */
enum nfq_decode_status nfq_decode_ip(const uint8_t *ip, size_t len, int tunnels,
                                     struct nfq_pkt *out);
/* 1 if nfq_decode_frame knows the link type. */
int nfq_dlt_supported(int dlt);

/* --- flow table ---------------------------------------------------------- */

struct nfq_flowtable;

struct nfq_flowtable_stats {
    uint64_t packets, skipped, flows_created, flows_ended, flows_evicted, flows_active;
    uint64_t tcp_reused; /* new connection on a closed flow's addresses */
    uint64_t reasm_gaps, reasm_gap_bytes, reasm_overlaps, reasm_conflicts, reasm_held;
};

enum nfq_flowtable_mode {
    /* Inline: sluice decides what the receiver gets. An acknowledgement for
     * bytes sluice has not seen is not trusted (a client could acknowledge a
     * download ahead of time to make the inspection skip it). */
    NFQ_FLOWTABLE_INLINE = 0,
    /* Passive (captures, mirrored interfaces): packets the capture missed
     * become gaps as soon as the receiver acknowledges past them. */
    NFQ_FLOWTABLE_PASSIVE,
};

/* worker_id goes into the high bits of flow ids, so ids are unique per process. */
struct nfq_flowtable *nfq_flowtable_new(struct dpi_engine *engine, const struct rules_policy *p,
                                        unsigned worker_id, enum nfq_flowtable_mode mode);
/* Ends every flow (emitting its events) and frees the table. */
void nfq_flowtable_free(struct nfq_flowtable *t, uint64_t now_us);

/* One packet: tracks its flow, feeds the engine, returns the flow's verdict.
 * flow_out (optional) receives the engine flow. */
enum dpi_verdict nfq_flowtable_packet(struct nfq_flowtable *t, const struct nfq_pkt *pkt,
                                      uint64_t ts_us, struct dpi_flow **flow_out);
/* Ends flows idle for longer than the policy's flow timeout. Cheap when
 * nothing is due; call it regularly (every packet is fine). */
void nfq_flowtable_expire(struct nfq_flowtable *t, uint64_t now_us);
void nfq_flowtable_stats(const struct nfq_flowtable *t, struct nfq_flowtable_stats *out);

#endif
