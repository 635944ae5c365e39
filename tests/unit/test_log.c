/*
 * The log writes a message with names from containers and tool output in
 * it as one line with no terminal control: line breaks, escape sequences,
 * other control bytes, C1 controls and broken UTF-8 are escaped; printable
 * text and UTF-8 stay as they are.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static const char *esc(const char *s)
{
    static char buf[256];
    log_escape(buf, sizeof(buf), s);
    return buf;
}

int main(void)
{
    char buf[64];

    CHECK_EQ_STR(esc("web-1 started"), "web-1 started");
    CHECK_EQ_STR(esc("a\nb\r\tc"), "a\\nb\\r\\tc");
    CHECK_EQ_STR(esc("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
    CHECK_EQ_STR(esc("\x01\x7f\x08"), "\\x01\\x7f\\x08");
    /* UTF-8 as is: é, €, 😀. */
    CHECK_EQ_STR(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* U+009B (CSI as a C1 control), a raw CSI byte, an overlong '/', a
     * surrogate, a cut sequence, a byte that never starts one. */
    CHECK_EQ_STR(esc("\xc2\x9b"), "\\xc2\\x9b");
    CHECK_EQ_STR(esc("\x9b"
                     "2J"),
                 "\\x9b2J");
    CHECK_EQ_STR(esc("\xc0\xaf"), "\\xc0\\xaf");
    CHECK_EQ_STR(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    CHECK_EQ_STR(esc("\xe2\x82"), "\\xe2\\x82");
    CHECK_EQ_STR(esc("\xff"), "\\xff");
    /* Backslashes are text. */
    CHECK_EQ_STR(esc("C:\\x"), "C:\\x");

    /* Cut between escapes and characters, never inside one. */
    CHECK_EQ_INT(log_escape(buf, 6, "ab\ncd"), 5);
    CHECK_EQ_STR(buf, "ab\\nc");
    CHECK_EQ_INT(log_escape(buf, 5, "ab\ncd"), 4);
    CHECK_EQ_STR(buf, "ab\\n");
    CHECK_EQ_INT(log_escape(buf, 4, "ab\ncd"), 2);
    CHECK_EQ_STR(buf, "ab");
    CHECK_EQ_INT(log_escape(buf, 5, "ab\x1b"), 2);
    CHECK_EQ_INT(log_escape(buf, 5, "a\xe2\x82\xac"), 4);
    CHECK_EQ_INT(log_escape(buf, 4, "a\xe2\x82\xac"), 1);
    CHECK_EQ_STR(buf, "a");
    CHECK_EQ_INT(log_escape(buf, 1, "abc"), 0);
    CHECK_EQ_STR(buf, "");

    /* Through the writer: one line on stderr. */
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        char line[512];
        int saved = dup(STDERR_FILENO);

        fflush(stderr);
        dup2(fileno(f), STDERR_FILENO);
        log_init("test_log", LOG_LEVEL_INFO, 0);
        log_warnx("container %s: %s", "evil\nsluice: forged line", "\x1b[31mred");
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        rewind(f);
        CHECK(fgets(line, sizeof(line), f) != NULL);
        CHECK_EQ_STR(line, "test_log: container evil\\nsluice: forged line: \\x1b[31mred\n");
        CHECK(fgets(line, sizeof(line), f) == NULL);
        fclose(f);
    }
    CHECK_DONE();
}
