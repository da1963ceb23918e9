"""Quantization on torch tensors for training: the rounding rules of ``thinker.qmath`` written
once for torch, with straight-through gradients.

The eval forward does not use these: it calls ``thinker.qmath`` itself on integer numpy arrays.
These functions give training the same values (tests pin them against qmath on random data);
they compute in float64, where every step below is exact for float32 inputs.
"""

from __future__ import annotations

import math

import torch

from thinker import qmath

# exponents stay in a range where every scale, shift and int32 bias is meaningful
EXPONENT_MIN, EXPONENT_MAX = -16, 30


def clamp_exponent(q: int) -> int:
    return max(EXPONENT_MIN, min(EXPONENT_MAX, int(q)))


def int_bounds(bits: int) -> tuple[int, int]:
    return qmath.int_range(bits)


def quantize_ints(x: torch.Tensor, q: int, bits: int, mode: str = "floor_add") -> torch.Tensor:
    """Mirrors ``qmath.quantize``: ``saturate(floor(x * 2**q + 0.5))``, as float64 integers
    (``qmath.quantize_mode`` for another rounding ``mode``)."""
    lo, hi = int_bounds(bits)
    if mode == "floor_add":
        return torch.floor(x.double() * math.ldexp(1.0, q) + 0.5).clamp_(lo, hi)
    return round_mode(x.double() * math.ldexp(1.0, q), mode).clamp_(lo, hi)


def round_mode(x: torch.Tensor, mode: str) -> torch.Tensor:
    """``qmath.round_float`` on torch: floor_add, floor, round (half to even), ceil."""
    if mode == "floor_add":
        return torch.floor(x + 0.5)
    if mode == "floor":
        return torch.floor(x)
    if mode == "ceil":
        return torch.ceil(x)
    if mode == "round":
        return torch.round(x)
    raise ValueError(f"unknown rounding mode {mode!r}")


def quantize_weight_ints(w: torch.Tensor, q: int, bits: int) -> torch.Tensor:
    """Mirrors ``qmath.quantize_weight``: round half to even (``torch.round``), saturate; as
    float64 integers."""
    lo, hi = int_bounds(bits)
    return torch.round(w.double() * math.ldexp(1.0, q)).clamp_(lo, hi)


def weight_exponent(absmax: float, bits: int) -> int:
    """Largest q with ``absmax * 2**q <= 2**(bits-1) - 1``: the weights never saturate."""
    if not absmax > 0:
        return EXPONENT_MAX
    limit = (1 << (bits - 1)) - 1
    q = math.floor(math.log2(limit / absmax))
    # log2 may round across an integer: settle q with exact power-of-two products
    while math.ldexp(absmax, q) > limit:
        q -= 1
    while math.ldexp(absmax, q + 1) <= limit:
        q += 1
    return clamp_exponent(q)


def range_exponent(value_range: float, bits: int) -> int:
    """MOM rule: ``q = round(bits - 1 - log2(range))`` (halves round up), clamped."""
    if not value_range > 0:
        return EXPONENT_MAX
    return clamp_exponent(math.floor(bits - 1 - math.log2(value_range) + 0.5))


class _FakeQuantize(torch.autograd.Function):
    """Forward: ``quantize_ints(x, q, bits) / 2**q``. Backward: straight through inside the
    representable range, zero where the value saturated."""

    @staticmethod
    def forward(ctx, x, q: int, bits: int, mode: str = "floor_add"):
        lo, hi = int_bounds(bits)
        scaled = x.double() * math.ldexp(1.0, q)
        if mode == "floor_add":
            ctx.save_for_backward((scaled >= lo - 0.5) & (scaled < hi + 0.5))
        else:
            rounded = round_mode(scaled, mode)
            ctx.save_for_backward((rounded >= lo) & (rounded <= hi))
        return (quantize_ints(x, q, bits, mode) * math.ldexp(1.0, -q)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


class _FakeQuantizeWeight(torch.autograd.Function):
    """Forward: ``quantize_weight_ints(w, q, bits) / 2**q``. Backward: straight through."""

    @staticmethod
    def forward(ctx, w, q: int, bits: int):
        return (quantize_weight_ints(w, q, bits) * math.ldexp(1.0, -q)).to(w.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def fake_quantize(x: torch.Tensor, q: int, bits: int, mode: str = "floor_add") -> torch.Tensor:
    if mode == "floor_add":
        return _FakeQuantize.apply(x, int(q), int(bits))
    return _FakeQuantize.apply(x, int(q), int(bits), mode)


def fake_quantize_weight(w: torch.Tensor, q: int, bits: int) -> torch.Tensor:
    return _FakeQuantizeWeight.apply(w, int(q), int(bits))


class _TQTQuantize(torch.autograd.Function):
    """Trained quantization thresholds (Jain et al., 2020) with power-of-two scales.

    The threshold is ``2**ceil(log2_t)``, so ``q = bits - 1 - ceil(log2_t)``. Gradients:
    x straight through inside the range; log2_t gets ``ln2 * s * (round(x/s) - x/s)`` inside
    and ``ln2 * s * bound`` where x saturated (s = 2**-q, ceil passed straight through)."""

    @staticmethod
    def forward(ctx, x, log2_t, bits: int, mode: str = "floor_add"):
        q = tqt_exponent(float(log2_t), bits)
        lo, hi = int_bounds(bits)
        scaled = x.double() * math.ldexp(1.0, q)
        rounded = quantize_ints(x, q, bits, mode)
        ctx.save_for_backward(scaled, rounded)
        ctx.q, ctx.bounds, ctx.mode = q, (lo, hi), mode
        return (rounded * math.ldexp(1.0, -q)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        scaled, rounded = ctx.saved_tensors
        lo, hi = ctx.bounds
        if ctx.mode == "floor_add":
            below, above = scaled < lo - 0.5, scaled >= hi + 0.5
        else:
            unclamped = round_mode(scaled, ctx.mode)
            below, above = unclamped < lo, unclamped > hi
        inside = ~(below | above)
        step = torch.where(inside, rounded - scaled, rounded)  # rounded == bound outside
        s = math.ldexp(1.0, -ctx.q)
        grad_t = (grad.double() * step * (math.log(2.0) * s)).sum().to(grad.dtype)
        return grad * inside, grad_t.reshape(()), None, None


def tqt_exponent(log2_t: float, bits: int) -> int:
    return clamp_exponent(bits - 1 - math.ceil(log2_t))


def tqt_quantize(x: torch.Tensor, log2_t: torch.Tensor, bits: int,
                 mode: str = "floor_add") -> torch.Tensor:
    if mode == "floor_add":
        return _TQTQuantize.apply(x, log2_t, int(bits))
    return _TQTQuantize.apply(x, log2_t, int(bits), mode)
