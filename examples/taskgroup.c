/* examples/taskgroup.c: asyncio.TaskGroup is cio_group.
 *
 * A group owns the tasks spawned into it and cio_group_join waits for all
 * of them, so none is lost and none outlives the block. When a child
 * fails, its siblings are cancelled and the join returns the first error;
 * every error is kept with the task's name and message. */
#include <stdint.h>
#include <stdio.h>
#include <cio.h>

#define MAX_JOBS 8

typedef struct job {
    const char *name;
    int ms;   /* how long the work takes */
    int fail; /* fail instead of finishing */
} job;

static int work(void *arg)
{
    const job *j = arg;
    int rc = cio_sleep(j->ms * CIO_MSEC);
    if (rc < 0) {
        printf("  %s: cancelled\n", j->name);
        return rc;
    }
    if (j->fail)
        return cio_errorf(-EIO, "disk full after %d ms", j->ms);
    printf("  %s: done\n", j->name);
    return j->ms;
}

/* async with TaskGroup() as tg: for j in jobs: tg.create_task(work(j)) */
static int run_group(const job *jobs, size_t n)
{
    cio_task *tasks[MAX_JOBS];
    cio_group *g;
    int rc = n <= MAX_JOBS ? cio_group_new(&g, 0) : -EINVAL;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        cio_spawn_opts o = {.name = jobs[i].name};
        rc = cio_group_spawn_ex(g, &tasks[i], work, (void *)&jobs[i], &o);
    }
    if (rc < 0)
        cio_group_cancel(g); /* the join still waits for those started */
    int jrc = cio_group_join(g);
    if (rc == 0)
        rc = jrc;
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            int res;
            if (cio_task_result(tasks[i], &res) == 0)
                printf("  result of %s: %d\n", jobs[i].name, res);
        }
    }
    for (size_t i = 0; i < cio_group_error_count(g); i++) {
        const char *what;
        int code = cio_group_error(g, i, &what);
        printf("  error %zu: %s (%s)\n", i, what, cio_err_name(code));
    }
    cio_group_free(g); /* also releases the children's handles */
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    const job good[] = {{"a", 100, 0}, {"b", 50, 0}, {"c", 150, 0}};
    const job bad[] = {{"d", 100, 0}, {"e", 50, 1}, {"f", 150, 0}};

    printf("all succeed:\n");
    int rc = run_group(good, 3);
    printf("join: %s\n", cio_err_name(rc));
    if (rc < 0)
        return rc;

    printf("one fails, the others are cancelled:\n");
    rc = run_group(bad, 3);
    printf("join: %s\n", cio_err_name(rc));
    return rc == -EIO ? 0 : rc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "taskgroup: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
