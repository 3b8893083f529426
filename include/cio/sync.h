/* cio/sync.h: mutex, event, condition, semaphores, barrier, queues.
 *
 * All wake their waiters in strict FIFO order with no overtaking: a task
 * that releases and at once re-acquires goes behind the waiters. A task
 * cancelled while waiting never loses or double-takes a lock, permit,
 * notification or item: what was handed to it passes to the next waiter.
 * The small types live in caller storage and have static initialisers;
 * their fields are private. A loop-bound object must not be used from
 * another thread or after its loop has ended.
 */
#ifndef CIO_SYNC_H
#define CIO_SYNC_H

#include <stdbool.h>
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Private: a FIFO of waiting tasks. */
typedef struct cio__waitq {
    struct cio__waiter *head, *tail;
} cio__waitq;

/* ---- Mutex (asyncio.Lock) ------------------------------------------------ */

/* A mutex knows its owner. Unlocking by a non-owner or unlocking an unheld
 * mutex is -EPERM; locking a mutex the caller holds is -EDEADLK. A task
 * that exits holding it breaks it: the next task to get it (a waiter or a
 * later caller) receives -EOWNERDEAD *and holds it*, like a robust pthread
 * mutex, so it can repair the state the dead owner left. */
typedef struct cio_mutex {
    cio_task *cio__owner;
    cio__waitq cio__waiters;
    struct cio_mutex *cio__next_held, *cio__prev_held;
    unsigned cio__flags;
} cio_mutex;
#define CIO_MUTEX_INIT {0}

/* Initialise `m` as unlocked with no owner, the same state as
 * CIO_MUTEX_INIT. Only for a mutex no task holds or waits on. NULL is
 * ignored. Does not suspend. */
void cio_mutex_init(cio_mutex *m);
/* Acquire. 0, -EOWNERDEAD (acquired; previous owner died holding it),
 * -EDEADLK, -ECANCELED (not acquired), -EINVAL, CIO_ENOTASK. Suspends. */
int cio_mutex_lock(cio_mutex *m);
/* Acquire without waiting: 0, -EBUSY if held or waited for, -EOWNERDEAD
 * (acquired), -EDEADLK, -EINVAL, CIO_ENOTASK. A cancellation point. */
int cio_mutex_trylock(cio_mutex *m);
/* Release; the first waiter (if any) becomes the owner. 0, -EPERM,
 * -EINVAL. Does not suspend. */
int cio_mutex_unlock(cio_mutex *m);
bool cio_mutex_locked(const cio_mutex *m);

/* ---- Event (asyncio.Event) ----------------------------------------------- */

typedef struct cio_event {
    cio__waitq cio__waiters;
    int cio__set;
} cio_event;
#define CIO_EVENT_INIT {0}

/* Initialise `e` with the flag clear and no waiters, the same state as
 * CIO_EVENT_INIT. Only for an event no task waits on. NULL is ignored.
 * Does not suspend. */
void cio_event_init(cio_event *e);
/* Set the flag and wake every waiter. 0, -EINVAL. Does not suspend. */
int cio_event_set(cio_event *e);
/* Clear the flag. 0, -EINVAL. */
int cio_event_clear(cio_event *e);
bool cio_event_is_set(const cio_event *e);
/* Wait until the flag is set (returns at once, after a checkpoint, if it
 * is). 0, -ECANCELED, -EINVAL, CIO_ENOTASK. Suspends. */
int cio_event_wait(cio_event *e);

/* ---- Condition (asyncio.Condition) --------------------------------------- */

typedef struct cio_cond {
    cio__waitq cio__waiters;
} cio_cond;
#define CIO_COND_INIT {0}

/* Initialise `c` with no waiters, the same state as CIO_COND_INIT. Only
 * for a condition no task waits on. NULL is ignored. Does not suspend. */
void cio_cond_init(cio_cond *c);
/* Release `m` (held by the caller), wait for a notification, re-acquire
 * `m`. `m` is held again when this returns, whatever the result, also when
 * cancelled (asyncio does the same). 0, -ECANCELED, -EPERM if `m` is not
 * held by the caller, -EOWNERDEAD (re-acquired a broken mutex), -EINVAL.
 * Suspends. */
int cio_cond_wait(cio_cond *c, cio_mutex *m);
/* Wake up to `n` waiters (FIFO). Returns how many were woken, -EINVAL.
 * Does not suspend. */
int cio_cond_notify(cio_cond *c, int n);
int cio_cond_notify_all(cio_cond *c);

/* ---- Semaphores (asyncio.Semaphore, BoundedSemaphore) -------------------- */

typedef struct cio_sem {
    cio__waitq cio__waiters;
    long cio__value;
    long cio__max; /* bounded: the initial value (-1: bounded at 0);
                    * 0: unbounded */
} cio_sem;
#define CIO_SEM_INIT(n) {{0, 0}, (n), 0}
#define CIO_BSEM_INIT(n) {{0, 0}, (n), (n) > 0 ? (n) : -1}

#define CIO_SEM_BOUNDED 1u
/* Initialise with `value` permits; with CIO_SEM_BOUNDED, releasing beyond
 * the initial value is an error. -EINVAL for a negative value. */
int cio_sem_init(cio_sem *s, long value, unsigned flags);
/* Take a permit, waiting if none is free. 0, -ECANCELED (no permit taken),
 * -EINVAL, CIO_ENOTASK. Suspends. */
int cio_sem_acquire(cio_sem *s);
/* Take a permit without waiting: 0 or -EAGAIN (none free, or tasks are
 * already waiting: no overtaking). A cancellation point. */
int cio_sem_try_acquire(cio_sem *s);
/* Return a permit (to the first waiter if any). 0; -EOVERFLOW for a bounded
 * semaphore already at its initial value; -EINVAL. Does not suspend. */
int cio_sem_release(cio_sem *s);
long cio_sem_value(const cio_sem *s);

/* ---- Barrier (asyncio.Barrier) ------------------------------------------- */

typedef struct cio_barrier {
    cio__waitq cio__waiters;
    unsigned cio__parties, cio__count;
    int cio__broken;
} cio_barrier;
#define CIO_BARRIER_INIT(n) {{0, 0}, (n), 0, 0}

/* -EINVAL for 0 parties. */
int cio_barrier_init(cio_barrier *b, unsigned parties);
/* Wait until `parties` tasks are waiting, then release them all together.
 * Returns the arrival index 0..parties-1; -EPIPE if the barrier is (or
 * gets) aborted; -ECANCELED (the task leaves; the others keep waiting for
 * a full party). Reusable: the next `parties` callers form a new round.
 * Suspends. */
int cio_barrier_wait(cio_barrier *b);
/* Break the barrier: current and future waiters get -EPIPE until reset. */
int cio_barrier_abort(cio_barrier *b);
/* Unbreak an aborted barrier with no waiters. -EBUSY if tasks wait. */
int cio_barrier_reset(cio_barrier *b);

/* ---- Queues (asyncio.Queue, LifoQueue, PriorityQueue) -------------------- */

/* Items are `void *`: a queue moves pointers and never copies or frees
 * what they point to. That is asyncio's model (references to objects), it
 * costs no copy, and a fixed-size value fits by pointing to it or by
 * casting an integer through uintptr_t. */
typedef struct cio_queue cio_queue;

enum cio_queue_kind {
    CIO_QUEUE_FIFO = 0,
    CIO_QUEUE_LIFO = 1,
    CIO_QUEUE_PRIORITY = 2, /* smallest first by `cmp`; FIFO among equals */
};
typedef int (*cio_queue_cmp)(const void *a, const void *b);

/* A queue holding at most `maxsize` items (0: unbounded). PRIORITY needs a
 * `cmp`; the others ignore it. 0, -EINVAL, -ENOMEM, CIO_ENOTASK outside a
 * loop. */
int cio_queue_new(cio_queue **out, int kind, size_t maxsize,
                  cio_queue_cmp cmp);
/* Add `item`, waiting while the queue is full. 0; -ESHUTDOWN after
 * shutdown; -ECANCELED (item not added); -EINVAL. Suspends. */
int cio_queue_put(cio_queue *q, void *item);
/* Add without waiting: 0, -EAGAIN (full), -ESHUTDOWN, -EINVAL. */
int cio_queue_put_nowait(cio_queue *q, void *item);
/* Remove the next item into `*item`, waiting while the queue is empty.
 * 0; -ESHUTDOWN once shut down and empty; -ECANCELED (no item taken: an
 * item already handed over passes to the next getter or back to the
 * front); -EINVAL. Suspends. */
int cio_queue_get(cio_queue *q, void **item);
/* Remove without waiting: 0, -EAGAIN (empty), -ESHUTDOWN, -EINVAL. */
int cio_queue_get_nowait(cio_queue *q, void **item);
size_t cio_queue_size(const cio_queue *q);
/* Mark one item taken by get as processed. 0; -EINVAL if called more
 * times than items were put. */
int cio_queue_task_done(cio_queue *q);
/* Wait until every item put has been marked done. 0, -ECANCELED.
 * Suspends. */
int cio_queue_join(cio_queue *q);
/* Python 3.13 Queue.shutdown(): puts fail with -ESHUTDOWN; gets drain the
 * remaining items then fail with -ESHUTDOWN; with `immediate` the items
 * are dropped (and counted done) and gets fail at once. Waiters wake.
 * 0, -EINVAL. Does not suspend. */
int cio_queue_shutdown(cio_queue *q, bool immediate);
/* Release the queue (not its items). -EBUSY (nothing freed) while tasks
 * wait on it. NULL gives 0. */
int cio_queue_free(cio_queue *q);

#ifdef __cplusplus
}
#endif
#endif
