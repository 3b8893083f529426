/* bench_timers: the cost of a scope deadline that is cancelled before it
 * fires. N tasks (argv[1], default 1e5) wait on an event together, round
 * after round, each inside a cio_scope. In a timed round the scope has a
 * deadline (60 s + a random 0..1 s away, fixed per task), so each park
 * arms the task's timer in the loop's heap, holding N timers, and each
 * wakeup removes it; in a plain round (CIO_NEVER) no timer is touched.
 * Rounds come in blocks of one kind, plain and timed alternating, and a
 * round is timed from the event's set to the last task parked again: per
 * task a wakeup, a scope exit and enter, and a park. The tasks are spawned
 * once, so stacks and first runs are not in it. Prints the difference of
 * the median timed and plain rounds per task as `timers` (heap push and
 * remove plus the deadline lookup), both medians, and the cost of a scope
 * enter + exit that does not suspend (a cio_scope arms nothing until its
 * task parks). asyncio_bench.py timers does the same with
 * asyncio.timeout_at, in fewer rounds. */
#include "bench.h"

#define BLOCKS 6 /* plain, timed, plain, ...; the first two warm up */
#define ROUNDS 5 /* per block; the first follows a round of the other kind */

typedef struct shared {
    cio_event go[2];  /* round k waits on go[k % 2] */
    cio_event all_in; /* the last task of a round parked */
    long n, in;
    int timed; /* the kind of the next round */
    int stop;
} shared;

typedef struct worker {
    shared *sh;
    int64_t deadline;
} worker;

static int work(void *arg)
{
    const worker *w = arg;
    shared *sh = w->sh;
    for (long k = 0;; k++) {
        cio_scope sc;
        int rc = cio_scope_enter(&sc, sh->timed ? w->deadline : CIO_NEVER, 0);
        if (rc < 0)
            return rc;
        if (++sh->in == sh->n)
            cio_event_set(&sh->all_in);
        rc = cio_event_wait(&sh->go[k % 2]);
        int ex = cio_scope_exit(&sc);
        if (rc < 0 || ex < 0)
            return rc < 0 ? rc : ex;
        if (sh->stop)
            return 0;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Wait until every task has parked in its round. */
static int all_parked(shared *sh)
{
    int rc = cio_event_wait(&sh->all_in);
    cio_event_clear(&sh->all_in);
    sh->in = 0;
    return rc;
}

/* Run the rounds; store the median plain and timed round per task. */
static int run_rounds(worker *ws, long n, double *plain, double *timed)
{
    shared sh = {.n = n};
    cio_event_init(&sh.go[0]);
    cio_event_init(&sh.go[1]);
    cio_event_init(&sh.all_in);
    uint64_t seed = BENCH_SEED;
    int64_t base = cio_now() + 60 * CIO_SEC;
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return bench_fail("cio_group_new", rc);
    for (long i = 0; i < n && rc == 0; i++) {
        int64_t us = bench_delay_us(&seed);
        ws[i] = (worker){.sh = &sh, .deadline = base + us * CIO_USEC};
        rc = cio_group_spawn(g, NULL, work, &ws[i]);
    }
    double kind[2][BLOCKS / 2 * (ROUNDS - 1)];
    int nk[2] = {0, 0};
    if (rc == 0)
        rc = all_parked(&sh); /* in round 0, a plain one */
    long k = 0;
    for (int b = 0; b < BLOCKS && rc == 0; b++) {
        for (int r = 0; r < ROUNDS && rc == 0; r++, k++) {
            /* Release round k into round k + 1, of block b's kind. */
            sh.timed = b % 2;
            sh.stop = b == BLOCKS - 1 && r == ROUNDS - 1;
            cio_event_clear(&sh.go[(k + 1) % 2]);
            int64_t t0 = bench_now();
            cio_event_set(&sh.go[k % 2]);
            if (sh.stop)
                break;
            rc = all_parked(&sh);
            double ns = (double)(bench_now() - t0) / (double)n;
            if (b >= 2 && r >= 1)
                kind[b % 2][nk[b % 2]++] = ns;
        }
    }
    if (rc < 0)
        cio_group_cancel(g);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    if (rc < 0)
        return bench_fail("rounds", rc);
    if (jrc < 0)
        return bench_fail("cio_group_join", jrc);
    *plain = median(kind[0], nk[0]);
    *timed = median(kind[1], nk[1]);
    return 0;
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
    worker *ws = malloc((size_t)n * sizeof *ws);
    if (ws == NULL)
        return bench_fail("malloc", -ENOMEM);
    double plain = 0, timed = 0, scope = 0;
    int rc = run_rounds(ws, n, &plain, &timed);
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
