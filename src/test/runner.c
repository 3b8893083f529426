/* The runner behind cio/test.h: main() for test programs (libcio_test). */
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio/test.h"
#include "internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define MAX_TESTS 1024

typedef struct test_case {
    const char *name;
    cio_test_fn fn;
    int clock;
    unsigned flags;
    const cio_test_fixture *fixture;
} test_case;

static test_case tests[MAX_TESTS];
static int ntests;
static int64_t started;
static void *fixture_ctx;
static char reports[16384];
static size_t reports_len;

/* The old name of cio_test_start_time(), kept for cio's own tests. */
int64_t cio_test_t0;

void cio_test_register(const char *name, cio_test_fn fn, int clock,
                       unsigned flags, const cio_test_fixture *fixture)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "cio_test: more than %d tests\n", MAX_TESTS);
        exit(2);
    }
    tests[ntests++] = (test_case){name, fn, clock, flags, fixture};
}

void *cio_test_ctx(void)
{
    return fixture_ctx;
}

int64_t cio_test_start_time(void)
{
    return started;
}

static void capture(const char *line, void *arg)
{
    (void)arg;
    size_t n = strlen(line);
    if (reports_len + n + 2 < sizeof reports) {
        memcpy(reports + reports_len, line, n);
        reports_len += n;
        reports[reports_len++] = '\n';
        reports[reports_len] = '\0';
    }
    if (getenv("CIO_TEST_VERBOSE"))
        fprintf(stderr, "    report: %s\n", line);
}

const char *cio_test_reports(void)
{
    return reports;
}

void cio_test_reports_clear(void)
{
    reports_len = 0;
    reports[0] = '\0';
}

int cio_test_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

const char *cio_test_server(const char *var)
{
    const char *v = getenv(var);
    if (v && *v)
        return v;
    if (getenv("CIO_TEST_REQUIRE_SERVERS")) {
        fprintf(stderr, "  %s is not set: no test server\n", var);
        exit(1);
    }
    printf("  skip: %s is not set\n", var);
    return NULL;
}

/* The test's main task: fixture, body, and the check for tasks left. */
static int body(void *arg)
{
    const test_case *tc = arg;
    fixture_ctx = NULL;
    if (tc->fixture && tc->fixture->setup) {
        int rc = tc->fixture->setup(&fixture_ctx);
        if (rc != 0) {
            fprintf(stderr, "  %s: fixture setup failed: %s\n", tc->name,
                    rc < 0 ? cio_err_name(rc) : "non-zero");
            return rc < 0 ? rc : -1;
        }
    }
    started = cio_test_t0 = cio_now();
    int rc = tc->fn();
    if (tc->fixture && tc->fixture->teardown)
        tc->fixture->teardown(fixture_ctx);
    fixture_ctx = NULL;
    cio_stats st;
    if (rc == 0 && !(tc->flags & CIO_TEST_LEAVES_TASKS) &&
        cio_stats_get(&st) == 0 && st.tasks_alive > 1) {
        fprintf(stderr, "  %s left %llu task(s) running:\n", tc->name,
                (unsigned long long)st.tasks_alive - 1);
        fflush(stderr);
        cio_task_dump(2);
        rc = -1;
    }
    return rc;
}

/* 0 passed, 1 failed, CIO_TEST_SKIPPED skipped. */
static int run_one(const test_case *tc)
{
    cio_set_reporter(capture, NULL);
    cio_test_reports_clear();
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.clock = tc->clock;
    long before = cio__alloc_live();
    int fds = cio_test_open_fds();
    int rc = cio_run_config(&cfg, body, (void *)tc);
    long leaked = cio__alloc_live() - before;
    int fd_leaked = cio_test_open_fds() - fds;
    if (rc == CIO_TEST_SKIPPED)
        return CIO_TEST_SKIPPED;
    if (rc != 0) {
        fprintf(stderr, "  %s returned %d (%s)\n", tc->name, rc,
                cio_err_name(rc));
        return 1;
    }
    if (leaked != 0) {
        fprintf(stderr, "  %s leaked %ld cio allocation(s)\n", tc->name,
                leaked);
        return 1;
    }
    if (fd_leaked != 0) {
        fprintf(stderr, "  %s leaked %d file descriptor(s)\n", tc->name,
                fd_leaked);
        return 1;
    }
    return 0;
}

static const char *skip_reason(const test_case *tc)
{
    if ((tc->flags & CIO_TEST_HEAVY) && getenv("CIO_TEST_LIGHT"))
        return "heavy";
    if ((tc->flags & CIO_TEST_NATIVE) && RUNNING_ON_VALGRIND)
        return "not under valgrind";
    return NULL;
}

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--list] [--tap] [FILTER]\n", prog);
}

int main(int argc, char **argv)
{
    const char *filter = getenv("CIO_TEST_FILTER");
    bool list = false, tap = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            list = true;
        } else if (strcmp(argv[i], "--tap") == 0) {
            tap = true;
        } else if (argv[i][0] == '-') {
            usage(argv[0]);
            return 2;
        } else {
            filter = argv[i];
        }
    }
    bool fork_each = getenv("CIO_TEST_NOFORK") == NULL;
    unsigned timeout = getenv("CIO_TEST_TIMEOUT")
                           ? (unsigned)atoi(getenv("CIO_TEST_TIMEOUT"))
                           : 60;
    int selected = 0;
    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        selected++;
        if (list)
            printf("%s\n", tests[i].name);
    }
    if (list)
        return 0;
    if (tap)
        printf("TAP version 13\n1..%d\n", selected);
    int failed = 0, ran = 0, skipped = 0, n = 0;
    for (int i = 0; i < ntests; i++) {
        const test_case *tc = &tests[i];
        if (filter && !strstr(tc->name, filter))
            continue;
        n++;
        const char *why = skip_reason(tc);
        if (why) {
            skipped++;
            if (tap)
                printf("ok %d - %s # SKIP %s\n", n, tc->name, why);
            else
                printf("skip %s (%s)\n", tc->name, why);
            continue;
        }
        int status = 0;
        if (fork_each) {
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                if (tap)
                    dup2(2, 1); /* stdout carries TAP lines only */
                alarm(timeout);
                exit(run_one(tc));
            }
            waitpid(pid, &status, 0);
        } else {
            status = run_one(tc) << 8;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == CIO_TEST_SKIPPED) {
            skipped++;
            if (tap)
                printf("ok %d - %s # SKIP\n", n, tc->name);
            else
                printf("skip %s\n", tc->name);
            continue;
        }
        ran++;
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && WIFSIGNALED(status))
            fprintf(stderr, "  %s killed by signal %d%s\n", tc->name,
                    WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
        if (tap)
            printf("%s %d - %s\n", ok ? "ok" : "not ok", n, tc->name);
        else
            printf("%s %s\n", ok ? "ok  " : "FAIL", tc->name);
        failed += !ok;
    }
    if (!tap)
        printf("%d/%d passed%s\n", ran - failed, ran,
               skipped ? " (some skipped)" : "");
    return failed ? 1 : (ran || skipped ? 0 : 1);
}
