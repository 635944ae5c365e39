/*
 * sluice's CA into a running container's trust store, through the Docker
 * Engine API (internal to appliance/).
 */
#ifndef SL_CA_INSTALL_H
#define SL_CA_INSTALL_H

#include <stddef.h>

/* id: full container ID. 0 with what was done in msg (and the environment
 * variables runtimes with their own stores need), or -1 with exactly why
 * not (no shell, no trust-store tool, read-only root filesystem, ...). */
int sl_ca_install(const char *docker_sock, const char *id, const char *pem, char *msg,
                  size_t msglen);

#endif
