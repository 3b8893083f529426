/* cio/pool.h: a generic connection pool.
 *
 * What aiohttp's connector, asyncpg's Pool and redis-py's ConnectionPool
 * share, once: a bounded set of connections of any kind (a stream, a
 * PostgreSQL or Redis connection) that tasks borrow and give back.
 *
 * - At most `max_size` connections exist at once (idle + in use + being
 *   opened); `min_size` are kept open while the pool lives.
 * - cio_pool_acquire waits under the caller's deadline and cancellation;
 *   waiters are served strictly FIFO. A connection released while tasks
 *   wait goes straight to the first waiter.
 * - On acquire an idle connection that has sat longer than `check_after`
 *   is health-checked (`check`); a failing one is closed and another
 *   taken. Connections idle longer than `idle_timeout` (above min_size)
 *   or older than `max_lifetime` are closed by the pool.
 * - A connection released as broken (or failing `reset`) is closed, never
 *   handed out again.
 * - cio_pool_close refuses new acquires (CIO_ECLOSING), wakes waiters with
 *   CIO_ECLOSING, closes idle connections and waits for the borrowed ones
 *   to come back, closing each as it is released.
 *
 * The pool belongs to the loop it was created on; it is not thread-safe.
 * The callbacks run in the calling task (open/check/reset/close may
 * suspend) or in the pool's own maintenance task (idle expiry, min_size
 * refill). `open` runs under `open_timeout`; `reset` and `close` run
 * shielded from cancellation under `close_timeout`, so a connection is
 * always cleaned up, even by a cancelled task.
 */
#ifndef CIO_POOL_H
#define CIO_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_pool cio_pool;

typedef struct cio_pool_config {
    size_t min_size; /* kept open; default 0 */
    size_t max_size; /* at most this many exist; 0 = 10 */
    /* Close an idle connection (above min_size) after this long; 0 = never. */
    int64_t idle_timeout;
    /* Close a connection this long after it was opened, when it is next
     * idle; 0 = never. */
    int64_t max_lifetime;
    /* Health-check an idle connection on acquire when it has been idle at
     * least this long; 0 = check every time (when `check` is set). */
    int64_t check_after;
    /* Time allowed for one `open`; 0 = only the caller's deadline. */
    int64_t open_timeout;
    /* Time allowed for one `close` or `reset`, which run shielded from
     * cancellation so that a cancelled task still cleans up; 0 = 5 s. */
    int64_t close_timeout;

    /* Open a connection; store it in *conn and return 0, or return a
     * negative error (passed on to the acquiring task). May suspend. */
    int (*open)(void *ctx, void **conn);
    /* Close and free a connection. May suspend; must not fail. */
    void (*close)(void *ctx, void *conn);
    /* Optional: 0 if an idle connection is still usable. May suspend. */
    int (*check)(void *ctx, void *conn);
    /* Optional: prepare a released connection for its next user (e.g.
     * roll back, DISCARD ALL); non-zero discards it. May suspend. */
    int (*reset)(void *ctx, void *conn);
    void *ctx;
} cio_pool_config;

typedef struct cio_pool_stats {
    size_t size;     /* connections that exist (idle + in use + opening) */
    size_t idle;     /* open and not borrowed */
    size_t in_use;   /* borrowed */
    size_t opening;  /* `open` in progress */
    size_t waiting;  /* tasks waiting in acquire */
    uint64_t opened; /* since creation */
    uint64_t closed;
    uint64_t acquired;
    uint64_t discarded; /* released broken, failed check or reset */
    uint64_t abandoned; /* waits in acquire ended by deadline or cancel */
} cio_pool_stats;

/* Create a pool on the running loop from `cfg` (copied). Opens nothing
 * yet unless min_size > 0, in which case a maintenance task opens them in
 * the background. Returns 0; -EINVAL for a NULL out/cfg/open/close,
 * max_size < min_size or a negative time; -ENOMEM; CIO_ENOTASK outside a
 * task. Does not suspend. */
int cio_pool_create(cio_pool **out, const cio_pool_config *cfg);

/* Borrow a connection into *conn. Takes an idle one (checking it if it is
 * due), else opens a new one if below max_size, else waits FIFO for a
 * release. Returns 0; the error of `open` when opening failed; -ETIMEDOUT
 * (the enclosing deadline passed) or -ECANCELED while waiting (nothing is
 * borrowed then); CIO_ECLOSING once the pool is closing; -EINVAL.
 * Suspends. */
int cio_pool_acquire(cio_pool *p, void **conn);

/* Give back a connection from cio_pool_acquire. `broken` true closes it
 * (after an I/O error, a cancelled request mid-protocol, ...). Otherwise
 * `reset` (if set) runs first. Never fails; an unknown `conn` is a
 * programming error and is ignored with -EINVAL. May suspend (reset and
 * close run in the caller), but is not a cancellation point: a cancelled
 * task can still release. */
int cio_pool_release(cio_pool *p, void *conn, bool broken);

/* Counters at this instant. -EINVAL for NULLs. Does not suspend. */
int cio_pool_stats_get(const cio_pool *p, cio_pool_stats *out);

/* Close the pool: refuse new acquires, wake waiters with CIO_ECLOSING,
 * close idle connections, wait until every borrowed connection has been
 * released (and closed), stop the maintenance task, free the pool.
 * Returns 0; -ETIMEDOUT / -ECANCELED if the caller's deadline or a
 * cancellation ends the wait: the pool is then closed forcibly (borrowed
 * connections are closed when released; the memory is freed with the
 * last one). Suspends. */
int cio_pool_close(cio_pool *p);

#ifdef __cplusplus
}
#endif
#endif
