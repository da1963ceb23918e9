"""Reductions over axes of an integer tensor: iqSum (sum, and mean through ``divisor``) and
iqVar (variance). Both finish with one exact rational rounding (``qmath.rescale_div``:
round half up of the exact quotient), so mean and variance are never rounded twice.

* iqSum: ``y = round(sum(x) * 2**(qo - qx) / divisor)``; ``divisor`` (our extension of the
  original's iqSum, default 1) turns it into a mean: ``x.mean(dim)`` exports as iqSum with
  divisor = the number of summed elements.
* iqVar: ``y = round((n * S2 - S1**2) * 2**(qo - 2 qx) / (n * (n - c)))`` with S1 = sum(x),
  S2 = sum(x**2), c = 1 (``unbiased``, torch's default) or 0.

Axes: ``axes`` (a list), or ``dims`` / ``dim`` / ``axis`` (the original's names; an int or a
list); ``keepdims`` default 1.
"""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node
from thinker.ops.base import (
    REQUIRED,
    Op,
    exponent,
    input_exponent,
    int_dtype,
    magnitude_bound,
    out_bits,
    register,
    spec,
)

AXIS_KEYS = ("axes", "dims", "dim", "axis")


def reduce_axes(node: Node, rank: int) -> tuple[int, ...]:
    value = next((node.attrs[k] for k in AXIS_KEYS if node.attrs.get(k) is not None), None)
    if value is None:
        raise ThinkerModelError(f"{node.label()}: attribute 'axes' (or 'dims') is required")
    values = [int(v) for v in (value if isinstance(value, (list, tuple, np.ndarray)) else [value])]
    axes = []
    for a in values:
        if not -rank <= a < rank:
            raise ThinkerModelError(f"{node.label()}: axis {a} is out of range for rank {rank}")
        axes.append(a % rank)
    if len(set(axes)) != len(axes) or not axes:
        raise ThinkerModelError(f"{node.label()}: axes {values} must be distinct and non-empty")
    return tuple(sorted(axes))


def reduced_shape(shape, axes, keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def reduce_sum(x, axes: tuple[int, ...], keepdims: bool, shift: int, divisor: int,
               bits: int) -> np.ndarray:
    """iqSum: ``saturate(round_half_up(sum(x over axes) * 2**-shift / divisor))`` as int64,
    ``shift = q_x - q_o``."""
    total = np.asarray(x).astype(np.int64).sum(axis=axes, keepdims=keepdims)
    return qmath.rescale_div(total, shift, divisor, bits)


def reduce_variance(x, axes: tuple[int, ...], keepdims: bool, shift: int, count: int,
                    unbiased: bool, bits: int) -> np.ndarray:
    """iqVar: ``saturate(round_half_up((n S2 - S1**2) * 2**-shift / (n (n - c))))`` as int64,
    ``shift = 2 q_x - q_o``, ``n = count`` (the number of reduced elements), c = 1 if
    ``unbiased`` else 0."""
    xi = np.asarray(x).astype(np.int64)
    s1 = xi.sum(axis=axes, keepdims=keepdims)
    s2 = (xi * xi).sum(axis=axes, keepdims=keepdims)
    divisor = count * (count - int(bool(unbiased)))
    return qmath.rescale_div(count * s2 - s1 * s1, shift, divisor, bits)


def exact_within_int64(node: Node, numerator_bound: int, divisor: int, shift: int) -> None:
    """The rounding division ``round(num * 2**-shift / divisor)`` moves the shift into the
    numerator (shift < 0) or the divisor (shift > 0); both must stay below 2**62."""
    if numerator_bound << max(-shift, 0) >= 1 << 62 or divisor << max(shift, 0) >= 1 << 62:
        raise ThinkerModelError(
            f"{node.label()}: a numerator up to {numerator_bound} over divisor {divisor} with "
            f"requantization shift {shift} would leave int64; reduce fewer elements or use an "
            "output scale closer to the input's")


class _Reduce(Op):
    attrs = {"scale_x": None, "scale_o": REQUIRED, "o_bits": 8, "data_bits": 8, "axes": None,
             "dims": None, "dim": None, "axis": None, "keepdims": 1, "platform": None,
             "platform_quant": None}

    def _geometry(self, node, ins):
        x = ins[0]
        if not np.issubdtype(x.dtype, np.integer):
            raise ThinkerModelError(f"{node.label()}: input {x.describe()} must be an integer "
                                    "tensor")
        axes = reduce_axes(node, len(x.shape))
        count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        keep = bool(int(node.attrs.get("keepdims", 1)))
        if 0 in axes and not keep:
            raise ThinkerModelError(f"{node.label()}: reducing the batch axis 0 is not supported")
        return axes, count, keep

    def infer(self, node, ins):
        axes, count, keep = self._geometry(node, ins)
        input_exponent(node, "scale_x", ins[0])
        self.check(node, ins, count)
        return [spec(reduced_shape(ins[0].shape, axes, keep), int_dtype(node, out_bits(node)),
                     exponent(node, "scale_o"))]

    def check(self, node, ins, count: int) -> None:
        pass

    def macs(self, node, ins, outs):
        return int(np.prod(ins[0].shape))


@register
class IqSum(_Reduce):
    op_type = "iqSum"
    attrs = {**_Reduce.attrs, "divisor": 1}

    def check(self, node, ins, count):
        divisor = int(node.attrs.get("divisor", 1))
        if divisor < 1:
            raise ThinkerModelError(f"{node.label()}: divisor {divisor} must be >= 1")
        shift = input_exponent(node, "scale_x", ins[0]) - exponent(node, "scale_o")
        exact_within_int64(node, count * magnitude_bound(ins[0].dtype), divisor, shift)

    def prepare(self, node, ins, outs):
        axes, _, keep = self._geometry(node, ins)
        shift = input_exponent(node, "scale_x", ins[0]) - exponent(node, "scale_o")
        divisor, bits, dtype = int(node.attrs.get("divisor", 1)), out_bits(node), outs[0].dtype

        def run(x, *_):
            return (reduce_sum(x, axes, keep, shift, divisor, bits).astype(dtype),)

        return run


@register
class IqVar(_Reduce):
    op_type = "iqVar"
    attrs = {**_Reduce.attrs, "unbiased": 1}

    def check(self, node, ins, count):
        unbiased = int(bool(int(node.attrs.get("unbiased", 1))))
        if unbiased and count < 2:
            raise ThinkerModelError(
                f"{node.label()}: the unbiased variance of {count} element needs at least 2")
        shift = 2 * input_exponent(node, "scale_x", ins[0]) - exponent(node, "scale_o")
        exact_within_int64(node, count * count * magnitude_bound(ins[0].dtype) ** 2,
                           count * (count - unbiased), shift)

    def prepare(self, node, ins, outs):
        axes, count, keep = self._geometry(node, ins)
        shift = 2 * input_exponent(node, "scale_x", ins[0]) - exponent(node, "scale_o")
        unbiased = bool(int(node.attrs.get("unbiased", 1)))
        bits, dtype = out_bits(node), outs[0].dtype

        def run(x, *_):
            return (reduce_variance(x, axes, keep, shift, count, unbiased, bits).astype(dtype),)

        return run
