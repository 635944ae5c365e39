/*
 * rules: sluice's policy.
 *
 * One YAML file (libyaml) holds every setting; every key has a default, so a
 * missing file means the built-in policy. A policy is loaded and compiled
 * completely (YARA included) before anyone sees it, and is immutable and
 * reference counted afterwards: a reload builds a new one next to the old and
 * swaps a pointer, so a broken file never replaces a working policy.
 *
 * Pure: no sockets, no threads; YARA scanning happens on buffers given by the
 * caller, with one scanner per thread.
 */
#ifndef RULES_H
#define RULES_H

#include <stddef.h>
#include <stdint.h>

#define RULES_ERRLEN 512

/* A string from the policy file, with where it was written (for errors found
 * later, e.g. an nDPI risk name that the engine does not know). */
struct rules_str {
    char *s;
    int line, column;
};

struct rules_strlist {
    struct rules_str *v;
    size_t n;
};

/* nDPI's own configuration files, loaded exactly as ndpiReader loads them with
 * -p -c -r -j -S; NULL when not configured. */
struct rules_ndpi_files {
    char *protos_file;
    char *categories_file;
    char *risky_domains_file;
    char *ja3_file;
    char *sha1_file;
};

enum rules_mode {
    RULES_MODE_ENFORCE = 0, /* block what the policy says to block */
    RULES_MODE_AUDIT,       /* inspect and report the same, never block */
};

enum rules_fail {
    RULES_FAIL_OPEN = 0, /* traffic flows when sluiced is down or overloaded */
    RULES_FAIL_CLOSED,   /* traffic stops */
};

enum rules_response {
    RULES_RESPONSE_ISOLATE =
        0,                /* cut the container off its neighbours (and overlays off the host) */
    RULES_RESPONSE_STOP,  /* stop the container */
    RULES_RESPONSE_ALERT, /* report only */
};

enum rules_non_tls {
    RULES_NON_TLS_REFUSE = 0, /* closed, with an event */
    RULES_NON_TLS_PASS,       /* relayed as plaintext through the engine, with an event */
};

enum rules_action {
    RULES_ACTION_ALERT = 0, /* report only */
    RULES_ACTION_BLOCK,     /* report and stop the transfer (inline feeders) */
};

/* tls.other_ports: alert and block are those of enum rules_action. */
enum rules_other_ports {
    RULES_OTHER_ALERT = RULES_ACTION_ALERT,
    RULES_OTHER_BLOCK = RULES_ACTION_BLOCK,
    RULES_OTHER_PASS, /* neither reported nor blocked */
};

/* tls.quic */
enum rules_quic {
    RULES_QUIC_BLOCK = 0, /* dropped (clients fall back to TCP) and reported */
    RULES_QUIC_PASS,      /* left alone */
};

struct rules_policy {
    char *path; /* file it came from, or "(built-in)" */

    struct {
        struct rules_strlist paths; /* files or folders of .yar/.yara files */
        int builtin;                /* include the built-in rule set */
        unsigned timeout_s;         /* per scan */
        enum rules_action action;   /* what a match does */
    } yara;

    struct {
        uint64_t body;             /* bytes of one HTTP body kept for scanning */
        uint64_t reassembly_flow;  /* out-of-order bytes held per flow direction */
        uint64_t reassembly_total; /* out-of-order bytes held per worker */
        uint64_t flows;            /* flows tracked per worker */
        uint64_t bodies_total;     /* body bytes buffered per worker */
        unsigned flow_timeout_s;   /* idle time before a flow is ended */
        unsigned hello_bytes;      /* ClientHello bytes kept for parsing */
        uint64_t decoded;          /* decoded bytes of one body (content codings) */
        unsigned decoded_ratio;    /* decoded bytes per encoded byte, past limits.body */
        unsigned archive_depth;    /* archives inside archives opened */
        uint64_t archive_bytes;    /* member bytes extracted from one body */
    } limits;

    /* What the engine cannot read with certainty: block (inline) or alert. */
    struct {
        enum rules_action anomaly; /* HTTP framing, content codings, archives, tunnels */
    } http;
    struct {
        enum rules_action anomaly; /* TCP segments the receiver and sluice may see differently */
    } tcp;

    struct {
        struct rules_ndpi_files files;
        unsigned max_packets_tcp; /* packets before giving up, as ndpiReader */
        unsigned max_packets_udp;
        struct rules_strlist alert_categories; /* nDPI category names */
        struct rules_strlist alert_risks;      /* nDPI risk names */
        enum rules_action action;              /* what such a match does */
    } ndpi;

    struct {
        char *eve;  /* event log path, "-" for stdout */
        int syslog; /* also send alerts to syslog */
    } events;

    /* The inline daemon: NFQUEUE workers and the rules that feed them. */
    struct {
        enum rules_mode mode;       /* default for every container */
        unsigned queues;            /* queues (worker threads); 0: one per CPU */
        unsigned queue_base;        /* first queue number */
        enum rules_fail fail;       /* when sluiced is down or behind */
        int bridges;                /* inspect bridged container traffic (DOCKER-USER) */
        int host;                   /* inspect host-network containers (OUTPUT/INPUT) */
        struct rules_strlist ports; /* TCP ports ("80", "8000:8999") queued; none: all */
    } enforcement;

    struct {
        char *docker_socket;
        struct rules_strlist include; /* container or image name masks (* and ?) */
        struct rules_strlist exclude;
        struct rules_strlist audit;    /* masks whose containers are only audited */
        struct rules_strlist networks; /* Docker network name masks inspected */
    } containers;

    /* TLS interception (tls/). */
    struct {
        int intercept;                          /* redirect container TLS to the proxy */
        struct rules_strlist ports;             /* destination ports redirected ("443") */
        unsigned proxy_port;                    /* where the proxy listens on the host */
        unsigned workers;                       /* proxy threads; 0: one per CPU */
        char *state_dir;                        /* the CA lives here */
        unsigned ca_rotate_days;                /* a CA older than this is replaced */
        unsigned ca_grace_days;                 /* the previous CA stays exported */
        char *upstream_ca_file;                 /* extra roots trusted upstream */
        struct rules_strlist bypass_sni;        /* server name masks spliced */
        struct rules_strlist bypass_containers; /* container masks spliced */
        int auto_install;                       /* CA into every container that starts */
        enum rules_quic quic;                   /* UDP from containers to those ports */
        enum rules_other_ports other_ports;     /* TLS on a port not intercepted */
        enum rules_non_tls non_tls;             /* what is not TLS on a TLS port */
        struct rules_strlist mtls_splice;       /* destinations ("CIDR", "CIDR:port") whose
                                                   mutual TLS is spliced */
        unsigned bypass_confirm_s;              /* a confirmed bypass_sni is trusted this long */
        unsigned max_per_container;             /* open connections per client address */
        uint64_t held_total;                    /* plaintext held by the proxy, all connections */
        unsigned stall_timeout_s;               /* a held message without progress is closed */
    } tls;

    /* Compromise: which findings make a container compromised, and then what. */
    struct {
        struct rules_strlist findings;   /* "malware" (YARA, network or file), "ndpi" */
        enum rules_response action;      /* isolate, stop or alert */
        struct rules_strlist host_allow; /* isolated host-network containers may still reach */
        char *detections_socket;         /* file scanners report here */
    } compromise;

    struct {
        char *socket; /* sluicectl's control socket */
        char *pidfile;
    } control;

    struct rules_yara *compiled; /* NULL until rules_policy_load compiled it */
    int refs;
};

/*
 * Loads and fully validates a policy. path NULL: the built-in defaults.
 * compile: also compile the YARA rules it names (0 for syntax checks, fuzzing).
 * Returns NULL with "file:line:column: reason" in err on any problem.
 */
struct rules_policy *rules_policy_load(const char *path, int compile, char *err, size_t errlen);
/* Same from a buffer; name is what errors call the file. */
struct rules_policy *rules_policy_parse(const char *name, const char *text, size_t len, int compile,
                                        char *err, size_t errlen);
struct rules_policy *rules_policy_ref(struct rules_policy *p);
void rules_policy_unref(struct rules_policy *p);

/* 1 if port is in a list of ports and ranges ("443", "8000:8999"); entries
 * that are neither count for nothing (sluiced refuses them at start). */
int rules_port_listed(const struct rules_strlist *ports, unsigned port);
/* Whether the address (family 4 or 6, network order) and port fall in a
 * destination written "CIDR", "ADDR", "CIDR:port" or "[CIDR]:port": 1 yes,
 * 0 no, -1 if entry is none of those. addr NULL: only checks entry. */
int rules_dest_match(const char *entry, int family, const uint8_t *addr, unsigned port);

/* Size strings: "16MiB", "512k", "1G", "4096". Returns 0 on success. */
int rules_parse_size(const char *s, uint64_t *out);
/* Durations: "30s", "5m", "1h", "250ms" (rounded up to seconds), "10". */
int rules_parse_duration(const char *s, unsigned *seconds);

/* --- YARA ---------------------------------------------------------------- */

struct rules_yara;    /* compiled rules, shared read-only by all threads */
struct rules_scanner; /* one per thread */

struct rules_match {
    char rule[128];     /* rule identifier */
    char ns[64];        /* namespace: "builtin" or the file it came from */
    char category[64];  /* rule meta "category", default "malware" */
    int severity;       /* rule meta "severity", default 1 (highest) */
    int window_certain; /* the rule only asks that strings occur: a match on a
                           piece of a body is a match on the whole body */
};

#define RULES_MAX_MATCHES 8

/* NULL when p has no compiled rules (loaded with compile 0, or no rule set
 * configured) or on error. The scanner holds a reference on p, so the rules
 * stay valid until the scanner is freed even if a reload drops p. */
struct rules_scanner *rules_scanner_new(const struct rules_policy *p);
void rules_scanner_free(struct rules_scanner *s);
/* Scans buf; fills up to max matches. Returns the number of matches (which
 * may exceed max: only max are filled), or -1 with err set (timeout, ...). */
int rules_scan(struct rules_scanner *s, const uint8_t *buf, size_t len, struct rules_match *out,
               size_t max, char *err, size_t errlen);
/* Number of rules compiled into the policy (for status and logs). */
unsigned rules_yara_count(const struct rules_policy *p);
/* Of those, the rules whose match on a piece of a body proves a match on
 * the whole body (rules_match.window_certain). */
unsigned rules_yara_window_count(const struct rules_policy *p);
/* Compiler warnings ("file:line: message"), for the caller to log: the i-th,
 * or NULL past the last. */
const char *rules_yara_warning(const struct rules_policy *p, unsigned i);

/* Internal to rules/: policy.c calls these in yara.c. */
int rules_yara_compile(struct rules_policy *p, char *err, size_t errlen);
void rules_yara_free(struct rules_yara *y);

#endif
