/* Timers: a 4-ary min-heap ordered by (when, seq), so timers due at the
 * same instant fire in the order they were armed (the virtual clock relies
 * on this for reproducible runs).
 *
 * Why a heap and not a wheel: arming and cancelling are O(log n) with no
 * tuning of slot width or range, expiry is exact to the nanosecond, and at
 * 1e5-1e6 pending timers a removal costs ~0.5 us with the keys stored in
 * the heap array (1.0-1.3 us when every comparison read a cold task
 * struct), measured with bench/bench_timers and the sleepers bench. A
 * wheel wins only when timers are almost always cancelled before expiry
 * at huge counts. */
#include "internal.h"

/* Four children per node: half the depth of a binary heap, and the
 * children of a node share a cache line or two. */
#define ARITY 4

static inline bool before(const cio__heap_ent *a, const cio__heap_ent *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(cio__heap *h, size_t i, cio__heap_ent e)
{
    h->v[i] = e;
    e.t->idx = i + 1;
}

static void sift_up(cio__heap *h, size_t i)
{
    cio__heap_ent e = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / ARITY;
        if (!before(&e, &h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(cio__heap *h, size_t i)
{
    cio__heap_ent e = h->v[i];
    for (;;) {
        size_t c = ARITY * i + 1;
        if (c >= h->n)
            break;
        size_t end = c + ARITY < h->n ? c + ARITY : h->n;
        for (size_t k = c + 1; k < end; k++)
            if (before(&h->v[k], &h->v[c]))
                c = k;
        if (!before(&h->v[c], &e))
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, e);
}

int cio__heap_push(cio__heap *h, cio__timer *t)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cio__heap_ent *v = cio__realloc(h->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->seq = h->seq++;
    h->v[h->n] = (cio__heap_ent){t->when, t->seq, t};
    sift_up(h, h->n++);
    return 0;
}

void cio__heap_remove(cio__heap *h, cio__timer *t)
{
    if (t->idx == 0)
        return;
    size_t i = t->idx - 1;
    t->idx = 0;
    cio__heap_ent last = h->v[--h->n];
    if (i == h->n)
        return;
    h->v[i] = last;
    if (i > 0 && before(&last, &h->v[(i - 1) / ARITY]))
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
