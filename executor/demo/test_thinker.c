/* test_thinker: run a model.bin on raw input files with the C executor (the host simulator).
 *
 *   test_thinker [--crc] [--time] [--bench N] model.bin in1.bin ... out1.bin ...
 *   test_thinker --zeros [--crc] model.bin        (all-zero inputs, no files: for fuzzing)
 *
 * Inputs and outputs are raw little-endian C-order bytes of exactly one sample; sizes are
 * checked. --crc prints one line per tensor, identical to `thinker run --crc`:
 *   <index> <crc32 hex> <dtype> <dims> <name>
 * (graph inputs first, then every op output in execution order). --time prints a per-op
 * table; --bench N times N forwards. Exit status 0 on success, 1 on any error.
 *
 * This demo is a hosted program (stdio, malloc); the executor library itself is not. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thinker.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fail(const char *what, thinker_status s, const char *detail) {
    fprintf(stderr, "error: %s: %s%s%s\n", what, thinker_status_name(s), detail && *detail ? ": " : "",
            detail ? detail : "");
    return 1;
}

/* whole file into a 16-byte aligned buffer */
static void *read_file(const char *path, size_t *size, void **block) {
    FILE *f = fopen(path, "rb");
    long n;
    unsigned char *base;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    *block = malloc((size_t)n + 16);
    if (!*block) {
        fclose(f);
        return NULL;
    }
    base = (unsigned char *)(((size_t)*block + 15) & ~(size_t)15);
    if (fread(base, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(*block);
        return NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return base;
}

static const char *dtype_name(uint32_t dtype) {
    static const char *const names[] = {"?", "int8", "uint8", "int16", "int32", "int64", "float32", "int4"};
    return dtype < 8 ? names[dtype] : "?";
}

static void print_crc(unsigned index, const thinker_tensor_info *info, const void *data) {
    char dims[96] = "scalar";
    size_t n = 0;
    uint32_t d;
    for (d = 0; d < info->ndim; d++)
        n += (size_t)snprintf(dims + n, sizeof dims - n, d ? "x%u" : "%u", (unsigned)info->dims[d]);
    printf("%u %08x %s %s %s\n", index, (unsigned)thinker_crc32(0, data, info->nbytes), dtype_name(info->dtype),
           dims, info->name);
}

int main(int argc, char **argv) {
    int crc = 0, timing = 0, bench = 0, zeros = 0, arg = 1, rc = 0;
    size_t size, nbytes;
    void *model_block = NULL, *bin;
    void *blocks[THINKER_MAX_MEMORY] = {0};
    thinker_memory_plan plan;
    thinker_memory mem[THINKER_MAX_MEMORY];
    thinker_message msg;
    thinker_model *model;
    thinker_executor *exe;
    thinker_status s;
    uint32_t n_in, n_out, n_ops, i, k;
    unsigned line = 0;
    double *op_ms = NULL;

    for (; arg < argc && strncmp(argv[arg], "--", 2) == 0; arg++) {
        if (strcmp(argv[arg], "--crc") == 0) crc = 1;
        else if (strcmp(argv[arg], "--time") == 0) timing = 1;
        else if (strcmp(argv[arg], "--zeros") == 0) zeros = 1;
        else if (strcmp(argv[arg], "--bench") == 0 && arg + 1 < argc) bench = atoi(argv[++arg]);
        else {
            fprintf(stderr, "error: unknown option %s\n", argv[arg]);
            return 1;
        }
    }
    if (arg >= argc) {
        fprintf(stderr, "usage: test_thinker [--crc] [--time] [--bench N] model.bin in1.bin ... out1.bin ...\n");
        return 1;
    }
    bin = read_file(argv[arg], &size, &model_block);
    if (!bin) {
        fprintf(stderr, "error: cannot read %s\n", argv[arg]);
        return 1;
    }
    if ((s = thinker_initialize()) != THINKER_OK) return fail("initialize", s, "");
    s = thinker_get_memory_plan(bin, size, &plan, &msg);
    if (s != THINKER_OK) {
        rc = fail(argv[arg], s, msg.text);
        goto done;
    }
    for (i = 0; i < plan.count; i++) { /* the caller owns every buffer */
        size_t align = plan.request[i].alignment < 16 ? 16 : plan.request[i].alignment;
        blocks[i] = calloc(1, plan.request[i].size + align);
        if (!blocks[i]) {
            fprintf(stderr, "error: out of memory\n");
            rc = 1;
            goto done;
        }
        mem[i].kind = plan.request[i].kind;
        mem[i].base = (void *)(((size_t)blocks[i] + align - 1) & ~(align - 1));
        mem[i].size = plan.request[i].size;
    }
    s = thinker_model_init(&model, bin, size, mem, plan.count, &msg);
    if (s != THINKER_OK) {
        rc = fail(argv[arg], s, msg.text);
        goto done;
    }
    thinker_executor_create(&exe, model);
    thinker_get_input_count(exe, &n_in);
    thinker_get_output_count(exe, &n_out);
    thinker_get_op_count(model, &n_ops);
    if (!zeros && (uint32_t)(argc - arg - 1) != n_in + n_out) {
        fprintf(stderr, "error: %s expects %u input file(s) then %u output file(s), got %d path(s)\n", argv[arg],
                (unsigned)n_in, (unsigned)n_out, argc - arg - 1);
        rc = 1;
        goto done;
    }
    for (i = 0; i < n_in; i++) {
        thinker_tensor_info info;
        void *block = NULL, *data;
        const char *path = zeros ? "zeros" : argv[arg + 1 + i];
        thinker_get_input_info(exe, i, &info);
        if (zeros) {
            block = calloc(1, info.nbytes + 16);
            data = block;
            nbytes = info.nbytes;
        } else {
            data = read_file(path, &nbytes, &block);
        }
        if (!data) {
            fprintf(stderr, "error: cannot read %s\n", path);
            rc = 1;
            goto done;
        }
        if (nbytes != info.nbytes) {
            fprintf(stderr, "error: %s: %lu bytes, but input '%s' is %s with %lu bytes\n", path,
                    (unsigned long)nbytes, info.name, dtype_name(info.dtype), (unsigned long)info.nbytes);
            free(block);
            rc = 1;
            goto done;
        }
        s = thinker_set_input(exe, i, data, nbytes);
        free(block);
        if (s != THINKER_OK) {
            rc = fail("set_input", s, thinker_executor_message(exe));
            goto done;
        }
        if (crc) {
            const void *p;
            size_t nb;
            thinker_get_tensor_data(exe, info.id, &p, &nb);
            print_crc(line++, &info, p);
        }
    }
    op_ms = (double *)calloc(n_ops + 1, sizeof *op_ms);
    for (i = 0; i < n_ops; i++) { /* one op at a time: timing and CRC lines after each */
        double t0 = now_ms();
        s = thinker_forward_op(exe, i);
        op_ms[i] = now_ms() - t0;
        if (s != THINKER_OK) {
            rc = fail("forward", s, thinker_executor_message(exe));
            goto done;
        }
        if (crc) {
            thinker_op_info op;
            thinker_get_op_info(model, i, &op);
            for (k = 0; k < op.n_outputs; k++) {
                thinker_tensor_info info;
                uint32_t id;
                const void *p;
                size_t nb;
                thinker_get_op_tensor(model, i, 1, k, &id);
                thinker_get_tensor_info(model, id, &info);
                thinker_get_tensor_data(exe, id, &p, &nb);
                print_crc(line++, &info, p);
            }
        }
    }
    for (i = 0; !zeros && i < n_out; i++) {
        const void *p;
        const char *path = argv[arg + 1 + n_in + i];
        FILE *f;
        thinker_get_output(exe, i, &p, &nbytes);
        f = fopen(path, "wb");
        if (!f || fwrite(p, 1, nbytes, f) != nbytes) {
            fprintf(stderr, "error: cannot write %s\n", path);
            if (f) fclose(f);
            rc = 1;
            goto done;
        }
        fclose(f);
    }
    if (timing) {
        double total = 0;
        printf("%4s  %-20s  %-40s  %10s\n", "#", "op", "name", "ms");
        for (i = 0; i < n_ops; i++) {
            thinker_op_info op;
            thinker_get_op_info(model, i, &op);
            printf("%4u  %-20s  %-40s  %10.3f\n", (unsigned)i, op.type, op.name, op_ms[i]);
            total += op_ms[i];
        }
        printf("%4s  %-20s  %-40s  %10.3f\n", "", "total", "", total);
    }
    if (bench > 0) {
        double t0 = now_ms();
        int r;
        for (r = 0; r < bench; r++)
            if ((s = thinker_forward(exe)) != THINKER_OK) {
                rc = fail("forward", s, thinker_executor_message(exe));
                goto done;
            }
        printf("forward: %.4f ms (mean of %d)\n", (now_ms() - t0) / bench, bench);
    }
    thinker_executor_release(exe);
    thinker_model_release(model);
    thinker_uninitialize();
done:
    free(op_ms);
    for (i = 0; i < THINKER_MAX_MEMORY; i++) free(blocks[i]);
    free(model_block);
    return rc;
}
