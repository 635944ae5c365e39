/*
 * The control socket of sluiced (a Unix stream socket, default
 * /run/sluice/control.sock, mode 0600): `sluicectl` connects, writes one
 * command line, reads one JSON document and the server closes.
 *
 *   request:  "status\n" | "containers\n" | "reload\n" | other words later
 *   reply:    {"ok":true, ...} or {"ok":false,"error":"why"}
 *
 * The server runs in a thread of its own and calls back into the daemon;
 * callbacks run on that thread and must do their own locking.
 */
#ifndef SL_CONTROL_H
#define SL_CONTROL_H

#include <stddef.h>

#include "json.h"

struct sl_control_ops {
    void *ctx;
    /* Each fills members of the already open reply object; returns 0, or -1
     * with a reason in err (the reply becomes {"ok":false,"error":err}). */
    int (*status)(void *ctx, struct json *reply, char *err, size_t errlen);
    int (*containers)(void *ctx, struct json *reply, char *err, size_t errlen);
    int (*reload)(void *ctx, struct json *reply, char *err, size_t errlen);
    /* Any other command, split into words (at most 8); NULL or a reply of
     * "unknown command" for words it does not know. */
    int (*command)(void *ctx, int argc, char **argv, struct json *reply, char *err, size_t errlen);
};

struct sl_control;

/* Creates the socket (its folder too), replacing a stale one, and starts
 * serving. NULL with a reason in err if the socket cannot be made, or if
 * another sluiced answers on it. */
struct sl_control *sl_control_start(const char *path, const struct sl_control_ops *ops, char *err,
                                    size_t errlen);
/* Stops serving and removes the socket. */
void sl_control_stop(struct sl_control *c);

/* Client side, for sluicectl: sends cmd, returns the reply text (malloc'd,
 * NUL-terminated) or NULL with a reason in err ("sluiced is not running"
 * when nothing listens). timeout_ms bounds the whole exchange. */
char *sl_control_call(const char *path, const char *cmd, int timeout_ms, char *err, size_t errlen);

#endif
