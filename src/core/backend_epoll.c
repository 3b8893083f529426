/* The epoll backend. fd waits use EPOLLONESHOT registrations, re-armed
 * with EPOLL_CTL_MOD: one syscall per wait, and a registration that fires
 * while nobody waits disarms itself. A registration is left in place
 * (disarmed) after a wait and removed by the kernel when the file closes;
 * a new file on the same fd number is detected by MOD failing (ENOENT) and
 * added afresh. */
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

#define MAX_EVENTS 256

typedef struct fdrec {
    cio_task *reader, *writer;
    bool added;
} fdrec;

struct cio__backend {
    cio_loop *loop;
    int epfd;
    fdrec *fds;
    size_t nfds;
    size_t waiting;
    struct epoll_event events[MAX_EVENTS];
};

static int ep_init(cio_loop *l, cio__backend **out)
{
    cio__backend *b = cio__calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->loop = l;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd == -1) {
        int rc = -errno;
        cio__free(b);
        return rc;
    }
    *out = b;
    return 0;
}

static void ep_fini(cio__backend *b)
{
    close(b->epfd);
    cio__free(b->fds);
    cio__free(b);
}

static int ensure_fd(cio__backend *b, int fd)
{
    if ((size_t)fd < b->nfds)
        return 0;
    size_t n = b->nfds ? b->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    fdrec *v = cio__realloc(b->fds, n * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    memset(v + b->nfds, 0, (n - b->nfds) * sizeof *v);
    b->fds = v;
    b->nfds = n;
    return 0;
}

/* Register the interest of the tasks now waiting on `fd`. */
static int arm(cio__backend *b, int fd)
{
    fdrec *r = &b->fds[fd];
    struct epoll_event ev = {.data.fd = fd, .events = EPOLLONESHOT};
    if (r->reader)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (r->writer)
        ev.events |= EPOLLOUT;
    int op = r->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(b->epfd, op, fd, &ev);
    if (rc == -1 && op == EPOLL_CTL_MOD && errno == ENOENT)
        rc = epoll_ctl(b->epfd, op = EPOLL_CTL_ADD, fd, &ev);
    else if (rc == -1 && op == EPOLL_CTL_ADD && errno == EEXIST)
        rc = epoll_ctl(b->epfd, op = EPOLL_CTL_MOD, fd, &ev);
    if (rc == -1)
        return -errno;
    r->added = true;
    return 0;
}

static int ep_fd_wait(cio__backend *b, cio_task *t, int fd, unsigned events)
{
    int rc = ensure_fd(b, fd);
    if (rc < 0)
        return rc;
    fdrec *r = &b->fds[fd];
    if (((events & CIO_READABLE) && r->reader) ||
        ((events & CIO_WRITABLE) && r->writer))
        return -EBUSY;
    if (events & CIO_READABLE)
        r->reader = t;
    if (events & CIO_WRITABLE)
        r->writer = t;
    rc = arm(b, fd);
    if (rc < 0) {
        if (r->reader == t)
            r->reader = NULL;
        if (r->writer == t)
            r->writer = NULL;
        return rc;
    }
    t->wait_fd = fd;
    t->wait_events = events;
    b->waiting++;
    return 0;
}

static void ep_fd_cancel(cio__backend *b, cio_task *t)
{
    fdrec *r = &b->fds[t->wait_fd];
    if (r->reader == t)
        r->reader = NULL;
    if (r->writer == t)
        r->writer = NULL;
    b->waiting--;
    if (r->reader || r->writer) {
        arm(b, t->wait_fd);
    } else if (r->added) {
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, t->wait_fd, NULL);
        r->added = false;
    }
}

static void dispatch(cio__backend *b, int fd, uint32_t ev)
{
    fdrec *r = &b->fds[fd];
    unsigned ready = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        ready |= CIO_READABLE;
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        ready |= CIO_WRITABLE;
    cio_task *rd = (ready & CIO_READABLE) ? r->reader : NULL;
    cio_task *wr = (ready & CIO_WRITABLE) ? r->writer : NULL;
    if (rd)
        r->reader = NULL;
    if (wr)
        r->writer = NULL;
    if (rd && rd == wr) {
        /* One task waiting for both: it may also have asked only one. */
        if (r->reader == NULL && r->writer == NULL) {
            b->waiting--;
            cio__wake(rd, (int)(ready & rd->wait_events));
        }
    } else {
        if (rd) {
            if (r->writer == rd)
                r->writer = NULL;
            b->waiting--;
            cio__wake(rd, (int)(ready & rd->wait_events));
        }
        if (wr) {
            if (r->reader == wr)
                r->reader = NULL;
            b->waiting--;
            cio__wake(wr, (int)(ready & wr->wait_events));
        }
    }
    if (r->reader || r->writer)
        arm(b, fd);
}

static int ep_poll(cio__backend *b, int64_t timeout)
{
    struct timespec ts, *tsp = NULL;
    if (timeout >= 0) {
        ts.tv_sec = timeout / CIO_SEC;
        ts.tv_nsec = timeout % CIO_SEC;
        tsp = &ts;
    }
    int n = epoll_pwait2(b->epfd, b->events, MAX_EVENTS, tsp, NULL);
    if (n == -1 && errno == ENOSYS) {
        int ms = timeout < 0 ? -1 : (int)((timeout + CIO_MSEC - 1) / CIO_MSEC);
        n = epoll_wait(b->epfd, b->events, MAX_EVENTS, ms);
    }
    if (n == -1)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++)
        dispatch(b, b->events[i].data.fd, b->events[i].events);
    return n;
}

static size_t ep_waiting(const cio__backend *b)
{
    return b->waiting;
}

const cio__backend_ops cio__backend_epoll = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .poll = ep_poll,
    .fd_wait = ep_fd_wait,
    .fd_cancel = ep_fd_cancel,
    .waiting = ep_waiting,
};
