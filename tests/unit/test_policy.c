/*
 * Policy loading and YARA: defaults, every key, every kind of error with its
 * exact position, sizes and durations, relative paths, rule compilation from
 * files and folders, the built-in EICAR rule, reference counting.
 *
 * Data files are under tests/unit/data/policy/, found through SRCDIR (the
 * source root, "." by default) so that the test runs from any build folder.
 */
#include "check.h"
#include "rules.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <stdint.h>

static char data_dir[4096];

/* tests/unit/data/policy/NAME under SRCDIR; one static buffer per call site
 * is enough since each result is used before the next call. */
static const char *data(const char *name)
{
    static char path[4096 + 256];

    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    return path;
}

static struct rules_policy *parse(const char *text, int compile, char *err)
{
    return rules_policy_parse("policy.yaml", text, strlen(text), compile, err, RULES_ERRLEN);
}

/* Checks that text fails to load with exactly this message. */
#define CHECK_PARSE_ERR(text, msg)                                                                 \
    do {                                                                                           \
        char err_[RULES_ERRLEN];                                                                   \
        struct rules_policy *p_ = parse((text), 0, err_);                                          \
        CHECK(p_ == NULL);                                                                         \
        if (p_ == NULL)                                                                            \
            CHECK_EQ_STR(err_, (msg));                                                             \
        rules_policy_unref(p_);                                                                    \
    } while (0)

/* The EICAR test string, put together at run time so that this file and the
 * test binary are not themselves taken for the test file by a scanner. */
static size_t eicar(char *out)
{
    static const char *const parts[] = {"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-",
                                        "STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"};
    size_t n0 = strlen(parts[0]), n1 = strlen(parts[1]);

    memcpy(out, parts[0], n0);
    memcpy(out + n0, parts[1], n1);
    return n0 + n1;
}

static void check_defaults(const struct rules_policy *p)
{
    CHECK_EQ_INT(p->yara.paths.n, 0);
    CHECK_EQ_INT(p->yara.builtin, 1);
    CHECK_EQ_INT(p->yara.timeout_s, 10);
    CHECK_EQ_INT(p->yara.action, RULES_ACTION_BLOCK);
    CHECK_EQ_INT(p->limits.body, 16 << 20);
    CHECK_EQ_INT(p->limits.reassembly_flow, 1 << 20);
    CHECK_EQ_INT(p->limits.reassembly_total, 256 << 20);
    CHECK_EQ_INT(p->limits.flows, 1000000);
    CHECK_EQ_INT(p->limits.bodies_total, 512 << 20);
    CHECK_EQ_INT(p->limits.flow_timeout_s, 600);
    CHECK_EQ_INT(p->limits.hello_bytes, 20 << 10);
    CHECK(p->ndpi.files.protos_file == NULL);
    CHECK(p->ndpi.files.categories_file == NULL);
    CHECK(p->ndpi.files.risky_domains_file == NULL);
    CHECK(p->ndpi.files.ja3_file == NULL);
    CHECK(p->ndpi.files.sha1_file == NULL);
    CHECK_EQ_INT(p->ndpi.max_packets_tcp, 80);
    CHECK_EQ_INT(p->ndpi.max_packets_udp, 24);
    CHECK_EQ_INT(p->ndpi.alert_categories.n, 2);
    if (p->ndpi.alert_categories.n == 2) {
        CHECK_EQ_STR(p->ndpi.alert_categories.v[0].s, "Malware");
        CHECK_EQ_STR(p->ndpi.alert_categories.v[1].s, "Mining");
        CHECK_EQ_INT(p->ndpi.alert_categories.v[0].line, 0);
    }
    CHECK_EQ_INT(p->ndpi.alert_risks.n, 0);
    CHECK_EQ_INT(p->ndpi.action, RULES_ACTION_ALERT);
    CHECK_EQ_STR(p->events.eve, "/var/log/sluice/eve.json");
    CHECK_EQ_INT(p->tls.quic, RULES_QUIC_BLOCK);
    CHECK_EQ_INT(p->tls.other_ports, RULES_OTHER_ALERT);
    CHECK(p->compiled == NULL);
    CHECK_EQ_INT(p->refs, 1);
}

static void test_defaults(void)
{
    char err[RULES_ERRLEN];
    struct rules_policy *p;

    p = rules_policy_load(NULL, 0, err, sizeof(err));
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK_EQ_STR(p->path, "(built-in)");
        check_defaults(p);
    }
    rules_policy_unref(p);

    p = rules_policy_load(data("empty.yaml"), 0, err, sizeof(err));
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK_EQ_STR(p->path, data("empty.yaml"));
        check_defaults(p);
    }
    rules_policy_unref(p);

    /* Only comments, an empty document, empty sections: all defaults. */
    static const char *const empties[] = {
        "", "# nothing yet\n", "---\n", "---\n...\n", "{}\n", "yara:\nlimits: ~\nndpi: {}\n",
    };
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        p = parse(empties[i], 0, err);
        CHECK(p != NULL);
        if (p != NULL)
            check_defaults(p);
        else
            fprintf(stderr, "  input %zu: %s\n", i, err);
        rules_policy_unref(p);
    }
}

static void test_full(void)
{
    char err[RULES_ERRLEN], want[8192];
    struct rules_policy *p;

    p = rules_policy_load(data("full.yaml"), 0, err, sizeof(err));
    CHECK(p != NULL);
    if (p == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_STR(err, "");
    CHECK_EQ_INT(p->yara.paths.n, 2);
    if (p->yara.paths.n == 2) {
        snprintf(want, sizeof(want), "%s/rules/one.yar", data_dir);
        CHECK_EQ_STR(p->yara.paths.v[0].s, want);
        CHECK_EQ_INT(p->yara.paths.v[0].line, 3);
        CHECK_EQ_INT(p->yara.paths.v[0].column, 11);
        snprintf(want, sizeof(want), "%s/rules.d", data_dir);
        CHECK_EQ_STR(p->yara.paths.v[1].s, want);
        CHECK_EQ_INT(p->yara.paths.v[1].line, 3);
        CHECK_EQ_INT(p->yara.paths.v[1].column, 26);
    }
    CHECK_EQ_INT(p->yara.builtin, 0);
    CHECK_EQ_INT(p->yara.timeout_s, 30);
    CHECK_EQ_INT(p->yara.action, RULES_ACTION_ALERT);
    CHECK_EQ_INT(p->limits.body, 8 << 20);
    CHECK_EQ_INT(p->limits.reassembly_flow, 512 << 10);
    CHECK_EQ_INT(p->limits.reassembly_total, 1 << 30);
    CHECK_EQ_INT(p->limits.flows, 250000);
    CHECK_EQ_INT(p->limits.bodies_total, UINT64_C(2) << 30);
    CHECK_EQ_INT(p->limits.flow_timeout_s, 300);
    CHECK_EQ_INT(p->limits.hello_bytes, 16 << 10);
    snprintf(want, sizeof(want), "%s/ndpi/protos.txt", data_dir);
    CHECK_EQ_STR(p->ndpi.files.protos_file, want);
    snprintf(want, sizeof(want), "%s/ndpi/categories.txt", data_dir);
    CHECK_EQ_STR(p->ndpi.files.categories_file, want);
    snprintf(want, sizeof(want), "%s/ndpi/risky_domains.txt", data_dir);
    CHECK_EQ_STR(p->ndpi.files.risky_domains_file, want);
    snprintf(want, sizeof(want), "%s/ndpi/ja3.csv", data_dir);
    CHECK_EQ_STR(p->ndpi.files.ja3_file, want);
    snprintf(want, sizeof(want), "%s/ndpi/sha1.csv", data_dir);
    CHECK_EQ_STR(p->ndpi.files.sha1_file, want);
    CHECK_EQ_INT(p->ndpi.max_packets_tcp, 32);
    CHECK_EQ_INT(p->ndpi.max_packets_udp, 16);
    CHECK_EQ_INT(p->ndpi.alert_categories.n, 3);
    if (p->ndpi.alert_categories.n == 3) {
        CHECK_EQ_STR(p->ndpi.alert_categories.v[0].s, "Malware");
        CHECK_EQ_STR(p->ndpi.alert_categories.v[1].s, "Mining");
        CHECK_EQ_STR(p->ndpi.alert_categories.v[2].s, "Cybersecurity");
        CHECK_EQ_INT(p->ndpi.alert_categories.v[2].line, 23);
        CHECK_EQ_INT(p->ndpi.alert_categories.v[2].column, 39);
    }
    CHECK_EQ_INT(p->ndpi.alert_risks.n, 2);
    if (p->ndpi.alert_risks.n == 2) {
        CHECK_EQ_STR(p->ndpi.alert_risks.v[0].s, "NDPI_POSSIBLE_EXPLOIT");
        CHECK_EQ_INT(p->ndpi.alert_risks.v[0].line, 25);
        CHECK_EQ_INT(p->ndpi.alert_risks.v[0].column, 7);
        CHECK_EQ_STR(p->ndpi.alert_risks.v[1].s, "NDPI_URL_POSSIBLE_XSS");
        CHECK_EQ_INT(p->ndpi.alert_risks.v[1].line, 26);
        CHECK_EQ_INT(p->ndpi.alert_risks.v[1].column, 7);
    }
    CHECK_EQ_INT(p->ndpi.action, RULES_ACTION_BLOCK);
    snprintf(want, sizeof(want), "%s/events/eve.json", data_dir);
    CHECK_EQ_STR(p->events.eve, want);
    CHECK(p->compiled == NULL); /* compile == 0 */
    CHECK(rules_scanner_new(p) == NULL);
    CHECK_EQ_INT(rules_yara_count(p), 0);
    rules_policy_unref(p);
}

/* Spellings the file format allows for the same values. */
static void test_spellings(void)
{
    char err[RULES_ERRLEN];
    struct rules_policy *p;

    p = parse("yara: {builtin: OFF, action: BLOCK, rules: single.yar, timeout: 1500ms}\n"
              "limits: {body: 16 MiB, hello_bytes: \"2k\", flows: 00042, flow_timeout: 1d}\n"
              "ndpi: {alert_risks: [], alert_categories: [Malware], action: Block}\n"
              "events: {eve: '-'}\n",
              0, err);
    CHECK(p != NULL);
    if (p == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(p->yara.builtin, 0);
    CHECK_EQ_INT(p->yara.action, RULES_ACTION_BLOCK);
    CHECK_EQ_INT(p->yara.paths.n, 1);
    CHECK_EQ_STR(p->yara.paths.v[0].s, "single.yar"); /* "policy.yaml" has no folder */
    CHECK_EQ_INT(p->yara.timeout_s, 2);
    CHECK_EQ_INT(p->limits.body, 16 << 20);
    CHECK_EQ_INT(p->limits.hello_bytes, 2048);
    CHECK_EQ_INT(p->limits.flows, 42);
    CHECK_EQ_INT(p->limits.flow_timeout_s, 86400);
    CHECK_EQ_INT(p->ndpi.alert_risks.n, 0);
    CHECK_EQ_INT(p->ndpi.alert_categories.n, 1);
    CHECK_EQ_INT(p->ndpi.action, RULES_ACTION_BLOCK);
    CHECK_EQ_STR(p->events.eve, "-");
    rules_policy_unref(p);

    for (const char *const *b = (const char *const[]){"true", "YES", "On", NULL}; *b; b++) {
        char text[64];
        snprintf(text, sizeof(text), "yara:\n  builtin: %s\n", *b);
        p = parse(text, 0, err);
        CHECK(p != NULL && p->yara.builtin == 1);
        rules_policy_unref(p);
    }
    for (const char *const *b = (const char *const[]){"false", "No", "off", NULL}; *b; b++) {
        char text[64];
        snprintf(text, sizeof(text), "yara:\n  builtin: %s\n", *b);
        p = parse(text, 0, err);
        CHECK(p != NULL && p->yara.builtin == 0);
        rules_policy_unref(p);
    }
}

static void test_errors(void)
{
    char err[RULES_ERRLEN];
    struct rules_policy *p;

    /* Keys. */
    CHECK_PARSE_ERR(
        "yara:\n  timeout: 5s\nyarra:\n  rules: x\n",
        "policy.yaml:3:1: unknown key 'yarra' (known: yara, limits, http, tcp, ndpi, events, "
        "inline, containers, tls, compromise, control)");
    CHECK_PARSE_ERR("yara:\n  rule: x.yar\n", "policy.yaml:2:3: unknown key 'rule' in yara "
                                              "(known: rules, builtin, timeout, action)");
    CHECK_PARSE_ERR(
        "yara.rules: x.yar\n",
        "policy.yaml:1:1: unknown key 'yara.rules' (known: "
        "yara, limits, http, tcp, ndpi, events, inline, containers, tls, compromise, control)");
    CHECK_PARSE_ERR("limits:\n  body: 1MiB\nlimits:\n  flows: 10\n",
                    "policy.yaml:3:1: duplicate key 'limits' (first at 1:1)");
    CHECK_PARSE_ERR("limits: {body: 1MiB, body: 2MiB}\n",
                    "policy.yaml:1:22: duplicate key 'limits.body' (first at 1:10)");
    CHECK_PARSE_ERR("? [a, b]\n: c\n", "policy.yaml:1:3: a key must be a name, found a list");

    /* Node types. */
    CHECK_PARSE_ERR("- yara\n- limits\n",
                    "policy.yaml:1:1: the top level must be a mapping, found a list");
    CHECK_PARSE_ERR("just a string\n",
                    "policy.yaml:1:1: the top level must be a mapping, found a string");
    CHECK_PARSE_ERR("yara: [rules]\n", "policy.yaml:1:7: yara: expected a mapping, found a list");
    CHECK_PARSE_ERR("yara:\n  rules:\n    a: b\n",
                    "policy.yaml:3:5: yara.rules: expected a list or a string, found a mapping");
    CHECK_PARSE_ERR("yara:\n  rules: [a.yar, [b.yar]]\n",
                    "policy.yaml:2:18: yara.rules: list items must be strings, found a list");
    CHECK_PARSE_ERR("ndpi:\n  alert_risks: NDPI_POSSIBLE_EXPLOIT\n",
                    "policy.yaml:2:16: ndpi.alert_risks: expected a list, found a string");
    CHECK_PARSE_ERR("limits:\n  body: [1MiB]\n",
                    "policy.yaml:2:9: limits.body: expected a size, found a list");
    CHECK_PARSE_ERR("limits:\n  body:\n  flows: 10\n",
                    "policy.yaml:2:8: limits.body: empty value (remove the key for the default)");
    CHECK_PARSE_ERR("yara:\n  rules: ~\n", "policy.yaml:2:10: yara.rules: empty value (remove the "
                                           "key for the default, or use [])");

    /* Values. */
    CHECK_PARSE_ERR("yara:\n  timeout: 5s\n  action: drop\n",
                    "policy.yaml:3:11: yara.action: 'drop' is not valid (use alert or block)");
    CHECK_PARSE_ERR("yara:\n  builtin: maybe\n",
                    "policy.yaml:2:12: yara.builtin: 'maybe' is not a boolean (use true or false)");
    CHECK_PARSE_ERR("limits:\n  flows: 1k\n",
                    "policy.yaml:2:10: limits.flows: '1k' is not a number (digits only, no unit)");
    CHECK_PARSE_ERR("events:\n  eve: ''\n",
                    "policy.yaml:2:8: events.eve: a path must not be empty");
    CHECK_PARSE_ERR("yara:\n  rules: [a.yar, \"\"]\n",
                    "policy.yaml:2:18: yara.rules: a path must not be empty");
    CHECK_PARSE_ERR("ndpi:\n  alert_categories: [Malware, '']\n",
                    "policy.yaml:2:31: ndpi.alert_categories: a name must not be empty");
    CHECK_PARSE_ERR("limits:\n  body: \"16\\0MiB\"\n",
                    "policy.yaml:2:9: NUL characters are not allowed");

    /* Ranges. */
    CHECK_PARSE_ERR("limits:\n  body: 512\n",
                    "policy.yaml:2:9: limits.body: '512' is out of range (1KiB..1GiB)");
    CHECK_PARSE_ERR("limits:\n  reassembly_total: 65GiB\n",
                    "policy.yaml:2:21: "
                    "limits.reassembly_total: '65GiB' is out of range (64KiB..64GiB)");
    CHECK_PARSE_ERR("limits:\n  flows: 0\n",
                    "policy.yaml:2:10: limits.flows: '0' is out of range (1..100000000)");
    CHECK_PARSE_ERR("ndpi:\n  max_packets_udp: 256\n",
                    "policy.yaml:2:20: ndpi.max_packets_udp: '256' is out of range (3..255)");
    CHECK_PARSE_ERR("yara:\n  timeout: 11m\n",
                    "policy.yaml:2:12: yara.timeout: '11m' is out of range (1s..10m)");
    CHECK_PARSE_ERR("yara:\n  timeout: 0\n",
                    "policy.yaml:2:12: yara.timeout: '0' is out of range (1s..10m)");
    CHECK_PARSE_ERR("limits:\n  flow_timeout: 25h\n",
                    "policy.yaml:2:17: limits.flow_timeout: '25h' is out of range (1s..1d)");
    /* Past 64 bits: still "out of range", not a crash nor a wrap-around. */
    CHECK_PARSE_ERR("limits:\n  body: 99999999999999999999999\n",
                    "policy.yaml:2:9: limits.body: "
                    "'99999999999999999999999' is out of range (1KiB..1GiB)");
    CHECK_PARSE_ERR("limits:\n  body: 17179869184GiB\n",
                    "policy.yaml:2:9: limits.body: '17179869184GiB' is out of range (1KiB..1GiB)");

    /* Syntax and YAML features a policy does not use. */
    CHECK_PARSE_ERR("yara:\n  timeout: 10s\n action: block\n",
                    "policy.yaml:3:2: did not find expected key (while parsing a block mapping at "
                    "line 1)");
    CHECK_PARSE_ERR("yara:\n  timeout: '10s\n", "policy.yaml:3:1: found unexpected end of stream "
                                                "(while scanning a quoted scalar at line 2)");
    CHECK_PARSE_ERR("yara:\n\ttimeout: 10s\n",
                    "policy.yaml:2:1: found character that cannot start any token (while "
                    "scanning for the next token at line 2)");
    CHECK_PARSE_ERR("limits: &l\n  body: 1MiB\n", "policy.yaml:1:9: anchors (&l) are not allowed");
    CHECK_PARSE_ERR("limits:\n  body: *big\n", "policy.yaml:2:9: aliases (*big) are not allowed");
    CHECK_PARSE_ERR("events:\n  eve: !!str x\n",
                    "policy.yaml:2:8: tags (tag:yaml.org,2002:str) are not allowed");
    CHECK_PARSE_ERR("yara: {}\n--- \nlimits: {}\n",
                    "policy.yaml:2:1: only one YAML document is allowed");
    CHECK_PARSE_ERR("events:\n  eve: \"a\x01\"\n",
                    "policy.yaml:2:10: control characters are not allowed (0x01)");
    CHECK_PARSE_ERR("events:\n  eve: \"\xc3\xa9t\xc3\xa9\x7f\"\n",
                    "policy.yaml:2:12: control characters are not allowed (0x7f)");
    CHECK_PARSE_ERR("events:\n  eve: \xff\n",
                    "policy.yaml:2:8: invalid leading UTF-8 octet (0xff)");

    /* The file name in errors is the path as given. */
    p = rules_policy_load(data("bad-syntax.yaml"), 0, err, sizeof(err));
    CHECK(p == NULL);
    char want[8192];
    snprintf(want, sizeof(want),
             "%s:3:2: did not find expected key (while parsing a block mapping at line 1)",
             data("bad-syntax.yaml"));
    CHECK_EQ_STR(err, want);

    p = rules_policy_load(data("does-not-exist.yaml"), 0, err, sizeof(err));
    CHECK(p == NULL);
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory",
             data("does-not-exist.yaml"));
    CHECK_EQ_STR(err, want);

    p = rules_policy_load(data("rules"), 0, err, sizeof(err));
    CHECK(p == NULL);
    snprintf(want, sizeof(want), "%s: cannot read: Is a directory", data("rules"));
    CHECK_EQ_STR(err, want);

    /* A NULL or empty error buffer is allowed. */
    CHECK(rules_policy_parse("x", "yarra: 1", 8, 0, NULL, 0) == NULL);
    CHECK(rules_policy_parse(NULL, "limits: {body: 1}", 17, 0, err, 0) == NULL);
    p = rules_policy_parse(NULL, "limits: [", 9, 0, err, sizeof(err));
    CHECK(p == NULL);
    CHECK(strncmp(err, "(buffer):1:", 11) == 0);
}

static void test_sizes(void)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"4096", 4096},
        {"512k", 512 << 10},
        {"512K", 512 << 10},
        {"3KB", 3 << 10},
        {"20KiB", 20 << 10},
        {"16M", 16 << 20},
        {"16mb", 16 << 20},
        {"16MiB", 16 << 20},
        {"16 MiB", 16 << 20},
        {"16\tM", 16 << 20},
        {"1G", UINT64_C(1) << 30},
        {"64GB", UINT64_C(64) << 30},
        {"64GiB", UINT64_C(64) << 30},
        {"18446744073709551615", UINT64_MAX},
        {"17179869183G", UINT64_C(17179869183) << 30},
    };
    static const char *const bad[] = {
        "", "k", "MiB", "-1", "+1", "1.5M", "16QB", "1T", "1 k b", " 1k", "1k ", "0x10", "1e6",
    };
    static const char *const overflow[] = {
        "18446744073709551616",
        "17179869184G",
        "18014398509481984k",
        "99999999999999999999999",
    };
    uint64_t v;
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        CHECK_EQ_INT(rules_parse_size(good[i].s, &v), 0);
        CHECK(v == good[i].v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 12345;
        CHECK(rules_parse_size(bad[i], &v) != 0);
        CHECK(v == 12345);
        if (v != 12345 || errno != EINVAL)
            fprintf(stderr, "  size '%s' accepted or wrong errno\n", bad[i]);
    }
    for (i = 0; i < sizeof(overflow) / sizeof(overflow[0]); i++) {
        CHECK(rules_parse_size(overflow[i], &v) != 0);
        CHECK_EQ_INT(errno, ERANGE);
    }
    CHECK(rules_parse_size(NULL, &v) != 0);
}

static void test_durations(void)
{
    static const struct {
        const char *s;
        unsigned v;
    } good[] = {
        {"10", 10},    {"0", 0},
        {"30s", 30},   {"30 s", 30},
        {"5m", 300},   {"5M", 300},
        {"1h", 3600},  {"1d", 86400},
        {"250ms", 1},  {"0ms", 1},
        {"999ms", 1},  {"1000ms", 1},
        {"1001ms", 2}, {"4294967295", 4294967295u},
        {"2MS", 1},    {"49710d", 49710u * 86400},
    };
    static const char *const bad[] = {"", "s", "10x", "-1s", "1.5s", "1 h m", "10sec", "1w"};
    static const char *const overflow[] = {"4294967296", "49711d", "71582789m",
                                           "99999999999999999999s"};
    unsigned v;
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        CHECK_EQ_INT(rules_parse_duration(good[i].s, &v), 0);
        CHECK_EQ_INT(v, good[i].v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 12345;
        CHECK(rules_parse_duration(bad[i], &v) != 0);
        CHECK_EQ_INT(errno, EINVAL);
        CHECK_EQ_INT(v, 12345);
    }
    for (i = 0; i < sizeof(overflow) / sizeof(overflow[0]); i++) {
        CHECK(rules_parse_duration(overflow[i], &v) != 0);
        CHECK_EQ_INT(errno, ERANGE);
    }
}

static void test_paths(void)
{
    char err[RULES_ERRLEN], text[8192], want[8192];
    struct rules_policy *p;
    const char *yaml = "yara:\n  rules: [a.yar, sub/b.yar, /abs/c.yar, ../d]\n"
                       "events:\n  eve: log/eve.json\n";

    /* Relative to the folder of the file's name; absolute paths as written. */
    p = rules_policy_parse("/etc/sluice/policy.yaml", yaml, strlen(yaml), 0, err, sizeof(err));
    CHECK(p != NULL);
    if (p != NULL && p->yara.paths.n == 4) {
        CHECK_EQ_STR(p->yara.paths.v[0].s, "/etc/sluice/a.yar");
        CHECK_EQ_STR(p->yara.paths.v[1].s, "/etc/sluice/sub/b.yar");
        CHECK_EQ_STR(p->yara.paths.v[2].s, "/abs/c.yar");
        CHECK_EQ_STR(p->yara.paths.v[3].s, "/etc/sluice/../d");
        CHECK_EQ_STR(p->events.eve, "/etc/sluice/log/eve.json");
    } else {
        CHECK(0);
    }
    rules_policy_unref(p);

    p = rules_policy_parse("conf/policy.yaml", yaml, strlen(yaml), 0, err, sizeof(err));
    CHECK(p != NULL && strcmp(p->yara.paths.v[0].s, "conf/a.yar") == 0);
    CHECK(p != NULL && strcmp(p->events.eve, "conf/log/eve.json") == 0);
    rules_policy_unref(p);

    p = rules_policy_parse("/policy.yaml", yaml, strlen(yaml), 0, err, sizeof(err));
    CHECK(p != NULL && strcmp(p->yara.paths.v[0].s, "/a.yar") == 0);
    rules_policy_unref(p);

    /* nDPI files must exist when loaded, relative to the policy too. */
    p = rules_policy_load(data("missing-ndpi.yaml"), 0, err, sizeof(err));
    CHECK(p == NULL);
    snprintf(want, sizeof(want),
             "%s:3:13: ndpi.ja3_file: cannot read '%s/ndpi/missing.csv': No such file or directory",
             data("missing-ndpi.yaml"), data_dir);
    CHECK_EQ_STR(err, want);

    snprintf(text, sizeof(text), "ndpi:\n  sha1_file: %s/ndpi\n", data_dir);
    p = parse(text, 0, err);
    CHECK(p == NULL);
    snprintf(want, sizeof(want),
             "policy.yaml:2:14: ndpi.sha1_file: cannot read '%s/ndpi': Is a "
             "directory",
             data_dir);
    CHECK_EQ_STR(err, want);

    snprintf(text, sizeof(text), "ndpi:\n  sha1_file: %s/ndpi/sha1.csv\n", data_dir);
    p = parse(text, 0, err);
    CHECK(p != NULL);
    rules_policy_unref(p);
}

static void test_yara_compile(void)
{
    char err[RULES_ERRLEN], want[8192];
    struct rules_policy *p;

    /* With compile == 0 rule paths are only syntax: nothing is opened. */
    p = parse("yara:\n  rules: /nonexistent/x.yar\n", 0, err);
    CHECK(p != NULL);
    rules_policy_unref(p);
    p = parse("yara:\n  rules: /nonexistent/x.yar\n", 1, err);
    CHECK(p == NULL);
    CHECK_EQ_STR(err, "policy.yaml:2:10: yara.rules: cannot read '/nonexistent/x.yar': No such "
                      "file or directory");

    /* Built-in only. */
    p = rules_policy_load(NULL, 1, err, sizeof(err));
    CHECK(p != NULL);
    CHECK_EQ_INT(rules_yara_count(p), 1);
    CHECK(rules_yara_warning(p, 0) == NULL);
    rules_policy_unref(p);

    /* Nothing to compile: no rules, no scanners. */
    p = parse("yara:\n  builtin: false\n", 1, err);
    CHECK(p != NULL && p->compiled == NULL);
    CHECK_EQ_INT(rules_yara_count(p), 0);
    CHECK(rules_scanner_new(p) == NULL);
    rules_policy_unref(p);

    /* A file and a folder. */
    p = rules_policy_load(data("full.yaml"), 1, err, sizeof(err));
    CHECK(p != NULL);
    CHECK_EQ_INT(rules_yara_count(p), 5); /* one.yar: 2, rules.d: 3, no built-in */
    rules_policy_unref(p);

    /* A file with a syntax error: named with its line. */
    p = rules_policy_load(data("bad-rules.yaml"), 1, err, sizeof(err));
    CHECK(p == NULL);
    snprintf(want, sizeof(want), "%s/rules/bad.yar:3: syntax error", data_dir);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    if (strncmp(err, want, strlen(want)) != 0)
        fprintf(stderr, "  got: %s\n", err);
    /* ... but only when compiling. */
    p = rules_policy_load(data("bad-rules.yaml"), 0, err, sizeof(err));
    CHECK(p != NULL);
    rules_policy_unref(p);

    /* Missing file and empty folder: the policy key's position. */
    p = rules_policy_load(data("missing-rules.yaml"), 1, err, sizeof(err));
    CHECK(p == NULL);
    snprintf(want, sizeof(want),
             "%s:5:7: yara.rules: cannot read '%s/rules/missing.yar': No such file or directory",
             data("missing-rules.yaml"), data_dir);
    CHECK_EQ_STR(err, want);
    p = rules_policy_load(data("no-rules-folder.yaml"), 1, err, sizeof(err));
    CHECK(p == NULL);
    snprintf(want, sizeof(want), "%s:2:10: yara.rules: no .yar or .yara files in '%s/norules'",
             data("no-rules-folder.yaml"), data_dir);
    CHECK_EQ_STR(err, want);

    p = parse("yara:\n  rules: [/dev/null]\n", 1, err);
    CHECK(p == NULL);
    CHECK_EQ_STR(err, "policy.yaml:2:11: yara.rules: '/dev/null' is not a file or a folder");

    /* Compiler warnings are kept for the caller to log. */
    p = rules_policy_load(data("slow-rules.yaml"), 1, err, sizeof(err));
    CHECK(p != NULL);
    CHECK_EQ_INT(rules_yara_count(p), 1);
    snprintf(want, sizeof(want), "%s/rules/slow.yar:4: ", data_dir);
    CHECK(rules_yara_warning(p, 0) != NULL &&
          strncmp(rules_yara_warning(p, 0), want, strlen(want)) == 0);
    rules_policy_unref(p);
}

static void test_yara_scan(void)
{
    char err[RULES_ERRLEN], buf[4096];
    struct rules_match m[RULES_MAX_MATCHES];
    struct rules_scanner *s;
    struct rules_policy *p;
    size_t n;
    int rc;

    /* EICAR in the middle of a buffer. */
    p = rules_policy_load(NULL, 1, err, sizeof(err));
    CHECK(p != NULL);
    if (p == NULL)
        return;
    s = rules_scanner_new(p);
    CHECK(s != NULL);
    if (s == NULL) {
        rules_policy_unref(p);
        return;
    }
    memset(buf, 'A', sizeof(buf));
    n = eicar(buf + 1000);
    CHECK_EQ_INT(n, 68);
    rc = rules_scan(s, (const uint8_t *)buf, sizeof(buf), m, RULES_MAX_MATCHES, err, sizeof(err));
    CHECK_EQ_INT(rc, 1);
    CHECK_EQ_STR(m[0].rule, "EICAR_Test_File");
    CHECK_EQ_STR(m[0].ns, "builtin");
    CHECK_EQ_STR(m[0].category, "malware-test");
    CHECK_EQ_INT(m[0].severity, 1);

    /* Clean buffer; one byte of EICAR changed; empty buffer. */
    memset(buf, 'A', sizeof(buf));
    rc = rules_scan(s, (const uint8_t *)buf, sizeof(buf), m, RULES_MAX_MATCHES, err, sizeof(err));
    CHECK_EQ_INT(rc, 0);
    eicar(buf + 10);
    buf[40] ^= 0x20;
    rc = rules_scan(s, (const uint8_t *)buf, sizeof(buf), m, RULES_MAX_MATCHES, err, sizeof(err));
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(rules_scan(s, NULL, 0, m, RULES_MAX_MATCHES, err, sizeof(err)), 0);
    rules_scanner_free(s);
    rules_policy_unref(p);

    /* User rules: meta, defaults, namespaces, folder order. */
    p = rules_policy_load(data("full.yaml"), 1, err, sizeof(err));
    CHECK(p != NULL);
    if (p == NULL)
        return;
    s = rules_scanner_new(p);
    CHECK(s != NULL);
    snprintf(buf, sizeof(buf), "GET / SLUICE-TEST-WEBSHELL SLUICE-TEST-NO-META %s",
             "SLUICE-TEST-C SLUICE-TEST-B SLUICE-TEST-A");
    rc = rules_scan(s, (const uint8_t *)buf, strlen(buf), m, RULES_MAX_MATCHES, err, sizeof(err));
    CHECK_EQ_INT(rc, 5);
    if (rc == 5) {
        CHECK_EQ_STR(m[0].rule, "Sluice_Test_Webshell");
        CHECK_EQ_STR(m[0].ns, "one.yar");
        CHECK_EQ_STR(m[0].category, "webshell");
        CHECK_EQ_INT(m[0].severity, 2);
        CHECK_EQ_STR(m[1].rule, "Sluice_Test_No_Meta");
        CHECK_EQ_STR(m[1].category, "malware");
        CHECK_EQ_INT(m[1].severity, 1);
        /* rules.d/a-first.yara, rules.d/b-second.yar, rules.d/sub/c-third.yar */
        CHECK_EQ_STR(m[2].rule, "First");
        CHECK_EQ_STR(m[2].ns, "a-first.yara");
        CHECK_EQ_STR(m[3].rule, "Second");
        CHECK_EQ_STR(m[3].ns, "b-second.yar");
        CHECK_EQ_STR(m[4].rule, "Third");
        CHECK_EQ_STR(m[4].ns, "c-third.yar");
    }
    /* More matches than room: the count is still the real one. */
    memset(m, 0, sizeof(m));
    rc = rules_scan(s, (const uint8_t *)buf, strlen(buf), m, 2, err, sizeof(err));
    CHECK_EQ_INT(rc, 5);
    CHECK_EQ_STR(m[1].rule, "Sluice_Test_No_Meta");
    CHECK_EQ_STR(m[2].rule, "");
    rc = rules_scan(s, (const uint8_t *)buf, strlen(buf), NULL, 0, err, sizeof(err));
    CHECK_EQ_INT(rc, 5);
    rules_scanner_free(s);
    rules_policy_unref(p);

    /* A folder alone. */
    p = rules_policy_load(data("rules-dir.yaml"), 1, err, sizeof(err));
    CHECK(p != NULL);
    CHECK_EQ_INT(rules_yara_count(p), 3);
    rules_policy_unref(p);

    CHECK_EQ_INT(rules_scan(NULL, (const uint8_t *)"x", 1, m, 1, err, sizeof(err)), -1);
}

/* Which rules a match on a piece of a body proves: only those whose
 * condition asks that strings occur. */
static void test_window_certain(void)
{
    static const struct {
        const char *rule, *condition;
        int certain;
    } cases[] = {
        {"plain", "$a", 1},
        {"either", "$a or ($b and $a)", 1},
        {"any_of", "any of them", 1},
        {"all_of", "all of ($a, $b*)", 1},
        {"two_of", "2 of them", 1},
        {"count_from_below", "#a > 2 and #a >= 3", 1},
        {"size", "$a and filesize < 1MB", 0},
        {"negation", "$a and not $b", 0},
        {"offset", "$a at 0", 0},
        {"range", "$a in (0..100)", 0},
        {"magic", "uint16(0) == 0x5a4d and $a", 0},
        {"count_exact", "#a == 1", 0},
        {"count_below", "#a < 3 and $a", 0},
        {"module", "$a and math.entropy(0, filesize) > 7", 0},
        {"loop", "for any i in (1..#a) : (@a[i] > 10)", 0},
        {"rule_ref", "plain and $a", 0},
    };
    char path[] = "/tmp/sluice-test-window-XXXXXX";
    char yaml[256], err[RULES_ERRLEN];
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "w");
    fprintf(f, "import \"math\"\n/* rule fake { condition: true } */\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fprintf(f,
                "rule %s : tag {\n meta:\n  note = \"condition: not } here\"\n strings:\n"
                "  $a = \"WINDOW-A\" // $a\n  $b = { 57 49 4e [3] 2d 42 }\n"
                " condition:\n  (%s) or $b\n}\n",
                cases[i].rule, cases[i].condition);
    /* Strings that read the edges of the data: never certain on a piece. */
    fprintf(f, "rule edge_regex { strings: $r = /x{1,2}}|WINDOW-B$/ condition: $r }\n"
               "rule edge_word { strings: $w = \"WINDOW\" fullword condition: $w }\n");
    fclose(f);
    snprintf(yaml, sizeof(yaml), "yara:\n  builtin: false\n  rules: [%s]\n", path);
    struct rules_policy *p =
        rules_policy_parse("policy.yaml", yaml, strlen(yaml), 1, err, sizeof(err));
    CHECK(p != NULL);
    if (p == NULL) {
        fprintf(stderr, "  %s\n", err);
        unlink(path);
        return;
    }
    CHECK_EQ_INT(rules_yara_window_count(p), 6);
    struct rules_scanner *s = rules_scanner_new(p);
    struct rules_match m[RULES_MAX_MATCHES];
    static const char buf[] = "..WINDOW-A..WINDOW-A..WINDOW-A..WINDOW-B";
    int n = rules_scan(s, (const uint8_t *)buf, sizeof(buf) - 1, m, RULES_MAX_MATCHES, err,
                       sizeof(err));
    CHECK_EQ_INT(n, (int)(sizeof(cases) / sizeof(cases[0])) + 2);
    for (int i = 0; i < n && i < RULES_MAX_MATCHES; i++) {
        int want = -1;
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
            if (strcmp(cases[k].rule, m[i].rule) == 0)
                want = cases[k].certain;
        CHECK_EQ_INT(m[i].window_certain, want);
    }
    static const char edges[] = "..xx}.. WINDOW ..";
    n = rules_scan(s, (const uint8_t *)edges, sizeof(edges) - 1, m, RULES_MAX_MATCHES, err,
                   sizeof(err));
    CHECK_EQ_INT(n, 2);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(m[i].window_certain, 0);
    rules_scanner_free(s);
    rules_policy_unref(p);
    unlink(path);
}

static void test_refcount(void)
{
    char err[RULES_ERRLEN], buf[256];
    struct rules_match m[RULES_MAX_MATCHES];
    struct rules_scanner *s;
    struct rules_policy *p;
    size_t n;

    p = rules_policy_load(NULL, 1, err, sizeof(err));
    CHECK(p != NULL);
    if (p == NULL)
        return;
    CHECK_EQ_INT(p->refs, 1);
    CHECK(rules_policy_ref(p) == p);
    CHECK_EQ_INT(p->refs, 2);
    rules_policy_unref(p);
    CHECK_EQ_INT(p->refs, 1);

    /* A scanner keeps its policy: dropping the caller's reference (as a
     * reload does) leaves the rules valid until the scanner goes. */
    s = rules_scanner_new(p);
    CHECK(s != NULL);
    CHECK_EQ_INT(p->refs, 2);
    rules_policy_unref(p);
    memset(buf, ' ', sizeof(buf));
    n = eicar(buf + 100);
    CHECK_EQ_INT(rules_scan(s, (const uint8_t *)buf, 100 + n + 10, m, 1, err, sizeof(err)), 1);
    rules_scanner_free(s); /* frees the policy: ASan would see any use after */

    CHECK(rules_policy_ref(NULL) == NULL);
    rules_policy_unref(NULL);
    rules_scanner_free(NULL);
}

/* A reload that fails leaves the running policy as it was. */
static void test_broken_reload(void)
{
    char err[RULES_ERRLEN], buf[256];
    struct rules_match m[RULES_MAX_MATCHES];
    struct rules_policy *good, *bad;
    struct rules_scanner *s;
    size_t n;

    good = rules_policy_load(data("full.yaml"), 1, err, sizeof(err));
    CHECK(good != NULL);
    if (good == NULL)
        return;
    s = rules_scanner_new(good);
    bad = rules_policy_load(data("bad-rules.yaml"), 1, err, sizeof(err));
    CHECK(bad == NULL);
    bad = rules_policy_load(data("bad-syntax.yaml"), 1, err, sizeof(err));
    CHECK(bad == NULL);

    CHECK_EQ_INT(good->limits.body, 8 << 20);
    CHECK_EQ_INT(good->refs, 2);
    CHECK_EQ_INT(rules_yara_count(good), 5);
    n = (size_t)snprintf(buf, sizeof(buf), "xx SLUICE-TEST-WEBSHELL xx");
    CHECK_EQ_INT(rules_scan(s, (const uint8_t *)buf, n, m, 8, err, sizeof(err)), 1);
    CHECK_EQ_STR(m[0].rule, "Sluice_Test_Webshell");
    /* A second scanner, as a new worker thread would make. */
    struct rules_scanner *s2 = rules_scanner_new(good);
    CHECK(s2 != NULL);
    CHECK_EQ_INT(rules_scan(s2, (const uint8_t *)buf, n, m, 8, err, sizeof(err)), 1);
    rules_scanner_free(s2);
    rules_scanner_free(s);
    rules_policy_unref(good);
}

#define THREADS 4

struct worker {
    struct rules_policy *shared; /* NULL: load a policy of its own */
    int matches, errors;
};

/* What a worker thread does: its own scanner over rules compiled once. */
static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct rules_match m[RULES_MAX_MATCHES];
    char err[RULES_ERRLEN], buf[512];
    struct rules_policy *p;
    struct rules_scanner *s;
    size_t n;

    p = w->shared != NULL ? rules_policy_ref(w->shared) : rules_policy_load(NULL, 1, err, 512);
    s = rules_scanner_new(p);
    if (s == NULL) {
        w->errors++;
        rules_policy_unref(p);
        return NULL;
    }
    memset(buf, 'x', sizeof(buf));
    n = eicar(buf + 200);
    for (int i = 0; i < 200; i++) {
        int rc = rules_scan(s, (const uint8_t *)buf, i % 2 ? 200 + n : 200, m, 8, err, 512);
        if (rc < 0)
            w->errors++;
        else
            w->matches += rc;
        rules_policy_unref(rules_policy_ref(p));
    }
    rules_scanner_free(s);
    rules_policy_unref(p);
    return NULL;
}

/* Runs first: threads racing to initialize YARA, then sharing one policy. */
static void test_threads(void)
{
    struct worker w[THREADS];
    pthread_t t[THREADS];
    char err[RULES_ERRLEN];
    struct rules_policy *shared;
    int i;

    for (int round = 0; round < 2; round++) {
        shared = round == 0 ? NULL : rules_policy_load(NULL, 1, err, sizeof(err));
        CHECK(round == 0 || shared != NULL);
        for (i = 0; i < THREADS; i++) {
            w[i] = (struct worker){shared, 0, 0};
            CHECK_EQ_INT(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
        }
        for (i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            CHECK_EQ_INT(w[i].errors, 0);
            CHECK_EQ_INT(w[i].matches, 100);
        }
        if (shared != NULL) {
            CHECK_EQ_INT(shared->refs, 1);
            rules_policy_unref(shared);
        }
    }
}

/* What the TLS proxy cannot intercept: tls.quic and tls.other_ports, and
 * the port lists the engine matches them against. */
static void test_tls_ports(void)
{
    char err[RULES_ERRLEN];
    struct rules_policy *p;

    p = parse("tls:\n  quic: pass\n  other_ports: block\n", 0, err);
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK_EQ_INT(p->tls.quic, RULES_QUIC_PASS);
        CHECK_EQ_INT(p->tls.other_ports, RULES_OTHER_BLOCK);
        CHECK_EQ_INT(p->tls.intercept, 1);
    }
    rules_policy_unref(p);
    p = parse("tls: {quic: BLOCK, other_ports: Pass}\n", 0, err);
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK_EQ_INT(p->tls.quic, RULES_QUIC_BLOCK);
        CHECK_EQ_INT(p->tls.other_ports, RULES_OTHER_PASS);
    }
    rules_policy_unref(p);
    p = parse("tls:\n  other_ports: alert\n", 0, err);
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK_EQ_INT(p->tls.other_ports, RULES_OTHER_ALERT);
        /* alert and block are the actions alerts carry */
        CHECK_EQ_INT(p->tls.other_ports, RULES_ACTION_ALERT);
        CHECK_EQ_INT(RULES_OTHER_BLOCK, RULES_ACTION_BLOCK);
    }
    rules_policy_unref(p);

    CHECK_PARSE_ERR("tls:\n  quic: alert\n",
                    "policy.yaml:2:9: tls.quic: 'alert' is not valid (use block or pass)");
    CHECK_PARSE_ERR("tls:\n  other_ports: drop\n",
                    "policy.yaml:2:16: tls.other_ports: 'drop' is not valid (use alert, block or "
                    "pass)");
    CHECK_PARSE_ERR("tls:\n  quic: [block]\n",
                    "policy.yaml:2:9: tls.quic: expected a single word, found a list");
    CHECK_PARSE_ERR("tls:\n  quic:\n",
                    "policy.yaml:2:8: tls.quic: empty value (remove the key for the default)");

    p = parse("tls:\n  ports: [443, \"8000:8999\", 993, \"x\", \"10:5\"]\n", 0, err);
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK(rules_port_listed(&p->tls.ports, 443));
        CHECK(rules_port_listed(&p->tls.ports, 993));
        CHECK(rules_port_listed(&p->tls.ports, 8000));
        CHECK(rules_port_listed(&p->tls.ports, 8443));
        CHECK(rules_port_listed(&p->tls.ports, 8999));
        CHECK(!rules_port_listed(&p->tls.ports, 9000));
        CHECK(!rules_port_listed(&p->tls.ports, 444));
        CHECK(!rules_port_listed(&p->tls.ports, 7));
        CHECK(!rules_port_listed(&p->tls.ports, 0));
    }
    rules_policy_unref(p);
    p = parse("tls:\n  ports: []\n", 0, err);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK(!rules_port_listed(&p->tls.ports, 443));
    rules_policy_unref(p);
    p = parse("", 0, err);
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK(rules_port_listed(&p->tls.ports, 443));
        CHECK(!rules_port_listed(&p->tls.ports, 8443));
    }
    rules_policy_unref(p);
}

/* tls.mtls_splice entries and the addresses they match; the TLS proxy's
 * resource keys. */
static void test_tls_keys(void)
{
    char err[RULES_ERRLEN];
    const uint8_t v4[4] = {10, 1, 2, 3}, other[4] = {11, 1, 2, 3};
    uint8_t v6[16] = {0xfd, 0x00};
    v6[15] = 1;

    CHECK_EQ_INT(rules_dest_match("10.0.0.0/8", 4, v4, 443), 1);
    CHECK_EQ_INT(rules_dest_match("10.0.0.0/8", 4, other, 443), 0);
    CHECK_EQ_INT(rules_dest_match("10.1.2.3", 4, v4, 8443), 1);
    CHECK_EQ_INT(rules_dest_match("10.0.0.0/8:443", 4, v4, 443), 1);
    CHECK_EQ_INT(rules_dest_match("10.0.0.0/8:443", 4, v4, 8443), 0);
    CHECK_EQ_INT(rules_dest_match("0.0.0.0/0", 4, other, 1), 1);
    CHECK_EQ_INT(rules_dest_match("fd00::/8", 6, v6, 443), 1);
    CHECK_EQ_INT(rules_dest_match("fd00::/8", 4, v4, 443), 0);
    CHECK_EQ_INT(rules_dest_match("[fd00::/8]:443", 6, v6, 443), 1);
    CHECK_EQ_INT(rules_dest_match("[fd00::/8]:443", 6, v6, 80), 0);
    CHECK_EQ_INT(rules_dest_match("10.0.0.0/33", 0, NULL, 0), -1);
    CHECK_EQ_INT(rules_dest_match("10.0.0.0/8:0", 0, NULL, 0), -1);
    CHECK_EQ_INT(rules_dest_match("10.0.0.0/8:99999", 0, NULL, 0), -1);
    CHECK_EQ_INT(rules_dest_match("bank.example", 0, NULL, 0), -1);
    CHECK_EQ_INT(rules_dest_match("[fd00::/8", 0, NULL, 0), -1);

    struct rules_policy *p = parse("tls:\n  non_tls: pass\n  mtls_splice: [10.0.0.0/8, "
                                   "\"[fd00::/8]:443\"]\n  max_per_container: 10\n"
                                   "  held_total: 64MiB\n  stall_timeout: 5s\n"
                                   "  bypass_confirm: 0\n",
                                   0, err);
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK_EQ_INT(p->tls.non_tls, RULES_NON_TLS_PASS);
        CHECK_EQ_INT(p->tls.mtls_splice.n, 2);
        CHECK_EQ_INT(p->tls.max_per_container, 10);
        CHECK(p->tls.held_total == 64u << 20);
        CHECK_EQ_INT(p->tls.stall_timeout_s, 5);
        CHECK_EQ_INT(p->tls.bypass_confirm_s, 0);
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    rules_policy_unref(p);
    p = parse("", 0, err);
    CHECK(p != NULL);
    if (p != NULL) {
        CHECK_EQ_INT(p->tls.non_tls, RULES_NON_TLS_REFUSE);
        CHECK_EQ_INT(p->tls.mtls_splice.n, 0);
        CHECK_EQ_INT(p->tls.max_per_container, 2000);
        CHECK(p->tls.held_total == 256u << 20);
        CHECK_EQ_INT(p->tls.stall_timeout_s, 30);
        CHECK_EQ_INT(p->tls.bypass_confirm_s, 300);
    }
    rules_policy_unref(p);
    CHECK_PARSE_ERR("tls:\n  mtls_splice: [bank.example]\n",
                    "policy.yaml:2:17: tls.mtls_splice: 'bank.example' is not CIDR, CIDR:port or "
                    "[CIDR]:port");
    CHECK_PARSE_ERR("tls:\n  non_tls: splice\n",
                    "policy.yaml:2:12: tls.non_tls: 'splice' is not valid (use refuse or pass)");
}

int main(void)
{
    const char *srcdir = getenv("SRCDIR");

    snprintf(data_dir, sizeof(data_dir), "%s/tests/unit/data/policy",
             srcdir != NULL && *srcdir != '\0' ? srcdir : ".");
    test_threads();
    test_defaults();
    test_full();
    test_spellings();
    test_errors();
    test_tls_ports();
    test_sizes();
    test_durations();
    test_paths();
    test_yara_compile();
    test_yara_scan();
    test_window_certain();
    test_refcount();
    test_broken_reload();
    test_tls_keys();
    CHECK_DONE();
}
