/* test_thinker: run a model.bin on raw input files with the C executor (the host simulator).
 *
 *   test_thinker [--crc] [--time] [--bench N] model.bin in1.bin ... out1.bin ...
 *   test_thinker --zeros [--crc] model.bin        (all-zero inputs, no files: for fuzzing)
 *   test_thinker --fuzz LIST                       (many models, one line of results each)
 *   test_thinker --shape I:AXIS:LEN ... model.bin in1.bin ... out1.bin ...
 *                                      (a dynamic axis at another length: thinker_update_shape)
 *   test_thinker --stream CHUNK [--repeat R] model.bin in.bin ... out.bin ...
 *                                      (a --isstream model fed CHUNK frames per call)
 *
 * Inputs and outputs are raw little-endian C-order bytes of exactly one sample; sizes are
 * checked. --crc prints one line per tensor, identical to `thinker run --crc`:
 *   <index> <crc32 hex> <dtype> <dims> <name>
 * (graph inputs first, then every op output in execution order). --time prints a per-op
 * table; --bench N times N forwards. Exit status 0 on success, 1 on any error.
 *
 * --fuzz LIST runs every model.bin named in the file LIST (one path per line) in this one
 * process (tests/fuzz drives it under ASan + UBSan): each on inputs from fuzz_input (below,
 * mirrored by tests/fuzz/harness.py), printing and flushing, per model,
 *   BEGIN <path>
 *   REJECT <status> <message>        the reader or an op's prepare refused it
 *   SKIP <reason>                    accepted, but its buffers exceed the fuzzing limit
 *   ERROR <status> <message>         forward failed (a data-dependent error)
 *   OK <crc32 of each output>        ran
 * so a crash or sanitizer abort is attributed to the last BEGIN. Exit status 0.
 *
 * --stream: each input file holds a whole sequence of the model's non-state inputs (C order,
 * any length on their dynamic axis); it is fed CHUNK frames per thinker_forward (the last
 * chunk shorter), the executor carrying the states; each output file gets every chunk's output
 * one after the other. Prints the per-chunk latency (min and median, over R passes of the
 * whole sequence, each after thinker_reset), the state bytes and the arena bytes. *
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

/* A zeroed buffer of exactly `size` bytes when calloc's alignment suffices, so a sanitizer
 * build reports any byte the executor touches beyond the plan; else over-allocated and
 * aligned. *block is what to free. */
static void *plan_buffer(size_t size, size_t align, void **block) {
    *block = calloc(1, size ? size : 1);
    if (*block && ((size_t)*block & (align - 1)) == 0) return *block;
    free(*block);
    *block = calloc(1, size + align);
    return *block ? (void *)(((size_t)*block + align - 1) & ~(align - 1)) : NULL;
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

/* ---- --fuzz ----------------------------------------------------------------------------- */

#define FUZZ_MAX_BYTES (64u << 20) /* larger arenas are not run (the numpy side skips them too) */

static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Input i, element k: r = splitmix64(i * 2**32 + k); integers with an exponent take r's low
 * bits (full range: saturation happens), integers without one (indices) r % 7 - 3, floats
 * (r % 2001 - 1000) / 64. */
static void fuzz_input(uint32_t i, const thinker_tensor_info *info, void *data) {
    uint32_t count = 1, d, k;
    for (d = 0; d < info->ndim; d++) count *= info->dims[d];
    for (k = 0; k < count; k++) {
        uint64_t r = splitmix64(((uint64_t)i << 32) + k);
        int64_t small = (int64_t)(r % 7u) - 3;
        switch (info->dtype) {
        case THINKER_INT8: ((int8_t *)data)[k] = (int8_t)(info->has_exponent ? (int64_t)(int8_t)(uint8_t)r : small); break;
        case THINKER_UINT8: ((uint8_t *)data)[k] = (uint8_t)(info->has_exponent ? r & 0xFFu : (uint64_t)(small + 3)); break;
        case THINKER_INT16: ((int16_t *)data)[k] = (int16_t)(info->has_exponent ? (int64_t)(int16_t)(uint16_t)r : small); break;
        case THINKER_INT32: ((int32_t *)data)[k] = (int32_t)(info->has_exponent ? (int64_t)(int32_t)(uint32_t)r : small); break;
        case THINKER_INT64: ((int64_t *)data)[k] = info->has_exponent ? (int64_t)r : small; break;
        case THINKER_FLOAT32: ((float *)data)[k] = (float)((int64_t)(r % 2001u) - 1000) / 64.0f; break;
        default: break;
        }
    }
}

static void fuzz_one(const char *path) {
    size_t size, total = 0;
    void *model_block = NULL, *bin, *blocks[THINKER_MAX_MEMORY] = {0};
    thinker_memory_plan plan;
    thinker_memory mem[THINKER_MAX_MEMORY];
    thinker_message msg;
    thinker_model *model = NULL;
    thinker_executor *exe = NULL;
    thinker_status s;
    uint32_t i, n_in, n_out;
    printf("BEGIN %s\n", path);
    fflush(stdout);
    bin = read_file(path, &size, &model_block);
    if (!bin) {
        printf("REJECT IO cannot read\n");
        goto done;
    }
    s = thinker_get_memory_plan(bin, size, &plan, &msg);
    if (s != THINKER_OK) {
        printf("REJECT %s %s\n", thinker_status_name(s), msg.text);
        goto done;
    }
    for (i = 0; i < plan.count; i++)
        if (plan.request[i].kind == THINKER_MEM_PSRAM || plan.request[i].kind == THINKER_MEM_SHARE)
            total += plan.request[i].size;
    if (total > FUZZ_MAX_BYTES) {
        printf("SKIP arenas of %lu bytes\n", (unsigned long)total);
        goto done;
    }
    for (i = 0; i < plan.count; i++)
        if (plan.request[i].size > 16u * FUZZ_MAX_BYTES) {
            printf("SKIP buffers of %lu bytes\n", (unsigned long)plan.request[i].size);
            goto done;
        }
    for (i = 0; i < plan.count; i++) {
        size_t align = plan.request[i].alignment < 16 ? 16 : plan.request[i].alignment;
        mem[i].base = plan_buffer(plan.request[i].size, align, &blocks[i]);
        if (!blocks[i]) {
            printf("SKIP out of memory\n");
            goto done;
        }
        mem[i].kind = plan.request[i].kind;
        mem[i].size = plan.request[i].size;
    }
    s = thinker_model_init(&model, bin, size, mem, plan.count, &msg);
    if (s != THINKER_OK) {
        printf("REJECT %s %s\n", thinker_status_name(s), msg.text);
        goto done;
    }
    thinker_executor_create(&exe, model);
    thinker_get_input_count(exe, &n_in);
    thinker_get_output_count(exe, &n_out);
    for (i = 0; i < n_in; i++) {
        thinker_tensor_info info;
        void *data;
        thinker_get_input_info(exe, i, &info);
        data = calloc(1, info.nbytes + 16);
        if (!data) {
            printf("SKIP out of memory\n");
            goto done;
        }
        fuzz_input(i, &info, data);
        s = thinker_set_input(exe, i, data, info.nbytes);
        free(data);
        if (s != THINKER_OK) {
            printf("ERROR %s %s\n", thinker_status_name(s), thinker_executor_message(exe));
            goto done;
        }
    }
    s = thinker_forward(exe);
    if (s != THINKER_OK) {
        printf("ERROR %s %s\n", thinker_status_name(s), thinker_executor_message(exe));
        goto done;
    }
    printf("OK");
    for (i = 0; i < n_out; i++) {
        const void *p;
        size_t nb;
        thinker_get_output(exe, i, &p, &nb);
        printf(" %08x", (unsigned)thinker_crc32(0, p, nb));
    }
    printf("\n");
done:
    if (exe) thinker_executor_release(exe);
    if (model) thinker_model_release(model);
    for (i = 0; i < THINKER_MAX_MEMORY; i++) free(blocks[i]);
    free(model_block);
    fflush(stdout);
}

static int fuzz_list(const char *list) {
    char line[4096];
    FILE *f = fopen(list, "r");
    if (!f) {
        fprintf(stderr, "error: cannot read %s\n", list);
        return 1;
    }
    thinker_initialize();
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n) fuzz_one(line);
    }
    fclose(f);
    return 0;
}

/* The original demo's argument order, `input.bin model.bin output.bin C H W Q [loops]`: 7 or
 * 8 arguments whose last 4 (or 5) are integers (ours never ends in integers). */
static int original_order(int n, char **a, long values[5]) {
    int i;
    if (n != 7 && n != 8) return 0;
    for (i = 3; i < n; i++) {
        char *end;
        long v = strtol(a[i], &end, 10);
        if (!*a[i] || *end) return 0;
        values[i - 3] = v;
    }
    if (values[0] <= 0 || values[1] <= 0 || values[2] <= 0 || values[4] < 1) return 0;
    return 1;
}

static int compare_ms(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The dynamic axis of input `index` (the first one), or -1. */
static int dynamic_axis(thinker_executor *exe, uint32_t index, uint32_t *lo, uint32_t *hi, uint32_t *f) {
    uint32_t axis, now;
    for (axis = 0; axis < THINKER_MAX_DIMS; axis++)
        if (thinker_get_dynamic_axis(exe, index, axis, lo, hi, f, &now) == THINKER_OK) return (int)axis;
    return -1;
}

static int stream_main(thinker_executor *exe, uint32_t chunk, int repeat, char **paths, int n_paths,
                       uint32_t arena_bytes) {
    uint32_t n_in, n_out, n_states = 0, state_bytes = 0, i, k;
    uint32_t feed[8], n_feed = 0, read[8], n_read = 0, axis[8], lo = 0, hi = 0, factor = 1;
    unsigned char is_state_in[64] = {0}, is_state_out[64] = {0};
    unsigned char *seq[8] = {0};
    void *blocks[8] = {0};
    size_t outer[8], inner[8], total = 0, chunks = 0;
    double *ms = NULL;
    FILE *out[8] = {0};
    thinker_status s;
    int rc = 1, r;
    thinker_get_input_count(exe, &n_in);
    thinker_get_output_count(exe, &n_out);
    thinker_get_stream_info(exe, &n_states, &state_bytes);
    if (n_in > 64 || n_out > 64) return fail("stream", THINKER_ERR_ARGUMENT, "too many inputs or outputs");
    for (k = 0; k < n_states; k++) {
        uint32_t a, b;
        thinker_get_stream_pair(exe, k, &a, &b);
        is_state_in[a] = is_state_out[b] = 1;
    }
    for (i = 0; i < n_in; i++)
        if (!is_state_in[i] && n_feed < 8) feed[n_feed++] = i;
    for (i = 0; i < n_out; i++)
        if (!is_state_out[i] && n_read < 8) read[n_read++] = i;
    if (!n_states || (int)(n_feed + n_read) != n_paths) {
        fprintf(stderr, "error: --stream needs a model packed with tpacker --isstream and %u input then %u output "
                        "file(s); got %d\n", (unsigned)n_feed, (unsigned)n_read, n_paths);
        return 1;
    }
    for (k = 0; k < n_feed; k++) { /* whole sequences, their length from the file size */
        thinker_tensor_info info;
        size_t nbytes, unit;
        uint32_t d, l, h, f;
        int a = dynamic_axis(exe, feed[k], &l, &h, &f);
        thinker_get_input_info(exe, feed[k], &info);
        if (a < 0) return fail(paths[k], THINKER_ERR_ARGUMENT, "this input has no dynamic (stream) axis");
        axis[k] = (uint32_t)a;
        lo = l, hi = h, factor = f;
        outer[k] = 1;
        inner[k] = info.nbytes / info.dims[a] / 1;
        for (d = 0; d < (uint32_t)a; d++) outer[k] *= info.dims[d];
        inner[k] /= outer[k];
        unit = outer[k] * inner[k];
        seq[k] = (unsigned char *)read_file(paths[k], &nbytes, &blocks[k]);
        if (!seq[k] || !nbytes || nbytes % unit) {
            fprintf(stderr, "error: %s: not a whole number of frames of input '%s' (%lu B each)\n", paths[k], info.name,
                    (unsigned long)unit);
            goto out;
        }
        if (k && nbytes / unit != total) {
            fprintf(stderr, "error: %s: %lu frames, the first input %lu\n", paths[k], (unsigned long)(nbytes / unit),
                    (unsigned long)total);
            goto out;
        }
        total = nbytes / unit;
    }
    if (chunk < lo || chunk > hi || (chunk - lo) % factor) {
        fprintf(stderr, "error: --stream %u: this model takes chunks of MIN:MAX:FACTOR = %u:%u:%u frames\n",
                (unsigned)chunk, (unsigned)lo, (unsigned)hi, (unsigned)factor);
        goto out;
    }
    for (k = 0; k < n_read; k++)
        if (!(out[k] = fopen(paths[n_feed + k], "wb"))) {
            fprintf(stderr, "error: cannot write %s\n", paths[n_feed + k]);
            goto out;
        }
    chunks = (total + chunk - 1) / chunk;
    ms = (double *)malloc(sizeof *ms * chunks * (size_t)repeat);
    if (!ms) goto out;
    for (r = 0; r < repeat; r++) {
        size_t start, c = 0;
        thinker_reset(exe);
        for (start = 0; start < total; start += chunk, c++) {
            uint32_t n = (uint32_t)(total - start < chunk ? total - start : chunk);
            double t0 = now_ms();
            for (k = 0; k < n_feed; k++) {
                thinker_tensor_info info;
                unsigned char *buf;
                size_t o;
                s = thinker_update_shape(exe, feed[k], axis[k], n);
                if (s != THINKER_OK) return fail("update_shape", s, thinker_executor_message(exe));
                thinker_get_input_info(exe, feed[k], &info);
                buf = (unsigned char *)malloc(info.nbytes ? info.nbytes : 1);
                for (o = 0; o < outer[k]; o++) /* chunk [start, start + n) of every outer row */
                    memcpy(buf + o * n * inner[k], seq[k] + (o * total + start) * inner[k], n * inner[k]);
                s = thinker_set_input(exe, feed[k], buf, info.nbytes);
                free(buf);
                if (s != THINKER_OK) return fail("set_input", s, thinker_executor_message(exe));
            }
            s = thinker_forward(exe);
            ms[(size_t)r * chunks + c] = now_ms() - t0;
            if (s != THINKER_OK) return fail("forward", s, thinker_executor_message(exe));
            for (k = 0; r == 0 && k < n_read; k++) {
                const void *p;
                size_t nbytes;
                thinker_get_output(exe, read[k], &p, &nbytes);
                if (fwrite(p, 1, nbytes, out[k]) != nbytes) {
                    fprintf(stderr, "error: cannot write %s\n", paths[n_feed + k]);
                    goto out;
                }
            }
        }
    }
    qsort(ms, chunks * (size_t)repeat, sizeof *ms, compare_ms);
    printf("stream: %lu frames in %lu chunk(s) of up to %u, %d pass(es); per chunk min %.4f ms, median %.4f ms; "
           "state %u B in %u tensor(s); arenas %u B\n",
           (unsigned long)total, (unsigned long)chunks, (unsigned)chunk, repeat, ms[0], ms[chunks * (size_t)repeat / 2],
           (unsigned)state_bytes, (unsigned)n_states, (unsigned)arena_bytes);
    rc = 0;
out:
    for (k = 0; k < 8; k++) {
        free(blocks[k]);
        if (out[k] && fclose(out[k]) != 0) rc = 1;
    }
    free(ms);
    return rc;
}

int main(int argc, char **argv) {
    int crc = 0, timing = 0, bench = 0, zeros = 0, arg = 1, rc = 0, orig = 0, repeat = 1, n_shapes = 0;
    long stream_chunk = 0;
    unsigned shapes[8][3];
    long orig_args[5] = {0, 0, 0, 0, 1}; /* original order: C, H, W, Q, loops */
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
        else if (strcmp(argv[arg], "--fuzz") == 0 && arg + 1 < argc) return fuzz_list(argv[arg + 1]);
        else if (strcmp(argv[arg], "--stream") == 0 && arg + 1 < argc) stream_chunk = atol(argv[++arg]);
        else if (strcmp(argv[arg], "--repeat") == 0 && arg + 1 < argc) repeat = atoi(argv[++arg]);
        else if (strcmp(argv[arg], "--shape") == 0 && arg + 1 < argc && n_shapes < 8 &&
                 sscanf(argv[++arg], "%u:%u:%u", &shapes[n_shapes][0], &shapes[n_shapes][1], &shapes[n_shapes][2]) == 3)
            n_shapes++;
        else {
            fprintf(stderr, "error: unknown option %s\n", argv[arg]);
            return 1;
        }
    }
    if (arg >= argc) {
        fprintf(stderr, "usage: test_thinker [--crc] [--time] [--bench N] model.bin in1.bin ... out1.bin ...\n"
                        "       test_thinker input.bin model.bin output.bin C H W Q [loops]   (the original demo)\n");
        return 1;
    }
    if (original_order(argc - arg, argv + arg, orig_args)) {
        /* the original demo: input, model, output, then C H W of the input, its Q value
         * (exponent) and an optional loop count; the model comes first from here on */
        char *input = argv[arg];
        argv[arg] = argv[arg + 1];
        argv[arg + 1] = input;
        orig = 1;
        argc = arg + 3;
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
        mem[i].base = plan_buffer(plan.request[i].size, align, &blocks[i]);
        if (!blocks[i]) {
            fprintf(stderr, "error: out of memory\n");
            rc = 1;
            goto done;
        }
        mem[i].kind = plan.request[i].kind;
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
    if (stream_chunk > 0 || repeat < 1) {
        uint32_t arenas = 0;
        for (i = 0; i < plan.count; i++)
            if (plan.request[i].kind == THINKER_MEM_PSRAM || plan.request[i].kind == THINKER_MEM_SHARE)
                arenas += plan.request[i].size;
        rc = repeat < 1 ? 1 : stream_main(exe, (uint32_t)stream_chunk, repeat, argv + arg + 1, argc - arg - 1, arenas);
        goto done;
    }
    for (i = 0; i < (uint32_t)n_shapes; i++) { /* dynamic axes at other lengths, before set_input */
        s = thinker_update_shape(exe, shapes[i][0], shapes[i][1], shapes[i][2]);
        if (s != THINKER_OK) {
            rc = fail("update_shape", s, thinker_executor_message(exe));
            goto done;
        }
    }
    if (orig) {
        thinker_tensor_info info;
        thinker_get_input_info(exe, 0, &info);
        if (n_in != 1) {
            fprintf(stderr, "error: %s has %u inputs; the original argument order (input.bin model.bin output.bin C H W Q) "
                            "takes one: use test_thinker model.bin in1.bin ... out1.bin ...\n", argv[arg], (unsigned)n_in);
            rc = 1;
            goto done;
        }
        if (info.ndim != 4 || info.dims[1] != (uint32_t)orig_args[0] || info.dims[2] != (uint32_t)orig_args[1] ||
            info.dims[3] != (uint32_t)orig_args[2] || (info.has_exponent && info.exponent != orig_args[3])) {
            fprintf(stderr, "error: C H W Q = %ld %ld %ld %ld, but input '%s' of %s is %ux%ux%ux%u with exponent %d\n",
                    orig_args[0], orig_args[1], orig_args[2], orig_args[3], info.name, argv[arg],
                    (unsigned)info.dims[0], info.ndim > 1 ? (unsigned)info.dims[1] : 0u,
                    info.ndim > 2 ? (unsigned)info.dims[2] : 0u, info.ndim > 3 ? (unsigned)info.dims[3] : 0u,
                    (int)info.exponent);
            rc = 1;
            goto done;
        }
    } else if (!zeros && (uint32_t)(argc - arg - 1) != n_in + n_out) {
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
    for (k = 1; orig && k < (uint32_t)orig_args[4]; k++) { /* the original's loop count: set the
                                                              * input and run again */
        void *block = NULL, *data = read_file(argv[arg + 1], &nbytes, &block);
        s = data ? thinker_set_input(exe, 0, data, nbytes) : THINKER_ERR_INPUT;
        free(block);
        if (s == THINKER_OK) s = thinker_forward(exe);
        if (s != THINKER_OK) {
            rc = fail("forward", s, thinker_executor_message(exe));
            goto done;
        }
    }
    if (orig) { /* what the original demo printed for a classifier's int8 output */
        thinker_tensor_info info;
        const void *p;
        thinker_get_output_info(exe, 0, &info);
        thinker_get_output(exe, 0, &p, &nbytes);
        if (info.dtype == THINKER_INT8 && nbytes) {
            const int8_t *o = (const int8_t *)p;
            size_t best = 0, j;
            for (j = 1; j < nbytes; j++)
                if (o[j] > o[best]) best = j;
            printf("Max probability: %d\nPredicted category index: %lu\n", o[best], (unsigned long)best);
        }
    }
    for (i = 0; !zeros && i < (orig ? 1u : n_out); i++) {
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
