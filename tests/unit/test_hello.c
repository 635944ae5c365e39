/*
 * TLS ClientHello parser: real hellos checked against what ndpiReader 4.2
 * printed for the same flows, every prefix of them, the same hellos cut into
 * several records, hellos built here to reach each rule (SNI, ALPN,
 * supported_versions, the JA3 caps nDPI has), and the ways a stream can fail
 * to be a ClientHello.
 *
 * The real hellos are under tests/unit/data/hello/, found through SRCDIR (the
 * source root, "." by default). Each is the client's first TLS record(s) of
 * one TCP flow of a capture from nDPI 4.2's test suite (tests/pcap/, the
 * corpus in tests/corpus/ndpi-4.2/); the expected SNI, ALPN and JA3 hash are
 * those of the flow's line in ndpiReader's output (its "[ALPN: ]" shows ';'
 * where the parser gives ',').
 */
#include "check.h"
#include "dpi.h"

#include <stdint.h>

static char data_dir[4096];

/* tests/unit/data/hello/NAME into buf; 0 (and a failed check) if unreadable. */
static size_t load(const char *name, uint8_t *buf, size_t size)
{
    char path[4096 + 256];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open\n", path);
        CHECK(f != NULL);
        return 0;
    }
    n = fread(buf, 1, size, f);
    CHECK(ferror(f) == 0 && n > 0 && n < size);
    fclose(f);
    return n;
}

/* --- real hellos ------------------------------------------------------------ */

struct vector {
    const char *file;
    uint16_t legacy, max;
    const char *sni, *alpn, *ja3;
};

static const struct vector vectors[] = {
    /* simple-dnscrypt.pcap, first TLS flow: Chrome, with GREASE in the
     * ciphers (0xcaca), the extensions (0x3a3a, 0x2a2a) and the groups. */
    {"chrome_grease.bin", 0x0303, 0x0303, "simplednscrypt.org", "h2,http/1.1",
     "b8f81673c0e1d29908346f3bab892b9b"},
    /* instagram.pcap, 192.168.2.17 -> scontent-mxp1-1.cdninstagram.com: TLS
     * 1.3 offered through supported_versions. */
    {"tls13_instagram.bin", 0x0303, 0x0304, "scontent-mxp1-1.cdninstagram.com", "http/1.1",
     "7a29c223fb122ec64d10f0a159e07996"},
    /* no_sni.pcap, the Firefox flow with encrypted SNI: TLS 1.3, no
     * server_name at all. */
    {"tls13_no_sni.bin", 0x0303, 0x0304, "", "h2,http/1.1", "62a4a00de930bd0a5bee0309cc8362ed"},
    /* skype_no_unknown.pcap, first TLS flow: a TLS 1.0 hello without an
     * extension block. */
    {"no_extensions.bin", 0x0301, 0x0301, "", "", "06207a1730b5deeb207b0556e102ded2"},
    /* webex.pcap, one of the 63-byte hellos: two ciphers, two extensions. */
    {"webex_small.bin", 0x0301, 0x0301, "", "", "7cb93b2404a98399e9f84c74fef1fb8f"},
    /* ja3_lots_of_cipher_suites_2_anon.pcap: 170 cipher suites, a JA3 string
     * of 746 bytes, an IP address as SNI. */
    {"many_ciphers.bin", 0x0303, 0x0303, "192.69.136.179", "", "50221ef5bde0fcee8864bbcea5211d51"},
    /* 443-safari.pcap: Safari with a long ALPN list. */
    {"safari_alpn.bin", 0x0303, 0x0303, "www.ntop.org",
     "h2,h2-16,h2-15,h2-14,spdy/3.1,spdy/3,http/1.1", "a69708a64f853c3bcc214c2c5faf84f3"},
    /* 4in6tunnel.pcap, IPv4 in IPv6: record version 0x0303. */
    {"record_0303.bin", 0x0303, 0x0303, "www.bing.com", "h2,http/1.1",
     "9e10692f1b7f78228b2d4e424db3a98c"},
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))
#define VEC_MAX  4096

static void same_hello(const struct dpi_hello *a, const struct dpi_hello *b)
{
    CHECK_EQ_INT(a->legacy_version, b->legacy_version);
    CHECK_EQ_INT(a->max_version, b->max_version);
    CHECK_EQ_STR(a->sni, b->sni);
    CHECK_EQ_STR(a->alpn, b->alpn);
    CHECK_EQ_STR(a->ja3_string, b->ja3_string);
    CHECK_EQ_STR(a->ja3_hash, b->ja3_hash);
}

static void test_vectors(void)
{
    static uint8_t buf[VEC_MAX];
    struct dpi_hello h;

    for (size_t i = 0; i < NVECTORS; i++) {
        const struct vector *v = &vectors[i];
        size_t n = load(v->file, buf, sizeof(buf));
        if (n == 0)
            continue;
        CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_OK);
        CHECK_EQ_INT(h.legacy_version, v->legacy);
        CHECK_EQ_INT(h.max_version, v->max);
        CHECK_EQ_STR(h.sni, v->sni);
        CHECK_EQ_STR(h.alpn, v->alpn);
        CHECK_EQ_STR(h.ja3_hash, v->ja3);
    }

    /* The JA3 strings behind two of those hashes: GREASE gone, and a hello
     * without extensions ends with three empty fields. */
    size_t n = load("chrome_grease.bin", buf, sizeof(buf));
    if (n > 0 && dpi_hello_parse(buf, n, &h) == DPI_HELLO_OK)
        CHECK_EQ_STR(h.ja3_string, "771,49195-49199-49196-49200-52393-52392-52244-52243-49171-"
                                   "49172-156-157-47-53-10,65281-0-23-35-13-5-18-16-11-10,"
                                   "29-23-24,0");
    n = load("no_extensions.bin", buf, sizeof(buf));
    if (n > 0 && dpi_hello_parse(buf, n, &h) == DPI_HELLO_OK)
        CHECK_EQ_STR(h.ja3_string, "769,49162-49157-49161-49156-49159-49154-49160-49155-49172-"
                                   "49167-49171-49166-49169-49164-49170-49165-57-51-53-47-5-4-"
                                   "10,,,");
}

/*
 * Two hellos from nDPI's captures of broken traffic. ndpiReader prints a JA3
 * for both because it reads past what it does not need; here they are not
 * well-formed ClientHellos.
 */
static void test_broken_vectors(void)
{
    static uint8_t buf[VEC_MAX];
    struct dpi_hello h;
    size_t n;

    /* tls_invalid_reads.pcap, 10.191.139.17:58552: the ALPN extension is 11
     * bytes long but its list says 47241. */
    n = load("bad_alpn_length.bin", buf, sizeof(buf));
    if (n > 0)
        CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_MALFORMED);
    /* tls_cipher_lens.pcap, 192.168.11.11:51588: no compression method. */
    n = load("no_compression.bin", buf, sizeof(buf));
    if (n > 0)
        CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_MALFORMED);
}

/* Every prefix of a hello is worth waiting for; the whole is a hello. */
static void test_prefixes(void)
{
    static uint8_t buf[VEC_MAX];
    struct dpi_hello h;

    for (size_t i = 0; i < NVECTORS; i++) {
        size_t n = load(vectors[i].file, buf, sizeof(buf));
        int bad = 0;
        for (size_t k = 0; k < n; k++)
            if (dpi_hello_parse(buf, k, &h) != DPI_HELLO_MORE) {
                fprintf(stderr, "%s: prefix of %zu bytes is not MORE\n", vectors[i].file, k);
                bad++;
            }
        CHECK_EQ_INT(bad, 0);
        if (n > 0)
            CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_OK);
    }
}

/* Whatever follows the hello in the stream is not looked at. */
static void test_trailing(void)
{
    static uint8_t buf[VEC_MAX + 64];
    static const uint8_t after[][8] = {
        {0x14, 0x03, 0x03, 0x00, 0x01, 0x01},       /* ChangeCipherSpec */
        {0x17, 0x03, 0x03, 0xff, 0xff, 0xaa, 0xbb}, /* application data */
        {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'},   /* not TLS at all */
        {0x16, 0x03, 0x01, 0x00, 0x00},             /* an empty record */
    };
    struct dpi_hello whole, more;

    for (size_t i = 0; i < NVECTORS; i++) {
        size_t n = load(vectors[i].file, buf, VEC_MAX);
        if (n == 0 || dpi_hello_parse(buf, n, &whole) != DPI_HELLO_OK)
            continue;
        for (size_t a = 0; a < sizeof(after) / sizeof(after[0]); a++) {
            memcpy(buf + n, after[a], sizeof(after[a]));
            for (size_t k = 1; k <= sizeof(after[a]); k++) {
                CHECK_EQ_INT(dpi_hello_parse(buf, n + k, &more), DPI_HELLO_OK);
                same_hello(&whole, &more);
            }
        }
    }
}

/* --- records ---------------------------------------------------------------- */

/* Puts the handshake message msg into consecutive handshake records, cut at
 * the message offsets in cuts (increasing, inside the message). Records
 * after the first say version rver. */
static size_t to_records(uint8_t *out, const uint8_t *msg, size_t n, const size_t *cuts,
                         size_t ncuts, uint16_t rver)
{
    size_t o = 0, from = 0;

    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        uint16_t ver = i == 0 ? 0x0301 : rver;
        out[o++] = 0x16;
        out[o++] = (uint8_t)(ver >> 8);
        out[o++] = (uint8_t)ver;
        out[o++] = (uint8_t)((to - from) >> 8);
        out[o++] = (uint8_t)(to - from);
        memcpy(out + o, msg + from, to - from);
        o += to - from;
        from = to;
    }
    return o;
}

/* A hello cut into two or three records (the handshake header itself may be
 * cut) says the same as in one. */
static void test_refragment(void)
{
    static uint8_t buf[VEC_MAX], frag[VEC_MAX + 64];
    struct dpi_hello whole, cut;

    for (size_t i = 0; i < NVECTORS; i++) {
        size_t n = load(vectors[i].file, buf, sizeof(buf));
        if (n < 6 || dpi_hello_parse(buf, n, &whole) != DPI_HELLO_OK)
            continue;
        const uint8_t *msg = buf + 5;
        size_t mlen = (size_t)buf[3] << 8 | buf[4];
        CHECK_EQ_INT(mlen + 5, n); /* the vectors are one record each */

        int bad = 0;
        for (size_t c = 1; c < mlen; c++) {
            size_t fn = to_records(frag, msg, mlen, &c, 1, 0x0303);
            if (dpi_hello_parse(frag, fn, &cut) != DPI_HELLO_OK ||
                strcmp(cut.ja3_hash, whole.ja3_hash) != 0 || strcmp(cut.sni, whole.sni) != 0 ||
                strcmp(cut.alpn, whole.alpn) != 0 || cut.max_version != whole.max_version) {
                fprintf(stderr, "%s: cut at %zu differs\n", vectors[i].file, c);
                bad++;
            }
        }
        CHECK_EQ_INT(bad, 0);

        const size_t three[][2] = {{1, 3}, {2, 4}, {mlen / 3, 2 * mlen / 3}, {4, mlen - 1}};
        for (size_t t = 0; t < 4; t++) {
            size_t fn = to_records(frag, msg, mlen, three[t], 2, 0x0301);
            CHECK_EQ_INT(dpi_hello_parse(frag, fn, &cut), DPI_HELLO_OK);
            same_hello(&whole, &cut);
            /* every prefix of the cut version waits as well */
            bad = 0;
            for (size_t k = 0; k < fn; k++)
                bad += dpi_hello_parse(frag, k, &cut) != DPI_HELLO_MORE;
            CHECK_EQ_INT(bad, 0);
        }
    }
}

/* Records that break the hello in the middle: wrong type, version, length. */
static void test_bad_records(void)
{
    static uint8_t buf[VEC_MAX], frag[VEC_MAX + 64];
    struct dpi_hello h;
    size_t n = load("chrome_grease.bin", buf, sizeof(buf));
    size_t cut = 40, fn;

    if (n == 0)
        return;
    fn = to_records(frag, buf + 5, n - 5, &cut, 1, 0x0303);
    size_t second = 5 + cut; /* where the second record header starts */
    CHECK_EQ_INT(dpi_hello_parse(frag, fn, &h), DPI_HELLO_OK);

    frag[second] = 0x17; /* application data inside the hello */
    CHECK_EQ_INT(dpi_hello_parse(frag, second + 1, &h), DPI_HELLO_MALFORMED);
    frag[second] = 0x15; /* an alert */
    CHECK_EQ_INT(dpi_hello_parse(frag, fn, &h), DPI_HELLO_MALFORMED);
    frag[second] = 0x16;
    frag[second + 1] = 0x02;
    CHECK_EQ_INT(dpi_hello_parse(frag, second + 2, &h), DPI_HELLO_MALFORMED);
    frag[second + 1] = 0x03;
    frag[second + 2] = 0x05;
    CHECK_EQ_INT(dpi_hello_parse(frag, second + 3, &h), DPI_HELLO_MALFORMED);
    frag[second + 2] = 0x03;
    frag[second + 3] = 0x48; /* 18433 bytes: longer than any record */
    frag[second + 4] = 0x01;
    CHECK_EQ_INT(dpi_hello_parse(frag, second + 5, &h), DPI_HELLO_MALFORMED);

    /* An empty record between two fragments. */
    memmove(frag + second + 5, frag + second, fn - second);
    memcpy(frag + second, "\x16\x03\x03\x00\x00", 5);
    CHECK_EQ_INT(dpi_hello_parse(frag, fn + 5, &h), DPI_HELLO_MALFORMED);
}

/* --- not TLS ---------------------------------------------------------------- */

static void test_not_tls(void)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    static const char ssh[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
    /* SSLv2-compatible CLIENT-HELLO: 2-byte header with the top bit set. */
    static const uint8_t sslv2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00,
                                    0x00, 0x10, 0x07, 0x00, 0xc0, 0x05, 0x00, 0x80};
    struct dpi_hello h;

    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)http, strlen(http), &h), DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)ssh, strlen(ssh), &h), DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse(sslv2, sizeof(sslv2), &h), DPI_HELLO_NOT_TLS);
    /* decided on the first byte */
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)http, 1, &h), DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)ssh, 1, &h), DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse(sslv2, 1, &h), DPI_HELLO_NOT_TLS);
    /* other record types and versions, as soon as the byte is there */
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x17\x03\x03\x00\x10", 1, &h),
                 DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x02", 2, &h), DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x05", 3, &h), DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\xfe\xfd", 3, &h), DPI_HELLO_NOT_TLS);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x01\x48\x01", 5, &h),
                 DPI_HELLO_NOT_TLS);
    /* what could still be a record header waits */
    CHECK_EQ_INT(dpi_hello_parse(NULL, 0, &h), DPI_HELLO_MORE);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16", 1, &h), DPI_HELLO_MORE);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03", 2, &h), DPI_HELLO_MORE);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x00", 3, &h), DPI_HELLO_MORE);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x04\x48", 4, &h), DPI_HELLO_MORE);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x01\x48\x00", 5, &h), DPI_HELLO_MORE);
}

/* --- hellos built here ------------------------------------------------------- */

/* A byte builder with nested length-prefixed blocks. */
struct bld {
    uint8_t b[24576];
    size_t n;
    size_t open[8], width[8];
    int depth;
};

static void b_u8(struct bld *b, unsigned v)
{
    b->b[b->n++] = (uint8_t)v;
}

static void b_u16(struct bld *b, unsigned v)
{
    b_u8(b, v >> 8);
    b_u8(b, v);
}

static void b_raw(struct bld *b, const void *p, size_t n)
{
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void b_fill(struct bld *b, int c, size_t n)
{
    memset(b->b + b->n, c, n);
    b->n += n;
}

/* Opens a block whose length (width bytes) is written by b_close(). */
static void b_open(struct bld *b, size_t width)
{
    b->open[b->depth] = b->n;
    b->width[b->depth++] = width;
    b_fill(b, 0, width);
}

static void b_close(struct bld *b)
{
    b->depth--;
    size_t at = b->open[b->depth], w = b->width[b->depth], len = b->n - at - w;
    for (size_t i = 0; i < w; i++)
        b->b[at + i] = (uint8_t)(len >> (8 * (w - 1 - i)));
}

/* Record, handshake header, version, random, empty session id, the given
 * ciphers and null compression; leaves the record and the message open. */
static void hello_start(struct bld *b, const uint16_t *ciphers, size_t nciphers)
{
    static const uint16_t one = 0xc02f;

    memset(b, 0, sizeof(*b));
    if (ciphers == NULL)
        ciphers = &one, nciphers = 1;
    b_u8(b, 0x16);
    b_u16(b, 0x0301);
    b_open(b, 2);
    b_u8(b, 1);
    b_open(b, 3);
    b_u16(b, 0x0303);
    b_fill(b, 0x5a, 32);
    b_u8(b, 0);
    b_open(b, 2);
    for (size_t i = 0; i < nciphers; i++)
        b_u16(b, ciphers[i]);
    b_close(b);
    b_u8(b, 1);
    b_u8(b, 0);
}

/* Closes what is still open (extension block, message, record). */
static size_t hello_end(struct bld *b)
{
    while (b->depth > 0)
        b_close(b);
    return b->n;
}

static void ext_sni(struct bld *b, const char *name)
{
    b_u16(b, 0);
    b_open(b, 2);
    b_open(b, 2);
    b_u8(b, 0);
    b_open(b, 2);
    b_raw(b, name, strlen(name));
    b_close(b);
    b_close(b);
    b_close(b);
}

/* ALPN from names separated by '|' (so that ',' can be tested too). */
static void ext_alpn(struct bld *b, const char *names)
{
    b_u16(b, 16);
    b_open(b, 2);
    b_open(b, 2);
    while (*names != '\0') {
        size_t n = strcspn(names, "|");
        b_u8(b, n);
        b_raw(b, names, n);
        names += n + (names[n] == '|');
    }
    b_close(b);
    b_close(b);
}

static void ext_versions(struct bld *b, const uint16_t *v, size_t n)
{
    b_u16(b, 43);
    b_open(b, 2);
    b_open(b, 1);
    for (size_t i = 0; i < n; i++)
        b_u16(b, v[i]);
    b_close(b);
    b_close(b);
}

static enum dpi_hello_status parse(struct bld *b, struct dpi_hello *h)
{
    return dpi_hello_parse(b->b, b->n, h);
}

/* A hello whose only extension is server_name with this host_name. */
static enum dpi_hello_status with_sni(const char *name, struct dpi_hello *h)
{
    static struct bld b;

    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    ext_sni(&b, name);
    hello_end(&b);
    return parse(&b, h);
}

static void test_sni(void)
{
    static struct bld b;
    struct dpi_hello h;
    char name[300];

    CHECK_EQ_INT(with_sni("WWW.Example.COM", &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.sni, "www.example.com");
    CHECK_EQ_STR(h.alpn, "");

    memset(name, 'a', 299);
    name[299] = '\0';
    CHECK_EQ_INT(with_sni(name, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(strlen(h.sni), 255);
    CHECK(h.sni[254] == 'a');

    CHECK_EQ_INT(with_sni("bad name.example", &h), DPI_HELLO_MALFORMED);
    CHECK_EQ_INT(with_sni("tab\t.example", &h), DPI_HELLO_MALFORMED);
    CHECK_EQ_INT(with_sni("del\x7f.example", &h), DPI_HELLO_MALFORMED);
    CHECK_EQ_INT(with_sni("\xc3\xa9t\xc3\xa9.example", &h), DPI_HELLO_MALFORMED);
    CHECK_EQ_INT(with_sni("", &h), DPI_HELLO_MALFORMED);

    /* An entry of another type is stepped over; a second host_name is not
     * accepted. */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 0);
    b_open(&b, 2);
    b_open(&b, 2);
    b_u8(&b, 7);
    b_u16(&b, 3);
    b_raw(&b, "xyz", 3);
    b_u8(&b, 0);
    b_u16(&b, 5);
    b_raw(&b, "a.org", 5);
    b_close(&b);
    b_close(&b);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.sni, "a.org");
    /* the same with another host_name added to the list */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 0);
    b_open(&b, 2);
    b_open(&b, 2);
    b_u8(&b, 0);
    b_u16(&b, 5);
    b_raw(&b, "a.org", 5);
    b_u8(&b, 0);
    b_u16(&b, 5);
    b_raw(&b, "b.org", 5);
    b_close(&b);
    b_close(&b);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);

    /* The list ends before the extension does. */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 0);
    b_open(&b, 2);
    b_u16(&b, 8);
    b_u8(&b, 0);
    b_u16(&b, 5);
    b_raw(&b, "a.org", 5);
    b_u8(&b, 0);
    b_close(&b);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
}

static enum dpi_hello_status with_alpn(const char *names, struct dpi_hello *h)
{
    static struct bld b;

    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    ext_alpn(&b, names);
    hello_end(&b);
    return parse(&b, h);
}

static void test_alpn(void)
{
    struct dpi_hello h;
    char names[1024], want[300];

    CHECK_EQ_INT(with_alpn("h2|http/1.1", &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.alpn, "h2,http/1.1");
    CHECK_EQ_INT(with_alpn("\x01h\x7f|a b", &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.alpn, "?h?,a b");
    CHECK_EQ_INT(with_alpn("h2||http/1.1", &h), DPI_HELLO_MALFORMED); /* empty name */

    /* nDPI's rule: a name goes in while len + name + 1 < 255. */
    memset(names, 'a', 253);
    names[253] = '\0';
    CHECK_EQ_INT(with_alpn(names, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(strlen(h.alpn), 253);
    memset(names, 'a', 254);
    names[254] = '\0';
    CHECK_EQ_INT(with_alpn(names, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.alpn, "");

    memset(want, 'b', sizeof(want) - 1);
    want[sizeof(want) - 1] = '\0';
    snprintf(names, sizeof(names), "h2|%.*s", 251, want);
    CHECK_EQ_INT(with_alpn(names, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(strlen(h.alpn), 254);
    CHECK(strncmp(h.alpn, "h2,bbb", 6) == 0);
    /* one more byte does not fit, and nothing after it goes in */
    snprintf(names, sizeof(names), "h2|%.*s|x", 252, want);
    CHECK_EQ_INT(with_alpn(names, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.alpn, "h2");

    /* many names: the string stays within the field */
    names[0] = '\0';
    for (int i = 0; i < 100; i++)
        strcat(names, i ? "|proto" : "proto");
    CHECK_EQ_INT(with_alpn(names, &h), DPI_HELLO_OK);
    CHECK(strlen(h.alpn) < sizeof(h.alpn));
    CHECK_EQ_INT(strlen(h.alpn), 251); /* 42 names of 5 bytes and 41 commas */
}

static enum dpi_hello_status with_versions(const uint16_t *v, size_t n, struct dpi_hello *h)
{
    static struct bld b;

    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    ext_versions(&b, v, n);
    hello_end(&b);
    return parse(&b, h);
}

static void test_versions(void)
{
    static const uint16_t mixed[] = {0x2a2a, 0x7f1c, 0x0304, 0x0303};
    static const uint16_t drafts[] = {0x7f17, 0x7f1c, 0x7f12};
    static const uint16_t grease[] = {0x1a1a};
    static const uint16_t old[] = {0x0302, 0x0301};
    struct dpi_hello h;
    static struct bld b;

    CHECK_EQ_INT(with_versions(mixed, 4, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(h.legacy_version, 0x0303);
    CHECK_EQ_INT(h.max_version, 0x0304);
    CHECK_EQ_INT(with_versions(drafts, 3, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(h.max_version, 0x7f1c);
    CHECK_EQ_INT(with_versions(grease, 1, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(h.max_version, 0x0303);
    CHECK_EQ_INT(with_versions(old, 2, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(h.max_version, 0x0302);
    CHECK_EQ_INT(with_versions(old, 0, &h), DPI_HELLO_MALFORMED);

    /* an odd list */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 43);
    b_open(&b, 2);
    b_u8(&b, 3);
    b_raw(&b, "\x03\x04\x03", 3);
    b_close(&b);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
}

static void test_version_names(void)
{
    char buf[16];

    CHECK_EQ_STR(dpi_tls_version_name(0x0300, buf, sizeof(buf)), "SSL 3.0");
    CHECK_EQ_STR(dpi_tls_version_name(0x0301, buf, sizeof(buf)), "TLS 1.0");
    CHECK_EQ_STR(dpi_tls_version_name(0x0302, buf, sizeof(buf)), "TLS 1.1");
    CHECK_EQ_STR(dpi_tls_version_name(0x0303, buf, sizeof(buf)), "TLS 1.2");
    CHECK_EQ_STR(dpi_tls_version_name(0x0304, buf, sizeof(buf)), "TLS 1.3");
    CHECK_EQ_STR(dpi_tls_version_name(0x7f1c, buf, sizeof(buf)), "0x7f1c");
    CHECK_EQ_STR(dpi_tls_version_name(0x0200, buf, sizeof(buf)), "0x0200");
    CHECK_EQ_STR(dpi_tls_version_name(0xfefd, buf, 5), "0xfe"); /* cut to the buffer */
}

/* --- broken hellos ----------------------------------------------------------- */

static void test_malformed(void)
{
    static uint8_t buf[VEC_MAX];
    static struct bld b;
    struct dpi_hello h;
    static const uint16_t grease_only[] = {0x0a0a};
    size_t n = load("chrome_grease.bin", buf, sizeof(buf));

    /* A ServerHello, refused on its first handshake byte. */
    if (n > 0) {
        buf[5] = 2;
        CHECK_EQ_INT(dpi_hello_parse(buf, 6, &h), DPI_HELLO_MALFORMED);
        CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_MALFORMED);
        buf[5] = 1;
        CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_OK);
    }

    /* Empty records. */
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x01\x00\x00", 5, &h),
                 DPI_HELLO_MALFORMED);
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x01\x00\x00\x16\x03\x01\x00\x04"
                                                  "\x01\x00\x00\x30",
                                 14, &h),
                 DPI_HELLO_MALFORMED);
    /* A handshake length no ClientHello can have, refused at once. */
    CHECK_EQ_INT(dpi_hello_parse((const uint8_t *)"\x16\x03\x01\x40\x00\x01\xff\xff\xff", 9, &h),
                 DPI_HELLO_MALFORMED);

    /* The extension block says one byte more than the message holds... */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    ext_sni(&b, "a.org");
    hello_end(&b);
    size_t blk = 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2; /* offset of the block length */
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_OK);
    b.b[blk + 1]++;
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    /* ...or one less */
    b.b[blk + 1] -= 2;
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    b.b[blk + 1]++;
    /* An extension longer than the block, decided before its bytes come. */
    b.b[blk + 2 + 2] = 0x10;
    CHECK_EQ_INT(dpi_hello_parse(b.b, blk + 2 + 4, &h), DPI_HELLO_MALFORMED);
    b.b[blk + 2 + 2] = 0;
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_OK);
    /* The extension block cut short inside an extension header. */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 23);
    b_u8(&b, 0);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    /* One byte after the compression methods: no room for a block length. */
    hello_start(&b, NULL, 0);
    b_u8(&b, 0);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    /* Handshake length shorter than the fields it must hold. */
    hello_start(&b, NULL, 0);
    hello_end(&b);
    b.b[8] -= 1;
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);

    /* Duplicate extension (two server_name). */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    ext_sni(&b, "a.org");
    ext_sni(&b, "b.org");
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    /* Two GREASE extensions of the same value are duplicates too. */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 0x0a0a);
    b_u16(&b, 0);
    b_u16(&b, 0x0a0a);
    b_u16(&b, 0);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);

    /* Session id longer than 32. */
    hello_start(&b, NULL, 0);
    hello_end(&b);
    n = b.n;
    memcpy(buf, b.b, n);
    buf[5 + 4 + 2 + 32] = 33;
    CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_MALFORMED);
    /* An odd cipher list, an empty one, no compression method. */
    memcpy(buf, b.b, n);
    buf[5 + 4 + 2 + 32 + 1 + 1] = 3;
    CHECK_EQ_INT(dpi_hello_parse(buf, n, &h), DPI_HELLO_MALFORMED);
    hello_start(&b, grease_only, 0);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    hello_start(&b, NULL, 0);
    b.b[b.n - 2] = 0;
    b.n--;
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);

    /* Lists inside extensions that do not fill them, or are empty. */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 10);
    b_u16(&b, 6);
    b_u16(&b, 2);
    b_u16(&b, 29);
    b_u16(&b, 23);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 11);
    b_u16(&b, 1);
    b_u8(&b, 0);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 16);
    b_u16(&b, 2);
    b_u16(&b, 0);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
    /* ALPN whose name runs past its list */
    hello_start(&b, NULL, 0);
    b_open(&b, 2);
    b_u16(&b, 16);
    b_u16(&b, 6);
    b_u16(&b, 4);
    b_u8(&b, 4);
    b_raw(&b, "h2h2", 3);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_MALFORMED);
}

/* --- JA3 as nDPI computes it --------------------------------------------------- */

/* A hello with the given ciphers, an optional extension block holding only
 * ec_point_formats (if formats is not NULL). */
static enum dpi_hello_status with_ciphers(const uint16_t *c, size_t n, int block,
                                          const uint8_t *formats, size_t nf, struct dpi_hello *h)
{
    static struct bld b;

    hello_start(&b, c, n);
    if (block) {
        b_open(&b, 2);
        if (formats != NULL) {
            b_u16(&b, 11);
            b_open(&b, 2);
            b_open(&b, 1);
            b_raw(&b, formats, nf);
            b_close(&b);
            b_close(&b);
        }
    }
    hello_end(&b);
    return parse(&b, h);
}

static void test_ja3_caps(void)
{
    static uint16_t c[600];
    static const uint8_t formats[] = {100, 200};
    struct dpi_hello h;

    /* "771," and 170 times 49199 make 1023 bytes, the most nDPI keeps; the
     * next values and even the commas after them are dropped. The hashes
     * were computed from the strings with another MD5. */
    for (size_t i = 0; i < 600; i++)
        c[i] = 49199;
    CHECK_EQ_INT(with_ciphers(c, 170, 0, NULL, 0, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(strlen(h.ja3_string), 1023);
    CHECK_EQ_STR(h.ja3_hash, "48aa9b7aca9b97b5d664801f5e842331");
    CHECK_EQ_INT(with_ciphers(c, 171, 0, NULL, 0, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.ja3_hash, "48aa9b7aca9b97b5d664801f5e842331");
    /* Over 512 ciphers: with no extension block nDPI still builds a JA3... */
    CHECK_EQ_INT(with_ciphers(c, 600, 0, NULL, 0, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.ja3_hash, "48aa9b7aca9b97b5d664801f5e842331");
    /* ...with one, even empty, it gives none; the other facts stand. */
    CHECK_EQ_INT(with_ciphers(c, 600, 1, NULL, 0, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.ja3_string, "");
    CHECK_EQ_STR(h.ja3_hash, "");
    CHECK_EQ_INT(h.max_version, 0x0303);
    CHECK_EQ_INT(with_ciphers(c, 512, 1, NULL, 0, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.ja3_hash, "48aa9b7aca9b97b5d664801f5e842331");

    /* A value cut at the end stays in the string: 1 and 168 times 49199,
     * ",11,,", then "100" reaches 1021 bytes and only "-2" of "-200" fits.
     * nDPI hashes strlen() of its buffer, so the "-2" counts. */
    c[0] = 1;
    CHECK_EQ_INT(with_ciphers(c, 169, 1, formats, 2, &h), DPI_HELLO_OK);
    CHECK_EQ_INT(strlen(h.ja3_string), 1023);
    CHECK(strcmp(h.ja3_string + 1023 - 16, "-49199,11,,100-2") == 0);
    CHECK_EQ_STR(h.ja3_hash, "9af3ed0589ccfbb2f3df2736875f9b93");

    /* GREASE is left out of ciphers, extensions and groups, not of point
     * formats (0x0a is just a number there). */
    static struct bld b;
    static const uint16_t gc[] = {0x3a3a, 0x1301, 0xfafa};
    hello_start(&b, gc, 3);
    b_open(&b, 2);
    b_u16(&b, 0xdada);
    b_u16(&b, 0);
    b_u16(&b, 10);
    b_u16(&b, 6);
    b_u16(&b, 4);
    b_u16(&b, 0x4a4a);
    b_u16(&b, 29);
    b_u16(&b, 11);
    b_u16(&b, 3);
    b_u8(&b, 2);
    b_u8(&b, 0x0a);
    b_u8(&b, 0);
    b_u16(&b, 0x0b0a); /* not GREASE: the bytes differ */
    b_u16(&b, 0);
    hello_end(&b);
    CHECK_EQ_INT(parse(&b, &h), DPI_HELLO_OK);
    CHECK_EQ_STR(h.ja3_string, "771,4865,10-11-2826,29,10-0");
}

int main(void)
{
    const char *srcdir = getenv("SRCDIR");

    snprintf(data_dir, sizeof(data_dir), "%s/tests/unit/data/hello",
             srcdir != NULL && *srcdir != '\0' ? srcdir : ".");
    test_vectors();
    test_broken_vectors();
    test_prefixes();
    test_trailing();
    test_refragment();
    test_bad_records();
    test_not_tls();
    test_sni();
    test_alpn();
    test_versions();
    test_version_names();
    test_malformed();
    test_ja3_caps();
    CHECK_DONE();
}
