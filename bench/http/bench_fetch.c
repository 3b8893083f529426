/* bench/http: the cio client fetching COUNT small responses from a running
 * server with CONCURRENCY in flight over one client (a pool of up to
 * CONCURRENCY keep-alive connections), through cio_http_fetch_all. The
 * same workload as fetch_aiohttp.py. Prints `fetch/cio VALUE req/s`.
 * Usage: bench_fetch URL [COUNT [CONCURRENCY]]  (10000, 100) */
#include <stdio.h>
#include <stdlib.h>

#include <cio/http.h>

#include "../bench.h"

typedef struct job {
    const char *url;
    long count;
    long conc;
} job;

static int fetch(void *arg)
{
    job *j = arg;
    cio_http_fetch *items = calloc((size_t)j->count, sizeof *items);
    if (items == NULL)
        return -ENOMEM;
    for (long i = 0; i < j->count; i++)
        items[i].url = j->url;
    cio_http_client_opts co = {.max_per_host = (size_t)j->conc,
                               .max_total = (size_t)j->conc};
    cio_http_client *c;
    int rc = cio_http_client_new(&c, &co);
    if (rc < 0) {
        free(items);
        return bench_fail("cio_http_client_new", rc);
    }
    cio_http_fetch_opts fo = {.concurrency = (size_t)j->conc};
    int64_t t0 = bench_now();
    rc = cio_http_fetch_all(c, items, (size_t)j->count, &fo);
    int64_t dt = bench_now() - t0;
    long bad = 0;
    for (long i = 0; i < j->count; i++)
        bad += items[i].result != 0 || items[i].status != 200;
    if (rc < 0)
        bench_fail("cio_http_fetch_all", rc);
    else if (bad > 0)
        fprintf(stderr, "bench_fetch: %ld of %ld requests failed\n", bad,
                j->count);
    else
        printf("fetch/cio %.0f req/s\n", (double)j->count * 1e9 / (double)dt);
    cio_http_fetch_release(items, (size_t)j->count);
    free(items);
    int rc2 = cio_http_client_close(c);
    if (rc == 0 && bad > 0)
        rc = -EIO;
    return rc < 0 ? rc : rc2;
}

static long arg_long(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || v < 1 || v > 1e9) {
        fprintf(stderr, "bench_fetch: bad %s '%s'\n", what, s);
        exit(2);
    }
    return (long)v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: bench_fetch URL [COUNT [CONCURRENCY]]\n");
        return 2;
    }
    job j = {.url = argv[1], .count = 10000, .conc = 100};
    if (argc > 2)
        j.count = arg_long(argv[2], "count");
    if (argc > 3)
        j.conc = arg_long(argv[3], "concurrency");
    return bench_main(NULL, fetch, &j);
}
