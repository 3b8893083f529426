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
#include <stdatomic.h>
#include <stdlib.h>
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

typedef struct slab {
    struct slab *next;
    void *base;
    size_t len;
    long mprotected; /* stacks guarded by mprotect (mapping budget) */
} slab;

typedef struct size_class {
    size_t size; /* usable bytes, page multiple */
    free_stack *free;
    size_t nfree;
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

void cio__stack_pool_fini(cio__stack_pool *p)
{
    if (p == NULL)
        return;
#ifdef CIO_HAVE_VALGRIND
    for (int c = 0; c < p->nclasses; c++)
        for (free_stack *f = p->classes[c].free; f; f = f->next)
            VALGRIND_STACK_DEREGISTER(f->s.vg_id);
#endif
    for (slab *s = p->slabs, *next; s; s = next) {
        next = s->next;
        atomic_fetch_add(&mprotect_budget, s->mprotected);
        munmap(s->base, s->len);
        cio__free(s);
    }
    cio__free(p);
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
    f->next = sc->free;
    sc->free = f;
    sc->nfree++;
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

/* Guard every stack of a new slab and make each one's top page resident
 * (every task touches it: the pool's link, then its first frames), two
 * system calls for the slab where the kernel allows. Populating costs the
 * kernel less than the page faults it saves: 1.35 against 2.2 us a page
 * on the build VM, where 100,000 tasks' first pages are most of the cost
 * of starting them. Returns how many leading stacks are guarded. */
#define SLAB_BATCH 64
static size_t prepare_slab(char *base, size_t n, size_t each)
{
    size_t pg = cio__page_size();
    struct iovec iov[SLAB_BATCH];
    size_t guarded = 0;
    for (size_t i = 0; i < n; i += SLAB_BATCH) {
        size_t k = n - i < SLAB_BATCH ? n - i : SLAB_BATCH;
        for (size_t j = 0; j < k; j++)
            iov[j] = (struct iovec){base + (i + j + 1) * each - pg, pg};
        madvise_pages(iov, k, MADV_POPULATE_WRITE);
        if (guarded != i || probe_guard_mode() != GUARD_MADVISE)
            continue;
        for (size_t j = 0; j < k; j++)
            iov[j] = (struct iovec){base + (i + j) * each, pg};
        if (madvise_pages(iov, k, MADV_GUARD_INSTALL))
            guarded += k;
    }
    return guarded;
}

/* Map a slab of stacks of `sc->size` usable bytes and pool them all. */
static int map_slab(cio__stack_pool *p, size_class *sc)
{
    size_t pg = cio__page_size();
    size_t each = sc->size + pg;
    size_t n = SLAB_BYTES / each;
    if (n == 0)
        n = 1;
    slab *s = cio__malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->len = n * each;
    s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s->base == MAP_FAILED) {
        cio__free(s);
        return -ENOMEM;
    }
    s->mprotected = 0;
    s->next = p->slabs;
    p->slabs = s;
    size_t guarded = prepare_slab(s->base, n, each);
    /* Push in reverse so stacks are handed out in address order. */
    for (size_t i = n; i-- > 0;) {
        char *g = (char *)s->base + i * each;
        cio__stack st = {.lo = g + pg, .size = sc->size};
        st.canary = i >= guarded && !guard(g, &s->mprotected);
        if (st.canary)
            *(uint64_t *)st.lo = CANARY;
#ifdef CIO_HAVE_VALGRIND
        st.vg_id = VALGRIND_STACK_REGISTER(st.lo, (char *)st.lo + st.size);
#endif
        push_free(sc, &st);
    }
    p->mapped += n;
    p->pooled += n;
    return 0;
}

/* The slow part of cio__stack_get: find the class for a new size, map a
 * slab when the class has no free stack. Kept out of line so the common
 * case (a pooled stack of the last size) pays for no stack frame. */
static __attribute__((noinline)) size_class *
refill(cio__stack_pool *p, size_t size)
{
    size_class *sc = p->hot;
    if (size != p->hot_size || sc == NULL) {
        size_t pg = cio__page_size();
        sc = find_class(p, (size + pg - 1) & ~(pg - 1));
        if (sc == NULL)
            return NULL;
        p->hot = sc;
        p->hot_size = size;
    }
    if (sc->free == NULL && map_slab(p, sc) < 0)
        return NULL;
    return sc;
}

int cio__stack_get(cio__stack_pool *p, size_t size, cio__stack *out)
{
    size_class *sc = p->hot;
    if (CIO__UNLIKELY(size != p->hot_size || sc == NULL || sc->free == NULL)) {
        sc = refill(p, size);
        if (sc == NULL)
            return -ENOMEM;
    }
    free_stack *f = sc->free;
    sc->free = f->next;
    sc->nfree--;
    p->pooled--;
    *out = f->s;
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
