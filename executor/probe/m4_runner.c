/* Bare-metal runner for emulated Cortex-M cores (benchmarks/bench_m4.py): runs one model.bin on
 * one input through the public API, op by op, and reports through a block at a fixed RAM
 * address that the emulator fills before the start and reads after the final BKPT:
 *
 *   io->model, io->model_size   model.bin (16-byte aligned)
 *   io->input, io->input_size   input 0's bytes
 *   io->arena, io->arena_size   RAM the runner carves the memory plan from
 *   io->output                  receives the outputs, concatenated in order (io->output_size
 *                               bytes: the capacity in, the bytes written out)
 *   io->op                      the index of the op running (written before each op; the
 *                               emulator attributes executed instructions by it), then
 *                               0xFFFFFFFF
 *   io->status                  THINKER_OK, or the failing call's status
 *   io->n_ops                   the model's op count
 *   io->mem                     the memory the runner gave the executor: (kind, base, size)
 *                               per plan request, io->mem_count of them (written before
 *                               the first op: the emulator checks each op's writes)
 *
 * No startup code: the emulator loads the ELF's segments (zeroing .bss) and sets the stack. */
#include <string.h>

#include "thinker.h"

#define RUNNER_IO_ADDRESS 0x20000000u

typedef struct {
    const void *model;
    uint32_t model_size;
    const void *input;
    uint32_t input_size;
    uint8_t *arena;
    uint32_t arena_size;
    void *output;
    uint32_t output_size;
    volatile uint32_t op;
    volatile uint32_t status;
    uint32_t n_ops;
    uint32_t mem_count;
    uint32_t mem[THINKER_MAX_MEMORY][3];
} runner_io;

void runner_main(void);

static void finish(runner_io *io, thinker_status status) {
    io->op = 0xFFFFFFFFu;
    io->status = (uint32_t)status;
    for (;;) __asm__ volatile("bkpt #0");
}

void runner_main(void) {
    runner_io *io = (runner_io *)RUNNER_IO_ADDRESS;
    thinker_memory_plan plan;
    thinker_memory mem[THINKER_MAX_MEMORY];
    thinker_message msg;
    thinker_model *model = 0;
    thinker_executor *exe = 0;
    const void *out = 0;
    size_t n = 0;
    uintptr_t at = (uintptr_t)io->arena, end = at + io->arena_size;
    uint32_t i, count = 0;
    thinker_status s;
    if ((s = thinker_initialize()) != THINKER_OK) finish(io, s);
    if ((s = thinker_get_memory_plan(io->model, io->model_size, &plan, &msg)) != THINKER_OK) finish(io, s);
    for (i = 0; i < plan.count; i++) {
        uintptr_t a = plan.request[i].alignment ? plan.request[i].alignment : 1u;
        at = (at + a - 1u) & ~(a - 1u);
        mem[i].kind = plan.request[i].kind;
        mem[i].base = (void *)at;
        mem[i].size = plan.request[i].size;
        at += plan.request[i].size;
        if (at > end) finish(io, THINKER_ERR_MEMORY);
        io->mem[i][0] = mem[i].kind;
        io->mem[i][1] = (uint32_t)(uintptr_t)mem[i].base;
        io->mem[i][2] = (uint32_t)mem[i].size;
    }
    io->mem_count = plan.count;
    if ((s = thinker_model_init(&model, io->model, io->model_size, mem, plan.count, &msg)) != THINKER_OK)
        finish(io, s);
    if ((s = thinker_executor_create(&exe, model)) != THINKER_OK) finish(io, s);
    if ((s = thinker_set_input(exe, 0, io->input, io->input_size)) != THINKER_OK) finish(io, s);
    if ((s = thinker_get_op_count(model, &count)) != THINKER_OK) finish(io, s);
    io->n_ops = count;
    for (i = 0; i < count; i++) {
        io->op = i;
        if ((s = thinker_forward_op(exe, i)) != THINKER_OK) finish(io, s);
    }
    io->op = 0xFFFFFFFFu;
    if ((s = thinker_get_output_count(exe, &count)) != THINKER_OK) finish(io, s);
    for (i = 0, at = 0; i < count; i++) { /* every output, one after the other */
        if ((s = thinker_get_output(exe, i, &out, &n)) != THINKER_OK) finish(io, s);
        if (at + n > io->output_size) finish(io, THINKER_ERR_MEMORY);
        memcpy((uint8_t *)io->output + at, out, n);
        at += n;
    }
    io->output_size = (uint32_t)at;
    finish(io, THINKER_OK);
}
