/* cio/pg.h: a PostgreSQL client (asyncpg's job) on libpq.
 *
 * libpq runs in non-blocking mode and the calling task waits on the
 * connection's socket, so a query suspends the task, never the loop.
 *
 * - One task at a time per connection: a call made while another task is
 *   inside a call on the same connection returns -EBUSY.
 * - Every suspending call honours the deadlines and cancellation of the
 *   caller's scopes. A query interrupted that way is cancelled on the
 *   server (a cancel request sent from the executor, as PQcancel blocks),
 *   then the connection is drained back to idle in a shielded scope of at
 *   most CIO_PG_CLEANUP_TIMEOUT; the call returns -ECANCELED. A connection
 *   that cannot be drained is marked broken: later calls return -ENOTCONN,
 *   and the pool closes it instead of handing it out.
 * - A server error returns CIO_ESERVER; its SQLSTATE and message stay on
 *   the connection (cio_pg_error_sqlstate, cio_pg_error_message) until the
 *   next call. Connection failures return a negative errno (-ECONNREFUSED,
 *   -ECONNRESET, ...), and the message is kept the same way.
 * - Host names: libpq resolves a `host` name with a blocking getaddrinfo.
 *   cio_pg_connect resolves it on the executor's DNS threads instead and
 *   passes libpq the address as `hostaddr` (the first address only; `host`
 *   stays for authentication and TLS). Give `hostaddr` to skip this.
 * - Results are owned by the caller (cio_pg_result_free); strings returned
 *   by accessors live as long as the result.
 *
 * Not thread-safe: a connection belongs to the loop it was opened on.
 */
#ifndef CIO_PG_H
#define CIO_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_pg cio_pg;
typedef struct cio_pg_result cio_pg_result;

/* How long cleanup after a cancellation may take (cancel request, drain,
 * ROLLBACK), in a shielded scope: 5 s. */
#define CIO_PG_CLEANUP_TIMEOUT (5 * CIO_SEC)

/* ---- Connections --------------------------------------------------------- */

/* asyncpg.connect(): open a connection described by the libpq `conninfo`
 * ("hostaddr=127.0.0.1 port=5432 user=u dbname=d" or a postgresql:// URI;
 * PG* environment variables fill what it leaves out). A `connect_timeout`
 * in it bounds the attempt like an enclosing scope. Returns 0 and `*out`;
 * -EINVAL for NULLs or a conninfo libpq cannot parse; -ECONNREFUSED,
 * -ETIMEDOUT, -EHOSTUNREACH, -ENOENT (no Unix socket), ... when the
 * connection fails; CIO_ESERVER when the server refuses it (password,
 * unknown database); CIO_ENOTFOUND when a host name does not resolve;
 * -ECANCELED; -ENOMEM; CIO_ENOTASK. The failure's text is set as the
 * task's error message (cio_task_errmsg). Suspends. */
int cio_pg_connect(cio_pg **out, const char *conninfo);

/* Close the connection (libpq sends Terminate without waiting) and free
 * it. A transaction still open is rolled back by the server. Must not be
 * called while a task is inside a call on `c`. NULL is ignored. Does not
 * suspend. */
void cio_pg_close(cio_pg *c);

/* true unless the connection is lost or was marked broken (a failed
 * drain, a protocol error). Does not suspend. */
bool cio_pg_ok(const cio_pg *c);

/* The SQLSTATE of the last error on `c` ("42601", "23505", ...), or ""
 * when the last call succeeded or failed without one (a lost
 * connection). Never NULL. Does not suspend. */
const char *cio_pg_error_sqlstate(const cio_pg *c);
/* The primary message of that error (or libpq's text for connection
 * errors), "" if none. Never NULL; valid until the next call on `c`. */
const char *cio_pg_error_message(const cio_pg *c);
/* The DETAIL field of that error, "" if none. */
const char *cio_pg_error_detail(const cio_pg *c);

/* The server process id of the session (for pg_cancel_backend and
 * NOTIFY senders), 0 if the connection is lost. Does not suspend. */
int cio_pg_backend_pid(const cio_pg *c);

/* Where NOTICE/WARNING messages from the server go: `fn(message, arg)` in
 * the calling task (must not suspend). NULL (the default) drops them. */
typedef void (*cio_pg_notice_fn)(const char *message, void *arg);
void cio_pg_set_notice_handler(cio_pg *c, cio_pg_notice_fn fn, void *arg);

/* ---- Queries ------------------------------------------------------------- */

/* Type OIDs of the built-in types the accessors and helpers know. */
enum {
    CIO_PG_BOOL = 16,
    CIO_PG_BYTEA = 17,
    CIO_PG_INT8 = 20,
    CIO_PG_INT2 = 21,
    CIO_PG_INT4 = 23,
    CIO_PG_TEXT = 25,
    CIO_PG_FLOAT4 = 700,
    CIO_PG_FLOAT8 = 701,
    CIO_PG_VARCHAR = 1043,
    CIO_PG_NUMERIC = 1700,
};

/* A query parameter ($1, $2, ...). Fill it with the cio_pg_param_*
 * helpers; borrowed for the call only. Numbers and booleans set by the
 * helpers are held inside the struct (binary, network order), so a
 * parameter can be copied freely. */
typedef struct cio_pg_param {
    unsigned type;     /* type OID; 0 lets the server infer it */
    int format;        /* 0 text, 1 binary */
    int len;           /* binary: bytes at `value` */
    const char *value; /* text (NUL-terminated) or bytes; NULL: SQL NULL */
    char inl[8];       /* storage for the number helpers */
    int inl_len;       /* > 0: the value is inl[0, inl_len) */
} cio_pg_param;

/* Text value `s` (NULL means SQL NULL), type inferred by the server. */
void cio_pg_param_text(cio_pg_param *p, const char *s);
void cio_pg_param_null(cio_pg_param *p);
/* Binary int8 / int4 / float8 / bool values. */
void cio_pg_param_int64(cio_pg_param *p, int64_t v);
void cio_pg_param_int32(cio_pg_param *p, int32_t v);
void cio_pg_param_double(cio_pg_param *p, double v);
void cio_pg_param_bool(cio_pg_param *p, bool v);
/* Binary bytea: `n` bytes at `buf` (NULs allowed; borrowed). */
void cio_pg_param_bytea(cio_pg_param *p, const void *buf, int n);

/* Query flags. */
#define CIO_PG_BINARY 1u /* results in binary format (see the accessors) */

/* asyncpg's fetch(): run one statement with `n` parameters ($1...)
 * through the extended protocol and store its result in `*out` (NULL
 * discards it). Returns the number of rows affected or returned (>= 0,
 * capped at INT_MAX); CIO_ESERVER for a server error (see
 * cio_pg_error_sqlstate; `*out` untouched); -EINVAL for NULLs, n < 0 or
 * unknown flags; -EBUSY if another task is using `c`; -ENOTCONN on a
 * broken connection; -ECONNRESET and other errnos when the connection
 * fails (it is then broken); -ECANCELED (the query was cancelled on the
 * server and the connection drained, see above); -ENOMEM. Suspends. */
int cio_pg_query(cio_pg *c, cio_pg_result **out, const char *sql,
                 const cio_pg_param *params, int n, unsigned flags);

/* asyncpg's execute() without arguments: run `sql`, which may hold
 * several statements separated by ';' (simple protocol), and return the
 * rows affected by the last one. Errors as cio_pg_query; statements after
 * a failing one do not run. Suspends. */
int cio_pg_exec(cio_pg *c, const char *sql);

/* Prepare `sql` as the named statement `name` ("" for the unnamed one)
 * with `n` parameter types (`types` may be NULL: all inferred). The
 * statement lives as long as the session (DEALLOCATE it with cio_pg_exec;
 * the pool's reset drops it). Returns 0; errors as cio_pg_query.
 * Suspends. */
int cio_pg_prepare(cio_pg *c, const char *name, const char *sql, int n,
                   const unsigned *types);

/* Run the prepared statement `name` with `n` parameters. As
 * cio_pg_query. Suspends. */
int cio_pg_query_prepared(cio_pg *c, cio_pg_result **out, const char *name,
                          const cio_pg_param *params, int n, unsigned flags);

/* ---- Results ------------------------------------------------------------- */

/* None of the result and parameter functions suspend. */

/* Free a result. NULL is ignored. */
void cio_pg_result_free(cio_pg_result *r);
/* Rows in the result; 0 for NULL. */
int cio_pg_nrows(const cio_pg_result *r);
/* Columns in the result; 0 for NULL. */
int cio_pg_ncols(const cio_pg_result *r);
/* Column name, or NULL out of range. */
const char *cio_pg_colname(const cio_pg_result *r, int col);
/* Index of the column named `name`, or -ENOENT. */
int cio_pg_colindex(const cio_pg_result *r, const char *name);
/* Type OID of column `col` (0 out of range). */
unsigned cio_pg_coltype(const cio_pg_result *r, int col);
/* The command tag: "SELECT 3", "INSERT 0 1", ... Never NULL. */
const char *cio_pg_cmd_status(const cio_pg_result *r);
/* 1 if the field is SQL NULL, 0 if not, -EINVAL out of range. */
int cio_pg_is_null(const cio_pg_result *r, int row, int col);

/* Typed accessors. Each returns 0 and stores the value; -ENODATA when the
 * field is SQL NULL (nothing stored); -EINVAL for a row or column out of
 * range or a value that is not of that kind (text "abc" as an integer, a
 * binary date as a number); -ERANGE when it does not fit. Text-format
 * results are parsed from their text (so numeric, and any integer text,
 * work); binary results are decoded for the types listed per call. */

/* Text of any field, NUL-terminated, and its length (may be NULL). For a
 * binary result only text, varchar, name, char and bytea columns (raw
 * bytes). Lives as long as `r`. */
int cio_pg_get_text(const cio_pg_result *r, int row, int col, const char **s,
                    size_t *len);
/* int2, int4, int8 (binary); any integer text. */
int cio_pg_get_int64(const cio_pg_result *r, int row, int col, int64_t *v);
int cio_pg_get_int32(const cio_pg_result *r, int row, int col, int32_t *v);
/* float4, float8, int2/4/8 (binary); any number text, NaN, Infinity. */
int cio_pg_get_double(const cio_pg_result *r, int row, int col, double *v);
/* bool (binary); "t"/"f" text. */
int cio_pg_get_bool(const cio_pg_result *r, int row, int col, bool *v);
/* bytea: copies up to `size` bytes into `buf` and returns the full length
 * (like snprintf: call with size 0 to learn it). Text results are
 * decoded from hex or escape format. Errors as above. */
ssize_t cio_pg_get_bytea(const cio_pg_result *r, int row, int col, void *buf,
                         size_t size);

/* ---- Transactions -------------------------------------------------------- */

/* Isolation levels and access modes for cio_pg_begin (or-ed). */
enum {
    CIO_PG_ISOLATION_DEFAULT = 0,
    CIO_PG_READ_COMMITTED = 1,
    CIO_PG_REPEATABLE_READ = 2,
    CIO_PG_SERIALIZABLE = 3,
    CIO_PG_READ_ONLY = 0x10,
    CIO_PG_DEFERRABLE = 0x20,
};

/* A transaction (or savepoint) in the caller's storage, between
 * cio_pg_begin and cio_pg_end. Fields are private. */
typedef struct cio_pg_tx {
    cio_pg *cio__conn;
    int cio__depth; /* 1: the transaction, > 1: a savepoint */
    bool cio__done;
} cio_pg_tx;

/* asyncpg's `async with conn.transaction()`: BEGIN with `mode`, or, when
 * a transaction of `c` is already open, a SAVEPOINT (mode must be 0 then).
 * Close it with cio_pg_end, in LIFO order. Returns 0; -EINVAL (NULLs,
 * unknown mode, a mode on a savepoint); errors as cio_pg_query.
 * Suspends. */
int cio_pg_begin(cio_pg *c, cio_pg_tx *tx, unsigned mode);

/* The scope exit: with `rc` >= 0, COMMIT (RELEASE the savepoint) and
 * return `rc`, or the commit's error (a transaction the server had
 * already aborted is rolled back and gives CIO_ESERVER, SQLSTATE 25P02);
 * with `rc` < 0 (an error, -ECANCELED, -ETIMEDOUT), ROLLBACK (ROLLBACK
 * TO the savepoint) in a shielded scope of at most
 * CIO_PG_CLEANUP_TIMEOUT, so that it runs also in a cancelled task, and
 * return `rc`. Savepoints still open inside `tx` are rolled back with it
 * (committing with one open gives -EINVAL and rolls back). After
 * cio_pg_commit / cio_pg_rollback, or once an enclosing transaction has
 * ended, it only returns `rc`. A transaction that cannot be rolled back (lost
 * connection) ends with the session. Suspends. */
int cio_pg_end(cio_pg_tx *tx, int rc);

/* End `tx` now: COMMIT / RELEASE, or ROLLBACK / ROLLBACK TO. Returns 0;
 * -EINVAL if `tx` is not the innermost open one or already ended; errors
 * as cio_pg_query. Suspends. */
int cio_pg_commit(cio_pg_tx *tx);
int cio_pg_rollback(cio_pg_tx *tx);

/* ---- COPY ---------------------------------------------------------------- */

/* COPY ... FROM STDIN: start the COPY statement `sql`, then send the data
 * with cio_pg_copy_write (any chunking: rows need not align with
 * chunks) and finish with cio_pg_copy_end. While a COPY runs, other calls
 * on `c` return -EBUSY. Returns 0; CIO_ESERVER (a bad statement, or one
 * that is not COPY FROM STDIN: -EINVAL); errors as cio_pg_query.
 * Suspends. */
int cio_pg_copy_in(cio_pg *c, const char *sql);
/* Queue `n` bytes of COPY data; waits while libpq's send buffer is full
 * (backpressure). Returns 0; -EINVAL when no COPY FROM is running; errors
 * as cio_pg_query (a cancelled write aborts the COPY on the server).
 * Suspends. */
int cio_pg_copy_write(cio_pg *c, const void *buf, size_t n);
/* Finish the COPY: `abort_msg` NULL commits the data and returns the
 * number of rows copied; non-NULL makes the server fail it with that
 * message (CIO_ESERVER, SQLSTATE 57014). Errors as cio_pg_query (a data
 * error is CIO_ESERVER). Suspends. */
int cio_pg_copy_end(cio_pg *c, const char *abort_msg);

/* COPY ... TO STDOUT: start it; read the rows with cio_pg_copy_read. */
int cio_pg_copy_out(cio_pg *c, const char *sql);
/* The next row of COPY TO data into `*data` (not NUL-terminated; valid
 * until the next call on `c`); returns its length (> 0). CIO_EOF once all
 * rows were read and the COPY succeeded; CIO_ESERVER if it failed;
 * -EINVAL when no COPY TO is running. Reading only as fast as the caller
 * asks is the backpressure. Cancelling the read cancels the COPY on the
 * server (see above). Suspends. */
ssize_t cio_pg_copy_read(cio_pg *c, const void **data);

/* ---- LISTEN / NOTIFY ----------------------------------------------------- */

typedef struct cio_pg_notification {
    const char *channel;
    const char *payload; /* "" when none */
    int pid;             /* the sending backend */
} cio_pg_notification;

/* LISTEN / UNLISTEN on `channel` (quoted as an identifier here). Errors
 * as cio_pg_query. Suspends. */
int cio_pg_listen(cio_pg *c, const char *channel);
int cio_pg_unlisten(cio_pg *c, const char *channel);
/* pg_notify(channel, payload) (payload may be NULL). Suspends. */
int cio_pg_notify(cio_pg *c, const char *channel, const char *payload);

/* Wait for the next notification on `c` (one received during an earlier
 * query is returned at once) until the absolute `deadline` (CIO_NEVER for
 * none) or the enclosing scopes' ones. Returns 0 and `*out` (free it with
 * cio_pg_notification_free); -ETIMEDOUT at `deadline`; -ECANCELED; -EBUSY
 * if another task is using `c`; -ENOTCONN / -ECONNRESET when the
 * connection is lost; -ENOMEM. Suspends. */
int cio_pg_wait_notify(cio_pg *c, cio_pg_notification **out, int64_t deadline);
void cio_pg_notification_free(cio_pg_notification *n); /* NULL ignored */

/* ---- Pipeline (batches) -------------------------------------------------- */

/* One statement of a batch. `result` and `rc` are filled in. */
typedef struct cio_pg_stmt {
    const char *sql;
    const cio_pg_param *params;
    int nparams;
    unsigned flags;        /* CIO_PG_BINARY */
    cio_pg_result *result; /* out: the caller frees it; NULL on error */
    int rc;                /* out: rows (>= 0), CIO_ESERVER, or -ECANCELED
                            * for a statement skipped after a failure */
} cio_pg_stmt;

/* Run `n` statements in libpq's pipeline mode: all are sent before any
 * result is read, with one Sync at the end, so the batch costs one round
 * trip and runs as one implicit transaction (a failure rolls back the
 * statements before it, and the ones after it are skipped). Returns 0 if
 * every statement succeeded; CIO_ESERVER if one failed (its `rc`, and
 * the SQLSTATE on `c`); -EINVAL (NULLs, n == 0, a NULL sql, bad flags);
 * other errors as cio_pg_query (then no `result` is set). Suspends. */
int cio_pg_batch(cio_pg *c, cio_pg_stmt *stmts, size_t n);

/* ---- Pool ---------------------------------------------------------------- */

/* A pool of connections to one server, on the generic cio_pool: at most
 * max_size open, acquire waits FIFO under the caller's deadline. On
 * release a connection is reset: a transaction left open is rolled back,
 * and a session that ran LISTEN, SET, PREPARE, cursors, temp tables or
 * cio_pg_prepare gets DISCARD ALL (every release with `reset_all`).
 * Broken connections, or ones released mid-COPY, are closed. On acquire
 * an idle connection (idle at least `check_after`; 0: every time) gets a
 * local check without a round trip: one non-blocking read that notices a
 * connection the server or the network closed meanwhile. */
typedef struct cio_pg_pool cio_pg_pool;

typedef struct cio_pg_pool_config {
    const char *conninfo; /* copied */
    /* Sizes and times as in cio_pool_config (its callbacks are ignored). */
    size_t min_size, max_size;
    int64_t idle_timeout, max_lifetime, check_after, open_timeout;
    int64_t close_timeout; /* bounds each reset on release; 0 = 5 s */
    bool reset_all;        /* DISCARD ALL on every release */
} cio_pg_pool_config;

/* Create the pool (opens min_size connections in the background).
 * Returns 0; -EINVAL (NULLs, no conninfo, bad sizes); -ENOMEM;
 * CIO_ENOTASK. Does not suspend. */
int cio_pg_pool_create(cio_pg_pool **out, const cio_pg_pool_config *cfg);
/* Borrow a connection. Errors as cio_pool_acquire, plus cio_pg_connect's.
 * Suspends. */
int cio_pg_pool_acquire(cio_pg_pool *p, cio_pg **conn);
/* Give it back (reset as above; closed if broken or mid-operation). May
 * suspend for the reset, but works in a cancelled task. */
int cio_pg_pool_release(cio_pg_pool *p, cio_pg *conn);
/* Counters of the underlying cio_pool. */
int cio_pg_pool_stats(const cio_pg_pool *p, cio_pool_stats *out);
/* Close the pool as cio_pool_close, then free it. When the wait for
 * borrowed connections ends early (-ETIMEDOUT, -ECANCELED), each is
 * closed as it is released, and the pool is freed with the last one.
 * Suspends. */
int cio_pg_pool_close(cio_pg_pool *p);

#ifdef __cplusplus
}
#endif
#endif
