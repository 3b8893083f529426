/* The PostgreSQL client: libpq in non-blocking mode, driven by fd waits.
 *
 * Every call follows one shape: send with libpq (which only queues),
 * flush while also reading (the server may answer before it has read
 * everything: both sides blocked on a full socket buffer otherwise), wait
 * for results while PQisBusy, and read them all so that the connection is
 * idle again. A wait interrupted by cancellation or a deadline leaves the
 * protocol mid-stream: recover() then sends a cancel request (PQcancel
 * blocks: it runs on an executor thread) and drains every pending result
 * in a shielded scope, or marks the connection broken. */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <libpq-fe.h>

#include "internal.h"
#include "cio/pg.h"

#define FLUSH_EVERY ((size_t)64 * 1024) /* COPY FROM: bound libpq's buffer */
#define SMALL_PARAMS 16
#define MAX_PARAMS 65535 /* the protocol's limit */
/* drain(): repeat an unanswered cancel request after this, doubling. */
#define CANCEL_RESEND (200 * CIO_MSEC)

/* Where the protocol is between calls. */
enum { ST_IDLE, ST_COPY_IN, ST_COPY_OUT };
/* collect(): stop at no COPY state. */
#define NO_COPY (-1)

struct cio_pg {
    PGconn *pq;
    int mode;
    bool inside; /* a task is inside a call */
    bool broken;
    bool dirty; /* session state that the pool resets with DISCARD ALL */
    int tx_depth;
    int syncs;        /* pipeline syncs sent and not yet read */
    size_t unflushed; /* COPY FROM bytes queued since the buffer was empty */
    char sqlstate[6];
    char *msg, *detail;
    char *copy_row; /* the row cio_pg_copy_read returned last */
    cio_pg_notice_fn notice;
    void *notice_arg;
};

struct cio_pg_result {
    PGresult *r;
};

/* ---- errors -------------------------------------------------------------- */

static void err_clear(cio_pg *c)
{
    c->sqlstate[0] = '\0';
    cio__free(c->msg);
    cio__free(c->detail);
    c->msg = c->detail = NULL;
}

/* Copy `s` without its trailing newlines. */
static char *dup_trim(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    char *d = cio__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void err_set(cio_pg *c, const char *state, const char *msg,
                    const char *detail)
{
    err_clear(c);
    if (state)
        snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state);
    c->msg = dup_trim(msg);
    c->detail = dup_trim(detail);
}

static int err_result(cio_pg *c, const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (msg == NULL)
        msg = PQresultErrorMessage(r);
    err_set(c, state, msg, PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL));
    return CIO_ESERVER;
}

/* libpq reports connection failures only as text, made with strerror in
 * the same locale: find the errno whose text it contains. */
static int errno_of(const char *msg, int fallback)
{
    static const int codes[] = {
        ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH,  ENETUNREACH, ENOENT,
        ECONNRESET,   EACCES,    EADDRNOTAVAIL, EPIPE,       ECONNABORTED,
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strstr(msg, strerror(codes[i])) != NULL)
            return -codes[i];
    return fallback;
}

/* libpq said a call failed: keep its text, and mark the connection broken
 * when it is lost. */
static int err_conn(cio_pg *c)
{
    const char *m = PQerrorMessage(c->pq);
    err_set(c, NULL, m, NULL);
    if (PQstatus(c->pq) != CONNECTION_OK) {
        c->broken = true;
        return errno_of(m, -ECONNRESET);
    }
    return errno_of(m, -EIO);
}

/* Notices, and errors that arrive outside a query: a FATAL one (an
 * administrator ended the session, the server shuts down) means the
 * server is closing the connection. */
static void notice_cb(void *arg, const PGresult *r)
{
    cio_pg *c = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        c->broken = true;
    if (c->notice)
        c->notice(PQresultErrorMessage(r), c->notice_arg);
}

/* ---- waiting ------------------------------------------------------------- */

static int wait_fd(cio_pg *c, unsigned ev, int64_t deadline)
{
    int fd = PQsocket(c->pq);
    if (fd < 0) {
        c->broken = true;
        return -ENOTCONN;
    }
    return cio_fd_wait(fd, ev, deadline);
}

static int consume(cio_pg *c)
{
    if (!PQconsumeInput(c->pq))
        return err_conn(c);
    return 0;
}

/* Send what libpq has queued, reading meanwhile. */
static int flush_out(cio_pg *c)
{
    for (;;) {
        int r = PQflush(c->pq);
        if (r == 0)
            return 0;
        if (r < 0)
            return err_conn(c);
        int ev = wait_fd(c, CIO_READABLE | CIO_WRITABLE, CIO_NEVER);
        if (ev < 0)
            return ev;
        if (ev & CIO_READABLE) {
            int rc = consume(c);
            if (rc < 0)
                return rc;
        }
    }
}

/* Wait until PQgetResult would not block. */
static int await_result(cio_pg *c)
{
    while (PQisBusy(c->pq)) {
        int rc = wait_fd(c, CIO_READABLE, CIO_NEVER);
        if (rc < 0)
            return rc;
        rc = consume(c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- cancellation and recovery ------------------------------------------- */

typedef struct cancel_job {
    PGcancel *cn;
    int ok;
    char err[256];
} cancel_job;

static int cancel_fn(void *arg)
{
    cancel_job *j = arg;
    j->ok = PQcancel(j->cn, j->err, sizeof j->err);
    return 0;
}

/* Ask the server to cancel what the session runs. */
static int send_cancel(cio_pg *c)
{
    cancel_job j = {.cn = PQgetCancel(c->pq)};
    if (j.cn == NULL)
        return -ENOMEM;
    int rc = cio_to_thread(cancel_fn, &j);
    PQfreeCancel(j.cn);
    if (rc < 0)
        return rc;
    return j.ok ? 0 : errno_of(j.err, -ECONNREFUSED);
}

/* Throw away the rest of a COPY TO. */
static int discard_copy_out(cio_pg *c)
{
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(c->pq, &buf, 1);
        if (buf)
            PQfreemem(buf);
        if (n > 0)
            continue;
        if (n == -1)
            return 0;
        if (n == -2)
            return err_conn(c);
        int rc = wait_fd(c, CIO_READABLE, CIO_NEVER);
        if (rc < 0)
            return rc;
        rc = consume(c);
        if (rc < 0)
            return rc;
    }
}

/* State of one drain(). */
typedef struct drainer {
    bool cancelled, have_err;
    int64_t resend, gap;
} drainer;

/* Wait for more of the pending results, asking the server to cancel.
 * A cancel that reaches the backend before it has read the query is
 * ignored (it only cancels a running statement): send it again while the
 * result does not come. Only this query is in flight, so a repeat cannot
 * hit another. */
static int drain_wait(cio_pg *c, drainer *d)
{
    if (cio_now() >= d->resend) {
        d->cancelled = true;
        int rc = send_cancel(c);
        if (rc < 0)
            return rc;
        d->resend = cio_now() + d->gap;
        d->gap *= 2;
    }
    int rc = wait_fd(c, CIO_READABLE, d->resend);
    if (rc == -ETIMEDOUT)
        return 0;
    return rc < 0 ? rc : consume(c);
}

/* Deal with one result read while draining. */
static int drain_result(cio_pg *c, drainer *d, const PGresult *r)
{
    int rc = 0;
    switch (PQresultStatus(r)) {
    case PGRES_FATAL_ERROR:
        if (!d->have_err)
            err_result(c, r);
        d->have_err = true;
        break;
    case PGRES_COPY_IN:
        if (PQputCopyEnd(c->pq, "cancelled by the client") < 0)
            rc = err_conn(c);
        if (!d->cancelled) /* the server answers this without a cancel */
            d->resend = cio_now() + CANCEL_RESEND;
        break;
    case PGRES_COPY_OUT:
        if (!d->cancelled) {
            d->cancelled = true;
            rc = send_cancel(c);
        }
        if (rc == 0)
            rc = discard_copy_out(c);
        break;
    case PGRES_COPY_BOTH:
        rc = -EPROTO;
        break;
    case PGRES_PIPELINE_SYNC:
        c->syncs--;
        break;
    default:
        break;
    }
    return rc;
}

/* Read every pending result, sending cancel requests while one would
 * have to be waited for. The first error seen (57014 after a cancel) is
 * kept on `c`. */
static int drain(cio_pg *c)
{
    drainer d = {.resend = 0, .gap = CANCEL_RESEND};
    /* A pipeline cut short before its Sync: the server sends nothing
     * until it sees one. */
    if (PQpipelineStatus(c->pq) != PQ_PIPELINE_OFF && c->syncs == 0) {
        if (!PQpipelineSync(c->pq))
            return err_conn(c);
        c->syncs++;
    }
    for (;;) {
        int rc = flush_out(c);
        if (rc == 0 && PQisBusy(c->pq)) {
            rc = drain_wait(c, &d);
            if (rc == 0)
                continue;
        }
        if (rc < 0)
            return rc;
        PGresult *r = PQgetResult(c->pq);
        if (r == NULL) {
            if (c->syncs > 0 && PQstatus(c->pq) == CONNECTION_OK)
                continue; /* pipeline: more queries' results follow */
            break;
        }
        rc = drain_result(c, &d, r);
        PQclear(r);
        if (rc < 0)
            return rc;
    }
    if (PQstatus(c->pq) != CONNECTION_OK)
        return -ECONNRESET;
    if (PQpipelineStatus(c->pq) != PQ_PIPELINE_OFF &&
        !PQexitPipelineMode(c->pq))
        return -EPROTO;
    c->syncs = 0;
    c->mode = ST_IDLE;
    return 0;
}

/* After a failed or interrupted step: bring the connection back to idle
 * (shielded, bounded) or mark it broken. Returns `rc`. */
static int recover(cio_pg *c, int rc)
{
    if (c->broken || PQstatus(c->pq) != CONNECTION_OK) {
        c->broken = true;
        return rc;
    }
    cio_scope sc;
    int r = cio_scope_enter(&sc, cio_deadline_after(CIO_PG_CLEANUP_TIMEOUT),
                            CIO_SCOPE_SHIELD);
    if (r == 0) {
        r = drain(c);
        cio_scope_exit(&sc);
    }
    if (r < 0)
        c->broken = true;
    return rc;
}

/* ---- entering and leaving calls ------------------------------------------ */

static int enter(cio_pg *c, int mode)
{
    if (c->inside)
        return -EBUSY;
    if (c->broken || PQstatus(c->pq) != CONNECTION_OK) {
        c->broken = true;
        return -ENOTCONN;
    }
    if (c->mode != mode)
        return c->mode == ST_IDLE ? -EINVAL : -EBUSY;
    int rc = cio_checkpoint();
    if (rc < 0) {
        /* Cancelled during a COPY: abort it on the server now, as the
         * caller cannot (every call of a cancelled task fails). */
        if (c->mode != ST_IDLE) {
            c->inside = true;
            recover(c, rc);
            c->inside = false;
        }
        return rc;
    }
    err_clear(c);
    c->inside = true;
    return 0;
}

/* Commands that leave session state behind for the pool to discard. */
static void note_command(cio_pg *c, const PGresult *r)
{
    static const char *const tags[] = {
        "SET",          "LISTEN",      "PREPARE",         "DECLARE",
        "CREATE TABLE", "SELECT INTO", "CREATE SEQUENCE", "CREATE VIEW",
    };
    const char *s = PQcmdStatus((PGresult *)r);
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        size_t n = strlen(tags[i]);
        if (strncmp(s, tags[i], n) == 0 && (s[n] == '\0' || s[n] == ' '))
            c->dirty = true;
    }
}

/* A COPY started through a plain query: end it (the server then
 * reports the COPY failed), or read its rows away. */
static int end_stray_copy(cio_pg *c, ExecStatusType st)
{
    if (st == PGRES_COPY_OUT)
        return discard_copy_out(c);
    if (PQputCopyEnd(c->pq, "not a COPY call") < 0)
        return err_conn(c);
    return flush_out(c);
}

/* One result of a query: keep the last good one, or the first error.
 * Takes `r`. */
static int collect_one(cio_pg *c, PGresult *r, PGresult **keep, int *err)
{
    ExecStatusType st = PQresultStatus(r);
    switch (st) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_SINGLE_TUPLE:
        note_command(c, r);
        if (*err == 0) {
            PQclear(*keep);
            *keep = r;
            return 0;
        }
        break;
    case PGRES_FATAL_ERROR:
        if (*err == 0)
            *err = err_result(c, r);
        break;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
        if (*err == 0) {
            err_set(c, NULL, "COPY needs cio_pg_copy_in/copy_out", NULL);
            *err = -EINVAL;
        }
        PQclear(r);
        return end_stray_copy(c, st);
    default:
        if (*err == 0) {
            err_set(c, NULL, PQresultErrorMessage(r), NULL);
            *err = -EPROTO;
        }
        break;
    }
    PQclear(r);
    return 0;
}

/* Read the results of a query up to the end (or to the COPY state
 * `want`, left current). Keeps the last good result in `*keep`, or the
 * first error. */
static int collect(cio_pg *c, PGresult **keep, int want)
{
    int err = 0;
    *keep = NULL;
    for (;;) {
        int rc = await_result(c);
        PGresult *r = rc == 0 ? PQgetResult(c->pq) : NULL;
        if (rc == 0 && r == NULL)
            break;
        if (rc == 0 && (int)PQresultStatus(r) == want && err == 0) {
            PQclear(*keep);
            *keep = r;
            return 0;
        }
        if (rc == 0)
            rc = collect_one(c, r, keep, &err);
        if (rc < 0) {
            PQclear(*keep);
            *keep = NULL;
            return rc;
        }
    }
    if (PQstatus(c->pq) != CONNECTION_OK) {
        /* Lost, perhaps with the server's last word (57P01 when an
         * administrator terminated the session): keep that text. */
        c->broken = true;
        if (err != CIO_ESERVER)
            err = err_conn(c);
        else
            err = -ECONNRESET;
    }
    if (err < 0) {
        PQclear(*keep);
        *keep = NULL;
        return err;
    }
    return 0;
}

static int count_rows(const PGresult *r)
{
    if (r == NULL)
        return 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return PQntuples(r);
    const char *s = PQcmdTuples((PGresult *)r);
    long long n = *s ? strtoll(s, NULL, 10) : 0;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* Hand `r` to the caller as a result (or free it). Returns the row count
 * or -ENOMEM. */
static int give_result(PGresult *r, cio_pg_result **out)
{
    int n = count_rows(r);
    if (out == NULL) {
        PQclear(r);
        return n;
    }
    cio_pg_result *res = cio__malloc(sizeof *res);
    if (res == NULL) {
        PQclear(r);
        return -ENOMEM;
    }
    res->r = r;
    *out = res;
    return n;
}

/* The common tail of a query: flush, read results, recover on failure. */
static int finish(cio_pg *c, PGresult **keep, int want)
{
    int rc = flush_out(c);
    *keep = NULL;
    if (rc == 0)
        rc = collect(c, keep, want);
    if (rc < 0 && rc != CIO_ESERVER && rc != -EINVAL)
        rc = recover(c, rc);
    return rc;
}

/* ---- connecting ---------------------------------------------------------- */

static bool is_literal_host(const char *h, size_t n)
{
    char buf[INET6_ADDRSTRLEN];
    unsigned char a[sizeof(struct in6_addr)];
    if (n == 0 || h[0] == '/' || h[0] == '@')
        return true;
    if (n >= sizeof buf)
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    return inet_pton(AF_INET, buf, a) == 1 || inet_pton(AF_INET6, buf, a) == 1;
}

#define MAX_ADDRS 8

typedef struct resolve_job {
    char name[256];
    char addr[MAX_ADDRS][INET6_ADDRSTRLEN];
    int n;
} resolve_job;

static int resolve_fn(void *arg)
{
    resolve_job *j = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int e = getaddrinfo(j->name, NULL, &hints, &ai);
    if (e == EAI_NONAME || e == EAI_NODATA)
        return CIO_ENOTFOUND;
    if (e == EAI_MEMORY)
        return -ENOMEM;
    if (e != 0)
        return CIO_EDNS;
    for (struct addrinfo *i = ai; i && j->n < MAX_ADDRS; i = i->ai_next) {
        const void *p;
        if (i->ai_family == AF_INET6)
            p = &((struct sockaddr_in6 *)(void *)i->ai_addr)->sin6_addr;
        else if (i->ai_family == AF_INET)
            p = &((struct sockaddr_in *)(void *)i->ai_addr)->sin_addr;
        else
            continue;
        inet_ntop(i->ai_family, p, j->addr[j->n++], INET6_ADDRSTRLEN);
    }
    freeaddrinfo(ai);
    return j->n > 0 ? 0 : CIO_ENODATA;
}

/* A comma-separated list being built. */
typedef struct list {
    char *s;
    size_t len;
    int n;
} list;

static int list_add(list *l, const char *v, size_t n)
{
    char *s = cio__realloc(l->s, l->len + n + 2);
    if (s == NULL)
        return -ENOMEM;
    if (l->n > 0)
        s[l->len++] = ',';
    memcpy(s + l->len, v, n);
    l->len += n;
    s[l->len] = '\0';
    l->s = s;
    l->n++;
    return 0;
}

static int list_count(const char *s)
{
    int n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

/* Item `i` of the comma-separated `s`: its start in `*at`, its length. */
static size_t list_item(const char *s, int i, const char **at)
{
    for (; i > 0; i--)
        s += strcspn(s, ",") + 1;
    *at = s;
    return strcspn(s, ",");
}

/* libpq would resolve a host name itself, blocking the loop. Resolve the
 * names on the executor's DNS threads instead and give libpq every
 * address as a `hostaddr` entry, with the name repeated in `host` (for
 * authentication and TLS) and the port repeated when there is a list of
 * them: libpq then tries the addresses in turn, as it would have. `h`
 * stays empty when no entry is a name. */
static int expand_hosts(const char *hosts, const char *ports, list *h, list *a,
                        list *p)
{
    int nh = list_count(hosts), np = ports ? list_count(ports) : 0;
    bool any = false;
    for (int i = 0; i < nh; i++) {
        const char *at;
        size_t n = list_item(hosts, i, &at);
        any |= !is_literal_host(at, n);
    }
    if (!any)
        return 0;
    if (np > 1 && np != nh)
        return -EINVAL; /* libpq's rule: one port, or one per host */
    int rc = 0;
    for (int i = 0; rc == 0 && i < nh; i++) {
        const char *at, *pat = NULL;
        size_t n = list_item(hosts, i, &at), pn = 0;
        if (np > 1)
            pn = list_item(ports, i, &pat);
        resolve_job j = {.n = 0};
        bool name = !is_literal_host(at, n);
        if (n >= sizeof j.name)
            return -EINVAL;
        memcpy(j.name, at, n);
        if (name)
            rc = cio_to_thread_pool(cio_pool_builtin(CIO_POOL_DNS), resolve_fn,
                                    &j);
        else if (n > 0 && at[0] != '/' && at[0] != '@')
            memcpy(j.addr[j.n++], at, n);
        else
            j.n = 1; /* a socket directory: empty hostaddr */
        for (int k = 0; rc == 0 && k < j.n; k++) {
            rc = list_add(h, at, n);
            if (rc == 0)
                rc = list_add(a, j.addr[k], strlen(j.addr[k]));
            if (rc == 0 && np > 1)
                rc = list_add(p, pat, pn);
        }
    }
    if (rc == CIO_ENOTFOUND || rc == CIO_ENODATA)
        rc = cio_errorf(rc, "pg connect: host in \"%s\" not found", hosts);
    return rc;
}

/* Drive PQconnectPoll until the session is ready. */
static int connect_poll(cio_pg *c)
{
    if (PQstatus(c->pq) == CONNECTION_BAD)
        return -ECONNREFUSED;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (;;) {
        unsigned ev = st == PGRES_POLLING_READING ? CIO_READABLE : CIO_WRITABLE;
        int fd = PQsocket(c->pq);
        if (fd < 0)
            return -ECONNREFUSED;
        int rc = cio_fd_wait(fd, ev, CIO_NEVER);
        if (rc < 0)
            return rc;
        st = PQconnectPoll(c->pq);
        if (st == PGRES_POLLING_OK)
            return 0;
        if (st == PGRES_POLLING_FAILED)
            return -ECONNREFUSED;
    }
}

static int connect_failed(cio_pg *c, int rc)
{
    const char *m = PQerrorMessage(c->pq);
    if (rc == -ECONNREFUSED && strstr(m, "FATAL"))
        rc = CIO_ESERVER; /* the server said no: password, database */
    else if (rc == -ECONNREFUSED &&
             (strstr(m, "could not parse") || strstr(m, "invalid")))
        rc = -EINVAL;
    else if (rc == -ECONNREFUSED && strstr(m, "password"))
        rc = -EACCES; /* the server asks for a password we do not have */
    else if (rc == -ECONNREFUSED)
        rc = errno_of(m, -ECONNREFUSED);
    if (rc == -ECANCELED)
        return rc;
    char *t = dup_trim(m);
    rc = cio_errorf(rc, "pg connect: %s", t ? t : "failed");
    cio__free(t);
    return rc;
}

/* Open the session for parsed options `opts`, with the keywords of
 * `ov` (NULL-terminated pairs; a NULL value is skipped) in place of
 * theirs. */
static int start(cio_pg *c, PQconninfoOption *opts, const char *const *ov)
{
    size_t n = 0, k = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    const char **kw = cio__calloc(n + 4, sizeof *kw);
    const char **val = cio__calloc(n + 4, sizeof *val);
    int rc = -ENOMEM;
    if (kw && val) {
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            bool replaced = false;
            for (const char *const *v = ov; *v; v += 2)
                replaced |= v[1] && strcmp(o->keyword, v[0]) == 0;
            if (o->val && !replaced) {
                kw[k] = o->keyword;
                val[k++] = o->val;
            }
        }
        for (const char *const *v = ov; *v; v += 2)
            if (v[1]) {
                kw[k] = v[0];
                val[k++] = v[1];
            }
        c->pq = PQconnectStartParams(kw, val, 0);
        rc = c->pq ? 0 : -ENOMEM;
    }
    cio__free(kw);
    cio__free(val);
    if (rc < 0)
        return rc;
    PQsetNoticeReceiver(c->pq, notice_cb, c);
    rc = connect_poll(c);
    if (rc < 0)
        return connect_failed(c, rc);
    if (PQsetnonblocking(c->pq, 1) != 0)
        return -EIO;
    return 0;
}

static const char *opt(PQconninfoOption *opts, const char *key)
{
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val && *o->val ? o->val : NULL;
    return NULL;
}

static int connect_opts(cio_pg *c, PQconninfoOption *opts)
{
    const char *host = opt(opts, "host"), *port = opt(opts, "port");
    list h = {0}, a = {0}, p = {0};
    int rc = 0;
    if (opt(opts, "hostaddr") == NULL && getenv("PGHOSTADDR") == NULL) {
        host = host ? host : getenv("PGHOST");
        port = port ? port : getenv("PGPORT");
        if (host)
            rc = expand_hosts(host, port, &h, &a, &p);
    }
    const char *ov[] = {"host", h.s, "hostaddr", a.s, "port", p.s, NULL};
    if (rc == 0)
        rc = start(c, opts, ov);
    cio__free(h.s);
    cio__free(a.s);
    cio__free(p.s);
    return rc;
}

int cio_pg_connect(cio_pg **out, const char *conninfo)
{
    if (out == NULL || conninfo == NULL)
        return -EINVAL;
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (opts == NULL) {
        char *t = dup_trim(perr ? perr : "out of memory");
        rc =
            cio_errorf(perr ? -EINVAL : -ENOMEM, "pg conninfo: %s", t ? t : "");
        cio__free(t);
        PQfreemem(perr);
        return rc;
    }
    cio_pg *c = cio__calloc(1, sizeof *c);
    if (c == NULL) {
        PQconninfoFree(opts);
        return -ENOMEM;
    }
    /* libpq leaves connect_timeout to the application in this mode. */
    const char *ct = opt(opts, "connect_timeout");
    long secs = ct ? strtol(ct, NULL, 10) : 0;
    cio_scope sc;
    rc = cio_scope_enter(
        &sc,
        secs > 0 ? cio_deadline_after((secs < 2 ? 2 : secs) * CIO_SEC)
                 : CIO_NEVER,
        0);
    if (rc == 0) {
        rc = connect_opts(c, opts);
        int sx = cio_scope_exit(&sc);
        if (sx == -ETIMEDOUT)
            rc = cio_errorf(-ETIMEDOUT, "pg connect: timed out");
    }
    PQconninfoFree(opts);
    if (rc < 0) {
        cio_pg_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cio_pg_close(cio_pg *c)
{
    if (c == NULL)
        return;
    if (c->copy_row)
        PQfreemem(c->copy_row);
    if (c->pq)
        PQfinish(c->pq);
    err_clear(c);
    cio__free(c);
}

bool cio_pg_ok(const cio_pg *c)
{
    return c && !c->broken && PQstatus(c->pq) == CONNECTION_OK;
}

const char *cio_pg_error_sqlstate(const cio_pg *c)
{
    return c ? c->sqlstate : "";
}

const char *cio_pg_error_message(const cio_pg *c)
{
    return c && c->msg ? c->msg : "";
}

const char *cio_pg_error_detail(const cio_pg *c)
{
    return c && c->detail ? c->detail : "";
}

int cio_pg_backend_pid(const cio_pg *c)
{
    return c && PQstatus(c->pq) == CONNECTION_OK ? PQbackendPID(c->pq) : 0;
}

void cio_pg_set_notice_handler(cio_pg *c, cio_pg_notice_fn fn, void *arg)
{
    if (c) {
        c->notice = fn;
        c->notice_arg = arg;
    }
}

/* ---- parameters ---------------------------------------------------------- */

void cio_pg_param_text(cio_pg_param *p, const char *s)
{
    *p = (cio_pg_param){.value = s};
}

void cio_pg_param_null(cio_pg_param *p)
{
    *p = (cio_pg_param){.value = NULL};
}

static void param_be(cio_pg_param *p, unsigned type, uint64_t v, int len)
{
    *p = (cio_pg_param){.type = type, .format = 1, .len = len, .inl_len = len};
    for (int i = len - 1; i >= 0; i--, v >>= 8)
        p->inl[i] = (char)(v & 0xff);
}

void cio_pg_param_int64(cio_pg_param *p, int64_t v)
{
    param_be(p, CIO_PG_INT8, (uint64_t)v, 8);
}

void cio_pg_param_int32(cio_pg_param *p, int32_t v)
{
    param_be(p, CIO_PG_INT4, (uint32_t)v, 4);
}

void cio_pg_param_double(cio_pg_param *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    param_be(p, CIO_PG_FLOAT8, u, 8);
}

void cio_pg_param_bool(cio_pg_param *p, bool v)
{
    param_be(p, CIO_PG_BOOL, v ? 1 : 0, 1);
}

void cio_pg_param_bytea(cio_pg_param *p, const void *buf, int n)
{
    *p = (cio_pg_param){
        .type = CIO_PG_BYTEA, .format = 1, .len = n, .value = buf};
}

/* libpq's parallel arrays for `n` parameters. */
typedef struct pargs {
    Oid *types;
    const char **vals;
    int *lens, *fmts;
    Oid s_types[SMALL_PARAMS];
    const char *s_vals[SMALL_PARAMS];
    int s_lens[SMALL_PARAMS], s_fmts[SMALL_PARAMS];
    void *heap;
} pargs;

static int pargs_init(pargs *a, const cio_pg_param *p, int n)
{
    a->heap = NULL;
    a->types = a->s_types;
    a->vals = a->s_vals;
    a->lens = a->s_lens;
    a->fmts = a->s_fmts;
    if (n > SMALL_PARAMS) {
        size_t each = sizeof(Oid) + sizeof(char *) + 2 * sizeof(int);
        char *m = a->heap = cio__malloc((size_t)n * each);
        if (m == NULL)
            return -ENOMEM;
        a->vals = (const char **)(void *)m;
        a->types = (Oid *)(void *)(m + (size_t)n * sizeof(char *));
        a->lens =
            (int *)(void *)(m + (size_t)n * (sizeof(char *) + sizeof(Oid)));
        a->fmts = a->lens + n;
    }
    for (int i = 0; i < n; i++) {
        if (p[i].format != 0 && p[i].format != 1) {
            cio__free(a->heap);
            return -EINVAL;
        }
        a->types[i] = p[i].type;
        a->vals[i] = p[i].inl_len > 0 ? p[i].inl : p[i].value;
        a->lens[i] = p[i].inl_len > 0 ? p[i].inl_len : p[i].len;
        a->fmts[i] = p[i].format;
    }
    return 0;
}

/* ---- queries ------------------------------------------------------------- */

enum { Q_PARAMS, Q_PREPARED, Q_PREPARE };

typedef struct qspec {
    int kind;
    const char *sql; /* or the statement name */
    const char *name;
    const cio_pg_param *params;
    const unsigned *types;
    int n;
    unsigned flags;
} qspec;

static int send_query(cio_pg *c, const qspec *q)
{
    int fmt = (q->flags & CIO_PG_BINARY) ? 1 : 0;
    if (q->kind == Q_PREPARE) {
        Oid small[SMALL_PARAMS], *types = NULL;
        if (q->types && q->n > 0) {
            types = q->n <= SMALL_PARAMS ? small
                                         : cio__malloc(q->n * sizeof *types);
            if (types == NULL)
                return -ENOMEM;
            for (int i = 0; i < q->n; i++)
                types[i] = q->types[i];
        }
        int ok = PQsendPrepare(c->pq, q->name, q->sql, q->n, types);
        if (types != small)
            cio__free(types);
        return ok ? 0 : err_conn(c);
    }
    pargs a;
    int rc = pargs_init(&a, q->params, q->n);
    if (rc < 0)
        return rc;
    int ok = q->kind == Q_PARAMS
                 ? PQsendQueryParams(c->pq, q->sql, q->n, a.types, a.vals,
                                     a.lens, a.fmts, fmt)
                 : PQsendQueryPrepared(c->pq, q->name, q->n, a.vals, a.lens,
                                       a.fmts, fmt);
    cio__free(a.heap);
    return ok ? 0 : err_conn(c);
}

static int run(cio_pg *c, cio_pg_result **out, const qspec *q)
{
    if (c == NULL || (q->kind != Q_PREPARED && q->sql == NULL) ||
        (q->kind != Q_PARAMS && q->name == NULL) || q->n < 0 ||
        q->n > MAX_PARAMS ||
        (q->n > 0 && q->kind != Q_PREPARE && q->params == NULL) ||
        (q->flags & ~CIO_PG_BINARY))
        return -EINVAL;
    int rc = enter(c, ST_IDLE);
    if (rc < 0)
        return rc;
    rc = send_query(c, q);
    PGresult *r = NULL;
    if (rc == 0)
        rc = finish(c, &r, NO_COPY);
    if (rc == 0) {
        if (q->kind == Q_PREPARE)
            c->dirty = true;
        rc = give_result(r, q->kind == Q_PREPARE ? NULL : out);
        if (q->kind == Q_PREPARE && rc > 0)
            rc = 0;
    }
    c->inside = false;
    return rc;
}

int cio_pg_query(cio_pg *c, cio_pg_result **out, const char *sql,
                 const cio_pg_param *params, int n, unsigned flags)
{
    qspec q = {
        .kind = Q_PARAMS, .sql = sql, .params = params, .n = n, .flags = flags};
    return run(c, out, &q);
}

int cio_pg_query_prepared(cio_pg *c, cio_pg_result **out, const char *name,
                          const cio_pg_param *params, int n, unsigned flags)
{
    qspec q = {.kind = Q_PREPARED,
               .name = name,
               .params = params,
               .n = n,
               .flags = flags};
    return run(c, out, &q);
}

int cio_pg_prepare(cio_pg *c, const char *name, const char *sql, int n,
                   const unsigned *types)
{
    qspec q = {
        .kind = Q_PREPARE, .name = name, .sql = sql, .types = types, .n = n};
    return run(c, NULL, &q);
}

int cio_pg_exec(cio_pg *c, const char *sql)
{
    if (c == NULL || sql == NULL)
        return -EINVAL;
    int rc = enter(c, ST_IDLE);
    if (rc < 0)
        return rc;
    PGresult *r = NULL;
    rc = PQsendQuery(c->pq, sql) ? 0 : err_conn(c);
    if (rc == 0)
        rc = finish(c, &r, NO_COPY);
    if (rc == 0)
        rc = give_result(r, NULL);
    c->inside = false;
    return rc;
}

/* ---- results ------------------------------------------------------------- */

void cio_pg_result_free(cio_pg_result *r)
{
    if (r) {
        PQclear(r->r);
        cio__free(r);
    }
}

int cio_pg_nrows(const cio_pg_result *r)
{
    return r ? PQntuples(r->r) : 0;
}

int cio_pg_ncols(const cio_pg_result *r)
{
    return r ? PQnfields(r->r) : 0;
}

const char *cio_pg_colname(const cio_pg_result *r, int col)
{
    if (r == NULL || col < 0 || col >= PQnfields(r->r))
        return NULL;
    return PQfname(r->r, col);
}

int cio_pg_colindex(const cio_pg_result *r, const char *name)
{
    if (r == NULL || name == NULL)
        return -EINVAL;
    for (int i = 0; i < PQnfields(r->r); i++)
        if (strcmp(PQfname(r->r, i), name) == 0)
            return i;
    return -ENOENT;
}

unsigned cio_pg_coltype(const cio_pg_result *r, int col)
{
    if (r == NULL || col < 0 || col >= PQnfields(r->r))
        return 0;
    return PQftype(r->r, col);
}

const char *cio_pg_cmd_status(const cio_pg_result *r)
{
    return r ? PQcmdStatus(r->r) : "";
}

static int field(const cio_pg_result *r, int row, int col)
{
    if (r == NULL || row < 0 || col < 0 || row >= PQntuples(r->r) ||
        col >= PQnfields(r->r))
        return -EINVAL;
    return PQgetisnull(r->r, row, col) ? -ENODATA : 0;
}

int cio_pg_is_null(const cio_pg_result *r, int row, int col)
{
    int rc = field(r, row, col);
    return rc == -ENODATA ? 1 : rc;
}

static bool binary(const cio_pg_result *r, int col)
{
    return PQfformat(r->r, col) == 1;
}

static uint64_t be(const char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

/* A binary integer field: int2, int4, int8, oid. */
static int bin_int(const cio_pg_result *r, int row, int col, int64_t *v)
{
    const char *p = PQgetvalue(r->r, row, col);
    int len = PQgetlength(r->r, row, col);
    switch (PQftype(r->r, col)) {
    case CIO_PG_INT2:
        if (len != 2)
            return -EINVAL;
        *v = (int16_t)be(p, 2);
        return 0;
    case CIO_PG_INT4:
        if (len != 4)
            return -EINVAL;
        *v = (int32_t)be(p, 4);
        return 0;
    case CIO_PG_INT8:
        if (len != 8)
            return -EINVAL;
        *v = (int64_t)be(p, 8);
        return 0;
    case 26: /* oid */
        if (len != 4)
            return -EINVAL;
        *v = (int64_t)be(p, 4);
        return 0;
    default:
        return -EINVAL;
    }
}

int cio_pg_get_int64(const cio_pg_result *r, int row, int col, int64_t *v)
{
    int rc = field(r, row, col);
    if (rc < 0 || v == NULL)
        return rc < 0 ? rc : -EINVAL;
    if (binary(r, col))
        return bin_int(r, row, col, v);
    const char *s = PQgetvalue(r->r, row, col);
    char *end;
    if (!(isdigit((unsigned char)s[0]) ||
          ((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1]))))
        return -EINVAL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *v = x;
    return 0;
}

int cio_pg_get_int32(const cio_pg_result *r, int row, int col, int32_t *v)
{
    int64_t x;
    if (v == NULL)
        return -EINVAL;
    int rc = cio_pg_get_int64(r, row, col, &x);
    if (rc < 0)
        return rc;
    if (x < INT32_MIN || x > INT32_MAX)
        return -ERANGE;
    *v = (int32_t)x;
    return 0;
}

int cio_pg_get_double(const cio_pg_result *r, int row, int col, double *v)
{
    int rc = field(r, row, col);
    if (rc < 0 || v == NULL)
        return rc < 0 ? rc : -EINVAL;
    if (binary(r, col)) {
        const char *p = PQgetvalue(r->r, row, col);
        int len = PQgetlength(r->r, row, col);
        unsigned type = PQftype(r->r, col);
        if (type == CIO_PG_FLOAT8 && len == 8) {
            uint64_t u = be(p, 8);
            memcpy(v, &u, sizeof *v);
            return 0;
        }
        if (type == CIO_PG_FLOAT4 && len == 4) {
            uint32_t u = (uint32_t)be(p, 4);
            float f;
            memcpy(&f, &u, sizeof f);
            *v = f;
            return 0;
        }
        int64_t i;
        rc = bin_int(r, row, col, &i);
        if (rc == 0)
            *v = (double)i;
        return rc;
    }
    const char *s = PQgetvalue(r->r, row, col);
    char *end;
    if (*s == '\0' || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    double d = strtod(s, &end);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE && isinf(d))
        return -ERANGE;
    *v = d;
    return 0;
}

int cio_pg_get_bool(const cio_pg_result *r, int row, int col, bool *v)
{
    int rc = field(r, row, col);
    if (rc < 0 || v == NULL)
        return rc < 0 ? rc : -EINVAL;
    const char *s = PQgetvalue(r->r, row, col);
    if (binary(r, col)) {
        if (PQftype(r->r, col) != CIO_PG_BOOL ||
            PQgetlength(r->r, row, col) != 1)
            return -EINVAL;
        *v = s[0] != 0;
        return 0;
    }
    if (strcmp(s, "t") == 0 || strcmp(s, "true") == 0)
        *v = true;
    else if (strcmp(s, "f") == 0 || strcmp(s, "false") == 0)
        *v = false;
    else
        return -EINVAL;
    return 0;
}

int cio_pg_get_text(const cio_pg_result *r, int row, int col, const char **s,
                    size_t *len)
{
    int rc = field(r, row, col);
    if (rc < 0 || s == NULL)
        return rc < 0 ? rc : -EINVAL;
    if (binary(r, col)) {
        switch (PQftype(r->r, col)) {
        case CIO_PG_TEXT:
        case CIO_PG_VARCHAR:
        case CIO_PG_BYTEA:
        case 18:   /* char */
        case 19:   /* name */
        case 114:  /* json */
        case 705:  /* unknown */
        case 1042: /* bpchar */
            break;
        default:
            return -EINVAL;
        }
    }
    *s = PQgetvalue(r->r, row, col);
    if (len)
        *len = (size_t)PQgetlength(r->r, row, col);
    return 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Decode bytea's text forms: hex ("\x0a1b") or escape ("a\000\\"). */
static ssize_t bytea_decode(const char *s, size_t n, unsigned char *out,
                            size_t size)
{
    size_t k = 0;
    if (n >= 2 && s[0] == '\\' && s[1] == 'x') {
        if ((n - 2) % 2)
            return -EINVAL;
        for (size_t i = 2; i < n; i += 2, k++) {
            int hi = hexval(s[i]), lo = hexval(s[i + 1]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            if (k < size)
                out[k] = (unsigned char)(hi << 4 | lo);
        }
        return (ssize_t)k;
    }
    for (size_t i = 0; i < n; k++) {
        unsigned char b = (unsigned char)s[i];
        if (b != '\\') {
            i++;
        } else if (i + 1 < n && s[i + 1] == '\\') {
            i += 2;
        } else if (i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' &&
                   s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' &&
                   s[i + 3] <= '7') {
            b = (unsigned char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 |
                                (s[i + 3] - '0'));
            i += 4;
        } else {
            return -EINVAL;
        }
        if (k < size)
            out[k] = b;
    }
    return (ssize_t)k;
}

ssize_t cio_pg_get_bytea(const cio_pg_result *r, int row, int col, void *buf,
                         size_t size)
{
    int rc = field(r, row, col);
    if (rc < 0 || (buf == NULL && size > 0))
        return rc < 0 ? rc : -EINVAL;
    if (PQftype(r->r, col) != CIO_PG_BYTEA)
        return -EINVAL;
    const char *s = PQgetvalue(r->r, row, col);
    size_t n = (size_t)PQgetlength(r->r, row, col);
    if (binary(r, col)) {
        if (size > 0) /* buf may be NULL to ask for the length */
            memcpy(buf, s, n < size ? n : size);
        return (ssize_t)n;
    }
    return bytea_decode(s, n, buf, size);
}

/* ---- transactions -------------------------------------------------------- */

int cio_pg_begin(cio_pg *c, cio_pg_tx *tx, unsigned mode)
{
    static const char *const levels[] = {
        "",
        " ISOLATION LEVEL READ COMMITTED",
        " ISOLATION LEVEL REPEATABLE READ",
        " ISOLATION LEVEL SERIALIZABLE",
    };
    unsigned iso = mode & 0xf;
    if (c == NULL || tx == NULL || iso > 3 ||
        (mode & ~(0xfu | CIO_PG_READ_ONLY | CIO_PG_DEFERRABLE)))
        return -EINVAL;
    char sql[128];
    if (c->tx_depth > 0) {
        if (mode != 0)
            return -EINVAL;
        snprintf(sql, sizeof sql, "SAVEPOINT cio_sp_%d", c->tx_depth + 1);
    } else {
        if (PQtransactionStatus(c->pq) == PQTRANS_INTRANS ||
            PQtransactionStatus(c->pq) == PQTRANS_INERROR)
            return -EINVAL; /* a transaction opened without cio_pg_begin */
        snprintf(sql, sizeof sql, "BEGIN%s%s%s", levels[iso],
                 mode & CIO_PG_READ_ONLY ? " READ ONLY" : "",
                 mode & CIO_PG_DEFERRABLE ? " DEFERRABLE" : "");
    }
    int rc = cio_pg_exec(c, sql);
    if (rc < 0)
        return rc;
    *tx = (cio_pg_tx){.cio__conn = c, .cio__depth = ++c->tx_depth};
    return 0;
}

/* End `tx` with COMMIT/RELEASE or ROLLBACK. The transaction stays open
 * only when the command could not run and the session is still in it. */
static int tx_finish(cio_pg_tx *tx, bool commit)
{
    cio_pg *c = tx ? tx->cio__conn : NULL;
    if (c == NULL || tx->cio__done || tx->cio__depth != c->tx_depth)
        return -EINVAL;
    char sql[96];
    int d = tx->cio__depth;
    bool aborted = PQtransactionStatus(c->pq) == PQTRANS_INERROR;
    if (commit && !aborted)
        snprintf(sql, sizeof sql,
                 d == 1 ? "COMMIT"
                        : "RELEASE SAVEPOINT "
                          "cio_sp_%d",
                 d);
    else if (d == 1)
        snprintf(sql, sizeof sql, "ROLLBACK");
    else
        snprintf(sql, sizeof sql,
                 "ROLLBACK TO SAVEPOINT cio_sp_%d; RELEASE SAVEPOINT "
                 "cio_sp_%d",
                 d, d);
    int rc = cio_pg_exec(c, sql);
    PGTransactionStatusType ts = PQtransactionStatus(c->pq);
    if (rc < 0 && cio_pg_ok(c) &&
        (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) &&
        (rc == -ECANCELED || rc == -EBUSY))
        return rc; /* not ended: cio_pg_end can still roll it back */
    tx->cio__done = true;
    c->tx_depth = d - 1;
    if (rc >= 0 && commit && aborted) {
        err_set(c, "25P02",
                "the transaction was aborted by an earlier "
                "error and has been rolled back",
                NULL);
        return CIO_ESERVER;
    }
    return rc < 0 ? rc : 0;
}

int cio_pg_commit(cio_pg_tx *tx)
{
    return tx_finish(tx, true);
}

int cio_pg_rollback(cio_pg_tx *tx)
{
    return tx_finish(tx, false);
}

/* Leave COPY mode (abort it) so that a ROLLBACK can run. */
static void to_idle(cio_pg *c)
{
    if (c->mode != ST_IDLE && !c->inside && !c->broken) {
        c->inside = true;
        recover(c, 0);
        c->inside = false;
    }
}

int cio_pg_end(cio_pg_tx *tx, int rc)
{
    if (tx == NULL || tx->cio__conn == NULL)
        return -EINVAL;
    cio_pg *c = tx->cio__conn;
    if (tx->cio__depth > c->tx_depth)
        tx->cio__done = true; /* ended with an enclosing one */
    if (tx->cio__done)
        return rc;
    if (rc >= 0) {
        int r = tx_finish(tx, true);
        if (tx->cio__done)
            return r < 0 ? r : rc;
        rc = r; /* it could not run (cancelled, -EINVAL): roll back */
    }
    /* Savepoints still open inside go with it. */
    if (c->tx_depth > tx->cio__depth)
        c->tx_depth = tx->cio__depth;
    cio_scope sc;
    if (cio_scope_enter(&sc, cio_deadline_after(CIO_PG_CLEANUP_TIMEOUT),
                        CIO_SCOPE_SHIELD) == 0) {
        to_idle(tx->cio__conn);
        tx_finish(tx, false);
        cio_scope_exit(&sc);
    }
    if (!tx->cio__done) {
        /* Could not roll back: the session ends the transaction when the
         * connection is closed; it must not be reused. */
        tx->cio__conn->broken = true;
        tx->cio__done = true;
        tx->cio__conn->tx_depth = tx->cio__depth - 1;
    }
    return rc;
}

/* ---- COPY ---------------------------------------------------------------- */

static int copy_start(cio_pg *c, const char *sql, int want, int mode)
{
    if (c == NULL || sql == NULL)
        return -EINVAL;
    int rc = enter(c, ST_IDLE);
    if (rc < 0)
        return rc;
    PGresult *r = NULL;
    rc = PQsendQuery(c->pq, sql) ? 0 : err_conn(c);
    if (rc == 0)
        rc = finish(c, &r, want);
    if (rc == 0 && PQresultStatus(r) == (ExecStatusType)want) {
        c->mode = mode;
        c->unflushed = 0;
    } else if (rc == 0) {
        err_set(c, NULL, "not a COPY of that direction", NULL);
        rc = -EINVAL;
    }
    PQclear(r);
    c->inside = false;
    return rc;
}

int cio_pg_copy_in(cio_pg *c, const char *sql)
{
    return copy_start(c, sql, PGRES_COPY_IN, ST_COPY_IN);
}

int cio_pg_copy_out(cio_pg *c, const char *sql)
{
    return copy_start(c, sql, PGRES_COPY_OUT, ST_COPY_OUT);
}

int cio_pg_copy_write(cio_pg *c, const void *buf, size_t n)
{
    if (c == NULL || (buf == NULL && n > 0) || n > INT_MAX)
        return -EINVAL;
    int rc = enter(c, ST_COPY_IN);
    if (rc < 0)
        return rc;
    int r = PQputCopyData(c->pq, buf, (int)n);
    if (r < 0) {
        rc = err_conn(c);
    } else if (r == 0) {
        rc = -ENOMEM; /* libpq could not grow its buffer */
    } else {
        /* libpq grows its buffer instead of blocking: bound it here. */
        c->unflushed += n;
        r = PQflush(c->pq);
        if (r < 0)
            rc = err_conn(c);
        else if (r == 0)
            c->unflushed = 0;
        else if (c->unflushed >= FLUSH_EVERY) {
            rc = flush_out(c);
            c->unflushed = 0;
        }
    }
    if (rc < 0 && rc != -ENOMEM)
        rc = recover(c, rc);
    c->inside = false;
    return rc;
}

int cio_pg_copy_end(cio_pg *c, const char *abort_msg)
{
    if (c == NULL)
        return -EINVAL;
    int rc = enter(c, ST_COPY_IN);
    if (rc < 0)
        return rc;
    PGresult *r = NULL;
    if (PQputCopyEnd(c->pq, abort_msg) < 0)
        rc = recover(c, err_conn(c));
    else
        rc = finish(c, &r, NO_COPY);
    c->mode = ST_IDLE;
    if (rc == 0)
        rc = give_result(r, NULL);
    c->inside = false;
    return rc;
}

ssize_t cio_pg_copy_read(cio_pg *c, const void **data)
{
    if (c == NULL || data == NULL)
        return -EINVAL;
    int rc = enter(c, ST_COPY_OUT);
    if (rc < 0)
        return rc;
    if (c->copy_row) {
        PQfreemem(c->copy_row);
        c->copy_row = NULL;
    }
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(c->pq, &buf, 1);
        if (n > 0) {
            c->copy_row = buf;
            *data = buf;
            c->inside = false;
            return n;
        }
        if (n == -1) {
            PGresult *r = NULL;
            c->mode = ST_IDLE;
            rc = finish(c, &r, NO_COPY);
            PQclear(r);
            if (rc == 0)
                rc = CIO_EOF;
            break;
        }
        rc = n == -2 ? err_conn(c) : wait_fd(c, CIO_READABLE, CIO_NEVER);
        if (rc >= 0)
            rc = consume(c);
        if (rc < 0) {
            rc = recover(c, rc);
            break;
        }
    }
    c->inside = false;
    return rc;
}

/* ---- LISTEN / NOTIFY ----------------------------------------------------- */

static int listen_cmd(cio_pg *c, const char *verb, const char *channel)
{
    if (c == NULL || channel == NULL || c->pq == NULL)
        return -EINVAL;
    char *id = PQescapeIdentifier(c->pq, channel, strlen(channel));
    if (id == NULL)
        return -EINVAL;
    size_t n = strlen(verb) + strlen(id) + 2;
    char *sql = cio__malloc(n);
    int rc = -ENOMEM;
    if (sql) {
        snprintf(sql, n, "%s %s", verb, id);
        rc = cio_pg_exec(c, sql);
        cio__free(sql);
    }
    PQfreemem(id);
    return rc < 0 ? rc : 0;
}

int cio_pg_listen(cio_pg *c, const char *channel)
{
    return listen_cmd(c, "LISTEN", channel);
}

int cio_pg_unlisten(cio_pg *c, const char *channel)
{
    return listen_cmd(c, "UNLISTEN", channel);
}

int cio_pg_notify(cio_pg *c, const char *channel, const char *payload)
{
    if (channel == NULL)
        return -EINVAL;
    cio_pg_param p[2];
    cio_pg_param_text(&p[0], channel);
    cio_pg_param_text(&p[1], payload ? payload : "");
    int rc = cio_pg_query(c, NULL, "SELECT pg_notify($1, $2)", p, 2, 0);
    return rc < 0 ? rc : 0;
}

static int take_notify(cio_pg *c, cio_pg_notification **out)
{
    PGnotify *nt = PQnotifies(c->pq);
    if (nt == NULL)
        return 0;
    const char *pl = nt->extra ? nt->extra : "";
    size_t a = strlen(nt->relname) + 1, b = strlen(pl) + 1;
    cio_pg_notification *n = cio__malloc(sizeof *n + a + b);
    if (n == NULL) {
        PQfreemem(nt);
        return -ENOMEM;
    }
    char *s = (char *)(n + 1);
    memcpy(s, nt->relname, a);
    memcpy(s + a, pl, b);
    n->channel = s;
    n->payload = s + a;
    n->pid = nt->be_pid;
    PQfreemem(nt);
    *out = n;
    return 1;
}

int cio_pg_wait_notify(cio_pg *c, cio_pg_notification **out, int64_t deadline)
{
    if (c == NULL || out == NULL || deadline < 0)
        return -EINVAL;
    int rc = enter(c, ST_IDLE);
    if (rc < 0)
        return rc;
    for (;;) {
        rc = take_notify(c, out);
        if (rc != 0)
            break;
        rc = wait_fd(c, CIO_READABLE, deadline);
        if (rc >= 0)
            rc = consume(c);
        if (rc >= 0 && PQstatus(c->pq) != CONNECTION_OK)
            rc = err_conn(c);
        if (rc < 0)
            break;
    }
    c->inside = false;
    return rc < 0 ? rc : 0;
}

void cio_pg_notification_free(cio_pg_notification *n)
{
    cio__free(n);
}

/* ---- pipeline ------------------------------------------------------------ */

/* Queue every statement and the Sync, then read the results in order. */
static int batch_send(cio_pg *c, cio_pg_stmt *s, size_t n)
{
    if (!PQenterPipelineMode(c->pq))
        return err_conn(c);
    for (size_t i = 0; i < n; i++) {
        qspec q = {.kind = Q_PARAMS,
                   .sql = s[i].sql,
                   .params = s[i].params,
                   .n = s[i].nparams,
                   .flags = s[i].flags};
        int rc = send_query(c, &q);
        if (rc < 0)
            return rc;
        /* Keep libpq's buffer small; reading meanwhile avoids a
         * deadlock with a server blocked on sending results. */
        if (PQflush(c->pq) < 0)
            return err_conn(c);
    }
    if (!PQpipelineSync(c->pq))
        return err_conn(c);
    c->syncs++;
    return flush_out(c);
}

/* The results of statement `s` (up to its NULL separator). */
static int batch_one(cio_pg *c, cio_pg_stmt *s, int *first_err)
{
    PGresult *keep = NULL;
    for (;;) {
        int rc = await_result(c);
        if (rc < 0) {
            PQclear(keep);
            return rc;
        }
        PGresult *r = PQgetResult(c->pq);
        if (r == NULL)
            break;
        switch (PQresultStatus(r)) {
        case PGRES_FATAL_ERROR:
            if (*first_err == 0)
                *first_err = err_result(c, r);
            s->rc = CIO_ESERVER;
            break;
        case PGRES_PIPELINE_ABORTED:
            s->rc = -ECANCELED;
            break;
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
        case PGRES_EMPTY_QUERY:
            note_command(c, r);
            PQclear(keep);
            keep = r;
            r = NULL;
            break;
        default:
            if (*first_err == 0)
                *first_err = -EPROTO;
            s->rc = -EPROTO;
            break;
        }
        PQclear(r);
    }
    if (s->rc < 0) {
        PQclear(keep);
        return 0;
    }
    s->rc = give_result(keep, &s->result);
    return s->rc == -ENOMEM ? -ENOMEM : 0;
}

static int batch_recv(cio_pg *c, cio_pg_stmt *s, size_t n)
{
    int first_err = 0, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = batch_one(c, &s[i], &first_err);
    if (rc == 0)
        rc = await_result(c);
    if (rc == 0) {
        PGresult *r = PQgetResult(c->pq);
        if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            rc = -EPROTO;
        else
            c->syncs--;
        PQclear(r);
    }
    if (rc == 0 && !PQexitPipelineMode(c->pq))
        rc = -EPROTO;
    return rc < 0 ? rc : first_err;
}

int cio_pg_batch(cio_pg *c, cio_pg_stmt *stmts, size_t n)
{
    if (c == NULL || stmts == NULL || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (stmts[i].sql == NULL || stmts[i].nparams < 0 ||
            stmts[i].nparams > MAX_PARAMS ||
            (stmts[i].nparams > 0 && stmts[i].params == NULL) ||
            (stmts[i].flags & ~CIO_PG_BINARY))
            return -EINVAL;
        /* Everything is checked before anything is sent: a batch runs
         * whole or not at all. */
        for (int k = 0; k < stmts[i].nparams; k++)
            if (stmts[i].params[k].format != 0 &&
                stmts[i].params[k].format != 1)
                return -EINVAL;
        stmts[i].result = NULL;
        stmts[i].rc = 0;
    }
    int rc = enter(c, ST_IDLE);
    if (rc < 0)
        return rc;
    rc = batch_send(c, stmts, n);
    if (rc == 0)
        rc = batch_recv(c, stmts, n);
    if (rc < 0 && rc != CIO_ESERVER) {
        for (size_t i = 0; i < n; i++) {
            cio_pg_result_free(stmts[i].result);
            stmts[i].result = NULL;
        }
        rc = recover(c, rc);
    }
    c->inside = false;
    return rc;
}

/* ---- pool ---------------------------------------------------------------- */

struct cio_pg_pool {
    cio_pool *pool;
    char *conninfo;
    bool reset_all;
    size_t borrowed;
    bool abandoned; /* closed while borrowed: freed with the last release */
};

static void pg_pool_free(cio_pg_pool *p)
{
    cio__free(p->conninfo);
    cio__free(p);
}

static int pool_open(void *ctx, void **conn)
{
    cio_pg_pool *p = ctx;
    cio_pg *c;
    int rc = cio_pg_connect(&c, p->conninfo);
    if (rc == 0)
        *conn = c;
    return rc;
}

static void pool_close(void *ctx, void *conn)
{
    (void)ctx;
    cio_pg_close(conn);
}

/* A local check, without a round trip: peek at the socket (one receive
 * that normally finds nothing). A connection the server or the network
 * has closed meanwhile shows end of stream, perhaps after the server's
 * FATAL message, which libpq then reads. */
static int pool_check(void *ctx, void *conn)
{
    (void)ctx;
    cio_pg *c = conn;
    if (!cio_pg_ok(c) || c->inside || c->mode != ST_IDLE)
        return -1;
    char b;
    ssize_t n = recv(PQsocket(c->pq), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    /* Something arrived (or the end): the message, then the end. */
    for (int i = 0; n > 0 && i < 2; i++)
        if (!PQconsumeInput(c->pq) || PQstatus(c->pq) != CONNECTION_OK)
            n = 0;
    if (n <= 0 || c->broken || PQisBusy(c->pq)) {
        c->broken = true;
        return -1;
    }
    return 0;
}

/* Ready a released connection for its next user; non-zero discards it.
 * The pool runs this shielded, under its close timeout. */
static int pool_reset(void *ctx, void *conn)
{
    cio_pg_pool *p = ctx;
    cio_pg *c = conn;
    if (!cio_pg_ok(c) || c->inside || c->mode != ST_IDLE)
        return -1;
    c->tx_depth = 0;
    if (PQtransactionStatus(c->pq) != PQTRANS_IDLE &&
        cio_pg_exec(c, "ROLLBACK") < 0)
        return -1;
    if (c->dirty || p->reset_all) {
        if (cio_pg_exec(c, "DISCARD ALL") < 0)
            return -1;
        c->dirty = false;
    }
    err_clear(c);
    c->notice = NULL;
    return 0;
}

int cio_pg_pool_create(cio_pg_pool **out, const cio_pg_pool_config *cfg)
{
    if (out == NULL || cfg == NULL || cfg->conninfo == NULL)
        return -EINVAL;
    cio_pg_pool *p = cio__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->conninfo = cio__strdup(cfg->conninfo);
    p->reset_all = cfg->reset_all;
    cio_pool_config pc = {
        .min_size = cfg->min_size,
        .max_size = cfg->max_size,
        .idle_timeout = cfg->idle_timeout,
        .max_lifetime = cfg->max_lifetime,
        .check_after = cfg->check_after,
        .open_timeout = cfg->open_timeout,
        .close_timeout = cfg->close_timeout,
        .open = pool_open,
        .close = pool_close,
        .check = pool_check,
        .reset = pool_reset,
        .ctx = p,
    };
    int rc = p->conninfo ? cio_pool_create(&p->pool, &pc) : -ENOMEM;
    if (rc < 0) {
        cio__free(p->conninfo);
        cio__free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int cio_pg_pool_acquire(cio_pg_pool *p, cio_pg **conn)
{
    if (p == NULL || conn == NULL)
        return -EINVAL;
    void *c;
    int rc = p->abandoned ? CIO_ECLOSING : cio_pool_acquire(p->pool, &c);
    if (rc == 0) {
        p->borrowed++;
        *conn = c;
    }
    return rc;
}

int cio_pg_pool_release(cio_pg_pool *p, cio_pg *conn)
{
    if (p == NULL || conn == NULL)
        return -EINVAL;
    bool broken = !cio_pg_ok(conn) || conn->inside || conn->mode != ST_IDLE;
    int rc = cio_pool_release(p->pool, conn, broken);
    if (rc == 0 && --p->borrowed == 0 && p->abandoned)
        pg_pool_free(p);
    return rc;
}

int cio_pg_pool_stats(const cio_pg_pool *p, cio_pool_stats *out)
{
    if (p == NULL)
        return -EINVAL;
    return cio_pool_stats_get(p->pool, out);
}

int cio_pg_pool_close(cio_pg_pool *p)
{
    if (p == NULL)
        return -EINVAL;
    if (p->abandoned)
        return -EINVAL;
    int rc = cio_pool_close(p->pool);
    /* Given up waiting for borrowed connections: the generic pool closes
     * each as it comes back, through this wrapper. */
    if (rc < 0 && p->borrowed > 0)
        p->abandoned = true;
    else
        pg_pool_free(p);
    return rc;
}
