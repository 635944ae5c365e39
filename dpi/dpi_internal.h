/*
 * Shared between the files of the dpi module only.
 */
#ifndef DPI_INTERNAL_H
#define DPI_INTERNAL_H

#include <ndpi_api.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "dpi.h"
#include "http.h"
#include "join.h"
#include "sl_buf.h"

struct dpi_engine {
    struct rules_policy *policy;
    struct ndpi_detection_module_struct *ndpi;
    struct rules_scanner *scanner; /* NULL if the policy has no YARA rules */
    dpi_event_fn emit;
    void *emit_ctx;
    uint64_t alert_risks;        /* nDPI risks that raise alerts */
    uint8_t alert_category[256]; /* nDPI categories that raise alerts */
    uint64_t body_held;          /* bytes held by body buffers of all flows */
    int inline_scans;            /* scan bodies while they arrive */
    int window_rules;            /* the policy has rules a piece of a body can prove */
    struct join_table *joins;    /* parts of objects fetched in 206 responses */
    struct dpi_engine_stats stats;
};

/* --- bodies (body.c) ------------------------------------------------------ */

enum body_coding { BODY_IDENTITY = 0, BODY_GZIP, BODY_DEFLATE, BODY_UNSUPPORTED };

/* Called with each full window of a body longer than the policy's body
 * limit, before the window moves on. */
typedef void (*body_window_fn)(void *ctx, const uint8_t *p, size_t n);

/* One HTTP body on its way to YARA: content-decoded, hashed, kept up to the
 * policy's body limit; longer ones pass in windows of that size. */
struct dpi_body {
    enum body_coding coding;
    int chunked;
    z_stream z;
    int z_ready;         /* inflateInit2 done */
    int z_raw_retry;     /* deflate sent without the zlib header: retried raw */
    int z_done;          /* stream end reached; later bytes ignored */
    EVP_MD_CTX *sha;     /* NULL once hashing stopped */
    struct sl_buf keep;  /* bytes for the scan */
    uint64_t size;       /* decoded bytes seen */
    uint64_t wire;       /* transfer-decoded bytes received */
    int cut;             /* longer than one window */
    uint64_t windows;    /* full windows handed to window() so far */
    uint64_t window_start; /* offset of keep.data[0] in the decoded body */
    int unread;          /* out of memory: the rest of the body is not inspected */
    body_window_fn window;
    void *window_ctx;
    int scanned;         /* the scan ran (at the cut or at the end) */
    size_t streamed;     /* kept bytes already seen by scans while arriving */
    const char *problem; /* first problem met, or NULL */
    uint8_t first[2];    /* first bytes of a compressed body: they tell raw deflate */
    size_t first_len;
};

void body_begin(struct dpi_engine *e, struct dpi_body *b, const char *content_encoding,
                int chunked);
/* Adds transfer-decoded bytes; full windows go to b->window (set it after
 * body_begin). Returns 0. */
int body_feed(struct dpi_engine *e, struct dpi_body *b, const uint8_t *p, size_t n);
/* Finishes hashing; fills facts (sha256, size, state). */
void body_finish(struct dpi_engine *e, struct dpi_body *b, enum dpi_body_state state,
                 struct dpi_body_facts *facts);
/* Drops buffers (after the scan, or on flow end). */
void body_release(struct dpi_engine *e, struct dpi_body *b);

/* --- ndpi glue (engine.c) ------------------------------------------------- */

/* Fills name, id and category strings of proto. */
void engine_describe(struct dpi_engine *e, ndpi_protocol proto, char *name, size_t namelen,
                     char *id, size_t idlen, const char **category);

#endif
