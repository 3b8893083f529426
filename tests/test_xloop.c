/* Several loops: cio_run_multi, channels between loops, tasks on other
 * loops, a SO_REUSEPORT server on every loop, shutdown of the set. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio/xloop.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct run_ctx {
    cio_multi_config cfg;
    cio_task_fn fn;
    void *arg;
    int rc;
} run_ctx;

static int run_job(void *arg)
{
    run_ctx *c = arg;
    c->rc = cio_run_multi(&c->cfg, c->fn, c->arg);
    return 0;
}

/* cio_run_multi with `loops` loops, from a thread of the test loop's
 * executor (the test's own loop cannot host it). */
static int run_multi(unsigned loops, cio_task_fn fn, void *arg, int *results)
{
    run_ctx c = {.fn = fn, .arg = arg};
    cio_multi_config_init(&c.cfg);
    c.cfg.loops = loops;
    c.cfg.loop.handle_signals = 0;
    c.cfg.results = results;
    int rc = cio_to_thread(run_job, &c);
    return rc < 0 ? rc : c.rc;
}

/* ---- running several loops ----------------------------------------------- */

typedef struct seen {
    atomic_int index_mask;
    atomic_int count_ok;
} seen;

static int note_loop(void *arg)
{
    seen *s = arg;
    int i = cio_loop_index(), n = cio_loop_count();
    if (i < 0 || i >= n)
        return -EINVAL;
    atomic_fetch_or(&s->index_mask, 1 << i);
    if (n == 3)
        atomic_fetch_add(&s->count_ok, 1);
    return 10 + i;
}

TEST_REALTIME(multi_runs_main_on_every_loop)
{
    seen s = {0};
    int results[3] = {0};
    ASSERT_EQ(10, run_multi(3, note_loop, &s, results));
    ASSERT_EQ(7, atomic_load(&s.index_mask));
    ASSERT_EQ(3, atomic_load(&s.count_ok));
    ASSERT_EQ(10, results[0]);
    ASSERT_EQ(11, results[1]);
    ASSERT_EQ(12, results[2]);
    /* A plain loop is loop 0 of 1; outside a set there is none to stop. */
    ASSERT_EQ(0, cio_loop_index());
    ASSERT_EQ(1, cio_loop_count());
    ASSERT_EQ(-ESRCH, cio_multi_cancel());
    return 0;
}

TEST(multi_rejects_bad_config)
{
    cio_multi_config cfg;
    cio_multi_config_init(&cfg);
    ASSERT_EQ(-EINVAL, cio_run_multi(&cfg, NULL, NULL));
    cfg.loops = 5000;
    ASSERT_EQ(-EINVAL, cio_run_multi(&cfg, note_loop, NULL));
    cfg.loops = 2;
    cfg.loop.stack_size = 1024;
    ASSERT_EQ(-EINVAL, cio_run_multi(&cfg, note_loop, NULL));
    /* On a loop's own thread: it would block that loop. */
    cio_multi_config_init(&cfg);
    ASSERT_EQ(-EBUSY, cio_run_multi(&cfg, note_loop, NULL));
    return 0;
}

static int fail_on_one(void *arg)
{
    (void)arg;
    if (cio_loop_index() == 1)
        return -EIO;
    return cio_sleep(60 * CIO_SEC); /* cancelled by loop 1's failure */
}

TEST_REALTIME(multi_failing_main_cancels_the_others)
{
    int results[3];
    ASSERT_EQ(-EIO, run_multi(3, fail_on_one, NULL, results));
    ASSERT_EQ(-ECANCELED, results[0]);
    ASSERT_EQ(-EIO, results[1]);
    ASSERT_EQ(-ECANCELED, results[2]);
    return 0;
}

static int stop_from_zero(void *arg)
{
    (void)arg;
    if (cio_loop_index() == 0)
        return cio_multi_cancel();
    int rc = cio_sleep(60 * CIO_SEC);
    return rc == -ECANCELED ? 5 : -EPROTO;
}

TEST_REALTIME(multi_cancel_stops_every_loop)
{
    int results[2];
    ASSERT_EQ(0, run_multi(2, stop_from_zero, NULL, results));
    ASSERT_EQ(0, results[0]);
    ASSERT_EQ(5, results[1]);
    return 0;
}

/* ---- channels on one loop ------------------------------------------------ */

TEST(chan_try_send_recv_close)
{
    cio_chan *ch;
    ASSERT_EQ(-EINVAL, cio_chan_new(&ch, 0, 4));
    ASSERT_EQ(-EINVAL, cio_chan_new(&ch, 8, 0));
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 3));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(cio_chan_try_send(ch, &i));
    int v = 99;
    ASSERT_EQ(-EAGAIN, cio_chan_try_send(ch, &v));
    ASSERT_EQ(3, cio_chan_len(ch));
    ASSERT_OK(cio_chan_try_recv(ch, &v));
    ASSERT_EQ(0, v);
    ASSERT_OK(cio_chan_close(ch));
    ASSERT_OK(cio_chan_close(ch));
    ASSERT_EQ(-EPIPE, cio_chan_try_send(ch, &v));
    ASSERT_EQ(-EPIPE, cio_chan_send(ch, &v));
    ASSERT_OK(cio_chan_recv(ch, &v));
    ASSERT_EQ(1, v);
    int two[2];
    ASSERT_EQ(1, cio_chan_recv_many(ch, two, 2));
    ASSERT_EQ(2, two[0]);
    ASSERT_EQ(CIO_EOF, cio_chan_recv(ch, &v));
    ASSERT_EQ(CIO_EOF, cio_chan_try_recv(ch, &v));
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

typedef struct pair {
    cio_chan *ch;
    int n;
    int rc;
    int sent;
} pair;

static int sender(void *arg)
{
    pair *p = arg;
    for (int i = 0; i < p->n; i++) {
        int rc = cio_chan_send(p->ch, &i);
        if (rc < 0)
            return p->rc = rc;
        p->sent++;
    }
    return 0;
}

TEST(chan_send_waits_when_full_and_fifo)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 2));
    pair p = {.ch = ch, .n = 50};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, sender, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(2, p.sent); /* backpressure: parked on the third */
    for (int i = 0; i < 50; i++) {
        int v;
        ASSERT_OK(cio_chan_recv(ch, &v));
        ASSERT_EQ(i, v);
        ASSERT_TRUE(cio_chan_len(ch) <= 2);
    }
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

TEST(chan_cancelled_send_does_not_deliver)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 1));
    int v = 1;
    ASSERT_OK(cio_chan_send(ch, &v));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(10 * CIO_MSEC), 0));
    v = 2;
    ASSERT_EQ(-ECANCELED, cio_chan_send(ch, &v));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TIME(10 * CIO_MSEC);
    ASSERT_EQ(1, cio_chan_len(ch));
    /* A receiver cancelled while waiting takes nothing. */
    ASSERT_OK(cio_chan_try_recv(ch, &v));
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(10 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_chan_recv(ch, &v));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    v = 3;
    ASSERT_OK(cio_chan_try_send(ch, &v));
    ASSERT_OK(cio_chan_recv(ch, &v));
    ASSERT_EQ(3, v);
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

TEST(chan_close_fails_waiting_senders)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 1));
    pair p = {.ch = ch, .n = 3};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, sender, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(1, p.sent);
    ASSERT_OK(cio_chan_close(ch));
    ASSERT_EQ(-EPIPE, cio_task_join(t));
    cio_task_free(t);
    int v;
    ASSERT_OK(cio_chan_recv(ch, &v)); /* what got in is still delivered */
    ASSERT_EQ(0, v);
    ASSERT_EQ(CIO_EOF, cio_chan_recv(ch, &v));
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

static int recv_one(void *arg)
{
    pair *p = arg;
    int v;
    return cio_chan_recv(p->ch, &v);
}

TEST(chan_free_refuses_while_receiving)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 1));
    pair p = {.ch = ch};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, recv_one, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_chan_free(ch));
    ASSERT_EQ(CIO_EOF, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

TEST(chan_woken_receiver_cancelled_after_losing_the_race)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 2));
    pair p = {.ch = ch};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, recv_one, &p));
    ASSERT_OK(cio_wait_all_blocked());
    int v = 1;
    ASSERT_OK(cio_chan_try_send(ch, &v)); /* wakes the receiver... */
    ASSERT_OK(cio_chan_try_recv(ch, &v)); /* ...which loses the race */
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

/* A plain thread (an executor job) sends; the loop receives. */
static int thread_sender(void *arg)
{
    pair *p = arg;
    for (int i = 0; i < p->n;) {
        int rc = cio_chan_try_send(p->ch, &i);
        if (rc == 0)
            i++;
        else if (rc != -EAGAIN)
            return rc;
        else
            sched_yield();
    }
    return cio_chan_close(p->ch);
}

static int thread_sender_task(void *arg)
{
    return cio_to_thread(thread_sender, arg);
}

TEST_REALTIME(chan_from_a_plain_thread)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 16));
    pair p = {.ch = ch, .n = 20000};
    cio_task *job;
    ASSERT_OK(cio_spawn(&job, thread_sender_task, &p));
    int v, expect = 0;
    for (;;) {
        int rc = cio_chan_recv(ch, &v);
        if (rc == CIO_EOF)
            break;
        ASSERT_OK(rc);
        ASSERT_EQ(expect, v);
        expect++;
    }
    ASSERT_EQ(20000, expect);
    ASSERT_OK(cio_task_join(job));
    cio_task_free(job);
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

/* Messages of an odd size through rings of 1, 3 and 4 slots, lap after
 * lap: positions wrap many times; order, fullness and length stay right. */
typedef struct odd {
    unsigned char b[13];
} odd;

static odd odd_of(unsigned v)
{
    odd o;
    for (size_t i = 0; i < sizeof o.b; i++)
        o.b[i] = (unsigned char)(v * 31 + i);
    return o;
}

TEST(chan_ring_wraps_with_tiny_capacity)
{
    static const size_t caps[] = {1, 3, 4};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        cio_chan *ch;
        size_t cap = caps[c];
        ASSERT_OK(cio_chan_new(&ch, sizeof(odd), cap));
        unsigned in = 0, out = 0;
        for (int lap = 0; lap < 1000; lap++) {
            /* Fill, overfill, then take a varying part. */
            while (cio_chan_len(ch) < cap) {
                odd o = odd_of(in++);
                ASSERT_OK(cio_chan_try_send(ch, &o));
            }
            odd o = odd_of(in);
            ASSERT_EQ(-EAGAIN, cio_chan_try_send(ch, &o));
            size_t k = 1 + (size_t)lap % cap;
            for (size_t i = 0; i < k; i++) {
                ASSERT_OK(cio_chan_try_recv(ch, &o));
                odd want = odd_of(out++);
                ASSERT_TRUE(memcmp(&o, &want, sizeof o) == 0);
            }
            ASSERT_EQ(cap - k, cio_chan_len(ch));
        }
        odd o;
        while (cio_chan_try_recv(ch, &o) == 0) {
            odd want = odd_of(out++);
            ASSERT_TRUE(memcmp(&o, &want, sizeof o) == 0);
        }
        ASSERT_EQ(in, out);
        ASSERT_EQ(-EAGAIN, cio_chan_try_recv(ch, &o));
        ASSERT_OK(cio_chan_free(ch));
    }
    return 0;
}

void cio__alloc_fail_at(long nth);

TEST(chan_new_fails_cleanly_without_memory)
{
    cio_chan *ch = NULL;
    for (long nth = 1; nth <= 2; nth++) {
        cio__alloc_fail_at(nth);
        ASSERT_EQ(-ENOMEM, cio_chan_new(&ch, 8, 16));
        cio__alloc_fail_at(0);
    }
    ASSERT_OK(cio_chan_new(&ch, 8, 16));
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

TEST(chan_limits_and_bad_arguments)
{
    cio_chan *ch;
    ASSERT_EQ(-EINVAL, cio_chan_new(NULL, 8, 4));
    ASSERT_EQ(-EINVAL, cio_chan_new(&ch, 64 * 1024 + 1, 4));
    ASSERT_EQ(-EINVAL, cio_chan_new(&ch, 8, ((size_t)1 << 24) + 1));
    /* The largest message, through two slots, several laps. */
    size_t big = 64 * 1024;
    unsigned char *in = malloc(big), *out = malloc(big);
    ASSERT_TRUE(in != NULL && out != NULL);
    ASSERT_OK(cio_chan_new(&ch, big, 2));
    for (int lap = 0; lap < 7; lap++) {
        memset(in, lap + 1, big);
        in[big - 1] = (unsigned char)(0x80 + lap);
        ASSERT_OK(cio_chan_try_send(ch, in));
        ASSERT_OK(cio_chan_recv(ch, out));
        ASSERT_TRUE(memcmp(in, out, big) == 0);
    }
    free(in);
    free(out);
    int v = 0;
    ASSERT_EQ(-EINVAL, cio_chan_try_send(NULL, &v));
    ASSERT_EQ(-EINVAL, cio_chan_try_send(ch, NULL));
    ASSERT_EQ(-EINVAL, cio_chan_send(ch, NULL));
    ASSERT_EQ(-EINVAL, cio_chan_recv(NULL, &v));
    ASSERT_EQ(-EINVAL, cio_chan_recv_many(ch, &v, 0));
    ASSERT_EQ(-EINVAL, cio_chan_try_recv(ch, NULL));
    ASSERT_EQ(-EINVAL, cio_chan_close(NULL));
    ASSERT_EQ(0, cio_chan_len(NULL));
    ASSERT_EQ(-EINVAL, cio_chan_free(NULL));
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

typedef struct one_send {
    cio_chan *ch;
    int v;
} one_send;

static int send_one(void *arg)
{
    one_send *s = arg;
    return cio_chan_send(s->ch, &s->v);
}

TEST(chan_parked_senders_released_in_order)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 2));
    for (int i = 0; i < 2; i++)
        ASSERT_OK(cio_chan_try_send(ch, &i));
    enum { N = 8 };
    one_send s[N];
    cio_task *t[N];
    for (int k = 0; k < N; k++) {
        s[k] = (one_send){.ch = ch, .v = 100 + k};
        ASSERT_OK(cio_spawn(&t[k], send_one, &s[k]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    int v = 7;
    for (int i = 0; i < 2 + N; i++) {
        /* Parked senders go first: no overtaking, even with room made. */
        if (i < N)
            ASSERT_EQ(-EAGAIN, cio_chan_try_send(ch, &v));
        ASSERT_OK(cio_chan_recv(ch, &v));
        ASSERT_EQ(i < 2 ? i : 100 + i - 2, v);
    }
    for (int k = 0; k < N; k++) {
        ASSERT_OK(cio_task_join(t[k]));
        cio_task_free(t[k]);
    }
    ASSERT_EQ(0, cio_chan_len(ch));
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

/* ---- channels between loops ---------------------------------------------- */

/* Mains of the loops other than 0: wait until the set is stopped. */
static int idle_until_cancelled(void)
{
    int rc = cio_sleep(3600 * CIO_SEC);
    return rc == -ECANCELED ? 0 : rc;
}

/* Run `fn` on loop `i` and wait for its result. */
static int on_loop(int i, cio_task_fn fn, void *arg)
{
    cio_xtask *h;
    int rc = cio_xloop_spawn(&h, i, fn, arg);
    if (rc < 0)
        return rc;
    int res;
    rc = cio_xloop_join(h, &res);
    return rc < 0 ? rc : res;
}

#define XMAX 4

typedef struct xchg {
    int loops;
    long per_sender; /* messages each loop sends, round-robin to all */
    size_t cap;
    cio_chan *inbox[XMAX];
    long got[XMAX];
    uint64_t sum[XMAX];
    int bad[XMAX];
} xchg;

static int make_inbox(void *arg)
{
    xchg *x = arg;
    return cio_chan_new(&x->inbox[cio_loop_index()], sizeof(uint64_t), x->cap);
}

static int free_inbox(void *arg)
{
    xchg *x = arg;
    return cio_chan_free(x->inbox[cio_loop_index()]);
}

static int send_all(void *arg)
{
    xchg *x = arg;
    uint64_t me = (uint64_t)cio_loop_index(), seq[XMAX] = {0};
    for (long k = 0; k < x->per_sender; k++) {
        int dest = (int)(k % x->loops);
        uint64_t m = me << 56 | seq[dest]++;
        int rc = cio_chan_send(x->inbox[dest], &m);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Every message once, in order per sender: checked by sequence. */
static int recv_all(void *arg)
{
    xchg *x = arg;
    int me = cio_loop_index();
    uint64_t next[XMAX] = {0}, buf[64];
    for (;;) {
        ssize_t n = cio_chan_recv_many(x->inbox[me], buf, 64);
        if (n == CIO_EOF)
            return 0;
        if (n < 0)
            return (int)n;
        for (ssize_t i = 0; i < n; i++) {
            unsigned from = (unsigned)(buf[i] >> 56);
            uint64_t seq = buf[i] & ((UINT64_C(1) << 56) - 1);
            if (from >= XMAX || seq != next[from]++)
                x->bad[me]++;
            x->got[me]++;
            x->sum[me] += buf[i];
        }
    }
}

static int exchange(xchg *x)
{
    for (int i = 0; i < x->loops; i++)
        ASSERT_OK(on_loop(i, make_inbox, x));
    cio_xtask *rx[XMAX], *tx[XMAX];
    for (int i = 0; i < x->loops; i++)
        ASSERT_OK(cio_xloop_spawn(&rx[i], i, recv_all, x));
    for (int i = 0; i < x->loops; i++)
        ASSERT_OK(cio_xloop_spawn(&tx[i], i, send_all, x));
    int res;
    for (int i = 0; i < x->loops; i++) {
        ASSERT_OK(cio_xloop_join(tx[i], &res));
        ASSERT_EQ(0, res);
    }
    for (int i = 0; i < x->loops; i++)
        ASSERT_OK(cio_chan_close(x->inbox[i]));
    for (int i = 0; i < x->loops; i++) {
        ASSERT_OK(cio_xloop_join(rx[i], &res));
        ASSERT_EQ(0, res);
    }
    for (int i = 0; i < x->loops; i++)
        ASSERT_OK(on_loop(i, free_inbox, x));
    /* Expected: each sender s sends to d the sequences 0..c-1. */
    long total = 0;
    uint64_t sum = 0, expect_sum = 0;
    for (int d = 0; d < x->loops; d++) {
        ASSERT_EQ(0, x->bad[d]);
        total += x->got[d];
        sum += x->sum[d];
        for (int s = 0; s < x->loops; s++) {
            uint64_t c = (uint64_t)(x->per_sender / x->loops) +
                         ((x->per_sender % x->loops) > d ? 1 : 0);
            expect_sum += c * ((uint64_t)s << 56) + c * (c - 1) / 2;
        }
    }
    ASSERT_EQ(x->per_sender * x->loops, total);
    ASSERT_TRUE(sum == expect_sum);
    return 0;
}

static int exchange_main(void *arg)
{
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = exchange(arg);
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(chan_two_loops_exchange)
{
    xchg x = {.loops = 2, .per_sender = 20000, .cap = 16};
    ASSERT_OK(run_multi(2, exchange_main, &x, NULL));
    return 0;
}

TEST_HEAVY(chan_million_messages_between_four_loops)
{
    xchg x = {.loops = 4, .per_sender = 250000, .cap = 128};
    ASSERT_OK(run_multi(4, exchange_main, &x, NULL));
    long total = 0;
    for (int i = 0; i < 4; i++)
        total += x.got[i];
    ASSERT_EQ(1000000, total);
    return 0;
}

TEST_HEAVY(chan_million_messages_three_loops_tiny_ring)
{
    xchg x = {.loops = 3, .per_sender = 333334, .cap = 2};
    ASSERT_OK(run_multi(3, exchange_main, &x, NULL));
    return 0;
}

typedef struct slow {
    cio_chan *ch;
    atomic_long sent;
    int n;
} slow;

static int send_counted(void *arg)
{
    slow *s = arg;
    for (int i = 0; i < s->n; i++) {
        int rc = cio_chan_send(s->ch, &i);
        if (rc < 0)
            return rc;
        atomic_fetch_add(&s->sent, 1);
    }
    return 0;
}

static int slow_receiver(slow *s)
{
    ASSERT_OK(cio_chan_new(&s->ch, sizeof(int), 8));
    cio_xtask *h;
    ASSERT_OK(cio_xloop_spawn(&h, 1, send_counted, s));
    /* Wait until the sender has filled the ring and is held back. */
    for (int i = 0; i < 5000 && cio_chan_len(s->ch) < 8; i++)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_EQ(8, cio_chan_len(s->ch));
    ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    ASSERT_EQ(8, atomic_load(&s->sent));
    for (int i = 0; i < s->n; i++) {
        int v;
        ASSERT_OK(cio_chan_recv(s->ch, &v));
        ASSERT_EQ(i, v);
        /* Memory is bounded: what was sent and not received fits. */
        ASSERT_TRUE(atomic_load(&s->sent) - (i + 1) <= 8);
        ASSERT_TRUE(cio_chan_len(s->ch) <= 8);
        if (i % 16 == 0)
            ASSERT_OK(cio_sleep(100 * CIO_USEC));
    }
    int res;
    ASSERT_OK(cio_xloop_join(h, &res));
    ASSERT_EQ(0, res);
    ASSERT_OK(cio_chan_free(s->ch));
    return 0;
}

static int slow_main(void *arg)
{
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = slow_receiver(arg);
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(chan_backpressure_bounds_a_slow_receiver)
{
    slow s = {.n = 400};
    ASSERT_OK(run_multi(2, slow_main, &s, NULL));
    return 0;
}

static int send_forever(void *arg)
{
    cio_chan *ch = arg;
    for (int i = 0;; i++) {
        int rc = cio_chan_send(ch, &i);
        if (rc < 0)
            return rc;
    }
}

/* Stop the set while senders on two loops are held back by a full
 * channel: close, join them (cancelled, the joins wait for them), drain,
 * free. Nothing leaks and nothing hangs. */
static int inflight_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 4));
    cio_xtask *tx[2];
    ASSERT_OK(cio_xloop_spawn(&tx[0], 1, send_forever, ch));
    ASSERT_OK(cio_xloop_spawn(&tx[1], 2, send_forever, ch));
    int v;
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cio_chan_recv(ch, &v));
    ASSERT_OK(cio_multi_cancel());
    ASSERT_EQ(-ECANCELED, cio_sleep(3600 * CIO_SEC));
    ASSERT_OK(cio_chan_close(ch));
    /* A sender whose loop closed before it could start (the other one
     * may have filled the channel alone) ends with -ESHUTDOWN. */
    for (int i = 0; i < 2; i++) {
        int res = 0, rc = cio_xloop_join(tx[i], &res);
        ASSERT_TRUE(rc == 0 || rc == -ECANCELED || rc == -ESHUTDOWN);
        ASSERT_TRUE(res == -EPIPE || res == -ECANCELED || res == -ESHUTDOWN);
    }
    while (cio_chan_try_recv(ch, &v) == 0)
        ;
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

TEST_REALTIME(chan_shutdown_with_messages_in_flight)
{
    int results[3];
    ASSERT_EQ(0, run_multi(3, inflight_main, NULL, results));
    ASSERT_EQ(0, results[0]);
    return 0;
}

TEST_HEAVY(chan_million_messages_between_two_loops)
{
    xchg x = {.loops = 2, .per_sender = 500000, .cap = 1024};
    ASSERT_OK(run_multi(2, exchange_main, &x, NULL));
    ASSERT_EQ(1000000, x.got[0] + x.got[1]);
    return 0;
}

TEST_HEAVY(chan_million_messages_three_loops)
{
    xchg x = {.loops = 3, .per_sender = 333334, .cap = 100};
    ASSERT_OK(run_multi(3, exchange_main, &x, NULL));
    return 0;
}

/* A single slot and a ring of three between loops: every message laps. */
TEST_REALTIME(chan_loops_exchange_through_tiny_rings)
{
    xchg x = {.loops = 2, .per_sender = 20000, .cap = 1};
    ASSERT_OK(run_multi(2, exchange_main, &x, NULL));
    xchg y = {.loops = 3, .per_sender = 20000, .cap = 3};
    ASSERT_OK(run_multi(3, exchange_main, &y, NULL));
    return 0;
}

/* Senders parked on other loops: started one by one on loop 1, then on
 * loop 2, each parked before the next; released in that order. */
typedef struct parked {
    cio_chan *ch;
    int first; /* the value of the first sender of this loop */
    int n;
    one_send s[8];
    cio_task *t[8];
} parked;

static int park_senders(void *arg)
{
    parked *p = arg;
    for (int k = 0; k < p->n; k++) {
        p->s[k] = (one_send){.ch = p->ch, .v = p->first + k};
        ASSERT_OK(cio_spawn(&p->t[k], send_one, &p->s[k]));
        ASSERT_OK(cio_wait_all_blocked());
    }
    return 0;
}

static int join_senders(void *arg)
{
    parked *p = arg;
    int bad = 0;
    for (int k = 0; k < p->n; k++) {
        bad += cio_task_join(p->t[k]) != 0;
        cio_task_free(p->t[k]);
    }
    return bad ? -EPROTO : 0;
}

static int parked_order_body(void)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 2));
    for (int i = 0; i < 2; i++)
        ASSERT_OK(cio_chan_try_send(ch, &i));
    parked a = {.ch = ch, .first = 100, .n = 8};
    parked b = {.ch = ch, .first = 200, .n = 8};
    ASSERT_OK(on_loop(1, park_senders, &a));
    ASSERT_OK(on_loop(2, park_senders, &b));
    int v;
    ASSERT_EQ(-EAGAIN, cio_chan_try_send(ch, &v));
    for (int i = 0; i < 18; i++) {
        ASSERT_OK(cio_chan_recv(ch, &v));
        ASSERT_EQ(i < 2 ? i : i < 10 ? 100 + i - 2 : 200 + i - 10, v);
    }
    ASSERT_OK(on_loop(1, join_senders, &a));
    ASSERT_OK(on_loop(2, join_senders, &b));
    ASSERT_EQ(-EAGAIN, cio_chan_try_recv(ch, &v));
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

static int parked_order_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = parked_order_body();
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(chan_senders_parked_on_other_loops_released_in_order)
{
    ASSERT_OK(run_multi(3, parked_order_main, NULL, NULL));
    return 0;
}

/* Close from a third loop while senders (loops 1 and 2) are parked on a
 * full channel and receivers (loop 0) on an empty one. */
typedef struct tagged {
    cio_chan *ch;
    uint64_t tag;
    long sent;
} tagged;

static int send_until_error(void *arg)
{
    tagged *g = arg;
    for (;;) {
        uint64_t m = g->tag << 32 | (uint64_t)g->sent;
        int rc = cio_chan_send(g->ch, &m);
        if (rc < 0)
            return rc;
        g->sent++;
    }
}

typedef struct fleet {
    tagged g[3];
    cio_task *t[3];
} fleet;

static int start_fleet(void *arg)
{
    fleet *f = arg;
    for (int k = 0; k < 3; k++)
        ASSERT_OK(cio_spawn(&f->t[k], send_until_error, &f->g[k]));
    ASSERT_OK(cio_wait_all_blocked());
    return 0;
}

static int join_fleet(void *arg)
{
    fleet *f = arg;
    int bad = 0;
    for (int k = 0; k < 3; k++) {
        bad += cio_task_join(f->t[k]) != -EPIPE;
        cio_task_free(f->t[k]);
    }
    return bad ? -EPROTO : 0;
}

static int close_chan(void *arg)
{
    return cio_chan_close(arg);
}

static int close_parked_body(void)
{
    cio_chan *full, *empty;
    ASSERT_OK(cio_chan_new(&full, sizeof(uint64_t), 4));
    ASSERT_OK(cio_chan_new(&empty, sizeof(int), 4));
    fleet f[2];
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 3; k++)
            f[l].g[k] = (tagged){.ch = full, .tag = (uint64_t)(l * 3 + k)};
    ASSERT_OK(on_loop(1, start_fleet, &f[0]));
    ASSERT_OK(on_loop(2, start_fleet, &f[1]));
    ASSERT_EQ(4, cio_chan_len(full));
    pair p = {.ch = empty};
    cio_task *rx[3];
    for (int k = 0; k < 3; k++)
        ASSERT_OK(cio_spawn(&rx[k], recv_one, &p));
    ASSERT_OK(cio_wait_all_blocked());
    /* Closed on loop 2: both sides wake from another loop. */
    ASSERT_OK(on_loop(2, close_chan, full));
    ASSERT_OK(on_loop(2, close_chan, empty));
    for (int k = 0; k < 3; k++) {
        ASSERT_EQ(CIO_EOF, cio_task_join(rx[k]));
        cio_task_free(rx[k]);
    }
    ASSERT_OK(on_loop(1, join_fleet, &f[0]));
    ASSERT_OK(on_loop(2, join_fleet, &f[1]));
    /* What the senders counted as sent is exactly what is buffered, in
     * order per sender. */
    long sent = 0, next[6] = {0};
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 3; k++)
            sent += f[l].g[k].sent;
    ASSERT_EQ(4, sent);
    uint64_t m;
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(cio_chan_recv(full, &m));
        ASSERT_TRUE((m >> 32) < 6);
        ASSERT_EQ(next[m >> 32]++, (long)(m & 0xffffffff));
    }
    ASSERT_EQ(CIO_EOF, cio_chan_recv(full, &m));
    ASSERT_OK(cio_chan_free(full));
    ASSERT_OK(cio_chan_free(empty));
    return 0;
}

static int close_parked_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = close_parked_body();
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(chan_close_wakes_parked_senders_and_receivers)
{
    ASSERT_OK(run_multi(3, close_parked_main, NULL, NULL));
    return 0;
}

/* Freed (not drained) while senders of another loop are parked: they get
 * -EPIPE and the memory goes with the last of them (the runner checks for
 * leaks). */
static int free_parked_body(void)
{
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(uint64_t), 4));
    fleet f;
    for (int k = 0; k < 3; k++)
        f.g[k] = (tagged){.ch = ch, .tag = (uint64_t)k};
    ASSERT_OK(on_loop(1, start_fleet, &f));
    ASSERT_OK(cio_chan_free(ch));
    ASSERT_OK(on_loop(1, join_fleet, &f));
    return 0;
}

static int free_parked_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = free_parked_body();
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(chan_freed_with_senders_parked)
{
    ASSERT_OK(run_multi(2, free_parked_main, NULL, NULL));
    return 0;
}

/* Sends and receives across loops cancelled by tiny deadlines at random
 * points: a cancelled send did not enqueue (the sender retries the same
 * value) and a cancelled receive did not dequeue, so the receiver sees
 * 0..N-1 exactly once, in order. */
typedef struct flaky {
    cio_chan *ch;
    long n;
} flaky;

static int flaky_send(void *arg)
{
    flaky *f = arg;
    unsigned seed = 1;
    for (long v = 0; v < f->n;) {
        seed = seed * 1103515245 + 12345;
        cio_scope sc;
        ASSERT_OK(cio_scope_enter(
            &sc, cio_deadline_after((seed >> 16) % 20 * CIO_USEC), 0));
        int rc = cio_chan_send(f->ch, &v);
        cio_scope_exit(&sc);
        if (rc == 0)
            v++;
        else if (rc != -ECANCELED)
            return rc;
    }
    return 0;
}

static int flaky_body(void)
{
    flaky f = {.n = 20000};
    ASSERT_OK(cio_chan_new(&f.ch, sizeof(long), 4));
    cio_xtask *h;
    ASSERT_OK(cio_xloop_spawn(&h, 1, flaky_send, &f));
    long next = 0;
    unsigned seed = 7;
    while (next < f.n) {
        seed = seed * 1103515245 + 12345;
        cio_scope sc;
        ASSERT_OK(cio_scope_enter(
            &sc, cio_deadline_after((seed >> 16) % 30 * CIO_USEC), 0));
        long v;
        int rc = cio_chan_recv(f.ch, &v);
        cio_scope_exit(&sc);
        if (rc == -ECANCELED)
            continue;
        ASSERT_OK(rc);
        ASSERT_EQ(next, v);
        next++;
    }
    int res;
    ASSERT_OK(cio_xloop_join(h, &res));
    ASSERT_EQ(0, res);
    long v;
    ASSERT_EQ(-EAGAIN, cio_chan_try_recv(f.ch, &v));
    ASSERT_OK(cio_chan_free(f.ch));
    return 0;
}

static int flaky_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = flaky_body();
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(chan_cancelled_cross_loop_waits_lose_nothing)
{
    ASSERT_OK(run_multi(2, flaky_main, NULL, NULL));
    return 0;
}

/* ---- tasks on other loops ------------------------------------------------ */

static int answer(void *arg)
{
    (void)arg;
    return 40 + cio_loop_index();
}

static int failing(void *arg)
{
    (void)arg;
    return cio_errorf(-EPROTO, "bad frame on loop %d", cio_loop_index());
}

static int spawn_main_body(void)
{
    ASSERT_EQ(41, on_loop(1, answer, NULL));
    ASSERT_EQ(40, on_loop(0, answer, NULL));
    ASSERT_EQ(-EPROTO, on_loop(1, failing, NULL));
    cio_xtask *h;
    ASSERT_EQ(-EINVAL, cio_xloop_spawn(&h, 2, answer, NULL));
    ASSERT_EQ(-EINVAL, cio_xloop_spawn(&h, -1, answer, NULL));
    ASSERT_EQ(-EINVAL, cio_xloop_spawn(&h, 1, NULL, NULL));
    ASSERT_EQ(-EINVAL, cio_xloop_join(NULL, NULL));
    return 0;
}

static int spawn_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = spawn_main_body();
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(xloop_result_and_error_propagate)
{
    ASSERT_OK(run_multi(2, spawn_main, NULL, NULL));
    /* Outside a set there is no other loop. */
    cio_xtask *h;
    ASSERT_EQ(-ESRCH, cio_xloop_spawn(&h, 0, answer, NULL));
    return 0;
}

typedef struct sleeper {
    atomic_int saw_cancel;
} sleeper;

static int long_sleep(void *arg)
{
    sleeper *s = arg;
    int rc = cio_sleep(3600 * CIO_SEC);
    if (rc == -ECANCELED)
        atomic_store(&s->saw_cancel, 1);
    return rc;
}

static int cancel_join_body(void)
{
    sleeper s = {0};
    cio_xtask *h;
    ASSERT_OK(cio_xloop_spawn(&h, 1, long_sleep, &s));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(30 * CIO_MSEC), 0));
    int res = 0;
    ASSERT_EQ(-ECANCELED, cio_xloop_join(h, &res));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(-ECANCELED, res);
    ASSERT_EQ(1, atomic_load(&s.saw_cancel)); /* it ended before join did */
    /* A joiner already cancelled still waits for the remote task. */
    sleeper s2 = {0};
    ASSERT_OK(cio_xloop_spawn(&h, 1, long_sleep, &s2));
    cio_scope c2;
    ASSERT_OK(cio_scope_enter(&c2, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&c2));
    ASSERT_EQ(-ECANCELED, cio_xloop_join(h, &res));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&c2));
    ASSERT_EQ(1, atomic_load(&s2.saw_cancel));
    return 0;
}

static int cancel_join_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() != 0)
        return idle_until_cancelled();
    int rc = cancel_join_body();
    cio_multi_cancel();
    return rc;
}

TEST_REALTIME(xloop_join_cancelled_cancels_the_remote_task)
{
    ASSERT_OK(run_multi(2, cancel_join_main, NULL, NULL));
    return 0;
}

static int detached_ping(void *arg)
{
    int v = 7;
    return cio_chan_send(arg, &v);
}

static int ended_main(void *arg)
{
    (void)arg;
    if (cio_loop_index() == 1)
        return 0; /* loop 1 shuts down at once */
    /* A detached task reports back through a channel. */
    cio_chan *ch;
    ASSERT_OK(cio_chan_new(&ch, sizeof(int), 1));
    int rc = 0, v = 0;
    for (int i = 0; i < 5000 && rc == 0; i++) {
        rc = cio_xloop_spawn(NULL, 1, detached_ping, ch);
        if (rc == 0) {
            /* Unless loop 1 closed before starting it (then it is
             * dropped), the task reports back. */
            cio_scope sc;
            ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
            int r = cio_chan_recv(ch, &v);
            cio_scope_exit(&sc);
            ASSERT_TRUE(r == -ECANCELED || v == 7);
            ASSERT_OK(cio_sleep(CIO_MSEC));
        }
    }
    ASSERT_EQ(-ESHUTDOWN, rc);
    ASSERT_OK(cio_chan_free(ch));
    return 0;
}

TEST_REALTIME(xloop_spawn_refused_once_target_main_ended)
{
    ASSERT_OK(run_multi(2, ended_main, NULL, NULL));
    return 0;
}

/* ---- a server on every loop ---------------------------------------------- */

typedef struct srvctx {
    int loops;
    atomic_int ready;
    atomic_int served[XMAX];
    cio_addr addr;
    atomic_int port;
} srvctx;

static int echo_line(cio_stream *s, void *arg)
{
    srvctx *c = arg;
    char line[128];
    for (;;) {
        ssize_t n = cio_stream_readline(s, line, sizeof line);
        if (n <= 0)
            return (int)n;
        atomic_fetch_add(&c->served[cio_loop_index()], 1);
        int rc = cio_stream_write(s, line, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            return rc;
    }
}

static int client(void *arg)
{
    srvctx *c = arg;
    cio_stream *s;
    int rc = cio_open_connection(&s, "127.0.0.1", atomic_load(&c->port), NULL);
    if (rc < 0)
        return rc;
    char msg[] = "ping\n", buf[16];
    for (int i = 0; i < 3 && rc >= 0; i++) {
        rc = cio_stream_write(s, msg, 5);
        if (rc == 0) {
            ssize_t n = cio_stream_readline(s, buf, sizeof buf);
            rc = n == 5 && memcmp(buf, msg, 5) == 0 ? 0 : -EPROTO;
        }
    }
    int crc = cio_stream_close(s);
    return rc < 0 ? rc : crc;
}

static int clients(srvctx *c)
{
    /* Every loop listens before the first client connects. */
    for (int i = 0; i < 5000 && atomic_load(&c->ready) < c->loops; i++)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_EQ(c->loops, atomic_load(&c->ready));
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < 64; i++)
        ASSERT_OK(cio_group_spawn(g, NULL, client, c));
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    int total = 0;
    for (int i = 0; i < c->loops; i++) {
        /* 64 connections hashed over the listeners: each gets some. */
        ASSERT_TRUE(atomic_load(&c->served[i]) > 0);
        total += atomic_load(&c->served[i]);
    }
    ASSERT_EQ(64 * 3, total);
    return 0;
}

static int server_main(void *arg)
{
    srvctx *c = arg;
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    cio_server *srv;
    ASSERT_OK(cio_multi_server_start(&srv, &a, echo_line, c, NULL));
    int port = cio_addr_port(cio_server_addr(srv));
    int expect = 0;
    atomic_compare_exchange_strong(&c->port, &expect, port);
    int rc = atomic_load(&c->port) == port ? 0 : -EADDRNOTAVAIL;
    atomic_fetch_add(&c->ready, 1);
    if (cio_loop_index() == 0 && rc == 0) {
        rc = clients(c);
        cio_multi_cancel();
    }
    if (rc == 0) {
        rc = cio_server_wait(srv);
        rc = rc == -ECANCELED ? 0 : rc;
    }
    int crc = cio_server_close(srv, 0);
    return rc < 0 ? rc : crc == -ECANCELED ? 0 : crc;
}

TEST_REALTIME(multi_server_reuseport_serves_on_every_loop)
{
    srvctx c = {.loops = 3};
    int results[3];
    ASSERT_OK(run_multi(3, server_main, &c, results));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, results[i]);
    return 0;
}

TEST(multi_server_needs_a_set_and_an_ip)
{
    cio_addr a;
    cio_server *srv;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    ASSERT_EQ(-ESRCH, cio_multi_server_start(&srv, &a, echo_line, NULL, NULL));
    ASSERT_OK(cio_addr_unix(&a, "@cio-xloop-test"));
    ASSERT_EQ(-EINVAL, cio_multi_server_start(&srv, &a, echo_line, NULL, NULL));
    return 0;
}

/* ---- signals ------------------------------------------------------------- */

typedef struct sigctx {
    int fd; /* each loop writes a byte once its main runs */
} sigctx;

static int signalled_main(void *arg)
{
    sigctx *c = arg;
    char b = 'r';
    if (write(c->fd, &b, 1) != 1)
        return -EIO;
    int rc = cio_sleep(3600 * CIO_SEC);
    if (rc != -ECANCELED || cio_loop_index() != 1)
        return rc;
    /* Loop 1 dawdles in a shield: the grace period cuts it short. */
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    rc = cio_sleep(3600 * CIO_SEC);
    cio_scope_exit(&sh);
    return rc;
}

/* In a forked child (the set owns the process's SIGTERM there). */
static int signal_child(void *arg)
{
    int *fds = arg;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        close(fds[0]);
        sigctx c = {fds[1]};
        cio_multi_config cfg;
        cio_multi_config_init(&cfg);
        cfg.loops = 2;
        cfg.loop.handle_signals = 1;
        cfg.loop.shutdown_grace = 50 * CIO_MSEC;
        int rc = cio_run_multi(&cfg, signalled_main, &c);
        _exit(rc == -ECANCELED ? 0 : 1);
    }
    close(fds[1]);
    char b[2];
    size_t got = 0;
    while (got < 2) {
        ssize_t n = read(fds[0], b, 2 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);
    kill(pid, SIGTERM);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -errno;
    if (got != 2)
        return -EPROTO;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#if defined(__SANITIZE_THREAD__)
#define NO_FORK_THREADS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NO_FORK_THREADS 1
#endif
#endif

TEST_REALTIME(multi_sigterm_stops_every_loop_after_grace)
{
#ifdef NO_FORK_THREADS
    printf("  skip: ThreadSanitizer cannot start threads in a forked child\n");
    return 0;
#endif
    int fds[2];
    ASSERT_OK(pipe(fds));
    ASSERT_EQ(0, cio_to_thread(signal_child, fds));
    return 0;
}
