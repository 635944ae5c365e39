/*
 * sluicectl: the operator's command line for sluiced.
 *
 * Every command but reports is one line sent to the control socket and one
 * JSON reply rendered as text (or printed as is with --json). Replies are
 * rendered from whatever members they hold, so a newer daemon's additions
 * show up without a newer sluicectl. reports reads the event log itself
 * (sluicectl_reports.c) and needs no daemon.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "jsonp.h"
#include "log.h"
#include "sluicectl.h"

#define DEFAULT_SOCKET "/run/sluice/control.sock"
#define DEFAULT_LOG    "/var/log/sluice/eve.json"
#define CALL_MS        30000 /* reload recompiles YARA rules: give it time */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sluicectl [-s SOCKET] [--json] status | containers | reload\n"
            "       sluicectl [-l LOG] reports [-f] [-c CONTAINER] [--since TIME] [-n N] [--json]\n"
            "       sluicectl [-s SOCKET] isolate CONTAINER | release CONTAINER\n"
            "       sluicectl [-s SOCKET] ca export [-o FILE] | ca install CONTAINER|--all\n"
            "\n"
            "Controls sluiced, the sluice inspection daemon, through its control socket,\n"
            "and shows its reports from the event log.\n"
            "\n"
            "Commands:\n"
            "  status                 version, mode, policy, queues and counters\n"
            "  containers             the containers sluiced attributes traffic to, with\n"
            "                         their networks and addresses\n"
            "  reload                 load the policy and YARA rules again, without a restart\n"
            "  reports                alerts (blocked, allowed, would block), isolations and\n"
            "                         file detections from the event log; works while\n"
            "                         sluiced is down\n"
            "  isolate CONTAINER      cut a container off its networks (release undoes it)\n"
            "  ca export, ca install  the interception CA: print it, add it to containers\n"
            "\n"
            "Options:\n"
            "  -s, --socket PATH      control socket. Default: " DEFAULT_SOCKET "\n"
            "  -l, --log PATH         event log read by reports, '-' for standard input.\n"
            "                         Default: " DEFAULT_LOG "\n"
            "      --json             print sluiced's JSON reply as is; with reports, the\n"
            "                         matching event lines as they are in the log\n"
            "  -h, --help             this text\n"
            "  -V, --version          version\n"
            "\n"
            "Options of reports:\n"
            "  -f, --follow           keep printing reports as they are logged, across log\n"
            "                         rotation and truncation, until interrupted; starts\n"
            "                         with the last 10 unless -n says otherwise\n"
            "  -c, --container X      only reports about container X: its name, its full ID\n"
            "                         or the first 4 or more characters of its ID\n"
            "      --since TIME       only reports logged at or after TIME: RFC 3339\n"
            "                         (2026-11-23T17:40:01Z), local time (2026-11-23\n"
            "                         17:40:01, 2026-11-23) or an age (30s, 10m, 2h, 1d)\n"
            "  -n, --lines N          only the last N reports\n"
            "\n"
            "Exit status: 0 success; 1 failure (sluiced not running, an error from sluiced,\n"
            "an unreadable event log); 2 usage error.\n"
            "See sluicectl(8).\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("sluicectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'sluicectl --help'.\n", stderr);
    return CTL_USAGE;
}

/* --- tables ------------------------------------------------------------------ */

/* A copy of s safe to print on a terminal: control characters (C0, DEL and
 * the UTF-8 encoded C1 range) become '?', and when cap is set, at most cap
 * characters, the last three "..." if it had to be cut. */
static char *clean_cell(const char *s, size_t cap, size_t *width)
{
    size_t n = strlen(s), w = 0, o = 0;
    char *out = malloc(n + 4);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xc0) != 0x80) { /* a new character starts */
            if (cap && w == cap) {
                /* Cut: replace the last characters by "..." */
                size_t back = 0;
                while (o > 0 && back < 3) {
                    o--;
                    if (((unsigned char)out[o] & 0xc0) != 0x80)
                        back++;
                }
                memcpy(out + o, "...", 3);
                o += 3;
                w = w - back + 3;
                break;
            }
            w++;
        }
        if (c < 0x20 || c == 0x7f)
            c = '?';
        else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                 (unsigned char)s[i + 1] <= 0x9f) {
            c = '?';
            i++;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    *width = w;
    return out;
}

static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

int ctl_table_init(struct ctl_table *t, int ncols, const char *const *head, const size_t *cap)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->head = head;
    t->cap = cap;
    t->indent = "";
    t->width = calloc((size_t)ncols, sizeof(*t->width));
    if (t->width == NULL)
        return -1;
    for (int c = 0; c < ncols; c++)
        t->width[c] = strlen(head[c]);
    return 0;
}

void ctl_table_fixed(struct ctl_table *t)
{
    for (int c = 0; c < t->ncols - 1; c++)
        if (t->cap[c] > t->width[c])
            t->width[c] = t->cap[c];
}

int ctl_table_add(struct ctl_table *t, const char *const *row)
{
    if (t->nrows == t->alloc) {
        size_t alloc = t->alloc ? t->alloc * 2 : 64;
        char **cells = realloc(t->cells, alloc * (size_t)t->ncols * sizeof(*cells));
        if (cells == NULL)
            return -1;
        t->cells = cells;
        t->alloc = alloc;
    }
    char **cells = t->cells + t->nrows * (size_t)t->ncols;
    for (int c = 0; c < t->ncols; c++) {
        size_t w;
        const char *v = row[c] && row[c][0] ? row[c] : "-";
        cells[c] = clean_cell(v, c < t->ncols - 1 ? t->cap[c] : 0, &w);
        if (cells[c] == NULL) {
            while (c-- > 0)
                free(cells[c]);
            return -1;
        }
        if (w > t->width[c])
            t->width[c] = w;
    }
    t->nrows++;
    return 0;
}

static void print_row(const struct ctl_table *t, const char *const *cells, FILE *out)
{
    fputs(t->indent, out);
    for (int c = 0; c < t->ncols; c++) {
        if (c == t->ncols - 1) {
            fprintf(out, "%s\n", cells[c]);
            break;
        }
        fputs(cells[c], out);
        for (size_t w = text_width(cells[c]); w < t->width[c] + 2; w++)
            fputc(' ', out);
    }
}

void ctl_table_flush(struct ctl_table *t, FILE *out)
{
    if (!t->head_printed && t->nrows > 0) {
        print_row(t, t->head, out);
        t->head_printed = 1;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        char **cells = t->cells + r * (size_t)t->ncols;
        print_row(t, (const char *const *)cells, out);
        for (int c = 0; c < t->ncols; c++)
            free(cells[c]);
    }
    t->nrows = 0;
}

void ctl_table_free(struct ctl_table *t)
{
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->width);
    memset(t, 0, sizeof(*t));
}

/* --- rendering replies ------------------------------------------------------- */

/* A scalar as text, into buf; NULL for arrays and objects. */
static const char *scalar(const struct jsonp_value *v, char *buf, size_t len)
{
    switch (v->type) {
    case JSONP_NULL:
        return "-";
    case JSONP_BOOL:
        return v->boolean ? "yes" : "no";
    case JSONP_NUMBER:
        if (v->num > -1e15 && v->num < 1e15 && v->num == (double)(long long)v->num)
            snprintf(buf, len, "%.0f", v->num);
        else
            snprintf(buf, len, "%g", v->num);
        return buf;
    case JSONP_STRING:
        return v->str;
    default:
        return NULL;
    }
}

static void put_text(const char *s, FILE *out)
{
    size_t w;
    char *clean = clean_cell(s, 0, &w);
    fputs(clean ? clean : "?", out);
    free(clean);
}

static void render_object(const struct jsonp_value *obj, int depth, FILE *out);

/* An array of objects is a table of their members, in order of appearance;
 * nested values in a cell are shown compactly. */
static void render_table(const struct jsonp_value *arr, int depth, FILE *out)
{
    const char *head[32];
    size_t caps[32];
    int ncols = 0;

    for (const struct jsonp_value *e = arr->child; e; e = e->next)
        for (const struct jsonp_value *m = e->type == JSONP_OBJECT ? e->child : NULL; m;
             m = m->next) {
            int c = 0;
            while (c < ncols && strcmp(head[c], m->key) != 0)
                c++;
            if (c == ncols && ncols < 32) {
                head[ncols] = m->key;
                caps[ncols++] = 40;
            }
        }
    if (ncols == 0)
        return;
    /* Headers are the member names in capitals. */
    char *upper[32] = {NULL};
    const char *heads[32] = {NULL};
    for (int c = 0; c < ncols; c++) {
        upper[c] = strdup(head[c]);
        for (char *p = upper[c]; p && *p; p++)
            *p = *p == '_' ? ' ' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        heads[c] = upper[c] ? upper[c] : head[c];
    }
    struct ctl_table t;
    if (ctl_table_init(&t, ncols, heads, caps) == 0) {
        char indent[64];
        snprintf(indent, sizeof(indent), "%*s", 2 * depth + 2, "");
        t.indent = indent;
        for (const struct jsonp_value *e = arr->child; e; e = e->next) {
            const char *row[32];
            char bufs[32][32];
            for (int c = 0; c < ncols; c++) {
                const struct jsonp_value *m = jsonp_get(e, head[c]);
                row[c] = m ? scalar(m, bufs[c], sizeof(bufs[c])) : "-";
                if (m && row[c] == NULL)
                    row[c] = m->type == JSONP_ARRAY ? "[...]" : "{...}";
            }
            ctl_table_add(&t, row);
        }
        ctl_table_flush(&t, out);
        ctl_table_free(&t);
    }
    for (int c = 0; c < ncols; c++)
        free(upper[c]);
}

static void render_member(const struct jsonp_value *m, int depth, int keyw, FILE *out)
{
    char buf[64];
    const char *s = scalar(m, buf, sizeof(buf));

    fprintf(out, "%*s", 2 * depth, "");
    put_text(m->key, out);
    if (s) {
        fprintf(out, "%*s", (int)(keyw - text_width(m->key) + 2), "");
        put_text(s, out);
        fputc('\n', out);
        return;
    }
    if (m->type == JSONP_OBJECT) {
        fputs(":\n", out);
        render_object(m, depth + 1, out);
        return;
    }
    int objects = 0;
    for (const struct jsonp_value *e = m->child; e; e = e->next)
        objects |= e->type == JSONP_OBJECT;
    if (m->len == 0 || !objects) { /* scalars: one line, comma-separated */
        fprintf(out, "%*s", (int)(keyw - text_width(m->key) + 2), "");
        if (m->len == 0)
            fputs("none", out);
        for (const struct jsonp_value *e = m->child; e; e = e->next) {
            const char *es = scalar(e, buf, sizeof(buf));
            put_text(es ? es : "[...]", out);
            if (e->next)
                fputs(", ", out);
        }
        fputc('\n', out);
        return;
    }
    fputs(":\n", out);
    render_table(m, depth, out);
}

/* Every member but "ok", as "key  value" lines, nested values indented. */
static void render_object(const struct jsonp_value *obj, int depth, FILE *out)
{
    int keyw = 0;
    for (const struct jsonp_value *m = obj->child; m; m = m->next)
        if (depth > 0 || strcmp(m->key, "ok") != 0)
            keyw = (int)text_width(m->key) > keyw ? (int)text_width(m->key) : keyw;
    for (const struct jsonp_value *m = obj->child; m; m = m->next)
        if (depth > 0 || strcmp(m->key, "ok") != 0)
            render_member(m, depth, keyw, out);
}

static void format_duration(double secs, char *buf, size_t len)
{
    unsigned long s = secs > 0 ? (unsigned long)secs : 0;
    unsigned long d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    if (d)
        snprintf(buf, len, "%lud %luh %lum", d, h, m);
    else if (h)
        snprintf(buf, len, "%luh %lum", h, m);
    else
        snprintf(buf, len, "%lum %lus", m, s % 60);
}

/* The members a renderer already showed, left out of the generic rest. */
static int shown(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (strcmp(key, *keys) == 0)
            return 1;
    return 0;
}

static void render_rest(const struct jsonp_value *root, const char *const *skip, FILE *out)
{
    int keyw = 0;
    for (const struct jsonp_value *m = root->child; m; m = m->next)
        if (!shown(m->key, skip) && (int)text_width(m->key) > keyw)
            keyw = (int)text_width(m->key);
    for (const struct jsonp_value *m = root->child; m; m = m->next)
        if (!shown(m->key, skip))
            render_member(m, 0, keyw, out);
}

static void render_status(const struct jsonp_value *root, FILE *out)
{
    static const char *const skip[] = {"ok", "version", "pid", "uptime_s", NULL};
    const struct jsonp_value *pid = jsonp_get(root, "pid");
    const struct jsonp_value *up = jsonp_get(root, "uptime_s");
    char dur[64];

    fputs("sluiced", out);
    if (jsonp_str(jsonp_get(root, "version"), NULL)) {
        fputc(' ', out);
        put_text(jsonp_str(jsonp_get(root, "version"), ""), out);
    }
    if (pid && pid->type == JSONP_NUMBER)
        fprintf(out, ", pid %.0f", pid->num);
    if (up && up->type == JSONP_NUMBER) {
        format_duration(up->num, dur, sizeof(dur));
        fprintf(out, ", up %s", dur);
    }
    fputc('\n', out);
    render_rest(root, skip, out);
}

/* "bridge 172.17.0.2 fd00::2, backend 10.0.1.4" */
static char *network_list(const struct jsonp_value *nets)
{
    size_t len = 0, cap = 256;
    char *s = malloc(cap);
    if (s == NULL)
        return NULL;
    s[0] = '\0';
    for (const struct jsonp_value *n = nets ? nets->child : NULL; n; n = n->next) {
        const char *parts[] = {jsonp_str(jsonp_get(n, "name"), ""),
                               jsonp_str(jsonp_get(n, "ipv4"), ""),
                               jsonp_str(jsonp_get(n, "ipv6"), "")};
        size_t need = strlen(parts[0]) + strlen(parts[1]) + strlen(parts[2]) + 8;
        if (len + need >= cap) {
            cap = (len + need) * 2;
            char *b = realloc(s, cap);
            if (b == NULL) {
                free(s);
                return NULL;
            }
            s = b;
        }
        if (len)
            len += (size_t)snprintf(s + len, cap - len, ", ");
        len += (size_t)snprintf(s + len, cap - len, "%s", parts[0][0] ? parts[0] : "?");
        for (int i = 1; i < 3; i++)
            if (parts[i][0])
                len += (size_t)snprintf(s + len, cap - len, " %s", parts[i]);
    }
    return s;
}

static void render_containers(const struct jsonp_value *root, FILE *out)
{
    static const char *const skip[] = {"ok", "containers", "docker", NULL};
    static const char *const head[] = {"CONTAINER ID", "NAME",   "IMAGE",
                                       "STATE",        "SLUICE", "NETWORKS"};
    static const size_t caps[] = {12, 32, 40, 12, 12, 0};
    const struct jsonp_value *list = jsonp_get(root, "containers");
    const char *docker = jsonp_str(jsonp_get(root, "docker"), NULL);
    struct ctl_table t;

    if (docker && strcmp(docker, "up") != 0) {
        fputs("docker: ", out);
        put_text(docker, out);
        fputs(" (containers may be missing or out of date)\n", out);
    }
    if (list == NULL || list->len == 0)
        fputs("no containers\n", out);
    else if (ctl_table_init(&t, 6, head, caps) == 0) {
        for (const struct jsonp_value *c = list->child; c; c = c->next) {
            char *nets = network_list(jsonp_get(c, "networks"));
            const char *row[] = {
                jsonp_str(jsonp_get(c, "id"), NULL),     jsonp_str(jsonp_get(c, "name"), NULL),
                jsonp_str(jsonp_get(c, "image"), NULL),  jsonp_str(jsonp_get(c, "state"), NULL),
                jsonp_str(jsonp_get(c, "sluice"), NULL), nets};
            char idbuf[13];
            if (row[0] && strlen(row[0]) > 12) { /* IDs are cut, not ellipsized */
                memcpy(idbuf, row[0], 12);
                idbuf[12] = '\0';
                row[0] = idbuf;
            }
            ctl_table_add(&t, row);
            free(nets);
        }
        ctl_table_flush(&t, out);
        ctl_table_free(&t);
    }
    render_rest(root, skip, out);
}

/* --- commands ---------------------------------------------------------------- */

/* Sends line, prints the reply; what to say on an "unknown command" reply
 * tells an older daemon apart from a failure. */
static int control_command(const char *socket, const char *line, const char *name, int json)
{
    char err[512];
    char *reply = sl_control_call(socket, line, CALL_MS, err, sizeof(err));
    if (reply == NULL) {
        log_warnx("%s", err);
        return CTL_FAILURE;
    }
    struct jsonp_doc *doc = jsonp_parse(reply, strlen(reply), err, sizeof(err));
    const struct jsonp_value *root = doc ? jsonp_root(doc) : NULL;
    if (root == NULL || root->type != JSONP_OBJECT) {
        log_warnx("%s: not a JSON object from sluiced: %s", socket, doc ? "another value" : err);
        jsonp_free(doc);
        free(reply);
        return CTL_FAILURE;
    }
    const struct jsonp_value *ok = jsonp_get(root, "ok");
    int status = ok && ok->type == JSONP_BOOL && ok->boolean ? CTL_OK : CTL_FAILURE;
    if (json) {
        size_t n = strlen(reply);
        fputs(reply, stdout);
        if (n && reply[n - 1] != '\n')
            fputc('\n', stdout);
    } else if (status != CTL_OK) {
        const char *why = jsonp_str(jsonp_get(root, "error"), "failed, no reason given");
        size_t w;
        char *clean = clean_cell(why, 0, &w);
        if (strncmp(why, "unknown command", 15) == 0)
            log_warnx("%s: not supported by this sluiced yet", name);
        else
            log_warnx("%s: %s", name, clean ? clean : "?");
        free(clean);
    } else if (strcmp(name, "status") == 0)
        render_status(root, stdout);
    else if (strcmp(name, "containers") == 0)
        render_containers(root, stdout);
    else {
        static const char *const skip[] = {"ok", NULL};
        if (root->len <= 1)
            printf("%s: done\n", name);
        render_rest(root, skip, stdout);
    }
    jsonp_free(doc);
    free(reply);
    if (fflush(stdout) != 0) {
        log_warn("standard output");
        return CTL_FAILURE;
    }
    return status;
}

/* Joins words into one command line; the socket speaks space-separated words,
 * so a word may not hold blanks or control characters. */
static char *join_words(int argc, char **argv)
{
    size_t len = 1;
    for (int i = 0; i < argc; i++) {
        for (const char *p = argv[i]; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return NULL;
        if (argv[i][0] == '\0')
            return NULL;
        len += strlen(argv[i]) + 1;
    }
    char *line = malloc(len);
    if (line == NULL)
        return NULL;
    line[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(line, " ");
        strcat(line, argv[i]);
    }
    return line;
}

static int parse_count(const char *s, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < 0)
        return -1;
    *out = n;
    return 0;
}

enum { OPT_JSON = 256, OPT_SINCE };

static const struct option global_opts[] = {
    {"socket", required_argument, NULL, 's'}, {"log", required_argument, NULL, 'l'},
    {"json", no_argument, NULL, OPT_JSON},    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
};

static int reports_command(int argc, char **argv, const char *log, int json)
{
    static const struct option opts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"container", required_argument, NULL, 'c'},
        {"since", required_argument, NULL, OPT_SINCE},
        {"lines", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, OPT_JSON},
        {"log", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct reports_opts o = {.log = log, .json = json, .last = -1, .since_us = INT64_MIN};
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "+fc:n:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o.follow = 1;
            break;
        case 'c':
            if (optarg[0] == '\0')
                return usage_error("--container needs a name or an ID");
            o.container = optarg;
            break;
        case OPT_SINCE:
            if (reports_parse_since(optarg, &o.since_us) != 0)
                return usage_error("--since '%s': give an RFC 3339 time (2026-11-23T17:40:01Z), "
                                   "a local time (2026-11-23 17:40:01) or an age (30s, 10m, 2h, "
                                   "1d)",
                                   optarg);
            break;
        case 'n':
            if (parse_count(optarg, &o.last) != 0)
                return usage_error("-n '%s': not a count of reports", optarg);
            break;
        case OPT_JSON:
            o.json = 1;
            break;
        case 'l':
            o.log = optarg;
            break;
        case 'h':
            usage(stdout);
            return CTL_OK;
        default:
            fputs("Try 'sluicectl --help'.\n", stderr);
            return CTL_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("reports: unexpected argument '%s'", argv[optind]);
    if (o.follow && strcmp(o.log, "-") == 0)
        return usage_error("reports: --follow needs a file, not standard input");
    if (o.follow && o.last < 0)
        o.last = 10;
    return reports_run(&o);
}

/* status, containers and reload: no arguments but the global options. */
static int plain_command(int argc, char **argv, const char *socket, int json)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+s:", opts, NULL)) != -1) {
        if (c == 's')
            socket = optarg;
        else if (c == OPT_JSON)
            json = 1;
        else {
            fputs("Try 'sluicectl --help'.\n", stderr);
            return CTL_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    return control_command(socket, argv[0], argv[0], json);
}

/* ca export [-o FILE]: the CA's PEM, to standard output or a file (written
 * whole or not at all). */
static int ca_export_command(int argc, char **argv, const char *socket, int json)
{
    const char *out = NULL;
    char err[512];

    if (argc == 4 && strcmp(argv[2], "-o") == 0)
        out = argv[3];
    else if (argc != 2)
        return usage_error("ca export: the only option is -o FILE");
    char *reply = sl_control_call(socket, "ca export", CALL_MS, err, sizeof(err));
    if (reply == NULL) {
        log_warnx("%s", err);
        return CTL_FAILURE;
    }
    struct jsonp_doc *doc = jsonp_parse(reply, strlen(reply), err, sizeof(err));
    const struct jsonp_value *root = doc ? jsonp_root(doc) : NULL;
    const char *pem = jsonp_str(jsonp_get(root, "pem"), NULL);
    int rc = CTL_FAILURE;
    if (json && out == NULL) {
        puts(reply);
        rc = pem ? CTL_OK : CTL_FAILURE;
    } else if (pem == NULL) {
        const char *why = jsonp_str(jsonp_get(root, "error"), "no CA in the reply");
        if (strncmp(why, "unknown command", 15) == 0)
            log_warnx("ca export: not supported by this sluiced yet");
        else
            log_warnx("ca export: %s", why);
    } else if (out == NULL) {
        fputs(pem, stdout);
        rc = CTL_OK;
    } else {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", out);
        FILE *f = fopen(tmp, "w");
        if (f && fputs(pem, f) >= 0 && fclose(f) == 0 && rename(tmp, out) == 0) {
            rc = CTL_OK;
        } else {
            log_warn("ca export: %s", out);
            unlink(tmp);
        }
    }
    jsonp_free(doc);
    free(reply);
    return rc;
}

/* Commands the daemon may not know yet: the words go to it as they are. */
static int forwarded_command(int argc, char **argv, const char *socket, int json)
{
    static const struct {
        const char *words;
        int min, max; /* words, command included */
    } known[] = {{"isolate", 2, 2}, {"release", 2, 2}, {"ca", 2, 4}};
    size_t i = 0;

    while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i].words, argv[0]) != 0)
        i++;
    if (i == sizeof(known) / sizeof(known[0]))
        return usage_error("unknown command '%s'", argv[0]);
    if (argc < known[i].min || argc > known[i].max)
        return usage_error("%s: wrong number of arguments", argv[0]);
    if (strcmp(argv[0], "ca") == 0 && strcmp(argv[1], "export") != 0 &&
        strcmp(argv[1], "install") != 0)
        return usage_error("ca: '%s' is neither export nor install", argv[1]);
    if (strcmp(argv[0], "ca") == 0 && strcmp(argv[1], "export") == 0)
        return ca_export_command(argc, argv, socket, json);
    char *line = join_words(argc, argv);
    if (line == NULL)
        return usage_error("%s: arguments may not be empty or hold blanks", argv[0]);
    /* Messages name the command: "isolate", "ca export". */
    char name[64];
    int is_ca = strcmp(argv[0], "ca") == 0;
    snprintf(name, sizeof(name), "%s%s%.32s", argv[0], is_ca ? " " : "", is_ca ? argv[1] : "");
    int rc = control_command(socket, line, name, json);
    free(line);
    return rc;
}

int main(int argc, char **argv)
{
    const char *socket = DEFAULT_SOCKET, *log = DEFAULT_LOG;
    int json = 0, c;

    log_init("sluicectl", LOG_LEVEL_INFO, 0);
    /* '+': options after the command are the command's own. */
    while ((c = getopt_long(argc, argv, "+s:l:hV", global_opts, NULL)) != -1) {
        switch (c) {
        case 's':
            socket = optarg;
            break;
        case 'l':
            log = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case 'h':
            usage(stdout);
            return CTL_OK;
        case 'V':
            printf("sluicectl %s\n", PACKAGE_VERSION);
            return CTL_OK;
        default:
            fputs("Try 'sluicectl --help'.\n", stderr);
            return CTL_USAGE;
        }
    }
    if (optind == argc)
        return usage_error("no command given");
    argc -= optind;
    argv += optind;
    if (strcmp(argv[0], "reports") == 0)
        return reports_command(argc, argv, log, json);
    if (strcmp(argv[0], "status") == 0 || strcmp(argv[0], "containers") == 0 ||
        strcmp(argv[0], "reload") == 0)
        return plain_command(argc, argv, socket, json);
    return forwarded_command(argc, argv, socket, json);
}
