"""Quant (float -> int), Dequant (int -> float) and Requant (int -> int at another exponent)."""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.base import REQUIRED, Op, exponent, int_dtype, out_bits, register, spec
from thinker.ops.rounding import node_round_mode


@register
class Quant(Op):
    """y = saturate(floor(x * 2**q + 0.5)) with q = log2(scale_x), ``data_bits`` wide (another
    ``quant_mode`` rounds x * 2**q its way)."""

    op_type = "Quant"
    attrs = {"scale_x": REQUIRED, "data_bits": 8, "quant_mode": None}

    def infer(self, node: Node, ins: list[Tensor]) -> list[Tensor]:
        bits = int(node.attrs["data_bits"])
        return [spec(ins[0].shape, int_dtype(node, bits), exponent(node, "scale_x"))]

    def prepare(self, node, ins, outs):
        q, bits, dtype = exponent(node, "scale_x"), int(node.attrs["data_bits"]), outs[0].dtype
        mode = node_round_mode(node)

        def run(x, *_):
            return (qmath.quantize_mode(x, q, bits, mode).astype(dtype),)

        return run


@register
class Dequant(Op):
    """y = x / 2**q as float32. The exponent comes from ``scale_o`` (or ``scale_x``)."""

    op_type = "Dequant"
    attrs = {"scale_o": None, "scale_x": None}

    def _exponent(self, node: Node) -> int:
        for key in ("scale_o", "scale_x"):
            if node.attrs.get(key) is not None:
                return exponent(node, key)
        raise ThinkerModelError(f"{node.label()}: needs attribute scale_o (or scale_x)")

    def infer(self, node, ins):
        self._exponent(node)
        return [spec(ins[0].shape, np.float32)]

    def prepare(self, node, ins, outs):
        q = self._exponent(node)

        def run(x, *_):
            return (qmath.dequantize(x, q),)

        return run


@register
class Requant(Op):
    """y = saturate(rshift_round(x, qx - qo)) at ``o_bits``: a left shift when widening."""

    op_type = "Requant"
    attrs = {"scale_x": REQUIRED, "scale_o": REQUIRED, "data_bits": 8, "o_bits": 8,
             "quant_mode": None}

    def infer(self, node, ins):
        bits = out_bits(node)
        return [spec(ins[0].shape, int_dtype(node, bits), exponent(node, "scale_o"))]

    def prepare(self, node, ins, outs):
        shift = exponent(node, "scale_x") - exponent(node, "scale_o")
        bits, dtype = out_bits(node), outs[0].dtype
        mode = node_round_mode(node)

        def run(x, *_):
            return (qmath.rescale_mode(x, shift, bits, mode).astype(dtype),)

        return run
