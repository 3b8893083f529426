/* The loop and cio_run: ending, shutdown, deadlock, ordering, errors. */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static int forever(void *arg)
{
    int *cleaned = arg;
    int rc = cio_sleep(1000 * CIO_SEC);
    if (cleaned)
        *cleaned = rc;
    return rc;
}

/* Run `fn` in its own loop on a new thread; loops are per thread. */
typedef struct thread_run {
    cio_task_fn fn;
    void *arg;
    int rc;
} thread_run;

static void *thread_main(void *p)
{
    thread_run *r = p;
    r->rc = cio_run(r->fn, r->arg);
    return NULL;
}

static int run_in_thread(cio_task_fn fn, void *arg)
{
    thread_run r = {fn, arg, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, thread_main, &r) != 0)
        return -EAGAIN;
    pthread_join(th, NULL);
    return r.rc;
}

static int leave_detached(void *arg)
{
    ASSERT_OK(cio_spawn(NULL, forever, arg));
    ASSERT_OK(cio_yield());
    return 5;
}

TEST(loop_run_cancels_detached_tasks_when_main_returns)
{
    int cleaned = 1;
    ASSERT_EQ(5, run_in_thread(leave_detached, &cleaned));
    ASSERT_EQ(-ECANCELED, cleaned);
    return 0;
}

static int nested(void *arg)
{
    (void)arg;
    return cio_run(nested, NULL);
}

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

/* Calls made on a thread with no loop. */
static void *no_loop_calls(void *p)
{
    int *rc = p;
    cio_mutex m = CIO_MUTEX_INIT;
    cio_scope sc;
    rc[0] = cio_sleep(CIO_MSEC);
    rc[1] = cio_yield();
    rc[2] = cio_mutex_lock(&m);
    rc[3] = cio_spawn(NULL, noop, NULL);
    rc[4] = cio_scope_enter(&sc, CIO_NEVER, 0);
    rc[5] = cio_run(NULL, NULL);
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.stack_size = 100;
    rc[6] = cio_run_config(&cfg, noop, NULL);
    cfg.stack_size = 0;
    cfg.clock = 7;
    rc[7] = cio_run_config(&cfg, noop, NULL);
    rc[8] = cio_stats_get(&(cio_stats){0});
    return NULL;
}

TEST(loop_run_rejects_bad_input)
{
    ASSERT_EQ(-EBUSY, cio_run(nested, NULL));
    int rc[9];
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, no_loop_calls, rc));
    pthread_join(th, NULL);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(CIO_ENOTASK, rc[i]);
    ASSERT_EQ(-EINVAL, rc[5]);
    ASSERT_EQ(-EINVAL, rc[6]);
    ASSERT_EQ(-EINVAL, rc[7]);
    ASSERT_EQ(-ESRCH, rc[8]);
    return 0;
}

static int wait_never_set(void *arg)
{
    cio_event e = CIO_EVENT_INIT;
    int *out = arg;
    *out = cio_event_wait(&e);
    return *out;
}

TEST(loop_deadlock_is_reported_and_ends_the_run)
{
    int waited = 0;
    cio_test_reports_clear();
    ASSERT_EQ(CIO_EDEADLOCK, run_in_thread(wait_never_set, &waited));
    ASSERT_EQ(-ECANCELED, waited);
    ASSERT_TRUE(strstr(cio_test_reports(), "deadlock") != NULL);
    ASSERT_TRUE(strstr(cio_test_reports(), "main") != NULL);
    return 0;
}

typedef struct two_locks {
    cio_mutex a, b;
    int ra, rb;
} two_locks;

static int lock_b_then_a(void *arg)
{
    two_locks *s = arg;
    ASSERT_OK(cio_mutex_lock(&s->b));
    ASSERT_OK(cio_yield());
    s->rb = cio_mutex_lock(&s->a);
    cio_mutex_unlock(&s->b);
    return 0;
}

static int lock_a_then_b(void *arg)
{
    two_locks *s = arg;
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, lock_b_then_a, s));
    ASSERT_OK(cio_mutex_lock(&s->a));
    ASSERT_OK(cio_yield());
    s->ra = cio_mutex_lock(&s->b);
    cio_mutex_unlock(&s->a);
    cio_task_join(t);
    cio_task_free(t);
    return 0;
}

TEST(loop_lock_order_deadlock_is_broken)
{
    two_locks s = {CIO_MUTEX_INIT, CIO_MUTEX_INIT, 0, 0};
    ASSERT_EQ(CIO_EDEADLOCK, run_in_thread(lock_a_then_b, &s));
    ASSERT_EQ(-ECANCELED, s.ra);
    ASSERT_EQ(-ECANCELED, s.rb);
    return 0;
}

typedef struct order {
    int log[32];
    int n;
} order;

typedef struct step_arg {
    order *o;
    int id;
} step_arg;

static int stepper(void *arg)
{
    step_arg *a = arg;
    for (int i = 0; i < 3; i++) {
        a->o->log[a->o->n++] = a->id;
        ASSERT_OK(cio_yield());
    }
    return 0;
}

TEST(loop_schedules_in_fifo_order)
{
    order o = {.n = 0};
    step_arg args[3] = {{&o, 1}, {&o, 2}, {&o, 3}};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(cio_group_spawn(g, NULL, stepper, &args[i]));
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    int want[] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
    ASSERT_EQ(9, o.n);
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(want[i], o.log[i]);
    return 0;
}

typedef struct wake_log {
    int64_t at[4];
    int order[4];
    int n;
} wake_log;

typedef struct sleep_arg {
    wake_log *w;
    int id;
    int64_t ns;
} sleep_arg;

static int sleep_and_log(void *arg)
{
    sleep_arg *a = arg;
    ASSERT_OK(cio_sleep(a->ns));
    a->w->at[a->w->n] = cio_now();
    a->w->order[a->w->n++] = a->id;
    return 0;
}

TEST(loop_virtual_clock_jumps_to_each_timer)
{
    wake_log w = {.n = 0};
    sleep_arg a[4] = {{&w, 0, 3 * CIO_SEC}, {&w, 1, CIO_SEC},
                      {&w, 2, 2 * CIO_SEC}, {&w, 3, CIO_SEC}};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(cio_group_spawn(g, NULL, sleep_and_log, &a[i]));
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    /* Equal deadlines fire in the order they were armed. */
    int want[] = {1, 3, 2, 0};
    int64_t when[] = {CIO_SEC, CIO_SEC, 2 * CIO_SEC, 3 * CIO_SEC};
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(want[i], w.order[i]);
        ASSERT_EQ(cio_test_t0 + when[i], w.at[i]);
    }
    ASSERT_TIME(3 * CIO_SEC);
    return 0;
}

static int count_up(void *arg)
{
    int *n = arg;
    for (;;) {
        (*n)++;
        int rc = cio_yield();
        if (rc < 0)
            return rc;
    }
}

static int block_forever(void *arg)
{
    (void)arg;
    cio_event e = CIO_EVENT_INIT;
    return cio_event_wait(&e);
}

TEST(loop_wait_all_blocked_returns_when_others_wait)
{
    cio_task *a, *b;
    ASSERT_OK(cio_spawn(&a, block_forever, NULL));
    ASSERT_OK(cio_spawn(&b, forever, NULL));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TIME(0);
    cio_task_cancel(a);
    cio_task_cancel(b);
    ASSERT_EQ(-ECANCELED, cio_task_join(a));
    ASSERT_EQ(-ECANCELED, cio_task_join(b));
    cio_task_free(a);
    cio_task_free(b);
    return 0;
}

TEST(loop_stats_count_tasks_and_switches)
{
    cio_stats before, after;
    ASSERT_OK(cio_stats_get(&before));
    int n = 0;
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, count_up, &n));
    for (int i = 0; i < 10; i++)
        ASSERT_OK(cio_yield());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_stats_get(&after));
    ASSERT_EQ(1, after.tasks_spawned - before.tasks_spawned);
    ASSERT_EQ(before.tasks_alive, after.tasks_alive);
    ASSERT_TRUE(after.switches - before.switches >= 20);
    ASSERT_TRUE(n >= 10);
    ASSERT_EQ(-EINVAL, cio_stats_get(NULL));
    return 0;
}

TEST(loop_error_names_and_texts)
{
    ASSERT_STR_EQ("ECANCELED", cio_err_name(-ECANCELED));
    ASSERT_STR_EQ("CIO_EOF", cio_err_name(CIO_EOF));
    ASSERT_STR_EQ("end of stream", cio_strerror(CIO_EOF));
    ASSERT_STR_EQ("Connection timed out", cio_strerror(-ETIMEDOUT));
    ASSERT_STR_EQ("EUNKNOWN", cio_err_name(-100000));
    ASSERT_STR_EQ("unknown error", cio_strerror(-100000));
    return 0;
}


/* ---- a loop that is never idle still polls ------------------------------ */

typedef struct busy {
    int sv[2];
    bool read_done, job_done, slept;
} busy;

static int busy_reader(void *arg)
{
    busy *b = arg;
    char c;
    ASSERT_EQ(1, cio_recv(b->sv[0], &c, 1, 0));
    ASSERT_EQ('x', c);
    b->read_done = true;
    return 0;
}

static int busy_job(void *arg)
{
    busy *b = arg;
    /* On a pool thread: the byte the reader waits for. */
    return write(b->sv[1], "x", 1) == 1 ? 0 : -EIO;
}

static int busy_worker(void *arg)
{
    busy *b = arg;
    ASSERT_OK(cio_to_thread(busy_job, b));
    b->job_done = true;
    return 0;
}

static int busy_sleeper(void *arg)
{
    busy *b = arg;
    ASSERT_OK(cio_sleep(5 * CIO_MSEC));
    b->slept = true;
    return 0;
}

static int busy_main(void *arg)
{
    (void)arg;
    busy b = {.read_done = false};
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0, b.sv));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, busy_reader, &b));
    ASSERT_OK(cio_group_spawn(g, NULL, busy_worker, &b));
    ASSERT_OK(cio_group_spawn(g, NULL, busy_sleeper, &b));
    /* This task stays runnable throughout: the loop never blocks, and
     * only its polls between task steps can deliver the thread's
     * completion, the readable socket and the timer. */
    int64_t give_up = cio_now() + 10 * CIO_SEC;
    while (!(b.read_done && b.job_done && b.slept) && cio_now() < give_up)
        ASSERT_OK(cio_yield());
    bool all = b.read_done && b.job_done && b.slept;
    if (!all)
        cio_group_cancel(g); /* they use `b`: end them before failing */
    int rc = cio_group_join(g);
    cio_group_free(g);
    cio_close(b.sv[0]);
    close(b.sv[1]);
    ASSERT_TRUE(all);
    ASSERT_OK(rc);
    return 0;
}

/* I/O readiness, a pool thread's completion and a timer all reach tasks
 * while another task yields without end (io_uring skips the system call
 * of a non-blocking poll when the kernel has nothing for it). */
TEST_REALTIME(loop_polls_while_tasks_stay_runnable)
{
    return busy_main(NULL);
}
