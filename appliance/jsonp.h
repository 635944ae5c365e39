/*
 * The one JSON reader of sluice (json.h is the writer): parses a whole
 * document into a tree held in one allocation arena, for Docker Engine API
 * replies, Docker events and event-log lines. Strict RFC 8259: hostile input
 * gets an error with the byte offset, never a crash; nesting is bounded.
 */
#ifndef SL_JSONP_H
#define SL_JSONP_H

#include <stddef.h>
#include <stdint.h>

enum jsonp_type { JSONP_NULL, JSONP_BOOL, JSONP_NUMBER, JSONP_STRING, JSONP_ARRAY, JSONP_OBJECT };

struct jsonp_value {
    enum jsonp_type type;
    const char *key; /* member name when inside an object, else NULL */
    const char
        *str;    /* JSONP_STRING: unescaped, NUL-terminated (may hold \0 as "\u0000" is refused) */
    size_t len;  /* JSONP_STRING: bytes; ARRAY/OBJECT: members */
    double num;  /* JSONP_NUMBER */
    int boolean; /* JSONP_BOOL */
    struct jsonp_value *child; /* ARRAY/OBJECT: first member */
    struct jsonp_value *next;  /* next sibling */
};

struct jsonp_doc; /* owns every value and string of one parse */

/* NULL with "offset N: reason" in err when text is not one JSON value. */
struct jsonp_doc *jsonp_parse(const char *text, size_t len, char *err, size_t errlen);
const struct jsonp_value *jsonp_root(const struct jsonp_doc *d);
void jsonp_free(struct jsonp_doc *d);

/* Member of an object by name; NULL if v is not an object or has none. */
const struct jsonp_value *jsonp_get(const struct jsonp_value *v, const char *key);
/* A dotted path of member names: jsonp_path(root, "NetworkSettings.Networks"). */
const struct jsonp_value *jsonp_path(const struct jsonp_value *v, const char *dotted);
/* The string of a string value, else dflt. */
const char *jsonp_str(const struct jsonp_value *v, const char *dflt);

#endif
