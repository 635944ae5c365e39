#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

static const char *log_progname = "sluice";
static enum log_level log_level_max = LOG_LEVEL_INFO;
static int log_syslog;
/* One line at a time from any thread. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(const char *progname, enum log_level level, int use_syslog)
{
    log_progname = progname;
    log_level_max = level;
    log_syslog = use_syslog;
    if (use_syslog)
        openlog(progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level)
{
    log_level_max = level;
}

/* Length of the well-formed UTF-8 sequence at s that is not a C1 control
 * (U+0080..U+009F, which some terminals obey), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* the NUL terminator stops here too */
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < 0xa0 || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

size_t log_escape(char *dst, size_t size, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t out = 0;

    if (size == 0)
        return 0;
    while (*s) {
        char esc[5];
        size_t in = 1, n = 1;

        if (*s >= 0x20 && *s < 0x7f) {
            esc[0] = (char)*s;
        } else if (*s == '\n' || *s == '\r' || *s == '\t') {
            esc[0] = '\\';
            esc[1] = *s == '\n' ? 'n' : *s == '\r' ? 'r' : 't';
            n = 2;
        } else if ((in = utf8_len(s)) > 0) {
            memcpy(esc, s, in);
            n = in;
        } else {
            snprintf(esc, sizeof(esc), "\\x%02x", *s);
            in = 1;
            n = 4;
        }
        /* Whole escapes and characters only, so a cut message stays valid. */
        if (out + n >= size)
            break;
        memcpy(dst + out, esc, n);
        out += n;
        s += in;
    }
    dst[out] = '\0';
    return out;
}

__attribute__((format(printf, 3, 0))) static void log_emit(enum log_level level, const char *errstr,
                                                           const char *fmt, va_list ap)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char raw[2048], msg[sizeof(raw) * 4];

    if (level > log_level_max)
        return;
    /* Messages carry names and output from containers and tools: one
     * message stays one line, with no terminal controls in it. */
    vsnprintf(raw, sizeof(raw), fmt, ap);
    log_escape(msg, sizeof(msg), raw);
    pthread_mutex_lock(&log_lock);
    if (errstr)
        fprintf(stderr, "%s: %s: %s\n", log_progname, msg, errstr);
    else
        fprintf(stderr, "%s: %s\n", log_progname, msg);
    if (log_syslog) {
        if (errstr)
            syslog(prio[level], "%s: %s", msg, errstr);
        else
            syslog(prio[level], "%s", msg);
    }
    pthread_mutex_unlock(&log_lock);
}

#define LOG_WITH(level, errstr)                                                                    \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_emit(level, errstr, fmt, ap);                                                          \
        va_end(ap);                                                                                \
    } while (0)

void log_warn(const char *fmt, ...)
{
    const char *e = strerror(errno);
    LOG_WITH(LOG_LEVEL_WARN, e);
}

void log_warnx(const char *fmt, ...)
{
    LOG_WITH(LOG_LEVEL_WARN, NULL);
}

void log_info(const char *fmt, ...)
{
    LOG_WITH(LOG_LEVEL_INFO, NULL);
}

void log_debug(const char *fmt, ...)
{
    LOG_WITH(LOG_LEVEL_DEBUG, NULL);
}

void fatal(const char *fmt, ...)
{
    const char *e = strerror(errno);
    LOG_WITH(LOG_LEVEL_ERROR, e);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    LOG_WITH(LOG_LEVEL_ERROR, NULL);
    exit(1);
}
