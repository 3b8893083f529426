/* examples/echo.c: asyncio.start_server() and open_connection().
 *
 * A line echo server on 127.0.0.1 (the kernel picks the port) and three
 * clients talking to it at once, the whole exchange under a deadline.
 * The server runs each connection's handler as a task of its own. Reads
 * are line-based with a size limit; writes are buffered, with drain as
 * backpressure. Closing the server is graceful: it stops accepting and
 * gives open connections a grace period. */
#include <stdio.h>
#include <cio.h>

static int handle(cio_stream *s, void *arg)
{
    (void)arg;
    char line[256];
    for (;;) {
        ssize_t n = cio_stream_readline(s, line, sizeof line);
        if (n <= 0)
            return (int)n; /* 0: the client closed; or an error */
        int rc = cio_stream_write(s, line, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            return rc;
    }
}

static int port;

static int client(void *arg)
{
    const char *name = arg;
    cio_stream *s;
    int rc = cio_open_connection(&s, "127.0.0.1", port, NULL);
    if (rc < 0)
        return rc;
    for (int i = 1; i <= 2; i++) {
        char msg[64], reply[64];
        int len = snprintf(msg, sizeof msg, "%s, line %d\n", name, i);
        rc = cio_stream_write(s, msg, (size_t)len);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            break;
        ssize_t n = cio_stream_readline(s, reply, sizeof reply);
        if (n <= 0) {
            rc = n == 0 ? CIO_EOF : (int)n; /* the server hung up early */
            break;
        }
        printf("%s got back: %.*s", name, (int)n, reply);
    }
    int crc = cio_stream_close(s);
    return rc < 0 ? rc : crc;
}

static int run(void *arg)
{
    (void)arg;
    cio_addr a;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    cio_server *srv;
    if (rc == 0)
        rc = cio_server_start(&srv, &a, handle, NULL, NULL);
    if (rc < 0)
        return rc;
    port = cio_addr_port(cio_server_addr(srv));
    printf("serving on port %d\n", port);

    cio_call clients[] = {{client, "ada", 0}, {client, "bob", 0},
                          {client, "cy", 0}};
    cio_scope sc; /* every exchange over the network gets a deadline */
    rc = cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0);
    if (rc == 0) {
        rc = cio_gather(clients, 3, 0);
        int xrc = cio_scope_exit(&sc);
        rc = xrc < 0 ? xrc : rc;
    }
    int crc = cio_server_close(srv, 100 * CIO_MSEC);
    return rc < 0 ? rc : crc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "echo: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
