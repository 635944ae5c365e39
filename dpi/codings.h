/*
 * Content and transfer codings of one HTTP body, decoded as clients decode
 * them: gzip (x-gzip), deflate, br, zstd, stacked up to CODINGS_MAX deep.
 *
 * Internal to dpi/. Pure and streaming: bytes in, decoded bytes out through
 * a callback in pieces of at most CODINGS_PIECE bytes, nothing accumulated;
 * how the input is cut never changes the output.
 *
 * Where clients disagree, the chain takes the reading that yields bytes:
 *   - gzip: the first member may also be zlib data (curl auto-detects it);
 *     every further member, starting at any byte, is decoded (Python);
 *     bytes after a member that do not start a gzip member end the body
 *     (Python ignores them, curl stops there): codings_ignored() counts them.
 *   - deflate: zlib data, or raw deflate when the zlib reading fails before
 *     its first output byte (curl, Python); a zlib reading that fails after
 *     output is a problem.
 *   - br, zstd (every frame): libbrotlidec and libzstd, as curl uses them.
 * What the chain cannot read is a problem (a string, never NULL once set):
 * an unknown coding, more than CODINGS_MAX codings, corrupt or truncated
 * data, or a decompression bomb. The caller raises an anomaly; the output
 * already delivered stays valid.
 */
#ifndef CODINGS_H
#define CODINGS_H

#include <stddef.h>
#include <stdint.h>

#define CODINGS_MAX       5     /* curl refuses a sixth coding */
#define CODINGS_PIECE     16384 /* largest piece handed to the output callback */
#define CODINGS_ZSTD_WLOG 23    /* largest zstd window: 8 MiB, as for HTTP (RFC 8878) */

struct codings;

/* Bounds on decoded output, checked at every stage of the chain. */
struct codings_limits {
    uint64_t max_out;     /* total decoded bytes (policy limits.decoded) */
    unsigned max_ratio;   /* decoded / encoded bytes (limits.decoded_ratio); 0: none */
    uint64_t ratio_after; /* the ratio applies past this many decoded bytes */
};

typedef void (*codings_out_fn)(void *ctx, const uint8_t *p, size_t n);

/* An empty chain (identity). NULL only when out of memory. */
struct codings *codings_new(const struct codings_limits *lim);

/* Appends the codings of one header value ("gzip, br"), in the order the
 * sender applied them: call it for each Transfer-Encoding and
 * Content-Encoding header in the order they appear in the head. With
 * is_transfer, "chunked" is skipped (the HTTP layer removed it). Names
 * match case-insensitively; identity and none count towards the limit but
 * decode nothing. Returns 0, or -1 with codings_problem() set (unknown
 * coding, too many codings, out of memory). */
int codings_add(struct codings *c, const char *value, int is_transfer);

/* Decodes n encoded bytes; decoded pieces go to out(ctx, p, n). Returns 0,
 * or -1 once a problem is set (every later call returns -1 too). */
int codings_feed(struct codings *c, const uint8_t *in, size_t n, codings_out_fn out, void *ctx);

/* The body ended: a stream cut short is a problem. Returns 0 or -1. */
int codings_finish(struct codings *c);

/* The first problem met, or NULL. */
const char *codings_problem(const struct codings *c);

/* Number of decoding stages (identity excluded): 0 means the chain only
 * passes bytes through. */
size_t codings_count(const struct codings *c);

/* Bytes after the end of the encoded data, which no client decodes
 * (trailing garbage): nonzero says some were ignored. The count is a hint
 * for logs: inside stacked codings it depends on how the input was cut. */
uint64_t codings_ignored(const struct codings *c);

/* Total bytes the chain delivered to out(). */
uint64_t codings_out(const struct codings *c);

void codings_free(struct codings *c);

#endif
