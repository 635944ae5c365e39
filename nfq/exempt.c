/*
 * The TLS proxy's upstream connections leave from the container's own
 * network namespace, so that the host's forwarding rules (isolation,
 * Docker's network isolation, the operator's DOCKER-USER rules) judge them
 * as the container's. Such a connection comes in on the bridge like the
 * container's own and would be redirected to the proxy again: each one's
 * (address, port) is put in an ipset that the redirect rule skips. The port
 * is bound by the proxy's socket in the container's namespace, so the
 * container cannot use the same pair meanwhile.
 *
 * ipset speaks netlink (NFNL_SUBSYS_IPSET); the sets are made and destroyed
 * here too, so no ipset tool is needed.
 */
#include "nfq.h"

#include <netinet/in.h>

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nfnetlink.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An element outlives the connection's first packet by far; a port the
 * proxy binds again refreshes it. */
#define EXEMPT_TIMEOUT_S 120

struct nfq_exempt {
    pthread_mutex_t lock;
    struct mnl_socket *nl;
    unsigned portid, seq;
};

static const char *set_name(int family)
{
    return family == 6 ? NFQ_TLS_EXEMPT_SET6 : NFQ_TLS_EXEMPT_SET4;
}

static struct nlmsghdr *msg_start(char *buf, int cmd, int family, unsigned seq)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_IPSET << 8) | (unsigned)cmd;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
    nfg->nfgen_family = family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = htons(0);
    mnl_attr_put_u8(nlh, IPSET_ATTR_PROTOCOL, IPSET_PROTOCOL);
    mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, set_name(family));
    return nlh;
}

/* Sends nlh and reads the kernel's answer: 0, or -1 with errno set. */
static int talk(struct mnl_socket *nl, unsigned portid, struct nlmsghdr *nlh)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
        return -1;
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
    if (n < 0)
        return -1;
    return mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, NULL, NULL) < 0 ? -1 : 0;
}

static struct mnl_socket *nl_open(unsigned *portid)
{
    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    if (nl == NULL)
        return NULL;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        mnl_socket_close(nl);
        return NULL;
    }
    *portid = mnl_socket_get_portid(nl);
    return nl;
}

/* ipset's own messages for the kernel's errors worth telling. */
static const char *ipset_strerror(int e)
{
    switch (e) {
    case IPSET_ERR_PROTOCOL:
        return "the kernel's ipset protocol differs";
    case IPSET_ERR_FIND_TYPE:
        return "the kernel has no hash:ip,port sets";
    case IPSET_ERR_EXIST_SETNAME2:
    case IPSET_ERR_EXIST:
        return "a set of that name exists with another type";
    case IPSET_ERR_BUSY:
        return "the set is in use by a rule";
    default:
        return e < IPSET_ERR_PRIVATE ? strerror(e) : "ipset error";
    }
}

int nfq_exempt_sets_create(char *err, size_t errlen)
{
    unsigned portid, seq = (unsigned)time(NULL);
    struct mnl_socket *nl = nl_open(&portid);
    char buf[MNL_SOCKET_BUFFER_SIZE];
    int rc = 0;

    if (nl == NULL) {
        snprintf(err, errlen, "netlink: %s", strerror(errno));
        return -1;
    }
    for (int family = 4; family <= 6 && rc == 0; family += 2) {
        /* The newest revision this kernel knows. */
        int e = IPSET_ERR_FIND_TYPE;
        for (int rev = 8; rev >= 1 && e == IPSET_ERR_FIND_TYPE; rev--) {
            struct nlmsghdr *nlh = msg_start(buf, IPSET_CMD_CREATE, family, ++seq);
            mnl_attr_put_strz(nlh, IPSET_ATTR_TYPENAME, "hash:ip,port");
            mnl_attr_put_u8(nlh, IPSET_ATTR_REVISION, (uint8_t)rev);
            mnl_attr_put_u8(nlh, IPSET_ATTR_FAMILY, family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
            struct nlattr *data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA);
            mnl_attr_put_u32(nlh, IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER,
                             htonl(EXEMPT_TIMEOUT_S));
            mnl_attr_nest_end(nlh, data);
            e = talk(nl, portid, nlh) == 0 ? 0 : errno;
        }
        if (e) {
            snprintf(err, errlen, "ipset %s: %s", set_name(family), ipset_strerror(e));
            rc = -1;
        }
    }
    mnl_socket_close(nl);
    return rc;
}

void nfq_exempt_sets_destroy(void)
{
    unsigned portid;
    struct mnl_socket *nl = nl_open(&portid);
    char buf[MNL_SOCKET_BUFFER_SIZE];

    if (nl == NULL)
        return;
    for (int family = 4; family <= 6; family += 2)
        talk(nl, portid, msg_start(buf, IPSET_CMD_DESTROY, family, (unsigned)time(NULL) + family));
    mnl_socket_close(nl);
}

struct nfq_exempt *nfq_exempt_open(char *err, size_t errlen)
{
    struct nfq_exempt *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    x->nl = nl_open(&x->portid);
    if (x->nl == NULL) {
        snprintf(err, errlen, "netlink: %s", strerror(errno));
        free(x);
        return NULL;
    }
    pthread_mutex_init(&x->lock, NULL);
    x->seq = (unsigned)time(NULL);
    return x;
}

void nfq_exempt_close(struct nfq_exempt *x)
{
    if (x == NULL)
        return;
    mnl_socket_close(x->nl);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

int nfq_exempt_add(struct nfq_exempt *x, int family, const uint8_t *addr, uint16_t port, char *err,
                   size_t errlen)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];

    pthread_mutex_lock(&x->lock);
    struct nlmsghdr *nlh = msg_start(buf, IPSET_CMD_ADD, family, ++x->seq);
    struct nlattr *data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA);
    struct nlattr *ip = mnl_attr_nest_start(nlh, IPSET_ATTR_IP);
    if (family == 6)
        mnl_attr_put(nlh, IPSET_ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER, 16, addr);
    else
        mnl_attr_put(nlh, IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER, 4, addr);
    mnl_attr_nest_end(nlh, ip);
    mnl_attr_put_u16(nlh, IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER, htons(port));
    mnl_attr_put_u8(nlh, IPSET_ATTR_PROTO, IPPROTO_TCP);
    mnl_attr_put_u32(nlh, IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER, htonl(EXEMPT_TIMEOUT_S));
    mnl_attr_nest_end(nlh, data);
    int rc = talk(x->nl, x->portid, nlh);
    int e = errno;
    pthread_mutex_unlock(&x->lock);
    if (rc < 0)
        snprintf(err, errlen, "ipset %s: %s", set_name(family), ipset_strerror(e));
    return rc;
}
