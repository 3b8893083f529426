/* cio_fd_wait: readiness, deadlines, cancellation, bad input. */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

typedef struct pipe_pair {
    int r, w;
} pipe_pair;

static int open_pipe(pipe_pair *p)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    p->r = fds[0];
    p->w = fds[1];
    return 0;
}

static void close_pipe(pipe_pair *p)
{
    close(p->r);
    close(p->w);
}

static int write_later(void *arg)
{
    pipe_pair *p = arg;
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(1, write(p->w, "x", 1));
    return 0;
}

TEST(fdwait_readable_when_data_arrives)
{
    pipe_pair p = {-1, -1};
    ASSERT_OK(open_pipe(&p));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, write_later, &p));
    ASSERT_EQ(CIO_READABLE, cio_fd_wait(p.r, CIO_READABLE, CIO_NEVER));
    ASSERT_TIME(CIO_SEC);
    char c;
    ASSERT_EQ(1, read(p.r, &c, 1));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    close_pipe(&p);
    return 0;
}

TEST(fdwait_writable_at_once_on_empty_pipe)
{
    pipe_pair p = {-1, -1};
    ASSERT_OK(open_pipe(&p));
    ASSERT_EQ(CIO_WRITABLE,
              cio_fd_wait(p.w, CIO_READABLE | CIO_WRITABLE, CIO_NEVER));
    ASSERT_TIME(0);
    close_pipe(&p);
    return 0;
}

TEST(fdwait_deadline_times_out)
{
    pipe_pair p = {-1, -1};
    ASSERT_OK(open_pipe(&p));
    ASSERT_EQ(-ETIMEDOUT, cio_fd_wait(p.r, CIO_READABLE,
                                      cio_deadline_after(2 * CIO_SEC)));
    ASSERT_TIME(2 * CIO_SEC);
    /* The fd can be waited on again: nothing stale was left behind. */
    ASSERT_EQ(1, write(p.w, "x", 1));
    ASSERT_EQ(CIO_READABLE, cio_fd_wait(p.r, CIO_READABLE, CIO_NEVER));
    close_pipe(&p);
    return 0;
}

TEST(fdwait_scope_deadline_cancels_the_wait)
{
    pipe_pair p = {-1, -1};
    ASSERT_OK(open_pipe(&p));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_fd_wait(p.r, CIO_READABLE, CIO_NEVER));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TIME(CIO_SEC);
    close_pipe(&p);
    return 0;
}

static int wait_read(void *arg)
{
    pipe_pair *p = arg;
    return cio_fd_wait(p->r, CIO_READABLE, CIO_NEVER);
}

TEST(fdwait_cancel_then_reuse_and_busy)
{
    pipe_pair p = {-1, -1};
    ASSERT_OK(open_pipe(&p));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, wait_read, &p));
    ASSERT_OK(cio_wait_all_blocked());
    /* One waiter per fd and direction. */
    ASSERT_EQ(-EBUSY, cio_fd_wait(p.r, CIO_READABLE, CIO_NEVER));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_spawn(&t, wait_read, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(1, write(p.w, "y", 1));
    ASSERT_EQ(CIO_READABLE, cio_task_join(t));
    cio_task_free(t);
    close_pipe(&p);
    return 0;
}

static int wait_write(void *arg)
{
    int fd = *(int *)arg;
    return cio_fd_wait(fd, CIO_WRITABLE, CIO_NEVER);
}

TEST(fdwait_reader_and_writer_on_one_socket)
{
    int sv[2];
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    /* Fill the socket so that writing must wait. */
    char buf[4096] = {0};
    while (write(sv[0], buf, sizeof buf) > 0)
        ;
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, wait_write, &sv[0]));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(w));
    /* The peer drains; meanwhile this task waits to read on the same fd. */
    while (read(sv[1], buf, sizeof buf) > 0)
        ;
    ASSERT_EQ(CIO_WRITABLE, cio_task_join(w));
    cio_task_free(w);
    ASSERT_EQ(1, write(sv[1], "z", 1));
    ASSERT_EQ(CIO_READABLE, cio_fd_wait(sv[0], CIO_READABLE, CIO_NEVER));
    close(sv[0]);
    close(sv[1]);
    return 0;
}

TEST(fdwait_hangup_counts_as_readable)
{
    pipe_pair p = {-1, -1};
    ASSERT_OK(open_pipe(&p));
    close(p.w);
    ASSERT_EQ(CIO_READABLE, cio_fd_wait(p.r, CIO_READABLE, CIO_NEVER));
    char c;
    ASSERT_EQ(0, read(p.r, &c, 1));
    close(p.r);
    return 0;
}

TEST(fdwait_bad_input)
{
    ASSERT_EQ(-EINVAL, cio_fd_wait(-1, CIO_READABLE, CIO_NEVER));
    ASSERT_EQ(-EINVAL, cio_fd_wait(0, 0, CIO_NEVER));
    ASSERT_EQ(-EINVAL, cio_fd_wait(0, 8, CIO_NEVER));
    ASSERT_EQ(-EINVAL, cio_fd_wait(0, CIO_READABLE, -5));
    ASSERT_EQ(-EBADF, cio_fd_wait(1000, CIO_READABLE, CIO_NEVER));
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ASSERT_TRUE(fd >= 0);
    /* A regular file is always ready, as poll(2) has it. */
    ASSERT_EQ(CIO_READABLE | CIO_WRITABLE,
              cio_fd_wait(fd, CIO_READABLE | CIO_WRITABLE, CIO_NEVER));
    close(fd);
    return 0;
}
