/* examples/semaphore.c: bounded concurrency.
 *
 * Ten fetches, at most three at a time. First the asyncio way: every
 * fetch is started and takes a permit of a semaphore around its work
 * (async with sem:). Then cio_gather_limit, which starts the calls in
 * order and never runs more than the limit, so no task waits for a
 * permit at all. Both report the peak concurrency they saw. */
#include <stdint.h>
#include <stdio.h>
#include <cio.h>

#define N 10

static int active, peak;

static int fetch(void *arg)
{
    if (++active > peak)
        peak = active;
    int rc = cio_sleep(50 * CIO_MSEC);
    active--;
    return rc < 0 ? rc : (int)(intptr_t)arg * 10;
}

/* A bounded semaphore: releasing more permits than it started with is an
 * error (asyncio.BoundedSemaphore). */
static cio_sem sem = CIO_BSEM_INIT(3);

static int fetch_limited(void *arg)
{
    int rc = cio_sem_acquire(&sem);
    if (rc < 0)
        return rc; /* cancelled: no permit was taken */
    rc = fetch(arg);
    int rrc = cio_sem_release(&sem);
    return rrc < 0 ? rrc : rc;
}

static int fan_out(const char *how, cio_task_fn fn, size_t limit)
{
    cio_call calls[N];
    for (int i = 0; i < N; i++)
        calls[i] = (cio_call){fn, (void *)(intptr_t)i, 0};
    peak = 0;
    int64_t start = cio_now();
    int rc = cio_gather_limit(calls, N, limit, 0);
    if (rc < 0)
        return rc;
    printf("%s: %d fetches in %3lld ms, at most %d at once, last = %d\n",
           how, N, (long long)((cio_now() - start) / CIO_MSEC), peak,
           calls[N - 1].result);
    return 0;
}

static int run(void *arg)
{
    (void)arg;
    int rc = fan_out("semaphore   ", fetch_limited, 0);
    if (rc == 0)
        rc = fan_out("gather_limit", fetch, 3);
    return rc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "semaphore: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
