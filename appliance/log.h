/*
 * The one logger of sluice: stderr (journald picks it up under systemd) and,
 * when asked, syslog. relayd-style helpers: log_warn appends the errno
 * message, log_warnx does not; fatal/fatalx log and exit. Messages are
 * escaped (log_escape): one message is one line and holds no terminal
 * control, whatever names or tool output it quotes.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_init(const char *progname, enum log_level level, int use_syslog);
void log_set_level(enum log_level level);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Copies src into dst (size bytes, always terminated) the way the log
 * writes it: \n, \r and \t as those two characters, other control bytes,
 * DEL, C1 controls and bytes that are not well-formed UTF-8 as \xHH;
 * printable ASCII and UTF-8 as they are. Cuts only between characters.
 * Returns the length written. */
size_t log_escape(char *dst, size_t size, const char *src);

#endif
