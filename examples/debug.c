/* examples/debug.c: asyncio's debug mode, and more.
 *
 * Runs a small pipeline in debug mode (what CIO_DEBUG=1 turns on) and
 * shows what it gives you:
 * - the task tree (asyncio's pstree): every task, the group it belongs
 *   to, what it waits on and where it was spawned;
 * - the watchdog: a task that blocks the loop with a plain sleep is named
 *   while it is still blocking, with the system call and the frames it is
 *   stuck in;
 * - a task's stack high-water mark, to size stacks.
 * Reports go to stderr; the program exits 0. */
#include <stdio.h>
#include <unistd.h>
#include <cio.h>

static int consumer(void *arg)
{
    cio_queue *q = arg;
    void *item;
    while (cio_queue_get(q, &item) == 0)
        ;
    return 0;
}

static int ticker(void *arg)
{
    (void)arg;
    for (;;)
        if (cio_sleep(CIO_SEC) < 0)
            return 0;
}

/* The mistake the watchdog catches: a blocking call inside a task. */
static int careless(void *arg)
{
    (void)arg;
    usleep(150 * 1000); /* blocks the whole loop for 150 ms */
    printf("careless: stack used %ld bytes\n", cio_task_stack_used(NULL));
    return 0;
}

static int run(void *arg)
{
    (void)arg;
    cio_queue *q;
    cio_group *g;
    int rc = cio_queue_new(&q, CIO_QUEUE_FIFO, 8, NULL);
    if (rc < 0)
        return rc;
    rc = cio_group_new(&g, 0);
    if (rc < 0) {
        cio_queue_free(q);
        return rc;
    }
    cio_spawn_opts c = {.name = "consumer"}, t = {.name = "ticker"};
    cio_group_spawn_ex(g, NULL, consumer, q, &c);
    cio_group_spawn_ex(g, NULL, ticker, NULL, &t);
    cio_sleep(10 * CIO_MSEC); /* let them start waiting */

    printf("--- the task tree (cio_task_dump; SIGUSR1 in debug mode)\n");
    fflush(stdout);
    cio_task_dump(1);

    printf("--- a task that blocks the loop (the watchdog reports it)\n");
    fflush(stdout);
    cio_task *bad;
    cio_spawn_opts b = {.name = "careless"};
    rc = cio_spawn_ex(&bad, careless, NULL, &b);
    if (rc == 0) {
        rc = cio_task_join(bad);
        cio_task_free(bad);
    }
    cio_group_cancel(g);
    int grc = cio_group_join(g);
    cio_group_free(g);
    cio_queue_free(q);
    return rc < 0 ? rc : grc == -ECANCELED ? 0 : grc;
}

int main(void)
{
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.debug = 1;                  /* or CIO_DEBUG=1 in the environment */
    cfg.slow_step = 50 * CIO_MSEC;  /* the watchdog's threshold too */
    int rc = cio_run_config(&cfg, run, NULL);
    if (rc < 0)
        fprintf(stderr, "debug: %s\n", cio_strerror(rc));
    return rc < 0;
}
