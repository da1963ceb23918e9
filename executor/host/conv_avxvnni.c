/* Host-only int8 convolution, linear and depthwise convolution on 256-bit AVX-VNNI (VEX
 * VPDPBUSD: Intel cores since Alder Lake, which dropped AVX-512), for CPUs without AVX-512
 * VNNI. Same jobs, packed weights and arithmetic as conv_vnni.c (x + 128 times signed weights,
 * ``corr`` per channel restoring acc + bias + half, sums exact modulo 2**32); the entry points
 * of conv_vnni.c and depthwise_vnni.c choose these kernels when thinker_host_features()
 * reports THINKER_HOST_VNNI256 without the AVX-512 bits. Built with -mno-avx512f (Makefile).
 *
 * A simpler layout than the 512-bit kernel's: one sample at a time in ``work`` as
 * [C/4][sh][sw][hq][wq] 4-byte pixels (four channels interleaved, + 128, stride phases), the
 * phase planes wide enough that 8 outputs along a row read 32 contiguous bytes at every tap.
 * Lanes are 8 output positions, along one output row, or over the flat plane grid where maps
 * are narrow (positions past the valid columns computed and dropped); 8 output channels per
 * pass keep 8 accumulators in registers. A linear (1x1 maps) has output channels as lanes,
 * each row's input word broadcast against the packed weights. */
#include "vnni.h"

#ifdef HOST_AVXVNNI

#define LANES 8
#define WBLOCK 16 /* output channels per packed weight block (conv_vnni.c) */
#define ROWS 4    /* linear rows sharing each weight load */

typedef struct {
    int64_t hq, wq;      /* rows and columns of one phase plane */
    int64_t cb_pixels;   /* pixels per channel block: sh*sw planes */
    int64_t slack;       /* pixels after the last plane a flat block may read */
    int32_t flat;        /* blocks over the flat plane grid (else along output rows) */
} layout256;

static layout256 plan256(const thinker_host_conv *j)
{
    layout256 l;
    const int64_t reach = tap_reach(j), wq = phase_cols(j);
    const int64_t row_blocks = ceil_div(j->wo, LANES) * LANES;
    l.hq = ceil_div((int64_t)j->h + j->pt + j->pb, j->sh);
    /* narrow maps waste most of a row block: blocks then run across rows (positions computed
     * per sample: hq*wq against ho row blocks) */
    l.flat = l.hq * wq < row_blocks * j->ho;
    l.wq = l.flat || wq > row_blocks + reach ? wq : row_blocks + reach;
    l.cb_pixels = (int64_t)j->sh * j->sw * l.hq * l.wq;
    l.slack = l.flat ? (int64_t)(j->kh - 1) * j->dh / j->sh * l.wq + reach + LANES : 0;
    return l;
}

static int is_linear(const thinker_host_conv *j)
{
    return j->h == 1 && j->w_in == 1 && j->kh == 1 && j->kw == 1 && j->sh == 1 && j->sw == 1 &&
           !(j->pt | j->pl | j->pb | j->pr);
}

/* conv: the planes, their slack, then one interleaved input row (rounded up to 16 pixels);
 * linear: the rows' input words, [n][C/4] */
int64_t thk_avxvnni_work_bytes(const thinker_host_conv *j)
{
    if (is_linear(j))
        return (int64_t)j->n * ceil_div(j->c, 4) * 4;
    const layout256 l = plan256(j);
    return (ceil_div(j->c, 4) * l.cb_pixels + l.slack + ceil_div(j->w_in, 16) * 16) * 4;
}

/* ``count`` (<= 16) pixels of four channel rows from column ``col`` -> interleaved 4-byte
 * pixels, each byte + 128; nothing read or written past ``count``. */
AVXVNNI_TARGET static void interleave16(const int8_t *const src[4], int64_t col, uint32_t *dst,
                                        int64_t count)
{
    const __m128i flip = _mm_set1_epi8((char)0x80);
    __m128i v[4];
    for (int k = 0; k < 4; k++) {
        int8_t tmp[16] = {0};
        const int8_t *p = src[k] + col;
        if (count < 16) {
            memcpy(tmp, p, (size_t)count);
            p = tmp;
        }
        v[k] = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), flip);
    }
    const __m128i ab_lo = _mm_unpacklo_epi8(v[0], v[1]), ab_hi = _mm_unpackhi_epi8(v[0], v[1]);
    const __m128i cd_lo = _mm_unpacklo_epi8(v[2], v[3]), cd_hi = _mm_unpackhi_epi8(v[2], v[3]);
    __m128i out[4] = {_mm_unpacklo_epi16(ab_lo, cd_lo), _mm_unpackhi_epi16(ab_lo, cd_lo),
                      _mm_unpacklo_epi16(ab_hi, cd_hi), _mm_unpackhi_epi16(ab_hi, cd_hi)};
    if (count == 16) {
        for (int k = 0; k < 4; k++)
            _mm_storeu_si128((__m128i *)(dst + col) + k, out[k]);
        return;
    }
    uint32_t words[16];
    memcpy(words, out, sizeof words);
    memcpy(dst + col, words, (size_t)count * 4);
}

/* One sample into work (its padding already holds 128): rows interleaved straight into their
 * plane (stride 1 along W) or into ``line`` and then split into column phases. Channels past
 * c repeat channel cb*4: their weights are zero. */
AVXVNNI_TARGET static void fill256(const thinker_host_conv *j, const layout256 *l,
                                   const int8_t *x, uint32_t *work)
{
    const int32_t c = j->c, h = j->h, w = j->w_in, sh = j->sh, sw = j->sw;
    const int64_t plane = l->hq * l->wq;
    uint32_t *line = work + ceil_div(c, 4) * l->cb_pixels + l->slack;
    /* unpadded columns, stride 1: a channel block's rows are one run in the plane too */
    const int32_t whole = sw == 1 && sh == 1 && l->wq == w;
    for (int32_t cb = 0; cb < (c + 3) / 4; cb++) {
        const int32_t lanes = c - cb * 4 < 4 ? c - cb * 4 : 4;
        if (whole) {
            const int8_t *src[4];
            for (int32_t k = 0; k < 4; k++)
                src[k] = x + (int64_t)(cb * 4 + (k < lanes ? k : 0)) * h * w;
            uint32_t *to = work + cb * l->cb_pixels + (int64_t)j->pt * l->wq;
            for (int64_t col = 0; col < (int64_t)h * w; col += 16)
                interleave16(src, col, to, (int64_t)h * w - col < 16 ? (int64_t)h * w - col : 16);
            continue;
        }
        for (int32_t r = 0; r < h; r++) {
            const int32_t pr = r + j->pt; /* padded row: phase pr % sh, plane row pr / sh */
            const int8_t *src[4];
            for (int32_t k = 0; k < 4; k++)
                src[k] = x + ((int64_t)(cb * 4 + (k < lanes ? k : 0)) * h + r) * w;
            uint32_t *row = work + cb * l->cb_pixels + (int64_t)(pr % sh) * sw * plane +
                            (int64_t)(pr / sh) * l->wq;
            uint32_t *to = sw == 1 ? row + j->pl : line;
            for (int64_t col = 0; col < w; col += 16)
                interleave16(src, col, to, w - col < 16 ? w - col : 16);
            for (int32_t in = 0; sw > 1 && in < w; in++) { /* padded column in + pl */
                const int32_t pc = in + j->pl;
                row[(int64_t)(pc % sw) * plane + pc / sw] = line[in];
            }
        }
    }
}

/* the first ``n`` (<= 8) bytes of ``v`` (little-endian) to dst, in at most 3 stores */
static inline void store_bytes(uint8_t *dst, uint64_t v, int32_t n)
{
    if (n == 8) {
        memcpy(dst, &v, 8);
        return;
    }
    if (n & 4) {
        const uint32_t w = (uint32_t)v;
        memcpy(dst, &w, 4);
        dst += 4;
        v >>= 32;
    }
    if (n & 2) {
        const uint16_t h = (uint16_t)v;
        memcpy(dst, &h, 2);
        dst += 2;
        v >>= 16;
    }
    if (n & 1)
        *dst = (uint8_t)v;
}

/* the 8 lanes' int32 outputs into ``count`` elements at ``at`` (int8 or int16) */
AVXVNNI_TARGET static void store8(const thinker_host_conv *j, int64_t at, __m256i v,
                                  int32_t count)
{
    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    const __m128i h16 = _mm_packs_epi32(lo, hi); /* values are clamped to the output range */
    if (j->out_bytes == 1) {
        const __m128i b = _mm_packs_epi16(h16, h16);
        store_bytes((uint8_t *)j->out + at, (uint64_t)_mm_cvtsi128_si64(b), count);
    } else if (count == LANES) {
        _mm_storeu_si128((__m128i *)((int16_t *)j->out + at), h16);
    } else { /* the first count of 8 halves, as two groups of 8 bytes */
        uint8_t *dst = (uint8_t *)((int16_t *)j->out + at);
        const uint64_t first = (uint64_t)_mm_cvtsi128_si64(h16);
        store_bytes(dst, first, count < 4 ? 2 * count : 8);
        if (count > 4)
            store_bytes(dst + 8, (uint64_t)_mm_extract_epi64(h16, 1), 2 * (count - 4));
    }
}

AVXVNNI_TARGET static inline __m256i requant256(__m256i acc, int32_t corr, __m128i shift,
                                                __m256i lo, __m256i hi)
{
    const __m256i v = _mm256_sra_epi32(_mm256_add_epi32(acc, _mm256_set1_epi32(corr)), shift);
    return _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
}

/* acc[k] = the 8 positions from ``at`` (a pixel index into each channel block's phases)
 * times output channel k of the weights at ``wt`` (groups WBLOCK apart) */
#define ACCUMULATE256(acc, at)                                                                \
    do {                                                                                      \
        for (int k = 0; k < LANES; k++)                                                       \
            acc[k] = _mm256_setzero_si256();                                                  \
        const int32_t *wt = wblock;                                                           \
        for (int32_t t = 0; t < taps; t++) {                                                  \
            const uint32_t *px = work + (at) + tap[t];                                        \
            for (int32_t cb = 0; cb < cblocks; cb++, px += l->cb_pixels, wt += WBLOCK) {      \
                const __m256i xin = _mm256_loadu_si256((const __m256i *)px);                  \
                for (int k = 0; k < LANES; k++)                                               \
                    acc[k] = _mm256_dpbusd_avx_epi32(acc[k], xin, _mm256_set1_epi32(wt[k]));  \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* the valid lanes of a flat block at ``p`` (plane positions p..p+7) into ``out_at`` + their
 * output index: contiguous runs of valid positions stored together */
AVXVNNI_TARGET static void store_flat(const thinker_host_conv *j, const layout256 *l,
                                      int64_t out_at, int64_t p, __m256i v)
{
    int32_t lanes[LANES];
    _mm256_storeu_si256((__m256i *)lanes, v);
    int64_t y = p / l->wq, x = p % l->wq;
    for (int32_t i = 0; i < LANES && y < j->ho; i++) {
        if (x < j->wo) {
            if (j->out_bytes == 1)
                ((int8_t *)j->out)[out_at + y * j->wo + x] = (int8_t)lanes[i];
            else
                ((int16_t *)j->out)[out_at + y * j->wo + x] = (int16_t)lanes[i];
        }
        if (++x == l->wq) {
            x = 0;
            y++;
        }
    }
}

/* One sample's outputs (``s``: its index) from its work: blocks of 8 positions along each
 * output row, or over the flat plane grid, 8 output channels per pass. */
AVXVNNI_TARGET static void conv256(const thinker_host_conv *j, const layout256 *l,
                                   const uint32_t *work, int32_t s)
{
    const int32_t cblocks = (j->c + 3) / 4, taps = j->kh * j->kw;
    const int64_t plane = l->hq * l->wq, map = (int64_t)j->ho * j->wo;
    const __m256i lo = _mm256_set1_epi32(j->lo), hi = _mm256_set1_epi32(j->hi);
    const __m128i shift = _mm_cvtsi32_si128(j->shift);
    /* flat blocks cover the rows holding outputs; a block inside one row's valid columns
     * (every block when wq == wo) is stored like a row block */
    const int64_t positions = ((int64_t)j->ho - 1) * l->wq + j->wo;
    int64_t tap[256];
    for (int32_t i = 0, t = 0; i < j->kh; i++)
        for (int32_t k = 0; k < j->kw; k++, t++)
            tap[t] = ((int64_t)(i * j->dh % j->sh) * j->sw + k * j->dw % j->sw) * plane +
                     (int64_t)(i * j->dh / j->sh) * l->wq + k * j->dw / j->sw;
    for (int32_t oc0 = 0; oc0 < j->o; oc0 += LANES) {
        const int32_t outs = j->o - oc0 < LANES ? j->o - oc0 : LANES;
        /* the packed block of oc0 and its half (conv_vnni.c: [O/16][taps][C/4][16][4]) */
        const int32_t *wblock = (const int32_t *)j->w +
                                (int64_t)(oc0 / WBLOCK) * taps * cblocks * WBLOCK + oc0 % WBLOCK;
        const int64_t out_at = ((int64_t)s * j->o + oc0) * map;
        __m256i acc[LANES];
        if (l->flat) {
            for (int64_t p = 0; p < positions; p += LANES) {
                ACCUMULATE256(acc, p);
                const int64_t y = p / l->wq, x = p % l->wq;
                const int64_t left = positions - p < LANES ? positions - p : LANES;
                /* every position valid (wq == wo: outputs follow the grid), or the block
                 * inside one row's valid columns: stored as a run */
                const int64_t run = l->wq == j->wo ? left : x + left <= j->wo ? left : 0;
                for (int k = 0; k < outs; k++) {
                    const __m256i v = requant256(acc[k], j->corr[oc0 + k], shift, lo, hi);
                    if (run == left)
                        store8(j, out_at + k * map + y * j->wo + x, v, (int32_t)run);
                    else
                        store_flat(j, l, out_at + k * map, p, v);
                }
            }
            continue;
        }
        for (int32_t y = 0; y < j->ho; y++)
            for (int32_t x = 0; x < j->wo; x += LANES) {
                ACCUMULATE256(acc, y * l->wq + x);
                const int32_t count = j->wo - x < LANES ? j->wo - x : LANES;
                for (int k = 0; k < outs; k++)
                    store8(j, out_at + k * map + y * j->wo + x,
                           requant256(acc[k], j->corr[oc0 + k], shift, lo, hi), count);
            }
    }
}

/* the rows' input words into work, [n][C/4], + 128 per byte (past c: 128, whose weights are
 * zero) */
static void linear_words(const thinker_host_conv *j, uint32_t *words)
{
    const int32_t cblocks = (j->c + 3) / 4, tail = j->c - (cblocks - 1) * 4;
    for (int64_t r = 0; r < j->n; r++, words += cblocks) {
        const int8_t *x = j->x + r * j->c;
        for (int32_t cb = 0; cb + 1 < cblocks; cb++) {
            uint32_t v;
            memcpy(&v, x + cb * 4, 4);
            words[cb] = v ^ 0x80808080u;
        }
        uint32_t v = 0x80808080u; /* the last word: only its bytes inside c are read */
        for (int32_t k = 0; k < tail; k++)
            v ^= (uint32_t)(uint8_t)x[(cblocks - 1) * 4 + k] << 8 * k;
        words[cblocks - 1] = v;
    }
}

/* ``rows`` (<= ROWS) rows from ``r0``: output channels as lanes, 16 per weight block, each
 * row's input word broadcast against the block's 64 bytes */
AVXVNNI_TARGET static inline __attribute__((always_inline)) void linear256(
    const thinker_host_conv *j, const uint32_t *words, int64_t r0, int32_t rows)
{
    const int32_t cblocks = (j->c + 3) / 4;
    const __m256i lo = _mm256_set1_epi32(j->lo), hi = _mm256_set1_epi32(j->hi);
    const __m128i shift = _mm_cvtsi32_si128(j->shift);
    for (int32_t ob = 0; ob * WBLOCK < j->o; ob++) {
        const int8_t *wt = j->w + (int64_t)ob * cblocks * 64;
        __m256i acc[ROWS][2];
        for (int32_t r = 0; r < rows; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        for (int32_t cb = 0; cb < cblocks; cb++) {
            const __m256i w0 = _mm256_loadu_si256((const __m256i *)(wt + cb * 64));
            const __m256i w1 = _mm256_loadu_si256((const __m256i *)(wt + cb * 64 + 32));
            for (int32_t r = 0; r < rows; r++) {
                const __m256i xw = _mm256_set1_epi32((int32_t)words[(r0 + r) * cblocks + cb]);
                acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], xw, w0);
                acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], xw, w1);
            }
        }
        for (int32_t half = 0; half < 2; half++) {
            const int32_t oc0 = ob * WBLOCK + half * LANES;
            if (oc0 >= j->o)
                break;
            const int32_t outs = j->o - oc0 < LANES ? j->o - oc0 : LANES;
            const __m256i corr = _mm256_loadu_si256((const __m256i *)(j->corr + oc0));
            for (int32_t r = 0; r < rows; r++) {
                const __m256i v = _mm256_sra_epi32(_mm256_add_epi32(acc[r][half], corr), shift);
                store8(j, (r0 + r) * j->o + oc0, _mm256_min_epi32(_mm256_max_epi32(v, lo), hi),
                       outs);
            }
        }
    }
}

AVXVNNI_TARGET int thk_avxvnni_conv_s8(thinker_host_conv *j)
{
    if (is_linear(j)) {
        const uint32_t *words = (const uint32_t *)j->work;
        int64_t r = 0;
        j->prepared = KERNEL_256;
        linear_words(j, (uint32_t *)j->work);
        for (; r + ROWS <= j->n; r += ROWS)
            linear256(j, words, r, ROWS);
        for (; r < j->n; r++)
            linear256(j, words, r, 1);
        return 0;
    }
    const layout256 l = plan256(j);
    /* every call writes the same interior, so the padding is set once per job (``prepared``
     * is negative on its first call: conv_vnni.c) */
    if (j->prepared < 0)
        memset(j->work, 0x80, (size_t)((ceil_div(j->c, 4) * l.cb_pixels + l.slack) * 4));
    j->prepared = KERNEL_256;
    const int64_t sample = (int64_t)j->c * j->h * j->w_in;
    for (int32_t s = 0; s < j->n; s++) {
        fill256(j, &l, j->x + s * sample, (uint32_t *)j->work);
        conv256(j, &l, (const uint32_t *)j->work, s);
    }
    return 0;
}

/* ---- depthwise (one input channel per output channel) --------------------------------- */

/* Each channel's padded map is ``hp`` rows of ``wr`` bytes (+ 128; padding 128). Lanes are 8
 * output positions of one row, in two halves of 4; a tap group is up to 4 taps of one kernel
 * row: per half one 16-byte load from the group's first tap, one VPSHUFB putting each lane's
 * 4 tap bytes (j*sw + k*dw) in its word, then one VPDPBUSD with the channel's 4 weights. A
 * half's bytes must lie in its 16: 3*sw + (taps - 1)*dw <= 15. */
typedef struct {
    int64_t hp, wr;         /* padded rows; bytes per row (the blocks' reads included) */
    int32_t groups;         /* tap groups per kernel row: ceil(kw / 4) */
} dw256_layout;

static dw256_layout dw256_plan(const thinker_host_conv *j)
{
    dw256_layout l;
    const int64_t wp = (int64_t)j->w_in + j->pl + j->pr;
    l.groups = (j->kw + 3) / 4;
    const int64_t reads = (ceil_div(j->wo, LANES) * LANES - 4) * j->sw +
                          (int64_t)(l.groups - 1) * 4 * j->dw + 16;
    l.hp = (int64_t)j->h + j->pt + j->pb;
    l.wr = wp > reads ? wp : reads;
    return l;
}

/* bytes of one sample's maps, rounded up so that the weight words after them are aligned */
static int64_t dw256_maps_bytes(const thinker_host_conv *j, const dw256_layout *l)
{
    return ceil_div(j->c * l->hp * l->wr, 64) * 64;
}

/* the maps of one sample, then the weight words [C][kh][groups] */
int64_t thk_avxvnni_depthwise_work_bytes(const thinker_host_conv *j)
{
    const dw256_layout l = dw256_plan(j);
    const int32_t first = j->kw < 4 ? j->kw : 4; /* the widest group's taps */
    if (j->o != j->c || 3 * j->sw + (first - 1) * j->dw > 15 || l.groups > 64)
        return -1;
    return dw256_maps_bytes(j, &l) + (int64_t)j->c * j->kh * l.groups * 4;
}

/* one sample's channels into their padded maps (rows of x + 128 at column pl) */
AVXVNNI_TARGET static void dw256_fill(const thinker_host_conv *j, const dw256_layout *l,
                                      const int8_t *x, uint8_t *maps)
{
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const int64_t w = j->w_in, h = j->h, wr = l->wr, channels = j->c;
    const int64_t first = (int64_t)j->pt * wr + j->pl, map = l->hp * wr;
    const int8_t *end = x + channels * h * w;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t r = 0; r < h; r++) {
            const int8_t *src = x + (c * h + r) * w;
            uint8_t *dst = maps + c * map + first + r * wr;
            int64_t k = 0;
            for (; k + 32 <= w; k += 32)
                _mm256_storeu_si256((__m256i *)(dst + k), _mm256_xor_si256(
                    _mm256_loadu_si256((const __m256i *)(src + k)), flip));
            for (; k + 8 <= w; k += 8) {
                uint64_t v;
                memcpy(&v, src + k, 8);
                v ^= 0x8080808080808080ull;
                memcpy(dst + k, &v, 8);
            }
            if (k < w) { /* the last 1-7 bytes: one 8-byte load while inside the sample */
                uint64_t v = 0;
                if (src + k + 8 <= end)
                    memcpy(&v, src + k, 8);
                else
                    for (int64_t i = k; i < w; i++)
                        v |= (uint64_t)(uint8_t)src[i] << 8 * (i - k);
                store_bytes(dst + k, v ^ 0x8080808080808080ull, (int32_t)(w - k));
            }
        }
}

AVXVNNI_TARGET int thk_avxvnni_depthwise_s8(thinker_host_conv *j)
{
    const dw256_layout l = dw256_plan(j);
    uint8_t *maps = j->work;
    int32_t *words = (int32_t *)(void *)(maps + dw256_maps_bytes(j, &l));
    if (j->prepared < 0) { /* padding, and each channel's tap groups as weight words */
        memset(maps, 0x80, (size_t)(j->c * l.hp * l.wr));
        for (int64_t c = 0; c < j->c; c++)
            for (int32_t i = 0; i < j->kh; i++)
                for (int32_t g = 0; g < l.groups; g++) {
                    uint32_t v = 0;
                    for (int32_t k = 0; k < 4 && 4 * g + k < j->kw; k++)
                        v |= (uint32_t)(uint8_t)j->w[(c * j->kh + i) * j->kw + 4 * g + k] << 8 * k;
                    memcpy(words + (c * j->kh + i) * l.groups + g, &v, 4);
                }
    }
    j->prepared = KERNEL_256;
    /* per group: lane q's word takes bytes q*sw + k*dw (k < the group's taps, else zero) */
    __m256i pick[64]; /* at most 64 groups: thk_avxvnni_depthwise_work_bytes */
    const int32_t groups = l.groups;
    for (int32_t g = 0; g < groups; g++) {
        int8_t ctl[16];
        for (int32_t q = 0; q < 4; q++)
            for (int32_t k = 0; k < 4; k++)
                ctl[q * 4 + k] = (int8_t)(4 * g + k < j->kw ? q * j->sw + k * j->dw : -128);
        pick[g] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)ctl));
    }
    const __m256i lo = _mm256_set1_epi32(j->lo), hi = _mm256_set1_epi32(j->hi);
    const __m128i shift = _mm_cvtsi32_si128(j->shift);
    /* locals: stores through j->out could otherwise alias the job's fields */
    const int64_t ho = j->ho, wo = j->wo, kh = j->kh, channels = j->c, wr = l.wr;
    const int64_t map = ho * wo, in_map = (int64_t)j->h * j->w_in, cmap_bytes = l.hp * wr;
    const int64_t row_step = (int64_t)j->sh * wr, x_step = (int64_t)LANES * j->sw;
    const int64_t half = 4 * (int64_t)j->sw, group_step = 4 * (int64_t)j->dw;
    const int64_t tap_row = (int64_t)j->dh * wr;
    const int32_t *corr = j->corr;
    for (int32_t s = 0; s < j->n; s++) {
        dw256_fill(j, &l, j->x + s * channels * in_map, maps);
        for (int64_t c = 0; c < channels; c++) {
            const uint8_t *cmap = maps + c * cmap_bytes;
            const int32_t *cw = words + c * kh * groups;
            const int32_t cc = corr[c];
            const int64_t out0 = (s * channels + c) * map;
            for (int64_t y = 0; y < ho; y++) {
                const uint8_t *top = cmap + y * row_step;
                for (int64_t x = 0; x < wo; x += LANES, top += x_step) {
                    __m256i acc = _mm256_setzero_si256();
                    const int32_t *wk = cw;
                    for (int64_t i = 0; i < kh; i++) {
                        const uint8_t *at = top + i * tap_row;
                        for (int32_t g = 0; g < groups; g++, at += group_step, wk++) {
                            const __m256i v = _mm256_loadu2_m128i((const __m128i *)(at + half),
                                                                  (const __m128i *)at);
                            acc = _mm256_dpbusd_avx_epi32(acc, _mm256_shuffle_epi8(v, pick[g]),
                                                          _mm256_set1_epi32(*wk));
                        }
                    }
                    store8(j, out0 + y * wo + x, requant256(acc, cc, shift, lo, hi),
                           (int32_t)(wo - x < LANES ? wo - x : LANES));
                }
            }
        }
    }
    return 0;
}

#endif
