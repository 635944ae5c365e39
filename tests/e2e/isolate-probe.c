/*
 * Test-only driver of the isolation module, for tests/e2e/check-isolate.
 * Each run is what sluiced does at start (sl_iso_open, then
 * sl_isolate_reapply with every isolated container that runs, described by
 * `docker inspect`), followed by one command:
 *
 *   isolate ID [REASON]   sl_isolate
 *   release ID            sl_release
 *   reapply               nothing more (the start itself)
 *   check                 prints "ready", waits for a line on stdin (the test
 *                         breaks something meanwhile), then sl_isolate_check and
 *                         prints how many things it restored
 *   remove-all            sl_isolate_remove_all_rules (the state stays)
 *   list                  the state, one "ID NAME" line each
 *   rules ID              the rules sl_iso_rules makes for the container, not applied
 *
 * Usage: isolate-probe -s STATE [-a ALLOWED]... COMMAND [ARGS]
 * Exit status: 0, 1 on a failure (reason on stderr), 2 on bad usage.
 */
#include "isolate.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ALLOW 16

/* The output of `docker ARGS` parsed; for inspect, the first element. */
static struct jsonp_doc *docker_json(const char *args, const struct jsonp_value **v)
{
    char cmd[512], err[256];
    static char buf[1 << 20];
    size_t len = 0, got;

    snprintf(cmd, sizeof(cmd), "docker %s 2>/dev/null", args);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return NULL;
    while ((got = fread(buf + len, 1, sizeof(buf) - 1 - len, p)) > 0)
        len += got;
    if (pclose(p) != 0 || len == 0)
        return NULL;
    struct jsonp_doc *d = jsonp_parse(buf, len, err, sizeof(err));
    if (d == NULL) {
        fprintf(stderr, "docker %s: %s\n", args, err);
        return NULL;
    }
    *v = jsonp_root(d);
    if ((*v)->type == JSONP_ARRAY)
        *v = (*v)->child;
    if (*v == NULL) {
        jsonp_free(d);
        return NULL;
    }
    return d;
}

/* 1 and t filled when the container runs, 0 when it does not, -1 on error. */
static int target_of(const char *id, struct sl_iso_target *t)
{
    const struct jsonp_value *c, *nets[SL_ISO_MAX_NETS], *gw = NULL;
    struct jsonp_doc *docs[SL_ISO_MAX_NETS], *gwdoc, *cdoc;
    char args[256], err[256];
    size_t n = 0;

    snprintf(args, sizeof(args), "inspect --type container %s", id);
    if ((cdoc = docker_json(args, &c)) == NULL)
        return 0;
    const struct jsonp_value *running = jsonp_path(c, "State.Running");
    if (running == NULL || running->type != JSONP_BOOL || !running->boolean) {
        jsonp_free(cdoc);
        return 0;
    }
    const struct jsonp_value *list = jsonp_path(c, "NetworkSettings.Networks");
    for (const struct jsonp_value *v = list ? list->child : NULL; v && n < SL_ISO_MAX_NETS;
         v = v->next) {
        snprintf(args, sizeof(args), "network inspect %s",
                 jsonp_str(jsonp_get(v, "NetworkID"), "-"));
        if ((docs[n] = docker_json(args, &nets[n])) != NULL)
            n++;
    }
    gwdoc = docker_json("network inspect docker_gwbridge", &gw);
    int rc = sl_iso_target_from_docker(t, c, nets, n, gwdoc ? gw : NULL, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", id, err);
    for (size_t i = 0; i < n; i++)
        jsonp_free(docs[i]);
    jsonp_free(gwdoc);
    jsonp_free(cdoc);
    return rc < 0 ? -1 : 1;
}

static int reapply(void)
{
    struct sl_iso_entry entries[64];
    static struct sl_iso_target targets[64];
    size_t n = sl_iso_list(entries, 64), nt = 0;
    char err[512];

    for (size_t i = 0; i < n && i < 64; i++)
        if (target_of(entries[i].id, &targets[nt]) == 1)
            nt++;
    if (sl_isolate_reapply(targets, nt, err, sizeof(err)) < 0) {
        fprintf(stderr, "reapply: %s\n", err);
        return -1;
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: isolate-probe -s STATE [-a ALLOWED]... "
                    "isolate ID [REASON] | release ID | reapply | check | remove-all | list | "
                    "rules ID\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *state = NULL, *allow[MAX_ALLOW];
    size_t nallow = 0;
    char err[1024];
    int c;

    log_init("isolate-probe", LOG_LEVEL_WARN, 0);
    while ((c = getopt(argc, argv, "s:a:")) != -1) {
        if (c == 's')
            state = optarg;
        else if (c == 'a' && nallow < MAX_ALLOW)
            allow[nallow++] = optarg;
        else
            return usage();
    }
    if (optind >= argc || state == NULL)
        return usage();
    const char *cmd = argv[optind], *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    static struct sl_iso_target t;

    if (strcmp(cmd, "rules") == 0) {
        static struct sl_iso_rule rules[SL_ISO_MAX_RULES];
        if (arg == NULL)
            return usage();
        if (target_of(arg, &t) != 1) {
            fprintf(stderr, "%s: not running\n", arg);
            return 1;
        }
        int n = sl_iso_rules(&t, allow, nallow, rules, SL_ISO_MAX_RULES, err, sizeof(err));
        for (int i = 0; i < n; i++) {
            char line[1024];
            sl_iso_rule_line(&rules[i], line, sizeof(line));
            printf("%s%s %s\n", rules[i].netns ? "netns " : "",
                   rules[i].family == 4 ? "iptables" : "ip6tables", line);
        }
        if (n < 0)
            fprintf(stderr, "%s\n", err);
        return n < 0;
    }

    if (sl_iso_init(state, allow, nallow, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = reapply() < 0;
    if (strcmp(cmd, "isolate") == 0 && arg) {
        if (target_of(arg, &t) != 1) {
            fprintf(stderr, "%s: not running\n", arg);
            rc = 1;
        } else {
            int r = sl_isolate(&t, optind + 2 < argc ? argv[optind + 2] : "test", err, sizeof(err));
            if (r != 0)
                fprintf(stderr, "%s\n", err);
            rc |= r < 0;
        }
    } else if (strcmp(cmd, "release") == 0 && arg) {
        if (sl_release(arg, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = 1;
        }
    } else if (strcmp(cmd, "check") == 0) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (fgets(line, sizeof(line), stdin) == NULL)
            rc = 1;
        printf("%d\n", sl_isolate_check());
    } else if (strcmp(cmd, "remove-all") == 0) {
        sl_isolate_remove_all_rules();
    } else if (strcmp(cmd, "list") == 0) {
        struct sl_iso_entry e[64];
        size_t n = sl_iso_list(e, 64);
        for (size_t i = 0; i < n && i < 64; i++)
            printf("%s %s\n", e[i].id, e[i].name);
    } else if (strcmp(cmd, "reapply") != 0) {
        sl_iso_shutdown();
        return usage();
    }
    sl_iso_shutdown();
    return rc;
}
