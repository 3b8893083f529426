/* examples/cancel.c: cancellation and cleanup.
 *
 * Cancelling is a request that the task sees at its next suspension
 * point, which returns -ECANCELED. It is level-triggered: every later
 * suspending call returns -ECANCELED too, so a cancellation cannot be
 * swallowed by accident, and cleanup that must suspend runs in a shielded
 * scope. A busy computation offers cancellation points with
 * cio_checkpoint. A task cancelled before it ever suspends keeps its
 * result. */
#include <stdio.h>
#include <cio.h>

static int worker(void *arg)
{
    (void)arg;
    int rounds = 0, rc;
    while ((rc = cio_sleep(30 * CIO_MSEC)) == 0)
        rounds++;
    printf("worker: %s after %d rounds\n", cio_err_name(rc), rounds);
    printf("worker: sleep again: %s at once\n",
           cio_err_name(cio_sleep(CIO_SEC)));
    cio_scope shield;
    int crc = cio_scope_enter(&shield, cio_deadline_after(CIO_SEC / 2),
                              CIO_SCOPE_SHIELD);
    if (crc == 0) {
        crc = cio_sleep(20 * CIO_MSEC); /* flush, close, say goodbye */
        int xrc = cio_scope_exit(&shield);
        crc = crc < 0 ? crc : xrc;
    }
    printf("worker: shielded cleanup: %s\n", cio_err_name(crc));
    return rc; /* -ECANCELED: report how the task ended */
}

static int cruncher(void *arg)
{
    (void)arg;
    unsigned long sum = 0;
    for (unsigned long i = 0;; i++) {
        sum += i % 7;
        /* A cancellation point that yields now and then, so that the
         * loop (and whoever cancels us) can run. */
        int rc = i % 4096 ? 0 : cio_checkpoint();
        if (rc < 0) {
            printf("cruncher: %s at i = %lu, sum %lu\n", cio_err_name(rc),
                   i, sum);
            return rc;
        }
    }
}

static int quick(void *arg)
{
    (void)arg;
    return 42; /* never suspends, so a cancel cannot reach it */
}

/* Spawn fn, let it run for `ms` (0: not at all), cancel it, join it. */
static int cancel_after(cio_task_fn fn, int ms)
{
    cio_task *t;
    int rc = cio_spawn(&t, fn, NULL);
    if (rc < 0)
        return rc;
    rc = ms > 0 ? cio_sleep(ms * CIO_MSEC) : 0;
    if (rc == 0)
        rc = cio_task_cancel(t);
    int jrc = cio_task_join(t); /* always join: the task may clean up */
    cio_task_free(t);
    if (jrc < 0)
        printf("  join: %s\n", cio_err_name(jrc));
    else
        printf("  join: result %d\n", jrc);
    return rc < 0 ? rc : jrc;
}

static int run(void *arg)
{
    (void)arg;
    int rc = cancel_after(worker, 100);
    if (rc == -ECANCELED)
        rc = cancel_after(cruncher, 20);
    if (rc == -ECANCELED)
        rc = cancel_after(quick, 0);
    return rc == 42 ? 0 : rc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "cancel: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
