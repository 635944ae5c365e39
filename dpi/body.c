/*
 * HTTP bodies: transfer and content decoding (codings.c), SHA-256, and the
 * bytes kept for the YARA scan.
 *
 * What is hashed and scanned is what the receiving application ends up with
 * (the decoded body), so an EICAR file sent br-encoded inside gzip and
 * chunked is found like a plain one, and the reported SHA-256 is the file's
 * own. What cannot be decoded (an unknown coding, corrupt data, a
 * decompression bomb) is an anomaly for the flow (b->anomaly); what follows
 * it is scanned as received.
 *
 * Bounded: a body is kept for the scan in windows of policy.limits.body
 * bytes, the whole body when it fits in one; the body buffers of all flows
 * of an engine together stay under policy.limits.bodies_total. Decoding is
 * bounded by limits.decoded and limits.decoded_ratio (codings.c).
 */
#include "dpi_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void body_begin(struct dpi_engine *e, struct dpi_body *b, const char *content_encoding,
                const char *transfer_coding, int chunked)
{
    const struct rules_policy *p = e->policy;
    struct codings_limits lim = {p->limits.decoded, p->limits.decoded_ratio, p->limits.body};

    memset(b, 0, sizeof(*b));
    b->chunked = chunked;
    sl_buf_init(&b->keep, p->limits.body);
    b->sha = EVP_MD_CTX_new();
    if (b->sha && EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(b->sha);
        b->sha = NULL;
    }
    if (b->sha == NULL)
        b->problem = "cannot hash: out of memory";
    /* curl undoes the transfer codings first, then the content codings,
     * whatever the order of the headers: the content codings were applied
     * first. */
    b->codings = codings_new(&lim);
    if (b->codings == NULL) {
        b->anomaly = b->problem = "cannot decode the body: out of memory";
    } else if ((content_encoding && codings_add(b->codings, content_encoding, 0) != 0) ||
               (transfer_coding && codings_add(b->codings, transfer_coding, 1) != 0)) {
        /* What cannot be decoded is scanned as received. */
        b->anomaly = b->problem = codings_problem(b->codings);
        b->raw = 1;
    }
    snprintf(b->encoding, sizeof(b->encoding), "%s%s%s", content_encoding ? content_encoding : "",
             content_encoding && transfer_coding ? ", " : "",
             transfer_coding ? transfer_coding : "");
    e->stats.bodies++;
}

/* The window is full: hand it to the scan, then start the next one with
 * its last DPI_STREAM_OVERLAP bytes, so a string across the boundary is
 * still found. */
static void window_full(struct dpi_engine *e, struct dpi_body *b)
{
    if (b->windows++ == 0)
        e->stats.bodies_cut++;
    b->cut = 1;
    if (b->window)
        b->window(b->window_ctx, b->keep.data, b->keep.len);
    size_t tail = b->keep.len > DPI_STREAM_OVERLAP ? DPI_STREAM_OVERLAP : b->keep.len;
    memmove(b->keep.data, b->keep.data + b->keep.len - tail, tail);
    e->body_held -= b->keep.len - tail <= e->body_held ? b->keep.len - tail : e->body_held;
    b->window_start += b->keep.len - tail;
    b->keep.len = tail;
    b->streamed = tail;
}

/* Keeps decoded bytes for the scan, window after window. Out of memory
 * (the worker's bodies_total, or malloc) with nothing left to scan, the
 * rest of the body cannot be read: b->unread says so. */
static void keep_bytes(struct dpi_engine *e, struct dpi_body *b, const uint8_t *p, size_t n)
{
    while (n > 0 && !b->unread) {
        size_t room = b->keep.limit - b->keep.len;
        uint64_t total = e->policy->limits.bodies_total;
        uint64_t total_room = total > e->body_held ? total - e->body_held : 0;
        size_t want = n < room ? n : room;
        if (want > total_room)
            want = (size_t)total_room;
        size_t got = sl_buf_append(&b->keep, p, want);
        e->body_held += got;
        p += got;
        n -= got;
        if (n == 0)
            break;
        if (got == 0 && b->keep.len <= DPI_STREAM_OVERLAP) {
            b->unread = 1;
            b->problem = "no memory left to inspect the body";
            break;
        }
        window_full(e, b);
    }
}

static void take_decoded(void *ctx, const uint8_t *p, size_t n)
{
    struct dpi_body *b = ctx;

    b->size += n;
    if (b->sha)
        EVP_DigestUpdate(b->sha, p, n);
    keep_bytes(b->engine, b, p, n);
}

void body_feed(struct dpi_engine *e, struct dpi_body *b, const uint8_t *p, size_t n)
{
    b->wire += n;
    b->engine = e;
    if (b->raw || b->codings == NULL || codings_count(b->codings) == 0) {
        take_decoded(b, p, n);
        return;
    }
    if (codings_feed(b->codings, p, n, take_decoded, b) != 0) {
        /* The receiver's decoder fails here too; what it decoded so far,
         * sluice scans, and from here on the bytes as received. */
        if (b->anomaly == NULL)
            b->anomaly = b->problem = codings_problem(b->codings);
        b->raw = 1;
        take_decoded(b, p, n);
    }
}

void body_finish(struct dpi_engine *e, struct dpi_body *b, enum dpi_body_state state,
                 struct dpi_body_facts *facts)
{
    (void)e;
    memset(facts, 0, sizeof(*facts));
    if (state == DPI_BODY_COMPLETE && !b->raw && b->codings && b->anomaly == NULL &&
        codings_finish(b->codings) != 0)
        b->anomaly = b->problem = codings_problem(b->codings);
    if (b->sha) {
        unsigned char md[32];
        unsigned len = 0;
        if (EVP_DigestFinal_ex(b->sha, md, &len) == 1 && len == 32) {
            for (int i = 0; i < 32; i++)
                snprintf(facts->sha256 + 2 * i, 3, "%02x", md[i]);
        }
        EVP_MD_CTX_free(b->sha);
        b->sha = NULL;
    }
    facts->size = b->size;
    facts->chunked = b->chunked;
    facts->encoding = b->encoding[0] ? b->encoding : NULL;
    facts->state = b->cut && state == DPI_BODY_COMPLETE ? DPI_BODY_CUT : state;
    facts->problem = b->problem;
}

static void drop_kept(struct dpi_engine *e, struct dpi_body *b)
{
    e->body_held -= b->keep.len <= e->body_held ? b->keep.len : e->body_held;
    sl_buf_free(&b->keep);
}

void body_release(struct dpi_engine *e, struct dpi_body *b)
{
    drop_kept(e, b);
    if (b->sha) {
        EVP_MD_CTX_free(b->sha);
        b->sha = NULL;
    }
    codings_free(b->codings);
    b->codings = NULL;
}
