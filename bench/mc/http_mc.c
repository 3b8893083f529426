/* http_mc.c: bench/http's "Hello, World!" server on several loops, each
 * listening on the port with SO_REUSEPORT.
 * Usage: http_mc PORT LOOPS (127.0.0.1). Runs until SIGTERM/SIGINT. */
#include <stdio.h>
#include <stdlib.h>

#include <cio.h>
#include <cio/http.h>
#include <cio/xloop.h>

static int port;

static int hello(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    return cio_http_send(w, 200, "text/plain", "Hello, World!", 13);
}

static int serve(void *arg)
{
    (void)arg;
    cio_addr a;
    int rc = cio_addr_ip(&a, "127.0.0.1", port);
    if (rc < 0)
        return rc;
    cio_http_server_opts o = {.listen_flags = CIO_REUSEPORT};
    cio_http_server *s;
    rc = cio_http_server_start(&s, &a, hello, NULL, &o);
    if (rc < 0)
        return rc;
    /* Runs until SIGTERM cancels every loop's main. */
    int wr = cio_sleep(CIO_NEVER / 2);
    cio_http_server_close(s, 0);
    return wr == -ECANCELED ? 0 : wr;
}

int main(int argc, char **argv)
{
    char *end = "";
    long loops = argc == 3 ? strtol(argv[2], &end, 10) : -1;
    port = argc == 3 ? atoi(argv[1]) : 0;
    if (argc != 3 || *end || loops < 1 || loops > 64 || port < 1 ||
        port > 65535) {
        fprintf(stderr, "usage: http_mc PORT LOOPS\n");
        return 2;
    }
    cio_multi_config cfg;
    cio_multi_config_init(&cfg);
    cfg.loops = (unsigned)loops;
    cfg.loop.shutdown_grace = CIO_SEC / 10;
    int rc = cio_run_multi(&cfg, serve, NULL);
    if (rc < 0 && rc != -ECANCELED) {
        fprintf(stderr, "http_mc: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
