/* Debug helpers: the task tree, the stack overflow report, SIGUSR1. */
#include <signal.h>
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
