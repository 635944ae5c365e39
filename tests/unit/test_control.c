/*
 * The control socket with fake daemon callbacks, in a temporary folder: every
 * command, errors, the socket's file life (mode, folder, stale file, a second
 * daemon, stop), and clients that misbehave.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "control.h"

struct fake {
    int status_calls, containers_calls, reload_calls;
    int fail_reload;
};

static int fake_status(void *ctx, struct json *reply, char *err, size_t errlen)
{
    struct fake *f = ctx;
    f->status_calls++;
    json_string(reply, "version", "0.1.0");
    json_uint(reply, "pid", 42);
    json_array_begin(reply, "queues");
    json_object_begin(reply, NULL);
    json_uint(reply, "num", 100);
    json_object_end(reply);
    json_array_end(reply);
    return 0;
}

static int fake_containers(void *ctx, struct json *reply, char *err, size_t errlen)
{
    struct fake *f = ctx;
    f->containers_calls++;
    json_array_begin(reply, "containers");
    json_object_begin(reply, NULL);
    json_string(reply, "name", "web");
    json_object_end(reply);
    json_array_end(reply);
    return 0;
}

static int fake_reload(void *ctx, struct json *reply, char *err, size_t errlen)
{
    struct fake *f = ctx;
    f->reload_calls++;
    if (f->fail_reload) {
        snprintf(err, errlen, "policy.yaml:3:1: bad key");
        return -1;
    }
    json_string(reply, "policy", "policy.yaml");
    return 0;
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int raw_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A socket file with nothing listening, as a killed daemon leaves it. */
static int make_stale(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    return rc;
}

static void test_commands(const char *path, struct fake *f)
{
    char err[256];
    char *r;

    r = sl_control_call(path, "status", 2000, err, sizeof(err));
    CHECK(r && strncmp(r, "{\"ok\":true,", 11) == 0);
    CHECK(r && strstr(r, "\"version\":\"0.1.0\"") && strstr(r, "\"queues\":[{\"num\":100}]"));
    CHECK(r && r[strlen(r) - 1] == '\n');
    free(r);

    r = sl_control_call(path, "containers", 2000, err, sizeof(err));
    CHECK_EQ_STR(r, "{\"ok\":true,\"containers\":[{\"name\":\"web\"}]}\n");
    free(r);

    r = sl_control_call(path, "reload", 2000, err, sizeof(err));
    CHECK_EQ_STR(r, "{\"ok\":true,\"policy\":\"policy.yaml\"}\n");
    free(r);

    f->fail_reload = 1;
    r = sl_control_call(path, "reload", 2000, err, sizeof(err));
    CHECK_EQ_STR(r, "{\"ok\":false,\"error\":\"policy.yaml:3:1: bad key\"}\n");
    free(r);

    r = sl_control_call(path, "isolate web", 2000, err, sizeof(err));
    CHECK_EQ_STR(r, "{\"ok\":false,\"error\":\"unknown command 'isolate'\"}\n");
    free(r);

    r = sl_control_call(path, "status now", 2000, err, sizeof(err));
    CHECK(r && strstr(r, "\"ok\":false") && strstr(r, "no arguments"));
    free(r);

    r = sl_control_call(path, "  ", 2000, err, sizeof(err));
    CHECK(r && strstr(r, "\"ok\":false") && strstr(r, "empty command"));
    free(r);

    CHECK(sl_control_call(path, "two\nlines", 2000, err, sizeof(err)) == NULL);
    CHECK_EQ_INT(f->status_calls, 1);
    CHECK_EQ_INT(f->containers_calls, 1);
    CHECK_EQ_INT(f->reload_calls, 2);
}

static void test_bad_clients(const char *path)
{
    char err[256], buf[256];

    /* Longer than the request cap: an error reply, not a hang. */
    int fd = raw_connect(path);
    CHECK(fd >= 0);
    char big[4096];
    memset(big, 'a', sizeof(big));
    CHECK(send(fd, big, sizeof(big), MSG_NOSIGNAL) > 0);
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strstr(buf, "\"ok\":false") && strstr(buf, "longer than"));
    close(fd);

    /* The line may end with shutdown instead of a newline. */
    fd = raw_connect(path);
    CHECK(fd >= 0);
    CHECK(send(fd, "status", 6, MSG_NOSIGNAL) == 6);
    shutdown(fd, SHUT_WR);
    n = recv(fd, buf, sizeof(buf) - 1, MSG_WAITALL);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strncmp(buf, "{\"ok\":true", 10) == 0);
    close(fd);

    /* A client that says nothing holds the server only until its deadline. */
    int idle = raw_connect(path);
    CHECK(idle >= 0);
    int64_t t0 = ms_now();
    char *r = sl_control_call(path, "status", 10000, err, sizeof(err));
    CHECK(r && strstr(r, "\"ok\":true"));
    CHECK(ms_now() - t0 < 5000);
    free(r);
    n = recv(idle, buf, sizeof(buf), 0);
    CHECK_EQ_INT(n, 0); /* dropped without a reply */
    close(idle);
}

int main(void)
{
    char tmpl[] = "/tmp/sluice-control-XXXXXX";
    char *dir = mkdtemp(tmpl);
    char path[256], folder[256], err[256];
    struct stat st;
    struct fake f = {0};
    struct sl_control_ops ops = {
        .ctx = &f, .status = fake_status, .containers = fake_containers, .reload = fake_reload};

    if (dir == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(folder, sizeof(folder), "%s/run/sluice", dir);
    snprintf(path, sizeof(path), "%s/control.sock", folder);

    /* Nothing there yet. */
    char *r = sl_control_call(path, "status", 1000, err, sizeof(err));
    CHECK(r == NULL && strstr(err, "sluiced is not running"));

    struct sl_control *c = sl_control_start(path, &ops, err, sizeof(err));
    CHECK(c != NULL);
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        CHECK_DONE();
    }
    CHECK(stat(folder, &st) == 0 && (st.st_mode & 07777) == 0755);
    CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0600);

    test_commands(path, &f);
    test_bad_clients(path);

    /* A second daemon on the same socket is refused; the first keeps it. */
    struct sl_control *c2 = sl_control_start(path, &ops, err, sizeof(err));
    CHECK(c2 == NULL && strstr(err, "another sluiced"));
    r = sl_control_call(path, "status", 2000, err, sizeof(err));
    CHECK(r != NULL);
    free(r);

    sl_control_stop(c);
    CHECK(lstat(path, &st) != 0 && errno == ENOENT);
    r = sl_control_call(path, "status", 1000, err, sizeof(err));
    CHECK(r == NULL && strstr(err, "sluiced is not running"));

    /* A socket left by a dead daemon is replaced. */
    CHECK_EQ_INT(make_stale(path), 0);
    r = sl_control_call(path, "status", 1000, err, sizeof(err));
    CHECK(r == NULL && strstr(err, "sluiced is not running"));
    c = sl_control_start(path, &ops, err, sizeof(err));
    CHECK(c != NULL);
    r = sl_control_call(path, "containers", 2000, err, sizeof(err));
    CHECK(r && strstr(r, "\"ok\":true"));
    free(r);
    sl_control_stop(c);
    CHECK(lstat(path, &st) != 0);

    /* Whatever is not a socket is never removed. */
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (fp)
        fclose(fp);
    c = sl_control_start(path, &ops, err, sizeof(err));
    CHECK(c == NULL && strstr(err, "not a socket"));
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
    unlink(path);

    /* Unsupported operation: a NULL callback reads as an unknown command. */
    struct sl_control_ops partial = {.ctx = &f, .status = fake_status};
    c = sl_control_start(path, &partial, err, sizeof(err));
    CHECK(c != NULL);
    r = sl_control_call(path, "reload", 2000, err, sizeof(err));
    CHECK(r && strstr(r, "unknown command 'reload'"));
    free(r);
    sl_control_stop(c);

    rmdir(folder);
    snprintf(folder, sizeof(folder), "%s/run", dir);
    rmdir(folder);
    rmdir(dir);
    CHECK_DONE();
}
