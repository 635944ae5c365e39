/*
 * YARA: rules compiled once per policy, scanned with one YR_SCANNER per
 * thread.
 *
 * yr_initialize() keeps a plain counter and builds global tables, so two
 * threads must never run it at once: it runs exactly once per process through
 * pthread_once. It is never undone: yr_finalize() would pull those tables from
 * under policies still in use, and process exit is the only cleanup needed.
 *
 * A compiled YR_RULES is read-only and shared by every thread; a YR_SCANNER
 * holds the state of one scan and belongs to one thread. A scanner keeps a
 * reference on its policy, so a reload can drop the old policy while workers
 * still finish scans with it.
 *
 * Rule sources: the built-in set (namespace "builtin"), then the policy's
 * yara.rules entries in order; a folder contributes every *.yar and *.yara
 * below it, sorted by path so that the compiled order (and so the order of
 * matches) does not depend on the file system. Each file gets its own
 * namespace, named after the file, so two files may use the same rule name.
 */
#include "rules.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yara.h>

#include "yara_window.h"

#define BUILTIN_NS "builtin"
/* Past this many, further compiler warnings are counted, not kept. */
#define MAX_WARNINGS 32

/*
 * The EICAR test file: a harmless 68-byte string every anti-malware product
 * detects, used to check end to end that scanning works. Written as hex so
 * that this source file and the binary are not themselves flagged.
 */
static const char builtin_rules[] =
    "rule EICAR_Test_File\n"
    "{\n"
    "    meta:\n"
    "        description = \"EICAR anti-malware test file, anywhere in the data\"\n"
    "        category = \"malware-test\"\n"
    "        severity = 1\n"
    "    strings:\n"
    "        $eicar = { 58 35 4F 21 50 25 40 41 50 5B 34 5C 50 5A 58 35 34 28 50 5E 29 37\n"
    "                   43 43 29 37 7D 24 45 49 43 41 52 2D 53 54 41 4E 44 41 52 44 2D 41\n"
    "                   4E 54 49 56 49 52 55 53 2D 54 45 53 54 2D 46 49 4C 45 21 24 48 2B\n"
    "                   48 2A }\n"
    "    condition:\n"
    "        $eicar\n"
    "}\n";

struct rules_yara {
    YR_RULES *rules;
    unsigned count;
    uint8_t *window_certain;          /* by rule index: a match on a piece proves the body */
    char *warnings[MAX_WARNINGS + 1]; /* the last slot says how many were dropped */
    unsigned nwarnings, dropped;
};

struct rules_scanner {
    YR_SCANNER *yr;
    struct rules_policy *policy; /* referenced: keeps the rules alive */
    /* Where the callback writes during one rules_scan(). */
    struct rules_match *out;
    size_t max;
    int count;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = ERROR_SUCCESS;

static void init_yara(void)
{
    init_rc = yr_initialize();
}

/* --- compiling ------------------------------------------------------------- */

/* A rule as read from its source, for the window-certain flag. */
struct rule_class {
    char ns[64];
    char rule[128];
    int certain;
};

struct compile {
    struct rules_yara *y;
    char *err;
    size_t errlen;
    int failed;
    const char *ns; /* of the source being classified */
    struct rule_class *classes;
    size_t nclasses, cap;
};

static void classify_cb(void *arg, const char *rule, int certain)
{
    struct compile *c = arg;

    if (c->nclasses == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct rule_class *v = realloc(c->classes, cap * sizeof(*v));
        if (v == NULL)
            return; /* unknown rules are uncertain */
        c->classes = v;
        c->cap = cap;
    }
    struct rule_class *rc = &c->classes[c->nclasses++];
    snprintf(rc->ns, sizeof(rc->ns), "%s", c->ns);
    snprintf(rc->rule, sizeof(rc->rule), "%s", rule);
    rc->certain = certain;
}

static void classify_source(struct compile *c, const char *ns, const char *src, size_t len)
{
    c->ns = ns;
    rules_yara_classify(src, len, classify_cb, c);
}

/* Reads a rule file for classify_source; NULL if it cannot (then its rules
 * are uncertain). */
static char *read_source(FILE *f, size_t *len)
{
    char *buf = NULL;
    size_t cap = 0, n = 0, got;

    do {
        if (cap - n < 65536) {
            char *b = realloc(buf, cap + 65536);
            if (b == NULL) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap += 65536;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    *len = n;
    return buf;
}

/* Fills y->window_certain from what classify_source read, by namespace and
 * rule name. A global rule takes part in every rule's result: if any
 * exists, no rule is certain on a piece. */
static void set_window_certain(struct compile *c)
{
    struct rules_yara *y = c->y;
    YR_RULE *rule;
    unsigned i = 0;
    int globals = 0;

    y->window_certain = calloc(y->count ? y->count : 1, 1);
    if (y->window_certain == NULL)
        return;
    yr_rules_foreach(y->rules, rule)
    {
        globals |= (rule->flags & RULE_FLAGS_GLOBAL) != 0;
    }
    yr_rules_foreach(y->rules, rule)
    {
        for (size_t k = 0; k < c->nclasses && !globals; k++)
            if (strcmp(c->classes[k].rule, rule->identifier) == 0 &&
                strcmp(c->classes[k].ns, rule->ns->name) == 0) {
                y->window_certain[i] = (uint8_t)c->classes[k].certain;
                break;
            }
        i++;
    }
}

/* Keeps the first error (later ones are usually its consequences) and the
 * warnings, all as "file:line: message". */
static void compile_cb(int level, const char *file, int line, const YR_RULE *rule, const char *msg,
                       void *arg)
{
    struct compile *c = arg;
    char buf[RULES_ERRLEN];

    (void)rule; /* the message names the rule already */

    snprintf(buf, sizeof(buf), "%s:%d: %s", file != NULL ? file : "(built-in rules)", line, msg);
    if (level == YARA_ERROR_LEVEL_ERROR) {
        if (!c->failed)
            snprintf(c->err, c->errlen, "%s", buf);
        c->failed = 1;
        return;
    }
    if (c->y->nwarnings < MAX_WARNINGS && (c->y->warnings[c->y->nwarnings] = strdup(buf)))
        c->y->nwarnings++;
    else
        c->y->dropped++;
}

struct files {
    char **v;
    size_t n, cap;
};

static void files_free(struct files *f)
{
    size_t i;

    for (i = 0; i < f->n; i++)
        free(f->v[i]);
    free(f->v);
}

/* Takes path over, freed on error too. */
static int files_push(struct files *f, char *path)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        char **v = realloc(f->v, cap * sizeof(*v));
        if (v == NULL) {
            free(path);
            errno = ENOMEM;
            return -1;
        }
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = path;
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    char *path = malloc(dl + 1 + nl + 1);

    if (path == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(path, dir, dl);
    if (dl == 0 || dir[dl - 1] != '/') /* "rules/" names "rules/x.yar" */
        path[dl++] = '/';
    memcpy(path + dl, name, nl + 1);
    return path;
}

static int has_rule_suffix(const char *name)
{
    size_t n = strlen(name);

    return (n > 4 && strcmp(name + n - 4, ".yar") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".yara") == 0);
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collects the rule files below dir. Links to files are followed; links to
 * folders are not, since a link back up would loop forever. On error returns
 * -1 with errno set and *bad the path that failed (NULL: dir itself). */
static int walk(const char *dir, struct files *f, char **bad)
{
    struct dirent *de;
    DIR *d;
    int rc = 0, e;

    d = opendir(dir);
    if (d == NULL)
        return -1;
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        char *path;
        int link;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        path = path_join(dir, de->d_name);
        if (path == NULL) {
            rc = -1;
            break;
        }
        if (lstat(path, &st) < 0) {
            *bad = path;
            rc = -1;
            break;
        }
        link = S_ISLNK(st.st_mode);
        if (link && stat(path, &st) < 0) {
            /* A dangling link is an error only where a rule file was meant. */
            if (has_rule_suffix(de->d_name)) {
                *bad = path;
                rc = -1;
                break;
            }
            free(path);
            continue;
        }
        if (S_ISDIR(st.st_mode) && !link) {
            rc = walk(path, f, bad);
            if (rc < 0 && *bad == NULL) {
                *bad = path; /* the subfolder itself could not be opened */
                break;
            }
        } else if (S_ISREG(st.st_mode) && has_rule_suffix(de->d_name)) {
            rc = files_push(f, path);
            continue; /* path now belongs to f */
        }
        free(path);
    }
    if (rc == 0 && errno != 0) /* readdir failed */
        rc = -1;
    e = errno;
    closedir(d);
    errno = e;
    return rc;
}

/* Namespace of a rule file: its name without the folder. */
static const char *file_ns(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash != NULL ? slash + 1 : path;
}

static int add_file(YR_COMPILER *yc, struct compile *c, const struct rules_policy *p,
                    const struct rules_str *entry, const char *path)
{
    FILE *f;
    int errors;

    f = fopen(path, "re");
    if (f == NULL) {
        snprintf(c->err, c->errlen, "%s:%d:%d: yara.rules: cannot read '%s': %s", p->path,
                 entry->line, entry->column, path, strerror(errno));
        return -1;
    }
    size_t len = 0;
    char *src = read_source(f, &len);
    if (src != NULL)
        classify_source(c, file_ns(path), src, len);
    free(src);
    rewind(f);
    errors = yr_compiler_add_file(yc, f, file_ns(path), path);
    fclose(f);
    return errors > 0 ? -1 : 0;
}

/* One yara.rules entry: a rule file, or a folder of them. */
static int add_entry(YR_COMPILER *yc, struct compile *c, const struct rules_policy *p,
                     const struct rules_str *entry)
{
    struct files files = {NULL, 0, 0};
    struct stat st;
    char *bad = NULL;
    size_t i;
    int rc = 0;

    if (stat(entry->s, &st) < 0) {
        snprintf(c->err, c->errlen, "%s:%d:%d: yara.rules: cannot read '%s': %s", p->path,
                 entry->line, entry->column, entry->s, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode))
        return add_file(yc, c, p, entry, entry->s);
    if (!S_ISDIR(st.st_mode)) { /* a FIFO would block the load in fopen() */
        snprintf(c->err, c->errlen, "%s:%d:%d: yara.rules: '%s' is not a file or a folder", p->path,
                 entry->line, entry->column, entry->s);
        return -1;
    }

    if (walk(entry->s, &files, &bad) < 0) {
        snprintf(c->err, c->errlen, "%s:%d:%d: yara.rules: cannot read '%s': %s", p->path,
                 entry->line, entry->column, bad != NULL ? bad : entry->s, strerror(errno));
        free(bad);
        files_free(&files);
        return -1;
    }
    if (files.n == 0) {
        snprintf(c->err, c->errlen, "%s:%d:%d: yara.rules: no .yar or .yara files in '%s'", p->path,
                 entry->line, entry->column, entry->s);
        files_free(&files);
        return -1;
    }
    qsort(files.v, files.n, sizeof(files.v[0]), cmp_path);
    for (i = 0; i < files.n && rc == 0; i++)
        rc = add_file(yc, c, p, entry, files.v[i]);
    files_free(&files);
    return rc;
}

int rules_yara_compile(struct rules_policy *p, char *err, size_t errlen)
{
    char dummy[RULES_ERRLEN];
    struct compile c = {.y = NULL, .err = err, .errlen = errlen};
    YR_COMPILER *yc = NULL;
    YR_RULE *rule;
    size_t i;
    int rc;

    if (err == NULL || errlen == 0) { /* keep the code below free of checks */
        c.err = dummy;
        c.errlen = sizeof(dummy);
    }
    if (!p->yara.builtin && p->yara.paths.n == 0)
        return 0; /* nothing to scan with: no compiled rules, no scanners */

    pthread_once(&init_once, init_yara);
    if (init_rc != ERROR_SUCCESS) {
        snprintf(c.err, c.errlen, "%s: YARA initialization failed (error %d)", p->path, init_rc);
        return -1;
    }
    c.y = calloc(1, sizeof(*c.y));
    if (c.y == NULL || yr_compiler_create(&yc) != ERROR_SUCCESS) {
        snprintf(c.err, c.errlen, "%s: out of memory", p->path);
        goto fail;
    }
    yr_compiler_set_callback(yc, compile_cb, &c);

    if (p->yara.builtin) {
        classify_source(&c, BUILTIN_NS, builtin_rules, sizeof(builtin_rules) - 1);
        if (yr_compiler_add_string(yc, builtin_rules, BUILTIN_NS) > 0)
            goto fail;
    }
    for (i = 0; i < p->yara.paths.n; i++)
        if (add_entry(yc, &c, p, &p->yara.paths.v[i]) < 0)
            goto fail;

    rc = yr_compiler_get_rules(yc, &c.y->rules);
    if (rc != ERROR_SUCCESS) {
        snprintf(c.err, c.errlen, "%s: cannot build YARA rules (error %d)", p->path, rc);
        goto fail;
    }
    yr_compiler_destroy(yc);
    yr_rules_foreach(c.y->rules, rule)
    {
        c.y->count++;
    }
    set_window_certain(&c);
    free(c.classes);
    c.classes = NULL;
    if (c.y->dropped > 0) {
        char more[RULES_ERRLEN];
        snprintf(more, sizeof(more), "%s: %u more YARA warnings not shown", p->path, c.y->dropped);
        if ((c.y->warnings[c.y->nwarnings] = strdup(more)) != NULL)
            c.y->nwarnings++;
    }
    rules_yara_free(p->compiled);
    p->compiled = c.y;
    return 0;
fail:
    if (yc != NULL)
        yr_compiler_destroy(yc);
    free(c.classes);
    rules_yara_free(c.y);
    return -1;
}

void rules_yara_free(struct rules_yara *y)
{
    unsigned i;

    if (y == NULL)
        return;
    if (y->rules != NULL)
        yr_rules_destroy(y->rules);
    for (i = 0; i < y->nwarnings; i++)
        free(y->warnings[i]);
    free(y->window_certain);
    free(y);
}

unsigned rules_yara_count(const struct rules_policy *p)
{
    return p != NULL && p->compiled != NULL ? p->compiled->count : 0;
}

unsigned rules_yara_window_count(const struct rules_policy *p)
{
    unsigned n = 0;

    if (p == NULL || p->compiled == NULL || p->compiled->window_certain == NULL)
        return 0;
    for (unsigned i = 0; i < p->compiled->count; i++)
        n += p->compiled->window_certain[i];
    return n;
}

const char *rules_yara_warning(const struct rules_policy *p, unsigned i)
{
    if (p == NULL || p->compiled == NULL || i >= p->compiled->nwarnings)
        return NULL;
    return p->compiled->warnings[i];
}

/* --- scanning ---------------------------------------------------------------- */

static void fill_match(struct rules_match *m, const YR_RULE *rule, const struct rules_yara *y)
{
    const YR_META *meta;
    size_t index = (size_t)(rule - y->rules->rules_table);

    m->window_certain = y->window_certain && index < y->count && y->window_certain[index];
    snprintf(m->rule, sizeof(m->rule), "%s", rule->identifier);
    snprintf(m->ns, sizeof(m->ns), "%s", rule->ns->name);
    snprintf(m->category, sizeof(m->category), "%s", "malware");
    m->severity = 1;
    yr_rule_metas_foreach(rule, meta)
    {
        if (strcmp(meta->identifier, "category") == 0 && meta->type == META_TYPE_STRING)
            snprintf(m->category, sizeof(m->category), "%s", meta->string);
        else if (strcmp(meta->identifier, "severity") == 0 && meta->type == META_TYPE_INTEGER)
            m->severity = meta->integer < INT_MIN   ? INT_MIN
                          : meta->integer > INT_MAX ? INT_MAX
                                                    : (int)meta->integer;
    }
}

static int scan_cb(YR_SCAN_CONTEXT *ctx, int message, void *data, void *arg)
{
    struct rules_scanner *s = arg;

    (void)ctx;
    if (message == CALLBACK_MSG_RULE_MATCHING) {
        if ((size_t)s->count < s->max)
            fill_match(&s->out[s->count], data, s->policy->compiled);
        s->count++;
    }
    return CALLBACK_CONTINUE;
}

struct rules_scanner *rules_scanner_new(const struct rules_policy *p)
{
    struct rules_scanner *s;

    if (p == NULL || p->compiled == NULL || p->compiled->rules == NULL)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (yr_scanner_create(p->compiled->rules, &s->yr) != ERROR_SUCCESS) {
        free(s);
        return NULL;
    }
    yr_scanner_set_timeout(s->yr, (int)p->yara.timeout_s);
    /* No fast mode: it stops counting a string at its first match, and
     * conditions on counts ("#a > 3") must read as `yara` reads them. No
     * try/catch: sluice scans its own heap buffers, never mapped files that
     * could vanish, and the SIGBUS/SIGSEGV handlers YARA would install and
     * remove on every scan take a process-wide lock. */
    yr_scanner_set_flags(s->yr, SCAN_FLAGS_NO_TRYCATCH);
    yr_scanner_set_callback(s->yr, scan_cb, s);
    /* The policy is immutable except for its count of references, which is
     * what const-ness guards here. */
    s->policy = rules_policy_ref((struct rules_policy *)p);
    return s;
}

void rules_scanner_free(struct rules_scanner *s)
{
    if (s == NULL)
        return;
    yr_scanner_destroy(s->yr);
    rules_policy_unref(s->policy);
    free(s);
}

int rules_scan(struct rules_scanner *s, const uint8_t *buf, size_t len, struct rules_match *out,
               size_t max, char *err, size_t errlen)
{
    static const uint8_t empty[1];
    YR_RULE *rule;
    int rc;

    if (s == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "scan: no scanner (no compiled rules)");
        return -1;
    }
    s->out = out;
    s->max = out != NULL ? max : 0;
    s->count = 0;
    rc = yr_scanner_scan_mem(s->yr, buf != NULL ? buf : empty, buf != NULL ? len : 0);
    s->out = NULL;
    if (rc == ERROR_SUCCESS)
        return s->count;

    if (err == NULL || errlen == 0)
        return -1;
    switch (rc) {
    case ERROR_SCAN_TIMEOUT:
        snprintf(err, errlen, "scan timed out after %us", s->policy->yara.timeout_s);
        break;
    case ERROR_INSUFFICIENT_MEMORY:
        snprintf(err, errlen, "scan: out of memory");
        break;
    case ERROR_TOO_MANY_MATCHES:
        rule = yr_scanner_last_error_rule(s->yr);
        snprintf(err, errlen, "scan: too many matches for a string of rule %s:%s",
                 rule != NULL ? rule->ns->name : "?", rule != NULL ? rule->identifier : "?");
        break;
    default:
        snprintf(err, errlen, "scan: YARA error %d", rc);
        break;
    }
    return -1;
}
