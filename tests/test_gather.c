/* cio_gather and cio_gather_limit: asyncio.gather with fail-fast and
 * return-errors modes, and the bounded fan-out. */
#include "test.h"

/* A call's script and what it observed. */
typedef struct step {
    int64_t delay;
    int result;
    int64_t cleanup; /* shielded sleep after being cancelled */
    int ran;
    int sleep_rc;
    bool finished;
    const char *why; /* a failure's cio_errorf text */
} step;

static int run_step(void *arg)
{
    step *s = arg;
    s->ran++;
    int rc = cio_sleep(s->delay);
    s->sleep_rc = rc;
    if (rc < 0 && s->cleanup > 0) {
        cio_scope sh;
        cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
        cio_sleep(s->cleanup);
        cio_scope_exit(&sh);
    }
    s->finished = true;
    if (rc < 0)
        return rc;
    if (s->result < 0 && s->why)
        return cio_errorf(s->result, "%s", s->why);
    return s->result;
}

static void calls_of(cio_call *calls, step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        calls[i] = (cio_call){run_step, &steps[i], 12345};
}

/* ---- Fail-fast ----------------------------------------------------------- */

TEST(gather_returns_all_results)
{
    step s[3] = {{.delay = 2 * CIO_SEC, .result = 20},
                 {.delay = CIO_SEC, .result = 10},
                 {.delay = 3 * CIO_SEC, .result = 30}};
    cio_call calls[3];
    calls_of(calls, s, 3);
    ASSERT_EQ(0, cio_gather(calls, 3, 0));
    /* They ran concurrently. */
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(20, calls[0].result);
    ASSERT_EQ(10, calls[1].result);
    ASSERT_EQ(30, calls[2].result);
    return 0;
}

TEST(gather_fail_fast_cancels_and_awaits_the_others)
{
    step s[3] = {{.delay = CIO_SEC, .result = 1},
                 {.delay = 2 * CIO_SEC, .result = -EIO},
                 {.delay = 10 * CIO_SEC, .result = 3, .cleanup = CIO_SEC}};
    cio_call calls[3];
    calls_of(calls, s, 3);
    ASSERT_EQ(-EIO, cio_gather(calls, 3, 0));
    /* The cancelled call's cleanup finished before gather returned. */
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_TRUE(s[2].finished);
    ASSERT_EQ(-ECANCELED, s[2].sleep_rc);
    ASSERT_EQ(1, calls[0].result);
    ASSERT_EQ(-EIO, calls[1].result);
    ASSERT_EQ(-ECANCELED, calls[2].result);
    /* The error was returned: nothing is reported as lost. */
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(gather_fail_fast_returns_first_error_in_completion_order)
{
    step s[3] = {{.delay = 2 * CIO_SEC, .result = -EPIPE},
                 {.delay = CIO_SEC, .result = -ENOENT},
                 {.delay = 5 * CIO_SEC, .result = 5}};
    cio_call calls[3];
    calls_of(calls, s, 3);
    ASSERT_EQ(-ENOENT, cio_gather(calls, 3, 0));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, calls[0].result);
    ASSERT_EQ(-ENOENT, calls[1].result);
    ASSERT_EQ(-ECANCELED, calls[2].result);
    return 0;
}

TEST(gather_fail_fast_with_limit_never_starts_the_rest)
{
    step s[4] = {{.delay = CIO_SEC, .result = 1},
                 {.delay = CIO_SEC, .result = -EIO},
                 {.delay = CIO_SEC, .result = 3},
                 {.delay = CIO_SEC, .result = 4}};
    cio_call calls[4];
    calls_of(calls, s, 4);
    ASSERT_EQ(-EIO, cio_gather_limit(calls, 4, 1, 0));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(1, calls[0].result);
    ASSERT_EQ(-EIO, calls[1].result);
    ASSERT_EQ(-ECANCELED, calls[2].result);
    ASSERT_EQ(-ECANCELED, calls[3].result);
    ASSERT_EQ(0, s[2].ran);
    ASSERT_EQ(0, s[3].ran);
    return 0;
}

TEST(gather_fail_fast_gives_the_caller_the_failed_calls_text)
{
    step s[3] = {{.delay = 2 * CIO_SEC, .result = -EIO, .why = "second"},
                 {.delay = CIO_SEC, .result = -EIO, .why = "disk on fire"},
                 {.delay = 3 * CIO_SEC, .result = 3}};
    cio_call calls[3];
    calls_of(calls, s, 3);
    ASSERT_EQ(-EIO, cio_gather(calls, 3, 0));
    /* The call that failed first, not the one cancelled before it could. */
    ASSERT_STR_EQ("disk on fire", cio_task_errmsg(cio_current()));
    ASSERT_EQ(-ECANCELED, calls[0].result);
    return 0;
}

/* ---- Return-errors mode -------------------------------------------------- */

TEST(gather_return_errors_runs_everything)
{
    step s[3] = {{.delay = CIO_SEC, .result = 1},
                 {.delay = 2 * CIO_SEC, .result = -EIO},
                 {.delay = 10 * CIO_SEC, .result = 3}};
    cio_call calls[3];
    calls_of(calls, s, 3);
    ASSERT_EQ(0, cio_gather(calls, 3, CIO_GATHER_RETURN_ERRORS));
    ASSERT_TIME(10 * CIO_SEC);
    ASSERT_EQ(1, calls[0].result);
    ASSERT_EQ(-EIO, calls[1].result);
    ASSERT_EQ(3, calls[2].result);
    ASSERT_EQ(0, s[2].sleep_rc);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(gather_return_errors_leaves_the_callers_text_alone)
{
    step s[2] = {{.delay = CIO_SEC, .result = -EIO, .why = "disk on fire"},
                 {.delay = CIO_SEC, .result = 2}};
    cio_call calls[2];
    calls_of(calls, s, 2);
    ASSERT_EQ(0, cio_gather(calls, 2, CIO_GATHER_RETURN_ERRORS));
    ASSERT_EQ(-EIO, calls[0].result);
    ASSERT_TRUE(cio_task_errmsg(cio_current()) == NULL);
    return 0;
}

TEST(gather_return_errors_with_limit_runs_everything)
{
    step s[4] = {{.delay = CIO_SEC, .result = -EIO},
                 {.delay = CIO_SEC, .result = -ENOENT},
                 {.delay = CIO_SEC, .result = 3},
                 {.delay = CIO_SEC, .result = 4}};
    cio_call calls[4];
    calls_of(calls, s, 4);
    ASSERT_EQ(0, cio_gather_limit(calls, 4, 2, CIO_GATHER_RETURN_ERRORS));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-EIO, calls[0].result);
    ASSERT_EQ(-ENOENT, calls[1].result);
    ASSERT_EQ(3, calls[2].result);
    ASSERT_EQ(4, calls[3].result);
    return 0;
}

/* ---- Bounded fan-out ----------------------------------------------------- */

typedef struct fanout {
    int running, max;
    size_t order[16];
    int64_t started[16];
    size_t nstarted;
} fanout;

typedef struct slot {
    fanout *f;
    size_t index;
    int64_t delay;
} slot;

static int bounded(void *arg)
{
    slot *s = arg;
    fanout *f = s->f;
    f->order[f->nstarted] = s->index;
    f->started[s->index] = cio_now() - cio_test_t0;
    f->nstarted++;
    if (++f->running > f->max)
        f->max = f->running;
    int rc = cio_sleep(s->delay);
    f->running--;
    return rc < 0 ? rc : (int)s->index;
}

static void fan_calls(cio_call *calls, slot *slots, fanout *f,
                      const int64_t *delays, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        slots[i] = (slot){f, i, delays[i]};
        calls[i] = (cio_call){bounded, &slots[i], -1};
    }
}

TEST(gather_limit_bounds_concurrency_and_starts_in_order)
{
    int64_t d[10];
    for (int i = 0; i < 10; i++)
        d[i] = CIO_SEC;
    fanout f = {0};
    slot slots[10];
    cio_call calls[10];
    fan_calls(calls, slots, &f, d, 10);
    ASSERT_EQ(0, cio_gather_limit(calls, 10, 3, 0));
    ASSERT_EQ(3, f.max);
    ASSERT_EQ(10, (long long)f.nstarted);
    for (size_t i = 0; i < 10; i++) {
        ASSERT_EQ(i, f.order[i]);
        ASSERT_EQ((int)i, calls[i].result);
    }
    /* Ten one-second calls, three at a time. */
    ASSERT_TIME(4 * CIO_SEC);
    return 0;
}

TEST(gather_limit_starts_next_call_when_one_finishes)
{
    const int64_t d[5] = {3 * CIO_SEC, CIO_SEC, 2 * CIO_SEC, CIO_SEC,
                          CIO_SEC};
    fanout f = {0};
    slot slots[5];
    cio_call calls[5];
    fan_calls(calls, slots, &f, d, 5);
    ASSERT_EQ(0, cio_gather_limit(calls, 5, 2, 0));
    ASSERT_EQ(2, f.max);
    const int64_t want[5] = {0, 0, CIO_SEC, 3 * CIO_SEC, 3 * CIO_SEC};
    for (size_t i = 0; i < 5; i++) {
        ASSERT_EQ(i, f.order[i]);
        ASSERT_EQ(want[i], f.started[i]);
    }
    ASSERT_TIME(4 * CIO_SEC);
    return 0;
}

TEST(gather_limit_one_runs_sequentially)
{
    const int64_t d[3] = {CIO_SEC, 2 * CIO_SEC, 3 * CIO_SEC};
    fanout f = {0};
    slot slots[3];
    cio_call calls[3];
    fan_calls(calls, slots, &f, d, 3);
    ASSERT_EQ(0, cio_gather_limit(calls, 3, 1, 0));
    ASSERT_EQ(1, f.max);
    ASSERT_EQ(0, f.started[0]);
    ASSERT_EQ(CIO_SEC, f.started[1]);
    ASSERT_EQ(3 * CIO_SEC, f.started[2]);
    ASSERT_TIME(6 * CIO_SEC);
    return 0;
}

TEST(gather_limit_zero_or_above_n_is_unbounded)
{
    int64_t d[6];
    for (int i = 0; i < 6; i++)
        d[i] = CIO_SEC;
    fanout f = {0};
    slot slots[6];
    cio_call calls[6];
    fan_calls(calls, slots, &f, d, 6);
    ASSERT_EQ(0, cio_gather_limit(calls, 6, 0, 0));
    ASSERT_EQ(6, f.max);
    ASSERT_TIME(CIO_SEC);

    fanout f2 = {0};
    fan_calls(calls, slots, &f2, d, 6);
    ASSERT_EQ(0, cio_gather_limit(calls, 6, 100, 0));
    ASSERT_EQ(6, f2.max);
    ASSERT_TIME(2 * CIO_SEC);

    fanout f3 = {0};
    fan_calls(calls, slots, &f3, d, 6);
    ASSERT_EQ(0, cio_gather(calls, 6, 0));
    ASSERT_EQ(6, f3.max);
    ASSERT_TIME(3 * CIO_SEC);
    return 0;
}

/* ---- Edges and arguments ------------------------------------------------- */

TEST(gather_of_zero_calls_returns_zero)
{
    ASSERT_EQ(0, cio_gather(NULL, 0, 0));
    ASSERT_EQ(0, cio_gather(NULL, 0, CIO_GATHER_RETURN_ERRORS));
    ASSERT_EQ(0, cio_gather_limit(NULL, 0, 3, 0));
    cio_call none[1] = {{run_step, NULL, 7}};
    ASSERT_EQ(0, cio_gather(none, 0, 0));
    ASSERT_EQ(7, none[0].result);
    ASSERT_TIME(0);
    return 0;
}

TEST(gather_bad_arguments_are_einval)
{
    step s[2] = {{.delay = CIO_SEC}, {.delay = CIO_SEC}};
    cio_call calls[2];
    calls_of(calls, s, 2);
    ASSERT_EQ(-EINVAL, cio_gather(NULL, 2, 0));
    calls[1].fn = NULL;
    ASSERT_EQ(-EINVAL, cio_gather(calls, 2, 0));
    ASSERT_EQ(-EINVAL, cio_gather_limit(calls, 2, 1, 0));
    ASSERT_EQ(0, s[0].ran);
    ASSERT_TIME(0);
    return 0;
}

TEST(gather_in_cancelled_task_runs_nothing)
{
    step s[2] = {{.delay = CIO_SEC}, {.delay = CIO_SEC}};
    cio_call calls[2];
    calls_of(calls, s, 2);
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_gather(calls, 2, 0));
    ASSERT_EQ(-ECANCELED, cio_gather(calls, 2, CIO_GATHER_RETURN_ERRORS));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_OK(cio_yield());
    ASSERT_EQ(0, s[0].ran + s[1].ran);
    return 0;
}

/* ---- Caller cancelled ---------------------------------------------------- */

typedef struct gatherer {
    cio_call *calls;
    step *steps;
    size_t n;
    unsigned flags;
    int rc;
    int64_t at;
    bool all_finished;
} gatherer;

static int run_gather(void *arg)
{
    gatherer *g = arg;
    g->rc = cio_gather(g->calls, g->n, g->flags);
    g->at = cio_now() - cio_test_t0;
    g->all_finished = true;
    for (size_t i = 0; i < g->n; i++)
        g->all_finished &= g->steps[i].finished;
    return g->rc;
}

TEST(gather_caller_cancelled_cancels_and_awaits_children)
{
    step s[2] = {{.delay = 10 * CIO_SEC, .cleanup = CIO_SEC},
                 {.delay = 10 * CIO_SEC}};
    cio_call calls[2];
    calls_of(calls, s, 2);
    gatherer g = {calls, s, 2, 0, 1, 0, false};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_gather, &g));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(2 * CIO_SEC, g.at);
    ASSERT_TRUE(g.all_finished);
    ASSERT_EQ(-ECANCELED, calls[0].result);
    ASSERT_EQ(-ECANCELED, calls[1].result);
    cio_task_free(t);
    return 0;
}

TEST(gather_return_errors_caller_cancelled_is_ecanceled)
{
    step s[2] = {{.delay = 10 * CIO_SEC, .cleanup = CIO_SEC},
                 {.delay = 10 * CIO_SEC}};
    cio_call calls[2];
    calls_of(calls, s, 2);
    gatherer g = {calls, s, 2, CIO_GATHER_RETURN_ERRORS, 1, 0, false};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_gather, &g));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(2 * CIO_SEC, g.at);
    ASSERT_TRUE(g.all_finished);
    cio_task_free(t);
    return 0;
}

TEST(gather_return_errors_caller_cancelled_after_a_failure_is_ecanceled)
{
    step s[2] = {{.delay = CIO_SEC, .result = -EIO},
                 {.delay = 10 * CIO_SEC}};
    cio_call calls[2];
    calls_of(calls, s, 2);
    gatherer g = {calls, s, 2, CIO_GATHER_RETURN_ERRORS, 1, 0, false};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_gather, &g));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(2 * CIO_SEC, g.at);
    ASSERT_EQ(-EIO, calls[0].result);
    ASSERT_EQ(-ECANCELED, calls[1].result);
    cio_task_free(t);
    return 0;
}

TEST(gather_inside_scope_with_deadline)
{
    step s[2] = {{.delay = CIO_SEC, .result = 1},
                 {.delay = 10 * CIO_SEC, .result = 2}};
    cio_call calls[2];
    calls_of(calls, s, 2);
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_gather(calls, 2, 0));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(1, calls[0].result);
    ASSERT_EQ(-ECANCELED, calls[1].result);
    ASSERT_TRUE(s[1].finished);
    return 0;
}

static int nested_gather(void *arg)
{
    step *s = arg;
    cio_call calls[2];
    calls_of(calls, s, 2);
    int rc = cio_gather(calls, 2, 0);
    return rc < 0 ? rc : calls[0].result + calls[1].result;
}

TEST(gather_nested_gathers)
{
    step inner_a[2] = {{.delay = CIO_SEC, .result = 1},
                       {.delay = 2 * CIO_SEC, .result = 2}};
    step inner_b[2] = {{.delay = CIO_SEC, .result = -EIO},
                       {.delay = 10 * CIO_SEC, .result = 4}};
    cio_call calls[2] = {{nested_gather, inner_a, 0},
                         {nested_gather, inner_b, 0}};
    ASSERT_EQ(0, cio_gather(calls, 2, CIO_GATHER_RETURN_ERRORS));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(3, calls[0].result);
    ASSERT_EQ(-EIO, calls[1].result);
    ASSERT_EQ(-ECANCELED, inner_b[1].sleep_rc);
    return 0;
}
