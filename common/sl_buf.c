#include "sl_buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sl_buf_init(struct sl_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

size_t sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    size_t room = b->limit > b->len ? b->limit - b->len : 0;
    if (n > room)
        n = room;
    if (n == 0)
        return 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->limit)
            cap = b->limit;
        uint8_t *grown = realloc(b->data, cap);
        if (grown == NULL) {
            errno = ENOMEM;
            return 0;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return n;
}

void sl_buf_reset(struct sl_buf *b)
{
    b->len = 0;
}

void sl_buf_free(struct sl_buf *b)
{
    free(b->data);
    sl_buf_init(b, b->limit);
}
