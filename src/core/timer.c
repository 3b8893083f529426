/* Timers: a binary min-heap of intrusive nodes ordered by (when, seq), so
 * timers due at the same instant fire in the order they were armed (the
 * virtual clock relies on this for reproducible runs).
 *
 * Why a heap and not a wheel: arming and cancelling are O(log n) with no
 * tuning of slot width or range, expiry is exact to the nanosecond, and at
 * 1e5-1e6 pending timers the heap stays in the tens of nanoseconds per
 * operation (bench/bench_timers: see docs/benchmarks.md). A wheel wins only
 * when timers are almost always cancelled before expiry at huge counts. */
#include "internal.h"

static inline bool before(const cio__timer *a, const cio__timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(cio__heap *h, size_t i, cio__timer *t)
{
    h->v[i] = t;
    t->idx = i + 1;
}

static void sift_up(cio__heap *h, size_t i)
{
    cio__timer *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(cio__heap *h, size_t i)
{
    cio__timer *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
            c++;
        if (!before(h->v[c], t))
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, t);
}

int cio__heap_push(cio__heap *h, cio__timer *t)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cio__timer **v = cio__realloc(h->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->seq = h->seq++;
    h->v[h->n] = t;
    sift_up(h, h->n++);
    return 0;
}

void cio__heap_remove(cio__heap *h, cio__timer *t)
{
    if (t->idx == 0)
        return;
    size_t i = t->idx - 1;
    t->idx = 0;
    cio__timer *last = h->v[--h->n];
    if (i == h->n)
        return;
    h->v[i] = last;
    if (i > 0 && before(last, h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

void cio__heap_fini(cio__heap *h)
{
    cio__free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
