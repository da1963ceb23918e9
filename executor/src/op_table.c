/* The ops compiled into this build: a plain table resolved by name at model init.
 *
 * A build selects ops with a generated header (make OPS="Conv2dInt iqAdd ..." or
 * make OPS_FROM=model.bin writes thinker_op_select.h and defines THINKER_OP_SELECTION); without
 * one every op is in. Unlisted kernels are never referenced, so the linker drops them
 * (-ffunction-sections, --gc-sections). */
#include "ops/ops.h"

#include "op_select.h"

/* ENTRY(type, kernel, min inputs, max inputs (ANY: no limit), optional inputs, rule flags,
 * op rules): the counts, optional inputs and quant_mode support are those of the numpy op
 * (thinker.ops.OPS, thinker.ops.rounding.MODE_OPS; tests/fuzz checks this copy) */
#define ENTRY(type, fn, min_in, max_in, optional, flags, rules) \
    {type, thk_##fn##_prepare, thk_##fn##_run, rules, min_in, max_in, optional, flags},
#define ANY 0
#define R_MODE THK_RULE_MODE
#define R_FLOAT_OUT THK_RULE_FLOAT_OUT
#define R_WEIGHTS THK_RULE_WEIGHTS
#define R_WEIGHT THK_RULE_WEIGHT
#define R_RECURRENT THK_RULE_RECURRENT
#define R_OPERAND THK_RULE_OPERAND
#define R_OPERANDS THK_RULE_OPERANDS

static const thk_op_def k_ops[] = {
#if THINKER_OP_Quant
    ENTRY("Quant", quant, 1, 1, 0, R_MODE, NULL)
#endif
#if THINKER_OP_Dequant
    ENTRY("Dequant", dequant, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_Requant
    ENTRY("Requant", requant, 1, 1, 0, R_MODE, NULL)
#endif
#if THINKER_OP_Conv1dInt
    ENTRY("Conv1dInt", conv1d, 2, 3, 0, R_MODE | R_FLOAT_OUT | R_WEIGHTS, thk_conv_rules)
#endif
#if THINKER_OP_Conv2dInt
    ENTRY("Conv2dInt", conv2d, 2, 3, 0, R_MODE | R_FLOAT_OUT | R_WEIGHTS, thk_conv_rules)
#endif
#if THINKER_OP_ConvTranspose2dInt
    ENTRY("ConvTranspose2dInt", conv_transpose2d, 2, 3, 0, R_MODE | R_FLOAT_OUT | R_WEIGHTS, thk_conv_rules)
#endif
#if THINKER_OP_LinearInt
    ENTRY("LinearInt", linear, 2, 3, 0, R_MODE | R_FLOAT_OUT | R_WEIGHTS, NULL)
#endif
#if THINKER_OP_BatchNorm2dInt
    ENTRY("BatchNorm2dInt", batchnorm2d, 3, 5, 0, R_MODE | R_WEIGHTS, NULL)
#endif
#if THINKER_OP_AvgPool2dInt
    ENTRY("AvgPool2dInt", avgpool2d, 1, 1, 0, R_MODE, thk_avgpool_rules)
#endif
#if THINKER_OP_MaxPool
    ENTRY("MaxPool", maxpool, 1, 1, 0, 0, thk_maxpool_rules)
#endif
#if THINKER_OP_Relu
    ENTRY("Relu", relu, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_Clip
    ENTRY("Clip", clip, 1, 3, 0, 0, thk_clip_rules)
#endif
#if THINKER_OP_PRelu
    ENTRY("PRelu", prelu, 2, 2, 0, R_WEIGHT, NULL)
#endif
#if THINKER_OP_iqAdd
    ENTRY("iqAdd", iqadd, 2, 2, 0, R_MODE, NULL)
#endif
#if THINKER_OP_iqSub
    ENTRY("iqSub", iqsub, 2, 2, 0, R_MODE, NULL)
#endif
#if THINKER_OP_iqMul
    ENTRY("iqMul", iqmul, 2, 2, 0, R_MODE, NULL)
#endif
#if THINKER_OP_iqCat
    ENTRY("iqCat", iqcat, 1, ANY, 0, R_MODE, NULL)
#endif
#if THINKER_OP_iqPad
    ENTRY("iqPad", pad, 1, 4, 0, R_OPERAND, thk_pad_rules)
#endif
#if THINKER_OP_Pad
    ENTRY("Pad", pad, 1, 4, 0, R_OPERAND, thk_pad_rules)
#endif
#if THINKER_OP_Reshape
    ENTRY("Reshape", reshape, 1, 2, 0, R_OPERAND, NULL)
#endif
#if THINKER_OP_Flatten
    ENTRY("Flatten", reshape, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_Squeeze
    ENTRY("Squeeze", reshape, 1, 2, 0, R_OPERAND, NULL)
#endif
#if THINKER_OP_Unsqueeze
    ENTRY("Unsqueeze", reshape, 1, 2, 0, R_OPERAND, NULL)
#endif
#if THINKER_OP_Transpose
    ENTRY("Transpose", transpose, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_Slice
    ENTRY("Slice", slice, 1, 5, 0, R_OPERANDS, NULL)
#endif
#if THINKER_OP_Split
    ENTRY("Split", split, 1, 2, 0, R_OPERAND, NULL)
#endif
#if THINKER_OP_Concat
    ENTRY("Concat", concat, 1, ANY, 0, 0, NULL)
#endif
#if THINKER_OP_Gather
    ENTRY("Gather", gather, 2, 2, 0, 0, NULL)
#endif
#if THINKER_OP_iqSigmoid
    ENTRY("iqSigmoid", iqsigmoid, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_iqTanh
    ENTRY("iqTanh", iqtanh, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_SoftmaxInt
    ENTRY("SoftmaxInt", softmax, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_LayerNormInt
    ENTRY("LayerNormInt", layernorm, 2, 3, 0, R_WEIGHTS, NULL)
#endif
#if THINKER_OP_LogSoftmaxInt
    ENTRY("LogSoftmaxInt", logsoftmax, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_GluInt
    ENTRY("GluInt", glu, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_iqDiv
    ENTRY("iqDiv", iqdiv, 2, 2, 0, 0, NULL)
#endif
#if THINKER_OP_BmmInt
    ENTRY("BmmInt", bmm, 2, 2, 0, R_MODE, NULL)
#endif
#if THINKER_OP_iqSum
    ENTRY("iqSum", iqsum, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_iqVar
    ENTRY("iqVar", iqvar, 1, 1, 0, 0, NULL)
#endif
#if THINKER_OP_Resize
    ENTRY("Resize", resize, 2, 4, 1u << 1, 0, NULL)
#endif
#if THINKER_OP_GRUInt
    ENTRY("GRUInt", rnn, 3, 7, 0, R_RECURRENT, NULL)
#endif
#if THINKER_OP_LSTMInt
    ENTRY("LSTMInt", rnn, 3, 7, 0, R_RECURRENT, NULL)
#endif
    {NULL, NULL, NULL, NULL, 0, 0, 0, 0} /* end (also keeps the table non-empty) */
};

const thk_op_def *thk_find_op(const char *type) {
    const thk_op_def *d;
    for (d = k_ops; d->type; d++)
        if (thk_streq(d->type, type)) return d;
    return NULL;
}
