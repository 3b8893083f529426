/* The HTTP client against the cio server, Python's http.server and raw
 * peers on loopback: pooling, redirects, timeouts, gzip, streaming,
 * retries in the fetch helper, HTTPS. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_http_util.h"

#ifdef CIO_HAVE_OPENSSL
#include <cio/tls.h>

#include "tls_util.h"
#endif

/* ---- The server side ----------------------------------------------------- */

typedef struct srv {
    cio_http_router *rt;
    cio_http_server *s;
    int port;
    char base[64];
    int flaky[16];
    int inflight, max_inflight;
} srv;

static int h_hello(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    return cio_http_send(w, 200, "text/plain", "hello", 5);
}

static int h_redirect(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    int n = atoi(cio_http_req_param(r, "n"));
    if (n == 0)
        return cio_http_send(w, 200, "text/plain", "done", 4);
    char loc[32];
    snprintf(loc, sizeof loc, n % 2 ? "%d" : "/redirect/%d", n - 1);
    cio_http_writer_header(w, "Location", loc);
    return cio_http_send(w, 302, NULL, "", 0);
}

static int h_loop(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    cio_http_writer_header(w, "Location", "/loop");
    return cio_http_send(w, 301, NULL, "", 0);
}

static int h_to(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    const char *code = cio_http_req_param(r, "code");
    cio_http_writer_header(w, "Location", "/method");
    return cio_http_send(w, atoi(code), NULL, "", 0);
}

/* Redirect to the absolute URL in the query string. */
static int h_away(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    cio_http_writer_header(w, "Location", cio_http_req_query(r));
    return cio_http_send(w, 302, NULL, "", 0);
}

static int h_method(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    const char *d;
    size_t len;
    int rc = cio_http_req_body(r, &d, &len, 0);
    if (rc < 0)
        return rc;
    char b[128];
    int n =
        snprintf(b, sizeof b, "%s %zu %.40s", cio_http_req_method(r), len, d);
    return cio_http_send(w, 200, "text/plain", b, (size_t)n);
}

static int gzip_buf(const char *in, size_t n, char *out, size_t size)
{
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)size;
    int zr = deflate(&z, Z_FINISH);
    int len = (int)(size - z.avail_out);
    deflateEnd(&z);
    return zr == Z_STREAM_END ? len : -1;
}

static int h_gzip(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    static char plain[100000], z[4096];
    memset(plain, 'a', sizeof plain);
    memcpy(plain, "start", 5);
    int n = gzip_buf(plain, sizeof plain, z, sizeof z);
    if (n < 0)
        return -EIO;
    cio_http_writer_header(w, "Content-Encoding", "gzip");
    /* In two writes, chunked: the client inflates across pieces. */
    int rc = cio_http_writer_write(w, z, (size_t)n / 2);
    if (rc == 0)
        rc = cio_http_writer_write(w, z + n / 2, (size_t)(n - n / 2));
    return rc;
}

static int h_chunks(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    for (int i = 0; i < 10; i++) {
        char b[16];
        int n = snprintf(b, sizeof b, "<%d>", i);
        int rc = cio_http_writer_write(w, b, (size_t)n);
        if (rc == 0)
            rc = cio_sleep(2 * CIO_MSEC);
        if (rc < 0)
            return rc;
    }
    return cio_http_writer_end(w);
}

/* Set when /slowhead has a request in hand. */
static cio_event slowhead_started;

static int h_slowhead(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    cio_event_set(&slowhead_started);
    int rc = cio_sleep(2 * CIO_SEC);
    if (rc < 0)
        return rc;
    return cio_http_send(w, 200, NULL, "late", 4);
}

static int h_slowbody(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    cio_http_writer_length(w, 10);
    int rc = cio_http_writer_write(w, "abc", 3);
    if (rc == 0)
        rc = cio_sleep(2 * CIO_SEC);
    return rc;
}

static int h_flaky(cio_http_req *r, cio_http_writer *w, void *arg)
{
    srv *s = arg;
    int id = atoi(cio_http_req_param(r, "id"));
    if (id < 0 || id >= 16)
        return cio_http_send(w, 404, NULL, "", 0);
    if (s->flaky[id]++ < 2)
        return cio_http_send(w, 503, NULL, "busy", 4);
    char b[16];
    int n = snprintf(b, sizeof b, "id=%d", id);
    return cio_http_send(w, 200, NULL, b, (size_t)n);
}

static int h_inflight(cio_http_req *r, cio_http_writer *w, void *arg)
{
    srv *s = arg;
    s->inflight++;
    if (s->inflight > s->max_inflight)
        s->max_inflight = s->inflight;
    int rc = cio_sleep(20 * CIO_MSEC);
    s->inflight--;
    if (rc < 0)
        return rc;
    const char *n = cio_http_req_param(r, "n");
    return cio_http_send(w, 200, NULL, n, strlen(n));
}

static int h_close(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    cio_http_writer_close(w);
    return cio_http_send(w, 200, NULL, "bye", 3);
}

static int srv_start(srv *s, const cio_http_server_opts *o)
{
    memset(s, 0, sizeof *s);
    int rc = cio_http_router_new(&s->rt);
    if (rc < 0)
        return rc;
    cio_http_router_add(s->rt, "GET", "/hello", h_hello, NULL);
    cio_http_router_add(s->rt, "GET", "/redirect/{n}", h_redirect, NULL);
    cio_http_router_add(s->rt, "GET", "/loop", h_loop, NULL);
    cio_http_router_add(s->rt, "*", "/to/{code}", h_to, NULL);
    cio_http_router_add(s->rt, "*", "/method", h_method, NULL);
    cio_http_router_add(s->rt, "GET", "/gzip", h_gzip, NULL);
    cio_http_router_add(s->rt, "GET", "/chunks", h_chunks, NULL);
    cio_http_router_add(s->rt, "GET", "/slowhead", h_slowhead, NULL);
    cio_http_router_add(s->rt, "GET", "/slowbody", h_slowbody, NULL);
    cio_http_router_add(s->rt, "GET", "/flaky/{id}", h_flaky, s);
    cio_http_router_add(s->rt, "GET", "/inflight/{n}", h_inflight, s);
    cio_http_router_add(s->rt, "GET", "/close", h_close, NULL);
    cio_http_router_add(s->rt, "GET", "/away", h_away, NULL);
    rc = hu_start(&s->s, cio_http_router_handler, s->rt, o);
    if (rc < 0) {
        cio_http_router_free(s->rt);
        return rc;
    }
    s->port = hu_port(s->s);
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    return 0;
}

static void srv_stop(srv *s)
{
    cio_http_server_close(s->s, CIO_SEC);
    cio_http_router_free(s->rt);
}

static int get(cio_http_client *c, const srv *s, const char *path,
               cio_http_response **out)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    return cio_http_get(c, out, url);
}

static const char *body_of(cio_http_response *r)
{
    return cio_http_response_body(r, NULL);
}

/* ---- Tests --------------------------------------------------------------- */

TEST_REALTIME(http_client_get_and_keepalive_reuse)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    for (int i = 0; i < 5; i++) {
        cio_http_response *r;
        ASSERT_OK(get(c, &s, "/hello", &r));
        ASSERT_EQ(200, cio_http_response_status(r));
        ASSERT_STR_EQ("hello", body_of(r));
        ASSERT_STR_EQ("5", cio_http_response_header(r, "content-length"));
        cio_http_response_free(r);
    }
    ASSERT_EQ(1, cio_http_client_connects(c));
    ASSERT_EQ(1, cio_http_client_idle(c));
    /* Connection: close from the server: not reused. */
    cio_http_response *r;
    ASSERT_OK(get(c, &s, "/close", &r));
    cio_http_response_free(r);
    ASSERT_EQ(0, cio_http_client_idle(c));
    ASSERT_OK(get(c, &s, "/hello", &r));
    cio_http_response_free(r);
    ASSERT_EQ(2, cio_http_client_connects(c));
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_client_host_by_name)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%d/hello", s.port);
    cio_http_response *r;
    ASSERT_OK(cio_http_get(c, &r, url));
    ASSERT_STR_EQ("hello", body_of(r));
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_client_replaces_connection_closed_by_server)
{
    srv s;
    cio_http_server_opts o = {.idle_timeout = 30 * CIO_MSEC};
    ASSERT_OK(srv_start(&s, &o));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    cio_http_response *r;
    ASSERT_OK(get(c, &s, "/hello", &r));
    cio_http_response_free(r);
    ASSERT_OK(cio_sleep(100 * CIO_MSEC)); /* the server drops it */
    ASSERT_OK(get(c, &s, "/hello", &r));
    ASSERT_STR_EQ("hello", body_of(r));
    cio_http_response_free(r);
    ASSERT_EQ(2, cio_http_client_connects(c));
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_client_redirects)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    cio_http_response *r;
    ASSERT_OK(get(c, &s, "/redirect/5", &r));
    ASSERT_EQ(200, cio_http_response_status(r));
    ASSERT_STR_EQ("done", body_of(r));
    char want[128];
    snprintf(want, sizeof want, "%s/redirect/0", s.base);
    ASSERT_STR_EQ(want, cio_http_response_url(r));
    cio_http_response_free(r);
    ASSERT_EQ(CIO_EREDIRECTS, get(c, &s, "/loop", &r));
    /* 303 after POST: GET without the body; 307 keeps both. */
    char url[128];
    snprintf(url, sizeof url, "%s/to/303", s.base);
    ASSERT_OK(cio_http_post(c, &r, url, "text/plain", "payload", 7));
    ASSERT_STR_EQ("GET 0 ", body_of(r));
    cio_http_response_free(r);
    snprintf(url, sizeof url, "%s/to/307", s.base);
    ASSERT_OK(cio_http_post(c, &r, url, "text/plain", "payload", 7));
    ASSERT_STR_EQ("POST 7 payload", body_of(r));
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    /* Not following: the redirect itself comes back. */
    cio_http_client_opts o = {.max_redirects = -1};
    ASSERT_OK(cio_http_client_new(&c, &o));
    ASSERT_OK(get(c, &s, "/loop", &r));
    ASSERT_EQ(301, cio_http_response_status(r));
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    /* A limit of 2. */
    o.max_redirects = 2;
    ASSERT_OK(cio_http_client_new(&c, &o));
    ASSERT_EQ(CIO_EREDIRECTS, get(c, &s, "/redirect/3", &r));
    ASSERT_OK(get(c, &s, "/redirect/2", &r));
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_client_gzip_and_streaming)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    cio_http_response *r;
    ASSERT_OK(get(c, &s, "/gzip", &r));
    size_t len;
    const char *b = cio_http_response_body(r, &len);
    ASSERT_EQ(100000, len);
    ASSERT_TRUE(memcmp(b, "startaaa", 8) == 0 && b[99999] == 'a');
    cio_http_response_free(r);
    /* Streamed, read in small pieces. */
    char url[128];
    snprintf(url, sizeof url, "%s/gzip", s.base);
    cio_http_req_opts o = {.stream = true};
    ASSERT_OK(cio_http_request(c, &r, "GET", url, &o));
    size_t total = 0;
    char buf[777];
    ssize_t n;
    while ((n = cio_http_response_read(r, buf, sizeof buf)) > 0)
        total += (size_t)n;
    ASSERT_EQ(0, n);
    ASSERT_EQ(100000, total);
    cio_http_response_free(r);
    snprintf(url, sizeof url, "%s/chunks", s.base);
    ASSERT_OK(cio_http_request(c, &r, "GET", url, &o));
    char all[256] = "";
    total = 0;
    while ((n = cio_http_response_read(r, all + total,
                                       sizeof all - 1 - total)) > 0)
        total += (size_t)n;
    ASSERT_STR_EQ("<0><1><2><3><4><5><6><7><8><9>", all);
    cio_http_response_free(r);
    /* Abandoning a streamed body closes that connection. */
    ASSERT_EQ(1, cio_http_client_idle(c));
    ASSERT_OK(cio_http_request(c, &r, "GET", url, &o));
    cio_http_response_free(r);
    ASSERT_EQ(0, cio_http_client_idle(c));
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

typedef struct upload {
    int left;
} upload;

static ssize_t upload_fn(void *arg, void *buf, size_t n)
{
    upload *u = arg;
    if (u->left == 0)
        return 0;
    u->left--;
    int rc = cio_sleep(CIO_MSEC);
    if (rc < 0)
        return rc;
    size_t k = n < 1000 ? n : 1000;
    memset(buf, 'u', k);
    return (ssize_t)k;
}

TEST_REALTIME(http_client_streamed_upload)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    upload u = {5};
    char url[128];
    snprintf(url, sizeof url, "%s/method", s.base);
    cio_http_req_opts o = {.body_fn = upload_fn, .body_arg = &u};
    cio_http_response *r;
    ASSERT_OK(cio_http_request(c, &r, "PUT", url, &o));
    ASSERT_TRUE(strncmp(body_of(r), "PUT 5000 uuu", 12) == 0);
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_client_timeouts_per_phase)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client_opts o = {.head_timeout = 100 * CIO_MSEC,
                              .body_timeout = 100 * CIO_MSEC};
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, &o));
    cio_http_response *r;
    int64_t t0 = cio_now();
    ASSERT_EQ(-ETIMEDOUT, get(c, &s, "/slowhead", &r));
    ASSERT_EQ(-ETIMEDOUT, get(c, &s, "/slowbody", &r));
    ASSERT_TRUE(cio_now() - t0 < CIO_SEC);
    /* The overall timeout, per call. */
    char url[128];
    snprintf(url, sizeof url, "%s/slowhead", s.base);
    cio_http_req_opts ro = {.timeout = 50 * CIO_MSEC};
    ASSERT_EQ(-ETIMEDOUT, cio_http_request(c, &r, "GET", url, &ro));
    /* The caller's own scope is honoured as well. */
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(30 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, get(c, &s, "/slowhead", &r));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_http_client_idle(c));
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

typedef struct canc {
    cio_http_client *c;
    const srv *s;
} canc;

static int slow_get(void *arg)
{
    canc *k = arg;
    cio_http_response *r;
    int rc = get(k->c, k->s, "/slowhead", &r);
    if (rc == 0)
        cio_http_response_free(r);
    return rc;
}

TEST_REALTIME(http_client_cancel_cleans_up)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    canc k = {c, &s};
    cio_task *t;
    cio_event_init(&slowhead_started);
    ASSERT_OK(cio_spawn(&t, slow_get, &k));
    /* Cancel once the request is out: its connection is mid-exchange. */
    ASSERT_OK(cio_event_wait(&slowhead_started));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    /* The connection it held was discarded, not pooled. */
    ASSERT_EQ(0, cio_http_client_idle(c));
    cio_http_response *r;
    ASSERT_OK(get(c, &s, "/hello", &r));
    cio_http_response_free(r);
    ASSERT_EQ(2, cio_http_client_connects(c));
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_client_errors)
{
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    cio_http_response *r;
    ASSERT_EQ(-EINVAL, cio_http_get(c, &r, "not a url"));
    ASSERT_EQ(-EINVAL, cio_http_get(c, &r, "http://"));
    ASSERT_EQ(-EINVAL, cio_http_get(c, &r, "http://u:p@127.0.0.1/"));
    ASSERT_EQ(-EINVAL, cio_http_get(c, &r, "http://127.0.0.1:99999/"));
    ASSERT_EQ(-EINVAL, cio_http_get(c, &r, "http://127.0.0.1/a b"));
    ASSERT_EQ(-EPROTONOSUPPORT, cio_http_get(c, &r, "ftp://127.0.0.1/"));
    cio_http_header bad = {"X-A", "1\r\nX-Injected: 1"};
    cio_http_req_opts o = {.headers = &bad, .nheaders = 1};
    ASSERT_EQ(-EINVAL,
              cio_http_request(c, &r, "GET", "http://127.0.0.1:1/", &o));
    ASSERT_EQ(-EINVAL,
              cio_http_request(c, &r, "G T", "http://127.0.0.1/", NULL));
    /* Nothing listens on a port just released. */
    int fd;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    ASSERT_OK(cio_listen(&fd, &a, 1, 0));
    socklen_t al = sizeof a.u;
    getsockname(fd, &a.u.sa, &al);
    int port = ntohs(a.u.in.sin_port);
    cio_close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    ASSERT_EQ(-ECONNREFUSED, cio_http_get(c, &r, url));
    ASSERT_OK(cio_http_client_close(c));
    return 0;
}

/* A raw peer that answers every connection with a fixed reply. */
static int raw_reply(cio_stream *s, void *arg)
{
    char buf[1024];
    ssize_t n = cio_stream_readuntil(s, buf, sizeof buf, "\r\n\r\n", 4, NULL);
    if (n < 0)
        return 0;
    const char *reply = arg;
    cio_stream_write(s, reply, strlen(reply));
    return cio_stream_flush(s);
}

static int raw_get(const char *reply, cio_http_response **r)
{
    cio_server *s;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    int rc = cio_server_start(&s, &a, raw_reply, (void *)reply, NULL);
    if (rc < 0)
        return rc;
    cio_http_client *c;
    rc = cio_http_client_new(&c, NULL);
    if (rc == 0) {
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/",
                 cio_addr_port(cio_server_addr(s)));
        rc = cio_http_get(c, r, url);
        if (rc == 0) {
            rc = cio_http_response_status(*r);
            cio_http_response_free(*r);
        }
        cio_http_client_close(c);
    }
    cio_server_close(s, CIO_SEC);
    return rc;
}

TEST_REALTIME(http_client_malformed_responses)
{
    cio_http_response *r;
    ASSERT_EQ(CIO_EHTTP, raw_get("HTTP/1.1 200 OK\r\nContent-Length: x\r\n"
                                 "\r\n",
                                 &r));
    ASSERT_EQ(CIO_EHTTP, raw_get("HTTP/1.1 abc OK\r\n\r\n", &r));
    ASSERT_EQ(CIO_EHTTP, raw_get("garbage\r\n\r\n", &r));
    ASSERT_EQ(CIO_EHTTP, raw_get("HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                                 "chunked\r\n\r\nzz\r\n",
                                 &r));
    ASSERT_EQ(CIO_EOF, raw_get("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
                               "\r\nabc",
                               &r));
    ASSERT_EQ(CIO_EOF, raw_get("", &r));
    ASSERT_EQ(CIO_EHTTP, raw_get("HTTP/1.1 200 OK\r\nContent-Encoding: gzip"
                                 "\r\nContent-Length: 4\r\n\r\nnope",
                                 &r));
    /* A head above max_head (64 KiB). */
    static char big[80000];
    int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big + n, 'a', 70000);
    memcpy(big + n + 70000, "\r\n\r\n", 5);
    ASSERT_EQ(-EMSGSIZE, raw_get(big, &r));
    /* Interim 1xx responses are skipped; a body ended by close is fine. */
    ASSERT_EQ(200, raw_get("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"
                           "\r\nConnection: close\r\n\r\nuntil close",
                           &r));
    return 0;
}

/* ---- The fetch helper ---------------------------------------------------- */

TEST_REALTIME(http_fetch_all_retries_and_keeps_order)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    char urls[6][128];
    cio_http_fetch items[6];
    for (int i = 0; i < 6; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/flaky/%d", s.base, i);
        items[i] = (cio_http_fetch){.url = urls[i]};
    }
    snprintf(urls[5], sizeof urls[5], "%s/nothing-here", s.base);
    cio_http_fetch_opts o = {
        .concurrency = 3, .retries = 3, .backoff = 10 * CIO_MSEC};
    ASSERT_EQ(0, cio_http_fetch_all(c, items, 6, &o));
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "id=%d", i);
        ASSERT_EQ(0, items[i].result);
        ASSERT_EQ(200, items[i].status);
        ASSERT_EQ(3, items[i].attempts);
        ASSERT_STR_EQ(want, items[i].body);
    }
    ASSERT_EQ(404, items[5].status);
    ASSERT_EQ(1, items[5].attempts);
    cio_http_fetch_release(items, 6);
    /* Out of retries: the failure is reported per URL. */
    snprintf(urls[0], sizeof urls[0], "%s/flaky/9", s.base);
    items[0] = (cio_http_fetch){.url = urls[0]};
    o.retries = 1;
    ASSERT_EQ(1, cio_http_fetch_all(c, items, 1, &o));
    ASSERT_EQ(CIO_ESERVER, items[0].result);
    ASSERT_EQ(503, items[0].status);
    ASSERT_EQ(2, items[0].attempts);
    cio_http_fetch_release(items, 1);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_fetch_all_bounds_concurrency)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client_opts co = {.max_per_host = 16};
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, &co));
    enum { N = 20 };
    static char urls[N][128];
    cio_http_fetch items[N];
    for (int i = 0; i < N; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/inflight/%d", s.base, i);
        items[i] = (cio_http_fetch){.url = urls[i]};
    }
    cio_http_fetch_opts o = {.concurrency = 4};
    ASSERT_EQ(0, cio_http_fetch_all(c, items, N, &o));
    ASSERT_EQ(4, s.max_inflight);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(i, atoi(items[i].body));
    cio_http_fetch_release(items, N);
    /* The per-host pool limit bounds it too. */
    ASSERT_OK(cio_http_client_close(c));
    co.max_per_host = 2;
    ASSERT_OK(cio_http_client_new(&c, &co));
    s.max_inflight = 0;
    o.concurrency = 10;
    ASSERT_EQ(0, cio_http_fetch_all(c, items, N, &o));
    ASSERT_EQ(2, s.max_inflight);
    cio_http_fetch_release(items, N);
    ASSERT_OK(cio_http_client_close(c));
    /* And the total limit. */
    co.max_per_host = 16;
    co.max_total = 3;
    ASSERT_OK(cio_http_client_new(&c, &co));
    s.max_inflight = 0;
    ASSERT_EQ(0, cio_http_fetch_all(c, items, N, &o));
    ASSERT_EQ(3, s.max_inflight);
    cio_http_fetch_release(items, N);
    /* A client with a response still open refuses to close. */
    cio_http_response *r;
    ASSERT_OK(get(c, &s, "/hello", &r));
    ASSERT_EQ(-EBUSY, cio_http_client_close(c));
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

TEST_REALTIME(http_fetch_all_timeout_per_attempt)
{
    srv s;
    ASSERT_OK(srv_start(&s, NULL));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    char url[128];
    snprintf(url, sizeof url, "%s/slowhead", s.base);
    cio_http_fetch it = {.url = url};
    cio_http_fetch_opts o = {
        .timeout = 30 * CIO_MSEC, .retries = 2, .backoff = 5 * CIO_MSEC};
    int64_t t0 = cio_now();
    ASSERT_EQ(1, cio_http_fetch_all(c, &it, 1, &o));
    ASSERT_EQ(-ETIMEDOUT, it.result);
    ASSERT_EQ(3, it.attempts);
    ASSERT_TRUE(cio_now() - t0 < CIO_SEC);
    cio_http_fetch_release(&it, 1);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    return 0;
}

/* ---- Python's http.server as the peer ------------------------------------ */

TEST_REALTIME(http_client_against_python_http_server)
{
    char dir[] = "/tmp/cio-http-py-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/file.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(12, write(fd, "from python\n", 12));
    close(fd);
    /* A free port: bind 0, note it, release it. */
    int lfd;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    ASSERT_OK(cio_listen(&lfd, &a, 1, 0));
    socklen_t al = sizeof a.u;
    getsockname(lfd, &a.u.sa, &al);
    int port = ntohs(a.u.in.sin_port);
    cio_close(lfd);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    char *argv[] = {"python3",   "-m",          "http.server", ps,  "--bind",
                    "127.0.0.1", "--directory", dir,           NULL};
    cio_process_opts po = {.stdout_mode = CIO_PROC_DEVNULL,
                           .stderr_mode = CIO_PROC_DEVNULL};
    cio_process *p;
    ASSERT_OK(cio_process_spawn(&p, "python3", argv, &po));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/file.txt", port);
    cio_http_response *r = NULL;
    int rc = -1;
    for (int i = 0; i < 250 && rc < 0; i++) {
        rc = cio_http_get(c, &r, url);
        if (rc == -ECONNREFUSED)
            cio_sleep(20 * CIO_MSEC);
    }
    ASSERT_OK(rc);
    ASSERT_EQ(200, cio_http_response_status(r));
    ASSERT_STR_EQ("from python\n", body_of(r));
    cio_http_response_free(r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/missing", port);
    ASSERT_OK(cio_http_get(c, &r, url));
    ASSERT_EQ(404, cio_http_response_status(r));
    cio_http_response_free(r);
    /* HEAD: headers only. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/file.txt", port);
    ASSERT_OK(cio_http_request(c, &r, "HEAD", url, NULL));
    ASSERT_STR_EQ("12", cio_http_response_header(r, "Content-Length"));
    ASSERT_STR_EQ("", body_of(r));
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    cio_process_kill(p, SIGTERM);
    cio_process_wait(p, NULL);
    cio_process_free(p);
    unlink(path);
    rmdir(dir);
    return 0;
}

/* ---- HTTPS --------------------------------------------------------------- */

#ifdef CIO_HAVE_OPENSSL
TEST_REALTIME(http_https_server_and_client)
{
    tls_files f;
    ASSERT_OK(tls_files_make(&f));
    cio_tls_ctx *sctx, *cctx;
    cio_tls_config sc = {.cert_file = f.good_cert, .key_file = f.good_key};
    ASSERT_OK(cio_tls_server_ctx_new(&sctx, &sc));
    cio_tls_config cc = {.ca_file = f.ca};
    ASSERT_OK(cio_tls_client_ctx_new(&cctx, &cc));
    srv s;
    cio_http_server_opts so = {.tls = sctx};
    ASSERT_OK(srv_start(&s, &so));
    cio_http_client_opts co = {.tls = cctx};
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, &co));
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/hello", s.port);
    for (int i = 0; i < 3; i++) {
        cio_http_response *r;
        ASSERT_OK(cio_http_get(c, &r, url));
        ASSERT_EQ(200, cio_http_response_status(r));
        ASSERT_STR_EQ("hello", body_of(r));
        cio_http_response_free(r);
    }
    ASSERT_EQ(1, cio_http_client_connects(c));
    /* https -> http redirects only when allowed. */
    srv plain;
    ASSERT_OK(srv_start(&plain, NULL));
    snprintf(url, sizeof url, "https://127.0.0.1:%d/away?%s/hello", s.port,
             plain.base);
    cio_http_response *r;
    ASSERT_EQ(-EPERM, cio_http_get(c, &r, url));
    ASSERT_OK(cio_http_client_close(c));
    co.allow_insecure_redirect = true;
    ASSERT_OK(cio_http_client_new(&c, &co));
    ASSERT_OK(cio_http_get(c, &r, url));
    ASSERT_STR_EQ("hello", body_of(r));
    cio_http_response_free(r);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&plain);
    /* A client that trusts nothing here refuses the certificate. */
    ASSERT_OK(cio_http_client_new(&c, NULL));
    snprintf(url, sizeof url, "https://127.0.0.1:%d/hello", s.port);
    int rc = cio_http_get(c, &r, url);
    ASSERT_TRUE(rc == CIO_ECERT || rc == CIO_ETLS);
    ASSERT_OK(cio_http_client_close(c));
    srv_stop(&s);
    cio_tls_ctx_free(sctx);
    cio_tls_ctx_free(cctx);
    tls_files_remove(&f);
    return 0;
}
#endif

TEST(http_url_join_and_downgrade_rules)
{
    /* Pure parsing: no sockets. */
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    cio_http_response *r;
    ASSERT_EQ(-EINVAL, cio_http_get(c, &r, "http://[::1/"));
    ASSERT_EQ(-EINVAL, cio_http_get(c, &r, "http://:80/"));
    ASSERT_OK(cio_http_client_close(c));
    return 0;
}
