/*
 * The detection socket: the line parser on valid and invalid detections,
 * then the server on a temporary socket with several clients, and a burst of
 * 10,000 malformed and 10,000 valid lines from a few clients at once: every
 * valid one must be acknowledged in order and delivered, every malformed one
 * answered with an error, and the server must still answer afterwards.
 */
#include "detect.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA  "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

static int parse(const char *line, struct sl_detection *d, char *err, size_t errlen)
{
    return sl_detection_parse(line, strlen(line), d, err, errlen);
}

static void test_parser_valid(void)
{
    struct sl_detection d;
    char err[256];

    CHECK_EQ_INT(parse("{\"container\":\"" ID64 "\",\"path\":\"/tmp/x\",\"sha256\":\"" SHA
                       "\",\"signature\":\"EICAR_Test_File\",\"action\":\"quarantined\","
                       "\"scanner\":\"sluice-filescan\",\"time\":\"2026-01-31T12:00:00.5Z\"}",
                       &d, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(d.container, ID64);
    CHECK_EQ_STR(d.path, "/tmp/x");
    CHECK_EQ_STR(d.sha256, SHA);
    CHECK_EQ_STR(d.signature, "EICAR_Test_File");
    CHECK_EQ_STR(d.action, "quarantined");
    CHECK_EQ_STR(d.scanner, "sluice-filescan");
    CHECK_EQ_STR(d.time, "2026-01-31T12:00:00.5Z");
    CHECK_EQ_STR(d.host_path, "");

    /* Minimal: a name with its '/', action defaults to none; unknown fields
     * and nulls ignored; a trailing CR and newline are fine; sha256 folded
     * to lowercase. */
    CHECK_EQ_INT(parse("{\"container\":\"/web-1\",\"path\":\"/a b\",\"signature\":\"S\","
                       "\"extra\":{\"x\":[1,2]},\"scanner\":null,\"sha256\":\"" ID64 "\"}\r\n",
                       &d, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(d.container, "web-1");
    CHECK_EQ_STR(d.action, "none");
    CHECK_EQ_STR(d.scanner, "");

    CHECK_EQ_INT(
        parse("{\"host_path\":\"/srv/x\",\"path\":\"/srv/x\",\"signature\":\"S\","
              "\"sha256\":\"275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F"
              "\",\"time\":\"2026-01-31T12:00:00+02:00\"}",
              &d, err, sizeof(err)),
        0);
    CHECK_EQ_STR(d.host_path, "/srv/x");
    CHECK_EQ_STR(d.container, "");
    CHECK_EQ_STR(d.sha256, SHA);
    CHECK_EQ_INT(parse("{\"container\":\"0123456789ab\",\"path\":\"/x\",\"signature\":\"S\","
                       "\"action\":\"stopped\"}",
                       &d, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(d.container, "0123456789ab");
}

static void test_parser_invalid(void)
{
    static const struct {
        const char *line, *why;
    } bad[] = {
        {"", "empty line"},
        {"   ", "not JSON"},
        {"{", "not JSON"},
        {"[]", "not a JSON object"},
        {"\"x\"", "not a JSON object"},
        {"{\"container\":\"c\",\"path\":\"/x\"}", "\"signature\" is missing"},
        {"{\"container\":\"c\",\"signature\":\"S\"}", "\"path\" is missing"},
        {"{\"path\":\"/x\",\"signature\":\"S\"}", "\"container\" or \"host_path\" is needed"},
        {"{\"container\":\"\",\"path\":\"/x\",\"signature\":\"S\"}", "\"container\" is empty"},
        {"{\"container\":5,\"path\":\"/x\",\"signature\":\"S\"}", "\"container\" is not a string"},
        {"{\"container\":\"a b\",\"path\":\"/x\",\"signature\":\"S\"}", "neither"},
        {"{\"container\":\"-a\",\"path\":\"/x\",\"signature\":\"S\"}", "neither"},
        {"{\"container\":\"c\",\"path\":\"x\",\"signature\":\"S\"}", "\"path\" is not an absolute"},
        {"{\"host_path\":\"x\",\"path\":\"/x\",\"signature\":\"S\"}", "\"host_path\" is not an"},
        {"{\"container\":\"c\",\"path\":\"/x\",\"signature\":\"S\",\"sha256\":\"abc\"}",
         "\"sha256\""},
        {"{\"container\":\"c\",\"path\":\"/x\",\"signature\":\"S\",\"action\":\"burn\"}",
         "\"action\""},
        {"{\"container\":\"c\",\"path\":\"/x\",\"signature\":\"S\",\"time\":\"yesterday\"}",
         "\"time\""},
        {"{\"container\":\"c\",\"path\":\"/"
         "x\",\"signature\":\"S\",\"time\":\"2026-13-01T00:00:00Z\"}",
         "\"time\""},
        {"{\"container\":\"c\",\"path\":\"/"
         "x\",\"signature\":\"S\",\"time\":\"2026-01-01T00:00:00\"}",
         "\"time\""},
        {"{\"container\":\"c\",\"path\":\"/x\\ny\",\"signature\":\"S\"}", "control character"},
        {"{\"container\":\"c\",\"path\":\"/x\",\"signature\":\"S\"} x", "not JSON"},
    };
    struct sl_detection d;
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = parse(bad[i].line, &d, err, sizeof(err));
        CHECK_EQ_INT(rc, -1);
        if (strstr(err, bad[i].why) == NULL) {
            fprintf(stderr, "line %zu: '%s' gave '%s', expected '%s'\n", i, bad[i].line, err,
                    bad[i].why);
            CHECK(0);
        }
    }
    /* Too long for its field. */
    char line[6000];
    snprintf(line, sizeof(line), "{\"container\":\"c\",\"path\":\"/x\",\"signature\":\"%0300d\"}",
             0);
    CHECK_EQ_INT(parse(line, &d, err, sizeof(err)), -1);
    CHECK(strstr(err, "longer than 255") != NULL);
}

/* --- the server ------------------------------------------------------------- */

struct seen {
    pthread_mutex_t lock;
    uint64_t n, last_id, bad_order;
    uint64_t per_client_seq[8]; /* the last "seq" seen from each client, from the path */
    uint64_t seq_errors;
};

static void on_detection(void *ctx, const struct sl_detection *d, uint64_t id, pid_t pid, uid_t uid)
{
    struct seen *s = ctx;
    unsigned client;
    unsigned long long seq;

    pthread_mutex_lock(&s->lock);
    s->n++;
    if (id <= s->last_id)
        s->bad_order++;
    s->last_id = id;
    if (pid != getpid() || uid != getuid())
        s->seq_errors++;
    /* Paths are /c<client>/<seq>: each client's detections arrive in order. */
    if (sscanf(d->path, "/c%u/%llu", &client, &seq) == 2 && client < 8) {
        if (seq != s->per_client_seq[client] + 1)
            s->seq_errors++;
        s->per_client_seq[client] = seq;
    }
    pthread_mutex_unlock(&s->lock);
}

static int connect_to(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        perror(path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

/* Reads one reply line (blocking, 5 s at most). */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    while (len + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return -1;
        ssize_t n = recv(fd, buf + len, 1, 0);
        if (n <= 0)
            return -1;
        if (buf[len] == '\n') {
            buf[len] = '\0';
            return (int)len;
        }
        len++;
    }
    return -1;
}

static void test_server_basic(const char *path)
{
    struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char err[256], line[512];

    struct sl_detect *d = sl_detect_start(path, NULL, on_detection, &s, err, sizeof(err));
    if (d == NULL) {
        fprintf(stderr, "sl_detect_start: %s\n", err);
        CHECK(0);
        return;
    }
    int a = connect_to(path), b = connect_to(path), c = connect_to(path);
    CHECK(a >= 0 && b >= 0 && c >= 0);
    /* Interleaved: a valid, b malformed, c valid in two pieces, a malformed. */
    send_str(a, "{\"container\":\"web\",\"path\":\"/c1/1\",\"signature\":\"S\"}\n");
    CHECK(read_line(a, line, sizeof(line)) > 0);
    CHECK_EQ_STR(line, "{\"ok\":true,\"id\":1}");
    send_str(b, "{nope}\n");
    CHECK(read_line(b, line, sizeof(line)) > 0);
    CHECK(strncmp(line, "{\"ok\":false,\"error\":\"not JSON", 29) == 0);
    send_str(c, "{\"container\":\"db\",\"path\":");
    poll(NULL, 0, 50);
    send_str(c, "\"/c2/1\",\"signature\":\"S\"}\n");
    CHECK(read_line(c, line, sizeof(line)) > 0);
    CHECK_EQ_STR(line, "{\"ok\":true,\"id\":2}");
    /* Several lines in one write: answered in order. */
    send_str(a, "[]\n{\"container\":\"web\",\"path\":\"/c1/2\",\"signature\":\"S\"}\n\n");
    CHECK(read_line(a, line, sizeof(line)) > 0);
    CHECK_EQ_STR(line, "{\"ok\":false,\"error\":\"not a JSON object\"}");
    CHECK(read_line(a, line, sizeof(line)) > 0);
    CHECK_EQ_STR(line, "{\"ok\":true,\"id\":3}");
    CHECK(read_line(a, line, sizeof(line)) > 0);
    CHECK_EQ_STR(line, "{\"ok\":false,\"error\":\"empty line\"}");
    /* A line too long: an error, and the connection goes on after it. */
    size_t big = SL_DETECT_MAX_LINE + 5000;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = '\n';
    CHECK_EQ_INT(send_all(b, huge, big + 1), 0);
    free(huge);
    CHECK(read_line(b, line, sizeof(line)) > 0);
    CHECK(strstr(line, "line longer than 65536 bytes") != NULL);
    send_str(b, "{\"container\":\"db\",\"path\":\"/c2/2\",\"signature\":\"S\"}\n");
    CHECK(read_line(b, line, sizeof(line)) > 0);
    CHECK_EQ_STR(line, "{\"ok\":true,\"id\":4}");
    /* The last line without a newline, then shutdown: still answered. */
    send_str(c, "{\"container\":\"db\",\"path\":\"/c2/3\",\"signature\":\"S\"}");
    shutdown(c, SHUT_WR);
    CHECK(read_line(c, line, sizeof(line)) > 0);
    CHECK_EQ_STR(line, "{\"ok\":true,\"id\":5}");
    close(a);
    close(b);
    close(c);

    struct sl_detect_stats st;
    sl_detect_stats(d, &st);
    CHECK_EQ_INT(st.accepted, 5);
    CHECK_EQ_INT(st.malformed, 4);
    CHECK_EQ_INT(s.n, 5);
    CHECK_EQ_INT(s.bad_order, 0);
    CHECK_EQ_INT(s.seq_errors, 0);
    sl_detect_stop(d);
    CHECK(access(path, F_OK) != 0);
}

/* --- the burst ---------------------------------------------------------------- */

#define BURST_CLIENTS 4
#define BURST_VALID   10000
#define BURST_BAD     10000

struct burst {
    const char *path;
    int client;
    int valid, bad; /* to send */
    int acks, errors, wrong;
};

/* Writer and reader at once, so neither side waits on the other: the writer
 * sends everything as fast as the socket takes it. */
static void *burst_reader(void *arg)
{
    struct burst *b = arg;
    int fd = b->client; /* the socket, passed through client by the sender */
    char buf[65536];
    size_t len = 0;
    uint64_t last = 0;

    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
            *nl = '\0';
            unsigned long long id;
            if (sscanf(start, "{\"ok\":true,\"id\":%llu}", &id) == 1) {
                b->acks++;
                if (id <= last)
                    b->wrong++;
                last = id;
            } else if (strncmp(start, "{\"ok\":false,\"error\":", 20) == 0) {
                b->errors++;
            } else {
                b->wrong++;
            }
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
    }
    return NULL;
}

static void *burst_client(void *arg)
{
    struct burst *b = arg;
    int me = b->client;
    int fd = connect_to(b->path);
    if (fd < 0) {
        b->wrong++;
        return NULL;
    }
    struct burst rb = *b;
    rb.client = fd;
    pthread_t reader;
    pthread_create(&reader, NULL, burst_reader, &rb);

    char *out = malloc(1 << 20);
    size_t len = 0;
    int seq = 0;
    for (int i = 0; i < b->valid + b->bad; i++) {
        /* One malformed line after each valid one, of a few kinds. */
        int bad = (i % 2 == 1 && i / 2 < b->bad) || i >= 2 * b->valid;
        if (bad) {
            static const char *const kinds[] = {"{broken\n", "[1,2,3]\n",
                                                "{\"container\":\"c\",\"path\":\"/x\"}\n",
                                                "\x01\x02\xff garbage\n"};
            const char *k = kinds[i % 4];
            memcpy(out + len, k, strlen(k));
            len += strlen(k);
        } else {
            len += (size_t)snprintf(out + len, 256,
                                    "{\"container\":\"web-%d\",\"path\":\"/c%d/%d\","
                                    "\"signature\":\"EICAR_Test_File\",\"sha256\":\"" SHA "\"}\n",
                                    me, me, ++seq);
        }
        if (len > (1 << 20) - 512) {
            send_all(fd, out, len);
            len = 0;
        }
    }
    send_all(fd, out, len);
    free(out);
    shutdown(fd, SHUT_WR);
    pthread_join(reader, NULL);
    close(fd);
    b->acks = rb.acks;
    b->errors = rb.errors;
    b->wrong = rb.wrong;
    return NULL;
}

static void test_server_burst(const char *path)
{
    struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char err[256], line[256];
    struct timespec t0, t1;

    struct sl_detect *d = sl_detect_start(path, NULL, on_detection, &s, err, sizeof(err));
    if (d == NULL) {
        fprintf(stderr, "sl_detect_start: %s\n", err);
        CHECK(0);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct burst b[BURST_CLIENTS];
    pthread_t th[BURST_CLIENTS];
    for (int i = 0; i < BURST_CLIENTS; i++) {
        b[i] = (struct burst){.path = path,
                              .client = i,
                              .valid = BURST_VALID / BURST_CLIENTS,
                              .bad = BURST_BAD / BURST_CLIENTS};
        pthread_create(&th[i], NULL, burst_client, &b[i]);
    }
    /* A client that sends half a line and never reads must not hold the others. */
    int idle = connect_to(path);
    send_str(idle, "{\"container\":");
    int acks = 0, errors = 0, wrong = 0;
    for (int i = 0; i < BURST_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        acks += b[i].acks;
        errors += b[i].errors;
        wrong += b[i].wrong;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "burst: %d acks, %d errors in %.2f s\n", acks, errors, secs);
    CHECK_EQ_INT(acks, BURST_VALID);
    CHECK_EQ_INT(errors, BURST_BAD);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(s.n, BURST_VALID);
    CHECK_EQ_INT(s.bad_order, 0);
    CHECK_EQ_INT(s.seq_errors, 0);
    for (int i = 0; i < BURST_CLIENTS; i++)
        CHECK_EQ_INT(s.per_client_seq[i], BURST_VALID / BURST_CLIENTS);
    CHECK(secs < 5.0);

    /* Still alive. */
    int fd = connect_to(path);
    send_str(fd, "{\"container\":\"x\",\"path\":\"/y\",\"signature\":\"S\"}\n");
    CHECK(read_line(fd, line, sizeof(line)) > 0);
    CHECK(strncmp(line, "{\"ok\":true,\"id\":", 16) == 0);
    close(fd);

    /* Before the idle client goes: its half line, cut by the close, would
     * count as one more malformed line, sooner or later. */
    struct sl_detect_stats st;
    sl_detect_stats(d, &st);
    CHECK_EQ_INT(st.accepted, BURST_VALID + 1);
    CHECK_EQ_INT(st.malformed, BURST_BAD);
    close(idle);
    sl_detect_stop(d);
}

int main(void)
{
    char dir[] = "/tmp/sluice-test-detect-XXXXXX", path[128];

    test_parser_valid();
    test_parser_invalid();
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/run/detections.sock", dir);
    test_server_basic(path);
    test_server_burst(path);
    snprintf(path, sizeof(path), "%s/run", dir);
    rmdir(path);
    rmdir(dir);
    CHECK_DONE();
}
