/* Generators: a producer task hands values to one consumer (async
 * generators driven by `async for`). */
#include <pthread.h>
#include <stdint.h>

#include "test.h"

#define V(i) ((void *)(intptr_t)(i))
#define I(p) ((int)(intptr_t)(p))

/* A producer's script and what it observed. */
typedef struct prod {
    int count;       /* values 1..count, then return `result` */
    int64_t delay;   /* sleep before each value */
    int result;
    int64_t cleanup; /* shielded sleep when stopped early */
    int on_stop;     /* returned when stopped early (0: the yield's code) */
    int started;     /* values the producer began to make */
    int yielded;     /* values handed over (yield returned 0) */
    int stop_rc;     /* what stopped it early */
    bool cleaned_up;
} prod;

static int produce(cio_gen *g, void *arg)
{
    prod *p = arg;
    for (int i = 1; i <= p->count; i++) {
        p->started = i;
        int rc = p->delay > 0 ? cio_sleep(p->delay) : 0;
        if (rc == 0)
            rc = cio_gen_yield(g, V(i));
        if (rc < 0) {
            p->stop_rc = rc;
            if (p->cleanup > 0) {
                cio_scope sh;
                cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
                cio_sleep(p->cleanup);
                cio_scope_exit(&sh);
            }
            p->cleaned_up = true;
            return p->on_stop ? p->on_stop : rc;
        }
        p->yielded++;
    }
    return p->result;
}

/* ---- Values -------------------------------------------------------------- */

TEST(gen_values_in_order_then_eof)
{
    /* A positive result is success too: it ends in CIO_EOF. */
    prod p = {.count = 5, .result = 5};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    for (int i = 1; i <= 5; i++) {
        void *v = NULL;
        ASSERT_EQ(0, cio_gen_next(g, &v));
        ASSERT_EQ(i, I(v));
    }
    void *v = V(99);
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    ASSERT_EQ(99, I(v));
    ASSERT_EQ(0, cio_gen_close(g));
    cio_gen_free(g);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(gen_many_values_none_lost_or_repeated)
{
    prod p = {.count = 1000};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    int n = 0, rc;
    while ((rc = cio_gen_next(g, &v)) == 0)
        ASSERT_EQ(++n, I(v));
    ASSERT_EQ(CIO_EOF, rc);
    ASSERT_EQ(1000, n);
    cio_gen_free(g);
    return 0;
}

TEST(gen_empty_producer_gives_eof)
{
    prod p = {.count = 0};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    cio_gen_free(g);
    return 0;
}

static int yield_null(cio_gen *g, void *arg)
{
    (void)arg;
    return cio_gen_yield(g, NULL);
}

TEST(gen_null_value)
{
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, yield_null, NULL));
    void *v = &v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_TRUE(v == NULL);
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    cio_gen_free(g);
    return 0;
}

TEST(gen_consumer_waits_for_slow_producer)
{
    prod p = {.count = 3, .delay = CIO_SEC};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    for (int i = 1; i <= 3; i++) {
        ASSERT_EQ(0, cio_gen_next(g, &v));
        ASSERT_EQ(i, I(v));
        ASSERT_TIME(i * CIO_SEC);
    }
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    ASSERT_TIME(3 * CIO_SEC);
    cio_gen_free(g);
    return 0;
}

TEST(gen_producer_waits_until_the_consumer_asks_again)
{
    prod p = {.count = 10, .delay = CIO_SEC};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(1, I(v));
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_sleep(5 * CIO_SEC));
    /* The first yield has not returned: nobody asked for a second value,
     * so the producer has not started making it. */
    ASSERT_EQ(0, p.yielded);
    ASSERT_EQ(1, p.started);
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(2, I(v));
    ASSERT_TIME(7 * CIO_SEC);
    ASSERT_EQ(1, p.yielded);
    ASSERT_EQ(2, p.started);
    cio_gen_free(g);
    ASSERT_EQ(2, p.started);
    return 0;
}

static int yield_once_within_1s(cio_gen *g, void *arg)
{
    int *rc = arg;
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0);
    rc[0] = cio_gen_yield(g, V(1));
    rc[1] = cio_scope_exit(&sc);
    return 0;
}

TEST(gen_yield_that_fails_withdraws_the_value)
{
    int rc[2] = {1, 1};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, yield_once_within_1s, rc));
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    ASSERT_EQ(-ECANCELED, rc[0]);
    ASSERT_EQ(-ETIMEDOUT, rc[1]);
    /* The yield reported failure: the value was not handed over. */
    void *v = V(99);
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    ASSERT_EQ(99, I(v));
    cio_gen_free(g);
    return 0;
}

/* ---- Producer errors ----------------------------------------------------- */

TEST(gen_producer_error_delivered_once_then_eof)
{
    prod p = {.count = 2, .result = -EIO};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(1, I(v));
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(2, I(v));
    ASSERT_EQ(-EIO, cio_gen_next(g, &v));
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    cio_gen_free(g);
    /* The consumer got the error: nothing to report. */
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(gen_producer_failing_at_once)
{
    prod p = {.count = 0, .result = -ENOENT};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(-ENOENT, cio_gen_next(g, &v));
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    cio_gen_free(g);
    return 0;
}

TEST(gen_close_returns_error_of_finished_producer)
{
    prod p = {.count = 0, .result = -ENOENT};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(-ENOENT, cio_gen_close(g));
    cio_gen_free(g);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(gen_free_reports_error_nobody_retrieved)
{
    prod p = {.count = 0, .result = -ENOENT};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    ASSERT_OK(cio_sleep(CIO_SEC));
    cio_gen_free(g);
    ASSERT_TRUE(strstr(cio_test_reports(), "ENOENT") != NULL);
    return 0;
}

/* ---- Closing early ------------------------------------------------------- */

TEST(gen_close_early_gives_producer_epipe_and_runs_cleanup)
{
    prod p = {.count = 100};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(2, I(v));
    ASSERT_EQ(0, cio_gen_close(g));
    ASSERT_EQ(-EPIPE, p.stop_rc);
    ASSERT_TRUE(p.cleaned_up);
    /* A second close changes nothing. */
    ASSERT_EQ(0, cio_gen_close(g));
    cio_gen_free(g);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(gen_close_waits_for_producer_cleanup)
{
    prod p = {.count = 100, .cleanup = CIO_SEC};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(0, cio_gen_close(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(p.cleaned_up);
    ASSERT_EQ(-EPIPE, p.stop_rc);
    cio_gen_free(g);
    return 0;
}

TEST(gen_close_before_first_value)
{
    prod p = {.count = 100};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    ASSERT_EQ(0, cio_gen_close(g));
    ASSERT_EQ(0, p.yielded);
    ASSERT_TRUE(p.cleaned_up);
    ASSERT_EQ(-EPIPE, p.stop_rc);
    cio_gen_free(g);
    return 0;
}

TEST(gen_close_returns_producer_cleanup_error)
{
    prod p = {.count = 100, .on_stop = -EIO};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(-EIO, cio_gen_close(g));
    cio_gen_free(g);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

TEST(gen_close_ignores_producer_ecanceled)
{
    prod p = {.count = 100, .on_stop = -ECANCELED};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(0, cio_gen_close(g));
    cio_gen_free(g);
    return 0;
}

TEST(gen_close_stops_a_busy_producer)
{
    /* The producer is between values (sleeping) when the consumer
     * closes: it is stopped there rather than waited for. */
    prod p = {.count = 100, .delay = 10 * CIO_SEC};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_EQ(0, cio_gen_close(g));
    ASSERT_TIME(CIO_SEC);
    ASSERT_TRUE(p.cleaned_up);
    ASSERT_TRUE(p.stop_rc == -ECANCELED || p.stop_rc == -EPIPE);
    cio_gen_free(g);
    return 0;
}

TEST(gen_free_without_close_closes)
{
    prod p = {.count = 100};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    void *v;
    ASSERT_EQ(0, cio_gen_next(g, &v));
    cio_gen_free(g);
    ASSERT_EQ(-EPIPE, p.stop_rc);
    ASSERT_TRUE(p.cleaned_up);
    cio_gen_free(NULL);
    ASSERT_STR_EQ("", cio_test_reports());
    return 0;
}

/* ---- Consumer cancelled -------------------------------------------------- */

TEST(gen_consumer_cancelled_in_next_loses_no_value)
{
    prod p = {.count = 2, .delay = 2 * CIO_SEC};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    void *v = V(99);
    ASSERT_EQ(-ECANCELED, cio_gen_next(g, &v));
    ASSERT_TIME(CIO_SEC);
    ASSERT_EQ(99, I(v));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(1, I(v));
    ASSERT_TIME(2 * CIO_SEC);
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(2, I(v));
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    cio_gen_free(g);
    return 0;
}

TEST(gen_consumer_cancelled_with_value_ready_keeps_it)
{
    prod p = {.count = 2};
    cio_gen *g;
    ASSERT_OK(cio_gen_new(&g, produce, &p));
    ASSERT_OK(cio_sleep(CIO_SEC));
    /* The first value is waiting; the cancelled call checks first. */
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    void *v = V(99);
    ASSERT_EQ(-ECANCELED, cio_gen_next(g, &v));
    ASSERT_EQ(99, I(v));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(1, I(v));
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(2, I(v));
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    cio_gen_free(g);
    return 0;
}

typedef struct consumer {
    cio_gen *g;
    int rc, next_rc;
    void *value;
} consumer;

static int consume_one(void *arg)
{
    consumer *c = arg;
    c->rc = cio_gen_next(c->g, &c->value);
    c->next_rc = cio_sleep(CIO_SEC);
    return 0;
}

typedef struct canceller {
    cio_task *target;
    int64_t delay;
} canceller;

static int cancel_later(void *arg)
{
    canceller *x = arg;
    int rc = cio_sleep(x->delay);
    return rc < 0 ? rc : cio_task_cancel(x->target);
}

TEST(gen_value_handed_over_beats_late_cancel)
{
    /* At 1 s the producer hands a value to the waiting consumer and, in
     * the same turn before the consumer runs, the consumer is cancelled:
     * it still gets the value. */
    prod p = {.count = 3, .delay = CIO_SEC};
    consumer c = {NULL, 1, 1, NULL};
    ASSERT_OK(cio_gen_new(&c.g, produce, &p));
    cio_task *ct;
    ASSERT_OK(cio_spawn(&ct, consume_one, &c));
    canceller x = {ct, CIO_SEC};
    cio_task *xt;
    ASSERT_OK(cio_spawn(&xt, cancel_later, &x));
    ASSERT_EQ(0, cio_task_join(ct));
    ASSERT_EQ(0, c.rc);
    ASSERT_EQ(1, I(c.value));
    ASSERT_EQ(-ECANCELED, c.next_rc);
    ASSERT_TIME(CIO_SEC);
    ASSERT_OK(cio_task_join(xt));
    /* Nothing was lost: the next value is the second. */
    void *v;
    ASSERT_EQ(0, cio_gen_next(c.g, &v));
    ASSERT_EQ(2, I(v));
    cio_task_free(xt);
    cio_task_free(ct);
    cio_gen_free(c.g);
    return 0;
}

TEST(gen_consumer_task_cancelled_while_waiting)
{
    prod p = {.count = 1, .delay = 5 * CIO_SEC};
    consumer c = {NULL, 1, 1, NULL};
    ASSERT_OK(cio_gen_new(&c.g, produce, &p));
    cio_task *ct;
    ASSERT_OK(cio_spawn(&ct, consume_one, &c));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(cio_task_cancel(ct));
    ASSERT_EQ(0, cio_task_join(ct));
    ASSERT_EQ(-ECANCELED, c.rc);
    ASSERT_TIME(CIO_SEC);
    /* The producer was not cancelled with the consumer. */
    void *v;
    ASSERT_EQ(0, cio_gen_next(c.g, &v));
    ASSERT_EQ(1, I(v));
    ASSERT_TIME(5 * CIO_SEC);
    cio_task_free(ct);
    cio_gen_free(c.g);
    return 0;
}

/* ---- Misuse -------------------------------------------------------------- */

typedef struct misuse {
    int next_rc, close_rc;
} misuse;

static int next_from_producer(cio_gen *g, void *arg)
{
    misuse *m = arg;
    void *v;
    m->next_rc = cio_gen_next(g, &v);
    m->close_rc = cio_gen_close(g);
    return cio_gen_yield(g, V(1));
}

TEST(gen_misuse_is_einval)
{
    misuse m = {0, 0};
    cio_gen *g;
    ASSERT_EQ(-EINVAL, cio_gen_new(&g, NULL, NULL));
    ASSERT_EQ(-EINVAL, cio_gen_new(NULL, next_from_producer, &m));
    ASSERT_OK(cio_gen_new(&g, next_from_producer, &m));
    /* Only the producer yields. */
    ASSERT_EQ(-EINVAL, cio_gen_yield(g, V(2)));
    ASSERT_EQ(-EINVAL, cio_gen_yield(NULL, V(2)));
    void *v;
    ASSERT_EQ(-EINVAL, cio_gen_next(NULL, &v));
    ASSERT_EQ(-EINVAL, cio_gen_next(g, NULL));
    ASSERT_EQ(0, cio_gen_next(g, &v));
    ASSERT_EQ(1, I(v));
    /* The producer cannot consume or close itself. */
    ASSERT_EQ(-EINVAL, m.next_rc);
    ASSERT_EQ(-EINVAL, m.close_rc);
    ASSERT_EQ(CIO_EOF, cio_gen_next(g, &v));
    ASSERT_EQ(-EINVAL, cio_gen_close(NULL));
    cio_gen_free(g);
    return 0;
}

static void *gen_calls_outside(void *arg)
{
    int *rc = arg;
    cio_gen *g;
    /* Never dereferenced: the calls refuse before looking at it. */
    cio_gen *bogus = (cio_gen *)&g;
    void *v;
    rc[0] = cio_gen_new(&g, next_from_producer, NULL);
    rc[1] = cio_gen_next(bogus, &v);
    rc[2] = cio_gen_yield(bogus, NULL);
    rc[3] = cio_gen_close(bogus);
    return NULL;
}

TEST(gen_calls_outside_a_loop_are_enotask)
{
    int rc[4] = {0, 0, 0, 0};
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, gen_calls_outside, rc));
    ASSERT_EQ(0, pthread_join(th, NULL));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(CIO_ENOTASK, rc[i]);
    return 0;
}
