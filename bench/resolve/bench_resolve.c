/* bench_resolve: the cost of one cio_resolve, in ns, for N lookups
 * (argv[1], default 1e5; the uncached ones use N / 10). Prints:
 *   resolve_cached        answered from the loop's cache ("www.test")
 *   resolve_hosts         answered from the hosts file ("localhost")
 *   resolve_hosts_x64     the same by 64 tasks at once (per lookup)
 *   resolve_uncached      through c-ares to a fake DNS server on loopback,
 *                         one lookup at a time; the server is a task of
 *                         the same loop, so its work is counted too
 *   resolve_uncached_x64  the same with 64 lookups in flight (per lookup)
 * Without c-ares only resolve_hosts is printed. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dns_server.h"

#define PARALLEL 64

static const dns_rr zone[] = {
    {"www.test", RR_A, 3600, "10.0.0.1", 0, 0, 0},
};

static long n_lookups;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CIO_SEC + ts.tv_nsec;
}

/* `n` lookups of `host`; returns ns per lookup or an error. */
static int64_t lookups(const char *host, long n, int64_t *ns)
{
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        cio_addrinfo *ai;
        int rc = cio_resolve(host, 80, AF_INET, &ai);
        if (rc < 0)
            return rc;
        cio_addrinfo_free(ai);
    }
    *ns = (now_ns() - t0) / n;
    return 0;
}

typedef struct job {
    const char *host;
    long n;
} job;

static int worker(void *arg)
{
    const job *j = arg;
    int64_t ns;
    return (int)lookups(j->host, j->n, &ns);
}

/* `n` lookups of `host` by PARALLEL tasks at once. */
static int parallel(const char *host, long n, int64_t *ns)
{
    long per = n / PARALLEL > 0 ? n / PARALLEL : 1;
    job j = {host, per};
    cio_call calls[PARALLEL];
    for (int i = 0; i < PARALLEL; i++)
        calls[i] = (cio_call){worker, &j, 0};
    int64_t t0 = now_ns();
    int rc = cio_gather(calls, PARALLEL, 0);
    *ns = (now_ns() - t0) / (per * PARALLEL);
    return rc;
}

static int with_server(void)
{
    dns_server s;
    int rc = dns_server_start(&s, zone, 1);
    int64_t ns;
    if (rc == 0)
        rc = dns_server_use(&s, NULL);
    if (rc == 0)
        rc = (int)lookups("www.test", 1, &ns); /* fill the cache */
    if (rc == 0)
        rc = (int)lookups("www.test", n_lookups, &ns);
    if (rc == 0)
        printf("resolve_cached %lld ns\n", (long long)ns);
    cio_dns_config cfg = {.servers = s.servers,
                          .hosts_file = "",
                          .no_search = true,
                          .no_cache = true};
    if (rc == 0)
        rc = cio_dns_configure(&cfg);
    long m = n_lookups / 10 > 0 ? n_lookups / 10 : 1;
    if (rc == 0)
        rc = (int)lookups("www.test", m, &ns);
    if (rc == 0)
        printf("resolve_uncached %lld ns\n", (long long)ns);
    if (rc == 0)
        rc = parallel("www.test", m, &ns);
    if (rc == 0)
        printf("resolve_uncached_x64 %lld ns\n", (long long)ns);
    dns_server_stop(&s);
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    int64_t ns;
    int rc = (int)lookups("localhost", n_lookups, &ns);
    if (rc < 0)
        return rc;
    printf("resolve_hosts %lld ns\n", (long long)ns);
    rc = parallel("localhost", n_lookups, &ns);
    if (rc < 0)
        return rc;
    printf("resolve_hosts_x64 %lld ns\n", (long long)ns);
    return HAVE_CARES() ? with_server() : 0;
}

int main(int argc, char **argv)
{
    n_lookups = argc > 1 ? (long)atof(argv[1]) : 100000;
    if (n_lookups < 1)
        n_lookups = 1;
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "bench_resolve: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
