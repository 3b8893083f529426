/* Queues: FIFO (ring), LIFO (stack), PRIORITY (binary heap, FIFO among
 * equals through a sequence number). An item put while a getter waits goes
 * straight to that getter.
 *
 * Every item gets a sequence number when it enters the queue, and keeps it
 * while it is handed from getter to getter. A getter cancelled after it
 * was handed an item gives it back to the front (rule 11 in DESIGN.md):
 * the top of a LIFO, the head of a FIFO, first among its equals in a
 * PRIORITY queue. Items are only handed over while nothing is stored, so a
 * given-back item is older than every stored item that was not given back;
 * in a FIFO the given-back items sit at the head in order of entry, so the
 * queue keeps the order in which items were put. A given-back item is
 * never refused, even when that takes a bounded queue over its maxsize
 * until gets bring it down. */
#include "core/switch.h"
#include "internal.h"

typedef struct slot {
    void *item;
    int64_t seq; /* order of entry */
} slot;

/* A waiting getter, and the sequence number of the item it is handed. */
typedef struct getter_wait {
    cio__waiter w;
    int64_t seq;
} getter_wait;

struct cio_queue {
    int kind;
    size_t maxsize; /* 0: unbounded */
    cio_queue_cmp cmp;
    slot *buf;
    size_t cap, head, n;
    size_t returned; /* FIFO: given-back items at the front */
    int64_t seq;     /* next sequence number */
    size_t unfinished;
    bool shutdown;
    bool dropping; /* shut down with `immediate`: items are dropped */
    cio__waitq getters, putters, joiners;
};

int cio_queue_new(cio_queue **out, int kind, size_t maxsize,
                  cio_queue_cmp cmp)
{
    if (out == NULL || kind < CIO_QUEUE_FIFO || kind > CIO_QUEUE_PRIORITY ||
        (kind == CIO_QUEUE_PRIORITY && cmp == NULL))
        return -EINVAL;
    cio_queue *q = cio__calloc(1, sizeof *q);
    if (q == NULL)
        return -ENOMEM;
    q->kind = kind;
    q->maxsize = maxsize;
    q->cmp = cmp;
    *out = q;
    return 0;
}

static int grow(cio_queue *q)
{
    size_t cap = q->cap ? q->cap * 2 : 16;
    slot *buf = cio__malloc(cap * sizeof *buf);
    if (buf == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        buf[i] = q->buf[(q->head + i) % (q->cap ? q->cap : 1)];
    cio__free(q->buf);
    q->buf = buf;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static bool prio_before(const cio_queue *q, const slot *a, const slot *b)
{
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

static void heap_up(cio_queue *q, size_t i)
{
    slot s = q->buf[i];
    while (i > 0 && prio_before(q, &s, &q->buf[(i - 1) / 2])) {
        q->buf[i] = q->buf[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->buf[i] = s;
}

static void heap_down(cio_queue *q, size_t i)
{
    slot s = q->buf[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && prio_before(q, &q->buf[c + 1], &q->buf[c]))
            c++;
        if (!prio_before(q, &q->buf[c], &s))
            break;
        q->buf[i] = q->buf[c];
        i = c;
    }
    q->buf[i] = s;
}

/* FIFO: put a given-back item among the given-back items at the front,
 * in order of entry. */
static void fifo_give_back(cio_queue *q, slot s)
{
    size_t pos = 0;
    while (pos < q->returned &&
           q->buf[(q->head + pos) % q->cap].seq < s.seq)
        pos++;
    q->head = (q->head + q->cap - 1) % q->cap;
    for (size_t i = 0; i < pos; i++)
        q->buf[(q->head + i) % q->cap] = q->buf[(q->head + i + 1) % q->cap];
    q->buf[(q->head + pos) % q->cap] = s;
    q->returned++;
}

/* Store an item that entered as number `seq`. `back` marks an item given
 * back by a cancelled getter: it goes where the next get finds it first
 * (for PRIORITY, first among its equals). */
static int store(cio_queue *q, void *item, int64_t seq, bool back)
{
    if (q->n == q->cap && grow(q) < 0)
        return -ENOMEM;
    slot s = {item, seq};
    switch (q->kind) {
    case CIO_QUEUE_FIFO:
        if (back)
            fifo_give_back(q, s);
        else
            q->buf[(q->head + q->n) % q->cap] = s;
        q->n++;
        break;
    case CIO_QUEUE_LIFO:
        q->buf[q->n++] = s;
        break;
    default:
        q->buf[q->n] = s;
        heap_up(q, q->n++);
        break;
    }
    return 0;
}

static void *take(cio_queue *q)
{
    void *item;
    switch (q->kind) {
    case CIO_QUEUE_FIFO:
        item = q->buf[q->head].item;
        q->head = (q->head + 1) % q->cap;
        q->n--;
        if (q->returned > 0)
            q->returned--;
        break;
    case CIO_QUEUE_LIFO:
        item = q->buf[--q->n].item;
        break;
    default:
        item = q->buf[0].item;
        if (--q->n > 0) {
            q->buf[0] = q->buf[q->n];
            heap_down(q, 0);
        }
        break;
    }
    return item;
}

static bool full(const cio_queue *q)
{
    return q->maxsize && q->n >= q->maxsize;
}

/* An item leaves storage: let the first waiting putter in. Its item
 * counts as unfinished from now on, not from when the putter runs: a
 * getter may take it and call task_done before that. */
static void admit_putter(cio_queue *q)
{
    if (full(q) || q->putters.head == NULL)
        return;
    cio__waiter *w = q->putters.head;
    if (store(q, w->value, q->seq, false) < 0)
        return;
    q->seq++;
    q->unfinished++;
    cio__waitq_grant(&q->putters, w->value);
}

static void wake_joiners_if_done(cio_queue *q)
{
    if (q->unfinished == 0)
        while (cio__waitq_grant(&q->joiners, NULL))
            ;
}

/* Give `item` (number `seq`) to the first getter, or store it (see
 * store for `back`). Inline: it is most of a put. */
static inline __attribute__((always_inline)) int
deliver(cio_queue *q, void *item, int64_t seq, bool back)
{
    cio__waiter *w = cio__waitq_pop(&q->getters);
    if (w == NULL)
        return store(q, item, seq, back);
    CIO__CONTAINER(w, getter_wait, w)->seq = seq;
    w->value = item;
    w->granted = 1;
    cio__wake(w->task, 0);
    return 0;
}

static inline __attribute__((always_inline)) int try_put(cio_queue *q,
                                                        void *item)
{
    if (q->shutdown)
        return -ESHUTDOWN;
    if (q->getters.head == NULL && (full(q) || q->putters.head))
        return -EAGAIN;
    int rc = deliver(q, item, q->seq, false);
    if (rc == 0) {
        q->seq++;
        q->unfinished++;
    }
    return rc;
}

int cio_queue_put_nowait(cio_queue *q, void *item)
{
    if (q == NULL)
        return -EINVAL;
    return try_put(q, item);
}

/* Wait for room. On success a getter has moved our item in (see
 * admit_putter). Out of line: a put that does not wait needs no frame. */
static __attribute__((noinline)) int put_wait(cio_task *t, cio_queue *q,
                                              void *item)
{
    cio__waiter w = {.value = item};
    return cio__park_q(t, &q->putters, &w, CIO__W_QUEUE_PUT, q, CIO_NEVER,
                       0);
}

int cio_queue_put(cio_queue *q, void *item)
{
    CIO__SELF_OR_RETURN(t);
    if (q == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    rc = try_put(q, item);
    if (rc != -EAGAIN)
        return rc;
    return put_wait(t, q, item);
}

static int try_get(cio_queue *q, void **item)
{
    if (q->n > 0) {
        *item = take(q);
        admit_putter(q);
        return 0;
    }
    return q->shutdown ? -ESHUTDOWN : -EAGAIN;
}

int cio_queue_get_nowait(cio_queue *q, void **item)
{
    if (q == NULL || item == NULL)
        return -EINVAL;
    return try_get(q, item);
}

int cio_queue_get(cio_queue *q, void **item)
{
    CIO__SELF_OR_RETURN(t);
    if (q == NULL || item == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    rc = try_get(q, item);
    if (rc != -EAGAIN)
        return rc;
    getter_wait gw;
    gw.w.value = NULL;
    gw.seq = 0;
    /* The hottest wait there is: parked inline (core/switch.h). */
    rc = cio__park_q_inline(t, &q->getters, &gw.w, CIO__W_QUEUE_GET, q,
                            CIO_NEVER, 0);
    if (rc < 0)
        return rc;
    if (cio__cancelled(t)) {
        /* Handed an item, then cancelled before running: it goes on to
         * the next getter or back to the front, unless the queue was shut
         * down at once meanwhile, which drops it like the stored items. */
        if (q->dropping) {
            if (q->unfinished > 0)
                q->unfinished--;
            wake_joiners_if_done(q);
            return -ECANCELED;
        }
        if (deliver(q, gw.w.value, gw.seq, true) == 0)
            return -ECANCELED;
        /* No room to put it back: rather than lose it, complete the get;
         * the cancellation surfaces at the next suspension point. */
    }
    *item = gw.w.value;
    return 0;
}

size_t cio_queue_size(const cio_queue *q)
{
    return q ? q->n : 0;
}

int cio_queue_task_done(cio_queue *q)
{
    if (q == NULL || q->unfinished == 0)
        return -EINVAL;
    q->unfinished--;
    wake_joiners_if_done(q);
    return 0;
}

int cio_queue_join(cio_queue *q)
{
    CIO__SELF_OR_RETURN(t);
    if (q == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    while (rc == 0 && q->unfinished > 0) {
        cio__waiter w = {0};
        rc = cio__park_q(t, &q->joiners, &w, CIO__W_QUEUE_JOIN, q, CIO_NEVER,
                         0);
    }
    return rc;
}

static void wake_all(cio__waitq *wq, int result)
{
    cio__waiter *w;
    while ((w = cio__waitq_pop(wq)))
        cio__wake(w->task, result);
}

int cio_queue_shutdown(cio_queue *q, bool immediate)
{
    if (q == NULL)
        return -EINVAL;
    q->shutdown = true;
    if (immediate) {
        q->dropping = true;
        q->unfinished = q->unfinished > q->n ? q->unfinished - q->n : 0;
        q->n = 0;
        q->head = 0;
        q->returned = 0;
        wake_joiners_if_done(q);
    }
    wake_all(&q->putters, -ESHUTDOWN);
    wake_all(&q->getters, -ESHUTDOWN);
    return 0;
}

int cio_queue_free(cio_queue *q)
{
    if (q == NULL)
        return 0;
    if (q->getters.head || q->putters.head || q->joiners.head)
        return -EBUSY;
    cio__free(q->buf);
    cio__free(q);
    return 0;
}
