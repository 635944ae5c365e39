/*
 * Load generator for sluice's load test and flow benchmark: one small
 * program, three roles, each a single epoll loop (no threads, no libraries),
 * so that it runs inside the Debian test image from a bind mount and spends
 * as little of a small machine's CPU as possible on itself.
 *
 *   loadgen server --ports 8080-8087 [--body eicar|clean] [--bind ADDR]
 *       HTTP/1.1 on every port: whatever the request, once its head has
 *       arrived, one fixed response (headers and body in one write),
 *       Connection: close. A request whose head never ends keeps its
 *       connection open, idle (the "hold" role relies on that).
 *
 *   loadgen client --target IP --ports 8080-8087 [--rate N] [--concurrency N]
 *                  [--duration S] [--timeout S] [--body eicar|clean]
 *                  [--resets-out FILE]
 *       New connections at N per second (at most --concurrency open at a
 *       time), each: connect, GET, read to the end. Every connection ends
 *       one way: complete (the exact response, the whole body), reset
 *       (ECONNRESET or a RST at any point), early EOF, timeout, connect
 *       error. --target may name several servers (IP,IP,...): NFQUEUE
 *       spreads flows over queues by their addresses only. --resets-out
 *       writes "DADDR SPORT DPORT" of each reset connection, so the caller
 *       can match them with the event log.
 *
 *   loadgen hold --target IP --ports 8080-8127 --count N [--partial]
 *                [--concurrency N]
 *       Opens N connections (spread over the ports, so that N can exceed one
 *       client address's port range per destination) and keeps them open,
 *       idle, until its standard input ends or SIGTERM. --partial sends the
 *       start of a request head first, so a middlebox is still inspecting
 *       each flow. Prints a JSON line once all are open, and another at the
 *       end saying how many stayed open.
 *
 * Every role prints a one-line JSON summary on stdout. RLIMIT_NOFILE is
 * raised to its hard limit (docker run --ulimit nofile=...).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS   256
#define MAX_TARGETS 16
#define EVENTS      512

static const char EICAR[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
static const char CLEAN[] = "sluice load test: a clean body, nothing to see here\n";

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen server --ports A[-B] [--body eicar|clean] [--bind ADDR]\n"
                    "       loadgen client --target IP --ports A[-B] [--rate N] "
                    "[--concurrency N] [--duration S] [--timeout S] [--body eicar|clean] "
                    "[--resets-out FILE]\n"
                    "       loadgen hold --target IP --ports A[-B] --count N [--partial] "
                    "[--concurrency N]\n");
    exit(2);
}

struct opts {
    const char *role;
    const char *target, *bind_addr, *resets_out;
    struct in_addr targets[MAX_TARGETS];
    unsigned ntargets;
    uint16_t ports[MAX_PORTS];
    unsigned nports;
    int eicar;
    double rate, duration, timeout;
    unsigned concurrency, count;
    int partial;
};

/* "8080" or "8080-8087". */
static void parse_ports(struct opts *o, const char *s)
{
    unsigned a, b;
    char tail;
    int n = sscanf(s, "%u-%u%c", &a, &b, &tail);
    if (n == 1)
        b = a;
    else if (n != 2)
        usage();
    if (a == 0 || b > 65535 || a > b || b - a + 1 > MAX_PORTS)
        usage();
    for (unsigned p = a; p <= b; p++)
        o->ports[o->nports++] = (uint16_t)p;
}

/* "IP" or "IP,IP,...": connections go round the targets, then the ports. */
static void parse_targets(struct opts *o, const char *s)
{
    char buf[1024], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", s);
    o->target = s;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->ntargets == MAX_TARGETS || inet_pton(AF_INET, t, &o->targets[o->ntargets]) != 1)
            usage();
        o->ntargets++;
    }
}

static void parse(struct opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->eicar = 1;
    o->rate = 1000;
    o->duration = 10;
    o->timeout = 5;
    o->concurrency = 1000;
    o->bind_addr = "0.0.0.0";
    if (argc < 2)
        usage();
    o->role = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        if (strcmp(k, "--partial") == 0) {
            o->partial = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(k, "--ports") == 0)
            parse_ports(o, v);
        else if (strcmp(k, "--target") == 0)
            parse_targets(o, v);
        else if (strcmp(k, "--bind") == 0)
            o->bind_addr = v;
        else if (strcmp(k, "--resets-out") == 0)
            o->resets_out = v;
        else if (strcmp(k, "--body") == 0 && (!strcmp(v, "eicar") || !strcmp(v, "clean")))
            o->eicar = strcmp(v, "eicar") == 0;
        else if (strcmp(k, "--rate") == 0)
            o->rate = atof(v);
        else if (strcmp(k, "--duration") == 0)
            o->duration = atof(v);
        else if (strcmp(k, "--timeout") == 0)
            o->timeout = atof(v);
        else if (strcmp(k, "--concurrency") == 0)
            o->concurrency = (unsigned)atoi(v);
        else if (strcmp(k, "--count") == 0)
            o->count = (unsigned)atoi(v);
        else
            usage();
    }
    if (o->nports == 0 || o->concurrency == 0 || o->rate <= 0)
        usage();
}

/* The hard limit of open files becomes the soft one; returns it. */
static unsigned raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit");
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("setrlimit");
    return rl.rlim_cur > 4u << 20 ? 4u << 20 : (unsigned)rl.rlim_cur;
}

/* The server's whole response; the client expects exactly these bytes. */
static size_t make_response(int eicar, char *buf, size_t len)
{
    const char *body = eicar ? EICAR : CLEAN;
    int n = snprintf(buf, len,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static void epoll_add(int ep, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
}

/* --- server ------------------------------------------------------------------------ */

/* Per connection: the last bytes of the head so far (its end is "\r\n\r\n"). */
struct srv_conn {
    uint32_t tail;
    uint8_t is_listener;
};

static int server(const struct opts *o)
{
    unsigned maxfd = raise_nofile();
    struct srv_conn *c = calloc(maxfd, sizeof(*c));
    char resp[512], buf[4096];
    size_t resp_len = make_response(o->eicar, resp, sizeof(resp));
    uint64_t accepted = 0, answered = 0, errors = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (c == NULL || ep < 0)
        die("server");
    for (unsigned i = 0; i < o->nports; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->ports[i])};
        int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || inet_pton(AF_INET, o->bind_addr, &sa.sin_addr) != 1)
            die("server socket");
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 65535) < 0)
            die("bind/listen");
        c[fd].is_listener = 1;
        epoll_add(ep, fd, EPOLLIN);
    }
    fprintf(stderr, "loadgen server: %u ports from %u, %s body\n", o->nports, o->ports[0],
            o->eicar ? "EICAR" : "clean");
    struct epoll_event evs[EVENTS];
    while (!stopping) {
        int n = epoll_wait(ep, evs, EVENTS, 1000);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (c[fd].is_listener) {
                for (;;) {
                    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0)
                        break;
                    if ((unsigned)cfd >= maxfd) {
                        close(cfd);
                        errors++;
                        continue;
                    }
                    accepted++;
                    c[cfd].tail = 0;
                    epoll_add(ep, cfd, EPOLLIN | EPOLLRDHUP);
                }
                continue;
            }
            ssize_t got = recv(fd, buf, sizeof(buf), 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            int done = got <= 0;
            for (ssize_t k = 0; k < got && !done; k++) {
                c[fd].tail = c[fd].tail << 8 | (uint8_t)buf[k];
                if (c[fd].tail == 0x0d0a0d0a) {
                    /* One write: headers and body in one segment. A reset
                     * connection refuses it, which is fine. */
                    if (send(fd, resp, resp_len, MSG_NOSIGNAL) == (ssize_t)resp_len)
                        answered++;
                    done = 1;
                }
            }
            if (done)
                close(fd); /* also leaves the epoll set */
        }
    }
    printf("{\"mode\":\"server\",\"accepted\":%llu,\"answered\":%llu,\"errors\":%llu}\n",
           (unsigned long long)accepted, (unsigned long long)answered, (unsigned long long)errors);
    return 0;
}

/* --- client and hold ------------------------------------------------------------------ */

enum conn_state { C_FREE = 0, C_CONNECTING, C_READING, C_HOLDING };

/* Connections by fd, on a list in the order they started (oldest first), so
 * timeouts only ever look at the head. */
struct cli_conn {
    uint8_t state;
    uint16_t sport, dport;
    struct in_addr daddr;
    uint32_t got; /* response bytes matching the expected ones */
    uint8_t mismatch;
    uint8_t on_list; /* held connections have no deadline: off the list */
    uint64_t deadline;
    int prev, next;
};

enum outcome { O_COMPLETE, O_RESET, O_EARLY_EOF, O_TIMEOUT, O_CONNECT_ERROR, O_OTHER, O_N };
static const char *const outcome_names[O_N] = {"completed", "reset",         "early_eof",
                                               "timeout",   "connect_error", "other_error"};

struct client {
    const struct opts *o;
    struct cli_conn *c;
    unsigned maxfd;
    int ep;
    int head, tail; /* start-ordered list of open connections */
    unsigned active, connecting, next_port;
    uint64_t started, out[O_N], eicar_seen, reset_during_connect;
    struct sockaddr_in dst;
    char req[256], resp[512];
    size_t req_len, resp_len;
    FILE *resets;
};

static void list_unlink(struct client *cl, int fd)
{
    struct cli_conn *x = &cl->c[fd];
    if (x->prev >= 0)
        cl->c[x->prev].next = x->next;
    else
        cl->head = x->next;
    if (x->next >= 0)
        cl->c[x->next].prev = x->prev;
    else
        cl->tail = x->prev;
    x->on_list = 0;
}

static void list_append(struct client *cl, int fd)
{
    struct cli_conn *x = &cl->c[fd];
    x->next = -1;
    x->prev = cl->tail;
    if (cl->tail >= 0)
        cl->c[cl->tail].next = fd;
    else
        cl->head = fd;
    cl->tail = fd;
    x->on_list = 1;
}

static void conn_done(struct client *cl, int fd, enum outcome how)
{
    struct cli_conn *x = &cl->c[fd];
    cl->out[how]++;
    if (how == O_RESET && cl->resets)
        fprintf(cl->resets, "%s %u %u\n", inet_ntoa(x->daddr), x->sport, x->dport);
    if (how == O_RESET && x->state == C_CONNECTING)
        cl->reset_during_connect++;
    if (x->state == C_CONNECTING)
        cl->connecting--;
    if (x->on_list)
        list_unlink(cl, fd);
    x->state = C_FREE;
    cl->active--;
    close(fd);
}

/* One new connection to the next port; 0 if one was started. */
static int conn_start(struct client *cl, uint64_t now)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cl->out[O_CONNECT_ERROR]++;
        return -1;
    }
    if ((unsigned)fd >= cl->maxfd) {
        close(fd);
        cl->out[O_CONNECT_ERROR]++;
        return -1;
    }
    struct sockaddr_in dst = cl->dst;
    unsigned k = cl->next_port++;
    dst.sin_addr = cl->o->targets[k % cl->o->ntargets];
    dst.sin_port = htons(cl->o->ports[(k / cl->o->ntargets) % cl->o->nports]);
    cl->started++;
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        close(fd);
        cl->out[O_CONNECT_ERROR]++;
        return -1;
    }
    struct cli_conn *x = &cl->c[fd];
    struct sockaddr_in me;
    socklen_t mlen = sizeof(me);
    memset(x, 0, sizeof(*x));
    x->state = C_CONNECTING;
    x->dport = ntohs(dst.sin_port);
    x->daddr = dst.sin_addr;
    if (getsockname(fd, (struct sockaddr *)&me, &mlen) == 0)
        x->sport = ntohs(me.sin_port);
    x->deadline = now + (uint64_t)(cl->o->timeout * 1000);
    list_append(cl, fd);
    cl->active++;
    cl->connecting++;
    epoll_add(cl->ep, fd, EPOLLOUT | EPOLLIN | EPOLLRDHUP);
    return 0;
}

static enum outcome errno_outcome(int err, int connecting)
{
    if (err == ECONNRESET || err == EPIPE)
        return O_RESET;
    if (connecting)
        return O_CONNECT_ERROR;
    return err == ETIMEDOUT ? O_TIMEOUT : O_OTHER;
}

/* The response so far against the expected one; the body's EICAR string
 * counts as seen only when all of it arrived. */
static void conn_read(struct client *cl, int fd)
{
    struct cli_conn *x = &cl->c[fd];
    char buf[4096];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            conn_done(cl, fd, errno_outcome(errno, 0));
            return;
        }
        if (n == 0) {
            int whole = !x->mismatch && x->got == cl->resp_len;
            if (whole && cl->o->eicar)
                cl->eicar_seen++;
            conn_done(cl, fd, whole ? O_COMPLETE : O_EARLY_EOF);
            return;
        }
        for (ssize_t k = 0; k < n; k++) {
            if (x->got < cl->resp_len && buf[k] == cl->resp[x->got])
                x->got++;
            else
                x->mismatch = 1;
        }
    }
}

static void conn_writable(struct client *cl, int fd, int hold)
{
    struct cli_conn *x = &cl->c[fd];
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_done(cl, fd, errno_outcome(err, 1));
        return;
    }
    if (!hold || cl->o->partial) {
        ssize_t n = send(fd, cl->req, cl->req_len, MSG_NOSIGNAL);
        if (n != (ssize_t)cl->req_len) {
            conn_done(cl, fd, n < 0 ? errno_outcome(errno, 0) : O_OTHER);
            return;
        }
    }
    cl->connecting--;
    x->state = hold ? C_HOLDING : C_READING;
    if (hold)
        list_unlink(cl, fd);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
    epoll_ctl(cl->ep, EPOLL_CTL_MOD, fd, &ev);
}

static void client_init(struct client *cl, const struct opts *o, int hold)
{
    memset(cl, 0, sizeof(*cl));
    cl->o = o;
    cl->maxfd = raise_nofile();
    cl->c = calloc(cl->maxfd, sizeof(*cl->c));
    cl->ep = epoll_create1(EPOLL_CLOEXEC);
    cl->head = cl->tail = -1;
    if (cl->c == NULL || cl->ep < 0)
        die("client");
    cl->dst.sin_family = AF_INET;
    if (o->ntargets == 0)
        usage();
    /* hold --partial: a request head that never ends. */
    int n =
        snprintf(cl->req, sizeof(cl->req), "%s",
                 hold ? "GET /hold HTTP/1.1\r\nHost: load.test\r\nUser-Agent: sluice-loadgen\r\n"
                      : "GET /eicar.com HTTP/1.1\r\nHost: load.test\r\nUser-Agent: "
                        "sluice-loadgen\r\nConnection: close\r\n\r\n");
    cl->req_len = (size_t)n;
    cl->resp_len = make_response(o->eicar, cl->resp, sizeof(cl->resp));
}

static void dispatch(struct client *cl, const struct epoll_event *ev, int hold)
{
    int fd = ev->data.fd;
    struct cli_conn *x = &cl->c[fd];

    if (x->state == C_CONNECTING) {
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_writable(cl, fd, hold);
        if (x->state != C_READING || !(ev->events & (EPOLLIN | EPOLLRDHUP)))
            return;
    }
    if (x->state == C_READING) {
        conn_read(cl, fd);
    } else if (x->state == C_HOLDING) {
        /* The peer (or a middlebox) ended a held connection. */
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        conn_done(cl, fd, err ? errno_outcome(err, 0) : O_EARLY_EOF);
    }
}

static void print_outcomes(const struct client *cl)
{
    for (int i = 0; i < O_N; i++)
        printf(",\"%s\":%llu", outcome_names[i], (unsigned long long)cl->out[i]);
}

static int client(const struct opts *o)
{
    static struct client cl;
    struct epoll_event evs[EVENTS];

    client_init(&cl, o, 0);
    if (o->resets_out && (cl.resets = fopen(o->resets_out, "w")) == NULL)
        die(o->resets_out);
    uint64_t t0 = now_ms(), end = t0 + (uint64_t)(o->duration * 1000), now = t0, last_start = t0;
    while (!stopping) {
        now = now_ms();
        if (now < end) {
            /* Connections due by now at the target rate, within the cap. */
            uint64_t due = (uint64_t)((double)(now - t0) * o->rate / 1000.0);
            while (cl.started < due && cl.active < o->concurrency) {
                conn_start(&cl, now);
                last_start = now;
            }
        } else if (cl.active == 0) {
            break;
        }
        while (cl.head >= 0 && cl.c[cl.head].deadline <= now)
            conn_done(&cl, cl.head,
                      cl.c[cl.head].state == C_CONNECTING ? O_CONNECT_ERROR : O_TIMEOUT);
        int n = epoll_wait(cl.ep, evs, EVENTS, now < end ? 1 : 50);
        for (int i = 0; i < n; i++)
            dispatch(&cl, &evs[i], 0);
    }
    double secs = (double)(last_start - t0) / 1000.0;
    if (secs <= 0)
        secs = 1e-3;
    if (cl.resets)
        fclose(cl.resets);
    printf("{\"mode\":\"client\",\"body\":\"%s\",\"target_rate\":%.0f,\"seconds\":%.3f,"
           "\"started\":%llu,\"rate\":%.1f",
           o->eicar ? "eicar" : "clean", o->rate, secs, (unsigned long long)cl.started,
           (double)cl.started / secs);
    print_outcomes(&cl);
    printf(",\"reset_rate\":%.1f,\"eicar_seen\":%llu,\"reset_during_connect\":%llu}\n",
           (double)cl.out[O_RESET] / secs, (unsigned long long)cl.eicar_seen,
           (unsigned long long)cl.reset_during_connect);
    return 0;
}

static int hold(const struct opts *o)
{
    static struct client cl;
    struct epoll_event evs[EVENTS];
    int announced = 0;

    client_init(&cl, o, 1);
    epoll_add(cl.ep, STDIN_FILENO, EPOLLIN | EPOLLRDHUP);
    uint64_t t0 = now_ms();
    while (!stopping) {
        uint64_t now = now_ms();
        /* At most --concurrency connects in flight; held ones do not count. */
        while (cl.started < o->count && cl.connecting < o->concurrency)
            conn_start(&cl, now);
        while (cl.head >= 0 && cl.c[cl.head].deadline <= now)
            conn_done(&cl, cl.head, O_CONNECT_ERROR);
        if (!announced && cl.started >= o->count && cl.connecting == 0) {
            announced = 1;
            printf("{\"mode\":\"hold\",\"phase\":\"open\",\"seconds\":%.3f,\"open\":%u",
                   (double)(now - t0) / 1000.0, cl.active);
            print_outcomes(&cl);
            printf("}\n");
            fflush(stdout);
        }
        int n = epoll_wait(cl.ep, evs, EVENTS, 100);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == STDIN_FILENO) {
                char b[64];
                if (read(STDIN_FILENO, b, sizeof(b)) <= 0)
                    stopping = 1;
                continue;
            }
            dispatch(&cl, &evs[i], 1);
        }
    }
    printf("{\"mode\":\"hold\",\"phase\":\"end\",\"open\":%u", cl.active);
    print_outcomes(&cl);
    printf("}\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct sigaction sa;

    parse(&o, argc, argv);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(o.role, "server") == 0)
        return server(&o);
    if (strcmp(o.role, "client") == 0)
        return client(&o);
    if (strcmp(o.role, "hold") == 0 && o.count > 0)
        return hold(&o);
    usage();
    return 2;
}
