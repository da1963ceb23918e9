/* What the host int8 kernels (conv_vnni.c, depthwise_vnni.c) share: the target attributes,
 * the output stage on 16 lanes, and the runs of valid outputs in a block of the flat grid. */
#ifndef THINKER_HOST_VNNI_H
#define THINKER_HOST_VNNI_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "thinker_host.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HOST_VNNI 1
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define VBMI_TARGET \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2")))
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11)
#include <cpuid.h>
#define HOST_AVXVNNI 1 /* conv_avxvnni.c: VEX VPDPBUSD (GCC 11+, clang 12+) */
/* conv_avxvnni.c is compiled with -mno-avx512f (executor/Makefile): the code an AVX-VNNI-only
 * core runs (VEX encodings, 16 ymm registers) even in a -march=native build on a CPU that also
 * has AVX-512, as the tests run it */
#define AVXVNNI_TARGET __attribute__((target("avx2,avxvnni")))
int64_t thk_avxvnni_work_bytes(const thinker_host_conv *j);
int thk_avxvnni_conv_s8(thinker_host_conv *j);
int64_t thk_avxvnni_depthwise_work_bytes(const thinker_host_conv *j);
int thk_avxvnni_depthwise_s8(thinker_host_conv *j);
#endif
#endif

#define BLOCK 16 /* output positions per block (lanes) */

static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* What every conv kernel needs of a job: positive sizes and geometry, an int8 or int16
 * output whose clamp lies inside its type (both kernel sets then store the same values: the
 * 512-bit ones truncate, the 256-bit ones saturate), a right shift of 0..31. */
static inline int host_job_valid(const thinker_host_conv *j)
{
    const int32_t top = j->out_bytes == 1 ? 127 : 32767;
    return (j->out_bytes == 1 || j->out_bytes == 2) && j->lo >= -top - 1 && j->hi <= top &&
           j->lo <= j->hi && j->shift >= 0 && j->shift <= 31 && j->n > 0 && j->c > 0 &&
           j->h > 0 && j->w_in > 0 && j->o > 0 && j->kh > 0 && j->kw > 0 && j->sh > 0 &&
           j->sw > 0 && j->dh > 0 && j->dw > 0 && j->ho > 0 && j->wo > 0 &&
           (j->pt | j->pl | j->pb | j->pr) >= 0;
}

/* The kernels a job may run on: conv_vnni.c / depthwise_vnni.c (AVX-512) or conv_avxvnni.c */
#define KERNEL_512 1
#define KERNEL_256 2

/* the kernel this CPU runs for a job family whose AVX-512 kernel needs feature ``bit512``
 * (THINKER_HOST_VNNI or THINKER_HOST_DEPTHWISE), or 0 */
static inline int pick_kernel(int bit512)
{
    const int features = thinker_host_features();
    return features & bit512 ? KERNEL_512 : features & THINKER_HOST_VNNI256 ? KERNEL_256 : 0;
}

/* The kernel that runs job ``j``, or 0 when the first call must refuse it (nothing written).
 * A new job (prepared == 0) takes this CPU's kernel if its work is large enough for it
 * (``work_bytes_of``: the family's -1 or bytes); a 256-bit one is marked -KERNEL_256 (set
 * up on this call: conv_avxvnni.c). Later calls keep the kernel ``prepared`` recorded. */
static inline int job_kernel(thinker_host_conv *j, int bit512,
                             int64_t (*work_bytes_of)(const thinker_host_conv *, int))
{
    if (j->prepared)
        return j->prepared < 0 ? -j->prepared : j->prepared;
    const int kernel = pick_kernel(bit512);
    const int64_t need = work_bytes_of(j, kernel);
    if (need < 0 || j->work_bytes < need)
        return 0;
    if (kernel == KERNEL_256)
        j->prepared = -KERNEL_256;
    return kernel;
}

/* columns of one stride phase plane of the padded input */
static inline int64_t phase_cols(const thinker_host_conv *j)
{
    return ceil_div((int64_t)j->w_in + j->pl + j->pr, j->sw);
}

/* the widest tap column offset inside a phase plane */
static inline int64_t tap_reach(const thinker_host_conv *j)
{
    return (int64_t)(j->kw - 1) * j->dw / j->sw;
}

#ifdef HOST_VNNI

/* The output stage on 16 lanes: acc + corr (bias + half - 128 * sum(w)), arithmetic right
 * shift, clamp to [lo, hi]. Loops hoist the broadcasts of shift, lo and hi: a store through a
 * byte pointer would otherwise make the compiler reload them from the job. */
VNNI_TARGET static inline __m512i requant(__m512i acc, __m512i corr, __m128i shift, __m512i lo,
                                          __m512i hi)
{
    const __m512i v = _mm512_sra_epi32(_mm512_add_epi32(acc, corr), shift);
    return _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
}

/* requant() with output channel oc's correction in every lane (lanes are positions) */
VNNI_TARGET static inline __m512i finish(const thinker_host_conv *j, __m512i acc, int32_t oc)
{
    return requant(acc, _mm512_set1_epi32(j->corr[oc]), _mm_cvtsi32_si128(j->shift),
                   _mm512_set1_epi32(j->lo), _mm512_set1_epi32(j->hi));
}

VNNI_TARGET static inline void store(const thinker_host_conv *j, int64_t at, __mmask16 mask,
                                     __m512i v)
{
    /* narrowed in registers, then a masked store: VPMOVDB straight to memory is microcoded
     * on some cores (measured: most of a depthwise conv's time on this machine's Zen) */
    if (j->out_bytes == 1) {
        __m128i b = _mm512_cvtepi32_epi8(v);
        __asm__("" : "+v"(b)); /* keeps the compiler from fusing them back into VPMOVDB */
        _mm_mask_storeu_epi8((int8_t *)j->out + at, mask, b);
    } else {
        __m256i h = _mm512_cvtepi32_epi16(v);
        __asm__("" : "+v"(h));
        _mm256_mask_storeu_epi16((int16_t *)j->out + at, mask, h);
    }
}

/* A walk over the flat grid of samples x hq x wq positions, a block of 16 at a time: the
 * row holding the next block's first position (no divisions per block). */
typedef struct {
    int64_t row; /* its first position */
    int64_t s, y;
} grid_cursor;

/* The valid outputs among flat positions [p, p + 16) (the cursor's block; it moves on to the
 * next) of a grid whose valid corner is ho x wo, as runs of lanes: masks[r] marks a run's
 * lanes and at[r] is where its lane 0 would go (sample * per_sample + y * wo + x - lane), so
 * that a masked store of the whole vector at ``at`` puts each run in place with no lane
 * shuffling. ``at`` may lie up to 15 elements before the output; masked-off lanes are never
 * accessed (AVX-512 masked stores do not touch them, nor fault on them), so no byte before
 * the output is read or written: the numpy side still allocates a margin there, the C
 * executor passes its arena tensors as they are. Runs continuing in memory share an ``at``
 * and are joined. */
static inline int grid_runs(const thinker_host_conv *j, grid_cursor *cur, int64_t p,
                            int64_t positions, int64_t hq, int64_t wq, int64_t per_sample,
                            __mmask16 masks[BLOCK], int64_t at[BLOCK])
{
    const int64_t end = p + BLOCK < positions ? p + BLOCK : positions;
    int runs = 0;
    while (cur->row < end) {
        if (cur->y < j->ho) { /* valid: columns [0, wo) of the row, inside the block */
            const int64_t a = cur->row > p ? cur->row : p;
            const int64_t b = cur->row + j->wo < end ? cur->row + j->wo : end;
            if (a < b) {
                const __mmask16 bits = (__mmask16)(((1u << (b - a)) - 1u) << (a - p));
                const int64_t lane0 = cur->s * per_sample + cur->y * j->wo + (a - cur->row) -
                                      (a - p);
                if (runs && at[runs - 1] == lane0)
                    masks[runs - 1] |= bits;
                else {
                    masks[runs] = bits;
                    at[runs++] = lane0;
                }
            }
        }
        if (cur->row + wq > p + BLOCK)
            break; /* the row goes on into the next block */
        cur->row += wq;
        if (++cur->y == hq) {
            cur->y = 0;
            cur->s++;
        }
    }
    return runs;
}

/* the 16 lanes' outputs of one channel into its runs (``base`` + at[r]) */
VNNI_TARGET static inline void store_runs(const thinker_host_conv *j, int64_t base, __m512i v,
                                          int runs, const __mmask16 *masks, const int64_t *at)
{
    for (int r = 0; r < runs; r++)
        store(j, base + at[r], masks[r], v);
}

#endif
#endif
