/*
 * sl_buf: the one growable byte buffer of sluice.
 *
 * A buffer has a hard cap chosen by its owner (a body limit, a ClientHello
 * limit): appends past the cap are cut and reported, never grown, so memory
 * stays bounded by policy whatever the input.
 */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct sl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;   /* allocated bytes */
    size_t limit; /* never grow past this many bytes */
};

void sl_buf_init(struct sl_buf *b, size_t limit);
/* Appends up to the limit; returns how many bytes were stored (less than n
 * when the limit cut them, or 0 with errno ENOMEM when allocation failed). */
size_t sl_buf_append(struct sl_buf *b, const void *p, size_t n);
void sl_buf_reset(struct sl_buf *b); /* keep the allocation, drop the bytes */
void sl_buf_free(struct sl_buf *b);

#endif
