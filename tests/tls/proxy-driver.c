/*
 * proxy-driver: runs the TLS proxy with a fake appliance, for
 * tests/tls/check-proxy.
 *
 * The fake appliance intercepts every ClientHello (but --splice-sni and
 * --bypass-sni), refuses what is not TLS (or relays it, --non-tls-pass), holds
 * each HTTP message until its Content-Length is complete, blocks a message
 * holding --marker, and prints every event as one line on stdout. Commands
 * on stdin: "stats", "mem" (heap in use, from mallinfo2), "quit" (or EOF).
 */
#include "dpi.h"
#include "tls.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_lock);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    va_end(ap);
}

struct opts {
    const char *marker;
    const char *splice_sni;
    const char *bypass_sni;
    int non_tls_pass;
    int mtls_splice;
};

/* One HTTP/1.x message direction, held from its first byte to its last;
 * headers are read line by line, so the handle stays small. */
struct msg {
    int state; /* 0 between messages, 1 headers, 2 body (left), 3 body until close */
    int first; /* on the start line */
    int response;
    int has_length;
    char line[128];
    size_t llen;
    unsigned long long left;
};

struct fake {
    struct msg m[2];
    char tail[2][64]; /* the end of the previous data, for a marker cut in two */
    size_t tlen[2];
    unsigned long long bytes[2];
    char sni[256];
};

static void msg_line(struct msg *m)
{
    m->line[m->llen < sizeof(m->line) ? m->llen : sizeof(m->line) - 1] = '\0';
    if (m->first) {
        m->first = 0;
        m->response = strncmp(m->line, "HTTP/", 5) == 0;
        if (m->response &&
            (strncmp(m->line + 9, "204", 3) == 0 || strncmp(m->line + 9, "304", 3) == 0))
            m->response = 0; /* no body */
    } else if (strncasecmp(m->line, "content-length:", 15) == 0) {
        m->left = strtoull(m->line + 15, NULL, 10);
        m->has_length = 1;
    } else if (strcmp(m->line, "\r") == 0 || m->line[0] == '\0') {
        if (m->has_length)
            m->state = m->left ? 2 : 0;
        else
            m->state = m->response ? 3 : 0;
    }
    m->llen = 0;
}

static void msg_feed(struct msg *m, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (m->state == 0) {
            memset(m, 0, sizeof(*m));
            m->state = 1;
            m->first = 1;
        }
        if (m->state == 1) {
            char ch = (char)*p++;
            n--;
            if (ch == '\n')
                msg_line(m);
            else if (m->llen < sizeof(m->line) - 1)
                m->line[m->llen++] = ch;
            continue;
        }
        if (m->state == 3)
            return;
        size_t take = n < m->left ? n : (size_t)m->left;
        m->left -= take;
        p += take;
        n -= take;
        if (m->left == 0)
            m->state = 0;
    }
}

static void fake_decide(void *ctx, const struct tls_proxy_peer *peer,
                        struct tls_proxy_decision *out)
{
    const struct opts *o = ctx;
    if (!peer->tls) {
        out->action = o->non_tls_pass ? TLS_PROXY_PLAIN : TLS_PROXY_CLOSE;
        snprintf(out->why, sizeof(out->why), "not TLS (%s)", o->non_tls_pass ? "pass" : "refuse");
        say("decide not-tls %s", o->non_tls_pass ? "plain" : "refuse");
        return;
    }
    const char *action = "intercept";
    out->action = TLS_PROXY_INTERCEPT;
    if (o->splice_sni && strcmp(peer->sni, o->splice_sni) == 0) {
        out->action = TLS_PROXY_SPLICE;
        snprintf(out->why, sizeof(out->why), "splice-sni %s", o->splice_sni);
        action = "splice";
    } else if (o->bypass_sni && strcmp(peer->sni, o->bypass_sni) == 0) {
        out->action = TLS_PROXY_BYPASS;
        snprintf(out->why, sizeof(out->why), "bypass-sni %s", o->bypass_sni);
        action = "bypass";
    }
    if (o->mtls_splice) {
        out->mtls_splice = 1;
        snprintf(out->mtls_why, sizeof(out->mtls_why), "mtls-splice");
    }
    say("decide sni=%s alpn=%s ja3=%s action=%s", peer->sni[0] ? peer->sni : "-",
        peer->hello && peer->hello->alpn[0] ? peer->hello->alpn : "-",
        peer->hello ? peer->hello->ja3_hash : "odd", action);
}

static void fake_report(void *ctx, const struct tls_proxy_peer *peer, const char *action,
                        const char *why)
{
    say("report action=%s sni=%s why=%s", action, peer->sni[0] ? peer->sni : "-", why);
}

static void *fake_open(void *ctx, const struct tls_proxy_peer *peer)
{
    struct fake *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    snprintf(f->sni, sizeof(f->sni), "%s", peer->sni);
    say("open worker=%u sni=%s version=%s", peer->worker, peer->sni[0] ? peer->sni : "-",
        peer->version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    return f;
}

static int fake_data(void *ctx, void *h, int dir, const uint8_t *p, size_t n)
{
    const struct opts *o = ctx;
    struct fake *f = h;
    f->bytes[dir] += n;
    msg_feed(&f->m[dir], p, n);
    if (o->marker == NULL)
        return 0;
    size_t ml = strlen(o->marker);
    uint8_t *buf = malloc(f->tlen[dir] + n);
    if (buf == NULL)
        return 1;
    memcpy(buf, f->tail[dir], f->tlen[dir]);
    memcpy(buf + f->tlen[dir], p, n);
    size_t len = f->tlen[dir] + n;
    int hit = memmem(buf, len, o->marker, ml) != NULL;
    size_t keep = ml - 1 < len ? ml - 1 : len;
    memcpy(f->tail[dir], buf + len - keep, keep);
    f->tlen[dir] = keep;
    free(buf);
    if (hit)
        say("block dir=%d sni=%s", dir, f->sni);
    return hit;
}

static int fake_holding(void *ctx, void *h, int dir)
{
    struct fake *f = h;
    return f->m[dir].state != 0;
}

static int fake_end(void *ctx, void *h, int dir)
{
    struct fake *f = h;
    say("end dir=%d", dir);
    f->m[dir].state = 0;
    return 0;
}

static size_t fake_block_page(void *ctx, void *h, char *buf, size_t len)
{
    static const char body[] = "<html><body><h1>Blocked</h1><p>signature TEST-MARKER, "
                               "report r-42</p></body></html>\n";
    int n = snprintf(buf, len,
                     "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

static void fake_refused(void *ctx, const struct tls_proxy_peer *peer, const char *why)
{
    say("refused sni=%s why=%s", peer->sni[0] ? peer->sni : "-", why);
}

static void fake_close(void *ctx, void *h)
{
    struct fake *f = h;
    if (f == NULL)
        return;
    say("close sni=%s up=%llu down=%llu", f->sni, f->bytes[0], f->bytes[1]);
    free(f);
}

static void print_stats(struct tls_proxy *p, const char *what)
{
    struct tls_proxy_stats s;
    tls_proxy_stats(p, &s);
    say("%s connections=%llu intercepted=%llu spliced=%llu refused=%llu blocked=%llu "
        "closed=%llu client_failed=%llu timeouts=%llu hold_overflows=%llu bytes_up=%llu "
        "bytes_down=%llu open=%llu accept_paused=%llu not_tls=%llu over_client_cap=%llu "
        "hold_waits=%llu stalls=%llu bypass_confirmed=%llu bypass_unconfirmed=%llu held=%llu",
        what, (unsigned long long)s.connections, (unsigned long long)s.intercepted,
        (unsigned long long)s.spliced, (unsigned long long)s.refused, (unsigned long long)s.blocked,
        (unsigned long long)s.closed, (unsigned long long)s.client_failed,
        (unsigned long long)s.timeouts, (unsigned long long)s.hold_overflows,
        (unsigned long long)s.bytes_up, (unsigned long long)s.bytes_down,
        (unsigned long long)s.open, (unsigned long long)s.accept_paused,
        (unsigned long long)s.not_tls, (unsigned long long)s.over_client_cap,
        (unsigned long long)s.hold_waits, (unsigned long long)s.stalls,
        (unsigned long long)s.bypass_confirmed, (unsigned long long)s.bypass_unconfirmed,
        (unsigned long long)s.held);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    int port = atoi(colon + 1);
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ca-dir", required_argument, NULL, 'c'},
        {"ca-file", required_argument, NULL, 'r'},
        {"upstream", required_argument, NULL, 'u'},
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"max-conns", required_argument, NULL, 'm'},
        {"hold-limit", required_argument, NULL, 'H'},
        {"idle-ms", required_argument, NULL, 'i'},
        {"handshake-ms", required_argument, NULL, 'h'},
        {"marker", required_argument, NULL, 'k'},
        {"splice-sni", required_argument, NULL, 's'},
        {"bypass-sni", required_argument, NULL, 'b'},
        {"non-tls-pass", no_argument, NULL, 'n'},
        {"mtls-splice", no_argument, NULL, 'M'},
        {"max-per-client", required_argument, NULL, 'C'},
        {"hold-total", required_argument, NULL, 'T'},
        {"stall-ms", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {0};
    struct tls_upstream_policy pol = {0};
    struct tls_proxy_config cfg = {
        .address = "127.0.0.1",
        .workers = 2,
        .max_conns = 1024,
        .idle_ms = 60000,
        .handshake_ms = 10000,
        .hold_limit = 256 * 1024,
        .bypass_cache_s = 300,
    };
    const char *ca_dir = NULL;
    struct sockaddr_storage up;
    int have_up = 0, c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            ca_dir = optarg;
            break;
        case 'r':
            pol.ca_file = optarg;
            break;
        case 'u':
            if (parse_addr(optarg, &up) < 0) {
                fprintf(stderr, "proxy-driver: bad address %s\n", optarg);
                return 2;
            }
            have_up = 1;
            break;
        case 'l':
            cfg.address = strcmp(optarg, "any") == 0 ? NULL : optarg;
            break;
        case 'w':
            cfg.workers = (unsigned)atoi(optarg);
            break;
        case 'm':
            cfg.max_conns = (unsigned)atoi(optarg);
            break;
        case 'H':
            cfg.hold_limit = (size_t)atol(optarg);
            break;
        case 'i':
            cfg.idle_ms = (unsigned)atoi(optarg);
            break;
        case 'h':
            cfg.handshake_ms = (unsigned)atoi(optarg);
            break;
        case 'k':
            o.marker = optarg;
            break;
        case 's':
            o.splice_sni = optarg;
            break;
        case 'b':
            o.bypass_sni = optarg;
            break;
        case 'n':
            o.non_tls_pass = 1;
            break;
        case 'M':
            o.mtls_splice = 1;
            break;
        case 'C':
            cfg.max_per_client = (unsigned)atoi(optarg);
            break;
        case 'T':
            cfg.hold_total = (size_t)atol(optarg);
            break;
        case 'S':
            cfg.stall_ms = (unsigned)atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (ca_dir == NULL || !have_up) {
        fprintf(stderr, "usage: proxy-driver --ca-dir DIR --upstream IP:PORT [--ca-file PEM] "
                        "[--listen IP] [--workers N] [--max-conns N] [--hold-limit BYTES] "
                        "[--idle-ms MS] [--handshake-ms MS] [--marker STR] [--splice-sni NAME] "
                        "[--bypass-sni NAME] [--non-tls-pass] [--mtls-splice] "
                        "[--max-per-client N] [--hold-total BYTES] [--stall-ms MS]\n");
        return 2;
    }
    char err[TLS_ERRLEN];
    struct tls_ca *ca = tls_ca_open(ca_dir, 365, 30, err, sizeof(err));
    if (ca == NULL) {
        fprintf(stderr, "proxy-driver: %s\n", err);
        return 1;
    }
    struct tls_forge *forge = tls_forge_new(ca, 64);
    if (forge == NULL) {
        fprintf(stderr, "proxy-driver: forge: out of memory\n");
        return 1;
    }
    cfg.forge = forge;
    cfg.ca = ca;
    cfg.upstream = &pol;
    cfg.fixed_upstream = (const struct sockaddr *)&up;
    struct tls_proxy_ops ops = {
        .ctx = &o,
        .decide = fake_decide,
        .open = fake_open,
        .data = fake_data,
        .holding = fake_holding,
        .end = fake_end,
        .block_page = fake_block_page,
        .refused = fake_refused,
        .close = fake_close,
        .report = fake_report,
    };
    struct tls_proxy *p = tls_proxy_start(&cfg, &ops, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "proxy-driver: %s\n", err);
        return 1;
    }
    say("port %u", tls_proxy_port(p));
    char line[128];
    while (fgets(line, sizeof(line), stdin)) {
        if (strncmp(line, "stats", 5) == 0) {
            print_stats(p, "stats");
        } else if (strncmp(line, "mem", 3) == 0) {
            struct mallinfo2 mi = mallinfo2();
            struct tls_proxy_stats s;
            tls_proxy_stats(p, &s);
            say("mem heap=%zu rss_kib=%ld open=%llu", mi.uordblks, rss_kib(),
                (unsigned long long)s.open, (unsigned long long)s.accept_paused);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
    }
    print_stats(p, "final");
    tls_proxy_stop(p);
    say("stopped");
    tls_forge_free(forge);
    tls_ca_free(ca);
    return 0;
}
