/* cio/exec.h: the executor (blocking code on threads), calls between
 * threads and loops, and signals.
 *
 * Thread safety: only the functions ending in _threadsafe may be called
 * from a thread other than the loop's. */
#ifndef CIO_EXEC_H
#define CIO_EXEC_H

#include <stdbool.h>
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Executor (run_in_executor / to_thread) ------------------------------ */

/* Thread pools are bulkheads: separate pools for blocking DNS, files and
 * user work, so a slow resolver never starves file I/O. Each loop has the
 * three built-in pools below, started lazily; more can be made. */
typedef struct cio_pool cio_pool;

enum cio_pool_kind {
    CIO_POOL_DEFAULT = 0, /* cio_to_thread; max(4, 2 x CPUs) threads */
    CIO_POOL_FILES = 1,   /* file operations on the epoll backend; 4 */
    CIO_POOL_DNS = 2,     /* getaddrinfo when there is no async resolver; 4 */
};

/* The running loop's built-in pool `kind`, or NULL outside a loop or for
 * an unknown kind. Lives as long as the loop. */
cio_pool *cio_pool_builtin(int kind);

/* A pool of up to `threads` threads (started on demand) with at most
 * `max_queue` jobs waiting (0: no limit). Belongs to the running loop;
 * free it before the loop ends. 0, -EINVAL, -ENOMEM, CIO_ENOTASK. */
int cio_pool_new(cio_pool **out, unsigned threads, size_t max_queue);
/* Stop the pool's threads once their jobs are done and free it. -EBUSY
 * (nothing freed) while jobs are queued or running. NULL gives 0. */
int cio_pool_free(cio_pool *p);

/* asyncio.to_thread(): run `fn(arg)` on a thread of the default pool; the
 * calling task waits, the loop does not. Returns fn's result.
 * Cancellation: a job still queued is removed and the call returns
 * -ECANCELED at once; a running job cannot be stopped from outside, so the
 * call waits for it (cio_thread_cancelled() tells the job to stop early)
 * and returns its result. `arg` may point into the caller's stack: the job
 * is over when this returns. -EINVAL, -EAGAIN (queue full), CIO_ENOTASK.
 * Suspends. */
int cio_to_thread(cio_task_fn fn, void *arg);
/* cio_to_thread on pool `p`. */
int cio_to_thread_pool(cio_pool *p, cio_task_fn fn, void *arg);
/* Inside a job: true once the task waiting for it was cancelled (Trio's
 * from_thread.check_cancelled). false outside a job. Thread-safe. */
bool cio_thread_cancelled(void);

/* ---- Between threads ----------------------------------------------------- */

typedef struct cio_loop cio_loop;

/* The loop running on this thread, or NULL. The pointer is valid until
 * that loop's cio_run returns. */
cio_loop *cio_loop_current(void);

/* loop.call_soon_threadsafe(): run `fn(arg)` on `l`'s thread, soon, outside
 * any task (it may spawn tasks; it must not suspend). 0, -EINVAL, -ENOMEM,
 * -ESHUTDOWN if `l` is closing. Thread-safe; does not block. */
int cio_call_soon_threadsafe(cio_loop *l, void (*fn)(void *arg), void *arg);

/* asyncio.run_coroutine_threadsafe(...).result(): run `fn(arg)` as a task
 * on `l` and block the calling thread (not a loop thread) until it
 * returns; its result goes in `*result`. 0; -EDEADLK when called on `l`'s
 * own thread; -EINVAL; -ENOMEM; -ESHUTDOWN. Thread-safe; blocks. */
int cio_run_threadsafe(cio_loop *l, cio_task_fn fn, void *arg, int *result);

/* ---- Signals ------------------------------------------------------------- */

/* Wait until signal `signo` arrives. The first call for a signal starts
 * catching it for the process (it is blocked and read from a signalfd by
 * this loop); deliveries with nobody waiting are kept (counted) for the
 * next call. While a task waits for SIGINT or SIGTERM, cio_run's default
 * shutdown on that signal is off. Returns 0; -ECANCELED; -EINVAL for
 * SIGKILL, SIGSTOP or a bad number; CIO_ENOTASK. Suspends. */
int cio_signal_wait(int signo);

#ifdef __cplusplus
}
#endif
#endif
