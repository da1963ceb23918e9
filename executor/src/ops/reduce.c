/* Products and reductions (docs/ops.md): BmmInt (thinker/ops/matmul.py), iqSum and iqVar
 * (thinker/ops/reduce.py). Exact integer sums, then one rounding. Where numpy's int64 would
 * wrap (a BmmInt sum of int32 products beyond 2**63, a reduction shifted by up to 40 bits) the
 * C wraps the same way through unsigned arithmetic: no signed overflow anywhere. */
#include "ops.h"

/* Integer input 0 at scale_x, output of o_bits at scale_o (BmmInt: also input 1 at scale_y). */
static thinker_status scales_prepare(const thinker_model *m, thk_op *op, thk_tensor *x, thk_tensor *out,
                                     int32_t *qx, int32_t *qo, thinker_message *msg) {
    thk_reduce_params *p = &op->p.red;
    int64_t bits = 8;
    thk_op_input(m, op, 0, x); /* input 0: present (thk_check_op_rules) */
    thk_op_output(m, op, 0, out);
    if (!thk_is_int(x->dtype)) THK_BAD("input must be an integer tensor");
    if (!thk_input_exponent(op, "scale_x", x, qx)) THK_BAD("an input has no scale");
    if (thk_attr_exponent(op, "scale_o", qo) != 1) THK_BAD("scale_o missing");
    THK_TRY(thk_o_bits(op, bits, out, &p->lo, &p->hi, msg));
    return THINKER_OK;
}

/* ---- BmmInt: rescale(x @ y, q_x + q_y - q_o) --------------------------------------------------- */

thinker_status thk_bmm_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_reduce_params *p = &op->p.red;
    thk_tensor x, y, out;
    int32_t qx, qy, qo;
    uint64_t bound;
    uint32_t d, r;
    thinker_status s;
    (void)needs;
    if (op->n_out != 1) THK_BAD("expects 1 output");
    s = scales_prepare(m, op, &x, &out, &qx, &qo, msg);
    if (s != THINKER_OK) return s;
    if (!thk_op_input(m, op, 1, &y) || !thk_is_int(y.dtype)) THK_BAD("input must be an integer tensor");
    if (!thk_input_exponent(op, "scale_y", &y, &qy)) THK_BAD("an input has no scale");
    r = x.ndim;
    if (r < 2 || y.ndim != r || x.dims[r - 1] != y.dims[r - 2])
        THK_BAD("inputs are not [..., M, K], [..., K, N]");
    for (d = 0; d + 2 < r; d++)
        if (x.dims[d] != y.dims[d]) THK_BAD("inputs are not [..., M, K], [..., K, N]");
    p->m = x.dims[r - 2];
    p->k = x.dims[r - 1];
    p->n = y.dims[r - 1];
    if (out.ndim != r || out.dims[r - 2] != p->m || out.dims[r - 1] != p->n)
        THK_BAD("recorded output shape differs from the computed one");
    for (d = 0; d + 2 < r; d++)
        if (out.dims[d] != x.dims[d]) THK_BAD("recorded output shape differs from the computed one");
    p->shift = qx + qy - qo;
    bound = thk_mul_sat(thk_mul_sat(p->k, thk_magnitude(x.dtype)), thk_magnitude(y.dtype));
    if (p->shift > 62 || p->shift < -62 ||
        (p->shift < 0 && thk_mul_sat(bound, (uint64_t)1 << -p->shift) >= ((uint64_t)1 << 62)))
        THK_BAD("requantization shift out of range");
    p->fast = x.dtype == THINKER_INT8 && y.dtype == THINKER_INT8 && bound < ((uint64_t)1 << 31);
    thk_round_mode(m, op, &p->round_mode); /* a known mode: thk_check_op_rules */
    return THINKER_OK;
}

/* The exact sum of products (numpy: float32/float64 BLAS where exact, else int64 einsum, which
 * wraps modulo 2**64 like the uint64 sum here). */
thinker_status thk_bmm_run(thk_run_ctx *ctx) {
    const thk_reduce_params *p = &ctx->op->p.red;
    thk_tensor x, y, out;
    uint32_t M = p->m, K = p->k, N = p->n, batch, b, i, j, k, at = 0;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_input(ctx->model, ctx->op, 1, &y);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (!M || !N) return THINKER_OK;
    batch = out.count / (M * N);
    for (b = 0; b < batch; b++)
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                uint32_t xa = (b * M + i) * K, ya = b * K * N + j;
                int64_t acc;
                if (p->fast) { /* |sum| < 2**31 */
                    const int8_t *xr = (const int8_t *)x.data + xa, *yc = (const int8_t *)y.data + ya;
                    int32_t sum = 0;
                    for (k = 0; k < K; k++) sum += xr[k] * yc[(size_t)k * N];
                    acc = sum;
                } else {
                    uint64_t sum = 0;
                    for (k = 0; k < K; k++)
                        sum += (uint64_t)thk_load_int(x.data, x.dtype, xa + k) *
                               (uint64_t)thk_load_int(y.data, y.dtype, ya + k * N);
                    acc = thk_wrap64(sum);
                }
                thk_store_int(out.data, out.dtype, at++,
                              thk_clamp(p->round_mode ? thk_rshift_mode(acc, p->shift, p->round_mode)
                                                      : thk_rshift_round_wrap(acc, p->shift), p->lo, p->hi));
            }
    return THINKER_OK;
}

/* ---- iqSum, iqVar ------------------------------------------------------------------------------ */

/* Input, the reduced axes (the first of axes / dims / dim / axis given: an int or a list),
 * keepdims (1) and the output shape. */
static thinker_status reduce_prepare(const thinker_model *m, thk_op *op, thk_tensor *x, int32_t *qx, int32_t *qo,
                                     thinker_message *msg) {
    static const char keys[4][5] = {"axes", "dims", "dim", "axis"};
    thk_reduce_params *p = &op->p.red;
    thk_tensor out;
    int64_t v[THINKER_MAX_DIMS], keep = 1;
    uint64_t count = 1;
    uint32_t k, d, at = 0;
    int n = -1;
    thinker_status s;
    if (op->n_out != 1) THK_BAD("expects 1 output");
    s = scales_prepare(m, op, x, &out, qx, qo, msg);
    if (s != THINKER_OK) return s;
    for (k = 0; k < 4 && n < 0; k++) {
        if (!thk_attr_has(op, keys[k])) continue;
        n = thk_attr_ints(op, keys[k], v, THINKER_MAX_DIMS);
        if (n < 0 && thk_attr_int(op, keys[k], v)) n = 1;
        if (n < 0) THK_BAD("axes must be distinct");
    }
    if (n < 0) THK_BAD("attribute 'axes' (or 'dims') is required");
    p->axes = 0;
    for (k = 0; k < (uint32_t)n; k++) {
        if (v[k] < -(int64_t)x->ndim || v[k] >= (int64_t)x->ndim) THK_BAD("axis out of range");
        d = (uint32_t)(v[k] < 0 ? v[k] + x->ndim : v[k]);
        if ((p->axes >> d) & 1u) THK_BAD("axes must be distinct");
        p->axes |= 1u << d;
        count *= x->dims[d];
    }
    if (!p->axes) THK_BAD("axes must not be empty");
    thk_attr_int(op, "keepdims", &keep); /* an int when present: attribute rules */
    if ((p->axes & 1u) && !keep) THK_BAD("reducing the batch axis");
    if (count > 0xFFFFFFFFu) THK_BAD("too many reduced elements");
    p->count = (uint32_t)count;
    for (d = 0; d < x->ndim; d++) { /* reduced_shape: a reduced axis is 1 or dropped */
        uint32_t want = (p->axes >> d) & 1u ? 1u : x->dims[d];
        if (((p->axes >> d) & 1u) && !keep) continue;
        if (at >= out.ndim || out.dims[at++] != want) THK_BAD("recorded output shape differs from the computed one");
    }
    if (at != out.ndim) THK_BAD("recorded output shape differs from the computed one");
    return THINKER_OK;
}

static uint32_t bit_length(uint64_t v) {
    uint32_t n = 0;
    while (v) { v >>= 1; n++; }
    return n;
}

/* reduce.exact_within_int64: numerator bound << max(-shift, 0) and divisor << max(shift, 0)
 * stay below 2**62 (so the shifts below never overflow) */
static int exact_within_int64(uint64_t numerator, uint64_t divisor, int32_t shift) {
    uint64_t left = shift < 0 ? (uint64_t)(-(int64_t)shift) : 0, right = shift > 0 ? (uint64_t)shift : 0;
    return !(numerator && bit_length(numerator) + left > 62) && !(divisor && bit_length(divisor) + right > 62);
}

thinker_status thk_iqsum_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_reduce_params *p = &op->p.red;
    thk_tensor x;
    int32_t qx, qo;
    int64_t divisor = 1;
    thinker_status s = reduce_prepare(m, op, &x, &qx, &qo, msg);
    (void)needs;
    if (s != THINKER_OK) return s;
    thk_attr_int(op, "divisor", &divisor); /* an int when present: attribute rules */
    if (divisor < 1) THK_BAD("divisor must be >= 1");
    p->divisor = divisor;
    p->shift = qx - qo;
    if (!exact_within_int64(thk_mul_sat(p->count, thk_magnitude(x.dtype)), (uint64_t)divisor, p->shift))
        THK_BAD("sum or divisor << |shift| would leave int64");
    return THINKER_OK;
}

thinker_status thk_iqvar_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_reduce_params *p = &op->p.red;
    thk_tensor x;
    int32_t qx, qo;
    int64_t unbiased = 1;
    uint64_t mag;
    thinker_status s = reduce_prepare(m, op, &x, &qx, &qo, msg);
    (void)needs;
    if (s != THINKER_OK) return s;
    thk_attr_int(op, "unbiased", &unbiased); /* an int when present: attribute rules */
    unbiased = unbiased != 0;
    if (unbiased && p->count < 2) THK_BAD("unbiased variance needs 2 elements");
    p->shift = 2 * qx - qo;
    mag = thk_magnitude(x.dtype);
    p->divisor = (int64_t)p->count * ((int64_t)p->count - unbiased);
    if (!exact_within_int64(thk_mul_sat(thk_mul_sat(p->count, p->count), thk_mul_sat(mag, mag)),
                            (uint64_t)p->divisor, p->shift))
        THK_BAD("the variance would leave int64");
    return THINKER_OK;
}

/* one step of an odometer over `n` axes (innermost first); returns the next offset */
static uint32_t odometer(uint32_t *idx, const uint32_t *dims, const uint32_t *strides, uint32_t n, uint32_t at) {
    uint32_t d;
    for (d = 0; d < n; d++) {
        at += strides[d];
        if (++idx[d] < dims[d]) break;
        at -= strides[d] * dims[d];
        idx[d] = 0;
    }
    return at;
}

/* qmath.rescale_div on numpy's int64: the shift (prepare: exact_within_int64) scales the divisor (s >= 0) or the
 * numerator, then (2 num + den) // (2 den), where numpy's // 0 gives 0; saturated. */
static int64_t rescale_div_np(uint64_t num, uint64_t den, int32_t shift, int64_t lo, int64_t hi) {
    int64_t d;
    if (shift >= 0) den = shift < 64 ? den << shift : 0; /* prepare bounds non-zero values */
    else num = shift > -64 ? num << -shift : 0;
    d = thk_wrap64(2u * den); /* even: never -1 */
    return d ? thk_clamp(thk_floor_div(thk_wrap64(2u * num + den), d), lo, hi) : 0;
}

/* For each output element (kept axes in C order) the sums over the reduced axes. */
static thinker_status reduce_run(thk_run_ctx *ctx, int variance) {
    const thk_reduce_params *p = &ctx->op->p.red;
    thk_tensor x, out;
    uint32_t kd[THINKER_MAX_DIMS], ks[THINKER_MAX_DIMS], ki[THINKER_MAX_DIMS];
    uint32_t rd[THINKER_MAX_DIMS], rs[THINKER_MAX_DIMS], ri[THINKER_MAX_DIMS];
    uint32_t nk = 0, nr = 0, d, stride = 1, o, r, base = 0, at;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    for (d = x.ndim; d-- > 0; stride *= x.dims[d]) {
        if ((p->axes >> d) & 1u) {
            rd[nr] = x.dims[d];
            rs[nr++] = stride;
        } else {
            kd[nk] = x.dims[d];
            ks[nk++] = stride;
        }
    }
    memset(ki, 0, sizeof ki);
    for (o = 0; o < out.count; o++) {
        uint64_t s1 = 0, s2 = 0; /* sums modulo 2**64, as numpy's int64 */
        memset(ri, 0, sizeof ri);
        for (r = 0, at = base; r < p->count; r++) {
            int64_t v = thk_load_int(x.data, x.dtype, at);
            s1 += (uint64_t)v;
            if (variance) s2 += (uint64_t)v * (uint64_t)v;
            at = odometer(ri, rd, rs, nr, at);
        }
        if (variance) s1 = (uint64_t)p->count * s2 - s1 * s1; /* n S2 - S1**2 */
        thk_store_int(out.data, out.dtype, o, rescale_div_np(s1, (uint64_t)p->divisor, p->shift, p->lo, p->hi));
        base = odometer(ki, kd, ks, nk, base);
    }
    return THINKER_OK;
}

thinker_status thk_iqsum_run(thk_run_ctx *ctx) { return reduce_run(ctx, 0); }
thinker_status thk_iqvar_run(thk_run_ctx *ctx) { return reduce_run(ctx, 1); }
