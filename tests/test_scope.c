/* Cancel scopes: level-triggered cancellation, deadlines, shields and the
 * nesting rules (DESIGN.md semantic decisions 1 to 4). */
#include <pthread.h>

#include "test.h"

/* Acts on a scope or a task from another task after `delay`. */
typedef struct later {
    int64_t delay;
    cio_scope *sc;
    cio_task *task;
    int64_t deadline;
} later;

static int cancel_scope_later(void *arg)
{
    later *l = arg;
    int rc = cio_sleep(l->delay);
    return rc < 0 ? rc : cio_scope_cancel(l->sc);
}

static int set_deadline_later(void *arg)
{
    later *l = arg;
    int rc = cio_sleep(l->delay);
    return rc < 0 ? rc : cio_scope_set_deadline(l->sc, l->deadline);
}

static int cancel_task_later(void *arg)
{
    later *l = arg;
    int rc = cio_sleep(l->delay);
    return rc < 0 ? rc : cio_task_cancel(l->task);
}

/* Counts how often it gets to run until it is cancelled. */
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

/* ---- Rule 1: level-triggered cancellation -------------------------------- */

typedef struct level_probe {
    int rc[7];
    int64_t first_at, last_at;
} level_probe;

static int level_worker(void *arg)
{
    level_probe *p = arg;
    p->rc[0] = cio_sleep(10 * CIO_SEC);
    p->first_at = cio_now();
    p->rc[1] = cio_sleep(CIO_SEC);
    p->rc[2] = cio_yield();
    p->rc[3] = cio_checkpoint();
    p->rc[4] = cio_sleep_until(cio_now() + CIO_SEC);
    p->rc[5] = cio_cancel_pending();
    p->rc[6] = cio_wait_all_blocked();
    p->last_at = cio_now();
    return 3;
}

TEST(scope_task_cancel_is_level_triggered)
{
    level_probe p = {{0}, 0, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, level_worker, &p));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    /* The task returned 3 after seeing the cancellation: its own choice. */
    ASSERT_EQ(3, cio_task_join(t));
    for (int i = 0; i < 7; i++)
        ASSERT_EQ(-ECANCELED, p.rc[i]);
    ASSERT_EQ(CIO_SEC, p.first_at - cio_test_t0);
    ASSERT_EQ(CIO_SEC, p.last_at - cio_test_t0);
    ASSERT_TIME(CIO_SEC);
    cio_task_free(t);
    return 0;
}

TEST(scope_cancelled_scope_stays_cancelled_until_exit)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_yield());
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_EQ(-ECANCELED, cio_cancel_pending());
    ASSERT_TIME(0);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    /* Leaving the cancelled scope ends the cancellation. */
    ASSERT_OK(cio_cancel_pending());
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    return 0;
}

TEST(scope_expired_deadline_stays_expired_until_exit)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(5 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_sleep(5 * CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_yield());
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_TIME(2 * CIO_SEC);
    return 0;
}

TEST(scope_task_cancel_passes_through_inner_scope)
{
    cio_scope sc;
    later l = {.delay = CIO_SEC, .task = cio_current()};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, cancel_task_later, &l));
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(5 * CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    /* Cancelled from outside: the scope passes it on; it did not time out
     * and was not cancelled itself. */
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    /* The task itself stays cancelled: a shield lets it still join. */
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    cio_scope sh;
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_EQ(0, cio_task_join(h));
    ASSERT_OK(cio_scope_exit(&sh));
    cio_task_free(h);
    return 0;
}

/* ---- Rule 2: finishing without suspending keeps the result --------------- */

static int answer(void *arg)
{
    (void)arg;
    return 42;
}

static int answer_despite_cancel(void *arg)
{
    int *seen = arg;
    *seen = cio_cancel_pending();
    return 42;
}

static int cancel_self_then_answer(void *arg)
{
    int *seen = arg;
    cio_task_cancel(cio_current());
    *seen = cio_cancel_pending();
    return 43;
}

TEST(scope_cancelled_task_without_suspending_keeps_result)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, answer, NULL));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(42, cio_task_join(t));
    cio_task_free(t);

    int seen = 0;
    ASSERT_OK(cio_spawn(&t, answer_despite_cancel, &seen));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(42, cio_task_join(t));
    ASSERT_EQ(-ECANCELED, seen);
    cio_task_free(t);

    seen = 0;
    ASSERT_OK(cio_spawn(&t, cancel_self_then_answer, &seen));
    ASSERT_EQ(43, cio_task_join(t));
    ASSERT_EQ(-ECANCELED, seen);
    cio_task_free(t);
    ASSERT_TIME(0);
    return 0;
}

TEST(scope_cancel_of_finished_task_has_no_effect)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, answer, NULL));
    ASSERT_OK(cio_yield());
    ASSERT_TRUE(cio_task_done(t));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(42, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EINVAL, cio_task_cancel(NULL));
    return 0;
}

/* ---- Rule 3: checkpoints ------------------------------------------------- */

TEST(scope_call_that_could_complete_checks_cancel_without_yielding)
{
    long runs = 0;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, counter, &runs));
    cio_task *done;
    ASSERT_OK(cio_spawn(&done, answer, NULL));

    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_yield());
    ASSERT_EQ(-ECANCELED, cio_sleep(0));
    ASSERT_EQ(-ECANCELED, cio_sleep_until(0));
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_EQ(-ECANCELED, cio_wait_all_blocked());
    ASSERT_EQ(-ECANCELED, cio_task_join(done));
    /* None of these let another task run. */
    ASSERT_EQ(0, runs);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));

    /* The refused join left the handle joinable. */
    ASSERT_EQ(42, cio_task_join(done));
    cio_task_free(done);
    ASSERT_OK(cio_task_cancel(c));
    ASSERT_EQ(-ECANCELED, cio_task_join(c));
    cio_task_free(c);
    return 0;
}

TEST(scope_expired_deadline_is_seen_by_calls_that_could_complete)
{
    long runs = 0;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, counter, &runs));
    cio_scope sc;
    /* A deadline of now has already passed. */
    ASSERT_OK(cio_scope_enter(&sc, cio_now(), 0));
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_EQ(-ECANCELED, cio_sleep_until(0));
    ASSERT_EQ(-ECANCELED, cio_sleep(0));
    ASSERT_EQ(-ECANCELED, cio_cancel_pending());
    ASSERT_EQ(0, runs);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TIME(0);
    ASSERT_OK(cio_task_cancel(c));
    ASSERT_EQ(-ECANCELED, cio_task_join(c));
    cio_task_free(c);
    return 0;
}

TEST(scope_sleep_until_past_returns_without_yielding)
{
    long runs = 0;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, counter, &runs));
    ASSERT_OK(cio_sleep_until(0));
    ASSERT_OK(cio_checkpoint());
    ASSERT_EQ(0, runs);
    /* cio_sleep(0) does yield. */
    ASSERT_OK(cio_sleep(0));
    ASSERT_EQ(1, runs);
    ASSERT_OK(cio_yield());
    ASSERT_EQ(2, runs);
    ASSERT_TIME(0);
    ASSERT_OK(cio_task_cancel(c));
    ASSERT_EQ(-ECANCELED, cio_task_join(c));
    cio_task_free(c);
    return 0;
}

TEST(scope_checkpoint_budget_lets_other_tasks_run)
{
    long runs = 0;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, counter, &runs));
    ASSERT_OK(cio_checkpoint());
    ASSERT_EQ(0, runs);
    /* Many checkpoints in a row: the task yields now and then. */
    long first = -1;
    for (long i = 1; i < 100000 && first < 0; i++) {
        ASSERT_OK(cio_checkpoint());
        if (runs > 0)
            first = i;
    }
    ASSERT_TRUE(first > 1);
    long before = runs;
    for (int i = 0; i < 10000; i++)
        ASSERT_OK(cio_checkpoint());
    long ran = runs - before;
    ASSERT_TRUE(ran >= 2);
    ASSERT_TRUE(ran < 10000 / 2);
    ASSERT_TIME(0);
    ASSERT_OK(cio_task_cancel(c));
    ASSERT_EQ(-ECANCELED, cio_task_join(c));
    cio_task_free(c);
    return 0;
}

TEST(scope_sleep_until_past_in_a_loop_lets_other_tasks_run)
{
    long runs = 0;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, counter, &runs));
    for (int i = 0; i < 10000; i++)
        ASSERT_OK(cio_sleep_until(0));
    ASSERT_TRUE(runs >= 2);
    ASSERT_OK(cio_task_cancel(c));
    ASSERT_EQ(-ECANCELED, cio_task_join(c));
    cio_task_free(c);
    return 0;
}

/* ---- Rule 4: deadlines at the same instant ------------------------------- */

TEST(scope_deadline_wins_over_sleep_ending_at_same_instant)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    return 0;
}

static int finish_after_1s(void *arg)
{
    (void)arg;
    int rc = cio_sleep(CIO_SEC);
    return rc < 0 ? rc : 9;
}

TEST(scope_deadline_wins_over_join_completing_at_same_instant)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, finish_after_1s, NULL));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    /* Plain join does not cancel: the task finished and can be joined. */
    ASSERT_EQ(9, cio_task_join(t));
    cio_task_free(t);
    return 0;
}

typedef struct setter {
    cio_future *f;
    int64_t delay;
} setter;

static int set_future_later(void *arg)
{
    setter *s = arg;
    int rc = cio_sleep(s->delay);
    return rc < 0 ? rc : cio_future_set_result(s->f, s);
}

TEST(scope_deadline_wins_over_future_set_at_same_instant)
{
    setter s = {NULL, CIO_SEC};
    ASSERT_OK(cio_future_new(&s.f));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, set_future_later, &s));
    void *v = NULL;
    ASSERT_EQ(-ECANCELED, cio_future_wait(s.f, CIO_NEVER, &v));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(t));
    ASSERT_TRUE(cio_future_done(s.f));
    cio_task_free(t);
    ASSERT_OK(cio_future_free(s.f));
    return 0;
}

TEST(scope_nested_same_instant_outermost_reports_timeout)
{
    int64_t d = cio_deadline_after(CIO_SEC);
    cio_scope outer, middle, inner;
    ASSERT_OK(cio_scope_enter(&outer, d, 0));
    ASSERT_OK(cio_scope_enter(&middle, d, 0));
    ASSERT_OK(cio_scope_enter(&inner, d, 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&middle));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&outer));
    return 0;
}

TEST(scope_nested_same_instant_below_unexpired_outer)
{
    int64_t d = cio_deadline_after(CIO_SEC);
    cio_scope outer, middle, inner;
    ASSERT_OK(cio_scope_enter(&outer, cio_deadline_after(5 * CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&middle, d, 0));
    ASSERT_OK(cio_scope_enter(&inner, d, 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&middle));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(0, cio_scope_exit(&outer));
    ASSERT_TIME(2 * CIO_SEC);
    return 0;
}

TEST(scope_inner_expiring_first_reports_timeout_outer_unaffected)
{
    cio_scope outer, inner;
    ASSERT_OK(cio_scope_enter(&outer, cio_deadline_after(5 * CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&inner, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&inner));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(0, cio_scope_exit(&outer));
    return 0;
}

TEST(scope_inner_then_outer_expire_each_reports_timeout)
{
    cio_scope outer, inner;
    ASSERT_OK(cio_scope_enter(&outer, cio_deadline_after(5 * CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&inner, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&inner));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(5 * CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&outer));
    return 0;
}

TEST(scope_outer_expiring_first_inner_passes_cancel)
{
    cio_scope outer, inner;
    ASSERT_OK(cio_scope_enter(&outer, cio_deadline_after(CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&inner, cio_deadline_after(10 * CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(20 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&outer));
    return 0;
}

TEST(scope_both_expired_outer_reports_timeout)
{
    cio_scope outer, inner, sh;
    ASSERT_OK(cio_scope_enter(&outer, cio_deadline_after(2 * CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&inner, cio_deadline_after(CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(3 * CIO_SEC));
    ASSERT_OK(cio_scope_exit(&sh));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    /* Both have expired: as in Trio and asyncio, the enclosing one takes
     * precedence and the inner one passes the cancellation through. */
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&outer));
    return 0;
}

TEST(scope_inner_timeout_seen_then_outer_expires_outer_reports)
{
    cio_scope outer, inner, sh;
    ASSERT_OK(cio_scope_enter(&outer, cio_deadline_after(2 * CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&inner, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    /* Cleanup runs past the outer deadline without seeing it again. */
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_OK(cio_scope_exit(&sh));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    /* The cancellation the code saw travels out: the timeout is kept. */
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&outer));
    return 0;
}

TEST(scope_expired_but_unseen_exits_clean)
{
    cio_scope sc, sh;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_OK(cio_scope_exit(&sh));
    /* The deadline passed, but no call inside returned -ECANCELED: the
     * work completed, as asyncio.timeout sees it. */
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_OK(cio_sleep(CIO_SEC));
    return 0;
}

TEST(scope_unexpired_scope_exits_with_zero)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(10 * CIO_SEC), 0));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(0, cio_scope_exit(&sc));
    /* A deadline that has not passed yet does not affect later calls. */
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_OK(cio_sleep(5 * CIO_SEC));
    ASSERT_TIME(7 * CIO_SEC);
    return 0;
}

/* ---- Shields ------------------------------------------------------------- */

typedef struct shield_probe {
    int sleep_rc, exit_rc, after_rc;
    int64_t sleep_end;
} shield_probe;

static int shielded_sleeper(void *arg)
{
    shield_probe *p = arg;
    cio_scope sh;
    int rc = cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    if (rc < 0)
        return rc;
    p->sleep_rc = cio_sleep(2 * CIO_SEC);
    p->sleep_end = cio_now();
    p->exit_rc = cio_scope_exit(&sh);
    p->after_rc = cio_sleep(CIO_SEC);
    return p->after_rc;
}

TEST(scope_shield_keeps_outside_cancel_out)
{
    shield_probe p = {1, 1, 1, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, shielded_sleeper, &p));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(0, p.sleep_rc);
    ASSERT_EQ(2 * CIO_SEC, p.sleep_end - cio_test_t0);
    ASSERT_EQ(0, p.exit_rc);
    /* Outside the shield the cancellation is seen at once. */
    ASSERT_EQ(-ECANCELED, p.after_rc);
    ASSERT_TIME(2 * CIO_SEC);
    cio_task_free(t);
    return 0;
}

static int cleanup_in_shield(void *arg)
{
    shield_probe *p = arg;
    int rc = cio_sleep(10 * CIO_SEC);
    if (rc != -ECANCELED)
        return -EPROTO;
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    p->sleep_rc = cio_sleep(CIO_SEC);
    p->sleep_end = cio_now();
    p->exit_rc = cio_scope_exit(&sh);
    return rc;
}

TEST(scope_shield_lets_cleanup_sleep_after_cancel)
{
    shield_probe p = {1, 1, 1, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, cleanup_in_shield, &p));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(0, p.sleep_rc);
    ASSERT_EQ(0, p.exit_rc);
    ASSERT_EQ(2 * CIO_SEC, p.sleep_end - cio_test_t0);
    ASSERT_TIME(2 * CIO_SEC);
    cio_task_free(t);
    return 0;
}

TEST(scope_shield_with_deadline_still_expires)
{
    cio_task_cancel(cio_current());
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    cio_scope sh;
    ASSERT_OK(cio_scope_enter(&sh, cio_deadline_after(CIO_SEC),
                              CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(CIO_SEC / 2));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sh));
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    return 0;
}

TEST(scope_shield_blocks_enclosing_deadline)
{
    cio_scope outer, sh;
    ASSERT_OK(cio_scope_enter(&outer, cio_deadline_after(CIO_SEC), 0));
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_EQ(0, cio_scope_exit(&sh));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&outer));
    return 0;
}

TEST(scope_shield_blocks_cancel_of_enclosing_scope)
{
    cio_scope outer, sh;
    ASSERT_OK(cio_scope_enter(&outer, CIO_NEVER, 0));
    later l = {.delay = CIO_SEC, .sc = &outer};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, cancel_scope_later, &l));
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_OK(cio_task_join(h));
    ASSERT_EQ(0, cio_scope_exit(&sh));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&outer));
    ASSERT_TIME(2 * CIO_SEC);
    cio_task_free(h);
    return 0;
}

TEST(scope_shield_cancelled_itself_is_cancelled)
{
    cio_scope sh;
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    later l = {.delay = CIO_SEC, .sc = &sh};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, cancel_scope_later, &l));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sh));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(scope_inside_shield_sees_shield_deadline)
{
    cio_scope sh, inner;
    ASSERT_OK(cio_scope_enter(&sh, cio_deadline_after(CIO_SEC),
                              CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_scope_enter(&inner, CIO_NEVER, 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sh));
    return 0;
}

/* ---- cio_scope_cancel ---------------------------------------------------- */

TEST(scope_cancel_from_another_task_wakes_the_waiter)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    later l = {.delay = CIO_SEC, .sc = &sc};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, cancel_scope_later, &l));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_TIME(2 * CIO_SEC);
    cio_task_free(h);
    return 0;
}

TEST(scope_cancel_twice_and_null)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_EQ(0, cio_scope_cancel(&sc));
    ASSERT_EQ(0, cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(-EINVAL, cio_scope_cancel(NULL));
    return 0;
}

TEST(scope_cancel_outer_reaches_inner)
{
    cio_scope outer, inner;
    ASSERT_OK(cio_scope_enter(&outer, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_enter(&inner, cio_deadline_after(5 * CIO_SEC), 0));
    ASSERT_OK(cio_scope_cancel(&outer));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&outer));
    ASSERT_TIME(0);
    return 0;
}

TEST(scope_cancel_inner_leaves_outer_alone)
{
    cio_scope outer, inner;
    ASSERT_OK(cio_scope_enter(&outer, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_enter(&inner, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&inner));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(0, cio_scope_exit(&outer));
    ASSERT_TIME(CIO_SEC);
    return 0;
}

TEST(scope_cancel_before_deadline_reports_ecanceled)
{
    cio_scope sc, sh;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0));
    later l = {.delay = CIO_SEC, .sc = &sc};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, cancel_scope_later, &l));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    /* Let the deadline pass too before leaving. */
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_OK(cio_scope_exit(&sh));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(scope_deadline_before_cancel_reports_etimedout)
{
    cio_scope sc, sh;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    later l = {.delay = 2 * CIO_SEC, .sc = &sc};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, cancel_scope_later, &l));
    ASSERT_OK(cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD));
    ASSERT_OK(cio_sleep(3 * CIO_SEC));
    ASSERT_OK(cio_task_join(h));
    ASSERT_OK(cio_scope_exit(&sh));
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    cio_task_free(h);
    return 0;
}

/* ---- cio_scope_set_deadline ---------------------------------------------- */

TEST(scope_set_deadline_earlier_while_waiting)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(10 * CIO_SEC), 0));
    later l = {.delay = CIO_SEC, .sc = &sc,
               .deadline = cio_test_t0 + 3 * CIO_SEC};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, set_deadline_later, &l));
    ASSERT_EQ(-ECANCELED, cio_sleep(100 * CIO_SEC));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(scope_set_deadline_to_the_past_wakes_at_once)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(10 * CIO_SEC), 0));
    later l = {.delay = CIO_SEC, .sc = &sc, .deadline = cio_test_t0};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, set_deadline_later, &l));
    ASSERT_EQ(-ECANCELED, cio_sleep(100 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(scope_set_deadline_later_while_waiting)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0));
    later l = {.delay = CIO_SEC, .sc = &sc,
               .deadline = cio_test_t0 + 5 * CIO_SEC};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, set_deadline_later, &l));
    ASSERT_EQ(-ECANCELED, cio_sleep(100 * CIO_SEC));
    ASSERT_TIME(5 * CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(scope_set_deadline_never_removes_it)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0));
    later l = {.delay = CIO_SEC, .sc = &sc, .deadline = CIO_NEVER};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, set_deadline_later, &l));
    ASSERT_OK(cio_sleep(3 * CIO_SEC));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(scope_set_deadline_by_the_owner)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_set_deadline(&sc, cio_deadline_after(CIO_SEC)));
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    return 0;
}

TEST(scope_set_deadline_of_outer_scope_reaches_inner_wait)
{
    cio_scope outer, inner;
    ASSERT_OK(cio_scope_enter(&outer, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_enter(&inner, CIO_NEVER, 0));
    later l = {.delay = CIO_SEC, .sc = &outer,
               .deadline = cio_test_t0 + 2 * CIO_SEC};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, set_deadline_later, &l));
    ASSERT_EQ(-ECANCELED, cio_sleep(100 * CIO_SEC));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&inner));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&outer));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(scope_set_deadline_rejects_negative_and_null)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-EINVAL, cio_scope_set_deadline(&sc, -1));
    ASSERT_EQ(-EINVAL, cio_scope_set_deadline(&sc, cio_deadline_after(-1)));
    ASSERT_EQ(-EINVAL, cio_scope_set_deadline(NULL, CIO_NEVER));
    /* The deadline is unchanged. */
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    return 0;
}

/* ---- Misuse -------------------------------------------------------------- */

TEST(scope_exit_of_non_innermost_scope_is_einval)
{
    cio_scope a, b;
    ASSERT_OK(cio_scope_enter(&a, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_enter(&b, CIO_NEVER, 0));
    ASSERT_EQ(-EINVAL, cio_scope_exit(&a));
    /* Nothing was closed: b is still open and in effect. */
    ASSERT_OK(cio_scope_cancel(&b));
    ASSERT_EQ(-ECANCELED, cio_checkpoint());
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&b));
    ASSERT_EQ(0, cio_scope_exit(&a));
    /* Exiting again, or a scope never entered, is refused too. */
    ASSERT_EQ(-EINVAL, cio_scope_exit(&a));
    ASSERT_EQ(-EINVAL, cio_scope_exit(NULL));
    ASSERT_OK(cio_sleep(CIO_SEC));
    return 0;
}

static int exit_foreign_scope(void *arg)
{
    return cio_scope_exit(arg);
}

TEST(scope_exit_from_another_task_is_einval)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, exit_foreign_scope, &sc));
    ASSERT_EQ(-EINVAL, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, cio_scope_exit(&sc));
    return 0;
}

TEST(scope_negative_deadline_is_einval)
{
    cio_scope sc;
    ASSERT_EQ(-EINVAL, cio_deadline_after(-1));
    ASSERT_EQ(-EINVAL, cio_deadline_after(-CIO_SEC));
    ASSERT_EQ(-EINVAL, cio_scope_enter(&sc, -1, 0));
    ASSERT_EQ(-EINVAL, cio_scope_enter(&sc, cio_deadline_after(-1), 0));
    ASSERT_EQ(-EINVAL, cio_scope_enter(NULL, CIO_NEVER, 0));
    /* No scope was opened by the refused calls. */
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    return 0;
}

TEST(scope_deadline_after_is_now_plus_timeout_saturating)
{
    ASSERT_EQ(cio_now(), cio_deadline_after(0));
    ASSERT_EQ(cio_now() + CIO_SEC, cio_deadline_after(CIO_SEC));
    ASSERT_EQ(CIO_NEVER, cio_deadline_after(CIO_NEVER));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(CIO_NEVER, cio_deadline_after(CIO_NEVER - 1));
    return 0;
}

TEST(scope_negative_sleep_is_einval)
{
    ASSERT_EQ(-EINVAL, cio_sleep(-1));
    ASSERT_EQ(-EINVAL, cio_sleep(-CIO_SEC));
    ASSERT_EQ(-EINVAL, cio_sleep_until(-1));
    ASSERT_TIME(0);
    return 0;
}

TEST(scope_sleep_until_absolute_time)
{
    ASSERT_OK(cio_sleep_until(cio_test_t0 + 3 * CIO_SEC));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_OK(cio_sleep_until(cio_test_t0 + CIO_SEC));
    ASSERT_TIME(3 * CIO_SEC);
    return 0;
}

/* ---- Outside a task ------------------------------------------------------ */

typedef struct outside {
    int rc[9];
    cio_task *current;
    int64_t now;
} outside;

static void *outside_calls(void *arg)
{
    outside *o = arg;
    cio_scope sc;
    o->rc[0] = cio_scope_enter(&sc, CIO_NEVER, 0);
    o->rc[1] = cio_scope_exit(&sc);
    o->rc[2] = cio_sleep(CIO_SEC);
    o->rc[3] = cio_sleep_until(0);
    o->rc[4] = cio_yield();
    o->rc[5] = cio_checkpoint();
    o->rc[6] = cio_cancel_pending();
    o->rc[7] = cio_wait_all_blocked();
    o->rc[8] = cio_spawn(NULL, answer, NULL);
    o->current = cio_current();
    o->now = cio_now();
    return NULL;
}

TEST(scope_calls_outside_a_task_are_enotask)
{
    outside o;
    memset(&o, 0, sizeof o);
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, outside_calls, &o));
    ASSERT_EQ(0, pthread_join(th, NULL));
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(CIO_ENOTASK, o.rc[i]);
    ASSERT_TRUE(o.current == NULL);
    /* Outside a loop the clock is CLOCK_MONOTONIC. */
    ASSERT_TRUE(o.now > 0);
    return 0;
}

TEST(scope_sleep_forever_ends_at_scope_deadline)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_NEVER));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep_until(CIO_NEVER));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    return 0;
}

TEST(scope_expired_deadline_stays_expired_when_moved_later)
{
    /* Rule 1: the code inside saw the cancellation and stays in the
     * cancelled scope; moving the deadline does not take it back (Trio
     * keeps cancel_called, asyncio refuses to reschedule an expired
     * timeout). */
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_sleep(5 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    cio_scope_set_deadline(&sc, cio_deadline_after(10 * CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    return 0;
}
