/* Tasks: spawn, join, results, names, sleep, yield, cancel, free. */
#include <string.h>

#include "test.h"

static int add_one(void *arg)
{
    int *p = arg;
    return *p + 1;
}

TEST(task_spawn_join_returns_result)
{
    int x = 41;
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, add_one, &x));
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(42, cio_task_join(t));
    ASSERT_TRUE(cio_task_done(t));
    cio_task_free(t);
    return 0;
}

static int sleeper(void *arg)
{
    int64_t ns = *(int64_t *)arg;
    int rc = cio_sleep(ns);
    return rc < 0 ? rc : 7;
}

TEST(task_sleep_uses_virtual_time)
{
    int64_t ns = 5 * CIO_SEC;
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, sleeper, &ns));
    ASSERT_EQ(7, cio_task_join(t));
    ASSERT_TIME(5 * CIO_SEC);
    cio_task_free(t);
    return 0;
}

TEST(task_cancel_wakes_sleeper_with_ecanceled)
{
    int64_t ns = 100 * CIO_SEC;
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, sleeper, &ns));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    ASSERT_TIME(CIO_SEC);
    cio_task_free(t);
    return 0;
}

/* ---- how a task is started and left ----------------------------------
 * A task's first run is a call on its stack; when it ends without having
 * suspended and the context that started it runs next, it leaves by a
 * plain return. These pin that both ways out keep the run order. */

static char order[16];
static int norder;

static int log_a(void *arg)
{
    order[norder++] = *(const char *)arg;
    return 5;
}

TEST(task_ending_in_first_run_resumes_joiner)
{
    for (int i = 0; i < 1000; i++) {
        int x = i;
        cio_task *t;
        ASSERT_OK(cio_spawn(&t, add_one, &x));
        ASSERT_EQ(i + 1, cio_task_join(t));
        cio_task_free(t);
    }
    return 0;
}

TEST(task_ending_in_first_run_keeps_fifo_order)
{
    /* The joiner is woken behind B: B runs before the joiner resumes. */
    norder = 0;
    cio_task *a, *b;
    ASSERT_OK(cio_spawn(&a, log_a, "a"));
    ASSERT_OK(cio_spawn(&b, log_a, "b"));
    ASSERT_EQ(5, cio_task_join(a));
    order[norder++] = 'j';
    ASSERT_EQ(5, cio_task_join(b));
    ASSERT_EQ(3, norder);
    ASSERT_TRUE(memcmp(order, "abj", 3) == 0);
    cio_task_free(a);
    cio_task_free(b);
    return 0;
}

static cio_event start_ev;

static int wake_then_sleep(void *arg)
{
    (void)arg;
    order[norder++] = 's';
    cio_event_set(&start_ev);
    int rc = cio_sleep(CIO_SEC);
    order[norder++] = 'e';
    return rc < 0 ? rc : 9;
}

TEST(task_waking_its_starter_then_suspending)
{
    /* The starter, frozen while the new task runs, resumes on its own
     * once the task suspends, and the task ends later from elsewhere. */
    norder = 0;
    cio_event_init(&start_ev);
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wake_then_sleep, NULL));
    ASSERT_OK(cio_event_wait(&start_ev));
    order[norder++] = 'w';
    ASSERT_EQ(9, cio_task_join(t));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(3, norder);
    ASSERT_TRUE(memcmp(order, "swe", 3) == 0);
    cio_task_free(t);
    return 0;
}

TEST(task_started_by_a_finishing_task)
{
    /* a ends while b is runnable: b starts from a's last switch, which
     * can never be returned to. */
    norder = 0;
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    ASSERT_OK(cio_group_spawn(g, NULL, log_a, "a"));
    ASSERT_OK(cio_group_spawn(g, NULL, log_a, "b"));
    ASSERT_OK(cio_group_spawn(g, NULL, log_a, "c"));
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    ASSERT_EQ(3, norder);
    ASSERT_TRUE(memcmp(order, "abc", 3) == 0);
    return 0;
}
