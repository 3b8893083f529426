/* A small test runner: each TEST body runs as the main task of a fresh
 * loop, in a forked child under a timeout; the runner fails the test if
 * the body returns non-zero, cio_run fails, or cio leaks an allocation.
 * TEST uses the virtual clock (timeouts take no wall time); TEST_REALTIME
 * uses the monotonic clock. `./test_x name` runs the tests whose name
 * contains `name`. */
#ifndef CIO_TEST_H
#define CIO_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cio.h"

typedef int (*cio_test_fn)(void);
void cio_test_register(const char *name, cio_test_fn fn, int clock,
                       unsigned flags);

#define CIO_TEST_HEAVY 1u /* skipped when CIO_TEST_LIGHT is set (valgrind) */
#define CIO_TEST_NATIVE 2u /* skipped under valgrind */

#define CIO_TEST_DEFINE(name, clock, flags)                        \
    static int test_##name(void);                                  \
    __attribute__((constructor)) static void register_##name(void) \
    {                                                              \
        cio_test_register(#name, test_##name, clock, flags);       \
    }                                                              \
    static int test_##name(void)

#define TEST(name) CIO_TEST_DEFINE(name, CIO_CLOCK_VIRTUAL, 0)
#define TEST_REALTIME(name) CIO_TEST_DEFINE(name, CIO_CLOCK_MONOTONIC, 0)
/* Real-clock tests that valgrind cannot host (it keeps descriptors of
 * its own at the top of the table, so RLIMIT_NOFILE games misfire). */
#define TEST_NATIVE(name) \
    CIO_TEST_DEFINE(name, CIO_CLOCK_MONOTONIC, CIO_TEST_NATIVE)
/* Big workloads (a million tasks) that valgrind would take minutes on. */
#define TEST_HEAVY(name) \
    CIO_TEST_DEFINE(name, CIO_CLOCK_VIRTUAL, CIO_TEST_HEAVY)

#define TEST_FAIL_(...)                                       \
    do {                                                      \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);     \
        fprintf(stderr, __VA_ARGS__);                         \
        fprintf(stderr, "\n");                                \
        return -1;                                            \
    } while (0)

/* ASSERT_EQ(expected, actual): integers; prints both (and error names
 * when they are negative). */
#define ASSERT_EQ(expected, actual)                                         \
    do {                                                                    \
        long long e_ = (long long)(expected), a_ = (long long)(actual);     \
        if (e_ != a_)                                                       \
            TEST_FAIL_("ASSERT_EQ(%s, %s): expected %lld (%s), got %lld (%s)", \
                       #expected, #actual, e_,                              \
                       e_ < 0 ? cio_err_name((int)e_) : "", a_,              \
                       a_ < 0 ? cio_err_name((int)a_) : "");                 \
    } while (0)
#define ASSERT_NE(a, b)                                                     \
    do {                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                 \
        if (a_ == b_)                                                       \
            TEST_FAIL_("ASSERT_NE(%s, %s): both %lld", #a, #b, a_);         \
    } while (0)
#define ASSERT_TRUE(c)                                                      \
    do {                                                                    \
        if (!(c))                                                           \
            TEST_FAIL_("ASSERT_TRUE(%s) failed", #c);                       \
    } while (0)
#define ASSERT_OK(x)                                                        \
    do {                                                                    \
        long long r_ = (long long)(x);                                      \
        if (r_ < 0)                                                         \
            TEST_FAIL_("ASSERT_OK(%s): %s (%lld)", #x,                      \
                       cio_err_name((int)r_), r_);                          \
    } while (0)
#define ASSERT_STR_EQ(expected, actual)                                     \
    do {                                                                    \
        const char *e_ = (expected), *a_ = (actual);                        \
        if (e_ == NULL || a_ == NULL || strcmp(e_, a_) != 0)                \
            TEST_FAIL_("ASSERT_STR_EQ(%s, %s): expected \"%s\", got \"%s\"", \
                       #expected, #actual, e_ ? e_ : "(null)",              \
                       a_ ? a_ : "(null)");                                 \
    } while (0)
/* Virtual time since the test started, for timing assertions. */
#define ASSERT_TIME(expected_ns)                                            \
    ASSERT_EQ((int64_t)(expected_ns), cio_now() - cio_test_t0)

extern int64_t cio_test_t0;

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

int trace_check(const trace *tr, const int *exp, int n, const char *file,
                int line);

#define ASSERT_TRACE(tr, ...)                                             \
    do {                                                                  \
        static const int exp_[] = {__VA_ARGS__};                          \
        if (trace_check((tr), exp_, (int)(sizeof exp_ / sizeof exp_[0]), \
                        __FILE__, __LINE__) != 0)                         \
            return -1;                                                    \
    } while (0)

#define ASSERT_TRACE_EMPTY(tr) ASSERT_EQ(0, (tr)->n)

/* File descriptors open in this process now. */
int cio_test_open_fds(void);

/* The address of a test server from the environment variable `var`
 * (CIO_TEST_REDIS, CIO_TEST_PG: set by tests/servers.sh, which `make test`
 * runs under). NULL when unset: the caller skips (TEST_SERVER returns 0
 * from the test). With CIO_TEST_REQUIRE_SERVERS=1 (CI) an unset variable
 * fails the test instead. */
const char *cio_test_server(const char *var);
#define TEST_SERVER(var)                            \
    ({                                              \
        const char *srv_ = cio_test_server(var);    \
        if (srv_ == NULL)                           \
            return 0;                               \
        srv_;                                       \
    })

/* Reports (cio__report lines) captured during the running test. */
const char *cio_test_reports(void);
void cio_test_reports_clear(void);

#endif
