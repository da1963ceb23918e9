"""Sigmoid and tanh: 16-segment piecewise-linear tables per kernel family (tables.toml).

The op path (iqSigmoid / iqTanh) as the original linger computes it:

1. the integer input at exponent ``qx`` moves to the kernel's input format Q<input_q> (venus
   Q11, others Q27): a left shift, or ``rshift_round`` when ``qx`` is finer; the Q27 families
   then clamp to int32 (venus does not: a Q11 value beyond the table, |v| > 32768, gives 0);
2. the table (``pwl_kernel``) gives Q<output_q> (venus Q15, arcs/mars Q31, venusA Q58);
3. ``rescale`` to the output exponent with ``rshift_round`` and saturation to ``o_bits``.
"""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.nonlinear.tables import PiecewiseLinear, family_of, pwl

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
MAX_FORMAT_SHIFT = 48  # |kernel Q - input exponent| the op accepts (int64 stays exact)


def pwl_kernel(table: PiecewiseLinear, v: np.ndarray) -> np.ndarray:
    """The table on int64 values ``v`` at Q<input_q>; int64 at Q<output_q>."""
    v = np.asarray(v, dtype=np.int64)
    magnitude = np.abs(v)
    segment = np.searchsorted(table.bands[1:], magnitude, side="left")
    inside = segment < len(table.slopes)
    s = np.minimum(segment, len(table.slopes) - 1)
    operand = np.where(inside, v, 0)
    if table.product_min is not None:
        operand = np.maximum(operand, table.product_min)
    bias = np.where(v >= 0, table.bias_pos[s], table.bias_neg[s]) << table.bias_shift
    out = ((table.slopes[s] * operand) >> table.shifts[s]) + bias
    return np.where(inside, out, 0)


def to_kernel_input(x: np.ndarray, qx: int, table: PiecewiseLinear, clamp32: bool) -> np.ndarray:
    """Integers at exponent ``qx`` as the kernel's Q<input_q> input (int64)."""
    shift = qx - table.input_q
    v = qmath.rshift_round(np.asarray(x, dtype=np.int64), shift)
    return np.clip(v, INT32_MIN, INT32_MAX) if clamp32 else v


def activation(function: str, x: np.ndarray, qx: int, qo: int, bits: int,
               platform: str | None) -> np.ndarray:
    """iqSigmoid (``function='sigmoid'``) or iqTanh (``'tanh'``): int64 at exponent ``qo``."""
    family = family_of(platform)
    table = pwl(family, function)
    v = to_kernel_input(x, qx, table, clamp32=family != "venus")
    return qmath.rescale(pwl_kernel(table, v), table.output_q - qo, bits)
