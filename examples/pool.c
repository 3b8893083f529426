/* examples/pool.c: `async with pool.acquire() as conn:` (asyncpg's Pool,
 * aiohttp's connector limit).
 *
 * Twenty workers share at most three TCP connections to a line server.
 * Each borrows a connection, sends a request, reads the reply and gives
 * the connection back; a connection that failed mid-request is released
 * as broken, so the pool closes it instead of handing it out again. The
 * pool opens connections lazily, health-checks idle ones that sat for a
 * while, and closes them all at the end. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <cio.h>
#include <cio/pool.h>

/* The server: answers each line with "ok: <line>". */
static int handle(cio_stream *s, void *arg)
{
    (void)arg;
    char line[128], reply[160];
    for (;;) {
        ssize_t n = cio_stream_readline(s, line, sizeof line);
        if (n <= 0)
            return (int)n;
        int len = snprintf(reply, sizeof reply, "ok: %.*s", (int)n, line);
        int rc = cio_stream_write(s, reply, (size_t)len);
        if (rc < 0)
            return rc;
    }
}

static int port;

/* How the pool opens and closes a connection. */
static int open_conn(void *ctx, void **conn)
{
    (void)ctx;
    return cio_open_connection((cio_stream **)conn, "127.0.0.1", port, NULL);
}

static void close_conn(void *ctx, void *conn)
{
    (void)ctx;
    cio_stream_close(conn);
}

/* An idle connection the server closed reads as end of stream: look
 * without waiting (what urllib3 and aiohttp do before reusing one). */
static int check_conn(void *ctx, void *conn)
{
    (void)ctx;
    if (cio_stream_buffered(conn) > 0)
        return -EPROTO; /* stray bytes: out of step with the server */
    char c;
    ssize_t n = recv(cio_stream_fd(conn), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return CIO_EOF;
    return n < 0 && errno == EAGAIN ? 0 : -EPROTO;
}

static int worker(void *arg)
{
    cio_pool *pool = arg;
    void *conn;
    int rc = cio_pool_acquire(pool, &conn); /* waits for a free one */
    if (rc < 0)
        return rc;
    cio_stream *s = conn;
    char reply[160];
    rc = cio_stream_write(s, "hello\n", 6);
    ssize_t n = rc < 0 ? rc : cio_stream_readline(s, reply, sizeof reply);
    /* Broken (error or early end): the pool closes it. */
    bool broken = n <= 0;
    cio_pool_release(pool, conn, broken);
    return n <= 0 ? (n == 0 ? CIO_EOF : (int)n) : 0;
}

static int run(void *arg)
{
    (void)arg;
    cio_addr a;
    cio_server *srv;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_server_start(&srv, &a, handle, NULL, NULL);
    if (rc < 0)
        return rc;
    port = cio_addr_port(cio_server_addr(srv));

    cio_pool_config cfg = {
        .max_size = 3,
        .idle_timeout = 30 * CIO_SEC,
        .check_after = CIO_SEC,
        .open = open_conn,
        .close = close_conn,
        .check = check_conn,
    };
    cio_pool *pool;
    rc = cio_pool_create(&pool, &cfg);
    if (rc < 0) {
        cio_server_close(srv, 0);
        return rc;
    }
    enum { N = 20 };
    cio_call calls[N];
    for (int i = 0; i < N; i++)
        calls[i] = (cio_call){worker, pool, 0};
    cio_scope sc; /* the whole batch under one deadline */
    rc = cio_scope_enter(&sc, cio_deadline_after(5 * CIO_SEC), 0);
    if (rc == 0) {
        rc = cio_gather(calls, N, 0);
        int xrc = cio_scope_exit(&sc);
        rc = xrc < 0 ? xrc : rc;
    }
    cio_pool_stats st;
    cio_pool_stats_get(pool, &st);
    printf("%d requests over %zu connections (%llu opened)\n", N, st.size,
           (unsigned long long)st.opened);
    int prc = cio_pool_close(pool); /* closes the idle connections */
    int crc = cio_server_close(srv, 100 * CIO_MSEC);
    return rc < 0 ? rc : prc < 0 ? prc : crc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0)
        fprintf(stderr, "pool: %s\n", cio_strerror(rc));
    return rc < 0;
}
