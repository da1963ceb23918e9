/* GRUInt and LSTMInt (thinker/ops/rnn.py): one recurrent layer in one direction, the gates
 * through the kernel family's sigmoid/tanh tables (ops/nonlinear.c), step for step as numpy.
 *
 * Per step and batch row: the gate pre-activations gi = x W_ih^T + b_ih and gh = h W_hh^T + b_hh
 * (exact sums: int32 where prepare proved |sum| < 2**31, else int64; numpy's float64 GEMM is
 * exact below 2**53, which prepare also proves), moved to the gates' Q and saturated to int32,
 * then the element-wise cell. The shifts may move values by up to 41 bits (scales 40 bits
 * apart, numpy's limit): left shifts saturate at +-2**62 as qmath.rshift_round does, and where
 * numpy's int64 products and sums wrap (the GRU's z (h - n_h) with n_h near 2**62) the C wraps
 * the same way through unsigned arithmetic, so nothing overflows and every integer is numpy's.
 *
 * Scratch (int32): the 4H gate values of one row (GRU: r, z sums, n's input and hidden parts;
 * LSTM: i, f, g, o sums), the row of x (F), h of every batch row (B H) and, for LSTM, c (B H). */
#include "ops.h"

#define RNN_MAX_GAP 40 /* numpy's bound on every requantization shift of the op */

/* qmath.rshift_round on numpy int64 arrays, |s| <= 41: a left shift saturates at +-2**62, a
 * right shift adds the half with int64 wrap-around; then (rq_sat) saturation to `bits` */
static int64_t rq(int64_t v, int32_t s) {
    int64_t lim;
    if (s >= 0) return thk_rshift_round_wrap(v, s);
    lim = ((int64_t)1 << 62) >> -s;
    return thk_clamp(v, -lim, lim) * ((int64_t)1 << -s); /* |result| <= 2**62 */
}
static int64_t rq_sat(int64_t v, int32_t s, uint32_t bits) {
    int64_t hi = ((int64_t)1 << (bits - 1u)) - 1;
    return thk_clamp(rq(v, s), -hi - 1, hi);
}
static int64_t wmul(int64_t a, int64_t b) { return thk_wrap64((uint64_t)a * (uint64_t)b); }

/* rnn.Activation: sigmoid/tanh at the gates' Q (venus Q11 -> Q15 raw, unclamped; arcs Q27 ->
 * Q31 clamped to int32; venusA its Q58 rounded by 27, clamped). clamp16: the venus LSTM's int16
 * clamp of the input instead of int32. */
static int64_t act(const thk_rnn_params *p, uint32_t function, int64_t v, int clamp16) {
    v = thk_pwl(p->family, function, rq_sat(v, 0, clamp16 ? 16u : 32u));
    if (p->family != THK_FAMILY_VENUS) v = rq_sat(v, p->family == THK_FAMILY_VENUSA ? 27 : 0, 32u);
    return v;
}

/* sum_k v[k] W[row, k], exact; int32 when `acc32` (proven at prepare) */
static int64_t dot(const thk_tensor *w, uint32_t row, const int32_t *v, uint32_t n, uint8_t acc32) {
    uint32_t k, base = row * n;
    int64_t sum = 0;
    if (acc32 && w->dtype == THINKER_INT8) { /* the common case: int8 weights, |sum| < 2**31 */
        const int8_t *wr = (const int8_t *)w->data + base;
        int32_t s32 = 0;
        for (k = 0; k < n; k++) s32 += v[k] * wr[k];
        return s32;
    }
    for (k = 0; k < n; k++) sum += (int64_t)v[k] * thk_load_int(w->data, w->dtype, base + k);
    return sum;
}

/* one gate pre-activation: (v W[o]^T + b[o]) moved by s bits to the gates' Q, int32 */
static int64_t project(const thk_tensor *w, const thk_tensor *b, int has_bias, uint32_t o, const int32_t *v,
                       uint32_t n, uint8_t acc32, int32_t s) {
    return rq_sat(dot(w, o, v, n, acc32) + thk_bias_at(b, has_bias, o), s, 32u);
}

/* GRU (PyTorch's form): r, z = sigmoid(gi + gh), n = tanh(gi_n + rq(r gh_n, Q_out)),
 * n_h = rq(n, Q_out - q_h), h' = sat(n_h + rq(z (h - n_h), Q_out)). |r gh_n| < 2**62. */
static int64_t gru_cell(const thk_rnn_params *p, const int32_t *g, int64_t h) {
    uint32_t H = p->hidden;
    int32_t q_out = p->family == THK_FAMILY_VENUS ? 15 : 31;
    int64_t r = act(p, THK_SIGMOID, g[0], 0), z = act(p, THK_SIGMOID, g[H], 0);
    int64_t n = act(p, THK_TANH, g[2 * H] + rq(r * g[3 * H], q_out), 0);
    int64_t n_h = rq(n, q_out - p->qh);
    return rq_sat(thk_wrap64((uint64_t)n_h + (uint64_t)rq(wmul(z, thk_wrap64((uint64_t)h - (uint64_t)n_h)), q_out)),
                  0, p->h_bits);
}

/* LSTM as the original linger computes it (rnn.py). venus: Q15 gates, |f c| < 2**47; others:
 * Q31 gates rounded to Q15, |c f| < 2**47. Returns h'; *c becomes c'. */
static int64_t lstm_cell(const thk_rnn_params *p, const int32_t *g, int32_t *c) {
    uint32_t H = p->hidden;
    int venus = p->family == THK_FAMILY_VENUS, s = venus ? 0 : 16;
    int64_t i = rq(act(p, THK_SIGMOID, g[0], venus), s);
    int64_t f = rq(act(p, THK_SIGMOID, g[H], venus), s);
    int64_t gc = rq(act(p, THK_TANH, g[2 * H], venus), s);
    int64_t o = rq(act(p, THK_SIGMOID, g[3 * H], venus), s), t, sum;
    if (venus) {
        sum = f * *c + i * gc; /* Q30 */
        *c = (int32_t)rq_sat(sum, 15, 32u);
        t = act(p, THK_TANH, rq_sat(sum, 19, 32u), 1);
    } else {
        sum = rq(rq_sat(*c * f, 0, 32u) + rq_sat(i * gc, 0, 32u), 3); /* c in Q27 */
        t = rq(act(p, THK_TANH, sum, 0), 16);
        *c = (int32_t)rq(sum, 12);
    }
    return rq_sat(o * t, 30 - p->qh, p->h_bits); /* |o t| <= 2**30 */
}

/* [d0, d1, h] */
static int dims3(const thk_tensor *t, uint32_t d0, uint32_t d1, uint32_t h) {
    return t->ndim == 3 && t->dims[0] == d0 && t->dims[1] == d1 && t->dims[2] == h;
}

static int gap_ok(int32_t s) { return s >= -RNN_MAX_GAP && s <= RNN_MAX_GAP; }

#define RNN_INPUTS "io count disagrees with has_hidden, has_cell"
#define RNN_SHAPES "expects X int [., ., F], h0, c0, W_ih, W_hh, b of hidden_size"
#define RNN_FAIL(text) do { why = text; goto bad; } while (0)

/* GRUInt and LSTMInt share both steps: the op's type tells them apart. */
thinker_status thk_rnn_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, thinker_message *msg) {
    /* pointers: the keys are literals the attribute rules hold too (merged) */
    static const char *const int_keys[8] = {"has_hidden", "has_cell", "batch_first", "go_forward",
                                            "num_layers", "o_bits",   "h_bits",      "hidden_size"};
    static const uint8_t defaults[8] = {0, 0, 0, 1, 1, 8, 0, 0};
    static const char scale_keys[4][9] = {"scale_iw", "scale_hw", "scale_h", "scale_o"};
    thk_rnn_params *p = &op->p.rnn;
    thk_tensor x, t, wi, wh;
    uint8_t cell = op->type[0] == 'L'; /* LSTMInt */
    uint32_t G = cell ? 4u : 3u, w, H, B, i, dtype[3], found = 0;
    int32_t qx, q[4], q_out, k;
    int64_t a[8], lo, hi;
    uint64_t sum_i, sum_h, h_mag, scratch;
    const char *why;
    thinker_status s = thk_nl_family(m, op, &p->family, msg);
    if (s != THINKER_OK) return s;
    for (i = 0; i < 8; i++) { /* their types are checked with the model's rules (rules.c) */
        a[i] = defaults[i];
        found |= (uint32_t)thk_attr_int(op, int_keys[i], &a[i]) << i;
    }
    if (a[4] != 0 && a[4] != 1) RNN_FAIL("num_layers must be 1");
    if (!a[6]) a[6] = a[5]; /* h_bits: o_bits by default */
    if (!thk_bits_range(a[5], &lo, &hi, &dtype[0]) || !thk_bits_range(a[6], &lo, &hi, &dtype[1]))
        RNN_FAIL("o_bits and h_bits must be 4, 8, 16 or 32");
    dtype[2] = THINKER_INT32;
    p->o_bits = (uint8_t)a[5];
    p->h_bits = (uint8_t)a[6];
    p->cell = cell;
    p->has_h = a[0] != 0;
    p->has_c = cell && a[1] != 0;
    p->batch_first = a[2] != 0;
    p->forward = a[3] != 0;
    w = 1u + p->has_h + p->has_c;
    p->bias = op->n_in == w + 4;
    if ((op->n_in != w + 2 && !p->bias) || op->n_out != G - 1u || !thk_op_input(m, op, 0, &x) ||
        !thk_op_input(m, op, w, &wi) || !thk_op_input(m, op, w + 1, &wh))
        RNN_FAIL(RNN_INPUTS);
    H = wh.dims[1];
    if (x.ndim != 3 || wi.ndim != 2 || wh.ndim != 2 || wi.dims[0] != G * H || wh.dims[0] != G * H ||
        wi.dims[1] != x.dims[2] || ((found & 0x80u) && a[7] != (int64_t)H))
        RNN_FAIL(RNN_SHAPES);
    B = x.dims[p->batch_first ? 0 : 1];
    p->steps = x.dims[p->batch_first ? 1 : 0];
    p->batch = B;
    p->in_f = x.dims[2];
    p->hidden = H;
    h_mag = (uint64_t)1 << (a[6] - 1); /* |h|: h_bits, or h0's dtype at the first step */
    for (i = 0; i < op->n_in; i++) {
        if (!thk_op_input(m, op, i, &t)) RNN_FAIL(RNN_INPUTS);
        if (i < w ? !thk_is_int(t.dtype) || t.dtype == THINKER_INT64 || (i && !dims3(&t, 1, B, H))
                  : !t.init || (!thk_is_int(t.dtype) && t.dtype != THINKER_INT4) ||
                        (i >= w + 2 && t.count != 1 && t.count != G * H))
            RNN_FAIL(RNN_SHAPES);
        if (i == 1 && p->has_h && thk_magnitude(t.dtype) > h_mag) h_mag = thk_magnitude(t.dtype);
    }
    for (i = 0; i + 1 < G; i++) { /* Y (o_bits), h_n (h_bits), c_n (int32) */
        thk_op_output(m, op, i, &t);
        if (t.dtype != dtype[i] || !dims3(&t, i ? 1u : x.dims[0], i ? B : x.dims[1], H))
            RNN_FAIL("recorded output shape differs from the computed one");
    }
    if (cell && (k = thk_attr_exponent(op, "scale_c", &qx)) != 0 && (k != 1 || qx != 15))
        RNN_FAIL("scale_c must be 32768");
    if (!thk_input_exponent(op, "scale_x", &x, &qx)) RNN_FAIL("an input has no scale");
    for (i = 0; i < 4; i++)
        if (thk_attr_exponent(op, scale_keys[i], &q[i]) != 1) RNN_FAIL("scale_iw/hw/h/o must be powers of two");
    q_out = p->family == THK_FAMILY_VENUS ? 15 : 31; /* Q_in = Q_out - 4: 11 or 27 */
    p->qh = q[2];
    p->s_x = qx + q[0] - (q_out - 4);
    p->s_h = q[2] + q[1] - (q_out - 4);
    p->s_o = q[2] - q[3];
    if (!gap_ok(p->s_x) || !gap_ok(p->s_h) || !gap_ok(q_out - q[2]) || !gap_ok(p->s_o))
        RNN_FAIL("a requantization shift exceeds 40 bits");
    /* numpy's exactness bound (float64 GEMM): |x| < 2**31 for the input, |h| for the state */
    sum_i = thk_weight_abs_sum(&wi, G * H, p->in_f, p->in_f, 1);
    sum_h = thk_weight_abs_sum(&wh, G * H, H, H, 1);
    if (thk_mul_sat(sum_i, (uint64_t)1 << 31) >= ((uint64_t)1 << 53) || thk_mul_sat(sum_h, h_mag) >= ((uint64_t)1 << 53))
        RNN_FAIL("accumulator bound exceeds 2**53");
    p->acc32_x = thk_mul_sat(sum_i, thk_magnitude(x.dtype)) < ((uint64_t)1 << 31);
    p->acc32_h = thk_mul_sat(sum_h, h_mag) < ((uint64_t)1 << 31);
    /* scratch: 4 (4 H + F + B H (1 + LSTM)) bytes, docs/c_executor.md */
    scratch = 4u * (4u * (uint64_t)H + p->in_f + (uint64_t)B * H * (cell ? 2u : 1u));
    if (scratch > 0x7FFFFFFFu) RNN_FAIL("too large for the scratch buffer");
    needs->scratch = (uint32_t)scratch;
    return THINKER_OK;
bad:
    return thk_op_error(msg, op, THINKER_ERR_MODEL, why);
}

thinker_status thk_rnn_run(thk_run_ctx *ctx) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_rnn_params *p = &op->p.rnn;
    uint32_t H = p->hidden, F = p->in_f, B = p->batch, T = p->steps, G = p->cell ? 4u : 3u;
    uint32_t w = 1u + p->has_h + p->has_c, step, b, o, k;
    int32_t *gate = (int32_t *)(void *)ctx->scratch, *xrow = gate + 4u * H, *hs = xrow + F, *cs = hs + B * H;
    thk_tensor x, wi, wh, bi, bh, y, t;
    thk_op_input(m, op, 0, &x);
    thk_op_input(m, op, w, &wi);
    thk_op_input(m, op, w + 1, &wh);
    thk_op_input(m, op, w + 2, &bi); /* absent without bias: bias_at gives 0 */
    thk_op_input(m, op, w + 3, &bh);
    thk_op_output(m, op, 0, &y);
    memset(hs, 0, 4u * B * H * (p->cell ? 2u : 1u));
    for (o = 1; o < w; o++) { /* h0 (when has_h), c0 (when has_c) */
        int32_t *state = o == 1u && p->has_h ? hs : cs;
        thk_op_input(m, op, o, &t);
        for (k = 0; k < B * H; k++) state[k] = (int32_t)thk_load_int(t.data, t.dtype, k);
    }
    for (step = 0; step < T; step++) {
        uint32_t ti = p->forward ? step : T - 1u - step;
        for (b = 0; b < B; b++) {
            uint32_t row = p->batch_first ? b * T + ti : ti * B + b; /* of X and Y */
            int32_t *h = hs + b * H;
            for (k = 0; k < F; k++) xrow[k] = (int32_t)thk_load_int(x.data, x.dtype, row * F + k);
            for (o = 0; o < G * H; o++) {
                int64_t gi = project(&wi, &bi, p->bias, o, xrow, F, p->acc32_x, p->s_x);
                int64_t gh = project(&wh, &bh, p->bias, o, h, H, p->acc32_h, p->s_h);
                if (!p->cell && o >= 2u * H) { /* GRU n: both parts (gate[2H..4H)) */
                    gate[o] = (int32_t)gi;
                    gate[o + H] = (int32_t)gh;
                } else {
                    gate[o] = (int32_t)rq_sat(gi + gh, 0, 32u);
                }
            }
            for (k = 0; k < H; k++) { /* element k depends on h[k] and c[k] only */
                int64_t v = p->cell ? lstm_cell(p, gate + k, cs + b * H + k) : gru_cell(p, gate + k, h[k]);
                h[k] = (int32_t)v;
                thk_store_int(y.data, y.dtype, row * H + k, rq_sat(v, p->s_o, p->o_bits));
            }
        }
    }
    for (o = 1; o < G - 1u; o++) { /* h_n, c_n */
        thk_op_output(m, op, o, &t);
        for (k = 0; k < B * H; k++) thk_store_int(t.data, t.dtype, k, (o == 1u ? hs : cs)[k]);
    }
    return THINKER_OK;
}
