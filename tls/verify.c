/*
 * Upstream validation: sluice stands in for the client, so it must refuse
 * every server the client's own TLS stack would refuse, and say why in
 * words an operator can act on.
 *
 * OpenSSL does the chain, the dates and the name during the handshake
 * (SSL_VERIFY_PEER: a refused server never gets past the handshake), and its
 * security level 2 already refuses keys under 112 bits of strength and
 * SHA-1 signatures there. tls_upstream_check() then applies sluice's own
 * rules to the verified chain: the policy's key sizes, no MD5 or SHA-1
 * signature, a leaf usable for TLS server authentication that is not a CA,
 * no wildcard covering a whole public suffix ("*.co.uk"), no certificate of
 * sluice's own CA (a loop through the proxy, or an attack), and revocation
 * as far as the server staples it: a stapled OCSP response must verify and
 * say "good", and a must-staple certificate must come with one. Nothing is
 * fetched (no CRL, no OCSP request of sluice's own).
 *
 * The same refusal can thus show up in two places; both give the same words.
 * A verify callback keeps the first failing certificate on the SSL (ex_data)
 * so a failed handshake can be explained with the certificate's subject.
 */
#include "tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpsl.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ECDHE only (forward secrecy) and AEAD only, for TLS 1.2; TLS 1.3 suites
 * are all both. */
#define UPSTREAM_CIPHERS  "ECDHE+AESGCM:ECDHE+CHACHA20"
#define UPSTREAM_SECLEVEL 2
#define DEFAULT_RSA_BITS  2048
#define DEFAULT_EC_BITS   256
#define SUBJECT_MAX       256
/* Clocks differ: an OCSP response this far outside its window still counts. */
#define OCSP_SLACK 300L
/* RFC 7633: the TLS Feature status_request, "must-staple". */
#define TLSEXT_STATUS_REQUEST 5

/* What one upstream SSL knows about its verification. */
struct upstream_state {
    char want[256]; /* the name or address checked */
    int ip;         /* want is an IP address */
    int err, depth; /* the first verification failure; err 0: none */
    X509 *cert;     /* its certificate, referenced */
};

static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static int state_idx = -1;

static void state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct upstream_state *st = ptr;

    if (st != NULL)
        X509_free(st->cert);
    free(st);
}

static void state_init(void)
{
    state_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, state_free);
}

static struct upstream_state *state_get(SSL *ssl, int create)
{
    struct upstream_state *st;

    pthread_once(&state_once, state_init);
    if (state_idx < 0)
        return NULL;
    st = SSL_get_ex_data(ssl, state_idx);
    if (st == NULL && create) {
        st = calloc(1, sizeof(*st));
        if (st != NULL && SSL_set_ex_data(ssl, state_idx, st) != 1) {
            free(st);
            st = NULL;
        }
    }
    return st;
}

/* --- reasons ------------------------------------------------------------------ */

static void subject(X509 *x, char *buf, size_t len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int n = 0;

    buf[0] = '\0';
    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0)
        n = BIO_read(bio, buf, (int)len - 1);
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(bio);
    if (buf[0] == '\0')
        snprintf(buf, len, "empty subject");
}

/* A key too weak for the policy: 1 with why, else 0. */
static int weak_key(X509 *x, unsigned min_rsa, unsigned min_ec, char *why, size_t whylen)
{
    EVP_PKEY *pk = X509_get0_pubkey(x);
    int id, bits;

    if (pk == NULL) {
        snprintf(why, whylen, "unreadable public key");
        return 1;
    }
    id = EVP_PKEY_get_base_id(pk);
    bits = EVP_PKEY_get_bits(pk);
    switch (id) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        if (bits < 0 || (unsigned)bits < min_rsa) {
            snprintf(why, whylen, "RSA key of %d bits is too small", bits);
            return 1;
        }
        return 0;
    case EVP_PKEY_EC:
        if (bits < 0 || (unsigned)bits < min_ec) {
            snprintf(why, whylen, "EC key of %d bits is too small", bits);
            return 1;
        }
        return 0;
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448:
        return 0;
    default:
        snprintf(why, whylen, "%s keys are not accepted", OBJ_nid2sn(id));
        return 1;
    }
}

static int weak_signature(X509 *x, char *why, size_t whylen)
{
    int md = NID_undef, pk, secbits = 0;
    uint32_t flags;

    if (X509_get_signature_info(x, &md, &pk, &secbits, &flags) != 1 ||
        (md != NID_md5 && md != NID_sha1 && md != NID_md4 && md != NID_md2 && md != NID_md5_sha1 &&
         secbits >= 112))
        return 0;
    snprintf(why, whylen, "signature algorithm %s is too weak",
             OBJ_nid2ln(X509_get_signature_nid(x)));
    return 1;
}

/* Every suite sluice offers has the server sign (ECDHE, TLS 1.3), so the leaf
 * needs digitalSignature if it restricts key usage at all. */
static int unusable_leaf(X509 *x, char *why, size_t whylen)
{
    uint32_t ku = X509_get_key_usage(x), xku = X509_get_extended_key_usage(x);

    if (ku != UINT32_MAX && !(ku & KU_DIGITAL_SIGNATURE)) {
        snprintf(why, whylen, "key usage does not allow digitalSignature");
        return 1;
    }
    if (xku != UINT32_MAX && !(xku & XKU_SSL_SERVER)) {
        snprintf(why, whylen, "extended key usage does not include serverAuth");
        return 1;
    }
    return 0;
}

/* A CA certificate serving as a server's leaf: no public CA issues one, and
 * whoever holds its key could sign for any name. */
static int ca_leaf(X509 *x, char *why, size_t whylen)
{
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    int ca = bc != NULL && bc->ca;

    BASIC_CONSTRAINTS_free(bc);
    if (ca)
        snprintf(why, whylen,
                 "the server's certificate is a CA certificate (basicConstraints "
                 "CA:TRUE)");
    return ca;
}

/* --- public suffixes ------------------------------------------------------------ */

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl; /* for the life of the process */

/* The newer of the system's list (Debian's publicsuffix) and libpsl's own. */
static void psl_load(void)
{
    psl = psl_latest(NULL);
    if (psl == NULL)
        psl = psl_builtin();
}

/* A wildcard whose remainder is a public suffix ("*.co.uk", "*.com") covers
 * names of many owners; OpenSSL's name check accepts it, browsers do not.
 * The name that matched is the one OpenSSL keeps as the peer's name. Only
 * the ICANN section counts (a wildcard under a private suffix such as
 * github.io is legitimate), and an unknown top-level domain is a public
 * suffix of its own ("*.intranet" is refused), as in Chromium. */
static int wildcard_too_wide(SSL *ssl, char *why, size_t whylen)
{
    const char *name = SSL_get0_peername(ssl);
    char rest[256];
    size_t n;

    if (name == NULL || strncmp(name, "*.", 2) != 0)
        return 0;
    n = strlen(name + 2);
    if (n >= sizeof(rest)) {
        snprintf(why, whylen, "wildcard name too long");
        return 1;
    }
    for (size_t i = 0; i <= n; i++)
        rest[i] = (char)(name[2 + i] >= 'A' && name[2 + i] <= 'Z' ? name[2 + i] - 'A' + 'a'
                                                                  : name[2 + i]);
    if (n > 0 && rest[n - 1] == '.')
        rest[n - 1] = '\0';
    pthread_once(&psl_once, psl_load);
    if (psl != NULL && !psl_is_public_suffix2(psl, rest, PSL_TYPE_ICANN))
        return 0;
    snprintf(why, whylen, "wildcard %s covers a public suffix", name);
    return 1;
}

/* --- revocation ------------------------------------------------------------------ */

/* RFC 7633 status_request in the leaf's TLS Feature extension: the server
 * promised to staple. An extension that cannot be read counts as that. */
static int must_staple(X509 *leaf)
{
    int crit = -1, required;
    TLS_FEATURE *tf = X509_get_ext_d2i(leaf, NID_tlsfeature, &crit, NULL);

    required = tf == NULL && crit != -1;
    for (int i = 0; tf != NULL && i < sk_ASN1_INTEGER_num(tf); i++)
        if (ASN1_INTEGER_get(sk_ASN1_INTEGER_value(tf, i)) == TLSEXT_STATUS_REQUEST)
            required = 1;
    TLS_FEATURE_free(tf);
    return required;
}

/* The single response of bs about leaf (issued by issuer), or NULL; its
 * CertID may use any digest. */
static OCSP_SINGLERESP *ocsp_find(OCSP_BASICRESP *bs, X509 *leaf, X509 *issuer)
{
    for (int i = 0; i < OCSP_resp_count(bs); i++) {
        OCSP_SINGLERESP *one = OCSP_resp_get0(bs, i);
        OCSP_CERTID *cid = (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(one), *mine;
        ASN1_OBJECT *md_oid = NULL;
        const EVP_MD *md;
        int same;

        if (OCSP_id_get0_info(NULL, &md_oid, NULL, NULL, cid) != 1 ||
            (md = EVP_get_digestbyobj(md_oid)) == NULL)
            continue;
        mine = OCSP_cert_to_id(md, leaf, issuer);
        same = mine != NULL && OCSP_id_cmp(mine, cid) == 0;
        OCSP_CERTID_free(mine);
        if (same)
            return one;
    }
    return NULL;
}

/*
 * Revocation as far as the server tells it: 0, or -1 with why. As a strict
 * browser does, a stapled response must be readable, verify (signed by the
 * leaf's issuer or a responder it delegated to, chaining to the trust store)
 * and speak of this certificate; "revoked" and "unknown" are refused. A
 * "good" response out of its validity window counts as no response: it says
 * nothing about today, which is also all that no staple says.
 */
static int check_staple(SSL *ssl, X509 *leaf, STACK_OF(X509) * chain, char *why, size_t whylen)
{
    const unsigned char *der = NULL, *p;
    long n = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
    int required = must_staple(leaf), rc = -1, status, reason = -1;
    X509 *issuer = sk_X509_num(chain) > 1 ? sk_X509_value(chain, 1) : leaf;
    X509_STORE *store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
    ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    OCSP_SINGLERESP *one;

    if (n <= 0 || der == NULL) {
        if (!required)
            return 0;
        snprintf(why, whylen, "must-staple certificate without a stapled OCSP response");
        return -1;
    }
    p = der;
    resp = d2i_OCSP_RESPONSE(NULL, &p, n);
    if (resp == NULL || p != der + n) {
        snprintf(why, whylen, "stapled OCSP response unreadable");
        goto out;
    }
    status = OCSP_response_status(resp);
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(why, whylen, "stapled OCSP response unusable (%s)",
                 OCSP_response_status_str(status));
        goto out;
    }
    bs = OCSP_response_get1_basic(resp);
    if (bs == NULL) {
        snprintf(why, whylen, "stapled OCSP response unreadable");
        goto out;
    }
    if (OCSP_basic_verify(bs, chain, store, 0) <= 0) {
        snprintf(why, whylen, "stapled OCSP response does not verify: %s", tls_openssl_reason());
        goto out;
    }
    one = ocsp_find(bs, leaf, issuer);
    if (one == NULL) {
        snprintf(why, whylen, "stapled OCSP response is not about this certificate");
        goto out;
    }
    status = OCSP_single_get0_status(one, &reason, NULL, &thisupd, &nextupd);
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        if (reason >= 0)
            snprintf(why, whylen, "certificate revoked (stapled OCSP response, %s)",
                     OCSP_crl_reason_str(reason));
        else
            snprintf(why, whylen, "certificate revoked (stapled OCSP response)");
        goto out;
    }
    if (status != V_OCSP_CERTSTATUS_GOOD) {
        snprintf(why, whylen, "certificate status unknown (stapled OCSP response)");
        goto out;
    }
    if (OCSP_check_validity(thisupd, nextupd, OCSP_SLACK, -1) != 1 && required) {
        snprintf(why, whylen, "must-staple certificate with an out-of-date stapled OCSP response");
        goto out;
    }
    rc = 0;
out:
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return rc;
}

/* why for OpenSSL's verification error err on cert (may be NULL). */
static void verify_reason(const struct upstream_state *st, long err, X509 *cert, int depth,
                          char *why, size_t whylen)
{
    char what[320], subj[SUBJECT_MAX] = "";
    int done = 0;

    if (cert != NULL) {
        switch (err) {
        case X509_V_ERR_EE_KEY_TOO_SMALL:
        case X509_V_ERR_CA_KEY_TOO_SMALL:
            done = weak_key(cert, UINT32_MAX, UINT32_MAX, what, sizeof(what));
            break;
        case X509_V_ERR_CA_MD_TOO_WEAK:
            done = weak_signature(cert, what, sizeof(what));
            break;
        case X509_V_ERR_INVALID_PURPOSE:
            done = depth == 0 && unusable_leaf(cert, what, sizeof(what));
            break;
        default:
            break;
        }
        subject(cert, subj, sizeof(subj));
    }
    if (!done && (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH) &&
        st != NULL && st->want[0] != '\0') {
        snprintf(what, sizeof(what), "%s mismatch: not valid for %s",
                 err == X509_V_ERR_HOSTNAME_MISMATCH ? "hostname" : "IP address", st->want);
        done = 1;
    }
    if (!done)
        snprintf(what, sizeof(what), "%s", X509_verify_cert_error_string(err));
    if (subj[0] != '\0')
        snprintf(why, whylen, "%s (%s)", what, subj);
    else
        snprintf(why, whylen, "%s", what);
}

/* Keeps the first failure; OpenSSL's verdict stands. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct upstream_state *st;
    X509 *cert;

    if (ok || ssl == NULL)
        return ok;
    st = state_get(ssl, 1);
    if (st != NULL && st->err == 0) {
        st->err = X509_STORE_CTX_get_error(xs);
        st->depth = X509_STORE_CTX_get_error_depth(xs);
        cert = X509_STORE_CTX_get_current_cert(xs);
        if (cert != NULL && X509_up_ref(cert) == 1)
            st->cert = cert;
    }
    return ok;
}

/* --- the API ------------------------------------------------------------------ */

SSL_CTX *tls_upstream_ctx_new(const struct tls_upstream_policy *p, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *what = "creating the context";

    if (ctx == NULL)
        goto fail;
    what = "setting the protocols and suites";
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, UPSTREAM_CIPHERS) != 1)
        goto fail;
    SSL_CTX_set_security_level(ctx, UPSTREAM_SECLEVEL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (p != NULL && p->ca_dir != NULL) {
        what = p->ca_dir;
        if (SSL_CTX_load_verify_dir(ctx, p->ca_dir) != 1)
            goto fail;
    } else {
        what = "loading the default trust store";
        if (SSL_CTX_set_default_verify_paths(ctx) != 1)
            goto fail;
    }
    if (p != NULL && p->ca_file != NULL) {
        what = p->ca_file;
        if (SSL_CTX_load_verify_file(ctx, p->ca_file) != 1)
            goto fail;
    }
    pthread_once(&psl_once, psl_load);
    if (psl == NULL) {
        snprintf(err, errlen, "upstream TLS: no public suffix list (libpsl, publicsuffix)");
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Ask every server to staple its OCSP response (tls_upstream_check). */
    what = "asking for OCSP stapling";
    if (SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp) != 1)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    return ctx;

fail:
    snprintf(err, errlen, "upstream TLS: %s: %s", what, tls_openssl_reason());
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_upstream_prepare(SSL *ssl, const char *sni, const char *ip)
{
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
    struct upstream_state *st = state_get(ssl, 1);
    unsigned char addr[16];

    if (st == NULL)
        return -1;
    /* No partial wildcards ("f*.example.com"), and no falling back on the
     * CN: names are in the SAN, as browsers require. */
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                            X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    /* RFC 6066: an address is never a server name; a client that sent one
     * gets its address checked. */
    if (sni != NULL && sni[0] != '\0' && inet_pton(AF_INET, sni, addr) != 1 &&
        inet_pton(AF_INET6, sni, addr) != 1) {
        snprintf(st->want, sizeof(st->want), "%s", sni);
        st->ip = 0;
        if (SSL_set_tlsext_host_name(ssl, sni) != 1 || X509_VERIFY_PARAM_set1_host(vp, sni, 0) != 1)
            return -1;
        return 0;
    }
    if (sni != NULL && sni[0] != '\0')
        ip = sni;
    if (ip == NULL || ip[0] == '\0')
        return -1; /* nothing to check the certificate against */
    snprintf(st->want, sizeof(st->want), "%s", ip);
    st->ip = 1;
    return X509_VERIFY_PARAM_set1_ip_asc(vp, ip) == 1 ? 0 : -1;
}

void tls_upstream_handshake_error(SSL *ssl, int ret, char *why, size_t whylen)
{
    int saved_errno = errno;
    long vr = SSL_get_verify_result(ssl);
    struct upstream_state *st = state_get(ssl, 0);
    unsigned long e;

    if (vr != X509_V_OK) {
        if (st != NULL && st->err == vr)
            verify_reason(st, vr, st->cert, st->depth, why, whylen);
        else
            verify_reason(st, vr, SSL_get0_peer_certificate(ssl), 0, why, whylen);
        ERR_clear_error();
        return;
    }
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_SSL:
        e = ERR_peek_error();
        snprintf(why, whylen, "TLS handshake failed: %s",
                 e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown error");
        break;
    case SSL_ERROR_SYSCALL:
        if (ret == 0 || saved_errno == 0)
            snprintf(why, whylen, "connection closed by the server during the TLS handshake");
        else if (saved_errno == EPIPE || saved_errno == ECONNRESET)
            snprintf(why, whylen, "connection closed by the server during the TLS handshake (%s)",
                     strerror(saved_errno));
        else
            snprintf(why, whylen, "TLS handshake failed: %s", strerror(saved_errno));
        break;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(why, whylen, "connection closed by the server during the TLS handshake");
        break;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        snprintf(why, whylen, "TLS handshake not finished");
        break;
    default:
        snprintf(why, whylen, "TLS handshake failed");
        break;
    }
    ERR_clear_error();
}

int tls_upstream_check(SSL *ssl, const struct tls_upstream_policy *p, const struct tls_ca *own,
                       char *why, size_t whylen)
{
    unsigned min_rsa = p && p->min_rsa_bits ? p->min_rsa_bits : DEFAULT_RSA_BITS;
    unsigned min_ec = p && p->min_ec_bits ? p->min_ec_bits : DEFAULT_EC_BITS;
    X509 *peer = SSL_get0_peer_certificate(ssl), *bad = NULL;
    STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl), *chain = SSL_get0_verified_chain(ssl);
    long vr = SSL_get_verify_result(ssl);
    struct upstream_state *st;
    char what[256], subj[SUBJECT_MAX];
    int n;

    if (peer == NULL) {
        snprintf(why, whylen, "the server sent no certificate");
        return -1;
    }
    if (vr != X509_V_OK || chain == NULL) {
        verify_reason(state_get(ssl, 0), vr != X509_V_OK ? vr : X509_V_ERR_UNSPECIFIED, peer, 0,
                      why, whylen);
        return -1;
    }
    /* Whatever the chain, a certificate of ours coming back is refused. */
    if (own != NULL) {
        for (int i = 0; bad == NULL && i < sk_X509_num(sent); i++)
            if (tls_ca_issued(own, sk_X509_value(sent, i)))
                bad = sk_X509_value(sent, i);
        for (int i = 0; bad == NULL && i < sk_X509_num(chain); i++)
            if (tls_ca_issued(own, sk_X509_value(chain, i)))
                bad = sk_X509_value(chain, i);
        if (bad != NULL) {
            snprintf(what, sizeof(what), "issued by sluice's own CA");
            goto refuse;
        }
    }
    /* The root is trusted as configured; what it signs is checked. */
    n = sk_X509_num(chain);
    for (int i = 0; i < n; i++) {
        X509 *x = sk_X509_value(chain, i);
        if (n > 1 && i == n - 1)
            break;
        if (weak_key(x, min_rsa, min_ec, what, sizeof(what)) ||
            (i < n - 1 && weak_signature(x, what, sizeof(what)))) {
            bad = x;
            goto refuse;
        }
    }
    bad = peer;
    if (unusable_leaf(peer, what, sizeof(what)) || ca_leaf(peer, what, sizeof(what)))
        goto refuse;
    st = state_get(ssl, 0);
    if ((st == NULL || !st->ip) && wildcard_too_wide(ssl, what, sizeof(what)))
        goto refuse;
    if (check_staple(ssl, peer, chain, what, sizeof(what)) < 0)
        goto refuse;
    return 0;

refuse:
    subject(bad, subj, sizeof(subj));
    snprintf(why, whylen, "%s (%s)", what, subj);
    return -1;
}
