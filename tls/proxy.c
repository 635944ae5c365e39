/*
 * The transparent TLS proxy: containers' connections to port 443 arrive here
 * through an iptables REDIRECT.
 *
 * Shape: N workers, each a thread with its own epoll loop and its own
 * SO_REUSEPORT listeners, so the kernel spreads connections and no state is
 * shared but counters. Every socket is non-blocking; a connection is a small
 * struct whose two sides (client, upstream) are registered level-triggered,
 * except while the ClientHello is peeked (edge-triggered: a peek leaves the
 * bytes queued, so only new bytes may wake us).
 *
 * The ClientHello is read with MSG_PEEK and never consumed: a spliced
 * connection relays it from the kernel like any byte, and an intercepted one
 * hands the socket to SSL_accept with the hello still queued. The original
 * destination comes from conntrack (SO_ORIGINAL_DST), never from the SNI, so
 * a container cannot steer the proxy anywhere it could not connect itself.
 *
 * Order of an interception: upstream connect (ops.upstream_socket, or
 * SO_MARK so the appliance's rules do not redirect it back here), upstream
 * handshake with the client's SNI, validation; only then a leaf is forged
 * from the upstream's and the client handshake completes, never at a newer
 * version than upstream's. ALPN: upstream is offered what the client offered
 * of h2 and http/1.1, in the client's order, and the client gets what
 * upstream selected (or nothing, as upstream said). Nothing from an
 * untrusted upstream reaches the client.
 *
 * Nothing is spliced silently. A hello sluice's own parser finds odd is
 * read by OpenSSL (the parser the client handshake will use), and refused
 * only if OpenSSL refuses it; bytes that are not TLS are refused or relayed
 * as plaintext through the engine. A splice happens only for a reason the
 * appliance names, and a bypass claimed by server name only once the real
 * destination proves it with a certificate valid for that name (the
 * interception's own upstream handshake; confirmations are cached). A server
 * asking for a client certificate gets an empty answer, and is spliced only
 * where the appliance's decision says so. Every splice and refusal goes to
 * ops.report or ops.refused with its reason.
 *
 * An h2 connection's plaintext goes through the HTTP/2 relay (h2relay.c):
 * frame by frame, so that a blocked stream is reset while the others go on.
 *
 * Plaintext goes through ops.data; while ops.holding says a message is open,
 * its bytes are kept (up to hold_limit per connection) so that a block can
 * replace the whole message with a page instead of cutting it. Buffers exist
 * only while bytes are held or a write is blocked; idle connections keep
 * their SSL objects with released buffers and this struct.
 *
 * Fair shares: held bytes of all connections are counted against
 * hold_total; once it is reached, the clients holding most stop being read
 * (backpressure) until it goes down, for HOLD_WAIT_MS at most (then the
 * message is streamed, as past hold_limit, so held messages cannot wait for
 * each other forever), and a connection whose held bytes make no progress
 * for stall_ms is closed. Each client address has at most
 * max_per_client connections. Refusals for lack of resources are counted
 * and reported at most once a second per worker.
 */
#include "dpi.h"
#include "h2relay.h"
#include "sl_buf.h"
#include "tls.h"
#include "tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h; those
 * headers clash with glibc's, so only the numbers are taken. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* The longest ClientHello peeked: 64 KiB of handshake with the headers of
 * the records it may be cut into. Real clients send a few hundred bytes to
 * a few KiB (post-quantum key shares included); a longer hello is refused
 * with an event. The kernel's receive buffer holds this much. */
#define HELLO_MAX   (65536 + 5 * 16 + 1024)
#define IO_CHUNK    16384 /* one TLS record of plaintext */
#define PAGE_MAX    16384
#define READ_BUDGET 32 /* reads per direction per wakeup, for fairness */
#define TICK_MS     250
#define LINGER_MS   2000
/* After a TLS 1.3 handshake in which the upstream asked for a client
 * certificate and got none, how long to wait for its verdict (a session
 * ticket, data, or an alert) before going on. */
#define CONFIRM_MS 1000
/* How long a connection waits for hold_total before its held message is
 * streamed instead. */
#define HOLD_WAIT_MS 1000
/* Resource refusals are reported at most this often per worker. */
#define REPORT_MS 1000
/* Confirmed bypasses kept (address, port, name), direct-mapped. */
#define BYPASS_SLOTS 1024
/* Client addresses tracked for max_per_client and held bytes. */
#define CLIENT_BUCKETS 1024
/* A worker back to no connection after this many at once gives the memory
 * they used back to the system (see worker_main). */
#define TRIM_AFTER 256
/* A DATA frame held this long goes on unjudged: its sender may be waiting
 * for an answer before it sends more (a gRPC stream, say). */
#define H2_HOLD_MS 1000

enum obj_kind { OBJ_LISTENER, OBJ_WAKE, OBJ_SIDE };

/* Every epoll registration points at one of these; kind comes first. */
struct obj {
    enum obj_kind kind;
    int fd;
};

enum conn_state {
    ST_HELLO,      /* peeking the ClientHello */
    ST_CONNECT,    /* upstream TCP connect */
    ST_UP_HS,      /* upstream handshake */
    ST_UP_CONFIRM, /* TLS 1.3 upstream that asked for a client certificate: its verdict */
    ST_CL_HS,      /* client handshake, forged leaf */
    ST_RELAY,      /* intercepted: plaintext both ways */
    ST_SPLICE,     /* bytes both ways, untouched */
    ST_REFUSE_HS,  /* client handshake to show why upstream was refused */
    ST_DRAIN,      /* writing a page to the client */
    ST_LINGER,     /* page sent: reading until the client closes, so it is not reset */
    ST_DEAD,
};

struct conn;

struct side {
    enum obj_kind kind; /* OBJ_SIDE */
    int fd;
    SSL *ssl;
    struct conn *c;
    uint32_t events;        /* registered interest */
    uint8_t want_r, want_w; /* interest computed by the last pass */
    uint8_t parked;         /* out of epoll: it hung up while we did not need it */
};

/* Sides: 0 the client, 1 upstream. Directions (TLS_PROXY_UP/DOWN) are named
 * by the side they are read from, so direction d goes side[d] -> side[!d]. */
struct conn {
    struct side side[2];
    struct worker *w;
    struct conn *prev, *next; /* in the worker's handshake or idle list */
    uint64_t last_ms;
    enum conn_state st;
    int intercept;
    int version;
    void *h;
    struct sl_buf out[2]; /* by direction: read, not yet written */
    size_t off[2];        /* of out[d], already written */
    uint8_t hold[2];      /* out[d] is held for ops.holding */
    uint8_t overflow[2];  /* the current message of d went past hold_limit */
    uint8_t eof[2];       /* 1 clean (close_notify, FIN), 2 unclean */
    uint8_t shut[2];      /* EOF passed on to side[!d] */
    uint8_t opened;
    uint8_t client_auth;    /* the upstream asked for a client certificate */
    uint8_t ticket;         /* the upstream sent a session ticket (it accepted us) */
    uint8_t plain;          /* not TLS, relayed as plaintext through the engine */
    uint8_t tls;            /* the client sent a ClientHello OpenSSL accepts */
    uint8_t bypass;         /* a bypass claim being validated */
    uint8_t mtls_splice;    /* splice if the upstream asks for a client certificate */
    uint8_t waiting;        /* on the worker's list of connections waiting for hold_total */
    struct client *cl;      /* its client address, counted */
    struct conn *wnext;     /* in the worker's waiting list */
    size_t counted;         /* of its held bytes, added to the totals */
    uint64_t wait_ms;       /* waiting for hold_total since */
    uint8_t alpn_offer[12]; /* to upstream: the client's h2 and http/1.1, wire format */
    uint8_t alpn_offer_len;
    char alpn[10];  /* selected by upstream, and so for the client: "h2", "http/1.1", "" */
    struct h2r *h2; /* the HTTP/2 relay of an h2 connection */
    struct sockaddr_storage client, server;
    char sni[256];
    char why[TLS_ERRLEN]; /* the rule that spliced or bypassed it */
    char mtls_why[160];
};

/* One client address: its open connections and held bytes. */
struct client {
    struct client *next;
    struct sockaddr_storage addr; /* port 0 */
    unsigned conns;
    size_t held;
};

/* A destination confirmed valid for a bypassed name. */
struct bypass_slot {
    struct sockaddr_storage dst;
    uint64_t expires_ms;
    char name[256];
};

struct conn_list {
    struct conn *head, *tail;
};

struct worker {
    struct tls_proxy *p;
    unsigned idx;
    pthread_t thread;
    int started;
    int epfd;
    struct obj wake;
    struct obj lis[2];
    unsigned nlis;
    struct conn_list hs, idle; /* by deadline: handshake_ms, idle_ms */
    struct conn *dead;         /* closed during this batch, freed after it */
    uint64_t now;
    unsigned nconns, peak;     /* open now; most open since the last trim */
    unsigned h2_conns;         /* open with the HTTP/2 relay */
    uint64_t h2_swept_ms;      /* held DATA last looked at (h2_release_old) */
    uint64_t closes;           /* connections closed, ever */
    uint64_t paused_ms;        /* listeners out of epoll since (0: not paused) */
    uint64_t paused_closes;    /* closes when they were paused */
    struct conn *waiting;      /* stopped reading for hold_total */
    uint64_t report_ms;        /* last resource refusal reported */
    uint64_t unreported;       /* resource refusals since */
    struct tls_proxy_stats st; /* updated atomically, summed by tls_proxy_stats */
    uint8_t scratch[HELLO_MAX];
};

struct tls_proxy {
    struct tls_proxy_config cfg;
    struct tls_proxy_ops ops;
    SSL_CTX *up_ctx;
    EVP_PKEY *page_key; /* signs the stand-in leaves of refusal pages */
    struct sockaddr_storage fixed;
    socklen_t fixedlen;
    uint16_t port;
    unsigned nworkers;
    uint64_t open; /* atomic */
    struct worker *w;
    SSL_CTX *probe_ctx; /* reads hellos sluice's own parser finds odd */
    /* Client addresses (max_per_client, fair shares of hold_total) and
     * confirmed bypasses, shared by the workers. */
    pthread_mutex_t lock;
    struct client *clients[CLIENT_BUCKETS];
    unsigned holding_clients; /* clients with held bytes */
    size_t held;              /* all held bytes */
    struct bypass_slot *bypass;
};

#define STAT_ADD(w, f, n) __atomic_fetch_add(&(w)->st.f, (uint64_t)(n), __ATOMIC_RELAXED)

enum { IO_EOF = 0, IO_ERR = -1, IO_WANT_READ = -2, IO_WANT_WRITE = -3, IO_EOF_UNCLEAN = -4 };

static void conn_close(struct conn *c);
static void refuse_alert(struct conn *c, const char *why);
static void h2_count(struct conn *c);

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static unsigned sa_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

static void sa_ip(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (inet_ntop(ss->ss_family, a, buf, len) == NULL)
        snprintf(buf, len, "?");
}

static int sa_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

/* Copies src into dst, cut to fit. */
static void str_set(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n >= len)
        n = len - 1;
    memmove(dst, src, n);
    dst[n] = '\0';
}

static void peer_init(struct tls_proxy_peer *peer, const struct conn *c)
{
    peer->worker = c->w->idx;
    peer->client = (const struct sockaddr *)&c->client;
    peer->server = (const struct sockaddr *)&c->server;
    peer->hello = NULL;
    peer->tls = c->tls;
    peer->sni = c->sni;
    peer->version = c->version;
    peer->alpn = c->alpn;
}

/* --- reports ------------------------------------------------------------------- */

/* A decision that is not an interception (ops.report). */
static void report(struct conn *c, const char *action, const char *why)
{
    const struct tls_proxy_ops *ops = &c->w->p->ops;
    if (ops->report == NULL)
        return;
    struct tls_proxy_peer peer;
    peer_init(&peer, c);
    ops->report(ops->ctx, &peer, action, why);
}

/* A refusal for lack of resources: reported at most once per REPORT_MS per
 * worker, with how many were not, so a flood cannot flood the log. */
static void report_resource(struct conn *c, const char *why)
{
    struct worker *w = c->w;
    w->unreported++;
    if (w->report_ms && w->now < w->report_ms + REPORT_MS)
        return;
    char msg[TLS_ERRLEN];
    if (w->unreported > 1)
        snprintf(msg, sizeof(msg), "%s (%llu refusals for lack of resources since the last report)",
                 why, (unsigned long long)w->unreported);
    else
        snprintf(msg, sizeof(msg), "%s", why);
    w->report_ms = w->now ? w->now : 1;
    w->unreported = 0;
    report(c, "refused", msg);
}

/* --- client addresses and their shares --------------------------------------------- */

static unsigned addr_hash(const struct sockaddr_storage *ss, unsigned port, const char *name)
{
    const uint8_t *a = ss->ss_family == AF_INET6
                           ? (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                           : (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
    size_t n = ss->ss_family == AF_INET6 ? 16 : 4;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ a[i]) * 16777619u;
    h = (h ^ (port & 0xff)) * 16777619u;
    h = (h ^ (port >> 8)) * 16777619u;
    for (; name && *name; name++) {
        unsigned char ch = (unsigned char)*name;
        h = (h ^ (ch >= 'A' && ch <= 'Z' ? ch + 32 : ch)) * 16777619u;
    }
    return h;
}

/* The address without its port, for comparisons. */
static void addr_only(struct sockaddr_storage *out, const struct sockaddr_storage *in)
{
    memset(out, 0, sizeof(*out));
    out->ss_family = in->ss_family;
    if (in->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)out)->sin6_addr = ((const struct sockaddr_in6 *)in)->sin6_addr;
    else
        ((struct sockaddr_in *)out)->sin_addr = ((const struct sockaddr_in *)in)->sin_addr;
}

/* Counts one more connection of c's client; -1 when it has max_per_client
 * already (or memory is short). */
static int client_add(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    struct sockaddr_storage a;
    addr_only(&a, &c->client);
    unsigned b = addr_hash(&a, 0, NULL) % CLIENT_BUCKETS;
    pthread_mutex_lock(&p->lock);
    struct client *cl = p->clients[b];
    while (cl && !sa_same(&cl->addr, &a))
        cl = cl->next;
    if (cl == NULL && (cl = calloc(1, sizeof(*cl))) != NULL) {
        cl->addr = a;
        cl->next = p->clients[b];
        p->clients[b] = cl;
    }
    int ok = cl && (p->cfg.max_per_client == 0 || cl->conns < p->cfg.max_per_client);
    if (ok) {
        cl->conns++;
        c->cl = cl;
    }
    pthread_mutex_unlock(&p->lock);
    return ok ? 0 : -1;
}

/* Moves c's held bytes in the totals to what it holds now. */
static void held_update(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    size_t now = c->st == ST_DEAD ? 0 : c->out[0].len + c->out[1].len;
    if (now == c->counted || c->cl == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    struct client *cl = c->cl;
    size_t before = cl->held;
    cl->held = cl->held - c->counted + now;
    __atomic_store_n(&p->held, p->held - c->counted + now, __ATOMIC_RELAXED);
    if (before == 0 && cl->held > 0)
        p->holding_clients++;
    else if (before > 0 && cl->held == 0)
        p->holding_clients--;
    pthread_mutex_unlock(&p->lock);
    c->counted = now;
}

static void client_remove(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    if (c->cl == NULL)
        return;
    held_update(c);
    pthread_mutex_lock(&p->lock);
    struct client *cl = c->cl;
    if (--cl->conns == 0 && cl->held == 0) {
        unsigned b = addr_hash(&cl->addr, 0, NULL) % CLIENT_BUCKETS;
        struct client **pp = &p->clients[b];
        while (*pp != cl)
            pp = &(*pp)->next;
        *pp = cl->next;
        free(cl);
    }
    pthread_mutex_unlock(&p->lock);
    c->cl = NULL;
}

/*
 * Whether c must stop reading because hold_total is reached: only when its
 * client holds at least its share (hold_total over the clients holding), so
 * the clients that hold most wait and the others go on.
 */
static int held_over(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    if (p->cfg.hold_total == 0 || c->cl == NULL ||
        __atomic_load_n(&p->held, __ATOMIC_RELAXED) < p->cfg.hold_total)
        return 0;
    pthread_mutex_lock(&p->lock);
    unsigned n = p->holding_clients ? p->holding_clients : 1;
    int over = p->held >= p->cfg.hold_total && c->cl->held * n >= p->cfg.hold_total;
    pthread_mutex_unlock(&p->lock);
    return over;
}

static void wait_for_budget(struct conn *c)
{
    if (c->waiting)
        return;
    c->waiting = 1;
    c->wnext = c->w->waiting;
    c->w->waiting = c;
}

/* --- confirmed bypasses ------------------------------------------------------------ */

static struct bypass_slot *bypass_slot(struct tls_proxy *p, const struct conn *c)
{
    return &p->bypass[addr_hash(&c->server, sa_port(&c->server), c->sni) % BYPASS_SLOTS];
}

static int bypass_cached(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    if (p->bypass == NULL)
        return 0;
    pthread_mutex_lock(&p->lock);
    struct bypass_slot *b = bypass_slot(p, c);
    int hit = b->expires_ms > c->w->now && sa_same(&b->dst, &c->server) &&
              strcasecmp(b->name, c->sni) == 0;
    pthread_mutex_unlock(&p->lock);
    return hit;
}

static void bypass_confirm(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    if (p->bypass == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    struct bypass_slot *b = bypass_slot(p, c);
    b->dst = c->server;
    snprintf(b->name, sizeof(b->name), "%s", c->sni);
    b->expires_ms = c->w->now + (uint64_t)p->cfg.bypass_cache_s * 1000;
    pthread_mutex_unlock(&p->lock);
}

/* --- lists and timers ------------------------------------------------------------ */

static void list_del(struct conn_list *l, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_add(struct conn_list *l, struct conn *c)
{
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static struct conn_list *conn_list_of(struct conn *c)
{
    return c->st == ST_RELAY || c->st == ST_SPLICE ? &c->w->idle : &c->w->hs;
}

/* Moves c to the list its new state belongs to, deadline from now. */
static void conn_set_state(struct conn *c, enum conn_state st)
{
    list_del(conn_list_of(c), c);
    c->st = st;
    c->last_ms = c->w->now;
    list_add(conn_list_of(c), c);
}

/* Traffic on an established connection: push its idle deadline back. */
static void conn_touch(struct conn *c)
{
    if (c->last_ms == c->w->now)
        return;
    list_del(&c->w->idle, c);
    c->last_ms = c->w->now;
    list_add(&c->w->idle, c);
}

static void client_start(struct conn *c);
static void refuse_alert(struct conn *c, const char *why);
static void connect_failed(struct conn *c, const char *why);

/* A connection that made no progress in a step before relaying: a silent
 * client is reported as a resource refusal (rate-limited), an upstream that
 * does not answer as a refused upstream. */
static void handshake_timeout(struct conn *c)
{
    char why[TLS_ERRLEN];
    unsigned ms = c->w->p->cfg.handshake_ms;
    STAT_ADD(c->w, timeouts, 1);
    switch (c->st) {
    case ST_HELLO:
        snprintf(why, sizeof(why), "out of time: no complete ClientHello in %u ms", ms);
        report_resource(c, why);
        break;
    case ST_CONNECT:
    case ST_UP_HS:
        snprintf(why, sizeof(why), "the upstream did not complete the %s in %u ms",
                 c->st == ST_CONNECT ? "TCP connection" : "TLS handshake", ms);
        connect_failed(c, why);
        return;
    default:
        break; /* the client's own handshake: it went away or never trusted us */
    }
    conn_close(c);
}
static void h2_release_old(struct worker *w);

static void sweep(struct worker *w)
{
    const struct tls_proxy_config *cfg = &w->p->cfg;
    h2_release_old(w);
    while (w->idle.head && w->idle.head->last_ms + cfg->idle_ms <= w->now) {
        STAT_ADD(w, timeouts, 1);
        conn_close(w->idle.head);
    }
    /* A connection holding bytes (a message kept for judgement, a write
     * the other side does not take) without progress for stall_ms is closed:
     * slow clients do not keep the budget. */
    unsigned stall = cfg->stall_ms ? cfg->stall_ms : cfg->idle_ms;
    for (struct conn *c = w->idle.head, *next; c && c->last_ms + stall <= w->now; c = next) {
        next = c->next;
        if (c->out[0].len || c->out[1].len) {
            char why[TLS_ERRLEN];
            snprintf(why, sizeof(why), "out of time: %zu bytes held without progress for %u ms",
                     c->out[0].len + c->out[1].len, stall);
            STAT_ADD(w, stalls, 1);
            report_resource(c, why);
            conn_close(c);
        }
    }
    /* Handshakes and pages share one list; a page gets LINGER_MS at most. */
    uint64_t shortest = cfg->handshake_ms < LINGER_MS ? cfg->handshake_ms : LINGER_MS;
    if (shortest > CONFIRM_MS)
        shortest = CONFIRM_MS;
    for (struct conn *c = w->hs.head, *next; c && c->last_ms + shortest <= w->now; c = next) {
        next = c->next;
        if (c->st == ST_UP_CONFIRM) {
            /* No word from the upstream: it did not refuse us. */
            if (c->last_ms + CONFIRM_MS <= w->now)
                client_start(c);
            continue;
        }
        uint64_t limit = c->st == ST_LINGER ? LINGER_MS : cfg->handshake_ms;
        if (c->last_ms + limit <= w->now) {
            if (c->st == ST_LINGER)
                conn_close(c);
            else
                handshake_timeout(c);
        }
    }
}

/* --- epoll ---------------------------------------------------------------------- */

static int side_register(struct conn *c, int i, uint32_t events)
{
    struct side *s = &c->side[i];
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        return -1;
    s->events = events;
    return 0;
}

static void side_interest(struct conn *c, int i, uint32_t events)
{
    struct side *s = &c->side[i];
    if (s->fd < 0)
        return;
    if (s->parked) {
        if (events == 0)
            return;
        s->parked = 0;
        if (side_register(c, i, events) < 0)
            conn_close(c);
        return;
    }
    if (events == s->events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0) {
        conn_close(c);
        return;
    }
    s->events = events;
}

/* Applies the interest computed by the last pass over the connection. */
static void conn_update(struct conn *c)
{
    for (int i = 0; i < 2 && c->st != ST_DEAD; i++) {
        struct side *s = &c->side[i];
        side_interest(c, i, (s->want_r ? EPOLLIN : 0) | (s->want_w ? EPOLLOUT : 0));
    }
}

static void side_close(struct conn *c, int i)
{
    struct side *s = &c->side[i];
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        if (!s->parked)
            epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    s->events = 0;
    s->want_r = s->want_w = 0;
    s->parked = 0;
}

static void conn_close(struct conn *c)
{
    if (c->st == ST_DEAD)
        return;
    struct worker *w = c->w;
    h2_count(c);
    if (c->opened && w->p->ops.close)
        w->p->ops.close(w->p->ops.ctx, c->h);
    c->opened = 0;
    side_close(c, 0);
    side_close(c, 1);
    sl_buf_free(&c->out[0]);
    sl_buf_free(&c->out[1]);
    if (c->h2) {
        h2r_free(c->h2);
        c->h2 = NULL;
        w->h2_conns--;
    }
    list_del(conn_list_of(c), c);
    c->st = ST_DEAD;
    client_remove(c);
    if (c->waiting) {
        struct conn **pp = &w->waiting;
        while (*pp != c)
            pp = &(*pp)->wnext;
        *pp = c->wnext;
        c->waiting = 0;
    }
    c->next = w->dead;
    w->dead = c;
    w->nconns--;
    w->closes++;
    __atomic_fetch_sub(&w->p->open, 1, __ATOMIC_RELAXED);
}

/* --- I/O on one side, TLS or not ----------------------------------------------- */

static int ssl_result(SSL *ssl, int r)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return IO_EOF;
    case SSL_ERROR_SYSCALL:
        return ERR_peek_error() == 0 && errno == 0 ? IO_EOF_UNCLEAN : IO_ERR;
    case SSL_ERROR_SSL:
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return IO_EOF_UNCLEAN;
        return IO_ERR;
    default:
        return IO_ERR;
    }
}

static ssize_t side_read(struct side *s, void *buf, size_t n)
{
    if (s->ssl == NULL) {
        for (;;) {
            ssize_t r = recv(s->fd, buf, n, 0);
            if (r >= 0)
                return r;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_WANT_READ : IO_ERR;
        }
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(s->ssl, buf, (int)n);
    if (r > 0)
        return r;
    int res = ssl_result(s->ssl, r);
    ERR_clear_error();
    return res;
}

static ssize_t side_write(struct side *s, const void *buf, size_t n)
{
    if (s->ssl == NULL) {
        for (;;) {
            ssize_t r = send(s->fd, buf, n, MSG_NOSIGNAL);
            if (r >= 0)
                return r;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_WANT_WRITE : IO_ERR;
        }
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(s->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0)
        return r;
    int res = ssl_result(s->ssl, r);
    ERR_clear_error();
    return res == IO_EOF || res == IO_EOF_UNCLEAN ? IO_ERR : res;
}

/*
 * Writes out[d] to side[!d]. 0 when all of it went, else the IO_ code. A
 * blocked SSL_write is retried from the same bytes (the buffer may move:
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), as OpenSSL requires.
 */
static int flush(struct conn *c, int d)
{
    struct sl_buf *b = &c->out[d];
    while (c->off[d] < b->len) {
        ssize_t r = side_write(&c->side[!d], b->data + c->off[d], b->len - c->off[d]);
        if (r < 0)
            return (int)r;
        c->off[d] += (size_t)r;
    }
    sl_buf_free(b);
    c->off[d] = 0;
    return 0;
}

static int out_append(struct conn *c, int d, const void *p, size_t n)
{
    return sl_buf_append(&c->out[d], p, n) == n ? 0 : -1;
}

/* --- pages ---------------------------------------------------------------------- */

static size_t html_escape(char *out, size_t len, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < len; s++) {
        const char *e = NULL;
        switch (*s) {
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '&':
            e = "&amp;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        }
        if (e) {
            memcpy(out + o, e, strlen(e));
            o += strlen(e);
        } else {
            out[o++] = (unsigned char)*s < 0x20 ? ' ' : *s;
        }
    }
    out[o] = '\0';
    return o;
}

/* The page shown when the upstream certificate is refused. */
static size_t refusal_page(char *buf, size_t len, const char *host, const char *why)
{
    char h[600], y[1200], body[2048];
    html_escape(h, sizeof(h), host);
    html_escape(y, sizeof(y), why);
    int n = snprintf(body, sizeof(body),
                     "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                     "<title>Blocked by sluice</title></head><body>\n"
                     "<h1>Connection blocked by sluice</h1>\n"
                     "<p>The certificate of <b>%s</b> was refused: %s.</p>\n"
                     "</body></html>\n",
                     h, y);
    if (n < 0 || (size_t)n >= sizeof(body))
        return 0;
    int m = snprintf(buf, len,
                     "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\n"
                     "Content-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                     n, body);
    return m < 0 || (size_t)m >= len ? 0 : (size_t)m;
}

/* --- relaying ------------------------------------------------------------------- */

static void start_drain(struct conn *c);

/* Passes the end of direction d on to side[!d]: close_notify after a clean
 * end, a bare FIN after an unclean one (a truncation stays visible). */
static void shut_dst(struct conn *c, int d)
{
    struct side *dst = &c->side[!d];
    if (dst->ssl && c->eof[d] == 1) {
        ERR_clear_error();
        SSL_shutdown(dst->ssl);
        ERR_clear_error();
    }
    shutdown(dst->fd, SHUT_WR);
    c->shut[d] = 1;
}

/*
 * ops.data or ops.end blocked direction d. Upstream is dropped at once. The
 * client gets the block page in place of what is held, unless part of the
 * response being blocked has already gone to it (streamed past hold_limit):
 * then only a close without close_notify, which it sees as truncation.
 */
static void block(struct conn *c, int d)
{
    struct worker *w = c->w;
    const struct tls_proxy_ops *ops = &w->p->ops;
    STAT_ADD(w, blocked, 1);
    side_close(c, 1);
    sl_buf_free(&c->out[0]);
    c->off[0] = 0;
    if (c->h2) {
        /* No HTTP/1 page inside HTTP/2: the client is told the connection
         * is over, after the whole frames already on their way. */
        size_t n = h2r_frame_goaway(w->scratch, h2r_last_stream(c->h2), H2R_RST_TO_CLIENT,
                                    "blocked by sluice");
        if (out_append(c, TLS_PROXY_DOWN, w->scratch, n) < 0) {
            conn_close(c);
            return;
        }
        start_drain(c);
        return;
    }
    if (c->overflow[TLS_PROXY_DOWN] || ops->block_page == NULL) {
        conn_close(c);
        return;
    }
    /* Held bytes were never written and go. Bytes not held were handed to
     * a blocked SSL_write and must go first, unchanged. */
    if (c->hold[TLS_PROXY_DOWN]) {
        sl_buf_free(&c->out[TLS_PROXY_DOWN]);
        c->off[TLS_PROXY_DOWN] = 0;
    }
    c->hold[0] = c->hold[1] = 0;
    size_t n = ops->block_page(ops->ctx, c->h, (char *)w->scratch, PAGE_MAX);
    if (n == 0 || n > PAGE_MAX || out_append(c, TLS_PROXY_DOWN, w->scratch, n) < 0) {
        conn_close(c);
        return;
    }
    start_drain(c);
}

/* --- HTTP/2 ---------------------------------------------------------------------- */

static int h2_inspect(void *ctx, int dir, const uint8_t *p, size_t n)
{
    struct conn *c = ctx;
    const struct tls_proxy_ops *ops = &c->w->p->ops;
    return ops->data && ops->data(ops->ctx, c->h, dir, p, n);
}

static size_t h2_blocked(void *ctx, uint32_t *ids, size_t max)
{
    struct conn *c = ctx;
    const struct tls_proxy_ops *ops = &c->w->p->ops;
    return ops->blocked_streams ? ops->blocked_streams(ops->ctx, c->h, ids, max) : 0;
}

static void h2_judge(void *ctx, int dir, uint32_t stream)
{
    struct conn *c = ctx;
    const struct tls_proxy_ops *ops = &c->w->p->ops;
    if (ops->judge_held)
        ops->judge_held(ops->ctx, c->h, dir, stream);
}

static int h2_out(void *ctx, int dir, const uint8_t *p, size_t n)
{
    return out_append(ctx, dir, p, n);
}

static void h2_io(struct conn *c, struct h2r_io *io)
{
    io->ctx = c;
    io->inspect = h2_inspect;
    io->blocked = h2_blocked;
    io->judge = h2_judge;
    io->out = h2_out;
}

/* Counters of the relay, added once per connection when it closes. */
static void h2_count(struct conn *c)
{
    struct h2r_stats hs;
    if (c->h2 == NULL)
        return;
    h2r_stats(c->h2, &hs);
    STAT_ADD(c->w, h2_streams_blocked, hs.streams_blocked);
    STAT_ADD(c->w, hold_overflows, hs.hold_overflows);
}

/* Writes what waits in out[d]: 1 all written, 0 the other side must be
 * waited for, -1 when c was closed. */
static int write_out(struct conn *c, int d)
{
    struct side *dst = &c->side[!d];
    int r = flush(c, d);
    if (r == IO_WANT_READ)
        dst->want_r = 1;
    else if (r == IO_WANT_WRITE)
        dst->want_w = 1;
    if (r < 0 && r != IO_WANT_READ && r != IO_WANT_WRITE) {
        conn_close(c);
        return -1;
    }
    return r == 0;
}

/* Writes what waits in out[d], if anything; -1 when c was closed. */
static int push_out(struct conn *c, int d)
{
    if (c->out[d].len <= c->off[d] || c->hold[d] || c->side[!d].fd < 0)
        return 0;
    return write_out(c, d) < 0 ? -1 : 0;
}

/* Moves direction d along until it must wait; -1 when c was closed. */
static int pump(struct conn *c, int d)
{
    struct worker *w = c->w;
    struct tls_proxy *p = w->p;
    const struct tls_proxy_ops *ops = &p->ops;
    struct side *src = &c->side[d], *dst = &c->side[!d];
    int budget = READ_BUDGET;

    for (;;) {
        if (c->out[d].len > c->off[d] && !c->hold[d]) {
            int r = write_out(c, d);
            if (r <= 0)
                return r;
            conn_touch(c);
        }
        if (c->eof[d]) {
            if (!c->shut[d])
                shut_dst(c, d);
            return 0;
        }
        if (budget-- <= 0 && !(src->ssl && SSL_has_pending(src->ssl))) {
            src->want_r = 1;
            return 0;
        }
        if (c->hold[d] && p->cfg.hold_total) {
            if (held_over(c)) {
                if (c->wait_ms == 0) {
                    c->wait_ms = w->now ? w->now : 1;
                    STAT_ADD(w, hold_waits, 1);
                }
                if (w->now < c->wait_ms + HOLD_WAIT_MS) {
                    wait_for_budget(c); /* backpressure: this side is not read for now */
                    return 0;
                }
                /* Held messages that all wait for more bytes would wait for
                 * each other forever: after HOLD_WAIT_MS this one is
                 * streamed, still inspected (a block then cuts it). */
                c->overflow[d] = 1;
                c->hold[d] = 0;
                STAT_ADD(w, hold_overflows, 1);
                continue;
            }
            c->wait_ms = 0;
        }
        ssize_t n = side_read(src, w->scratch, IO_CHUNK);
        if (n == IO_WANT_READ || n == IO_WANT_WRITE) {
            if (n == IO_WANT_READ)
                src->want_r = 1;
            else
                src->want_w = 1;
            return 0;
        }
        if (n == IO_ERR) {
            conn_close(c);
            return -1;
        }
        if (n == IO_EOF || n == IO_EOF_UNCLEAN) {
            c->eof[d] = n == IO_EOF ? 1 : 2;
            if (c->opened && ops->end && ops->end(ops->ctx, c->h, d)) {
                block(c, d);
                return -1;
            }
            c->hold[d] = 0; /* the stream ended: nothing more will come to judge */
            if (c->h2) {
                struct h2r_io io;
                h2_io(c, &io);
                if (h2r_eof(c->h2, d, &io) != H2R_OK) {
                    conn_close(c);
                    return -1;
                }
            }
            continue;
        }
        conn_touch(c);
        if (d == TLS_PROXY_UP)
            STAT_ADD(w, bytes_up, n);
        else
            STAT_ADD(w, bytes_down, n);
        if (c->h2) {
            struct h2r_io io;
            const char *why = NULL;
            h2_io(c, &io);
            h2r_now(c->h2, w->now);
            int r = h2r_input(c->h2, d, w->scratch, (size_t)n, &io, &why);
            if (r == H2R_BLOCK) {
                block(c, d);
                return -1;
            }
            if (r != H2R_OK) {
                STAT_ADD(w, h2_errors, 1);
                conn_close(c);
                return -1;
            }
            continue;
        }
        if (c->opened) {
            if (ops->data && ops->data(ops->ctx, c->h, d, w->scratch, (size_t)n)) {
                block(c, d);
                return -1;
            }
            int hold = p->cfg.hold_limit && ops->holding && ops->holding(ops->ctx, c->h, d);
            if (!hold) {
                c->overflow[d] = 0; /* that message is over: the next one may be held */
            } else if (c->overflow[d]) {
                hold = 0;
            } else if (c->out[0].len + c->out[1].len + (size_t)n > p->cfg.hold_limit) {
                c->overflow[d] = 1;
                STAT_ADD(w, hold_overflows, 1);
                hold = 0;
            }
            c->hold[d] = (uint8_t)hold;
        }
        if (c->out[d].len == 0 && !c->hold[d]) {
            /* The usual case: straight through, no buffer. */
            ssize_t r = side_write(dst, w->scratch, (size_t)n);
            if (r == n)
                continue;
            if (r == IO_ERR) {
                conn_close(c);
                return -1;
            }
            size_t done = r > 0 ? (size_t)r : 0;
            if (out_append(c, d, w->scratch + done, (size_t)n - done) < 0) {
                conn_close(c);
                return -1;
            }
            continue;
        }
        if (out_append(c, d, w->scratch, (size_t)n) < 0) {
            conn_close(c);
            return -1;
        }
    }
}

static void relay(struct conn *c)
{
    for (int i = 0; i < 2; i++)
        c->side[i].want_r = c->side[i].want_w = 0;
    if (pump(c, TLS_PROXY_UP) < 0 || pump(c, TLS_PROXY_DOWN) < 0)
        return;
    held_update(c);
    /* The HTTP/2 relay answers one side while reading the other (resets,
     * window updates): what it queued for upstream goes now. */
    if (c->h2 && push_out(c, TLS_PROXY_UP) < 0)
        return;
    if (c->shut[0] && c->shut[1]) {
        conn_close(c);
        return;
    }
    /* RELEASE_BUFFERS alone keeps a record buffer (16 KiB) on a side that
     * is waiting for its next record; freeing it is what keeps an idle
     * connection small. It fails, harmlessly, while a buffer is in use. */
    for (int i = 0; i < 2; i++)
        if (c->side[i].ssl && !c->side[i].want_w)
            (void)!SSL_free_buffers(c->side[i].ssl);
    conn_update(c);
}

/* HTTP/2 DATA held for H2_HOLD_MS goes on (see H2_HOLD_MS). */
static void h2_release_old(struct worker *w)
{
    if (w->h2_conns == 0 || w->now < w->h2_swept_ms + TICK_MS)
        return;
    w->h2_swept_ms = w->now;
    for (struct conn *c = w->idle.head, *next; c; c = next) {
        next = c->next;
        if (c->h2 == NULL || h2r_held(c->h2) == 0 || w->now < H2_HOLD_MS)
            continue;
        struct h2r_io io;
        h2_io(c, &io);
        if (h2r_release_older(c->h2, w->now - H2_HOLD_MS, &io) != H2R_OK) {
            conn_close(c);
            continue;
        }
        relay(c);
    }
}

/* --- pages and the end of a refused or blocked connection ------------------------- */

static void linger(struct conn *c)
{
    for (;;) {
        ssize_t r = recv(c->side[0].fd, c->w->scratch, IO_CHUNK, 0);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c);
        return;
    }
}

static void drain(struct conn *c)
{
    struct side *s = &c->side[0];
    s->want_r = s->want_w = 0;
    int r = flush(c, TLS_PROXY_DOWN);
    if (r == IO_WANT_READ || r == IO_WANT_WRITE) {
        s->want_r = r == IO_WANT_READ;
        s->want_w = r == IO_WANT_WRITE;
        conn_update(c);
        return;
    }
    if (r < 0) {
        conn_close(c);
        return;
    }
    /* Close our half only, and read what the client still sends: closing
     * with unread bytes would reset the connection, and a reset may destroy
     * the page before the client has read it. */
    if (s->ssl) { /* NULL: plaintext relayed (not TLS) */
        ERR_clear_error();
        SSL_shutdown(s->ssl);
        ERR_clear_error();
    }
    shutdown(s->fd, SHUT_WR);
    conn_set_state(c, ST_LINGER);
    s->want_r = 1;
    conn_update(c);
    if (c->st == ST_LINGER)
        linger(c);
}

static void start_drain(struct conn *c)
{
    conn_set_state(c, ST_DRAIN);
    drain(c);
}

/* --- refusing an upstream -------------------------------------------------------- */

/*
 * The upstream could not be reached or gave no certificate to judge: there
 * is nothing to forge from, so the client gets a bare handshake_failure
 * alert. The hello is read away first, for the same reason as in drain().
 */
static void refuse_alert(struct conn *c, const char *why)
{
    static const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 40};
    struct worker *w = c->w;
    const struct tls_proxy_ops *ops = &w->p->ops;
    STAT_ADD(w, refused, 1);
    if (ops->refused) {
        struct tls_proxy_peer peer;
        peer_init(&peer, c);
        ops->refused(ops->ctx, &peer, why);
    }
    while (recv(c->side[0].fd, w->scratch, IO_CHUNK, MSG_DONTWAIT) > 0)
        ;
    if (send(c->side[0].fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* Nothing more to do: the connection goes either way. */
    }
    conn_close(c);
}

/* alpn: what the client side selects; NULL: http/1.1 (a page). */
static int client_ssl(struct conn *c, X509 *leaf, const char *alpn, char *err, size_t errlen)
{
    struct tls_proxy *p = c->w->p;
    SSL_CTX *ctx = tls_forge_ctx(p->cfg.forge, leaf, c->version, 1, err, errlen);
    if (ctx == NULL)
        return -1;
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, c->side[0].fd) != 1 ||
        (alpn && tls_forge_alpn(ssl, alpn) < 0)) {
        SSL_free(ssl);
        snprintf(err, errlen, "client session: %s", tls_openssl_reason());
        return -1;
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    c->side[0].ssl = ssl;
    return 0;
}

static void client_handshake(struct conn *c);

/*
 * The leaf a refusal page is served under. Forging from the refused leaf
 * would copy exactly what was wrong with it (another name, an expired date)
 * and the client would refuse the page; so the forge is given a stand-in
 * naming what the client asked for (its SNI, else the address), valid from
 * yesterday for a week. Ed25519 signatures are deterministic: one name gives
 * one stand-in, and the forge's cache hits.
 */
static X509 *page_leaf(struct tls_proxy *p, const struct conn *c)
{
    char ip[INET6_ADDRSTRLEN];
    const char *name = c->sni;
    if (name[0] == '\0') {
        sa_ip(&c->server, ip, sizeof(ip));
        name = ip;
    }
    time_t day = time(NULL) / 86400 * 86400 - 86400;
    X509 *x = X509_new();
    X509_NAME *subj = X509_NAME_new();
    GENERAL_NAMES *sans = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_OCTET_STRING *addr = a2i_IPADDRESS(name);
    ASN1_IA5STRING *dns = addr ? NULL : ASN1_IA5STRING_new();
    int ok = x && subj && sans && gn && (addr || dns);
    if (ok && dns)
        ok = ASN1_STRING_set(dns, name, (int)strlen(name)) == 1;
    if (ok) {
        GENERAL_NAME_set0_value(gn, addr ? GEN_IPADD : GEN_DNS, addr ? (void *)addr : dns);
        addr = NULL;
        dns = NULL;
        ok = sk_GENERAL_NAME_push(sans, gn) > 0;
        if (ok)
            gn = NULL;
    }
    ok = ok && X509_set_version(x, X509_VERSION_3) == 1 &&
         ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1 &&
         (strlen(name) > 64 ||
          X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
                                     (const unsigned char *)name, -1, -1, 0) == 1) &&
         X509_set_subject_name(x, subj) == 1 && X509_set_issuer_name(x, subj) == 1 &&
         ASN1_TIME_set(X509_getm_notBefore(x), day) != NULL &&
         ASN1_TIME_set(X509_getm_notAfter(x), day + 8 * 86400) != NULL &&
         X509_set_pubkey(x, p->page_key) == 1 &&
         X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) == 1 &&
         X509_sign(x, p->page_key, NULL) > 0;
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(sans);
    ASN1_OCTET_STRING_free(addr);
    ASN1_IA5STRING_free(dns);
    X509_NAME_free(subj);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/*
 * The upstream certificate failed validation: the client handshake
 * completes (with a stand-in leaf, see page_leaf) and the client gets a 403
 * page saying why, which tells a person far more than an alert would.
 * Upstream is closed first; nothing it sent is passed on.
 */
static void refuse_page(struct conn *c, const char *why)
{
    struct worker *w = c->w;
    const struct tls_proxy_ops *ops = &w->p->ops;
    char err[TLS_ERRLEN];

    int v = SSL_version(c->side[1].ssl);
    c->version = v == TLS1_3_VERSION ? TLS1_3_VERSION : TLS1_2_VERSION;
    side_close(c, 1);
    sl_buf_init(&c->out[TLS_PROXY_DOWN], PAGE_MAX);
    X509 *leaf = page_leaf(w->p, c);
    if (leaf == NULL)
        snprintf(err, sizeof(err), "refusal page: %s", tls_openssl_reason());
    if (leaf == NULL || client_ssl(c, leaf, NULL, err, sizeof(err)) < 0) {
        X509_free(leaf);
        char both[TLS_ERRLEN * 2 + 16];
        snprintf(both, sizeof(both), "%s (and %s)", why, err);
        refuse_alert(c, both);
        return;
    }
    X509_free(leaf);
    STAT_ADD(w, refused, 1);
    if (ops->refused) {
        struct tls_proxy_peer peer;
        peer_init(&peer, c);
        ops->refused(ops->ctx, &peer, why);
    }
    char host[INET6_ADDRSTRLEN];
    sa_ip(&c->server, host, sizeof(host));
    size_t n = refusal_page((char *)w->scratch, PAGE_MAX, c->sni[0] ? c->sni : host, why);
    if (n == 0 || out_append(c, TLS_PROXY_DOWN, w->scratch, n) < 0) {
        conn_close(c);
        return;
    }
    conn_set_state(c, ST_REFUSE_HS);
    client_handshake(c);
}

/* --- handshakes ------------------------------------------------------------------ */

static void opened(struct conn *c)
{
    struct worker *w = c->w;
    const struct tls_proxy_ops *ops = &w->p->ops;
    struct tls_proxy_peer peer;
    const unsigned char *sel = NULL;
    unsigned sel_len = 0;
    /* The client must speak what upstream speaks: a client that did not
     * take upstream's protocol (its offer read otherwise by the hello
     * parser than by OpenSSL) is not relayed. */
    SSL_get0_alpn_selected(c->side[0].ssl, &sel, &sel_len);
    if (sel_len != strlen(c->alpn) || (sel_len && memcmp(sel, c->alpn, sel_len) != 0)) {
        STAT_ADD(w, client_failed, 1);
        conn_close(c);
        return;
    }
    if (strcmp(c->alpn, "h2") == 0) {
        c->h2 = h2r_new(w->p->cfg.hold_limit);
        if (c->h2 == NULL) {
            conn_close(c);
            return;
        }
        w->h2_conns++;
    }
    peer_init(&peer, c);
    c->h = ops->open ? ops->open(ops->ctx, &peer) : NULL;
    c->opened = 1;
    STAT_ADD(w, intercepted, 1);
    /* Both sides are now handed to relay(): nothing is held yet. */
    sl_buf_init(&c->out[0], w->p->cfg.hold_limit + IO_CHUNK + PAGE_MAX);
    sl_buf_init(&c->out[1], w->p->cfg.hold_limit + IO_CHUNK + PAGE_MAX);
    conn_set_state(c, ST_RELAY);
    relay(c);
}

static void client_handshake(struct conn *c)
{
    struct side *s = &c->side[0];
    ERR_clear_error();
    errno = 0;
    int r = SSL_accept(s->ssl);
    if (r == 1) {
        if (c->st == ST_REFUSE_HS)
            start_drain(c);
        else
            opened(c);
        return;
    }
    int res = ssl_result(s->ssl, r);
    ERR_clear_error();
    if (res == IO_WANT_READ || res == IO_WANT_WRITE) {
        s->want_r = res == IO_WANT_READ;
        s->want_w = res == IO_WANT_WRITE;
        c->side[1].want_r = c->side[1].want_w = 0;
        conn_update(c);
        return;
    }
    /* Mostly a container that does not trust the CA yet. */
    STAT_ADD(c->w, client_failed, 1);
    conn_close(c);
}

/* The leaf of an upstream whose certificate failed validation during the
 * handshake (OpenSSL verifies there); NULL for any other failure. */
static void splice_instead(struct conn *c, const char *why);
static void upstream_connect(struct conn *c);

static X509 *refused_leaf(SSL *ssl)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    if (SSL_get_verify_result(ssl) == X509_V_OK || chain == NULL || sk_X509_num(chain) == 0)
        return NULL;
    return sk_X509_value(chain, 0);
}

/* Upstream trusted: a leaf is forged from its certificate and the client
 * handshake completes. */
static void client_start(struct conn *c)
{
    struct side *s = &c->side[1];
    X509 *leaf = SSL_get0_peer_certificate(s->ssl);
    c->version = SSL_version(s->ssl);
    const unsigned char *sel = NULL;
    unsigned sel_len = 0;
    SSL_get0_alpn_selected(s->ssl, &sel, &sel_len);
    if (sel_len >= sizeof(c->alpn))
        sel_len = 0; /* cannot be: only h2 and http/1.1 are offered */
    memcpy(c->alpn, sel ? sel : (const unsigned char *)"", sel_len);
    c->alpn[sel_len] = '\0';
    char err[TLS_ERRLEN];
    if (client_ssl(c, leaf, c->alpn, err, sizeof(err)) < 0) {
        refuse_alert(c, err);
        return;
    }
    /* Upstream waits (its bytes stay queued) until the client is ready. */
    s->want_r = s->want_w = 0;
    conn_set_state(c, ST_CL_HS);
    client_handshake(c);
}

/*
 * A TLS 1.3 upstream that asked for a client certificate judges the empty
 * answer after its handshake is over: an alert (refused), or a session
 * ticket or data (accepted). Peeking leaves data for the relay.
 */
static void upstream_confirm(struct conn *c)
{
    struct side *s = &c->side[1];
    char b;
    ERR_clear_error();
    errno = 0;
    int r = SSL_peek(s->ssl, &b, 1);
    if (r > 0 || c->ticket) {
        ERR_clear_error();
        client_start(c);
        return;
    }
    int res = ssl_result(s->ssl, r);
    if (res == IO_WANT_READ || res == IO_WANT_WRITE) {
        ERR_clear_error();
        if (c->ticket) {
            client_start(c);
            return;
        }
        s->want_r = res == IO_WANT_READ;
        s->want_w = res == IO_WANT_WRITE;
        conn_update(c);
        return;
    }
    char why[TLS_ERRLEN];
    snprintf(why, sizeof(why),
             "the server refused the connection without a client certificate (%s); "
             "tls.mtls_splice names the destinations whose mutual TLS is spliced",
             res == IO_ERR ? tls_openssl_reason() : "it closed the connection");
    refuse_alert(c, why);
}

static void upstream_handshake(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    struct side *s = &c->side[1];
    char why[TLS_ERRLEN], msg[3 * TLS_ERRLEN];
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(s->ssl);
    if (r != 1) {
        int saved = errno;
        int res = ssl_result(s->ssl, r);
        errno = saved;
        if (res == IO_WANT_READ || res == IO_WANT_WRITE) {
            ERR_clear_error();
            s->want_r = res == IO_WANT_READ;
            s->want_w = res == IO_WANT_WRITE;
            conn_update(c);
            return;
        }
        if (c->client_auth && c->mtls_splice) {
            ERR_clear_error();
            splice_instead(c, c->mtls_why);
            return;
        }
        X509 *leaf = refused_leaf(s->ssl);
        tls_upstream_handshake_error(s->ssl, r, why, sizeof(why));
        /* Ours cannot chain to a trusted root: say what it really is. */
        if (leaf && p->cfg.ca && tls_ca_issued(p->cfg.ca, leaf))
            snprintf(why, sizeof(why),
                     "certificate issued by sluice's own CA (a loop, or a "
                     "copy of its key)");
        if (c->bypass) {
            STAT_ADD(c->w, bypass_unconfirmed, 1);
            snprintf(msg, sizeof(msg), "%s not confirmed: %s", c->why, why);
            report(c, "intercepted", msg);
        }
        if (leaf) {
            refuse_page(c, why);
        } else if (c->client_auth) {
            snprintf(msg, sizeof(msg),
                     "the server refused the connection without a client certificate (%s); "
                     "tls.mtls_splice names the destinations whose mutual TLS is spliced",
                     why);
            refuse_alert(c, msg);
        } else {
            refuse_alert(c, why);
        }
        return;
    }
    if (c->client_auth && c->mtls_splice) {
        splice_instead(c, c->mtls_why);
        return;
    }
    X509 *leaf = SSL_get0_peer_certificate(s->ssl);
    if (leaf == NULL) {
        refuse_alert(c, "upstream sent no certificate");
        return;
    }
    if (tls_upstream_check(s->ssl, p->cfg.upstream, p->cfg.ca, why, sizeof(why)) < 0) {
        if (c->bypass) {
            STAT_ADD(c->w, bypass_unconfirmed, 1);
            snprintf(msg, sizeof(msg), "%s not confirmed: %s", c->why, why);
            report(c, "intercepted", msg);
        }
        refuse_page(c, why);
        return;
    }
    if (c->bypass) {
        /* The destination holds a valid certificate for the name claimed:
         * the claim is true, and the client's own hello goes there. */
        STAT_ADD(c->w, bypass_confirmed, 1);
        bypass_confirm(c);
        char ip[INET6_ADDRSTRLEN];
        sa_ip(&c->server, ip, sizeof(ip));
        snprintf(msg, sizeof(msg), "%s (certificate valid for %s at %s port %u)", c->why, c->sni,
                 ip, sa_port(&c->server));
        splice_instead(c, msg);
        return;
    }
    if (c->client_auth && c->version == 0 && SSL_version(s->ssl) == TLS1_3_VERSION) {
        c->version = TLS1_3_VERSION;
        s->want_r = s->want_w = 0;
        conn_set_state(c, ST_UP_CONFIRM);
        upstream_confirm(c);
        return;
    }
    client_start(c);
}

/* A server that asks for a client certificate gets none: sluice has no key
 * of the container's to answer with. Most servers go on without one; those
 * that refuse are refused, unless tls.mtls_splice names them (spliced). */
static int client_cert_asked(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    struct conn *c = SSL_get_app_data(ssl);
    (void)x509;
    (void)pkey;
    if (c)
        c->client_auth = 1;
    return 0;
}

/* A TLS 1.3 session ticket: the upstream accepted the handshake. */
static int ticket_received(SSL *ssl, SSL_SESSION *sess)
{
    struct conn *c = SSL_get_app_data(ssl);
    (void)sess;
    if (c)
        c->ticket = 1;
    return 0;
}

/* Starts over as a splice: a new upstream connection carries the client's
 * own ClientHello, still unread in the kernel (it was only peeked). */
static void splice_instead(struct conn *c, const char *why)
{
    side_close(c, 1);
    c->intercept = 0;
    c->bypass = 0;
    str_set(c->why, sizeof(c->why), why);
    upstream_connect(c);
}

static void upstream_start_tls(struct conn *c)
{
    struct tls_proxy *p = c->w->p;
    struct side *s = &c->side[1];
    char ip[INET6_ADDRSTRLEN];
    sa_ip(&c->server, ip, sizeof(ip));
    s->ssl = SSL_new(p->up_ctx);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1 ||
        tls_upstream_prepare(s->ssl, c->sni[0] ? c->sni : NULL, c->sni[0] ? NULL : ip) < 0 ||
        (c->alpn_offer_len && SSL_set_alpn_protos(s->ssl, c->alpn_offer, c->alpn_offer_len) != 0)) {
        char why[TLS_ERRLEN];
        snprintf(why, sizeof(why), "upstream session: %s", tls_openssl_reason());
        refuse_alert(c, why);
        return;
    }
    SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
    SSL_set_app_data(s->ssl, c);
    conn_set_state(c, ST_UP_HS);
    upstream_handshake(c);
}

/* Not TLS, relayed as plaintext through the engine like plain HTTP. */
static void plain_open(struct conn *c)
{
    struct worker *w = c->w;
    const struct tls_proxy_ops *ops = &w->p->ops;
    struct tls_proxy_peer peer;
    peer_init(&peer, c);
    c->h = ops->open ? ops->open(ops->ctx, &peer) : NULL;
    c->opened = 1;
    sl_buf_init(&c->out[0], w->p->cfg.hold_limit + IO_CHUNK + PAGE_MAX);
    sl_buf_init(&c->out[1], w->p->cfg.hold_limit + IO_CHUNK + PAGE_MAX);
    conn_set_state(c, ST_RELAY);
    relay(c);
}

/* The connection cannot be made: an interception is refused like an
 * untrusted upstream (alert event, handshake_failure); anything else is
 * reported and closed. */
static void connect_failed(struct conn *c, const char *why)
{
    if (c->intercept) {
        refuse_alert(c, why);
        return;
    }
    STAT_ADD(c->w, closed, 1);
    report(c, "refused", why);
    conn_close(c);
}

static void upstream_connected(struct conn *c)
{
    struct worker *w = c->w;
    int e = 0;
    socklen_t len = sizeof(e);
    if (getsockopt(c->side[1].fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        e = errno;
    if (e == EINPROGRESS)
        return;
    if (e) {
        char ip[INET6_ADDRSTRLEN], why[TLS_ERRLEN];
        sa_ip(&c->server, ip, sizeof(ip));
        snprintf(why, sizeof(why), "connecting to %s port %u: %s", ip, sa_port(&c->server),
                 strerror(e));
        connect_failed(c, why);
        return;
    }
    c->side[1].want_w = 0;
    if (c->intercept) {
        upstream_start_tls(c);
        return;
    }
    if (c->plain) {
        plain_open(c);
        return;
    }
    STAT_ADD(w, spliced, 1);
    report(c, "spliced", c->why);
    sl_buf_init(&c->out[0], IO_CHUNK);
    sl_buf_init(&c->out[1], IO_CHUNK);
    conn_set_state(c, ST_SPLICE);
    relay(c);
}

/* The upstream socket: the appliance's (ops.upstream_socket) or our own,
 * marked so the appliance's rules do not redirect it back here. */
static int upstream_socket(struct conn *c, char *why, size_t whylen)
{
    struct tls_proxy *p = c->w->p;
    if (p->ops.upstream_socket) {
        struct tls_proxy_peer peer;
        peer_init(&peer, c);
        why[0] = '\0';
        int fd = p->ops.upstream_socket(p->ops.ctx, &peer, why, whylen);
        if (fd < 0) {
            if (why[0] == '\0')
                snprintf(why, whylen, "no upstream socket");
            return -1;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
            snprintf(why, whylen, "upstream socket: %s", strerror(errno));
            close(fd);
            return -1;
        }
        return fd;
    }
    int fd = socket(c->server.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "upstream socket: %s", strerror(errno));
        return -1;
    }
    if (p->cfg.upstream_mark &&
        setsockopt(fd, SOL_SOCKET, SO_MARK, &p->cfg.upstream_mark, sizeof(uint32_t)) < 0) {
        snprintf(why, whylen, "SO_MARK: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void upstream_connect(struct conn *c)
{
    char why[TLS_ERRLEN];
    int fd = upstream_socket(c, why, sizeof(why));
    if (fd < 0) {
        connect_failed(c, why);
        return;
    }
    c->side[1].fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&c->server, sa_len(&c->server)) < 0 &&
        errno != EINPROGRESS) {
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        connect_failed(c, why);
        return;
    }
    if (side_register(c, 1, EPOLLOUT) < 0) {
        snprintf(why, sizeof(why), "epoll: %s", strerror(errno));
        connect_failed(c, why);
        return;
    }
    c->side[0].want_r = c->side[0].want_w = 0;
    c->side[1].want_w = 1;
    conn_update(c);
    if (c->st != ST_DEAD)
        conn_set_state(c, ST_CONNECT);
}

/* --- reading the ClientHello ------------------------------------------------------ */

/* What OpenSSL read of a ClientHello (hello_probe). */
struct probe {
    int reached;    /* OpenSSL parsed the hello as far as its extensions */
    char alpn[256]; /* the protocols offered, comma separated */
    char sni[256];
};

/* An ALPN extension's protocol list, comma separated (as dpi_hello's). */
static void probe_alpn(const uint8_t *e, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    if (n < 2 || (size_t)((e[0] << 8) | e[1]) != n - 2)
        return;
    for (size_t i = 2; i < n;) {
        size_t len = e[i++];
        if (len == 0 || i + len > n || o + len + 2 > outlen)
            return;
        if (o)
            out[o++] = ',';
        memcpy(out + o, e + i, len);
        o += len;
        out[o] = '\0';
        i += len;
    }
}

/* The server_name as OpenSSL reads it (tls_parse_ctos_server_name): one
 * host_name entry using up the extension, at most 255 bytes, no NUL. Any
 * other byte is kept: OpenSSL servers accept them. */
static void probe_sni(const uint8_t *e, size_t n, char *out, size_t outlen)
{
    out[0] = '\0';
    if (n < 5 || (size_t)((e[0] << 8) | e[1]) != n - 2 || e[2] != 0)
        return;
    size_t len = (size_t)((e[3] << 8) | e[4]);
    if (len != n - 5 || len == 0 || len > 255 || len >= outlen || memchr(e + 5, 0, len))
        return;
    memcpy(out, e + 5, len);
    out[len] = '\0';
}

static int probe_hello_cb(SSL *ssl, int *al, void *arg)
{
    struct probe *pr = SSL_get_app_data(ssl);
    const unsigned char *e;
    size_t n;
    (void)al;
    (void)arg;
    pr->reached = 1;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &e, &n) == 1)
        probe_sni(e, n, pr->sni, sizeof(pr->sni));
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &e,
                                  &n) == 1)
        probe_alpn(e, n, pr->alpn, sizeof(pr->alpn));
    return SSL_CLIENT_HELLO_RETRY; /* read what we wanted; nothing more */
}

/*
 * Hands the peeked hello to OpenSSL, which decides, as the client handshake
 * will: 1 parsed (pr filled), 0 more bytes needed, -1 refused (why says
 * what OpenSSL found wrong).
 */
static int hello_probe(struct tls_proxy *p, const uint8_t *buf, size_t n, struct probe *pr,
                       char *why, size_t whylen)
{
    memset(pr, 0, sizeof(*pr));
    SSL *ssl = SSL_new(p->probe_ctx);
    BIO *rb = BIO_new_mem_buf(buf, (int)n);
    BIO *wb = BIO_new(BIO_s_mem());
    if (ssl == NULL || rb == NULL || wb == NULL) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        snprintf(why, whylen, "reading the ClientHello: out of memory");
        return -1;
    }
    BIO_set_mem_eof_return(rb, -1); /* the end of what was peeked: wait for more */
    SSL_set_bio(ssl, rb, wb);
    SSL_set_app_data(ssl, pr);
    ERR_clear_error();
    int r = SSL_accept(ssl);
    int err = SSL_get_error(ssl, r);
    int res = pr->reached ? 1 : err == SSL_ERROR_WANT_READ ? 0 : -1;
    if (res < 0)
        snprintf(why, whylen, "ClientHello refused by OpenSSL: %s", tls_openssl_reason());
    ERR_clear_error();
    SSL_free(ssl);
    return res;
}

/* Refuses a connection before any upstream: an event, then a close. */
static void refuse_early(struct conn *c, const char *why)
{
    STAT_ADD(c->w, closed, 1);
    report(c, "refused", why);
    conn_close(c);
}

/* What upstream is offered: h2 and http/1.1 as far as the client offered
 * them (offered is the hello's list, comma separated), in its order. */
static void alpn_offer(struct conn *c, const char *offered)
{
    static const char *const known[] = {"h2", "http/1.1"};
    const char *p = offered;
    unsigned seen = 0;

    c->alpn_offer_len = 0;
    while (*p) {
        size_t len = strcspn(p, ",");
        for (unsigned i = 0; i < 2; i++) {
            if (len != strlen(known[i]) || memcmp(p, known[i], len) != 0 || (seen & (1u << i)))
                continue;
            seen |= 1u << i;
            c->alpn_offer[c->alpn_offer_len++] = (uint8_t)len;
            memcpy(c->alpn_offer + c->alpn_offer_len, p, len);
            c->alpn_offer_len += (uint8_t)len;
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

/*
 * Peeks at the client's first bytes until a whole ClientHello is there, then
 * asks the appliance what to do. A hello sluice's own parser finds odd goes
 * to OpenSSL, which decides as the client handshake will; bytes that are not
 * TLS are refused or relayed as plaintext, as the appliance says. Nothing
 * is spliced unless the appliance names a reason.
 */
static void hello_step(struct conn *c)
{
    struct worker *w = c->w;
    struct tls_proxy *p = w->p;
    const struct tls_proxy_ops *ops = &p->ops;
    ssize_t n = recv(c->side[0].fd, w->scratch, HELLO_MAX, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        STAT_ADD(w, closed, 1);
        conn_close(c);
        return;
    }
    char why[2 * TLS_ERRLEN];
    struct dpi_hello hello;
    struct probe pr;
    enum dpi_hello_status hs = dpi_hello_parse(w->scratch, (size_t)n, &hello);
    if (hs == DPI_HELLO_MORE && n < HELLO_MAX)
        return;
    if (hs == DPI_HELLO_MORE) {
        snprintf(why, sizeof(why), "ClientHello longer than %u bytes", (unsigned)HELLO_MAX);
        refuse_early(c, why);
        return;
    }
    const struct dpi_hello *hp = hs == DPI_HELLO_OK ? &hello : NULL;
    int tls = hp != NULL;
    if (hp) {
        size_t len = strnlen(hp->sni, sizeof(c->sni) - 1);
        memcpy(c->sni, hp->sni, len);
        c->sni[len] = '\0';
        alpn_offer(c, hp->alpn);
    } else if (hs == DPI_HELLO_MALFORMED) {
        int r = hello_probe(p, w->scratch, (size_t)n, &pr, why, sizeof(why));
        if (r == 0 && n < HELLO_MAX)
            return;
        if (r <= 0) {
            if (r == 0)
                snprintf(why, sizeof(why), "ClientHello longer than %u bytes", (unsigned)HELLO_MAX);
            refuse_early(c, why);
            return;
        }
        memcpy(c->sni, pr.sni, sizeof(c->sni));
        alpn_offer(c, pr.alpn);
        tls = 1;
    }
    c->tls = (uint8_t)tls;
    struct tls_proxy_peer peer;
    peer_init(&peer, c);
    peer.hello = hp;
    struct tls_proxy_decision dec;
    memset(&dec, 0, sizeof(dec));
    dec.action = tls ? TLS_PROXY_INTERCEPT : TLS_PROXY_CLOSE;
    snprintf(dec.why, sizeof(dec.why), "%s", tls ? "" : "not TLS");
    if (ops->decide)
        ops->decide(ops->ctx, &peer, &dec);
    enum tls_proxy_action a = dec.action;
    if (!tls && (a == TLS_PROXY_INTERCEPT || a == TLS_PROXY_BYPASS))
        a = TLS_PROXY_CLOSE;
    if (tls && a == TLS_PROXY_PLAIN)
        a = TLS_PROXY_INTERCEPT;
    if (!tls)
        STAT_ADD(w, not_tls, 1);
    if (a == TLS_PROXY_BYPASS && c->sni[0] == '\0')
        a = TLS_PROXY_INTERCEPT;
    str_set(c->why, sizeof(c->why), dec.why[0] ? dec.why : "policy");
    str_set(c->mtls_why, sizeof(c->mtls_why), dec.mtls_why);
    c->mtls_splice = (uint8_t)(dec.mtls_splice != 0);
    if (a == TLS_PROXY_BYPASS && hp) {
        /* The server will read the client's own hello: the name claimed
         * must be the one OpenSSL reads there too. */
        int r = hello_probe(p, w->scratch, (size_t)n, &pr, why, sizeof(why));
        if (r != 1 || strcmp(pr.sni, c->sni) != 0) {
            STAT_ADD(w, bypass_unconfirmed, 1);
            snprintf(why, sizeof(why), "%s not confirmed: OpenSSL reads the hello otherwise",
                     c->why);
            report(c, "intercepted", why);
            a = TLS_PROXY_INTERCEPT;
        }
    }
    if (a == TLS_PROXY_BYPASS && bypass_cached(c)) {
        char ip[INET6_ADDRSTRLEN];
        sa_ip(&c->server, ip, sizeof(ip));
        STAT_ADD(w, bypass_confirmed, 1);
        snprintf(why, sizeof(why), "%s (certificate valid for %s at %s port %u, confirmed earlier)",
                 dec.why, c->sni, ip, sa_port(&c->server));
        str_set(c->why, sizeof(c->why), why);
        a = TLS_PROXY_SPLICE;
    }
    if (a != TLS_PROXY_SPLICE && a != TLS_PROXY_INTERCEPT && a != TLS_PROXY_BYPASS &&
        a != TLS_PROXY_PLAIN) {
        refuse_early(c, c->why);
        return;
    }
    c->intercept = a == TLS_PROXY_INTERCEPT || a == TLS_PROXY_BYPASS;
    c->bypass = a == TLS_PROXY_BYPASS;
    if (a == TLS_PROXY_PLAIN) {
        c->plain = 1;
        report(c, "plaintext", c->why);
    }
    /* From now on the client side is level-triggered like the rest. */
    struct epoll_event ev = {.events = 0, .data.ptr = &c->side[0]};
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->side[0].fd, &ev) < 0) {
        conn_close(c);
        return;
    }
    c->side[0].events = 0;
    upstream_connect(c);
}

/* --- accepting ------------------------------------------------------------------ */

/* The destination the container asked for, from conntrack. A connection that
 * was not redirected (its "original" destination is the proxy itself) would
 * loop, and is refused. */
static int original_dst(struct tls_proxy *p, int fd, struct sockaddr_storage *dst)
{
    if (p->fixedlen) {
        memcpy(dst, &p->fixed, p->fixedlen);
        return 0;
    }
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
        return -1;
    len = sizeof(*dst);
    memset(dst, 0, sizeof(*dst));
    int r = local.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &len)
                                        : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len);
    if (r < 0 || sa_same(dst, &local))
        return -1;
    return 0;
}

static void accept_one(struct worker *w, int fd, const struct sockaddr_storage *client)
{
    struct tls_proxy *p = w->p;
    STAT_ADD(w, connections, 1);
    int over = __atomic_add_fetch(&p->open, 1, __ATOMIC_RELAXED) > p->cfg.max_conns;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        __atomic_fetch_sub(&p->open, 1, __ATOMIC_RELAXED);
        STAT_ADD(w, closed, 1);
        close(fd);
        return;
    }
    c->w = w;
    for (int i = 0; i < 2; i++) {
        c->side[i].kind = OBJ_SIDE;
        c->side[i].fd = -1;
        c->side[i].c = c;
    }
    c->side[0].fd = fd;
    c->client = *client;
    c->st = ST_HELLO;
    c->last_ms = w->now;
    list_add(&w->hs, c);
    if (++w->nconns > w->peak)
        w->peak = w->nconns;
    if (original_dst(p, fd, &c->server) < 0) {
        STAT_ADD(w, closed, 1);
        conn_close(c);
        return;
    }
    char why[TLS_ERRLEN];
    if (over) {
        STAT_ADD(w, closed, 1);
        snprintf(why, sizeof(why), "out of resources: %u connections open (the proxy's limit)",
                 p->cfg.max_conns);
        report_resource(c, why);
        conn_close(c);
        return;
    }
    if (client_add(c) < 0) {
        STAT_ADD(w, over_client_cap, 1);
        char ip[INET6_ADDRSTRLEN];
        sa_ip(&c->client, ip, sizeof(ip));
        snprintf(why, sizeof(why),
                 "out of resources: %s has %u connections open (tls.max_per_container)", ip,
                 p->cfg.max_per_client);
        report_resource(c, why);
        conn_close(c);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (side_register(c, 0, EPOLLIN | EPOLLET) < 0) {
        conn_close(c);
        return;
    }
    hello_step(c);
}

/* Listeners in or out of epoll. Out of descriptors (or memory), a pending
 * connection stays pending and its listener stays readable: left in a
 * level-triggered epoll it would wake the worker at once, forever. */
static void listeners_arm(struct worker *w, int on)
{
    for (unsigned i = 0; i < w->nlis; i++) {
        struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &w->lis[i]};
        epoll_ctl(w->epfd, EPOLL_CTL_MOD, w->lis[i].fd, &ev);
    }
    w->paused_ms = on ? 0 : w->now ? w->now : 1;
    w->paused_closes = w->closes;
}

/* Paused listeners come back once a connection has closed (descriptors were
 * freed) or a tick has passed (another part of the process freed some). */
static void listeners_resume(struct worker *w)
{
    if (w->paused_ms && (w->closes != w->paused_closes || w->now >= w->paused_ms + TICK_MS))
        listeners_arm(w, 1);
}

static void accept_all(struct worker *w, int lfd)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                STAT_ADD(w, accept_paused, 1);
                listeners_arm(w, 0);
            }
            return; /* EAGAIN: all taken */
        }
        accept_one(w, fd, &ss);
    }
}

/* --- workers -------------------------------------------------------------------- */

static void conn_event(struct side *s, uint32_t ev)
{
    struct conn *c = s->c;
    if (c->st == ST_DEAD)
        return;
    if ((ev & (EPOLLERR | EPOLLHUP)) && s->events == 0) {
        /* It hung up while we do not need it: out of epoll until we do, so
         * the hangup does not wake us forever. */
        epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        s->parked = 1;
        if (c->st != ST_RELAY && c->st != ST_SPLICE)
            conn_close(c);
        return;
    }
    switch (c->st) {
    case ST_HELLO:
        hello_step(c);
        break;
    case ST_CONNECT:
        upstream_connected(c);
        break;
    case ST_UP_HS:
        upstream_handshake(c);
        break;
    case ST_UP_CONFIRM:
        upstream_confirm(c);
        break;
    case ST_CL_HS:
    case ST_REFUSE_HS:
        client_handshake(c);
        break;
    case ST_RELAY:
    case ST_SPLICE:
        relay(c);
        break;
    case ST_DRAIN:
        drain(c);
        break;
    case ST_LINGER:
        linger(c);
        break;
    case ST_DEAD:
        break;
    }
}

static void free_dead(struct worker *w)
{
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->next;
        free(c);
    }
}

/*
 * After a burst, the memory its connections used (record buffers, held
 * messages, the engine's bodies) is free but mostly stays with the process:
 * glibc returns only the top of each heap. Once this worker has no
 * connection left after many, every free page goes back to the system, so
 * sluiced returns near its resting size. Rare (once per burst), and a
 * worker with nothing to do is the one paying for it.
 */
static void trim(struct worker *w)
{
    if (w->nconns > 0 || w->peak < TRIM_AFTER)
        return;
    w->peak = 0;
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

/* Connections that stopped reading for hold_total try again. */
static void budget_resume(struct worker *w)
{
    struct conn *list = w->waiting;
    w->waiting = NULL;
    while (list) {
        struct conn *c = list;
        list = c->wnext;
        c->waiting = 0;
        if (c->st == ST_RELAY)
            relay(c);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[64];
    int stop = 0;
    while (!stop) {
        int n = epoll_wait(w->epfd, evs, 64, TICK_MS);
        if (n < 0 && errno != EINTR)
            break;
        w->now = mono_ms();
        for (int i = 0; i < n; i++) {
            struct obj *o = evs[i].data.ptr;
            if (o->kind == OBJ_LISTENER) {
                accept_all(w, o->fd);
            } else if (o->kind == OBJ_WAKE) {
                stop = 1;
            } else {
                conn_event((struct side *)o, evs[i].events);
            }
        }
        budget_resume(w);
        free_dead(w);
        sweep(w);
        free_dead(w);
        listeners_resume(w);
        trim(w);
    }
    while (w->hs.head)
        conn_close(w->hs.head);
    while (w->idle.head)
        conn_close(w->idle.head);
    free_dead(w);
    return NULL;
}

/* --- start and stop ------------------------------------------------------------- */

static int listen_on(struct tls_proxy *p, const struct sockaddr_storage *ss, char *err,
                     size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        (ss->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
        snprintf(err, errlen, "setsockopt: %s", strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_storage a = *ss;
    if (a.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a)->sin6_port = htons(p->port);
    else
        ((struct sockaddr_in *)&a)->sin_port = htons(p->port);
    char ip[INET6_ADDRSTRLEN];
    sa_ip(&a, ip, sizeof(ip));
    if (bind(fd, (struct sockaddr *)&a, sa_len(&a)) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "listening on %s port %u: %s", ip, p->port, strerror(errno));
        close(fd);
        return -1;
    }
    if (p->port == 0) {
        socklen_t len = sizeof(a);
        if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
            snprintf(err, errlen, "getsockname: %s", strerror(errno));
            close(fd);
            return -1;
        }
        p->port = (uint16_t)sa_port(&a);
    }
    return fd;
}

/* The addresses to listen on: cfg.address, or IPv4 and (if the host has it)
 * IPv6 wildcards. */
static int listen_addrs(const struct tls_proxy_config *cfg, struct sockaddr_storage out[2],
                        char *err, size_t errlen)
{
    memset(out, 0, 2 * sizeof(out[0]));
    struct sockaddr_in *in = (struct sockaddr_in *)&out[0];
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out[1];
    if (cfg->address == NULL) {
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        if (fd < 0)
            return 1;
        close(fd);
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        return 2;
    }
    if (inet_pton(AF_INET, cfg->address, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return 1;
    }
    in6 = (struct sockaddr_in6 *)&out[0];
    if (inet_pton(AF_INET6, cfg->address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return 1;
    }
    snprintf(err, errlen, "listen address %s: not an IPv4 or IPv6 address", cfg->address);
    return -1;
}

static void proxy_free(struct tls_proxy *p)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        for (unsigned j = 0; j < w->nlis; j++)
            close(w->lis[j].fd);
        if (w->wake.fd >= 0)
            close(w->wake.fd);
        if (w->epfd >= 0)
            close(w->epfd);
    }
    free(p->w);
    SSL_CTX_free(p->up_ctx);
    SSL_CTX_free(p->probe_ctx);
    EVP_PKEY_free(p->page_key);
    for (unsigned b = 0; b < CLIENT_BUCKETS; b++) {
        while (p->clients[b]) {
            struct client *cl = p->clients[b];
            p->clients[b] = cl->next;
            free(cl);
        }
    }
    free(p->bypass);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int worker_init(struct tls_proxy *p, struct worker *w, const struct sockaddr_storage *addrs,
                       int naddrs, char *err, size_t errlen)
{
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wake.kind = OBJ_WAKE;
    w->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epfd < 0 || w->wake.fd < 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->wake};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake.fd, &ev) < 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < naddrs; i++) {
        int fd = listen_on(p, &addrs[i], err, errlen);
        if (fd < 0)
            return -1;
        w->lis[w->nlis].kind = OBJ_LISTENER;
        w->lis[w->nlis].fd = fd;
        ev.data.ptr = &w->lis[w->nlis];
        w->nlis++;
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            snprintf(err, errlen, "epoll: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

struct tls_proxy *tls_proxy_start(const struct tls_proxy_config *cfg,
                                  const struct tls_proxy_ops *ops, char *err, size_t errlen)
{
    if (cfg->workers == 0 || cfg->max_conns == 0 || cfg->forge == NULL || cfg->upstream == NULL) {
        snprintf(err, errlen, "proxy: workers, max_conns, forge and upstream policy are needed");
        return NULL;
    }
    struct sockaddr_storage addrs[2];
    int naddrs = listen_addrs(cfg, addrs, err, errlen);
    if (naddrs < 0)
        return NULL;
    struct tls_proxy *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "proxy: out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    p->ops = *ops;
    p->port = cfg->port;
    pthread_mutex_init(&p->lock, NULL);
    if (cfg->fixed_upstream) {
        p->fixedlen = cfg->fixed_upstream->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                 : sizeof(struct sockaddr_in);
        memcpy(&p->fixed, cfg->fixed_upstream, p->fixedlen);
    }
    p->up_ctx = tls_upstream_ctx_new(cfg->upstream, err, errlen);
    if (p->up_ctx) {
        SSL_CTX_set_client_cert_cb(p->up_ctx, client_cert_asked);
        /* Session tickets are not kept; the callback only tells that the
         * upstream accepted a handshake without a client certificate. */
        SSL_CTX_set_session_cache_mode(p->up_ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(p->up_ctx, ticket_received);
    }
    if (p->up_ctx && (p->probe_ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        snprintf(err, errlen, "proxy: hello reader: %s", tls_openssl_reason());
        proxy_free(p);
        return NULL;
    }
    if (p->probe_ctx)
        SSL_CTX_set_client_hello_cb(p->probe_ctx, probe_hello_cb, NULL);
    if (p->up_ctx && cfg->bypass_cache_s &&
        (p->bypass = calloc(BYPASS_SLOTS, sizeof(*p->bypass))) == NULL) {
        snprintf(err, errlen, "proxy: out of memory");
        proxy_free(p);
        return NULL;
    }
    if (p->up_ctx && (p->page_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
        snprintf(err, errlen, "proxy: page key: %s", tls_openssl_reason());
        proxy_free(p);
        return NULL;
    }
    p->w = calloc(cfg->workers, sizeof(*p->w));
    if (p->up_ctx == NULL || p->w == NULL) {
        if (p->w == NULL && p->up_ctx)
            snprintf(err, errlen, "proxy: out of memory");
        proxy_free(p);
        return NULL;
    }
    p->nworkers = cfg->workers;
    for (unsigned i = 0; i < p->nworkers; i++) {
        p->w[i].p = p;
        p->w[i].idx = i;
        p->w[i].epfd = p->w[i].wake.fd = -1;
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (worker_init(p, &p->w[i], addrs, naddrs, err, errlen) < 0) {
            proxy_free(p);
            return NULL;
        }
    }
    /* Writes to a closed peer must fail with EPIPE, not kill the daemon:
     * workers start with SIGPIPE blocked (OpenSSL writes with write(2)). */
    sigset_t pipe, old;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->w[i];
        w->now = mono_ms();
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            snprintf(err, errlen, "proxy worker: %s", strerror(e));
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            tls_proxy_stop(p);
            return NULL;
        }
        w->started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

unsigned tls_proxy_conns_fit(uint64_t nofile, unsigned reserve, unsigned want)
{
    if (want == 0)
        want = 1;
    if (nofile <= reserve + 2u)
        return 1;
    uint64_t fit = (nofile - reserve) / 2;
    return fit < want ? (unsigned)fit : want;
}

uint16_t tls_proxy_port(const struct tls_proxy *p)
{
    return p->port;
}

void tls_proxy_stats(const struct tls_proxy *p, struct tls_proxy_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < p->nworkers; i++) {
        const struct tls_proxy_stats *s = &p->w[i].st;
#define SUM(f) out->f += __atomic_load_n(&s->f, __ATOMIC_RELAXED)
        SUM(connections);
        SUM(intercepted);
        SUM(spliced);
        SUM(refused);
        SUM(blocked);
        SUM(closed);
        SUM(client_failed);
        SUM(timeouts);
        SUM(hold_overflows);
        SUM(accept_paused);
        SUM(not_tls);
        SUM(over_client_cap);
        SUM(hold_waits);
        SUM(stalls);
        SUM(bypass_confirmed);
        SUM(bypass_unconfirmed);
        SUM(bytes_up);
        SUM(bytes_down);
        SUM(h2_streams_blocked);
        SUM(h2_errors);
#undef SUM
    }
    out->open = __atomic_load_n(&p->open, __ATOMIC_RELAXED);
    pthread_mutex_lock((pthread_mutex_t *)&p->lock);
    out->held = p->held;
    pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
}

void tls_proxy_stop(struct tls_proxy *p)
{
    if (p == NULL)
        return;
    uint64_t one = 1;
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (p->w[i].started && write(p->w[i].wake.fd, &one, sizeof(one)) < 0) {
            /* An eventfd write fails only on overflow: it is already awake. */
        }
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (p->w[i].started)
            pthread_join(p->w[i].thread, NULL);
    }
    proxy_free(p);
}
