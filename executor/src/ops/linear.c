/* LinearInt (y = x @ W^T + b on the last axis) and BatchNorm2dInt (y = x * alpha + beta per
 * channel), finishing with the shared output stage (thinker/ops/linear.py). */
#include "gemm_s8.h"

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
    if (x->ndim == 0 || x->dims[x->ndim - 1] != d->in_f) THK_BAD("input does not match the weight");
    return THINKER_OK;
}

thinker_status thk_linear_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_conv_params *p = &op->p.conv; /* reuses the conv record: output stage + fast flag */
    thk_tensor x, w, b, out;
    linear_dims d;
    uint32_t i;
    int has_bias;
    uint64_t wsum, scratch;
    thinker_status s;
    if (op->n_out != 1 || !thk_op_input(m, op, 0, &x) || !thk_op_input(m, op, 1, &w)) THK_BAD("expects 1 output");
    /* weight and bias: integer constants within int32 (THK_RULE_WEIGHTS, thk_check_op_rules) */
    if (x.dtype == THINKER_INT64) THK_BAD("int64 inputs are not supported");
    has_bias = thk_op_input(m, op, 2, &b);
    thk_op_output(m, op, 0, &out);
    s = linear_dims_of(op, &x, &w, &d, msg);
    if (s != THINKER_OK) return s;
    if (out.ndim != x.ndim || out.dims[x.ndim - 1] != d.out_f) THK_BAD("recorded output shape differs from the computed one");
    for (i = 0; i + 1 < x.ndim; i++)
        if (out.dims[i] != x.dims[i]) THK_BAD("recorded output shape differs from the computed one");
    wsum = thk_weight_abs_sum(&w, d.out_f, d.in_f, d.trans_b ? d.in_f : 1, d.trans_b ? 1 : d.out_f);
    s = thk_outstage_prepare(m, op, &x, wsum, has_bias ? &b : NULL, d.out_f, "scale_w", &out, &p->st, msg);
    if (s != THINKER_OK) return s;
    p->fast = x.dtype == THINKER_INT8 && (w.dtype == THINKER_INT8 || w.dtype == THINKER_INT4) && p->st.acc32;
    p->out32 = p->fast && thk_gemm_out32(&p->st, &out, wsum, &b, has_bias);
    p->group = d.trans_b; /* remembered for run */
    /* fast: the GEMM tile over the input rows (thinker.memory.scratch.linear_scratch twins it) */
    scratch = p->fast ? thk_gemm_scratch(d.in_f, d.in_f ? x.count / d.in_f : 0) : 0;
    if (scratch > needs->budget) { /* planned without it (tpacker --scratch fit): a scratch-free path */
        p->lean = p->fast && w.dtype == THINKER_INT8 && d.trans_b;
        p->fast = p->out32 = 0;
        scratch = 0;
    }
    p->tile = 0;
    if (p->fast) { /* as large a tile as planned */
        p->tile = thk_gemm_tile_in(d.in_f, d.in_f ? x.count / d.in_f : 0, needs->budget);
        scratch = thk_gemm_scratch_rows(d.in_f, p->tile);
    }
    if (scratch > 0x7FFFFFF0u) THK_BAD("too large for the scratch buffer");
    needs->scratch = (uint32_t)scratch;
#ifdef THINKER_HOST_KERNELS
    p->host = NULL;
    if (x.dtype == THINKER_INT8 && p->st.acc32 && d.trans_b && d.in_f &&
        x.count / d.in_f <= 0x7FFFFFFFu) { /* rows as 1x1 samples (an int32 count) */
        thk_host_shape hs = {0};
        hs.n = x.count / d.in_f; hs.c = d.in_f; hs.h = hs.w = 1; hs.o = d.out_f;
        hs.kh = hs.kw = hs.sh = hs.sw = hs.dh = hs.dw = hs.ho = hs.wo = hs.group = 1;
        hs.out_bytes = out.dtype == THINKER_INT8 ? 1 : out.dtype == THINKER_INT16 ? 2 : 0;
        needs->host = thk_host_conv_bind(&hs, &w, wsum, has_bias ? &b : NULL, has_bias, &p->st,
                                         needs->host_region, needs->host_room, &p->host);
        if (p->host) needs->scratch = 0; /* its work is in the job */
    }
#endif
    return THINKER_OK;
}

typedef struct {
    thk_gemm_job job;
    const thk_tensor *w;
    const int8_t *x;
    uint32_t trans_b;
} linear_job;

/* input row r */
static void linear_fill(const thk_gemm_job *job, uint32_t r, int8_t *dst) {
    const linear_job *l = (const linear_job *)job;
    memcpy(dst, l->x + (size_t)r * job->K, job->K);
}

/* weight row o as int8: in place ([O, K] int8), else gathered into buf */
static const int8_t *linear_weight(const thk_gemm_job *job, uint32_t o, int8_t *buf) {
    const linear_job *l = (const linear_job *)job;
    uint32_t k, K = job->K, O = job->outs;
    if (l->trans_b && l->w->dtype == THINKER_INT8) return (const int8_t *)l->w->data + (size_t)o * K;
    for (k = 0; k < K; k++) buf[k] = (int8_t)thk_load_int(l->w->data, l->w->dtype, l->trans_b ? o * K + k : k * O + o);
    return buf;
}

thinker_status thk_linear_run(thk_run_ctx *ctx) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_conv_params *p = &op->p.conv;
    thk_tensor x, w, b, out;
    uint32_t K, O, M, o, r, k, trans_b = p->group;
    int has_bias;
#ifdef THINKER_HOST_KERNELS
    thinker_status status;
    if (thk_host_conv_run(ctx, &status)) return status; /* else no job: the portable kernels */
#endif
    thk_op_input(m, op, 0, &x);
    thk_op_output(m, op, 0, &out);
    thk_op_input(m, op, 1, &w);
    has_bias = thk_op_input(m, op, 2, &b);
    K = x.dims[x.ndim - 1];
    O = out.dims[out.ndim - 1];
    M = K ? x.count / K : 0;
    if (p->fast) { /* input rows are the patch rows of gemm_s8.c's tiled GEMM */
        linear_job l;
        memset(&l, 0, sizeof l);
        l.job.K = K;
        l.job.rows = M;
        l.job.tile = p->tile;
        l.job.outs = O;
        l.job.fill = linear_fill;
        l.job.weight = linear_weight;
        l.job.st = &p->st;
        l.job.out = &out;
        l.job.bias = &b;
        l.job.has_bias = has_bias;
        l.job.out32 = p->out32;
        l.job.ch_step = 1;
        l.job.row_step = O;
        l.w = &w;
        l.x = (const int8_t *)x.data;
        l.trans_b = trans_b;
        thk_gemm_run(&l.job, ctx->scratch);
        return THINKER_OK;
    }
    if (p->lean) { /* planned without scratch: int8 dot products in place, int32 accumulators */
        const int8_t *xv = (const int8_t *)x.data, *wv = (const int8_t *)w.data;
        for (r = 0; r < M; r++)
            for (o = 0; o < O; o++) {
                const int8_t *xr = xv + (size_t)r * K, *wr = wv + (size_t)o * K;
                int32_t acc = 0;
                for (k = 0; k < K; k++) acc += (int32_t)xr[k] * wr[k];
                thk_outstage_store(&p->st, &out, r * O + o, (int64_t)acc + thk_bias_at(&b, has_bias, o));
            }
        return THINKER_OK;
    }
    for (r = 0; r < M; r++) /* every other type: int64 accumulators, generic loads */
        for (o = 0; o < O; o++) {
            int64_t acc = thk_bias_at(&b, has_bias, o);
            for (k = 0; k < K; k++)
                acc += thk_load_int(x.data, x.dtype, r * K + k) *
                       thk_load_int(w.data, w.dtype, trans_b ? o * K + k : k * O + o);
            thk_outstage_store(&p->st, &out, r * O + o, acc);
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
    if (op->n_out != 1 || !thk_op_input(m, op, 0, &x) || !thk_op_input(m, op, 1, &alpha) ||
        !thk_op_input(m, op, 2, &beta))
        THK_BAD("expects 1 output"); /* input counts: thk_check_op_rules */
    /* alpha and beta: integer constants within int32 (THK_RULE_WEIGHTS, thk_check_op_rules) */
    thk_op_output(m, op, 0, &out);
    if (x.ndim < 2 || alpha.count != x.dims[1]) THK_BAD("alpha: one value per channel");
    if (!thk_same_dims(&x, &out)) THK_BAD("recorded output shape differs from the computed one");
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
