/* bench_switch: two tasks pass a token back and forth through two FIFO
 * queues N times (N = argv[1], default 1e6); prints the wall time per
 * round trip (two puts, two gets, two suspensions and two wakeups).
 * asyncio_bench.py switch does the same with two asyncio.Queue. */
#include "bench.h"

typedef struct pair {
    cio_queue *there, *back;
    long n;
} pair;

static int pong(void *arg)
{
    pair *p = arg;
    for (long i = 0; i < p->n; i++) {
        void *item;
        int rc = cio_queue_get(p->there, &item);
        if (rc < 0)
            return bench_fail("pong: cio_queue_get", rc);
        rc = cio_queue_put(p->back, item);
        if (rc < 0)
            return bench_fail("pong: cio_queue_put", rc);
    }
    return 0;
}

static int ping(pair *p)
{
    for (long i = 0; i < p->n; i++) {
        void *item;
        int rc = cio_queue_put(p->there, (void *)(uintptr_t)i);
        if (rc < 0)
            return bench_fail("ping: cio_queue_put", rc);
        rc = cio_queue_get(p->back, &item);
        if (rc < 0)
            return bench_fail("ping: cio_queue_get", rc);
        if ((uintptr_t)item != (uintptr_t)i) {
            fprintf(stderr, "ping: got item %p, want %ld\n", item, i);
            return -EPROTO;
        }
    }
    return 0;
}

static int run(pair *p)
{
    cio_task *peer;
    int rc = cio_spawn(&peer, pong, p);
    if (rc < 0)
        return bench_fail("cio_spawn", rc);
    int64_t t0 = bench_now();
    rc = ping(p);
    int64_t dt = bench_now() - t0;
    if (rc < 0)
        cio_task_cancel(peer);
    int prc = cio_task_join(peer);
    cio_task_free(peer);
    if (rc < 0)
        return rc;
    if (prc < 0)
        return prc;
    printf("switch %.1f ns\n", (double)dt / (double)p->n);
    return 0;
}

static int switch_main(void *arg)
{
    pair p = {.n = *(const long *)arg};
    int rc = cio_queue_new(&p.there, CIO_QUEUE_FIFO, 0, NULL);
    if (rc < 0)
        return bench_fail("cio_queue_new", rc);
    rc = cio_queue_new(&p.back, CIO_QUEUE_FIFO, 0, NULL);
    if (rc < 0) {
        cio_queue_free(p.there);
        return bench_fail("cio_queue_new", rc);
    }
    rc = run(&p);
    int f1 = cio_queue_free(p.back);
    int f2 = cio_queue_free(p.there);
    if (rc == 0 && (f1 < 0 || f2 < 0))
        rc = bench_fail("cio_queue_free", f1 < 0 ? f1 : f2);
    return rc;
}

int main(int argc, char **argv)
{
    long n = bench_size(argc, argv, 1000000);
    return bench_main(NULL, switch_main, &n);
}
