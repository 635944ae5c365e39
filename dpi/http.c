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
 *   A byte that kills the last live recognizer on a stream never seen as
 *   HTTP drops it at once: "\x16\x03" or a binary blob is rejected on its
 *   first byte, not after a line that may never come.
 *
 * - Header lines, chunk-size lines and trailers are read whole into one
 *   bounded buffer per direction (memchr for the line end). Header values
 *   the caller cares about are compacted in place at the front of the same
 *   buffer, NUL-terminated, so the head callback gets plain C strings
 *   without a second copy; framing fields are parsed when complete (folds
 *   included) and dropped from the buffer.
 *
 * - Bodies are never copied: Content-Length, EOF-delimited and chunk data
 *   are handed to body() as pointers into the caller's buffer, one call per
 *   feed (per chunk for chunked), with no per-byte work.
 *
 * Leniency follows the receivers, checked against curl 7.88, wget 1.21 and
 * Python's http.client/urllib3 (tests/evasion/probe_http_clients.py). For
 * responses, the framing fields are read four times, as each of those
 * clients reads them (curl: the last Content-Length, strtoll-like, fails on
 * a line without colon or a NUL; wget: the first, strtol-like, blind after
 * a NUL; Python: the first field before the first line it cannot parse,
 * with int(), a bare CR splits lines; urllib3: every value, all equal).
 * When the readings differ, the body is framed by the one that hides the
 * least (chunked, else to the end of the stream) and anomaly() says why;
 * when only lengths differ and the values do not contradict each other
 * (a field Python lost, "68abc"), the body runs to the end of the stream and
 * the anomaly comes only if it is longer than the shortest reading (a body
 * that ends there is the same for every client). Chunk sizes get the same
 * treatment (the longest). Requests are read as strict servers read them:
 * any doubt about their framing is an anomaly. A first response that does
 * not start with "HTTP" is HTTP/0.9 (wget saves it whole) when the caller
 * said the flow was seen from its start.
 *
 * Nothing stops silently: when a stream known to be HTTP cannot be parsed
 * any further (bad start line, line or head over the limits, unreadable
 * chunk size, a gap outside a body of known length), the open message ends
 * and a synthetic raw message carries every remaining byte of the stream,
 * starting with the line that could not be read.
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
#define HTTP_BUF_KEEP   16384 /* a bigger line buffer is freed after its head */
#define HTTP_KEPT_MAX   4096  /* kept values (Host, User-Agent, ...) are cut here */
#define HTTP_BUF_MAX    (3 * (size_t)HTTP_MAX_LINE + 7 * HTTP_KEPT_MAX)
#define HTTP_LIST_MAX   256 /* joined Content-Encoding / transfer codings */
#define HTTP_CL_MAX     ((uint64_t)1 << 62)
#define HTTP_METHOD_MAX 31
#define OFF_NONE        SIZE_MAX

enum http_phase {
    PH_START = 0,  /* start line, or the empty lines allowed before it */
    PH_HEADERS,    /* header lines up to the empty line */
    PH_BODY_LEN,   /* Content-Length body */
    PH_BODY_EOF,   /* body up to the end of the stream (HTTP/0.9, raw too) */
    PH_CHUNK_SIZE, /* chunk-size [; ext] line */
    PH_CHUNK_DATA, /* chunk data */
    PH_CHUNK_CR,   /* CRLF after chunk data: the CR (or a bare LF) */
    PH_CHUNK_LF,   /* ... its LF */
    PH_CHUNK_SKIP, /* one byte to skip after a missing CRLF (as Python) */
    PH_TRAILERS,   /* trailer fields after the last chunk */
    PH_WAIT,       /* after CONNECT or Upgrade: not HTTP until the answer */
    PH_STOPPED,    /* not parsed any more: not HTTP, tunnel, EOF */
};

/* Request-line recognizer: METHOD SP request-target SP HTTP/D.D */
enum rq_state {
    RQ_DEAD = 0,
    RQ_METHOD,
    RQ_TARGET0,
    RQ_TARGET,
    RQ_VERSION,
    RQ_MAJOR,
    RQ_DOT,
    RQ_MINOR,
    RQ_EOL,
    RQ_CR
};

/* Status-line recognizer, as lenient as wget's: "HTTP" ["/" D* ["."] D*]
 * WS* DDD [anything]. */
enum rs_state { RS_DEAD = 0, RS_HTTP, RS_AFTER, RS_MAJOR, RS_MINOR, RS_WS, RS_STATUS, RS_REASON };

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
    F_CONTENT_RANGE,
    F_WS_EXTENSIONS,
    F_HTTP2_SETTINGS,
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
    [F_CONTENT_RANGE] = {"content-range", 13},
    [F_WS_EXTENSIONS] = {"sec-websocket-extensions", 24},
    [F_HTTP2_SETTINGS] = {"http2-settings", 14},
};

/* Fields whose first value is handed to the caller as a string. */
static int kept_string(int kind)
{
    return kind == F_HOST || kind == F_USER_AGENT || kind == F_CONTENT_TYPE ||
           kind == F_CONTENT_RANGE || kind == F_WS_EXTENSIONS || kind == F_HTTP2_SETTINGS;
}

/* How one client frames a response body. */
enum reading { RD_FAIL = 0, RD_LEN, RD_EOF, RD_CHUNKED };

/* A number read strtol-like (curl, wget): sign, digits, junk after. */
enum prefix { PK_NONE = 0, PK_NUM, PK_NEG, PK_OVF };

struct http_stream {
    enum http_phase phase;
    uint8_t classified;   /* a start line of this stream was valid: it is HTTP */
    uint8_t in_msg;       /* a message has started: an end() is owed */
    uint8_t truncated;    /* a gap skipped part of the current body */
    uint8_t maybe_tunnel; /* last request was CONNECT or asked for an Upgrade */
    uint8_t m09;          /* HTTP/0.9 body: progress of " http/" on its first line */
    const char *error;
    /* An EOF-delimited body that some client reads as soft_left more bytes
     * only: past them, soft_why is an anomaly. */
    const char *soft_why;
    uint64_t soft_left;

    uint64_t pos;      /* stream offset of the next byte to read */
    uint64_t line_pos; /* of the current start line */
    uint64_t line_end; /* just past the line being handled */
    uint64_t wait_pos; /* where PH_WAIT began */

    /* start line */
    uint8_t rq, rs;       /* recognizer states */
    uint8_t ssh;          /* the line so far matches "SSH-" */
    uint8_t rq_vi, rs_vi; /* bytes of "HTTP/" and "HTTP" matched */
    uint8_t rq_major, rq_minor, rs_major, rs_minor, major, minor;
    uint8_t sdig;       /* status digits read */
    uint8_t is_request; /* the current message is a request */
    uint8_t mlen;       /* method length */
    size_t tlen;        /* request-target length */
    int status;

    /* The current line is read into buf[line_start..len); in a head,
     * buf[0..line_start) holds the kept strings. */
    uint8_t *buf;
    size_t cap, len, line_start;
    size_t head_raw;     /* raw bytes of the head (or of the trailers) so far */
    uint8_t has_field;   /* a field line was seen: a fold may continue it */
    uint8_t field_kind;  /* of the last field, if its value is kept */
    uint8_t field_py;    /* ... Python sees it */
    uint8_t field_wget;  /* ... wget sees it */
    uint8_t field_trail; /* ... its value ended in blanks (Python keeps them) */
    size_t field_off, field_vlen;
    size_t off[F_COUNT];

    /* What each client has made of the head so far (responses). */
    uint8_t curl_fail; /* curl refuses the whole response */
    uint8_t wget_lost; /* wget sees no further field (a NUL cut its head) */
    uint8_t py_lost;   /* Python sees no further field */
    uint8_t cl_count;
    const char *cl_conflict;         /* the values contradict each other */
    uint8_t curl_cl, wget_cl, py_cl; /* enum reading, RD_FAIL: not seen yet */
    uint64_t curl_len, wget_len, py_len, first_prefix;
    uint8_t u3_seen, u3_invalid, u3_multi;
    uint64_t u3_len;
    int u3_neg;
    /* ... and what strict servers make of it (requests) */
    const char *req_cl_bad;
    uint64_t req_cl;
    /* Transfer-Encoding */
    uint8_t te_any, te_last_chunked, te_curl, te_wget_seen, te_wget, te_py_seen, te_py, te_u3;
    uint8_t upgrade; /* enum http_tunnel asked for */
    char ce[HTTP_LIST_MAX], te[HTTP_LIST_MAX];
    size_t ce_len, te_len;

    /* body */
    enum http_framing framing;
    uint64_t remaining;
};

struct http_parser {
    struct http_callbacks cb;
    void *ctx;
    int request_dir;
    struct http_stream s[2];
    int tunnel;
    uint64_t tunnel_start[2];
    int from_start; /* streams seen from their first byte: HTTP/0.9 possible */

    /* Requests waiting for a response, oldest first. skipped[i] counts the
     * requests that came before req[i] but found the ring full; skipped_tail
     * counts those after the newest. */
    struct http_request_info *req[HTTP_MAX_PENDING];
    uint64_t skipped[HTTP_MAX_PENDING];
    unsigned first, count;
    uint64_t skipped_tail;
    struct http_request_info *spare; /* reused by the next request */
};

static const uint8_t lf = '\n';

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

static int is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* C isspace(), which strtol() and Python's strip() skip. */
static int is_space(uint8_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
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

static void trim_space(const uint8_t **p, size_t *n)
{
    while (*n > 0 && is_space((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*p)[*n - 1]))
        (*n)--;
}

static int token_is(const uint8_t *p, size_t n, const char *word)
{
    return n == strlen(word) && strncasecmp((const char *)p, word, n) == 0;
}

static const char *kept(const struct http_stream *s, enum http_field f)
{
    return s->off[f] == OFF_NONE ? NULL : (const char *)s->buf + s->off[f];
}

/* --- numbers as the clients read them -------------------------------------- */

/* strtoll()/strtol() in base 10 after blanks, as curl and wget read
 * Content-Length: "+68" and "68, 1000" are 68, "0x44" is 0. */
static enum prefix prefix_number(const uint8_t *v, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t x = 0;
    int digits = 0, over = 0;

    while (i < n && is_space(v[i]))
        i++;
    if (i < n && v[i] == '-')
        return PK_NEG;
    if (i < n && v[i] == '+')
        i++;
    for (; i < n && is_digit(v[i]); i++, digits++) {
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (HTTP_CL_MAX - d) / 10)
            over = 1;
        else
            x = x * 10 + d;
    }
    if (digits == 0)
        return PK_NONE;
    if (over)
        return PK_OVF;
    *out = x;
    return PK_NUM;
}

/* Python's int(s, base) for base 10 or 16: surrounding whitespace, a sign,
 * "0x" in base 16, single underscores between digits. Returns 1 (*out set),
 * 2 when over HTTP_CL_MAX (*out is HTTP_CL_MAX), -1 for a negative number,
 * 0 when int() raises. */
static int py_int(const uint8_t *v, size_t n, int base, uint64_t *out)
{
    uint64_t x = 0;
    int neg = 0, digits = 0, under = 0, over = 0;
    size_t i = 0;

    trim_space(&v, &n);
    if (i < n && (v[i] == '+' || v[i] == '-'))
        neg = v[i++] == '-';
    if (base == 16 && n - i >= 2 && v[i] == '0' && (v[i + 1] == 'x' || v[i + 1] == 'X')) {
        i += 2;
        under = 1; /* "0x_44" is allowed */
    }
    for (; i < n; i++) {
        int d = base == 16 ? hex_value(v[i]) : is_digit(v[i]) ? v[i] - '0' : -1;
        if (v[i] == '_' && (digits > 0 || under) && !(i > 0 && v[i - 1] == '_')) {
            under = 0;
            continue;
        }
        if (d < 0)
            return 0;
        digits++;
        x = x > HTTP_CL_MAX / (unsigned)base ? HTTP_CL_MAX + 1 : x * (unsigned)base + (unsigned)d;
        if (x > HTTP_CL_MAX) {
            over = 1;
            x = HTTP_CL_MAX;
        }
    }
    if (digits == 0 || v[n - 1] == '_')
        return 0;
    *out = x;
    return neg && x > 0 ? -1 : over ? 2 : 1;
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
    r->upgrade = s->upgrade;

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
    s->rs = p->request_dir < 0 || p->request_dir != dir ? RS_HTTP : RS_DEAD;
    s->ssh = 1;
    s->rq_vi = 0;
    s->rs_vi = 0;
    s->rq_major = s->rq_minor = 0;
    s->rs_major = 1;
    s->rs_minor = 0;
    s->mlen = 0;
    s->tlen = 0;
    s->sdig = 0;
    s->status = 0;
}

/* Forgets what the last head said. */
static void head_reset(struct http_stream *s)
{
    s->head_raw = 0;
    s->has_field = 0;
    s->field_kind = F_OTHER;
    for (int i = 0; i < F_COUNT; i++)
        s->off[i] = OFF_NONE;
    s->curl_fail = s->wget_lost = s->py_lost = 0;
    s->cl_count = 0;
    s->cl_conflict = NULL;
    s->curl_cl = s->wget_cl = s->py_cl = RD_FAIL;
    s->u3_seen = s->u3_invalid = s->u3_multi = 0;
    s->u3_neg = 0;
    s->req_cl_bad = NULL;
    s->te_any = s->te_last_chunked = s->te_curl = 0;
    s->te_wget_seen = s->te_wget = s->te_py_seen = s->te_py = s->te_u3 = 0;
    s->upgrade = HTTP_TUNNEL_NONE;
    s->ce_len = s->te_len = 0;
    s->ce[0] = s->te[0] = '\0';
}

/* Ready for the next message of dir. */
static void msg_reset(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];

    s->phase = PH_START;
    s->in_msg = 0;
    s->truncated = 0;
    s->m09 = 0;
    s->soft_why = NULL;
    s->len = 0;
    s->line_start = 0;
    head_reset(s);
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

static void buf_free(struct http_stream *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = s->len = s->line_start = 0;
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
    buf_free(s);
}

static void anomaly(struct http_parser *p, int dir, const char *why)
{
    if (p->cb.anomaly)
        p->cb.anomaly(p->ctx, dir, why);
}

static void deliver(struct http_parser *p, int dir, const uint8_t *d, size_t n)
{
    if (n > 0 && p->cb.body)
        p->cb.body(p->ctx, dir, d, n);
}

/* Body bytes to the end of the stream. On an HTTP/0.9 response, its first
 * line is watched for a status line that curl or Python would have read:
 * then the clients disagree on what the body is. */
static void eof_body(struct http_parser *p, int dir, const uint8_t *d, size_t n)
{
    struct http_stream *s = &p->s[dir];

    if (s->soft_why && n > s->soft_left) {
        anomaly(p, dir, s->soft_why);
        s->soft_why = NULL;
    } else if (s->soft_why) {
        s->soft_left -= n;
    }

    for (size_t i = 0; i < n && s->m09; i++) {
        if (s->m09 == 1 && is_ows(d[i]))
            continue;
        if ((d[i] | 0x20) != (uint8_t) "http/"[s->m09 - 1]) {
            s->m09 = 0;
        } else if (++s->m09 == 6) {
            s->m09 = 0;
            anomaly(p, dir, "status line read as HTTP/0.9 by wget");
        }
    }
    deliver(p, dir, d, n);
}

/* dir cannot be parsed any further: end its message, then hand the rest of
 * the stream (a, then b, then every later byte) out as the EOF-delimited
 * body of a synthetic message. report: an anomaly, or a mere loss of sync
 * (a gap), which the end of the message already tells. */
static void stream_raw(struct http_parser *p, int dir, const char *why, const char *error,
                       int report, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    struct http_stream *s = &p->s[dir];
    struct http_head h;

    if (s->phase == PH_STOPPED)
        return;
    if (report)
        anomaly(p, dir, error);
    msg_end(p, dir, report ? HTTP_END_ERROR : HTTP_END_TRUNCATED, why);
    s->error = error;
    memset(&h, 0, sizeof(h));
    h.is_request = p->request_dir == dir;
    h.raw = 1;
    h.request = h.is_request ? NULL : pending_peek(p);
    h.content_length = -1;
    h.framing = HTTP_BODY_EOF;
    if (p->cb.head)
        p->cb.head(p->ctx, dir, &h);
    s->in_msg = 1;
    s->truncated = 0;
    s->m09 = 0;
    s->soft_why = NULL;
    s->phase = PH_BODY_EOF;
    s->framing = HTTP_BODY_EOF;
    deliver(p, dir, a, an);
    deliver(p, dir, b, bn);
    buf_free(s);
}

/* The line in buf[line_start..len) and its LF could not be read. */
static void line_raw(struct http_parser *p, int dir, const char *why)
{
    struct http_stream *s = &p->s[dir];

    stream_raw(p, dir, why, why, 1, s->buf + s->line_start, s->len - s->line_start, &lf, 1);
}

/* Where the other stream's tunnel bytes begin. */
static uint64_t tunnel_start_of(const struct http_stream *s)
{
    if (s->phase == PH_WAIT)
        return s->wait_pos;
    return s->phase == PH_START && s->len > 0 ? s->line_pos : s->pos;
}

/* From start in dir (and the matching point of the other stream), both
 * streams carry kind: stop parsing them. */
static void flow_tunnel(struct http_parser *p, int kind, int dir, uint64_t start)
{
    p->tunnel = kind;
    p->tunnel_start[dir] = start;
    /* A server that spoke HTTP/2 before the client's preface was known
     * never sent HTTP/1: its whole stream is the tunnel's. */
    p->tunnel_start[!dir] =
        kind == HTTP_TUNNEL_H2C_PRIOR && !p->s[!dir].classified ? 0 : tunnel_start_of(&p->s[!dir]);
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
 * HTTP_BUF_MAX: the request line and one field value of at most
 * HTTP_MAX_LINE each, the kept values cut to HTTP_KEPT_MAX, one line. */
static int buf_reserve(struct http_stream *s, size_t n)
{
    size_t cap = s->cap ? s->cap : HTTP_BUF_MIN;
    uint8_t *nb;

    if (s->len + n <= s->cap)
        return 0;
    if (s->len + n > HTTP_BUF_MAX)
        return -1;
    while (cap < s->len + n)
        cap *= 2;
    if (cap > HTTP_BUF_MAX)
        cap = HTTP_BUF_MAX;
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
        if (c != (uint8_t) "HTTP/"[s->rq_vi])
            s->rq = RQ_DEAD;
        else if (++s->rq_vi == 5)
            s->rq = RQ_MAJOR;
        break;
    case RQ_MAJOR:
    case RQ_MINOR:
        if (!is_digit(c)) {
            s->rq = RQ_DEAD;
        } else if (s->rq == RQ_MAJOR) {
            s->rq_major = (uint8_t)(c - '0');
            s->rq = RQ_DOT;
        } else {
            s->rq_minor = (uint8_t)(c - '0');
            s->rq = RQ_EOL;
        }
        break;
    case RQ_DOT:
        s->rq = c == '.' ? RQ_MINOR : RQ_DEAD;
        break;
    case RQ_EOL:
    case RQ_CR:
        /* CRs are allowed right before the LF only ("\r\r\n" too). */
        s->rq = c == '\r' ? RQ_CR : RQ_DEAD;
        break;
    default:
        s->rq = RQ_DEAD;
        break;
    }
}

static void status_digit(struct http_stream *s, uint8_t c)
{
    s->status = s->status * 10 + (c - '0');
    s->rs = ++s->sdig == 3 ? RS_REASON : RS_STATUS;
}

static uint8_t version_digit(uint8_t v, uint8_t c)
{
    unsigned x = v * 10u + (unsigned)(c - '0');
    return (uint8_t)(x > 99 ? 99 : x);
}

/* Advances the status-line recognizer over one byte (the LF excluded). Any
 * version ("HTTP/1.2", "HTTP/2.0", wget's "HTTP 200"), tabs or several
 * spaces, no space after the code ("200OK"): one client or another reads
 * them all. */
static void status_step(struct http_stream *s, uint8_t c)
{
    switch (s->rs) {
    case RS_HTTP:
        if (c != (uint8_t) "HTTP"[s->rs_vi])
            s->rs = RS_DEAD;
        else if (++s->rs_vi == 4)
            s->rs = RS_AFTER;
        break;
    case RS_AFTER:
        if (c == '/') {
            s->rs_major = s->rs_minor = 0;
            s->rs = RS_MAJOR;
        } else if (is_ows(c)) {
            s->rs = RS_WS;
        } else if (is_digit(c)) {
            status_digit(s, c);
        } else {
            s->rs = RS_DEAD;
        }
        break;
    case RS_MAJOR:
    case RS_MINOR:
        if (is_digit(c) && s->rs == RS_MAJOR)
            s->rs_major = version_digit(s->rs_major, c);
        else if (is_digit(c))
            s->rs_minor = version_digit(s->rs_minor, c);
        else if (c == '.' && s->rs == RS_MAJOR)
            s->rs = RS_MINOR;
        else
            s->rs = is_ows(c) ? RS_WS : RS_DEAD;
        break;
    case RS_WS:
        if (is_digit(c))
            status_digit(s, c);
        else if (!is_ows(c))
            s->rs = RS_DEAD;
        break;
    case RS_STATUS:
        if (is_digit(c))
            status_digit(s, c);
        else
            s->rs = RS_DEAD;
        break;
    case RS_REASON:
        break; /* anything, bare CR and NUL included, up to the LF */
    default:
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

/* After CONNECT or an Upgrade request, the client may speak the new
 * protocol before the answer is read: hold dir until it comes. */
static void wait_begin(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];

    s->in_msg = 0;
    s->wait_pos = s->line_pos;
    s->phase = PH_WAIT;
    buf_free(s);
}

/* The start line of dir cannot be what dir may carry; tail (tn bytes) is
 * its part not yet in buf. */
static void start_line_refused(struct http_parser *p, int dir, const char *why, const uint8_t *tail,
                               size_t tn)
{
    struct http_stream *s = &p->s[dir];

    if (!s->classified && p->request_dir == !dir && s->rs_vi == 4) {
        /* "HTTP..." in answer to requests: HTTP that no client can read. */
        s->classified = 1;
    } else if (!s->classified) {
        /* Nothing was ever HTTP here: no message to end, nothing to say. */
        stream_stop(p, dir, HTTP_END_ERROR, NULL, why ? why : "not HTTP");
        return;
    }
    if (s->maybe_tunnel && why == NULL) {
        wait_begin(p, dir);
        return;
    }
    if (why == NULL)
        why = p->request_dir == dir ? "invalid request line" : "invalid status line";
    stream_raw(p, dir, why, why, 1, s->buf, s->len, tail, tn);
}

/* "PRI * HTTP/2.0": the HTTP/2 connection preface (RFC 9113 3.4). */
static void h2_preface(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];

    if (!s->classified) {
        s->classified = 1;
        if (p->request_dir < 0)
            role_decided(p, dir);
        flow_tunnel(p, HTTP_TUNNEL_H2C_PRIOR, dir, s->line_pos);
    } else if (s->maybe_tunnel) {
        wait_begin(p, dir); /* h2c Upgrade: the preface follows the 101 */
    } else {
        stream_raw(p, dir, "HTTP/2 preface inside HTTP/1", "HTTP/2 preface inside HTTP/1", 1,
                   s->buf, s->len, &lf, 1);
    }
}

/* A whole start line is in buf[0..len), without its LF. */
static void start_line_done(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];
    size_t n = s->len;
    int request = s->rq == RQ_EOL || s->rq == RQ_CR;
    int response = s->rs == RS_REASON && s->status >= 100;

    if (request && s->rq_major != 1) {
        if (s->rq_major == 2 && s->mlen == 3 && memcmp(s->buf, "PRI", 3) == 0 && s->tlen == 1 &&
            s->buf[4] == '*' && s->rq_minor == 0) {
            h2_preface(p, dir);
            return;
        }
        request = 0;
    }
    if (!request && !response) {
        start_line_refused(p, dir, NULL, &lf, 1);
        return;
    }
    while (n > 0 && s->buf[n - 1] == '\r')
        n--;
    if (n > HTTP_MAX_LINE) {
        start_line_refused(p, dir, start_line_too_long(p, dir), &lf, 1);
        return;
    }
    s->is_request = (uint8_t)request;
    s->major = request ? s->rq_major : s->rs_major;
    s->minor = request ? s->rq_minor : s->rs_minor;
    s->head_raw = s->len + 1;
    if (request) {
        /* Keep "METHOD\0target\0" at the front of buf for the head. */
        s->buf[s->mlen] = '\0';
        s->buf[s->mlen + 1 + s->tlen] = '\0';
        s->len = s->mlen + 1 + s->tlen + 1;
    } else {
        /* wget reads the head as a C string: a NUL ends it. */
        if (memchr(s->buf, '\0', n))
            s->wget_lost = 1;
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

/* An HTTP/0.9 response: no head, the stream is the body (wget). */
static void http09_begin(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];
    struct http_request_info *taken = pending_take(p);
    struct http_head h;

    memset(&h, 0, sizeof(h));
    h.version_major = 0;
    h.version_minor = 9;
    h.http09 = 1;
    h.request = taken;
    h.content_length = -1;
    h.framing = HTTP_BODY_EOF;
    s->classified = 1;
    s->in_msg = 1;
    if (p->cb.head)
        p->cb.head(p->ctx, dir, &h);
    pending_release(p, taken);
    s->phase = PH_BODY_EOF;
    s->framing = HTTP_BODY_EOF;
    s->m09 = 1;
}

static size_t read_start_line(struct http_parser *p, int dir, const uint8_t *d, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const uint8_t *nl;
    size_t i = 0, end;

    /* wget's test for HTTP/0.9: the first response does not begin with
     * "HTTP". Everything from its first byte is the body. */
    if (p->from_start && !s->classified && p->request_dir == !dir) {
        for (size_t j = 0, k = s->len; j < n && k < 4; j++, k++) {
            if (d[j] != (uint8_t) "HTTP"[k]) {
                http09_begin(p, dir);
                eof_body(p, dir, s->buf, s->len);
                eof_body(p, dir, d, n);
                buf_free(s);
                return n;
            }
        }
    }
    /* Empty lines before a message are allowed (RFC 7230 3.5). */
    while (i < n && s->len == 0 && (d[i] == '\r' || d[i] == '\n'))
        i++;
    if (i == n)
        return n;
    if (s->len == 0)
        s->line_pos = s->pos + i;
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
            start_line_refused(p, dir, NULL, d + i, j + 1 - i);
            return j + 1;
        }
        /* One byte of slack for the CR before the LF. */
        if (s->len + (j - i) + 1 > HTTP_MAX_LINE + 1) {
            start_line_refused(p, dir, start_line_too_long(p, dir), d + i, j + 1 - i);
            return j + 1;
        }
    }
    if (buf_append(s, d + i, end - i) < 0) {
        start_line_refused(p, dir, "out of memory", d + i, end - i);
        return end;
    }
    if (nl == NULL)
        return n;
    s->line_end = s->pos + end + 1;
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

/* Python's email parser takes "name:" with name in 0x21..0x7e (no colon);
 * any other line ends the fields it sees. *name_len is set when it fits. */
static int py_field(const uint8_t *l, size_t n, size_t *name_len)
{
    for (size_t i = 0; i < n; i++) {
        if (l[i] == ':') {
            *name_len = i;
            return 1;
        }
        if (l[i] < 0x21 || l[i] > 0x7e)
            return 0;
    }
    return 0;
}

static void list_append(char *list, size_t *len, const uint8_t *v, size_t n, int *overflow)
{
    size_t sep = *len > 0 ? 2 : 0;

    n = strnlen((const char *)v, n); /* the callers get C strings */
    if (n == 0)
        return;
    if (*len + sep + n + 1 > HTTP_LIST_MAX) {
        *overflow = 1;
        return;
    }
    memcpy(list + *len, ", ", sep);
    memcpy(list + *len + sep, v, n);
    *len += sep + n;
    list[*len] = '\0';
}

/* A Content-Length value as Python and urllib3 read it (first / every
 * value of the fields Python sees; v stops at a bare CR). */
static void cl_python(struct http_stream *s, const uint8_t *v, size_t n)
{
    uint64_t x;
    int r;

    if (s->py_cl == RD_FAIL) {
        r = py_int(v, n, 10, &x);
        s->py_cl = r == 1 ? RD_LEN : RD_EOF; /* too large: reads to the end */
        s->py_len = x;
    }
    /* urllib3: int() of every comma-separated value, all equal. */
    for (const uint8_t *e = v, *a = v; a <= v + n; a = e + 1) {
        e = memchr(a, ',', (size_t)(v + n - a));
        if (e == NULL)
            e = v + n;
        r = py_int(a, (size_t)(e - a), 10, &x);
        if (r == 0 || r == 2)
            s->u3_invalid = 1; /* too large: to the end, like an invalid one */
        else if (s->u3_seen && (s->u3_len != x || s->u3_neg != (r < 0)))
            s->u3_multi = 1;
        s->u3_seen = 1;
        s->u3_len = x;
        s->u3_neg = r < 0;
    }
}

/* Content-Length as a strict server reads it: digits, or a list of equal
 * values (what a proxy makes of repeated headers, RFC 7230 3.3.2). */
static void cl_server(struct http_stream *s, const uint8_t *v, size_t n, int first)
{
    for (const uint8_t *e = v, *a = v; a <= v + n && !s->req_cl_bad; a = e + 1) {
        const uint8_t *t;
        size_t tn;
        uint64_t x = 0;

        e = memchr(a, ',', (size_t)(v + n - a));
        if (e == NULL)
            e = v + n;
        t = a;
        tn = (size_t)(e - a);
        trim_ows(&t, &tn);
        for (size_t i = 0; i < tn && !s->req_cl_bad; i++) {
            if (!is_digit(t[i]))
                s->req_cl_bad = "invalid Content-Length";
            else if (x > (HTTP_CL_MAX - (unsigned)(t[i] - '0')) / 10)
                s->req_cl_bad = "Content-Length too large";
            else
                x = x * 10 + (unsigned)(t[i] - '0');
        }
        if (tn == 0 && !s->req_cl_bad)
            s->req_cl_bad = "invalid Content-Length";
        if (s->req_cl_bad)
            break;
        if (!first && x != s->req_cl)
            s->req_cl_bad = s->cl_conflict = a == v ? "two different Content-Length values"
                                                    : "Content-Length list with different values";
        s->req_cl = x;
        first = 0;
    }
}

/* A complete Content-Length field, as each client reads it. */
static void cl_field(struct http_stream *s, const uint8_t *v, size_t n)
{
    const uint8_t *cr = memchr(v, '\r', n);
    enum prefix k;
    uint64_t x = 0;

    k = prefix_number(v, n, &x);
    if (s->cl_count == 0)
        s->first_prefix = k == PK_NUM ? x : UINT64_MAX;
    cl_server(s, v, n, s->cl_count == 0);
    if (s->cl_count < 255)
        s->cl_count++;
    /* curl: every value must be a number; the last one counts. */
    if (k == PK_NEG || k == PK_NONE)
        s->curl_fail = 1;
    s->curl_cl = k == PK_OVF ? RD_EOF : RD_LEN;
    s->curl_len = x;
    /* wget: the first it sees. */
    if (s->field_wget && s->wget_cl == RD_FAIL) {
        s->wget_cl = k == PK_NEG || k == PK_OVF ? RD_EOF : RD_LEN;
        s->wget_len = k == PK_NUM ? x : 0;
    }
    if (s->field_py)
        cl_python(s, v, cr ? (size_t)(cr - v) : n);
}

/* Transfer-Encoding as Python reads it: urllib3 looks for "chunked" among
 * the comma-separated values, http.client wants the first field to be
 * "chunked" (leading blanks aside, trailing ones not: trail). */
static void te_python(struct http_stream *s, const uint8_t *v, size_t n, int trail)
{
    for (const uint8_t *e = v, *a = v; a <= v + n; a = e + 1) {
        const uint8_t *t = a;
        size_t tn;

        e = memchr(a, ',', (size_t)(v + n - a));
        if (e == NULL)
            e = v + n;
        tn = (size_t)(e - a);
        trim_space(&t, &tn);
        if (token_is(t, tn, "chunked"))
            s->te_u3 = 1;
    }
    if (!s->te_py_seen) {
        while (n > 0 && is_ows(v[0])) {
            v++;
            n--;
        }
        s->te_py_seen = 1;
        s->te_py = !trail && token_is(v, n, "chunked");
    }
}

/* The transfer codings curl decodes; it refuses the others, the other
 * clients decode none. */
static int coding_known(const uint8_t *t, size_t n)
{
    static const char *const known[] = {"gzip", "x-gzip", "deflate", "br", "zstd"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (token_is(t, n, known[i]))
            return 1;
    return 0;
}

/* A complete Transfer-Encoding field: only chunked frames; other codings
 * (but identity) are for the body layer to decode, in order. */
static void te_field(struct http_parser *p, int dir, const uint8_t *v, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const uint8_t *cr = memchr(v, '\r', n), *w = v, *pv = v;
    size_t wn = n, pn = cr ? (size_t)(cr - v) : n;
    int overflow = 0, any_chunked = 0;

    for (const uint8_t *e = v, *a = v; a <= v + n; a = e + 1) {
        const uint8_t *t = a, *semi;
        size_t tn;

        e = memchr(a, ',', (size_t)(v + n - a));
        if (e == NULL)
            e = v + n;
        tn = (size_t)(e - a);
        if ((semi = memchr(t, ';', tn)) != NULL) /* transfer-parameters */
            tn = (size_t)(semi - t);
        trim_space(&t, &tn);
        if (tn == 0 || token_is(t, tn, "identity"))
            continue;
        s->te_any = 1;
        s->te_last_chunked = token_is(t, tn, "chunked");
        if (s->te_last_chunked)
            any_chunked = 1;
        else if (coding_known(t, tn))
            list_append(s->te, &s->te_len, t, tn, &overflow);
    }
    if (overflow)
        anomaly(p, dir, "Transfer-Encoding too long");
    s->te_curl |= (uint8_t)any_chunked;
    if (s->field_wget && !s->te_wget_seen) {
        trim_space(&w, &wn);
        s->te_wget_seen = 1;
        s->te_wget = token_is(w, wn, "chunked");
    }
    if (s->field_py)
        te_python(s, pv, pn, s->field_trail && pn == n);
}

static int upgrade_kind(const uint8_t *v, size_t n)
{
    int kind = HTTP_TUNNEL_NONE;

    for (const uint8_t *e = v, *a = v; a <= v + n; a = e + 1) {
        const uint8_t *t = a;
        size_t tn;

        e = memchr(a, ',', (size_t)(v + n - a));
        if (e == NULL)
            e = v + n;
        tn = (size_t)(e - a);
        trim_ows(&t, &tn);
        if (token_is(t, tn, "websocket"))
            return HTTP_TUNNEL_WEBSOCKET;
        if (token_is(t, tn, "h2c"))
            kind = HTTP_TUNNEL_H2C;
        else if (tn > 0 && kind == HTTP_TUNNEL_NONE)
            kind = HTTP_TUNNEL_OTHER;
    }
    return kind;
}

/* The last kept field is complete (no fold can follow): act on it. Values
 * needed only here are dropped, and the current line moves down. */
static void field_done(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];
    const uint8_t *v = s->buf + s->field_off;
    size_t n = s->field_vlen, shift;
    int overflow = 0;

    switch (s->field_kind) {
    case F_CONTENT_LENGTH:
        cl_field(s, v, n);
        break;
    case F_TRANSFER_ENCODING:
        te_field(p, dir, v, n);
        break;
    case F_CONTENT_ENCODING:
        list_append(s->ce, &s->ce_len, v, n, &overflow);
        if (overflow)
            anomaly(p, dir, "Content-Encoding too long");
        break;
    case F_UPGRADE:
        s->upgrade = (uint8_t)upgrade_kind(v, n);
        break;
    default:
        s->field_kind = F_OTHER;
        return;
    }
    s->field_kind = F_OTHER;
    shift = s->line_start - s->field_off;
    memmove(s->buf + s->field_off, s->buf + s->line_start, s->len - s->line_start);
    s->len -= shift;
    s->line_start -= shift;
}

/* obs-fold: the line continues the previous field's value, joined by one
 * space (RFC 7230 3.2.4). Only kept values need the bytes. */
static void field_fold(struct http_parser *p, int dir, const uint8_t *l, size_t n)
{
    struct http_stream *s = &p->s[dir];
    size_t room = kept_string(s->field_kind) ? HTTP_KEPT_MAX : HTTP_MAX_LINE;

    trim_ows(&l, &n);
    if (s->field_kind != F_OTHER && n > 0 && s->field_vlen < room) {
        if (s->field_vlen + 1 + n > room)
            n = room - s->field_vlen - 1;
        /* buf[line_start - 1] is the kept value's NUL; the line follows it. */
        uint8_t *at = s->buf + s->line_start - 1;
        *at++ = ' ';
        memmove(at, l, n);
        at[n] = '\0';
        s->field_vlen += 1 + n;
        s->len = s->line_start + n + 1;
    } else {
        s->len = s->line_start;
    }
    s->line_start = s->len;
}

/* Python splits lines at a bare CR too: the pieces after one are fields
 * only Python sees (or the end of its fields). */
static void py_pieces(struct http_stream *s, const uint8_t *l, size_t n)
{
    const uint8_t *cr = memchr(l, '\r', n);

    while (cr != NULL && !s->py_lost) {
        const uint8_t *a = cr + 1;
        size_t an = (size_t)(l + n - a), name_len;

        cr = memchr(a, '\r', an);
        if (cr)
            an = (size_t)(cr - a);
        if (an > 0 && is_ows(a[0]))
            continue; /* a continuation of Python's last field */
        if (an == 0 || !py_field(a, an, &name_len)) {
            s->py_lost = 1;
            break;
        }
        enum http_field kind = field_lookup(a, name_len);
        if (kind == F_CONTENT_LENGTH)
            cl_python(s, a + name_len + 1, an - name_len - 1);
        else if (kind == F_TRANSFER_ENCODING)
            te_python(s, a + name_len + 1, an - name_len - 1, 0);
    }
}

static void head_complete(struct http_parser *p, int dir);

/* One line of the head, without its line end, at buf + line_start. Lines
 * no client can use are skipped, as wget and Python skip them. */
static void header_line(struct http_parser *p, int dir, uint8_t *l, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const uint8_t *colon, *v;
    enum http_field kind = F_OTHER;
    size_t name_len = 0, py_name, vn;
    int keep;

    if (n > 0 && is_ows(l[0])) {
        if (s->has_field) {
            field_fold(p, dir, l, n);
            return;
        }
        s->curl_fail = 1; /* curl refuses a fold before the first field */
        s->len = s->line_start;
        return;
    }
    field_done(p, dir);
    l = s->buf + s->line_start;
    if (n == 0) {
        head_complete(p, dir);
        return;
    }
    s->has_field = 1;
    s->field_py = !s->py_lost && py_field(l, n, &py_name);
    s->field_wget = !s->wget_lost;
    if (!s->field_py)
        s->py_lost = 1;
    if (memchr(l, '\0', n)) {
        s->wget_lost = 1; /* wget's head is a C string */
        s->curl_fail = 1;
    }
    colon = memchr(l, ':', n);
    if (colon == NULL)
        s->curl_fail = 1;
    else
        kind = field_lookup(l, name_len = (size_t)(colon - l));
    if (s->field_py)
        py_pieces(s, l, n);
    if (colon && kind == F_OTHER && s->is_request && name_len > 0 && is_ows(l[name_len - 1])) {
        /* Servers differ on "Transfer-Encoding : chunked": how requests
         * are smuggled past a proxy (RFC 7230 3.2.4). */
        const uint8_t *t = l;
        size_t tn = name_len;
        trim_ows(&t, &tn);
        enum http_field k = field_lookup(t, tn);
        if (k == F_CONTENT_LENGTH || k == F_TRANSFER_ENCODING) {
            line_raw(p, dir, "whitespace before colon in a framing header");
            return;
        }
    }
    /* Keep the first of the single-valued fields callers see, and every
     * field acted on until it is complete. */
    keep = kind == F_CONTENT_LENGTH || kind == F_TRANSFER_ENCODING || kind == F_CONTENT_ENCODING ||
           kind == F_UPGRADE || (kind != F_OTHER && s->off[kind] == OFF_NONE);
    if (!keep) {
        s->field_kind = F_OTHER;
        s->len = s->line_start;
        return;
    }
    v = colon + 1;
    vn = n - name_len - 1;
    s->field_trail = vn > 0 && is_ows(v[vn - 1]);
    trim_ows(&v, &vn);
    if (kept_string(kind)) {
        if (vn > HTTP_KEPT_MAX - 1)
            vn = HTTP_KEPT_MAX - 1;
        s->off[kind] = s->line_start;
    }
    memmove(s->buf + s->line_start, v, vn);
    s->buf[s->line_start + vn] = '\0';
    s->field_kind = (uint8_t)kind;
    s->field_off = s->line_start;
    s->field_vlen = vn;
    s->len = s->line_start + vn + 1;
    s->line_start = s->len;
}

/* --- message head ------------------------------------------------------------ */

/* Framing of a request as a strict server reads it; NULL, or why it cannot
 * be known (the rest of the stream is then raw). */
static const char *request_framing(struct http_parser *p, int dir, struct http_head *h)
{
    struct http_stream *s = &p->s[dir];

    if (s->te_any) {
        /* Without chunked last, a request's length cannot be known. */
        if (!s->te_last_chunked)
            return "Transfer-Encoding without chunked last";
        if (s->cl_count > 0)
            anomaly(p, dir, "Content-Length with chunked Transfer-Encoding");
        h->framing = HTTP_BODY_CHUNKED;
    } else if (s->cl_count > 0) {
        if (s->req_cl_bad)
            return s->req_cl_bad;
        h->framing = HTTP_BODY_LENGTH;
        h->content_length = (int64_t)s->req_cl;
    } else {
        h->framing = HTTP_BODY_NONE;
    }
    return NULL;
}

/* The four clients' readings of a response's framing fields. */
static void client_readings(const struct http_stream *s, uint8_t rd[4], uint64_t len[4])
{
    rd[0] = s->curl_fail ? RD_FAIL : s->te_curl ? RD_CHUNKED : s->cl_count ? s->curl_cl : RD_EOF;
    len[0] = s->curl_len;
    rd[1] = s->te_wget ? RD_CHUNKED : s->wget_cl == RD_FAIL ? RD_EOF : s->wget_cl;
    len[1] = s->wget_len;
    rd[2] = s->te_py ? RD_CHUNKED : s->py_cl == RD_FAIL ? RD_EOF : s->py_cl;
    len[2] = s->py_len;
    if (s->te_u3)
        rd[3] = RD_CHUNKED;
    else if (!s->u3_seen || s->u3_invalid)
        rd[3] = RD_EOF;
    else
        rd[3] = s->u3_multi ? RD_FAIL : s->u3_neg ? RD_EOF : RD_LEN;
    len[3] = s->u3_len;
}

/* Frames a response body the way that hides the least of what any client
 * reads; anomaly when they do not all read it the same. */
static void response_body_framing(struct http_parser *p, int dir, struct http_head *h)
{
    struct http_stream *s = &p->s[dir];
    uint8_t rd[4], best = RD_FAIL;
    uint64_t len[4], best_len = 0;
    int differ = 0, chunk_differ = 0, first = -1;

    client_readings(s, rd, len);
    for (int i = 0; i < 4; i++) {
        if (rd[i] == RD_FAIL)
            continue;
        if (first < 0) {
            first = i;
        } else if (rd[i] != rd[first] || (rd[i] == RD_LEN && len[i] != len[first])) {
            differ = 1;
            chunk_differ |= (rd[i] == RD_CHUNKED) != (rd[first] == RD_CHUNKED);
        }
        if (rd[i] > best || (rd[i] == RD_LEN && best == RD_LEN && len[i] > best_len)) {
            best = rd[i];
            best_len = len[i];
        }
    }
    if (first < 0)
        best = RD_EOF; /* no client reads it: scan all there is */
    if (differ && chunk_differ) {
        anomaly(p, dir, "Transfer-Encoding read differently by clients");
    } else if (differ && s->cl_conflict) {
        /* Contradicting values: the whole stream, and say so now. */
        anomaly(p, dir, s->cl_conflict);
        best = RD_EOF;
    } else if (differ) {
        /* Lengths differ: read to the end, which covers every reading, and
         * complain only once the body is longer than the shortest one (a
         * body that ends there is the same for every client). */
        best = RD_EOF;
        s->soft_left = UINT64_MAX;
        for (int i = 0; i < 4; i++)
            if (rd[i] == RD_LEN && len[i] < s->soft_left)
                s->soft_left = len[i];
        s->soft_why = "Content-Length read differently by clients";
    }
    h->framing = best == RD_CHUNKED ? HTTP_BODY_CHUNKED
                 : best == RD_LEN   ? HTTP_BODY_LENGTH
                                    : HTTP_BODY_EOF;
    h->content_length = best == RD_LEN ? (int64_t)best_len : -1;
}

/* Framing of a response to req (NULL: unknown, taken as not HEAD/CONNECT). */
static void response_framing(struct http_parser *p, int dir, const struct http_request_info *req,
                             struct http_head *h)
{
    struct http_stream *s = &p->s[dir];
    int status = s->status;
    int connect = req && strcmp(req->method, "CONNECT") == 0;

    h->content_length = -1;
    h->framing = HTTP_BODY_NONE;
    if (status == 101 && req && req->upgrade) {
        h->tunnel = req->upgrade;
    } else if (status == 101) {
        /* curl reads on to the end as the body, wget as the next response. */
        anomaly(p, dir, "101 without an upgrade request");
        h->framing = HTTP_BODY_EOF;
    } else if (connect && status >= 200 && status < 300) {
        h->tunnel = HTTP_TUNNEL_CONNECT;
    } else if (!(req && strcmp(req->method, "HEAD") == 0) && status >= 200 && status != 204 &&
               status != 304) {
        response_body_framing(p, dir, h);
    } else if (s->cl_count > 0 && !s->te_any && s->first_prefix != UINT64_MAX) {
        h->content_length = (int64_t)s->first_prefix; /* what the body would have had */
    }
}

/* The empty line ending the head was read: frame, pair, report. */
static void head_complete(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];
    struct http_request_info *taken = NULL;
    struct http_head h;
    const char *why;
    int answered = 0;

    memset(&h, 0, sizeof(h));
    h.is_request = s->is_request;
    h.version_major = s->major;
    h.version_minor = s->minor;
    h.host = kept(s, F_HOST);
    h.user_agent = kept(s, F_USER_AGENT);
    h.content_type = kept(s, F_CONTENT_TYPE);
    h.content_range = kept(s, F_CONTENT_RANGE);
    h.ws_extensions = kept(s, F_WS_EXTENSIONS);
    h.http2_settings = kept(s, F_HTTP2_SETTINGS);
    h.content_encoding = s->ce_len ? s->ce : NULL;
    h.transfer_coding = s->te_len ? s->te : NULL;
    h.content_length = -1;
    if (s->is_request) {
        if ((why = request_framing(p, dir, &h)) != NULL) {
            stream_raw(p, dir, why, why, 1, NULL, 0, NULL, 0);
            return;
        }
        h.method = (const char *)s->buf;
        h.uri = h.method + s->mlen + 1;
        pending_push(p, s);
        s->maybe_tunnel = strcmp(h.method, "CONNECT") == 0 || s->upgrade;
    } else {
        /* Interim responses answer the oldest request but do not take it. */
        h.status = s->status;
        if (s->status >= 200 || s->status == 101) {
            h.request = taken = pending_take(p);
            answered = p->count == 0 && p->skipped_tail == 0;
        } else {
            h.request = pending_peek(p);
        }
        response_framing(p, dir, h.request, &h);
    }
    s->framing = h.framing;
    if (p->cb.head)
        p->cb.head(p->ctx, dir, &h);
    pending_release(p, taken);
    if (answered && !h.tunnel && p->s[!dir].phase == PH_WAIT)
        stream_raw(p, !dir, "data after a refused CONNECT or Upgrade",
                   "data after a refused CONNECT or Upgrade", 1, NULL, 0, NULL, 0);

    /* The head's strings are no longer needed: the buffer serves chunk
     * lines and trailers from here. */
    s->len = s->line_start = 0;
    if (s->cap > HTTP_BUF_KEEP)
        buf_free(s);
    switch (s->framing) {
    case HTTP_BODY_NONE:
        msg_done(p, dir, HTTP_END_OK, NULL);
        if (h.tunnel)
            flow_tunnel(p, h.tunnel, dir, s->line_end);
        break;
    case HTTP_BODY_LENGTH:
        if (h.content_length == 0) {
            msg_done(p, dir, HTTP_END_OK, NULL);
        } else {
            s->remaining = (uint64_t)h.content_length;
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

/* curl: hex digits (16 at most), anything after them up to the line end is
 * an extension. */
static int chunk_curl(const uint8_t *l, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t x = 0;

    for (; i < n && hex_value(l[i]) >= 0; i++)
        x = x << 4 | (uint64_t)hex_value(l[i]);
    if (i == 0 || i > 16)
        return 0;
    *out = x > HTTP_CL_MAX ? HTTP_CL_MAX : x;
    return 1;
}

/* wget: strtol(line, 16): blanks, a sign, "0x", digits; saturates. */
static int chunk_wget(const uint8_t *l, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t x = 0;
    int neg = 0, digits = 0;

    while (i < n && is_space(l[i]))
        i++;
    if (i < n && (l[i] == '+' || l[i] == '-'))
        neg = l[i++] == '-';
    if (n - i >= 3 && l[i] == '0' && (l[i + 1] | 0x20) == 'x' && hex_value(l[i + 2]) >= 0)
        i += 2;
    for (; i < n && hex_value(l[i]) >= 0; i++, digits++)
        x = x > HTTP_CL_MAX >> 4 ? HTTP_CL_MAX : x << 4 | (uint64_t)hex_value(l[i]);
    if (digits == 0 || (neg && x > 0))
        return 0;
    *out = x > HTTP_CL_MAX ? HTTP_CL_MAX : x;
    return 1;
}

/* chunk-size [ ";" chunk-ext ], read as curl, wget and Python read it. */
static void chunk_size_line(struct http_parser *p, int dir, const uint8_t *l, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const uint8_t *semi = memchr(l, ';', n);
    uint64_t v[3], size = 0;
    int ok[3], any = 0, differ = 0;

    ok[0] = chunk_curl(l, n, &v[0]);
    ok[1] = chunk_wget(l, n, &v[1]);
    ok[2] = py_int(l, semi ? (size_t)(semi - l) : n, 16, &v[2]) > 0;
    for (int i = 0; i < 3; i++) {
        if (!ok[i])
            continue;
        differ |= any && v[i] != size;
        if (!any || v[i] > size)
            size = v[i];
        any = 1;
    }
    if (!any) {
        line_raw(p, dir, "invalid chunk size");
        return;
    }
    if (differ)
        anomaly(p, dir, "chunk size read differently by clients");
    s->len = s->line_start = 0;
    if (size == 0) {
        s->phase = PH_TRAILERS;
        s->head_raw = 0;
        return;
    }
    s->remaining = size;
    s->phase = PH_CHUNK_DATA;
}

/* A trailer field, or the empty line that ends the message. Clients skip
 * trailers they cannot read; so does the parser. */
static void trailer_line(struct http_parser *p, int dir, size_t n)
{
    struct http_stream *s = &p->s[dir];

    s->len = s->line_start = 0;
    if (n == 0)
        msg_done(p, dir, HTTP_END_OK, NULL);
}

/* --- lines ------------------------------------------------------------------ */

/* Reads header, chunk-size and trailer lines. Limits are checked byte by
 * byte in stream order (line length, then head size for the same byte), so
 * the result does not depend on where feeds were cut. */
static size_t read_line(struct http_parser *p, int dir, const uint8_t *d, size_t n)
{
    struct http_stream *s = &p->s[dir];
    const char *too_long, *head_too_long = NULL;
    size_t head_max = 0;
    const uint8_t *nl = memchr(d, '\n', n);
    size_t content = nl ? (size_t)(nl - d) : n;
    size_t line_room = HTTP_MAX_LINE + 1 - (s->len - s->line_start);
    size_t pos = SIZE_MAX;
    const char *why = NULL;
    uint8_t *l;
    size_t ln;

    if (s->phase == PH_HEADERS) {
        too_long = "header line too long";
        head_too_long = "head too long";
        head_max = HTTP_MAX_HEAD;
    } else if (s->phase == PH_TRAILERS) {
        too_long = "trailer line too long";
        head_too_long = "trailers too long";
        head_max = HTTP_MAX_HEAD;
    } else {
        too_long = "chunk size line too long";
    }

    if (line_room < content) {
        pos = line_room;
        why = too_long;
    }
    if (head_max && head_max - s->head_raw < content && head_max - s->head_raw < pos) {
        pos = head_max - s->head_raw;
        why = head_too_long;
    }
    if (why) {
        stream_raw(p, dir, why, why, 1, s->buf + s->line_start, s->len - s->line_start, d, pos + 1);
        return pos + 1;
    }
    if (buf_append(s, d, content) < 0) {
        stream_raw(p, dir, "out of memory", "out of memory", 1, s->buf + s->line_start,
                   s->len - s->line_start, d, content);
        return content;
    }
    s->head_raw += content;
    if (nl == NULL)
        return n;
    s->head_raw++;
    s->line_end = s->pos + content + 1;

    l = s->buf + s->line_start;
    ln = s->len - s->line_start;
    while (ln > 0 && l[ln - 1] == '\r')
        ln--;
    if (ln > HTTP_MAX_LINE)
        line_raw(p, dir, too_long);
    else if (head_max && s->head_raw > head_max)
        line_raw(p, dir, head_too_long);
    else if (s->phase == PH_HEADERS)
        header_line(p, dir, l, ln);
    else if (s->phase == PH_TRAILERS)
        trailer_line(p, dir, ln);
    else
        chunk_size_line(p, dir, l, ln);
    return content + 1;
}

/* After chunk data: CRLF, LF, or CR CR LF (curl). Anything else: Python
 * skips two bytes and reads on, so the parser does too. */
static void chunk_crlf(struct http_parser *p, int dir, uint8_t c)
{
    struct http_stream *s = &p->s[dir];

    if (c == '\n') {
        s->phase = PH_CHUNK_SIZE;
    } else if (c == '\r') {
        s->phase = PH_CHUNK_LF;
    } else {
        anomaly(p, dir, "missing crlf after chunk data");
        s->phase = s->phase == PH_CHUNK_CR ? PH_CHUNK_SKIP : PH_CHUNK_SIZE;
    }
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

/* Hands out body bytes of a length-delimited body or chunk. */
static size_t counted_body(struct http_parser *p, int dir, const uint8_t *d, size_t n)
{
    struct http_stream *s = &p->s[dir];
    size_t used = n < s->remaining ? n : (size_t)s->remaining;

    deliver(p, dir, d, used);
    s->remaining -= used;
    if (s->remaining == 0 && s->phase == PH_CHUNK_DATA)
        s->phase = PH_CHUNK_CR;
    else if (s->remaining == 0)
        msg_done(p, dir, s->truncated ? HTTP_END_TRUNCATED : HTTP_END_OK, "gap in body");
    return used;
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
        case PH_CHUNK_DATA:
            used = counted_body(p, dir, d, n);
            break;
        case PH_BODY_EOF:
            used = n;
            eof_body(p, dir, d, n);
            break;
        case PH_CHUNK_CR:
        case PH_CHUNK_LF:
            used = 1;
            chunk_crlf(p, dir, d[0]);
            break;
        case PH_CHUNK_SKIP:
            used = 1;
            s->phase = PH_CHUNK_SIZE;
            break;
        case PH_WAIT:
            used = n;
            break;
        default:
            return;
        }
        off += used;
        s->pos += used;
    }
}

void http_parser_gap(struct http_parser *p, int dir, uint64_t len)
{
    struct http_stream *s;

    if (p == NULL || (dir != 0 && dir != 1) || len == 0)
        return;
    s = &p->s[dir];
    s->pos += len;
    switch (s->phase) {
    case PH_STOPPED:
    case PH_WAIT:
        return;
    case PH_BODY_EOF:
        s->truncated = 1; /* the end of the stream still ends it */
        return;
    case PH_BODY_LEN:
        /* The length says where the next message starts: skip, keep going. */
        if (len < s->remaining) {
            s->remaining -= len;
            s->truncated = 1;
            return;
        }
        if (len == s->remaining) {
            msg_done(p, dir, HTTP_END_TRUNCATED, "gap in body");
            return;
        }
        msg_done(p, dir, HTTP_END_TRUNCATED, "gap in body");
        break;
    case PH_START:
        if (!s->classified) {
            stream_stop(p, dir, HTTP_END_ERROR, NULL, "gap in stream");
            return;
        }
        break;
    default:
        break;
    }
    /* Sync is lost: the rest of the stream is scanned as it comes. */
    stream_raw(p, dir,
               s->phase == PH_START || s->phase == PH_HEADERS ? "gap in head" : "gap in body",
               "gap in stream", 0, NULL, 0, NULL, 0);
    s->truncated = 1;
}

/* A stream that ends inside a line (head, chunk size, trailer) of a stream
 * known to be HTTP, or of the answer to HTTP requests that is still a status
 * line so far: the unfinished line is all some client may have kept, so it
 * is handed out as a raw message. */
static int eof_in_line(struct http_parser *p, int dir)
{
    struct http_stream *s = &p->s[dir];
    const char *why = s->phase == PH_START || s->phase == PH_HEADERS ? "stream ended in head"
                                                                     : "stream ended in body";

    if (s->len <= s->line_start)
        return 0;
    if (!s->classified && !(p->request_dir == !dir && s->rs != RS_DEAD))
        return 0;
    stream_raw(p, dir, why, s->error, 0, s->buf + s->line_start, s->len - s->line_start, NULL, 0);
    s->truncated = 1;
    stream_stop(p, dir, HTTP_END_TRUNCATED, why, s->error);
    return 1;
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
        if (s->soft_why && s->soft_left > 0) {
            /* Shorter than every Content-Length read: cut for those clients. */
            stream_stop(p, dir, HTTP_END_TRUNCATED, "stream ended in body", s->error);
            return;
        }
        stream_stop(p, dir, s->truncated ? HTTP_END_TRUNCATED : HTTP_END_OK, "gap in body",
                    s->error);
        return;
    case PH_START:
    case PH_HEADERS:
        if (!eof_in_line(p, dir))
            stream_stop(p, dir, HTTP_END_TRUNCATED, "stream ended in head", s->error);
        return;
    case PH_CHUNK_SIZE:
    case PH_TRAILERS:
        if (!eof_in_line(p, dir))
            stream_stop(p, dir, HTTP_END_TRUNCATED, "stream ended in body", s->error);
        return;
    default:
        stream_stop(p, dir, HTTP_END_TRUNCATED, "stream ended in body", s->error);
        return;
    }
}

void http_parser_from_start(struct http_parser *p)
{
    if (p)
        p->from_start = 1;
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
    if (s->phase == PH_STOPPED || s->phase == PH_WAIT)
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

int http_parser_tunnel(const struct http_parser *p, int *kind, uint64_t start[2])
{
    if (p == NULL || p->tunnel == HTTP_TUNNEL_NONE)
        return 0;
    if (kind)
        *kind = p->tunnel;
    if (start) {
        start[0] = p->tunnel_start[0];
        start[1] = p->tunnel_start[1];
    }
    return 1;
}
