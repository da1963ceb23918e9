/* int8 GEMM micro-kernels shared by conv (im2col tiles), linear and friends (gemm_s8.c).
 *
 * The product is "weight rows x patch rows": a weight row is K int8 values in place (model.bin
 * layout, any alignment); a patch row is the K input values one output pixel (or one linear
 * row) reads. Patch rows live in a TILE of int16 values (gathered as int8 in a row buffer,
 * then widened), laid out for the target:
 *   - portable C: row r at tile + r * Kp, natural order; each channel pair's two weight rows
 *     are widened to int16 too, so compilers make the dot products along K 16-bit
 *     multiply-adds (x86 VPMADDWD / VPDPWSSD, NEON SMLAL);
 *   - Cortex-M with the DSP extension (__ARM_FEATURE_DSP): blocks of 2 rows; inside a block,
 *     per group of 4 values (k0 k1 k2 k3) each row holds the pairs (k0, k2) (k1, k3), which is
 *     what SXTB16 / SXTB16 ROR 8 make of 4 weight bytes, so one SMLAD takes 2 MACs.
 * Kp = K rounded up to 4; padding values are 0. Both layouts give the same exact int32 sums
 * (callers prove |sum of |products|| < 2**31, so no partial sum can wrap in any order). */
#ifndef THINKER_GEMM_S8_H
#define THINKER_GEMM_S8_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(THINKER_NO_DSP)
#define THK_GEMM_DSP 1
#else
#define THK_GEMM_DSP 0
#endif
typedef int16_t thk_patch;

/* K rounded up to a multiple of 4 */
static inline uint32_t thk_kpad(uint32_t K) { return (K + 3u) & ~3u; }

/* Bytes of a tile of `rows` patch rows (rows a multiple of 4), whatever the target: the plan
 * (thinker.memory.scratch) does not depend on the build. */
static inline uint32_t thk_tile_bytes(uint32_t Kp, uint32_t rows) { return 2u * Kp * rows; }

/* Patch rows per tile: about THK_TILE_TARGET bytes, a multiple of 4, at least 4 and no more
 * than `rows` (rounded up to 4) need. */
#define THK_TILE_TARGET 4096u
static inline uint32_t thk_tile_rows(uint32_t Kp, uint32_t rows) {
    uint32_t r = (THK_TILE_TARGET / thk_tile_bytes(Kp, 1)) & ~3u, most = (rows + 3u) & ~3u;
    if (r < 4) r = 4;
    return r > most ? most : r;
}

/* Scratch of a tiled GEMM with `tile` rows per tile: the tile, a gather row, two unpacked
 * weight rows and two weight rows as int16 pairs (every build plans them:
 * thinker.memory.scratch twins this) */
static inline uint64_t thk_gemm_scratch_rows(uint32_t K, uint32_t tile) {
    uint32_t kp = thk_kpad(K);
    return (uint64_t)thk_tile_bytes(kp, tile) + 7u * (uint64_t)kp;
}

/* ... with the least tile, over `rows` patch rows of K values (a macro: as an inline function
 * the Cortex-M4 build grew 48 bytes; arguments without side effects) */
#define thk_gemm_scratch(K, rows) thk_gemm_scratch_rows((K), thk_tile_rows(thk_kpad(K), (rows)))

/* Tile rows of the tiled GEMM in a planned region of `budget` bytes: as many as fit (tpacker
 * grows a region into arena space free at its op: thinker.memory.placement), at least
 * thk_tile_rows and at most `rows` rounded up to 4; 0 when the region is below
 * thk_gemm_scratch (the op's scratch-free path). */
static inline uint32_t thk_gemm_tile_in(uint32_t K, uint32_t rows, uint32_t budget) {
    uint32_t kp = thk_kpad(K), least = thk_tile_rows(kp, rows), most = (rows + 3u) & ~3u, fit;
    if (budget < thk_gemm_scratch(K, rows)) return 0;
    if (!kp) return least;
    fit = ((budget - 7u * kp) / thk_tile_bytes(kp, 1)) & ~3u; /* 32-bit: no libgcc division */
    return fit > most ? most : fit > least ? fit : least;
}


#if THK_GEMM_DSP
/* Depthwise 3x3, stride 1 or 2, DSP builds: `rows` output rows of one channel's int8 map from
 * its zero-padded input rows (output (oy, ox) reads row[oy * row_step + i * ts + ox * sw + j];
 * rows readable to ((wo + 1) * sw + 3) bytes). out = SSAT 8 of (acc + hb) >> shift, or USAT
 * 7 for a ReLU (hb = bias + 2**(shift-1), 0 < shift < 32: the out32 stage). Pixels go in
 * pairs: an odd width writes the byte after each row (the next row's first, written again
 * after; the map's last row needs a byte of room). The kernel counts `rows` down. */
typedef struct {
    uint32_t wt[5];         /* 0: (w0, w2) (w3, w5) (w6, w8) (w1, w4) as int16 pairs, shift | w7 << 16 */
    const int8_t *row;      /* 20: the first output row's padded input row (stride 2: + 2 ts) */
    uint32_t ts;            /* 24: bytes between kernel rows */
    int32_t in_skip;        /* 28: row_step - 2 pairs sw: from a row's last pair to the next row */
    int32_t out_skip;       /* 32: wo - 2 pairs (0, or -1 for odd widths) */
    uint32_t pair_bytes;    /* 36: 2 pairs */
    uint32_t rows;          /* 40: output rows, >= 1 */
    int8_t *out;            /* 44 */
    int32_t hb;             /* 48 */
    uint32_t variant;       /* 52: 1 for a ReLU (USAT 7), + 2 for stride 2 */
} thk_dw3_job;
void thk_dw3_rows(thk_dw3_job *job);
/* rows >= 1 rows of n bytes, contiguous at src, into dst with `skip` bytes between them (a word
 * at a time; newlib-nano's memcpy goes byte by byte) */
void thk_copy_rows(int8_t *dst, const int8_t *src, uint32_t rows, uint32_t n, uint32_t skip);
/* 3x3 windows inside the input (dilation 1 along the row) of n >= 1 channels steps[1] bytes
 * apart, 9 bytes each into dst: kernel row i is the word at src + i * steps[0], stored as one
 * unaligned word whose 4th byte the next store rewrites. Reads the 4 bytes at each row start
 * (callers keep them inside the input) and writes dst[9 n] too: the gather row's zero
 * padding, or, when K is a multiple of 4, the first byte after the row (the unpacked weight
 * row buffer, always rewritten before it is read). */
void thk_patch3x3(int8_t *dst, const int8_t *src, uint32_t n, const uint32_t steps[2]);

/* n >= 1 groups of 4 int8 values from row into a tile row at dst as int16 pairs (k0, k2)
 * (k1, k3) (16 bytes between groups) */
void thk_put_groups(uint32_t *dst, const int8_t *row, uint32_t n);

/* n >= 1 groups of 4 values `plane` bytes apart (a 1x1 conv's channels) from src, as int16
 * pairs (c0, c2) (c1, c3) into the tile at dst (one tile row: 16 bytes between groups) */
void thk_tile_strided(uint32_t *dst, const int8_t *src, uint32_t plane, uint32_t n);
#endif

/* ---- the output stage of a block (conv, linear) ---- */
#include "ops.h"

/* 1 when int8 outputs can be rounded in int32: o_bits 8, floor_add, 0 < shift < 32 and
 * 128 * wsum + max|bias| + 2**(shift-1) < 2**31 (wsum: largest row sum of |w|). */
uint8_t thk_gemm_out32(const thk_outstage *st, const thk_tensor *out, uint64_t wsum,
                       const thk_tensor *bias, int has_bias);

/* out[index + j * step] for j < n from acc[j] + bias through the output stage */
void thk_gemm_store(const thk_outstage *st, uint8_t out32, const thk_tensor *out, const int32_t *acc,
                    uint32_t n, uint32_t index, uint32_t step, int64_t bias);

/* ---- the tiled GEMM driver: out[o][r] = w_o . patch_r over `rows` patch rows and `outs`
 * weight rows, a tile of patch rows at a time (conv: output pixels, linear: input rows) ---- */
typedef struct thk_gemm_job thk_gemm_job;
struct thk_gemm_job {
    uint32_t K, rows, outs;
    uint32_t tile;                  /* rows per tile (thk_gemm_tile_in; 0: thk_tile_rows) */
    /* patch row r as natural int8 into dst: all K values (the driver zero-pads to Kp) */
    void (*fill)(const thk_gemm_job *job, uint32_t r, int8_t *dst);
#if THK_GEMM_DSP
    /* or, when set, patch rows r .. r + n - 1 straight into tile rows 0 .. n - 1 (all Kp
     * values; `row`: Kp + 1 bytes of workspace) */
    void (*fill_tile)(const thk_gemm_job *job, uint32_t r, uint32_t n, thk_patch *tile, int8_t *row);
#endif
    /* weight row o (K int8 values): in place, or written into buf */
    const int8_t *(*weight)(const thk_gemm_job *job, uint32_t o, int8_t *buf);
    const thk_outstage *st;
    const thk_tensor *out, *bias;
    int has_bias;
    uint8_t out32;
    uint32_t bias0;                 /* bias index of weight row 0 */
    uint32_t out0, ch_step, row_step; /* out index of (o, r): out0 + o * ch_step + r * row_step */
};

/* scratch: thk_gemm_scratch(K, rows) bytes */
void thk_gemm_run(const thk_gemm_job *job, uint8_t *scratch);

#endif
