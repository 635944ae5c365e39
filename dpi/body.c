/*
 * HTTP bodies: content decoding (gzip, deflate), SHA-256, and the bytes kept
 * for the YARA scan.
 *
 * What is hashed and scanned is what the receiving application ends up with
 * (the decoded body), so an EICAR file sent gzip-encoded and chunked is found
 * like a plain one, and the reported SHA-256 is the file's own.
 *
 * Bounded: only the first policy.limits.body bytes are kept (the "cut"), and
 * the body buffers of all flows of an engine together stay under
 * policy.limits.bodies_total. Identity bodies are hashed to their end whatever
 * their size (hashing is cheap and the digest is the file's); compressed
 * bodies are not decoded past the body limit, so a small compressed bomb
 * cannot make the engine inflate gigabytes.
 */
#include "dpi_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum body_coding parse_coding(const char *ce, const char **problem)
{
    char token[32];
    enum body_coding coding = BODY_IDENTITY;
    const char *p = ce;

    if (ce == NULL)
        return BODY_IDENTITY;
    /* A list of codings applied in order; one real coding is supported. */
    while (*p) {
        size_t n = 0;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        while (*p && *p != ',' && *p != ' ' && *p != '\t') {
            if (n + 1 < sizeof(token))
                token[n++] = *p;
            p++;
        }
        token[n] = '\0';
        if (n == 0 || strcasecmp(token, "identity") == 0)
            continue;
        enum body_coding c = BODY_UNSUPPORTED;
        if (strcasecmp(token, "gzip") == 0 || strcasecmp(token, "x-gzip") == 0)
            c = BODY_GZIP;
        else if (strcasecmp(token, "deflate") == 0)
            c = BODY_DEFLATE;
        if (coding != BODY_IDENTITY || c == BODY_UNSUPPORTED) {
            *problem = "unsupported content-encoding: scanned as received";
            return BODY_UNSUPPORTED;
        }
        coding = c;
    }
    return coding;
}

void body_begin(struct dpi_engine *e, struct dpi_body *b, const char *content_encoding, int chunked)
{
    memset(b, 0, sizeof(*b));
    b->coding = parse_coding(content_encoding, &b->problem);
    b->chunked = chunked;
    sl_buf_init(&b->keep, e->policy->limits.body);
    b->sha = EVP_MD_CTX_new();
    if (b->sha && EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(b->sha);
        b->sha = NULL;
    }
    if (b->sha == NULL)
        b->problem = "cannot hash: out of memory";
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

static int take_decoded(struct dpi_engine *e, struct dpi_body *b, const uint8_t *p, size_t n)
{
    b->size += n;
    if (b->sha)
        EVP_DigestUpdate(b->sha, p, n);
    keep_bytes(e, b, p, n);
    return 0;
}

/* The decoder failed: what follows is kept as received so the scan still
 * sees it (a client may be more lenient than zlib). */
static int decode_failed(struct dpi_engine *e, struct dpi_body *b, const char *why,
                         const uint8_t *rest, size_t n)
{
    b->problem = why;
    b->coding = BODY_UNSUPPORTED;
    if (b->z_ready) {
        inflateEnd(&b->z);
        b->z_ready = 0;
    }
    return take_decoded(e, b, rest, n);
}

static int inflate_start(struct dpi_body *b)
{
    int wbits = MAX_WBITS + 16; /* gzip */
    if (b->coding == BODY_DEFLATE) {
        /* "deflate" should be zlib-wrapped (RFC 9110) but many servers send
         * raw deflate; the zlib header check tells them apart. */
        unsigned h = ((unsigned)b->first[0] << 8) | b->first[1];
        wbits = ((b->first[0] & 0x0f) == 8 && h % 31 == 0) ? MAX_WBITS : -MAX_WBITS;
    }
    memset(&b->z, 0, sizeof(b->z));
    if (inflateInit2(&b->z, wbits) != Z_OK)
        return -1;
    b->z_ready = 1;
    return 0;
}

static int inflate_bytes(struct dpi_engine *e, struct dpi_body *b, const uint8_t *p, size_t n)
{
    uint8_t out[16384];
    int full = 0;

    b->z.next_in = (Bytef *)p;
    b->z.avail_in = (uInt)n;
    while (b->z.avail_in > 0 && !b->z_done) {
        b->z.next_out = out;
        b->z.avail_out = sizeof(out);
        int rc = inflate(&b->z, Z_NO_FLUSH);
        size_t produced = sizeof(out) - b->z.avail_out;
        if (produced)
            full |= take_decoded(e, b, out, produced);
        if (rc == Z_STREAM_END) {
            /* Concatenated gzip members decode as one body. */
            if (b->coding == BODY_GZIP && b->z.avail_in > 0 && b->z.next_in[0] == 0x1f) {
                inflateReset(&b->z);
                continue;
            }
            b->z_done = 1;
        } else if (rc == Z_BUF_ERROR && produced == 0) {
            break; /* needs more input */
        } else if (rc != Z_OK) {
            const char *why = b->coding == BODY_GZIP
                                  ? "gzip data error: rest scanned as received"
                                  : "deflate data error: rest scanned as received";
            return full | decode_failed(e, b, why, b->z.next_in, b->z.avail_in);
        }
    }
    return full;
}

int body_feed(struct dpi_engine *e, struct dpi_body *b, const uint8_t *p, size_t n)
{
    int full = 0;

    b->wire += n;
    if (b->coding == BODY_IDENTITY || b->coding == BODY_UNSUPPORTED)
        return take_decoded(e, b, p, n);
    if (b->z_done)
        return 0; /* trailing bytes after the compressed stream */
    if (!b->z_ready) {
        /* Two bytes decide the deflate flavour; hold them until they are here. */
        while (b->first_len < sizeof(b->first) && n > 0) {
            b->first[b->first_len++] = *p++;
            n--;
        }
        if (b->first_len < sizeof(b->first))
            return 0;
        if (inflate_start(b) != 0)
            full = decode_failed(e, b, "cannot start the decoder: scanned as received", b->first,
                                 b->first_len);
        else
            full = inflate_bytes(e, b, b->first, b->first_len);
    }
    if (n == 0)
        return full;
    if (b->coding == BODY_UNSUPPORTED)
        return full | take_decoded(e, b, p, n);
    return full | inflate_bytes(e, b, p, n);
}

void body_finish(struct dpi_engine *e, struct dpi_body *b, enum dpi_body_state state,
                 struct dpi_body_facts *facts)
{
    memset(facts, 0, sizeof(*facts));
    if (b->coding != BODY_IDENTITY && b->coding != BODY_UNSUPPORTED && !b->z_ready &&
        b->first_len > 0) {
        /* Shorter than any compressed stream: keep it as received. */
        decode_failed(e, b, "compressed body too short: scanned as received", b->first,
                      b->first_len);
    }
    if (b->z_ready && !b->z_done && state == DPI_BODY_COMPLETE && b->problem == NULL)
        b->problem = "compressed stream ended early";
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
    facts->encoding = b->coding == BODY_GZIP      ? "gzip"
                      : b->coding == BODY_DEFLATE ? "deflate"
                                                  : NULL;
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
    if (b->z_ready) {
        inflateEnd(&b->z);
        b->z_ready = 0;
    }
}
