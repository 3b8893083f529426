/* bench_pg.c: point SELECTs by primary key on pgbench_accounts, the
 * query of `pgbench -S`, from TASKS tasks sharing a pool of POOL
 * connections. Each query borrows a connection, runs
 * SELECT abalance FROM pgbench_accounts WHERE aid = $1 with a random aid
 * (extended protocol, one round trip) and gives the connection back.
 *
 * Usage: bench_pg CONNINFO [SECONDS [TASKS [POOL [ACCOUNTS]]]]
 * (defaults 5, 32, 8, 100000). Prints `pg.qps N q/s`,
 * `pg.cpu_us_per_q X us` (this process's CPU per query) and
 * `pg.queries N`. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <cio.h>
#include <cio/pg.h>

typedef struct bench {
    const char *conninfo;
    int64_t seconds;
    int tasks, pool_size;
    long accounts;
    cio_pg_pool *pool;
    int64_t stop;
    long queries;
    int err;
} bench;

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * CIO_SEC +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * CIO_USEC;
}

static int one_query(bench *b, unsigned *seed)
{
    cio_pg *c;
    int rc = cio_pg_pool_acquire(b->pool, &c);
    if (rc < 0)
        return rc;
    cio_pg_param p;
    cio_pg_param_int32(&p, (int32_t)(rand_r(seed) % b->accounts) + 1);
    cio_pg_result *r;
    rc = cio_pg_query(c, &r,
                      "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                      &p, 1, 0);
    if (rc == 1) {
        int32_t v;
        rc = cio_pg_get_int32(r, 0, 0, &v);
        cio_pg_result_free(r);
    } else if (rc >= 0) {
        cio_pg_result_free(r);
        rc = -ENOENT; /* the account is missing: not initialised */
    }
    cio_pg_pool_release(b->pool, c);
    return rc;
}

static int worker(void *arg)
{
    bench *b = arg;
    unsigned seed = (unsigned)cio_task_id(cio_current()) * 2654435761u;
    while (cio_now() < b->stop) {
        int rc = one_query(b, &seed);
        if (rc < 0) {
            b->err = rc;
            return rc;
        }
        b->queries++;
    }
    return 0;
}

static int run(void *arg)
{
    bench *b = arg;
    cio_pg_pool_config cfg = {.conninfo = b->conninfo,
                              .min_size = (size_t)b->pool_size,
                              .max_size = (size_t)b->pool_size};
    int rc = cio_pg_pool_create(&b->pool, &cfg);
    if (rc < 0)
        return rc;
    /* Warm up: open every connection before timing. */
    b->stop = cio_now() + CIO_SEC / 2;
    cio_group *g;
    rc = cio_group_new(&g, 0);
    for (int i = 0; rc == 0 && i < b->tasks; i++)
        rc = cio_group_spawn(g, NULL, worker, b);
    int jr = cio_group_join(g);
    cio_group_free(g);
    if (rc == 0)
        rc = jr;
    if (rc == 0) {
        b->queries = 0;
        int64_t t0 = cio_now(), c0 = cpu_ns();
        b->stop = t0 + b->seconds * CIO_SEC;
        rc = cio_group_new(&g, 0);
        for (int i = 0; rc == 0 && i < b->tasks; i++)
            rc = cio_group_spawn(g, NULL, worker, b);
        jr = cio_group_join(g);
        cio_group_free(g);
        if (rc == 0)
            rc = jr;
        double secs = (double)(cio_now() - t0) / 1e9;
        double cpu = (double)(cpu_ns() - c0) / 1e3;
        if (rc == 0 && b->queries > 0) {
            printf("pg.qps %.1f q/s\n", (double)b->queries / secs);
            printf("pg.cpu_us_per_q %.2f us\n", cpu / (double)b->queries);
            printf("pg.queries %ld n\n", b->queries);
        }
    }
    int cr = cio_pg_pool_close(b->pool);
    return rc < 0 ? rc : cr;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_pg CONNINFO [SECONDS [TASKS [POOL "
                        "[ACCOUNTS]]]]\n");
        return 2;
    }
    bench b = {.conninfo = argv[1],
               .seconds = argc > 2 ? atoi(argv[2]) : 5,
               .tasks = argc > 3 ? atoi(argv[3]) : 32,
               .pool_size = argc > 4 ? atoi(argv[4]) : 8,
               .accounts = argc > 5 ? atol(argv[5]) : 100000};
    if (b.seconds <= 0 || b.tasks <= 0 || b.pool_size <= 0 ||
        b.accounts <= 0) {
        fprintf(stderr, "bench_pg: bad argument\n");
        return 2;
    }
    int rc = cio_run(run, &b);
    if (rc < 0) {
        fprintf(stderr, "bench_pg: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
