/*
 * Minimal unit-test helpers: every CHECK that fails prints file:line and the
 * expression, and the test program exits non-zero at the end.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(expr)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        check_count++;                                                                             \
        if (check_a_ != check_b_) {                                                                \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    check_a_, check_b_);                                                           \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        check_count++;                                                                             \
        if (check_a_ == NULL || check_b_ == NULL || strcmp(check_a_, check_b_) != 0) {             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");           \
        }                                                                                          \
    } while (0)

/* The whole file dir/name, NUL-terminated, in a buffer to free; NULL (a
 * failed check) if it cannot be read. */
static inline uint8_t *check_read_file(const char *dir, const char *name, size_t *n)
{
    char path[4096 + 256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    long len = -1;
    *n = 0;
    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)len + 1)) != NULL) {
        *n = fread(p, 1, (size_t)len, f);
        p[*n] = 0;
    }
    if (f)
        fclose(f);
    check_count++;
    if (p == NULL || *n != (size_t)len) {
        check_failures++;
        fprintf(stderr, "%s: cannot read\n", path);
        free(p);
        return NULL;
    }
    return p;
}

#define CHECK_DONE()                                                                               \
    do {                                                                                           \
        fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, check_count, check_failures);      \
        return check_failures ? 1 : 0;                                                             \
    } while (0)

#endif
