/* Waiting on any fd, for libraries that do their own I/O. */
#include "internal.h"

static void fd_unlink(cio_task *t)
{
    t->loop->bops->fd_cancel(t->loop->backend, t);
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
    cio_loop *l = t->loop;
    cio__loop_update_now(l);
    if (deadline <= l->now)
        return -ETIMEDOUT;
    rc = l->bops->fd_wait(l->backend, t, fd, events);
    if (rc < 0)
        return rc;
    l->stats.io_waits++;
    t->unlink = fd_unlink;
    t->wait_q = NULL;
    return cio__park(t, CIO__W_FD, (const void *)(intptr_t)fd, deadline, 0);
}
