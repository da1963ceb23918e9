"""Integer arithmetic between quantized tensors: iqAdd, iqSub, iqMul, iqCat.

iqAdd / iqSub: each input is rescaled to the output exponent and saturated on its own, then the
saturating add (sub) (qmath.rescaled_sum). iqMul: the product at qx + qy rescaled to qo
(qmath.rescaled_product). iqCat: each input rescaled to qo, then concatenated.
"""

from __future__ import annotations

import math

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.accumulate import _clip
from thinker.ops.base import (
    REQUIRED,
    Op,
    Scratch,
    exponent,
    input_exponent,
    int_dtype,
    magnitude_bound,
    out_bits,
    register,
    spec,
)
from thinker.ops.rounding import node_round_mode

BINARY_ATTRS = {"scale_x": None, "scale_y": None, "scale_o": REQUIRED, "o_bits": 8,
                "data_bits": 8, "quant_mode": None, "fused_clip": None}


def _broadcast(node: Node, a: Tensor, b: Tensor) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ThinkerModelError(
            f"{node.label()}: inputs {a.describe()} and {b.describe()} cannot be broadcast"
        ) from None


class _Binary(Op):
    attrs = BINARY_ATTRS
    min_inputs = max_inputs = 2

    def infer(self, node, ins):
        shape = _broadcast(node, ins[0], ins[1])
        input_exponent(node, "scale_x", ins[0])
        input_exponent(node, "scale_y", ins[1])
        return [spec(shape, int_dtype(node, out_bits(node)), exponent(node, "scale_o"))]

    def macs(self, node, ins, outs):
        return int(np.prod(outs[0].shape))

    def prepare(self, node, ins, outs):
        qx = input_exponent(node, "scale_x", ins[0])
        qy = input_exponent(node, "scale_y", ins[1])
        qo = exponent(node, "scale_o")
        bits, dtype = out_bits(node), outs[0].dtype
        in_bits = [np.dtype(t.dtype).itemsize * 8 for t in ins[:2]]
        work = qmath.work_dtype(self.magnitude_bits(in_bits, qx, qy, qo, bits))
        compute = self.compute
        mode = node_round_mode(node)
        if mode != qmath.DEFAULT_ROUND_MODE and node.op_type in ("iqAdd", "iqSub", "iqMul"):
            compute = _moded(self.op_type, mode)

        clip = node.attrs.get("fused_clip")  # a Relu / Clip fused by tpacker (passes/fuse.py)
        if clip is not None:
            info = np.iinfo(dtype)
            lo, hi = max(int(clip[0]), int(info.min)), min(int(clip[1]), int(info.max))
        fast = None
        if node.op_type in ("iqAdd", "iqSub") and compute is self.compute:
            fast = _SumKernel(node.op_type == "iqSub", qx, qy, qo, bits, work, dtype,
                              [t.dtype for t in ins[:2]], None if clip is None else (lo, hi))
            fast = fast if fast.usable else None

        def run(x, y):
            if fast is not None and x.shape == y.shape:
                return (fast(x, y),)
            if x.shape == y.shape:  # keep the inputs' memory order: no strided traversal
                out = np.empty_like(x, dtype=dtype)
            else:
                out = np.empty(np.broadcast_shapes(x.shape, y.shape), dtype=dtype)
            out = compute(x, qx, y, qy, qo, bits, work, out)
            if clip is not None:  # on the saturated integers, as the separate op did
                np.clip(out, lo, hi, out=out)
            return (out,)

        return run

    @staticmethod
    def magnitude_bits(in_bits, qx, qy, qo, bits) -> int:
        """Bits needed by the largest intermediate of rescale-each-then-add."""
        left = max(0, qo - qx, qo - qy)
        right = max(0, qx - qo, qy - qo)
        return max(max(in_bits) - 1 + left, right - 1, bits - 1) + 2


class _SumKernel:
    """iqAdd / iqSub on same-shape inputs: ``qmath.rescaled_sum``'s steps (each input through
    ``rescale_into``, then the add in ``work``) with the saturation to ``bits`` and a fused
    clip merged into one clip (``clip(clip(v, a, b), c, d) == clip(v, max(a, c), min(b, d))``
    when the ranges meet), computed in the inputs' memory order (convs return transposed
    views), a few leading-axis slices at a time through small per-thread work arrays: no
    activation-sized temporaries (page faults, and resident if kept), cache-sized passes."""

    def __init__(self, subtract: bool, qx: int, qy: int, qo: int, bits: int, work, dtype,
                 in_dtypes: list, clip: tuple[int, int] | None):
        self.subtract, self.qx, self.qy, self.qo, self.bits = subtract, qx, qy, qo, bits
        self.work, self.dtype = np.dtype(work), np.dtype(dtype)
        lo, hi = qmath.int_range(bits)
        self.keep = [q == qo and lo <= np.iinfo(d).min and np.iinfo(d).max <= hi
                     for q, d in zip((qx, qy), in_dtypes, strict=True)]
        if clip is not None:
            lo, hi = max(lo, clip[0]), min(hi, clip[1])
        self.usable = lo <= hi
        self.range = (self.work.type(lo), self.work.type(hi))
        self.scratch = Scratch()
        self._orders: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def _order(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(axes from largest to smallest stride, its inverse), cached per stride pattern."""
        order = self._orders.get(x.strides)
        if order is None:
            perm = tuple(int(a) for a in np.argsort([-abs(s) for s in x.strides], kind="stable"))
            order = perm, tuple(int(a) for a in np.argsort(perm))
            self._orders[x.strides] = order
        return order

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        perm, inverse = self._order(x)
        xv, yv = x.transpose(perm), y.transpose(perm)
        out = np.empty(xv.shape, self.dtype)
        if not xv.ndim:
            xv, yv, out = xv[None], yv[None], out[None]
        step = max(1, SUM_CHUNK // max(1, math.prod(xv.shape[1:])))
        shape = (min(step, xv.shape[0]), *xv.shape[1:])
        merged, _ = self.scratch.zeros("merged", shape, self.work)
        rescaled_y = None if self.keep[1] else self.scratch.zeros("y", shape, self.work)[0]
        combine = np.subtract if self.subtract else np.add
        for i in range(0, xv.shape[0], step):
            xs, ys = xv[i:i + step], yv[i:i + step]
            m = merged[:xs.shape[0]]
            a = xs if self.keep[0] else qmath.rescale_into(xs, self.qx - self.qo, self.bits, m)
            b = ys if rescaled_y is None else \
                qmath.rescale_into(ys, self.qy - self.qo, self.bits, rescaled_y[:xs.shape[0]])
            combine(a, b, out=m, dtype=self.work)
            _clip(m, *self.range, out=out[i:i + step], casting="unsafe")
        return out.reshape(x.transpose(perm).shape).transpose(inverse)


SUM_CHUNK = 1 << 16  # elements per step of _SumKernel (its work arrays stay in L2)


def _moded(op_type: str, mode: str):
    """iqAdd / iqSub / iqMul rounding with ``mode`` (the default keeps the in-place kernels):
    the same steps on int64."""

    def compute(x, qx, y, qy, qo, bits, work, out):
        if op_type == "iqMul":
            product = np.multiply(x, y, dtype=np.int64)
            value = qmath.saturate(qmath.rshift_mode(product, qx + qy - qo, mode), bits)
        else:
            a = np.asarray(qmath.rescale_mode(x, qx - qo, bits, mode), dtype=np.int64)
            b = np.asarray(qmath.rescale_mode(y, qy - qo, bits, mode), dtype=np.int64)
            value = qmath.saturate(a - b if op_type == "iqSub" else a + b, bits)
        np.copyto(out, value, casting="unsafe")
        return out

    return compute


@register
class IqAdd(_Binary):
    op_type = "iqAdd"

    @staticmethod
    def compute(x, qx, y, qy, qo, bits, work, out):
        return qmath.rescaled_sum(x, qx, y, qy, qo, bits, work=work, out=out)


@register
class IqSub(_Binary):
    op_type = "iqSub"

    @staticmethod
    def compute(x, qx, y, qy, qo, bits, work, out):
        return qmath.rescaled_sum(x, qx, y, qy, qo, bits, subtract=True, work=work, out=out)


@register
class IqMul(_Binary):
    op_type = "iqMul"

    @staticmethod
    def magnitude_bits(in_bits, qx, qy, qo, bits) -> int:
        shift = qx + qy - qo
        return max(in_bits[0] + in_bits[1] - 2 + max(0, -shift), shift - 1) + 2

    @staticmethod
    def compute(x, qx, y, qy, qo, bits, work, out):
        return qmath.rescaled_product(x, qx, y, qy, qo, bits, work=work, out=out)


def cat_axis(node: Node, rank: int) -> int:
    axis = node.attrs.get("dim")
    if axis is None:
        axis = node.attrs.get("axis")
    axis = 1 if axis is None else int(axis)  # the attribute defaults fill in None
    if not -rank <= axis < rank:
        raise ThinkerModelError(f"{node.label()}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def concat_shape(node: Node, ins: list[Tensor], axis: int) -> tuple[int, ...]:
    first = ins[0].shape
    for t in ins[1:]:
        if len(t.shape) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first, strict=True)) if i != axis
        ):
            raise ThinkerModelError(
                f"{node.label()}: inputs {ins[0].describe()} and {t.describe()} differ outside "
                f"the concatenation axis {axis}"
            )
    return (*first[:axis], sum(t.shape[axis] for t in ins), *first[axis + 1:])


@register
class IqCat(Op):
    """Attributes ``scale_x_0``, ``scale_x_1``, ... per input, ``scale_o``, ``dim`` (or axis)."""

    op_type = "iqCat"
    attrs = {"scale_o": REQUIRED, "dim": None, "axis": None, "o_bits": 8, "data_bits": 8,
             "quant_mode": None}
    min_inputs, max_inputs = 1, 1 << 16

    def infer(self, node, ins):
        axis = cat_axis(node, len(ins[0].shape))
        for i, t in enumerate(ins):
            input_exponent(node, f"scale_x_{i}", t)
        return [spec(concat_shape(node, ins, axis), int_dtype(node, out_bits(node)),
                     exponent(node, "scale_o"))]

    def prepare(self, node, ins, outs):
        axis = cat_axis(node, len(ins[0].shape))
        shifts = [input_exponent(node, f"scale_x_{i}", t) - exponent(node, "scale_o")
                  for i, t in enumerate(ins)]
        bits, dtype = out_bits(node), outs[0].dtype
        widest = max(np.dtype(t.dtype).itemsize * 8 for t in ins)
        work = qmath.work_dtype(max(widest - 1 + max(0, -min(shifts)), max(shifts) - 1) + 2)
        mode = node_round_mode(node)
        if mode != qmath.DEFAULT_ROUND_MODE:
            work = np.int64

        def run(*xs):
            parts = [qmath.rescale_mode(x, s, bits, mode, work=work).astype(dtype) if s
                     else x.astype(dtype) for x, s in zip(xs, shifts, strict=True)]
            return (np.concatenate(parts, axis=axis),)

        return run


def divide(x, qx: int, y, qy: int, qo: int, bits: int) -> np.ndarray:
    """iqDiv: (x / 2**qx) / (y / 2**qy) at exponent qo, i.e. the exact quotient
    ``x * 2**(qo - qx + qy) / y`` rounded half up (``qmath.round_half_up_div``) and saturated.
    Division by zero saturates toward the sign of x (0 / 0 = 0)."""
    shift = qo - qx + qy
    num = np.asarray(x, dtype=np.int64) << max(shift, 0)
    den = np.asarray(y, dtype=np.int64) << max(-shift, 0)
    num, den = np.broadcast_arrays(num, den)
    num = np.where(den < 0, -num, num)
    den = np.abs(den)
    lo, hi = qmath.int_range(bits)
    by_zero = np.where(num > 0, hi, np.where(num < 0, lo, 0))
    quotient = qmath.round_half_up_div(num, np.where(den == 0, 1, den))
    return np.where(den == 0, by_zero, qmath.saturate(quotient, bits))


@register
class IqDiv(_Binary):
    """x / y between activations (or an activation and a constant), rounded once."""

    op_type = "iqDiv"

    @staticmethod
    def magnitude_bits(in_bits, qx, qy, qo, bits) -> int:
        return 64

    def infer(self, node, ins):
        shift = (exponent(node, "scale_o") - input_exponent(node, "scale_x", ins[0])
                 + input_exponent(node, "scale_y", ins[1]))
        num_bits, den_bits = (magnitude_bound(t.dtype).bit_length() for t in ins[:2])
        if num_bits + max(shift, 0) > 62 or den_bits + max(-shift, 0) > 62:
            raise ThinkerModelError(
                f"{node.label()}: division shift {shift} on {ins[0].dtype} / {ins[1].dtype} "
                "inputs would leave "
                "int64; re-export with an output scale closer to scale_x / scale_y")
        return super().infer(node, ins)

    @staticmethod
    def compute(x, qx, y, qy, qo, bits, work, out):
        out[...] = divide(x, qx, y, qy, qo, bits)
        return out
