/* Generators: a producer task hands values to one consumer, one at a time
 * (a rendezvous), like an async generator driven by `async for`.
 *
 * The producer starts at once and runs to its first yield. From then on a
 * yield returns only when the consumer has taken the value and asked for
 * the next one (or closed), so the producer never works ahead of demand:
 * an async generator's body also resumes only on the next __anext__(). */
#include "internal.h"

struct cio_gen {
    cio_task *task;
    cio_gen_fn fn;
    void *arg;
    void *value;
    bool has_value;
    bool asked;    /* the consumer waits for a value not yet yielded */
    bool closed;   /* the consumer stopped */
    bool finished; /* the producer returned */
    bool error_given;
    cio__waitq consumer, producer;
};

static int gen_main(void *arg)
{
    cio_gen *g = arg;
    int rc = g->fn(g, g->arg);
    g->finished = true;
    while (cio__waitq_grant(&g->consumer, NULL))
        ;
    return rc;
}

int cio_gen_new(cio_gen **out, cio_gen_fn fn, void *arg)
{
    if (out == NULL || fn == NULL)
        return -EINVAL;
    if (cio__loop == NULL)
        return CIO_ENOTASK;
    cio_gen *g = cio__calloc(1, sizeof *g);
    if (g == NULL)
        return -ENOMEM;
    g->fn = fn;
    g->arg = arg;
    cio_spawn_opts o = {.name = "generator"};
    int rc = cio__spawn(&g->task, NULL, gen_main, g, &o,
                        __builtin_return_address(0));
    if (rc < 0) {
        cio__free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int cio_gen_yield(cio_gen *g, void *value)
{
    CIO__SELF_OR_RETURN(t);
    if (g == NULL || t != g->task)
        return -EINVAL;
    if (g->closed)
        return -EPIPE;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    g->value = value;
    g->has_value = true;
    g->asked = false;
    cio__waitq_grant(&g->consumer, NULL);
    /* Wait until the consumer took it and asks for more (or left). */
    while ((g->has_value || !g->asked) && !g->closed) {
        cio__waiter w = {0};
        rc = cio__park_q(t, &g->producer, &w, CIO__W_GEN, g, CIO_NEVER, 0);
        if (rc < 0 && !g->closed) {
            /* A yield that fails hands nothing over: take back a value
             * the consumer has not taken yet. */
            g->has_value = false;
            return rc;
        }
    }
    return g->closed ? -EPIPE : 0;
}

int cio_gen_next(cio_gen *g, void **value)
{
    CIO__SELF_OR_RETURN(t);
    if (g == NULL || value == NULL || t == g->task)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    for (;;) {
        if (g->has_value) {
            /* The producer stays in its yield until the next request. */
            *value = g->value;
            g->has_value = false;
            return 0;
        }
        if (g->finished || g->closed) {
            cio__join_quiet(g->task);
            int res = g->task->result;
            if (res < 0 && !g->error_given && !g->closed) {
                g->error_given = true;
                return res;
            }
            return CIO_EOF;
        }
        if (!g->asked) {
            g->asked = true;
            cio__waitq_grant(&g->producer, NULL);
        }
        cio__waiter w = {0};
        rc = cio__park_q(t, &g->consumer, &w, CIO__W_GEN, g, CIO_NEVER, 0);
        if (rc < 0)
            return rc; /* a value that arrives meanwhile waits for us */
    }
}

int cio_gen_close(cio_gen *g)
{
    if (g == NULL)
        return -EINVAL;
    cio_task *self = cio__self();
    if (self == NULL)
        return CIO_ENOTASK;
    if (self == g->task)
        return -EINVAL; /* the producer would wait for itself */
    if (!g->closed) {
        g->closed = true;
        g->has_value = false;
        cio_task_cancel(g->task);
        cio__waitq_grant(&g->producer, NULL);
    }
    int res = cio__join_quiet(g->task);
    bool given = g->error_given;
    g->error_given = true;
    if (given)
        return 0; /* cio_gen_next delivered it already */
    return (res < 0 && res != -EPIPE && res != -ECANCELED) ? res : 0;
}

void cio_gen_free(cio_gen *g)
{
    if (g == NULL)
        return;
    bool given = g->error_given;
    int rc = cio_gen_close(g);
    if (rc == CIO_ENOTASK)
        return;
    /* Like a task's error, a producer's error nobody saw is reported. */
    if (rc < 0 && !given) {
        const char *msg = cio_task_errmsg(g->task);
        cio__report("generator %s failed: %s (never retrieved)%s%s",
                    cio_task_name(g->task), cio_err_name(rc),
                    msg ? ": " : "", msg ? msg : "");
    }
    cio_task_free(g->task);
    cio__free(g);
}
