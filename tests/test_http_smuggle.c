/* Malformed and ambiguous requests, sent raw: each gets the right 4xx (or
 * 5xx) and the connection is closed, so nothing smuggled behind it is
 * ever served. */
#include "test_http_util.h"

static int served; /* smuggled requests that reached the handler */

static int h_ok(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    served += strcmp(cio_http_req_path(r), "/smuggled") == 0;
    const char *d;
    size_t len;
    int rc = cio_http_req_body(r, &d, &len, 0);
    if (rc < 0)
        return rc;
    return cio_http_send(w, 200, "text/plain", "ok", 2);
}

#define CL(n) "Content-Length: " #n "\r\n"
#define TE(v) "Transfer-Encoding: " v "\r\n"
#define H "Host: x\r\n"

static const struct {
    const char *name;
    const char *req;
    int status;
} cases[] = {
    {"both CL and TE",
     "POST / HTTP/1.1\r\n" H CL(4) TE("chunked") "\r\n0\r\n\r\n", 400},
    {"TE then CL", "POST / HTTP/1.1\r\n" H TE("chunked") CL(4) "\r\n0\r\n\r\n",
     400},
    {"duplicate CL", "POST / HTTP/1.1\r\n" H CL(3) CL(3) "\r\nabc", 400},
    {"conflicting CL", "POST / HTTP/1.1\r\n" H CL(3) CL(4) "\r\nabcd", 400},
    {"CL list", "POST / HTTP/1.1\r\n" H "Content-Length: 3, 3\r\n\r\nabc", 400},
    {"negative CL", "POST / HTTP/1.1\r\n" H CL(-1) "\r\n", 400},
    {"CL with plus", "POST / HTTP/1.1\r\n" H CL(+3) "\r\nabc", 400},
    {"CL hex", "POST / HTTP/1.1\r\n" H CL(0x3) "\r\nabc", 400},
    {"CL overflow",
     "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n",
     400},
    {"CL absurd",
     "POST / HTTP/1.1\r\n" H "Content-Length: 9999999999999\r\n\r\n", 413},
    {"TE not chunked last", "POST / HTTP/1.1\r\n" H TE("chunked, gzip") "\r\n",
     400},
    {"TE unknown", "POST / HTTP/1.1\r\n" H TE("identity") "\r\n", 400},
    {"TE with space name",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
     400},
    {"TE obs-fold",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n"
     " chunked\r\n\r\n0\r\n\r\n",
     400},
    {"bad chunk size",
     "POST / HTTP/1.1\r\n" H TE("chunked") "\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
    {"chunk size overflow",
     "POST / HTTP/1.1\r\n" H TE(
         "chunked") "\r\nfffffffffffffffff\r\na\r\n0\r\n\r\n",
     400},
    {"chunk data too long",
     "POST / HTTP/1.1\r\n" H TE("chunked") "\r\n3\r\nabcdef\r\n0\r\n\r\n", 400},
    {"chunk size with space",
     "POST / HTTP/1.1\r\n" H TE("chunked") "\r\n3 x\r\nabc\r\n0\r\n\r\n", 400},
    {"chunk LF only", "POST / HTTP/1.1\r\n" H TE("chunked") "\r\n3\nabc\n0\n\n",
     400},
    {"NUL in header value", "GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n", 400},
    {"CR in header value", "GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", 400},
    {"bad header name", "GET / HTTP/1.1\r\n" H "X(A): b\r\n\r\n", 400},
    {"space before colon", "GET / HTTP/1.1\r\n" H "X-A : b\r\n\r\n", 400},
    {"header without colon", "GET / HTTP/1.1\r\n" H "XA\r\n\r\n", 400},
    {"obs-fold", "GET / HTTP/1.1\r\n" H "X-A: a\r\n b\r\n\r\n", 400},
    {"LF-only line end", "GET / HTTP/1.1\n" H "\n", 400},
    {"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
    {"two Hosts", "GET / HTTP/1.1\r\n" H H "\r\n", 400},
    {"bad version", "GET / HTTP/1.2\r\n" H "\r\n", 505},
    {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
    {"garbage version", "GET / HTTX/1.1\r\n" H "\r\n", 400},
    {"unknown method", "FOO / HTTP/1.1\r\n" H "\r\n", 501},
    {"lower-case method", "get / HTTP/1.1\r\n" H "\r\n", 501},
    {"space in target", "GET /a b HTTP/1.1\r\n" H "\r\n", 400},
    {"relative target", "GET a HTTP/1.1\r\n" H "\r\n", 400},
    {"bad escape", "GET /%zz HTTP/1.1\r\n" H "\r\n", 400},
    {"NUL escape", "GET /a%00 HTTP/1.1\r\n" H "\r\n", 400},
    {"control char target", "GET /\x01 HTTP/1.1\r\n" H "\r\n", 400},
    {"TE twice",
     "POST / HTTP/1.1\r\n" H TE("chunked") TE("chunked") "\r\n0\r\n\r\n", 400},
    {"TE chunked in 1.0", "POST / HTTP/1.0\r\n" TE("chunked") "\r\n0\r\n\r\n",
     400},
    {"upgrade not served",
     "GET / HTTP/1.1\r\n" H "Connection: Upgrade\r\n"
     "Upgrade: websocket\r\n\r\n",
     200},
    {"upgrade with body",
     "POST / HTTP/1.1\r\n" H "Connection: Upgrade\r\n"
     "Upgrade: x\r\n" CL(3) "\r\nabc",
     200},
    {"CONNECT", "CONNECT x:443 HTTP/1.1\r\n" H "\r\n", 501},
    {"Expect unknown", "POST / HTTP/1.1\r\n" H CL(1) "Expect: 200-ok\r\n\r\na",
     417},
    {"head too big", NULL, 431},
    {"too many headers", NULL, 431},
    {"target too long", NULL, 414},
};

static int build_big(size_t i, char *buf, size_t size)
{
    size_t n = 0;
    if (strcmp(cases[i].name, "head too big") == 0) {
        n = (size_t)snprintf(buf, size, "GET / HTTP/1.1\r\n" H "X-Big: ");
        while (n < 20000)
            buf[n++] = 'a';
        n += (size_t)snprintf(buf + n, size - n, "\r\n\r\n");
    } else if (strcmp(cases[i].name, "too many headers") == 0) {
        n = (size_t)snprintf(buf, size, "GET / HTTP/1.1\r\n" H);
        for (int k = 0; k < 150; k++)
            n += (size_t)snprintf(buf + n, size - n, "X-%d: v\r\n", k);
        n += (size_t)snprintf(buf + n, size - n, "\r\n");
    } else {
        n = (size_t)snprintf(buf, size, "GET /");
        while (n < 20000)
            buf[n++] = 'a';
        n += (size_t)snprintf(buf + n, size - n, " HTTP/1.1\r\n" H "\r\n");
    }
    return (int)n;
}

TEST_REALTIME(http_smuggling_table)
{
    cio_http_server *s;
    cio_http_server_opts o = {.max_body = 1024 * 1024};
    ASSERT_OK(hu_start(&s, h_ok, NULL, &o));
    int port = hu_port(s);
    size_t ncases = sizeof cases / sizeof cases[0];
    ASSERT_TRUE(ncases >= 30);
    static char req[32768], buf[8192];
    int bad = 0;
    for (size_t i = 0; i < ncases; i++) {
        size_t len;
        if (cases[i].req != NULL) {
            /* Sizes by hand: some cases carry a NUL byte. */
            len = strlen(cases[i].req);
            if (strcmp(cases[i].name, "NUL in header value") == 0)
                len = sizeof "GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n" - 1;
            memcpy(req, cases[i].req, len);
        } else {
            len = (size_t)build_big(i, req, sizeof req);
        }
        /* A valid request smuggled behind: must never be served. */
        const char tail[] = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        memcpy(req + len, tail, sizeof tail - 1);
        len += sizeof tail - 1;
        int before = served;
        ssize_t n = hu_raw(port, req, len, buf, sizeof buf, 5000);
        int st = n < 0 ? (int)n : hu_status(buf);
        bool closed = strstr(buf, "Connection: close") != NULL;
        int reached = served - before;
        if (st != cases[i].status || !closed || reached != 0 ||
            hu_count(buf, "HTTP/1.1 ") != 1) {
            fprintf(stderr,
                    "  case '%s': status %d (want %d), close %d, "
                    "handler ran %d, responses %d\n",
                    cases[i].name, st, cases[i].status, closed, reached,
                    hu_count(buf, "HTTP/1.1 "));
            bad++;
        }
    }
    ASSERT_EQ(0, bad);
    /* The server is still fine. */
    const char ok[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ASSERT_OK(hu_raw(port, ok, sizeof ok - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(200, hu_status(buf));
    ASSERT_OK(cio_http_server_close(s, CIO_SEC));
    return 0;
}

TEST_REALTIME(http_valid_edge_cases_accepted)
{
    cio_http_server *s;
    ASSERT_OK(hu_start(&s, h_ok, NULL, NULL));
    int port = hu_port(s);
    static const char *const ok[] = {
        "GET / HTTP/1.0\r\n\r\n",
        "GET http://x/abs?q HTTP/1.1\r\n" H "Connection: close\r\n\r\n",
        "POST / HTTP/1.1\r\n" H CL(0) "Connection: close\r\n\r\n",
        "POST / HTTP/1.1\r\n" H TE(
            "chunked") "Connection: close\r\n\r\n"
                       "3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\n" H "Connection: close\r\n\r\n",
        "GET / HTTP/1.1\r\n" H "X-Empty:\r\nConnection: close\r\n\r\n",
    };
    static char buf[4096];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ASSERT_OK(hu_raw(port, ok[i], strlen(ok[i]), buf, sizeof buf, 5000));
        if (hu_status(buf) != 200)
            TEST_FAIL_("case %zu: %s", i, buf);
    }
    ASSERT_OK(cio_http_server_close(s, CIO_SEC));
    return 0;
}

/* Mutations of valid requests (bytes flipped, dropped, duplicated, cut):
 * every one is answered or refused and the server keeps serving. Under
 * the sanitizers and valgrind this is a small fuzzer. */
TEST_REALTIME(http_mutated_requests_never_break_the_server)
{
    cio_http_server *s;
    cio_http_server_opts o = {.head_timeout = 100 * CIO_MSEC,
                              .body_timeout = 100 * CIO_MSEC};
    ASSERT_OK(hu_start(&s, h_ok, NULL, &o));
    int port = hu_port(s);
    static const char *const seeds[] = {
        "GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n\r\n"),
    };
    static const char noise[] = "\r\n :;%\0\x7f\x80\xff"
                                "0aZ/?#-";
    uint64_t rng = 0x9E3779B97F4A7C15u;
    static char req[512], buf[4096];
    int rounds = getenv("CIO_TEST_LIGHT") ? 40 : 150;
    /* HTTP_FUZZ_ROUNDS and HTTP_FUZZ_SEED run a longer or other pass. */
    if (getenv("HTTP_FUZZ_ROUNDS"))
        rounds = atoi(getenv("HTTP_FUZZ_ROUNDS"));
    if (getenv("HTTP_FUZZ_SEED"))
        rng = strtoull(getenv("HTTP_FUZZ_SEED"), NULL, 0) | 1;
    for (int i = 0; i < rounds; i++) {
        const char *seed = seeds[i % 3];
        size_t n = strlen(seed);
        memcpy(req, seed, n);
        for (int k = 0; k < 3 && n > 1; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = (size_t)(rng % n);
            switch ((rng >> 20) % 4) {
            case 0: /* replace a byte */
                req[at] = noise[(rng >> 32) % (sizeof noise - 1)];
                break;
            case 1: /* drop a byte */
                memmove(req + at, req + at + 1, n - at - 1);
                n--;
                break;
            case 2: /* duplicate a byte */
                if (n + 1 < sizeof req) {
                    memmove(req + at + 1, req + at, n - at);
                    n++;
                }
                break;
            default: /* cut */
                n = at + 1;
                break;
            }
        }
        ssize_t got = hu_raw(port, req, n, buf, sizeof buf, 2000);
        ASSERT_TRUE(got >= 0);
        int st = got > 0 ? hu_status(buf) : 0;
        if (got > 0 && st != 200 && (st < 400 || st > 505))
            TEST_FAIL_("round %d: status %d", i, st);
    }
    const char ok[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ASSERT_OK(hu_raw(port, ok, sizeof ok - 1, buf, sizeof buf, 5000));
    ASSERT_EQ(200, hu_status(buf));
    ASSERT_OK(cio_http_server_close(s, CIO_SEC));
    return 0;
}
