/* The HTTP client against nginx: a real server's keep-alive, redirects,
 * gzip (precompressed and compressed on the fly, chunked), HEAD, 404 and
 * a large body read whole and streamed. nginx runs in the foreground as
 * one process, with everything it writes inside a temporary directory,
 * so the test runs as any user. Skipped without /usr/sbin/nginx unless
 * CIO_TEST_REQUIRE_SERVERS is set. */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_http_util.h"

#define NGINX "/usr/sbin/nginx"
#define BIG_LEN (1024 * 1024)

static unsigned char big[BIG_LEN];
static const char small_text[] = "hello from nginx\n";

/* Text that compresses well, served gzip'd. */
static void text_fill(char *buf, size_t n)
{
    size_t off = 0;
    for (int i = 0; off + 64 < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "line %d of the text\n", i);
    buf[off] = '\0';
}

static int write_file(const char *dir, const char *name, const void *data,
                      size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            close(fd);
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    close(fd);
    return 0;
}

static int write_gz(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile g = gzopen(path, "wb9");
    if (g == NULL)
        return -EIO;
    int n = gzwrite(g, text, (unsigned)strlen(text));
    int rc = gzclose(g);
    return n == (int)strlen(text) && rc == Z_OK ? 0 : -EIO;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *f)
{
    (void)st;
    (void)f;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int free_port(void)
{
    int lfd;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    int rc = cio_listen(&lfd, &a, 1, 0);
    if (rc < 0)
        return rc;
    socklen_t al = sizeof a.u;
    getsockname(lfd, &a.u.sa, &al);
    cio_close(lfd);
    return ntohs(a.u.in.sin_port);
}

static int write_conf(const char *dir, int port)
{
    char conf[4096];
    int n = snprintf(
        conf, sizeof conf,
        "daemon off;\n"
        "master_process off;\n"
        "worker_processes 1;\n"
        "pid %1$s/nginx.pid;\n"
        "error_log %1$s/error.log warn;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "    access_log %1$s/access.log;\n"
        "    client_body_temp_path %1$s/tmp_body;\n"
        "    proxy_temp_path %1$s/tmp_proxy;\n"
        "    fastcgi_temp_path %1$s/tmp_fastcgi;\n"
        "    uwsgi_temp_path %1$s/tmp_uwsgi;\n"
        "    scgi_temp_path %1$s/tmp_scgi;\n"
        "    default_type application/octet-stream;\n"
        "    types { text/plain txt; }\n"
        "    keepalive_timeout 60s;\n"
        "    keepalive_requests 1000;\n"
        "    server {\n"
        "        listen 127.0.0.1:%2$d;\n"
        "        root %1$s/www;\n"
        "        location = /old { return 301 /small.txt; }\n"
        "        location /static/ { gzip_static on; }\n"
        "        location /live/ {\n"
        "            gzip on;\n"
        "            gzip_types text/plain;\n"
        "            gzip_min_length 1;\n"
        "            chunked_transfer_encoding on;\n"
        "        }\n"
        "    }\n"
        "}\n",
        dir, port);
    if (n < 0 || (size_t)n >= sizeof conf)
        return -ENAMETOOLONG;
    return write_file(dir, "nginx.conf", conf, (size_t)n);
}

/* The site: a small file, 1 MiB, and a text both precompressed (for
 * gzip_static) and plain (compressed by nginx as it sends it). */
static int make_site(const char *dir, char *text, size_t text_size)
{
    char www[512];
    snprintf(www, sizeof www, "%s/www", dir);
    if (mkdir(www, 0755) < 0)
        return -errno;
    char sub[600];
    snprintf(sub, sizeof sub, "%s/static", www);
    if (mkdir(sub, 0755) < 0)
        return -errno;
    snprintf(sub, sizeof sub, "%s/live", www);
    if (mkdir(sub, 0755) < 0)
        return -errno;
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 10));
    text_fill(text, text_size);
    int rc = write_file(www, "small.txt", small_text, strlen(small_text));
    if (rc == 0)
        rc = write_file(www, "big.bin", big, BIG_LEN);
    if (rc == 0)
        rc = write_gz(www, "static/text.txt.gz", text);
    if (rc == 0)
        rc = write_file(www, "live/text.txt", text, strlen(text));
    return rc;
}

/* GET `base``path` into `*r`, expecting `status`. */
static int get(cio_http_client *c, cio_http_response **r, const char *base,
               const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    return cio_http_get(c, r, url);
}

/* Wait until nginx answers (or has exited). */
static int wait_ready(cio_process *p, const char *base)
{
    cio_http_client *c;
    int rc = cio_http_client_new(&c, NULL);
    if (rc < 0)
        return rc;
    rc = -ECONNREFUSED;
    for (int i = 0; i < 250 && rc == -ECONNREFUSED; i++) {
        if (cio_process_try_wait(p, NULL) == 0) {
            rc = -ECHILD;
            break;
        }
        cio_http_response *r;
        rc = get(c, &r, base, "/small.txt");
        if (rc == 0)
            cio_http_response_free(r);
        else if (rc == -ECONNREFUSED)
            cio_sleep(20 * CIO_MSEC);
    }
    int rc2 = cio_http_client_close(c);
    return rc < 0 ? rc : rc2;
}

static int check_bodies(cio_http_client *c, const char *base,
                        const char *text)
{
    cio_http_response *r;
    size_t len;
    /* Small and 1 MiB bodies, byte-exact, all on one connection. */
    ASSERT_OK(get(c, &r, base, "/small.txt"));
    ASSERT_EQ(200, cio_http_response_status(r));
    ASSERT_STR_EQ(small_text, cio_http_response_body(r, NULL));
    ASSERT_STR_EQ("text/plain", cio_http_response_header(r, "Content-Type"));
    cio_http_response_free(r);
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(get(c, &r, base, "/big.bin"));
        ASSERT_EQ(200, cio_http_response_status(r));
        const char *b = cio_http_response_body(r, &len);
        ASSERT_EQ(BIG_LEN, len);
        ASSERT_TRUE(memcmp(b, big, BIG_LEN) == 0);
        cio_http_response_free(r);
    }
    /* The precompressed file: sent with a length, decoded here. */
    ASSERT_OK(get(c, &r, base, "/static/text.txt"));
    ASSERT_EQ(200, cio_http_response_status(r));
    ASSERT_STR_EQ("gzip", cio_http_response_header(r, "Content-Encoding"));
    ASSERT_TRUE(cio_http_response_header(r, "Content-Length") != NULL);
    ASSERT_STR_EQ(text, cio_http_response_body(r, &len));
    ASSERT_EQ(strlen(text), len);
    cio_http_response_free(r);
    /* Compressed on the fly: no length known, so chunked. */
    ASSERT_OK(get(c, &r, base, "/live/text.txt"));
    ASSERT_EQ(200, cio_http_response_status(r));
    ASSERT_STR_EQ("gzip", cio_http_response_header(r, "Content-Encoding"));
    ASSERT_STR_EQ("chunked",
                  cio_http_response_header(r, "Transfer-Encoding"));
    ASSERT_STR_EQ(text, cio_http_response_body(r, &len));
    ASSERT_EQ(strlen(text), len);
    cio_http_response_free(r);
    return 0;
}

/* A redirect, followed to the file. nginx sends a small HTML page with
 * the redirect: the client reads it so the connection stays reusable. */
static int check_redirect(cio_http_client *c, const char *base)
{
    cio_http_response *r;
    char url[256];
    ASSERT_OK(get(c, &r, base, "/old"));
    ASSERT_EQ(200, cio_http_response_status(r));
    ASSERT_STR_EQ(small_text, cio_http_response_body(r, NULL));
    snprintf(url, sizeof url, "%s/small.txt", base);
    ASSERT_STR_EQ(url, cio_http_response_url(r));
    cio_http_response_free(r);
    return 0;
}

static int check_misc(cio_http_client *c, const char *base)
{
    cio_http_response *r;
    char url[256];
    ASSERT_OK(get(c, &r, base, "/missing"));
    ASSERT_EQ(404, cio_http_response_status(r));
    cio_http_response_free(r);
    /* HEAD: the length of the body, and no body. */
    snprintf(url, sizeof url, "%s/big.bin", base);
    ASSERT_OK(cio_http_request(c, &r, "HEAD", url, NULL));
    ASSERT_EQ(200, cio_http_response_status(r));
    ASSERT_STR_EQ("1048576", cio_http_response_header(r, "Content-Length"));
    size_t len = 1;
    cio_http_response_body(r, &len);
    ASSERT_EQ(0, len);
    cio_http_response_free(r);
    /* 1 MiB streamed in small reads. */
    cio_http_req_opts o = {.stream = true};
    ASSERT_OK(cio_http_request(c, &r, "GET", url, &o));
    ASSERT_EQ(200, cio_http_response_status(r));
    size_t got = 0;
    char buf[5000];
    for (;;) {
        ssize_t n = cio_http_response_read(r, buf, sizeof buf);
        ASSERT_TRUE(n >= 0);
        if (n == 0)
            break;
        ASSERT_TRUE(got + (size_t)n <= BIG_LEN);
        ASSERT_TRUE(memcmp(buf, big + got, (size_t)n) == 0);
        got += (size_t)n;
    }
    ASSERT_EQ(BIG_LEN, got);
    cio_http_response_free(r);
    return 0;
}

static int stop_nginx(cio_process *p)
{
    int status = 0;
    int rc = cio_process_kill(p, SIGQUIT);
    if (rc == 0)
        rc = cio_process_wait(p, &status);
    cio_process_free(p);
    if (rc < 0)
        return rc;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int run_checks(cio_process *p, const char *base, const char *text)
{
    ASSERT_OK(wait_ready(p, base));
    cio_http_client *c;
    ASSERT_OK(cio_http_client_new(&c, NULL));
    int rc = check_bodies(c, base, text);
    if (rc == 0)
        rc = check_misc(c, base);
    /* Keep-alive: the 9 requests so far went over one connection. */
    if (rc == 0 && cio_http_client_connects(c) != 1) {
        fprintf(stderr, "  %llu connections, expected 1\n",
                (unsigned long long)cio_http_client_connects(c));
        rc = -1;
    }
    if (rc == 0 && cio_http_client_idle(c) != 1)
        rc = -1;
    if (rc == 0)
        rc = check_redirect(c, base);
    /* The redirect and its target went over the same connection. */
    if (rc == 0 && cio_http_client_connects(c) != 1) {
        fprintf(stderr, "  after the redirect: %llu connections, expected 1\n",
                (unsigned long long)cio_http_client_connects(c));
        rc = -1;
    }
    int rc2 = cio_http_client_close(c);
    return rc < 0 ? rc : rc2;
}

TEST_REALTIME(http_nginx_client_against_nginx)
{
    if (access(NGINX, X_OK) != 0) {
        const char *req = getenv("CIO_TEST_REQUIRE_SERVERS");
        if (req != NULL && *req != '\0' && strcmp(req, "0") != 0)
            TEST_FAIL_("%s is missing and CIO_TEST_REQUIRE_SERVERS is set",
                       NGINX);
        CIO_TEST_SKIP("nginx is not installed");
    }
    char dir[] = "/tmp/cio-http-nginx-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    static char text[64 * 1024];
    int port = free_port();
    int rc = port < 0 ? port : make_site(dir, text, sizeof text);
    if (rc == 0)
        rc = write_conf(dir, port);
    cio_process *p = NULL;
    if (rc == 0) {
        char conf[512];
        snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
        char elog[512];
        snprintf(elog, sizeof elog, "%s/error.log", dir);
        char *argv[] = {"nginx", "-p", dir, "-e", elog, "-c", conf, NULL};
        cio_process_opts po = {.stdout_mode = CIO_PROC_DEVNULL,
                               .stderr_mode = CIO_PROC_DEVNULL};
        rc = cio_process_spawn(&p, NGINX, argv, &po);
    }
    if (rc == 0) {
        char base[64];
        snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
        rc = run_checks(p, base, text);
        int rc2 = stop_nginx(p);
        if (rc == 0)
            rc = rc2;
    }
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    ASSERT_OK(rc);
    return 0;
}
