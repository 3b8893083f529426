/* bench_timers: the cost of a scope deadline that is cancelled before it
 * fires. N tasks (argv[1], default 1e5) each enter a cio_scope and wait on
 * one event; once all wait, the event is set and each exits its scope.
 * With deadlines (10 s + a random 0..1 s away) each park arms the task's
 * timer in the loop's heap, holding up to N timers, and each wakeup
 * removes it; without (CIO_NEVER) no timer is touched. Prints the
 * difference per task as `timers` (heap push + remove plus the deadline
 * lookup), both totals per task (best of PAIRS), and the cost of a scope
 * enter + exit that does not suspend (a cio_scope arms nothing until its
 * task parks). */
#include "bench.h"

#define PAIRS 3

typedef struct phase {
    cio_event ev;
    int64_t base; /* 0: no deadline */
} phase;

static int64_t deadline_of(const phase *p, uint64_t *seed)
{
    uint32_t us = bench_delay_us(seed);
    return p->base ? p->base + (int64_t)us * CIO_USEC : CIO_NEVER;
}

typedef struct waiter {
    phase *p;
    int64_t deadline;
} waiter;

static int wait_in_scope(void *arg)
{
    const waiter *w = arg;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, w->deadline, 0);
    if (rc < 0)
        return rc;
    rc = cio_event_wait(&w->p->ev);
    int ex = cio_scope_exit(&sc);
    return rc < 0 ? rc : ex;
}

/* Run one phase; store the wall time per task in `*ns`. */
static int run_phase(waiter *ws, long n, int with_deadline, double *ns)
{
    phase p;
    cio_event_init(&p.ev);
    uint64_t seed = BENCH_SEED;
    int64_t t0 = bench_now();
    p.base = with_deadline ? cio_now() + 10 * CIO_SEC : 0;
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return bench_fail("cio_group_new", rc);
    for (long i = 0; i < n && rc == 0; i++) {
        ws[i] = (waiter){.p = &p, .deadline = deadline_of(&p, &seed)};
        rc = cio_group_spawn(g, NULL, wait_in_scope, &ws[i]);
    }
    if (rc == 0)
        rc = cio_yield(); /* every task runs and parks */
    if (rc == 0)
        rc = cio_event_set(&p.ev);
    if (rc < 0)
        cio_group_cancel(g);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    *ns = (double)(bench_now() - t0) / (double)n;
    if (rc < 0)
        return bench_fail("spawn/yield/set", rc);
    return jrc < 0 ? bench_fail("cio_group_join", jrc) : 0;
}

/* Enter and exit a scope with a deadline `reps` times without parking. */
static int scope_only(long reps, double *ns)
{
    int64_t deadline = cio_now() + 10 * CIO_SEC;
    int64_t t0 = bench_now();
    for (long i = 0; i < reps; i++) {
        cio_scope sc;
        int rc = cio_scope_enter(&sc, deadline, 0);
        if (rc < 0)
            return bench_fail("cio_scope_enter", rc);
        rc = cio_scope_exit(&sc);
        if (rc < 0)
            return bench_fail("cio_scope_exit", rc);
    }
    *ns = (double)(bench_now() - t0) / (double)reps;
    return 0;
}

static int timers_main(void *arg)
{
    long n = *(const long *)arg;
    waiter *ws = malloc((size_t)n * sizeof *ws);
    if (ws == NULL)
        return bench_fail("malloc", -ENOMEM);
    /* A first phase maps the stacks, so that the measured ones all reuse
     * them; then PAIRS alternating pairs, keeping the best of each kind,
     * since the result is a difference of two noisy totals. */
    double plain = 1e18, timed = 1e18, scope = 0, ns = 0;
    int rc = run_phase(ws, n, 0, &ns);
    for (int i = 0; i < PAIRS && rc == 0; i++) {
        rc = run_phase(ws, n, 0, &ns);
        plain = ns < plain ? ns : plain;
        if (rc == 0)
            rc = run_phase(ws, n, 1, &ns);
        timed = ns < timed ? ns : timed;
    }
    if (rc == 0)
        rc = scope_only(10 * n, &scope);
    free(ws);
    if (rc < 0)
        return rc;
    printf("timers %.1f ns\n", timed - plain);
    printf("timers.wait_ns %.1f ns\n", timed);
    printf("timers.wait_nodeadline_ns %.1f ns\n", plain);
    printf("timers.scope_ns %.1f ns\n", scope);
    return 0;
}

int main(int argc, char **argv)
{
    long n = bench_size(argc, argv, 100000);
    return bench_main(NULL, timers_main, &n);
}
