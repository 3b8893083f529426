/* cio's own tests: the public harness (cio/test.h) under short names,
 * plus traces. Each TEST body runs as the main task of a fresh loop, in a
 * forked child under a timeout; the runner fails the test if the body
 * returns non-zero, cio_run fails, or the test leaks a cio allocation, a
 * file descriptor or a running task. TEST uses the virtual clock
 * (timeouts take no wall time); TEST_REALTIME the monotonic clock.
 * `./test_x name` runs the tests whose name contains `name`. */
#ifndef CIO_TESTS_TEST_H
#define CIO_TESTS_TEST_H

#include "cio.h"
#include "cio/test.h"

#define TEST(name) CIO_TEST(name)
#define TEST_REALTIME(name) CIO_TEST_REALTIME(name)
/* Real-clock tests that valgrind cannot host (it keeps descriptors of
 * its own at the top of the table, so RLIMIT_NOFILE games misfire). */
#define TEST_NATIVE(name) \
    CIO_TEST_DEFINE(name, CIO_CLOCK_MONOTONIC, CIO_TEST_NATIVE, NULL)
/* Big workloads (a million tasks) that valgrind would take minutes on. */
#define TEST_HEAVY(name) \
    CIO_TEST_DEFINE(name, CIO_CLOCK_VIRTUAL, CIO_TEST_HEAVY, NULL)

#define TEST_FAIL_(...) CIO_TEST_FAIL(__VA_ARGS__)
#define ASSERT_EQ(expected, actual) CIO_ASSERT_EQ(expected, actual)
#define ASSERT_NE(a, b) CIO_ASSERT_NE(a, b)
#define ASSERT_TRUE(c) CIO_ASSERT_TRUE(c)
#define ASSERT_OK(x) CIO_ASSERT_OK(x)
#define ASSERT_STR_EQ(expected, actual) CIO_ASSERT_STR_EQ(expected, actual)
/* Virtual time since the test started, for timing assertions. */
#define ASSERT_TIME(expected_ns) CIO_ASSERT_TIME(expected_ns)

/* The loop time when the body started (cio_test_start_time()). */
extern int64_t cio_test_t0;

/* The address of a test server from the environment variable `var`
 * (CIO_TEST_REDIS, CIO_TEST_PG: set by tests/servers.sh, which `make test`
 * runs under), or skip the test when it is unset. With
 * CIO_TEST_REQUIRE_SERVERS=1 (CI) an unset variable fails the test. */
#define TEST_SERVER(var) CIO_TEST_SERVER(var)

/* A trace: the order in which tasks did something, and an assertion on
 * it that prints both sequences when they differ. */
#define TRACE_MAX 1024
typedef struct trace {
    int n;
    int v[TRACE_MAX];
} trace;

static inline void trace_add(trace *tr, int x)
{
    if (tr->n < TRACE_MAX)
        tr->v[tr->n++] = x;
}

static inline int trace_check(const trace *tr, const int *exp, int n,
                              const char *file, int line)
{
    bool same = tr->n == n;
    for (int i = 0; same && i < n; i++)
        same = tr->v[i] == exp[i];
    if (same)
        return 0;
    fprintf(stderr, "  %s:%d: trace mismatch\n    expected:", file, line);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", exp[i]);
    fprintf(stderr, "\n    got:     ");
    for (int i = 0; i < tr->n; i++)
        fprintf(stderr, " %d", tr->v[i]);
    fprintf(stderr, "\n");
    return -1;
}

#define ASSERT_TRACE(tr, ...)                                             \
    do {                                                                  \
        static const int exp_[] = {__VA_ARGS__};                          \
        if (trace_check((tr), exp_, (int)(sizeof exp_ / sizeof exp_[0]), \
                        __FILE__, __LINE__) != 0)                         \
            return -1;                                                    \
    } while (0)

#define ASSERT_TRACE_EMPTY(tr) ASSERT_EQ(0, (tr)->n)

#endif
