/* Several loops, one per thread: cio_run_multi, channels and tasks between
 * loops, SO_REUSEPORT servers on every loop.
 *
 * Waking a task of another loop always goes through that loop's remote
 * queue (cio__remote_post: a lock-free push and, when the queue was
 * empty, one eventfd write after it). Channels pass messages without
 * it (see "channels" below); only parked tasks are woken through it. A
 * task that waits on something another loop completes parks with an
 * xwait on its own stack holding the remote; the waker takes the xwait
 * off the shared object under that object's lock and posts it. From then
 * on the wait cannot be interrupted (unlink_try says no) until the post
 * arrives, so the stack stays valid for the waker. Such waits count as
 * `external` work of the waiting loop: it is not deadlocked while another
 * loop may still wake it.
 *
 * Lifetimes. A loop's memory is valid while its run has not ended; the
 * set publishes each loop in its slot (under the set's mutex) from just
 * before its main starts until the close hook, just before the loop is
 * freed, so a post made under that mutex never reaches a freed loop.
 * Remote posts take no lock, so they may be made under the set's mutex
 * or an object's. */
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cio/xloop.h"
#include "internal.h"

#define MAX_LOOPS 1024

/* ---- waking a task on another loop --------------------------------------- */

typedef struct xwait {
    cio__remote r;
    cio_task *task;
    cio_loop *loop;
    int result;
} xwait;

static void xwait_run(cio__remote *r)
{
    xwait *w = (xwait *)r;
    cio__wake(w->task, w->result);
}

static void xwait_drop(cio__remote *r)
{
    (void)r; /* a loop does not close while one of its tasks waits */
}

static void xwait_init(xwait *w, cio_task *t)
{
    *w = (xwait){.r = {.run = xwait_run, .drop = xwait_drop},
                 .task = t,
                 .loop = t->loop};
}

/* Wake the task of `w` with `result`. After this the waker must not touch
 * `w` again: it lives on the woken task's stack. */
static void xwait_post(xwait *w, int result)
{
    if (cio__loop == w->loop) {
        cio__wake(w->task, result);
        return;
    }
    w->result = result;
    cio__remote_post(w->loop, &w->r);
}

/* How much a cross-loop wait counts as work promised from outside: in a
 * loop of a set, another loop may end it (1); in a plain cio_run loop,
 * only that loop's tasks and executor jobs can, which the loop already
 * counts (0), so the virtual clock and deadlock detection work there. */
static long outside_weight(void);

/* Park `t` on a cross-loop wait: `unlink_try` decides whether an
 * interruption may take it off. */
static int xpark(cio_task *t, int kind, const void *obj,
                 bool (*unlink_try)(cio_task *t), void *node)
{
    cio_loop *l = t->loop;
    long ext = outside_weight();
    l->external += ext;
    t->unlink = NULL;
    t->wait_q = NULL;
    t->wait_node = node;
    t->unlink_try = unlink_try;
    int rc = cio__park(t, kind, obj, CIO_NEVER, 0);
    t->unlink_try = NULL;
    l->external -= ext;
    return rc;
}

/* ---- the set of loops ---------------------------------------------------- */

typedef struct multi multi;

typedef struct slot {
    multi *m;
    int index;
    pthread_t tid;
    bool thread_started;
    bool entered;   /* under m->mu: loop_main ran */
    cio_loop *loop; /* under m->mu: postable while non-NULL */
    bool open;      /* under m->mu: main runs; takes new tasks */
    cio_task *main; /* loop thread only */
    int result;
} slot;

/* The address the k-th cio_multi_server_start call of the set listens
 * on. */
typedef struct pub {
    struct pub *next;
    unsigned seq;
    cio_addr addr;
} pub;

struct multi {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned n;
    slot *slots;
    cio_config cfg;
    cio_task_fn fn;
    void *arg;
    int pin;
    int handle_signals;
    unsigned starting; /* loops not yet up (or failed) */
    unsigned running;  /* threads not yet finished */
    bool stop;         /* a stop was asked (cancel, failure) */
    int efd;           /* wakes the watching thread */
    pub *pubs;
};

static _Thread_local slot *cur_slot;

static long outside_weight(void)
{
    return cur_slot != NULL;
}

/* Per loop: the number of cio_multi_server_start calls made so far. */
static _Thread_local unsigned server_seq;

static void notify_watcher(multi *m)
{
    uint64_t one = 1;
    if (write(m->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        cio__report("multi: eventfd write: %s", cio_strerror(-errno));
}

static void cancel_main_cb(void *arg)
{
    slot *s = arg;
    if (s->main)
        cio_task_cancel(s->main);
}

static void force_cb(void *arg)
{
    (void)arg;
    cio_loop *l = cio__loop;
    cio__loop_update_now(l);
    cio__cancel_all(l, true);
}

/* Run `fn(slot)` on every loop still up. Called with m->mu held. */
static void post_all(multi *m, void (*fn)(void *arg))
{
    for (unsigned i = 0; i < m->n; i++) {
        slot *s = &m->slots[i];
        if (s->loop)
            cio_call_soon_threadsafe(s->loop, fn, s);
    }
}

static void request_stop(multi *m)
{
    pthread_mutex_lock(&m->mu);
    bool first = !m->stop;
    m->stop = true;
    pthread_mutex_unlock(&m->mu);
    if (first)
        notify_watcher(m);
}

static void close_hook(cio_loop *l)
{
    (void)l;
    slot *s = cur_slot;
    pthread_mutex_lock(&s->m->mu);
    s->loop = NULL;
    s->open = false;
    pthread_mutex_unlock(&s->m->mu);
}

static int loop_main(void *arg)
{
    slot *s = arg;
    multi *m = s->m;
    pthread_mutex_lock(&m->mu);
    s->entered = true;
    s->loop = cio__loop;
    s->open = true;
    s->main = cio_current();
    if (--m->starting == 0)
        pthread_cond_broadcast(&m->cv);
    /* Every loop is up before any main runs (one that failed to start
     * also counts: its slot stays closed). */
    while (m->starting > 0)
        pthread_cond_wait(&m->cv, &m->mu);
    if (m->stop) /* stopped before this loop was known to the watcher */
        cio_task_cancel(s->main);
    pthread_mutex_unlock(&m->mu);
    int rc = m->fn(m->arg);
    pthread_mutex_lock(&m->mu);
    s->open = false;
    s->main = NULL;
    pthread_mutex_unlock(&m->mu);
    if (rc < 0 && rc != -ECANCELED)
        request_stop(m);
    return rc;
}

/* Pin the calling thread to the `index`-th CPU of the process's mask. */
static void pin_thread(int index)
{
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof all, &all) != 0)
        return;
    int n = CPU_COUNT(&all), want = index % (n > 0 ? n : 1);
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &all))
            continue;
        if (seen++ == want) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            return;
        }
    }
}

static void *loop_thread(void *arg)
{
    slot *s = arg;
    multi *m = s->m;
    if (m->pin)
        pin_thread(s->index);
    cur_slot = s;
    server_seq = 0;
    cio__loop_close_hook = close_hook;
    s->result = cio_run_config(&m->cfg, loop_main, s);
    cio__loop_close_hook = NULL;
    cur_slot = NULL;
    pthread_mutex_lock(&m->mu);
    if (!s->entered && --m->starting == 0) /* the loop failed to start */
        pthread_cond_broadcast(&m->cv);
    m->running--;
    pthread_mutex_unlock(&m->mu);
    if (s->result < 0 && s->result != -ECANCELED)
        request_stop(m);
    notify_watcher(m);
    return NULL;
}

void cio_multi_config_init(cio_multi_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cio_config_init(&cfg->loop);
    const char *e = getenv("CIO_LOOPS");
    if (e && atol(e) > 0)
        cfg->loops = (unsigned)atol(e);
}

static unsigned cpu_count(void)
{
    cpu_set_t all;
    if (sched_getaffinity(0, sizeof all, &all) == 0 && CPU_COUNT(&all) > 0)
        return (unsigned)CPU_COUNT(&all);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- the watching thread: signals, stop, grace period -------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CIO_SEC + ts.tv_nsec;
}

static _Noreturn void die_by(int signo)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    signal(signo, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(signo);
    _exit(128 + signo);
}

/* Read the signals waiting on `sfd`: the first asks every loop to stop,
 * a second one ends the process. */
static void on_signals(multi *m, int sfd, int *signalled)
{
    struct signalfd_siginfo si[8];
    ssize_t n;
    while ((n = read(sfd, si, sizeof si)) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
            int signo = (int)si[i].ssi_signo;
            if (++*signalled > 1)
                die_by(signo);
            cio__report("received %s: shutting down %u loops (again to "
                        "force)",
                        signo == SIGINT ? "SIGINT" : "SIGTERM", m->n);
            request_stop(m);
        }
    }
}

/* Wait for every loop thread; cancel the mains on a stop request and
 * every task once the grace period is over. */
static void watch(multi *m, int sfd)
{
    int signalled = 0;
    bool stopping = false;
    int64_t grace_end = -1;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        unsigned running = m->running;
        bool stop = m->stop;
        if (stop && !stopping)
            post_all(m, cancel_main_cb);
        pthread_mutex_unlock(&m->mu);
        if (running == 0)
            break;
        if (stop && !stopping) {
            stopping = true;
            grace_end = mono_ns() + m->cfg.shutdown_grace;
        }
        int timeout = -1;
        if (grace_end >= 0) {
            int64_t left = grace_end - mono_ns();
            if (left <= 0) {
                cio__report("shutdown grace period over: cancelling every "
                            "task of every loop");
                pthread_mutex_lock(&m->mu);
                post_all(m, force_cb);
                pthread_mutex_unlock(&m->mu);
                grace_end = -1;
                continue;
            }
            timeout = (int)((left + CIO_MSEC - 1) / CIO_MSEC);
        }
        struct pollfd p[2] = {{.fd = m->efd, .events = POLLIN},
                              {.fd = sfd, .events = POLLIN}};
        int rc = poll(p, sfd >= 0 ? 2 : 1, timeout);
        if (rc < 0 && errno != EINTR)
            break; /* cannot happen with valid fds; stop watching */
        uint64_t v;
        if (rc > 0 && (p[0].revents & POLLIN) &&
            read(m->efd, &v, sizeof v) < 0 && errno != EAGAIN)
            break;
        if (rc > 0 && sfd >= 0 && (p[1].revents & POLLIN))
            on_signals(m, sfd, &signalled);
    }
}

/* With handle_signals, catch SIGINT and SIGTERM (those left at their
 * default action) on a signalfd of the calling thread; they are blocked
 * before the loop threads start, so every thread of the set inherits the
 * block and the process-wide signal waits on the signalfd. */
static int signals_start(const multi *m, sigset_t *old, int *sfd)
{
    *sfd = -1;
    if (!m->handle_signals)
        return 0;
    sigset_t set;
    sigemptyset(&set);
    struct sigaction sa;
    if (sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        sigaddset(&set, SIGINT);
    if (sigaction(SIGTERM, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        sigaddset(&set, SIGTERM);
    if (sigisemptyset(&set))
        return 0;
    int rc = pthread_sigmask(SIG_BLOCK, &set, old);
    if (rc != 0)
        return -rc;
    *sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (*sfd == -1) {
        rc = -errno;
        pthread_sigmask(SIG_SETMASK, old, NULL);
        return rc;
    }
    return 0;
}

static void signals_stop(int sfd, const sigset_t *old)
{
    if (sfd < 0)
        return;
    close(sfd);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- cio_run_multi ------------------------------------------------------- */

static int check_config(const cio_multi_config *cfg)
{
    const cio_config *c = &cfg->loop;
    if (cfg->loops > MAX_LOOPS ||
        (c->stack_size && c->stack_size < CIO_STACK_MIN) ||
        c->backend < CIO_BACKEND_AUTO || c->backend > CIO_BACKEND_URING ||
        (c->clock != CIO_CLOCK_MONOTONIC && c->clock != CIO_CLOCK_VIRTUAL))
        return -EINVAL;
    return 0;
}

static int multi_init(multi *m, const cio_multi_config *cfg, cio_task_fn fn,
                      void *arg)
{
    m->n = cfg->loops ? cfg->loops : cpu_count();
    if (m->n > MAX_LOOPS)
        m->n = MAX_LOOPS;
    m->cfg = cfg->loop;
    m->handle_signals = cfg->loop.handle_signals;
    m->cfg.handle_signals = 0; /* the set handles them, see watch() */
    if (m->cfg.shutdown_grace <= 0)
        m->cfg.shutdown_grace = 5 * CIO_SEC;
    m->fn = fn;
    m->arg = arg;
    m->pin = cfg->pin;
    m->starting = m->running = m->n;
    m->slots = cio__calloc(m->n, sizeof *m->slots);
    if (m->slots == NULL)
        return -ENOMEM;
    m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->efd == -1) {
        int rc = -errno;
        cio__free(m->slots);
        return rc;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    for (unsigned i = 0; i < m->n; i++)
        m->slots[i] = (slot){.m = m, .index = (int)i};
    return 0;
}

static void multi_fini(multi *m)
{
    while (m->pubs) {
        pub *p = m->pubs;
        m->pubs = p->next;
        cio__free(p);
    }
    close(m->efd);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    cio__free(m->slots);
}

/* Threads that could not be created count as loops that failed. */
static int start_threads(multi *m)
{
    int err = 0;
    for (unsigned i = 0; i < m->n; i++) {
        slot *s = &m->slots[i];
        int rc = pthread_create(&s->tid, NULL, loop_thread, s);
        if (rc == 0) {
            s->thread_started = true;
            continue;
        }
        s->result = -rc;
        err = err ? err : -rc;
        pthread_mutex_lock(&m->mu);
        m->running--;
        m->stop = true;
        if (--m->starting == 0)
            pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
    return err;
}

static int overall_result(const multi *m)
{
    bool cancelled = false;
    for (unsigned i = 0; i < m->n; i++) {
        int r = m->slots[i].result;
        if (r < 0 && r != -ECANCELED)
            return r;
        cancelled |= r == -ECANCELED;
    }
    return cancelled ? -ECANCELED : m->slots[0].result;
}

int cio_run_multi(const cio_multi_config *cfg, cio_task_fn main_fn, void *arg)
{
    cio_multi_config defaults;
    if (cfg == NULL) {
        cio_multi_config_init(&defaults);
        cfg = &defaults;
    }
    if (main_fn == NULL || check_config(cfg) < 0)
        return -EINVAL;
    if (cio__loop)
        return -EBUSY;
    multi m = {0};
    int rc = multi_init(&m, cfg, main_fn, arg);
    if (rc < 0)
        return rc;
    sigset_t old;
    int sfd;
    rc = signals_start(&m, &old, &sfd);
    if (rc < 0) {
        multi_fini(&m);
        return rc;
    }
    rc = start_threads(&m);
    if (rc < 0)
        notify_watcher(&m);
    watch(&m, sfd);
    for (unsigned i = 0; i < m.n; i++)
        if (m.slots[i].thread_started)
            pthread_join(m.slots[i].tid, NULL);
    signals_stop(sfd, &old);
    if (cfg->results)
        for (unsigned i = 0; i < m.n && i < cfg->loops; i++)
            cfg->results[i] = m.slots[i].result;
    if (rc == 0)
        rc = overall_result(&m);
    multi_fini(&m);
    return rc;
}

int cio_loop_index(void)
{
    if (cio__loop == NULL)
        return -ESRCH;
    return cur_slot ? cur_slot->index : 0;
}

int cio_loop_count(void)
{
    if (cio__loop == NULL)
        return -ESRCH;
    return cur_slot ? (int)cur_slot->m->n : 1;
}

int cio_multi_cancel(void)
{
    if (cio__loop == NULL || cur_slot == NULL)
        return -ESRCH;
    request_stop(cur_slot->m);
    return 0;
}

/* ---- channels ------------------------------------------------------------ */

/* The ring is a bounded multi-producer, single-consumer array queue in the
 * style of Dmitry Vyukov's: every slot carries a sequence number that says
 * whose turn it is, so producers on any thread only contend on one
 * fetch-and-CAS of `tail` and the consumer (the owner's thread) touches
 * shared memory only to read a slot and hand it back. No lock is taken
 * while there is room and nobody waits. Positions are 63-bit counters;
 * slot `pos % cap` holds position `pos`, and its sequence number is
 *   2 * pos       free for the producer of `pos`,
 *   2 * pos + 1   written, for the consumer at `pos`,
 * and the consumer frees it for `pos + cap` by storing 2 * (pos + cap).
 * (Doubling keeps "written" and "free for the next lap" apart even with
 * one slot.) The sequence store is a release and its load an acquire, so
 * the message bytes travel with it.
 *
 * Close sets the top bit of `tail`: a producer's CAS then fails and it
 * sees the bit, so no position is claimed after the close, and the
 * consumer reports CIO_EOF only when `head` has reached the last claimed
 * position (a write in progress at the close is still delivered).
 *
 * Waking the receivers: a receiver about to park sets `rstate` to ARMED
 * and looks at the ring again; a producer publishes its slot and then
 * looks at `rstate`, all four accesses sequentially consistent (the
 * Dekker pattern), so either the receiver sees the message or the
 * producer sees ARMED: no wakeup is lost. Only the producer that moves
 * ARMED to POSTED posts a wakeup (one cio__remote per channel): the
 * messages that follow ride on it until it has run. A receiver that is
 * running has not armed, so it costs its producers nothing. The same
 * pattern (with fences) guards `swaiting` against a consumer freeing
 * room just as a sender decides to park.
 *
 * Only the slow paths take `mu`: the queue of parked senders (FIFO, they
 * go in before any later send: no overtaking), admitting them, close. */

#define CHAN_MSG_MAX ((size_t)64 * 1024)
#define CHAN_CAP_MAX ((size_t)1 << 24)
#define CHAN_CLOSED ((uint64_t)1 << 63)
#define CACHE_LINE 64

enum { R_IDLE, R_ARMED, R_POSTED };

/* A sender waiting for room, on its own stack. */
typedef struct sendw {
    struct sendw *prev, *next;
    const void *msg;
    bool queued; /* still in the channel's list (under the lock) */
    xwait w;
} sendw;

/* Groups that different threads write are kept CACHE_LINE bytes apart,
 * so that no cache line holds two of them (the allocator aligns to 16
 * bytes only, so padding, not _Alignas). */
struct cio_chan {
    /* Set at creation. */
    cio_loop *owner;
    unsigned char *ring; /* cap slots of `stride` bytes: sequence, message */
    size_t msg_size, stride, cap;
    uint64_t mask; /* cap - 1 */
    bool pow2;     /* cap is a power of two: index with the mask */
    char pad0[CACHE_LINE];
    /* Producers: the next position to claim, | CHAN_CLOSED. */
    _Atomic uint64_t tail;
    char pad1[CACHE_LINE];
    /* Read by every send, written on the slow paths. */
    _Atomic size_t swaiting; /* parked senders */
    _Atomic int rstate;      /* R_* */
    char pad2[CACHE_LINE];
    /* The consumer: the next position to take (written by the owner's
     * thread only; read elsewhere for cio_chan_len). */
    _Atomic uint64_t head;
    /* Receivers: tasks of the owner loop, touched on its thread only. */
    cio__waitq rq;
    size_t rwaiting; /* parked receivers */
    size_t rbusy;    /* tasks inside a receiving call */
    cio__remote rwake;
    char pad3[CACHE_LINE];
    /* The owner, parked senders and a posted wakeup. */
    _Atomic long refs;
    /* Slow paths. */
    pthread_mutex_t mu;
    sendw *shead, *stail; /* under mu */
};

static void chan_release(cio_chan *ch)
{
    pthread_mutex_destroy(&ch->mu);
    cio__free(ch->ring);
    cio__free(ch);
}

static void chan_unref(cio_chan *ch)
{
    if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) == 1)
        chan_release(ch);
}

static unsigned char *slot_at(const cio_chan *ch, uint64_t pos)
{
    size_t i = ch->pow2 ? (size_t)(pos & ch->mask) : (size_t)(pos % ch->cap);
    return ch->ring + i * ch->stride;
}

static _Atomic uint64_t *slot_seq(unsigned char *s)
{
    return (_Atomic uint64_t *)(void *)s;
}

#define SLOT_DATA(slot) ((slot) + sizeof(_Atomic uint64_t))

/* Copy one message; the usual small sizes without a call. */
static inline void msg_copy(void *dst, const void *src, size_t n)
{
    if (n == 8)
        memcpy(dst, src, 8);
    else if (n == 16)
        memcpy(dst, src, 16);
    else
        memcpy(dst, src, n);
}

/* Claim the next position and copy `msg` in. 0; -EAGAIN if full; -EPIPE
 * if closed. Any thread; lock-free. */
static int ring_put(cio_chan *ch, const void *msg)
{
    uint64_t pos = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    for (;;) {
        if (pos & CHAN_CLOSED)
            return -EPIPE;
        unsigned char *s = slot_at(ch, pos);
        uint64_t seq = atomic_load_explicit(slot_seq(s), memory_order_acquire);
        int64_t dif = (int64_t)(seq - 2 * pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&ch->tail, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                msg_copy(SLOT_DATA(s), msg, ch->msg_size);
                /* Sequentially consistent: ordered before the look at
                 * `rstate` that follows (notify_receivers). */
                atomic_store(slot_seq(s), 2 * pos + 1);
                return 0;
            }
        } else if (dif < 0) {
            /* The slot still holds position pos - cap: full, unless
             * `tail` moved meanwhile (claimed or closed). */
            uint64_t now =
                atomic_load_explicit(&ch->tail, memory_order_relaxed);
            if (now == pos)
                return -EAGAIN;
            pos = now;
        } else {
            pos = atomic_load_explicit(&ch->tail, memory_order_relaxed);
        }
    }
}

/* Take the message at `head` if it is written. Owner thread. */
static bool ring_get(cio_chan *ch, void *msg)
{
    uint64_t pos = atomic_load_explicit(&ch->head, memory_order_relaxed);
    unsigned char *s = slot_at(ch, pos);
    if (atomic_load_explicit(slot_seq(s), memory_order_acquire) != 2 * pos + 1)
        return false;
    msg_copy(msg, SLOT_DATA(s), ch->msg_size);
    atomic_store_explicit(slot_seq(s), 2 * (pos + ch->cap),
                          memory_order_release);
    atomic_store_explicit(&ch->head, pos + 1, memory_order_relaxed);
    return true;
}

/* A message is ready at `head` (a sequentially consistent load: the
 * receiver's side of the wakeup protocol). Owner thread. */
static bool ring_ready(cio_chan *ch)
{
    uint64_t pos = atomic_load_explicit(&ch->head, memory_order_relaxed);
    return atomic_load(slot_seq(slot_at(ch, pos))) == 2 * pos + 1;
}

/* Closed, and every claimed position taken: CIO_EOF. Owner thread. */
static bool ring_drained_closed(cio_chan *ch)
{
    uint64_t tail = atomic_load(&ch->tail);
    return (tail & CHAN_CLOSED) &&
           (tail & ~CHAN_CLOSED) ==
               atomic_load_explicit(&ch->head, memory_order_relaxed);
}

static bool chan_closed(cio_chan *ch)
{
    return atomic_load(&ch->tail) & CHAN_CLOSED;
}

static void sendq_remove(cio_chan *ch, sendw *sw)
{
    if (sw->prev)
        sw->prev->next = sw->next;
    else
        ch->shead = sw->next;
    if (sw->next)
        sw->next->prev = sw->prev;
    else
        ch->stail = sw->prev;
    sw->prev = sw->next = NULL;
    sw->queued = false;
    atomic_fetch_sub(&ch->swaiting, 1);
}

/* Wake every parked receiver: each looks at the ring again, and those
 * that find nothing park (and arm) again. Owner thread. */
static void grant_receivers(cio_chan *ch)
{
    while (ch->rwaiting > 0) {
        ch->rwaiting--;
        cio__waitq_grant(&ch->rq, NULL);
    }
}

static void rwake_run(cio__remote *r)
{
    cio_chan *ch = CIO__CONTAINER(r, cio_chan, rwake);
    /* Idle before granting: a receiver that parks again re-arms. */
    atomic_store(&ch->rstate, R_IDLE);
    grant_receivers(ch);
    chan_unref(ch);
}

static void rwake_drop(cio__remote *r)
{
    chan_unref(CIO__CONTAINER(r, cio_chan, rwake));
}

/* Messages or the close arrived and a receiver is (or was) armed. On the
 * owner's thread receivers are woken at once; from elsewhere the one
 * producer that moves ARMED to POSTED posts the wakeup. */
static void wake_receivers(cio_chan *ch)
{
    int armed = R_ARMED;
    if (cio__loop == ch->owner) {
        if (atomic_compare_exchange_strong(&ch->rstate, &armed, R_IDLE))
            grant_receivers(ch);
        return;
    }
    if (!atomic_compare_exchange_strong(&ch->rstate, &armed, R_POSTED))
        return;
    atomic_fetch_add(&ch->refs, 1);
    /* Only -ESHUTDOWN leaves `rwake` out of the queue (another error is
     * the eventfd write's, after queueing). */
    if (cio__remote_post(ch->owner, &ch->rwake) == -ESHUTDOWN) {
        /* The owner loop is closing: no receiver is left to wake. */
        atomic_store(&ch->rstate, R_IDLE);
        chan_unref(ch);
    }
}

/* After publishing (ring_put): wake the receivers if they armed. The
 * publishing store, this load, the receiver's arming CAS and its second
 * look (ring_ready) are all sequentially consistent, so in their single
 * total order either the receiver's look follows the store and sees the
 * message, or this load follows the CAS and sees ARMED (or what the
 * receiver's loop made of it since: a wakeup posted or already run). */
static void notify_receivers(cio_chan *ch)
{
    if (atomic_load(&ch->rstate) == R_ARMED)
        wake_receivers(ch);
}

int cio_chan_new(cio_chan **out, size_t msg_size, size_t capacity)
{
    if (out == NULL || msg_size == 0 || msg_size > CHAN_MSG_MAX ||
        capacity == 0 || capacity > CHAN_CAP_MAX)
        return -EINVAL;
    if (cio__loop == NULL)
        return CIO_ENOTASK;
    cio_chan *ch = cio__calloc(1, sizeof *ch);
    if (ch == NULL)
        return -ENOMEM;
    size_t seq = sizeof(_Atomic uint64_t);
    ch->stride = (seq + msg_size + seq - 1) / seq * seq;
    ch->ring = capacity <= SIZE_MAX / ch->stride
                   ? cio__malloc(ch->stride * capacity)
                   : NULL;
    if (ch->ring == NULL) {
        cio__free(ch);
        return -ENOMEM;
    }
    for (size_t i = 0; i < capacity; i++)
        atomic_init(slot_seq(ch->ring + i * ch->stride), 2 * (uint64_t)i);
    pthread_mutex_init(&ch->mu, NULL);
    ch->owner = cio__loop;
    ch->msg_size = msg_size;
    ch->cap = capacity;
    ch->pow2 = (capacity & (capacity - 1)) == 0;
    ch->mask = capacity - 1;
    atomic_init(&ch->tail, 0);
    atomic_init(&ch->head, 0);
    atomic_init(&ch->swaiting, 0);
    atomic_init(&ch->rstate, R_IDLE);
    atomic_init(&ch->refs, 1);
    ch->rwake = (cio__remote){.run = rwake_run, .drop = rwake_drop};
    *out = ch;
    return 0;
}

/* The lock-free path: in if there is room and no sender is parked. */
static int send_fast(cio_chan *ch, const void *msg)
{
    if (atomic_load_explicit(&ch->swaiting, memory_order_relaxed) != 0)
        return chan_closed(ch) ? -EPIPE : -EAGAIN;
    int rc = ring_put(ch, msg);
    if (rc == 0)
        notify_receivers(ch);
    return rc;
}

int cio_chan_try_send(cio_chan *ch, const void *msg)
{
    if (ch == NULL || msg == NULL)
        return -EINVAL;
    return send_fast(ch, msg);
}

/* Move parked senders' messages in, first come first, while there is
 * room. Returns the senders moved in, other than `self` (a sender not
 * parked yet, or NULL), linked through `next`, to be woken with
 * wake_senders once `mu` is released (a removed sender cannot leave its
 * wait before that wakeup, so its stack stays put); `*self_in` tells
 * whether `self` went in, `*moved` whether anything did. Under mu. */
static sendw *admit_senders(cio_chan *ch, sendw *self, bool *self_in,
                            bool *moved)
{
    sendw *woken = NULL, **last = &woken, *sw;
    *self_in = *moved = false;
    while ((sw = ch->shead) != NULL && ring_put(ch, sw->msg) == 0) {
        sendq_remove(ch, sw);
        *moved = true;
        if (sw == self) {
            *self_in = true;
            continue;
        }
        *last = sw;
        last = &sw->next;
    }
    return woken;
}

/* Wake the senders of a list from admit_senders or close: outside `mu`,
 * so the channel's lock is never held across another loop's wakeup. */
static void wake_senders(sendw *sw, int result)
{
    while (sw) {
        sendw *next = sw->next; /* sw may be gone once woken */
        xwait_post(&sw->w, result);
        sw = next;
    }
}

/* An interrupted sender leaves only if no receiver took its message yet;
 * otherwise the wakeup is on its way and the send has succeeded. */
static bool send_unlink(cio_task *t)
{
    sendw *sw = (sendw *)(void *)t->wait_node;
    cio_chan *ch = (cio_chan *)t->wait_obj;
    pthread_mutex_lock(&ch->mu);
    bool off = sw->queued;
    if (off)
        sendq_remove(ch, sw);
    pthread_mutex_unlock(&ch->mu);
    return off;
}

int cio_chan_send(cio_chan *ch, const void *msg)
{
    CIO__SELF_OR_RETURN(t);
    if (ch == NULL || msg == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    rc = send_fast(ch, msg);
    if (rc != -EAGAIN)
        return rc;
    sendw sw = {.msg = msg, .queued = true};
    xwait_init(&sw.w, t);
    pthread_mutex_lock(&ch->mu);
    if (chan_closed(ch)) {
        pthread_mutex_unlock(&ch->mu);
        return -EPIPE;
    }
    sw.prev = ch->stail;
    if (ch->stail)
        ch->stail->next = &sw;
    else
        ch->shead = &sw;
    ch->stail = &sw;
    /* Either the consumer sees this count after freeing a slot, or the
     * admission below sees the slot: fences on both sides (see take). */
    atomic_fetch_add(&ch->swaiting, 1);
    atomic_thread_fence(memory_order_seq_cst);
    bool in, moved;
    sendw *woken = admit_senders(ch, &sw, &in, &moved);
    if (!in)
        atomic_fetch_add(&ch->refs, 1);
    pthread_mutex_unlock(&ch->mu);
    if (moved)
        notify_receivers(ch);
    wake_senders(woken, 0);
    if (in)
        return 0;
    rc = xpark(t, CIO__W_QUEUE_PUT, ch, send_unlink, &sw);
    chan_unref(ch);
    return rc;
}

/* Take up to `max` messages, then let parked senders fill the room made.
 * Owner thread. */
static size_t take(cio_chan *ch, void *msgs, size_t max)
{
    size_t n = 0;
    unsigned char *p = msgs;
    while (n < max && ring_get(ch, p + n * ch->msg_size))
        n++;
    if (n == 0)
        return 0;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&ch->swaiting, memory_order_relaxed) != 0) {
        bool in, moved;
        pthread_mutex_lock(&ch->mu);
        sendw *woken = admit_senders(ch, NULL, &in, &moved);
        pthread_mutex_unlock(&ch->mu);
        if (moved)
            notify_receivers(ch);
        wake_senders(woken, 0);
    }
    return n;
}

int cio_chan_try_recv(cio_chan *ch, void *msg)
{
    if (ch == NULL || msg == NULL || cio__loop != ch->owner)
        return -EINVAL;
    if (take(ch, msg, 1))
        return 0;
    return ring_drained_closed(ch) ? CIO_EOF : -EAGAIN;
}

/* A parked receiver is interrupted. The last one to leave disarms, so
 * that senders post no wakeup for nobody. */
static void recv_unlink(cio_task *t)
{
    cio_chan *ch = (cio_chan *)t->wait_obj;
    ch->rwaiting--;
    cio__waitq_remove(&ch->rq, t->wait_node);
    int armed = R_ARMED;
    if (ch->rwaiting == 0)
        atomic_compare_exchange_strong(&ch->rstate, &armed, R_IDLE);
}

/* Park the receiver `t` until a producer, the close or the owner's own
 * send wakes it. Returns 1 without parking when something arrived while
 * arming; else what cio__park returns. */
static int recv_park(cio_chan *ch, cio_task *t)
{
    cio__waiter w = {.task = t};
    cio__waitq_push(&ch->rq, &w);
    ch->rwaiting++;
    int idle = R_IDLE;
    atomic_compare_exchange_strong(&ch->rstate, &idle, R_ARMED);
    /* ARMED (or a wakeup already POSTED) before looking again: a producer
     * that published before it could see the flag is seen here (see
     * notify_receivers). */
    if (ring_ready(ch) || ring_drained_closed(ch)) {
        ch->rwaiting--;
        cio__waitq_remove(&ch->rq, &w);
        int armed = R_ARMED;
        if (ch->rwaiting == 0)
            atomic_compare_exchange_strong(&ch->rstate, &armed, R_IDLE);
        return 1;
    }
    long ext = outside_weight();
    t->loop->external += ext;
    t->unlink_try = NULL;
    t->wait_q = NULL;
    t->wait_node = &w;
    t->unlink = recv_unlink;
    int rc = cio__park(t, CIO__W_QUEUE_GET, ch, CIO_NEVER, 0);
    t->unlink = NULL;
    t->loop->external -= ext;
    return rc < 0 ? rc : 1;
}

ssize_t cio_chan_recv_many(cio_chan *ch, void *msgs, size_t max)
{
    CIO__SELF_OR_RETURN(t);
    if (ch == NULL || msgs == NULL || max == 0 || t->loop != ch->owner)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    ch->rbusy++;
    for (;;) {
        size_t n = take(ch, msgs, max);
        bool eof = n == 0 && ring_drained_closed(ch);
        /* Woken, then cancelled, and another receiver was faster: the
         * cancellation is not lost by waiting again. */
        if (n == 0 && !eof && rc == 1)
            rc = cio__cancelled(t);
        if (n > 0 || eof || rc < 0) {
            ch->rbusy--;
            return n > 0 ? (ssize_t)n : rc < 0 ? rc : CIO_EOF;
        }
        /* Woken or not parked: try again. A wakeup is a hint, not a
         * message, so a receiver cancelled after it has nothing to hand
         * on. */
        rc = recv_park(ch, t);
        if (rc < 0) {
            ch->rbusy--;
            return rc;
        }
    }
}

int cio_chan_recv(cio_chan *ch, void *msg)
{
    ssize_t n = cio_chan_recv_many(ch, msg, 1);
    return n < 0 ? (int)n : 0;
}

int cio_chan_close(cio_chan *ch)
{
    if (ch == NULL)
        return -EINVAL;
    sendw *woken = NULL, **last = &woken;
    pthread_mutex_lock(&ch->mu);
    uint64_t old = atomic_fetch_or(&ch->tail, CHAN_CLOSED);
    if (!(old & CHAN_CLOSED)) {
        while (ch->shead) {
            sendw *sw = ch->shead;
            sendq_remove(ch, sw);
            *last = sw;
            last = &sw->next;
        }
        /* The fetch-or is sequentially consistent: a receiver arming
         * after it sees the close. Under the lock: once it is released,
         * the owner may free the channel (cio_chan_free closes too). */
        if (atomic_load(&ch->rstate) == R_ARMED)
            wake_receivers(ch);
    }
    pthread_mutex_unlock(&ch->mu);
    wake_senders(woken, -EPIPE);
    return 0;
}

size_t cio_chan_len(const cio_chan *ch)
{
    if (ch == NULL)
        return 0;
    cio_chan *c = (cio_chan *)ch;
    uint64_t head = atomic_load(&c->head);
    uint64_t tail = atomic_load(&c->tail) & ~CHAN_CLOSED;
    uint64_t n = tail > head ? tail - head : 0;
    return n < c->cap ? (size_t)n : c->cap;
}

int cio_chan_free(cio_chan *ch)
{
    if (ch == NULL || cio__loop != ch->owner)
        return -EINVAL;
    cio_chan_close(ch);
    if (ch->rbusy > 0)
        return -EBUSY;
    chan_unref(ch);
    return 0;
}

/* ---- tasks on other loops ------------------------------------------------ */

enum { XT_PENDING, XT_RUNNING, XT_DONE };

struct cio_xtask {
    pthread_mutex_t mu;
    int state;
    int refs;      /* the joiner's handle, the remote side, a queued cancel */
    bool detached; /* nobody joins: the remote task reports its error */
    bool cancel_sent;
    bool dropped; /* the target loop closed before starting it */
    cio_task_fn fn;
    void *arg;
    int result;
    cio_loop *target; /* valid while state != XT_DONE */
    cio_task *task;   /* the remote task; its loop's thread only */
    xwait *waiter;
    cio__remote start, cancel;
};

static void xtask_unref_locked(cio_xtask *h, bool *last)
{
    *last = --h->refs == 0;
}

static void xtask_release(cio_xtask *h)
{
    pthread_mutex_destroy(&h->mu);
    cio__free(h);
}

/* The remote side is over (the task returned, or never started). The
 * joiner is woken after the lock is released (it cannot leave its wait
 * before, so its xwait stays put), so that it does not find the lock
 * held across its own wakeup; `h` is not touched after that wakeup
 * unless this was the last reference. */
static void xtask_complete(cio_xtask *h, int result)
{
    bool last;
    pthread_mutex_lock(&h->mu);
    h->state = XT_DONE;
    h->result = result;
    xwait *w = h->waiter;
    h->waiter = NULL;
    xtask_unref_locked(h, &last);
    pthread_mutex_unlock(&h->mu);
    if (w)
        xwait_post(w, 0);
    if (last)
        xtask_release(h);
}

static int xtask_main(void *arg)
{
    cio_xtask *h = arg;
    bool detached = h->detached; /* h may be gone after completing */
    int rc = h->fn(h->arg);
    xtask_complete(h, rc);
    return detached ? rc : 0;
}

static void xtask_start(cio__remote *r)
{
    cio_xtask *h = CIO__CONTAINER(r, cio_xtask, start);
    cio_task *t;
    cio_spawn_opts o = {.name = "xloop"};
    int rc = cio__spawn(&t, NULL, xtask_main, h, &o, (void *)h->fn);
    if (rc < 0) {
        xtask_complete(h, rc);
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->state = XT_RUNNING;
    h->task = t;
    pthread_mutex_unlock(&h->mu);
    cio_task_free(t); /* detached: alive until it returns */
}

static void xtask_start_drop(cio__remote *r)
{
    cio_xtask *h = CIO__CONTAINER(r, cio_xtask, start);
    pthread_mutex_lock(&h->mu);
    h->dropped = true;
    pthread_mutex_unlock(&h->mu);
    xtask_complete(h, -ESHUTDOWN);
}

static void xtask_cancel_run(cio__remote *r)
{
    cio_xtask *h = CIO__CONTAINER(r, cio_xtask, cancel);
    bool last;
    pthread_mutex_lock(&h->mu);
    if (h->state == XT_RUNNING)
        cio_task_cancel(h->task);
    xtask_unref_locked(h, &last);
    pthread_mutex_unlock(&h->mu);
    if (last)
        xtask_release(h);
}

static void xtask_cancel_drop(cio__remote *r)
{
    cio_xtask *h = CIO__CONTAINER(r, cio_xtask, cancel);
    bool last;
    pthread_mutex_lock(&h->mu);
    xtask_unref_locked(h, &last);
    pthread_mutex_unlock(&h->mu);
    if (last)
        xtask_release(h);
}

int cio_xloop_spawn(cio_xtask **out, int loop, cio_task_fn fn, void *arg)
{
    slot *me = cur_slot;
    if (cio__loop == NULL || me == NULL)
        return -ESRCH;
    multi *m = me->m;
    if (fn == NULL || loop < 0 || (unsigned)loop >= m->n)
        return -EINVAL;
    cio_xtask *h = cio__calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    h->refs = out ? 2 : 1;
    h->detached = out == NULL;
    h->fn = fn;
    h->arg = arg;
    h->start = (cio__remote){.run = xtask_start, .drop = xtask_start_drop};
    h->cancel =
        (cio__remote){.run = xtask_cancel_run, .drop = xtask_cancel_drop};
    slot *s = &m->slots[loop];
    int rc = -ESHUTDOWN;
    pthread_mutex_lock(&m->mu);
    if (s->open && s->loop) {
        h->target = s->loop;
        rc = cio__remote_post(s->loop, &h->start);
        if (rc < 0 && rc != -ESHUTDOWN)
            rc = 0; /* queued; only the eventfd write failed */
    }
    pthread_mutex_unlock(&m->mu);
    if (rc < 0) {
        xtask_release(h);
        return rc;
    }
    if (out)
        *out = h;
    return 0;
}

/* Ask the remote task to stop, once. Under h->mu. */
static void xtask_send_cancel(cio_xtask *h)
{
    if (h->cancel_sent || h->state == XT_DONE)
        return;
    h->cancel_sent = true;
    h->refs++;
    /* While the task has not completed, its loop is up: the start went
     * through its queue before this, and a loop drops what is queued only
     * after marking itself closed (then the post fails harmlessly). */
    if (cio__remote_post(h->target, &h->cancel) == -ESHUTDOWN)
        h->refs--;
}

/* The joiner is cancelled: cancel the remote task and keep waiting for
 * it to end (as cio_wait_for does). */
static bool join_unlink(cio_task *t)
{
    cio_xtask *h = (cio_xtask *)t->wait_obj;
    pthread_mutex_lock(&h->mu);
    xtask_send_cancel(h);
    pthread_mutex_unlock(&h->mu);
    return false;
}

int cio_xloop_join(cio_xtask *h, int *result)
{
    CIO__SELF_OR_RETURN(t);
    if (h == NULL)
        return -EINVAL;
    xwait w;
    xwait_init(&w, t);
    pthread_mutex_lock(&h->mu);
    if (h->state != XT_DONE) {
        h->waiter = &w;
        if (cio__cancelled(t) < 0)
            xtask_send_cancel(h);
        pthread_mutex_unlock(&h->mu);
        xpark(t, CIO__W_JOIN, h, join_unlink, NULL);
        pthread_mutex_lock(&h->mu);
    }
    int res = h->result;
    bool cancelled = h->cancel_sent, dropped = h->dropped, last;
    xtask_unref_locked(h, &last);
    pthread_mutex_unlock(&h->mu);
    if (last)
        xtask_release(h);
    if (result)
        *result = res;
    if (dropped)
        return -ESHUTDOWN;
    return cancelled ? -ECANCELED : 0;
}

/* ---- a server on every loop ---------------------------------------------- */

int cio_multi_server_start(cio_server **out, const cio_addr *a, cio_conn_fn fn,
                           void *arg, const cio_server_opts *opts)
{
    if (out == NULL || a == NULL || fn == NULL ||
        (a->u.sa.sa_family != AF_INET && a->u.sa.sa_family != AF_INET6))
        return -EINVAL;
    slot *me = cur_slot;
    if (cio__loop == NULL || me == NULL)
        return -ESRCH;
    multi *m = me->m;
    cio_server_opts o = {0};
    if (opts)
        o = *opts;
    o.listen_flags |= CIO_REUSEPORT;
    unsigned seq = server_seq++;
    pub *fresh = cio__calloc(1, sizeof *fresh);
    if (fresh == NULL)
        return -ENOMEM;
    /* Under the set's lock, so the first loop's bind picks the port
     * before the others look it up. Binding does not suspend. */
    pthread_mutex_lock(&m->mu);
    pub *p = m->pubs;
    while (p && p->seq != seq)
        p = p->next;
    int rc = cio_server_start(out, p ? &p->addr : a, fn, arg, &o);
    if (rc == 0 && p == NULL) {
        fresh->seq = seq;
        fresh->addr = *cio_server_addr(*out);
        fresh->next = m->pubs;
        m->pubs = fresh;
        fresh = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    cio__free(fresh);
    return rc;
}
