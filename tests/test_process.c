/* Child processes: pipes as streams, exit statuses, communicate, and
 * cancellation that ends the child and leaves no zombie. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

void cio__process_force_poll(bool on);
long cio__alloc_live(void);

static const cio_process_opts piped = {.stdin_mode = CIO_PROC_PIPE,
                                       .stdout_mode = CIO_PROC_PIPE,
                                       .stderr_mode = CIO_PROC_PIPE};

/* True once `pid` is fully gone: reaped, so not even a zombie. */
static bool reaped(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* Read `s` to its end into `buf` (NUL-terminated); the length or error. */
static ssize_t read_to_end(cio_stream *s, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size &&
           (n = cio_stream_read(s, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    return n < 0 ? n : (ssize_t)len;
}

TEST_REALTIME(process_echo_output_through_a_stream)
{
    cio_process *p;
    char *argv[] = {"echo", "hello", "world", NULL};
    cio_process_opts o = {.stdout_mode = CIO_PROC_PIPE};
    ASSERT_OK(cio_process_spawn(&p, "/bin/echo", argv, &o));
    ASSERT_TRUE(cio_process_pid(p) > 0);
    ASSERT_TRUE(cio_process_stdin(p) == NULL);
    ASSERT_TRUE(cio_process_stderr(p) == NULL);
    char buf[64];
    ASSERT_EQ(12, read_to_end(cio_process_stdout(p), buf, sizeof buf));
    ASSERT_STR_EQ("hello world\n", buf);
    int st = -1;
    ASSERT_OK(cio_process_wait(p, &st));
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(0, WEXITSTATUS(st));
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_cat_round_trip_and_path_lookup)
{
    cio_process *p;
    char *argv[] = {"cat", NULL};
    ASSERT_OK(cio_process_spawn(&p, "cat", argv, &piped));
    cio_stream *in = cio_process_stdin(p), *out = cio_process_stdout(p);
    char buf[64];
    ASSERT_OK(cio_stream_write(in, "ping\n", 5));
    ASSERT_OK(cio_stream_flush(in));
    ASSERT_EQ(5, cio_stream_readline(out, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "ping\n", 5) == 0);
    ASSERT_OK(cio_stream_write(in, "pong", 4));
    ASSERT_OK(cio_stream_write_eof(in));
    ASSERT_EQ(4, read_to_end(out, buf, sizeof buf));
    ASSERT_STR_EQ("pong", buf);
    int st;
    ASSERT_OK(cio_process_wait(p, &st));
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_large_output_is_read_fully)
{
    enum { SIZE = 4 << 20 };
    char *argv[] = {"head", "-c", "4194304", "/dev/zero", NULL};
    cio_process_opts o = {.stdout_mode = CIO_PROC_PIPE};
    /* Through the stream... */
    cio_process *p;
    ASSERT_OK(cio_process_spawn(&p, "head", argv, &o));
    char buf[8192];
    size_t total = 0;
    ssize_t n;
    while ((n = cio_stream_read(cio_process_stdout(p), buf, sizeof buf)) >
           0) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != 0)
                TEST_FAIL_("non-zero byte at %zu", total + (size_t)i);
        total += (size_t)n;
    }
    ASSERT_EQ(0, n);
    ASSERT_EQ(SIZE, total);
    int st;
    ASSERT_OK(cio_process_wait(p, &st));
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cio_process_free(p);
    /* ...and through communicate. */
    ASSERT_OK(cio_process_spawn(&p, "head", argv, &o));
    char *big = malloc(SIZE);
    ASSERT_TRUE(big != NULL);
    memset(big, 1, SIZE);
    cio_process_io io = {.out = big, .out_size = SIZE};
    ASSERT_OK(cio_process_communicate(p, &io, &st));
    ASSERT_EQ(SIZE, io.out_len);
    ASSERT_EQ(0, io.err_len);
    bool zero = big[0] == 0 && memcmp(big, big + 1, SIZE - 1) == 0;
    free(big);
    ASSERT_TRUE(zero);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_exit_code_is_in_the_wait_status)
{
    cio_process *p;
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    ASSERT_OK(cio_process_spawn(&p, "/bin/sh", argv, NULL));
    pid_t pid = cio_process_pid(p);
    int st = -1;
    ASSERT_OK(cio_process_wait(p, &st));
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(3, WEXITSTATUS(st));
    ASSERT_TRUE(reaped(pid));
    /* Once reaped, the status stays, and the pid is never signalled. */
    int again = -1;
    ASSERT_OK(cio_process_wait(p, &again));
    ASSERT_EQ(st, again);
    again = -1;
    ASSERT_OK(cio_process_try_wait(p, &again));
    ASSERT_EQ(st, again);
    ASSERT_EQ(-ESRCH, cio_process_kill(p, SIGTERM));
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_killed_by_a_signal)
{
    cio_process *p;
    char *argv[] = {"sleep", "10", NULL};
    ASSERT_OK(cio_process_spawn(&p, "sleep", argv, NULL));
    int st;
    ASSERT_EQ(-EAGAIN, cio_process_try_wait(p, &st));
    ASSERT_OK(cio_process_kill(p, 0));
    ASSERT_OK(cio_process_kill(p, SIGKILL));
    ASSERT_OK(cio_process_wait(p, &st));
    ASSERT_TRUE(WIFSIGNALED(st));
    ASSERT_EQ(SIGKILL, WTERMSIG(st));
    ASSERT_EQ(-EINVAL, cio_process_kill(NULL, SIGKILL));
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_missing_program_fails_cleanly)
{
    int before = cio_test_open_fds();
    ASSERT_OK(before);
    long live = cio__alloc_live();
    cio_process *p = NULL;
    char *argv[] = {"x", NULL};
    ASSERT_EQ(-ENOENT,
              cio_process_spawn(&p, "/nonexistent/cio-prog", argv, &piped));
    ASSERT_EQ(-ENOENT,
              cio_process_spawn(&p, "cio-no-such-program", argv, &piped));
    ASSERT_EQ(-EACCES, cio_process_spawn(&p, "/etc/passwd", argv, &piped));
    cio_process_opts o = {.cwd = "/nonexistent/dir"};
    ASSERT_EQ(-ENOENT, cio_process_spawn(&p, "/bin/true", argv, &o));
    ASSERT_TRUE(p == NULL);
    /* Nothing is left: no descriptor, no memory, no zombie. */
    ASSERT_EQ(before, cio_test_open_fds());
    ASSERT_EQ(live, cio__alloc_live());
    ASSERT_EQ(-1, waitpid(-1, NULL, WNOHANG));
    ASSERT_EQ(ECHILD, errno);
    return 0;
}

TEST_REALTIME(process_bad_arguments)
{
    cio_process *p;
    char *argv[] = {"true", NULL};
    ASSERT_EQ(-EINVAL, cio_process_spawn(NULL, "true", argv, NULL));
    ASSERT_EQ(-EINVAL, cio_process_spawn(&p, NULL, argv, NULL));
    ASSERT_EQ(-EINVAL, cio_process_spawn(&p, "true", NULL, NULL));
    cio_process_opts o = {.stdin_mode = CIO_PROC_STDOUT};
    ASSERT_EQ(-EINVAL, cio_process_spawn(&p, "true", argv, &o));
    o = (cio_process_opts){.stderr_mode = 9};
    ASSERT_EQ(-EINVAL, cio_process_spawn(&p, "true", argv, &o));
    o = (cio_process_opts){.kill_grace = -1};
    ASSERT_EQ(-EINVAL, cio_process_spawn(&p, "true", argv, &o));
    ASSERT_EQ(-EINVAL, cio_process_wait(NULL, NULL));
    /* Input for a child whose stdin is not a pipe. */
    ASSERT_OK(cio_process_spawn(&p, "true", argv, NULL));
    cio_process_io io = {.in = "x", .in_len = 1};
    ASSERT_EQ(-EINVAL, cio_process_communicate(p, &io, NULL));
    io = (cio_process_io){.out_size = 10};
    ASSERT_EQ(-EINVAL, cio_process_communicate(p, &io, NULL));
    ASSERT_OK(cio_process_wait(p, NULL));
    cio_process_free(p);
    return 0;
}

/* ---- cancellation -------------------------------------------------------- */

typedef struct waiter {
    cio_process *p;
    int status;
} waiter;

static int wait_child(void *arg)
{
    waiter *w = arg;
    return cio_process_wait(w->p, &w->status);
}

TEST_REALTIME(process_cancelled_wait_kills_the_child_and_reaps_it)
{
    cio_process *p;
    char *argv[] = {"sleep", "10", NULL};
    ASSERT_OK(cio_process_spawn(&p, "sleep", argv, NULL));
    pid_t pid = cio_process_pid(p);
    waiter w = {p, -1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_child, &w));
    ASSERT_OK(cio_sleep(50 * CIO_MSEC));
    int64_t t0 = cio_now();
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRUE(cio_now() - t0 < 2 * CIO_SEC);
    ASSERT_TRUE(reaped(pid));
    ASSERT_TRUE(WIFSIGNALED(w.status));
    ASSERT_EQ(SIGTERM, WTERMSIG(w.status));
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_timeout_escalates_to_sigkill_after_the_grace)
{
    cio_process *p;
    /* The shell ignores SIGTERM, and sleep inherits that across exec. */
    char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; exec sleep 10",
                    NULL};
    cio_process_opts o = {.stdout_mode = CIO_PROC_PIPE,
                          .kill_grace = 200 * CIO_MSEC};
    ASSERT_OK(cio_process_spawn(&p, "/bin/sh", argv, &o));
    pid_t pid = cio_process_pid(p);
    char line[16];
    ASSERT_EQ(6, cio_stream_readline(cio_process_stdout(p), line,
                                     sizeof line));
    int64_t t0 = cio_now();
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(50 * CIO_MSEC), 0));
    int st = -1;
    ASSERT_EQ(-ECANCELED, cio_process_wait(p, &st));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    int64_t took = cio_now() - t0;
    ASSERT_TRUE(took >= 250 * CIO_MSEC && took < 2 * CIO_SEC);
    ASSERT_TRUE(WIFSIGNALED(st));
    ASSERT_EQ(SIGKILL, WTERMSIG(st));
    ASSERT_TRUE(reaped(pid));
    cio_process_free(p);
    return 0;
}

typedef struct talker {
    cio_process *p;
    cio_process_io io;
    int status;
} talker;

static int talk(void *arg)
{
    talker *k = arg;
    return cio_process_communicate(k->p, &k->io, &k->status);
}

TEST_REALTIME(process_cancelled_communicate_kills_the_child)
{
    cio_process *p;
    char *argv[] = {"sh", "-c", "echo partial; exec sleep 10", NULL};
    ASSERT_OK(cio_process_spawn(&p, "/bin/sh", argv, &piped));
    pid_t pid = cio_process_pid(p);
    char out[64] = {0};
    talker k = {.p = p, .io = {.out = out, .out_size = sizeof out},
                .status = -1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, talk, &k));
    /* Cancel once the first line is in (the buffer fills as it reads). */
    while (memcmp(out, "partial\n", 8) != 0)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRUE(reaped(pid));
    ASSERT_TRUE(WIFSIGNALED(k.status));
    ASSERT_EQ(8, k.io.out_len);
    ASSERT_TRUE(memcmp(out, "partial\n", 8) == 0);
    /* communicate closed stdin. */
    ASSERT_TRUE(cio_process_stdin(p) == NULL);
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_free_kills_a_running_child)
{
    cio_process *p;
    char *argv[] = {"sleep", "10", NULL};
    ASSERT_OK(cio_process_spawn(&p, "sleep", argv, &piped));
    pid_t pid = cio_process_pid(p);
    /* Data still queued for stdin is dropped, without suspending. */
    ASSERT_OK(cio_stream_write(cio_process_stdin(p), "unread", 6));
    int64_t t0 = cio_now();
    cio_process_free(p);
    ASSERT_TRUE(cio_now() - t0 < CIO_SEC);
    ASSERT_TRUE(reaped(pid));
    return 0;
}

TEST_REALTIME(process_several_tasks_wait_for_one_child)
{
    cio_process *p;
    char *argv[] = {"sh", "-c", "sleep 0.05; exit 5", NULL};
    ASSERT_OK(cio_process_spawn(&p, "/bin/sh", argv, NULL));
    waiter w[3] = {{p, -1}, {p, -1}, {p, -1}};
    cio_call calls[3];
    for (int i = 0; i < 3; i++)
        calls[i] = (cio_call){wait_child, &w[i], 0};
    ASSERT_OK(cio_gather(calls, 3, 0));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(0, calls[i].result);
        ASSERT_TRUE(WIFEXITED(w[i].status));
        ASSERT_EQ(5, WEXITSTATUS(w[i].status));
    }
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_waitpid_polling_without_pidfd)
{
    cio__process_force_poll(true);
    cio_process *p;
    char *argv[] = {"sh", "-c", "sleep 0.02; exit 7", NULL};
    ASSERT_OK(cio_process_spawn(&p, "/bin/sh", argv, NULL));
    int st;
    ASSERT_OK(cio_process_wait(p, &st));
    ASSERT_EQ(7, WEXITSTATUS(st));
    cio_process_free(p);
    char *sleeper[] = {"sleep", "10", NULL};
    ASSERT_OK(cio_process_spawn(&p, "sleep", sleeper, NULL));
    pid_t pid = cio_process_pid(p);
    waiter w = {p, -1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_child, &w));
    ASSERT_OK(cio_sleep(30 * CIO_MSEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRUE(reaped(pid));
    ASSERT_EQ(SIGTERM, WTERMSIG(w.status));
    cio_process_free(p);
    cio__process_force_poll(false);
    return 0;
}

/* ---- communicate --------------------------------------------------------- */

TEST_REALTIME(process_communicate_feeds_stdin_and_reads_both_outputs)
{
    enum { SIZE = 1 << 20 };
    cio_process *p;
    /* Output on both streams while input is still coming: no deadlock. */
    char *argv[] = {"sh", "-c", "echo start >&2; cat; echo end >&2", NULL};
    ASSERT_OK(cio_process_spawn(&p, "/bin/sh", argv, &piped));
    char *in = malloc(SIZE), *out = malloc(SIZE);
    ASSERT_TRUE(in && out);
    for (size_t i = 0; i < SIZE; i++)
        in[i] = (char)(i * 7);
    char err[64];
    cio_process_io io = {.in = in, .in_len = SIZE, .out = out,
                         .out_size = SIZE, .err = err,
                         .err_size = sizeof err};
    int st = -1;
    int rc = cio_process_communicate(p, &io, &st);
    bool same = io.out_len == SIZE && memcmp(in, out, SIZE) == 0;
    free(in);
    free(out);
    ASSERT_OK(rc);
    ASSERT_TRUE(same);
    ASSERT_EQ(10, io.err_len);
    ASSERT_TRUE(memcmp(err, "start\nend\n", 10) == 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_communicate_cut_output_is_emsgsize)
{
    cio_process *p;
    char *argv[] = {"head", "-c", "100000", "/dev/zero", NULL};
    cio_process_opts o = {.stdout_mode = CIO_PROC_PIPE};
    ASSERT_OK(cio_process_spawn(&p, "head", argv, &o));
    char out[1000];
    cio_process_io io = {.out = out, .out_size = sizeof out};
    int st = -1;
    ASSERT_EQ(-EMSGSIZE, cio_process_communicate(p, &io, &st));
    ASSERT_EQ(100000, io.out_len);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(process_child_that_ignores_its_input)
{
    cio_process *p;
    char *argv[] = {"true", NULL};
    ASSERT_OK(cio_process_spawn(&p, "true", argv, &piped));
    static char in[1 << 20];
    cio_process_io io = {.in = in, .in_len = sizeof in};
    int st = -1;
    ASSERT_OK(cio_process_communicate(p, &io, &st));
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cio_process_free(p);
    return 0;
}

/* ---- what the child gets ------------------------------------------------- */

static int run_capture(const char *file, char *const argv[],
                       cio_process_opts *o, char *out, size_t size)
{
    cio_process *p;
    int rc = cio_process_spawn(&p, file, argv, o);
    if (rc < 0)
        return rc;
    cio_process_io io = {.out = out, .out_size = size - 1};
    int st = -1;
    rc = cio_process_communicate(p, &io, &st);
    cio_process_free(p);
    if (rc < 0)
        return rc;
    out[io.out_len] = '\0';
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST_REALTIME(process_stderr_to_stdout_devnull_cwd_and_env)
{
    char out[256];
    char *both[] = {"sh", "-c", "echo out; echo err >&2", NULL};
    cio_process_opts o = {.stdout_mode = CIO_PROC_PIPE,
                          .stderr_mode = CIO_PROC_STDOUT};
    ASSERT_EQ(0, run_capture("/bin/sh", both, &o, out, sizeof out));
    ASSERT_STR_EQ("out\nerr\n", out);

    char *cat[] = {"cat", NULL};
    o = (cio_process_opts){.stdin_mode = CIO_PROC_DEVNULL,
                           .stdout_mode = CIO_PROC_PIPE,
                           .stderr_mode = CIO_PROC_DEVNULL};
    ASSERT_EQ(0, run_capture("cat", cat, &o, out, sizeof out));
    ASSERT_STR_EQ("", out);

    char *pwd[] = {"pwd", NULL};
    o = (cio_process_opts){.stdout_mode = CIO_PROC_PIPE, .cwd = "/"};
    ASSERT_EQ(0, run_capture("/bin/pwd", pwd, &o, out, sizeof out));
    ASSERT_STR_EQ("/\n", out);

    char *env[] = {"FOO=bar baz", NULL};
    char *echo[] = {"sh", "-c", "echo \"$FOO\"; echo \"${HOME-unset}\"",
                    NULL};
    o = (cio_process_opts){.stdout_mode = CIO_PROC_PIPE, .env = env};
    ASSERT_EQ(0, run_capture("/bin/sh", echo, &o, out, sizeof out));
    ASSERT_STR_EQ("bar baz\nunset\n", out);
    return 0;
}

/* The hex mask on the `field` line of /proc/<child>/status. */
static int status_mask(const char *status, const char *field,
                       unsigned long long *mask)
{
    const char *s = strstr(status, field);
    if (s == NULL || sscanf(s + strlen(field), " %llx", mask) != 1)
        return -EPROTO;
    return 0;
}

TEST_REALTIME(process_child_starts_with_clean_signal_state)
{
    /* The loop's thread blocks a signal and the program ignores one. */
    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR2);
    ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &one, &old));
    struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
    ASSERT_EQ(0, sigaction(SIGPIPE, &ign, &prev));
    char out[4096];
    char *argv[] = {"cat", "/proc/self/status", NULL};
    cio_process_opts o = {.stdout_mode = CIO_PROC_PIPE};
    int rc = run_capture("cat", argv, &o, out, sizeof out);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    sigaction(SIGPIPE, &prev, NULL);
    ASSERT_EQ(0, rc);
    unsigned long long blk = 1, ign_mask = 1;
    ASSERT_OK(status_mask(out, "SigBlk:", &blk));
    ASSERT_OK(status_mask(out, "SigIgn:", &ign_mask));
    ASSERT_EQ(0, blk);
    ASSERT_EQ(0, ign_mask);
    return 0;
}

TEST_REALTIME(process_child_inherits_only_stdio)
{
    /* A descriptor the program left inheritable is closed in the child. */
    int fd = open("/dev/null", O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(50, dup2(fd, 50));
    close(fd);
    char out[256];
    char *argv[] = {"ls", "/proc/self/fd", NULL};
    cio_process_opts o = {.stdout_mode = CIO_PROC_PIPE};
    int rc = run_capture("ls", argv, &o, out, sizeof out);
    close(50);
    ASSERT_EQ(0, rc);
    /* 0, 1, 2 and the directory ls reads. */
    ASSERT_STR_EQ("0\n1\n2\n3\n", out);
    return 0;
}

/* On the virtual clock too: the pidfd wait is real I/O. */
TEST(process_wait_on_the_virtual_clock)
{
    cio_process *p;
    char *argv[] = {"sh", "-c", "exit 9", NULL};
    ASSERT_OK(cio_process_spawn(&p, "/bin/sh", argv, NULL));
    int st;
    ASSERT_OK(cio_process_wait(p, &st));
    ASSERT_EQ(9, WEXITSTATUS(st));
    cio_process_free(p);
    return 0;
}
