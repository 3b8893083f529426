/* The HTTP/1.1 server: one task per connection, requests parsed by llhttp
 * (strict: no lenient flags) straight out of the stream's read buffer.
 *
 * The parser pauses at the end of every head and every message, so a
 * pipelined request is not looked at before the previous response went
 * out, and a body is parsed only as fast as the handler reads it. */
#include <strings.h>
#include <sys/socket.h>

#include <llhttp.h>

#include "http_int.h"
#include "server_int.h"
#ifdef CIO_HAVE_OPENSSL
#include "cio/tls.h"
#endif

#define DEF_MAX_HEAD ((size_t)16 * 1024)
#define DEF_MAX_HEADERS 100
#define DEF_MAX_BODY ((size_t)8 * 1024 * 1024)
#define DEF_IDLE (60 * CIO_SEC)
#define DEF_HEAD (10 * CIO_SEC)
#define DEF_BODY (30 * CIO_SEC)
#define DEF_WRITE (30 * CIO_SEC)
/* The stream's write buffer: a response waits for room only above it. */
#define HIGH_WATER ((size_t)64 * 1024)
#define LOW_WATER ((size_t)16 * 1024)
/* Unread request body discarded to keep a connection alive, at most. */
#define DISCARD_MAX ((uint64_t)256 * 1024)

struct cio_http_server {
    cio_server *srv;
    cio_http_handler fn;
    void *arg;
    cio_http_server_opts o;
    char *server_name;
    bool closing;
    hconn *conns; /* every live connection, for shutdown */
    uint64_t requests;
    cio_task *reaper; /* ends keep-alive waits past idle_timeout */
    int64_t tick;
    cio__http_head_cache head;
};

/* ---- llhttp callbacks ---------------------------------------------------- */

static int fail(hconn *c, int status)
{
    if (c->perr == 0)
        c->perr = status;
    return -1;
}

static int on_message_begin(llhttp_t *p)
{
    hconn *c = p->data;
    c->url.len = 0;
    cio__hlist_reset(&c->hdr);
    c->head_bytes = 0;
    c->head_done = c->msg_done = false;
    c->body_total = 0;
    return 0;
}

static int count_head(hconn *c, size_t n, int status)
{
    c->head_bytes += n;
    if (c->head_bytes > c->hs->o.max_head)
        return fail(c, status);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    hconn *c = p->data;
    if (count_head(c, n, 414) < 0 || cio__hbuf_add(&c->url, at, n) < 0)
        return fail(c, 500);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    hconn *c = p->data;
    if (count_head(c, n, 431) < 0)
        return -1;
    /* llhttp lets "Name :" through; RFC 9112 5.1 says reject. */
    if (cio__http_token_len(at, n) != n)
        return fail(c, 400);
    size_t before = c->hdr.n;
    if (cio__hlist_piece(&c->hdr, false, at, n) < 0)
        return fail(c, 500);
    if (c->hdr.n != before && c->hdr.n > c->hs->o.max_headers)
        return fail(c, 431);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    hconn *c = p->data;
    if (count_head(c, n, 431) < 0)
        return -1;
    if (cio__hlist_piece(&c->hdr, true, at, n) < 0)
        return fail(c, 500);
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    hconn *c = p->data;
    if (cio__hlist_end_piece(&c->hdr) < 0)
        return fail(c, 500);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    hconn *c = p->data;
    c->head_done = true;
    /* A request without body (the common case) runs on to its end in
     * the same llhttp_execute, which pauses there instead: one call per
     * request. The flags prepare() reads stay set until the parser
     * resumes on the next message. Anything else pauses here, so that
     * its body is parsed only as the handler reads it. */
    if (!p->upgrade && p->content_length == 0 &&
        !(p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)))
        return 0;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    hconn *c = p->data;
    c->body_total += n;
    if (c->body_total > c->hs->o.max_body)
        return fail(c, 413);
    if (cio__hbuf_add(&c->body, at, n) < 0)
        return fail(c, 500);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    hconn *c = p->data;
    c->msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- Feeding the parser -------------------------------------------------- */

static int parse_error_status(llhttp_errno_t e)
{
    switch (e) {
    case HPE_INVALID_VERSION:
        return 505;
    case HPE_INVALID_METHOD:
        return 501;
    default:
        return 400;
    }
}

/* Line ends in the head, which llhttp 8 takes too liberally: a bare LF
 * as a line end, and a line starting with a space or tab (obsolete line
 * folding, which it joins to the value before). A front end that reads
 * them otherwise would see different messages, so both are refused (RFC
 * 9112 2.2 and 5.2 allow that). The head arrives in pieces: c->last
 * carries the previous byte over. */
static bool head_bytes_ok(hconn *c, const char *p, size_t n)
{
    if (n == 0)
        return true;
    if (c->last == '\n' && (p[0] == ' ' || p[0] == '\t'))
        return false;
    const char *e = p + n;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(e - q))); q++) {
        if ((q > p ? q[-1] : c->last) != '\r')
            return false;
        if (q + 1 < e && (q[1] == ' ' || q[1] == '\t'))
            return false;
    }
    c->last = p[n - 1];
    return true;
}

/* Run `n` bytes the stream has buffered at `data` through the parser, up
 * to its next pause. 0, or CIO_EHTTP with c->perr set for a bad
 * message. */
static int parse(hconn *c, const void *data, size_t n)
{
    bool in_head = !c->head_done;
    llhttp_errno_t e = llhttp_execute(&c->p, data, n);
    size_t used = n;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&c->p) - (const char *)data);
        if (e == HPE_PAUSED_UPGRADE) {
            /* Upgrades are not served: the message is over and what
             * follows is not HTTP. */
            c->msg_done = c->upgraded = true;
            c->keep_alive = false;
        } else {
            llhttp_resume(&c->p);
        }
    } else if (e != HPE_OK) {
        if (c->perr == 0)
            c->perr = parse_error_status(e);
        return CIO_EHTTP;
    }
    if (in_head && !head_bytes_ok(c, data, used)) {
        c->perr = 400;
        return CIO_EHTTP;
    }
    cio_stream_consume(c->s, used);
    return 0;
}

/* Parse what the stream has buffered, waiting for at least one byte. 0;
 * CIO_EOF when the peer closed; CIO_EHTTP with c->perr set for a bad
 * message; a stream error. */
static int feed(hconn *c)
{
    const void *data;
    ssize_t n = cio_stream_peek(c->s, &data, 1);
    if (n < 0)
        return (int)n;
    if (n == 0)
        return CIO_EOF;
    return parse(c, data, (size_t)n);
}

/* Let the parser run its steps that need no input (the end of a message
 * without body right after its head). */
static void feed_empty(hconn *c)
{
    if (c->upgraded || c->msg_done)
        return;
    llhttp_errno_t e = llhttp_execute(&c->p, "", 0);
    if (e == HPE_PAUSED) {
        llhttp_resume(&c->p);
    } else if (e == HPE_PAUSED_UPGRADE) {
        /* Upgrades are not served: answer this request, then close,
         * since what follows is not HTTP. */
        c->msg_done = c->upgraded = true;
        c->keep_alive = false;
    }
}

/* Run `op` on `c` under a scope that expires `timeout` ns from now;
 * -ETIMEDOUT when that deadline (and not an outer one) ended it. */
static int timed(hconn *c, int (*op)(hconn *), int64_t timeout,
                 cio_scope **slot)
{
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(timeout), 0);
    if (rc < 0)
        return rc;
    if (slot)
        *slot = &sc;
    rc = op(c);
    if (slot)
        *slot = NULL;
    int sx = cio_scope_exit(&sc);
    if (rc == -ECANCELED && sx == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    return rc;
}

static int read_head_op(hconn *c)
{
    while (!c->head_done) {
        int rc = feed(c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cio__http_conn_feed_body(hconn *c)
{
    return timed(c, feed, c->hs->o.body_timeout, NULL);
}

/* ---- Responses ----------------------------------------------------------- */

/* A complete small response for errors found before any handler. */
static void send_error(hconn *c, int status)
{
    hbuf *b = &c->out;
    b->len = 0;
    const char *reason = cio_http_reason(status);
    cio__hbuf_addf(b,
                   "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain"
                   "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n"
                   "%s\n",
                   status, reason, cio__http_date(), strlen(reason) + 1,
                   reason);
    if (b->p != NULL && cio_stream_write(c->s, b->p, b->len) == 0) {
        cio_scope sc;
        cio_scope_enter(&sc, cio_deadline_after(c->hs->o.write_timeout), 0);
        cio_stream_flush(c->s);
        cio_scope_exit(&sc);
    }
    c->hs->requests++;
    c->keep_alive = false;
}

static int flush_op(hconn *c)
{
    return cio_stream_drain(c->s);
}

int cio__http_conn_flush(hconn *c)
{
    return timed(c, flush_op, c->hs->o.write_timeout, NULL);
}

int cio__http_conn_send(hconn *c, const void *p, size_t n)
{
    int rc = cio_stream_write(c->s, p, n);
    if (rc < 0)
        return rc;
    /* Below the high-water mark a drain would not wait: skip it. */
    if (cio_stream_write_pending(c->s) <= HIGH_WATER)
        return 0;
    return timed(c, flush_op, c->hs->o.write_timeout, NULL);
}

/* ---- Requests ------------------------------------------------------------ */

/* Check the head and fill in the request; returns 0 or an error status. */
static int prepare(hconn *c, cio_http_req *r)
{
    llhttp_t *p = &c->p;
    r->version = p->http_major * 10 + p->http_minor;
    if (p->http_major != 1 || p->http_minor > 1)
        return 505;
    r->method = llhttp_method_name((llhttp_method_t)p->method);
    if (p->method == HTTP_CONNECT || c->url.len == 0)
        return p->method == HTTP_CONNECT ? 501 : 400;
    /* One pass over the headers for the ones that frame the request. */
    size_t hosts = 0, tes = 0;
    const char *expect = NULL, *te = NULL;
    for (size_t i = 0; i < c->hdr.n; i++) {
        switch (cio__hlist_name_len(&c->hdr, i)) {
        case 4:
            hosts += cio__hlist_name_is(&c->hdr, i, "host", 4);
            break;
        case 6:
            if (cio__hlist_name_is(&c->hdr, i, "expect", 6))
                expect = cio__hlist_value(&c->hdr, i);
            break;
        case 17:
            if (cio__hlist_name_is(&c->hdr, i, "transfer-encoding", 17)) {
                tes++;
                te = cio__hlist_value(&c->hdr, i);
            }
            break;
        }
    }
    if (hosts > 1 || (r->version == 11 && hosts == 0))
        return 400;
    if (expect != NULL) {
        if (!cio__http_ieq(expect, "100-continue"))
            return 417;
        r->expect_continue = r->version == 11;
    }
    /* A Transfer-Encoding other than one final "chunked" cannot frame a
     * request (RFC 9112 6.3); llhttp would fail only once the body is
     * read, after the handler started. */
    if (tes > 1 ||
        ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED)))
        return 400;
    if (te != NULL && (!cio__http_ieq(te, "chunked") || r->version == 10))
        return 400;
    r->clen = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    if (p->flags & F_CHUNKED)
        r->clen = -1;
    if (r->clen > 0 && (uint64_t)r->clen > c->hs->o.max_body)
        return 413;
    /* The target: origin-form, or absolute-form (drop scheme and host). */
    char *t = c->url.p;
    if (t[0] != '/' && (strncasecmp(t, "http://", 7) == 0 ||
                        strncasecmp(t, "https://", 8) == 0)) {
        char *s = strstr(t, "://") + 3;
        t = s + strcspn(s, "/?");
        if (*t != '/')
            return 400;
    } else if (*t != '/') {
        return strcmp(t, "*") == 0 && p->method == HTTP_OPTIONS ? 0 : 400;
    }
    r->target = t;
    size_t plen = strcspn(t, "?#");
    r->query = t[plen] == '?' ? t + plen + 1 : "";
    if (cio__hbuf_reserve(&r->pathbuf, plen + 1) < 0)
        return 500;
    ssize_t dl = cio__http_pct_decode(t, plen, r->pathbuf.p);
    if (dl < 0)
        return 400;
    r->pathbuf.len = (size_t)dl;
    r->path = r->pathbuf.p;
    return 0;
}

/* Field by field: the buffers are kept, and poff (most of the struct) is
 * read only below nparams. */
static void req_reset(cio_http_req *r, hconn *c)
{
    r->c = c;
    r->method = "";
    r->target = r->query = r->path = "";
    r->pathbuf.len = 0;
    r->version = 0;
    r->clen = 0;
    r->expect_continue = r->continue_sent = false;
    r->body_err = 0;
    r->whole.len = 0;
    r->params.len = 0;
    r->nparams = 0;
}

static void writer_reset(cio_http_writer *w, hconn *c, bool head_only)
{
    hbuf hdrs = w->hdrs;
    memset(w, 0, sizeof *w);
    w->c = c;
    w->hdrs = hdrs;
    w->hdrs.len = 0;
    w->status = 200;
    w->length = -1;
    w->head_only = head_only;
}

/* Drop what the handler left of the body so that the connection can carry
 * the next request; false when that is not worth it or not possible. */
static bool discard_body(hconn *c, cio_http_req *r)
{
    if (c->msg_done)
        return true;
    if (r->body_err || (r->expect_continue && !r->continue_sent))
        return false;
    if (r->clen > 0 && (uint64_t)r->clen > DISCARD_MAX)
        return false;
    char buf[4096];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = cio_http_req_read(r, buf, sizeof buf);
        if (n <= 0)
            return n == 0;
        total += (uint64_t)n;
        if (total > DISCARD_MAX)
            return false;
    }
}

static int status_for(int err)
{
    switch (err) {
    case -EMSGSIZE:
        return 413;
    case -ETIMEDOUT:
        return 408;
    case CIO_EHTTP:
        return 400;
    default:
        return 500;
    }
}

/* Run the handler for one request and finish its response. */
static void serve_one(hconn *c, cio_http_req *r, cio_http_writer *w)
{
    cio_http_server *hs = c->hs;
    int rc = hs->fn(r, w, hs->arg);
    if (rc < 0 && rc != -ECANCELED) {
        cio__report("http: %s %s: handler failed: %s", r->method, r->target,
                    cio_err_name(rc));
        if (!w->started) {
            int st = status_for(r->body_err ? r->body_err : rc);
            w->hdrs.len = 0;
            w->length = -1;
            w->close = true;
            cio_http_send(w, st, "text/plain", cio_http_reason(st),
                          strlen(cio_http_reason(st)));
        } else if (!w->ended) {
            /* Leave the body unfinished: the client must see a cut
             * message (no last chunk, or short of Content-Length). */
            w->ended = w->failed = true;
        }
        c->keep_alive = false;
    } else if (rc == -ECANCELED) {
        c->keep_alive = false;
        return;
    }
    if (c->keep_alive && !w->close && !discard_body(c, r))
        c->keep_alive = false;
    if (!w->ended && cio_http_writer_end(w) < 0)
        c->keep_alive = false;
    if (w->close || w->failed)
        c->keep_alive = false;
    hs->requests++;
}

/* llhttp_should_keep_alive for a request, which never reads to the end
 * of the stream: HTTP/1.1 unless "Connection: close", HTTP/1.0 only with
 * "Connection: keep-alive". An upgrade request is answered as a plain
 * one, then the connection closes: cio serves no other protocol on it. */
static bool keep_alive(const llhttp_t *p)
{
    if (p->upgrade)
        return false;
    if (p->http_major > 0 && p->http_minor > 0)
        return !(p->flags & F_CONNECTION_CLOSE);
    return p->flags & F_CONNECTION_KEEP_ALIVE;
}

/* One request on `c`: 0 to go on with the next, < 0 to close. */
static int one_request(hconn *c, cio_http_req *r, cio_http_writer *w)
{
    cio_http_server *hs = c->hs;
    c->perr = 0;
    c->body.len = c->body_off = 0;
    c->head_done = c->msg_done = false;
    c->last = '\0';
    if (cio_stream_buffered(c->s) == 0) {
        /* No timer (nor scope) per wait: the reaper cancels the
         * connection's scope once it has been idle for idle_timeout. */
        c->idle_deadline = cio_now() + hs->o.idle_timeout;
        c->idle = &c->scope;
    }
    const void *data;
    ssize_t n = cio_stream_peek(c->s, &data, 1);
    c->idle = NULL;
    if (n <= 0 || hs->closing)
        return n < 0 ? (int)n : n == 0 ? CIO_EOF : CIO_ECLOSING;
    if (c->reaped) {
        /* The reaper ended the wait as a request came in: that request
         * is served, in a fresh scope. */
        c->reaped = false;
        cio_scope_exit(&c->scope);
        int rc = cio_scope_enter(&c->scope, CIO_NEVER, 0);
        if (rc < 0)
            return rc;
    }
    /* Usually the whole head is in already: parse it before arming the
     * head deadline, which only a partial head needs. */
    int rc = parse(c, data, (size_t)n);
    if (rc == 0 && !c->head_done)
        rc = timed(c, read_head_op, hs->o.head_timeout, NULL);
    if (rc == -ETIMEDOUT || (rc < 0 && c->perr)) {
        send_error(c, rc == -ETIMEDOUT ? 408 : c->perr);
        return rc;
    }
    if (rc < 0)
        return rc;
    req_reset(r, c);
    c->keep_alive = keep_alive(&c->p);
    int st = prepare(c, r);
    if (st != 0) {
        send_error(c, st);
        return CIO_EHTTP;
    }
    feed_empty(c);
    writer_reset(w, c, c->p.method == HTTP_HEAD);
    c->w = w;
    serve_one(c, r, w);
    return c->keep_alive && !hs->closing ? 0 : CIO_ECLOSING;
}

static int serve_stream(cio_http_server *hs, cio_stream *s)
{
    hconn c = {.hs = hs, .s = s};
    socklen_t al = sizeof c.peer.u;
    if (getpeername(cio_stream_fd(s), &c.peer.u.sa, &al) == 0)
        c.peer.len = al;
    llhttp_init(&c.p, HTTP_REQUEST, &settings);
    c.p.data = &c;
    c.next = hs->conns;
    if (hs->conns)
        hs->conns->prev = &c;
    hs->conns = &c;
    cio_http_req r = {0};
    cio_http_writer w = {0};
    /* One scope for the connection's life, not one per keep-alive wait:
     * the reaper cancels it only while c.idle is set, to close. */
    int rc = cio_scope_enter(&c.scope, CIO_NEVER, 0);
    if (rc == 0) {
        do
            rc = one_request(&c, &r, &w);
        while (rc == 0);
        cio_scope_exit(&c.scope);
    }
    if (c.prev)
        c.prev->next = c.next;
    else
        hs->conns = c.next;
    if (c.next)
        c.next->prev = c.prev;
    cio__hbuf_free(&r.pathbuf);
    cio__hbuf_free(&r.whole);
    cio__hbuf_free(&r.params);
    cio__hbuf_free(&w.hdrs);
    cio__hbuf_free(&c.out);
    cio__hbuf_free(&c.url);
    cio__hbuf_free(&c.body);
    cio__hlist_free(&c.hdr);
    return rc == -ECANCELED ? rc : 0;
}

static int serve_conn(cio_stream *s, void *arg)
{
    cio_http_server *hs = arg;
    if (hs->o.tls == NULL)
        return serve_stream(hs, s);
#ifdef CIO_HAVE_OPENSSL
    cio_stream *ts;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(hs->o.head_timeout), 0);
    if (rc == 0) {
        rc = cio_tls_accept(&ts, s, hs->o.tls, NULL);
        cio_scope_exit(&sc);
    }
    if (rc < 0)
        return rc == -ECANCELED ? rc : 0; /* a failed handshake */
    rc = serve_stream(hs, ts);
    cio_scope sh;
    cio_scope_enter(&sh, cio_deadline_after(CIO_SEC), CIO_SCOPE_SHIELD);
    cio_stream_close(ts);
    cio_scope_exit(&sh);
    return rc;
#else
    return -EINVAL;
#endif
}

/* ---- The server ---------------------------------------------------------- */

/* Keep-alive waits carry no timer of their own (a request would pay a
 * timer insertion and removal): this task wakes every `tick` (an eighth
 * of idle_timeout, 1 ms to 1 s) and cancels the waits that outlived
 * idle_timeout. An idle connection is thus closed up to a tick late. */
static int reaper(void *arg)
{
    cio_http_server *hs = arg;
    for (;;) {
        int rc = cio_sleep(hs->tick);
        if (rc < 0)
            return rc == -ECANCELED ? 0 : rc;
        int64_t now = cio_now();
        for (hconn *c = hs->conns; c; c = c->next)
            if (c->idle && c->idle_deadline <= now) {
                c->reaped = true;
                cio_scope_cancel(c->idle);
            }
    }
}

int cio_http_server_start(cio_http_server **out, const cio_addr *a,
                          cio_http_handler fn, void *arg,
                          const cio_http_server_opts *opts)
{
    if (out == NULL || a == NULL || fn == NULL)
        return -EINVAL;
#ifndef CIO_HAVE_OPENSSL
    if (opts && opts->tls)
        return -EINVAL;
#endif
    cio_http_server *hs = cio__calloc(1, sizeof *hs);
    if (hs == NULL)
        return -ENOMEM;
    if (opts)
        hs->o = *opts;
    cio_http_server_opts *o = &hs->o;
    o->max_head = o->max_head ? o->max_head : DEF_MAX_HEAD;
    o->max_headers = o->max_headers ? o->max_headers : DEF_MAX_HEADERS;
    o->max_body = o->max_body ? o->max_body : DEF_MAX_BODY;
    o->idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : DEF_IDLE;
    o->head_timeout = o->head_timeout > 0 ? o->head_timeout : DEF_HEAD;
    o->body_timeout = o->body_timeout > 0 ? o->body_timeout : DEF_BODY;
    o->write_timeout = o->write_timeout > 0 ? o->write_timeout : DEF_WRITE;
    hs->fn = fn;
    hs->arg = arg;
    int rc = 0;
    if (o->server != NULL) {
        if (cio_http_header_check("Server", o->server) < 0) {
            rc = -EINVAL;
            goto fail;
        }
        hs->server_name = cio__strdup(o->server);
        if (hs->server_name == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        o->server = hs->server_name;
    }
    cio_server_opts so = {.backlog = o->backlog,
                          .max_conns = o->max_conns,
                          .listen_flags = o->listen_flags};
    so.stream.limit = o->max_head > 65536 ? o->max_head : 65536;
    so.stream.high_water = HIGH_WATER;
    so.stream.low_water = LOW_WATER;
    hs->tick = o->idle_timeout / 8;
    hs->tick = hs->tick < CIO_MSEC  ? CIO_MSEC
               : hs->tick > CIO_SEC ? CIO_SEC
                                    : hs->tick;
    rc = cio_server_start(&hs->srv, a, serve_conn, hs, &so);
    if (rc < 0)
        goto fail;
    rc = cio_spawn(&hs->reaper, reaper, hs);
    if (rc < 0) {
        cio_server_close(hs->srv, 0);
        goto fail;
    }
    cio_task_set_name(hs->reaper, "http-idle-reaper");
    *out = hs;
    return 0;
fail:
    cio__free(hs->server_name);
    cio__free(hs);
    return rc;
}

const cio_addr *cio_http_server_addr(const cio_http_server *s)
{
    return cio_server_addr(s->srv);
}

uint64_t cio_http_server_requests(const cio_http_server *s)
{
    return s->requests;
}

const char *cio__http_server_name(const cio_http_server *s)
{
    return s->server_name;
}

bool cio__http_server_closing(const cio_http_server *s)
{
    return s->closing;
}

cio__http_head_cache *cio__http_server_head_cache(cio_http_server *s)
{
    return &s->head;
}

const cio_http_server_opts *cio__http_server_opts(const cio_http_server *s)
{
    return &s->o;
}

int cio_http_server_close(cio_http_server *s, int64_t grace)
{
    if (s == NULL)
        return 0;
    s->closing = true;
    /* The reaper ends at once when cancelled; joined under a shield so
     * that a cancelled caller still frees it. */
    cio_task_cancel(s->reaper);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    cio_task_join(s->reaper);
    cio_scope_exit(&sh);
    cio_task_free(s->reaper);
    /* Idle keep-alive connections go at once; busy ones finish their
     * request and see `closing` before waiting for another. */
    for (hconn *c = s->conns; c; c = c->next)
        if (c->idle)
            cio_scope_cancel(c->idle);
    int rc = cio_server_close(s->srv, grace);
    cio__free(s->server_name);
    cio__free(s);
    return rc;
}
