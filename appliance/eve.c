#include "eve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sl_sys.h"

static void format_time(char *buf, size_t len, uint64_t ts_us)
{
    time_t secs = (time_t)(ts_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06u+0000", (unsigned)(ts_us % 1000000));
}

static void format_addr(char *buf, size_t len, int family, const uint8_t *a)
{
    if (inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
}

static const char *proto_name(uint8_t p, char *buf, size_t len)
{
    switch (p) {
    case IPPROTO_TCP:
        return "TCP";
    case IPPROTO_UDP:
        return "UDP";
    case IPPROTO_ICMP:
        return "ICMP";
    case IPPROTO_ICMPV6:
        return "IPv6-ICMP";
    case IPPROTO_SCTP:
        return "SCTP";
    case IPPROTO_GRE:
        return "GRE";
    case IPPROTO_IGMP:
        return "IGMP";
    case IPPROTO_ESP:
        return "ESP";
    case IPPROTO_AH:
        return "AH";
    case 112:
        return "VRRP";
    default:
        snprintf(buf, len, "%u", p);
        return buf;
    }
}

static const char *event_type(enum dpi_event_type t)
{
    switch (t) {
    case DPI_EVENT_FLOW:
        return "flow";
    case DPI_EVENT_HTTP:
        return "http";
    case DPI_EVENT_TLS:
        return "tls";
    case DPI_EVENT_ALERT:
        return "alert";
    case DPI_EVENT_ANOMALY:
        return "anomaly";
    }
    return "unknown";
}

static void format_ndpi(struct json *j, const struct dpi_ndpi_facts *n)
{
    json_object_begin(j, "ndpi");
    json_string(j, "proto", n->proto);
    json_string(j, "proto_id", n->proto_id);
    json_string(j, "category", n->category);
    json_string(j, "confidence", n->confidence);
    if (n->guessed)
        json_bool(j, "guessed", 1);
    json_array_begin(j, "risks");
    for (unsigned bit = 1; bit < 64; bit++)
        if (n->risks & (1ULL << bit)) {
            const char *name = dpi_risk_name(bit);
            if (name)
                json_string(j, NULL, name);
        }
    json_array_end(j);
    json_object_end(j);
}

static void format_http(struct json *j, const struct dpi_http_facts *h)
{
    json_object_begin(j, "http");
    if (h->hostname)
        json_string(j, "hostname", h->hostname);
    if (h->uri)
        json_string(j, "url", h->uri);
    if (h->method)
        json_string(j, "http_method", h->method);
    if (h->protocol)
        json_string(j, "protocol", h->protocol);
    if (h->status)
        json_uint(j, "status", (uint64_t)h->status);
    if (h->user_agent)
        json_string(j, "http_user_agent", h->user_agent);
    if (h->content_type)
        json_string(j, "http_content_type", h->content_type);
    json_object_end(j);
}

static void format_fileinfo(struct json *j, const struct dpi_body_facts *b)
{
    static const char *states[] = {"CLOSED", "CUT", "TRUNCATED", "OPEN"};
    json_object_begin(j, "fileinfo");
    if (b->sha256[0])
        json_string(j, "sha256", b->sha256);
    json_uint(j, "size", b->size);
    json_string(j, "state", states[b->state]);
    json_string(j, "direction", b->to_server ? "to_server" : "to_client");
    if (b->encoding)
        json_string(j, "encoding", b->encoding);
    if (b->chunked)
        json_bool(j, "chunked", 1);
    if (b->problem)
        json_string(j, "problem", b->problem);
    json_object_end(j);
}

static void format_tls(struct json *j, const struct dpi_tls_facts *t)
{
    json_object_begin(j, "tls");
    if (t->sni && t->sni[0])
        json_string(j, "sni", t->sni);
    if (t->version)
        json_string(j, "version", t->version);
    if (t->alpn && t->alpn[0])
        json_string(j, "alpn", t->alpn);
    if (t->intercepted)
        json_bool(j, "intercepted", 1);
    if (t->action)
        json_string(j, "action", t->action);
    if (t->reason)
        json_string(j, "reason", t->reason);
    if (t->ja3_hash == NULL) { /* facts of an intercepted flow: no hello here */
        json_object_end(j);
        return;
    }
    json_object_begin(j, "ja3");
    json_string(j, "hash", t->ja3_hash);
    if (t->ja3_string) /* absent when the facts come from nDPI (QUIC, DTLS) */
        json_string(j, "string", t->ja3_string);
    json_object_end(j);
    json_object_end(j);
}

static void format_alert(struct json *j, const struct dpi_alert_facts *a, enum eve_mode mode)
{
    int block = a->action == RULES_ACTION_BLOCK;
    json_object_begin(j, "alert");
    json_string(j, "action", block && mode == EVE_ENFORCE ? "blocked" : "allowed");
    if (block && mode != EVE_ENFORCE)
        json_bool(j, "would_block", 1);
    json_string(j, "signature", a->signature);
    json_string(j, "category", a->category);
    json_uint(j, "severity", (uint64_t)a->severity);
    json_string(j, "source", a->source);
    if (a->member)
        json_string(j, "member", a->member);
    json_object_end(j);
}

/* Suricata's anomaly events carry type and event; sluice adds what it did. */
static void format_anomaly(struct json *j, const struct dpi_anomaly_facts *a, enum eve_mode mode)
{
    int block = a->action == RULES_ACTION_BLOCK;
    json_object_begin(j, "anomaly");
    json_string(j, "layer", a->layer);
    json_string(j, "reason", a->reason);
    json_string(j, "direction", a->to_server ? "to_server" : "to_client");
    json_string(j, "action", block && mode == EVE_ENFORCE ? "blocked" : "allowed");
    if (block && mode != EVE_ENFORCE)
        json_bool(j, "would_block", 1);
    json_object_end(j);
}

static void format_flow(struct json *j, const struct dpi_flow_stats *s)
{
    char ts[40];
    json_object_begin(j, "flow");
    json_uint(j, "pkts_toserver", s->pkts[DPI_DIR_FWD]);
    json_uint(j, "pkts_toclient", s->pkts[DPI_DIR_REV]);
    json_uint(j, "bytes_toserver", s->bytes[DPI_DIR_FWD]);
    json_uint(j, "bytes_toclient", s->bytes[DPI_DIR_REV]);
    format_time(ts, sizeof(ts), s->first_us);
    json_string(j, "start", ts);
    format_time(ts, sizeof(ts), s->last_us);
    json_string(j, "end", ts);
    json_object_end(j);
}

static void format_container(struct json *j, const struct sl_container *c)
{
    json_object_begin(j, "container");
    if (c->id[0])
        json_string(j, "id", c->id);
    if (c->name[0])
        json_string(j, "name", c->name);
    if (c->image[0])
        json_string(j, "image", c->image);
    if (c->network[0])
        json_string(j, "network", c->network);
    json_object_end(j);
}

void eve_format(struct json *j, const struct dpi_event *ev, enum eve_mode mode,
                const struct sl_container *container, const struct dpi_tls_facts *tls)
{
    const struct dpi_flow_meta *m = ev->meta;
    char buf[64];

    json_reset(j);
    json_object_begin(j, NULL);
    format_time(buf, sizeof(buf), ev->ts_us);
    json_string(j, "timestamp", buf);
    json_uint(j, "flow_id", m->flow_id);
    json_string(j, "event_type", event_type(ev->type));
    format_addr(buf, sizeof(buf), m->family, m->src);
    json_string(j, "src_ip", buf);
    json_uint(j, "src_port", m->sport);
    format_addr(buf, sizeof(buf), m->family, m->dst);
    json_string(j, "dest_ip", buf);
    json_uint(j, "dest_port", m->dport);
    json_string(j, "proto", proto_name(m->l4proto, buf, sizeof(buf)));
    if (m->vlan) {
        json_array_begin(j, "vlan");
        json_uint(j, NULL, m->vlan);
        json_array_end(j);
    }
    if (m->tunnel)
        json_string(j, "tunnel", m->tunnel);
    if (ev->app_proto)
        json_string(j, "app_proto", ev->app_proto);
    if (container && container->id[0])
        format_container(j, container);
    if (ev->alert)
        format_alert(j, ev->alert, mode);
    if (ev->anomaly)
        format_anomaly(j, ev->anomaly, mode);
    if (ev->http)
        format_http(j, ev->http);
    if (ev->body)
        format_fileinfo(j, ev->body);
    if (ev->tls || tls)
        format_tls(j, ev->tls ? ev->tls : tls);
    if (ev->type == DPI_EVENT_FLOW)
        format_flow(j, ev->stats);
    if (ev->ndpi)
        format_ndpi(j, ev->ndpi);
    json_object_end(j);
}

struct eve *eve_open(const char *path, char *err, size_t errlen)
{
    struct eve *ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_init(&ev->j);
    ev->path = strdup(path);
    if (strcmp(path, "-") == 0) {
        ev->fp = stdout;
        ev->is_stdout = 1;
        return ev;
    }
    if (sl_make_parent(path, 0750) != 0) {
        snprintf(err, errlen, "%s: cannot create its folder: %s", path, strerror(errno));
        goto fail;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || (ev->fp = fdopen(fd, "a")) == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    return ev;
fail:
    free(ev->path);
    free(ev);
    return NULL;
}

int eve_write(struct eve *ev, const struct dpi_event *e, enum eve_mode mode)
{
    eve_format(&ev->j, e, mode, NULL, NULL);
    if (ev->j.failed) {
        ev->failed++;
        return -1;
    }
    return eve_write_line(ev, ev->j.buf, ev->j.len);
}

int eve_write_line(struct eve *ev, const char *line, size_t len)
{
    if (fwrite(line, 1, len, ev->fp) != len || fputc('\n', ev->fp) == EOF) {
        ev->failed++;
        return -1;
    }
    ev->written++;
    return 0;
}

int eve_flush(struct eve *ev)
{
    return fflush(ev->fp) == 0 ? 0 : -1;
}

void eve_close(struct eve *ev)
{
    if (ev == NULL)
        return;
    if (ev->fp) {
        if (ev->is_stdout)
            fflush(ev->fp);
        else
            fclose(ev->fp);
    }
    json_free(&ev->j);
    free(ev->path);
    free(ev);
}

void eve_format_isolation(struct json *j, uint64_t ts_us, const struct sl_container *c,
                          const char *action, const char *reason, const char *detail)
{
    char ts[40];

    json_reset(j);
    json_object_begin(j, NULL);
    format_time(ts, sizeof(ts), ts_us);
    json_string(j, "timestamp", ts);
    json_string(j, "event_type", "isolation");
    format_container(j, c);
    json_object_begin(j, "isolation");
    json_string(j, "action", action);
    json_string(j, "reason", reason);
    if (detail && detail[0])
        json_string(j, "detail", detail);
    json_object_end(j);
    json_object_end(j);
}

void eve_format_detection(struct json *j, uint64_t ts_us, const struct sl_container *c,
                          const char *signature, const char *path, const char *sha256,
                          const char *action, const char *scanner)
{
    char ts[40];

    json_reset(j);
    json_object_begin(j, NULL);
    format_time(ts, sizeof(ts), ts_us);
    json_string(j, "timestamp", ts);
    json_string(j, "event_type", "detection");
    if (c && (c->id[0] || c->name[0]))
        format_container(j, c);
    json_object_begin(j, "detection");
    json_string(j, "signature", signature);
    json_string(j, "path", path);
    if (sha256 && sha256[0])
        json_string(j, "sha256", sha256);
    json_string(j, "action", action && action[0] ? action : "none");
    if (scanner && scanner[0])
        json_string(j, "scanner", scanner);
    json_object_end(j);
    json_object_end(j);
}
