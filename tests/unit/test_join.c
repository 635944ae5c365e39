/*
 * Joins of partial responses: parts at their offsets, in any order, make the
 * whole object once, and only then.
 */
#include "check.h"
#include "join.h"

#include <string.h>

static void test_content_range(void)
{
    uint64_t a, b, t;

    CHECK_EQ_INT(join_parse_content_range("bytes 0-33/68", &a, &b, &t), 0);
    CHECK(a == 0 && b == 33 && t == 68);
    CHECK_EQ_INT(join_parse_content_range("  BYTES 34-67/68 ", &a, &b, &t), 0);
    CHECK(a == 34 && b == 67 && t == 68);
    CHECK_EQ_INT(join_parse_content_range("bytes=1-2/3", &a, &b, &t), 0);
    CHECK_EQ_INT(join_parse_content_range("bytes 0-9/*", &a, &b, &t), -1);
    CHECK_EQ_INT(join_parse_content_range("bytes 5-4/10", &a, &b, &t), -1);
    CHECK_EQ_INT(join_parse_content_range("bytes 0-10/10", &a, &b, &t), -1);
    CHECK_EQ_INT(join_parse_content_range("bytes 0-1/99999999999999999999999", &a, &b, &t), -1);
    CHECK_EQ_INT(join_parse_content_range("items 0-1/2", &a, &b, &t), -1);
    CHECK_EQ_INT(join_parse_content_range(NULL, &a, &b, &t), -1);
}

static void test_join(void)
{
    static const char file[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    size_t n = sizeof(file) - 1;
    struct join_key k = {.host = "h", .uri = "/f"};
    struct join_table *t = join_new(1024, 1000000);
    const uint8_t *done;

    k.client[0] = 1;
    k.server[0] = 2;
    /* Two halves, second first. */
    CHECK(join_part(t, &k, 18, n, (const uint8_t *)file + 18, n - 18, 10) == NULL);
    CHECK(join_part(t, &k, 0, n, (const uint8_t *)file, 18, 20) != NULL);
    /* Kept once complete: a part fetched again completes it again. */
    CHECK(join_part(t, &k, 18, n, (const uint8_t *)file + 18, n - 18, 30) != NULL);
    /* Overlapping thirds, of another object. */
    k.uri = "/g";
    CHECK(join_part(t, &k, 0, n, (const uint8_t *)file, 20, 40) == NULL);
    done = join_part(t, &k, 15, n, (const uint8_t *)file + 15, n - 15, 50);
    CHECK(done != NULL && memcmp(done, file, n) == 0);
    /* Another client's part does not complete this client's object. */
    k.uri = "/h";
    CHECK(join_part(t, &k, 0, n, (const uint8_t *)file, 10, 60) == NULL);
    k.client[0] = 9;
    CHECK(join_part(t, &k, 10, n, (const uint8_t *)file + 10, n - 10, 70) == NULL);
    /* Idle past the timeout: forgotten. */
    k.client[0] = 1;
    CHECK(join_part(t, &k, 10, n, (const uint8_t *)file + 10, n - 10, 5000000) == NULL);
    /* Bounds: larger than the object limit, a part past the end. */
    CHECK(join_part(t, &k, 0, 2048, (const uint8_t *)file, n, 1) == NULL);
    CHECK(join_part(t, &k, 30, n, (const uint8_t *)file, n, 1) == NULL);
    CHECK(join_held(t) <= 4 * n);
    join_free(t);
}

static void test_many(void)
{
    static uint8_t obj[200];
    struct join_key k = {.host = "", .uri = "/many"};
    struct join_table *t = join_new(1024, 1000000);
    const uint8_t *done = NULL;

    for (size_t i = 0; i < sizeof(obj); i++)
        obj[i] = (uint8_t)i;
    /* Every even byte, then every odd one: 100 pieces merge as they fill. */
    for (size_t i = 0; i < sizeof(obj); i += 2)
        CHECK(join_part(t, &k, i, sizeof(obj), obj + i, 1, 1) == NULL);
    for (size_t i = 1; i < sizeof(obj); i += 2)
        done = join_part(t, &k, i, sizeof(obj), obj + i, 1, 1);
    /* More than JOIN_MAX_PIECES separate pieces: the object was dropped. */
    CHECK(done == NULL);
    for (size_t i = 0; i < sizeof(obj); i += 40)
        done = join_part(t, &k, i, sizeof(obj), obj + i, 40, 2);
    CHECK(done != NULL && memcmp(done, obj, sizeof(obj)) == 0);
    /* More objects than slots: the oldest go, nothing breaks. */
    char uri[32];
    for (int i = 0; i < 3 * JOIN_MAX_OBJECTS; i++) {
        snprintf(uri, sizeof(uri), "/o%d", i);
        k.uri = uri;
        CHECK(join_part(t, &k, 0, 100, obj, 50, (uint64_t)(10 + i)) == NULL);
    }
    CHECK(join_held(t) <= JOIN_MAX_OBJECTS * 100);
    join_free(t);
}

int main(void)
{
    test_content_range();
    test_join();
    test_many();
    CHECK_DONE();
}
