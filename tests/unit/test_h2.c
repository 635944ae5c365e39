/*
 * HTTP/2 cleartext decoder: exchanges captured between real clients and
 * servers, exchanges generated here by two libnghttp2 endpoints (padding,
 * CONTINUATION, interleaved streams, gzip, resets, pushes, 1xx, trailers),
 * raw frames a receiver refuses, and the same input in pieces of any size.
 *
 * The captures are under tests/unit/data/h2/ (NAME.c2s, NAME.s2c and
 * NAME.order, the pieces in the order a relay on 127.0.0.1 read them), made
 * by tests/unit/data/h2/capture.sh:
 *   prior    curl 7.88 --http2-prior-knowledge GET /eicar.com from nghttpd
 *   pad      the same, nghttpd padding its frames
 *   upgrade  curl --http2 (Upgrade: h2c) from a python3-h2 server
 *   gzip     curl --http2-prior-knowledge --compressed, EICAR sent gzipped
 *   upload   curl POST of EICAR to nghttpd --echo-upload
 *   multi    nghttp: three concurrent streams (13: big.bin, 15: eicar.com,
 *            17: big.bin?2) with a 20000-byte header and client padding,
 *            nghttpd padding; big.bin is the pattern of big_body()
 * In each, the client wrote EICAR (or big.bin) to disk.
 */
#include "check.h"
#include "h2.h"

#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <zlib.h>

#define EICAR "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

static char data_dir[4096];

/* --- recording -------------------------------------------------------------- */

#define MAX_STREAMS 700
#define MAX_NOTES   64

struct body {
    int dir;
    int32_t id;
    uint8_t *p;
    size_t n, cap;
    int chunks;
    int heads;
    int ends, how;
    int status, push;
    char method[16], path[64], authority[64], cenc[64], ctype[64];
    int64_t clen;
};

struct record {
    struct body b[MAX_STREAMS];
    int nb;
    char anomalies[MAX_NOTES][160];
    int adir[MAX_NOTES];
    int na;
    char order[4096]; /* "d13 D13 ..." what came in which order */
    size_t on;
    int bad; /* a contract breach */
};

static struct body *body_of(struct record *r, int dir, int32_t id)
{
    for (int i = 0; i < r->nb; i++)
        if (r->b[i].dir == dir && r->b[i].id == id)
            return &r->b[i];
    if (r->nb == MAX_STREAMS) {
        r->bad = 1;
        return &r->b[0];
    }
    memset(&r->b[r->nb], 0, sizeof(r->b[0]));
    r->b[r->nb].dir = dir;
    r->b[r->nb].id = id;
    r->b[r->nb].how = -1;
    return &r->b[r->nb++];
}

/* Notes an event; a run of the same event is noted once. */
static void note(struct record *r, char kind, int dir, int32_t id)
{
    char tok[32];
    size_t k = (size_t)snprintf(tok, sizeof(tok), "%c%d:%d ", kind, dir, (int)id);

    if (r->on >= k && memcmp(r->order + r->on - k, tok, k) == 0 &&
        (r->on == k || r->order[r->on - k - 1] == ' '))
        return;
    if (r->on + k < sizeof(r->order)) {
        memcpy(r->order + r->on, tok, k + 1);
        r->on += k;
    }
}

static void scopy(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "(none)");
}

static void on_headers(void *ctx, int dir, int32_t id, const struct h2_head *h)
{
    struct record *r = ctx;
    struct body *b = body_of(r, dir, id);

    if (b->ends)
        r->bad = 1;
    if (h->push) { /* the promised request: kept apart from the response */
        b->push = 1;
        scopy(b->path, sizeof(b->path), h->path);
        note(r, 'P', dir, id);
        return;
    }
    b->heads++;
    b->status = h->status;
    b->clen = h->content_length;
    scopy(b->method, sizeof(b->method), h->method);
    if (!b->push)
        scopy(b->path, sizeof(b->path), h->path);
    scopy(b->authority, sizeof(b->authority), h->authority);
    scopy(b->cenc, sizeof(b->cenc), h->content_encoding);
    scopy(b->ctype, sizeof(b->ctype), h->content_type);
    note(r, 'H', dir, id);
}

static void on_data(void *ctx, int dir, int32_t id, const uint8_t *p, size_t n)
{
    struct record *r = ctx;
    struct body *b = body_of(r, dir, id);

    if (b->ends || n == 0)
        r->bad = 1;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->chunks++;
    note(r, 'D', dir, id);
}

static void on_end(void *ctx, int dir, int32_t id, enum h2_end how)
{
    struct record *r = ctx;
    struct body *b = body_of(r, dir, id);

    if (b->ends++)
        r->bad = 1;
    b->how = (int)how;
    note(r, 'E', dir, id);
}

static void on_anomaly(void *ctx, int dir, const char *why)
{
    struct record *r = ctx;

    if (why == NULL || why[0] == '\0')
        r->bad = 1;
    if (r->na < MAX_NOTES) {
        snprintf(r->anomalies[r->na], sizeof(r->anomalies[0]), "%s", why);
        r->adir[r->na++] = dir;
    }
}

static const struct h2_callbacks callbacks = {on_headers, on_data, on_end, on_anomaly};

static void record_free(struct record *r)
{
    for (int i = 0; i < r->nb; i++)
        free(r->b[i].p);
    memset(r, 0, sizeof(*r));
}

static int has_anomaly(const struct record *r, int dir, const char *prefix)
{
    for (int i = 0; i < r->na; i++)
        if (r->adir[i] == dir && strncmp(r->anomalies[i], prefix, strlen(prefix)) == 0)
            return 1;
    return 0;
}

static void print_anomalies(const char *what, const struct record *r)
{
    for (int i = 0; i < r->na; i++)
        fprintf(stderr, "%s: anomaly dir %d: %s\n", what, r->adir[i], r->anomalies[i]);
}

/* Two runs tell the same story: same bodies, heads and ends per stream. */
static int records_equal(const struct record *a, const struct record *b)
{
    if (a->nb != b->nb || a->na != b->na)
        return 0;
    for (int i = 0; i < a->nb; i++) {
        const struct body *x = &a->b[i], *y = &b->b[i];
        if (x->dir != y->dir || x->id != y->id || x->n != y->n || x->heads != y->heads ||
            x->ends != y->ends || x->how != y->how || x->status != y->status ||
            strcmp(x->path, y->path) != 0 || strcmp(x->cenc, y->cenc) != 0 ||
            (x->n && memcmp(x->p, y->p, x->n) != 0))
            return 0;
    }
    for (int i = 0; i < a->na; i++)
        if (strcmp(a->anomalies[i], b->anomalies[i]) != 0)
            return 0;
    return 1;
}

static void dump(const char *what, const struct record *r)
{
    if (!getenv("H2_DEBUG"))
        return;
    fprintf(stderr, "== %s: %s\n", what, r->order);
    for (int i = 0; i < r->nb; i++)
        fprintf(stderr, "  dir %d id %d heads %d n %zu ends %d how %d status %d path %s\n",
                r->b[i].dir, r->b[i].id, r->b[i].heads, r->b[i].n, r->b[i].ends, r->b[i].how,
                r->b[i].status, r->b[i].path);
    print_anomalies(what, r);
}

static int body_is(struct record *r, int dir, int32_t id, const void *p, size_t n)
{
    struct body *b = body_of(r, dir, id);
    return b->n == n && (n == 0 || memcmp(b->p, p, n) == 0);
}

/* --- transcripts: pieces of the two streams in the order they went --------- */

#define MAX_PIECES 8192

struct transcript {
    uint8_t *s[2];
    size_t n[2], cap[2];
    struct {
        int dir;
        size_t off, n;
    } piece[MAX_PIECES];
    int np;
};

static void t_add(struct transcript *t, int dir, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if (t->n[dir] + n > t->cap[dir]) {
        t->cap[dir] = (t->n[dir] + n) * 2;
        t->s[dir] = realloc(t->s[dir], t->cap[dir]);
    }
    memcpy(t->s[dir] + t->n[dir], p, n);
    CHECK(t->np < MAX_PIECES);
    if (t->np < MAX_PIECES) {
        t->piece[t->np].dir = dir;
        t->piece[t->np].off = t->n[dir];
        t->piece[t->np].n = n;
        t->np++;
    }
    t->n[dir] += n;
}

static void t_free(struct transcript *t)
{
    free(t->s[0]);
    free(t->s[1]);
    memset(t, 0, sizeof(*t));
}

/* Feeds the pieces from byte skip[dir] of each stream on; step 0 feeds each
 * piece whole, else in slices cycling through 1..step bytes. */
static void replay(struct h2_session *s, const struct transcript *t, const size_t skip[2],
                   size_t step)
{
    size_t k = 0;

    for (int i = 0; i < t->np; i++) {
        int dir = t->piece[i].dir;
        size_t off = t->piece[i].off, end = off + t->piece[i].n;

        if (end <= skip[dir])
            continue;
        if (off < skip[dir])
            off = skip[dir];
        while (off < end) {
            size_t m = step ? 1 + (k++ * 3 + off) % step : end - off;
            if (m > end - off)
                m = end - off;
            h2_feed(s, dir, t->s[dir] + off, m);
            off += m;
        }
    }
}

static int load_file(const char *name, uint8_t **p, size_t *n)
{
    *p = check_read_file(data_dir, name, n);
    return *p ? 0 : -1;
}

static int load_capture(const char *name, struct transcript *t)
{
    char file[256];
    uint8_t *order;
    size_t on, off[2] = {0, 0};
    char *line, *save = NULL;

    memset(t, 0, sizeof(*t));
    snprintf(file, sizeof(file), "%s.c2s", name);
    if (load_file(file, &t->s[0], &t->n[0]) != 0)
        return -1;
    snprintf(file, sizeof(file), "%s.s2c", name);
    if (load_file(file, &t->s[1], &t->n[1]) != 0)
        return -1;
    snprintf(file, sizeof(file), "%s.order", name);
    if (load_file(file, &order, &on) != 0)
        return -1;
    order[on] = '\0';
    for (line = strtok_r((char *)order, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int dir;
        size_t n;
        if (sscanf(line, "%d %zu", &dir, &n) != 2 || (dir != 0 && dir != 1) ||
            off[dir] + n > t->n[dir] || t->np == MAX_PIECES) {
            CHECK(0);
            break;
        }
        t->piece[t->np].dir = dir;
        t->piece[t->np].off = off[dir];
        t->piece[t->np].n = n;
        t->np++;
        off[dir] += n;
    }
    free(order);
    CHECK(off[0] == t->n[0] && off[1] == t->n[1]);
    return 0;
}

/* The end of an HTTP/1.1 head and one of its header values. */
static size_t head_end(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

static void head_value(const uint8_t *p, size_t n, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);

    out[0] = '\0';
    for (size_t i = 0; i + nl + 3 <= n; i++) {
        if (memcmp(p + i, "\r\n", 2) != 0 || strncasecmp((const char *)p + i + 2, name, nl) != 0 ||
            p[i + 2 + nl] != ':')
            continue;
        size_t s = i + 3 + nl, e;
        while (s < n && p[s] == ' ')
            s++;
        for (e = s; e < n && p[e] != '\r'; e++)
            ;
        snprintf(out, size, "%.*s", (int)(e - s), (const char *)p + s);
        return;
    }
}

/* big.bin of the multi capture: a pattern with EICAR at 30000. */
static uint8_t *big_body(size_t *n)
{
    uint8_t *p = malloc(70068);

    for (size_t i = 0, k = 0; i < 70068; i++) {
        if (i >= 30000 && i < 30068) {
            p[i] = (uint8_t)EICAR[i - 30000];
            continue;
        }
        p[i] = (uint8_t)((k * 7 + k / 251) & 0xff);
        k++;
    }
    *n = 70068;
    return p;
}

static void run_capture(const char *name, size_t step, struct record *r)
{
    struct transcript t;
    struct h2_session *s;
    size_t skip[2] = {0, 0};

    if (load_capture(name, &t) != 0)
        return;
    if (strcmp(name, "upgrade") == 0) {
        char settings[256];
        skip[0] = head_end(t.s[0], t.n[0]);
        skip[1] = head_end(t.s[1], t.n[1]);
        CHECK(skip[0] > 0 && skip[1] > 0);
        head_value(t.s[0], skip[0], "HTTP2-Settings", settings, sizeof(settings));
        CHECK(settings[0] != '\0');
        s = h2_new_upgrade(&callbacks, r, settings, 0);
    } else {
        CHECK_EQ_INT(h2_preface_match(t.s[0], t.n[0]), 1);
        s = h2_new(&callbacks, r);
    }
    CHECK(s != NULL);
    if (s != NULL) {
        replay(s, &t, skip, step);
        CHECK(h2_active(s, 0) && h2_active(s, 1));
        h2_eof(s, 0);
        h2_eof(s, 1);
        h2_free(s);
    }
    t_free(&t);
}

static int gunzip(const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
    z_stream z;
    int rc;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 31) != Z_OK)
        return -1;
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    rc = inflate(&z, Z_FINISH);
    n = cap - z.avail_out;
    inflateEnd(&z);
    return rc == Z_STREAM_END ? (int)n : -1;
}

static void check_simple_get(const char *name, struct record *r, int32_t id)
{
    struct body *req = body_of(r, 0, id), *resp = body_of(r, 1, id);

    CHECK_EQ_INT(resp->heads, 1);
    CHECK_EQ_INT(resp->status, 200);
    CHECK_EQ_INT(resp->ends, 1);
    CHECK_EQ_INT(resp->how, H2_END_COMPLETE);
    if (strcmp(name, "upgrade") != 0) {
        CHECK_EQ_INT(req->heads, 1);
        CHECK_EQ_STR(req->method, strcmp(name, "upload") == 0 ? "POST" : "GET");
        CHECK_EQ_INT(req->how, H2_END_COMPLETE);
        CHECK(strncmp(req->authority, "127.0.0.1:", 10) == 0);
    } else {
        CHECK_EQ_INT(req->heads, 0); /* the request was HTTP/1.1 */
    }
    if (strcmp(name, "gzip") == 0) {
        uint8_t out[256];
        CHECK_EQ_STR(resp->cenc, "gzip");
        CHECK_EQ_STR(req->path, "/eicar.com.gz");
        CHECK_EQ_INT(gunzip(resp->p, resp->n, out, sizeof(out)), 68);
        CHECK(memcmp(out, EICAR, 68) == 0);
        return;
    }
    if (strcmp(name, "upload") == 0) {
        CHECK_EQ_STR(req->method, "POST");
        CHECK(body_is(r, 0, id, EICAR, 68));
    } else if (strcmp(name, "upgrade") != 0) {
        CHECK_EQ_STR(req->path, "/eicar.com");
    }
    CHECK(body_is(r, 1, id, EICAR, 68));
    CHECK_EQ_INT(resp->clen, 68);
}

static void test_captures(void)
{
    static const char *const names[] = {"prior", "pad", "upgrade", "gzip", "upload", "multi"};
    static const size_t steps[] = {1, 2, 5, 100, 5000};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct record whole;

        memset(&whole, 0, sizeof(whole));
        run_capture(names[i], 0, &whole);
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            struct record pieces;
            memset(&pieces, 0, sizeof(pieces));
            run_capture(names[i], steps[k], &pieces);
            if (!records_equal(&whole, &pieces)) {
                fprintf(stderr, "%s step %zu differs\n", names[i], steps[k]);
                dump("whole", &whole);
                dump("pieces", &pieces);
            }
            CHECK(records_equal(&whole, &pieces));
            record_free(&pieces);
        }
        if (whole.na)
            print_anomalies(names[i], &whole);
        CHECK_EQ_INT(whole.na, 0);
        CHECK(!whole.bad);
        if (strcmp(names[i], "multi") == 0) {
            size_t n;
            uint8_t *big = big_body(&n);
            CHECK(body_is(&whole, 1, 13, big, n));
            CHECK(body_is(&whole, 1, 15, EICAR, 68));
            CHECK(body_is(&whole, 1, 17, big, n));
            CHECK_EQ_STR(body_of(&whole, 0, 17)->path, "/big.bin?2");
            for (int32_t id = 13; id <= 17; id += 2)
                CHECK_EQ_INT(body_of(&whole, 1, id)->how, H2_END_COMPLETE);
            dump("multi", &whole);
            /* The two big bodies came interleaved. */
            CHECK(strstr(whole.order, "D1:17") != NULL &&
                  strstr(whole.order, "D1:17") < strstr(whole.order, "E1:13"));
            free(big);
        } else {
            check_simple_get(names[i], &whole, 1);
        }
        record_free(&whole);
    }
}

/* --- exchanges generated by two nghttp2 endpoints -------------------------- */

struct source {
    const uint8_t *p;
    size_t n, off;
    int defer_after; /* stop (deferred) once off reaches it; 0: never */
    int trailers;
};

struct gen {
    nghttp2_session *cli, *srv;
    struct transcript t;
    struct source src[1024]; /* server responses, by stream ID */
    struct source up[1024];  /* client uploads, by stream ID */
    char paths[1024][32];
    uint8_t echo[1024][256];
    size_t echo_n[1024];
    uint8_t gz[256];
    size_t gz_n;
    int pad;
    int32_t deferred;
};

static ssize_t gen_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *ds, void *ud)
{
    struct source *s = ds->ptr;
    struct gen *g = ud;
    size_t m = s->n - s->off;

    if (s->defer_after && s->off >= (size_t)s->defer_after) {
        g->deferred = id;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (m > len)
        m = len;
    if (s->defer_after && s->off + m > (size_t)s->defer_after)
        m = (size_t)s->defer_after - s->off;
    memcpy(buf, s->p + s->off, m);
    s->off += m;
    if (s->off == s->n) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->trailers) {
            static const nghttp2_nv tr[] = {
                {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(ng, id, tr, 1);
        }
    }
    return (ssize_t)m;
}

static ssize_t gen_pad(nghttp2_session *ng, const nghttp2_frame *f, size_t max, void *ud)
{
    struct gen *g = ud;
    size_t want = f->hd.length + 200;
    return g->pad ? (ssize_t)(want < max ? want : max) : (ssize_t)f->hd.length;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

static void gen_respond(struct gen *g, int32_t id, const char *path)
{
    static uint8_t *big;
    static size_t big_n;
    struct source *s = &g->src[id % 1024];
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = gen_read};
    nghttp2_nv nva[3] = {NV(":status", "200"), NV("content-type", "application/octet-stream"),
                         NV("content-encoding", "gzip")};
    size_t nn = 2;

    if (big == NULL)
        big = big_body(&big_n);
    memset(s, 0, sizeof(*s));
    s->p = (const uint8_t *)EICAR;
    s->n = 68;
    if (strcmp(path, "/big") == 0) {
        s->p = big;
        s->n = big_n;
    } else if (strcmp(path, "/gzip") == 0) {
        s->p = g->gz;
        s->n = g->gz_n;
        nn = 3;
    } else if (strcmp(path, "/rst") == 0) {
        s->defer_after = 30;
    } else if (strcmp(path, "/trailers") == 0) {
        s->trailers = 1;
    } else if (strcmp(path, "/echo") == 0) {
        s->p = g->echo[id % 1024];
        s->n = g->echo_n[id % 1024];
    } else if (strcmp(path, "/100") == 0) {
        static const nghttp2_nv cont[] = {NV(":status", "100")};
        nghttp2_submit_headers(g->srv, NGHTTP2_FLAG_NONE, id, NULL, cont, 1, NULL);
    } else if (strcmp(path, "/push") == 0) {
        static const nghttp2_nv preq[] = {NV(":method", "GET"), NV(":scheme", "http"),
                                          NV(":path", "/pushed"), NV(":authority", "gen")};
        int32_t pid = nghttp2_submit_push_promise(g->srv, NGHTTP2_FLAG_NONE, id, preq, 4, NULL);
        CHECK(pid > 0);
        if (pid > 0)
            gen_respond(g, pid, "/eicar");
        s->p = (const uint8_t *)"main";
        s->n = 4;
    }
    CHECK(nghttp2_submit_response(g->srv, id, nva, nn, &dp) == 0);
}

static int gen_srv_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct gen *g = ud;

    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        const char *p = g->paths[f->hd.stream_id % 1024];
        gen_respond(g, f->hd.stream_id, p[0] ? p : "/eicar");
    }
    return 0;
}

static int gen_srv_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                          size_t nl, const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
    struct gen *g = ud;

    if (f->hd.type == NGHTTP2_HEADERS && nl == 5 && memcmp(name, ":path", 5) == 0)
        snprintf(g->paths[f->hd.stream_id % 1024], 32, "%.*s", (int)vl, (const char *)v);
    return 0;
}

static int gen_srv_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
                        void *ud)
{
    struct gen *g = ud;
    size_t *en = &g->echo_n[id % 1024];

    if (*en + n <= sizeof(g->echo[0])) {
        memcpy(g->echo[id % 1024] + *en, p, n);
        *en += n;
    }
    return 0;
}

static void gen_init(struct gen *g, int pad, const nghttp2_settings_entry *civ, size_t cn)
{
    nghttp2_session_callbacks *cb;
    z_stream z;

    memset(g, 0, sizeof(*g));
    g->pad = pad;
    memset(&z, 0, sizeof(z));
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = (Bytef *)EICAR;
    z.avail_in = 68;
    z.next_out = g->gz;
    z.avail_out = sizeof(g->gz);
    CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    g->gz_n = sizeof(g->gz) - z.avail_out;
    deflateEnd(&z);

    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_select_padding_callback(cb, gen_pad);
    nghttp2_session_client_new(&g->cli, cb, g);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, gen_srv_frame);
    nghttp2_session_callbacks_set_on_header_callback(cb, gen_srv_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, gen_srv_data);
    nghttp2_session_server_new(&g->srv, cb, g);
    nghttp2_session_callbacks_del(cb);
    CHECK(nghttp2_submit_settings(g->cli, NGHTTP2_FLAG_NONE, civ, cn) == 0);
    CHECK(nghttp2_submit_settings(g->srv, NGHTTP2_FLAG_NONE, NULL, 0) == 0);
}

/* Moves bytes between the two endpoints until both are quiet. */
static void gen_pump(struct gen *g)
{
    for (int progress = 1; progress;) {
        const uint8_t *p;
        ssize_t n;

        progress = 0;
        while ((n = nghttp2_session_mem_send(g->cli, &p)) > 0) {
            t_add(&g->t, 0, p, (size_t)n);
            CHECK(nghttp2_session_mem_recv(g->srv, p, (size_t)n) == n);
            progress = 1;
        }
        while ((n = nghttp2_session_mem_send(g->srv, &p)) > 0) {
            t_add(&g->t, 1, p, (size_t)n);
            CHECK(nghttp2_session_mem_recv(g->cli, p, (size_t)n) == n);
            progress = 1;
        }
    }
}

static int32_t gen_get(struct gen *g, const char *path, const char *upload, size_t big_header)
{
    static char bigv[40000];
    struct source *up = NULL;
    nghttp2_data_provider dp = {.read_callback = gen_read};
    nghttp2_nv nva[6] = {NV(":method", upload ? "POST" : "GET"),
                         NV(":scheme", "http"),
                         NV(":path", path),
                         NV(":authority", "gen.example"),
                         NV("x-big", ""),
                         NV("accept-encoding", "gzip")};
    size_t nn = 4;
    int32_t id;

    if (big_header) {
        memset(bigv, 'b', big_header);
        nva[4].value = (uint8_t *)bigv;
        nva[4].valuelen = big_header;
        nn = 5;
    }
    if (upload) {
        up = &g->up[nghttp2_session_get_next_stream_id(g->cli) % 1024];
        memset(up, 0, sizeof(*up));
        up->p = (const uint8_t *)upload;
        up->n = strlen(upload);
        dp.source.ptr = up;
    }
    id = nghttp2_submit_request(g->cli, NULL, nva, nn, upload ? &dp : NULL, NULL);
    CHECK(id > 0);
    return id;
}

static void gen_free(struct gen *g)
{
    nghttp2_session_del(g->cli);
    nghttp2_session_del(g->srv);
    t_free(&g->t);
}

/* Replays a generated transcript whole and byte by byte; both must agree. */
static void gen_check(struct gen *g, struct record *r)
{
    static const size_t steps[] = {1, 7};
    size_t skip[2] = {0, 0};
    struct h2_session *s = h2_new(&callbacks, r);

    replay(s, &g->t, skip, 0);
    h2_free(s);
    CHECK(!r->bad);
    for (size_t k = 0; k < 2; k++) {
        struct record o;
        memset(&o, 0, sizeof(o));
        s = h2_new(&callbacks, &o);
        replay(s, &g->t, skip, steps[k]);
        h2_free(s);
        if (!records_equal(r, &o)) {
            fprintf(stderr, "generated step %zu differs\n", steps[k]);
            dump("pieces", &o);
        }
        CHECK(records_equal(r, &o));
        record_free(&o);
    }
}

static void test_generated(void)
{
    static const nghttp2_settings_entry civ[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 16},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 8192},
    };
    struct gen g;
    struct record r;
    size_t bn;
    uint8_t *big = big_body(&bn), out[256];
    int32_t id[8];

    /* Interleaved streams with padding, CONTINUATION, gzip, an upload, a
     * 1xx, trailers, a push; the client's settings allow 64 KiB frames. */
    for (int pad = 0; pad < 2; pad++) {
        gen_init(&g, pad, civ, 3);
        id[0] = gen_get(&g, "/big", NULL, 0);
        id[1] = gen_get(&g, "/big", NULL, 30000);
        id[2] = gen_get(&g, "/gzip", NULL, 0);
        id[3] = gen_get(&g, "/echo", EICAR, 0);
        id[4] = gen_get(&g, "/100", NULL, 0);
        id[5] = gen_get(&g, "/trailers", NULL, 0);
        id[6] = gen_get(&g, "/push", NULL, 0);
        gen_pump(&g);
        memset(&r, 0, sizeof(r));
        gen_check(&g, &r);
        dump("generated", &r);
        if (r.na)
            print_anomalies("generated", &r);
        CHECK_EQ_INT(r.na, 0);
        CHECK(body_is(&r, 1, id[0], big, bn));
        CHECK(body_is(&r, 1, id[1], big, bn));
        CHECK_EQ_INT(body_of(&r, 0, id[1])->heads, 1);
        CHECK(strstr(r.order, "D1:1 D1:3 D1:1") != NULL ||
              strstr(r.order, "D1:3 D1:1 D1:3") != NULL);
        CHECK_EQ_STR(body_of(&r, 1, id[2])->cenc, "gzip");
        CHECK_EQ_INT(gunzip(body_of(&r, 1, id[2])->p, body_of(&r, 1, id[2])->n, out, 256), 68);
        CHECK(body_is(&r, 0, id[3], EICAR, 68));
        CHECK(body_is(&r, 1, id[3], EICAR, 68));
        CHECK_EQ_STR(body_of(&r, 0, id[3])->method, "POST");
        CHECK_EQ_INT(body_of(&r, 1, id[4])->status, 200); /* the 100 is not reported */
        CHECK_EQ_INT(body_of(&r, 1, id[4])->heads, 1);
        CHECK(body_is(&r, 1, id[4], EICAR, 68));
        CHECK_EQ_INT(body_of(&r, 1, id[5])->heads, 1); /* trailers are not headers */
        CHECK(body_is(&r, 1, id[5], EICAR, 68));
        CHECK(body_is(&r, 1, id[6], "main", 4));
        CHECK(body_is(&r, 1, 2, EICAR, 68)); /* the pushed stream */
        CHECK_EQ_INT(body_of(&r, 1, 2)->push, 1);
        CHECK_EQ_STR(body_of(&r, 1, 2)->path, "/pushed");
        for (int i = 0; i < 7; i++) {
            CHECK_EQ_INT(body_of(&r, 0, id[i])->how, H2_END_COMPLETE);
            CHECK_EQ_INT(body_of(&r, 1, id[i])->how, H2_END_COMPLETE);
        }
        CHECK_EQ_INT(body_of(&r, 1, 2)->how, H2_END_COMPLETE);
        record_free(&r);
        gen_free(&g);
    }

    /* RST_STREAM from the server in the middle of a body, then from the
     * client; the connection goes on. */
    gen_init(&g, 0, NULL, 0);
    id[0] = gen_get(&g, "/rst", NULL, 0);
    gen_pump(&g);
    CHECK_EQ_INT(g.deferred, id[0]);
    nghttp2_submit_rst_stream(g.srv, NGHTTP2_FLAG_NONE, id[0], NGHTTP2_INTERNAL_ERROR);
    id[1] = gen_get(&g, "/rst", NULL, 0);
    gen_pump(&g);
    nghttp2_submit_rst_stream(g.cli, NGHTTP2_FLAG_NONE, id[1], NGHTTP2_CANCEL);
    id[2] = gen_get(&g, "/eicar", NULL, 0);
    gen_pump(&g);
    memset(&r, 0, sizeof(r));
    gen_check(&g, &r);
    CHECK_EQ_INT(r.na, 0);
    for (int i = 0; i < 2; i++) {
        CHECK(body_is(&r, 1, id[i], EICAR, 30));
        CHECK_EQ_INT(body_of(&r, 1, id[i])->how, H2_END_RESET);
        CHECK_EQ_INT(body_of(&r, 1, id[i])->ends, 1);
    }
    CHECK(body_is(&r, 1, id[2], EICAR, 68));
    CHECK_EQ_INT(body_of(&r, 1, id[2])->how, H2_END_COMPLETE);
    record_free(&r);
    gen_free(&g);

    /* Many streams one after the other: none left behind. */
    gen_init(&g, 0, NULL, 0);
    for (int i = 0; i < 300; i++) {
        gen_get(&g, "/eicar", NULL, 0);
        gen_pump(&g);
    }
    memset(&r, 0, sizeof(r));
    {
        size_t skip[2] = {0, 0};
        struct h2_session *s = h2_new(&callbacks, &r);
        replay(s, &g.t, skip, 0);
        h2_free(s);
    }
    dump("sequential", &r);
    CHECK_EQ_INT(r.na, 0);
    CHECK(body_is(&r, 1, 599, EICAR, 68));
    CHECK_EQ_INT(body_of(&r, 1, 599)->how, H2_END_COMPLETE);
    record_free(&r);
    gen_free(&g);
    free(big);
}

/* --- raw frames ------------------------------------------------------------ */

static void raw(struct transcript *t, int dir, uint32_t len, uint8_t type, uint8_t flags,
                uint32_t id, const void *payload, size_t n)
{
    uint8_t h[9] = {
        (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,       type,       flags,
        (uint8_t)(id >> 24),  (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    uint8_t buf[9 + 256];

    memcpy(buf, h, 9);
    memcpy(buf + 9, payload, n);
    t_add(t, dir, buf, 9 + n);
}

/* GET / with :authority "a" in HPACK (static indexes and one literal). */
static const uint8_t req_block[] = {0x82, 0x86, 0x84, 0x01, 0x01, 'a'};

/* The start of a connection: prefaces, empty SETTINGS both ways and ACKs. */
static void raw_start(struct transcript *t)
{
    t_add(t, 0, (const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    raw(t, 0, 0, 4, 0, 0, "", 0);
    raw(t, 1, 0, 4, 0, 0, "", 0);
    raw(t, 1, 0, 4, 1, 0, "", 0);
    raw(t, 0, 0, 4, 1, 0, "", 0);
}

/* Runs a raw transcript; returns the record for checks. */
static void raw_run(struct transcript *t, struct record *r, int *active0, int *active1)
{
    size_t skip[2] = {0, 0};
    struct h2_session *s = h2_new(&callbacks, r);

    replay(s, t, skip, 0);
    *active0 = h2_active(s, 0);
    *active1 = h2_active(s, 1);
    h2_free(s);
    CHECK(!r->bad);
}

static void bad_case(int what)
{
    struct transcript t;
    struct record r;
    int a0, a1, dir = 0;
    const char *why = "h2: ";

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    if (what == 0) { /* not a preface */
        t_add(&t, 0, (const uint8_t *)"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    } else {
        raw_start(&t);
    }
    switch (what) {
    case 1: /* DATA on stream 0 */
        raw(&t, 0, 4, 0, 0, 0, EICAR, 4);
        break;
    case 2: /* an HPACK index that does not exist */
        raw(&t, 0, 2, 1, 5, 1, "\x82\xff", 2);
        break;
    case 3: /* a frame longer than SETTINGS_MAX_FRAME_SIZE */
        raw(&t, 0, 20000, 0, 0, 1, "", 0);
        break;
    case 4: /* padding longer than the frame */
        raw(&t, 0, sizeof(req_block), 1, 4, 1, req_block, sizeof(req_block));
        raw(&t, 0, 2, 0, 8, 1, "\x05x", 2);
        break;
    case 5: /* DATA on a stream never opened */
        raw(&t, 0, 4, 0, 0, 7, "abcd", 4);
        break;
    case 6: /* a push although the client disabled it */
        t_free(&t);
        t_add(&t, 0, (const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
        raw(&t, 0, 6, 4, 0, 0, "\x00\x02\x00\x00\x00\x00", 6);
        raw(&t, 1, 0, 4, 0, 0, "", 0);
        raw(&t, 1, 0, 4, 1, 0, "", 0);
        raw(&t, 0, 0, 4, 1, 0, "", 0);
        raw(&t, 0, sizeof(req_block), 1, 5, 1, req_block, sizeof(req_block));
        raw(&t, 1, 4 + 3, 5, 4, 1, "\x00\x00\x00\x02\x82\x86\x84", 7);
        dir = 1;
        break;
    case 7: /* HEADERS depending on its own stream */
        raw(&t, 0, 5 + sizeof(req_block), 1, 0x20 | 4, 1,
            "\x00\x00\x00\x01\x10\x82\x86\x84\x01\x01\x61", 5 + sizeof(req_block));
        break;
    case 8: /* CONTINUATION without HEADERS */
        raw(&t, 0, sizeof(req_block), 9, 4, 1, req_block, sizeof(req_block));
        break;
    case 9: /* a server that does not start with SETTINGS */
        t_free(&t);
        t_add(&t, 0, (const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
        raw(&t, 1, 8, 6, 0, 0, "12345678", 8);
        dir = 1;
        break;
    }
    raw_run(&t, &r, &a0, &a1);
    if (getenv("H2_DEBUG"))
        print_anomalies("bad case", &r);
    if (!has_anomaly(&r, dir, why)) {
        fprintf(stderr, "bad case %d: no anomaly\n", what);
        print_anomalies("bad case", &r);
    }
    CHECK(has_anomaly(&r, dir, why));
    CHECK_EQ_INT(dir == 0 ? a0 : a1, 0); /* a connection error stops that side */
    CHECK_EQ_INT(dir == 0 ? a1 : a0, 1);
    t_free(&t);
    record_free(&r);
}

static void test_bad_frames(void)
{
    for (int i = 0; i <= 9; i++)
        bad_case(i);
}

/* Raw frames that are fine: padding, a header block in CONTINUATION frames
 * cut inside a field, an unknown frame type, PING, PRIORITY. */
static void test_raw_ok(void)
{
    struct transcript t;
    struct record r;
    int a0, a1;
    static const uint8_t resp_block[] = {0x88}; /* :status 200 */
    uint8_t padded[1 + 68 + 10];

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    raw_start(&t);
    raw(&t, 0, 2, 1, 0, 1, req_block, 2);              /* HEADERS, no END_HEADERS */
    raw(&t, 0, 3, 9, 0, 1, req_block + 2, 3);          /* CONTINUATION */
    raw(&t, 0, 1, 9, 4, 1, req_block + 5, 1);          /* CONTINUATION, END_HEADERS */
    raw(&t, 0, 5, 0xbb, 0, 0, "xxxxx", 5);             /* unknown type: ignored */
    raw(&t, 0, 8, 6, 0, 0, "pingpong", 8);             /* PING */
    raw(&t, 0, 5, 2, 0, 3, "\x00\x00\x00\x01\x10", 5); /* PRIORITY on idle 3 */
    raw(&t, 0, 0, 0, 1, 1, "", 0);                     /* empty DATA, END_STREAM */
    raw(&t, 1, 8, 6, 1, 0, "pingpong", 8);             /* PING ACK */
    raw(&t, 1, 1, 1, 4, 1, resp_block, 1);             /* HEADERS */
    padded[0] = 10;
    memcpy(padded + 1, EICAR, 68);
    memset(padded + 69, 0, 10);
    raw(&t, 1, sizeof(padded), 0, 8 | 1, 1, padded, sizeof(padded)); /* padded DATA */
    raw_run(&t, &r, &a0, &a1);
    if (r.na)
        print_anomalies("raw ok", &r);
    CHECK_EQ_INT(r.na, 0);
    CHECK(a0 && a1);
    CHECK_EQ_STR(body_of(&r, 0, 1)->authority, "a");
    CHECK_EQ_STR(body_of(&r, 0, 1)->path, "/");
    CHECK(body_is(&r, 1, 1, EICAR, 68));
    CHECK_EQ_INT(body_of(&r, 1, 1)->how, H2_END_COMPLETE);
    CHECK_EQ_INT(body_of(&r, 0, 1)->how, H2_END_COMPLETE);
    t_free(&t);
    record_free(&r);
}

static void test_preface_and_upgrade_values(void)
{
    struct record r;

    CHECK_EQ_INT(h2_preface_match((const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nxx", 26), 1);
    CHECK_EQ_INT(h2_preface_match((const uint8_t *)"PRI * HT", 8), -1);
    CHECK_EQ_INT(h2_preface_match((const uint8_t *)"", 0), -1);
    CHECK_EQ_INT(h2_preface_match((const uint8_t *)"PRI * HTTP/1.1", 14), 0);
    CHECK_EQ_INT(h2_preface_match((const uint8_t *)"GET /", 5), 0);
    memset(&r, 0, sizeof(r));
    CHECK(h2_new_upgrade(&callbacks, &r, "AAMAAABkAAQCAAAAAAIAAAAA!", 0) == NULL);
    CHECK(h2_new_upgrade(&callbacks, &r, "AAMAAA", 0) == NULL); /* not whole entries */
    struct h2_session *s = h2_new_upgrade(&callbacks, &r, "", 1);
    CHECK(s != NULL);
    h2_free(s);
    s = h2_new_upgrade(&callbacks, &r, "AAMAAABkAAQCAAAAAAIAAAAA", 0);
    CHECK(s != NULL);
    h2_free(s);
    CHECK_EQ_INT(r.na, 0);
}

int main(void)
{
    const char *srcdir = getenv("SRCDIR");

    snprintf(data_dir, sizeof(data_dir), "%s/tests/unit/data/h2",
             srcdir != NULL && *srcdir != '\0' ? srcdir : ".");
    test_captures();
    test_generated();
    test_raw_ok();
    test_bad_frames();
    test_preface_and_upgrade_values();
    CHECK_DONE();
}
