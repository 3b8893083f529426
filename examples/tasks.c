/* examples/tasks.c: asyncio.create_task() is cio_spawn.
 *
 * A new task starts running when its creator next suspends. The creator
 * owns the handle: it joins the task (await task) to get its result, then
 * frees the handle. A failing task can leave a message with cio_errorf.
 * A task spawned without a handle is owned by the loop ("fire and
 * forget"): cio_run cancels it when main returns, and an error it returns
 * is reported rather than lost. */
#include <stdio.h>
#include <string.h>
#include <cio.h>

static int download(void *arg)
{
    const char *file = arg;
    printf("%s: started\n", cio_task_name(cio_current()));
    int rc = cio_sleep(50 * CIO_MSEC);
    if (rc < 0)
        return rc;
    if (strcmp(file, "missing.txt") == 0)
        return cio_errorf(-ENOENT, "no file named %s", file);
    return (int)strlen(file); /* pretend size */
}

static int heartbeat(void *arg)
{
    (void)arg;
    for (;;) {
        int rc = cio_sleep(40 * CIO_MSEC);
        if (rc < 0)
            return rc; /* cancelled when main returns */
        printf("heartbeat\n");
    }
}

static int spawn_named(cio_task **t, const char *name, const char *file)
{
    cio_spawn_opts o = {.name = name};
    return cio_spawn_ex(t, download, (void *)file, &o);
}

static int run(void *arg)
{
    (void)arg;
    int rc = cio_spawn(NULL, heartbeat, NULL); /* detached */
    if (rc < 0)
        return rc;
    cio_task *a, *b;
    rc = spawn_named(&a, "get-readme", "README.md");
    if (rc < 0)
        return rc;
    rc = spawn_named(&b, "get-missing", "missing.txt");
    if (rc < 0) {
        cio_task_free(a); /* detaches a; the loop cancels it at the end */
        return rc;
    }
    printf("main: both started\n");
    int ra = cio_task_join(a);
    int rb = cio_task_join(b);
    printf("%s: %d bytes\n", cio_task_name(a), ra);
    printf("%s: %s: %s\n", cio_task_name(b), cio_err_name(rb),
           cio_task_errmsg(b) ? cio_task_errmsg(b) : cio_strerror(rb));
    cio_task_free(a);
    cio_task_free(b);
    if (ra < 0 || (rb < 0 && rb != -ENOENT))
        return ra < 0 ? ra : rb;
    return cio_sleep(100 * CIO_MSEC); /* the heartbeat goes on meanwhile */
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "tasks: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
