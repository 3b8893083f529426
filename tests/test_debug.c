/* Debug helpers: the task tree, the stack overflow report, SIGUSR1. */
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

static int nap(void *arg)
{
    return cio_sleep(*(int64_t *)arg);
}

static int read_all(int fd, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    return (int)len;
}

TEST(debug_task_dump_shows_the_tree)
{
    int64_t long_nap = 5 * CIO_SEC;
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_spawn_opts o = {.name = "sleepy-child"};
    ASSERT_OK(cio_group_spawn_ex(g, NULL, nap, &long_nap, &o));
    ASSERT_OK(cio_group_spawn_ex(g, NULL, nap, &long_nap, &o));
    ASSERT_OK(cio_wait_all_blocked());
    int p[2];
    ASSERT_EQ(0, pipe(p));
    ASSERT_EQ(3, cio_task_dump(p[1]));
    close(p[1]);
    char out[4096];
    ASSERT_TRUE(read_all(p[0], out, sizeof out) > 0);
    close(p[0]);
    ASSERT_TRUE(strstr(out, "task 1 \"main\" running") != NULL);
    ASSERT_TRUE(strstr(out, "group 0x") != NULL);
    ASSERT_TRUE(strstr(out, "\"sleepy-child\" waiting on sleep") != NULL);
    ASSERT_TRUE(strstr(out, "wakes in 5.000 s") != NULL);
    cio_group_cancel(g);
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    ASSERT_EQ(-EBADF, cio_task_dump(-1));
    return 0;
}

static int deep(int depth)
{
    volatile char buf[256];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)depth;
    if (depth > 1 << 20)
        return buf[0];
    return deep(depth + 1) + buf[0];
}

static int overflow(void *arg)
{
    (void)arg;
    return deep(0);
}

static int overflow_main(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn_opts o = {.name = "deep-recursion", .stack_size = 16384};
    if (cio_spawn_ex(&t, overflow, NULL, &o) == 0)
        cio_task_join(t);
    return 0;
}

static int usr1_main(void *arg)
{
    (void)arg;
    raise(SIGUSR1);
    return cio_sleep(10 * CIO_MSEC);
}

/* Run `fn` in a child's debug-mode loop; its stderr goes to `out`. */
static int debug_child(cio_task_fn fn, char *out, size_t size)
{
    int p[2];
    if (pipe(p) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        cio__loop = NULL; /* the parent's loop is not ours */
        cio_set_reporter(NULL, NULL); /* reports to stderr, not the runner */
        alarm(20);
        cio_config cfg;
        cio_config_init(&cfg);
        cfg.debug = 1;
        _exit(cio_run_config(&cfg, fn, NULL) == 0 ? 0 : 3);
    }
    close(p[1]);
    read_all(p[0], out, size);
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

/* Run `fn` as a task named `name` (stack `stack`, 0: default) and
 * return its result. */
static int run_named(const char *name, cio_task_fn fn, size_t stack)
{
    cio_task *t;
    cio_spawn_opts o = {.name = name, .stack_size = stack};
    int rc = cio_spawn_ex(&t, fn, NULL, &o);
    if (rc == 0) {
        rc = cio_task_join(t);
        cio_task_free(t);
    }
    return rc;
}

TEST_REALTIME(debug_stack_overflow_names_the_task)
{
    char out[4096];
    int st = debug_child(overflow_main, out, sizeof out);
    ASSERT_TRUE(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0));
#ifndef CIO__ASAN
    /* ASan's own handler takes the fault in sanitizer builds. */
    ASSERT_TRUE(strstr(out, "stack overflow in task deep-recursion "
                            "(stack 16384 bytes)") != NULL);
#endif
    return 0;
}

TEST_REALTIME(debug_sigusr1_prints_the_task_tree)
{
    char out[4096];
    int st = debug_child(usr1_main, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
    ASSERT_TRUE(strstr(out, "cio tasks (1 alive)") != NULL);
    ASSERT_TRUE(strstr(out, "\"main\"") != NULL);
    return 0;
}

/* A task that blocks the loop thread in a plain sleep. */
static int blocker(void *arg)
{
    (void)arg;
    usleep(400 * 1000); /* the mistake the watchdog is there to catch */
    return 0;
}

static int blocked_main(void *arg)
{
    (void)arg;
    return run_named("blocker", blocker, 0);
}

/* While the loop is still stuck, the watchdog names the task and shows
 * where the loop thread is: inside the sleep. */
TEST_REALTIME(debug_watchdog_names_a_task_blocking_the_loop)
{
    char out[8192];
    int st = debug_child(blocked_main, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
    char *w = strstr(out, "blocked loop: task blocker (id ");
    ASSERT_TRUE(w != NULL);
    ASSERT_TRUE(strstr(w, "without suspending; the loop thread is now:"));
    /* The frames under the report: libc's sleep, then the task body. */
    ASSERT_TRUE(strstr(w, "sleep") != NULL);
    /* Reported while blocked, before the step ended. */
    char *slow = strstr(out, "slow step: task blocker ran");
    ASSERT_TRUE(slow != NULL && slow > w);
    return 0;
}

/* A task that computes for 400 ms without a checkpoint. */
static int spinner(void *arg)
{
    (void)arg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile uint64_t x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x += (uint64_t)i;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
             400 * 1000000L);
    return 0;
}

static int spinning_main(void *arg)
{
    (void)arg;
    return run_named("spinner", spinner, 0);
}

/* A computing task is interrupted for a backtrace of where it is. Not
 * under valgrind: its default thread lock is unfair, and the spinning
 * loop thread can keep the watchdog thread from running at all. Not under
 * ThreadSanitizer either: it holds a signal back until the thread makes
 * a call it intercepts, which a spinning task never does. */
TEST_NATIVE(debug_watchdog_backtraces_a_computing_task)
{
#ifdef CIO__TSAN
    CIO_TEST_SKIP("ThreadSanitizer defers the probe signal");
#endif
    char out[8192];
    int st = debug_child(spinning_main, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
    char *w = strstr(out, "blocked loop: task spinner (id ");
    ASSERT_TRUE(w != NULL);
    ASSERT_TRUE(strstr(w, "\ncio:   #0 ") != NULL);
    char *slow = strstr(out, "slow step: task spinner ran");
    ASSERT_TRUE(slow != NULL && slow > w);
    return 0;
}

static int deep_user(void *arg)
{
    (void)arg;
    volatile char buf[56 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = 1;
    return buf[0] - 1;
}

static int light_user(void *arg)
{
    (void)arg;
    return cio_yield();
}

static int deep_main(void *arg)
{
    (void)arg;
    int rc = run_named("greedy", deep_user, 64 * 1024);
    /* The next task gets the same pooled stack: cleared, it measures its
     * own depth, not greedy's. */
    return rc < 0 ? rc : run_named("light", light_user, 64 * 1024);
}

TEST_REALTIME(debug_reports_a_task_near_its_stack_limit)
{
    char out[8192];
    int st = debug_child(deep_main, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
    ASSERT_TRUE(strstr(out, "task greedy used ") != NULL);
    ASSERT_TRUE(strstr(out, " of its 65536 stack bytes; give it a larger "
                            "stack_size") != NULL);
    ASSERT_TRUE(strstr(out, "task light used") == NULL);
    return 0;
}

/* ---- counters ------------------------------------------------------------ */

static int pipe_reader(void *arg)
{
    char c;
    return (int)cio_stream_read(arg, &c, 1);
}

TEST_REALTIME(stats_count_io_by_kind)
{
    int sv[2];
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    cio_stream *a, *b;
    ASSERT_OK(cio_stream_open(&a, sv[0], NULL));
    ASSERT_OK(cio_stream_open(&b, sv[1], NULL));
    cio_stats before, after;
    ASSERT_OK(cio_stats_get(&before));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, pipe_reader, b));
    ASSERT_OK(cio_wait_all_blocked()); /* the reader waits */
    ASSERT_OK(cio_stream_write(a, "x", 1));
    ASSERT_OK(cio_stream_drain(a));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_stats_get(&after));
    /* The wait for data is a readiness wait (epoll) or a RECV in the ring;
     * either way it is counted by kind. */
    uint64_t reads = (after.fd_waits_read - before.fd_waits_read) +
                     (after.ops_recv - before.ops_recv);
    ASSERT_TRUE(reads >= 1);
    ASSERT_EQ(0, after.fd_waits_write - before.fd_waits_write);
    ASSERT_TRUE(after.run_ns > before.run_ns);
    /* Debug mode is off here: no per-step clock. */
    ASSERT_EQ(0, after.task_ns);
    ASSERT_OK(cio_stream_close(a));
    ASSERT_OK(cio_stream_close(b));
    return 0;
}

/* In debug mode the loop splits its time: tasks, waiting, itself. */
static int timed_main(void *arg)
{
    (void)arg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do /* 30 ms of work in the task */
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
           30 * 1000000L);
    cio_sleep(30 * CIO_MSEC); /* 30 ms waiting in the backend */
    cio_stats st;
    cio_stats_get(&st);
    fprintf(stderr, "task_ns %lld poll_ns %lld run_ns %lld\n",
            (long long)st.task_ns, (long long)st.poll_ns,
            (long long)st.run_ns);
    bool ok = st.task_ns >= 30 * CIO_MSEC && st.poll_ns >= 25 * CIO_MSEC &&
              st.run_ns >= st.task_ns + st.poll_ns;
    return ok ? 0 : -EPROTO;
}

/* Not under valgrind: the loop's own steps slow down fifty-fold there and
 * eat into the 30 ms the test expects to find spent in the backend. */
TEST_NATIVE(stats_debug_mode_times_tasks_and_waits)
{
    char out[4096];
    int st = debug_child(timed_main, out, sizeof out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "%s", out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
    return 0;
}

/* ---- descriptors left open ----------------------------------------------- */

static int leaky_handler(cio_stream *s, void *arg)
{
    (void)s;
    (void)arg;
    return 0;
}

static int forgetful(void *arg)
{
    (void)arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    cio_stream *a, *b;
    cio_stream_open(&a, sv[0], NULL);
    cio_stream_open(&b, sv[1], NULL);
    cio_stream_close(b); /* closed: not reported */
    cio_addr addr;
    cio_addr_ip(&addr, "127.0.0.1", 0);
    cio_server *srv;
    return cio_server_start(&srv, &addr, leaky_handler, NULL, NULL);
}

static int forgetful_main(void *arg)
{
    (void)arg;
    return run_named("forgetful", forgetful, 0);
}

/* Streams and servers never closed are named at loop close, with the
 * task that opened them. */
TEST_REALTIME(debug_reports_descriptors_left_open)
{
    char out[8192];
    int st = debug_child(forgetful_main, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_TRUE(strstr(out, "stream (fd ") != NULL);
    ASSERT_TRUE(strstr(out, ") opened by task forgetful (id 2, spawned at ") !=
                NULL);
    ASSERT_TRUE(strstr(out, "server (fd ") != NULL);
    ASSERT_TRUE(strstr(out, "is still open at loop close") != NULL);
    /* One stream was closed: exactly one stream line. */
    char *first = strstr(out, "cio: stream (fd ");
    ASSERT_TRUE(first && !strstr(first + 1, "cio: stream (fd "));
    return 0;
}
