/* examples/wait.c: asyncio.wait() is cio_group_wait.
 *
 * The same request goes to three replicas and the first answer wins
 * (FIRST_COMPLETED); the others are cancelled, which is not an error.
 * Then a wait with a timeout: a scope with a deadline around
 * cio_group_wait bounds the wait without cancelling the children, and
 * the done/pending split is read from the handles. */
#include <stdio.h>
#include <cio.h>

static int replica(void *arg)
{
    int ms = *(const int *)arg;
    int rc = cio_sleep(ms * CIO_MSEC);
    return rc < 0 ? rc : ms;
}

/* Spawn one child per delay into a new COLLECT group: a failing replica
 * must not cancel the others. On failure no group is left open. */
static int start(cio_group **out, cio_task **tasks, const int *ms, int n)
{
    cio_group *g;
    int rc = cio_group_new(&g, CIO_GROUP_COLLECT);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n && rc == 0; i++)
        rc = cio_group_spawn(g, &tasks[i], replica, (void *)&ms[i]);
    if (rc < 0) {
        cio_group_cancel(g);
        cio_group_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

static int run(void *arg)
{
    (void)arg;
    static const int ms[] = {250, 80, 150};
    cio_group *g;
    cio_task *tasks[3], *first;

    /* done, pending = await asyncio.wait(tasks, FIRST_COMPLETED) */
    int rc = start(&g, tasks, ms, 3);
    if (rc < 0)
        return rc;
    rc = cio_group_wait(g, CIO_WAIT_FIRST_COMPLETED);
    if (rc == 0)
        rc = cio_group_next(g, &first);
    int res;
    if (rc == 0 && cio_task_result(first, &res) == 0)
        printf("first answer: %d ms\n", res);
    cio_group_cancel(g); /* for t in pending: t.cancel() */
    int jrc = cio_group_join(g);
    cio_group_free(g);
    printf("group after cancelling the rest: %s\n", cio_err_name(jrc));
    if (rc < 0 || jrc < 0)
        return rc < 0 ? rc : jrc;

    /* done, pending = await asyncio.wait(tasks, timeout=0.2) */
    rc = start(&g, tasks, ms, 3);
    if (rc < 0)
        return rc;
    cio_scope sc;
    rc = cio_scope_enter(&sc, cio_deadline_after(200 * CIO_MSEC), 0);
    if (rc == 0) {
        rc = cio_group_wait(g, CIO_WAIT_ALL_COMPLETED);
        int xrc = cio_scope_exit(&sc);
        if (xrc == -ETIMEDOUT)
            rc = 0; /* the timeout only ends the wait */
        for (int i = 0; i < 3; i++)
            printf("replica %d (%d ms): %s\n", i, ms[i],
                   cio_task_done(tasks[i]) ? "done" : "pending");
    }
    cio_group_cancel(g);
    jrc = cio_group_join(g);
    cio_group_free(g);
    return rc < 0 ? rc : jrc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "wait: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
