"""Natural logarithm of Q15 values in Q25, for LogSoftmaxInt.

The table method of the original thinker executor's arcs log routine, in exact integer
arithmetic: normalise p so bit 30 is set (n shifts), take the top 7 fraction bits as the
segment k and the rest as the offset dx from the segment's midpoint, then
``log2(p / 2**15)`` in Q25 is ``((T[2k] << 32) + 2 * T[2k+1] * dx) >> 38`` (saturated to int64
first, as the original's 64-bit multiply-accumulate) plus ``(16 - n) << 25``; multiplied by ln 2
(Q31) with round half away from zero. p <= 0 gives INT32_MIN (ln 0 = -inf).

Where the original converts the final product to a C double (inexact beyond 2**53), we round
the exact product: this op's integers are ours, documented in docs/ops.md.
"""

from __future__ import annotations

import functools

import numpy as np

from thinker.nonlinear.tables import _data

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
INPUT_Q, OUTPUT_Q = 15, 25


@functools.cache
def _table() -> tuple[np.ndarray, int]:
    t = _data()["logarithm"]
    return np.array(t["log2_pairs"], dtype=np.int64), int(t["ln2_q31"])


def _saturating_add64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        s = a + b
    overflow = ((a >= 0) == (b >= 0)) & ((s >= 0) != (a >= 0))
    return np.where(overflow, np.where(a >= 0, INT64_MAX, INT64_MIN), s)


def ln_q15_to_q25(p: np.ndarray) -> np.ndarray:
    """ln(p / 2**15) in Q25 (int64) for int32-range p; INT32_MIN where p <= 0."""
    table, ln2 = _table()
    p = np.asarray(p, dtype=np.int64)
    positive = p > 0
    v = np.where(positive, p, 1)
    _, e = np.frexp(v.astype(np.float64))  # exact bit length for |v| < 2**53
    n = 31 - e.astype(np.int64)
    x = (v << n) - (1 << 30)
    dx = ((x & ((1 << 23) - 1)) - (1 << 22)) << 2
    k = x >> 23
    yf = _saturating_add64(table[2 * k] << 32, 2 * table[2 * k + 1] * dx)
    log2_q25 = (yf >> 38) + ((16 - n) << 25)
    product = log2_q25 * ln2
    magnitude = (np.abs(product) + (1 << 30)) >> 31
    ln = np.clip(np.sign(product) * magnitude, INT32_MIN, INT32_MAX)
    return np.where(positive, ln, INT32_MIN)
