/* examples/demo.c: the cio model in about two seconds of real time.
 * 1. Pipeline: a producer feeds two workers through a queue holding two
 *    jobs, so it waits when they fall behind. When done it shuts the
 *    queue down; the workers drain it and stop. No sentinels.
 * 2. Fan-out: eight fetches, three at a time (a semaphore), each with a
 *    300 ms deadline (a scope); cio_gather keeps every result.
 * 3. Cancellation: a slow job gets 500 ms (cio_wait_for), then it is
 *    cancelled, saves its progress in a shielded scope, and has exited
 *    when wait_for returns. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <cio.h>

static int64_t t0; /* when the demo started */

/* Print a line stamped with the seconds since the start. */
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%6.3f] ", (double)(cio_now() - t0) / CIO_SEC);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* 1. Pipeline. */

static cio_queue *jobs;

static int producer(void *arg)
{
    (void)arg;
    for (uintptr_t job = 1; job <= 8; job++) {
        int rc = cio_queue_put(jobs, (void *)job); /* waits while full */
        if (rc < 0)
            return rc;
        say("producer: queued job %u", (unsigned)job);
    }
    say("producer: no more jobs, shutting the queue down");
    return cio_queue_shutdown(jobs, false);
}

static int worker(void *arg)
{
    for (;;) {
        void *job;
        int rc = cio_queue_get(jobs, &job);
        if (rc == -ESHUTDOWN) {
            say("%s: queue shut down and empty, stopping", (char *)arg);
            return 0;
        }
        if (rc == 0)
            rc = cio_sleep(150 * CIO_MSEC); /* do the job */
        if (rc < 0)
            return rc;
        say("%s: finished job %u", (char *)arg, (unsigned)(uintptr_t)job);
    }
}

static int pipeline(void)
{
    int rc = cio_queue_new(&jobs, CIO_QUEUE_FIFO, 2, NULL);
    if (rc < 0)
        return rc;
    cio_call calls[] = {{producer, NULL, 0}, {worker, "worker-1", 0},
                        {worker, "worker-2", 0}};
    rc = cio_gather(calls, 3, 0);
    int frc = cio_queue_free(jobs);
    return rc < 0 ? rc : frc;
}

/* 2. Fan-out with a limit and deadlines. */

static const int fetch_ms[] = {120, 450, 80, 200, 600, 150, 90, 350};
static cio_sem slots = CIO_SEM_INIT(3);

static int fetch(void *arg)
{
    int i = (int)(intptr_t)arg;
    int rc = cio_sem_acquire(&slots);
    if (rc < 0)
        return rc;
    cio_scope sc; /* async with asyncio.timeout(0.3): */
    rc = cio_scope_enter(&sc, cio_deadline_after(300 * CIO_MSEC), 0);
    if (rc == 0) {
        rc = cio_sleep(fetch_ms[i] * CIO_MSEC); /* the request */
        int xrc = cio_scope_exit(&sc);
        if (rc == -ECANCELED && xrc < 0)
            rc = xrc; /* -ETIMEDOUT: our deadline, not a cancel */
    }
    int rrc = cio_sem_release(&slots);
    say("fetch %d (%3d ms): %s", i, fetch_ms[i],
        rc == 0 ? "ok" : cio_err_name(rc));
    return rc < 0 ? rc : rrc;
}

static int fan_out(void)
{
    cio_call calls[8];
    for (int i = 0; i < 8; i++)
        calls[i] = (cio_call){fetch, (void *)(intptr_t)i, 0};
    int rc = cio_gather(calls, 8, CIO_GATHER_RETURN_ERRORS);
    for (int i = 0; i < 8 && rc == 0; i++)
        if (calls[i].result < 0 && calls[i].result != -ETIMEDOUT)
            rc = calls[i].result; /* a real failure, not a timeout */
    say("gather: all eight fetches are back");
    return rc;
}

/* 3. Cancelling a slow task. */

static int slow_job(void *arg)
{
    (void)arg;
    say("slow job: started, needs 5 s");
    int rc = cio_sleep(5 * CIO_SEC);
    if (rc == 0)
        return 0;
    say("slow job: %s, saving progress", cio_err_name(rc));
    cio_scope shield; /* the task stays cancelled: shield the cleanup */
    int src = cio_scope_enter(&shield, cio_deadline_after(CIO_SEC),
                              CIO_SCOPE_SHIELD);
    if (src == 0) {
        src = cio_sleep(100 * CIO_MSEC);
        int xrc = cio_scope_exit(&shield);
        src = src < 0 ? src : xrc;
    }
    say("slow job: progress saved: %s", cio_err_name(src));
    return rc;
}

static int demo(void *arg)
{
    (void)arg;
    t0 = cio_now();
    printf("1. pipeline: bounded queue, shutdown instead of sentinels\n");
    int rc = pipeline();
    if (rc < 0)
        return rc;
    printf("2. fan-out: 3 at a time, 300 ms deadline each, gather\n");
    rc = fan_out();
    if (rc < 0)
        return rc;
    printf("3. cancellation: wait_for gives a slow job 500 ms\n");
    cio_task *t;
    rc = cio_spawn(&t, slow_job, NULL);
    if (rc < 0)
        return rc;
    rc = cio_wait_for(t, 500 * CIO_MSEC);
    say("main: wait_for: %s; slow job done: %s", cio_err_name(rc),
        cio_task_done(t) ? "yes" : "no");
    cio_task_free(t);
    return rc == -ETIMEDOUT ? 0 : rc;
}

int main(void)
{
    int rc = cio_run(demo, NULL);
    if (rc < 0) {
        fprintf(stderr, "demo: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
