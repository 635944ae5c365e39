/*
 * The TLS proxy's upstream sockets, made where the container's own would
 * be: in a bridged container's network namespace, bound to its address, so
 * that the host's forwarding rules (sluice's isolation, Docker's network
 * isolation, the operator's DOCKER-USER rules) judge the proxy's connection
 * as they would judge the container's, and the server sees the container's
 * address. Host-network containers share the host's namespace: their
 * upstream sockets are the host's, marked as sluice's own.
 */
#ifndef SL_UPSTREAM_H
#define SL_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;
struct sl_upstream;

/* Remembers this thread's network namespace (the host's) to come back to.
 * NULL with a reason. */
struct sl_upstream *sl_upstream_new(uint32_t host_mark, char *err, size_t errlen);
void sl_upstream_free(struct sl_upstream *u);

/*
 * A TCP socket, not connected, for a connection from client (the
 * container's address, as redirected) to server: made in the network
 * namespace of pid (a process of the container; 0: the host's) and bound
 * there to the client's address, its port exempted from the TLS redirect.
 * -1 with why ("the container's address is no longer its own", ...).
 * Thread-safe: the namespace switch is the calling thread's only.
 */
int sl_upstream_socket(struct sl_upstream *u, int pid, const struct sockaddr *client,
                       const struct sockaddr *server, char *why, size_t whylen);

#endif
