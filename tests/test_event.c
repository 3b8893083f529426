/* Event: set, clear, wait, and cancellation of waiters (asyncio
 * test_locks.py EventTests). */
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */

/* Waits for `e` (after an optional delay), records `id`, then makes one
 * more suspending call whose result is kept in `after_rc`. */
typedef struct waiter {
    cio_event *e;
    trace *tr;
    int id;
    int64_t delay;
    bool started;
    int rc;
    int after_rc;
    int64_t at;
} waiter;

static int waiter_fn(void *arg)
{
    waiter *w = arg;
    w->started = true;
    w->rc = 1;
    w->after_rc = 1;
    if (w->delay > 0) {
        int rc = cio_sleep(w->delay);
        if (rc < 0)
            return rc;
    }
    w->rc = cio_event_wait(w->e);
    w->at = cio_now();
    if (w->rc < 0)
        return w->rc;
    trace_add(w->tr, w->id);
    w->after_rc = cio_yield();
    return w->id;
}

/* ---- basics -------------------------------------------------------------- */

TEST(event_starts_clear)
{
    cio_event e = CIO_EVENT_INIT;
    ASSERT_TRUE(!cio_event_is_set(&e));
    cio_event d;
    memset(&d, 0x5A, sizeof d);
    cio_event_init(&d);
    ASSERT_TRUE(!cio_event_is_set(&d));
    cio_event_init(NULL);
    return 0;
}

TEST(event_set_and_clear_flip_the_flag)
{
    cio_event e = CIO_EVENT_INIT;
    ASSERT_EQ(0, cio_event_set(&e));
    ASSERT_TRUE(cio_event_is_set(&e));
    ASSERT_EQ(0, cio_event_set(&e));
    ASSERT_TRUE(cio_event_is_set(&e));
    ASSERT_EQ(0, cio_event_clear(&e));
    ASSERT_TRUE(!cio_event_is_set(&e));
    ASSERT_EQ(0, cio_event_clear(&e));
    ASSERT_TRUE(!cio_event_is_set(&e));
    return 0;
}

TEST(event_null_arguments_einval)
{
    ASSERT_EQ(-EINVAL, cio_event_set(NULL));
    ASSERT_EQ(-EINVAL, cio_event_clear(NULL));
    ASSERT_EQ(-EINVAL, cio_event_wait(NULL));
    ASSERT_TRUE(!cio_event_is_set(NULL));
    return 0;
}

TEST(event_wait_on_set_event_returns_without_yielding)
{
    cio_event e = CIO_EVENT_INIT;
    cio_event other = CIO_EVENT_INIT;
    trace tr = {0};
    waiter w = {.e = &other, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_OK(cio_event_set(&e));
    ASSERT_OK(cio_spawn(&t, waiter_fn, &w));
    ASSERT_EQ(0, cio_event_wait(&e));
    ASSERT_EQ(0, cio_event_wait(&e));
    /* The spawned task has not had a chance to run. */
    ASSERT_TRUE(!w.started);
    ASSERT_OK(cio_event_set(&other));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TIME(0);
    return 0;
}

TEST(event_wait_blocks_until_set)
{
    cio_event e = CIO_EVENT_INIT;
    trace tr = {0};
    waiter w = {.e = &e, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, waiter_fn, &w));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_OK(cio_event_set(&e));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, w.rc);
    ASSERT_EQ(CIO_SEC, w.at - cio_test_t0);
    ASSERT_TRACE(&tr, 1);
    return 0;
}

TEST(event_set_wakes_every_waiter_in_arrival_order)
{
    enum { N = 5 };
    cio_event e = CIO_EVENT_INIT;
    trace tr = {0};
    waiter ws[N];
    cio_task *ts[N];
    for (int i = 0; i < N; i++) {
        ws[i] = (waiter){.e = &e, .tr = &tr, .id = i,
                         .delay = (N - i) * CIO_MSEC};
        ASSERT_OK(cio_spawn(&ts[i], waiter_fn, &ws[i]));
    }
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_event_set(&e));
    /* set does not suspend: nobody has run yet. */
    ASSERT_TRACE_EMPTY(&tr);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_EQ(0, ws[i].rc);
        ASSERT_EQ(0, ws[i].after_rc);
    }
    ASSERT_TRACE(&tr, 4, 3, 2, 1, 0);
    ASSERT_TRUE(cio_event_is_set(&e));
    return 0;
}

TEST(event_clear_right_after_set_still_wakes_waiters)
{
    enum { N = 3 };
    cio_event e = CIO_EVENT_INIT;
    trace tr = {0};
    waiter ws[N];
    cio_task *ts[N];
    for (int i = 0; i < N; i++) {
        ws[i] = (waiter){.e = &e, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], waiter_fn, &ws[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_event_set(&e));
    ASSERT_OK(cio_event_clear(&e));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_EQ(0, ws[i].rc);
    }
    ASSERT_TRACE(&tr, 1, 2, 3);
    ASSERT_TRUE(!cio_event_is_set(&e));
    return 0;
}

TEST(event_wait_after_clear_blocks_again)
{
    cio_event e = CIO_EVENT_INIT;
    trace tr = {0};
    ASSERT_OK(cio_event_set(&e));
    ASSERT_OK(cio_event_clear(&e));
    waiter w = {.e = &e, .tr = &tr, .id = 7};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, waiter_fn, &w));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_OK(cio_sleep(3 * CIO_MSEC));
    ASSERT_OK(cio_event_set(&e));
    ASSERT_EQ(7, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(3 * CIO_MSEC, w.at - cio_test_t0);
    return 0;
}

TEST(event_set_twice_wakes_each_waiter_once)
{
    cio_event e = CIO_EVENT_INIT;
    trace tr = {0};
    waiter ws[2];
    cio_task *ts[2];
    for (int i = 0; i < 2; i++) {
        ws[i] = (waiter){.e = &e, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], waiter_fn, &ws[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_event_set(&e));
    ASSERT_OK(cio_event_set(&e));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2);
    return 0;
}

/* ---- cancellation ------------------------------------------------------- */

TEST(event_cancelled_waiter_leaves_others_waiting)
{
    enum { N = 3 };
    cio_event e = CIO_EVENT_INIT;
    trace tr = {0};
    waiter ws[N];
    cio_task *ts[N];
    for (int i = 0; i < N; i++) {
        ws[i] = (waiter){.e = &e, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], waiter_fn, &ws[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(ts[1]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[1]));
    ASSERT_EQ(-ECANCELED, ws[1].rc);
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[0]) && !cio_task_done(ts[2]));
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_TRUE(!cio_event_is_set(&e));
    ASSERT_OK(cio_event_set(&e));
    ASSERT_EQ(1, cio_task_join(ts[0]));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 1, 3);
    return 0;
}

TEST(event_wait_while_cancelled_refused_even_if_set)
{
    cio_event e = CIO_EVENT_INIT;
    cio_scope sc;
    ASSERT_OK(cio_event_set(&e));
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_event_wait(&e));
    ASSERT_EQ(-ECANCELED, cio_event_wait(&e));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_event_wait(&e));
    /* set and clear do not suspend and work while cancelled. */
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(0, cio_event_clear(&e));
    ASSERT_TRUE(!cio_event_is_set(&e));
    ASSERT_EQ(0, cio_event_set(&e));
    ASSERT_EQ(0, cio_scope_exit(&sc)); /* nothing inside saw it */
    ASSERT_TRUE(cio_event_is_set(&e));
    return 0;
}

TEST(event_wake_then_cancel_returns_success_and_cancels_later)
{
    cio_event e = CIO_EVENT_INIT;
    trace tr = {0};
    waiter w = {.e = &e, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, waiter_fn, &w));
    ASSERT_OK(cio_wait_all_blocked());
    /* The wait completed before the cancel: it returns its result, and
     * the cancellation surfaces at the next suspension point. */
    ASSERT_OK(cio_event_set(&e));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, w.rc);
    ASSERT_EQ(-ECANCELED, w.after_rc);
    ASSERT_TRACE(&tr, 1);
    return 0;
}

typedef struct timed_waiter {
    cio_event *e;
    int64_t timeout;
    int rc;
    int exit_rc;
} timed_waiter;

static int timed_wait_fn(void *arg)
{
    timed_waiter *tw = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(tw->timeout), 0);
    if (rc < 0)
        return rc;
    tw->rc = cio_event_wait(tw->e);
    tw->exit_rc = cio_scope_exit(&sc);
    return 0;
}

TEST(event_wait_times_out_in_scope)
{
    cio_event e = CIO_EVENT_INIT;
    timed_waiter tw = {.e = &e, .timeout = 20 * CIO_MSEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, timed_wait_fn, &tw));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, tw.rc);
    ASSERT_EQ(-ETIMEDOUT, tw.exit_rc);
    ASSERT_TIME(20 * CIO_MSEC);
    /* The timed-out waiter left no trace on the event. */
    ASSERT_OK(cio_event_set(&e));
    ASSERT_EQ(0, cio_event_wait(&e));
    return 0;
}

static int set_later(void *arg)
{
    int rc = cio_sleep(20 * CIO_MSEC);
    if (rc < 0)
        return rc;
    return cio_event_set(arg);
}

TEST(event_deadline_beats_set_at_same_instant)
{
    cio_event e = CIO_EVENT_INIT;
    timed_waiter tw = {.e = &e, .timeout = 20 * CIO_MSEC};
    cio_task *setter, *t;
    ASSERT_OK(cio_spawn(&setter, set_later, &e));
    ASSERT_OK(cio_spawn(&t, timed_wait_fn, &tw));
    ASSERT_EQ(0, cio_task_join(setter));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(setter);
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, tw.rc);
    ASSERT_EQ(-ETIMEDOUT, tw.exit_rc);
    ASSERT_TRUE(cio_event_is_set(&e));
    ASSERT_TIME(20 * CIO_MSEC);
    return 0;
}

TEST(event_set_before_deadline_wins)
{
    cio_event e = CIO_EVENT_INIT;
    timed_waiter tw = {.e = &e, .timeout = 21 * CIO_MSEC};
    cio_task *setter, *t;
    ASSERT_OK(cio_spawn(&setter, set_later, &e));
    ASSERT_OK(cio_spawn(&t, timed_wait_fn, &tw));
    ASSERT_EQ(0, cio_task_join(setter));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(setter);
    cio_task_free(t);
    ASSERT_EQ(0, tw.rc);
    ASSERT_EQ(0, tw.exit_rc);
    ASSERT_TIME(20 * CIO_MSEC);
    return 0;
}

TEST(event_many_waiters_all_released)
{
    enum { N = 200 };
    cio_event e = CIO_EVENT_INIT;
    static trace tr;
    static waiter ws[N];
    static cio_task *ts[N];
    memset(&tr, 0, sizeof tr);
    for (int i = 0; i < N; i++) {
        ws[i] = (waiter){.e = &e, .tr = &tr, .id = i};
        ASSERT_OK(cio_spawn(&ts[i], waiter_fn, &ws[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    /* Cancel every third waiter before setting. */
    for (int i = 0; i < N; i += 3)
        ASSERT_OK(cio_task_cancel(ts[i]));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_event_set(&e));
    int woken = 0;
    for (int i = 0; i < N; i++) {
        int rc = cio_task_join(ts[i]);
        cio_task_free(ts[i]);
        if (i % 3 == 0) {
            ASSERT_EQ(-ECANCELED, rc);
        } else {
            ASSERT_EQ(i, rc);
            ASSERT_EQ(i, tr.v[woken]);
            woken++;
        }
    }
    ASSERT_EQ(woken, tr.n);
    ASSERT_EQ(N - (N + 2) / 3, woken);
    return 0;
}
