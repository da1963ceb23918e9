/* Quant (float -> int), Dequant (int -> float32) and Requant (int -> int at another exponent),
 * thinker/ops/quant.py. Quant and Dequant compute in double exactly as numpy's float64 does. */
#include "ops.h"

thinker_status thk_quant_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, out;
    int64_t bits = 8; /* numpy's default */
    uint32_t dtype;
    (void)n;
    if (op->n_in != 1 || op->n_out != 1 || !thk_op_input(m, op, 0, &x)) THK_BAD("expects 1 input and 1 output");
    thk_op_output(m, op, 0, &out);
    thk_attr_int(op, "data_bits", &bits);
    if (!thk_bits_range(bits, &p->lo, &p->hi, &dtype)) THK_BAD("data_bits must be 4, 8, 16 or 32");
    if (thk_attr_exponent(op, "scale_x", &p->q) != 1) THK_BAD("scale_x missing or not a power of two");
    if (out.dtype != dtype || !thk_same_dims(&x, &out)) THK_BAD("recorded output differs from the computed one");
    if (x.dtype == THINKER_INT4) THK_BAD("unsupported input dtype");
    if (!thk_round_mode(m, op, &p->round_mode)) THK_BAD("quant_mode must be floor_add, floor, round or ceil");
    return THINKER_OK;
}

/* qmath.round_float of a double in [lo - 1, hi + 1): floor, ceil or half to even */
static int64_t round_double(double v, int mode) {
    int64_t f = thk_floor_to_int(v);
    double d = v - (double)f; /* exact: v and f are within 2**33 of each other's grid */
    if (mode == THK_ROUND_FLOOR || d == 0.0) return f;
    if (mode == THK_ROUND_CEIL) return f + 1;
    if (d > 0.5 || (d == 0.5 && ((uint64_t)f & 1u))) return f + 1; /* THK_ROUND_ROUND */
    return f;
}

/* saturate(floor(x * 2**q + 0.5)); NaN becomes 0 (what numpy's casts produce on x86) */
thinker_status thk_quant_run(thk_run_ctx *ctx) {
    const thk_elem_params *p = &ctx->op->p.elem;
    thk_tensor x, out;
    double scale = thk_pow2(p->q);
    uint32_t i;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (p->round_mode != THK_ROUND_FLOOR_ADD) { /* qmath.quantize_mode */
        for (i = 0; i < x.count; i++) {
            double v = thk_load_double(x.data, x.dtype, i) * scale;
            int64_t q;
            if (v != v) q = 0;
            else if (v >= (double)p->hi + 1.0) q = p->hi;
            else if (v < (double)p->lo - 1.0) q = p->lo;
            else q = thk_clamp(round_double(v, p->round_mode), p->lo, p->hi);
            thk_store_int(out.data, out.dtype, i, q);
        }
        return THINKER_OK;
    }
    for (i = 0; i < x.count; i++) {
        double v = thk_load_double(x.data, x.dtype, i) * scale + 0.5;
        int64_t q;
        if (v != v) q = 0;
        else if (v >= (double)p->hi + 1.0) q = p->hi;
        else if (v < (double)p->lo) q = p->lo;
        else q = thk_floor_to_int(v);
        thk_store_int(out.data, out.dtype, i, q);
    }
    return THINKER_OK;
}

thinker_status thk_dequant_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, out;
    (void)n;
    if (op->n_in != 1 || op->n_out != 1 || !thk_op_input(m, op, 0, &x)) THK_BAD("expects 1 input and 1 output");
    thk_op_output(m, op, 0, &out);
    if (thk_attr_has(op, "scale_o")) {
        if (thk_attr_exponent(op, "scale_o", &p->q) != 1) THK_BAD("scale_o is not a power of two");
    } else if (thk_attr_exponent(op, "scale_x", &p->q) != 1) {
        THK_BAD("needs scale_o (or scale_x) as a power of two");
    }
    if (out.dtype != THINKER_FLOAT32 || !thk_same_dims(&x, &out)) THK_BAD("recorded output differs from the computed one");
    if (x.dtype == THINKER_INT4) THK_BAD("unsupported input dtype");
    return THINKER_OK;
}

thinker_status thk_dequant_run(thk_run_ctx *ctx) {
    const thk_elem_params *p = &ctx->op->p.elem;
    thk_tensor x, out;
    double scale = thk_pow2(-p->q);
    uint32_t i;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    for (i = 0; i < x.count; i++) ((float *)out.data)[i] = (float)(thk_load_double(x.data, x.dtype, i) * scale);
    return THINKER_OK;
}

thinker_status thk_requant_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, out;
    int32_t qx, qo;
    int64_t bits = 8;
    uint32_t dtype;
    (void)n;
    if (op->n_in != 1 || op->n_out != 1 || !thk_op_input(m, op, 0, &x)) THK_BAD("expects 1 input and 1 output");
    thk_op_output(m, op, 0, &out);
    if (thk_attr_exponent(op, "scale_x", &qx) != 1 || thk_attr_exponent(op, "scale_o", &qo) != 1)
        THK_BAD("scale_x and scale_o must be powers of two");
    thk_attr_int(op, "o_bits", &bits);
    if (!thk_bits_range(bits, &p->lo, &p->hi, &dtype)) THK_BAD("o_bits must be 4, 8, 16 or 32");
    if (out.dtype != dtype || !thk_same_dims(&x, &out)) THK_BAD("recorded output differs from the computed one");
    if (!thk_is_int(x.dtype) || x.dtype == THINKER_INT64) THK_BAD("input must be integer");
    if (!thk_round_mode(m, op, &p->round_mode)) THK_BAD("quant_mode must be floor_add, floor, round or ceil");
    p->sx = qx - qo;
    return THINKER_OK;
}

thinker_status thk_requant_run(thk_run_ctx *ctx) {
    const thk_elem_params *p = &ctx->op->p.elem;
    thk_tensor x, out;
    uint32_t i;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    for (i = 0; i < x.count; i++)
        thk_store_int(out.data, out.dtype, i,
                      thk_rescale_mode(thk_load_int(x.data, x.dtype, i), p->sx, p->round_mode, p->lo, p->hi));
    return THINKER_OK;
}
