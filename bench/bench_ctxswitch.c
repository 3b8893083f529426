/* bench_ctxswitch: the raw cost of one context switch, three ways, timed
 * in turns in one process: cio's cio__ctx_switch (from libcio.a, where
 * the symbol is hidden from the shared library but links statically),
 * the minimal register swap of ctx_min.S, and glibc's swapcontext. Two
 * contexts bounce control back and forth N times per round (argv[1],
 * default 2e6; ucontext N/50); each prints ns per switch, the best of
 * ROUNDS short rounds, which filters out preemption on a shared machine. */
#include <ucontext.h>

#include "bench.h"
#include "internal.h"

#define STACK_BYTES ((size_t)64 * 1024)
#define ROUNDS 15

void bench_ctx_swap(void **save, void *load);

static cio__ctx cio_main, cio_peer;
static void *min_main, *min_peer;
static ucontext_t uc_main, uc_peer;

static void cio_entry(void)
{
    for (;;)
        cio__ctx_switch(&cio_peer, &cio_main);
}

static void min_entry(void)
{
    for (;;)
        bench_ctx_swap(&min_peer, min_main);
}

static void uc_entry(void)
{
    for (;;)
        if (swapcontext(&uc_peer, &uc_main) != 0)
            abort();
}

/* The first frame ctx_min.S pops: zeroed registers, then `entry` as the
 * return address, placed so that `entry` starts with an ABI-aligned
 * stack. `entry` never returns. */
static void *min_make(void *lo, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    void **sp = (void **)(top - 64); /* r15 r14 r13 r12 rbx rbp ret pad */
    memset(sp, 0, 64);
    sp[6] = (void *)entry;
#elif defined(__aarch64__)
    void **sp = (void **)(top - 160); /* x19..x30, d8..d15 */
    memset(sp, 0, 160);
    sp[11] = (void *)entry; /* x30 */
#endif
    return sp;
}

static double time_cio(long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        cio__ctx_switch(&cio_main, &cio_peer);
    return (double)(bench_now() - t0) / (2.0 * (double)n);
}

static double time_min(long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        bench_ctx_swap(&min_main, min_peer);
    return (double)(bench_now() - t0) / (2.0 * (double)n);
}

static double time_uc(long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        if (swapcontext(&uc_main, &uc_peer) != 0)
            return -1;
    return (double)(bench_now() - t0) / (2.0 * (double)n);
}

static double min_of(double a, double b)
{
    return b < a ? b : a;
}

int main(int argc, char **argv)
{
    long n = bench_size(argc, argv, 2000000);
    char *stacks = aligned_alloc(16, 3 * STACK_BYTES);
    if (stacks == NULL) {
        perror("aligned_alloc");
        return 1;
    }
    cio__ctx_make(&cio_peer, stacks, STACK_BYTES, cio_entry);
    min_peer = min_make(stacks + STACK_BYTES, STACK_BYTES, min_entry);
    if (getcontext(&uc_peer) != 0) {
        perror("getcontext");
        return 1;
    }
    uc_peer.uc_stack.ss_sp = stacks + 2 * STACK_BYTES;
    uc_peer.uc_stack.ss_size = STACK_BYTES;
    uc_peer.uc_link = NULL;
    makecontext(&uc_peer, uc_entry, 0);
    double cio = 1e9, min = 1e9, uc = 1e9;
    for (int r = 0; r < ROUNDS; r++) {
        cio = min_of(cio, time_cio(n));
        min = min_of(min, time_min(n));
        double u = time_uc(n / 50 > 0 ? n / 50 : 1);
        if (u < 0) {
            perror("swapcontext");
            return 1;
        }
        uc = min_of(uc, u);
    }
    printf("ctxswitch/cio %.2f ns\n", cio);
    printf("ctxswitch/asm-min %.2f ns\n", min);
    printf("ctxswitch/ucontext %.2f ns\n", uc);
    free(stacks);
    return 0;
}
