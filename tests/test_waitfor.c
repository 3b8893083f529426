/* cio_task_join and cio_wait_for (asyncio.wait_for), join errors, rule 9,
 * unretrieved errors and detached tasks. */
#include <pthread.h>

#include "test.h"

typedef struct child {
    int64_t delay;
    int result;
    int64_t cleanup; /* shielded sleep after being cancelled */
    int sleep_rc;
    bool finished;
    int64_t end;
} child;

static int run_child(void *arg)
{
    child *c = arg;
    int rc = cio_sleep(c->delay);
    c->sleep_rc = rc;
    if (rc < 0 && c->cleanup > 0) {
        cio_scope sh;
        cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
        cio_sleep(c->cleanup);
        cio_scope_exit(&sh);
    }
    c->finished = true;
    c->end = cio_now() - cio_test_t0;
    return rc < 0 ? rc : c->result;
}

/* ---- cio_wait_for -------------------------------------------------------- */

TEST(wait_for_returns_result_when_child_finishes_in_time)
{
    child c = {.delay = CIO_SEC, .result = 7};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    ASSERT_EQ(7, cio_wait_for(t, 5 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(cio_task_done(t));
    ASSERT_EQ(-EALREADY, cio_task_join(t));
    cio_task_free(t);
    /* The timeout scope is gone: later waits are not limited by it. */
    ASSERT_OK(cio_sleep(10 * CIO_SEC));
    return 0;
}

TEST(wait_for_returns_child_error_in_time)
{
    child c = {.delay = CIO_SEC, .result = -EIO};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    ASSERT_EQ(-EIO, cio_wait_for(t, 5 * CIO_SEC));
    cio_task_free(t);
    /* The error was retrieved: nothing to report. */
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(wait_for_timeout_cancels_child_and_waits_for_it)
{
    child c = {.delay = 10 * CIO_SEC, .result = 1, .cleanup = CIO_SEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    ASSERT_EQ(-ETIMEDOUT, cio_wait_for(t, 2 * CIO_SEC));
    /* The child's cleanup ran to its end before the call returned. */
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_TRUE(c.finished);
    ASSERT_TRUE(cio_task_done(t));
    ASSERT_EQ(-ECANCELED, c.sleep_rc);
    int r = 0;
    ASSERT_OK(cio_task_result(t, &r));
    ASSERT_EQ(-ECANCELED, r);
    /* The handle counts as joined. */
    ASSERT_EQ(-EALREADY, cio_task_join(t));
    ASSERT_EQ(-EALREADY, cio_wait_for(t, CIO_SEC));
    cio_task_free(t);
    /* The caller itself is not left cancelled. */
    ASSERT_OK(cio_sleep(CIO_SEC));
    return 0;
}

static int ignore_cancel(void *arg)
{
    child *c = arg;
    /* Swallows the cancellation and still returns a result. */
    c->sleep_rc = cio_sleep(c->delay);
    c->finished = true;
    return c->result;
}

TEST(wait_for_timeout_with_child_returning_a_value)
{
    child c = {.delay = 10 * CIO_SEC, .result = 5};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, ignore_cancel, &c));
    ASSERT_EQ(-ETIMEDOUT, cio_wait_for(t, CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    int r = 0;
    ASSERT_OK(cio_task_result(t, &r));
    ASSERT_EQ(5, r);
    cio_task_free(t);
    return 0;
}

TEST(wait_for_zero_timeout_on_running_child_times_out_at_once)
{
    child c = {.delay = 10 * CIO_SEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    ASSERT_EQ(-ETIMEDOUT, cio_wait_for(t, 0));
    ASSERT_TIME(0);
    ASSERT_TRUE(cio_task_done(t));
    cio_task_free(t);
    return 0;
}

static int answer(void *arg)
{
    (void)arg;
    return 42;
}

TEST(wait_for_zero_timeout_on_finished_child_returns_result)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, answer, NULL));
    ASSERT_OK(cio_yield());
    ASSERT_TRUE(cio_task_done(t));
    /* Done within the timeout: asyncio.wait_for(done_future, 0) returns
     * the result. */
    ASSERT_EQ(42, cio_wait_for(t, 0));
    cio_task_free(t);
    return 0;
}

TEST(wait_for_deadline_wins_over_child_finishing_at_same_instant)
{
    child c = {.delay = CIO_SEC, .result = 7};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    ASSERT_EQ(-ETIMEDOUT, cio_wait_for(t, CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    /* The child's own wait had completed: it kept its result. */
    int r = 0;
    ASSERT_OK(cio_task_result(t, &r));
    ASSERT_EQ(7, r);
    cio_task_free(t);
    return 0;
}

TEST(wait_for_negative_timeout_is_einval)
{
    child c = {.delay = CIO_SEC, .result = 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    ASSERT_EQ(-EINVAL, cio_wait_for(t, -1));
    ASSERT_EQ(-EINVAL, cio_wait_for(t, -CIO_SEC));
    ASSERT_TIME(0);
    /* Nothing happened to the child. */
    ASSERT_EQ(1, cio_task_join(t));
    ASSERT_EQ(0, c.sleep_rc);
    cio_task_free(t);
    return 0;
}

typedef struct waiter {
    cio_task *target;
    int64_t timeout;
    int rc;
    int64_t at;
    bool target_done;
} waiter;

static int wait_for_target(void *arg)
{
    waiter *w = arg;
    w->rc = cio_wait_for(w->target, w->timeout);
    w->at = cio_now() - cio_test_t0;
    w->target_done = cio_task_done(w->target);
    return w->rc;
}

TEST(wait_for_caller_cancelled_cancels_child)
{
    child c = {.delay = 10 * CIO_SEC, .cleanup = CIO_SEC};
    waiter w = {.timeout = 5 * CIO_SEC};
    ASSERT_OK(cio_spawn(&w.target, run_child, &c));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_for_target, &w));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(-ECANCELED, w.rc);
    ASSERT_EQ(2 * CIO_SEC, w.at);
    ASSERT_TRUE(w.target_done);
    ASSERT_EQ(-ECANCELED, c.sleep_rc);
    ASSERT_EQ(-EALREADY, cio_task_join(w.target));
    cio_task_free(t);
    cio_task_free(w.target);
    return 0;
}

TEST(wait_for_inside_expiring_scope_cancels_child)
{
    child c = {.delay = 10 * CIO_SEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    /* The enclosing scope expired first, not the call's own timeout. */
    ASSERT_EQ(-ECANCELED, cio_wait_for(t, 5 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(cio_task_done(t));
    ASSERT_EQ(-ECANCELED, c.sleep_rc);
    cio_task_free(t);
    return 0;
}

/* ---- Join ---------------------------------------------------------------- */

TEST(join_does_not_cancel_child)
{
    child c = {.delay = 5 * CIO_SEC, .result = 5};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(!cio_task_done(t));
    /* Still joinable, still running. */
    ASSERT_EQ(5, cio_task_join(t));
    ASSERT_TIME(5 * CIO_SEC);
    ASSERT_EQ(0, c.sleep_rc);
    cio_task_free(t);
    return 0;
}

static int join_target(void *arg)
{
    waiter *w = arg;
    w->rc = cio_task_join(w->target);
    w->at = cio_now() - cio_test_t0;
    w->target_done = cio_task_done(w->target);
    return 0;
}

TEST(join_cancelled_joiner_leaves_child_running)
{
    child c = {.delay = 5 * CIO_SEC, .result = 5};
    waiter w = {0};
    ASSERT_OK(cio_spawn(&w.target, run_child, &c));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, join_target, &w));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(0, cio_task_join(t));
    ASSERT_EQ(-ECANCELED, w.rc);
    ASSERT_EQ(CIO_SEC, w.at);
    ASSERT_TRUE(!w.target_done);
    ASSERT_EQ(5, cio_task_join(w.target));
    ASSERT_TIME(5 * CIO_SEC);
    cio_task_free(t);
    cio_task_free(w.target);
    return 0;
}

TEST(join_twice_is_ealready)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, answer, NULL));
    ASSERT_EQ(42, cio_task_join(t));
    ASSERT_EQ(-EALREADY, cio_task_join(t));
    ASSERT_EQ(-EALREADY, cio_wait_for(t, CIO_SEC));
    cio_task_free(t);
    return 0;
}

TEST(join_result_query_counts_as_retrieved)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, answer, NULL));
    int r = 0;
    ASSERT_EQ(-EAGAIN, cio_task_result(t, &r));
    ASSERT_OK(cio_yield());
    ASSERT_OK(cio_task_result(t, &r));
    ASSERT_EQ(42, r);
    ASSERT_EQ(-EINVAL, cio_task_result(NULL, &r));
    ASSERT_EQ(-EINVAL, cio_task_result(t, NULL));
    cio_task_free(t);
    return 0;
}

TEST(join_concurrent_is_ebusy)
{
    child c = {.delay = 2 * CIO_SEC, .result = 2};
    waiter w = {0};
    ASSERT_OK(cio_spawn(&w.target, run_child, &c));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, join_target, &w));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_task_join(w.target));
    ASSERT_EQ(-EBUSY, cio_wait_for(w.target, CIO_SEC));
    ASSERT_EQ(0, cio_task_join(t));
    ASSERT_EQ(2, w.rc);
    ASSERT_EQ(-EALREADY, cio_task_join(w.target));
    cio_task_free(t);
    cio_task_free(w.target);
    return 0;
}

TEST(join_after_cancelled_joiner_left_is_allowed)
{
    child c = {.delay = 5 * CIO_SEC, .result = 5};
    waiter w = {0};
    ASSERT_OK(cio_spawn(&w.target, run_child, &c));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, join_target, &w));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(0, cio_task_join(t));
    /* The first joiner gave up: the handle is free to join again. */
    ASSERT_EQ(5, cio_wait_for(w.target, 10 * CIO_SEC));
    cio_task_free(t);
    cio_task_free(w.target);
    return 0;
}

static int join_self(void *arg)
{
    int *rc = arg;
    rc[0] = cio_task_join(cio_current());
    rc[1] = cio_wait_for(cio_current(), CIO_SEC);
    return 0;
}

TEST(join_self_is_edeadlk)
{
    int rc[2] = {0, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, join_self, rc));
    ASSERT_EQ(0, cio_task_join(t));
    ASSERT_EQ(-EDEADLK, rc[0]);
    ASSERT_EQ(-EDEADLK, rc[1]);
    cio_task_free(t);
    return 0;
}

static int detached_self(void *arg)
{
    cio_task **me = arg;
    *me = cio_current();
    return cio_sleep(2 * CIO_SEC);
}

TEST(join_of_null_detached_or_group_child_is_einval)
{
    ASSERT_EQ(-EINVAL, cio_task_join(NULL));
    ASSERT_EQ(-EINVAL, cio_wait_for(NULL, CIO_SEC));

    cio_task *det = NULL;
    ASSERT_OK(cio_spawn(NULL, detached_self, &det));
    ASSERT_OK(cio_yield());
    ASSERT_TRUE(det != NULL);
    ASSERT_EQ(-EINVAL, cio_task_join(det));
    ASSERT_EQ(-EINVAL, cio_wait_for(det, CIO_SEC));

    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    child c = {.delay = CIO_SEC, .result = 1};
    cio_task *gc;
    ASSERT_OK(cio_group_spawn(g, &gc, run_child, &c));
    ASSERT_EQ(-EINVAL, cio_task_join(gc));
    ASSERT_EQ(-EINVAL, cio_wait_for(gc, CIO_SEC));
    ASSERT_TIME(0);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    return 0;
}

/* ---- Rule 9: a completed join beats a late cancel ------------------------ */

typedef struct race {
    cio_task *target; /* joined by the joiner */
    cio_task *joiner; /* cancelled by the canceller */
    int join_rc, next_rc;
} race;

static int race_joiner(void *arg)
{
    race *r = arg;
    r->join_rc = cio_task_join(r->target);
    r->next_rc = cio_sleep(CIO_SEC);
    return 0;
}

static int race_canceller(void *arg)
{
    race *r = arg;
    int rc = cio_sleep(CIO_SEC);
    return rc < 0 ? rc : cio_task_cancel(r->joiner);
}

TEST(join_completed_beats_late_cancel)
{
    /* At 1 s the target finishes (waking the joiner) and, later in the
     * same turn before the joiner runs, the canceller cancels it. */
    child c = {.delay = CIO_SEC, .result = 11};
    race r = {0};
    ASSERT_OK(cio_spawn(&r.target, run_child, &c));
    ASSERT_OK(cio_spawn(&r.joiner, race_joiner, &r));
    cio_task *x;
    ASSERT_OK(cio_spawn(&x, race_canceller, &r));
    ASSERT_OK(cio_task_join(r.joiner));
    ASSERT_EQ(11, r.join_rc);
    /* The cancellation surfaced at the next suspension point. */
    ASSERT_EQ(-ECANCELED, r.next_rc);
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_task_join(x));
    cio_task_free(x);
    cio_task_free(r.joiner);
    cio_task_free(r.target);
    return 0;
}

typedef struct wf_race {
    cio_task *target, *waiter;
    int rc, next_rc;
} wf_race;

static int wf_race_waiter(void *arg)
{
    wf_race *r = arg;
    r->rc = cio_wait_for(r->target, 10 * CIO_SEC);
    r->next_rc = cio_sleep(CIO_SEC);
    return 0;
}

static int wf_race_canceller(void *arg)
{
    wf_race *r = arg;
    int rc = cio_sleep(CIO_SEC);
    return rc < 0 ? rc : cio_task_cancel(r->waiter);
}

TEST(wait_for_completed_beats_late_cancel)
{
    child c = {.delay = CIO_SEC, .result = 12};
    wf_race r = {0};
    ASSERT_OK(cio_spawn(&r.target, run_child, &c));
    ASSERT_OK(cio_spawn(&r.waiter, wf_race_waiter, &r));
    cio_task *x;
    ASSERT_OK(cio_spawn(&x, wf_race_canceller, &r));
    ASSERT_OK(cio_task_join(r.waiter));
    ASSERT_EQ(12, r.rc);
    ASSERT_EQ(-ECANCELED, r.next_rc);
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_task_join(x));
    cio_task_free(x);
    cio_task_free(r.waiter);
    cio_task_free(r.target);
    return 0;
}

/* ---- Unretrieved errors -------------------------------------------------- */

static int fail_with_message(void *arg)
{
    (void)arg;
    int rc = cio_sleep(CIO_SEC);
    if (rc < 0)
        return rc;
    return cio_errorf(-EIO, "disk on %s", "fire");
}

TEST(task_free_reports_never_retrieved_error)
{
    cio_spawn_opts o = {.name = "doomed"};
    cio_task *t;
    ASSERT_OK(cio_spawn_ex(&t, fail_with_message, NULL, &o));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_TRUE(cio_task_done(t));
    ASSERT_STR_EQ("disk on fire", cio_task_errmsg(t));
    ASSERT_STR_EQ("", cio_test_reports());
    cio_task_free(t);
    const char *rep = cio_test_reports();
    ASSERT_TRUE(strstr(rep, "doomed") != NULL);
    ASSERT_TRUE(strstr(rep, "EIO") != NULL);
    ASSERT_TRUE(strstr(rep, "disk on fire") != NULL);
    return 0;
}

TEST(task_free_after_join_reports_nothing)
{
    cio_spawn_opts o = {.name = "doomed"};
    cio_task *t;
    ASSERT_OK(cio_spawn_ex(&t, fail_with_message, NULL, &o));
    ASSERT_EQ(-EIO, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_spawn_ex(&t, fail_with_message, NULL, &o));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    int r;
    ASSERT_OK(cio_task_result(t, &r));
    ASSERT_EQ(-EIO, r);
    cio_task_free(t);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

static int sleep_long(void *arg)
{
    (void)arg;
    return cio_sleep(100 * CIO_SEC);
}

TEST(task_free_of_cancelled_task_reports_nothing)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, sleep_long, NULL));
    ASSERT_OK(cio_yield());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_TRUE(cio_task_done(t));
    cio_task_free(t);
    ASSERT_STR_EQ("", cio_test_reports());
    cio_task_free(NULL);
    return 0;
}

TEST(task_free_of_running_task_detaches_it)
{
    cio_spawn_opts o = {.name = "orphan"};
    cio_task *t;
    ASSERT_OK(cio_spawn_ex(&t, fail_with_message, NULL, &o));
    cio_task_free(t);
    ASSERT_STR_EQ("", cio_test_reports());
    /* It runs on and its failure is reported when it happens. */
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_TRUE(strstr(cio_test_reports(), "orphan") != NULL);
    ASSERT_TRUE(strstr(cio_test_reports(), "disk on fire") != NULL);
    return 0;
}

/* ---- Detached tasks ------------------------------------------------------ */

static int set_flag_later(void *arg)
{
    int *flag = arg;
    int rc = cio_sleep(CIO_SEC);
    if (rc < 0)
        return rc;
    *flag = 1;
    return 0;
}

TEST(detached_task_is_kept_alive)
{
    int flag = 0;
    ASSERT_OK(cio_spawn(NULL, set_flag_later, &flag));
    ASSERT_EQ(0, flag);
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_EQ(1, flag);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(detached_task_failure_is_reported)
{
    cio_spawn_opts o = {.name = "fire-and-forget"};
    ASSERT_OK(cio_spawn_ex(NULL, fail_with_message, NULL, &o));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    const char *rep = cio_test_reports();
    ASSERT_TRUE(strstr(rep, "fire-and-forget") != NULL);
    ASSERT_TRUE(strstr(rep, "disk on fire") != NULL);
    return 0;
}

TEST(detached_task_is_not_cancelled_with_its_spawner)
{
    int flag = 0;
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_spawn(NULL, set_flag_later, &flag));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_yield());
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_EQ(1, flag);
    return 0;
}

/* The end of a run, seen from a loop of its own on another thread. */
typedef struct run_end {
    int detached_rc;
    int64_t cleanup_end;
    int run_rc;
    char reports[1024];
} run_end;

static run_end *the_end;

static int detached_cleanup(void *arg)
{
    (void)arg;
    int rc = cio_sleep(100 * CIO_SEC);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    cio_sleep(CIO_SEC);
    cio_scope_exit(&sh);
    the_end->detached_rc = rc;
    the_end->cleanup_end = cio_now();
    return rc;
}

static int short_main(void *arg)
{
    (void)arg;
    int rc = cio_spawn(NULL, detached_cleanup, NULL);
    if (rc < 0)
        return rc;
    rc = cio_sleep(CIO_SEC);
    return rc < 0 ? rc : 3;
}

static void *run_short_main(void *arg)
{
    run_end *e = arg;
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.clock = CIO_CLOCK_VIRTUAL;
    e->run_rc = cio_run_config(&cfg, short_main, NULL);
    return NULL;
}

TEST(detached_task_cancelled_and_awaited_when_run_ends)
{
    run_end e = {1, 0, 0, ""};
    the_end = &e;
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, run_short_main, &e));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(3, e.run_rc);
    ASSERT_EQ(-ECANCELED, e.detached_rc);
    /* Main returned at 1 s; the run waited for the shielded cleanup. */
    ASSERT_EQ(2 * CIO_SEC, e.cleanup_end);
    /* A cancelled task is not reported. */
    ASSERT_TRUE(strstr(cio_test_reports(), "detached") == NULL);
    return 0;
}

TEST(wait_for_in_cancelled_caller_cancels_child_at_once)
{
    child c = {.delay = 10 * CIO_SEC, .cleanup = CIO_SEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_child, &c));
    ASSERT_OK(cio_yield());
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_wait_for(t, 5 * CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(cio_task_done(t));
    ASSERT_EQ(-ECANCELED, c.sleep_rc);
    cio_task_free(t);
    return 0;
}

TEST(wait_for_in_cancelled_caller_on_finished_child_is_ecanceled)
{
    /* Rule 3: the call checks for cancellation before anything else,
     * even though the child's result is there to return. */
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, answer, NULL));
    ASSERT_OK(cio_yield());
    ASSERT_TRUE(cio_task_done(t));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_wait_for(t, 5 * CIO_SEC));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    int r = 0;
    ASSERT_OK(cio_task_result(t, &r));
    ASSERT_EQ(42, r);
    cio_task_free(t);
    return 0;
}

typedef struct spawner {
    child c;
    cio_task *plain;
} spawner;

static int spawn_plain(void *arg)
{
    spawner *s = arg;
    int rc = cio_spawn(&s->plain, run_child, &s->c);
    if (rc < 0)
        return rc;
    return cio_sleep(10 * CIO_SEC);
}

TEST(spawn_plain_task_not_cancelled_with_its_spawner)
{
    spawner s = {{.delay = 2 * CIO_SEC, .result = 2}, NULL};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, spawn_plain, &s));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(2, cio_task_join(s.plain));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(0, s.c.sleep_rc);
    cio_task_free(s.plain);
    cio_task_free(t);
    return 0;
}

static void *join_outside(void *arg)
{
    int *rc = arg;
    /* Never dereferenced: the calls refuse before looking at it. */
    cio_task *bogus = (cio_task *)&rc;
    rc[0] = cio_task_join(bogus);
    rc[1] = cio_wait_for(bogus, CIO_SEC);
    return NULL;
}

TEST(join_outside_a_task_is_enotask)
{
    int rc[2] = {0, 0};
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, join_outside, rc));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(CIO_ENOTASK, rc[0]);
    ASSERT_EQ(CIO_ENOTASK, rc[1]);
    return 0;
}
