/* The connection pool: bounds, FIFO waiters, health checks, idle expiry,
 * lifetimes, broken connections, deadlines and close. Connections here
 * are fakes that count their opens and closes; time is virtual. */
#include "test.h"
#include "cio/pool.h"

/* ---- fake connections ---------------------------------------------------- */

typedef struct fake {
    int id;
    bool healthy;
    bool dirty; /* reset must clean it */
} fake;

typedef struct server {
    int opened, closed, checks, resets;
    int live;          /* open fakes */
    int64_t open_time; /* an open takes this long */
    int fail_opens;    /* the next N opens fail with -ECONNREFUSED */
    bool reset_fails;
    bool close_saw_cancel; /* a close ran while its task was cancelled */
} server;

static int fake_open(void *ctx, void **conn)
{
    server *s = ctx;
    if (s->open_time > 0) {
        int rc = cio_sleep(s->open_time);
        if (rc < 0)
            return rc;
    }
    if (s->fail_opens > 0) {
        s->fail_opens--;
        return -ECONNREFUSED;
    }
    fake *f = malloc(sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    *f = (fake){.id = ++s->opened, .healthy = true};
    s->live++;
    *conn = f;
    return 0;
}

static void fake_close(void *ctx, void *conn)
{
    server *s = ctx;
    /* A graceful goodbye that suspends: runs even for a cancelled task. */
    if (cio_sleep(CIO_MSEC) == -ECANCELED)
        s->close_saw_cancel = true;
    s->closed++;
    s->live--;
    free(conn);
}

static int fake_check(void *ctx, void *conn)
{
    server *s = ctx;
    s->checks++;
    return ((fake *)conn)->healthy ? 0 : -EPIPE;
}

static int fake_reset(void *ctx, void *conn)
{
    server *s = ctx;
    s->resets++;
    int rc = cio_sleep(CIO_MSEC);
    if (rc < 0)
        return rc;
    ((fake *)conn)->dirty = false;
    return s->reset_fails ? -EIO : 0;
}

static cio_pool_config config(server *s, size_t min, size_t max)
{
    return (cio_pool_config){
        .min_size = min,
        .max_size = max,
        .open = fake_open,
        .close = fake_close,
        .ctx = s,
    };
}

static cio_pool_stats stats(cio_pool *p)
{
    cio_pool_stats st;
    cio_pool_stats_get(p, &st);
    return st;
}

/* ---- basics -------------------------------------------------------------- */

TEST(pool_reuses_released_connections)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 3);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    ASSERT_EQ(0, s.opened); /* lazy */
    void *a, *b;
    ASSERT_EQ(0, cio_pool_acquire(p, &a));
    ASSERT_EQ(0, cio_pool_acquire(p, &b));
    ASSERT_TRUE(a != b);
    cio_pool_stats st = stats(p);
    ASSERT_EQ(2, st.size);
    ASSERT_EQ(2, st.in_use);
    ASSERT_EQ(0, st.idle);
    ASSERT_EQ(0, cio_pool_release(p, a, false));
    ASSERT_EQ(0, cio_pool_release(p, b, false));
    /* The most recently released comes back first. */
    void *c;
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ASSERT_TRUE(c == b);
    ASSERT_EQ(2, s.opened);
    st = stats(p);
    ASSERT_EQ(1, st.idle);
    ASSERT_EQ(1, st.in_use);
    ASSERT_EQ(3, st.acquired);
    ASSERT_EQ(0, cio_pool_release(p, c, false));
    ASSERT_EQ(0, cio_pool_close(p));
    ASSERT_EQ(2, s.closed);
    ASSERT_EQ(0, s.live);
    return 0;
}

TEST(pool_rejects_bad_input)
{
    server s = {0};
    cio_pool *p = NULL;
    cio_pool_config cfg = config(&s, 0, 2);
    ASSERT_EQ(-EINVAL, cio_pool_create(NULL, &cfg));
    ASSERT_EQ(-EINVAL, cio_pool_create(&p, NULL));
    cfg.open = NULL;
    ASSERT_EQ(-EINVAL, cio_pool_create(&p, &cfg));
    cfg = config(&s, 3, 2);
    ASSERT_EQ(-EINVAL, cio_pool_create(&p, &cfg));
    cfg = config(&s, 0, 2);
    cfg.idle_timeout = -1;
    ASSERT_EQ(-EINVAL, cio_pool_create(&p, &cfg));
    ASSERT_TRUE(p == NULL);

    cfg = config(&s, 0, 2);
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *c;
    ASSERT_EQ(-EINVAL, cio_pool_acquire(NULL, &c));
    ASSERT_EQ(-EINVAL, cio_pool_acquire(p, NULL));
    int stranger;
    ASSERT_EQ(-EINVAL, cio_pool_release(p, &stranger, false));
    ASSERT_EQ(-EINVAL, cio_pool_release(p, NULL, false));
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ASSERT_EQ(0, cio_pool_release(p, c, false));
    ASSERT_EQ(-EINVAL, cio_pool_release(p, c, false)); /* twice */
    ASSERT_EQ(-EINVAL, cio_pool_stats_get(p, NULL));
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

/* ---- contention ---------------------------------------------------------- */

typedef struct user {
    cio_pool *p;
    server *s;
    int id;
    int64_t hold;
    int *in_use, *peak;
    trace *order;
    int rc;
} user;

static int user_fn(void *arg)
{
    user *u = arg;
    void *c;
    u->rc = cio_pool_acquire(u->p, &c);
    if (u->rc < 0)
        return u->rc;
    if (u->order)
        trace_add(u->order, u->id);
    if (++*u->in_use > *u->peak)
        *u->peak = *u->in_use;
    int rc = cio_sleep(u->hold);
    --*u->in_use;
    cio_pool_release(u->p, c, false);
    return rc;
}

TEST(pool_bounds_100_tasks_to_5_connections_fifo)
{
    server s = {.open_time = CIO_MSEC};
    cio_pool_config cfg = config(&s, 0, 5);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    enum { N = 100 };
    static user u[N];
    int in_use = 0, peak = 0;
    trace order = {0};
    cio_group *g;
    ASSERT_EQ(0, cio_group_new(&g, 0));
    for (int i = 0; i < N; i++) {
        u[i] = (user){.p = p, .s = &s, .id = i, .hold = 10 * CIO_MSEC,
                      .in_use = &in_use, .peak = &peak, .order = &order};
        ASSERT_EQ(0, cio_group_spawn(g, NULL, user_fn, &u[i]));
    }
    ASSERT_EQ(0, cio_group_join(g));
    cio_group_free(g);
    ASSERT_EQ(5, peak);
    ASSERT_EQ(5, s.opened);
    ASSERT_EQ(N, order.n);
    /* Served in the order they asked. */
    for (int i = 0; i < N; i++)
        ASSERT_EQ(i, order.v[i]);
    cio_pool_stats st = stats(p);
    ASSERT_EQ(N, st.acquired);
    ASSERT_EQ(0, st.waiting);
    ASSERT_EQ(5, st.idle);
    ASSERT_EQ(0, cio_pool_close(p));
    ASSERT_EQ(0, s.live);
    return 0;
}

TEST(pool_acquire_honours_the_deadline)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 1);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *held, *c = NULL;
    ASSERT_EQ(0, cio_pool_acquire(p, &held));
    int64_t t0 = cio_now();
    cio_scope sc;
    ASSERT_EQ(0, cio_scope_enter(&sc, cio_deadline_after(50 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pool_acquire(p, &c));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(50 * CIO_MSEC, cio_now() - t0);
    ASSERT_TRUE(c == NULL);
    cio_pool_stats st = stats(p);
    ASSERT_EQ(0, st.waiting);
    ASSERT_EQ(1, st.abandoned);
    /* The abandoned wait is gone: the release makes the connection idle. */
    ASSERT_EQ(0, cio_pool_release(p, held, false));
    ASSERT_EQ(1, stats(p).idle);
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

/* A waiter handed a connection in the same turn it is cancelled passes
 * the connection to the next waiter instead of losing it. */
TEST(pool_cancelled_waiter_passes_the_connection_on)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 1);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *held;
    ASSERT_EQ(0, cio_pool_acquire(p, &held));
    int in_use = 0, peak = 0;
    trace order = {0};
    user a = {.p = p, .id = 1, .in_use = &in_use, .peak = &peak,
              .order = &order};
    user b = {.p = p, .id = 2, .in_use = &in_use, .peak = &peak,
              .order = &order};
    cio_task *ta, *tb;
    ASSERT_EQ(0, cio_spawn(&ta, user_fn, &a));
    ASSERT_EQ(0, cio_spawn(&tb, user_fn, &b));
    ASSERT_EQ(0, cio_wait_all_blocked());
    ASSERT_EQ(2, stats(p).waiting);
    /* Hand the connection to a, then cancel a before it runs. */
    ASSERT_EQ(0, cio_pool_release(p, held, false));
    ASSERT_EQ(0, cio_task_cancel(ta));
    ASSERT_EQ(-ECANCELED, cio_task_join(ta));
    ASSERT_EQ(0, cio_task_join(tb));
    ASSERT_TRACE(&order, 2);
    ASSERT_EQ(1, s.opened);
    cio_task_free(ta);
    cio_task_free(tb);
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

/* ---- broken connections, failures, checks -------------------------------- */

TEST(pool_discards_broken_connections)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 2);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *a, *b;
    ASSERT_EQ(0, cio_pool_acquire(p, &a));
    ASSERT_EQ(0, cio_pool_release(p, a, true));
    ASSERT_EQ(1, s.closed);
    ASSERT_EQ(0, cio_pool_acquire(p, &b));
    ASSERT_EQ(2, ((fake *)b)->id); /* a fresh one */
    cio_pool_stats st = stats(p);
    ASSERT_EQ(1, st.discarded);
    ASSERT_EQ(1, st.size);
    ASSERT_EQ(0, cio_pool_release(p, b, false));
    ASSERT_EQ(0, cio_pool_close(p));
    ASSERT_EQ(0, s.live);
    return 0;
}

TEST(pool_open_failure_reaches_the_caller_and_frees_the_slot)
{
    server s = {.fail_opens = 1};
    cio_pool_config cfg = config(&s, 0, 1);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *c;
    ASSERT_EQ(-ECONNREFUSED, cio_pool_acquire(p, &c));
    ASSERT_EQ(0, stats(p).size);
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ASSERT_EQ(0, cio_pool_release(p, c, false));
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

/* A slot freed by a broken release goes to the first waiter, which opens
 * its own connection in it. */
TEST(pool_waiter_gets_the_slot_of_a_broken_connection)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 1);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *held;
    ASSERT_EQ(0, cio_pool_acquire(p, &held));
    int in_use = 0, peak = 0;
    user w = {.p = p, .id = 1, .in_use = &in_use, .peak = &peak};
    cio_task *t;
    ASSERT_EQ(0, cio_spawn(&t, user_fn, &w));
    ASSERT_EQ(0, cio_wait_all_blocked());
    ASSERT_EQ(0, cio_pool_release(p, held, true));
    ASSERT_EQ(0, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(2, s.opened);
    ASSERT_EQ(1, stats(p).size);
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

TEST(pool_health_check_replaces_dead_idle_connections)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 2);
    cfg.check = fake_check;
    cfg.check_after = 100 * CIO_MSEC;
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *a;
    ASSERT_EQ(0, cio_pool_acquire(p, &a));
    ASSERT_EQ(0, cio_pool_release(p, a, false));
    /* Fresh enough: no check. */
    ASSERT_EQ(0, cio_pool_acquire(p, &a));
    ASSERT_EQ(0, s.checks);
    ((fake *)a)->healthy = false; /* the peer went away meanwhile */
    ASSERT_EQ(0, cio_pool_release(p, a, false));
    ASSERT_EQ(0, cio_sleep(200 * CIO_MSEC));
    void *b;
    ASSERT_EQ(0, cio_pool_acquire(p, &b));
    ASSERT_EQ(1, s.checks);
    ASSERT_EQ(2, ((fake *)b)->id);
    ASSERT_EQ(1, s.closed);
    ASSERT_EQ(1, stats(p).discarded);
    ASSERT_EQ(0, cio_pool_release(p, b, false));
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

TEST(pool_reset_runs_on_release_and_a_failing_reset_discards)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 1);
    cfg.reset = fake_reset;
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *c;
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ((fake *)c)->dirty = true;
    ASSERT_EQ(0, cio_pool_release(p, c, false));
    ASSERT_EQ(1, s.resets);
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ASSERT_TRUE(!((fake *)c)->dirty);
    s.reset_fails = true;
    ASSERT_EQ(0, cio_pool_release(p, c, false));
    ASSERT_EQ(1, s.closed);
    ASSERT_EQ(0, stats(p).size);
    /* Broken connections skip the reset. */
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ASSERT_EQ(0, cio_pool_release(p, c, true));
    ASSERT_EQ(2, s.resets);
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

/* A cancelled task still releases, and reset and close run to the end
 * (shielded) rather than being cut short. */
static int release_cancelled(void *arg)
{
    void **args = arg;
    cio_pool *p = args[0];
    void *c;
    int rc = cio_pool_acquire(p, &c);
    if (rc < 0)
        return rc;
    cio_sleep(CIO_SEC); /* cancelled here */
    return cio_pool_release(p, c, (bool)(uintptr_t)args[1]);
}

TEST(pool_release_from_a_cancelled_task_cleans_up)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 1);
    cfg.reset = fake_reset;
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    for (int broken = 0; broken <= 1; broken++) {
        void *args[2] = {p, (void *)(uintptr_t)broken};
        cio_task *t;
        ASSERT_EQ(0, cio_spawn(&t, release_cancelled, args));
        ASSERT_EQ(0, cio_wait_all_blocked());
        ASSERT_EQ(0, cio_task_cancel(t));
        ASSERT_EQ(0, cio_task_join(t));
        cio_task_free(t);
    }
    ASSERT_EQ(1, s.resets);
    ASSERT_EQ(1, s.closed);
    ASSERT_TRUE(!s.close_saw_cancel);
    ASSERT_EQ(0, stats(p).size);
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

/* ---- idle expiry, min_size, lifetime ------------------------------------- */

TEST(pool_closes_idle_connections_above_min_size)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 1, 4);
    cfg.idle_timeout = CIO_SEC;
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    ASSERT_EQ(0, cio_sleep(10 * CIO_MSEC));
    ASSERT_EQ(1, s.opened); /* min_size opened in the background */
    ASSERT_EQ(1, stats(p).idle);
    void *c[3];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_pool_acquire(p, &c[i]));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, cio_pool_release(p, c[i], false));
    ASSERT_EQ(3, stats(p).idle);
    ASSERT_EQ(0, cio_sleep(CIO_SEC / 2));
    ASSERT_EQ(3, stats(p).idle);
    ASSERT_EQ(0, cio_sleep(CIO_SEC));
    /* Expired, but min_size stays. */
    ASSERT_EQ(1, stats(p).idle);
    ASSERT_EQ(2, s.closed);
    ASSERT_EQ(0, cio_sleep(10 * CIO_SEC));
    ASSERT_EQ(1, stats(p).idle);
    ASSERT_EQ(0, cio_pool_close(p));
    ASSERT_EQ(0, s.live);
    return 0;
}

TEST(pool_refills_min_size_after_failures_with_backoff)
{
    server s = {.fail_opens = 3};
    cio_pool_config cfg = config(&s, 2, 4);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    ASSERT_EQ(0, cio_sleep(10 * CIO_MSEC));
    ASSERT_EQ(0, stats(p).idle);
    ASSERT_EQ(0, cio_sleep(2 * CIO_SEC));
    ASSERT_EQ(2, stats(p).idle);
    ASSERT_EQ(2, s.opened);
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

TEST(pool_retires_connections_past_max_lifetime)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 2);
    cfg.max_lifetime = 10 * CIO_SEC;
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *c;
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ASSERT_EQ(0, cio_sleep(11 * CIO_SEC));
    /* Too old when released: closed, not kept. */
    ASSERT_EQ(0, cio_pool_release(p, c, false));
    ASSERT_EQ(1, s.closed);
    ASSERT_EQ(0, cio_pool_acquire(p, &c));
    ASSERT_EQ(0, cio_pool_release(p, c, false));
    /* Idle past its lifetime: the maintenance task closes it. */
    ASSERT_EQ(0, cio_sleep(11 * CIO_SEC));
    ASSERT_EQ(2, s.closed);
    ASSERT_EQ(0, stats(p).size);
    ASSERT_EQ(0, cio_pool_close(p));
    return 0;
}

/* ---- close --------------------------------------------------------------- */

static int late_release(void *arg)
{
    void **args = arg;
    cio_sleep(CIO_SEC);
    return cio_pool_release(args[0], args[1], false);
}

TEST(pool_close_wakes_waiters_and_waits_for_borrowed)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 0, 1);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *held;
    ASSERT_EQ(0, cio_pool_acquire(p, &held));
    int in_use = 0, peak = 0;
    user w = {.p = p, .in_use = &in_use, .peak = &peak};
    cio_task *tw, *tr;
    ASSERT_EQ(0, cio_spawn(&tw, user_fn, &w));
    ASSERT_EQ(0, cio_wait_all_blocked());
    void *args[2] = {p, held};
    ASSERT_EQ(0, cio_spawn(&tr, late_release, args));
    int64_t t0 = cio_now();
    ASSERT_EQ(0, cio_pool_close(p));
    /* Waited for the release, then its 1 ms goodbye. */
    ASSERT_EQ(CIO_SEC + CIO_MSEC, cio_now() - t0);
    ASSERT_EQ(CIO_ECLOSING, cio_task_join(tw));
    ASSERT_EQ(0, cio_task_join(tr));
    ASSERT_EQ(1, s.closed);
    ASSERT_EQ(0, s.live);
    cio_task_free(tw);
    cio_task_free(tr);
    return 0;
}

TEST(pool_close_under_deadline_frees_with_the_last_release)
{
    server s = {0};
    cio_pool_config cfg = config(&s, 1, 2);
    cfg.idle_timeout = CIO_SEC;
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    void *held;
    ASSERT_EQ(0, cio_pool_acquire(p, &held));
    cio_scope sc;
    ASSERT_EQ(0, cio_scope_enter(&sc, cio_deadline_after(CIO_SEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pool_close(p));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(1, s.live);
    /* Closing refuses new work; the release closes and frees it all (the
     * test runner checks that nothing leaked). */
    void *c;
    ASSERT_EQ(CIO_ECLOSING, cio_pool_acquire(p, &c));
    ASSERT_EQ(0, cio_pool_release(p, held, false));
    ASSERT_EQ(0, s.live);
    return 0;
}

/* An open in progress when the pool closes ends with CIO_ECLOSING and its
 * connection closed. */
TEST(pool_close_during_open)
{
    server s = {.open_time = CIO_SEC};
    cio_pool_config cfg = config(&s, 0, 1);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    int in_use = 0, peak = 0;
    user u = {.p = p, .in_use = &in_use, .peak = &peak};
    cio_task *t;
    ASSERT_EQ(0, cio_spawn(&t, user_fn, &u));
    ASSERT_EQ(0, cio_wait_all_blocked());
    ASSERT_EQ(1, stats(p).opening);
    ASSERT_EQ(0, cio_pool_close(p));
    ASSERT_EQ(CIO_ECLOSING, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(1, s.opened);
    ASSERT_EQ(0, s.live);
    return 0;
}

/* Many borrowed connections released in a scrambled order: the borrowed
 * table finds each one. */
TEST(pool_tracks_many_borrowed_connections)
{
    server s = {0};
    enum { N = 1000 };
    cio_pool_config cfg = config(&s, 0, N);
    cio_pool *p;
    ASSERT_EQ(0, cio_pool_create(&p, &cfg));
    static void *c[N];
    for (int i = 0; i < N; i++)
        ASSERT_EQ(0, cio_pool_acquire(p, &c[i]));
    ASSERT_EQ(N, stats(p).in_use);
    for (int i = 0; i < N; i++) {
        int j = (int)(((unsigned)i * 7919u) % N);
        ASSERT_EQ(0, cio_pool_release(p, c[j], j % 3 == 0));
    }
    cio_pool_stats st = stats(p);
    ASSERT_EQ(0, st.in_use);
    ASSERT_EQ(N - (N + 2) / 3, st.idle);
    ASSERT_EQ(0, cio_pool_close(p));
    ASSERT_EQ(0, s.live);
    return 0;
}
