/* The epoll backend. Watches use EPOLLONESHOT registrations, re-armed
 * with EPOLL_CTL_MOD: one syscall per wait, and a registration that fires
 * while nobody watches disarms itself. A registration is left in place
 * (disarmed) after a watch fires; the kernel drops it when the file
 * closes, and a new file on the same fd number is detected by MOD failing
 * with ENOENT and added afresh. */
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

#define MAX_EVENTS 256

typedef struct fdrec {
    cio__fdw *reader, *writer;
    bool added;
} fdrec;

struct cio__backend {
    cio_loop *loop;
    int epfd;
    fdrec *fds;
    size_t nfds;
    size_t waiting;
    int *ready_fds; /* fds epoll refuses (regular files): always ready */
    size_t nready, capready;
    struct epoll_event events[MAX_EVENTS];
};

static int queue_ready(cio__backend *b, int fd)
{
    if (b->nready == b->capready) {
        size_t cap = b->capready ? b->capready * 2 : 8;
        int *v = cio__realloc(b->ready_fds, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        b->ready_fds = v;
        b->capready = cap;
    }
    b->ready_fds[b->nready++] = fd;
    return 0;
}

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
    cio__free(b->ready_fds);
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

/* Register the interest of the watches now on `fd`. */
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
        rc = epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (rc == -1 && op == EPOLL_CTL_ADD && errno == EEXIST)
        rc = epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (rc == -1)
        return -errno;
    r->added = true;
    return 0;
}

static void dispatch(cio__backend *b, int fd, uint32_t ev);

static int ep_watch(cio__backend *b, cio__fdw *w)
{
    int rc = ensure_fd(b, w->fd);
    if (rc < 0)
        return rc;
    fdrec *r = &b->fds[w->fd];
    if (((w->events & CIO_READABLE) && r->reader) ||
        ((w->events & CIO_WRITABLE) && r->writer))
        return -EBUSY;
    if (w->events & CIO_READABLE)
        r->reader = w;
    if (w->events & CIO_WRITABLE)
        r->writer = w;
    rc = arm(b, w->fd);
    if (rc == -EPERM) {
        /* A regular file or directory: always ready, as poll(2) says.
         * Report it from the next poll, as for any other event. */
        b->waiting += !w->internal;
        return queue_ready(b, w->fd);
    }
    if (rc < 0) {
        if (r->reader == w)
            r->reader = NULL;
        if (r->writer == w)
            r->writer = NULL;
        return rc;
    }
    b->waiting += !w->internal;
    return 0;
}

/* Take `w` off its fd; re-arm for what is left. */
static void detach(cio__backend *b, cio__fdw *w, bool rearm)
{
    fdrec *r = &b->fds[w->fd];
    if (r->reader == w)
        r->reader = NULL;
    if (r->writer == w)
        r->writer = NULL;
    b->waiting -= !w->internal;
    if (!rearm)
        return;
    if (r->reader || r->writer) {
        arm(b, w->fd);
    } else if (r->added) {
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, w->fd, NULL);
        r->added = false;
    }
}

static void ep_unwatch(cio__backend *b, cio__fdw *w)
{
    detach(b, w, true);
}

static void ep_closing(cio__backend *b, int fd)
{
    if (fd < 0 || (size_t)fd >= b->nfds)
        return;
    fdrec *r = &b->fds[fd];
    cio__fdw *rd = r->reader, *wr = r->writer;
    if (rd)
        detach(b, rd, false);
    if (wr && wr != rd)
        detach(b, wr, false);
    if (r->added)
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
    r->added = false;
    if (rd)
        rd->ready(rd, CIO__EV_CLOSED);
    if (wr && wr != rd)
        wr->ready(wr, CIO__EV_CLOSED);
}

static void dispatch(cio__backend *b, int fd, uint32_t ev)
{
    if ((size_t)fd >= b->nfds)
        return;
    fdrec *r = &b->fds[fd];
    unsigned ready = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        ready |= CIO_READABLE;
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        ready |= CIO_WRITABLE;
    cio__fdw *rd = (ready & CIO_READABLE) ? r->reader : NULL;
    cio__fdw *wr = (ready & CIO_WRITABLE) ? r->writer : NULL;
    if (rd)
        detach(b, rd, false);
    if (wr && wr != rd)
        detach(b, wr, false);
    /* The one-shot registration is spent: re-arm for watches left. */
    if ((r->reader || r->writer) && arm(b, fd) == -EPERM)
        queue_ready(b, fd);
    if (rd)
        rd->ready(rd, ready & rd->events);
    if (wr && wr != rd)
        wr->ready(wr, ready & wr->events);
}

static int ep_poll(cio__backend *b, int64_t timeout)
{
    struct timespec ts, *tsp = NULL;
    if (b->nready > 0)
        timeout = 0;
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
    size_t k = b->nready;
    b->nready = 0;
    for (size_t i = 0; i < k; i++)
        dispatch(b, b->ready_fds[i], EPOLLIN | EPOLLOUT);
    return n + (int)k;
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
    .watch = ep_watch,
    .unwatch = ep_unwatch,
    .closing = ep_closing,
    .waiting = ep_waiting,
};
