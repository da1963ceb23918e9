/* The op types of this build as THINKER_OP_<type> 1 (op_table.c lists them; kernels shared by
 * several types compile only the listed types' branches): a generated header (make OPS=... or
 * OPS_FROM=model.bin writes thinker_op_select.h and defines THINKER_OP_SELECTION), else every op. */
#ifndef THINKER_OP_SELECT_H
#define THINKER_OP_SELECT_H

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

#endif
