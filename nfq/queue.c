/*
 * NFQUEUE workers: one thread per queue, each with its own netlink socket,
 * flow table and engine, so workers share nothing on the packet path.
 *
 * A worker reads every packet waiting on its socket, decides each, and
 * answers accepts in one batch verdict (every id up to the last). A packet
 * that needs its own verdict (a drop, or an accept that also marks the
 * connection as decided) first closes the batch before it.
 *
 * Decided flows leave the queue: the verdict sets NFQ_MARK_DECIDED in the
 * connection's conntrack mark (NFQA_CT), and the hook rules return early for
 * such connections, so bulk transfers run at the host's speed. Blocked TCP
 * flows get a reset both ways from a raw socket whose packets carry
 * NFQ_MARK_OWN, which the hook rules also let through.
 */
#include "nfq.h"
#include "reasm.h"
#include "rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest packet with NFQA_CFG_F_GSO (no kernel segmentation) plus headers. */
#define PKT_MAX     0x10000
#define RECV_BUF    (PKT_MAX + MNL_SOCKET_BUFFER_SIZE)
#define SOCK_RCVBUF (8 * 1024 * 1024)
/* Accepts answered at least this often, so packets read but not yet
 * answered stay few: the kernel's queue then holds little more than what
 * waits in the socket. */
#define BATCH_MAX 64
/* The kernel's bound on packets in a queue. It is set far above what the
 * socket can hold (16 MiB, the kernel doubles SOCK_RCVBUF; a queued packet
 * takes at least ~700 bytes of it) so that an overload always overflows the
 * socket, never this count: a packet the socket cannot take has already
 * been given an id, so it shows as a gap in the ids the worker reads
 * (nfq_ids_missed), whereas one refused because the queue is full passes
 * (fail-open) or is dropped without a trace for the worker. Memory stays
 * bounded by the socket: a queued packet is one waiting in it, or one of at
 * most BATCH_MAX read and not yet answered. */
#define QUEUE_LEN 65536
/* Policies a reload replaced whose flows are still being inspected. A
 * connection begun before a reload is inspected to its end under the policy
 * it began with (a download is not let through half-scanned); past this many
 * reloads within a flow timeout, the oldest one's flows end at once. */
#define DRAINING_MAX 8

/* A policy, its engine and the flow table of the connections it inspects. */
struct nfq_gen {
    struct nfq_flowtable *ft;
    struct dpi_engine *engine;
    struct rules_policy *policy;
};

struct nfq_worker {
    struct nfq_inline *q;
    unsigned idx;
    uint16_t queue_num;
    struct mnl_socket *nl;
    unsigned portid;
    struct nfq_gen cur;                    /* new connections */
    struct nfq_gen draining[DRAINING_MAX]; /* oldest first */
    unsigned ndraining;
    unsigned generation;   /* of the policy this worker runs */
    uint64_t last_flow_id; /* of the tables before cur */
    int raw4, raw6;        /* reset injection */
    pthread_t thread;
    int started;
    char *buf;
    /* The open batch: accepts not answered yet. */
    uint32_t batch_last;
    unsigned batch_len;
    int batch_open;
    uint32_t last_id; /* of the last packet read; ids start at 1 on a new queue */
    /* Read by the control thread while the worker writes them. */
    _Atomic uint64_t packets, accepted, dropped, bypassed, resets, errors, missed;
    _Atomic uint64_t flows;              /* in its tables, after the last batch */
    _Atomic uint64_t reload_uninspected; /* flows ended early by too many reloads */
};

struct nfq_inline {
    struct nfq_inline_config cfg;
    struct nfq_inline_ops ops;
    struct nfq_worker *w;
    unsigned n;
    int stop_fd[2];              /* a byte written here stops every worker */
    _Atomic unsigned generation; /* bumped by a reload */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* --- netlink ----------------------------------------------------------------- */

static int nl_talk(struct nfq_worker *w, struct nlmsghdr *nlh)
{
    if (mnl_socket_sendto(w->nl, nlh, nlh->nlmsg_len) < 0)
        return -1;
    return 0;
}

/* A configuration request and the kernel's answer to it (before the
 * worker reads packets from the socket). */
static int nl_request(struct nfq_worker *w, struct nlmsghdr *nlh)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    unsigned seq = nlh->nlmsg_seq = (unsigned)time(NULL) + w->idx;

    nlh->nlmsg_flags |= NLM_F_ACK;
    if (nl_talk(w, nlh) < 0)
        return -1;
    ssize_t n = mnl_socket_recvfrom(w->nl, buf, sizeof(buf));
    if (n < 0)
        return -1;
    return mnl_cb_run(buf, (size_t)n, seq, w->portid, NULL, NULL) < 0 ? -1 : 0;
}

static int queue_config(struct nfq_worker *w, int fail_closed, char *err, size_t errlen)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh;
    uint32_t flags = NFQA_CFG_F_GSO;

    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, w->queue_num);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
    if (nl_request(w, nlh) < 0)
        goto fail;

    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, w->queue_num);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, PKT_MAX);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, QUEUE_LEN);
    /* Fail-open: when the queue is full the kernel accepts instead of
     * dropping. GSO: whole large packets, checksums possibly partial (sluice
     * reads them, never rewrites them). */
    if (!fail_closed)
        flags |= NFQA_CFG_F_FAIL_OPEN;
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
    if (nl_request(w, nlh) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "queue %u: %s%s", w->queue_num, strerror(errno),
             errno == EBUSY ? " (another program, or another sluiced, uses it)" : "");
    return -1;
}

static void verdict_send(struct nfq_worker *w, int type, uint32_t id, int verdict, int set_mark,
                         uint32_t mark)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, type, w->queue_num);

    nfq_nlmsg_verdict_put(nlh, (int)id, verdict);
    if (set_mark)
        nfq_nlmsg_verdict_put_mark(nlh, mark);
    if (nl_talk(w, nlh) < 0)
        atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
}

static void batch_flush(struct nfq_worker *w)
{
    if (!w->batch_open)
        return;
    verdict_send(w, NFQNL_MSG_VERDICT_BATCH, w->batch_last, NF_ACCEPT, 0, 0);
    w->batch_open = 0;
    w->batch_len = 0;
}

/* --- resets -------------------------------------------------------------------- */

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint32_t csum_add(uint32_t sum, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1)
        sum += (uint32_t)(b[n - 1] << 8);
    return sum;
}

/* A RST from src to dst (addresses and ports of the packet's header). */
static void send_rst(struct nfq_worker *w, int family, const uint8_t *src, const uint8_t *dst,
                     uint16_t sport, uint16_t dport, uint32_t seq)
{
    uint8_t pkt[60];
    struct tcphdr tcp;
    size_t iplen = family == 6 ? 40 : 20;
    uint32_t sum = 0;
    size_t alen = family == 6 ? 16 : 4;

    memset(pkt, 0, sizeof(pkt));
    memset(&tcp, 0, sizeof(tcp));
    tcp.th_sport = htons(sport);
    tcp.th_dport = htons(dport);
    tcp.th_seq = htonl(seq);
    tcp.th_off = 5;
    tcp.th_flags = TH_RST;
    /* Pseudo-header: addresses, protocol, TCP length. */
    sum = csum_add(sum, src, alen);
    sum = csum_add(sum, dst, alen);
    sum += IPPROTO_TCP + (uint32_t)sizeof(tcp);
    sum = csum_add(sum, &tcp, sizeof(tcp));
    tcp.th_sum = htons(csum_fold(sum));

    if (family == 4) {
        struct ip *ip = (struct ip *)pkt;
        ip->ip_v = 4;
        ip->ip_hl = 5;
        ip->ip_len = htons((uint16_t)(iplen + sizeof(tcp)));
        ip->ip_ttl = 64;
        ip->ip_p = IPPROTO_TCP;
        memcpy(&ip->ip_src, src, 4);
        memcpy(&ip->ip_dst, dst, 4);
        ip->ip_sum = htons(csum_fold(csum_add(0, ip, iplen)));
    } else {
        struct ip6_hdr *ip6 = (struct ip6_hdr *)pkt;
        ip6->ip6_flow = htonl(6u << 28);
        ip6->ip6_plen = htons((uint16_t)sizeof(tcp));
        ip6->ip6_nxt = IPPROTO_TCP;
        ip6->ip6_hlim = 64;
        memcpy(&ip6->ip6_src, src, 16);
        memcpy(&ip6->ip6_dst, dst, 16);
    }
    memcpy(pkt + iplen, &tcp, sizeof(tcp));

    struct sockaddr_storage to;
    socklen_t tolen;
    memset(&to, 0, sizeof(to));
    if (family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&to;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, dst, 4);
        tolen = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&to;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, dst, 16);
        tolen = sizeof(*s6);
    }
    int fd = family == 4 ? w->raw4 : w->raw6;
    if (fd < 0 || sendto(fd, pkt, iplen + sizeof(tcp), 0, (struct sockaddr *)&to, tolen) < 0)
        atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&w->resets, 1, memory_order_relaxed);
}

/* Both ends learn the connection is gone: the receiver gets a RST where the
 * dropped segment would have been, the sender one at what it expects next. */
static void reset_both(struct nfq_worker *w, const struct nfq_pkt *p)
{
    if (!p->has_tcp || (p->tcp_flags & REASM_RST))
        return;
    send_rst(w, p->family, p->src, p->dst, p->sport, p->dport, p->seq);
    if (p->tcp_flags & REASM_ACK)
        send_rst(w, p->family, p->dst, p->src, p->dport, p->sport, p->ack);
}

static int raw_socket(int family, uint32_t mark)
{
    int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0)
        return -1;
    /* Our own resets must not be queued again. */
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* --- packets ----------------------------------------------------------------- */

/* With NFQA_CFG_F_GSO the kernel says how far the checksum is done
 * (nfqnl_put_packet_info): unfinished (CHECKSUM_PARTIAL, a local sender's:
 * no receiver checks it), not verified yet (the receiver will), or, with
 * no flag, verified. Only the second makes a wrong checksum a drop. */
static uint8_t queue_csum(const struct nlattr *info)
{
    uint32_t flags = info ? ntohl(mnl_attr_get_u32(info)) : 0;

    if (!(flags & NFQA_SKB_CSUMNOTREADY) && (flags & NFQA_SKB_CSUM_NOTVERIFIED))
        return NFQ_CSUM_CHECK;
    return NFQ_CSUM_TRUSTED;
}

static void handle_packet(struct nfq_worker *w, const struct nlmsghdr *nlh, uint64_t ts)
{
    struct nlattr *attr[NFQA_MAX + 1] = {NULL};
    struct nfq_pkt pkt;
    struct dpi_flow *df = NULL;

    if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL)
        return;
    const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    uint32_t id = ntohl(ph->packet_id);
    atomic_fetch_add_explicit(&w->packets, 1, memory_order_relaxed);
    uint32_t missed = nfq_ids_missed(&w->last_id, id);
    if (missed)
        atomic_fetch_add_explicit(&w->missed, missed, memory_order_relaxed);

    const uint8_t *payload = attr[NFQA_PAYLOAD] ? mnl_attr_get_payload(attr[NFQA_PAYLOAD]) : NULL;
    size_t len = attr[NFQA_PAYLOAD] ? mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]) : 0;

    enum dpi_verdict v = DPI_PASS;
    struct nfq_flowtable *ft = w->cur.ft;
    int decoded = payload && nfq_decode_ip(payload, len, 0, &pkt) == NFQ_DECODE_OK;
    if (decoded)
        pkt.csum = queue_csum(attr[NFQA_SKB_INFO]);
    /* A connection that began before a reload stays with its policy. */
    for (unsigned i = w->ndraining; decoded && i-- > 0;)
        if (nfq_flowtable_claims(w->draining[i].ft, &pkt, ts)) {
            ft = w->draining[i].ft;
            break;
        }
    if (decoded && ft)
        v = nfq_flowtable_packet(ft, &pkt, ts, &df);

    /* A block without a flow is a late packet of a connection reset before. */
    if (v == DPI_BLOCK && (df == NULL || w->q->ops.enforce(w->q->ops.ctx, df))) {
        batch_flush(w);
        verdict_send(w, NFQNL_MSG_VERDICT, id, NF_DROP, 0, 0);
        atomic_fetch_add_explicit(&w->dropped, 1, memory_order_relaxed);
        reset_both(w, &pkt);
        if (df)
            nfq_flowtable_reset(ft, &pkt, ts);
        return;
    }
    atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
    /* Nothing more to learn (or to block): the connection leaves the queue.
     * The packet's mark says so and the hook rules copy it into the
     * connection's mark on its way out (mangle POSTROUTING); packets coming
     * in are marked until one going out has carried the mark. */
    if (df && !dpi_flow_wants_more(df)) {
        uint32_t mark = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
        batch_flush(w);
        verdict_send(w, NFQNL_MSG_VERDICT, id, NF_ACCEPT, 1, mark | NFQ_MARK_DECIDED);
        atomic_fetch_add_explicit(&w->bypassed, 1, memory_order_relaxed);
        return;
    }
    w->batch_last = id;
    w->batch_open = 1;
    if (++w->batch_len >= BATCH_MAX)
        batch_flush(w);
}

/* The kernel numbers the packets it offers a queue 1, 2, 3... under the
 * queue's lock, and hands them to the socket in that order; an id is taken
 * before the packet is put in the socket, so a packet the full socket could
 * not take leaves a gap (net/netfilter/nfnetlink_queue.c,
 * __nfqnl_enqueue_packet). */
uint32_t nfq_ids_missed(uint32_t *last, uint32_t id)
{
    uint32_t gap = id - *last - 1; /* modulo 2^32: ids wrap */

    if (gap >= 0x80000000u) /* not after the last one: nothing new missed */
        return 0;
    *last = id;
    return gap;
}

static int on_message(const struct nlmsghdr *nlh, void *data)
{
    struct nfq_worker *w = data;
    handle_packet(w, nlh, now_us());
    return MNL_CB_OK;
}

static void worker_uninspect(struct nfq_worker *w);
static int worker_inspect(struct nfq_worker *w);
static void worker_reload(struct nfq_worker *w);
static void worker_expire(struct nfq_worker *w, uint64_t now);

static void *worker_main(void *arg)
{
    struct nfq_worker *w = arg;
    struct pollfd pfd[2] = {
        {.fd = mnl_socket_get_fd(w->nl), .events = POLLIN},
        {.fd = w->q->stop_fd[0], .events = POLLIN},
    };
    uint64_t last_expire = 0;

    for (;;) {
        int r = poll(pfd, 2, 1000);
        if (r < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        /* Everything waiting, then one batch verdict for the accepts. */
        while (pfd[0].revents & POLLIN) {
            /* Before every read: a connection begun after a reload (after
             * nfq_inline_reload returned) gets the new policy. */
            if (atomic_load_explicit(&w->q->generation, memory_order_acquire) != w->generation)
                worker_reload(w);
            ssize_t n = recv(pfd[0].fd, w->buf, RECV_BUF, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == ENOBUFS) /* the kernel dropped (or, fail-open, let pass) */
                    atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
                break;
            }
            mnl_cb_run(w->buf, (size_t)n, 0, w->portid, on_message, w);
        }
        batch_flush(w);
        uint64_t now = now_us();
        if (now - last_expire > 1000000u) {
            worker_expire(w, now);
            last_expire = now;
        }
        uint64_t flows = w->cur.ft ? nfq_flowtable_count(w->cur.ft) : 0;
        for (unsigned i = 0; i < w->ndraining; i++)
            flows += nfq_flowtable_count(w->draining[i].ft);
        atomic_store_explicit(&w->flows, flows, memory_order_relaxed);
    }
    batch_flush(w);
    return NULL;
}

/* --- API ----------------------------------------------------------------------- */

/* Ends the generation's flows (their events are emitted) and frees it. */
static void gen_free(struct nfq_worker *w, struct nfq_gen *g)
{
    if (g->ft)
        nfq_flowtable_free(g->ft, now_us());
    if (g->engine)
        w->q->ops.engine_free(w->q->ops.ctx, w->idx, g->engine);
    if (g->policy)
        rules_policy_unref(g->policy);
    memset(g, 0, sizeof(*g));
}

static void draining_drop(struct nfq_worker *w, unsigned i)
{
    gen_free(w, &w->draining[i]);
    memmove(&w->draining[i], &w->draining[i + 1], (w->ndraining - i - 1) * sizeof(w->draining[0]));
    w->ndraining--;
}

static void worker_uninspect(struct nfq_worker *w)
{
    gen_free(w, &w->cur);
    while (w->ndraining)
        draining_drop(w, w->ndraining - 1);
}

/* The worker's engine and flow table, for the current policy; flow ids go
 * on from those of the tables before. */
static int worker_inspect(struct nfq_worker *w)
{
    w->generation = atomic_load(&w->q->generation);
    w->cur.policy = w->q->ops.policy(w->q->ops.ctx);
    if (w->cur.policy == NULL)
        return -1;
    w->cur.engine = w->q->ops.engine_new(w->q->ops.ctx, w->idx, w->cur.policy);
    if (w->cur.engine == NULL)
        return -1;
    w->cur.ft = nfq_flowtable_new(w->cur.engine, w->cur.policy, w->idx, NFQ_FLOWTABLE_INLINE);
    if (w->cur.ft)
        nfq_flowtable_ids_after(w->cur.ft, w->last_flow_id);
    return w->cur.ft ? 0 : -1;
}

/* A new policy for new connections; those open now drain under the old one. */
static void worker_reload(struct nfq_worker *w)
{
    if (w->cur.ft) {
        w->last_flow_id = nfq_flowtable_last_id(w->cur.ft);
        nfq_flowtable_end_closed(w->cur.ft, now_us());
    }
    if (w->cur.ft && nfq_flowtable_count(w->cur.ft) > 0) {
        if (w->ndraining == DRAINING_MAX) {
            atomic_fetch_add_explicit(&w->reload_uninspected,
                                      nfq_flowtable_count(w->draining[0].ft), memory_order_relaxed);
            draining_drop(w, 0);
        }
        w->draining[w->ndraining++] = w->cur;
        memset(&w->cur, 0, sizeof(w->cur));
    } else {
        gen_free(w, &w->cur);
    }
    if (worker_inspect(w) < 0) /* new connections pass uninspected until the next reload */
        gen_free(w, &w->cur);
}

/* Idle flows end; a replaced policy goes once its last flow has. */
static void worker_expire(struct nfq_worker *w, uint64_t now)
{
    if (w->cur.ft)
        nfq_flowtable_expire(w->cur.ft, now);
    for (unsigned i = w->ndraining; i-- > 0;) {
        nfq_flowtable_expire(w->draining[i].ft, now);
        nfq_flowtable_end_closed(w->draining[i].ft, now);
        if (nfq_flowtable_count(w->draining[i].ft) == 0)
            draining_drop(w, i);
    }
}

static int worker_open(struct nfq_worker *w, char *err, size_t errlen)
{
    int rcvbuf = SOCK_RCVBUF;

    w->buf = malloc(RECV_BUF);
    w->nl = mnl_socket_open(NETLINK_NETFILTER);
    if (w->buf == NULL || w->nl == NULL || mnl_socket_bind(w->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        snprintf(err, errlen, "queue %u: netlink: %s", w->queue_num, strerror(errno));
        return -1;
    }
    w->portid = mnl_socket_get_portid(w->nl);
    /* Bursts must not overflow the socket: a full one loses packets. */
    if (setsockopt(mnl_socket_get_fd(w->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) <
        0)
        setsockopt(mnl_socket_get_fd(w->nl), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    int one = 1;
    /* ENOBUFS tells of overruns; ignore it rather than fail the socket. */
    setsockopt(mnl_socket_get_fd(w->nl), SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
    if (queue_config(w, w->q->cfg.fail_closed, err, errlen) < 0)
        return -1;
    w->raw4 = raw_socket(4, NFQ_MARK_OWN);
    w->raw6 = raw_socket(6, NFQ_MARK_OWN);
    if (w->raw4 < 0) {
        snprintf(err, errlen, "raw socket for resets: %s", strerror(errno));
        return -1;
    }
    if (worker_inspect(w) < 0) {
        snprintf(err, errlen, "queue %u: cannot create the inspection engine", w->queue_num);
        return -1;
    }
    return 0;
}

static void worker_close(struct nfq_worker *w)
{
    worker_uninspect(w);
    if (w->nl) {
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, w->queue_num);
        nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
        nl_talk(w, nlh);
        mnl_socket_close(w->nl);
    }
    if (w->raw4 >= 0)
        close(w->raw4);
    if (w->raw6 >= 0)
        close(w->raw6);
    free(w->buf);
}

struct nfq_inline *nfq_inline_start(const struct nfq_inline_config *cfg,
                                    const struct nfq_inline_ops *ops, char *err, size_t errlen)
{
    struct nfq_inline *q = calloc(1, sizeof(*q));

    if (q == NULL || pipe(q->stop_fd) < 0) {
        snprintf(err, errlen, "out of memory");
        free(q);
        return NULL;
    }
    q->cfg = *cfg;
    q->ops = *ops;
    q->n = cfg->queues;
    q->w = calloc(q->n, sizeof(*q->w));
    if (q->w == NULL) {
        snprintf(err, errlen, "out of memory");
        nfq_inline_stop(q);
        return NULL;
    }
    for (unsigned i = 0; i < q->n; i++) {
        struct nfq_worker *w = &q->w[i];
        w->q = q;
        w->idx = i;
        w->queue_num = (uint16_t)(cfg->queue_base + i);
        w->raw4 = w->raw6 = -1;
    }
    for (unsigned i = 0; i < q->n; i++) {
        struct nfq_worker *w = &q->w[i];
        if (worker_open(w, err, errlen) < 0 ||
            pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            if (err[0] == '\0')
                snprintf(err, errlen, "queue %u: cannot start its thread", w->queue_num);
            nfq_inline_stop(q);
            return NULL;
        }
        w->started = 1;
    }
    return q;
}

void nfq_inline_stop(struct nfq_inline *q)
{
    if (q == NULL)
        return;
    (void)!write(q->stop_fd[1], "x", 1); /* a full pipe already says stop */
    for (unsigned i = 0; q->w && i < q->n; i++) {
        if (q->w[i].started)
            pthread_join(q->w[i].thread, NULL);
        worker_close(&q->w[i]);
    }
    close(q->stop_fd[0]);
    close(q->stop_fd[1]);
    free(q->w);
    free(q);
}

void nfq_inline_reload(struct nfq_inline *q)
{
    atomic_fetch_add(&q->generation, 1);
}

unsigned nfq_inline_queues(const struct nfq_inline *q)
{
    return q->n;
}

void nfq_inline_stats(struct nfq_inline *q, unsigned i, struct nfq_queue_stats *out)
{
    struct nfq_worker *w = &q->w[i];

    out->queue_num = w->queue_num;
    out->packets = atomic_load_explicit(&w->packets, memory_order_relaxed);
    out->accepted = atomic_load_explicit(&w->accepted, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&w->dropped, memory_order_relaxed);
    out->bypassed = atomic_load_explicit(&w->bypassed, memory_order_relaxed);
    out->resets = atomic_load_explicit(&w->resets, memory_order_relaxed);
    out->errors = atomic_load_explicit(&w->errors, memory_order_relaxed);
    out->missed = atomic_load_explicit(&w->missed, memory_order_relaxed);
    out->fail_closed = q->cfg.fail_closed;
    out->flows = atomic_load_explicit(&w->flows, memory_order_relaxed);
    out->reload_uninspected = atomic_load_explicit(&w->reload_uninspected, memory_order_relaxed);
}
