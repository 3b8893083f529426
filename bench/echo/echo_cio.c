/* echo_cio.c: the cio echo server.
 *
 * The default handler is the asyncio-streams idiom: read what arrived with
 * cio_stream_read, write it back, drain. With "raw" as the second argument
 * the handler bypasses the stream's buffers and calls cio_recv and
 * cio_send_all on the stream's fd.
 *
 * Usage: echo_cio PORT [raw] (listens on 127.0.0.1). SIGTERM stops it. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cio.h>

/* asyncio's reader.read(n) with a small n: the stream buffers the recv. */
#define READ_SIZE 4096

typedef struct args {
    int port;
    cio_conn_fn handler;
} args;

static int echo_stream(cio_stream *s, void *arg)
{
    (void)arg;
    char buf[READ_SIZE];
    for (;;) {
        ssize_t n = cio_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            return (int)n;
        int rc = cio_stream_write(s, buf, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            return rc;
    }
}

static int echo_raw(cio_stream *s, void *arg)
{
    (void)arg;
    int fd = cio_stream_fd(s);
    char buf[READ_SIZE];
    for (;;) {
        ssize_t n = cio_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return (int)n;
        n = cio_send_all(fd, buf, (size_t)n, NULL);
        if (n < 0)
            return (int)n;
    }
}

static int serve(void *arg)
{
    const args *a = arg;
    cio_addr addr;
    int rc = cio_addr_ip(&addr, "127.0.0.1", a->port);
    if (rc < 0)
        return rc;
    cio_server *srv;
    rc = cio_server_start(&srv, &addr, a->handler, NULL, NULL);
    if (rc < 0)
        return rc;
    rc = cio_server_wait(srv);
    int crc = cio_server_close(srv, 0);
    /* SIGTERM cancels this task: that is the normal way to stop. */
    if (rc == -ECANCELED)
        return 0;
    return rc < 0 ? rc : crc;
}

int main(int argc, char **argv)
{
    char *end = "";
    long port = argc >= 2 ? strtol(argv[1], &end, 10) : -1;
    bool raw = argc == 3 && strcmp(argv[2], "raw") == 0;
    if (argc < 2 || argc > 3 || (argc == 3 && !raw) || *end != '\0' ||
        port < 1 || port > 65535) {
        fprintf(stderr, "usage: echo_cio PORT [raw]\n");
        return 2;
    }
    args a = {(int)port, raw ? echo_raw : echo_stream};
    int rc = cio_run(serve, &a);
    if (rc < 0) {
        fprintf(stderr, "echo_cio: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
