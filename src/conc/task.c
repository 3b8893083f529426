/* Tasks: spawn, run, park and wake, join, cancel, sleep. */
#include <stdarg.h>
#include <stdlib.h>

#include "core/switch.h"
#include "internal.h"

#ifdef CIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Recycled task structs kept per loop. */
#define FREE_TASKS_MAX 4096

const char *cio__wait_kind_name(int kind)
{
    static const char *const names[] = {
        [CIO__W_NONE] = "nothing",      [CIO__W_SLEEP] = "sleep",
        [CIO__W_JOIN] = "join",         [CIO__W_GROUP] = "group",
        [CIO__W_MUTEX] = "mutex",       [CIO__W_EVENT] = "event",
        [CIO__W_COND] = "condition",    [CIO__W_SEM] = "semaphore",
        [CIO__W_BARRIER] = "barrier",   [CIO__W_QUEUE_GET] = "queue get",
        [CIO__W_QUEUE_PUT] = "queue put", [CIO__W_QUEUE_JOIN] = "queue join",
        [CIO__W_FUTURE] = "future",     [CIO__W_GEN] = "generator",
        [CIO__W_FD] = "fd",             [CIO__W_BLOCKED] = "all-blocked",
        [CIO__W_THREAD] = "thread job", [CIO__W_SIGNAL] = "signal",
        [CIO__W_POOL] = "pool",
    };
    if (kind < 0 || kind > CIO__W_LAST)
        return "?";
    return names[kind];
}

static const char *task_name(cio_task *t)
{
    if (t->name[0] == '\0')
        snprintf(t->name, sizeof t->name, "task-%llu",
                 (unsigned long long)t->id);
    return t->name;
}

/* ---- lifetime ------------------------------------------------------------ */

static void task_timer_fire(cio_loop *l, cio__timer *tm);

/* Make a recycled task look new. The fields from g_prev up to id start
 * zeroed; cio__spawn sets every other one, so only these few need
 * clearing here. The block is cleared in 64-byte pieces: compilers turn
 * one memset of it into `rep stos`, whose start-up costs more than the
 * dozen vector stores these become. */
static inline void task_reset(cio_task *t)
{
    char *p = (char *)t + offsetof(cio_task, g_prev);
    size_t n = offsetof(cio_task, id) - offsetof(cio_task, g_prev), i = 0;
    for (; i + 64 <= n; i += 64)
        memset(p + i, 0, 64);
    memset(p + i, 0, n - i);
    t->all_prev = NULL;
    t->result = 0;
    t->root.cio__flags = 0;
    t->name[0] = '\0';
}

static cio_task *task_alloc(cio_loop *l)
{
    cio_task *t = l->free_tasks;
    if (t) {
        l->free_tasks = t->runq_next;
        l->free_tasks_n--;
        task_reset(t);
        return t;
    }
    return cio__calloc(1, sizeof *t);
}

void cio__task_dispose(cio_task *t)
{
    cio_loop *l = t->loop;
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        l->tasks = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    if (t->errmsg) {
        cio__free(t->errmsg);
        t->errmsg = NULL;
    }
    if (l->free_tasks_n < FREE_TASKS_MAX) {
        t->runq_next = l->free_tasks;
        l->free_tasks = t;
        l->free_tasks_n++;
    } else {
        cio__free(t);
    }
}

static void report_unretrieved(cio_task *t, const char *why)
{
    if (t->result >= 0 || t->result == -ECANCELED)
        return;
    char site[160];
    cio__symbolize((uintptr_t)t->spawn_site, site, sizeof site);
    cio__report("task %s failed: %s (%s)%s%s; spawned at %s", task_name(t),
                cio_err_name(t->result), why, t->errmsg ? ": " : "",
                t->errmsg ? t->errmsg : "", site);
}

long cio_task_stack_used(const cio_task *t)
{
    if (t == NULL) {
        t = cio__self();
        if (t == NULL)
            return CIO_ENOTASK;
    }
    if (t->state == CIO__DONE || t->stack.lo == NULL)
        return -EINVAL;
    return cio__stack_used(&t->stack);
}

/* Debug mode: say so when a task came near the end of its stack, and drop
 * the stack's pages so that the next task's measure starts from zero. */
static __attribute__((noinline)) void check_stack_use(cio_task *t)
{
    long used = cio__stack_used(&t->stack);
    if (used > 0 && (size_t)used * 4 > t->stack.size * 3)
        cio__report("task %s used %ld of its %zu stack bytes; give it a "
                    "larger stack_size", task_name(t), used, t->stack.size);
    cio__stack_forget(&t->stack);
}

/* Called by the loop once a finished task has switched away for good. */
void cio__task_release_stack(cio_task *t)
{
#ifdef CIO__TSAN
    __tsan_destroy_fiber(t->tsan_fiber);
    t->tsan_fiber = NULL;
#endif
    if (CIO__UNLIKELY(t->loop->debug))
        check_stack_use(t);
    cio__stack_put(t->loop->stacks, &t->stack);
    t->stack.lo = NULL;
    cio__task_unref(t);
}

/* At loop close: everything left is either finished and never freed by
 * its owner, or abandoned after an unbreakable deadlock. */
void cio__task_dispose_all(cio_loop *l)
{
    while (l->tasks) {
        cio_task *t = l->tasks;
        if (t->state == CIO__DONE) {
            if (!(t->flags & CIO__T_JOINED) && !t->group)
                report_unretrieved(t, "never retrieved");
            if (l->debug && (t->flags & CIO__T_HANDLE))
                cio__report("task %s: handle never freed", task_name(t));
        } else {
            cio__report("task %s abandoned at loop close", task_name(t));
        }
        t->refs = 1;
        cio__task_unref(t);
    }
    while (l->free_tasks) {
        cio_task *t = l->free_tasks;
        l->free_tasks = t->runq_next;
        cio__free(t);
    }
}

/* ---- running ------------------------------------------------------------- */

/* The part of a task's exit that most tasks skip: groups still open
 * (joined here), scopes left open, mutexes still held. */
static __attribute__((noinline)) void exit_cleanup(cio_task *t)
{
    cio_loop *l = t->loop;
    if (t->groups)
        cio__group_close_all(t);
    if (t->scope != &t->root && l->debug)
        cio__report("task %s returned with cancel scopes still open",
                    task_name(t));
    t->scope = &t->root;
    t->cc_epoch = 0;
    l->deadline_scopes -= t->timed_scopes;
    t->timed_scopes = 0;
    if (t->held)
        cio__mutex_break_all(t);
}

static void task_exit(cio_task *t, int rc)
{
    cio_loop *l = t->loop;
    if (CIO__UNLIKELY(t->groups || t->scope != &t->root || t->timed_scopes ||
                      t->held))
        exit_cleanup(t);
    t->result = rc;
    t->state = CIO__DONE;
    l->stats.tasks_alive--;
    if (t->group)
        cio__group_child_done(t->group, t);
    if (t->joiner) {
        cio_task *j = t->joiner;
        t->joiner = NULL;
        cio__wake(j, 0);
    }
    if (t->flags & CIO__T_DETACHED)
        report_unretrieved(t, "detached task");
    cio__task_end(t);
}

void cio__task_main(void *arg)
{
    cio_task *t = arg;
    cio__task_started(t->loop);
    task_exit(t, t->fn(t->arg));
}

static int reserve_timers(cio_loop *l)
{
    size_t need = l->stats.tasks_alive + 64;
    if (l->timers.cap >= need)
        return 0;
    size_t cap = l->timers.cap ? l->timers.cap : 64;
    while (cap < need)
        cap *= 2;
    cio__heap_ent *v = cio__realloc(l->timers.v, cap * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    l->timers.v = v;
    l->timers.cap = cap;
    return 0;
}

int cio__spawn(cio_task **out, cio_group *g, cio_task_fn fn, void *arg,
               const cio_spawn_opts *opts, void *site)
{
    cio_loop *l = cio__loop;
    if (l == NULL)
        return CIO_ENOTASK;
    if (fn == NULL)
        return -EINVAL;
    size_t ss = opts && opts->stack_size ? opts->stack_size : l->stack_size;
    if (ss < CIO_STACK_MIN)
        return -EINVAL;
    if (reserve_timers(l) < 0)
        return -ENOMEM;
    cio_task *t = task_alloc(l);
    if (t == NULL)
        return -ENOMEM;
    if (cio__stack_get(l->stacks, ss, &t->stack) < 0) {
        cio__free(t);
        return -ENOMEM;
    }
    t->loop = l;
    t->fn = fn;
    t->arg = arg;
    t->id = l->next_id++;
    t->spawn_site = site;
    t->spawned_at = l->now;
    t->budget = CIO__BUDGET;
    t->timer.fire = task_timer_fire;
    t->root.cio__owner = t;
    t->root.cio__deadline = CIO_NEVER;
    t->root.cio__cancelled_at = l->shutting_down ? l->now : CIO_NEVER;
    t->root.cio__parent = NULL;
    t->scope = &t->root;
    t->group = g;
    t->refs = 1 + (out != NULL);
    t->flags = out ? CIO__T_HANDLE : (g ? 0 : CIO__T_DETACHED);
    if (opts && opts->name) {
        strncpy(t->name, opts->name, sizeof t->name - 1);
        if (t->name[0] == '\0')
            t->name[0] = '?';
    }
#ifdef CIO__TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    t->all_next = l->tasks;
    if (l->tasks)
        l->tasks->all_prev = t;
    l->tasks = t;
    l->stats.tasks_alive++;
    l->stats.tasks_spawned++;
    cio__schedule(t);
    if (out)
        *out = t;
    return 0;
}

int cio_spawn(cio_task **out, cio_task_fn fn, void *arg)
{
    return cio__spawn(out, NULL, fn, arg, NULL, __builtin_return_address(0));
}

int cio_spawn_ex(cio_task **out, cio_task_fn fn, void *arg,
                 const cio_spawn_opts *opts)
{
    return cio__spawn(out, NULL, fn, arg, opts, __builtin_return_address(0));
}

/* ---- parking ------------------------------------------------------------- */

/* Take a waiting task off what it waits on; false if that is refused. */
static bool take_off(cio_task *t)
{
    if (t->unlink_try)
        return t->unlink_try(t);
    if (t->unlink)
        t->unlink(t);
    else if (t->wait_q)
        cio__waitq_remove(t->wait_q, t->wait_node);
    return true;
}

static void task_timer_fire(cio_loop *l, cio__timer *tm)
{
    cio_task *t = CIO__CONTAINER(tm, cio_task, timer);
    if (t->state != CIO__WAITING)
        return;
    /* A scope deadline at the same instant as the call's own deadline
     * wins: nothing runs past its deadline. */
    if (!(t->park_flags & CIO__PARK_UNINTERRUPTIBLE) && cio__cancelled(t)) {
        if (take_off(t))
            cio__wake(t, -ECANCELED);
    } else if (t->call_deadline <= l->now) {
        if (take_off(t))
            cio__wake(t, -ETIMEDOUT);
    } else {
        cio__task_arm(t); /* a scope deadline moved later */
    }
}

cio_task *cio__waitq_grant(cio__waitq *q, void *value)
{
    cio__waiter *w = cio__waitq_pop(q);
    if (w == NULL)
        return NULL;
    w->value = value;
    w->granted = 1;
    cio__wake(w->task, 0);
    return w->task;
}

/* Re-examine a waiting task after a cancellation or deadline change. */
void cio__task_refresh(cio_task *t)
{
    if (t->state != CIO__WAITING ||
        (t->park_flags & CIO__PARK_UNINTERRUPTIBLE))
        return;
    if (cio__cancelled(t)) {
        if (take_off(t))
            cio__wake(t, -ECANCELED);
    } else {
        cio__task_arm(t);
    }
}

static void yield_now(cio_task *t)
{
    cio__schedule(t);
    cio__task_suspend(t);
}

int cio__budget_yield(cio_task *t)
{
    t->budget = CIO__BUDGET;
    yield_now(t);
    return cio__cancelled(t);
}

int cio_checkpoint(void)
{
    CIO__SELF_OR_RETURN(t);
    return cio__checkpoint(t);
}

int cio_cancel_pending(void)
{
    CIO__SELF_OR_RETURN(t);
    return cio__cancelled(t);
}

int cio_yield(void)
{
    CIO__SELF_OR_RETURN(t);
    int rc = cio__cancelled(t);
    if (rc < 0)
        return rc;
    t->budget = CIO__BUDGET;
    yield_now(t);
    return cio__cancelled(t);
}

int cio_sleep_until(int64_t deadline)
{
    CIO__SELF_OR_RETURN(t);
    if (deadline < 0)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    cio__loop_update_now(t->loop);
    if (deadline <= t->loop->now)
        return 0;
    t->unlink = NULL;
    t->wait_q = NULL;
    rc = cio__park(t, CIO__W_SLEEP, NULL, deadline, 0);
    return rc == -ETIMEDOUT ? 0 : rc;
}

int cio_sleep(int64_t ns)
{
    if (ns < 0)
        return -EINVAL;
    if (ns == 0)
        return cio_yield();
    if (cio__self() == NULL)
        return CIO_ENOTASK;
    return cio_sleep_until(cio_deadline_after(ns));
}

int cio_wait_all_blocked(void)
{
    CIO__SELF_OR_RETURN(t);
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    cio__waiter w = {0};
    return cio__park_q(t, &t->loop->blocked_waiters, &w, CIO__W_BLOCKED,
                       NULL, CIO_NEVER, 0);
}

/* ---- join, cancel, free -------------------------------------------------- */

static void join_unlink(cio_task *self)
{
    cio_task *t = (cio_task *)self->wait_obj;
    if (t->joiner == self)
        t->joiner = NULL;
}

static inline int join_check(cio_task *self, cio_task *t)
{
    if (t == NULL)
        return -EINVAL;
    if (t == self)
        return -EDEADLK;
    if (t->flags & CIO__T_JOINED)
        return -EALREADY;
    if (!(t->flags & CIO__T_HANDLE) || t->group || t->loop != self->loop)
        return -EINVAL;
    if (t->joiner)
        return -EBUSY;
    return 0;
}

static int join_wait(cio_task *self, cio_task *t, unsigned flags)
{
    if (t->state == CIO__DONE)
        return 0;
    t->joiner = self;
    self->unlink = join_unlink;
    self->wait_q = NULL;
    return cio__park_inline(self, CIO__W_JOIN, t, CIO_NEVER, flags);
}

int cio_task_join(cio_task *t)
{
    CIO__SELF_OR_RETURN(self);
    int rc = join_check(self, t);
    if (rc < 0)
        return rc;
    rc = cio__checkpoint(self);
    if (rc < 0)
        return rc;
    rc = join_wait(self, t, 0);
    if (rc < 0)
        return rc;
    t->flags |= CIO__T_JOINED;
    return t->result;
}

int cio__join_quiet(cio_task *t)
{
    cio_task *self = cio__self();
    join_wait(self, t, CIO__PARK_UNINTERRUPTIBLE);
    t->flags |= CIO__T_JOINED;
    return t->result;
}

/* wait_for owns the task: when the wait is cut short, the task is
 * cancelled and awaited before the call returns. */
static void cancel_and_reap(cio_task *t)
{
    if (t->state != CIO__DONE) {
        cio_task_cancel(t);
        cio__join_quiet(t);
    }
    t->flags |= CIO__T_JOINED;
}

int cio_wait_for(cio_task *t, int64_t timeout)
{
    CIO__SELF_OR_RETURN(self);
    if (timeout < 0)
        return -EINVAL;
    int rc = join_check(self, t);
    if (rc < 0)
        return rc;
    if (cio__cancelled(self)) {
        /* A cancellation point first, even for a finished task. */
        cancel_and_reap(t);
        return -ECANCELED;
    }
    if (t->state == CIO__DONE) {
        /* Already finished: the result, even with a zero timeout (as
         * asyncio.wait_for does). */
        t->flags |= CIO__T_JOINED;
        return t->result;
    }
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(timeout), 0);
    rc = cio_task_join(t);
    int ex = cio_scope_exit(&sc);
    if (t->flags & CIO__T_JOINED)
        return rc;
    cancel_and_reap(t);
    return ex == -ETIMEDOUT ? -ETIMEDOUT : -ECANCELED;
}

int cio_task_cancel(cio_task *t)
{
    if (t == NULL)
        return -EINVAL;
    if (t->state == CIO__DONE || t->root.cio__cancelled_at != CIO_NEVER)
        return 0;
    cio__loop_update_now(t->loop);
    t->root.cio__cancelled_at = t->loop->now;
    cio__cancel_refresh(t);
    return 0;
}

void cio_task_free(cio_task *t)
{
    if (t == NULL || !(t->flags & CIO__T_HANDLE))
        return;
    t->flags &= ~CIO__T_HANDLE;
    if (t->group) {
        cio__group_child_release(t->group, t);
    } else if (t->state == CIO__DONE) {
        if (!(t->flags & CIO__T_JOINED))
            report_unretrieved(t, "never retrieved");
    } else {
        t->flags |= CIO__T_DETACHED;
    }
    cio__task_unref(t);
}

/* ---- accessors ----------------------------------------------------------- */

cio_task *cio_current(void)
{
    return cio__self();
}

const char *cio_task_name(const cio_task *t)
{
    return t ? task_name((cio_task *)t) : "(null)";
}

int cio_task_set_name(cio_task *t, const char *name)
{
    if (t == NULL || name == NULL)
        return -EINVAL;
    memset(t->name, 0, sizeof t->name);
    strncpy(t->name, name, sizeof t->name - 1);
    if (t->name[0] == '\0')
        t->name[0] = '?';
    return 0;
}

uint64_t cio_task_id(const cio_task *t)
{
    return t ? t->id : 0;
}

bool cio_task_done(const cio_task *t)
{
    return t && t->state == CIO__DONE;
}

int cio_task_result(const cio_task *t, int *result)
{
    if (t == NULL || result == NULL)
        return -EINVAL;
    if (t->state != CIO__DONE)
        return -EAGAIN;
    ((cio_task *)t)->flags |= CIO__T_JOINED;
    *result = t->result;
    return 0;
}

int cio_errorf(int code, const char *fmt, ...)
{
    cio_task *t = cio__self();
    if (t == NULL || fmt == NULL)
        return code;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *msg = cio__strdup(buf);
    if (msg) {
        cio__free(t->errmsg);
        t->errmsg = msg;
    }
    return code;
}

const char *cio_task_errmsg(const cio_task *t)
{
    return t ? t->errmsg : NULL;
}
