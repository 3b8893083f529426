/* Byte ranges in the static handler: one range gives a plain 206, several
 * a multipart/byteranges body whose parts carry their Content-Range and
 * whose Content-Length is exact; unsatisfiable ranges give 416; too many
 * or overlapping ranges, or a malformed header, give the whole file. */
#include <unistd.h>

#include "test_http_util.h"

typedef struct rfix {
    char dir[64];
    char file[96];
    cio_http_static *st;
    cio_http_server *srv;
    int port;
} rfix;

static int rfix_start(rfix *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/cio-http-ranges-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -errno;
    snprintf(f->file, sizeof f->file, "%s/a.txt", f->dir);
    FILE *fp = fopen(f->file, "w");
    if (fp == NULL)
        return -errno;
    fputs("0123456789abcdef", fp);
    fclose(fp);
    int rc = cio_http_static_new(&f->st, f->dir);
    if (rc < 0)
        return rc;
    rc = hu_start(&f->srv, cio_http_static_handler, f->st, NULL);
    if (rc < 0)
        return rc;
    f->port = hu_port(f->srv);
    return 0;
}

static void rfix_stop(rfix *f)
{
    cio_http_server_close(f->srv, CIO_SEC);
    cio_http_static_free(f->st);
    unlink(f->file);
    rmdir(f->dir);
}

/* `method` /a.txt with `range`; the reply in buf, its status back. */
static int get_range(rfix *f, const char *method, const char *range, char *buf,
                     size_t size)
{
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s /a.txt HTTP/1.1\r\nHost: x\r\nRange: %s\r\n"
                     "Connection: close\r\n\r\n",
                     method, range);
    ssize_t got = hu_raw(f->port, req, (size_t)n, buf, size, 5000);
    return got < 0 ? (int)got : hu_status(buf);
}

/* The Content-Length value in `buf`, or -1. */
static long content_length(const char *buf)
{
    const char *p = strstr(buf, "Content-Length: ");
    return p ? strtol(p + 16, NULL, 10) : -1;
}

TEST_REALTIME(http_ranges_multipart)
{
    rfix f;
    ASSERT_OK(rfix_start(&f));
    static char buf[8192];
    ASSERT_EQ(206, get_range(&f, "GET", "bytes=0-1, 5-6,-2", buf, sizeof buf));
    const char *ct = strstr(buf, "Content-Type: multipart/byteranges; "
                                 "boundary=");
    ASSERT_TRUE(ct != NULL);
    char boundary[80];
    ASSERT_EQ(1, sscanf(ct + 45, "%70[^\r]", boundary));
    const char *body = strstr(buf, "\r\n\r\n") + 4;
    ASSERT_EQ((long)strlen(body), content_length(buf));
    char want[1024];
    snprintf(want, sizeof want,
             "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Range: bytes 0-1/16\r\n\r\n01"
             "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Range: bytes 5-6/16\r\n\r\n56"
             "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Range: bytes 14-15/16\r\n\r\nef"
             "\r\n--%s--\r\n",
             boundary, boundary, boundary, boundary);
    ASSERT_STR_EQ(want, body);
    /* HEAD: the same head, no body. */
    static char hb[4096];
    ASSERT_EQ(206, get_range(&f, "HEAD", "bytes=0-1, 5-6,-2", hb, sizeof hb));
    ASSERT_EQ(content_length(buf), content_length(hb));
    ASSERT_TRUE(strstr(hb, "\r\n\r\n")[4] == '\0');
    rfix_stop(&f);
    return 0;
}

TEST_REALTIME(http_ranges_curl_agrees)
{
    rfix f;
    ASSERT_OK(rfix_start(&f));
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a.txt", f.port);
    char *argv[] = {"curl", "-s",      "-S", "--max-time", "10",
                    "-r",   "0-1,5-6", url,  NULL};
    static char out[4096];
    ASSERT_EQ(0, hu_run(argv, NULL, out, sizeof out));
    ASSERT_TRUE(strstr(out, "Content-Range: bytes 0-1/16\r\n\r\n01\r\n") !=
                NULL);
    ASSERT_TRUE(strstr(out, "Content-Range: bytes 5-6/16\r\n\r\n56\r\n") !=
                NULL);
    rfix_stop(&f);
    return 0;
}

TEST_REALTIME(http_ranges_edge_cases)
{
    rfix f;
    ASSERT_OK(rfix_start(&f));
    static char buf[8192];
    /* One satisfiable range among unsatisfiable ones: a plain 206. */
    ASSERT_EQ(206, get_range(&f, "GET", "bytes=99-,2-3", buf, sizeof buf));
    ASSERT_TRUE(strstr(buf, "Content-Range: bytes 2-3/16\r\n") != NULL);
    ASSERT_TRUE(strstr(buf, "\r\n\r\n23") != NULL);
    ASSERT_TRUE(strstr(buf, "multipart") == NULL);
    /* None satisfiable. */
    ASSERT_EQ(416, get_range(&f, "GET", "bytes=99-,16-20", buf, sizeof buf));
    ASSERT_TRUE(strstr(buf, "Content-Range: bytes */16") != NULL);
    /* Overlapping, malformed, reversed, too many: the whole file. */
    const char *whole[] = {
        "bytes=0-10,5-15",
        "bytes=0-1,x",
        "bytes=0-1,5-3",
        "bytes=0-1,,",
        "items=0-1",
        "bytes=0-1,2-",
        "bytes=,",
        "bytes=0-1,--2",
        "bytes=99999999999999999999-",
        ("bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,"
         "13-13,14-14,15-15,0-0")};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        int st = get_range(&f, "GET", whole[i], buf, sizeof buf);
        const char *body = strstr(buf, "\r\n\r\n");
        bool ok = body != NULL && strcmp(body + 4, "0123456789abcdef") == 0;
        /* "0-1,,": empty list elements are skipped, and "0-1,2-" is
         * two satisfiable ranges. */
        if (i == 3 || i == 5)
            ok = st == 206;
        else
            ok = ok && st == 200;
        if (!ok)
            TEST_FAIL_("range '%s': %d\n%s", whole[i], st, buf);
    }
    /* Sixteen ranges are served. */
    ASSERT_EQ(206, get_range(&f, "GET",
                             "bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,"
                             "10-10,11-11,12-12,13-13,14-14,15-15",
                             buf, sizeof buf));
    ASSERT_EQ(16, hu_count(buf, "Content-Range: bytes "));
    rfix_stop(&f);
    return 0;
}

/* A 10 MiB file: whole, one range and two ranges come back intact (by
 * sendfile(2) on epoll, read and send on io_uring), and a client that
 * goes away mid-body leaves the server serving. */
#define BIG ((size_t)10 * 1024 * 1024)

static int big_file(rfix *f, const char *name, unsigned char **data)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    unsigned char *d = malloc(BIG);
    if (d == NULL)
        return -ENOMEM;
    uint32_t x = 12345;
    for (size_t i = 0; i < BIG; i++) {
        x = x * 1103515245u + 12345u;
        d[i] = (unsigned char)(x >> 16);
    }
    FILE *fp = fopen(p, "w");
    if (fp == NULL || fwrite(d, 1, BIG, fp) != BIG) {
        if (fp)
            fclose(fp);
        free(d);
        return -EIO;
    }
    fclose(fp);
    *data = d;
    return 0;
}

TEST_REALTIME(http_ranges_big_file_intact)
{
    rfix f;
    ASSERT_OK(rfix_start(&f));
    unsigned char *d;
    ASSERT_OK(big_file(&f, "big.bin", &d));
    static char buf[BIG + 4096];
    const char whole[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n";
    ssize_t n = hu_raw(f.port, whole, sizeof whole - 1, buf, sizeof buf, 20000);
    ASSERT_TRUE(n > (ssize_t)BIG);
    ASSERT_EQ(200, hu_status(buf));
    char *body = strstr(buf, "\r\n\r\n") + 4;
    ASSERT_EQ((ssize_t)BIG, n - (body - buf));
    ASSERT_TRUE(memcmp(body, d, BIG) == 0);
    /* One range, then two, on one keep-alive connection. */
    const char two[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n"
                       "Range: bytes=1000000-1999999\r\n\r\n"
                       "GET /big.bin HTTP/1.1\r\nHost: x\r\n"
                       "Range: bytes=5-9,9000000-\r\nConnection: close\r\n\r\n";
    n = hu_raw(f.port, two, sizeof two - 1, buf, sizeof buf, 20000);
    ASSERT_TRUE(n > 0);
    body = strstr(buf, "\r\n\r\n") + 4;
    ASSERT_TRUE(memcmp(body, d + 1000000, 1000000) == 0);
    char *second = body + 1000000;
    ASSERT_EQ(206, hu_status(second));
    char *p1 = strstr(second, "Content-Range: bytes 5-9/10485760\r\n\r\n");
    char *p2 = strstr(second, "Content-Range: bytes 9000000-10485759/"
                              "10485760\r\n\r\n");
    ASSERT_TRUE(p1 != NULL && p2 != NULL);
    ASSERT_TRUE(memcmp(strstr(p1, "\r\n\r\n") + 4, d + 5, 5) == 0);
    ASSERT_TRUE(
        memcmp(strstr(p2, "\r\n\r\n") + 4, d + 9000000, BIG - 9000000) == 0);
    /* A client that reads a little and leaves. */
    cio_stream *s;
    ASSERT_OK(cio_open_connection(&s, "127.0.0.1", f.port, NULL));
    ASSERT_OK(cio_stream_write(s, whole, sizeof whole - 1));
    ASSERT_OK(cio_stream_flush(s));
    char small[4096];
    ASSERT_TRUE(cio_stream_read(s, small, sizeof small) > 0);
    ASSERT_OK(cio_stream_close(s));
    n = hu_raw(f.port, whole, sizeof whole - 1, buf, sizeof buf, 20000);
    ASSERT_EQ(200, hu_status(buf));
    ASSERT_TRUE(memcmp(strstr(buf, "\r\n\r\n") + 4, d, BIG) == 0);
    free(d);
    char p[160];
    snprintf(p, sizeof p, "%s/big.bin", f.dir);
    unlink(p);
    rfix_stop(&f);
    return 0;
}
