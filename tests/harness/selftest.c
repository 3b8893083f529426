/* The public harness (cio/test.h) tested from the outside: a program
 * built the way users build theirs, run by check.py, which asserts on
 * what the runner prints. With CIO_SELFTEST_BAD=1 the cases that must
 * fail are registered too. */
#include <fcntl.h>
#include <unistd.h>

#include <cio/test.h>

/* ---- cases that pass ----------------------------------------------------- */

CIO_TEST(virtual_clock_makes_sleep_instant)
{
    CIO_ASSERT_OK(cio_sleep(3600 * CIO_SEC));
    CIO_ASSERT_TIME(3600 * CIO_SEC);
    return 0;
}

typedef struct counter {
    int setups;
    cio_event ready;
} counter;

/* Setup and teardown may suspend. */
static int fixture_setup(void **ctx)
{
    counter *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    int rc = cio_sleep(CIO_MSEC);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->setups = 1;
    *ctx = c;
    return 0;
}

static void fixture_teardown(void *ctx)
{
    cio_sleep(CIO_MSEC);
    printf("  teardown ran\n");
    free(ctx);
}

static const cio_test_fixture fixture = {fixture_setup, fixture_teardown};

CIO_TEST_F(fixture_context_reaches_the_body, &fixture)
{
    counter *c = cio_test_ctx();
    CIO_ASSERT_TRUE(c != NULL);
    CIO_ASSERT_EQ(1, c->setups);
    return 0;
}

CIO_TEST(skip_says_why)
{
    CIO_TEST_SKIP("nothing to test here");
}

CIO_TEST(server_from_the_environment_or_skip)
{
    const char *addr = CIO_TEST_SERVER("CIO_SELFTEST_NO_SUCH_SERVER");
    CIO_ASSERT_TRUE(addr != NULL);
    return 0;
}

/* ---- cases that must fail --------------------------------------------- */

static int forever(void *arg)
{
    (void)arg;
    return cio_sleep(CIO_NEVER);
}

CIO_TEST(bad_assertion_prints_both_values)
{
    if (!getenv("CIO_SELFTEST_BAD"))
        return 0;
    CIO_ASSERT_EQ(-ETIMEDOUT, cio_sleep(0));
    return 0;
}

CIO_TEST(bad_leaves_a_task_running)
{
    if (!getenv("CIO_SELFTEST_BAD"))
        return 0;
    cio_spawn_opts o = {.name = "forgotten"};
    return cio_spawn_ex(NULL, forever, NULL, &o);
}

CIO_TEST(bad_leaks_a_descriptor)
{
    if (!getenv("CIO_SELFTEST_BAD"))
        return 0;
    return open("/dev/null", O_RDONLY | O_CLOEXEC) < 0 ? -1 : 0;
}

CIO_TEST_REALTIME(bad_runs_past_its_timeout)
{
    if (!getenv("CIO_SELFTEST_BAD"))
        return 0;
    sleep(5); /* CIO_TEST_TIMEOUT=1 in check.py */
    return 0;
}
