/* Cancel at every suspension point: run a scenario, cancel it at its 1st,
 * 2nd, ... k-th suspension (of any of its tasks) until it completes
 * uncancelled; after each run no fd may be left open, no lock held, no
 * permit lost, no task alive; the runner checks cio's allocations at the
 * end. */
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"
#include "echo.h"

static void cancel_root(void *arg)
{
    cio_task_cancel(arg);
}

/* Sweep `scenario` until a run completes without being cancelled.
 * Returns the number of suspension points exercised, or -1. */
static int sweep(cio_task_fn scenario, void *arg, int (*check)(void *))
{
    cio_loop *l = cio__loop;
    for (long k = 1; k < 100000; k++) {
        int fds = cio_test_open_fds();
        cio_stats before;
        cio_stats_get(&before);
        cio_task *t;
        if (cio_spawn(&t, scenario, arg) < 0)
            return -1;
        l->park_hook = cancel_root;
        l->park_hook_arg = t;
        l->park_hook_count = k;
        int rc = cio_task_join(t);
        bool fired = l->park_hook_count == 0;
        l->park_hook_count = 0;
        cio_task_free(t);
        cio_stats after;
        cio_stats_get(&after);
        if (cio_test_open_fds() != fds ||
            after.tasks_alive != before.tasks_alive ||
            (check && check(arg) != 0)) {
            fprintf(stderr, "  cancelled at point %ld: rc %d, fds %d -> %d, "
                    "tasks %llu -> %llu\n", k, rc, fds, cio_test_open_fds(),
                    (unsigned long long)before.tasks_alive,
                    (unsigned long long)after.tasks_alive);
            return -1;
        }
        if (!fired) {
            if (rc < 0) {
                fprintf(stderr, "  uncancelled run failed: %d\n", rc);
                return -1;
            }
            printf("     %ld cancellation points survived\n", k - 1);
            return (int)k - 1;
        }
        if (rc != -ECANCELED && rc < 0) {
            fprintf(stderr, "  point %ld: %s\n", k, cio_err_name(rc));
            return -1;
        }
    }
    return -1;
}

/* ---- scenario: a stream echo exchange with a server --------------------- */

static int echo_exchange(void *arg)
{
    (void)arg;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    cio_server *srv;
    int rc = cio_server_start(&srv, &a, serve_echo, NULL, NULL);
    if (rc < 0)
        return rc;
    cio_stream *c = NULL;
    rc = cio_open_connection(&c, "127.0.0.1",
                             cio_addr_port(cio_server_addr(srv)), NULL);
    for (int i = 0; rc == 0 && i < 3; i++) {
        char buf[64];
        rc = cio_stream_write(c, "ping\n", 5);
        ssize_t n = rc < 0 ? rc : cio_stream_readline(c, buf, sizeof buf);
        rc = n == 5 ? 0 : n < 0 ? (int)n : -EPROTO;
    }
    if (c)
        cio_stream_close(c);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    cio_server_close(srv, 0);
    cio_scope_exit(&sh);
    return rc;
}

TEST_REALTIME(sweep_stream_echo_with_server)
{
    int points = sweep(echo_exchange, NULL, NULL);
    ASSERT_TRUE(points > 5);
    return 0;
}

/* ---- scenario: a queue pipeline in a group ------------------------------- */

typedef struct pipeline {
    cio_queue *q;
    cio_sem sem;
    cio_mutex m;
    int consumed;
} pipeline;

static int producer(void *arg)
{
    pipeline *p = arg;
    int rc = 0;
    for (intptr_t i = 1; rc == 0 && i <= 20; i++)
        rc = cio_queue_put(p->q, (void *)i);
    cio_queue_shutdown(p->q, false);
    return rc;
}

static int consumer(void *arg)
{
    pipeline *p = arg;
    for (;;) {
        void *item;
        int rc = cio_queue_get(p->q, &item);
        if (rc < 0)
            return rc == -ESHUTDOWN ? 0 : rc;
        rc = cio_sem_acquire(&p->sem);
        if (rc < 0)
            return rc;
        rc = cio_mutex_lock(&p->m);
        if (rc == 0) {
            p->consumed++;
            rc = cio_yield();
            cio_mutex_unlock(&p->m);
        }
        cio_sem_release(&p->sem);
        cio_queue_task_done(p->q);
        if (rc < 0)
            return rc;
    }
}

static int pipeline_run(void *arg)
{
    pipeline *p = arg;
    int rc = cio_queue_new(&p->q, CIO_QUEUE_FIFO, 2, NULL);
    if (rc < 0)
        return rc;
    cio_group *g;
    rc = cio_group_new(&g, 0);
    if (rc == 0) {
        cio_group_spawn(g, NULL, producer, p);
        cio_group_spawn(g, NULL, consumer, p);
        cio_group_spawn(g, NULL, consumer, p);
        rc = cio_group_join(g);
        cio_group_free(g);
    }
    cio_queue_free(p->q);
    p->q = NULL;
    if (rc == 0 && p->consumed != 20)
        rc = -EPROTO;
    return rc;
}

/* Nothing held, no permit lost. */
static int pipeline_check(void *arg)
{
    pipeline *p = arg;
    int bad = cio_mutex_locked(&p->m) || cio_sem_value(&p->sem) != 1;
    p->consumed = 0;
    return bad;
}

TEST(sweep_queue_pipeline_with_locks)
{
    pipeline p = {.m = CIO_MUTEX_INIT};
    cio_sem_init(&p.sem, 1, CIO_SEM_BOUNDED);
    int points = sweep(pipeline_run, &p, pipeline_check);
    ASSERT_TRUE(points > 20);
    return 0;
}

/* ---- scenario: thread jobs ----------------------------------------------- */

static int short_job(void *arg)
{
    (void)arg;
    usleep(1000);
    return 1;
}

static int jobs_run(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        int rc = cio_to_thread(short_job, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

TEST_REALTIME(sweep_thread_jobs)
{
    ASSERT_TRUE(sweep(jobs_run, NULL, NULL) >= 3);
    return 0;
}
