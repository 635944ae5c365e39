/*
 * Joins of partial responses (internal to dpi).
 *
 * A client can fetch a file as several `206 Partial Content` responses
 * (Range requests, one connection or several) and put it together itself;
 * each part alone may be harmless. The engine keeps the parts of an object,
 * keyed by client, server, host and URL, at their offsets, and hands back
 * the whole object once every byte of it has arrived, so it is scanned like
 * any other body.
 *
 * Bounded: at most JOIN_MAX_OBJECTS objects per engine (the oldest goes
 * first), each no larger than the size given to join_new(); an object not
 * completed within the idle time given is dropped.
 */
#ifndef DPI_JOIN_H
#define DPI_JOIN_H

#include <stddef.h>
#include <stdint.h>

#define JOIN_MAX_OBJECTS 64
#define JOIN_MAX_PIECES  64

struct join_table;

struct join_key {
    uint8_t client[16], server[16];
    const char *host; /* Host of the request, "" if none */
    const char *uri;
};

/* "bytes 100-199/1000" → first 100, last 199, total 1000. 0 on success;
 * -1 for anything else (an unknown total, a multipart range, nonsense). */
int join_parse_content_range(const char *value, uint64_t *first, uint64_t *last, uint64_t *total);

struct join_table *join_new(uint64_t max_object, uint64_t idle_us);
void join_free(struct join_table *t);

/* Adds the n bytes of a part at offset first of an object of total bytes.
 * Returns the whole object when every byte of it has arrived (valid until
 * the next call; the object stays until it is idle, so a part fetched
 * again completes it again), else NULL. Parts that do not fit the bounds
 * are ignored. */
const uint8_t *join_part(struct join_table *t, const struct join_key *k, uint64_t first,
                         uint64_t total, const uint8_t *p, size_t n, uint64_t now_us);

/* A file can also be split over two ordinary responses that the client
 * puts together. The seam is what sluice can check: the last JOIN_SEAM
 * bytes of the previous body this client got from this server are copied
 * to prev (returned: how many; 0 if none within the idle time), and the
 * tail of this body takes their place. */
#define JOIN_SEAM 1024
size_t join_seam(struct join_table *t, const uint8_t client[16], const uint8_t server[16],
                 const uint8_t *tail, size_t n, uint8_t prev[JOIN_SEAM], uint64_t now_us);

/* Bytes held by all objects (for the engine's body memory account). */
uint64_t join_held(const struct join_table *t);

#endif
