/* Child processes: vfork + exec, socket-pair pipes wrapped in streams, and
 * waiting for exit on a pidfd.
 *
 * Spawning is vfork + exec, as Python's subprocess does it: the child
 * shares the parent's memory until exec, so it starts with every signal
 * blocked (no handler of the parent's may run in it) and makes only
 * system calls. A failed exec (or dup2, chdir) sends its errno back
 * through a close-on-exec pipe, which simply closes when exec succeeds;
 * that also works where vfork is emulated by fork (valgrind), unlike
 * posix_spawn's shared-memory report.
 *
 * Waiting: a pidfd (pidfd_open(2), Linux 5.3) becomes readable when the
 * child exits; each wait opens its own, so that any number of tasks can
 * wait for one child without sharing an fd watch. Where pidfds are not
 * available (older kernels, seccomp filters) the wait polls waitpid with
 * WNOHANG instead. Either way only waitpid(pid) reaps, and the pid is
 * never signalled once it is reaped (it may have been reused). */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_GRACE CIO_SEC
#define POLL_INTERVAL (5 * CIO_MSEC)
#define FEED_CHUNK ((size_t)64 * 1024)

struct cio_process {
    pid_t pid;
    bool reaped;
    int status;   /* wait status once reaped */
    int reap_err; /* -ECHILD if the child was reaped elsewhere */
    int64_t kill_grace;
    cio_stream *io[3]; /* parent's ends of stdin, stdout, stderr pipes */
};

/* Tests: force the waitpid polling used where pidfds are missing. */
void cio__process_force_poll(bool on);
static atomic_bool no_pidfd;

void cio__process_force_poll(bool on)
{
    atomic_store(&no_pidfd, on);
}

/* ---- reaping ------------------------------------------------------------ */

/* 1 once the child is reaped, 0 while it runs, or -ECHILD. */
static int reap(cio_process *p, int options)
{
    if (p->reaped)
        return p->reap_err ? p->reap_err : 1;
    int st;
    pid_t r;
    do
        r = waitpid(p->pid, &st, options);
    while (r == -1 && errno == EINTR);
    if (r == 0)
        return 0;
    p->reaped = true;
    if (r == -1) {
        p->reap_err = -errno;
        return p->reap_err;
    }
    p->status = st;
    return 1;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    if (atomic_load(&no_pidfd))
        return -ENOSYS;
    long fd = syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
    if (fd >= 0)
        return (int)fd;
    if (errno == ENOSYS)
        atomic_store(&no_pidfd, true);
    return -errno;
#else
    (void)pid;
    return -ENOSYS;
#endif
}

/* Suspend until the child may have changed state. */
static int wait_change(cio_process *p)
{
    int fd = open_pidfd(p->pid);
    if (fd < 0)
        return cio_sleep(POLL_INTERVAL); /* any failure: poll instead */
    int rc = cio_fd_wait(fd, CIO_READABLE, CIO_NEVER);
    cio_close(fd);
    return rc < 0 ? rc : 0;
}

/* Wait for the child to exit and reap it: 0, -ECHILD, or the error of
 * the wait (-ECANCELED). */
static int wait_exit(cio_process *p)
{
    for (;;) {
        int rc = reap(p, WNOHANG);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        rc = wait_change(p);
        if (rc < 0)
            return rc;
    }
}

/* wait_exit in a shielded scope that ends at `deadline`. */
static void wait_shielded(cio_process *p, int64_t deadline)
{
    cio_scope sc;
    if (cio_scope_enter(&sc, deadline, CIO_SCOPE_SHIELD) < 0)
        return;
    wait_exit(p);
    cio_scope_exit(&sc);
}

/* The caller was cancelled: SIGTERM, a grace period, SIGKILL, reap. The
 * waits are shielded; only the loop's forced shutdown interrupts them,
 * and then the child is reaped blocking, right after SIGKILL. */
static void terminate(cio_process *p)
{
    if (reap(p, WNOHANG) != 0)
        return;
    kill(p->pid, SIGTERM);
    wait_shielded(p, cio_deadline_after(p->kill_grace));
    /* A child that changed its user cannot be signalled: leave it. */
    if (p->reaped || kill(p->pid, SIGKILL) == -1)
        return;
    wait_shielded(p, CIO_NEVER);
    if (!p->reaped)
        reap(p, 0);
}

/* Finish a wait: the status for a reaped child, and the kill sequence
 * for a cancelled caller. */
static int wait_result(cio_process *p, int rc, int *status)
{
    if (rc == -ECANCELED)
        terminate(p);
    if (p->reaped && p->reap_err == 0 && status)
        *status = p->status;
    return rc;
}

int cio_process_wait(cio_process *p, int *status)
{
    if (p == NULL)
        return -EINVAL;
    int rc = cio_checkpoint();
    if (rc == CIO_ENOTASK)
        return rc;
    if (rc == 0)
        rc = wait_exit(p);
    return wait_result(p, rc, status);
}

int cio_process_try_wait(cio_process *p, int *status)
{
    if (p == NULL)
        return -EINVAL;
    int rc = reap(p, WNOHANG);
    if (rc == 0)
        return -EAGAIN;
    if (rc < 0)
        return rc;
    if (status)
        *status = p->status;
    return 0;
}

int cio_process_kill(cio_process *p, int sig)
{
    if (p == NULL)
        return -EINVAL;
    if (p->reaped)
        return -ESRCH;
    if (kill(p->pid, sig) == -1)
        return -errno;
    return 0;
}

pid_t cio_process_pid(const cio_process *p)
{
    return p ? p->pid : -1;
}

cio_stream *cio_process_stdin(const cio_process *p)
{
    return p ? p->io[0] : NULL;
}

cio_stream *cio_process_stdout(const cio_process *p)
{
    return p ? p->io[1] : NULL;
}

cio_stream *cio_process_stderr(const cio_process *p)
{
    return p ? p->io[2] : NULL;
}

/* ---- free ---------------------------------------------------------------- */

/* Close the pipe streams without suspending: inside a task, a cancelled
 * scope makes the flush in cio_stream_close give up at once, dropping
 * what is still queued for the child. */
static void close_streams(cio_process *p)
{
    cio_scope sc;
    bool scoped = cio__self() && cio_scope_enter(&sc, CIO_NEVER, 0) == 0;
    if (scoped)
        cio_scope_cancel(&sc);
    for (int i = 0; i < 3; i++) {
        cio_stream_close(p->io[i]);
        p->io[i] = NULL;
    }
    if (scoped)
        cio_scope_exit(&sc);
}

void cio_process_free(cio_process *p)
{
    if (p == NULL)
        return;
    if (reap(p, WNOHANG) == 0 && kill(p->pid, SIGKILL) == 0)
        reap(p, 0);
    close_streams(p);
    cio__free(p);
}

/* ---- spawn --------------------------------------------------------------- */

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1u << 2)
#endif

/* Move `fd` above 2, so that the child's dup2 onto 0-2 cannot overwrite
 * it before it is itself duplicated (the parent may run without a stdin,
 * and then the kernel hands out fd 0). Returns the fd or -errno. */
static int fd_above_stdio(int fd)
{
    if (fd > 2)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int err = errno;
    close(fd);
    return nfd == -1 ? -err : nfd;
}

/* A socket pair: the parent's end non-blocking, the child's blocking. */
static int make_pipe(int *child, int *parent)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        return -errno;
    int fl = fcntl(sv[0], F_GETFL);
    if (fl == -1 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) == -1) {
        int err = -errno;
        close(sv[0]);
        close(sv[1]);
        return err;
    }
    int c = fd_above_stdio(sv[1]);
    if (c < 0) {
        close(sv[0]);
        return c;
    }
    *child = c;
    *parent = sv[0];
    return 0;
}

/* The child's descriptor for `mode` (-1: inherit) and the parent's end of
 * a pipe (-1: none). */
static int make_stdio(int mode, int *child, int *parent)
{
    *child = *parent = -1;
    if (mode == CIO_PROC_PIPE)
        return make_pipe(child, parent);
    if (mode != CIO_PROC_DEVNULL)
        return 0;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    fd = fd_above_stdio(fd);
    if (fd < 0)
        return fd;
    *child = fd;
    return 0;
}

/* Make the child's descriptors; the parent's pipe ends go into streams.
 * On failure the caller closes what was made. */
static int open_stdio(cio_process *p, const cio_process_opts *o,
                      int child[3])
{
    int modes[3] = {o ? o->stdin_mode : 0, o ? o->stdout_mode : 0,
                    o ? o->stderr_mode : 0};
    for (int i = 0; i < 3; i++) {
        int parent;
        int rc = make_stdio(modes[i], &child[i], &parent);
        if (rc == 0 && parent >= 0)
            rc = cio_stream_open(&p->io[i], parent, o ? &o->stream : NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* What the child does between vfork and exec, prepared by the parent. */
typedef struct plan {
    const char *file;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int child[3]; /* dup2'ed onto 0, 1, 2; -1: inherit */
    bool err_to_out;
    int errfd; /* write end of the error pipe */
} plan;

static _Noreturn void child_fail(int errfd, int err)
{
    while (write(errfd, &err, sizeof err) == -1 && errno == EINTR)
        ;
    _exit(127);
}

/* Every signal to its default action: handlers end at exec anyway, but
 * ignored signals (SIGPIPE, in a server) would stay ignored. */
static void child_reset_signals(void)
{
    /* The raw system call: glibc's sigaction() refuses the two signals it
     * reserves for itself (32 and 33), which a parent may have ignored. */
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } dfl = {SIG_DFL, 0, NULL, 0}, cur;
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (syscall(SYS_rt_sigaction, sig, NULL, &cur, sizeof cur.mask) ==
                0 &&
            cur.handler != SIG_DFL)
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
    }
}

static _Noreturn void child_exec(const plan *pl)
{
    child_reset_signals();
    for (int i = 0; i < 3; i++)
        if (pl->child[i] >= 0 && dup2(pl->child[i], i) == -1)
            child_fail(pl->errfd, errno);
    if (pl->err_to_out && dup2(1, 2) == -1)
        child_fail(pl->errfd, errno);
    if (pl->cwd && chdir(pl->cwd) == -1)
        child_fail(pl->errfd, errno);
#ifdef SYS_close_range
    /* Descriptors the program left inheritable end at exec too (Linux
     * 5.11; without it, only cio's own are sure to be close-on-exec). */
    syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
#endif
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(pl->file, pl->argv, pl->envp);
    child_fail(pl->errfd, errno);
}

/* 0 once the child has exec'd (the pipe closed), or its -errno. */
static int read_child_error(int fd)
{
    int err;
    ssize_t n;
    do
        n = read(fd, &err, sizeof err);
    while (n == -1 && errno == EINTR);
    if (n == -1)
        return -errno;
    return n == (ssize_t)sizeof err ? -err : 0;
}

static int do_spawn(cio_process *p, plan *pl)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) == -1)
        return -errno;
    pl->errfd = ep[1];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork();
    if (pid == 0)
        child_exec(pl);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(ep[1]);
    int rc = pid == -1 ? -err : read_child_error(ep[0]);
    close(ep[0]);
    if (pid > 0 && rc < 0)
        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
            ;
    if (rc == 0)
        p->pid = pid;
    return rc;
}

static int check_opts(const cio_process_opts *o)
{
    if (o == NULL)
        return 0;
    if (o->stdin_mode < 0 || o->stdin_mode > CIO_PROC_DEVNULL ||
        o->stdout_mode < 0 || o->stdout_mode > CIO_PROC_DEVNULL ||
        o->stderr_mode < 0 || o->stderr_mode > CIO_PROC_STDOUT ||
        o->kill_grace < 0)
        return -EINVAL;
    return 0;
}

int cio_process_spawn(cio_process **out, const char *file,
                      char *const argv[], const cio_process_opts *opts)
{
    if (out == NULL || file == NULL || argv == NULL)
        return -EINVAL;
    int rc = check_opts(opts);
    if (rc < 0)
        return rc;
    if (cio__loop == NULL)
        return CIO_ENOTASK;
    cio_process *p = cio__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->kill_grace = opts && opts->kill_grace ? opts->kill_grace
                                             : DEFAULT_GRACE;
    plan pl = {.file = file, .argv = argv,
               .envp = opts && opts->env ? opts->env : environ,
               .cwd = opts ? opts->cwd : NULL,
               .child = {-1, -1, -1},
               .err_to_out = opts && opts->stderr_mode == CIO_PROC_STDOUT};
    rc = open_stdio(p, opts, pl.child);
    if (rc == 0)
        rc = do_spawn(p, &pl);
    for (int i = 0; i < 3; i++)
        if (pl.child[i] >= 0)
            close(pl.child[i]);
    if (rc < 0) {
        close_streams(p);
        cio__free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- communicate --------------------------------------------------------- */

/* One output stream read to its end into a buffer; what does not fit is
 * read and dropped, and counted. */
typedef struct sink {
    cio_stream *s;
    char *buf;
    size_t size, len;
} sink;

static int read_sink(void *arg)
{
    sink *k = arg;
    char scratch[16 * 1024];
    for (;;) {
        bool room = k->len < k->size;
        ssize_t n = cio_stream_read(k->s, room ? k->buf + k->len : scratch,
                                    room ? k->size - k->len
                                         : sizeof scratch);
        if (n <= 0)
            return (int)n;
        k->len += (size_t)n;
    }
}

typedef struct feed {
    cio_process *p;
    const char *in;
    size_t len;
} feed;

/* Write the input in chunks (so the stream does not copy it all), then
 * close stdin so that the child sees its end. */
static int feed_stdin(void *arg)
{
    feed *f = arg;
    cio_stream *s = f->p->io[0];
    int rc = 0;
    for (size_t off = 0; off < f->len && rc == 0; off += FEED_CHUNK) {
        size_t k = f->len - off < FEED_CHUNK ? f->len - off : FEED_CHUNK;
        rc = cio_stream_write(s, f->in + off, k);
        if (rc == 0)
            rc = cio_stream_drain(s);
    }
    f->p->io[0] = NULL;
    int crc = cio_stream_close(s);
    if (rc == 0)
        rc = crc;
    /* A child may exit without reading all of its input. */
    if (rc == -EPIPE || rc == -ECONNRESET)
        rc = 0;
    return rc;
}

static int run_io(cio_process *p, const cio_process_io *io, sink k[2])
{
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    feed f = {p, io->in, io->in_len};
    if (p->io[0])
        rc = cio_group_spawn(g, NULL, feed_stdin, &f);
    for (int i = 0; i < 2 && rc == 0; i++)
        if (k[i].s)
            rc = cio_group_spawn(g, NULL, read_sink, &k[i]);
    if (rc < 0)
        cio_group_cancel(g);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    return rc < 0 ? rc : jrc;
}

int cio_process_communicate(cio_process *p, cio_process_io *io,
                            int *status)
{
    if (p == NULL || io == NULL || (io->in == NULL && io->in_len > 0) ||
        (io->out == NULL && io->out_size > 0) ||
        (io->err == NULL && io->err_size > 0) ||
        (io->in_len > 0 && p->io[0] == NULL))
        return -EINVAL;
    sink k[2] = {{p->io[1], io->out, io->out_size, 0},
                 {p->io[2], io->err, io->err_size, 0}};
    int rc = cio_checkpoint();
    if (rc == CIO_ENOTASK)
        return rc;
    if (rc == 0)
        rc = run_io(p, io, k);
    io->out_len = k[0].len;
    io->err_len = k[1].len;
    if (rc == 0)
        rc = wait_exit(p);
    rc = wait_result(p, rc, status);
    if (rc == 0 && (k[0].len > k[0].size || k[1].len > k[1].size))
        rc = -EMSGSIZE;
    return rc;
}
