/*
 * Packet decoding: link layer, IP, tunnels, L4 ports.
 *
 * The rules here are ndpiReader's (nDPI 4.2 example/reader_util.c), kept on
 * purpose, quirks included: which frames are skipped (non-first IPv4
 * fragments, captures shorter than the IP total length), how VLAN, MPLS,
 * PPPoE, 6in4/4in6 and the GTP-U, TZSP and CAPWAP tunnels are opened, and
 * where the L4 payload starts. Classification results are compared flow by
 * flow with ndpiReader's, so the set of packets the engine sees must be the
 * same. Deviations are marked.
 *
 * Everything is bounds-checked against caplen; a frame is never read past
 * its captured length.
 */
#include "nfq.h"

#include <arpa/inet.h>
#include <pcap/dlt.h>
#include <string.h>

#define ETHERTYPE_IPV4       0x0800
#define ETHERTYPE_IPV6       0x86dd
#define ETHERTYPE_VLAN       0x8100
#define ETHERTYPE_MPLS_UNI   0x8847
#define ETHERTYPE_MPLS_MULTI 0x8848
#define ETHERTYPE_PPPOE      0x8864

#define LLC_SNAP 0xaa
#define LLC_BSTP 0x42 /* spanning tree: not IP */

#define PORT_GTP_U       2152
#define PORT_CAPWAP_DATA 5247
#define PORT_TZSP        37008

#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41

/* Radiotap / 802.11 constants, as ndpiReader reads them. */
#define RADIOTAP_BAD_FCS    0x50
#define WIFI_FC_TYPE(fc)    (((fc) >> 2) & 0x3)
#define WIFI_FC_TO_DS(fc)   ((fc)&0x0100)
#define WIFI_FC_FROM_DS(fc) ((fc)&0x0200)
#define WIFI_TYPE_DATA      0x2

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Host-order 16-bit read, for the fields ndpiReader reads without ntohs. */
static uint16_t rd16_host(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

int nfq_dlt_supported(int dlt)
{
    switch (dlt) {
    case DLT_NULL:
    case DLT_PPP_SERIAL:
    case DLT_C_HDLC:
    case DLT_PPP:
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_EN10MB:
    case DLT_LINUX_SLL:
    case DLT_IEEE802_11_RADIO:
    case DLT_RAW:
        return 1;
    default:
        return 0;
    }
}

/*
 * IPv6 extension headers, as nDPI walks them: hop-by-hop, routing, fragment
 * (only first fragments are kept), destination options, mobility, and "no
 * next header" which ends the packet. Returns 0 with *l4 and *l4len moved
 * past the headers.
 */
static int skip_ipv6_ext(uint16_t l3len, const uint8_t **l4, uint16_t *l4len, uint8_t *nxt)
{
    while (l3len > 1 &&
           (*nxt == 0 || *nxt == 43 || *nxt == 44 || *nxt == 60 || *nxt == 135 || *nxt == 59)) {
        uint16_t ehdr_len;

        if (*nxt == 59)
            return -1;
        if (*nxt == 44) {
            if (*l4len < 8 || l3len < 5)
                return -1;
            l3len -= 5;
            *nxt = (*l4)[0];
            if ((rd16(*l4 + 2) >> 3) != 0)
                return -1;
            *l4len -= 8;
            *l4 += 8;
            continue;
        }
        if (*l4len < 2)
            return -1;
        ehdr_len = (uint16_t)((*l4)[1] * 8 + 8);
        if (ehdr_len > l3len)
            return -1;
        l3len -= ehdr_len;
        if (*l4len < ehdr_len)
            return -1;
        *nxt = (*l4)[0];
        *l4len -= ehdr_len;
        *l4 += ehdr_len;
    }
    return 0;
}

/*
 * From the IP header on: validates lengths like ndpiReader's flow lookup
 * and reads addresses and ports. ipsize counts every captured byte from the
 * IP header to the end of the frame (Ethernet padding included, as nDPI
 * receives it).
 */
static enum nfq_decode_status decode_l3l4(const uint8_t *ip, size_t ipsize_full, int v6,
                                          struct nfq_pkt *out)
{
    uint16_t ipsize = (uint16_t)(ipsize_full > 0xffff ? 0xffff : ipsize_full);
    uint16_t l4_offset, l4len;
    uint8_t proto;
    const uint8_t *l4;

    if (!v6) {
        if (ipsize < 20)
            return NFQ_DECODE_SKIP;
        unsigned ihl = (ip[0] & 0x0f) * 4u;
        uint16_t tot_len = rd16(ip + 2);
        if (ihl > ipsize || ipsize < tot_len)
            return NFQ_DECODE_SKIP;
        l4_offset = (uint16_t)ihl;
        l4len = (uint16_t)(tot_len - ihl);
        proto = ip[9];
        out->family = 4;
        memset(out->src, 0, sizeof(out->src));
        memset(out->dst, 0, sizeof(out->dst));
        memcpy(out->src, ip + 12, 4);
        memcpy(out->dst, ip + 16, 4);
    } else {
        if (ipsize < 40)
            return NFQ_DECODE_SKIP;
        const uint8_t *l4ptr = ip + 40;
        uint16_t plen = rd16(ip + 4);
        proto = ip[6];
        /* skip_ipv6_ext is bounded by *l4len: its l3len undercounts a
         * fragment header (5 bytes for 8, as nDPI does). The payload length
         * must fit the capture first; the frame path checks it, a GTP-U
         * inner header had not. Such a packet fails the length check below
         * anyway, so only the reads past the capture go. */
        if (plen > ipsize - 40)
            return NFQ_DECODE_SKIP;
        if (skip_ipv6_ext((uint16_t)(ipsize - 40), &l4ptr, &plen, &proto) != 0)
            return NFQ_DECODE_SKIP;
        l4_offset = (uint16_t)(l4ptr - ip);
        l4len = plen;
        if (l4_offset > ipsize)
            return NFQ_DECODE_SKIP;
        out->family = 6;
        memcpy(out->src, ip + 8, 16);
        memcpy(out->dst, ip + 24, 16);
    }
    if ((uint32_t)ipsize < (uint32_t)l4_offset + l4len)
        return NFQ_DECODE_SKIP;

    l4 = ip + l4_offset;
    out->ip = ip;
    out->iplen = ipsize;
    out->l4proto = proto;
    out->sport = out->dport = 0;
    out->has_tcp = 0;
    out->payload = NULL;
    out->payload_len = 0;
    out->tcp = NULL;
    out->tcp_hdrlen = 0;
    out->csum = NFQ_CSUM_CHECK;

    if (proto == IPPROTO_TCP && l4len >= 20) {
        unsigned doff = (l4[12] >> 4) * 4u;
        out->sport = rd16(l4);
        out->dport = rd16(l4 + 2);
        /* A data offset below the minimum header is not TCP we can
         * reassemble; nDPI still sees the packet. */
        if (doff >= 20 && doff <= l4len) {
            out->has_tcp = 1;
            out->seq = rd32(l4 + 4);
            out->ack = rd32(l4 + 8);
            out->tcp_flags = l4[13];
            out->payload = l4 + doff;
            out->payload_len = l4len - doff;
            out->tcp = l4;
            out->tcp_hdrlen = doff;
        }
    } else if (proto == IPPROTO_UDP && l4len >= 8) {
        out->sport = rd16(l4);
        out->dport = rd16(l4 + 2);
        out->payload = l4 + 8;
        out->payload_len = l4len - 8u;
    }
    return NFQ_DECODE_OK;
}

/* GTP-U: returns the offset of the inner IP header or 0. */
static size_t gtp_inner(const uint8_t *pkt, size_t caplen, size_t offset)
{
    uint8_t flags = pkt[offset], msg_type = pkt[offset + 1];

    if (((flags & 0xe0) >> 5) != 1 || msg_type != 0xff) /* GTPv1 T-PDU only */
        return 0;
    offset += 8;
    if (flags & 0x07)
        offset += 4;
    if (flags & 0x04) {
        while (offset < caplen) {
            size_t ext_len = (size_t)pkt[offset] << 2;
            offset += ext_len;
            if (offset >= caplen || ext_len == 0)
                return 0;
            if (pkt[offset - 1] == 0)
                break;
        }
    }
    return offset < caplen ? offset : 0;
}

enum nfq_decode_status nfq_decode_frame(int dlt, const uint8_t *pkt, size_t caplen, int tunnels,
                                        struct nfq_pkt *out)
{
    size_t eth_offset = 0, ip_offset = 0;
    uint16_t type = 0, frag_off = 0, vlan = 0;
    uint8_t proto = 0;
    unsigned ip_len = 0;
    int v6 = 0;
    const char *tunnel = NULL;
    int dlt_now = dlt;

datalink:
    if (caplen < eth_offset + 28)
        return NFQ_DECODE_SKIP;

    switch (dlt_now) {
    case DLT_NULL:
        type = rd32(pkt + eth_offset) == 2 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6;
        ip_offset = 4 + eth_offset;
        break;
    case DLT_PPP_SERIAL:
        type = rd16(pkt + eth_offset + 2);
        ip_offset = eth_offset + 4;
        break;
    case DLT_C_HDLC:
    case DLT_PPP:
        if (pkt[0] == 0x0f || pkt[0] == 0x8f) {
            type = rd16(pkt + eth_offset + 2);
            ip_offset = eth_offset + 4;
        } else {
            type = rd16(pkt + eth_offset);
            ip_offset = eth_offset + 2;
        }
        break;
    case DLT_IPV4:
        type = ETHERTYPE_IPV4;
        ip_offset = 0;
        break;
    case DLT_IPV6:
        type = ETHERTYPE_IPV6;
        ip_offset = 0;
        break;
    case DLT_EN10MB: {
        uint16_t check = rd16(pkt + eth_offset + 12);
        ip_offset = eth_offset + 14;
        if (check >= 1536) {
            type = check;
        } else if (check != 0 && check <= 1500) {
            /* 802.3 length field: LLC follows. */
            const uint8_t *llc = pkt + ip_offset;
            if (llc[0] == LLC_SNAP || llc[1] == LLC_SNAP) {
                /* ndpiReader keeps the SNAP protocol id in host order. */
                type = rd16_host(llc + 6);
                ip_offset += 8;
            } else if (llc[0] == LLC_BSTP || llc[1] == LLC_BSTP) {
                return NFQ_DECODE_SKIP;
            }
        }
        break;
    }
    case DLT_LINUX_SLL:
        type = rd16(pkt + eth_offset + 14);
        ip_offset = 16 + eth_offset;
        break;
    case DLT_IEEE802_11_RADIO: {
        const uint8_t *rt = pkt + eth_offset;
        uint16_t radio_len = (uint16_t)(rt[2] | (rt[3] << 8));
        size_t wifi_len = 0;

        if ((rt[16] & RADIOTAP_BAD_FCS) == RADIOTAP_BAD_FCS)
            return NFQ_DECODE_SKIP;
        if (caplen < eth_offset + radio_len + 24)
            return NFQ_DECODE_SKIP;
        uint16_t fc = rd16_host(pkt + eth_offset + radio_len);
        if (WIFI_FC_TYPE(fc) != WIFI_TYPE_DATA)
            break; /* no data: ndpiReader goes on with ip_offset 0 */
        if ((WIFI_FC_TO_DS(fc) && !WIFI_FC_FROM_DS(fc)) ||
            (!WIFI_FC_TO_DS(fc) && WIFI_FC_FROM_DS(fc)))
            wifi_len = 26;
        if (caplen < eth_offset + wifi_len + radio_len + 8)
            return NFQ_DECODE_SKIP;
        const uint8_t *llc = pkt + eth_offset + wifi_len + radio_len;
        if (llc[0] == LLC_SNAP)
            type = rd16(llc + 6);
        ip_offset = wifi_len + radio_len + 8 + eth_offset;
        break;
    }
    case DLT_RAW:
        ip_offset = eth_offset = 0;
        break;
    default:
        return NFQ_DECODE_SKIP;
    }

    for (;;) {
        if (type == ETHERTYPE_VLAN) {
            if (ip_offset + 4 >= caplen)
                return NFQ_DECODE_SKIP;
            vlan = rd16(pkt + ip_offset) & 0xfff;
            type = rd16(pkt + ip_offset + 2);
            ip_offset += 4;
            while (type == ETHERTYPE_VLAN && ip_offset + 4 < caplen) {
                vlan = rd16(pkt + ip_offset) & 0xfff;
                type = rd16(pkt + ip_offset + 2);
                ip_offset += 4;
            }
        } else if (type == ETHERTYPE_MPLS_UNI || type == ETHERTYPE_MPLS_MULTI) {
            if (ip_offset + 4 > caplen)
                return NFQ_DECODE_SKIP;
            uint32_t label = rd32(pkt + ip_offset);
            type = ETHERTYPE_IPV4;
            ip_offset += 4;
            while (!((label >> 8) & 1) && ip_offset + 4 < caplen) {
                label = rd32(pkt + ip_offset);
                ip_offset += 4;
            }
        } else if (type == ETHERTYPE_PPPOE) {
            type = ETHERTYPE_IPV4;
            ip_offset += 8;
        } else {
            break;
        }
    }

iph_check:
    if (caplen < ip_offset + 20)
        return NFQ_DECODE_SKIP;
    {
        const uint8_t *iph = pkt + ip_offset;
        unsigned version = iph[0] >> 4;

        /* ndpiReader reads fragment bits and protocol only for frames it
         * knows to carry IPv4 (so raw-IP captures keep their fragments). */
        if (type == ETHERTYPE_IPV4) {
            frag_off = rd16(iph + 6);
            proto = iph[9];
        }
        if (version == 4) {
            ip_len = (iph[0] & 0x0f) * 4u;
            v6 = 0;
            if (iph[9] == IPPROTO_IPV6_ || iph[9] == IPPROTO_IPIP_) {
                ip_offset += ip_len;
                if (ip_len > 0)
                    goto iph_check;
            }
            if ((frag_off & 0x1fff) != 0)
                return NFQ_DECODE_SKIP;
        } else if (version == 6) {
            if (caplen < ip_offset + 40)
                return NFQ_DECODE_SKIP;
            proto = iph[6];
            uint16_t plen = rd16(iph + 4);
            if (caplen < ip_offset + 40 + plen)
                return NFQ_DECODE_SKIP;
            const uint8_t *l4ptr = iph + 40;
            uint16_t l4len = plen;
            size_t ipsize = caplen - ip_offset;
            if (skip_ipv6_ext((uint16_t)(ipsize - 40), &l4ptr, &l4len, &proto) != 0)
                return NFQ_DECODE_SKIP;
            if (proto == IPPROTO_IPV6_ || proto == IPPROTO_IPIP_) {
                ip_offset = (size_t)(l4ptr - pkt);
                goto iph_check;
            }
            /* Deviation: ndpiReader looks for tunnels at the IPv6 payload
             * length instead of the header length; use the real offset. */
            ip_len = (unsigned)(l4ptr - iph);
            v6 = 1;
        } else {
            return NFQ_DECODE_SKIP;
        }
    }

    if (tunnels && proto == IPPROTO_UDP) {
        size_t udp_off = ip_offset + ip_len;
        if (caplen < udp_off + 8)
            return NFQ_DECODE_SKIP;
        uint16_t sport = rd16(pkt + udp_off), dport = rd16(pkt + udp_off + 2);
        size_t offset = udp_off + 8;

        if (sport == PORT_GTP_U || dport == PORT_GTP_U) {
            if (offset + 8 < caplen) {
                size_t inner = gtp_inner(pkt, caplen, offset);
                if (inner) {
                    unsigned version = pkt[inner] >> 4;
                    tunnel = "GTP";
                    ip_offset = inner;
                    if (version == 6) {
                        if (caplen < ip_offset + 40)
                            return NFQ_DECODE_SKIP;
                        v6 = 1;
                    } else if (version == 4) {
                        if (caplen < ip_offset + 20)
                            return NFQ_DECODE_SKIP;
                        v6 = 0;
                    } else {
                        return NFQ_DECODE_SKIP;
                    }
                }
            }
        } else if (sport == PORT_TZSP || dport == PORT_TZSP) {
            if (caplen < offset + 4)
                return NFQ_DECODE_SKIP;
            uint8_t version = pkt[offset], ts_type = pkt[offset + 1];
            uint16_t encapsulates = rd16(pkt + offset + 2);
            tunnel = "TZSP";
            if (version == 1 && ts_type == 0 && encapsulates == 1) {
                offset += 4;
                if (offset < caplen) {
                    /* ndpiReader looks at the first tag only, then parses
                     * the rest as a frame of the capture's link type. */
                    uint8_t tag = pkt[offset];
                    if (tag > 1 && offset + 1 >= caplen)
                        return NFQ_DECODE_SKIP;
                    size_t tag_len = tag <= 1 ? 1 : pkt[offset + 1];
                    offset += tag_len;
                    if (offset >= caplen)
                        return NFQ_DECODE_SKIP;
                    eth_offset = offset;
                    goto datalink;
                }
            }
        } else if (sport == PORT_CAPWAP_DATA || dport == PORT_CAPWAP_DATA) {
            if (offset + 1 < caplen && (pkt[offset] & 0x0f) == 0) {
                size_t msg_len = (pkt[offset + 1] & 0xf8) >> 1;
                offset += msg_len;
                if (offset + 32 < caplen) {
                    offset += 24; /* 802.11 data header */
                    type = rd16(pkt + offset + 6);
                    ip_offset = offset + 8;
                    tunnel = "CAPWAP";
                    goto iph_check;
                }
            }
        }
    }

    out->vlan = vlan;
    out->tunnel = tunnel;
    return decode_l3l4(pkt + ip_offset, caplen - ip_offset, v6, out);
}

/* --- checksums --------------------------------------------------------------- */

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* Linux drops an IPv4 packet whose header checksum is wrong (ip_rcv_core)
 * and a TCP segment whose checksum over the pseudo-header is
 * (tcp_v4_rcv, tcp_v6_rcv). Summing a packet with its checksum field in
 * gives 0xffff when the checksum is right. */
int nfq_tcp_csum_ok(const struct nfq_pkt *p)
{
    size_t l4len = p->tcp_hdrlen + p->payload_len;
    uint32_t sum = 0;

    if (!p->has_tcp)
        return 1;
    if (p->family == 4) {
        size_t ihl = (p->ip[0] & 0x0f) * 4u;
        if (fold(sum16(0, p->ip, ihl)) != 0xffff)
            return 0;
        sum = sum16(sum, p->src, 4);
        sum = sum16(sum, p->dst, 4);
    } else {
        sum = sum16(sum, p->src, 16);
        sum = sum16(sum, p->dst, 16);
        sum += (uint32_t)(l4len >> 16);
    }
    sum += IPPROTO_TCP + (uint32_t)(l4len & 0xffff);
    sum = sum16(sum, p->tcp, l4len);
    return fold(sum) == 0xffff;
}

enum nfq_decode_status nfq_decode_ip(const uint8_t *ip, size_t len, int tunnels,
                                     struct nfq_pkt *out)
{
    /* An IP packet with a known version is a raw-IP frame whose ethertype
     * is known, so fragment bits are honoured. */
    if (len < 1)
        return NFQ_DECODE_SKIP;
    enum nfq_decode_status st =
        nfq_decode_frame((ip[0] >> 4) == 6 ? DLT_IPV6 : DLT_IPV4, ip, len, tunnels, out);
    /* The kernel has checked (or will finish) its checksums unless the
     * queue says otherwise (queue.c reads NFQA_SKB_INFO). */
    out->csum = NFQ_CSUM_TRUSTED;
    return st;
}
