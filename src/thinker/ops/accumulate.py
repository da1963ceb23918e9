"""The output stage shared by every op that builds an integer accumulator (conv, linear, bmm,
batchnorm): add the int32 bias (already at exponent qx + qw), then either rescale to ``o_bits``
at ``scale_o`` with ``rshift_round`` + saturation (+ fused activation), or, with no ``o_bits``,
return the float ``acc / 2**(qx + qw)``.

Kernels hold accumulators in float arrays so GEMMs run on BLAS. ``OutputStage`` picks the float
width from a bound on |acc| computed from the actual weights, so every integer is exact, and
folds the requantization scale into the weights and bias (``qmath.folded_requant_factors``):
the kernel's GEMM then yields ``(acc + bias + half) / 2**shift + 2**(bits-1)`` and only the
saturation and a truncating cast remain.
"""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.base import exponent, int_dtype, magnitude_bound, spec
from thinker.ops.rounding import node_round_mode

try:  # the ufunc behind np.clip, without its Python wrappers (~2 us a call, per cache block)
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy 1.x
    try:
        from numpy.core.umath import clip as _clip
    except ImportError:
        _clip = np.clip


def fused_clamp(node: Node) -> tuple[int, int] | None:
    """The activation fused into this op (``fused_clip = [lo, hi]``, set by tpacker's fusion
    pass or ``act_type = 1`` (ReLU) from linger exports), applied after rounding."""
    clip = node.attrs.get("fused_clip")
    if clip is not None:
        return int(clip[0]), int(clip[1])
    if int(node.attrs.get("act_type", 0) or 0) == 1:
        return 0, 2**31 - 1
    return None


def accumulator_output_spec(node: Node, shape, weight_key: str = "scale_w") -> Tensor:
    """Output description: int ``o_bits`` at ``scale_o``, or float32 without ``o_bits``."""
    bits = node.attrs.get("o_bits")
    exponent(node, "scale_x")
    exponent(node, weight_key)
    if bits is None:
        return spec(shape, np.float32)
    return spec(shape, int_dtype(node, int(bits)), exponent(node, "scale_o"))


class OutputStage:
    """Bias + requantization of one op's accumulator, prepared once.

    ``weight_abs_sum`` is the largest sum of |weights| feeding one output element; with the
    input dtype's magnitude it bounds |acc|. ``bias`` (int, or None) is per output channel.
    """

    def __init__(self, node: Node, x: Tensor, weight_abs_sum: int, bias: np.ndarray | None,
                 out: Tensor, weight_key: str = "scale_w"):
        if not np.issubdtype(x.dtype, np.integer):
            raise ThinkerModelError(
                f"{node.label()}: input {x.describe()} must be an integer tensor; "
                "insert a Quant node before it"
            )
        qin = exponent(node, "scale_x") + exponent(node, weight_key)
        self.bits = None if node.attrs.get("o_bits") is None else int(node.attrs["o_bits"])
        self.out_dtype = out.dtype
        self.clamp = fused_clamp(node)
        bias = None if bias is None else bias.astype(np.int64).reshape(-1)
        bias_max = 0 if bias is None else int(np.abs(bias).max(initial=0))
        bound = magnitude_bound(x.dtype) * int(weight_abs_sum) + bias_max
        self.ties_to_even = False
        self.bias = bias
        self.shift: int | None = None  # rshift_round's shift, set when the default mode applies
        if self.bits is None:  # float output: acc / 2**qin
            self.scale, half, self.offset = qmath.scale_of_exponent(-qin), 0.0, 0.0
        else:
            shift = qin - exponent(node, "scale_o")
            self.scale, half, self.offset = qmath.folded_requant_factors(shift, self.bits)
            mode = node_round_mode(node)
            if mode == qmath.DEFAULT_ROUND_MODE:
                self.shift = shift
                bound = qmath.folded_bound(bound, shift, self.bits)
            else:  # another rounding mode: its half, and round's tie fix in finish_folded
                half = qmath.folded_half(shift, mode)
                bound = qmath.folded_bound_mode(bound, shift, self.bits, mode)
                self.ties_to_even = mode == "round" and shift > 0
        self.float_dtype = qmath.float_dtype_for_bound(bound)
        self._bias = np.zeros(1) if bias is None else bias.astype(np.float64)
        self._half = half
        limits = self.integer_limits()
        if limits is not None:  # qmath.saturate_folded's constants, computed once
            lo, hi = limits
            offset = 1 << (self.bits - 1)
            self._unsigned = qmath.storage_dtype(self.bits, signed=False)
            self._signed = qmath.storage_dtype(self.bits)
            fl = self.float_dtype.type
            self._clip = (fl(lo + offset), fl(hi + offset))
            # remove the offset; at the full width the subtraction wraps (-2**(bits-1))
            self._back = self._signed.type(offset if self.bits < self._signed.itemsize * 8
                                           else -offset)

    def integer_limits(self) -> tuple[int, int] | None:
        """(lo, hi) the rounded accumulator is clamped to (saturation and fused activation), for
        integer kernels; None with a float output."""
        if self.bits is None:
            return None
        lo, hi = qmath.int_range(self.bits)
        if self.clamp is not None:
            lo, hi = max(lo, self.clamp[0]), min(hi, self.clamp[1])
        return lo, hi

    def fold_weights(self, w: np.ndarray) -> np.ndarray:
        """Integer weights -> float weights with the requantization scale folded in."""
        return (w.astype(np.float64) * self.scale).astype(self.float_dtype)

    def folded_bias(self, n: int) -> np.ndarray:
        """(bias + half) * scale + offset per output channel, a float vector of length ``n``."""
        b = (np.broadcast_to(self._bias, (n,)) + self._half) * self.scale + self.offset
        return b.astype(self.float_dtype)

    def finish_folded(self, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``y`` = (acc + bias + half) * scale + offset -> output tensor (written into ``out``
        when given, an array of the output dtype and y's shape)."""
        if self.bits is None:
            if out is None:
                return y.astype(np.float32)
            out[...] = y
            return out
        if self.ties_to_even:
            qmath.folded_ties_to_even(y)
        if y.dtype != self.float_dtype:
            return qmath.saturate_folded(y, self.bits, self.clamp, out)
        # qmath.saturate_folded inlined with its constants prepared: kernels call this once per
        # cache block, where the per-call Python work showed in profiles
        unsigned = np.empty(y.shape, self._unsigned) if out is None else out.view(self._unsigned)
        _clip(y, *self._clip, out=unsigned, casting="unsafe")
        signed = unsigned.view(self._signed)
        np.subtract(signed, self._back, out=signed)
        return signed
