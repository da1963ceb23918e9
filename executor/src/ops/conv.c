/* Conv1dInt, Conv2dInt, ConvTranspose2dInt (thinker/ops/conv.py) on NCHW tensors.
 *
 * Direct convolution "by taps": for one output channel, every (input channel, kernel offset)
 * pair adds weight * a shifted window of the input plane to an accumulator plane. The valid
 * output range of each tap is computed once, so the inner loop has no bounds checks and runs
 * over contiguous memory (whole planes for pointwise convs): compilers vectorize it, and on a
 * Cortex-M it is a tight load-multiply-accumulate loop. Weights are read in place ([O, C/g,
 * kh, kw]); 4-bit weights are unpacked one output channel at a time into scratch.
 *
 * Fast path: int8 input, 8- or 4-bit weights, int32 accumulator proven safe at init. Every
 * other combination runs the generic path with an int64 accumulator. */
#include "ops.h"

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
            if (k[i] != (int64_t)w->dims[2 + i]) THK_BAD("kernel_shape does not match the weight shape");
    } else if (thk_attr_has(op, "kernel_shape")) {
        THK_BAD("kernel_shape must be ints");
    }
    if (thk_attr_has(op, "strides") && thk_attr_ints(op, "strides", s, 2) != (int)spatial)
        THK_BAD("strides do not match the conv's rank");
    if (thk_attr_has(op, "dilations") && thk_attr_ints(op, "dilations", d, 2) != (int)spatial)
        THK_BAD("dilations do not match the conv's rank");
    if (thk_attr_has(op, "pads") && thk_attr_ints(op, "pads", pads, 4) != 2 * (int)spatial)
        THK_BAD("pads do not match the conv's rank");
    if (transposed && thk_attr_has(op, "output_padding") &&
        thk_attr_ints(op, "output_padding", opad, 2) != (int)spatial)
        THK_BAD("output_padding does not match the conv's rank");
    if (thk_attr_has(op, "group") && !thk_attr_int(op, "group", &group))
        THK_BAD("group must be an int");
    for (i = 0; i < (int)spatial; i++) {
        if (s[i] < 1 || d[i] < 1 || pads[i] < 0 || pads[i + spatial] < 0 || opad[i] < 0)
            THK_BAD("strides and dilations must be >= 1 and pads >= 0");
        if (s[i] > 65535 || d[i] > 65535 || pads[i] > 65535 || pads[i + spatial] > 65535 || opad[i] > 65535)
            THK_BAD("geometry values above 65535 are not supported");
    }
    if (group < 1 || group > 0x7FFFFFFF) THK_BAD("group must be >= 1");
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
    if (op->n_in < 2 || op->n_in > 3 || op->n_out != 1) THK_BAD("expects 2-3 inputs and 1 output");
    if (!thk_op_input(m, op, 0, x) || !thk_op_input(m, op, 1, w)) THK_BAD("input and weight are required");
    if (!w->init) THK_BAD("weight must be a constant");
    *has_bias = thk_op_input(m, op, 2, b);
    if (*has_bias && !b->init) THK_BAD("bias must be a constant");
    thk_op_output(m, op, 0, out);
    return THINKER_OK;
}

static thinker_status conv_prepare(const thinker_model *m, thk_op *op, thk_needs *needs,
                                   thinker_message *msg, uint32_t spatial) {
    thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t xd[4], O, cg, K;
    int64_t ho, wo;
    int has_bias;
    uint64_t scratch;
    thinker_status s;
    s = conv_operands(m, op, &x, &w, &b, &out, &has_bias, msg);
    if (s != THINKER_OK) return s;
    if (x.ndim != spatial + 2 || w.ndim != spatial + 2) THK_BAD("input and weight rank do not match the conv");
    if (!thk_is_int(w.dtype) && w.dtype != THINKER_INT4) THK_BAD("weight must be integer");
    if (x.dtype == THINKER_INT64) THK_BAD("int64 inputs are not supported");
    s = read_geometry(op, &w, spatial, 0, p, msg);
    if (s != THINKER_OK) return s;
    dims4(&x, spatial, xd);
    O = w.dims[0];
    cg = w.dims[1];
    if ((uint64_t)cg * p->group != xd[1] || O % p->group) THK_BAD("weight and group do not fit the input channels");
    ho = conv_out_len(xd[2], p->pt, p->pb, p->kh, p->sh, p->dh);
    wo = conv_out_len(xd[3], p->pl, p->pr, p->kw, p->sw, p->dw);
    if (ho < 1 || wo < 1) THK_BAD("output would be empty");
    if (out.ndim != spatial + 2 || out.dims[0] != xd[0] || out.dims[1] != O ||
        (spatial == 2 && (out.dims[2] != ho || out.dims[3] != wo)) || (spatial == 1 && out.dims[2] != wo))
        THK_BAD("recorded output shape differs from the computed one");
    K = cg * p->kh * p->kw;
    s = thk_outstage_prepare(m, op, &x, thk_weight_abs_sum(&w, O, K, K, 1), has_bias ? &b : NULL,
                             O, "scale_w", &out, &p->st, msg);
    if (s != THINKER_OK) return s;
    p->fast = x.dtype == THINKER_INT8 && (w.dtype == THINKER_INT8 || w.dtype == THINKER_INT4) && p->st.acc32;
    /* small output maps with long kernels (late layers): gather the input patches once
     * (im2col, K bytes per output pixel) and take int8 dot products, instead of many short
     * tap loops; only while the patches stay small */
    p->im2col = p->fast && cg > 1 && (uint64_t)ho * wo <= 256 && (uint64_t)ho * wo * K * p->group <= 65536;
    /* scratch: accumulator plane, one unpacked weight row, tap ranges (+ patches) */
    scratch = (uint64_t)ho * wo * (p->fast ? 4u : 8u);
    if (p->im2col) scratch += ((uint64_t)ho * wo * K * p->group + 15u) & ~(uint64_t)15u;
    scratch += ((uint64_t)K * (p->fast ? 1u : 4u) + 7u) & ~(uint64_t)7u;
    scratch += 8ull * (p->kh + p->kw);
    if (scratch > 0x7FFFFFF0u) THK_BAD("layer too large for the scratch buffer");
    needs->scratch = (uint32_t)scratch;
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

typedef struct {
    uint32_t H, W, ho, wo;
    const uint32_t *yr, *xr; /* [lo, hi) per kernel row / column */
    const thk_conv_params *p;
} tap_geo;

/* acc[oy, ox] += wv * x[oy*sh + i*dh - pt, ox*sw + j*dw - pl] over the tap's valid range. */
#define DEFINE_TAP(NAME, XT, AT)                                                               \
    static void NAME(AT *acc, const XT *x, AT wv, const tap_geo *g, uint32_t i, uint32_t j) { \
        const thk_conv_params *p = g->p;                                                       \
        uint32_t y0 = g->yr[2 * i], y1 = g->yr[2 * i + 1], x0 = g->xr[2 * j], x1 = g->xr[2 * j + 1]; \
        uint32_t n = x1 - x0, oy, k;                                                           \
        int64_t col = (int64_t)x0 * p->sw + (int64_t)j * p->dw - p->pl;                        \
        if (y0 >= y1 || n == 0) return;                                                        \
        if (p->sw == 1 && p->sh == 1 && n == g->wo && g->wo == g->W) {                        \
            /* rows are contiguous in both planes: one long loop */                            \
            const XT *r = x + ((int64_t)y0 + (int64_t)i * p->dh - p->pt) * g->W + col;         \
            AT *a = acc + (size_t)y0 * g->wo;                                                  \
            uint32_t len = (y1 - y0) * n;                                                      \
            for (k = 0; k < len; k++) a[k] += wv * (AT)r[k];                                   \
            return;                                                                            \
        }                                                                                      \
        for (oy = y0; oy < y1; oy++) {                                                         \
            const XT *r = x + ((int64_t)oy * p->sh + (int64_t)i * p->dh - p->pt) * g->W + col; \
            AT *a = acc + (size_t)oy * g->wo + x0;                                             \
            if (p->sw == 1)                                                                    \
                for (k = 0; k < n; k++) a[k] += wv * (AT)r[k];                                 \
            else                                                                               \
                for (k = 0; k < n; k++) a[k] += wv * (AT)r[(size_t)k * p->sw];                 \
        }                                                                                      \
    }

DEFINE_TAP(tap_i8_i32, int8_t, int32_t)
DEFINE_TAP(tap_i8_i64, int8_t, int64_t)
DEFINE_TAP(tap_i16_i64, int16_t, int64_t)

/* uint8 / int32 inputs are rare: one small tap through the generic element load */
static void tap_any_i64(int64_t *acc, const thk_tensor *x, size_t at, int64_t wv, const tap_geo *g,
                        uint32_t i, uint32_t j) {
    const thk_conv_params *p = g->p;
    uint32_t oy, ox;
    for (oy = g->yr[2 * i]; oy < g->yr[2 * i + 1]; oy++)
        for (ox = g->xr[2 * j]; ox < g->xr[2 * j + 1]; ox++) {
            size_t iy = (size_t)((int64_t)oy * p->sh + (int64_t)i * p->dh - p->pt);
            size_t ix = (size_t)((int64_t)ox * p->sw + (int64_t)j * p->dw - p->pl);
            acc[(size_t)oy * g->wo + ox] += wv * thk_load_int(x->data, x->dtype, (uint32_t)(at + iy * g->W + ix));
        }
}

static void unpack_int4(int8_t *dst, const uint8_t *src, uint32_t start, uint32_t n) {
    uint32_t k;
    for (k = 0; k < n; k++) {
        uint32_t i = start + k;
        int v = (i & 1u) ? src[i >> 1] >> 4 : src[i >> 1] & 15;
        dst[k] = (int8_t)(v >= 8 ? v - 16 : v);
    }
}

/* im2col + dot products: patches[g][pixel][K] gathered once per sample (zero padding), then
 * every output is one contiguous int8 dot product with its weight row. */
static thinker_status conv_im2col(thk_run_ctx *ctx, const thk_tensor *x, const thk_tensor *w,
                                  const thk_tensor *b, const thk_tensor *out, const uint32_t *xd,
                                  const tap_geo *g, uint8_t *scratch) {
    const thk_conv_params *p = &ctx->op->p.conv;
    uint32_t O = w->dims[0], cg = w->dims[1], og = O / p->group, K = cg * p->kh * p->kw;
    uint32_t P = g->ho * g->wo, n, gi, c, i, j, oy, ox, o, q;
    int8_t *patches = (int8_t *)scratch, *row = patches + (((size_t)P * K * p->group + 15u) & ~(size_t)15u);
    for (n = 0; n < xd[0]; n++) {
        for (gi = 0; gi < p->group; gi++)
            for (oy = 0; oy < g->ho; oy++)
                for (ox = 0; ox < g->wo; ox++) {
                    int8_t *dst = patches + ((size_t)gi * P + (size_t)oy * g->wo + ox) * K;
                    for (c = 0; c < cg; c++) {
                        const int8_t *plane = (const int8_t *)x->data + (size_t)(n * xd[1] + gi * cg + c) * g->H * g->W;
                        for (i = 0; i < p->kh; i++) {
                            int64_t iy = (int64_t)oy * p->sh + (int64_t)i * p->dh - p->pt;
                            for (j = 0; j < p->kw; j++) {
                                int64_t ix = (int64_t)ox * p->sw + (int64_t)j * p->dw - p->pl;
                                *dst++ = (iy < 0 || iy >= (int64_t)g->H || ix < 0 || ix >= (int64_t)g->W)
                                             ? 0 : plane[iy * g->W + ix];
                            }
                        }
                    }
                }
        for (o = 0; o < O; o++) {
            const int8_t *wrow = (const int8_t *)w->data + (size_t)o * K;
            const int8_t *pat = patches + (size_t)(o / og) * P * K;
            int64_t bias = thk_bias_at(b, b != NULL, o);
            if (w->dtype == THINKER_INT4) {
                unpack_int4(row, w->data, o * K, K);
                wrow = row;
            }
            for (q = 0; q < P; q++) {
                const int8_t *col = pat + (size_t)q * K;
                int32_t acc = 0;
                uint32_t k;
                for (k = 0; k < K; k++) acc += (int32_t)wrow[k] * col[k];
                thk_outstage_store(&p->st, out, (n * O + o) * P + q, (int64_t)acc + bias);
            }
        }
    }
    return THINKER_OK;
}

static thinker_status conv_run(thk_run_ctx *ctx, uint32_t spatial) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t xd[4], O, cg, og, K, ho, wo, plane, n, o, c, i, j;
    uint32_t *yr, *xr;
    uint8_t *scratch = ctx->scratch;
    int has_bias;
    tap_geo g;
    thk_op_input(m, op, 0, &x);
    thk_op_input(m, op, 1, &w);
    has_bias = thk_op_input(m, op, 2, &b);
    thk_op_output(m, op, 0, &out);
    dims4(&x, spatial, xd);
    O = w.dims[0];
    cg = w.dims[1];
    og = O / p->group;
    K = cg * p->kh * p->kw;
    ho = spatial == 2 ? out.dims[2] : 1;
    wo = spatial == 2 ? out.dims[3] : out.dims[2];
    plane = xd[2] * xd[3];
    yr = (uint32_t *)(void *)scratch;
    xr = yr + 2 * p->kh;
    scratch += 8u * (p->kh + p->kw);
    for (i = 0; i < p->kh; i++) tap_range(i, xd[2], ho, p->sh, p->dh, p->pt, &yr[2 * i], &yr[2 * i + 1]);
    for (j = 0; j < p->kw; j++) tap_range(j, xd[3], wo, p->sw, p->dw, p->pl, &xr[2 * j], &xr[2 * j + 1]);
    g.H = xd[2]; g.W = xd[3]; g.ho = ho; g.wo = wo; g.yr = yr; g.xr = xr; g.p = p;

    if (p->im2col) return conv_im2col(ctx, &x, &w, has_bias ? &b : NULL, &out, xd, &g, scratch);
    for (n = 0; n < xd[0]; n++) {
        for (o = 0; o < O; o++) {
            uint32_t c0 = (o / og) * cg, base = (n * O + o) * ho * wo, q;
            int64_t bias = thk_bias_at(&b, has_bias, o);
            if (p->fast) {
                int32_t *acc = (int32_t *)(void *)scratch;
                const int8_t *wrow;
                if (w.dtype == THINKER_INT4) {
                    int8_t *row = (int8_t *)(acc + (size_t)ho * wo);
                    unpack_int4(row, w.data, o * K, K);
                    wrow = row;
                } else {
                    wrow = (const int8_t *)w.data + (size_t)o * K;
                }
                memset(acc, 0, (size_t)ho * wo * sizeof *acc);
                for (c = 0; c < cg; c++) {
                    const int8_t *xin = (const int8_t *)x.data + (size_t)(n * xd[1] + c0 + c) * plane;
                    for (i = 0; i < p->kh; i++)
                        for (j = 0; j < p->kw; j++) {
                            int32_t wv = wrow[(c * p->kh + i) * p->kw + j];
                            if (wv) tap_i8_i32(acc, xin, wv, &g, i, j);
                        }
                }
                if (!p->st.out_float && out.dtype == THINKER_INT8 && p->st.shift > 0 && p->st.shift < 62 &&
                    p->st.round_mode == THK_ROUND_FLOOR_ADD) {
                    /* the common int8 output: rshift_round with the half folded into the bias */
                    int8_t *dst = (int8_t *)out.data + base;
                    int64_t half = bias + ((int64_t)1 << (p->st.shift - 1));
                    int32_t sft = p->st.shift;
                    for (q = 0; q < ho * wo; q++) {
                        int64_t v = thk_floor_shift(acc[q] + half, sft);
                        dst[q] = (int8_t)thk_clamp(v, p->st.lo, p->st.hi);
                    }
                } else {
                    for (q = 0; q < ho * wo; q++) thk_outstage_store(&p->st, &out, base + q, acc[q] + bias);
                }
            } else {
                int64_t *acc = (int64_t *)(void *)scratch;
                int32_t *wrow = (int32_t *)(acc + (size_t)ho * wo);
                for (q = 0; q < K; q++) wrow[q] = (int32_t)thk_load_int(w.data, w.dtype, o * K + q);
                memset(acc, 0, (size_t)ho * wo * sizeof *acc);
                for (c = 0; c < cg; c++) {
                    size_t at = (size_t)(n * xd[1] + c0 + c) * plane;
                    for (i = 0; i < p->kh; i++)
                        for (j = 0; j < p->kw; j++) {
                            int64_t wv = wrow[(c * p->kh + i) * p->kw + j];
                            if (!wv) continue;
                            switch (x.dtype) {
                            case THINKER_INT8: tap_i8_i64(acc, (const int8_t *)x.data + at, wv, &g, i, j); break;
                            case THINKER_INT16: tap_i16_i64(acc, (const int16_t *)x.data + at, wv, &g, i, j); break;
                            default: tap_any_i64(acc, &x, at, wv, &g, i, j); break;
                            }
                        }
                }
                for (q = 0; q < ho * wo; q++) thk_outstage_store(&p->st, &out, base + q, acc[q] + bias);
            }
        }
    }
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
    if (!thk_is_int(w.dtype) && w.dtype != THINKER_INT4) THK_BAD("weight must be integer");
    s = read_geometry(op, &w, 2, 1, p, msg);
    if (s != THINKER_OK) return s;
    C = x.dims[1];
    if (w.dims[0] != C || C % p->group) THK_BAD("weight [C, O/group, kh, kw] does not fit the input");
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
    if ((uint64_t)ho * wo * 8u > 0x7FFFFFF0u) THK_BAD("layer too large for the scratch buffer");
    needs->scratch = (uint32_t)(ho * wo * 8);
    return THINKER_OK;
}

/* Each input pixel scatters x * kernel into the output: output (oy, ox) receives input (iy, ix)
 * through tap (i, j) when oy = iy*sh + i*dh - pt and ox = ix*sw + j*dw - pl. */
thinker_status thk_conv_transpose2d_run(thk_run_ctx *ctx) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t N, C, H, W, O, og, cpg, ho, wo, n, o, c, i, j, iy, ix;
    int64_t *acc = (int64_t *)(void *)ctx->scratch;
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
        for (o = 0; o < O; o++) {
            uint32_t g = o / og, ol = o % og, q;
            int64_t bias = thk_bias_at(&b, has_bias, o);
            memset(acc, 0, (size_t)ho * wo * sizeof *acc);
            for (c = g * cpg; c < (g + 1) * cpg; c++) {
                uint32_t at = (n * C + c) * H * W;
                for (i = 0; i < p->kh; i++)
                    for (j = 0; j < p->kw; j++) {
                        int64_t wv = thk_load_int(w.data, w.dtype, ((c * og + ol) * p->kh + i) * p->kw + j);
                        int64_t offx = (int64_t)j * p->dw - p->pl;
                        int64_t ix0, ix1;
                        if (!wv) continue;
                        /* 0 <= ix*sw + offx < wo */
                        ix0 = offx >= 0 ? 0 : ((uint32_t)-offx + p->sw - 1) / p->sw;
                        ix1 = (int64_t)wo - 1 - offx < 0 ? 0 : (uint32_t)((int64_t)wo - 1 - offx) / p->sw + 1;
                        if (ix1 > (int64_t)W) ix1 = W;
                        for (iy = 0; iy < H; iy++) {
                            int64_t oy = (int64_t)iy * p->sh + (int64_t)i * p->dh - p->pt;
                            int64_t *a;
                            if (oy < 0 || oy >= (int64_t)ho) continue;
                            a = acc + (size_t)oy * wo;
                            if (x.dtype == THINKER_INT8) {
                                const int8_t *r = (const int8_t *)x.data + at + iy * W;
                                for (ix = (uint32_t)ix0; (int64_t)ix < ix1; ix++)
                                    a[ix * p->sw + offx] += wv * r[ix];
                            } else {
                                for (ix = (uint32_t)ix0; (int64_t)ix < ix1; ix++)
                                    a[ix * p->sw + offx] += wv * thk_load_int(x.data, x.dtype, at + iy * W + ix);
                            }
                        }
                    }
            }
            for (q = 0; q < ho * wo; q++) thk_outstage_store(&p->st, &out, (n * O + o) * ho * wo + q, acc[q] + bias);
        }
    return THINKER_OK;
}
