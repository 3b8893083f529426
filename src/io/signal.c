/* Signals, read from a signalfd by the loop.
 *
 * A caught signal is blocked in the loop's thread (executor threads block
 * every signal), so the process delivers it there and the signalfd reads
 * it. With handle_signals on, cio_run catches SIGINT and SIGTERM: the first
 * cancels main and arms the shutdown grace timer, a second one restores
 * the default action and re-raises, which ends the process. */
#include <stdatomic.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "internal.h"

_Thread_local sigset_t cio__sigmask;
_Thread_local bool cio__sigmask_known;

/* Remember the thread's mask after cio changed it: the ucontext switch
 * restores a context's saved mask, which must not undo cio's blocking. */
static void note_mask(void)
{
    cio__sigmask_known =
        pthread_sigmask(SIG_SETMASK, NULL, &cio__sigmask) == 0;
}

/* Only one loop in the process handles SIGINT/SIGTERM by default. */
static atomic_bool default_owner_taken;

static void die_by(int signo)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    signal(signo, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(signo);
    _exit(128 + signo);
}

static void grace_expired(cio_loop *l, cio__timer *t)
{
    (void)t;
    cio__report("shutdown grace period over: cancelling every task");
    cio__cancel_all(l, true);
}

static void default_action(cio_loop *l, int signo)
{
    if (++l->signalled > 1)
        die_by(signo);
    cio__report("received %s: shutting down (again to force)",
                signo == SIGINT ? "SIGINT" : "SIGTERM");
    if (l->main)
        cio_task_cancel(l->main);
    l->grace_timer.fire = grace_expired;
    cio__loop_update_now(l);
    cio__timer_arm(l, &l->grace_timer, l->now + l->shutdown_grace);
}

static void on_signal(cio__fdw *w, unsigned events)
{
    cio_loop *l = w->data;
    struct signalfd_siginfo si[16];
    ssize_t n;
    while ((n = read(l->sfd, si, sizeof si)) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
            int signo = (int)si[i].ssi_signo;
            if (signo <= 0 || signo >= CIO__NSIG)
                continue;
            if (cio__waitq_grant(&l->sig_waiters[signo], NULL))
                continue;
            if (l->owns_default_signals &&
                (signo == SIGINT || signo == SIGTERM))
                default_action(l, signo);
            else if (signo == SIGUSR1 && l->debug)
                cio_task_dump(2);
            else
                l->sig_pending[signo]++;
        }
    }
    if (l->bops->watch(l->backend, &l->swatch) < 0)
        cio__report("cannot watch the signalfd");
}

/* Start catching `signo` in loop `l`. */
static int catch_signal(cio_loop *l, int signo)
{
    if (sigismember(&l->caught, signo) == 1)
        return 0;
    sigset_t set = l->caught;
    sigaddset(&set, signo);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    int rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (rc != 0)
        return -rc;
    note_mask();
    int fd = signalfd(l->sfd, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd == -1)
        return -errno;
    l->caught = set;
    if (l->sfd < 0) {
        l->sfd = fd;
        l->swatch = (cio__fdw){.ready = on_signal, .fd = fd,
                               .events = CIO_READABLE, .data = l,
                               .internal = true};
        rc = l->bops->watch(l->backend, &l->swatch);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cio__signals_init(cio_loop *l, bool handle_default)
{
    sigemptyset(&l->caught);
    /* SIGPIPE is blocked in the loop thread: a write to a closed pipe
     * returns -EPIPE instead of killing the process (sockets use
     * MSG_NOSIGNAL; pipe writes take the pending signal back). */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &l->old_mask);
    note_mask();
    l->sig_inited = true;
    /* Debug mode: SIGUSR1 prints the task tree. */
    if (l->debug) {
        struct sigaction cur;
        if (sigaction(SIGUSR1, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL)
            catch_signal(l, SIGUSR1);
    }
    if (!handle_default || atomic_exchange(&default_owner_taken, true))
        return 0;
    l->owns_default_signals = true;
    /* Leave signals the program handles itself alone. */
    struct sigaction sa;
    int rc = 0;
    if (sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        rc = catch_signal(l, SIGINT);
    if (rc == 0 && sigaction(SIGTERM, NULL, &sa) == 0 &&
        sa.sa_handler == SIG_DFL)
        rc = catch_signal(l, SIGTERM);
    return rc;
}

void cio__signals_fini(cio_loop *l)
{
    if (l->sfd >= 0) {
        cio__timer_disarm(l, &l->grace_timer);
        l->bops->closing(l->backend, l->sfd);
        close(l->sfd);
        l->sfd = -1;
    }
    if (l->sig_inited)
        pthread_sigmask(SIG_SETMASK, &l->old_mask, NULL);
    cio__sigmask_known = false;
    l->sig_inited = false;
    if (l->owns_default_signals) {
        l->owns_default_signals = false;
        atomic_store(&default_owner_taken, false);
    }
}

int cio_signal_wait(int signo)
{
    CIO__SELF_OR_RETURN(t);
    if (signo <= 0 || signo >= CIO__NSIG || signo == SIGKILL ||
        signo == SIGSTOP)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    cio_loop *l = t->loop;
    rc = catch_signal(l, signo);
    if (rc < 0)
        return rc;
    if (l->sig_pending[signo] > 0) {
        l->sig_pending[signo]--;
        return 0;
    }
    /* A signal comes from outside: waiting for one is not a deadlock. */
    cio__waiter w = {0};
    l->external++;
    rc = cio__park_q(t, &l->sig_waiters[signo], &w, CIO__W_SIGNAL,
                     (const void *)(intptr_t)signo, CIO_NEVER, 0);
    l->external--;
    return rc;
}
