/*
 * Fuzz target: the extractor of archives and upload encodings.
 *
 * Input layout (seeds in corpus/extract follow it):
 *   byte 0   bits 0-2: the Content-Type given (see types[]); bit 3: the body
 *            is a cut one (EXTRACT_TRUNCATED); bits 4-5: the callback stops
 *            after 0 (never), 1, 2 or 5 buffers
 *   the rest the body
 * The contract of extract.h must hold: every buffer non-empty and readable
 * to its end, names short and printable, reasons among the fixed ones, the
 * bytes handed over within the limits, and the return value telling why it
 * ended.
 */
#include "extract.h"

#include <stdlib.h>
#include <string.h>

static const char *const types[] = {
    NULL,
    "multipart/form-data; boundary=b",
    "multipart/mixed; boundary=\"--=_x\"",
    "application/x-www-form-urlencoded",
    "application/json",
    "text/html",
    "multipart/form-data",
    "application/octet-stream",
};

static const struct extract_limits limits = {.depth = 3,
                                             .total_bytes = 4u << 20,
                                             .max_ratio = 100,
                                             .ratio_after = 1u << 20,
                                             .member_bytes = 256u << 10,
                                             .max_members = 64,
                                             .max_values = 8};

struct record {
    uint64_t bytes;
    unsigned buffers, stop_after;
    int stopped, bounded;
    uint8_t sink;
};

static void check_what(const char *what)
{
    size_t n = strlen(what);
    if (n == 0 || n >= EXTRACT_WHAT_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)what[i] < 0x20 || (unsigned char)what[i] >= 0x7f)
            abort();
}

static int on_buffer(void *ctx, const char *what, const uint8_t *p, size_t n)
{
    struct record *r = ctx;

    check_what(what);
    if (n == 0 || r->stopped)
        abort();
    /* Touch every byte: ASan tells if the buffer is shorter than said. */
    for (size_t i = 0; i < n; i++)
        r->sink ^= p[i];
    r->bytes += n;
    r->buffers++;
    if (r->stop_after && r->buffers >= r->stop_after) {
        r->stopped = 1;
        return 1;
    }
    return 0;
}

static void on_problem(void *ctx, const char *what, const char *reason)
{
    struct record *r = ctx;
    static const char *const reasons[] = {EXTRACT_ENCRYPTED, EXTRACT_CORRUPT, EXTRACT_DEPTH,
                                          EXTRACT_BYTES,     EXTRACT_RATIO,   EXTRACT_MEMBERS,
                                          EXTRACT_NOMEM};
    int known = 0;

    check_what(what);
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (strcmp(reason, reasons[i]) == 0)
            known = 1;
    if (!known)
        abort();
    if (strcmp(reason, EXTRACT_BYTES) == 0 || strcmp(reason, EXTRACT_RATIO) == 0 ||
        strcmp(reason, EXTRACT_MEMBERS) == 0 || strcmp(reason, EXTRACT_NOMEM) == 0)
        r->bounded = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned stops[] = {0, 1, 2, 5};
    struct record r;

    if (size < 1)
        return 0;
    memset(&r, 0, sizeof(r));
    r.stop_after = stops[(data[0] >> 4) & 3];
    /* A copy of exactly the body's length, so reads past it are caught. */
    size_t n = size - 1;
    uint8_t *body = malloc(n ? n : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data + 1, n);
    int ret = extract_body(body, n, types[data[0] & 7], data[0] & 8 ? EXTRACT_TRUNCATED : 0,
                           &limits, on_buffer, on_problem, &r);
    free(body);

    if (ret != (r.stopped ? 1 : r.bounded ? -1 : 0))
        abort();
    /* Every byte handed over counts: within limits.archive_bytes and the
     * ratio, past limits.body. */
    uint64_t cap = (uint64_t)n * limits.max_ratio;
    cap = cap > limits.ratio_after ? cap : limits.ratio_after;
    cap = cap < limits.total_bytes ? cap : limits.total_bytes;
    if (r.bytes > cap)
        abort();
    return 0;
}
