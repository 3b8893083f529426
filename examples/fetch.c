/* examples/fetch.c: fetch many URLs, at most 4 at a time, each retried
 * with backoff (asyncio.gather + Semaphore + retry, one call).
 * `fetch URL...` fetches those; without arguments it fetches from a small
 * local server whose /flaky/N route fails the first N % 3 requests. */
#include <stdio.h>
#include <string.h>

#include <cio.h>
#include <cio/http.h>

typedef struct args {
    int argc;
    char **argv;
} args;

static int flaky(cio_http_req *r, cio_http_writer *w, void *arg)
{
    int *calls = arg;
    const char *n = cio_http_req_param(r, "n");
    int i = (n[0] - '0') % 6;
    if (calls[i]++ < i % 3)
        return cio_http_send(w, 503, NULL, "try again", 9);
    return cio_http_send(w, 200, "text/plain", n, strlen(n));
}

static int fetch(cio_http_client *c, char **urls, int n)
{
    cio_http_fetch items[64];
    if (n > 64)
        n = 64; /* this example's limit */
    for (int i = 0; i < n; i++)
        items[i] = (cio_http_fetch){.url = urls[i]};
    cio_http_fetch_opts o = {.concurrency = 4,
                             .timeout = 10 * CIO_SEC,
                             .retries = 3,
                             .backoff = 50 * CIO_MSEC};
    int failed = cio_http_fetch_all(c, items, (size_t)n, &o);
    if (failed < 0)
        return failed;
    for (int i = 0; i < n; i++)
        printf("%-40s %s status %d, %zu bytes, %d attempt(s)\n", urls[i],
               items[i].result < 0 ? cio_err_name(items[i].result) : "ok",
               items[i].status, items[i].body_len, items[i].attempts);
    cio_http_fetch_release(items, (size_t)n);
    return failed > 0 ? CIO_ESERVER : 0;
}

static int run(void *arg)
{
    args *a = arg;
    cio_http_client *c;
    int rc = cio_http_client_new(&c, NULL);
    if (rc < 0)
        return rc;
    if (a->argc > 1) {
        rc = fetch(c, a->argv + 1, a->argc - 1);
        cio_http_client_close(c);
        return rc;
    }
    int calls[6] = {0};
    cio_http_router *rt;
    cio_http_server *srv;
    cio_addr addr;
    rc = cio_http_router_new(&rt);
    if (rc < 0)
        goto out;
    cio_http_router_add(rt, "GET", "/flaky/{n}", flaky, calls);
    cio_addr_ip(&addr, "127.0.0.1", 0);
    rc = cio_http_server_start(&srv, &addr, cio_http_router_handler, rt, NULL);
    if (rc == 0) {
        static char buf[6][64];
        char *urls[6];
        int port = cio_addr_port(cio_http_server_addr(srv));
        for (int i = 0; i < 6; i++) {
            snprintf(buf[i], sizeof buf[i], "http://127.0.0.1:%d/flaky/%d",
                     port, i);
            urls[i] = buf[i];
        }
        rc = fetch(c, urls, 6);
        cio_http_server_close(srv, CIO_SEC);
    }
    cio_http_router_free(rt);
out:
    cio_http_client_close(c);
    return rc;
}

int main(int argc, char **argv)
{
    args a = {argc, argv};
    int rc = cio_run(run, &a);
    if (rc < 0) {
        fprintf(stderr, "fetch: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
