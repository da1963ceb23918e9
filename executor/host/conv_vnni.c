/* Host-only int8 convolution for the numpy executor (thinker.ops.host_kernels) and the host
 * C executor (executor_kernels.c), on x86 cores with AVX-512 VNNI. It is not device code:
 * host builds of libthinker carry it, device builds do not.
 *
 * The numpy executor computes integer GEMMs in float BLAS, which caps it at the float
 * rate; VPDPBUSD does 64 exact int8 MACs per instruction. It multiplies unsigned by signed
 * bytes, so the input is stored as x + 128 and the weights stay signed:
 *   sum((x + 128) * w) = sum(x * w) + 128 * sum(w),
 * and the per-channel constant bias + half - 128 * sum(w) (``corr``, from Python) restores
 * acc + bias + half. Padding holds 128 (the value 0), so the constant holds at the borders.
 * Sums wrap modulo 2**32 (partial sums may leave int32); the result is exact because Python
 * takes a conv only when |acc + bias + half| < 2**31.
 *
 * Layout. A chunk of samples is copied into ``work`` as [C/4][sh][sw][n][hq][wq] pixels of
 * 4 bytes: four channels interleaved per pixel (VPDPBUSD's groups of 4 bytes), the padded
 * input split into sh*sw stride phases (as thinker.ops.conv._phase_planes does), so that a
 * stride-s conv is a stride-1 conv over the phases and 16 neighbouring outputs read 64
 * contiguous bytes at every kernel offset. Lanes are output positions, one accumulator per
 * output channel of a block of 16; a weight group (4 channels of one output) is broadcast from
 * memory. Positions run either along each output row (``rows``: 16-pixel blocks, the planes
 * widened to whole blocks) or over the chunk's whole phase grid (``flat``: blocks cross rows
 * and samples, the outputs falling on padding are computed and dropped), whichever computes
 * fewer blocks: small maps waste most of a row block, wide ones a little of the grid.
 * Weights come packed as [ceil(O/16)][kh*kw][C/4][16][4] (zeros past O and C). */
#include "vnni.h"

#define OBLOCK 16 /* output channels per weight block */
#define CHUNK_BYTES (1 << 19) /* work planes per chunk of samples: about L2 */

typedef struct {
    int64_t hq, wq;       /* rows and columns of one phase plane of one sample */
    int64_t cb_pixels;    /* pixels per channel block: sh*sw planes of nc samples */
    int32_t nc;           /* samples per chunk */
    int32_t flat;         /* blocks over the whole phase grid (else along output rows) */
} layout;

static layout plan(const thinker_host_conv *j)
{
    layout l;
    const int64_t reach = tap_reach(j), wq = phase_cols(j);
    const int64_t row_blocks = ceil_div(j->wo, BLOCK) * j->ho;
    l.hq = ceil_div((int64_t)j->h + j->pt + j->pb, j->sh);
    l.flat = l.hq * wq < row_blocks * BLOCK; /* positions computed per sample */
    l.wq = l.flat ? wq : (wq > ceil_div(j->wo, BLOCK) * BLOCK + reach ?
                          wq : ceil_div(j->wo, BLOCK) * BLOCK + reach);
    const int64_t sample = ceil_div(j->c, 4) * j->sh * j->sw * l.hq * l.wq * 4;
    l.nc = (int32_t)(sample * j->n <= CHUNK_BYTES ? j->n : (CHUNK_BYTES / sample > 0 ?
                                                          CHUNK_BYTES / sample : 1));
    if (!l.flat)
        l.nc = 1;
    l.cb_pixels = (int64_t)j->sh * j->sw * l.nc * l.hq * l.wq;
    return l;
}

/* the planes, a tail the flat grid's last block may read, then one interleaved input row */
static int64_t planes_bytes(const thinker_host_conv *j, const layout *l)
{
    const int64_t tail = BLOCK + (int64_t)(j->kw - 1) * j->dw / j->sw;
    return (ceil_div(j->c, 4) * l->cb_pixels + tail) * 4;
}

static int64_t work_bytes_of(const thinker_host_conv *j, int kernel)
{
    if (!kernel || !host_job_valid(j) || j->kh * j->kw > 256)
        return -1;
#ifdef HOST_AVXVNNI
    if (kernel == KERNEL_256)
        return thk_avxvnni_work_bytes(j);
#endif
    const layout l = plan(j);
    return planes_bytes(j, &l) + ceil_div(j->w_in, 64) * 64 * 4;
}

int64_t thinker_host_conv_work_bytes(const thinker_host_conv *j)
{
    return work_bytes_of(j, pick_kernel(THINKER_HOST_VNNI));
}

int64_t thinker_host_packed_weight_bytes(int32_t o, int32_t c, int32_t taps)
{
    return ceil_div(o, OBLOCK) * OBLOCK * taps * ceil_div(c, 4) * 4;
}

void thinker_host_pack_conv_weights(const int8_t *w, int32_t o, int32_t c, int32_t taps,
                                    int8_t *dst)
{
    const int64_t cb = ceil_div(c, 4);
    memset(dst, 0, (size_t)thinker_host_packed_weight_bytes(o, c, taps));
    for (int32_t oc = 0; oc < o; oc++)
        for (int32_t ch = 0; ch < c; ch++)
            for (int32_t t = 0; t < taps; t++)
                dst[((((int64_t)oc / OBLOCK * taps + t) * cb + ch / 4) * OBLOCK + oc % OBLOCK) *
                    4 + ch % 4] = w[((int64_t)oc * c + ch) * taps + t];
}

int thinker_host_features(void)
{
#ifdef HOST_VNNI
    int bits = 0;
    const char *isa = getenv("THINKER_HOST_ISA");
    __builtin_cpu_init(); /* (no cached answer: the library keeps no mutable globals) */
    if (!(isa && !strcmp(isa, "avxvnni")) && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni"))
        bits = THINKER_HOST_VNNI | (__builtin_cpu_supports("avx512vbmi") &&
                                    __builtin_cpu_supports("avx512vbmi2") ?
                                    THINKER_HOST_DEPTHWISE : 0);
#ifdef HOST_AVXVNNI
    /* CPUID leaf 7 subleaf 1, EAX bit 4 (GCC 12's __builtin_cpu_supports misses it) */
    unsigned a, b, c, d;
    if (__builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1u))
        bits |= THINKER_HOST_VNNI256;
#endif
    return bits;
#else
    return 0;
#endif
}

#ifdef HOST_VNNI

/* ``count`` (<= 64) pixels of four channel rows -> interleaved 4-byte pixels, each byte
 * + 128; nothing read or written past ``count``. */
VNNI_TARGET static void interleave64(const int8_t *const src[4], int64_t col, uint32_t *dst,
                                     int64_t count)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __mmask64 m = count >= 64 ? ~0ull : (1ull << count) - 1ull;
    __m512i v[4];
    for (int k = 0; k < 4; k++)
        v[k] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src[k] + col), flip);
    /* per 128-bit lane: byte pairs, then quads (pixels 0-3, 4-7, 8-11, 12-15 of the lane) */
    const __m512i ab_lo = _mm512_unpacklo_epi8(v[0], v[1]);
    const __m512i ab_hi = _mm512_unpackhi_epi8(v[0], v[1]);
    const __m512i cd_lo = _mm512_unpacklo_epi8(v[2], v[3]);
    const __m512i cd_hi = _mm512_unpackhi_epi8(v[2], v[3]);
    const __m512i q0 = _mm512_unpacklo_epi16(ab_lo, cd_lo);
    const __m512i q1 = _mm512_unpackhi_epi16(ab_lo, cd_lo);
    const __m512i q2 = _mm512_unpacklo_epi16(ab_hi, cd_hi);
    const __m512i q3 = _mm512_unpackhi_epi16(ab_hi, cd_hi);
    /* transpose the 4x4 grid of 128-bit lanes: output block L = lane L of q0..q3 */
    const __m512i t0 = _mm512_shuffle_i32x4(q0, q1, 0x44), t1 = _mm512_shuffle_i32x4(q2, q3, 0x44);
    const __m512i t2 = _mm512_shuffle_i32x4(q0, q1, 0xEE), t3 = _mm512_shuffle_i32x4(q2, q3, 0xEE);
    const __m512i out[4] = {_mm512_shuffle_i32x4(t0, t1, 0x88), _mm512_shuffle_i32x4(t0, t1, 0xDD),
                            _mm512_shuffle_i32x4(t2, t3, 0x88), _mm512_shuffle_i32x4(t2, t3, 0xDD)};
    for (int64_t k = 0; k < 4 && k * 16 < count; k++) {
        const int64_t left = count - k * 16;
        _mm512_mask_storeu_epi32(dst + col + k * 16,
                                 (__mmask16)(left >= 16 ? 0xFFFFu : (1u << left) - 1u), out[k]);
    }
}

/* ``count`` pixels of four channel rows, interleaved into dst */
VNNI_TARGET static void interleave(const int8_t *const src[4], int64_t count, uint32_t *dst)
{
    for (int64_t col = 0; col < count; col += 64)
        interleave64(src, col, dst, count - col);
}

/* A chunk's input into work (its padding already holds 128): x + 128, four channels per
 * pixel, split into stride phases. A row is interleaved into ``line`` (the work's tail) and
 * copied to its column phases. Channels past c repeat channel cb*4: their weights are zero. */
VNNI_TARGET static void fill_work(const thinker_host_conv *j, const layout *l, const int8_t *x,
                                  int32_t samples, uint8_t *work)
{
    const int32_t c = j->c, h = j->h, w = j->w_in, sh = j->sh, sw = j->sw;
    const int64_t plane = l->nc * l->hq * l->wq;
    uint32_t *line = (uint32_t *)(work + planes_bytes(j, l));
    const __m512i even_words = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8,
                                                6, 4, 2, 0);
    /* unpadded columns, stride 1: a channel block's rows are one run in the planes too */
    const int32_t whole = sw == 1 && sh == 1 && l->wq == w;
    /* a linear's rows (1x1 maps, no padding): [samples][c/4] words -> [c/4][samples] */
    if (h * w == 1 && c % 4 == 0 && !(j->pt | j->pl | j->pb | j->pr)) {
        for (int32_t cb = 0; cb < c / 4; cb++) {
            uint32_t *dst = (uint32_t *)work + cb * l->cb_pixels;
            for (int32_t s = 0; s < samples; s++) {
                uint32_t v;
                memcpy(&v, x + (int64_t)s * c + cb * 4, 4);
                dst[s] = v ^ 0x80808080u;
            }
        }
        return;
    }
    /* the stride phases some kernel tap reads (a 1x1 stride-2 conv reads one of four) */
    uint32_t rows_read = 0, cols_read = 0;
    for (int32_t i = 0; i < j->kh; i++)
        rows_read |= 1u << (i * j->dh % sh);
    for (int32_t t = 0; t < j->kw; t++)
        cols_read |= 1u << (t * j->dw % sw);
    for (int32_t s = 0; s < samples; s++) {
        for (int32_t cb = 0; cb < (c + 3) / 4; cb++) {
            const int32_t lanes = c - cb * 4 < 4 ? c - cb * 4 : 4;
            if (whole) {
                const int8_t *src[4];
                for (int32_t k = 0; k < 4; k++)
                    src[k] = x + ((int64_t)s * c + cb * 4 + (k < lanes ? k : 0)) * h * w;
                interleave(src, h * w, (uint32_t *)work + cb * l->cb_pixels +
                           ((int64_t)s * l->hq + j->pt) * l->wq);
                continue;
            }
            for (int32_t r = 0; r < h; r++) {
                const int32_t pr = r + j->pt; /* padded row: phase pr % sh, plane row pr / sh */
                if (!(rows_read >> (pr % sh) & 1u))
                    continue;
                const int8_t *src[4];
                for (int32_t k = 0; k < 4; k++)
                    src[k] = x + (((int64_t)s * c + cb * 4 + (k < lanes ? k : 0)) * h + r) * w;
                uint32_t *row = (uint32_t *)work + cb * l->cb_pixels +
                                (int64_t)(pr % sh) * sw * plane +
                                ((int64_t)s * l->hq + pr / sh) * l->wq;
                if (sw == 1) {
                    interleave(src, w, row + j->pl);
                    continue;
                }
                interleave(src, w, line);
                for (int32_t b = 0; b < sw; b++) {
                    if (!(cols_read >> b & 1u))
                        continue;
                    /* padded column q*sw + b holds input column q*sw + b - pl */
                    int32_t q = (int32_t)ceil_div(j->pl - b > 0 ? j->pl - b : 0, sw);
                    int32_t in = q * sw + b - j->pl;
                    uint32_t *dst = row + b * plane + q;
                    if (sw == 2) /* 16 words of every other column per permute */
                        for (; in + 32 <= w; in += 32, dst += 16)
                            _mm512_storeu_si512(dst, _mm512_permutex2var_epi32(
                                _mm512_loadu_si512(line + in), even_words,
                                _mm512_loadu_si512(line + in + 16)));
                    for (; in < w; in += sw)
                        *dst++ = line[in];
                }
            }
        }
    }
}

/* acc[k] = the 16 positions from ``at`` (a pixel index into each channel block's phases) times
 * output channel k < ``used`` of weight block ``wt`` (its groups are OBLOCK apart). */
#define ACCUMULATE(acc, at, used)                                                             \
    do {                                                                                      \
        for (int k = 0; k < (used); k++)                                                      \
            acc[k] = _mm512_setzero_si512();                                                  \
        const int32_t *wt = wblock;                                                           \
        for (int32_t t = 0; t < taps; t++) {                                                  \
            const uint32_t *px = work + (at) + tap[t];                                        \
            for (int32_t cb = 0; cb < cblocks; cb++, px += l->cb_pixels, wt += OBLOCK) {      \
                const __m512i xin = _mm512_loadu_si512(px);                                   \
                for (int k = 0; k < (used); k++)                                              \
                    acc[k] = _mm512_dpbusd_epi32(acc[k], xin, _mm512_set1_epi32(wt[k]));      \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* The chunk's outputs; ``first`` is its first sample. ``used`` (a constant where inlined) is
 * how many of a weight block's 16 output channels get accumulators: 8 when the conv has at
 * most 8 outputs, so those convs do half the multiply-adds. */
VNNI_TARGET static inline __attribute__((always_inline)) void conv_chunk_n(
    const thinker_host_conv *j, const layout *l, const uint32_t *work, int32_t first,
    int32_t samples, const int used)
{
    const int32_t cblocks = (j->c + 3) / 4, taps = j->kh * j->kw;
    const int64_t plane = l->nc * l->hq * l->wq, map = (int64_t)j->ho * j->wo;
    int64_t tap[256];
    for (int32_t i = 0, t = 0; i < j->kh; i++)
        for (int32_t k = 0; k < j->kw; k++, t++)
            tap[t] = ((int64_t)(i * j->dh % j->sh) * j->sw + k * j->dw % j->sw) * plane +
                     (int64_t)(i * j->dh / j->sh) * l->wq + k * j->dw / j->sw;
    for (int32_t ob = 0; ob * OBLOCK < j->o; ob++) {
        const int32_t outs = j->o - ob * OBLOCK < OBLOCK ? j->o - ob * OBLOCK : OBLOCK;
        const int32_t *wblock = (const int32_t *)j->w + (int64_t)ob * taps * cblocks * OBLOCK;
        __m512i acc[OBLOCK];
        if (!l->flat) {
            for (int32_t y = 0; y < j->ho; y++)
                for (int32_t x = 0; x < j->wo; x += BLOCK) {
                    ACCUMULATE(acc, y * l->wq + x, used);
                    const int32_t count = j->wo - x < BLOCK ? j->wo - x : BLOCK;
                    const __mmask16 mask = (__mmask16)((1u << count) - 1u);
                    for (int k = 0; k < outs; k++)
                        store(j, ((int64_t)first * j->o + ob * OBLOCK + k) * map + y * j->wo + x,
                              mask, finish(j, acc[k], ob * OBLOCK + k));
                }
            continue;
        }
        const int64_t positions = (int64_t)samples * l->hq * l->wq;
        grid_cursor cursor = {0, 0, 0};
        for (int64_t p = 0; p < positions; p += BLOCK) {
            __mmask16 masks[BLOCK];
            int64_t at[BLOCK];
            const int runs = grid_runs(j, &cursor, p, positions, l->hq, l->wq, j->o * map,
                                       masks, at);
            if (!runs)
                continue;
            ACCUMULATE(acc, p, used);
            for (int k = 0; k < outs; k++)
                store_runs(j, ((int64_t)first * j->o + ob * OBLOCK + k) * map,
                           finish(j, acc[k], ob * OBLOCK + k), runs, masks, at);
        }
    }
}

VNNI_TARGET static void conv_chunk(const thinker_host_conv *j, const layout *l,
                                   const uint32_t *work, int32_t first, int32_t samples)
{
    if (j->o <= 8)
        conv_chunk_n(j, l, work, first, samples, 8);
    else
        conv_chunk_n(j, l, work, first, samples, OBLOCK);
}

#define ROWS 4 /* rows sharing each weight load: four independent VPDPBUSD chains */

/* A linear (1x1 conv on 1x1 maps; fill_work put its rows' input words in ``work`` as
 * [C/4][rows]): lanes are 16 output channels instead of 16 positions, so outputs are stored
 * contiguously; each row's word is broadcast against the packed weights (64 MACs per
 * VPDPBUSD), four rows per weight load (``rows`` is a constant where inlined). */
VNNI_TARGET static inline __attribute__((always_inline)) void linear_group(
    const thinker_host_conv *j, const layout *l, const uint32_t *work, int32_t first,
    int32_t s, int32_t rows)
{
    const int32_t cblocks = (j->c + 3) / 4;
    const __m512i lo = _mm512_set1_epi32(j->lo), hi = _mm512_set1_epi32(j->hi);
    const __m128i shift = _mm_cvtsi32_si128(j->shift);
    for (int32_t ob = 0; ob * OBLOCK < j->o; ob++) {
        const int8_t *wt = j->w + (int64_t)ob * cblocks * 64;
        const uint32_t *in = work + s;
        __m512i acc[ROWS];
        for (int32_t r = 0; r < rows; r++)
            acc[r] = _mm512_setzero_si512();
        for (int32_t cb = 0; cb < cblocks; cb++, in += l->cb_pixels) {
            const __m512i w = _mm512_loadu_si512(wt + cb * 64);
            for (int32_t r = 0; r < rows; r++)
                acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32((int32_t)in[r]), w);
        }
        const __m512i corr = _mm512_loadu_si512(j->corr + ob * OBLOCK);
        const int32_t outs = j->o - ob * OBLOCK < OBLOCK ? j->o - ob * OBLOCK : OBLOCK;
        for (int32_t r = 0; r < rows; r++)
            store(j, (int64_t)(first + s + r) * j->o + ob * OBLOCK,
                  (__mmask16)((1u << outs) - 1u), requant(acc[r], corr, shift, lo, hi));
    }
}

VNNI_TARGET static void linear_rows(const thinker_host_conv *j, const layout *l,
                                    const uint32_t *work, int32_t first, int32_t samples)
{
    int32_t s = 0;
    for (; s + ROWS <= samples; s += ROWS)
        linear_group(j, l, work, first, s, ROWS);
    for (; s < samples; s++) /* the last rows one at a time (batch 1: no wasted chains) */
        linear_group(j, l, work, first, s, 1);
}

#endif

int thinker_host_conv_s8(thinker_host_conv *j)
{
#ifdef HOST_VNNI
    const int kernel = job_kernel(j, THINKER_HOST_VNNI, work_bytes_of);
    if (!kernel)
        return 1;
#ifdef HOST_AVXVNNI
    if (kernel == KERNEL_256)
        return thk_avxvnni_conv_s8(j);
#endif
    const int32_t linear = j->h == 1 && j->w_in == 1 && j->kh == 1 && j->kw == 1 &&
                           !(j->pt | j->pl | j->pb | j->pr);
    const layout l = plan(j);
    const int64_t sample = (int64_t)j->c * j->h * j->w_in;
    /* every call writes the same interior, so the padding is set once per job */
    if (!j->prepared)
        memset(j->work, 0x80, (size_t)planes_bytes(j, &l));
    j->prepared = KERNEL_512;
    for (int32_t n = 0; n < j->n; n += l.nc) {
        const int32_t samples = j->n - n < l.nc ? j->n - n : l.nc;
        fill_work(j, &l, j->x + n * sample, samples, j->work);
        if (linear)
            linear_rows(j, &l, (const uint32_t *)j->work, n, samples);
        else
            conv_chunk(j, &l, (const uint32_t *)j->work, n, samples);
    }
    return 0;
#else
    (void)j;
    return 1;
#endif
}
