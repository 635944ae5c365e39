/*
 * sluiced: the sluice daemon.
 *
 * This file is the command line: it loads the policy, builds the engine and
 * hands it to a feeder — a capture file (-r), a live interface watched
 * passively (-i) — with events going to the event log; without either it
 * runs inline (daemon.c).
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "dpi.h"
#include "eve.h"
#include "log.h"
#include "pcap_feed.h"
#include "rules.h"

#define DEFAULT_POLICY SYSCONFDIR "/sluice/sluice.yaml"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: sluiced [-c FILE] [-f]\n"
                 "       sluiced [-c FILE] [--eve FILE] (-r CAPTURE ... | -i IFACE)\n"
                 "       sluiced -T [-c FILE]\n"
                 "\n"
                 "Network-side inspection for Docker hosts: nDPI classification, HTTP and TLS\n"
                 "parsing and YARA scanning of HTTP bodies, with events as JSON lines.\n"
                 "Without -r or -i, sluiced inspects container traffic inline (NFQUEUE):\n"
                 "bridged containers and host-network containers, blocking what the policy\n"
                 "says to block; sluicectl(8) talks to it.\n"
                 "\n"
                 "  -c, --config FILE     policy file (YAML). Default: " DEFAULT_POLICY "\n"
                 "                        if it exists, else the built-in policy\n"
                 "  -f, --foreground      inline: stay in the foreground, log to stderr\n"
                 "  -r, --read CAPTURE    inspect a capture file (pcap or pcapng) and exit;\n"
                 "                        repeat to read several, each on its own\n"
                 "  -i, --interface IFACE inspect an interface passively (nothing is blocked)\n"
                 "                        until SIGINT or SIGTERM\n"
                 "      --eve FILE        write events to FILE, '-' for standard output.\n"
                 "                        Default: standard output with -r, else the\n"
                 "                        policy's events.eve (/var/log/sluice/eve.json)\n"
                 "  -T, --check-config    load and check the policy (YARA rules, nDPI files)\n"
                 "                        and exit: 0 if it is valid\n"
                 "  -q, --quiet           only warnings and errors on standard error\n"
                 "  -v, --verbose         debug messages\n"
                 "  -h, --help            this text\n"
                 "  -V, --version         version\n"
                 "\n"
                 "Events (one JSON object per line, Suricata eve.json field names): flow,\n"
                 "http (with fileinfo.sha256 for every body), tls, and alert.\n"
                 "See sluiced(8) and doc/policy.md.\n");
}

struct run {
    struct eve *eve;
    enum eve_mode mode;
    int write_failed;
    int live; /* events reach the file at once: a crash loses none */
};

static void on_event(void *ctx, const struct dpi_event *ev)
{
    struct run *r = ctx;
    if ((eve_write(r->eve, ev, r->mode) != 0 || (r->live && eve_flush(r->eve) != 0)) &&
        !r->write_failed) {
        r->write_failed = 1;
        log_warn("%s: cannot write events", r->eve->path);
    }
}

static struct rules_policy *load_policy(const char *path, int explicit_path)
{
    char err[RULES_ERRLEN];
    struct rules_policy *p;

    if (!explicit_path && access(path, F_OK) != 0)
        path = NULL; /* no file: the built-in policy */
    p = rules_policy_load(path, 1, err, sizeof(err));
    if (p == NULL)
        fatalx("%s", err);
    if (dpi_policy_check(p, err, sizeof(err)) != 0) {
        rules_policy_unref(p);
        fatalx("%s", err);
    }
    return p;
}

static void summary(const char *what, const struct pcap_feed_stats *st, struct dpi_engine *e)
{
    struct dpi_engine_stats es;
    double secs = st->seconds > 0 ? st->seconds : 1e-9;

    dpi_engine_stats(e, &es);
    log_info("%s: %llu frames (%llu not inspected), %llu flows, %llu bodies, %llu alerts, "
             "%llu anomalies, %.1f MB in %.3f s (%.0f frames/s, %.1f MB/s)",
             what, (unsigned long long)st->frames, (unsigned long long)st->skipped,
             (unsigned long long)st->flows.flows_created, (unsigned long long)es.bodies,
             (unsigned long long)es.alerts, (unsigned long long)es.anomalies,
             (double)st->frame_bytes / 1e6, st->seconds, (double)st->frames / secs,
             (double)st->frame_bytes / 1e6 / secs);
    if (st->flows.reasm_gaps)
        log_info("%s: %llu reassembly gaps (%llu bytes missing)", what,
                 (unsigned long long)st->flows.reasm_gaps,
                 (unsigned long long)st->flows.reasm_gap_bytes);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"read", required_argument, NULL, 'r'},
        {"interface", required_argument, NULL, 'i'},
        {"eve", required_argument, NULL, 'e'},
        {"check-config", no_argument, NULL, 'T'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = DEFAULT_POLICY, *iface = NULL, *eve_path = NULL;
    const char **captures = calloc((size_t)argc, sizeof(*captures));
    int ncaptures = 0, explicit_config = 0, check_only = 0, foreground = 0, c;
    enum log_level level = LOG_LEVEL_INFO;

    if (captures == NULL)
        return 1;
    while ((c = getopt_long(argc, argv, "c:fr:i:TqvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            explicit_config = 1;
            break;
        case 'f':
            foreground = 1;
            break;
        case 'r':
            captures[ncaptures++] = optarg;
            break;
        case 'i':
            iface = optarg;
            break;
        case 'e':
            eve_path = optarg;
            break;
        case 'T':
            check_only = 1;
            break;
        case 'q':
            level = LOG_LEVEL_WARN;
            break;
        case 'v':
            level = LOG_LEVEL_DEBUG;
            break;
        case 'h':
            usage(stdout);
            free(captures);
            return 0;
        case 'V':
            printf("sluiced %s\n", PACKAGE_VERSION);
            free(captures);
            return 0;
        default:
            usage(stderr);
            free(captures);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluiced: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        free(captures);
        return 2;
    }
    log_init("sluiced", level, 0);

    struct rules_policy *policy = load_policy(config, explicit_config);
    if (check_only) {
        log_info("%s: policy is valid (%u YARA rules)", policy->path, rules_yara_count(policy));
        rules_policy_unref(policy);
        free(captures);
        return 0;
    }
    if (ncaptures == 0 && iface == NULL) {
        /* Inline: the daemon loads (and reloads) the policy itself. */
        const char *path = policy->path && strcmp(policy->path, "(built-in)") != 0 ? config : NULL;
        rules_policy_unref(policy);
        free(captures);
        return sl_daemon_run(path, foreground);
    }
    if (ncaptures > 0 && iface) {
        fprintf(stderr, "sluiced: -r and -i cannot be used together\n");
        rules_policy_unref(policy);
        free(captures);
        return 2;
    }
    if (eve_path == NULL)
        eve_path = ncaptures > 0 ? "-" : policy->events.eve;

    char err[512];
    struct run run = {.mode = EVE_AUDIT, .live = iface != NULL};
    run.eve = eve_open(eve_path, err, sizeof(err));
    if (run.eve == NULL)
        fatalx("event log: %s", err);
    struct dpi_engine *engine = dpi_engine_new(policy, on_event, &run, err, sizeof(err));
    if (engine == NULL)
        fatalx("%s", err);

    int status = 0;
    struct pcap_feed_stats st;
    for (int i = 0; i < ncaptures; i++) {
        int rc = pcap_feed_file(captures[i], engine, policy, &st, err, sizeof(err));
        if (rc < 0) {
            log_warnx("%s", err);
            status = 1;
            continue;
        }
        if (rc > 0)
            log_warnx("%s", err);
        summary(captures[i], &st, engine);
    }
    if (iface) {
        struct sigaction sa = {.sa_handler = on_stop_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        log_info("%s: inspecting passively, events to %s", iface, eve_path);
        if (pcap_feed_live(iface, engine, policy, &stop_requested, &st, err, sizeof(err)) != 0) {
            log_warnx("%s", err);
            status = 1;
        }
        summary(iface, &st, engine);
    }
    if (eve_flush(run.eve) != 0 || run.eve->failed) {
        log_warnx("%s: %llu events could not be written", eve_path,
                  (unsigned long long)run.eve->failed);
        status = 1;
    }
    dpi_engine_free(engine);
    eve_close(run.eve);
    rules_policy_unref(policy);
    free(captures);
    return status;
}
