/* examples/demo.c (`make demo`): an HTTP server and a concurrent fetcher,
 * both cio, in one process, in about two seconds.
 *
 * The server routes GET /items/{id}. Like real backends it misbehaves
 * sometimes: every 7th item answers 503 on its first request, every 23rd
 * takes 400 ms, and /items/0 is missing (404).
 * The fetcher asks for 300 items with at most 16 requests in flight, a
 * 150 ms timeout per attempt and two retries with jittered exponential
 * backoff (asyncio's gather + Semaphore + retry recipe, as one call),
 * while a progress line ticks. Then the server shuts down gracefully
 * with a slow request still in flight: it stops accepting, the request
 * finishes within the grace period, and the summary table is printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cio.h>
#include <cio/http.h>

#define ITEMS 300

static int64_t t0;
static char first_seen[ITEMS]; /* the server remembers flaky first tries */

static double elapsed(void)
{
    return (double)(cio_now() - t0) / CIO_SEC;
}

/* GET /items/{id} */
static int item(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    int id = atoi(cio_http_req_param(r, "id"));
    if (id <= 0 || id >= ITEMS)
        return cio_http_send(w, 404, "text/plain", "no such item\n", 13);
    if (id % 7 == 0 && !first_seen[id]) {
        first_seen[id] = 1; /* fails once, then works */
        return cio_http_send(w, 503, "text/plain", "busy, retry\n", 12);
    }
    if (id % 23 == 0) {
        int rc = cio_sleep(400 * CIO_MSEC); /* slower than any timeout */
        if (rc < 0)
            return rc;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "{\"id\": %d, \"square\": %d}\n", id,
                     id * id);
    return cio_http_send(w, 200, "application/json", body, (size_t)n);
}

/* GET /slow: in flight when the shutdown starts. */
static int slow(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)r;
    (void)arg;
    int rc = cio_sleep(300 * CIO_MSEC);
    return rc < 0 ? rc : cio_http_send(w, 200, "text/plain", "done\n", 5);
}

typedef struct progress {
    cio_http_server *srv;
    bool done;
} progress;

/* The progress line (one line per tick when not on a terminal): requests
 * the server answered so far. */
static int ticker(void *arg)
{
    progress *p = arg;
    bool tty = isatty(1);
    while (!p->done) {
        printf("%s  [%5.2f s] server answered %4llu requests%s",
               tty ? "\r" : "", elapsed(),
               (unsigned long long)cio_http_server_requests(p->srv),
               tty ? "" : "\n");
        fflush(stdout);
        if (cio_sleep(100 * CIO_MSEC) < 0)
            break;
    }
    if (tty)
        printf("\n");
    return 0;
}

static char base[64];

static int get_slow(void *arg)
{
    char url[96];
    snprintf(url, sizeof url, "%s/slow", base);
    cio_http_response *resp;
    int rc = cio_http_get(arg, &resp, url);
    if (rc == 0) {
        printf("  slow request finished during the shutdown: %d %s\n",
               cio_http_response_status(resp),
               cio_http_reason(cio_http_response_status(resp)));
        cio_http_response_free(resp);
    }
    return rc;
}

/* The summary table: outcome by kind. */
static void summary(const cio_http_fetch *it, size_t n, double secs)
{
    size_t ok = 0, retried = 0, missing = 0, failed = 0, attempts = 0;
    for (size_t i = 0; i < n; i++) {
        attempts += (size_t)it[i].attempts;
        if (it[i].result == 0 && it[i].status == 200)
            ok++;
        else if (it[i].result == 0)
            missing++;
        else
            failed++;
        if (it[i].attempts > 1 && it[i].result == 0)
            retried++;
    }
    printf("\n  %-34s %6s\n", "outcome", "items");
    printf("  %-34s %6zu\n", "200 OK", ok);
    printf("  %-34s %6zu\n", "  of which after a retry (503)", retried);
    printf("  %-34s %6zu\n", "404 Not Found (not retried)", missing);
    printf("  %-34s %6zu\n", "failed: timed out 3 times", failed);
    printf("  %-34s %6zu\n", "requests made", attempts);
    printf("  %-34s %6.2f s\n\n", "time", secs);
    for (size_t i = 0; i < n; i++)
        if (it[i].result < 0) {
            printf("  e.g. %s: %s after %d attempts\n", it[i].url,
                   cio_err_name(it[i].result), it[i].attempts);
            break;
        }
}

static int run(void *arg)
{
    (void)arg;
    t0 = cio_now();
    cio_http_router *rt;
    int rc = cio_http_router_new(&rt);
    if (rc < 0)
        return rc;
    cio_http_router_add(rt, "GET", "/items/{id}", item, NULL);
    cio_http_router_add(rt, "GET", "/slow", slow, NULL);
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    cio_http_server *srv;
    rc = cio_http_server_start(&srv, &a, cio_http_router_handler, rt, NULL);
    if (rc < 0) {
        cio_http_router_free(rt);
        return rc;
    }
    snprintf(base, sizeof base, "http://127.0.0.1:%d",
             cio_addr_port(cio_http_server_addr(srv)));
    printf("cio demo: HTTP server on %s, fetching %d items\n", base,
           ITEMS - 1);

    cio_http_client *cl = NULL;
    rc = cio_http_client_new(&cl, &(cio_http_client_opts){.max_per_host = 16});
    static cio_http_fetch items[ITEMS - 1];
    static char urls[ITEMS - 1][96];
    for (int i = 0; i < ITEMS - 1; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/items/%d", base, i);
        items[i] = (cio_http_fetch){.url = urls[i]};
    }
    progress p = {srv, false};
    cio_task *tick = NULL;
    if (rc == 0)
        rc = cio_spawn(&tick, ticker, &p);
    if (rc == 0) {
        cio_http_fetch_opts fo = {.concurrency = 16,
                                  .timeout = 150 * CIO_MSEC,
                                  .retries = 2,
                                  .backoff = 20 * CIO_MSEC};
        int64_t start = cio_now();
        int failed = cio_http_fetch_all(cl, items, ITEMS - 1, &fo);
        double secs = (double)(cio_now() - start) / CIO_SEC;
        p.done = true;
        cio_task_join(tick);
        cio_task_free(tick);
        rc = failed < 0 ? failed : 0;
        if (rc == 0)
            summary(items, ITEMS - 1, secs);
        cio_http_fetch_release(items, ITEMS - 1);
    }

    /* Graceful shutdown with a request in flight. */
    cio_task *s = NULL;
    if (rc == 0)
        rc = cio_spawn(&s, get_slow, cl);
    if (rc == 0) {
        cio_sleep(50 * CIO_MSEC); /* let it reach the handler */
        printf("  [%5.2f s] shutting down: no new connections, 1 s grace\n",
               elapsed());
    }
    int crc = cio_http_server_close(srv, CIO_SEC);
    if (s) {
        int src = cio_task_join(s);
        cio_task_free(s);
        rc = rc < 0 ? rc : src;
    }
    printf("  [%5.2f s] server closed after %s\n", elapsed(),
           crc == 0 ? "every request finished" : cio_err_name(crc));
    cio_http_client_close(cl);
    cio_http_router_free(rt);
    return rc < 0 ? rc : crc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0)
        fprintf(stderr, "demo: %s\n", cio_strerror(rc));
    return rc < 0;
}
