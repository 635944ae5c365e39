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
    const uint8_t *tcp; /* the TCP header (has_tcp), options included */
    size_t tcp_hdrlen;
    /* Whether the receiver checks this packet's checksums (enum nfq_csum):
     * set by the feeder after decoding; decoding leaves NFQ_CSUM_CHECK. */
    uint8_t csum;
};

enum nfq_csum {
    /* The receiving stack verifies the checksums: captures, and NFQUEUE
     * packets the kernel has not verified (NFQA_SKB_CSUM_NOTVERIFIED). */
    NFQ_CSUM_CHECK = 0,
    /* It does not: verified already, or a local sender's checksum the
     * kernel has not computed yet (NFQA_SKB_CSUMNOTREADY). */
    NFQ_CSUM_TRUSTED,
};

/* 1 if the packet's IPv4 header and TCP checksums are right (has_tcp). */
int nfq_tcp_csum_ok(const struct nfq_pkt *p);

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
/* The packet's connection was reset by sluice (its flow blocked, enforced):
 * the flow ends now (its events are emitted) and leaves a tombstone for a
 * while, so that its late packets get DPI_BLOCK (with no flow) and a new
 * connection on the same addresses is a new flow. */
void nfq_flowtable_reset(struct nfq_flowtable *t, const struct nfq_pkt *pkt, uint64_t ts_us);
/* Ends flows idle for longer than the policy's flow timeout. Cheap when
 * nothing is due; call it regularly (every packet is fine). */
void nfq_flowtable_expire(struct nfq_flowtable *t, uint64_t now_us);
void nfq_flowtable_stats(const struct nfq_flowtable *t, struct nfq_flowtable_stats *out);
/* Flows in the table now (flows_active of the stats, cheaply). */
uint64_t nfq_flowtable_count(const struct nfq_flowtable *t);
/* 1 if the packet belongs to a connection this table inspects (or reset);
 * a connection over (idle too long, or a new one on a closed one's
 * addresses) ends here and is no longer this table's. */
int nfq_flowtable_claims(struct nfq_flowtable *t, const struct nfq_pkt *pkt, uint64_t ts_us);
/* Ends the connections that are over (both ends closed, or reset by
 * sluice) now rather than after the closed timeout: a table a reload
 * replaced keeps only what it still inspects. */
void nfq_flowtable_end_closed(struct nfq_flowtable *t, uint64_t now_us);
/* The last flow id the table gave; a new table (after a reload) goes on
 * from it, so that an id stays unique in the process. */
uint64_t nfq_flowtable_last_id(const struct nfq_flowtable *t);
void nfq_flowtable_ids_after(struct nfq_flowtable *t, uint64_t last_id);

/* --- inline: NFQUEUE workers (queue.c) and their hook rules (hooks.c) --- */

/* Conntrack and packet mark bits of sluice (high bits, clear of Docker's and
 * kube-proxy's). DECIDED: the connection needs no more inspection and leaves
 * the queue. OWN: packets sluice sends itself (resets). CONTAINER: a
 * host-network connection of a container's socket (set on its way out, so
 * that its packets coming in are queued too). */
#define NFQ_MARK_DECIDED   0x40000000u
#define NFQ_MARK_OWN       0x20000000u
#define NFQ_MARK_CONTAINER 0x10000000u

/* The TLS proxy connects upstream from a bridged container's own network
 * namespace (so the host's forwarding rules judge the connection as the
 * container's); each such connection's (container address, port) goes in
 * these ipsets, which the TLS redirect skips (exempt.c). */
#define NFQ_TLS_EXEMPT_SET4 "sluice-tls-own4"
#define NFQ_TLS_EXEMPT_SET6 "sluice-tls-own6"

/* Makes both sets (an existing one of the same type is kept); 0 or -1. */
int nfq_exempt_sets_create(char *err, size_t errlen);
/* After the rules naming them are gone. */
void nfq_exempt_sets_destroy(void);

struct nfq_exempt;
struct nfq_exempt *nfq_exempt_open(char *err, size_t errlen);
void nfq_exempt_close(struct nfq_exempt *x);
/* Exempts the TCP connection from addr (4 or 16 bytes, family 4 or 6) and
 * port for a while; call it before connecting. Thread-safe. 0 or -1. */
int nfq_exempt_add(struct nfq_exempt *x, int family, const uint8_t *addr, uint16_t port, char *err,
                   size_t errlen);

struct nfq_inline_config {
    unsigned queues;     /* worker threads, one queue each */
    unsigned queue_base; /* first queue number */
    int fail_closed;     /* traffic stops when sluiced is down or behind */
};

struct nfq_inline_ops {
    void *ctx;
    /* The policy a worker starts (or restarts after a reload) with; the
     * worker takes the reference and drops it when done. */
    struct rules_policy *(*policy)(void *ctx);
    /* A worker's own engine (nDPI module, YARA scanner), on its thread. */
    struct dpi_engine *(*engine_new)(void *ctx, unsigned worker, struct rules_policy *p);
    void (*engine_free)(void *ctx, unsigned worker, struct dpi_engine *e);
    /* A flow's verdict became block: 1 to drop and reset (enforce), 0 to
     * let it pass (audit). Called on the worker thread. */
    int (*enforce)(void *ctx, const struct dpi_flow *flow);
};

struct nfq_queue_stats {
    unsigned queue_num;
    uint64_t packets, accepted, dropped, bypassed, resets, errors;
    /* Packets the kernel offered this queue that its socket could not take
     * (the worker fell behind): with fail-open they passed uninspected, with
     * fail-closed they were dropped. Counted from gaps in the packet ids, so
     * a loss shows when the next packet is read. */
    uint64_t missed;
    int fail_closed;
    uint64_t flows; /* in the worker's flow tables (being inspected, or just ended) */
    /* Connections no longer inspected because more than DRAINING_MAX (8)
     * reloads came while they were open. */
    uint64_t reload_uninspected;
};

struct nfq_inline;

/* Binds the queues and starts a worker per queue. NULL with a reason. */
struct nfq_inline *nfq_inline_start(const struct nfq_inline_config *cfg,
                                    const struct nfq_inline_ops *ops, char *err, size_t errlen);
/* Stops the workers; their flows end (events are emitted) and the queues
 * are unbound. */
void nfq_inline_stop(struct nfq_inline *q);
/* Workers move to ops->policy() between two batches of packets; flows open
 * at that moment are ended and picked up again mid-stream. */
void nfq_inline_reload(struct nfq_inline *q);
unsigned nfq_inline_queues(const struct nfq_inline *q);
/* How many packet ids were skipped between *last and id (the packets the
 * kernel could not queue); moves *last to id. An id not after *last (the
 * same one again) counts nothing. */
uint32_t nfq_ids_missed(uint32_t *last, uint32_t id);
void nfq_inline_stats(struct nfq_inline *q, unsigned i, struct nfq_queue_stats *out);

struct nfq_hooks_config {
    unsigned queues, queue_base;
    int fail_closed;
    int bridges;           /* bridged containers: DOCKER-USER */
    int host;              /* host-network containers: OUTPUT/INPUT by cgroup */
    const char *ports;     /* "80,443,8000:8999" (either end), NULL: every TCP port */
    unsigned tls_port;     /* the TLS proxy's port on the host; 0: no interception */
    const char *tls_ports; /* destination ports redirected to it: "443" */
    /* UDP from containers to these destination ports (QUIC) is queued for
     * the engine to block (tls.quic: block); NULL: left alone. */
    const char *quic_ports;
};

/* Installs sluice's chains and the jumps to them (iptables and ip6tables),
 * after removing any left by an earlier run: idempotent, and it never
 * touches rules of others. -1 with a reason. */
int nfq_hooks_install(const struct nfq_hooks_config *cfg, char *err, size_t errlen);
/* The cgroup2 paths (relative to the cgroup2 root) of containers' processes:
 * their sockets' connections are inspected. Cheap when nothing changed;
 * returns the number of rules made (IPv4). */
int nfq_hooks_cgroups(const char *const *paths, size_t n);
/* Puts back jumps that others removed (Docker rebuilds DOCKER-USER when it
 * restarts), and jumps from FORWARD itself when FORWARD stopped jumping to
 * DOCKER-USER; returns how many. */
int nfq_hooks_check(const struct nfq_hooks_config *cfg);

/* The ways container traffic can take, each hooked per family. */
enum nfq_path {
    NFQ_PATH_FORWARD,   /* "bridge-forward": container to container, to the world */
    NFQ_PATH_TO_HOST,   /* "bridge-to-host": bridged container to a host socket */
    NFQ_PATH_FROM_HOST, /* "host-to-bridge": the host (docker-proxy too) to a container */
    NFQ_PATH_HOSTNET,   /* "host-network": sockets of host-network containers */
    NFQ_PATH_TLS,       /* "tls-redirect": container TLS to the interception proxy */
    NFQ_PATHS,
};

struct nfq_hook_path {
    const char *name; /* "bridge-forward", ... (static) */
    int family;       /* 4 or 6 */
    int inspected;
    char hook[96]; /* where it is queued: "DOCKER-USER", "INPUT -i docker0, br-+" */
    char why[400]; /* not inspected: why ("off in the policy (...)", a refused rule) */
};

/* Every path of both families as of the last install or check (at most
 * max; 2 * NFQ_PATHS in all); returns how many. Safe from any thread. */
size_t nfq_hooks_paths(struct nfq_hook_path *out, size_t max);
/* Removes every chain and jump sluice made; quiet when there are none. */
void nfq_hooks_remove(void);

#endif
