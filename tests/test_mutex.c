/* Mutex: ownership, FIFO hand-off, broken (owner-dead) mutexes, and
 * cancellation while waiting (asyncio test_locks.py LockTests, plus the
 * owner rules of DESIGN.md rule 10 and the hand-off rule 11). */
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */


/* A task that (after an optional delay) locks `m`, records `id`, holds the
 * mutex until `release` is set (if given), and unlocks. */
typedef struct locker {
    cio_mutex *m;
    trace *tr;
    int id;
    int64_t delay;
    cio_event *release;
    int rc;        /* what lock returned */
    int unlock_rc; /* what unlock returned */
    bool held;     /* cio_mutex_locked while it held the mutex */
} locker;

static int locker_fn(void *arg)
{
    locker *l = arg;
    l->unlock_rc = 1;
    if (l->delay > 0) {
        int rc = cio_sleep(l->delay);
        if (rc < 0)
            return rc;
    }
    l->rc = cio_mutex_lock(l->m);
    if (l->rc < 0 && l->rc != -EOWNERDEAD)
        return l->rc;
    trace_add(l->tr, l->id);
    l->held = cio_mutex_locked(l->m);
    if (l->release) {
        int rc = cio_event_wait(l->release);
        if (rc < 0) {
            l->unlock_rc = cio_mutex_unlock(l->m);
            return rc;
        }
    }
    l->unlock_rc = cio_mutex_unlock(l->m);
    return l->id;
}

/* A task that locks `m`, waits for `ev` (if any) and returns still holding
 * it, which breaks the mutex. */
typedef struct dier {
    cio_mutex *m;
    cio_event *ev;
} dier;

static int die_holding(void *arg)
{
    dier *d = arg;
    int rc = cio_mutex_lock(d->m);
    if (rc < 0)
        return rc;
    if (d->ev) {
        rc = cio_event_wait(d->ev);
        if (rc < 0)
            return rc;
    }
    return 5;
}

/* ---- basics -------------------------------------------------------------- */

TEST(mutex_lock_unlock_round_trip)
{
    cio_mutex m = CIO_MUTEX_INIT;
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TIME(0);
    return 0;
}

TEST(mutex_init_resets_state)
{
    cio_mutex m;
    memset(&m, 0xA5, sizeof m);
    cio_mutex_init(&m);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    cio_mutex_init(NULL);
    return 0;
}

TEST(mutex_null_arguments_einval)
{
    ASSERT_EQ(-EINVAL, cio_mutex_lock(NULL));
    ASSERT_EQ(-EINVAL, cio_mutex_trylock(NULL));
    ASSERT_EQ(-EINVAL, cio_mutex_unlock(NULL));
    ASSERT_TRUE(!cio_mutex_locked(NULL));
    return 0;
}

TEST(mutex_uncontended_lock_does_not_yield)
{
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker l = {.m = &m, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, locker_fn, &l));
    /* The new task would run at our first suspension; lock and unlock of
     * a free mutex must not give it the chance. */
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(1, cio_task_join(t));
    ASSERT_TRACE(&tr, 1);
    cio_task_free(t);
    return 0;
}

/* ---- ownership errors ---------------------------------------------------- */

TEST(mutex_unlock_unheld_eperm)
{
    cio_mutex m = CIO_MUTEX_INIT;
    ASSERT_EQ(-EPERM, cio_mutex_unlock(&m));
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(-EPERM, cio_mutex_unlock(&m));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}

typedef struct unlocker {
    cio_mutex *m;
    int unlock_rc;
    int trylock_rc;
} unlocker;

static int unlock_other(void *arg)
{
    unlocker *u = arg;
    u->unlock_rc = cio_mutex_unlock(u->m);
    u->trylock_rc = cio_mutex_trylock(u->m);
    return 0;
}

TEST(mutex_unlock_by_non_owner_eperm)
{
    cio_mutex m = CIO_MUTEX_INIT;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    unlocker u = {.m = &m};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, unlock_other, &u));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EPERM, u.unlock_rc);
    ASSERT_EQ(-EBUSY, u.trylock_rc);
    /* Still ours. */
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(-EDEADLK, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_relock_by_owner_edeadlk)
{
    cio_mutex m = CIO_MUTEX_INIT;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(-EDEADLK, cio_mutex_lock(&m));
    ASSERT_EQ(-EDEADLK, cio_mutex_trylock(&m));
    /* The failed calls changed nothing: one unlock frees it. */
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(-EPERM, cio_mutex_unlock(&m));
    ASSERT_TIME(0);
    return 0;
}

TEST(mutex_trylock_ebusy_when_held)
{
    cio_mutex m = CIO_MUTEX_INIT;
    cio_event release = CIO_EVENT_INIT;
    trace tr = {0};
    locker l = {.m = &m, .tr = &tr, .id = 1, .release = &release};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, locker_fn, &l));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE(&tr, 1);
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(-EBUSY, cio_mutex_trylock(&m));
    ASSERT_EQ(-EBUSY, cio_mutex_trylock(&m));
    ASSERT_EQ(-EPERM, cio_mutex_unlock(&m));
    ASSERT_OK(cio_event_set(&release));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, l.unlock_rc);
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

/* ---- FIFO --------------------------------------------------------------- */

TEST(mutex_waiters_acquire_in_arrival_order)
{
    enum { N = 6 };
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker ls[N];
    cio_task *ts[N];
    ASSERT_EQ(0, cio_mutex_lock(&m));
    /* Spawned 0..5 but arriving 5..0: arrival order is what counts. */
    for (int i = 0; i < N; i++) {
        ls[i] = (locker){.m = &m, .tr = &tr, .id = i,
                         .delay = (N - i) * CIO_MSEC};
        ASSERT_OK(cio_spawn(&ts[i], locker_fn, &ls[i]));
    }
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_EQ(0, ls[i].rc);
        ASSERT_EQ(0, ls[i].unlock_rc);
        ASSERT_TRUE(ls[i].held);
    }
    ASSERT_TRACE(&tr, 5, 4, 3, 2, 1, 0);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_TIME(10 * CIO_MSEC);
    return 0;
}

TEST(mutex_unlock_hands_lock_to_first_waiter_without_yielding)
{
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker l = {.m = &m, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_spawn(&t, locker_fn, &l));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    /* The waiter owns it now although it has not run yet. */
    trace_add(&tr, 0);
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(-EBUSY, cio_mutex_trylock(&m));
    ASSERT_EQ(-EPERM, cio_mutex_unlock(&m));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRACE(&tr, 0, 1);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}

TEST(mutex_release_and_relock_goes_behind_waiters)
{
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker ls[2];
    cio_task *ts[2];
    ASSERT_EQ(0, cio_mutex_lock(&m));
    for (int i = 0; i < 2; i++) {
        ls[i] = (locker){.m = &m, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], locker_fn, &ls[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(0, cio_mutex_lock(&m));
    trace_add(&tr, 0);
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2, 0);
    return 0;
}

/* Every holder records entering and leaving; holders yield and sleep
 * while holding, so any overlap would interleave the records. */
typedef struct crit {
    cio_mutex *m;
    trace *tr;
    int id;
    int rounds;
    int inside;
} crit;

static int crit_fn(void *arg)
{
    crit *c = arg;
    for (int r = 0; r < c->rounds; r++) {
        int rc = cio_mutex_lock(c->m);
        if (rc < 0)
            return rc;
        trace_add(c->tr, c->id);
        rc = cio_yield();
        if (rc == 0)
            rc = cio_sleep(CIO_MSEC);
        trace_add(c->tr, -c->id);
        int urc = cio_mutex_unlock(c->m);
        if (rc < 0 || urc < 0)
            return rc < 0 ? rc : urc;
    }
    return 0;
}

TEST(mutex_excludes_and_rotates_fairly)
{
    enum { N = 4, ROUNDS = 3 };
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    crit cs[N];
    cio_task *ts[N];
    for (int i = 0; i < N; i++) {
        cs[i] = (crit){.m = &m, .tr = &tr, .id = i + 1, .rounds = ROUNDS};
        ASSERT_OK(cio_spawn(&ts[i], crit_fn, &cs[i]));
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(0, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    /* Strict alternation enter/leave, and the releaser re-queues behind
     * the others, so the tasks take turns 1 2 3 4 1 2 3 4 ... */
    ASSERT_EQ(2 * N * ROUNDS, tr.n);
    for (int k = 0; k < N * ROUNDS; k++) {
        ASSERT_EQ(k % N + 1, tr.v[2 * k]);
        ASSERT_EQ(-(k % N + 1), tr.v[2 * k + 1]);
    }
    ASSERT_TIME(N * ROUNDS * CIO_MSEC);
    return 0;
}

/* ---- broken mutexes (owner died) -------------------------------------- */

TEST(mutex_owner_exit_breaks_lock_for_next_locker)
{
    cio_mutex m = CIO_MUTEX_INIT;
    dier d = {.m = &m};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, die_holding, &d));
    ASSERT_EQ(5, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(-EPERM, cio_mutex_unlock(&m));
    /* The next locker gets it with -EOWNERDEAD and holds it. */
    ASSERT_EQ(-EOWNERDEAD, cio_mutex_lock(&m));
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(-EDEADLK, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    /* Repaired: the state is reported once. */
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_owner_exit_breaks_lock_for_trylock)
{
    cio_mutex m = CIO_MUTEX_INIT;
    dier d = {.m = &m};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, die_holding, &d));
    ASSERT_EQ(5, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EOWNERDEAD, cio_mutex_trylock(&m));
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_owner_exit_breaks_lock_for_first_waiter_only)
{
    cio_mutex m = CIO_MUTEX_INIT;
    cio_event ev = CIO_EVENT_INIT;
    trace tr = {0};
    dier d = {.m = &m, .ev = &ev};
    locker ls[2];
    cio_task *owner, *ts[2];
    ASSERT_OK(cio_spawn(&owner, die_holding, &d));
    for (int i = 0; i < 2; i++) {
        ls[i] = (locker){.m = &m, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], locker_fn, &ls[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_OK(cio_event_set(&ev));
    ASSERT_EQ(5, cio_task_join(owner));
    cio_task_free(owner);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2);
    /* The first waiter got the broken mutex and held it; it repaired it
     * by unlocking, so the second sees a healthy one. */
    ASSERT_EQ(-EOWNERDEAD, ls[0].rc);
    ASSERT_TRUE(ls[0].held);
    ASSERT_EQ(0, ls[0].unlock_rc);
    ASSERT_EQ(0, ls[1].rc);
    ASSERT_EQ(0, ls[1].unlock_rc);
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_owner_cancelled_while_holding_breaks_lock)
{
    cio_mutex m = CIO_MUTEX_INIT;
    cio_event never = CIO_EVENT_INIT;
    dier d = {.m = &m, .ev = &never};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, die_holding, &d));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EOWNERDEAD, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

static int die_holding_two(void *arg)
{
    cio_mutex *ms = arg;
    int rc = cio_mutex_lock(&ms[0]);
    if (rc == 0)
        rc = cio_mutex_lock(&ms[1]);
    return rc;
}

TEST(mutex_owner_exit_breaks_every_held_mutex)
{
    cio_mutex ms[3] = {CIO_MUTEX_INIT, CIO_MUTEX_INIT, CIO_MUTEX_INIT};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, die_holding_two, ms));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EOWNERDEAD, cio_mutex_lock(&ms[1]));
    ASSERT_EQ(-EOWNERDEAD, cio_mutex_lock(&ms[0]));
    ASSERT_EQ(0, cio_mutex_lock(&ms[2]));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_mutex_unlock(&ms[i]));
    return 0;
}

TEST(mutex_owner_unlocking_before_exit_does_not_break)
{
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker l = {.m = &m, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, locker_fn, &l));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

/* ---- cancellation ------------------------------------------------------- */

TEST(mutex_cancelled_waiter_takes_nothing)
{
    enum { N = 3 };
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker ls[N];
    cio_task *ts[N];
    ASSERT_EQ(0, cio_mutex_lock(&m));
    for (int i = 0; i < N; i++) {
        ls[i] = (locker){.m = &m, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], locker_fn, &ls[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(ts[1]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[1]));
    ASSERT_EQ(-ECANCELED, ls[1].rc);
    /* The others still wait, and we still hold the mutex. */
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_TRUE(!cio_task_done(ts[0]) && !cio_task_done(ts[2]));
    ASSERT_EQ(-EDEADLK, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(1, cio_task_join(ts[0]));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 1, 3);
    ASSERT_EQ(1, ls[1].unlock_rc); /* never reached unlock */
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}

TEST(mutex_handoff_to_cancelled_waiter_passes_to_next)
{
    enum { N = 3 };
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker ls[N];
    cio_task *ts[N];
    ASSERT_EQ(0, cio_mutex_lock(&m));
    for (int i = 0; i < N; i++) {
        ls[i] = (locker){.m = &m, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], locker_fn, &ls[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    /* Hand the mutex to the first waiter, then cancel it before it runs. */
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_EQ(-ECANCELED, ls[0].rc);
    ASSERT_EQ(2, cio_task_join(ts[1]));
    ASSERT_EQ(3, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 2, 3);
    ASSERT_EQ(0, ls[1].rc);
    ASSERT_EQ(0, ls[2].rc);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_handoff_to_cancelled_last_waiter_frees_lock)
{
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker l = {.m = &m, .tr = &tr, .id = 1};
    cio_task *t;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_spawn(&t, locker_fn, &l));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

/* Waits for `ev`, then cancels `target`. */
typedef struct canceller {
    cio_event *ev;
    cio_task *target;
} canceller;

static int cancel_after_event(void *arg)
{
    canceller *c = arg;
    int rc = cio_event_wait(c->ev);
    if (rc < 0)
        return rc;
    return cio_task_cancel(c->target);
}

TEST(mutex_broken_handoff_to_cancelled_waiter_passes_broken_state)
{
    cio_mutex m = CIO_MUTEX_INIT;
    cio_event ev = CIO_EVENT_INIT;
    trace tr = {0};
    dier d = {.m = &m, .ev = &ev};
    locker ls[2];
    cio_task *owner, *ts[2], *killer;
    ASSERT_OK(cio_spawn(&owner, die_holding, &d));
    for (int i = 0; i < 2; i++) {
        ls[i] = (locker){.m = &m, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], locker_fn, &ls[i]));
    }
    canceller c = {.ev = &ev, .target = ts[0]};
    ASSERT_OK(cio_spawn(&killer, cancel_after_event, &c));
    ASSERT_OK(cio_wait_all_blocked());
    /* The owner and the killer wake in that order: the owner dies and
     * hands the broken mutex to waiter 1, which the killer cancels before
     * it runs. Waiter 2 must get the mutex, and learn it is broken. */
    ASSERT_OK(cio_event_set(&ev));
    ASSERT_EQ(5, cio_task_join(owner));
    ASSERT_EQ(0, cio_task_join(killer));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_EQ(2, cio_task_join(ts[1]));
    cio_task_free(owner);
    cio_task_free(killer);
    cio_task_free(ts[0]);
    cio_task_free(ts[1]);
    ASSERT_EQ(-ECANCELED, ls[0].rc);
    ASSERT_EQ(-EOWNERDEAD, ls[1].rc);
    ASSERT_EQ(0, ls[1].unlock_rc);
    ASSERT_TRACE(&tr, 2);
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_broken_handoff_to_cancelled_last_waiter_stays_broken)
{
    cio_mutex m = CIO_MUTEX_INIT;
    cio_event ev = CIO_EVENT_INIT;
    trace tr = {0};
    dier d = {.m = &m, .ev = &ev};
    locker l = {.m = &m, .tr = &tr, .id = 1};
    cio_task *owner, *t, *killer;
    ASSERT_OK(cio_spawn(&owner, die_holding, &d));
    ASSERT_OK(cio_spawn(&t, locker_fn, &l));
    canceller c = {.ev = &ev, .target = t};
    ASSERT_OK(cio_spawn(&killer, cancel_after_event, &c));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_event_set(&ev));
    ASSERT_EQ(5, cio_task_join(owner));
    ASSERT_EQ(0, cio_task_join(killer));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(owner);
    cio_task_free(killer);
    cio_task_free(t);
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(-EOWNERDEAD, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_lock_while_cancelled_is_refused_level_triggered)
{
    cio_mutex m = CIO_MUTEX_INIT;
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    /* The mutex is free, but each call is a cancellation point first. */
    ASSERT_EQ(-ECANCELED, cio_mutex_lock(&m));
    ASSERT_EQ(-ECANCELED, cio_mutex_lock(&m));
    ASSERT_EQ(-ECANCELED, cio_mutex_trylock(&m));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    return 0;
}

TEST(mutex_unlock_works_while_cancelled)
{
    cio_mutex m = CIO_MUTEX_INIT;
    cio_scope sc;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    /* Nothing inside saw the cancellation: the scope exits clean. */
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}

/* Locks `m` inside a scope with a deadline `timeout` from now. */
typedef struct timed_locker {
    cio_mutex *m;
    int64_t timeout;
    int lock_rc;
    int exit_rc;
    int64_t at;
} timed_locker;

static int timed_lock_fn(void *arg)
{
    timed_locker *tl = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(tl->timeout), 0);
    if (rc < 0)
        return rc;
    tl->lock_rc = cio_mutex_lock(tl->m);
    tl->at = cio_now();
    if (tl->lock_rc == 0)
        cio_mutex_unlock(tl->m);
    tl->exit_rc = cio_scope_exit(&sc);
    return 0;
}

TEST(mutex_lock_times_out_in_scope)
{
    cio_mutex m = CIO_MUTEX_INIT;
    timed_locker tl = {.m = &m, .timeout = 50 * CIO_MSEC};
    cio_task *t;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_spawn(&t, timed_lock_fn, &tl));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, tl.lock_rc);
    ASSERT_EQ(-ETIMEDOUT, tl.exit_rc);
    ASSERT_EQ(50 * CIO_MSEC, tl.at - cio_test_t0);
    /* Still ours, and no waiter is left behind. */
    ASSERT_TRUE(cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_TIME(50 * CIO_MSEC);
    return 0;
}

TEST(mutex_timed_out_waiter_leaves_queue_order_intact)
{
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker ls[2];
    cio_task *ts[2], *t;
    timed_locker tl = {.m = &m, .timeout = 10 * CIO_MSEC};
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ls[0] = (locker){.m = &m, .tr = &tr, .id = 1};
    ASSERT_OK(cio_spawn(&ts[0], locker_fn, &ls[0]));
    ASSERT_OK(cio_spawn(&t, timed_lock_fn, &tl));
    ls[1] = (locker){.m = &m, .tr = &tr, .id = 2};
    ASSERT_OK(cio_spawn(&ts[1], locker_fn, &ls[1]));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, tl.lock_rc);
    ASSERT_EQ(-ETIMEDOUT, tl.exit_rc);
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(i + 1, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2);
    return 0;
}

/* Sleeps `delay` holding `m`, then unlocks. */
static int hold_for(void *arg)
{
    cio_mutex *m = arg;
    int rc = cio_mutex_lock(m);
    if (rc < 0)
        return rc;
    rc = cio_sleep(50 * CIO_MSEC);
    int urc = cio_mutex_unlock(m);
    return rc < 0 ? rc : urc;
}

TEST(mutex_deadline_beats_unlock_at_same_instant)
{
    cio_mutex m = CIO_MUTEX_INIT;
    timed_locker tl = {.m = &m, .timeout = 50 * CIO_MSEC};
    cio_task *holder, *t;
    ASSERT_OK(cio_spawn(&holder, hold_for, &m));
    ASSERT_OK(cio_spawn(&t, timed_lock_fn, &tl));
    ASSERT_EQ(0, cio_task_join(holder));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(holder);
    cio_task_free(t);
    /* The unlock and the deadline fall on the same instant: the deadline
     * wins, and the mutex is not left held by the timed-out task. */
    ASSERT_EQ(-ECANCELED, tl.lock_rc);
    ASSERT_EQ(-ETIMEDOUT, tl.exit_rc);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    ASSERT_EQ(0, cio_mutex_trylock(&m));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TIME(50 * CIO_MSEC);
    return 0;
}

TEST(mutex_lock_granted_before_deadline_succeeds)
{
    cio_mutex m = CIO_MUTEX_INIT;
    timed_locker tl = {.m = &m, .timeout = 51 * CIO_MSEC};
    cio_task *holder, *t;
    ASSERT_OK(cio_spawn(&holder, hold_for, &m));
    ASSERT_OK(cio_spawn(&t, timed_lock_fn, &tl));
    ASSERT_EQ(0, cio_task_join(holder));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(holder);
    cio_task_free(t);
    ASSERT_EQ(0, tl.lock_rc);
    ASSERT_EQ(0, tl.exit_rc);
    ASSERT_EQ(50 * CIO_MSEC, tl.at - cio_test_t0);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}

/* Locks `m` inside a shielded scope, then leaves it and suspends once. */
typedef struct shielded {
    cio_mutex *m;
    int lock_rc;
    int unlock_rc;
    int exit_rc;
    int after_rc;
} shielded;

static int shielded_lock_fn(void *arg)
{
    shielded *s = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, CIO_NEVER, CIO_SCOPE_SHIELD);
    if (rc < 0)
        return rc;
    s->lock_rc = cio_mutex_lock(s->m);
    if (s->lock_rc == 0)
        s->unlock_rc = cio_mutex_unlock(s->m);
    s->exit_rc = cio_scope_exit(&sc);
    s->after_rc = cio_yield();
    return 0;
}

TEST(mutex_lock_in_shielded_scope_ignores_outer_cancel)
{
    cio_mutex m = CIO_MUTEX_INIT;
    shielded sh = {.m = &m};
    cio_task *t;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_spawn(&t, shielded_lock_fn, &sh));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, sh.lock_rc);
    ASSERT_EQ(0, sh.unlock_rc);
    ASSERT_EQ(0, sh.exit_rc);
    ASSERT_EQ(-ECANCELED, sh.after_rc);
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}

TEST(mutex_waiter_in_cancelled_group_is_released)
{
    cio_mutex m = CIO_MUTEX_INIT;
    trace tr = {0};
    locker ls[3];
    cio_group *g;
    ASSERT_EQ(0, cio_mutex_lock(&m));
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < 3; i++) {
        ls[i] = (locker){.m = &m, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_group_spawn(g, NULL, locker_fn, &ls[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(-ECANCELED, ls[i].rc);
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_EQ(0, cio_mutex_unlock(&m));
    ASSERT_TRUE(!cio_mutex_locked(&m));
    return 0;
}
