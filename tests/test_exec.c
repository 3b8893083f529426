/* The executor, calls between threads, and signals. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static int on_thread(void *arg)
{
    pthread_t *loop_thread = arg;
    return pthread_equal(*loop_thread, pthread_self()) ? -EPROTO : 42;
}

TEST(exec_to_thread_runs_elsewhere_and_returns_result)
{
    pthread_t self = pthread_self();
    ASSERT_EQ(42, cio_to_thread(on_thread, &self));
    ASSERT_EQ(-EINVAL, cio_to_thread(NULL, NULL));
    return 0;
}

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    atomic_int running, max_running, ran;
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = false;
    atomic_init(&g->running, 0);
    atomic_init(&g->max_running, 0);
    atomic_init(&g->ran, 0);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A job that counts concurrency and blocks until the gate opens. */
static int gated_job(void *arg)
{
    gate *g = arg;
    int now = atomic_fetch_add(&g->running, 1) + 1;
    int max = atomic_load(&g->max_running);
    while (now > max && !atomic_compare_exchange_weak(&g->max_running, &max,
                                                      now))
        ;
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_sub(&g->running, 1);
    atomic_fetch_add(&g->ran, 1);
    return 1;
}

typedef struct pool_job {
    cio_pool *pool;
    gate *g;
} pool_job;

static int submit(void *arg)
{
    pool_job *j = arg;
    return cio_to_thread_pool(j->pool, gated_job, j->g);
}

static int open_later(void *arg)
{
    ASSERT_OK(cio_sleep(50 * CIO_MSEC));
    gate_open(arg);
    return 0;
}

TEST_REALTIME(exec_pool_bounds_concurrency)
{
    gate g;
    gate_init(&g);
    cio_pool *p;
    ASSERT_OK(cio_pool_new(&p, 3, 0));
    enum { N = 20 };
    pool_job jobs[N];
    cio_call calls[N + 1];
    for (int i = 0; i < N; i++) {
        jobs[i] = (pool_job){p, &g};
        calls[i] = (cio_call){submit, &jobs[i], 0};
    }
    calls[N] = (cio_call){open_later, &g, 0};
    ASSERT_OK(cio_gather(calls, N + 1, 0));
    for (int i = 0; i < N; i++)
        ASSERT_EQ(1, calls[i].result);
    ASSERT_EQ(N, atomic_load(&g.ran));
    ASSERT_EQ(3, atomic_load(&g.max_running));
    ASSERT_OK(cio_pool_free(p));
    return 0;
}

static int never_runs(void *arg)
{
    atomic_int *ran = arg;
    atomic_fetch_add(ran, 1);
    return 0;
}

typedef struct queued_job {
    cio_pool *pool;
    atomic_int *ran;
} queued_job;

static int submit_never(void *arg)
{
    queued_job *q = arg;
    return cio_to_thread_pool(q->pool, never_runs, q->ran);
}

TEST_REALTIME(exec_cancel_removes_queued_job)
{
    gate g;
    gate_init(&g);
    cio_pool *p;
    ASSERT_OK(cio_pool_new(&p, 1, 0));
    pool_job busy = {p, &g};
    cio_task *a, *b;
    ASSERT_OK(cio_spawn(&a, submit, &busy));
    ASSERT_OK(cio_yield());
    atomic_int ran;
    atomic_init(&ran, 0);
    queued_job q = {p, &ran};
    ASSERT_OK(cio_spawn(&b, submit_never, &q));
    ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    ASSERT_OK(cio_task_cancel(b));
    ASSERT_EQ(-ECANCELED, cio_task_join(b));
    gate_open(&g);
    ASSERT_EQ(1, cio_task_join(a));
    ASSERT_EQ(0, atomic_load(&ran));
    cio_task_free(a);
    cio_task_free(b);
    ASSERT_OK(cio_pool_free(p));
    return 0;
}

static int polls_cancel(void *arg)
{
    (void)arg;
    while (!cio_thread_cancelled())
        usleep(1000);
    return -ECANCELED;
}

static int run_polling_job(void *arg)
{
    (void)arg;
    return cio_to_thread(polls_cancel, NULL);
}

TEST_REALTIME(exec_running_job_sees_cancellation)
{
    ASSERT_TRUE(!cio_thread_cancelled());
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, run_polling_job, NULL));
    ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    ASSERT_OK(cio_task_cancel(t));
    /* The task waited for its job, which stopped on its own. */
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    return 0;
}

static int files_job(void *arg)
{
    (void)arg;
    return 7;
}

TEST_REALTIME(exec_bulkheads_keep_pools_apart)
{
    gate g;
    gate_init(&g);
    /* Saturate the default pool with blocked jobs... */
    cio_pool *def = cio_pool_builtin(CIO_POOL_DEFAULT);
    ASSERT_TRUE(def != NULL);
    enum { N = 64 };
    pool_job jobs[N];
    cio_group *grp;
    ASSERT_OK(cio_group_new(&grp, 0));
    for (int i = 0; i < N; i++) {
        jobs[i] = (pool_job){def, &g};
        ASSERT_OK(cio_group_spawn(grp, NULL, submit, &jobs[i]));
    }
    ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    /* ...the files pool still answers at once. */
    ASSERT_EQ(7, cio_to_thread_pool(cio_pool_builtin(CIO_POOL_FILES),
                                    files_job, NULL));
    ASSERT_TRUE(atomic_load(&g.ran) == 0);
    gate_open(&g);
    ASSERT_OK(cio_group_join(grp));
    cio_group_free(grp);
    ASSERT_EQ(N, atomic_load(&g.ran));
    ASSERT_TRUE(cio_pool_builtin(99) == NULL);
    return 0;
}

typedef struct foreign {
    cio_loop *loop;
    int rc, result;
    cio_loop *seen;
} foreign;

static int on_loop(void *arg)
{
    foreign *f = arg;
    f->seen = cio_loop_current();
    ASSERT_OK(cio_sleep(CIO_MSEC));
    return 99;
}

static void *foreign_thread(void *arg)
{
    foreign *f = arg;
    f->rc = cio_run_threadsafe(f->loop, on_loop, f, &f->result);
    return NULL;
}

static int join_thread(void *arg)
{
    return pthread_join(*(pthread_t *)arg, NULL) == 0 ? 0 : -EIO;
}

TEST_REALTIME(exec_run_threadsafe_from_a_foreign_thread)
{
    foreign f = {cio_loop_current(), -1, 0, NULL};
    ASSERT_EQ(-EDEADLK, cio_run_threadsafe(f.loop, on_loop, &f, NULL));
    pthread_t th;
    ASSERT_EQ(0, pthread_create(&th, NULL, foreign_thread, &f));
    /* Wait for the thread without blocking the loop. */
    ASSERT_OK(cio_to_thread(join_thread, &th));
    ASSERT_OK(f.rc);
    ASSERT_EQ(99, f.result);
    ASSERT_TRUE(f.seen == f.loop);
    return 0;
}

static void set_event(void *arg)
{
    cio_event_set(arg);
}

typedef struct poster {
    cio_loop *loop;
    cio_event *ev;
} poster;

static int post_from_thread(void *arg)
{
    poster *p = arg;
    return cio_call_soon_threadsafe(p->loop, set_event, p->ev);
}

TEST_REALTIME(exec_call_soon_threadsafe_runs_on_the_loop)
{
    cio_event ev = CIO_EVENT_INIT;
    poster p = {cio_loop_current(), &ev};
    ASSERT_OK(cio_to_thread(post_from_thread, &p));
    ASSERT_OK(cio_event_wait(&ev));
    ASSERT_EQ(-EINVAL, cio_call_soon_threadsafe(NULL, set_event, &ev));
    return 0;
}

static int raise_later(void *arg)
{
    int signo = *(int *)arg;
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    return raise(signo) == 0 ? 0 : -errno;
}

TEST_REALTIME(exec_signal_wait_and_pending_count)
{
    int sig = SIGUSR1;
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, raise_later, &sig));
    ASSERT_OK(cio_signal_wait(SIGUSR1));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    /* Two deliveries with nobody waiting are both kept (each is read
     * before the next is sent: the kernel merges pending ones). */
    ASSERT_EQ(0, raise(SIGUSR1));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_EQ(0, raise(SIGUSR1));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_signal_wait(SIGUSR1));
    ASSERT_OK(cio_signal_wait(SIGUSR1));
    ASSERT_EQ(-EINVAL, cio_signal_wait(SIGKILL));
    ASSERT_EQ(-EINVAL, cio_signal_wait(0));
    return 0;
}

/* Run tests/helpers/sigchild MODE, send it `nsig` SIGINTs once it is
 * ready, and return its wait status; its output goes to `out`. */
static int sigchild(const char *mode, int nsig, char *out, size_t size)
{
    int p[2];
    if (pipe(p) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execl(CIO_SIGCHILD, "sigchild", mode, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(p[0], out + len, size - 1 - len)) > 0) {
        len += (size_t)n;
        out[len] = '\0';
        if (nsig > 0 && strstr(out, "ready")) {
            for (int i = 0; i < nsig; i++) {
                usleep(20000);
                kill(pid, SIGINT);
            }
            nsig = 0;
        }
    }
    out[len] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

TEST_REALTIME(exec_sigint_cancels_main)
{
    char out[256];
    int st = sigchild("cancel", 1, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(3, WEXITSTATUS(st));
    ASSERT_TRUE(strstr(out, "sleep ECANCELED") != NULL);
    return 0;
}

TEST_REALTIME(exec_second_sigint_forces_exit)
{
    char out[256];
    int st = sigchild("stubborn", 2, out, sizeof out);
    ASSERT_TRUE(WIFSIGNALED(st));
    ASSERT_EQ(SIGINT, WTERMSIG(st));
    return 0;
}

TEST_REALTIME(exec_shutdown_grace_then_everything_cancelled)
{
    char out[256];
    int st = sigchild("grace", 1, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(5, WEXITSTATUS(st));
    ASSERT_TRUE(strstr(out, "shielded sleep ECANCELED") != NULL);
    return 0;
}

TEST_REALTIME(exec_signal_wait_takes_sigint_from_default_handling)
{
    char out[256];
    int st = sigchild("wait", 1, out, sizeof out);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(4, WEXITSTATUS(st));
    return 0;
}
