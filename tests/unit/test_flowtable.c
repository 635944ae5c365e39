/*
 * What a reload relies on in the flow table: a table replaced by a reload
 * claims the packets of its own open connections and nothing else; a new
 * connection on the addresses of one of its closed ones, or one idle past
 * the flow timeout, is no longer its own; connections that are over leave
 * it at once when asked; the new table's flow ids go on after the old one's.
 */
#include "dpi.h"
#include "nfq.h"
#include "rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define SYN 0x02
#define RST 0x04
#define ACK 0x10
#define FIN 0x01

static uint64_t last_flow_id;

static void on_event(void *ctx, const struct dpi_event *ev)
{
    (void)ctx;
    if (ev->type == DPI_EVENT_FLOW)
        last_flow_id = ev->meta->flow_id;
}

/* An IPv4 TCP packet 10.0.0.1:sport -> 10.0.0.2:80 (or back), decoded. */
static struct nfq_pkt tcp(uint8_t *buf, uint16_t sport, int to_client, uint8_t flags, uint32_t seq)
{
    struct nfq_pkt p;
    memset(buf, 0, 40);
    buf[0] = 0x45;
    buf[3] = 40;
    buf[8] = 64;
    buf[9] = IPPROTO_TCP;
    const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    memcpy(buf + 12, to_client ? b : a, 4);
    memcpy(buf + 16, to_client ? a : b, 4);
    uint16_t s = htons(to_client ? 80 : sport), d = htons(to_client ? sport : 80);
    memcpy(buf + 20, &s, 2);
    memcpy(buf + 22, &d, 2);
    uint32_t nseq = htonl(seq);
    memcpy(buf + 24, &nseq, 4);
    buf[32] = 0x50;
    buf[33] = flags;
    buf[34] = 0xff;
    CHECK_EQ_INT(nfq_decode_ip(buf, 40, 0, &p), NFQ_DECODE_OK);
    return p;
}

int main(void)
{
    char err[512];
    uint8_t buf[40];
    uint64_t ts = 1000000;

    struct rules_policy *policy = rules_policy_load(NULL, 1, err, sizeof(err));
    CHECK(policy != NULL);
    struct dpi_engine *engine = dpi_engine_new(policy, on_event, NULL, err, sizeof(err));
    CHECK(engine != NULL);
    struct nfq_flowtable *old = nfq_flowtable_new(engine, policy, 3, NFQ_FLOWTABLE_INLINE);
    CHECK(old != NULL);

    /* Two connections open before the reload; one of them closes. */
    struct nfq_pkt p = tcp(buf, 1000, 0, SYN, 1);
    nfq_flowtable_packet(old, &p, ts, NULL);
    p = tcp(buf, 1000, 1, SYN | ACK, 5);
    nfq_flowtable_packet(old, &p, ts, NULL);
    p = tcp(buf, 2000, 0, SYN, 1);
    nfq_flowtable_packet(old, &p, ts, NULL);
    p = tcp(buf, 2000, 0, RST, 2);
    nfq_flowtable_packet(old, &p, ts, NULL);
    CHECK_EQ_INT(nfq_flowtable_count(old), 2);
    uint64_t old_last = nfq_flowtable_last_id(old);
    CHECK_EQ_INT(old_last >> 40, 3);

    /* Its open connection's packets, both ways, are its own. */
    p = tcp(buf, 1000, 0, ACK, 2);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, ts + 1000), 1);
    p = tcp(buf, 1000, 1, ACK, 6);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, ts + 1000), 1);
    /* A connection it never saw is not. */
    p = tcp(buf, 3000, 0, SYN, 1);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, ts + 1000), 0);
    CHECK_EQ_INT(nfq_flowtable_count(old), 2);
    /* A late packet of the reset one is (it stays closed there)... */
    p = tcp(buf, 2000, 0, ACK, 2);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, ts + 1000), 1);
    /* ...but a new connection on its addresses goes to the new table, and
     * the old table lets the closed one go. */
    p = tcp(buf, 2000, 0, SYN, 900);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, ts + 2000), 0);
    CHECK_EQ_INT(nfq_flowtable_count(old), 1);

    /* The new table's ids go on after the old one's. */
    struct nfq_flowtable *cur = nfq_flowtable_new(engine, policy, 3, NFQ_FLOWTABLE_INLINE);
    CHECK(cur != NULL);
    nfq_flowtable_ids_after(cur, old_last);
    p = tcp(buf, 2000, 0, SYN, 900);
    nfq_flowtable_packet(cur, &p, ts + 2000, NULL);
    nfq_flowtable_free(cur, ts + 3000);
    CHECK(last_flow_id > old_last);

    /* What is over leaves a replaced table at once; what is open stays. */
    p = tcp(buf, 4000, 0, SYN, 1);
    nfq_flowtable_packet(old, &p, ts + 3000, NULL);
    p = tcp(buf, 4000, 1, RST, 1);
    nfq_flowtable_packet(old, &p, ts + 3000, NULL);
    CHECK_EQ_INT(nfq_flowtable_count(old), 2);
    nfq_flowtable_end_closed(old, ts + 4000);
    CHECK_EQ_INT(nfq_flowtable_count(old), 1);
    p = tcp(buf, 4000, 0, ACK, 2);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, ts + 5000), 0);
    p = tcp(buf, 1000, 0, ACK, 2);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, ts + 5000), 1);

    /* Idle past the flow timeout: over, and no longer the old table's. */
    uint64_t later = ts + (uint64_t)policy->limits.flow_timeout_s * 1000000u + 2000000u;
    p = tcp(buf, 1000, 0, ACK, 2);
    CHECK_EQ_INT(nfq_flowtable_claims(old, &p, later), 0);
    CHECK_EQ_INT(nfq_flowtable_count(old), 0);

    nfq_flowtable_free(old, later);
    dpi_engine_free(engine);
    rules_policy_unref(policy);
    CHECK_DONE();
}
