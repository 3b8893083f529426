/* Waiting on any fd: the primitive under sockets and streams, and the
 * hook for libraries that do their own I/O. */
#include <signal.h>
#include <unistd.h>

#include "internal.h"

static void task_ready(cio__fdw *w, unsigned events)
{
    cio_task *t = w->data;
    t->fdw = NULL;
    cio__wake(t, events & CIO__EV_CLOSED ? -EBADF : (int)events);
}

static void fd_unlink(cio_task *t)
{
    if (t->fdw) {
        t->loop->bops->unwatch(t->loop->backend, t->fdw);
        t->fdw = NULL;
    }
}

int cio__fd_wait(cio_task *t, int fd, unsigned events, int64_t deadline)
{
    cio_loop *l = t->loop;
    cio__fdw w = {.ready = task_ready, .fd = fd, .events = events,
                  .data = t};
    int rc = l->bops->watch(l->backend, &w);
    if (rc < 0)
        return rc;
    l->stats.io_waits++;
    l->stats.fd_waits_read += (events & CIO_READABLE) != 0;
    l->stats.fd_waits_write += (events & CIO_WRITABLE) != 0;
    t->fdw = &w;
    t->unlink = fd_unlink;
    t->wait_q = NULL;
    return cio__park(t, CIO__W_FD, (const void *)(intptr_t)fd, deadline, 0);
}

int cio_fd_wait(int fd, unsigned events, int64_t deadline)
{
    CIO__SELF_OR_RETURN(t);
    if (fd < 0 || events == 0 || (events & ~(CIO_READABLE | CIO_WRITABLE)) ||
        deadline < 0)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    cio__loop_update_now(t->loop);
    if (deadline <= t->loop->now)
        return -ETIMEDOUT;
    return cio__fd_wait(t, fd, events, deadline);
}

ssize_t cio__io(int fd, unsigned dir, cio__try_fn fn, void *ctx)
{
    CIO__SELF_OR_RETURN(t);
    ssize_t rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    for (;;) {
        rc = fn(fd, ctx);
        if (rc != -EAGAIN)
            return rc;
        rc = cio__fd_wait(t, fd, dir | CIO__EV_EDGE, CIO_NEVER);
        if (rc < 0)
            return rc;
    }
}

void cio__fd_opened(int fd)
{
    cio_loop *l = cio__loop;
    if (l && l->backend && l->bops->opened)
        l->bops->opened(l->backend, fd);
}

void cio__fd_drained(int fd, unsigned events)
{
    cio_loop *l = cio__loop;
    if (l && l->backend && l->bops->ready_take)
        l->bops->ready_take(l->backend, fd, events);
}

int cio__fd_wait_drained(int fd, unsigned events)
{
    CIO__SELF_OR_RETURN(t);
    cio_loop *l = t->loop;
    if (l->bops->ready_take == NULL)
        return cio_fd_wait(fd, events, CIO_NEVER);
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    /* An edge since the drain: the data is there, try it. */
    unsigned now = l->bops->ready_take(l->backend, fd, events);
    if (now)
        return (int)now;
    return cio__fd_wait(t, fd, events | CIO__EV_EDGE, CIO_NEVER);
}

/* ---- completion-based operations ----------------------------------------- */

void cio__op_complete(cio__op *op, int result)
{
    op->result = result;
    if (op->done)
        op->done(op);
    else
        cio__wake(op->task, 0);
}

/* The kernel owns the buffer until the completion: ask it to stop and
 * keep the task parked until the completion says how it ended. */
static bool op_unlink(cio_task *t)
{
    cio__op *op = (cio__op *)t->wait_obj;
    if (!op->cancel_sent) {
        op->cancel_sent = true;
        t->loop->bops->cancel(t->loop->backend, op);
    }
    return false;
}

ssize_t cio__op_run(cio__op *op)
{
    CIO__SELF_OR_RETURN(t);
    cio_loop *l = t->loop;
    if (l->bops->submit == NULL)
        return -ENOTSUP;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    op->task = t;
    op->cancel_sent = false;
    rc = l->bops->submit(l->backend, op);
    if (rc < 0)
        return rc;
    l->stats.io_waits++;
    cio__count_op(&l->stats, op->kind);
    t->unlink = NULL;
    t->wait_q = NULL;
    t->unlink_try = op_unlink;
    cio__park(t, CIO__W_FD, op, CIO_NEVER, 0);
    return op->result;
}

/* ---- pipes and other non-socket fds -------------------------------------- */

static ssize_t again_or_errno(void)
{
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
               ? -EAGAIN
               : -errno;
}

typedef struct rw {
    void *buf;
    size_t n;
} rw;

static ssize_t try_read(int fd, void *p)
{
    rw *x = p;
    ssize_t n = read(fd, x->buf, x->n);
    return n >= 0 ? n : again_or_errno();
}

ssize_t cio__write_now(int fd, const void *buf, size_t n)
{
    ssize_t k = write(fd, buf, n);
    if (k >= 0)
        return k;
    ssize_t rc = again_or_errno();
    if (rc == -EPIPE) {
        /* The loop thread blocks SIGPIPE; take the one this write raised
         * so that it is not delivered later. */
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
            ;
    }
    return rc;
}

static ssize_t try_write(int fd, void *p)
{
    rw *x = p;
    return cio__write_now(fd, x->buf, x->n);
}

ssize_t cio__read(int fd, void *buf, size_t n)
{
    cio__op op = {.kind = CIO__OP_READ, .fd = fd, .buf = buf, .len = n,
                  .off = -1};
    ssize_t rc = cio__op_run(&op);
    if (rc != -ENOTSUP)
        return rc;
    rw x = {buf, n};
    return cio__io(fd, CIO_READABLE, try_read, &x);
}

ssize_t cio__write(int fd, const void *buf, size_t n)
{
    rw x = {(void *)buf, n};
    return cio__io(fd, CIO_WRITABLE, try_write, &x);
}
