/* Task stacks: mmap'd in slabs, recycled through per-size free lists.
 *
 * Overflow protection. A guard page below each stack is the real defence,
 * but an mprotect'd guard splits the mapping, and the kernel caps mappings
 * per process (vm.max_map_count, 65530 by default): two per guarded stack
 * stops a process near 32k tasks. Linux 6.13 added MADV_GUARD_INSTALL,
 * which installs guard pages inside a mapping without splitting it, so
 * every stack gets one at no mapping cost. On older kernels stacks are
 * guarded with mprotect while the mapping budget (half of max_map_count,
 * shared by the process) lasts, and past it a canary word at the bottom of
 * the stack is checked at every switch out of the task.
 *
 * Costs measured on the build VM: mmap + guard + munmap of a 64 KiB stack
 * ~8.5 us; taking a pooled stack is a pointer pop (a few ns), so spawn
 * never maps in steady state. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#ifdef CIO_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif
#ifdef CIO__ASAN
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000)
#endif

#define CANARY CIO__STACK_CANARY
#define SLAB_BYTES ((size_t)2 << 20)
#define MAX_CLASSES 8

/* A free stack keeps its bookkeeping at its own top. */
typedef struct free_stack {
    struct free_stack *next;
    cio__stack s;
} free_stack;

/* The most stacks a slab holds: the smallest stack on the smallest page. */
#define SLAB_MAX_STACKS (SLAB_BYTES / (CIO_STACK_MIN + 4096))

typedef struct slab {
    struct slab *next;       /* the pool's slabs */
    struct slab *fresh_next; /* the class's slabs with stacks never used */
    struct slab *asked_next; /* the pool's slabs for the helper (helper.mu) */
    void *base;
    size_t len;
    size_t size;      /* usable bytes of each stack */
    size_t n;         /* stacks */
    long mprotected;  /* stacks guarded by mprotect (mapping budget) */
    bool behind;      /* queued for the helper to populate */
    /* Someone (the helper, or the loop before a first run) has started
     * making the top pages resident. */
    atomic_bool claimed;
    /* Stacks that got a canary word instead of a guard page. */
    uint64_t canary[(SLAB_MAX_STACKS + 63) / 64];
} slab;

typedef struct size_class {
    size_t size; /* usable bytes, page multiple */
    free_stack *free;
    /* Slabs whose stacks are handed out in address order, straight from
     * the slab: the first `fresh_i` stacks of the first are taken. */
    slab *fresh, *fresh_tail;
    size_t fresh_i;
    unsigned slabs; /* slabs added to this class */
} size_class;

struct cio__stack_pool {
    /* The class of the last size asked for, before rounding: most tasks
     * use the default size, so this skips the rounding and the search. */
    size_t hot_size;
    size_class *hot;
    size_class classes[MAX_CLASSES];
    int nclasses;
    slab *slabs;
    uint64_t mapped;
    size_t pooled;
    bool helped; /* has asked the helper */
    int cpus;    /* CPUs the loop's thread may run on; 0 unknown */
    /* Under helper.mu: */
    slab *asked, *asked_tail; /* slabs to populate, oldest first */
    uint64_t populated; /* stacks the helper populated */
    bool queued;       /* on the helper's queue */
    struct cio__stack_pool *qnext;
};

enum { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT };
static atomic_int guard_mode;
static atomic_long mprotect_budget = -1;

size_t cio__page_size(void)
{
    static size_t page;
    if (page == 0)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

/* True if the page at `p` cannot be read: the kernel, copying from it,
 * reports EFAULT. An emulator (qemu-user) may accept MADV_GUARD_INSTALL
 * and do nothing; then stacks fall back to mprotect guards. */
static bool guards_page(const void *p)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return false;
    bool faulted = write(fds[1], p, 1) < 0 && errno == EFAULT;
    close(fds[0]);
    close(fds[1]);
    return faulted;
}

static int probe_guard_mode(void)
{
    int mode = atomic_load(&guard_mode);
    if (mode != GUARD_UNKNOWN)
        return mode;
    /* CIO_STACK_GUARD=mprotect|canary forces the fallbacks (for tests). */
    const char *force = getenv("CIO_STACK_GUARD");
    size_t pg = cio__page_size();
    void *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    mode = GUARD_MPROTECT;
    if (p != MAP_FAILED && force == NULL) {
        if (madvise(p, pg, MADV_GUARD_INSTALL) == 0 && guards_page(p))
            mode = GUARD_MADVISE;
        munmap(p, 2 * pg);
    }
    if (mode == GUARD_MPROTECT) {
        long max = 65530;
        FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
        if (f) {
            if (fscanf(f, "%ld", &max) != 1)
                max = 65530;
            fclose(f);
        }
        /* Leave room for the mappings of the rest of the program. */
        long budget = max > 16384 ? (max - 8192) / 2 : 0;
        if (force && strcmp(force, "canary") == 0)
            budget = 0;
        atomic_store(&mprotect_budget, budget);
    }
    atomic_store(&guard_mode, mode);
    return mode;
}

/* Protect the page below a stack; false means it got a canary instead. */
static bool guard(void *page, long *mprotected)
{
    size_t pg = cio__page_size();
    if (probe_guard_mode() == GUARD_MADVISE)
        return madvise(page, pg, MADV_GUARD_INSTALL) == 0;
    if (atomic_fetch_sub(&mprotect_budget, 1) <= 0) {
        atomic_fetch_add(&mprotect_budget, 1);
        return false;
    }
    if (mprotect(page, pg, PROT_NONE) == 0) {
        (*mprotected)++;
        return true;
    }
    atomic_fetch_add(&mprotect_budget, 1);
    return false;
}

void cio__stack_force_canary(void)
{
    probe_guard_mode();
    atomic_store(&guard_mode, GUARD_MPROTECT);
    atomic_store(&mprotect_budget, 0);
}

int cio__stack_pool_init(cio__stack_pool **out)
{
    cio__stack_pool *p = cio__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    probe_guard_mode();
    *out = p;
    return 0;
}

static size_class *find_class(cio__stack_pool *p, size_t size)
{
    for (int c = 0; c < p->nclasses; c++)
        if (p->classes[c].size == size)
            return &p->classes[c];
    if (p->nclasses == MAX_CLASSES)
        return NULL;
    size_class *sc = &p->classes[p->nclasses++];
    sc->size = size;
    return sc;
}

static void push_free(size_class *sc, const cio__stack *s)
{
    free_stack *f = (free_stack *)((char *)s->lo + s->size - sizeof *f);
    f->s = *s;
    f->s.burst = NULL;
    f->next = sc->free;
    sc->free = f;
}

/* One process_madvise(2) call on this process for `n` one-page ranges;
 * false if the kernel does not take it (before 6.15: no PIDFD_SELF, or
 * that advice refused), and the caller advises range by range. */
static bool madvise_pages(struct iovec *iov, size_t n, int advice)
{
#ifdef SYS_process_madvise
    static atomic_bool unsupported;
    if (n == 0 || atomic_load_explicit(&unsupported, memory_order_relaxed))
        return false;
#ifdef CIO_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND) { /* it does not know the call and says so */
        atomic_store_explicit(&unsupported, true, memory_order_relaxed);
        return false;
    }
#endif
    long done = syscall(SYS_process_madvise, PIDFD_SELF, iov, n, advice, 0);
    if (done == (long)(n * cio__page_size()))
        return true;
    if (done < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS ||
                     errno == EPERM))
        atomic_store_explicit(&unsupported, true, memory_order_relaxed);
#else
    (void)iov;
    (void)n;
    (void)advice;
#endif
    return false;
}

/* Make the top page of each of the `n` stacks at `base` resident (every
 * task touches it first: its first frames), a system call for `batch`
 * stacks (at most SLAB_BATCH) where the kernel allows. Populating costs the kernel less than the page
 * faults it saves: 1.35 against 2.2 us a page on the build VM, where
 * 100,000 tasks' first pages are most of the cost of starting them. */
#define SLAB_BATCH 64
static void populate_tops(char *base, size_t n, size_t each, size_t batch)
{
    size_t pg = cio__page_size();
    struct iovec iov[SLAB_BATCH];
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        for (size_t j = 0; j < k; j++)
            iov[j] = (struct iovec){base + (i + j + 1) * each - pg, pg};
        if (!madvise_pages(iov, k, MADV_POPULATE_WRITE))
            return;
    }
}

/* Install the guard page below each of the `n` stacks at `base` in the
 * mapping itself, a system call for 64 stacks where the kernel allows.
 * Returns how many leading stacks are guarded. */
static size_t install_guards(char *base, size_t n, size_t each)
{
    size_t pg = cio__page_size();
    struct iovec iov[SLAB_BATCH];
    if (probe_guard_mode() != GUARD_MADVISE)
        return 0;
    for (size_t i = 0; i < n; i += SLAB_BATCH) {
        size_t k = n - i < SLAB_BATCH ? n - i : SLAB_BATCH;
        for (size_t j = 0; j < k; j++)
            iov[j] = (struct iovec){base + (i + j) * each, pg};
        if (!madvise_pages(iov, k, MADV_GUARD_INSTALL))
            return i;
    }
    return n;
}

/* Address space for slabs is mapped in reservations, RESERVE_MIN first,
 * each twice the one before up to RESERVE_MAX, and handed out by bumping
 * a pointer. A mapping takes the process's memory map lock for writing,
 * so it waits for every other thread's page populating to finish and
 * holds off the next: with a slab per mapping, the helper and the loop
 * would mostly take turns. Slabs are unmapped one by one. */
#define RESERVE_MIN ((size_t)64 << 20)
#define RESERVE_MAX ((size_t)512 << 20)

static struct {
    pthread_mutex_t mu;
    char *next, *end;
    size_t grow; /* the size of the next reservation; 0: RESERVE_MIN */
} reserve = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void atfork_once(void);

static void *map_space(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* A task uses a page or two of its stack: where transparent huge
     * pages are on for every mapping, 2 MiB aligned ranges would otherwise
     * be backed by huge pages at the first touch. */
    madvise(p, len, MADV_NOHUGEPAGE);
    return p;
}

static void *reserve_slab(size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, atfork_once);
    /* A slab of one big stack gets a mapping of its own. */
    if (len > RESERVE_MIN / 8)
        return map_space(len);
    pthread_mutex_lock(&reserve.mu);
    if ((size_t)(reserve.end - reserve.next) < len) {
        size_t size = reserve.grow ? reserve.grow : RESERVE_MIN;
        void *p = map_space(size);
        if (p == NULL) {
            pthread_mutex_unlock(&reserve.mu);
            return NULL;
        }
        if (reserve.end != reserve.next)
            munmap(reserve.next, (size_t)(reserve.end - reserve.next));
        reserve.next = p;
        reserve.end = (char *)p + size;
        reserve.grow = size < RESERVE_MAX ? size * 2 : size;
    }
    void *p = reserve.next;
    reserve.next += len;
    pthread_mutex_unlock(&reserve.mu);
    return p;
}

/* Map the stacks of `s` (its `size` set) and guard them (guard pages or
 * canary marks); with `populate`, make their top pages resident too. On
 * failure `s->base` stays NULL. */
static void fill_slab(slab *s, bool populate)
{
    size_t pg = cio__page_size();
    size_t each = s->size + pg;
    size_t n = SLAB_BYTES / each;
    if (n == 0)
        n = 1;
    void *base = reserve_slab(n * each);
    if (base == NULL)
        return;
    s->base = base;
    s->len = n * each;
    s->n = n;
    s->mprotected = 0;
    memset(s->canary, 0, sizeof s->canary);
    if (populate)
        populate_tops(base, n, each, SLAB_BATCH);
    for (size_t i = install_guards(base, n, each); i < n; i++)
        if (!guard((char *)base + i * each, &s->mprotected))
            s->canary[i / 64] |= UINT64_C(1) << (i % 64);
}

/* Pool the stacks of a filled slab. Nothing is written to them: each is
 * handed out from the slab itself (take_fresh), so taking one costs no
 * cache miss on its page, and its task's first frame is the first touch. */
static void add_slab(cio__stack_pool *p, size_class *sc, slab *s)
{
    s->next = p->slabs;
    p->slabs = s;
    s->fresh_next = NULL;
    if (sc->fresh_tail)
        sc->fresh_tail->fresh_next = s;
    else
        sc->fresh = s;
    sc->fresh_tail = s;
    sc->slabs++;
    p->mapped += s->n;
    p->pooled += s->n;
}

/* The next never-used stack of the class (it has one). */
static void take_fresh(cio__stack_pool *p, size_class *sc, cio__stack *out)
{
    slab *s = sc->fresh;
    size_t i = sc->fresh_i, pg = cio__page_size();
    char *g = (char *)s->base + i * (s->size + pg);
    *out = (cio__stack){.lo = g + pg, .size = s->size};
    out->canary = (s->canary[i / 64] >> (i % 64)) & 1;
    out->burst = s->behind && !atomic_load_explicit(&s->claimed,
                                                    memory_order_relaxed)
                     ? s
                     : NULL;
    if (out->canary)
        *(uint64_t *)out->lo = CANARY;
#ifdef CIO_HAVE_VALGRIND
    out->vg_id = VALGRIND_STACK_REGISTER(out->lo, (char *)out->lo + s->size);
#endif
    if (++sc->fresh_i == s->n) {
        sc->fresh = s->fresh_next;
        if (sc->fresh == NULL)
            sc->fresh_tail = NULL;
        sc->fresh_i = 0;
    }
    p->pooled--;
}

static void drop_slab(slab *s)
{
    if (s->base) {
        atomic_fetch_add(&mprotect_budget, s->mprotected);
        munmap(s->base, s->len);
    }
    cio__free(s);
}

/* ---- populating in the background ----------------------------------------
 *
 * A burst of spawns drains a pool faster than the kernel hands out pages:
 * making a slab's top pages resident (30 stacks of 64 KiB) costs ~40 us of
 * kernel time on the build VM, spawning its 30 tasks ~1.5 us, guarding
 * them ~7 us. Once a class has had BURST_AFTER slabs, the loop maps and
 * guards each new slab and hands its stacks out at once, and queues the
 * slab for a helper thread, which makes the top pages resident, oldest
 * slab first. The first run of a task on a slab nobody has claimed yet
 * claims it and populates the rest of it in one call (its tasks start in
 * address order); the helper skips a claimed slab. So while the loop
 * spawns, and then runs the burst's first tasks, the kernel fills pages
 * on a second CPU, and whichever thread gets to a slab first fills it.
 *
 * The helper touches no pool: it reads the address and shape of a slab
 * the pool queued (both fixed for the slab's life) under one process-wide
 * mutex, which the loop takes once a slab, and the claim is an atomic
 * flag in the slab. It is one thread for the process, started when first
 * asked, and it ends after HELPER_IDLE_SEC without work. A pool closing
 * takes back what it queued and waits while the helper works on one of
 * its slabs, before it unmaps them. A loop whose thread may run on one
 * CPU only does not use it: the helper would only take turns with the
 * loop. */
#define BURST_AFTER 2
#define HELPER_IDLE_SEC 2
/* Pages the helper populates a system call: the call holds the memory
 * map lock for reading, and the loop's next mmap or brk (malloc growing
 * the heap) waits for it. */
#define HELPER_BATCH 4

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a pool was queued */
    pthread_cond_t idle; /* a slab was populated */
    cio__stack_pool *queue, *queue_tail;
    cio__stack_pool *busy; /* the pool whose slab is being populated */
    bool running;
    /* 0: where the asking thread may run on more than one CPU; 1: always
     * (tests); -1: never (CIO_STACK_HELPER=0, or it could not start);
     * 2: slabs are queued and the helper takes none (tests). */
    int mode;
    bool env_read;
} helper = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
};

static void helper_lock(void)
{
    pthread_mutex_lock(&helper.mu);
}

static void helper_unlock(void)
{
    pthread_mutex_unlock(&helper.mu);
}

/* A fork keeps only the forking thread. Taking both locks around it
 * leaves them free in the child, which starts without a helper and with
 * nothing queued: the tasks of the slabs that were queued fault their
 * pages in themselves. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&reserve.mu);
    helper_lock();
}

static void fork_parent(void)
{
    helper_unlock();
    pthread_mutex_unlock(&reserve.mu);
}

static void fork_child(void)
{
    pthread_cond_init(&helper.work, NULL);
    pthread_cond_init(&helper.idle, NULL);
    helper.running = false;
    helper.busy = NULL;
    for (cio__stack_pool *p = helper.queue, *next; p; p = next) {
        next = p->qnext;
        p->asked = p->asked_tail = NULL;
        p->queued = false;
        p->qnext = NULL;
    }
    helper.queue = helper.queue_tail = NULL;
    fork_parent();
}

static void atfork_once(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void enqueue(cio__stack_pool *p)
{
    p->queued = true;
    if (helper.queue_tail)
        helper.queue_tail->qnext = p;
    else
        helper.queue = p;
    helper.queue_tail = p;
}

static void dequeue(cio__stack_pool *p)
{
    cio__stack_pool **pp = &helper.queue, *prev = NULL;
    while (*pp != p) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    *pp = p->qnext;
    if (helper.queue_tail == p)
        helper.queue_tail = prev;
    p->queued = false;
    p->qnext = NULL;
}

static void *helper_main(void *arg)
{
    (void)arg;
    helper_lock();
    for (;;) {
        cio__stack_pool *p = helper.mode == 2 ? NULL : helper.queue;
        if (p == NULL) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += HELPER_IDLE_SEC;
            if (pthread_cond_timedwait(&helper.work, &helper.mu, &until) ==
                    ETIMEDOUT &&
                (helper.queue == NULL || helper.mode == 2))
                break;
            continue;
        }
        slab *s = p->asked;
        p->asked = s->asked_next;
        if (p->asked == NULL)
            p->asked_tail = NULL;
        /* Round robin: a pool with more to ask goes to the back. */
        dequeue(p);
        if (p->asked)
            enqueue(p);
        /* Skipped if the loop got there first: its tasks run on them. */
        if (!atomic_exchange(&s->claimed, true)) {
            helper.busy = p;
            char *base = s->base;
            size_t n = s->n, each = s->size + cio__page_size();
            helper_unlock();
            populate_tops(base, n, each, HELPER_BATCH);
            helper_lock();
            p->populated += n;
            helper.busy = NULL;
        }
        pthread_cond_broadcast(&helper.idle); /* for settle and close */
    }
    helper.running = false;
    helper_unlock();
    return NULL;
}

static bool helper_start(void);

void cio__stack_helper_mode(int mode)
{
    helper_lock();
    helper.env_read = true;
    helper.mode = mode;
    if (mode == 1 && helper.queue)
        helper_start();
    pthread_cond_signal(&helper.work);
    helper_unlock();
}

/* Whether pool `p` may use the helper: decided once per pool, on the
 * loop's own thread, whose CPUs the helper shares. A loop pinned to one
 * CPU (cio_run_multi's pin) has no second CPU to give it. Called with the
 * lock held. */
static bool helper_usable(cio__stack_pool *p)
{
    if (!helper.env_read) {
        const char *env = getenv("CIO_STACK_HELPER");
        if (env && strcmp(env, "0") == 0)
            helper.mode = -1;
        else if (env && *env)
            helper.mode = 1;
        helper.env_read = true;
    }
    if (helper.mode != 0)
        return helper.mode > 0;
    if (p->cpus == 0) {
        cpu_set_t cpus;
        p->cpus = sched_getaffinity(0, sizeof cpus, &cpus) == 0
                      ? CPU_COUNT(&cpus)
                      : 1;
    }
    return p->cpus > 1;
}

/* Start the helper if it is not running; false if it cannot be. Called
 * with the lock held. */
static bool helper_start(void)
{
    if (helper.running)
        return true;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* The helper takes no signal: they are the program's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    int rc = pthread_create(&th, &attr, helper_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        helper.mode = -1;
        return false;
    }
    pthread_setname_np(th, "cio-stacks");
    helper.running = true;
    return true;
}

/* Have the helper populate the top pages of `s`, just added to `p`; false
 * if it cannot (the caller populates them). */
static bool ask_helper(cio__stack_pool *p, slab *s)
{
    helper_lock();
    if (!helper_usable(p) || !helper_start()) {
        helper_unlock();
        return false;
    }
    s->asked_next = NULL;
    if (p->asked_tail)
        p->asked_tail->asked_next = s;
    else
        p->asked = s;
    p->asked_tail = s;
    s->behind = true;
    if (!p->queued) {
        enqueue(p);
        pthread_cond_signal(&helper.work);
    }
    p->helped = true;
    helper_unlock();
    return true;
}

/* Stop asking for `p`: take back what is queued, and wait while the
 * helper populates one of its slabs. */
static void stop_asking(cio__stack_pool *p)
{
    helper_lock();
    if (p->queued)
        dequeue(p);
    p->asked = p->asked_tail = NULL;
    while (helper.busy == p)
        pthread_cond_wait(&helper.idle, &helper.mu);
    helper_unlock();
}

void cio__stack_pool_settle(cio__stack_pool *p)
{
    helper_lock();
    while (p->asked || helper.busy == p)
        pthread_cond_wait(&helper.idle, &helper.mu);
    helper_unlock();
}

uint64_t cio__stack_populated(const cio__stack_pool *p)
{
    helper_lock();
    uint64_t n = p->populated;
    helper_unlock();
    return n;
}

void cio__stack_pool_fini(cio__stack_pool *p)
{
    if (p == NULL)
        return;
    if (p->helped)
        stop_asking(p);
#ifdef CIO_HAVE_VALGRIND
    for (int c = 0; c < p->nclasses; c++)
        for (free_stack *f = p->classes[c].free; f; f = f->next)
            VALGRIND_STACK_DEREGISTER(f->s.vg_id);
#endif
    for (slab *s = p->slabs, *next; s; s = next) {
        next = s->next;
        drop_slab(s);
    }
    cio__free(p);
}

/* Map a slab for `sc`: its top pages made resident here, or, in a burst
 * (the class has had BURST_AFTER slabs), by the helper while its stacks
 * are in use. */
static int map_slab(cio__stack_pool *p, size_class *sc)
{
    slab *s = cio__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->size = sc->size;
    atomic_init(&s->claimed, false);
    bool burst = sc->slabs >= BURST_AFTER;
    fill_slab(s, !burst);
    if (s->base == NULL) {
        cio__free(s);
        return -ENOMEM;
    }
    add_slab(p, sc, s);
    if (burst && !ask_helper(p, s))
        populate_tops(s->base, s->n, s->size + cio__page_size(), SLAB_BATCH);
    return 0;
}

void cio__stack_first_use(cio__stack *st)
{
    slab *s = st->burst;
    st->burst = NULL;
    if (atomic_exchange(&s->claimed, true))
        return;
    size_t each = s->size + cio__page_size();
    size_t i = (size_t)((char *)st->lo - (char *)s->base) / each;
    populate_tops((char *)s->base + i * each, s->n - i, each, SLAB_BATCH);
}

static inline void pop_free(cio__stack_pool *p, size_class *sc,
                            cio__stack *out)
{
    free_stack *f = sc->free;
    sc->free = f->next;
    p->pooled--;
    *out = f->s;
}

/* The slow part of cio__stack_get: find the class for a new size, take a
 * never-used stack, add a slab when the class has none. Kept out of line
 * so the common case (a pooled stack of the last size) pays for no stack
 * frame. */
static __attribute__((noinline)) int refill(cio__stack_pool *p, size_t size,
                                            cio__stack *out)
{
    size_class *sc = p->hot;
    if (size != p->hot_size || sc == NULL) {
        size_t pg = cio__page_size();
        sc = find_class(p, (size + pg - 1) & ~(pg - 1));
        if (sc == NULL)
            return -ENOMEM;
        p->hot = sc;
        p->hot_size = size;
    }
    if (sc->free) {
        pop_free(p, sc, out);
        return 0;
    }
    if (sc->fresh == NULL && map_slab(p, sc) < 0)
        return -ENOMEM;
    take_fresh(p, sc, out);
    return 0;
}

int cio__stack_get(cio__stack_pool *p, size_t size, cio__stack *out)
{
    size_class *sc = p->hot;
    if (CIO__UNLIKELY(size != p->hot_size || sc == NULL || sc->free == NULL))
        return refill(p, size, out);
    pop_free(p, sc, out);
    return 0;
}

void cio__stack_put(cio__stack_pool *p, const cio__stack *s)
{
#ifdef CIO__ASAN
    /* A task that finished left its frames' redzones poisoned. */
    __asan_unpoison_memory_region(s->lo, s->size);
#endif
    size_class *sc = p->hot && p->hot->size == s->size
                         ? p->hot
                         : find_class(p, s->size);
    if (s->canary)
        *(uint64_t *)s->lo = CANARY;
    push_free(sc, s);
    p->pooled++;
}

long cio__stack_used(const cio__stack *s)
{
    size_t pg = cio__page_size(), n = s->size / pg;
    unsigned char vec[256];
    /* A canary word keeps the lowest page resident: leave it out. */
    size_t first = s->canary ? 1 : 0;
    for (size_t i = first; i < n; i += sizeof vec) {
        size_t len = n - i < sizeof vec ? n - i : sizeof vec;
        if (mincore((char *)s->lo + i * pg, len * pg, vec) != 0)
            return -errno;
        for (size_t j = 0; j < len; j++)
            if (vec[j] & 1)
                return (long)((n - i - j) * pg);
    }
    return 0;
}

void cio__stack_forget(const cio__stack *s)
{
    size_t pg = cio__page_size();
    /* Everything but the top page, where the pool keeps its link. */
    if (s->size > pg)
        madvise(s->lo, s->size - pg, MADV_DONTNEED);
    if (s->canary)
        *(uint64_t *)s->lo = CANARY;
}

size_t cio__stack_pooled(const cio__stack_pool *p)
{
    return p->pooled;
}

uint64_t cio__stack_mapped(const cio__stack_pool *p)
{
    return p->mapped;
}
