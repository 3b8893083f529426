/* Servers: an acceptor task owns a group with one task per connection.
 *
 * On io_uring (5.19 and later) the acceptor does not submit one ACCEPT
 * per connection: one multishot ACCEPT stays armed and the kernel posts
 * a completion for each connection it takes. They collect in a queue
 * that the acceptor drains. The kernel ends the multishot after an error
 * (EMFILE: the acceptor backs off, then arms it again) and when it is
 * cancelled: cio stops it when the queue is long or max_conns is
 * reached (backpressure: the kernel must not keep taking connections
 * nobody serves), and when the server closes. A connection that arrives
 * after that is closed, and the queue's memory lives until the kernel's
 * last completion, even when the server is gone by then. */
#include <unistd.h>

#include "internal.h"

#define BACKOFF_MIN (10 * CIO_MSEC)
#define BACKOFF_MAX CIO_SEC
/* Connections taken by the multishot accept and not yet served, above
 * which it is stopped until the acceptor catches up. */
#define MACC_HIGH 64

typedef struct macc {
    cio__op op;
    struct cio_server *srv; /* NULL once the server let go of it */
    int *fds;               /* accepted, not yet served: a FIFO */
    size_t head, n, cap;
    int err;       /* an error completion not yet reported */
    bool armed;    /* the kernel holds the operation */
    bool stopping; /* a cancellation was sent */
    bool broken;   /* the kernel refused multishot: plain accepts */
    bool got_one;
    cio_task *waiter;
} macc;

struct cio_server {
    int fd;
    cio__tracked track; /* debug mode: reported if never closed */
    cio_addr addr;
    cio_conn_fn fn;
    void *arg;
    cio_server_opts opts;
    cio_task *acceptor;
    cio_scope *accepting; /* the acceptor's scope around accepting */
    cio_sem slots;
    size_t nconns;
    int64_t grace;
    bool stopping;
    cio_event done;
    macc *macc; /* io_uring's multishot accept, or NULL */
};

typedef struct conn {
    cio_server *srv;
    int fd;
} conn;

static int serve_conn(void *arg)
{
    conn c = *(conn *)arg;
    cio__free(arg);
    cio_server *s = c.srv;
    cio_stream *st;
    int rc = cio_stream_open(&st, c.fd, &s->opts.stream);
    if (rc == 0) {
        rc = s->fn(st, s->arg);
        /* The handler is done: close under a shield so a cancelled
         * handler still releases its connection. */
        cio_scope sh;
        cio_scope_enter(&sh, cio_deadline_after(CIO_SEC), CIO_SCOPE_SHIELD);
        cio_stream_close(st);
        cio_scope_exit(&sh);
    }
    if (rc < 0 && rc != -ECANCELED && rc != -ECONNRESET && rc != -EPIPE)
        cio__report("connection handler failed: %s", cio_err_name(rc));
    s->nconns--;
    if (s->opts.max_conns)
        cio_sem_release(&s->slots);
    return 0; /* a failed connection does not stop the server */
}

static bool out_of_fds(int rc)
{
    return rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM;
}

/* ---- multishot accept (io_uring) ----------------------------------------- */

static int macc_push(macc *m, int fd)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        int *v = cio__malloc(cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < m->n; i++)
            v[i] = m->fds[(m->head + i) % m->cap];
        cio__free(m->fds);
        m->fds = v;
        m->cap = cap;
        m->head = 0;
    }
    m->fds[(m->head + m->n++) % m->cap] = fd;
    return 0;
}

static int macc_pop(macc *m)
{
    int fd = m->fds[m->head];
    m->head = (m->head + 1) % m->cap;
    m->n--;
    return fd;
}

static void macc_free(macc *m)
{
    while (m->n > 0)
        close(macc_pop(m));
    cio__free(m->fds);
    cio__free(m);
}

/* Ask the kernel to end the multishot; its last completion follows. */
static void macc_stop(macc *m)
{
    if (!m->armed || m->stopping)
        return;
    m->stopping = true;
    cio__loop->bops->cancel(cio__loop->backend, &m->op);
}

/* A completion of the multishot accept: a connection or how it ended. */
static void macc_done(cio__op *op)
{
    macc *m = CIO__CONTAINER(op, macc, op);
    int res = op->result;
    if (!op->more)
        m->armed = false;
    if (res >= 0) {
        m->got_one = true;
        if (m->srv == NULL || macc_push(m, res) < 0)
            close(res); /* nobody will serve it */
    } else if (res == -EINVAL && !m->got_one) {
        m->broken = true; /* a kernel without multishot accept */
    } else if (res != -ECANCELED && m->err == 0) {
        m->err = res;
    }
    if (m->srv == NULL) {
        if (!m->armed) {
            cio__loop->closing_ops--;
            macc_free(m);
        }
        return;
    }
    if (m->n >= MACC_HIGH)
        macc_stop(m);
    if (m->waiter) {
        cio_task *t = m->waiter;
        m->waiter = NULL;
        cio__wake(t, 0);
    }
}

static void macc_unlink(cio_task *t)
{
    macc *m = (macc *)t->wait_obj;
    m->waiter = NULL;
}

static int macc_arm(cio_server *s, macc *m)
{
    m->op = (cio__op){.kind = CIO__OP_ACCEPT_MULTI, .fd = s->fd,
                      .done = macc_done};
    int rc = cio__loop->bops->submit(cio__loop->backend, &m->op);
    if (rc < 0)
        return rc;
    cio__count_op(&cio__loop->stats, CIO__OP_ACCEPT_MULTI);
    m->armed = true;
    m->stopping = false;
    return 0;
}

/* The next connection from the multishot accept: 0 with `*fd`, an
 * accept error, -ENOTSUP (use plain accepts), or -ECANCELED. */
static int macc_next(cio_server *s, macc *m, int *fd)
{
    CIO__SELF_OR_RETURN(t);
    int rc = cio__checkpoint(t);
    while (rc == 0) {
        if (m->n > 0) {
            *fd = macc_pop(m);
            return 0;
        }
        if (m->err) {
            rc = m->err;
            m->err = 0;
            return rc;
        }
        if (m->broken)
            return -ENOTSUP;
        if (!m->armed && (rc = macc_arm(s, m)) < 0)
            return rc == -EBUSY ? -ENOTSUP : rc;
        m->waiter = t;
        t->unlink = macc_unlink;
        t->wait_q = NULL;
        rc = cio__park(t, CIO__W_FD, m, CIO_NEVER, 0);
    }
    return rc;
}

/* The server lets go of its multishot accept: one still armed is
 * cancelled and its last completion awaited (it comes with the next
 * turn of the loop), so that nothing of the server outlives its close;
 * the connections it delivered meanwhile are closed. Only if that wait
 * is broken (the loop's last-resort cancellation) is the queue left to
 * free itself at that completion, the loop waiting for it. */
static void macc_release(cio_server *s)
{
    macc *m = s->macc;
    if (m == NULL)
        return;
    macc_stop(m);
    cio_task *t = cio__self();
    while (m->armed && t) {
        m->waiter = t;
        t->unlink = macc_unlink;
        t->wait_q = NULL;
        if (cio__park(t, CIO__W_FD, m, CIO_NEVER,
                      CIO__PARK_UNINTERRUPTIBLE) < 0)
            break;
    }
    s->macc = NULL;
    while (m->n > 0)
        close(macc_pop(m));
    if (!m->armed) {
        macc_free(m);
        return;
    }
    m->srv = NULL;
    cio__loop->closing_ops++;
}

/* The next connection: from the multishot accept where there is one,
 * else one accept. */
static int next_conn(cio_server *s, int *fd)
{
    if (s->macc) {
        int rc = macc_next(s, s->macc, fd);
        if (rc != -ENOTSUP)
            return rc;
        macc_release(s);
    }
    return cio_accept(s->fd, fd, NULL);
}

/* ---- the acceptor ------------------------------------------------------- */

/* Accept until the accepting scope is cancelled. */
static void accept_loop(cio_server *s, cio_group *g)
{
    int64_t backoff = 0;
    for (;;) {
        /* At max_conns, stop the kernel taking more connections. */
        if (s->opts.max_conns && s->macc && cio_sem_value(&s->slots) <= 0)
            macc_stop(s->macc);
        if (s->opts.max_conns && cio_sem_acquire(&s->slots) < 0)
            return;
        int fd;
        int rc = next_conn(s, &fd);
        if (rc == 0) {
            backoff = 0;
            if (s->addr.u.sa.sa_family != AF_UNIX)
                cio_set_nodelay(fd, true);
            conn *c = cio__malloc(sizeof *c);
            cio_spawn_opts o = {.name = "conn", .stack_size =
                                s->opts.stack_size};
            if (c) {
                *c = (conn){s, fd};
                rc = cio_group_spawn_ex(g, NULL, serve_conn, c, &o);
            } else {
                rc = -ENOMEM;
            }
            if (rc == 0) {
                s->nconns++;
                continue;
            }
            cio__free(c);
            close(fd);
        }
        if (s->opts.max_conns)
            cio_sem_release(&s->slots);
        if (rc == -ECANCELED || rc == CIO_ECLOSING)
            return;
        if (out_of_fds(rc)) {
            /* Back off instead of spinning on a full fd table. */
            backoff = backoff ? backoff * 2 : BACKOFF_MIN;
            if (backoff > BACKOFF_MAX)
                backoff = BACKOFF_MAX;
            if (cio_sleep(backoff) < 0)
                return;
        }
        /* Other errors (ECONNABORTED, EPROTO...) concern one client. */
    }
}

static int acceptor(void *arg)
{
    cio_server *s = arg;
    cio_group *g;
    int rc = cio_group_new(&g, CIO_GROUP_COLLECT);
    if (rc == 0) {
        cio_scope acc;
        cio_scope_enter(&acc, CIO_NEVER, 0);
        s->accepting = &acc;
        if (!s->stopping)
            accept_loop(s, g);
        s->accepting = NULL;
        cio_scope_exit(&acc);
        macc_release(s);
        cio_close(s->fd);
        s->fd = -1;
        /* Let the connections finish within the grace period. */
        cio_scope gr;
        cio_scope_enter(&gr, cio_deadline_after(s->grace), 0);
        cio_group_wait(g, CIO_WAIT_ALL_COMPLETED);
        cio_scope_exit(&gr);
        cio_group_cancel(g);
        cio_group_join(g);
        cio_group_free(g);
    }
    if (s->fd >= 0) {
        macc_release(s);
        cio_close(s->fd);
        s->fd = -1;
    }
    cio_event_set(&s->done);
    return rc;
}

int cio_server_start(cio_server **out, const cio_addr *a, cio_conn_fn fn,
                     void *arg, const cio_server_opts *opts)
{
    if (out == NULL || a == NULL || fn == NULL)
        return -EINVAL;
    if (cio__loop == NULL)
        return CIO_ENOTASK;
    cio_server *s = cio__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    if (opts)
        s->opts = *opts;
    s->fn = fn;
    s->arg = arg;
    cio_sem_init(&s->slots, (long)s->opts.max_conns, 0);
    int rc = cio_listen(&s->fd, a, s->opts.backlog, s->opts.listen_flags);
    if (rc < 0)
        goto fail;
    s->addr.len = sizeof s->addr.u;
    if (getsockname(s->fd, &s->addr.u.sa, &s->addr.len) == -1) {
        rc = -errno;
        goto fail_fd;
    }
    if (a->u.sa.sa_family == AF_UNIX)
        s->addr = *a;
    cio__track(&s->track, "server", s->fd);
    cio_loop *l = cio__loop;
    if (l->bops->supports &&
        l->bops->supports(l->backend, CIO__OP_ACCEPT_MULTI)) {
        s->macc = cio__calloc(1, sizeof *s->macc);
        if (s->macc)
            s->macc->srv = s; /* without it: plain accepts */
    }
    cio_spawn_opts o = {.name = "acceptor"};
    rc = cio_spawn_ex(&s->acceptor, acceptor, s, &o);
    if (rc < 0)
        goto fail_fd;
    *out = s;
    return 0;
fail_fd:
    cio__untrack(&s->track);
    cio__free(s->macc);
    close(s->fd);
fail:
    cio__free(s);
    return rc;
}

const cio_addr *cio_server_addr(const cio_server *s)
{
    return s ? &s->addr : NULL;
}

size_t cio_server_conns(const cio_server *s)
{
    return s ? s->nconns : 0;
}

int cio_server_wait(cio_server *s)
{
    if (s == NULL)
        return -EINVAL;
    return cio_event_wait(&s->done);
}

int cio_server_close(cio_server *s, int64_t grace)
{
    if (s == NULL || grace < 0)
        return -EINVAL;
    if (cio__self() == NULL)
        return CIO_ENOTASK;
    cio__untrack(&s->track);
    s->grace = grace;
    s->stopping = true;
    if (s->accepting)
        cio_scope_cancel(s->accepting);
    int rc = cio_task_join(s->acceptor);
    if (!cio_task_done(s->acceptor)) {
        /* Cancelled while waiting: cut the grace period short. */
        cio_task_cancel(s->acceptor);
        cio__join_quiet(s->acceptor);
        rc = -ECANCELED;
    } else {
        rc = 0;
    }
    cio_task_free(s->acceptor);
    cio__free(s);
    return rc;
}
