/* Large sends on both backends, run with CIO_URING_SEND_ZC=16384 so that
 * io_uring sends a stream's large writes zero-copy (SEND_ZC) while
 * cio_send keeps plain sends (the caller's buffer must be free when it
 * returns, also when cancelled). Data arrives intact; a stream closed
 * with a zero-copy send in flight leaves nothing behind. */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

__attribute__((constructor)) static void zc_on(void)
{
    setenv("CIO_URING_SEND_ZC", "16384", 0);
}

static int tcp_pair(int *a, int *b)
{
    cio_addr ad;
    int lfd;
    int rc = cio_addr_ip(&ad, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_listen(&lfd, &ad, 1, 0);
    if (rc < 0)
        return rc;
    ad.len = sizeof ad.u;
    getsockname(lfd, &ad.u.sa, &ad.len);
    rc = cio_connect_addr(a, &ad);
    if (rc == 0 && (rc = cio_accept(lfd, b, NULL)) < 0)
        cio_close(*a);
    cio_close(lfd);
    return rc;
}

static unsigned char pat(size_t i)
{
    return (unsigned char)(i * 13 + i / 509);
}

enum { BIG = 1 << 20, ROUNDS = 8 };

typedef struct peer {
    int fd;
    cio_stream *s;
    size_t total;
} peer;

/* Receive ROUNDS * BIG bytes and check them against the pattern. */
static int check_all(void *arg)
{
    peer *p = arg;
    static unsigned char buf[65536];
    size_t got = 0;
    while (got < p->total) {
        ssize_t n = p->s ? cio_stream_read(p->s, buf, sizeof buf)
                         : cio_recv(p->fd, buf, sizeof buf, 0);
        if (n <= 0)
            return n < 0 ? (int)n : -EPROTO;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pat((got + (size_t)i) % BIG)) {
                fprintf(stderr, "  byte %zu differs\n", got + (size_t)i);
                return -EPROTO;
            }
        got += (size_t)n;
    }
    return 0;
}

/* The sender scribbles over its buffer as soon as each send returns: the
 * receiver must still see the pattern. */
TEST_REALTIME(zc_send_buffer_is_free_when_the_send_returns)
{
    int a, b;
    ASSERT_OK(tcp_pair(&a, &b));
    peer p = {.fd = b, .total = (size_t)ROUNDS * BIG};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, check_all, &p));
    unsigned char *buf = malloc(BIG);
    ASSERT_TRUE(buf != NULL);
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < BIG; i++)
            buf[i] = pat(i);
        size_t off = 0;
        while (off < BIG) {
            ssize_t n = cio_send(a, buf + off, BIG - off, 0);
            ASSERT_TRUE(n > 0);
            memset(buf + off, 0xee, (size_t)n); /* reuse it at once */
            off += (size_t)n;
        }
    }
    free(buf);
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    cio_close(a);
    cio_close(b);
    return 0;
}

TEST_REALTIME(zc_stream_writes_arrive_intact)
{
    int a, b;
    ASSERT_OK(tcp_pair(&a, &b));
    cio_stream *w, *r;
    ASSERT_OK(cio_stream_open(&w, a, NULL));
    ASSERT_OK(cio_stream_open(&r, b, NULL));
    peer p = {.s = r, .total = (size_t)ROUNDS * BIG};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, check_all, &p));
    unsigned char *buf = malloc(BIG);
    ASSERT_TRUE(buf != NULL);
    for (int k = 0; k < ROUNDS; k++) {
        for (size_t i = 0; i < BIG; i++)
            buf[i] = pat(i);
        /* In pieces of several sizes, some below the threshold. */
        size_t off = 0, piece = 1000;
        while (off < BIG) {
            size_t m = BIG - off < piece ? BIG - off : piece;
            ASSERT_OK(cio_stream_write(w, buf + off, m));
            off += m;
            piece = piece * 3 % 200000 + 1;
        }
        memset(buf, 0xee, BIG);
        ASSERT_OK(cio_stream_drain(w));
    }
    free(buf);
    ASSERT_OK(cio_stream_flush(w));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_stream_close(w));
    ASSERT_OK(cio_stream_close(r));
    return 0;
}

typedef struct blocked {
    int fd;
    unsigned char *buf;
    size_t sent;
} blocked;

/* Send until the socket is full and the send waits. */
static int send_blocked(void *arg)
{
    blocked *x = arg;
    ssize_t rc = cio_send_all(x->fd, x->buf, (size_t)64 << 20, &x->sent);
    return (int)(rc < 0 ? rc : 0);
}

/* A zero-copy send cancelled while it waits for room: it returns (with
 * -ECANCELED or a count) only when the kernel let go of the buffer, and
 * what it reports sent is exactly what arrives. */
TEST_REALTIME(zc_send_cancelled_reports_what_was_sent)
{
    int a, b;
    ASSERT_OK(tcp_pair(&a, &b));
    blocked x = {.fd = a, .buf = malloc((size_t)64 << 20)};
    ASSERT_TRUE(x.buf != NULL);
    for (size_t i = 0; i < (size_t)64 << 20; i++)
        x.buf[i] = pat(i % BIG);
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, send_blocked, &x));
    int avail = 0; /* cancel once bytes have reached the peer */
    while (ioctl(b, FIONREAD, &avail) == 0 && avail == 0)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_TRUE(avail > 0);
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    memset(x.buf, 0xee, (size_t)64 << 20);
    free(x.buf);
    ASSERT_TRUE(x.sent > 0 && x.sent < (size_t)64 << 20);
    ASSERT_OK(cio_shutdown(a, SHUT_WR));
    peer p = {.fd = b, .total = x.sent};
    ASSERT_OK(check_all(&p));
    char c;
    ASSERT_EQ(0, cio_recv(b, &c, 1, 0));
    cio_close(a);
    cio_close(b);
    return 0;
}

/* A stream closed with a large write queued and the peer not reading:
 * nothing is left behind (the loop waits for the kernel's notice). */
TEST_REALTIME(zc_stream_closed_with_a_send_in_flight)
{
    int a, b;
    ASSERT_OK(tcp_pair(&a, &b));
    cio_stream *w;
    ASSERT_OK(cio_stream_open(&w, a, NULL));
    static unsigned char buf[4 << 20];
    ASSERT_OK(cio_stream_write(w, buf, sizeof buf));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(20 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_stream_close(w));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    cio_close(b);
    return 0;
}

/* On io_uring with the threshold set, a large SEND that allows it goes
 * zero-copy. */
TEST_REALTIME(zc_large_sends_use_send_zc)
{
    int a, b;
    ASSERT_OK(tcp_pair(&a, &b));
    static char buf[65536];
    cio__op op = {.kind = CIO__OP_SEND, .fd = a, .buf = buf,
                  .len = sizeof buf, .zc = true};
    ssize_t n = cio__op_run(&op);
    cio_loop *l = cio__loop;
    bool ring = l->bops->supports &&
                l->bops->supports(l->backend, CIO__OP_SEND);
    if (ring) {
        ASSERT_TRUE(n > 0);
        ASSERT_TRUE(op.zc);
        /* Below the threshold, or not asked for: a plain SEND. */
        op = (cio__op){.kind = CIO__OP_SEND, .fd = a, .buf = buf,
                       .len = 100, .zc = true};
        ASSERT_EQ(100, cio__op_run(&op));
        ASSERT_TRUE(!op.zc);
        op = (cio__op){.kind = CIO__OP_SEND, .fd = a, .buf = buf,
                       .len = sizeof buf};
        ASSERT_TRUE(cio__op_run(&op) > 0);
        ASSERT_TRUE(!op.zc);
    } else {
        ASSERT_EQ(-ENOTSUP, n);
    }
    cio_close(a);
    cio_close(b);
    return 0;
}
