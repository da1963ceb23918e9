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

/* patch row r of the tile from Kp natural int8 values (the row buffer), widened */
static void tile_put(thk_patch *tile, uint32_t r, uint32_t Kp, const int8_t *row) {
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

/* A 3x3 depthwise output map, stride 1 or 2, one naked routine for every row (every register
 * in use in the pixel loop; the job pointer and the loop's entry wait on the stack). Per output
 * pixel pair and kernel row: one LDR of 4 input bytes, two SXTB16, four multiply-adds (stride
 * 2: and one LDRSB of the fifth byte, a fifth multiply-add) onto accumulators that start at
 * hb = bias + half; then >> shift, SSAT 8 (or USAT 7 for a ReLU) and two STRB: the output
 * stage in the loop. Row 2 is read at row + 2 ts (LDR's shifted register offset; stride 2
 * steps the row pointer instead: LDRSB has no such offset) and the shift sits in the bottom
 * byte of the register whose top half is w7, so hb has a register. Between rows: one LDRD of
 * the input and output skips, one of the pair bytes and the rows left. A row of odd width
 * writes one byte past its end (the next row's first, written again after; callers give the
 * plane's last row a scratch destination when nothing follows it). */

/* stride 1: x0..x3 of the row at OFF; out0 += w0 x0 + w2 x2 + w1 x1, out1 += w0 x1 + w2 x3 + w1 x2 */
#define DW_S1_ROW(W, WX, T0, T1, OFF, A0, A1)                                               \
    "ldr lr, " OFF "\n\t"                                                                  \
    "sxtb16 r12, lr\n\t"                                                                   \
    "sxtb16 lr, lr, ror #8\n\t"                                                            \
    "smlad r10, " W ", r12, " A0 "\n\t"                                                    \
    T0 " r10, " WX ", lr, r10\n\t"                                                         \
    "smlad r11, " W ", lr, " A1 "\n\t"                                                     \
    T1 " r11, " WX ", r12, r11\n\t"

/* stride 2: x0..x4 of the row at r1 (the fifth byte's load may step r1: STEP5);
 * out0 += w0 x0 + w2 x2 + w1 x1, out1 += w0 x2 + w1 x3 + w2 x4 */
#define DW_S2_ROW(W, WX, T0, T1, A0, A1, STEP5)                                             \
    "ldr lr, [r1]\n\t"                                                                     \
    "sxtb16 r12, lr\n\t"                                                                   \
    "sxtb16 lr, lr, ror #8\n\t"                                                            \
    "smlad r10, " W ", r12, " A0 "\n\t"                                                    \
    "smlatb r11, r12, " W ", " A1 "\n\t"                                                   \
    T0 " r10, " WX ", lr, r10\n\t"                                                         \
    T1 " r11, " WX ", lr, r11\n\t"                                                         \
    "ldrsb r12, [r1, #4]" STEP5 "\n\t"                                                     \
    "smlabt r11, r12, " W ", r11\n\t"

#define DW_OUT(SAT)                                                                         \
    "asr r10, r10, r8\n\t"                                                                 \
    "asr r11, r11, r8\n\t"                                                                 \
    SAT                                                                                    \
    "strb r10, [r0], #1\n\t"                                                               \
    "strb r11, [r0], #1\n\t"

/* kernel rows 1, 2, then 0, whose load steps the row pointer to the next pair */
#define DW_S1_LOOP(LABEL, SAT)                                                              \
    LABEL ":\n\t"                                                                          \
    DW_S1_ROW("r5", "r7", "smlatb", "smlatt", "[r1, r2]", "r3", "r3")                      \
    DW_S1_ROW("r6", "r8", "smlatb", "smlatt", "[r1, r2, lsl #1]", "r10", "r11")            \
    DW_S1_ROW("r4", "r7", "smlabb", "smlabt", "[r1], #2", "r10", "r11")                    \
    DW_OUT(SAT)                                                                            \
    "cmp r0, r9\n\t"                                                                       \
    "bne " LABEL "b\n\t"                                                                   \
    "b 9f\n\t"

/* r1 at kernel row 2 (the kernel starts it there): rows 2, 1, then 0, whose fifth byte's
 * load steps r1 to the next pair's row 0, and on to its row 2 */
#define DW_S2_LOOP(LABEL, SAT)                                                              \
    LABEL ":\n\t"                                                                          \
    DW_S2_ROW("r6", "r8", "smlatb", "smlatt", "r3", "r3", "")                              \
    "sub r1, r1, r2\n\t"                                                                   \
    DW_S2_ROW("r5", "r7", "smlatb", "smlatt", "r10", "r11", "")                            \
    "sub r1, r1, r2\n\t"                                                                   \
    DW_S2_ROW("r4", "r7", "smlabb", "smlabt", "r10", "r11", "!")                           \
    DW_OUT(SAT)                                                                            \
    "add r1, r1, r2, lsl #1\n\t"                                                           \
    "cmp r0, r9\n\t"                                                                       \
    "bne " LABEL "b\n\t"                                                                   \
    "b 9f\n\t"

#define DW_SSAT "ssat r10, #8, r10\n\tssat r11, #8, r11\n\t"
#define DW_USAT "usat r10, #7, r10\n\tusat r11, #7, r11\n\t"

__attribute__((naked, noinline)) void thk_dw3_rows(thk_dw3_job *job) {
    __asm__ volatile(
        "push {r0, r4-r11, lr}\n\t"
        "sub sp, #4\n\t"               /* [sp] the pixel loop's entry, [sp, #4] job */
        "ldr r1, [r0, #52]\n\t"
        "ldr r2, =2f\n\t"
        "cmp r1, #1\n\t"
        "it eq\n\t"
        "ldreq r2, =3f\n\t"
        "cmp r1, #2\n\t"
        "it eq\n\t"
        "ldreq r2, =4f\n\t"
        "cmp r1, #3\n\t"
        "it eq\n\t"
        "ldreq r2, =5f\n\t"
        "orr r2, r2, #1\n\t"           /* Thumb state for the loads into pc */
        "str r2, [sp]\n\t"
        "ldmia r0, {r4-r8}\n\t"
        "ldrd r1, r2, [r0, #20]\n\t"   /* row, ts */
        "ldr r9, [r0, #36]\n\t"
        "ldrd r0, r3, [r0, #44]\n\t"   /* out, hb */
        "add r9, r0, r9\n\t"           /* the row's end: out + 2 pairs */
        "ldr pc, [sp]\n\t"
        DW_S1_LOOP("2", DW_SSAT)
        DW_S1_LOOP("3", DW_USAT)
        DW_S2_LOOP("4", DW_SSAT)
        DW_S2_LOOP("5", DW_USAT)
        "9:\n\t"
        "ldr r12, [sp, #4]\n\t"
        "ldrd r10, r11, [r12, #28]\n\t" /* in_skip, out_skip */
        "add r1, r1, r10\n\t"
        "add r0, r0, r11\n\t"
        "ldrd r10, r11, [r12, #36]\n\t" /* pair bytes, rows */
        "add r9, r0, r10\n\t"
        "subs r11, r11, #1\n\t"
        "str r11, [r12, #40]\n\t"
        "it ne\n\t"
        "ldrne pc, [sp]\n\t"
        "add sp, #4\n\t"
        "pop {r0, r4-r11, pc}\n\t"
        ".ltorg\n\t");
}

__attribute__((naked, noinline)) void thk_copy_rows(int8_t *dst, const int8_t *src, uint32_t rows,
                                                   uint32_t n, uint32_t skip) {
    __asm__ volatile(
        "push {r4-r6}\n\t"
        "ldr r4, [sp, #12]\n\t"      /* dst skip: L - n */
        "1:\n\t"
        "subs r5, r3, #4\n\t"
        "blt 3f\n\t"
        "2:\n\t"
        "ldr r6, [r1], #4\n\t"
        "str r6, [r0], #4\n\t"
        "subs r5, #4\n\t"
        "bge 2b\n\t"
        "3:\n\t"
        "adds r5, #4\n\t"
        "beq 5f\n\t"
        "4:\n\t"
        "ldrb r6, [r1], #1\n\t"
        "strb r6, [r0], #1\n\t"
        "subs r5, #1\n\t"
        "bne 4b\n\t"
        "5:\n\t"
        "add r0, r0, r4\n\t"
        "subs r2, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r6}\n\t"
        "bx lr\n\t");
}

#else /* portable C */

/* patch row r of the tile from Kp natural int8 values (the row buffer), widened */
static void tile_put(thk_patch *tile, uint32_t r, uint32_t Kp, const int8_t *row) {
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
        int32_t s = st->shift, hb = (int32_t)bias + (int32_t)(1u << (s - 1)); /* 0 < s < 32, int32 bias */
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
    k.mode = st->lo <= -128 && st->hi == 127 ? 2u : st->lo == 0 && st->hi == 127 ? 3u : 0u; /* 0: raw sums */
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
            tile_put(tile, r, Kp, dst);
        }
        for (o = 0; o < job->outs; o += 2) {
            uint32_t two = o + 1 < job->outs, at = job->out0 + o * job->ch_step + q0 * job->row_step;
            const int8_t *w0 = job->weight(job, o, wbuf), *w1 = two ? job->weight(job, o + 1, wbuf + Kp) : w0;
            int64_t b0 = thk_bias_at(job->bias, job->has_bias, job->bias0 + o);
            int64_t b1 = two ? thk_bias_at(job->bias, job->has_bias, job->bias0 + o + 1) : 0;
#if THK_GEMM_DSP
            if (np == 1 && !(K & 3u)) { /* a single patch row: weights straight from their rows */
                int32_t h = job->out32 ? (int32_t)(1u << (st->shift - 1)) : 0; /* out32: bias + half */
                acc[0] = h ? (int32_t)b0 + h : 0;
                acc[1] = h ? (int32_t)b1 + h : 0;
                vec_groups(acc, w0, w1, (const uint32_t *)(const void *)tile, K >> 2);
                if (h) {
                    int8_t *d = (int8_t *)job->out->data + at;
                    d[0] = (int8_t)out8(acc[0], st->shift, (int32_t)st->lo, (int32_t)st->hi);
                    if (two) d[job->ch_step] = (int8_t)out8(acc[1], st->shift, (int32_t)st->lo, (int32_t)st->hi);
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
