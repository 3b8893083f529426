/* The HTTP/1.1 client: requests over pooled keep-alive connections,
 * responses parsed by llhttp (strict), redirects, gzip/deflate decoding.
 *
 * Pooling: one generic pool (cio/pool.h) per scheme://host:port, bounded
 * by max_per_host, with idle expiry; a semaphore bounds the connections
 * in use over all hosts. The pool checks an idle connection before
 * handing it out with a non-blocking MSG_PEEK, so one the server closed
 * meanwhile is dropped instead of failing a request. */
#include <strings.h>
#include <sys/socket.h>
#include <zlib.h>

#include <llhttp.h>

#include "cio/pool.h"
#include "http_int.h"
#ifdef CIO_HAVE_OPENSSL
#include "cio/tls.h"
#endif
#ifdef CIO_HAVE_CARES
#include "cio/dns.h"
#endif

#define DEF_PER_HOST 8
#define DEF_TOTAL 64
#define DEF_IDLE (30 * CIO_SEC)
#define DEF_CONNECT (10 * CIO_SEC)
#define DEF_HEAD (30 * CIO_SEC)
#define DEF_BODY (60 * CIO_SEC)
#define DEF_REDIRECTS 10
#define DEF_MAX_BODY ((size_t)64 * 1024 * 1024)
#define DEF_MAX_HEAD ((size_t)64 * 1024)

typedef struct hostpool hostpool;
typedef struct cconn {
    hostpool *hp;
    cio_stream *s;
    uint64_t uses; /* requests sent on it, this one included */
    bool reused;
} cconn;

/* One generic pool (cio/pool.h) per scheme://host:port. */
struct hostpool {
    hostpool *next;
    cio_http_client *c;
    char host[256];
    int port;
    bool https;
    cio_pool *pool;
};

struct cio_http_client {
    cio_http_client_opts o;
    hostpool *hosts;
    cio_sem total; /* connections in use */
    size_t live_responses;
    cio_tls_ctx *own_tls; /* the default context, made on demand */
    uint64_t connects;
};

struct cio_http_response {
    cio_http_client *c;
    cconn *conn; /* lent while the body is unread */
    llhttp_t p;
    int status;
    hlist hdr;
    size_t head_bytes;
    bool head_req, head_done, msg_done, got_bytes, bad_size;
    hbuf raw; /* parsed body bytes not yet decoded */
    size_t raw_off;
    hbuf body;
    char *url;
    z_stream z;
    bool inflating, z_end;
    int64_t body_deadline;
};

/* ---- Client and pool ----------------------------------------------------- */

int cio_http_client_new(cio_http_client **out, const cio_http_client_opts *opts)
{
    if (out == NULL)
        return -EINVAL;
#ifndef CIO_HAVE_OPENSSL
    if (opts && opts->tls)
        return -EINVAL;
#endif
    if (cio_current() == NULL)
        return CIO_ENOTASK;
    cio_http_client *c = cio__calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    if (opts)
        c->o = *opts;
    cio_http_client_opts *o = &c->o;
    o->max_per_host = o->max_per_host ? o->max_per_host : DEF_PER_HOST;
    o->max_total = o->max_total ? o->max_total : DEF_TOTAL;
    o->idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : DEF_IDLE;
    o->connect_timeout =
        o->connect_timeout > 0 ? o->connect_timeout : DEF_CONNECT;
    o->head_timeout = o->head_timeout > 0 ? o->head_timeout : DEF_HEAD;
    o->body_timeout = o->body_timeout > 0 ? o->body_timeout : DEF_BODY;
    o->max_redirects = o->max_redirects ? o->max_redirects : DEF_REDIRECTS;
    o->max_body = o->max_body ? o->max_body : DEF_MAX_BODY;
    o->max_head = o->max_head ? o->max_head : DEF_MAX_HEAD;
    cio_sem_init(&c->total, (long)o->max_total, 0);
    *out = c;
    return 0;
}

static void conn_close(cconn *k)
{
    /* Nothing is queued on an idle or broken connection: closing does
     * not wait, and a cancelled caller still releases the fd. */
    cio_scope sh;
    cio_scope_enter(&sh, cio_deadline_after(0), CIO_SCOPE_SHIELD);
    cio_stream_close(k->s);
    cio_scope_exit(&sh);
    cio__free(k);
}

int cio_http_client_close(cio_http_client *c)
{
    if (c == NULL)
        return 0;
    if (c->live_responses)
        return -EBUSY;
    hostpool *hp = c->hosts;
    while (hp) {
        hostpool *next = hp->next;
        /* Nothing is borrowed: this only closes the idle connections. */
        cio_pool_close(hp->pool);
        cio__free(hp);
        hp = next;
    }
#ifdef CIO_HAVE_OPENSSL
    cio_tls_ctx_free(c->own_tls);
#endif
    cio__free(c);
    return 0;
}

size_t cio_http_client_idle(const cio_http_client *c)
{
    size_t n = 0;
    for (const hostpool *hp = c->hosts; hp; hp = hp->next) {
        cio_pool_stats st;
        if (cio_pool_stats_get(hp->pool, &st) == 0)
            n += st.idle;
    }
    return n;
}

uint64_t cio_http_client_connects(const cio_http_client *c)
{
    return c->connects;
}

static int open_stream(cio_http_client *c, hostpool *hp, cio_stream **s)
{
    if (hp->https) {
#ifdef CIO_HAVE_OPENSSL
        cio_tls_ctx *ctx = c->o.tls ? c->o.tls : c->own_tls;
        if (ctx == NULL) {
            int rc = cio_tls_client_ctx_new(&c->own_tls, NULL);
            if (rc < 0)
                return rc;
            ctx = c->own_tls;
        }
        return cio_tls_connect(s, ctx, hp->host, hp->port, NULL, NULL);
#else
        return -EPROTONOSUPPORT;
#endif
    }
#ifdef CIO_HAVE_CARES
    return cio_open_connection_host(s, hp->host, hp->port, NULL);
#else
    int rc = cio_open_connection(s, hp->host, hp->port, NULL);
    return rc == -EINVAL ? CIO_ENOTFOUND : rc; /* a name: no resolver */
#endif
}

/* The pool's open: connect (and handshake) under the connect timeout. */
static int pool_open(void *ctx, void **conn)
{
    hostpool *hp = ctx;
    cio_http_client *c = hp->c;
    cconn *k = cio__calloc(1, sizeof *k);
    if (k == NULL)
        return -ENOMEM;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(c->o.connect_timeout), 0);
    if (rc == 0) {
        rc = open_stream(c, hp, &k->s);
        int sx = cio_scope_exit(&sc);
        if (rc == -ECANCELED && sx == -ETIMEDOUT)
            rc = -ETIMEDOUT;
    }
    if (rc < 0) {
        cio__free(k);
        return rc;
    }
    c->connects++;
    k->hp = hp;
    *conn = k;
    return 0;
}

static void pool_close(void *ctx, void *conn)
{
    (void)ctx;
    conn_close(conn);
}

/* The pool's check before reuse: nothing unexpected buffered or arrived
 * (a non-blocking MSG_PEEK), and not closed by the server. */
static int pool_check(void *ctx, void *conn)
{
    (void)ctx;
    cconn *k = conn;
    if (cio_stream_buffered(k->s) != 0)
        return -EPROTO;
    char b;
    ssize_t n = recv(cio_stream_fd(k->s), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -ECONNRESET;
}

static hostpool *host_get(cio_http_client *c, const http_url *u)
{
    for (hostpool *hp = c->hosts; hp; hp = hp->next)
        if (hp->port == u->port && hp->https == u->https &&
            strcmp(hp->host, u->host) == 0)
            return hp;
    hostpool *hp = cio__calloc(1, sizeof *hp);
    if (hp == NULL)
        return NULL;
    snprintf(hp->host, sizeof hp->host, "%s", u->host);
    hp->port = u->port;
    hp->https = u->https;
    hp->c = c;
    cio_pool_config cfg = {.max_size = c->o.max_per_host,
                           .idle_timeout = c->o.idle_timeout,
                           .open = pool_open,
                           .close = pool_close,
                           .check = pool_check,
                           .ctx = hp};
    if (cio_pool_create(&hp->pool, &cfg) < 0) {
        cio__free(hp);
        return NULL;
    }
    hp->next = c->hosts;
    c->hosts = hp;
    return hp;
}

/* Borrow a connection to `u`'s host: from its pool (an idle one, checked,
 * or a new one), then a permit of the total limit. */
static int conn_acquire(cio_http_client *c, const http_url *u, cconn **out)
{
    hostpool *hp = host_get(c, u);
    if (hp == NULL)
        return -ENOMEM;
    void *conn;
    int rc = cio_pool_acquire(hp->pool, &conn);
    if (rc < 0)
        return rc;
    rc = cio_sem_acquire(&c->total);
    if (rc < 0) {
        cio_pool_release(hp->pool, conn, false);
        return rc;
    }
    cconn *k = conn;
    k->reused = k->uses++ > 0;
    *out = k;
    return 0;
}

static void conn_release(cio_http_client *c, cconn *k, bool reusable)
{
    cio_sem_release(&c->total);
    cio_pool_release(k->hp->pool, k, !reusable);
}

/* ---- Parsing the response ------------------------------------------------ */

static int on_message_begin(llhttp_t *p)
{
    cio_http_response *r = p->data;
    cio__hlist_reset(&r->hdr);
    r->head_done = r->msg_done = false;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    cio_http_response *r = p->data;
    r->head_bytes += n;
    if (r->head_bytes > r->c->o.max_head) {
        r->bad_size = true;
        return -1;
    }
    return cio__hlist_piece(&r->hdr, false, at, n) < 0 ? -1 : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    cio_http_response *r = p->data;
    r->head_bytes += n;
    if (r->head_bytes > r->c->o.max_head) {
        r->bad_size = true;
        return -1;
    }
    return cio__hlist_piece(&r->hdr, true, at, n) < 0 ? -1 : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    cio_http_response *r = p->data;
    return cio__hlist_end_piece(&r->hdr) < 0 ? -1 : 0;
}

static int on_headers_complete(llhttp_t *p)
{
    cio_http_response *r = p->data;
    if (p->status_code / 100 == 1)
        return 0; /* an interim response: the real one follows */
    r->status = p->status_code;
    r->head_done = true;
    return r->head_req ? 1 : HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    cio_http_response *r = p->data;
    return cio__hbuf_add(&r->raw, at, n) < 0 ? -1 : 0;
}

static int on_message_complete(llhttp_t *p)
{
    cio_http_response *r = p->data;
    if (p->status_code / 100 == 1)
        return 0;
    r->msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Parse what the connection has (waiting for a byte) up to a pause. */
static int feed(cio_http_response *r)
{
    const void *data;
    ssize_t n = cio_stream_peek(r->conn->s, &data, 1);
    if (n < 0)
        return (int)n;
    if (n == 0) {
        /* A body delimited by the close ends here. */
        if (r->head_done) {
            llhttp_errno_t e = llhttp_finish(&r->p);
            if ((e == HPE_OK || e == HPE_PAUSED) && r->msg_done)
                return 0;
        }
        return CIO_EOF;
    }
    r->got_bytes = true;
    llhttp_errno_t e = llhttp_execute(&r->p, data, (size_t)n);
    size_t used = (size_t)n;
    if (e == HPE_PAUSED) {
        used = (size_t)(llhttp_get_error_pos(&r->p) - (const char *)data);
        llhttp_resume(&r->p);
    } else if (e != HPE_OK) {
        return r->bad_size ? -EMSGSIZE : CIO_EHTTP;
    }
    cio_stream_consume(r->conn->s, used);
    return 0;
}

/* Run the parser's input-free steps (end of a body-less message). */
static void feed_empty(cio_http_response *r)
{
    if (r->msg_done)
        return;
    if (llhttp_execute(&r->p, "", 0) == HPE_PAUSED)
        llhttp_resume(&r->p);
}

/* ---- Decoding ------------------------------------------------------------ */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return cio__calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    cio__free(p);
}

static int start_decoding(cio_http_response *r)
{
    const char *ce = cio__hlist_get(&r->hdr, "content-encoding");
    if (ce == NULL || r->c->o.no_decompress || r->head_req)
        return 0;
    if (!cio__http_ieq(ce, "gzip") && !cio__http_ieq(ce, "x-gzip") &&
        !cio__http_ieq(ce, "deflate"))
        return 0;
    r->z.zalloc = z_alloc;
    r->z.zfree = z_free;
    /* 15 + 32: zlib or gzip header, detected. */
    if (inflateInit2(&r->z, 15 + 32) != Z_OK)
        return -ENOMEM;
    r->inflating = true;
    return 0;
}

/* Move decoded body bytes from r->raw into buf. Returns the count. */
static ssize_t decode(cio_http_response *r, char *buf, size_t n)
{
    size_t avail = r->raw.len - r->raw_off;
    if (!r->inflating) {
        size_t k = avail < n ? avail : n;
        memcpy(buf, r->raw.p + r->raw_off, k);
        r->raw_off += k;
        return (ssize_t)k;
    }
    if (r->z_end) {
        r->raw_off = r->raw.len; /* trailing garbage after the stream */
        return 0;
    }
    r->z.next_in = (Bytef *)r->raw.p + r->raw_off;
    r->z.avail_in = (uInt)avail;
    r->z.next_out = (Bytef *)buf;
    r->z.avail_out = (uInt)n;
    int zr = inflate(&r->z, Z_NO_FLUSH);
    r->raw_off = r->raw.len - r->z.avail_in;
    if (zr == Z_STREAM_END)
        r->z_end = true;
    else if (zr != Z_OK && zr != Z_BUF_ERROR)
        return CIO_EHTTP;
    return (ssize_t)(n - r->z.avail_out);
}

static ssize_t read_body(cio_http_response *r, void *buf, size_t n)
{
    for (;;) {
        if (r->raw_off < r->raw.len) {
            /* Each call makes progress: output, or input consumed. */
            ssize_t k = decode(r, buf, n);
            if (k != 0)
                return k;
            continue;
        }
        if (r->msg_done) {
            if (!r->inflating || r->z_end)
                return 0;
            /* Output inflate still holds, or a truncated stream. */
            ssize_t k = decode(r, buf, n);
            return k != 0 ? k : CIO_EHTTP;
        }
        r->raw.len = r->raw_off = 0;
        int rc = feed(r);
        if (rc < 0)
            return rc;
    }
}

ssize_t cio_http_response_read(cio_http_response *r, void *buf, size_t n)
{
    if (r->conn == NULL)
        return 0;
    if (n == 0)
        return 0;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, r->body_deadline, 0);
    if (rc < 0)
        return rc;
    ssize_t k = read_body(r, buf, n);
    int sx = cio_scope_exit(&sc);
    if (k == -ECANCELED && sx == -ETIMEDOUT)
        k = -ETIMEDOUT;
    if (k < 0) {
        conn_release(r->c, r->conn, false);
        r->conn = NULL;
    } else if (k == 0) {
        conn_release(r->c, r->conn, llhttp_should_keep_alive(&r->p) != 0);
        r->conn = NULL;
    }
    return k;
}

/* Buffer the whole body into r->body. */
static int buffer_body(cio_http_response *r)
{
    for (;;) {
        int rc = cio__hbuf_reserve(&r->body, 16384);
        if (rc < 0)
            return rc;
        ssize_t k = cio_http_response_read(r, r->body.p + r->body.len,
                                           r->body.cap - r->body.len - 1);
        if (k < 0)
            return (int)k;
        if (k == 0)
            break;
        r->body.len += (size_t)k;
        if (r->body.len > r->c->o.max_body)
            return -EMSGSIZE;
    }
    return cio__hbuf_add(&r->body, "", 0);
}

/* ---- Requests ------------------------------------------------------------ */

static int build_head(hbuf *b, const char *method, const http_url *u,
                      const cio_http_req_opts *o)
{
    bool user_host = false;
    for (size_t i = 0; i < o->nheaders; i++) {
        const cio_http_header *h = &o->headers[i];
        if (cio_http_header_check(h->name, h->value) < 0 ||
            cio__http_ieq(h->name, "content-length") ||
            cio__http_ieq(h->name, "transfer-encoding"))
            return -EINVAL;
        user_host |= cio__http_ieq(h->name, "host");
    }
    int rc = cio__hbuf_addf(b, "%s %s HTTP/1.1\r\n", method, u->target);
    if (rc == 0 && !user_host) {
        bool v6 = strchr(u->host, ':') != NULL;
        rc = cio__hbuf_addf(b, "Host: %s%s%s", v6 ? "[" : "", u->host,
                            v6 ? "]" : "");
        if (rc == 0 && u->port != (u->https ? 443 : 80))
            rc = cio__hbuf_addf(b, ":%d", u->port);
        if (rc == 0)
            rc = cio__hbuf_adds(b, "\r\n");
    }
    for (size_t i = 0; i < o->nheaders && rc == 0; i++)
        rc = cio__hbuf_addf(b, "%s: %s\r\n", o->headers[i].name,
                            o->headers[i].value);
    if (rc == 0)
        rc = cio__hbuf_adds(b, "Accept-Encoding: gzip, deflate\r\n");
    if (rc == 0 && o->body_fn)
        rc = cio__hbuf_adds(b, "Transfer-Encoding: chunked\r\n");
    else if (rc == 0 &&
             (o->body_len || strcmp(method, "POST") == 0 ||
              strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0))
        rc = cio__hbuf_addf(b, "Content-Length: %zu\r\n", o->body_len);
    if (rc == 0)
        rc = cio__hbuf_adds(b, "\r\n");
    return rc;
}

static int send_streamed_body(cio_stream *s, const cio_http_req_opts *o)
{
    char *buf = cio__malloc(16384 + 16);
    if (buf == NULL)
        return -ENOMEM;
    int rc;
    for (;;) {
        ssize_t n = o->body_fn(o->body_arg, buf + 10, 16384);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n > 16384) {
            rc = -EINVAL;
            break;
        }
        if (n == 0) {
            rc = cio_stream_write(s, "0\r\n\r\n", 5);
            break;
        }
        char hd[12];
        int hl = snprintf(hd, sizeof hd, "%zx\r\n", (size_t)n);
        memcpy(buf + 10 - hl, hd, (size_t)hl);
        memcpy(buf + 10 + n, "\r\n", 2);
        rc = cio_stream_write(s, buf + 10 - hl, (size_t)(hl + n + 2));
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            break;
    }
    cio__free(buf);
    return rc;
}

/* Send the request and read the response head on `r->conn`. */
static int exchange(cio_http_response *r, const char *method, const http_url *u,
                    const cio_http_req_opts *o)
{
    hbuf head = {0};
    int rc = build_head(&head, method, u, o);
    cio_stream *s = r->conn->s;
    if (rc == 0)
        rc = cio_stream_write(s, head.p, head.len);
    cio__hbuf_free(&head);
    if (rc == 0 && o->body_len)
        rc = cio_stream_write(s, o->body, o->body_len);
    if (rc == 0 && o->body_fn)
        rc = send_streamed_body(s, o);
    if (rc == 0)
        rc = cio_stream_flush(s);
    while (rc == 0 && !r->head_done)
        rc = feed(r);
    return rc;
}

static int timed_exchange(cio_http_response *r, const char *method,
                          const http_url *u, const cio_http_req_opts *o)
{
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(r->c->o.head_timeout), 0);
    if (rc < 0)
        return rc;
    rc = exchange(r, method, u, o);
    int sx = cio_scope_exit(&sc);
    if (rc == -ECANCELED && sx == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    return rc;
}

static bool idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ||
           strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0 ||
           strcmp(m, "OPTIONS") == 0 || strcmp(m, "TRACE") == 0;
}

static bool stale_error(int rc)
{
    return rc == CIO_EOF || rc == -ECONNRESET || rc == -EPIPE;
}

static void response_init(cio_http_response *r, cio_http_client *c,
                          const char *method)
{
    cio__hlist_reset(&r->hdr);
    r->raw.len = r->raw_off = 0;
    r->c = c;
    r->head_req = strcmp(method, "HEAD") == 0;
    r->head_done = r->msg_done = r->got_bytes = r->bad_size = false;
    r->head_bytes = 0;
    llhttp_init(&r->p, HTTP_RESPONSE, &settings);
    r->p.data = r;
}

/* One request without redirects: r gets the head, and the connection if
 * a body is to be read. */
static int hop(cio_http_client *c, cio_http_response *r, const char *method,
               const http_url *u, const cio_http_req_opts *o)
{
#ifndef CIO_HAVE_OPENSSL
    if (u->https)
        return -EPROTONOSUPPORT;
#endif
    int rc;
    for (int attempt = 0;; attempt++) {
        response_init(r, c, method);
        rc = conn_acquire(c, u, &r->conn);
        if (rc < 0)
            return rc;
        rc = timed_exchange(r, method, u, o);
        if (rc == 0)
            break;
        /* Only idempotent requests: a POST the server took before it
         * dropped the connection must not run twice (RFC 9110 9.2.2). */
        bool retry = r->conn->reused && !r->got_bytes && stale_error(rc) &&
                     o->body_fn == NULL && attempt == 0 && idempotent(method);
        conn_release(c, r->conn, false);
        r->conn = NULL;
        if (!retry)
            return rc;
    }
    r->body_deadline = cio_deadline_after(c->o.body_timeout);
    feed_empty(r);
    rc = start_decoding(r);
    if (rc < 0)
        return rc;
    if (r->msg_done && r->raw.len == 0 && !r->inflating) {
        conn_release(c, r->conn, llhttp_should_keep_alive(&r->p) != 0);
        r->conn = NULL;
    }
    return 0;
}

static int is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 ||
           status == 308;
}

/* A redirect's body (nginx sends a small HTML page): read it so the
 * connection can be reused. Up to 64 KiB; a bigger or failing one just
 * costs the connection. */
static void discard_redirect_body(cio_http_response *r)
{
    char buf[4096];
    size_t total = 0;
    while (r->conn && total < 65536) {
        ssize_t k = cio_http_response_read(r, buf, sizeof buf);
        if (k <= 0)
            break;
        total += (size_t)k;
    }
}

static void response_clear(cio_http_response *r)
{
    if (r->conn) {
        conn_release(r->c, r->conn, false);
        r->conn = NULL;
    }
    if (r->inflating)
        inflateEnd(&r->z);
    r->inflating = r->z_end = false;
    memset(&r->z, 0, sizeof r->z);
    r->body.len = 0;
}

/* Follow redirects from `url`; r holds the final response. */
static int follow(cio_http_client *c, cio_http_response *r, const char *method,
                  const char *url, const cio_http_req_opts *o)
{
    cio_http_req_opts cur = *o;
    char *cur_url = cio__strdup(url);
    if (cur_url == NULL)
        return -ENOMEM;
    int rc;
    for (int hops = 0;; hops++) {
        http_url u;
        rc = cio__http_url_parse(&u, cur_url);
        if (rc < 0)
            break;
        rc = hop(c, r, method, &u, &cur);
        const char *loc =
            rc == 0 && c->o.max_redirects >= 0 && is_redirect(r->status)
                ? cio__hlist_get(&r->hdr, "location")
                : NULL;
        bool keep_method = r->status == 307 || r->status == 308;
        if (loc == NULL || (keep_method && cur.body_fn)) {
            cio__http_url_free(&u);
            break;
        }
        char *next = NULL;
        if (hops == c->o.max_redirects)
            rc = CIO_EREDIRECTS;
        else
            rc = cio__http_url_join(&u, loc, &next);
        if (rc == 0 && u.https && strncasecmp(next, "https:", 6) != 0 &&
            !c->o.allow_insecure_redirect)
            rc = -EPERM;
        cio__http_url_free(&u);
        if (rc == 0)
            discard_redirect_body(r);
        response_clear(r);
        if (rc < 0) {
            cio__free(next);
            break;
        }
        cio__free(cur_url);
        cur_url = next;
        if (!keep_method && strcmp(method, "HEAD") != 0) {
            method = "GET";
            cur.body = NULL;
            cur.body_len = 0;
        }
    }
    r->url = cur_url;
    return rc;
}

static bool method_ok(const char *m)
{
    if (m == NULL || *m == '\0' || strlen(m) > 32)
        return false;
    for (const char *p = m; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_'))
            return false;
    return true;
}

int cio_http_request(cio_http_client *c, cio_http_response **out,
                     const char *method, const char *url,
                     const cio_http_req_opts *opts)
{
    static const cio_http_req_opts none = {0};
    const cio_http_req_opts *o = opts ? opts : &none;
    if (c == NULL || out == NULL || url == NULL || !method_ok(method) ||
        (o->body_fn && o->body_len) || (o->nheaders && !o->headers) ||
        (o->body_len && !o->body))
        return -EINVAL;
    for (size_t i = 0; i < o->nheaders; i++)
        if (cio_http_header_check(o->headers[i].name, o->headers[i].value))
            return -EINVAL;
    cio_http_response *r = cio__calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->c = c;
    c->live_responses++;
    int64_t total = o->timeout > 0 ? o->timeout : c->o.timeout;
    cio_scope sc;
    int rc = cio_scope_enter(
        &sc, total > 0 ? cio_deadline_after(total) : CIO_NEVER, 0);
    if (rc == 0) {
        rc = follow(c, r, method, url, o);
        if (rc == 0 && !o->stream)
            rc = buffer_body(r);
        int sx = cio_scope_exit(&sc);
        if (rc == -ECANCELED && sx == -ETIMEDOUT)
            rc = -ETIMEDOUT;
    }
    if (rc == 0 && o->stream && r->conn) {
        /* The body deadline counts from now for a streamed body. */
        r->body_deadline = cio_deadline_after(c->o.body_timeout);
    }
    if (rc < 0) {
        cio_http_response_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int cio_http_get(cio_http_client *c, cio_http_response **out, const char *url)
{
    return cio_http_request(c, out, "GET", url, NULL);
}

int cio_http_post(cio_http_client *c, cio_http_response **out, const char *url,
                  const char *content_type, const void *body, size_t len)
{
    cio_http_header h = {"Content-Type", content_type};
    cio_http_req_opts o = {.headers = content_type ? &h : NULL,
                           .nheaders = content_type ? 1 : 0,
                           .body = body,
                           .body_len = len};
    return cio_http_request(c, out, "POST", url, &o);
}

/* ---- Response accessors -------------------------------------------------- */

int cio_http_response_status(const cio_http_response *r)
{
    return r->status;
}

const char *cio_http_response_url(const cio_http_response *r)
{
    return r->url;
}

const char *cio_http_response_header(const cio_http_response *r,
                                     const char *name)
{
    return cio__hlist_get(&r->hdr, name);
}

size_t cio_http_response_header_count(const cio_http_response *r)
{
    return r->hdr.n;
}

int cio_http_response_header_at(const cio_http_response *r, size_t i,
                                const char **name, const char **value)
{
    if (i >= r->hdr.n)
        return -EINVAL;
    if (name)
        *name = cio__hlist_name(&r->hdr, i);
    if (value)
        *value = cio__hlist_value(&r->hdr, i);
    return 0;
}

const char *cio_http_response_body(const cio_http_response *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.p ? r->body.p : "";
}

void cio_http_response_free(cio_http_response *r)
{
    if (r == NULL)
        return;
    response_clear(r);
    r->c->live_responses--;
    cio__hlist_free(&r->hdr);
    cio__hbuf_free(&r->raw);
    cio__hbuf_free(&r->body);
    cio__free(r->url);
    cio__free(r);
}
