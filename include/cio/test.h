/* cio/test.h: a test harness for code that runs on cio (what
 * pytest-asyncio is for asyncio).
 *
 *     #include <cio/test.h>
 *
 *     CIO_TEST(sleep_takes_no_wall_time)
 *     {
 *         int64_t t0 = cio_now();
 *         CIO_ASSERT_OK(cio_sleep(10 * CIO_SEC));
 *         CIO_ASSERT_EQ(10 * CIO_SEC, cio_now() - t0);
 *         return 0;
 *     }
 *
 * Link with -lcio_test -lcio (pkg-config cio-test); the library provides
 * main(). Each test body runs as the main task of a fresh loop, in a
 * forked child under a timeout, and fails if it returns non-zero, if an
 * assertion fails, or if at its end
 * - cio allocations made during the test are still live,
 * - file descriptors opened during the test are still open, or
 * - tasks it started are still running (they would be cancelled silently).
 * CIO_TEST uses the virtual clock: every timeout and sleep is instant, so
 * timing logic is tested exactly and fast. CIO_TEST_REALTIME uses the
 * monotonic clock, for real sockets and threads.
 *
 * The runner: `./tests [--list] [--tap] [FILTER]` runs the tests whose
 * name contains FILTER (or $CIO_TEST_FILTER) and prints `ok  NAME`,
 * `FAIL NAME`, `skip NAME (why)` and a summary, or TAP 13 with --tap.
 * It exits 0 if all ran tests passed, 1 otherwise (or if none ran), so it
 * is a ctest/CTest-friendly single test. Environment: CIO_TEST_TIMEOUT
 * (seconds per test, default 60), CIO_TEST_NOFORK=1 (run in-process, for
 * a debugger), CIO_TEST_LIGHT=1 (skip CIO_TEST_HEAVY cases),
 * CIO_TEST_VERBOSE=1 (echo captured reports).
 *
 * None of this is thread-safe; tests run one at a time.
 */
#ifndef CIO_TEST_H
#define CIO_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cio.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*cio_test_fn)(void);

/* Setup and teardown around the tests that name the fixture. Both run
 * inside the test's task (they may suspend: open a connection, start a
 * server). `setup` returns 0 and may store a context for the test
 * (cio_test_ctx()); non-zero fails the test without running it.
 * `teardown` runs after the body whatever its result (not after a
 * failed setup). */
typedef struct cio_test_fixture {
    int (*setup)(void **ctx);
    void (*teardown)(void *ctx);
} cio_test_fixture;

#define CIO_TEST_HEAVY 1u  /* skipped when CIO_TEST_LIGHT is set */
#define CIO_TEST_NATIVE 2u /* skipped under valgrind */
/* The body leaves tasks running on purpose (to test what the loop's close
 * does with them): no "left N task(s) running" failure. */
#define CIO_TEST_LEAVES_TASKS 4u

/* A body returns this (through CIO_TEST_SKIP) to be counted as skipped. */
#define CIO_TEST_SKIPPED 77

/* Register a test (the macros below do this before main). */
void cio_test_register(const char *name, cio_test_fn fn, int clock,
                       unsigned flags, const cio_test_fixture *fixture);

#define CIO_TEST_DEFINE(name, clock, flags, fixture)               \
    static int cio_test_##name(void);                              \
    __attribute__((constructor)) static void cio_test_reg_##name(void) \
    {                                                              \
        cio_test_register(#name, cio_test_##name, clock, flags,    \
                          fixture);                                \
    }                                                              \
    static int cio_test_##name(void)

/* A test on the virtual clock. */
#define CIO_TEST(name) CIO_TEST_DEFINE(name, CIO_CLOCK_VIRTUAL, 0, NULL)
/* A test on the real (monotonic) clock. */
#define CIO_TEST_REALTIME(name) \
    CIO_TEST_DEFINE(name, CIO_CLOCK_MONOTONIC, 0, NULL)
/* A test with a fixture (a `const cio_test_fixture *`), virtual clock. */
#define CIO_TEST_F(name, fixture) \
    CIO_TEST_DEFINE(name, CIO_CLOCK_VIRTUAL, 0, fixture)
#define CIO_TEST_F_REALTIME(name, fixture) \
    CIO_TEST_DEFINE(name, CIO_CLOCK_MONOTONIC, 0, fixture)

/* The context the running test's fixture set up, or NULL. */
void *cio_test_ctx(void);

/* The loop time when the running test's body started. */
int64_t cio_test_start_time(void);

/* Lines reported through cio's reporter during the running test (errors
 * never retrieved, deadlocks, ...), one per line; cleared with
 * cio_test_reports_clear. Never NULL. */
const char *cio_test_reports(void);
void cio_test_reports_clear(void);

/* File descriptors open in this process now, or -1. */
int cio_test_open_fds(void);

/* The value of the environment variable `var` naming a test server. NULL
 * when it is unset or empty: the test should skip (CIO_TEST_SERVER does).
 * With CIO_TEST_REQUIRE_SERVERS=1 an unset variable fails the test
 * instead (for CI, where the servers must be there). */
const char *cio_test_server(const char *var);

/* ---- assertions: on failure, print where and both values, and return
 * -1 from the test body ---------------------------------------------- */

#define CIO_TEST_FAIL(...)                                    \
    do {                                                      \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);     \
        fprintf(stderr, __VA_ARGS__);                         \
        fprintf(stderr, "\n");                                \
        return -1;                                            \
    } while (0)

/* Skip the running test, saying why. */
#define CIO_TEST_SKIP(why)                                    \
    do {                                                      \
        printf("  skip: %s\n", (why));                        \
        return CIO_TEST_SKIPPED;                              \
    } while (0)

/* The server named by env `var`, or skip the test (see cio_test_server). */
#define CIO_TEST_SERVER(var)                                  \
    ({                                                        \
        const char *srv_ = cio_test_server(var);              \
        if (srv_ == NULL)                                     \
            return CIO_TEST_SKIPPED;                          \
        srv_;                                                 \
    })

/* Integers (error codes print with their names). */
#define CIO_ASSERT_EQ(expected, actual)                                    \
    do {                                                                   \
        long long e_ = (long long)(expected), a_ = (long long)(actual);    \
        if (e_ != a_)                                                      \
            CIO_TEST_FAIL("ASSERT_EQ(%s, %s): expected %lld (%s), got %lld (%s)", \
                          #expected, #actual, e_,                          \
                          e_ < 0 ? cio_err_name((int)e_) : "", a_,         \
                          a_ < 0 ? cio_err_name((int)a_) : "");            \
    } while (0)
#define CIO_ASSERT_NE(a, b)                                                \
    do {                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                \
        if (a_ == b_)                                                      \
            CIO_TEST_FAIL("ASSERT_NE(%s, %s): both %lld", #a, #b, a_);     \
    } while (0)
#define CIO_ASSERT_TRUE(c)                                                 \
    do {                                                                   \
        if (!(c))                                                          \
            CIO_TEST_FAIL("ASSERT_TRUE(%s) failed", #c);                   \
    } while (0)
/* A cio call succeeded (>= 0); prints the error name otherwise. */
#define CIO_ASSERT_OK(x)                                                   \
    do {                                                                   \
        long long r_ = (long long)(x);                                     \
        if (r_ < 0)                                                        \
            CIO_TEST_FAIL("ASSERT_OK(%s): %s (%lld)", #x,                  \
                          cio_err_name((int)r_), r_);                      \
    } while (0)
#define CIO_ASSERT_STR_EQ(expected, actual)                                \
    do {                                                                   \
        const char *e_ = (expected), *a_ = (actual);                       \
        if (e_ == NULL || a_ == NULL || strcmp(e_, a_) != 0)               \
            CIO_TEST_FAIL("ASSERT_STR_EQ(%s, %s): expected \"%s\", got \"%s\"", \
                          #expected, #actual, e_ ? e_ : "(null)",          \
                          a_ ? a_ : "(null)");                             \
    } while (0)
/* Loop time since the body started (exact on the virtual clock). */
#define CIO_ASSERT_TIME(expected_ns) \
    CIO_ASSERT_EQ((int64_t)(expected_ns), cio_now() - cio_test_start_time())

#ifdef __cplusplus
}
#endif
#endif
