"""LayerNorm's integer normalisation, as the original's kernel computes it.

For each row of N integers x at exponent q:

* numerator  ``n_i = N * x_i - sum(x)`` (int32);
* denominator ``D = N * sum(x**2) - sum(x)**2 + eps_q`` (int64), with
  ``eps_q = floor(eps * 2**(2q) * N**2 + 1/2)`` in the original's float32 steps (tpacker stores
  it in model.bin as attribute ``eps_q``, so the C executor needs no floats);
* ``normalized_i = sat32(rshift_round(n_i * r, k))`` (no shift when k <= 0) where the reciprocal
  square root ``r`` (Q15) and the shift ``k`` come from normalising D (tables.toml):
  the result is ``(x_i - mean) / sqrt(var + eps)`` in Q15.

The denominator must stay below 2**58 so that the normalisation picks the bit pair of its top
bit (the original's masks stop at bits 58-59): ``max_row_length`` gives the bound.
"""

from __future__ import annotations

import math

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.nonlinear.tables import layernorm

OUTPUT_Q = 15
DENOMINATOR_LIMIT = 1 << 58


def eps_q(eps: float, q: int, n: int) -> int:
    """``floor(eps * 2**(2q) * N * N + 1/2)`` in float32 steps, as the original linger (a float32
    tensor chain) and the original executor (``1e-5f * (float)(1 << 2q) * T * T + 0.5f``)
    both compute it: eps to float32, times 2**(2q) (exact), times N, times N, plus 0.5, each
    rounded to float32, then floor. Computed once per node at prepare / pack time."""
    f = np.float32
    with np.errstate(over="ignore", under="ignore"):
        value = f(eps) * np.ldexp(f(1), 2 * q).astype(f)
        value = f(f(value * f(n)) * f(n))
        value = f(value + f(0.5))
    if not np.isfinite(value):
        raise ThinkerModelError(f"layernorm eps {eps} at input exponent {q} overflows float32")
    return int(np.floor(value))


def eps_q_words(value: int) -> list[int]:
    """``eps_q`` as model.bin stores it (attribute ``eps_q``, docs/format.md): two int32 words,
    low word first (attributes hold 32-bit ints; 0 <= eps_q < 2**58 after the checks)."""
    low = value & 0xFFFFFFFF
    return [low - (1 << 32) if low >= 1 << 31 else low, value >> 32]


def packed_eps_q(words, eps: float, q: int, n: int, where: str) -> int:
    """The integer eps of a node: its ``eps_q`` attribute when the model.bin carries one (the
    value tpacker computed from the graph's eps, which the C executor uses too), else computed
    from ``eps``."""
    if words is None:
        return eps_q(eps, q, n)
    if not isinstance(words, list | tuple) or len(words) != 2 or \
            not all(isinstance(w, int | np.integer) for w in words) or int(words[1]) < 0:
        raise ThinkerModelError(f"{where}: attribute eps_q must be two int32 words (low, high) "
                                f"of a value >= 0, got {words!r}")
    return (int(words[1]) << 32) | (int(words[0]) & 0xFFFFFFFF)


def max_row_length(bits: int) -> int:
    """Largest N whose denominator stays below 2**58 for any ``bits``-wide row
    (N * sum(x**2) <= N**2 * 2**(2(bits-1)); eps is bounded separately by the caller)."""
    return math.isqrt((DENOMINATOR_LIMIT - 1) >> (2 * (bits - 1)))


def rsqrt_q15(denominator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, k) per denominator: the Q15 table value and the kernel's right shift."""
    normalize, table = layernorm()
    d = np.asarray(denominator, dtype=np.int64)
    t = np.full_like(d, 256)
    q1 = np.zeros_like(d)
    pending = np.ones(d.shape, dtype=bool)
    for mask, shift, q in normalize:
        hit = pending & ((d & mask) != 0)
        moved = d >> shift if shift >= 0 else d << -shift
        t = np.where(hit, moved, t)
        q1 = np.where(hit, q, q1)
        pending &= ~hit
    return table[t - 256], q1 - 1


def normalize_rows(x: np.ndarray, eps_int: int) -> np.ndarray:
    """Q15 normalised values of the last axis of integer ``x`` (int64 out)."""
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[-1]
    total = x.sum(axis=-1, keepdims=True)
    numerator = n * x - total
    denominator = n * (x * x).sum(axis=-1, keepdims=True) - total * total + eps_int
    r, k = rsqrt_q15(denominator)
    product = numerator * r
    shifted = np.where(k > 0, qmath.rshift_round(product, np.maximum(k, 0)), product)
    return np.clip(shifted, -(1 << 31), (1 << 31) - 1)
