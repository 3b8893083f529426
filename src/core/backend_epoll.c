/* The epoll backend. Each fd is registered once, edge-triggered, for
 * both directions (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET), and stays
 * registered until cio_close() says it closes: a wait costs no system
 * call. Every edge epoll reports sets the fd's ready bits, whether or not
 * a watch waits; they say "an edge came since the last drain".
 *
 * Two kinds of watch share the registration:
 * - Edge watches (CIO__EV_EDGE: cio's own sockets, pipes and streams,
 *   which close through cio_close). The caller has just seen EAGAIN or a
 *   short transfer, so readiness seen before is stale: the watch clears
 *   the bits of its directions and waits for the next edge. The stream
 *   asks ready_take() before waiting after a short read, so data that
 *   came meanwhile is read at once, and a wait clears no edge that came
 *   after the drain (no poll runs between the drain and the watch).
 * - Level watches (cio_fd_wait, and the loop's, DNS's and others' own
 *   watches): the caller may not have drained, and may close the fd
 *   behind cio's back (libpq, c-ares). Such a watch re-checks with
 *   EPOLL_CTL_MOD, which also queues an event when the fd is ready now
 *   (one system call per wait, as a one-shot registration costs); ENOENT
 *   means the number holds a new file, which is added afresh.
 *
 * A registration is trusted (waited on without a system call) only once
 * an edge watch has added or re-checked it, and until cio_close() (the
 * closing hook) deletes it, or a new socket, accepted connection or stream
 * takes the number (the opened hook). What that cannot see, an fd closed
 * with close(2) whose number a file cio did not make reuses, and a drain
 * that was not one (a spurious EAGAIN or short transfer), would strand a
 * parked edge watch: so an fd parked without a system call is re-checked
 * with EPOLL_CTL_MOD once it has waited RECHECK_AFTER (maybe_recheck).
 * The peer's end of data (EPOLLRDHUP) stays ready: a short read may have
 * left it behind, and no edge follows it.
 *
 * A dup of a registered fd keeps the registration alive after the
 * original is closed: its edges then arrive as spurious events, which a
 * waiter survives (it retries the call and waits again). Files epoll
 * refuses (regular files: EPERM) are always ready, as poll(2) says. */
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

#define MAX_EVENTS 256
/* How long a wait parked without a system call goes before its fd is
 * re-checked with EPOLL_CTL_MOD (on the virtual clock: before time
 * jumps). */
#define RECHECK_AFTER (10 * CIO_MSEC)

#define EP_MASK (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
#define DIRS (CIO_READABLE | CIO_WRITABLE)

typedef struct fdrec {
    cio__fdw *reader, *writer;
    bool added;     /* in the epoll set, as far as we know */
    bool trusted;   /* added or re-checked by an edge watch */
    bool check;     /* in the list of parked fds to re-check when idle */
    unsigned ready; /* directions with an edge since the last drain */
    unsigned hup;   /* CIO_READABLE once the peer's data has ended */
} fdrec;

typedef struct fdvec {
    int *v;
    size_t n, cap;
} fdvec;

struct cio__backend {
    cio_loop *loop;
    int epfd;
    fdrec *fds;
    size_t nfds;
    size_t waiting;
    fdvec ready; /* fds to report ready at the next poll */
    fdvec check; /* fds parked on a trusted registration, not re-checked */
    int64_t check_since; /* loop time of the oldest entry of `check` */
    struct epoll_event events[MAX_EVENTS];
};

static int fdvec_push(fdvec *q, int fd)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        int *v = cio__realloc(q->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n++] = fd;
    return 0;
}

static int queue_ready(cio__backend *b, int fd)
{
    return fdvec_push(&b->ready, fd);
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
    cio__free(b->ready.v);
    cio__free(b->check.v);
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

/* Add `fd` to the epoll set, or re-check a registration that may be
 * stale: MOD on a live one queues an event if the fd is ready now; ENOENT
 * means the number holds a new file. */
static int reg(cio__backend *b, int fd)
{
    fdrec *r = &b->fds[fd];
    struct epoll_event ev = {.data.fd = fd, .events = EP_MASK};
    int op = r->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(b->epfd, op, fd, &ev);
    if (rc == -1 && op == EPOLL_CTL_MOD && errno == ENOENT)
        rc = epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (rc == -1 && op == EPOLL_CTL_ADD && errno == EEXIST)
        rc = epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (rc == -1) {
        r->added = r->trusted = false;
        return -errno;
    }
    r->added = true;
    return 0;
}

/* Put `fd` on the list of parked fds to re-check; out of memory, re-check
 * it now. */
static int check_later(cio__backend *b, int fd)
{
    if (fdvec_push(&b->check, fd) < 0)
        return reg(b, fd);
    b->fds[fd].check = true;
    if (b->check.n == 1)
        b->check_since = b->loop->now;
    return 0;
}

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
    unsigned dirs = w->events & DIRS;
    if ((w->events & CIO__EV_EDGE) && r->trusted) {
        /* No system call: the next edge wakes it. A drain that was not one
         * (a spurious EAGAIN or short transfer) or a number reused behind
         * cio's back is caught by the re-check (see maybe_recheck). */
        if (r->hup & dirs)
            rc = queue_ready(b, w->fd);
        else if (!r->check)
            rc = check_later(b, w->fd);
    } else {
        rc = reg(b, w->fd);
        r->trusted = rc == 0 && ((w->events & CIO__EV_EDGE) || r->trusted);
    }
    /* A level watch re-checked readiness with MOD; an edge watch follows
     * a drain. Either way what was seen before is stale. */
    r->ready &= ~dirs;
    /* A regular file or directory: always ready, as poll(2) says.
     * Report it from the next poll, as for any other event. */
    if (rc == -EPERM)
        rc = queue_ready(b, w->fd);
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

/* Take `w` off its fd; the registration stays. */
static void detach(cio__backend *b, cio__fdw *w)
{
    fdrec *r = &b->fds[w->fd];
    if (r->reader == w)
        r->reader = NULL;
    if (r->writer == w)
        r->writer = NULL;
    b->waiting -= !w->internal;
}

static void ep_unwatch(cio__backend *b, cio__fdw *w)
{
    detach(b, w);
}

static void ep_closing(cio__backend *b, int fd)
{
    if (fd < 0 || (size_t)fd >= b->nfds)
        return;
    fdrec *r = &b->fds[fd];
    cio__fdw *rd = r->reader, *wr = r->writer;
    if (rd)
        detach(b, rd);
    if (wr && wr != rd)
        detach(b, wr);
    /* close(2) would drop the registration only with the last reference
     * to the file (a dup or a child may hold one). */
    if (r->added)
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
    r->added = r->trusted = r->check = false;
    r->ready = r->hup = 0;
    if (rd)
        rd->ready(rd, CIO__EV_CLOSED);
    if (wr && wr != rd)
        wr->ready(wr, CIO__EV_CLOSED);
}

/* `fd` is a new file (socket, accepted connection, stream): what the
 * number knew belongs to a file closed behind cio's back, if any. The
 * next edge watch re-checks the registration. */
static void ep_opened(cio__backend *b, int fd)
{
    if (fd < 0 || (size_t)fd >= b->nfds)
        return;
    b->fds[fd].trusted = false;
    b->fds[fd].ready = b->fds[fd].hup = 0;
}

/* Clear `events` from the readiness known for `fd`; return the ones that
 * were set. An fd without a trusted registration counts as ready. */
static unsigned ep_ready_take(cio__backend *b, int fd, unsigned events)
{
    events &= DIRS;
    if (fd < 0 || (size_t)fd >= b->nfds || !b->fds[fd].trusted)
        return events;
    fdrec *r = &b->fds[fd];
    unsigned got = (r->ready | r->hup) & events;
    r->ready &= ~events;
    return got;
}

/* Hand `ready` to the watches of `fd` that want it. */
static void deliver(cio__backend *b, fdrec *r, unsigned ready)
{
    cio__fdw *rd = (ready & CIO_READABLE) ? r->reader : NULL;
    cio__fdw *wr = (ready & CIO_WRITABLE) ? r->writer : NULL;
    if (rd)
        detach(b, rd);
    if (wr && wr != rd)
        detach(b, wr);
    if (rd)
        rd->ready(rd, ready & rd->events & DIRS);
    if (wr && wr != rd)
        wr->ready(wr, ready & wr->events & DIRS);
}

static void dispatch(cio__backend *b, int fd, uint32_t ev)
{
    if ((size_t)fd >= b->nfds)
        return;
    fdrec *r = &b->fds[fd];
    /* Closed by cio_close earlier in this batch: a stale event. */
    if (!r->added)
        return;
    unsigned ready = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        ready |= CIO_READABLE;
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        ready |= CIO_WRITABLE;
    /* The end of the peer's data is reported once but lasts: a short read
     * may have left it behind. (EPOLLHUP does not last: a TCP socket not
     * connected yet reports it.) */
    if (ev & EPOLLRDHUP)
        r->hup |= CIO_READABLE;
    /* Kept even when a watch takes it: a woken task that never gets to
     * its I/O (cancelled, timed out) leaves it for the next reader. */
    r->ready |= ready;
    deliver(b, r, ready);
}

/* Re-check the fds parked since the last time: MOD queues an event for
 * one that is ready now. A watch that cannot be re-checked is woken (its
 * task retries the call and waits again). */
static void recheck(cio__backend *b)
{
    size_t k = b->check.n;
    b->check.n = 0;
    for (size_t i = 0; i < k; i++) {
        int fd = b->check.v[i];
        fdrec *r = &b->fds[fd];
        if (!r->check)
            continue; /* closed meanwhile */
        r->check = false;
        if ((r->reader || r->writer) && reg(b, fd) < 0)
            deliver(b, r, DIRS);
    }
}

static int ep_wait(cio__backend *b, int64_t timeout)
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

/* Re-check the parked fds once the oldest has waited RECHECK_AFTER, and
 * bound a blocking wait so that this happens on time; on the virtual
 * clock, whenever the loop is idle (its time is about to jump). A busy
 * loop thus pays one epoll_ctl per parked fd per RECHECK_AFTER at most,
 * instead of one per wait. Returns the timeout to wait with. */
static int64_t maybe_recheck(cio__backend *b, int64_t timeout)
{
    cio_loop *l = b->loop;
    if (l->clock == CIO_CLOCK_VIRTUAL) {
        if (l->runq_head == NULL)
            recheck(b);
    } else {
        int64_t left = b->check_since + RECHECK_AFTER - l->now;
        if (left <= 0)
            recheck(b);
        else if (timeout < 0 || timeout > left)
            return left;
    }
    return b->ready.n > 0 ? 0 : timeout;
}

static int ep_poll(cio__backend *b, int64_t timeout)
{
    if (b->check.n > 0)
        timeout = maybe_recheck(b, timeout);
    if (b->ready.n > 0)
        timeout = 0;
    int n = ep_wait(b, timeout);
    if (n < 0)
        return n;
    size_t k = b->ready.n;
    b->ready.n = 0;
    for (size_t i = 0; i < k; i++)
        if ((size_t)b->ready.v[i] < b->nfds)
            deliver(b, &b->fds[b->ready.v[i]], DIRS);
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
    .opened = ep_opened,
    .ready_take = ep_ready_take,
};
