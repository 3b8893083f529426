/* Mutex, event, condition, semaphores, barrier.
 *
 * Every primitive hands what it releases straight to the first waiter
 * (strict FIFO, no overtaking). A waiter that was handed something but is
 * cancelled before it runs passes it on (rule 11 in DESIGN.md). */
#include "core/switch.h"
#include "internal.h"

#define MUTEX_BROKEN 1u
/* Marks a grant of a mutex whose previous owner died holding it. */
static char broken_mark;

/* ---- mutex --------------------------------------------------------------- */

static void held_add(cio_task *t, cio_mutex *m)
{
    m->cio__owner = t;
    m->cio__prev_held = NULL;
    m->cio__next_held = t->held;
    if (t->held)
        t->held->cio__prev_held = m;
    t->held = m;
}

static void held_remove(cio_task *t, cio_mutex *m)
{
    if (m->cio__prev_held)
        m->cio__prev_held->cio__next_held = m->cio__next_held;
    else
        t->held = m->cio__next_held;
    if (m->cio__next_held)
        m->cio__next_held->cio__prev_held = m->cio__prev_held;
    m->cio__next_held = m->cio__prev_held = NULL;
    m->cio__owner = NULL;
}

/* Give `m` (owned by nobody now) to its first waiter, or leave it free. */
static void mutex_hand_off(cio_mutex *m, bool broken)
{
    cio__waiter *w = cio__waitq_pop(&m->cio__waiters);
    if (w == NULL) {
        if (broken)
            m->cio__flags |= MUTEX_BROKEN;
        return;
    }
    held_add(w->task, m);
    w->value = broken ? &broken_mark : NULL;
    w->granted = 1;
    cio__wake(w->task, 0);
}

void cio_mutex_init(cio_mutex *m)
{
    if (m)
        memset(m, 0, sizeof *m);
}

static int take_free(cio_task *t, cio_mutex *m)
{
    held_add(t, m);
    if (m->cio__flags & MUTEX_BROKEN) {
        m->cio__flags &= ~MUTEX_BROKEN;
        return -EOWNERDEAD;
    }
    return 0;
}

static int mutex_lock(cio_task *t, cio_mutex *m, unsigned park_flags)
{
    if (m->cio__owner == NULL && m->cio__waiters.head == NULL)
        return take_free(t, m);
    cio__waiter w = {0};
    int rc = cio__park_q_inline(t, &m->cio__waiters, &w, CIO__W_MUTEX, m,
                                CIO_NEVER, park_flags);
    if (rc < 0)
        return rc;
    bool broken = w.value == &broken_mark;
    if (!(park_flags & CIO__PARK_UNINTERRUPTIBLE) && cio__cancelled(t)) {
        held_remove(t, m);
        mutex_hand_off(m, broken);
        return -ECANCELED;
    }
    return broken ? -EOWNERDEAD : 0;
}

int cio_mutex_lock(cio_mutex *m)
{
    CIO__SELF_OR_RETURN(t);
    if (m == NULL)
        return -EINVAL;
    if (m->cio__owner == t)
        return -EDEADLK;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    return mutex_lock(t, m, 0);
}

int cio_mutex_trylock(cio_mutex *m)
{
    CIO__SELF_OR_RETURN(t);
    if (m == NULL)
        return -EINVAL;
    if (m->cio__owner == t)
        return -EDEADLK;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    if (m->cio__owner || m->cio__waiters.head)
        return -EBUSY;
    return take_free(t, m);
}

int cio_mutex_unlock(cio_mutex *m)
{
    if (m == NULL)
        return -EINVAL;
    cio_task *t = cio__self();
    if (t == NULL || m->cio__owner != t)
        return -EPERM;
    held_remove(t, m);
    mutex_hand_off(m, false);
    return 0;
}

bool cio_mutex_locked(const cio_mutex *m)
{
    return m && m->cio__owner != NULL;
}

void cio__mutex_break_all(cio_task *t)
{
    while (t->held) {
        cio_mutex *m = t->held;
        if (t->loop->debug)
            cio__report("task %s exited holding mutex %p; it is broken",
                        cio_task_name(t), (void *)m);
        held_remove(t, m);
        mutex_hand_off(m, true);
    }
}

/* ---- event -------------------------------------------------------------- */

void cio_event_init(cio_event *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

int cio_event_set(cio_event *e)
{
    if (e == NULL)
        return -EINVAL;
    e->cio__set = 1;
    while (cio__waitq_grant(&e->cio__waiters, NULL))
        ;
    return 0;
}

int cio_event_clear(cio_event *e)
{
    if (e == NULL)
        return -EINVAL;
    e->cio__set = 0;
    return 0;
}

bool cio_event_is_set(const cio_event *e)
{
    return e && e->cio__set;
}

int cio_event_wait(cio_event *e)
{
    CIO__SELF_OR_RETURN(t);
    if (e == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0 || e->cio__set)
        return rc;
    cio__waiter w = {0};
    return cio__park_q_inline(t, &e->cio__waiters, &w, CIO__W_EVENT, e,
                              CIO_NEVER, 0);
}

/* ---- condition ---------------------------------------------------------- */

void cio_cond_init(cio_cond *c)
{
    if (c)
        memset(c, 0, sizeof *c);
}

int cio_cond_wait(cio_cond *c, cio_mutex *m)
{
    CIO__SELF_OR_RETURN(t);
    if (c == NULL || m == NULL)
        return -EINVAL;
    if (m->cio__owner != t)
        return -EPERM;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    held_remove(t, m);
    mutex_hand_off(m, false);
    cio__waiter w = {0};
    rc = cio__park_q_inline(t, &c->cio__waiters, &w, CIO__W_COND, c,
                            CIO_NEVER, 0);
    if (rc == 0 && cio__cancelled(t)) {
        /* Notified, then cancelled before running: the notification goes
         * to the next waiter. */
        cio__waitq_grant(&c->cio__waiters, NULL);
        rc = -ECANCELED;
    }
    /* The mutex is held again on return, even when cancelled. */
    int lrc = mutex_lock(t, m, CIO__PARK_UNINTERRUPTIBLE);
    return lrc == -EOWNERDEAD ? lrc : rc;
}

int cio_cond_notify(cio_cond *c, int n)
{
    if (c == NULL || n < 0)
        return -EINVAL;
    int woken = 0;
    while (woken < n && cio__waitq_grant(&c->cio__waiters, NULL))
        woken++;
    return woken;
}

int cio_cond_notify_all(cio_cond *c)
{
    return cio_cond_notify(c, c ? INT32_MAX : 0);
}

/* ---- semaphore ---------------------------------------------------------- */

int cio_sem_init(cio_sem *s, long value, unsigned flags)
{
    if (s == NULL || value < 0 || (flags & ~CIO_SEM_BOUNDED))
        return -EINVAL;
    memset(s, 0, sizeof *s);
    s->cio__value = value;
    /* cio__max 0 means unbounded, so a bound of zero is stored as -1. */
    if (flags & CIO_SEM_BOUNDED)
        s->cio__max = value > 0 ? value : -1;
    else
        s->cio__max = 0;
    return 0;
}

static void sem_give(cio_sem *s)
{
    if (cio__waitq_grant(&s->cio__waiters, NULL) == NULL)
        s->cio__value++;
}

int cio_sem_acquire(cio_sem *s)
{
    CIO__SELF_OR_RETURN(t);
    if (s == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    if (s->cio__value > 0 && s->cio__waiters.head == NULL) {
        s->cio__value--;
        return 0;
    }
    cio__waiter w = {0};
    rc = cio__park_q_inline(t, &s->cio__waiters, &w, CIO__W_SEM, s,
                            CIO_NEVER, 0);
    if (rc < 0)
        return rc;
    if (cio__cancelled(t)) {
        sem_give(s); /* the permit we were handed goes on */
        return -ECANCELED;
    }
    return 0;
}

int cio_sem_try_acquire(cio_sem *s)
{
    CIO__SELF_OR_RETURN(t);
    if (s == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    if (s->cio__value > 0 && s->cio__waiters.head == NULL) {
        s->cio__value--;
        return 0;
    }
    return -EAGAIN;
}

int cio_sem_release(cio_sem *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->cio__max && s->cio__value >= (s->cio__max < 0 ? 0 : s->cio__max))
        return -EOVERFLOW;
    sem_give(s);
    return 0;
}

long cio_sem_value(const cio_sem *s)
{
    return s ? s->cio__value : 0;
}

/* ---- barrier ------------------------------------------------------------ */

int cio_barrier_init(cio_barrier *b, unsigned parties)
{
    if (b == NULL || parties == 0)
        return -EINVAL;
    memset(b, 0, sizeof *b);
    b->cio__parties = parties;
    return 0;
}

/* Take a waiter off the barrier when its wait is interrupted. The count
 * drops here, at once, not when the task next runs: a task arriving in
 * between must not count the leaver toward its round. */
static void barrier_unlink(cio_task *t)
{
    cio_barrier *b = (cio_barrier *)t->wait_obj;
    cio__waitq_remove(&b->cio__waiters, t->wait_node);
    b->cio__count--;
}

int cio_barrier_wait(cio_barrier *b)
{
    CIO__SELF_OR_RETURN(t);
    if (b == NULL || b->cio__parties == 0)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    if (b->cio__broken)
        return -EPIPE;
    if (b->cio__count + 1 == b->cio__parties) {
        /* The last arrival releases the round; indices follow arrival. */
        unsigned i = 0;
        cio__waiter *w;
        while ((w = cio__waitq_pop(&b->cio__waiters))) {
            w->value = (void *)(uintptr_t)i++;
            w->granted = 1;
            cio__wake(w->task, 0);
        }
        b->cio__count = 0;
        return (int)i;
    }
    b->cio__count++;
    cio__waiter w = {.task = t};
    cio__waitq_push(&b->cio__waiters, &w);
    t->wait_q = NULL;
    t->wait_node = &w;
    t->unlink = barrier_unlink;
    rc = cio__park(t, CIO__W_BARRIER, b, CIO_NEVER, 0);
    return rc < 0 ? rc : (int)(uintptr_t)w.value;
}

int cio_barrier_abort(cio_barrier *b)
{
    if (b == NULL)
        return -EINVAL;
    b->cio__broken = 1;
    b->cio__count = 0;
    cio__waiter *w;
    while ((w = cio__waitq_pop(&b->cio__waiters)))
        cio__wake(w->task, -EPIPE);
    return 0;
}

int cio_barrier_reset(cio_barrier *b)
{
    if (b == NULL)
        return -EINVAL;
    if (b->cio__waiters.head)
        return -EBUSY;
    b->cio__broken = 0;
    b->cio__count = 0;
    return 0;
}
