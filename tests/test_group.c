/* Groups: asyncio.TaskGroup and Trio nursery semantics, cio_group_wait
 * (asyncio.wait) and cio_group_next (asyncio.as_completed). */
#include <pthread.h>

#include "internal.h"
#include "test.h"

/* A child's script and what it observed. */
typedef struct job {
    int64_t delay;      /* sleep before finishing */
    int result;         /* returned after the sleep */
    const char *msg;    /* error text (cio_errorf) for a failure */
    int64_t cleanup;    /* shielded sleep after being cancelled */
    int fail_on_cancel; /* error returned when cancelled, else -ECANCELED */
    int sleep_rc;
    int64_t end; /* when it returned, since the test started */
    bool finished;
} job;

static int work(void *arg)
{
    job *j = arg;
    int rc = cio_sleep(j->delay);
    j->sleep_rc = rc;
    if (rc < 0 && j->cleanup > 0) {
        cio_scope sh;
        cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
        cio_sleep(j->cleanup);
        cio_scope_exit(&sh);
    }
    j->end = cio_now() - cio_test_t0;
    j->finished = true;
    if (rc < 0) {
        if (j->fail_on_cancel)
            return cio_errorf(j->fail_on_cancel, "%s", j->msg);
        return rc;
    }
    if (j->result < 0 && j->msg)
        return cio_errorf(j->result, "%s", j->msg);
    return j->result;
}

static int spawn_job(cio_group *g, cio_task **out, const char *name, job *j)
{
    cio_spawn_opts o = {.name = name};
    return cio_group_spawn_ex(g, out, work, j, &o);
}

static int result_of(cio_task *t)
{
    int r = 12345;
    int rc = cio_task_result(t, &r);
    return rc < 0 ? rc : r;
}

/* ---- Join ---------------------------------------------------------------- */

TEST(group_join_waits_for_all_children)
{
    job a = {.delay = CIO_SEC, .result = 1};
    job b = {.delay = 3 * CIO_SEC, .result = 3};
    job c = {.delay = 2 * CIO_SEC, .result = 2};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta, *tb, *tc;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, &tb, "b", &b));
    ASSERT_OK(spawn_job(g, &tc, "c", &c));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_TRUE(a.finished && b.finished && c.finished);
    ASSERT_EQ(1, result_of(ta));
    ASSERT_EQ(3, result_of(tb));
    ASSERT_EQ(2, result_of(tc));
    ASSERT_EQ(0, (long long)cio_group_error_count(g));
    /* A second join returns the same value without waiting. */
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_join_of_empty_group_returns_zero)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(0);
    cio_group_free(g);
    return 0;
}

TEST(group_join_of_children_without_handles)
{
    job a = {.delay = CIO_SEC, .result = 1};
    job b = {.delay = 2 * CIO_SEC, .result = 2};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, work, &a));
    ASSERT_OK(cio_group_spawn(g, NULL, work, &b));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_TRUE(a.finished && b.finished);
    cio_group_free(g);
    return 0;
}

static int spawn_sibling(void *arg)
{
    cio_group *g = *(cio_group **)arg;
    static job late = {.delay = 2 * CIO_SEC, .result = 5};
    int rc = cio_sleep(CIO_SEC);
    if (rc < 0)
        return rc;
    return cio_group_spawn(g, NULL, work, &late);
}

TEST(group_join_waits_for_children_spawned_by_children)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, spawn_sibling, &g));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(3 * CIO_SEC);
    cio_group_free(g);
    return 0;
}

TEST(group_join_misuse_is_einval)
{
    ASSERT_EQ(-EINVAL, cio_group_join(NULL));
    ASSERT_EQ(-EINVAL, cio_group_spawn(NULL, NULL, work, NULL));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_EQ(-EINVAL, cio_group_spawn(g, NULL, NULL, NULL));
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    cio_group_free(NULL);
    return 0;
}

static int join_foreign_group(void *arg)
{
    return cio_group_join(arg);
}

TEST(group_join_by_another_task_is_einval)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    job a = {.delay = CIO_SEC};
    ASSERT_OK(cio_group_spawn(g, NULL, work, &a));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, join_foreign_group, g));
    ASSERT_EQ(-EINVAL, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TIME(0);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_child_handle_cannot_be_joined)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    job a = {.delay = CIO_SEC, .result = 4};
    cio_task *t;
    ASSERT_OK(spawn_job(g, &t, "a", &a));
    ASSERT_EQ(-EINVAL, cio_task_join(t));
    ASSERT_EQ(-EINVAL, cio_wait_for(t, CIO_SEC));
    ASSERT_EQ(-EAGAIN, result_of(t));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_EQ(4, result_of(t));
    ASSERT_STR_EQ("a", cio_task_name(t));
    cio_task_free(t);
    cio_group_free(g);
    return 0;
}

/* ---- Failure ------------------------------------------------------------- */

TEST(group_first_failure_cancels_siblings_and_opener)
{
    job ok = {.delay = 10 * CIO_SEC, .result = 1};
    job bad = {.delay = CIO_SEC, .result = -EIO, .msg = "disk full"};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *tok, *tbad;
    ASSERT_OK(spawn_job(g, &tok, "ok", &ok));
    ASSERT_OK(spawn_job(g, &tbad, "bad", &bad));
    /* The opener's own code inside the group is cancelled too. */
    ASSERT_EQ(-ECANCELED, cio_sleep(10 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, ok.sleep_rc);
    ASSERT_EQ(-ECANCELED, result_of(tok));
    ASSERT_EQ(-EIO, result_of(tbad));
    ASSERT_EQ(1, (long long)cio_group_error_count(g));
    const char *what = NULL;
    ASSERT_EQ(-EIO, cio_group_error(g, 0, &what));
    ASSERT_STR_EQ("bad: disk full", what);
    /* After the join the opener is no longer cancelled. */
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(-EIO, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_collects_every_error_in_completion_order)
{
    job a = {.delay = CIO_SEC, .result = -EIO, .msg = "first"};
    job b = {.delay = 10 * CIO_SEC, .fail_on_cancel = -EPIPE,
             .msg = "cleanup failed"};
    /* c's sleep ends at the same instant as a's: its wait completed before
     * the cancellation, so it goes on and fails too. */
    job c = {.delay = CIO_SEC, .result = -EBADMSG, .msg = "third"};
    job d = {.delay = 10 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_OK(spawn_job(g, NULL, "c", &c));
    ASSERT_OK(spawn_job(g, NULL, "d", &d));
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(3, (long long)cio_group_error_count(g));
    const char *what = NULL;
    ASSERT_EQ(-EIO, cio_group_error(g, 0, &what));
    ASSERT_STR_EQ("a: first", what);
    ASSERT_EQ(-EBADMSG, cio_group_error(g, 1, &what));
    ASSERT_STR_EQ("c: third", what);
    ASSERT_EQ(-EPIPE, cio_group_error(g, 2, &what));
    ASSERT_STR_EQ("b: cleanup failed", what);
    ASSERT_EQ(-EPIPE, cio_group_error(g, 2, NULL));
    ASSERT_EQ(-EINVAL, cio_group_error(g, 3, &what));
    ASSERT_EQ(-EINVAL, cio_group_error(NULL, 0, &what));
    ASSERT_EQ(0, (long long)cio_group_error_count(NULL));
    /* A cancelled child is not an error. */
    ASSERT_EQ(-ECANCELED, d.sleep_rc);
    cio_group_free(g);
    return 0;
}

TEST(group_error_text_without_message_or_name)
{
    job a = {.delay = CIO_SEC, .result = -ENOENT};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *t;
    ASSERT_OK(cio_group_spawn(g, &t, work, &a));
    ASSERT_EQ(-ENOENT, cio_group_join(g));
    char want[128];
    snprintf(want, sizeof want, "task-%llu: %s",
             (unsigned long long)cio_task_id(t), cio_strerror(-ENOENT));
    const char *what = NULL;
    ASSERT_EQ(-ENOENT, cio_group_error(g, 0, &what));
    ASSERT_STR_EQ(want, what);
    cio_group_free(g);
    return 0;
}

static int fail_now(void *arg)
{
    (void)arg;
    return cio_errorf(-EPROTO, "bad header %d", 7);
}

TEST(group_child_failing_at_once_still_cancels_siblings)
{
    job slow = {.delay = 10 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "slow", &slow));
    cio_spawn_opts o = {.name = "parser"};
    ASSERT_OK(cio_group_spawn_ex(g, NULL, fail_now, NULL, &o));
    ASSERT_EQ(-EPROTO, cio_group_join(g));
    ASSERT_TIME(0);
    ASSERT_EQ(-ECANCELED, slow.sleep_rc);
    const char *what = NULL;
    cio_group_error(g, 0, &what);
    ASSERT_STR_EQ("parser: bad header 7", what);
    cio_group_free(g);
    return 0;
}

TEST(group_cancelled_child_does_not_cancel_the_group)
{
    job a = {.delay = 10 * CIO_SEC};
    job b = {.delay = 2 * CIO_SEC, .result = 2};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(ta));
    ASSERT_OK(cio_sleep(CIO_SEC / 2));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ECANCELED, result_of(ta));
    ASSERT_EQ(0, b.sleep_rc);
    cio_group_free(g);
    return 0;
}

TEST(group_collect_keeps_siblings_running)
{
    job bad = {.delay = CIO_SEC, .result = -EIO, .msg = "bad"};
    job ok = {.delay = 3 * CIO_SEC, .result = 3};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, CIO_GROUP_COLLECT));
    cio_task *tok;
    ASSERT_OK(spawn_job(g, NULL, "bad", &bad));
    ASSERT_OK(spawn_job(g, &tok, "ok", &ok));
    /* Neither the sibling nor the opener is cancelled. */
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    job quick = {.delay = 0};
    ASSERT_OK(cio_group_spawn(g, NULL, work, &quick));
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(0, ok.sleep_rc);
    ASSERT_EQ(3, result_of(tok));
    ASSERT_EQ(1, (long long)cio_group_error_count(g));
    cio_group_free(g);
    return 0;
}

/* ---- Rule 7: spawning into a cancelling group ---------------------------- */

static int never_runs(void *arg)
{
    int *ran = arg;
    *ran = 1;
    return 0;
}

TEST(group_spawn_into_cancelled_group_is_eclosing)
{
    int ran = 0;
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_EQ(CIO_ECLOSING, cio_group_spawn(g, NULL, never_runs, &ran));
    cio_task *t = NULL;
    ASSERT_EQ(CIO_ECLOSING, cio_group_spawn(g, &t, never_runs, &ran));
    ASSERT_TRUE(t == NULL);
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_EQ(CIO_ECLOSING, cio_group_spawn(g, NULL, never_runs, &ran));
    ASSERT_EQ(0, ran);
    cio_group_free(g);
    return 0;
}

TEST(group_spawn_into_failed_group_is_eclosing)
{
    int ran = 0;
    job bad = {.delay = CIO_SEC, .result = -EIO};
    job slow = {.delay = 10 * CIO_SEC, .cleanup = CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, work, &bad));
    ASSERT_OK(cio_group_spawn(g, NULL, work, &slow));
    ASSERT_EQ(-ECANCELED, cio_sleep(5 * CIO_SEC));
    /* The group is still cancelling (slow cleans up) and refuses work. */
    ASSERT_TRUE(!slow.finished);
    ASSERT_EQ(CIO_ECLOSING, cio_group_spawn(g, NULL, never_runs, &ran));
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(0, ran);
    cio_group_free(g);
    return 0;
}

TEST(group_spawn_joined_collect_group_is_eclosing)
{
    int ran = 0;
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, CIO_GROUP_COLLECT));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_EQ(CIO_ECLOSING, cio_group_spawn(g, NULL, never_runs, &ran));
    ASSERT_OK(cio_yield());
    ASSERT_EQ(0, ran);
    cio_group_free(g);
    return 0;
}

TEST(group_spawn_inside_cancelled_scope_is_eclosing)
{
    int ran = 0;
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(CIO_ECLOSING, cio_group_spawn(g, NULL, never_runs, &ran));
    ASSERT_EQ(-ECANCELED, cio_group_join(g));
    cio_group_free(g);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(0, ran);
    return 0;
}

typedef struct spawner {
    cio_group *g;
    int rc;
    int ran;
} spawner;

static int spawn_after_failure(void *arg)
{
    spawner *s = arg;
    int rc = cio_sleep(10 * CIO_SEC);
    /* Cancelled because a sibling failed; spawning more is refused. */
    s->rc = cio_group_spawn(s->g, NULL, never_runs, &s->ran);
    return rc;
}

TEST(group_child_spawning_into_failed_group_is_eclosing)
{
    spawner s = {NULL, 1, 0};
    job bad = {.delay = CIO_SEC, .result = -EIO};
    ASSERT_OK(cio_group_new(&s.g, 0));
    ASSERT_OK(cio_group_spawn(s.g, NULL, spawn_after_failure, &s));
    ASSERT_OK(cio_group_spawn(s.g, NULL, work, &bad));
    ASSERT_EQ(-EIO, cio_group_join(s.g));
    ASSERT_EQ(CIO_ECLOSING, s.rc);
    ASSERT_EQ(0, s.ran);
    cio_group_free(s.g);
    return 0;
}

/* ---- Rule 5 and rule 8: cancellation from outside ------------------------ */

typedef struct opener {
    job *jobs;
    int njobs;
    unsigned flags;
    int pre_rc;      /* what the opener's code saw before joining */
    int64_t pre_sleep;
    int join_rc;
    int64_t join_at;
    bool all_done_at_join;
    size_t nerr;
} opener;

static int open_and_join(void *arg)
{
    opener *o = arg;
    cio_group *g;
    int rc = cio_group_new(&g, o->flags);
    if (rc < 0)
        return rc;
    for (int i = 0; i < o->njobs; i++) {
        char name[16];
        snprintf(name, sizeof name, "job%d", i);
        spawn_job(g, NULL, name, &o->jobs[i]);
    }
    if (o->pre_sleep)
        o->pre_rc = cio_sleep(o->pre_sleep);
    o->join_rc = cio_group_join(g);
    o->join_at = cio_now() - cio_test_t0;
    o->all_done_at_join = true;
    for (int i = 0; i < o->njobs; i++)
        o->all_done_at_join &= o->jobs[i].finished;
    o->nerr = cio_group_error_count(g);
    cio_group_free(g);
    return o->join_rc;
}

TEST(group_opener_cancel_cancels_children_and_join_waits)
{
    job jobs[2] = {{.delay = 10 * CIO_SEC, .cleanup = 2 * CIO_SEC},
                   {.delay = 10 * CIO_SEC, .cleanup = CIO_SEC}};
    opener o = {.jobs = jobs, .njobs = 2};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, open_and_join, &o));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    /* The join was not interrupted: it waited for both cleanups. */
    ASSERT_EQ(-ECANCELED, o.join_rc);
    ASSERT_EQ(3 * CIO_SEC, o.join_at);
    ASSERT_TRUE(o.all_done_at_join);
    ASSERT_EQ(-ECANCELED, jobs[0].sleep_rc);
    ASSERT_EQ(-ECANCELED, jobs[1].sleep_rc);
    ASSERT_EQ(CIO_SEC * 3, jobs[0].end);
    ASSERT_EQ(CIO_SEC * 2, jobs[1].end);
    ASSERT_EQ(0, (long long)o.nerr);
    cio_task_free(t);
    return 0;
}

TEST(group_opener_cancel_reaches_opener_code_before_join)
{
    job jobs[1] = {{.delay = 10 * CIO_SEC}};
    opener o = {.jobs = jobs, .njobs = 1, .pre_sleep = 10 * CIO_SEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, open_and_join, &o));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(-ECANCELED, o.pre_rc);
    ASSERT_EQ(-ECANCELED, o.join_rc);
    ASSERT_EQ(CIO_SEC, o.join_at);
    ASSERT_TRUE(o.all_done_at_join);
    cio_task_free(t);
    return 0;
}

TEST(group_child_error_wins_over_outside_cancel)
{
    job jobs[2] = {{.delay = 10 * CIO_SEC, .fail_on_cancel = -EIO,
                    .msg = "flush failed"},
                   {.delay = 10 * CIO_SEC}};
    opener o = {.jobs = jobs, .njobs = 2};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, open_and_join, &o));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-EIO, cio_task_join(t));
    ASSERT_EQ(-EIO, o.join_rc);
    ASSERT_EQ(1, (long long)o.nerr);
    ASSERT_EQ(CIO_SEC, o.join_at);
    cio_task_free(t);
    return 0;
}

TEST(group_child_error_before_outside_cancel_wins)
{
    /* job0 fails at 1 s; job1 cleans up for 3 s; the opener is cancelled
     * from outside at 2 s while its join waits for job1. */
    job jobs[2] = {{.delay = CIO_SEC, .result = -EIO, .msg = "boom"},
                   {.delay = 10 * CIO_SEC, .cleanup = 3 * CIO_SEC}};
    opener o = {.jobs = jobs, .njobs = 2};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, open_and_join, &o));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-EIO, cio_task_join(t));
    ASSERT_EQ(4 * CIO_SEC, o.join_at);
    ASSERT_EQ(1, (long long)o.nerr);
    cio_task_free(t);
    return 0;
}

TEST(group_in_collect_mode_opener_cancel_still_cancels_children)
{
    job jobs[2] = {{.delay = 10 * CIO_SEC}, {.delay = 10 * CIO_SEC}};
    opener o = {.jobs = jobs, .njobs = 2, .flags = CIO_GROUP_COLLECT};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, open_and_join, &o));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_EQ(CIO_SEC, o.join_at);
    ASSERT_EQ(-ECANCELED, jobs[0].sleep_rc);
    ASSERT_EQ(-ECANCELED, jobs[1].sleep_rc);
    cio_task_free(t);
    return 0;
}

TEST(group_spawn_refused_when_opener_is_cancelled)
{
    int ran = 0;
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task_cancel(cio_current());
    ASSERT_EQ(CIO_ECLOSING, cio_group_spawn(g, NULL, never_runs, &ran));
    ASSERT_EQ(-ECANCELED, cio_group_join(g));
    cio_group_free(g);
    ASSERT_EQ(0, ran);
    return 0;
}

/* ---- cio_group_cancel ---------------------------------------------------- */

TEST(group_cancel_on_purpose_joins_with_zero)
{
    job a = {.delay = 10 * CIO_SEC};
    job b = {.delay = 10 * CIO_SEC, .cleanup = CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_OK(cio_group_cancel(g));
    /* The opener's code inside the group is cancelled too. */
    ASSERT_EQ(-ECANCELED, cio_sleep(CIO_SEC));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ECANCELED, result_of(ta));
    ASSERT_EQ(-ECANCELED, b.sleep_rc);
    ASSERT_EQ(0, (long long)cio_group_error_count(g));
    /* Leaving the group left its cancellation behind. */
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(-EINVAL, cio_group_cancel(NULL));
    cio_group_free(g);
    return 0;
}

TEST(group_cancel_with_failing_child_returns_the_error)
{
    job a = {.delay = 10 * CIO_SEC, .fail_on_cancel = -ENOSPC,
             .msg = "no space"};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_EQ(-ENOSPC, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

static int cancel_own_group(void *arg)
{
    cio_group *g = *(cio_group **)arg;
    int rc = cio_sleep(CIO_SEC);
    if (rc < 0)
        return rc;
    return cio_group_cancel(g);
}

TEST(group_cancel_by_a_child)
{
    job a = {.delay = 10 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(cio_group_spawn(g, NULL, cancel_own_group, &g));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, a.sleep_rc);
    cio_group_free(g);
    return 0;
}

static int shielded_child(void *arg)
{
    job *j = arg;
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    j->sleep_rc = cio_sleep(j->delay);
    cio_scope_exit(&sh);
    j->finished = true;
    return cio_checkpoint();
}

TEST(group_cancel_does_not_enter_a_child_shield)
{
    job a = {.delay = 2 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *t;
    ASSERT_OK(cio_group_spawn(g, &t, shielded_child, &a));
    ASSERT_OK(cio_yield());
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(0, a.sleep_rc);
    ASSERT_EQ(-ECANCELED, result_of(t));
    cio_group_free(g);
    return 0;
}

/* ---- Scopes around groups ------------------------------------------------ */

TEST(group_inside_scope_with_deadline)
{
    job a = {.delay = 10 * CIO_SEC};
    job b = {.delay = 10 * CIO_SEC};
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_EQ(-ECANCELED, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, a.sleep_rc);
    ASSERT_EQ(-ECANCELED, b.sleep_rc);
    cio_group_free(g);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    return 0;
}

TEST(group_scope_deadline_while_opener_code_runs)
{
    job a = {.delay = 10 * CIO_SEC};
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_EQ(-ECANCELED, cio_sleep(5 * CIO_SEC));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, cio_group_join(g));
    cio_group_free(g);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    return 0;
}

typedef struct mover {
    cio_scope *sc;
    int64_t at, deadline;
} mover;

static int move_deadline(void *arg)
{
    mover *m = arg;
    int rc = cio_sleep_until(m->at);
    return rc < 0 ? rc : cio_scope_set_deadline(m->sc, m->deadline);
}

static int cancel_scope_at(void *arg)
{
    mover *m = arg;
    int rc = cio_sleep_until(m->at);
    return rc < 0 ? rc : cio_scope_cancel(m->sc);
}

TEST(group_scope_deadline_moved_earlier_reaches_children)
{
    job a = {.delay = 10 * CIO_SEC};
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(8 * CIO_SEC), 0));
    mover m = {&sc, cio_test_t0 + CIO_SEC, cio_test_t0 + 2 * CIO_SEC};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, move_deadline, &m));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_EQ(-ECANCELED, cio_group_join(g));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(2 * CIO_SEC, a.end);
    cio_group_free(g);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(group_scope_deadline_moved_later_lets_children_finish)
{
    job a = {.delay = 3 * CIO_SEC, .result = 3};
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0));
    mover m = {&sc, cio_test_t0 + CIO_SEC, cio_test_t0 + 5 * CIO_SEC};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, move_deadline, &m));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(0, a.sleep_rc);
    cio_group_free(g);
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(group_scope_cancel_reaches_children)
{
    job a = {.delay = 10 * CIO_SEC};
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    mover m = {&sc, cio_test_t0 + CIO_SEC, 0};
    cio_task *h;
    ASSERT_OK(cio_spawn(&h, cancel_scope_at, &m));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_EQ(-ECANCELED, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, a.sleep_rc);
    cio_group_free(g);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(h));
    cio_task_free(h);
    return 0;
}

TEST(group_scope_opened_before_cannot_exit_until_join)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_EQ(-EINVAL, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_EQ(0, cio_scope_exit(&sc));
    cio_group_free(g);
    return 0;
}

TEST(group_join_refused_while_scope_opened_inside_is_open)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_EQ(-EINVAL, cio_group_join(g));
    ASSERT_EQ(0, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

/* ---- Nested groups ------------------------------------------------------- */

typedef struct mid {
    job *jobs;
    int njobs;
    int join_rc;
} mid;

static int open_inner_group(void *arg)
{
    mid *m = arg;
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    for (int i = 0; i < m->njobs; i++) {
        char name[16];
        snprintf(name, sizeof name, "gc%d", i);
        spawn_job(g, NULL, name, &m->jobs[i]);
    }
    m->join_rc = cio_group_join(g);
    cio_group_free(g);
    return m->join_rc;
}

TEST(group_nested_failure_propagates_outwards)
{
    job gc[2] = {{.delay = 10 * CIO_SEC},
                 {.delay = CIO_SEC, .result = -EIO, .msg = "deep"}};
    mid m = {gc, 2, 1};
    job sib = {.delay = 10 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_spawn_opts o = {.name = "mid"};
    ASSERT_OK(cio_group_spawn_ex(g, NULL, open_inner_group, &m, &o));
    ASSERT_OK(spawn_job(g, NULL, "sib", &sib));
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-EIO, m.join_rc);
    ASSERT_EQ(-ECANCELED, gc[0].sleep_rc);
    ASSERT_EQ(-ECANCELED, sib.sleep_rc);
    ASSERT_EQ(1, (long long)cio_group_error_count(g));
    const char *what = NULL;
    cio_group_error(g, 0, &what);
    char want[128];
    snprintf(want, sizeof want, "mid: %s", cio_strerror(-EIO));
    ASSERT_STR_EQ(want, what);
    cio_group_free(g);
    return 0;
}

TEST(group_nested_cancel_reaches_grandchildren)
{
    job gc[2] = {{.delay = 10 * CIO_SEC}, {.delay = 10 * CIO_SEC}};
    mid m = {gc, 2, 1};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, open_inner_group, &m));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    /* Seen from the inner group, the cancel came from outside. */
    ASSERT_EQ(-ECANCELED, m.join_rc);
    ASSERT_EQ(-ECANCELED, gc[0].sleep_rc);
    ASSERT_EQ(-ECANCELED, gc[1].sleep_rc);
    cio_group_free(g);
    return 0;
}

TEST(group_nested_task_cancel_reaches_grandchildren)
{
    job gc[1] = {{.delay = 10 * CIO_SEC, .cleanup = CIO_SEC}};
    mid m = {gc, 1, 1};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *tm;
    ASSERT_OK(cio_group_spawn(g, &tm, open_inner_group, &m));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(tm));
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ECANCELED, m.join_rc);
    ASSERT_EQ(-ECANCELED, result_of(tm));
    ASSERT_EQ(-ECANCELED, gc[0].sleep_rc);
    cio_group_free(g);
    return 0;
}

TEST(group_nested_in_one_task_join_innermost_first)
{
    job a = {.delay = CIO_SEC};
    job b = {.delay = 2 * CIO_SEC};
    cio_group *outer, *inner;
    ASSERT_OK(cio_group_new(&outer, 0));
    ASSERT_OK(cio_group_spawn(outer, NULL, work, &a));
    ASSERT_OK(cio_group_new(&inner, 0));
    ASSERT_OK(cio_group_spawn(inner, NULL, work, &b));
    ASSERT_EQ(-EINVAL, cio_group_join(outer));
    ASSERT_EQ(0, cio_group_join(inner));
    ASSERT_EQ(0, cio_group_join(outer));
    ASSERT_TIME(2 * CIO_SEC);
    cio_group_free(inner);
    cio_group_free(outer);
    return 0;
}

TEST(group_nested_in_one_task_outer_cancel_reaches_inner_children)
{
    job a = {.delay = 10 * CIO_SEC};
    job b = {.delay = 10 * CIO_SEC};
    cio_group *outer, *inner;
    ASSERT_OK(cio_group_new(&outer, 0));
    ASSERT_OK(cio_group_spawn(outer, NULL, work, &a));
    ASSERT_OK(cio_group_new(&inner, 0));
    ASSERT_OK(cio_group_spawn(inner, NULL, work, &b));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_group_cancel(outer));
    ASSERT_EQ(-ECANCELED, cio_group_join(inner));
    ASSERT_EQ(0, cio_group_join(outer));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ECANCELED, a.sleep_rc);
    ASSERT_EQ(-ECANCELED, b.sleep_rc);
    cio_group_free(inner);
    cio_group_free(outer);
    return 0;
}

/* ---- cio_group_wait ------------------------------------------------------ */

TEST(group_wait_first_completed)
{
    job a = {.delay = 3 * CIO_SEC, .result = 3};
    job b = {.delay = CIO_SEC, .result = 1};
    job c = {.delay = 2 * CIO_SEC, .result = 2};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_OK(spawn_job(g, NULL, "c", &c));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_COMPLETED));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(b.finished && !a.finished && !c.finished);
    /* Children that finished before the call count. */
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_COMPLETED));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_ALL_COMPLETED));
    ASSERT_TIME(3 * CIO_SEC);
    /* Nobody was cancelled. */
    ASSERT_EQ(0, a.sleep_rc);
    ASSERT_EQ(0, c.sleep_rc);
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(3 * CIO_SEC);
    cio_group_free(g);
    return 0;
}

TEST(group_wait_first_error)
{
    job a = {.delay = CIO_SEC, .result = 1};
    job b = {.delay = 2 * CIO_SEC, .result = -EIO};
    job c = {.delay = 3 * CIO_SEC, .result = 3};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, CIO_GROUP_COLLECT));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_OK(spawn_job(g, NULL, "c", &c));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_ERROR));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_TRUE(!c.finished);
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_ERROR));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(0, c.sleep_rc);
    cio_group_free(g);
    return 0;
}

TEST(group_wait_first_error_without_errors_waits_for_all)
{
    job a = {.delay = CIO_SEC, .result = 1};
    job b = {.delay = 3 * CIO_SEC, .result = 3};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, CIO_GROUP_COLLECT));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_ERROR));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_wait_first_error_in_fail_fast_group_is_cancelled)
{
    /* Without COLLECT a failure cancels the opener's code, the wait
     * included. */
    job a = {.delay = 10 * CIO_SEC};
    job b = {.delay = CIO_SEC, .result = -EIO};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_EQ(-ECANCELED, cio_group_wait(g, CIO_WAIT_FIRST_ERROR));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-EIO, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_wait_all_completed)
{
    job a = {.delay = 2 * CIO_SEC, .result = -EIO};
    job b = {.delay = CIO_SEC, .result = 1};
    job c = {.delay = 3 * CIO_SEC, .result = 3};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, CIO_GROUP_COLLECT));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_OK(spawn_job(g, NULL, "c", &c));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_ALL_COMPLETED));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_TRUE(a.finished && b.finished && c.finished);
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(3 * CIO_SEC);
    cio_group_free(g);
    return 0;
}

TEST(group_wait_with_no_children_returns_at_once)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_COMPLETED));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_ERROR));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_ALL_COMPLETED));
    ASSERT_TIME(0);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_wait_bad_arguments_are_einval)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_EQ(-EINVAL, cio_group_wait(g, -1));
    ASSERT_EQ(-EINVAL, cio_group_wait(g, CIO_WAIT_ALL_COMPLETED + 1));
    ASSERT_EQ(-EINVAL, cio_group_wait(NULL, CIO_WAIT_ALL_COMPLETED));
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_wait_interrupted_by_scope_deadline)
{
    job a = {.delay = 5 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, CIO_GROUP_COLLECT));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_group_wait(g, CIO_WAIT_ALL_COMPLETED));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    /* The scope was inside the group: the child was not cancelled. */
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(5 * CIO_SEC);
    ASSERT_EQ(0, a.sleep_rc);
    cio_group_free(g);
    return 0;
}

TEST(group_wait_in_cancelled_group_checks_first)
{
    job a = {.delay = CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_OK(cio_group_cancel(g));
    /* A child has completed, but the call checks cancellation first. */
    ASSERT_EQ(-ECANCELED, cio_group_wait(g, CIO_WAIT_FIRST_COMPLETED));
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

/* ---- cio_group_next ------------------------------------------------------ */

TEST(group_next_returns_children_in_completion_order)
{
    job a = {.delay = 3 * CIO_SEC, .result = 3};
    job b = {.delay = CIO_SEC, .result = 1};
    job c = {.delay = 2 * CIO_SEC, .result = 2};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta, *tb, *tc, *t;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, &tb, "b", &b));
    ASSERT_OK(spawn_job(g, &tc, "c", &c));
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == tb);
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(1, result_of(t));
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == tc);
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == ta);
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(3, result_of(t));
    ASSERT_EQ(-ECHILD, cio_group_next(g, &t));
    ASSERT_EQ(-ECHILD, cio_group_next(g, &t));
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_next_returns_already_finished_children_at_once)
{
    job a = {.delay = 2 * CIO_SEC};
    job b = {.delay = CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta, *tb, *t;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, &tb, "b", &b));
    ASSERT_OK(cio_sleep(5 * CIO_SEC));
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == tb);
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == ta);
    ASSERT_EQ(-ECHILD, cio_group_next(g, &t));
    ASSERT_TIME(5 * CIO_SEC);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_next_ignores_children_without_handles)
{
    job a = {.delay = CIO_SEC};
    job b = {.delay = 2 * CIO_SEC};
    job c = {.delay = 5 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *tb, *t;
    ASSERT_OK(spawn_job(g, NULL, "a", &a));
    ASSERT_OK(spawn_job(g, &tb, "b", &b));
    ASSERT_OK(spawn_job(g, NULL, "c", &c));
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == tb);
    ASSERT_TIME(2 * CIO_SEC);
    /* None is left to return: no wait for the handle-less child. */
    ASSERT_EQ(-ECHILD, cio_group_next(g, &t));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(0, cio_group_join(g));
    ASSERT_TIME(5 * CIO_SEC);
    cio_group_free(g);
    return 0;
}

TEST(group_next_skips_released_handles)
{
    job a = {.delay = CIO_SEC};
    job b = {.delay = 2 * CIO_SEC};
    job c = {.delay = 3 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta, *tb, *tc, *t;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, &tb, "b", &b));
    ASSERT_OK(spawn_job(g, &tc, "c", &c));
    /* b is released while it runs, a once it has finished. */
    cio_task_free(tb);
    ASSERT_OK(cio_sleep(CIO_SEC + CIO_SEC / 2));
    cio_task_free(ta);
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == tc);
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(-ECHILD, cio_group_next(g, &t));
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_next_on_empty_group_and_bad_arguments)
{
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *t = NULL;
    ASSERT_EQ(-ECHILD, cio_group_next(g, &t));
    ASSERT_EQ(-EINVAL, cio_group_next(NULL, &t));
    ASSERT_EQ(-EINVAL, cio_group_next(g, NULL));
    ASSERT_TRUE(t == NULL);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_next_interrupted_by_cancel)
{
    job a = {.delay = 10 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta, *t;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_group_next(g, &t));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_EQ(0, cio_group_join(g));
    /* The finished child is still there to be returned once. */
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == ta);
    ASSERT_EQ(-ECHILD, cio_group_next(g, &t));
    cio_group_free(g);
    return 0;
}

/* ---- Groups left open ---------------------------------------------------- */

typedef struct leaver {
    cio_group *g;
    job j;
} leaver;

static int leave_group_open(void *arg)
{
    leaver *lv = arg;
    int rc = cio_group_new(&lv->g, 0);
    if (rc < 0)
        return rc;
    rc = cio_group_spawn(lv->g, NULL, work, &lv->j);
    return rc < 0 ? rc : 5;
}

TEST(group_left_open_at_task_return_is_joined_and_reported)
{
    leaver lv = {NULL, {.delay = CIO_SEC, .result = 1}};
    cio_spawn_opts o = {.name = "careless"};
    cio_task *t;
    ASSERT_OK(cio_spawn_ex(&t, leave_group_open, &lv, &o));
    ASSERT_EQ(5, cio_task_join(t));
    /* The task did not finish before its group's child. */
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(lv.j.finished);
    ASSERT_TRUE(strstr(cio_test_reports(), "careless") != NULL);
    ASSERT_TRUE(strstr(cio_test_reports(), "group open") != NULL);
    ASSERT_EQ(0, (long long)cio_group_error_count(lv.g));
    cio_group_free(lv.g);
    cio_task_free(t);
    return 0;
}

TEST(group_left_open_with_failing_child_reports_the_error)
{
    leaver lv = {NULL, {.delay = CIO_SEC, .result = -EIO}};
    cio_spawn_opts o = {.name = "careless"};
    cio_task *t;
    ASSERT_OK(cio_spawn_ex(&t, leave_group_open, &lv, &o));
    ASSERT_EQ(5, cio_task_join(t));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(strstr(cio_test_reports(), "EIO") != NULL);
    ASSERT_EQ(1, (long long)cio_group_error_count(lv.g));
    ASSERT_EQ(-EIO, cio_group_error(lv.g, 0, NULL));
    cio_group_free(lv.g);
    cio_task_free(t);
    return 0;
}

TEST(group_free_without_join_joins_and_reports_error)
{
    job a = {.delay = CIO_SEC, .result = -EIO};
    job b = {.delay = 2 * CIO_SEC, .cleanup = CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, work, &a));
    ASSERT_OK(cio_group_spawn(g, NULL, work, &b));
    cio_test_reports_clear();
    cio_group_free(g);
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_TRUE(b.finished);
    ASSERT_TRUE(strstr(cio_test_reports(), "EIO") != NULL);
    return 0;
}

TEST(group_free_without_join_of_clean_group_reports_nothing)
{
    job a = {.delay = CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, work, &a));
    cio_test_reports_clear();
    cio_group_free(g);
    ASSERT_TIME(CIO_SEC);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

/* ---- Outside a task, allocation failure ---------------------------------- */

static void *group_calls_outside(void *arg)
{
    int *rc = arg;
    cio_group *g = NULL;
    /* Never dereferenced: the calls refuse before looking at it. */
    cio_group *bogus = (cio_group *)&g;
    cio_task *t;
    cio_call call = {never_runs, NULL, 0};
    rc[0] = cio_group_new(&g, 0);
    rc[1] = cio_group_wait(bogus, CIO_WAIT_ALL_COMPLETED);
    rc[2] = cio_group_next(bogus, &t);
    rc[3] = cio_group_join(bogus);
    rc[4] = cio_gather(&call, 1, 0);
    rc[5] = cio_gather_limit(&call, 1, 1, 0);
    return NULL;
}

TEST(group_calls_outside_a_task_are_enotask)
{
    int rc[6] = {0, 0, 0, 0, 0, 0};
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, group_calls_outside, rc));
    ASSERT_EQ(0, pthread_join(th, NULL));
    for (int i = 0; i < 6; i++)
        ASSERT_EQ(CIO_ENOTASK, rc[i]);
    return 0;
}

TEST(group_next_in_cancelled_scope_checks_first)
{
    job a = {.delay = CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta, *t = NULL;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_group_next(g, &t));
    ASSERT_TRUE(t == NULL);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    /* The finished child was not used up by the refused call. */
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == ta);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

TEST(group_new_out_of_memory)
{
    cio_group *g = (cio_group *)&g;
    cio__alloc_fail_at(1);
    int rc = cio_group_new(&g, 0);
    cio__alloc_fail_at(0);
    ASSERT_EQ(-ENOMEM, rc);
    ASSERT_TRUE(g == (cio_group *)&g);
    /* Nothing was left open. */
    ASSERT_OK(cio_sleep(CIO_SEC));
    return 0;
}

static int open_group_in_shield(void *arg)
{
    opener *o = arg;
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    int rc = open_and_join(o);
    cio_scope_exit(&sh);
    return rc;
}

TEST(group_inside_shield_is_not_cancelled_from_outside)
{
    job jobs[1] = {{.delay = 2 * CIO_SEC, .result = 2}};
    opener o = {.jobs = jobs, .njobs = 1, .pre_sleep = CIO_SEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, open_group_in_shield, &o));
    ASSERT_OK(cio_sleep(CIO_SEC / 2));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(0, cio_task_join(t));
    ASSERT_EQ(0, o.pre_rc);
    ASSERT_EQ(0, jobs[0].sleep_rc);
    ASSERT_EQ(2 * CIO_SEC, o.join_at);
    cio_task_free(t);
    return 0;
}

TEST(group_free_releases_child_handles)
{
    job a = {.delay = CIO_SEC, .result = 1};
    job b = {.delay = 2 * CIO_SEC, .result = 2};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ta, *tb, *t;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, &tb, "b", &b));
    ASSERT_OK(cio_group_next(g, &t));
    ASSERT_TRUE(t == ta);
    /* A handle returned by next may be released at once... */
    cio_task_free(t);
    ASSERT_EQ(0, cio_group_join(g));
    /* ...and the others are released by the group. */
    ASSERT_EQ(2, result_of(tb));
    cio_group_free(g);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

static int open_inner_then_join(void *arg)
{
    mid *m = arg;
    return open_inner_group(m);
}

static int open_outer_group(void *arg)
{
    mid *m = arg;
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    cio_group_spawn(g, NULL, open_inner_then_join, m);
    rc = cio_group_join(g);
    cio_group_free(g);
    return rc;
}

TEST(group_opener_cancel_reaches_grandchildren)
{
    job gc[2] = {{.delay = 10 * CIO_SEC, .cleanup = CIO_SEC},
                 {.delay = 10 * CIO_SEC}};
    mid m = {gc, 2, 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, open_outer_group, &m));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(-ECANCELED, m.join_rc);
    ASSERT_EQ(-ECANCELED, gc[0].sleep_rc);
    ASSERT_EQ(-ECANCELED, gc[1].sleep_rc);
    ASSERT_TRUE(gc[0].finished && gc[1].finished);
    cio_task_free(t);
    return 0;
}

TEST(group_wait_first_error_ignores_cancelled_child)
{
    job a = {.delay = 10 * CIO_SEC};
    job b = {.delay = 3 * CIO_SEC};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, CIO_GROUP_COLLECT));
    cio_task *ta;
    ASSERT_OK(spawn_job(g, &ta, "a", &a));
    ASSERT_OK(spawn_job(g, NULL, "b", &b));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(ta));
    ASSERT_EQ(0, cio_group_wait(g, CIO_WAIT_FIRST_ERROR));
    ASSERT_TIME(3 * CIO_SEC);
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    return 0;
}

static int six(void *arg)
{
    (void)arg;
    return 6;
}

TEST(group_child_cancelled_before_running_keeps_its_result)
{
    /* Rule 2 inside a group: the children never suspend, so they finish
     * with their own results although the group was cancelled first. */
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_task *ok;
    ASSERT_OK(cio_group_spawn(g, &ok, six, NULL));
    ASSERT_OK(cio_group_spawn(g, NULL, fail_now, NULL));
    ASSERT_OK(cio_group_cancel(g));
    ASSERT_EQ(-EPROTO, cio_group_join(g));
    ASSERT_EQ(1, (long long)cio_group_error_count(g));
    ASSERT_EQ(6, result_of(ok));
    cio_group_free(g);
    return 0;
}

TEST(group_many_children_cancelled_by_one_failure)
{
    enum { N = 300 };
    static job jobs[N];
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){.delay = (i == N / 2) ? CIO_SEC : 10 * CIO_SEC,
                        .result = (i == N / 2) ? -EIO : 0};
        ASSERT_OK(cio_group_spawn(g, NULL, work, &jobs[i]));
    }
    ASSERT_EQ(-EIO, cio_group_join(g));
    ASSERT_TIME(CIO_SEC);
    for (int i = 0; i < N; i++) {
        ASSERT_TRUE(jobs[i].finished);
        if (i != N / 2)
            ASSERT_EQ(-ECANCELED, jobs[i].sleep_rc);
    }
    ASSERT_EQ(1, (long long)cio_group_error_count(g));
    cio_group_free(g);
    return 0;
}
