/* The output stage of every op that builds an integer accumulator (thinker/ops/accumulate.py):
 * acc + bias (already at q_x + q_w), then with o_bits rescale(acc, q_x + q_w - q_o) saturated
 * to o_bits and clamped by a fused activation; without o_bits float32(acc / 2**(q_x + q_w)).
 *
 * The numpy executor refuses a layer whose folded accumulator bound reaches 2**53 (its float
 * GEMM would no longer be exact); this stage refuses the same layers so both executors accept
 * the same models. Independently it proves whether the sum of products fits int32. */
#include "ops.h"

uint64_t thk_mul_sat(uint64_t a, uint64_t b) {
    if (a && b > thk_udivmod64(UINT64_MAX / 2, a, NULL)) return UINT64_MAX / 2;
    return a * b;
}

uint64_t thk_add_sat(uint64_t a, uint64_t b) {
    uint64_t s = a + b;
    return (s < a || s > UINT64_MAX / 2) ? UINT64_MAX / 2 : s;
}

uint64_t thk_magnitude(uint32_t dtype) {
    switch (dtype) {
    case THINKER_INT8: return 128u;
    case THINKER_UINT8: return 255u;
    case THINKER_INT16: return 32768u;
    case THINKER_INT32: return (uint64_t)1 << 31;
    default: return (uint64_t)1 << 63; /* int64 */
    }
}

static uint64_t abs64(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

uint64_t thk_weight_abs_sum(const thk_tensor *w, uint32_t outs, uint32_t per_out,
                            uint32_t stride_o, uint32_t stride_k) {
    uint64_t best = 0;
    uint32_t o, k;
    for (o = 0; o < outs; o++) {
        uint64_t sum = 0;
        for (k = 0; k < per_out; k++)
            sum = thk_add_sat(sum, abs64(thk_load_int(w->init, w->dtype, o * stride_o + k * stride_k)));
        if (sum > best) best = sum;
    }
    return best;
}

int64_t thk_bias_at(const thk_tensor *bias, int has_bias, uint32_t channel) {
    if (!has_bias) return 0;
    return thk_load_int(bias->data, bias->dtype, bias->count == 1 ? 0 : channel);
}

thinker_status thk_outstage_prepare(const thinker_model *m, const thk_op *op, const thk_tensor *x,
                                    uint64_t weight_abs_sum, const thk_tensor *bias,
                                    uint32_t channels, const char *weight_key,
                                    const thk_tensor *out, thk_outstage *st, thinker_message *msg) {
    int32_t qx, qw, qo;
    int64_t bits, v, clip[2];
    uint64_t bias_max = 0, products, bound;
    uint32_t i, dtype;
    int has_bits;
    memset(st, 0, sizeof *st);
    thk_round_mode(m, op, &st->round_mode); /* a known mode: thk_check_op_rules */
    if (!thk_is_int(x->dtype)) THK_BAD("input must be an integer tensor");
    if (thk_attr_exponent(op, "scale_x", &qx) != 1) THK_BAD("scale_x missing");
    if (thk_attr_exponent(op, weight_key, &qw) != 1) THK_BAD("scale_w missing");
    if (bias) { /* input 2 of its op: an integer constant (THK_RULE_WEIGHTS, thk_check_op_rules) */
        if (bias->count != 1 && bias->count != channels) THK_BAD("bias does not match channels");
        for (i = 0; i < bias->count; i++) {
            uint64_t a = abs64(thk_load_int(bias->init, bias->dtype, i));
            if (a > bias_max) bias_max = a;
        }
    }
    products = thk_mul_sat(thk_magnitude(x->dtype), weight_abs_sum);
    bound = thk_add_sat(products, bias_max);
    st->qin = qx + qw;
    st->acc32 = products < ((uint64_t)1 << 31);
    has_bits = thk_attr_int(op, "o_bits", &bits);
    if (!has_bits && thk_streq(op->type, "BatchNorm2dInt")) {
        bits = 8; /* numpy's default there; conv and linear default to a float output */
        has_bits = 1;
    }
    if (!has_bits) { /* float output */
        st->out_float = 1;
        if (out->dtype != THINKER_FLOAT32) THK_BAD("output dtype does not match o_bits");
    } else {
        uint64_t offset, half;
        if (!thk_bits_range(bits, &st->lo, &st->hi, &dtype)) THK_BAD("o_bits must be 4, 8, 16 or 32");
        if (out->dtype != dtype) THK_BAD("output dtype does not match o_bits");
        if (thk_attr_exponent(op, "scale_o", &qo) != 1) THK_BAD("scale_o missing");
        st->shift = st->qin - qo;
        /* qmath.folded_bound */
        offset = (uint64_t)1 << (bits - 1);
        if (st->shift >= 0) {
            half = st->shift > 0 ? (st->shift > 62 ? UINT64_MAX / 2 : (uint64_t)1 << (st->shift - 1)) : 0;
            /* qmath.folded_half: floor adds nothing, ceil 2**s - 1 */
            if (st->round_mode == THK_ROUND_FLOOR) half = 0;
            else if (st->round_mode == THK_ROUND_CEIL && st->shift > 0)
                half = st->shift > 62 ? UINT64_MAX / 2 : ((uint64_t)1 << st->shift) - 1u;
            bound = thk_add_sat(thk_add_sat(bound, half),
                                st->shift > 62 ? UINT64_MAX / 2 : thk_mul_sat(offset, (uint64_t)1 << st->shift));
        } else {
            bound = thk_add_sat(-st->shift > 62 ? (bound ? UINT64_MAX / 2 : 0)
                                                : thk_mul_sat(bound, (uint64_t)1 << -st->shift), offset);
        }
        if (thk_attr_ints(op, "fused_clip", clip, 2) == 2) { /* else absent: 2 ints (attribute rules) */
            if (clip[0] > st->lo) st->lo = clip[0];
            if (clip[1] < st->hi) st->hi = clip[1];
        } else if (thk_attr_int(op, "act_type", &v) && v == 1) {
            if (st->lo < 0) st->lo = 0; /* ReLU: clamp (0, 2**31 - 1) */
        }
    }
    if (bound >= ((uint64_t)1 << 53)) THK_BAD("accumulator bound exceeds 2**53");
    return THINKER_OK;
}

void thk_outstage_store(const thk_outstage *st, const thk_tensor *out, uint32_t index, int64_t acc) {
    if (st->out_float) {
        uint32_t bits = thk_scaled_f32_bits(acc, st->qin);
        memcpy((float *)out->data + index, &bits, 4);
        return;
    }
    acc = st->round_mode ? thk_rescale_mode(acc, st->shift, st->round_mode, st->lo, st->hi)
                         : thk_rescale(acc, st->shift, st->lo, st->hi);
    switch (out->dtype) {
    case THINKER_INT8: ((int8_t *)out->data)[index] = (int8_t)acc; break;
    case THINKER_INT16: ((int16_t *)out->data)[index] = (int16_t)acc; break;
    default: ((int32_t *)out->data)[index] = (int32_t)acc; break;
    }
}
