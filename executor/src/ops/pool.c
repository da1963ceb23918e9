/* AvgPool2dInt and MaxPool over NCHW / NCL integer tensors (thinker/ops/pool.py).
 *
 * AvgPool2dInt: integer window sum S (zero padding), then saturate(round_half_up(S * 2**(q_o -
 * q_x) / d)) evaluated exactly; the divisor d follows PyTorch (count_include_pad, ceil-mode
 * windows clipped at the padded edge, divisor_override). MaxPool: padding never wins. */
#include "ops.h"
#include "../op_select.h"

/* pool_out_len: in ceil mode the last window must start inside the input or its left pad. With
 * geometry values <= 65535 and sizes < 2**31 the numerator is below 2**32; a negative one
 * makes an empty output (< 1) whatever its value. */
static int64_t pool_out_len(int64_t size, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d, int ceil) {
    int64_t span = size + p0 + p1 - d * (k - 1) - 1 + (ceil ? s - 1 : 0);
    int64_t out = span < 0 ? 0 : (int64_t)((uint32_t)span / (uint32_t)s) + 1;
    if (ceil && out > 0 && (out - 1) * s >= size + p0) out -= 1;
    return out;
}

static thinker_status pool_geometry(const thinker_model *m, thk_op *op, thk_tensor *x, thk_tensor *out,
                                    thk_pool_params *p, thinker_message *msg) {
    int64_t k[2], s[2], pads[4] = {0, 0, 0, 0}, d[2] = {1, 1}, ceil = 0;
    uint32_t n, i;
    if (op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_input(m, op, 0, x); /* input 0: present (thk_check_op_rules) */
    thk_op_output(m, op, 0, out);
    if (x->ndim != 3 && x->ndim != 4) THK_BAD("expects a 3-D or 4-D input");
    n = x->ndim - 2u;
    for (i = 0; i < n; i++) k[i] = x->dims[2 + i];
    if (thk_attr_has(op, "kernel_shape") && thk_attr_ints(op, "kernel_shape", k, 2) != (int)n)
        THK_BAD("geometry does not match the input rank");
    for (i = 0; i < n; i++) s[i] = k[i];
    if (thk_attr_has(op, "strides") && thk_attr_ints(op, "strides", s, 2) != (int)n)
        THK_BAD("geometry does not match the input rank");
    if (thk_attr_has(op, "pads") && thk_attr_ints(op, "pads", pads, 4) != 2 * (int)n)
        THK_BAD("geometry does not match the input rank");
    if (thk_attr_has(op, "dilations") && thk_attr_ints(op, "dilations", d, 2) != (int)n)
        THK_BAD("geometry does not match the input rank");
    thk_attr_int(op, "ceil_mode", &ceil);
    p->spatial = n;
    for (i = 0; i < n; i++) {
        int64_t o;
        /* attributes: kernel, strides, dilations in 1..65535, pads in 0..65535 (thk_maxpool_rules);
         * a kernel (and so strides) defaulting to the input's size is checked here */
        if (k[i] < 1 || k[i] > 65535) THK_BAD("pool geometry out of range");
        o = pool_out_len(x->dims[2 + i], k[i], s[i], pads[i], pads[i + n], d[i], ceil != 0);
        if (o < 1) THK_BAD("pooled output would be empty");
        p->kernel[i] = (uint32_t)k[i];
        p->strides[i] = (uint32_t)s[i];
        p->dilations[i] = (uint32_t)d[i];
        p->pads[i] = (uint32_t)pads[i];
        p->pads[i + 2] = (uint32_t)pads[i + n];
        p->out[i] = (uint32_t)o;
    }
    if (out->ndim != x->ndim || out->dims[0] != x->dims[0] || out->dims[1] != x->dims[1])
        THK_BAD("recorded output shape differs from the computed one");
    for (i = 0; i < n; i++)
        if (out->dims[2 + i] != p->out[i]) THK_BAD("recorded output shape differs from the computed one");
    return THINKER_OK;
}

/* Per-axis divisor of output position o (PyTorch's avg_pool rule). */
static int64_t axis_divisor(const thk_pool_params *p, uint32_t axis, uint32_t size, uint32_t o) {
    int64_t start = (int64_t)o * p->strides[axis] - p->pads[axis];
    int64_t end = start + p->kernel[axis];
    int64_t lim = (int64_t)size + p->pads[axis + 2];
    if (end > lim) end = lim;
    if (p->include_pad) return end - start;
    return (end < (int64_t)size ? end : (int64_t)size) - (start > 0 ? start : 0);
}

/* (h, w) sizes of a 3-D or 4-D input (a 3-D input pools its last axis only) */
static void spatial_sizes(const thk_tensor *x, const thk_pool_params *p, uint32_t *h, uint32_t *w,
                          uint32_t *oh, uint32_t *ow) {
    if (p->spatial == 2) {
        *h = x->dims[2]; *w = x->dims[3]; *oh = p->out[0]; *ow = p->out[1];
    } else {
        *h = 1; *w = x->dims[2]; *oh = 1; *ow = p->out[0];
    }
}

/* A 1-D pool is a 2-D pool over one row: kernel, stride, dilation and top pad of that row. */
static void window_2d(const thk_pool_params *p, uint32_t *kh, uint32_t *kw, uint32_t *sh,
                      uint32_t *sw, uint32_t *dh, uint32_t *dw, uint32_t *pt, uint32_t *pl) {
    int two = p->spatial == 2;
    *kh = two ? p->kernel[0] : 1;
    *kw = p->kernel[two];
    *sh = two ? p->strides[0] : 1;
    *sw = p->strides[two];
    *dh = two ? p->dilations[0] : 1;
    *dw = p->dilations[two];
    *pt = two ? p->pads[0] : 0;
    *pl = p->pads[two];
}

static int64_t divisor_at(const thk_pool_params *p, uint32_t h, uint32_t w, uint32_t oy, uint32_t ox) {
    if (p->override > 0) return p->override;
    if (p->spatial == 1) return axis_divisor(p, 0, w, ox);
    return axis_divisor(p, 0, h, oy) * axis_divisor(p, 1, w, ox);
}

thinker_status thk_avgpool2d_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_pool_params *p = &op->p.pool;
    thk_tensor x, out;
    int32_t qx, qo;
    int64_t bits = 8, v;
    uint32_t h, w, oh, ow, oy, ox;
    thinker_status s;
    (void)needs;
    s = pool_geometry(m, op, &x, &out, p, msg);
    if (s != THINKER_OK) return s;
    if (!thk_is_int(x.dtype) || x.dtype == THINKER_INT64) THK_BAD("input must be int8/uint8/int16/int32");
    if (thk_attr_exponent(op, "scale_x", &qx) != 1) THK_BAD("scale_x missing");
    qo = qx;
    thk_attr_exponent(op, "scale_o", &qo); /* absent: the default; present: a power of two (rules) */
    thk_attr_int(op, "data_bits", &bits);
    THK_TRY(thk_o_bits(op, bits, &out, &p->lo, &p->hi, msg));
    p->shift = qx - qo;
    thk_round_mode(m, op, &p->round_mode); /* a known mode: thk_check_op_rules */
    v = -1;
    thk_attr_int(op, "divisor_override", &v);
    p->override = v > 0 && v <= 0x7FFFFFFF ? (int32_t)v : -1; /* `or -1`: 0 means none */
    v = 1;
    thk_attr_int(op, "count_include_pad", &v);
    p->include_pad = v != 0;
    /* a single divisor for every window turns the division into one rescale */
    spatial_sizes(&x, p, &h, &w, &oh, &ow);
    p->uniform = divisor_at(p, h, w, 0, 0);
    for (oy = 0; oy < oh && p->uniform != INT64_MIN; oy++)
        for (ox = 0; ox < ow; ox++)
            if (divisor_at(p, h, w, oy, ox) != p->uniform) { p->uniform = INT64_MIN; break; }
    p->pow2_bits = -1;
    if (p->uniform != INT64_MIN && (p->uniform & (p->uniform - 1)) == 0) {
        int64_t u = p->uniform; /* Python's int.bit_length(); 0 has none */
        int32_t bl = 0;
        while (u > 0) { bl++; u >>= 1; }
        p->pow2_bits = bl; /* the rescale adds bit_length - 1 bits */
    }
    return THINKER_OK;
}

/* Both pools walk the same windows (padding skipped): the sum (avg) or the maximum (max). */
static thinker_status pool_run(thk_run_ctx *ctx, int is_max) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_pool_params *p = &op->p.pool;
    thk_tensor x, out;
    uint32_t h, w, oh, ow, nc, oy, ox, i, j, idx = 0;
    uint32_t kh, kw, sh, sw, dh, dw, pt, pl, global, rows;
    thk_op_input(m, op, 0, &x);
    thk_op_output(m, op, 0, &out);
    spatial_sizes(&x, p, &h, &w, &oh, &ow);
    window_2d(p, &kh, &kw, &sh, &sw, &dh, &dw, &pt, &pl);
    /* an average of whole int8 planes: a plain int32 sum (|sum| < 2**31 below 2**23 values) */
    global = !is_max && x.dtype == THINKER_INT8 && oh == 1 && ow == 1 && kh == h && kw == w &&
             !pt && !pl && dh == 1 && dw == 1 && h * w < (1u << 23);
    rows = global ? 0 : kh; /* the window loop's kernel rows (a whole plane: summed at once) */
    for (nc = 0; nc < x.dims[0] * x.dims[1]; nc++) {
        uint32_t base = nc * h * w;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++, idx++) {
                int64_t sum = 0, best = INT64_MIN, y;
#if THINKER_OP_MaxPool
                uint32_t fbest = 0xFF800000u; /* float32 bits; padding: -inf never wins */
#endif
                if (global) {
                    const int8_t *v = (const int8_t *)x.data + base;
                    int32_t s = 0;
                    for (i = 0; i < h * w; i++) s += v[i];
                    sum = s;
                }
                for (i = 0; i < rows; i++) {
                    int64_t iy = (int64_t)oy * sh + (int64_t)i * dh - pt;
                    if (iy < 0 || iy >= (int64_t)h) continue;
                    for (j = 0; j < kw; j++) {
                        int64_t ix = (int64_t)ox * sw + (int64_t)j * dw - pl;
                        uint32_t at;
                        if (ix < 0 || ix >= (int64_t)w) continue;
                        at = base + (uint32_t)iy * w + (uint32_t)ix;
#if THINKER_OP_MaxPool /* MaxPool's branches: only in builds with it (op_select.h) */
                        if (x.dtype == THINKER_FLOAT32) { /* max only; on the bits: no soft-float */
                            uint32_t v = ((const uint32_t *)(const void *)x.data)[at];
                            if (THK_F32_NAN(v) || thk_f32_key(v) > thk_f32_key(fbest)) fbest = v;
                            if (THK_F32_NAN(fbest)) { i = rows; break; } /* NaN propagates like np.maximum */
                        } else
#endif
                        {
                            int64_t v = thk_load_int(x.data, x.dtype, at);
                            sum += v;
                            if (v > best) best = v;
                        }
                    }
                }
#if THINKER_OP_MaxPool
                if (x.dtype == THINKER_FLOAT32) {
                    ((uint32_t *)(void *)out.data)[idx] = fbest;
                    continue;
                }
                if (is_max) {
                    if (best == INT64_MIN) { /* window entirely in padding: the dtype minimum */
                        int64_t lo, hi;
                        uint32_t dt;
                        thk_bits_range(8 * thk_dtype_size(x.dtype), &lo, &hi, &dt);
                        best = x.dtype == THINKER_UINT8 ? 0 : lo;
                    }
                    y = best;
                } else
#endif
                if (p->pow2_bits >= 0) {
                    y = thk_rescale_mode(sum, p->shift + p->pow2_bits - 1, p->round_mode, p->lo, p->hi);
                } else {
                    /* qmath.rescale_div: the shift scales the divisor or the numerator */
                    int64_t den = p->uniform != INT64_MIN ? p->uniform : divisor_at(p, h, w, oy, ox);
                    int64_t num = sum;
                    if (p->shift >= 0) den = thk_lshift_sat(den, p->shift);
                    else num = thk_lshift_sat(num, -p->shift);
                    y = thk_clamp(thk_round_div_mode(num, den, p->round_mode), p->lo, p->hi);
                }
                thk_store_int(out.data, out.dtype, idx, y);
            }
    }
    return THINKER_OK;
}

thinker_status thk_avgpool2d_run(thk_run_ctx *ctx) { return pool_run(ctx, 0); }

/* ---- MaxPool --------------------------------------------------------------------------------- */

thinker_status thk_maxpool_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_pool_params *p = &op->p.pool;
    thk_tensor x, out;
    const char *pad = "NOTSET";
    thinker_status s;
    (void)needs;
    thk_attr_string(op, m, "auto_pad", &pad); /* a string when present (attribute rules) */
    if (!thk_streq(pad, "NOTSET")) THK_BAD("auto_pad is not supported");
    s = pool_geometry(m, op, &x, &out, p, msg);
    if (s != THINKER_OK) return s;
    if (x.dtype == THINKER_INT64 || x.dtype == THINKER_INT4) THK_BAD("unsupported input dtype");
    if (out.dtype != x.dtype) THK_BAD("output must match the input");
    return THINKER_OK;
}

thinker_status thk_maxpool_run(thk_run_ctx *ctx) { return pool_run(ctx, 1); }
