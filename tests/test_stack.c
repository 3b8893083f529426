/* Stacks: many tasks, per-task sizes, pooling, overflow detection. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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

/* ---- populating in the background ---------------------------------------- */

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

enum { HELPER_STACKS = 240 }; /* 8 slabs of 30 64 KiB stacks */

/* True if the page holding `p` is resident. */
static bool resident(const void *p)
{
    size_t pg = cio__page_size();
    unsigned char v = 0;
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)(pg - 1));
    return mincore(page, pg, &v) == 0 && (v & 1);
}

static const char *top_of(const cio__stack *s)
{
    return (const char *)s->lo + s->size - 1;
}

/* Whether pages can be made resident here the way the pool does it: one
 * process_madvise(MADV_POPULATE_WRITE) on this process. Not before Linux
 * 6.15, nor under qemu-user, which does not pass the call on; the pool
 * then leaves the pages to the tasks' first touches. */
static bool can_populate(void)
{
#ifdef SYS_process_madvise
    size_t pg = cio__page_size();
    char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    struct iovec iov = {p, pg};
    bool ok = syscall(SYS_process_madvise, -10000 /* PIDFD_SELF */, &iov, 1,
                      23 /* MADV_POPULATE_WRITE */, 0) == (long)pg &&
              resident(p);
    munmap(p, pg);
    return ok;
#else
    return false;
#endif
}

/* The first two slabs of a class are populated as they are mapped; the
 * rest, a burst, by the helper while their stacks are already out. */
TEST_NATIVE(stack_helper_populates_burst_slabs)
{
    if (!can_populate())
        CIO_TEST_SKIP("no process_madvise(MADV_POPULATE_WRITE) here");
    cio__stack_helper_mode(1);
    long live = cio__alloc_live();
    cio__stack_pool *p;
    ASSERT_OK(cio__stack_pool_init(&p));
    static cio__stack st[HELPER_STACKS];
    for (size_t i = 0; i < HELPER_STACKS; i++) {
        ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[i]));
        if (i < 60) {
            ASSERT_TRUE(st[i].burst == NULL);
            ASSERT_TRUE(resident(top_of(&st[i])));
        }
    }
    cio__stack_pool_settle(p);
    ASSERT_EQ(HELPER_STACKS, cio__stack_mapped(p));
    ASSERT_EQ(HELPER_STACKS - 60, cio__stack_populated(p));
    for (size_t i = 0; i < HELPER_STACKS; i++)
        ASSERT_TRUE(resident(top_of(&st[i])));
    ASSERT_EQ(0, check_stacks(st, HELPER_STACKS));
    for (size_t i = 0; i < HELPER_STACKS; i++)
        cio__stack_put(p, &st[i]);
    ASSERT_EQ(cio__stack_mapped(p), cio__stack_pooled(p));
    cio__stack_pool_fini(p);
    ASSERT_EQ(live, cio__alloc_live());
    return 0;
}

/* The first run on a slab the helper has not claimed populates the rest
 * of that slab; a second one on the same slab does nothing more. */
TEST_NATIVE(stack_first_run_claims_its_slab)
{
    if (!can_populate())
        CIO_TEST_SKIP("no process_madvise(MADV_POPULATE_WRITE) here");
    cio__stack_helper_mode(2); /* slabs are queued, never populated */
    long live = cio__alloc_live();
    cio__stack_pool *p;
    ASSERT_OK(cio__stack_pool_init(&p));
    static cio__stack st[150]; /* 5 slabs, the last 3 a burst */
    for (size_t i = 0; i < 150; i++)
        ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[i]));
    for (size_t i = 60; i < 150; i++) {
        ASSERT_TRUE(st[i].burst != NULL);
        ASSERT_TRUE(!resident(top_of(&st[i])));
    }
    cio__stack_first_use(&st[65]);
    ASSERT_TRUE(st[65].burst == NULL);
    for (size_t i = 60; i < 90; i++)
        ASSERT_EQ(i >= 65, resident(top_of(&st[i])));
    cio__stack_first_use(&st[61]); /* claimed already: nothing to do */
    ASSERT_TRUE(st[61].burst == NULL);
    ASSERT_TRUE(!resident(top_of(&st[61])));
    cio__stack_first_use(&st[120]); /* the fifth slab, queued last */
    ASSERT_EQ(0, cio__stack_populated(p));
    /* The helper, let work, skips the two claimed slabs. */
    cio__stack_helper_mode(1);
    cio__stack_pool_settle(p);
    ASSERT_EQ(30, cio__stack_populated(p));
    ASSERT_TRUE(!resident(top_of(&st[60])));
    for (size_t i = 90; i < 150; i++)
        ASSERT_TRUE(resident(top_of(&st[i])));
    /* A stack back in the pool is no longer a burst's. */
    cio__stack_put(p, &st[149]);
    ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[149]));
    ASSERT_TRUE(st[149].burst == NULL);
    ASSERT_EQ(0, check_stacks(st, 150));
    for (size_t i = 0; i < 150; i++)
        cio__stack_put(p, &st[i]);
    cio__stack_pool_fini(p);
    ASSERT_EQ(live, cio__alloc_live());
    return 0;
}

/* A pool closed while the helper populates its slabs waits for it, and
 * takes back what it queued. */
TEST_NATIVE(stack_pool_closes_while_helper_populates)
{
    cio__stack_helper_mode(1);
    long live = cio__alloc_live();
    static cio__stack st[150];
    for (int round = 0; round < 20; round++) {
        cio__stack_pool *p;
        ASSERT_OK(cio__stack_pool_init(&p));
        for (int i = 0; i < 150; i++)
            ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[i]));
        for (int i = 0; i < 150; i++)
            cio__stack_put(p, &st[i]);
        cio__stack_pool_fini(p);
    }
    ASSERT_EQ(live, cio__alloc_live());
    return 0;
}

TEST_NATIVE(stack_helper_off_populates_nothing)
{
    cio__stack_helper_mode(-1);
    cio__stack_pool *p;
    ASSERT_OK(cio__stack_pool_init(&p));
    static cio__stack st[HELPER_STACKS];
    for (size_t i = 0; i < HELPER_STACKS; i++)
        ASSERT_OK(cio__stack_get(p, CIO_STACK_DEFAULT, &st[i]));
    ASSERT_EQ(0, cio__stack_populated(p));
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

/* Tasks on stacks the helper populated run like any other, and so do
 * tasks whose first run got to their slab before the helper. */
TEST(stack_helper_stacks_run_tasks)
{
    cio__stack_helper_mode(1);
    enum { N = 3000 };
    static cio_task *t[2 * N];
    for (int i = 0; i < N; i++) {
        ASSERT_OK(cio_spawn(&t[i], sum_to, (void *)(uintptr_t)(i % 100)));
        if (i == 100) /* the pool has asked: let the helper catch up */
            cio__stack_pool_settle(cio__loop->stacks);
    }
    cio__stack_pool_settle(cio__loop->stacks);
    uint64_t populated = cio__stack_populated(cio__loop->stacks);
    ASSERT_TRUE(populated > 0);
    /* Now the first runs claim every slab of the burst. */
    cio__stack_helper_mode(2);
    for (int i = N; i < 2 * N; i++)
        ASSERT_OK(cio_spawn(&t[i], sum_to, (void *)(uintptr_t)(i % 100)));
    for (int i = 0; i < 2 * N; i++) {
        ASSERT_EQ(i % 100, cio_task_join(t[i]));
        cio_task_free(t[i]);
    }
    ASSERT_EQ(populated, cio__stack_populated(cio__loop->stacks));
    cio__stack_helper_mode(1);
    return 0;
}

/* Three loops on three threads burst at once: the one helper serves
 * their pools in turn, and each loop's tasks run on stacks it populated. */
/* Spawn `n` sleepers in a group, letting the helper deliver once the
 * pool has asked (had it asked); join them. The stacks the helper
 * populated for this loop, or a negative error. */
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
    return (long long)cio__stack_populated(cio__loop->stacks);
}

/* A burst whose stacks the helper (partly) populated: 0, else < 0. */
static int burst_on_loop(void *arg)
{
    (void)arg;
    long long populated = burst(2000);
    return populated < 0 ? (int)populated : populated > 0 ? 0 : -EPROTO;
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
TEST(stack_helper_populates_big_stacks)
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
    ASSERT_TRUE(cio__stack_populated(cio__loop->stacks) > 0);
    return 0;
}

/* A loop whose thread may run on one CPU only populates its own slabs:
 * a helper there would only take turns with it. */
typedef struct pinned_run {
    int rc;
    long long populated;
} pinned_run;

static int burst_and_count(void *arg)
{
    pinned_run *r = arg;
    r->populated = burst(300);
    return r->populated < 0 ? (int)r->populated : 0;
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
    ASSERT_EQ(0, r.populated);
    return 0;
}
