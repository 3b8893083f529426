/* examples/as_completed.c: asyncio.as_completed() is cio_group_next.
 *
 * Children spawned into a group with a handle come back from
 * cio_group_next in the order they finish, so each result is handled as
 * soon as it is ready instead of in the order of the requests. */
#include <stdio.h>
#include <cio.h>

static int fetch(void *arg)
{
    int ms = *(const int *)arg;
    int rc = cio_sleep(ms * CIO_MSEC);
    return rc < 0 ? rc : ms;
}

static int run(void *arg)
{
    (void)arg;
    static const int delays[] = {300, 100, 200, 50};
    static const char *names[] = {"slow", "fast", "medium", "fastest"};
    /* COLLECT: a failure is one more result, not a reason to cancel the
     * other fetches (as_completed does not cancel). */
    cio_group *g;
    int rc = cio_group_new(&g, CIO_GROUP_COLLECT);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 4 && rc == 0; i++) {
        cio_spawn_opts o = {.name = names[i]};
        cio_task *t;
        rc = cio_group_spawn_ex(g, &t, fetch, (void *)&delays[i], &o);
    }
    /* for t in asyncio.as_completed(tasks): result = await t */
    while (rc == 0) {
        cio_task *t;
        rc = cio_group_next(g, &t);
        if (rc < 0)
            break;
        int res;
        rc = cio_task_result(t, &res);
        if (rc == 0 && res >= 0)
            printf("%-8s finished after %d ms\n", cio_task_name(t), res);
        else if (rc == 0)
            printf("%-8s failed: %s\n", cio_task_name(t), cio_err_name(res));
        cio_task_free(t);
    }
    if (rc == -ECHILD)
        rc = 0; /* every child was returned */
    else
        cio_group_cancel(g);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    return rc < 0 ? rc : jrc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "as_completed: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
