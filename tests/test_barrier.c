/* Barrier: rounds of `parties` tasks, arrival indices, reuse, abort and
 * reset, cancellation of a waiter (asyncio test_locks.py BarrierTests). */
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */


/* Waits at the barrier (after an optional delay), records `id` once
 * through, then makes one more suspending call. */
typedef struct party {
    cio_barrier *b;
    trace *tr;
    int id;
    int64_t delay;
    int rc;
    int after_rc;
    int64_t at;
} party;

static int party_fn(void *arg)
{
    party *p = arg;
    p->rc = 100;
    if (p->delay > 0) {
        int rc = cio_sleep(p->delay);
        if (rc < 0)
            return rc;
    }
    p->rc = cio_barrier_wait(p->b);
    p->at = cio_now();
    if (p->rc < 0)
        return p->rc;
    trace_add(p->tr, p->id);
    p->after_rc = cio_yield();
    return p->rc;
}

static int spawn_parties(cio_barrier *b, trace *tr, party *ps,
                         cio_task **ts, int n)
{
    for (int i = 0; i < n; i++) {
        ps[i] = (party){.b = b, .tr = tr, .id = i + 1};
        int rc = cio_spawn(&ts[i], party_fn, &ps[i]);
        if (rc < 0)
            return rc;
    }
    return cio_wait_all_blocked();
}

/* ---- basics -------------------------------------------------------------- */

TEST(barrier_init_validates_arguments)
{
    cio_barrier b;
    ASSERT_EQ(-EINVAL, cio_barrier_init(NULL, 2));
    ASSERT_EQ(-EINVAL, cio_barrier_init(&b, 0));
    ASSERT_EQ(0, cio_barrier_init(&b, 1));
    ASSERT_EQ(-EINVAL, cio_barrier_abort(NULL));
    ASSERT_EQ(-EINVAL, cio_barrier_reset(NULL));
    ASSERT_EQ(-EINVAL, cio_barrier_wait(NULL));
    /* A zeroed barrier has no parties and cannot be waited on. */
    cio_barrier z = CIO_BARRIER_INIT(0);
    ASSERT_EQ(-EINVAL, cio_barrier_wait(&z));
    return 0;
}

TEST(barrier_single_party_passes_at_once)
{
    cio_barrier b = CIO_BARRIER_INIT(1);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_barrier_wait(&b));
    ASSERT_TIME(0);
    return 0;
}

TEST(barrier_waiters_block_until_party_is_full)
{
    enum { N = 3 };
    cio_barrier b = CIO_BARRIER_INIT(N + 1);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, N));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_wait_all_blocked());
    for (int i = 0; i < N; i++)
        ASSERT_TRUE(!cio_task_done(ts[i]));
    ASSERT_TRACE_EMPTY(&tr);
    /* The last arrival passes straight through with the last index. */
    ASSERT_EQ(N, cio_barrier_wait(&b));
    ASSERT_TRACE_EMPTY(&tr);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_EQ(CIO_SEC, ps[i].at - cio_test_t0);
        ASSERT_EQ(0, ps[i].after_rc);
    }
    ASSERT_TRACE(&tr, 1, 2, 3);
    return 0;
}

TEST(barrier_indices_follow_arrival_order)
{
    enum { N = 4 };
    cio_barrier b = CIO_BARRIER_INIT(N);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N];
    /* Spawned 1..4, arriving 4..1 a millisecond apart. */
    for (int i = 0; i < N; i++) {
        ps[i] = (party){.b = &b, .tr = &tr, .id = i + 1,
                        .delay = (N - i) * CIO_MSEC};
        ASSERT_OK(cio_spawn(&ts[i], party_fn, &ps[i]));
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(N - 1 - i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_EQ(N * CIO_MSEC, ps[i].at - cio_test_t0);
    }
    /* The last arrival returns first (it does not suspend), then the
     * others in arrival order. */
    ASSERT_TRACE(&tr, 1, 4, 3, 2);
    return 0;
}

/* Waits `rounds` times; checks that every party of a round arrived before
 * any of them left it. */
typedef struct looper {
    cio_barrier *b;
    int parties;
    int rounds;
    int *arrived; /* per round */
    int *index_seen; /* per round: bit per index */
} looper;

static int looper_fn(void *arg)
{
    looper *l = arg;
    for (int r = 0; r < l->rounds; r++) {
        l->arrived[r]++;
        int rc = cio_barrier_wait(l->b);
        if (rc < 0)
            return rc;
        if (l->arrived[r] != l->parties)
            return -1000 - r;
        if (l->index_seen[r] & (1 << rc))
            return -2000 - r;
        l->index_seen[r] |= 1 << rc;
        if ((rc = cio_sleep(rc * CIO_MSEC)) < 0)
            return rc;
    }
    return 0;
}

TEST(barrier_is_reusable_across_rounds)
{
    enum { N = 3, ROUNDS = 5 };
    cio_barrier b = CIO_BARRIER_INIT(N);
    int arrived[ROUNDS] = {0}, seen[ROUNDS] = {0};
    looper l = {.b = &b, .parties = N, .rounds = ROUNDS,
                .arrived = arrived, .index_seen = seen};
    cio_task *ts[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(cio_spawn(&ts[i], looper_fn, &l));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(0, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    for (int r = 0; r < ROUNDS; r++) {
        ASSERT_EQ(N, arrived[r]);
        ASSERT_EQ((1 << N) - 1, seen[r]);
    }
    /* Each round waits for the slowest, who sleeps (N - 1) ms after it. */
    ASSERT_TIME(ROUNDS * (N - 1) * CIO_MSEC);
    return 0;
}

TEST(barrier_more_tasks_than_parties_form_successive_rounds)
{
    enum { N = 6, PARTIES = 3 };
    cio_barrier b = CIO_BARRIER_INIT(PARTIES);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N];
    for (int i = 0; i < N; i++) {
        ps[i] = (party){.b = &b, .tr = &tr, .id = i + 1};
        ASSERT_OK(cio_spawn(&ts[i], party_fn, &ps[i]));
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i % PARTIES, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    /* Each last arrival passes without suspending, before the tasks it
     * released run: 3 completes round one while 4 and 5 have not yet
     * arrived, and 6 completes round two before 1 and 2 get to run. */
    ASSERT_TRACE(&tr, 3, 6, 1, 2, 4, 5);
    return 0;
}

/* ---- abort and reset ---------------------------------------------------- */

TEST(barrier_abort_wakes_waiters_with_epipe)
{
    enum { N = 2 };
    cio_barrier b = CIO_BARRIER_INIT(N + 1);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, N));
    ASSERT_EQ(0, cio_barrier_abort(&b));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(-EPIPE, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE_EMPTY(&tr);
    /* Broken for later callers too, even a would-be last arrival. */
    ASSERT_EQ(-EPIPE, cio_barrier_wait(&b));
    ASSERT_EQ(-EPIPE, cio_barrier_wait(&b));
    ASSERT_EQ(0, cio_barrier_abort(&b));
    ASSERT_EQ(-EPIPE, cio_barrier_wait(&b));
    ASSERT_TIME(0);
    return 0;
}

TEST(barrier_reset_after_abort_allows_a_fresh_round)
{
    enum { N = 2 };
    cio_barrier b = CIO_BARRIER_INIT(N + 1);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N];
    /* Leave a half-filled round behind when aborting. */
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, N));
    ASSERT_EQ(0, cio_barrier_abort(&b));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(-EPIPE, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_EQ(0, cio_barrier_reset(&b));
    ASSERT_EQ(0, cio_barrier_reset(&b));
    /* The new round needs a full party again. */
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, N));
    ASSERT_TRUE(!cio_task_done(ts[0]) && !cio_task_done(ts[1]));
    ASSERT_EQ(N, cio_barrier_wait(&b));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2);
    return 0;
}

TEST(barrier_reset_with_waiters_ebusy)
{
    cio_barrier b = CIO_BARRIER_INIT(2);
    trace tr = {0};
    party p;
    cio_task *t;
    ASSERT_OK(spawn_parties(&b, &tr, &p, &t, 1));
    ASSERT_EQ(-EBUSY, cio_barrier_reset(&b));
    /* The waiter was not disturbed and the round still counts it. */
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(1, cio_barrier_wait(&b));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, cio_barrier_reset(&b));
    return 0;
}

TEST(barrier_abort_during_released_round_keeps_indices)
{
    enum { N = 2 };
    cio_barrier b = CIO_BARRIER_INIT(N + 1);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, N));
    /* Complete the round, then abort before the released tasks run: the
     * round had already passed. */
    ASSERT_EQ(N, cio_barrier_wait(&b));
    ASSERT_EQ(0, cio_barrier_abort(&b));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2);
    ASSERT_EQ(-EPIPE, cio_barrier_wait(&b));
    return 0;
}

/* ---- cancellation ------------------------------------------------------- */

TEST(barrier_cancelled_waiter_leaves_and_round_waits_for_full_party)
{
    enum { N = 2 };
    cio_barrier b = CIO_BARRIER_INIT(3);
    trace tr = {0};
    party ps[N + 1];
    cio_task *ts[N + 1];
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, N));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_EQ(-ECANCELED, ps[0].rc);
    /* One party left in the round: our arrival does not complete it. */
    ps[2] = (party){.b = &b, .tr = &tr, .id = 3};
    ASSERT_OK(cio_spawn(&ts[2], party_fn, &ps[2]));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[1]) && !cio_task_done(ts[2]));
    ASSERT_EQ(2, cio_barrier_wait(&b));
    ASSERT_EQ(0, cio_task_join(ts[1]));
    ASSERT_EQ(1, cio_task_join(ts[2]));
    for (int i = 0; i < N + 1; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 2, 3);
    return 0;
}

TEST(barrier_cancel_and_arrive_in_same_step_keeps_round_whole)
{
    cio_barrier b = CIO_BARRIER_INIT(3);
    trace tr = {0};
    party ps[3];
    cio_task *ts[3];
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, 2));
    ps[2] = (party){.b = &b, .tr = &tr, .id = 3};
    ASSERT_OK(cio_spawn(&ts[2], party_fn, &ps[2]));
    /* Cancel a waiter and arrive before it has run: it no longer counts,
     * so we are the second of three, not the last. */
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(1, cio_barrier_wait(&b));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_EQ(0, cio_task_join(ts[1]));
    ASSERT_EQ(2, cio_task_join(ts[2]));
    for (int i = 0; i < 3; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 3, 2);
    /* The next round needs exactly three parties again. */
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, 2));
    ASSERT_TRUE(!cio_task_done(ts[0]) && !cio_task_done(ts[1]));
    ASSERT_EQ(2, cio_barrier_wait(&b));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    return 0;
}

TEST(barrier_cancel_abort_and_reset_in_same_step_keeps_count)
{
    cio_barrier b = CIO_BARRIER_INIT(2);
    trace tr = {0};
    party ps[2];
    cio_task *ts[2];
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, 1));
    /* The waiter is cancelled, then the barrier aborted and reset before
     * the waiter has run. */
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(0, cio_barrier_abort(&b));
    ASSERT_EQ(0, cio_barrier_reset(&b));
    int rc = cio_task_join(ts[0]);
    ASSERT_TRUE(rc == -ECANCELED || rc == -EPIPE);
    cio_task_free(ts[0]);
    /* A fresh round of two works. */
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, 1));
    ASSERT_TRUE(!cio_task_done(ts[0]));
    ASSERT_EQ(1, cio_barrier_wait(&b));
    ASSERT_EQ(0, cio_task_join(ts[0]));
    cio_task_free(ts[0]);
    return 0;
}

TEST(barrier_wait_while_cancelled_does_not_count)
{
    cio_barrier b = CIO_BARRIER_INIT(2);
    trace tr = {0};
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_barrier_wait(&b));
    ASSERT_EQ(-ECANCELED, cio_barrier_wait(&b));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    /* Nobody counted: one more party still waits for a partner. */
    party p;
    cio_task *t;
    ASSERT_OK(spawn_parties(&b, &tr, &p, &t, 1));
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(1, cio_barrier_wait(&b));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    return 0;
}

TEST(barrier_released_then_cancelled_keeps_its_index)
{
    enum { N = 2 };
    cio_barrier b = CIO_BARRIER_INIT(N + 1);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N];
    ASSERT_OK(spawn_parties(&b, &tr, ps, ts, N));
    /* The round completed before the cancel: the wait reports its
     * index, and the cancellation surfaces at the next call. */
    ASSERT_EQ(N, cio_barrier_wait(&b));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(0, cio_task_join(ts[0]));
    ASSERT_EQ(1, cio_task_join(ts[1]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_EQ(0, ps[0].rc);
    ASSERT_EQ(-ECANCELED, ps[0].after_rc);
    ASSERT_EQ(0, ps[1].after_rc);
    ASSERT_TRACE(&tr, 1, 2);
    return 0;
}

typedef struct timed_party {
    cio_barrier *b;
    int64_t timeout;
    int rc;
    int exit_rc;
} timed_party;

static int timed_party_fn(void *arg)
{
    timed_party *tp = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(tp->timeout), 0);
    if (rc < 0)
        return rc;
    tp->rc = cio_barrier_wait(tp->b);
    tp->exit_rc = cio_scope_exit(&sc);
    return 0;
}

TEST(barrier_wait_times_out_in_scope_and_leaves_round)
{
    cio_barrier b = CIO_BARRIER_INIT(2);
    trace tr = {0};
    timed_party tp = {.b = &b, .timeout = 30 * CIO_MSEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, timed_party_fn, &tp));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, tp.rc);
    ASSERT_EQ(-ETIMEDOUT, tp.exit_rc);
    ASSERT_TIME(30 * CIO_MSEC);
    /* The timed-out task no longer counts toward the round. */
    party p;
    cio_task *t2;
    ASSERT_OK(spawn_parties(&b, &tr, &p, &t2, 1));
    ASSERT_TRUE(!cio_task_done(t2));
    ASSERT_EQ(1, cio_barrier_wait(&b));
    ASSERT_EQ(0, cio_task_join(t2));
    cio_task_free(t2);
    ASSERT_EQ(0, cio_barrier_reset(&b));
    return 0;
}

static int spawn_party(cio_barrier *b, trace *tr, party *ps, cio_task **ts,
                       int id)
{
    ps[id] = (party){.b = b, .tr = tr, .id = id};
    int rc = cio_spawn(&ts[id], party_fn, &ps[id]);
    return rc < 0 ? rc : cio_wait_all_blocked();
}

TEST(barrier_cancellations_keep_round_count_exact)
{
    enum { N = 10 };
    cio_barrier b = CIO_BARRIER_INIT(3);
    trace tr = {0};
    party ps[N];
    cio_task *ts[N] = {0};
    /* Index by id (1..9); the count of the current round in brackets. */
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 1));
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 2)); /* [1 2] */
    ASSERT_OK(cio_task_cancel(ts[1]));           /* [2] */
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 3)); /* [2 3] */
    ASSERT_OK(cio_task_cancel(ts[2]));           /* [3] */
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 4)); /* [3 4] */
    ASSERT_TRACE_EMPTY(&tr);
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 5)); /* full: 3 4 5 pass */
    ASSERT_TRACE(&tr, 5, 3, 4);
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 6));
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 7)); /* [6 7] */
    ASSERT_OK(cio_task_cancel(ts[7]));
    ASSERT_OK(cio_task_cancel(ts[6]));           /* [] */
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 8));
    ASSERT_OK(spawn_party(&b, &tr, ps, ts, 9)); /* [8 9] */
    ASSERT_TRACE(&tr, 5, 3, 4);
    ASSERT_EQ(2, cio_barrier_wait(&b));
    static const int expect[N] = {0, -ECANCELED, -ECANCELED, 0, 1, 2,
                                  -ECANCELED, -ECANCELED, 0, 1};
    for (int id = 1; id < N; id++) {
        ASSERT_EQ(expect[id], cio_task_join(ts[id]));
        cio_task_free(ts[id]);
    }
    ASSERT_TRACE(&tr, 5, 3, 4, 8, 9);
    ASSERT_EQ(0, cio_barrier_reset(&b));
    return 0;
}
