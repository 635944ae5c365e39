/*
 * The interception CA on disk: created on first use, per install, never
 * built in.
 *
 * Files in the CA folder (0700):
 *   ca.key           the key and the certificate, one PEM file (0600). It is
 *                    the CA: written with one rename, so a crash leaves the
 *                    old CA or the new one, never a key without its
 *                    certificate or a certificate without its key.
 *   ca.pem           the certificate alone, for operators to import (0644).
 *                    It is a copy of what ca.key holds and is brought back in
 *                    line with it when a crash came between the two renames.
 *   ca-previous.pem  the CA before the last rotation, exported during the
 *                    grace period so containers that trust it keep working.
 *
 * Anything present but unreadable or inconsistent is an error that names the
 * file: a CA that containers trust is never replaced behind the operator's
 * back. Only a missing CA is created. A lock on the folder keeps two
 * processes from creating or rotating at once.
 */
#include "tls_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CA_KEY_FILE  "ca.key"
#define CA_CERT_FILE "ca.pem"
#define CA_PREV_FILE "ca-previous.pem"
#define CA_YEARS     10
#define DAY          86400L
/* notBefore is set this far back so containers whose clock is a little
 * behind accept the CA; the CA's age counts from the end of it. */
#define CA_BACKDATE DAY
/* The CN may hold 64 characters (RFC 5280 ub-common-name). */
#define CN_MAX      64
#define CA_FILE_MAX (256 * 1024)
#define FPR_LEN     (32 * 3)

struct tls_ca {
    X509 *cert;
    EVP_PKEY *key;
    X509 *prev; /* NULL if none; refused as upstream issuer even after its grace */
    char *pem;
    char fpr[FPR_LEN];
};

/* --- shared helpers ------------------------------------------------------------ */

const char *tls_openssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : "unknown error";
}

int tls_x509_serial(X509 *x)
{
    unsigned char raw[16];
    BIGNUM *bn = NULL;
    int rc = -1;

    /* Zero is not a valid serial: draw again in that (absurd) case. */
    do {
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return -1;
        BN_free(bn);
        bn = BN_bin2bn(raw, sizeof(raw), NULL);
    } while (bn != NULL && BN_is_zero(bn));
    if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
        rc = 0;
    BN_free(bn);
    return rc;
}

int tls_x509_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int rc;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
    X509_EXTENSION_free(ext);
    return rc;
}

X509 *tls_ca_cert(const struct tls_ca *ca)
{
    return ca->cert;
}

EVP_PKEY *tls_ca_key(const struct tls_ca *ca)
{
    return ca->key;
}

/* --- files ------------------------------------------------------------------ */

/*
 * name in dirfd into a NUL-terminated buffer. 1 if it does not exist, 0 with
 * *buf (free it) or -1 with err. *mode gets the file's permissions.
 */
static int file_read(int dirfd, const char *dir, const char *name, char **buf, size_t *len,
                     mode_t *mode, char *err, size_t errlen)
{
    struct stat st;
    ssize_t n;
    size_t got = 0;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    memset(&st, 0, sizeof(st));
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CA_FILE_MAX) {
        snprintf(err, errlen, "%s/%s: %s", dir, name,
                 st.st_mode == 0        ? strerror(errno)
                 : !S_ISREG(st.st_mode) ? "not a regular file"
                                        : "too large");
        close(fd);
        return -1;
    }
    *buf = malloc((size_t)st.st_size + 1);
    if (*buf == NULL) {
        snprintf(err, errlen, "%s/%s: out of memory", dir, name);
        close(fd);
        return -1;
    }
    while ((n = read(fd, *buf + got, (size_t)st.st_size - got)) > 0)
        got += (size_t)n;
    if (n < 0) {
        snprintf(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
        free(*buf);
        close(fd);
        return -1;
    }
    close(fd);
    (*buf)[got] = '\0';
    *len = got;
    *mode = st.st_mode & 07777;
    return 0;
}

/* Writes name in dirfd with a temporary file and one rename, synced, so the
 * file is always either the old one or the new one, whole. */
static int file_write(int dirfd, const char *dir, const char *name, const char *data, size_t len,
                      mode_t mode, char *err, size_t errlen)
{
    char tmp[64];
    size_t done = 0;
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
        goto fail;
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        goto fail;
    if (fchmod(fd, mode) < 0) /* the umask may have taken bits away */
        goto fail_fd;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail_fd;
        done += (size_t)n;
    }
    if (fsync(fd) < 0)
        goto fail_fd;
    if (close(fd) < 0) {
        fd = -1;
        goto fail_fd;
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0)
        goto fail;
    if (fsync(dirfd) < 0)
        goto fail;
    return 0;

fail_fd:
    snprintf(err, errlen, "%s/%s: %s", dir, tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlinkat(dirfd, tmp, 0);
    return -1;
fail:
    snprintf(err, errlen, "%s/%s: %s", dir, tmp, strerror(errno));
    unlinkat(dirfd, tmp, 0);
    return -1;
}

/* The folder, created 0700 if missing; an existing one is made 0700: it holds
 * the CA's key. The descriptor is locked for the caller. */
static int dir_open(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    int fd;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0) ||
        flock(fd, LOCK_EX) < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* --- certificates --------------------------------------------------------------- */

static int asn1_time(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* The certificates in a PEM buffer: *first and, if second is not NULL, the
 * optional one after it. -1 with the reason. */
static int pem_certs(const char *buf, size_t len, X509 **first, X509 **second)
{
    BIO *bio = BIO_new_mem_buf(buf, (int)len);

    if (bio == NULL)
        return -1;
    *first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (*first != NULL && second != NULL) {
        *second = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        ERR_clear_error(); /* the end of the buffer */
    }
    BIO_free(bio);
    return *first != NULL ? 0 : -1;
}

static char *cert_pem(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    long n;

    if (bio == NULL)
        return NULL;
    if (PEM_write_bio_X509(bio, cert) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
        (out = malloc((size_t)n + 1)) != NULL) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(bio);
    return out;
}

/* "sluice interception CA <host> <date>", cut to fit in a CN. */
static void ca_cn(char *cn, size_t len, time_t now)
{
    char host[256] = "localhost", date[16];
    struct tm tm;
    int room;

    if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    room = CN_MAX - (int)strlen("sluice interception CA  ") - (int)strlen(date);
    snprintf(cn, len, "sluice interception CA %.*s %s", room, host, date);
}

/* A new CA: key and self-signed certificate. */
static int ca_make(X509 **certp, EVP_PKEY **keyp, time_t now, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = NULL;
    char cn[CN_MAX + 1];

    if (key == NULL || x == NULL)
        goto fail;
    ca_cn(cn, sizeof(cn), now);
    name = X509_NAME_new();
    if (name == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (unsigned char *)cn, -1, -1, 0) !=
            1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (unsigned char *)"sluice", -1, -1,
                                   0) != 1)
        goto fail;
    if (X509_set_version(x, X509_VERSION_3) != 1 || tls_x509_serial(x) < 0 ||
        X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1 ||
        X509_time_adj_ex(X509_getm_notBefore(x), 0, -CA_BACKDATE, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), CA_YEARS * 365, 0, &now) == NULL ||
        X509_set_pubkey(x, key) != 1)
        goto fail;
    if (tls_x509_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
        tls_x509_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        tls_x509_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
        tls_x509_ext(x, x, NID_authority_key_identifier, "keyid:always") < 0)
        goto fail;
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;
    X509_NAME_free(name);
    *certp = x;
    *keyp = key;
    return 0;

fail:
    snprintf(err, errlen, "creating the CA: %s", tls_openssl_reason());
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    return -1;
}

/* ca.key: the key, then the certificate. */
static int ca_write_key(int dirfd, const char *dir, X509 *cert, EVP_PKEY *key, char *err,
                        size_t errlen)
{
    BIO *bio = BIO_new(BIO_s_secmem()); /* cleansed when freed */
    char *data;
    long n;
    int rc = -1;

    if (bio == NULL || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(bio, cert) != 1 || (n = BIO_get_mem_data(bio, &data)) <= 0)
        snprintf(err, errlen, "%s/%s: %s", dir, CA_KEY_FILE, tls_openssl_reason());
    else
        rc = file_write(dirfd, dir, CA_KEY_FILE, data, (size_t)n, 0600, err, errlen);
    BIO_free(bio);
    return rc;
}

static int ca_write_cert(int dirfd, const char *dir, const char *name, X509 *cert, char *err,
                         size_t errlen)
{
    char *pem = cert_pem(cert);
    int rc;

    if (pem == NULL) {
        snprintf(err, errlen, "%s/%s: %s", dir, name, tls_openssl_reason());
        return -1;
    }
    rc = file_write(dirfd, dir, name, pem, strlen(pem), 0644, err, errlen);
    free(pem);
    return rc;
}

/* An encrypted key is refused, not prompted for on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* Reads ca.key into ca->key and ca->cert. 1 if missing. */
static int ca_load_key(struct tls_ca *ca, int dirfd, const char *dir, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    mode_t mode = 0;
    BIO *bio;
    int rc = file_read(dirfd, dir, CA_KEY_FILE, &buf, &len, &mode, err, errlen);

    if (rc != 0)
        return rc;
    rc = -1;
    if (mode & 077) {
        snprintf(err, errlen, "%s/%s: readable by others (mode %04o), refusing to use it", dir,
                 CA_KEY_FILE, (unsigned)mode);
        goto out;
    }
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio != NULL) {
        ca->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        if (ca->key != NULL)
            ca->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    if (ca->key == NULL || ca->cert == NULL) {
        snprintf(err, errlen, "%s/%s: %s: %s", dir, CA_KEY_FILE,
                 ca->key == NULL ? "no private key" : "no certificate after the key",
                 tls_openssl_reason());
        goto out;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        snprintf(err, errlen, "%s/%s: the key does not match the certificate", dir, CA_KEY_FILE);
        goto out;
    }
    if (X509_check_ca(ca->cert) != 1) {
        snprintf(err, errlen, "%s/%s: the certificate is not a CA", dir, CA_KEY_FILE);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(buf, len);
    free(buf);
    ERR_clear_error();
    return rc;
}

/* ca.pem must hold the certificate of ca.key; a different, well-formed one is
 * what a crash between the two renames of a creation or rotation leaves. */
static int ca_sync_cert(struct tls_ca *ca, int dirfd, const char *dir, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    mode_t mode;
    X509 *disk = NULL;
    int rc = file_read(dirfd, dir, CA_CERT_FILE, &buf, &len, &mode, err, errlen);

    if (rc < 0)
        return -1;
    if (rc == 0 && pem_certs(buf, len, &disk, NULL) < 0) {
        snprintf(err, errlen, "%s/%s: %s", dir, CA_CERT_FILE, tls_openssl_reason());
        free(buf);
        return -1;
    }
    free(buf);
    rc = 0;
    if (disk == NULL || X509_cmp(disk, ca->cert) != 0)
        rc = ca_write_cert(dirfd, dir, CA_CERT_FILE, ca->cert, err, errlen);
    X509_free(disk);
    return rc;
}

static int ca_load_prev(struct tls_ca *ca, int dirfd, const char *dir, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    mode_t mode;
    int rc = file_read(dirfd, dir, CA_PREV_FILE, &buf, &len, &mode, err, errlen);

    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (pem_certs(buf, len, &ca->prev, NULL) < 0) {
        snprintf(err, errlen, "%s/%s: %s", dir, CA_PREV_FILE, tls_openssl_reason());
        rc = -1;
    }
    free(buf);
    return rc;
}

/* Current becomes previous (on disk first), then a new CA replaces it. */
static int ca_rotate(struct tls_ca *ca, int dirfd, const char *dir, time_t now, char *err,
                     size_t errlen)
{
    X509 *cert;
    EVP_PKEY *key;

    if (ca_write_cert(dirfd, dir, CA_PREV_FILE, ca->cert, err, errlen) < 0)
        return -1;
    if (ca_make(&cert, &key, now, err, errlen) < 0)
        return -1;
    X509_free(ca->prev);
    EVP_PKEY_free(ca->key);
    ca->prev = ca->cert;
    ca->cert = cert;
    ca->key = key;
    if (ca_write_key(dirfd, dir, cert, key, err, errlen) < 0)
        return -1;
    return ca_write_cert(dirfd, dir, CA_CERT_FILE, cert, err, errlen);
}

/* Seconds since the CA came into use (its notBefore plus the backdating). */
static long ca_age(X509 *cert, time_t now)
{
    time_t nb;

    if (asn1_time(X509_get0_notBefore(cert), &nb) < 0)
        return 0;
    return (long)(now - (nb + CA_BACKDATE));
}

static int ca_export(struct tls_ca *ca, unsigned grace_days, time_t now)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char *cur = cert_pem(ca->cert), *prev = NULL;
    size_t n;

    if (cur == NULL)
        return -1;
    if (ca->prev != NULL && ca_age(ca->cert, now) < (long)grace_days * DAY &&
        X509_cmp_time(X509_get0_notAfter(ca->prev), &now) > 0)
        prev = cert_pem(ca->prev);
    n = strlen(cur) + (prev ? strlen(prev) : 0) + 1;
    ca->pem = malloc(n);
    if (ca->pem != NULL)
        snprintf(ca->pem, n, "%s%s", cur, prev ? prev : "");
    free(cur);
    free(prev);
    if (ca->pem == NULL || X509_digest(ca->cert, EVP_sha256(), md, &mdlen) != 1)
        return -1;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(ca->fpr + 3 * i, sizeof(ca->fpr) - 3 * i, i + 1 < mdlen ? "%02X:" : "%02X", md[i]);
    return 0;
}

struct tls_ca *tls_ca_open(const char *dir, unsigned rotate_days, unsigned grace_days, char *err,
                           size_t errlen)
{
    struct tls_ca *ca = calloc(1, sizeof(*ca));
    time_t now = time(NULL);
    struct stat st;
    int dirfd, rc;

    if (ca == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dirfd = dir_open(dir, err, errlen);
    if (dirfd < 0)
        goto fail;
    rc = ca_load_key(ca, dirfd, dir, err, errlen);
    if (rc < 0)
        goto fail;
    if (rc == 1) {
        /* A certificate without its key was put there by someone else. */
        if (fstatat(dirfd, CA_CERT_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            snprintf(err, errlen, "%s/%s exists but %s is missing", dir, CA_CERT_FILE, CA_KEY_FILE);
            goto fail;
        }
        if (ca_make(&ca->cert, &ca->key, now, err, errlen) < 0 ||
            ca_write_key(dirfd, dir, ca->cert, ca->key, err, errlen) < 0)
            goto fail;
    }
    if (ca_load_prev(ca, dirfd, dir, err, errlen) < 0)
        goto fail;
    if ((rotate_days > 0 && ca_age(ca->cert, now) >= (long)rotate_days * DAY) ||
        X509_cmp_time(X509_get0_notAfter(ca->cert), &now) <= 0) {
        if (ca_rotate(ca, dirfd, dir, now, err, errlen) < 0)
            goto fail;
    } else if (ca_sync_cert(ca, dirfd, dir, err, errlen) < 0) {
        goto fail;
    }
    if (ca_export(ca, grace_days, now) < 0) {
        snprintf(err, errlen, "%s: exporting the CA: %s", dir, tls_openssl_reason());
        goto fail;
    }
    close(dirfd);
    return ca;

fail:
    if (dirfd >= 0)
        close(dirfd);
    tls_ca_free(ca);
    return NULL;
}

void tls_ca_free(struct tls_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    X509_free(ca->prev);
    EVP_PKEY_free(ca->key);
    free(ca->pem);
    free(ca);
}

const char *tls_ca_pem(const struct tls_ca *ca)
{
    return ca->pem;
}

const char *tls_ca_fingerprint(const struct tls_ca *ca)
{
    return ca->fpr;
}

/* Issued means signed by the CA's key, not merely naming it as issuer. */
static int signed_by(X509 *issuer, X509 *cert)
{
    EVP_PKEY *pub;
    int ok;

    if (issuer == NULL || X509_check_issued(issuer, cert) != X509_V_OK)
        return 0;
    pub = X509_get0_pubkey(issuer);
    ok = pub != NULL && X509_verify(cert, pub) == 1;
    ERR_clear_error();
    return ok;
}

int tls_ca_issued(const struct tls_ca *ca, X509 *cert)
{
    return signed_by(ca->cert, cert) || signed_by(ca->prev, cert);
}
