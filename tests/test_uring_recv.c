/* Stream reads on both backends, written for io_uring's multishot
 * receive into provided buffers: bytes that arrive with no read waiting,
 * cancelled reads, backpressure on a stream nobody reads, peek's pointer,
 * end of stream, close under a reader, and many streams at once. */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

static bool multishot(void)
{
    cio_loop *l = cio__loop;
    return l->bops->supports &&
           l->bops->supports(l->backend, CIO__OP_RECV_MULTI);
}

/* A connected TCP pair on loopback: `*s` a stream, `*peer` a plain
 * non-blocking socket. */
static int tcp_pair(cio_stream **s, int *peer)
{
    cio_addr a;
    int lfd, cfd, afd;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_listen(&lfd, &a, 1, 0);
    if (rc < 0)
        return rc;
    a.len = sizeof a.u;
    getsockname(lfd, &a.u.sa, &a.len);
    rc = cio_connect_addr(&cfd, &a);
    if (rc == 0) {
        rc = cio_accept(lfd, &afd, NULL);
        if (rc < 0)
            cio_close(cfd);
    }
    cio_close(lfd);
    if (rc < 0)
        return rc;
    *peer = afd;
    return cio_stream_open(s, cfd, NULL);
}

static unsigned char pat(size_t i)
{
    return (unsigned char)(i * 7 + i / 251);
}

/* Send [from, to) of the pattern from `fd` without waiting; returns the
 * new `from`. */
static size_t send_pattern(int fd, size_t from, size_t to)
{
    unsigned char buf[8192];
    while (from < to) {
        size_t k = to - from < sizeof buf ? to - from : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = pat(from + i);
        ssize_t n = send(fd, buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        from += (size_t)n;
    }
    return from;
}

/* Read `n` bytes and check them against the pattern from `from`. */
static int read_pattern(cio_stream *s, size_t from, size_t n)
{
    unsigned char buf[5000];
    while (n > 0) {
        size_t want = n < sizeof buf ? n : sizeof buf;
        ssize_t k = cio_stream_read(s, buf, want);
        if (k <= 0)
            return k < 0 ? (int)k : -EPROTO;
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] != pat(from + (size_t)i)) {
                fprintf(stderr, "  byte %zu differs\n", from + (size_t)i);
                return -EPROTO;
            }
        from += (size_t)k;
        n -= (size_t)k;
    }
    return 0;
}

typedef struct reader {
    cio_stream *s;
    char c;
} reader;

static int read_one(void *arg)
{
    reader *r = arg;
    return (int)cio_stream_read(r->s, &r->c, 1);
}

/* A read cancelled while bytes arrive either returns -ECANCELED having
 * consumed nothing, or (the receive completed first: a completed wait
 * beats a late cancel) returns them; no byte is lost either way. With
 * the multishot receive the cancel always wins and the bytes stay
 * buffered. */
TEST_REALTIME(recv_cancelled_read_loses_nothing)
{
    cio_stream *s;
    int peer;
    ASSERT_OK(tcp_pair(&s, &peer));
    for (int round = 0; round < 20; round++) {
        reader r = {s, 0};
        cio_task *t;
        ASSERT_OK(cio_spawn(&t, read_one, &r));
        for (int y = 0; y < round % 4; y++)
            ASSERT_OK(cio_yield());
        ASSERT_OK(cio_task_cancel(t));
        /* Bytes come while the reader is being cancelled... */
        ASSERT_EQ(3, send(peer, "abc", 3, 0));
        int rc = cio_task_join(t);
        cio_task_free(t);
        if (multishot())
            ASSERT_EQ(-ECANCELED, rc);
        /* ...and all of them are there, in order. */
        char buf[8];
        size_t k = 0;
        if (rc == 1)
            buf[k++] = r.c;
        else
            ASSERT_EQ(-ECANCELED, rc);
        ASSERT_EQ((ssize_t)(3 - k),
                  cio_stream_readexactly(s, buf + k, 3 - k, NULL));
        ASSERT_TRUE(memcmp(buf, "abc", 3) == 0);
    }
    cio_close(peer);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST_REALTIME(recv_bytes_arriving_with_no_reader_stay_buffered)
{
    cio_stream *s;
    int peer;
    ASSERT_OK(tcp_pair(&s, &peer));
    char buf[64];
    ASSERT_EQ(2, send(peer, "a\n", 2, 0));
    ASSERT_EQ(2, cio_stream_readline(s, buf, sizeof buf));
    /* Nobody reads while these arrive. */
    ASSERT_EQ(4, send(peer, "bc\nd", 4, 0));
    ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    ASSERT_EQ(3, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "bc\n", 3) == 0);
    ASSERT_OK(cio_shutdown(peer, SHUT_WR));
    ASSERT_EQ(1, cio_stream_read(s, buf, sizeof buf));
    ASSERT_EQ('d', buf[0]);
    ASSERT_EQ(0, cio_stream_read(s, buf, sizeof buf));
    ASSERT_EQ(0, cio_stream_read(s, buf, sizeof buf));
    cio_close(peer);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

/* A stream that stops reading: the kernel does not keep filling memory
 * for it (the sender meets a full socket), and once reading resumes
 * every byte comes in order. */
TEST_REALTIME(recv_backpressure_when_nobody_reads)
{
    cio_stream *s;
    int peer;
    ASSERT_OK(tcp_pair(&s, &peer));
    char c;
    ASSERT_EQ(1, send(peer, "x", 1, 0));
    ASSERT_EQ(1, cio_stream_read(s, &c, 1)); /* arms the multishot */
    size_t sent = 0;
    const size_t cap = (size_t)64 << 20;
    long live0 = cio__alloc_live();
    for (int i = 0; i < 20 && sent < cap; i++) {
        sent = send_pattern(peer, sent, cap);
        ASSERT_OK(cio_sleep(5 * CIO_MSEC));
    }
    /* The sender is stopped by a full socket long before 64 MiB. */
    ASSERT_TRUE(sent < cap);
    long grown = cio__alloc_live() - live0;
    ASSERT_TRUE(grown <= 4);
    /* Reading resumes: everything, in order, then more. */
    ASSERT_OK(read_pattern(s, 0, sent));
    for (int i = 0; i < 5; i++) {
        size_t more = send_pattern(peer, sent, sent + 100000);
        ASSERT_OK(read_pattern(s, sent, more - sent));
        sent = more;
    }
    cio_close(peer);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST_REALTIME(recv_peek_pointer_stays_valid_while_bytes_arrive)
{
    cio_stream *s;
    int peer;
    ASSERT_OK(tcp_pair(&s, &peer));
    ASSERT_EQ(5, send(peer, "hello", 5, 0));
    const void *p;
    ASSERT_EQ(5, cio_stream_peek(s, &p, 5));
    /* More arrives, and is taken in by the kernel, while `p` is held. */
    size_t sent = send_pattern(peer, 0, 200000);
    ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    ASSERT_TRUE(memcmp(p, "hello", 5) == 0);
    ASSERT_OK(cio_stream_consume(s, 5));
    ASSERT_OK(read_pattern(s, 0, sent));
    cio_close(peer);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST_REALTIME(recv_close_under_a_waiting_reader)
{
    cio_stream *s;
    int peer;
    ASSERT_OK(tcp_pair(&s, &peer));
    reader r = {s, 0};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, read_one, &r));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_EQ(-EBADF, cio_task_join(t));
    cio_task_free(t);
    cio_close(peer);
    return 0;
}

/* More streams than the loop has provided buffers, each sent more than a
 * buffer before anyone reads: every byte arrives, in order. */
typedef struct many {
    cio_stream *s;
    int peer;
    size_t n;
} many;

static int read_many(void *arg)
{
    many *m = arg;
    return read_pattern(m->s, 0, m->n);
}

TEST_REALTIME(recv_many_streams_share_the_buffers)
{
    enum { N = 300, EACH = 20000 };
    static many m[N];
    for (int i = 0; i < N; i++) {
        ASSERT_OK(tcp_pair(&m[i].s, &m[i].peer));
        m[i].n = EACH;
        char c;
        ASSERT_EQ(1, send(m[i].peer, "x", 1, 0));
        ASSERT_EQ(1, cio_stream_read(m[i].s, &c, 1));
    }
    for (int i = 0; i < N; i++)
        ASSERT_EQ(EACH, send_pattern(m[i].peer, 0, EACH));
    ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    static cio_call calls[N];
    for (int i = 0; i < N; i++)
        calls[i] = (cio_call){.fn = read_many, .arg = &m[i]};
    ASSERT_OK(cio_gather(calls, N, 0));
    for (int i = 0; i < N; i++) {
        cio_close(m[i].peer);
        ASSERT_OK(cio_stream_close(m[i].s));
    }
    return 0;
}

/* On io_uring one submission carries a stream's many small reads. */
TEST_REALTIME(recv_small_messages_without_a_submission_each)
{
    cio_stream *s;
    int peer;
    ASSERT_OK(tcp_pair(&s, &peer));
    cio_stats before, after;
    ASSERT_OK(cio_stats_get(&before));
    for (int i = 0; i < 500; i++) {
        char msg[16], buf[16];
        int len = snprintf(msg, sizeof msg, "m%d\n", i);
        ASSERT_EQ(len, send(peer, msg, (size_t)len, 0));
        ASSERT_EQ(len, cio_stream_readline(s, buf, sizeof buf));
        ASSERT_TRUE(memcmp(buf, msg, (size_t)len) == 0);
    }
    ASSERT_OK(cio_stats_get(&after));
    if (multishot())
        ASSERT_TRUE(after.ops_recv - before.ops_recv < 10);
    cio_close(peer);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

/* Small reads arm the multishot; a read that needs much more (1 MiB)
 * stops it and receives straight into the buffer; small reads after it
 * arm it again. Every byte in order, also around a cancelled bulk read. */
typedef struct bulk {
    int peer;
    size_t n;
} bulk;

static int send_bulk(void *arg)
{
    bulk *b = arg;
    size_t sent = 0;
    while (sent < b->n) {
        size_t next = send_pattern(b->peer, sent, b->n);
        if (next == sent) {
            int rc = cio_fd_wait(b->peer, CIO_WRITABLE, CIO_NEVER);
            if (rc < 0)
                return rc;
        }
        sent = next;
    }
    return 0;
}

static int read_exactly_big(void *arg)
{
    static char buf[1 << 20];
    return (int)cio_stream_readexactly(arg, buf, sizeof buf, NULL);
}

TEST_REALTIME(recv_bulk_read_between_small_ones)
{
    cio_stream *s;
    int peer;
    ASSERT_OK(tcp_pair(&s, &peer));
    char line[32];
    for (int round = 0; round < 3; round++) {
        ASSERT_EQ(6, send(peer, "small\n", 6, 0));
        ASSERT_EQ(6, cio_stream_readline(s, line, sizeof line));
        /* A bulk read cancelled before the bytes come consumes
         * nothing. */
        cio_task *t;
        ASSERT_OK(cio_spawn(&t, read_exactly_big, s));
        ASSERT_OK(cio_sleep(5 * CIO_MSEC));
        ASSERT_OK(cio_task_cancel(t));
        ASSERT_EQ(-ECANCELED, cio_task_join(t));
        cio_task_free(t);
        bulk b = {peer, (size_t)1 << 20};
        ASSERT_OK(cio_spawn(&t, send_bulk, &b));
        static char big[1 << 20];
        ASSERT_EQ((ssize_t)sizeof big,
                  cio_stream_readexactly(s, big, sizeof big, NULL));
        for (size_t i = 0; i < sizeof big; i++)
            if ((unsigned char)big[i] != pat(i))
                TEST_FAIL_("round %d: byte %zu differs", round, i);
        ASSERT_OK(cio_task_join(t));
        cio_task_free(t);
    }
    ASSERT_EQ(4, send(peer, "end\n", 4, 0));
    ASSERT_EQ(4, cio_stream_readline(s, line, sizeof line));
    cio_close(peer);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

/* A stream whose multishot receive is armed with no reader is no work
 * that could wake a task: a task waiting on something nobody will ever
 * set is still reported as a deadlock. */
static int wait_forever(void *arg)
{
    return cio_event_wait(arg);
}

static int deadlocked(void *arg)
{
    (void)arg;
    cio_stream *s;
    int peer;
    int rc = tcp_pair(&s, &peer);
    if (rc < 0)
        return rc;
    char c;
    if (send(peer, "x", 1, 0) != 1 || cio_stream_read(s, &c, 1) != 1)
        return -EPROTO;
    cio_event ev;
    cio_event_init(&ev);
    rc = wait_forever(&ev); /* never set */
    cio_close(peer);
    cio_stream_close(s);
    return rc;
}

static int run_deadlocked(void *arg)
{
    (void)arg;
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.handle_signals = 0;
    return cio_run_config(&cfg, deadlocked, NULL);
}

TEST_REALTIME(recv_idle_multishot_does_not_hide_a_deadlock)
{
    /* A loop of its own on a thread: it must end with CIO_EDEADLOCK. */
    ASSERT_EQ(CIO_EDEADLOCK, cio_to_thread(run_deadlocked, NULL));
    return 0;
}
