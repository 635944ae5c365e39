/*
 * sluicectl reports: the reports of sluiced (alert, anomaly, isolation and
 * detection events, and the TLS proxy's splices and refusals) read straight
 * from the event log, so they are there when the daemon is not.
 *
 * A busy host logs gigabytes of flow and http events for each alert, so a
 * line is parsed only when a plain substring test says it may be a report:
 * its "event_type" member holds one of the report types and, when a
 * container is asked for, the container's name or ID appears in it.
 *
 * --follow behaves as tail -F: the file is read to its end, then checked
 * every FOLLOW_TICK_MS; a file replaced under the same name (rotation) is
 * finished and the new one read from its start; a file cut shorter
 * (copytruncate) is read again from its start.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonp.h"
#include "log.h"
#include "sl_buf.h"
#include "sluicectl.h"

#define READ_CHUNK     (1 << 20)
#define MAX_LINE       (16 << 20) /* longer lines are skipped as malformed */
#define FOLLOW_TICK_MS 250
#define TABLE_BATCH    4096 /* rows held before printing: bounds memory */

static const char *const report_types[] = {"alert", "anomaly", "isolation", "detection"};
/* A "tls" event is a report when it carries the TLS proxy's decision
 * (tls.action: spliced, refused, ...); ClientHello facts are not. */
static const char tls_decision[] = "\"action\"";

static const char *const columns[] = {"TIME", "CONTAINER", "DIRECTION", "REMOTE",
                                      "URL",  "SIGNATURE", "ACTION"};
static const size_t column_caps[] = {19, 24, 9, 32, 48, 40, 0};

/* The last N matching lines, while the log is read for -n. */
struct ring {
    char **lines;
    size_t *lens;
    size_t cap, max, start, count;
};

struct reader {
    const struct reports_opts *o;
    size_t xlen;     /* strlen(o->container) */
    int x_prefilter; /* the container appears verbatim in its events */
    struct ctl_table table;
    struct ring ring; /* used when o->last >= 0 until the log's end */
    int live;         /* print each report as it comes */
    unsigned long long lineno, malformed, first_malformed, reports;
    char *prefix_id; /* the first ID matched by prefix only */
    int warned_ambiguous;
    int failed; /* out of memory */
};

struct logfile {
    const char *path;
    int fd;
    dev_t dev;
    ino_t ino;
    off_t off;
    struct sl_buf pending; /* a line whose end is not read yet */
    int pending_cut;       /* ... and was longer than MAX_LINE */
};

/* --- times ------------------------------------------------------------------- */

static int digits(const char *p, int n, int *val)
{
    *val = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        *val = *val * 10 + (p[i] - '0');
    }
    return 0;
}

/*
 * "YYYY-MM-DD[(T| )HH:MM:SS[.frac]][Z|±HH:MM|±HHMM]" to microseconds since
 * the epoch. Without a zone the time is local, which only --since accepts
 * (allow_local); the event log always carries one.
 */
static int parse_time(const char *s, int allow_local, int64_t *us)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, off = 0, local = 0;
    int64_t frac = 0;
    const char *p = s + 10;

    if (strlen(s) < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 9 || digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi) ||
            p[6] != ':' || digits(p + 7, 2, &sec))
            return -1;
        p += 9;
        if (*p == '.') {
            int64_t scale = 100000;
            if (p[1] < '0' || p[1] > '9')
                return -1;
            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                frac += (*p - '0') * scale;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        const char *q = p + 1;
        if (digits(q, 2, &oh))
            return -1;
        q += 2;
        if (*q == ':')
            q++;
        if (digits(q, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = (*p == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        p = q + 2;
    } else if (allow_local) {
        local = 1;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t;
    if (local) {
        tm.tm_isdst = -1;
        t = mktime(&tm);
    } else {
        t = timegm(&tm) - off;
    }
    *us = (int64_t)t * 1000000 + frac;
    return 0;
}

int reports_parse_since(const char *s, int64_t *us)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (s[0] >= '0' && s[0] <= '9' && end != s && end[0] && !end[1] && !errno && n >= 0) {
        static const struct {
            char unit;
            int64_t secs;
        } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (end[0] == units[i].unit) {
                if (n > 100LL * 365 * 86400 / units[i].secs)
                    return -1;
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                *us = ((int64_t)now.tv_sec - n * units[i].secs) * 1000000 + now.tv_nsec / 1000;
                return 0;
            }
        return -1;
    }
    return parse_time(s, 1, us);
}

/* "2026-11-23 17:40:01" in local time, or the timestamp as it is. */
static const char *local_time(const char *ts, char *buf, size_t len)
{
    int64_t us;
    struct tm tm;
    if (ts == NULL || parse_time(ts, 0, &us) != 0)
        return ts;
    time_t t = (time_t)(us / 1000000);
    if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        return ts;
    return buf;
}

/* --- one report -------------------------------------------------------------- */

/* Whether the line's event_type member names a report type, without parsing.
 * A match inside a string value cannot happen: there the quotes are escaped. */
static int maybe_report(const char *line, size_t len)
{
    static const char key[] = "\"event_type\"";
    const char *p = line, *end = line + len;

    while ((p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1)) != NULL) {
        const char *q = p + sizeof(key) - 1;
        p++;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q == end || *q != ':')
            continue;
        for (q++; q < end && (*q == ' ' || *q == '\t');)
            q++;
        if (q == end || *q != '"')
            continue;
        q++;
        for (size_t i = 0; i < sizeof(report_types) / sizeof(report_types[0]); i++) {
            size_t n = strlen(report_types[i]);
            if ((size_t)(end - q) > n && memcmp(q, report_types[i], n) == 0 && q[n] == '"')
                return 1;
        }
        if ((size_t)(end - q) > 3 && memcmp(q, "tls\"", 4) == 0)
            return memmem(line, len, tls_decision, sizeof(tls_decision) - 1) != NULL;
        return 0;
    }
    return 0;
}

static int is_report(const struct jsonp_value *ev)
{
    const char *type = jsonp_str(jsonp_get(ev, "event_type"), NULL);
    for (size_t i = 0; i < sizeof(report_types) / sizeof(report_types[0]); i++)
        if (type && strcmp(type, report_types[i]) == 0)
            return 1;
    return type && strcmp(type, "tls") == 0 && jsonp_path(ev, "tls.action") != NULL;
}

static int container_matches(struct reader *r, const struct jsonp_value *c)
{
    const char *x = r->o->container;
    const char *name = jsonp_str(jsonp_get(c, "name"), "");
    const char *id = jsonp_str(jsonp_get(c, "id"), "");

    if (name[0] == '/') /* as the Docker API spells names */
        name++;
    if (strcmp(name, x) == 0 || strcmp(id, x) == 0)
        return 1;
    if (r->xlen < 4 || strncmp(id, x, r->xlen) != 0)
        return 0;
    /* A prefix shared by two containers shows both, with a warning: the log
     * cannot say which one was meant. Events may carry a short ID: an ID that
     * starts the other is the same container. */
    size_t had = r->prefix_id ? strlen(r->prefix_id) : 0, len = strlen(id);
    if (r->prefix_id == NULL || (len > had && strncmp(r->prefix_id, id, had) == 0)) {
        free(r->prefix_id);
        r->prefix_id = strdup(id);
    } else if (strncmp(r->prefix_id, id, len < had ? len : had) != 0 && !r->warned_ambiguous) {
        r->warned_ambiguous = 1;
        log_warnx("warning: '%s' starts the IDs of more than one container (%.12s, %.12s): "
                  "showing all; give more of the ID or the name",
                  x, r->prefix_id, id);
    }
    return 1;
}

static void endpoint(const struct jsonp_value *ev, const char *ip_key, const char *port_key,
                     char *buf, size_t len)
{
    const char *ip = jsonp_str(jsonp_get(ev, ip_key), NULL);
    const struct jsonp_value *port = jsonp_get(ev, port_key);
    if (ip == NULL)
        buf[0] = '\0';
    else if (port == NULL || port->type != JSONP_NUMBER)
        snprintf(buf, len, "%s", ip);
    else
        snprintf(buf, len, strchr(ip, ':') ? "[%s]:%.0f" : "%s:%.0f", ip, port->num);
}

/* The far side: the server's name when one is known, else the address that
 * is not the container's (when the event says which is the container's,
 * else the destination: containers mostly open their connections). */
static const char *remote(const struct jsonp_value *ev, char *buf, size_t len)
{
    const char *host = jsonp_str(jsonp_path(ev, "http.hostname"), NULL);
    if (host == NULL || !host[0])
        host = jsonp_str(jsonp_path(ev, "tls.sni"), NULL);
    if (host && host[0])
        return host;
    const struct jsonp_value *c = jsonp_get(ev, "container");
    const char *dest = jsonp_str(jsonp_get(ev, "dest_ip"), "");
    static const char *const own[] = {"ip", "ipv4", "ipv6"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        const char *mine = jsonp_str(jsonp_get(c, own[i]), NULL);
        if (mine && strcmp(mine, dest) == 0) {
            endpoint(ev, "src_ip", "src_port", buf, len);
            return buf;
        }
    }
    endpoint(ev, "dest_ip", "dest_port", buf, len);
    return buf;
}

static int add_row(struct reader *r, const struct jsonp_value *ev, const char *type)
{
    const struct jsonp_value *alert = jsonp_get(ev, "alert");
    const struct jsonp_value *own = jsonp_get(ev, type); /* isolation{...}, detection{...} */
    const struct jsonp_value *c = jsonp_get(ev, "container");
    char tbuf[32], rbuf[128], idbuf[13], sbuf[256];
    const char *row[7];

    row[0] = local_time(jsonp_str(jsonp_get(ev, "timestamp"), NULL), tbuf, sizeof(tbuf));
    row[1] = jsonp_str(jsonp_get(c, "name"), NULL);
    if (row[1] == NULL || !row[1][0]) {
        const char *id = jsonp_str(jsonp_get(c, "id"), "");
        size_t n = strnlen(id, sizeof(idbuf) - 1);
        memcpy(idbuf, id, n);
        idbuf[n] = '\0';
        row[1] = idbuf;
    }
    const char *dir = jsonp_str(jsonp_path(ev, "fileinfo.direction"),
                                jsonp_str(jsonp_path(ev, "anomaly.direction"), ""));
    row[2] = strcmp(dir, "to_client") == 0   ? "download"
             : strcmp(dir, "to_server") == 0 ? "upload"
                                             : NULL;
    row[3] = remote(ev, rbuf, sizeof(rbuf));
    row[4] = jsonp_str(jsonp_path(ev, "http.url"), NULL);
    if (row[4] == NULL)
        row[4] =
            jsonp_str(jsonp_get(own, "path"), jsonp_str(jsonp_path(ev, "fileinfo.filename"), NULL));
    const struct jsonp_value *anomaly = jsonp_get(ev, "anomaly");
    if (alert == NULL && anomaly) {
        snprintf(sbuf, sizeof(sbuf), "anomaly: %s: %s", jsonp_str(jsonp_get(anomaly, "layer"), ""),
                 jsonp_str(jsonp_get(anomaly, "reason"), ""));
        row[5] = sbuf;
        alert = anomaly;
    }
    if (alert) {
        const struct jsonp_value *wb = jsonp_get(alert, "would_block");
        if (alert != anomaly)
            row[5] = jsonp_str(jsonp_get(alert, "signature"), NULL);
        row[6] = wb && wb->type == JSONP_BOOL && wb->boolean
                     ? "would block"
                     : jsonp_str(jsonp_get(alert, "action"), NULL);
    } else {
        row[5] = jsonp_str(jsonp_get(own, "signature"), jsonp_str(jsonp_get(own, "reason"), NULL));
        row[6] = jsonp_str(jsonp_get(own, "action"),
                           strcmp(type, "isolation") == 0 ? "isolated" : "detected");
    }
    if (ctl_table_add(&r->table, row) != 0)
        return -1;
    if (!r->live && r->table.nrows >= TABLE_BATCH)
        ctl_table_flush(&r->table, stdout);
    return 0;
}

/* Prints one report, parsed (ev) or not yet (ev NULL). */
static void emit(struct reader *r, const char *line, size_t len, const struct jsonp_value *ev)
{
    if (r->o->json) {
        fwrite(line, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }
    struct jsonp_doc *doc = NULL;
    char err[128];
    if (ev == NULL) {
        doc = jsonp_parse(line, len, err, sizeof(err));
        ev = doc ? jsonp_root(doc) : NULL;
    }
    if (ev && add_row(r, ev, jsonp_str(jsonp_get(ev, "event_type"), "")) != 0)
        r->failed = 1;
    jsonp_free(doc);
}

static int ring_push(struct ring *g, const char *line, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, line, len);
    copy[len] = '\0';
    if (g->count < g->max) {
        if (g->count == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 64;
            cap = cap > g->max ? g->max : cap;
            char **lines = realloc(g->lines, cap * sizeof(*lines));
            size_t *lens = lines ? realloc(g->lens, cap * sizeof(*lens)) : NULL;
            if (lines)
                g->lines = lines;
            if (lens == NULL) {
                free(copy);
                return -1;
            }
            g->lens = lens;
            g->cap = cap;
        }
        g->lines[g->count] = copy;
        g->lens[g->count++] = len;
        return 0;
    }
    free(g->lines[g->start]);
    g->lines[g->start] = copy;
    g->lens[g->start] = len;
    g->start = (g->start + 1) % g->max;
    return 0;
}

/* Prints the lines held, oldest first, and empties the ring. */
static void ring_flush(struct reader *r)
{
    struct ring *g = &r->ring;
    for (size_t i = 0; i < g->count; i++) {
        size_t k = (g->start + i) % (g->max ? g->max : 1);
        emit(r, g->lines[k], g->lens[k], NULL);
        free(g->lines[k]);
    }
    g->count = g->start = 0;
}

static void malformed(struct reader *r)
{
    if (r->malformed++ == 0)
        r->first_malformed = r->lineno;
}

static void on_line(struct reader *r, const char *line, size_t len)
{
    const struct reports_opts *o = r->o;
    char err[128];

    r->lineno++;
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    while (len && (line[0] == ' ' || line[0] == '\t')) {
        line++;
        len--;
    }
    if (len == 0)
        return;
    if (line[0] != '{' || line[len - 1] != '}') {
        malformed(r);
        return;
    }
    if (!maybe_report(line, len) ||
        (r->x_prefilter && memmem(line, len, o->container, r->xlen) == NULL))
        return;
    struct jsonp_doc *doc = jsonp_parse(line, len, err, sizeof(err));
    if (doc == NULL) {
        malformed(r);
        return;
    }
    const struct jsonp_value *ev = jsonp_root(doc);
    int64_t ts;
    if (!is_report(ev) || (o->container && !container_matches(r, jsonp_get(ev, "container"))) ||
        (o->since_us != INT64_MIN &&
         (parse_time(jsonp_str(jsonp_get(ev, "timestamp"), ""), 0, &ts) != 0 ||
          ts < o->since_us))) {
        jsonp_free(doc);
        return;
    }
    r->reports++;
    if (o->last >= 0 && !r->live) {
        if (o->last > 0 && ring_push(&r->ring, line, len) != 0)
            r->failed = 1;
    } else {
        emit(r, line, len, ev);
    }
    jsonp_free(doc);
}

/* --- reading the log ----------------------------------------------------------- */

static int log_open(struct logfile *f)
{
    struct stat st;
    f->fd = strcmp(f->path, "-") == 0 ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0)
                                      : open(f->path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return -1;
    if (fstat(f->fd, &st) != 0) {
        close(f->fd);
        f->fd = -1;
        return -1;
    }
    posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->off = 0;
    sl_buf_reset(&f->pending);
    f->pending_cut = 0;
    return 0;
}

static void pending_add(struct logfile *f, const char *p, size_t n)
{
    if (!f->pending_cut && sl_buf_append(&f->pending, p, n) < n)
        f->pending_cut = 1;
}

/* Feeds every complete line the file holds now to on_line. */
static int drain(struct reader *r, struct logfile *f, char *chunk)
{
    for (;;) {
        ssize_t n = read(f->fd, chunk, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_warn("%s", f->path);
            return -1;
        }
        if (n == 0)
            return 0;
        f->off += n;
        const char *p = chunk, *end = chunk + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (nl == NULL) {
                pending_add(f, p, (size_t)(end - p));
                break;
            }
            if (f->pending.len || f->pending_cut) {
                pending_add(f, p, (size_t)(nl - p));
                if (f->pending_cut) {
                    r->lineno++;
                    malformed(r);
                } else {
                    on_line(r, (const char *)f->pending.data, f->pending.len);
                }
                sl_buf_reset(&f->pending);
                f->pending_cut = 0;
            } else {
                on_line(r, p, (size_t)(nl - p));
            }
            p = nl + 1;
        }
    }
}

static int output_failed(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    log_warn("standard output");
    return 1;
}

static int follow(struct reader *r, struct logfile *f, char *chunk)
{
    struct stat st;
    int said_missing = 0;

    for (;;) {
        if (f->fd >= 0 && drain(r, f, chunk) != 0)
            return CTL_FAILURE;
        if (!r->live) { /* the end of what was logged before: show the last ones */
            r->live = 1;
            ring_flush(r);
        }
        ctl_table_flush(&r->table, stdout);
        if (r->failed || output_failed())
            return CTL_FAILURE;
        poll(NULL, 0, FOLLOW_TICK_MS);
        if (f->fd < 0) {
            if (log_open(f) == 0) {
                log_info("%s: appeared, following it", f->path);
            } else if (!said_missing) {
                said_missing = 1;
                log_warn("%s: waiting for it", f->path);
            }
            continue;
        }
        if (fstat(f->fd, &st) == 0 && st.st_size < f->off) {
            log_info("%s: truncated, reading it from the start", f->path);
            lseek(f->fd, 0, SEEK_SET);
            f->off = 0;
            sl_buf_reset(&f->pending);
            f->pending_cut = 0;
        }
        if (stat(f->path, &st) == 0 && (st.st_dev != f->dev || st.st_ino != f->ino)) {
            /* Rotated: what was written to the old file before the switch
             * comes first. */
            if (drain(r, f, chunk) != 0)
                return CTL_FAILURE;
            close(f->fd);
            if (log_open(f) == 0)
                log_info("%s: replaced, following the new file", f->path);
            else
                said_missing = 0;
        }
    }
}

int reports_run(const struct reports_opts *o)
{
    struct reader r = {.o = o};
    struct logfile f = {.path = o->log, .fd = -1};
    int status = CTL_OK;

    if (o->container) {
        r.xlen = strlen(o->container);
        r.x_prefilter = strspn(o->container, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789_.-") == r.xlen;
    }
    r.ring.max = o->last > 0 ? (size_t)o->last : 0;
    char *chunk = malloc(READ_CHUNK);
    if (chunk == NULL || ctl_table_init(&r.table, 7, columns, column_caps) != 0) {
        log_warnx("out of memory");
        free(chunk);
        return CTL_FAILURE;
    }
    sl_buf_init(&f.pending, MAX_LINE);
    if (log_open(&f) != 0 && (!o->follow || errno != ENOENT)) {
        log_warn("%s", o->log);
        status = CTL_FAILURE;
        goto out;
    }
    if (o->follow) {
        ctl_table_fixed(&r.table);
        status = follow(&r, &f, chunk);
        goto out;
    }
    if (drain(&r, &f, chunk) != 0)
        status = CTL_FAILURE;
    if (f.pending_cut) {
        r.lineno++;
        malformed(&r);
    } else if (f.pending.len) { /* a last line without its newline */
        on_line(&r, (const char *)f.pending.data, f.pending.len);
    }
    ring_flush(&r);
    ctl_table_flush(&r.table, stdout);
    if (output_failed() || r.failed)
        status = CTL_FAILURE;
    if (r.malformed)
        log_warnx("%s: skipped %llu malformed line%s (the first is line %llu)", o->log, r.malformed,
                  r.malformed == 1 ? "" : "s", r.first_malformed);
    if (r.reports == 0 && status == CTL_OK)
        log_info("%s: no reports%s", o->log,
                 o->container || o->since_us != INT64_MIN ? " match" : "");
out:
    if (f.fd >= 0)
        close(f.fd);
    for (size_t i = 0; i < r.ring.count; i++)
        free(r.ring.lines[i]);
    free(r.ring.lines);
    free(r.ring.lens);
    free(r.prefix_id);
    ctl_table_free(&r.table);
    sl_buf_free(&f.pending);
    free(chunk);
    return status;
}
