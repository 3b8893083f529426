/* Tasks: spawn, join, results, names, sleep, yield, cancel, free. */
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
