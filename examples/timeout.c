/* examples/timeout.c: asyncio.timeout(), wait_for() and shield().
 *
 * A cio_scope with a deadline is asyncio.timeout(): every suspending call
 * inside returns -ECANCELED once the deadline passes, and the scope's exit
 * reports -ETIMEDOUT. The deadline can move (Timeout.reschedule()).
 * cio_wait_for is asyncio.wait_for(): on timeout it cancels the task and
 * waits until it has exited. A cancelled task runs cleanup that must
 * suspend in a shielded scope, with a deadline of its own so that the
 * cleanup cannot hang. */
#include <stdio.h>
#include <cio.h>

/* async with asyncio.timeout(0.1): await asyncio.sleep(1) */
static int timeout_scope(void)
{
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0);
    if (rc < 0)
        return rc;
    rc = cio_sleep(CIO_SEC); /* the slow operation */
    int xrc = cio_scope_exit(&sc);
    printf("timeout: call %s, scope %s\n", cio_err_name(rc),
           cio_err_name(xrc));
    return xrc < 0 ? xrc : rc;
}

/* The work needs more time than planned: push the deadline back. */
static int reschedule(void)
{
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(200 * CIO_MSEC), 0);
    if (rc < 0)
        return rc;
    rc = cio_sleep(50 * CIO_MSEC);
    if (rc == 0)
        rc = cio_scope_set_deadline(&sc, cio_deadline_after(CIO_SEC));
    if (rc == 0)
        rc = cio_sleep(250 * CIO_MSEC); /* past the first deadline */
    int xrc = cio_scope_exit(&sc);
    printf("reschedule: call %s, scope %s\n", cio_err_name(rc),
           cio_err_name(xrc));
    return xrc < 0 ? xrc : rc;
}

/* Work that saves its state even when it is cancelled. */
static int saver(void *arg)
{
    (void)arg;
    int rc = cio_sleep(CIO_SEC); /* the work */
    if (rc == 0)
        return 0;
    printf("saver: %s, saving state\n", cio_err_name(rc));
    /* The task stays cancelled: here an unshielded sleep would return
     * -ECANCELED at once. */
    cio_scope shield;
    int src = cio_scope_enter(&shield, cio_deadline_after(CIO_SEC / 2),
                              CIO_SCOPE_SHIELD);
    if (src < 0)
        return src;
    src = cio_sleep(50 * CIO_MSEC); /* write the state out */
    int xrc = cio_scope_exit(&shield);
    printf("saver: state saved: %s\n", cio_err_name(src < 0 ? src : xrc));
    return rc; /* pass the cancellation up */
}

static int run(void *arg)
{
    (void)arg;
    int rc = timeout_scope();
    if (rc < 0 && rc != -ETIMEDOUT)
        return rc;
    rc = reschedule();
    if (rc < 0)
        return rc;

    /* await asyncio.wait_for(saver(), timeout=0.1) */
    cio_task *t;
    rc = cio_spawn(&t, saver, NULL);
    if (rc < 0)
        return rc;
    rc = cio_wait_for(t, 100 * CIO_MSEC);
    printf("wait_for: %s (saver finished: %s)\n", cio_err_name(rc),
           cio_task_done(t) ? "yes" : "no");
    cio_task_free(t);
    return rc == -ETIMEDOUT ? 0 : rc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "timeout: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
