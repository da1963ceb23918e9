/* iqSigmoid, iqTanh, GluInt, SoftmaxInt, LogSoftmaxInt, LayerNormInt (thinker/ops/nonlinear.py):
 * the original linger's fixed-point kernels per family (venus, arcs, venusA; the `platform`
 * attribute picks one), step for step as thinker/nonlinear/{pwl,softmax,logarithm,layernorm}.py
 * computes them, with the data of nonlinear_tables.h (generated from tables.toml).
 *
 * Everything is integer. The kernels' own intermediates are bounded (comments give the bounds;
 * tests/c_executor/test_c_nonlinear.py checks the polynomial's exhaustively); where numpy's
 * int64 arithmetic would wrap (extreme scales only: a conversion shifting by up to 48/62 bits)
 * the C wraps the same way, through unsigned arithmetic, so no signed overflow, no shift of a
 * negative value and no implementation-defined conversion happens anywhere. */
#include "../nonlinear_tables.h"
#include "ops.h"

/* ---- numpy's int64 arithmetic (thk_wrap64, thk_rshift_round_wrap: qmath.h) ------------------ */

/* C's narrowing to int32 (softmax.wrap32) */
static int64_t wrap32(int64_t v) {
    uint32_t u = (uint32_t)((uint64_t)v & 0xFFFFFFFFu);
    return u <= 0x7FFFFFFFu ? (int64_t)u : (int64_t)u - ((int64_t)1 << 32);
}

static int64_t sat32(int64_t v) { return thk_clamp(v, INT32_MIN, INT32_MAX); }

/* v << k for 0 <= k <= 63, wrapping like numpy's int64 shift */
static int64_t shl_wrap(int64_t v, int32_t k) { return thk_wrap64((uint64_t)v << k); }

/* the output stage of every op here: qmath.rescale(v, s, o_bits) */
static int64_t rescale_np(int64_t v, int32_t s, int64_t lo, int64_t hi) {
    return thk_rescale(v, s, lo, hi); /* a left shift saturates, never wraps */
}

static uint32_t bit_length(uint64_t v) {
    uint32_t n = 0;
    while (v) {
        v >>= 1;
        n++;
    }
    return n;
}

/* ---- shared prepare steps ----------------------------------------------------------------- */

/* ops.h numbers the families and functions for rnn.c as the generated tables do */
typedef char thk_family_ids_match[(THK_NL_VENUS == THK_FAMILY_VENUS && THK_NL_VENUSA == THK_FAMILY_VENUSA &&
                                   THK_PWL_SIGMOID == THK_SIGMOID && THK_PWL_TANH == THK_TANH) ? 1 : -1];

/* The kernel family: `platform` (any case), else `platform_quant`'s mapping, else venus. */
thinker_status thk_nl_family(const thinker_model *m, const thk_op *op, uint8_t *family, thinker_message *msg) {
    const char *name;
    int f = THK_NL_DEFAULT;
    if (thk_attr_string(op, m, "platform", &name)) { /* a string when present (attribute rules) */
        f = thk_nl_lookup(thk_nl_platforms, sizeof thk_nl_platforms / sizeof thk_nl_platforms[0], name, 1);
        if (f < 0) THK_BAD("unknown platform");
    } else if (thk_attr_string(op, m, "platform_quant", &name)) {
        f = thk_nl_lookup(thk_nl_platform_quants,
                          sizeof thk_nl_platform_quants / sizeof thk_nl_platform_quants[0], name, 0);
        if (f < 0) f = THK_NL_DEFAULT;
    }
    *family = (uint8_t)f;
    return THINKER_OK;
}

/* One integer input at scale_x (*qx), one output at scale_o (*qo) with the dtype of o_bits,
 * the kernel family: the checks every op here but LayerNormInt starts with. */
static thinker_status io_prepare(const thinker_model *m, thk_op *op, thk_tensor *x, thk_tensor *out,
                                 int32_t *qx, int32_t *qo, thinker_message *msg) {
    thk_nonlinear_params *p = &op->p.nl;
    int64_t bits = 8;
    thinker_status s = thk_nl_family(m, op, &p->family, msg);
    if (s != THINKER_OK) return s;
    if (op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_input(m, op, 0, x); /* input 0: present (thk_check_op_rules) */
    thk_op_output(m, op, 0, out);
    if (!thk_is_int(x->dtype) || x->dtype == THINKER_INT64)
        THK_BAD("input must be int8/uint8/int16/int32");
    if (!thk_input_exponent(op, "scale_x", x, qx)) THK_BAD("an input has no scale");
    if (thk_attr_exponent(op, "scale_o", qo) != 1) THK_BAD("scale_o missing");
    THK_TRY(thk_o_bits(op, bits, out, &p->lo, &p->hi, msg));
    return THINKER_OK;
}

/* The shifts into the kernel's input format and out of it, bounded like numpy's
 * checked_exponent_gap (48 bits in, `out_limit` out). */
static thinker_status shifts_prepare(thk_op *op, int32_t in_shift, int32_t out_shift, int32_t out_limit,
                                     thinker_message *msg) {
    if (in_shift > 48 || in_shift < -48)
        THK_BAD("kernel input conversion shifts too far");
    if (out_shift > out_limit || out_shift < -out_limit)
        THK_BAD("output requantization shifts too far");
    op->p.nl.in_shift = in_shift;
    op->p.nl.out_shift = out_shift;
    return THINKER_OK;
}

/* Rows along the `axis` attribute (else `dim`, default -1): outer x len x inner. */
static thinker_status rows_prepare(thk_op *op, const thk_tensor *x, uint32_t *axis_out, thinker_message *msg) {
    thk_nonlinear_params *p = &op->p.nl;
    int64_t axis = -1;
    uint32_t d;
    if (!thk_attr_int(op, "axis", &axis)) thk_attr_int(op, "dim", &axis); /* ints: attribute rules */
    if (axis < -(int64_t)x->ndim || axis >= (int64_t)x->ndim) THK_BAD("axis out of range");
    if (axis < 0) axis += x->ndim;
    p->outer = p->inner = 1;
    for (d = 0; d < (uint32_t)axis; d++) p->outer *= x->dims[d];
    for (d = (uint32_t)axis + 1; d < x->ndim; d++) p->inner *= x->dims[d];
    p->len = x->dims[axis];
    *axis_out = (uint32_t)axis;
    return THINKER_OK;
}

/* ---- iqSigmoid / iqTanh: piecewise-linear tables (nonlinear/pwl.py) ------------------------ */

/* pwl_kernel: v at Q<input_q> -> Q<output_q>. Inside the table |slope * operand| < 2**62 and
 * |bias| < 2**59; only venus sees v beyond int32 (no clamp there), and its one operand that
 * reaches the product, INT64_MIN (numpy's abs leaves it negative: segment 0), wraps as numpy's
 * product does. */
int64_t thk_pwl(uint32_t family, uint32_t function, int64_t v) {
    const thk_pwl_table *t = &thk_pwl_tables[family][function];
    const thk_pwl_curve *c = &thk_pwl_curves[t->curve];
    int64_t mag = v < 0 ? thk_wrap64((uint64_t)0 - (uint64_t)v) : v;
    int64_t operand = v, bias;
    uint32_t s = 0;
    while (s < THK_PWL_SEGMENTS && (int64_t)c->bands[s + 1] < mag) s++; /* searchsorted, left */
    if (s == THK_PWL_SEGMENTS) return 0;
    if (t->has_product_min && operand < t->product_min) operand = t->product_min;
    bias = t->bias_pos[s];
    if (v < 0) bias = (int64_t)t->bias_sum - bias - ((t->neg_low >> s) & 1u); /* tables.toml's bias_neg */
    bias *= (int64_t)1 << t->bias_shift;
    return thk_floor_shift(thk_wrap64((uint64_t)(int64_t)c->slopes[s] * (uint64_t)operand), t->shifts[s]) + bias;
}

static thinker_status pwl_prepare(const thinker_model *m, thk_op *op, thinker_message *msg,
                                  uint8_t function) {
    const thk_pwl_table *t;
    thk_tensor x, out;
    int32_t qx, qo;
    thinker_status s = io_prepare(m, op, &x, &out, &qx, &qo, msg);
    if (s != THINKER_OK) return s;
    if (!thk_same_dims(&x, &out)) THK_BAD("output must match the input");
    op->p.nl.function = function;
    t = &thk_pwl_tables[op->p.nl.family][function];
    return shifts_prepare(op, qx - t->input_q, t->output_q - qo, 62, msg);
}

thinker_status thk_iqsigmoid_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    (void)n;
    return pwl_prepare(m, op, msg, THK_PWL_SIGMOID);
}

thinker_status thk_iqtanh_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    (void)n;
    return pwl_prepare(m, op, msg, THK_PWL_TANH);
}

/* pwl.activation up to the table's output: x at the op's input scale -> Q<output_q> */
static int64_t pwl_apply(const thk_nonlinear_params *p, uint32_t function, int64_t x) {
    int64_t v = thk_rshift_round(x, p->in_shift); /* saturates at +-2**62 */
    if (p->family != THK_NL_VENUS) v = sat32(v); /* venus: beyond the table gives 0 */
    return thk_pwl(p->family, function, v);
}

/* Element-wise, so it may run in place (element i is read before it is written). */
static thinker_status pwl_run(thk_run_ctx *ctx) {
    const thk_nonlinear_params *p = &ctx->op->p.nl;
    thk_tensor x, out;
    uint32_t i;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    for (i = 0; i < x.count; i++)
        thk_store_int(out.data, out.dtype, i,
                      rescale_np(pwl_apply(p, p->function, thk_load_int(x.data, x.dtype, i)), p->out_shift, p->lo, p->hi));
    return THINKER_OK;
}

thinker_status thk_iqsigmoid_run(thk_run_ctx *ctx) { return pwl_run(ctx); }
thinker_status thk_iqtanh_run(thk_run_ctx *ctx) { return pwl_run(ctx); }

/* ---- GluInt: a * sigmoid(b) for the halves a, b of an axis (ops/nonlinear.py glu) ------------ */

#define GLU_GATE_Q 15 /* the gate: iqSigmoid at scale 2**15, o_bits 32 */

thinker_status thk_glu_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_nonlinear_params *p = &op->p.nl;
    thk_tensor x, out;
    int32_t qx, qo;
    uint32_t axis, d;
    thinker_status s = io_prepare(m, op, &x, &out, &qx, &qo, msg);
    (void)needs;
    if (s == THINKER_OK) s = rows_prepare(op, &x, &axis, msg);
    if (s != THINKER_OK) return s;
    if (p->len % 2u) THK_BAD("the axis has an odd size");
    p->len /= 2u; /* rows of the output: each half */
    if (out.ndim != x.ndim) THK_BAD("output must halve the axis");
    for (d = 0; d < x.ndim; d++)
        if (out.dims[d] != (d == axis ? p->len : x.dims[d])) THK_BAD("output must halve the axis");
    { /* numpy's limits: a right shift up to 62 bits, a left one while |a gate| << k < 2**62 */
        int32_t out_shift = qx + GLU_GATE_Q - qo, product_bits = 8 * (int32_t)thk_dtype_size(x.dtype) + GLU_GATE_Q + 1;
        if (out_shift < 0 && -out_shift > 62 - product_bits)
            THK_BAD("output requantization shifts too far");
    }
    return shifts_prepare(op, qx - thk_pwl_tables[p->family][THK_PWL_SIGMOID].input_q, qx + GLU_GATE_Q - qo,
                          62, msg);
}

/* gate = iqSigmoid(b) in Q15 (int32), y = rescale(a * gate, q_x + 15 - q_o): |a * gate| <= 2**62 */
thinker_status thk_glu_run(thk_run_ctx *ctx) {
    const thk_nonlinear_params *p = &ctx->op->p.nl;
    const thk_pwl_table *t = &thk_pwl_tables[p->family][THK_PWL_SIGMOID];
    uint32_t half = p->len * p->inner, o, i, at = 0;
    thk_tensor x, out;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    for (o = 0; o < p->outer; o++)
        for (i = 0; i < half; i++, at++) {
            uint32_t ia = 2u * o * half + i;
            int64_t gate = rescale_np(pwl_apply(p, THK_PWL_SIGMOID, thk_load_int(x.data, x.dtype, ia + half)),
                                      t->output_q - GLU_GATE_Q, INT32_MIN, INT32_MAX);
            thk_store_int(out.data, out.dtype, at,
                          rescale_np(thk_load_int(x.data, x.dtype, ia) * gate, p->out_shift, p->lo, p->hi));
        }
    return THINKER_OK;
}

/* ---- SoftmaxInt (nonlinear/softmax.py) ---------------------------------------------------- */

#define SOFTMAX_IN_Q 25
#define SOFTMAX_OUT_Q 15
#define LN_OUT_Q 25 /* logarithm.OUTPUT_Q */

/* int64 p rounded to 53 significant bits, ties to even: the integer C's (double)p holds
 * (softmax.as_double), for |p| < 2**62. */
static int64_t as_double(int64_t p) {
    int32_t e;
    int64_t m = thk_double_of(p, &e);
    return m * ((int64_t)1 << e);
}

/* The venus/arcs Q23 polynomial on frac in [-2**23, 0): |y| < 2**24 at every step and the
 * result lies in [2**22, 2**23) (exhaustively checked), so |y * frac| < 2**47. */
static int64_t horner(int64_t frac) {
    int64_t y = thk_softmax_poly_q23[0];
    uint32_t k;
    for (k = 1; k < THK_SOFTMAX_POLY_TERMS; k++)
        y = wrap32(thk_rshift_round_wrap(y * frac, 23)) + thk_softmax_poly_q23[k];
    return y;
}

/* venusA: Q30 steps, the last one applying 2**e with a shift of 30 - e (>= 29; > 63 gives 0);
 * |t| < 2**54 (exhaustively checked). */
static int64_t horner_venus_a(int64_t frac, int64_t e) {
    int64_t y = thk_softmax_poly_q23[0], t, n;
    uint32_t k;
    for (k = 1; k < THK_SOFTMAX_POLY_TERMS; k++) {
        t = thk_wrap64((uint64_t)(y * frac) * 128u + ((uint64_t)thk_softmax_poly_q23[k] << 30));
        if (k + 1 < THK_SOFTMAX_POLY_TERMS) {
            y = thk_rshift_round_wrap(t, 30);
        } else {
            n = 30 - e; /* numpy clips it to [1, 63] */
            if (n < 1) n = 1;
            y = n > 63 ? 0 : thk_floor_shift(thk_floor_shift(t, (int)n - 1) + 1, 1);
        }
    }
    return y;
}

/* exp of one Q25 input relative to the row's top (the family's numerator): an int32 value. */
static int64_t softmax_exp(uint32_t family, int64_t v, int64_t top) {
    int64_t d = sat32(v - top), e, frac, y;
    int64_t p = d * THK_SOFTMAX_LOG2E_Q29; /* |d| <= 2**31, log2e < 2**30 */
    if (family == THK_NL_VENUS) d = sat32(thk_rshift_round_wrap(as_double(p), 31));
    else if (family == THK_NL_ARCS) d = sat32(thk_rshift_round_wrap(p, 31));
    else d = wrap32(thk_rshift_round_wrap(p, 31));
    /* d <= 0: the exponent (d >> 23) + 1 in [-255, 1] and the fraction in [-2**23, 0) */
    e = thk_floor_shift(d, 23) + 1;
    frac = (int64_t)((uint64_t)d & 0x7FFFFFu) - 0x800000;
    if (family == THK_NL_VENUSA) return wrap32(horner_venus_a(frac, e));
    y = horner(frac);
    if (family == THK_NL_VENUS) { /* (int32)(y * pow(2, e)): exact, truncated toward zero */
        if (e >= 0) return shl_wrap(y, (int32_t)(e > 62 ? 62 : e));
        return y >= 0 ? thk_floor_shift(y, (int)(-e > 62 ? 62 : -e))
                      : -thk_floor_shift(-y, (int)(-e > 62 ? 62 : -e));
    }
    if (e >= 63 || e <= -63) return 0; /* arcs: shift_pure */
    return sat32(e > 0 ? shl_wrap(y, (int32_t)e) : thk_floor_shift(y, (int)-e));
}

/* arcs/venusA: 2**23 / total by 30 restoring-division steps on uint32 registers */
static uint32_t reciprocal_q(int64_t total) {
    uint32_t b = (uint32_t)((uint64_t)sat32(total) & 0xFFFFFFFFu), a = 0x800000u, c = 0u, k;
    for (k = 0; k < 30u; k++) {
        if (a >= b) {
            c = (c + 1u) * 2u;
            a = (a - b) * 2u;
        } else {
            c *= 2u;
            a *= 2u;
        }
    }
    return c;
}

/* SoftmaxInt (Q15 out) and LogSoftmaxInt (its ln in Q25: q_out 25) */
static thinker_status softmax_like(const thinker_model *m, thk_op *op, thk_needs *needs,
                                   thinker_message *msg, int32_t q_out) {
    thk_nonlinear_params *p = &op->p.nl;
    thk_tensor x, out;
    int32_t qx, qo;
    uint32_t axis;
    thinker_status s = io_prepare(m, op, &x, &out, &qx, &qo, msg);
    if (s != THINKER_OK) return s;
    if (!thk_same_dims(&x, &out)) THK_BAD("output must match the input");
    s = shifts_prepare(op, qx - SOFTMAX_IN_Q, q_out - qo, 62, msg);
    if (s == THINKER_OK) s = rows_prepare(op, &x, &axis, msg);
    if (s != THINKER_OK) return s;
    if (p->len > 0x1FFFFFFCu / 4u) THK_BAD("too large for the scratch buffer");
    needs->scratch = 4u * p->len; /* one row of numerators (int32) */
    return THINKER_OK;
}

thinker_status thk_softmax_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    return softmax_like(m, op, needs, msg, SOFTMAX_OUT_Q);
}

thinker_status thk_logsoftmax_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    return softmax_like(m, op, needs, msg, LN_OUT_Q);
}

/* logarithm.ln_q15_to_q25: ln(p / 2**15) in Q25 for an int32 p, INT32_MIN for p <= 0 (ln 0).
 * p << n has bit 30 set; |yf >> 38| <= 2**25 and 0 <= n <= 30 keep |l| < 2**30, |l * ln2| < 2**61. */
/* tables.toml's log2(e) / x0 in Q30 for x0 = (257 + 2 k) / 256: floor(C / (257 + 2 k)), C =
 * THK_LOG2E_Q38 < 2**39 (c_tables checks every k), as a long division by 16-bit digits */
static int64_t log2e_over_x0(uint32_t k) {
    uint32_t d = 257u + 2u * k, hi = (uint32_t)(THK_LOG2E_Q38 >> 16), lo = (uint32_t)(THK_LOG2E_Q38 & 0xFFFF);
    return (int64_t)((hi / d) << 16) + (int64_t)((((hi % d) << 16) | lo) / d);
}

static int64_t ln_q15_to_q25(int64_t p) {
    int32_t n;
    int64_t x, dx, a, b, l, mag;
    uint32_t k;
    if (p <= 0) return INT32_MIN;
    n = 31 - (int32_t)bit_length((uint64_t)p);
    x = (p << n) - ((int64_t)1 << 30);
    k = (uint32_t)(x >> 23); /* x in [0, 2**30) */
    dx = ((x & 0x7FFFFF) - 0x400000) * 4;
    a = (int64_t)thk_log2_x0[k] * ((int64_t)1 << 32); /* int32 << 32: fits int64 */
    b = 2 * log2e_over_x0(k) * dx;                      /* |b| < 2**57 */
    if (b < 0 && a < INT64_MIN - b) a = INT64_MIN;           /* the saturating int64 add */
    else if (b > 0 && a > INT64_MAX - b) a = INT64_MAX;
    else a += b;
    l = thk_floor_shift(a, 38) + (int64_t)(16 - n) * ((int64_t)1 << 25);
    l *= THK_LN2_Q31;
    mag = (int64_t)(((l < 0 ? (uint64_t)0 - (uint64_t)l : (uint64_t)l) + ((uint64_t)1 << 30)) >> 31);
    return sat32(l < 0 ? -mag : mag); /* round half away from zero */
}

/* Each row is read completely before any of its outputs is written, so it may run in place.
 * `finish` (LogSoftmaxInt: the logarithm) maps each Q15 probability before the output stage;
 * passed by LogSoftmaxInt only, so a build without it links neither it nor its table. */
static thinker_status softmax_rows(thk_run_ctx *ctx, int64_t (*finish)(int64_t)) {
    const thk_nonlinear_params *p = &ctx->op->p.nl;
    int32_t *num = (int32_t *)(void *)ctx->scratch;
    thk_tensor x, out;
    uint32_t o, i, j;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (!p->len) return THINKER_OK;
    for (o = 0; o < p->outer; o++)
        for (i = 0; i < p->inner; i++) {
            uint32_t base = o * p->len * p->inner + i;
            int64_t top = INT64_MIN, total = 0, v, r = 0;
            uint32_t c = 0;
            for (j = 0; j < p->len; j++) {
                v = sat32(thk_rshift_round(thk_load_int(x.data, x.dtype, base + j * p->inner), p->in_shift));
                if (v > top) top = v;
            }
            if (p->family == THK_NL_VENUSA && top == INT32_MIN) top += 1;
            for (j = 0; j < p->len; j++) {
                v = sat32(thk_rshift_round(thk_load_int(x.data, x.dtype, base + j * p->inner), p->in_shift));
                v = softmax_exp(p->family, v, top); /* int32: venus < 2**25, others narrowed */
                num[j] = (int32_t)v;
                total += v;
            }
            if (p->family == THK_NL_VENUS) {
                /* normalise the sum (add32s: at most INT32_MAX) to [2**22, 2**23), two Newton
                 * steps for its reciprocal from the seed, denormalise */
                int64_t t, err;
                int32_t n, k;
                if (total > INT32_MAX) total = INT32_MAX;
                n = 31 - (int32_t)bit_length((uint64_t)(total < 0 ? 0 : total)) - 8;
                t = sat32(n < 0 ? thk_floor_shift(total, -n) : shl_wrap(total, n));
                n += 1;
                r = THK_SOFTMAX_NEWTON_SEED - t;
                for (k = 0; k < 2; k++) {
                    err = 0x400000 - wrap32(thk_rshift_round_wrap(t * r, 23)); /* |t|, |r| < 2**25 */
                    err = err + err;
                    r = r + wrap32(thk_rshift_round_wrap(r * err, 23));
                }
                r = sat32(n < 0 ? thk_floor_shift(r, n < -62 ? 62 : -n) : shl_wrap(r, n > 62 ? 62 : n));
            } else {
                c = reciprocal_q(total);
            }
            for (j = 0; j < p->len; j++) {
                if (p->family == THK_NL_VENUS) /* |r * num| < 2**56 */
                    v = sat32(thk_rshift_round_wrap(as_double(r * num[j]), 31));
                else
                    v = wrap32(thk_rshift_round_wrap(thk_wrap64((uint64_t)c * (uint64_t)(int64_t)num[j]), 38));
                if (finish) v = finish(v); /* LogSoftmaxInt: v is the Q15 softmax at o_bits 32 */
                thk_store_int(out.data, out.dtype, base + j * p->inner, rescale_np(v, p->out_shift, p->lo, p->hi));
            }
        }
    return THINKER_OK;
}

thinker_status thk_softmax_run(thk_run_ctx *ctx) { return softmax_rows(ctx, NULL); }
thinker_status thk_logsoftmax_run(thk_run_ctx *ctx) { return softmax_rows(ctx, ln_q15_to_q25); }

/* ---- LayerNormInt (nonlinear/layernorm.py) ------------------------------------------------ */

#define LAYERNORM_OUT_Q 15
#define LAYERNORM_LIMIT ((int64_t)1 << 58) /* the denominator's bound: its top bit pair is tabled */

/* eps: numpy accepts a finite value >= 0 (checked on the float's bits: no float arithmetic) */
static int eps_valid(const thk_op *op) {
    uint32_t type, count, u;
    const uint8_t *a = thk_attr_find(op, "eps", &type, &count);
    if (!a) return 1; /* numpy's default, 1e-5 */
    u = thk_rd32(a);
    if (type == THK_ATTR_INT) return (int32_t)u >= 0;
    if (type != THK_ATTR_FLOAT) return 0;
    if (((u >> 23) & 0xFFu) == 0xFFu) return 0; /* inf, NaN */
    return !(u >> 31) || !(u & 0x7FFFFFFFu);     /* -0.0 is >= 0 */
}

/* scale_y_normal, when given, must be 32768 (float bits 0x47000000, or the int) */
static int normal_scale_valid(const thk_op *op) {
    uint32_t type, count, u;
    const uint8_t *a = thk_attr_find(op, "scale_y_normal", &type, &count);
    if (!a) return 1;
    u = thk_rd32(a);
    return (type == THK_ATTR_FLOAT && u == 0x47000000u) || (type == THK_ATTR_INT && u == 32768u);
}

/* Integer constant operands (int4 included); int64 is not supported here. */
static int const_int(const thk_tensor *t) {
    return t->init && t->dtype != THINKER_INT64 && (thk_is_int(t->dtype) || t->dtype == THINKER_INT4);
}

thinker_status thk_layernorm_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    thk_nonlinear_params *p = &op->p.nl;
    thk_tensor x, w, b, out;
    int32_t qx, qw, qo, bits_in, shift;
    int64_t bits = 8, words[2];
    uint64_t n, size = 1, eps, room;
    uint32_t k, dtype;
    (void)needs;
    if (op->n_out != 1 || !thk_op_input(m, op, 0, &x) || !thk_op_input(m, op, 1, &w)) THK_BAD("expects 1 output");
    p->has_bias = (uint8_t)thk_op_input(m, op, 2, &b);
    thk_op_output(m, op, 0, &out);
    if (!thk_is_int(x.dtype) || x.dtype == THINKER_INT64)
        THK_BAD("input must be int8/uint8/int16/int32");
    if (!const_int(&w)) THK_BAD("weight must be an integer constant");
    if (p->has_bias && !const_int(&b)) THK_BAD("bias must be an integer constant");
    if (!thk_input_exponent(op, "scale_x", &x, &qx)) THK_BAD("an input has no scale");
    if (thk_attr_exponent(op, "scale_w", &qw) != 1) THK_BAD("scale_w missing");
    if (thk_attr_exponent(op, "scale_o", &qo) != 1) THK_BAD("scale_o missing");
    thk_attr_int(op, "o_bits", &bits); /* an int when present: attribute rules */
    if (!thk_bits_range(bits, &p->lo, &p->hi, &dtype)) THK_BAD("o_bits must be 4, 8, 16 or 32");
    if (out.dtype != dtype || !thk_same_dims(&x, &out))
        THK_BAD("output must be the input's shape, o_bits' dtype");
    if (!normal_scale_valid(op))
        THK_BAD("scale_y_normal must be 32768");
    /* rows: the trailing axes of x whose sizes multiply to the weight's size */
    n = w.count;
    for (k = x.ndim; k-- > 0;) {
        size *= x.dims[k];
        if (size >= n) break;
    }
    if (size != n || n == 0) THK_BAD("weight: one value per normalised element");
    if (p->has_bias && b.count != n) THK_BAD("bias: one value per normalised element");
    if (!eps_valid(op)) THK_BAD("eps must be finite >= 0");
    if (thk_attr_ints(op, "eps_q", words, 2) != 2 || words[1] < 0)
        THK_BAD("eps_q missing or invalid; re-pack");
    eps = ((uint64_t)(uint32_t)words[1] << 32) | (uint32_t)words[0];
    /* the denominator N * sum(x**2) - sum(x)**2 + eps_q stays below 2**58 (numpy's bound) */
    bits_in = 8 * (int32_t)thk_dtype_size(x.dtype);
    room = eps < (uint64_t)LAYERNORM_LIMIT ? ((uint64_t)LAYERNORM_LIMIT - 1u - eps) >> (2 * (bits_in - 1)) : 0;
    if (bits_in >= 30 || n >= ((uint64_t)1 << 29) || n * n > room)
        THK_BAD("denominator must stay below 2**58");
    shift = LAYERNORM_OUT_Q + qw - qo;
    if (shift > 62 || shift < -62) THK_BAD("output requantization shifts > 62 bits");
    p->len = (uint32_t)n;
    p->outer = x.count / (uint32_t)n;
    p->eps_q = (int64_t)eps;
    p->out_shift = shift;
    return THINKER_OK;
}

/* The original's rsqrt_q15 table entry for t in [256, 1024): min(32767, floor(2**19 / sqrt(t))),
 * i.e. the largest r with r * r * t <= 2**38 (tables.toml keeps the table; a test proves this
 * identity on every entry). Computed bit by bit: 15 steps instead of 1.5 KB of table. */
static int64_t rsqrt_entry(uint32_t t) {
    uint32_t r = 0, bit;
    for (bit = 1u << 15; bit; bit >>= 1)
        if ((uint64_t)(r | bit) * (r | bit) * t <= ((uint64_t)1 << 38)) r |= bit;
    return r > 32767u ? 32767 : (int64_t)r;
}

/* (r, k): the Q15 reciprocal square root of D >= 0 and the kernel's right shift (rsqrt_q15). */
static int rsqrt_q15(int64_t d, int64_t *r, int32_t *k) {
    int64_t t = THK_LN_RSQRT_BASE;
    int32_t q1 = 0;
    int32_t i;
    /* tables.toml's normalize steps (nonlinear_tables.h): the first i whose bits 58 - 2 i,
     * 59 - 2 i of D are not both 0 gives shift 50 - 2 i and q1 30 - i */
    for (i = 0; i < THK_LN_STEPS; i++)
        if ((uint64_t)d & ((uint64_t)3 << (58 - 2 * i))) {
            int32_t s = 50 - 2 * i;
            t = s >= 0 ? thk_floor_shift(d, s) : shl_wrap(d, -s);
            q1 = 30 - i;
            break;
        }
    /* 0 <= D < 2**58 (prepare) puts t in [256, 1024) */
    if (t < THK_LN_RSQRT_BASE || t - THK_LN_RSQRT_BASE >= THK_LN_RSQRT_SIZE) return 0;
    *r = rsqrt_entry((uint32_t)t);
    *k = q1 - 1;
    return 1;
}

/* Row by row: the sums are taken before any output of the row is written (in-place safe).
 * Bounds from prepare (N * 2**(bits-1) < 2**29): |sum(x)| < 2**30, N * sum(x**2) < 2**60, the
 * denominator N**2 * variance + eps_q < 2**58, |N x_i - sum| < 2**31, the Q15 product
 * < 2**46, |sat32(normalized) * weight + bias| < 2**63. */
thinker_status thk_layernorm_run(thk_run_ctx *ctx) {
    const thk_nonlinear_params *p = &ctx->op->p.nl;
    thk_tensor x, w, b, out;
    uint32_t row, j;
    int64_t n = p->len;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_input(ctx->model, ctx->op, 1, &w);
    if (p->has_bias) thk_op_input(ctx->model, ctx->op, 2, &b);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    for (row = 0; row < p->outer; row++) {
        uint32_t base = row * p->len;
        int64_t total = 0, squares = 0, r, v;
        int32_t k;
        for (j = 0; j < p->len; j++) {
            v = thk_load_int(x.data, x.dtype, base + j);
            total += v;
            squares += v * v;
        }
        if (!rsqrt_q15(n * squares - total * total + p->eps_q, &r, &k))
            return thk_op_error(ctx->message, ctx->op, THINKER_ERR_RUNTIME, "denominator out of the table");
        for (j = 0; j < p->len; j++) {
            int64_t norm = (n * thk_load_int(x.data, x.dtype, base + j) - total) * r;
            int64_t acc;
            if (k > 0) norm = thk_rshift_round_wrap(norm, k);
            acc = sat32(norm) * thk_load_int(w.data, w.dtype, j);
            if (p->has_bias) acc += thk_load_int(b.data, b.dtype, j);
            thk_store_int(out.data, out.dtype, base + j, rescale_np(sat32(acc), p->out_shift, p->lo, p->hi));
        }
    }
    return THINKER_OK;
}
