/* TLS over streams with OpenSSL 3.
 *
 * Each connection is an SSL object whose BIO reads and writes an inner
 * plain cio_stream without suspending: ciphertext is taken from the inner
 * stream's read buffer (or the BIO says "retry"), and written with
 * cio_stream_write, which queues what the socket does not take at once.
 * When OpenSSL wants more input, the task waits on the inner stream
 * outside OpenSSL, then calls it again. OpenSSL is thus never entered while
 * a task is suspended, so a task reading (parked on the inner stream) and
 * another writing may share a connection.
 *
 * The TLS stream itself is a cio_stream with a transport (see stream.c),
 * so the buffered reading calls work on plaintext unchanged. */
#ifdef CIO_HAVE_OPENSSL /* else empty: builds without OpenSSL skip TLS */
#include <arpa/inet.h>
#include <limits.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cio/dns.h"
#include "cio/tls.h"
#include "internal.h"

/* Client sessions kept for resumption, per context. */
#define SESS_MAX 64
/* At most this long to send close_notify when closing. */
#define CLOSE_GRACE (5 * CIO_SEC)
#define REASON_MAX 256

typedef struct sess_ent {
    struct sess_ent *next;
    char *key;
    SSL_SESSION *sess;
} sess_ent;

struct cio_tls_ctx {
    SSL_CTX *ssl;
    bool server;
    bool insecure;
    bool cache;
    int refs;            /* the owner and each connection */
    unsigned char *alpn; /* wire format: length-prefixed names */
    size_t alpn_len;
    sess_ent *sessions; /* newest first */
    size_t nsess;
    char err[REASON_MAX];
};

typedef struct tls_conn {
    SSL *ssl;
    cio_stream *inner;
    cio_tls_ctx *ctx;
    char *key; /* session cache key (clients) */
    bool owns_inner;
    bool ready;  /* handshake done */
    bool failed; /* fatal error: no close_notify may follow */
    bool shut;   /* close_notify sent */
    bool closed; /* the stream is closing: the inner one may be gone */
    int err;     /* sticky error */
    int io_err;  /* the inner stream refused a write */
    char alpn[256];
    char reason[REASON_MAX];
} tls_conn;

static const cio__stream_transport tls_transport;

/* ---- contexts ------------------------------------------------------------ */

static void ctx_unref(cio_tls_ctx *x)
{
    if (x == NULL || --x->refs > 0)
        return;
    while (x->sessions) {
        sess_ent *e = x->sessions;
        x->sessions = e->next;
        SSL_SESSION_free(e->sess);
        cio__free(e->key);
        cio__free(e);
    }
    SSL_CTX_free(x->ssl);
    cio__free(x->alpn);
    cio__free(x);
}

void cio_tls_ctx_free(cio_tls_ctx *x)
{
    ctx_unref(x);
}

const char *cio_tls_ctx_last_error(const cio_tls_ctx *x)
{
    return x ? x->err : "";
}

/* The newest OpenSSL error in words, into `buf`; the queue is cleared. */
static void ssl_reason(char *buf, size_t size, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, size, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "%s", fallback);
    ERR_clear_error();
}

/* Fail a context operation with the OpenSSL reason as the task's error
 * text. */
static int ctx_fail(cio_tls_ctx *x, const char *what)
{
    char r[REASON_MAX / 2];
    ssl_reason(r, sizeof r, "unknown error");
    snprintf(x->err, sizeof x->err, "%s: %s", what, r);
    return cio_errorf(CIO_ETLS, "%s", x->err);
}

/* ALPN names into the wire format. -EINVAL for a bad name. */
static int alpn_encode(cio_tls_ctx *x, const char *const *names)
{
    size_t len = 0;
    for (size_t i = 0; names[i]; i++) {
        size_t n = strlen(names[i]);
        if (n == 0 || n > 255)
            return -EINVAL;
        len += 1 + n;
    }
    if (len == 0)
        return -EINVAL;
    x->alpn = cio__malloc(len);
    if (x->alpn == NULL)
        return -ENOMEM;
    unsigned char *p = x->alpn;
    for (size_t i = 0; names[i]; i++) {
        size_t n = strlen(names[i]);
        *p++ = (unsigned char)n;
        memcpy(p, names[i], n);
        p += n;
    }
    x->alpn_len = len;
    return 0;
}

/* Server: the first of our protocols that the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    cio_tls_ctx *x = arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, x->alpn, (unsigned)x->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Client: keep the session of a connection under its key, replacing an
 * older one; the oldest goes when the cache is full. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    tls_conn *c = SSL_get_app_data(ssl);
    if (c == NULL || c->key == NULL)
        return 0;
    cio_tls_ctx *x = c->ctx;
    sess_ent **pp = &x->sessions, *e = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, c->key) == 0) {
            e = *pp;
            *pp = e->next;
            SSL_SESSION_free(e->sess);
            x->nsess--;
            break;
        }
    }
    if (e == NULL) {
        e = cio__calloc(1, sizeof *e);
        if (e == NULL || (e->key = cio__strdup(c->key)) == NULL) {
            cio__free(e);
            return 0;
        }
    }
    e->sess = sess;
    e->next = x->sessions;
    x->sessions = e;
    if (++x->nsess > SESS_MAX) {
        sess_ent **last = &x->sessions;
        while ((*last)->next)
            last = &(*last)->next;
        sess_ent *old = *last;
        *last = NULL;
        SSL_SESSION_free(old->sess);
        cio__free(old->key);
        cio__free(old);
        x->nsess--;
    }
    return 1; /* we keep the reference */
}

static int ctx_load(cio_tls_ctx *x, const cio_tls_config *cfg)
{
    if (x->server && !cfg->verify_client) {
        /* Nothing to verify; and the chain is what cert_file holds, not
         * looked up in a store at each handshake. */
        SSL_CTX_set_mode(x->ssl, SSL_MODE_NO_AUTO_CHAIN);
    } else if (cfg->ca_file || cfg->ca_dir) {
        if (SSL_CTX_load_verify_locations(x->ssl, cfg->ca_file, cfg->ca_dir) !=
            1)
            return ctx_fail(x, "loading CA certificates");
    } else if (SSL_CTX_set_default_verify_paths(x->ssl) != 1) {
        return ctx_fail(x, "loading the system trust store");
    }
    if (cfg->cert_file &&
        SSL_CTX_use_certificate_chain_file(x->ssl, cfg->cert_file) != 1)
        return ctx_fail(x, "loading the certificate");
    if (cfg->key_file && SSL_CTX_use_PrivateKey_file(x->ssl, cfg->key_file,
                                                     SSL_FILETYPE_PEM) != 1)
        return ctx_fail(x, "loading the private key");
    if (cfg->cert_file && cfg->key_file &&
        SSL_CTX_check_private_key(x->ssl) != 1)
        return ctx_fail(x, "the key does not match the certificate");
    return 0;
}

static int ctx_setup(cio_tls_ctx *x, const cio_tls_config *cfg)
{
    int minv = cfg->min_version ? cfg->min_version : CIO_TLS_1_2;
    if (minv != CIO_TLS_1_2 && minv != CIO_TLS_1_3)
        return -EINVAL;
    if (cfg->alpn) {
        int rc = alpn_encode(x, cfg->alpn);
        if (rc < 0)
            return rc;
    }
    x->ssl = SSL_CTX_new(x->server ? TLS_server_method() : TLS_client_method());
    if (x->ssl == NULL)
        return ctx_fail(x, "creating the context");
    SSL_CTX_set_min_proto_version(x->ssl, minv);
    SSL_CTX_set_options(x->ssl, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(x->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int rc = ctx_load(x, cfg);
    if (rc < 0)
        return rc;
    if (x->server) {
        static const unsigned char sid[] = "cio";
        SSL_CTX_set_session_id_context(x->ssl, sid, sizeof sid - 1);
        if (cfg->verify_client)
            SSL_CTX_set_verify(
                x->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                NULL);
        if (x->alpn)
            SSL_CTX_set_alpn_select_cb(x->ssl, alpn_select, x);
        return 0;
    }
    x->insecure = cfg->insecure;
    SSL_CTX_set_verify(x->ssl, x->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       NULL);
    if (x->alpn &&
        SSL_CTX_set_alpn_protos(x->ssl, x->alpn, (unsigned)x->alpn_len) != 0)
        return ctx_fail(x, "setting ALPN");
    x->cache = !cfg->no_session_cache;
    if (x->cache) {
        SSL_CTX_set_session_cache_mode(
            x->ssl, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(x->ssl, on_new_session);
    }
    return 0;
}

static int ctx_new(cio_tls_ctx **out, const cio_tls_config *cfg, bool server)
{
    static const cio_tls_config defaults = {0};
    if (out == NULL)
        return -EINVAL;
    if (cfg == NULL)
        cfg = &defaults;
    if (server && (cfg->cert_file == NULL || cfg->key_file == NULL))
        return -EINVAL;
    cio_tls_ctx *x = cio__calloc(1, sizeof *x);
    if (x == NULL)
        return -ENOMEM;
    x->refs = 1;
    x->server = server;
    ERR_clear_error();
    int rc = ctx_setup(x, cfg);
    if (rc < 0) {
        ctx_unref(x);
        return rc;
    }
    x->err[0] = '\0';
    *out = x;
    return 0;
}

int cio_tls_client_ctx_new(cio_tls_ctx **out, const cio_tls_config *cfg)
{
    return ctx_new(out, cfg, false);
}

int cio_tls_server_ctx_new(cio_tls_ctx **out, const cio_tls_config *cfg)
{
    return ctx_new(out, cfg, true);
}

/* ---- moving ciphertext --------------------------------------------------- */

/* The BIO under each SSL: the inner stream, without suspending. */
static int sbio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (c->inner == NULL)
        return 0;
    int rc = cio_stream_write(c->inner, data, len);
    if (rc < 0) {
        c->io_err = rc;
        return 0;
    }
    *written = len;
    return 1;
}

static int sbio_read(BIO *b, char *out, size_t len, size_t *got)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    const void *p;
    size_t n = c->inner ? cio__stream_rdata(c->inner, &p) : 0;
    if (n == 0) {
        BIO_set_retry_read(b); /* WANT_READ: the task waits and retries */
        return 0;
    }
    if (n > len)
        n = len;
    memcpy(out, p, n);
    cio_stream_consume(c->inner, n);
    *got = n;
    return 1;
}

static long sbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH; /* writes are queued already */
}

static BIO_METHOD *sbio_method;

static void sbio_init(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cio");
    if (m && BIO_meth_set_write_ex(m, sbio_write) == 1 &&
        BIO_meth_set_read_ex(m, sbio_read) == 1 &&
        BIO_meth_set_ctrl(m, sbio_ctrl) == 1)
        sbio_method = m;
    else
        BIO_meth_free(m);
}

/* The error of a write the inner stream refused, or 0. */
static int pump(tls_conn *c)
{
    return c->io_err;
}

/* Wait until the inner stream holds ciphertext. OpenSSL has taken all it
 * had when it asks for more, so this waits for new bytes. Returns the
 * count buffered, 0 at end of stream, or < 0. Suspends. */
static ssize_t feed(tls_conn *c)
{
    const void *data;
    ssize_t n = cio_stream_peek(c->inner, &data, 1);
    if (c->closed)
        return -EBADF; /* closed meanwhile: the inner stream may be gone */
    return n;
}

/* Record a fatal failure: its reason, no close_notify afterwards. */
static int conn_fail(tls_conn *c, int code, const char *reason)
{
    c->failed = true;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
    return code;
}

/* The error of a failed SSL call: CIO_ECERT when the peer's certificate
 * was refused, else CIO_ETLS, with the reason recorded. */
static int ssl_fail(tls_conn *c, int sslerr)
{
    char r[REASON_MAX];
    long v = SSL_get_verify_result(c->ssl);
    if ((SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) && v != X509_V_OK) {
        ERR_clear_error();
        return conn_fail(c, CIO_ECERT, X509_verify_cert_error_string(v));
    }
    /* A server that requires a client certificate and got none. */
    int code = ERR_GET_REASON(ERR_peek_last_error()) ==
                       SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE
                   ? CIO_ECERT
                   : CIO_ETLS;
    ssl_reason(r, sizeof r,
               sslerr == SSL_ERROR_SYSCALL ? "unexpected end of data"
                                           : "protocol error");
    return conn_fail(c, code, r);
}

/* ---- handshake ----------------------------------------------------------- */

static int handshake(tls_conn *c)
{
    int rc = cio_checkpoint();
    while (rc == 0) {
        ERR_clear_error();
        int k = SSL_do_handshake(c->ssl);
        int e = k == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, k);
        /* Also after a failure: the alert goes to the peer. */
        int wr = pump(c);
        if (k == 1) {
            rc = wr;
            break;
        }
        if (wr < 0)
            return conn_fail(c, wr, "sending failed during the handshake");
        if (e != SSL_ERROR_WANT_READ)
            return ssl_fail(c, e);
        ssize_t n = feed(c);
        if (n == 0)
            return conn_fail(c, -ECONNRESET,
                             "connection closed during the handshake");
        rc = n < 0 ? (int)n : 0;
    }
    if (rc < 0 && rc != -ECANCELED && rc != -ETIMEDOUT)
        conn_fail(c, rc, cio_strerror(rc));
    c->ready = rc == 0;
    if (c->ready) {
        const unsigned char *p;
        unsigned len;
        SSL_get0_alpn_selected(c->ssl, &p, &len);
        if (p && len < sizeof c->alpn) {
            memcpy(c->alpn, p, len);
            c->alpn[len] = '\0';
        }
    }
    return rc;
}

/* ---- the transport ------------------------------------------------------- */

static ssize_t tls_recv(void *impl, void *buf, size_t n)
{
    tls_conn *c = impl;
    for (;;) {
        if (c->err)
            return c->err;
        size_t got = 0;
        ERR_clear_error();
        int ok = SSL_read_ex(c->ssl, buf, n, &got);
        int e = ok ? SSL_ERROR_NONE : SSL_get_error(c->ssl, 0);
        /* Reading may answer the peer (a key update): send it. */
        int wr = pump(c);
        if (ok)
            return (ssize_t)got;
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0; /* close_notify */
        if (wr < 0)
            return c->err = conn_fail(c, wr, cio_strerror(wr));
        if (e != SSL_ERROR_WANT_READ)
            return c->err = ssl_fail(c, e);
        ssize_t k = feed(c);
        if (k == 0)
            return c->err =
                       conn_fail(c, -ECONNRESET,
                                 "connection truncated without close_notify");
        if (k < 0) {
            if (k != -ECANCELED && k != -EBADF)
                c->err = conn_fail(c, (int)k, cio_strerror((int)k));
            return k;
        }
    }
}

static int tls_send(void *impl, const void *buf, size_t n)
{
    tls_conn *c = impl;
    if (c->err)
        return c->err;
    if (c->shut)
        return -EPIPE;
    const char *p = buf;
    while (n > 0) {
        size_t w = 0;
        ERR_clear_error();
        int ok = SSL_write_ex(c->ssl, p, n, &w);
        int e = ok ? SSL_ERROR_NONE : SSL_get_error(c->ssl, 0);
        int rc = pump(c);
        if (rc < 0)
            return c->err = conn_fail(c, rc, cio_strerror(rc));
        if (!ok)
            return c->err = ssl_fail(c, e);
        p += w;
        n -= w;
    }
    return 0;
}

static size_t tls_pending(const void *impl)
{
    const tls_conn *c = impl;
    return c->closed ? 0 : cio_stream_write_pending(c->inner);
}

static int tls_wait_sent(void *impl, size_t target)
{
    tls_conn *c = impl;
    if (c->closed)
        return -EBADF;
    int rc = cio__stream_wait_sent(c->inner, target);
    if (c->closed)
        return -EBADF;
    return rc < 0 ? rc : c->err;
}

/* Queue close_notify once, unless the connection failed. */
static void send_close_notify(tls_conn *c)
{
    if (c->shut || c->failed || !c->ready)
        return;
    c->shut = true;
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
    pump(c);
}

static int tls_write_eof(void *impl)
{
    tls_conn *c = impl;
    if (c->err)
        return c->err;
    send_close_notify(c);
    return tls_wait_sent(c, 0);
}

/* Flush close_notify under the caller's deadlines and CLOSE_GRACE, then
 * close the inner stream if it is ours. */
static int tls_close(void *impl, bool busy)
{
    tls_conn *c = impl;
    send_close_notify(c);
    c->closed = true;
    int rc = 0;
    cio_scope sc;
    bool scoped = cio_current() != NULL &&
                  cio_scope_enter(&sc, cio_deadline_after(CLOSE_GRACE), 0) == 0;
    if (c->owns_inner) {
        rc = cio_stream_close(c->inner);
    } else {
        if (scoped)
            rc = cio_stream_flush(c->inner);
        /* A task reading through us waits on the caller's stream, which
         * stays open: end its reading side to wake that task. */
        if (busy)
            shutdown(cio_stream_fd(c->inner), SHUT_RD);
    }
    c->inner = NULL;
    if (scoped) {
        int src = cio_scope_exit(&sc);
        if (rc == 0 || rc == -ECANCELED)
            rc = src < 0 ? src : rc;
    }
    return rc;
}

static void conn_free(tls_conn *c)
{
    SSL_free(c->ssl);
    ctx_unref(c->ctx);
    cio__free(c->key);
    cio__free(c);
}

static void tls_free(void *impl)
{
    conn_free(impl);
}

static const cio__stream_transport tls_transport = {
    .recv = tls_recv,
    .send = tls_send,
    .pending = tls_pending,
    .wait_sent = tls_wait_sent,
    .write_eof = tls_write_eof,
    .close = tls_close,
    .free = tls_free,
};

/* ---- connections --------------------------------------------------------- */

static bool is_ip(const char *name)
{
    unsigned char b[16];
    return inet_pton(AF_INET, name, b) == 1 ||
           inet_pton(AF_INET6, name, b) == 1;
}

/* Client: SNI, the name to check, and a cached session to resume. */
static int client_setup(tls_conn *c, const char *name)
{
    cio_tls_ctx *x = c->ctx;
    if (name == NULL)
        return x->insecure ? 0 : -EINVAL;
    bool ip = is_ip(name);
    if (!ip && SSL_set_tlsext_host_name(c->ssl, name) != 1)
        return -EINVAL;
    if (!x->insecure) {
        int ok =
            ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name)
               : SSL_set1_host(c->ssl, name);
        if (ok != 1)
            return -EINVAL;
    }
    if (!x->cache)
        return 0;
    cio_addr a = {.len = sizeof a.u};
    char peer[INET6_ADDRSTRLEN + 16] = "";
    if (getpeername(cio_stream_fd(c->inner), &a.u.sa, &a.len) == 0)
        cio_addr_format(&a, peer, sizeof peer);
    size_t len = strlen(name) + strlen(peer) + 2;
    c->key = cio__malloc(len);
    if (c->key == NULL)
        return -ENOMEM;
    snprintf(c->key, len, "%s|%s", name, peer);
    for (sess_ent *e = x->sessions; e; e = e->next)
        if (strcmp(e->key, c->key) == 0) {
            SSL_set_session(c->ssl, e->sess);
            break;
        }
    return 0;
}

static int conn_new(tls_conn **out, cio_stream *inner, cio_tls_ctx *x,
                    const char *name)
{
    tls_conn *c = cio__calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->inner = inner;
    c->ctx = x;
    x->refs++;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sbio_init);
    int rc = -ENOMEM;
    BIO *b = sbio_method ? BIO_new(sbio_method) : NULL;
    c->ssl = b ? SSL_new(x->ssl) : NULL;
    if (c->ssl == NULL) {
        BIO_free(b);
        goto fail;
    }
    BIO_set_data(b, c);
    BIO_set_init(b, 1);
    SSL_set_bio(c->ssl, b, b);
    SSL_set_app_data(c->ssl, c);
    if (x->server) {
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
        rc = client_setup(c, name);
        if (rc < 0)
            goto fail;
    }
    *out = c;
    return 0;
fail:
    ERR_clear_error();
    conn_free(c);
    return rc;
}

/* Handshake over `plain` and wrap the result in a stream. On failure
 * `plain` is left as it is. */
static int tls_open(cio_stream **out, cio_stream *plain, cio_tls_ctx *x,
                    const char *name, const cio_stream_opts *opts, bool owns)
{
    if (cio_current() == NULL)
        return CIO_ENOTASK;
    tls_conn *c;
    int rc = conn_new(&c, plain, x, name);
    if (rc < 0)
        return rc;
    rc = handshake(c);
    if (rc == 0)
        rc = cio__stream_open_transport(out, cio_stream_fd(plain),
                                        &tls_transport, c, opts);
    if (rc < 0) {
        if (c->failed && rc != -ENOMEM) {
            snprintf(x->err, sizeof x->err, "%s", c->reason);
            cio_errorf(rc, "TLS handshake: %s", c->reason);
        }
        SSL_set_app_data(c->ssl, NULL);
        conn_free(c);
        return rc;
    }
    c->owns_inner = owns;
    return 0;
}

int cio_tls_start(cio_stream **out, cio_stream *plain, cio_tls_ctx *x,
                  const char *server_name, const cio_stream_opts *opts)
{
    if (out == NULL || plain == NULL || x == NULL || x->server)
        return -EINVAL;
    return tls_open(out, plain, x, server_name, opts, false);
}

int cio_tls_accept(cio_stream **out, cio_stream *plain, cio_tls_ctx *x,
                   const cio_stream_opts *opts)
{
    if (out == NULL || plain == NULL || x == NULL || !x->server)
        return -EINVAL;
    return tls_open(out, plain, x, NULL, opts, false);
}

int cio_tls_connect(cio_stream **out, cio_tls_ctx *x, const char *host,
                    int port, const char *server_name,
                    const cio_stream_opts *opts)
{
    if (out == NULL || x == NULL || host == NULL || x->server)
        return -EINVAL;
    cio_stream *plain;
    int rc = cio_open_connection_host(&plain, host, port, NULL);
    if (rc < 0)
        return rc;
    rc = tls_open(out, plain, x, server_name ? server_name : host, opts, true);
    if (rc < 0) {
        /* Shielded and short: the alert, if any, still goes out. */
        cio_scope sh;
        cio_scope_enter(&sh, cio_deadline_after(CIO_SEC), CIO_SCOPE_SHIELD);
        cio_stream_close(plain);
        cio_scope_exit(&sh);
    }
    return rc;
}

/* ---- accessors ----------------------------------------------------------- */

static const tls_conn *conn_of(const cio_stream *s)
{
    return cio__stream_transport_impl(s, &tls_transport);
}

bool cio_tls_is_tls(const cio_stream *s)
{
    return conn_of(s) != NULL;
}

const char *cio_tls_alpn(const cio_stream *s)
{
    const tls_conn *c = conn_of(s);
    if (c == NULL)
        return NULL;
    return c->alpn[0] ? c->alpn : NULL;
}

int cio_tls_resumed(const cio_stream *s)
{
    const tls_conn *c = conn_of(s);
    return c ? SSL_session_reused(c->ssl) == 1 : -EINVAL;
}

const char *cio_tls_version(const cio_stream *s)
{
    const tls_conn *c = conn_of(s);
    return c ? SSL_get_version(c->ssl) : NULL;
}

int cio_tls_peer_subject(const cio_stream *s, char *buf, size_t size)
{
    const tls_conn *c = conn_of(s);
    if (c == NULL || buf == NULL)
        return -EINVAL;
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    if (cert == NULL)
        return -ENOENT;
    BIO *m = BIO_new(BIO_s_mem());
    if (m == NULL)
        return -ENOMEM;
    int rc =
        X509_NAME_print_ex(m, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char *p;
    long len = BIO_get_mem_data(m, &p);
    if (rc < 0 || len < 0)
        rc = -ENOMEM;
    else if ((size_t)len >= size)
        rc = -ENOSPC;
    else {
        memcpy(buf, p, (size_t)len);
        buf[len] = '\0';
        rc = (int)len;
    }
    BIO_free(m);
    ERR_clear_error();
    return rc;
}

const char *cio_tls_last_error(const cio_stream *s)
{
    const tls_conn *c = conn_of(s);
    return c ? c->reason : NULL;
}

#endif /* CIO_HAVE_OPENSSL */
