/* cio/redis.h: a Redis client (what aioredis / redis.asyncio do).
 *
 * - RESP2 and RESP3, parsed by cio's own incremental parser with limits
 *   (bulk length, element count, nesting depth): a hostile server cannot
 *   make the client allocate without bound or recurse deeply.
 * - One connection may be shared by any number of tasks of its loop.
 *   Commands go out in the order they are issued, in one write per command
 *   (or per pipeline), and replies come back to their tasks in that order:
 *   the task whose reply is due reads it, the others wait in a FIFO.
 * - Deadlines and cancellation: every call that suspends honours the
 *   caller's scopes. A command cancelled after it was queued is NOT taken
 *   back: its reply is read and discarded by the connection when it
 *   arrives, so the connection stays in step (replies never go to the
 *   wrong task). A cancelled blocking command (BLPOP with no timeout)
 *   thus holds up the commands behind it until the server answers;
 *   cio_redis_pending() tells how many replies are owed, and the pool
 *   wrapper discards a connection that still owes any.
 * - When the connection fails (reset, end of stream, a protocol error),
 *   every command waiting for a reply gets the error (never silent loss),
 *   the socket is closed, and the next command connects again (unless
 *   `no_reconnect`), repeating AUTH / HELLO / SELECT.
 *
 * Not thread-safe: a connection belongs to the loop that opened it.
 */
#ifndef CIO_REDIS_H
#define CIO_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "pool.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Replies ------------------------------------------------------------- */

enum cio_redis_type {
    CIO_REDIS_STRING = 1, /* $ bulk string (binary-safe) */
    CIO_REDIS_ARRAY,      /* * array: `elem[0..len)` */
    CIO_REDIS_INTEGER,    /* : `integer` */
    CIO_REDIS_NIL,        /* $-1, *-1 (RESP2) or _ (RESP3) */
    CIO_REDIS_STATUS,     /* + simple string: `str` ("OK", "QUEUED") */
    CIO_REDIS_ERROR,      /* - simple error or ! blob error: `str` */
    CIO_REDIS_DOUBLE,     /* , `dval`, and its text in `str` */
    CIO_REDIS_BOOL,       /* # `integer` 0 or 1 */
    CIO_REDIS_MAP,        /* % key, value, key, value... in `elem` */
    CIO_REDIS_SET,        /* ~ `elem[0..len)` */
    CIO_REDIS_PUSH,       /* > out-of-band data (pub/sub, tracking) */
    CIO_REDIS_BIGNUM,     /* ( the digits in `str` */
    CIO_REDIS_VERB,       /* = verbatim string: `vtype` ("txt"), `str` */
};

/* A reply: a tree freed with one cio_redis_reply_free. For the string
 * kinds (STRING, STATUS, ERROR, DOUBLE, BIGNUM, VERB) `str` holds `len`
 * bytes followed by a NUL that is not counted (a STRING may contain NULs
 * too). For the aggregates (ARRAY, SET, PUSH, MAP) `elem` holds `len`
 * replies; a MAP counts keys and values, so it has len / 2 pairs. RESP3
 * attributes (|) are parsed, checked against the limits and dropped. */
typedef struct cio_redis_reply {
    int type; /* enum cio_redis_type */
    size_t len;
    char *str;
    long long integer;
    double dval;
    char vtype[4]; /* VERB: 3 letters and a NUL */
    struct cio_redis_reply **elem;
} cio_redis_reply;

/* Free `r` and everything under it. NULL is ignored. */
void cio_redis_reply_free(cio_redis_reply *r);

/* The name of a reply type ("string", "array", ...), "unknown" for
 * anything else. Static. */
const char *cio_redis_type_name(int type);

/* ---- Connections --------------------------------------------------------- */

typedef struct cio_redis cio_redis;

/* Parser limits; 0 in a field takes its default. */
typedef struct cio_redis_limits {
    size_t max_bulk;     /* longest string; 512 MiB (as proto-max-bulk-len) */
    size_t max_elements; /* most elements in one aggregate; 16 Mi */
    size_t max_depth;    /* deepest nesting of aggregates; 32 (max 128) */
    size_t max_line;     /* longest simple line (+, -, :, ...); 64 KiB */
} cio_redis_limits;

typedef struct cio_redis_config {
    /* Numeric IPv4/IPv6 address or "localhost"; NULL: "127.0.0.1". Use
     * the resolver first for other names. Ignored when `unix_path` is
     * set. */
    const char *host;
    int port;              /* 0: 6379 */
    const char *unix_path; /* connect to this Unix-domain socket instead */
    /* AUTH: `password` alone (AUTH password) or with `username` (ACL).
     * NULL: no AUTH. */
    const char *username;
    const char *password;
    int db; /* SELECT db when > 0 */
    /* 2 or 3. 3 sends HELLO 3 (with AUTH in it when a password is set)
     * and fails with CIO_ESERVER on a server without RESP3. 0: 2. */
    int protocol;
    /* Time allowed for connecting plus the handshake (AUTH/HELLO/SELECT);
     * 0: only the caller's deadline. */
    int64_t connect_timeout;
    /* Time allowed for each command (its wait for the reply); it then
     * fails with -ETIMEDOUT and its reply is discarded when it comes.
     * 0: only the caller's deadline. */
    int64_t command_timeout;
    /* true: after a failure the connection stays down and every call
     * returns -ENOTCONN. false (default): the next command reconnects. */
    bool no_reconnect;
    cio_redis_limits limits;
    /* RESP3 push data that arrives on a connection not in subscriber mode
     * (client-side caching invalidations...) is passed here, borrowed for
     * the call, which must not suspend; NULL: it is dropped. */
    void (*on_push)(const cio_redis_reply *push, void *arg);
    void *push_arg;
} cio_redis_config;

/* Fill `cfg` with the defaults (all zero: 127.0.0.1:6379, RESP2). */
void cio_redis_config_init(cio_redis_config *cfg);

/* Connect to the server of `cfg` (copied, strings too) and run the
 * handshake: HELLO 3 for protocol 3, AUTH, SELECT. The caller owns `*out`
 * and closes it with cio_redis_close. Returns 0; -EINVAL for NULLs, a bad
 * address, a port out of range, a negative db or timeout, a username
 * without a password, or a protocol other than 0, 2, 3; the
 * connect errors of cio_open_connection (-ECONNREFUSED...); CIO_ESERVER
 * if the server refused AUTH, HELLO or SELECT; CIO_EBADRESP; -ETIMEDOUT
 * after `connect_timeout`; -ECANCELED; -ENOMEM; CIO_ENOTASK. Suspends. */
int cio_redis_connect(cio_redis **out, const cio_redis_config *cfg);

/* Close the connection and free it, without waiting for the server:
 * replies still owed and commands not yet sent are dropped (the socket is
 * shut first, so dropping unsent data takes at most a loop turn, the only
 * time this may suspend; it is not a cancellation point). Call it when no
 * task is suspended in a call on `c`. NULL is ignored. */
void cio_redis_close(cio_redis *c);

/* Replies the connection still owes (commands sent and not answered,
 * including discarded ones of cancelled callers). Does not suspend. */
size_t cio_redis_pending(const cio_redis *c);

/* true while the connection is up (false after a failure, before the
 * reconnect). */
bool cio_redis_connected(const cio_redis *c);

/* The protocol in use (2 or 3). */
int cio_redis_protocol(const cio_redis *c);

/* ---- Commands ------------------------------------------------------------ */

/* Send one command, `argc` arguments (binary-safe: argument i is
 * `argvlen[i]` bytes at argv[i]; `argvlen` NULL means NUL-terminated
 * strings), and wait for its reply, stored in `*reply` (the caller frees
 * it). Returns 0; CIO_ESERVER when the server answered with an error: the
 * error reply is stored in `*reply` all the same, its text in `str`;
 * -ETIMEDOUT after `command_timeout`; -ECANCELED (the reply will be
 * discarded); -ECONNRESET if the connection failed before the reply
 * arrived (the command may or may not have run); CIO_EBADRESP when the
 * server sent something malformed (the connection is closed); -ENOTCONN
 * with `no_reconnect` after a failure; the errors of cio_redis_connect
 * when it had to reconnect first; -EBUSY on a subscriber connection;
 * -EINVAL for NULLs, argc < 1, or a command that does not answer with
 * exactly one reply (SUBSCRIBE and the rest of its family: use
 * cio_redis_subscribe; MONITOR, SYNC, PSYNC, CLIENT REPLY); -ENOMEM. On any
 * error but CIO_ESERVER
 * `*reply` is NULL. Suspends. */
int cio_redis_command(cio_redis *c, cio_redis_reply **reply, int argc,
                      const char *const *argv, const size_t *argvlen);

/* cio_redis_command with C-string arguments ending in NULL:
 * cio_redis_cmd(c, &r, "SET", "key", "value", NULL). At most 64
 * arguments (-E2BIG beyond). `reply` may be NULL to drop the reply (the
 * result code still tells an error). Errors as cio_redis_command. */
int cio_redis_cmd(cio_redis *c, cio_redis_reply **reply, const char *cmd, ...)
    __attribute__((sentinel));

/* One command of a pipeline or transaction. */
typedef struct cio_redis_argv {
    int argc;
    const char *const *argv;
    const size_t *argvlen; /* NULL: NUL-terminated strings */
} cio_redis_argv;

/* Pipelining: send the `n` commands in one write, then wait for their `n`
 * replies, stored in replies[0..n) (the caller frees each). An error reply
 * to one command is just its reply (type ERROR): the call returns 0. On a
 * failure (-ECANCELED, -ETIMEDOUT, -ECONNRESET, ...) every replies[i] is
 * NULL and the replies still owed are discarded. Errors as
 * cio_redis_command. Suspends. */
int cio_redis_pipeline(cio_redis *c, size_t n, const cio_redis_argv *cmds,
                       cio_redis_reply **replies);

/* ---- Transactions -------------------------------------------------------- */

/* MULTI, the `n` commands, EXEC, sent in one write so that no other task's
 * command can come between them, and EXEC's array of results stored in
 * `*reply` (one element per command; a command that failed at run time
 * has an ERROR element). Returns 0; -EAGAIN if the transaction was
 * aborted because a WATCHed key changed (EXEC returned nil; nothing ran,
 * `*reply` NULL); CIO_ESERVER if a command was refused while queueing (the
 * EXECABORT error is in `*reply`; nothing ran); errors as
 * cio_redis_command. Suspends. */
int cio_redis_transaction(cio_redis *c, cio_redis_reply **reply, size_t n,
                          const cio_redis_argv *cmds);

/* WATCH the `n` keys (NUL-terminated). WATCH state belongs to the
 * connection, so use a connection no other task sends on between WATCH
 * and the transaction (a pool connection, or one of your own). 0 or an
 * error as cio_redis_command. Suspends. */
int cio_redis_watch(cio_redis *c, size_t n, const char *const *keys);
/* UNWATCH. As cio_redis_watch. Suspends. */
int cio_redis_unwatch(cio_redis *c);

/* ---- Pub/sub ------------------------------------------------------------- */

enum cio_redis_msg_kind {
    CIO_REDIS_MESSAGE = 1, /* a message on a channel */
    CIO_REDIS_PMESSAGE,    /* a message matched by a pattern */
    CIO_REDIS_SMESSAGE,    /* a sharded-channel message */
};

/* A pub/sub message. `channel`, `pattern` (PMESSAGE only, else NULL) and
 * `data` point into the message and are NUL-terminated beyond their
 * lengths. */
typedef struct cio_redis_message {
    int kind;
    const char *channel;
    size_t channel_len;
    const char *pattern;
    size_t pattern_len;
    const char *data;
    size_t data_len;
    cio_redis_reply *cio__reply; /* private */
} cio_redis_message;

/* Free a message from cio_redis_next_message. NULL is ignored. */
void cio_redis_message_free(cio_redis_message *m);

/* Subscribe to the `n` channels (SUBSCRIBE) or patterns (PSUBSCRIBE, when
 * `patterns` is true) and wait until the server has confirmed each. From
 * the first call the connection is in subscriber mode: it refuses other
 * commands (-EBUSY) and only one task at a time may use the subscription
 * calls on it (-EBUSY otherwise). Messages that arrive meanwhile are kept
 * for cio_redis_next_message. The subscriptions are remembered and renewed
 * when the connection reconnects (messages published while it was down
 * are lost, as Redis pub/sub has it). Returns 0; -EINVAL (NULLs, n 0);
 * errors as cio_redis_command. Suspends. */
int cio_redis_subscribe(cio_redis *c, size_t n, const char *const *names,
                        bool patterns);

/* Unsubscribe from the `n` channels or patterns (n 0: all of that kind)
 * and wait for the confirmations. When none is left the connection leaves
 * subscriber mode. Messages still queued are kept. 0 or errors as
 * cio_redis_subscribe. Suspends. */
int cio_redis_unsubscribe(cio_redis *c, size_t n, const char *const *names,
                          bool patterns);

/* Wait for the next message on a subscriber connection, at most until the
 * absolute `deadline` (CIO_NEVER: no limit beyond the caller's scopes).
 * The caller frees `*msg` with cio_redis_message_free. Returns 0;
 * -ETIMEDOUT when the deadline passed (a message half-received stays
 * in the connection for the next call); -ECANCELED; -ENOTCONN if not
 * subscribed; -EBUSY if another task is in a subscription call; the
 * connection's error (-ECONNRESET, CIO_EBADRESP...) once, after which the
 * next call reconnects and subscribes again; the errors of
 * cio_redis_connect when that fails. A connection found closed by the
 * server before the wait is replaced at once. Suspends. */
int cio_redis_next_message(cio_redis *c, cio_redis_message **msg,
                           int64_t deadline);

/* The messages of subscriber connection `c` as a generator (async for):
 * each cio_gen_next gives a `cio_redis_message *` that stays owned by the
 * generator and valid until the next cio_gen_next or cio_gen_close (copy
 * what you keep). The generator ends with the connection's error when
 * the connection fails. Close it (cio_gen_free) before using `c` in any
 * other way. 0, -EINVAL, -ENOMEM, CIO_ENOTASK. Does not suspend. */
int cio_redis_messages(cio_gen **out, cio_redis *c);

/* ---- Pool ---------------------------------------------------------------- */

/* A cio_pool (cio/pool.h) of Redis connections. */
typedef struct cio_redis_pool cio_redis_pool;

/* A pool of connections opened with `rcfg` (copied, strings too): an idle
 * connection is checked with PING on acquire when it has sat idle
 * `pcfg->check_after`, and a released connection that still owes replies,
 * is down or is in subscriber mode is closed instead of reused. `pcfg`
 * (NULL: the defaults) gives the sizes and times; its callbacks and ctx
 * are ignored. Free with cio_redis_pool_close. Errors as cio_pool_create;
 * -EINVAL for a NULL `out` or `rcfg`. Does not suspend. */
int cio_redis_pool_create(cio_redis_pool **out, const cio_redis_config *rcfg,
                          const cio_pool_config *pcfg);
/* Borrow a connection (cio_pool_acquire). Errors as cio_pool_acquire.
 * Suspends. */
int cio_redis_pool_acquire(cio_redis_pool *p, cio_redis **c);
/* Give `c` back (cio_pool_release); `broken` true closes it. As
 * cio_pool_release: not a cancellation point. */
int cio_redis_pool_release(cio_redis_pool *p, cio_redis *c, bool broken);
/* The pool's counters (cio_pool_stats_get). */
int cio_redis_pool_stats(const cio_redis_pool *p, cio_pool_stats *out);
/* Close the pool as cio_pool_close does and free it. Suspends. */
int cio_redis_pool_close(cio_redis_pool *p);

#ifdef __cplusplus
}
#endif
#endif
