/*
 * Fuzz target: the JSON reader on any bytes.
 *
 * A refused input must say "offset N: reason" with N inside the input. An
 * accepted one must keep the contract of jsonp.h (member counts, keys only
 * inside objects, NUL-free valid UTF-8 strings, finite numbers, bounded
 * depth), and must round-trip: written back out canonically and parsed
 * again, it gives the same canonical text.
 */
#include "jsonp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2 + 64;
        o->buf = realloc(o->buf, o->cap);
        if (o->buf == NULL)
            abort();
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void check_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;

    if (strlen(s) != n)
        abort(); /* a NUL inside, or len wrong */
    for (size_t i = 0; i < n;) {
        size_t k = u[i] < 0x80 ? 1 : u[i] >= 0xf0 ? 4 : u[i] >= 0xe0 ? 3 : 2;
        if (u[i] >= 0x80 && (u[i] < 0xc2 || u[i] > 0xf4))
            abort();
        if (i + k > n)
            abort();
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xc0) != 0x80)
                abort();
        if (k == 3 && u[i] == 0xed && u[i + 1] >= 0xa0)
            abort(); /* a surrogate */
        i += k;
    }
}

static void put_string(struct out *o, const char *s, size_t n)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c < 0x20 || c == '"' || c == '\\') {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(o, esc, 6);
        } else {
            put(o, s + i, 1);
        }
    }
    put(o, "\"", 1);
}

static void walk(const struct jsonp_value *v, int in_object, int depth, struct out *o)
{
    char num[40];
    size_t count = 0;

    if (depth > 64 || (in_object != (v->key != NULL)))
        abort();
    if (v->key) {
        check_utf8(v->key, strlen(v->key));
        put_string(o, v->key, strlen(v->key));
        put(o, ":", 1);
    }
    switch (v->type) {
    case JSONP_NULL:
        put(o, "null", 4);
        break;
    case JSONP_BOOL:
        if (v->boolean != 0 && v->boolean != 1)
            abort();
        put(o, v->boolean ? "true" : "false", v->boolean ? 4 : 5);
        break;
    case JSONP_NUMBER:
        if (!isfinite(v->num))
            abort();
        put(o, num, (size_t)snprintf(num, sizeof(num), "%.17g", v->num));
        break;
    case JSONP_STRING:
        if (v->str == NULL || jsonp_str(v, NULL) != v->str)
            abort();
        check_utf8(v->str, v->len);
        put_string(o, v->str, v->len);
        break;
    case JSONP_ARRAY:
    case JSONP_OBJECT:
        if (depth >= 64)
            abort();
        put(o, v->type == JSONP_ARRAY ? "[" : "{", 1);
        for (const struct jsonp_value *m = v->child; m; m = m->next, count++) {
            if (count)
                put(o, ",", 1);
            walk(m, v->type == JSONP_OBJECT, depth + 1, o);
            /* The first member of a name is the one found by name. */
            if (m->key && jsonp_get(v, m->key) == NULL)
                abort();
        }
        if (count != v->len)
            abort();
        put(o, v->type == JSONP_ARRAY ? "]" : "}", 1);
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    struct jsonp_doc *d = jsonp_parse((const char *)data, size, err, sizeof(err));
    struct out a = {0}, b = {0};
    unsigned long off;

    if (d == NULL) {
        if (sscanf(err, "offset %lu: ", &off) != 1 || off > size || strchr(err, ':') == NULL)
            abort();
        return 0;
    }
    walk(jsonp_root(d), 0, 0, &a);
    jsonp_free(d);

    d = jsonp_parse(a.buf, a.len, err, sizeof(err));
    if (d == NULL)
        abort();
    walk(jsonp_root(d), 0, 0, &b);
    jsonp_free(d);
    if (a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0)
        abort();
    free(a.buf);
    free(b.buf);
    return 0;
}
