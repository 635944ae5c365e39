/*
 * Strict RFC 8259 reader: recursive descent over the whole text into a tree.
 *
 * Every value and every unescaped string of one document lives in an arena of
 * a few large blocks, so a parse costs a handful of allocations and one free.
 * An unescaped string is never longer than its escaped form, and a value takes
 * at least one byte of text, so the first block is sized from the text and
 * most documents fit in it.
 *
 * Hostile input meets limits, not crashes: nesting is bounded (the parser
 * recurses once per level), strings must be valid UTF-8, "\u0000" and lone
 * surrogates are refused (callers use C strings), numbers must fit a double.
 */
#include "jsonp.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define JSONP_MAX_DEPTH   64
#define ARENA_MIN_BLOCK   4096
#define ARENA_FIRST_LIMIT (1u << 20)

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
};

struct jsonp_doc {
    struct arena_block *blocks; /* newest first */
    struct jsonp_value *root;
};

struct parser {
    const char *p, *start, *end;
    struct jsonp_doc *doc;
    char *err;
    size_t errlen;
    int failed;
};

static void *arena_alloc(struct jsonp_doc *d, size_t n)
{
    struct arena_block *b = d->blocks;
    size_t align = sizeof(max_align_t);

    n = (n + align - 1) & ~(align - 1);
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = b ? b->cap * 2 : ARENA_MIN_BLOCK;
        if (cap < n)
            cap = n;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = d->blocks;
        d->blocks = b;
    }
    void *r = (char *)b->data + b->used;
    b->used += n;
    return r;
}

static void fail(struct parser *ps, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct parser *ps, const char *at, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ps->failed)
        return;
    ps->failed = 1;
    if (ps->err == NULL || ps->errlen == 0)
        return;
    n = snprintf(ps->err, ps->errlen, "offset %zu: ", (size_t)(at - ps->start));
    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* What stands at p, for messages: printable ASCII as itself, else its code. */
static void fail_unexpected(struct parser *ps, const char *what)
{
    unsigned char c;

    if (ps->p >= ps->end) {
        fail(ps, ps->p, "unexpected end of input, expected %s", what);
        return;
    }
    c = (unsigned char)*ps->p;
    if (c > 0x20 && c < 0x7f)
        fail(ps, ps->p, "unexpected '%c', expected %s", c, what);
    else
        fail(ps, ps->p, "unexpected byte 0x%02x, expected %s", c, what);
}

static struct jsonp_value *new_value(struct parser *ps, enum jsonp_type type)
{
    struct jsonp_value *v = arena_alloc(ps->doc, sizeof(*v));

    if (v == NULL) {
        fail(ps, ps->p, "out of memory");
        return NULL;
    }
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* One \uXXXX escape (and its low surrogate if it is a high one) at p, which
 * points at the 'u'. Returns the code point, or -1 after fail(). */
static long unicode_escape(struct parser *ps, const char *bs)
{
    const char *p = bs + 2;
    unsigned hi, lo;

    if (ps->end - p < 4 || hex4(p, &hi) != 0) {
        fail(ps, bs, "invalid \\u escape");
        return -1;
    }
    p += 4;
    if (hi == 0) {
        fail(ps, bs, "\\u0000 is not allowed");
        return -1;
    }
    if (hi >= 0xdc00 && hi <= 0xdfff) {
        fail(ps, bs, "lone low surrogate \\u%04x", hi);
        return -1;
    }
    if (hi < 0xd800 || hi > 0xdbff) {
        ps->p = p;
        return hi;
    }
    if (ps->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 || lo < 0xdc00 ||
        lo > 0xdfff) {
        fail(ps, bs, "lone high surrogate \\u%04x", hi);
        return -1;
    }
    ps->p = p + 6;
    return 0x10000 + (((long)hi - 0xd800) << 10) + ((long)lo - 0xdc00);
}

/* A string at p (on its opening quote): unescaped into the arena. */
static char *parse_string(struct parser *ps, size_t *lenp)
{
    const char *s = ps->p + 1, *run;
    char *out, *o;

    /* The unescaped form is never longer than the text up to the closing
     * quote; find it first so the arena holds only what is needed. */
    run = s;
    while (run < ps->end && *run != '"')
        run += *run == '\\' && run + 1 < ps->end ? 2 : 1;
    if (run >= ps->end) {
        fail(ps, ps->p, "unterminated string");
        return NULL;
    }
    out = arena_alloc(ps->doc, (size_t)(run - s) + 1);
    if (out == NULL) {
        fail(ps, ps->p, "out of memory");
        return NULL;
    }
    o = out;
    ps->p = s;
    for (;;) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            fail(ps, ps->p, "control character 0x%02x in string", c);
            return NULL;
        }
        if (c >= 0x80) {
            size_t n = json_utf8_len((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
            if (n == 0) {
                fail(ps, ps->p, "invalid UTF-8 in string");
                return NULL;
            }
            memcpy(o, ps->p, n);
            o += n;
            ps->p += n;
            continue;
        }
        if (c != '\\') {
            *o++ = (char)c;
            ps->p++;
            continue;
        }
        const char *bs = ps->p;
        switch (bs[1]) {
        case '"':
        case '\\':
        case '/':
            *o++ = bs[1];
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            long cp = unicode_escape(ps, bs);
            if (cp < 0)
                return NULL;
            o += put_utf8(o, (unsigned)cp);
            continue;
        }
        default:
            fail(ps, bs, "invalid escape");
            return NULL;
        }
        ps->p = bs + 2;
    }
    *o = '\0';
    *lenp = (size_t)(o - out);
    return out;
}

/* JSON numbers use '.', whatever locale the process set. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static double c_strtod(const char *s)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
}

static int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int parse_number(struct parser *ps, struct jsonp_value *v)
{
    const char *p = ps->p, *start = ps->p;
    char small[64], *buf = small;
    size_t n;

    if (p < ps->end && *p == '-')
        p++;
    if (!is_digit(p, ps->end)) {
        fail(ps, p, "invalid number: digit expected");
        return -1;
    }
    if (*p == '0') {
        p++;
        if (is_digit(p, ps->end)) {
            fail(ps, start, "invalid number: leading zero");
            return -1;
        }
    } else {
        while (is_digit(p, ps->end))
            p++;
    }
    if (p < ps->end && *p == '.') {
        p++;
        if (!is_digit(p, ps->end)) {
            fail(ps, p, "invalid number: digit expected after '.'");
            return -1;
        }
        while (is_digit(p, ps->end))
            p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < ps->end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, ps->end)) {
            fail(ps, p, "invalid number: digit expected in exponent");
            return -1;
        }
        while (is_digit(p, ps->end))
            p++;
    }

    /* strtod wants a terminated string; the text need not be one. */
    n = (size_t)(p - start);
    if (n >= sizeof(small)) {
        buf = arena_alloc(ps->doc, n + 1);
        if (buf == NULL) {
            fail(ps, start, "out of memory");
            return -1;
        }
    }
    memcpy(buf, start, n);
    buf[n] = '\0';
    errno = 0;
    v->num = c_strtod(buf);
    if (errno == ERANGE && isinf(v->num)) {
        fail(ps, start, "number out of range");
        return -1;
    }
    ps->p = p;
    return 0;
}

static int parse_literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        fail(ps, ps->p, "invalid literal, expected %s", word);
        return -1;
    }
    ps->p += n;
    return 0;
}

static struct jsonp_value *parse_value(struct parser *ps, int depth);

/* Members of an array or object, p just past the opening bracket. */
static int parse_members(struct parser *ps, struct jsonp_value *v, int depth)
{
    int object = v->type == JSONP_OBJECT;
    char close = object ? '}' : ']';
    struct jsonp_value **tail = &v->child;

    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        struct jsonp_value *m;

        skip_ws(ps);
        if (object) {
            size_t klen;
            if (ps->p >= ps->end || *ps->p != '"') {
                fail_unexpected(ps, "a member name");
                return -1;
            }
            key = parse_string(ps, &klen);
            if (key == NULL)
                return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                fail_unexpected(ps, "':'");
                return -1;
            }
            ps->p++;
        }
        m = parse_value(ps, depth + 1);
        if (m == NULL)
            return -1;
        m->key = key;
        *tail = m;
        tail = &m->next;
        v->len++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        fail_unexpected(ps, object ? "',' or '}'" : "',' or ']'");
        return -1;
    }
}

static struct jsonp_value *parse_value(struct parser *ps, int depth)
{
    struct jsonp_value *v;

    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail_unexpected(ps, "a value");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
    case '[':
        if (depth >= JSONP_MAX_DEPTH) {
            fail(ps, ps->p, "nesting deeper than %d", JSONP_MAX_DEPTH);
            return NULL;
        }
        v = new_value(ps, *ps->p == '{' ? JSONP_OBJECT : JSONP_ARRAY);
        if (v == NULL)
            return NULL;
        ps->p++;
        return parse_members(ps, v, depth) == 0 ? v : NULL;
    case '"':
        v = new_value(ps, JSONP_STRING);
        if (v == NULL)
            return NULL;
        v->str = parse_string(ps, &v->len);
        return v->str ? v : NULL;
    case 't':
    case 'f':
        v = new_value(ps, JSONP_BOOL);
        if (v == NULL)
            return NULL;
        v->boolean = *ps->p == 't';
        return parse_literal(ps, v->boolean ? "true" : "false", v->boolean ? 4 : 5) == 0 ? v : NULL;
    case 'n':
        v = new_value(ps, JSONP_NULL);
        if (v == NULL)
            return NULL;
        return parse_literal(ps, "null", 4) == 0 ? v : NULL;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
            v = new_value(ps, JSONP_NUMBER);
            if (v == NULL)
                return NULL;
            return parse_number(ps, v) == 0 ? v : NULL;
        }
        fail_unexpected(ps, "a value");
        return NULL;
    }
}

struct jsonp_doc *jsonp_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct parser ps;
    struct jsonp_doc *d;
    size_t first;

    if (err && errlen)
        err[0] = '\0';
    if (text == NULL)
        text = "", len = 0;
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "offset 0: out of memory");
        return NULL;
    }
    /* Most documents fit in the first block: values cost about as much as
     * the text holds of them, strings at most their length. */
    first = len < ARENA_FIRST_LIMIT ? len * 2 : ARENA_FIRST_LIMIT;
    if (first < ARENA_MIN_BLOCK)
        first = ARENA_MIN_BLOCK;
    memset(&ps, 0, sizeof(ps));
    ps.start = ps.p = text;
    ps.end = text + len;
    ps.doc = d;
    ps.err = err;
    ps.errlen = errlen;
    if (arena_alloc(d, first) != NULL)
        d->blocks->used = 0;

    d->root = parse_value(&ps, 0);
    if (d->root != NULL) {
        skip_ws(&ps);
        if (ps.p < ps.end)
            fail_unexpected(&ps, "end of input");
    }
    if (ps.failed) {
        jsonp_free(d);
        return NULL;
    }
    return d;
}

const struct jsonp_value *jsonp_root(const struct jsonp_doc *d)
{
    return d ? d->root : NULL;
}

void jsonp_free(struct jsonp_doc *d)
{
    if (d == NULL)
        return;
    for (struct arena_block *b = d->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(d);
}

static const struct jsonp_value *get_n(const struct jsonp_value *v, const char *key, size_t n)
{
    if (v == NULL || v->type != JSONP_OBJECT)
        return NULL;
    /* Duplicate names are legal JSON; the first one wins. */
    for (const struct jsonp_value *m = v->child; m; m = m->next)
        if (strncmp(m->key, key, n) == 0 && m->key[n] == '\0')
            return m;
    return NULL;
}

const struct jsonp_value *jsonp_get(const struct jsonp_value *v, const char *key)
{
    return key ? get_n(v, key, strlen(key)) : NULL;
}

const struct jsonp_value *jsonp_path(const struct jsonp_value *v, const char *dotted)
{
    const char *s = dotted;

    if (dotted == NULL)
        return NULL;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        v = get_n(v, s, n);
        if (v == NULL || dot == NULL)
            return v;
        s = dot + 1;
    }
}

const char *jsonp_str(const struct jsonp_value *v, const char *dflt)
{
    return v && v->type == JSONP_STRING ? v->str : dflt;
}
