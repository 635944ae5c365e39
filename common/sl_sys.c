#include "sl_sys.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sl_make_parent(const char *path, mode_t mode)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return -1;
    char *dir = dirname(copy);
    int rc = 0;
    if (strcmp(dir, ".") != 0 && strcmp(dir, "/") != 0 && access(dir, F_OK) != 0) {
        if (sl_make_parent(dir, mode) != 0 || (mkdir(dir, mode) != 0 && errno != EEXIST))
            rc = -1;
    }
    free(copy);
    return rc;
}

int sl_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
