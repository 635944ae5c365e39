/*
 * Derived buffers of a whole body: what the receiving application unpacks.
 *
 * A buffer (the body, then every buffer derived from it) is examined once:
 * if its first bytes are an archive's or a compressed stream's magic number,
 * libarchive lists its members; else the Content-Type (or, for buffers with
 * none, the shape of the first line) says whether it is a multipart upload,
 * an urlencoded form or JSON. Every member, part or decoded value is handed
 * to the caller and examined in turn.
 *
 * Why magic numbers only: libarchive's "raw" format and its text formats
 * (mtree) accept nearly anything, and a web page read as an archive would be
 * a false "unreadable archive" on ordinary traffic. Raw is used only for a
 * stream that starts with a compression magic number and holds no archive
 * (a plain .gz file). Magic numbers that ordinary data can carry by chance
 * (a zip's end record near the end, an old tar header, cpio's digits) are
 * "weak": failing to read such a buffer is no problem, it was not an archive.
 *
 * Decodings follow what a receiving server gets; Python's base64, binascii
 * and email modules are the reference for base64 and quoted-printable (a
 * second base64 reading covers decoders that go on after a padding, as GNU
 * base64 does); a part is also handed over as sent, for servers that ignore
 * Content-Transfer-Encoding. JSON strings and form values are handed over only when
 * decoding changed them: an unchanged one is in the body the caller scanned.
 *
 * Bounded: bytes decompressed or decoded from one body, all levels together,
 * stay under lim->total_bytes and the ratio (a member is read to its end to
 * count it, so a bomb is found even where only its first bytes are kept);
 * each buffer is allocated once and freed when the caller's function
 * returns.
 *
 * A zip is read twice, by its central directory and by its local headers,
 * since receivers differ in which they trust (see struct zip_seen).
 * Filters that libarchive would run as external programs are not enabled.
 */
#include "extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EX_NEST_MAX     8          /* derived buffers inside derived buffers, any kind */
#define EX_JSON_LEVELS  48         /* JSON containers whose keys name a value */
#define EX_READ_FIRST   (1u << 20) /* first allocation for a member of unknown size */
#define EX_BOUNDARY_MAX 200

struct ex {
    const struct extract_limits *lim;
    extract_fn fn;
    extract_problem_fn problem;
    void *ctx;
    unsigned flags;
    uint64_t cap; /* derived bytes allowed for this body */
    const char *cap_reason;
    uint64_t used;
    unsigned members; /* archive members handed over */
    unsigned values;  /* parts and values handed over one by one */
    int stop;         /* 0 go on, 1 the caller asked, -1 a bound or memory */
};

static void examine(struct ex *x, const char *what, const uint8_t *p, size_t n, const char *ctype,
                    unsigned adepth, unsigned nest);

static void report(struct ex *x, const char *what, const char *reason)
{
    if (x->problem)
        x->problem(x->ctx, what[0] ? what : "body", reason);
}

static void stop_bound(struct ex *x, const char *what, const char *reason)
{
    report(x, what, reason);
    x->stop = -1;
}

/* --- names ----------------------------------------------------------------- */

/* Appends n bytes of s as printable ASCII, within EXTRACT_WHAT_MAX. */
static size_t put(char *out, size_t o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o + 1 < EXTRACT_WHAT_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
    return o;
}

/* "parent > kind:name suffix" */
static void what_make(char *out, const char *parent, const char *kind, const char *name,
                      size_t nname, const char *suffix)
{
    size_t o = put(out, 0, parent, strlen(parent));
    if (o)
        o = put(out, o, " > ", 3);
    o = put(out, o, kind, strlen(kind));
    o = put(out, o, ":", 1);
    o = put(out, o, name, nname);
    put(out, o, suffix, strlen(suffix));
}

static void what_append(char *out, const char *what, const char *suffix)
{
    put(out, put(out, 0, what, strlen(what)), suffix, strlen(suffix));
}

/* --- handing buffers over ---------------------------------------------------- */

static int charge(struct ex *x, const char *what, uint64_t n)
{
    if (n > x->cap - x->used) {
        stop_bound(x, what, x->cap_reason);
        return -1;
    }
    x->used += n;
    return 0;
}

/* Hands one derived buffer over (already charged), then looks inside it. */
static void emit(struct ex *x, const char *what, const uint8_t *p, size_t n, const char *ctype,
                 unsigned adepth, unsigned nest)
{
    if (x->stop || n == 0)
        return;
    if (x->fn(x->ctx, what, p, n)) {
        x->stop = 1;
        return;
    }
    examine(x, what, p, n, ctype, adepth, nest + 1);
}

/* Values past lim->max_values are joined, one per line, and handed over
 * once: each is still scanned, without one scan per value. */
struct joined {
    uint8_t *p;
    size_t len, size;
};

static void joined_add(struct ex *x, struct joined *j, const char *what, const uint8_t *p, size_t n)
{
    if (x->stop || charge(x, what, (uint64_t)n + 1))
        return;
    if (j->len + n + 1 > j->size) {
        size_t want = j->size ? j->size : 4096;
        while (want < j->len + n + 1)
            want *= 2;
        uint8_t *q = realloc(j->p, want);
        if (q == NULL) {
            stop_bound(x, what, EXTRACT_NOMEM);
            return;
        }
        j->p = q;
        j->size = want;
    }
    memcpy(j->p + j->len, p, n);
    j->len += n;
    j->p[j->len++] = '\n';
}

static void joined_end(struct ex *x, struct joined *j, const char *parent, const char *kind)
{
    char what[EXTRACT_WHAT_MAX];
    const char *name = "(values past the member limit)";

    what_make(what, parent, kind, name, strlen(name), "");
    /* Not examined further: the values were examined one by one up to the
     * limit, and a join of many is no file a receiver unpacks. */
    if (j->len && !x->stop && x->fn(x->ctx, what, j->p, j->len))
        x->stop = 1;
    free(j->p);
}

/* A decoded part or value; p may be the caller's memory. */
static void value(struct ex *x, struct joined *j, const char *what, const uint8_t *p, size_t n,
                  const char *ctype, unsigned adepth, unsigned nest)
{
    if (x->stop || n == 0)
        return;
    if (x->values >= x->lim->max_values) {
        joined_add(x, j, what, p, n);
        return;
    }
    x->values++;
    if (charge(x, what, n) == 0)
        emit(x, what, p, n, ctype, adepth, nest);
}

/* --- archives (libarchive) --------------------------------------------------- */

struct magic {
    int found;
    int strong;     /* ordinary data does not start like this */
    int compressed; /* a compression filter: may hold no archive (raw) */
};

static int has(const uint8_t *p, size_t n, size_t at, const char *m, size_t mn)
{
    return n >= at + mn && memcmp(p + at, m, mn) == 0;
}

static uint64_t octal(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(p[i] - '0');
    return v;
}

/* A tar header without the ustar magic (v7): its checksum must match. */
static int tar_v7(const uint8_t *p, size_t n)
{
    uint64_t sum = 0;
    size_t d = 148;

    if (n < 512 || p[0] == 0)
        return 0;
    while (d < 155 && p[d] == ' ')
        d++;
    if (p[d] < '0' || p[d] > '7')
        return 0;
    for (size_t i = 0; i < 512; i++)
        sum += i >= 148 && i < 156 ? ' ' : p[i];
    return sum == octal(p + 148, 8);
}

/* A zip's end-of-central-directory record in the last 64 KiB: readers find
 * the archive from the end, whatever comes before it. */
static int zip_end(const uint8_t *p, size_t n)
{
    size_t lo = n > 65557 ? n - 65557 : 0;
    for (size_t i = n >= 22 ? n - 22 + 1 : 0; i-- > lo;) {
        if (memcmp(p + i, "PK\5\6", 4) == 0) {
            size_t comment = (size_t)p[i + 20] | (size_t)p[i + 21] << 8;
            if (i + 22 + comment <= n)
                return 1;
        }
    }
    return 0;
}

static struct magic magic_of(const uint8_t *p, size_t n)
{
    struct magic m = {1, 1, 0};

    if (has(p, n, 0, "PK\3\4", 4) || has(p, n, 0, "PK\7\10PK\3\4", 8) ||
        (has(p, n, 0, "PK\5\6", 4) && n >= 22))
        return m;
    if (has(p, n, 0, "7z\274\257\047\034", 6) || has(p, n, 0, "Rar!\032\007", 6) ||
        has(p, n, 0, "!<arch>\n", 8) || has(p, n, 0, "MSCF\0\0\0\0", 8) ||
        has(p, n, 257, "ustar", 5))
        return m;
    m.compressed = 1;
    if (has(p, n, 0, "\037\213\010", 3) || has(p, n, 0, "\3757zXZ\0", 6) ||
        has(p, n, 0, "\050\265\057\375", 4) || has(p, n, 0, "\004\042\115\030", 4) ||
        has(p, n, 0, "LZIP", 4) ||
        (has(p, n, 0, "BZh", 3) && n > 3 && p[3] >= '1' && p[3] <= '9' &&
         (has(p, n, 4, "1AY&SY", 6) || has(p, n, 4, "\027\162\105\070\120\220", 6))))
        return m;
    m.strong = 0;
    if (has(p, n, 0, "\037\235", 2))
        return m;
    m.compressed = 0;
    if (tar_v7(p, n) || has(p, n, 0, "070701", 6) || has(p, n, 0, "070702", 6) ||
        has(p, n, 0, "070707", 6) || zip_end(p, n))
        return m;
    m.found = 0;
    return m;
}

/* Only filters built into libarchive: one that it would run as an external
 * program (when its library is missing) is left out. */
static void enable_filters(struct archive *a)
{
    if (archive_zlib_version())
        archive_read_support_filter_gzip(a);
    if (archive_bzlib_version())
        archive_read_support_filter_bzip2(a);
    if (archive_liblzma_version()) {
        archive_read_support_filter_xz(a);
        archive_read_support_filter_lzma(a);
        archive_read_support_filter_lzip(a);
    }
    if (archive_libzstd_version())
        archive_read_support_filter_zstd(a);
    if (archive_liblz4_version())
        archive_read_support_filter_lz4(a);
    archive_read_support_filter_compress(a);
}

enum archive_mode {
    AR_FORMATS,   /* every archive format read here */
    AR_RAW,       /* one compressed stream */
    AR_ZIP_LOCAL, /* a zip by its local headers */
};

/* Opens p. Returns 0 with *out set, 1 when libarchive cannot read it (it
 * reads the first bytes at once), -1 when out of memory. */
static int archive_open(const uint8_t *p, size_t n, enum archive_mode mode, struct archive **out)
{
    struct archive *a = archive_read_new();

    *out = NULL;
    if (a == NULL)
        return -1;
    enable_filters(a);
    if (mode == AR_RAW) {
        archive_read_support_format_raw(a);
    } else if (mode == AR_ZIP_LOCAL) {
        archive_read_support_format_zip_streamable(a);
    } else {
        archive_read_support_format_zip(a);
        archive_read_support_format_tar(a);
        archive_read_support_format_7zip(a);
        archive_read_support_format_rar(a);
        archive_read_support_format_rar5(a);
        archive_read_support_format_ar(a);
        archive_read_support_format_cpio(a);
        archive_read_support_format_cab(a);
    }
    if (archive_read_open_memory(a, p, n) != ARCHIVE_OK) {
        int nomem = archive_errno(a) == ENOMEM;
        archive_read_free(a);
        return nomem ? -1 : 1;
    }
    *out = a;
    return 0;
}

/* "tar.gz", "zip", "gz": the format, then the outermost filter. */
static void archive_kind(struct archive *a, char *out, size_t size)
{
    const char *fmt = "", *filt = "";

    switch (archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) {
    case ARCHIVE_FORMAT_ZIP:
        fmt = "zip";
        break;
    case ARCHIVE_FORMAT_TAR:
        fmt = "tar";
        break;
    case ARCHIVE_FORMAT_7ZIP:
        fmt = "7z";
        break;
    case ARCHIVE_FORMAT_RAR:
    case ARCHIVE_FORMAT_RAR_V5:
        fmt = "rar";
        break;
    case ARCHIVE_FORMAT_AR:
        fmt = "ar";
        break;
    case ARCHIVE_FORMAT_CPIO:
        fmt = "cpio";
        break;
    case ARCHIVE_FORMAT_CAB:
        fmt = "cab";
        break;
    default:
        break;
    }
    switch (archive_filter_code(a, 0)) {
    case ARCHIVE_FILTER_GZIP:
        filt = "gz";
        break;
    case ARCHIVE_FILTER_BZIP2:
        filt = "bz2";
        break;
    case ARCHIVE_FILTER_XZ:
        filt = "xz";
        break;
    case ARCHIVE_FILTER_LZMA:
        filt = "lzma";
        break;
    case ARCHIVE_FILTER_LZIP:
        filt = "lz";
        break;
    case ARCHIVE_FILTER_ZSTD:
        filt = "zst";
        break;
    case ARCHIVE_FILTER_LZ4:
        filt = "lz4";
        break;
    case ARCHIVE_FILTER_COMPRESS:
        filt = "Z";
        break;
    default:
        break;
    }
    snprintf(out, size, "%s%s%s", fmt, fmt[0] && filt[0] ? "." : "", filt);
    if (out[0] == '\0')
        snprintf(out, size, "archive");
}

/* A zip is read twice: by its central directory (as unzip, Python's zipfile
 * and Java's ZipFile do) and by its local headers (as streaming readers like
 * Java's ZipInputStream do). The two can list different files; the second
 * reading hands over only contents the first did not (by SHA-256, which an
 * attacker cannot make collide). */
struct zip_seen {
    uint8_t (*digest)[32]; /* each content of the first reading */
    size_t n, size;
    int second;
    uint64_t first_bytes; /* bytes the first reading read */
    uint64_t reread;      /* bytes of seen contents the second one read again */
};

struct member_data {
    uint8_t *buf;
    size_t len;     /* bytes kept in buf: within lim->member_bytes and the budget */
    uint64_t total; /* bytes read, all counted in the budget */
    int more;       /* the content goes on past the budget */
    int err;        /* 1 libarchive failed, 2 out of memory */
    int hashed;     /* digest holds the SHA-256 of the whole content */
    uint8_t digest[32];
};

static int md_update(EVP_MD_CTX *md, const void *p, size_t n)
{
    return md == NULL || EVP_DigestUpdate(md, p, n) == 1;
}

/* Past what is kept, the content is still read to its end within the
 * budget: counted (a decompression bomb is one), and hashed for a zip. */
static void member_rest(struct archive *a, struct member_data *d, EVP_MD_CTX *md, uint64_t room)
{
    uint8_t scratch[16384];

    for (;;) {
        size_t want =
            room - d->total < sizeof(scratch) ? (size_t)(room - d->total) : sizeof(scratch);
        la_ssize_t r = archive_read_data(a, scratch, want ? want : 1);
        if (r < 0)
            d->err = 1;
        if (r <= 0)
            return;
        if (want == 0) {
            d->more = 1;
            d->hashed = 0;
            return;
        }
        d->total += (uint64_t)r;
        if (!md_update(md, scratch, (size_t)r))
            d->hashed = 0;
    }
}

/* Reads the current member's data, keeping its first lim->member_bytes. */
static void member_read(struct ex *x, struct archive *a, struct archive_entry *e,
                        struct member_data *d, EVP_MD_CTX *md, uint64_t extra)
{
    uint64_t room = x->cap - x->used + extra, keep = room;
    size_t size = EX_READ_FIRST;

    memset(d, 0, sizeof(*d));
    d->hashed = md != NULL;
    if (x->lim->member_bytes && x->lim->member_bytes < keep)
        keep = x->lim->member_bytes;
    if (archive_entry_size_is_set(e) && archive_entry_size(e) >= 0 &&
        (uint64_t)archive_entry_size(e) < size)
        size = (size_t)archive_entry_size(e);
    size = size < keep ? size : (size_t)keep;
    if (size && (d->buf = malloc(size)) == NULL) {
        d->err = 2;
        d->hashed = 0;
        return;
    }
    for (;;) {
        if (d->len == size && size < keep) {
            size_t want = size ? (size * 2 < keep ? size * 2 : (size_t)keep) : 4096;
            want = want < keep ? want : (size_t)keep;
            uint8_t *q = realloc(d->buf, want);
            if (q == NULL) {
                d->err = 2;
                d->hashed = 0;
                return;
            }
            d->buf = q;
            size = want;
        }
        if (d->len == size) {
            member_rest(a, d, md, room);
            break;
        }
        la_ssize_t r = archive_read_data(a, d->buf + d->len, size - d->len);
        if (r == 0)
            break;
        if (r < 0) {
            d->err = 1;
            break;
        }
        if (!md_update(md, d->buf + d->len, (size_t)r))
            d->hashed = 0;
        d->len += (size_t)r;
        d->total += (uint64_t)r;
    }
    unsigned dl = 0;
    if (d->hashed && (d->err || EVP_DigestFinal_ex(md, d->digest, &dl) != 1 || dl != 32))
        d->hashed = 0;
}

static int zip_seen_has(const struct zip_seen *zs, const uint8_t *digest)
{
    for (size_t i = 0; i < zs->n; i++)
        if (memcmp(zs->digest[i], digest, 32) == 0)
            return 1;
    return 0;
}

/* The first reading records each content; the second answers whether a
 * content was seen (then it is not handed over again). */
static int zip_seen(struct zip_seen *zs, const struct member_data *d)
{
    if (zs == NULL || !d->hashed)
        return 0;
    if (zs->second)
        return zip_seen_has(zs, d->digest);
    if (zs->n == zs->size) {
        size_t want = zs->size ? zs->size * 2 : 16;
        void *q = realloc(zs->digest, want * sizeof(*zs->digest));
        if (q == NULL)
            return 0; /* then handed over twice: harmless */
        zs->digest = q;
        zs->size = want;
    }
    memcpy(zs->digest[zs->n++], d->digest, 32);
    return 0;
}

static void member_problem(struct ex *x, struct archive_entry *e, const char *mwhat,
                           const struct member_data *d, int second)
{
    if (d->err == 2)
        stop_bound(x, mwhat, EXTRACT_NOMEM);
    else if (d->err && !second && archive_entry_is_data_encrypted(e))
        report(x, mwhat, EXTRACT_ENCRYPTED);
    else if (d->err && !second && !(x->flags & EXTRACT_TRUNCATED))
        report(x, mwhat, EXTRACT_CORRUPT);
}

static void member_name(struct archive_entry *e, const char *what, const char *kind, char *mwhat)
{
    const char *name = archive_entry_pathname(e);

    if (name == NULL)
        name = archive_entry_pathname_utf8(e);
    if (name == NULL)
        name = "(unnamed)";
    what_make(mwhat, what, kind, name, strlen(name), "");
}

/* One member. The second reading of a zip is lenient: what it cannot read,
 * or finds encrypted, is not reported (the first reading reported what it
 * found). */
static void member(struct ex *x, struct archive *a, struct archive_entry *e, const char *what,
                   const char *kind, unsigned adepth, unsigned nest, struct zip_seen *zs)
{
    char mwhat[EXTRACT_WHAT_MAX];
    int second = zs && zs->second;
    struct member_data d;
    EVP_MD_CTX *md = NULL;

    member_name(e, what, kind, mwhat);
    if (archive_entry_is_encrypted(e)) {
        if (!second)
            report(x, mwhat, EXTRACT_ENCRYPTED);
        return;
    }
    if (zs && ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)) {
        EVP_MD_CTX_free(md);
        md = NULL;
    }
    /* The second reading may read again what the first read, no more. */
    member_read(x, a, e, &d, md, second ? zs->first_bytes - zs->reread : 0);
    EVP_MD_CTX_free(md);
    if (second && (zip_seen(zs, &d) || d.total == 0)) {
        zs->reread += d.total;
        free(d.buf);
        return;
    }
    zip_seen(zs, &d);
    if (d.total > x->cap - x->used) {
        /* Only a second reading reads past the budget: keep within it. */
        d.total = x->cap - x->used;
        d.len = d.len < d.total ? d.len : (size_t)d.total;
        d.more = 1;
    }
    if (++x->members > x->lim->max_members) {
        free(d.buf);
        stop_bound(x, what, EXTRACT_MEMBERS);
        return;
    }
    x->used += d.total;
    member_problem(x, e, mwhat, &d, second);
    /* A member longer than lim->member_bytes is scanned on its first bytes,
     * like a long body. */
    if (d.total > d.len && !d.more && !d.err)
        what_append(mwhat, mwhat, " (cut)");
    /* What was read before a bound or an error is what a receiver gets
     * first: scan it too. */
    int stop = x->stop;
    x->stop = 0;
    emit(x, mwhat, d.buf, d.len, NULL, adepth + 1, nest);
    x->stop = x->stop ? x->stop : stop;
    free(d.buf);
    if (d.more && !x->stop)
        stop_bound(x, mwhat, x->cap_reason);
}

/* A compressed stream that holds no archive: its content is one buffer. */
static void raw_stream(struct ex *x, const char *what, const uint8_t *p, size_t n, unsigned adepth,
                       unsigned nest)
{
    struct archive *a;
    struct archive_entry *e;
    char kind[24];
    int r = archive_open(p, n, AR_RAW, &a);

    if (r < 0) {
        stop_bound(x, what, EXTRACT_NOMEM);
        return;
    }
    if (r > 0 || archive_read_next_header(a, &e) != ARCHIVE_OK) {
        if (!(x->flags & EXTRACT_TRUNCATED))
            report(x, what, EXTRACT_CORRUPT);
    } else {
        archive_kind(a, kind, sizeof(kind));
        /* The raw format names its one entry "data"; the stream has none. */
        archive_entry_set_pathname(e, "");
        member(x, a, e, what, kind, adepth, nest, NULL);
    }
    if (a)
        archive_read_free(a);
}

/* An unreadable start: a weak magic number was no archive; a compressed
 * stream may hold a plain file; else the archive is reported. */
static void archive_unreadable(struct ex *x, const char *what, const uint8_t *p, size_t n,
                               struct magic m, unsigned adepth, unsigned nest)
{
    if (m.compressed)
        raw_stream(x, what, p, n, adepth, nest);
    else if (m.strong && !(x->flags & EXTRACT_TRUNCATED))
        report(x, what, EXTRACT_CORRUPT);
}

/* One reading of an archive; zs is set for a zip's two readings. */
static void archive_pass(struct ex *x, const char *what, const uint8_t *p, size_t n, struct magic m,
                         unsigned adepth, unsigned nest, struct zip_seen *zs)
{
    int second = zs && zs->second, first = 1;
    struct archive *a;
    struct archive_entry *e;
    char kind[24] = "zip(local headers)";
    int r = archive_open(p, n, second ? AR_ZIP_LOCAL : AR_FORMATS, &a);

    if (r) {
        if (r < 0)
            stop_bound(x, what, EXTRACT_NOMEM);
        else if (!second)
            archive_unreadable(x, what, p, n, m, adepth, nest);
        return;
    }
    while (!x->stop) {
        r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            if (first && !second) {
                archive_read_free(a);
                archive_unreadable(x, what, p, n, m, adepth, nest);
                return;
            }
            if (!second && !(x->flags & EXTRACT_TRUNCATED))
                report(x, what, EXTRACT_CORRUPT);
            break;
        }
        if (first && !second)
            archive_kind(a, kind, sizeof(kind));
        first = 0;
        if (archive_entry_filetype(e) == AE_IFREG)
            member(x, a, e, what, kind, adepth, nest, zs);
    }
    archive_read_free(a);
}

static void archive_members(struct ex *x, const char *what, const uint8_t *p, size_t n,
                            struct magic m, unsigned adepth, unsigned nest)
{
    struct zip_seen zs = {0};

    if (!has(p, n, 0, "PK\3\4", 4)) {
        archive_pass(x, what, p, n, m, adepth, nest, NULL);
        return;
    }
    uint64_t before = x->used;
    archive_pass(x, what, p, n, m, adepth, nest, &zs);
    zs.second = 1;
    zs.first_bytes = x->used - before;
    if (!x->stop)
        archive_pass(x, what, p, n, m, adepth, nest, &zs);
    free(zs.digest);
}

/* --- multipart --------------------------------------------------------------- */

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* The end of the line at i: *next is past its CRLF, LF or CR. */
static size_t line_end(const uint8_t *p, size_t n, size_t i, size_t *next)
{
    while (i < n && p[i] != '\n' && p[i] != '\r')
        i++;
    *next = i;
    if (*next < n && p[*next] == '\r')
        (*next)++;
    if (*next < n && p[*next] == '\n' && (*next == i || p[*next - 1] == '\r'))
        (*next)++;
    return i;
}

/* A delimiter line at i: "--" boundary, "--" if it closes, blanks, end of
 * line (as Python's email parser matches it). */
static int delimiter_at(const uint8_t *p, size_t n, size_t i, const char *b, size_t bl,
                        size_t *next, int *close)
{
    size_t k = i + 2 + bl, next_line;

    if (i > 0 && p[i - 1] != '\n' && p[i - 1] != '\r')
        return 0;
    if (n - i < 2 + bl || p[i] != '-' || p[i + 1] != '-' || memcmp(p + i + 2, b, bl) != 0)
        return 0;
    *close = n - k >= 2 && p[k] == '-' && p[k + 1] == '-';
    if (*close)
        k += 2;
    while (k < n && is_space(p[k]))
        k++;
    if (line_end(p, n, k, &next_line) != k)
        return 0;
    *next = next_line;
    return 1;
}

static int find_delimiter(const uint8_t *p, size_t n, size_t from, const char *b, size_t bl,
                          size_t *at, size_t *next, int *close)
{
    while (from + 2 + bl <= n) {
        const uint8_t *q = memchr(p + from, '-', n - from);
        if (q == NULL)
            return 0;
        size_t i = (size_t)(q - p);
        if (delimiter_at(p, n, i, b, bl, next, close)) {
            *at = i;
            return 1;
        }
        from = i + 1;
    }
    return 0;
}

/* The value of parameter name in a header value, unquoted, into out. */
static int header_param(const char *v, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);

    for (const char *s = strchr(v, ';'); s; s = strchr(s + 1, ';')) {
        const char *q = s + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncasecmp(q, name, nl) != 0)
            continue;
        q += nl;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q++ != '=')
            continue;
        while (*q == ' ' || *q == '\t')
            q++;
        size_t o = 0;
        if (*q == '"') {
            for (q++; *q && *q != '"'; q++) {
                if (*q == '\\' && q[1])
                    q++;
                if (o + 1 < size)
                    out[o++] = *q;
            }
        } else {
            for (; *q && *q != ';' && *q != ' ' && *q != '\t'; q++)
                if (o + 1 < size)
                    out[o++] = *q;
        }
        out[o] = '\0';
        return o > 0;
    }
    return 0;
}

static int media_is(const char *ctype, const char *prefix)
{
    if (ctype == NULL)
        return 0;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    return strncasecmp(ctype, prefix, strlen(prefix)) == 0;
}

/* The boundary of a multipart buffer: from its Content-Type, else from a
 * first line "--token" that comes back. */
static size_t multipart_boundary(const char *ctype, const uint8_t *p, size_t n, char *b)
{
    size_t bl, k, next, at;
    int close;

    if (!media_is(ctype, "multipart/") && ctype)
        return 0;
    /* The boundary given, unless the body has none of it (a Content-Type cut
     * short on the way, say): then the first line's. */
    if (header_param(ctype ? ctype : "", "boundary", b, EX_BOUNDARY_MAX + 1) &&
        find_delimiter(p, n, 0, b, strlen(b), &at, &next, &close))
        return strlen(b);
    if (n < 4 || p[0] != '-' || p[1] != '-')
        return 0;
    k = line_end(p, n, 2, &next);
    while (k > 2 && is_space(p[k - 1]))
        k--;
    bl = k - 2;
    if (bl == 0 || bl > EX_BOUNDARY_MAX || memchr(p + 2, 0, bl))
        return 0;
    memcpy(b, p + 2, bl);
    b[bl] = '\0';
    return find_delimiter(p, n, next, b, bl, &at, &k, &close) ? bl : 0;
}

struct part_head {
    char cte[32];
    char ctype[256];
    char disposition[256];
    size_t body; /* offset of the content in the part */
};

static void copy_value(char *out, size_t size, const uint8_t *v, size_t n)
{
    size_t o = 0;
    while (n && is_space(v[0]))
        v++, n--;
    while (n && is_space(v[n - 1]))
        n--;
    for (size_t i = 0; i < n && o + 1 < size; i++)
        out[o++] = v[i] ? (char)v[i] : ' ';
    out[o] = '\0';
}

/* Header lines up to an empty line; a line that is no header starts the
 * content, as in Python's email parser. Folded lines are not joined: only
 * the first line of each header is read. */
static void part_headers(const uint8_t *p, size_t n, struct part_head *h)
{
    size_t i = 0, next;

    memset(h, 0, sizeof(*h));
    while (i < n) {
        size_t end = line_end(p, n, i, &next);
        if (end == i) {
            h->body = next;
            return;
        }
        const uint8_t *colon = memchr(p + i, ':', end - i);
        if (!is_space(p[i]) && (colon == NULL || memchr(p + i, ' ', (size_t)(colon - p) - i))) {
            h->body = i;
            return;
        }
        if (colon && !is_space(p[i])) {
            size_t nl = (size_t)(colon - p) - i, vo = (size_t)(colon - p) + 1;
            const char *name = (const char *)p + i;
            if (nl == 25 && strncasecmp(name, "content-transfer-encoding", nl) == 0)
                copy_value(h->cte, sizeof(h->cte), p + vo, end - vo);
            else if (nl == 12 && strncasecmp(name, "content-type", nl) == 0)
                copy_value(h->ctype, sizeof(h->ctype), p + vo, end - vo);
            else if (nl == 19 && strncasecmp(name, "content-disposition", nl) == 0)
                copy_value(h->disposition, sizeof(h->disposition), p + vo, end - vo);
        }
        i = next;
    }
    h->body = n;
}

static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Base64 as Python's email module decodes a part (binascii.a2b_base64 with
 * its fallbacks): other bytes are skipped, '=' ends the data once it
 * completes a quantum, a last incomplete quantum gives the bytes it holds,
 * and when one lone character is left over the part is kept as sent, less
 * its line breaks. With blocks, decoding starts again after each padding
 * (GNU base64 -d reads "YQ==YQ==" as "aa"; Python, Node and Perl as "a") and
 * nothing is kept as sent. out holds at least n bytes. */
static size_t base64_decode(const uint8_t *in, size_t n, uint8_t *out, int blocks)
{
    unsigned quad = 0, pads = 0, acc = 0;
    size_t o = 0;
    int ended = 0;

    for (size_t i = 0; i < n && !ended; i++) {
        if (in[i] == '=') {
            ended = quad >= 2 && quad + ++pads >= 4;
            if (ended && blocks)
                ended = 0, quad = 0, pads = 0;
            continue;
        }
        int v = b64_value(in[i]);
        if (v < 0)
            continue;
        pads = 0;
        switch (quad) {
        case 0:
            acc = (unsigned)v;
            break;
        case 1:
            out[o++] = (uint8_t)(acc << 2 | (unsigned)v >> 4), acc = (unsigned)v & 0xf;
            break;
        case 2:
            out[o++] = (uint8_t)(acc << 4 | (unsigned)v >> 2), acc = (unsigned)v & 3;
            break;
        default:
            out[o++] = (uint8_t)(acc << 6 | (unsigned)v);
            break;
        }
        quad = (quad + 1) & 3;
    }
    if (quad == 1 && !blocks && !ended) {
        o = 0;
        for (size_t i = 0; i < n; i++)
            if (in[i] != '\r' && in[i] != '\n')
                out[o++] = in[i];
    }
    return o;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* binascii.a2b_qp, as Python's quopri and email modules decode. */
static size_t qp_decode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;

    while (i < n) {
        if (in[i] != '=') {
            out[o++] = in[i++];
            continue;
        }
        if (++i >= n)
            break;
        if (in[i] == '\n' || in[i] == '\r') {
            while (in[i] != '\n' && i + 1 < n)
                i++;
            i++;
        } else if (in[i] == '=') {
            out[o++] = '=';
            i++;
        } else if (i + 1 < n && hex_value(in[i]) >= 0 && hex_value(in[i + 1]) >= 0) {
            out[o++] = (uint8_t)(hex_value(in[i]) << 4 | hex_value(in[i + 1]));
            i += 2;
        } else {
            out[o++] = '=';
        }
    }
    return o;
}

static void part_decoded(struct ex *x, struct joined *j, const char *what, const uint8_t *p,
                         size_t n, const struct part_head *h, unsigned adepth, unsigned nest)
{
    int b64 = strcasecmp(h->cte, "base64") == 0, qp = strcasecmp(h->cte, "quoted-printable") == 0;
    char dwhat[EXTRACT_WHAT_MAX];

    if (!b64 && !qp)
        return;
    uint8_t *buf = malloc(n ? 2 * n : 1);
    if (buf == NULL) {
        stop_bound(x, what, EXTRACT_NOMEM);
        return;
    }
    size_t len = b64 ? base64_decode(p, n, buf, 0) : qp_decode(p, n, buf);
    what_append(dwhat, what, b64 ? "(base64)" : "(quoted-printable)");
    value(x, j, dwhat, buf, len, h->ctype[0] ? h->ctype : NULL, adepth, nest);
    if (b64 && !x->stop) {
        /* Where decoders disagree on data after a padding, each reading. */
        size_t len2 = base64_decode(p, n, buf + n, 1);
        what_append(dwhat, what, "(base64 blocks)");
        if (len2 != len || memcmp(buf, buf + n, len) != 0)
            value(x, j, dwhat, buf + n, len2, h->ctype[0] ? h->ctype : NULL, adepth, nest);
    }
    free(buf);
}

static void one_part(struct ex *x, struct joined *j, const char *what, const uint8_t *p, size_t n,
                     unsigned index, unsigned adepth, unsigned nest)
{
    struct part_head h;
    char name[128], pwhat[EXTRACT_WHAT_MAX];

    part_headers(p, n, &h);
    if (!header_param(h.disposition, "filename", name, sizeof(name)) &&
        !header_param(h.disposition, "name", name, sizeof(name)))
        snprintf(name, sizeof(name), "part%u", index);
    what_make(pwhat, what, "multipart", name, strlen(name), "");
    /* The part as sent: servers that ignore Content-Transfer-Encoding (it is
     * deprecated for form-data) store these bytes. */
    value(x, j, pwhat, p + h.body, n - h.body, h.ctype[0] ? h.ctype : NULL, adepth, nest);
    part_decoded(x, j, pwhat, p + h.body, n - h.body, &h, adepth, nest);
}

static void multipart(struct ex *x, const char *what, const uint8_t *p, size_t n, const char *b,
                      unsigned adepth, unsigned nest)
{
    size_t bl = strlen(b), at, start, next, end;
    struct joined j = {0};
    int close = 0;
    unsigned index = 0;

    if (!find_delimiter(p, n, 0, b, bl, &at, &start, &close))
        return;
    while (!close && !x->stop) {
        if (!find_delimiter(p, n, start, b, bl, &at, &next, &close)) {
            /* No closing delimiter (a cut body): the rest is the part. */
            one_part(x, &j, what, p + start, n - start, index, adepth, nest);
            break;
        }
        /* The line break before a delimiter belongs to it. */
        end = at;
        if (end > start && p[end - 1] == '\n')
            end--;
        if (end > start && p[end - 1] == '\r')
            end--;
        one_part(x, &j, what, p + start, end - start, index++, adepth, nest);
        start = next;
    }
    joined_end(x, &j, what, "multipart");
}

/* --- urlencoded forms ---------------------------------------------------------- */

/* urllib.parse.unquote_plus on bytes: '+' is a space, %XX a byte, any other
 * '%' itself. Returns 1 when the value changed. */
static int percent_decode(const uint8_t *in, size_t n, uint8_t *out, size_t *len)
{
    size_t o = 0;
    int changed = 0;

    for (size_t i = 0; i < n; i++) {
        if (in[i] == '+') {
            out[o++] = ' ';
            changed = 1;
        } else if (in[i] == '%' && i + 2 < n && hex_value(in[i + 1]) >= 0 &&
                   hex_value(in[i + 2]) >= 0) {
            out[o++] = (uint8_t)(hex_value(in[i + 1]) << 4 | hex_value(in[i + 2]));
            i += 2;
            changed = 1;
        } else {
            out[o++] = in[i];
        }
    }
    *len = o;
    return changed;
}

static void form(struct ex *x, const char *what, const uint8_t *p, size_t n, unsigned adepth,
                 unsigned nest)
{
    struct joined j = {0};
    uint8_t *buf = malloc(n ? n : 1);
    char vwhat[EXTRACT_WHAT_MAX], name[128];

    if (buf == NULL) {
        stop_bound(x, what, EXTRACT_NOMEM);
        return;
    }
    for (size_t i = 0; i < n && !x->stop;) {
        const uint8_t *amp = memchr(p + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - p) : n, len;
        const uint8_t *eq = memchr(p + i, '=', end - i);
        if (eq) {
            size_t nl = (size_t)(eq - p) - i, vo = (size_t)(eq - p) + 1;
            percent_decode(p + i, nl, buf, &len);
            copy_value(name, sizeof(name), buf, len);
            what_make(vwhat, what, "form", name, strlen(name), "");
            if (percent_decode(p + vo, end - vo, buf, &len))
                value(x, &j, vwhat, buf, len, NULL, adepth, nest);
        }
        i = end + 1;
    }
    free(buf);
    joined_end(x, &j, what, "form");
}

/* --- JSON ------------------------------------------------------------------------ */

static size_t utf8_put(uint8_t *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (uint8_t)(0xc0 | c >> 6);
        out[1] = (uint8_t)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xe0 | c >> 12);
        out[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
        out[2] = (uint8_t)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | c >> 18);
    out[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
    out[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
    out[3] = (uint8_t)(0x80 | (c & 0x3f));
    return 4;
}

static int hex4(const uint8_t *p, size_t n, size_t i, uint32_t *v)
{
    *v = 0;
    if (i + 4 > n)
        return 0;
    for (size_t k = i; k < i + 4; k++) {
        int h = hex_value(p[k]);
        if (h < 0)
            return 0;
        *v = *v << 4 | (uint32_t)h;
    }
    return 1;
}

/* The string whose content is p[0..n) (between the quotes), decoded as
 * json.loads does, surrogate pairs joined and a lone surrogate kept as its
 * three bytes; an unknown escape is kept as written. out holds n bytes. */
static size_t json_unescape(const uint8_t *p, size_t n, uint8_t *out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        const char *e;
        uint32_t c, lo;
        if (p[i] != '\\' || i + 1 >= n) {
            out[o++] = p[i];
        } else if (p[i + 1] != 'u' && (e = memchr(from, p[i + 1], sizeof(from) - 1)) != NULL) {
            out[o++] = (uint8_t)to[e - from];
            i++;
        } else if (p[i + 1] == 'u' && hex4(p, n, i + 2, &c)) {
            i += 5;
            if (c >= 0xd800 && c < 0xdc00 && i + 6 < n && p[i + 1] == '\\' && p[i + 2] == 'u' &&
                hex4(p, n, i + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            o += utf8_put(out + o, c);
        } else {
            out[o++] = p[i];
        }
    }
    return o;
}

struct json_level {
    size_t base; /* path length where this container's members are named */
    unsigned index;
    int object, want_key;
};

struct json_walk {
    struct json_level level[EX_JSON_LEVELS];
    int depth;     /* levels in use */
    unsigned over; /* levels deeper than the array holds */
    char path[EXTRACT_WHAT_MAX];
    size_t plen;
};

static void json_name_index(struct json_walk *w)
{
    struct json_level *l = &w->level[w->depth - 1];
    char idx[24];
    snprintf(idx, sizeof(idx), "[%u]", l->index);
    w->plen = put(w->path, l->base, idx, strlen(idx));
}

static void json_open(struct json_walk *w, int object)
{
    if (w->depth == EX_JSON_LEVELS) {
        w->over++;
        return;
    }
    struct json_level *l = &w->level[w->depth++];
    l->base = w->plen;
    l->index = 0;
    l->object = object;
    l->want_key = object;
    if (!object)
        json_name_index(w);
}

static void json_punct(struct json_walk *w, uint8_t c)
{
    if (c == '{' || c == '[') {
        json_open(w, c == '{');
        return;
    }
    if (w->over) {
        w->over -= c == '}' || c == ']';
        return;
    }
    if (w->depth == 0)
        return;
    struct json_level *l = &w->level[w->depth - 1];
    if (c == '}' || c == ']') {
        w->plen = l->base;
        w->path[w->plen] = '\0';
        w->depth--;
    } else if (c == ',' && l->object) {
        l->want_key = 1;
    } else if (c == ',') {
        l->index++;
        json_name_index(w);
    } else if (c == ':') {
        l->want_key = 0;
    }
}

/* One string at p[i] == '"'; returns the index past its closing quote, or n
 * when it does not close. */
static size_t json_string(struct ex *x, struct json_walk *w, struct joined *j, const char *what,
                          const uint8_t *p, size_t n, size_t i, uint8_t *buf, unsigned adepth,
                          unsigned nest)
{
    size_t s = i + 1, k = s;
    int escaped = 0;
    char vwhat[EXTRACT_WHAT_MAX];

    while (k < n && p[k] != '"') {
        if (p[k] == '\\') {
            escaped = 1;
            k++;
        }
        k++;
    }
    if (k >= n)
        return n;
    struct json_level *l = w->depth && !w->over ? &w->level[w->depth - 1] : NULL;
    size_t len = escaped ? json_unescape(p + s, k - s, buf) : k - s;
    if (l && l->object && l->want_key) {
        w->plen = put(w->path, l->base, ".", 1);
        w->plen = put(w->path, w->plen, escaped ? (const char *)buf : (const char *)p + s, len);
    } else if (escaped) {
        what_make(vwhat, what, "json", w->path, w->plen, "");
        value(x, j, vwhat, buf, len, NULL, adepth, nest);
    }
    return k + 1;
}

static void json(struct ex *x, const char *what, const uint8_t *p, size_t n, unsigned adepth,
                 unsigned nest)
{
    struct json_walk *w = calloc(1, sizeof(*w));
    uint8_t *buf = malloc(n ? n : 1);
    struct joined j = {0};

    if (w == NULL || buf == NULL) {
        free(w);
        free(buf);
        stop_bound(x, what, EXTRACT_NOMEM);
        return;
    }
    w->plen = put(w->path, 0, "$", 1);
    for (size_t i = 0; i < n && !x->stop;) {
        if (p[i] == '"')
            i = json_string(x, w, &j, what, p, n, i, buf, adepth, nest);
        else
            json_punct(w, p[i++]);
    }
    free(buf);
    free(w);
    joined_end(x, &j, what, "json");
}

/* JSON by its type (application/json, anything +json) or by its first
 * character after blanks and a byte order mark. */
static int is_json(const char *ctype, const uint8_t *p, size_t n)
{
    size_t i = 0;

    if (ctype) {
        char media[128];
        size_t k = 0;
        while (*ctype == ' ' || *ctype == '\t')
            ctype++;
        while (ctype[k] && ctype[k] != ';' && ctype[k] != ' ' && k + 1 < sizeof(media)) {
            media[k] = ctype[k];
            k++;
        }
        media[k] = '\0';
        if (strcasecmp(media, "application/json") == 0 ||
            (k >= 5 && strcasecmp(media + k - 5, "+json") == 0))
            return 1;
    }
    if (has(p, n, 0, "\357\273\277", 3))
        i = 3;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i < n && (p[i] == '{' || p[i] == '[');
}

/* --- one buffer ------------------------------------------------------------------- */

static void examine(struct ex *x, const char *what, const uint8_t *p, size_t n, const char *ctype,
                    unsigned adepth, unsigned nest)
{
    char boundary[EX_BOUNDARY_MAX + 1];
    struct magic m;

    if (x->stop || n == 0)
        return;
    m = magic_of(p, n);
    if (m.found) {
        if (adepth < x->lim->depth && nest <= EX_NEST_MAX)
            archive_members(x, what, p, n, m, adepth, nest);
        else if (m.strong)
            report(x, what, EXTRACT_DEPTH);
        /* A weak magic number may be chance: the body is read as what its
         * type says too. */
        if (m.strong)
            return;
    }
    if (nest > EX_NEST_MAX)
        return;
    if (multipart_boundary(ctype, p, n, boundary))
        multipart(x, what, p, n, boundary, adepth, nest);
    else if (media_is(ctype, "application/x-www-form-urlencoded"))
        form(x, what, p, n, adepth, nest);
    else if (is_json(ctype, p, n))
        json(x, what, p, n, adepth, nest);
}

int extract_body(const uint8_t *body, size_t len, const char *content_type, unsigned flags,
                 const struct extract_limits *lim, extract_fn fn, extract_problem_fn problem,
                 void *ctx)
{
    struct ex x = {.lim = lim, .fn = fn, .problem = problem, .ctx = ctx, .flags = flags};

    x.cap = lim->total_bytes;
    x.cap_reason = EXTRACT_BYTES;
    if (lim->max_ratio) {
        uint64_t r =
            len > UINT64_MAX / lim->max_ratio ? UINT64_MAX : (uint64_t)len * lim->max_ratio;
        r = r > lim->ratio_after ? r : lim->ratio_after;
        if (r < x.cap) {
            x.cap = r;
            x.cap_reason = EXTRACT_RATIO;
        }
    }
    examine(&x, "", body, len, content_type, 0, 0);
    return x.stop;
}
