"""THE integer arithmetic of thinker (design §3). Every kernel and linger's forward call this.

Quantized tensors are symmetric with zero-point 0 and a power-of-two scale: a tensor with
exponent ``q`` holds ``int`` meaning the real value ``int / 2**q``.

Integer functions take and return numpy int64 arrays (or Python ints). The ``*_exact_float``
variants compute the same integers on float arrays; they are exact as long as every integer
involved stays below the float's mantissa limit (2**24 for float32, 2**53 for float64), which
callers guarantee from weight bounds at prepare time (see ``float_dtype_for_bound``).
"""

from __future__ import annotations

import math

import numpy as np

from thinker.errors import ThinkerModelError

SUPPORTED_BITS = (4, 8, 16, 32)
FLOAT32_EXACT_LIMIT = 2**24
FLOAT64_EXACT_LIMIT = 2**53


# ---------------------------------------------------------------------------------------------
# scale <-> exponent


def exponent_of_scale(scale: float, where: str = "scale") -> int:
    """Return ``q`` such that ``scale == 2**q`` exactly, or raise naming ``where`` and the value."""
    value = float(scale)
    if not math.isfinite(value) or value <= 0.0:
        raise ThinkerModelError(
            f"{where}: scale {scale!r} must be a positive power of two (2**q); "
            "re-export the model with power-of-two scales"
        )
    mantissa, exp = math.frexp(value)  # value = mantissa * 2**exp, mantissa in [0.5, 1)
    if mantissa != 0.5:
        raise ThinkerModelError(
            f"{where}: scale {scale!r} is not an exact power of two "
            f"(nearest: 2**{round(math.log2(value))}); thinker only runs power-of-two scales, "
            "re-export the model with power-of-two quantization"
        )
    return exp - 1


def scale_of_exponent(q: int) -> float:
    return math.ldexp(1.0, int(q))


# ---------------------------------------------------------------------------------------------
# integer ranges and storage


def int_range(bits: int, signed: bool = True) -> tuple[int, int]:
    """Inclusive (min, max) of a ``bits``-wide integer."""
    if bits not in SUPPORTED_BITS:
        raise ThinkerModelError(f"bit width {bits} is not supported; use one of {SUPPORTED_BITS}")
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def storage_dtype(bits: int, signed: bool = True) -> np.dtype:
    """The numpy dtype that stores ``bits``-wide values (int4 lives in int8 storage)."""
    int_range(bits, signed)
    width = 8 if bits <= 8 else bits
    return np.dtype(f"{'' if signed else 'u'}int{width}")


def bits_of_dtype(dtype: np.dtype) -> int:
    return np.dtype(dtype).itemsize * 8


def saturate(v, bits: int, signed: bool = True):
    """Clamp ``v`` into the ``bits``-wide range (works on ints, int arrays and float arrays)."""
    lo, hi = int_range(bits, signed)
    if isinstance(v, np.ndarray):
        return np.clip(v, lo, hi)
    return min(max(v, lo), hi)


# ---------------------------------------------------------------------------------------------
# rounding shifts


SHIFT_SATURATION = 1 << 62  # a left shift of an array saturates at +-2**62 (docs/ops.md)


def _magnitude(dtype) -> int:
    info = np.iinfo(dtype)
    return max(-int(info.min), int(info.max))


def shift_left_saturating(v: np.ndarray, k: int, src_dtype=None) -> np.ndarray:
    """``v << k`` on an integer array, exact up to 2**62 and saturated to +-2**62 beyond (the C
    executor's ``thk_lshift_sat``): int64 never wraps. ``src_dtype`` (default v's dtype) bounds
    the values: when they cannot leave v's dtype the plain shift runs."""
    bound = _magnitude(src_dtype if src_dtype is not None else v.dtype)
    room = SHIFT_SATURATION if v.dtype.itemsize >= 8 else 1 << (8 * v.dtype.itemsize - 2)
    if k < 63 and bound << k <= room:
        return v << v.dtype.type(k)
    v = v.astype(np.int64, copy=False)
    if k >= 63:
        return np.sign(v) * np.int64(SHIFT_SATURATION)
    limit = np.int64(SHIFT_SATURATION >> k)
    return np.clip(v, -limit, limit) << np.int64(k)


def rshift_round(v, s, work=np.int64):
    """``(v + 2**(s-1)) >> s`` for s > 0 (arithmetic shift: ties toward +inf); ``v << -s`` for
    s < 0; ``v`` for s == 0. ``s`` may be an int or an int array broadcastable against ``v``.

    Arrays are computed in ``work`` (int64 by default); a caller may pass int32 only when it has
    proved every intermediate (|v| << -s, |v| + 2**(s-1)) stays below 2**31. On arrays
    (|v| < 2**62) a left shift saturates at +-2**62 (``shift_left_saturating``) and a right shift
    by 63 bits or more gives 0, as in the C executor: never a wrapped value."""
    if isinstance(s, np.ndarray):
        v = np.asarray(v, dtype=np.int64)
        s = s.astype(np.int64)
        pos = np.maximum(s, 0)
        half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0)
        right = np.right_shift(v + half, pos)
        return np.where(s >= 0, right, np.left_shift(v, np.maximum(-s, 0)))
    s = int(s)
    if isinstance(v, np.ndarray):
        src = v.dtype
        v = v.astype(work, copy=False)
        if s >= 63:
            return np.zeros_like(v)
        if s < 0:
            return shift_left_saturating(v, -s, src)
    if s > 0:
        return (v + (1 << (s - 1))) >> s
    if s < 0:
        return v << (-s)
    return v


def rescale(v, s, bits: int, signed: bool = True, work=np.int64):
    """Move ``v`` by ``s`` bits with ``rshift_round`` and saturate to ``bits``. An array that
    needs neither (s == 0 and its dtype fits ``bits``) is returned as it is, dtype unchanged."""
    if isinstance(v, np.ndarray) and s == 0 and np.dtype(v.dtype).itemsize * 8 <= bits \
            and np.issubdtype(v.dtype, np.signedinteger) == signed:
        return v
    return saturate(rshift_round(v, s, work), bits, signed)


def _saturate_into(v, bits: int, out: np.ndarray | None):
    """Saturate ``v`` to ``bits``: into ``out`` (saturate and narrow in one pass), else in
    place (``v`` is a temporary of the caller's)."""
    lo, hi = int_range(bits)
    w = v.dtype.type
    if out is None and not isinstance(v, np.ndarray):
        return np.clip(v, w(lo), w(hi))
    return np.clip(v, w(lo), w(hi), out=v if out is None else out, casting="unsafe")


def _within(dtype, bits: int, signed: bool = True) -> bool:
    """Whether every value of integer ``dtype`` already lies in the ``bits``-wide range."""
    lo, hi = int_range(bits, signed)
    info = np.iinfo(dtype)
    return lo <= info.min and info.max <= hi


def rescale_into(v, s: int, bits: int, out: np.ndarray) -> np.ndarray:
    """``rescale(v, s, bits)`` written into the integer array ``out`` (``v`` broadcast to its
    shape), in place, without temporaries. ``out``'s dtype must hold every intermediate
    (|v| + 2**(s-1), |v| << -s), as ``rescale``'s ``work`` does; every step runs in it.
    Operands are numpy scalars of that dtype: some ufuncs have no SIMD loop for a python-int
    operand (4-8x slower passes)."""
    w = out.dtype.type
    if s >= 63:
        out[...] = 0
    elif s > 0:
        np.add(v, w(1 << (s - 1)), out=out, dtype=w)
        np.right_shift(out, w(s), out=out)
    elif s < 0 and _magnitude(np.asarray(v).dtype) << -s >= 1 << (8 * out.dtype.itemsize - 2):
        np.copyto(out, shift_left_saturating(np.asarray(v, dtype=np.int64), -s), casting="unsafe")
    elif s < 0:
        np.left_shift(v, w(-s), out=out, dtype=w)
    else:
        np.copyto(out, v, casting="same_kind")
    # a right shift with rounding never leaves the input's range: saturate only when needed
    if s < 0 or not _within(np.asarray(v).dtype, bits):
        lo, hi = int_range(bits)
        np.clip(out, w(lo), w(hi), out=out)
    return out


def rescaled_sum(x, qx: int, y, qy: int, qo: int, bits: int, subtract: bool = False,
                 work=np.int64, out: np.ndarray | None = None):
    """iqAdd / iqSub: each input rescaled to exponent ``qo`` and saturated on its own, then
    the saturating add (or subtract). ``out``: an integer array to write the result into.

    Computed in place in one ``work`` array laid out like ``x`` (a transposed layout costs
    no strided pass); ``work`` must hold each rescaled input's intermediates and their sum."""
    x, y = np.asarray(x), np.asarray(y)
    shape = np.broadcast_shapes(x.shape, y.shape)
    merged = np.empty_like(x, dtype=work) if x.shape == shape else np.empty(shape, work)
    a = x if qx == qo and _within(x.dtype, bits) else rescale_into(x, qx - qo, bits, merged)
    b = y if qy == qo and _within(y.dtype, bits) else \
        rescale_into(y, qy - qo, bits, np.empty_like(y, dtype=work))
    (np.subtract if subtract else np.add)(a, b, out=merged, dtype=work)
    return _saturate_into(merged, bits, out)


def rescaled_product(x, qx: int, y, qy: int, qo: int, bits: int, work=np.int64,
                     out: np.ndarray | None = None):
    """iqMul: the exact product at exponent qx + qy, rescaled to ``qo`` and saturated."""
    product = np.multiply(x, y, dtype=work)
    return _saturate_into(rshift_round(product, qx + qy - qo, work), bits, out)


def work_dtype(magnitude_bits: int) -> type:
    """The narrowest of int16/int32/int64 holding every intermediate below 2**magnitude_bits
    (with a bit of headroom), for kernels that proved that bound."""
    if magnitude_bits <= 14:
        return np.int16
    return np.int32 if magnitude_bits <= 30 else np.int64


def round_half_up_div(num, den):
    """``floor(num / den + 1/2)`` exactly, for integer ``num`` and positive integer ``den``.

    The rule of ``rshift_round`` generalised to any divisor (used by average pooling)."""
    if isinstance(num, np.ndarray) or isinstance(den, np.ndarray):
        num = np.asarray(num, dtype=np.int64)
        den = np.asarray(den, dtype=np.int64)
    return (2 * num + den) // (2 * den)


def rescale_div(v, shift: int, den, bits: int, signed: bool = True):
    """``saturate(round_half_up(v * 2**-shift / den))``: a shift and an integer divisor at once.

    A positive ``shift`` scales the divisor (den * 2**shift), a negative one the numerator, so
    the result is the exact rational rounding, never a rounded intermediate."""
    num = np.asarray(v, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    if shift >= 0:  # callers keep den << shift and |num| << -shift below 2**61 (rules)
        den = den << shift
    else:
        num = num << (-shift)
    return saturate(round_half_up_div(num, den), bits, signed)


# ---------------------------------------------------------------------------------------------
# float <-> int


def quantize(x, q: int, bits: int, signed: bool = True) -> np.ndarray:
    """float -> int: ``saturate(floor(x * 2**q + 0.5))``, computed in float64 (exact for float32
    inputs: the power-of-two product and the +0.5 lose no bits before saturation)."""
    xf = np.asarray(x, dtype=np.float64)
    return saturate(np.floor(xf * scale_of_exponent(q) + 0.5), bits, signed).astype(np.int64)


def dequantize(v, q: int) -> np.ndarray:
    """int -> float32: ``v / 2**q`` (exact when |v| < 2**24)."""
    return (np.asarray(v, dtype=np.float64) * scale_of_exponent(-q)).astype(np.float32)


def quantize_weight(w, q: int, bits: int) -> np.ndarray:
    """Weights are rounded half-to-even at export (numpy's ``rint``), then saturated."""
    wf = np.asarray(w, dtype=np.float64)
    return saturate(np.rint(wf * scale_of_exponent(q)), bits).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# the same integers on float arrays (for BLAS-speed kernels)


def float_dtype_for_bound(bound: int) -> np.dtype:
    """Smallest float dtype in which every integer of magnitude <= ``bound`` is exact."""
    if bound < FLOAT32_EXACT_LIMIT:
        return np.dtype(np.float32)
    if bound < FLOAT64_EXACT_LIMIT:
        return np.dtype(np.float64)
    raise ThinkerModelError(
        f"accumulator bound {bound} exceeds 2**53; this layer cannot be computed exactly"
    )


def rshift_round_exact_float(v: np.ndarray, s: int) -> np.ndarray:
    """``rshift_round`` on a float array holding integers. Exact when |v| + 2**(s-1) is below
    the dtype's mantissa limit: adding the half is exact, scaling by 2**-s is exact, floor is
    exact."""
    if s > 0:
        dt = v.dtype.type
        return np.floor((v + dt(scale_of_exponent(s - 1))) * dt(scale_of_exponent(-s)))
    if s < 0:
        return v * v.dtype.type(scale_of_exponent(-s))
    return v


def folded_requant_factors(shift: int, bits: int) -> tuple[float, float, float]:
    """(scale, half, offset) for folding a requantization into a float GEMM.

    With ``y = (acc + bias + half) * scale + offset``, ``floor(y) - offset ==
    rshift_round(acc + bias, shift)``. Kernels fold ``scale`` into their weights and
    ``(bias + half) * scale + offset`` into their bias, so a GEMM returns ``y`` directly. The
    offset 2**(bits-1) makes every in-range result non-negative, so float->unsigned truncation
    is the floor (``saturate_folded``). Exact in floating point: multiplying by a power of two
    never changes a mantissa, so every product and partial sum is the exact integer one times
    2**-shift, provided the magnitudes stay below the mantissa limit (``folded_bound``)."""
    half = scale_of_exponent(shift - 1) if shift > 0 else 0.0
    return scale_of_exponent(-shift), half, float(1 << (bits - 1))


def folded_bound(acc_bound: int, shift: int, bits: int) -> int:
    """Largest magnitude, in units of the smallest step, of any partial sum of a folded GEMM
    whose unscaled |acc + bias| <= acc_bound; must stay below the float's mantissa limit."""
    half = (1 << (shift - 1)) if shift > 0 else 0
    offset = 1 << (bits - 1)
    if shift >= 0:
        return acc_bound + half + (offset << shift)
    return (acc_bound << -shift) + offset


def saturate_folded(y: np.ndarray, bits: int, clamp=None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Second half of a folded requantization: saturate ``y`` (float, offset by 2**(bits-1))
    to ``bits`` and an optional fused activation ``clamp = (lo, hi)``, then floor by
    truncating to unsigned and remove the offset (a wrapping subtraction). ``out``: a
    signed ``bits``-wide array to write into."""
    lo, hi = int_range(bits)
    if clamp is not None:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    offset = 1 << (bits - 1)
    unsigned_dtype = storage_dtype(bits, signed=False)
    unsigned = np.empty(y.shape, dtype=unsigned_dtype) if out is None else out.view(unsigned_dtype)
    # one pass: clip into [0, 2**bits) and truncate (== floor, values are non-negative)
    np.clip(y, lo + offset, hi + offset, out=unsigned, casting="unsafe")
    signed = unsigned.view(storage_dtype(bits))
    np.subtract(signed, signed.dtype.type(offset) if bits < signed.itemsize * 8 else
                signed.dtype.type(-offset), out=signed)
    return signed


# ---------------------------------------------------------------------------------------------
# rounding modes (linger's ``round_mode``, the ONNX attribute ``quant_mode``)
#
# The contract's rounding is ``floor_add``: floor(x + 1/2), i.e. ``rshift_round``. The original
# linger also defines ``floor``, ``round`` (half to even, torch.round / numpy.rint) and
# ``ceil``; a node's ``quant_mode`` selects which one rounds its output activation (docs/ops.md,
# "Rounding modes"). Every function below equals its floor_add counterpart for "floor_add", and
# every mode agrees when nothing is rounded (a shift s <= 0, an exact quotient).

ROUND_MODES = ("floor_add", "floor", "round", "ceil")
DEFAULT_ROUND_MODE = "floor_add"


def check_round_mode(mode, where: str = "quant_mode") -> str:
    """The mode name (``None`` means the default ``floor_add``); anything else is an error."""
    if mode is None:
        return DEFAULT_ROUND_MODE
    if isinstance(mode, bytes):
        mode = mode.decode("utf-8", "replace")
    if mode not in ROUND_MODES:
        raise ThinkerModelError(f"{where}: rounding mode {mode!r} is not one of "
                                f"{', '.join(ROUND_MODES)}")
    return mode


def round_float(x, mode: str):
    """Round float values to integers (as floats) with ``mode``."""
    x = np.asarray(x, dtype=np.float64)
    if mode == "floor_add":
        return np.floor(x + 0.5)
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    if mode == "round":
        return np.rint(x)
    raise ThinkerModelError(f"unknown rounding mode {mode!r}")


def rshift_mode(v, s, mode: str, work=np.int64):
    """``v / 2**s`` rounded with ``mode`` for s > 0 (``rshift_round`` for floor_add); a left
    shift for s < 0 and ``v`` for s == 0, whatever the mode. Arithmetic on ``work`` (int64)
    with the same headroom as ``rshift_round`` plus one bit (ceil adds 2**s - 1)."""
    s = int(s)
    if mode == "floor_add" or s <= 0:
        return rshift_round(v, s, work)
    if isinstance(v, np.ndarray):
        v = v.astype(work, copy=False)
    if mode == "floor":
        return v >> s
    if mode == "ceil":
        return (v + ((1 << s) - 1)) >> s
    if mode == "round":  # half up, then a tie that landed on an odd value steps back
        t = v + (1 << (s - 1))
        r = t >> s
        return r - ((t & ((1 << s) - 1)) == 0) * (r & 1)
    raise ThinkerModelError(f"unknown rounding mode {mode!r}")


def rescale_mode(v, s, bits: int, mode: str, signed: bool = True, work=np.int64):
    """``rescale`` with the rounding of ``mode``."""
    if mode == "floor_add" or int(s) <= 0:
        return rescale(v, s, bits, signed, work)
    return saturate(rshift_mode(v, s, mode, work), bits, signed)


def quantize_mode(x, q: int, bits: int, mode: str, signed: bool = True) -> np.ndarray:
    """float -> int: ``saturate(round_mode(x * 2**q))`` (``quantize`` for floor_add)."""
    if mode == "floor_add":
        return quantize(x, q, bits, signed)
    xf = np.asarray(x, dtype=np.float64)
    return saturate(round_float(xf * scale_of_exponent(q), mode), bits, signed).astype(np.int64)


def round_div_mode(num, den, mode: str):
    """``num / den`` rounded with ``mode``, exactly, for integer ``num`` and positive integer
    ``den`` (``round_half_up_div`` for floor_add)."""
    if mode == "floor_add":
        return round_half_up_div(num, den)
    if isinstance(num, np.ndarray) or isinstance(den, np.ndarray):
        num = np.asarray(num, dtype=np.int64)
        den = np.asarray(den, dtype=np.int64)
    if mode == "floor":
        return num // den
    if mode == "ceil":
        return -((-num) // den)
    if mode == "round":
        t = 2 * num + den
        r = t // (2 * den)
        return r - ((t % (2 * den)) == 0) * (r & 1)
    raise ThinkerModelError(f"unknown rounding mode {mode!r}")


def rescale_div_mode(v, shift: int, den, bits: int, mode: str, signed: bool = True):
    """``rescale_div`` with the rounding of ``mode``."""
    if mode == "floor_add":
        return rescale_div(v, shift, den, bits, signed)
    num = np.asarray(v, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    if shift >= 0:
        den = den << shift
    else:
        num = num << (-shift)
    return saturate(round_div_mode(num, den, mode), bits, signed)


def folded_half(shift: int, mode: str) -> float:
    """What a folded GEMM adds before its floor (``folded_requant_factors``' half) so the floor
    rounds with ``mode``: 2**(s-1) (floor_add, and round before its tie fix), 0 (floor),
    2**s - 1 (ceil); 0 when nothing is rounded (s <= 0)."""
    if shift <= 0 or mode == "floor":
        return 0.0
    if mode == "ceil":
        return float((1 << shift) - 1)
    return scale_of_exponent(shift - 1)


def folded_bound_mode(acc_bound: int, shift: int, bits: int, mode: str) -> int:
    """``folded_bound`` for the half of ``mode``."""
    if mode == "floor_add" or shift <= 0:
        return folded_bound(acc_bound, shift, bits)
    half = int(folded_half(shift, mode))
    return acc_bound + half + ((1 << (bits - 1)) << shift)


def folded_ties_to_even(y: np.ndarray) -> np.ndarray:
    """Round mode in a folded GEMM: ``y`` holds (acc + bias + 2**(s-1)) / 2**s + offset; a tie
    is an exact integer there, and an odd one steps back by 1 (the offset is even), in place."""
    f = np.floor(y)
    np.subtract(y, (y == f) & (np.fmod(f, 2) != 0), out=y, casting="unsafe")
    return y
