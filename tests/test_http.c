/* The HTTP server against real clients (curl, Python's http.client and
 * urllib) and raw sockets on loopback. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_http_util.h"

/* ---- An application ------------------------------------------------------ */

static int h_hello(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    return cio_http_send(w, 200, "text/plain", "Hello, World!", 13);
}

static int h_peer(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    char b[16];
    int n = snprintf(b, sizeof b, "%d", cio_addr_port(cio_http_req_peer(r)));
    return cio_http_send(w, 200, "text/plain", b, (size_t)n);
}

/* Echo the body as it arrives, as a chunked response. */
static int h_echo(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    char buf[1000];
    for (;;) {
        ssize_t n = cio_http_req_read(r, buf, sizeof buf);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return cio_http_writer_end(w);
        int rc = cio_http_writer_write(w, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

/* Read the whole body, then answer with its size. */
static int h_body(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    const char *data;
    size_t len;
    int rc = cio_http_req_body(r, &data, &len, 0);
    if (rc < 0)
        return rc;
    char b[32];
    int n = snprintf(b, sizeof b, "%zu bytes", len);
    return cio_http_send(w, 200, "text/plain", b, (size_t)n);
}

static int h_stream(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    for (int i = 0; i < 5; i++) {
        char b[8];
        int n = snprintf(b, sizeof b, "[%d]", i);
        int rc = cio_http_writer_write(w, b, (size_t)n);
        if (rc == 0)
            rc = cio_sleep(5 * CIO_MSEC);
        if (rc < 0)
            return rc;
    }
    return 0; /* the server ends the chunked body */
}

static int h_slow(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r;
    if (arg)
        (*(int *)arg)++;
    int rc = cio_sleep(300 * CIO_MSEC);
    if (rc < 0)
        return rc;
    return cio_http_send(w, 200, "text/plain", "slow done", 9);
}

static int h_fail(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)w, (void)arg;
    return -EIO;
}

/* Fails after the response started. */
static int h_halfway(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    int rc = cio_http_writer_write(w, "partial", 7);
    return rc < 0 ? rc : -EIO;
}

static int h_user(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    const char *id = cio_http_req_param(r, "id");
    return cio_http_send(w, 200, "text/plain", id, strlen(id));
}

static int h_headers(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    int bad = cio_http_writer_header(w, "X-Evil", "a\r\nSet-Cookie: x=1");
    int bad2 = cio_http_writer_header(w, "X Bad", "v");
    int bad3 = cio_http_writer_header(w, "Content-Length", "3");
    int good = cio_http_writer_header(w, "X-Good", "yes");
    char b[64];
    int n = snprintf(b, sizeof b, "%d %d %d %d", bad, bad2, bad3, good);
    return cio_http_send(w, 200, "text/plain", b, (size_t)n);
}

typedef struct app {
    cio_http_router *rt;
    cio_http_static *st;
    cio_http_server *srv;
    int port;
    int slow_started;
    char root[64];
} app;

static int app_start(app *a, const cio_http_server_opts *o)
{
    memset(a, 0, sizeof *a);
    int rc = cio_http_router_new(&a->rt);
    if (rc < 0)
        return rc;
    cio_http_router_add(a->rt, "GET", "/", h_hello, NULL);
    cio_http_router_add(a->rt, "GET", "/peer", h_peer, NULL);
    cio_http_router_add(a->rt, "POST", "/echo", h_echo, NULL);
    cio_http_router_add(a->rt, "GET", "/stream", h_stream, NULL);
    cio_http_router_add(a->rt, "POST", "/body", h_body, NULL);
    cio_http_router_add(a->rt, "GET", "/slow", h_slow, &a->slow_started);
    cio_http_router_add(a->rt, "GET", "/fail", h_fail, NULL);
    cio_http_router_add(a->rt, "GET", "/halfway", h_halfway, NULL);
    cio_http_router_add(a->rt, "GET", "/users/{id}", h_user, NULL);
    cio_http_router_add(a->rt, "GET", "/headers", h_headers, NULL);
    rc = hu_start(&a->srv, cio_http_router_handler, a->rt, o);
    if (rc < 0) {
        cio_http_router_free(a->rt);
        return rc;
    }
    a->port = hu_port(a->srv);
    return 0;
}

static void app_stop(app *a)
{
    cio_http_server_close(a->srv, CIO_SEC);
    cio_http_router_free(a->rt);
    cio_http_static_free(a->st);
}

static int curl(int port, const char *path, const char *extra, char *out,
                size_t size)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    char *argv[12] = {"curl",          "-s", "-S", "--max-time", "10", "-w",
                      "|%{http_code}", url};
    int i = 8;
    if (extra != NULL) {
        /* One extra option with its value, "opt value". */
        static char buf[256];
        snprintf(buf, sizeof buf, "%s", extra);
        char *sp = strchr(buf, ' ');
        argv[i++] = buf;
        if (sp) {
            *sp = '\0';
            argv[i++] = sp + 1;
        }
    }
    argv[i] = NULL;
    return hu_run(argv, NULL, out, size);
}

static int py(int port, const char *scenario, char *out, size_t size)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    char *argv[] = {"python3", (char *)hu_peer("client.py"), p,
                    (char *)scenario, NULL};
    return hu_run(argv, NULL, out, size);
}

/* ---- Basics -------------------------------------------------------------- */

TEST_REALTIME(http_curl_get_hello)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    char out[512];
    ASSERT_EQ(0, curl(a.port, "/", NULL, out, sizeof out));
    ASSERT_STR_EQ("Hello, World!|200", out);
    ASSERT_EQ(0, curl(a.port, "/nope", NULL, out, sizeof out));
    ASSERT_STR_EQ("Not Found\n|404", out);
    ASSERT_EQ(0, curl(a.port, "/users/alice", NULL, out, sizeof out));
    ASSERT_STR_EQ("alice|200", out);
    ASSERT_EQ(0, curl(a.port, "/", "-X POST", out, sizeof out));
    ASSERT_TRUE(strstr(out, "|405") != NULL);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_urllib_route_params)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    char out[256];
    ASSERT_EQ(0, py(a.port, "urllib", out, sizeof out));
    ASSERT_STR_EQ("200 42\n", out);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_keepalive_reuses_connection)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    char out[256];
    ASSERT_EQ(0, py(a.port, "keepalive", out, sizeof out));
    ASSERT_TRUE(strncmp(out, "same ", 5) == 0);
    ASSERT_EQ(3, cio_http_server_requests(a.srv));
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_pipelined_requests_answered_in_order)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    const char req[] = "GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /users/2 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /users/3 HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n";
    char buf[4096];
    ASSERT_OK(hu_raw(a.port, req, sizeof req - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(3, hu_count(buf, "HTTP/1.1 200 OK"));
    char *p1 = strstr(buf, "\r\n\r\n1"), *p2 = strstr(buf, "\r\n\r\n2"),
         *p3 = strstr(buf, "\r\n\r\n3");
    ASSERT_TRUE(p1 && p2 && p3 && p1 < p2 && p2 < p3);
    ASSERT_TRUE(strstr(buf, "Connection: close") > p2);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_10_keepalive_and_close)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    const char req[] = "GET /users/1 HTTP/1.0\r\nConnection: keep-alive\r\n"
                       "\r\nGET /users/2 HTTP/1.0\r\n\r\n"
                       "GET /users/3 HTTP/1.0\r\n\r\n";
    char buf[2048];
    ASSERT_OK(hu_raw(a.port, req, sizeof req - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(2, hu_count(buf, "HTTP/1.1 200 OK"));
    ASSERT_TRUE(strstr(buf, "Connection: keep-alive\r\n") != NULL);
    ASSERT_TRUE(strstr(buf, "Connection: close\r\n") != NULL);
    ASSERT_TRUE(strstr(buf, "\r\n\r\n3") == NULL);
    /* A streamed body on 1.0: no chunks, the close ends it. */
    const char st[] = "GET /stream HTTP/1.0\r\n\r\n";
    ASSERT_OK(hu_raw(a.port, st, sizeof st - 1, buf, sizeof buf, 5000));
    ASSERT_TRUE(strstr(buf, "\r\n\r\n[0][1][2][3][4]") != NULL);
    ASSERT_TRUE(strstr(buf, "Transfer-Encoding") == NULL);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_chunked_both_ways)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    char out[256];
    ASSERT_EQ(0, py(a.port, "chunked", out, sizeof out));
    ASSERT_STR_EQ("200 chunked True 30000\n", out);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_streamed_response)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    char out[256];
    ASSERT_EQ(0, py(a.port, "stream", out, sizeof out));
    ASSERT_STR_EQ("200 [0][1][2][3][4]\n", out);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_head_has_length_and_no_body)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    char out[256];
    ASSERT_EQ(0, py(a.port, "head", out, sizeof out));
    ASSERT_STR_EQ("200 13 b''\n200 Hello, World!\n", out);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_expect_100_continue)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    cio_stream *s;
    ASSERT_OK(cio_open_connection(&s, "127.0.0.1", a.port, NULL));
    const char head[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5"
                        "\r\nExpect: 100-continue\r\n\r\n";
    ASSERT_OK(cio_stream_write(s, head, sizeof head - 1));
    char line[128];
    ssize_t n = cio_stream_readuntil(s, line, sizeof line, "\r\n\r\n", 4, NULL);
    ASSERT_EQ(25, n);
    ASSERT_TRUE(memcmp(line, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    ASSERT_OK(cio_stream_write(s, "hello", 5));
    n = cio_stream_readuntil(s, line, sizeof line - 1, "\r\n\r\n", 4, NULL);
    ASSERT_TRUE(n > 0);
    line[n] = '\0';
    ASSERT_EQ(200, hu_status(line));
    n = cio_stream_readuntil(s, line, sizeof line, "0\r\n\r\n", 5, NULL);
    ASSERT_TRUE(n > 0);
    ASSERT_TRUE(memcmp(line, "5\r\nhello\r\n0\r\n\r\n", 15) == 0);
    cio_stream_close(s);
    /* curl uses Expect: 100-continue for big uploads. */
    char out[128];
    char big[2100];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", a.port);
    char *argv[] = {"curl",
                    "-s",
                    "-S",
                    "--data-binary",
                    "@-",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{size_download}",
                    "-H",
                    "Expect: 100-continue",
                    url,
                    NULL};
    ASSERT_EQ(0, hu_run(argv, big, out, sizeof out));
    ASSERT_STR_EQ("200 2099", out);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_handler_error_gives_500_and_server_lives)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    cio_test_reports_clear();
    char out[256];
    ASSERT_EQ(0, curl(a.port, "/fail", NULL, out, sizeof out));
    ASSERT_TRUE(strstr(out, "|500") != NULL);
    ASSERT_TRUE(strstr(cio_test_reports(), "handler failed: EIO") != NULL);
    ASSERT_EQ(0, curl(a.port, "/", NULL, out, sizeof out));
    ASSERT_STR_EQ("Hello, World!|200", out);
    /* A failure after the head went out: the body is left cut short and
     * the connection closed, never completed as if all was well. */
    const char req[] = "GET /halfway HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[1024];
    ASSERT_OK(hu_raw(a.port, req, sizeof req - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(200, hu_status(buf));
    ASSERT_TRUE(strstr(buf, "7\r\npartial\r\n") != NULL);
    ASSERT_TRUE(strstr(buf, "0\r\n\r\n") == NULL);
    ASSERT_EQ(1, hu_count(buf, "HTTP/1.1 "));
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_header_injection_refused)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    const char req[] = "GET /headers HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n";
    char buf[1024];
    ASSERT_OK(hu_raw(a.port, req, sizeof req - 1, buf, sizeof buf, 5000));
    ASSERT_TRUE(strstr(buf, "-22 -22 -22 0") != NULL);
    ASSERT_TRUE(strstr(buf, "X-Good: yes\r\n") != NULL);
    ASSERT_TRUE(strstr(buf, "Set-Cookie") == NULL);
    ASSERT_EQ(-EINVAL, cio_http_header_check("A", "b\nc"));
    ASSERT_EQ(-EINVAL, cio_http_header_check("A:", "b"));
    ASSERT_OK(cio_http_header_check("A", "b\tc"));
    app_stop(&a);
    return 0;
}

/* ---- Middleware ---------------------------------------------------------- */

static int mw_guard(cio_http_req *r, cio_http_writer *w,
                    const cio_http_next *next, void *arg)
{
    (*(int *)arg)++;
    if (cio_http_req_header(r, "X-Block") != NULL)
        return cio_http_send(w, 403, "text/plain", "blocked", 7);
    return cio_http_next_call(next, r, w);
}

TEST_REALTIME(http_middleware_logs_and_guards)
{
    int p[2];
    ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
    app a;
    ASSERT_OK(app_start(&a, NULL));
    int calls = 0;
    ASSERT_OK(cio_http_router_use(a.rt, cio_http_log_middleware, &p[1]));
    ASSERT_OK(cio_http_router_use(a.rt, mw_guard, &calls));
    char out[256];
    ASSERT_EQ(0, curl(a.port, "/users/7", NULL, out, sizeof out));
    ASSERT_STR_EQ("7|200", out);
    ASSERT_EQ(0, curl(a.port, "/", "-H X-Block:1", out, sizeof out));
    ASSERT_STR_EQ("blocked|403", out);
    ASSERT_EQ(2, calls);
    char log[512] = "";
    ASSERT_TRUE(read(p[0], log, sizeof log - 1) > 0);
    ASSERT_TRUE(strstr(log, " GET /users/7 200 1 ") != NULL);
    ASSERT_TRUE(strstr(log, " GET / 403 7 ") != NULL);
    app_stop(&a);
    close(p[0]);
    close(p[1]);
    return 0;
}

TEST(http_router_rejects_bad_patterns)
{
    cio_http_router *rt;
    ASSERT_OK(cio_http_router_new(&rt));
    ASSERT_EQ(-EINVAL, cio_http_router_add(rt, "GET", "x", h_hello, NULL));
    ASSERT_EQ(-EINVAL, cio_http_router_add(rt, "GET", "/{a", h_hello, NULL));
    ASSERT_EQ(-EINVAL,
              cio_http_router_add(rt, "GET", "/{a...}/b", h_hello, NULL));
    ASSERT_EQ(-EINVAL, cio_http_router_add(rt, "GET", "/x{a}", h_hello, NULL));
    ASSERT_OK(cio_http_router_add(rt, "GET", "/{a}/{b...}", h_hello, NULL));
    cio_http_router_free(rt);
    return 0;
}

/* ---- Static files -------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

/* root/pub/{a.txt, sub/index.html, out -> ../secret.txt}, root/secret.txt */
static int static_app(app *a, char *dir)
{
    char p[256];
    if (mkdtemp(dir) == NULL)
        return -errno;
    snprintf(p, sizeof p, "%s/pub", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/pub/sub", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/pub/a.txt", dir);
    int rc = write_file(p, "0123456789abcdef");
    snprintf(p, sizeof p, "%s/pub/sub/index.html", dir);
    if (rc == 0)
        rc = write_file(p, "<p>index</p>");
    snprintf(p, sizeof p, "%s/secret.txt", dir);
    if (rc == 0)
        rc = write_file(p, "SECRET");
    snprintf(p, sizeof p, "%s/pub/out", dir);
    if (rc == 0 && symlink("../secret.txt", p) != 0)
        rc = -errno;
    if (rc < 0)
        return rc;
    rc = app_start(a, NULL);
    if (rc < 0)
        return rc;
    snprintf(p, sizeof p, "%s/pub", dir);
    rc = cio_http_static_new(&a->st, p);
    if (rc == 0)
        rc = cio_http_router_add(a->rt, "GET", "/static/{path...}",
                                 cio_http_static_handler, a->st);
    return rc;
}

static void static_clean(const char *dir)
{
    char p[256];
    const char *files[] = {"pub/a.txt", "pub/sub/index.html", "pub/out",
                           "secret.txt"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/pub/sub", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/pub", dir);
    rmdir(p);
    rmdir(dir);
}

static int raw_get(int port, const char *target, const char *hdrs, char *buf,
                   size_t size)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close"
                     "\r\n\r\n",
                     target, hdrs ? hdrs : "");
    ssize_t got = hu_raw(port, req, (size_t)n, buf, size, 5000);
    return got < 0 ? (int)got : hu_status(buf);
}

TEST_REALTIME(http_static_files_ranges_and_etag)
{
    app a;
    char dir[] = "/tmp/cio-http-static-XXXXXX";
    ASSERT_OK(static_app(&a, dir));
    char buf[2048];
    ASSERT_EQ(200, raw_get(a.port, "/static/a.txt", NULL, buf, sizeof buf));
    ASSERT_TRUE(strstr(buf, "\r\n\r\n0123456789abcdef") != NULL);
    ASSERT_TRUE(strstr(buf, "Content-Type: text/plain") != NULL);
    char *et = strstr(buf, "ETag: ");
    ASSERT_TRUE(et != NULL);
    char etag[96];
    ASSERT_EQ(1, sscanf(et, "ETag: %90s", etag));
    char hdr[160];
    snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
    ASSERT_EQ(304, raw_get(a.port, "/static/a.txt", hdr, buf, sizeof buf));
    ASSERT_TRUE(strstr(buf, "\r\n\r\n")[4] == '\0');
    /* Last-Modified / If-Modified-Since. */
    char *lm = strstr(buf, "Last-Modified: ");
    ASSERT_TRUE(lm != NULL);
    char date[64];
    ASSERT_EQ(1, sscanf(lm, "Last-Modified: %40[^\r]", date));
    snprintf(hdr, sizeof hdr, "If-Modified-Since: %s\r\n", date);
    ASSERT_EQ(304, raw_get(a.port, "/static/a.txt", hdr, buf, sizeof buf));
    ASSERT_EQ(200, raw_get(a.port, "/static/a.txt",
                           "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT"
                           "\r\n",
                           buf, sizeof buf));
    ASSERT_EQ(206, raw_get(a.port, "/static/a.txt", "Range: bytes=2-5\r\n", buf,
                           sizeof buf));
    ASSERT_TRUE(strstr(buf, "Content-Range: bytes 2-5/16") != NULL);
    ASSERT_TRUE(strstr(buf, "\r\n\r\n2345") != NULL);
    ASSERT_EQ(206, raw_get(a.port, "/static/a.txt", "Range: bytes=-3\r\n", buf,
                           sizeof buf));
    ASSERT_TRUE(strstr(buf, "\r\n\r\ndef") != NULL);
    ASSERT_EQ(416, raw_get(a.port, "/static/a.txt", "Range: bytes=99-\r\n", buf,
                           sizeof buf));
    ASSERT_TRUE(strstr(buf, "Content-Range: bytes */16") != NULL);
    const char head[] = "HEAD /static/a.txt HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\n\r\n";
    ASSERT_OK(hu_raw(a.port, head, sizeof head - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(200, hu_status(buf));
    ASSERT_TRUE(strstr(buf, "Content-Length: 16\r\n") != NULL);
    ASSERT_TRUE(strstr(buf, "\r\n\r\n")[4] == '\0');
    ASSERT_EQ(200, raw_get(a.port, "/static/sub/", NULL, buf, sizeof buf));
    ASSERT_TRUE(strstr(buf, "<p>index</p>") != NULL);
    /* curl agrees on ranges. */
    char out[128];
    ASSERT_EQ(0, curl(a.port, "/static/a.txt", "-r 10-", out, sizeof out));
    ASSERT_STR_EQ("abcdef|206", out);
    app_stop(&a);
    static_clean(dir);
    return 0;
}

TEST_REALTIME(http_static_never_leaves_root)
{
    app a;
    char dir[] = "/tmp/cio-http-static-XXXXXX";
    ASSERT_OK(static_app(&a, dir));
    static const struct {
        const char *target;
        int status;
    } cases[] = {
        {"/static/../secret.txt", 403},
        {"/static/%2e%2e/secret.txt", 403},
        {"/static/%2E%2E%2Fsecret.txt", 403},
        {"/static/sub/../../secret.txt", 403},
        {"/static/sub/%2e%2e/%2e%2e/secret.txt", 403},
        {"/static/..%5csecret.txt", 403},
        {"/static/out", 403},           /* symlink leading out */
        {"/static/a.txt%00.html", 400}, /* NUL byte */
        {"/static/%", 400},
        {"/static/missing", 404},
        {"/static//etc/passwd", 404},
        {"/static/a.txt/", 404},
    };
    char buf[2048];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = raw_get(a.port, cases[i].target, NULL, buf, sizeof buf);
        if (st != cases[i].status)
            TEST_FAIL_("%s: expected %d, got %d", cases[i].target,
                       cases[i].status, st);
        ASSERT_TRUE(strstr(buf, "SECRET") == NULL);
    }
    app_stop(&a);
    static_clean(dir);
    return 0;
}

/* ---- Timeouts and shutdown ----------------------------------------------- */

TEST_REALTIME(http_slowloris_gets_408)
{
    app a;
    cio_http_server_opts o = {.head_timeout = 200 * CIO_MSEC};
    ASSERT_OK(app_start(&a, &o));
    cio_stream *s;
    ASSERT_OK(cio_open_connection(&s, "127.0.0.1", a.port, NULL));
    int64_t t0 = cio_now();
    ASSERT_OK(cio_stream_write(s, "GET / HTTP/1.1\r\nHost: x\r\nX-A:", 29));
    char buf[512];
    size_t got = 0;
    for (;;) {
        ssize_t n = cio_stream_read(s, buf + got, sizeof buf - 1 - got);
        ASSERT_TRUE(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    int64_t took = cio_now() - t0;
    ASSERT_EQ(408, hu_status(buf));
    ASSERT_TRUE(strstr(buf, "Connection: close") != NULL);
    ASSERT_TRUE(took >= 190 * CIO_MSEC && took < 2 * CIO_SEC);
    cio_stream_close(s);
    app_stop(&a);
    return 0;
}

static int trickle(void *arg)
{
    cio_stream *s = arg;
    for (int i = 0; i < 100; i++) {
        int rc = cio_stream_write(s, "a", 1);
        if (rc == 0)
            rc = cio_sleep(20 * CIO_MSEC);
        if (rc < 0)
            return 0;
    }
    return 0;
}

TEST_REALTIME(http_slowloris_trickle_still_408)
{
    app a;
    cio_http_server_opts o = {.head_timeout = 200 * CIO_MSEC};
    ASSERT_OK(app_start(&a, &o));
    cio_stream *s;
    ASSERT_OK(cio_open_connection(&s, "127.0.0.1", a.port, NULL));
    ASSERT_OK(cio_stream_write(s, "GET / HTTP/1.1\r\nX-A: ", 21));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, trickle, s));
    char buf[512];
    ssize_t n = cio_stream_readuntil(s, buf, sizeof buf - 1, "\r\n", 2, NULL);
    ASSERT_TRUE(n > 0);
    buf[n] = '\0';
    ASSERT_EQ(408, hu_status(buf));
    cio_task_cancel(t);
    cio_task_join(t);
    cio_task_free(t);
    cio_stream_close(s);
    app_stop(&a);
    return 0;
}

typedef struct inflight {
    int port;
    char buf[1024];
    ssize_t n;
} inflight;

static int slow_client(void *arg)
{
    inflight *f = arg;
    const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    f->n = hu_raw(f->port, req, sizeof req - 1, f->buf, sizeof f->buf, 5000);
    return 0;
}

TEST_REALTIME(http_graceful_shutdown_finishes_inflight)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    /* An idle keep-alive connection: closed at once by the shutdown. */
    cio_stream *idle;
    ASSERT_OK(cio_open_connection(&idle, "127.0.0.1", a.port, NULL));
    const char r1[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_OK(cio_stream_write(idle, r1, sizeof r1 - 1));
    char buf[512];
    ASSERT_TRUE(cio_stream_readuntil(idle, buf, sizeof buf, "World!", 6, NULL) >
                0);
    inflight f = {.port = a.port};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, slow_client, &f));
    while (a.slow_started == 0)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    int64_t t0 = cio_now();
    ASSERT_OK(cio_http_server_close(a.srv, 5 * CIO_SEC));
    int64_t took = cio_now() - t0;
    ASSERT_TRUE(took < 2 * CIO_SEC);
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(200, hu_status(f.buf));
    ASSERT_TRUE(strstr(f.buf, "Connection: close") != NULL);
    ASSERT_TRUE(strstr(f.buf, "slow done") != NULL);
    ASSERT_EQ(0, cio_stream_read(idle, buf, sizeof buf));
    cio_stream_close(idle);
    cio_http_router_free(a.rt);
    return 0;
}

TEST_REALTIME(http_shutdown_grace_cancels_stuck_handler)
{
    app a;
    ASSERT_OK(app_start(&a, NULL));
    inflight f = {.port = a.port};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, slow_client, &f));
    while (a.slow_started == 0)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_OK(cio_http_server_close(a.srv, 50 * CIO_MSEC));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, f.n); /* cancelled before answering: closed, no reply */
    cio_http_router_free(a.rt);
    return 0;
}

TEST_REALTIME(http_idle_keepalive_timeout_closes)
{
    app a;
    cio_http_server_opts o = {.idle_timeout = 100 * CIO_MSEC};
    ASSERT_OK(app_start(&a, &o));
    cio_stream *s;
    ASSERT_OK(cio_open_connection(&s, "127.0.0.1", a.port, NULL));
    int64_t t0 = cio_now();
    char buf[64];
    ASSERT_EQ(0, cio_stream_read(s, buf, sizeof buf));
    ASSERT_TRUE(cio_now() - t0 >= 90 * CIO_MSEC);
    cio_stream_close(s);
    app_stop(&a);
    return 0;
}

TEST_REALTIME(http_body_limit_and_timeout)
{
    app a;
    cio_http_server_opts o = {.max_body = 100, .body_timeout = 100 * CIO_MSEC};
    ASSERT_OK(app_start(&a, &o));
    char buf[1024];
    const char big[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
                       "Content-Length: 101\r\n\r\n";
    ASSERT_OK(hu_raw(a.port, big, sizeof big - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(413, hu_status(buf));
    /* Chunked past the limit: the handler's read fails, 413. */
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:"
                     " chunked\r\n\r\n80\r\n%0128d\r\n0\r\n\r\n",
                     0);
    ASSERT_OK(hu_raw(a.port, req, (size_t)n, buf, sizeof buf, 5000));
    ASSERT_EQ(413, hu_status(buf));
    /* A body that stops coming: 408. */
    const char stall[] = "POST /body HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 10\r\n\r\nabc";
    ASSERT_OK(hu_raw(a.port, stall, sizeof stall - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(408, hu_status(buf));
    app_stop(&a);
    return 0;
}
