/* The Redis client: connections shared by tasks, pipelines, transactions,
 * pub/sub, reconnects and a pool wrapper (see cio/redis.h).
 *
 * Replies come back in the order commands went out, so a connection keeps
 * a FIFO of requests, each owed one or more replies. There is no reader
 * task: the first task that needs a reply while nobody is reading becomes
 * the reader and reads replies into the requests at the head of the FIFO
 * until its own request is complete, waking each owner as its request
 * completes; when it leaves, it wakes the next waiting owner, which takes
 * over. The parser's state lives in the connection, so a reader cancelled
 * in the middle of a reply leaves it half-parsed for the next reader. A
 * request whose owner was cancelled stays in the FIFO, marked abandoned:
 * its replies are read and freed like any other, which keeps the
 * connection in step. */
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>

#include "internal.h"
#include "db/resp.h"

#define MAX_CMD_ARGS 64
#define WBUF_KEEP ((size_t)64 * 1024) /* scratch kept between commands */
#define IDLE_PROBE (1 * CIO_MSEC)     /* idle time before a liveness peek */

typedef struct req {
    struct req *next;
    cio_event ev; /* set when done, or when it is this owner's turn */
    bool waiting; /* an owner waits for it; false: abandoned */
    bool done;
    int err;
    size_t n, got;
    cio_redis_reply **replies;
    cio_redis_reply *one;
} req;

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

struct cio_redis {
    cio_redis_config cfg; /* strings point to copies below */
    char *host, *unix_path, *user, *pass;
    cio_stream *s; /* NULL while down */
    int err;       /* why it went down */
    cio__resp_parser parser;
    req *head, *tail;
    size_t owed;     /* replies owed by the server */
    bool reading;    /* a task is the reader */
    int64_t last_io; /* when the FIFO last went empty */
    cio_mutex connect_lock;
    char *wbuf;
    size_t wlen, wcap;
    /* pub/sub */
    bool sub_mode;
    bool sub_busy; /* a task is in a subscription call */
    name_list chans, pats;
    cio_redis_message **mq; /* messages that arrived during (un)subscribe */
    size_t mq_off, mq_n, mq_cap;
};

/* ---- configuration ------------------------------------------------------- */

void cio_redis_config_init(cio_redis_config *cfg)
{
    if (cfg != NULL)
        memset(cfg, 0, sizeof *cfg);
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = cio__strdup(src);
    return *dst == NULL ? -ENOMEM : 0;
}

static void free_names(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        cio__free(l->v[i]);
    cio__free(l->v);
    memset(l, 0, sizeof *l);
}

static void conn_free(cio_redis *c)
{
    cio__free(c->host);
    cio__free(c->unix_path);
    cio__free(c->user);
    cio__free(c->pass);
    cio__free(c->wbuf);
    free_names(&c->chans);
    free_names(&c->pats);
    for (size_t i = c->mq_off; i < c->mq_n; i++)
        cio_redis_message_free(c->mq[i]);
    cio__free(c->mq);
    cio__free(c);
}

static int check_config(const cio_redis_config *cfg)
{
    if (cfg->port < 0 || cfg->port > 65535 || cfg->db < 0)
        return -EINVAL;
    if (cfg->protocol != 0 && cfg->protocol != 2 && cfg->protocol != 3)
        return -EINVAL;
    if (cfg->connect_timeout < 0 || cfg->command_timeout < 0)
        return -EINVAL;
    if (cfg->username != NULL && cfg->password == NULL)
        return -EINVAL;
    return 0;
}

static int conn_new(cio_redis **out, const cio_redis_config *cfg)
{
    int rc = check_config(cfg);
    if (rc < 0)
        return rc;
    cio_redis *c = cio__calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->cfg = *cfg;
    if (dup_opt(&c->host, cfg->host ? cfg->host : "127.0.0.1") < 0 ||
        dup_opt(&c->unix_path, cfg->unix_path) < 0 ||
        dup_opt(&c->user, cfg->username) < 0 ||
        dup_opt(&c->pass, cfg->password) < 0) {
        conn_free(c);
        return -ENOMEM;
    }
    c->cfg.host = c->host;
    c->cfg.unix_path = c->unix_path;
    c->cfg.username = c->user;
    c->cfg.password = c->pass;
    if (c->cfg.port == 0)
        c->cfg.port = 6379;
    if (c->cfg.protocol == 0)
        c->cfg.protocol = 2;
    cio__resp_init(&c->parser, &c->cfg.limits);
    cio_mutex_init(&c->connect_lock);
    *out = c;
    return 0;
}

/* ---- low-level reading --------------------------------------------------- */

/* Read one complete reply from `s` into *out. Returns 0, -ECANCELED (what
 * was parsed stays in the parser), -ECONNRESET at end of stream,
 * CIO_EBADRESP, -ENOMEM, or the stream's error. */
static int read_reply(cio_redis *c, cio_stream *s, cio_redis_reply **out)
{
    size_t want = 1;
    for (;;) {
        const void *data;
        ssize_t n = cio_stream_peek(s, &data, want);
        if (n < 0)
            return n == -ENOBUFS ? CIO_EBADRESP : (int)n;
        if ((size_t)n < want)
            return -ECONNRESET; /* the server closed the connection */
        size_t used = 0;
        int rc = cio__resp_parse(&c->parser, data, (size_t)n, &used, out);
        if (used > 0)
            cio_stream_consume(s, used);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        want = (size_t)n - used + 1;
    }
}

/* ---- requests and failure ------------------------------------------------ */

static void req_free_replies(req *r)
{
    for (size_t i = 0; i < r->got; i++) {
        cio_redis_reply_free(r->replies[i]);
        r->replies[i] = NULL;
    }
}

static void req_free(req *r)
{
    if (r->replies != &r->one)
        cio__free(r->replies);
    cio__free(r);
}

static req *req_new(size_t n)
{
    req *r = cio__calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->n = n;
    r->replies = &r->one;
    if (n > 1) {
        r->replies = cio__calloc(n, sizeof *r->replies);
        if (r->replies == NULL) {
            cio__free(r);
            return NULL;
        }
    }
    r->waiting = true;
    cio_event_init(&r->ev);
    return r;
}

/* Complete the head request with `err` (0: all replies in) and pop it. */
static void finish_head(cio_redis *c, int err)
{
    req *r = c->head;
    c->head = r->next;
    if (c->head == NULL) {
        c->tail = NULL;
        c->last_io = cio_now();
    }
    c->owed -= r->n - r->got;
    r->done = true;
    r->err = err;
    if (err < 0)
        req_free_replies(r);
    if (r->waiting) {
        cio_event_set(&r->ev);
    } else {
        req_free_replies(r);
        req_free(r);
    }
}

/* The connection failed with `err`: fail every request, drop the socket.
 * The next command reconnects (unless no_reconnect). */
static void conn_fail(cio_redis *c, int err)
{
    if (err == CIO_EOF || err == -EPIPE)
        err = -ECONNRESET;
    c->err = err;
    while (c->head != NULL)
        finish_head(c, err);
    cio__resp_reset(&c->parser);
    cio_stream *s = c->s;
    c->s = NULL;
    if (s != NULL) {
        /* Whatever is still queued could only go to a broken peer: shut
         * the socket so that the close does not wait to flush it. */
        shutdown(cio_stream_fd(s), SHUT_RDWR);
        cio_stream_close(s);
    }
}

/* Read one reply and hand it to the head request. */
static int read_for_head(cio_redis *c)
{
    cio_redis_reply *rep;
    int rc = read_reply(c, c->s, &rep);
    if (rc < 0)
        return rc;
    if (rep->type == CIO_REDIS_PUSH) {
        /* Out-of-band (RESP3): not the answer to any request. */
        if (c->cfg.on_push != NULL)
            c->cfg.on_push(rep, c->cfg.push_arg);
        cio_redis_reply_free(rep);
        return 0;
    }
    req *r = c->head;
    if (r == NULL) {
        cio_redis_reply_free(rep);
        return CIO_EBADRESP; /* a reply nobody asked for */
    }
    r->replies[r->got++] = rep;
    c->owed--;
    if (r->got == r->n)
        finish_head(c, 0);
    return 0;
}

/* Wake the first owner still waiting, so that it becomes the reader. */
static void hand_off(cio_redis *c)
{
    for (req *r = c->head; r != NULL; r = r->next) {
        if (r->waiting) {
            cio_event_set(&r->ev);
            return;
        }
    }
}

/* Wait until `r` is done, reading replies when it is our turn. Returns
 * r->err once done, or -ECANCELED (r is not done). */
static int await_req(cio_redis *c, req *r)
{
    int rc = 0;
    while (!r->done) {
        cio_stream *s = c->s;
        if (!c->reading && s != NULL) {
            c->reading = true;
            rc = read_for_head(c);
            c->reading = false;
            if (rc == -ECANCELED)
                break;
            /* Unless another task failed the connection meanwhile. */
            if (rc < 0 && c->s == s)
                conn_fail(c, rc);
            rc = 0;
            continue;
        }
        rc = cio_event_wait(&r->ev);
        if (rc < 0)
            break;
        cio_event_clear(&r->ev);
    }
    if (!r->done) {
        /* Abandoned: its replies are freed as they come. */
        r->waiting = false;
        req_free_replies(r);
    }
    if (!c->reading)
        hand_off(c);
    return r->done ? r->err : rc;
}

/* ---- connecting ---------------------------------------------------------- */

/* Encode into the scratch buffer. */
static int encode(cio_redis *c, int argc, const char *const *argv,
                  const size_t *argvlen)
{
    return cio__resp_encode(&c->wbuf, &c->wlen, &c->wcap, argc, argv, argvlen);
}

static void scratch_done(cio_redis *c)
{
    c->wlen = 0;
    if (c->wcap > WBUF_KEEP) {
        cio__free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
}

/* The handshake commands, encoded into the scratch buffer. Returns how
 * many, or -ENOMEM. */
static int encode_handshake(cio_redis *c)
{
    int n = 0;
    const char *user = c->user ? c->user : "default";
    if (c->cfg.protocol == 3) {
        const char *v[] = {"HELLO", "3", "AUTH", user, c->pass};
        if (encode(c, c->pass ? 5 : 2, v, NULL) < 0)
            return -ENOMEM;
        n++;
    } else if (c->pass != NULL) {
        const char *v[] = {"AUTH", c->user ? c->user : c->pass, c->pass};
        if (encode(c, c->user ? 3 : 2, v, NULL) < 0)
            return -ENOMEM;
        n++;
    }
    if (c->cfg.db > 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->cfg.db);
        const char *v[] = {"SELECT", db};
        if (encode(c, 2, v, NULL) < 0)
            return -ENOMEM;
        n++;
    }
    return n;
}

/* The subscriptions to renew after a reconnect, encoded. */
static int encode_resubscribe(cio_redis *c)
{
    name_list *lists[2] = {&c->chans, &c->pats};
    const char *cmds[2] = {"SUBSCRIBE", "PSUBSCRIBE"};
    for (int k = 0; k < 2; k++) {
        name_list *l = lists[k];
        if (l->n == 0)
            continue;
        const char **v = cio__malloc((l->n + 1) * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        v[0] = cmds[k];
        for (size_t i = 0; i < l->n; i++)
            v[i + 1] = l->v[i];
        int rc = encode(c, (int)l->n + 1, v, NULL);
        cio__free(v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int open_stream(cio_redis *c, cio_stream **s)
{
    cio_stream_opts o = {.limit = c->parser.lim.max_line + 64};
    if (c->unix_path == NULL)
        return cio_open_connection(s, c->host, c->cfg.port, &o);
    cio_addr a;
    int fd;
    int rc = cio_addr_unix(&a, c->unix_path);
    if (rc < 0)
        return rc;
    rc = cio_connect_addr(&fd, &a);
    if (rc < 0)
        return rc;
    return cio_stream_open(s, fd, &o);
}

/* Connect and run the handshake on a private stream; publish it in c->s
 * only once ready. */
static int do_connect(cio_redis *c)
{
    cio_stream *s = NULL;
    int rc = open_stream(c, &s);
    if (rc < 0)
        return rc;
    c->wlen = 0;
    int n = encode_handshake(c);
    rc = n;
    if (rc >= 0 && c->wlen > 0)
        rc = cio_stream_write(s, c->wbuf, c->wlen);
    for (int i = 0; rc >= 0 && i < n; i++) {
        cio_redis_reply *rep;
        rc = read_reply(c, s, &rep);
        if (rc == 0 && rep->type == CIO_REDIS_ERROR)
            rc = CIO_ESERVER;
        if (rc == 0 || rc == CIO_ESERVER)
            cio_redis_reply_free(rep);
    }
    c->wlen = 0;
    if (rc >= 0 && c->sub_mode) {
        /* The confirmations are skipped by cio_redis_next_message. */
        rc = encode_resubscribe(c);
        if (rc >= 0)
            rc = cio_stream_write(s, c->wbuf, c->wlen);
    }
    scratch_done(c);
    cio__resp_reset(&c->parser);
    if (rc < 0) {
        shutdown(cio_stream_fd(s), SHUT_RDWR);
        cio_stream_close(s);
        return rc;
    }
    c->s = s;
    c->err = 0;
    c->last_io = cio_now();
    return 0;
}

static int connect_timed(cio_redis *c)
{
    cio_scope sc;
    bool timed = c->cfg.connect_timeout > 0;
    if (timed) {
        int rc =
            cio_scope_enter(&sc, cio_deadline_after(c->cfg.connect_timeout), 0);
        if (rc < 0)
            return rc;
    }
    int rc = do_connect(c);
    if (timed && cio_scope_exit(&sc) == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    return rc;
}

/* An idle connection may have been closed by the server (restart,
 * timeout, CLIENT KILL) without our noticing: peek before sending so that
 * the command goes on a fresh connection instead of failing. */
static void probe_idle(cio_redis *c)
{
    if (c->head != NULL || c->reading || cio__resp_busy(&c->parser) ||
        cio_stream_buffered(c->s) > 0 || cio_now() - c->last_io < IDLE_PROBE)
        return;
    char b;
    ssize_t k = recv(cio_stream_fd(c->s), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
        conn_fail(c, -ECONNRESET);
}

/* Make sure the connection is up, reconnecting if allowed. */
static int ensure_conn(cio_redis *c)
{
    if (c->s != NULL)
        probe_idle(c);
    if (c->s != NULL)
        return 0;
    if (c->cfg.no_reconnect && c->err < 0)
        return -ENOTCONN;
    int rc = cio_mutex_lock(&c->connect_lock);
    if (rc < 0)
        return rc;
    if (c->s == NULL)
        rc = connect_timed(c);
    cio_mutex_unlock(&c->connect_lock);
    return rc;
}

int cio_redis_connect(cio_redis **out, const cio_redis_config *cfg)
{
    if (out == NULL || cfg == NULL)
        return -EINVAL;
    if (cio_current() == NULL)
        return CIO_ENOTASK;
    cio_redis *c;
    int rc = conn_new(&c, cfg);
    if (rc < 0)
        return rc;
    rc = connect_timed(c);
    if (rc < 0) {
        conn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cio_redis_close(cio_redis *c)
{
    if (c == NULL)
        return;
    conn_fail(c, -EBADF);
    conn_free(c);
}

size_t cio_redis_pending(const cio_redis *c)
{
    return c ? c->owed : 0;
}

bool cio_redis_connected(const cio_redis *c)
{
    return c != NULL && c->s != NULL;
}

int cio_redis_protocol(const cio_redis *c)
{
    return c ? c->cfg.protocol : -EINVAL;
}

/* ---- commands ------------------------------------------------------------ */

/* Send the `n` commands (with `pre`/`post` around them when non-NULL) in
 * one write and queue a request for their replies. */
static int submit(cio_redis *c, const cio_redis_argv *pre, size_t n,
                  const cio_redis_argv *cmds, const cio_redis_argv *post,
                  req **out)
{
    int rc = ensure_conn(c);
    if (rc < 0)
        return rc;
    size_t total = n + (pre != NULL) + (post != NULL);
    req *r = req_new(total);
    if (r == NULL)
        return -ENOMEM;
    c->wlen = 0;
    if (pre != NULL)
        rc = encode(c, pre->argc, pre->argv, pre->argvlen);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = encode(c, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
    if (rc == 0 && post != NULL)
        rc = encode(c, post->argc, post->argv, post->argvlen);
    /* Writing never suspends: the command joins the stream's queue in
     * full, or not at all. */
    if (rc == 0)
        rc = cio_stream_write(c->s, c->wbuf, c->wlen);
    scratch_done(c);
    if (rc < 0) {
        req_free(r);
        if (rc != -ENOMEM)
            conn_fail(c, rc);
        return rc;
    }
    if (c->tail != NULL)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->owed += total;
    *out = r;
    return 0;
}

/* Give up on `r` after an error: free it if done, else await_req has
 * abandoned it and the connection frees it. */
static void req_drop(req *r)
{
    if (r->done) {
        req_free_replies(r);
        req_free(r);
    }
}

static bool arg_is(const cio_redis_argv *cmd, int i, const char *word)
{
    size_t n = cmd->argvlen ? cmd->argvlen[i] : strlen(cmd->argv[i]);
    return n == strlen(word) && strncasecmp(cmd->argv[i], word, n) == 0;
}

/* Commands that answer with other than one reply each (the subscribe
 * family, MONITOR, CLIENT REPLY OFF/SKIP) would put the FIFO out of step:
 * they are refused here (pub/sub has its own calls). */
static bool breaks_fifo(const cio_redis_argv *cmd)
{
    static const char *const words[] = {
        "SUBSCRIBE",   "PSUBSCRIBE",   "SSUBSCRIBE",
        "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
        "MONITOR",     "SYNC",         "PSYNC",
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (arg_is(cmd, 0, words[i]))
            return true;
    return cmd->argc >= 2 && arg_is(cmd, 0, "CLIENT") &&
           arg_is(cmd, 1, "REPLY");
}

static int check_argv(const cio_redis_argv *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].argc < 1 || cmds[i].argv == NULL)
            return -EINVAL;
        for (int k = 0; k < cmds[i].argc; k++)
            if (cmds[i].argv[k] == NULL)
                return -EINVAL;
        if (breaks_fifo(&cmds[i]))
            return -EINVAL;
    }
    return 0;
}

/* Run a batch and move its replies into `replies`. */
static int run_batch(cio_redis *c, const cio_redis_argv *pre, size_t n,
                     const cio_redis_argv *cmds, const cio_redis_argv *post,
                     cio_redis_reply **replies)
{
    if (c->sub_mode || c->sub_busy)
        return -EBUSY;
    req *r;
    int rc = submit(c, pre, n, cmds, post, &r);
    if (rc < 0)
        return rc;
    rc = await_req(c, r);
    if (rc < 0) {
        req_drop(r);
        return rc;
    }
    memcpy(replies, r->replies, r->n * sizeof *replies);
    req_free(r);
    return 0;
}

/* run_batch under the configured command timeout. */
static int run_timed(cio_redis *c, const cio_redis_argv *pre, size_t n,
                     const cio_redis_argv *cmds, const cio_redis_argv *post,
                     cio_redis_reply **replies)
{
    cio_scope sc;
    bool timed = c->cfg.command_timeout > 0;
    if (timed) {
        int rc =
            cio_scope_enter(&sc, cio_deadline_after(c->cfg.command_timeout), 0);
        if (rc < 0)
            return rc;
    }
    int rc = run_batch(c, pre, n, cmds, post, replies);
    if (timed && cio_scope_exit(&sc) == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    return rc;
}

int cio_redis_command(cio_redis *c, cio_redis_reply **reply, int argc,
                      const char *const *argv, const size_t *argvlen)
{
    if (c == NULL || reply == NULL)
        return -EINVAL;
    *reply = NULL;
    cio_redis_argv cmd = {argc, argv, argvlen};
    int rc = check_argv(&cmd, 1);
    if (rc < 0)
        return rc;
    cio_redis_reply *rep = NULL;
    rc = run_timed(c, NULL, 1, &cmd, NULL, &rep);
    if (rc < 0)
        return rc;
    *reply = rep;
    return rep->type == CIO_REDIS_ERROR ? CIO_ESERVER : 0;
}

int cio_redis_cmd(cio_redis *c, cio_redis_reply **reply, const char *cmd, ...)
{
    const char *argv[MAX_CMD_ARGS];
    int argc = 0;
    va_list ap;
    va_start(ap, cmd);
    for (const char *a = cmd; a != NULL; a = va_arg(ap, const char *)) {
        if (argc == MAX_CMD_ARGS) {
            va_end(ap);
            return -E2BIG;
        }
        argv[argc++] = a;
    }
    va_end(ap);
    cio_redis_reply *rep = NULL;
    int rc = cio_redis_command(c, &rep, argc, argv, NULL);
    if (reply != NULL)
        *reply = rep;
    else
        cio_redis_reply_free(rep);
    return rc;
}

int cio_redis_pipeline(cio_redis *c, size_t n, const cio_redis_argv *cmds,
                       cio_redis_reply **replies)
{
    if (c == NULL || (n > 0 && (cmds == NULL || replies == NULL)))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    int rc = check_argv(cmds, n);
    if (rc < 0 || n == 0)
        return rc < 0 ? rc : cio_checkpoint();
    return run_timed(c, NULL, n, cmds, NULL, replies);
}

/* ---- transactions -------------------------------------------------------- */

int cio_redis_transaction(cio_redis *c, cio_redis_reply **reply, size_t n,
                          const cio_redis_argv *cmds)
{
    if (c == NULL || reply == NULL || (n > 0 && cmds == NULL))
        return -EINVAL;
    *reply = NULL;
    int rc = check_argv(cmds, n);
    if (rc < 0)
        return rc;
    cio_redis_reply **reps = cio__calloc(n + 2, sizeof *reps);
    if (reps == NULL)
        return -ENOMEM;
    static const char *const multi[] = {"MULTI"}, *const exec[] = {"EXEC"};
    cio_redis_argv pre = {1, multi, NULL}, post = {1, exec, NULL};
    rc = run_timed(c, &pre, n, cmds, &post, reps);
    if (rc == 0) {
        cio_redis_reply *e = reps[n + 1];
        if (reps[0]->type == CIO_REDIS_ERROR) {
            rc = CIO_ESERVER; /* MULTI refused (nested MULTI) */
            *reply = reps[0];
            reps[0] = NULL;
        } else if (e->type == CIO_REDIS_NIL) {
            rc = -EAGAIN; /* a WATCHed key changed */
        } else {
            rc = e->type == CIO_REDIS_ERROR ? CIO_ESERVER : 0;
            *reply = e;
            reps[n + 1] = NULL;
        }
        for (size_t i = 0; i < n + 2; i++)
            cio_redis_reply_free(reps[i]);
    }
    cio__free(reps);
    return rc;
}

static int simple(cio_redis *c, int argc, const char *const *argv)
{
    cio_redis_reply *rep;
    int rc = cio_redis_command(c, &rep, argc, argv, NULL);
    cio_redis_reply_free(rep);
    return rc;
}

int cio_redis_watch(cio_redis *c, size_t n, const char *const *keys)
{
    if (c == NULL || n == 0 || keys == NULL || n >= MAX_CMD_ARGS)
        return n >= MAX_CMD_ARGS ? -E2BIG : -EINVAL;
    const char *argv[MAX_CMD_ARGS];
    argv[0] = "WATCH";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = keys[i];
    return simple(c, (int)n + 1, argv);
}

int cio_redis_unwatch(cio_redis *c)
{
    static const char *const argv[] = {"UNWATCH"};
    return c ? simple(c, 1, argv) : -EINVAL;
}

/* ---- pub/sub ------------------------------------------------------------- */

void cio_redis_message_free(cio_redis_message *m)
{
    if (m == NULL)
        return;
    cio_redis_reply_free(m->cio__reply);
    cio__free(m);
}

static bool is_str(const cio_redis_reply *r)
{
    return r->type == CIO_REDIS_STRING || r->type == CIO_REDIS_STATUS;
}

/* What a pub/sub frame is: a message (1), a (un)subscribe confirmation
 * (2, with the subscription count in *count), or something else (0). */
static int classify(const cio_redis_reply *r, long long *count)
{
    if ((r->type != CIO_REDIS_ARRAY && r->type != CIO_REDIS_PUSH) ||
        r->len < 2 || !is_str(r->elem[0]))
        return 0;
    const char *k = r->elem[0]->str;
    if (strstr(k, "subscribe") != NULL && r->len == 3 &&
        r->elem[2]->type == CIO_REDIS_INTEGER) {
        *count = r->elem[2]->integer;
        return 2;
    }
    size_t want = strcmp(k, "pmessage") == 0 ? 4 : 3;
    if (strcmp(k, "message") != 0 && strcmp(k, "smessage") != 0 && want != 4)
        return 0;
    if (r->len != want)
        return 0;
    for (size_t i = 1; i < want; i++)
        if (!is_str(r->elem[i]))
            return 0;
    return 1;
}

/* A message from a classified frame (takes `r`). */
static int make_message(cio_redis_reply *r, cio_redis_message **out)
{
    cio_redis_message *m = cio__calloc(1, sizeof *m);
    if (m == NULL) {
        cio_redis_reply_free(r);
        return -ENOMEM;
    }
    const char *k = r->elem[0]->str;
    size_t i = 1;
    m->kind = k[0] == 'p'   ? CIO_REDIS_PMESSAGE
              : k[0] == 's' ? CIO_REDIS_SMESSAGE
                            : CIO_REDIS_MESSAGE;
    if (m->kind == CIO_REDIS_PMESSAGE) {
        m->pattern = r->elem[1]->str;
        m->pattern_len = r->elem[1]->len;
        i = 2;
    }
    m->channel = r->elem[i]->str;
    m->channel_len = r->elem[i]->len;
    m->data = r->elem[i + 1]->str;
    m->data_len = r->elem[i + 1]->len;
    m->cio__reply = r;
    *out = m;
    return 0;
}

static int mq_push(cio_redis *c, cio_redis_message *m)
{
    if (c->mq_n == c->mq_cap) {
        if (c->mq_off > 0) {
            memmove(c->mq, c->mq + c->mq_off,
                    (c->mq_n - c->mq_off) * sizeof *c->mq);
            c->mq_n -= c->mq_off;
            c->mq_off = 0;
        } else {
            size_t cap = c->mq_cap ? c->mq_cap * 2 : 8;
            void *v = cio__realloc(c->mq, cap * sizeof *c->mq);
            if (v == NULL) {
                cio_redis_message_free(m);
                return -ENOMEM;
            }
            c->mq = v;
            c->mq_cap = cap;
        }
    }
    c->mq[c->mq_n++] = m;
    return 0;
}

/* Read frames on a subscriber connection until a message arrives (1, in
 * *msg) or, when `confirms` is non-NULL, until *confirms confirmations
 * have come (0; messages meanwhile are queued). */
static int sub_read(cio_redis *c, size_t *confirms, cio_redis_message **msg)
{
    for (;;) {
        if (c->s == NULL)
            return c->err < 0 ? c->err : -ENOTCONN;
        cio_redis_reply *r;
        cio_stream *s = c->s;
        int rc = read_reply(c, s, &r);
        if (rc < 0) {
            if (rc != -ECANCELED && c->s == s)
                conn_fail(c, rc);
            return rc;
        }
        long long count = 0;
        int kind = classify(r, &count);
        if (kind == 1) {
            cio_redis_message *m;
            rc = make_message(r, &m);
            if (rc == 0 && confirms == NULL) {
                *msg = m;
                return 1;
            }
            if (rc == 0)
                rc = mq_push(c, m);
            if (rc < 0)
                return rc;
            continue;
        }
        cio_redis_reply_free(r);
        if (kind == 2 && count == 0 && c->chans.n == 0 && c->pats.n == 0)
            c->sub_mode = false;
        if (kind == 2 && confirms != NULL && --*confirms == 0)
            return 0;
        if (!c->sub_mode && confirms == NULL)
            return -ENOTCONN; /* the last subscription ended */
    }
}

static int names_add(name_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0)
            return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        void *v = cio__realloc(l->v, cap * sizeof *l->v);
        if (v == NULL)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = cio__strdup(name);
    if (l->v[l->n] == NULL)
        return -ENOMEM;
    l->n++;
    return 0;
}

static void names_del(name_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], name) == 0) {
            cio__free(l->v[i]);
            l->v[i] = l->v[--l->n];
            return;
        }
    }
}

/* SUBSCRIBE / UNSUBSCRIBE and their confirmations. */
static int sub_call(cio_redis *c, const char *cmd, size_t n,
                    const char *const *names, size_t confirms)
{
    const char **v = cio__malloc((n + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    v[0] = cmd;
    for (size_t i = 0; i < n; i++)
        v[i + 1] = names[i];
    c->wlen = 0;
    int rc = encode(c, (int)n + 1, v, NULL);
    cio__free(v);
    if (rc == 0)
        rc = cio_stream_write(c->s, c->wbuf, c->wlen);
    scratch_done(c);
    if (rc < 0) {
        if (rc != -ENOMEM)
            conn_fail(c, rc);
        return rc;
    }
    return sub_read(c, &confirms, NULL);
}

static int sub_enter(cio_redis *c)
{
    if (c->sub_busy || c->reading || c->head != NULL)
        return -EBUSY;
    c->sub_busy = true;
    return 0;
}

int cio_redis_subscribe(cio_redis *c, size_t n, const char *const *names,
                        bool patterns)
{
    if (c == NULL || n == 0 || names == NULL)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (names[i] == NULL)
            return -EINVAL;
    int rc = sub_enter(c);
    if (rc < 0)
        return rc;
    rc = ensure_conn(c);
    name_list *l = patterns ? &c->pats : &c->chans;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = names_add(l, names[i]);
    if (rc == 0) {
        c->sub_mode = true;
        rc = sub_call(c, patterns ? "PSUBSCRIBE" : "SUBSCRIBE", n, names, n);
    }
    c->sub_busy = false;
    return rc;
}

int cio_redis_unsubscribe(cio_redis *c, size_t n, const char *const *names,
                          bool patterns)
{
    if (c == NULL || (n > 0 && names == NULL))
        return -EINVAL;
    if (!c->sub_mode)
        return -ENOTCONN;
    int rc = sub_enter(c);
    if (rc < 0)
        return rc;
    rc = ensure_conn(c);
    name_list *l = patterns ? &c->pats : &c->chans;
    size_t confirms = n > 0 ? n : (l->n > 0 ? l->n : 1);
    if (n == 0)
        free_names(l);
    for (size_t i = 0; i < n; i++)
        names_del(l, names[i]);
    if (rc == 0)
        rc = sub_call(c, patterns ? "PUNSUBSCRIBE" : "UNSUBSCRIBE", n, names,
                      confirms);
    c->sub_busy = false;
    return rc;
}

int cio_redis_next_message(cio_redis *c, cio_redis_message **msg,
                           int64_t deadline)
{
    if (c == NULL || msg == NULL || deadline < 0)
        return -EINVAL;
    if (c->sub_busy)
        return -EBUSY;
    if (c->mq_off < c->mq_n) {
        int rc = cio_checkpoint();
        if (rc < 0)
            return rc;
        *msg = c->mq[c->mq_off++];
        if (c->mq_off == c->mq_n)
            c->mq_off = c->mq_n = 0;
        return 0;
    }
    if (!c->sub_mode)
        return -ENOTCONN;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, deadline, 0);
    if (rc < 0)
        return rc;
    c->sub_busy = true;
    rc = ensure_conn(c);
    if (rc == 0)
        rc = sub_read(c, NULL, msg);
    c->sub_busy = false;
    int x = cio_scope_exit(&sc);
    if (x == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    return rc < 0 ? rc : 0;
}

static int messages_fn(cio_gen *g, void *arg)
{
    cio_redis *c = arg;
    for (;;) {
        cio_redis_message *m;
        int rc = cio_redis_next_message(c, &m, CIO_NEVER);
        if (rc < 0)
            return rc;
        /* The consumer borrows m until it asks for the next one. */
        rc = cio_gen_yield(g, m);
        cio_redis_message_free(m);
        if (rc < 0)
            return rc == -EPIPE ? 0 : rc;
    }
}

int cio_redis_messages(cio_gen **out, cio_redis *c)
{
    if (out == NULL || c == NULL)
        return -EINVAL;
    return cio_gen_new(out, messages_fn, c);
}

/* ---- pool ---------------------------------------------------------------- */

struct cio_redis_pool {
    cio_pool *pool;
    cio_redis *proto; /* never connected: holds the copied configuration */
};

static int pool_open(void *ctx, void **conn)
{
    cio_redis_pool *p = ctx;
    cio_redis *c;
    int rc = cio_redis_connect(&c, &p->proto->cfg);
    if (rc == 0)
        *conn = c;
    return rc;
}

/* close, check and reset use no ctx: after a forced pool close they may
 * run once cio_redis_pool_close has freed it. */
static void pool_close(void *ctx, void *conn)
{
    (void)ctx;
    cio_redis_close(conn);
}

static int pool_check(void *ctx, void *conn)
{
    (void)ctx;
    cio_redis_reply *r;
    int rc = cio_redis_cmd(conn, &r, "PING", NULL);
    cio_redis_reply_free(r);
    return rc;
}

static int pool_reset(void *ctx, void *conn)
{
    (void)ctx;
    cio_redis *c = conn;
    if (c->s == NULL || c->owed > 0 || c->sub_mode || c->mq_n > c->mq_off)
        return -EIO;
    return 0;
}

int cio_redis_pool_create(cio_redis_pool **out, const cio_redis_config *rcfg,
                          const cio_pool_config *pcfg)
{
    if (out == NULL || rcfg == NULL)
        return -EINVAL;
    cio_redis_pool *p = cio__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    int rc = conn_new(&p->proto, rcfg);
    if (rc < 0) {
        cio__free(p);
        return rc;
    }
    cio_pool_config pc = {0};
    if (pcfg != NULL)
        pc = *pcfg;
    pc.open = pool_open;
    pc.close = pool_close;
    pc.check = pool_check;
    pc.reset = pool_reset;
    pc.ctx = p;
    rc = cio_pool_create(&p->pool, &pc);
    if (rc < 0) {
        conn_free(p->proto);
        cio__free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int cio_redis_pool_acquire(cio_redis_pool *p, cio_redis **c)
{
    if (p == NULL || c == NULL)
        return -EINVAL;
    void *conn;
    int rc = cio_pool_acquire(p->pool, &conn);
    if (rc == 0)
        *c = conn;
    return rc;
}

int cio_redis_pool_release(cio_redis_pool *p, cio_redis *c, bool broken)
{
    if (p == NULL || c == NULL)
        return -EINVAL;
    return cio_pool_release(p->pool, c, broken);
}

int cio_redis_pool_stats(const cio_redis_pool *p, cio_pool_stats *out)
{
    if (p == NULL)
        return -EINVAL;
    return cio_pool_stats_get(p->pool, out);
}

int cio_redis_pool_close(cio_redis_pool *p)
{
    if (p == NULL)
        return 0;
    int rc = cio_pool_close(p->pool);
    conn_free(p->proto);
    cio__free(p);
    return rc;
}
