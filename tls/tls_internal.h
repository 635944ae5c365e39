/*
 * tls: what the files of the module share and no other module may see (the
 * CA's private key above all).
 */
#ifndef TLS_INTERNAL_H
#define TLS_INTERNAL_H

#include "tls.h"

#include <openssl/evp.h>

/* The current CA certificate and key; owned by ca. */
X509 *tls_ca_cert(const struct tls_ca *ca);
EVP_PKEY *tls_ca_key(const struct tls_ca *ca);

/* A random, positive, 128-bit serial for x. 0 or -1. */
int tls_x509_serial(X509 *x);
/* Adds one extension written as in openssl.cnf ("critical,CA:TRUE"); issuer
 * is needed for authorityKeyIdentifier. 0 or -1. */
int tls_x509_ext(X509 *issuer, X509 *x, int nid, const char *value);
/* The reason of the oldest OpenSSL error of this thread, and the queue
 * cleared; "unknown error" if there is none. */
const char *tls_openssl_reason(void);

#endif
