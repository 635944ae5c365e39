#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_init(struct json *j)
{
    memset(j, 0, sizeof(*j));
    j->first[0] = 1;
}

void json_reset(struct json *j)
{
    j->len = 0;
    j->depth = 0;
    j->failed = 0;
    j->first[0] = 1;
    if (j->buf)
        j->buf[0] = '\0';
}

void json_free(struct json *j)
{
    free(j->buf);
    json_init(j);
}

static int reserve(struct json *j, size_t n)
{
    if (j->failed)
        return -1;
    if (j->len + n + 1 <= j->cap)
        return 0;
    size_t cap = j->cap ? j->cap : 1024;
    while (cap < j->len + n + 1)
        cap *= 2;
    char *b = realloc(j->buf, cap);
    if (b == NULL) {
        j->failed = 1;
        return -1;
    }
    j->buf = b;
    j->cap = cap;
    return 0;
}

static void put(struct json *j, const char *s, size_t n)
{
    if (reserve(j, n) != 0)
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void putc_(struct json *j, char c)
{
    put(j, &c, 1);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
size_t json_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* No overlong forms, surrogates or code points past U+10FFFF. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

static void put_escaped(struct json *j, const char *val, size_t n)
{
    const unsigned char *s = (const unsigned char *)val;
    size_t start = 0, i = 0;

    putc_(j, '"');
    while (i < n) {
        unsigned char c = s[i];
        size_t ulen = c >= 0x20 && c != '"' && c != '\\' ? json_utf8_len(s + i, n - i) : 0;
        if (ulen) {
            i += ulen;
            continue;
        }
        put(j, val + start, i - start);
        char esc[8];
        switch (c) {
        case '"':
            put(j, "\\\"", 2);
            break;
        case '\\':
            put(j, "\\\\", 2);
            break;
        case '\n':
            put(j, "\\n", 2);
            break;
        case '\r':
            put(j, "\\r", 2);
            break;
        case '\t':
            put(j, "\\t", 2);
            break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(j, esc, 6);
        }
        i++;
        start = i;
    }
    put(j, val + start, n - start);
    putc_(j, '"');
}

static void member(struct json *j, const char *key)
{
    if (!j->first[j->depth])
        putc_(j, ',');
    j->first[j->depth] = 0;
    if (key) {
        put_escaped(j, key, strlen(key));
        putc_(j, ':');
    }
}

static void open_(struct json *j, const char *key, char c)
{
    member(j, key);
    if (j->depth + 1 >= JSON_MAX_DEPTH) {
        j->failed = 1;
        return;
    }
    putc_(j, c);
    j->first[++j->depth] = 1;
}

static void close_(struct json *j, char c)
{
    if (j->depth > 0)
        j->depth--;
    putc_(j, c);
}

void json_object_begin(struct json *j, const char *key)
{
    open_(j, key, '{');
}

void json_object_end(struct json *j)
{
    close_(j, '}');
}

void json_array_begin(struct json *j, const char *key)
{
    open_(j, key, '[');
}

void json_array_end(struct json *j)
{
    close_(j, ']');
}

void json_stringn(struct json *j, const char *key, const char *val, size_t n)
{
    member(j, key);
    put_escaped(j, val, n);
}

void json_string(struct json *j, const char *key, const char *val)
{
    if (val == NULL) {
        json_null(j, key);
        return;
    }
    json_stringn(j, key, val, strlen(val));
}

void json_uint(struct json *j, const char *key, uint64_t v)
{
    char num[24];
    member(j, key);
    put(j, num, (size_t)snprintf(num, sizeof(num), "%" PRIu64, v));
}

void json_int(struct json *j, const char *key, int64_t v)
{
    char num[24];
    member(j, key);
    put(j, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v));
}

void json_bool(struct json *j, const char *key, int v)
{
    member(j, key);
    put(j, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json *j, const char *key)
{
    member(j, key);
    put(j, "null", 4);
}
