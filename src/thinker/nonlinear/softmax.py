"""Softmax over rows of Q25 integers, per kernel family, as the original's kernels compute it.

Every step is integer arithmetic. Where the venus kernel rounds through a C ``double``
(``floor((double)p * 2**-n + 0.5)``), the product ``p`` can exceed 2**53: ``as_double`` rounds
it to 53 significant bits exactly as the int64 -> double conversion does (to nearest, ties to
even), after which the shift is exact. Tests compare each family with a literal float
transcription over random and extreme rows.

The op path (SoftmaxInt): the input at exponent ``qx`` moves to Q25 (``rshift_round``, int32
clamp), the kernel gives Q15, then ``rescale`` to the output exponent and ``o_bits``.
"""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.nonlinear.tables import family_of, softmax

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INPUT_Q, OUTPUT_Q = 25, 15
MANTISSA_BITS = 53


def sat32(v: np.ndarray) -> np.ndarray:
    return np.clip(v, INT32_MIN, INT32_MAX)


def wrap32(v: np.ndarray) -> np.ndarray:
    """The int32 two's-complement value of int64 ``v`` (a C narrowing assignment)."""
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def as_double(p: np.ndarray) -> np.ndarray:
    """int64 ``p`` rounded to the nearest value with 53 significant bits, ties to even: the
    integer a C ``(double)p`` holds."""
    p = np.asarray(p, dtype=np.int64)
    magnitude = np.abs(p)
    extra = np.maximum(_bit_length(magnitude) - MANTISSA_BITS, 0)
    half = np.where(extra > 0, np.left_shift(1, np.maximum(extra - 1, 0)), 0)
    kept = magnitude >> extra
    rest = magnitude - (kept << extra)
    up = (rest > half) | ((rest == half) & (extra > 0) & ((kept & 1) == 1))
    return np.sign(p) * ((kept + up) << extra)


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (exact: frexp of a float64 only rounds the
    values beyond 2**53 upward across a power of two, corrected below)."""
    _, exp = np.frexp(v.astype(np.float64))
    exp = exp.astype(np.int64)
    too_long = (exp > 0) & (exp < 64) & ((v >> np.clip(exp - 1, 0, 62)) == 0)
    return np.where(too_long, exp - 1, exp)


def round_shift(v: np.ndarray, n: int) -> np.ndarray:
    """The originals' round-half-up right shift by ``n`` > 0: ``(v >> (n-1))`` then
    ``(lsb) + (v >> 1)``, i.e. floor(v / 2**n + 1/2) = ``rshift_round``."""
    return qmath.rshift_round(v, n)


def _exp2_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split X (Q23, <= 0) into the exponent E = (X >> 23) + 1 and the fraction
    X' = (X & 0x7fffff) - 0x800000 in [-2**23, 0)."""
    return (x >> 23) + 1, (x & 0x7FFFFF) - 0x800000


def _horner(frac: np.ndarray, last_step=None) -> np.ndarray:
    """The Q23 polynomial on the fraction, with the venus/arcs rounding per step."""
    p = softmax()["poly_q23"]
    y = np.full_like(frac, p[0])
    for c in p[1:]:
        y = wrap32(round_shift(y * frac, 23)) + c
    return y


def _venus(x: np.ndarray) -> np.ndarray:
    consts = softmax()
    d = sat32(x - x.max(axis=-1, keepdims=True))
    d = sat32(round_shift(as_double(d * consts["log2e_q29"]), 31))
    e, frac = _exp2_parts(d)
    y = _horner(frac)
    # (int32)(Y * pow(2, E)): truncation toward zero of an exact double
    y = np.where(e >= 0, y << np.clip(e, 0, 62),
                 np.sign(y) * (np.abs(y) >> np.clip(-e, 0, 62)))
    total = np.minimum(y.sum(axis=-1, keepdims=True), INT32_MAX)  # add32s, all terms >= 0
    n = 31 - _bit_length(total) - 8  # nsaz(total) - 8
    t = sat32(np.where(n < 0, total >> np.clip(-n, 0, 62), total << np.clip(n, 0, 62)))
    n = n + 1
    r = consts["newton_seed"] - t
    for _ in range(2):
        err = 0x400000 - wrap32(round_shift(t * r, 23))
        err = err + err
        r = r + wrap32(round_shift(r * err, 23))
    r = sat32(np.where(n < 0, r >> np.clip(-n, 0, 62), r << np.clip(n, 0, 62)))
    return sat32(round_shift(as_double(r * y), 31))


def _reciprocal_q(total: np.ndarray) -> np.ndarray:
    """The arcs/venusA 30-step restoring division of 2**23 by the row sum (uint32 registers)."""
    b = np.clip(total, INT32_MIN, INT32_MAX) & 0xFFFFFFFF
    a = np.full_like(b, 0x800000)
    c = np.zeros_like(b)
    for _ in range(30):
        ge = a >= b
        c = np.where(ge, ((c + 1) * 2), c * 2) & 0xFFFFFFFF
        a = np.where(ge, (a - b) * 2, a * 2) & 0xFFFFFFFF
    return c


def _arcs(x: np.ndarray) -> np.ndarray:
    consts = softmax()
    d = sat32(x - x.max(axis=-1, keepdims=True))
    d = sat32(round_shift(d * consts["log2e_q29"], 31))
    e, frac = _exp2_parts(d)
    y = _horner(frac)
    # shift_pure(Y, E): |E| >= 63 gives 0; left or arithmetic right shift; saturate to int32
    shifted = np.where(e > 0, y << np.clip(e, 0, 62), y >> np.clip(-e, 0, 62))
    y = np.where(np.abs(e) >= 63, 0, sat32(shifted))
    c = _reciprocal_q(y.sum(axis=-1, keepdims=True))
    return wrap32(round_shift(c * y, 38))


def _venus_a(x: np.ndarray) -> np.ndarray:
    consts = softmax()
    top = x.max(axis=-1, keepdims=True)
    top = np.where(top == INT32_MIN, top + 1, top)
    d = sat32(x - top)
    d = wrap32(round_shift(d * consts["log2e_q29"], 31))
    e, frac = _exp2_parts(d)
    p = consts["poly_q23"]
    y = np.full_like(frac, p[0])
    for j, c in enumerate(p[1:], start=1):
        t = ((y * frac) << 7) + (c << 30)
        if j < len(p) - 1:
            y = round_shift(t, 30)
        else:  # the last step also applies 2**E: 30 - E >= 29 here, > 63 gives 0
            shift = 30 - e
            y = np.where(shift > 63, 0, _round_shift_var(t, np.clip(shift, 1, 63)))
    y = wrap32(y)
    c = _reciprocal_q(y.sum(axis=-1, keepdims=True))
    return wrap32(round_shift(c * y, 38))


def _round_shift_var(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``round_shift`` with a per-element shift n >= 1."""
    return ((v >> (n - 1)) + 1) >> 1


KERNELS = {"venus": _venus, "arcs": _arcs, "venusA": _venus_a}


def softmax_q25_rows(family: str, x: np.ndarray) -> np.ndarray:
    """The family's kernel on the last axis of int32-range Q25 values; Q15 int64 out."""
    return KERNELS[family](np.asarray(x, dtype=np.int64))


def softmax_op(x: np.ndarray, axis: int, qx: int, qo: int, bits: int,
               platform: str | None) -> np.ndarray:
    """SoftmaxInt: int64 at exponent ``qo``, softmax over ``axis``."""
    family = family_of(platform)
    v = sat32(qmath.rshift_round(np.asarray(x, dtype=np.int64), qx - INPUT_Q))
    v = np.moveaxis(v, axis, -1)
    y = softmax_q25_rows(family, v)
    return np.moveaxis(qmath.rescale(y, OUTPUT_Q - qo, bits), -1, axis)
