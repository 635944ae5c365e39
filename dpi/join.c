/*
 * Joins of partial responses: the contract is in join.h.
 *
 * An object is a buffer of its full size plus the list of byte ranges that
 * arrived, kept sorted and merged, so "complete" is one range [0, total).
 * Objects live in a small array searched linearly: a host joins only the
 * few files fetched in parts at a time, and 206 responses are rare.
 */
#include "join.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct piece {
    uint64_t from, to; /* [from, to) */
};

struct join_obj {
    uint8_t client[16], server[16];
    char *host, *uri;
    uint64_t total;
    uint8_t *data;
    struct piece pieces[JOIN_MAX_PIECES];
    unsigned npieces;
    uint64_t last_us;
};

struct join_seam {
    uint8_t client[16], server[16];
    uint8_t tail[JOIN_SEAM];
    size_t n;
    uint64_t last_us;
};

struct join_table {
    struct join_obj *objs[JOIN_MAX_OBJECTS];
    struct join_seam seams[JOIN_MAX_OBJECTS];
    uint64_t max_object, idle_us, held;
};

static int read_number(const char **s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = *s;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *s = p;
    *out = v;
    return 0;
}

int join_parse_content_range(const char *value, uint64_t *first, uint64_t *last, uint64_t *total)
{
    const char *p = value;

    if (p == NULL)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "bytes", 5) != 0)
        return -1;
    p += 5;
    while (*p == ' ' || *p == '\t' || *p == '=')
        p++;
    if (read_number(&p, first) != 0 || *p++ != '-' || read_number(&p, last) != 0 || *p++ != '/' ||
        read_number(&p, total) != 0)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0' || *first > *last || *last >= *total)
        return -1;
    return 0;
}

struct join_table *join_new(uint64_t max_object, uint64_t idle_us)
{
    struct join_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->max_object = max_object;
    t->idle_us = idle_us;
    return t;
}

static void obj_free(struct join_table *t, struct join_obj *o)
{
    if (o == NULL)
        return;
    t->held -= o->total <= t->held ? o->total : t->held;
    free(o->host);
    free(o->uri);
    free(o->data);
    free(o);
}

void join_free(struct join_table *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < JOIN_MAX_OBJECTS; i++)
        obj_free(t, t->objs[i]);
    free(t);
}

uint64_t join_held(const struct join_table *t)
{
    return t ? t->held : 0;
}

static int same_key(const struct join_obj *o, const struct join_key *k, uint64_t total)
{
    return o->total == total && memcmp(o->client, k->client, 16) == 0 &&
           memcmp(o->server, k->server, 16) == 0 && strcmp(o->host, k->host) == 0 &&
           strcmp(o->uri, k->uri) == 0;
}

/* The object for k, made in a free slot (or the oldest one's) if new. */
static struct join_obj *obj_get(struct join_table *t, const struct join_key *k, uint64_t total,
                                uint64_t now_us)
{
    unsigned slot = 0;
    uint64_t oldest = UINT64_MAX;

    for (unsigned i = 0; i < JOIN_MAX_OBJECTS; i++) {
        struct join_obj *o = t->objs[i];
        if (o && now_us - o->last_us > t->idle_us && now_us > o->last_us) {
            obj_free(t, o);
            t->objs[i] = o = NULL;
        }
        if (o && same_key(o, k, total))
            return o;
        uint64_t age = o ? o->last_us : 0;
        if (age < oldest) {
            oldest = age;
            slot = i;
        }
    }
    obj_free(t, t->objs[slot]);
    t->objs[slot] = NULL;
    struct join_obj *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->host = strdup(k->host ? k->host : "");
    o->uri = strdup(k->uri ? k->uri : "");
    o->data = malloc(total ? total : 1);
    if (o->host == NULL || o->uri == NULL || o->data == NULL) {
        free(o->host);
        free(o->uri);
        free(o->data);
        free(o);
        return NULL;
    }
    memcpy(o->client, k->client, 16);
    memcpy(o->server, k->server, 16);
    o->total = total;
    t->held += total;
    t->objs[slot] = o;
    return o;
}

/* Adds [from, to) to the sorted, merged list of ranges; -1 if the list is
 * full (the object cannot be tracked any more). */
static int add_piece(struct join_obj *o, uint64_t from, uint64_t to)
{
    struct piece merged = {from, to};
    unsigned w = 0;
    int placed = 0;
    struct piece out[JOIN_MAX_PIECES + 1];

    for (unsigned i = 0; i < o->npieces; i++) {
        struct piece p = o->pieces[i];
        if (p.to < merged.from) {
            out[w++] = p;
        } else if (merged.to < p.from) {
            if (!placed) {
                out[w++] = merged;
                placed = 1;
            }
            out[w++] = p;
        } else {
            merged.from = p.from < merged.from ? p.from : merged.from;
            merged.to = p.to > merged.to ? p.to : merged.to;
        }
    }
    if (!placed)
        out[w++] = merged;
    if (w > JOIN_MAX_PIECES)
        return -1;
    memcpy(o->pieces, out, w * sizeof(out[0]));
    o->npieces = w;
    return 0;
}

const uint8_t *join_part(struct join_table *t, const struct join_key *k, uint64_t first,
                         uint64_t total, const uint8_t *p, size_t n, uint64_t now_us)
{
    if (n == 0 || total == 0 || total > t->max_object || first >= total || n > total - first)
        return NULL;
    struct join_obj *o = obj_get(t, k, total, now_us);
    if (o == NULL)
        return NULL;
    o->last_us = now_us;
    memcpy(o->data + first, p, n);
    if (add_piece(o, first, first + n) != 0) {
        for (unsigned i = 0; i < JOIN_MAX_OBJECTS; i++)
            if (t->objs[i] == o)
                t->objs[i] = NULL;
        obj_free(t, o);
        return NULL;
    }
    if (!(o->npieces == 1 && o->pieces[0].from == 0 && o->pieces[0].to == total))
        return NULL;
    /* Complete. The object stays: a client whose last part was blocked
     * fetches it again (curl retries on a fresh connection), and that part
     * must complete the same object again. */
    return o->data;
}

size_t join_seam(struct join_table *t, const uint8_t client[16], const uint8_t server[16],
                 const uint8_t *tail, size_t n, uint8_t prev[JOIN_SEAM], uint64_t now_us)
{
    struct join_seam *slot = NULL;
    size_t got = 0;

    for (unsigned i = 0; i < JOIN_MAX_OBJECTS; i++) {
        struct join_seam *s = &t->seams[i];
        if (s->n > 0 && memcmp(s->client, client, 16) == 0 && memcmp(s->server, server, 16) == 0) {
            slot = s;
            if (now_us >= s->last_us && now_us - s->last_us <= t->idle_us) {
                memcpy(prev, s->tail, s->n);
                got = s->n;
            }
            break;
        }
        /* Otherwise a free slot, else the oldest. */
        if (slot == NULL || (slot->n > 0 && (s->n == 0 || s->last_us < slot->last_us)))
            slot = s;
    }
    if (n > JOIN_SEAM) {
        tail += n - JOIN_SEAM;
        n = JOIN_SEAM;
    }
    memcpy(slot->client, client, 16);
    memcpy(slot->server, server, 16);
    memcpy(slot->tail, tail, n);
    slot->n = n;
    slot->last_us = now_us;
    return got;
}
