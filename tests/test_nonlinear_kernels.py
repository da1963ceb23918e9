"""thinker.nonlinear against the original linger 3.0.9 kernels, integer for integer.

Two oracles: ``sweep.npz`` (the original's own outputs, ../shared/data/orig-linger-kernels) and
``nonlinear_literal`` (literal transcriptions of the original C++ and op paths, checked here
against that sweep first) for whole-domain and extreme inputs. Equality only.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

import nonlinear_literal as lit
from shared_data import SHARED_DATA
from thinker.nonlinear import c_tables, layernorm, pwl, softmax, tables

SWEEP = os.path.join(SHARED_DATA, "orig-linger-kernels", "sweep.npz")
FAMILIES = ("venus", "arcs", "venusA")
FUNCTIONS = ("sigmoid", "tanh")
SWEEP_NAME = {"venus": "venus", "arcs": "arcs", "venusA": "venusa"}  # lingerext names
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT16 = np.arange(-(1 << 15), 1 << 15, dtype=np.int64)
INT8 = np.arange(-128, 128, dtype=np.int64)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def sweep() -> dict[str, np.ndarray]:
    if not os.path.exists(SWEEP):
        pytest.skip(f"shared data not found at {SWEEP}")
    with np.load(SWEEP) as data:
        return {key: data[key] for key in data.files}


# --- a) the original's own outputs (sweep.npz, contract in its README.md) ------------------------

def _sweep_entry(key: str, sweep: dict, impl: str) -> np.ndarray:
    """What ``impl`` ('ours' or 'literal') gives for the inputs of sweep entry ``key``."""
    parts = key.split("/")
    if parts[0] == "raw" and parts[1].endswith(("qsigmoid_forward", "qtanh_forward")):
        family = next(f for f in FAMILIES if parts[1].startswith(SWEEP_NAME[f] + "_"))
        function = "sigmoid" if "qsigmoid" in parts[1] else "tanh"
        x = INT16 if family == "venus" else INT16 << 16
        if impl == "literal":
            return lit.PWL_KERNELS[(family, function)](x)
        return pwl.pwl_kernel(tables.pwl(family, function), x)
    if parts[0] == "raw" and parts[1].endswith("qsoftmax_forward"):
        family = next(f for f in FAMILIES if parts[1] == SWEEP_NAME[f] + "_qsoftmax_forward")
        k = int(parts[2][1:])
        rows = softmax.wrap32(sweep["softmax_int8_rows"].astype(np.int64) << (25 - k))
        if impl == "literal":
            return lit.SOFTMAX_KERNELS[family](rows)
        return softmax.softmax_q25_rows(family, rows)
    if parts[0] == "raw" and parts[1] == "qlayernorm_kernel_forward":
        q = int(parts[2][1:])
        rows = sweep["layernorm_int8_rows"].astype(np.int64)
        eps = layernorm.eps_q(1e-5, q, rows.shape[-1])
        if impl == "literal":
            return lit.qlayernorm_kernel(*lit.layernorm_numerator_denominator(rows, eps))
        return layernorm.normalize_rows(rows, eps)
    if parts[0] == "op":
        platform, function, k = parts[1], parts[2], int(parts[3].split("_s")[1])
        if function == "softmax":
            rows = sweep["softmax_int8_rows"].astype(np.int64)
            if impl == "literal":
                return lit.softmax_op(rows, -1, k, 7, 8, platform)
            return softmax.softmax_op(rows, -1, k, 7, 8, platform)
        if impl == "literal":
            return lit.activation_op(function, INT8, k, 7, 8, platform)
        return pwl.activation(function, INT8, k, 7, 8, platform)
    raise AssertionError(f"sweep entry {key} has no rule here")


SWEEP_INPUTS = ("softmax_int8_rows", "layernorm_int8_rows")


def _mismatches(sweep: dict, impl: str) -> list[str]:
    bad = []
    for key, expected in sweep.items():
        if key in SWEEP_INPUTS:
            continue
        got = _sweep_entry(key, sweep, impl)
        if got.shape != expected.shape or not np.array_equal(got, expected):
            where = np.argwhere(got.reshape(expected.shape) != expected)[:3].tolist() \
                if got.size == expected.size else "shape"
            bad.append(f"{key}: first differences at {where}")
    return bad


def test_every_sweep_entry_of_the_original_equals_ours(sweep):
    assert len(sweep) == 95  # 6 pwl + 9 softmax + 3 layernorm + 66 pwl ops + 9 softmax ops + 2
    assert _mismatches(sweep, "ours") == []


def test_the_literal_transcriptions_reproduce_every_sweep_entry_of_the_original(sweep):
    """The second oracle is trustworthy where the first one reaches."""
    assert _mismatches(sweep, "literal") == []


# --- b) whole domains against the literal transcriptions -----------------------------------------

def _ours_pwl(family: str, function: str, x) -> np.ndarray:
    return pwl.pwl_kernel(tables.pwl(family, function), x)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_venus_kernel_equals_the_original_on_every_int16_and_beyond(function):
    """Every int16 Q11 input, then the unclamped Q11 range the op can feed (|v| > 32768 lies
    outside the bands: the original gives 0 there), random int32 and the int32 extremes."""
    x = np.concatenate([
        np.arange(-(1 << 18), 1 << 18),
        _rng(1).integers(INT32_MIN + 1, INT32_MAX, 500_000, endpoint=True),
        [INT32_MIN + 1, INT32_MAX, -32769, -32768, 32767, 32768, 32769]])
    if function == "tanh":
        x = np.append(x, INT32_MIN)
    assert np.array_equal(_ours_pwl("venus", function, x),
                          lit.PWL_KERNELS[("venus", function)](x))


@pytest.mark.xfail(strict=True, reason=(
    "venus_qsigmoid on INT32_MIN: the original's int32 absx = -tmp wraps to INT32_MIN, which "
    "passes 'absx <= 971' (band 0); slope * tmp wraps to 0, so it returns bias1s[0] = 16384. "
    "pwl_kernel takes |v| = 2**31 as outside the bands and returns 0."))
def test_venus_sigmoid_kernel_at_int32_min_wraps_like_the_original():
    x = np.array([INT32_MIN])
    assert np.array_equal(_ours_pwl("venus", "sigmoid", x), lit.venus_qsigmoid(x))


def _q27_inputs(function: str) -> np.ndarray:
    bands = lit.ARCS_SIGMOID_BANDS if function == "sigmoid" else lit.ARCS_TANH_BANDS
    edges = np.array(bands, dtype=np.int64)[:, None] + np.array([-1, 0, 1])
    edges = np.concatenate([edges.ravel(), -edges.ravel()])
    edges = edges[(edges >= INT32_MIN) & (edges <= INT32_MAX)]
    return np.concatenate([
        _rng(2).integers(INT32_MIN, INT32_MAX, 2_000_000, endpoint=True), edges,
        INT16 << 16, [INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1, -1, 0, 1]])


@pytest.mark.parametrize("family", ["arcs", "venusA"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_q27_kernel_equals_the_original_on_random_int32_band_edges_and_extremes(family, function):
    x = _q27_inputs(function)
    assert np.array_equal(_ours_pwl(family, function, x), lit.PWL_KERNELS[(family, function)](x))


def _near_rounding_ties() -> np.ndarray:
    """Differences d in [-2**31, 0] whose product with log2(e) in Q29 (774541002) lies within
    2**9 of a rounding tie of the shift by 31: the only places where the venus kernel's
    (double) conversion (53 bits) can decide a rounding. (It does for 69 of them, all below
    -2**30, whose exponentials then vanish: no output depends on it; as_double has its own
    test below.)"""
    c = 774541002
    inverse = pow(c // 2, -1, 1 << 30)
    d = []
    for delta in range(-512, 513, 2):
        t = ((1 << 29) + delta // 2) * inverse % (1 << 30)
        d += [t - k * (1 << 30) for k in (1, 2) if t - k * (1 << 30) >= INT32_MIN]
    return np.array(d, dtype=np.int64)


def _softmax_rows(n: int, seed: int) -> np.ndarray:
    """Q25 rows of length n: int8 rows at every input exponent 0..10 (clamped as the op does,
    and wrapped as a C narrowing would), random int32 rows, extremes, and rows whose
    differences from their maximum hit the double-rounding cases."""
    rng = _rng(seed)
    count = max(4, 16384 // n)
    sets = []
    if n > 1:
        d = _near_rounding_ties()
        d = np.resize(d, (-(-d.size // (n - 1)), n - 1))
        for top in (0, INT32_MAX, 1 << 24):
            sets.append(np.concatenate([np.full((len(d), 1), top), top + d], axis=1))
    for k in range(11):
        r = rng.integers(-128, 128, (count, n)) << (25 - k)
        sets += [np.clip(r, INT32_MIN, INT32_MAX), softmax.wrap32(r)]
    sets.append(rng.integers(INT32_MIN, INT32_MAX, (4 * count, n), endpoint=True))
    sets.append(rng.integers(-(1 << 27), 1 << 27, (4 * count, n)))
    for value in (0, 12345, -7, INT32_MIN, INT32_MAX):  # all equal
        sets.append(np.full((1, n), value))
    r = rng.integers(-(1 << 25), 1 << 25, (count, n))
    r[:, 0] = INT32_MAX  # one huge outlier
    sets.append(r)
    r = rng.integers(-(1 << 25), 1 << 25, (count, n))
    r[:, -1] = INT32_MIN
    sets.append(r)
    r = rng.integers(INT32_MIN, INT32_MAX, (count, n), endpoint=True)
    r[:, n // 2] = INT32_MAX
    r[:, 0] = INT32_MIN
    sets.append(r)
    r = np.full((count, n), INT32_MIN)
    r[:, rng.integers(0, n, count)] = rng.integers(INT32_MIN, INT32_MAX, count)
    sets.append(r)
    return np.concatenate(sets).astype(np.int64)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n", [1, 2, 3, 16, 100, 2048])
def test_softmax_kernel_equals_the_original_on_random_and_extreme_rows(family, n):
    rows = _softmax_rows(n, seed=n)
    assert np.array_equal(softmax.softmax_q25_rows(family, rows),
                          lit.SOFTMAX_KERNELS[family](rows))


def _layernorm_rows(n: int, bits: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rows = rng.integers(lo, hi, (max(8, 8192 // n), n), endpoint=True)
    rows[0], rows[1], rows[2], rows[3] = lo, hi, 0, 5  # constant rows: zero variance
    rows[4, ::2], rows[4, 1::2] = lo, hi  # the widest spread
    rows[5] = rng.integers(-2, 3, n)
    rows[6] = lo
    rows[6, 0] = hi  # one outlier
    return rows


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("n", [1, 2, 3, 16, 32, 100, 768, 2048])
def test_layernorm_kernel_equals_the_original_at_every_input_exponent(bits, n):
    rows = _layernorm_rows(n, bits, seed=n + bits)
    for q in range(16):
        eps = layernorm.eps_q(1e-5, q, n)
        expected = lit.qlayernorm_kernel(*lit.layernorm_numerator_denominator(rows, eps))
        assert np.array_equal(layernorm.normalize_rows(rows, eps), expected), (q, eps)


def test_layernorm_reciprocal_square_root_equals_the_original_on_every_bit_length():
    rng = _rng(5)
    d = rng.integers(0, 1 << 62, 400_000) >> rng.integers(2, 63, 400_000)
    powers = np.left_shift(np.int64(1), np.arange(60))
    d = np.concatenate([d, [0, 1, 2, 3, 255, 256, 257], powers, powers - 1, powers + 1,
                        [(1 << 60) - 1]])
    table, shift = lit.calc_sqrt_reciprocal(d)
    r, k = layernorm.rsqrt_q15(d)
    assert np.array_equal(r, table)
    assert np.array_equal(k, shift)


def test_the_rsqrt_table_is_the_integer_formula_the_c_executor_computes():
    # executor/src/ops/nonlinear.c computes each entry instead of storing the table: the largest
    # r with r * r * t <= 2**38, capped at 32767 (math.isqrt is an independent integer root)
    _, table = tables.layernorm()
    formula = [min(32767, math.isqrt((1 << 38) // t)) for t in range(256, 256 + len(table))]
    assert table.tolist() == formula


def test_the_normalize_steps_are_the_formula_the_c_executor_computes():
    # executor/src/ops/nonlinear.c (rsqrt_q15) computes step i instead of storing the table: the
    # first i with D & (3 << (58 - 2 i)) != 0, shift 50 - 2 i, q1 30 - i. The table's masks may
    # hold more bits, but only bits an earlier step tests, so the first match is the same D for D
    normalize, _ = tables.layernorm()
    rng = _rng(7)
    d = rng.integers(0, 1 << 62, 20_000) >> rng.integers(0, 63, 20_000)
    powers = np.left_shift(np.int64(1), np.arange(63))
    for value in np.concatenate([d, [0, 1, 2, 3], powers, powers - 1, powers + 1]).tolist():
        table = next(((s, q) for m, s, q in normalize.tolist() if value & m), None)
        formula = next(((50 - 2 * i, 30 - i) for i in range(len(normalize))
                        if value & (3 << (58 - 2 * i))), None)
        assert table == formula, value
    assert len(normalize) == 30


def test_the_log2e_over_x0_values_are_the_division_the_c_executor_computes():
    # executor/src/ops/nonlinear.c (log2e_over_x0) stores only C = THK_LOG2E_Q38 and divides it
    # by 257 + 2 k by 16-bit digits, on uint32 registers
    from thinker.nonlinear import logarithm

    pairs, _ = logarithm._table()
    c = int(re.search(r"THK_LOG2E_Q38 UINT64_C\((\d+)\)", c_tables.render()).group(1))
    hi, lo = c >> 16, c & 0xFFFF
    for k, value in enumerate(pairs[1::2].tolist()):
        d = 257 + 2 * k
        assert hi < 1 << 32 and (hi % d) << 16 | lo < 1 << 32
        assert ((hi // d) << 16) + (((hi % d) << 16) | lo) // d == c // d == value, k


def test_layernorm_eps_equals_the_originals_float32_q_eps():
    cases = [(q, n) for q in range(16) for n in (1, 2, 3, 16, 32, 64, 100, 256, 384, 512, 768,
                                                   1024, 2048)]
    assert [layernorm.eps_q(1e-5, q, n) for q, n in cases] == \
        [lit.layernorm_q_eps(1e-5, q, n) for q, n in cases]


# op paths: every int16 value (so every int8 value too: only the integer and its exponent enter)
OUTPUTS = {"venus": [(7, 8), (0, 8), (4, 8), (12, 8), (15, 16), (8, 16), (20, 16)],
           "arcs": [(7, 8), (15, 16)], "venusA": [(7, 8), (15, 16)]}  # (qo, o_bits)


@pytest.mark.parametrize("platform", FAMILIES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_activation_op_equals_the_original_on_every_int16_at_every_exponent(platform, function):
    """arcs/mars/venusA requantize to o_bits - 1 fractional bits: their qo is o_bits - 1."""
    for qx in range(-4, 21):
        for qo, bits in OUTPUTS[platform]:
            expected = lit.activation_op(function, INT16, qx, qo, bits, platform)
            assert np.array_equal(pwl.activation(function, INT16, qx, qo, bits, platform),
                                  expected), (qx, qo, bits)


def test_ops_on_mars_are_the_arcs_kernels():
    for function in FUNCTIONS:
        assert np.array_equal(pwl.activation(function, INT16, 5, 15, 16, "mars"),
                              lit.activation_op(function, INT16, 5, 15, 16, "arcs"))
    rows = INT16.reshape(-1, 64)
    assert np.array_equal(softmax.softmax_op(rows, -1, 9, 7, 8, "mars"),
                          lit.softmax_op(rows, -1, 9, 7, 8, "arcs"))


SOFTMAX_OUTPUTS = [(7, 8), (2, 8), (15, 16), (11, 16)]


@pytest.mark.parametrize("platform", FAMILIES)
def test_softmax_op_equals_the_original_on_every_int16_at_every_exponent(platform):
    rng = _rng(6)
    rows = np.concatenate([rng.permutation(INT16).reshape(-1, 16),
                           rng.permutation(INT8).reshape(-1, 16),
                           rng.integers(-128, 128, (64, 16)),
                           np.full((2, 16), -128), np.full((2, 16), 32767)])
    for qx in range(-4, 21):
        for qo, bits in SOFTMAX_OUTPUTS:
            expected = lit.softmax_op(rows, -1, qx, qo, bits, platform)
            assert np.array_equal(softmax.softmax_op(rows, -1, qx, qo, bits, platform),
                                  expected), (qx, qo, bits)


@pytest.mark.parametrize("platform", FAMILIES)
def test_softmax_op_over_any_axis_equals_the_original(platform):
    x = _rng(7).integers(-32768, 32768, (5, 7, 9))
    for axis in (0, 1, 2, -1, -2):
        for qx in (0, 6, 13):
            assert np.array_equal(softmax.softmax_op(x, axis, qx, 7, 8, platform),
                                  lit.softmax_op(x, axis, qx, 7, 8, platform)), (axis, qx)


# --- c) the venus softmax's (double) conversion --------------------------------------------------

def test_as_double_equals_the_int64_to_float64_conversion_at_every_bit_length():
    """Every bit length 0..63 (random values, both signs) plus exact ties and their neighbours
    beyond 53 bits. Positive values >= 2**63 - 512 are left out: they round to 2**63, which no
    int64 holds."""
    rng = _rng(8)
    values = [np.array([0, -1, 1, INT32_MIN, INT32_MAX, -(1 << 63), -(1 << 63) + 1,
                        (1 << 63) - 513, -(1 << 63) + 513])]
    for length in range(1, 64):
        top = np.int64(1) << np.int64(length - 1)
        low = rng.integers(0, top, 20_000) if length > 1 else np.zeros(20_000, np.int64)
        v = top + low
        values += [v, -v]
        extra = length - 53
        if extra > 0:
            kept = (v >> extra) << extra
            half = np.int64(1) << np.int64(extra - 1)
            for tie in (kept + half, kept + half - 1, kept + half + 1):
                tie = tie[(tie >> (length - 1)) == 1]  # keep the bit length
                values += [tie, -tie]
    p = np.concatenate(values).astype(np.int64)
    p = p[p < (1 << 63) - 512]
    expected = p.astype(np.float64)
    got = softmax.as_double(p)
    assert np.array_equal(got.astype(np.float64), expected)
    assert np.array_equal(got, expected.astype(np.int64))
