/* Response heads and request headers on the server's fast paths: a head
 * copied from the server's cache must be byte for byte the one built, for
 * every status, Content-Type, length and connection handling; header
 * lookups match names of the same length in any case; a keep-alive
 * connection busy in its handler outlives idle_timeout. */
#include "test_http_util.h"

static int send_rc; /* what cio_http_send returned for /bad */

static int h_shapes(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    const char *p = cio_http_req_path(r);
    if (strcmp(p, "/a") == 0)
        return cio_http_send(w, 200, "text/plain", "hello", 5);
    if (strcmp(p, "/b") == 0)
        return cio_http_send(w, 404, "text/plain", "nope", 4);
    if (strcmp(p, "/c") == 0)
        return cio_http_send(w, 200, "application/json", "{}", 2);
    if (strcmp(p, "/d") == 0)
        return cio_http_send(w, 200, "text/plain", "hello!", 6);
    if (strcmp(p, "/h") == 0) {
        int rc = cio_http_writer_header(w, "X-Extra", "1");
        return rc < 0 ? rc : cio_http_send(w, 200, "text/plain", "hello", 5);
    }
    if (strcmp(p, "/bad") == 0) {
        send_rc = cio_http_send(w, 200, "text/plain\r\nX-Evil: 1", "x", 1);
        return cio_http_send(w, 200, "text/plain", "hello", 5);
    }
    if (strcmp(p, "/long") == 0)
        return cio_http_send(w, 200,
                             "text/plain; charset=utf-8; a-parameter-that-"
                             "makes-it-longer-than-the-cache=1",
                             "hello", 5);
    if (strcmp(p, "/none") == 0)
        return cio_http_send(w, 200, NULL, "hello", 5);
    if (strcmp(p, "/empty") == 0)
        return cio_http_send(w, 204, "text/plain", NULL, 0);
    return cio_http_send(w, 400, "text/plain", "?", 1);
}

/* Replace each Date value in `buf` with "D", in place. */
static void strip_dates(char *buf)
{
    char *p = buf;
    while ((p = strstr(p, "Date: ")) != NULL) {
        p += 6;
        char *e = strstr(p, "\r\n");
        if (e == NULL)
            break;
        *p = 'D';
        memmove(p + 1, e, strlen(e) + 1);
    }
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\n\r\n"
#define OK_HELLO                                                               \
    "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\n"               \
    "Content-Length: 5\r\n\r\nhello"

TEST_REALTIME(http_head_cached_equals_built)
{
    cio_http_server *s;
    ASSERT_OK(hu_start(&s, h_shapes, NULL, NULL));
    send_rc = 1;
    const char req[] = GET("/a") GET("/a") GET("/b") GET("/a") GET("/c")
        GET("/d") GET("/h") GET("/a") GET("/bad") GET("/long") GET("/long")
            GET("/none") GET("/none") GET("/empty") GET(
                "/a") "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static char buf[16384];
    ASSERT_OK(hu_raw(hu_port(s), req, sizeof req - 1, buf, sizeof buf, 5000));
    strip_dates(buf);
    const char want[] = OK_HELLO OK_HELLO
        "HTTP/1.1 404 Not Found\r\nDate: D\r\nContent-Type: text/plain\r\n"
        "Content-Length: 4\r\n\r\nnope" OK_HELLO
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}"
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\n"
        "Content-Length: 6\r\n\r\nhello!"
        "HTTP/1.1 200 OK\r\nDate: D\r\nX-Extra: 1\r\n"
        "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello" OK_HELLO
            OK_HELLO "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain; "
        "charset=utf-8; a-parameter-that-makes-it-longer-than-the-cache=1\r\n"
        "Content-Length: 5\r\n\r\nhello"
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain; "
        "charset=utf-8; a-parameter-that-makes-it-longer-than-the-cache=1\r\n"
        "Content-Length: 5\r\n\r\nhello"
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 5\r\n\r\nhello"
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 5\r\n\r\nhello"
        "HTTP/1.1 204 No Content\r\nDate: D\r\nContent-Type: text/plain\r\n"
        "\r\n" OK_HELLO
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\n"
        "Content-Length: 5\r\n\r\n"
        "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\n"
        "Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    if (strcmp(want, buf) != 0)
        TEST_FAIL_("got:\n%s\nwant:\n%s", buf, want);
    /* A bad value is refused even right after a good one was cached. */
    ASSERT_EQ(-EINVAL, send_rc);
    ASSERT_OK(cio_http_server_close(s, CIO_SEC));
    return 0;
}

TEST_REALTIME(http_head_connection_follows_each_request)
{
    cio_http_server *s;
    ASSERT_OK(hu_start(&s, h_shapes, NULL, NULL));
    /* Same status, type and length each time: only Connection differs,
     * so a head cached for one must not answer the next. */
    const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                       "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                       "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /a HTTP/1.0\r\n\r\n"
                       "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    static char buf[8192];
    ASSERT_OK(hu_raw(hu_port(s), req, sizeof req - 1, buf, sizeof buf, 5000));
    strip_dates(buf);
    const char ka[] = "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain"
                      "\r\nContent-Length: 5\r\nConnection: keep-alive\r\n"
                      "\r\nhello";
    const char cl[] = "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain"
                      "\r\nContent-Length: 5\r\nConnection: close\r\n"
                      "\r\nhello";
    char want[2048];
    snprintf(want, sizeof want, "%s%s%s%s%s", OK_HELLO, ka, ka, OK_HELLO, cl);
    /* The HTTP/1.0 request without keep-alive ends the connection: the
     * last request is never answered. */
    if (strcmp(want, buf) != 0)
        TEST_FAIL_("got:\n%s\nwant:\n%s", buf, want);
    ASSERT_EQ(5, cio_http_server_requests(s));
    ASSERT_OK(cio_http_server_close(s, CIO_SEC));
    return 0;
}

static int h_headers(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    const char *a = cio_http_req_header(r, "x-ab");
    const char *b = cio_http_req_header(r, "X-EMPTY");
    const char *c = cio_http_req_header(r, "x-a");
    const char *d = cio_http_req_header(r, "x-abc");
    const char *e = cio_http_req_header(r, "HOST");
    const char *name, *value;
    int rc = cio_http_req_header_at(r, 1, &name, &value);
    if (rc < 0)
        return rc;
    char out[256];
    int n = snprintf(out, sizeof out, "%s|%s|%s|%s|%s|%zu|%s=%s|%s|%s|%s",
                     a ? a : "-", b ? b : "-", c ? c : "-", d ? d : "-",
                     e ? e : "-", cio_http_req_header_count(r), name, value,
                     cio_http_req_method(r), cio_http_req_path(r),
                     cio_http_req_query(r));
    return cio_http_send(w, 200, "text/plain", out, (size_t)n);
}

TEST_REALTIME(http_head_header_lookup_any_case)
{
    cio_http_server *s;
    ASSERT_OK(hu_start(&s, h_headers, NULL, NULL));
    const char req[] = "PUT /p%20q?x=1 HTTP/1.1\r\nHost: h\r\nx-aB: first\r\n"
                       "X-Ab: second\r\nX-Ac: 3\r\nX-Empty:\r\n"
                       "X-ABC: long\r\nConnection: close\r\n\r\n";
    static char buf[4096];
    ASSERT_OK(hu_raw(hu_port(s), req, sizeof req - 1, buf, sizeof buf, 5000));
    const char *body = strstr(buf, "\r\n\r\n");
    ASSERT_TRUE(body != NULL);
    ASSERT_STR_EQ("first||-|long|h|7|x-aB=first|PUT|/p q|x=1", body + 4);
    ASSERT_OK(cio_http_server_close(s, CIO_SEC));
    return 0;
}

static int h_slow(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    int rc = cio_sleep(300 * CIO_MSEC);
    if (rc < 0)
        return rc;
    return cio_http_send(w, 200, "text/plain", "late", 4);
}

TEST_REALTIME(http_head_busy_connection_outlives_idle_timeout)
{
    cio_http_server *s;
    cio_http_server_opts o = {.idle_timeout = 50 * CIO_MSEC};
    ASSERT_OK(hu_start(&s, h_slow, NULL, &o));
    /* Two requests on one connection, each handled for six idle
     * timeouts: the reaper ends only waits for a next request. */
    const char req[] = GET("/1") "GET /2 HTTP/1.1\r\nHost: x\r\n"
                                 "Connection: close\r\n\r\n";
    static char buf[4096];
    ASSERT_OK(hu_raw(hu_port(s), req, sizeof req - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(2, hu_count(buf, "HTTP/1.1 200 OK"));
    ASSERT_EQ(2, hu_count(buf, "\r\n\r\nlate"));
    ASSERT_OK(cio_http_server_close(s, CIO_SEC));
    return 0;
}
