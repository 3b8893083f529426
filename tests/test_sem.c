/* Semaphores: counting, bounded release, FIFO hand-off without
 * overtaking, and permits kept safe under cancellation (asyncio
 * test_locks.py SemaphoreTests, BoundedSemaphore). */
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */

/* Acquires (after an optional delay), records `id`, holds the permit until
 * `go` is set (if given), and releases it, also when cancelled while
 * holding. */
typedef struct worker {
    cio_sem *s;
    trace *tr;
    int id;
    int64_t delay;
    cio_event *go;
    bool started;
    int rc;
    bool acquired;
    int hold_rc;
    int release_rc;
} worker;

static int worker_fn(void *arg)
{
    worker *w = arg;
    w->started = true;
    w->release_rc = 1;
    if (w->delay > 0) {
        int rc = cio_sleep(w->delay);
        if (rc < 0)
            return rc;
    }
    w->rc = cio_sem_acquire(w->s);
    if (w->rc < 0)
        return w->rc;
    w->acquired = true;
    trace_add(w->tr, w->id);
    if (w->go)
        w->hold_rc = cio_event_wait(w->go);
    w->release_rc = cio_sem_release(w->s);
    return w->hold_rc < 0 ? w->hold_rc : w->id;
}

static int spawn_workers(cio_sem *s, trace *tr, cio_event *go, worker *ws,
                         cio_task **ts, int n)
{
    for (int i = 0; i < n; i++) {
        ws[i] = (worker){.s = s, .tr = tr, .id = i + 1, .go = go};
        int rc = cio_spawn(&ts[i], worker_fn, &ws[i]);
        if (rc < 0)
            return rc;
    }
    return cio_wait_all_blocked();
}

/* ---- basics -------------------------------------------------------------- */

TEST(sem_init_validates_arguments)
{
    cio_sem s;
    ASSERT_EQ(-EINVAL, cio_sem_init(NULL, 1, 0));
    ASSERT_EQ(-EINVAL, cio_sem_init(&s, -1, 0));
    ASSERT_EQ(-EINVAL, cio_sem_init(&s, -1, CIO_SEM_BOUNDED));
    ASSERT_EQ(-EINVAL, cio_sem_init(&s, 1, 0x80));
    ASSERT_EQ(0, cio_sem_init(&s, 0, 0));
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_EQ(0, cio_sem_init(&s, 3, CIO_SEM_BOUNDED));
    ASSERT_EQ(3, cio_sem_value(&s));
    ASSERT_EQ(0, cio_sem_value(NULL));
    return 0;
}

TEST(sem_null_arguments_einval)
{
    ASSERT_EQ(-EINVAL, cio_sem_acquire(NULL));
    ASSERT_EQ(-EINVAL, cio_sem_try_acquire(NULL));
    ASSERT_EQ(-EINVAL, cio_sem_release(NULL));
    return 0;
}

TEST(sem_counts_acquires_and_releases)
{
    cio_sem s = CIO_SEM_INIT(2);
    ASSERT_EQ(2, cio_sem_value(&s));
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_EQ(1, cio_sem_value(&s));
    ASSERT_EQ(0, cio_sem_try_acquire(&s));
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_EQ(-EAGAIN, cio_sem_try_acquire(&s));
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(2, cio_sem_value(&s));
    /* Unbounded: releasing past the initial value grows it. */
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(3, cio_sem_value(&s));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_EQ(-EAGAIN, cio_sem_try_acquire(&s));
    ASSERT_TIME(0);
    return 0;
}

TEST(sem_acquire_with_free_permit_does_not_yield)
{
    cio_sem s = CIO_SEM_INIT(1);
    cio_sem other = CIO_SEM_INIT(0);
    trace tr = {0};
    worker w = {.s = &other, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, worker_fn, &w));
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_try_acquire(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    /* The spawned task has not had a chance to run. */
    ASSERT_TRUE(!w.started);
    ASSERT_EQ(0, cio_sem_release(&other));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(1, cio_sem_value(&other));
    return 0;
}

TEST(sem_init_resets_state)
{
    cio_sem s;
    memset(&s, 0x77, sizeof s);
    ASSERT_EQ(0, cio_sem_init(&s, 1, 0));
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_EQ(-EAGAIN, cio_sem_try_acquire(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(2, cio_sem_value(&s));
    return 0;
}

/* ---- bounded ------------------------------------------------------------ */

TEST(sem_bounded_release_beyond_initial_value_eoverflow)
{
    cio_sem s = CIO_BSEM_INIT(2);
    ASSERT_EQ(-EOVERFLOW, cio_sem_release(&s));
    ASSERT_EQ(2, cio_sem_value(&s));
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(-EOVERFLOW, cio_sem_release(&s));
    ASSERT_EQ(2, cio_sem_value(&s));

    cio_sem b;
    ASSERT_EQ(0, cio_sem_init(&b, 1, CIO_SEM_BOUNDED));
    ASSERT_EQ(-EOVERFLOW, cio_sem_release(&b));
    ASSERT_EQ(0, cio_sem_try_acquire(&b));
    ASSERT_EQ(0, cio_sem_release(&b));
    ASSERT_EQ(-EOVERFLOW, cio_sem_release(&b));
    ASSERT_EQ(1, cio_sem_value(&b));
    return 0;
}

TEST(sem_bounded_at_zero_refuses_every_release)
{
    cio_sem s;
    ASSERT_EQ(0, cio_sem_init(&s, 0, CIO_SEM_BOUNDED));
    ASSERT_EQ(-EOVERFLOW, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_EQ(-EAGAIN, cio_sem_try_acquire(&s));
    /* Unbounded at zero is an ordinary semaphore. */
    ASSERT_EQ(0, cio_sem_init(&s, 0, 0));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}

TEST(sem_bounded_handoff_to_waiter_respects_bound)
{
    cio_sem s = CIO_BSEM_INIT(1);
    trace tr = {0};
    worker w;
    cio_task *t;
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_OK(spawn_workers(&s, &tr, NULL, &w, &t, 1));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, w.release_rc);
    ASSERT_EQ(1, cio_sem_value(&s));
    ASSERT_EQ(-EOVERFLOW, cio_sem_release(&s));
    return 0;
}

TEST(sem_bounded_permit_of_cancelled_waiter_counts_toward_bound)
{
    cio_sem s = CIO_BSEM_INIT(1);
    trace tr = {0};
    worker w;
    cio_task *t;
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_OK(spawn_workers(&s, &tr, NULL, &w, &t, 1));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(1, cio_sem_value(&s));
    ASSERT_EQ(-EOVERFLOW, cio_sem_release(&s));
    return 0;
}

/* ---- FIFO and no overtaking --------------------------------------------- */

TEST(sem_waiters_acquire_in_arrival_order)
{
    enum { N = 5 };
    cio_sem s = CIO_SEM_INIT(0);
    trace tr = {0};
    worker ws[N];
    cio_task *ts[N];
    for (int i = 0; i < N; i++) {
        ws[i] = (worker){.s = &s, .tr = &tr, .id = i + 1,
                         .delay = (N - i) * CIO_MSEC};
        ASSERT_OK(cio_spawn(&ts[i], worker_fn, &ws[i]));
    }
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE_EMPTY(&tr);
    /* One permit: it travels down the queue, each releasing to the
     * next. */
    ASSERT_EQ(0, cio_sem_release(&s));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_EQ(0, ws[i].release_rc);
    }
    ASSERT_TRACE(&tr, 5, 4, 3, 2, 1);
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}

TEST(sem_release_wakes_exactly_one_waiter)
{
    enum { N = 3 };
    cio_sem s = CIO_SEM_INIT(0);
    cio_event go = CIO_EVENT_INIT;
    trace tr = {0};
    worker ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_workers(&s, &tr, &go, ws, ts, N));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 1);
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 1, 2);
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_OK(cio_event_set(&go));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2, 3);
    ASSERT_EQ(2, cio_sem_value(&s));
    return 0;
}

TEST(sem_try_acquire_cannot_overtake_woken_waiter)
{
    cio_sem s = CIO_SEM_INIT(0);
    trace tr = {0};
    worker w;
    cio_task *t;
    ASSERT_OK(spawn_workers(&s, &tr, NULL, &w, &t, 1));
    ASSERT_EQ(-EAGAIN, cio_sem_try_acquire(&s));
    /* The released permit belongs to the waiter, though it has not run. */
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_EQ(-EAGAIN, cio_sem_try_acquire(&s));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRACE(&tr, 1);
    ASSERT_EQ(0, cio_sem_try_acquire(&s));
    ASSERT_EQ(0, cio_sem_release(&s));
    return 0;
}

TEST(sem_release_and_reacquire_goes_behind_waiters)
{
    cio_sem s = CIO_SEM_INIT(1);
    trace tr = {0};
    worker ws[2];
    cio_task *ts[2];
    ASSERT_EQ(0, cio_sem_acquire(&s));
    ASSERT_OK(spawn_workers(&s, &tr, NULL, ws, ts, 2));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_sem_acquire(&s));
    trace_add(&tr, 0);
    ASSERT_EQ(0, cio_sem_release(&s));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2, 0);
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}

/* Each of N tasks holds a permit for 1 ms; track the peak. */
typedef struct limited {
    cio_sem *s;
    int *active;
    int *peak;
} limited;

static int limited_fn(void *arg)
{
    limited *l = arg;
    int rc = cio_sem_acquire(l->s);
    if (rc < 0)
        return rc;
    if (++*l->active > *l->peak)
        *l->peak = *l->active;
    rc = cio_sleep(CIO_MSEC);
    --*l->active;
    cio_sem_release(l->s);
    return rc;
}

TEST(sem_limits_concurrency)
{
    enum { N = 10 };
    cio_sem s = CIO_SEM_INIT(3);
    int active = 0, peak = 0;
    limited l = {.s = &s, .active = &active, .peak = &peak};
    cio_task *ts[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(cio_spawn(&ts[i], limited_fn, &l));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(0, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_EQ(3, peak);
    ASSERT_EQ(0, active);
    ASSERT_EQ(3, cio_sem_value(&s));
    /* Ten one-millisecond jobs, three at a time: four rounds. */
    ASSERT_TIME(4 * CIO_MSEC);
    return 0;
}

/* ---- cancellation ------------------------------------------------------- */

TEST(sem_acquire_while_cancelled_takes_nothing)
{
    cio_sem s = CIO_SEM_INIT(2);
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_sem_acquire(&s));
    ASSERT_EQ(-ECANCELED, cio_sem_try_acquire(&s));
    ASSERT_EQ(-ECANCELED, cio_sem_acquire(&s));
    ASSERT_EQ(2, cio_sem_value(&s));
    /* Releasing does not suspend and works while cancelled. */
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(3, cio_sem_value(&s));
    return 0;
}

TEST(sem_cancelled_waiter_takes_no_permit)
{
    enum { N = 3 };
    cio_sem s = CIO_SEM_INIT(0);
    trace tr = {0};
    worker ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_workers(&s, &tr, NULL, ws, ts, N));
    ASSERT_OK(cio_task_cancel(ts[1]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[1]));
    ASSERT_EQ(-ECANCELED, ws[1].rc);
    ASSERT_TRUE(!ws[1].acquired);
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[0]) && !cio_task_done(ts[2]));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(1, cio_task_join(ts[0]));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 1, 3);
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}

TEST(sem_permit_handed_to_cancelled_waiter_passes_to_next)
{
    enum { N = 3 };
    cio_sem s = CIO_SEM_INIT(0);
    cio_event go = CIO_EVENT_INIT;
    trace tr = {0};
    worker ws[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_workers(&s, &tr, &go, ws, ts, N));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_TRUE(!ws[0].acquired);
    ASSERT_OK(cio_wait_all_blocked());
    /* Waiter 2 holds the permit, waiter 3 still waits. */
    ASSERT_TRACE(&tr, 2);
    ASSERT_TRUE(!cio_task_done(ts[2]));
    ASSERT_EQ(0, cio_sem_value(&s));
    ASSERT_OK(cio_event_set(&go));
    ASSERT_EQ(2, cio_task_join(ts[1]));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 2, 3);
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}

TEST(sem_permit_handed_to_cancelled_last_waiter_returns_to_sem)
{
    cio_sem s = CIO_SEM_INIT(0);
    trace tr = {0};
    worker w;
    cio_task *t;
    ASSERT_OK(spawn_workers(&s, &tr, NULL, &w, &t, 1));
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(1, cio_sem_value(&s));
    ASSERT_EQ(0, cio_sem_try_acquire(&s));
    return 0;
}

TEST(sem_permits_never_lost_under_cancellation)
{
    enum { N = 100, PERMITS = 10 };
    cio_sem s = CIO_SEM_INIT(0);
    cio_event go = CIO_EVENT_INIT;
    static trace tr;
    static worker ws[N];
    static cio_task *ts[N];
    memset(&tr, 0, sizeof tr);
    /* Ids are 1..N; ws[i] has id i + 1. */
    ASSERT_OK(spawn_workers(&s, &tr, &go, ws, ts, N));
    /* Cancel ids divisible by 4 while everyone waits. */
    for (int id = 4; id <= N; id += 4)
        ASSERT_OK(cio_task_cancel(ts[id - 1]));
    /* Release permits and, in the same step, cancel the ids that are 2
     * mod 4: some of them were just handed a permit, the rest wait. */
    for (int i = 0; i < PERMITS; i++)
        ASSERT_EQ(0, cio_sem_release(&s));
    for (int id = 2; id <= N; id += 4)
        ASSERT_OK(cio_task_cancel(ts[id - 1]));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19);
    ASSERT_EQ(0, cio_sem_value(&s));
    /* Cancel two holders (they release as they leave) and two waiters. */
    ASSERT_OK(cio_task_cancel(ts[3 - 1]));
    ASSERT_OK(cio_task_cancel(ts[7 - 1]));
    ASSERT_OK(cio_task_cancel(ts[25 - 1]));
    ASSERT_OK(cio_task_cancel(ts[27 - 1]));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23);
    ASSERT_EQ(0, cio_sem_value(&s));
    /* Let everyone through. */
    ASSERT_OK(cio_event_set(&go));
    int expect[N], ne = 0;
    for (int id = 1; id <= N; id++) {
        int rc = cio_task_join(ts[id - 1]);
        cio_task_free(ts[id - 1]);
        const worker *w = &ws[id - 1];
        bool cancelled_waiting = id % 2 == 0 || id == 25 || id == 27;
        bool cancelled_holding = id == 3 || id == 7;
        if (cancelled_waiting) {
            ASSERT_EQ(-ECANCELED, rc);
            ASSERT_EQ(-ECANCELED, w->rc);
            ASSERT_TRUE(!w->acquired);
            ASSERT_EQ(1, w->release_rc);
        } else {
            ASSERT_EQ(cancelled_holding ? -ECANCELED : id, rc);
            ASSERT_TRUE(w->acquired);
            ASSERT_EQ(0, w->release_rc);
            expect[ne++] = id;
        }
    }
    /* Every survivor got a permit, in queue order, and all permits are
     * back. */
    if (trace_check(&tr, expect, ne, __FILE__, __LINE__) != 0)
        return -1;
    ASSERT_EQ(48, ne);
    ASSERT_EQ(PERMITS, cio_sem_value(&s));
    for (int i = 0; i < PERMITS; i++)
        ASSERT_EQ(0, cio_sem_try_acquire(&s));
    ASSERT_EQ(-EAGAIN, cio_sem_try_acquire(&s));
    return 0;
}

/* Acquires inside a shielded scope, releases, then leaves the scope and
 * suspends once. */
typedef struct shielded {
    cio_sem *s;
    int rc;
    int exit_rc;
    int after_rc;
} shielded;

static int shielded_acquire_fn(void *arg)
{
    shielded *sh = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, CIO_NEVER, CIO_SCOPE_SHIELD);
    if (rc < 0)
        return rc;
    sh->rc = cio_sem_acquire(sh->s);
    if (sh->rc == 0)
        cio_sem_release(sh->s);
    sh->exit_rc = cio_scope_exit(&sc);
    sh->after_rc = cio_yield();
    return 0;
}

TEST(sem_acquire_in_shielded_scope_ignores_outer_cancel)
{
    cio_sem s = CIO_SEM_INIT(0);
    shielded sh = {.s = &s};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, shielded_acquire_fn, &sh));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    /* Handed over while cancelled outside the shield: it keeps it. */
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, sh.rc);
    ASSERT_EQ(0, sh.exit_rc);
    ASSERT_EQ(-ECANCELED, sh.after_rc);
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}

typedef struct timed_acq {
    cio_sem *s;
    int64_t timeout;
    int rc;
    int exit_rc;
} timed_acq;

static int timed_acquire_fn(void *arg)
{
    timed_acq *ta = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(ta->timeout), 0);
    if (rc < 0)
        return rc;
    ta->rc = cio_sem_acquire(ta->s);
    ta->exit_rc = cio_scope_exit(&sc);
    return 0;
}

TEST(sem_acquire_times_out_in_scope)
{
    cio_sem s = CIO_SEM_INIT(0);
    timed_acq ta = {.s = &s, .timeout = 15 * CIO_MSEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, timed_acquire_fn, &ta));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, ta.rc);
    ASSERT_EQ(-ETIMEDOUT, ta.exit_rc);
    ASSERT_TIME(15 * CIO_MSEC);
    /* The timed-out waiter is gone: a release becomes a free permit. */
    ASSERT_EQ(0, cio_sem_release(&s));
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}

static int release_later(void *arg)
{
    int rc = cio_sleep(15 * CIO_MSEC);
    if (rc < 0)
        return rc;
    return cio_sem_release(arg);
}

TEST(sem_deadline_beats_release_at_same_instant)
{
    cio_sem s = CIO_SEM_INIT(0);
    timed_acq ta = {.s = &s, .timeout = 15 * CIO_MSEC};
    cio_task *rel, *t;
    ASSERT_OK(cio_spawn(&rel, release_later, &s));
    ASSERT_OK(cio_spawn(&t, timed_acquire_fn, &ta));
    ASSERT_EQ(0, cio_task_join(rel));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(rel);
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, ta.rc);
    ASSERT_EQ(-ETIMEDOUT, ta.exit_rc);
    ASSERT_EQ(1, cio_sem_value(&s));
    return 0;
}
