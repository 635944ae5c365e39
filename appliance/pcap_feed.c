#include "pcap_feed.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

struct feed {
    pcap_t *pcap;
    int dlt;
    struct nfq_flowtable *table;
    uint64_t last_us;     /* packet clock: never goes back */
    uint64_t next_expire; /* packet clock of the next idle scan */
    struct pcap_feed_stats *st;
};

/* Frames go through in capture order; a timestamp that steps back is
 * clamped to the last one (as ndpiReader does), so flow clocks only move
 * forward. */
static void feed_frame(struct feed *fd, const struct pcap_pkthdr *h, const uint8_t *frame)
{
    struct nfq_pkt pkt;
    uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000ULL + (uint64_t)h->ts.tv_usec;

    if (ts < fd->last_us)
        ts = fd->last_us;
    fd->last_us = ts;
    fd->st->frames++;
    fd->st->frame_bytes += h->caplen;
    if (nfq_decode_frame(fd->dlt, frame, h->caplen, 1, &pkt) != NFQ_DECODE_OK) {
        fd->st->skipped++;
        return;
    }
    fd->st->decoded++;
    nfq_flowtable_packet(fd->table, &pkt, ts, NULL);
    if (ts >= fd->next_expire) {
        nfq_flowtable_expire(fd->table, ts);
        fd->next_expire = ts + 1000000ULL;
    }
}

static int feed_start(struct feed *fd, pcap_t *pcap, struct dpi_engine *engine,
                      const struct rules_policy *policy, struct pcap_feed_stats *st,
                      const char *name, char *err, size_t errlen)
{
    memset(fd, 0, sizeof(*fd));
    memset(st, 0, sizeof(*st));
    fd->pcap = pcap;
    fd->st = st;
    fd->dlt = pcap_datalink(pcap);
    if (!nfq_dlt_supported(fd->dlt)) {
        snprintf(err, errlen, "%s: unsupported link type %s (%d)", name,
                 pcap_datalink_val_to_name(fd->dlt) ? pcap_datalink_val_to_name(fd->dlt) : "?",
                 fd->dlt);
        return -1;
    }
    fd->table = nfq_flowtable_new(engine, policy, 0, NFQ_FLOWTABLE_PASSIVE);
    if (fd->table == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void feed_finish(struct feed *fd, uint64_t end_us)
{
    nfq_flowtable_stats(fd->table, &fd->st->flows);
    nfq_flowtable_free(fd->table, end_us);
    fd->st->flows.flows_active = 0;
}

int pcap_feed_file(const char *path, struct dpi_engine *engine, const struct rules_policy *policy,
                   struct pcap_feed_stats *st, char *err, size_t errlen)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    struct feed fd;
    struct pcap_pkthdr *h;
    const u_char *frame;
    int rc;
    double start = now_seconds();

    pcap_t *pcap = pcap_open_offline(path, errbuf);
    if (pcap == NULL) {
        /* libpcap names the file itself for open errors, not for format ones. */
        if (strncmp(errbuf, path, strlen(path)) == 0)
            snprintf(err, errlen, "%s", errbuf);
        else
            snprintf(err, errlen, "%s: %s", path, errbuf);
        return -1;
    }
    if (feed_start(&fd, pcap, engine, policy, st, path, err, errlen) != 0) {
        pcap_close(pcap);
        return -1;
    }
    while ((rc = pcap_next_ex(pcap, &h, &frame)) == 1)
        feed_frame(&fd, h, frame);
    int result = 0;
    if (rc == PCAP_ERROR) {
        snprintf(err, errlen, "%s: read stopped after %llu frames: %s", path,
                 (unsigned long long)st->frames, pcap_geterr(pcap));
        result = 1;
    }
    feed_finish(&fd, fd.last_us);
    pcap_close(pcap);
    st->seconds = now_seconds() - start;
    return result;
}

int pcap_feed_live(const char *iface, struct dpi_engine *engine, const struct rules_policy *policy,
                   volatile sig_atomic_t *stop, struct pcap_feed_stats *st, char *err,
                   size_t errlen)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    struct feed fd;
    struct pcap_pkthdr *h;
    const u_char *frame;
    double start = now_seconds();

    pcap_t *pcap = pcap_create(iface, errbuf);
    if (pcap == NULL) {
        snprintf(err, errlen, "%s: %s", iface, errbuf);
        return -1;
    }
    /* Whole frames, promiscuous, woken at least every 100 ms to notice a
     * stop request and expire flows even when the wire is quiet. */
    pcap_set_snaplen(pcap, 262144);
    pcap_set_promisc(pcap, 1);
    pcap_set_timeout(pcap, 100);
    pcap_set_buffer_size(pcap, 64 << 20);
    int rc = pcap_activate(pcap);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", iface, pcap_geterr(pcap));
        pcap_close(pcap);
        return -1;
    }
    if (feed_start(&fd, pcap, engine, policy, st, iface, err, errlen) != 0) {
        pcap_close(pcap);
        return -1;
    }
    while (!*stop) {
        rc = pcap_next_ex(pcap, &h, &frame);
        if (rc == 1) {
            feed_frame(&fd, h, frame);
        } else if (rc == 0) {
            uint64_t now = wall_us();
            if (now > fd.last_us)
                fd.last_us = now;
            nfq_flowtable_expire(fd.table, fd.last_us);
        } else {
            snprintf(err, errlen, "%s: capture stopped: %s", iface, pcap_geterr(pcap));
            break;
        }
    }
    feed_finish(&fd, fd.last_us);
    pcap_close(pcap);
    st->seconds = now_seconds() - start;
    return rc < 0 && !*stop ? -1 : 0;
}
