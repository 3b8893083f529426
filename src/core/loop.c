/* The loop: run queue, timers, the backend, and cio_run().
 *
 * One turn: run the tasks that were runnable when the turn began (tasks
 * they wake run next turn, so I/O is polled between), poll the backend
 * (without blocking if tasks are runnable), fire due timers. A loop with no
 * runnable task, no timer, no fd wait and no outside wakeup promised has
 * either finished or deadlocked; it never sleeps forever. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "switch.h"

#ifdef CIO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

_Thread_local cio_loop *cio__loop;
_Thread_local void (*cio__loop_close_hook)(cio_loop *l);

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CIO_SEC + ts.tv_nsec;
}

void cio__loop_update_now(cio_loop *l)
{
    if (l->clock == CIO_CLOCK_MONOTONIC)
        l->now = mono_now();
}

int64_t cio_now(void)
{
    cio_loop *l = cio__loop;
    if (l == NULL)
        return mono_now();
    cio__loop_update_now(l);
    return l->now;
}

int64_t cio_deadline_after(int64_t timeout)
{
    if (timeout < 0)
        return -EINVAL;
    int64_t now = cio_now();
    return timeout > CIO_NEVER - now ? CIO_NEVER : now + timeout;
}

void cio__timer_arm(cio_loop *l, cio__timer *t, int64_t when)
{
    if (t->idx)
        cio__heap_remove(&l->timers, t);
    t->when = when;
    /* Capacity is reserved at spawn (one timer per task), so this cannot
     * fail; see reserve_timers(). */
    (void)cio__heap_push(&l->timers, t);
}

void cio__timer_disarm(cio_loop *l, cio__timer *t)
{
    cio__heap_remove(&l->timers, t);
}

/* ---- switching (the inline path is in switch.h) -------------------------- */

/* The out-of-line halves of switch.h. */
void cio__enter_debug(cio_loop *l, cio_task *t)
{
    t->run_start = mono_now();
    cio__watchdog_enter(l, t);
}

#ifndef CIO__TSAN
/* A first run on a stack of a burst's slab: see cio__stack_first_use. Out
 * of line, so that cio__start keeps no frame and ends in a jump. */
static __attribute__((noinline, cold)) void
start_burst(cio__ctx *from, cio_task *next, bool dying)
{
    cio__stack_first_use(&next->stack);
    cio__start(from, next, dying);
}

__attribute__((noinline)) void cio__start(cio__ctx *from, cio_task *next,
                                          bool dying)
{
    if (CIO__UNLIKELY(next->stack.burst)) {
        start_burst(from, next, dying);
        return;
    }
    next->flags |= CIO__T_STARTED;
    next->starter = dying ? NULL : from;
    cio__ctx_start(from, &next->ctx, next->stack.lo, next->stack.size,
                   cio__task_main, next);
}
#endif

void cio__task_started(cio_loop *l)
{
#ifdef CIO__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    cio__after_switch(l);
}

__attribute__((noinline)) void cio__leave_slow(cio_loop *l, cio_task *t)
{
    if (!cio__stack_canary_ok(&t->stack)) {
        cio__report("stack overflow in task %s (stack %zu bytes)",
                    cio_task_name(t), t->stack.size);
        abort();
    }
    if (!l->debug)
        return;
    cio__watchdog_leave(l);
    int64_t took = mono_now() - t->run_start;
    l->stats.task_ns += took;
    if (took > l->slow_step)
        cio__report("slow step: task %s ran %.3f ms without suspending",
                    cio_task_name(t), (double)took / CIO_MSEC);
}

void cio__task_suspend(cio_task *t)
{
    cio__suspend(t, t->state == CIO__DONE, t->state == CIO__RUNNABLE);
}

void cio__task_arm(cio_task *t)
{
    cio__arm(t);
}

int cio__park(cio_task *t, int kind, const void *obj, int64_t deadline,
              unsigned flags)
{
    return cio__park_inline(t, kind, obj, deadline, flags);
}

void cio__task_end(cio_task *t)
{
    cio_loop *l = t->loop;
    cio__ctx *s = t->starter;
#ifdef CIO__TSAN
    /* ThreadSanitizer keeps a shadow call stack per fiber: returning
     * through the task's frames after switching fibers would unwind the
     * starter's. Under TSan a task always leaves by a switch. */
    s = NULL;
#endif
    if (s) {
        /* It never suspended: whatever started it is still frozen in
         * cio__ctx_start. If that runs next, return to it. */
        cio_task *j = s == &l->ctx ? NULL : CIO__CONTAINER(s, cio_task, ctx);
        bool chain = l->chain_left > 0 && l->runq_head;
        if (j ? chain && l->runq_head == j : !chain) {
            cio__leave_task(l, t);
            l->dead = t;
            if (j) {
                l->chain_left--;
                cio__runq_pop(l);
                cio__enter_task(l, j);
            } else {
                l->current = NULL;
            }
#ifdef CIO__ASAN
            __sanitizer_start_switch_fiber(NULL,
                                           j ? j->stack.lo
                                             : l->thread_stack_lo,
                                           j ? j->stack.size
                                             : l->thread_stack_size);
#endif
            return;
        }
    }
    cio__task_suspend(t);
    __builtin_unreachable();
}

/* Run `t` and whatever it hands the CPU to, until one switches back. */
static void run_task(cio_loop *l, cio_task *t)
{
    l->chain_left = CIO__CHAIN_STEPS;
    cio__enter_task(l, t);
    cio__go(l, &l->ctx, t, false);
    l->current = NULL;
}

/* ---- shutdown and deadlock ----------------------------------------------- */

void cio__cancel_all(cio_loop *l, bool force)
{
    cio__cancel_epoch_bump(l);
    for (cio_task *t = l->tasks; t; t = t->all_next) {
        if (t->state == CIO__DONE)
            continue;
        if (t->root.cio__cancelled_at == CIO_NEVER)
            t->root.cio__cancelled_at = l->now;
        if (force && t->state == CIO__WAITING) {
            /* Last resort after a deadlock that cancellation could not
             * break (shielded or uninterruptible waits). A job running on
             * a thread still cannot be interrupted. */
            bool off = true;
            if (t->unlink_try)
                off = t->unlink_try(t);
            else if (t->unlink)
                t->unlink(t);
            else if (t->wait_q)
                cio__waitq_remove(t->wait_q, t->wait_node);
            if (off)
                cio__wake(t, -ECANCELED);
        } else {
            cio__cancel_refresh(t);
        }
    }
}

static void report_deadlock(cio_loop *l)
{
    cio__report("deadlock: %llu task(s) wait and nothing can wake them",
                (unsigned long long)l->stats.tasks_alive);
    for (cio_task *t = l->tasks; t; t = t->all_next)
        if (t->state == CIO__WAITING)
            cio__report("  task %s (id %llu) waits on %s %p", cio_task_name(t),
                        (unsigned long long)t->id,
                        cio__wait_kind_name(t->wait_kind), t->wait_obj);
}

/* Every task waits on something only another task could provide. Report
 * it, then cancel everything so the run ends; if shields or
 * uninterruptible waits keep it stuck, interrupt those; if that still does
 * not end it, give up on the remaining tasks. Returns false to stop. */
static bool handle_deadlock(cio_loop *l)
{
    if (l->deadlocked == 0)
        report_deadlock(l);
    l->deadlocked++;
    if (l->deadlocked > 2)
        return false;
    cio__cancel_all(l, l->deadlocked == 2);
    return true;
}

/* ---- the turn ------------------------------------------------------------ */

static void fire_timers(cio_loop *l)
{
    cio__timer *t;
    while ((t = cio__heap_top(&l->timers)) && t->when <= l->now) {
        cio__heap_remove(&l->timers, t);
        l->stats.timers_fired++;
        t->fire(l, t);
    }
}

static size_t io_waiting(cio_loop *l)
{
    return l->backend ? l->bops->waiting(l->backend) : 0;
}

static int64_t poll_timeout(cio_loop *l)
{
    cio__timer *next = cio__heap_top(&l->timers);
    if (next == NULL)
        return -1;
    int64_t d = next->when - l->now;
    return d < 0 ? 0 : d;
}

/* While tasks are runnable the backend is polled (without blocking)
 * after this many task steps, not at every turn: a poll is a system call,
 * and a busy loop would pay it per turn (Tokio's event_interval). When no
 * task waits on I/O or on a thread, a poll can only bring a signal or a
 * call from another thread: then every POLL_INTERVAL_IDLE steps (epoll's
 * non-blocking epoll_wait every 61 steps cost a busy loop ~10%; io_uring
 * skips the system call by itself, see backend_uring.c). */
#define POLL_INTERVAL 61
#define POLL_INTERVAL_IDLE (8 * POLL_INTERVAL)

/* Poll the backend; in debug mode count the time it took. */
static int poll_backend(cio_loop *l, int64_t timeout)
{
    if (CIO__LIKELY(!l->debug))
        return l->bops->poll(l->backend, timeout);
    int64_t t0 = mono_now();
    int rc = l->bops->poll(l->backend, timeout);
    l->stats.poll_ns += mono_now() - t0;
    return rc;
}

/* Returns false when the loop must stop. */
static bool wait_for_work(cio_loop *l)
{
    if (l->runq_head) {
        uint64_t steps = l->stats.switches - l->poll_mark;
        if (steps >= POLL_INTERVAL &&
            (steps >= POLL_INTERVAL_IDLE || l->external > 0 ||
             io_waiting(l) > 0)) {
            l->poll_mark = l->stats.switches;
            poll_backend(l, 0);
        }
        /* The clock matters only to timers and to scope deadlines. */
        if (cio__heap_top(&l->timers) || l->deadline_scopes > 0) {
            cio__loop_update_now(l);
            fire_timers(l);
        }
        return true;
    }
    l->poll_mark = l->stats.switches;
    if (l->blocked_waiters.head) {
        while (cio__waitq_grant(&l->blocked_waiters, NULL))
            ;
        return true;
    }
    bool timers = cio__heap_top(&l->timers) != NULL;
    if (!timers && io_waiting(l) == 0 && l->external == 0)
        return handle_deadlock(l);
    if (l->clock == CIO_CLOCK_VIRTUAL) {
        /* Jobs on threads finish in real time: wait for them rather than
         * jump over them. Otherwise jump to the next timer. */
        if (l->external > 0 || !timers) {
            poll_backend(l, -1);
        } else if (poll_backend(l, 0) == 0) {
            int64_t when = cio__heap_top(&l->timers)->when;
            if (when > l->now)
                l->now = when;
        }
    } else {
        poll_backend(l, poll_timeout(l));
        cio__loop_update_now(l);
    }
    fire_timers(l);
    return true;
}

/* ---- calls from other threads -------------------------------------------- */

/* The posts taken from the stack, newest first, in posting order. */
static cio__remote *fifo(cio__remote *r)
{
    cio__remote *out = NULL;
    while (r) {
        cio__remote *next = r->next;
        r->next = out;
        out = r;
        r = next;
    }
    return out;
}

static void on_remote(cio__fdw *w, unsigned events)
{
    (void)events;
    cio_loop *l = w->data;
    uint64_t v;
    if (read(l->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        cio__report("eventfd read: %s", cio_strerror(-errno));
    cio__remote *r = fifo(atomic_exchange(&l->rposts, NULL));
    if (l->bops->watch(l->backend, &l->ewatch) < 0)
        cio__report("cannot watch the loop's eventfd");
    while (r) {
        cio__remote *next = r->next;
        r->run(r);
        r = next;
    }
}

/* Lock-free: a post pushes onto l->rposts with one compare-and-swap, and
 * the one that finds the stack empty writes the eventfd (the loop reads
 * the eventfd before it takes the stack, so no post is left unseen).
 * Once the push succeeds the loop may run `r` and finish (loops of
 * cio_run_multi post to each other and end on their own), so remote_fini
 * waits for the posters counted in rwriters before closing the eventfd;
 * a poster counts itself before it looks at the stack, and one that then
 * finds it closed never touches the eventfd. */
int cio__remote_post(cio_loop *l, cio__remote *r)
{
    atomic_fetch_add(&l->rwriters, 1);
    cio__remote *head = atomic_load(&l->rposts);
    do {
        if (head == CIO__REMOTE_CLOSED) {
            atomic_fetch_sub(&l->rwriters, 1);
            return -ESHUTDOWN;
        }
        r->next = head;
    } while (!atomic_compare_exchange_weak(&l->rposts, &head, r));
    int rc = 0;
    if (head == NULL) {
        uint64_t one = 1;
        if (write(l->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            rc = -errno;
    }
    atomic_fetch_sub(&l->rwriters, 1); /* last touch of `l` */
    return rc;
}

static int remote_init(cio_loop *l)
{
    atomic_init(&l->rposts, NULL);
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd == -1)
        return -errno;
    l->ewatch = (cio__fdw){.ready = on_remote, .fd = l->efd,
                           .events = CIO_READABLE, .data = l,
                           .internal = true};
    return l->bops->watch(l->backend, &l->ewatch);
}

static void remote_fini(cio_loop *l)
{
    cio__remote *r = atomic_exchange(&l->rposts, CIO__REMOTE_CLOSED);
    if (r == CIO__REMOTE_CLOSED)
        r = NULL;
    r = fifo(r);
    while (atomic_load(&l->rwriters) > 0) /* a write or two in flight */
        sched_yield();
    while (r) {
        cio__remote *next = r->next;
        r->drop(r);
        r = next;
    }
    if (l->efd >= 0)
        close(l->efd);
}

static void loop_run(cio_loop *l)
{
    for (;;) {
        l->stats.loop_turns++;
        if (l->runq_head)
            run_task(l, cio__runq_pop(l));
        if (l->main && l->main->state == CIO__DONE && !l->shutting_down) {
            l->shutting_down = 1;
            cio__loop_update_now(l);
            cio__cancel_all(l, false);
        }
        if (l->stats.tasks_alive == 0 && l->closing_ops == 0)
            break;
        if (!wait_for_work(l))
            break;
    }
}

/* ---- create / destroy ---------------------------------------------------- */

/* io_uring where the kernel allows it, epoll otherwise or when asked. */
static int backend_init(cio_loop *l, int kind)
{
#ifdef CIO_HAVE_URING
    if (kind != CIO_BACKEND_EPOLL) {
        l->bops = &cio__backend_uring;
        int rc = l->bops->init(l, &l->backend);
        if (rc == 0 || kind == CIO_BACKEND_URING)
            return rc;
    }
#else
    if (kind == CIO_BACKEND_URING)
        return -ENOTSUP;
#endif
    l->bops = &cio__backend_epoll;
    return l->bops->init(l, &l->backend);
}

static int loop_new(const cio_config *cfg, cio_loop **out)
{
    cio_loop *l = cio__calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    l->clock = cfg->clock;
    l->debug = cfg->debug;
    l->stack_size = cfg->stack_size ? cfg->stack_size : CIO_STACK_DEFAULT;
    l->slow_step = cfg->slow_step > 0 ? cfg->slow_step : 100 * CIO_MSEC;
    l->next_id = 1;
    l->cancel_epoch = 1;
    l->efd = -1;
    l->sfd = -1;
    l->shutdown_grace = cfg->shutdown_grace > 0 ? cfg->shutdown_grace
                                                : 5 * CIO_SEC;
    l->started_mono = mono_now();
    l->now = l->clock == CIO_CLOCK_VIRTUAL ? 0 : l->started_mono;
    int rc = cio__stack_pool_init(&l->stacks);
    if (rc < 0)
        goto fail;
    rc = backend_init(l, cfg->backend);
    if (rc < 0)
        goto fail;
    rc = remote_init(l);
    if (rc < 0)
        goto fail;
    rc = cio__signals_init(l, cfg->handle_signals != 0);
    if (rc < 0)
        goto fail;
    cio__debug_init(l);
    cio__watchdog_start(l);
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &l->thread_stack_lo,
                              &l->thread_stack_size);
        pthread_attr_destroy(&attr);
    }
#ifdef CIO__TSAN
    l->tsan_fiber = __tsan_get_current_fiber();
#endif
    *out = l;
    return 0;
fail:
    cio__signals_fini(l);
    remote_fini(l);
    if (l->backend)
        l->bops->fini(l->backend);
    cio__stack_pool_fini(l->stacks);
    cio__free(l);
    return rc;
}

static void loop_free(cio_loop *l)
{
    cio__watchdog_stop(l);
    cio__task_dispose_all(l);
    cio__dns_fini(l);
    cio__pools_fini(l);
    cio__signals_fini(l);
    remote_fini(l);
    if (l->backend)
        l->bops->fini(l->backend);
    cio__heap_fini(&l->timers);
    cio__stack_pool_fini(l->stacks);
    cio__free(l);
}

void cio_config_init(cio_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->stack_size = CIO_STACK_DEFAULT;
    cfg->slow_step = 100 * CIO_MSEC;
    cfg->handle_signals = 1;
    cfg->shutdown_grace = 5 * CIO_SEC;
    const char *e = getenv("CIO_DEBUG");
    if (e && *e && strcmp(e, "0") != 0)
        cfg->debug = 1;
    e = getenv("CIO_BACKEND");
    if (e && strcmp(e, "epoll") == 0)
        cfg->backend = CIO_BACKEND_EPOLL;
    else if (e && strcmp(e, "uring") == 0)
        cfg->backend = CIO_BACKEND_URING;
    e = getenv("CIO_SIGNALS");
    if (e && strcmp(e, "0") == 0)
        cfg->handle_signals = 0;
    e = getenv("CIO_STACK_SIZE");
    if (e && atol(e) > 0)
        cfg->stack_size = (size_t)atol(e);
}

int cio_run(cio_task_fn main_fn, void *arg)
{
    return cio_run_config(NULL, main_fn, arg);
}

int cio_run_config(const cio_config *cfg, cio_task_fn main_fn, void *arg)
{
    cio_config defaults;
    if (cfg == NULL) {
        cio_config_init(&defaults);
        cfg = &defaults;
    }
    if (main_fn == NULL)
        return -EINVAL;
    if ((cfg->stack_size && cfg->stack_size < CIO_STACK_MIN) ||
        cfg->backend < CIO_BACKEND_AUTO || cfg->backend > CIO_BACKEND_URING ||
        (cfg->clock != CIO_CLOCK_MONOTONIC && cfg->clock != CIO_CLOCK_VIRTUAL))
        return -EINVAL;
    if (cio__loop)
        return -EBUSY;
    cio_loop *l;
    int rc = loop_new(cfg, &l);
    if (rc < 0)
        return rc;
    cio__loop = l;
    cio_spawn_opts opts = {.name = "main"};
    rc = cio__spawn(&l->main, NULL, main_fn, arg, &opts,
                    __builtin_return_address(0));
    if (rc == 0) {
        l->main->flags |= CIO__T_MAIN;
        loop_run(l);
        rc = l->main->state == CIO__DONE ? l->main->result : -ECANCELED;
        if (l->main->state == CIO__DONE)
            l->main->flags |= CIO__T_JOINED;
        if (l->deadlocked)
            rc = CIO_EDEADLOCK;
        cio_task_free(l->main);
        l->main = NULL;
    }
    if (cio__loop_close_hook)
        cio__loop_close_hook(l);
    if (l->debug)
        cio__report_tracked(l);
    loop_free(l);
    cio__loop = NULL;
    return rc;
}

int cio_stats_get(cio_stats *out)
{
    cio_loop *l = cio__loop;
    if (l == NULL)
        return -ESRCH;
    if (out == NULL)
        return -EINVAL;
    *out = l->stats;
    out->stacks_mapped = cio__stack_mapped(l->stacks);
    out->stacks_pooled = cio__stack_pooled(l->stacks);
    out->io_waits = l->stats.io_waits;
    out->run_ns = mono_now() - l->started_mono;
    return 0;
}
