/* Readiness kept across waits (the epoll backend's persistent
 * edge-triggered registrations): no edge is lost when nobody waits, fd
 * numbers reused after cio_close or a close behind cio's back, level
 * semantics for cio_fd_wait, hang-ups, cancelled waits. The cases hold on
 * every backend; they run on both. */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static int pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0)
        return -errno;
    return 0;
}

typedef struct peer {
    int fd;
    int64_t after;
    const char *text;
} peer;

/* Write `text` on `fd` after `after` ns. */
static int write_later(void *arg)
{
    peer *p = arg;
    ASSERT_OK(cio_sleep(p->after));
    ssize_t n = (ssize_t)strlen(p->text);
    ASSERT_EQ(n, write(p->fd, p->text, (size_t)n));
    return 0;
}

typedef struct reader {
    cio_stream *s;
    int fd;
    char buf[16];
} reader;

static int stream_read_one(void *arg)
{
    reader *r = arg;
    return (int)cio_stream_read(r->s, r->buf, sizeof r->buf);
}

static int recv_one(void *arg)
{
    reader *r = arg;
    return (int)cio_recv(r->fd, r->buf, sizeof r->buf, 0);
}

/* Run `fn(r)` in a task bounded by `limit`: its result, or -ETIMEDOUT
 * where a lost edge would hang. */
static int bounded(int (*fn)(void *), reader *r, int64_t limit)
{
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, fn, r));
    int rc = cio_wait_for(t, limit);
    cio_task_free(t);
    return rc;
}

TEST(epoll_edge_while_nobody_waits_is_kept)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    /* The first read waits for its data (so the fd is registered) and
     * comes back short. */
    peer p = {sv[1], CIO_MSEC, "a"};
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, write_later, &p));
    reader r = {.s = s};
    ASSERT_EQ(1, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_OK(cio_task_join(w));
    cio_task_free(w);
    /* Data comes while the reader is busy elsewhere; a poll sees the
     * edge with no watch on the fd. */
    ASSERT_EQ(1, write(sv[1], "b", 1));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(1, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_EQ('b', r.buf[0]);
    ASSERT_TIME(CIO_SEC + CIO_MSEC);
    ASSERT_OK(cio_stream_close(s));
    close(sv[1]);
    return 0;
}

TEST(epoll_data_right_after_a_short_read_wakes_the_reader)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    char buf[8];
    ASSERT_EQ(2, write(sv[1], "ab", 2));
    ASSERT_EQ(2, cio_stream_read(s, buf, sizeof buf));
    /* No poll between the short read and this write. */
    ASSERT_EQ(1, write(sv[1], "c", 1));
    reader r = {.s = s};
    ASSERT_EQ(1, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_EQ('c', r.buf[0]);
    /* And the next message, which the reader waits for. */
    peer p = {sv[1], CIO_SEC, "d"};
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, write_later, &p));
    ASSERT_EQ(1, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_EQ('d', r.buf[0]);
    ASSERT_OK(cio_task_join(w));
    cio_task_free(w);
    ASSERT_OK(cio_stream_close(s));
    close(sv[1]);
    return 0;
}

/* Wait on sv[0] once, so that the backend registers it. */
static int wait_once(int sv[2])
{
    peer p = {sv[1], CIO_MSEC, "x"};
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, write_later, &p));
    reader r = {.fd = sv[0]};
    ASSERT_EQ(1, bounded(recv_one, &r, 5 * CIO_SEC));
    ASSERT_OK(cio_task_join(w));
    cio_task_free(w);
    return 0;
}

/* A new pair on the same numbers carries data to a waiting receiver. */
static int check_reused(int old0)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    ASSERT_EQ(old0, sv[0]); /* the lowest free number comes back */
    ASSERT_OK(wait_once(sv));
    ASSERT_OK(cio_close(sv[0]));
    ASSERT_OK(cio_close(sv[1]));
    return 0;
}

TEST(epoll_number_reused_after_cio_close)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    ASSERT_OK(wait_once(sv));
    ASSERT_OK(cio_close(sv[0]));
    ASSERT_OK(cio_close(sv[1]));
    ASSERT_OK(check_reused(sv[0]));
    return 0;
}

TEST(epoll_number_reused_after_close_behind_cios_back_by_a_stream)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    ASSERT_OK(wait_once(sv));
    close(sv[0]);
    close(sv[1]);
    int nv[2];
    ASSERT_OK(pair(nv));
    ASSERT_EQ(sv[0], nv[0]);
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, nv[0], NULL));
    peer p = {nv[1], CIO_SEC, "y"};
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, write_later, &p));
    reader r = {.s = s};
    ASSERT_EQ(1, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_EQ('y', r.buf[0]);
    ASSERT_OK(cio_task_join(w));
    cio_task_free(w);
    ASSERT_OK(cio_stream_close(s));
    close(nv[1]);
    return 0;
}

static int connect_to(void *arg)
{
    const cio_addr *a = arg;
    ASSERT_OK(cio_sleep(50 * CIO_MSEC)); /* the accept waits first */
    int fd;
    int rc = cio_connect_addr(&fd, a);
    if (rc < 0)
        return rc;
    return cio_close(fd);
}

TEST_REALTIME(epoll_number_reused_after_close_behind_cios_back_by_a_listener)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    ASSERT_OK(wait_once(sv));
    close(sv[0]);
    close(sv[1]);
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    int lfd;
    ASSERT_OK(cio_listen(&lfd, &a, 0, 0));
    ASSERT_EQ(sv[0], lfd);
    socklen_t len = sizeof a.u;
    ASSERT_EQ(0, getsockname(lfd, &a.u.sa, &len));
    a.len = len;
    cio_task *c;
    ASSERT_OK(cio_spawn(&c, connect_to, &a));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(5 * CIO_SEC), 0));
    int fd = -1;
    int rc = cio_accept(lfd, &fd, NULL);
    ASSERT_OK(cio_scope_exit(&sc));
    ASSERT_OK(rc);
    ASSERT_OK(cio_close(fd));
    ASSERT_OK(cio_task_join(c));
    cio_task_free(c);
    ASSERT_OK(cio_close(lfd));
    return 0;
}

TEST(epoll_fd_wait_stays_level_triggered)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    ASSERT_OK(wait_once(sv)); /* an edge-registered fd */
    ASSERT_EQ(1, write(sv[1], "z", 1));
    ASSERT_OK(cio_sleep(CIO_SEC)); /* the edge passes unwatched */
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(CIO_READABLE, cio_fd_wait(sv[0], CIO_READABLE,
                                            cio_deadline_after(CIO_SEC)));
    }
    ASSERT_TIME(CIO_SEC + CIO_MSEC); /* wait_once took a millisecond */
    char c;
    ASSERT_EQ(1, read(sv[0], &c, 1));
    ASSERT_EQ(-ETIMEDOUT,
              cio_fd_wait(sv[0], CIO_READABLE, cio_deadline_after(CIO_SEC)));
    ASSERT_OK(cio_close(sv[0]));
    ASSERT_OK(cio_close(sv[1]));
    return 0;
}

TEST(epoll_regular_file_is_always_ready)
{
    char path[] = "/tmp/cio-epoll-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    unlink(path);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(CIO_READABLE | CIO_WRITABLE,
                  cio_fd_wait(fd, CIO_READABLE | CIO_WRITABLE, CIO_NEVER));
    ASSERT_OK(cio_close(fd));
    return 0;
}

TEST(epoll_cancelled_wait_leaves_the_data_for_the_next_receive)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    ASSERT_OK(wait_once(sv));
    reader r = {.fd = sv[0]};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, recv_one, &r));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(1, write(sv[1], "q", 1));
    ASSERT_EQ(1, bounded(recv_one, &r, 5 * CIO_SEC));
    ASSERT_EQ('q', r.buf[0]);
    ASSERT_OK(cio_close(sv[0]));
    ASSERT_OK(cio_close(sv[1]));
    return 0;
}

TEST(epoll_second_waiter_on_one_direction_is_busy)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    reader r = {.fd = sv[0]};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, recv_one, &r));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(-EBUSY, cio_fd_wait(sv[0], CIO_READABLE, CIO_NEVER));
    /* The other direction is free. */
    ASSERT_EQ(CIO_WRITABLE, cio_fd_wait(sv[0], CIO_WRITABLE, CIO_NEVER));
    ASSERT_EQ(1, write(sv[1], "k", 1));
    ASSERT_EQ(1, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_close(sv[0]));
    ASSERT_OK(cio_close(sv[1]));
    return 0;
}

static int send_forever(void *arg)
{
    int fd = *(int *)arg;
    static char block[64 * 1024];
    for (;;) {
        ssize_t n = cio_send(fd, block, sizeof block, 0);
        if (n < 0)
            return (int)n;
    }
}

TEST(epoll_hangup_wakes_reader_and_writer)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    reader r = {.fd = sv[0]};
    cio_task *rd, *wr;
    ASSERT_OK(cio_spawn(&rd, recv_one, &r));
    ASSERT_OK(cio_spawn(&wr, send_forever, &sv[0]));
    ASSERT_OK(cio_sleep(CIO_SEC)); /* both wait: no data, buffer full */
    close(sv[1]);
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(5 * CIO_SEC), 0));
    int rrc = cio_task_join(rd);
    int wrc = cio_task_join(wr);
    ASSERT_OK(cio_scope_exit(&sc));
    /* The peer closed with our data unread: AF_UNIX says reset. */
    ASSERT_TRUE(rrc == 0 || rrc == -ECONNRESET);
    ASSERT_TRUE(wrc == -EPIPE || wrc == -ECONNRESET);
    ASSERT_TIME(CIO_SEC);
    cio_task_free(rd);
    cio_task_free(wr);
    ASSERT_OK(cio_close(sv[0]));
    return 0;
}

typedef struct pinger {
    cio_stream *s;
    int rounds;
} pinger;

/* Read a line, answer it: the request-response pattern of a server. */
static int pong(void *arg)
{
    pinger *p = arg;
    char line[32];
    for (int i = 0; i < p->rounds; i++) {
        ssize_t n = cio_stream_readline(p->s, line, sizeof line);
        if (n <= 0)
            return n < 0 ? (int)n : -EPROTO;
        int rc = cio_stream_write(p->s, line, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(p->s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

TEST(epoll_ping_pong_loses_no_wakeup)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *a, *b;
    ASSERT_OK(cio_stream_open(&a, sv[0], NULL));
    ASSERT_OK(cio_stream_open(&b, sv[1], NULL));
    pinger p = {b, 2000};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, pong, &p));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(30 * CIO_SEC), 0));
    char out[32], in[32];
    for (int i = 0; i < p.rounds; i++) {
        int n = snprintf(out, sizeof out, "ping %d\n", i);
        ASSERT_OK(cio_stream_write(a, out, (size_t)n));
        ASSERT_EQ(n, cio_stream_readline(a, in, sizeof in));
        ASSERT_EQ(0, memcmp(out, in, (size_t)n));
        if (i % 7 == 0)
            ASSERT_OK(cio_yield());
    }
    ASSERT_OK(cio_scope_exit(&sc));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_stream_close(a));
    ASSERT_OK(cio_stream_close(b));
    return 0;
}

/* Numbers reused by files cio did not make, after a close behind cio's
 * back: the parked wait is re-checked (when the loop is idle on the
 * virtual clock, after a few milliseconds on the real one). */
static int reused_by_a_foreign_pair(int64_t after)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    ASSERT_OK(wait_once(sv));
    close(sv[0]);
    close(sv[1]);
    int nv[2];
    ASSERT_OK(pair(nv));
    ASSERT_EQ(sv[0], nv[0]);
    peer p = {nv[1], after, "f"};
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, write_later, &p));
    reader r = {.fd = nv[0]};
    ASSERT_EQ(1, bounded(recv_one, &r, 5 * CIO_SEC));
    ASSERT_EQ('f', r.buf[0]);
    ASSERT_OK(cio_task_join(w));
    cio_task_free(w);
    ASSERT_OK(cio_close(nv[0]));
    ASSERT_OK(cio_close(nv[1]));
    return 0;
}

TEST(epoll_number_reused_by_a_foreign_file_is_rechecked)
{
    ASSERT_OK(reused_by_a_foreign_pair(CIO_SEC));
    ASSERT_TIME(CIO_SEC + CIO_MSEC);
    return 0;
}

TEST_REALTIME(epoll_number_reused_by_a_foreign_file_is_rechecked_in_time)
{
    int64_t t0 = cio_now();
    ASSERT_OK(reused_by_a_foreign_pair(50 * CIO_MSEC));
    ASSERT_TRUE(cio_now() - t0 < CIO_SEC);
    return 0;
}

TEST(epoll_end_of_file_behind_a_short_read_is_seen)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    reader r = {.s = s};
    peer p = {sv[1], CIO_MSEC, "a"};
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, write_later, &p));
    ASSERT_EQ(1, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_OK(cio_task_join(w));
    cio_task_free(w);
    /* The last data and the end arrive together, before the read. */
    ASSERT_EQ(2, write(sv[1], "bc", 2));
    ASSERT_EQ(0, shutdown(sv[1], SHUT_WR));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(2, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_EQ(0, bounded(stream_read_one, &r, 5 * CIO_SEC));
    ASSERT_TIME(CIO_SEC + CIO_MSEC);
    ASSERT_OK(cio_stream_close(s));
    close(sv[1]);
    return 0;
}
