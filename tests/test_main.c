/* The runner behind tests/test.h. */
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

long cio__alloc_live(void);

#define MAX_TESTS 512

typedef struct test_case {
    const char *name;
    cio_test_fn fn;
    int clock;
    unsigned flags;
} test_case;

static test_case tests[MAX_TESTS];
static int ntests;
int64_t cio_test_t0;
static char reports[16384];
static size_t reports_len;

void cio_test_register(const char *name, cio_test_fn fn, int clock,
                       unsigned flags)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests++] = (test_case){name, fn, clock, flags};
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

int trace_check(const trace *tr, const int *exp, int n, const char *file,
                int line)
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
        fprintf(stderr, "  %s is not set: no test server (see tests/servers.sh)\n",
                var);
        exit(1);
    }
    printf("  skip: %s is not set (run under tests/servers.sh)\n", var);
    return NULL;
}

static int body(void *arg)
{
    const test_case *tc = arg;
    cio_test_t0 = cio_now();
    return tc->fn();
}

static int run_one(const test_case *tc)
{
    cio_set_reporter(capture, NULL);
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.clock = tc->clock;
    long before = cio__alloc_live();
    int fds = cio_test_open_fds();
    int rc = cio_run_config(&cfg, body, (void *)tc);
    long leaked = cio__alloc_live() - before;
    int fd_leaked = cio_test_open_fds() - fds;
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

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : getenv("CIO_TEST_FILTER");
    bool fork_each = getenv("CIO_TEST_NOFORK") == NULL;
    unsigned timeout = getenv("CIO_TEST_TIMEOUT")
                           ? (unsigned)atoi(getenv("CIO_TEST_TIMEOUT"))
                           : 60;
    int failed = 0, ran = 0;
    for (int i = 0; i < ntests; i++) {
        const test_case *tc = &tests[i];
        if (filter && !strstr(tc->name, filter))
            continue;
        if ((tc->flags & CIO_TEST_HEAVY) && getenv("CIO_TEST_LIGHT")) {
            printf("skip %s (heavy)\n", tc->name);
            continue;
        }
        if ((tc->flags & CIO_TEST_NATIVE) && RUNNING_ON_VALGRIND) {
            printf("skip %s (not under valgrind)\n", tc->name);
            continue;
        }
        ran++;
        int status = 0;
        if (fork_each) {
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                alarm(timeout);
                exit(run_one(tc));
            }
            waitpid(pid, &status, 0);
        } else {
            status = run_one(tc) << 8;
        }
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && WIFSIGNALED(status))
            fprintf(stderr, "  %s killed by signal %d%s\n", tc->name,
                    WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
        printf("%s %s\n", ok ? "ok  " : "FAIL", tc->name);
        failed += !ok;
    }
    printf("%d/%d passed\n", ran - failed, ran);
    return failed ? 1 : (ran ? 0 : 1);
}
