/*
 * Test-only driver of the container map, for tests/e2e/check-containers:
 * starts a map on a Docker socket and answers one command per stdin line
 * with one JSON line on stdout:
 *
 *   json                                  the map (sl_container_map_json)
 *   addr IP                               sl_container_by_addr
 *   socket tcp|udp LADDR LPORT RADDR RPORT  sl_container_by_socket
 *   find ID-OR-NAME                       sl_container_find
 *
 * Lookups answer {"found":N, "id":..., "name":..., "image":..., "network":...,
 * "runtime":...}. Usage: containers-probe [-v] [-s DOCKER_SOCK]
 */
#include "containers.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void answer(struct json *j, int found, const struct sl_container *c)
{
    json_object_begin(j, NULL);
    json_int(j, "found", found);
    if (found == 1) {
        json_string(j, "id", c->id);
        json_string(j, "name", c->name);
        json_string(j, "image", c->image);
        json_string(j, "network", c->network);
        json_string(j, "runtime", c->runtime);
    }
    json_object_end(j);
}

static int parse_addr(const char *s, int *family, uint8_t *addr)
{
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        *family = 6;
        return 0;
    }
    return -1;
}

static void command(struct sl_container_map *m, char *line, struct json *j)
{
    struct sl_container c;
    char *argv[8];
    int argc = 0;
    uint8_t a[16], b[16];
    int fa, fb;

    for (char *t = strtok(line, " \t\n"); t && argc < 8; t = strtok(NULL, " \t\n"))
        argv[argc++] = t;
    memset(&c, 0, sizeof(c));
    if (argc == 1 && strcmp(argv[0], "json") == 0) {
        json_object_begin(j, NULL);
        sl_container_map_json(m, j);
        json_object_end(j);
    } else if (argc == 2 && strcmp(argv[0], "addr") == 0 && parse_addr(argv[1], &fa, a) == 0) {
        answer(j, sl_container_by_addr(m, fa, a, &c), &c);
    } else if (argc == 2 && strcmp(argv[0], "find") == 0) {
        answer(j, sl_container_find(m, argv[1], &c), &c);
    } else if (argc == 6 && strcmp(argv[0], "socket") == 0 && parse_addr(argv[2], &fa, a) == 0 &&
               parse_addr(argv[4], &fb, b) == 0 && fa == fb) {
        int proto = strcmp(argv[1], "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
        answer(j,
               sl_container_by_socket(m, fa, proto, a, (uint16_t)atoi(argv[3]), b,
                                      (uint16_t)atoi(argv[5]), &c),
               &c);
    } else {
        json_object_begin(j, NULL);
        json_string(j, "error", "bad command");
        json_object_end(j);
    }
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    char err[256], line[512];
    struct sl_container_map *m;
    struct json j;
    int opt, verbose = 0;

    while ((opt = getopt(argc, argv, "s:v")) != -1) {
        if (opt == 's')
            sock = optarg;
        else if (opt == 'v')
            verbose = 1;
        else
            return 2;
    }
    log_init("containers-probe", verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, 0);
    m = sl_container_map_new(sock, err, sizeof(err));
    if (m == NULL)
        fatalx("%s", err);
    json_init(&j);
    while (fgets(line, sizeof(line), stdin)) {
        json_reset(&j);
        command(m, line, &j);
        printf("%s\n", j.buf ? j.buf : "{}");
        fflush(stdout);
    }
    json_free(&j);
    sl_container_map_free(m);
    return 0;
}
