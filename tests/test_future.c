/* Futures: one-shot results that any number of tasks can wait for. */
#include <pthread.h>

#include "internal.h"
#include "test.h"

typedef struct fwait {
    cio_future *f;
    int64_t deadline;
    int rc;
    void *value;
    int64_t at;
    int *order; /* shared wake-up order */
    int *norder;
    int id;
} fwait;

static int wait_future(void *arg)
{
    fwait *w = arg;
    w->rc = cio_future_wait(w->f, w->deadline, &w->value);
    w->at = cio_now() - cio_test_t0;
    if (w->order)
        w->order[(*w->norder)++] = w->id;
    return w->rc;
}

typedef struct fset {
    cio_future *f;
    int64_t delay;
    void *value;
    int err;
    cio_task *cancel_after; /* cancelled right after completing */
} fset;

static int set_future(void *arg)
{
    fset *s = arg;
    int rc = cio_sleep(s->delay);
    if (rc < 0)
        return rc;
    rc = s->err ? cio_future_set_error(s->f, s->err)
                : cio_future_set_result(s->f, s->value);
    if (s->cancel_after)
        cio_task_cancel(s->cancel_after);
    return rc;
}

static int counter(void *arg)
{
    long *n = arg;
    for (;;) {
        (*n)++;
        int rc = cio_yield();
        if (rc < 0)
            return rc;
    }
}

/* ---- Completion and waiting ---------------------------------------------- */

TEST(future_set_result_wakes_waiter)
{
    int x = 1;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_TRUE(!cio_future_done(f));
    fset s = {f, CIO_SEC, &x, 0, NULL};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, set_future, &s));
    void *v = NULL;
    ASSERT_EQ(0, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_TRUE(v == &x);
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(cio_future_done(f));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_wait_on_done_future_returns_without_yielding)
{
    int x = 1;
    long runs = 0;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, counter, &runs));
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_set_result(f, &x));
    void *v = NULL;
    ASSERT_EQ(0, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_TRUE(v == &x);
    /* Any number of waits, a NULL value pointer, a past deadline. */
    ASSERT_EQ(0, cio_future_wait(f, CIO_NEVER, NULL));
    ASSERT_EQ(0, cio_future_wait(f, 0, &v));
    ASSERT_TRUE(v == &x);
    ASSERT_EQ(0, runs);
    ASSERT_TIME(0);
    ASSERT_OK(cio_task_cancel(c));
    ASSERT_EQ(-ECANCELED, cio_task_join(c));
    cio_task_free(c);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_repeated_waits_on_done_future_let_others_run)
{
    long runs = 0;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, counter, &runs));
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_set_result(f, NULL));
    for (int i = 0; i < 10000; i++)
        ASSERT_EQ(0, cio_future_wait(f, CIO_NEVER, NULL));
    ASSERT_TRUE(runs >= 2);
    ASSERT_OK(cio_task_cancel(c));
    ASSERT_EQ(-ECANCELED, cio_task_join(c));
    cio_task_free(c);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_null_value)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_set_result(f, NULL));
    void *v = &v;
    ASSERT_EQ(0, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_TRUE(v == NULL);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_set_twice_is_ealready)
{
    int x = 1, y = 2;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_set_result(f, &x));
    ASSERT_EQ(-EALREADY, cio_future_set_result(f, &y));
    ASSERT_EQ(-EALREADY, cio_future_set_error(f, -EIO));
    ASSERT_EQ(-EALREADY, cio_future_cancel(f));
    void *v = NULL;
    ASSERT_EQ(0, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_TRUE(v == &x);
    ASSERT_OK(cio_future_free(f));

    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_set_error(f, -EIO));
    ASSERT_EQ(-EALREADY, cio_future_set_result(f, &y));
    ASSERT_EQ(-EALREADY, cio_future_set_error(f, -ENOENT));
    ASSERT_EQ(-EIO, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_OK(cio_future_free(f));

    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_cancel(f));
    ASSERT_EQ(-EALREADY, cio_future_cancel(f));
    ASSERT_EQ(-EALREADY, cio_future_set_result(f, &y));
    ASSERT_EQ(-ECANCELED, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_set_error_is_returned_by_wait)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fset s = {f, CIO_SEC, NULL, -ECONNRESET, NULL};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, set_future, &s));
    ASSERT_EQ(-ECONNRESET, cio_future_wait(f, CIO_NEVER, NULL));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(cio_future_done(f));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_set_error_rejects_non_negative)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_EQ(-EINVAL, cio_future_set_error(f, 0));
    ASSERT_EQ(-EINVAL, cio_future_set_error(f, 5));
    ASSERT_TRUE(!cio_future_done(f));
    ASSERT_OK(cio_future_set_error(f, -EIO));
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_cancel_completes_with_ecanceled)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fwait w = {f, CIO_NEVER, 1, NULL, 0, NULL, NULL, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_future, &w));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_future_cancel(f));
    ASSERT_TRUE(cio_future_done(f));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(-ECANCELED, w.rc);
    ASSERT_EQ(CIO_SEC, w.at);
    cio_task_free(t);
    /* The waiter was not cancelled; only the future was. */
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_null_arguments_are_einval)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_EQ(-EINVAL, cio_future_set_result(NULL, NULL));
    ASSERT_EQ(-EINVAL, cio_future_set_error(NULL, -EIO));
    ASSERT_EQ(-EINVAL, cio_future_cancel(NULL));
    ASSERT_EQ(-EINVAL, cio_future_wait(NULL, CIO_NEVER, NULL));
    ASSERT_EQ(-EINVAL, cio_future_on_done(NULL, NULL, NULL));
    ASSERT_EQ(-EINVAL, cio_future_on_done(f, NULL, NULL));
    ASSERT_TRUE(!cio_future_done(NULL));
    ASSERT_OK(cio_future_free(f));
    return 0;
}

/* ---- Deadlines ----------------------------------------------------------- */

TEST(future_wait_with_deadline_times_out)
{
    int x = 3;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    void *v = &x;
    ASSERT_EQ(-ETIMEDOUT, cio_future_wait(f, cio_deadline_after(CIO_SEC), &v));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(v == &x);
    ASSERT_TRUE(!cio_future_done(f));
    /* A deadline already past times out at once. */
    ASSERT_EQ(-ETIMEDOUT, cio_future_wait(f, cio_test_t0, &v));
    ASSERT_EQ(-ETIMEDOUT, cio_future_wait(f, cio_now(), &v));
    ASSERT_TIME(CIO_SEC);
    /* The future is still usable. */
    fset s = {f, CIO_SEC, &x, 0, NULL};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, set_future, &s));
    ASSERT_EQ(0, cio_future_wait(f, cio_deadline_after(5 * CIO_SEC), &v));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_wait_negative_deadline_is_einval)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_EQ(-EINVAL, cio_future_wait(f, -1, NULL));
    ASSERT_EQ(-EINVAL, cio_future_wait(f, cio_deadline_after(-1), NULL));
    ASSERT_TIME(0);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_deadline_wins_over_set_at_same_instant)
{
    int x = 3;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fset s = {f, CIO_SEC, &x, 0, NULL};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, set_future, &s));
    ASSERT_EQ(-ETIMEDOUT, cio_future_wait(f, cio_deadline_after(CIO_SEC),
                                          NULL));
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_task_join(t));
    ASSERT_TRUE(cio_future_done(f));
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_wait_honours_enclosing_scope)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_future_wait(f, cio_deadline_after(5 * CIO_SEC),
                                          NULL));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    /* The call's own deadline, earlier than the scope's, gives
     * -ETIMEDOUT and leaves the scope alone. */
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(5 * CIO_SEC), 0));
    ASSERT_EQ(-ETIMEDOUT, cio_future_wait(f, cio_deadline_after(CIO_SEC),
                                          NULL));
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_wait_in_cancelled_scope_checks_first)
{
    int x = 1;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_set_result(f, &x));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    void *v = NULL;
    ASSERT_EQ(-ECANCELED, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_TRUE(v == NULL);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_future_wait(f, CIO_NEVER, &v));
    ASSERT_TRUE(v == &x);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

/* ---- Many waiters -------------------------------------------------------- */

TEST(future_wakes_every_waiter_in_fifo_order)
{
    int x = 9;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    int order[5], norder = 0;
    fwait w[5];
    cio_task *t[5];
    for (int i = 0; i < 5; i++) {
        w[i] = (fwait){f, CIO_NEVER, 1, NULL, 0, order, &norder, i};
        ASSERT_OK(cio_spawn(&t[i], wait_future, &w[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    /* While tasks wait the future cannot be freed. */
    ASSERT_EQ(-EBUSY, cio_future_free(f));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_future_set_result(f, &x));
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(0, cio_task_join(t[i]));
        ASSERT_TRUE(w[i].value == &x);
        ASSERT_EQ(CIO_SEC, w[i].at);
        ASSERT_EQ(i, order[i]);
        cio_task_free(t[i]);
    }
    ASSERT_EQ(5, norder);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_cancelled_waiter_leaves_the_others_waiting)
{
    int x = 9;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fwait w[3];
    cio_task *t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (fwait){f, CIO_NEVER, 1, NULL, 0, NULL, NULL, i};
        ASSERT_OK(cio_spawn(&t[i], wait_future, &w[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(t[1]));
    ASSERT_EQ(-ECANCELED, cio_task_join(t[1]));
    ASSERT_TIME(0);
    fset s = {f, CIO_SEC, &x, 0, NULL};
    cio_task *st;
    ASSERT_OK(cio_spawn(&st, set_future, &s));
    ASSERT_EQ(0, cio_task_join(t[0]));
    ASSERT_EQ(0, cio_task_join(t[2]));
    ASSERT_TRUE(w[0].value == &x && w[2].value == &x);
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_task_join(st));
    for (int i = 0; i < 3; i++)
        cio_task_free(t[i]);
    cio_task_free(st);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_timed_out_waiter_does_not_block_free)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fwait w = {f, cio_deadline_after(CIO_SEC), 1, NULL, 0, NULL, NULL, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_future, &w));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_future_free(f));
    ASSERT_EQ(-ETIMEDOUT, cio_task_join(t));
    ASSERT_TIME(CIO_SEC);
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

/* ---- Rule 9: a completed wait beats a late cancel ------------------------ */

TEST(future_completed_wait_beats_late_cancel)
{
    int x = 5;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fwait w = {f, CIO_NEVER, 1, NULL, 0, NULL, NULL, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_future, &w));
    ASSERT_OK(cio_wait_all_blocked());
    /* Complete, then cancel the waiter before it got to run. */
    ASSERT_OK(cio_future_set_result(f, &x));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(0, cio_task_join(t));
    ASSERT_EQ(0, w.rc);
    ASSERT_TRUE(w.value == &x);
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

static int wait_then_sleep(void *arg)
{
    fwait *w = arg;
    w->rc = cio_future_wait(w->f, w->deadline, &w->value);
    return cio_sleep(CIO_SEC);
}

TEST(future_late_cancel_surfaces_at_next_suspension)
{
    int x = 5;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fwait w = {f, CIO_NEVER, 1, NULL, 0, NULL, NULL, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_then_sleep, &w));
    fset s = {f, CIO_SEC, &x, 0, t};
    cio_task *st;
    ASSERT_OK(cio_spawn(&st, set_future, &s));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(0, w.rc);
    ASSERT_TRUE(w.value == &x);
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_task_join(st));
    cio_task_free(t);
    cio_task_free(st);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

/* ---- Callbacks ----------------------------------------------------------- */

typedef struct cb_log {
    int calls[8];
    int n;
    cio_task *ran_in[8];
    bool done_seen[8];
} cb_log;

typedef struct cb_arg {
    cb_log *log;
    int id;
} cb_arg;

static void on_done(cio_future *f, void *arg)
{
    cb_arg *a = arg;
    a->log->calls[a->log->n] = a->id;
    a->log->ran_in[a->log->n] = cio_current();
    a->log->done_seen[a->log->n] = cio_future_done(f);
    a->log->n++;
}

TEST(future_on_done_callbacks_run_in_registration_order)
{
    cb_log log = {{0}, 0, {0}, {0}};
    cb_arg a[3] = {{&log, 1}, {&log, 2}, {&log, 3}};
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(cio_future_on_done(f, on_done, &a[i]));
    ASSERT_EQ(0, log.n);
    fset s = {f, CIO_SEC, NULL, 0, NULL};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, set_future, &s));
    ASSERT_OK(cio_task_join(t));
    ASSERT_EQ(3, log.n);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(i + 1, log.calls[i]);
        /* In the context that completed the future. */
        ASSERT_TRUE(log.ran_in[i] == t);
        ASSERT_TRUE(log.done_seen[i]);
    }
    /* Each callback runs once. */
    ASSERT_EQ(-EALREADY, cio_future_cancel(f));
    ASSERT_EQ(3, log.n);
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

TEST(future_on_done_after_completion_runs_at_once)
{
    cb_log log = {{0}, 0, {0}, {0}};
    cb_arg a = {&log, 7};
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_set_error(f, -EIO));
    ASSERT_OK(cio_future_on_done(f, on_done, &a));
    ASSERT_EQ(1, log.n);
    ASSERT_EQ(7, log.calls[0]);
    ASSERT_TRUE(log.ran_in[0] == cio_current());
    ASSERT_OK(cio_future_free(f));
    return 0;
}

static void chain(cio_future *f, void *arg)
{
    void *v = NULL;
    (void)cio_future_done(f);
    cio_future_set_result(arg, v);
}

TEST(future_on_done_callback_can_complete_another_future)
{
    cio_future *f1, *f2;
    ASSERT_OK(cio_future_new(&f1));
    ASSERT_OK(cio_future_new(&f2));
    ASSERT_OK(cio_future_on_done(f1, chain, f2));
    fwait w = {f2, CIO_NEVER, 1, NULL, 0, NULL, NULL, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_future, &w));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_future_cancel(f1));
    ASSERT_TRUE(cio_future_done(f2));
    ASSERT_EQ(0, cio_task_join(t));
    ASSERT_EQ(CIO_SEC, w.at);
    cio_task_free(t);
    ASSERT_OK(cio_future_free(f1));
    ASSERT_OK(cio_future_free(f2));
    return 0;
}

TEST(future_free_with_pending_callbacks_releases_them)
{
    cb_log log = {{0}, 0, {0}, {0}};
    cb_arg a = {&log, 1};
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    ASSERT_OK(cio_future_on_done(f, on_done, &a));
    ASSERT_OK(cio_future_on_done(f, on_done, &a));
    ASSERT_OK(cio_future_free(f));
    ASSERT_EQ(0, log.n);
    return 0;
}

/* ---- Allocation, outside a loop ------------------------------------------ */

TEST(future_out_of_memory)
{
    cio_future *f = (cio_future *)&f;
    cio__alloc_fail_at(1);
    int rc = cio_future_new(&f);
    cio__alloc_fail_at(0);
    ASSERT_EQ(-ENOMEM, rc);
    ASSERT_TRUE(f == (cio_future *)&f);

    cb_log log = {{0}, 0, {0}, {0}};
    cb_arg a = {&log, 1};
    ASSERT_OK(cio_future_new(&f));
    cio__alloc_fail_at(1);
    rc = cio_future_on_done(f, on_done, &a);
    cio__alloc_fail_at(0);
    ASSERT_EQ(-ENOMEM, rc);
    ASSERT_OK(cio_future_set_result(f, NULL));
    ASSERT_EQ(0, log.n);
    ASSERT_OK(cio_future_free(f));
    return 0;
}

static void *future_new_outside(void *arg)
{
    cio_future *f = NULL;
    int *rc = arg;
    rc[0] = cio_future_new(&f);
    if (rc[0] == 0)
        cio_future_free(f);
    void *v;
    rc[1] = cio_future_wait((cio_future *)arg, CIO_NEVER, &v);
    return NULL;
}

TEST(future_outside_a_loop_is_enotask)
{
    int rc[2] = {0, 0};
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, future_new_outside, rc));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(CIO_ENOTASK, rc[0]);
    ASSERT_EQ(CIO_ENOTASK, rc[1]);
    return 0;
}

TEST(future_free_right_after_completion_with_woken_waiters)
{
    int x = 4;
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fwait w[2];
    cio_task *t[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (fwait){f, CIO_NEVER, 1, NULL, 0, NULL, NULL, i};
        ASSERT_OK(cio_spawn(&t[i], wait_future, &w[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    /* The waiters have their result; none waits any more. */
    ASSERT_OK(cio_future_set_result(f, &x));
    ASSERT_OK(cio_future_free(f));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, cio_task_join(t[i]));
        ASSERT_TRUE(w[i].value == &x);
        cio_task_free(t[i]);
    }
    return 0;
}

TEST(future_free_right_after_error_with_woken_waiter)
{
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    fwait w = {f, CIO_NEVER, 1, NULL, 0, NULL, NULL, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_future, &w));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_future_cancel(f));
    ASSERT_OK(cio_future_free(f));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    return 0;
}

TEST(future_scope_deadline_wins_over_own_deadline_at_same_instant)
{
    /* The call's own deadline is the innermost; an enclosing scope that
     * expires at the same instant takes precedence. */
    cio_future *f;
    ASSERT_OK(cio_future_new(&f));
    int64_t d = cio_deadline_after(CIO_SEC);
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, d, 0));
    ASSERT_EQ(-ECANCELED, cio_future_wait(f, d, NULL));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_future_free(f));
    return 0;
}
