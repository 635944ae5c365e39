/*
 * The container map: which container a flow belongs to.
 *
 * Containers are found in the cgroup hierarchy (Docker with the cgroupfs and
 * systemd drivers, cgroup v1 and v2, containerd/Kubernetes, CRI-O, podman)
 * and described by the Docker Engine API (name, image, labels, networks and
 * their addresses), kept current from Docker's event stream by a thread of
 * the map's own. Lookups never block on Docker: when Docker is down or
 * restarting, the map keeps what it knew, and flows of containers it never
 * saw are reported with the ID alone (from the cgroup) or as unknown.
 *
 * Bridge traffic is attributed by the container's address on a Docker
 * network; host-network traffic by the cgroup of the process owning the
 * socket (sock_diag finds the socket's inode, /proc the process).
 */
#ifndef SL_CONTAINERS_H
#define SL_CONTAINERS_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* What an event says of a container ("container" object of DESIGN.md). */
struct sl_container {
    char id[65];       /* full ID, lowercase hex; "" when unknown */
    char name[128];    /* without the leading '/'; "" when unknown */
    char image[256];   /* image name as the user gave it (Config.Image) */
    char network[128]; /* the network the flow's address is on, else the first one */
    char runtime[16];  /* "docker", "containerd", "cri-o", "podman" */
};

struct sl_container_map;

/* docker_sock: path of the Docker Engine API socket (default
 * /var/run/docker.sock). Starts the map's thread; never fails because Docker
 * is unavailable (it retries with backoff and says so once in the log). */
struct sl_container_map *sl_container_map_new(const char *docker_sock, char *err, size_t errlen);
void sl_container_map_free(struct sl_container_map *m);

/* By an address of a container on a Docker network (family 4 or 6, addr in
 * network byte order). 1 and fills out when known, else 0. */
int sl_container_by_addr(struct sl_container_map *m, int family, const uint8_t *addr,
                         struct sl_container *out);

/* By the local end of a socket on the host (host-network containers): the
 * owning process's cgroup names the container. l4proto is IPPROTO_TCP or
 * IPPROTO_UDP; addresses in network byte order, ports in host order. 1 and
 * fills out when the socket belongs to a container, else 0. Costs syscalls:
 * call once per flow, not per packet. */
int sl_container_by_socket(struct sl_container_map *m, int family, int l4proto,
                           const uint8_t *local, uint16_t lport, const uint8_t *remote,
                           uint16_t rport, struct sl_container *out);

/* By full or unique-prefix ID, or by name. 1 and fills out, 0 if none,
 * -1 if the prefix is ambiguous. */
int sl_container_find(struct sl_container_map *m, const char *id_or_name, struct sl_container *out);

/* A process of the running container with this full ID (its network
 * namespace is /proc/PID/ns/net), as the Docker API said; 0 if unknown. */
int sl_container_pid(struct sl_container_map *m, const char *id);

/* The same, each container also with "sluice": what sluice thinks of it
 * ("clean", "compromised", "isolated", ...), from sluice_state. */
void sl_container_map_json_with(struct sl_container_map *m, struct json *j,
                                const char *(*sluice_state)(void *ctx, const char *id), void *ctx);

/* The running containers known now, at most max of them. */
size_t sl_container_list(struct sl_container_map *m, struct sl_container *out, size_t max);

/* Every known container as a JSON array member "containers" of j (id, name,
 * image, runtime, networks with addresses, state), and "docker": "up" or
 * "down (reason)". For `sluicectl containers`. */
void sl_container_map_json(struct sl_container_map *m, struct json *j);

/* Pure helper, exposed for tests: the container ID and runtime in one line
 * of /proc/PID/cgroup ("0::/docker/<id>", "...:/system.slice/docker-<id>.scope",
 * "/kubepods/.../<id>", "crio-<id>.scope", "libpod-<id>.scope", ...).
 * Returns 1 and fills id (64 hex + NUL) and runtime, else 0. */
int sl_cgroup_container_id(const char *cgroup_line, char id[65], char runtime[16]);

#endif
