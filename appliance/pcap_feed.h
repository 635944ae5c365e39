/*
 * The passive feeder: packets from a capture file or a live interface
 * (libpcap) through the same flow table and engine as the inline path.
 * Nothing is ever blocked here; events only.
 */
#ifndef SL_PCAP_FEED_H
#define SL_PCAP_FEED_H

#include <signal.h>
#include <stdint.h>

#include "nfq.h"

struct pcap_feed_stats {
    uint64_t frames, frame_bytes, decoded, skipped;
    double seconds; /* wall time spent */
    struct nfq_flowtable_stats flows;
};

/* Reads path (pcap or pcapng) to its end; flows still open at the end are
 * ended then. Returns 0, or -1 with err set when the file cannot be read at
 * all. A capture that ends in a damaged record is read up to it (warning
 * in err, return 1). */
int pcap_feed_file(const char *path, struct dpi_engine *engine, const struct rules_policy *policy,
                   struct pcap_feed_stats *st, char *err, size_t errlen);

/* Captures on iface until *stop becomes non-zero. */
int pcap_feed_live(const char *iface, struct dpi_engine *engine, const struct rules_policy *policy,
                   volatile sig_atomic_t *stop, struct pcap_feed_stats *st, char *err,
                   size_t errlen);

#endif
