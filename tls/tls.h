/*
 * tls: transparent interception of container TLS.
 *
 * A per-install CA (never a built-in one) signs leaves forged for the
 * servers containers talk to; operators import the CA into containers. The
 * proxy accepts connections redirected from containers, reads the whole
 * ClientHello, connects to the original destination (from the kernel, never
 * from the SNI), validates the upstream certificate strictly, and only then
 * completes the handshake with the client using a forged leaf. Plaintext
 * both ways goes through the same engine as NFQUEUE traffic. A connection is
 * intercepted or refused; it is spliced only for a reason the appliance
 * names, and every splice and refusal is reported.
 *
 * This module knows nothing of packets or Docker.
 */
#ifndef TLS_H
#define TLS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_ERRLEN 512

/* --- the CA (ca.c) ------------------------------------------------------------ */

struct tls_ca;

/*
 * Loads the CA from dir (ca.pem, ca.key), creating it on first use: ECDSA
 * P-256, 10 years, key file 0600 and dir 0700, owned by the caller (root).
 * A CA older than rotate_days is replaced by a new one; the previous one is
 * kept (ca-previous.pem) and still exported for grace_days so containers
 * that trust it keep working while they are updated. NULL with a reason.
 */
struct tls_ca *tls_ca_open(const char *dir, unsigned rotate_days, unsigned grace_days, char *err,
                           size_t errlen);
void tls_ca_free(struct tls_ca *ca);
/* The certificates to trust, PEM: the current CA, then the previous one
 * while in its grace period. Owned by ca. */
const char *tls_ca_pem(const struct tls_ca *ca);
/* SHA-256 fingerprint of the current CA, "AB:CD:..." (for logs and status). */
const char *tls_ca_fingerprint(const struct tls_ca *ca);
/* 1 if cert was issued by this CA (current or previous): such an upstream
 * certificate means a loop or an attack, and is refused. */
int tls_ca_issued(const struct tls_ca *ca, X509 *cert);

/* --- forged leaves (forge.c) ------------------------------------------------------ */

struct tls_forge;

/* A bounded cache of forged leaves, keyed by the upstream certificate's
 * SHA-256; max_entries >= 1. */
struct tls_forge *tls_forge_new(struct tls_ca *ca, size_t max_entries);
void tls_forge_free(struct tls_forge *f);
/*
 * An SSL_CTX for the client side presenting a leaf forged from upstream:
 * subject CN and subjectAltNames copied (DNS and IP), validity never beyond
 * the upstream's, SHA-256 signed by the CA, a random 128-bit serial, a fresh
 * ECDSA P-256 key (never the CA's), and the CA in the chain. Protocol versions
 * limited to [TLS 1.2, max_version] (never newer than upstream negotiated),
 * TLS 1.2 suites ECDHE with AES-GCM or ChaCha20-Poly1305 only. alpn_http11:
 * select for the client "http/1.1", or the protocol set on each SSL with
 * tls_forge_alpn, and nothing else. The caller owns a reference
 * (SSL_CTX_free). Thread-safe.
 */
SSL_CTX *tls_forge_ctx(struct tls_forge *f, X509 *upstream, int max_version, int alpn_http11,
                       char *err, size_t errlen);
/* The ALPN protocol ssl (from a context of tls_forge_ctx) selects when the
 * client offers it: proto ("h2", "http/1.1"; "" for none), which must
 * outlive the handshake. 0 or -1. */
int tls_forge_alpn(SSL *ssl, const char *proto);
size_t tls_forge_entries(const struct tls_forge *f);

/* --- upstream validation (verify.c) ------------------------------------------------ */

struct tls_upstream_policy {
    const char *ca_file;   /* extra trusted roots (PEM), NULL: none */
    const char *ca_dir;    /* system store; NULL: OpenSSL's default paths */
    unsigned min_rsa_bits; /* 2048 */
    unsigned min_ec_bits;  /* 256 */
};

/* Client context for upstream connections: TLS 1.2 and 1.3 only, strong
 * suites, the trust store, chain verification on, OCSP stapling asked for.
 * Fails without a public suffix list (libpsl). */
SSL_CTX *tls_upstream_ctx_new(const struct tls_upstream_policy *p, char *err, size_t errlen);
/* Prepares ssl for the handshake: SNI (if any) and hostname checking against
 * sni, or against the IP address ip when there is no SNI. */
int tls_upstream_prepare(SSL *ssl, const char *sni, const char *ip);
/*
 * After the handshake: 0 if the upstream may be trusted, else -1 with why
 * ("certificate has expired", "hostname mismatch", "signature algorithm
 * sha1WithRSAEncryption is too weak", "RSA key of 1024 bits is too small",
 * "issued by sluice's own CA", "certificate revoked (stapled OCSP
 * response, ...)", "must-staple certificate without a stapled OCSP
 * response", "wildcard *.co.uk covers a public suffix", ...). Chain, dates
 * and hostname come from OpenSSL's verification result; key size, signature
 * algorithm and key usage are checked here for every certificate of the
 * chain but the root; the leaf must not be a CA, its matching wildcard must
 * not cover a public suffix, and a stapled OCSP response must verify and
 * say "good" (required for a must-staple leaf).
 */
int tls_upstream_check(SSL *ssl, const struct tls_upstream_policy *p, const struct tls_ca *own,
                       char *why, size_t whylen);
/*
 * After a failed SSL_connect() that returned ret: why, in the words
 * tls_upstream_check would use when the certificate was refused during the
 * handshake (OpenSSL's security level refuses weak keys and digests there),
 * else the TLS or system error. Clears the thread's OpenSSL error queue.
 */
void tls_upstream_handshake_error(SSL *ssl, int ret, char *why, size_t whylen);

/* --- the proxy (proxy.c) ---------------------------------------------------------- */

struct tls_proxy;
struct dpi_hello;
struct sockaddr;

/* What to do with a new connection, answered by ops.decide. */
enum tls_proxy_action {
    TLS_PROXY_SPLICE = 0,    /* relay the bytes untouched, hello included (the policy names it) */
    TLS_PROXY_INTERCEPT = 1, /* validate upstream, forge, inspect plaintext */
    TLS_PROXY_CLOSE = 2,     /* refuse: close at once */
    TLS_PROXY_BYPASS = 3,    /* a bypass claimed by name: spliced only if the upstream's
                                certificate, validated as for interception, is valid for the
                                SNI at the real destination; else intercepted */
    TLS_PROXY_PLAIN = 4,     /* not TLS: relayed as plaintext through ops.data */
};

/* Plaintext directions, as enum dpi_dir: 0 client to server, 1 server to client. */
#define TLS_PROXY_UP   0
#define TLS_PROXY_DOWN 1

/* A connection as the appliance sees it; valid only during the call. */
struct tls_proxy_peer {
    unsigned worker;               /* 0 .. workers-1: the thread making the call */
    const struct sockaddr *client; /* the container's address */
    const struct sockaddr *server; /* the original destination (from the kernel) */
    const struct dpi_hello *hello; /* decide() only; NULL: not TLS, or a hello sluice's own
                                      parser found odd (tls says which) */
    int tls;                       /* the client sent a ClientHello OpenSSL accepts */
    const char *sni;               /* "" when absent */
    int version;                   /* negotiated upstream (TLS1_3_VERSION), 0 before or plain */
    const char *alpn; /* open() on: the protocol both sides use, "h2", "http/1.1" or "" */
};

/* The appliance's answer to a new connection. */
struct tls_proxy_decision {
    enum tls_proxy_action action;
    /* If the upstream asks for a client certificate: splice (mutual TLS the
     * operator trusts at this destination). Else the proxy answers without
     * one and keeps intercepting. */
    int mtls_splice;
    char why[TLS_ERRLEN]; /* the rule that spliced, bypassed or refused: goes in events */
    char mtls_why[160];   /* the rule behind mtls_splice */
};

/*
 * The appliance's side. Every call for one connection comes from the same
 * worker thread (peer->worker); calls from different workers run in
 * parallel. h is what open() returned. Any op may be NULL.
 */
struct tls_proxy_ops {
    void *ctx;
    /* After the whole ClientHello (or the first bytes of a stream that is
     * not TLS) was read. NULL: intercept TLS, refuse the rest. INTERCEPT for
     * a stream that is not TLS means CLOSE, PLAIN for TLS means INTERCEPT. */
    void (*decide)(void *ctx, const struct tls_proxy_peer *peer, struct tls_proxy_decision *out);
    /* Intercepted only: both handshakes done, before any plaintext. */
    void *(*open)(void *ctx, const struct tls_proxy_peer *peer);
    /* Plaintext of direction dir, in order; 1 blocks the connection. */
    int (*data)(void *ctx, void *h, int dir, const uint8_t *p, size_t n);
    /* 1 while a message of dir is open: its bytes are held back (up to
     * hold_limit) so that a block replaces all of it with the page. Asked
     * after every data() call, so it should say 1 from a message's first
     * byte to its last. */
    int (*holding)(void *ctx, void *h, int dir);
    /* Direction dir ended (close_notify, FIN); 1 blocks what is held. */
    int (*end)(void *ctx, void *h, int dir);
    /* The HTTP response replacing a blocked message; 0: just close. */
    size_t (*block_page)(void *ctx, void *h, char *buf, size_t len);
    /* Interception refused (why says which): the upstream was unreachable
     * or its handshake failed, and the client got a handshake_failure alert;
     * or its certificate failed validation, and the client got a 403 page
     * with why. Nothing from that upstream reaches the client; no open(). */
    void (*refused)(void *ctx, const struct tls_proxy_peer *peer, const char *why);
    /* The end of a connection open() was called for. */
    void (*close)(void *ctx, void *h);
    /*
     * Every other decision that leaves a connection uninspected or not
     * served, with its reason: action "spliced" (relayed untouched),
     * "refused" (closed: not TLS, a hello OpenSSL refuses, out of
     * resources, a server that wants a client certificate), "intercepted"
     * (a bypass claim that was not confirmed), "plaintext" (not TLS, relayed
     * through the engine). Resource refusals come at most once a second per
     * worker, with how many there were (why says so).
     */
    void (*report)(void *ctx, const struct tls_proxy_peer *peer, const char *action,
                   const char *why);
    /*
     * The upstream socket: TCP, of peer->server's family, not connected
     * (possibly bound), for the proxy to make non-blocking and connect to
     * peer->server; -1 with why refuses the connection. NULL: a socket
     * marked with upstream_mark. Called for every upstream connection
     * (interception, splice, bypass validation).
     */
    int (*upstream_socket)(void *ctx, const struct tls_proxy_peer *peer, char *why, size_t whylen);
    /* HTTP/2 (alpn "h2"): plaintext goes to data() in whole frames, and
     * holding() is not asked. The streams blocked since the last call, at
     * most max: each is reset both ways while the others go on. A 1 from
     * data() or end() still blocks the whole connection (GOAWAY). */
    size_t (*blocked_streams)(void *ctx, void *h, uint32_t *ids, size_t max);
    /* HTTP/2: the held end of stream's body in dir is about to go before
     * the body ended (its sender waits for an answer): judge the body so
     * far as if whole; a block shows in blocked_streams. */
    void (*judge_held)(void *ctx, void *h, int dir, uint32_t stream);
};

struct tls_proxy_config {
    const char *address;     /* one literal address to listen on; NULL: 0.0.0.0 and :: */
    uint16_t port;           /* 0: any (see tls_proxy_port) */
    unsigned workers;        /* threads, each with its own listeners (SO_REUSEPORT) */
    unsigned max_conns;      /* open connections at once, all workers */
    unsigned idle_ms;        /* an established connection with no traffic is closed */
    unsigned handshake_ms;   /* each step before relaying: hello, connect, handshakes */
    size_t hold_limit;       /* plaintext held per connection; past it, streamed */
    size_t hold_total;       /* plaintext held by all connections (0: no limit); when it
                                is reached, connections stop reading until it goes down */
    unsigned max_per_client; /* open connections of one client address (0: no limit) */
    unsigned stall_ms;       /* a connection whose held message or blocked write makes
                                no progress this long is closed (0: idle_ms) */
    unsigned bypass_cache_s; /* how long a confirmed bypass (address, port, name) is trusted */
    uint32_t upstream_mark;  /* SO_MARK of upstream sockets, so they are not redirected */
    struct tls_forge *forge;
    const struct tls_ca *ca; /* upstreams it issued are refused */
    const struct tls_upstream_policy *upstream;
    /* Tests: connect here instead of the original destination. */
    const struct sockaddr *fixed_upstream;
};

/* Proxy counters, readable from any thread. */
struct tls_proxy_stats {
    uint64_t connections; /* accepted */
    uint64_t intercepted; /* both handshakes done */
    uint64_t spliced;
    uint64_t refused;              /* upstream unreachable, handshake failed or not trusted */
    uint64_t blocked;              /* ops.data or ops.end said block */
    uint64_t closed;               /* decided CLOSE, not TLS, not redirected, over max_conns */
    uint64_t client_failed;        /* client handshakes that failed (CA not trusted) */
    uint64_t timeouts;             /* idle or handshake */
    uint64_t hold_overflows;       /* messages streamed past hold_limit */
    uint64_t accept_paused;        /* out of descriptors: accepting paused for a tick */
    uint64_t not_tls;              /* streams that were not TLS (refused or relayed as plaintext) */
    uint64_t over_client_cap;      /* refused: the client had max_per_client open */
    uint64_t hold_waits;           /* messages whose reading paused for hold_total */
    uint64_t stalls;               /* closed for no progress (stall_ms) */
    uint64_t bypass_confirmed;     /* bypass claims whose upstream was valid for the name */
    uint64_t bypass_unconfirmed;   /* bypass claims intercepted instead */
    uint64_t held;                 /* plaintext bytes held now, all connections */
    uint64_t bytes_up, bytes_down; /* relayed, plaintext when intercepted */
    uint64_t h2_streams_blocked;   /* HTTP/2 streams reset, their connection going on */
    uint64_t h2_errors;            /* h2 connections closed: frames the relay cannot pass */
    uint64_t open;                 /* now */
};

/*
 * How many connections fit in nofile descriptors: two each (the container's
 * and upstream's), after reserve for the rest of the process; at most want,
 * at least 1. For cfg.max_conns, so the proxy closes what does not fit
 * instead of leaving it unaccepted in the kernel.
 */
unsigned tls_proxy_conns_fit(uint64_t nofile, unsigned reserve, unsigned want);

/* Binds the listeners and starts the workers; NULL with a reason. ops is
 * copied; cfg's pointers must outlive the proxy. */
struct tls_proxy *tls_proxy_start(const struct tls_proxy_config *cfg,
                                  const struct tls_proxy_ops *ops, char *err, size_t errlen);
/* The port listened on (the one chosen when cfg.port was 0). */
uint16_t tls_proxy_port(const struct tls_proxy *p);
void tls_proxy_stats(const struct tls_proxy *p, struct tls_proxy_stats *out);
/* Closes every connection (ops.close for those opened), joins the workers
 * and frees p. */
void tls_proxy_stop(struct tls_proxy *p);

#endif
