/* Helpers shared by the bench_*.c programs. Each program prints its
 * results as `name value unit` lines on stdout; bench/run.sh turns them
 * into JSON lines. A name `bench.field` adds a field to the record of
 * `bench`; a name `bench/impl` names the implementation measured. */
#ifndef CIO_BENCH_H
#define CIO_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cio.h>

/* CLOCK_MONOTONIC in ns. */
static inline int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The workload size: argv[1] if given (accepts 1e6), else `def`. Exits on
 * a malformed or non-positive size. */
static inline long bench_size(int argc, char **argv, long def)
{
    if (argc < 2)
        return def;
    char *end;
    double v = strtod(argv[1], &end);
    if (*end != '\0' || v < 1 || v > 1e9) {
        fprintf(stderr, "%s: bad size '%s'\n", argv[0], argv[1]);
        exit(2);
    }
    return (long)v;
}

/* A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1. */
static inline long bench_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kib = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* The sleep times shared with asyncio_bench.py: a 64-bit LCG (Knuth's
 * MMIX constants) from seed 42, giving 0..1e6 us. */
static inline uint32_t bench_delay_us(uint64_t *state)
{
    *state = *state * UINT64_C(6364136223846793005) +
             UINT64_C(1442695040888963407);
    return (uint32_t)((*state >> 33) % 1000001);
}
#define BENCH_SEED UINT64_C(42)

/* Report a failed cio call and return its code (for `return bench_fail`). */
static inline int bench_fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, cio_strerror(rc));
    return rc;
}

/* Run `fn(arg)` as the main task of a loop with `cfg` (NULL: defaults);
 * the process exit status. */
static inline int bench_main(const cio_config *cfg, cio_task_fn fn,
                             void *arg)
{
    int rc = cio_run_config(cfg, fn, arg);
    if (rc < 0) {
        bench_fail("cio_run", rc);
        return 1;
    }
    return 0;
}

#endif
