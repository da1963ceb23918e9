"""The ONNX dialects thinker reads, mapped to one internal form.

* ``thinker`` dialect (original linger exports): op names as the runtime knows them
  (``Conv2dInt``, ``iqAdd``, ...) plus standard ONNX ops on integer tensors.
* newer linger exports (domain ``linger``): ``QConv2d``, ``QLinear``, ``QAdd``, ... with
  ``x_bits``/``w_bits``; renamed here, attributes included.
"""

from __future__ import annotations

import numpy as np

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

# the rounding modes thinker honours (which ops honour them: thinker.ops.rounding)
SUPPORTED_QUANT_MODES = ("floor_add", "floor", "round", "ceil")


def canonical_op_type(op_type: str) -> str:
    return OP_RENAMES.get(op_type, op_type)


def normalize_attrs(node: Node) -> list[str]:
    """Rename attributes in place; return problems (rounding modes an op cannot honour)."""
    for old, new in ATTR_RENAMES.items():
        if old in node.attrs and new not in node.attrs:
            node.attrs[new] = node.attrs.pop(old)
    from thinker.ops.rounding import mode_problem

    problems = []
    if isinstance(node.attrs.get("quant_mode"), bytes):
        node.attrs["quant_mode"] = node.attrs["quant_mode"].decode("utf-8", "replace")
    problem = mode_problem(node)
    if problem is not None:
        problems.append(problem)
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


RECURRENT_OPS = ("GRUInt", "LSTMInt")


def quantize_recurrent_states(graph) -> None:
    """The original linger's GRU export hands h0 to the node as it is (float), where its LSTM
    export quantizes it (``Quant`` at ``scale_h``, x_bits; c0 int32 at ``scale_c``): give a float
    initial state that Quant, so both forms import."""
    for node in list(graph.nodes):
        if node.op_type not in RECURRENT_OPS:
            continue
        try:  # as the op reads them (a malformed attribute is the op's to report)
            has_h = int(bool(int(node.attrs.get("has_hidden") or 0)))
            has_c = node.op_type == "LSTMInt" and bool(int(node.attrs.get("has_cell") or 0))
        except (TypeError, ValueError):
            continue
        bits = node.attrs.get("data_bits") or 8
        states = ([(1, "h0", node.attrs.get("scale_h"), bits if isinstance(bits, int) else 8)]
                  if has_h else [])
        if has_c:
            states.append((1 + has_h, "c0", node.attrs.get("scale_c") or 32768.0, 32))
        for pos, what, scale, bits in states:
            name = node.inputs[pos] if pos < len(node.inputs) else ""
            t = graph.tensors.get(name)
            if t is None or t.is_constant or not np.issubdtype(t.dtype, np.floating) or \
                    scale is None:
                continue
            quantized = f"{node.name}_{what}_quant"
            while quantized in graph.tensors:
                quantized += "_"
            graph.nodes.insert(graph.nodes.index(node), Node(
                "Quant", quantized, [name], [quantized],
                {"scale_x": float(scale), "data_bits": bits}))
            node.inputs[pos] = quantized

