"""The ONNX dialects thinker reads, mapped to one internal form.

* ``thinker`` dialect (original linger exports): op names as the runtime knows them
  (``Conv2dInt``, ``iqAdd``, ...) plus standard ONNX ops on integer tensors.
* newer linger exports (domain ``linger``): ``QConv2d``, ``QLinear``, ``QAdd``, ... with
  ``x_bits``/``w_bits``; renamed here, attributes included.
"""

from __future__ import annotations

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node

# newer linger class names -> canonical op type
OP_RENAMES = {
    "QConv1d": "Conv1dInt",
    "QConv2d": "Conv2dInt",
    "QConvBN1d": "Conv1dInt",
    "QConvBN2d": "Conv2dInt",
    "QConvTranspose2d": "ConvTranspose2dInt",
    "QConvTransposeBN2d": "ConvTranspose2dInt",
    "QLinear": "LinearInt",
    "QBatchNorm1d": "BatchNorm2dInt",
    "QBatchNorm2d": "BatchNorm2dInt",
    "QLayerNorm": "LayerNormInt",
    "QLayerNorm2d": "LayerNormInt",
    "QAvgPool1d": "AvgPool2dInt",
    "QAvgPool2d": "AvgPool2dInt",
    "QGlobalAveragePool2d": "AvgPool2dInt",
    "QMaxPool1d": "MaxPool",
    "QMaxPool2d": "MaxPool",
    "MaxPool2dInt": "MaxPool",
    "QRelu": "Relu",
    "QAdd": "iqAdd",
    "QMul": "iqMul",
    "QCat": "iqCat",
    "QBmm": "BmmInt",
    "QMatmul": "BmmInt",
    "QSigmoid": "iqSigmoid",
    "QTanh": "iqTanh",
    "QSoftmax": "SoftmaxInt",
    "QGLU": "GluInt",
    "QLogSoftmax": "LogSoftmaxInt",
    "QGRU": "GRUInt",
    "QLSTM": "LSTMInt",
}

# newer linger attribute names -> canonical
ATTR_RENAMES = {
    "x_bits": "data_bits",
    "w_bits": "parameter_bits",
    "stride": "strides",
    "scale_i": "scale_x",
}

# thinker implements the contract's rounding: floor(x + 0.5), i.e. linger's 'floor_add'
SUPPORTED_QUANT_MODES = ("floor_add",)


def canonical_op_type(op_type: str) -> str:
    return OP_RENAMES.get(op_type, op_type)


def normalize_attrs(node: Node) -> list[str]:
    """Rename attributes in place; return problems (rounding modes thinker cannot honour)."""
    for old, new in ATTR_RENAMES.items():
        if old in node.attrs and new not in node.attrs:
            node.attrs[new] = node.attrs.pop(old)
    problems = []
    mode = node.attrs.get("quant_mode")
    if mode is not None and mode not in SUPPORTED_QUANT_MODES:
        problems.append(
            f"{node.label()}: quant_mode '{mode}' is not supported; thinker rounds with "
            "floor(x + 0.5) ('floor_add'): re-export with quant_mode floor_add"
        )
    zero_point = node.attrs.get("zero_point")
    if zero_point not in (None, 0):
        problems.append(
            f"{node.label()}: zero_point {zero_point} is not supported; thinker quantization is "
            "symmetric (zero_point 0)"
        )
    return problems


def check_scales(node: Node) -> list[str]:
    """Every ``scale*`` attribute must be an exact power of two."""
    from thinker.qmath import exponent_of_scale

    problems = []
    for key, value in node.attrs.items():
        if key.startswith("scale") and isinstance(value, float):
            try:
                exponent_of_scale(value, f"{node.label()} attribute {key}")
            except ThinkerModelError as exc:
                problems.append(str(exc))
    return problems
