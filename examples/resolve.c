/* examples/resolve.c: loop.getaddrinfo() is cio_resolve, and
 * asyncio.open_connection(host, port, happy_eyeballs_delay=0.25) is
 * cio_open_connection_host.
 *
 * Usage: resolve [host]   (default "localhost", which never reaches the
 * network). Prints the addresses of `host`, then connects by name to a
 * small echo server of its own on "localhost". The server listens on
 * 127.0.0.1 only: where "localhost" also has ::1, that attempt is refused
 * at once and IPv4 wins without waiting for the happy-eyeballs delay. */
#include <stdio.h>
#include <cio.h>
#include <cio/dns.h>

static int echo(cio_stream *s, void *arg)
{
    (void)arg;
    char line[128];
    ssize_t n = cio_stream_readline(s, line, sizeof line);
    if (n <= 0)
        return (int)n;
    int rc = cio_stream_write(s, line, (size_t)n);
    return rc < 0 ? rc : cio_stream_flush(s);
}

static int show(const char *host)
{
    cio_addrinfo *ai;
    int rc = cio_resolve(host, 443, AF_UNSPEC, &ai); /* getaddrinfo */
    if (rc < 0)
        return rc;
    for (cio_addrinfo *p = ai; p; p = p->next) {
        char buf[64];
        if (cio_addr_format(&p->addr, buf, sizeof buf) >= 0)
            printf("%s -> %s (ttl %u s)\n", host, buf, p->ttl);
    }
    cio_addrinfo_free(ai);
    return 0;
}

static int talk(int port)
{
    cio_stream *s;
    cio_connect_opts o = {.timeout = 5 * CIO_SEC}; /* lookup + connect */
    int rc = cio_open_connection_host(&s, "localhost", port, &o);
    if (rc < 0)
        return rc;
    char line[128];
    rc = cio_stream_write(s, "hello by name\n", 14);
    ssize_t n = rc < 0 ? rc : cio_stream_readline(s, line, sizeof line);
    if (n > 0)
        printf("echoed: %.*s", (int)n, line);
    rc = cio_stream_close(s);
    return n < 0 ? (int)n : rc;
}

static int run(void *arg)
{
    const char *host = arg;
    printf("resolver: %s\n", cio_dns_resolver());
    int rc = show(host);
    if (rc < 0) {
        fprintf(stderr, "resolve %s: %s\n", host, cio_strerror(rc));
        return rc;
    }
    cio_addr a;
    cio_server *srv;
    rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_server_start(&srv, &a, echo, NULL, NULL);
    if (rc < 0)
        return rc;
    rc = talk(cio_addr_port(cio_server_addr(srv)));
    int rc2 = cio_server_close(srv, CIO_SEC);
    return rc < 0 ? rc : rc2;
}

int main(int argc, char **argv)
{
    int rc = cio_run(run, argc > 1 ? argv[1] : "localhost");
    if (rc < 0) {
        fprintf(stderr, "resolve: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
