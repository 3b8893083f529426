/* Queues: FIFO, LIFO and PRIORITY order, bounded puts, task_done/join,
 * shutdown, and items kept safe under cancellation (asyncio
 * test_queues.py). */
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */


/* Items are small integers carried in the pointer. */
#define ITEM(x) ((void *)(uintptr_t)(x))
#define VAL(p) ((int)(uintptr_t)(p))

/* Takes the next item without waiting and checks it. */
#define ASSERT_GET(q, expected)                             \
    do {                                                    \
        void *it_ = ITEM(-1);                               \
        ASSERT_EQ(0, cio_queue_get_nowait((q), &it_));      \
        ASSERT_EQ((expected), VAL(it_));                    \
    } while (0)

/* Priority: the hundreds are the priority, the rest tells items apart. */
static int by_hundreds(const void *a, const void *b)
{
    int x = VAL(a) / 100, y = VAL(b) / 100;
    return (x > y) - (x < y);
}

/* Gets one item (after an optional delay) and records its value. */
typedef struct getter {
    cio_queue *q;
    trace *tr;
    int64_t delay;
    bool started;
    int rc;
    int item;
} getter;

static int getter_fn(void *arg)
{
    getter *g = arg;
    g->started = true;
    g->item = -1;
    if (g->delay > 0) {
        int rc = cio_sleep(g->delay);
        if (rc < 0)
            return rc;
    }
    void *it = ITEM(-1);
    g->rc = cio_queue_get(g->q, &it);
    if (g->rc < 0)
        return g->rc;
    g->item = VAL(it);
    if (g->tr)
        trace_add(g->tr, g->item);
    return g->item;
}

/* Puts one item (after an optional delay). */
typedef struct putter {
    cio_queue *q;
    int item;
    int64_t delay;
    int rc;
} putter;

static int putter_fn(void *arg)
{
    putter *p = arg;
    p->rc = 1;
    if (p->delay > 0) {
        int rc = cio_sleep(p->delay);
        if (rc < 0)
            return rc;
    }
    p->rc = cio_queue_put(p->q, ITEM(p->item));
    return p->rc;
}

static int joiner_fn(void *arg)
{
    return cio_queue_join(arg);
}

/* ---- construction and arguments ----------------------------------------- */

TEST(queue_new_validates_arguments)
{
    cio_queue *q = NULL;
    ASSERT_EQ(-EINVAL, cio_queue_new(NULL, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(-EINVAL, cio_queue_new(&q, -1, 0, NULL));
    ASSERT_EQ(-EINVAL, cio_queue_new(&q, 3, 0, NULL));
    ASSERT_EQ(-EINVAL, cio_queue_new(&q, CIO_QUEUE_PRIORITY, 0, NULL));
    ASSERT_TRUE(q == NULL);
    ASSERT_EQ(0, cio_queue_new(&q, CIO_QUEUE_LIFO, 5, by_hundreds));
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_EQ(0, cio_queue_free(q));
    ASSERT_EQ(0, cio_queue_free(NULL));
    return 0;
}

TEST(queue_null_arguments_einval)
{
    cio_queue *q;
    void *it;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(-EINVAL, cio_queue_put(NULL, ITEM(1)));
    ASSERT_EQ(-EINVAL, cio_queue_put_nowait(NULL, ITEM(1)));
    ASSERT_EQ(-EINVAL, cio_queue_get(NULL, &it));
    ASSERT_EQ(-EINVAL, cio_queue_get(q, NULL));
    ASSERT_EQ(-EINVAL, cio_queue_get_nowait(NULL, &it));
    ASSERT_EQ(-EINVAL, cio_queue_get_nowait(q, NULL));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(NULL));
    ASSERT_EQ(-EINVAL, cio_queue_join(NULL));
    ASSERT_EQ(-EINVAL, cio_queue_shutdown(NULL, false));
    ASSERT_EQ(0, cio_queue_size(NULL));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_null_item_is_an_ordinary_item)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(0, cio_queue_put(q, NULL));
    ASSERT_EQ(1, cio_queue_size(q));
    void *it = ITEM(9);
    ASSERT_EQ(0, cio_queue_get(q, &it));
    ASSERT_TRUE(it == NULL);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- order -------------------------------------------------------------- */

TEST(queue_fifo_order)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 1; i <= 5; i++)
        ASSERT_EQ(0, cio_queue_put(q, ITEM(i)));
    ASSERT_EQ(5, cio_queue_size(q));
    for (int i = 1; i <= 5; i++) {
        void *it;
        ASSERT_EQ(0, cio_queue_get(q, &it));
        ASSERT_EQ(i, VAL(it));
    }
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_TIME(0);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_lifo_order)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_LIFO, 0, NULL));
    for (int i = 1; i <= 5; i++)
        ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(i)));
    ASSERT_GET(q, 5);
    ASSERT_GET(q, 4);
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(6)));
    ASSERT_GET(q, 6);
    ASSERT_GET(q, 3);
    ASSERT_GET(q, 2);
    ASSERT_GET(q, 1);
    void *it;
    ASSERT_EQ(-EAGAIN, cio_queue_get_nowait(q, &it));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_priority_smallest_first_fifo_among_equals)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_PRIORITY, 0, by_hundreds));
    static const int in[] = {301, 101, 302, 201, 102, 303, 103, 202, 1};
    static const int out[] = {1, 101, 102, 103, 201, 202, 301, 302, 303};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(in[i])));
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        ASSERT_GET(q, out[i]);
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

static int by_thousands(const void *a, const void *b)
{
    int x = VAL(a) / 1000, y = VAL(b) / 1000;
    return (x > y) - (x < y);
}

TEST(queue_priority_is_stable_over_many_items)
{
    enum { N = 3000, P = 10 };
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_PRIORITY, 0, by_thousands));
    /* Priorities 0..9 in a scrambled order; the low digits number the
     * items of each priority, so the next get is known exactly: the
     * oldest item of the smallest priority present. */
    int put[P] = {0}, got[P] = {0};
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        int p = (int)((x >> 16) % P);
        ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(p * 1000 + put[p]++)));
        ASSERT_TRUE(put[p] < 1000);
        if (i % 3 != 2)
            continue;
        int want = 0;
        while (got[want] == put[want])
            want++;
        ASSERT_GET(q, want * 1000 + got[want]++);
    }
    for (int p = 0; p < P; p++)
        while (got[p] < put[p])
            ASSERT_GET(q, p * 1000 + got[p]++);
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_fifo_keeps_order_across_wraparound_and_growth)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    int next_in = 0, next_out = 0;
    /* Move the ring's head forward, then grow while it is wrapped. */
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 10 + round * 7; i++)
            ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(next_in++)));
        for (int i = 0; i < 9 + round * 3; i++)
            ASSERT_GET(q, next_out++);
        ASSERT_EQ(next_in - next_out, cio_queue_size(q));
    }
    while (next_out < next_in)
        ASSERT_GET(q, next_out++);
    void *it;
    ASSERT_EQ(-EAGAIN, cio_queue_get_nowait(q, &it));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- nowait ------------------------------------------------------------- */

TEST(queue_get_nowait_on_empty_eagain)
{
    cio_queue *q;
    void *it = ITEM(7);
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(-EAGAIN, cio_queue_get_nowait(q, &it));
    ASSERT_EQ(7, VAL(it));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_put_nowait_on_full_eagain)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 2, NULL));
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(1)));
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(2)));
    ASSERT_EQ(-EAGAIN, cio_queue_put_nowait(q, ITEM(3)));
    ASSERT_EQ(2, cio_queue_size(q));
    ASSERT_GET(q, 1);
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(3)));
    ASSERT_GET(q, 2);
    ASSERT_GET(q, 3);
    /* A rejected item did not count as unfinished. */
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- waiting getters ---------------------------------------------------- */

TEST(queue_get_waits_for_put)
{
    cio_queue *q;
    trace tr = {0};
    getter g;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    g = (getter){.q = q, .tr = &tr};
    ASSERT_OK(cio_spawn(&t, getter_fn, &g));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(42)));
    /* Handed straight to the getter: nothing is stored. */
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_EQ(42, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_waiting_getters_served_in_arrival_order)
{
    enum { N = 4 };
    cio_queue *q;
    trace tr = {0};
    getter gs[N];
    cio_task *ts[N];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    /* Spawned 0..3, arriving 3..0. */
    for (int i = 0; i < N; i++) {
        gs[i] = (getter){.q = q, .tr = &tr, .delay = (N - i) * CIO_MSEC};
        ASSERT_OK(cio_spawn(&ts[i], getter_fn, &gs[i]));
    }
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    for (int i = 0; i < N; i++)
        ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(i + 1)));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(N - i, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_TRACE(&tr, 1, 2, 3, 4);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_put_and_get_do_not_yield_when_they_can_complete)
{
    cio_queue *q;
    getter g;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 2, NULL));
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&t, getter_fn, &g));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(2)));
    void *it;
    ASSERT_EQ(0, cio_queue_get(q, &it));
    ASSERT_EQ(1, VAL(it));
    ASSERT_TRUE(!g.started);
    ASSERT_EQ(2, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- bounded puts ------------------------------------------------------- */

TEST(queue_bounded_put_waits_and_resumes_in_fifo_order)
{
    enum { N = 3 };
    cio_queue *q;
    putter ps[N];
    cio_task *ts[N];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 2, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(2)));
    /* Putters of 10, 11, 12 spawned in that order, arriving 12, 11, 10. */
    for (int i = 0; i < N; i++) {
        ps[i] = (putter){.q = q, .item = 10 + i,
                         .delay = (N - i) * CIO_MSEC};
        ASSERT_OK(cio_spawn(&ts[i], putter_fn, &ps[i]));
    }
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_wait_all_blocked());
    for (int i = 0; i < N; i++)
        ASSERT_TRUE(!cio_task_done(ts[i]));
    ASSERT_EQ(2, cio_queue_size(q));
    /* Each get frees one slot, taken by the first waiting putter at
     * once: the queue stays full and nobody can overtake. */
    ASSERT_GET(q, 1);
    ASSERT_EQ(2, cio_queue_size(q));
    ASSERT_EQ(-EAGAIN, cio_queue_put_nowait(q, ITEM(99)));
    ASSERT_GET(q, 2);
    ASSERT_GET(q, 12);
    ASSERT_GET(q, 11);
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_GET(q, 10);
    ASSERT_EQ(0, cio_queue_size(q));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(0, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_put_after_get_goes_behind_waiting_putter)
{
    cio_queue *q;
    putter p;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 1, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    p = (putter){.q = q, .item = 2};
    ASSERT_OK(cio_spawn(&t, putter_fn, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_GET(q, 1);
    /* Our put must wait behind the putter that was already waiting. */
    ASSERT_EQ(-EAGAIN, cio_queue_put_nowait(q, ITEM(3)));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_GET(q, 2);
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(3)));
    ASSERT_GET(q, 3);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_bounded_lifo_admits_waiting_putter)
{
    cio_queue *q;
    putter p;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_LIFO, 2, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(2)));
    p = (putter){.q = q, .item = 3};
    ASSERT_OK(cio_spawn(&t, putter_fn, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_GET(q, 2);
    ASSERT_GET(q, 3);
    ASSERT_GET(q, 1);
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_cancelled_putter_adds_nothing)
{
    cio_queue *q;
    putter ps[3];
    cio_task *ts[3];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 1, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    for (int i = 0; i < 3; i++) {
        ps[i] = (putter){.q = q, .item = 10 + i};
        ASSERT_OK(cio_spawn(&ts[i], putter_fn, &ps[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(ts[1]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[1]));
    ASSERT_GET(q, 1);
    ASSERT_GET(q, 10);
    ASSERT_GET(q, 12);
    void *it;
    ASSERT_EQ(-EAGAIN, cio_queue_get_nowait(q, &it));
    ASSERT_EQ(0, cio_task_join(ts[0]));
    ASSERT_EQ(0, cio_task_join(ts[2]));
    for (int i = 0; i < 3; i++)
        cio_task_free(ts[i]);
    /* Three items were put, not four. */
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_admitted_putter_cancelled_before_running_keeps_its_item)
{
    cio_queue *q;
    putter p;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 1, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    p = (putter){.q = q, .item = 2};
    ASSERT_OK(cio_spawn(&t, putter_fn, &p));
    ASSERT_OK(cio_wait_all_blocked());
    /* The get moves the putter's item in; the put has completed, so a
     * cancel arriving before the putter runs does not undo it. */
    ASSERT_GET(q, 1);
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_GET(q, 2);
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- cancellation of getters -------------------------------------------- */

TEST(queue_put_and_get_while_cancelled_move_nothing)
{
    cio_queue *q;
    cio_scope sc;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    void *it = ITEM(5);
    ASSERT_EQ(-ECANCELED, cio_queue_get(q, &it));
    ASSERT_EQ(5, VAL(it));
    ASSERT_EQ(-ECANCELED, cio_queue_put(q, ITEM(2)));
    ASSERT_EQ(-ECANCELED, cio_queue_join(q));
    ASSERT_EQ(1, cio_queue_size(q));
    /* The nowait calls do not suspend and work while cancelled. */
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(3)));
    ASSERT_GET(q, 1);
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_GET(q, 3);
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_cancelled_waiting_getter_takes_nothing)
{
    enum { N = 3 };
    cio_queue *q;
    trace tr = {0};
    getter gs[N];
    cio_task *ts[N];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 0; i < N; i++) {
        gs[i] = (getter){.q = q, .tr = &tr};
        ASSERT_OK(cio_spawn(&ts[i], getter_fn, &gs[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_EQ(-1, gs[0].item);
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(2)));
    ASSERT_EQ(1, cio_task_join(ts[1]));
    ASSERT_EQ(2, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 1, 2);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_item_handed_to_cancelled_getter_goes_to_next_getter)
{
    enum { N = 3 };
    cio_queue *q;
    trace tr = {0};
    getter gs[N];
    cio_task *ts[N];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 0; i < N; i++) {
        gs[i] = (getter){.q = q, .tr = &tr};
        ASSERT_OK(cio_spawn(&ts[i], getter_fn, &gs[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    /* Hand 7 to the first getter, then cancel it before it runs. */
    ASSERT_EQ(0, cio_queue_put(q, ITEM(7)));
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_EQ(-1, gs[0].item);
    ASSERT_EQ(7, cio_task_join(ts[1]));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[2]));
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(8)));
    ASSERT_EQ(8, cio_task_join(ts[2]));
    for (int i = 0; i < N; i++)
        cio_task_free(ts[i]);
    ASSERT_TRACE(&tr, 7, 8);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* With one getter waiting: put `first` (handed to it), put `second`
 * (stored), cancel the getter before it runs, and check what the queue
 * gives back. */
static int handback(int kind, int first, int second, int *out, int n)
{
    cio_queue *q;
    getter g;
    cio_task *t;
    int rc = cio_queue_new(&q, kind, 0, by_hundreds);
    if (rc < 0)
        return rc;
    g = (getter){.q = q};
    if ((rc = cio_spawn(&t, getter_fn, &g)) < 0)
        return rc;
    cio_wait_all_blocked();
    cio_queue_put(q, ITEM(first));
    cio_queue_put(q, ITEM(second));
    cio_task_cancel(t);
    rc = cio_task_join(t);
    cio_task_free(t);
    if (rc != -ECANCELED || g.item != -1)
        return -1000;
    if ((int)cio_queue_size(q) != n)
        return -2000;
    for (int i = 0; i < n; i++) {
        void *it;
        if (cio_queue_get_nowait(q, &it) < 0)
            return -3000;
        out[i] = VAL(it);
    }
    for (int i = 0; i < n; i++)
        if (cio_queue_task_done(q) < 0)
            return -4000;
    if (cio_queue_task_done(q) != -EINVAL)
        return -5000;
    return cio_queue_free(q);
}

TEST(queue_item_of_cancelled_getter_returns_to_fifo_front)
{
    int out[2];
    ASSERT_EQ(0, handback(CIO_QUEUE_FIFO, 1, 2, out, 2));
    ASSERT_EQ(1, out[0]);
    ASSERT_EQ(2, out[1]);
    return 0;
}

TEST(queue_item_of_cancelled_getter_returns_to_lifo_top)
{
    int out[2];
    ASSERT_EQ(0, handback(CIO_QUEUE_LIFO, 1, 2, out, 2));
    ASSERT_EQ(1, out[0]);
    ASSERT_EQ(2, out[1]);
    return 0;
}

TEST(queue_item_of_cancelled_getter_goes_first_among_equal_priority)
{
    int out[2];
    ASSERT_EQ(0, handback(CIO_QUEUE_PRIORITY, 501, 502, out, 2));
    ASSERT_EQ(501, out[0]);
    ASSERT_EQ(502, out[1]);
    /* Priority still rules over the put-back. */
    ASSERT_EQ(0, handback(CIO_QUEUE_PRIORITY, 501, 101, out, 2));
    ASSERT_EQ(101, out[0]);
    ASSERT_EQ(501, out[1]);
    return 0;
}

/* Two getters wait; `a` and `b` are handed to them, `c` is stored, and
 * both getters are cancelled before they run. Returns what the queue then
 * gives, in order, in `out` (3 items). */
/* Take the 3 items left in `q` into `out` and free it; `err` if one is
 * missing. */
static int drain3(cio_queue *q, int *out, int err)
{
    for (int i = 0; i < 3; i++) {
        void *it;
        if (cio_queue_get_nowait(q, &it) < 0)
            return err;
        out[i] = VAL(it);
    }
    return cio_queue_free(q);
}

static int handback_two(int kind, int a, int b, int c, int *out)
{
    cio_queue *q;
    getter gs[2];
    cio_task *ts[2];
    int rc = cio_queue_new(&q, kind, 0, by_hundreds);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 2; i++) {
        gs[i] = (getter){.q = q};
        if ((rc = cio_spawn(&ts[i], getter_fn, &gs[i])) < 0)
            return rc;
    }
    cio_wait_all_blocked();
    cio_queue_put(q, ITEM(a));
    cio_queue_put(q, ITEM(b));
    cio_queue_put(q, ITEM(c));
    cio_task_cancel(ts[0]);
    cio_task_cancel(ts[1]);
    for (int i = 0; i < 2; i++) {
        rc = cio_task_join(ts[i]);
        cio_task_free(ts[i]);
        if (rc != -ECANCELED)
            return -1000;
    }
    if (cio_queue_size(q) != 3)
        return -2000;
    return drain3(q, out, -3000);
}

TEST(queue_items_of_cancelled_getters_keep_fifo_order)
{
    int out[3];
    ASSERT_EQ(0, handback_two(CIO_QUEUE_FIFO, 1, 2, 3, out));
    ASSERT_EQ(1, out[0]);
    ASSERT_EQ(2, out[1]);
    ASSERT_EQ(3, out[2]);
    return 0;
}

TEST(queue_items_of_cancelled_getters_keep_order_among_equal_priority)
{
    int out[3];
    ASSERT_EQ(0, handback_two(CIO_QUEUE_PRIORITY, 501, 502, 503, out));
    ASSERT_EQ(501, out[0]);
    ASSERT_EQ(502, out[1]);
    ASSERT_EQ(503, out[2]);
    ASSERT_EQ(0, handback_two(CIO_QUEUE_PRIORITY, 501, 502, 101, out));
    ASSERT_EQ(101, out[0]);
    ASSERT_EQ(501, out[1]);
    ASSERT_EQ(502, out[2]);
    return 0;
}

/* Waits for `ev`, then cancels `target`. */
typedef struct canceller {
    cio_event *ev;
    cio_task *target;
} canceller;

static int cancel_after_event(void *arg)
{
    canceller *c = arg;
    int rc = cio_event_wait(c->ev);
    return rc < 0 ? rc : cio_task_cancel(c->target);
}

/* Three getters wait; `a` goes to the first and `b` to the second, and
 * both are cancelled before they run. The first passes `a` on to the
 * third getter, which a helper then cancels before it runs: the third
 * gives `a` back after `b` was given back. Then `c` is put. Returns the
 * three items in the order the queue gives them. */
static int pass_along(int kind, int a, int b, int c, int *out)
{
    cio_queue *q;
    cio_event ev = CIO_EVENT_INIT;
    getter gs[3];
    cio_task *ts[3], *killer;
    int rc = cio_queue_new(&q, kind, 0, by_hundreds);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 3; i++) {
        gs[i] = (getter){.q = q};
        if ((rc = cio_spawn(&ts[i], getter_fn, &gs[i])) < 0)
            return rc;
    }
    canceller k = {.ev = &ev, .target = ts[2]};
    if ((rc = cio_spawn(&killer, cancel_after_event, &k)) < 0)
        return rc;
    cio_wait_all_blocked();
    cio_queue_put(q, ITEM(a));
    cio_queue_put(q, ITEM(b));
    cio_task_cancel(ts[0]);
    cio_task_cancel(ts[1]);
    /* Runs after the first two getters, before the third. */
    cio_event_set(&ev);
    if (cio_task_join(killer) != 0)
        return -1000;
    cio_task_free(killer);
    for (int i = 0; i < 3; i++) {
        rc = cio_task_join(ts[i]);
        cio_task_free(ts[i]);
        if (rc != -ECANCELED)
            return -2000 - i;
    }
    cio_queue_put(q, ITEM(c));
    if (cio_queue_size(q) != 3)
        return -3000;
    return drain3(q, out, -4000);
}

TEST(queue_item_passed_between_cancelled_getters_keeps_its_place)
{
    int out[3];
    ASSERT_EQ(0, pass_along(CIO_QUEUE_FIFO, 1, 2, 3, out));
    ASSERT_EQ(1, out[0]);
    ASSERT_EQ(2, out[1]);
    ASSERT_EQ(3, out[2]);
    return 0;
}

TEST(queue_priority_item_passed_between_cancelled_getters_keeps_its_place)
{
    int out[3];
    ASSERT_EQ(0, pass_along(CIO_QUEUE_PRIORITY, 501, 502, 503, out));
    ASSERT_EQ(501, out[0]);
    ASSERT_EQ(502, out[1]);
    ASSERT_EQ(503, out[2]);
    ASSERT_EQ(0, pass_along(CIO_QUEUE_PRIORITY, 501, 502, 402, out));
    ASSERT_EQ(402, out[0]);
    ASSERT_EQ(501, out[1]);
    ASSERT_EQ(502, out[2]);
    return 0;
}

TEST(queue_fifo_handback_then_partial_drain_keeps_order)
{
    cio_queue *q;
    getter gs[3];
    cio_task *ts[3];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 0; i < 3; i++) {
        gs[i] = (getter){.q = q};
        ASSERT_OK(cio_spawn(&ts[i], getter_fn, &gs[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    for (int i = 1; i <= 3; i++)
        ASSERT_EQ(0, cio_queue_put(q, ITEM(i)));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(4)));
    /* Cancel the first and the last getter: 1 and 3 come back, 2 is
     * taken; the queue must read 1 3 4. */
    ASSERT_OK(cio_task_cancel(ts[0]));
    ASSERT_OK(cio_task_cancel(ts[2]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[0]));
    ASSERT_EQ(2, cio_task_join(ts[1]));
    ASSERT_EQ(-ECANCELED, cio_task_join(ts[2]));
    for (int i = 0; i < 3; i++)
        cio_task_free(ts[i]);
    ASSERT_EQ(3, cio_queue_size(q));
    ASSERT_GET(q, 1);
    /* A later put goes behind everything. */
    ASSERT_EQ(0, cio_queue_put(q, ITEM(5)));
    ASSERT_GET(q, 3);
    ASSERT_GET(q, 4);
    ASSERT_GET(q, 5);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_bounded_give_back_keeps_order_and_putters_waiting)
{
    cio_queue *q;
    getter g;
    putter p;
    cio_task *gt, *pt;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 1, NULL));
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&gt, getter_fn, &g));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1))); /* to the getter */
    ASSERT_EQ(0, cio_queue_put(q, ITEM(2))); /* stored: full */
    p = (putter){.q = q, .item = 3};
    ASSERT_OK(cio_spawn(&pt, putter_fn, &p));
    ASSERT_OK(cio_task_cancel(gt));
    ASSERT_EQ(-ECANCELED, cio_task_join(gt));
    cio_task_free(gt);
    ASSERT_OK(cio_wait_all_blocked());
    /* 1 came back although the queue was full; the putter still waits. */
    ASSERT_EQ(2, cio_queue_size(q));
    ASSERT_TRUE(!cio_task_done(pt));
    ASSERT_EQ(-EAGAIN, cio_queue_put_nowait(q, ITEM(9)));
    ASSERT_GET(q, 1);
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_TRUE(!cio_task_done(pt));
    ASSERT_GET(q, 2);
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_GET(q, 3);
    ASSERT_EQ(0, cio_task_join(pt));
    cio_task_free(pt);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

typedef struct timed_get {
    cio_queue *q;
    int64_t timeout;
    int rc;
    int exit_rc;
} timed_get;

static int timed_get_fn(void *arg)
{
    timed_get *tg = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(tg->timeout), 0);
    if (rc < 0)
        return rc;
    void *it;
    tg->rc = cio_queue_get(tg->q, &it);
    tg->exit_rc = cio_scope_exit(&sc);
    return 0;
}

TEST(queue_get_times_out_in_scope)
{
    cio_queue *q;
    timed_get tg;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    tg = (timed_get){.q = q, .timeout = 40 * CIO_MSEC};
    ASSERT_OK(cio_spawn(&t, timed_get_fn, &tg));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, tg.rc);
    ASSERT_EQ(-ETIMEDOUT, tg.exit_rc);
    ASSERT_TIME(40 * CIO_MSEC);
    /* The timed-out getter left: a put is stored, not handed over. */
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_GET(q, 1);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

static int put_later(void *arg)
{
    int rc = cio_sleep(40 * CIO_MSEC);
    if (rc < 0)
        return rc;
    return cio_queue_put(arg, ITEM(5));
}

TEST(queue_deadline_beats_put_at_same_instant)
{
    cio_queue *q;
    timed_get tg;
    cio_task *p, *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    tg = (timed_get){.q = q, .timeout = 40 * CIO_MSEC};
    ASSERT_OK(cio_spawn(&p, put_later, q));
    ASSERT_OK(cio_spawn(&t, timed_get_fn, &tg));
    ASSERT_EQ(0, cio_task_join(p));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(p);
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, tg.rc);
    ASSERT_EQ(-ETIMEDOUT, tg.exit_rc);
    /* The item is not lost. */
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_GET(q, 5);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- task_done and join ------------------------------------------------- */

TEST(queue_task_done_more_than_put_einval)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(2)));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_EQ(2, cio_queue_size(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_join_returns_at_once_when_all_done)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(0, cio_queue_join(q));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_GET(q, 1);
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_join(q));
    ASSERT_TIME(0);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_join_waits_until_every_item_is_done)
{
    enum { J = 2 };
    cio_queue *q;
    cio_task *ts[J];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 1; i <= 3; i++)
        ASSERT_EQ(0, cio_queue_put(q, ITEM(i)));
    for (int i = 0; i < J; i++)
        ASSERT_OK(cio_spawn(&ts[i], joiner_fn, q));
    ASSERT_OK(cio_wait_all_blocked());
    /* Taking items is not enough: each must be marked done. */
    for (int i = 1; i <= 3; i++)
        ASSERT_GET(q, i);
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[0]) && !cio_task_done(ts[1]));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(ts[0]) && !cio_task_done(ts[1]));
    ASSERT_EQ(0, cio_queue_task_done(q));
    for (int i = 0; i < J; i++) {
        ASSERT_EQ(0, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_join_counts_item_admitted_from_waiting_putter)
{
    cio_queue *q;
    putter p;
    cio_task *pt, *jt;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 1, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    p = (putter){.q = q, .item = 2};
    ASSERT_OK(cio_spawn(&pt, putter_fn, &p));
    ASSERT_OK(cio_spawn(&jt, joiner_fn, q));
    ASSERT_OK(cio_wait_all_blocked());
    /* Take item 1, which moves item 2 in, and finish item 1 before the
     * putter has run: item 2 is still unfinished, so a join must wait. */
    ASSERT_GET(q, 1);
    ASSERT_EQ(0, cio_queue_task_done(q));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_queue_join(q));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(jt));
    ASSERT_EQ(0, cio_task_join(pt));
    cio_task_free(pt);
    ASSERT_GET(q, 2);
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(jt));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_task_join(jt));
    cio_task_free(jt);
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_task_done_counts_item_admitted_from_waiting_putter)
{
    cio_queue *q;
    putter p;
    cio_task *pt;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 1, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    p = (putter){.q = q, .item = 2};
    ASSERT_OK(cio_spawn(&pt, putter_fn, &p));
    ASSERT_OK(cio_wait_all_blocked());
    /* Both items are taken and finished before the putter runs: two
     * items were put, so two task_done calls are due. */
    ASSERT_GET(q, 1);
    ASSERT_GET(q, 2);
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_task_join(pt));
    cio_task_free(pt);
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_join(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_join_cancelled_returns_ecanceled)
{
    cio_queue *q;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_OK(cio_spawn(&t, joiner_fn, q));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    /* No joiner is left behind. */
    ASSERT_EQ(0, cio_queue_free(q));
    return 0;
}

/* ---- shutdown ----------------------------------------------------------- */

TEST(queue_shutdown_refuses_puts)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_EQ(0, cio_queue_shutdown(q, false));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_put(q, ITEM(2)));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_put_nowait(q, ITEM(2)));
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_EQ(0, cio_queue_shutdown(q, false));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_shutdown_gets_drain_then_eshutdown)
{
    cio_queue *q;
    void *it;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 1; i <= 3; i++)
        ASSERT_EQ(0, cio_queue_put(q, ITEM(i)));
    ASSERT_EQ(0, cio_queue_shutdown(q, false));
    ASSERT_EQ(0, cio_queue_get(q, &it));
    ASSERT_EQ(1, VAL(it));
    ASSERT_GET(q, 2);
    ASSERT_EQ(0, cio_queue_get(q, &it));
    ASSERT_EQ(3, VAL(it));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_get(q, &it));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_get_nowait(q, &it));
    /* task_done and join keep working after shutdown. */
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_join(q));
    ASSERT_TIME(0);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_shutdown_wakes_blocked_getters)
{
    enum { N = 3 };
    cio_queue *q;
    getter gs[N];
    cio_task *ts[N];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 0; i < N; i++) {
        gs[i] = (getter){.q = q};
        ASSERT_OK(cio_spawn(&ts[i], getter_fn, &gs[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_queue_free(q));
    ASSERT_EQ(0, cio_queue_shutdown(q, false));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(-ESHUTDOWN, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
        ASSERT_EQ(-1, gs[i].item);
    }
    ASSERT_EQ(0, cio_queue_free(q));
    return 0;
}

TEST(queue_shutdown_wakes_blocked_putters)
{
    enum { N = 2 };
    cio_queue *q;
    putter ps[N];
    cio_task *ts[N];
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 1, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    for (int i = 0; i < N; i++) {
        ps[i] = (putter){.q = q, .item = 10 + i};
        ASSERT_OK(cio_spawn(&ts[i], putter_fn, &ps[i]));
    }
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_queue_free(q));
    ASSERT_EQ(0, cio_queue_shutdown(q, false));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(-ESHUTDOWN, cio_task_join(ts[i]));
        cio_task_free(ts[i]);
    }
    /* Their items were not added; the old one drains. */
    ASSERT_EQ(1, cio_queue_size(q));
    ASSERT_GET(q, 1);
    void *it;
    ASSERT_EQ(-ESHUTDOWN, cio_queue_get_nowait(q, &it));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_free(q));
    return 0;
}

TEST(queue_shutdown_immediate_drops_items_and_releases_join)
{
    cio_queue *q;
    cio_task *t;
    void *it;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    for (int i = 1; i <= 4; i++)
        ASSERT_EQ(0, cio_queue_put(q, ITEM(i)));
    ASSERT_GET(q, 1); /* taken, not yet done */
    ASSERT_OK(cio_spawn(&t, joiner_fn, q));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_queue_free(q));
    ASSERT_EQ(0, cio_queue_shutdown(q, true));
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_get_nowait(q, &it));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_get(q, &it));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_put(q, ITEM(5)));
    /* The three dropped items count as done; the taken one does not. */
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_shutdown_immediate_releases_join_at_once_when_nothing_taken)
{
    cio_queue *q;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_LIFO, 0, NULL));
    for (int i = 1; i <= 3; i++)
        ASSERT_EQ(0, cio_queue_put(q, ITEM(i)));
    ASSERT_OK(cio_spawn(&t, joiner_fn, q));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_queue_shutdown(q, true));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_queue_join(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_shutdown_immediate_wakes_getters_and_putters)
{
    cio_queue *q;
    getter g;
    putter p;
    cio_task *gt, *pt;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_PRIORITY, 1, by_hundreds));
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&gt, getter_fn, &g));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_queue_free(q));
    ASSERT_EQ(0, cio_queue_shutdown(q, true));
    ASSERT_EQ(-ESHUTDOWN, cio_task_join(gt));
    cio_task_free(gt);

    cio_queue *q2;
    ASSERT_OK(cio_queue_new(&q2, CIO_QUEUE_PRIORITY, 1, by_hundreds));
    ASSERT_EQ(0, cio_queue_put(q2, ITEM(100)));
    p = (putter){.q = q2, .item = 200};
    ASSERT_OK(cio_spawn(&pt, putter_fn, &p));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_queue_free(q2));
    ASSERT_EQ(0, cio_queue_shutdown(q2, true));
    ASSERT_EQ(-ESHUTDOWN, cio_task_join(pt));
    cio_task_free(pt);
    ASSERT_EQ(0, cio_queue_size(q2));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q2));
    ASSERT_OK(cio_queue_free(q));
    ASSERT_OK(cio_queue_free(q2));
    return 0;
}

TEST(queue_item_handed_to_getter_before_shutdown_is_delivered)
{
    cio_queue *q;
    getter g;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&t, getter_fn, &g));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_queue_put(q, ITEM(3)));
    ASSERT_EQ(0, cio_queue_shutdown(q, false));
    ASSERT_EQ(3, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_item_of_cancelled_getter_drains_after_shutdown)
{
    cio_queue *q;
    getter g;
    cio_task *t;
    void *it;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&t, getter_fn, &g));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(0, cio_queue_put(q, ITEM(3)));
    ASSERT_EQ(0, cio_queue_shutdown(q, false));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    /* Not lost: a plain shutdown still lets gets drain it. */
    ASSERT_GET(q, 3);
    ASSERT_EQ(-ESHUTDOWN, cio_queue_get_nowait(q, &it));
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_item_of_cancelled_getter_dropped_after_immediate_shutdown)
{
    cio_queue *q;
    getter g;
    cio_task *t, *jt;
    void *it;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&t, getter_fn, &g));
    ASSERT_OK(cio_wait_all_blocked());
    /* The item is in flight to the getter when the queue is shut down at
     * once and the getter cancelled. It must not reappear in the queue;
     * it is dropped like the items that were stored, and counted done,
     * which releases the joiner. */
    ASSERT_EQ(0, cio_queue_put(q, ITEM(3)));
    ASSERT_OK(cio_spawn(&jt, joiner_fn, q));
    ASSERT_EQ(0, cio_queue_shutdown(q, true));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, cio_queue_size(q));
    ASSERT_EQ(-ESHUTDOWN, cio_queue_get_nowait(q, &it));
    ASSERT_EQ(0, cio_task_join(jt));
    cio_task_free(jt);
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- free --------------------------------------------------------------- */

TEST(queue_free_with_waiters_ebusy)
{
    cio_queue *q;
    getter g;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&t, getter_fn, &g));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_queue_free(q));
    /* The refused free changed nothing. */
    ASSERT_EQ(0, cio_queue_put(q, ITEM(4)));
    ASSERT_EQ(4, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, cio_queue_free(q));
    return 0;
}

TEST(queue_free_with_joiner_ebusy)
{
    cio_queue *q;
    cio_task *t;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(1)));
    ASSERT_OK(cio_spawn(&t, joiner_fn, q));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_queue_free(q));
    ASSERT_GET(q, 1);
    ASSERT_EQ(0, cio_queue_task_done(q));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(0, cio_queue_free(q));
    return 0;
}

TEST(queue_free_with_items_left_is_allowed)
{
    cio_queue *q;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_PRIORITY, 0, by_hundreds));
    for (int i = 0; i < 40; i++)
        ASSERT_EQ(0, cio_queue_put(q, ITEM(i * 37 % 1000)));
    ASSERT_EQ(0, cio_queue_free(q));
    return 0;
}

/* ---- allocation failure ------------------------------------------------- */

/* From the counting allocator (src/core/alloc.c): make the nth allocation
 * from now fail. */
void cio__alloc_fail_at(long nth);

TEST(queue_new_out_of_memory_enomem)
{
    cio_queue *q = NULL;
    cio__alloc_fail_at(1);
    ASSERT_EQ(-ENOMEM, cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    cio__alloc_fail_at(0);
    ASSERT_TRUE(q == NULL);
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_put_that_cannot_grow_adds_nothing)
{
    cio_queue *q;
    int n = 0;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    /* Fill until a put needs to grow the storage, and make that fail. */
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(n++)));
    for (;;) {
        cio__alloc_fail_at(1);
        int rc = cio_queue_put_nowait(q, ITEM(n));
        cio__alloc_fail_at(0);
        if (rc == -ENOMEM)
            break;
        ASSERT_EQ(0, rc);
        ASSERT_TRUE(++n < 100000);
    }
    ASSERT_EQ(n, cio_queue_size(q));
    ASSERT_EQ(0, cio_queue_put(q, ITEM(n++)));
    for (int i = 0; i < n; i++) {
        ASSERT_GET(q, i);
        ASSERT_EQ(0, cio_queue_task_done(q));
    }
    ASSERT_EQ(-EINVAL, cio_queue_task_done(q));
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

TEST(queue_cancelled_getter_keeps_item_it_cannot_give_back)
{
    cio_queue *q;
    getter g;
    cio_task *t;
    int n = 0;
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    /* Find the storage size: fill until the next put would grow it. */
    ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(1000 + n++)));
    for (;;) {
        cio__alloc_fail_at(1);
        int rc = cio_queue_put_nowait(q, ITEM(1000 + n));
        cio__alloc_fail_at(0);
        if (rc == -ENOMEM)
            break;
        ASSERT_TRUE(++n < 100000);
    }
    for (int i = 0; i < n; i++)
        ASSERT_GET(q, 1000 + i);
    g = (getter){.q = q};
    ASSERT_OK(cio_spawn(&t, getter_fn, &g));
    ASSERT_OK(cio_wait_all_blocked());
    /* Hand 7 over, fill the storage, and cancel the getter with no room
     * to give 7 back: rather than lose it, the get completes. */
    ASSERT_EQ(0, cio_queue_put(q, ITEM(7)));
    for (int i = 0; i < n; i++)
        ASSERT_EQ(0, cio_queue_put_nowait(q, ITEM(i)));
    ASSERT_OK(cio_task_cancel(t));
    cio__alloc_fail_at(1);
    int rc = cio_task_join(t);
    cio__alloc_fail_at(0);
    cio_task_free(t);
    ASSERT_EQ(7, rc);
    ASSERT_EQ(n, cio_queue_size(q));
    for (int i = 0; i < n; i++)
        ASSERT_GET(q, i);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}

/* ---- producers and consumers -------------------------------------------- */

enum { PRODUCERS = 3, CONSUMERS = 4, PER_PRODUCER = 200 };

typedef struct pipeline {
    cio_queue *q;
    int seen[PRODUCERS * PER_PRODUCER];
    int got[CONSUMERS];
    int done_calls;
} pipeline;

typedef struct pipe_arg {
    pipeline *p;
    int id;
} pipe_arg;

static int produce(void *arg)
{
    pipe_arg *a = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        int rc = cio_queue_put(a->p->q, ITEM(a->id * PER_PRODUCER + i));
        if (rc < 0)
            return rc;
        if (i % 5 == a->id && (rc = cio_yield()) < 0)
            return rc;
    }
    return 0;
}

static int consume(void *arg)
{
    pipe_arg *a = arg;
    pipeline *p = a->p;
    for (;;) {
        void *it;
        int rc = cio_queue_get(p->q, &it);
        if (rc == -ESHUTDOWN)
            return 0;
        if (rc < 0)
            return rc;
        p->seen[VAL(it)]++;
        p->got[a->id]++;
        /* Work takes a little (virtual) time; cancellation during it
         * still marks the item processed before leaving. */
        rc = cio_sleep((VAL(it) % 3 + 1) * CIO_MSEC);
        if (cio_queue_task_done(p->q) == 0)
            p->done_calls++;
        if (rc < 0)
            return rc;
    }
}

TEST(queue_pipeline_accounts_for_every_item)
{
    static pipeline p;
    memset(&p, 0, sizeof p);
    pipe_arg pa[PRODUCERS], ca[CONSUMERS];
    cio_task *pt[PRODUCERS], *ct[CONSUMERS];
    ASSERT_OK(cio_queue_new(&p.q, CIO_QUEUE_FIFO, 4, NULL));
    for (int i = 0; i < CONSUMERS; i++) {
        ca[i] = (pipe_arg){.p = &p, .id = i};
        ASSERT_OK(cio_spawn(&ct[i], consume, &ca[i]));
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (pipe_arg){.p = &p, .id = i};
        ASSERT_OK(cio_spawn(&pt[i], produce, &pa[i]));
    }
    /* Part way through, one consumer is cancelled. */
    ASSERT_OK(cio_sleep(50 * CIO_MSEC));
    ASSERT_OK(cio_task_cancel(ct[0]));
    for (int i = 0; i < PRODUCERS; i++) {
        ASSERT_EQ(0, cio_task_join(pt[i]));
        cio_task_free(pt[i]);
    }
    ASSERT_EQ(0, cio_queue_join(p.q));
    ASSERT_EQ(0, cio_queue_size(p.q));
    ASSERT_EQ(0, cio_queue_shutdown(p.q, false));
    ASSERT_EQ(-ECANCELED, cio_task_join(ct[0]));
    for (int i = 1; i < CONSUMERS; i++)
        ASSERT_EQ(0, cio_task_join(ct[i]));
    for (int i = 0; i < CONSUMERS; i++)
        cio_task_free(ct[i]);
    int total = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        ASSERT_TRUE(p.got[i] > 0);
        total += p.got[i];
    }
    ASSERT_EQ(PRODUCERS * PER_PRODUCER, total);
    ASSERT_EQ(total, p.done_calls);
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        ASSERT_EQ(1, p.seen[i]);
    ASSERT_EQ(-EINVAL, cio_queue_task_done(p.q));
    ASSERT_OK(cio_queue_free(p.q));
    return 0;
}

/* Consumers that are cancelled and replaced while items keep flowing;
 * cancellation hits them while they wait in get, so some are handed an
 * item and cancelled before they run. */
TEST(queue_getters_cancelled_in_flight_lose_no_item)
{
    enum { ROUNDS = 50, G = 4 };
    cio_queue *q;
    static trace tr;
    memset(&tr, 0, sizeof tr);
    ASSERT_OK(cio_queue_new(&q, CIO_QUEUE_FIFO, 0, NULL));
    int next = 0, cancelled = 0;
    for (int r = 0; r < ROUNDS; r++) {
        getter gs[G];
        cio_task *ts[G];
        /* Take what earlier rounds left, so that every getter waits. */
        while (cio_queue_size(q) > 0) {
            void *it;
            ASSERT_EQ(0, cio_queue_get_nowait(q, &it));
            trace_add(&tr, VAL(it));
        }
        for (int i = 0; i < G; i++) {
            gs[i] = (getter){.q = q, .tr = &tr};
            ASSERT_OK(cio_spawn(&ts[i], getter_fn, &gs[i]));
        }
        ASSERT_OK(cio_wait_all_blocked());
        /* Hand items to the first r % (G + 1) getters, then cancel every
         * other getter: handed or still waiting. */
        int handed = r % (G + 1);
        for (int i = 0; i < handed; i++)
            ASSERT_EQ(0, cio_queue_put(q, ITEM(next++)));
        for (int i = r % 2; i < G; i += 2)
            ASSERT_OK(cio_task_cancel(ts[i]));
        ASSERT_OK(cio_wait_all_blocked());
        /* Feed the survivors still waiting. */
        while (cio_queue_size(q) == 0) {
            bool waiting = false;
            for (int i = 0; i < G; i++)
                waiting |= !cio_task_done(ts[i]);
            if (!waiting)
                break;
            ASSERT_EQ(0, cio_queue_put(q, ITEM(next++)));
            ASSERT_OK(cio_wait_all_blocked());
        }
        for (int i = 0; i < G; i++) {
            int rc = cio_task_join(ts[i]);
            cio_task_free(ts[i]);
            if (rc == -ECANCELED)
                cancelled++;
            else
                ASSERT_EQ(gs[i].item, rc);
        }
    }
    /* Whatever was not taken is still queued, in order. */
    int left = (int)cio_queue_size(q);
    for (int i = 0; i < left; i++) {
        void *it;
        ASSERT_EQ(0, cio_queue_get_nowait(q, &it));
        trace_add(&tr, VAL(it));
    }
    ASSERT_EQ(next, tr.n);
    static int count[TRACE_MAX];
    memset(count, 0, sizeof count);
    for (int i = 0; i < tr.n; i++) {
        ASSERT_TRUE(tr.v[i] >= 0 && tr.v[i] < next);
        count[tr.v[i]]++;
    }
    for (int i = 0; i < next; i++)
        ASSERT_EQ(1, count[i]);
    ASSERT_EQ(ROUNDS * G / 2, cancelled);
    ASSERT_OK(cio_queue_free(q));
    return 0;
}
