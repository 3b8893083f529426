/* Debug helpers: the task tree, and a readable report when a task runs
 * into its stack's guard page. */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

bool cio__symbolize(uintptr_t addr, char *buf, size_t size)
{
    Dl_info di;
    if (dladdr((void *)addr, &di) == 0 || di.dli_fname == NULL) {
        snprintf(buf, size, "%#lx", (unsigned long)addr);
        return false;
    }
    const char *file = strrchr(di.dli_fname, '/');
    file = file ? file + 1 : di.dli_fname;
    if (di.dli_sname && di.dli_saddr)
        snprintf(buf, size, "%s(%s+0x%lx)", file, di.dli_sname,
                 (unsigned long)(addr - (uintptr_t)di.dli_saddr));
    else
        snprintf(buf, size, "%s(+0x%lx)", file,
                 (unsigned long)(addr - (uintptr_t)di.dli_fbase));
    return true;
}

static const char *state_name(int state)
{
    switch (state) {
    case CIO__RUNNABLE:
        return "runnable";
    case CIO__RUNNING:
        return "running";
    case CIO__WAITING:
        return "waiting";
    default:
        return "done";
    }
}

typedef struct dump {
    int fd;
    int rc;
    int count;
} dump;

static void out(dump *d, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || d->rc < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (write(d->fd, line, (size_t)n) < 0)
        d->rc = -errno;
}

static void dump_task(dump *d, cio_task *t, int depth);

static void dump_groups(dump *d, cio_task *t, int depth)
{
    for (cio_group *g = t->groups; g; g = cio__group_next_open(g)) {
        out(d, "%*sgroup %p\n", 2 * depth, "", (void *)g);
        for (cio_task *c = cio__group_children(g); c; c = c->g_next)
            if (c->state != CIO__DONE)
                dump_task(d, c, depth + 1);
    }
}

static void dump_task(dump *d, cio_task *t, int depth)
{
    cio_loop *l = t->loop;
    d->count++;
    out(d, "%*stask %llu \"%s\" %s", 2 * depth, "", (unsigned long long)t->id,
        cio_task_name(t), state_name(t->state));
    if (t->state == CIO__WAITING) {
        out(d, " on %s %p", cio__wait_kind_name(t->wait_kind), t->wait_obj);
        if (t->timer.idx)
            out(d, ", wakes in %.3f s",
                (double)(t->timer.when - l->now) / CIO_SEC);
    }
    char site[160];
    cio__symbolize((uintptr_t)t->spawn_site, site, sizeof site);
    out(d, ", age %.3f s, spawned at %s\n",
        (double)(l->now - t->spawned_at) / CIO_SEC, site);
    dump_groups(d, t, depth + 1);
}

int cio_task_dump(int fd)
{
    cio_loop *l = cio__loop;
    if (l == NULL)
        return -ESRCH;
    cio__loop_update_now(l);
    dump d = {.fd = fd};
    out(&d, "cio tasks (%llu alive):\n",
        (unsigned long long)l->stats.tasks_alive);
    /* Roots: tasks no group owns; group children appear under them. */
    for (cio_task *t = l->tasks; t; t = t->all_next)
        if (t->group == NULL && t->state != CIO__DONE)
            dump_task(&d, t, 1);
    return d.rc < 0 ? d.rc : d.count;
}

/* ---- stack overflow report ----------------------------------------------- */

static char altstack[16384];

static void put(const char *s)
{
    if (write(2, s, strlen(s)) < 0)
        return;
}

/* SIGSEGV on the running task's guard page: say so by name, then let the
 * default action end the process. Only async-signal-safe calls here. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    cio_loop *l = cio__loop;
    cio_task *t = l ? l->current : NULL;
    size_t pg = cio__page_size();
    char *addr = si->si_addr, *lo = t ? t->stack.lo : NULL;
    if (t && addr < lo && addr >= lo - pg) {
        char num[32];
        size_t n = t->stack.size, i = sizeof num - 1;
        num[i] = '\0';
        do
            num[--i] = (char)('0' + n % 10);
        while ((n /= 10) > 0);
        put("cio: stack overflow in task ");
        put(t->name[0] ? t->name : "(unnamed)");
        put(" (stack ");
        put(num + i);
        put(" bytes)\n");
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void cio__debug_init(cio_loop *l)
{
    if (!l->debug)
        return;
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {.sa_sigaction = on_segv,
                           .sa_flags = SA_SIGINFO | SA_ONSTACK};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* ---- descriptors left open at loop close (debug mode) -------------------- */

void cio__track(cio__tracked *tr, const char *kind, int fd)
{
    cio_loop *l = cio__loop;
    if (l == NULL || !l->debug || tr->on)
        return;
    cio_task *t = l->current;
    *tr = (cio__tracked){.kind = kind, .fd = fd, .on = true};
    if (t) {
        tr->task_id = t->id;
        tr->site = t->spawn_site;
        snprintf(tr->task, sizeof tr->task, "%s", cio_task_name(t));
    }
    tr->next = l->tracked;
    if (l->tracked)
        l->tracked->prev = tr;
    l->tracked = tr;
}

void cio__untrack(cio__tracked *tr)
{
    cio_loop *l = cio__loop;
    if (l == NULL || !tr->on)
        return;
    if (tr->prev)
        tr->prev->next = tr->next;
    else
        l->tracked = tr->next;
    if (tr->next)
        tr->next->prev = tr->prev;
    tr->prev = tr->next = NULL;
    tr->on = false;
}

void cio__report_tracked(cio_loop *l)
{
    for (cio__tracked *tr = l->tracked; tr; tr = tr->next) {
        char site[160];
        cio__symbolize((uintptr_t)tr->site, site, sizeof site);
        cio__report("%s (fd %d) opened by task %s (id %llu, spawned at %s) "
                    "is still open at loop close",
                    tr->kind, tr->fd, tr->task[0] ? tr->task : "(none)",
                    (unsigned long long)tr->task_id, site);
    }
    l->tracked = NULL;
}
