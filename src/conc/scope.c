/* Cancel scopes: level-triggered cancellation and deadlines.
 *
 * A task's scopes form a chain from the innermost outwards: the task's own
 * scopes, its root scope, then (for a group child) the group's scope and
 * the scopes of the task that opened the group, and so on up. The task is
 * cancelled while any scope on the chain up to the first shield is
 * cancelled or past its deadline. Nothing is stored per task: each
 * checkpoint walks the chain (a few pointer hops), and a waiting task arms
 * its timer at the nearest deadline on it, so a deadline reaches all the
 * tasks below it without a list of them. */
#include "internal.h"

static inline int64_t trigger_time(const cio_scope *s, int64_t now)
{
    int64_t at = s->cio__cancelled_at;
    if (s->cio__deadline <= now && s->cio__deadline < at)
        at = s->cio__deadline;
    return at;
}

int cio__scope_chain_cancelled(const cio_scope *s, int64_t now)
{
    for (; s; s = s->cio__parent) {
        if (s->cio__cancelled_at != CIO_NEVER || s->cio__deadline <= now)
            return -ECANCELED;
        if (s->cio__flags & CIO_SCOPE_SHIELD)
            break;
    }
    return 0;
}

/* The task's code sees a cancellation: mark the cancelled scopes around
 * it (up to a shield), so that the one that reports it says -ETIMEDOUT /
 * -ECANCELED at its exit. A scope whose cancellation nobody saw exits with
 * 0, as asyncio.timeout and Trio's scopes do. */
static void mark_delivered(cio_scope *from, int64_t now)
{
    for (cio_scope *s = from; s; s = s->cio__parent) {
        if (s->cio__cancelled_at != CIO_NEVER || s->cio__deadline <= now)
            s->cio__flags |= CIO__SCOPE_DELIVERED;
        if (s->cio__flags & CIO_SCOPE_SHIELD)
            break;
    }
}

/* Walk the chain once and remember what it says until something that
 * could change the answer bumps the loop's epoch. */
void cio__chain_state(cio_task *t)
{
    int64_t d = CIO_NEVER;
    bool cancelled = false;
    for (const cio_scope *s = t->scope; s; s = s->cio__parent) {
        cancelled |= s->cio__cancelled_at != CIO_NEVER;
        if (s->cio__deadline < d)
            d = s->cio__deadline;
        if (s->cio__flags & CIO_SCOPE_SHIELD)
            break;
    }
    t->cc_epoch = t->loop->cancel_epoch;
    t->cc_deadline = d;
    t->cc_until = cancelled ? INT64_MIN : d;
}

int cio__cancel_seen(cio_task *t)
{
    mark_delivered(t->scope, t->loop->now);
    return -ECANCELED;
}

void cio__cancel_refresh(cio_task *t)
{
    cio__cancel_epoch_bump(t->loop);
    cio__task_refresh(t);
    for (cio_group *g = t->groups; g; g = cio__group_next_open(g))
        cio__group_refresh(g);
}

int cio_scope_enter(cio_scope *sc, int64_t deadline, unsigned flags)
{
    CIO__SELF_OR_RETURN(t);
    if (sc == NULL || deadline < 0 || (flags & ~CIO_SCOPE_SHIELD))
        return -EINVAL;
    cio__loop_update_now(t->loop);
    sc->cio__parent = t->scope;
    sc->cio__owner = t;
    sc->cio__deadline = deadline;
    sc->cio__cancelled_at = CIO_NEVER;
    sc->cio__flags = flags;
    t->scope = sc;
    t->cc_epoch = 0; /* the chain changed */
    if (deadline != CIO_NEVER) {
        sc->cio__flags |= CIO__SCOPE_TIMED;
        t->loop->deadline_scopes++;
        t->timed_scopes++;
    }
    return 0;
}

/* The earliest time a scope enclosing `sc` (up to a shield) triggered. */
static int64_t outer_trigger(const cio_scope *sc, int64_t now)
{
    int64_t at = CIO_NEVER;
    if (sc->cio__flags & CIO_SCOPE_SHIELD)
        return at;
    for (const cio_scope *s = sc->cio__parent; s; s = s->cio__parent) {
        int64_t t = trigger_time(s, now);
        if (t < at)
            at = t;
        if (s->cio__flags & CIO_SCOPE_SHIELD)
            break;
    }
    return at;
}

int cio_scope_exit(cio_scope *sc)
{
    CIO__SELF_OR_RETURN(t);
    if (sc == NULL || sc != t->scope || sc == &t->root)
        return -EINVAL;
    cio_loop *l = t->loop;
    int64_t own = trigger_time(sc, l->now);
    int64_t outer = outer_trigger(sc, l->now);
    bool delivered = sc->cio__flags & CIO__SCOPE_DELIVERED;
    int rc = 0;
    if (outer != CIO_NEVER) {
        /* An enclosing scope is cancelled too: it takes precedence (as in
         * Trio and asyncio) and the cancellation passes through. */
        rc = -ECANCELED;
        if (delivered)
            mark_delivered(sc->cio__parent, l->now);
    } else if (own != CIO_NEVER && delivered)
        rc = (sc->cio__deadline <= l->now &&
              sc->cio__deadline <= sc->cio__cancelled_at)
                 ? -ETIMEDOUT
                 : -ECANCELED;
    t->scope = sc->cio__parent;
    t->cc_epoch = 0;
    if (sc->cio__flags & CIO__SCOPE_TIMED) {
        l->deadline_scopes--;
        t->timed_scopes--;
    }
    return rc;
}

int cio_scope_cancel(cio_scope *sc)
{
    if (sc == NULL || sc->cio__owner == NULL)
        return -EINVAL;
    if (sc->cio__cancelled_at != CIO_NEVER)
        return 0;
    cio_loop *l = sc->cio__owner->loop;
    cio__loop_update_now(l);
    sc->cio__cancelled_at = l->now;
    cio__cancel_refresh(sc->cio__owner);
    return 0;
}

int cio_scope_set_deadline(cio_scope *sc, int64_t deadline)
{
    if (sc == NULL || sc->cio__owner == NULL || deadline < 0)
        return -EINVAL;
    cio_loop *l = sc->cio__owner->loop;
    cio__loop_update_now(l);
    /* An expired scope stays expired (rule 1): code inside already saw
     * the cancellation. */
    if (sc->cio__deadline <= l->now)
        return -EALREADY;
    sc->cio__deadline = deadline;
    if (deadline != CIO_NEVER && !(sc->cio__flags & CIO__SCOPE_TIMED)) {
        sc->cio__flags |= CIO__SCOPE_TIMED;
        l->deadline_scopes++;
        sc->cio__owner->timed_scopes++;
    }
    cio__cancel_refresh(sc->cio__owner);
    return 0;
}
