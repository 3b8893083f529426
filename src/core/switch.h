/* The switching path, inline: parking a task, handing the CPU to the next
 * runnable one, the context switch itself. loop.c defines the out-of-line
 * entry points (cio__park, cio__task_suspend); the hottest waits (a queue
 * get) include this header and park without a call. Nothing here is
 * public API.
 *
 * A task that suspends hands the CPU straight to the next runnable task
 * (one context switch instead of two through the loop) for up to
 * CIO__CHAIN_STEPS steps; then, or when nothing is runnable, it switches
 * to the loop, which polls for I/O and fires timers. The switch that
 * leaves a finished task for good cannot free the stack it runs on: the
 * next context to run does, in cio__after_switch(). */
#ifndef CIO_SWITCH_H
#define CIO_SWITCH_H

#include "internal.h"

#ifdef CIO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define CIO__CHAIN_STEPS 61

/* Out of line, in loop.c: the rare halves of the steps below. */
void cio__enter_debug(cio_loop *l, cio_task *t);
void cio__leave_slow(cio_loop *l, cio_task *t);

static inline void cio__after_switch(cio_loop *l)
{
    cio_task *dead = l->dead;
    if (dead) {
        l->dead = NULL;
        cio__task_release_stack(dead);
    }
}

/* Make `t` the running task (the caller then switches to it). */
static inline void cio__enter_task(cio_loop *l, cio_task *t)
{
    l->current = t;
    t->state = CIO__RUNNING;
    l->stats.switches++;
    if (CIO__UNLIKELY(l->debug))
        cio__enter_debug(l, t);
}

/* Checks done each time a task stops running. */
static inline void cio__leave_task(cio_loop *l, cio_task *t)
{
    if (CIO__UNLIKELY(!cio__stack_canary_ok(&t->stack) || l->debug))
        cio__leave_slow(l, t);
}

static inline cio_task *cio__runq_pop(cio_loop *l)
{
    cio_task *t = l->runq_head;
    l->runq_head = t->runq_next;
    if (l->runq_head == NULL)
        l->runq_tail = NULL;
    return t;
}

/* The task to run after the running one stops: the next runnable one
 * while the chain lasts, else NULL (the loop). */
static inline cio_task *cio__chain_next(cio_loop *l)
{
    if (l->chain_left > 0 && l->runq_head) {
        l->chain_left--;
        return cio__runq_pop(l);
    }
    return NULL;
}

/* Start `next`, never run before: save the running context in `from`
 * and call the task's entry on its stack. Out of line (loop.c), so that
 * the common case, a plain switch, keeps fewer registers live in its
 * callers. Not under ThreadSanitizer: cio__go() has switched TSan's fiber
 * already, and the entry of a function called then would go on the new
 * fiber's shadow stack while its exit comes off the old one's. */
#ifdef CIO__TSAN
static inline __attribute__((always_inline)) void
cio__start(cio__ctx *from, cio_task *next, bool dying)
{
    next->flags |= CIO__T_STARTED;
    next->starter = dying ? NULL : from;
    if (CIO__UNLIKELY(next->stack.burst))
        cio__stack_first_use(&next->stack);
    cio__ctx_start(from, &next->ctx, next->stack.lo, next->stack.size,
                   cio__task_main, next);
}
#else
void cio__start(cio__ctx *from, cio_task *next, bool dying);
#endif

/* Save the running context in `from` and run `next` (NULL: the loop),
 * which the caller has entered. A task never run before starts with a
 * call on its stack (cio__ctx_start); it may come back by returning, when
 * `from` is not dying. Returns when something switches back to `from`. */
static inline __attribute__((always_inline)) void
cio__go(cio_loop *l, cio__ctx *from, cio_task *next, bool dying)
{
#ifdef CIO__ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(dying ? NULL : &fake,
                                   next ? next->stack.lo : l->thread_stack_lo,
                                   next ? next->stack.size
                                        : l->thread_stack_size);
#endif
#ifdef CIO__TSAN
    __tsan_switch_to_fiber(next ? next->tsan_fiber : l->tsan_fiber, 0);
#endif
    if (next && !(next->flags & CIO__T_STARTED))
        cio__start(from, next, dying);
    else
        cio__ctx_switch(from, next ? &next->ctx : &l->ctx);
#ifdef CIO__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    cio__after_switch(l);
}

/* Switch away from the running task `t` (its state set by the caller):
 * to the next runnable task, or to the loop. Returns when it runs again.
 * `dying`: t has ended and leaves for good; `queued`: t may be in the run
 * queue (it yields). Callers pass constants where they know them. */
static inline __attribute__((always_inline)) void
cio__suspend(cio_task *t, bool dying, bool queued)
{
    cio_loop *l = t->loop;
    cio__leave_task(l, t);
    t->starter = NULL;
    cio_task *next = cio__chain_next(l);
    if (queued && next == t) {
        /* It yielded and nothing else is runnable: go on. */
        cio__enter_task(l, t);
        return;
    }
    if (dying)
        l->dead = t;
    if (next)
        cio__enter_task(l, next);
    else
        l->current = NULL;
    cio__go(l, &t->ctx, next, dying);
}

static inline __attribute__((always_inline)) void cio__arm(cio_task *t)
{
    int64_t d = t->call_deadline;
    /* No scope anywhere has a deadline: the chain has none. */
    if (t->loop->deadline_scopes > 0 &&
        !(t->park_flags & CIO__PARK_UNINTERRUPTIBLE)) {
        cio__chain_sync(t);
        if (t->cc_deadline < d)
            d = t->cc_deadline;
    }
    if (d != CIO_NEVER)
        cio__timer_arm(t->loop, &t->timer, d);
    else if (t->timer.idx)
        cio__timer_disarm(t->loop, &t->timer);
}

/* cio__park, inline. wait_kind and wait_obj stay set after the wait:
 * whoever reads them (the task dump, the deadlock report, the unlink
 * functions) looks at a waiting task only. */
static inline __attribute__((always_inline)) int
cio__park_inline(cio_task *t, int kind, const void *obj, int64_t deadline,
                 unsigned flags)
{
    t->call_deadline = deadline;
    t->park_flags = flags;
    t->wait_kind = kind;
    t->wait_obj = obj;
    t->state = CIO__WAITING;
    t->budget = CIO__BUDGET;
    cio__arm(t);
    cio_loop *l = t->loop;
    if (CIO__UNLIKELY(l->park_hook_count > 0) && !(t->flags & CIO__T_MAIN) &&
        --l->park_hook_count == 0) {
        /* Tests: the hook may wake t itself, which queues it. */
        l->park_hook(l->park_hook_arg);
        cio__task_suspend(t);
    } else {
        cio__suspend(t, false, false);
    }
    if (t->timer.idx)
        cio__timer_disarm(l, &t->timer);
    return t->wake_result;
}

/* cio__park_q, inline. */
static inline __attribute__((always_inline)) int
cio__park_q_inline(cio_task *t, cio__waitq *q, cio__waiter *w, int kind,
                   const void *obj, int64_t deadline, unsigned flags)
{
    cio__wait_on(t, q, w);
    return cio__park_inline(t, kind, obj, deadline, flags);
}

#endif
