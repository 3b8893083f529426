/* Streams over socketpairs and loopback TCP. */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

/* Two connected streams, or a stream and a raw fd. */
static int pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0)
        return -errno;
    return 0;
}

TEST(stream_readline_and_readuntil)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    const char *msg = "hello\nworld\r\n\r\nrest";
    ASSERT_EQ((ssize_t)strlen(msg), write(sv[1], msg, strlen(msg)));
    close(sv[1]);
    char buf[64];
    ASSERT_EQ(6, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "hello\n", 6) == 0);
    size_t partial = 99;
    ASSERT_EQ(9, cio_stream_readuntil(s, buf, sizeof buf, "\r\n\r\n", 4,
                                      &partial));
    ASSERT_TRUE(memcmp(buf, "world\r\n\r\n", 9) == 0);
    /* End of stream without the delimiter: the rest, as partial data. */
    ASSERT_EQ(CIO_EINCOMPLETE,
              cio_stream_readuntil(s, buf, sizeof buf, "\n", 1, &partial));
    ASSERT_EQ(4, partial);
    ASSERT_TRUE(memcmp(buf, "rest", 4) == 0);
    ASSERT_EQ(0, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_EQ(0, cio_stream_read(s, buf, sizeof buf));
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST(stream_readline_returns_last_partial_line)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    ASSERT_EQ(7, write(sv[1], "a\nlast.", 7));
    close(sv[1]);
    char buf[16];
    ASSERT_EQ(2, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_EQ(5, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "last.", 5) == 0);
    ASSERT_EQ(0, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST(stream_readexactly_short_read_carries_partial_data)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    ASSERT_EQ(10, write(sv[1], "0123456789", 10));
    close(sv[1]);
    char buf[32];
    size_t partial = 0;
    ASSERT_EQ(4, cio_stream_readexactly(s, buf, 4, &partial));
    ASSERT_EQ(CIO_EINCOMPLETE, cio_stream_readexactly(s, buf, 20, &partial));
    ASSERT_EQ(6, partial);
    ASSERT_TRUE(memcmp(buf, "456789", 6) == 0);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST(stream_limit_overrun_loses_nothing)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    cio_stream_opts o = {.limit = 8};
    ASSERT_OK(cio_stream_open(&s, sv[0], &o));
    ASSERT_EQ(12, write(sv[1], "abcdefghij\nx", 12));
    char buf[64];
    ASSERT_EQ(-EMSGSIZE, cio_stream_readline(s, buf, sizeof buf));
    /* Everything is still there for a plain read. */
    ASSERT_EQ(12, cio_stream_readexactly(s, buf, 12, NULL));
    ASSERT_TRUE(memcmp(buf, "abcdefghij\nx", 12) == 0);
    /* A caller buffer smaller than the line also refuses, losing
     * nothing. */
    ASSERT_EQ(4, write(sv[1], "abc\n", 4));
    ASSERT_EQ(-EMSGSIZE, cio_stream_readline(s, buf, 3));
    ASSERT_EQ(4, cio_stream_readline(s, buf, 4));
    close(sv[1]);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

static int write_slowly(void *arg)
{
    int fd = *(int *)arg;
    const char *parts[] = {"par", "tial ", "li", "ne\n"};
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(cio_sleep(CIO_SEC));
        ASSERT_EQ((ssize_t)strlen(parts[i]),
                  cio_send(fd, parts[i], strlen(parts[i]), 0));
    }
    return 0;
}

TEST(stream_line_assembled_across_chunks)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, write_slowly, &sv[1]));
    char buf[64];
    ASSERT_EQ(13, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "partial line\n", 13) == 0);
    ASSERT_TIME(4 * CIO_SEC);
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    close(sv[1]);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST(stream_cancelled_read_consumes_nothing)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    ASSERT_EQ(3, write(sv[1], "abc", 3));
    char buf[16];
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    /* The line is incomplete: the read waits and is cancelled. */
    ASSERT_EQ(-ECANCELED, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(3, cio_stream_buffered(s));
    ASSERT_EQ(2, write(sv[1], "d\n", 2));
    ASSERT_EQ(5, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "abcd\n", 5) == 0);
    close(sv[1]);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST(stream_peek_and_consume)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    ASSERT_EQ(6, write(sv[1], "header", 6));
    const void *p;
    ASSERT_EQ(6, cio_stream_peek(s, &p, 4));
    ASSERT_TRUE(memcmp(p, "header", 6) == 0);
    ASSERT_OK(cio_stream_consume(s, 4));
    ASSERT_EQ(-EINVAL, cio_stream_consume(s, 3));
    ASSERT_EQ(-ENOBUFS, cio_stream_peek(s, &p, 1 << 20));
    close(sv[1]);
    ASSERT_EQ(2, cio_stream_peek(s, &p, 10));
    ASSERT_TRUE(memcmp(p, "er", 2) == 0);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

/* A slow reader: it takes 64 KiB a second. */
static int slow_reader(void *arg)
{
    int fd = *(int *)arg;
    char *buf = malloc(65536);
    size_t total = 0;
    bool intact = true;
    for (;;) {
        ASSERT_OK(cio_sleep(CIO_SEC));
        ssize_t n = cio_recv(fd, buf, 65536, 0);
        if (n <= 0)
            break;
        /* Byte k of the stream is k % 251: order and content intact. */
        for (ssize_t i = 0; i < n; i++)
            intact &= (unsigned char)buf[i] == (total + (size_t)i) % 251;
        total += (size_t)n;
    }
    free(buf);
    return total == 4 << 20 && intact ? 0 : -EPROTO;
}

TEST(stream_drain_applies_backpressure)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    cio_task *r;
    ASSERT_OK(cio_spawn(&r, slow_reader, &sv[1]));
    char chunk[4096];
    size_t max_pending = 0;
    for (int i = 0; i < 1024; i++) {
        for (size_t j = 0; j < sizeof chunk; j++)
            chunk[j] = (char)((i * 4096 + j) % 251);
        ASSERT_OK(cio_stream_write(s, chunk, sizeof chunk));
        if (cio_stream_write_pending(s) > max_pending)
            max_pending = cio_stream_write_pending(s);
        ASSERT_OK(cio_stream_drain(s));
        /* drain returns with the queue at or under the high water mark. */
        ASSERT_TRUE(cio_stream_write_pending(s) <= 64 * 1024);
    }
    ASSERT_TRUE(max_pending > 64 * 1024 - 4096);
    ASSERT_OK(cio_stream_write_eof(s));
    int rc = cio_task_join(r);
    cio_task_free(r);
    ASSERT_OK(cio_stream_close(s));
    close(sv[1]);
    return rc;
}

static int read_until_closed(void *arg)
{
    cio_stream *s = arg;
    char buf[8];
    return (int)cio_stream_read(s, buf, sizeof buf);
}

TEST(stream_close_while_another_task_reads)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *s;
    ASSERT_OK(cio_stream_open(&s, sv[0], NULL));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, read_until_closed, s));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_stream_close(s));
    ASSERT_EQ(-EBADF, cio_task_join(t));
    cio_task_free(t);
    close(sv[1]);
    return 0;
}

TEST(stream_half_close_then_read_reply)
{
    int sv[2];
    ASSERT_OK(pair(sv));
    cio_stream *a, *b;
    ASSERT_OK(cio_stream_open(&a, sv[0], NULL));
    ASSERT_OK(cio_stream_open(&b, sv[1], NULL));
    ASSERT_OK(cio_stream_write(a, "ping", 4));
    ASSERT_OK(cio_stream_write_eof(a));
    ASSERT_EQ(-EPIPE, cio_stream_write(a, "x", 1));
    char buf[8];
    ASSERT_EQ(4, cio_stream_readexactly(b, buf, 4, NULL));
    ASSERT_EQ(0, cio_stream_read(b, buf, sizeof buf));
    ASSERT_OK(cio_stream_write(b, "pong", 4));
    ASSERT_OK(cio_stream_close(b));
    ASSERT_EQ(4, cio_stream_readexactly(a, buf, 4, NULL));
    ASSERT_TRUE(memcmp(buf, "pong", 4) == 0);
    ASSERT_OK(cio_stream_close(a));
    return 0;
}

TEST(stream_bad_input)
{
    cio_stream *s;
    char buf[4];
    ASSERT_EQ(-EINVAL, cio_stream_open(NULL, -1, NULL));
    ASSERT_EQ(-EINVAL, cio_stream_open(&s, -1, NULL));
    ASSERT_EQ(-EINVAL, cio_stream_read(NULL, buf, 4));
    ASSERT_EQ(-EINVAL, cio_stream_readuntil(NULL, buf, 4, "\n", 1, NULL));
    ASSERT_EQ(-EINVAL, cio_stream_write(NULL, buf, 4));
    ASSERT_EQ(0, cio_stream_close(NULL));
    ASSERT_EQ(-EINVAL, cio_open_connection(&s, "", 80, NULL));
    ASSERT_EQ(-EINVAL, cio_open_connection(&s, NULL, 80, NULL));
    ASSERT_EQ(-EINVAL, cio_open_connection(&s, "127.0.0.1", 65536, NULL));
    return 0;
}

/* A blocking socket handed to a stream must not block the loop: the
 * stream makes it non-blocking. */
TEST(stream_open_makes_the_fd_nonblocking)
{
    int sv[2];
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    ASSERT_TRUE(!(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
    cio_stream *a, *b;
    ASSERT_OK(cio_stream_open(&a, sv[0], NULL));
    ASSERT_OK(cio_stream_open(&b, sv[1], NULL));
    ASSERT_TRUE(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    ASSERT_TRUE(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
    /* Nothing to read: the read waits (and times out) instead of
     * blocking the thread in recv(). */
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    char c;
    ASSERT_EQ(-ECANCELED, cio_stream_read(a, &c, 1));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_stream_close(a));
    ASSERT_OK(cio_stream_close(b));
    return 0;
}
