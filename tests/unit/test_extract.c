/*
 * Unit tests for dpi/extract.c: the EICAR file must come out whole from every
 * archive and upload encoding a receiver unpacks, bounds and unreadable
 * archives must be reported, and ordinary bodies must give nothing at all.
 * Archives are written here with libarchive's write API.
 */
#include "check.h"
#include "extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>

/* Built at run time so that this file is not itself an EICAR file. */
static char eicar[69];

static void make_eicar(void)
{
    static const char rev[] =
        "*H+H$!ELIF-TSET-SURIVITNA-DRADNATS-RACIE$}7)CC7)^P(45XZP\\4[PA@%P!O5X";
    for (size_t i = 0; i < 68; i++)
        eicar[i] = rev[67 - i];
    eicar[68] = '\0';
}

struct seen {
    int buffers, problems, found; /* found: buffers equal to EICAR */
    int contains;                 /* buffers holding EICAR */
    size_t last_len;
    char last_what[EXTRACT_WHAT_MAX];
    char found_what[EXTRACT_WHAT_MAX];
    char last_problem[64];
    char problem_what[EXTRACT_WHAT_MAX];
    int stop_after; /* stop after this many buffers; 0: never */
};

static int on_buffer(void *ctx, const char *what, const uint8_t *p, size_t n)
{
    struct seen *s = ctx;
    s->buffers++;
    s->contains += memmem(p, n, eicar, 68) != NULL;
    s->last_len = n;
    snprintf(s->last_what, sizeof(s->last_what), "%s", what);
    if (n == 68 && memcmp(p, eicar, 68) == 0) {
        s->found++;
        snprintf(s->found_what, sizeof(s->found_what), "%s", what);
    }
    return s->stop_after && s->buffers >= s->stop_after;
}

static void on_problem(void *ctx, const char *what, const char *reason)
{
    struct seen *s = ctx;
    s->problems++;
    snprintf(s->last_problem, sizeof(s->last_problem), "%s", reason);
    snprintf(s->problem_what, sizeof(s->problem_what), "%s", what);
}

static const struct extract_limits default_limits = {.depth = 3,
                                                     .total_bytes = 64u << 20,
                                                     .max_ratio = 100,
                                                     .ratio_after = 16u << 20,
                                                     .member_bytes = 16u << 20,
                                                     .max_members = 1000,
                                                     .max_values = 100};

static int run(const void *body, size_t len, const char *ctype, const struct extract_limits *lim,
               struct seen *s)
{
    memset(s, 0, sizeof(*s));
    return extract_body(body, len, ctype, 0, lim ? lim : &default_limits, on_buffer, on_problem, s);
}

/* --- archives written with libarchive ------------------------------------------ */

struct member {
    const char *name;
    const void *data;
    size_t len;
};

enum fmt { F_ZIP, F_ZIP_STORED, F_ZIP_CRYPT, F_TAR, F_TAR_GZ, F_TAR_BZ2, F_TAR_XZ, F_GZ, F_7Z };

static uint8_t *make_archive(enum fmt f, const struct member *m, int nm, size_t *out_len)
{
    struct archive *a = archive_write_new();
    size_t size = 1 << 20, used = 0;
    uint8_t *buf = malloc(size);
    int ok = 1;

    for (int i = 0; i < nm; i++)
        size += m[i].len + 4096;
    buf = realloc(buf, size);
    switch (f) {
    case F_ZIP:
    case F_ZIP_STORED:
    case F_ZIP_CRYPT:
        ok &= archive_write_set_format_zip(a) == ARCHIVE_OK;
        if (f == F_ZIP_STORED)
            ok &= archive_write_set_options(a, "zip:compression=store") == ARCHIVE_OK;
        if (f == F_ZIP_CRYPT) {
            ok &= archive_write_set_options(a, "zip:encryption=zipcrypt") == ARCHIVE_OK;
            ok &= archive_write_set_passphrase(a, "secret") == ARCHIVE_OK;
        }
        break;
    case F_7Z:
        ok &= archive_write_set_format_7zip(a) == ARCHIVE_OK;
        break;
    case F_GZ:
        ok &= archive_write_set_format_raw(a) == ARCHIVE_OK;
        ok &= archive_write_add_filter_gzip(a) == ARCHIVE_OK;
        break;
    default:
        ok &= archive_write_set_format_pax_restricted(a) == ARCHIVE_OK;
        if (f == F_TAR_GZ)
            ok &= archive_write_add_filter_gzip(a) == ARCHIVE_OK;
        if (f == F_TAR_BZ2)
            ok &= archive_write_add_filter_bzip2(a) == ARCHIVE_OK;
        if (f == F_TAR_XZ)
            ok &= archive_write_add_filter_xz(a) == ARCHIVE_OK;
        break;
    }
    ok &= archive_write_open_memory(a, buf, size, &used) == ARCHIVE_OK;
    for (int i = 0; i < nm && ok; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)m[i].len);
        ok &= archive_write_header(a, e) == ARCHIVE_OK;
        ok &= archive_write_data(a, m[i].data, m[i].len) == (la_ssize_t)m[i].len;
        archive_entry_free(e);
    }
    ok &= archive_write_close(a) == ARCHIVE_OK;
    archive_write_free(a);
    CHECK(ok);
    *out_len = used;
    return buf;
}

static uint8_t *eicar_archive(enum fmt f, size_t *len)
{
    struct member m[] = {{"readme.txt", "hello\n", 6}, {"dir/eicar.com", eicar, 68}};
    return make_archive(f, f == F_GZ ? m + 1 : m, f == F_GZ ? 1 : 2, len);
}

static void test_archive_formats(void)
{
    static const struct {
        enum fmt f;
        const char *what;
    } cases[] = {
        {F_ZIP, "zip:dir/eicar.com"},
        {F_ZIP_STORED, "zip:dir/eicar.com"},
        {F_TAR, "tar:dir/eicar.com"},
        {F_TAR_GZ, "tar.gz:dir/eicar.com"},
        {F_TAR_BZ2, "tar.bz2:dir/eicar.com"},
        {F_TAR_XZ, "tar.xz:dir/eicar.com"},
        {F_GZ, "gz:"},
        {F_7Z, "7z:dir/eicar.com"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct seen s;
        size_t len;
        uint8_t *a = eicar_archive(cases[i].f, &len);
        /* The Content-Type must not matter: detection is by content. */
        CHECK_EQ_INT(run(a, len, i % 2 ? "text/html" : NULL, NULL, &s), 0);
        CHECK_EQ_INT(s.found, 1);
        CHECK_EQ_STR(s.found_what, cases[i].what);
        CHECK_EQ_INT(s.problems, 0);
        CHECK_EQ_INT(s.buffers, cases[i].f == F_GZ ? 1 : 2);
        free(a);
    }
}

static void test_nested(void)
{
    struct seen s;
    size_t l1, l2, l3, l4;
    uint8_t *z1 = eicar_archive(F_ZIP, &l1);
    struct member m2 = {"inner.zip", z1, l1};
    uint8_t *z2 = make_archive(F_TAR_GZ, &m2, 1, &l2);
    struct member m3 = {"mid.tar.gz", z2, l2};
    uint8_t *z3 = make_archive(F_ZIP, &m3, 1, &l3);
    struct member m4 = {"outer.zip", z3, l3};
    uint8_t *z4 = make_archive(F_ZIP, &m4, 1, &l4);

    CHECK_EQ_INT(run(z3, l3, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.found, 1);
    CHECK_EQ_STR(s.found_what, "zip:mid.tar.gz > tar.gz:inner.zip > zip:dir/eicar.com");
    CHECK_EQ_INT(s.problems, 0);

    /* Four levels with archive_depth 3: the innermost is reported, not opened. */
    CHECK_EQ_INT(run(z4, l4, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.found, 0);
    CHECK_EQ_INT(s.problems, 1);
    CHECK_EQ_STR(s.last_problem, EXTRACT_DEPTH);
    CHECK_EQ_STR(s.problem_what, "zip:outer.zip > zip:mid.tar.gz > tar.gz:inner.zip");

    struct extract_limits lim = default_limits;
    lim.depth = 0;
    CHECK_EQ_INT(run(z1, l1, NULL, &lim, &s), 0);
    CHECK_EQ_INT(s.buffers, 0);
    CHECK_EQ_STR(s.last_problem, EXTRACT_DEPTH);
    free(z1);
    free(z2);
    free(z3);
    free(z4);
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* A zip whose central directory leaves out its first file: unzip and
 * Python's zipfile list one file, streaming readers two. */
static void test_zip_local_headers(void)
{
    struct seen s;
    size_t len;
    struct member m[] = {{"dir/eicar.com", eicar, 68}, {"readme.txt", "hello\n", 6}};
    uint8_t *z = make_archive(F_ZIP, m, 2, &len);
    uint8_t *end = z + len - 22;

    CHECK(le32(end) == 0x06054b50 && le16(end + 10) == 2);
    uint8_t *cd = z + le32(end + 16);
    size_t first = 46 + (size_t)le16(cd + 28) + le16(cd + 30) + le16(cd + 32);
    memmove(cd, cd + first, len - (size_t)(cd - z) - first);
    len -= first;
    end = z + len - 22;
    put16(end + 8, 1);
    put16(end + 10, 1);
    put16(end + 12, le16(end + 12) - (unsigned)first);

    CHECK_EQ_INT(run(z, len, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.found, 1);
    CHECK_EQ_STR(s.found_what, "zip(local headers):dir/eicar.com");
    CHECK_EQ_INT(s.buffers, 2);
    CHECK_EQ_INT(s.problems, 0);
    free(z);
}

static void test_encrypted(void)
{
    struct seen s;
    size_t len;
    uint8_t *z = eicar_archive(F_ZIP_CRYPT, &len);

    CHECK_EQ_INT(run(z, len, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.found, 0);
    CHECK_EQ_INT(s.problems, 2);
    CHECK_EQ_STR(s.last_problem, EXTRACT_ENCRYPTED);
    CHECK_EQ_STR(s.problem_what, "zip:dir/eicar.com");
    free(z);
}

static void test_bounds(void)
{
    struct seen s;
    size_t big = 20u << 20, len;
    uint8_t *zeros = calloc(1, big);
    struct member m[] = {{"eicar.com", eicar, 68}, {"zeros.bin", zeros, big}};
    uint8_t *z = make_archive(F_ZIP, m, 2, &len);
    struct extract_limits lim = default_limits;

    CHECK(len < (1u << 20));
    /* 20 MiB out of some KiB: past limits.body (here 1 MiB), the ratio holds. */
    lim.ratio_after = 1u << 20;
    CHECK_EQ_INT(run(z, len, NULL, &lim, &s), -1);
    CHECK_EQ_INT(s.found, 1);
    CHECK_EQ_STR(s.last_problem, EXTRACT_RATIO);
    CHECK_EQ_STR(s.problem_what, "zip:zeros.bin");

    lim = default_limits;
    lim.total_bytes = 4u << 20;
    CHECK_EQ_INT(run(z, len, NULL, &lim, &s), -1);
    CHECK_EQ_STR(s.last_problem, EXTRACT_BYTES);

    /* Within the bounds the whole member is handed over. */
    lim = default_limits;
    lim.ratio_after = 32u << 20;
    lim.member_bytes = 0;
    CHECK_EQ_INT(run(z, len, NULL, &lim, &s), 0);
    CHECK_EQ_INT(s.buffers, 2);
    CHECK_EQ_INT(s.problems, 0);
    CHECK_EQ_INT(s.last_len, big);
    /* A member longer than member_bytes: its first bytes, like a long body. */
    lim.member_bytes = 1u << 20;
    CHECK_EQ_INT(run(z, len, NULL, &lim, &s), 0);
    CHECK_EQ_INT(s.buffers, 2);
    CHECK_EQ_INT(s.problems, 0);
    CHECK_EQ_INT(s.last_len, 1u << 20);
    CHECK_EQ_STR(s.last_what, "zip:zeros.bin (cut)");

    lim = default_limits;
    lim.max_members = 1;
    CHECK_EQ_INT(run(z, len, NULL, &lim, &s), -1);
    CHECK_EQ_INT(s.found, 1);
    CHECK_EQ_STR(s.last_problem, EXTRACT_MEMBERS);
    free(z);
    free(zeros);
}

static void test_corrupt_and_truncated(void)
{
    struct seen s;
    size_t len;
    uint8_t *z = eicar_archive(F_TAR_GZ, &len);

    /* A cut body: members read before the cut, no problem. */
    CHECK_EQ_INT(extract_body(z, len / 2, NULL, EXTRACT_TRUNCATED, &default_limits, on_buffer,
                              on_problem, memset(&s, 0, sizeof(s))),
                 0);
    CHECK_EQ_INT(s.problems, 0);
    /* The same bytes as a whole body: unreadable. */
    CHECK_EQ_INT(run(z, len / 2, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.problems, 1);
    CHECK_EQ_STR(s.last_problem, EXTRACT_CORRUPT);
    free(z);

    static const uint8_t gz_junk[] = "\037\213\010\0\0\0\0\0\0\003garbage that is no deflate";
    CHECK_EQ_INT(run(gz_junk, sizeof(gz_junk), NULL, NULL, &s), 0);
    CHECK_EQ_STR(s.last_problem, EXTRACT_CORRUPT);

    /* A zip behind other bytes (self-extracting): read from its end. */
    z = eicar_archive(F_ZIP, &len);
    uint8_t *sfx = malloc(len + 1000);
    memset(sfx, 'M', 1000);
    memcpy(sfx + 1000, z, len);
    CHECK_EQ_INT(run(sfx, len + 1000, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.found, 1);
    free(sfx);
    free(z);
}

/* --- upload encodings ---------------------------------------------------------- */

static char *cat(const char *a, const char *b, const char *c)
{
    char *s = malloc(strlen(a) + strlen(b) + strlen(c) + 1);
    strcpy(s, a);
    strcat(s, b);
    strcat(s, c);
    return s;
}

static void test_multipart(void)
{
    struct seen s;
    /* base64 with a line break and no padding; QP with a soft line break. */
    static const char b64[] =
        "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJV\r\n"
        "Uy1URVNULUZJTEUhJEgrSCo";
    char qp[200];
    snprintf(qp, sizeof(qp), "%.30s=\r\n%s", eicar, eicar + 30);
    char *qpq = cat("", qp, "");
    char *body = cat("--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"e.com\"\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n",
                     b64, "\r\n--XyZ\r\n");
    char *body2 = cat(body,
                      "Content-Disposition: form-data; name=\"q\"\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                      qpq);
    char *full = cat(body2, "\r\n--XyZ--\r\n", "");

    CHECK_EQ_INT(run(full, strlen(full), "multipart/form-data; boundary=XyZ", NULL, &s), 0);
    CHECK_EQ_INT(s.found, 2);
    CHECK_EQ_STR(s.found_what, "multipart:q(quoted-printable)");
    CHECK_EQ_INT(s.problems, 0);
    CHECK_EQ_INT(s.buffers, 4);
    /* No Content-Type (a part inside an archive): the delimiter line says it. */
    CHECK_EQ_INT(run(full, strlen(full), NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.found, 2);
    free(qpq);
    free(body);
    free(body2);
    free(full);

    /* Data after a padding: Python stops, GNU base64 -d goes on. */
    static const char blocks[] =
        "--b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "YQ==\r\nWDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFO"
        "VElWSVJVUy1URVNULUZJTEUhJEgrSCo=\r\n--b--\r\n";
    CHECK_EQ_INT(run(blocks, strlen(blocks), "multipart/form-data; boundary=b", NULL, &s), 0);
    CHECK_EQ_INT(s.buffers, 3);
    CHECK_EQ_INT(s.contains, 1); /* "a" then EICAR */
    CHECK_EQ_INT(s.found, 0);

    /* A plain part is a file on its own; a zip part is opened. */
    size_t zl;
    uint8_t *z = eicar_archive(F_ZIP, &zl);
    const char head[] = "--b\r\nContent-Type: application/zip\r\n\r\n";
    uint8_t *up = malloc(sizeof(head) + zl + 16);
    memcpy(up, head, sizeof(head) - 1);
    memcpy(up + sizeof(head) - 1, z, zl);
    memcpy(up + sizeof(head) - 1 + zl, "\r\n--b--\r\n", 9);
    CHECK_EQ_INT(run(up, sizeof(head) - 1 + zl + 9, "multipart/mixed; boundary=\"b\"", NULL, &s),
                 0);
    /* Twice: the whole body is also a zip to readers that find it from its
     * end record (a self-extracting archive), and the part is one. */
    CHECK_EQ_INT(s.found, 2);
    CHECK_EQ_STR(s.found_what, "multipart:part0 > zip:dir/eicar.com");
    free(up);
    free(z);
}

static void test_form(void)
{
    struct seen s;
    char body[400];
    size_t o = (size_t)snprintf(body, sizeof(body), "a=1&file=");
    for (const char *p = eicar; *p; p++) {
        if (*p == ' ')
            body[o++] = '+';
        else if (strchr("%&+=$!", *p))
            o += (size_t)snprintf(body + o, sizeof(body) - o, "%%%02X", (unsigned char)*p);
        else
            body[o++] = *p;
    }
    o += (size_t)snprintf(body + o, sizeof(body) - o, "&b=%%zz");
    CHECK_EQ_INT(run(body, o, "application/x-www-form-urlencoded; charset=UTF-8", NULL, &s), 0);
    CHECK_EQ_INT(s.found, 1);
    CHECK_EQ_STR(s.found_what, "form:file");
    CHECK_EQ_INT(s.buffers, 1); /* a=1 and b=%zz decode to themselves */
    CHECK_EQ_INT(s.problems, 0);
    /* Without its Content-Type a form is not decoded. */
    CHECK_EQ_INT(run(body, o, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.buffers, 0);
}

static void test_json(void)
{
    struct seen s;
    char body[1000];
    size_t o = (size_t)snprintf(body, sizeof(body), "{\"a\": [1, {\"k\\u0065y\": \"");
    for (const char *p = eicar; *p; p++) {
        if (*p == '\\')
            o += (size_t)snprintf(body + o, sizeof(body) - o, "\\\\");
        else if (*p == '$')
            o += (size_t)snprintf(body + o, sizeof(body) - o, "\\ud83d\\ude00"); /* 😀 */
        else
            o += (size_t)snprintf(body + o, sizeof(body) - o, "\\u%04x", (unsigned char)*p);
    }
    o +=
        (size_t)snprintf(body + o, sizeof(body) - o, "\"}], \"b\": \"\\/x\\n\", \"c\": \"plain\"}");
    CHECK_EQ_INT(run(body, o, "application/vnd.api+json", NULL, &s), 0);
    CHECK_EQ_INT(s.found, 0); /* '$' became an emoji */
    CHECK_EQ_INT(s.buffers, 2);

    o = (size_t)snprintf(body, sizeof(body), " [\"x\", {\"key\": \"");
    for (const char *p = eicar; *p; p++) {
        if (*p == '\\')
            o += (size_t)snprintf(body + o, sizeof(body) - o, "\\\\");
        else if (*p == '/')
            o += (size_t)snprintf(body + o, sizeof(body) - o, "\\/");
        else
            o += (size_t)snprintf(body + o, sizeof(body) - o, "\\u%04X", (unsigned char)*p);
    }
    o += (size_t)snprintf(body + o, sizeof(body) - o, "\"}]");
    /* JSON by its shape, whatever the Content-Type. */
    CHECK_EQ_INT(run(body, o, "text/plain", NULL, &s), 0);
    CHECK_EQ_INT(s.found, 1);
    CHECK_EQ_STR(s.found_what, "json:$[1].key");
    CHECK_EQ_INT(s.buffers, 1);
    CHECK_EQ_INT(s.problems, 0);

    /* Past max_values, values come joined in one buffer. */
    struct extract_limits lim = default_limits;
    lim.max_values = 0;
    CHECK_EQ_INT(run(body, o, NULL, &lim, &s), 0);
    CHECK_EQ_INT(s.buffers, 1);
    CHECK_EQ_STR(s.found_what, "");
    CHECK_EQ_INT(s.problems, 0);
}

/* --- ordinary bodies: nothing at all ------------------------------------------- */

static void test_ordinary(void)
{
    static const char *const texts[] = {
        "<!DOCTYPE html>\n<html><head><title>PK</title></head><body>--not a boundary\r\n"
        "<p>070701 ustar BZh91AY&SY 7z Rar! MSCF</p></body></html>\n",
        "{\"name\": \"plain\", \"list\": [1, 2.5, true, null, \"x\"]}",
        "-- SQL comment\nSELECT 1;\n",
        "%PDF-1.7\n1 0 obj << /Filter /FlateDecode /Length 5 >> stream\nxxxxx\nendstream\n",
        "a=1&b=2&c=three",
        "",
    };
    struct seen s;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        CHECK_EQ_INT(run(texts[i], strlen(texts[i]), i == 4 ? NULL : "text/html", NULL, &s), 0);
        CHECK_EQ_INT(s.buffers, 0);
        CHECK_EQ_INT(s.problems, 0);
    }
    /* A PNG and random bytes of many sizes (an LCG, the same every run). */
    uint8_t *r = malloc(1 << 20);
    static const uint8_t png[] = "\211PNG\r\n\032\n\0\0\0\rIHDR";
    uint32_t x = 12345;
    for (size_t i = 0; i < (1 << 20); i++) {
        x = x * 1103515245u + 12345u;
        r[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 1; n <= (1 << 20); n = n * 3 + 1) {
        CHECK_EQ_INT(run(r, n, "application/octet-stream", NULL, &s), 0);
        CHECK_EQ_INT(s.buffers + s.problems, 0);
    }
    memcpy(r, png, sizeof(png) - 1);
    CHECK_EQ_INT(run(r, 70000, "image/png", NULL, &s), 0);
    CHECK_EQ_INT(s.buffers + s.problems, 0);
    /* Weak magic numbers that do not hold an archive: no problem. */
    memcpy(r, "070701", 6);
    CHECK_EQ_INT(run(r, 4000, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.buffers + s.problems, 0);
    memcpy(r + 3000, "PK\5\6", 4);
    memset(r + 3016, 0, 6);
    CHECK_EQ_INT(run(r, 4000, NULL, NULL, &s), 0);
    CHECK_EQ_INT(s.buffers + s.problems, 0);
    free(r);
}

static void test_stop(void)
{
    struct seen s;
    size_t len;
    uint8_t *z = eicar_archive(F_ZIP, &len);

    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    CHECK_EQ_INT(extract_body(z, len, NULL, 0, &default_limits, on_buffer, on_problem, &s), 1);
    CHECK_EQ_INT(s.buffers, 1);
    free(z);
}

int main(void)
{
    make_eicar();
    test_archive_formats();
    test_nested();
    test_zip_local_headers();
    test_encrypted();
    test_bounds();
    test_corrupt_and_truncated();
    test_multipart();
    test_form();
    test_json();
    test_ordinary();
    test_stop();
    CHECK_DONE();
}
