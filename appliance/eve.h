/*
 * The event log: one JSON object per line, with Suricata eve.json field
 * names where one exists (timestamp, flow_id, event_type, src_ip, ...,
 * http, tls, fileinfo, alert) plus sluice's own (ndpi, container).
 */
#ifndef SL_EVE_H
#define SL_EVE_H

#include <stdio.h>

#include "containers.h"
#include "dpi.h"
#include "json.h"

/* How an event's alerts were acted on. */
enum eve_mode {
    EVE_AUDIT = 0, /* nothing is blocked: alerts say what would have been */
    EVE_ENFORCE,   /* a "block" alert was enforced */
};

struct eve {
    FILE *fp;
    int is_stdout;
    char *path;
    struct json j;
    uint64_t written, failed;
};

/* path "-" is stdout. Creates the parent folder if missing. */
struct eve *eve_open(const char *path, char *err, size_t errlen);
void eve_close(struct eve *ev);
/* Formats one event into j (reset first). container, and tls (the facts of
 * an intercepted connection, for events that have none of their own), may
 * be NULL. */
void eve_format(struct json *j, const struct dpi_event *ev, enum eve_mode mode,
                const struct sl_container *container, const struct dpi_tls_facts *tls);
/* Formats and writes one line; -1 if the write failed (counted). */
int eve_write(struct eve *ev, const struct dpi_event *e, enum eve_mode mode);
/* Events of the appliance itself: a container isolated or released
 * (action "isolate", "release", "stop"), a file scanner's detection. */
void eve_format_isolation(struct json *j, uint64_t ts_us, const struct sl_container *c,
                          const char *action, const char *reason, const char *detail);
void eve_format_detection(struct json *j, uint64_t ts_us, const struct sl_container *c,
                          const char *signature, const char *path, const char *sha256,
                          const char *action, const char *scanner);
/* Writes one formatted line (without its newline). */
int eve_write_line(struct eve *ev, const char *line, size_t len);
int eve_flush(struct eve *ev);

#endif
