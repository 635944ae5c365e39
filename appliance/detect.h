/*
 * The detection socket: where file scanners (sluice-filescan, or any other)
 * report malware they found in a container's filesystem, so that it joins
 * the network findings and the compromise judge.
 *
 * A Unix stream socket taking JSON lines, one detection per line, each
 * answered with one line: {"ok":true,"id":N} once the detection was handed to
 * the daemon, {"ok":false,"error":"why"} when it was refused. One thread
 * serves every client with poll: non-blocking, bounded lines and buffers, so
 * a slow or hostile client delays only itself. doc/detections.md has the
 * protocol.
 */
#ifndef SL_DETECT_H
#define SL_DETECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SL_DETECT_MAX_LINE 65536 /* bytes of one line, newline excluded */

/* One detection as a scanner sent it, checked: every string is NUL-terminated
 * and free of control characters; absent optional fields are "". */
struct sl_detection {
    char container[129];  /* ID, ID prefix (12 or more) or name; "" with host_path */
    char host_path[4096]; /* the file on the host, when outside any known container */
    char path[4096];      /* the file inside the container (absolute) */
    char sha256[65];      /* lowercase hex, or "" */
    char signature[256];  /* what matched */
    char action[16];      /* "none", "deleted", "quarantined" or "stopped" */
    char scanner[64];     /* who found it, or "" */
    char time[40];        /* RFC 3339, or "" */
};

/* Parses one line (no newline needed; len bytes). 0 and fills out, or -1 with
 * the reason in err. Pure, for tests and fuzzing. */
int sl_detection_parse(const char *line, size_t len, struct sl_detection *out, char *err,
                       size_t errlen);

struct sl_detect_stats {
    uint64_t accepted;  /* detections acknowledged */
    uint64_t malformed; /* lines refused */
    uint64_t refused;   /* clients refused by their credentials or for lack of room */
    uint64_t clients;   /* clients connected now */
};

struct sl_detect;

typedef void (*sl_detect_cb)(void *ctx, const struct sl_detection *d, uint64_t id, pid_t peer_pid,
                             uid_t peer_uid);

/*
 * Creates the socket at path (mode 0660, group group or, when NULL, the
 * daemon's own) and starts its thread. Only root, the daemon's user and
 * members of the socket's group may talk to it. on_detection runs on that
 * thread, once per valid line, with ids increasing from 1; the client's ack
 * is sent after it returns. NULL with err on failure.
 */
struct sl_detect *sl_detect_start(const char *path, const char *group, sl_detect_cb on_detection,
                                  void *ctx, char *err, size_t errlen);
/* Stops the thread, closes every client, removes the socket file. */
void sl_detect_stop(struct sl_detect *d);
void sl_detect_stats(const struct sl_detect *d, struct sl_detect_stats *out);

#endif
