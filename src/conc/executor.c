/* The executor: thread pools for blocking work, and calls between threads
 * and loops.
 *
 * A job lives on the stack of the task that waits for it. A worker runs it
 * and posts its completion back to the loop (cio__remote_post), which
 * wakes the task. A task cancelled while its job is queued takes the job
 * out of the queue; once a worker has started it, the task keeps waiting
 * (its arg may point into the task's stack) and the job can poll
 * cio_thread_cancelled(). */
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct job {
    cio__remote done; /* posted to the loop when finished */
    struct job *prev, *next;
    cio_task_fn fn;
    void *arg;
    int result;
    int state; /* under the pool's lock */
    atomic_bool cancelled;
    cio_task *task;
    cio_pool *pool;
} job;

struct cio_pool {
    cio_loop *loop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    size_t queued, max_queue;
    unsigned threads, max_threads, idle, running;
    pthread_t *tids;
    bool stopping;
};

static _Thread_local job *current_job;

bool cio_thread_cancelled(void)
{
    job *j = current_job;
    return j && atomic_load(&j->cancelled);
}

static void *worker(void *arg)
{
    cio_pool *p = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (p->head == NULL)
            break;
        job *j = p->head;
        p->head = j->next;
        if (p->head)
            p->head->prev = NULL;
        else
            p->tail = NULL;
        p->queued--;
        j->state = JOB_RUNNING;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        current_job = j;
        j->result = j->fn(j->arg);
        current_job = NULL;
        pthread_mutex_lock(&p->mu);
        j->state = JOB_DONE;
        p->running--;
        cio__remote_post(p->loop, &j->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void job_done(cio__remote *r)
{
    job *j = CIO__CONTAINER(r, job, done);
    j->pool->loop->external--;
    cio__wake(j->task, 0);
}

static void job_drop(cio__remote *r)
{
    (void)r; /* the loop outlives every job: cannot happen */
}

/* Interrupting a task whose job has started is not possible: ask the job
 * to stop and keep waiting. */
static bool job_unlink(cio_task *t)
{
    job *j = (job *)t->wait_obj;
    cio_pool *p = j->pool;
    bool removed = false;
    pthread_mutex_lock(&p->mu);
    if (j->state == JOB_QUEUED) {
        if (j->prev)
            j->prev->next = j->next;
        else
            p->head = j->next;
        if (j->next)
            j->next->prev = j->prev;
        else
            p->tail = j->prev;
        p->queued--;
        removed = true;
    } else {
        atomic_store(&j->cancelled, true);
    }
    pthread_mutex_unlock(&p->mu);
    if (removed)
        p->loop->external--;
    return removed;
}

static int start_thread(cio_pool *p)
{
    if (p->tids == NULL) {
        p->tids = cio__calloc(p->max_threads, sizeof *p->tids);
        if (p->tids == NULL)
            return -ENOMEM;
    }
    int rc = pthread_create(&p->tids[p->threads], NULL, worker, p);
    if (rc != 0)
        return -rc;
    p->threads++;
    return 0;
}

int cio_to_thread_pool(cio_pool *p, cio_task_fn fn, void *arg)
{
    CIO__SELF_OR_RETURN(t);
    if (p == NULL || fn == NULL || p->loop != t->loop)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    job j = {.fn = fn, .arg = arg, .task = t, .pool = p,
             .state = JOB_QUEUED};
    j.done.run = job_done;
    j.done.drop = job_drop;
    pthread_mutex_lock(&p->mu);
    if (p->max_queue && p->queued >= p->max_queue) {
        pthread_mutex_unlock(&p->mu);
        return -EAGAIN;
    }
    j.prev = p->tail;
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    p->queued++;
    if (p->idle == 0 && p->threads < p->max_threads)
        start_thread(p); /* with no thread at all, the job waits for one */
    if (p->threads == 0) {
        /* No worker could be started: take the job back. */
        p->tail = j.prev;
        if (p->tail)
            p->tail->next = NULL;
        else
            p->head = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        return -EAGAIN;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    t->loop->external++;
    t->unlink = NULL;
    t->wait_q = NULL;
    t->unlink_try = job_unlink;
    rc = cio__park(t, CIO__W_THREAD, &j, CIO_NEVER, 0);
    t->unlink_try = NULL;
    return rc < 0 ? rc : j.result;
}

int cio_to_thread(cio_task_fn fn, void *arg)
{
    return cio_to_thread_pool(cio_pool_builtin(CIO_POOL_DEFAULT), fn, arg);
}

static int pool_create(cio_loop *l, cio_pool **out, unsigned threads,
                       size_t max_queue)
{
    cio_pool *p = cio__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->loop = l;
    p->max_threads = threads;
    p->max_queue = max_queue;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    *out = p;
    return 0;
}

int cio_pool_new(cio_pool **out, unsigned threads, size_t max_queue)
{
    if (out == NULL || threads == 0 || threads > 1024)
        return -EINVAL;
    if (cio__loop == NULL)
        return CIO_ENOTASK;
    return pool_create(cio__loop, out, threads, max_queue);
}

static void pool_stop(cio_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->threads; i++)
        pthread_join(p->tids[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    cio__free(p->tids);
    cio__free(p);
}

int cio_pool_free(cio_pool *p)
{
    if (p == NULL)
        return 0;
    pthread_mutex_lock(&p->mu);
    bool busy = p->queued > 0 || p->running > 0;
    pthread_mutex_unlock(&p->mu);
    if (busy)
        return -EBUSY;
    pool_stop(p);
    return 0;
}

cio_pool *cio_pool_builtin(int kind)
{
    cio_loop *l = cio__loop;
    if (l == NULL || kind < CIO_POOL_DEFAULT || kind > CIO_POOL_DNS)
        return NULL;
    if (l->pools[kind] == NULL) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned n = kind == CIO_POOL_DEFAULT
                         ? (unsigned)(cpus > 2 ? 2 * cpus : 4)
                         : 4;
        if (pool_create(l, &l->pools[kind], n, 0) < 0)
            return NULL;
    }
    return l->pools[kind];
}

void cio__pools_fini(cio_loop *l)
{
    for (int i = 0; i < 3; i++)
        if (l->pools[i]) {
            pool_stop(l->pools[i]);
            l->pools[i] = NULL;
        }
}

/* ---- between threads ----------------------------------------------------- */

cio_loop *cio_loop_current(void)
{
    return cio__loop;
}

typedef struct soon {
    cio__remote r;
    void (*fn)(void *arg);
    void *arg;
} soon;

static void soon_run(cio__remote *r)
{
    soon *s = (soon *)r;
    s->fn(s->arg);
    cio__free(s);
}

static void soon_drop(cio__remote *r)
{
    cio__free(r);
}

int cio_call_soon_threadsafe(cio_loop *l, void (*fn)(void *arg), void *arg)
{
    if (l == NULL || fn == NULL)
        return -EINVAL;
    soon *s = cio__malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    *s = (soon){.r = {.run = soon_run, .drop = soon_drop}, .fn = fn,
                .arg = arg};
    int rc = cio__remote_post(l, &s->r);
    if (rc < 0)
        cio__free(s);
    return rc;
}

typedef struct sync_call {
    cio__remote r;
    cio_task_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status, result;
} sync_call;

static void sync_finish(sync_call *c, int status, int result)
{
    pthread_mutex_lock(&c->mu);
    c->status = status;
    c->result = result;
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int sync_task(void *arg)
{
    sync_call *c = arg;
    sync_finish(c, 0, c->fn(c->arg));
    return 0;
}

static void sync_run(cio__remote *r)
{
    sync_call *c = (sync_call *)r;
    cio_spawn_opts o = {.name = "threadsafe"};
    int rc = cio__spawn(NULL, NULL, sync_task, c, &o, NULL);
    if (rc < 0)
        sync_finish(c, rc, 0);
}

static void sync_drop(cio__remote *r)
{
    sync_finish((sync_call *)r, -ESHUTDOWN, 0);
}

int cio_run_threadsafe(cio_loop *l, cio_task_fn fn, void *arg, int *result)
{
    if (l == NULL || fn == NULL)
        return -EINVAL;
    if (cio__loop == l)
        return -EDEADLK;
    sync_call c = {.r = {.run = sync_run, .drop = sync_drop}, .fn = fn,
                   .arg = arg};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    int rc = cio__remote_post(l, &c.r);
    if (rc == 0) {
        pthread_mutex_lock(&c.mu);
        while (!c.done)
            pthread_cond_wait(&c.cv, &c.mu);
        pthread_mutex_unlock(&c.mu);
        rc = c.status;
        if (rc == 0 && result)
            *result = c.result;
    }
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    return rc;
}
