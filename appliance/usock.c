#include "usock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sl_sys.h"

int sl_usock_addr(struct sockaddr_un *sun, const char *path, char *err, size_t errlen)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "%s: path too long for a Unix socket (%zu bytes at most)", path,
                 sizeof(sun->sun_path) - 1);
        return -1;
    }
    memcpy(sun->sun_path, path, strlen(path) + 1);
    return 0;
}

/* A socket file nobody answers on is left by a crash: it goes. */
static int clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: exists and is not a socket", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int saved = errno;
    close(fd);
    if (rc == 0 || saved == EAGAIN) {
        snprintf(err, errlen, "%s: another sluiced is answering on this socket", path);
        return -1;
    }
    if (saved != ECONNREFUSED && saved != ENOENT) {
        snprintf(err, errlen, "%s: %s", path, strerror(saved));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: cannot remove the stale socket: %s", path, strerror(errno));
        return -1;
    }
    log_info("%s: replaced a stale socket", path);
    return 0;
}

int sl_usock_listen(const char *path, mode_t mode, gid_t gid, int backlog, dev_t *dev, ino_t *ino,
                    char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;

    if (sl_usock_addr(&sun, path, err, errlen) != 0)
        return -1;
    if (sl_make_parent(path, 0755) != 0) {
        snprintf(err, errlen, "%s: cannot create its folder: %s", path, strerror(errno));
        return -1;
    }
    if (clear_stale(path, &sun, err, errlen) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* The file takes the socket inode's mode less the umask: 0600 until its
     * group and mode are right, so nobody else reaches it in between. */
    if (fchmod(fd, 0600) != 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if ((gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) || chmod(path, mode) != 0 ||
        stat(path, &st) != 0 || listen(fd, backlog) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    return fd;
}

void sl_usock_unlink(const char *path, dev_t dev, ino_t ino)
{
    struct stat st;
    if (stat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino && unlink(path) != 0)
        log_warn("%s: cannot remove the socket", path);
}
