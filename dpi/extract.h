/*
 * What the receiving application unpacks from a whole HTTP body: archive
 * members (zip, tar, gzip/bzip2/xz/zstd streams, 7z, rar, ar, cpio, cab),
 * multipart parts with their transfer encodings, urlencoded form values and
 * JSON string values with their escapes decoded.
 *
 * Pure: bytes in, derived buffers out through a callback. Each derived buffer
 * is allocated once, bounded by the limits, handed to the callback and freed
 * when it returns (memory: at most lim->member_bytes per nesting level, or
 * the body's length for a decoded part or value, plus libarchive's own
 * state); derived buffers are examined again, so a zip inside a
 * base64 multipart part inside a tar.gz comes out. The body itself is never
 * handed back: the caller scans it already.
 *
 * Archives are recognised by their content (magic numbers), never by name or
 * Content-Type, and only by magic numbers that ordinary text, HTML, JSON or
 * images cannot start with: a body that is not an archive yields no member
 * and no problem. Upload encodings follow the Content-Type given (multipart
 * is also recognised by its first delimiter line when no usable boundary is
 * given, JSON by a first '{' or '[').
 */
#ifndef SLUICE_EXTRACT_H
#define SLUICE_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

struct extract_limits {
    unsigned depth;        /* archives inside archives opened (limits.archive_depth); 0: none */
    uint64_t total_bytes;  /* bytes decompressed or decoded from one body, all levels
                              (limits.archive_bytes): bounds the work, not the memory */
    unsigned max_ratio;    /* those bytes per body byte (limits.decoded_ratio); 0: no ratio */
    uint64_t ratio_after;  /* the ratio counts only past this many bytes (limits.body) */
    uint64_t member_bytes; /* bytes of one member kept and handed over (limits.body); the
                              rest is read and counted, not kept; 0: no such bound */
    unsigned max_members;  /* archive members of one body */
    unsigned max_values;   /* parts and values of one body handed over one by one; past it
                              the rest of each multipart, form or JSON document comes
                              joined in one buffer (each value on its own line) */
};

/* The body is only the first part of a longer one (cut at limits.body):
 * an archive ending early is then not reported as corrupt. */
#define EXTRACT_TRUNCATED 1u

/* what names the buffer, like "zip:dir/a.txt", "multipart:file(base64)",
 * "form:field", "json:$.a.b"; nested ones are joined by " > ", e.g.
 * "multipart:up(base64) > tar.gz:x/eicar.com". At most EXTRACT_WHAT_MAX
 * bytes with its NUL, printable ASCII only. Return nonzero to stop. */
#define EXTRACT_WHAT_MAX 256
typedef int (*extract_fn)(void *ctx, const char *what, const uint8_t *p, size_t n);

/* Something the receiver may read differently from sluice, or a bound hit.
 * reason is one of the fixed strings below (so callers may count them); what
 * names the archive or member. */
typedef void (*extract_problem_fn)(void *ctx, const char *what, const char *reason);

#define EXTRACT_ENCRYPTED "encrypted archive member"
#define EXTRACT_CORRUPT   "unreadable archive"
#define EXTRACT_DEPTH     "archive nesting deeper than limits.archive_depth"
#define EXTRACT_BYTES     "extracted bytes over limits.archive_bytes"
#define EXTRACT_RATIO     "extracted bytes over limits.decoded_ratio"
#define EXTRACT_MEMBERS   "too many archive members"
#define EXTRACT_NOMEM     "out of memory extracting"

/* Hands every derived buffer of body to fn and every problem to problem
 * (may be NULL). content_type may be NULL. Returns 0 when all was extracted
 * (problems may have been reported), 1 when fn asked to stop, -1 when a bound
 * or a failed allocation stopped extraction (reported through problem). */
int extract_body(const uint8_t *body, size_t len, const char *content_type, unsigned flags,
                 const struct extract_limits *lim, extract_fn fn, extract_problem_fn problem,
                 void *ctx);

#endif
