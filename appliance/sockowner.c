/*
 * Socket to process to container, for host-network containers, whose flows
 * carry the host's addresses and so say nothing of the container.
 *
 * sock_diag answers "which socket has this 4-tuple" in one netlink round
 * trip. The kernel has no index from a socket to its processes, so the
 * owner is found by reading /proc/PID/fd links; to keep that bounded, only
 * processes that are in a container have their descriptors read, which
 * process is in which container is cached for a while (a process does not
 * change container), and the processes that owned the last sockets found
 * are tried first (a server's sockets keep coming from the same workers).
 */
#include "sockowner.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "containers.h"
#include "log.h"

#define PID_CACHE_SLOTS   4096 /* a power of two */
#define PID_CACHE_SECONDS 30
#define HOT_PIDS          8
#define MAX_FD_READS      200000 /* per lookup: a host with that many open files is rare */

struct pid_entry {
    int pid;
    int in_container;
    time_t expires;
    char id[65];
    char runtime[16];
};

struct sockowner {
    pthread_mutex_t lock; /* held for cache memory only, never across I/O */
    struct pid_entry cache[PID_CACHE_SLOTS];
    int hot[HOT_PIDS];
    unsigned hot_next;
};

struct sockowner *sockowner_new(void)
{
    struct sockowner *so = calloc(1, sizeof(*so));

    if (so == NULL)
        return NULL;
    pthread_mutex_init(&so->lock, NULL);
    return so;
}

void sockowner_free(struct sockowner *so)
{
    if (so == NULL)
        return;
    pthread_mutex_destroy(&so->lock);
    free(so);
}

/* One sock_diag exact lookup: 1 and inode, 0 if none, -1. */
static int diag_one(int family, int l4proto, const uint8_t *src, uint16_t sport, const uint8_t *dst,
                    uint16_t dport, uint16_t want_lport, uint32_t *inode)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
    union {
        char buf[8192];
        struct nlmsghdr align;
    } rep;
    size_t alen = family == AF_INET ? 4 : 16;
    int fd, found = 0;
    ssize_t n;

    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.nlh.nlmsg_seq = 1;
    req.r.sdiag_family = (uint8_t)family;
    req.r.sdiag_protocol = (uint8_t)l4proto;
    req.r.idiag_states = ~0u;
    req.r.id.idiag_sport = htons(sport);
    req.r.id.idiag_dport = htons(dport);
    memcpy(req.r.id.idiag_src, src, alen);
    memcpy(req.r.id.idiag_dst, dst, alen);
    req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd == -1)
        return -1;
    if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    do
        n = recv(fd, rep.buf, sizeof(rep.buf), 0);
    while (n == -1 && errno == EINTR);
    close(fd);
    if (n == -1)
        return -1;
    for (struct nlmsghdr *h = &rep.align; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
            struct nlmsgerr *e = NLMSG_DATA(h);
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                return -1;
            if (e->error == 0 || e->error == -ENOENT)
                return found;
            errno = -e->error;
            return -1;
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
            continue;
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
            return -1;
        struct inet_diag_msg *m = NLMSG_DATA(h);
        /* Time-wait and request sockets have no inode, hence no owner here. */
        if (m->idiag_inode != 0 && ntohs(m->id.idiag_sport) == want_lport) {
            *inode = m->idiag_inode;
            found = 1;
        }
    }
    return found;
}

/* Every socket of the family dumped, for one whose local port and remote end
 * match whatever its local address: a connection redirected by NAT on the
 * host (sluice's TLS proxy) is seen with another local address than the
 * socket's own. 1 and inode, 0, -1. */
static int diag_any_local(int family, int l4proto, uint16_t lport, const uint8_t *remote,
                          uint16_t rport, uint32_t *inode)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
    union {
        char buf[32768];
        struct nlmsghdr align;
    } rep;
    size_t alen = family == AF_INET ? 4 : 16;
    int fd, found = 0, done = 0;

    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nlh.nlmsg_seq = 2;
    req.r.sdiag_family = (uint8_t)family;
    req.r.sdiag_protocol = (uint8_t)l4proto;
    req.r.idiag_states = ~(1u << 10); /* all but listeners */
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd == -1)
        return -1;
    if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) == -1) {
        close(fd);
        return -1;
    }
    while (!done) {
        ssize_t n = recv(fd, rep.buf, sizeof(rep.buf), 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (struct nlmsghdr *h = &rep.align; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
                done = 1;
                break;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            struct inet_diag_msg *m = NLMSG_DATA(h);
            if (!found && m->idiag_inode != 0 && ntohs(m->id.idiag_sport) == lport &&
                ntohs(m->id.idiag_dport) == rport && memcmp(m->id.idiag_dst, remote, alen) == 0) {
                *inode = m->idiag_inode;
                found = 1;
            }
        }
    }
    close(fd);
    return found;
}

int sockowner_inode(int family, int l4proto, const uint8_t *local, uint16_t lport,
                    const uint8_t *remote, uint16_t rport, uint32_t *inode)
{
    static const uint8_t any[16];
    int r;

    if ((family != AF_INET && family != AF_INET6) ||
        (l4proto != IPPROTO_TCP && l4proto != IPPROTO_UDP)) {
        errno = EINVAL;
        return -1;
    }
    r = diag_one(family, l4proto, local, lport, remote, rport, lport, inode);
    if (r != 0)
        return r;
    if (l4proto == IPPROTO_UDP) {
        /* The UDP lookup reads the tuple from the remote side's view. */
        r = diag_one(family, l4proto, remote, rport, local, lport, lport, inode);
        if (r != 0)
            return r;
    }
    if (l4proto == IPPROTO_TCP) {
        /* Not yet accepted, or gone to time-wait: the listener owns it. */
        r = diag_one(family, l4proto, local, lport, any, 0, lport, inode);
        if (r != 0)
            return r;
        r = diag_any_local(family, l4proto, lport, remote, rport, inode);
        if (r != 0)
            return r;
    }
    if (family == AF_INET) {
        /* A dual-stack IPv6 socket serving an IPv4 peer: v4-mapped. */
        uint8_t l6[16] = {[10] = 0xff, [11] = 0xff}, r6[16] = {[10] = 0xff, [11] = 0xff};
        memcpy(l6 + 12, local, 4);
        memcpy(r6 + 12, remote, 4);
        return sockowner_inode(AF_INET6, l4proto, l6, lport, r6, rport, inode);
    }
    return 0;
}

int sockowner_pid_container(int pid, char id[65], char runtime[16])
{
    char path[64], line[1024];
    FILE *f;
    int found = 0;

    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (!found && fgets(line, sizeof(line), f))
        found = sl_cgroup_container_id(line, id, runtime);
    fclose(f);
    return found;
}

static time_t now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* Whether pid is in a container, from the cache or /proc. */
static int classify(struct sockowner *so, int pid, char id[65], char runtime[16])
{
    struct pid_entry *e = &so->cache[(unsigned)pid & (PID_CACHE_SLOTS - 1)];
    time_t now = now_sec();
    int r;

    pthread_mutex_lock(&so->lock);
    if (e->pid == pid && e->expires > now) {
        r = e->in_container;
        if (r) {
            memcpy(id, e->id, 65);
            memcpy(runtime, e->runtime, 16);
        }
        pthread_mutex_unlock(&so->lock);
        return r;
    }
    pthread_mutex_unlock(&so->lock);

    r = sockowner_pid_container(pid, id, runtime);
    if (r < 0)
        return 0; /* gone */
    pthread_mutex_lock(&so->lock);
    e->pid = pid;
    e->in_container = r;
    e->expires = now + PID_CACHE_SECONDS;
    if (r) {
        memcpy(e->id, id, 65);
        memcpy(e->runtime, runtime, 16);
    }
    pthread_mutex_unlock(&so->lock);
    return r;
}

/* Whether pid holds the socket: 1, 0, or 0 with *budget spent. */
static int holds(int pid, const char *want, size_t wantlen, long *budget)
{
    char path[64], link[64];
    DIR *d;
    struct dirent *de;
    int found = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    d = opendir(path);
    if (d == NULL)
        return 0;
    while (!found && *budget > 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        (*budget)--;
        ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link));
        found = n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0;
    }
    closedir(d);
    return found;
}

int sockowner_container(struct sockowner *so, uint32_t inode, char id[65], char runtime[16],
                        int *pid)
{
    char want[40];
    size_t wantlen;
    int hot[HOT_PIDS];
    long budget = MAX_FD_READS;
    DIR *d;
    struct dirent *de;
    int found = 0;

    wantlen = (size_t)snprintf(want, sizeof(want), "socket:[%u]", inode);
    pthread_mutex_lock(&so->lock);
    memcpy(hot, so->hot, sizeof(hot));
    pthread_mutex_unlock(&so->lock);

    for (int i = 0; i < HOT_PIDS; i++) {
        if (hot[i] > 0 && classify(so, hot[i], id, runtime) &&
            holds(hot[i], want, wantlen, &budget)) {
            *pid = hot[i];
            return 1;
        }
    }

    d = opendir("/proc");
    if (d == NULL) {
        log_warn("container map: /proc");
        return 0;
    }
    while (!found && (de = readdir(d)) != NULL) {
        char *end;
        long p = strtol(de->d_name, &end, 10);
        if (*end != '\0' || p <= 0 || p > INT32_MAX)
            continue;
        if (!classify(so, (int)p, id, runtime))
            continue;
        if (holds((int)p, want, wantlen, &budget)) {
            *pid = (int)p;
            found = 1;
        }
        if (budget <= 0) {
            log_debug("container map: socket inode %u: gave up after %d descriptors", inode,
                      MAX_FD_READS);
            break;
        }
    }
    closedir(d);
    if (found) {
        pthread_mutex_lock(&so->lock);
        so->hot[so->hot_next++ % HOT_PIDS] = *pid;
        pthread_mutex_unlock(&so->lock);
    }
    return found;
}
