/* Quant (float -> int), Dequant (int -> float32) and Requant (int -> int at another exponent),
 * thinker/ops/quant.py. Quant and Dequant give exactly what numpy's float64 arithmetic gives,
 * with integers only (no soft-float code on devices). */
#include "ops.h"

thinker_status thk_quant_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, out;
    int64_t bits = 8; /* numpy's default */
    uint32_t dtype;
    (void)n;
    if (!thk_op_input(m, op, 0, &x) || op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    thk_attr_int(op, "data_bits", &bits);
    if (!thk_bits_range(bits, &p->lo, &p->hi, &dtype)) THK_BAD("data_bits must be 4, 8, 16 or 32");
    if (thk_attr_exponent(op, "scale_x", &p->q) != 1) THK_BAD("scale_x missing");
    if (out.dtype != dtype || !thk_same_dims(&x, &out)) THK_BAD("recorded output shape differs from the computed one");
    if (x.dtype == THINKER_INT4) THK_BAD("unsupported input dtype");
    thk_round_mode(m, op, &p->round_mode); /* a known mode: thk_check_op_rules */
    return THINKER_OK;
}

/* element i of x as the exact float64 numpy makes of it: m * 2**e; 0 finite, 1 inf, 2 NaN */
static int load_exact(const thk_tensor *x, uint32_t i, int64_t *m, int32_t *e) {
    if (x->dtype == THINKER_FLOAT32) return thk_f32_split(((const uint32_t *)(const void *)x->data)[i], m, e);
    *m = thk_double_of(thk_load_int(x->data, x->dtype, i), e);
    return 0;
}

/* saturate(round_mode(x * 2**q)): qmath.quantize_mode on the exact value (numpy's float64 holds
 * x * 2**q exactly, and its + 0.5 before the floor never changes the result); NaN becomes 0
 * (what numpy's casts produce on x86), infinities saturate. */
thinker_status thk_quant_run(thk_run_ctx *ctx) {
    const thk_elem_params *p = &ctx->op->p.elem;
    thk_tensor x, out;
    uint32_t i;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    for (i = 0; i < x.count; i++) {
        int64_t m, q;
        int32_t e;
        int kind = load_exact(&x, i, &m, &e);
        if (kind == 2) q = 0;
        else if (kind == 1) q = m > 0 ? p->hi : p->lo;
        else q = thk_clamp(thk_ldexp_round(m, e + p->q, p->round_mode), p->lo, p->hi);
        thk_store_int(out.data, out.dtype, i, q);
    }
    return THINKER_OK;
}

thinker_status thk_dequant_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, out;
    (void)n;
    if (!thk_op_input(m, op, 0, &x) || op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    /* scale_o, else scale_x (present scales are powers of two: thk_check_attrs) */
    if (!thk_attr_exponent(op, "scale_o", &p->q) && !thk_attr_exponent(op, "scale_x", &p->q))
        THK_BAD("scale_o missing");
    if (out.dtype != THINKER_FLOAT32 || !thk_same_dims(&x, &out)) THK_BAD("recorded output shape differs from the computed one");
    if (x.dtype == THINKER_INT4) THK_BAD("unsupported input dtype");
    return THINKER_OK;
}

/* float32(float64(x) * 2**-q): one rounding of the exact product (zeros keep their sign, NaN
 * turns quiet as the float64 round trip makes it) */
thinker_status thk_dequant_run(thk_run_ctx *ctx) {
    const thk_elem_params *p = &ctx->op->p.elem;
    thk_tensor x, out;
    uint32_t i, *o;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    o = (uint32_t *)(void *)out.data;
    for (i = 0; i < x.count; i++) {
        int64_t m;
        int32_t e;
        int kind = load_exact(&x, i, &m, &e);
        uint32_t bits = x.dtype == THINKER_FLOAT32 ? ((const uint32_t *)(const void *)x.data)[i] : 0u;
        if (kind) o[i] = bits | (kind == 2 ? 0x400000u : 0u);
        else o[i] = m ? thk_scaled_f32_bits(m, p->q - e) : bits & 0x80000000u;
    }
    return THINKER_OK;
}

thinker_status thk_requant_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, out;
    int32_t qx, qo;
    int64_t bits = 8;
    uint32_t dtype;
    (void)n;
    if (!thk_op_input(m, op, 0, &x) || op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    if (thk_attr_exponent(op, "scale_x", &qx) != 1 || thk_attr_exponent(op, "scale_o", &qo) != 1)
        THK_BAD("scale_x or scale_o missing");
    thk_attr_int(op, "o_bits", &bits);
    if (!thk_bits_range(bits, &p->lo, &p->hi, &dtype)) THK_BAD("o_bits must be 4, 8, 16 or 32");
    if (out.dtype != dtype || !thk_same_dims(&x, &out)) THK_BAD("recorded output shape differs from the computed one");
    if (!thk_is_int(x.dtype) || x.dtype == THINKER_INT64) THK_BAD("input must be integer");
    thk_round_mode(m, op, &p->round_mode); /* a known mode: thk_check_op_rules */
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
