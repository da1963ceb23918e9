/* Conv1dInt, Conv2dInt, ConvTranspose2dInt (thinker/ops/conv.py) on NCHW tensors.
 *
 * Fast path (int8 input, 8- or 4-bit weights, int32 accumulator proven safe at init):
 *   - im2col of a few output pixels at a time into a bounded tile (about 4 KB), then the int8
 *     GEMM micro-kernel of gemm_s8.c (two output channels x four pixels in registers; SMLAD on
 *     Cortex-M DSP cores) with the output stage fused. Weights are read in place ([O, C/g, kh,
 *     kw]); 4-bit weights are unpacked two rows at a time.
 *   - one input channel per output (depthwise): per output row, each tap adds weight x an
 *     input row segment to an int32 row (valid ranges precomputed, no bounds checks inside).
 * Every other combination runs a direct generic loop with an int64 accumulator. */
#include "gemm_s8.h"

/* ---- geometry ------------------------------------------------------------------------------ */

static thinker_status read_geometry(const thk_op *op, const thk_tensor *w, uint32_t spatial,
                                    int transposed, thk_conv_params *p, thinker_message *msg) {
    int64_t k[2], s[2] = {1, 1}, d[2] = {1, 1}, pads[4] = {0, 0, 0, 0}, opad[2] = {0, 0}, group = 1;
    int n, i;
    for (i = 0; i < (int)spatial; i++) k[i] = w->dims[2 + i];
    n = thk_attr_ints(op, "kernel_shape", k, 2);
    if (n >= 0) {
        if (n != (int)spatial) THK_BAD("kernel_shape does not match the weight");
        for (i = 0; i < n; i++)
            if (k[i] != (int64_t)w->dims[2 + i]) THK_BAD("kernel_shape does not match the weight");
    } else if (thk_attr_has(op, "kernel_shape")) { /* more values than 2 */
        THK_BAD("kernel_shape does not match the weight");
    }
    if ((thk_attr_has(op, "strides") && thk_attr_ints(op, "strides", s, 2) != (int)spatial) ||
        (thk_attr_has(op, "dilations") && thk_attr_ints(op, "dilations", d, 2) != (int)spatial) ||
        (thk_attr_has(op, "pads") && thk_attr_ints(op, "pads", pads, 4) != 2 * (int)spatial) ||
        (transposed && thk_attr_has(op, "output_padding") &&
         thk_attr_ints(op, "output_padding", opad, 2) != (int)spatial))
        THK_BAD("geometry does not match the input rank");
    /* kernel, strides, dilations in 1..65535, pads and output_padding in 0..65535, group >= 1
     * (an int32): thk_conv_rules */
    thk_attr_int(op, "group", &group);
    if (spatial == 1) {
        p->kh = 1; p->kw = (uint32_t)k[0];
        p->sh = 1; p->sw = (uint32_t)s[0];
        p->dh = 1; p->dw = (uint32_t)d[0];
        p->pt = 0; p->pl = (uint32_t)pads[0]; p->pb = 0; p->pr = (uint32_t)pads[1];
        p->oph = 0; p->opw = (uint32_t)opad[0];
    } else {
        p->kh = (uint32_t)k[0]; p->kw = (uint32_t)k[1];
        p->sh = (uint32_t)s[0]; p->sw = (uint32_t)s[1];
        p->dh = (uint32_t)d[0]; p->dw = (uint32_t)d[1];
        p->pt = (uint32_t)pads[0]; p->pl = (uint32_t)pads[1];
        p->pb = (uint32_t)pads[2]; p->pr = (uint32_t)pads[3];
        p->oph = (uint32_t)opad[0]; p->opw = (uint32_t)opad[1];
    }
    p->group = (uint32_t)group;
    return THINKER_OK;
}

/* Output length of a conv along one axis (< 1: the caller rejects it). Geometry values are
 * <= 65535 and sizes < 2**31, so a non-negative numerator is below 2**32. */
static int64_t conv_out_len(int64_t size, int64_t p0, int64_t p1, int64_t k, int64_t s, int64_t d) {
    int64_t span = size + p0 + p1 - d * (k - 1) - 1;
    return span < 0 ? 0 : (int64_t)((uint32_t)span / (uint32_t)s) + 1;
}

/* Input dims as (N, C, H, W) for both ranks. */
static void dims4(const thk_tensor *t, uint32_t spatial, uint32_t out[4]) {
    out[0] = t->dims[0];
    out[1] = t->dims[1];
    out[2] = spatial == 2 ? t->dims[2] : 1;
    out[3] = spatial == 2 ? t->dims[3] : t->dims[2];
}

/* ---- prepare --------------------------------------------------------------------------------- */

/* Input, constant weight, optional constant bias and output of any conv. */
static thinker_status conv_operands(const thinker_model *m, const thk_op *op, thk_tensor *x,
                                    thk_tensor *w, thk_tensor *b, thk_tensor *out,
                                    int *has_bias, thinker_message *msg) {
    *has_bias = 0;
    if (op->n_out != 1 || !thk_op_input(m, op, 0, x) || !thk_op_input(m, op, 1, w))
        THK_BAD("expects 1 output"); /* input counts: thk_check_op_rules */
    /* weight and bias: integer constants within int32 (THK_RULE_WEIGHTS, thk_check_op_rules) */
    *has_bias = thk_op_input(m, op, 2, b);
    thk_op_output(m, op, 0, out);
    return THINKER_OK;
}

/* Bytes of one zero-padded input row of the depthwise DSP kernel: every column its pixel pairs
 * read, rounded up to 4. */
static uint64_t dw_row_len(const thk_conv_params *p, uint64_t wo) {
    return ((wo + 1u) * p->sw + (uint64_t)(p->kw - 1) * p->dw + 1u + 3u) & ~(uint64_t)3u;
}

/* Zero-padded input rows a depthwise output map reads: (ho - 1) sh + (kh - 1) dh + 1. */
static uint64_t dw_rows(const thk_conv_params *p, uint64_t ho) {
    return (ho - 1u) * p->sh + (uint64_t)(p->kh - 1) * p->dh + 1u;
}

/* Scratch of the three run paths. Its Python twin is thinker.memory.scratch.conv_scratch:
 * change both together.
 *   generic (int64 accumulators): none;
 *   fast, one input channel per output (depthwise): an int32 row of outputs, the tap ranges of
 *     the kernel columns, one unpacked int4 weight row and a zero-padded copy of one input
 *     channel (the rows its outputs read: the DSP kernel's);
 *   fast, im2col + GEMM: one tile of patch rows, a gather row and two unpacked int4 rows. */
static uint64_t conv_scratch(const thk_conv_params *p, uint32_t cg, uint32_t out_channels, uint64_t ho,
                             uint64_t wo) {
    uint64_t pixels = ho * wo;
    if (!p->fast) return 0;
    if (cg == 1 && p->group == out_channels)
        return 4u * wo + 8u * p->kw + thk_kpad(p->kh * p->kw) + dw_rows(p, ho) * dw_row_len(p, wo);
    return thk_gemm_scratch(cg * p->kh * p->kw, (uint32_t)pixels);
}

static thinker_status conv_prepare(const thinker_model *m, thk_op *op, thk_needs *needs,
                                   thinker_message *msg, uint32_t spatial) {
    thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t xd[4], O, cg, K;
    int64_t ho, wo;
    int has_bias;
    uint64_t scratch, wsum;
    thinker_status s;
    s = conv_operands(m, op, &x, &w, &b, &out, &has_bias, msg);
    if (s != THINKER_OK) return s;
    if (x.ndim != spatial + 2 || w.ndim != spatial + 2) THK_BAD("input does not match the weight");
    if (x.dtype == THINKER_INT64) THK_BAD("int64 inputs are not supported");
    s = read_geometry(op, &w, spatial, 0, p, msg);
    if (s != THINKER_OK) return s;
    dims4(&x, spatial, xd);
    O = w.dims[0];
    cg = w.dims[1];
    if ((uint64_t)cg * p->group != xd[1] || O % p->group) THK_BAD("weight does not fit the input");
    ho = conv_out_len(xd[2], p->pt, p->pb, p->kh, p->sh, p->dh);
    wo = conv_out_len(xd[3], p->pl, p->pr, p->kw, p->sw, p->dw);
    if (ho < 1 || wo < 1) THK_BAD("output would be empty");
    if (out.ndim != spatial + 2 || out.dims[0] != xd[0] || out.dims[1] != O ||
        (spatial == 2 && (out.dims[2] != ho || out.dims[3] != wo)) || (spatial == 1 && out.dims[2] != wo))
        THK_BAD("recorded output shape differs from the computed one");
    K = cg * p->kh * p->kw;
    wsum = thk_weight_abs_sum(&w, O, K, K, 1);
    s = thk_outstage_prepare(m, op, &x, wsum, has_bias ? &b : NULL, O, "scale_w", &out, &p->st, msg);
    if (s != THINKER_OK) return s;
    p->fast = x.dtype == THINKER_INT8 && (w.dtype == THINKER_INT8 || w.dtype == THINKER_INT4) && p->st.acc32;
    p->out32 = p->fast && thk_gemm_out32(&p->st, &out, wsum, &b, has_bias);
    scratch = conv_scratch(p, cg, O, (uint64_t)ho, (uint64_t)wo);
    if (scratch > needs->budget) { /* planned without it (tpacker --scratch fit): a scratch-free path */
        p->lean = p->fast && w.dtype == THINKER_INT8;
        p->fast = p->out32 = 0;
        scratch = 0;
    }
    p->tile = 0;
    if (p->fast && !(cg == 1 && p->group == O)) { /* the tiled GEMM: as large a tile as planned */
        p->tile = thk_gemm_tile_in(K, (uint32_t)(ho * wo), needs->budget);
        scratch = thk_gemm_scratch_rows(K, p->tile);
    }
    if (scratch > 0x7FFFFFF0u) THK_BAD("too large for the scratch buffer");
    needs->scratch = (uint32_t)scratch;
#ifdef THINKER_HOST_KERNELS
    p->host = NULL;
    if (x.dtype == THINKER_INT8 && p->st.acc32) {
        thk_host_shape hs = {0};
        hs.n = xd[0]; hs.c = xd[1]; hs.h = xd[2]; hs.w = xd[3]; hs.o = O;
        hs.kh = p->kh; hs.kw = p->kw; hs.sh = p->sh; hs.sw = p->sw; hs.dh = p->dh; hs.dw = p->dw;
        hs.pt = p->pt; hs.pl = p->pl; hs.pb = p->pb; hs.pr = p->pr;
        hs.ho = (uint32_t)ho; hs.wo = (uint32_t)wo; hs.group = p->group;
        hs.out_bytes = out.dtype == THINKER_INT8 ? 1 : out.dtype == THINKER_INT16 ? 2 : 0;
        needs->host = thk_host_conv_bind(&hs, &w, wsum, has_bias ? &b : NULL, has_bias, &p->st,
                                         needs->host_region, needs->host_room, &p->host);
        if (p->host) needs->scratch = 0; /* its work is in the job */
    }
#endif
    return THINKER_OK;
}

thinker_status thk_conv1d_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    return conv_prepare(m, op, needs, msg, 1);
}

thinker_status thk_conv2d_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    return conv_prepare(m, op, needs, msg, 2);
}

/* ---- run ------------------------------------------------------------------------------------- */

/* Valid output range [lo, hi) along one axis for kernel offset `tap`: output o reads input
 * o * s + tap * d - pad, which must lie in [0, size). */
static void tap_range(uint32_t tap, uint32_t size, uint32_t out, uint32_t s, uint32_t d, uint32_t pad,
                      uint32_t *lo, uint32_t *hi) {
    int64_t off = (int64_t)tap * d - pad; /* input index of output 0, >= -65535 */
    int64_t a = off >= 0 ? 0 : ((uint32_t)-off + s - 1) / s;
    int64_t b = (int64_t)size - 1 - off; /* o * s <= b, below 2**32 */
    b = b < 0 ? 0 : (uint32_t)b / s + 1;
    if (b > (int64_t)out) b = out;
    if (a > b) a = b;
    *lo = (uint32_t)a;
    *hi = (uint32_t)b;
}

static void unpack_int4(int8_t *dst, const uint8_t *src, uint32_t start, uint32_t n) {
    uint32_t k;
    for (k = 0; k < n; k++) {
        uint32_t i = start + k;
        int v = (i & 1u) ? src[i >> 1] >> 4 : src[i >> 1] & 15;
        dst[k] = (int8_t)(v >= 8 ? v - 16 : v);
    }
}

/* weight row o as int8: in place, or unpacked from int4 into `buf` */
static const int8_t *weight_row(const thk_tensor *w, uint32_t o, uint32_t K, int8_t *buf) {
    if (w->dtype == THINKER_INT8) return (const int8_t *)w->data + (size_t)o * K;
    unpack_int4(buf, w->data, o * K, K);
    return buf;
}

typedef struct {
    uint32_t N, C, H, W, O, cg, og, K, ho, wo;
} conv_dims;

/* Every other input/weight type: one output at a time, int64 accumulator, generic loads. */
static void conv_generic(const thk_conv_params *p, const conv_dims *d, const thk_tensor *x,
                         const thk_tensor *w, const thk_tensor *b, int has_bias, const thk_tensor *out) {
    uint32_t n, o, oy, ox, c, i, j, idx = 0;
    for (n = 0; n < d->N; n++)
        for (o = 0; o < d->O; o++) {
            int64_t bias = thk_bias_at(b, has_bias, o);
            uint32_t c0 = (o / d->og) * d->cg;
            for (oy = 0; oy < d->ho; oy++)
                for (ox = 0; ox < d->wo; ox++, idx++) {
                    int64_t acc = bias;
                    for (c = 0; c < d->cg; c++) {
                        uint32_t plane = (n * d->C + c0 + c) * d->H, wk = (o * d->cg + c) * p->kh;
                        for (i = 0; i < p->kh; i++) {
                            int64_t iy = (int64_t)oy * p->sh + (int64_t)i * p->dh - p->pt;
                            if (iy < 0 || iy >= (int64_t)d->H) continue;
                            for (j = 0; j < p->kw; j++) {
                                int64_t ix = (int64_t)ox * p->sw + (int64_t)j * p->dw - p->pl;
                                if (ix < 0 || ix >= (int64_t)d->W) continue;
                                acc += thk_load_int(w->data, w->dtype, (wk + i) * p->kw + j) *
                                       thk_load_int(x->data, x->dtype, (uint32_t)((plane + iy) * d->W + ix));
                            }
                        }
                    }
                    thk_outstage_store(&p->st, out, idx, acc);
                }
        }
}

/* Scratch-free int8 convolution (the op was planned without scratch: tpacker --scratch fit):
 * one output element at a time, an int32 accumulator (proven at init) over the kernel taps
 * inside the input (pointwise convs: a small stack block of pixels), weights and input read in
 * place; exactly the integers of the other paths. */
#define LEAN_BLOCK 16
static void conv_lean(const thk_conv_params *p, const conv_dims *d, const thk_tensor *x,
                      const thk_tensor *w, const thk_tensor *b, int has_bias, const thk_tensor *out) {
    const int8_t *xv = (const int8_t *)x->data, *wv = (const int8_t *)w->data;
    uint32_t n, o, oy, ox, c, i, j, i0, i1, j0, j1, idx = 0, KK = p->kh * p->kw;
    if (KK == 1 && p->sh == 1 && p->sw == 1 && !p->pt && !p->pl && d->ho == d->H && d->wo == d->W) {
        /* pointwise: output pixel = input pixel; blocks of LEAN_BLOCK pixels, contiguous in
         * every input plane, accumulate in a small stack array */
        uint32_t P = d->H * d->W, p0, q, nb;
        int32_t acc[LEAN_BLOCK];
        for (n = 0; n < d->N; n++)
            for (o = 0; o < d->O; o++) {
                int64_t bias = thk_bias_at(b, has_bias, o);
                const int8_t *wr = wv + (size_t)o * d->cg;
                const int8_t *xg = xv + ((size_t)n * d->C + (o / d->og) * d->cg) * P;
                for (p0 = 0; p0 < P; p0 += nb) {
                    nb = P - p0 < LEAN_BLOCK ? P - p0 : LEAN_BLOCK;
                    for (q = 0; q < LEAN_BLOCK; q++) acc[q] = 0;
                    for (c = 0; c < d->cg; c++) {
                        const int8_t *xs = xg + (size_t)c * P + p0;
                        int32_t wt = wr[c];
                        if (nb == LEAN_BLOCK)
                            for (q = 0; q < LEAN_BLOCK; q++) acc[q] += wt * xs[q];
                        else
                            for (q = 0; q < nb; q++) acc[q] += wt * xs[q];
                    }
                    for (q = 0; q < nb; q++) thk_outstage_store(&p->st, out, idx + q, (int64_t)acc[q] + bias);
                    idx += nb;
                }
            }
        return;
    }
    for (n = 0; n < d->N; n++)
        for (o = 0; o < d->O; o++) {
            int64_t bias = thk_bias_at(b, has_bias, o);
            const int8_t *wo_ = wv + (size_t)o * d->cg * KK;
            const int8_t *xg = xv + ((size_t)n * d->C + (o / d->og) * d->cg) * d->H * d->W;
            for (oy = 0; oy < d->ho; oy++) {
                int64_t y0 = (int64_t)oy * p->sh - p->pt;
                /* taps i with 0 <= y0 + i dh < H */
                i0 = y0 >= 0 ? 0 : (uint32_t)(-y0 + p->dh - 1) / p->dh; /* < 2**32: see conv_out_len */
                i1 = y0 >= (int64_t)d->H ? 0 : (uint32_t)((int64_t)d->H - 1 - y0) / p->dh + 1;
                if (i1 > p->kh) i1 = p->kh;
                for (ox = 0; ox < d->wo; ox++, idx++) {
                    int64_t x0 = (int64_t)ox * p->sw - p->pl;
                    int32_t acc = 0;
                    int64_t inside = x0 >= 0 ? (int64_t)d->W - (int64_t)(p->kw - 1) * p->dw - x0 : 0;
                    if (p->sw == 1 && inside >= 2 && ox + 1 < d->wo) {
                        /* stride 1, up to LEAN_BLOCK pixels whose whole kernel rows lie inside:
                         * contiguous input runs, accumulators on the stack */
                        int32_t blk[LEAN_BLOCK];
                        uint32_t q, nb = LEAN_BLOCK;
                        if ((int64_t)nb > inside) nb = (uint32_t)inside;
                        if (nb > d->wo - ox) nb = d->wo - ox;
                        for (q = 0; q < LEAN_BLOCK; q++) blk[q] = 0;
                        for (c = 0; c < d->cg; c++) {
                            const int8_t *xc = xg + (size_t)c * d->H * d->W, *wc = wo_ + (size_t)c * KK;
                            for (i = i0; i < i1; i++) {
                                const int8_t *xr = xc + (size_t)((y0 + (int64_t)i * p->dh) * d->W + x0);
                                for (j = 0; j < p->kw; j++) {
                                    const int8_t *xs = xr + (size_t)j * p->dw;
                                    int32_t wt = wc[(size_t)i * p->kw + j];
                                    if (nb == LEAN_BLOCK)
                                        for (q = 0; q < LEAN_BLOCK; q++) blk[q] += wt * xs[q];
                                    else
                                        for (q = 0; q < nb; q++) blk[q] += wt * xs[q];
                                }
                            }
                        }
                        for (q = 0; q < nb; q++) thk_outstage_store(&p->st, out, idx + q, (int64_t)blk[q] + bias);
                        ox += nb - 1;
                        idx += nb - 1;
                        continue;
                    }
                    j0 = x0 >= 0 ? 0 : (uint32_t)(-x0 + p->dw - 1) / p->dw;
                    j1 = x0 >= (int64_t)d->W ? 0 : (uint32_t)((int64_t)d->W - 1 - x0) / p->dw + 1;
                    if (j1 > p->kw) j1 = p->kw;
                    for (c = 0; c < d->cg; c++) {
                        const int8_t *xc = xg + (size_t)c * d->H * d->W, *wc = wo_ + (size_t)c * KK;
                        for (i = i0; i < i1; i++) {
                            const int8_t *wr = wc + (size_t)i * p->kw;
                            int64_t row = (y0 + (int64_t)i * p->dh) * d->W + x0;
                            for (j = j0; j < j1; j++) acc += (int32_t)wr[j] * xc[row + (int64_t)j * p->dw];
                        }
                    }
                    thk_outstage_store(&p->st, out, idx, (int64_t)acc + bias);
                }
            }
        }
}

/* A channel's input rows as the depthwise kernels read them: padded row k (dw_row_len bytes)
 * holds input row k - pt at column offset pl, zeros around (dw_rows of them). Only the input
 * bytes are written: the caller zeroes the buffer once per op, and every channel leaves the
 * same borders untouched. */
static void dw_pad(int8_t *pad, const int8_t *plane, const thk_conv_params *p, const conv_dims *d,
                   uint32_t L, uint32_t rows) {
    uint32_t copy = L > p->pl ? L - p->pl : 0, end = (uint32_t)(p->pt + d->H < rows ? p->pt + d->H : rows);
    int8_t *dst = pad + (size_t)p->pt * L + p->pl;
    if (copy > d->W) copy = d->W;
#if THK_GEMM_DSP /* L - pl > W (dw_row_len): whole input rows, contiguous */
    if (end > p->pt) thk_copy_rows(dst, plane, end - p->pt, copy, L - copy);
#else
    {
        const int8_t *src = plane;
        uint32_t k;
        for (k = p->pt; k < end; k++, src += d->W, dst += L) /* padded row k holds input row k - pt */
            memcpy(dst, src, copy);
    }
#endif
}

#if THK_GEMM_DSP
/* Depthwise 3x3 on DSP cores: each channel's input rows are copied once into a zero-padded
 * plane in scratch, then thk_dw3_rows makes the output map, two pixels per step, no checks;
 * only the weights, the bias and the output move between channels. */
static void dw3_dsp(const thk_conv_params *p, const conv_dims *d, const thk_tensor *x, const thk_tensor *w,
                    const thk_tensor *b, int has_bias, const thk_tensor *out, int8_t *last, int8_t *wbuf,
                    int8_t *pad) {
    uint32_t L = (uint32_t)dw_row_len(p, d->wo), rows = (uint32_t)dw_rows(p, d->ho), n, o, pairs = (d->wo + 1u) >> 1;
    uint32_t maps = d->N * d->O, m, map = d->ho * d->wo, room, first = p->sw == 2 ? 2u * p->dh * L : 0u;
    int32_t half = (int32_t)1 << (p->st.shift - 1);
    thk_dw3_job j;
    j.ts = p->dh * L;
    j.in_skip = (int32_t)(p->sh * L - 2u * pairs * p->sw);
    j.out_skip = (int32_t)(d->wo - 2u * pairs);
    j.pair_bytes = 2u * pairs;
    j.variant = (p->st.lo == 0) | (p->sw == 2 ? 2u : 0u);
    j.row = pad + first; /* the kernel does not move it */
    memset(pad, 0, (size_t)rows * L); /* the borders: dw_pad never writes them */
    for (m = 0; m < maps; m++) {
        const int8_t *wk;
        n = m / d->O;
        o = m - n * d->O;
        wk = weight_row(w, o, 9, wbuf);
        j.wt[0] = (uint16_t)wk[0] | ((uint32_t)(uint16_t)wk[2] << 16);
        j.wt[1] = (uint16_t)wk[3] | ((uint32_t)(uint16_t)wk[5] << 16);
        j.wt[2] = (uint16_t)wk[6] | ((uint32_t)(uint16_t)wk[8] << 16);
        j.wt[3] = (uint16_t)wk[1] | ((uint32_t)(uint16_t)wk[4] << 16);
        j.wt[4] = (uint32_t)p->st.shift | ((uint32_t)(uint16_t)wk[7] << 16);
        j.hb = (int32_t)thk_bias_at(b, has_bias, o) + half;
        j.out = (int8_t *)out->data + (size_t)m * map;
        dw_pad(pad, (const int8_t *)x->data + (size_t)(n * d->C + o) * d->H * d->W, p, d, L, rows);
        /* an odd width writes a byte past the map: the next map's first, rewritten after it */
        room = !(d->wo & 1u) || m + 1 < maps;
        j.rows = d->ho - !room;
        if (j.rows) thk_dw3_rows(&j);
        if (!room) { /* the last map's last row through `last` */
            int8_t *dst = j.out + (size_t)(d->ho - 1u) * d->wo;
            j.row = pad + first + (size_t)(d->ho - 1u) * p->sh * L;
            j.out = last;
            j.rows = 1;
            thk_dw3_rows(&j);
            memcpy(dst, last, d->wo);
        }
    }
}
#else
/* Depthwise on hosts: each channel's zero-padded rows (dw_pad), then every tap adds weight x a
 * run of input bytes to a block of THK_DW_LANES int32 accumulators kept in registers. With a
 * row stride of 1 the lanes run across output rows (lane t = oy L + ox: the columns past wo
 * are computed and dropped), so narrow maps still fill the vector units. */
#define THK_DW_LANES 64u
static void dw_lanes(int32_t *acc, const int8_t *src, const int8_t *wk, const thk_conv_params *p, uint32_t L,
                     uint32_t n, uint32_t step) {
    int32_t a[THK_DW_LANES];
    uint32_t i, j, t;
    for (t = 0; t < THK_DW_LANES; t++) a[t] = 0;
    for (i = 0; i < p->kh; i++)
        for (j = 0; j < p->kw; j++) {
            const int8_t *r = src + (size_t)i * p->dh * L + (size_t)j * p->dw;
            int32_t wv = wk[i * p->kw + j];
            if (step == 1)
                for (t = 0; t < n; t++) a[t] += wv * r[t];
            else
                for (t = 0; t < n; t++) a[t] += wv * r[(size_t)t * step];
        }
    memcpy(acc, a, (size_t)n * sizeof *a);
}

static void dw_host(const thk_conv_params *p, const conv_dims *d, const thk_tensor *x, const thk_tensor *w,
                    const thk_tensor *b, int has_bias, const thk_tensor *out, int8_t *wbuf, int8_t *pad) {
    uint32_t L = (uint32_t)dw_row_len(p, d->wo), rows = (uint32_t)dw_rows(p, d->ho), n, o, oy, ox;
    int32_t acc[THK_DW_LANES];
    memset(pad, 0, (size_t)rows * L); /* the borders: dw_pad never writes them */
    for (n = 0; n < d->N; n++)
        for (o = 0; o < d->O; o++) {
            const int8_t *plane = (const int8_t *)x->data + (size_t)(n * d->C + o) * d->H * d->W;
            const int8_t *wk = weight_row(w, o, p->kh * p->kw, wbuf);
            int64_t bias = thk_bias_at(b, has_bias, o);
            uint32_t base = (n * d->O + o) * d->ho * d->wo;
            dw_pad(pad, plane, p, d, L, rows);
            if (p->sh == 1 && p->sw == 1) { /* lanes across rows: t = oy L + ox up to the last output */
                uint32_t T = (d->ho - 1) * L + d->wo, t0, t;
                for (t0 = 0; t0 < T; t0 += THK_DW_LANES) {
                    uint32_t m = T - t0 < THK_DW_LANES ? T - t0 : THK_DW_LANES;
                    dw_lanes(acc, pad + t0, wk, p, L, m, 1);
                    for (t = t0; t < t0 + m;) { /* the lanes of real columns, row by row */
                        uint32_t row = t / L, col = t - row * L, k;
                        if (col >= d->wo) { t += L - col; continue; }
                        k = d->wo - col < t0 + m - t ? d->wo - col : t0 + m - t;
                        thk_gemm_store(&p->st, p->out32, out, acc + (t - t0), k, base + row * d->wo + col, 1, bias);
                        t += k;
                    }
                }
                continue;
            }
            for (oy = 0; oy < d->ho; oy++)
                for (ox = 0; ox < d->wo; ox += THK_DW_LANES) {
                    uint32_t m = d->wo - ox < THK_DW_LANES ? d->wo - ox : THK_DW_LANES;
                    dw_lanes(acc, pad + (size_t)oy * p->sh * L + (size_t)ox * p->sw, wk, p, L, m, p->sw);
                    thk_gemm_store(&p->st, p->out32, out, acc, m, base + oy * d->wo + ox, 1, bias);
                }
        }
}
#endif

/* One input channel per output channel (depthwise): for each output row, every tap adds
 * weight * a strided input row segment to an int32 row (valid ranges precomputed, no bounds
 * checks inside; the host compiler vectorizes it), then the row goes through the output stage. */
static void conv_depthwise(const thk_conv_params *p, const conv_dims *d, const thk_tensor *x,
                           const thk_tensor *w, const thk_tensor *b, int has_bias, const thk_tensor *out,
                           uint8_t *scratch) {
    int32_t *acc = (int32_t *)(void *)scratch;
    uint32_t *xr = (uint32_t *)(acc + d->wo), K = p->kh * p->kw, n, o, oy, i, j, k;
    int8_t *buf = (int8_t *)(xr + 2 * p->kw);
#if THK_GEMM_DSP
    if (p->out32 && p->kh == 3 && p->kw == 3 && p->dw == 1 && (p->sw == 1 || p->sw == 2) && p->st.hi == 127 &&
        (p->st.lo == 0 || p->st.lo <= -128)) { /* SSAT 8 or, for a ReLU, USAT 7 */
        /* acc: wo + 1 int32 (the row of outputs and the unused column ranges after it) */
        dw3_dsp(p, d, x, w, b, has_bias, out, (int8_t *)(void *)acc, buf, buf + thk_kpad(K));
        return;
    }
#else
    dw_host(p, d, x, w, b, has_bias, out, buf, buf + thk_kpad(K));
    return;
#endif
    for (j = 0; j < p->kw; j++) tap_range(j, d->W, d->wo, p->sw, p->dw, p->pl, &xr[2 * j], &xr[2 * j + 1]);
    for (n = 0; n < d->N; n++)
        for (o = 0; o < d->O; o++) {
            const int8_t *wk = weight_row(w, o, K, buf);
            const int8_t *plane = (const int8_t *)x->data + (size_t)(n * d->C + o / d->og) * d->H * d->W;
            int64_t bias = thk_bias_at(b, has_bias, o);
            for (oy = 0; oy < d->ho; oy++) {
                memset(acc, 0, (size_t)d->wo * sizeof *acc);
                for (i = 0; i < p->kh; i++) {
                    int64_t iy = (int64_t)oy * p->sh + (int64_t)i * p->dh - p->pt;
                    if (iy < 0 || iy >= (int64_t)d->H) continue;
                    for (j = 0; j < p->kw; j++) {
                        int32_t wv = wk[i * p->kw + j], *a;
                        uint32_t x0 = xr[2 * j], len = xr[2 * j + 1] - x0;
                        const int8_t *r;
                        if (!wv || !len) continue;
                        r = plane + (size_t)iy * d->W + ((int64_t)x0 * p->sw + (int64_t)j * p->dw - p->pl);
                        a = acc + x0;
                        if (p->sw == 1)
                            for (k = 0; k < len; k++) a[k] += wv * r[k];
                        else
                            for (k = 0; k < len; k++) a[k] += wv * r[(size_t)k * p->sw];
                    }
                }
                thk_gemm_store(&p->st, p->out32, out, acc, d->wo, ((n * d->O + o) * d->ho + oy) * d->wo, 1, bias);
            }
        }
}

/* The patch row (cg channels x kh x kw) of the window at (iy0, ix0): the taps inside the input
 * (kernel rows [i0, i1), columns [j0, j1)), zeros elsewhere; 32-bit steps inside. Writes the
 * byte after the row too when 3-wide rows go a word at a time (callers' rows have one more). */
#if THK_GEMM_DSP
__attribute__((noinline)) /* kept out of conv_fill_tile's loop, which needs the registers */
#endif
static void gather_edge(int8_t *dst, const int8_t *x, const thk_conv_params *p, const conv_dims *d,
                        int64_t iy0, int64_t ix0) {
    uint32_t c, i, j, kh = p->kh, kw = p->kw, dw = p->dw, i0, i1, j0, j1, K1 = kh * kw;
    uint32_t plane = d->H * d->W, rstep = p->dh * d->W, first, words;
    for (i0 = 0; i0 < kh && iy0 + (int64_t)i0 * p->dh < 0; i0++) {}
    for (i1 = kh; i1 > i0 && iy0 + (int64_t)(i1 - 1) * p->dh >= (int64_t)d->H; i1--) {}
    for (j0 = 0; j0 < kw && ix0 + (int64_t)j0 * dw < 0; j0++) {}
    for (j1 = kw; j1 > j0 && ix0 + (int64_t)(j1 - 1) * dw >= (int64_t)d->W; j1--) {}
    words = kw == 3 && dw == 1 && d->W >= 4 && j0 < j1;
    if (!words || i1 - i0 < kh) memset(dst, 0, (size_t)d->cg * K1); /* else every byte is stored */
    if (i0 == i1 || j0 == j1) return;
    /* the first tap inside: kernel row i0, column j0 */
    first = (uint32_t)(iy0 + (int64_t)i0 * p->dh) * d->W + (uint32_t)(ix0 + (int64_t)j0 * dw);
    x += first;
    dst += i0 * kw;
    if (words) { /* each kernel row inside: one word read inside its input row (from its first
                  * column inside, or ending at the row's end), shifted to its columns with zeros
                  * around and stored whole; its 4th byte (0) lands on the next row's first */
        uint32_t n = j1 - j0, back = (uint32_t)(ix0 + j0) + 4u > d->W ? 4u - n : 0u, v;
        uint32_t keep = (1u << (8u * n)) - 1u;
        for (c = 0, x -= back; c < d->cg; c++, x += plane, dst += K1) {
            const int8_t *r = x;
            for (i = i0; i < i1; i++, r += rstep) {
                __builtin_memcpy(&v, r, 4); /* one LDR / STR (freestanding: memcpy is a call) */
                v = ((v >> (8u * back)) & keep) << (8u * j0);
                __builtin_memcpy(dst + (i - i0) * 3u, &v, 4);
            }
        }
        return;
    }
    for (c = 0, dst += j0; c < d->cg; c++, x += plane, dst += K1) {
        const int8_t *r = x;
        int8_t *o = dst;
        for (i = i0; i < i1; i++, r += rstep, o += kw) {
            const int8_t *q = r;
            for (j = j0; j < j1; j++, q += dw) o[j - j0] = *q;
        }
    }
}

#if !THK_GEMM_DSP
/* The patch row of output pixel (oy, ox): cg channels x kh x kw input values, 0 in the
 * padding (every one of the K values written); windows inside the input copy rows without
 * checks. (DSP builds: conv_fill_tile.) */
static void gather(int8_t *dst, const int8_t *x, const thk_conv_params *p, const conv_dims *d, uint32_t oy,
                   uint32_t ox) {
    int64_t iy0 = (int64_t)oy * p->sh - p->pt, ix0 = (int64_t)ox * p->sw - p->pl;
    uint32_t c, i, plane = d->H * d->W, kh = p->kh, kw = p->kw, dw = p->dw;
    if (ix0 >= 0 && ix0 + (int64_t)(kw - 1) * dw < (int64_t)d->W && iy0 >= 0 &&
        iy0 + (int64_t)(kh - 1) * p->dh < (int64_t)d->H) {
        /* inside: 32-bit offsets (every one is below the tensor's size) */
        const int8_t *base = x + (uint32_t)iy0 * d->W + (uint32_t)ix0;
        uint32_t rstep = p->dh * d->W, j;
        if (kh * kw == 1) {
            for (c = 0; c < d->cg; c++, base += plane) *dst++ = *base;
            return;
        }
        if (kh == 3 && kw == 3 && dw == 1) { /* the common 3x3: nine copies per channel */
            for (c = 0; c < d->cg; c++, base += plane, dst += 9) {
                const int8_t *r1 = base + rstep, *r2 = r1 + rstep;
                dst[0] = base[0]; dst[1] = base[1]; dst[2] = base[2];
                dst[3] = r1[0]; dst[4] = r1[1]; dst[5] = r1[2];
                dst[6] = r2[0]; dst[7] = r2[1]; dst[8] = r2[2];
            }
            return;
        }
        for (c = 0; c < d->cg; c++, base += plane) {
            const int8_t *r = base;
            for (i = 0; i < kh; i++, r += rstep, dst += kw) {
                if (kw == 3 && dw == 1) {
                    dst[0] = r[0]; dst[1] = r[1]; dst[2] = r[2];
                } else {
                    for (j = 0; j < kw; j++) dst[j] = r[j * dw];
                }
            }
        }
        return;
    }
    gather_edge(dst, x, p, d, iy0, ix0);
}
#endif

typedef struct {
    thk_gemm_job job;
    const thk_conv_params *p;
    const conv_dims *d;
    const thk_tensor *w;
    const int8_t *xg;   /* the group's first input plane */
    uint32_t o0;        /* the group's first output channel */
} conv_job;

#if THK_GEMM_DSP
/* Patch rows r .. r + n - 1 into tile rows 0 .. n - 1, the pixels walked without a division:
 * 1x1 convs without padding (channels a multiple of 4) straight into the tile as int16 pairs
 * (thk_tile_strided), 3x3 windows inside the input with each row's word whole by their offsets
 * alone (thk_patch3x3), others through gather_edge; those two widened from `row` into the tile. */
static void conv_fill_tile(const thk_gemm_job *job, uint32_t r, uint32_t n, thk_patch *tile, int8_t *row) {
    const conv_job *c = (const conv_job *)job;
    const thk_conv_params *p = c->p;
    const conv_dims *d = c->d;
    /* locals: the calls below would make the compiler reload every field */
    const int8_t *xg = c->xg;
    uint32_t W = d->W, H = d->H, wo = d->wo, K = d->K, Kp = thk_kpad(K), plane = H * W, cg = d->cg;
    uint32_t sh = p->sh, sw = p->sw, pt = p->pt, pl = p->pl, oy = r / wo, ox = r - oy * wo;
    uint32_t i = 0, k, end, steps[2];
    uint32_t *dst = (uint32_t *)(void *)tile;
    if (p->kh * p->kw == 1 && !(pt | pl | p->pb | p->pr) && !(cg & 3u)) {
        /* 1x1 without padding, whole groups of 4 channels (others: gather_edge) */
        const int8_t *src = xg + oy * sh * W + ox * sw;
        for (; i < n; i++, dst += (i & 1u) ? 2u : Kp - 2u) { /* row pairs: Kp words */
            thk_tile_strided(dst, src, plane, cg >> 2);
            src += sw;
            if (++ox == wo) {
                ox = 0;
                src += sh * W - wo * sw;
            }
        }
        return;
    }
    steps[0] = p->dh * W;
    steps[1] = plane;
    for (k = K; k < Kp; k++) row[k] = 0; /* the padding (thk_patch3x3 rewrites only row[K]) */
    while (i < n) { /* one output row's pixels at a time */
        uint32_t iy = oy * sh, in = p->kh == 3 && p->kw == 3 && p->dw == 1 && iy >= pt && iy - pt + 2u * p->dh < H;
        const int8_t *base = in ? xg + (iy - pt) * W - pl : xg; /* + ix: the window's first byte */
        end = n - i < wo - ox ? n : i + wo - ox;
        for (; i < end; i++, ox++, dst += (i & 1u) ? 2u : Kp - 2u) {
            uint32_t ix = ox * sw;
            /* a 3x3 window inside, by its offsets alone, when each row's word (one byte past the
             * window) stays inside its input row; edges (and the last column) by gather_edge */
            if (in && ix >= pl && ix - pl + 4u <= W)
                thk_patch3x3(row, base + ix, cg, steps);
            else
                gather_edge(row, xg, p, d, (int64_t)iy - pt, (int64_t)ix - pl);
            row[K] = 0; /* or the byte after the row: the weight buffer, rewritten before use */
            thk_put_groups(dst, row, Kp >> 2);
        }
        if (ox == wo) {
            ox = 0;
            oy++;
        }
    }
}
#else
static void conv_fill(const thk_gemm_job *job, uint32_t r, int8_t *dst) {
    const conv_job *c = (const conv_job *)job;
    gather(dst, c->xg, c->p, c->d, r / c->d->wo, r % c->d->wo);
}
#endif

static const int8_t *conv_weight(const thk_gemm_job *job, uint32_t o, int8_t *buf) {
    const conv_job *c = (const conv_job *)job;
    return weight_row(c->w, c->o0 + o, c->d->K, buf);
}

/* im2col of a few output pixels at a time into a bounded tile, then the GEMM micro-kernel (two
 * output channels x four pixels per call, output stage fused): gemm_s8.c's driver. */
static void conv_gemm(const thk_conv_params *p, const conv_dims *d, const thk_tensor *x,
                      const thk_tensor *w, const thk_tensor *b, int has_bias, const thk_tensor *out,
                      uint8_t *scratch) {
    uint32_t P = d->ho * d->wo, n, g;
    conv_job c;
    c.job.K = d->K;
    c.job.rows = P;
    c.job.tile = p->tile;
    c.job.outs = d->og;
#if THK_GEMM_DSP
    c.job.fill_tile = conv_fill_tile;
#else
    c.job.fill = conv_fill;
#endif
    c.job.weight = conv_weight;
    c.job.st = &p->st;
    c.job.out = out;
    c.job.bias = b;
    c.job.has_bias = has_bias;
    c.job.out32 = p->out32;
    c.job.ch_step = P;
    c.job.row_step = 1;
    c.p = p;
    c.d = d;
    c.w = w;
    for (n = 0; n < d->N; n++)
        for (g = 0; g < d->O / d->og; g++) {
            c.o0 = c.job.bias0 = g * d->og;
            c.job.out0 = (n * d->O + c.o0) * P;
            c.xg = (const int8_t *)x->data + (size_t)(n * d->C + g * d->cg) * d->H * d->W;
            thk_gemm_run(&c.job, scratch);
        }
}

#if !THK_GEMM_DSP
/* Direct convolution for hosts (vector units): four output channels x THK_SEG output pixels
 * accumulate in registers over every (channel, kernel row, kernel column) tap, each tap one
 * input row segment times four broadcast weights, which compilers turn into vector
 * multiply-adds. The kernel rows of the current output row are first copied with their zero
 * padding into scratch, so no tap needs a bounds check. Used for rows of at least
 * THK_SEG * 3/4 pixels when those rows fit the op's scratch (the im2col + GEMM path otherwise). */
#define THK_SEG 32u

/* padded row length: every tap of ceil(wo / SEG) segments stays inside */
static uint32_t padded_len(const thk_conv_params *p, const conv_dims *d) {
    uint32_t nseg = (d->wo + THK_SEG - 1) / THK_SEG;
    return (nseg * THK_SEG - 1) * p->sw + (p->kw - 1) * p->dw + 1;
}

static int direct_fits(const thk_conv_params *p, const conv_dims *d) {
    uint64_t need = (uint64_t)d->cg * p->kh * padded_len(p, d) + 4ull * d->K;
    return d->wo >= THK_SEG * 3 / 4 && need <= thk_gemm_scratch(d->K, d->ho * d->wo);
}

/* acc[q][t] += w_q[k] * r[t * STEP] over every tap; STEP 1 (contiguous) or sw */
#define DEFINE_SEG(NAME, STEP)                                                                   \
    static void NAME(int32_t out[4][THK_SEG], const int8_t *const wr[4], const int8_t *rows,    \
                     const thk_conv_params *p, uint32_t cg, uint32_t L) {                       \
        int32_t a0[THK_SEG], a1[THK_SEG], a2[THK_SEG], a3[THK_SEG];                            \
        const int8_t *w0 = wr[0], *w1 = wr[1], *w2 = wr[2], *w3 = wr[3];                       \
        uint32_t j, t, k, n = cg * p->kh, kw = p->kw, dw = p->dw, sw = p->sw, ck;              \
        (void)sw;                                                                               \
        for (t = 0; t < THK_SEG; t++) a0[t] = a1[t] = a2[t] = a3[t] = 0;                        \
        for (ck = 0, k = 0; ck < n; ck++, rows += L) {                                          \
            const int8_t *r = rows;                                                             \
            for (j = 0; j < kw; j++, k++, r += dw) {                                            \
                int16_t e0 = w0[k], e1 = w1[k], e2 = w2[k], e3 = w3[k];                         \
                for (t = 0; t < THK_SEG; t++) { /* |w x| <= 2**14: 16-bit products */          \
                    int16_t v = r[(size_t)t * (STEP)];                                          \
                    a0[t] += (int16_t)(e0 * v); a1[t] += (int16_t)(e1 * v);                    \
                    a2[t] += (int16_t)(e2 * v); a3[t] += (int16_t)(e3 * v);                    \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        memcpy(out[0], a0, sizeof a0);                                                          \
        memcpy(out[1], a1, sizeof a1);                                                          \
        memcpy(out[2], a2, sizeof a2);                                                          \
        memcpy(out[3], a3, sizeof a3);                                                          \
    }
DEFINE_SEG(seg_unit, 1)
DEFINE_SEG(seg_strided, sw)

static void conv_direct(const thk_conv_params *p, const conv_dims *d, const thk_tensor *x,
                        const thk_tensor *w, const thk_tensor *b, int has_bias, const thk_tensor *out,
                        uint8_t *scratch) {
    uint32_t P = d->ho * d->wo, L = padded_len(p, d), n, g, o, oy, ox, q, c, i, copy;
    int8_t *rows = (int8_t *)scratch, *wbuf = rows + (size_t)d->cg * p->kh * L;
    int32_t seg[4][THK_SEG];
    /* input columns of a padded row: u - pl for u in [pl, pl + copy) */
    copy = L > p->pl ? L - p->pl : 0;
    if (copy > d->W) copy = d->W;
    for (n = 0; n < d->N; n++)
        for (g = 0; g < d->O / d->og; g++) {
            const int8_t *xg = (const int8_t *)x->data + (size_t)(n * d->C + g * d->cg) * d->H * d->W;
            for (oy = 0; oy < d->ho; oy++) {
                int8_t *row = rows;
                for (c = 0; c < d->cg; c++)
                    for (i = 0; i < p->kh; i++, row += L) {
                        int64_t iy = (int64_t)oy * p->sh + (int64_t)i * p->dh - p->pt;
                        memset(row, 0, L);
                        if (iy >= 0 && iy < (int64_t)d->H)
                            memcpy(row + p->pl, xg + ((size_t)c * d->H + (size_t)iy) * d->W, copy);
                    }
                for (o = g * d->og; o < (g + 1) * d->og; o += 4) {
                    const int8_t *wr[4];
                    int64_t bias[4];
                    uint32_t nb = (g + 1) * d->og - o < 4 ? (g + 1) * d->og - o : 4;
                    uint32_t base = (n * d->O + o) * P + oy * d->wo;
                    for (q = 0; q < 4; q++) {
                        uint32_t oo = o + (q < nb ? q : 0);
                        wr[q] = weight_row(w, oo, d->K, wbuf + (size_t)q * d->K);
                        bias[q] = thk_bias_at(b, has_bias, oo);
                    }
                    for (ox = 0; ox < d->wo; ox += THK_SEG) {
                        uint32_t m = d->wo - ox < THK_SEG ? d->wo - ox : THK_SEG;
                        (p->sw == 1 ? seg_unit : seg_strided)(seg, wr, rows + (size_t)ox * p->sw, p, d->cg, L);
                        for (q = 0; q < nb; q++)
                            thk_gemm_store(&p->st, p->out32, out, seg[q], m, base + q * P + ox, 1, bias[q]);
                    }
                }
            }
        }
}
#endif

static thinker_status conv_run(thk_run_ctx *ctx, uint32_t spatial) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t xd[4];
    int has_bias;
    conv_dims d;
#ifdef THINKER_HOST_KERNELS
    thinker_status status;
    if (thk_host_conv_run(ctx, &status)) return status; /* else no job: the portable kernels */
#endif
    thk_op_input(m, op, 0, &x);
    thk_op_output(m, op, 0, &out);
    thk_op_input(m, op, 1, &w);
    has_bias = thk_op_input(m, op, 2, &b);
    dims4(&x, spatial, xd);
    d.N = xd[0]; d.C = xd[1]; d.H = xd[2]; d.W = xd[3];
    d.O = w.dims[0];
    d.cg = w.dims[1];
    d.og = d.O / p->group;
    d.K = d.cg * p->kh * p->kw;
    d.ho = spatial == 2 ? out.dims[2] : 1;
    d.wo = spatial == 2 ? out.dims[3] : out.dims[2];
    if (p->lean)
        conv_lean(p, &d, &x, &w, &b, has_bias, &out);
    else if (!p->fast)
        conv_generic(p, &d, &x, &w, &b, has_bias, &out);
    else if (d.cg == 1 && d.og == 1)
        conv_depthwise(p, &d, &x, &w, &b, has_bias, &out, ctx->scratch);
#if !THK_GEMM_DSP
    else if (direct_fits(p, &d)) /* wide rows: vector segments */
        conv_direct(p, &d, &x, &w, &b, has_bias, &out, ctx->scratch);
#endif
    else
        conv_gemm(p, &d, &x, &w, &b, has_bias, &out, ctx->scratch);
    return THINKER_OK;
}

thinker_status thk_conv1d_run(thk_run_ctx *ctx) { return conv_run(ctx, 1); }
thinker_status thk_conv2d_run(thk_run_ctx *ctx) { return conv_run(ctx, 2); }

/* ---- ConvTranspose2dInt ---------------------------------------------------------------------- */

thinker_status thk_conv_transpose2d_prepare(const thinker_model *m, thk_op *op, thk_needs *needs,
                                            thinker_message *msg) {
    thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t C, og, O, cpg, g, ol, c, k, KK;
    int64_t ho, wo;
    uint64_t best = 0;
    int has_bias;
    thinker_status s;
    s = conv_operands(m, op, &x, &w, &b, &out, &has_bias, msg);
    if (s != THINKER_OK) return s;
    if (x.ndim != 4 || w.ndim != 4) THK_BAD("expects 4-D input and weight");
    s = read_geometry(op, &w, 2, 1, p, msg);
    if (s != THINKER_OK) return s;
    C = x.dims[1];
    if (w.dims[0] != C || C % p->group) THK_BAD("weight does not fit the input");
    og = w.dims[1];
    O = og * p->group;
    ho = ((int64_t)x.dims[2] - 1) * p->sh + p->oph + (int64_t)p->dh * (p->kh - 1) + 1 - p->pt - p->pb;
    wo = ((int64_t)x.dims[3] - 1) * p->sw + p->opw + (int64_t)p->dw * (p->kw - 1) + 1 - p->pl - p->pr;
    if (ho < 1 || wo < 1) THK_BAD("output would be empty");
    if (out.ndim != 4 || out.dims[0] != x.dims[0] || out.dims[1] != O || out.dims[2] != ho || out.dims[3] != wo)
        THK_BAD("recorded output shape differs from the computed one");
    /* per output channel: sum |w| over the input channels of its group and all taps */
    cpg = C / p->group;
    KK = p->kh * p->kw;
    for (g = 0; g < p->group; g++)
        for (ol = 0; ol < og; ol++) {
            uint64_t sum = 0;
            for (c = 0; c < cpg; c++)
                for (k = 0; k < KK; k++) {
                    int64_t v = thk_load_int(w.init, w.dtype, ((g * cpg + c) * og + ol) * KK + k);
                    sum = thk_add_sat(sum, (uint64_t)(v < 0 ? -v : v));
                }
            if (sum > best) best = sum;
        }
    s = thk_outstage_prepare(m, op, &x, best, has_bias ? &b : NULL, O, "scale_w", &out, &p->st, msg);
    if (s != THINKER_OK) return s;
    (void)needs; /* no scratch (thinker.memory.scratch.conv_transpose_scratch) */
    return THINKER_OK;
}

/* Each output gathers what the inputs scatter into it: output (oy, ox) receives input (iy, ix)
 * through tap (i, j) when oy = iy*sh + i*dh - pt and ox = ix*sw + j*dw - pl. One exact int64
 * sum per output: no scratch. */
thinker_status thk_conv_transpose2d_run(thk_run_ctx *ctx) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t N, C, H, W, O, og, cpg, ho, wo, n, o, c, i, j, oy, ox, idx = 0;
    int has_bias;
    thk_op_input(m, op, 0, &x);
    thk_op_input(m, op, 1, &w);
    has_bias = thk_op_input(m, op, 2, &b);
    thk_op_output(m, op, 0, &out);
    N = x.dims[0]; C = x.dims[1]; H = x.dims[2]; W = x.dims[3];
    og = w.dims[1];
    O = out.dims[1]; ho = out.dims[2]; wo = out.dims[3];
    cpg = C / p->group;
    for (n = 0; n < N; n++)
        for (o = 0; o < O; o++)
            for (oy = 0; oy < ho; oy++)
                for (ox = 0; ox < wo; ox++, idx++) {
                    uint32_t g = o / og, ol = o % og;
                    int64_t acc = thk_bias_at(&b, has_bias, o);
                    for (c = g * cpg; c < (g + 1) * cpg; c++)
                        for (i = 0; i < p->kh; i++) {
                            int64_t ty = (int64_t)oy + p->pt - (int64_t)i * p->dh, iy;
                            if (ty < 0 || (uint32_t)ty % p->sh || (iy = (uint32_t)ty / p->sh) >= (int64_t)H) continue; /* ty < 2**32 */
                            for (j = 0; j < p->kw; j++) {
                                int64_t tx = (int64_t)ox + p->pl - (int64_t)j * p->dw, ix;
                                if (tx < 0 || (uint32_t)tx % p->sw || (ix = (uint32_t)tx / p->sw) >= (int64_t)W) continue;
                                acc += thk_load_int(w.data, w.dtype, ((c * og + ol) * p->kh + i) * p->kw + j) *
                                       thk_load_int(x.data, x.dtype, (uint32_t)(((n * C + c) * H + iy) * W + ix));
                            }
                        }
                    thk_outstage_store(&p->st, &out, idx, acc);
                }
    return THINKER_OK;
}
