/* Condition: wait releases and re-acquires the mutex, notify counts and
 * order, cancellation (asyncio test_locks.py ConditionTests). */
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */


/* Locks `m` (after an optional delay), waits on `c` once, records `id` if
 * the wait succeeded, checks that it holds `m` and unlocks it. */
typedef struct cwaiter {
    cio_cond *c;
    cio_mutex *m;
    trace *tr;
    int id;
    int64_t delay;
    int64_t timeout; /* > 0: wait inside a scope with this timeout */
    int lock_rc;
    int rc;
    int trylock_rc; /* -EDEADLK proves the mutex is held on return */
    int unlock_rc;
    int exit_rc;
    int64_t at;
} cwaiter;

static int cwaiter_fn(void *arg)
{
    cwaiter *w = arg;
    w->rc = 1;
    if (w->delay > 0) {
        int rc = cio_sleep(w->delay);
        if (rc < 0)
            return rc;
    }
    w->lock_rc = cio_mutex_lock(w->m);
    if (w->lock_rc < 0)
        return w->lock_rc;
    cio_scope sc;
    if (w->timeout > 0)
        cio_scope_enter(&sc, cio_deadline_after(w->timeout), 0);
    w->rc = cio_cond_wait(w->c, w->m);
    w->at = cio_now();
    if (w->timeout > 0)
        w->exit_rc = cio_scope_exit(&sc);
    w->trylock_rc = cio_mutex_trylock(w->m);
    if (w->rc >= 0)
        trace_add(w->tr, w->id);
    w->unlock_rc = cio_mutex_unlock(w->m);
    return w->rc < 0 ? w->rc : w->id;
}

static int spawn_waiters(cio_cond *c, cio_mutex *m, trace *tr, cwaiter *ws,
                         cio_task **ts, int n)
{
    for (int i = 0; i < n; i++) {
        ws[i] = (cwaiter){.c = c, .m = m, .tr = tr, .id = i + 1};
        int rc = cio_spawn(&ts[i], cwaiter_fn, &ws[i]);
        if (rc < 0)
            return rc;
    }
    return cio_wait_all_blocked();
}

/* Checks a waiter that returned `rc` and held the mutex on return. */
#define ASSERT_WAITER(w, expected_rc)                \
    do {                                             \
        ASSERT_EQ(0, (w).lock_rc);                   \
        ASSERT_EQ((expected_rc), (w).rc);            \
        ASSERT_EQ(-EDEADLK, (w).trylock_rc);         \
        ASSERT_EQ(0, (w).unlock_rc);                 \
    } while (0)

/* ---- basics -------------------------------------------------------------- */

TEST(cond_null_arguments_einval)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(-EINVAL, cio_cond_wait(NULL, &m));
    ASSERT_EQ(-EINVAL, cio_cond_wait(&c, NULL));
    ASSERT_EQ(-EINVAL, cio_cond_notify(NULL, 1));
    ASSERT_EQ(-EINVAL, cio_cond_notify(&c, -1));
    ASSERT_EQ(-EINVAL, cio_cond_notify_all(NULL));
    /* Still held after the refused waits. */
    ASSERT_EQ(-EDEADLK, cio_mutex_trylock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    cio_cond_init(NULL);
    return 0;
}

TEST(cond_init_resets_state)
{
    cio_cond c;
    memset(&c, 0x33, sizeof c);
    cio_cond_init(&c);
    ASSERT_EQ(0, cio_cond_notify(&c, 1));
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    return 0;
}

TEST(cond_wait_on_unheld_mutex_eperm)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    ASSERT_EQ(-EPERM, cio_cond_wait(&c, &m));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_TIME(0);
    return 0;
}

static int hold_until(void *arg)
{
    void **a = arg;
    cio_mutex *m = a[0];
    cio_event *ev = a[1];
    int rc = cio_mutex_lock(m);
    if (rc < 0)
        return rc;
    rc = cio_event_wait(ev);
    int urc = cio_mutex_unlock(m);
    return rc < 0 ? rc : urc;
}

TEST(cond_wait_on_mutex_held_by_other_eperm)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    cio_event ev = CIO_EVENT_INIT;
    void *a[2] = {&m, &ev};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, hold_until, a));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EPERM, cio_cond_wait(&c, &m));
    ASSERT_OK(cio_event_set(&ev));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    return 0;
}

TEST(cond_wait_releases_mutex_while_waiting)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w;
    cio_task *t;
    ASSERT_OK(spawn_waiters(&c, &m, &tr, &w, &t, 1));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_WAITER(w, 0);
    ASSERT_TRACE(&tr, 1);
    return 0;
}

/* Locks `m` and records `id`, then unlocks. */
typedef struct plain_locker {
    cio_mutex *m;
    trace *tr;
    int id;
} plain_locker;

static int plain_lock_fn(void *arg)
{
    plain_locker *p = arg;
    int rc = cio_mutex_lock(p->m);
    if (rc < 0)
        return rc;
    trace_add(p->tr, p->id);
    rc = cio_yield();
    int urc = cio_mutex_unlock(p->m);
    return rc < 0 ? rc : urc;
}

TEST(cond_wait_hands_mutex_to_its_next_waiter)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w = {.c = &c, .m = &m, .tr = &tr, .id = 1};
    plain_locker p = {.m = &m, .tr = &tr, .id = 2};
    cio_task *tw, *tp;
    /* Both queue on the mutex we hold: the waiter first. Once it has the
     * mutex, its cond_wait must hand it to the locker behind it. */
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_spawn(&tw, cwaiter_fn, &w));
    ASSERT_OK(cio_spawn(&tp, plain_lock_fn, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(0, cio_task_join(tp));
    cio_task_free(tp);
    ASSERT_TRUE(!cio_task_done(tw));
    ASSERT_TRACE(&tr, 2);
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_EQ(1, cio_task_join(tw));
    cio_task_free(tw);
    ASSERT_WAITER(w, 0);
    ASSERT_TRACE(&tr, 2, 1);
    return 0;
}

/* ---- notify ------------------------------------------------------------- */

TEST(cond_notify_one_wakes_waiters_in_arrival_order)
{
    enum { N = 4 };
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter ws[N];
    cio_task *ts[N];
    /* Spawned 1..4, arriving 4..1. */
    for (int i = 0; i < N; i++) {
        ws[i] = (cwaiter){.c = &c, .m = &m, .tr = &tr, .id = i + 1,
                          .delay = (N - i) * CIO_MSEC};
        ASSERT_OK(cio_spawn(&ts[i], cwaiter_fn, &ws[i]));
    }
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 4);
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 4, 3);
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 4, 3, 2);
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_EQ(0, cio_cond_notify(&c, 1));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_WAITER(ws[i], 0);
    }
    ASSERT_TRACE(&tr, 4, 3, 2, 1);
    return 0;
}

TEST(cond_notify_n_returns_how_many_were_woken)
{
    enum { N = 5 };
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_waiters(&c, &m, &tr, ws, ts, N));
    ASSERT_EQ(0, cio_cond_notify(&c, 0));
    ASSERT_EQ(2, cio_cond_notify(&c, 2));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 1, 2);
    ASSERT_EQ(3, cio_cond_notify(&c, 10));
    ASSERT_EQ(0, cio_cond_notify(&c, 1));
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_WAITER(ws[i], 0);
    }
    ASSERT_TRACE(&tr, 1, 2, 3, 4, 5);
    return 0;
}

TEST(cond_notify_all_wakes_everyone_in_order)
{
    enum { N = 6 };
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_waiters(&c, &m, &tr, ws, ts, N));
    ASSERT_EQ(N, cio_cond_notify_all(&c));
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_WAITER(ws[i], 0);
    }
    ASSERT_TRACE(&tr, 1, 2, 3, 4, 5, 6);
    return 0;
}

TEST(cond_notify_without_waiters_is_not_remembered)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w;
    cio_task *t;
    ASSERT_EQ(0, cio_cond_notify(&c, 1));
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    ASSERT_OK(spawn_waiters(&c, &m, &tr, &w, &t, 1));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(CIO_SEC, w.at - cio_test_t0);
    return 0;
}

TEST(cond_notified_waiter_returns_only_once_mutex_is_free)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w;
    cio_task *t;
    ASSERT_OK(spawn_waiters(&c, &m, &tr, &w, &t, 1));
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_OK(cio_sleep(5 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_WAITER(w, 0);
    ASSERT_EQ(5 * CIO_MSEC, w.at - cio_test_t0);
    return 0;
}

/* ---- cancellation ------------------------------------------------------- */

TEST(cond_wait_while_cancelled_keeps_mutex_and_does_not_wait)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    cio_scope sc;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_cond_wait(&c, &m));
    ASSERT_EQ(-ECANCELED, cio_cond_wait(&c, &m));
    ASSERT_EQ(-EDEADLK, cio_mutex_trylock(&m));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    /* No waiter was left on the condition. */
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TIME(0);
    return 0;
}

TEST(cond_cancelled_waiter_reacquires_mutex_before_returning)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w;
    cio_task *t;
    ASSERT_OK(spawn_waiters(&c, &m, &tr, &w, &t, 1));
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_task_cancel(t));
    /* Cancelled, but it must wait for the mutex we hold. */
    ASSERT_OK(cio_sleep(7 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_WAITER(w, -ECANCELED);
    ASSERT_EQ(7 * CIO_MSEC, w.at - cio_test_t0);
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}

TEST(cond_cancelled_waiter_leaves_others_waiting)
{
    enum { N = 3 };
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_waiters(&c, &m, &tr, ws, ts, N));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_WAITER(ws[0], -ECANCELED);
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[1]) && !cio_task_done(ts[2]));
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_EQ(2, cio_task_join(ts[1]));
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 2, 3);
    return 0;
}

TEST(cond_notification_passes_on_when_notified_waiter_is_cancelled)
{
    enum { N = 3 };
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_waiters(&c, &m, &tr, ws, ts, N));
    /* Notify the first, then cancel it before it runs. */
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_WAITER(ws[0], -ECANCELED);
    /* The notification went to the second waiter; the third still
     * waits. */
    ASSERT_EQ(2, cio_task_join(ts[1]));
    ASSERT_WAITER(ws[1], 0);
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[2]));
    ASSERT_TRACE(&tr, 2);
    ASSERT_EQ(1, cio_cond_notify_all(&c));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 2, 3);
    return 0;
}

TEST(cond_notify_n_with_cancelled_notified_waiters_wakes_n)
{
    enum { N = 6 };
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_waiters(&c, &m, &tr, ws, ts, N));
    ASSERT_EQ(3, cio_cond_notify(&c, 3));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_OK(cio_task_cancel(ts[2]));
    ASSERT_OK(cio_wait_all_blocked());
    /* Three notifications, two of them passed on: 2, 4 and 5 run. */
    ASSERT_TRACE(&tr, 2, 4, 5);
    ASSERT_TRUE(!cio_task_done(ts[5]));
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    for (int i = 0; i < N; i++) {
        int rc = cio_task_join(ts[i]);
        cio_task_free(ts[i]);
        if (i == 0 || i == 2) {
            ASSERT_EQ(-ECANCELED, rc);
            ASSERT_WAITER(ws[i], -ECANCELED);
        } else {
            ASSERT_EQ(i + 1, rc);
            ASSERT_WAITER(ws[i], 0);
        }
    }
    ASSERT_TRACE(&tr, 2, 4, 5, 6);
    return 0;
}

TEST(cond_notify_all_then_cancel_loses_no_waiter)
{
    enum { N = 3 };
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_waiters(&c, &m, &tr, ws, ts, N));
    ASSERT_EQ(N, cio_cond_notify_all(&c));
    ASSERT_OK(cio_task_cancel(ts[1]));
    ASSERT_EQ(1, cio_task_join(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[1]));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_WAITER(ws[1], -ECANCELED);
    ASSERT_TRACE(&tr, 1, 3);
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    return 0;
}

TEST(cond_wait_times_out_in_scope_holding_mutex)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w = {.c = &c, .m = &m, .tr = &tr, .id = 1,
                 .timeout = 10 * CIO_MSEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, cwaiter_fn, &w));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_WAITER(w, -ECANCELED);
    ASSERT_EQ(-ETIMEDOUT, w.exit_rc);
    ASSERT_EQ(10 * CIO_MSEC, w.at - cio_test_t0);
    ASSERT_EQ(0, cio_cond_notify_all(&c));
    return 0;
}

TEST(cond_timed_out_waiter_reacquires_mutex_past_its_deadline)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w = {.c = &c, .m = &m, .tr = &tr, .id = 1,
                 .timeout = 10 * CIO_MSEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, cwaiter_fn, &w));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_sleep(30 * CIO_MSEC));
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_WAITER(w, -ECANCELED);
    ASSERT_EQ(-ETIMEDOUT, w.exit_rc);
    ASSERT_EQ(30 * CIO_MSEC, w.at - cio_test_t0);
    return 0;
}

static int notify_later(void *arg)
{
    int rc = cio_sleep(10 * CIO_MSEC);
    if (rc < 0)
        return rc;
    return cio_cond_notify(arg, 1);
}

TEST(cond_deadline_beats_notify_at_same_instant)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    cwaiter w = {.c = &c, .m = &m, .tr = &tr, .id = 1,
                 .timeout = 10 * CIO_MSEC};
    cio_task *notifier, *t;
    ASSERT_OK(cio_spawn(&notifier, notify_later, &c));
    ASSERT_OK(cio_spawn(&t, cwaiter_fn, &w));
    /* The waiter timed out at the instant of the notify: nobody was
     * there to be notified. */
    ASSERT_EQ(0, cio_task_join(notifier));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(notifier);
    cio_task_free(t);
    ASSERT_WAITER(w, -ECANCELED);
    ASSERT_EQ(-ETIMEDOUT, w.exit_rc);
    return 0;
}

/* ---- broken mutex ------------------------------------------------------- */

static int die_holding(void *arg)
{
    void **a = arg;
    cio_mutex *m = a[0];
    cio_event *ev = a[1];
    int rc = cio_mutex_lock(m);
    if (rc < 0)
        return rc;
    rc = cio_event_wait(ev);
    return rc < 0 ? rc : 5;
}

TEST(cond_wait_reacquiring_broken_mutex_reports_eownerdead)
{
    cio_cond c = CIO_COND_INIT;
    cio_mutex m = CIO_MUTEX_INIT;
    cio_event ev = CIO_EVENT_INIT;
    trace tr = {0};
    cwaiter w;
    cio_task *t, *dier;
    void *a[2] = {&m, &ev};
    ASSERT_OK(spawn_waiters(&c, &m, &tr, &w, &t, 1));
    /* While the waiter waits, another task takes the mutex and will die
     * holding it. */
    ASSERT_OK(cio_spawn(&dier, die_holding, a));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(1, cio_cond_notify(&c, 1));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_OK(cio_event_set(&ev));
    ASSERT_EQ(5, cio_task_join(dier));
    cio_task_free(dier);
    ASSERT_EQ(-EOWNERDEAD, cio_task_join(t));
    cio_task_free(t);
    ASSERT_WAITER(w, -EOWNERDEAD);
    /* The waiter repaired it by unlocking. */
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

/* ---- a bounded buffer built on two conditions -------------------------- */

enum { BUF_CAP = 3, PRODUCERS = 3, CONSUMERS = 4, PER_PRODUCER = 50 };

typedef struct bbuf {
    cio_mutex m;
    cio_cond not_empty, not_full;
    int items[BUF_CAP];
    int head, n;
    int producers_left;
    int seen[PRODUCERS * PER_PRODUCER];
    int max_n;
} bbuf;

typedef struct bbuf_arg {
    bbuf *b;
    int id;
} bbuf_arg;

static int bbuf_produce(void *arg)
{
    bbuf_arg *a = arg;
    bbuf *b = a->b;
    for (int i = 0; i < PER_PRODUCER; i++) {
        int rc = cio_mutex_lock(&b->m);
        if (rc < 0)
            return rc;
        while (rc == 0 && b->n == BUF_CAP)
            rc = cio_cond_wait(&b->not_full, &b->m);
        if (rc == 0) {
            b->items[(b->head + b->n) % BUF_CAP] = a->id * PER_PRODUCER + i;
            b->n++;
            if (b->n > b->max_n)
                b->max_n = b->n;
            cio_cond_notify(&b->not_empty, 1);
        }
        cio_mutex_unlock(&b->m);
        if (rc < 0)
            return rc;
        if ((rc = cio_yield()) < 0)
            return rc;
    }
    cio_mutex_lock(&b->m);
    if (--b->producers_left == 0)
        cio_cond_notify_all(&b->not_empty);
    cio_mutex_unlock(&b->m);
    return 0;
}

static int bbuf_consume(void *arg)
{
    bbuf_arg *a = arg;
    bbuf *b = a->b;
    int got = 0;
    for (;;) {
        int rc = cio_mutex_lock(&b->m);
        if (rc < 0)
            return rc;
        while (rc == 0 && b->n == 0 && b->producers_left > 0)
            rc = cio_cond_wait(&b->not_empty, &b->m);
        if (rc < 0 || b->n == 0) {
            cio_mutex_unlock(&b->m);
            return rc < 0 ? rc : got;
        }
        int item = b->items[b->head];
        b->head = (b->head + 1) % BUF_CAP;
        b->n--;
        b->seen[item]++;
        got++;
        cio_cond_notify(&b->not_full, 1);
        cio_mutex_unlock(&b->m);
        if ((rc = cio_sleep(CIO_MSEC)) < 0)
            return rc;
    }
}

TEST(cond_bounded_buffer_moves_every_item_once)
{
    static bbuf b;
    memset(&b, 0, sizeof b);
    b.producers_left = PRODUCERS;
    bbuf_arg pa[PRODUCERS], ca[CONSUMERS];
    cio_task *pt[PRODUCERS], *ct[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        ca[i] = (bbuf_arg){.b = &b, .id = i};
        ASSERT_OK(cio_spawn(&ct[i], bbuf_consume, &ca[i]));
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (bbuf_arg){.b = &b, .id = i};
        ASSERT_OK(cio_spawn(&pt[i], bbuf_produce, &pa[i]));
    }
    for (int i = 0; i < PRODUCERS; i++) {
        ASSERT_EQ(0, cio_task_join(pt[i]));
        cio_task_free(pt[i]);
    }
    int total = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        int got = cio_task_join(ct[i]);
        cio_task_free(ct[i]);
        ASSERT_TRUE(got > 0);
        total += got;
    }
    ASSERT_EQ(PRODUCERS * PER_PRODUCER, total);
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        ASSERT_EQ(1, b.seen[i]);
    ASSERT_EQ(0, b.n);
    ASSERT_EQ(BUF_CAP, b.max_n);
    ASSERT_TRUE(!cio_mutex_locked(&b.m));
    return 0;
}
