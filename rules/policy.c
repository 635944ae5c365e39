/*
 * Policy loading: one YAML file, read with libyaml's event parser.
 *
 * Why events and not libyaml's document tree: events carry the position of
 * every node, so each error can point at a line and column, and they show
 * anchors and aliases, which are refused (a policy never needs them, and
 * nested aliases are the "billion laughs" memory bomb). The schema is fixed
 * and an unknown key is an error, so the loader walks the stream once,
 * guided by the key table, and never has to skip or buffer a subtree.
 *
 * Every key is one line of keys[]: dotted path, type, field, default (written
 * as it would be in the file, and parsed by the same code) and range.
 * Sections are the path prefixes; nothing else lists them.
 *
 * A policy is built completely, defaults first and then the file on top,
 * before anyone sees it; on any error the half-built policy is freed and the
 * caller keeps whatever policy it had.
 */
#include "rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define KiB    (UINT64_C(1) << 10)
#define MiB    (UINT64_C(1) << 20)
#define GiB    (UINT64_C(1) << 30)
#define MINUTE 60
#define HOUR   (60 * MINUTE)
#define DAY    (24 * HOUR)

#define BUILTIN_NAME "(built-in)"
/* Policy files are a few kilobytes; a bigger one is a wrong -c argument (a
 * rules archive, a log), better refused than parsed. */
#define POLICY_MAX_BYTES MiB
/* Longest dotted key path in keys[] plus room to spare. */
#define KEY_PATH_MAX 64
/* How much of a bad value an error message quotes; paths are quoted whole
 * (up to what the message holds), since the whole path is the point. */
#define QUOTE_MAX 48

enum key_type {
    KEY_BOOL,     /* true/false/yes/no/on/off -> int 0/1 */
    KEY_COUNT,    /* plain unsigned integer, no suffix */
    KEY_SIZE,     /* rules_parse_size(): bytes */
    KEY_DURATION, /* rules_parse_duration(): seconds */
    KEY_ENUM,     /* one of names[] -> its index */
    KEY_PATH,     /* one path -> char *, relative to the policy's folder */
    KEY_PATHS,    /* a path or a list of paths -> struct rules_strlist */
    KEY_NAMES,    /* a list of names -> struct rules_strlist, kept as written */
};

#define KEY_READABLE 0x1 /* KEY_PATH: must be a readable file when loaded */
#define KEY_DASH     0x2 /* KEY_PATH: "-" (stdout) is kept as is */

struct key {
    const char *path; /* "section.key" */
    enum key_type type;
    size_t off, size;         /* field in struct rules_policy */
    const char *def;          /* default as written in a file; lists: "a,b"; NULL: unset */
    uint64_t min, max;        /* KEY_COUNT, KEY_SIZE, KEY_DURATION (seconds) */
    unsigned flags;           /* KEY_READABLE, KEY_DASH */
    const char *const *names; /* KEY_ENUM, NULL-terminated */
};

/* One row of keys[] per key type, so that every row is complete. */
// clang-format off
#define FIELD(f) offsetof(struct rules_policy, f), sizeof(((struct rules_policy *)0)->f)
#define K_BOOL(p, f, def)             {p, KEY_BOOL, FIELD(f), def, 0, 1, 0, NULL}
#define K_COUNT(p, f, def, lo, hi)    {p, KEY_COUNT, FIELD(f), def, lo, hi, 0, NULL}
#define K_SIZE(p, f, def, lo, hi)     {p, KEY_SIZE, FIELD(f), def, lo, hi, 0, NULL}
#define K_DURATION(p, f, def, lo, hi) {p, KEY_DURATION, FIELD(f), def, lo, hi, 0, NULL}
#define K_ENUM(p, f, def, names)      {p, KEY_ENUM, FIELD(f), def, 0, 0, 0, names}
#define K_PATH(p, f, def, flags)      {p, KEY_PATH, FIELD(f), def, 0, 0, flags, NULL}
#define K_PATHS(p, f)                 {p, KEY_PATHS, FIELD(f), NULL, 0, 0, 0, NULL}
#define K_NAMES(p, f, def)            {p, KEY_NAMES, FIELD(f), def, 0, 0, 0, NULL}
// clang-format on

/* Indexed by enum rules_action. */
static const char *const actions[] = {"alert", "block", NULL};
/* Indexed by enum rules_mode and enum rules_fail. */
static const char *const modes[] = {"enforce", "audit", NULL};
static const char *const fail_modes[] = {"open", "closed", NULL};
/* Indexed by enum rules_non_tls. */
static const char *const non_tls_modes[] = {"refuse", "pass", NULL};
/* Indexed by enum rules_response. */
static const char *const responses[] = {"isolate", "stop", "alert", NULL};
/* Indexed by enum rules_other_ports and enum rules_quic. */
static const char *const other_ports[] = {"alert", "block", "pass", NULL};
static const char *const quic[] = {"block", "pass", NULL};

static const struct key keys[] = {
    K_PATHS("yara.rules", yara.paths),
    K_BOOL("yara.builtin", yara.builtin, "true"),
    K_DURATION("yara.timeout", yara.timeout_s, "10s", 1, 10 * MINUTE),
    K_ENUM("yara.action", yara.action, "block", actions),

    K_SIZE("limits.body", limits.body, "16MiB", KiB, GiB),
    K_SIZE("limits.reassembly_flow", limits.reassembly_flow, "1MiB", 4 * KiB, GiB),
    K_SIZE("limits.reassembly_total", limits.reassembly_total, "256MiB", 64 * KiB, 64 * GiB),
    K_COUNT("limits.flows", limits.flows, "1000000", 1, 100000000),
    K_SIZE("limits.bodies_total", limits.bodies_total, "512MiB", MiB, 64 * GiB),
    K_DURATION("limits.flow_timeout", limits.flow_timeout_s, "600s", 1, DAY),
    K_SIZE("limits.hello_bytes", limits.hello_bytes, "20KiB", KiB, MiB),
    K_SIZE("limits.decoded", limits.decoded, "4GiB", MiB, 1024 * GiB),
    K_COUNT("limits.decoded_ratio", limits.decoded_ratio, "100", 2, 100000),
    K_COUNT("limits.archive_depth", limits.archive_depth, "3", 0, 16),
    K_SIZE("limits.archive_bytes", limits.archive_bytes, "512MiB", 0, 16 * GiB),

    K_ENUM("http.anomaly", http.anomaly, "block", actions),
    K_ENUM("tcp.anomaly", tcp.anomaly, "block", actions),

    K_PATH("ndpi.protos_file", ndpi.files.protos_file, NULL, KEY_READABLE),
    K_PATH("ndpi.categories_file", ndpi.files.categories_file, NULL, KEY_READABLE),
    K_PATH("ndpi.risky_domains_file", ndpi.files.risky_domains_file, NULL, KEY_READABLE),
    K_PATH("ndpi.ja3_file", ndpi.files.ja3_file, NULL, KEY_READABLE),
    K_PATH("ndpi.sha1_file", ndpi.files.sha1_file, NULL, KEY_READABLE),
    K_COUNT("ndpi.max_packets_tcp", ndpi.max_packets_tcp, "80", 3, 255),
    K_COUNT("ndpi.max_packets_udp", ndpi.max_packets_udp, "24", 3, 255),
    K_NAMES("ndpi.alert_categories", ndpi.alert_categories, "Malware,Mining"),
    K_NAMES("ndpi.alert_risks", ndpi.alert_risks, NULL),
    K_ENUM("ndpi.action", ndpi.action, "alert", actions),

    K_PATH("events.eve", events.eve, "/var/log/sluice/eve.json", KEY_DASH),
    K_BOOL("events.syslog", events.syslog, "false"),

    K_ENUM("inline.mode", enforcement.mode, "enforce", modes),
    K_COUNT("inline.queues", enforcement.queues, "0", 0, 64),
    K_COUNT("inline.queue_base", enforcement.queue_base, "100", 0, 65000),
    K_ENUM("inline.fail", enforcement.fail, "open", fail_modes),
    K_BOOL("inline.bridges", enforcement.bridges, "true"),
    K_BOOL("inline.host", enforcement.host, "true"),
    K_NAMES("inline.ports", enforcement.ports, NULL),

    K_PATH("containers.docker_socket", containers.docker_socket, "/var/run/docker.sock", 0),
    K_NAMES("containers.include", containers.include, "*"),
    K_NAMES("containers.exclude", containers.exclude, NULL),
    K_NAMES("containers.audit", containers.audit, NULL),
    K_NAMES("containers.networks", containers.networks, "*"),

    K_BOOL("tls.intercept", tls.intercept, "true"),
    K_NAMES("tls.ports", tls.ports, "443"),
    K_COUNT("tls.proxy_port", tls.proxy_port, "15443", 1, 65535),
    K_COUNT("tls.workers", tls.workers, "0", 0, 64),
    K_PATH("tls.state_dir", tls.state_dir, "/var/lib/sluice", 0),
    K_COUNT("tls.ca_rotate_days", tls.ca_rotate_days, "825", 1, 3650),
    K_COUNT("tls.ca_grace_days", tls.ca_grace_days, "30", 0, 365),
    K_PATH("tls.upstream_ca_file", tls.upstream_ca_file, NULL, KEY_READABLE),
    K_NAMES("tls.bypass_sni", tls.bypass_sni, NULL),
    K_NAMES("tls.bypass_containers", tls.bypass_containers, NULL),
    K_BOOL("tls.auto_install", tls.auto_install, "false"),
    K_ENUM("tls.quic", tls.quic, "block", quic),
    K_ENUM("tls.other_ports", tls.other_ports, "alert", other_ports),
    K_ENUM("tls.non_tls", tls.non_tls, "refuse", non_tls_modes),
    K_NAMES("tls.mtls_splice", tls.mtls_splice, NULL),
    K_DURATION("tls.bypass_confirm", tls.bypass_confirm_s, "5m", 0, DAY),
    K_COUNT("tls.max_per_container", tls.max_per_container, "2000", 1, 1000000),
    K_SIZE("tls.held_total", tls.held_total, "256MiB", MiB, 64 * GiB),
    K_DURATION("tls.stall_timeout", tls.stall_timeout_s, "30s", 1, DAY),

    K_NAMES("compromise.findings", compromise.findings, "malware"),
    K_ENUM("compromise.action", compromise.action, "alert", responses),
    K_NAMES("compromise.host_allow", compromise.host_allow, NULL),
    K_PATH("compromise.detections_socket", compromise.detections_socket,
           "/run/sluice/detections.sock", 0),

    K_PATH("control.socket", control.socket, "/run/sluice/control.sock", 0),
    K_PATH("control.pidfile", control.pidfile, "/run/sluiced.pid", 0),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct loader {
    yaml_parser_t parser;
    yaml_event_t ev; /* the current event, valid when have_ev */
    int have_ev;
    int defaults;     /* applying keys[].def: no file, no positions */
    const char *name; /* what errors call the file */
    const char *text; /* the input, to place reader errors */
    size_t len;
    char *dir;              /* folder relative paths start from; NULL: as written */
    struct rules_policy *p; /* being filled */
    char *err;
    size_t errlen;
    char quoted[RULES_ERRLEN]; /* quote()'s output */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "NAME:LINE:COLUMN: message", 1-based. Returns -1 for the caller to pass on. */
static int fail(struct loader *ld, size_t line, size_t column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct loader *ld, size_t line, size_t column, const char *fmt, ...)
{
    char msg[RULES_ERRLEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_err(ld->err, ld->errlen, "%s:%zu:%zu: %s", ld->name, line, column, msg);
    return -1;
}

/* libyaml marks are 0-based. */
#define FAIL_AT(ld, mark, ...) fail((ld), (mark).line + 1, (mark).column + 1, __VA_ARGS__)

/* A value as an error quotes it: in single quotes, cut to max bytes, control
 * bytes shown as '?' so that a message stays one readable line. */
static const char *quote_max(struct loader *ld, const char *s, size_t max)
{
    size_t i, o = 0;

    if (max > sizeof(ld->quoted) - 8)
        max = sizeof(ld->quoted) - 8;
    ld->quoted[o++] = '\'';
    for (i = 0; s[i] != '\0' && i < max; i++)
        ld->quoted[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i] != '\0') {
        memcpy(ld->quoted + o, "...", 3);
        o += 3;
    }
    ld->quoted[o++] = '\'';
    ld->quoted[o] = '\0';
    return ld->quoted;
}

static const char *quote(struct loader *ld, const char *s)
{
    return quote_max(ld, s, QUOTE_MAX);
}

/* --- sizes, durations, counts --------------------------------------------- */

/* Leading decimal digits of s; *end is left after them. EINVAL without a
 * digit, ERANGE past 64 bits. */
static int parse_uint(const char *s, uint64_t *out, const char **end)
{
    uint64_t v = 0;

    if (s == NULL || *s < '0' || *s > '9') {
        errno = EINVAL;
        return -1;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            errno = ERANGE;
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    *end = s;
    return 0;
}

static const char *skip_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

int rules_port_listed(const struct rules_strlist *ports, unsigned port)
{
    for (size_t i = 0; i < ports->n; i++) {
        unsigned a, b;
        char tail;
        int n = sscanf(ports->v[i].s, "%u:%u%c", &a, &b, &tail);
        if (n == 1 && sscanf(ports->v[i].s, "%u%c", &a, &tail) == 1)
            b = a;
        else if (n != 2)
            continue;
        if (port >= a && port <= b)
            return 1;
    }
    return 0;
}

/* All multipliers are binary: "k", "KB" and "KiB" all mean 1024, as sizes of
 * buffers are always meant here; documented in doc/policy.md. */
int rules_dest_match(const char *entry, int family, const uint8_t *addr, unsigned port)
{
    char net[64];
    const char *portstr = NULL, *colon = strchr(entry, ':');
    size_t n;
    if (entry[0] == '[') {
        const char *end = strchr(entry, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -1;
        n = (size_t)(end - entry - 1);
        entry++;
        portstr = end[1] == ':' ? end + 2 : NULL;
    } else if (colon && strchr(colon + 1, ':') == NULL) {
        n = (size_t)(colon - entry); /* IPv4 with a port */
        portstr = colon + 1;
    } else {
        n = strlen(entry);
    }
    if (n == 0 || n >= sizeof(net))
        return -1;
    memcpy(net, entry, n);
    net[n] = '\0';
    unsigned want_port = 0;
    if (portstr) {
        uint64_t v;
        const char *end;
        if (parse_uint(portstr, &v, &end) < 0 || *end != '\0' || v == 0 || v > 65535)
            return -1;
        want_port = (unsigned)v;
    }
    char *slash = strchr(net, '/');
    if (slash)
        *slash = '\0';
    uint8_t a[16];
    int fam = inet_pton(AF_INET, net, a) == 1 ? 4 : inet_pton(AF_INET6, net, a) == 1 ? 6 : 0;
    if (fam == 0)
        return -1;
    unsigned maxbits = fam == 4 ? 32 : 128, bits = maxbits;
    if (slash) {
        uint64_t v;
        const char *end;
        if (parse_uint(slash + 1, &v, &end) < 0 || *end != '\0' || v > maxbits)
            return -1;
        bits = (unsigned)v;
    }
    if (addr == NULL || family != fam || (want_port && port != want_port))
        return 0;
    for (unsigned i = 0; i < bits; i++) {
        uint8_t m = (uint8_t)(0x80 >> (i % 8));
        if ((a[i / 8] & m) != (addr[i / 8] & m))
            return 0;
    }
    return 1;
}

int rules_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},     {"k", KiB},   {"kb", KiB}, {"kib", KiB}, {"m", MiB},
        {"mb", MiB}, {"mib", MiB}, {"g", GiB},  {"gb", GiB},  {"gib", GiB},
    };
    const char *end;
    uint64_t v;
    size_t i;

    if (parse_uint(s, &v, &end) < 0)
        return -1;
    end = skip_blanks(end);
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) != 0)
            continue;
        if (v > UINT64_MAX / units[i].mult) {
            errno = ERANGE;
            return -1;
        }
        *out = v * units[i].mult;
        return 0;
    }
    errno = EINVAL;
    return -1;
}

/* Milliseconds are accepted for convenience but timers here tick in seconds,
 * so they round up: any "Nms" below one second is one second, never zero. */
int rules_parse_duration(const char *s, unsigned *seconds)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1}, {"s", 1}, {"m", MINUTE}, {"h", HOUR}, {"d", DAY}};
    const char *end;
    uint64_t v;
    size_t i;

    if (parse_uint(s, &v, &end) < 0)
        return -1;
    end = skip_blanks(end);
    if (strcasecmp(end, "ms") == 0) {
        v = v == 0 ? 1 : v / 1000 + (v % 1000 != 0);
    } else {
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strcasecmp(end, units[i].unit) == 0)
                break;
        if (i == sizeof(units) / sizeof(units[0])) {
            errno = EINVAL;
            return -1;
        }
        if (v > UINT_MAX / units[i].mult) {
            errno = ERANGE;
            return -1;
        }
        v *= units[i].mult;
    }
    *seconds = (unsigned)v;
    return 0;
}

static int parse_count(const char *s, uint64_t *out)
{
    const char *end;

    if (parse_uint(s, out, &end) < 0)
        return -1;
    if (*end != '\0') {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    size_t i;

    for (i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* The largest unit that divides v exactly, so ranges read as they are
 * written in the file: "1KiB..1GiB", "1s..10m". */
static const char *fmt_size(char *buf, size_t size, uint64_t v)
{
    if (v != 0 && v % GiB == 0)
        snprintf(buf, size, "%lluGiB", (unsigned long long)(v / GiB));
    else if (v != 0 && v % MiB == 0)
        snprintf(buf, size, "%lluMiB", (unsigned long long)(v / MiB));
    else if (v != 0 && v % KiB == 0)
        snprintf(buf, size, "%lluKiB", (unsigned long long)(v / KiB));
    else
        snprintf(buf, size, "%llu", (unsigned long long)v);
    return buf;
}

static const char *fmt_duration(char *buf, size_t size, uint64_t v)
{
    if (v != 0 && v % DAY == 0)
        snprintf(buf, size, "%llud", (unsigned long long)(v / DAY));
    else if (v != 0 && v % HOUR == 0)
        snprintf(buf, size, "%lluh", (unsigned long long)(v / HOUR));
    else if (v != 0 && v % MINUTE == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(v / MINUTE));
    else
        snprintf(buf, size, "%llus", (unsigned long long)v);
    return buf;
}

static const char *fmt_value(char *buf, size_t size, const struct key *k, uint64_t v)
{
    if (k->type == KEY_SIZE)
        return fmt_size(buf, size, v);
    if (k->type == KEY_DURATION)
        return fmt_duration(buf, size, v);
    snprintf(buf, size, "%llu", (unsigned long long)v);
    return buf;
}

/* --- fields ---------------------------------------------------------------- */

static void *field(struct rules_policy *p, const struct key *k)
{
    return (char *)p + k->off;
}

/* Integer fields are unsigned, int or an enum (4 bytes) or uint64_t. */
static void store_uint(struct rules_policy *p, const struct key *k, uint64_t v)
{
    if (k->size == sizeof(uint64_t)) {
        memcpy(field(p, k), &v, sizeof(v));
    } else {
        uint32_t v32 = (uint32_t)v;
        memcpy(field(p, k), &v32, sizeof(v32));
    }
}

static void strlist_free(struct rules_strlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->v[i].s);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void policy_free(struct rules_policy *p)
{
    size_t i;

    for (i = 0; i < NKEYS; i++) {
        if (keys[i].type == KEY_PATH) {
            free(*(char **)field(p, &keys[i]));
        } else if (keys[i].type == KEY_PATHS || keys[i].type == KEY_NAMES) {
            strlist_free(field(p, &keys[i]));
        }
    }
    rules_yara_free(p->compiled);
    free(p->path);
    free(p);
}

/* Relative paths start from the policy file's folder, not from wherever the
 * daemon happens to run. Lexical only: nothing is looked up on disk. */
static char *resolve(const struct loader *ld, const char *path)
{
    size_t dl, pl;
    char *out;

    if (ld->dir == NULL || path[0] == '/')
        return strdup(path);
    dl = strlen(ld->dir);
    pl = strlen(path);
    out = malloc(dl + 1 + pl + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, ld->dir, dl);
    if (dl == 0 || ld->dir[dl - 1] != '/')
        out[dl++] = '/';
    memcpy(out + dl, path, pl + 1);
    return out;
}

/* Folder part of a file name, NULL when it has none (the current folder). */
static int folder_of(const char *name, char **dir)
{
    const char *slash = strrchr(name, '/');

    *dir = NULL;
    if (slash == NULL)
        return 0;
    *dir = strndup(name, slash == name ? 1 : (size_t)(slash - name));
    return *dir == NULL ? -1 : 0;
}

/* A file nDPI will read later must be there now: a typo should fail the
 * load (and a reload), not the engine's start. O_NONBLOCK: a FIFO given by
 * mistake must not hang the loader. */
static int check_readable(const char *path)
{
    struct stat st;
    int fd;

    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return -1;
    }
    return 0;
}

/* --- values ---------------------------------------------------------------- */

static int fail_range(struct loader *ld, const struct key *k, const char *s, yaml_mark_t mark)
{
    char lo[32], hi[32];

    return FAIL_AT(ld, mark, "%s: %s is out of range (%s..%s)", k->path, quote(ld, s),
                   fmt_value(lo, sizeof(lo), k, k->min), fmt_value(hi, sizeof(hi), k, k->max));
}

static int set_enum(struct loader *ld, const struct key *k, const char *s, yaml_mark_t mark)
{
    char choices[128] = "";
    size_t i, n;

    for (i = 0; k->names[i] != NULL; i++) {
        if (strcasecmp(s, k->names[i]) == 0) {
            store_uint(ld->p, k, i);
            return 0;
        }
    }
    for (n = i, i = 0; i < n; i++) {
        size_t used = strlen(choices);
        snprintf(choices + used, sizeof(choices) - used, "%s%s",
                 i == 0 ? "" : (i + 1 == n ? " or " : ", "), k->names[i]);
    }
    return FAIL_AT(ld, mark, "%s: %s is not valid (use %s)", k->path, quote(ld, s), choices);
}

static int set_path(struct loader *ld, const struct key *k, const char *s, yaml_mark_t mark)
{
    char **dst = field(ld->p, k);
    char *path;

    if (s[0] == '\0')
        return FAIL_AT(ld, mark, "%s: a path must not be empty", k->path);
    if ((k->flags & KEY_DASH) && strcmp(s, "-") == 0)
        path = strdup(s);
    else
        path = resolve(ld, s);
    if (path == NULL)
        return FAIL_AT(ld, mark, "%s: out of memory", k->path);
    if ((k->flags & KEY_READABLE) && check_readable(path) < 0) {
        int e = errno;
        FAIL_AT(ld, mark, "%s: cannot read %s: %s", k->path, quote_max(ld, path, SIZE_MAX),
                strerror(e));
        free(path);
        return -1;
    }
    free(*dst);
    *dst = path;
    return 0;
}

/* One scalar value for a key of any single-value type. */
static int set_scalar(struct loader *ld, const struct key *k, const char *s, yaml_mark_t mark)
{
    uint64_t v;
    unsigned secs;
    int b;

    switch (k->type) {
    case KEY_BOOL:
        if (parse_bool(s, &b) < 0)
            return FAIL_AT(ld, mark, "%s: %s is not a boolean (use true or false)", k->path,
                           quote(ld, s));
        store_uint(ld->p, k, (uint64_t)b);
        return 0;
    case KEY_COUNT:
        if (parse_count(s, &v) < 0) {
            if (errno == ERANGE)
                return fail_range(ld, k, s, mark);
            return FAIL_AT(ld, mark, "%s: %s is not a number (digits only, no unit)", k->path,
                           quote(ld, s));
        }
        break;
    case KEY_SIZE:
        if (rules_parse_size(s, &v) < 0) {
            if (errno == ERANGE)
                return fail_range(ld, k, s, mark);
            return FAIL_AT(ld, mark, "%s: %s is not a size (use e.g. 16MiB)", k->path,
                           quote(ld, s));
        }
        break;
    case KEY_DURATION:
        if (rules_parse_duration(s, &secs) < 0) {
            if (errno == ERANGE)
                return fail_range(ld, k, s, mark);
            return FAIL_AT(ld, mark, "%s: %s is not a duration (use e.g. 30s, 5m, 1h)", k->path,
                           quote(ld, s));
        }
        v = secs;
        break;
    case KEY_ENUM:
        return set_enum(ld, k, s, mark);
    case KEY_PATH:
        return set_path(ld, k, s, mark);
    default:
        return FAIL_AT(ld, mark, "%s: internal error: not a single-value key", k->path);
    }
    if (v < k->min || v > k->max)
        return fail_range(ld, k, s, mark);
    store_uint(ld->p, k, v);
    return 0;
}

static int list_add(struct loader *ld, const struct key *k, struct rules_strlist *l, const char *s,
                    yaml_mark_t mark)
{
    struct rules_str *v;
    char *copy;

    if (s[0] == '\0')
        return FAIL_AT(ld, mark, "%s: %s must not be empty", k->path,
                       k->type == KEY_PATHS ? "a path" : "a name");
    if (k->off == offsetof(struct rules_policy, tls.mtls_splice) &&
        rules_dest_match(s, 0, NULL, 0) < 0)
        return FAIL_AT(ld, mark, "%s: %s is not CIDR, CIDR:port or [CIDR]:port", k->path,
                       quote(ld, s));
    copy = k->type == KEY_PATHS ? resolve(ld, s) : strdup(s);
    if (copy == NULL)
        return FAIL_AT(ld, mark, "%s: out of memory", k->path);
    v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (v == NULL) {
        free(copy);
        return FAIL_AT(ld, mark, "%s: out of memory", k->path);
    }
    l->v = v;
    /* Built-in defaults have no position: line 0. */
    l->v[l->n].s = copy;
    l->v[l->n].line = ld->defaults ? 0 : (int)mark.line + 1;
    l->v[l->n].column = ld->defaults ? 0 : (int)mark.column + 1;
    l->n++;
    return 0;
}

static void list_replace(struct loader *ld, const struct key *k, struct rules_strlist *l)
{
    struct rules_strlist *dst = field(ld->p, k);

    strlist_free(dst);
    *dst = *l;
}

/* A new row of keys[] that the loader cannot handle fails every load, so
 * the first test run shows it. */
static int check_key(struct loader *ld, const struct key *k)
{
    int integer = k->type == KEY_BOOL || k->type == KEY_COUNT || k->type == KEY_SIZE ||
                  k->type == KEY_DURATION || k->type == KEY_ENUM;

    if (strlen(k->path) >= KEY_PATH_MAX)
        return fail(ld, 0, 0, "internal error: key %s is longer than %d", k->path,
                    KEY_PATH_MAX - 1);
    if (integer && k->size != sizeof(uint32_t) && k->size != sizeof(uint64_t))
        return fail(ld, 0, 0, "internal error: key %s has a %zu-byte field", k->path, k->size);
    return 0;
}

/* Defaults go through the same parsing as the file, so a default and its
 * documentation cannot drift apart in format. */
static int apply_defaults(struct loader *ld)
{
    yaml_mark_t none = {0, 0, 0};
    size_t i;

    for (i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        struct rules_strlist l = {NULL, 0};
        char name[KEY_PATH_MAX];
        const char *s;
        size_t n;

        if (check_key(ld, k) < 0)
            return -1;
        if (k->def == NULL)
            continue;
        if (k->type != KEY_PATHS && k->type != KEY_NAMES) {
            if (set_scalar(ld, k, k->def, none) < 0)
                return -1;
            continue;
        }
        for (s = k->def; *s != '\0'; s += n + (s[n] == ',')) {
            n = strcspn(s, ",");
            if (n >= sizeof(name)) {
                strlist_free(&l);
                return fail(ld, 0, 0, "internal error: a default of %s is too long", k->path);
            }
            snprintf(name, sizeof(name), "%.*s", (int)n, s);
            if (list_add(ld, k, &l, name, none) < 0) {
                strlist_free(&l);
                return -1;
            }
        }
        list_replace(ld, k, &l);
    }
    return 0;
}

/* --- the YAML stream --------------------------------------------------------- */

static const char *what(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return "a string";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* An empty value ("key:"), "~" or "null", unquoted. */
static int is_null(const yaml_event_t *ev)
{
    const char *s;

    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    s = (const char *)ev->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *scalar(const yaml_event_t *ev)
{
    return (const char *)ev->data.scalar.value;
}

/* Reader errors (bad UTF-8, control characters) come with a byte offset and
 * no mark: count lines up to it, and columns in characters as marks do (UTF-8
 * continuation bytes do not start a character). */
static int fail_reader(struct loader *ld)
{
    size_t i, line = 1, column = 1, end = ld->parser.problem_offset;

    for (i = 0; i < end && i < ld->len; i++) {
        unsigned char c = (unsigned char)ld->text[i];
        if (c == '\n') {
            line++;
            column = 1;
        } else if ((c & 0xc0) != 0x80) {
            column++;
        }
    }
    /* The value is a byte for bad UTF-8, a code point for a bad character. */
    if (ld->parser.problem_value != -1)
        return fail(ld, line, column, "%s (0x%02x)", ld->parser.problem,
                    (unsigned)ld->parser.problem_value);
    return fail(ld, line, column, "%s", ld->parser.problem);
}

static int fail_syntax(struct loader *ld)
{
    yaml_parser_t *y = &ld->parser;

    switch (y->error) {
    case YAML_MEMORY_ERROR:
        return fail(ld, 1, 1, "out of memory");
    case YAML_READER_ERROR:
        return fail_reader(ld);
    default:
        break;
    }
    if (y->problem == NULL)
        return fail(ld, 1, 1, "YAML error %d", (int)y->error);
    if (y->context != NULL)
        return FAIL_AT(ld, y->problem_mark, "%s (%s at line %zu)", y->problem, y->context,
                       y->context_mark.line + 1);
    return FAIL_AT(ld, y->problem_mark, "%s", y->problem);
}

/* Next event into ld->ev, refusing what a policy never contains. */
static int next(struct loader *ld)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;

    if (ld->have_ev) {
        yaml_event_delete(&ld->ev);
        ld->have_ev = 0;
    }
    if (!yaml_parser_parse(&ld->parser, &ld->ev))
        return fail_syntax(ld);
    ld->have_ev = 1;

    switch (ld->ev.type) {
    case YAML_ALIAS_EVENT:
        return FAIL_AT(ld, ld->ev.start_mark, "aliases (*%s) are not allowed",
                       (const char *)ld->ev.data.alias.anchor);
    case YAML_SCALAR_EVENT:
        anchor = ld->ev.data.scalar.anchor;
        tag = ld->ev.data.scalar.tag;
        /* "\0" is a valid escape in double quotes; C strings would silently
         * cut the value there. */
        if (strlen(scalar(&ld->ev)) != ld->ev.data.scalar.length)
            return FAIL_AT(ld, ld->ev.start_mark, "NUL characters are not allowed");
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ld->ev.data.sequence_start.anchor;
        tag = ld->ev.data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ld->ev.data.mapping_start.anchor;
        tag = ld->ev.data.mapping_start.tag;
        break;
    default:
        break;
    }
    if (anchor != NULL)
        return FAIL_AT(ld, ld->ev.start_mark, "anchors (&%s) are not allowed",
                       (const char *)anchor);
    /* Tags would change how a scalar reads (!!binary, !!int 0x10): refused
     * rather than half supported. */
    if (tag != NULL)
        return FAIL_AT(ld, ld->ev.start_mark, "tags (%s) are not allowed", (const char *)tag);
    return 0;
}

/* A list key: KEY_PATHS also takes a single string. */
static int load_list(struct loader *ld, const struct key *k)
{
    struct rules_strlist l = {NULL, 0};

    if (ld->ev.type == YAML_SCALAR_EVENT && k->type == KEY_PATHS) {
        if (is_null(&ld->ev))
            return FAIL_AT(ld, ld->ev.start_mark,
                           "%s: empty value (remove the key for the default, or use [])", k->path);
        if (list_add(ld, k, &l, scalar(&ld->ev), ld->ev.start_mark) < 0)
            return -1;
        list_replace(ld, k, &l);
        return 0;
    }
    if (ld->ev.type != YAML_SEQUENCE_START_EVENT)
        return FAIL_AT(ld, ld->ev.start_mark, "%s: expected %s, found %s", k->path,
                       k->type == KEY_PATHS ? "a list or a string" : "a list", what(&ld->ev));
    for (;;) {
        if (next(ld) < 0)
            goto fail;
        if (ld->ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ld->ev.type != YAML_SCALAR_EVENT) {
            FAIL_AT(ld, ld->ev.start_mark, "%s: list items must be strings, found %s", k->path,
                    what(&ld->ev));
            goto fail;
        }
        if (list_add(ld, k, &l, scalar(&ld->ev), ld->ev.start_mark) < 0)
            goto fail;
    }
    list_replace(ld, k, &l);
    return 0;
fail:
    strlist_free(&l);
    return -1;
}

static int load_value(struct loader *ld, const struct key *k)
{
    static const char *const nouns[] = {
        [KEY_BOOL] = "a boolean",      [KEY_COUNT] = "a number",     [KEY_SIZE] = "a size",
        [KEY_DURATION] = "a duration", [KEY_ENUM] = "a single word", [KEY_PATH] = "a path",
    };

    if (k->type == KEY_PATHS || k->type == KEY_NAMES)
        return load_list(ld, k);
    if (ld->ev.type != YAML_SCALAR_EVENT)
        return FAIL_AT(ld, ld->ev.start_mark, "%s: expected %s, found %s", k->path, nouns[k->type],
                       what(&ld->ev));
    if (is_null(&ld->ev))
        return FAIL_AT(ld, ld->ev.start_mark, "%s: empty value (remove the key for the default)",
                       k->path);
    return set_scalar(ld, k, scalar(&ld->ev), ld->ev.start_mark);
}

/* The keys[] index of a dotted path: the key itself (*leaf = 1), or the
 * first key of the section of that name (*leaf = 0). NKEYS when unknown. */
static size_t find_key(const char *full, int *leaf)
{
    size_t i, n = strlen(full);

    for (i = 0; i < NKEYS; i++) {
        if (strncmp(keys[i].path, full, n) != 0)
            continue;
        if (keys[i].path[n] == '\0' || keys[i].path[n] == '.') {
            *leaf = keys[i].path[n] == '\0';
            return i;
        }
    }
    return NKEYS;
}

/* The name key i has right under prefix ("ndpi" for "ndpi.action" under
 * ""), with its length; NULL when key i is not under prefix. */
static const char *segment(size_t i, const char *prefix, size_t *len)
{
    size_t pl = strlen(prefix);
    const char *name;

    if (pl != 0 && (strncmp(keys[i].path, prefix, pl) != 0 || keys[i].path[pl] != '.'))
        return NULL;
    name = keys[i].path + (pl != 0 ? pl + 1 : 0);
    *len = strcspn(name, ".");
    return name;
}

/* "yara, limits, ndpi, events": the names allowed right under prefix, in
 * table order. */
static void known_keys(const char *prefix, char *buf, size_t size)
{
    size_t i, j, n, m, used = 0;
    const char *name, *other;

    buf[0] = '\0';
    for (i = 0; i < NKEYS; i++) {
        if ((name = segment(i, prefix, &n)) == NULL)
            continue;
        for (j = 0; j < i; j++)
            if ((other = segment(j, prefix, &m)) != NULL && m == n && !strncmp(other, name, n))
                break;
        if (j < i) /* a section already listed */
            continue;
        snprintf(buf + used, size - used, "%s%.*s", used ? ", " : "", (int)n, name);
        used += strlen(buf + used);
    }
}

static int load_mapping(struct loader *ld, const char *prefix)
{
    size_t seen[NKEYS], nseen = 0;
    yaml_mark_t seen_at[NKEYS];

    for (;;) {
        char full[KEY_PATH_MAX], known[512];
        yaml_mark_t mark;
        size_t i, j;
        int leaf = 0;

        if (next(ld) < 0)
            return -1;
        if (ld->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        mark = ld->ev.start_mark;
        if (ld->ev.type != YAML_SCALAR_EVENT)
            return FAIL_AT(ld, mark, "a key must be a name, found %s", what(&ld->ev));

        i = NKEYS;
        /* A dot would let "yara.rules:" at the top reach a nested key. */
        if (strchr(scalar(&ld->ev), '.') == NULL &&
            snprintf(full, sizeof(full), "%s%s%s", prefix, *prefix ? "." : "", scalar(&ld->ev)) <
                (int)sizeof(full))
            i = find_key(full, &leaf);
        if (i == NKEYS) {
            known_keys(prefix, known, sizeof(known));
            if (*prefix)
                return FAIL_AT(ld, mark, "unknown key %s in %s (known: %s)",
                               quote(ld, scalar(&ld->ev)), prefix, known);
            return FAIL_AT(ld, mark, "unknown key %s (known: %s)", quote(ld, scalar(&ld->ev)),
                           known);
        }
        for (j = 0; j < nseen; j++)
            if (seen[j] == i)
                return FAIL_AT(ld, mark, "duplicate key '%s' (first at %zu:%zu)", full,
                               seen_at[j].line + 1, seen_at[j].column + 1);
        /* Each distinct key maps to a distinct index, so nseen < NKEYS here. */
        seen[nseen] = i;
        seen_at[nseen++] = mark;

        if (next(ld) < 0)
            return -1;
        if (leaf) {
            if (load_value(ld, &keys[i]) < 0)
                return -1;
        } else if (ld->ev.type == YAML_MAPPING_START_EVENT) {
            if (load_mapping(ld, full) < 0)
                return -1;
        } else if (!is_null(&ld->ev)) {
            /* "section:" with every key commented out is fine. */
            return FAIL_AT(ld, ld->ev.start_mark, "%s: expected a mapping, found %s", full,
                           what(&ld->ev));
        }
    }
}

static int load_stream(struct loader *ld)
{
    if (next(ld) < 0) /* stream start */
        return -1;
    if (next(ld) < 0)
        return -1;
    if (ld->ev.type == YAML_STREAM_END_EVENT) /* empty, or only comments */
        return 0;
    if (next(ld) < 0) /* past document start */
        return -1;
    if (ld->ev.type == YAML_MAPPING_START_EVENT) {
        if (load_mapping(ld, "") < 0)
            return -1;
    } else if (!is_null(&ld->ev)) {
        return FAIL_AT(ld, ld->ev.start_mark, "the top level must be a mapping, found %s",
                       what(&ld->ev));
    }
    if (next(ld) < 0) /* document end */
        return -1;
    if (next(ld) < 0)
        return -1;
    if (ld->ev.type != YAML_STREAM_END_EVENT)
        return FAIL_AT(ld, ld->ev.start_mark, "only one YAML document is allowed");
    return 0;
}

/* --- public ------------------------------------------------------------------ */

static struct rules_policy *policy_new(const char *name, char *err, size_t errlen)
{
    struct rules_policy *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->path = strdup(name)) == NULL) {
        free(p);
        set_err(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    p->refs = 1;
    return p;
}

static int finish(struct rules_policy *p, int compile, char *err, size_t errlen)
{
    if (compile && rules_yara_compile(p, err, errlen) < 0)
        return -1;
    return 0;
}

struct rules_policy *rules_policy_parse(const char *name, const char *text, size_t len, int compile,
                                        char *err, size_t errlen)
{
    struct loader ld;
    struct rules_policy *p;
    int rc;

    set_err(err, errlen, "%s", "");
    if (name == NULL)
        name = "(buffer)";
    p = policy_new(name, err, errlen);
    if (p == NULL)
        return NULL;

    memset(&ld, 0, sizeof(ld));
    ld.p = p;
    ld.err = err;
    ld.errlen = errlen;
    ld.text = text != NULL ? text : "";
    ld.len = text != NULL ? len : 0;
    ld.name = BUILTIN_NAME;
    ld.defaults = 1;
    if (apply_defaults(&ld) < 0)
        goto fail;
    ld.name = name;
    ld.defaults = 0;
    if (folder_of(name, &ld.dir) < 0) {
        set_err(err, errlen, "%s: out of memory", name);
        goto fail;
    }
    if (!yaml_parser_initialize(&ld.parser)) {
        set_err(err, errlen, "%s: out of memory", name);
        free(ld.dir);
        goto fail;
    }
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)ld.text, ld.len);
    rc = load_stream(&ld);
    if (ld.have_ev)
        yaml_event_delete(&ld.ev);
    yaml_parser_delete(&ld.parser);
    free(ld.dir);
    if (rc < 0 || finish(p, compile, err, errlen) < 0)
        goto fail;
    return p;
fail:
    policy_free(p);
    return NULL;
}

/* Reads at most POLICY_MAX_BYTES + 1 bytes, so that a too large file is
 * noticed without reading all of it. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    size_t cap = POLICY_MAX_BYTES + 1, n;
    char *buf;
    FILE *f;

    f = fopen(path, "re");
    if (f == NULL) {
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, cap, f);
    if (ferror(f)) {
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (n == cap) {
        set_err(err, errlen, "%s: too large (a policy file is at most %lluKiB)", path,
                (unsigned long long)(POLICY_MAX_BYTES / KiB));
        goto fail;
    }
    fclose(f);
    *len = n;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

struct rules_policy *rules_policy_load(const char *path, int compile, char *err, size_t errlen)
{
    struct rules_policy *p;
    struct loader ld;
    size_t len;
    char *text;

    set_err(err, errlen, "%s", "");
    if (path != NULL) {
        text = read_file(path, &len, err, errlen);
        if (text == NULL)
            return NULL;
        p = rules_policy_parse(path, text, len, compile, err, errlen);
        free(text);
        return p;
    }

    p = policy_new(BUILTIN_NAME, err, errlen);
    if (p == NULL)
        return NULL;
    memset(&ld, 0, sizeof(ld));
    ld.p = p;
    ld.err = err;
    ld.errlen = errlen;
    ld.name = BUILTIN_NAME;
    ld.defaults = 1;
    if (apply_defaults(&ld) < 0 || finish(p, compile, err, errlen) < 0) {
        policy_free(p);
        return NULL;
    }
    return p;
}

struct rules_policy *rules_policy_ref(struct rules_policy *p)
{
    if (p != NULL)
        __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

/* Release on the decrement and acquire before freeing: every thread's last
 * use of the policy happens before the free. */
void rules_policy_unref(struct rules_policy *p)
{
    if (p != NULL && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
        policy_free(p);
}
