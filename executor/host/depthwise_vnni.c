/* Host-only int8 depthwise convolution (one input channel per output channel) for the numpy
 * executor and the host C executor, on x86 cores with AVX-512 VNNI and VBMI/VBMI2: same arithmetic as conv_vnni.c
 * (x + 128 times signed weights, ``corr`` per channel restoring acc + bias + half).
 *
 * Layout: a chunk of samples is copied into ``work`` as [C][sh][sw][n][hq][wq] bytes, each
 * channel's padded map split into stride phases. Lanes are up to 16 consecutive valid outputs
 * of one sample (several rows when the map is narrow, while their pixels stay within one
 * 64-byte load). A "tap group" is up to 4 taps of one kernel row that read the same phase
 * plane: one 64-byte load from the group's first tap, one VPERMB that gives each lane its 4
 * taps' bytes (its own offset plus the taps'), one VPDPBUSD with the channel's 4 weights
 * (zeros for missing taps).
 * A 3x3 stride-1 conv is three groups: 144 MACs in 9 instructions. Weights come as
 * [C][kh*kw] int8; the groups and their weight words are built once per job, in the work's
 * tail.
 */
#include "vnni.h"

#define CHUNK_BYTES (1 << 19) /* work planes per chunk of samples: about L2 */
#define MAX_GROUPS 64
#define MAX_SPAN 32 /* a group's widest column offset; a block's lanes use offsets up to the rest
                     * of a 64-byte load */

typedef struct {
    int64_t offset; /* bytes from a channel's planes to the group's first tap at position 0 */
    int8_t taps[4]; /* kernel offsets i*kw + j of the group's taps, -1 where none */
    uint8_t index[64]; /* byte 4*lane + k: tap k's column offset from the first (a VPERMB
                        * index once the lane's own offset is added) */
} tap_group;

typedef struct {
    int64_t hq, wq, plane; /* phase plane rows and columns; one phase plane of nc samples */
    int64_t channel;       /* bytes per channel: sh*sw planes */
    int32_t nc, groups, span; /* span: the widest column offset within a tap group */
    int64_t planes, slack;    /* bytes of all channels' planes; reads past them */
} dw_layout;

static dw_layout dw_plan(const thinker_host_conv *j)
{
    dw_layout l;
    l.hq = ceil_div((int64_t)j->h + j->pt + j->pb, j->sh);
    l.wq = phase_cols(j);
    const int64_t sample = (int64_t)j->c * j->sh * j->sw * l.hq * l.wq;
    l.nc = (int32_t)(sample * j->n <= CHUNK_BYTES ? j->n :
                     (CHUNK_BYTES / sample > 0 ? CHUNK_BYTES / sample : 1));
    l.plane = l.nc * l.hq * l.wq;
    l.channel = (int64_t)j->sh * j->sw * l.plane;
    l.planes = j->c * l.channel;
    /* a load reads 64 bytes from a position up to the grid's end plus a tap's offset */
    l.slack = 64 + BLOCK + ((int64_t)(j->kh - 1) * j->dh / j->sh + 1) * l.wq +
              (int64_t)(j->kw - 1) * j->dw / j->sw;
    l.groups = 0;
    l.span = 0;
    for (int32_t i = 0; i < j->kh; i++)
        for (int32_t b = 0; b < j->sw; b++) {
            int32_t in_group = 0, first = 0;
            for (int32_t t = 0; t < j->kw; t++) {
                if (t * j->dw % j->sw != b)
                    continue;
                if (in_group++ % 4 == 0) {
                    l.groups++;
                    first = t * j->dw / j->sw;
                }
                if (t * j->dw / j->sw - first > l.span)
                    l.span = t * j->dw / j->sw - first;
            }
        }
    return l;
}

/* the planes and their slack, then (64-byte aligned) the tap groups, the row masks and the
 * weight words: the masks before the words keep them 8-byte aligned */
static int64_t dw_work_bytes(const thinker_host_conv *j, const dw_layout *l)
{
    return l->planes + l->slack + 64 + (int64_t)l->groups * (int64_t)sizeof(tap_group) +
           ceil_div((int64_t)j->h * l->wq, 64) * 8 + (int64_t)j->c * l->groups * 4;
}

/* A kernel that is the whole unpadded map (a 1-D model's global temporal filter): each
 * channel's output is one dot product of its map, done with channels as lanes (global()). */
static int whole_map(const thinker_host_conv *j)
{
    return j->kh == j->h && j->kw == j->w_in && j->ho == 1 && j->wo == 1 && j->dh == 1 &&
           j->dw == 1 && !(j->pt | j->pl | j->pb | j->pr) && j->h * j->w_in >= 4;
}

/* global(): weight words [ceil(L/4)][channels rounded up to 16] */
static int64_t global_bytes(const thinker_host_conv *j)
{
    return ceil_div((int64_t)j->h * j->w_in, 4) * ceil_div(j->c, 16) * 16 * 4;
}

static int64_t dw_work_bytes_of(const thinker_host_conv *j, int kernel)
{
    if (!kernel || j->o != j->c || !host_job_valid(j))
        return -1;
#ifdef HOST_AVXVNNI
    if (kernel == KERNEL_256)
        return thk_avxvnni_depthwise_work_bytes(j);
#endif
    const dw_layout l = dw_plan(j);
    if (whole_map(j))
        return global_bytes(j);
    if (j->kh * j->kw > 127 || l.groups > MAX_GROUPS || l.span > MAX_SPAN)
        return -1;
    return dw_work_bytes(j, &l);
}

int64_t thinker_host_depthwise_work_bytes(const thinker_host_conv *j)
{
    return dw_work_bytes_of(j, pick_kernel(THINKER_HOST_DEPTHWISE));
}

#ifdef HOST_VNNI

/* the groups of the kernel (dw_plan counted them and their span) */
static void build_groups(const thinker_host_conv *j, const dw_layout *l, tap_group *g)
{
    int32_t n = 0;
    for (int32_t i = 0; i < j->kh; i++) {
        const int64_t row = (int64_t)(i * j->dh % j->sh) * j->sw * l->plane +
                            (int64_t)(i * j->dh / j->sh) * l->wq;
        for (int32_t b = 0; b < j->sw; b++) {
            int32_t count = 0, first = 0;
            for (int32_t t = 0; t < j->kw; t++) {
                if (t * j->dw % j->sw != b)
                    continue;
                const int32_t col = t * j->dw / j->sw;
                if (count % 4 == 0) {
                    first = col;
                    g[n].offset = row + (int64_t)b * l->plane + col;
                    memset(g[n].taps, -1, 4);
                    memset(g[n].index, 0, 64);
                    n++;
                }
                tap_group *cur = &g[n - 1];
                const int32_t k = count++ % 4;
                cur->taps[k] = (int8_t)(i * j->kw + t);
                for (int32_t lane = 0; lane < BLOCK; lane++) /* missing taps: offset 0 */
                    cur->index[lane * 4 + k] = (uint8_t)(col - first);
            }
        }
    }
}

/* dst[0..count) = src + 128, at 64 bytes a step */
VBMI_TARGET static void copy_flipped(uint8_t *dst, const int8_t *src, int64_t count)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t k = 0; k < count; k += 64) {
        const __mmask64 m = count - k >= 64 ? ~0ull : (1ull << (count - k)) - 1ull;
        _mm512_mask_storeu_epi8(dst + k, m,
                                _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + k), flip));
    }
}

/* One channel map of one sample into its phase planes (padding already 128). Stride 1: the
 * interior rows expanded into the padded rows with VPEXPANDB along precomputed masks (short
 * rows would otherwise cost a loop each); stride 2 across: even and odd columns split by one
 * VPERMB per 64 bytes; other strides byte by byte. */
VBMI_TARGET static void fill_map(const thinker_host_conv *j, const dw_layout *l,
                                 const int8_t *src, uint8_t *planes, const uint64_t *masks)
{
    const int32_t h = j->h, w = j->w_in, sh = j->sh, sw = j->sw;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    if (sh == 1 && sw == 1) {
        uint8_t *dst = planes + (int64_t)j->pt * l->wq;
        const int64_t span = (int64_t)h * l->wq;
        for (int64_t k = 0; k < span; k += 64) {
            const __mmask64 m = masks[k / 64];
            const __m512i v = _mm512_xor_si512(_mm512_maskz_expandloadu_epi8(m, src), flip);
            const __mmask64 keep = span - k >= 64 ? ~0ull : (1ull << (span - k)) - 1ull;
            _mm512_mask_storeu_epi8(dst + k, keep, v);
            src += __builtin_popcountll(m);
        }
        return;
    }
    if (sw == 2) {
        /* input column c sits at padded column c + pl: phase (c + pl) % 2, at (c + pl) / 2;
         * one VPERMB puts a 64-byte chunk's even bytes low and odd bytes high */
        static const uint8_t order[64] = {
            0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
            32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62,
            1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
            33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
        const __m512i split = _mm512_loadu_si512(order);
        const int64_t even_at = (int64_t)(j->pl % 2) * l->plane + j->pl / 2;
        const int64_t odd_at = (int64_t)((j->pl + 1) % 2) * l->plane + (j->pl + 1) / 2;
        const int32_t tail = w % 64 ? w % 64 : 64, chunks = (w + 63) / 64;
        const __mmask64 last = tail == 64 ? ~0ull : (1ull << tail) - 1ull;
        const __mmask32 last_even = (__mmask32)((1ull << ((tail + 1) / 2)) - 1ull);
        const __mmask32 last_odd = (__mmask32)((1ull << (tail / 2)) - 1ull);
        for (int32_t r = 0; r < h; r++, src += w) {
            const int32_t pr = r + j->pt;
            uint8_t *row = planes + (int64_t)(pr % sh) * sw * l->plane + (int64_t)(pr / sh) * l->wq;
            for (int32_t k = 0; k < chunks; k++) {
                const int end = k == chunks - 1;
                const __m512i v = _mm512_permutexvar_epi8(split, _mm512_xor_si512(
                    _mm512_maskz_loadu_epi8(end ? last : ~0ull, src + k * 64), flip));
                _mm256_mask_storeu_epi8(row + even_at + k * 32, end ? last_even : ~0u,
                                        _mm512_castsi512_si256(v));
                _mm256_mask_storeu_epi8(row + odd_at + k * 32, end ? last_odd : ~0u,
                                        _mm512_extracti64x4_epi64(v, 1));
            }
        }
        return;
    }
    for (int32_t r = 0; r < h; r++) {
        const int32_t pr = r + j->pt;
        uint8_t *row = planes + (int64_t)(pr % sh) * sw * l->plane + (int64_t)(pr / sh) * l->wq;
        const int8_t *in = src + (int64_t)r * w;
        if (sw == 1) {
            copy_flipped(row + j->pl, in, w);
            continue;
        }
        for (int32_t c = 0; c < w; c++) {
            const int32_t pc = c + j->pl;
            row[(int64_t)(pc % sw) * l->plane + pc / sw] = (uint8_t)(in[c] ^ 0x80);
        }
    }
}

/* Every channel's outputs at one block of up to 16 consecutive outputs of one sample: ``lanes``
 * gives each lane's byte offset from the block's first position in the phase planes (several
 * rows when the map is narrow), ``base`` that position in channel 0's planes. ``groups`` is a
 * constant where inlined from dw_chunk's switch, so the loop unrolls and keeps the indices in
 * registers. */
VBMI_TARGET static inline __attribute__((always_inline)) void dw_block(
    const thinker_host_conv *j, const dw_layout *l, const uint8_t *base, const tap_group *g,
    const __m512i *pattern, const int32_t *words, int32_t groups, __m512i lanes, int64_t out,
    int64_t map, __mmask16 mask)
{
    __m512i index[MAX_GROUPS];
    for (int32_t k = 0; k < groups; k++)
        index[k] = _mm512_add_epi8(lanes, pattern[k]);
    const __m512i lo = _mm512_set1_epi32(j->lo), hi = _mm512_set1_epi32(j->hi);
    const __m128i shift = _mm_cvtsi32_si128(j->shift);
    for (int32_t c = 0; c < j->c; c++, base += l->channel, words += groups, out += map) {
        __m512i acc = _mm512_setzero_si512();
        for (int32_t k = 0; k < groups; k++)
            acc = _mm512_dpbusd_epi32(
                acc, _mm512_permutexvar_epi8(index[k], _mm512_loadu_si512(base + g[k].offset)),
                _mm512_set1_epi32(words[k]));
        store(j, out, mask, requant(acc, _mm512_set1_epi32(j->corr[c]), shift, lo, hi));
    }
}

/* The chunk's outputs, sample by sample, in blocks of up to 16 consecutive outputs (rows
 * joined while their pixels stay within one 64-byte load of the block's first): only valid
 * outputs are computed and each channel's block is one contiguous store. */
VBMI_TARGET static void dw_chunk(const thinker_host_conv *j, const dw_layout *l,
                                 const uint8_t *planes, const tap_group *g, const int32_t *words,
                                 int32_t first, int32_t samples)
{
    const int64_t map = (int64_t)j->ho * j->wo, reach = 63 - MAX_SPAN;
    __m512i pattern[MAX_GROUPS];
    for (int32_t k = 0; k < l->groups; k++)
        pattern[k] = _mm512_loadu_si512(g[k].index);
    for (int32_t s = 0; s < samples; s++) {
        const uint8_t *sample = planes + (int64_t)s * l->hq * l->wq;
        const int64_t out = (int64_t)(first + s) * j->c * map;
        int64_t y = 0, x = 0;
        while (y < j->ho) {
            const int64_t start = y * l->wq + x, at = y * j->wo + x;
            uint32_t offsets[BLOCK] = {0};
            int32_t count = 0;
            for (; count < BLOCK && y < j->ho && y * l->wq + x - start <= reach; count++) {
                offsets[count] = (uint32_t)(y * l->wq + x - start) * 0x01010101u;
                if (++x == j->wo) {
                    x = 0;
                    y++;
                }
            }
            const __m512i lanes = _mm512_loadu_si512(offsets);
            const __mmask16 mask = (__mmask16)((1u << count) - 1u);
            const uint8_t *base = sample + start;
            switch (l->groups) { /* common kernels: 3x3 stride 1 (3), 1-D (1, 2), stride 2 (6) */
            case 1: dw_block(j, l, base, g, pattern, words, 1, lanes, out + at, map, mask); break;
            case 2: dw_block(j, l, base, g, pattern, words, 2, lanes, out + at, map, mask); break;
            case 3: dw_block(j, l, base, g, pattern, words, 3, lanes, out + at, map, mask); break;
            case 6: dw_block(j, l, base, g, pattern, words, 6, lanes, out + at, map, mask); break;
            default:
                dw_block(j, l, base, g, pattern, words, l->groups, lanes, out + at, map, mask);
            }
        }
    }
}

/* The job's tables in its work (after the planes): tap groups, weight words, row masks;
 * and the planes' padding. */
static void dw_prepare(const thinker_host_conv *j, const dw_layout *l, tap_group *groups,
                       int32_t *words, uint64_t *masks)
{
    build_groups(j, l, groups);
    const int32_t taps = j->kh * j->kw;
    for (int32_t c = 0; c < j->c; c++)
        for (int32_t k = 0; k < l->groups; k++) {
            uint32_t word = 0;
            for (int32_t t = 0; t < 4; t++)
                if (groups[k].taps[t] >= 0)
                    word |= (uint32_t)(uint8_t)j->w[(int64_t)c * taps + groups[k].taps[t]]
                            << (8 * t);
            words[(int64_t)c * l->groups + k] = (int32_t)word;
        }
    /* stride 1: which bytes of the padded rows hold input (the rest is padding) */
    for (int64_t k = 0; k < ceil_div((int64_t)j->h * l->wq, 64); k++) {
        uint64_t m = 0;
        for (int64_t b = 0; b < 64; b++) {
            const int64_t at = k * 64 + b, col = at % l->wq;
            if (at < (int64_t)j->h * l->wq && col >= j->pl && col < j->pl + j->w_in)
                m |= 1ull << b;
        }
        masks[k] = m;
    }
    /* every call writes the same interior, so the padding is set once per job */
    memset(j->work, 0x80, (size_t)(l->planes + l->slack));
}

/* whole_map() convs: lanes are 16 channels; VPGATHERDD takes 4 bytes of each lane's map per
 * step. The last group of a map starts at L - 4 (never reading past the map, so never past
 * the input) and weighs only the taps the previous groups did not. */
VBMI_TARGET static void global(thinker_host_conv *j)
{
    const int32_t length = j->h * j->w_in, groups = (int32_t)ceil_div(length, 4);
    const int32_t blocks = (int32_t)ceil_div(j->c, 16);
    int32_t *words = (int32_t *)j->work; /* [groups][blocks * 16] */
    if (!j->prepared)
        for (int32_t g = 0; g < groups; g++)
            for (int32_t c = 0; c < blocks * 16; c++) {
                const int32_t start = 4 * g < length - 4 ? 4 * g : length - 4;
                uint32_t word = 0;
                for (int32_t k = 0; k < 4 && c < j->c; k++)
                    if (start + k >= 4 * g)
                        word |= (uint32_t)(uint8_t)j->w[(int64_t)c * length + start + k]
                                << (8 * k);
                words[(int64_t)g * blocks * 16 + c] = (int32_t)word;
            }
    j->prepared = KERNEL_512;
    const __m512i flip = _mm512_set1_epi32((int32_t)0x80808080u);
    const __m512i lanes = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(length));
    const __m512i lo = _mm512_set1_epi32(j->lo), hi = _mm512_set1_epi32(j->hi);
    const __m128i shift = _mm_cvtsi32_si128(j->shift);
    for (int32_t n = 0; n < j->n; n++)
        for (int32_t b = 0; b < blocks; b++) {
            const int32_t count = j->c - b * 16 < 16 ? j->c - b * 16 : 16;
            const __mmask16 mask = (__mmask16)((1u << count) - 1u);
            const int8_t *x = j->x + ((int64_t)n * j->c + b * 16) * length;
            __m512i acc = _mm512_setzero_si512();
            for (int32_t g = 0; g < groups; g++) {
                const int32_t start = 4 * g < length - 4 ? 4 * g : length - 4;
                const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask,
                                                              lanes, x + start, 1);
                acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(v, flip), _mm512_loadu_si512(
                    words + (int64_t)g * blocks * 16 + b * 16));
            }
            store(j, (int64_t)n * j->c + b * 16, mask,
                  requant(acc, _mm512_loadu_si512(j->corr + b * 16), shift, lo, hi));
        }
}

#endif

int thinker_host_depthwise_s8(thinker_host_conv *j)
{
#ifdef HOST_VNNI
    const int kernel = job_kernel(j, THINKER_HOST_DEPTHWISE, dw_work_bytes_of);
    if (!kernel)
        return 1;
#ifdef HOST_AVXVNNI
    if (kernel == KERNEL_256)
        return thk_avxvnni_depthwise_s8(j);
#endif
    const dw_layout l = dw_plan(j);
    if (whole_map(j)) {
        global(j);
        return 0;
    }
    uint8_t *planes = j->work;
    tap_group *groups =
        (tap_group *)(((uintptr_t)(planes + l.planes + l.slack) + 63) & ~(uintptr_t)63);
    uint64_t *masks = (uint64_t *)(groups + l.groups); /* sizeof(tap_group) is 8-aligned */
    int32_t *words = (int32_t *)(masks + ceil_div((int64_t)j->h * l.wq, 64));
    if (!j->prepared)
        dw_prepare(j, &l, groups, words, masks);
    j->prepared = KERNEL_512;
    const int64_t map_in = (int64_t)j->h * j->w_in;
    for (int32_t n = 0; n < j->n; n += l.nc) {
        const int32_t samples = j->n - n < l.nc ? j->n - n : l.nc;
        for (int32_t s = 0; s < samples; s++)
            for (int32_t c = 0; c < j->c; c++)
                fill_map(j, &l, j->x + ((int64_t)(n + s) * j->c + c) * map_in,
                         planes + c * l.channel + (int64_t)s * l.hq * l.wq, masks);
        dw_chunk(j, &l, planes, groups, words, n, samples);
    }
    return 0;
#else
    (void)j;
    return 1;
#endif
}
