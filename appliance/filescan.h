/*
 * sluice-filescan's parts, internal to the program: filescan.c finds
 * containers, walks and watches their files and reports; filescan_act.c does
 * what --action asks to a file found (delete, quarantine, stop) and undoes a
 * quarantine.
 */
#ifndef SL_FILESCAN_H
#define SL_FILESCAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define FS_DEFAULT_QUARANTINE LOCALSTATEDIR "/lib/sluice/quarantine"

enum fs_action { FS_ACTION_NONE = 0, FS_ACTION_DELETE, FS_ACTION_QUARANTINE, FS_ACTION_STOP };

/* A running container as the scanner sees it. */
struct fs_container {
    char id[65];
    char name[128];  /* "" when Docker did not say */
    char image[256]; /* "" when Docker did not say */
    pid_t pid;       /* its lowest process id: /proc/PID/root is its root */
};

/* A file found to match, and what was scanned of it. */
struct fs_found {
    const struct fs_container *c;
    const char *path;   /* inside the container, absolute */
    struct stat st;     /* of the file scanned: the action checks it is still that file */
    const uint8_t *buf; /* its bytes as scanned */
    size_t len;
    const char *signature;
    const char *sha256;
    const char *time; /* RFC 3339 */
};

/*
 * Opens path (absolute, inside the container whose process pid is given)
 * with symlinks and ".." resolved inside the container's root, never outside
 * it. flags as openat(2); -1 with errno.
 */
int fs_open_in_root(pid_t pid, const char *path, int flags, mode_t mode);

/* Removes the file if it is still the one scanned. 0, or -1 with err. */
int fs_delete(const struct fs_found *f, char *err, size_t errlen);
/* Copies the scanned bytes and a metadata file into dir (made 0700), then
 * removes the file; id (at least 64 bytes) names the entry. 0 or -1. */
int fs_quarantine(const struct fs_found *f, const char *dir, char *id, size_t idlen, char *err,
                  size_t errlen);
/* Puts a quarantined file back where it was (the container must be running
 * again, or be the same one). 0 or -1 with err. */
int fs_restore(const char *dir, const char *id, char *err, size_t errlen);
/* Docker API: stop the container. 0 or -1 with err. */
int fs_stop(const char *docker_sock, const char *id, char *err, size_t errlen);

/* The running containers, found from /proc (the cgroup of each process).
 * Returns how many (at most max), or -1. Names and images are filled from
 * docker_sock when it answers; *docker_ok says whether it did. */
int fs_containers(const char *docker_sock, struct fs_container *out, size_t max, int *docker_ok);

#endif
