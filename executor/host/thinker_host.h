/* Host-only kernels the numpy executor calls through ctypes (thinker.ops.host_kernels
 * mirrors this struct) and the host C executor through executor_kernels.c. Not part of the
 * device API (include/thinker.h). */
#ifndef THINKER_HOST_H
#define THINKER_HOST_H

#include <stdint.h>

/* thinker_host_features() bits */
#define THINKER_HOST_VNNI 1      /* AVX-512 VNNI: thinker_host_conv_s8 */
#define THINKER_HOST_DEPTHWISE 2 /* and AVX-512 VBMI + VBMI2: thinker_host_depthwise_s8 */
#define THINKER_HOST_VNNI256 4   /* AVX-VNNI (256-bit): both, depthwise within 16-byte groups */

/* An int8 convolution (group 1, or depthwise: o == c) with the output stage:
 * out = clamp((acc + corr) >> shift). */
typedef struct {
    const int8_t *x;      /* input, [n][c][h][w_in] */
    const int8_t *w;      /* weights: packed (conv_vnni.c, 4-byte aligned), or [c][kh*kw]
                             (depthwise) */
    const int32_t *corr;  /* per output channel: bias + half - 128 * sum(weights) */
    void *out;            /* output, [n][o][ho][wo], int8 or int16 (out_bytes) */
    uint8_t *work;        /* one sample's padded input, thinker_host_conv_work_bytes(),
                             4-byte aligned (the callers align it to 64) */
    int64_t work_bytes;
    int32_t n, c, h, w_in;
    int32_t o, kh, kw, sh, sw, dh, dw;
    int32_t pt, pl, pb, pr;
    int32_t ho, wo;
    int32_t shift, lo, hi, out_bytes;
    /* 0 on a new job: the first call sets the work's padding and tables and records which
     * kernel took the job, later calls of the same job (same shapes, weights and work) only
     * fill in each input */
    int32_t prepared;
} thinker_host_conv;

/* Global average pooling: per row of ``length`` int8 values, saturate(round_half_up(sum *
 * 2**-shift / den')) to [lo, hi], where den' = den (already times 2**shift when shift > 0). */
typedef struct {
    const int8_t *x;
    void *out; /* int8 or int16 (out_bytes), one value per row */
    int64_t rows, length, den;
    int32_t shift, lo, hi, out_bytes;
} thinker_host_mean;

/* THINKER_HOST_* bits of this CPU; THINKER_HOST_ISA=avxvnni in the environment reports only
 * THINKER_HOST_VNNI256 (where the CPU has it), to run the 256-bit kernels on any such CPU */
int thinker_host_features(void);
/* dense conv weights [o][c][taps] -> the kernel's [ceil(o/16)][taps][ceil(c/4)][16][4], zeros
 * past o and c (thinker_host_packed_weight_bytes bytes) */
int64_t thinker_host_packed_weight_bytes(int32_t o, int32_t c, int32_t taps);
void thinker_host_pack_conv_weights(const int8_t *w, int32_t o, int32_t c, int32_t taps,
                                    int8_t *dst);
int thinker_host_mean_rows(const thinker_host_mean *mean);
/* the work a job needs, or -1 when this CPU or these parameters are not supported */
int64_t thinker_host_conv_work_bytes(const thinker_host_conv *job);
/* 0 when done; 1 when this CPU or these parameters are not supported (nothing written) */
int thinker_host_conv_s8(thinker_host_conv *job);
int64_t thinker_host_depthwise_work_bytes(const thinker_host_conv *job);
int thinker_host_depthwise_s8(thinker_host_conv *job);

/* A chain (thinker_host_run_chain): jobs run in order; ``job`` points at a thinker_host_conv
 * (conv, depthwise) or a thinker_host_mean. */
#define THINKER_HOST_CONV 0
#define THINKER_HOST_DEPTHWISE_CONV 1
#define THINKER_HOST_MEAN 2
typedef struct {
    int32_t kind;
    void *job;
} thinker_host_link;

/* 0 when every job ran; else the first failing job's status (later jobs did not run) */
int thinker_host_run_chain(const thinker_host_link *links, int32_t count);

#endif
