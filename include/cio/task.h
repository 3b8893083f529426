/* cio/task.h: tasks, cancel scopes and deadlines, groups, gather, futures,
 * generators.
 *
 * Cancellation (the semantics every suspending call follows):
 * - Cancelling is a request. The cancelled task sees it at its next
 *   suspension point, which returns -ECANCELED. It is level-triggered: every
 *   later suspending call also returns -ECANCELED for as long as the task
 *   stays inside the cancelled scope. Code cleans up and returns the code.
 * - A task cancelled but finishing without suspending keeps its result.
 * - A scope whose deadline passes is cancelled; its exit reports -ETIMEDOUT.
 *   Calls inside it return -ECANCELED like any cancellation.
 * - Shielded scopes (CIO_SCOPE_SHIELD) keep cancellation from outside away
 *   from the code inside them, for cleanup that must suspend.
 * - A suspending call that transfers something (a lock, a permit, a queue
 *   item) never loses it: if the task is cancelled after the transfer was
 *   granted but before it ran, the thing passes to the next waiter (or back
 *   to the object) and the call returns -ECANCELED. A wait that completed
 *   with nothing to hand on (a join, an event, a future) returns its result;
 *   the cancellation surfaces at the next suspension point.
 */
#ifndef CIO_TASK_H
#define CIO_TASK_H

#include <stdbool.h>
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_task cio_task;
typedef struct cio_group cio_group;

/* ---- Tasks --------------------------------------------------------------- */

typedef struct cio_spawn_opts {
    const char *name;   /* copied (up to 31 bytes); NULL: "task-<id>" */
    size_t stack_size;  /* 0: the loop's default; >= CIO_STACK_MIN */
} cio_spawn_opts;

/* Start `fn(arg)` as a new task. It runs when the caller next suspends.
 * With `out` non-NULL the caller owns the handle: join it (cio_task_join or
 * cio_wait_for) and release it with cio_task_free. With `out` NULL the task
 * is detached ("fire and forget"): the loop keeps it alive, cancels it when
 * the run ends, and reports its error if it fails.
 * A plain task is not cancelled when its spawner is; use a group for that.
 * Returns 0; -EINVAL if `fn` is NULL; -ENOMEM; CIO_ENOTASK outside a loop.
 * May be called from the loop's thread outside a task (e.g. a callback).
 * Does not suspend. */
int cio_spawn(cio_task **out, cio_task_fn fn, void *arg);

/* cio_spawn with a name and a stack size. -EINVAL for a stack size below
 * CIO_STACK_MIN. */
int cio_spawn_ex(cio_task **out, cio_task_fn fn, void *arg,
                 const cio_spawn_opts *opts);

/* Wait for `t` to finish and return its result (>= 0, or its error).
 * A task is joined once: a second join returns -EALREADY, a join while
 * another task is joining returns -EBUSY, joining oneself -EDEADLK, a
 * detached or group-owned task -EINVAL. If the caller is cancelled the join
 * returns -ECANCELED and `t` keeps running (rule: plain join does not
 * cancel); the handle is still joinable. Suspends. */
int cio_task_join(cio_task *t);

/* asyncio.wait_for(): join `t`, but if it is not done within `timeout` ns,
 * cancel it, wait for it to exit, and return -ETIMEDOUT. If the caller is
 * cancelled meanwhile, `t` is cancelled and awaited too, and the call
 * returns -ECANCELED. Either way `t` has finished when this returns and
 * counts as joined. -EINVAL for a negative timeout; join errors as
 * cio_task_join. Suspends. */
int cio_wait_for(cio_task *t, int64_t timeout);

/* Request cancellation of `t` (and of the groups it has open, so their
 * children). Returns 0, also when `t` has finished (no effect); -EINVAL for
 * NULL. Does not suspend. */
int cio_task_cancel(cio_task *t);

/* Release the caller's handle. A finished task's error that nobody
 * retrieved (by join) is reported here, like asyncio's "Task exception was
 * never retrieved" (-ECANCELED is not reported). A task still running is
 * detached: it runs on, owned by the loop. NULL is ignored. */
void cio_task_free(cio_task *t);

/* The running task, or NULL outside a task. */
cio_task *cio_current(void);

/* The task's name (never NULL; lives as long as the handle). */
const char *cio_task_name(const cio_task *t);
/* Rename `t` (copied, truncated to 31 bytes). -EINVAL for NULLs. */
int cio_task_set_name(cio_task *t, const char *name);
/* A loop-unique id, counting from 1. 0 for NULL. */
uint64_t cio_task_id(const cio_task *t);
/* true once `t` has returned. */
bool cio_task_done(const cio_task *t);
/* How deep `t`'s stack has been used so far, in bytes (page granularity),
 * for sizing stacks: `t` NULL means the running task. Measured from the
 * stack's resident pages (mincore(2)), so on a stack reused from the pool
 * an earlier task's depth can show through; in debug mode stacks are
 * cleared on reuse, which makes it exact, and a task that used more than
 * three quarters of its stack is reported when it ends. Returns the
 * bytes; -EINVAL once `t` has finished (its stack is gone); CIO_ENOTASK
 * for NULL outside a task; -errno from mincore. Does not suspend. */
long cio_task_stack_used(const cio_task *t);
/* If `t` has finished, store its result in `*result`, count it as
 * retrieved and return 0; -EAGAIN while it runs; -EINVAL for NULLs.
 * Does not suspend. */
int cio_task_result(const cio_task *t, int *result);

/* Set the running task's error text (printf-style, copied) and return
 * `code`, so that `return cio_errorf(-EPROTO, "bad header %d", n);` fails
 * the task with a message. Outside a task the text is dropped. */
int cio_errorf(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The error text set by `t` with cio_errorf, or NULL. */
const char *cio_task_errmsg(const cio_task *t);

/* Let other runnable tasks run, then continue. Returns 0 or -ECANCELED.
 * Suspends. */
int cio_yield(void);

/* Sleep `ns` (0 yields). Returns 0 when the time has passed, -ECANCELED,
 * -EINVAL for a negative duration. Suspends. */
int cio_sleep(int64_t ns);
/* Sleep until the absolute time `deadline`. As cio_sleep; a deadline in the
 * past returns 0 after a checkpoint. */
int cio_sleep_until(int64_t deadline);

/* A cancellation point that does not yield unless the task has used up its
 * budget of consecutive non-suspending calls (then it yields, so a busy
 * task cannot starve the loop). Returns 0 or -ECANCELED. */
int cio_checkpoint(void);

/* -ECANCELED if the running task is cancelled now, else 0. Pure query:
 * never yields. Useful in long computations. */
int cio_cancel_pending(void);

/* Trio's wait_all_tasks_blocked(): return once every other task is waiting
 * (none runnable). Meant for tests. Returns 0, -ECANCELED. Suspends. */
int cio_wait_all_blocked(void);

/* The task tree of the running loop, written to `fd`: every task with its
 * id, name, state, what it waits on (and its deadline), age and spawn
 * site, children indented under the groups that own them (asyncio 3.14's
 * pstree). In debug mode SIGUSR1 writes it to stderr. Returns the number
 * of tasks listed, -ESRCH outside a loop, -errno from write(2). Does not
 * suspend. */
int cio_task_dump(int fd);

/* ---- Cancel scopes and deadlines ----------------------------------------- */

/* A cancel scope lives in the caller's storage (usually its stack) between
 * cio_scope_enter and cio_scope_exit, which must pair up in LIFO order in
 * the same task. The fields are private. */
typedef struct cio_scope {
    struct cio_scope *cio__parent;
    struct cio_task *cio__owner;
    int64_t cio__deadline;     /* CIO_NEVER: none */
    int64_t cio__cancelled_at; /* explicit cancel time, CIO_NEVER: none */
    unsigned cio__flags;
} cio_scope;

#define CIO_SCOPE_SHIELD 1u /* cancellation from outside does not enter */

/* Open a scope with an absolute `deadline` (CIO_NEVER for none) in the
 * running task: asyncio.timeout_at(), Trio's move_on_at(). Every suspending
 * call inside it returns -ECANCELED once the deadline passes.
 * Returns 0; -EINVAL for a NULL scope, a negative deadline or unknown
 * flags; CIO_ENOTASK outside a task. Does not suspend. */
int cio_scope_enter(cio_scope *sc, int64_t deadline, unsigned flags);

/* Close `sc`, which must be the innermost open scope of the running task.
 * Returns -ETIMEDOUT if this scope's deadline expired and that
 * cancellation reached the code inside (a call in it returned -ECANCELED
 * because of it); an enclosing scope that is cancelled too takes
 * precedence (as in Trio and asyncio), and this one passes -ECANCELED
 * through. -ECANCELED if this scope was cancelled with cio_scope_cancel
 * and the code saw it, or if the task is cancelled from outside. 0 if the
 * code inside was not cancelled, also when the deadline passed after its
 * last suspension (as asyncio.timeout). -EINVAL if `sc` is not the
 * innermost open scope (nothing is closed then). Does not suspend. */
int cio_scope_exit(cio_scope *sc);

/* Cancel everything inside `sc` now, including children of groups opened
 * inside it. 0; -EINVAL for NULL. Does not suspend. */
int cio_scope_cancel(cio_scope *sc);

/* Move the deadline of an open scope (asyncio Timeout.reschedule()).
 * 0; -EALREADY if the deadline has already passed (the scope stays
 * expired); -EINVAL for NULL or a negative deadline. Does not suspend. */
int cio_scope_set_deadline(cio_scope *sc, int64_t deadline);

/* ---- Groups (asyncio.TaskGroup, Trio nursery) ---------------------------- */

/* By default the first child to fail (return < 0, other than -ECANCELED)
 * cancels the group: its other children and the code of the task that
 * opened it, from the open up to cio_group_join. COLLECT keeps the others
 * running (gather's return-errors mode, asyncio.wait). */
#define CIO_GROUP_COLLECT 1u

/* Open a group in the running task. Until cio_group_join, the caller's code
 * runs inside the group's cancel scope (so it also sees the group's
 * cancellation) and scopes entered before the open cannot be exited.
 * Returns 0; -EINVAL (NULL, unknown flags); -ENOMEM; CIO_ENOTASK. Does not
 * suspend. */
int cio_group_new(cio_group **out, unsigned flags);

/* Spawn `fn(arg)` into `g`. Children inherit the cancellation of the scopes
 * around the group. `out` may be NULL; a handle given out lives until the
 * caller releases it with cio_task_free or the group is freed, and cannot be
 * joined (the group joins). Returns 0; -EINVAL for NULLs; -ENOMEM;
 * CIO_ECLOSING if the group is cancelling or joined. Does not suspend. */
int cio_group_spawn(cio_group *g, cio_task **out, cio_task_fn fn, void *arg);
int cio_group_spawn_ex(cio_group *g, cio_task **out, cio_task_fn fn,
                       void *arg, const cio_spawn_opts *opts);

/* Cancel every child and the opener's code inside the group. Cancelling a
 * group on purpose is not an error: join then returns 0 unless a child
 * failed. 0; -EINVAL for NULL. Does not suspend. */
int cio_group_cancel(cio_group *g);

enum cio_wait_mode {
    CIO_WAIT_FIRST_COMPLETED = 0,
    CIO_WAIT_FIRST_ERROR = 1,
    CIO_WAIT_ALL_COMPLETED = 2,
};

/* asyncio.wait(): wait until a child has completed (FIRST_COMPLETED), a
 * child has failed or all are done (FIRST_ERROR), or all are done
 * (ALL_COMPLETED), counting children that finished before the call. Does not
 * cancel anyone. Only the task that opened `g` may wait on it (it alone
 * frees it). Returns 0 (also with no children), -ECANCELED, -EINVAL (NULL,
 * unknown mode, not the opener). Suspends. */
int cio_group_wait(cio_group *g, int mode);

/* asyncio.as_completed(): return the next child, spawned with a handle, in
 * completion order; each is returned once. Only the opener may call it.
 * Returns 0 and `*out`, or -ECHILD when none is left to return;
 * -ECANCELED; -EINVAL. Suspends. */
int cio_group_next(cio_group *g, cio_task **out);

/* Close the group: wait for every child to finish. Cancellation of the
 * caller is passed on to the children instead of interrupting the wait, so
 * nothing outlives the call. Returns the first child error (in completion
 * order); else -ECANCELED if the group was cancelled from outside; else 0.
 * A second join returns the same value. -EINVAL for NULL, a group opened
 * by another task, or a scope or group opened inside this one and still
 * open (close those first). Suspends. */
int cio_group_join(cio_group *g);

/* The errors of the children that failed, in completion order. */
size_t cio_group_error_count(const cio_group *g);
/* Error `i` (0-based): returns the code and, when `what` is non-NULL, sets
 * it to "task-name: message" (owned by the group). -EINVAL out of range. */
int cio_group_error(const cio_group *g, size_t i, const char **what);

/* Release the group; joins it first if needed (then it suspends, and an
 * error nobody retrieved is reported). Handles of its children become
 * invalid. NULL is ignored. */
void cio_group_free(cio_group *g);

/* ---- gather and bounded map ---------------------------------------------- */

typedef struct cio_call {
    cio_task_fn fn;
    void *arg;
    int result; /* set by cio_gather */
} cio_call;

#define CIO_GATHER_RETURN_ERRORS 1u

/* asyncio.gather(): run every call concurrently and wait for all of them.
 * Fail-fast (default): the first failure cancels the others, waits for them
 * (nothing outlives the call) and is returned; calls that did not finish
 * get -ECANCELED. RETURN_ERRORS: every call runs to its end and the call
 * returns 0; each result is in calls[i].result. -ECANCELED if the caller is
 * cancelled (children are cancelled and awaited); -EINVAL (NULL calls, a
 * NULL fn, unknown flags), -ENOMEM. The calls run on worker tasks of a
 * group (at most `limit` of them for cio_gather_limit), one after another
 * on each worker.
 * Error texts: in fail-fast mode the error returned carries the text its
 * call gave with cio_errorf to the caller, as if the caller had failed
 * with it (asyncio re-raises the exception itself):
 * cio_task_errmsg(cio_current()) reads it. RETURN_ERRORS keeps codes
 * only; to keep each call's text, spawn the calls in a group with handles
 * and read cio_task_errmsg of each (asyncio.TaskGroup's way).
 * Suspends. */
int cio_gather(cio_call *calls, size_t n, unsigned flags);

/* cio_gather with at most `limit` calls running at once, started in order
 * (a semaphore-bounded fan-out). limit 0 means no limit. */
int cio_gather_limit(cio_call *calls, size_t n, size_t limit, unsigned flags);

/* ---- Futures ------------------------------------------------------------- */

typedef struct cio_future cio_future;
typedef void (*cio_future_cb)(cio_future *f, void *arg);

/* A one-shot result (a pointer, or an error) that tasks can wait for.
 * 0 or -ENOMEM; CIO_ENOTASK outside a loop. */
int cio_future_new(cio_future **out);
/* Complete `f` with `value`, waking every waiter. -EALREADY if already
 * done, -EINVAL for NULL. Does not suspend. */
int cio_future_set_result(cio_future *f, void *value);
/* Complete `f` with the error `err` (< 0). -EINVAL if err >= 0. */
int cio_future_set_error(cio_future *f, int err);
/* Complete `f` with -ECANCELED (asyncio Future.cancel()). */
int cio_future_cancel(cio_future *f);
bool cio_future_done(const cio_future *f);
/* Wait until `f` is done or the absolute `deadline` passes. Returns 0 with
 * `*value` set (value may be NULL), the error it was completed with,
 * -ETIMEDOUT, -ECANCELED, -EINVAL. Any number of tasks may wait.
 * Suspends. */
int cio_future_wait(cio_future *f, int64_t deadline, void **value);
/* Call `cb(f, arg)` once `f` is done (at once if it already is), in the
 * context that completes it; `cb` must not suspend. -ENOMEM, -EINVAL. */
int cio_future_on_done(cio_future *f, cio_future_cb cb, void *arg);
/* Release `f`. -EBUSY (and nothing freed) while tasks wait on it. */
int cio_future_free(cio_future *f);

/* ---- Generators (async generators / async for) --------------------------- */

typedef struct cio_gen cio_gen;
typedef int (*cio_gen_fn)(cio_gen *g, void *arg);

/* Start `fn(g, arg)` as a producer task that hands values to one consumer
 * through cio_gen_yield. 0, -EINVAL, -ENOMEM, CIO_ENOTASK. Does not
 * suspend. */
int cio_gen_new(cio_gen **out, cio_gen_fn fn, void *arg);
/* Producer: hand `value` to the consumer and wait until it asks for the
 * next one. Returns 0; -EPIPE once the consumer closed the generator (stop
 * producing and return); -ECANCELED. Suspends. */
int cio_gen_yield(cio_gen *g, void *value);
/* Consumer: the next value. Returns 0 with `*value`; CIO_EOF when the
 * producer returned >= 0; the producer's error when it failed (once; then
 * CIO_EOF); -ECANCELED (no value is lost: it is returned by the next call).
 * Suspends. */
int cio_gen_next(cio_gen *g, void **value);
/* Consumer: stop early. The producer is cancelled and its pending or next
 * yield returns -EPIPE (other suspending calls -ECANCELED: cleanup that
 * must suspend goes in a shielded scope); waits for the producer to
 * return. Returns its error if it failed with anything but
 * -EPIPE/-ECANCELED and cio_gen_next did not already deliver it, else 0.
 * Suspends. */
int cio_gen_close(cio_gen *g);
/* Close (if needed) and release. NULL is ignored. May suspend. */
void cio_gen_free(cio_gen *g);

#ifdef __cplusplus
}
#endif
#endif
