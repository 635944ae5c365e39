/*
 * TLS ClientHello facts: server name, ALPN, offered versions and the JA3
 * fingerprint, from the first bytes of a client stream.
 *
 * The caller hands over everything it has of the stream so far, and every
 * call starts again at byte 0. The answer is one of: a whole ClientHello
 * (OK), a valid prefix of one (MORE), not TLS (NOT_TLS, decided on the first
 * record header, so other protocols leave the parser after a byte or two) or
 * a TLS handshake that is not a well-formed ClientHello (MALFORMED).
 *
 * The handshake message may be cut over several handshake records (and the
 * records over TCP segments). Instead of joining the fragments into a
 * buffer, the parser reads through a cursor (struct hs_reader) that steps
 * over record headers as it meets them: no copy, no allocation, and the
 * record checks happen where the bytes are.
 *
 * No length in the hello is trusted. The cursor has a limit (the message,
 * then the extension, then the list being read); a read that would cross it
 * makes the hello MALFORMED, and a read that would cross the end of the
 * caller's bytes means MORE. The extension block must end exactly where the
 * message ends, and each extension parsed here must be used up exactly by
 * its lists, so no byte can be read two ways. Duplicate extensions are
 * refused (RFC 8446 4.2): a second server_name or ALPN would leave two
 * answers to one question.
 *
 * JA3 is computed exactly as nDPI 4.2 computes its client JA3 (JA3C,
 * processClientServerHello() in src/lib/protocols/tls.c), because sluice's
 * fingerprints are compared with ndpiReader's. For a well-formed hello that
 * is the published JA3 except for the caps described at ja3_build(); where
 * nDPI departs from the description, this file follows nDPI and says so.
 * Two things nDPI 4.2 does not read at all, so ndpiReader shows no JA3 where
 * sluice has one: a hello cut over several records, and one of 64 KiB or
 * more. Hellos nDPI reads past broken lengths for (it only needs some of
 * the fields) are MALFORMED here. The SNI differs in one way: nDPI keeps
 * the last 79 bytes of a long name, sluice the first 255.
 */
#include "dpi.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define TLS_CT_HANDSHAKE    22
#define TLS_HS_CLIENT_HELLO 1
/* TLSPlaintext is at most 2^14 bytes; the extra 2048 that TLSCiphertext may
 * add is tolerated so that only absurd lengths are refused. */
#define TLS_RECORD_MAX (16384 + 2048)
#define TLS_RECORD_HDR 5
#define TLS_HS_HDR     4

#define EXT_SERVER_NAME        0
#define EXT_SUPPORTED_GROUPS   10
#define EXT_EC_POINT_FORMATS   11
#define EXT_ALPN               16
#define EXT_SUPPORTED_VERSIONS 43

/* The longest body a ClientHello can have: version, random, a 32-byte
 * session id, the longest cipher, compression and extension lists. A
 * handshake length above it is refused at once instead of waiting for
 * bytes that cannot make a valid hello. */
#define HELLO_BODY_MAX (2 + 32 + 1 + 32 + 2 + 65534 + 1 + 255 + 2 + 65535)

/* nDPI's caps: JA3_STR_LEN for the string (with the terminating NUL) and
 * MAX_NUM_JA3 values per list. */
#define JA3_STR_LEN 1024
#define JA3_MAX_NUM 512

_Static_assert(sizeof(((struct dpi_hello *)0)->ja3_string) == JA3_STR_LEN,
               "ja3_string must be as long as nDPI's JA3 buffer");

/* A cursor over the handshake message, which is the concatenation of the
 * fragments of consecutive handshake records in buf. */
struct hs_reader {
    const uint8_t *buf;
    size_t len;                /* bytes of the stream given by the caller */
    size_t pos;                /* next byte of buf to read */
    size_t frag_end;           /* end in buf of the current record's fragment; may pass len */
    size_t off;                /* handshake message bytes read so far */
    size_t limit;              /* message offset that reads may not cross */
    enum dpi_hello_status err; /* why the last read failed */
};

/* What the hello offers, kept for JA3 and max_version. */
struct hello_scan {
    uint16_t ciphers[JA3_MAX_NUM], exts[JA3_MAX_NUM], groups[JA3_MAX_NUM], formats[256];
    size_t nciphers, nexts, ngroups, nformats;
    int too_many;       /* a list passed JA3_MAX_NUM: see ja3_build() */
    int has_extensions; /* the hello has an extension block, even empty */
    int has_versions;   /* supported_versions offered a non-GREASE version */
    uint16_t best_version;
    uint8_t seen[65536 / 8]; /* extension types met, one bit each */
};

/* --- record layer ------------------------------------------------------------ */

/*
 * Checks the n (< 5 allowed) bytes of a record header at p, each byte as
 * soon as it is there. The first record decides whether this is TLS at all;
 * a bad header later, in the middle of a hello, is a broken handshake.
 */
static enum dpi_hello_status record_header(const uint8_t *p, size_t n, int first, size_t *fraglen)
{
    enum dpi_hello_status bad = first ? DPI_HELLO_NOT_TLS : DPI_HELLO_MALFORMED;

    /* An SSLv2-compatible hello starts with a byte >= 0x80 and is refused
     * here with every other protocol. */
    if (n >= 1 && p[0] != TLS_CT_HANDSHAKE)
        return bad;
    if (n >= 2 && p[1] != 3)
        return bad;
    if (n >= 3 && p[2] > 4)
        return bad;
    if (n < TLS_RECORD_HDR)
        return DPI_HELLO_MORE;
    *fraglen = (size_t)p[3] << 8 | p[4];
    if (*fraglen > TLS_RECORD_MAX)
        return bad;
    /* RFC 8446 5.1: handshake records must not be empty. */
    if (*fraglen == 0)
        return DPI_HELLO_MALFORMED;
    return DPI_HELLO_OK;
}

/* Steps over the header of the record that continues the message. */
static int hs_next_record(struct hs_reader *r)
{
    size_t fraglen = 0;
    enum dpi_hello_status st = record_header(r->buf + r->pos, r->len - r->pos, 0, &fraglen);

    if (st != DPI_HELLO_OK) {
        r->err = st;
        return -1;
    }
    r->pos += TLS_RECORD_HDR;
    r->frag_end = r->pos + fraglen;
    return 0;
}

/* Reads the next n message bytes into dst, or skips them if dst is NULL. */
static int hs_read(struct hs_reader *r, uint8_t *dst, size_t n)
{
    if (n > r->limit - r->off) {
        r->err = DPI_HELLO_MALFORMED; /* a length that overruns its container */
        return -1;
    }
    while (n > 0) {
        if (r->pos == r->frag_end && hs_next_record(r) < 0)
            return -1;
        if (r->pos == r->len) {
            r->err = DPI_HELLO_MORE;
            return -1;
        }
        size_t k = r->frag_end - r->pos;
        if (k > r->len - r->pos)
            k = r->len - r->pos;
        if (k > n)
            k = n;
        if (dst != NULL) {
            memcpy(dst, r->buf + r->pos, k);
            dst += k;
        }
        r->pos += k;
        r->off += k;
        n -= k;
    }
    return 0;
}

/* Reads a big-endian integer of n (1..3) bytes. */
static int hs_uint(struct hs_reader *r, size_t n, size_t *v)
{
    uint8_t b[3];

    if (hs_read(r, b, n) < 0)
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = *v << 8 | b[i];
    return 0;
}

/* Narrows reads to the next n bytes (an extension, a list); *saved keeps
 * the outer limit for hs_leave(). */
static int hs_enter(struct hs_reader *r, size_t n, size_t *saved)
{
    if (n > r->limit - r->off) {
        r->err = DPI_HELLO_MALFORMED;
        return -1;
    }
    *saved = r->limit;
    r->limit = r->off + n;
    return 0;
}

/* Back to the outer limit; whatever was entered must have been read whole. */
static int hs_leave(struct hs_reader *r, size_t saved)
{
    if (r->off != r->limit) {
        r->err = DPI_HELLO_MALFORMED;
        return -1;
    }
    r->limit = saved;
    return 0;
}

/* Enters a list whose length is the next n-byte field; an empty list is
 * refused, as every list read here has a minimum of one element. */
static int hs_enter_list(struct hs_reader *r, size_t n, size_t *saved)
{
    size_t len;

    if (hs_uint(r, n, &len) < 0 || hs_enter(r, len, saved) < 0)
        return -1;
    if (len == 0) {
        r->err = DPI_HELLO_MALFORMED;
        return -1;
    }
    return 0;
}

/* --- extensions ------------------------------------------------------------- */

/* RFC 8701 GREASE values: 0x0a0a, 0x1a1a, ... 0xfafa. nDPI tests "both bytes
 * equal and the low nibble 0xa", which is the same set. */
static int is_grease(size_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static void keep(uint16_t *list, size_t *n, size_t v, int *too_many)
{
    if (*n < JA3_MAX_NUM)
        list[(*n)++] = (uint16_t)v;
    else
        *too_many = 1;
}

/*
 * server_name (RFC 6066 3): a list of (type, name). The first host_name is
 * kept, lowercased as ndpiReader prints it (DNS names compare without case),
 * and cut at 255 bytes. A name with a byte outside 0x21..0x7e cannot be a
 * DNS name and could hide text from a log or a policy, so the hello is
 * refused; so is a second host_name, which would make the answer ambiguous.
 */
static int ext_server_name(struct hs_reader *r, struct dpi_hello *out)
{
    size_t saved, type, n, kept = 0;
    int found = 0;

    if (hs_enter_list(r, 2, &saved) < 0)
        return -1;
    while (r->off < r->limit) {
        if (hs_uint(r, 1, &type) < 0 || hs_uint(r, 2, &n) < 0)
            return -1;
        if (type != 0) {
            if (hs_read(r, NULL, n) < 0)
                return -1;
            continue;
        }
        if (found || n == 0) {
            r->err = DPI_HELLO_MALFORMED;
            return -1;
        }
        found = 1;
        for (size_t i = 0; i < n; i++) {
            uint8_t c;
            if (hs_read(r, &c, 1) < 0)
                return -1;
            if (c < 0x21 || c > 0x7e) {
                r->err = DPI_HELLO_MALFORMED;
                return -1;
            }
            if (kept < sizeof(out->sni) - 1)
                out->sni[kept++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        out->sni[kept] = '\0';
    }
    return hs_leave(r, saved);
}

/*
 * ALPN (RFC 7301 3.1): a list of non-empty names, joined with ','. Names are
 * added as nDPI adds them, so that the string matches ndpiReader's: a name
 * goes in only if the string stays under 254 bytes (nDPI's test is
 * len + name + 1 < 255, comma not counted), and the first one that does not
 * fit ends the string. Bytes outside 0x20..0x7e show as '?'.
 */
static int ext_alpn(struct hs_reader *r, struct dpi_hello *out)
{
    size_t saved, n, len = 0;
    int full = 0;

    if (hs_enter_list(r, 2, &saved) < 0)
        return -1;
    while (r->off < r->limit) {
        uint8_t name[255];
        if (hs_uint(r, 1, &n) < 0 || hs_read(r, name, n) < 0)
            return -1;
        if (n == 0) {
            r->err = DPI_HELLO_MALFORMED;
            return -1;
        }
        if (full || len + n + 1 >= 255) {
            full = 1;
            continue;
        }
        if (len > 0)
            out->alpn[len++] = ',';
        for (size_t i = 0; i < n; i++)
            out->alpn[len++] = name[i] >= 0x20 && name[i] <= 0x7e ? (char)name[i] : '?';
    }
    out->alpn[len] = '\0';
    return hs_leave(r, saved);
}

/* Final SSL/TLS versions outrank everything else offered (TLS 1.3 drafts
 * 0x7fNN, experiments such as 0xfbNN), whatever their numeric value, so that
 * a client offering both TLS 1.3 and a draft says TLS 1.3. */
static size_t version_rank(size_t v)
{
    return v >= 0x0300 && v <= 0x0304 ? 0x10000 + v : v;
}

/* supported_versions (RFC 8446 4.2.1): the highest non-GREASE one. */
static int ext_supported_versions(struct hs_reader *r, struct hello_scan *s)
{
    size_t saved, v;

    if (hs_enter_list(r, 1, &saved) < 0)
        return -1;
    while (r->off < r->limit) {
        if (hs_uint(r, 2, &v) < 0) /* an odd length fails here */
            return -1;
        if (is_grease(v))
            continue;
        if (!s->has_versions || version_rank(v) > version_rank(s->best_version))
            s->best_version = (uint16_t)v;
        s->has_versions = 1;
    }
    return hs_leave(r, saved);
}

/* supported_groups (RFC 8422 5.1.1, RFC 8446 4.2.7): the EllipticCurves
 * field of JA3, GREASE removed. */
static int ext_supported_groups(struct hs_reader *r, struct hello_scan *s)
{
    size_t saved, v;

    if (hs_enter_list(r, 2, &saved) < 0)
        return -1;
    while (r->off < r->limit) {
        if (hs_uint(r, 2, &v) < 0)
            return -1;
        if (!is_grease(v))
            keep(s->groups, &s->ngroups, v, &s->too_many);
    }
    return hs_leave(r, saved);
}

/* ec_point_formats (RFC 8422 5.1.2): the last JA3 field. GREASE is not
 * looked for here, neither by JA3 nor by nDPI. */
static int ext_point_formats(struct hs_reader *r, struct hello_scan *s)
{
    size_t saved, v;

    if (hs_enter_list(r, 1, &saved) < 0)
        return -1;
    while (r->off < r->limit) {
        if (hs_uint(r, 1, &v) < 0)
            return -1;
        /* At most 255 of them: the list length is one byte. */
        s->formats[s->nformats++] = (uint16_t)v;
    }
    return hs_leave(r, saved);
}

static int parse_extension(struct hs_reader *r, struct hello_scan *s, struct dpi_hello *out)
{
    size_t type, len, saved;
    int rc = 0;

    if (hs_uint(r, 2, &type) < 0)
        return -1;
    if (s->seen[type / 8] & (1u << (type % 8))) {
        r->err = DPI_HELLO_MALFORMED;
        return -1;
    }
    s->seen[type / 8] |= (uint8_t)(1u << (type % 8));
    if (!is_grease(type))
        keep(s->exts, &s->nexts, type, &s->too_many);

    if (hs_uint(r, 2, &len) < 0 || hs_enter(r, len, &saved) < 0)
        return -1;
    switch (type) {
    case EXT_SERVER_NAME:
        rc = ext_server_name(r, out);
        break;
    case EXT_ALPN:
        rc = ext_alpn(r, out);
        break;
    case EXT_SUPPORTED_VERSIONS:
        rc = ext_supported_versions(r, s);
        break;
    case EXT_SUPPORTED_GROUPS:
        rc = ext_supported_groups(r, s);
        break;
    case EXT_EC_POINT_FORMATS:
        rc = ext_point_formats(r, s);
        break;
    default:
        rc = hs_read(r, NULL, len);
        break;
    }
    if (rc < 0)
        return -1;
    return hs_leave(r, saved);
}

/* --- the hello -------------------------------------------------------------- */

/* The ClientHello body (RFC 8446 4.1.2, RFC 5246 7.4.1.2); r is limited to
 * the message. */
static int parse_hello(struct hs_reader *r, struct hello_scan *s, struct dpi_hello *out)
{
    size_t v, n, saved;

    if (hs_uint(r, 2, &v) < 0)
        return -1;
    out->legacy_version = (uint16_t)v;
    if (hs_read(r, NULL, 32) < 0) /* random */
        return -1;

    if (hs_uint(r, 1, &n) < 0)
        return -1;
    if (n > 32) { /* legacy_session_id<0..32> */
        r->err = DPI_HELLO_MALFORMED;
        return -1;
    }
    if (hs_read(r, NULL, n) < 0)
        return -1;

    /* cipher_suites<2..2^16-2>: two bytes each, GREASE left out of JA3 */
    if (hs_enter_list(r, 2, &saved) < 0)
        return -1;
    while (r->off < r->limit) {
        if (hs_uint(r, 2, &v) < 0)
            return -1;
        if (!is_grease(v))
            keep(s->ciphers, &s->nciphers, v, &s->too_many);
    }
    if (hs_leave(r, saved) < 0)
        return -1;

    /* legacy_compression_methods<1..2^8-1> */
    if (hs_uint(r, 1, &n) < 0)
        return -1;
    if (n == 0) {
        r->err = DPI_HELLO_MALFORMED;
        return -1;
    }
    if (hs_read(r, NULL, n) < 0)
        return -1;

    /* Hellos before TLS 1.2 may end here, without an extension block. */
    if (r->off == r->limit)
        return 0;
    s->has_extensions = 1;
    if (hs_uint(r, 2, &n) < 0)
        return -1;
    if (n != r->limit - r->off) {
        r->err = DPI_HELLO_MALFORMED; /* the block must end with the message */
        return -1;
    }
    while (r->off < r->limit)
        if (parse_extension(r, s, out) < 0)
            return -1;
    return 0;
}

/* --- JA3 -------------------------------------------------------------------- */

/*
 * One step of nDPI's JA3 string builder, with its arithmetic: the piece is
 * printed with snprintf into what is left of the buffer and counted only if
 * it fits entirely (at most JA3_STR_LEN - 1 bytes in all). A piece that does
 * not fit is not counted, but snprintf has already written what fit of it;
 * the next piece overwrites that, except after the last field, where it
 * stays: the hash covers strlen() of the buffer, stray digits included.
 * Returns -1 when the piece did not fit (nDPI then leaves the list).
 */
static int ja3_piece(char *s, size_t *len, const char *sep, unsigned v, int with_value)
{
    int rc = with_value ? snprintf(s + *len, JA3_STR_LEN - *len, "%s%u", sep, v)
                        : snprintf(s + *len, JA3_STR_LEN - *len, "%s", sep);

    if (rc > 0 && *len + (size_t)rc < JA3_STR_LEN) {
        *len += (size_t)rc;
        return 0;
    }
    return -1;
}

static void ja3_list(char *s, size_t *len, const uint16_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ja3_piece(s, len, i > 0 ? "-" : "", v[i], 1) < 0)
            break;
}

/*
 * "SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats",
 * decimal values joined with '-', GREASE removed from the first three lists,
 * then its MD5 in lowercase hex. Where nDPI 4.2 departs from the published
 * JA3, this follows nDPI:
 *
 * - The string is capped at 1023 bytes; values that do not fit are dropped
 *   list by list as ja3_piece() describes (JA3 has no cap).
 * - More than 512 non-GREASE values in one list (MAX_NUM_JA3) means no JA3
 *   at all, so ja3_string and ja3_hash are left empty. nDPI skips that test
 *   when the hello has no extension block; the first 512 ciphers are then
 *   used, and since 512 values never fit in 1023 bytes the cap decides.
 *
 * If MD5 is not available (a FIPS-only OpenSSL), ja3_hash is left empty and
 * the other facts stand.
 */
static void ja3_build(const struct hello_scan *sc, struct dpi_hello *out)
{
    char *s = out->ja3_string;
    size_t len = 0;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    out->ja3_string[0] = '\0';
    out->ja3_hash[0] = '\0';
    if (sc->too_many && sc->has_extensions)
        return;

    ja3_piece(s, &len, "", out->legacy_version, 1);
    ja3_piece(s, &len, ",", 0, 0);
    ja3_list(s, &len, sc->ciphers, sc->nciphers);
    ja3_piece(s, &len, ",", 0, 0);
    ja3_list(s, &len, sc->exts, sc->nexts);
    ja3_piece(s, &len, ",", 0, 0);
    ja3_list(s, &len, sc->groups, sc->ngroups);
    ja3_piece(s, &len, ",", 0, 0);
    ja3_list(s, &len, sc->formats, sc->nformats);

    if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_md5(), NULL) != 1 || mdlen != 16)
        return;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out->ja3_hash + 2 * i, 3, "%02x", md[i]);
}

/* --- entry points ----------------------------------------------------------- */

enum dpi_hello_status dpi_hello_parse(const uint8_t *buf, size_t len, struct dpi_hello *out)
{
    struct hello_scan scan;
    struct hs_reader r;
    size_t fraglen = 0, type, hslen;
    enum dpi_hello_status st;

    memset(out, 0, sizeof(*out));
    st = record_header(buf, len, 1, &fraglen);
    if (st != DPI_HELLO_OK)
        return st;

    memset(&r, 0, sizeof(r));
    r.buf = buf;
    r.len = len;
    r.pos = TLS_RECORD_HDR;
    r.frag_end = TLS_RECORD_HDR + fraglen;
    r.limit = TLS_HS_HDR;
    if (hs_uint(&r, 1, &type) < 0)
        return r.err;
    if (type != TLS_HS_CLIENT_HELLO)
        return DPI_HELLO_MALFORMED;
    if (hs_uint(&r, 3, &hslen) < 0)
        return r.err;
    if (hslen > HELLO_BODY_MAX)
        return DPI_HELLO_MALFORMED;
    r.limit = TLS_HS_HDR + hslen;

    memset(&scan, 0, sizeof(scan));
    if (parse_hello(&r, &scan, out) < 0)
        return r.err;

    out->max_version = scan.has_versions ? scan.best_version : out->legacy_version;
    ja3_build(&scan, out);
    return DPI_HELLO_OK;
}

/* Known versions come back as constant strings; only an unknown one is
 * printed into buf ("0x7f1c": 7 bytes with the NUL). */
const char *dpi_tls_version_name(uint16_t version, char *buf, size_t buflen)
{
    static const char *const names[] = {"SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"};

    if (version >= 0x0300 && version <= 0x0304)
        return names[version - 0x0300];
    if (buf == NULL || buflen == 0)
        return "";
    snprintf(buf, buflen, "0x%04x", (unsigned)version);
    return buf;
}
