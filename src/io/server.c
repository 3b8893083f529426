/* Servers: an acceptor task owns a group with one task per connection. */
#include <unistd.h>

#include "internal.h"

#define BACKOFF_MIN (10 * CIO_MSEC)
#define BACKOFF_MAX CIO_SEC

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

/* Accept until the accepting scope is cancelled. */
static void accept_loop(cio_server *s, cio_group *g)
{
    int64_t backoff = 0;
    for (;;) {
        if (s->opts.max_conns && cio_sem_acquire(&s->slots) < 0)
            return;
        int fd;
        int rc = cio_accept(s->fd, &fd, NULL);
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
    cio_spawn_opts o = {.name = "acceptor"};
    rc = cio_spawn_ex(&s->acceptor, acceptor, s, &o);
    if (rc < 0)
        goto fail_fd;
    *out = s;
    return 0;
fail_fd:
    cio__untrack(&s->track);
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
