/* Futures: a one-shot result that any number of tasks can wait for. */
#include "internal.h"

typedef struct done_cb {
    struct done_cb *next;
    cio_future_cb fn;
    void *arg;
} done_cb;

struct cio_future {
    cio__waitq waiters;
    done_cb *cbs;
    void *value;
    int result;
    bool done;
};

int cio_future_new(cio_future **out)
{
    if (out == NULL)
        return -EINVAL;
    if (cio__loop == NULL)
        return CIO_ENOTASK;
    cio_future *f = cio__calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    *out = f;
    return 0;
}

static int complete(cio_future *f, int result, void *value)
{
    if (f == NULL)
        return -EINVAL;
    if (f->done)
        return -EALREADY;
    f->done = true;
    f->result = result;
    f->value = value;
    /* Each waiter gets the outcome in its own node, so a woken waiter never
     * reads `f` again: the future may be freed before the waiters run. */
    cio__waiter *w;
    while ((w = cio__waitq_pop(&f->waiters)) != NULL) {
        w->value = value;
        w->granted = 1;
        cio__wake(w->task, result);
    }
    /* Callbacks run in registration order. */
    done_cb *cb = f->cbs, *prev = NULL;
    while (cb) { /* reverse the LIFO list */
        done_cb *next = cb->next;
        cb->next = prev;
        prev = cb;
        cb = next;
    }
    f->cbs = NULL;
    while (prev) {
        done_cb *next = prev->next;
        prev->fn(f, prev->arg);
        cio__free(prev);
        prev = next;
    }
    return 0;
}

int cio_future_set_result(cio_future *f, void *value)
{
    return complete(f, 0, value);
}

int cio_future_set_error(cio_future *f, int err)
{
    if (err >= 0)
        return -EINVAL;
    return complete(f, err, NULL);
}

int cio_future_cancel(cio_future *f)
{
    return complete(f, -ECANCELED, NULL);
}

bool cio_future_done(const cio_future *f)
{
    return f && f->done;
}

int cio_future_wait(cio_future *f, int64_t deadline, void **value)
{
    CIO__SELF_OR_RETURN(t);
    if (f == NULL || deadline < 0)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    if (!f->done) {
        cio__loop_update_now(t->loop);
        if (deadline <= t->loop->now)
            return -ETIMEDOUT;
        cio__waiter w = {0};
        rc = cio__park_q(t, &f->waiters, &w, CIO__W_FUTURE, f, deadline, 0);
        /* Not granted: timed out or cancelled (the future's own -ECANCELED
         * comes granted). */
        if (!w.granted || rc < 0)
            return rc;
        if (value)
            *value = w.value;
        return 0;
    }
    if (value)
        *value = f->value;
    return f->result;
}

int cio_future_on_done(cio_future *f, cio_future_cb cb, void *arg)
{
    if (f == NULL || cb == NULL)
        return -EINVAL;
    if (f->done) {
        cb(f, arg);
        return 0;
    }
    done_cb *c = cio__malloc(sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->fn = cb;
    c->arg = arg;
    c->next = f->cbs;
    f->cbs = c;
    return 0;
}

int cio_future_free(cio_future *f)
{
    if (f == NULL)
        return 0;
    if (f->waiters.head)
        return -EBUSY;
    for (done_cb *c = f->cbs, *next; c; c = next) {
        next = c->next;
        cio__free(c);
    }
    cio__free(f);
    return 0;
}
