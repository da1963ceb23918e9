/* Every op kernel: a prepare step (validate attributes and shapes once, prove accumulator
 * widths, size the scratch) and a run step (pure compute on the arenas). One pair per op type;
 * op_table.c lists the ones compiled in. */
#ifndef THINKER_OPS_H
#define THINKER_OPS_H

#include "../qmath.h"
#include "../thinker_internal.h"

#define THK_OP(name)                                                                          \
    thinker_status thk_##name##_prepare(const thinker_model *m, thk_op *op, thk_needs *needs, \
                                        thinker_message *msg);                                \
    thinker_status thk_##name##_run(thk_run_ctx *ctx)

THK_OP(quant);
THK_OP(dequant);
THK_OP(requant);
THK_OP(conv1d);
THK_OP(conv2d);
THK_OP(conv_transpose2d);
THK_OP(linear);
THK_OP(batchnorm2d);
THK_OP(avgpool2d);
THK_OP(maxpool);
THK_OP(relu);
THK_OP(clip);
THK_OP(prelu);
THK_OP(iqadd);
THK_OP(iqsub);
THK_OP(iqmul);
THK_OP(iqcat);
THK_OP(reshape);
THK_OP(transpose);
THK_OP(slice);
THK_OP(split);
THK_OP(concat);
THK_OP(pad);
THK_OP(gather);
THK_OP(iqsigmoid);
THK_OP(iqtanh);
THK_OP(softmax);
THK_OP(layernorm);
THK_OP(logsoftmax);
THK_OP(glu);
THK_OP(iqdiv);
THK_OP(bmm);
THK_OP(iqsum);
THK_OP(iqvar);
THK_OP(resize);
THK_OP(rnn); /* GRUInt and LSTMInt */

/* accumulate.c: the output stage shared by conv, linear and batchnorm (ops/accumulate.py) */
thinker_status thk_outstage_prepare(const thinker_model *m, const thk_op *op, const thk_tensor *x,
                                    uint64_t weight_abs_sum, const thk_tensor *bias,
                                    uint32_t channels, const char *weight_key,
                                    const thk_tensor *out, thk_outstage *st, thinker_message *msg);
/* writes element `index` of `out` from an exact accumulator (bias included) */
void thk_outstage_store(const thk_outstage *st, const thk_tensor *out, uint32_t index, int64_t acc);
/* bias[channel] (0 without bias; a single bias value broadcasts) */
int64_t thk_bias_at(const thk_tensor *bias, int has_bias, uint32_t channel);
/* |x| bound of an integer dtype (numpy iinfo), saturating products */
uint64_t thk_magnitude(uint32_t dtype);
uint64_t thk_mul_sat(uint64_t a, uint64_t b);
uint64_t thk_add_sat(uint64_t a, uint64_t b);
/* largest sum of |w| over the `per_out` weights feeding each of `outs` outputs, where weight
 * (o, k) sits at index o * stride_o + k * stride_k (conv: contiguous rows). */
uint64_t thk_weight_abs_sum(const thk_tensor *w, uint32_t outs, uint32_t per_out,
                            uint32_t stride_o, uint32_t stride_k);

/* element-wise helpers (elementwise.c) */
typedef struct {
    uint32_t ndim;
    uint32_t dims[THINKER_MAX_DIMS];
    uint32_t stride_a[THINKER_MAX_DIMS], stride_b[THINKER_MAX_DIMS];
} thk_broadcast;
/* numpy broadcasting of a and b to `out`'s shape: 1 when out is exactly the broadcast shape */
int thk_broadcast_init(thk_broadcast *bc, const thk_tensor *a, const thk_tensor *b, const thk_tensor *out);
/* input exponent: the node's scale attribute when present, else the tensor's exponent */
int thk_input_exponent(const thk_op *op, const char *key, const thk_tensor *t, int32_t *q);

/* nonlinear.c, shared with rnn.c: the kernel family of an op (`platform`, else `platform_quant`,
 * else venus) and the family's sigmoid/tanh table on v at its input Q (the table's own output Q,
 * venusA's Q58 unrounded). Ids as nonlinear_tables.h numbers them (checked there). */
#define THK_FAMILY_VENUS 0
#define THK_FAMILY_VENUSA 2
#define THK_SIGMOID 0
#define THK_TANH 1
thinker_status thk_nl_family(const thinker_model *m, const thk_op *op, uint8_t *family, thinker_message *msg);
int64_t thk_pwl(uint32_t family, uint32_t function, int64_t v);

/* rounding mode of an op (rounding.c): its quant_mode attribute as THK_ROUND_* (floor_add
 * when absent); 0 when the attribute is not a known mode */
int thk_round_mode(const thinker_model *m, const thk_op *op, uint8_t *mode);

/* the o_bits attribute (`bits` when absent) as the output range [lo, hi]; the output's dtype
 * must be that width's (elementwise.c) */
thinker_status thk_o_bits(const thk_op *op, int64_t bits, const thk_tensor *out, int64_t *lo, int64_t *hi,
                          thinker_message *msg);

/* shared error text */
#define THK_BAD(what) return thk_bad(msg, op, what)
#define THK_TRY(call)                           \
    do {                                        \
        thinker_status thk_s_ = (call);         \
        if (thk_s_ != THINKER_OK) return thk_s_; \
    } while (0)

#endif
