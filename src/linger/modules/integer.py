"""Helpers for ops whose training forward runs the integer kernel itself.

Such an op computes its integers with the thinker kernel on the integers its (fake-quantized)
training inputs hold, and lets the gradient flow through a float surrogate:
the forward value is the integer result's, the backward the surrogate's (straight through), so
QAT trains with exactly what the executor computes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from linger.fakequant import weight_exponent
from thinker import qmath

CONSTANT_BITS = 16  # Python-number operands that are not powers of two


def power_of_two(c: float) -> int | None:
    """k with ``|c| == 2**k`` exactly, else None."""
    if not math.isfinite(c) or c == 0:
        return None
    mantissa, e = math.frexp(abs(c))
    return e - 1 if mantissa == 0.5 else None


def constant_16bit(c: float) -> tuple[int, int]:
    """(integer, exponent) of a Python-number operand: 16 bits at the finest exponent that
    holds it, rounded half to even (as weights are)."""
    q = weight_exponent(abs(float(c)), CONSTANT_BITS)
    return int(qmath.quantize_weight(np.float64(c), q, CONSTANT_BITS)), q


def quantize_number(c: float, q: int, bits: int) -> int:
    """A Python number as an integer at exponent ``q`` (``qmath.quantize``: half up,
    saturated)."""
    return int(qmath.quantize(np.array([c], dtype=np.float64), q, bits)[0])


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, torch.Tensor)
