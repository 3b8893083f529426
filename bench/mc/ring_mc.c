/* ring_mc.c: the two ring designs considered for cio_chan, raw, between
 * two threads (no loops, no wakeups: both sides spin).
 *
 * - mpsc: the ring cio_chan uses (src/conc/xloop.c): a bounded array
 *   queue with a sequence number per slot; producers claim positions with
 *   a CAS on `tail`, so any number of threads may send into one ring.
 * - spsc: one producer, one consumer: head and tail each written by one
 *   side, each side caching the other's index (a ring per sender loop).
 * Each runs also with `+wake`: the publishing store made sequentially
 * consistent and followed by a sequentially consistent load of the
 * receiver's flag, as a cio sender does so that a parked receiver is
 * never missed (the wakeup protocol costs alike in every design).
 * Prints `ring.NAME msgs/s` lines, 8-byte messages through 1024 slots.
 *
 * Usage: ring_mc [N] (default 20000000). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAP 1024u
#define LINE 64

typedef struct slot {
    _Atomic uint64_t seq;
    uint64_t v;
} slot;

typedef struct ring {
    _Alignas(LINE) _Atomic uint64_t tail;
    _Atomic uint64_t hcache; /* mpsc-head: producers' copy of head */
    _Alignas(LINE) _Atomic uint64_t head;
    _Alignas(LINE) uint64_t head_cache; /* producer's copy (spsc) */
    _Alignas(LINE) uint64_t tail_cache; /* consumer's copy (spsc) */
    _Alignas(LINE) _Atomic int armed;   /* the receiver's flag */
    _Alignas(LINE) slot s[CAP];
    uint64_t vals[CAP];
} ring;

typedef struct run {
    ring *r;
    long n;
    int kind; /* 0 mpsc, 1 spsc, 2 mpsc-head */
    bool fence;
    uint64_t sum;
} run;

static inline void mpsc_put(ring *r, uint64_t v, memory_order pub)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        slot *s = &r->s[pos & (CAP - 1)];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - 2 * pos);
        if (dif == 0 && atomic_compare_exchange_weak_explicit(
                            &r->tail, &pos, pos + 1, memory_order_relaxed,
                            memory_order_relaxed)) {
            s->v = v;
            atomic_store_explicit(&s->seq, 2 * pos + 1, pub);
            return;
        }
        if (dif < 0)
            sched_yield(); /* full */
        pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    }
}

static uint64_t mpsc_get(ring *r)
{
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    slot *s = &r->s[pos & (CAP - 1)];
    while (atomic_load_explicit(&s->seq, memory_order_acquire) != 2 * pos + 1)
        sched_yield(); /* empty */
    uint64_t v = s->v;
    atomic_store_explicit(&s->seq, 2 * (pos + CAP), memory_order_release);
    atomic_store_explicit(&r->head, pos + 1, memory_order_relaxed);
    return v;
}

/* Many producers, the consumer never writes a slot: a slot's number says
 * which position was written in it last; producers check for room
 * against `head` (cached beside `tail`, reloaded only when the ring looks
 * full). */
static inline void mpsc_head_put(ring *r, uint64_t v, memory_order pub)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        uint64_t h = atomic_load_explicit(&r->hcache, memory_order_relaxed);
        if (pos - h >= CAP) {
            h = atomic_load_explicit(&r->head, memory_order_acquire);
            atomic_store_explicit(&r->hcache, h, memory_order_relaxed);
            if (pos - h >= CAP) {
                sched_yield(); /* full */
                pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
                continue;
            }
        }
        if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            slot *s = &r->s[pos & (CAP - 1)];
            s->v = v;
            atomic_store_explicit(&s->seq, pos + 1, pub);
            return;
        }
    }
}

static uint64_t mpsc_head_get(ring *r)
{
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    slot *s = &r->s[pos & (CAP - 1)];
    while (atomic_load_explicit(&s->seq, memory_order_acquire) != pos + 1)
        sched_yield(); /* empty */
    uint64_t v = s->v;
    atomic_store_explicit(&r->head, pos + 1, memory_order_release);
    return v;
}

static inline void spsc_put(ring *r, uint64_t v, memory_order pub)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    while (t - r->head_cache == CAP) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t - r->head_cache == CAP)
            sched_yield(); /* full */
    }
    r->vals[t & (CAP - 1)] = v;
    atomic_store_explicit(&r->tail, t + 1, pub);
}

static uint64_t spsc_get(ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (h == r->tail_cache) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h == r->tail_cache)
            sched_yield(); /* empty */
    }
    uint64_t v = r->vals[h & (CAP - 1)];
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return v;
}

/* Send n values; `pub` is a constant once inlined (a memory order known
 * only at run time is taken as seq_cst). */
static inline void produce(run *x, memory_order pub, bool wake)
{
    for (long i = 0; i < x->n; i++) {
        if (x->kind == 1)
            spsc_put(x->r, (uint64_t)i, pub);
        else if (x->kind == 2)
            mpsc_head_put(x->r, (uint64_t)i, pub);
        else
            mpsc_put(x->r, (uint64_t)i, pub);
        if (wake && atomic_load(&x->r->armed))
            abort(); /* never armed here: the load is the cost */
    }
}

static void *producer(void *arg)
{
    run *x = arg;
    if (x->fence)
        produce(x, memory_order_seq_cst, true);
    else
        produce(x, memory_order_release, false);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int measure(const char *name, long n, int kind, bool fence)
{
    ring *r = aligned_alloc(LINE, sizeof *r);
    if (r == NULL)
        return -1;
    memset(r, 0, sizeof *r);
    for (unsigned i = 0; i < CAP; i++)
        atomic_init(&r->s[i].seq, 2 * (uint64_t)i);
    if (kind == 2)
        for (unsigned i = 0; i < CAP; i++)
            atomic_init(&r->s[i].seq, 0);
    run x = {.r = r, .n = n, .kind = kind, .fence = fence};
    pthread_t tid;
    double t0 = now_s();
    if (pthread_create(&tid, NULL, producer, &x) != 0) {
        free(r);
        return -1;
    }
    uint64_t sum = 0;
    for (long i = 0; i < n; i++)
        sum += kind == 1   ? spsc_get(r)
               : kind == 2 ? mpsc_head_get(r)
                           : mpsc_get(r);
    pthread_join(tid, NULL);
    double dt = now_s() - t0;
    free(r);
    if (sum != (uint64_t)n * (uint64_t)(n - 1) / 2) {
        fprintf(stderr, "ring_mc: %s: wrong sum\n", name);
        return -1;
    }
    printf("ring.%s %.0f msgs/s\n", name, (double)n / dt);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    if (n < 1) {
        fprintf(stderr, "usage: ring_mc [N >= 1]\n");
        return 2;
    }
    if (measure("mpsc", n, 0, false) < 0 ||
        measure("mpsc_head", n, 2, false) < 0 ||
        measure("spsc", n, 1, false) < 0 ||
        measure("mpsc+wake", n, 0, true) < 0 ||
        measure("mpsc_head+wake", n, 2, true) < 0 ||
        measure("spsc+wake", n, 1, true) < 0)
        return 1;
    return 0;
}
