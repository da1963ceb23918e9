"""Fixed-point non-linear ops: iqSigmoid, iqTanh, SoftmaxInt, LayerNormInt.

Their integers are the original linger's per kernel family (``thinker.nonlinear``; the
``platform`` attribute picks the family, default venus). Each algorithm is written out in
docs/ops.md.
"""

from __future__ import annotations

import math

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.nonlinear import layernorm as ln
from thinker.nonlinear import logarithm, pwl, softmax
from thinker.nonlinear.tables import family_of
from thinker.ops.base import (
    REQUIRED,
    Op,
    const_input,
    exponent,
    input_exponent,
    int_dtype,
    out_bits,
    register,
    spec,
)

# older thinker-dialect exports name the platform by its quantization library
PLATFORM_QUANT = {"luna_quant": "venus"}
NONLINEAR_ATTRS = {"scale_x": None, "scale_o": REQUIRED, "o_bits": 8, "data_bits": 8,
                   "platform": None, "platform_quant": None}


def platform_of(node: Node) -> str:
    """The kernel family of a node: its ``platform`` attribute, else ``platform_quant``, else
    venus (the original's default)."""
    value = node.attrs.get("platform")
    if value is None:
        value = PLATFORM_QUANT.get(str(node.attrs.get("platform_quant")))
    return family_of(value, f"{node.label()} attribute platform")


def integer_input(node: Node, x: Tensor) -> None:
    if not np.issubdtype(x.dtype, np.integer):
        raise ThinkerModelError(
            f"{node.label()}: input {x.describe()} must be an integer tensor; insert a Quant "
            "node before it")


def checked_exponent_gap(node: Node, what: str, gap: int, limit: int) -> None:
    """Refuse format conversions whose shifts would leave int64 (|gap| > limit bits)."""
    if abs(gap) > limit:
        raise ThinkerModelError(
            f"{node.label()}: {what} needs a {abs(gap)}-bit shift (limit {limit}); the input or "
            "output scale is extreme, re-export with a scale closer to the data")


def axis_of(node: Node, rank: int, default: int = -1) -> int:
    value = node.attrs.get("axis")
    if value is None:
        value = node.attrs.get("dim")
    axis = int(default if value is None else value)  # import fills absent attrs with None
    if not -rank <= axis < rank:
        raise ThinkerModelError(f"{node.label()}: axis {axis} is out of range for rank {rank}")
    return axis % rank


class _Elementwise(Op):
    """One integer input, one integer output of the same shape at ``scale_o``."""

    attrs = NONLINEAR_ATTRS
    cost_per_element = 4  # compare + multiply + shift + add

    def infer(self, node, ins):
        integer_input(node, ins[0])
        input_exponent(node, "scale_x", ins[0])
        platform_of(node)
        return [spec(ins[0].shape, int_dtype(node, out_bits(node)), exponent(node, "scale_o"))]

    def macs(self, node, ins, outs):
        return int(np.prod(outs[0].shape)) * self.cost_per_element


class _PiecewiseLinear(_Elementwise):
    function = ""

    def prepare(self, node, ins, outs):
        qx, qo = input_exponent(node, "scale_x", ins[0]), exponent(node, "scale_o")
        family, bits, dtype = platform_of(node), out_bits(node), outs[0].dtype
        table = pwl.pwl(family, self.function)
        checked_exponent_gap(node, "the kernel input conversion", qx - table.input_q,
                             pwl.MAX_FORMAT_SHIFT)
        checked_exponent_gap(node, "the output requantization", table.output_q - qo, 62)
        function = self.function

        def run(x, *_):
            return (pwl.activation(function, x, qx, qo, bits, family).astype(dtype),)

        return run


@register
class IqSigmoid(_PiecewiseLinear):
    op_type, function = "iqSigmoid", "sigmoid"


@register
class IqTanh(_PiecewiseLinear):
    op_type, function = "iqTanh", "tanh"


@register
class SoftmaxInt(_Elementwise):
    """Softmax over ``axis`` (``dim`` in older exports; default -1)."""

    op_type = "SoftmaxInt"
    attrs = {**NONLINEAR_ATTRS, "axis": None, "dim": None}
    cost_per_element = 12  # exp polynomial + normalisation

    def infer(self, node, ins):
        axis_of(node, len(ins[0].shape))
        return super().infer(node, ins)

    def prepare(self, node, ins, outs):
        axis = axis_of(node, len(ins[0].shape))
        qx, qo = input_exponent(node, "scale_x", ins[0]), exponent(node, "scale_o")
        family, bits, dtype = platform_of(node), out_bits(node), outs[0].dtype
        checked_exponent_gap(node, "the Q25 input conversion", qx - softmax.INPUT_Q, 48)
        checked_exponent_gap(node, "the output requantization", softmax.OUTPUT_Q - qo, 62)

        def run(x, *_):
            return (softmax.softmax_op(x, axis, qx, qo, bits, family).astype(dtype),)

        return run


@register
class LayerNormInt(Op):
    """Inputs x, weight (int at ``scale_w``, one value per normalised element: the trailing
    axes of x whose sizes multiply to weight's size), optional bias (int32 at 2**(15 + qw)).
    y = rescale(sat32(normalized_q15 * w + b), 15 + qw - qo, o_bits)."""

    op_type = "LayerNormInt"
    attrs = {"scale_x": None, "scale_w": REQUIRED, "scale_o": REQUIRED, "o_bits": 8,
             "data_bits": 8, "parameter_bits": 8, "eps": 1e-5, "scale_y_normal": None,
             "platform": None, "platform_quant": None}
    min_inputs, max_inputs = 2, 3

    def _row_length(self, node: Node, ins: list[Tensor]) -> int:
        x, w = ins[0], ins[1]
        n = int(np.prod(w.shape))
        for k in range(1, len(x.shape) + 1):
            size = int(np.prod(x.shape[-k:]))
            if size == n:
                return n
            if size > n:
                break
        raise ThinkerModelError(
            f"{node.label()}: weight {w.describe()} must have one value per normalised element: "
            f"the trailing axes of input {x.describe()} must multiply to {n}")

    def infer(self, node, ins):
        x = ins[0]
        integer_input(node, x)
        input_exponent(node, "scale_x", x)
        n = self._row_length(node, ins)
        bits = np.dtype(x.dtype).itemsize * 8
        if n > ln.max_row_length(bits):
            raise ThinkerModelError(
                f"{node.label()}: rows of {n} {bits}-bit values exceed the layernorm kernel's "
                f"limit of {ln.max_row_length(bits)} (its denominator must stay below 2**58); "
                "normalise fewer elements")
        if node.attrs.get("scale_y_normal") not in (None, 32768.0):
            raise ThinkerModelError(
                f"{node.label()}: scale_y_normal {node.attrs['scale_y_normal']} is not supported; "
                "the normalised values are Q15 (32768)")
        const_input(node, ins, 1, "weight")
        return [spec(x.shape, int_dtype(node, out_bits(node)), exponent(node, "scale_o"))]

    def macs(self, node, ins, outs):
        return int(np.prod(outs[0].shape)) * 6

    def packed_attrs(self, node, ins):
        """``eps_q``: the integer eps (float32 steps, as the original) for the C executor."""
        eps = float(node.attrs.get("eps", 1e-5))
        if len(ins) < 2 or None in ins[:2] or not math.isfinite(eps) or eps < 0:
            return {}  # the executors reject the node with their own message
        value = ln.eps_q(eps, input_exponent(node, "scale_x", ins[0]), self._row_length(node, ins))
        # >= 2**58 is rejected by both executors; saturating keeps the high word an int32
        return {"eps_q": ln.eps_q_words(min(value, 1 << 62))}

    def prepare(self, node, ins, outs):
        x = ins[0]
        n = self._row_length(node, ins)
        qx, qw, qo = (input_exponent(node, "scale_x", x), exponent(node, "scale_w"),
                      exponent(node, "scale_o"))
        eps = float(node.attrs.get("eps", 1e-5))
        if not math.isfinite(eps) or eps < 0:
            raise ThinkerModelError(f"{node.label()}: eps {eps} must be a finite value >= 0")
        eps_int = ln.packed_eps_q(node.attrs.get("eps_q"), eps, qx, n, node.label())
        bits = np.dtype(x.dtype).itemsize * 8
        if n * n * (1 << (2 * (bits - 1))) + eps_int >= ln.DENOMINATOR_LIMIT:
            raise ThinkerModelError(
                f"{node.label()}: eps {eps} at input exponent {qx} makes the denominator reach "
                "2**58; lower eps or the input scale")
        w = const_input(node, ins, 1, "weight").astype(np.int64).reshape(-1)
        b = (const_input(node, ins, 2, "bias").astype(np.int64).reshape(-1)
             if len(ins) > 2 and ins[2] is not None else np.zeros(n, dtype=np.int64))
        if b.size != n:
            raise ThinkerModelError(f"{node.label()}: bias has {b.size} values, expected {n}")
        shift = ln.OUTPUT_Q + qw - qo
        checked_exponent_gap(node, "the output requantization", shift, 62)
        out_bits_, dtype = out_bits(node), outs[0].dtype

        def run(xv, *_):
            rows = xv.reshape(-1, n)
            acc = np.clip(ln.normalize_rows(rows, eps_int) * w + b, -(1 << 31), (1 << 31) - 1)
            return (qmath.rescale(acc, shift, out_bits_).astype(dtype).reshape(xv.shape),)

        return run


@register
class LogSoftmaxInt(SoftmaxInt):
    """ln(softmax): the family's softmax in Q15 (SoftmaxInt), its natural log in Q25
    (``thinker.nonlinear.logarithm``), then ``rescale`` to ``scale_o`` / ``o_bits``. A
    probability that rounds to 0 gives ln 0 = -inf, i.e. the most negative output."""

    op_type = "LogSoftmaxInt"
    cost_per_element = 20

    def prepare(self, node, ins, outs):
        axis = axis_of(node, len(ins[0].shape))
        qx, qo = input_exponent(node, "scale_x", ins[0]), exponent(node, "scale_o")
        family, bits, dtype = platform_of(node), out_bits(node), outs[0].dtype
        checked_exponent_gap(node, "the Q25 input conversion", qx - softmax.INPUT_Q, 48)
        checked_exponent_gap(node, "the output requantization", logarithm.OUTPUT_Q - qo, 62)

        def run(x, *_):
            p = softmax.softmax_op(x, axis, qx, softmax.OUTPUT_Q, 32, family)
            y = qmath.rescale(logarithm.ln_q15_to_q25(p), logarithm.OUTPUT_Q - qo, bits)
            return (y.astype(dtype),)

        return run


GLU_SIGMOID_Q = 15  # the gate's exponent: sigmoid(b) in Q15, held in 32 bits


def glu(x: np.ndarray, axis: int, qx: int, qo: int, bits: int, family: str) -> np.ndarray:
    """GluInt: a * sigmoid(b) for the halves a, b of ``axis``. Exactly iqSigmoid(b) at
    scale 2**15 with o_bits 32, then iqMul(a, gate) to ``qo``: the same integers as that
    three-op graph (tpacker rewrites GluInt into it on devices without the op)."""
    a, b = np.split(np.asarray(x, dtype=np.int64), 2, axis=axis)
    gate = pwl.activation("sigmoid", b, qx, GLU_SIGMOID_Q, 32, family)
    return qmath.rescaled_product(a, qx, gate, GLU_SIGMOID_Q, qo, bits)


@register
class GluInt(_Elementwise):
    """nn.GLU: halves a, b along ``dim`` (``axis``; default -1), y = a * sigmoid(b)."""

    op_type = "GluInt"
    attrs = {**NONLINEAR_ATTRS, "dim": None, "axis": None}
    cost_per_element = 6

    def infer(self, node, ins):
        x = ins[0]
        integer_input(node, x)
        axis = axis_of(node, len(x.shape))
        if x.shape[axis] % 2:
            raise ThinkerModelError(
                f"{node.label()}: axis {axis} of {x.describe()} has odd size {x.shape[axis]}; "
                "GLU halves it")
        input_exponent(node, "scale_x", x)
        platform_of(node)
        shape = tuple(d // 2 if i == axis else d for i, d in enumerate(x.shape))
        return [spec(shape, int_dtype(node, out_bits(node)), exponent(node, "scale_o"))]

    def prepare(self, node, ins, outs):
        axis = axis_of(node, len(ins[0].shape))
        qx, qo = input_exponent(node, "scale_x", ins[0]), exponent(node, "scale_o")
        family, bits, dtype = platform_of(node), out_bits(node), outs[0].dtype
        checked_exponent_gap(node, "the sigmoid input conversion",
                             qx - pwl.pwl(family, "sigmoid").input_q, pwl.MAX_FORMAT_SHIFT)
        shift = qx + GLU_SIGMOID_Q - qo
        product_bits = np.dtype(ins[0].dtype).itemsize * 8 + GLU_SIGMOID_Q + 1  # |a| |gate|
        checked_exponent_gap(node, "the output requantization", shift,
                             62 - product_bits if shift < 0 else 62)

        def run(x, *_):
            return (glu(x, axis, qx, qo, bits, family).astype(dtype),)

        return run
