/* Declarations shared inside src/. Nothing here is public API. */
#ifndef CIO_INTERNAL_H
#define CIO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cio.h"

#if defined(__SANITIZE_ADDRESS__)
#define CIO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIO__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CIO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CIO__TSAN 1
#endif
#endif

#define CIO__LIKELY(x) __builtin_expect(!!(x), 1)
#define CIO__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CIO__CONTAINER(p, type, member) \
    ((type *)(void *)((char *)(p) - offsetof(type, member)))

typedef struct cio_loop cio_loop;

/* ---- allocation (alloc.c): every allocation goes through these ---------- */
void *cio__malloc(size_t n);
void *cio__calloc(size_t n, size_t size);
void *cio__realloc(void *p, size_t n);
void cio__free(void *p);
char *cio__strdup(const char *s);
/* Live allocations made through cio__malloc & co. (for leak checks). */
long cio__alloc_live(void);
/* Make the nth allocation from now fail (1 = the next); 0 disarms. */
void cio__alloc_fail_at(long nth);

/* ---- reports (error.c) --------------------------------------------------- */
void cio__report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- context switch (coro_*.S / coro_ucontext.c) ------------------------- */
#ifdef CIO_UCONTEXT
#include <ucontext.h>
typedef struct cio__ctx {
    ucontext_t uc;
} cio__ctx;
#else
typedef struct cio__ctx {
    void *sp;
} cio__ctx;
#endif
/* Prepare `c` to start `entry()` on the stack [lo, lo+size). */
void cio__ctx_make(cio__ctx *c, void *lo, size_t size, void (*entry)(void));
/* Save the current context into `from`, resume `to`. */
void cio__ctx_switch(cio__ctx *from, cio__ctx *to);
/* Save the current context into `from` (as cio__ctx_switch does) and call
 * entry(arg) on the stack [lo, lo+size), whose context is `self`. If entry
 * returns, `from` resumes: cio__ctx_start returns. entry may instead leave
 * for good by switching away; `from` then resumes when switched to. A task
 * that ends without ever suspending thus costs a call and a return, not
 * two full switches (whose returns the CPU cannot predict). */
void cio__ctx_start(cio__ctx *from, cio__ctx *self, void *lo, size_t size,
                    void (*entry)(void *), void *arg);

/* ---- stacks (stack.c) ---------------------------------------------------- */
typedef struct cio__stack_pool cio__stack_pool;
typedef struct cio__stack {
    void *lo;        /* lowest usable byte (above the guard) */
    size_t size;     /* usable bytes */
    /* The slab of a burst, whose top pages a helper thread may not have
     * made resident yet; NULL once the stack is known to be in use. */
    void *burst;
    unsigned vg_id;  /* valgrind stack id */
    bool canary;     /* no guard page: a canary word sits at lo */
} cio__stack;
int cio__stack_pool_init(cio__stack_pool **out);
void cio__stack_pool_fini(cio__stack_pool *p);
/* Take a stack of at least `size` usable bytes. 0 or -ENOMEM. */
int cio__stack_get(cio__stack_pool *p, size_t size, cio__stack *out);
void cio__stack_put(cio__stack_pool *p, const cio__stack *s);
/* Before the first run on `s` (its `burst` set): make the top pages of
 * the rest of its slab resident, unless the helper has started on them. */
void cio__stack_first_use(cio__stack *s);
/* Bytes of `s` in use at the deepest point so far (resident pages), or
 * -errno. */
long cio__stack_used(const cio__stack *s);
/* Drop the pages of `s` (debug mode, before pooling it), so the next
 * task's cio__stack_used starts from zero. */
void cio__stack_forget(const cio__stack *s);
#define CIO__STACK_CANARY UINT64_C(0xC10C10DEADC0FFEE)
/* False if the stack's canary word (if it has one) was overwritten. */
static inline bool cio__stack_canary_ok(const cio__stack *s)
{
    return !s->canary || *(const uint64_t *)s->lo == CIO__STACK_CANARY;
}
size_t cio__stack_pooled(const cio__stack_pool *p);
uint64_t cio__stack_mapped(const cio__stack_pool *p);
/* Of the stacks mapped, those whose top pages a helper thread made
 * resident (stack.c). */
uint64_t cio__stack_populated(const cio__stack_pool *p);
/* Tests: wait until the helper is through every slab queued for `p`;
 * use the helper always (1), never (-1), or where the loop's thread may
 * run on more than one CPU (0, the default); or queue slabs for it and
 * have it take none (2: first runs claim them all; do not settle then). */
void cio__stack_pool_settle(cio__stack_pool *p);
void cio__stack_helper_mode(int mode);
size_t cio__page_size(void);
/* Tests: give new stacks canaries instead of guard pages. */
void cio__stack_force_canary(void);

/* ---- timers (timer.c): a 4-ary min-heap ordered by (when, seq) ----------- */
typedef struct cio__timer cio__timer;
typedef void (*cio__timer_fn)(cio_loop *l, cio__timer *t);
struct cio__timer {
    int64_t when;
    uint64_t seq;
    size_t idx; /* 1-based heap slot; 0 = not armed */
    cio__timer_fn fire;
};
typedef struct cio__heap_ent {
    int64_t when;
    uint64_t seq;
    cio__timer *t;
} cio__heap_ent;
typedef struct cio__heap {
    cio__heap_ent *v;
    size_t n, cap;
    uint64_t seq;
} cio__heap;
int cio__heap_push(cio__heap *h, cio__timer *t);
void cio__heap_remove(cio__heap *h, cio__timer *t);
static inline cio__timer *cio__heap_top(const cio__heap *h)
{
    return h->n ? h->v[0].t : NULL;
}
void cio__heap_fini(cio__heap *h);

/* ---- wait queues --------------------------------------------------------- */
typedef struct cio__waiter {
    struct cio__waiter *prev, *next;
    cio_task *task;
    void *value;  /* what a waker handed over */
    int granted;  /* a waker completed this wait */
} cio__waiter;

static inline void cio__waitq_push(cio__waitq *q, cio__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}
static inline void cio__waitq_remove(cio__waitq *q, cio__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
}
static inline cio__waiter *cio__waitq_pop(cio__waitq *q)
{
    cio__waiter *w = q->head;
    if (w) {
        /* The head: its prev is NULL already. */
        q->head = w->next;
        if (w->next)
            w->next->prev = NULL;
        else
            q->tail = NULL;
        w->next = NULL;
    }
    return w;
}

/* ---- tasks --------------------------------------------------------------- */
enum cio__task_state {
    CIO__RUNNABLE = 1,
    CIO__RUNNING,
    CIO__WAITING,
    CIO__DONE,
};

/* What a waiting task waits on, for reports and the task dump. */
enum cio__wait_kind {
    CIO__W_NONE = 0,
    CIO__W_SLEEP,
    CIO__W_JOIN,
    CIO__W_GROUP,
    CIO__W_MUTEX,
    CIO__W_EVENT,
    CIO__W_COND,
    CIO__W_SEM,
    CIO__W_BARRIER,
    CIO__W_QUEUE_GET,
    CIO__W_QUEUE_PUT,
    CIO__W_QUEUE_JOIN,
    CIO__W_FUTURE,
    CIO__W_GEN,
    CIO__W_FD,
    CIO__W_BLOCKED,
    CIO__W_THREAD,
    CIO__W_SIGNAL,
    CIO__W_POOL,
    CIO__W_LAST = CIO__W_POOL,
};
const char *cio__wait_kind_name(int kind);

#define CIO__PARK_UNINTERRUPTIBLE 1u
/* Consecutive non-suspending calls before a checkpoint yields. */
#define CIO__BUDGET 128
/* Private scope flag: the scope's cancellation reached the code in it. */
#define CIO__SCOPE_DELIVERED 0x100u
/* Private scope flag: counted in the loop's deadline_scopes. */
#define CIO__SCOPE_TIMED 0x200u

/* task flags */
#define CIO__T_HANDLE 0x01u    /* a caller holds a handle */
#define CIO__T_DETACHED 0x02u  /* owned by the loop */
#define CIO__T_JOINED 0x04u    /* result retrieved */
#define CIO__T_MAIN 0x08u
#define CIO__T_IN_DONE 0x10u   /* on its group's done list */
#define CIO__T_STARTED 0x20u   /* its code has begun to run */

#define CIO__NAME_MAX 32

struct cio_task {
    cio__ctx ctx;
    cio_loop *loop;
    /* The context that started it, while it has not suspended since: when
     * it ends, that context resumes by a plain return (cio__ctx_start). */
    cio__ctx *starter;
    cio_task *runq_next;
    cio_task *all_prev, *all_next; /* loop's list of live tasks */
    int state;
    unsigned flags;
    int result;
    int refs;
    cio_task_fn fn;
    void *arg;
    cio__stack stack;
    cio_scope root;   /* the task's own cancel scope */
    cio_scope *scope; /* innermost open scope */
    cio_group *group; /* owning group, or NULL */
    /* A recycled struct starts with the fields from here up to `id`
     * zeroed; spawn sets the others (task_reset in task.c). */
    cio_task *g_prev, *g_next; /* in the group's children list */
    cio_task *g_done_next;     /* in the group's completion queue */
    cio_group *groups;         /* groups this task has open, innermost first */
    cio_mutex *held;           /* mutexes held */
    cio_task *joiner;
    cio__timer timer;
    int64_t call_deadline;
    int wake_result;
    unsigned park_flags;
    int budget;
    int timed_scopes; /* its open scopes with a deadline */
    /* Cached cancellation state of its scope chain, valid while
     * cc_epoch == loop->cancel_epoch (which starts at 1). Whatever changes
     * the task's chain (a scope or group opened or closed) sets cc_epoch
     * to 0. */
    uint64_t cc_epoch;
    int64_t cc_deadline; /* nearest deadline on the chain */
    int64_t cc_until;    /* cc_deadline, or INT64_MIN if cancelled */
    /* What the task waits on, and how to take it off when interrupted. */
    int wait_kind;
    const void *wait_obj;
    void (*unlink)(cio_task *t);
    /* Like unlink, but may refuse (false: the wait cannot be interrupted
     * now; the task stays parked until its waker wakes it). */
    bool (*unlink_try)(cio_task *t);
    cio__waitq *wait_q;
    cio__waiter *wait_node;
    struct cio__fdw *fdw; /* the fd watch of a task waiting on an fd */
    char *errmsg;
    /* Spawn sets these (run_start: each step in debug mode). */
    uint64_t id;
    void *spawn_site;
    int64_t spawned_at;
    int64_t run_start; /* debug: when it last started running */
#ifdef CIO__TSAN
    void *tsan_fiber;
#endif
    char name[CIO__NAME_MAX];
};

/* The loop running on this thread, or NULL. Read by nearly every call:
 * the initial-exec model makes that one load relative to %fs in the
 * shared library too, instead of a call to __tls_get_addr. */
extern _Thread_local cio_loop *cio__loop
    __attribute__((tls_model("initial-exec")));
/* Called on the loop's thread when its run has ended, just before the loop
 * is freed (no task is left; what is posted to it later is dropped). Set
 * by cio_run_multi (xloop.c) for the loops it runs. */
extern _Thread_local void (*cio__loop_close_hook)(cio_loop *l);

/* The running task or NULL. */
static inline cio_task *cio__self(void);

/* Suspend the running task until woken or interrupted. The caller has
 * put the task where a waker finds it and set t->unlink (or wait_q and
 * wait_node) so that an interruption can take it off. `deadline` (absolute,
 * CIO_NEVER for none) interrupts the wait with -ETIMEDOUT; the deadlines of
 * the task's scopes interrupt it with -ECANCELED, as does a cancellation,
 * unless `flags` has CIO__PARK_UNINTERRUPTIBLE. Returns what the waker
 * passed to cio__wake. */
int cio__park(cio_task *t, int kind, const void *obj, int64_t deadline,
              unsigned flags);
/* Arm (or disarm) a waiting task's timer for the nearest of its call's
 * deadline and its scopes' deadlines. */
void cio__task_arm(cio_task *t);
/* Park on a wait queue with a waiter on the caller's stack; w->value is
 * left as the caller set it (a putter's item, say). */
static inline int cio__park_q(cio_task *t, cio__waitq *q, cio__waiter *w,
                              int kind, const void *obj, int64_t deadline,
                              unsigned flags);
/* Make a waiting task runnable; its cio__park returns `result`. */
static inline void cio__wake(cio_task *t, int result);
/* Pop the first waiter of `q`, hand it `value` and wake it. Returns the
 * woken task or NULL if `q` is empty. */
cio_task *cio__waitq_grant(cio__waitq *q, void *value);
/* Make a runnable task (new or yielding) run in a later turn. */
static inline void cio__schedule(cio_task *t);
/* -ECANCELED if `t` is cancelled now (by a scope, its group, or itself);
 * the code of `t` is seeing it (scope exits then report it). */
static inline int cio__cancelled(const cio_task *t);
/* Refresh t's cached scope-chain state (cc_*) from its scopes. */
void cio__chain_state(cio_task *t);
/* Make sure t's cached scope-chain state is current. */
static inline void cio__chain_sync(cio_task *t);
/* The slow half of cio__cancelled: the code of t sees a cancellation. */
int cio__cancel_seen(cio_task *t);
static inline void cio__cancel_epoch_bump(cio_loop *l);
/* A cancellation point with the coop budget. */
static inline int cio__checkpoint(cio_task *t);
/* The slow half of cio__checkpoint: the budget is spent, yield. */
int cio__budget_yield(cio_task *t);
/* Wake the tasks that a cancellation under `t` reached, and re-arm the
 * timers of those whose deadlines moved. */
void cio__cancel_refresh(cio_task *t);
/* Resolve the running task for a public call that must be in a task. */
#define CIO__SELF_OR_RETURN(t)          \
    cio_task *t = cio__self();          \
    if (CIO__UNLIKELY(t == NULL))       \
        return CIO_ENOTASK

/* Free a task struct whose last reference went (to the loop's cache). */
void cio__task_dispose(cio_task *t);
/* Loop side of a finished task: recycle its stack, drop its run ref. */
void cio__task_release_stack(cio_task *t);
/* At loop close: free every task struct left. */
void cio__task_dispose_all(cio_loop *l);
static inline void cio__task_unref(cio_task *t)
{
    if (--t->refs == 0)
        cio__task_dispose(t);
}
int cio__spawn(cio_task **out, cio_group *g, cio_task_fn fn, void *arg,
               const cio_spawn_opts *opts, void *site);
/* Join `t` without being interruptible (for wait_for, gen close). */
int cio__join_quiet(cio_task *t);

void cio__task_refresh(cio_task *t);
/* -ECANCELED if a scope from `s` outwards (to a shield) is cancelled. */
int cio__scope_chain_cancelled(const cio_scope *s, int64_t now);

/* groups (group.c) */
cio_group *cio__group_next_open(const cio_group *g);
cio_task *cio__group_children(const cio_group *g);

/* debug.c: the guard-page report in debug mode. */
void cio__debug_init(cio_loop *l);
/* Debug mode: objects holding a descriptor (streams, servers), listed
 * at loop close when still open, with the task that opened them. */
typedef struct cio__tracked {
    struct cio__tracked *prev, *next;
    const char *kind;
    int fd;
    uint64_t task_id;
    void *site; /* the opening task's spawn site */
    char task[32];
    bool on;
} cio__tracked;
/* Start / stop tracking (no-ops outside debug mode). */
void cio__track(cio__tracked *tr, const char *kind, int fd);
void cio__untrack(cio__tracked *tr);
/* At loop close: report what is still tracked. */
void cio__report_tracked(cio_loop *l);

/* "libc.so.6(usleep+0x45)", "prog(+0x387f)" or "0x..." for a code
 * address in buf; false when no loaded object holds it. */
bool cio__symbolize(uintptr_t addr, char *buf, size_t size);
/* watchdog.c: the blocked-loop watchdog thread of debug mode. */
void cio__watchdog_start(cio_loop *l);
void cio__watchdog_stop(cio_loop *l);
void cio__watchdog_enter(cio_loop *l, cio_task *t);
void cio__watchdog_leave(cio_loop *l);
void cio__group_child_done(cio_group *g, cio_task *t);
void cio__group_close_all(cio_task *t); /* at task exit: join what is open */
void cio__group_refresh(cio_group *g);  /* wake / re-arm its descendants */
void cio__group_child_release(cio_group *g, cio_task *t);

/* mutexes (sync.c) */
void cio__mutex_break_all(cio_task *t);

/* loop.c: cancel every task; `force` also interrupts shielded and
 * uninterruptible waits. */
void cio__cancel_all(cio_loop *l, bool force);

/* ---- backend ------------------------------------------------------------- */
typedef struct cio__backend cio__backend;

/* A one-shot watch of an fd for readiness. `ready` runs in the loop when
 * the fd is ready (events: CIO_READABLE/CIO_WRITABLE), or with
 * CIO__EV_CLOSED when cio_close() closes the fd under it. */
#define CIO__EV_CLOSED 0x100u
/* In a watch's events: the caller has just seen EAGAIN or a short
 * transfer in those directions, and the fd is closed through cio_close().
 * A backend that keeps registrations then waits for the next edge without
 * a system call. */
#define CIO__EV_EDGE 0x200u
typedef struct cio__fdw {
    void (*ready)(struct cio__fdw *w, unsigned events);
    int fd;
    unsigned events;
    void *data;
    bool internal; /* the loop's own (eventfd, signalfd): not counted as
                    * work that keeps the loop alive */
    void *bslot;   /* backend private */
} cio__fdw;

/* A completion-based operation (io_uring). The task that submits it parks
 * until its completion arrives, even when cancelled: cancelling asks the
 * kernel to stop it, and the buffer is the caller's again only once the
 * completion is in. */
enum cio__op_kind {
    CIO__OP_RECV,
    CIO__OP_SEND,
    CIO__OP_ACCEPT,
    CIO__OP_CONNECT,
    CIO__OP_READ,  /* read(2)/write(2) at the current position: pipes */
    CIO__OP_WRITE,
    /* File system calls (file = true): path in `path`, second path in
     * `path2`, flags in `flags`, mode in `mode`; STATX fills `buf` (a
     * struct statx). */
    CIO__OP_OPEN,
    CIO__OP_CLOSE,
    CIO__OP_FSYNC,
    CIO__OP_STATX,
    CIO__OP_UNLINK,
    CIO__OP_RENAME,
    CIO__OP_MKDIR,
    /* Multishot accept: one submission, a completion per connection
     * (each with `more` set while the operation stays armed), for an
     * operation with `done`. */
    CIO__OP_ACCEPT_MULTI,
    /* Multishot receive into the backend's provided buffers: each
     * completion with data points `buf` at it (valid only during
     * `done`; the buffer goes back to the kernel when `done` returns). */
    CIO__OP_RECV_MULTI,
    CIO__OP_COUNT,
};
typedef struct cio__op {
    int kind;
    int fd;
    void *buf;
    size_t len;
    int64_t off; /* READ/WRITE: file offset, -1 for the current position */
    bool file;   /* a regular file: several may be in flight on one fd */
    int flags;
    struct sockaddr *addr; /* connect: target; accept: peer out */
    socklen_t addrlen;     /* connect: length; accept: in/out */
    const char *path, *path2; /* file system calls */
    unsigned mode;
    int result;
    bool cancel_sent;
    bool closed; /* cio_close() stopped it: report -EBADF */
    bool more;   /* multishot: more completions will follow this one */
    /* SEND: set by the submitter when the buffer may go zero-copy (it is
     * cio's own); the backend clears it unless it does so. A zero-copy
     * SEND completes once the kernel let go of the buffer. */
    bool zc;
    cio_task *task;
    /* Set for an operation no task waits on: called at completion. */
    void (*done)(struct cio__op *op);
} cio__op;

/* Count a completion operation in the loop's statistics. */
static inline void cio__count_op(cio_stats *st, int kind)
{
    switch (kind) {
    case CIO__OP_RECV:
    case CIO__OP_RECV_MULTI:
        st->ops_recv++;
        break;
    case CIO__OP_SEND:
        st->ops_send++;
        break;
    case CIO__OP_ACCEPT:
    case CIO__OP_ACCEPT_MULTI:
        st->ops_accept++;
        break;
    case CIO__OP_CONNECT:
        st->ops_connect++;
        break;
    case CIO__OP_READ:
        st->ops_read++;
        break;
    case CIO__OP_WRITE:
        st->ops_write++;
        break;
    }
}

typedef struct cio__backend_ops {
    const char *name;
    int (*init)(cio_loop *l, cio__backend **out);
    void (*fini)(cio__backend *b);
    /* Wait up to `timeout` ns (0: do not block; -1: no limit) for events and
     * run the watches they concern. Returns the number of events or
     * -errno. */
    int (*poll)(cio__backend *b, int64_t timeout);
    /* Start a one-shot watch. -EBUSY if another watch holds one of the
     * directions on that fd; -errno from the kernel. */
    int (*watch)(cio__backend *b, cio__fdw *w);
    /* Stop a watch that has not fired. */
    void (*unwatch)(cio__backend *b, cio__fdw *w);
    /* `fd` is about to be closed: fire its watches with CIO__EV_CLOSED and
     * forget it. */
    void (*closing)(cio__backend *b, int fd);
    /* Number of watches and operations in progress. */
    size_t (*waiting)(const cio__backend *b);
    /* Completion-based operations, or NULL. submit: 0, or -ENOTSUP when the
     * kernel lacks that operation (then the caller waits for readiness and
     * does it itself). cancel: ask the kernel to stop it; the completion
     * still arrives. */
    int (*submit)(cio__backend *b, cio__op *op);
    void (*cancel)(cio__backend *b, cio__op *op);
    /* Whether submit takes operations of `kind` on this kernel. */
    bool (*supports)(const cio__backend *b, int kind);
    /* Backends that keep per-fd registrations (epoll), else NULL. opened:
     * `fd` is a new file (socket, accepted connection, stream), so what
     * was known of its number is stale. ready_take: clear `events` from
     * the readiness seen on `fd` since its last drain and return the ones
     * that were set; an fd the backend knows nothing of counts as ready. */
    void (*opened)(cio__backend *b, int fd);
    unsigned (*ready_take)(cio__backend *b, int fd, unsigned events);
} cio__backend_ops;
extern const cio__backend_ops cio__backend_epoll;
#ifdef CIO_HAVE_URING
extern const cio__backend_ops cio__backend_uring;
#endif
/* Complete a submitted operation (called by the backend). */
void cio__op_complete(cio__op *op, int result);
/* Run `op` to completion on the backend if it can, else return -ENOTSUP.
 * A checkpoint first. Suspends. */
ssize_t cio__op_run(cio__op *op);
/* read(2) / write(2) on a non-blocking fd that is not a socket (a pipe),
 * waiting as needed; write never raises SIGPIPE (-EPIPE instead).
 * Suspend. */
ssize_t cio__read(int fd, void *buf, size_t n);
ssize_t cio__write(int fd, const void *buf, size_t n);
/* write(2) without waiting and without SIGPIPE: count, -EAGAIN, -errno. */
ssize_t cio__write_now(int fd, const void *buf, size_t n);

/* Park the running task until `fd` is ready for `events`: returns the
 * ready events, -EBADF if the fd was closed under it, -ECANCELED,
 * -ETIMEDOUT at `deadline`. No checkpoint. */
int cio__fd_wait(cio_task *t, int fd, unsigned events, int64_t deadline);
/* `fd` is a new file made by cio (socket, accept, stream): tell the
 * backend. Does not suspend. */
void cio__fd_opened(int fd);
/* A transfer on `fd` (closed through cio_close) in direction `events`
 * came back short: readiness seen before it is stale. Does not suspend. */
void cio__fd_drained(int fd, unsigned events);
/* After cio__fd_drained: wait until `fd` is ready again, or return at once
 * when an edge came since (no system call on epoll). The ready events,
 * -EBADF, -ECANCELED, -ETIMEDOUT. A checkpoint. Suspends. */
int cio__fd_wait_drained(int fd, unsigned events);
/* A non-blocking attempt: a result, or -EAGAIN to wait and retry. */
typedef ssize_t (*cio__try_fn)(int fd, void *ctx);
/* Checkpoint, then run `fn` until it does not say -EAGAIN, waiting for
 * `dir` readiness of `fd` in between (epoll style: try first). */
ssize_t cio__io(int fd, unsigned dir, cio__try_fn fn, void *ctx);

/* ---- stream transports (stream.c) ---------------------------------------- */
/* A stream whose bytes go through something other than its fd (TLS): the
 * stream keeps its read buffer and its reading calls, and asks the
 * transport for bytes and to carry writes. Each hook gets `impl`. */
typedef struct cio__stream_transport {
    /* Receive up to `n` bytes into `buf`: a count (> 0), 0 at end of
     * stream, or < 0 (-ECANCELED consumes nothing). Suspends. */
    ssize_t (*recv)(void *impl, void *buf, size_t n);
    /* Queue `n` bytes for sending: 0 or < 0. Does not suspend. */
    int (*send)(void *impl, const void *buf, size_t n);
    /* Bytes queued and not yet sent. */
    size_t (*pending)(const void *impl);
    /* Wait until at most `target` bytes are queued. Suspends. */
    int (*wait_sent)(void *impl, size_t target);
    /* End the sending side (flushing first). Suspends. */
    int (*write_eof)(void *impl);
    /* The stream is being closed (once); `busy` says another task is
     * suspended in one of its calls and must be woken. Suspends. */
    int (*close)(void *impl, bool busy);
    /* Release `impl`, when the stream's memory goes. Does not suspend. */
    void (*free)(void *impl);
} cio__stream_transport;

/* A stream over transport `tr` (which gets `impl`); `fd` is what
 * cio_stream_fd reports. On failure `impl` is left to the caller. */
int cio__stream_open_transport(cio_stream **out, int fd,
                               const cio__stream_transport *tr, void *impl,
                               const cio_stream_opts *opts);
/* The stream's transport impl if it uses `tr`, else NULL. */
void *cio__stream_transport_impl(const cio_stream *s,
                                 const cio__stream_transport *tr);
/* Wait until at most `target` bytes are queued on `s`. Suspends. */
int cio__stream_wait_sent(cio_stream *s, size_t target);
/* The bytes buffered for reading on `s`, in `*data`, without a
 * checkpoint (consume them with cio_stream_consume). Does not suspend. */
size_t cio__stream_rdata(const cio_stream *s, const void **data);

/* ---- calls from other threads (loop.c) ----------------------------------- */
typedef struct cio__remote {
    struct cio__remote *next;
    void (*run)(struct cio__remote *r);  /* on the loop thread */
    void (*drop)(struct cio__remote *r); /* the loop closed first */
} cio__remote;
/* Queue `r` for `l` and wake it. -ESHUTDOWN if `l` is closing.
 * Thread-safe. */
int cio__remote_post(cio_loop *l, cio__remote *r);
#define CIO__REMOTE_CLOSED ((cio__remote *)(uintptr_t)1)

/* executor.c */
typedef struct cio_pool cio_pool;
void cio__pools_fini(cio_loop *l);

/* dns.c: free the loop's resolver (before the backend closes). */
void cio__dns_fini(cio_loop *l);

/* signal.c */
int cio__signals_init(cio_loop *l, bool handle_default);
/* The loop thread's signal mask as cio set it (for the ucontext switch). */
#include <signal.h>
extern _Thread_local sigset_t cio__sigmask;
extern _Thread_local bool cio__sigmask_known;
void cio__signals_fini(cio_loop *l);

/* ---- loop ---------------------------------------------------------------- */
#include <pthread.h>
#include <signal.h>
#define CIO__NSIG 65
struct cio_loop {
    cio__ctx ctx; /* the loop's own context (the thread's stack) */
    cio_task *current;
    cio_task *runq_head, *runq_tail;
    cio_task *tasks; /* all live tasks */
    cio__heap timers;
    int64_t now;
    int clock;
    int debug;
    size_t stack_size;
    int64_t slow_step;
    struct cio__watchdog *watchdog; /* debug mode */
    struct cio__tracked *tracked;   /* debug mode: open streams, servers */
    cio__stack_pool *stacks;
    cio_task *free_tasks; /* recycled task structs */
    size_t free_tasks_n;
    const cio__backend_ops *bops;
    cio__backend *backend;
    cio__waitq blocked_waiters; /* cio_wait_all_blocked */
    cio_task *main;
    cio_task *dead; /* finished task whose stack is still to release */
    uint64_t next_id;
    long external; /* wakeups promised from outside the loop */
    uint64_t poll_mark; /* stats.switches at the last poll */
    long closing_ops; /* operations of closed objects still in flight */
    /* Operations in flight that no task waits on (a stream's multishot
     * receive between reads): not work that could wake a task, so the
     * backend leaves them out of its `waiting` count. */
    long idle_ops;
    unsigned chain_left; /* direct task-to-task switches left this turn */
    long deadline_scopes; /* open scopes with a deadline */
    /* Bumped whenever a scope is cancelled, a deadline moves or a chain is
     * rewired: tasks' cached cancellation states are then stale. */
    uint64_t cancel_epoch;
    /* Tests: call park_hook(park_hook_arg) at the park_hook_count-th
     * suspension of a task other than main (0: off). */
    long park_hook_count;
    void (*park_hook)(void *arg);
    void *park_hook_arg;
    int shutting_down;
    int deadlocked;
    cio_stats stats;
    int64_t started_mono; /* CLOCK_MONOTONIC at loop creation */
    void *thread_stack_lo;
    size_t thread_stack_size;
    /* Calls from other threads: an eventfd wakes the loop. */
    int efd;
    cio__fdw ewatch;
    /* Posts from other threads: a lock-free stack, newest first, or
     * CIO__REMOTE_CLOSED once the loop no longer takes any. */
    _Atomic(cio__remote *) rposts;
    _Atomic int rwriters; /* posters between their push and last touch */
    /* Executor pools (built-in ones by kind). */
    cio_pool *pools[3];
    /* The resolver (src/net/dns.c), made at the first lookup. */
    struct cio__dns *dns;
    /* Signals. */
    int sfd;
    cio__fdw swatch;
    sigset_t caught;
    sigset_t old_mask;
    bool owns_default_signals;
    bool sig_inited;
    unsigned long sig_pending[CIO__NSIG];
    cio__waitq sig_waiters[CIO__NSIG];
    int signalled;
    int64_t shutdown_grace;
    cio__timer grace_timer;
#ifdef CIO__TSAN
    void *tsan_fiber;
#endif
};

static inline void cio__cancel_epoch_bump(cio_loop *l)
{
    l->cancel_epoch++;
}

static inline cio_task *cio__self(void)
{
    cio_loop *l = cio__loop;
    return l ? l->current : NULL;
}

static inline void cio__schedule(cio_task *t)
{
    cio_loop *l = t->loop;
    t->state = CIO__RUNNABLE;
    t->runq_next = NULL;
    if (l->runq_tail)
        l->runq_tail->runq_next = t;
    else
        l->runq_head = t;
    l->runq_tail = t;
}

static inline void cio__wake(cio_task *t, int result)
{
    if (t->state != CIO__WAITING)
        return;
    t->wake_result = result;
    t->unlink = NULL;
    t->unlink_try = NULL;
    t->wait_q = NULL;
    t->wait_node = NULL;
    cio__schedule(t);
}

/* Queue `t` on `q` through `w`, where a waker or an interruption finds
 * it (the first half of cio__park_q). */
static inline void cio__wait_on(cio_task *t, cio__waitq *q, cio__waiter *w)
{
    w->task = t;
    w->granted = 0;
    cio__waitq_push(q, w);
    t->wait_q = q;
    t->wait_node = w;
    t->unlink = NULL;
}

static inline int cio__park_q(cio_task *t, cio__waitq *q, cio__waiter *w,
                              int kind, const void *obj, int64_t deadline,
                              unsigned flags)
{
    cio__wait_on(t, q, w);
    return cio__park(t, kind, obj, deadline, flags);
}

static inline void cio__chain_sync(cio_task *t)
{
    if (CIO__UNLIKELY(t->cc_epoch != t->loop->cancel_epoch))
        cio__chain_state(t);
}

static inline int cio__cancelled(const cio_task *ct)
{
    cio_task *t = (cio_task *)ct;
    cio__chain_sync(t);
    if (CIO__LIKELY(t->cc_until > t->loop->now))
        return 0;
    return cio__cancel_seen(t);
}

static inline int cio__checkpoint(cio_task *t)
{
    if (CIO__UNLIKELY(cio__cancelled(t)))
        return -ECANCELED;
    if (CIO__UNLIKELY(--t->budget <= 0))
        return cio__budget_yield(t);
    return 0;
}

/* Switch away from the running task (its state set by the caller): to
 * the next runnable task, or to the loop. Returns when it runs again. */
void cio__task_suspend(cio_task *t);
/* First thing a new task does: finish the switch that started it. */
void cio__task_started(cio_loop *l);
/* The finished task `t` (state CIO__DONE) leaves for good. Returns only
 * when the context that started `t` runs next: the task's entry function
 * then returns into cio__ctx_start. */
void cio__task_end(cio_task *t);
/* The entry function of every task's stack (task.c). */
void cio__task_main(void *arg);
/* Update l->now from the clock (no-op on the virtual clock). */
void cio__loop_update_now(cio_loop *l);
void cio__timer_arm(cio_loop *l, cio__timer *t, int64_t when);
void cio__timer_disarm(cio_loop *l, cio__timer *t);

/* Private glue for tests (tests/). */
int cio__loop_check(void);

#endif
