/*
 * Fuzz target: the whole packet path of one worker, as the capture reader
 * drives it: link-layer decoding (VLAN, MPLS, PPPoE, tunnels), the flow
 * table, TCP reassembly, nDPI, the HTTP and ClientHello parsers, bodies
 * (gzip, chunked) and YARA with the built-in rules.
 *
 * Input layout (seeds in corpus/packets follow it):
 *   byte 0              link type: 0 Ethernet, 1 Linux cooked, 2 raw IP,
 *                       3 BSD loopback (others wrap around)
 *   then frames         2-byte big-endian length, the frame's bytes
 * Frames are 1 ms apart. Every flow is ended at the end of the input, so
 * the events of unfinished messages run too.
 */
#include "dpi.h"
#include "nfq.h"
#include "rules.h"

#include <pcap/dlt.h>
#include <stdlib.h>
#include <string.h>

static struct rules_policy *policy;
static struct dpi_engine *engine;

static void discard(void *ctx, const struct dpi_event *ev)
{
    (void)ctx;
    (void)ev;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];

    (void)argc;
    (void)argv;
    policy = rules_policy_load(NULL, 1, err, sizeof(err));
    if (policy == NULL)
        abort();
    engine = dpi_engine_new(policy, discard, NULL, err, sizeof(err));
    if (engine == NULL)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int dlts[] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_RAW, DLT_NULL};
    struct nfq_flowtable *t;
    uint64_t ts = 1000000;

    if (size < 1)
        return 0;
    t = nfq_flowtable_new(engine, policy, 0, NFQ_FLOWTABLE_PASSIVE);
    if (t == NULL)
        abort();
    int dlt = dlts[data[0] % 4];
    size_t off = 1;
    while (off + 2 <= size) {
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (len > size - off)
            len = size - off;
        /* A copy of exactly the frame's size, so reads past it are caught. */
        uint8_t *frame = malloc(len ? len : 1);
        if (frame == NULL)
            abort();
        memcpy(frame, data + off, len);
        struct nfq_pkt pkt;
        if (nfq_decode_frame(dlt, frame, len, 1, &pkt) == NFQ_DECODE_OK)
            nfq_flowtable_packet(t, &pkt, ts, NULL);
        free(frame);
        off += len;
        ts += 1000;
        nfq_flowtable_expire(t, ts);
    }
    nfq_flowtable_free(t, ts);
    return 0;
}
