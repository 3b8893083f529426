/* echo_libuv.c: the libuv echo server.
 *
 * The idiomatic callback shape: uv_read_start into one shared buffer (a
 * read callback consumes it before the next read), uv_try_write for the
 * common case, uv_write with a copy for whatever the socket did not take.
 *
 * Usage: echo_libuv PORT (listens on 127.0.0.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define BUF_SIZE (64 * 1024)

typedef struct wreq {
    uv_write_t req;
    uv_buf_t buf;
} wreq;

static uv_loop_t *loop;
static char rbuf[BUF_SIZE];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    if (status < 0 && !uv_is_closing((uv_handle_t *)req->handle))
        uv_close((uv_handle_t *)req->handle, on_close);
    free(w->buf.base);
    free(w);
}

/* Write the rest the socket did not take, from a copy. */
static int write_copy(uv_stream_t *s, const char *p, size_t n)
{
    wreq *w = malloc(sizeof *w);
    char *copy = malloc(n);
    if (w == NULL || copy == NULL) {
        free(w);
        free(copy);
        return UV_ENOMEM;
    }
    memcpy(copy, p, n);
    w->buf = uv_buf_init(copy, (unsigned)n);
    int rc = uv_write(&w->req, s, &w->buf, 1, on_written);
    if (rc < 0) {
        free(copy);
        free(w);
    }
    return rc;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread == 0)
        return;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    int k = uv_try_write(s, &out, 1);
    if (k == UV_EAGAIN)
        k = 0;
    int rc = k;
    if (k >= 0 && k < nread)
        rc = write_copy(s, buf->base + k, (size_t)(nread - k));
    if (rc < 0) {
        fprintf(stderr, "echo_libuv: write: %s\n", uv_strerror(rc));
        uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_conn(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "echo_libuv: accept: %s\n", uv_strerror(status));
        return;
    }
    uv_tcp_t *c = malloc(sizeof *c);
    if (c == NULL)
        return;
    int rc = uv_tcp_init(loop, c);
    if (rc < 0) {
        free(c);
        return;
    }
    rc = uv_accept(server, (uv_stream_t *)c);
    if (rc == 0)
        rc = uv_tcp_nodelay(c, 1);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)c, on_alloc, on_read);
    if (rc < 0) {
        fprintf(stderr, "echo_libuv: connection: %s\n", uv_strerror(rc));
        uv_close((uv_handle_t *)c, on_close);
    }
}

int main(int argc, char **argv)
{
    char *end = "";
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "usage: echo_libuv PORT\n");
        return 2;
    }
    loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in a;
    int rc = uv_ip4_addr("127.0.0.1", (int)port, &a);
    if (rc == 0)
        rc = uv_tcp_init(loop, &server);
    if (rc == 0)
        rc = uv_tcp_bind(&server, (const struct sockaddr *)&a, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_conn);
    if (rc == 0)
        rc = uv_run(loop, UV_RUN_DEFAULT);
    if (rc < 0) {
        fprintf(stderr, "echo_libuv: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}
