/*
 * The inline daemon. Threads: one worker per queue (nfq/), the container
 * map's Docker follower, the control socket, the event writer, and this
 * main thread, which only waits for signals.
 *
 * Workers never wait on the event log: they format an event into their own
 * buffer and append a copy to the writer's list (a short lock, no I/O). The
 * writer writes with write(2) and keeps what it could not write (a full
 * disk, a log being rotated) at the head of the list, retrying every second,
 * so an event is lost only when the list outgrows its bound; lost events are
 * counted and said in the log, and so are the events written late.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <fnmatch.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ca_install.h"
#include "detect.h"
#include "isolate.h"
#include "jsonp.h"
#include "docker_api.h"
#include "containers.h"
#include "control.h"
#include "dpi.h"
#include "eve.h"
#include "json.h"
#include "log.h"
#include "nfq.h"
#include "rules.h"
#include "tls.h"
#include "upstream.h"

#define EVQ_MAX_BYTES (256u << 20) /* events waiting for the disk */
#define FLOW_CACHE    256          /* per worker, direct-mapped by flow id */
#define EVQ_GATHER_US 2000         /* the writer's wait for more events, once woken */
#define HOOKS_CHECK_S 3

struct evq_item {
    struct evq_item *next;
    size_t len;  /* still to write */
    size_t size; /* counted in evq_bytes */
    int syslogged;
    char line[]; /* with its newline */
};

struct flow_owner {
    uint64_t flow_id; /* 0: empty slot */
    struct sl_container c;
    enum eve_mode mode;
    int inspected; /* not excluded by the policy's container masks */
};

struct worker_ctx {
    struct daemon *d;
    unsigned idx;
    struct json j;
    struct flow_owner cache[FLOW_CACHE];
};

/* A finding against a container, on its way to the judge. */
struct judge_item {
    struct judge_item *next;
    struct sl_container c;
    char source[16]; /* "network", "file", "operator" */
    char reason[320];
    int release; /* an operator's release */
};

enum judged_state { JUDGED_COMPROMISED, JUDGED_ISOLATED, JUDGED_STOPPED };

struct judged {
    char id[65];
    enum judged_state state;
};

struct daemon {
    const char *config;
    pthread_mutex_t policy_lock;
    struct rules_policy *policy; /* the running one */
    time_t started;

    struct sl_container_map *map;
    struct sl_control *control;
    struct nfq_inline *q;
    struct worker_ctx *workers;
    unsigned nworkers;
    /* the compromise judge: findings in, responses out, on its own thread */
    pthread_mutex_t judge_lock;
    pthread_cond_t judge_cond;
    struct judge_item *judge_head, *judge_tail;
    int judge_stop;
    pthread_t judge;
    struct judged *judged; /* containers found compromised, by ID */
    size_t njudged, judged_cap;

    struct sl_detect *detect;
    int iso_ready;     /* sl_iso_init succeeded */
    struct tls_ca *ca; /* NULL when TLS is not intercepted */
    struct tls_forge *forge;
    struct tls_proxy *tls;
    struct sl_upstream *upstream_socks; /* where the proxy connects from */
    struct tls_upstream_policy upstream;
    struct tls_worker *tls_workers;
    unsigned ntls;
    _Atomic unsigned tls_generation; /* bumped by a reload */

    /* event writer */
    pthread_mutex_t evq_lock;
    pthread_cond_t evq_cond;
    struct evq_item *head, *tail;
    size_t evq_bytes;
    int evq_stop, reopen;
    pthread_t writer;
    int eve_fd;
    char *eve_path;
    int use_syslog;
    _Atomic uint64_t events, alerts, anomalies, blocked, lost;
    _Atomic uint64_t delayed; /* written late: they waited for a full disk, a lost folder */
};

static void judge_alert(struct daemon *d, const struct dpi_event *ev, const struct flow_owner *o);
static int judge_isolate(struct daemon *d, const struct sl_container *c, const char *reason,
                         char *err, size_t errlen);
static int ctl_isolate(struct daemon *d, int release, const char *which, struct json *r, char *err,
                       size_t errlen);

/* --- policy -------------------------------------------------------------------- */

static struct rules_policy *policy_load(const char *path, char *err, size_t errlen)
{
    struct rules_policy *p = rules_policy_load(path, 1, err, errlen);
    if (p && dpi_policy_check(p, err, errlen) != 0) {
        rules_policy_unref(p);
        return NULL;
    }
    return p;
}

static struct rules_policy *policy_get(struct daemon *d)
{
    pthread_mutex_lock(&d->policy_lock);
    struct rules_policy *p = rules_policy_ref(d->policy);
    pthread_mutex_unlock(&d->policy_lock);
    return p;
}

static int masks_match(const struct rules_strlist *masks, const struct sl_container *c)
{
    for (size_t i = 0; i < masks->n; i++) {
        const char *m = masks->v[i].s;
        if (fnmatch(m, c->name, 0) == 0 || (c->image[0] && fnmatch(m, c->image, 0) == 0) ||
            (c->id[0] && strncmp(m, c->id, strlen(m)) == 0 && strlen(m) >= 12))
            return 1;
    }
    return 0;
}

static int network_match(const struct rules_strlist *masks, const struct sl_container *c)
{
    for (size_t i = 0; i < masks->n; i++)
        if (fnmatch(masks->v[i].s, c->network, 0) == 0)
            return 1;
    return 0;
}

/* A policy list of ports as iptables' multiport list: "80,8000:8999". At
 * most 15 ports (a range counts two), each 1..65535. */
static int ports_list(const struct rules_policy *p, const struct rules_strlist *ports,
                      const char *key, char *out, size_t len, char *err, size_t errlen)
{
    size_t used = 0;
    unsigned slots = 0;

    out[0] = '\0';
    for (size_t i = 0; i < ports->n; i++) {
        const struct rules_str *s = &ports->v[i];
        unsigned a, b;
        char tail;
        int n = sscanf(s->s, "%u:%u%c", &a, &b, &tail);
        if (n != 2 && !(sscanf(s->s, "%u%c", &a, &tail) == 1 && (b = a, 1))) {
            snprintf(err, errlen, "%s:%d:%d: %s: '%s' is not a port or a range (80, 8000:8999)",
                     p->path, s->line, s->column, key, s->s);
            return -1;
        }
        slots += a == b ? 1 : 2;
        if (a == 0 || b > 65535 || a > b || slots > 15) {
            snprintf(err, errlen, "%s:%d:%d: %s: '%s': %s", p->path, s->line, s->column, key, s->s,
                     slots > 15 ? "more than 15 ports (a range counts two)"
                                : "ports are 1..65535, low:high");
            return -1;
        }
        used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "," : "", s->s);
        if (used >= len)
            return -1;
    }
    return 0;
}

/* --- which container a flow is, and what the policy says of it ------------------ */

static void owner_resolve(struct worker_ctx *w, const struct dpi_flow_meta *m, struct flow_owner *o)
{
    struct daemon *d = w->d;

    memset(o, 0, sizeof(*o));
    o->flow_id = m->flow_id;
    if (d->map) {
        /* The client side first, the container that downloads or uploads:
         * by its address on a Docker network, else (host network) by the
         * socket; then the server side the same way. */
        int sockets = m->l4proto == IPPROTO_TCP || m->l4proto == IPPROTO_UDP;
        if (!sl_container_by_addr(d->map, m->family, m->src, &o->c) &&
            !(sockets && sl_container_by_socket(d->map, m->family, m->l4proto, m->src, m->sport,
                                                m->dst, m->dport, &o->c)) &&
            !sl_container_by_addr(d->map, m->family, m->dst, &o->c) && sockets)
            sl_container_by_socket(d->map, m->family, m->l4proto, m->dst, m->dport, m->src,
                                   m->sport, &o->c);
    }
    struct rules_policy *p = policy_get(d);
    o->inspected = masks_match(&p->containers.include, &o->c) &&
                   !masks_match(&p->containers.exclude, &o->c) &&
                   network_match(&p->containers.networks, &o->c);
    o->mode = p->enforcement.mode == RULES_MODE_ENFORCE && !masks_match(&p->containers.audit, &o->c)
                  ? EVE_ENFORCE
                  : EVE_AUDIT;
    rules_policy_unref(p);
}

static struct flow_owner *owner_of(struct worker_ctx *w, const struct dpi_flow_meta *m)
{
    struct flow_owner *o = &w->cache[m->flow_id % FLOW_CACHE];
    if (o->flow_id != m->flow_id)
        owner_resolve(w, m, o);
    return o;
}

/* --- events ---------------------------------------------------------------------- */

static void evq_push(struct daemon *d, const char *line, size_t len)
{
    struct evq_item *it = malloc(sizeof(*it) + len + 2);

    pthread_mutex_lock(&d->evq_lock);
    if (it == NULL || d->evq_bytes + len > EVQ_MAX_BYTES) {
        pthread_mutex_unlock(&d->evq_lock);
        free(it);
        atomic_fetch_add(&d->lost, 1);
        return;
    }
    memcpy(it->line, line, len);
    it->line[len] = '\n';
    it->line[len + 1] = '\0';
    it->len = len + 1;
    it->size = it->len;
    it->syslogged = 0;
    it->next = NULL;
    /* The writer waits only on an empty list. */
    int was_empty = d->head == NULL;
    if (d->tail)
        d->tail->next = it;
    else
        d->head = it;
    d->tail = it;
    d->evq_bytes += it->size;
    if (was_empty)
        pthread_cond_signal(&d->evq_cond);
    pthread_mutex_unlock(&d->evq_lock);
}

static int eve_reopen(struct daemon *d)
{
    if (d->eve_fd >= 0)
        close(d->eve_fd);
    if (strcmp(d->eve_path, "-") == 0) {
        d->eve_fd = dup(STDOUT_FILENO);
        return d->eve_fd < 0 ? -1 : 0;
    }
    char *slash = strrchr(d->eve_path, '/');
    if (slash && slash != d->eve_path) {
        *slash = '\0';
        mkdir(d->eve_path, 0755);
        *slash = '/';
    }
    d->eve_fd = open(d->eve_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return d->eve_fd < 0 ? -1 : 0;
}

/* Writes one item; 0 when all of it is on disk. A partial write keeps the
 * rest in the item, so a line is never torn or written twice. */
static int evq_write(struct daemon *d, struct evq_item *it)
{
    while (it->len > 0) {
        ssize_t n = d->eve_fd < 0 ? -1 : write(d->eve_fd, it->line, it->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        memmove(it->line, it->line + n, it->len - (size_t)n);
        it->len -= (size_t)n;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    struct daemon *d = arg;
    int failing = 0;
    /* From a failed write until the backlog is written: every event written
     * in between is late; how many is said once the backlog is gone. */
    int late = 0;
    uint64_t late_n = 0;
    time_t late_since = 0;

    pthread_mutex_lock(&d->evq_lock);
    for (;;) {
        int waited = 0;
        while (d->head == NULL && !d->evq_stop && !d->reopen) {
            pthread_cond_wait(&d->evq_cond, &d->evq_lock);
            waited = 1;
        }
        if (waited && !d->evq_stop && !d->reopen) {
            /* Woken by the first event after a quiet spell: let the workers
             * add the ones that follow it, so that a busy appliance wakes
             * this thread a few hundred times a second, not once an event. */
            pthread_mutex_unlock(&d->evq_lock);
            usleep(EVQ_GATHER_US);
            pthread_mutex_lock(&d->evq_lock);
        }
        if (d->reopen) {
            d->reopen = 0;
            if (eve_reopen(d) < 0)
                log_warn("%s: cannot reopen the event log", d->eve_path);
        }
        if (d->head == NULL && d->evq_stop)
            break;
        struct evq_item *it = d->head;
        if (it == NULL)
            continue;
        pthread_mutex_unlock(&d->evq_lock);
        if (d->use_syslog && !it->syslogged && strstr(it->line, "\"event_type\":\"alert\"")) {
            syslog(LOG_WARNING, "%.*s", (int)it->len - 1, it->line);
            it->syslogged = 1;
        }
        int rc = evq_write(d, it);
        pthread_mutex_lock(&d->evq_lock);
        if (rc == 0) {
            if (failing)
                log_info("%s: writing events again", d->eve_path);
            failing = 0;
            d->head = it->next;
            if (d->head == NULL)
                d->tail = NULL;
            d->evq_bytes -= it->size; /* it->len is 0 now */
            free(it);
            if (late) {
                late_n++;
                atomic_fetch_add(&d->delayed, 1);
                if (d->head == NULL) {
                    log_info("%s: %llu events written late (the log could not be written "
                             "for %lld s), none lost",
                             d->eve_path, (unsigned long long)late_n,
                             (long long)(time(NULL) - late_since));
                    late = 0;
                }
            }
            continue;
        }
        /* Keep the event and retry: a full disk frees up, a folder returns. */
        if (!failing)
            log_warn("%s: cannot write events, keeping them in memory", d->eve_path);
        failing = 1;
        if (!late) {
            late = 1;
            late_n = 0;
            late_since = time(NULL);
        }
        if (d->evq_stop)
            break;
        pthread_mutex_unlock(&d->evq_lock);
        sleep(1);
        pthread_mutex_lock(&d->evq_lock);
        if (d->eve_fd < 0)
            eve_reopen(d);
    }
    pthread_mutex_unlock(&d->evq_lock);
    return NULL;
}

static void on_event(void *ctx, const struct dpi_event *ev)
{
    struct worker_ctx *w = ctx;
    struct daemon *d = w->d;
    struct flow_owner *o = owner_of(w, ev->meta);

    if (o->inspected) {
        eve_format(&w->j, ev, o->mode, &o->c, NULL);
        if (!w->j.failed) {
            evq_push(d, w->j.buf, w->j.len);
            atomic_fetch_add(&d->events, 1);
        }
        if (ev->alert) {
            atomic_fetch_add(&d->alerts, 1);
            if (ev->alert->action == RULES_ACTION_BLOCK && o->mode == EVE_ENFORCE)
                atomic_fetch_add(&d->blocked, 1);
            judge_alert(d, ev, o);
        }
        if (ev->anomaly) {
            atomic_fetch_add(&d->anomalies, 1);
            if (ev->anomaly->action == RULES_ACTION_BLOCK && o->mode == EVE_ENFORCE)
                atomic_fetch_add(&d->blocked, 1);
        }
    }
    if (ev->type == DPI_EVENT_FLOW)
        o->flow_id = 0; /* the flow is over */
}

/* --- workers --------------------------------------------------------------------- */

static struct rules_policy *ops_policy(void *ctx)
{
    return policy_get(ctx);
}

static struct dpi_engine *ops_engine_new(void *ctx, unsigned worker, struct rules_policy *p)
{
    struct daemon *d = ctx;
    struct worker_ctx *w = &d->workers[worker];
    char err[256];

    memset(w->cache, 0, sizeof(w->cache));
    struct dpi_engine *e = dpi_engine_new(p, on_event, w, err, sizeof(err));
    if (e == NULL) {
        log_warnx("worker %u: %s", worker, err);
        return NULL;
    }
    dpi_engine_set_inline(e, 1);
    dpi_engine_set_tls_policy(e, 1);
    return e;
}

static void ops_engine_free(void *ctx, unsigned worker, struct dpi_engine *e)
{
    (void)ctx;
    (void)worker;
    dpi_engine_free(e);
}

static int ops_enforce(void *ctx, const struct dpi_flow *f)
{
    struct daemon *d = ctx;
    const struct dpi_flow_meta *m = dpi_flow_meta(f);
    /* The worker is in the high bits of the flow id (nfq_flowtable_new);
     * this runs on that worker's thread, so its cache is ours to use. */
    unsigned worker = (unsigned)(m->flow_id >> 40);
    if (worker >= d->nworkers)
        return 0;
    struct flow_owner *o = owner_of(&d->workers[worker], m);
    return o->inspected && o->mode == EVE_ENFORCE;
}

/* --- TLS interception ------------------------------------------------------------ */

/*
 * One policy's engine on one proxy thread. The thread's new connections get
 * the newest; a connection keeps the one it began with to its end, so a
 * reload never changes the rules under a flow. Used by that thread only: the
 * count needs no lock.
 */
struct tls_gen {
    struct dpi_engine *engine;
    struct rules_policy *policy;
    unsigned refs; /* its connections, and the thread while it is the newest */
};

/* One proxy thread's engines; connections of that thread only. */
struct tls_worker {
    struct daemon *d;
    struct worker_ctx owners; /* its own container cache */
    struct tls_gen *cur;      /* for new connections */
    unsigned generation;      /* of the policy cur was made from */
    uint64_t next_id;
};

/* One intercepted connection. */
struct tls_conn {
    struct tls_worker *w;
    struct tls_gen *g; /* the engine it began with */
    struct dpi_flow *flow;
    struct dpi_flow_meta meta;
    struct dpi_tls_facts facts;
    char sni[256], version[16], alpn[16];
    char signature[128];
    int enforce;
    int plain;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void meta_from(struct dpi_flow_meta *m, const struct sockaddr *client,
                      const struct sockaddr *server)
{
    memset(m, 0, sizeof(*m));
    m->l4proto = IPPROTO_TCP;
    m->from_start = 1; /* the proxy reads the plaintext from its first byte */
    if (client->sa_family == AF_INET6) {
        const struct sockaddr_in6 *c = (const void *)client, *s = (const void *)server;
        m->family = 6;
        memcpy(m->src, &c->sin6_addr, 16);
        memcpy(m->dst, &s->sin6_addr, 16);
        m->sport = ntohs(c->sin6_port);
        m->dport = ntohs(s->sin6_port);
    } else {
        const struct sockaddr_in *c = (const void *)client, *s = (const void *)server;
        m->family = 4;
        memcpy(m->src, &c->sin_addr, 4);
        memcpy(m->dst, &s->sin_addr, 4);
        m->sport = ntohs(c->sin_port);
        m->dport = ntohs(s->sin_port);
    }
}

static void tls_on_event(void *ctx, const struct dpi_event *ev)
{
    struct tls_worker *w = ctx;
    struct tls_conn *c = ev->meta->user;
    struct flow_owner *o = owner_of(&w->owners, ev->meta);

    if (ev->alert && ev->alert->action == RULES_ACTION_BLOCK && c && !c->signature[0])
        snprintf(c->signature, sizeof(c->signature), "%s", ev->alert->signature);
    if (!o->inspected)
        return;
    eve_format(&w->owners.j, ev, o->mode, &o->c, c && !c->plain ? &c->facts : NULL);
    if (!w->owners.j.failed) {
        evq_push(w->d, w->owners.j.buf, w->owners.j.len);
        atomic_fetch_add(&w->d->events, 1);
    }
    if (ev->alert) {
        atomic_fetch_add(&w->d->alerts, 1);
        if (ev->alert->action == RULES_ACTION_BLOCK && o->mode == EVE_ENFORCE)
            atomic_fetch_add(&w->d->blocked, 1);
        judge_alert(w->d, ev, o);
    }
    if (ev->anomaly) {
        atomic_fetch_add(&w->d->anomalies, 1);
        if (ev->anomaly->action == RULES_ACTION_BLOCK && o->mode == EVE_ENFORCE)
            atomic_fetch_add(&w->d->blocked, 1);
    }
    if (ev->type == DPI_EVENT_FLOW)
        o->flow_id = 0;
}

static void tls_gen_put(struct tls_gen *g)
{
    if (g == NULL || --g->refs > 0)
        return;
    dpi_engine_free(g->engine);
    rules_policy_unref(g->policy);
    free(g);
}

/* The worker, its engine made from the newest policy: after a reload the
 * first new connection makes it; the older one stays with its connections
 * and goes with the last of them. */
static struct tls_worker *tls_worker_of(struct daemon *d, unsigned worker)
{
    struct tls_worker *w = &d->tls_workers[worker];
    unsigned gen = atomic_load(&d->tls_generation);
    char err[256];

    if (w->cur && w->generation == gen)
        return w;
    struct tls_gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        log_warnx("TLS worker %u: out of memory", worker);
        return w->cur ? w : NULL;
    }
    g->policy = policy_get(d);
    g->engine = dpi_engine_new(g->policy, tls_on_event, w, err, sizeof(err));
    if (g->engine == NULL) {
        log_warnx("TLS worker %u: %s%s", worker, err,
                  w->cur ? " (its connections keep the previous policy)" : "");
        rules_policy_unref(g->policy);
        free(g);
        w->generation = gen; /* once per reload, not once per connection */
        return w->cur ? w : NULL;
    }
    g->refs = 1;
    tls_gen_put(w->cur);
    w->cur = g;
    w->generation = gen;
    return w;
}

/* The tls.bypass_sni mask the name matches; NULL if none. */
static const char *sni_bypassed(const struct rules_policy *p, const char *sni)
{
    for (size_t i = 0; i < p->tls.bypass_sni.n; i++)
        if (sni[0] && fnmatch(p->tls.bypass_sni.v[i].s, sni, FNM_CASEFOLD) == 0)
            return p->tls.bypass_sni.v[i].s;
    return NULL;
}

/* The first of masks matching container c; NULL if none. */
static const char *mask_matching(const struct rules_strlist *masks, const struct sl_container *c)
{
    for (size_t i = 0; i < masks->n; i++) {
        struct rules_strlist one = {&masks->v[i], 1};
        if (masks_match(&one, c))
            return masks->v[i].s;
    }
    return NULL;
}

/* The tls.mtls_splice entry the destination falls in; NULL if none. */
static const char *mtls_listed(const struct rules_policy *p, const struct dpi_flow_meta *m)
{
    for (size_t i = 0; i < p->tls.mtls_splice.n; i++)
        if (rules_dest_match(p->tls.mtls_splice.v[i].s, m->family, m->dst, m->dport) == 1)
            return p->tls.mtls_splice.v[i].s;
    return NULL;
}

/*
 * What the policy says of a new connection on an intercepted port. Spliced
 * only where it names a reason: a container not inspected, bypass_containers,
 * bypass_sni once the proxy confirms the name at the destination, and
 * mtls_splice when the server asks for a client certificate.
 */
static void tls_decide(void *ctx, const struct tls_proxy_peer *peer, struct tls_proxy_decision *out)
{
    struct daemon *d = ctx;
    struct tls_worker *w = &d->tls_workers[peer->worker];
    struct dpi_flow_meta m;
    const char *hit;

    meta_from(&m, peer->client, peer->server);
    m.flow_id = ++w->next_id;
    struct flow_owner *o = owner_of(&w->owners, &m);
    struct rules_policy *p = policy_get(d);
    if (!o->inspected) {
        out->action = TLS_PROXY_SPLICE;
        snprintf(out->why, sizeof(out->why), "container not inspected (containers.*)");
    } else if ((hit = mask_matching(&p->tls.bypass_containers, &o->c)) != NULL) {
        out->action = TLS_PROXY_SPLICE;
        snprintf(out->why, sizeof(out->why), "tls.bypass_containers: %s", hit);
    } else if (!peer->tls) {
        int pass = p->tls.non_tls == RULES_NON_TLS_PASS;
        out->action = pass ? TLS_PROXY_PLAIN : TLS_PROXY_CLOSE;
        snprintf(out->why, sizeof(out->why), "not TLS on a TLS port (tls.non_tls: %s)",
                 pass ? "pass" : "refuse");
    } else if ((hit = sni_bypassed(p, peer->sni)) != NULL) {
        out->action = TLS_PROXY_BYPASS;
        snprintf(out->why, sizeof(out->why), "tls.bypass_sni: %s", hit);
    } else {
        out->action = TLS_PROXY_INTERCEPT;
    }
    if ((hit = mtls_listed(p, &m)) != NULL) {
        out->mtls_splice = 1;
        snprintf(out->mtls_why, sizeof(out->mtls_why),
                 "tls.mtls_splice: %s (the server asked for a client certificate)", hit);
    }
    rules_policy_unref(p);
    o->flow_id = 0;
}

/*
 * A decision of the proxy that is not an interception: an event of type
 * "tls" with tls.action and tls.reason. Containers the policy does not
 * inspect get none (containers.exclude: no events).
 */
static void tls_report(void *ctx, const struct tls_proxy_peer *peer, const char *action,
                       const char *why)
{
    struct daemon *d = ctx;
    struct tls_worker *w = &d->tls_workers[peer->worker];
    struct dpi_flow_meta m;

    meta_from(&m, peer->client, peer->server);
    m.flow_id = ((uint64_t)(128 + peer->worker) << 40) | ++w->next_id;
    struct dpi_tls_facts facts = {.sni = peer->sni, .action = action, .reason = why};
    struct dpi_event ev = {.type = DPI_EVENT_TLS,
                           .ts_us = now_us(),
                           .app_proto = peer->tls ? "tls" : NULL,
                           .meta = &m,
                           .tls = &facts};
    struct flow_owner *o = owner_of(&w->owners, &m);
    if (o->inspected) {
        eve_format(&w->owners.j, &ev, EVE_ENFORCE, &o->c, NULL);
        if (!w->owners.j.failed) {
            evq_push(d, w->owners.j.buf, w->owners.j.len);
            atomic_fetch_add(&d->events, 1);
        }
    }
    o->flow_id = 0;
}

static void *tls_open(void *ctx, const struct tls_proxy_peer *peer)
{
    struct daemon *d = ctx;
    struct tls_worker *w = tls_worker_of(d, peer->worker);
    struct tls_conn *c = w ? calloc(1, sizeof(*c)) : NULL;

    if (c == NULL)
        return NULL;
    c->w = w;
    meta_from(&c->meta, peer->client, peer->server);
    /* Ids apart from the NFQUEUE workers' (worker << 40, worker < 64). */
    c->meta.flow_id = ((uint64_t)(128 + peer->worker) << 40) | ++w->next_id;
    c->meta.user = c;
    snprintf(c->sni, sizeof(c->sni), "%s", peer->sni ? peer->sni : "");
    /* The name is a constant for known versions: only others go in c->version. */
    c->facts.sni = c->sni;
    c->facts.version =
        dpi_tls_version_name((uint16_t)peer->version, c->version, sizeof(c->version));
    snprintf(c->alpn, sizeof(c->alpn), "%s", peer->alpn ? peer->alpn : "");
    c->facts.alpn = c->alpn;
    c->facts.intercepted = 1;
    c->plain = peer->version == 0; /* not TLS, relayed as plaintext (tls.non_tls: pass) */
    struct flow_owner *o = owner_of(&w->owners, &c->meta);
    c->enforce = o->inspected && o->mode == EVE_ENFORCE;
    c->g = w->cur;
    c->flow = dpi_flow_new(c->g->engine, &c->meta);
    if (c->flow == NULL) {
        free(c);
        return NULL;
    }
    c->g->refs++;
    /* The proxy resets one HTTP/2 stream and keeps the others going. */
    if (strcmp(c->alpn, "h2") == 0)
        dpi_flow_stream_blocks(c->flow, 1);
    return c;
}

static size_t tls_blocked_streams(void *ctx, void *h, uint32_t *ids, size_t max)
{
    struct tls_conn *c = h;
    (void)ctx;
    size_t n = dpi_flow_blocked_streams(c->flow, ids, max);
    return c->enforce ? n : 0; /* audit: reported, not reset */
}

static void tls_judge_held(void *ctx, void *h, int dir, uint32_t stream)
{
    struct tls_conn *c = h;
    (void)ctx;
    dpi_flow_judge_held(c->flow, (enum dpi_dir)dir, stream);
}

static int tls_data(void *ctx, void *h, int dir, const uint8_t *p, size_t n)
{
    struct tls_conn *c = h;
    (void)ctx;
    enum dpi_verdict v = dpi_flow_stream(c->g->engine, c->flow, (enum dpi_dir)dir, p, n, now_us());
    return v == DPI_BLOCK && c->enforce;
}

static int tls_holding(void *ctx, void *h, int dir)
{
    struct tls_conn *c = h;
    (void)ctx;
    /* Only worth the wait when a match would be blocked. */
    return c->enforce && dpi_flow_mid_message(c->flow, (enum dpi_dir)dir);
}

static int tls_end(void *ctx, void *h, int dir)
{
    struct tls_conn *c = h;
    (void)ctx;
    enum dpi_verdict v = dpi_flow_stream_end(c->g->engine, c->flow, (enum dpi_dir)dir, now_us());
    return v == DPI_BLOCK && c->enforce;
}

static size_t tls_block_page(void *ctx, void *h, char *buf, size_t len)
{
    struct tls_conn *c = h;
    char body[1024];
    (void)ctx;
    /* Inside a WebSocket the page would be read as frames: just close. */
    if (dpi_flow_in_tunnel(c->flow))
        return 0;
    int n =
        snprintf(body, sizeof(body),
                 "<!DOCTYPE html>\n<html><head><title>Blocked by sluice</title></head><body>\n"
                 "<h1>Blocked by sluice</h1>\n<p>This download was blocked: it matched "
                 "<b>%s</b>.</p>\n<p>Report: flow %llu (sluicectl reports).</p>\n</body></html>\n",
                 c->signature[0] ? c->signature : "the inspection policy",
                 (unsigned long long)c->meta.flow_id);
    int m = snprintf(buf, len,
                     "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\n"
                     "Content-Length: %d\r\nConnection: close\r\nCache-Control: no-store\r\n"
                     "X-Sluice-Signature: %s\r\n\r\n%s",
                     n, c->signature[0] ? c->signature : "policy", body);
    return m > 0 && (size_t)m < len ? (size_t)m : 0;
}

static void tls_refused(void *ctx, const struct tls_proxy_peer *peer, const char *why)
{
    struct daemon *d = ctx;
    struct tls_worker *w = &d->tls_workers[peer->worker];
    struct dpi_flow_meta m;
    char sig[384], version[16];

    meta_from(&m, peer->client, peer->server);
    m.flow_id = ((uint64_t)(128 + peer->worker) << 40) | ++w->next_id;
    snprintf(sig, sizeof(sig), "TLS upstream refused: %s", why);
    struct dpi_alert_facts a = {sig, "tls-upstream", 2, RULES_ACTION_BLOCK, "tls", NULL};
    struct dpi_tls_facts facts = {
        .sni = peer->sni,
        .version = dpi_tls_version_name((uint16_t)peer->version, version, sizeof(version))};
    struct dpi_event ev = {.type = DPI_EVENT_ALERT,
                           .ts_us = now_us(),
                           .app_proto = "tls",
                           .meta = &m,
                           .tls = &facts,
                           .alert = &a};
    struct flow_owner *o = owner_of(&w->owners, &m);
    /* Refusing is not a policy choice: it is always enforced. */
    eve_format(&w->owners.j, &ev, EVE_ENFORCE, &o->c, NULL);
    o->flow_id = 0;
    if (!w->owners.j.failed) {
        evq_push(d, w->owners.j.buf, w->owners.j.len);
        atomic_fetch_add(&d->events, 1);
        atomic_fetch_add(&d->alerts, 1);
        atomic_fetch_add(&d->blocked, 1);
    }
}

/* The proxy connects from the container's own network namespace: the
 * host's forwarding rules (isolation, Docker's network isolation, the
 * operator's DOCKER-USER rules) judge its connection as the container's. */
static int tls_upstream_socket(void *ctx, const struct tls_proxy_peer *peer, char *why,
                               size_t whylen)
{
    struct daemon *d = ctx;
    struct tls_worker *w = &d->tls_workers[peer->worker];
    struct dpi_flow_meta m;

    meta_from(&m, peer->client, peer->server);
    m.flow_id = ((uint64_t)(128 + peer->worker) << 40) | ++w->next_id;
    struct flow_owner *o = owner_of(&w->owners, &m);
    int pid = o->c.id[0] && d->map ? sl_container_pid(d->map, o->c.id) : 0;
    o->flow_id = 0;
    return sl_upstream_socket(d->upstream_socks, pid, peer->client, peer->server, why, whylen);
}

static void tls_close(void *ctx, void *h)
{
    struct tls_conn *c = h;
    (void)ctx;
    dpi_flow_end(c->g->engine, c->flow, now_us());
    dpi_flow_free(c->g->engine, c->flow);
    tls_gen_put(c->g);
    free(c);
}

/* TLS connections at once at most, and the descriptors kept for the rest
 * of the daemon (queues, sockets, the Docker API, logs). */
#define TLS_MAX_CONNS  10000
#define NOFILE_RESERVE 256

/*
 * Every intercepted connection holds two descriptors (the container's and
 * upstream's), and systemd's default soft limit is 1024: the soft limit is
 * raised to the hard one at start. Returns the limit in force.
 */
static uint64_t nofile_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_warn("getrlimit RLIMIT_NOFILE");
        return 1024;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            log_warn("open files: cannot raise the soft limit %llu to %llu",
                     (unsigned long long)was, (unsigned long long)rl.rlim_max);
            rl.rlim_cur = was;
        } else {
            log_info("open files: soft limit raised from %llu to %llu", (unsigned long long)was,
                     (unsigned long long)rl.rlim_cur);
        }
    }
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

static int tls_start(struct daemon *d, const struct rules_policy *p, unsigned cpus, char *err,
                     size_t errlen)
{
    char why[400];

    d->ca = tls_ca_open(p->tls.state_dir, p->tls.ca_rotate_days, p->tls.ca_grace_days, why,
                        sizeof(why));
    if (d->ca == NULL) {
        snprintf(err, errlen, "TLS interception: %s", why);
        return -1;
    }
    d->forge = tls_forge_new(d->ca, 10000);
    d->upstream.ca_file = p->tls.upstream_ca_file;
    d->upstream.min_rsa_bits = 2048;
    d->upstream.min_ec_bits = 256;
    d->ntls = p->tls.workers ? p->tls.workers : cpus;
    d->tls_workers = calloc(d->ntls, sizeof(*d->tls_workers));
    if (d->forge == NULL || d->tls_workers == NULL) {
        snprintf(err, errlen, "TLS interception: out of memory");
        return -1;
    }
    for (unsigned i = 0; i < d->ntls; i++) {
        d->tls_workers[i].d = d;
        d->tls_workers[i].owners.d = d;
        json_init(&d->tls_workers[i].owners.j);
    }
    uint64_t nofile = nofile_raise();
    unsigned max_conns = tls_proxy_conns_fit(nofile, NOFILE_RESERVE, TLS_MAX_CONNS);
    if (max_conns < TLS_MAX_CONNS)
        log_warnx("open files limited to %llu: at most %u TLS connections at once, not %u "
                  "(two descriptors each; raise LimitNOFILE or ulimit -Hn)",
                  (unsigned long long)nofile, max_conns, TLS_MAX_CONNS);
    struct tls_proxy_config cfg = {
        .port = (uint16_t)p->tls.proxy_port,
        .workers = d->ntls,
        .max_conns = max_conns,
        .idle_ms = 300000,
        .handshake_ms = 10000,
        .hold_limit = p->limits.body,
        .hold_total = p->tls.held_total,
        .max_per_client = p->tls.max_per_container,
        .stall_ms = p->tls.stall_timeout_s * 1000,
        .bypass_cache_s = p->tls.bypass_confirm_s,
        .upstream_mark = NFQ_MARK_OWN,
        .forge = d->forge,
        .ca = d->ca,
        .upstream = &d->upstream,
    };
    d->upstream_socks = sl_upstream_new(NFQ_MARK_OWN, why, sizeof(why));
    if (d->upstream_socks == NULL) {
        snprintf(err, errlen, "TLS proxy: %s", why);
        return -1;
    }
    struct tls_proxy_ops ops = {
        .ctx = d,
        .decide = tls_decide,
        .open = tls_open,
        .data = tls_data,
        .holding = tls_holding,
        .end = tls_end,
        .block_page = tls_block_page,
        .refused = tls_refused,
        .close = tls_close,
        .report = tls_report,
        .upstream_socket = tls_upstream_socket,
        .blocked_streams = tls_blocked_streams,
        .judge_held = tls_judge_held,
    };
    d->tls = tls_proxy_start(&cfg, &ops, why, sizeof(why));
    if (d->tls == NULL) {
        snprintf(err, errlen, "TLS proxy: %s", why);
        return -1;
    }
    log_info("TLS interception on port %u, CA %s (sluicectl ca export)", p->tls.proxy_port,
             tls_ca_fingerprint(d->ca));
    return 0;
}

static void tls_stop(struct daemon *d)
{
    if (d->tls)
        tls_proxy_stop(d->tls); /* closes connections: their events are written */
    d->tls = NULL;
    sl_upstream_free(d->upstream_socks);
    d->upstream_socks = NULL;
    for (unsigned i = 0; d->tls_workers && i < d->ntls; i++) {
        struct tls_worker *w = &d->tls_workers[i];
        tls_gen_put(w->cur); /* the connections closed: the last reference */
        w->cur = NULL;
        json_free(&w->owners.j);
    }
    free(d->tls_workers);
    d->tls_workers = NULL;
    tls_forge_free(d->forge);
    tls_ca_free(d->ca);
    d->forge = NULL;
    d->ca = NULL;
}

/* --- the compromise judge -------------------------------------------------------- */

static void event_line(struct daemon *d, struct json *j)
{
    if (!j->failed) {
        evq_push(d, j->buf, j->len);
        atomic_fetch_add(&d->events, 1);
    }
}

/* Any thread: hands a finding (or an operator's order) to the judge. */
static void judge_report(struct daemon *d, const struct sl_container *c, const char *source,
                         const char *reason, int release)
{
    struct judge_item *it = calloc(1, sizeof(*it));
    if (it == NULL || c->id[0] == '\0') {
        free(it);
        return;
    }
    it->c = *c;
    snprintf(it->source, sizeof(it->source), "%s", source);
    snprintf(it->reason, sizeof(it->reason), "%s", reason);
    it->release = release;
    pthread_mutex_lock(&d->judge_lock);
    if (d->judge_tail)
        d->judge_tail->next = it;
    else
        d->judge_head = it;
    d->judge_tail = it;
    pthread_cond_signal(&d->judge_cond);
    pthread_mutex_unlock(&d->judge_lock);
}

/* Whether a finding of this source counts, per compromise.findings. */
static int finding_counts(struct daemon *d, const char *kind)
{
    struct rules_policy *p = policy_get(d);
    int yes = 0;
    for (size_t i = 0; i < p->compromise.findings.n && !yes; i++)
        yes = strcmp(p->compromise.findings.v[i].s, kind) == 0;
    rules_policy_unref(p);
    return yes;
}

static struct judged *judged_find(struct daemon *d, const char *id)
{
    for (size_t i = 0; i < d->njudged; i++)
        if (strcmp(d->judged[i].id, id) == 0)
            return &d->judged[i];
    return NULL;
}

static const char *sluice_state(void *ctx, const char *id)
{
    static const char *const names[] = {"compromised", "isolated", "stopped"};
    struct daemon *d = ctx;
    pthread_mutex_lock(&d->judge_lock);
    struct judged *j = judged_find(d, id);
    const char *s = j ? names[j->state] : sl_isolated(id) ? "isolated" : "clean";
    pthread_mutex_unlock(&d->judge_lock);
    return s;
}

static int docker_stop(struct daemon *d, const char *id, char *err, size_t errlen)
{
    char target[256];
    struct sl_buf reply;
    int status = 0;
    struct rules_policy *p = policy_get(d);

    sl_buf_init(&reply, 4096);
    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/containers/%s/stop?t=5", id);
    int rc = docker_call(p->containers.docker_socket, "POST", target, NULL, NULL, 0, &status,
                         &reply, err, errlen);
    rules_policy_unref(p);
    sl_buf_free(&reply);
    if (rc == 0 && status != 204 && status != 304) {
        snprintf(err, errlen, "Docker answered %d", status);
        rc = -1;
    }
    return rc;
}

static void judge_one(struct daemon *d, struct json *j, const struct judge_item *it)
{
    char err[512] = "";
    struct rules_policy *p = policy_get(d);
    enum rules_response action = p->compromise.action;
    rules_policy_unref(p);

    if (it->release) {
        int rc = sl_release(it->c.id, err, sizeof(err));
        pthread_mutex_lock(&d->judge_lock);
        struct judged *jd = judged_find(d, it->c.id);
        if (jd)
            *jd = d->judged[--d->njudged];
        pthread_mutex_unlock(&d->judge_lock);
        eve_format_isolation(j, now_us(), &it->c, "release", it->reason, rc == 0 ? "" : err);
        event_line(d, j);
        log_info("%s released: %s", it->c.name, rc == 0 ? it->reason : err);
        return;
    }
    pthread_mutex_lock(&d->judge_lock);
    struct judged *jd = judged_find(d, it->c.id);
    int again =
        jd != NULL && !(strcmp(it->source, "operator") == 0 && jd->state == JUDGED_COMPROMISED);
    if (jd == NULL && d->njudged < 4096) {
        if (d->njudged == d->judged_cap) {
            size_t cap = d->judged_cap ? 2 * d->judged_cap : 16;
            struct judged *n = realloc(d->judged, cap * sizeof(*n));
            if (n) {
                d->judged = n;
                d->judged_cap = cap;
            }
        }
        if (d->njudged < d->judged_cap) {
            jd = &d->judged[d->njudged++];
            memcpy(jd->id, it->c.id, sizeof(jd->id));
            jd->state = JUDGED_COMPROMISED;
        }
    }
    pthread_mutex_unlock(&d->judge_lock);
    if (again)
        return; /* judged already: one response per container */
    if (strcmp(it->source, "operator") == 0)
        action = RULES_RESPONSE_ISOLATE;

    const char *what = "alert";
    enum judged_state st = JUDGED_COMPROMISED;
    int rc = 0;
    if (action == RULES_RESPONSE_ISOLATE) {
        what = "isolate";
        st = JUDGED_ISOLATED;
        rc = judge_isolate(d, &it->c, it->reason, err, sizeof(err));
    } else if (action == RULES_RESPONSE_STOP) {
        what = "stop";
        st = JUDGED_STOPPED;
        rc = docker_stop(d, it->c.id, err, sizeof(err));
    }
    if (rc == 0) {
        pthread_mutex_lock(&d->judge_lock);
        jd = judged_find(d, it->c.id);
        if (jd)
            jd->state = st;
        pthread_mutex_unlock(&d->judge_lock);
    }
    /* Alert only: the finding's own alert is the report; the container is
     * marked compromised (sluicectl containers) and nothing else happens. */
    if (action != RULES_RESPONSE_ALERT) {
        eve_format_isolation(j, now_us(), &it->c, rc == 0 ? what : "failed", it->reason,
                             rc == 0 ? "" : err);
        event_line(d, j);
    }
    if (rc == 0)
        log_warnx("%s (%.12s) compromised: %s; response: %s", it->c.name, it->c.id, it->reason,
                  what);
    else
        log_warnx("%s (%.12s) compromised: %s; %s failed: %s", it->c.name, it->c.id, it->reason,
                  what, err);
}

static void *judge_main(void *arg)
{
    struct daemon *d = arg;
    struct json j;

    json_init(&j);
    pthread_mutex_lock(&d->judge_lock);
    for (;;) {
        while (d->judge_head == NULL && !d->judge_stop)
            pthread_cond_wait(&d->judge_cond, &d->judge_lock);
        if (d->judge_head == NULL)
            break;
        struct judge_item *it = d->judge_head;
        d->judge_head = it->next;
        if (d->judge_head == NULL)
            d->judge_tail = NULL;
        pthread_mutex_unlock(&d->judge_lock);
        judge_one(d, &j, it);
        free(it);
        pthread_mutex_lock(&d->judge_lock);
    }
    pthread_mutex_unlock(&d->judge_lock);
    json_free(&j);
    return NULL;
}

/* What isolation needs of a container, from the Docker API: its addresses
 * and networks (subnets, drivers) and, for overlays, the docker_gwbridge
 * addresses of the overlay's members. 1 filled, 0 not running, -1 error. */
static struct jsonp_doc *docker_json(struct daemon *d, const char *target, int *status)
{
    char err[256];
    struct sl_buf body;
    struct rules_policy *p = policy_get(d);

    sl_buf_init(&body, 8u << 20);
    *status = 0;
    int rc = docker_call(p->containers.docker_socket, "GET", target, NULL, NULL, 0, status, &body,
                         err, sizeof(err));
    rules_policy_unref(p);
    struct jsonp_doc *doc = rc == 0 && *status == 200
                                ? jsonp_parse((const char *)body.data, body.len, err, sizeof(err))
                                : NULL;
    sl_buf_free(&body);
    return doc;
}

static int iso_target(struct daemon *d, const char *id, struct sl_iso_target *t, char *err,
                      size_t errlen)
{
    char target[256];
    int status;
    struct jsonp_doc *nets[SL_ISO_MAX_NETS] = {NULL}, *gwdoc, *cdoc;
    const struct jsonp_value *netv[SL_ISO_MAX_NETS];
    size_t n = 0;

    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/containers/%s/json", id);
    cdoc = docker_json(d, target, &status);
    if (cdoc == NULL) {
        snprintf(err, errlen, "Docker: no container %s (HTTP %d)", id, status);
        return status == 404 ? 0 : -1;
    }
    const struct jsonp_value *c = jsonp_root(cdoc);
    const struct jsonp_value *running = jsonp_path(c, "State.Running");
    if (running == NULL || running->type != JSONP_BOOL || !running->boolean) {
        jsonp_free(cdoc);
        return 0;
    }
    const struct jsonp_value *list = jsonp_path(c, "NetworkSettings.Networks");
    for (const struct jsonp_value *v = list ? list->child : NULL; v && n < SL_ISO_MAX_NETS;
         v = v->next) {
        snprintf(target, sizeof(target), DOCKER_API_PREFIX "/networks/%s",
                 jsonp_str(jsonp_get(v, "NetworkID"), "-"));
        if ((nets[n] = docker_json(d, target, &status)) != NULL) {
            netv[n] = jsonp_root(nets[n]);
            n++;
        }
    }
    gwdoc = docker_json(d, DOCKER_API_PREFIX "/networks/docker_gwbridge", &status);
    int rc =
        sl_iso_target_from_docker(t, c, netv, n, gwdoc ? jsonp_root(gwdoc) : NULL, err, errlen);
    for (size_t i = 0; i < n; i++)
        jsonp_free(nets[i]);
    jsonp_free(gwdoc);
    jsonp_free(cdoc);
    return rc < 0 ? -1 : 1;
}

static int judge_isolate(struct daemon *d, const struct sl_container *c, const char *reason,
                         char *err, size_t errlen)
{
    static struct sl_iso_target t;
    if (!d->iso_ready) {
        snprintf(err, errlen, "isolation is off (its state file could not be read)");
        return -1;
    }
    int rc = iso_target(d, c->id, &t, err, errlen);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(err, errlen, "%s is not running", c->name);
        return -1;
    }
    rc = sl_isolate(&t, reason, err, errlen);
    if (rc > 0)
        log_warnx("isolating %s: %s", c->name, err);
    return rc < 0 ? -1 : 0;
}

/* Isolated containers that run now, with their addresses now: the rules
 * follow them across sluiced, Docker and container restarts. */
static void iso_refresh(struct daemon *d, int always)
{
    static struct sl_iso_entry entries[64];
    static struct sl_iso_target targets[64];
    char err[512];
    size_t n = sl_iso_list(entries, 64), nt = 0;

    if (n == 0 && !always)
        return;
    for (size_t i = 0; i < n && i < 64; i++)
        if (iso_target(d, entries[i].id, &targets[nt], err, sizeof(err)) > 0)
            nt++;
    if (sl_isolate_reapply(targets, nt, err, sizeof(err)) < 0)
        log_warnx("isolation: %s", err);
}

/* A file scanner's detection: reported, and judged like a network finding. */
static void on_detection(void *ctx, const struct sl_detection *det, uint64_t id, pid_t pid,
                         uid_t uid)
{
    struct daemon *d = ctx;
    struct sl_container c;
    struct json j;

    (void)id;
    (void)pid;
    (void)uid;
    memset(&c, 0, sizeof(c));
    if (det->container[0] &&
        (d->map == NULL || sl_container_find(d->map, det->container, &c) <= 0)) {
        /* Not known to Docker (or Docker down): what the scanner said. */
        if (strlen(det->container) == 64 && strspn(det->container, "0123456789abcdef") == 64)
            snprintf(c.id, sizeof(c.id), "%.64s", det->container);
        else
            snprintf(c.name, sizeof(c.name), "%.127s", det->container);
    }
    json_init(&j);
    eve_format_detection(&j, now_us(), &c, det->signature,
                         det->path[0] ? det->path : det->host_path, det->sha256, det->action,
                         det->scanner);
    event_line(d, &j);
    json_free(&j);
    if (c.id[0] && strlen(c.id) == 64 && finding_counts(d, "malware")) {
        char reason[512];
        snprintf(reason, sizeof(reason), "%.128s in file %.300s", det->signature, det->path);
        judge_report(d, &c, "file", reason, 0);
    }
}

/* A network finding of an inspected flow. */
static void judge_alert(struct daemon *d, const struct dpi_event *ev, const struct flow_owner *o)
{
    if (ev->alert == NULL || o->c.id[0] == '\0')
        return;
    const char *kind = strcmp(ev->alert->source, "yara") == 0   ? "malware"
                       : strcmp(ev->alert->source, "ndpi") == 0 ? "ndpi"
                                                                : NULL;
    if (kind == NULL || !finding_counts(d, kind))
        return;
    /* One response per container (judge_one): a container judged already
     * needs no more findings, and a busy one has thousands a second. */
    pthread_mutex_lock(&d->judge_lock);
    int judged = judged_find(d, o->c.id) != NULL;
    pthread_mutex_unlock(&d->judge_lock);
    if (judged)
        return;
    char reason[320];
    snprintf(reason, sizeof(reason), "%s in a %s (%s)", ev->alert->signature,
             ev->body ? (ev->body->to_server ? "upload" : "download") : "flow",
             ev->http && ev->http->uri ? ev->http->uri
             : ev->app_proto           ? ev->app_proto
                                       : "network");
    judge_report(d, &o->c, "network", reason, 0);
}

/* --- control socket -------------------------------------------------------------- */

/* The paths container traffic can take and whether sluice's rules queue
 * each: nothing is left out of inspection without saying so. */
static void paths_json(struct json *r)
{
    struct nfq_hook_path paths[2 * NFQ_PATHS];
    size_t n = nfq_hooks_paths(paths, 2 * NFQ_PATHS);

    json_array_begin(r, "paths");
    for (size_t i = 0; i < n; i++) {
        char state[sizeof(paths[i].why) + 32];
        snprintf(state, sizeof(state), "%s%s",
                 paths[i].inspected ? "inspected" : "not inspected: ", paths[i].why);
        json_object_begin(r, NULL);
        json_string(r, "path", paths[i].name);
        json_string(r, "family", paths[i].family == 4 ? "ipv4" : "ipv6");
        json_string(r, "hook", paths[i].hook);
        json_string(r, "state", state);
        json_object_end(r);
    }
    json_array_end(r);
}

static void paths_log(void)
{
    struct nfq_hook_path paths[2 * NFQ_PATHS];
    size_t n = nfq_hooks_paths(paths, 2 * NFQ_PATHS);

    for (size_t i = 0; i < n; i++) {
        if (paths[i].inspected)
            log_info("path %s, IPv%d: inspected (%s)", paths[i].name, paths[i].family,
                     paths[i].hook);
        else
            log_warnx("path %s, IPv%d: not inspected: %s", paths[i].name, paths[i].family,
                      paths[i].why);
    }
}

/* What the TLS proxy does not see, and what becomes of it. */
static void tls_policy_log(const struct rules_policy *p, const char *tls_ports)
{
    static const char *const other[] = {"reported", "blocked and reported",
                                        "passes unreported (tls.other_ports: pass)"};

    if (p->tls.quic == RULES_QUIC_BLOCK && tls_ports[0])
        log_info("QUIC (UDP to ports %s) from containers: blocked and reported", tls_ports);
    else
        log_warnx("QUIC (UDP to ports %s) from containers: passes uninspected (tls.quic: pass)",
                  tls_ports[0] ? tls_ports : "none");
    const char *where = p->tls.intercept ? "on ports other than " : "on every port";
    const char *ports = p->tls.intercept ? tls_ports : " (tls.intercept: false)";
    if (p->tls.other_ports == RULES_OTHER_PASS)
        log_warnx("TLS %s%s: %s", where, ports, other[p->tls.other_ports]);
    else
        log_info("TLS %s%s: %s", where, ports, other[p->tls.other_ports]);
}

static int ctl_status(void *ctx, struct json *r, char *err, size_t errlen)
{
    struct daemon *d = ctx;
    struct rules_policy *p = policy_get(d);

    (void)err;
    (void)errlen;
    json_string(r, "version", PACKAGE_VERSION);
    json_uint(r, "pid", (uint64_t)getpid());
    json_uint(r, "uptime_s", (uint64_t)(time(NULL) - d->started));
    json_string(r, "mode", p->enforcement.mode == RULES_MODE_ENFORCE ? "enforce" : "audit");
    json_string(r, "fail", p->enforcement.fail == RULES_FAIL_OPEN ? "open" : "closed");
    json_string(r, "policy", p->path);
    json_uint(r, "yara_rules", rules_yara_count(p));
    json_string(r, "events_log", d->eve_path);
    rules_policy_unref(p);
    json_array_begin(r, "queues");
    for (unsigned i = 0; d->q && i < nfq_inline_queues(d->q); i++) {
        struct nfq_queue_stats st;
        nfq_inline_stats(d->q, i, &st);
        json_object_begin(r, NULL);
        json_uint(r, "num", st.queue_num);
        json_uint(r, "packets", st.packets);
        json_uint(r, "accepted", st.accepted);
        json_uint(r, "dropped", st.dropped);
        json_uint(r, "bypassed", st.bypassed);
        json_uint(r, "resets", st.resets);
        json_uint(r, "errors", st.errors);
        /* The kernel could not queue these (the worker fell behind). */
        json_uint(r, "failed_open", st.fail_closed ? 0 : st.missed);
        json_uint(r, "overflow_dropped", st.fail_closed ? st.missed : 0);
        json_uint(r, "flows", st.flows);
        /* Still open after more reloads than sluiced keeps policies for. */
        json_uint(r, "reload_uninspected", st.reload_uninspected);
        json_object_end(r);
    }
    json_array_end(r);
    paths_json(r);
    if (d->tls) {
        struct tls_proxy_stats ts;
        tls_proxy_stats(d->tls, &ts);
        json_object_begin(r, "tls");
        json_uint(r, "port", tls_proxy_port(d->tls));
        json_string(r, "ca", tls_ca_fingerprint(d->ca));
        json_uint(r, "connections", ts.connections);
        json_uint(r, "intercepted", ts.intercepted);
        json_uint(r, "spliced", ts.spliced);
        json_uint(r, "refused", ts.refused);
        json_uint(r, "blocked", ts.blocked);
        json_uint(r, "closed", ts.closed);
        json_uint(r, "not_tls", ts.not_tls);
        json_uint(r, "timeouts", ts.timeouts);
        json_uint(r, "over_container_cap", ts.over_client_cap);
        json_uint(r, "held_waits", ts.hold_waits);
        json_uint(r, "stalls", ts.stalls);
        json_uint(r, "bypass_confirmed", ts.bypass_confirmed);
        json_uint(r, "bypass_unconfirmed", ts.bypass_unconfirmed);
        json_uint(r, "held", ts.held);
        json_uint(r, "h2_streams_blocked", ts.h2_streams_blocked);
        json_uint(r, "h2_errors", ts.h2_errors);
        json_uint(r, "open", ts.open);
        json_uint(r, "forged_leaves", tls_forge_entries(d->forge));
        json_object_end(r);
    }
    json_uint(r, "events", atomic_load(&d->events));
    json_uint(r, "alerts", atomic_load(&d->alerts));
    json_uint(r, "anomalies", atomic_load(&d->anomalies));
    json_uint(r, "blocked", atomic_load(&d->blocked));
    json_uint(r, "events_lost", atomic_load(&d->lost));
    json_uint(r, "events_delayed", atomic_load(&d->delayed));
    return 0;
}

static int ctl_containers(void *ctx, struct json *r, char *err, size_t errlen)
{
    struct daemon *d = ctx;
    if (d->map == NULL) {
        snprintf(err, errlen, "the container map is not running");
        return -1;
    }
    sl_container_map_json_with(d->map, r, sluice_state, d);
    return 0;
}

/* The event writer reopens the log before its next line: after rotation. */
static void eve_reopen_ask(struct daemon *d)
{
    pthread_mutex_lock(&d->evq_lock);
    d->reopen = 1;
    pthread_cond_signal(&d->evq_cond);
    pthread_mutex_unlock(&d->evq_lock);
}

/* compromise.host_allow of policy p for isolated host-network containers;
 * their rules are made again with it. */
static void iso_allow_apply(struct daemon *d, const struct rules_policy *p)
{
    const char *allow[64];
    size_t nallow = 0;
    char err[512];

    if (!d->iso_ready)
        return;
    for (size_t i = 0; i < p->compromise.host_allow.n && nallow < 64; i++)
        allow[nallow++] = p->compromise.host_allow.v[i].s;
    if (sl_iso_set_allow(allow, nallow, err, sizeof(err)) < 0)
        log_warnx("reload: compromise.host_allow: %s", err);
}

/* The event log is reopened whether or not the policy is good: logrotate
 * sends SIGHUP after moving it, and a broken policy must not keep sluiced
 * writing into the rotated file. */
static int reload(struct daemon *d, char *err, size_t errlen)
{
    char why[RULES_ERRLEN];
    struct rules_policy *p = policy_load(d->config, why, sizeof(why));

    eve_reopen_ask(d);
    if (p == NULL) {
        snprintf(err, errlen, "%s (the running policy stays)", why);
        log_warnx("reload: %s", err);
        return -1;
    }
    pthread_mutex_lock(&d->policy_lock);
    struct rules_policy *old = d->policy;
    if (old->enforcement.queues != p->enforcement.queues ||
        old->enforcement.queue_base != p->enforcement.queue_base ||
        old->enforcement.fail != p->enforcement.fail)
        log_warnx("reload: inline.queues, queue_base and fail take effect at the next start");
    if (old->tls.quic == RULES_QUIC_PASS && p->tls.quic == RULES_QUIC_BLOCK)
        log_warnx("reload: tls.quic: block takes effect at the next start (containers' UDP is "
                  "not queued now)");
    d->policy = rules_policy_ref(p); /* p stays ours to read below */
    pthread_mutex_unlock(&d->policy_lock);
    rules_policy_unref(old);
    if (d->q)
        nfq_inline_reload(d->q);
    atomic_fetch_add(&d->tls_generation, 1);
    iso_allow_apply(d, p);
    log_info("reloaded %s (%u YARA rules)", p->path, rules_yara_count(p));
    rules_policy_unref(p);
    return 0;
}

static int ctl_reload(void *ctx, struct json *r, char *err, size_t errlen)
{
    struct daemon *d = ctx;
    if (reload(d, err, errlen) < 0)
        return -1;
    struct rules_policy *p = policy_get(d);
    json_string(r, "policy", p->path);
    json_uint(r, "yara_rules", rules_yara_count(p));
    rules_policy_unref(p);
    return 0;
}

/* --- host-network containers: their cgroups ----------------------------------------- */

/* Where the cgroup2 hierarchy is mounted: /sys/fs/cgroup on unified hosts,
 * /sys/fs/cgroup/unified on hybrid ones. */
static int cgroup2_root(char *out, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    int found = 0;

    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), f)) {
        char *sep = strstr(line, " - cgroup2 ");
        char mnt[512];
        if (sep && sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1) {
            snprintf(out, len, "%s", mnt);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* Scope directories of one slice whose names start with prefix (and are
 * not the runtime's own monitor, "*-conmon-*"). */
static size_t scopes_in(const char *root, const char *slice, const char *prefix, char (*paths)[96],
                        size_t n, size_t max)
{
    char dir[640];
    struct dirent *e;
    size_t plen = strlen(prefix);

    snprintf(dir, sizeof(dir), "%s/%s", root, slice);
    DIR *d = opendir(dir);
    while (d && (e = readdir(d)) != NULL && n < max) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, plen) == 0 && l > plen + 6 &&
            strcmp(e->d_name + l - 6, ".scope") == 0 && !strstr(e->d_name, "-conmon-") &&
            strlen(slice) + l + 2 < 96) {
            char *out = paths[n++];
            size_t sl = strlen(slice);
            memcpy(out, slice, sl); /* lengths checked just above */
            out[sl] = '/';
            memcpy(out + sl + 1, e->d_name, l + 1);
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* cgroup2 paths holding containers' processes: Docker's cgroupfs driver
 * puts them all under docker/, Kubernetes (containerd, CRI-O) under
 * kubepods; the systemd driver makes one scope each in system.slice (Docker)
 * or machine.slice (podman), matched one by one since those slices hold
 * host services and virtual machines too. */
static void sync_container_cgroups(void)
{
    static const char *const whole[] = {"docker", "kubepods", "kubepods.slice"};
    static char paths[256][96];
    const char *v[256];
    char root[512], dir[640];
    size_t n = 0;
    struct stat st;

    if (!cgroup2_root(root, sizeof(root)))
        return;
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        snprintf(dir, sizeof(dir), "%s/%s", root, whole[i]);
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            snprintf(paths[n++], sizeof(paths[0]), "%s", whole[i]);
    }
    n = scopes_in(root, "system.slice", "docker-", paths, n, 256);
    n = scopes_in(root, "machine.slice", "libpod-", paths, n, 256);
    for (size_t i = 0; i < n; i++)
        v[i] = paths[i];
    nfq_hooks_cgroups(v, n);
}

/* --- the interception CA ------------------------------------------------------------ */

/* ca install X|--all: through the Docker API, one container at a time. */
static int ca_install(struct daemon *d, const char *which, struct json *r, char *err, size_t errlen)
{
    static struct sl_container list[512];
    size_t n = 0, failed = 0;

    if (d->map == NULL) {
        snprintf(err, errlen, "the container map is not running");
        return -1;
    }
    if (strcmp(which, "--all") == 0) {
        n = sl_container_list(d->map, list, sizeof(list) / sizeof(list[0]));
    } else {
        int found = sl_container_find(d->map, which, &list[0]);
        if (found <= 0) {
            snprintf(err, errlen,
                     found < 0 ? "'%s' names several containers: give more of the ID"
                               : "no running container '%s'",
                     which);
            return -1;
        }
        n = 1;
    }
    struct rules_policy *p = policy_get(d);
    char msg[1024] = "";
    json_array_begin(r, "results");
    for (size_t i = 0; i < n; i++) {
        int rc = sl_ca_install(p->containers.docker_socket, list[i].id, tls_ca_pem(d->ca), msg,
                               sizeof(msg));
        json_object_begin(r, NULL);
        json_string(r, "container", list[i].name[0] ? list[i].name : list[i].id);
        json_string(r, "id", list[i].id);
        json_bool(r, "installed", rc == 0);
        json_string(r, "message", msg);
        json_object_end(r);
        log_info("ca install %s: %s", list[i].name, msg);
        failed += rc != 0;
    }
    json_array_end(r);
    rules_policy_unref(p);
    if (failed && n == 1) {
        snprintf(err, errlen, "%s: %s", list[0].name, msg);
        return -1;
    }
    return 0;
}

/* isolate X / release X: the operator's word, through the judge (so it is
 * reported like any other isolation). Waits for it to be done. */
static int ctl_isolate(struct daemon *d, int release, const char *which, struct json *r, char *err,
                       size_t errlen)
{
    struct sl_container c;

    int found = d->map ? sl_container_find(d->map, which, &c) : 0;
    if (found <= 0) {
        snprintf(err, errlen,
                 found < 0 ? "'%s' names several containers: give more of the ID"
                           : "no running container '%s'",
                 which);
        return -1;
    }
    if (!d->iso_ready) {
        snprintf(err, errlen, "isolation is off (see sluiced's log)");
        return -1;
    }
    if (release && !sl_isolated(c.id)) {
        snprintf(err, errlen, "%s is not isolated", c.name);
        return -1;
    }
    judge_report(d, &c, "operator",
                 release ? "released by the operator" : "isolated by the operator", release);
    for (int i = 0; i < 100 && sl_isolated(c.id) == release; i++)
        usleep(100000); /* the judge works in order: wait for this one */
    if (sl_isolated(c.id) == release) {
        snprintf(err, errlen, "%s: not done, see sluiced's log", c.name);
        return -1;
    }
    json_string(r, "container", c.name);
    json_string(r, "id", c.id);
    json_string(r, "state", release ? "released" : "isolated");
    return 0;
}

static int ctl_command(void *ctx, int argc, char **argv, struct json *r, char *err, size_t errlen)
{
    struct daemon *d = ctx;

    if ((strcmp(argv[0], "isolate") == 0 || strcmp(argv[0], "release") == 0) && argc == 2)
        return ctl_isolate(d, strcmp(argv[0], "release") == 0, argv[1], r, err, errlen);
    if (strcmp(argv[0], "ca") != 0 || argc < 2)
        return -1; /* not ours: "unknown command" */
    if (d->ca == NULL) {
        snprintf(err, errlen, "TLS interception is off (tls.intercept: false): there is no CA");
        return -1;
    }
    if (strcmp(argv[1], "export") == 0 && argc == 2) {
        json_string(r, "pem", tls_ca_pem(d->ca));
        json_string(r, "fingerprint", tls_ca_fingerprint(d->ca));
        return 0;
    }
    if (strcmp(argv[1], "install") == 0 && argc == 3)
        return ca_install(d, argv[2], r, err, errlen);
    snprintf(err, errlen, "usage: ca export | ca install CONTAINER|--all");
    return -1;
}

/* tls.auto_install: the CA into every container seen running, once per
 * container ID (a failure is logged once too). */
static void auto_install(struct daemon *d)
{
    static char done[1024][65];
    static size_t ndone;
    static struct sl_container list[256];

    if (d->ca == NULL || d->map == NULL)
        return;
    struct rules_policy *p = policy_get(d);
    size_t n = p->tls.auto_install ? sl_container_list(d->map, list, 256) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < ndone && strcmp(done[k], list[i].id) != 0)
            k++;
        if (k < ndone)
            continue;
        char msg[1024];
        int rc = sl_ca_install(p->containers.docker_socket, list[i].id, tls_ca_pem(d->ca), msg,
                               sizeof(msg));
        if (rc == 0)
            log_info("CA installed in %s: %s", list[i].name, msg);
        else
            log_warnx("CA not installed in %s: %s", list[i].name, msg);
        memcpy(done[ndone % 1024], list[i].id, sizeof(done[0])); /* both char[65] */
        ndone = ndone < 1024 ? ndone + 1 : ndone;
    }
    rules_policy_unref(p);
}

/* --- pid file ---------------------------------------------------------------------- */

/* Locked for the daemon's life: a second sluiced finds it locked; after a
 * crash the lock is gone with the process. */
static int pidfile_take(const char *path)
{
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0755);
    }
    free(dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        fatal("%s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        fatalx("already running (pid %s, %s)", buf[0] ? buf : "?", path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        fatal("%s", path);
    return fd;
}

/* --- main -------------------------------------------------------------------------- */

static unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 64 ? (unsigned)n : 1;
}

int sl_daemon_run(const char *config, int foreground)
{
    static struct daemon dd;
    struct daemon *d = &dd;
    char err[RULES_ERRLEN];
    sigset_t sigs;
    int status = 0;

    d->config = config;
    d->started = time(NULL);
    d->eve_fd = -1;
    pthread_mutex_init(&d->policy_lock, NULL);
    pthread_mutex_init(&d->evq_lock, NULL);
    pthread_cond_init(&d->evq_cond, NULL);
    pthread_mutex_init(&d->judge_lock, NULL);
    pthread_cond_init(&d->judge_cond, NULL);
    d->policy = policy_load(config, err, sizeof(err));
    if (d->policy == NULL)
        fatalx("%s", err);
    /* The starting policy, kept while it is read below: a reload through the
     * control socket may replace d->policy at any time. */
    struct rules_policy *p = rules_policy_ref(d->policy);
    if (geteuid() != 0)
        fatalx("inline inspection needs root (NFQUEUE, iptables); -r and -i do not");

    if (!foreground) {
        if (daemon(0, 0) < 0)
            fatal("daemon");
        log_init("sluiced", LOG_LEVEL_INFO, 1);
    }
    char *pidfile = strdup(p->control.pidfile);
    int pidfd = pidfile_take(pidfile);

    d->eve_path = strdup(p->events.eve);
    d->use_syslog = p->events.syslog;
    if (eve_reopen(d) < 0)
        fatal("%s", d->eve_path);

    /* Signals are for this thread only: every other thread starts with them
     * blocked. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (pthread_create(&d->writer, NULL, writer_main, d) != 0)
        fatalx("cannot start the event writer");
    if (pthread_create(&d->judge, NULL, judge_main, d) != 0)
        fatalx("cannot start the compromise judge");
    d->map = sl_container_map_new(p->containers.docker_socket, err, sizeof(err));
    if (d->map == NULL)
        log_warnx("container map: %s (events will not name containers)", err);

    unsigned queues = p->enforcement.queues ? p->enforcement.queues : cpu_count();
    d->nworkers = queues;
    d->workers = calloc(queues, sizeof(*d->workers));
    if (d->workers == NULL)
        fatalx("out of memory");
    for (unsigned i = 0; i < queues; i++) {
        d->workers[i].d = d;
        d->workers[i].idx = i;
        json_init(&d->workers[i].j);
    }
    struct nfq_inline_config qc = {queues, p->enforcement.queue_base,
                                   p->enforcement.fail == RULES_FAIL_CLOSED};
    struct nfq_inline_ops qo = {d, ops_policy, ops_engine_new, ops_engine_free, ops_enforce};
    d->q = nfq_inline_start(&qc, &qo, err, sizeof(err));
    if (d->q == NULL) {
        log_warnx("%s", err);
        status = 1;
        goto out;
    }
    /* Queues first, rules second: no packet waits for a queue nobody reads. */
    char ports[256], tls_ports[256];
    if (ports_list(p, &p->enforcement.ports, "inline.ports", ports, sizeof(ports), err,
                   sizeof(err)) < 0 ||
        ports_list(p, &p->tls.ports, "tls.ports", tls_ports, sizeof(tls_ports), err, sizeof(err)) <
            0) {
        log_warnx("%s", err);
        status = 1;
        goto out;
    }
    if (p->tls.intercept && tls_start(d, p, queues, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        status = 1;
        goto out;
    }
    struct nfq_hooks_config hc = {queues,
                                  p->enforcement.queue_base,
                                  p->enforcement.fail == RULES_FAIL_CLOSED,
                                  p->enforcement.bridges,
                                  p->enforcement.host,
                                  ports[0] ? ports : NULL,
                                  d->tls ? p->tls.proxy_port : 0,
                                  tls_ports,
                                  p->tls.quic == RULES_QUIC_BLOCK && tls_ports[0] ? tls_ports
                                                                                  : NULL};
    int hk = nfq_hooks_install(&hc, err, sizeof(err));
    if (hk < 0) {
        log_warnx("%s", err);
        status = 1;
        goto out;
    }
    paths_log(); /* each path, hooked or why not (hk > 0: some IPv6 path) */
    tls_policy_log(p, tls_ports);
    if (hc.host)
        sync_container_cgroups();
    /* Isolation: the state survives restarts; its rules are made again. */
    char iso_state[600];
    snprintf(iso_state, sizeof(iso_state), "%s/isolated.json", p->tls.state_dir);
    {
        const char *allow[64];
        size_t nallow = 0;
        for (size_t i = 0; i < p->compromise.host_allow.n && nallow < 64; i++)
            allow[nallow++] = p->compromise.host_allow.v[i].s;
        if (sl_iso_init(iso_state, allow, nallow, err, sizeof(err)) < 0)
            log_warnx("isolation is off: %s", err);
        else
            d->iso_ready = 1;
    }
    if (d->iso_ready)
        iso_refresh(d, 1); /* its chains too, before sluiced says it is ready */
    d->detect =
        sl_detect_start(p->compromise.detections_socket, NULL, on_detection, d, err, sizeof(err));
    if (d->detect == NULL)
        log_warnx("detections from file scanners: %s", err);
    /* Last: a sluicectl status that answers means sluice is inspecting. */
    struct sl_control_ops ctl = {d, ctl_status, ctl_containers, ctl_reload, ctl_command};
    d->control = sl_control_start(p->control.socket, &ctl, err, sizeof(err));
    if (d->control == NULL) {
        log_warnx("%s", err);
        status = 1;
        goto out;
    }
    log_info("inspecting %s%s%s on queues %u-%u (%s, fail-%s), events to %s",
             p->enforcement.bridges ? "bridged containers" : "",
             p->enforcement.bridges && p->enforcement.host ? " and " : "",
             p->enforcement.host ? "host-network containers" : "", p->enforcement.queue_base,
             p->enforcement.queue_base + queues - 1,
             p->enforcement.mode == RULES_MODE_ENFORCE ? "enforce" : "audit",
             p->enforcement.fail == RULES_FAIL_OPEN ? "open" : "closed", d->eve_path);

    for (;;) {
        /* Every few seconds: Docker rebuilds DOCKER-USER when it restarts. */
        struct timespec tick = {HOOKS_CHECK_S, 0};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig < 0) {
            if (hc.host)
                sync_container_cgroups();
            auto_install(d);
            int n = nfq_hooks_check(&hc);
            if (d->iso_ready) {
                iso_refresh(d, 0);
                sl_isolate_check();
            }
            if (n > 0)
                log_warnx("put back %d jump%s to sluice's rules (removed by Docker or "
                          "an operator)",
                          n, n > 1 ? "s" : "");
            continue;
        }
        if (sig == SIGHUP) {
            reload(d, err, sizeof(err));
            continue;
        }
        if (sig == SIGUSR1) {
            eve_reopen_ask(d);
            continue;
        }
        log_info("signal %d: stopping", sig);
        break;
    }

out:
    /* Rules first: from here traffic passes without sluice. */
    nfq_hooks_remove();
    sl_detect_stop(d->detect);
    if (d->iso_ready) {
        sl_isolate_remove_all_rules(); /* the state stays for the next start */
        sl_iso_shutdown();
    }
    nfq_inline_stop(d->q); /* open flows end: their events are written */
    if (d->tls_workers)
        tls_stop(d);
    sl_control_stop(d->control);
    pthread_mutex_lock(&d->judge_lock);
    d->judge_stop = 1;
    pthread_cond_signal(&d->judge_cond);
    pthread_mutex_unlock(&d->judge_lock);
    pthread_join(d->judge, NULL);
    free(d->judged);
    sl_container_map_free(d->map);
    pthread_mutex_lock(&d->evq_lock);
    d->evq_stop = 1;
    pthread_cond_signal(&d->evq_cond);
    pthread_mutex_unlock(&d->evq_lock);
    pthread_join(d->writer, NULL);
    if (atomic_load(&d->lost))
        log_warnx("%llu events were lost (the event log could not keep up)",
                  (unsigned long long)atomic_load(&d->lost));
    for (unsigned i = 0; i < d->nworkers; i++)
        json_free(&d->workers[i].j);
    free(d->workers);
    if (d->eve_fd >= 0)
        close(d->eve_fd);
    unlink(pidfile);
    close(pidfd);
    free(pidfile);
    rules_policy_unref(p);
    free(d->eve_path);
    rules_policy_unref(d->policy);
    return status;
}
