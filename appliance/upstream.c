#include "upstream.h"

#include "log.h"
#include "nfq.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct sl_upstream {
    int host_ns;    /* the host's network namespace */
    ino_t host_ino; /* and its inode, to know a host-network container */
    uint32_t mark;  /* of host sockets: never redirected, never queued */
    struct nfq_exempt *exempt;
};

struct sl_upstream *sl_upstream_new(uint32_t host_mark, char *err, size_t errlen)
{
    struct sl_upstream *u = calloc(1, sizeof(*u));
    struct stat st;

    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    u->mark = host_mark;
    u->host_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (u->host_ns < 0 || fstat(u->host_ns, &st) < 0) {
        snprintf(err, errlen, "/proc/thread-self/ns/net: %s", strerror(errno));
        sl_upstream_free(u);
        return NULL;
    }
    u->host_ino = st.st_ino;
    u->exempt = nfq_exempt_open(err, errlen);
    if (u->exempt == NULL) {
        sl_upstream_free(u);
        return NULL;
    }
    return u;
}

void sl_upstream_free(struct sl_upstream *u)
{
    if (u == NULL)
        return;
    if (u->host_ns >= 0)
        close(u->host_ns);
    nfq_exempt_close(u->exempt);
    free(u);
}

static int host_socket(struct sl_upstream *u, int family, char *why, size_t whylen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "upstream socket: %s", strerror(errno));
        return -1;
    }
    if (u->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &u->mark, sizeof(u->mark)) < 0) {
        snprintf(why, whylen, "SO_MARK: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* A socket of family in the namespace ns; this thread comes back to the
 * host's at once. */
static int socket_in(struct sl_upstream *u, int ns, int family, char *why, size_t whylen)
{
    if (setns(ns, CLONE_NEWNET) < 0) {
        snprintf(why, whylen, "entering the container's network namespace: %s", strerror(errno));
        return -1;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int e = errno;
    if (setns(u->host_ns, CLONE_NEWNET) < 0) {
        /* Every later socket of this thread would be the container's. */
        log_warn("returning to the host's network namespace");
        abort();
    }
    if (fd < 0)
        snprintf(why, whylen, "upstream socket in the container: %s", strerror(e));
    return fd;
}

int sl_upstream_socket(struct sl_upstream *u, int pid, const struct sockaddr *client,
                       const struct sockaddr *server, char *why, size_t whylen)
{
    int family = server->sa_family;
    char path[64];
    struct stat st;

    if (pid <= 0 || client->sa_family != family)
        return host_socket(u, family, why, whylen);
    snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
        snprintf(why, whylen, "the container's network namespace (%s): %s", path, strerror(errno));
        return -1;
    }
    if (fstat(ns, &st) == 0 && st.st_ino == u->host_ino) {
        close(ns); /* a host-network container */
        return host_socket(u, family, why, whylen);
    }
    int fd = socket_in(u, ns, family, why, whylen);
    close(ns);
    if (fd < 0)
        return -1;

    struct sockaddr_storage local;
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&local, client, len);
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&local)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&local)->sin_port = 0;
    if (bind(fd, (struct sockaddr *)&local, len) < 0) {
        /* A stale process ID: the address belongs to another namespace. */
        snprintf(why, whylen, "binding the container's address in its namespace: %s",
                 strerror(errno));
        goto fail;
    }
    len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) {
        snprintf(why, whylen, "getsockname: %s", strerror(errno));
        goto fail;
    }
    const uint8_t *addr;
    uint16_t port;
    if (family == AF_INET6) {
        addr = ((struct sockaddr_in6 *)&local)->sin6_addr.s6_addr;
        port = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
    } else {
        addr = (const uint8_t *)&((struct sockaddr_in *)&local)->sin_addr;
        port = ntohs(((struct sockaddr_in *)&local)->sin_port);
    }
    if (nfq_exempt_add(u->exempt, family == AF_INET6 ? 6 : 4, addr, port, why, whylen) < 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}
