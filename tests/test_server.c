/* Sockets and servers on loopback: echo, limits, graceful close, errors. */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "echo.h"

static int start_echo(cio_server **srv, const char *ip, int *served,
                      const cio_server_opts *o)
{
    cio_addr a;
    int rc = cio_addr_ip(&a, ip, 0);
    if (rc < 0)
        return rc;
    return cio_server_start(srv, &a, serve_echo, served, o);
}

static int roundtrip(const cio_addr *a, const char *msg)
{
    int fd;
    ASSERT_OK(cio_connect_addr(&fd, a));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, fd, NULL));
    ASSERT_OK(cio_stream_write(s, msg, strlen(msg)));
    char buf[256];
    ssize_t n = cio_stream_readline(s, buf, sizeof buf);
    ASSERT_EQ((ssize_t)strlen(msg), n);
    ASSERT_TRUE(memcmp(buf, msg, (size_t)n) == 0);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST_REALTIME(server_echo_ipv4_and_ipv6)
{
    int served = 0;
    cio_server *v4, *v6;
    ASSERT_OK(start_echo(&v4, "127.0.0.1", &served, NULL));
    ASSERT_OK(start_echo(&v6, "::1", &served, NULL));
    ASSERT_TRUE(cio_addr_port(cio_server_addr(v4)) > 0);
    char name[64];
    ASSERT_TRUE(cio_addr_format(cio_server_addr(v6), name, sizeof name) > 0);
    ASSERT_TRUE(strncmp(name, "[::1]:", 6) == 0);
    ASSERT_OK(roundtrip(cio_server_addr(v4), "hello v4\n"));
    ASSERT_OK(roundtrip(cio_server_addr(v6), "hello v6\n"));
    ASSERT_EQ(2, served);
    ASSERT_OK(cio_server_close(v4, CIO_SEC));
    ASSERT_OK(cio_server_close(v6, CIO_SEC));
    return 0;
}

TEST_REALTIME(server_unix_domain)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/cio-test-%d.sock", (int)getpid());
    unlink(path);
    cio_addr a;
    ASSERT_OK(cio_addr_unix(&a, path));
    cio_server *srv;
    ASSERT_OK(cio_server_start(&srv, &a, serve_echo, NULL, NULL));
    ASSERT_OK(roundtrip(cio_server_addr(srv), "over unix\n"));
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    unlink(path);
    return 0;
}

typedef struct client_arg {
    const cio_addr *addr;
    int id;
} client_arg;

static int client(void *arg)
{
    client_arg *c = arg;
    char msg[32];
    snprintf(msg, sizeof msg, "client %d\n", c->id);
    for (int i = 0; i < 20; i++)
        if (roundtrip(c->addr, msg) != 0)
            return -EPROTO;
    return 0;
}

TEST_REALTIME(server_many_concurrent_clients)
{
    int served = 0;
    cio_server *srv;
    ASSERT_OK(start_echo(&srv, "127.0.0.1", &served, NULL));
    enum { N = 50 };
    client_arg args[N];
    cio_call calls[N];
    for (int i = 0; i < N; i++) {
        args[i] = (client_arg){cio_server_addr(srv), i};
        calls[i] = (cio_call){client, &args[i], 0};
    }
    ASSERT_OK(cio_gather(calls, N, 0));
    ASSERT_EQ(N * 20, served);
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    return 0;
}

static int hold(cio_stream *s, void *arg)
{
    int *live = arg;
    (*live)++;
    char c;
    ssize_t n = cio_stream_read(s, &c, 1); /* until the client closes */
    (*live)--;
    return n < 0 ? (int)n : 0;
}

TEST_REALTIME(server_max_conns_pauses_accepting)
{
    int live = 0;
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    cio_server_opts o = {.max_conns = 2};
    cio_server *srv;
    ASSERT_OK(cio_server_start(&srv, &a, hold, &live, &o));
    int fds[3];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(cio_connect_addr(&fds[i], cio_server_addr(srv)));
    ASSERT_OK(cio_sleep(50 * CIO_MSEC));
    ASSERT_EQ(2, live);
    ASSERT_EQ(2, cio_server_conns(srv));
    cio_close(fds[0]);
    ASSERT_OK(cio_sleep(50 * CIO_MSEC));
    ASSERT_EQ(2, live); /* the third got in */
    cio_close(fds[1]);
    cio_close(fds[2]);
    ASSERT_OK(cio_sleep(50 * CIO_MSEC));
    ASSERT_EQ(0, live);
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    return 0;
}

typedef struct slow_state {
    int started, finished;
} slow_state;

/* The first connection needs 100 ms, the second 10 s. */
static int slow_handler(cio_stream *s, void *arg)
{
    slow_state *st = arg;
    int64_t need = st->started++ == 0 ? 100 * CIO_MSEC : 10 * CIO_SEC;
    int rc = cio_sleep(need);
    char out = rc == 0 ? 'F' : 'C';
    st->finished++;
    cio_stream_write(s, &out, 1);
    return rc;
}

TEST(server_graceful_close_waits_then_cancels)
{
    slow_state st = {0, 0};
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    cio_server *srv;
    ASSERT_OK(cio_server_start(&srv, &a, slow_handler, &st, NULL));
    a = *cio_server_addr(srv);
    int fds[2];
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(cio_connect_addr(&fds[i], cio_server_addr(srv)));
        ASSERT_OK(cio_wait_all_blocked());
    }
    int64_t t0 = cio_now();
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    /* One handler finished in 100 ms; the other was cancelled at 1 s. */
    ASSERT_EQ(CIO_SEC, cio_now() - t0);
    ASSERT_EQ(2, st.finished);
    char c[2];
    ASSERT_EQ(1, cio_recv(fds[0], &c[0], 1, 0));
    ASSERT_EQ(1, cio_recv(fds[1], &c[1], 1, 0));
    ASSERT_EQ('F', c[0]);
    ASSERT_EQ('C', c[1]);
    /* The listening socket is gone. */
    int fd;
    ASSERT_EQ(-ECONNREFUSED, cio_connect_addr(&fd, &a));
    cio_close(fds[0]);
    cio_close(fds[1]);
    return 0;
}

TEST_REALTIME(server_connect_refused)
{
    /* Bind a port, then close it: nothing listens there. */
    int lfd;
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    ASSERT_OK(cio_listen(&lfd, &a, 1, 0));
    socklen_t len = sizeof a.u;
    ASSERT_EQ(0, getsockname(lfd, &a.u.sa, &len));
    cio_close(lfd);
    int fd;
    ASSERT_EQ(-ECONNREFUSED, cio_connect_addr(&fd, &a));
    return 0;
}

TEST_REALTIME(server_peer_reset_mid_read)
{
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    int lfd, cfd, sfd;
    ASSERT_OK(cio_listen(&lfd, &a, 8, 0));
    socklen_t len = sizeof a.u;
    ASSERT_EQ(0, getsockname(lfd, &a.u.sa, &len));
    ASSERT_OK(cio_connect_addr(&cfd, &a));
    ASSERT_OK(cio_accept(lfd, &sfd, NULL));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sfd, NULL));
    ASSERT_EQ(3, write(cfd, "abc", 3));
    /* Close with linger 0: the peer sends RST. */
    struct linger lg = {1, 0};
    ASSERT_EQ(0, setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    cio_close(cfd);
    char buf[16];
    ssize_t n = cio_stream_readline(s, buf, sizeof buf);
    ASSERT_EQ(-ECONNRESET, n);
    ASSERT_OK(cio_stream_close(s));
    cio_close(lfd);
    return 0;
}

TEST_REALTIME(server_udp_sendto_recvfrom)
{
    cio_addr a, from;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    int s, c;
    ASSERT_OK(cio_socket(&s, AF_INET, SOCK_DGRAM, 0));
    ASSERT_EQ(0, bind(s, &a.u.sa, a.len));
    socklen_t len = sizeof a.u;
    ASSERT_EQ(0, getsockname(s, &a.u.sa, &len));
    ASSERT_OK(cio_socket(&c, AF_INET, SOCK_DGRAM, 0));
    ASSERT_EQ(5, cio_sendto(c, "hello", 5, &a));
    char buf[16];
    ASSERT_EQ(5, cio_recvfrom(s, buf, sizeof buf, &from));
    ASSERT_TRUE(cio_addr_port(&from) > 0);
    ASSERT_EQ(3, cio_sendto(s, "ack", 3, &from));
    ASSERT_EQ(3, cio_recv(c, buf, sizeof buf, 0));
    cio_close(s);
    cio_close(c);
    return 0;
}

static int accept_one(void *arg)
{
    int lfd = *(int *)arg;
    int fd;
    return cio_accept(lfd, &fd, NULL);
}

TEST(server_cancel_blocked_accept_and_recv)
{
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    int lfd;
    ASSERT_OK(cio_listen(&lfd, &a, 8, 0));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, accept_one, &lfd));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    cio_close(lfd);
    return 0;
}

TEST_NATIVE(server_accept_backs_off_on_emfile)
{
    int served = 0;
    cio_server *srv;
    ASSERT_OK(start_echo(&srv, "127.0.0.1", &served, NULL));
    /* Use up the descriptor table so that accept fails with EMFILE. */
    struct rlimit old, lim;
    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
    int fd, spare[64], nspare = 0;
    ASSERT_OK(cio_socket(&fd, AF_INET, SOCK_STREAM, 0));
    lim = old;
    lim.rlim_cur = (rlim_t)fd + 4;
    cio_close(fd);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &lim));
    int c;
    ASSERT_OK(cio_socket(&c, AF_INET, SOCK_STREAM, 0));
    while (nspare < 64 && (spare[nspare] = dup(0)) >= 0)
        nspare++;
    ASSERT_TRUE(nspare < 64);
    ASSERT_OK(cio_connect(c, cio_server_addr(srv)));
    ASSERT_EQ(6, cio_send(c, "hello\n", 6, 0));
    cio_stats before, after;
    ASSERT_OK(cio_stats_get(&before));
    ASSERT_OK(cio_sleep(200 * CIO_MSEC));
    ASSERT_OK(cio_stats_get(&after));
    /* Backing off (10, 20, 40, 80 ms...) means a handful of loop turns,
     * not a spin. */
    ASSERT_TRUE(after.loop_turns - before.loop_turns < 50);
    ASSERT_EQ(0, served);
    for (int i = 0; i < nspare; i++)
        close(spare[i]);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
    char buf[8];
    ASSERT_EQ(6, cio_recv(c, buf, sizeof buf, 0));
    ASSERT_EQ(1, served);
    cio_close(c);
    ASSERT_OK(cio_server_close(srv, CIO_SEC));
    return 0;
}

/* A listener that never accepts, with its queue full: the kernel drops
 * further SYNs, so a connect hangs until its deadline. */
TEST(server_connect_times_out)
{
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    int lfd;
    ASSERT_OK(cio_listen(&lfd, &a, 1, 0));
    socklen_t len = sizeof a.u;
    ASSERT_EQ(0, getsockname(lfd, &a.u.sa, &len));
    int fill[4], nfill = 0, rc = 0;
    cio_scope sc;
    /* Fill the accept queue; a connect that does not complete at once
     * shows the queue is full. */
    while (nfill < 4) {
        ASSERT_OK(cio_socket(&fill[nfill], AF_INET, SOCK_STREAM, 0));
        ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(3 * CIO_SEC), 0));
        rc = cio_connect(fill[nfill++], &a);
        int ex = cio_scope_exit(&sc);
        if (rc < 0) {
            ASSERT_EQ(-ECANCELED, rc);
            ASSERT_EQ(-ETIMEDOUT, ex);
            break;
        }
    }
    ASSERT_EQ(-ECANCELED, rc);
    for (int i = 0; i < nfill; i++)
        cio_close(fill[i]);
    cio_close(lfd);
    return 0;
}

static int recv_one(void *arg)
{
    int fd = *(int *)arg;
    char c;
    return (int)cio_recv(fd, &c, 1, 0);
}

/* A cancelled receive is stopped in the kernel: data sent afterwards is
 * still there for the next receive, whole. */
TEST(server_cancelled_recv_loses_no_data)
{
    int sv[2];
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, recv_one, &sv[0]));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(3, write(sv[1], "xyz", 3));
    char buf[8];
    ASSERT_EQ(3, cio_recv(sv[0], buf, sizeof buf, 0));
    ASSERT_TRUE(memcmp(buf, "xyz", 3) == 0);
    cio_close(sv[0]);
    cio_close(sv[1]);
    return 0;
}

/* A server process shut down by SIGINT while a client is connected: the
 * client is served until the signal, then the connection ends within the
 * grace period and the process exits through main's cleanup. */
TEST_REALTIME(server_sigint_graceful_shutdown_with_open_connection)
{
    int out[2];
    ASSERT_EQ(0, pipe(out));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execl(CIO_SIGCHILD, "sigchild", "server", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    cio_stream *child;
    ASSERT_OK(cio_stream_open(&child, out[0], NULL));
    char line[64];
    ssize_t n = cio_stream_readline(child, line, sizeof line - 1);
    ASSERT_EQ(true, n > 5);
    line[n] = '\0';
    int port = atoi(line + 5); /* "port N" */
    ASSERT_TRUE(port > 0);
    cio_stream *c;
    ASSERT_OK(cio_open_connection(&c, "127.0.0.1", port, NULL));
    ASSERT_OK(cio_stream_write(c, "hi\n", 3));
    ASSERT_EQ(3, cio_stream_readline(c, line, sizeof line));
    ASSERT_EQ(0, kill(pid, SIGINT));
    /* The server ends the connection within its 200 ms grace. */
    int64_t t0 = cio_now();
    ASSERT_EQ(0, cio_stream_read(c, line, sizeof line));
    ASSERT_TRUE(cio_now() - t0 < 2 * CIO_SEC);
    ASSERT_OK(cio_stream_close(c));
    n = cio_stream_readline(child, line, sizeof line - 1);
    ASSERT_TRUE(n > 0);
    line[n] = '\0';
    ASSERT_TRUE(strstr(line, "closed") != NULL);
    ASSERT_OK(cio_stream_close(child));
    int status;
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(6, WEXITSTATUS(status));
    return 0;
}
