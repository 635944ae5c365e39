/*
 * The container map: what Docker says of its running containers, kept
 * current by a thread of its own, read by any thread.
 *
 * The thread follows Docker's event stream. It subscribes first and lists
 * second, so no change can fall between the list and the stream; events
 * that raced the list are applied again, which is harmless as every change
 * is applied by inspecting the container anew. When Docker goes away the
 * thread says so once, keeps the map as it was (flows of known containers
 * stay attributed), retries with backoff, and lists everything again once
 * Docker is back: events missed meanwhile are lost, the list is not.
 *
 * Readers take the rwlock only to copy out; the thread does its Docker I/O
 * with no lock held and takes the write lock only to swap entries in or out.
 */
#include "containers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "docker_api.h"
#include "jsonp.h"
#include "log.h"
#include "sockowner.h"

#define DEFAULT_DOCKER_SOCK "/var/run/docker.sock"
#define REQUEST_TIMEOUT_MS  10000
#define REPLY_LIMIT         (16u << 20) /* a container list of a very busy host */
#define EVENT_LIMIT         (1u << 20)  /* one event line */
#define BACKOFF_MIN_MS      1000
#define BACKOFF_MAX_MS      30000

struct cnet {
    char name[128];
    int has4, has6;
    uint8_t addr4[4];
    uint8_t addr6[16];
};

struct centry {
    struct sl_container c; /* network: the first network, or the network mode */
    char state[16];
    char network_mode[128];
    int pid;
    size_t nnets, nlabels;
    struct cnet *nets;
    char **labels; /* name, value, name, value, ... */
};

struct sl_container_map {
    char sock[256];
    pthread_rwlock_t lock; /* guards what follows, up to the thread's own */
    struct centry **entries;
    size_t n, cap;
    int docker_up;
    char docker_why[160];

    struct sockowner *owner;
    pthread_t thread;
    int thread_started;
    int stop_fd; /* an eventfd: readable once sl_container_map_free runs */
};

static void centry_free(struct centry *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < 2 * e->nlabels; i++)
        free(e->labels[i]);
    free(e->labels);
    free(e->nets);
    free(e);
}

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A container from its inspect reply; NULL (with a reason) if not one. */
static struct centry *centry_from_inspect(const struct jsonp_value *root, char *err, size_t errlen)
{
    const char *id = jsonp_str(jsonp_get(root, "Id"), "");
    const char *name = jsonp_str(jsonp_get(root, "Name"), "");
    const struct jsonp_value *nets = jsonp_path(root, "NetworkSettings.Networks");
    const struct jsonp_value *labels = jsonp_path(root, "Config.Labels");
    const struct jsonp_value *pid = jsonp_path(root, "State.Pid");
    struct centry *e;

    if (strlen(id) != 64) {
        snprintf(err, errlen, "no container ID in the reply");
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        goto oom;
    copy_str(e->c.id, sizeof(e->c.id), id);
    copy_str(e->c.name, sizeof(e->c.name), name[0] == '/' ? name + 1 : name);
    copy_str(e->c.image, sizeof(e->c.image), jsonp_str(jsonp_path(root, "Config.Image"), ""));
    copy_str(e->c.runtime, sizeof(e->c.runtime), "docker");
    copy_str(e->state, sizeof(e->state), jsonp_str(jsonp_path(root, "State.Status"), ""));
    copy_str(e->network_mode, sizeof(e->network_mode),
             jsonp_str(jsonp_path(root, "HostConfig.NetworkMode"), ""));
    e->pid = pid && pid->type == JSONP_NUMBER ? (int)pid->num : 0;

    if (nets && nets->type == JSONP_OBJECT && nets->len > 0) {
        e->nets = calloc(nets->len, sizeof(*e->nets));
        if (e->nets == NULL)
            goto oom;
        for (const struct jsonp_value *n = nets->child; n; n = n->next) {
            struct cnet *cn = &e->nets[e->nnets++];
            const char *a4 = jsonp_str(jsonp_get(n, "IPAddress"), "");
            const char *a6 = jsonp_str(jsonp_get(n, "GlobalIPv6Address"), "");
            copy_str(cn->name, sizeof(cn->name), n->key);
            cn->has4 = a4[0] && inet_pton(AF_INET, a4, cn->addr4) == 1;
            cn->has6 = a6[0] && inet_pton(AF_INET6, a6, cn->addr6) == 1;
        }
    }
    copy_str(e->c.network, sizeof(e->c.network), e->nnets ? e->nets[0].name : e->network_mode);

    if (labels && labels->type == JSONP_OBJECT && labels->len > 0) {
        e->labels = calloc(2 * labels->len, sizeof(char *));
        if (e->labels == NULL)
            goto oom;
        for (const struct jsonp_value *l = labels->child; l; l = l->next) {
            char *k = strdup(l->key), *v = strdup(jsonp_str(l, ""));
            e->labels[2 * e->nlabels] = k;
            e->labels[2 * e->nlabels + 1] = v;
            e->nlabels++;
            if (k == NULL || v == NULL)
                goto oom;
        }
    }
    return e;
oom:
    centry_free(e);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

/* --- the map, under its lock ------------------------------------------------ */

static ssize_t find_locked(struct sl_container_map *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->entries[i]->c.id, id) == 0)
            return (ssize_t)i;
    return -1;
}

/* Puts e in place of the entry with its ID (or adds it); returns the entry
 * it replaced, for the caller to free outside the lock. */
static struct centry *map_put(struct sl_container_map *m, struct centry *e)
{
    struct centry *old = NULL;

    pthread_rwlock_wrlock(&m->lock);
    ssize_t i = find_locked(m, e->c.id);
    if (i >= 0) {
        old = m->entries[i];
        m->entries[i] = e;
    } else if (m->n < m->cap) {
        m->entries[m->n++] = e;
    } else {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct centry **grown = realloc(m->entries, cap * sizeof(*grown));
        if (grown == NULL) {
            old = e; /* dropped: reported by the caller's log as missing */
            log_warnx("container map: out of memory adding %.12s", e->c.id);
        } else {
            m->entries = grown;
            m->cap = cap;
            m->entries[m->n++] = e;
        }
    }
    pthread_rwlock_unlock(&m->lock);
    return old;
}

static struct centry *map_remove(struct sl_container_map *m, const char *id)
{
    struct centry *old = NULL;

    pthread_rwlock_wrlock(&m->lock);
    ssize_t i = find_locked(m, id);
    if (i >= 0) {
        old = m->entries[i];
        m->entries[i] = m->entries[--m->n];
    }
    pthread_rwlock_unlock(&m->lock);
    return old;
}

static void set_docker_state(struct sl_container_map *m, int up, const char *why)
{
    pthread_rwlock_wrlock(&m->lock);
    m->docker_up = up;
    copy_str(m->docker_why, sizeof(m->docker_why), why ? why : "");
    pthread_rwlock_unlock(&m->lock);
}

/* --- the thread -------------------------------------------------------------- */

struct session {
    struct sl_container_map *m;
    struct docker_http req; /* keep-alive connection for lists and inspects */
    int req_open;
    struct sl_buf body;
    int down_logged; /* said once that Docker is down; say once it is back */
    int ever_up;
    int backoff_ms;
};

/* GET target into s->body (reset first), reconnecting once if the
 * keep-alive connection was closed under us. Returns the HTTP status or -1. */
static int session_get(struct session *s, const char *target, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int status;
        if (!s->req_open) {
            if (docker_connect(&s->req, s->m->sock, s->m->stop_fd, REQUEST_TIMEOUT_MS, err,
                               errlen) != 0)
                return -1;
            s->req_open = 1;
        }
        sl_buf_reset(&s->body);
        int r = docker_get(&s->req, target, &status, &s->body, err, errlen);
        if (r != 0 || !s->req.keep_alive) {
            docker_close(&s->req);
            s->req_open = 0;
        }
        if (r == 0)
            return status;
    }
    return -1;
}

/* Inspects one container into the map; a container gone meanwhile is
 * removed. 0, or -1 when Docker could not be asked. */
static int refresh(struct session *s, const char *id)
{
    char target[160], err[256];
    struct centry *e, *old;
    struct jsonp_doc *doc;
    int status;

    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/containers/%s/json", id);
    status = session_get(s, target, err, sizeof(err));
    if (status < 0) {
        log_warnx("container map: inspect %.12s: %s", id, err);
        return -1;
    }
    if (status == 404) {
        centry_free(map_remove(s->m, id));
        return 0;
    }
    if (status != 200) {
        log_warnx("container map: inspect %.12s: HTTP %d", id, status);
        return 0;
    }
    doc = jsonp_parse((const char *)s->body.data, s->body.len, err, sizeof(err));
    if (doc == NULL) {
        log_warnx("container map: inspect %.12s: %s", id, err);
        return 0;
    }
    e = centry_from_inspect(jsonp_root(doc), err, sizeof(err));
    jsonp_free(doc);
    if (e == NULL) {
        log_warnx("container map: inspect %.12s: %s", id, err);
        return 0;
    }
    /* Stopped containers hold no address that could be reused safely. */
    if (strcmp(e->state, "running") != 0 && strcmp(e->state, "paused") != 0 &&
        strcmp(e->state, "restarting") != 0) {
        centry_free(map_remove(s->m, e->c.id));
        centry_free(e);
        return 0;
    }
    old = map_put(s->m, e);
    centry_free(old);
    return 0;
}

/* Lists the running containers and inspects each; the map then holds
 * exactly those. Returns how many, or -1 with err. */
static int resync(struct session *s, char *err, size_t errlen)
{
    struct jsonp_doc *doc;
    const struct jsonp_value *root;
    char **ids = NULL;
    size_t nids = 0;
    int status, ret = -1;

    status = session_get(s, DOCKER_API_PREFIX "/containers/json", err, errlen);
    if (status < 0)
        return -1;
    if (status != 200) {
        snprintf(err, errlen, "container list: HTTP %d", status);
        return -1;
    }
    doc = jsonp_parse((const char *)s->body.data, s->body.len, err, errlen);
    if (doc == NULL)
        return -1;
    root = jsonp_root(doc);
    if (root->type != JSONP_ARRAY) {
        snprintf(err, errlen, "container list: not an array");
        goto out;
    }
    ids = calloc(root->len + 1, sizeof(*ids));
    if (ids == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (const struct jsonp_value *c = root->child; c; c = c->next) {
        const char *id = jsonp_str(jsonp_get(c, "Id"), "");
        if (strlen(id) == 64 && (ids[nids] = strdup(id)) != NULL)
            nids++;
    }
    jsonp_free(doc);
    doc = NULL;

    for (size_t i = 0; i < nids; i++) {
        if (refresh(s, ids[i]) != 0) {
            snprintf(err, errlen, "lost Docker during the container list");
            goto out;
        }
    }
    /* Whatever the list did not name is gone. */
    for (;;) {
        struct centry *gone = NULL;
        pthread_rwlock_wrlock(&s->m->lock);
        for (size_t i = 0; i < s->m->n && gone == NULL; i++) {
            size_t k = 0;
            while (k < nids && strcmp(ids[k], s->m->entries[i]->c.id) != 0)
                k++;
            if (k == nids) {
                gone = s->m->entries[i];
                s->m->entries[i] = s->m->entries[--s->m->n];
            }
        }
        pthread_rwlock_unlock(&s->m->lock);
        if (gone == NULL)
            break;
        centry_free(gone);
    }
    ret = (int)nids;
out:
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
    jsonp_free(doc);
    return ret;
}

/* One event line of the stream. */
static void on_event(struct session *s, const char *line, size_t len)
{
    char err[160];
    struct jsonp_doc *doc = jsonp_parse(line, len, err, sizeof(err));
    const struct jsonp_value *ev;
    const char *type, *action, *id;

    if (doc == NULL) {
        log_warnx("container map: Docker event: %s", err);
        return;
    }
    ev = jsonp_root(doc);
    type = jsonp_str(jsonp_get(ev, "Type"), "");
    action = jsonp_str(jsonp_get(ev, "Action"), "");
    id = jsonp_str(jsonp_path(ev, "Actor.ID"), "");
    if (strcmp(type, "network") == 0) {
        /* The container is an attribute; the actor is the network. */
        id = jsonp_str(jsonp_path(ev, "Actor.Attributes.container"), "");
        if ((strcmp(action, "connect") == 0 || strcmp(action, "disconnect") == 0) &&
            strlen(id) == 64)
            refresh(s, id);
    } else if (strcmp(type, "container") == 0 && strlen(id) == 64) {
        log_debug("container map: %s %.12s", action, id);
        if (strcmp(action, "die") == 0 || strcmp(action, "destroy") == 0)
            centry_free(map_remove(s->m, id));
        else if (strcmp(action, "start") == 0 || strcmp(action, "rename") == 0 ||
                 strcmp(action, "pause") == 0 || strcmp(action, "unpause") == 0 ||
                 strcmp(action, "restart") == 0 || strcmp(action, "update") == 0)
            refresh(s, id);
    }
    jsonp_free(doc);
}

/* Splits the stream's bytes into lines (one event each). 0, or -1 when a
 * line outgrows the limit. */
static int drain_lines(struct session *s, struct sl_buf *stream)
{
    size_t start = 0;

    for (size_t i = 0; i < stream->len; i++) {
        if (stream->data[i] != '\n')
            continue;
        if (i > start)
            on_event(s, (const char *)stream->data + start, i - start);
        start = i + 1;
    }
    if (start > 0) {
        memmove(stream->data, stream->data + start, stream->len - start);
        stream->len -= start;
    }
    return stream->len >= stream->limit ? -1 : 0;
}

/* Sleeps ms unless stopped; 1 when stopped. */
static int stopped_within(struct sl_container_map *m, int ms)
{
    struct pollfd p = {.fd = m->stop_fd, .events = POLLIN};
    int n;

    do
        n = poll(&p, 1, ms);
    while (n == -1 && errno == EINTR);
    return n > 0;
}

/* One connection to Docker, from subscribing to losing it; why says why. */
static void follow(struct session *s, char *why, size_t whylen)
{
    char target[256], filters[128];
    struct docker_http ev;
    struct sl_buf stream;
    int status, n;

    sl_buf_init(&stream, EVENT_LIMIT);
    if (docker_urlencode("{\"type\":[\"container\",\"network\"]}", filters, sizeof(filters)) != 0)
        fatalx("container map: event filter does not fit");
    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/events?filters=%s", filters);
    /* The request waits as long as any other; the stream then waits forever. */
    if (docker_connect(&ev, s->m->sock, s->m->stop_fd, REQUEST_TIMEOUT_MS, why, whylen) != 0)
        return;
    if (docker_get_begin(&ev, target, &status, why, whylen) != 0)
        goto out;
    if (status != 200) {
        snprintf(why, whylen, "events: HTTP %d", status);
        goto out;
    }
    n = resync(s, why, whylen);
    if (n < 0)
        goto out;
    set_docker_state(s->m, 1, NULL);
    if (s->down_logged)
        log_info("container map: Docker is back at %s, %d containers running", s->m->sock, n);
    else if (!s->ever_up)
        log_info("container map: Docker at %s, %d containers running", s->m->sock, n);
    s->down_logged = 0;
    s->ever_up = 1;
    s->backoff_ms = BACKOFF_MIN_MS;

    ev.timeout_ms = -1;
    for (;;) {
        ssize_t r = docker_body_read(&ev, &stream, why, whylen);
        if (r < 0)
            break;
        if (r == 0) {
            snprintf(why, whylen, "event stream ended");
            break;
        }
        if (drain_lines(s, &stream) != 0) {
            snprintf(why, whylen, "event longer than %u bytes", EVENT_LIMIT);
            break;
        }
    }
out:
    docker_close(&ev);
    sl_buf_free(&stream);
}

static void *map_thread(void *arg)
{
    struct sl_container_map *m = arg;
    struct session s;
    char why[256];

    memset(&s, 0, sizeof(s));
    s.m = m;
    s.backoff_ms = BACKOFF_MIN_MS;
    sl_buf_init(&s.body, REPLY_LIMIT);
    for (;;) {
        why[0] = '\0';
        follow(&s, why, sizeof(why));
        if (s.req_open) {
            docker_close(&s.req);
            s.req_open = 0;
        }
        if (stopped_within(m, 0))
            break;
        set_docker_state(m, 0, why);
        if (!s.down_logged) {
            log_warnx("container map: Docker at %s unavailable (%s); retrying, %s", m->sock, why,
                      s.ever_up ? "keeping the containers known" : "no containers known");
            s.down_logged = 1;
        } else {
            log_debug("container map: Docker still unavailable (%s)", why);
        }
        if (stopped_within(m, s.backoff_ms))
            break;
        s.backoff_ms = s.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s.backoff_ms * 2;
    }
    sl_buf_free(&s.body);
    return NULL;
}

/* --- public API ---------------------------------------------------------------- */

struct sl_container_map *sl_container_map_new(const char *docker_sock, char *err, size_t errlen)
{
    struct sl_container_map *m = calloc(1, sizeof(*m));
    int e;

    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (docker_sock == NULL || docker_sock[0] == '\0')
        docker_sock = DEFAULT_DOCKER_SOCK;
    if (strlen(docker_sock) >= sizeof(m->sock)) {
        snprintf(err, errlen, "%s: Docker socket path too long", docker_sock);
        free(m);
        return NULL;
    }
    copy_str(m->sock, sizeof(m->sock), docker_sock);
    copy_str(m->docker_why, sizeof(m->docker_why), "not yet connected");
    pthread_rwlock_init(&m->lock, NULL);
    m->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    m->owner = sockowner_new();
    if (m->stop_fd == -1 || m->owner == NULL) {
        snprintf(err, errlen, "container map: %s", strerror(errno));
        sl_container_map_free(m);
        return NULL;
    }
    e = pthread_create(&m->thread, NULL, map_thread, m);
    if (e != 0) {
        snprintf(err, errlen, "container map thread: %s", strerror(e));
        sl_container_map_free(m);
        return NULL;
    }
    m->thread_started = 1;
    return m;
}

void sl_container_map_free(struct sl_container_map *m)
{
    if (m == NULL)
        return;
    if (m->thread_started) {
        uint64_t one = 1;
        if (write(m->stop_fd, &one, sizeof(one)) != sizeof(one))
            log_warn("container map: stopping the thread");
        pthread_join(m->thread, NULL);
    }
    for (size_t i = 0; i < m->n; i++)
        centry_free(m->entries[i]);
    free(m->entries);
    if (m->stop_fd != -1)
        close(m->stop_fd);
    sockowner_free(m->owner);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

int sl_container_by_addr(struct sl_container_map *m, int family, const uint8_t *addr,
                         struct sl_container *out)
{
    int found = 0;

    if (family == AF_INET6 || family == 6)
        family = 6;
    else if (family == AF_INET || family == 4)
        family = 4;
    else
        return 0;
    pthread_rwlock_rdlock(&m->lock);
    for (size_t i = 0; i < m->n && !found; i++) {
        const struct centry *e = m->entries[i];
        for (size_t k = 0; k < e->nnets && !found; k++) {
            const struct cnet *n = &e->nets[k];
            if ((family == 4 && n->has4 && memcmp(n->addr4, addr, 4) == 0) ||
                (family == 6 && n->has6 && memcmp(n->addr6, addr, 16) == 0)) {
                *out = e->c;
                copy_str(out->network, sizeof(out->network), n->name);
                found = 1;
            }
        }
    }
    pthread_rwlock_unlock(&m->lock);
    return found;
}

int sl_container_by_socket(struct sl_container_map *m, int family, int l4proto,
                           const uint8_t *local, uint16_t lport, const uint8_t *remote,
                           uint16_t rport, struct sl_container *out)
{
    char id[65], runtime[16];
    uint32_t inode;
    int pid, known = 0;

    if (family == 4)
        family = AF_INET;
    else if (family == 6)
        family = AF_INET6;
    int r = sockowner_inode(family, l4proto, local, lport, remote, rport, &inode);
    if (r < 0) {
        log_debug("container map: sock_diag: %s", strerror(errno));
        return 0;
    }
    if (r == 0 || !sockowner_container(m->owner, inode, id, runtime, &pid))
        return 0;

    pthread_rwlock_rdlock(&m->lock);
    ssize_t i = find_locked(m, id);
    if (i >= 0) {
        *out = m->entries[i]->c;
        copy_str(out->network, sizeof(out->network),
                 m->entries[i]->network_mode[0] ? m->entries[i]->network_mode : "host");
        known = 1;
    }
    pthread_rwlock_unlock(&m->lock);
    if (!known) {
        memset(out, 0, sizeof(*out));
        copy_str(out->id, sizeof(out->id), id);
        copy_str(out->runtime, sizeof(out->runtime), runtime);
    }
    return 1;
}

int sl_container_pid(struct sl_container_map *m, const char *id)
{
    int pid = 0;

    pthread_rwlock_rdlock(&m->lock);
    for (size_t i = 0; i < m->n && pid == 0; i++)
        if (strcmp(m->entries[i]->c.id, id) == 0)
            pid = m->entries[i]->pid;
    pthread_rwlock_unlock(&m->lock);
    return pid;
}

int sl_container_find(struct sl_container_map *m, const char *id_or_name, struct sl_container *out)
{
    size_t len = id_or_name ? strlen(id_or_name) : 0;
    ssize_t hit = -1;
    int matches = 0;

    if (len == 0)
        return 0;
    pthread_rwlock_rdlock(&m->lock);
    /* As the docker CLI: a full ID, then a name, then an ID prefix. */
    for (size_t i = 0; i < m->n && hit < 0; i++)
        if (strcmp(m->entries[i]->c.id, id_or_name) == 0)
            hit = (ssize_t)i;
    for (size_t i = 0; i < m->n && hit < 0; i++) {
        const char *want = id_or_name[0] == '/' ? id_or_name + 1 : id_or_name;
        if (strcmp(m->entries[i]->c.name, want) == 0)
            hit = (ssize_t)i;
    }
    if (hit < 0) {
        for (size_t i = 0; i < m->n; i++) {
            if (strncmp(m->entries[i]->c.id, id_or_name, len) == 0) {
                hit = (ssize_t)i;
                matches++;
            }
        }
    } else {
        matches = 1;
    }
    if (matches == 1)
        *out = m->entries[hit]->c;
    pthread_rwlock_unlock(&m->lock);
    return matches > 1 ? -1 : matches;
}

void sl_container_map_json(struct sl_container_map *m, struct json *j)
{
    sl_container_map_json_with(m, j, NULL, NULL);
}

void sl_container_map_json_with(struct sl_container_map *m, struct json *j,
                                const char *(*sluice_state)(void *ctx, const char *id), void *ctx)
{
    char a[INET6_ADDRSTRLEN];

    pthread_rwlock_rdlock(&m->lock);
    if (m->docker_up) {
        json_string(j, "docker", "up");
    } else {
        char down[200];
        snprintf(down, sizeof(down), "down (%s)", m->docker_why);
        json_string(j, "docker", down);
    }
    json_array_begin(j, "containers");
    for (size_t i = 0; i < m->n; i++) {
        const struct centry *e = m->entries[i];
        json_object_begin(j, NULL);
        json_string(j, "id", e->c.id);
        json_string(j, "name", e->c.name);
        json_string(j, "image", e->c.image);
        json_string(j, "runtime", e->c.runtime);
        json_string(j, "state", e->state);
        if (sluice_state)
            json_string(j, "sluice", sluice_state(ctx, e->c.id));
        json_int(j, "pid", e->pid);
        json_string(j, "network_mode", e->network_mode);
        json_array_begin(j, "networks");
        for (size_t k = 0; k < e->nnets; k++) {
            const struct cnet *n = &e->nets[k];
            json_object_begin(j, NULL);
            json_string(j, "name", n->name);
            if (n->has4)
                json_string(j, "ipv4", inet_ntop(AF_INET, n->addr4, a, sizeof(a)));
            if (n->has6)
                json_string(j, "ipv6", inet_ntop(AF_INET6, n->addr6, a, sizeof(a)));
            json_object_end(j);
        }
        json_array_end(j);
        json_object_begin(j, "labels");
        for (size_t k = 0; k < e->nlabels; k++)
            json_string(j, e->labels[2 * k], e->labels[2 * k + 1]);
        json_object_end(j);
        json_object_end(j);
    }
    json_array_end(j);
    pthread_rwlock_unlock(&m->lock);
}

size_t sl_container_list(struct sl_container_map *m, struct sl_container *out, size_t max)
{
    size_t n = 0;

    pthread_rwlock_rdlock(&m->lock);
    for (size_t i = 0; i < m->n && n < max; i++)
        out[n++] = m->entries[i]->c;
    pthread_rwlock_unlock(&m->lock);
    return n;
}
