/* Context switch for AArch64 (AAPCS64): save x19-x30 and d8-d15 on the
 * current stack, store sp, load the other sp, restore, return through the
 * restored link register. */

/* The callee-saved registers in a 160-byte frame: what a saved context's
 * stack pointer points at. */
.macro SAVE_CALLEE
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
.endm
.macro RESTORE_CALLEE
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
.endm

    .text
    .globl cio__ctx_switch
    .hidden cio__ctx_switch
    .type cio__ctx_switch, %function
    .p2align 4
/* void cio__ctx_switch(cio__ctx *from, cio__ctx *to) */
cio__ctx_switch:
    .cfi_startproc
    SAVE_CALLEE
    mov x2, sp
    str x2, [x0]
    ldr x2, [x1]
    mov sp, x2
    RESTORE_CALLEE
    ret
    .cfi_endproc
    .size cio__ctx_switch, .-cio__ctx_switch

/* void cio__ctx_start(cio__ctx *from, cio__ctx *self, void *lo,
 *                     size_t size, void (*entry)(void *), void *arg)
 * Save the current context into `from` exactly as cio__ctx_switch does,
 * move to the top of the stack [lo, lo+size) and call entry(arg). If entry
 * returns, restore `from` (kept in x19, which entry preserves) and return
 * as if switched back to it. `self` is unused here. */
    .globl cio__ctx_start
    .hidden cio__ctx_start
    .type cio__ctx_start, %function
    .p2align 4
cio__ctx_start:
    .cfi_startproc
    SAVE_CALLEE
    mov x6, sp
    str x6, [x0]
    mov x19, x0
    add x6, x2, x3
    and x6, x6, #~15
    mov sp, x6
    .cfi_undefined x30
    mov x29, #0
    mov x0, x5
    blr x4
    ldr x6, [x19]
    mov sp, x6
    RESTORE_CALLEE
    ret
    .cfi_endproc
    .size cio__ctx_start, .-cio__ctx_start

/* First code a new task runs: call the entry function held in x19. */
    .globl cio__ctx_trampoline
    .hidden cio__ctx_trampoline
    .type cio__ctx_trampoline, %function
    .p2align 4
cio__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x29, #0
    mov x30, #0
    blr x19
    brk #0
    .cfi_endproc
    .size cio__ctx_trampoline, .-cio__ctx_trampoline

    .section .note.GNU-stack, "", %progbits
