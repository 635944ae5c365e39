/*
 * The JSON reader: valid documents, every class of error with its offset,
 * nesting limits, numbers at the edges, and a Docker Engine API reply.
 */
#include "jsonp.h"

#include <math.h>

#include "check.h"

/* Parses text; returns the doc (or NULL) and leaves the message in err. */
static struct jsonp_doc *parse(const char *text, char *err, size_t errlen)
{
    return jsonp_parse(text, strlen(text), err, errlen);
}

/* text must fail with exactly this message. */
static void check_error(const char *text, const char *want, int line)
{
    char err[128];
    struct jsonp_doc *d = parse(text, err, sizeof(err));

    check_count++;
    if (d != NULL || strcmp(err, want) != 0) {
        check_failures++;
        fprintf(stderr, "%s:%d: parsing '%s': got \"%s\", want \"%s\"\n", __FILE__, line, text,
                d ? "(parsed)" : err, want);
    }
    jsonp_free(d);
}
#define CHECK_ERROR(text, want) check_error(text, want, __LINE__)

static void check_valid(const char *text, int line)
{
    char err[128];
    struct jsonp_doc *d = parse(text, err, sizeof(err));

    check_count++;
    if (d == NULL) {
        check_failures++;
        fprintf(stderr, "%s:%d: parsing '%s' failed: %s\n", __FILE__, line, text, err);
    }
    jsonp_free(d);
}
#define CHECK_VALID(text) check_valid(text, __LINE__)

static void test_scalars(void)
{
    char err[128];
    struct jsonp_doc *d;
    const struct jsonp_value *v;

    d = parse(" true ", err, sizeof(err));
    CHECK(d != NULL);
    v = jsonp_root(d);
    CHECK_EQ_INT(v->type, JSONP_BOOL);
    CHECK_EQ_INT(v->boolean, 1);
    jsonp_free(d);

    d = parse("false", err, sizeof(err));
    CHECK(d && jsonp_root(d)->type == JSONP_BOOL && jsonp_root(d)->boolean == 0);
    jsonp_free(d);

    d = parse("null", err, sizeof(err));
    CHECK(d && jsonp_root(d)->type == JSONP_NULL);
    jsonp_free(d);

    d = parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", err, sizeof(err));
    CHECK(d != NULL);
    v = jsonp_root(d);
    CHECK_EQ_INT(v->type, JSONP_STRING);
    CHECK_EQ_STR(v->str, "a\"b\\c/d\b\f\n\r\t");
    CHECK_EQ_INT(v->len, 12);
    CHECK_EQ_STR(jsonp_str(v, NULL), v->str);
    jsonp_free(d);

    d = parse("\"\"", err, sizeof(err));
    CHECK(d && jsonp_root(d)->len == 0 && jsonp_root(d)->str[0] == '\0');
    jsonp_free(d);
}

static void test_unicode(void)
{
    char err[128];
    struct jsonp_doc *d;

    /* One, two, three and four UTF-8 bytes from escapes; raw UTF-8 kept. */
    d = parse("\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", err,
              sizeof(err));
    CHECK(d != NULL);
    if (d) {
        CHECK_EQ_STR(jsonp_root(d)->str,
                     "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        CHECK_EQ_INT(jsonp_root(d)->len, 20);
    }
    jsonp_free(d);

    /* Highest code point, U+10FFFF. */
    d = parse("\"\\udbff\\udfff\"", err, sizeof(err));
    CHECK(d && strcmp(jsonp_root(d)->str, "\xf4\x8f\xbf\xbf") == 0);
    jsonp_free(d);

    CHECK_ERROR("\"a\\u0000b\"", "offset 2: \\u0000 is not allowed");
    CHECK_ERROR("\"\\ud800\"", "offset 1: lone high surrogate \\ud800");
    CHECK_ERROR("\"\\ud800\\u0041\"", "offset 1: lone high surrogate \\ud800");
    CHECK_ERROR("\"\\ud800\\ud800\"", "offset 1: lone high surrogate \\ud800");
    CHECK_ERROR("\"x\\udc00\"", "offset 2: lone low surrogate \\udc00");
    CHECK_ERROR("\"\\u12\"", "offset 1: invalid \\u escape");
    CHECK_ERROR("\"\\u12g4\"", "offset 1: invalid \\u escape");
    CHECK_ERROR("\"\\x\"", "offset 1: invalid escape");
    CHECK_ERROR("\"\\'\"", "offset 1: invalid escape");
    /* Raw bytes that are not UTF-8: lone continuation, overlong, surrogate,
     * past U+10FFFF, cut short. */
    CHECK_ERROR("\"\x80\"", "offset 1: invalid UTF-8 in string");
    CHECK_ERROR("\"\xc0\xaf\"", "offset 1: invalid UTF-8 in string");
    CHECK_ERROR("\"ab\xed\xa0\x80\"", "offset 3: invalid UTF-8 in string");
    CHECK_ERROR("\"\xf4\x90\x80\x80\"", "offset 1: invalid UTF-8 in string");
    CHECK_ERROR("\"\xe2\x82\"", "offset 1: invalid UTF-8 in string");
    CHECK_ERROR("\"\xff\"", "offset 1: invalid UTF-8 in string");
    CHECK_ERROR("\"a\tb\"", "offset 2: control character 0x09 in string");
    CHECK_ERROR("\"a\nb\"", "offset 2: control character 0x0a in string");
    CHECK_ERROR("\"abc", "offset 0: unterminated string");
    CHECK_ERROR("\"abc\\\"", "offset 0: unterminated string");
    CHECK_ERROR("\"abc\\", "offset 0: unterminated string");
}

static void test_numbers(void)
{
    char err[128];
    struct jsonp_doc *d;
    const struct jsonp_value *v;
    static const struct {
        const char *text;
        double want;
    } ok[] = {
        {"0", 0},
        {"-0", -0.0},
        {"7", 7},
        {"-12", -12},
        {"3.25", 3.25},
        {"1e3", 1000},
        {"1E+3", 1000},
        {"25e-1", 2.5},
        {"-0.5e1", -5},
        {"9007199254740993", 9007199254740992.0},
        {"18446744073709551616", 18446744073709551616.0},
        {"1.7976931348623157e308", 1.7976931348623157e308},
        {"1e-400", 0}, /* underflow is a tiny number, not an error */
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        d = parse(ok[i].text, err, sizeof(err));
        CHECK(d != NULL);
        if (d == NULL) {
            fprintf(stderr, "  %s: %s\n", ok[i].text, err);
            continue;
        }
        v = jsonp_root(d);
        CHECK_EQ_INT(v->type, JSONP_NUMBER);
        CHECK(v->num == ok[i].want);
        jsonp_free(d);
    }

    /* A number longer than any buffer on the stack. */
    char big[700];
    memset(big, '9', sizeof(big) - 1);
    big[0] = '1';
    big[300] = '.';
    big[sizeof(big) - 1] = '\0';
    d = parse(big, err, sizeof(err));
    CHECK(d && jsonp_root(d)->num > 9.9e298 && isfinite(jsonp_root(d)->num));
    jsonp_free(d);
    big[sizeof(big) - 2] = '\0';
    big[300] = '9';
    CHECK_ERROR(big, "offset 0: number out of range");

    CHECK_ERROR("1e309", "offset 0: number out of range");
    CHECK_ERROR("-1e999", "offset 0: number out of range");
    CHECK_ERROR("01", "offset 0: invalid number: leading zero");
    CHECK_ERROR("-01", "offset 0: invalid number: leading zero");
    CHECK_ERROR("-", "offset 1: invalid number: digit expected");
    CHECK_ERROR("-a", "offset 1: invalid number: digit expected");
    CHECK_ERROR("1.", "offset 2: invalid number: digit expected after '.'");
    CHECK_ERROR("1.e5", "offset 2: invalid number: digit expected after '.'");
    CHECK_ERROR("1e", "offset 2: invalid number: digit expected in exponent");
    CHECK_ERROR("1e+", "offset 3: invalid number: digit expected in exponent");
    CHECK_ERROR("+1", "offset 0: unexpected '+', expected a value");
    CHECK_ERROR(".5", "offset 0: unexpected '.', expected a value");
    CHECK_ERROR("NaN", "offset 0: unexpected 'N', expected a value");
    CHECK_ERROR("Infinity", "offset 0: unexpected 'I', expected a value");
    CHECK_ERROR("0x10", "offset 1: unexpected 'x', expected end of input");
    CHECK_ERROR("[1,2.]", "offset 5: invalid number: digit expected after '.'");
}

static void test_containers(void)
{
    char err[128];
    struct jsonp_doc *d;
    const struct jsonp_value *v, *m;

    d = parse("[]", err, sizeof(err));
    CHECK(d && jsonp_root(d)->type == JSONP_ARRAY && jsonp_root(d)->len == 0 &&
          jsonp_root(d)->child == NULL);
    jsonp_free(d);

    d = parse(" { } ", err, sizeof(err));
    CHECK(d && jsonp_root(d)->type == JSONP_OBJECT && jsonp_root(d)->len == 0);
    jsonp_free(d);

    d = parse("[1, \"two\", [3], {\"four\": 4}, null, true]", err, sizeof(err));
    CHECK(d != NULL);
    v = jsonp_root(d);
    CHECK_EQ_INT(v->len, 6);
    m = v->child;
    CHECK(m && m->type == JSONP_NUMBER && m->num == 1 && m->key == NULL);
    m = m->next;
    CHECK(m && m->type == JSONP_STRING && strcmp(m->str, "two") == 0);
    m = m->next;
    CHECK(m && m->type == JSONP_ARRAY && m->len == 1 && m->child->num == 3);
    m = m->next;
    CHECK(m && m->type == JSONP_OBJECT && jsonp_get(m, "four")->num == 4);
    m = m->next;
    CHECK(m && m->type == JSONP_NULL);
    m = m->next;
    CHECK(m && m->type == JSONP_BOOL && m->boolean && m->next == NULL);
    jsonp_free(d);

    /* Keys are unescaped; duplicates are legal and the first wins; get and
     * path refuse what is not an object. */
    d = parse("{\"a\\u00e9\":1,\"a\":{\"b\":{\"c\":\"deep\"}},\"a\":2,\"\":3}", err, sizeof(err));
    CHECK(d != NULL);
    v = jsonp_root(d);
    CHECK_EQ_INT(v->len, 4);
    CHECK(jsonp_get(v, "a\xc3\xa9") && jsonp_get(v, "a\xc3\xa9")->num == 1);
    CHECK(jsonp_get(v, "a") && jsonp_get(v, "a")->type == JSONP_OBJECT);
    CHECK(jsonp_get(v, "")->num == 3);
    CHECK_EQ_STR(jsonp_str(jsonp_path(v, "a.b.c"), NULL), "deep");
    CHECK(jsonp_path(v, "a.b") && jsonp_path(v, "a.b")->type == JSONP_OBJECT);
    CHECK(jsonp_path(v, "a.b.c.d") == NULL);
    CHECK(jsonp_path(v, "a.x") == NULL);
    CHECK(jsonp_path(v, "a.") == NULL);
    CHECK(jsonp_get(v, "missing") == NULL);
    CHECK(jsonp_get(NULL, "a") == NULL);
    CHECK(jsonp_get(jsonp_get(v, ""), "a") == NULL);
    CHECK_EQ_STR(jsonp_str(jsonp_get(v, ""), "dflt"), "dflt");
    CHECK_EQ_STR(jsonp_str(NULL, "dflt"), "dflt");
    CHECK(jsonp_root(NULL) == NULL);
    jsonp_free(d);
    jsonp_free(NULL);

    /* Whitespace of every kind between tokens. */
    CHECK_VALID(" \t\r\n{ \t\r\n\"k\" \t\r\n: \t\r\n[ 1 , 2 ] \t\r\n} \t\r\n");
}

static void test_errors(void)
{
    char small[12];

    CHECK_ERROR("", "offset 0: unexpected end of input, expected a value");
    CHECK_ERROR("   ", "offset 3: unexpected end of input, expected a value");
    CHECK_ERROR("tru", "offset 0: invalid literal, expected true");
    CHECK_ERROR("nul", "offset 0: invalid literal, expected null");
    CHECK_ERROR("fals e", "offset 0: invalid literal, expected false");
    CHECK_ERROR("True", "offset 0: unexpected 'T', expected a value");
    CHECK_ERROR("truex", "offset 4: unexpected 'x', expected end of input");
    CHECK_ERROR("{} {}", "offset 3: unexpected '{', expected end of input");
    CHECK_ERROR("1 2", "offset 2: unexpected '2', expected end of input");
    CHECK_ERROR("[1,]", "offset 3: unexpected ']', expected a value");
    CHECK_ERROR("[,1]", "offset 1: unexpected ',', expected a value");
    CHECK_ERROR("[1 2]", "offset 3: unexpected '2', expected ',' or ']'");
    CHECK_ERROR("[1", "offset 2: unexpected end of input, expected ',' or ']'");
    CHECK_ERROR("[", "offset 1: unexpected end of input, expected a value");
    CHECK_ERROR("{\"a\":1,}", "offset 7: unexpected '}', expected a member name");
    CHECK_ERROR("{\"a\" 1}", "offset 5: unexpected '1', expected ':'");
    CHECK_ERROR("{\"a\":1 \"b\":2}", "offset 7: unexpected '\"', expected ',' or '}'");
    CHECK_ERROR("{a:1}", "offset 1: unexpected 'a', expected a member name");
    CHECK_ERROR("{1:1}", "offset 1: unexpected '1', expected a member name");
    CHECK_ERROR("{\"a\":}", "offset 5: unexpected '}', expected a value");
    CHECK_ERROR("{\"a\"", "offset 4: unexpected end of input, expected ':'");
    CHECK_ERROR("{\"a\":1", "offset 6: unexpected end of input, expected ',' or '}'");
    CHECK_ERROR("[1}", "offset 2: unexpected '}', expected ',' or ']'");
    CHECK_ERROR("{\"a\":1]", "offset 6: unexpected ']', expected ',' or '}'");
    CHECK_ERROR("'a'", "offset 0: unexpected ''', expected a value");
    CHECK_ERROR("[1]/*c*/", "offset 3: unexpected '/', expected end of input");
    CHECK_ERROR("\xef\xbb\xbf{}", "offset 0: unexpected byte 0xef, expected a value");
    CHECK_ERROR("[\x0c]", "offset 1: unexpected byte 0x0c, expected a value");
    CHECK_ERROR("[1,\xc3\xa9]", "offset 3: unexpected byte 0xc3, expected a value");

    /* A NUL inside the text is an error, not the end of it. */
    char err[128];
    CHECK(jsonp_parse("[1]\0", 4, err, sizeof(err)) == NULL);
    CHECK_EQ_STR(err, "offset 3: unexpected byte 0x00, expected end of input");
    CHECK(jsonp_parse("\"a\0b\"", 5, err, sizeof(err)) == NULL);
    CHECK_EQ_STR(err, "offset 2: control character 0x00 in string");
    /* The text need not be terminated: only len bytes are read. */
    struct jsonp_doc *d = jsonp_parse("[12]34", 3, err, sizeof(err));
    CHECK(d == NULL);
    CHECK_EQ_STR(err, "offset 3: unexpected end of input, expected ',' or ']'");
    d = jsonp_parse("1234", 2, err, sizeof(err));
    CHECK(d && jsonp_root(d)->num == 12);
    jsonp_free(d);
    d = jsonp_parse("\"ab\"cd", 4, err, sizeof(err));
    CHECK(d && strcmp(jsonp_root(d)->str, "ab") == 0);
    jsonp_free(d);

    /* A short or missing error buffer is cut, never overrun. */
    CHECK(jsonp_parse("[", 1, small, sizeof(small)) == NULL);
    CHECK_EQ_STR(small, "offset 1: u");
    CHECK(jsonp_parse("[", 1, NULL, 0) == NULL);
    CHECK(jsonp_parse("[", 1, small, 1) == NULL);
    CHECK_EQ_STR(small, "");
    /* No text at all. */
    CHECK(jsonp_parse(NULL, 0, err, sizeof(err)) == NULL);
}

static char *nest(int depth, const char *open, const char *inner, const char *close)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = malloc((size_t)depth * (lo + lc) + li + 1), *p = s;

    for (int i = 0; i < depth; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (int i = 0; i < depth; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

static void test_depth(void)
{
    char err[128];
    char *s;
    struct jsonp_doc *d;

    s = nest(64, "[", "1", "]");
    d = parse(s, err, sizeof(err));
    CHECK(d != NULL);
    if (d) {
        const struct jsonp_value *v = jsonp_root(d);
        int depth = 0;
        while (v->type == JSONP_ARRAY) {
            v = v->child;
            depth++;
        }
        CHECK_EQ_INT(depth, 64);
        CHECK(v->num == 1);
    }
    jsonp_free(d);
    free(s);

    s = nest(65, "[", "1", "]");
    CHECK_ERROR(s, "offset 64: nesting deeper than 64");
    free(s);

    s = nest(64, "{\"k\":", "{}", "}");
    CHECK_ERROR(s, "offset 320: nesting deeper than 64");
    free(s);
    s = nest(63, "{\"k\":", "{}", "}");
    CHECK_VALID(s);
    free(s);

    /* Far past the limit, as an attacker would send: refused, no crash. */
    s = nest(100000, "[", "", "]");
    CHECK_ERROR(s, "offset 64: nesting deeper than 64");
    free(s);
}

/* A large flat document: many values and strings, several arena blocks. */
static void test_big(void)
{
    char err[128];
    size_t n = 20000, cap = n * 40 + 16, len = 0;
    char *s = malloc(cap);
    struct jsonp_doc *d;

    len += (size_t)snprintf(s + len, cap - len, "[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s{\"i\":%zu,\"s\":\"v\\u00e9%zu\"}",
                                i ? "," : "", i, i);
    len += (size_t)snprintf(s + len, cap - len, "]");
    d = jsonp_parse(s, len, err, sizeof(err));
    CHECK(d != NULL);
    if (d) {
        const struct jsonp_value *v = jsonp_root(d), *last = NULL;
        size_t count = 0, bad = 0;
        char want[32];
        CHECK_EQ_INT(v->len, n);
        for (const struct jsonp_value *m = v->child; m; m = m->next, count++) {
            snprintf(want, sizeof(want), "v\xc3\xa9%zu", count);
            if (jsonp_get(m, "i")->num != (double)count ||
                strcmp(jsonp_str(jsonp_get(m, "s"), ""), want))
                bad++;
            last = m;
        }
        CHECK_EQ_INT(count, n);
        CHECK_EQ_INT(bad, 0);
        CHECK(last && jsonp_get(last, "i")->num == (double)(n - 1));
    }
    jsonp_free(d);
    free(s);
}

/* Shaped like GET /containers/<id>/json of Docker 20.10. */
static const char docker_inspect[] =
    "{\"Id\":\"4f66ad9a0b2e2b9e8f4a6d1c3b7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f901\","
    "\"Created\":\"2024-05-02T09:14:11.123456789Z\",\"Path\":\"sleep\",\"Args\":[\"3600\"],"
    "\"State\":{\"Status\":\"running\",\"Running\":true,\"Paused\":false,\"Pid\":41207,"
    "\"ExitCode\":0,\"StartedAt\":\"2024-05-02T09:14:12Z\"},"
    "\"Name\":\"/web-1\",\"RestartCount\":0,"
    "\"HostConfig\":{\"NetworkMode\":\"appnet\",\"Memory\":0,\"CpuShares\":0,"
    "\"PortBindings\":{\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8080\"}]}},"
    "\"Config\":{\"Hostname\":\"4f66ad9a0b2e\",\"Env\":[\"PATH=/usr/bin:/bin\"],"
    "\"Cmd\":[\"sleep\",\"3600\"],\"Image\":\"sluice-test-busybox:latest\","
    "\"Labels\":{\"com.docker.compose.project\":\"shop\",\"tier\":\"front \\u2014 end\"}},"
    "\"NetworkSettings\":{\"Bridge\":\"\",\"Ports\":{},\"Networks\":{"
    "\"appnet\":{\"IPAMConfig\":null,\"Links\":null,\"Aliases\":[\"4f66ad9a0b2e\",\"web\"],"
    "\"NetworkID\":\"9a1b\",\"Gateway\":\"172.20.0.1\",\"IPAddress\":\"172.20.0.2\","
    "\"IPPrefixLen\":16,\"GlobalIPv6Address\":\"fd00:20::2\",\"MacAddress\":\"02:42:ac:14:00:02\"},"
    "\"my.net\":{\"IPAddress\":\"10.9.0.5\",\"GlobalIPv6Address\":\"\"}}}}";

static void test_docker(void)
{
    char err[128];
    struct jsonp_doc *d = jsonp_parse(docker_inspect, sizeof(docker_inspect) - 1, err, sizeof(err));
    const struct jsonp_value *root, *nets, *n;

    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    root = jsonp_root(d);
    CHECK_EQ_STR(jsonp_str(jsonp_get(root, "Name"), ""), "/web-1");
    CHECK_EQ_STR(jsonp_str(jsonp_path(root, "Config.Image"), ""), "sluice-test-busybox:latest");
    CHECK_EQ_STR(jsonp_str(jsonp_path(root, "HostConfig.NetworkMode"), ""), "appnet");
    CHECK(jsonp_path(root, "State.Pid") && jsonp_path(root, "State.Pid")->num == 41207);
    CHECK(jsonp_path(root, "State.Running")->boolean == 1);
    /* Label names hold dots: look them up with jsonp_get, not a path. */
    CHECK_EQ_STR(
        jsonp_str(jsonp_get(jsonp_path(root, "Config.Labels"), "com.docker.compose.project"), ""),
        "shop");
    CHECK_EQ_STR(jsonp_str(jsonp_get(jsonp_path(root, "Config.Labels"), "tier"), ""),
                 "front \xe2\x80\x94 end");
    nets = jsonp_path(root, "NetworkSettings.Networks");
    CHECK(nets && nets->type == JSONP_OBJECT && nets->len == 2);
    n = nets ? nets->child : NULL;
    CHECK(n && strcmp(n->key, "appnet") == 0);
    CHECK_EQ_STR(jsonp_str(jsonp_get(n, "IPAddress"), ""), "172.20.0.2");
    CHECK_EQ_STR(jsonp_str(jsonp_get(n, "GlobalIPv6Address"), ""), "fd00:20::2");
    CHECK(jsonp_get(n, "IPAMConfig")->type == JSONP_NULL);
    CHECK_EQ_STR(jsonp_str(jsonp_get(n, "IPAMConfig"), "none"), "none");
    n = n ? n->next : NULL;
    CHECK(n && strcmp(n->key, "my.net") == 0 && n->next == NULL);
    CHECK_EQ_STR(jsonp_str(jsonp_get(jsonp_get(nets, "my.net"), "IPAddress"), ""), "10.9.0.5");
    jsonp_free(d);

    /* Every prefix of the document is an error, never a crash or a tree. */
    int bad = 0;
    for (size_t len = 0; len < sizeof(docker_inspect) - 1; len++) {
        d = jsonp_parse(docker_inspect, len, err, sizeof(err));
        if (d != NULL || strncmp(err, "offset ", 7) != 0)
            bad++;
        jsonp_free(d);
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    test_scalars();
    test_unicode();
    test_numbers();
    test_containers();
    test_errors();
    test_depth();
    test_big();
    test_docker();
    CHECK_DONE();
}
