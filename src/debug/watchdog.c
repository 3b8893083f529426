/* The blocked-loop watchdog (debug mode): a thread that notices a task
 * has run longer than the slow-step threshold without suspending and,
 * while the loop thread is still stuck, reports which task it is and what
 * the thread is doing right now.
 *
 * A thread blocked in a system call (sleep, a blocking read, getaddrinfo's
 * poll) is looked at without disturbing it: /proc gives the call, its
 * stack pointer and program counter, and the return addresses on the
 * task's stack above that pointer are the frames that led there (a scan,
 * so a stale address can show up too). A thread that is computing is
 * interrupted by a signal whose handler takes a real backtrace; a signal
 * would cut a sleep short (EINTR), which is why blocked calls are not
 * probed that way.
 *
 * The loop marks each task step with cio__watchdog_enter / _leave (debug
 * mode only). At enter it publishes what a report needs of the task (its
 * id, name and stack bounds) under a sequence count, so the watchdog
 * never reads the task itself: the loop may wake up, finish the task and
 * reuse its struct at any moment. The words on the task's stack are
 * copied through process_vm_readv(2), which fails cleanly (EFAULT) where
 * a direct read could fault, and is no data race with the loop thread
 * writing its stack. */
#include <execinfo.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_FRAMES 48

struct cio__watchdog {
    cio_loop *loop;
    pthread_t loop_thread, thread;
    pid_t loop_tid;
    int64_t threshold;
    /* Written by the loop thread, read by the watchdog: a sequence
     * count, odd while the loop thread rewrites the fields after it.
     * Each enter and each leave moves it on by two. */
    _Atomic uint64_t seq;
    _Atomic bool running;   /* a task is in its step */
    _Atomic uint64_t id;
    _Atomic uintptr_t stack_lo;
    _Atomic size_t stack_size;
    _Atomic uint64_t name[CIO__NAME_MAX / 8];
    /* The probe: the signal handler fills frames, then sets nframes. */
    void *frames[MAX_FRAMES];
    _Atomic int nframes;
    /* Stopping. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static int probe_signal(void)
{
    return SIGRTMIN + 3;
}

static void on_probe(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    cio_loop *l = cio__loop;
    struct cio__watchdog *wd = l ? l->watchdog : NULL;
    if (wd == NULL)
        return;
    int n = backtrace(wd->frames, MAX_FRAMES);
    atomic_store_explicit(&wd->nframes, n, memory_order_release);
}

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CIO_SEC + ts.tv_nsec;
}

/* The names of the calls a loop is usually found blocked in. */
static const char *syscall_name(long nr)
{
    static const struct {
        long nr;
        const char *name;
    } names[] = {
#define N(x) {SYS_##x, #x}
        N(read), N(write), N(openat), N(close), N(connect), N(accept4),
        N(recvfrom), N(sendto), N(recvmsg), N(sendmsg), N(wait4),
        N(waitid), N(futex), N(nanosleep), N(clock_nanosleep), N(ppoll),
        N(pselect6), N(epoll_pwait), N(flock), N(fsync), N(fdatasync),
        N(fcntl), N(getrandom), N(readv), N(writev), N(pread64),
        N(pwrite64), N(io_uring_enter),
#ifdef SYS_poll
        N(poll), N(select), N(accept), N(epoll_wait), N(open),
#endif
#undef N
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].nr == nr)
            return names[i].name;
    return NULL;
}

/* Read /proc/self/task/TID/syscall: true with the call number, stack
 * pointer and program counter if the thread is blocked in a call. */
static bool blocked_in_syscall(pid_t tid, long *nr, uintptr_t *sp,
                               uintptr_t *pc)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    unsigned long a[6], s, p;
    if (!ok || sscanf(line, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", nr, &a[0],
                      &a[1], &a[2], &a[3], &a[4], &a[5], &s, &p) != 9 ||
        *nr < 0)
        return false;
    *sp = s;
    *pc = p;
    return true;
}

/* Is `addr` in an executable mapping? `maps` is /proc/self/maps. */
static bool in_text(const char *maps, uintptr_t addr)
{
    for (const char *l = maps; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        unsigned long lo, hi;
        char perm[5];
        if (sscanf(l, "%lx-%lx %4s", &lo, &hi, perm) == 3 && perm[2] == 'x' &&
            addr >= lo && addr < hi)
            return true;
    }
    return false;
}

static char *read_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        char *nb = realloc(buf, cap *= 2);
        if (nb == NULL)
            free(buf);
        buf = nb;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* What the watchdog knows of the task in its step. */
typedef struct step_info {
    uint64_t seq;
    uint64_t id;
    uintptr_t stack_lo;
    size_t stack_size;
    char name[CIO__NAME_MAX + 1];
} step_info;

/* Read the published step; false while the loop thread rewrites it or
 * when no task is running. */
static bool read_step(struct cio__watchdog *wd, step_info *out)
{
    uint64_t s = atomic_load_explicit(&wd->seq, memory_order_acquire);
    if (s & 1 || !atomic_load_explicit(&wd->running, memory_order_acquire))
        return false;
    out->seq = s;
    out->id = atomic_load_explicit(&wd->id, memory_order_acquire);
    out->stack_lo = atomic_load_explicit(&wd->stack_lo, memory_order_acquire);
    out->stack_size =
        atomic_load_explicit(&wd->stack_size, memory_order_acquire);
    for (size_t i = 0; i < CIO__NAME_MAX / 8; i++) {
        uint64_t w = atomic_load_explicit(&wd->name[i], memory_order_acquire);
        memcpy(out->name + 8 * i, &w, 8);
    }
    out->name[CIO__NAME_MAX] = '\0';
    return atomic_load_explicit(&wd->seq, memory_order_relaxed) == s;
}

/* Copy up to `n` bytes of this process's memory at `addr` into `buf`;
 * the count copied (0 if none could be). */
static size_t copy_memory(void *buf, uintptr_t addr, size_t n)
{
    struct iovec local = {buf, n}, remote = {(void *)addr, n};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return got > 0 ? (size_t)got : 0;
}

/* The thread is in a system call: report it and the return addresses on
 * the task's stack above its stack pointer. */
static void report_syscall(const step_info *si, long nr, uintptr_t sp,
                           uintptr_t pc)
{
    char where[256];
    const char *name = syscall_name(nr);
    if (!cio__symbolize(pc, where, sizeof where))
        snprintf(where, sizeof where, "%#lx", (unsigned long)pc);
    if (name)
        cio__report("  in system call %s, at %s", name, where);
    else
        cio__report("  in system call %ld, at %s", nr, where);
    uintptr_t lo = si->stack_lo, hi = lo + si->stack_size;
    if (sp < lo || sp >= hi)
        return; /* not on the task's stack: nothing we may scan */
    uintptr_t words[2048];
    uintptr_t from = sp & ~(uintptr_t)7;
    size_t n = hi - from < sizeof words ? hi - from : sizeof words;
    n = copy_memory(words, from, n) / sizeof words[0];
    char *maps = read_maps();
    int shown = 0;
    for (size_t i = 0; i < n && shown < 24; i++) {
        uintptr_t word = words[i];
        if (word < 4096 || !in_text(maps, word) ||
            !cio__symbolize(word - 1, where, sizeof where))
            continue;
        cio__symbolize(word, where, sizeof where);
        cio__report("  #%d %s", shown++, where);
    }
    free(maps);
}

/* The thread is computing: interrupt it for a real backtrace. */
static void report_probe(struct cio__watchdog *wd)
{
    atomic_store(&wd->nframes, -1);
    if (pthread_kill(wd->loop_thread, probe_signal()) != 0)
        return;
    int n = -1;
    for (int i = 0; i < 200 && n < 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        n = atomic_load_explicit(&wd->nframes, memory_order_acquire);
    }
    if (n <= 0) {
        cio__report("  (no backtrace: the loop thread did not answer)");
        return;
    }
    /* Frame 0 is the probe handler, 1 the signal trampoline. */
    char **sym = backtrace_symbols(wd->frames, n);
    for (int i = 2; i < n; i++)
        cio__report("  #%d %s", i - 2, sym ? sym[i] : "?");
    free(sym);
}

static void report_blocked(struct cio__watchdog *wd, const step_info *si,
                           int64_t ran)
{
    cio__report("blocked loop: task %s (id %llu) has run %.0f ms without "
                "suspending; the loop thread is now:",
                si->name[0] ? si->name : "(unnamed)",
                (unsigned long long)si->id, (double)ran / CIO_MSEC);
    long nr;
    uintptr_t sp, pc;
    if (blocked_in_syscall(wd->loop_tid, &nr, &sp, &pc))
        report_syscall(si, nr, sp, pc);
    else
        report_probe(wd);
}

static void *watch(void *arg)
{
    struct cio__watchdog *wd = arg;
    uint64_t seen_step = 0, reported_step = 0;
    int64_t seen_at = mono();
    int64_t tick = wd->threshold / 4;
    if (tick < CIO_MSEC)
        tick = CIO_MSEC;
    pthread_mutex_lock(&wd->mu);
    while (!wd->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + tick;
        until.tv_sec += ns / CIO_SEC;
        until.tv_nsec = ns % CIO_SEC;
        pthread_cond_timedwait(&wd->cv, &wd->mu, &until);
        if (wd->stop)
            break;
        step_info si;
        bool running = read_step(wd, &si);
        int64_t now = mono();
        if (!running || si.seq != seen_step) {
            seen_step = running ? si.seq : 0;
            seen_at = now;
            continue;
        }
        if (si.seq != reported_step && now - seen_at >= wd->threshold) {
            reported_step = si.seq;
            pthread_mutex_unlock(&wd->mu);
            report_blocked(wd, &si, now - seen_at);
            pthread_mutex_lock(&wd->mu);
        }
    }
    pthread_mutex_unlock(&wd->mu);
    return NULL;
}

void cio__watchdog_start(cio_loop *l)
{
    if (!l->debug || l->watchdog)
        return;
    struct cio__watchdog *wd = cio__calloc(1, sizeof *wd);
    if (wd == NULL)
        return; /* debug aid only: run without it */
    wd->loop = l;
    wd->loop_thread = pthread_self();
    wd->loop_tid = (pid_t)syscall(SYS_gettid);
    wd->threshold = l->slow_step;
    pthread_mutex_init(&wd->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* backtrace() loads its unwinder on first use: do that here, not in
     * the signal handler. */
    void *warm[2];
    backtrace(warm, 2);
    struct sigaction sa = {.sa_sigaction = on_probe,
                           .sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK};
    sigemptyset(&sa.sa_mask);
    sigaction(probe_signal(), &sa, NULL);
    l->watchdog = wd;
    /* The watchdog thread must not take the loop's signals. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&wd->thread, NULL, watch, wd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        l->watchdog = NULL;
        pthread_cond_destroy(&wd->cv);
        pthread_mutex_destroy(&wd->mu);
        cio__free(wd);
    }
}

void cio__watchdog_stop(cio_loop *l)
{
    struct cio__watchdog *wd = l->watchdog;
    if (wd == NULL)
        return;
    pthread_mutex_lock(&wd->mu);
    wd->stop = true;
    pthread_cond_signal(&wd->cv);
    pthread_mutex_unlock(&wd->mu);
    pthread_join(wd->thread, NULL);
    l->watchdog = NULL;
    pthread_cond_destroy(&wd->cv);
    pthread_mutex_destroy(&wd->mu);
    cio__free(wd);
}

/* Open a rewrite of the published step; returns the count to close it
 * with. The loop thread is the only writer: no locked add needed. The
 * fields are stored with release and read with acquire, so a reader that
 * sees a new field also sees the odd count before it (no fences: TSan
 * does not model them). */
static uint64_t step_begin(struct cio__watchdog *wd)
{
    uint64_t s = atomic_load_explicit(&wd->seq, memory_order_relaxed);
    atomic_store_explicit(&wd->seq, s + 1, memory_order_relaxed);
    return s + 2;
}

void cio__watchdog_enter(cio_loop *l, cio_task *t)
{
    struct cio__watchdog *wd = l->watchdog;
    if (wd == NULL)
        return;
    uint64_t s = step_begin(wd);
    atomic_store_explicit(&wd->id, t->id, memory_order_release);
    atomic_store_explicit(&wd->stack_lo, (uintptr_t)t->stack.lo,
                          memory_order_release);
    atomic_store_explicit(&wd->stack_size, t->stack.size,
                          memory_order_release);
    for (size_t i = 0; i < CIO__NAME_MAX / 8; i++) {
        uint64_t w;
        memcpy(&w, t->name + 8 * i, 8);
        atomic_store_explicit(&wd->name[i], w, memory_order_release);
    }
    atomic_store_explicit(&wd->running, true, memory_order_release);
    atomic_store_explicit(&wd->seq, s, memory_order_release);
}

void cio__watchdog_leave(cio_loop *l)
{
    struct cio__watchdog *wd = l->watchdog;
    if (wd == NULL)
        return;
    uint64_t s = step_begin(wd);
    atomic_store_explicit(&wd->running, false, memory_order_release);
    atomic_store_explicit(&wd->seq, s, memory_order_release);
}
