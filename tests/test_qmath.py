"""The arithmetic contract (design §3), pinned by hand-derived integers and properties."""

from fractions import Fraction
from math import floor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinker import qmath
from thinker.errors import ThinkerModelError


@pytest.mark.parametrize(
    ("v", "s", "expected"),
    [
        (-3, 1, -1),  # -1.5 -> -1: ties go toward +inf
        (3, 1, 2),  # 1.5 -> 2
        (-5, 1, -2),  # -2.5 -> -2
        (-128, 8, 0),  # -0.5 -> 0
        (128, 8, 1),  # 0.5 -> 1
        (-129, 8, -1),  # -0.50390625 -> -1
        (5, 2, 1),  # 1.25 -> 1
        (6, 2, 2),  # 1.5 -> 2
        (-6, 2, -1),  # -1.5 -> -1
        (-7, 2, -2),  # -1.75 -> -2
        (7, 0, 7),  # zero shift: unchanged
        (-7, 0, -7),
        (3, -2, 12),  # negative shift: left shift
        (-3, -3, -24),
    ],
)
def test_rshift_round_rounds_half_toward_positive_infinity(v, s, expected):
    assert qmath.rshift_round(v, s) == expected
    assert qmath.rshift_round(np.array([v], dtype=np.int64), s)[0] == expected


def test_rshift_round_accepts_a_shift_per_channel():
    v = np.array([[-3, 3, 7], [-5, 5, 7]], dtype=np.int64)
    s = np.array([1, 1, -1])
    assert qmath.rshift_round(v, s).tolist() == [[-1, 2, 14], [-2, 3, 14]]


@pytest.mark.parametrize(
    ("bits", "signed", "lo", "hi"),
    [(4, True, -8, 7), (8, True, -128, 127), (16, True, -32768, 32767),
     (32, True, -(2**31), 2**31 - 1), (4, False, 0, 15), (8, False, 0, 255),
     (16, False, 0, 65535), (32, False, 0, 2**32 - 1)],
)
def test_saturate_clamps_at_both_ends(bits, signed, lo, hi):
    v = np.array([lo - 1, lo, 0, hi, hi + 1, -(2**40), 2**40], dtype=np.int64)
    out = qmath.saturate(v, bits, signed)
    assert out.tolist() == [lo, lo, 0, hi, hi, lo, hi]


def test_rescale_rounds_then_saturates():
    v = np.array([255, 256, 257, -255, -256, -257, -258], dtype=np.int64)
    # /2 with ties up: 127.5->128->127 (sat), 128->127, 128.5->129->127, -127.5->-127,
    # -128, -128.5->-128, -129->-128 (sat)
    assert qmath.rescale(v, 1, 8).tolist() == [127, 127, 127, -127, -128, -128, -128]


def test_rescale_keeps_in_range_values_when_shift_is_zero():
    v = np.array([-128, 0, 127], dtype=np.int8)
    assert qmath.rescale(v, 0, 8).tolist() == [-128, 0, 127]
    assert qmath.rescale(np.array([300, -300]), 0, 8).tolist() == [127, -128]


@pytest.mark.parametrize(
    ("scale", "q"), [(1.0, 0), (64.0, 6), (0.25, -2), (2.0**20, 20), (2.0**-30, -30)]
)
def test_exponent_of_scale_accepts_exact_powers_of_two(scale, q):
    assert qmath.exponent_of_scale(scale) == q
    assert qmath.scale_of_exponent(q) == scale


@pytest.mark.parametrize("scale", [3.0, 0.3, 100.0, 64.0001, 0.0, -4.0, float("inf"),
                                   float("nan")])
def test_exponent_of_scale_rejects_other_values_naming_them(scale):
    with pytest.raises(ThinkerModelError, match=r"conv1 attribute scale_x: scale") as info:
        qmath.exponent_of_scale(scale, "conv1 attribute scale_x")
    assert repr(scale) in str(info.value)


def test_quantize_rounds_half_up_and_saturates():
    x = np.array([0.5, -0.5, 1.5, -1.5, 0.49, -0.51, 200.0, -200.0], dtype=np.float32)
    # q = 0: floor(x + 0.5)
    assert qmath.quantize(x, 0, 8).tolist() == [1, 0, 2, -1, 0, -1, 127, -128]
    # q = 6: 1/128 * 64 = 0.5 -> 1
    assert qmath.quantize(np.array([1 / 128, -1 / 128, 1.984375, 2.0]), 6, 8).tolist() == \
        [1, 0, 127, 127]


def test_dequantize_divides_by_the_scale():
    assert qmath.dequantize(np.array([64, -3, 127]), 6).tolist() == [1.0, -3 / 64, 127 / 64]


def test_quantize_weight_rounds_half_to_even():
    w = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    assert qmath.quantize_weight(w, 0, 8).tolist() == [0, 2, 2, 0, -2, -2]


def test_round_half_up_div_matches_hand_values():
    num = np.array([7, 8, -7, -8, 9, -9, 1, -1])
    # /2 and /6 with ties toward +inf
    assert qmath.round_half_up_div(num, 2).tolist() == [4, 4, -3, -4, 5, -4, 1, 0]
    assert qmath.round_half_up_div(num, 6).tolist() == [1, 1, -1, -1, 2, -1, 0, 0]


@given(st.integers(-(2**40), 2**40), st.integers(-20, 40))
def test_rshift_round_equals_exact_rational_rounding(v, s):
    expected = floor(Fraction(v, 2**s) + Fraction(1, 2)) if s >= 0 else v * 2 ** (-s)
    assert qmath.rshift_round(v, s) == expected
    assert int(qmath.rshift_round(np.array([v], dtype=np.int64), s)[0]) == expected


@given(st.integers(-(2**40), 2**40), st.integers(1, 10**6), st.integers(-8, 8))
def test_rescale_div_equals_exact_rational_rounding(v, den, shift):
    exact = Fraction(v, den) * Fraction(2) ** (-shift)
    expected = min(max(floor(exact + Fraction(1, 2)), -(2**31)), 2**31 - 1)
    assert int(qmath.rescale_div(v, shift, den, 32)) == expected


@given(st.lists(st.integers(-128, 127), min_size=1, max_size=50), st.integers(-12, 12))
def test_dequantize_then_quantize_is_identity(values, q):
    v = np.array(values, dtype=np.int64)
    assert qmath.quantize(qmath.dequantize(v, q), q, 8).tolist() == values


@given(st.floats(-1e4, 1e4, allow_nan=False, width=32), st.integers(-6, 10))
def test_quantize_then_dequantize_is_within_half_a_step(x, q):
    v = int(qmath.quantize(np.array([x], dtype=np.float32), q, 32)[0])
    assert abs(Fraction(v, 1) / Fraction(2) ** q - Fraction(x)) <= Fraction(1, 2) / Fraction(2) ** q


@given(st.integers(-(2**22), 2**22), st.integers(-5, 20), st.sampled_from([8, 16]))
def test_folded_float_requant_equals_integer_rescale(acc, shift, bits):
    """The float path kernels use (qmath.folded_*) gives rescale()'s integers."""
    scale, half, offset = qmath.folded_requant_factors(shift, bits)
    bound = qmath.folded_bound(abs(acc), shift, bits)
    dtype = qmath.float_dtype_for_bound(bound)
    y = np.array([(acc + half) * scale + offset], dtype=dtype)
    assert int(qmath.saturate_folded(y, bits)[0]) == int(qmath.rescale(acc, shift, bits))


INT_DTYPES = st.sampled_from([np.int8, np.int16, np.int32])


@given(st.data(), INT_DTYPES, st.integers(-12, 20), st.sampled_from([8, 16, 32]))
def test_rescale_into_a_narrow_work_array_equals_rescale(data, dtype, s, bits):
    info = np.iinfo(dtype)
    values = data.draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=1,
                                max_size=20))
    v = np.array(values, dtype=dtype)
    in_bits = info.bits
    # the narrowest work dtype that holds |v| << -s and |v| + 2**(s-1) (kernels' rule)
    work = qmath.work_dtype(max(in_bits - 1 + max(0, -s), s - 1, bits - 1) + 2)
    out = qmath.rescale_into(v, s, bits, np.empty(v.shape, dtype=work))
    assert out.tolist() == qmath.rescale(v.astype(np.int64), s, bits).tolist()


@given(st.data(), INT_DTYPES, INT_DTYPES, st.integers(-4, 12), st.integers(-4, 12),
       st.integers(-4, 12), st.sampled_from([8, 16]), st.booleans(), st.booleans())
def test_rescaled_sum_in_its_work_dtype_equals_the_int64_definition(
        data, dx, dy, qx, qy, qo, bits, subtract, broadcast):
    from thinker.ops.elementwise import IqAdd

    def ints(dtype, shape):
        info = np.iinfo(dtype)
        flat = data.draw(st.lists(st.integers(int(info.min), int(info.max)),
                                  min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return np.array(flat, dtype=dtype).reshape(shape)

    x = ints(dx, (3, 2, 4)).transpose(1, 0, 2)  # a transposed layout, as conv outputs have
    y = ints(dy, (2, 1, 4) if broadcast else (2, 3, 4))
    in_bits = [np.iinfo(dx).bits, np.iinfo(dy).bits]
    work = qmath.work_dtype(IqAdd.magnitude_bits(in_bits, qx, qy, qo, bits))
    a = qmath.rescale(x.astype(np.int64), qx - qo, bits)
    b = qmath.rescale(y.astype(np.int64), qy - qo, bits)
    expected = qmath.saturate(a - b if subtract else a + b, bits)
    out = np.empty(x.shape, dtype=qmath.storage_dtype(bits))
    got = qmath.rescaled_sum(x, qx, y, qy, qo, bits, subtract=subtract, work=work, out=out)
    assert got is out and out.tolist() == expected.tolist()
    assert qmath.rescaled_sum(x, qx, y, qy, qo, bits, subtract=subtract).tolist() == \
        expected.tolist()
