"""linger's torch rounding functions against thinker.qmath, and their gradients."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from linger import fakequant
from thinker import qmath

floats32 = arrays(np.float32, st.integers(1, 64),
                  elements=st.floats(-1e4, 1e4, width=32, allow_nan=False))
exponents = st.integers(-8, 20)
bits = st.sampled_from([4, 8, 16])


@settings(deadline=None, max_examples=200)
@given(floats32, exponents, bits)
def test_quantize_ints_mirrors_qmath_quantize(x, q, b):
    ours = fakequant.quantize_ints(torch.from_numpy(x), q, b).numpy()
    assert np.array_equal(ours.astype(np.int64), qmath.quantize(x, q, b))


@settings(deadline=None, max_examples=200)
@given(floats32, exponents, bits)
def test_quantize_weight_ints_mirrors_qmath_quantize_weight(x, q, b):
    ours = fakequant.quantize_weight_ints(torch.from_numpy(x), q, b).numpy()
    assert np.array_equal(ours.astype(np.int64), qmath.quantize_weight(x, q, b))


@settings(deadline=None, max_examples=100)
@given(arrays(np.int64, st.integers(1, 64), elements=st.integers(-2**20, 2**20)),
       st.integers(-4, 12), st.integers(0, 10), bits)
def test_fake_quantize_of_grid_values_is_the_executor_rescale(v, qx, shift, b):
    """On values already on a grid (what QTensors hold), re-quantizing to a coarser exponent is
    exactly qmath.rescale: the rounding of iqAdd, iqCat and every output stage."""
    x = torch.from_numpy(qmath.dequantize(v, qx).astype(np.float64))
    ours = fakequant.quantize_ints(x, qx - shift, b).numpy().astype(np.int64)
    assert np.array_equal(ours, qmath.rescale(v, shift, b))


def test_ties_round_up_for_activations_and_to_even_for_weights():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert fakequant.quantize_ints(x, 0, 8).tolist() == [-2, -1, 0, 1, 2, 3]
    assert fakequant.quantize_weight_ints(x, 0, 8).tolist() == [-2, -2, -0, 0, 2, 2]


@given(st.floats(1e-6, 1e4), st.sampled_from([4, 8]))
def test_weight_exponent_never_saturates_and_is_the_largest_such(absmax, b):
    q = fakequant.weight_exponent(absmax, b)
    limit = 2 ** (b - 1) - 1
    assert absmax * 2.0 ** q <= limit
    assert absmax * 2.0 ** (q + 1) > limit or q == fakequant.EXPONENT_MAX


def test_mom_exponent_rounds_bits_minus_one_minus_log2_range():
    assert fakequant.range_exponent(1.0, 8) == 7
    assert fakequant.range_exponent(0.9, 8) == 7
    assert fakequant.range_exponent(1.5, 8) == 6      # 7 - 0.585 rounds to 6
    assert fakequant.range_exponent(1.3, 8) == 7      # 7 - 0.379 rounds to 7
    assert fakequant.range_exponent(300.0, 16) == 7
    assert fakequant.range_exponent(0.0, 8) == fakequant.EXPONENT_MAX
    assert fakequant.range_exponent(1e-30, 8) == fakequant.EXPONENT_MAX
    assert fakequant.range_exponent(1e30, 8) == fakequant.EXPONENT_MIN


def test_straight_through_gradient_is_one_inside_the_range_and_zero_where_saturated():
    x = torch.tensor([-3.0, -0.3, 0.0, 0.26, 1.0, 2.0], requires_grad=True)
    y = fakequant.fake_quantize(x, 6, 8)  # representable: [-2, 127/64]
    y.sum().backward()
    assert y.detach().tolist() == [-2.0, -0.296875, 0.0, 0.265625, 1.0, 127 / 64]
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_weight_fake_quantization_passes_gradients_straight_through():
    w = torch.tensor([0.3, -0.7, 0.01], requires_grad=True)
    (fakequant.fake_quantize_weight(w, 7, 8) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0]


def test_tqt_threshold_gradient_follows_clipping_and_rounding():
    """d out / d log2_t is ln2 * s * (round(x/s) - x/s) inside and ln2 * s * bound outside."""
    x = torch.tensor([0.3, -5.0, 9.0])
    log2_t = torch.tensor(0.5, requires_grad=True)       # threshold 2**1: q = 7 - 1 = 6
    out = fakequant.tqt_quantize(x, log2_t, 8)
    out.backward(torch.ones(3))
    s = 2.0 ** -6
    expected = math.log(2) * s * ((round(0.3 / s) - 0.3 / s) + (-128) + 127)
    assert out.tolist() == [round(0.3 / s) * s, -2.0, 127 * s]
    assert math.isclose(log2_t.grad.item(), expected, rel_tol=1e-5)


def test_tqt_learns_a_larger_threshold_when_values_clip_and_a_smaller_one_when_too_coarse():
    x = torch.randn(4096, generator=torch.Generator().manual_seed(0))
    for start, direction in ((-3.0, +1), (6.0, -1)):
        log2_t = torch.tensor(start, requires_grad=True)
        optimizer = torch.optim.SGD([log2_t], lr=0.5)
        for _ in range(40):
            loss = (fakequant.tqt_quantize(x, log2_t, 4) - x).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert (log2_t.item() - start) * direction > 1.0
