/*
 * Fuzz target: the TLS ClientHello parser.
 *
 * Input layout (seeds in corpus/hello follow it):
 *   byte 0        low 2 bits: k, the number of record cuts
 *   k = 0         the rest is a client stream, given as is
 *   k = 1..3      k two-byte cut offsets (big endian), then a handshake
 *                 message that is put into one record, and again into
 *                 k + 1 records cut at those offsets (modulo its length)
 *
 * What must hold, else abort:
 * - the facts of an OK hello are what dpi.h promises: NUL-terminated
 *   strings, an SNI of lowercase visible ASCII, a printable ALPN, a JA3
 *   string under 1024 bytes and a hash that is empty or 32 lowercase hex
 *   digits (and empty exactly when the string is);
 * - answers never change their mind as bytes are added: a prefix gets MORE
 *   or the answer of the whole, with the same facts for OK; each prefix is
 *   parsed from a buffer of exactly its size, so that AddressSanitizer sees
 *   a read past len;
 * - how the message is cut into records does not change anything.
 */
#include "dpi.h"

#include <stdlib.h>
#include <string.h>

#define MSG_MAX 16384

static void check_facts(const struct dpi_hello *h)
{
    size_t n;

    if (memchr(h->sni, 0, sizeof(h->sni)) == NULL || memchr(h->alpn, 0, sizeof(h->alpn)) == NULL ||
        memchr(h->ja3_string, 0, sizeof(h->ja3_string)) == NULL ||
        memchr(h->ja3_hash, 0, sizeof(h->ja3_hash)) == NULL)
        abort();
    for (const char *p = h->sni; *p != '\0'; p++)
        if (*p < 0x21 || *p > 0x7e || (*p >= 'A' && *p <= 'Z'))
            abort();
    for (const char *p = h->alpn; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            abort();
    n = strlen(h->ja3_hash);
    if (n != 0 && n != 32)
        abort();
    if ((n == 0) != (h->ja3_string[0] == '\0'))
        abort();
    for (size_t i = 0; i < n; i++)
        if (!((h->ja3_hash[i] >= '0' && h->ja3_hash[i] <= '9') ||
              (h->ja3_hash[i] >= 'a' && h->ja3_hash[i] <= 'f')))
            abort();
}

static int same_facts(const struct dpi_hello *a, const struct dpi_hello *b)
{
    return a->legacy_version == b->legacy_version && a->max_version == b->max_version &&
           strcmp(a->sni, b->sni) == 0 && strcmp(a->alpn, b->alpn) == 0 &&
           strcmp(a->ja3_string, b->ja3_string) == 0 && strcmp(a->ja3_hash, b->ja3_hash) == 0;
}

/* Parses the first n bytes of s from a copy of exactly n bytes. */
static enum dpi_hello_status parse_exact(const uint8_t *s, size_t n, struct dpi_hello *h)
{
    uint8_t *copy = malloc(n > 0 ? n : 1);
    enum dpi_hello_status st;

    if (copy == NULL)
        abort();
    memcpy(copy, s, n);
    st = dpi_hello_parse(n > 0 ? copy : NULL, n, h);
    free(copy);
    return st;
}

/* Parses the stream, then a few of its prefixes, and checks they agree.
 * Returns the status of the whole; *h gets its facts. */
static enum dpi_hello_status parse_stream(const uint8_t *s, size_t n, struct dpi_hello *h)
{
    static struct dpi_hello p;
    enum dpi_hello_status st = parse_exact(s, n, h), ps;
    size_t cuts[4] = {n / 2, n > 0 ? n - 1 : 0, 5, 0};

    if (st != DPI_HELLO_OK && st != DPI_HELLO_MORE && st != DPI_HELLO_NOT_TLS &&
        st != DPI_HELLO_MALFORMED)
        abort();
    if (st == DPI_HELLO_OK)
        check_facts(h);
    for (size_t i = 0; i < n && i < 64; i++)
        cuts[3] = cuts[3] * 31 + s[i];
    cuts[3] = n > 0 ? cuts[3] % n : 0;

    for (size_t i = 0; i < 4; i++) {
        if (cuts[i] > n)
            continue;
        ps = parse_exact(s, cuts[i], &p);
        if (ps == DPI_HELLO_MORE)
            continue;
        if (ps != st || (st == DPI_HELLO_OK && !same_facts(&p, h)))
            abort();
    }
    return st;
}

/* One handshake record per piece of msg, cut at the given offsets. */
static size_t to_records(uint8_t *out, const uint8_t *msg, size_t n, const size_t *cuts,
                         size_t ncuts)
{
    size_t o = 0, from = 0;

    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        if (to <= from)
            continue; /* no empty records: they are malformed on purpose */
        out[o++] = 0x16;
        out[o++] = 0x03;
        out[o++] = (uint8_t)(i == 0 ? 0x01 : 0x03);
        out[o++] = (uint8_t)((to - from) >> 8);
        out[o++] = (uint8_t)(to - from);
        memcpy(out + o, msg + from, to - from);
        o += to - from;
        from = to;
    }
    return o;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t one[MSG_MAX + 5], many[MSG_MAX + 4 * 5];
    static struct dpi_hello a, b;
    size_t k, cuts[3], mlen, n1, n2;
    const uint8_t *msg;

    if (size < 1)
        return 0;
    k = data[0] & 3;
    if (k == 0) {
        parse_stream(data + 1, size - 1, &a);
        return 0;
    }
    if (size < 1 + 2 * k + 1)
        return 0;
    msg = data + 1 + 2 * k;
    mlen = size - 1 - 2 * k;
    if (mlen > MSG_MAX)
        return 0;
    for (size_t i = 0; i < k; i++)
        cuts[i] = ((size_t)data[1 + 2 * i] << 8 | data[2 + 2 * i]) % mlen;
    qsort(cuts, k, sizeof(cuts[0]), cmp_size);

    n1 = to_records(one, msg, mlen, NULL, 0);
    n2 = to_records(many, msg, mlen, cuts, k);
    enum dpi_hello_status s1 = parse_stream(one, n1, &a);
    enum dpi_hello_status s2 = parse_stream(many, n2, &b);
    if (s1 != s2 || (s1 == DPI_HELLO_OK && !same_facts(&a, &b)))
        abort();
    return 0;
}
