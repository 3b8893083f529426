/* Initial frames for the assembly context switch (coro_<arch>.S). */
#include "internal.h"

void cio__ctx_trampoline(void);

void cio__ctx_make(cio__ctx *c, void *lo, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* After the switch pops r15..rbp and returns into the trampoline, rsp
     * must be 16-aligned so that its call gives the entry a standard
     * frame. Frame from low to high: r15 r14 r13 r12 rbx rbp ret pad. */
    void **sp = (void **)(top - 16 - 8 - 6 * sizeof(void *));
    memset(sp, 0, 6 * sizeof(void *) + 24);
    sp[3] = (void *)entry;                 /* r12 */
    sp[6] = (void *)cio__ctx_trampoline;   /* return address */
    c->sp = sp;
#elif defined(__aarch64__)
    /* Frame: x19..x30 then d8..d15, 160 bytes; sp ends at `top`. */
    void **sp = (void **)(top - 160);
    memset(sp, 0, 160);
    sp[0] = (void *)entry;                 /* x19 */
    sp[11] = (void *)cio__ctx_trampoline;  /* x30 */
    c->sp = sp;
#else
#error "no assembly context switch here: build with CIO_UCONTEXT"
#endif
}
