/*
 * The floor of what NFQUEUE costs: every packet queued to user space and
 * accepted, with nothing looked at. The inline benchmark puts this program
 * where sluiced's queue rule would be, so the table shows how much of
 * sluiced's cost is the kernel boundary itself and how much is inspection.
 *
 * It does what sluiced's workers do at the boundary and nothing else: one
 * thread and netlink socket per queue, whole packets copied (GSO, the same
 * copy range, queue length and socket buffer), the packets read in one go
 * answered by batch verdicts of at most BATCH_MAX. It never marks a
 * connection as decided, so unlike sluiced it keeps every packet of every
 * flow in the queue.
 *
 *   nfq-accept QUEUE_BASE QUEUES       until SIGINT or SIGTERM; then prints
 *                                      "packets N" on standard output
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PKT_MAX     0x10000
#define RECV_BUF    (PKT_MAX + MNL_SOCKET_BUFFER_SIZE)
#define QUEUE_LEN   65536
#define BATCH_MAX   64
#define SOCK_RCVBUF (8 * 1024 * 1024)

struct acceptor {
    uint16_t queue_num;
    struct mnl_socket *nl;
    unsigned portid;
    pthread_t thread;
    uint64_t packets;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* A configuration message and the kernel's acknowledgement of it. */
static int request(struct acceptor *a, struct nlmsghdr *nlh, unsigned seq)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];

    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    if (mnl_socket_sendto(a->nl, nlh, nlh->nlmsg_len) < 0)
        return -1;
    ssize_t n = mnl_socket_recvfrom(a->nl, buf, sizeof(buf));
    if (n < 0)
        return -1;
    return mnl_cb_run(buf, (size_t)n, seq, a->portid, NULL, NULL) < 0 ? -1 : 0;
}

static int config(struct acceptor *a)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, a->queue_num);
    uint32_t flags = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;

    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
    if (request(a, nlh, 1) < 0)
        return -1;
    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, a->queue_num);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, PKT_MAX);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, QUEUE_LEN);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
    return request(a, nlh, 2);
}

static void verdict_batch(struct acceptor *a, uint32_t last)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT_BATCH, a->queue_num);

    nfq_nlmsg_verdict_put(nlh, (int)last, NF_ACCEPT);
    if (mnl_socket_sendto(a->nl, nlh, nlh->nlmsg_len) < 0)
        fprintf(stderr, "nfq-accept: queue %u: verdict: %s\n", a->queue_num, strerror(errno));
}

struct batch {
    struct acceptor *a;
    uint32_t last;
    int open; /* packets read, not answered yet */
};

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
    struct batch *b = data;
    struct nlattr *attr[NFQA_MAX + 1] = {NULL};

    if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL)
        return MNL_CB_OK;
    const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    b->last = ntohl(ph->packet_id);
    b->a->packets++;
    if (++b->open >= BATCH_MAX) {
        verdict_batch(b->a, b->last);
        b->open = 0;
    }
    return MNL_CB_OK;
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    char *buf = malloc(RECV_BUF);
    struct pollfd pfd = {.fd = mnl_socket_get_fd(a->nl), .events = POLLIN};

    if (buf == NULL)
        return NULL;
    while (!stopping) {
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        struct batch b = {.a = a};
        for (;;) {
            ssize_t n = recv(pfd.fd, buf, RECV_BUF, MSG_DONTWAIT);
            if (n <= 0)
                break;
            mnl_cb_run(buf, (size_t)n, 0, a->portid, on_packet, &b);
        }
        if (b.open)
            verdict_batch(a, b.last);
    }
    free(buf);
    return NULL;
}

static int acceptor_open(struct acceptor *a)
{
    int rcvbuf = SOCK_RCVBUF, one = 1;

    a->nl = mnl_socket_open(NETLINK_NETFILTER);
    if (a->nl == NULL || mnl_socket_bind(a->nl, 0, MNL_SOCKET_AUTOPID) < 0)
        return -1;
    a->portid = mnl_socket_get_portid(a->nl);
    int fd = mnl_socket_get_fd(a->nl);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
    return config(a);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: nfq-accept QUEUE_BASE QUEUES\n");
        return 2;
    }
    int base = atoi(argv[1]), n = atoi(argv[2]);
    if (base < 0 || base > 65535 || n < 1 || n > 64 || base + n > 65536) {
        fprintf(stderr, "nfq-accept: queues %s..+%s out of range\n", argv[1], argv[2]);
        return 2;
    }
    struct acceptor *as = calloc((size_t)n, sizeof(*as));
    if (as == NULL)
        return 1;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    for (int i = 0; i < n; i++) {
        as[i].queue_num = (uint16_t)(base + i);
        if (acceptor_open(&as[i]) < 0) {
            fprintf(stderr, "nfq-accept: queue %d: %s\n", base + i, strerror(errno));
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&as[i].thread, NULL, acceptor_main, &as[i]) != 0) {
            fprintf(stderr, "nfq-accept: cannot start a thread\n");
            return 1;
        }
    }
    /* Ready: the benchmark waits for this line before it adds its rule. */
    printf("ready\n");
    fflush(stdout);

    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(as[i].thread, NULL);
        total += as[i].packets;
        mnl_socket_close(as[i].nl);
    }
    printf("packets %llu\n", (unsigned long long)total);
    free(as);
    return 0;
}
