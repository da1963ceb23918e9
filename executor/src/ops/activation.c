/* Relu, Clip and PRelu (thinker/ops/activation.py). Relu and Clip compare the stored integers
 * (no scale conversion); PRelu rescales each branch. All may run in place. */
#include "ops.h"

/* input counts: thk_check_op_rules (op_table.c) */
static thinker_status unary_same(const thinker_model *m, thk_op *op, thk_tensor *x, thk_tensor *out,
                                 thinker_message *msg) {
    if (op->n_out != 1 || !thk_op_input(m, op, 0, x)) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, out);
    if (!thk_same_dims(x, out) || x->dtype != out->dtype) THK_BAD("output must match the input");
    if (x->dtype == THINKER_INT4) THK_BAD("unsupported dtype");
    return THINKER_OK;
}

thinker_status thk_relu_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_tensor x, out;
    (void)n;
    return unary_same(m, op, &x, &out, msg);
}

thinker_status thk_relu_run(thk_run_ctx *ctx) {
    thk_tensor x, out;
    uint32_t i;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (x.dtype == THINKER_INT8) {
        const int8_t *a = (const int8_t *)x.data;
        int8_t *o = (int8_t *)out.data;
        for (i = 0; i < x.count; i++) o[i] = a[i] > 0 ? a[i] : 0;
    } else if (x.dtype == THINKER_FLOAT32) {
        /* on the bits (no soft-float): negatives become +0; -0.0 and NaN stay (np.maximum) */
        const uint32_t *a = (const uint32_t *)x.data;
        uint32_t *o = (uint32_t *)out.data;
        for (i = 0; i < x.count; i++) {
            uint32_t mag = a[i] & 0x7FFFFFFFu;
            o[i] = ((a[i] >> 31) && mag && mag <= 0x7F800000u) ? 0u : a[i];
        }
    } else {
        for (i = 0; i < x.count; i++) {
            int64_t v = thk_load_int(x.data, x.dtype, i);
            thk_store_int(out.data, out.dtype, i, v > 0 ? v : 0);
        }
    }
    return THINKER_OK;
}

/* Clip bounds: inputs 1/2 (one constant value each, opset >= 11) or attributes min/max, taken
 * as numpy's float64 takes them; integer tensors clip at ceil(min), floor(max) within the
 * dtype's range, float32 tensors at the bounds rounded to float32. */
thinker_status thk_clip_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, out;
    int64_t v, mm, lo, hi;
    int32_t e;
    uint32_t bits, dt, k;
    int kind;
    thinker_status s;
    (void)n;
    s = unary_same(m, op, &x, &out, msg);
    if (s != THINKER_OK) return s;
    if (x.dtype == THINKER_UINT8) { lo = 0; hi = 255; }
    else if (x.dtype == THINKER_INT64) { lo = INT64_MIN; hi = INT64_MAX; }
    else thk_bits_range(8 * thk_dtype_size(x.dtype), &lo, &hi, &dt);
    p->clip_lo = lo;
    p->clip_hi = hi;
    p->fclip_lo = 0xFF800000u; /* -inf, +inf */
    p->fclip_hi = 0x7F800000u;
    for (k = 0; k < 2; k++) {
        /* single constants, finite: thk_clip_rules (so kind >= 0, and f32_split gives 0) */
        kind = thk_const_number(m, op, k + 1, k ? "max" : "min", &v, &bits);
        if (kind <= 0) continue;
        kind = kind == 2 ? thk_f32_split(bits, &mm, &e) : ((mm = thk_double_of(v, &e)), 0);
        if (x.dtype != THINKER_FLOAT32) {
            v = kind ? (mm > 0 ? INT64_MAX : INT64_MIN) : thk_ldexp_round(mm, e, k ? THK_ROUND_FLOOR : THK_ROUND_CEIL);
            *(k ? &p->clip_hi : &p->clip_lo) = thk_clamp(v, lo, hi);
        } else {
            *(k ? &p->fclip_hi : &p->fclip_lo) = kind ? bits : thk_scaled_f32_bits(mm, -e);
        }
    }
    return THINKER_OK;
}

thinker_status thk_clip_run(thk_run_ctx *ctx) {
    const thk_elem_params *p = &ctx->op->p.elem;
    thk_tensor x, out;
    uint32_t i;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (x.dtype == THINKER_FLOAT32) { /* on the bits (no soft-float); NaN passes through */
        const uint32_t *a = (const uint32_t *)(const void *)x.data;
        uint32_t *o = (uint32_t *)(void *)out.data;
        int32_t lo = thk_f32_key(p->fclip_lo), hi = thk_f32_key(p->fclip_hi);
        for (i = 0; i < x.count; i++) {
            uint32_t v = a[i];
            if (!THK_F32_NAN(v)) {
                if (thk_f32_key(v) < lo) v = p->fclip_lo;
                if (thk_f32_key(v) > hi) v = p->fclip_hi;
            }
            o[i] = v;
        }
        return THINKER_OK;
    }
    for (i = 0; i < x.count; i++)
        thk_store_int(out.data, out.dtype, i, thk_clamp(thk_load_int(x.data, x.dtype, i), p->clip_lo, p->clip_hi));
    return THINKER_OK;
}

/* ---- PRelu ----------------------------------------------------------------------------------- */

thinker_status thk_prelu_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, slope, out;
    thk_broadcast bc;
    int32_t qx, qw, qo;
    int64_t bits = 8;
    uint32_t dtype;
    (void)n;
    if (op->n_out != 1 || !thk_op_input(m, op, 0, &x) || !thk_op_input(m, op, 1, &slope)) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    /* slope: an integer constant within int32 (THK_RULE_WEIGHT, thk_check_op_rules) */
    if (!thk_is_int(x.dtype) || x.dtype == THINKER_INT64) THK_BAD("input must be integer");
    if (!thk_input_exponent(op, "scale_x", &x, &qx)) THK_BAD("input has no known scale");
    if (thk_attr_exponent(op, "scale_w", &qw) != 1) THK_BAD("scale_w missing");
    qo = qx;
    thk_attr_exponent(op, "scale_o", &qo); /* absent: the default; present: a power of two (rules) */
    if (!thk_attr_int(op, "o_bits", &bits) || bits == 0) bits = 8; /* `o_bits or 8` */
    if (!thk_bits_range(bits, &p->lo, &p->hi, &dtype)) THK_BAD("o_bits must be 4, 8, 16 or 32");
    if (out.dtype != dtype) THK_BAD("output dtype does not match o_bits");
    if (!thk_broadcast_init(&bc, &x, &slope, &out) || !thk_same_dims(&x, &out))
        THK_BAD("slope does not broadcast");
    p->sx = qx - qo;
    p->sw = qx + qw - qo;
    return THINKER_OK;
}

thinker_status thk_prelu_run(thk_run_ctx *ctx) {
    const thk_elem_params *p = &ctx->op->p.elem;
    thk_tensor x, slope, out;
    thk_broadcast bc;
    uint32_t idx[THINKER_MAX_DIMS] = {0}, i, ib = 0, d;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_input(ctx->model, ctx->op, 1, &slope);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    thk_broadcast_init(&bc, &x, &slope, &out);
    for (i = 0; i < out.count; i++) {
        int64_t v = thk_load_int(x.data, x.dtype, i);
        int64_t y = v >= 0 ? thk_rescale(v, p->sx, p->lo, p->hi)
                           : thk_rescale(v * thk_load_int(slope.data, slope.dtype, ib), p->sw, p->lo, p->hi);
        thk_store_int(out.data, out.dtype, i, y);
        for (d = bc.ndim; d-- > 0;) {
            ib += bc.stride_b[d];
            if (++idx[d] < bc.dims[d]) break;
            ib -= bc.stride_b[d] * bc.dims[d];
            idx[d] = 0;
        }
    }
    return THINKER_OK;
}
