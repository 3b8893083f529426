/* Connecting by name with happy eyeballs (RFC 8305), on loopback. An
 * IPv6 address that never answers is [::1] on a listener whose accept
 * queue is full: the kernel drops further SYNs, so those connects hang. */
#include <netinet/in.h>
#include <stdio.h>
#include <unistd.h>

#include "dns_server.h"
#include "test.h"

/* A listener on [::1]:port (port 0: any) with a full accept queue. The
 * connections that fill it go in fill[]; returns how many, or an error. */
static int blackhole_v6(int *lfd, int *port, int fill[4])
{
    int fd;
    int rc = cio_socket(&fd, AF_INET6, SOCK_STREAM, 0);
    if (rc < 0)
        return rc;
    int one = 1;
    cio_addr a;
    cio_addr_ip(&a, "::1", *port);
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0 ||
        bind(fd, &a.u.sa, a.len) != 0 || listen(fd, 0) != 0 ||
        getsockname(fd, &a.u.sa, &a.len) != 0) {
        rc = -errno;
        cio_close(fd);
        return rc;
    }
    *lfd = fd;
    *port = cio_addr_port(&a);
    /* Fill the queue until a connect no longer completes. */
    int n = 0;
    for (; n < 4; n++) {
        cio_scope sc;
        cio_scope_enter(&sc, cio_deadline_after(10 * CIO_MSEC), 0);
        rc = cio_connect_addr(&fill[n], &a);
        int sx = cio_scope_exit(&sc);
        if (rc < 0)
            return sx == -ETIMEDOUT && n > 0 ? n : (rc < 0 ? rc : -EIO);
    }
    return -EIO; /* the queue never filled */
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        cio_close(fds[i]);
}

/* A listener on 127.0.0.1:port. */
static int listen_v4(int *fd, int port)
{
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", port);
    return cio_listen(fd, &a, 16, 0);
}

static int peer_family(int fd)
{
    cio_addr a;
    a.len = sizeof a.u;
    if (getpeername(fd, &a.u.sa, &a.len) != 0)
        return -errno;
    return a.u.sa.sa_family;
}

static int write_hosts(char *path, const char *text)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

/* Resolve names from `text` only (no DNS server answers). */
static int use_hosts(char *path, const char *text)
{
    int rc = write_hosts(path, text);
    if (rc < 0)
        return rc;
    cio_dns_config cfg = {.servers = "127.0.0.1:9",
                          .hosts_file = path,
                          .no_search = true,
                          .timeout = 100 * CIO_MSEC,
                          .tries = 1};
    return cio_dns_configure(&cfg);
}

/* The same port on [::1] (blackholed) and 127.0.0.1 (listening). */
static int dual_setup(int *l6, int *l4, int *port, int fill[4], int *nfill)
{
    int rc = -EADDRINUSE;
    for (int i = 0; i < 20 && rc == -EADDRINUSE; i++) {
        *port = 0;
        rc = blackhole_v6(l6, port, fill);
        if (rc < 0)
            return rc;
        *nfill = rc;
        rc = listen_v4(l4, *port);
        if (rc < 0) {
            close_all(fill, *nfill);
            cio_close(*l6);
        }
    }
    return rc;
}

TEST(connect_v4_wins_after_the_delay_and_loser_is_closed)
{
    int l6, l4, port, fill[4], nfill;
    ASSERT_OK(dual_setup(&l6, &l4, &port, fill, &nfill));
    char path[] = "/tmp/cio-hosts-XXXXXX";
    ASSERT_OK(use_hosts(path, "::1 dual.test\n127.0.0.1 dual.test\n"));
    int fds = cio_test_open_fds();
    int64_t t0 = cio_now();
    int fd;
    ASSERT_OK(cio_connect_host(&fd, "dual.test", port, NULL));
    ASSERT_EQ(250 * CIO_MSEC, cio_now() - t0);
    ASSERT_EQ(AF_INET, peer_family(fd));
    ASSERT_EQ(fds + 1, cio_test_open_fds()); /* the v6 attempt is closed */
    cio_close(fd);
    /* A shorter delay, asked for. */
    cio_connect_opts o = {.happy_eyeballs_delay = 40 * CIO_MSEC};
    t0 = cio_now();
    ASSERT_OK(cio_connect_host(&fd, "dual.test", port, &o));
    ASSERT_EQ(40 * CIO_MSEC, cio_now() - t0);
    ASSERT_EQ(AF_INET, peer_family(fd));
    cio_close(fd);
    /* IPv6 only: it hangs until the limit. */
    o = (cio_connect_opts){.family = AF_INET6, .timeout = CIO_SEC};
    t0 = cio_now();
    ASSERT_EQ(-ETIMEDOUT, cio_connect_host(&fd, "dual.test", port, &o));
    ASSERT_EQ(CIO_SEC, cio_now() - t0);
    ASSERT_EQ(fds, cio_test_open_fds());
    unlink(path);
    close_all(fill, nfill);
    cio_close(l6);
    cio_close(l4);
    return 0;
}

TEST(connect_through_dns_prefers_v6_then_falls_back)
{
    NEED_CARES();
    int l6, l4, port, fill[4], nfill;
    ASSERT_OK(dual_setup(&l6, &l4, &port, fill, &nfill));
    static const dns_rr rrs[] = {
        {"dual.test", RR_A, 60, "127.0.0.1", 0, 0, 0},
        {"dual.test", RR_AAAA, 60, "::1", 0, 0, 0},
    };
    dns_server s;
    ASSERT_OK(dns_server_start(&s, rrs, 2));
    ASSERT_OK(dns_server_use(&s, NULL));
    int fds = cio_test_open_fds();
    int64_t t0 = cio_now();
    int fd;
    ASSERT_OK(cio_connect_host(&fd, "dual.test", port, NULL));
    ASSERT_EQ(250 * CIO_MSEC, cio_now() - t0);
    ASSERT_EQ(AF_INET, peer_family(fd));
    ASSERT_EQ(fds + 1, cio_test_open_fds());
    cio_close(fd);
    dns_server_stop(&s);
    close_all(fill, nfill);
    cio_close(l6);
    cio_close(l4);
    return 0;
}

TEST(connect_refused_moves_on_at_once)
{
    int l4, port = 0;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    ASSERT_OK(cio_listen(&l4, &a, 16, 0));
    a.len = sizeof a.u;
    ASSERT_OK(getsockname(l4, &a.u.sa, &a.len));
    port = cio_addr_port(&a);
    /* "localhost" is ::1 first, where nothing listens on this port. */
    int64_t t0 = cio_now();
    int fd;
    ASSERT_OK(cio_connect_host(&fd, "localhost", port, NULL));
    ASSERT_EQ(0, cio_now() - t0);
    ASSERT_EQ(AF_INET, peer_family(fd));
    int peer;
    ASSERT_OK(cio_accept(l4, &peer, NULL));
    cio_close(peer);
    cio_close(fd);
    /* Numeric hosts connect without any lookup. */
    ASSERT_OK(cio_connect_host(&fd, "127.0.0.1", port, NULL));
    cio_close(fd);
    cio_close(l4);
    return 0;
}

TEST(connect_all_refused_returns_the_first_error)
{
    /* A port nobody listens on, on either family. */
    int l, port;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    ASSERT_OK(cio_listen(&l, &a, 1, 0));
    a.len = sizeof a.u;
    ASSERT_OK(getsockname(l, &a.u.sa, &a.len));
    port = cio_addr_port(&a);
    cio_close(l);
    char path[] = "/tmp/cio-hosts-XXXXXX";
    ASSERT_OK(use_hosts(path, "::1 dead.test\n127.0.0.1 dead.test\n"
                              "::1 dead.test\n"));
    int fds = cio_test_open_fds();
    int64_t t0 = cio_now();
    int fd = -1;
    ASSERT_EQ(-ECONNREFUSED, cio_connect_host(&fd, "dead.test", port, NULL));
    ASSERT_EQ(0, cio_now() - t0);
    ASSERT_EQ(-1, fd);
    ASSERT_EQ(fds, cio_test_open_fds());
    unlink(path);
    return 0;
}

TEST(connect_deadline_covers_the_lookup)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, NULL, 0));
    ASSERT_OK(dns_server_use(&s, NULL));
    int fds = cio_test_open_fds();
    cio_connect_opts o = {.timeout = 300 * CIO_MSEC};
    int64_t t0 = cio_now();
    int fd;
    ASSERT_EQ(-ETIMEDOUT, cio_connect_host(&fd, "silent.test", 80, &o));
    ASSERT_EQ(300 * CIO_MSEC, cio_now() - t0);
    ASSERT_EQ(fds, cio_test_open_fds());
    /* The caller's own scope works the same way (-ECANCELED inside). */
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_connect_host(&fd, "silent.test", 80, NULL));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(CIO_ENOTFOUND, cio_connect_host(&fd, "nope.test", 80, NULL));
    ASSERT_EQ(fds, cio_test_open_fds());
    dns_server_stop(&s);
    return 0;
}

typedef struct conn_job {
    const char *host;
    int port;
    int rc;
} conn_job;

static int connect_task(void *arg)
{
    conn_job *j = arg;
    int fd;
    j->rc = cio_connect_host(&fd, j->host, j->port, NULL);
    if (j->rc == 0)
        cio_close(fd);
    return j->rc < 0 ? j->rc : 0;
}

TEST(connect_cancelled_mid_race_closes_every_attempt)
{
    int l6, l4, port, fill[4], nfill;
    ASSERT_OK(dual_setup(&l6, &l4, &port, fill, &nfill));
    cio_close(l4); /* IPv4 refused, IPv6 hangs */
    char path[] = "/tmp/cio-hosts-XXXXXX";
    ASSERT_OK(use_hosts(path, "::1 hole.test\n::1 hole.test\n"
                              "127.0.0.1 hole.test\n"));
    int fds = cio_test_open_fds();
    conn_job j = {"hole.test", port, 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, connect_task, &j));
    /* Both IPv6 attempts started and hang; the IPv4 one was refused. */
    ASSERT_OK(cio_sleep(600 * CIO_MSEC));
    ASSERT_EQ(1, j.rc);
    ASSERT_EQ(fds + 2, cio_test_open_fds());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, j.rc);
    ASSERT_EQ(fds, cio_test_open_fds());
    unlink(path);
    close_all(fill, nfill);
    cio_close(l6);
    return 0;
}

static int echo(cio_stream *s, void *arg)
{
    (void)arg;
    char buf[64];
    ssize_t n = cio_stream_readline(s, buf, sizeof buf);
    if (n <= 0)
        return (int)n;
    int rc = cio_stream_write(s, buf, (size_t)n);
    return rc < 0 ? rc : cio_stream_flush(s);
}

TEST(open_connection_host_gives_a_stream)
{
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    cio_server *srv;
    ASSERT_OK(cio_server_start(&srv, &a, echo, NULL, NULL));
    int port = cio_addr_port(cio_server_addr(srv));
    cio_stream *s;
    cio_connect_opts o = {.family = AF_INET, .stream = {.limit = 1024}};
    ASSERT_OK(cio_open_connection_host(&s, "localhost", port, &o));
    ASSERT_OK(cio_stream_write(s, "ping\n", 5));
    char buf[16];
    ASSERT_EQ(5, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "ping\n", 5) == 0);
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(cio_server_close(srv, 0));
    return 0;
}

/* cio_open_connection takes names too: looked up, then raced. */
TEST(open_connection_resolves_a_name)
{
    char path[] = "/tmp/cio-hosts-XXXXXX";
    ASSERT_OK(use_hosts(path, "127.0.0.1 echo.test\n"));
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    cio_server *srv;
    ASSERT_OK(cio_server_start(&srv, &a, echo, NULL, NULL));
    int port = cio_addr_port(cio_server_addr(srv));
    cio_stream *s;
    ASSERT_OK(cio_open_connection(&s, "echo.test", port, NULL));
    ASSERT_OK(cio_stream_write(s, "hi\n", 3));
    char buf[8];
    ASSERT_EQ(3, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_OK(cio_stream_close(s));
    /* Not in the hosts file, and no DNS server answers. */
    ASSERT_EQ(-ETIMEDOUT, cio_open_connection(&s, "nowhere.test", port,
                                              NULL));
    ASSERT_EQ(-EINVAL, cio_open_connection(&s, "", port, NULL));
    ASSERT_EQ(-EINVAL, cio_open_connection(&s, "echo.test", 70000, NULL));
    ASSERT_OK(cio_server_close(srv, 0));
    unlink(path);
    return 0;
}

TEST(connect_bad_arguments)
{
    int fd;
    cio_connect_opts neg = {.happy_eyeballs_delay = -1};
    cio_connect_opts fam = {.family = AF_UNIX};
    cio_connect_opts tmo = {.timeout = -5};
    ASSERT_EQ(-EINVAL, cio_connect_host(NULL, "localhost", 80, NULL));
    ASSERT_EQ(-EINVAL, cio_connect_host(&fd, NULL, 80, NULL));
    ASSERT_EQ(-EINVAL, cio_connect_host(&fd, "localhost", -1, NULL));
    ASSERT_EQ(-EINVAL, cio_connect_host(&fd, "localhost", 65536, NULL));
    ASSERT_EQ(-EINVAL, cio_connect_host(&fd, "localhost", 80, &neg));
    ASSERT_EQ(-EINVAL, cio_connect_host(&fd, "localhost", 80, &fam));
    ASSERT_EQ(-EINVAL, cio_connect_host(&fd, "localhost", 80, &tmo));
    ASSERT_EQ(-EINVAL, cio_connect_host(&fd, "bad..name", 80, NULL));
    cio_stream *s;
    ASSERT_EQ(-EINVAL, cio_open_connection_host(NULL, "localhost", 80, NULL));
    ASSERT_EQ(-EINVAL, cio_open_connection_host(&s, NULL, 80, NULL));
    return 0;
}
