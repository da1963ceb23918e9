/* LinearInt (y = x @ W^T + b on the last axis) and BatchNorm2dInt (y = x * alpha + beta per
 * channel), finishing with the shared output stage (thinker/ops/linear.py). */
#include "ops.h"

typedef struct {
    uint32_t out_f, in_f, trans_b;
} linear_dims;

static thinker_status linear_dims_of(const thk_op *op, const thk_tensor *x, const thk_tensor *w,
                                     linear_dims *d, thinker_message *msg) {
    int64_t trans_a = 0, trans_b = 1;
    memset(d, 0, sizeof *d);
    thk_attr_int(op, "transA", &trans_a);
    thk_attr_int(op, "transB", &trans_b);
    if (trans_a != 0) THK_BAD("transA=1 is not supported");
    if (w->ndim != 2) THK_BAD("weight must be 2-D");
    d->trans_b = trans_b != 0;
    d->out_f = d->trans_b ? w->dims[0] : w->dims[1];
    d->in_f = d->trans_b ? w->dims[1] : w->dims[0];
    if (x->ndim == 0 || x->dims[x->ndim - 1] != d->in_f) THK_BAD("input's last axis does not match the weight");
    return THINKER_OK;
}

thinker_status thk_linear_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_conv_params *p = &op->p.conv; /* reuses the conv record: output stage + fast flag */
    thk_tensor x, w, b, out;
    linear_dims d;
    uint32_t i;
    int has_bias;
    thinker_status s;
    if (op->n_in < 2 || op->n_in > 3 || op->n_out != 1) THK_BAD("expects 2-3 inputs and 1 output");
    if (!thk_op_input(m, op, 0, &x) || !thk_op_input(m, op, 1, &w)) THK_BAD("input and weight are required");
    if (!w.init) THK_BAD("weight must be a constant");
    if (!thk_is_int(w.dtype) && w.dtype != THINKER_INT4) THK_BAD("weight must be integer");
    if (x.dtype == THINKER_INT64) THK_BAD("int64 inputs are not supported");
    has_bias = thk_op_input(m, op, 2, &b);
    if (has_bias && !b.init) THK_BAD("bias must be a constant");
    thk_op_output(m, op, 0, &out);
    s = linear_dims_of(op, &x, &w, &d, msg);
    if (s != THINKER_OK) return s;
    if (out.ndim != x.ndim || out.dims[x.ndim - 1] != d.out_f) THK_BAD("recorded output shape differs from the computed one");
    for (i = 0; i + 1 < x.ndim; i++)
        if (out.dims[i] != x.dims[i]) THK_BAD("recorded output shape differs from the computed one");
    s = thk_outstage_prepare(m, op, &x,
                             thk_weight_abs_sum(&w, d.out_f, d.in_f, d.trans_b ? d.in_f : 1,
                                                d.trans_b ? 1 : d.out_f),
                             has_bias ? &b : NULL, d.out_f, "scale_w", &out, &p->st, msg);
    if (s != THINKER_OK) return s;
    p->fast = x.dtype == THINKER_INT8 && (w.dtype == THINKER_INT8 || w.dtype == THINKER_INT4) && p->st.acc32;
    p->group = d.trans_b; /* remembered for run */
    needs->scratch = d.in_f * (p->fast ? 1u : 4u);
    return THINKER_OK;
}

thinker_status thk_linear_run(thk_run_ctx *ctx) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t K, O, M, o, r, k, trans_b = p->group;
    int has_bias;
    thk_op_input(m, op, 0, &x);
    thk_op_input(m, op, 1, &w);
    has_bias = thk_op_input(m, op, 2, &b);
    thk_op_output(m, op, 0, &out);
    K = x.dims[x.ndim - 1];
    O = out.dims[out.ndim - 1];
    M = K ? x.count / K : 0;
    for (o = 0; o < O; o++) {
        int64_t bias = thk_bias_at(&b, has_bias, o);
        if (p->fast) {
            const int8_t *wrow;
            if (trans_b && w.dtype == THINKER_INT8) {
                wrow = (const int8_t *)w.data + (size_t)o * K;
            } else {
                int8_t *row = (int8_t *)ctx->scratch;
                for (k = 0; k < K; k++)
                    row[k] = (int8_t)thk_load_int(w.data, w.dtype, trans_b ? o * K + k : k * O + o);
                wrow = row;
            }
            for (r = 0; r < M; r++) {
                const int8_t *xr = (const int8_t *)x.data + (size_t)r * K;
                int32_t acc = 0;
                for (k = 0; k < K; k++) acc += (int32_t)xr[k] * wrow[k];
                thk_outstage_store(&p->st, &out, r * O + o, (int64_t)acc + bias);
            }
        } else {
            int32_t *row = (int32_t *)(void *)ctx->scratch;
            for (k = 0; k < K; k++)
                row[k] = (int32_t)thk_load_int(w.data, w.dtype, trans_b ? o * K + k : k * O + o);
            for (r = 0; r < M; r++) {
                int64_t acc = 0;
                switch (x.dtype) {
                case THINKER_INT8: {
                    const int8_t *xr = (const int8_t *)x.data + (size_t)r * K;
                    for (k = 0; k < K; k++) acc += (int64_t)xr[k] * row[k];
                    break;
                }
                case THINKER_INT16: {
                    const int16_t *xr = (const int16_t *)x.data + (size_t)r * K;
                    for (k = 0; k < K; k++) acc += (int64_t)xr[k] * row[k];
                    break;
                }
                default:
                    for (k = 0; k < K; k++) acc += thk_load_int(x.data, x.dtype, r * K + k) * row[k];
                    break;
                }
                thk_outstage_store(&p->st, &out, r * O + o, acc + bias);
            }
        }
    }
    return THINKER_OK;
}

/* ---- BatchNorm2dInt -------------------------------------------------------------------------- */

thinker_status thk_batchnorm2d_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_conv_params *p = &op->p.conv;
    thk_tensor x, alpha, beta, out;
    uint64_t amax = 0;
    uint32_t i;
    (void)needs;
    if (op->n_in < 3 || op->n_in > 5 || op->n_out != 1) THK_BAD("expects 3-5 inputs and 1 output");
    if (!thk_op_input(m, op, 0, &x) || !thk_op_input(m, op, 1, &alpha) || !thk_op_input(m, op, 2, &beta))
        THK_BAD("input, alpha and beta are required");
    if (!alpha.init || !beta.init) THK_BAD("alpha and beta must be constants");
    if (!thk_is_int(alpha.dtype) && alpha.dtype != THINKER_INT4) THK_BAD("alpha must be integer");
    thk_op_output(m, op, 0, &out);
    if (x.ndim < 2 || alpha.count != x.dims[1]) THK_BAD("alpha must have one value per channel");
    if (!thk_same_dims(&x, &out)) THK_BAD("recorded output shape differs from the input's");
    for (i = 0; i < alpha.count; i++) {
        int64_t a = thk_load_int(alpha.init, alpha.dtype, i);
        uint64_t u = (uint64_t)(a < 0 ? -a : a);
        if (u > amax) amax = u;
    }
    return thk_outstage_prepare(m, op, &x, amax, &beta, alpha.count, "scale_w", &out, &p->st, msg);
}

thinker_status thk_batchnorm2d_run(thk_run_ctx *ctx) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_conv_params *p = &op->p.conv;
    thk_tensor x, alpha, beta, out;
    uint32_t C, inner, n, c, k, idx = 0, d;
    thk_op_input(m, op, 0, &x);
    thk_op_input(m, op, 1, &alpha);
    thk_op_input(m, op, 2, &beta);
    thk_op_output(m, op, 0, &out);
    C = x.dims[1];
    for (inner = 1, d = 2; d < x.ndim; d++) inner *= x.dims[d];
    for (n = 0; n < x.dims[0]; n++)
        for (c = 0; c < C; c++) {
            int64_t a = thk_load_int(alpha.data, alpha.dtype, c);
            int64_t bb = thk_bias_at(&beta, 1, c);
            for (k = 0; k < inner; k++, idx++)
                thk_outstage_store(&p->st, &out, idx, thk_load_int(x.data, x.dtype, idx) * a + bb);
        }
    return THINKER_OK;
}
