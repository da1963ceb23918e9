/* The ops compiled into this build: a plain table resolved by name at model init.
 *
 * A build selects ops with a generated header (make OPS="Conv2dInt iqAdd ..." or
 * make OPS_FROM=model.bin writes thinker_op_select.h and defines THINKER_OP_SELECTION); without
 * one every op is in. Unlisted kernels are never referenced, so the linker drops them
 * (-ffunction-sections, --gc-sections). */
#include "ops/ops.h"

#ifdef THINKER_OP_SELECTION
#include "thinker_op_select.h"
#else
#define THINKER_OP_Quant 1
#define THINKER_OP_Dequant 1
#define THINKER_OP_Requant 1
#define THINKER_OP_Conv1dInt 1
#define THINKER_OP_Conv2dInt 1
#define THINKER_OP_ConvTranspose2dInt 1
#define THINKER_OP_LinearInt 1
#define THINKER_OP_BatchNorm2dInt 1
#define THINKER_OP_AvgPool2dInt 1
#define THINKER_OP_MaxPool 1
#define THINKER_OP_Relu 1
#define THINKER_OP_Clip 1
#define THINKER_OP_PRelu 1
#define THINKER_OP_iqAdd 1
#define THINKER_OP_iqSub 1
#define THINKER_OP_iqMul 1
#define THINKER_OP_iqCat 1
#define THINKER_OP_iqPad 1
#define THINKER_OP_Pad 1
#define THINKER_OP_Reshape 1
#define THINKER_OP_Flatten 1
#define THINKER_OP_Squeeze 1
#define THINKER_OP_Unsqueeze 1
#define THINKER_OP_Transpose 1
#define THINKER_OP_Slice 1
#define THINKER_OP_Split 1
#define THINKER_OP_Concat 1
#define THINKER_OP_Gather 1
#define THINKER_OP_iqSigmoid 1
#define THINKER_OP_iqTanh 1
#define THINKER_OP_SoftmaxInt 1
#define THINKER_OP_LayerNormInt 1
#define THINKER_OP_LogSoftmaxInt 1
#define THINKER_OP_GluInt 1
#define THINKER_OP_iqDiv 1
#define THINKER_OP_BmmInt 1
#define THINKER_OP_iqSum 1
#define THINKER_OP_iqVar 1
#define THINKER_OP_Resize 1
#define THINKER_OP_GRUInt 1
#define THINKER_OP_LSTMInt 1
#endif

#define ENTRY(type, fn) {type, thk_##fn##_prepare, thk_##fn##_run},

static const thk_op_def k_ops[] = {
#if THINKER_OP_Quant
    ENTRY("Quant", quant)
#endif
#if THINKER_OP_Dequant
    ENTRY("Dequant", dequant)
#endif
#if THINKER_OP_Requant
    ENTRY("Requant", requant)
#endif
#if THINKER_OP_Conv1dInt
    ENTRY("Conv1dInt", conv1d)
#endif
#if THINKER_OP_Conv2dInt
    ENTRY("Conv2dInt", conv2d)
#endif
#if THINKER_OP_ConvTranspose2dInt
    ENTRY("ConvTranspose2dInt", conv_transpose2d)
#endif
#if THINKER_OP_LinearInt
    ENTRY("LinearInt", linear)
#endif
#if THINKER_OP_BatchNorm2dInt
    ENTRY("BatchNorm2dInt", batchnorm2d)
#endif
#if THINKER_OP_AvgPool2dInt
    ENTRY("AvgPool2dInt", avgpool2d)
#endif
#if THINKER_OP_MaxPool
    ENTRY("MaxPool", maxpool)
#endif
#if THINKER_OP_Relu
    ENTRY("Relu", relu)
#endif
#if THINKER_OP_Clip
    ENTRY("Clip", clip)
#endif
#if THINKER_OP_PRelu
    ENTRY("PRelu", prelu)
#endif
#if THINKER_OP_iqAdd
    ENTRY("iqAdd", iqadd)
#endif
#if THINKER_OP_iqSub
    ENTRY("iqSub", iqsub)
#endif
#if THINKER_OP_iqMul
    ENTRY("iqMul", iqmul)
#endif
#if THINKER_OP_iqCat
    ENTRY("iqCat", iqcat)
#endif
#if THINKER_OP_iqPad
    ENTRY("iqPad", pad)
#endif
#if THINKER_OP_Pad
    ENTRY("Pad", pad)
#endif
#if THINKER_OP_Reshape
    ENTRY("Reshape", reshape)
#endif
#if THINKER_OP_Flatten
    ENTRY("Flatten", reshape)
#endif
#if THINKER_OP_Squeeze
    ENTRY("Squeeze", reshape)
#endif
#if THINKER_OP_Unsqueeze
    ENTRY("Unsqueeze", reshape)
#endif
#if THINKER_OP_Transpose
    ENTRY("Transpose", transpose)
#endif
#if THINKER_OP_Slice
    ENTRY("Slice", slice)
#endif
#if THINKER_OP_Split
    ENTRY("Split", split)
#endif
#if THINKER_OP_Concat
    ENTRY("Concat", concat)
#endif
#if THINKER_OP_Gather
    ENTRY("Gather", gather)
#endif
#if THINKER_OP_iqSigmoid
    ENTRY("iqSigmoid", iqsigmoid)
#endif
#if THINKER_OP_iqTanh
    ENTRY("iqTanh", iqtanh)
#endif
#if THINKER_OP_SoftmaxInt
    ENTRY("SoftmaxInt", softmax)
#endif
#if THINKER_OP_LayerNormInt
    ENTRY("LayerNormInt", layernorm)
#endif
#if THINKER_OP_LogSoftmaxInt
    ENTRY("LogSoftmaxInt", logsoftmax)
#endif
#if THINKER_OP_GluInt
    ENTRY("GluInt", glu)
#endif
#if THINKER_OP_iqDiv
    ENTRY("iqDiv", iqdiv)
#endif
#if THINKER_OP_BmmInt
    ENTRY("BmmInt", bmm)
#endif
#if THINKER_OP_iqSum
    ENTRY("iqSum", iqsum)
#endif
#if THINKER_OP_iqVar
    ENTRY("iqVar", iqvar)
#endif
#if THINKER_OP_Resize
    ENTRY("Resize", resize)
#endif
#if THINKER_OP_GRUInt
    ENTRY("GRUInt", rnn)
#endif
#if THINKER_OP_LSTMInt
    ENTRY("LSTMInt", rnn)
#endif
    {NULL, NULL, NULL} /* end (also keeps the table non-empty) */
};

const thk_op_def *thk_find_op(const char *type) {
    const thk_op_def *d;
    for (d = k_ops; d->type; d++)
        if (thk_streq(d->type, type)) return d;
    return NULL;
}
