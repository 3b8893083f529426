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
 * The anchors, after the run: how long the kernel takes to make N fresh
 * pages resident for one thread, in one madvise call (kernel_pages_ms).
 * Each task needs one such page for its stack, so on one thread that is
 * a floor under the spawning. And the best two threads do when the pages
 * lie one per 68 KiB, like the top pages of 64 KiB stacks, populated in
 * process_madvise batches of 30 (a slab), each thread on half of them
 * (kernel_pages_2t_ms; left out where the process may use one CPU only,
 * or the kernel has no process_madvise for this). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000)
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

enum { STRIDE = 17 * 4096, BATCH = 30 };

typedef struct half {
    char *base; /* the first page of this half */
    long n;     /* pages */
    int rc;
} half;

static void *populate_half(void *arg)
{
    half *h = arg;
    struct iovec iov[BATCH];
    h->rc = 0;
#ifdef SYS_process_madvise
    for (long i = 0; i < h->n; i += BATCH) {
        int k = h->n - i < BATCH ? (int)(h->n - i) : BATCH;
        for (int j = 0; j < k; j++)
            iov[j] = (struct iovec){h->base + (i + j) * (long)STRIDE, 4096};
        if (syscall(SYS_process_madvise, PIDFD_SELF, iov, k,
                    MADV_POPULATE_WRITE, 0) != (long)k * 4096) {
            h->rc = -1;
            break;
        }
    }
#else
    (void)iov;
    h->rc = -1;
#endif
    return NULL;
}

/* ms for two threads to populate `n` fresh pages scattered like stack
 * tops; -1 if not measurable here. */
static double kernel_pages_2t_ms(long n)
{
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) < 2)
        return -1;
    size_t len = (size_t)n * STRIDE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    madvise(p, len, MADV_NOHUGEPAGE);
    half a = {p, n / 2, 0}, b = {p + (n / 2) * (long)STRIDE, n - n / 2, 0};
    pthread_t th;
    int64_t t0 = bench_now();
    if (pthread_create(&th, NULL, populate_half, &b) != 0) {
        munmap(p, len);
        return -1;
    }
    populate_half(&a);
    pthread_join(th, NULL);
    int64_t dt = bench_now() - t0;
    munmap(p, len);
    return a.rc == 0 && b.rc == 0 ? (double)dt / 1e6 : -1;
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
    double two_ms = kernel_pages_2t_ms(j->n);
    if (two_ms >= 0)
        printf("%s.kernel_pages_2t_ms %.1f ms\n", j->name, two_ms);
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
