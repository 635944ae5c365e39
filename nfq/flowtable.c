/*
 * The flow table of one worker: packets in, flows out.
 *
 * Flows are found by a keyed hash of their addresses, ports, L4 protocol and
 * VLAN, the same for both directions; the seed is random per table so that
 * nobody can aim packets at one hash chain. Each flow sits on one of two
 * lists ordered by last activity — open flows, and TCP flows closed in both
 * directions — so expiry only ever looks at list heads, and eviction when the
 * table is full takes the oldest closed flow first.
 *
 * The table owns TCP reassembly: segments go through the connection's
 * reassembler, which takes them as the receiving stack would, and come out
 * in order into the engine; what the receiver may read otherwise is an
 * anomaly of the flow (layer "tcp"), so the packet that carried it gets the
 * block verdict when the policy says so. Nothing is allocated per packet
 * except when reassembly must hold an out-of-order or doubtful segment.
 *
 * A connection sluice has reset (a blocked flow) is over at once: its engine
 * flow ends there, its events go out while its container is still known,
 * and what stays is a small tombstone on the closed list, so that late
 * packets of that connection are blocked too and a new connection on the
 * same addresses starts a flow of its own.
 */
#include "nfq.h"
#include "reasm.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct ft_key {
    uint8_t a[16], b[16]; /* a: source of the first packet */
    uint16_t aport, bport;
    uint16_t vlan;
    uint8_t family, l4proto;
};

struct ft_flow {
    struct ft_flow *hnext;
    struct ft_flow *prev, *next; /* activity list */
    uint64_t last_us;
    uint32_t hash;
    uint8_t on_closed_list;
    uint8_t ended[2]; /* by direction: FIN or RST delivered */
    struct ft_key key;
    struct dpi_flow *df;  /* NULL: a tombstone of a connection sluice reset */
    struct reasm_conn tc; /* TCP, by direction of the bytes */
};

struct ft_list {
    struct ft_flow *head, *tail;
};

struct nfq_flowtable {
    struct dpi_engine *engine;
    enum nfq_flowtable_mode mode;
    struct ft_flow **buckets;
    uint32_t nbuckets; /* power of two */
    uint32_t max_buckets;
    uint64_t seed[2];
    uint64_t count, limit;
    uint64_t next_id;
    uint64_t timeout_us, closed_timeout_us;
    struct ft_list open, closed;
    struct reasm_pool pool;
    struct nfq_flowtable_stats stats;
};

/* Closed TCP flows linger briefly for late retransmissions and ACKs. */
#define CLOSED_TIMEOUT_US (60ULL * 1000000ULL)
#define INITIAL_BUCKETS   1024u

/* --- hashing --------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_endpoint(const uint8_t addr[16], uint16_t port, uint64_t seed)
{
    uint64_t lo, hi;
    memcpy(&lo, addr, 8);
    memcpy(&hi, addr + 8, 8);
    return mix64(mix64(lo ^ seed) ^ hi ^ ((uint64_t)port << 48));
}

/* Symmetric: both directions of a flow hash alike (the endpoint hashes are
 * combined with a commutative operation). */
static uint32_t hash_packet(const struct nfq_flowtable *t, const struct nfq_pkt *p)
{
    uint64_t h =
        hash_endpoint(p->src, p->sport, t->seed[0]) + hash_endpoint(p->dst, p->dport, t->seed[0]);
    h ^= t->seed[1] ^ ((uint64_t)p->l4proto << 32) ^ ((uint64_t)p->vlan << 40) ^ p->family;
    return (uint32_t)mix64(h);
}

static int key_matches(const struct ft_key *k, const struct nfq_pkt *p, enum dpi_dir *dir)
{
    if (k->l4proto != p->l4proto || k->vlan != p->vlan || k->family != p->family)
        return 0;
    if (k->aport == p->sport && k->bport == p->dport && memcmp(k->a, p->src, 16) == 0 &&
        memcmp(k->b, p->dst, 16) == 0) {
        *dir = DPI_DIR_FWD;
        return 1;
    }
    if (k->aport == p->dport && k->bport == p->sport && memcmp(k->a, p->dst, 16) == 0 &&
        memcmp(k->b, p->src, 16) == 0) {
        *dir = DPI_DIR_REV;
        return 1;
    }
    return 0;
}

/* --- lists ----------------------------------------------------------------- */

static void list_unlink(struct ft_list *l, struct ft_flow *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        l->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        l->tail = f->prev;
    f->prev = f->next = NULL;
}

static void list_append(struct ft_list *l, struct ft_flow *f)
{
    f->next = NULL;
    f->prev = l->tail;
    if (l->tail)
        l->tail->next = f;
    else
        l->head = f;
    l->tail = f;
}

static struct ft_list *flow_list(struct nfq_flowtable *t, struct ft_flow *f)
{
    return f->on_closed_list ? &t->closed : &t->open;
}

static void touch(struct nfq_flowtable *t, struct ft_flow *f, uint64_t ts_us)
{
    /* Timestamps of a capture can step back; activity order is arrival order. */
    if (ts_us > f->last_us)
        f->last_us = ts_us;
    struct ft_list *l = flow_list(t, f);
    if (l->tail != f) {
        list_unlink(l, f);
        list_append(l, f);
    }
}

/* --- the table ------------------------------------------------------------- */

static int table_grow(struct nfq_flowtable *t)
{
    uint32_t n = t->nbuckets * 2;
    struct ft_flow **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -1;
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        struct ft_flow *f = t->buckets[i], *next;
        for (; f; f = next) {
            next = f->hnext;
            f->hnext = b[f->hash & (n - 1)];
            b[f->hash & (n - 1)] = f;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

struct nfq_flowtable *nfq_flowtable_new(struct dpi_engine *engine, const struct rules_policy *p,
                                        unsigned worker_id, enum nfq_flowtable_mode mode)
{
    struct nfq_flowtable *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->engine = engine;
    t->mode = mode;
    t->limit = p->limits.flows;
    t->timeout_us = (uint64_t)p->limits.flow_timeout_s * 1000000ULL;
    t->closed_timeout_us = t->timeout_us < CLOSED_TIMEOUT_US ? t->timeout_us : CLOSED_TIMEOUT_US;
    t->next_id = (uint64_t)worker_id << 40;
    t->max_buckets = INITIAL_BUCKETS;
    while (t->max_buckets < t->limit && t->max_buckets < (1u << 30))
        t->max_buckets *= 2;
    t->nbuckets = INITIAL_BUCKETS;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    if (getrandom(t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed)) {
        /* No entropy yet (early boot): fall back to something unguessable
         * from outside rather than failing to start. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t->seed[0] = mix64((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)t);
        t->seed[1] = mix64(t->seed[0] ^ (uint64_t)ts.tv_sec);
    }
    reasm_pool_init(&t->pool, p->limits.reassembly_total, p->limits.reassembly_flow);
    return t;
}

/* --- reassembly into the engine ------------------------------------------- */

struct sink_ctx {
    struct nfq_flowtable *t;
    struct ft_flow *f;
    enum dpi_dir dir;
    uint64_t ts_us;
};

static void sink_data(void *c, int dir, const uint8_t *p, size_t n)
{
    struct sink_ctx *s = c;
    dpi_flow_stream(s->t->engine, s->f->df, (enum dpi_dir)dir, p, n, s->ts_us);
}

static void sink_gap(void *c, int dir, uint64_t n)
{
    struct sink_ctx *s = c;
    dpi_flow_gap(s->t->engine, s->f->df, (enum dpi_dir)dir, n, s->ts_us);
}

static void sink_end(void *c, int dir)
{
    struct sink_ctx *s = c;
    s->f->ended[dir] = 1;
    dpi_flow_stream_end(s->t->engine, s->f->df, (enum dpi_dir)dir, s->ts_us);
}

static void sink_anomaly(void *c, int dir, const char *reason)
{
    struct sink_ctx *s = c;
    dpi_flow_anomaly(s->t->engine, s->f->df, (enum dpi_dir)dir, "tcp", reason, s->ts_us);
}

static const struct reasm_conn_sink engine_sink = {sink_data, sink_gap, sink_end, sink_anomaly};

/* The engine's part of a flow: what reassembly holds, then the engine flow
 * (its last events). */
static void flow_end_engine(struct nfq_flowtable *t, struct ft_flow *f, uint64_t ts_us)
{
    for (int d = 0; d < 2; d++) {
        struct sink_ctx ctx = {t, f, (enum dpi_dir)d, ts_us};
        if (f->key.l4proto == IPPROTO_TCP && !f->ended[d])
            reasm_conn_flush(&t->pool, &f->tc, d, &engine_sink, &ctx);
    }
    reasm_conn_free(&t->pool, &f->tc);
    dpi_flow_end(t->engine, f->df, ts_us);
    dpi_flow_free(t->engine, f->df);
    f->df = NULL;
}

static void flow_end(struct nfq_flowtable *t, struct ft_flow *f, uint64_t ts_us)
{
    if (f->df)
        flow_end_engine(t, f, ts_us);

    struct ft_flow **pp = &t->buckets[f->hash & (t->nbuckets - 1)];
    while (*pp != f)
        pp = &(*pp)->hnext;
    *pp = f->hnext;
    list_unlink(flow_list(t, f), f);
    t->count--;
    t->stats.flows_ended++;
    free(f);
}

static struct ft_flow *flow_lookup(struct nfq_flowtable *t, const struct nfq_pkt *p, uint32_t hash,
                                   enum dpi_dir *dir)
{
    for (struct ft_flow *f = t->buckets[hash & (t->nbuckets - 1)]; f; f = f->hnext)
        if (f->hash == hash && key_matches(&f->key, p, dir))
            return f;
    return NULL;
}

static int make_room(struct nfq_flowtable *t, uint64_t ts_us)
{
    if (t->count < t->limit)
        return 0;
    struct ft_flow *victim = t->closed.head ? t->closed.head : t->open.head;
    if (victim == NULL)
        return -1;
    flow_end(t, victim, ts_us);
    t->stats.flows_evicted++;
    return 0;
}

/* Inline, a flow can be picked up after its start (sluiced restarted, the
 * SYN taken by another rule): its first packet may be the server's. The
 * client is the side that sent the SYN; mid-stream, the side on the higher
 * (ephemeral) port when the other is a well-known one. */
static int from_server(const struct nfq_pkt *p)
{
    if (!p->has_tcp)
        return 0;
    if ((p->tcp_flags & (REASM_SYN | REASM_ACK)) == (REASM_SYN | REASM_ACK))
        return 1;
    if (p->tcp_flags & REASM_SYN)
        return 0;
    return p->sport < 1024 && p->dport >= 1024;
}

static void swap_ends(const struct nfq_pkt *p, struct nfq_pkt *out)
{
    *out = *p;
    memcpy(out->src, p->dst, 16);
    memcpy(out->dst, p->src, 16);
    out->sport = p->dport;
    out->dport = p->sport;
}

static struct ft_flow *flow_create(struct nfq_flowtable *t, const struct nfq_pkt *p, uint32_t hash,
                                   uint64_t ts_us)
{
    if (make_room(t, ts_us) != 0)
        return NULL;
    if (t->count >= t->nbuckets && t->nbuckets < t->max_buckets)
        (void)table_grow(t); /* a longer chain is still correct if this fails */

    struct ft_flow *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    memcpy(f->key.a, p->src, 16);
    memcpy(f->key.b, p->dst, 16);
    f->key.aport = p->sport;
    f->key.bport = p->dport;
    f->key.vlan = p->vlan;
    f->key.family = p->family;
    f->key.l4proto = p->l4proto;
    f->hash = hash;
    f->last_us = ts_us;
    reasm_conn_init(&f->tc, t->mode == NFQ_FLOWTABLE_PASSIVE);

    struct dpi_flow_meta meta = {
        .flow_id = ++t->next_id,
        .family = p->family,
        .l4proto = p->l4proto,
        .vlan = p->vlan,
        .sport = p->sport,
        .dport = p->dport,
        .tunnel = p->tunnel,
        /* Opened by a SYN (or its answer): the streams start at byte 0. */
        .from_start = p->l4proto == IPPROTO_TCP && (p->tcp_flags & REASM_SYN) != 0,
    };
    memcpy(meta.src, p->src, 16);
    memcpy(meta.dst, p->dst, 16);
    f->df = dpi_flow_new(t->engine, &meta);
    if (f->df == NULL) {
        free(f);
        return NULL;
    }
    f->hnext = t->buckets[hash & (t->nbuckets - 1)];
    t->buckets[hash & (t->nbuckets - 1)] = f;
    list_append(&t->open, f);
    t->count++;
    t->stats.flows_created++;
    return f;
}

/*
 * A SYN on a flow whose both directions have ended is a new connection that
 * reuses the addresses: it gets a flow of its own, so it is inspected from
 * its first byte.
 */
static int is_reuse(const struct ft_flow *f, const struct nfq_pkt *p)
{
    if (!p->has_tcp || (p->tcp_flags & (REASM_SYN | REASM_ACK)) != REASM_SYN || !f->ended[0] ||
        !f->ended[1])
        return 0;
    /* The client's SYN again, retransmitted: the connection sluice reset,
     * which the client, still in SYN-SENT, tries again. */
    uint32_t seq = ((uint32_t)p->tcp[4] << 24) | ((uint32_t)p->tcp[5] << 16) |
                   ((uint32_t)p->tcp[6] << 8) | p->tcp[7];
    const struct reasm_side *c = &f->tc.side[DPI_DIR_FWD];
    return !(f->df == NULL && c->syn && seq == c->isn);
}

/* The segment as reassembly reads it. Its checksum counts only where the
 * receiver checks it. */
static void tcp_segment(const struct nfq_pkt *p, struct reasm_tcp *seg)
{
    reasm_tcp_header(p->tcp, p->tcp_hdrlen, seg);
    seg->payload = p->payload;
    seg->len = p->payload_len;
    if (p->csum == NFQ_CSUM_TRUSTED)
        seg->csum = REASM_CSUM_UNCHECKED;
    else
        seg->csum = nfq_tcp_csum_ok(p) ? REASM_CSUM_GOOD : REASM_CSUM_BAD;
}

static void tcp_track(struct nfq_flowtable *t, struct ft_flow *f, enum dpi_dir dir,
                      const struct nfq_pkt *p, uint64_t ts_us)
{
    struct sink_ctx ctx = {t, f, dir, ts_us};
    struct reasm_tcp seg;

    tcp_segment(p, &seg);
    reasm_conn_segment(&t->pool, &f->tc, (int)dir, &seg, &engine_sink, &ctx);

    if (f->ended[0] && f->ended[1] && !f->on_closed_list) {
        list_unlink(&t->open, f);
        f->on_closed_list = 1;
        list_append(&t->closed, f);
    }
}

enum dpi_verdict nfq_flowtable_packet(struct nfq_flowtable *t, const struct nfq_pkt *p,
                                      uint64_t ts_us, struct dpi_flow **flow_out)
{
    enum dpi_dir dir = DPI_DIR_FWD;
    uint32_t hash = hash_packet(t, p);
    struct ft_flow *f = flow_lookup(t, p, hash, &dir);

    t->stats.packets++;
    if (f && is_reuse(f, p)) {
        flow_end(t, f, ts_us);
        t->stats.tcp_reused++;
        f = NULL;
    } else if (f && ts_us > f->last_us + t->timeout_us) {
        flow_end(t, f, ts_us);
        f = NULL;
    }
    if (f && f->df == NULL) { /* a connection sluice reset: nothing passes */
        touch(t, f, ts_us);
        if (flow_out)
            *flow_out = NULL;
        return DPI_BLOCK;
    }
    if (f == NULL) {
        struct nfq_pkt client_first;
        int swapped = t->mode == NFQ_FLOWTABLE_INLINE && from_server(p);
        if (swapped)
            swap_ends(p, &client_first);
        f = flow_create(t, swapped ? &client_first : p, hash, ts_us);
        if (f == NULL) {
            t->stats.skipped++;
            if (flow_out)
                *flow_out = NULL;
            return DPI_PASS;
        }
        dir = swapped ? DPI_DIR_REV : DPI_DIR_FWD;
    }
    touch(t, f, ts_us);

    dpi_flow_packet(t->engine, f->df, dir, p->ip, p->iplen, ts_us);
    if (p->has_tcp)
        tcp_track(t, f, dir, p, ts_us);
    if (flow_out)
        *flow_out = f->df;
    return dpi_flow_verdict(f->df);
}

void nfq_flowtable_reset(struct nfq_flowtable *t, const struct nfq_pkt *p, uint64_t ts_us)
{
    enum dpi_dir dir;
    struct ft_flow *f = flow_lookup(t, p, hash_packet(t, p), &dir);

    if (f == NULL || f->df == NULL)
        return;
    flow_end_engine(t, f, ts_us);
    f->ended[0] = f->ended[1] = 1;
    if (!f->on_closed_list) {
        list_unlink(&t->open, f);
        f->on_closed_list = 1;
        list_append(&t->closed, f);
    }
    touch(t, f, ts_us);
}

static void expire_list(struct nfq_flowtable *t, struct ft_list *l, uint64_t timeout,
                        uint64_t now_us)
{
    while (l->head && now_us > l->head->last_us + timeout)
        flow_end(t, l->head, now_us);
}

void nfq_flowtable_expire(struct nfq_flowtable *t, uint64_t now_us)
{
    expire_list(t, &t->closed, t->closed_timeout_us, now_us);
    expire_list(t, &t->open, t->timeout_us, now_us);
}

void nfq_flowtable_stats(const struct nfq_flowtable *t, struct nfq_flowtable_stats *out)
{
    *out = t->stats;
    out->flows_active = t->count;
    out->reasm_gaps = t->pool.gaps;
    out->reasm_gap_bytes = t->pool.gap_bytes;
    out->reasm_overlaps = t->pool.overlaps;
    out->reasm_conflicts = t->pool.overlap_conflicts;
    out->reasm_held = t->pool.held;
}

uint64_t nfq_flowtable_count(const struct nfq_flowtable *t)
{
    return t->count;
}

int nfq_flowtable_claims(struct nfq_flowtable *t, const struct nfq_pkt *p, uint64_t ts_us)
{
    enum dpi_dir dir;
    struct ft_flow *f = flow_lookup(t, p, hash_packet(t, p), &dir);

    if (f == NULL)
        return 0;
    if (is_reuse(f, p) || ts_us > f->last_us + t->timeout_us) {
        flow_end(t, f, ts_us);
        return 0;
    }
    return 1;
}

void nfq_flowtable_end_closed(struct nfq_flowtable *t, uint64_t now_us)
{
    while (t->closed.head)
        flow_end(t, t->closed.head, now_us);
}

uint64_t nfq_flowtable_last_id(const struct nfq_flowtable *t)
{
    return t->next_id;
}

void nfq_flowtable_ids_after(struct nfq_flowtable *t, uint64_t last_id)
{
    if (last_id > t->next_id)
        t->next_id = last_id;
}

void nfq_flowtable_free(struct nfq_flowtable *t, uint64_t now_us)
{
    if (t == NULL)
        return;
    /* End flows in the order they were last active. */
    while (t->open.head || t->closed.head) {
        struct ft_flow *o = t->open.head, *c = t->closed.head;
        flow_end(t, (c == NULL || (o && o->last_us <= c->last_us)) ? o : c, now_us);
    }
    free(t->buckets);
    free(t);
}
