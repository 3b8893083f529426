/* examples/gather.c: asyncio.gather() in both of its modes.
 *
 * Fail-fast (the default): the first failure cancels the calls still
 * running, waits for them to exit and is returned, so nothing outlives
 * cio_gather (asyncio leaves them running). With CIO_GATHER_RETURN_ERRORS
 * (return_exceptions=True) every call runs to its end and each result,
 * value or error, is in calls[i].result, in the order of the calls. */
#include <stdint.h>
#include <stdio.h>
#include <cio.h>

/* A pretend fetch: item n takes n * 100 ms and returns n * 10; item 2
 * fails with a server error. */
static int fetch(void *arg)
{
    int n = (int)(intptr_t)arg;
    int rc = cio_sleep(n * 100 * CIO_MSEC);
    if (rc < 0)
        return rc; /* -ECANCELED: pass cancellation up */
    if (n == 2)
        return -EIO;
    return n * 10;
}

static void show(const char *mode, const cio_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = calls[i].result;
        if (r >= 0)
            printf("  %s: item %zu -> %d\n", mode, i + 1, r);
        else
            printf("  %s: item %zu -> %s\n", mode, i + 1, cio_err_name(r));
    }
}

static int run(void *arg)
{
    (void)arg;
    cio_call calls[] = {
        {fetch, (void *)(intptr_t)1, 0},
        {fetch, (void *)(intptr_t)2, 0},
        {fetch, (void *)(intptr_t)3, 0},
    };
    size_t n = sizeof calls / sizeof calls[0];

    /* Item 2 fails at 200 ms: item 3 is cancelled and awaited, and the
     * error comes back. */
    int rc = cio_gather(calls, n, 0);
    printf("fail-fast gather: %s\n", cio_err_name(rc));
    show("fail-fast", calls, n);
    if (rc < 0 && rc != -EIO)
        return rc; /* cancelled, or out of memory */

    /* Every call finishes; the failure is one result among the others. */
    rc = cio_gather(calls, n, CIO_GATHER_RETURN_ERRORS);
    if (rc < 0)
        return rc;
    printf("return-errors gather: %s\n", cio_err_name(rc));
    show("return-errors", calls, n);
    return 0;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "gather: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
