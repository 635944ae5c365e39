/*
 * tls/: the CA on disk (creation, modes, reopening, broken files, rotation
 * and grace), forged leaves (names, dates, signature, key, serial, the
 * cache, threads, ALPN) and upstream validation, each verdict reached through
 * a real handshake over a socketpair between an in-process server and the
 * upstream client context.
 *
 * Every certificate is made here with the OpenSSL API, under a private root
 * that the upstream context trusts through ca_file (ca_dir is an empty
 * folder, so the host's trust store plays no part). Files go to a temporary
 * folder, removed at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tls.h"

#define DAY 86400L

static char tmp[256];

/* Checks that also name the case, for the tables of verdicts. */
static void expect_int(const char *what, long got, long want)
{
    check_count++;
    if (got != want) {
        check_failures++;
        fprintf(stderr, "%s: got %ld, want %ld\n", what, got, want);
    }
}

static void expect_has(const char *what, const char *text, const char *needle)
{
    check_count++;
    if (text == NULL || strstr(text, needle) == NULL) {
        check_failures++;
        fprintf(stderr, "%s: \"%s\" does not contain \"%s\"\n", what, text ? text : "(null)",
                needle);
    }
}

/* --- files ------------------------------------------------------------------ */

static void path_of(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static void write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[512];
    FILE *f;

    path_of(path, sizeof(path), dir, name);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* The file's text (static buffer), "" if unreadable. */
static const char *read_text(const char *dir, const char *name)
{
    static char buf[65536];
    char path[512];
    FILE *f;
    size_t n = 0;

    path_of(path, sizeof(path), dir, name);
    buf[0] = '\0';
    f = fopen(path, "r");
    if (f == NULL)
        return buf;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static mode_t file_mode(const char *dir, const char *name)
{
    char path[512];
    struct stat st;

    path_of(path, sizeof(path), dir, name);
    return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".tmp") != NULL)
            n++;
    closedir(d);
    return n;
}

/* --- certificates --------------------------------------------------------------- */

static int add_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return 0;
}

struct spec {
    const char *cn;
    const char *san; /* openssl.cnf syntax; NULL: none */
    long nb, na;     /* seconds from now */
    int ca;
    const char *eku; /* leaf only; NULL: serverAuth */
    const EVP_MD *md;
};

/* A certificate for key, signed by issuer (NULL: self-signed). */
static X509 *mkcert(const struct spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey)
{
    static long serial = 1000;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    time_t now = time(NULL);

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_time_adj_ex(X509_getm_notBefore(x), 0, s->nb, &now);
    X509_time_adj_ex(X509_getm_notAfter(x), 0, s->na, &now);
    X509_set_pubkey(x, key);
    if (issuer == NULL) {
        issuer = x;
        ikey = key;
    }
    add_ext(issuer, x, NID_subject_key_identifier, "hash");
    if (issuer != x)
        add_ext(issuer, x, NID_authority_key_identifier, "keyid:always");
    if (s->ca) {
        add_ext(issuer, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(issuer, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(issuer, x, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(issuer, x, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        add_ext(issuer, x, NID_ext_key_usage, s->eku ? s->eku : "serverAuth");
    }
    if (s->san != NULL)
        add_ext(issuer, x, NID_subject_alt_name, s->san);
    X509_sign(x, ikey, s->md ? s->md : EVP_sha256());
    X509_NAME_free(name);
    return x;
}

/* The private PKI: a trusted root and intermediates, an untrusted root. */
static EVP_PKEY *root_key, *inter_key, *rsa_inter_key, *weak_inter_key, *other_key, *leaf_key,
    *rsa1024_key;
static X509 *root, *inter, *rsa_inter, *weak_inter, *other_root;

/* x with extension nid set to value (replacing any), signed again by the
 * intermediate. */
static X509 *with_ext(X509 *x, int nid, const char *value)
{
    int i = X509_get_ext_by_NID(x, nid, -1);

    if (i >= 0)
        X509_EXTENSION_free(X509_delete_ext(x, i));
    CHECK(add_ext(inter, x, nid, value) == 0);
    CHECK(X509_sign(x, inter_key, EVP_sha256()) > 0);
    return x;
}

static void pki_init(void)
{
    const struct spec root_s = {"Test Root", NULL, -DAY, 3650 * DAY, 1, NULL, NULL};
    const struct spec inter_s = {"Test Intermediate", NULL, -DAY, 1000 * DAY, 1, NULL, NULL};
    const struct spec rsa_s = {"Test RSA Intermediate", NULL, -DAY, 1000 * DAY, 1, NULL, NULL};
    const struct spec weak_s = {"Weak Intermediate", NULL, -DAY, 1000 * DAY, 1, NULL, NULL};
    const struct spec other_s = {"Unknown Root", NULL, -DAY, 1000 * DAY, 1, NULL, NULL};

    root_key = EVP_EC_gen("P-256");
    inter_key = EVP_EC_gen("P-256");
    weak_inter_key = EVP_EC_gen("P-224");
    other_key = EVP_EC_gen("P-256");
    leaf_key = EVP_EC_gen("P-256");
    rsa_inter_key = EVP_RSA_gen(2048);
    rsa1024_key = EVP_RSA_gen(1024);
    root = mkcert(&root_s, root_key, NULL, NULL);
    inter = mkcert(&inter_s, inter_key, root, root_key);
    rsa_inter = mkcert(&rsa_s, rsa_inter_key, root, root_key);
    weak_inter = mkcert(&weak_s, weak_inter_key, root, root_key);
    other_root = mkcert(&other_s, other_key, NULL, NULL);
    CHECK(root && inter && rsa_inter && weak_inter && other_root && rsa1024_key);
}

static void pki_free(void)
{
    X509_free(root);
    X509_free(inter);
    X509_free(rsa_inter);
    X509_free(weak_inter);
    X509_free(other_root);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(inter_key);
    EVP_PKEY_free(rsa_inter_key);
    EVP_PKEY_free(weak_inter_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(rsa1024_key);
}

/* A leaf for leaf_key under the intermediate. */
static X509 *leaf(const char *cn, const char *san)
{
    const struct spec s = {cn, san, -DAY, 90 * DAY, 0, NULL, NULL};
    return mkcert(&s, leaf_key, inter, inter_key);
}

static int count_pems(const char *pem)
{
    int n = 0;
    for (const char *p = pem; (p = strstr(p, "BEGIN CERTIFICATE")) != NULL; p++)
        n++;
    return n;
}

/* The n-th (0-based) certificate of a PEM text. */
static X509 *pem_cert(const char *pem, int n)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = NULL;

    for (int i = 0; i <= n; i++) {
        X509_free(x);
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    }
    BIO_free(bio);
    ERR_clear_error();
    return x;
}

static time_t cert_time(const ASN1_TIME *t)
{
    struct tm tm;
    ASN1_TIME_to_tm(t, &tm);
    return timegm(&tm);
}

/* --- handshakes -------------------------------------------------------------- */

struct hs {
    SSL *cli, *srv;
    int client_ok, server_ok;
    char why[TLS_ERRLEN];
};

/*
 * One handshake over a socketpair, both ends non-blocking in this thread.
 * sctx NULL: the server end closes at once.
 */
static void hs_run(struct hs *h, SSL_CTX *sctx, SSL_CTX *cctx, const char *sni, const char *ip,
                   const unsigned char *alpn, unsigned alpnlen)
{
    int fds[2], cdone = 0, sdone = 0, cfail = 0, sfail = 0;

    memset(h, 0, sizeof(*h));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) {
        CHECK(!"socketpair");
        return;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    h->cli = SSL_new(cctx);
    SSL_set_fd(h->cli, fds[0]);
    if (sni != NULL || ip != NULL)
        CHECK_EQ_INT(tls_upstream_prepare(h->cli, sni, ip), 0);
    if (alpn != NULL)
        SSL_set_alpn_protos(h->cli, alpn, alpnlen);
    if (sctx != NULL) {
        h->srv = SSL_new(sctx);
        SSL_set_fd(h->srv, fds[1]);
    } else {
        close(fds[1]);
        sdone = 1;
    }
    for (int i = 0; i < 10000 && !cfail && !(cdone && (sdone || sfail)); i++) {
        if (!cdone) {
            int r = SSL_connect(h->cli), e = SSL_get_error(h->cli, r);
            if (r == 1)
                cdone = 1;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                cfail = 1;
                tls_upstream_handshake_error(h->cli, r, h->why, sizeof(h->why));
            }
        }
        if (!sdone && !sfail) {
            int r = SSL_accept(h->srv), e = SSL_get_error(h->srv, r);
            if (r == 1)
                sdone = 1;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                sfail = 1;
            ERR_clear_error();
        }
    }
    h->client_ok = cdone;
    h->server_ok = sdone && sctx != NULL;
}

static void hs_free(struct hs *h)
{
    if (h->cli) {
        close(SSL_get_fd(h->cli));
        SSL_free(h->cli);
    }
    if (h->srv) {
        close(SSL_get_fd(h->srv));
        SSL_free(h->srv);
    }
}

static SSL_CTX *server_ctx(X509 *cert, EVP_PKEY *key, X509 *chain)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    /* The test servers serve what real bad servers serve. */
    SSL_CTX_set_security_level(ctx, 0);
    CHECK(SSL_CTX_use_certificate(ctx, cert) == 1);
    CHECK(SSL_CTX_use_PrivateKey(ctx, key) == 1);
    if (chain != NULL)
        CHECK(SSL_CTX_add1_chain_cert(ctx, chain) == 1);
    return ctx;
}

enum { TRUSTED = 0, REFUSED_HANDSHAKE = 1, REFUSED_CHECK = 2 };

static struct tls_upstream_policy policy;

/* Where a client of cctx lands against sctx, and why. */
static int verdict(SSL_CTX *cctx, SSL_CTX *sctx, const char *sni, const char *ip,
                   const struct tls_ca *own, char *why, size_t whylen)
{
    struct hs h;
    int v;

    hs_run(&h, sctx, cctx, sni, ip, NULL, 0);
    if (!h.client_ok) {
        snprintf(why, whylen, "%s", h.why);
        v = REFUSED_HANDSHAKE;
    } else {
        why[0] = '\0';
        v = tls_upstream_check(h.cli, &policy, own, why, whylen) == 0 ? TRUSTED : REFUSED_CHECK;
    }
    hs_free(&h);
    return v;
}

/* One row of the table: a server presenting cert (+ chain), its verdict. */
struct vcase {
    const char *name;
    X509 *cert;
    EVP_PKEY *key;
    X509 *chain;
    const char *sni, *ip;
    int strict; /* expected with the context as built */
    const char *strict_why;
    int relaxed; /* expected with security level 0 and any purpose; -1: skip */
    const char *relaxed_why;
};

static void run_case(SSL_CTX *strict, SSL_CTX *relaxed, const struct vcase *c,
                     const struct tls_ca *own)
{
    char why[TLS_ERRLEN], what[256];
    SSL_CTX *sctx = server_ctx(c->cert, c->key, c->chain);

    snprintf(what, sizeof(what), "%s (strict)", c->name);
    expect_int(what, verdict(strict, sctx, c->sni, c->ip, own, why, sizeof(why)), c->strict);
    if (getenv("TEST_VERBOSE"))
        fprintf(stderr, "%-32s %s\n", c->name, why[0] ? why : "trusted");
    if (c->strict_why)
        expect_has(what, why, c->strict_why);
    if (c->relaxed >= 0) {
        snprintf(what, sizeof(what), "%s (relaxed)", c->name);
        expect_int(what, verdict(relaxed, sctx, c->sni, c->ip, own, why, sizeof(why)), c->relaxed);
        if (c->relaxed_why)
            expect_has(what, why, c->relaxed_why);
    }
    SSL_CTX_free(sctx);
}

/* --- the CA ----------------------------------------------------------------- */

static void test_ca_create(void)
{
    char dir[300], err[TLS_ERRLEN], *pem;
    struct tls_ca *ca, *again;
    X509 *x;
    X509_NAME *subj;
    char cn[128] = "", o[64] = "", group[64] = "";
    int idx;

    snprintf(dir, sizeof(dir), "%s/ca", tmp);
    ca = tls_ca_open(dir, 365, 30, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca == NULL) {
        fprintf(stderr, "tls_ca_open: %s\n", err);
        return;
    }
    CHECK_EQ_INT(file_mode(dir, "."), 0700);
    CHECK_EQ_INT(file_mode(dir, "ca.key"), 0600);
    CHECK_EQ_INT(file_mode(dir, "ca.pem"), 0644);
    CHECK_EQ_INT(count_tmp_files(dir), 0);
    CHECK_EQ_INT(count_pems(tls_ca_pem(ca)), 1);
    CHECK_EQ_STR(read_text(dir, "ca.pem"), tls_ca_pem(ca));
    CHECK(strstr(read_text(dir, "ca.key"), "PRIVATE KEY") != NULL);
    CHECK_EQ_INT(strlen(tls_ca_fingerprint(ca)), 95);
    CHECK_EQ_INT(tls_ca_fingerprint(ca)[2], ':');

    x = pem_cert(tls_ca_pem(ca), 0);
    CHECK(x != NULL);
    if (x != NULL) {
        EVP_PKEY *pk = X509_get0_pubkey(x);
        CHECK_EQ_INT(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL);
        CHECK_EQ_STR(group, "prime256v1");
        CHECK_EQ_INT(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
        CHECK_EQ_INT(X509_verify(x, pk), 1);
        CHECK(X509_get_extension_flags(x) & EXFLAG_CA);
        CHECK_EQ_INT(X509_get_pathlen(x), 0);
        idx = X509_get_ext_by_NID(x, NID_basic_constraints, -1);
        CHECK(idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, idx)));
        CHECK_EQ_INT(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
        idx = X509_get_ext_by_NID(x, NID_key_usage, -1);
        CHECK(idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, idx)));
        CHECK(X509_get0_subject_key_id(x) != NULL);
        subj = X509_get_subject_name(x);
        X509_NAME_get_text_by_NID(subj, NID_commonName, cn, sizeof(cn));
        X509_NAME_get_text_by_NID(subj, NID_organizationName, o, sizeof(o));
        CHECK(strncmp(cn, "sluice interception CA ", 23) == 0);
        CHECK(strlen(cn) <= 64);
        CHECK_EQ_STR(o, "sluice");
        CHECK(cert_time(X509_get0_notAfter(x)) - time(NULL) > 3640 * DAY);
        CHECK(cert_time(X509_get0_notBefore(x)) <= time(NULL));
        CHECK_EQ_INT(tls_ca_issued(ca, x), 1);
        X509_free(x);
    }

    /* Reopened: the same CA, nothing rewritten. */
    pem = strdup(tls_ca_pem(ca));
    again = tls_ca_open(dir, 365, 30, err, sizeof(err));
    CHECK(again != NULL);
    if (again != NULL) {
        CHECK_EQ_STR(tls_ca_pem(again), pem);
        CHECK_EQ_STR(tls_ca_fingerprint(again), tls_ca_fingerprint(ca));
        tls_ca_free(again);
    }
    free(pem);
    tls_ca_free(ca);

    /* An existing folder open to others is closed. */
    snprintf(dir, sizeof(dir), "%s/ca-open", tmp);
    mkdir(dir, 0755);
    chmod(dir, 0755);
    ca = tls_ca_open(dir, 0, 0, err, sizeof(err));
    CHECK(ca != NULL);
    CHECK_EQ_INT(file_mode(dir, "."), 0700);
    tls_ca_free(ca);
}

/* Makes a CA of another install from the test's PKI helpers, dated age days
 * back, as tls_ca_open would have written it. */
static X509 *write_old_ca(const char *dir, long age, const char *name, EVP_PKEY **keyp)
{
    const struct spec s = {
        "sluice interception CA old", NULL, -age * DAY, 3650 * DAY, 1, NULL, NULL};
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = mkcert(&s, key, NULL, NULL);
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;

    mkdir(dir, 0700);
    if (name == NULL) {
        PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
        PEM_write_bio_X509(bio, x);
        n = BIO_get_mem_data(bio, &data);
        data[n - 1] = '\0'; /* the last newline goes */
        write_text(dir, "ca.key", data, 0600);
        (void)BIO_reset(bio);
    }
    PEM_write_bio_X509(bio, x);
    n = BIO_get_mem_data(bio, &data);
    data[n - 1] = '\0';
    write_text(dir, name ? name : "ca.pem", data, 0644);
    BIO_free(bio);
    if (keyp != NULL)
        *keyp = key;
    else
        EVP_PKEY_free(key);
    return x;
}

static void test_ca_broken(void)
{
    char dir[300], err[TLS_ERRLEN], key[8192], *pem;
    struct tls_ca *ca;
    X509 *other;

    snprintf(dir, sizeof(dir), "%s/ca-broken", tmp);
    ca = tls_ca_open(dir, 0, 0, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca == NULL)
        return;
    pem = strdup(tls_ca_pem(ca));
    tls_ca_free(ca);
    snprintf(key, sizeof(key), "%s", read_text(dir, "ca.key"));

    /* A broken key file is an error naming it, and is left as it is. */
    write_text(dir, "ca.key", "-----BEGIN PRIVATE KEY-----\ngarbage\n", 0600);
    err[0] = '\0';
    CHECK(tls_ca_open(dir, 0, 0, err, sizeof(err)) == NULL);
    expect_has("broken ca.key", err, dir);
    expect_has("broken ca.key", err, "/ca.key: no private key");
    CHECK_EQ_STR(read_text(dir, "ca.key"), "-----BEGIN PRIVATE KEY-----\ngarbage\n");

    /* An encrypted key: refused, never a passphrase prompt. */
    {
        BIO *bio = BIO_new(BIO_s_mem());
        EVP_PKEY *k = EVP_EC_gen("P-256");
        char *data;
        long n;
        PEM_write_bio_PrivateKey(bio, k, EVP_aes_256_cbc(), (unsigned char *)"pw", 2, NULL, NULL);
        n = BIO_get_mem_data(bio, &data);
        data[n - 1] = '\0';
        write_text(dir, "ca.key", data, 0600);
        BIO_free(bio);
        EVP_PKEY_free(k);
    }
    CHECK(tls_ca_open(dir, 0, 0, err, sizeof(err)) == NULL);
    expect_has("encrypted ca.key", err, "/ca.key: no private key");

    /* A key readable by others. */
    write_text(dir, "ca.key", key, 0644);
    CHECK(tls_ca_open(dir, 0, 0, err, sizeof(err)) == NULL);
    expect_has("ca.key 0644", err, "mode 0644");
    write_text(dir, "ca.key", key, 0600);

    /* A broken certificate file. */
    write_text(dir, "ca.pem", "not a certificate\n", 0644);
    CHECK(tls_ca_open(dir, 0, 0, err, sizeof(err)) == NULL);
    expect_has("broken ca.pem", err, "/ca.pem: ");
    CHECK_EQ_STR(read_text(dir, "ca.pem"), "not a certificate\n");

    /* A broken previous CA. */
    write_text(dir, "ca.pem", pem, 0644);
    write_text(dir, "ca-previous.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n", 0644);
    CHECK(tls_ca_open(dir, 0, 0, err, sizeof(err)) == NULL);
    expect_has("broken ca-previous.pem", err, "/ca-previous.pem: ");
    char path[512];
    path_of(path, sizeof(path), dir, "ca-previous.pem");
    unlink(path);

    /* ca.pem missing or stale (a crash between the two renames): it is
     * written again from ca.key. */
    path_of(path, sizeof(path), dir, "ca.pem");
    unlink(path);
    ca = tls_ca_open(dir, 0, 0, err, sizeof(err));
    CHECK(ca != NULL);
    tls_ca_free(ca);
    CHECK_EQ_STR(read_text(dir, "ca.pem"), pem);
    X509_free(write_old_ca(dir, 1, "ca.pem", NULL));
    ca = tls_ca_open(dir, 0, 0, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca != NULL)
        CHECK_EQ_STR(tls_ca_pem(ca), pem);
    tls_ca_free(ca);
    CHECK_EQ_STR(read_text(dir, "ca.pem"), pem);

    /* A certificate without its key is not ours to replace. */
    path_of(path, sizeof(path), dir, "ca.key");
    unlink(path);
    CHECK(tls_ca_open(dir, 0, 0, err, sizeof(err)) == NULL);
    expect_has("ca.pem without ca.key", err, "ca.key is missing");

    /* A key with somebody else's certificate. */
    other = write_old_ca(dir, 1, "other.pem", NULL);
    {
        char mixed[16384];
        const char *k = strstr(key, "-----BEGIN CERTIFICATE");
        size_t klen = k ? (size_t)(k - key) : 0;
        snprintf(mixed, sizeof(mixed), "%.*s%s", (int)klen, key, read_text(dir, "other.pem"));
        write_text(dir, "ca.key", mixed, 0600);
    }
    CHECK(tls_ca_open(dir, 0, 0, err, sizeof(err)) == NULL);
    expect_has("mismatched ca.key", err, "does not match");
    X509_free(other);
    CHECK_EQ_INT(count_tmp_files(dir), 0);
    free(pem);
}

static void test_ca_rotation(void)
{
    char dir[300], err[TLS_ERRLEN];
    struct tls_ca *ca, *again;
    X509 *old, *cur, *x, *signed_by_old;
    EVP_PKEY *oldkey = NULL;
    const struct spec ls = {"old.test", "DNS:old.test", -DAY, 30 * DAY, 0, NULL, NULL};

    /* 400 days old, rotation after 365: a new CA, the old one exported. */
    snprintf(dir, sizeof(dir), "%s/ca-rotate", tmp);
    old = write_old_ca(dir, 400, NULL, &oldkey);
    ca = tls_ca_open(dir, 365, 30, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca == NULL) {
        fprintf(stderr, "rotation: %s\n", err);
        X509_free(old);
        EVP_PKEY_free(oldkey);
        return;
    }
    CHECK_EQ_INT(count_pems(tls_ca_pem(ca)), 2);
    x = pem_cert(tls_ca_pem(ca), 0);
    CHECK(x != NULL && X509_cmp(x, old) != 0);
    CHECK(x != NULL && cert_time(X509_get0_notBefore(x)) > time(NULL) - 2 * DAY);
    X509_free(x);
    x = pem_cert(tls_ca_pem(ca), 1);
    CHECK(x != NULL && X509_cmp(x, old) == 0);
    X509_free(x);
    x = pem_cert(read_text(dir, "ca-previous.pem"), 0);
    CHECK(x != NULL && X509_cmp(x, old) == 0);
    X509_free(x);
    x = pem_cert(read_text(dir, "ca.pem"), 0);
    cur = pem_cert(tls_ca_pem(ca), 0);
    CHECK(x != NULL && cur != NULL && X509_cmp(x, cur) == 0);
    X509_free(x);
    CHECK_EQ_INT(file_mode(dir, "ca.key"), 0600);
    CHECK_EQ_INT(count_tmp_files(dir), 0);

    /* The old CA still counts as sluice's own. */
    signed_by_old = mkcert(&ls, leaf_key, old, oldkey);
    CHECK_EQ_INT(tls_ca_issued(ca, signed_by_old), 1);
    X509_free(signed_by_old);
    EVP_PKEY_free(oldkey);
    /* Reopened within the grace: no second rotation, both exported. */
    again = tls_ca_open(dir, 365, 30, err, sizeof(err));
    CHECK(again != NULL);
    if (again != NULL) {
        CHECK_EQ_STR(tls_ca_fingerprint(again), tls_ca_fingerprint(ca));
        CHECK_EQ_INT(count_pems(tls_ca_pem(again)), 2);
        tls_ca_free(again);
    }
    /* No grace at all: only the current one. */
    again = tls_ca_open(dir, 365, 0, err, sizeof(err));
    CHECK(again != NULL);
    if (again != NULL) {
        CHECK_EQ_INT(count_pems(tls_ca_pem(again)), 1);
        tls_ca_free(again);
    }
    X509_free(cur);
    tls_ca_free(ca);
    X509_free(old);

    /* Rotated 40 days ago: grace of 30 is over, of 60 is not. */
    snprintf(dir, sizeof(dir), "%s/ca-grace", tmp);
    cur = write_old_ca(dir, 40, NULL, NULL);
    old = write_old_ca(dir, 400, "ca-previous.pem", NULL);
    ca = tls_ca_open(dir, 365, 30, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca != NULL) {
        x = pem_cert(tls_ca_pem(ca), 0);
        CHECK(x != NULL && X509_cmp(x, cur) == 0);
        X509_free(x);
        CHECK_EQ_INT(count_pems(tls_ca_pem(ca)), 1);
        /* Out of its grace, the previous CA is still refused upstream. */
        CHECK_EQ_INT(tls_ca_issued(ca, old), 1);
        tls_ca_free(ca);
    }
    ca = tls_ca_open(dir, 365, 60, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca != NULL) {
        CHECK_EQ_INT(count_pems(tls_ca_pem(ca)), 2);
        tls_ca_free(ca);
    }
    X509_free(cur);
    X509_free(old);

    /* rotate_days 0: never rotated. */
    snprintf(dir, sizeof(dir), "%s/ca-norotate", tmp);
    old = write_old_ca(dir, 400, NULL, NULL);
    ca = tls_ca_open(dir, 0, 30, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca != NULL) {
        x = pem_cert(tls_ca_pem(ca), 0);
        CHECK(x != NULL && X509_cmp(x, old) == 0);
        X509_free(x);
        tls_ca_free(ca);
    }
    X509_free(old);
}

/* --- forged leaves ---------------------------------------------------------- */

static struct tls_ca *the_ca;
static X509 *the_ca_cert;

static X509 *forged_leaf(SSL_CTX *ctx)
{
    return ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
}

static void count_sans(X509 *x, int *dns, int *ip, int *other)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

    *dns = *ip = *other = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        int t = sk_GENERAL_NAME_value(gens, i)->type;
        if (t == GEN_DNS)
            (*dns)++;
        else if (t == GEN_IPADD)
            (*ip)++;
        else
            (*other)++;
    }
    GENERAL_NAMES_free(gens);
}

static void test_forge_leaf(void)
{
    const struct spec s1 = {
        "good.test", "DNS:good.test,DNS:www.good.test,IP:192.0.2.7,email:a@good.test",
        -10 * DAY,   30 * DAY,
        0,           NULL,
        NULL};
    const struct spec s2 = {"long.test", "DNS:long.test", -3600, 20 * 3650 * DAY, 0, NULL, NULL};
    const struct spec s3 = {"cn-only.test", NULL, -DAY, 30 * DAY, 0, NULL, NULL};
    X509 *up1 = mkcert(&s1, leaf_key, inter, inter_key);
    X509 *up2 = mkcert(&s2, leaf_key, inter, inter_key);
    X509 *up3 = mkcert(&s3, leaf_key, inter, inter_key);
    struct tls_forge *f = tls_forge_new(the_ca, 16);
    char err[TLS_ERRLEN], cn[128] = "";
    SSL_CTX *c1, *c1b, *c1v12, *c2, *c3;
    X509 *l1, *l2, *l3;
    int dns, ip, other;
    time_t now = time(NULL);

    c1 = tls_forge_ctx(f, up1, TLS1_3_VERSION, 1, err, sizeof(err));
    CHECK(c1 != NULL);
    l1 = forged_leaf(c1);
    CHECK(l1 != NULL);
    if (l1 == NULL) {
        fprintf(stderr, "forge: %s\n", err);
        goto out;
    }
    /* Names. */
    X509_NAME_get_text_by_NID(X509_get_subject_name(l1), NID_commonName, cn, sizeof(cn));
    CHECK_EQ_STR(cn, "good.test");
    count_sans(l1, &dns, &ip, &other);
    CHECK_EQ_INT(dns, 2);
    CHECK_EQ_INT(ip, 1);
    CHECK_EQ_INT(other, 0);
    CHECK_EQ_INT(X509_check_host(l1, "www.good.test", 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_ip_asc(l1, "192.0.2.7", 0), 1);
    /* Dates: upstream notAfter; notBefore clamped to a day ago. */
    CHECK_EQ_INT(ASN1_TIME_compare(X509_get0_notAfter(l1), X509_get0_notAfter(up1)), 0);
    CHECK(labs((long)(cert_time(X509_get0_notBefore(l1)) - (now - DAY))) < 60);
    /* Signed by the CA with SHA-256, its own P-256 key. */
    CHECK_EQ_INT(X509_NAME_cmp(X509_get_issuer_name(l1), X509_get_subject_name(the_ca_cert)), 0);
    CHECK_EQ_INT(X509_verify(l1, X509_get0_pubkey(the_ca_cert)), 1);
    CHECK_EQ_INT(X509_get_signature_nid(l1), NID_ecdsa_with_SHA256);
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(l1), X509_get0_pubkey(the_ca_cert)) != 1);
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(l1), X509_get0_pubkey(up1)) != 1);
    CHECK_EQ_INT(EVP_PKEY_get_base_id(X509_get0_pubkey(l1)), EVP_PKEY_EC);
    CHECK_EQ_INT(EVP_PKEY_get_bits(X509_get0_pubkey(l1)), 256);
    CHECK_EQ_INT(EVP_PKEY_eq(SSL_CTX_get0_privatekey(c1), X509_get0_pubkey(l1)), 1);
    /* Extensions. */
    CHECK(X509_get0_authority_key_id(l1) != NULL &&
          ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(l1),
                                X509_get0_subject_key_id(the_ca_cert)) == 0);
    CHECK_EQ_INT(X509_get_extended_key_usage(l1), XKU_SSL_SERVER);
    CHECK_EQ_INT(X509_get_key_usage(l1), KU_DIGITAL_SIGNATURE);
    CHECK_EQ_INT(X509_check_ca(l1), 0);
    CHECK_EQ_INT(tls_ca_issued(the_ca, l1), 1);
    /* A positive serial of about 128 random bits. */
    {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(l1), NULL);
        CHECK(bn != NULL && !BN_is_negative(bn) && BN_num_bits(bn) <= 128 && BN_num_bits(bn) > 96);
        BN_free(bn);
    }
    /* OpenSSL verifies it against the CA as a server certificate. */
    {
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *xs = X509_STORE_CTX_new();
        X509_STORE_add_cert(store, the_ca_cert);
        X509_STORE_CTX_init(xs, store, l1, NULL);
        X509_STORE_CTX_set_purpose(xs, X509_PURPOSE_SSL_SERVER);
        X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(xs), "www.good.test", 0);
        CHECK_EQ_INT(X509_verify_cert(xs), 1);
        CHECK_EQ_INT(X509_STORE_CTX_get_error(xs), X509_V_OK);
        X509_STORE_CTX_free(xs);
        X509_STORE_free(store);
    }
    /* The context: the chain, the versions, the session cache. */
    {
        STACK_OF(X509) *chain = NULL;
        SSL_CTX_get0_chain_certs(c1, &chain);
        CHECK_EQ_INT(sk_X509_num(chain), 1);
        CHECK(sk_X509_num(chain) == 1 && X509_cmp(sk_X509_value(chain, 0), the_ca_cert) == 0);
        CHECK_EQ_INT(SSL_CTX_get_min_proto_version(c1), TLS1_2_VERSION);
        CHECK_EQ_INT(SSL_CTX_get_max_proto_version(c1), TLS1_3_VERSION);
        CHECK(SSL_CTX_get_session_cache_mode(c1) & SSL_SESS_CACHE_SERVER);
    }

    /* The cache: same upstream, same context; other settings, another. */
    c1b = tls_forge_ctx(f, up1, TLS1_3_VERSION, 1, err, sizeof(err));
    CHECK(c1b == c1);
    CHECK_EQ_INT(tls_forge_entries(f), 1);
    c1v12 = tls_forge_ctx(f, up1, TLS1_2_VERSION, 1, err, sizeof(err));
    CHECK(c1v12 != NULL && c1v12 != c1);
    CHECK(c1v12 != NULL && SSL_CTX_get_max_proto_version(c1v12) == TLS1_2_VERSION);
    CHECK_EQ_INT(tls_forge_entries(f), 2);

    /* Upstream valid beyond the CA: the CA's notAfter; a recent notBefore kept. */
    c2 = tls_forge_ctx(f, up2, TLS1_3_VERSION, 0, err, sizeof(err));
    l2 = forged_leaf(c2);
    CHECK(l2 != NULL);
    if (l2 != NULL) {
        CHECK_EQ_INT(ASN1_TIME_compare(X509_get0_notAfter(l2), X509_get0_notAfter(the_ca_cert)), 0);
        CHECK_EQ_INT(ASN1_TIME_compare(X509_get0_notBefore(l2), X509_get0_notBefore(up2)), 0);
        CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(l1), X509_get0_serialNumber(l2)) != 0);
        CHECK(EVP_PKEY_eq(X509_get0_pubkey(l1), X509_get0_pubkey(l2)) != 1);
    }
    /* No SAN upstream: the CN becomes one, as clients read only the SAN. */
    c3 = tls_forge_ctx(f, up3, TLS1_3_VERSION, 0, err, sizeof(err));
    l3 = forged_leaf(c3);
    CHECK(l3 != NULL &&
          X509_check_host(l3, "cn-only.test", 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1);
    CHECK_EQ_INT(tls_forge_entries(f), 4);

    /* Only TLS 1.2 and 1.3. */
    err[0] = '\0';
    CHECK(tls_forge_ctx(f, up1, TLS1_1_VERSION, 1, err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');

    SSL_CTX_free(c1);
    SSL_CTX_free(c1b);
    SSL_CTX_free(c1v12);
    SSL_CTX_free(c2);
    SSL_CTX_free(c3);
out:
    tls_forge_free(f);
    X509_free(up1);
    X509_free(up2);
    X509_free(up3);
}

static void test_forge_eviction(void)
{
    struct tls_forge *f = tls_forge_new(the_ca, 4);
    char err[TLS_ERRLEN], name[32];
    X509 *ups[6];
    SSL_CTX *first, *c, *again;

    CHECK(tls_forge_new(the_ca, 0) == NULL);
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "host%d.test", i);
        ups[i] = leaf(name, NULL);
    }
    first = tls_forge_ctx(f, ups[0], 0, 1, err, sizeof(err));
    CHECK(first != NULL);
    for (int i = 1; i < 6; i++) {
        c = tls_forge_ctx(f, ups[i], 0, 1, err, sizeof(err));
        CHECK(c != NULL);
        SSL_CTX_free(c);
        CHECK_EQ_INT(tls_forge_entries(f), i + 1 < 4 ? i + 1 : 4);
    }
    /* The first entry is gone; the caller's reference kept its context. */
    CHECK(SSL_CTX_get0_certificate(first) != NULL);
    again = tls_forge_ctx(f, ups[0], 0, 1, err, sizeof(err));
    CHECK(again != NULL && again != first);
    CHECK_EQ_INT(tls_forge_entries(f), 4);
    /* The most recently used entry stays: ups[5] was used last but one. */
    c = tls_forge_ctx(f, ups[5], 0, 1, err, sizeof(err));
    CHECK(c != NULL);
    SSL_CTX *c5 = tls_forge_ctx(f, ups[5], 0, 1, err, sizeof(err));
    CHECK(c5 == c);
    SSL_CTX_free(c5);
    SSL_CTX_free(c);
    SSL_CTX_free(again);
    SSL_CTX_free(first);
    tls_forge_free(f);
    for (int i = 0; i < 6; i++)
        X509_free(ups[i]);
}

#define NTHREADS 4
#define NUPS     8

struct worker {
    struct tls_forge *f;
    X509 **ups;
    int seed, failures;
};

static void *forge_worker(void *arg)
{
    struct worker *w = arg;
    char err[TLS_ERRLEN], cn[64], want[64];

    for (int i = 0; i < 40; i++) {
        int k = (w->seed * 7 + i * 3) % NUPS;
        SSL_CTX *ctx = tls_forge_ctx(w->f, w->ups[k], 0, i & 1, err, sizeof(err));
        X509 *l = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
        cn[0] = '\0';
        if (l != NULL)
            X509_NAME_get_text_by_NID(X509_get_subject_name(l), NID_commonName, cn, sizeof(cn));
        snprintf(want, sizeof(want), "t%d.test", k);
        if (l == NULL || strcmp(cn, want) != 0)
            w->failures++;
        SSL_CTX_free(ctx);
    }
    return NULL;
}

static void test_forge_threads(void)
{
    struct tls_forge *f = tls_forge_new(the_ca, 4);
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    X509 *ups[NUPS];
    char name[32];

    for (int i = 0; i < NUPS; i++) {
        snprintf(name, sizeof(name), "t%d.test", i);
        ups[i] = leaf(name, NULL);
    }
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){f, ups, i, 0};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, forge_worker, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(w[i].failures, 0);
    }
    CHECK_EQ_INT(tls_forge_entries(f), 4);
    tls_forge_free(f);
    for (int i = 0; i < NUPS; i++)
        X509_free(ups[i]);
}

/* A client (the upstream context, trusting sluice's CA) against forged leaves. */
static void test_forge_alpn(SSL_CTX *trusts_ca)
{
    static const unsigned char both[] = "\x02h2\x08http/1.1", h2[] = "\x02h2";
    struct tls_forge *f = tls_forge_new(the_ca, 8);
    X509 *up = leaf("alpn.test", "DNS:alpn.test");
    char err[TLS_ERRLEN];
    SSL_CTX *on = tls_forge_ctx(f, up, TLS1_3_VERSION, 1, err, sizeof(err));
    SSL_CTX *off = tls_forge_ctx(f, up, TLS1_3_VERSION, 0, err, sizeof(err));
    SSL_CTX *v12 = tls_forge_ctx(f, up, TLS1_2_VERSION, 1, err, sizeof(err));
    const unsigned char *sel;
    unsigned len;
    struct hs h;

    CHECK(on && off && v12);
    /* h2 and http/1.1 offered: http/1.1. */
    hs_run(&h, on, trusts_ca, "alpn.test", NULL, both, sizeof(both) - 1);
    CHECK(h.client_ok && h.server_ok);
    SSL_get0_alpn_selected(h.cli, &sel, &len);
    CHECK(len == 8 && memcmp(sel, "http/1.1", 8) == 0);
    CHECK_EQ_INT(SSL_version(h.cli), TLS1_3_VERSION);
    CHECK_EQ_INT(tls_upstream_check(h.cli, &policy, NULL, err, sizeof(err)), 0);
    hs_free(&h);
    /* Only h2: no ALPN at all, the handshake goes on. */
    hs_run(&h, on, trusts_ca, "alpn.test", NULL, h2, sizeof(h2) - 1);
    CHECK(h.client_ok);
    SSL_get0_alpn_selected(h.cli, &sel, &len);
    CHECK_EQ_INT(len, 0);
    hs_free(&h);
    /* alpn_http11 off: nothing selected. */
    hs_run(&h, off, trusts_ca, "alpn.test", NULL, both, sizeof(both) - 1);
    CHECK(h.client_ok);
    SSL_get0_alpn_selected(h.cli, &sel, &len);
    CHECK_EQ_INT(len, 0);
    hs_free(&h);
    /* max_version TLS 1.2 holds. */
    hs_run(&h, v12, trusts_ca, "alpn.test", NULL, both, sizeof(both) - 1);
    CHECK(h.client_ok);
    CHECK_EQ_INT(SSL_version(h.cli), TLS1_2_VERSION);
    hs_free(&h);
    /* A forged leaf coming back upstream is refused by name. */
    hs_run(&h, on, trusts_ca, "alpn.test", NULL, NULL, 0);
    CHECK(h.client_ok);
    CHECK_EQ_INT(tls_upstream_check(h.cli, &policy, the_ca, err, sizeof(err)), -1);
    expect_has("forged leaf upstream", err, "issued by sluice's own CA (CN=alpn.test)");
    hs_free(&h);

    SSL_CTX_free(on);
    SSL_CTX_free(off);
    SSL_CTX_free(v12);
    tls_forge_free(f);
    X509_free(up);
}

/* --- upstream validation ------------------------------------------------------ */

static void test_upstream_ctx(SSL_CTX *ctx)
{
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
    char err[TLS_ERRLEN];
    struct tls_upstream_policy bad = {"/nonexistent/roots.pem", NULL, 0, 0};
    SSL *ssl = SSL_new(ctx);
    int weak = 0;

    CHECK_EQ_INT(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    CHECK_EQ_INT(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
    CHECK_EQ_INT(SSL_CTX_get_security_level(ctx), 2);
    CHECK_EQ_INT(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
        const char *name = SSL_CIPHER_get_name(c);
        if (strncmp(name, "TLS_", 4) == 0) /* TLS 1.3: all AEAD */
            continue;
        if (strncmp(name, "ECDHE-", 6) != 0 ||
            (strstr(name, "GCM") == NULL && strstr(name, "CHACHA20") == NULL))
            weak++;
    }
    CHECK_EQ_INT(weak, 0);
    CHECK(sk_SSL_CIPHER_num(ciphers) > 3);

    err[0] = '\0';
    CHECK(tls_upstream_ctx_new(&bad, err, sizeof(err)) == NULL);
    expect_has("missing ca_file", err, "/nonexistent/roots.pem");

    /* Nothing to check the certificate against, or not an address. */
    CHECK_EQ_INT(tls_upstream_prepare(ssl, NULL, NULL), -1);
    CHECK_EQ_INT(tls_upstream_prepare(ssl, "", "not-an-ip"), -1);
    CHECK_EQ_INT(tls_upstream_prepare(ssl, "example.test", NULL), 0);
    CHECK_EQ_STR(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "example.test");
    SSL_free(ssl);
}

static void test_verdicts(SSL_CTX *strict, SSL_CTX *relaxed)
{
    const struct spec expired_s = {
        "expired.test", "DNS:expired.test", -90 * DAY, -DAY, 0, NULL, NULL};
    const struct spec future_s = {"future.test", "DNS:future.test", DAY, 90 * DAY, 0, NULL, NULL};
    const struct spec self_s = {"self.test", "DNS:self.test", -DAY, 90 * DAY, 0, NULL, NULL};
    const struct spec sha1_s = {"sha1.test", "DNS:sha1.test", -DAY, 90 * DAY, 0, NULL, EVP_sha1()};
    const struct spec rsa_s = {"rsa.test", "DNS:rsa.test", -DAY, 90 * DAY, 0, NULL, NULL};
    const struct spec client_s = {"client.test", "DNS:client.test", -DAY, 90 * DAY, 0, "clientAuth",
                                  NULL};
    X509 *good = leaf("good.test", "DNS:good.test");
    X509 *expired = mkcert(&expired_s, leaf_key, inter, inter_key);
    X509 *future = mkcert(&future_s, leaf_key, inter, inter_key);
    X509 *self = mkcert(&self_s, leaf_key, NULL, NULL);
    X509 *unknown = mkcert(&self_s, leaf_key, other_root, other_key);
    X509 *wrong = leaf("other.test", "DNS:other.test");
    X509 *wild = leaf("*.wild.test", "DNS:*.wild.test");
    X509 *partial = leaf("f*.part.test", "DNS:f*.part.test");
    X509 *ipsan = leaf("192.0.2.7", "IP:192.0.2.7");
    X509 *cnonly = leaf("cnonly.test", NULL);
    X509 *sha1 = mkcert(&sha1_s, leaf_key, rsa_inter, rsa_inter_key);
    X509 *viarsa = mkcert(&rsa_s, leaf_key, rsa_inter, rsa_inter_key);
    X509 *rsa1024 = mkcert(&rsa_s, rsa1024_key, inter, inter_key);
    X509 *client = mkcert(&client_s, leaf_key, inter, inter_key);
    X509 *weakchain = mkcert(&self_s, leaf_key, weak_inter, weak_inter_key);
    X509 *caleaf = with_ext(leaf("ca.test", "DNS:ca.test"), NID_basic_constraints, "CA:TRUE");
    X509 *couk = leaf("*.co.uk", "DNS:*.co.uk");
    X509 *com = leaf("*.com", "DNS:*.com");
    X509 *upper = leaf("*.Co.UK", "DNS:*.Co.UK");
    X509 *unknowntld = leaf("*.intranet", "DNS:*.intranet");
    X509 *privsuffix = leaf("*.github.io", "DNS:*.github.io");
    X509 *registrable = leaf("*.victim.co.uk", "DNS:*.victim.co.uk");
    const struct vcase cases[] = {
        {"good", good, leaf_key, inter, "good.test", NULL, TRUSTED, NULL, TRUSTED, NULL},
        {"good via RSA-2048 intermediate", viarsa, leaf_key, rsa_inter, "rsa.test", NULL, TRUSTED,
         NULL, -1, NULL},
        {"expired", expired, leaf_key, inter, "expired.test", NULL, REFUSED_HANDSHAKE,
         "certificate has expired (CN=expired.test)", -1, NULL},
        {"not yet valid", future, leaf_key, inter, "future.test", NULL, REFUSED_HANDSHAKE,
         "certificate is not yet valid (CN=future.test)", -1, NULL},
        {"self-signed", self, leaf_key, NULL, "self.test", NULL, REFUSED_HANDSHAKE,
         "self-signed certificate (CN=self.test)", -1, NULL},
        {"unknown root", unknown, leaf_key, other_root, "self.test", NULL, REFUSED_HANDSHAKE,
         "self-signed certificate in certificate chain (CN=Unknown Root)", -1, NULL},
        {"unknown root, not sent", unknown, leaf_key, NULL, "self.test", NULL, REFUSED_HANDSHAKE,
         "unable to get local issuer certificate (CN=self.test)", -1, NULL},
        {"missing intermediate", good, leaf_key, NULL, "good.test", NULL, REFUSED_HANDSHAKE,
         "unable to get local issuer certificate (CN=good.test)", -1, NULL},
        {"wrong name", wrong, leaf_key, inter, "good.test", NULL, REFUSED_HANDSHAKE,
         "hostname mismatch: not valid for good.test (CN=other.test)", -1, NULL},
        {"wildcard", wild, leaf_key, inter, "a.wild.test", NULL, TRUSTED, NULL, -1, NULL},
        {"wildcard, two labels", wild, leaf_key, inter, "a.b.wild.test", NULL, REFUSED_HANDSHAKE,
         "hostname mismatch", -1, NULL},
        {"wildcard, bare domain", wild, leaf_key, inter, "wild.test", NULL, REFUSED_HANDSHAKE,
         "hostname mismatch", -1, NULL},
        {"partial wildcard", partial, leaf_key, inter, "foo.part.test", NULL, REFUSED_HANDSHAKE,
         "hostname mismatch", -1, NULL},
        {"name in the CN only", cnonly, leaf_key, inter, "cnonly.test", NULL, REFUSED_HANDSHAKE,
         "hostname mismatch", -1, NULL},
        {"IP SAN, no SNI", ipsan, leaf_key, inter, NULL, "192.0.2.7", TRUSTED, NULL, -1, NULL},
        {"IP SAN, address as SNI", ipsan, leaf_key, inter, "192.0.2.7", NULL, TRUSTED, NULL, -1,
         NULL},
        {"IP SAN, other address", ipsan, leaf_key, inter, NULL, "192.0.2.8", REFUSED_HANDSHAKE,
         "IP address mismatch: not valid for 192.0.2.8 (CN=192.0.2.7)", -1, NULL},
        {"IP SAN, a name", ipsan, leaf_key, inter, "host.test", NULL, REFUSED_HANDSHAKE,
         "hostname mismatch", -1, NULL},
        {"SHA-1 signed", sha1, leaf_key, rsa_inter, "sha1.test", NULL, REFUSED_HANDSHAKE,
         "signature algorithm sha1WithRSAEncryption is too weak (CN=sha1.test)", REFUSED_CHECK,
         "signature algorithm sha1WithRSAEncryption is too weak (CN=sha1.test)"},
        {"RSA-1024", rsa1024, rsa1024_key, inter, "rsa.test", NULL, REFUSED_HANDSHAKE,
         "RSA key of 1024 bits is too small (CN=rsa.test)", REFUSED_CHECK,
         "RSA key of 1024 bits is too small (CN=rsa.test)"},
        {"no serverAuth", client, leaf_key, inter, "client.test", NULL, REFUSED_HANDSHAKE,
         "extended key usage does not include serverAuth (CN=client.test)", REFUSED_CHECK,
         "extended key usage does not include serverAuth (CN=client.test)"},
        {"EC P-224 intermediate", weakchain, leaf_key, weak_inter, "self.test", NULL, REFUSED_CHECK,
         "EC key of 224 bits is too small (CN=Weak Intermediate)", -1, NULL},
        {"CA:TRUE leaf", caleaf, leaf_key, inter, "ca.test", NULL, REFUSED_CHECK,
         "the server's certificate is a CA certificate (basicConstraints CA:TRUE) (CN=ca.test)",
         REFUSED_CHECK, "CA:TRUE"},
        {"wildcard over co.uk", couk, leaf_key, inter, "victim.co.uk", NULL, REFUSED_CHECK,
         "wildcard *.co.uk covers a public suffix (CN=*.co.uk)", REFUSED_CHECK, "*.co.uk"},
        {"wildcard over Co.UK", upper, leaf_key, inter, "victim.co.uk", NULL, REFUSED_CHECK,
         "wildcard *.Co.UK covers a public suffix", -1, NULL},
        /* One label after the star: OpenSSL refuses these by itself. */
        {"wildcard over com", com, leaf_key, inter, "victim.com", NULL, REFUSED_HANDSHAKE,
         "hostname mismatch", -1, NULL},
        {"wildcard over an unknown TLD", unknowntld, leaf_key, inter, "host.intranet", NULL,
         REFUSED_HANDSHAKE, "hostname mismatch", -1, NULL},
        {"wildcard under a private suffix", privsuffix, leaf_key, inter, "me.github.io", NULL,
         TRUSTED, NULL, -1, NULL},
        {"wildcard under a registrable domain", registrable, leaf_key, inter, "www.victim.co.uk",
         NULL, TRUSTED, NULL, -1, NULL},
    };
    X509 *all[] = {good,  expired, future, self,       unknown,    wrong,      wild,      partial,
                   ipsan, cnonly,  sha1,   viarsa,     rsa1024,    client,     weakchain, caleaf,
                   couk,  com,     upper,  unknowntld, privsuffix, registrable};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(strict, relaxed, &cases[i], the_ca);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        X509_free(all[i]);
}

/* --- revocation ---------------------------------------------------------------- */

struct staple {
    unsigned char *der; /* NULL: the server staples nothing */
    int len;
};

static int staple_cb(SSL *ssl, void *arg)
{
    struct staple *st = arg;
    unsigned char *copy;

    if (st->der == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    copy = OPENSSL_memdup(st->der, st->len);
    if (copy == NULL || SSL_set_tlsext_status_ocsp_resp(ssl, copy, st->len) != 1)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

/* An OCSP response (DER) with code, saying status of cert (issued by the
 * intermediate), valid from now + from to now + to, signed by signer. */
static struct staple ocsp(int code, X509 *cert, int status, long from, long to, X509 *signer,
                          EVP_PKEY *skey)
{
    struct staple st = {NULL, 0};
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), cert, inter);
    ASN1_TIME *thisupd = X509_gmtime_adj(NULL, from), *nextupd = X509_gmtime_adj(NULL, to);
    ASN1_TIME *revtime = X509_gmtime_adj(NULL, -DAY);
    OCSP_RESPONSE *resp;
    unsigned char *p;

    CHECK(bs && id && thisupd && nextupd && revtime);
    CHECK(OCSP_basic_add1_status(
              bs, id, status,
              status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : 0,
              status == V_OCSP_CERTSTATUS_REVOKED ? revtime : NULL, thisupd, nextupd) != NULL);
    CHECK(OCSP_basic_sign(bs, signer, skey, EVP_sha256(), NULL, 0) == 1);
    resp = OCSP_response_create(code, code == OCSP_RESPONSE_STATUS_SUCCESSFUL ? bs : NULL);
    st.len = i2d_OCSP_RESPONSE(resp, NULL);
    st.der = OPENSSL_malloc(st.len);
    p = st.der;
    i2d_OCSP_RESPONSE(resp, &p);
    OCSP_RESPONSE_free(resp);
    OCSP_BASICRESP_free(bs);
    OCSP_CERTID_free(id);
    ASN1_TIME_free(thisupd);
    ASN1_TIME_free(nextupd);
    ASN1_TIME_free(revtime);
    return st;
}

/* The verdict on a server presenting cert (name.test) and stapling st. */
static int staple_verdict(SSL_CTX *strict, X509 *cert, const char *name, struct staple *st,
                          int version, char *why, size_t whylen)
{
    SSL_CTX *sctx = server_ctx(cert, leaf_key, inter);
    int v;

    SSL_CTX_set_max_proto_version(sctx, version);
    SSL_CTX_set_tlsext_status_cb(sctx, staple_cb);
    SSL_CTX_set_tlsext_status_arg(sctx, st);
    v = verdict(strict, sctx, name, NULL, the_ca, why, whylen);
    SSL_CTX_free(sctx);
    return v;
}

static void test_staples(SSL_CTX *strict)
{
    const struct spec resp_s = {"Test OCSP Responder", NULL, -DAY, 90 * DAY, 0,
                                "OCSPSigning",         NULL};
    EVP_PKEY *rkey = EVP_EC_gen("P-256");
    X509 *responder = mkcert(&resp_s, rkey, inter, inter_key);
    X509 *notresponder = leaf("plain.test", "DNS:plain.test");
    X509 *good = leaf("ocsp.test", "DNS:ocsp.test");
    X509 *other = leaf("other.test", "DNS:other.test");
    X509 *staple = with_ext(leaf("ocsp.test", "DNS:ocsp.test"), NID_tlsfeature, "status_request");
    const int ok = OCSP_RESPONSE_STATUS_SUCCESSFUL, G = V_OCSP_CERTSTATUS_GOOD,
              R = V_OCSP_CERTSTATUS_REVOKED, U = V_OCSP_CERTSTATUS_UNKNOWN;
    static const unsigned char junk[] = "\x30\x03\x0a\x01\x00junk";
    const struct {
        const char *name;
        X509 *cert;
        struct staple st;
        int want;
        const char *why;
    } cases[] = {
        {"no staple", good, {NULL, 0}, TRUSTED, NULL},
        {"good, by the issuer", good, ocsp(ok, good, G, -3600, DAY, inter, inter_key), TRUSTED,
         NULL},
        {"good, by a delegated responder", good, ocsp(ok, good, G, -3600, DAY, responder, rkey),
         TRUSTED, NULL},
        {"revoked, by the issuer", good, ocsp(ok, good, R, -3600, DAY, inter, inter_key),
         REFUSED_CHECK,
         "certificate revoked (stapled OCSP response, keyCompromise) (CN=ocsp.test)"},
        {"revoked, by a delegated responder", good, ocsp(ok, good, R, -3600, DAY, responder, rkey),
         REFUSED_CHECK, "certificate revoked (stapled OCSP response"},
        {"revoked, out of date", good, ocsp(ok, good, R, -9 * DAY, -2 * DAY, inter, inter_key),
         REFUSED_CHECK, "certificate revoked"},
        {"unknown", good, ocsp(ok, good, U, -3600, DAY, inter, inter_key), REFUSED_CHECK,
         "certificate status unknown (stapled OCSP response)"},
        {"good, signed by an unknown root", good,
         ocsp(ok, good, G, -3600, DAY, other_root, other_key), REFUSED_CHECK,
         "stapled OCSP response does not verify"},
        {"good, signed by a leaf that is no responder", good,
         ocsp(ok, good, G, -3600, DAY, notresponder, leaf_key), REFUSED_CHECK,
         "stapled OCSP response does not verify"},
        {"good, for another certificate", good, ocsp(ok, other, G, -3600, DAY, inter, inter_key),
         REFUSED_CHECK, "stapled OCSP response is not about this certificate"},
        {"tryLater", good, ocsp(OCSP_RESPONSE_STATUS_TRYLATER, good, G, 0, DAY, inter, inter_key),
         REFUSED_CHECK, "stapled OCSP response unusable (trylater)"},
        {"junk",
         good,
         {OPENSSL_memdup(junk, sizeof(junk) - 1), sizeof(junk) - 1},
         REFUSED_CHECK,
         "stapled OCSP response unreadable"},
        {"good, out of date", good, ocsp(ok, good, G, -9 * DAY, -2 * DAY, inter, inter_key),
         TRUSTED, NULL},
        {"must-staple, no staple",
         staple,
         {NULL, 0},
         REFUSED_CHECK,
         "must-staple certificate without a stapled OCSP response (CN=ocsp.test)"},
        {"must-staple, good", staple, ocsp(ok, staple, G, -3600, DAY, inter, inter_key), TRUSTED,
         NULL},
        {"must-staple, revoked", staple, ocsp(ok, staple, R, -3600, DAY, inter, inter_key),
         REFUSED_CHECK, "certificate revoked"},
        {"must-staple, good, out of date", staple,
         ocsp(ok, staple, G, -9 * DAY, -2 * DAY, inter, inter_key), REFUSED_CHECK,
         "must-staple certificate with an out-of-date stapled OCSP response"},
    };
    char why[TLS_ERRLEN], what[128];

    CHECK_EQ_INT(SSL_CTX_get_tlsext_status_type(strict), TLSEXT_STATUSTYPE_ocsp);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct staple st = cases[i].st;
        for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
            snprintf(what, sizeof(what), "staple: %s (TLS 1.%d)", cases[i].name, (v & 0xf) - 1);
            expect_int(what,
                       staple_verdict(strict, cases[i].cert, "ocsp.test", &st, v, why, sizeof(why)),
                       cases[i].want);
            if (getenv("TEST_VERBOSE"))
                fprintf(stderr, "%-48s %s\n", what, why[0] ? why : "trusted");
            if (cases[i].why)
                expect_has(what, why, cases[i].why);
        }
        OPENSSL_free(st.der);
    }
    X509_free(responder);
    X509_free(notresponder);
    X509_free(good);
    X509_free(other);
    X509_free(staple);
    EVP_PKEY_free(rkey);
}

/* The client side offers AEAD suites only: a client that speaks only CBC
 * suites in TLS 1.2 gets no handshake; one offering GCM does. */
static void test_forge_ciphers(void)
{
    struct tls_forge *f = tls_forge_new(the_ca, 4);
    X509 *up = leaf("suites.test", "DNS:suites.test");
    char err[TLS_ERRLEN];
    SSL_CTX *fctx = tls_forge_ctx(f, up, TLS1_3_VERSION, 1, err, sizeof(err));
    SSL_CTX *cbc = SSL_CTX_new(TLS_client_method()), *gcm = SSL_CTX_new(TLS_client_method());
    STACK_OF(SSL_CIPHER) * offered;
    struct hs h;
    int weak = 0;

    CHECK(fctx && cbc && gcm);
    offered = SSL_CTX_get_ciphers(fctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(offered); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(offered, i);
        if (strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") != 0 &&
            (!SSL_CIPHER_is_aead(c) || SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe))
            weak++;
    }
    CHECK_EQ_INT(weak, 0);
    SSL_CTX_set_max_proto_version(cbc, TLS1_2_VERSION);
    CHECK(SSL_CTX_set_cipher_list(cbc, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
                                       "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA") == 1);
    hs_run(&h, fctx, cbc, NULL, NULL, NULL, 0);
    CHECK(!h.client_ok && !h.server_ok);
    hs_free(&h);
    SSL_CTX_set_max_proto_version(gcm, TLS1_2_VERSION);
    CHECK(SSL_CTX_set_cipher_list(gcm, "ECDHE-ECDSA-AES128-GCM-SHA256") == 1);
    hs_run(&h, fctx, gcm, NULL, NULL, NULL, 0);
    CHECK(h.client_ok && h.server_ok);
    hs_free(&h);
    ERR_clear_error();
    SSL_CTX_free(cbc);
    SSL_CTX_free(gcm);
    SSL_CTX_free(fctx);
    tls_forge_free(f);
    X509_free(up);
}

/* Refusals that are not about the certificate still have a reason. */
static void test_handshake_errors(SSL_CTX *strict)
{
    X509 *good = leaf("good.test", "DNS:good.test");
    SSL_CTX *old = server_ctx(good, leaf_key, inter), *cbc = server_ctx(good, leaf_key, inter);
    char why[TLS_ERRLEN];

    SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
    CHECK_EQ_INT(verdict(strict, old, "good.test", NULL, the_ca, why, sizeof(why)),
                 REFUSED_HANDSHAKE);
    expect_has("TLS 1.1 server", why, "TLS handshake failed: ");
    SSL_CTX_set_max_proto_version(cbc, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(cbc, "ECDHE-ECDSA-AES128-SHA:AES128-SHA");
    CHECK_EQ_INT(verdict(strict, cbc, "good.test", NULL, the_ca, why, sizeof(why)),
                 REFUSED_HANDSHAKE);
    expect_has("CBC-only server", why, "TLS handshake failed: ");
    CHECK_EQ_INT(verdict(strict, NULL, "good.test", NULL, the_ca, why, sizeof(why)),
                 REFUSED_HANDSHAKE);
    expect_has("server gone", why, "connection closed by the server");
    SSL_CTX_free(old);
    SSL_CTX_free(cbc);
    X509_free(good);
}

/* Descriptors: two per proxied connection, after the reserve. */
static void test_conns_fit(void)
{
    CHECK_EQ_INT(tls_proxy_conns_fit(1048576, 256, 10000), 10000);
    CHECK_EQ_INT(tls_proxy_conns_fit(20000, 256, 10000), 9872);
    CHECK_EQ_INT(tls_proxy_conns_fit(20256 + 1, 256, 10000), 10000);
    CHECK_EQ_INT(tls_proxy_conns_fit(1024, 256, 10000), 384);
    CHECK_EQ_INT(tls_proxy_conns_fit(259, 256, 10000), 1);
    CHECK_EQ_INT(tls_proxy_conns_fit(100, 256, 10000), 1);
    CHECK_EQ_INT(tls_proxy_conns_fit(UINT64_MAX, 256, 10000), 10000);
    CHECK_EQ_INT(tls_proxy_conns_fit(5000, 0, 0), 1);
}

int main(void)
{
    char dir[300], roots[300], ownroots[300], err[TLS_ERRLEN];
    SSL_CTX *strict, *relaxed, *trusts_ca;
    struct tls_upstream_policy own_policy;
    FILE *f;

    /* A server that hangs up must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmp, sizeof(tmp), "/tmp/test_tls.XXXXXX");
    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    pki_init();

    test_conns_fit();
    test_ca_create();
    test_ca_broken();
    test_ca_rotation();

    snprintf(dir, sizeof(dir), "%s/the-ca", tmp);
    the_ca = tls_ca_open(dir, 365, 30, err, sizeof(err));
    CHECK(the_ca != NULL);
    if (the_ca == NULL) {
        fprintf(stderr, "%s\n", err);
        CHECK_DONE();
    }
    the_ca_cert = pem_cert(tls_ca_pem(the_ca), 0);

    /* Trust: the private root (and, for one context, sluice's CA). */
    snprintf(dir, sizeof(dir), "%s/empty", tmp);
    mkdir(dir, 0700);
    snprintf(roots, sizeof(roots), "%s/roots.pem", tmp);
    f = fopen(roots, "w");
    PEM_write_X509(f, root);
    fclose(f);
    snprintf(ownroots, sizeof(ownroots), "%s/sluice-ca.pem", tmp);
    write_text(tmp, "sluice-ca.pem", tls_ca_pem(the_ca), 0644);
    policy = (struct tls_upstream_policy){roots, dir, 2048, 256};
    own_policy = (struct tls_upstream_policy){ownroots, dir, 2048, 256};
    strict = tls_upstream_ctx_new(&policy, err, sizeof(err));
    relaxed = tls_upstream_ctx_new(&policy, err, sizeof(err));
    trusts_ca = tls_upstream_ctx_new(&own_policy, err, sizeof(err));
    CHECK(strict && relaxed && trusts_ca);
    if (strict && relaxed && trusts_ca) {
        /* What the handshake lets through when OpenSSL's own checks are off:
         * tls_upstream_check must refuse it by itself. */
        SSL_CTX_set_security_level(relaxed, 0);
        X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(relaxed), X509_PURPOSE_ANY);

        test_forge_leaf();
        test_forge_eviction();
        test_forge_threads();
        test_forge_alpn(trusts_ca);
        test_upstream_ctx(strict);
        test_verdicts(strict, relaxed);
        test_staples(strict);
        test_forge_ciphers();
        test_handshake_errors(strict);
    }
    SSL_CTX_free(strict);
    SSL_CTX_free(relaxed);
    SSL_CTX_free(trusts_ca);
    X509_free(the_ca_cert);
    tls_ca_free(the_ca);
    pki_free();
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    CHECK_DONE();
}
