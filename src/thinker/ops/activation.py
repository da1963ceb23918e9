"""Relu, Clip and PRelu on integer tensors (bounds compare raw integers, as in ONNX)."""

from __future__ import annotations

import math

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.base import Op, const_input, exponent, input_exponent, int_dtype, register, spec


@register
class Relu(Op):
    op_type = "Relu"

    def infer(self, node, ins):
        return [spec(ins[0].shape, ins[0].dtype, ins[0].exponent)]

    def prepare(self, node, ins, outs):
        dtype = np.dtype(ins[0].dtype)
        zero = dtype.type(0)
        if not np.issubdtype(dtype, np.integer):
            return lambda x, *_: (np.maximum(x, zero),)
        top = dtype.type(np.iinfo(dtype).max)

        def run(x, *_):
            # the same integers as maximum(x, 0); numpy's clip has a SIMD loop for a
            # same-dtype scalar pair, maximum against a scalar does not (~7x slower on int8)
            return (np.clip(x, zero, top),)

        return run


def clip_bounds(node: Node, ins: list[Tensor]) -> tuple[float, float]:
    """Clip bounds from inputs 1, 2 (opset >= 11) or attributes min/max (older opsets)."""
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    if len(ins) > 1 and ins[1] is not None:
        lo = const_input(node, ins, 1, "min").item()
    if len(ins) > 2 and ins[2] is not None:
        hi = const_input(node, ins, 2, "max").item()
    return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))


@register
class Clip(Op):
    """y = min(max(x, min), max) on the stored integers (no scale conversion)."""

    op_type = "Clip"
    attrs = {"min": None, "max": None}
    max_inputs = 3

    def infer(self, node, ins):
        clip_bounds(node, ins)
        return [spec(ins[0].shape, ins[0].dtype, ins[0].exponent)]

    def prepare(self, node, ins, outs):
        lo, hi = clip_bounds(node, ins)
        dtype = ins[0].dtype
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            lo = info.min if lo == -math.inf else min(max(math.ceil(lo), info.min), info.max)
            hi = info.max if hi == math.inf else max(min(math.floor(hi), info.max), info.min)

        def run(x, *_):
            return (np.clip(x, dtype.type(lo), dtype.type(hi)),)

        return run


@register
class PRelu(Op):
    """Quantized PRelu: x >= 0 -> rescale(x, qx - qo); x < 0 -> rescale(x * slope, qx + qw - qo).
    The slope is an integer constant at ``scale_w`` broadcastable to x (e.g. [C, 1, 1]);
    ``scale_o`` defaults to the input scale."""

    op_type = "PRelu"
    attrs = {"scale_x": None, "scale_w": None, "scale_o": None, "o_bits": 8}
    min_inputs = max_inputs = 2

    def _exponents(self, node, ins) -> tuple[int, int, int]:
        qx = input_exponent(node, "scale_x", ins[0])
        slope = ins[1]
        if slope.data is None or not np.issubdtype(slope.data.dtype, np.integer):
            raise ThinkerModelError(
                f"{node.label()}: slope {slope.describe()} must be an integer constant with "
                "attribute scale_w; quantize the PRelu slope at export"
            )
        qw = exponent(node, "scale_w")
        qo = exponent(node, "scale_o") if node.attrs.get("scale_o") is not None else qx
        return qx, qw, qo

    def infer(self, node, ins):
        _, _, qo = self._exponents(node, ins)
        bits = int(node.attrs.get("o_bits") or 8)
        return [spec(ins[0].shape, int_dtype(node, bits), qo)]

    def prepare(self, node, ins, outs):
        qx, qw, qo = self._exponents(node, ins)
        slope = ins[1].data.astype(np.int64)
        bits, dtype = int(node.attrs.get("o_bits") or 8), outs[0].dtype

        def run(x, *_):
            xi = x.astype(np.int64)
            pos = qmath.rescale(xi, qx - qo, bits)
            neg = qmath.rescale(xi * slope, qx + qw - qo, bits)
            return (np.where(xi >= 0, pos, neg).astype(dtype),)

        return run
