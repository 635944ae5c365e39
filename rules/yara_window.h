/*
 * Internal to rules/: which YARA rules a match on a piece of a body proves
 * for the whole body (yara_window.c says how that is decided).
 */
#ifndef RULES_YARA_WINDOW_H
#define RULES_YARA_WINDOW_H

#include <stddef.h>

typedef void (*rules_yara_classify_fn)(void *ctx, const char *rule, int window_certain);

/* Calls fn once per rule defined in the YARA source text src. */
void rules_yara_classify(const char *src, size_t len, rules_yara_classify_fn fn, void *ctx);

#endif
