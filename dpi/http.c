/*
 * HTTP/1.x over the two byte streams of a flow: detection, heads, framing,
 * pairing. The contract is in http.h; this comment says how it is met.
 *
 * Each direction is its own state machine (struct http_stream) that only
 * ever looks at the bytes it is given, so a feed may end anywhere, even in
 * the middle of "\r\n". Three kinds of work happen:
 *
 * - The start line is read byte by byte by two small recognizers running
 *   side by side, one for a request line and one for a status line. While
 *   the role of a stream is unknown both run; when one stream is known, the
 *   other can only be the opposite kind, so only that recognizer runs there.
 *   A byte that kills the last live recognizer stops the stream at once:
 *   "\x16\x03" or a binary blob is rejected on its first byte, not after a
 *   line that may never come.
 *
 * - Header lines, chunk-size lines and trailers are read whole into one
 *   bounded buffer per direction (memchr for the line end). Header values
 *   the caller cares about are compacted in place at the front of the same
 *   buffer, NUL-terminated, so the head callback gets plain C strings
 *   without a second copy. Everything else is only checked and counted.
 *
 * - Bodies are never copied: Content-Length, EOF-delimited and chunk data
 *   are handed to body() as pointers into the caller's buffer, one call per
 *   feed (per chunk for chunked), with no per-byte work.
 *
 * Errors are checked in byte order with fixed tie-breaking, so the result
 * (callbacks, why strings) does not depend on how the stream was cut into
 * feeds: the unit tests and the fuzz target both check that.
 *
 * Requests waiting for their responses live in a small ring; responses take
 * them in order. Requests beyond HTTP_MAX_PENDING are only counted, so the
 * responses that answer them are still lined up with the right request.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_BUF_MIN    512
#define HTTP_CL_MAX     ((uint64_t)1 << 62)
#define HTTP_METHOD_MAX 31
#define OFF_NONE        SIZE_MAX

enum http_phase {
    PH_START = 0,  /* start line, or the empty lines allowed before it */
    PH_HEADERS,    /* header lines up to the empty line */
    PH_BODY_LEN,   /* Content-Length body */
    PH_BODY_EOF,   /* body up to the end of the stream */
    PH_CHUNK_SIZE, /* chunk-size [; ext] line */
    PH_CHUNK_DATA, /* chunk data */
    PH_CHUNK_CR,   /* CRLF after chunk data: the CR (or a bare LF) */
    PH_CHUNK_LF,   /* ... its LF */
    PH_TRAILERS,   /* trailer fields after the last chunk */
    PH_STOPPED,    /* not parsed any more: not HTTP, error, gap, tunnel, EOF */
};

/* Request-line recognizer: METHOD SP request-target SP HTTP/1.x */
enum rq_state {
    RQ_DEAD = 0,
    RQ_METHOD,
    RQ_TARGET0,
    RQ_TARGET,
    RQ_VERSION,
    RQ_MINOR,
    RQ_EOL,
    RQ_CR
};

/* Status-line recognizer: HTTP/1.x SP NNN [SP reason] */
enum rs_state { RS_DEAD = 0, RS_VERSION, RS_MINOR, RS_SP, RS_STATUS, RS_AFTER, RS_REASON, RS_CR };

/* Header fields the parser keeps or acts on. */
enum http_field {
    F_OTHER = 0,
    F_HOST,
    F_USER_AGENT,
    F_CONTENT_TYPE,
    F_CONTENT_ENCODING,
    F_CONTENT_LENGTH,
    F_TRANSFER_ENCODING,
    F_UPGRADE,
    F_COUNT
};

static const struct {
    const char *name;
    size_t len;
} field_names[F_COUNT] = {
    [F_HOST] = {"host", 4},
    [F_USER_AGENT] = {"user-agent", 10},
    [F_CONTENT_TYPE] = {"content-type", 12},
    [F_CONTENT_ENCODING] = {"content-encoding", 16},
    [F_CONTENT_LENGTH] = {"content-length", 14},
    [F_TRANSFER_ENCODING] = {"transfer-encoding", 17},
    [F_UPGRADE] = {"upgrade", 7},
};

static const char http_version[] = "HTTP/1.";

struct http_stream {
    enum http_phase phase;
    uint8_t classified;   /* a start line of this stream was valid: it is HTTP */
    uint8_t in_msg;       /* a message has started: an end() is owed */
    uint8_t truncated;    /* a gap skipped part of the current body */
    uint8_t cr;           /* a CR that may open an empty line before a message */
    uint8_t maybe_tunnel; /* last request was CONNECT or asked for an Upgrade */
    const char *error;

    /* start line */
    uint8_t rq, rs;       /* recognizer states */
    uint8_t ssh;          /* the line so far matches "SSH-" */
    uint8_t rq_vi, rs_vi; /* bytes of "HTTP/1." matched by each */
    uint8_t minor;        /* version minor of the current message */
    uint8_t sdig;         /* status digits read */
    uint8_t is_request;   /* the current message is a request */
    uint8_t mlen;         /* method length */
    size_t tlen;          /* request-target length */
    int status;

    /* The current line is read into buf[line_start..len); in a head,
     * buf[0..line_start) holds the kept strings. */
    uint8_t *buf;
    size_t cap, len, line_start;
    size_t head_raw;    /* raw bytes of the head (or of the trailers) so far */
    unsigned nfields;   /* fields of the head (or trailers) so far */
    uint8_t has_field;  /* a field line was seen: a fold may continue it */
    uint8_t field_kind; /* of the last field, if its value is kept */
    size_t field_off;   /* of the last kept value */
    size_t off[F_COUNT];

    /* framing facts of the head being read */
    uint8_t cl_present, te_present, te_chunked, upgrade;
    uint64_t cl;

    /* body */
    enum http_framing framing;
    uint64_t remaining;
};

struct http_parser {
    struct http_callbacks cb;
    void *ctx;
    int request_dir;
    struct http_stream s[2];

    /* Requests waiting for a response, oldest first. skipped[i] counts the
     * requests that came before req[i] but found the ring full; skipped_tail
     * counts those after the newest. */
    struct http_request_info *req[HTTP_MAX_PENDING];
    uint64_t skipped[HTTP_MAX_PENDING];
    unsigned first, count;
    uint64_t skipped_tail;
    struct http_request_info *spare; /* reused by the next request */
};

/* --- characters ------------------------------------------------------------ */

/* RFC 7230 tchar */
static int is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Any visible byte, obs-text included: URIs in the wild carry raw UTF-8. */
static int is_target_char(uint8_t c)
{
    return c > 0x20 && c != 0x7f;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs around [*p, *p + *n). */
static void trim_ows(const uint8_t **p, size_t *n)
{
    while (*n > 0 && is_ows((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*p)[*n - 1]))
        (*n)--;
}

static const char *kept(const struct http_stream *s, enum http_field f)
{
    return s->off[f] == OFF_NONE ? NULL : (const char *)s->buf + s->off[f];
}

/* --- pending requests ---------------------------------------------------- */

static void copy_cut(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void pending_push(struct http_parser *p, const struct http_stream *s)
{
    const char *method = (const char *)s->buf;
    const char *uri = method + s->mlen + 1;
    const char *host = kept(s, F_HOST), *ua = kept(s, F_USER_AGENT);
    struct http_request_info *r;
    unsigned i;

    if (p->count == HTTP_MAX_PENDING) {
        p->skipped_tail++;
        return;
    }
    r = p->spare ? p->spare : malloc(sizeof(*r));
    if (r == NULL) {
        /* Not remembering it costs its response the request facts only:
         * the count keeps the responses after it paired correctly. */
        p->skipped_tail++;
        return;
    }
    p->spare = NULL;
    /* Cut to the field sizes: these are facts for reports, not for framing. */
    copy_cut(r->method, sizeof(r->method), method);
    copy_cut(r->uri, sizeof(r->uri), uri);
    copy_cut(r->host, sizeof(r->host), host ? host : "");
    copy_cut(r->user_agent, sizeof(r->user_agent), ua ? ua : "");

    i = (p->first + p->count) % HTTP_MAX_PENDING;
    p->req[i] = r;
    p->skipped[i] = p->skipped_tail;
    p->skipped_tail = 0;
    p->count++;
}

/* The request the next response answers, without taking it. */
static const struct http_request_info *pending_peek(const struct http_parser *p)
{
    if (p->count == 0 || p->skipped[p->first] > 0)
        return NULL;
    return p->req[p->first];
}

/* Takes the request a final response answers; NULL when it was not kept or
 * was never seen. The caller gives it back with pending_release(). */
static struct http_request_info *pending_take(struct http_parser *p)
{
    struct http_request_info *r;

    if (p->count == 0) {
        if (p->skipped_tail > 0)
            p->skipped_tail--;
        return NULL;
    }
    if (p->skipped[p->first] > 0) {
        p->skipped[p->first]--;
        return NULL;
    }
    r = p->req[p->first];
    p->req[p->first] = NULL;
    p->first = (p->first + 1) % HTTP_MAX_PENDING;
    p->count--;
    return r;
}

static void pending_release(struct http_parser *p, struct http_request_info *r)
{
    if (r == NULL)
        return;
    if (p->spare == NULL)
        p->spare = r;
    else
        free(r);
}

/* --- stream state -------------------------------------------------------- */

/* Arms the start-line recognizers for what dir may still be. */
static void start_line_reset(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];

    s->rq = p->request_dir < 0 || p->request_dir == dir ? RQ_METHOD : RQ_DEAD;
    s->rs = p->request_dir < 0 || p->request_dir != dir ? RS_VERSION : RS_DEAD;
    s->ssh = 1;
    s->rq_vi = 0;
    s->rs_vi = 0;
    s->mlen = 0;
    s->tlen = 0;
    s->sdig = 0;
    s->status = 0;
    s->cr = 0;
}

/* Ready for the next message of dir. */
static void msg_reset(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];

    s->phase = PH_START;
    s->in_msg = 0;
    s->truncated = 0;
    s->len = 0;
    s->line_start = 0;
    s->head_raw = 0;
    s->nfields = 0;
    s->has_field = 0;
    s->field_kind = F_OTHER;
    for (int i = 0; i < F_COUNT; i++)
        s->off[i] = OFF_NONE;
    s->cl_present = 0;
    s->te_present = 0;
    s->te_chunked = 0;
    s->upgrade = 0;
    s->cl = 0;
    s->framing = HTTP_BODY_NONE;
    s->remaining = 0;
    start_line_reset(p, dir);
}

/* Ends the current message of dir, if one was started. */
static void msg_end(struct http_parser *p, int dir, enum http_end how, const char *why)
{
    struct http_stream *s = &p->s[dir];

    if (s->in_msg && p->cb.end)
        p->cb.end(p->ctx, dir, how, how == HTTP_END_OK ? NULL : why);
    s->in_msg = 0;
}

/* The current message of dir is complete; the next may follow. */
static void msg_done(struct http_parser *p, int dir, enum http_end how, const char *why)
{
    msg_end(p, dir, how, why);
    msg_reset(p, dir);
}

/* Stops dir for good, ending an open message with how. error is what
 * http_parser_error() reports (NULL for a normal end). */
static void stream_stop(struct http_parser *p, int dir, enum http_end how, const char *why,
                        const char *error)
{
    struct http_stream *s = &p->s[dir];

    if (s->phase == PH_STOPPED)
        return;
    msg_end(p, dir, how, why);
    s->phase = PH_STOPPED;
    s->error = error;
    /* Nothing will be read again: give the buffer back now, not with the flow. */
    free(s->buf);
    s->buf = NULL;
    s->cap = s->len = s->line_start = 0;
}

/* Malformed framing: parsing of dir cannot go on. */
static void stream_fail(struct http_parser *p, int dir, const char *why)
{
    stream_stop(p, dir, HTTP_END_ERROR, why, why);
}

/* A 101 or a CONNECT 2xx: what follows on both streams is not HTTP. */
static void flow_tunnel(struct http_parser *p)
{
    for (int d = 0; d < 2; d++)
        stream_stop(p, d, HTTP_END_TRUNCATED, "switched protocols", NULL);
}

/* The role of one stream is now known: the other can only be the opposite
 * kind. A stream that has started a line of the same kind stops here. */
static void role_decided(struct http_parser *p, int request_dir)
{
    p->request_dir = request_dir;
    for (int d = 0; d < 2; d++) {
        struct http_stream *s = &p->s[d];
        if (s->classified || s->phase != PH_START)
            continue;
        if (d == request_dir)
            s->rs = RS_DEAD;
        else
            s->rq = RQ_DEAD;
        if (s->rq == RQ_DEAD && s->rs == RS_DEAD)
            stream_stop(p, d, HTTP_END_ERROR, NULL,
                        d == request_dir ? "responses in both directions"
                                         : "requests in both directions");
    }
}

/* Room for n more bytes in the line buffer. The buffer never needs more than
 * HTTP_MAX_HEAD: a line is at most HTTP_MAX_LINE + 1, and in a head each kept
 * byte stands for at least one raw byte, which read_line() bounds. */
static int buf_reserve(struct http_stream *s, size_t n)
{
    size_t cap = s->cap ? s->cap : HTTP_BUF_MIN;
    uint8_t *nb;

    if (s->len + n <= s->cap)
        return 0;
    if (s->len + n > HTTP_MAX_HEAD)
        return -1;
    while (cap < s->len + n)
        cap *= 2;
    if (cap > HTTP_MAX_HEAD)
        cap = HTTP_MAX_HEAD;
    nb = realloc(s->buf, cap);
    if (nb == NULL)
        return -1;
    s->buf = nb;
    s->cap = cap;
    return 0;
}

static int buf_append(struct http_stream *s, const uint8_t *d, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_reserve(s, n) < 0)
        return -1;
    memcpy(s->buf + s->len, d, n);
    s->len += n;
    return 0;
}

/* --- start line ------------------------------------------------------------ */

/* Advances the request-line recognizer over one byte (the LF excluded). */
static void request_step(struct http_stream *s, uint8_t c)
{
    switch (s->rq) {
    case RQ_METHOD:
        if (c == ' ' && s->mlen > 0) {
            s->rq = RQ_TARGET0;
            break;
        }
        if (!is_tchar(c) || s->mlen == HTTP_METHOD_MAX) {
            s->rq = RQ_DEAD;
            break;
        }
        s->mlen++;
        /* "SSH-..." is all tchars, yet it is the SSH banner (RFC 4253 4.2):
         * say so on its fourth byte, not at the end of the line. */
        if (s->ssh && c != (uint8_t) "SSH-"[s->mlen - 1])
            s->ssh = 0;
        else if (s->ssh && s->mlen == 4)
            s->rq = RQ_DEAD;
        break;
    case RQ_TARGET0:
    case RQ_TARGET:
        if (is_target_char(c)) {
            s->tlen++;
            s->rq = RQ_TARGET;
        } else {
            s->rq = c == ' ' && s->rq == RQ_TARGET ? RQ_VERSION : RQ_DEAD;
        }
        break;
    case RQ_VERSION:
        if (c != (uint8_t)http_version[s->rq_vi])
            s->rq = RQ_DEAD;
        else if (++s->rq_vi == sizeof(http_version) - 1)
            s->rq = RQ_MINOR;
        break;
    case RQ_MINOR:
        if (c == '0' || c == '1') {
            s->minor = (uint8_t)(c - '0');
            s->rq = RQ_EOL;
        } else {
            s->rq = RQ_DEAD;
        }
        break;
    case RQ_EOL:
        s->rq = c == '\r' ? RQ_CR : RQ_DEAD;
        break;
    default: /* RQ_CR: a CR is only allowed right before the LF */
        s->rq = RQ_DEAD;
        break;
    }
}

/* Advances the status-line recognizer over one byte (the LF excluded). */
static void status_step(struct http_stream *s, uint8_t c)
{
    switch (s->rs) {
    case RS_VERSION:
        if (c != (uint8_t)http_version[s->rs_vi])
            s->rs = RS_DEAD;
        else if (++s->rs_vi == sizeof(http_version) - 1)
            s->rs = RS_MINOR;
        break;
    case RS_MINOR:
        if (c == '0' || c == '1') {
            s->minor = (uint8_t)(c - '0');
            s->rs = RS_SP;
        } else {
            s->rs = RS_DEAD;
        }
        break;
    case RS_SP:
        s->rs = c == ' ' ? RS_STATUS : RS_DEAD;
        break;
    case RS_STATUS:
        if (c < '0' || c > '9' || (s->sdig == 0 && c == '0')) {
            s->rs = RS_DEAD;
            break;
        }
        s->status = s->status * 10 + (c - '0');
        if (++s->sdig == 3)
            s->rs = RS_AFTER;
        break;
    case RS_AFTER:
        /* The reason phrase is optional; many servers send "HTTP/1.1 200". */
        s->rs = c == ' ' ? RS_REASON : c == '\r' ? RS_CR : RS_DEAD;
        break;
    case RS_REASON:
        if (c == '\r')
            s->rs = RS_CR;
        else if ((c < 0x20 && c != '\t') || c == 0x7f)
            s->rs = RS_DEAD;
        break;
    default: /* RS_CR */
        s->rs = RS_DEAD;
        break;
    }
}

/* Both recognizers are alive only through "HTTP", far below the limit, so
 * a line too long is one or the other. */
static const char *start_line_too_long(const struct http_parser *p, int dir)
{
    const struct http_stream *s = &p->s[dir];
    int request = s->classified ? p->request_dir == dir : s->rq != RQ_DEAD;

    return request ? "request line too long" : "status line too long";
}

/* The start line of dir cannot be what dir may carry. */
static void start_line_refused(struct http_parser *p, int dir, const char *why)
{
    struct http_stream *s = &p->s[dir];

    if (!s->classified) {
        /* Nothing was ever HTTP here: no message to end. */
        stream_stop(p, dir, HTTP_END_ERROR, NULL, why ? why : "not HTTP");
    } else if (s->maybe_tunnel && why == NULL) {
        /* After CONNECT or an Upgrade request, the client may speak the new
         * protocol before its response is read here: a tunnel, no error. */
        s->in_msg = 0;
        stream_stop(p, dir, HTTP_END_ERROR, NULL, NULL);
    } else {
        if (why == NULL)
            why = p->request_dir == dir ? "invalid request line" : "invalid status line";
        stream_fail(p, dir, why);
    }
}

/* A whole start line is in buf[0..len), without its LF. */
static void start_line_done(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];
    size_t n = s->len;
    int request = s->rq == RQ_EOL || s->rq == RQ_CR;
    int response = s->rs == RS_AFTER || s->rs == RS_REASON || s->rs == RS_CR;

    if (!request && !response) {
        start_line_refused(p, dir, NULL);
        return;
    }
    if (n > 0 && s->buf[n - 1] == '\r')
        n--;
    if (n > HTTP_MAX_LINE) {
        start_line_refused(p, dir, start_line_too_long(p, dir));
        return;
    }
    s->is_request = (uint8_t)request;
    s->head_raw = s->len + 1;
    if (request) {
        /* Keep "METHOD\0target\0" at the front of buf for the head. */
        s->buf[s->mlen] = '\0';
        s->buf[s->mlen + 1 + s->tlen] = '\0';
        s->len = s->mlen + 1 + s->tlen + 1;
    } else {
        s->len = 0;
    }
    s->line_start = s->len;
    s->phase = PH_HEADERS;
    s->maybe_tunnel = 0;
    if (!s->classified) {
        s->classified = 1;
        s->in_msg = 1;
        if (p->request_dir < 0)
            role_decided(p, request ? dir : !dir);
    }
}

static size_t read_start_line(struct http_parser *p, int dir, const uint8_t *d, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const uint8_t *nl;
    size_t i = 0, end;

    /* Empty lines before a message are allowed (RFC 7230 3.5). */
    while (i < n && s->len == 0) {
        if (s->cr) {
            if (d[i] != '\n') {
                if (s->classified)
                    s->in_msg = 1;
                start_line_refused(p, dir, NULL);
                return i + 1;
            }
            s->cr = 0;
        } else if (d[i] == '\r') {
            s->cr = 1;
        } else if (d[i] != '\n') {
            break;
        }
        i++;
    }
    if (i == n)
        return n;

    if (s->classified)
        s->in_msg = 1;
    nl = memchr(d + i, '\n', n - i);
    end = nl ? (size_t)(nl - d) : n;
    for (size_t j = i; j < end; j++) {
        if (s->rq != RQ_DEAD)
            request_step(s, d[j]);
        if (s->rs != RS_DEAD)
            status_step(s, d[j]);
        if (s->rq == RQ_DEAD && s->rs == RS_DEAD) {
            start_line_refused(p, dir, NULL);
            return j + 1;
        }
        /* One byte of slack for the CR before the LF. */
        if (s->len + (j - i) + 1 > HTTP_MAX_LINE + 1) {
            start_line_refused(p, dir, start_line_too_long(p, dir));
            return j + 1;
        }
    }
    if (buf_append(s, d + i, end - i) < 0) {
        start_line_refused(p, dir, "out of memory");
        return end;
    }
    if (nl == NULL)
        return n;
    start_line_done(p, dir);
    return end + 1;
}

/* --- header fields ----------------------------------------------------------- */

static enum http_field field_lookup(const uint8_t *name, size_t n)
{
    for (int f = F_OTHER + 1; f < F_COUNT; f++)
        if (field_names[f].len == n && strncasecmp((const char *)name, field_names[f].name, n) == 0)
            return (enum http_field)f;
    return F_OTHER;
}

/* Checks "name: value" (not a fold); *name_len is the name's length. A name
 * followed by whitespace is refused: servers differ on it, which is how
 * requests are smuggled past a proxy (RFC 7230 3.2.4). */
static const char *field_syntax(const uint8_t *l, size_t n, int trailer, size_t *name_len)
{
    const uint8_t *colon = memchr(l, ':', n);
    size_t k;

    if (colon == NULL)
        return trailer ? "missing colon in trailer" : "missing colon in header";
    k = (size_t)(colon - l);
    if (k == 0)
        return trailer ? "empty trailer name" : "empty header name";
    if (is_ows(l[k - 1]))
        return "whitespace before colon";
    for (size_t i = 0; i < k; i++)
        if (!is_tchar(l[i]))
            return trailer ? "invalid trailer name" : "invalid header name";
    *name_len = k;
    return NULL;
}

/* Content-Length: 1*DIGIT, or a list of equal values (what a proxy makes of
 * repeated headers, RFC 7230 3.3.2). */
static const char *parse_content_length(const uint8_t *v, uint64_t *out)
{
    const uint8_t *p = v;
    uint64_t first = 0;
    int have = 0;

    for (;;) {
        const uint8_t *e = p, *a = p;
        size_t n;
        uint64_t x = 0;

        while (*e && *e != ',')
            e++;
        n = (size_t)(e - p);
        trim_ows(&a, &n);
        if (n == 0)
            return "invalid content-length";
        for (size_t i = 0; i < n; i++) {
            unsigned digit = (unsigned)(a[i] - '0');
            if (digit > 9)
                return "invalid content-length";
            if (x > HTTP_CL_MAX / 10 || x * 10 + digit > HTTP_CL_MAX)
                return "content-length too large";
            x = x * 10 + digit;
        }
        if (have && x != first)
            return "conflicting content-length";
        first = x;
        have = 1;
        if (*e == '\0')
            break;
        p = e + 1;
    }
    *out = first;
    return NULL;
}

/* Transfer-Encoding: only the last coding matters for framing; repeated
 * headers are one list in order, empty elements count for nothing. */
static void parse_transfer_encoding(struct http_stream *s, const uint8_t *v)
{
    const uint8_t *p = v, *last = NULL;
    size_t last_n = 0;

    for (;;) {
        const uint8_t *e = p, *a = p, *semi;
        size_t n;

        while (*e && *e != ',')
            e++;
        n = (size_t)(e - p);
        semi = memchr(a, ';', n); /* transfer-parameters */
        if (semi)
            n = (size_t)(semi - a);
        trim_ows(&a, &n);
        if (n > 0) {
            last = a;
            last_n = n;
        }
        if (*e == '\0')
            break;
        p = e + 1;
    }
    s->te_present = 1;
    if (last)
        s->te_chunked = last_n == 7 && strncasecmp((const char *)last, "chunked", 7) == 0;
}

/* The last kept field is complete (no fold can follow): act on it. */
static const char *field_done(struct http_stream *s)
{
    const uint8_t *v = s->buf + s->field_off;
    const char *why;
    uint64_t cl;

    if (s->field_kind == F_CONTENT_LENGTH) {
        if ((why = parse_content_length(v, &cl)) != NULL)
            return why;
        if (s->cl_present && s->cl != cl)
            return "conflicting content-length";
        s->cl = cl;
        s->cl_present = 1;
    } else if (s->field_kind == F_TRANSFER_ENCODING) {
        parse_transfer_encoding(s, v);
    }
    s->field_kind = F_OTHER;
    return NULL;
}

/* obs-fold: the line continues the previous field's value, joined by one
 * space (RFC 7230 3.2.4). Only kept values need the bytes. */
static void field_fold(struct http_stream *s, const uint8_t *l, size_t n)
{
    trim_ows(&l, &n);
    if (s->field_kind != F_OTHER && n > 0) {
        /* buf[line_start - 1] is the kept value's NUL; the line follows it. */
        uint8_t *at = s->buf + s->line_start - 1;
        *at++ = ' ';
        memmove(at, l, n);
        at[n] = '\0';
        s->len = s->line_start + n + 1;
    } else {
        s->len = s->line_start;
    }
    s->line_start = s->len;
}

static void head_complete(struct http_parser *p, int dir);

/* One line of the head, without its line end, at buf + line_start. */
static void header_line(struct http_parser *p, int dir, uint8_t *l, size_t n)
{
    struct http_stream *s = &p->s[dir];
    enum http_field kind;
    const uint8_t *v;
    const char *why;
    size_t name_len = 0, vn;
    int keep;

    if (n == 0) {
        s->len = s->line_start;
        head_complete(p, dir);
        return;
    }
    if (memchr(l, '\r', n)) {
        stream_fail(p, dir, "bare cr in header");
        return;
    }
    if (is_ows(l[0])) {
        if (!s->has_field) {
            stream_fail(p, dir, "folded line before first header");
            return;
        }
        field_fold(s, l, n);
        return;
    }
    if ((why = field_done(s)) != NULL || (why = field_syntax(l, n, 0, &name_len)) != NULL) {
        stream_fail(p, dir, why);
        return;
    }
    if (++s->nfields > HTTP_MAX_HEADERS) {
        stream_fail(p, dir, "too many headers");
        return;
    }
    s->has_field = 1;
    kind = field_lookup(l, name_len);
    if (kind == F_UPGRADE)
        s->upgrade = 1;
    /* Keep the first of the single-valued fields callers see, and every
     * framing field until it is parsed. */
    keep = kind == F_CONTENT_LENGTH || kind == F_TRANSFER_ENCODING ||
           (kind != F_OTHER && kind != F_UPGRADE && s->off[kind] == OFF_NONE);
    if (!keep) {
        s->field_kind = F_OTHER;
        s->len = s->line_start;
        return;
    }
    v = l + name_len + 1;
    vn = n - name_len - 1;
    trim_ows(&v, &vn);
    memmove(s->buf + s->line_start, v, vn);
    s->buf[s->line_start + vn] = '\0';
    if (s->off[kind] == OFF_NONE)
        s->off[kind] = s->line_start;
    s->field_kind = (uint8_t)kind;
    s->field_off = s->line_start;
    s->len = s->line_start + vn + 1;
    s->line_start = s->len;
}

/* --- message head ------------------------------------------------------------ */

/* Framing of a request (RFC 7230 3.3.3, items 3 to 6). */
static const char *request_framing(const struct http_stream *s, enum http_framing *framing)
{
    if (s->te_present) {
        /* Without chunked last, a request's length cannot be known. */
        if (!s->te_chunked)
            return "transfer-encoding not chunked";
        *framing = HTTP_BODY_CHUNKED;
    } else {
        *framing = s->cl_present ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    }
    return NULL;
}

/* Framing of a response to req (NULL: unknown, taken as not HEAD/CONNECT). */
static enum http_framing response_framing(const struct http_stream *s,
                                          const struct http_request_info *req, int *tunnel)
{
    int status = s->status;
    int head = req && strcmp(req->method, "HEAD") == 0;
    int connect = req && strcmp(req->method, "CONNECT") == 0;

    *tunnel = status == 101 || (connect && status >= 200 && status < 300);
    if (*tunnel || head || status < 200 || status == 204 || status == 304)
        return HTTP_BODY_NONE;
    if (s->te_present)
        return s->te_chunked ? HTTP_BODY_CHUNKED : HTTP_BODY_EOF;
    return s->cl_present ? HTTP_BODY_LENGTH : HTTP_BODY_EOF;
}

/* The empty line ending the head was read: frame, pair, report. */
static void head_complete(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];
    struct http_request_info *taken = NULL;
    struct http_head h;
    const char *why;
    int tunnel = 0;

    if ((why = field_done(s)) != NULL) {
        stream_fail(p, dir, why);
        return;
    }
    memset(&h, 0, sizeof(h));
    h.is_request = s->is_request;
    h.version_minor = s->minor;
    h.host = kept(s, F_HOST);
    h.user_agent = kept(s, F_USER_AGENT);
    h.content_type = kept(s, F_CONTENT_TYPE);
    h.content_encoding = kept(s, F_CONTENT_ENCODING);
    /* Transfer-Encoding overrides Content-Length (RFC 7230 3.3.3 item 3). */
    h.content_length = s->cl_present && !s->te_present ? (int64_t)s->cl : -1;
    if (s->is_request) {
        if ((why = request_framing(s, &h.framing)) != NULL) {
            stream_fail(p, dir, why);
            return;
        }
        h.method = (const char *)s->buf;
        h.uri = h.method + s->mlen + 1;
        pending_push(p, s);
        s->maybe_tunnel = strcmp(h.method, "CONNECT") == 0 || s->upgrade;
    } else {
        /* Interim responses answer the oldest request but do not take it. */
        h.status = s->status;
        if (s->status >= 200 || s->status == 101)
            h.request = taken = pending_take(p);
        else
            h.request = pending_peek(p);
        h.framing = response_framing(s, h.request, &tunnel);
        h.tunnel = tunnel;
    }
    s->framing = h.framing;
    if (p->cb.head)
        p->cb.head(p->ctx, dir, &h);
    pending_release(p, taken);

    /* The head's strings are no longer needed: the buffer serves chunk
     * lines and trailers from here. */
    s->len = s->line_start = 0;
    switch (s->framing) {
    case HTTP_BODY_NONE:
        msg_done(p, dir, HTTP_END_OK, NULL);
        if (tunnel)
            flow_tunnel(p);
        break;
    case HTTP_BODY_LENGTH:
        if (s->cl == 0) {
            msg_done(p, dir, HTTP_END_OK, NULL);
        } else {
            s->remaining = s->cl;
            s->phase = PH_BODY_LEN;
        }
        break;
    case HTTP_BODY_CHUNKED:
        s->phase = PH_CHUNK_SIZE;
        break;
    case HTTP_BODY_EOF:
        s->phase = PH_BODY_EOF;
        break;
    }
}

/* --- chunked body ------------------------------------------------------------- */

/* chunk-size [ ";" chunk-ext ] without its line end (RFC 7230 4.1). */
static void chunk_size_line(struct http_parser *p, int dir, const uint8_t *l, size_t n)
{
    struct http_stream *s = &p->s[dir];
    unsigned digits = 0;
    uint64_t size = 0;
    size_t i = 0;
    int x;

    while (i < n && (x = hex_value(l[i])) >= 0) {
        if ((digits > 0 || x != 0) && ++digits > 16) {
            stream_fail(p, dir, "chunk size overflow");
            return;
        }
        size = size << 4 | (uint64_t)x;
        i++;
    }
    if (i == 0) {
        stream_fail(p, dir, "invalid chunk size");
        return;
    }
    while (i < n && is_ows(l[i]))
        i++;
    if (i < n && l[i] != ';') {
        stream_fail(p, dir, "invalid chunk size");
        return;
    }
    if (memchr(l + i, '\r', n - i)) {
        stream_fail(p, dir, "invalid chunk extension");
        return;
    }
    s->len = s->line_start = 0;
    if (size == 0) {
        s->phase = PH_TRAILERS;
        s->head_raw = 0;
        s->nfields = 0;
        s->has_field = 0;
        return;
    }
    s->remaining = size;
    s->phase = PH_CHUNK_DATA;
}

/* A trailer field, or the empty line that ends the message. Trailers are
 * checked like headers (so a malformed one is seen) but not kept. */
static void trailer_line(struct http_parser *p, int dir, const uint8_t *l, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const char *why;
    size_t name_len;

    s->len = s->line_start = 0;
    if (n == 0) {
        msg_done(p, dir, HTTP_END_OK, NULL);
        return;
    }
    if (memchr(l, '\r', n)) {
        stream_fail(p, dir, "bare cr in trailer");
        return;
    }
    if (is_ows(l[0])) {
        if (!s->has_field)
            stream_fail(p, dir, "folded line before first trailer");
        return;
    }
    if ((why = field_syntax(l, n, 1, &name_len)) != NULL) {
        stream_fail(p, dir, why);
        return;
    }
    if (++s->nfields > HTTP_MAX_HEADERS) {
        stream_fail(p, dir, "too many trailer fields");
        return;
    }
    s->has_field = 1;
}

/* --- lines ------------------------------------------------------------------ */

/* Reads header, chunk-size and trailer lines. Limits are checked byte by
 * byte in stream order (first NUL, then line length, then head size for the
 * same byte), so the error does not depend on where feeds were cut. */
static size_t read_line(struct http_parser *p, int dir, const uint8_t *d, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const char *too_long, *nul, *head_too_long = NULL;
    size_t head_max = 0;
    const uint8_t *nl = memchr(d, '\n', n), *z;
    size_t content = nl ? (size_t)(nl - d) : n;
    size_t line_room = HTTP_MAX_LINE + 1 - (s->len - s->line_start);
    size_t pos = SIZE_MAX;
    const char *why = NULL;
    uint8_t *l;
    size_t ln;

    if (s->phase == PH_HEADERS) {
        too_long = "header line too long";
        nul = "nul byte in head";
        head_too_long = "head too long";
        head_max = HTTP_MAX_HEAD;
    } else if (s->phase == PH_TRAILERS) {
        too_long = "trailer line too long";
        nul = "nul byte in trailer";
        head_too_long = "trailers too long";
        head_max = HTTP_MAX_HEAD;
    } else {
        too_long = "chunk size line too long";
        nul = "nul byte in chunk size line";
    }

    if ((z = memchr(d, '\0', content)) != NULL) {
        pos = (size_t)(z - d);
        why = nul;
    }
    if (line_room < content && line_room < pos) {
        pos = line_room;
        why = too_long;
    }
    if (head_max && head_max - s->head_raw < content && head_max - s->head_raw < pos) {
        pos = head_max - s->head_raw;
        why = head_too_long;
    }
    if (why) {
        stream_fail(p, dir, why);
        return pos + 1;
    }
    if (buf_append(s, d, content) < 0) {
        stream_fail(p, dir, "out of memory");
        return content;
    }
    s->head_raw += content;
    if (nl == NULL)
        return n;
    s->head_raw++;

    l = s->buf + s->line_start;
    ln = s->len - s->line_start;
    if (ln > 0 && l[ln - 1] == '\r')
        ln--;
    if (ln > HTTP_MAX_LINE) {
        stream_fail(p, dir, too_long);
    } else if (head_max && s->head_raw > head_max) {
        stream_fail(p, dir, head_too_long);
    } else if (s->phase == PH_HEADERS) {
        header_line(p, dir, l, ln);
    } else if (s->phase == PH_TRAILERS) {
        trailer_line(p, dir, l, ln);
    } else {
        chunk_size_line(p, dir, l, ln);
    }
    return content + 1;
}

/* --- public ----------------------------------------------------------------- */

struct http_parser *http_parser_new(const struct http_callbacks *cb, void *ctx)
{
    struct http_parser *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    if (cb)
        p->cb = *cb;
    p->ctx = ctx;
    p->request_dir = -1;
    msg_reset(p, 0);
    msg_reset(p, 1);
    return p;
}

void http_parser_free(struct http_parser *p)
{
    if (p == NULL)
        return;
    for (int d = 0; d < 2; d++)
        free(p->s[d].buf);
    for (unsigned i = 0; i < p->count; i++)
        free(p->req[(p->first + i) % HTTP_MAX_PENDING]);
    free(p->spare);
    free(p);
}

void http_parser_feed(struct http_parser *p, int dir, const uint8_t *data, size_t len)
{
    struct http_stream *s;
    size_t off = 0;

    if (p == NULL || (dir != 0 && dir != 1))
        return;
    s = &p->s[dir];
    while (off < len && s->phase != PH_STOPPED) {
        const uint8_t *d = data + off;
        size_t n = len - off, used;

        switch (s->phase) {
        case PH_START:
            used = read_start_line(p, dir, d, n);
            break;
        case PH_HEADERS:
        case PH_CHUNK_SIZE:
        case PH_TRAILERS:
            used = read_line(p, dir, d, n);
            break;
        case PH_BODY_LEN:
            used = n < s->remaining ? n : (size_t)s->remaining;
            if (p->cb.body)
                p->cb.body(p->ctx, dir, d, used);
            s->remaining -= used;
            if (s->remaining == 0)
                msg_done(p, dir, s->truncated ? HTTP_END_TRUNCATED : HTTP_END_OK, "gap in body");
            break;
        case PH_BODY_EOF:
            used = n;
            if (p->cb.body)
                p->cb.body(p->ctx, dir, d, used);
            break;
        case PH_CHUNK_DATA:
            used = n < s->remaining ? n : (size_t)s->remaining;
            if (p->cb.body)
                p->cb.body(p->ctx, dir, d, used);
            s->remaining -= used;
            if (s->remaining == 0)
                s->phase = PH_CHUNK_CR;
            break;
        case PH_CHUNK_CR:
        case PH_CHUNK_LF:
            used = 1;
            if (d[0] == '\r' && s->phase == PH_CHUNK_CR)
                s->phase = PH_CHUNK_LF;
            else if (d[0] == '\n')
                s->phase = PH_CHUNK_SIZE;
            else
                stream_fail(p, dir, "missing crlf after chunk data");
            break;
        default:
            return;
        }
        off += used;
    }
}

void http_parser_gap(struct http_parser *p, int dir, uint64_t len)
{
    struct http_stream *s;

    if (p == NULL || (dir != 0 && dir != 1) || len == 0)
        return;
    s = &p->s[dir];
    switch (s->phase) {
    case PH_STOPPED:
        return;
    case PH_BODY_LEN:
        /* The length says where the next message starts: skip, keep going. */
        if (len < s->remaining) {
            s->remaining -= len;
            s->truncated = 1;
        } else if (len == s->remaining) {
            msg_done(p, dir, HTTP_END_TRUNCATED, "gap in body");
        } else {
            stream_stop(p, dir, HTTP_END_TRUNCATED, "gap in body", "gap in stream");
        }
        return;
    case PH_START:
    case PH_HEADERS:
        stream_stop(p, dir, HTTP_END_TRUNCATED, "gap in head", "gap in stream");
        return;
    default:
        stream_stop(p, dir, HTTP_END_TRUNCATED, "gap in body", "gap in stream");
        return;
    }
}

void http_parser_eof(struct http_parser *p, int dir)
{
    struct http_stream *s;

    if (p == NULL || (dir != 0 && dir != 1))
        return;
    s = &p->s[dir];
    switch (s->phase) {
    case PH_STOPPED:
        return;
    case PH_BODY_EOF:
        stream_stop(p, dir, HTTP_END_OK, NULL, NULL);
        return;
    case PH_START:
    case PH_HEADERS:
        stream_stop(p, dir, HTTP_END_TRUNCATED, "stream ended in head", NULL);
        return;
    default:
        stream_stop(p, dir, HTTP_END_TRUNCATED, "stream ended in body", NULL);
        return;
    }
}

int http_parser_active(const struct http_parser *p, int dir)
{
    if (p == NULL || (dir != 0 && dir != 1))
        return 0;
    return p->s[dir].phase != PH_STOPPED;
}

int http_parser_mid_message(const struct http_parser *p, int dir)
{
    if (p == NULL || (dir != 0 && dir != 1))
        return 0;
    const struct http_stream *s = &p->s[dir];
    if (s->phase == PH_STOPPED)
        return 0;
    return s->phase != PH_START || s->len > 0;
}

int http_parser_request_dir(const struct http_parser *p)
{
    return p ? p->request_dir : -1;
}

const char *http_parser_error(const struct http_parser *p, int dir)
{
    if (p == NULL || (dir != 0 && dir != 1))
        return NULL;
    return p->s[dir].error;
}
