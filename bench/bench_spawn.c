/* bench_spawn: spawn, join and free N tasks one after another (N = argv[1],
 * default 1e6) and print the wall time per task. Each task returns at
 * once, so this is the fixed cost of a task's life: the task struct, a
 * stack from the pool, its first switch in and out, and waking the joiner.
 * asyncio_bench.py spawn does create_task + await. */
#include "bench.h"

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static int spawn_join(void *arg)
{
    long n = *(const long *)arg;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        cio_task *t;
        int rc = cio_spawn(&t, noop, NULL);
        if (rc < 0)
            return bench_fail("cio_spawn", rc);
        rc = cio_task_join(t);
        cio_task_free(t);
        if (rc < 0)
            return bench_fail("cio_task_join", rc);
    }
    int64_t dt = bench_now() - t0;
    printf("spawn %.1f ns\n", (double)dt / (double)n);
    return 0;
}

int main(int argc, char **argv)
{
    long n = bench_size(argc, argv, 1000000);
    return bench_main(NULL, spawn_join, &n);
}
