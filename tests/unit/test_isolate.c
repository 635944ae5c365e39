/*
 * The pure parts of isolation: the rules made for bridge, overlay and
 * host-network targets (as iptables-restore lines), refusals of malformed
 * targets and allowed destinations, targets built from Docker API replies,
 * and the state file: round trip, atomic replacement, and a corrupt file
 * refused and left as it was.
 */
#include "isolate.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define ID   "4f66ad9a0b2e2b9e8f4a6d1c3b7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f901"
#define ID2  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID3  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define TAGS "-m comment --comment \"sluice-iso 4f66ad9a0b2e\""

static struct sl_iso_rule rules[SL_ISO_MAX_RULES];

/* The rules of t as lines "[ns ]4|6 LINE" joined by newlines. */
static int render(const struct sl_iso_target *t, const char *const *allow, size_t nallow, char *out,
                  size_t outlen, char *err, size_t errlen)
{
    int n = sl_iso_rules(t, allow, nallow, rules, SL_ISO_MAX_RULES, err, errlen);
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char line[1024];
        if (sl_iso_rule_line(&rules[i], line, sizeof(line)) < 0)
            return -1;
        len += (size_t)snprintf(out + len, outlen - len, "%s%d %s\n", rules[i].netns ? "ns " : "",
                                rules[i].family, line);
    }
    return n;
}

static struct sl_iso_net *net(struct sl_iso_target *t, const char *name, const char *driver,
                              const char *ip, const char *subnet)
{
    struct sl_iso_net *n = &t->nets[t->nnets++];
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->driver, sizeof(n->driver), "%s", driver);
    snprintf(n->ip, sizeof(n->ip), "%s", ip);
    snprintf(n->subnet, sizeof(n->subnet), "%s", subnet);
    return n;
}

static void test_bridge(void)
{
    struct sl_iso_target t = {.id = ID, .name = "web"};
    char out[8192], err[256];

    net(&t, "front", "bridge", "172.20.0.2", "172.20.0.0/16");
    struct sl_iso_net *n = net(&t, "bridge", "bridge", "172.17.0.5", "172.17.0.0/16");
    snprintf(n->ip6, sizeof(n->ip6), "fd00::5");
    snprintf(n->subnet6, sizeof(n->subnet6), "fd00::/64");
    CHECK_EQ_INT(render(&t, NULL, 0, out, sizeof(out), err, sizeof(err)), 6);
    CHECK_EQ_STR(out, "4 -A SLUICE-ISO -s 172.20.0.2 -d 172.20.0.0/16 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO -s 172.20.0.0/16 -d 172.20.0.2 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO -s 172.17.0.5 -d 172.17.0.0/16 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO -s 172.17.0.0/16 -d 172.17.0.5 " TAGS " -j DROP\n"
                      "6 -A SLUICE-ISO -s fd00::5 -d fd00::/64 " TAGS " -j DROP\n"
                      "6 -A SLUICE-ISO -s fd00::/64 -d fd00::5 " TAGS " -j DROP\n");

    /* The argument vector keeps the comment as one argument. */
    const char *argv[64];
    size_t argc = sl_iso_rule_argv(&rules[0], argv, 64);
    CHECK_EQ_INT(argc, 12);
    CHECK_EQ_STR(argv[9], "sluice-iso 4f66ad9a0b2e");
    CHECK(argv[argc] == NULL);

    /* A network driver isolation does not cover makes no rule. */
    struct sl_iso_target m = {.id = ID};
    net(&m, "lan", "macvlan", "192.168.1.20", "192.168.1.0/24");
    CHECK_EQ_INT(render(&m, NULL, 0, out, sizeof(out), err, sizeof(err)), 0);
}

static void test_refused(void)
{
    struct sl_iso_target t = {.id = "not-an-id"};
    char out[4096], err[256] = "";

    CHECK_EQ_INT(render(&t, NULL, 0, out, sizeof(out), err, sizeof(err)), -1);
    CHECK(strstr(err, "not a container ID") != NULL);

    struct sl_iso_target u = {.id = ID};
    net(&u, "front", "bridge", "172.20.0.2 -j ACCEPT", "172.20.0.0/16");
    CHECK_EQ_INT(render(&u, NULL, 0, out, sizeof(out), err, sizeof(err)), -1);
    CHECK(strstr(err, "bad address") != NULL);

    struct sl_iso_target v = {.id = ID};
    net(&v, "front", "bridge", "172.20.0.2", "172.20.0.0/33");
    CHECK_EQ_INT(render(&v, NULL, 0, out, sizeof(out), err, sizeof(err)), -1);

    /* An IPv6 address where IPv4 is expected. */
    struct sl_iso_target w = {.id = ID};
    net(&w, "front", "bridge", "fd00::1", "fd00::/64");
    CHECK_EQ_INT(render(&w, NULL, 0, out, sizeof(out), err, sizeof(err)), -1);
}

static void test_overlay(void)
{
    struct sl_iso_target t = {.id = ID, .name = "api"};
    char out[8192], err[256];

    struct sl_iso_net *n = net(&t, "backend", "overlay", "10.0.1.5", "10.0.1.0/24");
    snprintf(n->gw_ip, sizeof(n->gw_ip), "172.18.0.3");
    net(&t, "front", "bridge", "172.20.0.2", "172.20.0.0/16");
    snprintf(t.overlay_peers_gw[t.npeers++], 46, "172.18.0.4");
    snprintf(t.overlay_peers_gw[t.npeers++], 46, "172.18.0.3"); /* itself: once */
    snprintf(t.overlay_peers_gw[t.npeers++], 46, "172.18.0.7");
    CHECK_EQ_INT(render(&t, NULL, 0, out, sizeof(out), err, sizeof(err)), 7);
    CHECK_EQ_STR(out, "ns 4 -A SLUICE-ISO-OUT ! -o lo -d 10.0.1.0/24 " TAGS " -j DROP\n"
                      "ns 4 -A SLUICE-ISO-IN ! -i lo -s 10.0.1.0/24 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO -s 172.20.0.2 -d 172.20.0.0/16 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO -s 172.20.0.0/16 -d 172.20.0.2 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO-IN -i docker_gwbridge -s 172.18.0.3 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO-IN -i docker_gwbridge -s 172.18.0.4 " TAGS " -j DROP\n"
                      "4 -A SLUICE-ISO-IN -i docker_gwbridge -s 172.18.0.7 " TAGS " -j DROP\n");

    /* Peers count only for a container on an overlay. */
    struct sl_iso_target b = {.id = ID};
    net(&b, "front", "bridge", "172.20.0.2", "172.20.0.0/16");
    snprintf(b.overlay_peers_gw[b.npeers++], 46, "172.18.0.4");
    CHECK_EQ_INT(render(&b, NULL, 0, out, sizeof(out), err, sizeof(err)), 2);

    snprintf(t.overlay_peers_gw[0], 46, "172.18.0.4; reboot");
    CHECK_EQ_INT(render(&t, NULL, 0, out, sizeof(out), err, sizeof(err)), -1);
    CHECK(strstr(err, "docker_gwbridge") != NULL);
}

static void test_host(void)
{
    struct sl_iso_target t = {.id = ID, .name = "agent", .cgroup = "/docker/" ID};
    char out[8192], err[256];
    const char *allow[] = {"10.1.0.0/16", "192.168.1.1:53", "[fd00::/8]:443", "2001:db8::/32"};

    net(&t, "host", "host", "", "");
    CHECK_EQ_INT(render(&t, NULL, 0, out, sizeof(out), err, sizeof(err)), 2);
    CHECK_EQ_STR(out, "4 -A SLUICE-ISO-OUT -m cgroup --path /docker/" ID " " TAGS " -j DROP\n"
                      "6 -A SLUICE-ISO-OUT -m cgroup --path /docker/" ID " " TAGS " -j DROP\n");

    CHECK_EQ_INT(render(&t, allow, 4, out, sizeof(out), err, sizeof(err)), 8);
#define CG "-m cgroup --path /docker/" ID
    CHECK_EQ_STR(out,
                 "4 -A SLUICE-ISO-OUT " CG " -d 10.1.0.0/16 " TAGS " -j RETURN\n"
                 "4 -A SLUICE-ISO-OUT " CG " -d 192.168.1.1 -p tcp --dport 53 " TAGS " -j RETURN\n"
                 "4 -A SLUICE-ISO-OUT " CG " -d 192.168.1.1 -p udp --dport 53 " TAGS " -j RETURN\n"
                 "6 -A SLUICE-ISO-OUT " CG " -d fd00::/8 -p tcp --dport 443 " TAGS " -j RETURN\n"
                 "6 -A SLUICE-ISO-OUT " CG " -d fd00::/8 -p udp --dport 443 " TAGS " -j RETURN\n"
                 "6 -A SLUICE-ISO-OUT " CG " -d 2001:db8::/32 " TAGS " -j RETURN\n"
                 "4 -A SLUICE-ISO-OUT " CG " " TAGS " -j DROP\n"
                 "6 -A SLUICE-ISO-OUT " CG " " TAGS " -j DROP\n");

    static const char *const bad[] = {"10.1.0.0/40",
                                      "example.com",
                                      "10.0.0.1:0",
                                      "10.0.0.1:99999",
                                      "[fd00::/8",
                                      "10.0.0.1:53x",
                                      ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CHECK_EQ_INT(render(&t, &bad[i], 1, out, sizeof(out), err, sizeof(err)), -1);
        CHECK(strstr(err, "want CIDR or CIDR:port") != NULL);
    }

    /* No cgroup, or one that would split into several arguments. */
    struct sl_iso_target u = {.id = ID, .cgroup = ""};
    net(&u, "host", "host", "", "");
    CHECK_EQ_INT(render(&u, NULL, 0, out, sizeof(out), err, sizeof(err)), -1);
    snprintf(u.cgroup, sizeof(u.cgroup), "/docker/x -j ACCEPT");
    CHECK_EQ_INT(render(&u, NULL, 0, out, sizeof(out), err, sizeof(err)), -1);
}

static struct jsonp_doc *parse(const char *text)
{
    char err[128];
    struct jsonp_doc *d = jsonp_parse(text, strlen(text), err, sizeof(err));
    if (d == NULL)
        fprintf(stderr, "test json: %s\n", err);
    return d;
}

static void test_from_docker(void)
{
    struct jsonp_doc *c =
        parse("{\"Id\":\"" ID "\",\"Name\":\"/api\",\"State\":{\"Pid\":4242,\"Running\":true},"
              "\"HostConfig\":{\"NetworkMode\":\"front\"},\"NetworkSettings\":{\"Networks\":{"
              "\"front\":{\"NetworkID\":\"n1\",\"IPAddress\":\"172.20.3.2\",\"IPPrefixLen\":16,"
              "\"GlobalIPv6Address\":\"fd00::1:2\",\"GlobalIPv6PrefixLen\":64},"
              "\"backend\":{\"NetworkID\":\"n2\",\"IPAddress\":\"10.0.1.5\",\"IPPrefixLen\":24,"
              "\"GlobalIPv6Address\":\"\"},"
              "\"down\":{\"NetworkID\":\"n3\",\"IPAddress\":\"\"}}}}");
    struct jsonp_doc *n1 = parse("{\"Id\":\"n1\",\"Name\":\"front\",\"Driver\":\"bridge\"}");
    struct jsonp_doc *n2 =
        parse("{\"Id\":\"n2\",\"Name\":\"backend\",\"Driver\":\"overlay\",\"Containers\":{"
              "\"" ID "\":{},\"" ID2 "\":{},\"" ID3 "\":{},\"lb-backend\":{}}}");
    struct jsonp_doc *gw = parse("{\"Name\":\"docker_gwbridge\",\"Containers\":{"
                                 "\"" ID "\":{\"IPv4Address\":\"172.18.0.3/16\"},"
                                 "\"" ID2 "\":{\"IPv4Address\":\"172.18.0.4/16\"},"
                                 "\"lb-backend\":{\"IPv4Address\":\"172.18.0.9/16\"}}}");
    const struct jsonp_value *nets[] = {jsonp_root(n1), jsonp_root(n2)};
    struct sl_iso_target t;
    char err[256];

    CHECK_EQ_INT(
        sl_iso_target_from_docker(&t, jsonp_root(c), nets, 2, jsonp_root(gw), err, sizeof(err)), 0);
    CHECK_EQ_STR(t.id, ID);
    CHECK_EQ_STR(t.name, "api");
    CHECK_EQ_INT(t.pid, 4242);
    CHECK_EQ_INT(t.nnets, 2); /* "down" has no address */
    CHECK_EQ_STR(t.nets[0].driver, "bridge");
    CHECK_EQ_STR(t.nets[0].subnet, "172.20.0.0/16");
    CHECK_EQ_STR(t.nets[0].subnet6, "fd00::/64");
    CHECK_EQ_STR(t.nets[1].driver, "overlay");
    CHECK_EQ_STR(t.nets[1].subnet, "10.0.1.0/24");
    CHECK_EQ_STR(t.nets[1].gw_ip, "172.18.0.3");
    /* ID3 has no gwbridge address (not running here): not a peer. */
    CHECK_EQ_INT(t.npeers, 1);
    CHECK_EQ_STR(t.overlay_peers_gw[0], "172.18.0.4");

    struct jsonp_doc *h =
        parse("{\"Id\":\"" ID2 "\",\"Name\":\"/agent\",\"State\":{\"Pid\":77},"
              "\"HostConfig\":{\"NetworkMode\":\"host\"},"
              "\"NetworkSettings\":{\"Networks\":{\"host\":{\"IPAddress\":\"\"}}}}");
    CHECK_EQ_INT(sl_iso_target_from_docker(&t, jsonp_root(h), NULL, 0, NULL, err, sizeof(err)), 0);
    CHECK_EQ_INT(t.nnets, 1);
    CHECK_EQ_STR(t.nets[0].driver, "host");
    CHECK_EQ_INT(t.pid, 77);

    struct jsonp_doc *bad = parse("{\"Id\":\"xyz\"}");
    CHECK_EQ_INT(sl_iso_target_from_docker(&t, jsonp_root(bad), NULL, 0, NULL, err, sizeof(err)),
                 -1);
    jsonp_free(c);
    jsonp_free(n1);
    jsonp_free(n2);
    jsonp_free(gw);
    jsonp_free(h);
    jsonp_free(bad);
}

static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_state(void)
{
    char dir[] = "/tmp/sluice-test-isolate-XXXXXX", path[256], err[512];
    struct sl_iso_state s = {0}, r;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/lib/isolated.json", dir);

    /* Missing: empty, no error. The directory is made on save. */
    CHECK_EQ_INT(sl_iso_state_load(path, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(sl_iso_state_put(&s, ID, "web", "EICAR download \"quoted\"", 1795000000), 0);
    CHECK_EQ_INT(sl_iso_state_put(&s, ID2, "db", "manual", 1795000100), 0);
    /* Again with no reason: the name follows, reason and time stay. */
    CHECK_EQ_INT(sl_iso_state_put(&s, ID, "web-renamed", NULL, 1), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_INT(sl_iso_state_save(path, &s, err, sizeof(err)), 0);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

    CHECK_EQ_INT(sl_iso_state_load(path, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.n, 2);
    struct sl_iso_entry *e = sl_iso_state_find(&r, ID);
    CHECK(e != NULL);
    if (e) {
        CHECK_EQ_STR(e->name, "web-renamed");
        CHECK_EQ_STR(e->reason, "EICAR download \"quoted\"");
        CHECK_EQ_INT(e->since, 1795000000);
    }
    CHECK(strstr(slurp(path), "\"since\":\"2026-11-18T") != NULL);
    CHECK_EQ_INT(sl_iso_state_remove(&r, ID), 1);
    CHECK_EQ_INT(sl_iso_state_remove(&r, ID), 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_STR(r.v[0].id, ID2);
    sl_iso_state_free(&r);

    /* Corrupt files: refused with the file and the cause named, left alone. */
    static const char *const corrupt[] = {
        "{\"isolated\":[{\"id\":\"" ID "\",\"since\":\"2026-11-18T10:00:00Z\"}",
        "{\"isolated\":{}}",
        "{\"isolated\":[{\"id\":\"abc\",\"since\":\"2026-11-18T10:00:00Z\"}]}",
        "{\"isolated\":[{\"id\":\"" ID "\",\"since\":\"yesterday\"}]}",
        "",
    };
    for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
        FILE *f = fopen(path, "w");
        fputs(corrupt[i], f);
        fclose(f);
        err[0] = '\0';
        CHECK_EQ_INT(sl_iso_state_load(path, &r, err, sizeof(err)), -1);
        CHECK(strstr(err, path) != NULL && strstr(err, "not a valid isolation state") != NULL);
        CHECK_EQ_INT(r.n, 0);
        CHECK_EQ_INT(sl_iso_init(path, NULL, 0, err, sizeof(err)), -1);
        CHECK_EQ_STR(slurp(path), corrupt[i]);
    }

    /* A bad allowed destination is refused when the handle is made. */
    const char *allow[] = {"10.0.0.0/8:http"};
    unlink(path);
    CHECK_EQ_INT(sl_iso_init(path, allow, 1, err, sizeof(err)), -1);
    CHECK(strstr(err, "10.0.0.0/8:http") != NULL);
    CHECK_EQ_INT(sl_iso_init(path, NULL, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(sl_isolated(ID), 0);
    CHECK_EQ_INT(sl_iso_set_allow(allow, 1, err, sizeof(err)), -1);
    sl_iso_shutdown();
    /* Without a state, nothing is isolated and isolating says why. */
    CHECK_EQ_INT(sl_isolated(ID), 0);
    struct sl_iso_target t = {.id = ID};
    CHECK_EQ_INT(sl_isolate(&t, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "not set up") != NULL);

    sl_iso_state_free(&s);
    snprintf(tmp, sizeof(tmp), "%s/lib", dir);
    rmdir(tmp);
    rmdir(dir);
}

int main(void)
{
    test_bridge();
    test_refused();
    test_overlay();
    test_host();
    test_from_docker();
    test_state();
    CHECK_DONE();
}
