/* examples/to_thread.c: asyncio.to_thread() is cio_to_thread.
 *
 * Blocking work (a blocking library call, a long computation) runs on a
 * thread of the executor: the calling task waits, the loop does not, so a
 * ticker keeps ticking meanwhile. A running job cannot be stopped from
 * outside; when the task waiting for it is cancelled (here by a deadline)
 * the job sees cio_thread_cancelled() and stops early. */
#include <stdio.h>
#include <time.h>
#include <cio.h>

/* Runs on an executor thread: no cio calls here but the thread-safe
 * cio_thread_cancelled. Blocks for `*ms` in 10 ms steps. */
static int blocking_job(void *arg)
{
    int ms = *(const int *)arg;
    struct timespec step = {0, 10 * 1000 * 1000};
    for (int done = 0; done < ms; done += 10) {
        if (cio_thread_cancelled())
            return -ECANCELED; /* the waiting task gave up: stop early */
        nanosleep(&step, NULL); /* stands in for a blocking call */
    }
    return ms;
}

static int ticker(void *arg)
{
    (void)arg;
    for (int i = 1;; i++) {
        int rc = cio_sleep(50 * CIO_MSEC);
        if (rc < 0)
            return rc;
        printf("  tick %d (the loop is free)\n", i);
    }
}

static int jobs(void)
{
    int ms = 180;
    int rc = cio_to_thread(blocking_job, &ms); /* await to_thread(...) */
    printf("job of %d ms: %s %d\n", ms, cio_err_name(rc), rc);
    if (rc < 0)
        return rc;

    /* async with timeout(0.1): await to_thread(job of 5 s) */
    ms = 5000;
    cio_scope sc;
    rc = cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0);
    if (rc < 0)
        return rc;
    rc = cio_to_thread(blocking_job, &ms); /* returns once the job stops */
    int xrc = cio_scope_exit(&sc);
    printf("job of %d ms under a 100 ms deadline: job %s, scope %s\n", ms,
           cio_err_name(rc), cio_err_name(xrc));
    return xrc == -ETIMEDOUT ? 0 : xrc;
}

static int run(void *arg)
{
    (void)arg;
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    rc = cio_group_spawn(g, NULL, ticker, NULL);
    if (rc == 0)
        rc = jobs();
    cio_group_cancel(g); /* stop the ticker */
    int jrc = cio_group_join(g);
    cio_group_free(g);
    return rc < 0 ? rc : jrc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "to_thread: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
