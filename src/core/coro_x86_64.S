/* Context switch for x86_64 System V: save the callee-saved registers on
 * the current stack, store the stack pointer, load the other one, restore.
 * The floating-point control words are not switched: they are per thread
 * and cio tasks do not change them. */

/* The callee-saved registers, pushed in this order: the frame a saved
 * context's stack pointer points at. */
.macro SAVE_CALLEE
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
.endm
.macro RESTORE_CALLEE
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
.endm

    .text
    .globl cio__ctx_switch
    .hidden cio__ctx_switch
    .type cio__ctx_switch, @function
    .p2align 4
/* void cio__ctx_switch(cio__ctx *from, cio__ctx *to) */
cio__ctx_switch:
    .cfi_startproc
    SAVE_CALLEE
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    RESTORE_CALLEE
    ret
    .cfi_endproc
    .size cio__ctx_switch, .-cio__ctx_switch

/* void cio__ctx_start(cio__ctx *from, cio__ctx *self, void *lo,
 *                     size_t size, void (*entry)(void *), void *arg)
 * Save the current context into `from` exactly as cio__ctx_switch does,
 * move to the top of the stack [lo, lo+size) and call entry(arg). If entry
 * returns, restore `from` (kept in rbx, which entry preserves) and return
 * as if switched back to it; the calls and returns stay paired, so the
 * CPU predicts them. `self` is unused here. */
    .globl cio__ctx_start
    .hidden cio__ctx_start
    .type cio__ctx_start, @function
    .p2align 4
cio__ctx_start:
    .cfi_startproc
    SAVE_CALLEE
    movq %rsp, (%rdi)
    movq %rdi, %rbx
    leaq (%rdx,%rcx), %rsp
    andq $-16, %rsp
    .cfi_undefined rip
    xorl %ebp, %ebp
    movq %r9, %rdi
    call *%r8
    movq (%rbx), %rsp
    RESTORE_CALLEE
    ret
    .cfi_endproc
    .size cio__ctx_start, .-cio__ctx_start

/* First code a new task runs: call the entry function held in r12. The
 * entry never returns; the undefined return address ends backtraces. */
    .globl cio__ctx_trampoline
    .hidden cio__ctx_trampoline
    .type cio__ctx_trampoline, @function
    .p2align 4
cio__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    call *%r12
    ud2
    .cfi_endproc
    .size cio__ctx_trampoline, .-cio__ctx_trampoline

    .section .note.GNU-stack, "", @progbits
