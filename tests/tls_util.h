/* Test certificates for the TLS tests, made with OpenSSL's API into a
 * temporary directory: a CA, a good server certificate for localhost and
 * 127.0.0.1, an expired one, one for another host name, a self-signed one
 * and a client certificate. Keys are EC P-256 (quick to make). */
#ifndef CIO_TLS_UTIL_H
#define CIO_TLS_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

typedef struct tls_files {
    char dir[64];
    char ca[96]; /* CA certificate */
    char good_cert[96], good_key[96];
    char expired_cert[96], expired_key[96];
    char other_cert[96], other_key[96]; /* for other.example */
    char self_cert[96], self_key[96];   /* self-signed localhost */
    char client_cert[96], client_key[96];
} tls_files;

static EVP_PKEY *tls_util_key(void)
{
    return EVP_EC_gen("P-256");
}

static bool tls_util_ext(X509 *cert, X509 *issuer, int nid, const char *v)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
    if (ext == NULL)
        return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for `cn` with subjectAltName `san` (NULL: none), valid
 * from now + `from` s to now + `to` s, signed by issuer/ikey (NULL:
 * self-signed). */
static X509 *tls_util_cert(EVP_PKEY *key, const char *cn, const char *san,
                           long from, long to, X509 *issuer, EVP_PKEY *ikey,
                           bool ca, long serial)
{
    X509 *c = X509_new();
    if (c == NULL)
        return NULL;
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
    X509_gmtime_adj(X509_getm_notBefore(c), from);
    X509_gmtime_adj(X509_getm_notAfter(c), to);
    X509_set_pubkey(c, key);
    X509_NAME *n = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
                               (const unsigned char *)"cio tests", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                               -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n);
    X509 *is = issuer ? issuer : c;
    bool ok = tls_util_ext(c, is, NID_basic_constraints,
                           ca ? "critical,CA:TRUE" : "CA:FALSE") &&
              tls_util_ext(c, is, NID_subject_key_identifier, "hash") &&
              (!san || tls_util_ext(c, is, NID_subject_alt_name, san)) &&
              (!ca || tls_util_ext(c, is, NID_key_usage,
                                   "critical,keyCertSign,cRLSign"));
    if (!ok || X509_sign(c, ikey ? ikey : key, EVP_sha256()) <= 0) {
        X509_free(c);
        return NULL;
    }
    return c;
}

static bool tls_util_write(const char *cpath, X509 *c, const char *kpath,
                           EVP_PKEY *k)
{
    FILE *f = fopen(cpath, "w");
    if (f == NULL)
        return false;
    bool ok = PEM_write_X509(f, c) == 1;
    fclose(f);
    if (ok && kpath) {
        f = fopen(kpath, "w");
        if (f == NULL)
            return false;
        ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
        fclose(f);
    }
    return ok;
}

/* One leaf signed by the CA (or self-signed when ca is NULL). */
static bool tls_util_leaf(const char *cpath, const char *kpath, const char *cn,
                          const char *san, long from, long to, X509 *ca,
                          EVP_PKEY *cakey, long serial)
{
    EVP_PKEY *k = tls_util_key();
    if (k == NULL)
        return false;
    X509 *c = tls_util_cert(k, cn, san, from, to, ca, cakey, false, serial);
    bool ok = c && tls_util_write(cpath, c, kpath, k);
    X509_free(c);
    EVP_PKEY_free(k);
    return ok;
}

#define TLS_UTIL_PATH(f, field, name)                                          \
    snprintf((f)->field, sizeof(f)->field, "%s/%s", (f)->dir, name)

/* Make every file; 0 or -1. */
static int tls_files_make(tls_files *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/cio-tls-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    TLS_UTIL_PATH(f, ca, "ca.pem");
    TLS_UTIL_PATH(f, good_cert, "good.pem");
    TLS_UTIL_PATH(f, good_key, "good.key");
    TLS_UTIL_PATH(f, expired_cert, "expired.pem");
    TLS_UTIL_PATH(f, expired_key, "expired.key");
    TLS_UTIL_PATH(f, other_cert, "other.pem");
    TLS_UTIL_PATH(f, other_key, "other.key");
    TLS_UTIL_PATH(f, self_cert, "self.pem");
    TLS_UTIL_PATH(f, self_key, "self.key");
    TLS_UTIL_PATH(f, client_cert, "client.pem");
    TLS_UTIL_PATH(f, client_key, "client.key");
    const char *local = "DNS:localhost,IP:127.0.0.1,IP:::1";
    long day = 86400;
    EVP_PKEY *cak = tls_util_key();
    X509 *ca = cak ? tls_util_cert(cak, "cio test CA", NULL, -day, 30 * day,
                                   NULL, NULL, true, 1)
                   : NULL;
    bool ok = ca && tls_util_write(f->ca, ca, NULL, NULL) &&
              tls_util_leaf(f->good_cert, f->good_key, "localhost", local, -day,
                            30 * day, ca, cak, 2) &&
              tls_util_leaf(f->expired_cert, f->expired_key, "localhost", local,
                            -10 * day, -day, ca, cak, 3) &&
              tls_util_leaf(f->other_cert, f->other_key, "other.example",
                            "DNS:other.example", -day, 30 * day, ca, cak, 4) &&
              tls_util_leaf(f->self_cert, f->self_key, "localhost", local, -day,
                            30 * day, NULL, NULL, 5) &&
              tls_util_leaf(f->client_cert, f->client_key, "cio client", NULL,
                            -day, 30 * day, ca, cak, 6);
    X509_free(ca);
    EVP_PKEY_free(cak);
    return ok ? 0 : -1;
}

/* Remove the files and the directory. */
static void tls_files_remove(const tls_files *f)
{
    const char *all[] = {f->ca,           f->good_cert,   f->good_key,
                         f->expired_cert, f->expired_key, f->other_cert,
                         f->other_key,    f->self_cert,   f->self_key,
                         f->client_cert,  f->client_key};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        unlink(all[i]);
    rmdir(f->dir);
}

#endif
