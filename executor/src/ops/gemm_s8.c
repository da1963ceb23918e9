/* int8 GEMM micro-kernels (gemm_s8.h): 2 weight rows x up to 4 patch rows per call, eight int32
 * accumulators kept in registers. Portable C (vectorized by the host compiler along K) and the
 * Cortex-M DSP form (SMLAD: two 16-bit MACs per instruction), bit-identical. */
#include "gemm_s8.h"

#include <string.h>

#if THK_GEMM_DSP
#include <arm_acle.h>

/* SXTB16 of v rotated by 8 in one instruction (compilers do not fold the rotation) */
static inline uint32_t sxtb16_ror8(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* four weight bytes from any address (one LDR: Cortex-M4 reads unaligned words) */
static inline uint32_t rd_w(const int8_t *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/* the last K & 3 weight bytes, zero-filled (no read past the row) */
static uint32_t rd_tail(const int8_t *p, uint32_t n) {
    uint32_t v = 0, i;
    for (i = 0; i < n; i++) v |= (uint32_t)(uint8_t)p[i] << (8u * i);
    return v;
}

/* n >= 1 groups: per group one LDR, two SXTB16, one STRD (the next row pair's group is 16
 * bytes on) */
__attribute__((naked, noinline)) void thk_put_groups(uint32_t *dst, const int8_t *row, uint32_t n) {
    __asm__ volatile(
        "push {r4, r5}\n\t"
        "1:\n\t"
        "ldr r3, [r1], #4\n\t"
        "sxtb16 r4, r3\n\t"
        "sxtb16 r5, r3, ror #8\n\t"
        "strd r4, r5, [r0], #16\n\t"
        "subs r2, r2, #1\n\t"
        "bne 1b\n\t"
        "pop {r4, r5}\n\t"
        "bx lr\n\t");
}

void thk_tile_put(thk_patch *tile, uint32_t r, uint32_t Kp, const int8_t *row) {
    thk_put_groups((uint32_t *)(void *)tile + (r >> 1) * Kp + 2u * (r & 1u), row, Kp >> 2);
}

/* Two weight rows as int16 pairs for the kernel, interleaved per group of 4 values:
 * (row0 k0,k2) (row0 k1,k3) (row1 k0,k2) (row1 k1,k3); the last group zero-filled. Done once
 * per tile and channel pair, so the inner loop loads 4 words with one LDM. */
/* n >= 1 groups of both rows: one LDR each, four SXTB16, one STM */
__attribute__((naked, noinline)) static void prep_groups(uint32_t *wq, const int8_t *w0, const int8_t *w1,
                                                        uint32_t n) {
    __asm__ volatile(
        "push {r4-r9, lr}\n\t"
        "1:\n\t"
        "ldr r4, [r1], #4\n\t"
        "ldr r5, [r2], #4\n\t"
        "sxtb16 r6, r4\n\t"
        "sxtb16 r7, r4, ror #8\n\t"
        "sxtb16 r8, r5\n\t"
        "sxtb16 r9, r5, ror #8\n\t"
        "stmia r0!, {r6-r9}\n\t"
        "subs r3, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r9, pc}\n\t");
}

static void prep_weights(uint32_t *wq, const int8_t *w0, const int8_t *w1, uint32_t K) {
    uint32_t n = K >> 2, t = K & 3u, v0, v1;
    if (n) prep_groups(wq, w0, w1, n);
    if (t) {
        wq += 4u * n;
        v0 = rd_tail(w0 + 4u * n, t);
        v1 = rd_tail(w1 + 4u * n, t);
        wq[0] = (uint32_t)__sxtb16(v0);
        wq[1] = sxtb16_ror8(v0);
        wq[2] = (uint32_t)__sxtb16(v1);
        wq[3] = sxtb16_ror8(v1);
    }
}

/* The DSP GEMM kernel: two weight rows (prepared, wq) x the tile's row pairs from p on, `pairs`
 * of them. Per group of 4 values and row pair: one LDM of the weights, one LDM of both rows'
 * patch pairs, eight SMLAD (16 MACs); the K loop runs four groups a turn (entered part way for
 * nq % 4) and ends when the weights do. Each pair's four accumulators start at the biases (h0,
 * h1: bias + half) and leave as int8 outputs (mode 2: >> shift, SSAT 8; 3: >> shift, USAT 7)
 * or, mode 1 (one row pair only), as raw int32 (row0 px0, px1, row1 px0, px1) at d0 (other
 * clamps go through the C output stage). One naked routine: the loop needs all 14 registers,
 * so the job's first 11 words are copied to a stack frame in this order and the kernel fills
 * in its slots (K loop entry, output stage, d0's end): one LDM starts a row pair, one LDM
 * loads its output stage. */
typedef struct {
    const uint32_t *wq;     /* 0: prepared weights */
    int32_t h0, h1;         /* 4, 8: accumulator starts */
    uint32_t k_entry;       /* 12: the kernel's */
    const uint32_t *wq_end; /* 16: the weights' end (4 words a group) */
    int32_t shift;          /* 20 */
    int8_t *d0, *d1;        /* 24, 28: outputs of row 0, row 1 (mode 1: d0 = int32 acc) */
    uint32_t rs;            /* 32: output step between rows */
    uint32_t pairs;         /* 36: row pairs, >= 1 (the kernel's d0 end) */
    uint32_t out_entry;     /* 40: the kernel's */
    const uint32_t *p;      /* 44: first row pair */
    uint32_t lead;          /* 48: groups % 4 */
    uint32_t mode;          /* 52 */
    int32_t lo, hi;         /* C only */
} thk_pairs;

#define PAIR_GROUP                                                                          \
    "ldmia r0!, {r2-r5}\n\t"                                                              \
    "ldmia r1!, {r6, r7, r12, lr}\n\t"                                                    \
    "smlad r8, r2, r6, r8\n\t"                                                            \
    "smlad r8, r3, r7, r8\n\t"                                                            \
    "smlad r10, r4, r6, r10\n\t"                                                          \
    "smlad r10, r5, r7, r10\n\t"                                                          \
    "smlad r9, r2, r12, r9\n\t"                                                           \
    "smlad r9, r3, lr, r9\n\t"                                                            \
    "smlad r11, r4, r12, r11\n\t"                                                         \
    "smlad r11, r5, lr, r11\n\t"

#define PAIR_SAT(OP, BITS, R, DST)                                                          \
    "asr " R ", " R ", r2\n\t"                                                            \
    OP " " R ", " BITS ", " R "\n\t"                                                      \
    "strb " R ", " DST "\n\t"

/* the pair's four outputs: row 0 (px0, px1) to d0, row 1 to d1 */
#define PAIR_SAT4(OP, BITS)                                                                 \
    PAIR_SAT(OP, BITS, "r8", "[r5]") PAIR_SAT(OP, BITS, "r9", "[r5, r7]")                    \
    PAIR_SAT(OP, BITS, "r10", "[r6]") PAIR_SAT(OP, BITS, "r11", "[r6, r7]")

__attribute__((naked, noinline)) static void pairs_kernel(thk_pairs *job) {
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "sub sp, #44\n\t"
        "ldmia r0, {r1-r11}\n\t"     /* the frame's words */
        "mul r10, r10, r9\n\t"
        "add r10, r7, r10, lsl #1\n\t" /* d0's end: d0 + 2 rs pairs */
        "ldr r12, [r0, #48]\n\t"     /* nq % 4: enter at group 4 - it of the turn */
        "ldr r4, =1f\n\t"
        "cmp r12, #1\n\t"
        "it eq\n\t"
        "ldreq r4, =14f\n\t"
        "cmp r12, #2\n\t"
        "it eq\n\t"
        "ldreq r4, =13f\n\t"
        "cmp r12, #3\n\t"
        "it eq\n\t"
        "ldreq r4, =12f\n\t"
        "ldr r12, [r0, #52]\n\t"     /* the output stage of the mode */
        "ldr r11, =5f\n\t"
        "cmp r12, #2\n\t"
        "it eq\n\t"
        "ldreq r11, =3f\n\t"
        "cmp r12, #3\n\t"
        "it eq\n\t"
        "ldreq r11, =4f\n\t"
        "orr r4, r4, #1\n\t"         /* Thumb state for the loads into pc */
        "orr r11, r11, #1\n\t"
        "stmia sp, {r1-r11}\n\t"
        "ldr r1, [r0, #44]\n\t"
        "10:\n\t"
        "ldmia sp, {r0, r8, r10}\n\t" /* wq, h0, h1 */
        "mov r9, r8\n\t"
        "mov r11, r10\n\t"
        "ldr pc, [sp, #12]\n\t"
        "1:\n\t"
        PAIR_GROUP
        "12:\n\t"
        PAIR_GROUP
        "13:\n\t"
        PAIR_GROUP
        "14:\n\t"
        PAIR_GROUP
        "ldr r6, [sp, #16]\n\t"
        "cmp r0, r6\n\t"
        "bne 1b\n\t"
        "add r12, sp, #20\n\t"
        "ldmia r12, {r2, r5, r6, r7}\n\t" /* shift d0 d1 rs */
        "ldr pc, [sp, #40]\n\t"
        "3:\n\t"
        PAIR_SAT4("ssat", "#8")
        "b 6f\n\t"
        "4:\n\t"
        PAIR_SAT4("usat", "#7")
        "6:\n\t"
        "add r5, r5, r7, lsl #1\n\t"
        "add r6, r6, r7, lsl #1\n\t"
        "strd r5, r6, [sp, #24]\n\t"
        "ldr r0, [sp, #36]\n\t"
        "cmp r5, r0\n\t"
        "bne 10b\n\t"
        "b 7f\n\t"
        "5:\n\t"
        "stmia r5!, {r8-r11}\n\t"
        "7:\n\t"
        "add sp, #44\n\t"
        "pop {r4-r11, pc}\n\t"
        ".ltorg\n\t");
}

/* One patch row (a linear layer on one input row) against two int8 weight rows read in place:
 * acc[i] += w_i . x over n >= 1 groups of 4 values; x is the tile's row 0 (int16 pairs, 16
 * bytes between groups). Per group two LDR (any alignment), one LDRD, four SXTB16 and four
 * SMLAD: 8 MACs, no prepared weights (each is used once); two groups a turn. */
#define VEC_GROUP                                                                           \
    "ldr r4, [r1], #4\n\t"                                                                \
    "ldr r5, [r2], #4\n\t"                                                                \
    "ldrd r6, r7, [r3], #16\n\t"                                                          \
    "sxtb16 r12, r4\n\t"                                                                  \
    "sxtb16 r4, r4, ror #8\n\t"                                                           \
    "smlad r8, r12, r6, r8\n\t"                                                           \
    "smlad r8, r4, r7, r8\n\t"                                                            \
    "sxtb16 r12, r5\n\t"                                                                  \
    "sxtb16 r5, r5, ror #8\n\t"                                                           \
    "smlad r9, r12, r6, r9\n\t"                                                           \
    "smlad r9, r5, r7, r9\n\t"

__attribute__((naked, noinline)) static void vec_groups(int32_t acc[2], const int8_t *w0, const int8_t *w1,
                                                       const uint32_t *x, uint32_t n) {
    __asm__ volatile(
        "push {r4-r10, lr}\n\t"
        "ldr r10, [sp, #32]\n\t"
        "ldrd r8, r9, [r0]\n\t"
        "adds r10, r10, #1\n\t"
        "lsrs r10, r10, #1\n\t"      /* turns of two groups; carry: n even */
        "bcc 2f\n\t"
        "1:\n\t"
        VEC_GROUP
        "2:\n\t"
        VEC_GROUP
        "subs r10, r10, #1\n\t"
        "bne 1b\n\t"
        "strd r8, r9, [r0]\n\t"
        "pop {r4-r10, pc}\n\t");
}

/* int8 output of the int32 stage: (acc >> shift) clamped to [lo, hi] (acc already holds
 * bias + half); SSAT/USAT when the range allows */
__attribute__((noinline)) static int32_t out8(int32_t acc, int32_t shift, int32_t lo, int32_t hi) {
    int32_t v = acc >> shift; /* arithmetic on every target with the DSP extension */
    /* lo >= -128 and hi <= 127 (an int8 output stage), so saturating to int8 first changes
     * nothing after the clamp */
    if (lo == 0) {
        v = __usat(v, 7);
    } else {
        v = __ssat(v, 8);
        if (v < lo) v = lo;
    }
    return v > hi ? hi : v;
}

__attribute__((naked, noinline)) void thk_patch3x3(int8_t *dst, const int8_t *src, uint32_t n,
                                                  const uint32_t steps[2]) {
    __asm__ volatile(
        "push {r4-r6}\n\t"
        "ldrd r4, r5, [r3]\n\t"       /* row step, plane */
        "1:\n\t"
        "ldr r3, [r1]\n\t"
        "ldr r12, [r1, r4]\n\t"
        "ldr r6, [r1, r4, lsl #1]\n\t"
        "str r3, [r0]\n\t"
        "str r12, [r0, #3]\n\t"
        "str r6, [r0, #6]\n\t"
        "add r1, r1, r5\n\t"
        "adds r0, #9\n\t"
        "subs r2, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r6}\n\t"
        "bx lr\n\t");
}

__attribute__((naked, noinline)) void thk_tile_strided(uint32_t *dst, const int8_t *src, uint32_t plane,
                                                      uint32_t n) {
    __asm__ volatile(
        "push {r4-r8}\n\t"
        "lsl r7, r2, #1\n\t"
        "add r8, r7, r2\n\t"
        "1:\n\t"
        "ldrsb r4, [r1]\n\t"
        "ldrsb r5, [r1, r2]\n\t"
        "ldrsb r6, [r1, r7]\n\t"
        "ldrsb r12, [r1, r8]\n\t"
        "pkhbt r4, r4, r6, lsl #16\n\t"
        "pkhbt r5, r5, r12, lsl #16\n\t"
        "strd r4, r5, [r0], #16\n\t"
        "add r1, r1, r2, lsl #2\n\t"
        "subs r3, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r8}\n\t"
        "bx lr\n\t");
}

/* A 3x3 stride-1 depthwise output map, one naked routine (every register in use; the job
 * pointer waits on the stack). Per output pixel pair: 3 LDR, 6 SXTB16 and 12 multiply-adds
 * (18 MACs) onto accumulators that start at hb = bias + half, then >> shift, SSAT 8 (or USAT 7
 * for a ReLU) and two STRB: the output stage in the loop, 15 instructions a pixel. Row 2 is
 * read at row + 2 ts (LDR's shifted register offset) and the shift sits in the bottom byte of
 * the register whose top half is w7, so hb has a register. A row of odd width writes one
 * byte past its end (the next row's first, written again later; callers give the last row a
 * scratch destination). */
typedef struct {
    uint32_t wt[5];         /* 0: (w0, w2) (w3, w5) (w6, w8) (w1, w4) as int16 pairs, shift | w7 << 16 */
    const int8_t *row;      /* 20: the padded input row of the first output row */
    uint32_t ts;            /* 24: bytes between kernel rows */
    uint32_t rstep;         /* 28: bytes between output rows' input rows */
    int8_t *out;            /* 32 */
    uint32_t pairs;         /* 36: ceil(wo / 2) */
    uint32_t rows;          /* 40: output rows, >= 1 */
    int32_t hb;             /* 44 */
    uint32_t relu;          /* 48: USAT 7 instead of SSAT 8 */
    uint32_t wo;            /* 52 */
} thk_dw3_job;

#define DW_PAIR_ROW(W, WX, T0, T1, OFF, A0, A1)                                              \
    "ldr lr, " OFF "\n\t"                                                                  \
    "sxtb16 r12, lr\n\t"                                                                   \
    "sxtb16 lr, lr, ror #8\n\t"                                                            \
    "smlad r10, " W ", r12, " A0 "\n\t"                                                    \
    T0 " r10, " WX ", lr, r10\n\t"                                                         \
    "smlad r11, " W ", lr, " A1 "\n\t"                                                     \
    T1 " r11, " WX ", r12, r11\n\t"

/* pixel pairs of one row; row 0 starts both accumulators at hb (r3) */
#define DW_PAIR_LOOP(LABEL, SAT)                                                            \
    LABEL ":\n\t"                                                                          \
    DW_PAIR_ROW("r4", "r7", "smlabb", "smlabt", "[r1]", "r3", "r3")                        \
    DW_PAIR_ROW("r5", "r7", "smlatb", "smlatt", "[r1, r2]", "r10", "r11")                  \
    DW_PAIR_ROW("r6", "r8", "smlatb", "smlatt", "[r1, r2, lsl #1]", "r10", "r11")          \
    "asr r10, r10, r8\n\t"                                                                 \
    "asr r11, r11, r8\n\t"                                                                 \
    SAT                                                                                    \
    "strb r10, [r0], #1\n\t"                                                               \
    "strb r11, [r0], #1\n\t"                                                               \
    "adds r1, #2\n\t"                                                                      \
    "cmp r0, r9\n\t"                                                                       \
    "bne " LABEL "b\n\t"

__attribute__((naked, noinline)) static void dw3_plane_s1(thk_dw3_job *job) {
    __asm__ volatile(
        "push {r0, r4-r11, lr}\n\t"
        "1:\n\t"
        "ldr r12, [sp]\n\t"
        "ldmia r12, {r4-r8}\n\t"
        "ldrd r1, r2, [r12, #20]\n\t"  /* row, ts */
        "ldr r0, [r12, #32]\n\t"
        "ldr r9, [r12, #36]\n\t"
        "add r9, r0, r9, lsl #1\n\t"   /* out + 2 pairs */
        "ldr r3, [r12, #44]\n\t"
        "ldr lr, [r12, #48]\n\t"
        "cmp lr, #0\n\t"
        "bne 3f\n\t"
        DW_PAIR_LOOP("2", "ssat r10, #8, r10\n\tssat r11, #8, r11\n\t")
        "b 4f\n\t"
        DW_PAIR_LOOP("3", "usat r10, #7, r10\n\tusat r11, #7, r11\n\t")
        "4:\n\t"
        "ldr r12, [sp]\n\t"
        "ldr r1, [r12, #20]\n\t"
        "ldr r2, [r12, #28]\n\t"
        "add r1, r1, r2\n\t"           /* next row's input */
        "str r1, [r12, #20]\n\t"
        "ldr r1, [r12, #32]\n\t"
        "ldr r2, [r12, #52]\n\t"
        "add r1, r1, r2\n\t"           /* next row's output */
        "str r1, [r12, #32]\n\t"
        "ldr r1, [r12, #40]\n\t"
        "subs r1, r1, #1\n\t"
        "str r1, [r12, #40]\n\t"
        "bne 1b\n\t"
        "pop {r0, r4-r11, pc}\n\t");
}

void thk_dw3_plane(int8_t *out, int32_t *accrow, const int8_t *pad, uint32_t ho, uint32_t wo,
                   uint32_t row_step, uint32_t tap_step, const int8_t *w, uint32_t sw, int32_t hb,
                   int32_t shift, int32_t lo, int32_t hi) {
    /* per kernel row: (w0, w2) as an int16 pair and w1 */
    uint32_t p0 = (uint16_t)w[0] | ((uint32_t)(uint16_t)w[2] << 16), m0 = (uint16_t)w[1];
    uint32_t p1 = (uint16_t)w[3] | ((uint32_t)(uint16_t)w[5] << 16), m1 = (uint16_t)w[4];
    uint32_t p2 = (uint16_t)w[6] | ((uint32_t)(uint16_t)w[8] << 16), m2 = (uint16_t)w[7];
    uint32_t oy, ox, v, e, o;
    int32_t a0, a1;
    if (lo < -128) lo = -128;
    if (sw == 1) { /* callers: lo -128 or 0, hi 127 (SSAT 8 or USAT 7) */
        thk_dw3_job j;
        int8_t *last = (int8_t *)(void *)accrow; /* the last row: wo + 1 bytes of room */
        j.wt[0] = p0; j.wt[1] = p1; j.wt[2] = p2; j.wt[3] = m0 | (m1 << 16);
        j.wt[4] = (uint32_t)shift | (m2 << 16);
        j.row = pad; j.ts = tap_step; j.rstep = row_step;
        j.out = out; j.pairs = (wo + 1u) >> 1; j.hb = hb; j.relu = lo == 0; j.wo = wo;
        if (ho > 1) {
            j.rows = ho - 1u;
            dw3_plane_s1(&j); /* leaves j.row and j.out at the last row */
        }
        j.rows = 1;
        out = j.out;
        j.out = last;
        dw3_plane_s1(&j);
        for (ox = 0; ox < wo; ox++) out[ox] = last[ox];
        return;
    }
    for (oy = 0; oy < ho; oy++, pad += row_step) {
        const int8_t *r0 = pad, *r1 = pad + tap_step, *r2 = pad + 2u * tap_step;
        for (ox = 0; ox < wo; ox += 2, out += 2) {
            /* stride 2: out0 = w0 x0 + w1 x1 + w2 x2, out1 = w0 x2 + w1 x3 + w2 x4 */
            a0 = a1 = hb;
#define DW_ROW2(R, P, M)                                                                     \
            v = rd_w(R);                                                                    \
            e = (uint32_t)__sxtb16(v); o = sxtb16_ror8(v);                                  \
            a0 = __smlad((int32_t)P, (int32_t)e, a0); a0 = __smlabb((int32_t)M, (int32_t)o, a0); \
            a1 = __smlabt((int32_t)P, (int32_t)e, a1); a1 = __smlabt((int32_t)M, (int32_t)o, a1); \
            a1 = __smlatb((int32_t)P, (int32_t)R[4], a1); R += 4;
            DW_ROW2(r0, p0, m0)
            DW_ROW2(r1, p1, m1)
            DW_ROW2(r2, p2, m2)
            out[0] = (int8_t)out8(a0, shift, lo, hi);
            if (ox + 1 < wo) out[1] = (int8_t)out8(a1, shift, lo, hi);
        }
        out -= (wo & 1u); /* an odd row wrote one past its end: step back */
    }
}

#else /* portable C */

void thk_tile_put(thk_patch *tile, uint32_t r, uint32_t Kp, const int8_t *row) {
    thk_patch *dst = tile + (size_t)r * Kp;
    uint32_t k;
    for (k = 0; k < Kp; k++) dst[k] = row[k];
}

/* acc[i * 4 + j] = w_i . patch(r0 + j) for i < 2, j < 4 over K values, all int16 (16-bit
 * multiply-adds once vectorized); w0 and w1 may be the same row. */
static void dot_2x4(const int16_t *w0, const int16_t *w1, const thk_patch *tile, uint32_t r0,
                    uint32_t K, uint32_t Kp, int32_t acc[8]) {
    const thk_patch *p0 = tile + (size_t)r0 * Kp, *p1 = p0 + Kp, *p2 = p1 + Kp, *p3 = p2 + Kp;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    uint32_t k;
    for (k = 0; k < K; k++) {
        int32_t x0 = w0[k], x1 = w1[k];
        a0 += x0 * p0[k]; a1 += x0 * p1[k]; a2 += x0 * p2[k]; a3 += x0 * p3[k];
        a4 += x1 * p0[k]; a5 += x1 * p1[k]; a6 += x1 * p2[k]; a7 += x1 * p3[k];
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
    acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7;
}

/* The same for j < n < 4 rows with the int8 weight rows read in place (a weight used by fewer
 * than 4 rows is not worth widening first: linear layers on one input row) */
static void dot_2xn(const int8_t *w0, const int8_t *w1, const thk_patch *tile, uint32_t r0, uint32_t n,
                    uint32_t K, uint32_t Kp, int32_t acc[8]) {
    const thk_patch *p0 = tile + (size_t)r0 * Kp;
    uint32_t k, j;
    for (j = 0; j < n; j++, p0 += Kp) {
        int32_t a0 = 0, a4 = 0;
        for (k = 0; k < K; k++) {
            a0 += (int32_t)w0[k] * p0[k];
            a4 += (int32_t)w1[k] * p0[k];
        }
        acc[j] = a0;
        acc[4 + j] = a4;
    }
}

#endif

/* ---- output stage ---- */

uint8_t thk_gemm_out32(const thk_outstage *st, const thk_tensor *out, uint64_t wsum,
                       const thk_tensor *bias, int has_bias) {
    uint64_t bmax = 0, bound;
    uint32_t i;
    if (st->out_float || out->dtype != THINKER_INT8 || st->round_mode != THK_ROUND_FLOOR_ADD ||
        st->shift < 1 || st->shift > 31 || !st->acc32)
        return 0;
    for (i = 0; has_bias && i < bias->count; i++) {
        int64_t v = thk_load_int(bias->init, bias->dtype, i);
        uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        if (a > bmax) bmax = a;
    }
    bound = thk_add_sat(thk_add_sat(thk_mul_sat(128u, wsum), bmax), (uint64_t)1 << (st->shift - 1));
    return bound < ((uint64_t)1 << 31);
}

void thk_gemm_store(const thk_outstage *st, uint8_t out32, const thk_tensor *out, const int32_t *acc,
                    uint32_t n, uint32_t index, uint32_t step, int64_t bias) {
    uint32_t j;
    if (out32) { /* rshift_round with the half folded into the bias, all in int32 */
        int8_t *dst = (int8_t *)out->data + index;
        int32_t hb = (int32_t)(bias + ((int64_t)1 << (st->shift - 1))), s = st->shift;
        int32_t lo = (int32_t)st->lo, hi = (int32_t)st->hi;
#if THK_GEMM_DSP
        for (j = 0; j < n; j++, dst += step) *dst = (int8_t)out8(acc[j] + hb, s, lo, hi);
#else
        if (step == 1) { /* contiguous: the same loop, which compilers vectorize */
            for (j = 0; j < n; j++) {
                int32_t v = acc[j] + hb;
                v = v >= 0 ? v >> s : ~(~v >> s);
                v = v < lo ? lo : v;
                dst[j] = (int8_t)(v > hi ? hi : v);
            }
            return;
        }
        for (j = 0; j < n; j++, dst += step) {
            int32_t v = acc[j] + hb;
            v = v >= 0 ? v >> s : ~(~v >> s);
            v = v < lo ? lo : v; /* thk_clamp's order */
            *dst = (int8_t)(v > hi ? hi : v);
        }
#endif
        return;
    }
    for (j = 0; j < n; j++) thk_outstage_store(st, out, index + j * step, (int64_t)acc[j] + bias);
}

/* ---- tiled GEMM driver ---- */

void thk_gemm_run(const thk_gemm_job *job, uint8_t *scratch) {
    uint32_t K = job->K, Kp = thk_kpad(K), rows = job->tile ? job->tile : thk_tile_rows(Kp, job->rows), q0, r, o;
    thk_patch *tile = (thk_patch *)(void *)scratch;
    int8_t *rowbuf = (int8_t *)scratch + thk_tile_bytes(Kp, rows), *wbuf = rowbuf + Kp;
#if !THK_GEMM_DSP
    int16_t *wq = (int16_t *)(void *)(wbuf + 2u * Kp); /* two int16 weight rows: 4 Kp bytes */
#else
    uint32_t *wq = (uint32_t *)(void *)(wbuf + 2u * Kp); /* 4-aligned: tile and Kp are */
    const thk_outstage *st = job->st;
    thk_pairs k, kraw; /* the kernel's jobs: the int8 output stage, raw sums (set once) */
    k.wq = kraw.wq = wq;
    k.wq_end = kraw.wq_end = wq + Kp; /* 4 words a group of 4 values */
    k.lead = kraw.lead = (Kp >> 2) & 3u;
    k.shift = st->shift;
    k.lo = (int32_t)st->lo;
    k.hi = (int32_t)st->hi;
    k.mode = k.lo <= -128 && k.hi == 127 ? 2u : k.lo == 0 && k.hi == 127 ? 3u : 0u; /* 0: raw sums */
    k.rs = job->row_step;
    kraw.h0 = kraw.h1 = 0;
    kraw.mode = 1;
#endif
    int32_t acc[8];
    if (!K) return; /* no values: callers never build one (shapes are >= 1) */
    for (q0 = 0; q0 < job->rows; q0 += rows) {
        uint32_t np = job->rows - q0 < rows ? job->rows - q0 : rows, nr = (np + 3u) & ~3u;
        r = 0;
#if THK_GEMM_DSP
        if (job->fill_tile) {
            job->fill_tile(job, q0, np, tile, rowbuf);
            r = np;
        }
#endif
        for (; r < nr; r++) {
            int8_t *dst = rowbuf;
            if (r < np) { /* fill writes K values; the padding to Kp is 0 */
                job->fill(job, q0 + r, dst);
                for (o = K; o < Kp; o++) dst[o] = 0; /* at most 3: no memset call */
            } else {
                memset(dst, 0, Kp);
            }
            thk_tile_put(tile, r, Kp, dst);
        }
        for (o = 0; o < job->outs; o += 2) {
            uint32_t two = o + 1 < job->outs, at = job->out0 + o * job->ch_step + q0 * job->row_step;
            const int8_t *w0 = job->weight(job, o, wbuf), *w1 = two ? job->weight(job, o + 1, wbuf + Kp) : w0;
            int64_t b0 = thk_bias_at(job->bias, job->has_bias, job->bias0 + o);
            int64_t b1 = two ? thk_bias_at(job->bias, job->has_bias, job->bias0 + o + 1) : 0;
#if THK_GEMM_DSP
            if (np == 1 && !(K & 3u)) { /* a single patch row: weights straight from their rows */
                acc[0] = acc[1] = 0;
                vec_groups(acc, w0, w1, (const uint32_t *)(const void *)tile, K >> 2);
                if (job->out32) {
                    int8_t *d = (int8_t *)job->out->data + at;
                    int32_t half = (int32_t)1 << (k.shift - 1);
                    d[0] = (int8_t)out8(acc[0] + (int32_t)b0 + half, k.shift, k.lo, k.hi);
                    if (two) d[job->ch_step] = (int8_t)out8(acc[1] + (int32_t)b1 + half, k.shift, k.lo, k.hi);
                    continue;
                }
                thk_gemm_store(st, 0, job->out, acc, 1, at, job->row_step, b0);
                if (two) thk_gemm_store(st, 0, job->out, acc + 1, 1, at + job->ch_step, job->row_step, b1);
                continue;
            }
            prep_weights(wq, w0, w1, K);
            r = 0;
            if (job->out32 && np > 1 && k.mode) { /* whole pixel pairs straight into int8 outputs */
                int32_t half = (int32_t)1 << (k.shift - 1);
                k.p = (const uint32_t *)(const void *)tile;
                k.pairs = np >> 1;
                k.h0 = (int32_t)b0 + half;
                k.h1 = two ? (int32_t)b1 + half : k.h0; /* one row: its outputs twice */
                k.d0 = (int8_t *)job->out->data + at;
                k.d1 = two ? k.d0 + job->ch_step : k.d0;
                pairs_kernel(&k);
                r = np & ~1u;
            }
            for (; r < np; r += 2) { /* raw sums of one pair, then the output stage */
                uint32_t n = np - r < 2 ? np - r : 2, idx = at + r * job->row_step;
                kraw.p = (const uint32_t *)(const void *)tile + (r >> 1) * Kp;
                kraw.pairs = 1;
                kraw.d0 = (int8_t *)(void *)acc;
                pairs_kernel(&kraw);
                thk_gemm_store(st, job->out32, job->out, acc, n, idx, job->row_step, b0);
                if (two) thk_gemm_store(st, job->out32, job->out, acc + 2, n, idx + job->ch_step, job->row_step, b1);
            }
#else
            for (r = 0; np >= 4 && r < K; r++) { /* the weight rows as int16 */
                wq[r] = w0[r];
                wq[Kp + r] = w1[r];
            }
            for (r = 0; r < np; r += 4) {
                uint32_t n = np - r < 4 ? np - r : 4, idx = at + r * job->row_step;
                if (n == 4)
                    dot_2x4(wq, wq + Kp, tile, r, K, Kp, acc);
                else
                    dot_2xn(w0, w1, tile, r, n, K, Kp, acc);
                thk_gemm_store(job->st, job->out32, job->out, acc, n, idx, job->row_step, b0);
                if (two) thk_gemm_store(job->st, job->out32, job->out, acc + 4, n, idx + job->ch_step, job->row_step, b1);
            }
#endif
        }
    }
}
