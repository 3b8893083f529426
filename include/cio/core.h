/* cio/core.h: errors, time, configuration and the entry point.
 *
 * Conventions used by every cio header:
 * - Functions return int (or ssize_t): >= 0 is success, < 0 is a negated
 *   errno value (-ECANCELED, -ETIMEDOUT, ...) or one of the CIO_E* codes
 *   below. cio never reads or sets errno for you.
 * - Constructors return int and fill an out-parameter; on error the
 *   out-parameter is left untouched.
 * - "Suspends" means the call may switch to other tasks before it returns.
 *   Every suspending call is a cancellation point: it returns -ECANCELED
 *   while the calling task is cancelled (see cio/task.h), and it checks this
 *   before doing anything, even when it could complete at once.
 * - Calls that must run inside a task return CIO_ENOTASK outside one.
 * - Nothing is thread-safe unless its name ends in _threadsafe.
 */
#ifndef CIO_CORE_H
#define CIO_CORE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors ------------------------------------------------------------ */

/* cio's own codes lie below errno's range (like libuv's UV_EOF). */
#define CIO_ERRORS(X)                                                        \
    X(CIO_EOF, -4095, "end of stream")                                      \
    X(CIO_EINCOMPLETE, -4094, "stream ended before the requested size")     \
    X(CIO_ENOTASK, -4093, "not called from inside a cio task")              \
    X(CIO_EDEADLOCK, -4092, "deadlock: every task waits and none can wake") \
    X(CIO_ECLOSING, -4091, "closing: new work refused")                   \
    X(CIO_ENOTFOUND, -4090, "host name not found")                          \
    X(CIO_ENODATA, -4089, "name has no record of the requested type")       \
    X(CIO_EDNS, -4088, "DNS query failed (server failure or refused)")     \
    X(CIO_EBADRESP, -4087, "malformed response from the peer")              \
    X(CIO_ETLS, -4086, "TLS protocol error")                                \
    X(CIO_ECERT, -4085, "peer certificate verification failed")             \
    X(CIO_EHTTP, -4084, "malformed HTTP message")                           \
    X(CIO_EREDIRECTS, -4083, "too many redirects")                          \
    X(CIO_ESERVER, -4082, "the server reported an error")

enum {
#define CIO__ERR_ENUM(name, value, text) name = (value),
    CIO_ERRORS(CIO__ERR_ENUM)
#undef CIO__ERR_ENUM
};

/* A human-readable text for `err` (a negative errno or a CIO_E* code).
 * Never returns NULL; unknown codes give "unknown error". The string is
 * static. Does not suspend. */
const char *cio_strerror(int err);

/* The symbolic name of `err`: "ECANCELED", "CIO_EOF", ... Never NULL;
 * unknown codes give "EUNKNOWN". Static string. Does not suspend. */
const char *cio_err_name(int err);

/* ---- Time -------------------------------------------------------------- */

/* Time is int64_t nanoseconds. Deadlines are absolute times on the loop's
 * clock (monotonic, or virtual in tests); timeouts are relative. */
#define CIO_NSEC INT64_C(1)
#define CIO_USEC INT64_C(1000)
#define CIO_MSEC INT64_C(1000000)
#define CIO_SEC INT64_C(1000000000)
/* A deadline that never expires. */
#define CIO_NEVER INT64_MAX

/* The current time of the running loop's clock, in ns. Inside a loop with
 * the virtual clock this is virtual time; outside any loop it is
 * CLOCK_MONOTONIC. Does not suspend. */
int64_t cio_now(void);

/* The deadline `timeout` ns from now, saturating at CIO_NEVER. A negative
 * timeout gives -EINVAL, which every call taking a deadline rejects with
 * -EINVAL, so `cio_scope_enter(&sc, cio_deadline_after(t), 0)` reports a bad
 * timeout without a separate check. Does not suspend. */
int64_t cio_deadline_after(int64_t timeout);

/* ---- Running ----------------------------------------------------------- */

/* The body of a task: returns its result, >= 0 for success or a negative
 * error code. */
typedef int (*cio_task_fn)(void *arg);

enum cio_backend_kind {
    CIO_BACKEND_AUTO = 0, /* io_uring where usable, else epoll */
    CIO_BACKEND_EPOLL = 1,
    CIO_BACKEND_URING = 2,
};

enum cio_clock_kind {
    CIO_CLOCK_MONOTONIC = 0,
    /* Virtual time: starts at 0 and, whenever every task is waiting, jumps
     * straight to the next timer, so timeout logic runs in no wall time
     * (Trio's MockClock with autojump, Tokio's paused time). */
    CIO_CLOCK_VIRTUAL = 1,
};

/* Smallest and default task stack sizes, in bytes. Stacks are reserved, not
 * committed: a task costs the pages it touches. During a burst of spawns
 * a helper thread (one per process, for loops whose thread may run on
 * more than one CPU) makes the new stacks' first pages resident in the
 * background; CIO_STACK_HELPER=0 in the environment keeps that work on
 * the loop's thread. */
#define CIO_STACK_MIN ((size_t)16 * 1024)
#define CIO_STACK_DEFAULT ((size_t)64 * 1024)

typedef struct cio_config {
    size_t stack_size;   /* default task stack; 0 = CIO_STACK_DEFAULT */
    int backend;         /* enum cio_backend_kind; env CIO_BACKEND */
    int clock;           /* enum cio_clock_kind */
    int debug;           /* 1 = debug mode; env CIO_DEBUG=1 */
    int64_t slow_step;   /* debug: report a task step longer than this */
    /* SIGINT/SIGTERM: cancel main, give it `shutdown_grace` ns to finish,
     * then cancel everything; a second signal kills the process with that
     * signal. 0 = off (the signals keep their default action). Default 1. */
    int handle_signals;
    int64_t shutdown_grace; /* default 5 s */
} cio_config;

/* Fill `cfg` with the defaults, then apply the environment (CIO_DEBUG=1,
 * CIO_BACKEND=epoll|uring, CIO_STACK_SIZE=bytes, CIO_SIGNALS=0).
 * Does not suspend. */
void cio_config_init(cio_config *cfg);

/* Like asyncio.run(): create a loop on this thread, run `main(arg)` as its
 * first task, and when main returns cancel every task still alive, wait for
 * them, report errors nobody retrieved, stop the executor's threads and
 * close the loop. SIGINT and SIGTERM cancel main (see cio_config).
 * Returns main's result; -EINVAL if `main` is NULL; -EBUSY if a loop is
 * already running on this thread; -ENOMEM; CIO_EDEADLOCK if every task
 * ended up waiting with nothing left that could wake one (the waiting tasks
 * are reported, then cancelled so that the run ends). */
int cio_run(cio_task_fn main, void *arg);

/* cio_run with explicit configuration; a NULL `cfg` means the defaults of
 * cio_config_init(). -EINVAL for a stack size below CIO_STACK_MIN or an
 * unknown backend or clock. */
int cio_run_config(const cio_config *cfg, cio_task_fn main, void *arg);

/* ---- Reports and counters ---------------------------------------------- */

/* Where cio writes the problems it reports (errors never retrieved, a
 * deadlock, leaks at loop close, slow steps). The default writes one line
 * to stderr. `fn` NULL restores the default. Process-wide; set it before
 * starting loops. */
typedef void (*cio_report_fn)(const char *line, void *arg);
void cio_set_reporter(cio_report_fn fn, void *arg);

typedef struct cio_stats {
    uint64_t tasks_alive;    /* tasks spawned and not yet finished */
    uint64_t tasks_spawned;  /* since the loop started */
    uint64_t switches;       /* context switches into tasks */
    uint64_t loop_turns;     /* iterations of the loop */
    uint64_t timers_fired;
    uint64_t io_waits;       /* fd waits started */
    uint64_t stacks_mapped;  /* stacks ever mapped (pool misses) */
    uint64_t stacks_pooled;  /* stacks idle in the pool */
    /* I/O by kind: readiness waits (epoll, or io_uring poll) by
     * direction, and completion operations handed to io_uring. */
    uint64_t fd_waits_read, fd_waits_write;
    uint64_t ops_recv, ops_send, ops_accept, ops_connect, ops_read, ops_write;
    /* Time since the loop started (real time, also on the virtual clock).
     * In debug mode also the time spent running tasks and the time blocked
     * in the backend waiting for I/O or timers; the rest is the loop's
     * own work. Outside debug mode these two are 0 (the clock is not read
     * at every step). */
    int64_t run_ns, task_ns, poll_ns;
} cio_stats;

/* Counters of the loop running on this thread. -ESRCH outside a loop.
 * Does not suspend. */
int cio_stats_get(cio_stats *out);

#ifdef __cplusplus
}
#endif
#endif
