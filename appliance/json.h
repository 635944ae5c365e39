/*
 * The one JSON writer of sluice: builds one document (an event line, a
 * control-socket reply) in a growable buffer that is reused, so steady-state
 * writing allocates nothing. Strings are escaped to valid JSON and valid
 * UTF-8 whatever bytes they hold (hostile URLs included): bytes that are not
 * UTF-8 are written as \u00XX.
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 16

struct json {
    char *buf;
    size_t len, cap;
    int depth;
    uint8_t first[JSON_MAX_DEPTH]; /* next member is the first at this depth */
    int failed;                    /* out of memory or nesting too deep */
};

void json_init(struct json *j);
void json_reset(struct json *j); /* keep the buffer, drop the text */
void json_free(struct json *j);

/* key is NULL for the top level and for array elements. */
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *key, const char *val);
void json_stringn(struct json *j, const char *key, const char *val, size_t n);
void json_uint(struct json *j, const char *key, uint64_t v);
void json_int(struct json *j, const char *key, int64_t v);
void json_bool(struct json *j, const char *key, int v);
void json_null(struct json *j, const char *key);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 for an invalid one
 * (overlong, surrogate, past U+10FFFF, cut short). The reader uses it too. */
size_t json_utf8_len(const unsigned char *s, size_t n);

#endif
