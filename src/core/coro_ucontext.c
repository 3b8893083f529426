/* Portable context switch on ucontext (makecontext/swapcontext). Slower:
 * glibc's swapcontext makes a sigprocmask system call on every switch. */
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
