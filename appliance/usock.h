/*
 * The listening Unix sockets of sluiced (control, detections): one way to
 * make one and to remove it (internal to appliance/).
 */
#ifndef SL_USOCK_H
#define SL_USOCK_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

/* The address of path, or -1 when it is too long for a Unix socket. */
int sl_usock_addr(struct sockaddr_un *sun, const char *path, char *err, size_t errlen);

/*
 * A non-blocking listening stream socket at path: its folder made (0755),
 * a stale socket file (nothing answers) replaced, a live one an error
 * ("another sluiced is answering"), the file's group gid (or left as is
 * with -1) and mode set before anyone can connect. Returns the fd and the
 * file's identity (for sl_usock_unlink), or -1 with the reason in err.
 */
int sl_usock_listen(const char *path, mode_t mode, gid_t gid, int backlog, dev_t *dev, ino_t *ino,
                    char *err, size_t errlen);
/* Removes path if it is still the socket file made (a newer sluiced may
 * have replaced it since: that one stays). */
void sl_usock_unlink(const char *path, dev_t dev, ino_t ino);

#endif
