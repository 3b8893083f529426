/* Servers' accepting on both backends, written for io_uring's multishot
 * accept (one submission, a completion per connection): many connections,
 * the backpressure of max_conns, errors, and closing with connections
 * taken by the kernel but not yet served. On epoll (and with
 * CIO_URING_OPS=nomultishot) the same tests run plain accepts. */
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"
#include "echo.h"

static bool multishot(void)
{
    cio_loop *l = cio__loop;
    return l->bops->supports &&
           l->bops->supports(l->backend, CIO__OP_ACCEPT_MULTI);
}

/* Open descriptors of this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the DIR's own */
}

static int start(cio_server **srv, cio_conn_fn fn, void *arg,
                 const cio_server_opts *o)
{
    cio_addr a;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    return cio_server_start(srv, &a, fn, arg, o);
}

typedef struct client {
    const cio_addr *addr;
    int id;
} client;

static int one_client(void *arg)
{
    client *c = arg;
    int fd;
    int rc = cio_connect_addr(&fd, c->addr);
    if (rc < 0)
        return rc;
    cio_stream *s;
    rc = cio_stream_open(&s, fd, NULL);
    if (rc < 0)
        return rc;
    char msg[32], buf[32];
    int len = snprintf(msg, sizeof msg, "client %d\n", c->id);
    rc = cio_stream_write(s, msg, (size_t)len);
    ssize_t n = rc < 0 ? rc : cio_stream_readline(s, buf, sizeof buf);
    if (n >= 0 && (n != len || memcmp(buf, msg, (size_t)len) != 0))
        n = -EPROTO;
    int crc = cio_stream_close(s);
    return n < 0 ? (int)n : crc;
}

TEST_REALTIME(accept_many_connections_from_one_submission)
{
    int served = 0;
    cio_server *srv;
    ASSERT_OK(start(&srv, serve_echo, &served, NULL));
    enum { N = 300 };
    static client args[N];
    static cio_call calls[N];
    cio_stats before, after;
    ASSERT_OK(cio_stats_get(&before));
    for (int i = 0; i < N; i++) {
        args[i] = (client){cio_server_addr(srv), i};
        calls[i] = (cio_call){.fn = one_client, .arg = &args[i]};
    }
    ASSERT_OK(cio_gather(calls, N, 0));
    ASSERT_OK(cio_stats_get(&after));
    ASSERT_EQ(N, served);
    /* The clients' connects are not accepts: what ops_accept counts
     * here are the server's submissions. One multishot serves them all
     * (re-armed only if the kernel ended it). */
    if (multishot())
        ASSERT_TRUE(after.ops_accept - before.ops_accept < 10);
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    return 0;
}

/* Holds its connection until released, counting how many are held. */
typedef struct holder {
    int live, peak, total;
    cio_event release;
} holder;

static int hold(cio_stream *s, void *arg)
{
    (void)s;
    holder *h = arg;
    h->total++;
    if (++h->live > h->peak)
        h->peak = h->live;
    int rc = cio_event_wait(&h->release);
    h->live--;
    return rc;
}

TEST_REALTIME(accept_max_conns_holds_with_a_burst_waiting)
{
    holder h = {0};
    cio_event_init(&h.release);
    cio_server_opts o = {.max_conns = 3};
    cio_server *srv;
    ASSERT_OK(start(&srv, hold, &h, &o));
    enum { N = 40 };
    int fds[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(cio_connect_addr(&fds[i], cio_server_addr(srv)));
    ASSERT_OK(cio_sleep(50 * CIO_MSEC));
    ASSERT_EQ(3, h.live);
    ASSERT_EQ(3, cio_server_conns(srv));
    /* Release them: the rest, waiting in the kernel or in the accept
     * queue, are served three at a time. */
    while (h.total < N) {
        cio_event_set(&h.release);
        ASSERT_OK(cio_sleep(5 * CIO_MSEC));
        cio_event_clear(&h.release);
        ASSERT_OK(cio_sleep(5 * CIO_MSEC));
    }
    ASSERT_EQ(3, h.peak);
    cio_event_set(&h.release);
    for (int i = 0; i < N; i++)
        cio_close(fds[i]);
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    return 0;
}

/* Connections the server has not served yet when it closes (held back by
 * max_conns: in the listen queue, or already taken by the kernel's
 * multishot accept): each is closed, none is left open. */
TEST_REALTIME(accept_close_with_pending_connections_leaks_nothing)
{
    holder h = {0};
    cio_event_init(&h.release);
    cio_server_opts o = {.max_conns = 1};
    cio_server *srv;
    int fds0 = count_fds();
    ASSERT_OK(start(&srv, hold, &h, &o));
    enum { N = 30 };
    int fds[N];
    /* Connect them all without letting the loop run, so that the
     * multishot accept takes them in one batch, beyond max_conns. */
    const cio_addr *a = cio_server_addr(srv);
    for (int i = 0; i < N; i++) {
        ASSERT_OK(cio_socket(&fds[i], AF_INET, SOCK_STREAM, 0));
        if (connect(fds[i], &a->u.sa, a->len) != 0)
            ASSERT_EQ(EINPROGRESS, errno);
    }
    ASSERT_OK(cio_sleep(30 * CIO_MSEC));
    ASSERT_EQ(1, h.live);
    ASSERT_OK(cio_server_close(srv, 0));
    ASSERT_EQ(0, h.live);
    /* Every client sees its connection end. */
    for (int i = 0; i < N; i++) {
        char c;
        ssize_t n = cio_recv(fds[i], &c, 1, 0);
        if (n != 0 && n != -ECONNRESET)
            TEST_FAIL_("client %d: %zd", i, n);
        cio_close(fds[i]);
    }
    ASSERT_EQ(fds0, count_fds());
    return 0;
}

/* The server closes while connections keep arriving: those the kernel
 * takes after the close began are closed when their completions come. */
static int connect_burst(void *arg)
{
    const cio_addr *a = arg;
    for (int i = 0; i < 50; i++) {
        int fd;
        int rc = cio_connect_addr(&fd, a);
        if (rc == -ECONNREFUSED || rc == -ECONNRESET)
            return 0; /* the listener is gone */
        if (rc < 0)
            return rc;
        cio_close(fd);
    }
    return 0;
}

TEST_REALTIME(accept_close_during_a_burst_leaks_nothing)
{
    for (int round = 0; round < 5; round++) {
        holder h = {0};
        cio_event_init(&h.release);
        cio_event_set(&h.release);
        cio_server *srv;
        int fds0 = count_fds();
        ASSERT_OK(start(&srv, hold, &h, NULL));
        cio_addr a = *cio_server_addr(srv);
        cio_task *t[4];
        for (int i = 0; i < 4; i++)
            ASSERT_OK(cio_spawn(&t[i], connect_burst, &a));
        for (int y = 0; y < round * 3; y++)
            ASSERT_OK(cio_yield());
        ASSERT_OK(cio_server_close(srv, 0));
        for (int i = 0; i < 4; i++) {
            ASSERT_OK(cio_task_join(t[i]));
            cio_task_free(t[i]);
        }
        ASSERT_EQ(fds0, count_fds());
    }
    return 0;
}

/* A cancelled server (its owner cancelled while waiting on it) closes
 * the same way. */
static int run_server(void *arg)
{
    int *port = arg;
    cio_server *srv;
    int rc = start(&srv, serve_echo, &(int){0}, NULL);
    if (rc < 0)
        return rc;
    *port = cio_addr_port(cio_server_addr(srv));
    rc = cio_server_wait(srv);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    cio_server_close(srv, 0);
    cio_scope_exit(&sh);
    return rc;
}

TEST_REALTIME(accept_server_task_cancelled)
{
    int fds0 = count_fds();
    int port = 0;
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_server, &port));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_TRUE(port > 0);
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", port));
    ASSERT_OK(one_client(&(client){&a, 1}));
    int fd;
    ASSERT_OK(cio_connect_addr(&fd, &a));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    char c;
    ssize_t n = cio_recv(fd, &c, 1, 0);
    ASSERT_TRUE(n == 0 || n == -ECONNRESET);
    cio_close(fd);
    ASSERT_EQ(-ECONNREFUSED, cio_connect_addr(&fd, &a));
    ASSERT_EQ(fds0, count_fds());
    return 0;
}

/* Out of descriptors: the kernel ends the multishot with EMFILE; the
 * acceptor backs off, arms it again, and serves everyone once
 * descriptors are free. */
TEST_NATIVE(accept_recovers_after_emfile)
{
    int served = 0;
    cio_server *srv;
    ASSERT_OK(start(&srv, serve_echo, &served, NULL));
    struct rlimit old, lim;
    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
    enum { N = 8 };
    int c[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(cio_socket(&c[i], AF_INET, SOCK_STREAM, 0));
    int probe;
    ASSERT_OK(cio_socket(&probe, AF_INET, SOCK_STREAM, 0));
    lim = old;
    lim.rlim_cur = (rlim_t)probe + 1;
    cio_close(probe);
    int spare[64], nspare = 0;
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &lim));
    while (nspare < 64 && (spare[nspare] = dup(0)) >= 0)
        nspare++;
    ASSERT_TRUE(nspare < 64);
    for (int i = 0; i < N; i++) {
        ASSERT_OK(cio_connect(c[i], cio_server_addr(srv)));
        ASSERT_EQ(2, cio_send(c[i], "x\n", 2, 0));
    }
    cio_stats before, after;
    ASSERT_OK(cio_stats_get(&before));
    ASSERT_OK(cio_sleep(100 * CIO_MSEC));
    ASSERT_OK(cio_stats_get(&after));
    ASSERT_EQ(0, served);
    ASSERT_TRUE(after.loop_turns - before.loop_turns < 40);
    for (int i = 0; i < nspare; i++)
        close(spare[i]);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
    for (int i = 0; i < N; i++) {
        char buf[4];
        ASSERT_EQ(2, cio_recv(c[i], buf, sizeof buf, 0));
        cio_close(c[i]);
    }
    ASSERT_EQ(N, served);
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    return 0;
}
