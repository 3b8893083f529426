/* Connecting by name: look the host up, then race its addresses the
 * RFC 8305 ("happy eyeballs") way. Each attempt is a task in a group the
 * caller opens; the caller starts the next attempt when the delay passes
 * or an attempt fails, takes the first connection, then cancels the group
 * and waits for it, so no attempt outlives the call. */
#include <sys/socket.h>

#include "cio/dns.h"
#include "internal.h"

#define HE_DELAY_DEFAULT (250 * CIO_MSEC)
/* More addresses than this are not tried (getaddrinfo lists are short;
 * a huge answer must not spawn a task per address). */
#define HE_MAX_ATTEMPTS 32

typedef struct attempt {
    cio_addr addr;
    cio_task *task; /* the group's handle while not yet reaped */
    int fd;         /* the connected socket, or -1 */
    int rc;         /* 0 connected, < 0 failed, 1 still running */
} attempt;

/* Attempts report through `rc` and return 0, so that a refused address
 * is not a failure of the group. */
static int attempt_run(void *arg)
{
    attempt *a = arg;
    int fd;
    int rc = cio_connect_addr(&fd, &a->addr);
    if (rc == 0)
        a->fd = fd;
    a->rc = rc;
    return 0;
}

/* The first node from `p` on whose family is (`same`) or is not the
 * family `first`. */
static const cio_addrinfo *next_of(const cio_addrinfo *p, int first, bool same)
{
    while (p && (p->addr.u.sa.sa_family == first) != same)
        p = p->next;
    return p;
}

/* RFC 8305 section 4: alternate the families, starting with the family
 * of the first address, each family keeping its own order. */
static size_t interleave(const cio_addrinfo *ai, attempt *v, size_t max)
{
    int first = ai->addr.u.sa.sa_family;
    const cio_addrinfo *p[2] = {next_of(ai, first, true),
                                next_of(ai, first, false)};
    size_t n = 0;
    int turn = 0;
    while (n < max && (p[0] || p[1])) {
        if (p[turn] == NULL)
            turn ^= 1;
        const cio_addrinfo *q = p[turn];
        v[n++] = (attempt){.addr = q->addr, .fd = -1, .rc = 1};
        p[turn] = next_of(q->next, first, turn == 0);
        turn ^= 1;
    }
    return n;
}

static int start(cio_group *g, attempt *a, int64_t *last)
{
    *last = cio_now();
    return cio_group_spawn(g, &a->task, attempt_run, a);
}

/* Wait for the next attempt to end, or for `deadline`. Returns the index
 * of the attempt that ended, -ETIMEDOUT at the deadline, or an error. */
static int reap(cio_group *g, attempt *v, size_t n, int64_t deadline)
{
    cio_scope sc;
    int rc = cio_scope_enter(&sc, deadline, 0);
    if (rc < 0)
        return rc;
    cio_task *t = NULL;
    int w = cio_group_next(g, &t);
    int sx = cio_scope_exit(&sc);
    if (w < 0)
        return sx == -ETIMEDOUT ? -ETIMEDOUT : w;
    for (size_t i = 0; i < n; i++)
        if (v[i].task == t) {
            v[i].task = NULL;
            cio_task_free(t);
            return (int)i;
        }
    cio_task_free(t);
    return -EPROTO; /* not one of ours: cannot happen */
}

/* Race the attempts in `v`. 0 with the winner's socket in `*out`. */
static int race(attempt *v, size_t n, int64_t delay, int *out)
{
    cio_group *g;
    int rc = cio_group_new(&g, CIO_GROUP_COLLECT);
    if (rc < 0)
        return rc;
    int64_t last;
    size_t started = 0, ended = 0;
    int winner = -1;
    rc = start(g, &v[started++], &last);
    while (rc == 0 && winner < 0 && ended < n) {
        if (started < n && started == ended) {
            rc = start(g, &v[started++], &last);
            continue;
        }
        int64_t deadline = started < n ? last + delay : CIO_NEVER;
        int i = reap(g, v, n, deadline);
        if (i >= 0) {
            ended++;
            if (v[i].rc == 0)
                winner = i;
            else if (started < n) /* a failure starts the next at once */
                rc = start(g, &v[started++], &last);
        } else if (i == -ETIMEDOUT) {
            rc = start(g, &v[started++], &last);
        } else {
            rc = i;
        }
    }
    /* The losers are cancelled and waited for; one may have connected
     * meanwhile: close every socket but the winner's. */
    cio_group_cancel(g);
    (void)cio_group_join(g);
    cio_group_free(g);
    for (size_t i = 0; i < n; i++)
        if (v[i].fd >= 0 && (int)i != winner)
            cio_close(v[i].fd);
    if (winner >= 0) {
        *out = v[winner].fd;
        return 0;
    }
    if (rc < 0)
        return rc;
    return v[0].rc < 0 ? v[0].rc : -ECONNREFUSED;
}

static int resolve_and_race(int *out, const char *host, int port,
                            const cio_connect_opts *o)
{
    cio_addrinfo *ai;
    int rc = cio_resolve(host, port, o->family, &ai);
    if (rc < 0)
        return rc;
    attempt *v = cio__calloc(HE_MAX_ATTEMPTS, sizeof *v);
    if (v == NULL) {
        cio_addrinfo_free(ai);
        return -ENOMEM;
    }
    size_t n = interleave(ai, v, HE_MAX_ATTEMPTS);
    cio_addrinfo_free(ai);
    int64_t delay =
        o->happy_eyeballs_delay ? o->happy_eyeballs_delay : HE_DELAY_DEFAULT;
    rc = n ? race(v, n, delay, out) : CIO_ENODATA;
    cio__free(v);
    return rc;
}

int cio_connect_host(int *out, const char *host, int port,
                     const cio_connect_opts *opts)
{
    if (cio_current() == NULL)
        return CIO_ENOTASK;
    cio_connect_opts o = opts ? *opts : (cio_connect_opts){0};
    if (out == NULL || host == NULL || port < 0 || port > 65535 ||
        o.happy_eyeballs_delay < 0 || o.timeout < 0 ||
        (o.family != AF_UNSPEC && o.family != AF_INET && o.family != AF_INET6))
        return -EINVAL;
    cio_scope sc;
    int rc = cio_scope_enter(
        &sc, o.timeout ? cio_deadline_after(o.timeout) : CIO_NEVER, 0);
    if (rc < 0)
        return rc;
    int fd = -1;
    rc = resolve_and_race(&fd, host, port, &o);
    int sx = cio_scope_exit(&sc);
    /* A connection made is kept even if the limit passed just after. */
    if (rc < 0 && sx == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    if (rc == 0)
        *out = fd;
    return rc;
}

int cio_open_connection_host(cio_stream **out, const char *host, int port,
                             const cio_connect_opts *opts)
{
    if (out == NULL)
        return -EINVAL;
    int fd;
    int rc = cio_connect_host(&fd, host, port, opts);
    if (rc < 0)
        return rc;
    return cio_stream_open(out, fd, opts ? &opts->stream : NULL);
}
