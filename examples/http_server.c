/* examples/http_server.c: an HTTP server with routes, a path parameter and
 * request logging, asked by its own client, then shut down gracefully.
 * `http_server PORT` serves until Ctrl-C instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cio.h>
#include <cio/http.h>

static int hello(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r, (void)arg;
    return cio_http_send(w, 200, "text/plain", "Hello, World!\n", 14);
}

static int greet(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    char body[128];
    int n = snprintf(body, sizeof body, "Hello, %s!\n",
                     cio_http_req_param(r, "name"));
    return cio_http_send(w, 200, "text/plain", body, (size_t)n);
}

static int ask(int port, const char *path)
{
    cio_http_client *c;
    int rc = cio_http_client_new(&c, NULL);
    if (rc < 0)
        return rc;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    cio_http_response *resp;
    rc = cio_http_get(c, &resp, url);
    if (rc == 0) {
        printf("GET %s -> %d %s", path, cio_http_response_status(resp),
               cio_http_response_body(resp, NULL));
        cio_http_response_free(resp);
    }
    cio_http_client_close(c);
    return rc;
}

static int run(void *arg)
{
    int port = *(int *)arg, log_fd = 1;
    cio_http_router *rt;
    int rc = cio_http_router_new(&rt);
    if (rc < 0)
        return rc;
    cio_http_router_use(rt, cio_http_log_middleware, &log_fd);
    cio_http_router_add(rt, "GET", "/", hello, NULL);
    cio_http_router_add(rt, "GET", "/hello/{name}", greet, NULL);
    cio_addr a;
    cio_http_server *srv;
    rc = cio_addr_ip(&a, "127.0.0.1", port);
    if (rc == 0)
        rc = cio_http_server_start(&srv, &a, cio_http_router_handler, rt, NULL);
    if (rc < 0) {
        cio_http_router_free(rt);
        return rc;
    }
    int bound = cio_addr_port(cio_http_server_addr(srv));
    if (port != 0) {
        printf("serving on http://127.0.0.1:%d/\n", bound);
        rc = cio_sleep(CIO_NEVER / 2); /* until Ctrl-C cancels us */
        rc = rc == -ECANCELED ? 0 : rc;
    } else {
        rc = ask(bound, "/");
        if (rc == 0)
            rc = ask(bound, "/hello/cio");
    }
    /* Shielded: close gracefully even when cancelled by Ctrl-C. */
    cio_scope sh;
    cio_scope_enter(&sh, cio_deadline_after(5 * CIO_SEC), CIO_SCOPE_SHIELD);
    cio_http_server_close(srv, 2 * CIO_SEC);
    cio_scope_exit(&sh);
    cio_http_router_free(rt);
    return rc;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int rc = cio_run(run, &port);
    if (rc < 0) {
        fprintf(stderr, "http_server: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
