/* The server's request and response objects: accessors, body reading,
 * response writing. */
#include <strings.h>

#include "server_int.h"

/* ---- Request ------------------------------------------------------------- */

const char *cio_http_req_method(const cio_http_req *r)
{
    return r->method;
}

const char *cio_http_req_target(const cio_http_req *r)
{
    return r->target;
}

const char *cio_http_req_path(const cio_http_req *r)
{
    return r->path;
}

const char *cio_http_req_query(const cio_http_req *r)
{
    return r->query;
}

int cio_http_req_version(const cio_http_req *r)
{
    return r->version;
}

const char *cio_http_req_header(const cio_http_req *r, const char *name)
{
    return cio__hlist_get(&r->c->hdr, name);
}

size_t cio_http_req_header_count(const cio_http_req *r)
{
    return r->c->hdr.n;
}

int cio_http_req_header_at(const cio_http_req *r, size_t i, const char **name,
                           const char **value)
{
    if (i >= r->c->hdr.n)
        return -EINVAL;
    if (name)
        *name = cio__hlist_name(&r->c->hdr, i);
    if (value)
        *value = cio__hlist_value(&r->c->hdr, i);
    return 0;
}

const char *cio_http_req_param(const cio_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->params.p + r->poff[2 * i], name) == 0)
            return r->params.p + r->poff[2 * i + 1];
    return NULL;
}

int64_t cio_http_req_content_length(const cio_http_req *r)
{
    return r->clen;
}

const cio_addr *cio_http_req_peer(const cio_http_req *r)
{
    return &r->c->peer;
}

static int send_continue(cio_http_req *r)
{
    r->continue_sent = true;
    if (r->c->w != NULL && r->c->w->started)
        return 0;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return cio__http_conn_send(r->c, msg, sizeof msg - 1);
}

ssize_t cio_http_req_read(cio_http_req *r, void *buf, size_t n)
{
    hconn *c = r->c;
    if (r->body_err)
        return r->body_err;
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    if (r->expect_continue && !r->continue_sent && !c->msg_done &&
        (rc = send_continue(r)) < 0)
        goto fail;
    while (c->body_off == c->body.len) {
        if (c->msg_done)
            return 0;
        c->body.len = c->body_off = 0;
        rc = cio__http_conn_feed_body(c);
        if (rc == CIO_EHTTP && c->perr == 413)
            rc = -EMSGSIZE;
        if (rc < 0)
            goto fail;
    }
    size_t k = c->body.len - c->body_off;
    if (k > n)
        k = n;
    memcpy(buf, c->body.p + c->body_off, k);
    c->body_off += k;
    return (ssize_t)k;
fail:
    if (rc != -ECANCELED)
        r->body_err = rc;
    c->keep_alive = false;
    return rc;
}

int cio_http_req_body(cio_http_req *r, const char **data, size_t *len,
                      size_t max)
{
    if (max == 0)
        max = cio__http_server_opts(r->c->hs)->max_body;
    r->whole.len = 0;
    for (;;) {
        int rc = cio__hbuf_reserve(&r->whole, 4096);
        if (rc < 0)
            return rc;
        ssize_t n = cio_http_req_read(r, r->whole.p + r->whole.len,
                                      r->whole.cap - r->whole.len - 1);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        r->whole.len += (size_t)n;
        if (r->whole.len > max) {
            r->body_err = -EMSGSIZE;
            r->c->keep_alive = false;
            return -EMSGSIZE;
        }
    }
    r->whole.p[r->whole.len] = '\0';
    *data = r->whole.p;
    *len = r->whole.len;
    return 0;
}

/* ---- Response ------------------------------------------------------------ */

int cio_http_writer_status(cio_http_writer *w, int status)
{
    if (w->started)
        return -EALREADY;
    if (status < 200 || status > 999)
        return -EINVAL;
    w->status = status;
    return 0;
}

static const char *const owned[] = {"content-length", "transfer-encoding",
                                    "connection", "date"};

int cio_http_writer_header(cio_http_writer *w, const char *name,
                           const char *value)
{
    if (cio_http_header_check(name, value) < 0)
        return -EINVAL;
    int first = name[0] | 0x20;
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (first == owned[i][0] && strcasecmp(name, owned[i]) == 0)
            return -EINVAL;
    if (w->started)
        return -EALREADY;
    int rc = cio__hbuf_add3(&w->hdrs, name, ": ", value);
    return rc < 0 ? rc : cio__hbuf_add(&w->hdrs, "\r\n", 2);
}

int cio_http_writer_length(cio_http_writer *w, int64_t len)
{
    if (w->started)
        return -EALREADY;
    if (len < 0)
        return -EINVAL;
    w->length = len;
    return 0;
}

void cio_http_writer_close(cio_http_writer *w)
{
    w->close = true;
}

bool cio_http_writer_started(const cio_http_writer *w)
{
    return w->started;
}

int cio_http_writer_status_code(const cio_http_writer *w)
{
    return w->status;
}

uint64_t cio_http_writer_bytes(const cio_http_writer *w)
{
    return w->bytes;
}

/* Write `v` in decimal ending just before `end`; returns the first digit. */
static char *put_dec(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put(p, lit, sizeof lit - 1)

/* What every response head starts with: the writer is started, and
 * whether a body and the connection's reuse may follow is settled. */
static void start_head(cio_http_writer *w)
{
    hconn *c = w->c;
    w->started = true;
    w->no_body = w->status < 200 || w->status == 204 || w->status == 304;
    if (cio__http_server_closing(c->hs) || w->close)
        c->keep_alive = false;
}

/* How the head ends, for cio__http_head_cache.conn. */
static int conn_mode(const hconn *c)
{
    return !c->keep_alive ? 1 : c->p.http_minor == 0 ? 2 : 0;
}

/* Assemble the head into c->out (emptied first), with a Content-Type of
 * `ctlen` bytes when `ctype` is not NULL, and room for `extra` more bytes
 * after it. The lengths are known up front: one reservation, then plain
 * copies. */
static int build_head(cio_http_writer *w, const char *ctype, size_t ctlen,
                      size_t extra)
{
    hconn *c = w->c;
    hbuf *b = &c->out;
    b->len = 0;
    start_head(w);
    const char *srv = cio__http_server_name(c->hs);
    size_t srvlen = srv ? strlen(srv) : 0;
    size_t slen;
    const char *start = cio__http_head_start(w->status, &slen);
    /* 128 covers the fixed parts: the names and line ends of Server and
     * Content-Type (26), Content-Length (38) or Transfer-Encoding (28),
     * Connection (24) and the blank line (2). */
    size_t need = 128 + slen + srvlen + ctlen + w->hdrs.len;
    if (w->head_only || w->no_body)
        extra = 0; /* no body bytes will follow */
    if (need < extra || SIZE_MAX - need < extra)
        return -ENOMEM;
    need += extra;
    if (b->cap <= need && cio__hbuf_reserve(b, need) < 0)
        return -ENOMEM;
    char tmp[24];
    char *d = tmp + sizeof tmp;
    char *p = put(b->p, start, slen);
    if (srv) {
        p = PUT_LIT(p, "Server: ");
        p = put(p, srv, srvlen);
        p = PUT_LIT(p, "\r\n");
    }
    if (w->hdrs.len)
        p = put(p, w->hdrs.p, w->hdrs.len);
    if (ctype) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put(p, ctype, ctlen);
        p = PUT_LIT(p, "\r\n");
    }
    if (!w->no_body) {
        if (w->length >= 0) {
            p = PUT_LIT(p, "Content-Length: ");
            char *s = put_dec(d, (uint64_t)w->length);
            p = put(p, s, (size_t)(d - s));
            p = PUT_LIT(p, "\r\n");
        } else if (w->head_only) {
            ;
        } else if (c->p.http_minor >= 1 && c->p.http_major == 1) {
            w->chunked = true;
            p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
        } else {
            c->keep_alive = false; /* the end of the body is the close */
        }
    }
    if (!c->keep_alive)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (c->p.http_minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    b->len = (size_t)(p - b->p);
    b->p[b->len] = '\0';
    return 0;
}

/* Append body bytes to c->out, framed. */
static int add_body(cio_http_writer *w, const void *data, size_t n)
{
    hbuf *b = &w->c->out;
    if (n == 0 || w->head_only || w->no_body)
        return 0;
    int rc = 0;
    if (w->chunked)
        rc = cio__hbuf_addu(b, n, 16);
    if (rc == 0 && w->chunked)
        rc = cio__hbuf_add(b, "\r\n", 2);
    if (rc == 0)
        rc = cio__hbuf_add(b, data, n);
    if (rc == 0 && w->chunked)
        rc = cio__hbuf_add(b, "\r\n", 2);
    return rc;
}

static int send_out(cio_http_writer *w)
{
    hconn *c = w->c;
    int rc = c->out.len ? cio__http_conn_send(c, c->out.p, c->out.len) : 0;
    c->out.len = 0;
    if (rc < 0) {
        w->failed = true;
        c->keep_alive = false;
    }
    return rc;
}

int cio_http_writer_write(cio_http_writer *w, const void *data, size_t n)
{
    if (w->failed)
        return -EPIPE;
    if (w->ended)
        return -EPIPE;
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    if (w->length >= 0 && w->bytes + n > (uint64_t)w->length)
        return -EMSGSIZE;
    if (!w->started) {
        rc = build_head(w, NULL, 0, 0);
    } else {
        w->c->out.len = 0;
    }
    w->bytes += n;
    if (rc == 0)
        rc = add_body(w, data, n);
    if (rc < 0)
        return rc;
    return send_out(w);
}

int cio_http_writer_end(cio_http_writer *w)
{
    if (w->ended)
        return 0;
    if (w->failed)
        return -EPIPE;
    int rc = 0;
    if (!w->started) {
        if (w->length < 0 && !w->head_only)
            w->length = 0;
        rc = build_head(w, NULL, 0, 0);
    } else {
        w->c->out.len = 0;
    }
    if (rc == 0 && w->chunked)
        rc = cio__hbuf_add(&w->c->out, "0\r\n\r\n", 5);
    w->ended = true;
    if (rc < 0)
        return rc;
    rc = send_out(w);
    if (rc == 0 && w->length >= 0 && !w->head_only && !w->no_body &&
        w->bytes < (uint64_t)w->length) {
        w->failed = true;
        w->c->keep_alive = false;
        rc = -EPIPE;
    }
    return rc;
}

/* cio_http_send's head into c->out, with room for `len` body bytes:
 * copied from the server's cache when `cached` (the status, Content-Type,
 * length and absence of other headers match) and the connection handling
 * and second match too; else built, then cached. */
static int send_head(cio_http_writer *w, const char *ctype, size_t ctlen,
                     size_t len, bool cached)
{
    hconn *c = w->c;
    cio__http_head_cache *hc = cio__http_server_head_cache(c->hs);
    int64_t sec = cio__http_date_sec();
    if (cached) {
        start_head(w);
        if (hc->conn == conn_mode(c) && hc->sec == sec) {
            size_t need = hc->len + (w->head_only || w->no_body ? 0 : len);
            hbuf *b = &c->out;
            b->len = 0;
            if (need < hc->len ||
                (b->cap <= need && cio__hbuf_reserve(b, need) < 0))
                return -ENOMEM;
            memcpy(b->p, hc->head, hc->len);
            b->len = hc->len;
            return 0;
        }
        ctlen = strlen(ctype); /* equal to the cached value: checked */
    }
    int rc = build_head(w, ctype, ctlen, len);
    if (rc < 0 || ctype == NULL || w->hdrs.len != 0 ||
        ctlen >= sizeof hc->ctype || c->out.len > sizeof hc->head)
        return rc;
    memcpy(hc->head, c->out.p, c->out.len);
    hc->len = c->out.len;
    memcpy(hc->ctype, ctype, ctlen + 1);
    hc->sec = sec;
    hc->status = w->status;
    hc->conn = conn_mode(c);
    hc->length = w->length;
    return 0;
}

int cio_http_send(cio_http_writer *w, int status, const char *content_type,
                  const void *body, size_t len)
{
    /* cio_http_writer_status, _header and _length in one: the checks are
     * theirs (Content-Type is a valid name that the server does not own,
     * so only its value needs a look, and none when it equals the cached
     * head's), and the Content-Type line goes straight into the head
     * instead of through w->hdrs. */
    if (w->started)
        return -EALREADY;
    if (status < 200 || status > 999 || (int64_t)len < 0)
        return -EINVAL;
    cio__http_head_cache *hc = cio__http_server_head_cache(w->c->hs);
    bool hit = hc->len != 0 && w->hdrs.len == 0 && hc->status == status &&
               hc->length == (int64_t)len && content_type != NULL &&
               strncmp(content_type, hc->ctype, sizeof hc->ctype) == 0;
    ssize_t ctlen = 0;
    if (!hit && content_type != NULL &&
        (ctlen = cio__http_value_len(content_type)) < 0)
        return -EINVAL;
    w->status = status;
    w->length = (int64_t)len;
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    rc = send_head(w, content_type, (size_t)ctlen, len, hit);
    if (rc == 0)
        rc = add_body(w, body, len);
    w->bytes = len;
    w->ended = true;
    if (rc < 0)
        return rc;
    return send_out(w);
}
