#include "log.h"

#include <errno.h>
#include <pthread.h>
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

__attribute__((format(printf, 3, 0))) static void log_emit(enum log_level level, const char *errstr,
                                                           const char *fmt, va_list ap)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[2048];

    if (level > log_level_max)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
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
