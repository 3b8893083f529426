/* bench_fsmeta: the cost of a file metadata call through cio, on the
 * io_uring backend's ring operations against the files pool (the same
 * backend with CIO_URING_OPS=none, and the epoll backend), beside the
 * plain system call. N (argv[1], default 20000) calls of each:
 *   stat        cio_file_stat of an existing file
 *   open_close  cio_file_open (O_RDONLY) + cio_file_close
 * Prints `fsmeta.<op>/<impl> <ns> ns/op` lines and, per op, the ratio
 * pool / ring (> 1: the ring is faster). One task issues the calls one
 * after another, so the figure is the latency of one call, the loop and
 * the hop to the kernel or to a thread included. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

static const char *path;
static long n;

typedef struct result {
    double stat_ns, open_ns;
} result;

static int run_calls(void *arg)
{
    result *r = arg;
    struct stat st;
    int rc = 0;
    int64_t t0 = bench_now();
    for (long i = 0; i < n && rc == 0; i++)
        rc = cio_file_stat(path, &st);
    int64_t t1 = bench_now();
    for (long i = 0; i < n && rc == 0; i++) {
        int fd;
        rc = cio_file_open(&fd, path, O_RDONLY, 0);
        if (rc == 0)
            rc = cio_file_close(fd);
    }
    int64_t t2 = bench_now();
    if (rc < 0)
        return bench_fail("file call", rc);
    r->stat_ns = (double)(t1 - t0) / (double)n;
    r->open_ns = (double)(t2 - t1) / (double)n;
    return 0;
}

static int measure(const char *impl, int backend, const char *ops,
                   result *r)
{
    if (ops)
        setenv("CIO_URING_OPS", ops, 1);
    else
        unsetenv("CIO_URING_OPS");
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.backend = backend;
    cfg.handle_signals = 0;
    int rc = cio_run_config(&cfg, run_calls, r);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", impl, cio_strerror(rc));
        return rc;
    }
    printf("fsmeta.stat/%s %.0f ns/op\n", impl, r->stat_ns);
    printf("fsmeta.open_close/%s %.0f ns/op\n", impl, r->open_ns);
    return 0;
}

static void plain(result *r)
{
    struct stat st;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        stat(path, &st);
    int64_t t1 = bench_now();
    for (long i = 0; i < n; i++)
        close(open(path, O_RDONLY | O_CLOEXEC));
    int64_t t2 = bench_now();
    r->stat_ns = (double)(t1 - t0) / (double)n;
    r->open_ns = (double)(t2 - t1) / (double)n;
    printf("fsmeta.stat/syscall %.0f ns/op\n", r->stat_ns);
    printf("fsmeta.open_close/syscall %.0f ns/op\n", r->open_ns);
}

int main(int argc, char **argv)
{
    n = bench_size(argc, argv, 20000);
    char tmpl[] = "/tmp/cio-bench-fsmeta-XXXXXX";
    int tfd = mkstemp(tmpl);
    if (tfd < 0)
        return 1;
    close(tfd);
    path = tmpl;
    result sys, ring, pool, ep;
    plain(&sys);
    int rc = measure("ring", CIO_BACKEND_URING, NULL, &ring);
    if (rc == 0)
        rc = measure("uring-pool", CIO_BACKEND_URING, "none", &pool);
    if (rc == 0)
        rc = measure("epoll-pool", CIO_BACKEND_EPOLL, NULL, &ep);
    if (rc == 0) {
        printf("fsmeta.stat.pool_over_ring %.2f x\n",
               pool.stat_ns / ring.stat_ns);
        printf("fsmeta.open_close.pool_over_ring %.2f x\n",
               pool.open_ns / ring.open_ns);
    }
    unlink(path);
    return rc == 0 ? 0 : 1;
}
