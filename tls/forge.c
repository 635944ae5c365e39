/*
 * Forged leaves: for each upstream certificate, a leaf with the same names
 * and no longer validity, signed by the interception CA, served from an
 * SSL_CTX that the proxy uses for the client side.
 *
 * Each leaf has its own fresh key, so one leaked leaf key speaks for one
 * server only, and the CA key signs but is never served. The cache is keyed
 * by the upstream certificate's SHA-256 (plus the protocol settings that go
 * into the SSL_CTX), bounded, least recently used out. The lock covers the
 * table only: two threads missing the same certificate both forge, and the
 * second to insert takes the first one's context and drops its own, which
 * costs a signature but never makes a thread wait for another's.
 *
 * SSL_CTX objects are reference counted: the cache holds one reference and
 * every caller gets its own, so an eviction never frees a context that a
 * connection still uses.
 */
#include "tls_internal.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY 86400L
/* What the client side offers in TLS 1.2: ECDHE (forward secrecy) with an
 * AEAD, as upstream; no CBC suite (Lucky13 and padding oracles). The TLS
 * 1.3 suites are all AEAD and stay OpenSSL's. */
#define CLIENT_SIDE_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
/* Clients with a clock a little behind still accept a fresh leaf. */
#define LEAF_BACKDATE DAY

struct forge_entry {
    unsigned char digest[32]; /* SHA-256 of the upstream certificate */
    int max_version, alpn_http11;
    SSL_CTX *ctx;                      /* the cache's reference */
    struct forge_entry *newer, *older; /* LRU list */
    struct forge_entry *next_in_bucket;
};

struct tls_forge {
    struct tls_ca *ca;
    size_t max_entries, count, nbuckets; /* nbuckets: a power of two */
    struct forge_entry **buckets;
    struct forge_entry *newest, *oldest;
    pthread_mutex_t lock;
};

struct tls_forge *tls_forge_new(struct tls_ca *ca, size_t max_entries)
{
    struct tls_forge *f;

    if (ca == NULL || max_entries == 0)
        return NULL;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->ca = ca;
    f->max_entries = max_entries;
    f->nbuckets = 16;
    while (f->nbuckets < max_entries && f->nbuckets < ((size_t)1 << 20))
        f->nbuckets <<= 1;
    f->buckets = calloc(f->nbuckets, sizeof(*f->buckets));
    if (f->buckets == NULL || pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f->buckets);
        free(f);
        return NULL;
    }
    return f;
}

void tls_forge_free(struct tls_forge *f)
{
    struct forge_entry *e, *next;

    if (f == NULL)
        return;
    for (e = f->newest; e != NULL; e = next) {
        next = e->older;
        SSL_CTX_free(e->ctx);
        free(e);
    }
    pthread_mutex_destroy(&f->lock);
    free(f->buckets);
    free(f);
}

size_t tls_forge_entries(const struct tls_forge *f)
{
    pthread_mutex_t *lock = (pthread_mutex_t *)&f->lock;
    size_t n;

    pthread_mutex_lock(lock);
    n = f->count;
    pthread_mutex_unlock(lock);
    return n;
}

/* --- the table (lock held) -------------------------------------------------------- */

static struct forge_entry **bucket(struct tls_forge *f, const unsigned char *digest)
{
    size_t h;

    memcpy(&h, digest, sizeof(h)); /* SHA-256 bits are as good a hash as any */
    return &f->buckets[h & (f->nbuckets - 1)];
}

static struct forge_entry *table_find(struct tls_forge *f, const unsigned char *digest,
                                      int max_version, int alpn_http11)
{
    for (struct forge_entry *e = *bucket(f, digest); e != NULL; e = e->next_in_bucket)
        if (memcmp(e->digest, digest, sizeof(e->digest)) == 0 && e->max_version == max_version &&
            e->alpn_http11 == alpn_http11)
            return e;
    return NULL;
}

static void lru_unlink(struct tls_forge *f, struct forge_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        f->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        f->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct tls_forge *f, struct forge_entry *e)
{
    e->older = f->newest;
    e->newer = NULL;
    if (f->newest)
        f->newest->newer = e;
    f->newest = e;
    if (f->oldest == NULL)
        f->oldest = e;
}

/* Takes the oldest entry out of the table and the list. */
static struct forge_entry *table_evict(struct tls_forge *f)
{
    struct forge_entry *e = f->oldest, **pp;

    for (pp = bucket(f, e->digest); *pp != e; pp = &(*pp)->next_in_bucket)
        ;
    *pp = e->next_in_bucket;
    lru_unlink(f, e);
    f->count--;
    return e;
}

/* --- forging -------------------------------------------------------------- */

/* Only DNS names and IP addresses: other kinds (mail, URI, directory names)
 * say nothing a TLS client checks and would need more care to copy. */
static GENERAL_NAMES *copy_sans(X509 *upstream)
{
    GENERAL_NAMES *src = X509_get_ext_d2i(upstream, NID_subject_alt_name, NULL, NULL);
    GENERAL_NAMES *dst = sk_GENERAL_NAME_new_null();

    if (dst == NULL)
        goto fail;
    for (int i = 0; src != NULL && i < sk_GENERAL_NAME_num(src); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(src, i), *copy;
        if (gn->type != GEN_DNS && gn->type != GEN_IPADD)
            continue;
        copy = GENERAL_NAME_dup(gn);
        if (copy == NULL || !sk_GENERAL_NAME_push(dst, copy)) {
            GENERAL_NAME_free(copy);
            goto fail;
        }
    }
    GENERAL_NAMES_free(src);
    return dst;
fail:
    GENERAL_NAMES_free(src);
    GENERAL_NAMES_free(dst);
    return NULL;
}

/* The upstream's CN; and, for an old certificate with no usable SAN, the CN
 * as a DNS name too, since clients check only the SAN. */
static int leaf_names(X509 *leaf, X509 *upstream)
{
    X509_NAME *up = X509_get_subject_name(upstream), *name = X509_NAME_new();
    int idx = X509_NAME_get_index_by_NID(up, NID_commonName, -1);
    GENERAL_NAMES *sans = copy_sans(upstream);
    int rc = -1;

    if (name == NULL || sans == NULL)
        goto out;
    if (idx >= 0 && X509_NAME_add_entry(name, X509_NAME_get_entry(up, idx), -1, 0) != 1)
        goto out;
    if (X509_set_subject_name(leaf, name) != 1)
        goto out;
    if (sk_GENERAL_NAME_num(sans) == 0 && idx >= 0) {
        ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(up, idx));
        GENERAL_NAME *gn = GENERAL_NAME_new();
        ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
        if (gn == NULL || dns == NULL ||
            ASN1_STRING_set(dns, ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn)) != 1) {
            GENERAL_NAME_free(gn);
            ASN1_IA5STRING_free(dns);
            goto out;
        }
        GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
        if (!sk_GENERAL_NAME_push(sans, gn)) {
            GENERAL_NAME_free(gn);
            goto out;
        }
    }
    if (sk_GENERAL_NAME_num(sans) > 0 &&
        X509_add1_ext_i2d(leaf, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) != 1)
        goto out;
    rc = 0;
out:
    X509_NAME_free(name);
    GENERAL_NAMES_free(sans);
    return rc;
}

/* notBefore = max(upstream's, now - 1 day), notAfter = min(upstream's, CA's). */
static int leaf_dates(X509 *leaf, X509 *upstream, X509 *ca)
{
    const ASN1_TIME *up_nb = X509_get0_notBefore(upstream), *up_na = X509_get0_notAfter(upstream);
    const ASN1_TIME *ca_na = X509_get0_notAfter(ca);
    time_t now = time(NULL);
    ASN1_TIME *floor = X509_time_adj_ex(NULL, 0, -LEAF_BACKDATE, &now);
    int rc = -1;

    if (floor == NULL)
        return -1;
    if (X509_set1_notBefore(leaf, ASN1_TIME_compare(up_nb, floor) > 0 ? up_nb : floor) == 1 &&
        X509_set1_notAfter(leaf, ASN1_TIME_compare(up_na, ca_na) < 0 ? up_na : ca_na) == 1)
        rc = 0;
    ASN1_TIME_free(floor);
    return rc;
}

static X509 *forge_leaf(struct tls_ca *ca, X509 *upstream, EVP_PKEY *key)
{
    X509 *cacert = tls_ca_cert(ca), *x = X509_new();

    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 || tls_x509_serial(x) < 0 ||
        X509_set_issuer_name(x, X509_get_subject_name(cacert)) != 1 ||
        leaf_names(x, upstream) < 0 || leaf_dates(x, upstream, cacert) < 0 ||
        X509_set_pubkey(x, key) != 1 ||
        tls_x509_ext(cacert, x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        tls_x509_ext(cacert, x, NID_key_usage, "critical,digitalSignature") < 0 ||
        tls_x509_ext(cacert, x, NID_ext_key_usage, "serverAuth") < 0 ||
        tls_x509_ext(cacert, x, NID_subject_key_identifier, "hash") < 0 ||
        tls_x509_ext(cacert, x, NID_authority_key_identifier, "keyid:always") < 0 ||
        X509_sign(x, tls_ca_key(ca), EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* The ALPN protocol each client-side SSL is to select (tls_forge_alpn). */
static int alpn_index = -1;
static pthread_once_t alpn_once = PTHREAD_ONCE_INIT;

static void alpn_index_new(void)
{
    alpn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int tls_forge_alpn(SSL *ssl, const char *proto)
{
    pthread_once(&alpn_once, alpn_index_new);
    if (alpn_index < 0)
        return -1;
    return SSL_set_ex_data(ssl, alpn_index, (void *)(proto ? proto : "")) == 1 ? 0 : -1;
}

/* Selects for the client the protocol the upstream selected (set with
 * tls_forge_alpn), or "http/1.1" when none was set; nothing when the client
 * did not offer it. The proxy relays only what the upstream speaks. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    const char *want = alpn_index >= 0 ? SSL_get_ex_data(ssl, alpn_index) : NULL;
    unsigned pos = 0, wlen;

    (void)arg;
    if (want == NULL)
        want = "http/1.1";
    wlen = (unsigned)strlen(want);
    if (wlen == 0)
        return SSL_TLSEXT_ERR_NOACK;
    while (pos < inlen) {
        unsigned len = in[pos];
        if (len > inlen - pos - 1)
            break;
        if (len == wlen && memcmp(in + pos + 1, want, len) == 0) {
            *out = in + pos + 1;
            *outlen = (unsigned char)len;
            return SSL_TLSEXT_ERR_OK;
        }
        pos += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *forge_ctx(struct tls_ca *ca, X509 *upstream, int max_version, int alpn_http11,
                          char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "sluice";
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *leaf = key ? forge_leaf(ca, upstream, key) : NULL;
    SSL_CTX *ctx = leaf ? SSL_CTX_new(TLS_server_method()) : NULL;

    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, max_version) != 1 ||
        SSL_CTX_set_cipher_list(ctx, CLIENT_SIDE_CIPHERS) != 1 ||
        SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_add1_chain_cert(ctx, tls_ca_cert(ca)) != 1 ||
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
        snprintf(err, errlen, "forging a leaf: %s", tls_openssl_reason());
        SSL_CTX_free(ctx);
        ctx = NULL;
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (alpn_http11)
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
out:
    X509_free(leaf);
    EVP_PKEY_free(key);
    return ctx;
}

SSL_CTX *tls_forge_ctx(struct tls_forge *f, X509 *upstream, int max_version, int alpn_http11,
                       char *err, size_t errlen)
{
    unsigned char digest[32];
    unsigned dlen = 0;
    struct forge_entry *e, *victim = NULL;
    SSL_CTX *ctx;

    if (max_version == 0)
        max_version = TLS1_3_VERSION;
    if (max_version != TLS1_2_VERSION && max_version != TLS1_3_VERSION) {
        snprintf(err, errlen, "protocol version 0x%04x is not TLS 1.2 or 1.3", max_version);
        return NULL;
    }
    alpn_http11 = alpn_http11 != 0;
    if (X509_digest(upstream, EVP_sha256(), digest, &dlen) != 1 || dlen != sizeof(digest)) {
        snprintf(err, errlen, "upstream certificate digest: %s", tls_openssl_reason());
        return NULL;
    }

    pthread_mutex_lock(&f->lock);
    e = table_find(f, digest, max_version, alpn_http11);
    if (e != NULL) {
        lru_unlink(f, e);
        lru_push(f, e);
        ctx = e->ctx;
        SSL_CTX_up_ref(ctx);
        pthread_mutex_unlock(&f->lock);
        return ctx;
    }
    pthread_mutex_unlock(&f->lock);

    ctx = forge_ctx(f->ca, upstream, max_version, alpn_http11, err, errlen);
    if (ctx == NULL)
        return NULL;
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        SSL_CTX_free(ctx);
        return NULL;
    }
    memcpy(e->digest, digest, sizeof(digest));
    e->max_version = max_version;
    e->alpn_http11 = alpn_http11;
    e->ctx = ctx;

    pthread_mutex_lock(&f->lock);
    struct forge_entry *other = table_find(f, digest, max_version, alpn_http11);
    if (other != NULL) {
        /* Another thread forged the same leaf meanwhile: one context per key. */
        victim = e;
        e = other;
        lru_unlink(f, e);
    } else {
        struct forge_entry **b = bucket(f, digest);
        e->next_in_bucket = *b;
        *b = e;
        f->count++;
        if (f->count > f->max_entries)
            victim = table_evict(f);
    }
    lru_push(f, e);
    ctx = e->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&f->lock);

    if (victim != NULL) {
        SSL_CTX_free(victim->ctx);
        free(victim);
    }
    return ctx;
}
