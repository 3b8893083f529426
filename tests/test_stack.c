/* Stacks: many tasks, per-task sizes, pooling, overflow detection. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio/xloop.h"
#include "internal.h"
#include "test.h"

static int nap(void *arg)
{
    (void)arg;
    return cio_sleep(CIO_SEC);
}

/* 100,000 tasks alive at once on a default kernel: more than the
 * ~32k that one mprotect'd guard page per stack would allow. */
static int many_tasks(size_t n, size_t stack)
{
#ifdef CIO__TSAN
    /* Each task is a ThreadSanitizer fiber, and TSan counts those with
     * its threads. */
    CIO_TEST_SKIP("ThreadSanitizer stops at 8128 threads and fibers");
#endif
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    cio_spawn_opts o = {.stack_size = stack};
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(cio_group_spawn_ex(g, NULL, nap, NULL, &o));
    cio_stats st;
    ASSERT_OK(cio_stats_get(&st));
    ASSERT_EQ(n + 1, st.tasks_alive);
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    ASSERT_TIME(CIO_SEC);
    return 0;
}

TEST_HEAVY(stack_100k_tasks_default_size)
{
    return many_tasks(100000, 0);
}

TEST_HEAVY(stack_1m_tasks_small_stacks)
{
    return many_tasks(1000000, CIO_STACK_MIN);
}

TEST(stack_pool_reuses_stacks)
{
    cio_task *t;
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(cio_spawn(&t, nap, NULL));
        ASSERT_OK(cio_task_join(t));
        cio_task_free(t);
    }
    cio_stats st;
    ASSERT_OK(cio_stats_get(&st));
    /* One slab serves the main task and every sequential child. */
    ASSERT_TRUE(st.stacks_mapped <= 64);
    ASSERT_TRUE(st.stacks_pooled > 0);
    return 0;
}

static int deep(int depth)
{
    volatile char buf[256];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)depth;
    if (depth > 0)
        return deep(depth - 1) + buf[0];
    return cio_yield();
}

static int use_stack(void *arg)
{
    int depth = *(int *)arg;
    int rc = deep(depth);
    return rc < 0 ? rc : 0;
}

TEST(stack_size_per_task)
{
    /* ~300 bytes a frame: 400 frames need ~120 KiB. */
    int depth = 400;
    cio_task *t;
    cio_spawn_opts big = {.name = "big", .stack_size = 256 * 1024};
    ASSERT_OK(cio_spawn_ex(&t, use_stack, &depth, &big));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    cio_spawn_opts tiny = {.stack_size = 1024};
    ASSERT_EQ(-EINVAL, cio_spawn_ex(&t, use_stack, &depth, &tiny));
    return 0;
}

static int overflow(void *arg)
{
    (void)arg;
    int depth = 1 << 20;
    return use_stack(&depth);
}

static int overflow_main(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn_opts o = {.name = "deep-recursion", .stack_size = 16384};
    int rc = cio_spawn_ex(&t, overflow, NULL, &o);
    if (rc == 0)
        cio_task_join(t);
    return 0;
}

/* Runs `fn` in a child process and returns its wait status. */
static int in_child(int (*fn)(void *), bool canary)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (canary)
            cio__stack_force_canary();
        cio__loop = NULL; /* the parent's loop is not ours */
        alarm(20);
        _exit(cio_run(fn, NULL) == 0 ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static bool died_of_overflow(int status)
{
    if (WIFSIGNALED(status))
        return WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS ||
               WTERMSIG(status) == SIGABRT;
    /* Sanitizer runtimes catch the fault themselves and exit non-zero. */
    return WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
           WEXITSTATUS(status) != 3;
}

TEST_REALTIME(stack_overflow_hits_guard_page)
{
    ASSERT_TRUE(died_of_overflow(in_child(overflow_main, false)));
    return 0;
}

/* Overflow by a little, then suspend: the canary check at the switch
 * catches it and aborts with a report. One frame bigger than the stack,
 * written from its low end up, overwrites the canary whatever the
 * compiler's frame layout. */
static int small_overflow(void *arg)
{
    (void)arg;
    volatile char big[16384 + 2048];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)i;
    return cio_yield() + big[0] - big[0];
}

static int small_overflow_main(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn_opts o = {.name = "tiny", .stack_size = 16384};
    int rc = cio_spawn_ex(&t, small_overflow, NULL, &o);
    if (rc == 0)
        cio_task_join(t);
    return 0;
}

TEST_REALTIME(stack_overflow_detected_by_canary)
{
    int status = in_child(small_overflow_main, true);
    ASSERT_TRUE(died_of_overflow(status));
    return 0;
}

/* Every stack of a pool without a canary has a page below it that
 * faults: the guards a new slab gets in one batch are real. A child
 * process probes the page under each of 100 stacks (several slabs). */
static sigjmp_buf probe_jmp;

static void probe_fault(int sig)
{
    (void)sig;
    siglongjmp(probe_jmp, 1);
}

/* 1 if reading `at` faults. */
static __attribute__((noinline)) int faults(volatile const char *at)
{
    if (sigsetjmp(probe_jmp, 1) != 0)
        return 1;
    (void)*at;
    return 0;
}

static int unguarded_stacks(void)
{
    cio__stack_pool *p;
    if (cio__stack_pool_init(&p) < 0)
        return 101;
    struct sigaction sa = {.sa_handler = probe_fault};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    int bad = 0;
    for (int i = 0; i < 100; i++) {
        cio__stack st;
        if (cio__stack_get(p, 64 * 1024, &st) < 0)
            return 100;
        if (!st.canary && !faults((const char *)st.lo - 1))
            bad++;
        /* The top page is the task's: it must be writable. */
        ((volatile char *)st.lo)[st.size - 1] = 1;
    }
    return bad;
}

TEST_NATIVE(stack_guard_pages_fault)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        _exit(unguarded_stacks());
    }
    int status = 0;
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    return 0;
}

/* ---- high-water mark ----------------------------------------------------- */

/* Touch `kib` KiB of stack below this frame, then measure. */
__attribute__((noinline)) static long touch_stack(int kib)
{
    volatile char buf[kib * 1024];
    for (int i = 0; i < kib * 1024; i += 512)
        buf[i] = (char)i;
    return cio_task_stack_used(NULL) + buf[0] * 0;
}

static int shallow(void *arg)
{
    *(long *)arg = cio_task_stack_used(NULL);
    return 0;
}

static int deep40(void *arg)
{
    *(long *)arg = touch_stack(40);
    return 0;
}

TEST(stack_used_measures_the_deepest_point)
{
    long small = -1, deep = -1;
    cio_task *a, *b;
    cio_spawn_opts o = {.stack_size = 64 * 1024};
    ASSERT_EQ(0, cio_spawn_ex(&a, shallow, &small, &o));
    ASSERT_EQ(0, cio_spawn_ex(&b, deep40, &deep, &o));
    ASSERT_EQ(0, cio_task_join(a));
    ASSERT_EQ(0, cio_task_join(b));
    ASSERT_TRUE(small > 0 && small <= 16 * 1024);
    ASSERT_TRUE(deep >= 40 * 1024 && deep <= 64 * 1024);
    /* A finished task's stack is gone. */
    ASSERT_EQ(-EINVAL, cio_task_stack_used(a));
    cio_task_free(a);
    cio_task_free(b);
    ASSERT_TRUE(cio_task_stack_used(NULL) > 0); /* main's own */
    return 0;
}

/* ---- preparing slabs ahead ------------------------------------------------ */

/* True if the byte at `p` cannot be read: the kernel, copying from it,
 * reports EFAULT (no signal involved). */
static bool unreadable(const void *p)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    bool fault = write(fds[1], p, 1) < 0 && errno == EFAULT;
    close(fds[0]);
    close(fds[1]);
    return fault;
}

static int by_address(const void *a, const void *b)
{
    const cio__stack *x = a, *y = b;
    return (uintptr_t)x->lo < (uintptr_t)y->lo ? -1 : x->lo != y->lo;
}

/* Stacks do not overlap; each has a guard page below it or a canary, and
 * its top and bottom bytes are writable. */
static int check_stacks(cio__stack *st, size_t n)
{
    qsort(st, n, sizeof *st, by_address);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ASSERT_TRUE((char *)st[i - 1].lo + st[i - 1].size <
                        (char *)st[i].lo);
        if (st[i].canary)
            ASSERT_TRUE(cio__stack_canary_ok(&st[i]));
        else
            ASSERT_TRUE(unreadable((const char *)st[i].lo - 1));
        ((volatile char *)st[i].lo)[st[i].size - 1] = 1;
        if (!st[i].canary)
            ((volatile char *)st[i].lo)[0] = 1;
    }
    return 0;
}

enum { HELPER_STACKS = 240 }; /* 8 slabs of 64 KiB stacks */

TEST_NATIVE(stack_helper_prepares_slabs_ahead)
{
    cio__stack_helper_mode(1);
    long live = cio__alloc_live();
    cio__stack_pool *p;
    ASSERT_OK(cio__stack_pool_init(&p));
    static cio__stack st[HELPER_STACKS];
    size_t n = 0;
    /* Three slabs' worth: the pool asks the helper for more. */
    while (n < 90)
        ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[n++]));
    cio__stack_pool_settle(p);
    /* The class runs dry within a slab and takes the prepared ones. */
    uint64_t before = cio__stack_prepared(p);
    size_t limit = n + 31;
    while (cio__stack_prepared(p) == before && n < limit)
        ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[n++]));
    ASSERT_TRUE(cio__stack_prepared(p) > before);
    while (n < HELPER_STACKS)
        ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[n++]));
    ASSERT_EQ(0, check_stacks(st, n));
    ASSERT_TRUE(cio__stack_mapped(p) >= n);
    for (size_t i = 0; i < n; i++)
        cio__stack_put(p, &st[i]);
    ASSERT_EQ(cio__stack_mapped(p), cio__stack_pooled(p));
    cio__stack_pool_fini(p);
    ASSERT_EQ(live, cio__alloc_live());
    return 0;
}

/* A pool closed while the helper prepares its slabs waits for it, and
 * frees what was asked and what is ready. */
TEST_NATIVE(stack_pool_closes_while_helper_prepares)
{
    cio__stack_helper_mode(1);
    long live = cio__alloc_live();
    static cio__stack st[100];
    for (int round = 0; round < 20; round++) {
        cio__stack_pool *p;
        ASSERT_OK(cio__stack_pool_init(&p));
        for (int i = 0; i < 100; i++)
            ASSERT_OK(cio__stack_get(p, CIO_STACK_MIN, &st[i]));
        for (int i = 0; i < 100; i++)
            cio__stack_put(p, &st[i]);
        cio__stack_pool_fini(p);
    }
    ASSERT_EQ(live, cio__alloc_live());
    return 0;
}

TEST_NATIVE(stack_helper_off_prepares_nothing)
{
    cio__stack_helper_mode(-1);
    cio__stack_pool *p;
    ASSERT_OK(cio__stack_pool_init(&p));
    static cio__stack st[HELPER_STACKS];
    for (size_t i = 0; i < HELPER_STACKS; i++)
        ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[i]));
    ASSERT_EQ(0, cio__stack_prepared(p));
    ASSERT_EQ(0, check_stacks(st, HELPER_STACKS));
    for (size_t i = 0; i < HELPER_STACKS; i++)
        cio__stack_put(p, &st[i]);
    cio__stack_pool_fini(p);
    return 0;
}

static int sum_to(void *arg)
{
    int rc = cio_sleep((int64_t)(uintptr_t)arg * CIO_MSEC);
    return rc < 0 ? rc : (int)(uintptr_t)arg;
}

/* Tasks on stacks the helper prepared run like any other. */
TEST(stack_helper_stacks_run_tasks)
{
    cio__stack_helper_mode(1);
    enum { N = 3000 };
    static cio_task *t[N];
    for (int i = 0; i < N; i++) {
        ASSERT_OK(cio_spawn(&t[i], sum_to, (void *)(uintptr_t)(i % 100)));
        if (i == 100) /* the pool has asked: let the helper deliver */
            cio__stack_pool_settle(cio__loop->stacks);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(i % 100, cio_task_join(t[i]));
        cio_task_free(t[i]);
    }
    ASSERT_TRUE(cio__stack_prepared(cio__loop->stacks) > 0);
    return 0;
}

/* Three loops on three threads burst at once: the one helper serves
 * their pools in turn, and each loop's tasks run on stacks it prepared. */
/* Spawn `n` sleepers in a group, letting the helper deliver once the
 * pool has asked (had it asked); join them. The stacks the helper
 * prepared for this loop, or a negative error. */
static long long burst(int n)
{
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = cio_group_spawn(g, NULL, sum_to, (void *)(uintptr_t)(i % 3));
        if (i == 100)
            cio__stack_pool_settle(cio__loop->stacks);
    }
    int jrc = cio_group_join(g);
    cio_group_free(g);
    if (rc < 0 || jrc < 0)
        return rc < 0 ? rc : jrc;
    return (long long)cio__stack_prepared(cio__loop->stacks);
}

/* A burst whose stacks the helper (partly) prepared: 0, else < 0. */
static int burst_on_loop(void *arg)
{
    (void)arg;
    long long prepared = burst(2000);
    return prepared < 0 ? (int)prepared : prepared > 0 ? 0 : -EPROTO;
}

static int run_three(void *arg)
{
    int *results = arg;
    cio_multi_config cfg;
    cio_multi_config_init(&cfg);
    cfg.loops = 3;
    cfg.loop.handle_signals = 0;
    cfg.results = results;
    return cio_run_multi(&cfg, burst_on_loop, NULL);
}

TEST_REALTIME(stack_helper_serves_several_loops)
{
    cio__stack_helper_mode(1);
    int results[3] = {-1, -1, -1};
    ASSERT_OK(cio_to_thread(run_three, results));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(0, results[i]);
    return 0;
}

/* A fork while the helper runs leaves the child a free lock and no
 * helper: the child's loops start their own. */
TEST_NATIVE(stack_helper_after_fork)
{
    cio__stack_helper_mode(1);
    /* Make the helper busy in this process first. */
    static cio_task *t[300];
    for (int i = 0; i < 300; i++)
        ASSERT_OK(cio_spawn(&t[i], sum_to, NULL));
    for (int rounds = 0; rounds < 5; rounds++) {
        pid_t pid = fork();
        if (pid == 0) {
            cio__loop = NULL; /* the parent's loop is not ours */
            alarm(20);
            _exit(cio_run(burst_on_loop, NULL) == 0 ? 0 : 3);
        }
        int status = 0;
        ASSERT_EQ(pid, waitpid(pid, &status, 0));
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(0, WEXITSTATUS(status));
    }
    for (int i = 0; i < 300; i++) {
        ASSERT_EQ(0, cio_task_join(t[i]));
        cio_task_free(t[i]);
    }
    return 0;
}

static int touch_deep(void *arg)
{
    long used = touch_stack(200); /* 200 KiB down */
    *(long *)arg = used;
    return cio_sleep(CIO_MSEC);
}

/* Stacks bigger than a slab get a mapping each; a burst of them goes
 * through the helper like small ones. */
TEST(stack_helper_prepares_big_stacks)
{
    cio__stack_helper_mode(1);
    enum { N = 60 };
    static cio_task *t[N];
    static long used[N];
    cio_spawn_opts o = {.stack_size = 16 << 20};
    for (int i = 0; i < N; i++) {
        ASSERT_OK(cio_spawn_ex(&t[i], touch_deep, &used[i], &o));
        if (i == 10)
            cio__stack_pool_settle(cio__loop->stacks);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(0, cio_task_join(t[i]));
        cio_task_free(t[i]);
        ASSERT_TRUE(used[i] >= 200 * 1024 && used[i] < 16 << 20);
    }
    ASSERT_TRUE(cio__stack_prepared(cio__loop->stacks) > 0);
    return 0;
}

/* A loop whose thread may run on one CPU only prepares its own slabs:
 * a helper there would only take turns with it. */
typedef struct pinned_run {
    int rc;
    long long prepared;
} pinned_run;

static int burst_and_count(void *arg)
{
    pinned_run *r = arg;
    r->prepared = burst(300);
    return r->prepared < 0 ? (int)r->prepared : 0;
}

static void *pinned_thread(void *arg)
{
    pinned_run *r = arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    sched_getaffinity(0, sizeof one, &one);
    int cpu = 0;
    while (!CPU_ISSET(cpu, &one))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    r->rc = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    if (r->rc == 0)
        r->rc = cio_run(burst_and_count, r);
    return NULL;
}

TEST_NATIVE(stack_helper_not_used_by_a_pinned_loop)
{
    cio__stack_helper_mode(0);
    pinned_run r = {.rc = -1};
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, pinned_thread, &r));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(0, r.rc);
    ASSERT_EQ(0, r.prepared);
    return 0;
}
