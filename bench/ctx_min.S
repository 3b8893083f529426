/* The smallest useful context switch, as a baseline for cio's: save the
 * callee-saved registers on the current stack, store the stack pointer
 * through `save`, switch to `load`, restore, return.
 * void bench_ctx_swap(void **save, void *load) */
#if defined(__x86_64__)
    .text
    .globl bench_ctx_swap
    .type bench_ctx_swap, @function
    .p2align 4
bench_ctx_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size bench_ctx_swap, .-bench_ctx_swap
    .section .note.GNU-stack, "", @progbits
#elif defined(__aarch64__)
    .text
    .globl bench_ctx_swap
    .type bench_ctx_swap, %function
    .p2align 4
bench_ctx_swap:
    sub sp, sp, #160
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x2, sp
    str x2, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #160
    ret
    .size bench_ctx_swap, .-bench_ctx_swap
    .section .note.GNU-stack, "", %progbits
#else
#error "ctx_min.S: no baseline context switch for this architecture"
#endif
