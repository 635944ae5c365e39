/*
 * Network isolation of a compromised container.
 *
 * What isolation means depends on how the container is attached:
 *
 *   bridge   no traffic with the other containers of that bridge, either
 *            direction, any protocol; the outside and the host still work
 *            (mangle chain SLUICE-ISO, jumped to first from FORWARD, which
 *            bridged frames cross through br_netfilter);
 *   overlay  the containers of that overlay lose the host: packets from
 *            their docker_gwbridge addresses to the host are dropped
 *            (mangle SLUICE-ISO-IN, first in INPUT); the compromised
 *            container also loses its overlay peers (filter SLUICE-ISO-IN
 *            and -OUT in its own network namespace, since overlay traffic
 *            never crosses the host's tables);
 *   host     the container's sockets (by cgroup) send nothing except to the
 *            allowed destinations (mangle SLUICE-ISO-OUT, first in OUTPUT).
 *
 * mangle, not filter: its hooks run before filter's, where NFQUEUE rules
 * (sluice's inspection among them) accept packets for good.
 *
 * The host's three chains are rebuilt whole, atomically, with
 * iptables-restore --noflush from the targets known now, so applying twice
 * never duplicates a rule and releasing removes exactly one container's
 * rules (each carries the comment "sluice-iso <id12>"). Nothing outside
 * chains named SLUICE-ISO* is touched but the three jumps. doc/isolation.md
 * says why each enforcement point was chosen.
 *
 * The set of isolated containers (ID, name, reason, time) is kept in a
 * state file, written atomically; it is keyed by container ID, so a
 * restarted container is isolated again and a new container that reuses
 * the name is not.
 */
#ifndef SL_ISOLATE_H
#define SL_ISOLATE_H

#include <stddef.h>
#include <stdint.h>

#include "jsonp.h"

#define SL_ISO_STATE_FILE LOCALSTATEDIR "/lib/sluice/isolated.json"

#define SL_ISO_MAX_NETS  8
#define SL_ISO_MAX_PEERS 64

/* One network the container is attached to. Addresses without prefix;
 * subnets as CIDR. Empty strings when absent (no IPv6, say). */
struct sl_iso_net {
    char name[128];
    char driver[16]; /* "bridge", "overlay", "host"; others are not isolated */
    char ip[46];
    char subnet[64];
    char ip6[46];
    char subnet6[64];
    char gw_ip[46]; /* overlay: the container's address on docker_gwbridge */
};

struct sl_iso_target {
    char id[65]; /* full ID, lowercase hex */
    char name[128];
    int pid;          /* a process of the container (its network namespace), 0 if none */
    char cgroup[256]; /* cgroup v2 path ("/docker/<id>"), for host mode */
    struct sl_iso_net nets[SL_ISO_MAX_NETS];
    size_t nnets;
    /* The docker_gwbridge addresses of every other container attached to
     * one of this container's overlay networks. */
    char overlay_peers_gw[SL_ISO_MAX_PEERS][46];
    size_t npeers;
};

/* --- rules (pure: no I/O, unit-tested) --------------------------------------- */

#define SL_ISO_MAX_RULES 256

struct sl_iso_rule {
    int family; /* 4: iptables, 6: ip6tables */
    int netns;  /* 1: in the container's own network namespace (filter table);
                   0: the host's (mangle table) */
    size_t argc;
    char args[640]; /* argc NUL-terminated arguments, one after another */
};

/* The rules isolating t, as arguments of iptables after "-w" ("-A CHAIN
 * match... -m comment --comment "sluice-iso <id12>" -j TARGET", the table
 * is said by netns). allow: the
 * destinations a host-network container keeps ("CIDR" or "CIDR:port",
 * IPv6 as "[CIDR]:port"). Returns the number of rules (at most max), or -1
 * with the reason in err for a malformed target or allow entry. */
int sl_iso_rules(const struct sl_iso_target *t, const char *const *allow, size_t nallow,
                 struct sl_iso_rule *out, size_t max, char *err, size_t errlen);
/* argv[0..argc) of r and a NULL after them; returns argc. */
size_t sl_iso_rule_argv(const struct sl_iso_rule *r, const char **argv, size_t max);
/* The rule as one iptables-restore line (arguments with spaces quoted). */
int sl_iso_rule_line(const struct sl_iso_rule *r, char *out, size_t outlen);

/* Fills t from Docker Engine API replies: container is GET
 * /containers/{id}/json of a running container; networks the GET
 * /networks/{id} replies of the networks it is attached to (for their
 * drivers and, for overlays, their other containers); gwbridge GET
 * /networks/docker_gwbridge, NULL if there is none. A network missing from
 * networks is taken for a bridge. The cgroup is left empty: sl_isolate reads
 * it from /proc when it needs it. 0, or -1 with the reason in err. */
int sl_iso_target_from_docker(struct sl_iso_target *t, const struct jsonp_value *container,
                              const struct jsonp_value *const *networks, size_t nnetworks,
                              const struct jsonp_value *gwbridge, char *err, size_t errlen);

/* --- the state file --------------------------------------------------------- */

struct sl_iso_entry {
    char id[65];
    char name[128];
    char reason[256];
    int64_t since; /* seconds since the epoch */
};

struct sl_iso_state {
    struct sl_iso_entry *v;
    size_t n, cap;
};

/* A missing file is an empty state. A file that is not a valid state is
 * refused (-1, "FILE: why" in err) and left as it is. */
int sl_iso_state_load(const char *path, struct sl_iso_state *s, char *err, size_t errlen);
/* Temporary file, fsync, rename, fsync of the directory (made if missing). */
int sl_iso_state_save(const char *path, const struct sl_iso_state *s, char *err, size_t errlen);
struct sl_iso_entry *sl_iso_state_find(const struct sl_iso_state *s, const char *id);
/* Adds or updates (name, reason and time kept when reason is NULL). 0 or -1 (memory). */
int sl_iso_state_put(struct sl_iso_state *s, const char *id, const char *name, const char *reason,
                     int64_t since);
/* 1 if id was there and is gone, 0 if it was not there. */
int sl_iso_state_remove(struct sl_iso_state *s, const char *id);
void sl_iso_state_free(struct sl_iso_state *s);

/* --- isolation ---------------------------------------------------------------
 *
 * One isolation state per process (like the hooks of nfq/), guarded by a
 * lock: every call below is safe from any thread. */

/* Loads the state file (path NULL: SL_ISO_STATE_FILE) and keeps the allowed
 * destinations of host-network containers. -1 with the reason in err when
 * the file is unreadable or corrupt: it is never replaced behind the
 * operator's back. Installs nothing: sl_isolate_reapply does, once the
 * running containers are known. */
int sl_iso_init(const char *path, const char *const *allow, size_t nallow, char *err,
                size_t errlen);
/* Forgets the state in memory (the rules stay: sl_isolate_remove_all_rules). */
void sl_iso_shutdown(void);
/* New allowed destinations (a policy reload); the rules follow at once. */
int sl_iso_set_allow(const char *const *allow, size_t nallow, char *err, size_t errlen);

/* Isolates t (a running container, with its addresses now) for reason:
 * installs the rules, then records it in the state file. Isolating an
 * isolated container again refreshes its rules (reason NULL keeps the
 * recorded one). 0; 1 when enforced but something is not covered or not
 * saved (said in err: a macvlan network, a full disk); -1 when nothing
 * changed. */
int sl_isolate(const struct sl_iso_target *t, const char *reason, char *err, size_t errlen);
/* Releases the container with this full ID: its rules and its state entry
 * go. 0, or -1 (not isolated, or the rules could not be removed). */
int sl_release(const char *id, char *err, size_t errlen);
/* 1 if the container with this full ID is isolated (running or not). */
int sl_isolated(const char *id);
/* The isolated containers, at most max of them; returns how many there are. */
size_t sl_iso_list(struct sl_iso_entry *out, size_t max);

/* targets: the isolated containers that run now, with their addresses now.
 * Call it at sluiced's start and whenever an isolated container starts,
 * stops or is connected or disconnected, or an overlay it is on gains or
 * loses a member. Isolated containers not among targets keep their state
 * entry and lose their rules (their old addresses may go to someone else);
 * targets not isolated are ignored. Rebuilds the chains in one transaction.
 * 0 or -1. */
int sl_isolate_reapply(const struct sl_iso_target *targets, size_t n, char *err, size_t errlen);
/* Puts the jumps back first in their hooks (someone flushed a mangle
 * chain or put a rule in front) and the chains if they are gone. Returns
 * how many it restored. Cheap: call it periodically. */
int sl_isolate_check(void);

/* At sluiced exit: the SLUICE-ISO* chains and their jumps go, on the host
 * and in isolated containers; the state file stays, so the next start's
 * sl_isolate_reapply puts everything back. */
void sl_isolate_remove_all_rules(void);

#endif
