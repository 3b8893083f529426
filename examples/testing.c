/* examples/testing.c: testing async code (pytest-asyncio for C).
 *
 * A test program built on cio/test.h and linked with libcio_test, which
 * provides main(): `./testing [--list] [--tap] [FILTER]`. Each test runs
 * as a task in a fresh loop, in its own process, and fails on a failed
 * assertion, a leaked task, fd or cio allocation, or a timeout. On the
 * virtual clock (CIO_TEST) an hour of sleeping takes no time, so the
 * timeout logic below is tested exactly and instantly. */
#include <cio/test.h>

/* The code under test: fetch with a per-try timeout and retries. */
typedef struct flaky {
    int fail_first; /* this many calls hang */
    int calls;
} flaky;

static int fetch(void *arg)
{
    flaky *f = arg;
    if (++f->calls <= f->fail_first)
        return cio_sleep(CIO_NEVER); /* a peer that never answers */
    return cio_sleep(100 * CIO_MSEC) < 0 ? -ECANCELED : 42;
}

static int fetch_with_retry(flaky *f, int tries, int64_t per_try)
{
    int rc = -ETIMEDOUT;
    for (int i = 0; i < tries && rc == -ETIMEDOUT; i++) {
        cio_task *t;
        rc = cio_spawn(&t, fetch, f);
        if (rc < 0)
            return rc;
        rc = cio_wait_for(t, per_try); /* cancels it on timeout */
        cio_task_free(t);
    }
    return rc;
}

CIO_TEST(retry_succeeds_after_two_timeouts)
{
    flaky f = {.fail_first = 2};
    CIO_ASSERT_EQ(42, fetch_with_retry(&f, 3, CIO_SEC));
    CIO_ASSERT_EQ(3, f.calls);
    /* Two full timeouts, then the 100 ms answer: exact, in no time. */
    CIO_ASSERT_TIME(2 * CIO_SEC + 100 * CIO_MSEC);
    return 0;
}

CIO_TEST(retry_gives_up_with_timeout)
{
    flaky f = {.fail_first = 5};
    CIO_ASSERT_EQ(-ETIMEDOUT, fetch_with_retry(&f, 3, CIO_SEC));
    CIO_ASSERT_EQ(3, f.calls);
    CIO_ASSERT_TIME(3 * CIO_SEC);
    return 0;
}

/* A fixture: setup and teardown run in the test's task and may suspend
 * (start a server, open a connection). */
static int start_queue(void **ctx)
{
    return cio_queue_new((cio_queue **)ctx, CIO_QUEUE_FIFO, 2, NULL);
}

static void stop_queue(void *ctx)
{
    cio_queue_free(ctx);
}

static const cio_test_fixture queue_fixture = {start_queue, stop_queue};

CIO_TEST_F(bounded_queue_applies_backpressure, &queue_fixture)
{
    cio_queue *q = cio_test_ctx();
    CIO_ASSERT_OK(cio_queue_put(q, "a"));
    CIO_ASSERT_OK(cio_queue_put(q, "b"));
    cio_scope sc;
    CIO_ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    CIO_ASSERT_EQ(-ECANCELED, cio_queue_put(q, "c")); /* full: waits */
    CIO_ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    void *item;
    CIO_ASSERT_OK(cio_queue_get(q, &item));
    CIO_ASSERT_STR_EQ("a", item);
    return 0;
}
