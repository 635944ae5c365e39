/*
 * What sluice-filescan does to a file found: delete it, quarantine it (and
 * put it back), or stop its container.
 *
 * A container's files are reached through /proc/PID/root, but a path is
 * never walked from there by the kernel's usual rules: an absolute symlink or
 * ".." inside the container would lead out of it, onto the host. Every path
 * is resolved with openat2(RESOLVE_IN_ROOT), the container's root acting as
 * "/", and before a file is removed its inode is checked against the one
 * scanned, so a file swapped in meanwhile is left alone.
 */
#include "filescan.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "docker_api.h"
#include "json.h"
#include "jsonp.h"
#include "log.h"
#include "sl_buf.h"

#define FS_META_MAX (64 * 1024)

int fs_open_in_root(pid_t pid, const char *path, int flags, mode_t mode)
{
    char root[64];
    snprintf(root, sizeof(root), "/proc/%d/root", (int)pid);
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        return -1;
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, rfd, path, &how, sizeof(how));
    int saved = errno;
    close(rfd);
    errno = saved;
    return fd;
}

/* The folder holding path in the container (O_PATH), and the last name. */
static int open_parent(pid_t pid, const char *path, char *name, size_t namelen)
{
    char *copy = strdup(path), *copy2 = strdup(path);
    int fd = -1;
    if (copy && copy2) {
        snprintf(name, namelen, "%s", basename(copy2));
        fd = fs_open_in_root(pid, dirname(copy), O_PATH | O_DIRECTORY, 0);
    } else {
        errno = ENOMEM;
    }
    free(copy);
    free(copy2);
    return fd;
}

/* Unlinks name in dirfd if it is still the inode st describes. */
static int unlink_same(int dirfd, const char *name, const struct stat *st, const char *what,
                       char *err, size_t errlen)
{
    struct stat now;
    if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
        return -1;
    }
    if (now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        snprintf(err, errlen, "%s: replaced since it was scanned: left alone", what);
        return -1;
    }
    if (unlinkat(dirfd, name, 0) != 0) {
        snprintf(err, errlen, "%s: cannot remove: %s", what, strerror(errno));
        return -1;
    }
    return 0;
}

int fs_delete(const struct fs_found *f, char *err, size_t errlen)
{
    char name[256];
    int dfd = open_parent(f->c->pid, f->path, name, sizeof(name));
    if (dfd < 0) {
        snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
        return -1;
    }
    int rc = unlink_same(dfd, name, &f->st, f->path, err, errlen);
    close(dfd);
    return rc;
}

static int write_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes a new file at dir/name (refusing to replace one), synced. */
static int write_new(const char *dir, const char *name, const void *p, size_t len, char *err,
                     size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (write_all(fd, p, len) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

/* mkdir -p, the last folder 0700 (and made so if it exists). */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if ((mkdir(path, 0700) != 0 && errno != EEXIST) || chmod(path, 0700) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int fs_quarantine(const struct fs_found *f, const char *dir, char *id, size_t idlen, char *err,
                  size_t errlen)
{
    uint8_t rnd[6];
    char meta_name[128], path[4096];
    struct tm tm;
    time_t now = time(NULL);

    if (make_dir(dir, err, errlen) != 0)
        return -1;
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        return -1;
    }
    gmtime_r(&now, &tm);
    snprintf(id, idlen, "%04d%02d%02dT%02d%02d%02dZ-%02x%02x%02x%02x%02x%02x", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5]);
    snprintf(meta_name, sizeof(meta_name), "%s.json", id);

    struct json j;
    json_init(&j);
    json_object_begin(&j, NULL);
    json_string(&j, "id", id);
    json_object_begin(&j, "container");
    json_string(&j, "id", f->c->id);
    json_string(&j, "name", f->c->name);
    json_string(&j, "image", f->c->image);
    json_object_end(&j);
    json_string(&j, "path", f->path);
    json_string(&j, "sha256", f->sha256);
    json_string(&j, "signature", f->signature);
    json_string(&j, "time", f->time);
    json_uint(&j, "size", f->len);
    json_uint(&j, "mode", f->st.st_mode & 07777);
    json_uint(&j, "uid", f->st.st_uid);
    json_uint(&j, "gid", f->st.st_gid);
    json_object_end(&j);
    int rc = -1;
    if (j.failed) {
        snprintf(err, errlen, "quarantine metadata could not be built");
        goto out;
    }
    if (write_new(dir, id, f->buf, f->len, err, errlen) != 0)
        goto out;
    if (write_new(dir, meta_name, j.buf, j.len, err, errlen) != 0) {
        snprintf(path, sizeof(path), "%s/%s", dir, id);
        unlink(path);
        goto out;
    }
    if (fs_delete(f, err, errlen) != 0) {
        /* The file stays where it was: the copy would only mislead. */
        snprintf(path, sizeof(path), "%s/%s", dir, id);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s", dir, meta_name);
        unlink(path);
        goto out;
    }
    rc = 0;
out:
    json_free(&j);
    return rc;
}

/* An entry name made by fs_quarantine: no '/', no dot first. */
static int id_ok(const char *id)
{
    if (id[0] == '\0' || id[0] == '.' || strlen(id) > 64)
        return 0;
    for (const char *p = id; *p; p++)
        if (*p == '/')
            return 0;
    return 1;
}

static int read_file(const char *path, struct sl_buf *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t b[65536];
    ssize_t n;
    while ((n = read(fd, b, sizeof(b))) > 0) {
        if (sl_buf_append(out, b, (size_t)n) != (size_t)n) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, out->limit);
            close(fd);
            return -1;
        }
    }
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static double num_or(const struct jsonp_value *v, double dflt)
{
    return v && v->type == JSONP_NUMBER ? v->num : dflt;
}

int fs_restore(const char *dir, const char *id, char *err, size_t errlen)
{
    char meta_path[4096], data_path[4096], jerr[128];
    struct sl_buf meta, data;
    struct jsonp_doc *doc = NULL;
    int rc = -1, fd = -1;

    if (!id_ok(id)) {
        snprintf(err, errlen, "%s: not a quarantine entry", id);
        return -1;
    }
    snprintf(meta_path, sizeof(meta_path), "%s/%s.json", dir, id);
    snprintf(data_path, sizeof(data_path), "%s/%s", dir, id);
    sl_buf_init(&meta, FS_META_MAX);
    sl_buf_init(&data, (size_t)1 << 34);
    if (read_file(meta_path, &meta, err, errlen) != 0 ||
        read_file(data_path, &data, err, errlen) != 0)
        goto out;
    doc = jsonp_parse((const char *)meta.data, meta.len, jerr, sizeof(jerr));
    if (doc == NULL) {
        snprintf(err, errlen, "%s: %s", meta_path, jerr);
        goto out;
    }
    const struct jsonp_value *root = jsonp_root(doc);
    const char *cid = jsonp_str(jsonp_path(root, "container.id"), "");
    const char *path = jsonp_str(jsonp_get(root, "path"), "");
    mode_t mode = (mode_t)num_or(jsonp_get(root, "mode"), 0600) & 07777;
    uid_t uid = (uid_t)num_or(jsonp_get(root, "uid"), 0);
    gid_t gid = (gid_t)num_or(jsonp_get(root, "gid"), 0);
    if (cid[0] == '\0' || path[0] != '/') {
        snprintf(err, errlen, "%s: no container or path", meta_path);
        goto out;
    }

    struct fs_container cs[1024];
    int docker_ok = 0, n = fs_containers(NULL, cs, 1024, &docker_ok);
    const struct fs_container *c = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(cs[i].id, cid) == 0)
            c = &cs[i];
    if (c == NULL) {
        snprintf(err, errlen, "container %.12s is not running: start it, then restore", cid);
        goto out;
    }
    fd = fs_open_in_root(c->pid, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%.12s:%s: %s", cid, path, strerror(errno));
        goto out;
    }
    if (write_all(fd, data.data, data.len) != 0 || fchown(fd, uid, gid) != 0 ||
        fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "%.12s:%s: %s", cid, path, strerror(errno));
        goto out;
    }
    if (unlink(data_path) != 0 || unlink(meta_path) != 0)
        log_warn("%s: restored, but the quarantine entry stays", id);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    jsonp_free(doc);
    sl_buf_free(&meta);
    sl_buf_free(&data);
    return rc;
}

int fs_stop(const char *docker_sock, const char *id, char *err, size_t errlen)
{
    char target[160];
    struct sl_buf reply;
    int status;

    sl_buf_init(&reply, 16384);
    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/containers/%s/stop?t=10", id);
    int rc = docker_call(docker_sock, "POST", target, NULL, NULL, 0, &status, &reply, err, errlen);
    if (rc == 0 && status != 204 && status != 304) {
        snprintf(err, errlen, "stop %.12s: HTTP %d: %.*s", id, status, (int)reply.len,
                 (const char *)reply.data);
        rc = -1;
    }
    sl_buf_free(&reply);
    return rc;
}
