/*
 * Which container owns a host socket: sock_diag finds the socket's inode,
 * /proc the process holding it, and that process's cgroup the container.
 * Internal to appliance/ (the container map uses it for host-network flows).
 */
#ifndef SL_SOCKOWNER_H
#define SL_SOCKOWNER_H

#include <stdint.h>

struct sockowner;

struct sockowner *sockowner_new(void);
void sockowner_free(struct sockowner *so);

/* The inode of the socket with this local (and remote) end, by the exact
 * tuple, then for TCP a listener on the local address and port. 1 and
 * *inode, 0 if there is none, -1 if sock_diag failed (errno). */
int sockowner_inode(int family, int l4proto, const uint8_t *local, uint16_t lport,
                    const uint8_t *remote, uint16_t rport, uint32_t *inode);

/* The container of the process holding socket inode: 1 and id, runtime and
 * pid; 0 if no container process holds it. Only processes in containers
 * have their descriptors read; which processes those are is cached. */
int sockowner_container(struct sockowner *so, uint32_t inode, char id[65], char runtime[16],
                        int *pid);

/* The container of a process from /proc/PID/cgroup: 1, 0 if none, -1. */
int sockowner_pid_container(int pid, char id[65], char runtime[16]);

#endif
