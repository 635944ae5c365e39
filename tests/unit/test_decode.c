/*
 * The capture decoder on GTP-U: an inner IPv6 packet is decoded when it is
 * whole, and skipped without a read past the captured length when it is
 * cut short or its payload length claims more than was captured (its
 * extension headers are then walked against the capture alone). Every
 * frame is copied into a buffer of exactly its captured length so that a
 * sanitizer build sees any read past it.
 */
#include "nfq.h"

#include <netinet/in.h>
#include <pcap/dlt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define OUTER (14 + 20 + 8 + 8) /* Ethernet, IPv4, UDP, GTP-U */

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Ethernet, IPv4/UDP to port 2152, a GTPv1 T-PDU header, then an inner IPv6 header
 * with payload length plen and next header nxt. Returns the frame length
 * before the inner payload. */
static size_t gtp6(uint8_t *f, size_t total, unsigned plen, uint8_t nxt)
{
    memset(f, 0, total);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    put16(ip + 2, (unsigned)(total - 14));
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    ip[12] = 10, ip[15] = 1;
    ip[16] = 10, ip[19] = 2;
    put16(ip + 20, 2152);
    put16(ip + 22, 2152);
    put16(ip + 24, (unsigned)(total - 34));
    ip[28] = 0x30; /* version 1, protocol type GTP */
    ip[29] = 0xff; /* T-PDU */
    put16(ip + 30, (unsigned)(total - OUTER));
    uint8_t *ip6 = f + OUTER;
    ip6[0] = 0x60;
    put16(ip6 + 4, plen);
    ip6[6] = nxt;
    ip6[7] = 64;
    ip6[8] = 0xfd, ip6[23] = 1;
    ip6[24] = 0xfd, ip6[39] = 2;
    return OUTER + 40;
}

/* Decodes the first len bytes of f from a buffer of exactly len bytes,
 * kept until the next call (out points into it). */
static enum nfq_decode_status decode(const uint8_t *f, size_t len, struct nfq_pkt *p)
{
    static uint8_t *copy;

    free(copy);
    copy = malloc(len);
    if (!copy)
        abort();
    memcpy(copy, f, len);
    return nfq_decode_frame(DLT_EN10MB, copy, len, 1, p);
}

int main(void)
{
    uint8_t f[256];
    struct nfq_pkt p;
    size_t off, total;

    /* A whole GTP-U/IPv6/UDP packet: the inner flow is the one seen. */
    total = OUTER + 40 + 8 + 4;
    off = gtp6(f, total, 12, IPPROTO_UDP);
    put16(f + off, 5353);
    put16(f + off + 2, 53);
    put16(f + off + 4, 12);
    memcpy(f + off + 8, "abcd", 4);
    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(decode(f, total, &p), NFQ_DECODE_OK);
    CHECK_EQ_STR(p.tunnel, "GTP");
    CHECK_EQ_INT(p.family, 6);
    CHECK_EQ_INT(p.l4proto, IPPROTO_UDP);
    CHECK_EQ_INT(p.sport, 5353);
    CHECK_EQ_INT(p.dport, 53);
    CHECK_EQ_INT(p.src[0], 0xfd);
    CHECK_EQ_INT(p.dst[15], 2);
    CHECK_EQ_INT(p.payload_len, 4);
    CHECK(p.payload && memcmp(p.payload, "abcd", 4) == 0);

    /* The same packet cut at every length: never decoded. */
    for (size_t len = 1; len < total; len++)
        CHECK_EQ_INT(decode(f, len, &p), NFQ_DECODE_SKIP);

    /* A first fragment header before the UDP header is walked. */
    total = OUTER + 40 + 8 + 8;
    off = gtp6(f, total, 16, 44);
    f[off] = IPPROTO_UDP;
    put16(f + off + 8, 1000);
    put16(f + off + 10, 2000);
    put16(f + off + 12, 8);
    CHECK_EQ_INT(decode(f, total, &p), NFQ_DECODE_OK);
    CHECK_EQ_STR(p.tunnel, "GTP");
    CHECK_EQ_INT(p.family, 6);
    CHECK_EQ_INT(p.sport, 1000);
    CHECK_EQ_INT(p.dport, 2000);
    for (size_t len = 1; len < total; len++)
        CHECK_EQ_INT(decode(f, len, &p), NFQ_DECODE_SKIP);

    /* The payload length claims 64 KiB; seven bytes were captured: a
     * fragment header (8 bytes long) cut after its fifth byte, naming a
     * hop-by-hop header next. The walk must stop at the capture's end. */
    total = OUTER + 40 + 7;
    off = gtp6(f, total, 0xffff, 44);
    f[off] = 0;
    CHECK_EQ_INT(decode(f, total, &p), NFQ_DECODE_SKIP);

    /* Fragment headers one after another, past the captured end, then a
     * destination options header. */
    for (unsigned n = 1; n <= 8; n++) {
        total = OUTER + 40 + 8 * n - 1;
        off = gtp6(f, total, 0xffff, 44);
        for (unsigned i = 0; i < n; i++)
            f[off + 8 * i] = i + 1 < n ? 44 : 60;
        CHECK_EQ_INT(decode(f, total, &p), NFQ_DECODE_SKIP);
    }

    /* Any payload length over what was captured, for each cut. */
    total = OUTER + 40 + 8 + 8;
    off = gtp6(f, total, 16, 44);
    f[off] = 0;
    f[off + 8] = IPPROTO_UDP;
    for (unsigned plen = 17; plen < 80; plen++) {
        put16(f + OUTER + 4, plen);
        for (size_t len = OUTER + 40; len <= total; len++)
            CHECK_EQ_INT(decode(f, len, &p), NFQ_DECODE_SKIP);
    }

    decode(f, 1, &p);
    CHECK_DONE();
}
