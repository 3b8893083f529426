/* cio/xloop.h: several loops, one per core: running them, channels and
 * tasks between them, a server on all of them.
 *
 * One loop per thread stays the rule: a task, a stream, a lock belong to
 * the loop that made them and are used only there. What crosses loops is
 * what this header declares, and each call says from where it may be made:
 * - "any loop": from a task of any loop of the set (it may suspend);
 * - "any thread": from any thread, loop or not (it never suspends);
 * - "owner loop": only on the loop that created the object.
 *
 * asyncio has no multi-loop runner; the usual Python answer is one process
 * per core (gunicorn workers, SO_REUSEPORT). cio_run_multi does the same
 * with threads, so loops can also pass messages and tasks to each other.
 */
#ifndef CIO_XLOOP_H
#define CIO_XLOOP_H

#include <stddef.h>
#include <sys/types.h>

#include "core.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Running N loops ----------------------------------------------------- */

typedef struct cio_multi_config {
    /* Every loop's configuration (backend, clock, stack size, debug).
     * handle_signals and shutdown_grace apply to the whole set: the first
     * SIGINT/SIGTERM cancels the main task of every loop, the grace period
     * runs, then every task left on every loop is cancelled; a second
     * signal ends the process with that signal. The two signals are
     * blocked before the loop threads start and read by the calling
     * thread. A loop that waits for another signal (cio_signal_wait)
     * needs it blocked in the calling thread before cio_run_multi, so
     * that no thread of the set takes its default action. */
    cio_config loop;
    unsigned loops; /* number of loops; 0: the CPUs this process may use */
    int pin;        /* 1: pin loop i to the i-th CPU this process may use */
    /* If non-NULL (and `loops` is set), `loops` entries: each loop's
     * main result. */
    int *results;
} cio_multi_config;

/* Defaults: cio_config_init for `loop`, 0 loops (one per CPU), no pinning.
 * CIO_LOOPS=n in the environment sets `loops`. Does not suspend. */
void cio_multi_config_init(cio_multi_config *cfg);

/* Run `main(arg)` as the main task of `cfg->loops` loops, each on its own
 * thread, and wait for all of them; the calling thread only watches
 * (signals, the grace period). Inside, cio_loop_index() tells the loops
 * apart. Every loop is up before any main starts, so a main may at once
 * send to or spawn on any other loop. When a main fails (returns < 0 other
 * than -ECANCELED) the mains of the other loops are cancelled, as by
 * cio_multi_cancel: one broken loop stops the set, like a task group.
 * Each loop ends as cio_run does (its left-over tasks are cancelled and
 * awaited). Returns the first error (by loop index) other than
 * -ECANCELED; else -ECANCELED if a main was cancelled; else loop 0's
 * result. -EINVAL (NULL main, bad config, more than 1024 loops); -EBUSY
 * when called on a loop's thread; -ENOMEM; -errno from thread creation.
 * Blocks the calling thread. */
int cio_run_multi(const cio_multi_config *cfg, cio_task_fn main, void *arg);

/* The index (0 .. count-1) of the running loop in its set; 0 in a loop of
 * cio_run. -ESRCH outside a loop. Does not suspend. */
int cio_loop_index(void);
/* The number of loops in the running loop's set; 1 for cio_run. -ESRCH
 * outside a loop. Does not suspend. */
int cio_loop_count(void);

/* Graceful shutdown of the whole set, as on SIGTERM: cancel every loop's
 * main, and after the grace period every task left. 0; -ESRCH if the
 * running loop is not in a cio_run_multi set. Any loop; does not
 * suspend. */
int cio_multi_cancel(void);

/* ---- Channels between loops ---------------------------------------------- */

/* A bounded FIFO of fixed-size messages, copied in and out. Many senders
 * on any loops, receivers on the loop that created it. While there is room
 * and nobody waits, sending and receiving take no lock (a lock-free ring;
 * docs/multicore.md). A sender that finds it full waits (backpressure) in
 * FIFO order; its message then goes in directly from the wait, so nothing
 * is lost or sent twice: a send that returns 0 delivered the message, one
 * that fails did not. Receivers that wait are woken through their loop's
 * eventfd once per wait, not once per message: senders post nothing while
 * no receiver waits, and the wakeups a loop gets before it runs them share
 * one write. */
typedef struct cio_chan cio_chan;

/* A channel owned by the running loop for messages of `msg_size` bytes
 * (1 .. 64 KiB), holding up to `capacity` (1 .. 2^24) of them.
 * 0; -EINVAL; -ENOMEM; CIO_ENOTASK outside a loop. Does not suspend. */
int cio_chan_new(cio_chan **out, size_t msg_size, size_t capacity);

/* Send a copy of `msg` (msg_size bytes). Waits while the channel is full.
 * 0 once the message is in; -EPIPE if the channel is closed (also when it
 * closes during the wait: the message was not sent); -ECANCELED (not
 * sent); -EINVAL; CIO_ENOTASK. Any loop; suspends. */
int cio_chan_send(cio_chan *ch, const void *msg);

/* Send without waiting: 0; -EAGAIN if the channel is full (or senders
 * are waiting: no overtaking); -EPIPE if closed; -EINVAL. Any thread;
 * does not suspend. */
int cio_chan_try_send(cio_chan *ch, const void *msg);

/* Receive the oldest message into `msg` (msg_size bytes). Waits while the
 * channel is empty. 0; CIO_EOF once the channel is closed and drained;
 * -ECANCELED (nothing taken); -EINVAL (NULL, or not the owner loop);
 * CIO_ENOTASK. Owner loop; suspends. */
int cio_chan_recv(cio_chan *ch, void *msg);

/* Receive up to `max` messages into `msgs` (max * msg_size bytes) in one
 * go, waiting only while none is there. Returns the count (>= 1), or the
 * errors of cio_chan_recv. Owner loop; suspends. */
ssize_t cio_chan_recv_many(cio_chan *ch, void *msgs, size_t max);

/* Receive without waiting: 0; -EAGAIN if empty; CIO_EOF if closed and
 * drained; -EINVAL. Owner loop; does not suspend. */
int cio_chan_try_recv(cio_chan *ch, void *msg);

/* Close: senders waiting or to come get -EPIPE, receivers drain what is
 * buffered and then get CIO_EOF. Closing twice is harmless. 0; -EINVAL.
 * Any thread; does not suspend. */
int cio_chan_close(cio_chan *ch);

/* Messages buffered now (a snapshot). Any thread. */
size_t cio_chan_len(const cio_chan *ch);

/* Close `ch` and release it. Buffered messages are discarded: drain them
 * first with cio_chan_try_recv when they own something (a pointer, an
 * fd). No call on it may be running (other than senders waiting) or start
 * on any loop or thread after this: stop the senders first (close, then
 * join them). Senders still waiting are woken with -EPIPE, and the memory
 * goes when the last of them has left. -EBUSY if a task is inside a
 * receiving call on it: the channel is closed (that task gets CIO_EOF)
 * but not freed; free it once the task has returned. 0; -EINVAL (NULL or
 * not the owner loop); -EBUSY. Owner loop; does not suspend. */
int cio_chan_free(cio_chan *ch);

/* ---- Tasks on other loops ------------------------------------------------ */

/* A task started on another loop of the set. */
typedef struct cio_xtask cio_xtask;

/* Run `fn(arg)` as a task on loop `loop` (an index; the running loop's own
 * index works too). With `out` non-NULL the caller must join it once with
 * cio_xloop_join (that frees it); with `out` NULL it runs detached and a
 * failure is reported by its loop. `arg` is used on the other loop's
 * thread until the task ends. 0; -EINVAL (NULL fn, index out of range);
 * -ESHUTDOWN if that loop's main has ended (it is shutting down);
 * -ENOMEM; -ESRCH if the running loop is not in a cio_run_multi set.
 * Any loop; does not suspend. */
int cio_xloop_spawn(cio_xtask **out, int loop, cio_task_fn fn, void *arg);

/* Wait for the task of `h` to end and store its result (>= 0 or its
 * error) in `*result`; free `h`. Returns 0. If the caller is cancelled (or
 * a scope deadline passes) the remote task is cancelled too and awaited,
 * as cio_wait_for does: the call returns -ECANCELED once it has ended
 * (its result still goes in `*result`), so `arg` is free to go.
 * -ESHUTDOWN (in `*result` too) if the target loop closed before the task
 * could start. -EINVAL for a NULL `h` (nothing freed); CIO_ENOTASK.
 * Any loop; suspends. */
int cio_xloop_join(cio_xtask *h, int *result);

/* ---- A server on every loop ---------------------------------------------- */

/* cio_server_start on the running loop, listening with SO_REUSEPORT so
 * that the kernel spreads the connections over the loops that listen on
 * the same address. Call it from every loop's main, the same calls in the
 * same order: the k-th call on each loop joins the same listening group.
 * When the port of `a` is 0 the first loop to get there picks it and the
 * others use the same one (cio_server_addr tells it). Options as
 * cio_server_start (CIO_REUSEPORT is added). 0; -EINVAL (NULL, not an IP
 * address); -ESRCH outside a cio_run_multi set; errors of
 * cio_server_start. Any loop; does not suspend. */
int cio_multi_server_start(cio_server **out, const cio_addr *a, cio_conn_fn fn,
                           void *arg, const cio_server_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
