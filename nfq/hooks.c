/*
 * The rules that send container traffic to sluice's queues.
 *
 * Everything lives in sluice's own chains; the only rules added elsewhere
 * are the jumps to them, one per hook:
 *
 *   DOCKER-USER -> SLUICE-FWD     bridged container traffic (every bridge)
 *   FORWARD     -> SLUICE-FWD-BR  the same when FORWARD does not jump to
 *                                 DOCKER-USER (Docker before 27 leaves
 *                                 ip6tables alone; Docker not running):
 *                                 Docker bridges only, on to SLUICE-FWD
 *   INPUT       -> SLUICE-BR-IN   bridged containers to the host (servers on
 *                                 the host, docker-proxy of published ports)
 *   OUTPUT      -> SLUICE-BR-OUT  the host to bridged containers (its
 *                                 clients, docker-proxy, DNAT of published
 *                                 ports to a host address)
 *   OUTPUT      -> SLUICE-OUT     sockets of host-network containers (by cgroup)
 *   INPUT       -> SLUICE-IN      the same connections, packets coming in
 *   POSTROUTING -> SLUICE-POST    (mangle) a decision in a packet's mark is
 *                                 saved into its connection's mark
 *
 * Containers' UDP to the TLS ports (QUIC, which the TLS proxy cannot
 * intercept) is queued too when the policy blocks it, on the paths where a
 * container is the sender: SLUICE-FWD and SLUICE-BR-IN from a bridge,
 * SLUICE-OUT by cgroup.
 *
 * Docker bridges are docker0 and br-*, the names Docker gives them. Each
 * chain first lets through what needs no inspection: packets sluice sent
 * itself (resets) and connections already decided (conntrack mark), so
 * bulk traffic leaves the queue. A connection to the host is decided on a
 * packet coming in, which never reaches POSTROUTING; the host's next packet
 * out carries the decision into the connection's mark. A host-network
 * container's connection is recognised on its way out by the socket's
 * cgroup and marked, so its incoming packets (which carry no socket yet) are
 * queued too; loopback packets are seen once, on the way out. A packet
 * reaches at most one NFQUEUE rule per hook: the queue's accept ends the
 * hook's table.
 *
 * Each path (bridge-forward, bridge-to-host, ...) is installed per family;
 * what could not be hooked, and why, is kept for the log and `sluicectl
 * status`: a path is never left out silently. IPv4 is required; a path of
 * IPv6 that cannot be hooked (no ip6tables, a match the kernel lacks) is
 * reported and the rest goes on.
 *
 * Install removes what an earlier run left (a crash skips the cleanup), so
 * starting twice never duplicates a rule. Commands go through iptables and
 * ip6tables (the nft backend on current distributions) with -w, so they wait
 * for Docker's own rule changes instead of failing.
 */
#include "nfq.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 32

static const char *const tools[] = {"iptables", "ip6tables"};

/* The cgroup rules in SLUICE-CG now, one path per line; the TLS redirect
 * the cgroup rules of SLUICE-TLS-CG use. */
static char cgroups_now[8192];
static char tls_ports_now[256], tls_port_now[8];

enum hook_when { HOOK_ALWAYS, HOOK_BRIDGES, HOOK_FORWARD, HOOK_HOST, HOOK_TLS };

/* PATH_ALL: a chain every path needs. */
#define PATH_ALL NFQ_PATHS

struct hook_table {
    const char *table;
    const char *builtin; /* chain the jump goes into */
    const char *chain;   /* sluice's chain */
    enum hook_when when;
    int path; /* enum nfq_path, or PATH_ALL */
};

static const struct hook_table hooks[] = {
    {"filter", "DOCKER-USER", "SLUICE-FWD", HOOK_BRIDGES, NFQ_PATH_FORWARD},
    {"filter", "FORWARD", "SLUICE-FWD-BR", HOOK_FORWARD, NFQ_PATH_FORWARD},
    {"filter", "INPUT", "SLUICE-BR-IN", HOOK_BRIDGES, NFQ_PATH_TO_HOST},
    {"filter", "OUTPUT", "SLUICE-BR-OUT", HOOK_BRIDGES, NFQ_PATH_FROM_HOST},
    {"filter", "OUTPUT", "SLUICE-OUT", HOOK_HOST, NFQ_PATH_HOSTNET},
    {"filter", "INPUT", "SLUICE-IN", HOOK_HOST, NFQ_PATH_HOSTNET},
    {"mangle", "POSTROUTING", "SLUICE-POST", HOOK_ALWAYS, PATH_ALL},
    /* TLS to the proxy: bridged containers on their way in, host-network
     * containers (by cgroup, SLUICE-TLS-CG) on their way out. */
    {"nat", "PREROUTING", "SLUICE-TLS", HOOK_TLS, NFQ_PATH_TLS},
    {"nat", "OUTPUT", "SLUICE-TLS-OUT", HOOK_TLS, NFQ_PATH_TLS},
};

/* Chains reached only from sluice's own chains. */
static const struct hook_table inner[] = {
    {"filter", NULL, "SLUICE-CG", HOOK_HOST, NFQ_PATH_HOSTNET},
    {"nat", NULL, "SLUICE-TLS-CG", HOOK_TLS, NFQ_PATH_TLS},
};

#define NHOOKS (sizeof(hooks) / sizeof(hooks[0]))
#define NINNER (sizeof(inner) / sizeof(inner[0]))

static const char *const path_names[NFQ_PATHS] = {
    "bridge-forward", "bridge-to-host", "host-to-bridge", "host-network", "tls-redirect",
};

/* What each family's rules cover, for nfq_hooks_paths (read by the control
 * thread while the main thread installs or checks). forward_direct: FORWARD
 * did not jump to DOCKER-USER, so sluice jumps from FORWARD itself. */
static struct {
    pthread_mutex_t lock;
    int installed[2];
    int forward_direct[2];
    struct nfq_hook_path paths[2][NFQ_PATHS];
} state = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int hook_on(const struct hook_table *h, const struct nfq_hooks_config *cfg, size_t t)
{
    switch (h->when) {
    case HOOK_BRIDGES:
        return cfg->bridges;
    case HOOK_FORWARD:
        return cfg->bridges && state.forward_direct[t];
    case HOOK_HOST:
        return cfg->host;
    case HOOK_TLS:
        return cfg->tls_port != 0;
    default:
        return 1;
    }
}

/* Runs tool with args; returns its exit status (-1 if it could not run).
 * The first line of its error output goes to err when err is not NULL. */
static int run(const char *tool, const char *const *args, char *err, size_t errlen)
{
    const char *argv[MAX_ARGS + 4];
    int n = 0, pipefd[2], status;
    posix_spawn_file_actions_t fa;
    pid_t pid;

    argv[n++] = tool;
    argv[n++] = "-w";
    for (int i = 0; args[i] && n < MAX_ARGS + 2; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    int rc = posix_spawnp(&pid, tool, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        if (err)
            snprintf(err, errlen, "%s: %s", tool, strerror(rc));
        return -1;
    }
    char msg[512];
    ssize_t got, len = 0;
    while ((got = read(pipefd[0], msg + len, sizeof(msg) - 1 - (size_t)len)) > 0)
        len += got;
    msg[len > 0 ? len : 0] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0 && err) {
        msg[strcspn(msg, "\n")] = '\0';
        snprintf(err, errlen, "%.300s", msg[0] ? msg : "failed");
    }
    return code;
}

static void chain_flush(const char *tool, const struct hook_table *h)
{
    const char *flush[] = {"-t", h->table, "-F", h->chain, NULL};
    run(tool, flush, NULL, 0);
}

static void chain_drop(const char *tool, const struct hook_table *h)
{
    const char *drop[] = {"-t", h->table, "-X", h->chain, NULL};
    run(tool, drop, NULL, 0);
}

static void jump_delete(const char *tool, const struct hook_table *h)
{
    const char *del[] = {"-t", h->table, "-D", h->builtin, "-j", h->chain, NULL};
    /* Once per copy: an older version or a race may have left several. */
    for (int guard = 0; guard < 64 && run(tool, del, NULL, 0) == 0; guard++)
        ;
}

/* Jumps first, then every chain is emptied before any is deleted: a chain
 * still named by a rule of another (SLUICE-FWD-BR -> SLUICE-FWD) cannot go. */
static void remove_family(const char *tool)
{
    for (size_t i = 0; i < NHOOKS; i++)
        jump_delete(tool, &hooks[i]);
    for (size_t i = 0; i < NHOOKS; i++)
        chain_flush(tool, &hooks[i]);
    for (size_t i = 0; i < NINNER; i++)
        chain_flush(tool, &inner[i]);
    for (size_t i = 0; i < NHOOKS; i++)
        chain_drop(tool, &hooks[i]);
    for (size_t i = 0; i < NINNER; i++)
        chain_drop(tool, &inner[i]);
}

void nfq_hooks_remove(void)
{
    cgroups_now[0] = '\0';
    for (size_t t = 0; t < 2; t++)
        remove_family(tools[t]);
    nfq_exempt_sets_destroy();
    pthread_mutex_lock(&state.lock);
    for (size_t t = 0; t < 2; t++) {
        state.installed[t] = 0;
        for (size_t p = 0; p < NFQ_PATHS; p++) {
            struct nfq_hook_path *hp = &state.paths[t][p];
            if (hp->inspected) {
                hp->inspected = 0;
                snprintf(hp->why, sizeof(hp->why), "sluice's rules were removed");
            }
        }
    }
    pthread_mutex_unlock(&state.lock);
}

/* The rule that queues: --queue-balance spreads connections over the
 * workers; --queue-bypass lets traffic through when nobody listens. */
static int queue_args(const struct nfq_hooks_config *cfg, const char **a, char *range,
                      size_t rangelen)
{
    int n = 0;
    a[n++] = "-j";
    a[n++] = "NFQUEUE";
    if (cfg->queues > 1) {
        snprintf(range, rangelen, "%u:%u", cfg->queue_base, cfg->queue_base + cfg->queues - 1);
        a[n++] = "--queue-balance";
        a[n++] = range;
    } else {
        snprintf(range, rangelen, "%u", cfg->queue_base);
        a[n++] = "--queue-num";
        a[n++] = range;
    }
    if (!cfg->fail_closed)
        a[n++] = "--queue-bypass";
    a[n] = NULL;
    return n;
}

static const char *chain_table(const char *chain)
{
    for (size_t i = 0; i < NHOOKS; i++)
        if (strcmp(hooks[i].chain, chain) == 0)
            return hooks[i].table;
    for (size_t i = 0; i < NINNER; i++)
        if (strcmp(inner[i].chain, chain) == 0)
            return inner[i].table;
    return "filter";
}

/* Appends a rule: the interface match (may be NULL), the match, the target. */
static int add_rule_on(const char *tool, const char *chain, const char *const *iface,
                       const char *const *match, const char *const *target, char *err,
                       size_t errlen)
{
    const char *a[MAX_ARGS];
    int n = 0;

    a[n++] = "-t";
    a[n++] = chain_table(chain);
    a[n++] = "-A";
    a[n++] = chain;
    for (int i = 0; iface && iface[i] && n < MAX_ARGS - 1; i++)
        a[n++] = iface[i];
    for (int i = 0; match && match[i] && n < MAX_ARGS - 1; i++)
        a[n++] = match[i];
    for (int i = 0; target[i] && n < MAX_ARGS - 1; i++)
        a[n++] = target[i];
    a[n] = NULL;
    char why[400];
    if (run(tool, a, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s -A %s: %.300s", tool, chain, why);
        return -1;
    }
    return 0;
}

static int add_rule(const char *tool, const char *chain, const char *const *match,
                    const char *const *target, char *err, size_t errlen)
{
    return add_rule_on(tool, chain, NULL, match, target, err, errlen);
}

/* The pieces of rules every path uses, made once per install. */
struct rule_parts {
    char own[32], decided[32], container[32], range[32], decided_bits[16], own_bits[16],
        tls_port[8];
    const char *queue[12];
    const char *m_own[5], *m_decided[5], *m_decided_pkt[5], *m_tcp[3], *m_ports[7];
    const char *const *m_queued; /* TCP on the policy's ports */
    const char *t_return[3];
};

static void parts_init(struct rule_parts *x, const struct nfq_hooks_config *cfg)
{
    snprintf(x->own, sizeof(x->own), "0x%x/0x%x", NFQ_MARK_OWN, NFQ_MARK_OWN);
    snprintf(x->decided, sizeof(x->decided), "0x%x/0x%x", NFQ_MARK_DECIDED, NFQ_MARK_DECIDED);
    snprintf(x->container, sizeof(x->container), "0x%x/0x%x", NFQ_MARK_CONTAINER,
             NFQ_MARK_CONTAINER);
    snprintf(x->decided_bits, sizeof(x->decided_bits), "0x%x", NFQ_MARK_DECIDED);
    snprintf(x->own_bits, sizeof(x->own_bits), "0x%x", NFQ_MARK_OWN);
    snprintf(x->tls_port, sizeof(x->tls_port), "%u", cfg->tls_port);
    queue_args(cfg, x->queue, x->range, sizeof(x->range));
    const char *own[] = {"-m", "mark", "--mark", x->own, NULL};
    const char *decided[] = {"-m", "connmark", "--mark", x->decided, NULL};
    const char *decided_pkt[] = {"-m", "mark", "--mark", x->decided, NULL};
    const char *tcp[] = {"-p", "tcp", NULL};
    const char *ports[] = {"-p", "tcp", "-m", "multiport", "--ports", cfg->ports, NULL};
    const char *ret[] = {"-j", "RETURN", NULL};
    memcpy(x->m_own, own, sizeof(own));
    memcpy(x->m_decided, decided, sizeof(decided));
    memcpy(x->m_decided_pkt, decided_pkt, sizeof(decided_pkt));
    memcpy(x->m_tcp, tcp, sizeof(tcp));
    memcpy(x->m_ports, ports, sizeof(ports));
    memcpy(x->t_return, ret, sizeof(ret));
    x->m_queued = cfg->ports ? x->m_ports : x->m_tcp;
}

/* Container TLS to the proxy's port: REDIRECT keeps the original
 * destination for the proxy to read (SO_ORIGINAL_DST). The proxy's own
 * connections are never redirected: from the host they carry NFQ_MARK_OWN,
 * from a container's namespace their address and port are in an exempt set. */
static int install_tls(const char *tool, const struct nfq_hooks_config *cfg,
                       const struct rule_parts *x, char *err, size_t errlen)
{
    const char *t_redirect[] = {"-j", "REDIRECT", "--to-ports", x->tls_port, NULL};
    const char *t_cg[] = {"-j", "SLUICE-TLS-CG", NULL};
    const char *m_docker0[] = {"-i",        "docker0",  "-p",           "tcp", "-m",
                               "multiport", "--dports", cfg->tls_ports, NULL};
    const char *m_bridges[] = {"-i",        "br-+",     "-p",           "tcp", "-m",
                               "multiport", "--dports", cfg->tls_ports, NULL};

    /* The proxy's own connections from containers' namespaces: marked as
     * sluice's, so that the queue hooks leave them alone too. */
    const char *set = strcmp(tool, tools[1]) == 0 ? NFQ_TLS_EXEMPT_SET6 : NFQ_TLS_EXEMPT_SET4;
    const char *m_exempt[] = {"-m", "set", "--match-set", set, "src,src", NULL};
    const char *t_mark_own[] = {"-j", "CONNMARK", "--or-mark", x->own_bits, NULL};

    if (cfg->bridges && strcmp(tool, tools[0]) == 0 && nfq_exempt_sets_create(err, errlen) < 0)
        return -1;
    if (add_rule(tool, "SLUICE-TLS", x->m_own, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-TLS-OUT", x->m_own, x->t_return, err, errlen) < 0)
        return -1;
    if (cfg->bridges && (add_rule(tool, "SLUICE-TLS", m_exempt, t_mark_own, err, errlen) < 0 ||
                         add_rule(tool, "SLUICE-TLS", m_exempt, x->t_return, err, errlen) < 0))
        return -1;
    if (cfg->bridges && (add_rule(tool, "SLUICE-TLS", m_docker0, t_redirect, err, errlen) < 0 ||
                         add_rule(tool, "SLUICE-TLS", m_bridges, t_redirect, err, errlen) < 0))
        return -1;
    if (cfg->host && add_rule(tool, "SLUICE-TLS-OUT", x->m_tcp, t_cg, err, errlen) < 0)
        return -1;
    return 0;
}

/* Containers' UDP to the TLS ports, on the paths where a container sends:
 * the worker drops it and reports the flow (tls.quic: block). Host-network
 * containers' datagrams are recognised by cgroup like their TCP. */
static int install_quic(const char *tool, int p, const struct nfq_hooks_config *cfg,
                        const struct rule_parts *x, char *err, size_t errlen)
{
    static const char *const ifaces[][3] = {{"-i", "docker0", NULL}, {"-i", "br-+", NULL}};
    const char *m_udp[] = {"-p", "udp", "-m", "multiport", "--dports", cfg->quic_ports, NULL};
    const char *m_marked[] = {"-p",       "udp",           "-m", "connmark",
                              "--mark",   x->container,    "-m", "multiport",
                              "--dports", cfg->quic_ports, NULL};
    const char *t_cgroups[] = {"-j", "SLUICE-CG", NULL};
    const char *chain = p == NFQ_PATH_FORWARD ? "SLUICE-FWD" : "SLUICE-BR-IN";

    switch (p) {
    case NFQ_PATH_FORWARD:
    case NFQ_PATH_TO_HOST:
        for (size_t i = 0; i < sizeof(ifaces) / sizeof(ifaces[0]); i++)
            if (add_rule_on(tool, chain, ifaces[i], m_udp, x->queue, err, errlen) < 0)
                return -1;
        return 0;
    case NFQ_PATH_HOSTNET:
        if (add_rule(tool, "SLUICE-OUT", m_udp, t_cgroups, err, errlen) < 0 ||
            add_rule(tool, "SLUICE-OUT", m_marked, x->queue, err, errlen) < 0)
            return -1;
        return 0;
    default:
        return 0;
    }
}

/* Forwarded bridge traffic. SLUICE-FWD-BR is filled whatever FORWARD holds
 * now, so that nfq_hooks_check can jump to it when DOCKER-USER's jump goes.
 * DOCKER-USER is made when missing: Docker keeps what it finds in it when it
 * starts, so the jump there is ready for a Docker that comes later. */
static int install_forward(size_t t, const struct nfq_hooks_config *cfg, const struct rule_parts *x,
                           char *err, size_t errlen)
{
    const char *tool = tools[t];
    static const char *const ifaces[][3] = {{"-i", "docker0", NULL},
                                            {"-i", "br-+", NULL},
                                            {"-o", "docker0", NULL},
                                            {"-o", "br-+", NULL}};
    const char *t_fwd[] = {"-j", "SLUICE-FWD", NULL};

    const char *m_own_conn[] = {"-m", "connmark", "--mark", x->own, NULL};

    if (add_rule(tool, "SLUICE-FWD", x->m_own, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-FWD", m_own_conn, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-FWD", x->m_decided, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-FWD", x->m_queued, x->queue, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(ifaces) / sizeof(ifaces[0]); i++)
        if (add_rule_on(tool, "SLUICE-FWD-BR", ifaces[i], NULL, t_fwd, err, errlen) < 0)
            return -1;
    const char *has_user[] = {"-S", "DOCKER-USER", NULL};
    const char *new_user[] = {"-N", "DOCKER-USER", NULL};
    if (run(tool, has_user, NULL, 0) != 0 && run(tool, new_user, err, errlen) != 0)
        return -1;
    const char *jumps_user[] = {"-C", "FORWARD", "-j", "DOCKER-USER", NULL};
    int direct = run(tool, jumps_user, NULL, 0) != 0;
    pthread_mutex_lock(&state.lock);
    state.forward_direct[t] = direct;
    pthread_mutex_unlock(&state.lock);
    return 0;
}

/* Bridged containers and the host (dir "-i": packets coming in from a
 * bridge, "-o": packets going out to one). Connections redirected to the
 * TLS proxy are its to inspect. */
static int install_bridge_host(const char *tool, const char *chain, const char *dir,
                               const struct nfq_hooks_config *cfg, const struct rule_parts *x,
                               char *err, size_t errlen)
{
    const char *docker0[] = {dir, "docker0", NULL};
    const char *bridges[] = {dir, "br-+", NULL};
    const char *m_proxy[] = {"-p", "tcp", dir[1] == 'i' ? "--dport" : "--sport", x->tls_port, NULL};
    /* sluice's own connections to containers (the TLS proxy's upstream
     * ones: the proxy inspects their plaintext) carry NFQ_MARK_OWN on the
     * way out; the connection keeps it, so their answers coming in are
     * left alone too. */
    const char *m_own_conn[] = {"-m", "connmark", "--mark", x->own, NULL};
    const char *t_own_conn[] = {"-j", "CONNMARK", "--or-mark", x->own_bits, NULL};

    if (dir[1] == 'o' && add_rule(tool, chain, x->m_own, t_own_conn, err, errlen) < 0)
        return -1;
    if (add_rule(tool, chain, x->m_own, x->t_return, err, errlen) < 0 ||
        add_rule(tool, chain, m_own_conn, x->t_return, err, errlen) < 0 ||
        add_rule(tool, chain, x->m_decided, x->t_return, err, errlen) < 0)
        return -1;
    if (cfg->tls_port && add_rule(tool, chain, m_proxy, x->t_return, err, errlen) < 0)
        return -1;
    if (add_rule_on(tool, chain, docker0, x->m_queued, x->queue, err, errlen) < 0 ||
        add_rule_on(tool, chain, bridges, x->m_queued, x->queue, err, errlen) < 0)
        return -1;
    /* The host to one of its own addresses, sent on by DNAT (a published
     * port, without docker-proxy): OUTPUT's -o is the device of the route
     * before NAT, lo, while the packet goes to a bridge. */
    const char *dnat[] = {"-o", "lo",       "-m", "conntrack",  "--ctstate", "DNAT",
                          "-m", "addrtype", "!",  "--dst-type", "LOCAL",     NULL};
    if (dir[1] == 'o' && add_rule_on(tool, chain, dnat, x->m_queued, x->queue, err, errlen) < 0)
        return -1;
    return 0;
}

/* Host-network containers: their connections are marked by cgroup on the
 * way out (SLUICE-CG) and queued both ways by that mark. */
static int install_hostnet(const char *tool, const struct nfq_hooks_config *cfg,
                           const struct rule_parts *x, char *err, size_t errlen)
{
    const char *m_lo[] = {"-i", "lo", NULL};
    const char *t_cgroups[] = {"-j", "SLUICE-CG", NULL};
    const char *m_marked[] = {"-p", "tcp",       "-m",      "connmark", "--mark", x->container,
                              "-m", "multiport", "--ports", cfg->ports, NULL};
    if (cfg->ports == NULL)
        m_marked[6] = NULL; /* every port */

    if (add_rule(tool, "SLUICE-OUT", x->m_own, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-OUT", x->m_decided, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-OUT", x->m_tcp, t_cgroups, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-OUT", m_marked, x->queue, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-IN", m_lo, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-IN", x->m_decided, x->t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-IN", m_marked, x->queue, err, errlen) < 0)
        return -1;
    return 0;
}

static int jump_insert(const char *tool, const struct hook_table *h, char *err, size_t errlen)
{
    const char *jump[] = {"-t", h->table, "-I", h->builtin, "1", "-j", h->chain, NULL};
    char why[400];
    if (run(tool, jump, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s -I %s: %.300s", tool, h->builtin, why);
        return -1;
    }
    return 0;
}

static int path_enabled(int p, const struct nfq_hooks_config *cfg, const char **off)
{
    switch (p) {
    case NFQ_PATH_HOSTNET:
        *off = "off in the policy (inline.host: false)";
        return cfg->host;
    case NFQ_PATH_TLS:
        *off = "off in the policy (tls.intercept: false)";
        return cfg->tls_port != 0;
    default:
        *off = "off in the policy (inline.bridges: false)";
        return cfg->bridges;
    }
}

/* Where a path's packets are queued, in words (for the log and status). */
static void path_hook_text(int p, size_t t, char *out, size_t len)
{
    static const char *const text[NFQ_PATHS] = {
        "DOCKER-USER",
        "INPUT -i docker0, br-+",
        "OUTPUT -o docker0, br-+; -o lo after DNAT",
        "OUTPUT, INPUT by cgroup",
        "nat PREROUTING -i docker0, br-+; nat OUTPUT by cgroup",
    };
    if (p == NFQ_PATH_FORWARD && state.forward_direct[t])
        snprintf(out, len, "FORWARD -i/-o docker0, br-+ (FORWARD does not jump to DOCKER-USER)");
    else
        snprintf(out, len, "%s", text[p]);
}

static int path_install(size_t t, int p, const struct nfq_hooks_config *cfg,
                        const struct rule_parts *x, char *err, size_t errlen)
{
    const char *tool = tools[t];
    int rc;

    switch (p) {
    case NFQ_PATH_FORWARD:
        rc = install_forward(t, cfg, x, err, errlen);
        break;
    case NFQ_PATH_TO_HOST:
        rc = install_bridge_host(tool, "SLUICE-BR-IN", "-i", cfg, x, err, errlen);
        break;
    case NFQ_PATH_FROM_HOST:
        rc = install_bridge_host(tool, "SLUICE-BR-OUT", "-o", cfg, x, err, errlen);
        break;
    case NFQ_PATH_HOSTNET:
        rc = install_hostnet(tool, cfg, x, err, errlen);
        break;
    default:
        rc = install_tls(tool, cfg, x, err, errlen);
        break;
    }
    if (rc == 0 && cfg->quic_ports)
        rc = install_quic(tool, p, cfg, x, err, errlen);
    for (size_t i = 0; rc == 0 && i < NHOOKS; i++)
        if (hooks[i].path == p && hook_on(&hooks[i], cfg, t))
            rc = jump_insert(tool, &hooks[i], err, errlen);
    return rc;
}

/* A path that failed half-way: its jumps and rules go, its chains stay
 * (empty) until nfq_hooks_remove. */
static void path_unhook(size_t t, int p)
{
    for (size_t i = 0; i < NHOOKS; i++)
        if (hooks[i].path == p)
            jump_delete(tools[t], &hooks[i]);
    for (size_t i = 0; i < NHOOKS; i++)
        if (hooks[i].path == p)
            chain_flush(tools[t], &hooks[i]);
    for (size_t i = 0; i < NINNER; i++)
        if (inner[i].path == p)
            chain_flush(tools[t], &inner[i]);
}

static void path_record(size_t t, int p, int inspected, const char *why)
{
    pthread_mutex_lock(&state.lock);
    struct nfq_hook_path *hp = &state.paths[t][p];
    hp->name = path_names[p];
    hp->family = t == 0 ? 4 : 6;
    hp->inspected = inspected;
    path_hook_text(p, t, hp->hook, sizeof(hp->hook));
    snprintf(hp->why, sizeof(hp->why), "%s", inspected ? "" : why);
    pthread_mutex_unlock(&state.lock);
}

/* The chains and what every path needs; -1 when nothing of this family can
 * be hooked (no such tool, no mangle table...). */
static int install_common(const char *tool, const struct nfq_hooks_config *cfg,
                          const struct rule_parts *x, char *err, size_t errlen)
{
    const char *t_save[] = {"-j",       "CONNMARK",      "--save-mark", "--nfmask", x->decided_bits,
                            "--ctmask", x->decided_bits, NULL};

    for (size_t i = 0; i < NHOOKS; i++) {
        const char *create[] = {"-t", hooks[i].table, "-N", hooks[i].chain, NULL};
        if (run(tool, create, err, errlen) != 0)
            return -1;
    }
    for (size_t i = 0; i < NINNER; i++) {
        const char *create[] = {"-t", inner[i].table, "-N", inner[i].chain, NULL};
        if (hook_on(&inner[i], cfg, 0) && run(tool, create, err, errlen) != 0)
            return -1;
    }
    if (add_rule(tool, "SLUICE-POST", x->m_decided_pkt, t_save, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < NHOOKS; i++)
        if (hooks[i].path == PATH_ALL && jump_insert(tool, &hooks[i], err, errlen) < 0)
            return -1;
    return 0;
}

/* Installs one family's paths; returns how many could not be hooked, or -1
 * (with err) when IPv4 lacks one, or none of the family could be made. */
static int install_family(size_t t, const struct nfq_hooks_config *cfg, char *err, size_t errlen)
{
    struct rule_parts x;
    char why[400];
    const char *off;
    int failed = 0;

    parts_init(&x, cfg);
    pthread_mutex_lock(&state.lock);
    state.forward_direct[t] = 0;
    pthread_mutex_unlock(&state.lock);
    if (install_common(tools[t], cfg, &x, why, sizeof(why)) < 0) {
        for (int p = 0; p < NFQ_PATHS; p++)
            path_record(t, p, 0, path_enabled(p, cfg, &off) ? why : off);
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    for (int p = 0; p < NFQ_PATHS; p++) {
        if (!path_enabled(p, cfg, &off)) {
            path_record(t, p, 0, off);
            continue;
        }
        if (path_install(t, p, cfg, &x, why, sizeof(why)) == 0) {
            path_record(t, p, 1, NULL);
            continue;
        }
        path_unhook(t, p);
        path_record(t, p, 0, why);
        if (failed++ == 0)
            snprintf(err, errlen, "%s: %.360s", path_names[p], why);
        if (t == 0)
            return -1;
    }
    pthread_mutex_lock(&state.lock);
    state.installed[t] = 1;
    pthread_mutex_unlock(&state.lock);
    return failed;
}

int nfq_hooks_install(const struct nfq_hooks_config *cfg, char *err, size_t errlen)
{
    char why[512];

    nfq_hooks_remove();
    snprintf(tls_ports_now, sizeof(tls_ports_now), "%s",
             cfg->tls_port && cfg->tls_ports ? cfg->tls_ports : "");
    snprintf(tls_port_now, sizeof(tls_port_now), "%u", cfg->tls_port);
    if (install_family(0, cfg, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "installing the iptables rules: %s", why);
        nfq_hooks_remove();
        return -1;
    }
    /* IPv6 is optional on a Docker host: without ip6tables (or one of its
     * matches) sluice still inspects what it can, and says what it cannot. */
    int failed = install_family(1, cfg, why, sizeof(why));
    if (failed < 0) {
        remove_family("ip6tables");
        snprintf(err, errlen, "ip6tables: %s (IPv6 is not inspected)", why);
        return 1;
    }
    if (failed > 0) {
        snprintf(err, errlen, "ip6tables: %s (not inspected over IPv6)", why);
        return 1;
    }
    return 0;
}

/* FORWARD without a jump to DOCKER-USER (Docker gone, an operator, a
 * firewall reload): sluice jumps from FORWARD itself. Returns 1 if it did. */
static int forward_recheck(size_t t, const struct nfq_hooks_config *cfg)
{
    const struct hook_table *fwd = NULL;
    for (size_t i = 0; i < NHOOKS; i++)
        if (hooks[i].when == HOOK_FORWARD)
            fwd = &hooks[i];
    if (!cfg->bridges || !state.paths[t][NFQ_PATH_FORWARD].inspected || state.forward_direct[t])
        return 0;
    const char *jumps_user[] = {"-C", "FORWARD", "-j", "DOCKER-USER", NULL};
    if (run(tools[t], jumps_user, NULL, 0) == 0)
        return 0;
    char why[400];
    pthread_mutex_lock(&state.lock);
    state.forward_direct[t] = 1;
    pthread_mutex_unlock(&state.lock);
    if (jump_insert(tools[t], fwd, why, sizeof(why)) < 0) {
        path_record(t, NFQ_PATH_FORWARD, 0, why);
        return 0;
    }
    path_record(t, NFQ_PATH_FORWARD, 1, NULL);
    return 1;
}

int nfq_hooks_check(const struct nfq_hooks_config *cfg)
{
    int restored = 0;

    for (size_t t = 0; t < 2; t++) {
        if (!state.installed[t])
            continue;
        restored += forward_recheck(t, cfg);
        for (size_t i = 0; i < NHOOKS; i++) {
            if (!hook_on(&hooks[i], cfg, t))
                continue;
            if (hooks[i].path != PATH_ALL && !state.paths[t][hooks[i].path].inspected)
                continue; /* never hooked: said at install */
            const char *has[] = {"-t", hooks[i].table, "-C", hooks[i].builtin,
                                 "-j", hooks[i].chain, NULL};
            const char *chain[] = {"-t", hooks[i].table, "-S", hooks[i].chain, NULL};
            if (run(tools[t], has, NULL, 0) == 0 || run(tools[t], chain, NULL, 0) != 0)
                continue; /* in place, or its chain is gone too */
            if (jump_insert(tools[t], &hooks[i], NULL, 0) == 0)
                restored++;
        }
    }
    return restored;
}

size_t nfq_hooks_paths(struct nfq_hook_path *out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&state.lock);
    for (size_t t = 0; t < 2; t++)
        for (size_t p = 0; p < NFQ_PATHS && n < max; p++)
            if (state.paths[t][p].name)
                out[n++] = state.paths[t][p];
    pthread_mutex_unlock(&state.lock);
    return n;
}

/* The cgroups whose sockets are containers' (SLUICE-CG): one rule each,
 * marking the connection so that both directions are queued. */

int nfq_hooks_cgroups(const char *const *paths, size_t n)
{
    char want[sizeof(cgroups_now)] = "", bits[16];
    size_t len = 0;
    int added = 0;

    for (size_t i = 0; i < n && len < sizeof(want); i++)
        len += (size_t)snprintf(want + len, sizeof(want) - len, "%s\n", paths[i]);
    if (strcmp(want, cgroups_now) == 0)
        return 0;
    snprintf(bits, sizeof(bits), "0x%x", NFQ_MARK_CONTAINER);
    for (size_t t = 0; t < 2; t++) {
        const char *flush[] = {"-F", "SLUICE-CG", NULL};
        if (run(tools[t], flush, NULL, 0) != 0)
            continue; /* not installed for this family */
        const char *flush_tls[] = {"-t", "nat", "-F", "SLUICE-TLS-CG", NULL};
        int tls = tls_ports_now[0] && run(tools[t], flush_tls, NULL, 0) == 0;
        for (size_t i = 0; i < n; i++) {
            const char *rule[] = {"-A", "SLUICE-CG", "-m",        "cgroup", "--path", paths[i],
                                  "-j", "CONNMARK",  "--or-mark", bits,     NULL};
            /* A container gone since it was listed: its rule cannot be made. */
            if (run(tools[t], rule, NULL, 0) == 0 && t == 0)
                added++;
            const char *redirect[] = {"-t",         "nat",         "-A", "SLUICE-TLS-CG",
                                      "-p",         "tcp",         "-m", "cgroup",
                                      "--path",     paths[i],      "-m", "multiport",
                                      "--dports",   tls_ports_now, "-j", "REDIRECT",
                                      "--to-ports", tls_port_now,  NULL};
            if (tls)
                run(tools[t], redirect, NULL, 0);
        }
    }
    snprintf(cgroups_now, sizeof(cgroups_now), "%s", want);
    return added;
}
