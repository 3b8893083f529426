/* bench_sleepers: N tasks (argv[1], default 1e5) each sleep a random
 * 0..1000 ms (the LCG of bench.h, shared with asyncio_bench.py). Prints
 * how far beyond 1 s the whole run took, spawning included, and the peak
 * RSS growth per task: VmHWM at the end minus VmRSS before the first
 * spawn, divided by N, how long the spawning took (the tasks start once
 * it is over, so it is part of the lateness), and when the last task
 * spawned had started (its first run: all the others ran theirs before
 * it; started_ms, from the same t0). argv[2] names the
 * result (default "sleepers"); argv[3] sets the task stack size in bytes,
 * or "min" for CIO_STACK_MIN.
 *
 * The anchor, after the run: how long the kernel takes to make N fresh
 * pages resident for one thread, in one madvise call (kernel_pages_ms).
 * Each task needs one such page for its stack, so on one thread that is
 * a floor under the spawning. */
#include <sys/mman.h>

#include "bench.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct job {
    long n;
    const char *name;
} job;

static int sleeper(void *arg)
{
    return cio_sleep((int64_t)(uintptr_t)arg * CIO_USEC);
}

static uintptr_t last_us;
static int64_t last_started;

/* The last task spawned: notes when it starts. */
static int last_sleeper(void *arg)
{
    (void)arg;
    last_started = bench_now();
    return cio_sleep((int64_t)last_us * CIO_USEC);
}

static int spawn_all(cio_group *g, long n)
{
    uint64_t seed = BENCH_SEED;
    for (long i = 0; i < n; i++) {
        uintptr_t us = bench_delay_us(&seed);
        int rc;
        if (i == n - 1) {
            last_us = us;
            rc = cio_group_spawn(g, NULL, last_sleeper, NULL);
        } else {
            rc = cio_group_spawn(g, NULL, sleeper, (void *)us);
        }
        if (rc < 0)
            return bench_fail("cio_group_spawn", rc);
    }
    return 0;
}

/* ms to populate `n` fresh pages in one call; -1 if the kernel refuses. */
static double kernel_pages_ms(long n)
{
    size_t len = (size_t)n * 4096;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    madvise(p, len, MADV_NOHUGEPAGE);
    int64_t t0 = bench_now();
    int rc = madvise(p, len, MADV_POPULATE_WRITE);
    int64_t dt = bench_now() - t0;
    munmap(p, len);
    return rc == 0 ? (double)dt / 1e6 : -1;
}

static int sleepers_main(void *arg)
{
    const job *j = arg;
    long base_kib = bench_status_kib("VmRSS");
    if (base_kib < 0) {
        fprintf(stderr, "cannot read VmRSS from /proc/self/status\n");
        return -EIO;
    }
    int64_t t0 = bench_now();
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return bench_fail("cio_group_new", rc);
    rc = spawn_all(g, j->n);
    int64_t spawned = bench_now();
    if (rc < 0)
        cio_group_cancel(g);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    int64_t dt = bench_now() - t0;
    if (rc < 0)
        return rc;
    if (jrc < 0)
        return bench_fail("cio_group_join", jrc);
    long peak_kib = bench_status_kib("VmHWM");
    if (peak_kib < 0) {
        fprintf(stderr, "cannot read VmHWM from /proc/self/status\n");
        return -EIO;
    }
    printf("%s %.1f ms_late\n", j->name, (double)dt / 1e6 - 1000.0);
    printf("%s.bytes_per_task %.0f bytes\n", j->name,
           (double)(peak_kib - base_kib) * 1024.0 / (double)j->n);
    printf("%s.spawn_ms %.1f ms\n", j->name, (double)(spawned - t0) / 1e6);
    printf("%s.started_ms %.1f ms\n", j->name,
           (double)(last_started - t0) / 1e6);
    double floor_ms = kernel_pages_ms(j->n);
    if (floor_ms >= 0)
        printf("%s.kernel_pages_ms %.1f ms\n", j->name, floor_ms);
    return 0;
}

/* "min" or a byte count; false if malformed. */
static bool parse_stack(const char *s, size_t *out)
{
    if (strcmp(s, "min") == 0) {
        *out = CIO_STACK_MIN;
        return true;
    }
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    *out = v;
    return *s != '\0' && *end == '\0';
}

int main(int argc, char **argv)
{
    job j = {.n = bench_size(argc, argv, 100000), .name = "sleepers"};
    if (argc > 2)
        j.name = argv[2];
    cio_config cfg;
    cio_config_init(&cfg);
    if (argc > 3 && !parse_stack(argv[3], &cfg.stack_size)) {
        fprintf(stderr, "%s: bad stack size '%s'\n", argv[0], argv[3]);
        return 2;
    }
    return bench_main(&cfg, sleepers_main, &j);
}
