/* The connection pool: idle connections on a LIFO list (the warmest is
 * reused first, the coldest expires first), borrowed ones in a hash keyed
 * by the connection pointer, waiters in a FIFO that releases feed
 * directly.
 *
 * A "slot" is the right to have one connection exist. `size` counts the
 * slots taken: idle, borrowed (or handed to a waiter, or being checked or
 * reset), opening and closing connections. A slot that frees up while
 * tasks wait goes to the first waiter, which then opens a connection in
 * it; a connection released while tasks wait goes to the first waiter as
 * it is. Either way nobody can overtake a waiter. */
#include "internal.h"
#include "cio/pool.h"

#define DEFAULT_MAX 10
#define DEFAULT_CLOSE_TIMEOUT (5 * CIO_SEC)
/* The maintenance task retries a failed refill after this, doubling up to
 * REFILL_BACKOFF_MAX. */
#define REFILL_BACKOFF (100 * CIO_MSEC)
#define REFILL_BACKOFF_MAX (30 * CIO_SEC)

typedef struct entry {
    struct entry *prev, *next; /* idle list */
    void *conn;
    int64_t born;       /* when it was opened */
    int64_t idle_since; /* when it was last released */
} entry;

/* What a waiter is handed. */
enum grant { GRANT_CONN = 1, GRANT_SLOT, GRANT_CLOSING };

typedef struct waiter {
    cio__waiter w; /* w.value: the entry for GRANT_CONN */
    int grant;
} waiter;

struct cio_pool {
    cio_pool_config cfg;
    entry *idle_head, *idle_tail; /* head: most recently released */
    size_t size, idle, in_use, opening;
    cio__waitq waiters;
    size_t nwaiting;
    /* Borrowed connections: open addressing, linear probing. */
    entry **slots;
    size_t nslots; /* a power of two, at least twice max_size */
    bool closing;
    bool abandoned;       /* cio_pool_close gave up waiting: free at size 0 */
    cio_task *closer;     /* the task waiting in cio_pool_close */
    cio_task *maint;      /* the maintenance task, if any */
    cio_event kick;       /* wakes the maintenance task */
    uint64_t opened, closed, acquired, discarded, abandoned_waits;
};

/* ---- borrowed connections -------------------------------------------------- */

static size_t hash_ptr(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return (size_t)x & mask;
}

static void borrowed_add(cio_pool *p, entry *e)
{
    size_t mask = p->nslots - 1;
    size_t i = hash_ptr(e->conn, mask);
    while (p->slots[i])
        i = (i + 1) & mask;
    p->slots[i] = e;
}

/* Remove and return the entry of `conn`, or NULL. Deletion shifts the
 * following run back, so lookups never need tombstones. */
static entry *borrowed_take(cio_pool *p, const void *conn)
{
    size_t mask = p->nslots - 1;
    size_t i = hash_ptr(conn, mask);
    while (p->slots[i] && p->slots[i]->conn != conn)
        i = (i + 1) & mask;
    entry *e = p->slots[i];
    if (e == NULL)
        return NULL;
    p->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; p->slots[j]; j = (j + 1) & mask) {
        size_t home = hash_ptr(p->slots[j]->conn, mask);
        /* Move slots[j] into the hole unless its home lies cyclically in
         * (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            p->slots[i] = p->slots[j];
            p->slots[j] = NULL;
            i = j;
        }
    }
    return e;
}

/* ---- idle list ------------------------------------------------------------- */

static void idle_push(cio_pool *p, entry *e)
{
    e->prev = NULL;
    e->next = p->idle_head;
    if (p->idle_head)
        p->idle_head->prev = e;
    else
        p->idle_tail = e;
    p->idle_head = e;
    p->idle++;
}

static void idle_remove(cio_pool *p, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        p->idle_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->idle_tail = e->prev;
    e->prev = e->next = NULL;
    p->idle--;
}

/* ---- slots and hand-offs --------------------------------------------------- */

static bool pool_done(const cio_pool *p)
{
    return p->abandoned && p->size == 0 && p->maint == NULL;
}

static void pool_free(cio_pool *p)
{
    cio__free(p->slots);
    cio__free(p);
}

static void grant(waiter *w, int what, entry *e)
{
    w->grant = what;
    w->w.value = e;
    w->w.granted = 1;
    cio__wake(w->w.task, 0);
}

static waiter *next_waiter(cio_pool *p)
{
    cio__waiter *w = cio__waitq_pop(&p->waiters);
    if (w == NULL)
        return NULL;
    p->nwaiting--;
    return (waiter *)w;
}

/* A slot was given up. The first waiter gets it; a closing pool wakes its
 * closer when the last one goes. */
static void slot_freed(cio_pool *p)
{
    p->size--;
    if (!p->closing) {
        waiter *w = next_waiter(p);
        if (w) {
            p->size++;
            p->opening++;
            grant(w, GRANT_SLOT, NULL);
        }
        return;
    }
    if (p->size == 0 && p->closer)
        cio__wake(p->closer, 0);
}

static void close_entry(cio_pool *p, entry *e, bool discarded);

/* Give a (just-opened or released) good connection to the first waiter,
 * or make it idle. It counts as in use while handed over. */
static void hand_on(cio_pool *p, entry *e)
{
    if (p->closing) {
        close_entry(p, e, false);
        return;
    }
    waiter *w = next_waiter(p);
    if (w) {
        p->in_use++;
        grant(w, GRANT_CONN, e);
        return;
    }
    e->idle_since = cio_now();
    idle_push(p, e);
    if (p->maint && (p->cfg.idle_timeout > 0 || p->cfg.max_lifetime > 0))
        cio_event_set(&p->kick);
}

/* Run `close` for `e` shielded from cancellation under close_timeout and
 * free the entry. The caller still holds the slot. May suspend. */
static void close_conn(cio_pool *p, entry *e, bool discarded)
{
    cio_scope sc;
    bool scoped = cio__self() != NULL &&
                  cio_scope_enter(&sc, cio_deadline_after(p->cfg.close_timeout),
                                  CIO_SCOPE_SHIELD) == 0;
    p->cfg.close(p->cfg.ctx, e->conn);
    if (scoped)
        cio_scope_exit(&sc);
    cio__free(e);
    p->closed++;
    p->discarded += discarded;
}

/* Close `e` and give up its slot. May suspend. */
static void close_entry(cio_pool *p, entry *e, bool discarded)
{
    close_conn(p, e, discarded);
    slot_freed(p);
}

/* Open a connection in a slot the caller holds (counted in `opening`).
 * Returns the new entry, or NULL with *err set (the slot is still the
 * caller's). May suspend. */
static entry *open_entry(cio_pool *p, int *err)
{
    entry *e = cio__calloc(1, sizeof *e);
    if (e == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    cio_scope sc;
    int64_t deadline = p->cfg.open_timeout > 0
                           ? cio_deadline_after(p->cfg.open_timeout)
                           : CIO_NEVER;
    int rc = cio_scope_enter(&sc, deadline, 0);
    if (rc == 0) {
        rc = p->cfg.open(p->cfg.ctx, &e->conn);
        int src = cio_scope_exit(&sc);
        if (rc < 0 && src == -ETIMEDOUT)
            rc = -ETIMEDOUT;
    }
    if (rc < 0) {
        cio__free(e);
        *err = rc;
        return NULL;
    }
    if (e->conn == NULL) {
        /* A NULL connection could never be released: treat as a bug in
         * the open callback. */
        cio__free(e);
        *err = -EINVAL;
        return NULL;
    }
    e->born = e->idle_since = cio_now();
    p->opened++;
    return e;
}

static bool expired(const cio_pool *p, const entry *e, int64_t now)
{
    return p->cfg.max_lifetime > 0 && now - e->born >= p->cfg.max_lifetime;
}

/* ---- maintenance: idle expiry and min_size ------------------------------- */

/* Close what has expired; return when the next idle connection expires. */
static int64_t expire_idle(cio_pool *p)
{
    for (;;) {
        int64_t now = cio_now(), next = CIO_NEVER;
        entry *victim = NULL;
        size_t keep = p->size; /* connections left if we close one more */
        for (entry *e = p->idle_tail; e; e = e->prev) {
            int64_t at = CIO_NEVER;
            if (p->cfg.idle_timeout > 0 && keep > p->cfg.min_size)
                at = e->idle_since + p->cfg.idle_timeout;
            if (p->cfg.max_lifetime > 0 &&
                e->born + p->cfg.max_lifetime < at)
                at = e->born + p->cfg.max_lifetime;
            if (at <= now) {
                victim = e;
                break;
            }
            if (at < next)
                next = at;
        }
        if (victim == NULL)
            return next;
        idle_remove(p, victim);
        close_entry(p, victim, false);
        if (p->closing)
            return CIO_NEVER;
    }
}

static int maintain(void *arg)
{
    cio_pool *p = arg;
    int64_t backoff = REFILL_BACKOFF, retry_at = 0;
    while (!p->closing) {
        /* Refill to min_size; waiters come first. */
        while (!p->closing && p->size < p->cfg.min_size &&
               p->nwaiting == 0 && cio_now() >= retry_at) {
            p->size++;
            p->opening++;
            int err = 0;
            entry *e = open_entry(p, &err);
            p->opening--;
            if (e == NULL) {
                slot_freed(p);
                if (err == -ECANCELED && cio_cancel_pending())
                    return 0;
                retry_at = cio_now() + backoff;
                backoff = backoff * 2 < REFILL_BACKOFF_MAX
                              ? backoff * 2
                              : REFILL_BACKOFF_MAX;
                break;
            }
            backoff = REFILL_BACKOFF;
            if (p->closing) {
                close_entry(p, e, false);
                break;
            }
            hand_on(p, e);
        }
        int64_t next = expire_idle(p);
        if (p->size < p->cfg.min_size && retry_at < next)
            next = retry_at;
        cio_event_clear(&p->kick);
        if (p->closing)
            break;
        cio_scope sc;
        cio_scope_enter(&sc, next, 0);
        int rc = cio_event_wait(&p->kick);
        int src = cio_scope_exit(&sc);
        if (rc == -ECANCELED && src != -ETIMEDOUT)
            return 0; /* the pool (or the run) is ending */
    }
    return 0;
}

/* The end of a public call that may have given up the last slot of an
 * abandoned pool. */
static int finish(cio_pool *p, int rc)
{
    if (pool_done(p))
        pool_free(p);
    return rc;
}

/* ---- public API -------------------------------------------------------------- */

int cio_pool_create(cio_pool **out, const cio_pool_config *cfg)
{
    if (out == NULL || cfg == NULL || cfg->open == NULL || cfg->close == NULL)
        return -EINVAL;
    size_t max = cfg->max_size ? cfg->max_size : DEFAULT_MAX;
    if (max < cfg->min_size || cfg->idle_timeout < 0 ||
        cfg->max_lifetime < 0 || cfg->check_after < 0 ||
        cfg->open_timeout < 0 || cfg->close_timeout < 0 ||
        max > SIZE_MAX / 4)
        return -EINVAL;
    if (cio__loop == NULL)
        return CIO_ENOTASK;
    cio_pool *p = cio__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->cfg = *cfg;
    p->cfg.max_size = max;
    if (p->cfg.close_timeout == 0)
        p->cfg.close_timeout = DEFAULT_CLOSE_TIMEOUT;
    p->nslots = 16;
    while (p->nslots < 2 * max)
        p->nslots *= 2;
    p->slots = cio__calloc(p->nslots, sizeof *p->slots);
    if (p->slots == NULL) {
        cio__free(p);
        return -ENOMEM;
    }
    if (cfg->min_size > 0 || cfg->idle_timeout > 0 || cfg->max_lifetime > 0) {
        cio_spawn_opts so = {.name = "cio-pool"};
        int rc = cio_spawn_ex(&p->maint, maintain, p, &so);
        if (rc < 0) {
            pool_free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

/* Check an idle connection taken for `t`; false if it must go. */
static bool usable(cio_pool *p, entry *e)
{
    int64_t now = cio_now();
    if (expired(p, e, now))
        return false;
    if (p->cfg.check && now - e->idle_since >= p->cfg.check_after)
        return p->cfg.check(p->cfg.ctx, e->conn) == 0;
    return true;
}

int cio_pool_acquire(cio_pool *p, void **conn)
{
    CIO__SELF_OR_RETURN(t);
    if (p == NULL || conn == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    for (;;) {
        if (p->closing)
            return CIO_ECLOSING;
        entry *e = NULL;
        if (p->waiters.head == NULL && p->idle_head) {
            e = p->idle_head;
            idle_remove(p, e);
            p->in_use++;
        } else if (p->waiters.head == NULL && p->size < p->cfg.max_size) {
            p->size++;
            p->opening++;
        } else {
            waiter w = {0};
            p->nwaiting++;
            rc = cio__park_q(t, &p->waiters, &w.w, CIO__W_POOL, p, CIO_NEVER,
                             0);
            if (!w.w.granted) {
                /* Interrupted: the wait was taken off the queue. */
                p->nwaiting--;
                p->abandoned_waits++;
                return rc < 0 ? rc : -ECANCELED;
            }
            if (w.grant == GRANT_CLOSING)
                return CIO_ECLOSING; /* the pool may be gone: hands off */
            e = w.grant == GRANT_CONN ? w.w.value : NULL;
            if (cio__cancelled(t)) {
                /* Handed over as we were cancelled: pass it on. */
                p->abandoned_waits++;
                if (e) {
                    p->in_use--;
                    hand_on(p, e);
                } else {
                    p->opening--;
                    slot_freed(p);
                }
                return finish(p, -ECANCELED);
            }
        }
        if (e && !usable(p, e)) {
            /* Keep the slot and open a fresh connection in it. */
            p->in_use--;
            close_conn(p, e, true);
            e = NULL;
            p->opening++;
        }
        if (e && p->closing) {
            /* The pool closed while the connection was checked. */
            p->in_use--;
            close_entry(p, e, false);
            return finish(p, CIO_ECLOSING);
        }
        if (e == NULL) {
            int err = 0;
            e = open_entry(p, &err);
            p->opening--;
            if (e == NULL) {
                slot_freed(p);
                return finish(p, err);
            }
            if (p->closing) {
                close_entry(p, e, false);
                return finish(p, CIO_ECLOSING);
            }
            p->in_use++;
        }
        borrowed_add(p, e);
        p->acquired++;
        *conn = e->conn;
        return 0;
    }
}

int cio_pool_release(cio_pool *p, void *conn, bool broken)
{
    if (p == NULL || conn == NULL)
        return -EINVAL;
    entry *e = borrowed_take(p, conn);
    if (e == NULL)
        return -EINVAL;
    if (!broken && !p->closing && p->cfg.reset) {
        cio_scope sc;
        bool scoped =
            cio__self() != NULL &&
            cio_scope_enter(&sc, cio_deadline_after(p->cfg.close_timeout),
                            CIO_SCOPE_SHIELD) == 0;
        broken = p->cfg.reset(p->cfg.ctx, e->conn) != 0;
        if (scoped && cio_scope_exit(&sc) < 0)
            broken = true;
    }
    p->in_use--;
    if (broken || p->closing || expired(p, e, cio_now()))
        close_entry(p, e, broken);
    else
        hand_on(p, e);
    return finish(p, 0);
}

int cio_pool_stats_get(const cio_pool *p, cio_pool_stats *out)
{
    if (p == NULL || out == NULL)
        return -EINVAL;
    *out = (cio_pool_stats){
        .size = p->size,
        .idle = p->idle,
        .in_use = p->in_use,
        .opening = p->opening,
        .waiting = p->nwaiting,
        .opened = p->opened,
        .closed = p->closed,
        .acquired = p->acquired,
        .discarded = p->discarded,
        .abandoned = p->abandoned_waits,
    };
    return 0;
}

int cio_pool_close(cio_pool *p)
{
    CIO__SELF_OR_RETURN(t);
    if (p == NULL || p->closing)
        return -EINVAL;
    p->closing = true;
    for (waiter *w; (w = next_waiter(p));)
        grant(w, GRANT_CLOSING, NULL);
    if (p->maint) {
        cio_task_cancel(p->maint);
        cio__join_quiet(p->maint);
        cio_task_free(p->maint);
        p->maint = NULL;
    }
    while (p->idle_head) {
        entry *e = p->idle_head;
        idle_remove(p, e);
        close_entry(p, e, false);
    }
    int rc = 0;
    while (p->size > 0) {
        p->closer = t;
        t->unlink = NULL;
        rc = cio__park(t, CIO__W_POOL, p, CIO_NEVER, 0);
        p->closer = NULL;
        if (rc < 0)
            break;
    }
    if (p->size > 0) {
        /* Gave up waiting: the last release frees the pool. */
        p->abandoned = true;
        return rc;
    }
    pool_free(p);
    return rc;
}
