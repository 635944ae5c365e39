/*
 * The rules that send container traffic to sluice's queues.
 *
 * Everything lives in sluice's own chains of the filter table; the only
 * rules added elsewhere are the jumps to them, one per hook:
 *
 *   DOCKER-USER -> SLUICE-FWD   bridged container traffic (every bridge)
 *   OUTPUT      -> SLUICE-OUT   sockets of host-network containers (by cgroup)
 *   INPUT       -> SLUICE-IN    the same connections, packets coming in
 *   POSTROUTING -> SLUICE-POST  (mangle) a decision in a packet's mark is
 *                               saved into its connection's mark
 *
 * Each chain first lets through what needs no inspection: packets sluice
 * sent itself (resets) and connections already decided (conntrack mark), so
 * bulk traffic leaves the queue. A host-network container's connection is
 * recognised on its way out by the socket's cgroup and marked, so its
 * incoming packets (which carry no socket yet) are queued too; loopback
 * packets are seen once, on the way out.
 *
 * Install removes what an earlier run left (a crash skips the cleanup), so
 * starting twice never duplicates a rule. Commands go through iptables and
 * ip6tables (the nft backend on current distributions) with -w, so they wait
 * for Docker's own rule changes instead of failing.
 */
#include "nfq.h"

#include <errno.h>
#include <fcntl.h>
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

enum hook_when { HOOK_ALWAYS, HOOK_BRIDGES, HOOK_HOST, HOOK_TLS };

struct hook_table {
    const char *table;
    const char *builtin; /* chain the jump goes into */
    const char *chain;   /* sluice's chain */
    enum hook_when when;
};

static const struct hook_table hooks[] = {
    {"filter", "DOCKER-USER", "SLUICE-FWD", HOOK_BRIDGES},
    {"filter", "OUTPUT", "SLUICE-OUT", HOOK_HOST},
    {"filter", "INPUT", "SLUICE-IN", HOOK_HOST},
    {"mangle", "POSTROUTING", "SLUICE-POST", HOOK_ALWAYS},
    /* TLS to the proxy: bridged containers on their way in, host-network
     * containers (by cgroup, SLUICE-TLS-CG) on their way out. */
    {"nat", "PREROUTING", "SLUICE-TLS", HOOK_TLS},
    {"nat", "OUTPUT", "SLUICE-TLS-OUT", HOOK_TLS},
};

/* Chains reached only from sluice's own chains. */
static const struct hook_table inner[] = {
    {"filter", NULL, "SLUICE-CG", HOOK_HOST},
    {"nat", NULL, "SLUICE-TLS-CG", HOOK_TLS},
};

static int hook_on(const struct hook_table *h, const struct nfq_hooks_config *cfg)
{
    switch (h->when) {
    case HOOK_BRIDGES:
        return cfg->bridges;
    case HOOK_HOST:
        return cfg->host;
    case HOOK_TLS:
        return cfg->tls_port != 0;
    default:
        return 1;
    }
}

#define NHOOKS (sizeof(hooks) / sizeof(hooks[0]))

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
        snprintf(err, errlen, "%s", msg[0] ? msg : "failed");
    }
    return code;
}

static void remove_family(const char *tool)
{
    for (size_t i = 0; i < NHOOKS; i++) {
        const char *del[] = {"-t", hooks[i].table, "-D", hooks[i].builtin,
                             "-j", hooks[i].chain, NULL};
        /* Once per copy: an older version or a race may have left several. */
        for (int guard = 0; guard < 64 && run(tool, del, NULL, 0) == 0; guard++)
            ;
        const char *flush[] = {"-t", hooks[i].table, "-F", hooks[i].chain, NULL};
        const char *drop[] = {"-t", hooks[i].table, "-X", hooks[i].chain, NULL};
        run(tool, flush, NULL, 0);
        run(tool, drop, NULL, 0);
    }
    for (size_t i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
        const char *flush[] = {"-t", inner[i].table, "-F", inner[i].chain, NULL};
        const char *drop[] = {"-t", inner[i].table, "-X", inner[i].chain, NULL};
        run(tool, flush, NULL, 0);
        run(tool, drop, NULL, 0);
    }
}

void nfq_hooks_remove(void)
{
    cgroups_now[0] = '\0';
    for (size_t t = 0; t < 2; t++)
        remove_family(tools[t]);
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

static int add_rule(const char *tool, const char *chain, const char *const *match,
                    const char *const *target, char *err, size_t errlen)
{
    const char *a[MAX_ARGS];
    int n = 0;

    a[n++] = "-t";
    a[n++] = strcmp(chain, "SLUICE-POST") == 0       ? "mangle"
             : strncmp(chain, "SLUICE-TLS", 10) == 0 ? "nat"
                                                     : "filter";
    a[n++] = "-A";
    a[n++] = chain;
    for (int i = 0; match && match[i]; i++)
        a[n++] = match[i];
    for (int i = 0; target[i]; i++)
        a[n++] = target[i];
    a[n] = NULL;
    char why[400];
    if (run(tool, a, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s -A %s: %s", tool, chain, why);
        return -1;
    }
    return 0;
}

/* Container TLS to the proxy's port: REDIRECT keeps the original
 * destination for the proxy to read (SO_ORIGINAL_DST). The proxy's own
 * connections carry NFQ_MARK_OWN and are never redirected. */
static int install_tls(const char *tool, const struct nfq_hooks_config *cfg, char *err,
                       size_t errlen)
{
    char own[32], port[8];
    snprintf(own, sizeof(own), "0x%x/0x%x", NFQ_MARK_OWN, NFQ_MARK_OWN);
    snprintf(port, sizeof(port), "%u", cfg->tls_port);
    const char *m_own[] = {"-m", "mark", "--mark", own, NULL};
    const char *t_return[] = {"-j", "RETURN", NULL};
    const char *t_redirect[] = {"-j", "REDIRECT", "--to-ports", port, NULL};
    const char *t_cg[] = {"-j", "SLUICE-TLS-CG", NULL};
    const char *m_tcp[] = {"-p", "tcp", NULL};
    const char *m_docker0[] = {"-i",        "docker0",  "-p",           "tcp", "-m",
                               "multiport", "--dports", cfg->tls_ports, NULL};
    const char *m_bridges[] = {"-i",        "br-+",     "-p",           "tcp", "-m",
                               "multiport", "--dports", cfg->tls_ports, NULL};

    if (add_rule(tool, "SLUICE-TLS", m_own, t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-TLS-OUT", m_own, t_return, err, errlen) < 0)
        return -1;
    if (cfg->bridges && (add_rule(tool, "SLUICE-TLS", m_docker0, t_redirect, err, errlen) < 0 ||
                         add_rule(tool, "SLUICE-TLS", m_bridges, t_redirect, err, errlen) < 0))
        return -1;
    if (cfg->host && add_rule(tool, "SLUICE-TLS-OUT", m_tcp, t_cg, err, errlen) < 0)
        return -1;
    return 0;
}

static int install_family(const char *tool, const struct nfq_hooks_config *cfg, char *err,
                          size_t errlen)
{
    char own[32], decided[32], container[32], range[32];
    const char *queue[12];

    snprintf(own, sizeof(own), "0x%x/0x%x", NFQ_MARK_OWN, NFQ_MARK_OWN);
    snprintf(decided, sizeof(decided), "0x%x/0x%x", NFQ_MARK_DECIDED, NFQ_MARK_DECIDED);
    snprintf(container, sizeof(container), "0x%x/0x%x", NFQ_MARK_CONTAINER, NFQ_MARK_CONTAINER);
    queue_args(cfg, queue, range, sizeof(range));

    const char *m_own[] = {"-m", "mark", "--mark", own, NULL};
    const char *m_decided[] = {"-m", "connmark", "--mark", decided, NULL};
    const char *m_tcp[] = {"-p", "tcp", NULL};
    const char *m_ports[] = {"-p", "tcp", "-m", "multiport", "--ports", cfg->ports, NULL};
    const char *const *m_queued = cfg->ports ? m_ports : m_tcp;
    const char *m_lo[] = {"-i", "lo", NULL};
    const char *t_cgroups[] = {"-j", "SLUICE-CG", NULL};
    const char *m_marked[] = {"-p", "tcp",       "-m",      "connmark", "--mark", container,
                              "-m", "multiport", "--ports", cfg->ports, NULL};
    if (cfg->ports == NULL)
        m_marked[6] = NULL; /* every port */
    const char *t_return[] = {"-j", "RETURN", NULL};
    char decided_bits[16];
    snprintf(decided_bits, sizeof(decided_bits), "0x%x", NFQ_MARK_DECIDED);
    const char *m_decided_pkt[] = {"-m", "mark", "--mark", decided, NULL};
    const char *t_save[] = {"-j",         "CONNMARK", "--save-mark", "--nfmask",
                            decided_bits, "--ctmask", decided_bits,  NULL};

    for (size_t i = 0; i < NHOOKS; i++) {
        const char *create[] = {"-t", hooks[i].table, "-N", hooks[i].chain, NULL};
        if (run(tool, create, err, errlen) != 0)
            return -1;
    }
    for (size_t i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
        const char *create[] = {"-t", inner[i].table, "-N", inner[i].chain, NULL};
        if (hook_on(&inner[i], cfg) && run(tool, create, err, errlen) != 0)
            return -1;
    }
    if (cfg->tls_port && install_tls(tool, cfg, err, errlen) < 0)
        return -1;
    if (add_rule(tool, "SLUICE-FWD", m_own, t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-FWD", m_decided, t_return, err, errlen) < 0 ||
        add_rule(tool, "SLUICE-FWD", m_queued, queue, err, errlen) < 0)
        return -1;
    if (add_rule(tool, "SLUICE-POST", m_decided_pkt, t_save, err, errlen) < 0)
        return -1;
    if (cfg->host && (add_rule(tool, "SLUICE-OUT", m_own, t_return, err, errlen) < 0 ||
                      add_rule(tool, "SLUICE-OUT", m_decided, t_return, err, errlen) < 0 ||
                      add_rule(tool, "SLUICE-OUT", m_tcp, t_cgroups, err, errlen) < 0 ||
                      add_rule(tool, "SLUICE-OUT", m_marked, queue, err, errlen) < 0 ||
                      add_rule(tool, "SLUICE-IN", m_lo, t_return, err, errlen) < 0 ||
                      add_rule(tool, "SLUICE-IN", m_decided, t_return, err, errlen) < 0 ||
                      add_rule(tool, "SLUICE-IN", m_marked, queue, err, errlen) < 0))
        return -1;

    /* Docker creates DOCKER-USER when it starts and keeps what it finds in
     * it; made here, it is ready for Docker's jump from FORWARD. */
    const char *has_user[] = {"-S", "DOCKER-USER", NULL};
    const char *new_user[] = {"-N", "DOCKER-USER", NULL};
    if (cfg->bridges && run(tool, has_user, NULL, 0) != 0 && run(tool, new_user, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < NHOOKS; i++) {
        if (!hook_on(&hooks[i], cfg))
            continue;
        const char *jump[] = {"-t", hooks[i].table, "-I",           hooks[i].builtin,
                              "1",  "-j",           hooks[i].chain, NULL};
        char why[400];
        if (run(tool, jump, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s -I %s: %s", tool, hooks[i].builtin, why);
            return -1;
        }
    }
    return 0;
}

int nfq_hooks_install(const struct nfq_hooks_config *cfg, char *err, size_t errlen)
{
    char why[512];

    nfq_hooks_remove();
    snprintf(tls_ports_now, sizeof(tls_ports_now), "%s",
             cfg->tls_port && cfg->tls_ports ? cfg->tls_ports : "");
    snprintf(tls_port_now, sizeof(tls_port_now), "%u", cfg->tls_port);
    if (install_family("iptables", cfg, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "installing the iptables rules: %s", why);
        nfq_hooks_remove();
        return -1;
    }
    /* IPv6 is optional on a Docker host: without ip6tables (or its cgroup
     * match) sluice still inspects IPv4. */
    if (install_family("ip6tables", cfg, why, sizeof(why)) < 0) {
        remove_family("ip6tables");
        snprintf(err, errlen, "ip6tables: %s (IPv6 is not inspected)", why);
        return 1;
    }
    return 0;
}

int nfq_hooks_check(const struct nfq_hooks_config *cfg)
{
    int restored = 0;

    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < NHOOKS; i++) {
            if (!hook_on(&hooks[i], cfg))
                continue;
            const char *has[] = {"-t", hooks[i].table, "-C", hooks[i].builtin,
                                 "-j", hooks[i].chain, NULL};
            const char *chain[] = {"-t", hooks[i].table, "-S", hooks[i].chain, NULL};
            if (run(tools[t], has, NULL, 0) == 0 || run(tools[t], chain, NULL, 0) != 0)
                continue; /* in place, or this family was never installed */
            const char *jump[] = {"-t", hooks[i].table, "-I",           hooks[i].builtin,
                                  "1",  "-j",           hooks[i].chain, NULL};
            if (run(tools[t], jump, NULL, 0) == 0)
                restored++;
        }
    }
    return restored;
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
