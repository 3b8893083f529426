/* examples/shutdown.c: graceful shutdown on SIGTERM.
 *
 * loop.add_signal_handler(SIGTERM, ...) becomes a task that waits in
 * cio_signal_wait and then cancels the workers' group. The workers see
 * -ECANCELED, finish their cleanup in a shielded scope, and the group's
 * join returns 0: a group cancelled on purpose is not an error. The
 * program sends itself SIGTERM after 200 ms, standing in for `kill`.
 * Without such a task cio_run does much the same by itself: SIGINT or
 * SIGTERM cancels main, which gets cfg.shutdown_grace to finish. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <cio.h>

static int worker(void *arg)
{
    int id = *(const int *)arg, rc, rounds = 0;
    while ((rc = cio_sleep(60 * CIO_MSEC)) == 0)
        rounds++;
    cio_scope shield; /* finish the current job, at most 1 s */
    int crc = cio_scope_enter(&shield, cio_deadline_after(CIO_SEC),
                              CIO_SCOPE_SHIELD);
    if (crc == 0) {
        crc = cio_sleep(20 * CIO_MSEC); /* flush, say goodbye */
        int xrc = cio_scope_exit(&shield);
        crc = crc < 0 ? crc : xrc;
    }
    printf("worker %d: stopped after %d rounds, cleanup %s\n", id, rounds,
           cio_err_name(crc));
    return rc; /* -ECANCELED */
}

static int on_sigterm(void *arg)
{
    int rc = cio_signal_wait(SIGTERM);
    if (rc < 0)
        return rc;
    printf("SIGTERM: shutting down\n");
    return cio_group_cancel(arg);
}

static int send_sigterm(void *arg)
{
    (void)arg;
    int rc = cio_sleep(200 * CIO_MSEC);
    if (rc == 0 && kill(getpid(), SIGTERM) == -1)
        rc = -errno;
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    static const int ids[] = {1, 2, 3};
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    /* The watcher runs first, so SIGTERM is caught before it is sent. */
    rc = cio_group_spawn(g, NULL, on_sigterm, g);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = cio_group_spawn(g, NULL, worker, (void *)&ids[i]);
    if (rc == 0)
        rc = cio_group_spawn(g, NULL, send_sigterm, NULL);
    if (rc < 0)
        cio_group_cancel(g);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    printf("group joined: %s\n", cio_err_name(jrc));
    return rc < 0 ? rc : jrc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "shutdown: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
