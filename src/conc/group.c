/* Groups (asyncio.TaskGroup, Trio nurseries) and what is built on them:
 * wait, as_completed, gather. */
#include "internal.h"

enum { G_OPEN, G_JOINING, G_JOINED };

typedef struct group_error {
    int code;
    char *what;
} group_error;

struct cio_group {
    cio_group *next_open; /* in the opener's list of open groups */
    cio_task *opener;
    cio_scope scope; /* parent: the opener's scope at the open */
    unsigned flags;
    int state;
    cio_task *children;             /* alive, and finished with a handle */
    cio_task *done_head, *done_tail; /* finished, not yet given by next() */
    size_t n_alive, n_done, n_failed, n_tracked_alive;
    cio__waitq waiters;
    group_error *errors;
    size_t nerr, cap;
    int first_error;
    int join_rc;
};

cio_group *cio__group_next_open(const cio_group *g)
{
    return g->next_open;
}

cio_task *cio__group_children(const cio_group *g)
{
    return g->children;
}

int cio_group_new(cio_group **out, unsigned flags)
{
    CIO__SELF_OR_RETURN(t);
    if (out == NULL || (flags & ~CIO_GROUP_COLLECT))
        return -EINVAL;
    cio_group *g = cio__calloc(1, sizeof *g);
    if (g == NULL)
        return -ENOMEM;
    g->opener = t;
    g->flags = flags;
    g->scope.cio__parent = t->scope;
    g->scope.cio__owner = t;
    g->scope.cio__deadline = CIO_NEVER;
    g->scope.cio__cancelled_at = CIO_NEVER;
    t->scope = &g->scope;
    t->cc_epoch = 0;
    g->next_open = t->groups;
    t->groups = g;
    *out = g;
    return 0;
}

static void children_unlink(cio_group *g, cio_task *c)
{
    if (c->g_prev)
        c->g_prev->g_next = c->g_next;
    else
        g->children = c->g_next;
    if (c->g_next)
        c->g_next->g_prev = c->g_prev;
    c->g_prev = c->g_next = NULL;
}

int cio_group_spawn_ex(cio_group *g, cio_task **out, cio_task_fn fn,
                       void *arg, const cio_spawn_opts *opts)
{
    if (g == NULL || fn == NULL)
        return -EINVAL;
    cio_loop *l = g->opener->loop;
    if (g->state == G_JOINED ||
        cio__scope_chain_cancelled(&g->scope, l->now) < 0)
        return CIO_ECLOSING;
    cio_task *c;
    int rc = cio__spawn(&c, g, fn, arg, opts, __builtin_return_address(0));
    if (rc < 0)
        return rc;
    c->root.cio__parent = &g->scope;
    c->g_prev = NULL;
    c->g_next = g->children;
    if (g->children)
        g->children->g_prev = c;
    g->children = c;
    g->n_alive++;
    if (out) {
        g->n_tracked_alive++;
        *out = c;
    } else {
        /* cio__spawn counted a handle for us; the group keeps none. */
        c->flags &= ~CIO__T_HANDLE;
        c->refs--;
    }
    return 0;
}

int cio_group_spawn(cio_group *g, cio_task **out, cio_task_fn fn, void *arg)
{
    return cio_group_spawn_ex(g, out, fn, arg, NULL);
}

static void cancel_group(cio_group *g)
{
    if (g->scope.cio__cancelled_at != CIO_NEVER)
        return;
    cio_loop *l = g->opener->loop;
    cio__loop_update_now(l);
    g->scope.cio__cancelled_at = l->now;
    cio__cancel_epoch_bump(l);
    /* Groups the opener opened later sit inside this one (the list is
     * innermost first): their children are cancelled too. */
    for (cio_group *in = g->opener->groups; in && in != g; in = in->next_open)
        cio__group_refresh(in);
    cio__group_refresh(g);
    cio__task_refresh(g->opener);
}

int cio_group_cancel(cio_group *g)
{
    if (g == NULL)
        return -EINVAL;
    if (g->state != G_JOINED)
        cancel_group(g);
    return 0;
}

void cio__group_refresh(cio_group *g)
{
    for (cio_task *c = g->children; c; c = c->g_next)
        if (c->state != CIO__DONE)
            cio__cancel_refresh(c);
}

static void record_error(cio_group *g, cio_task *c)
{
    if (g->first_error == 0)
        g->first_error = c->result;
    if (g->nerr == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4;
        group_error *e = cio__realloc(g->errors, cap * sizeof *e);
        if (e == NULL)
            return; /* the first error is kept in first_error regardless */
        g->errors = e;
        g->cap = cap;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s: %s", cio_task_name(c),
             c->errmsg ? c->errmsg : cio_strerror(c->result));
    g->errors[g->nerr].code = c->result;
    g->errors[g->nerr].what = cio__strdup(buf);
    g->nerr++;
}

void cio__group_child_done(cio_group *g, cio_task *c)
{
    g->n_alive--;
    g->n_done++;
    if (c->result < 0 && c->result != -ECANCELED) {
        g->n_failed++;
        record_error(g, c);
        if (!(g->flags & CIO_GROUP_COLLECT))
            cancel_group(g);
    }
    if (c->flags & CIO__T_HANDLE) {
        g->n_tracked_alive--;
        c->g_done_next = NULL;
        if (g->done_tail)
            g->done_tail->g_done_next = c;
        else
            g->done_head = c;
        g->done_tail = c;
        c->flags |= CIO__T_IN_DONE;
    } else {
        children_unlink(g, c);
    }
    while (cio__waitq_grant(&g->waiters, NULL))
        ;
}

static void done_remove(cio_group *g, cio_task *c)
{
    cio_task *prev = NULL;
    for (cio_task *p = g->done_head; p; prev = p, p = p->g_done_next) {
        if (p != c)
            continue;
        if (prev)
            prev->g_done_next = p->g_done_next;
        else
            g->done_head = p->g_done_next;
        if (g->done_tail == p)
            g->done_tail = prev;
        break;
    }
    c->flags &= ~CIO__T_IN_DONE;
}

void cio__group_child_release(cio_group *g, cio_task *c)
{
    if (c->flags & CIO__T_IN_DONE)
        done_remove(g, c);
    if (c->state == CIO__DONE)
        children_unlink(g, c);
    else
        g->n_tracked_alive--;
}

/* Park on the group until a child finishes. */
static int wait_change(cio_task *t, cio_group *g, unsigned flags)
{
    cio__waiter w = {0};
    return cio__park_q(t, &g->waiters, &w, CIO__W_GROUP, g, CIO_NEVER,
                       flags);
}

static bool wait_done(const cio_group *g, int mode)
{
    switch (mode) {
    case CIO_WAIT_FIRST_COMPLETED:
        return g->n_done > 0 || g->n_alive == 0;
    case CIO_WAIT_FIRST_ERROR:
        return g->n_failed > 0 || g->n_alive == 0;
    default:
        return g->n_alive == 0;
    }
}

int cio_group_wait(cio_group *g, int mode)
{
    CIO__SELF_OR_RETURN(t);
    if (g == NULL || g->opener != t || mode < CIO_WAIT_FIRST_COMPLETED ||
        mode > CIO_WAIT_ALL_COMPLETED)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    while (rc == 0 && !wait_done(g, mode))
        rc = wait_change(t, g, 0);
    return rc;
}

int cio_group_next(cio_group *g, cio_task **out)
{
    CIO__SELF_OR_RETURN(t);
    if (g == NULL || out == NULL || g->opener != t)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    while (rc == 0) {
        cio_task *c = g->done_head;
        if (c) {
            g->done_head = c->g_done_next;
            if (g->done_head == NULL)
                g->done_tail = NULL;
            c->flags &= ~CIO__T_IN_DONE;
            *out = c;
            return 0;
        }
        if (g->n_tracked_alive == 0)
            return -ECHILD;
        rc = wait_change(t, g, 0);
    }
    return rc;
}

int cio_group_join(cio_group *g)
{
    CIO__SELF_OR_RETURN(t);
    if (g == NULL || g->opener != t)
        return -EINVAL;
    if (g->state == G_JOINED)
        return g->join_rc;
    if (t->scope != &g->scope)
        return -EINVAL; /* a scope or group opened inside is still open */
    t->scope = g->scope.cio__parent;
    t->cc_epoch = 0;
    g->state = G_JOINING;
    /* Not interruptible: a cancellation of the caller reaches the
     * children through the scope chain and they finish. */
    while (g->n_alive > 0)
        wait_change(t, g, CIO__PARK_UNINTERRUPTIBLE);
    g->state = G_JOINED;
    cio_group **pp = &t->groups;
    while (*pp && *pp != g)
        pp = &(*pp)->next_open;
    if (*pp)
        *pp = g->next_open;
    g->next_open = NULL;
    if (g->first_error)
        g->join_rc = g->first_error;
    else
        g->join_rc = cio__cancelled(t); /* the caller's code sees it */
    return g->join_rc;
}

/* A task returned with groups still open: the scopes they were opened in
 * are gone with its frames, so chain the groups straight to the task's
 * root scope and join them, innermost first. */
void cio__group_close_all(cio_task *t)
{
    for (cio_group *g = t->groups; g; g = g->next_open)
        g->scope.cio__parent = g->next_open ? &g->next_open->scope : &t->root;
    cio__cancel_epoch_bump(t->loop);
    while (t->groups) {
        cio_group *g = t->groups;
        t->scope = &g->scope;
        t->cc_epoch = 0;
        cio__report("task %s returned with a group open; joining it",
                    cio_task_name(t));
        int rc = cio_group_join(g);
        if (rc < 0 && rc != -ECANCELED)
            cio__report("group of task %s failed: %s (never retrieved)",
                        cio_task_name(t), cio_err_name(rc));
    }
}

size_t cio_group_error_count(const cio_group *g)
{
    return g ? g->nerr : 0;
}

int cio_group_error(const cio_group *g, size_t i, const char **what)
{
    if (g == NULL || i >= g->nerr)
        return -EINVAL;
    if (what)
        *what = g->errors[i].what ? g->errors[i].what : "";
    return g->errors[i].code;
}

void cio_group_free(cio_group *g)
{
    if (g == NULL)
        return;
    if (g->state != G_JOINED) {
        if (cio__self() != g->opener) {
            cio__report("cio_group_free: group still open and not called by "
                        "its opener; not freed");
            return;
        }
        int rc = cio_group_join(g);
        if (rc == -EINVAL) {
            cio__report("cio_group_free: a scope opened inside the group is "
                        "still open; not freed");
            return;
        }
        if (rc < 0 && rc != -ECANCELED)
            cio__report("group failed: %s (never retrieved)",
                        cio_err_name(rc));
    }
    while (g->children) {
        cio_task *c = g->children;
        children_unlink(g, c);
        c->flags &= ~(CIO__T_HANDLE | CIO__T_IN_DONE);
        c->group = NULL;
        cio__task_unref(c);
    }
    for (size_t i = 0; i < g->nerr; i++)
        cio__free(g->errors[i].what);
    cio__free(g->errors);
    cio__free(g);
}

/* ---- gather -------------------------------------------------------------- */

typedef struct gather_state {
    cio_call *calls;
    size_t n, next;
    char *errmsg; /* fail-fast: the text of the call that failed first */
    bool failed;
    unsigned flags;
} gather_state;

static int gather_worker(void *arg)
{
    gather_state *s = arg;
    for (;;) {
        int rc = cio_cancel_pending();
        if (rc < 0)
            return rc;
        size_t i = s->next++;
        if (i >= s->n)
            return 0;
        rc = s->calls[i].fn(s->calls[i].arg);
        s->calls[i].result = rc;
        if (rc < 0 && rc != -ECANCELED &&
            !(s->flags & CIO_GATHER_RETURN_ERRORS)) {
            if (!s->failed) { /* the text goes with the error */
                cio_task *self = cio__self();
                s->failed = true;
                s->errmsg = self->errmsg;
                self->errmsg = NULL;
            }
            return rc;
        }
    }
}

int cio_gather_limit(cio_call *calls, size_t n, size_t limit, unsigned flags)
{
    CIO__SELF_OR_RETURN(t);
    if ((calls == NULL && n > 0) || (flags & ~CIO_GATHER_RETURN_ERRORS))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (calls[i].fn == NULL)
            return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0 || n == 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        calls[i].result = -ECANCELED;
    bool collect = flags & CIO_GATHER_RETURN_ERRORS;
    cio_group *g;
    rc = cio_group_new(&g, collect ? CIO_GROUP_COLLECT : 0);
    if (rc < 0)
        return rc;
    gather_state s = {.calls = calls, .n = n, .flags = flags};
    size_t workers = (limit == 0 || limit > n) ? n : limit;
    size_t started = 0;
    int spawn_rc = 0;
    for (size_t w = 0; w < workers; w++) {
        spawn_rc = cio_group_spawn(g, NULL, gather_worker, &s);
        if (spawn_rc < 0)
            break;
        started++;
    }
    if (started == 0)
        cio_group_cancel(g);
    rc = cio_group_join(g);
    if (rc < 0 && rc != -ECANCELED && s.errmsg)
        cio_errorf(rc, "%s", s.errmsg);
    cio__free(s.errmsg);
    cio_group_free(g);
    if (started == 0)
        return spawn_rc;
    if (collect && rc != -ECANCELED)
        rc = 0;
    return rc;
}

int cio_gather(cio_call *calls, size_t n, unsigned flags)
{
    return cio_gather_limit(calls, n, 0, flags);
}
