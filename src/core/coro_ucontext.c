/* Portable context switch on ucontext (makecontext/swapcontext). Slower:
 * glibc's swapcontext makes a sigprocmask system call on every switch. */
#include <stdlib.h>

#include "internal.h"

void cio__ctx_make(cio__ctx *c, void *lo, size_t size, void (*entry)(void))
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, entry, 0);
}

void cio__ctx_switch(cio__ctx *from, cio__ctx *to)
{
    /* swapcontext installs the mask saved in `to`, which may predate
     * signals the loop has since blocked (signalfd, SIGPIPE). */
    if (cio__sigmask_known)
        to->uc.uc_sigmask = cio__sigmask;
    swapcontext(&from->uc, &to->uc);
}

/* What cio__ctx_start hands the new context (read before anything else
 * runs on this thread). */
static _Thread_local struct {
    cio__ctx *from, *self;
    void (*entry)(void *);
    void *arg;
} start_args;

static void start_entry(void)
{
    cio__ctx *from = start_args.from, *self = start_args.self;
    void (*entry)(void *) = start_args.entry;
    entry(start_args.arg);
    cio__ctx_switch(self, from);
    abort();
}

void cio__ctx_start(cio__ctx *from, cio__ctx *self, void *lo, size_t size,
                    void (*entry)(void *), void *arg)
{
    cio__ctx_make(self, lo, size, start_entry);
    start_args.from = from;
    start_args.self = self;
    start_args.entry = entry;
    start_args.arg = arg;
    cio__ctx_switch(from, self);
}
