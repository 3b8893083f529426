/* bench/http: the cio HTTP server answering "Hello, World!" to GET /,
 * through a router (as an application would: anything else is 404 or 405)
 * with the server's default limits; with DIR, also the files under it at
 * /static/ (the static-file handler). Usage: http_cio PORT [DIR]. Runs
 * until SIGTERM/SIGINT. */
#include <stdio.h>
#include <stdlib.h>

#include <cio.h>
#include <cio/http.h>

static int port;
static const char *dir;

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
    cio_http_router *rt;
    rc = cio_http_router_new(&rt);
    if (rc < 0)
        return rc;
    cio_http_server *s = NULL;
    cio_http_static *st = NULL;
    rc = cio_http_router_add(rt, "GET", "/", hello, NULL);
    if (rc == 0 && dir != NULL)
        rc = cio_http_static_new(&st, dir);
    if (rc == 0 && st != NULL)
        rc = cio_http_router_add(rt, "GET", "/static/{path...}",
                                 cio_http_static_handler, st);
    if (rc == 0)
        rc = cio_http_server_start(&s, &a, cio_http_router_handler, rt, NULL);
    if (rc == 0) {
        /* Runs until SIGTERM cancels this task. */
        int wr = cio_sleep(CIO_NEVER / 2);
        cio_http_server_close(s, 0);
        rc = wr == -ECANCELED ? 0 : wr;
    }
    cio_http_router_free(rt);
    cio_http_static_free(st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: http_cio PORT [DIR]\n");
        return 2;
    }
    port = atoi(argv[1]);
    dir = argc == 3 ? argv[2] : NULL;
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.shutdown_grace = CIO_SEC / 10;
    int rc = cio_run_config(&cfg, serve, NULL);
    if (rc < 0) {
        fprintf(stderr, "http_cio: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
