/*
 * Small system helpers shared by the appliance's files.
 */
#ifndef SL_SYS_H
#define SL_SYS_H

#include <pthread.h>
#include <sys/types.h>

/* mkdir -p of the folder holding path; folders it makes get mode. 0 or -1
 * (errno). */
int sl_make_parent(const char *path, mode_t mode);

/* pthread_create with every signal blocked in the new thread: signals are
 * for the daemon's main thread. 0 or an errno value. */
int sl_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif
