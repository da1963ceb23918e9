"""Accumulators cross-checked against onnxruntime's ConvInteger / MatMulInteger (an
independent implementation), then the requantization against qmath on those accumulators."""

import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper

import thinker
from onnx_build import Const, model, node, run_op, run_ort, value_info
from thinker import qmath
from thinker.graph import import_model

# every test here twice: compiled kernels (where they apply) and numpy kernels (conftest)
pytestmark = pytest.mark.usefixtures("kernel_set")

RNG = np.random.default_rng(20261125)

# (in_channels, out_channels, kernel, stride, pads [t, l, b, r], dilation, group)
CONV_GRID = [
    (3, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (4, 6, (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    (4, 4, (5, 5), (1, 1), (2, 1, 0, 3), (1, 1), 1),  # asymmetric pads
    (2, 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),  # dilation
    (3, 5, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # pointwise
    (4, 6, (1, 3), (1, 2), (0, 1, 0, 1), (1, 1), 1),  # rectangular kernel
    (8, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),  # depthwise, large map path
    (16, 16, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 16),  # depthwise stride 2
    (6, 12, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 6),  # depthwise with multiplier 2
    (8, 4, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 2),  # grouped
    (4, 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 4),  # dilated depthwise
    (2, 3, (4, 4), (4, 4), (0, 0, 0, 0), (1, 1), 1),  # stride 4
]


def conv_integer_oracle(x, w, c):
    _, _, kernel, stride, pads, dilation, group = c
    m = model(
        [helper.make_node("ConvInteger", ["x", "w"], ["y"], kernel_shape=list(kernel),
                          strides=list(stride), pads=list(pads), dilations=list(dilation),
                          group=group)],
        [value_info("x", x), value_info("w", w)],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
    )
    return run_ort(m, {"x": x, "w": w})[0].astype(np.int64)


def conv_attrs(c):
    _, _, kernel, stride, pads, dilation, group = c
    return dict(kernel_shape=list(kernel), strides=list(stride), pads=list(pads),
                dilations=list(dilation), group=group)


@pytest.mark.parametrize("case", CONV_GRID, ids=lambda c: f"c{c[0]}o{c[1]}k{c[2]}s{c[3]}"
                         f"p{c[4]}d{c[5]}g{c[6]}")
@pytest.mark.parametrize("size", [(9, 9), (20, 20)], ids=["9x9", "20x20"])
def test_conv2d_accumulator_and_requant_match_onnxruntime(case, size):
    cin, cout, kernel, *_, group = case
    x = RNG.integers(-128, 128, (2, cin, *size), dtype=np.int8)
    w = RNG.integers(-128, 128, (cout, cin // group, *kernel), dtype=np.int8)
    b = RNG.integers(-5000, 5000, cout, dtype=np.int32)
    acc = conv_integer_oracle(x, w, case)
    # no o_bits and scale 1: the output is the float accumulator + bias, exactly
    y_float = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=1.0, scale_w=1.0,
                     **conv_attrs(case))
    assert np.array_equal(y_float.astype(np.int64), acc + b[None, :, None, None])
    # requantized: qx 5 + qw 7 - qo 3 = shift 9 (odd), and shift 8 (even)
    for scale_o, shift in ((8.0, 9), (16.0, 8)):
        y = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=32.0, scale_w=128.0,
                   scale_o=scale_o, o_bits=8, **conv_attrs(case))
        expected = qmath.rescale(acc + b[None, :, None, None], shift, 8)
        assert y.dtype == np.int8
        assert np.array_equal(y.astype(np.int64), expected)


# depthwise convs run as banded per-channel GEMMs (conv.DepthwiseBands): shapes that exercise
# several strips (wide maps), several output rows per GEMM row (small maps), strides whose
# padded height is odd, dilation, asymmetric pads and a 1x1 output
# (channels, kernel, stride, pads [t, l, b, r], dilation, (height, width))
DEPTHWISE_GRID = [
    (8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (32, 32)),  # two strips of 16 columns
    (5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (6, 37)),  # three strips, the last one partial
    (8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (33, 33)),  # stride 2, odd padded height
    (4, (5, 5), (1, 1), (2, 1, 0, 3), (1, 1), (11, 7)),  # asymmetric pads, 5x5 kernel
    (4, (3, 3), (3, 3), (0, 0, 0, 0), (1, 1), (17, 17)),  # stride 3
    (4, (3, 3), (2, 1), (1, 1, 1, 1), (2, 2), (12, 20)),  # mixed strides, dilation
    (6, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1), (5, 40)),  # rectangular kernel
    (16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (4, 4)),  # four output rows per GEMM row
    (4, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), (3, 3)),  # a 1x1 output
]


def _depthwise_case(channels, kernel, stride, pads, dilation):
    return (channels, channels, kernel, stride, pads, dilation, channels)


def depthwise_data(case):
    """(conv, x [3, C, H, W], weights, bias, the onnxruntime accumulator + bias) of a grid row."""
    channels, kernel, stride, pads, dilation, size = case
    conv = _depthwise_case(channels, kernel, stride, pads, dilation)
    x = RNG.integers(-128, 128, (3, channels, *size), dtype=np.int8)
    w = RNG.integers(-128, 128, (channels, 1, *kernel), dtype=np.int8)
    b = RNG.integers(-5000, 5000, channels, dtype=np.int32)
    return conv, x, w, b, conv_integer_oracle(x, w, conv) + b[None, :, None, None]


@pytest.mark.parametrize("case", DEPTHWISE_GRID, ids=lambda c: f"c{c[0]}k{c[1]}s{c[2]}p{c[3]}"
                         f"d{c[4]}x{c[5]}")
def test_depthwise_accumulator_and_requant_match_onnxruntime(case):
    conv, x, w, b, acc = depthwise_data(case)
    y_float = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=1.0, scale_w=1.0,
                     **conv_attrs(conv))
    assert np.array_equal(y_float.astype(np.int64), acc)
    y = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=32.0, scale_w=128.0, scale_o=8.0,
               o_bits=8, **conv_attrs(conv))
    assert np.array_equal(y.astype(np.int64), qmath.rescale(acc, 9, 8))


def test_depthwise_in_channel_chunks_matches_onnxruntime(monkeypatch):
    """Channels go through the cache-sized chunks one at a time, the last chunk partial."""
    from thinker.ops import depthwise as depthwise_module

    conv = _depthwise_case(7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    x = RNG.integers(-128, 128, (4, 7, 20, 20), dtype=np.int8)
    w = RNG.integers(-128, 128, (7, 1, 3, 3), dtype=np.int8)
    acc = conv_integer_oracle(x, w, conv)
    for budget in (1, 40_000, 100_000):  # one channel per chunk, then a few with a partial last
        monkeypatch.setattr(depthwise_module, "CACHE_BYTES", budget)
        y = run_op("Conv2dInt", [x, Const(w)], scale_x=1.0, scale_w=1.0, **conv_attrs(conv))
        assert np.array_equal(y.astype(np.int64), acc)


def test_depthwise_conv1d_and_16bit_input_match_onnxruntime():
    conv = _depthwise_case(6, (1, 5), (1, 2), (0, 2, 0, 1), (1, 1))
    x = RNG.integers(-128, 128, (2, 6, 1, 50), dtype=np.int8)
    w = RNG.integers(-128, 128, (6, 1, 1, 5), dtype=np.int8)
    acc = conv_integer_oracle(x, w, conv)
    y = run_op("Conv1dInt", [x[:, :, 0], Const(w[:, :, 0])], scale_x=1.0, scale_w=1.0,
               kernel_shape=[5], strides=[2], pads=[2, 1], dilations=[1], group=6)
    assert np.array_equal(y.astype(np.int64), acc[:, :, 0])
    # 16-bit input: the bound needs float64; oracle on the two 8-bit halves as above
    x16 = RNG.integers(-32768, 32768, (2, 6, 1, 50), dtype=np.int16)
    hi, lo = (x16 >> 8).astype(np.int8), (x16 & 0xFF).astype(np.uint8)
    acc16 = conv_integer_oracle(hi, w, conv) * 256 + conv_integer_oracle(lo, w, conv)
    y16 = run_op("Conv2dInt", [x16, Const(w)], scale_x=1.0, scale_w=1.0, scale_o=2.0**-4,
                 o_bits=16, **conv_attrs(conv))
    assert np.array_equal(y16.astype(np.int64), qmath.rescale(acc16, 4, 16))


# strided group-1 and grouped convs run as stride-1 convs over the input's phase planes
# (conv._phase_planes) when the padded grid adds little
PHASE_GRID = [
    (6, 8, (3, 3), (2, 2), (1, 0, 2, 1), (2, 2), 1),  # stride and dilation 2, asymmetric pads
    (4, 6, (3, 3), (3, 2), (1, 1, 1, 1), (1, 1), 1),  # different strides per axis
    (8, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),  # grouped
]


@pytest.mark.parametrize("case", PHASE_GRID, ids=lambda c: f"c{c[0]}o{c[1]}s{c[3]}p{c[4]}"
                         f"d{c[5]}g{c[6]}")
def test_strided_conv_on_phase_planes_matches_onnxruntime(case):
    cin, cout, kernel, *_, group = case
    x = RNG.integers(-128, 128, (3, cin, 30, 31), dtype=np.int8)
    w = RNG.integers(-128, 128, (cout, cin // group, *kernel), dtype=np.int8)
    b = RNG.integers(-5000, 5000, cout, dtype=np.int32)
    acc = conv_integer_oracle(x, w, case) + b[None, :, None, None]
    y = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=1.0, scale_w=1.0,
               **conv_attrs(case))
    assert np.array_equal(y.astype(np.int64), acc)


def test_conv2d_16bit_input_needs_float64_and_stays_exact():
    case = (8, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    x16 = RNG.integers(-32768, 32768, (1, 8, 7, 7), dtype=np.int16)
    w = RNG.integers(-128, 128, (4, 8, 3, 3), dtype=np.int8)
    # oracle: split x16 = hi * 256 + lo so each half fits ConvInteger's 8-bit input
    hi, lo = (x16 >> 8).astype(np.int8), (x16 & 0xFF).astype(np.uint8)
    acc = conv_integer_oracle(hi, w, case) * 256 + conv_integer_oracle(lo, w, case)
    y = run_op("Conv2dInt", [x16, Const(w)], scale_x=1.0, scale_w=1.0, scale_o=2.0**-12,
               o_bits=16, **conv_attrs(case))
    assert np.array_equal(y.astype(np.int64), qmath.rescale(acc, 12, 16))


@pytest.mark.parametrize(("cin", "cout", "k", "s", "pads", "outpad", "group"), [
    (3, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    (4, 2, (2, 2), (2, 2), (0, 0, 0, 0), (0, 0), 1),
    (4, 4, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), 2),
    (2, 3, (3, 1), (1, 1), (0, 0, 0, 0), (0, 0), 1),
])
def test_conv_transpose_matches_onnxruntime_on_integer_valued_floats(cin, cout, k, s, pads,
                                                                    outpad, group):
    # the float oracle is exact here: |acc| <= 16 * 127 * 127 * 4 < 2**24
    x = RNG.integers(-128, 128, (2, cin, 5, 6), dtype=np.int8)
    w = RNG.integers(-128, 128, (cin, cout // group, *k), dtype=np.int8)
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(pads),
                 output_padding=list(outpad), group=group)
    m = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)],
              [value_info("x", np.float32, x.shape)], ["y"],
              {"w": w.astype(np.float32)})
    acc = run_ort(m, {"x": x.astype(np.float32)})[0].astype(np.int64)
    y = run_op("ConvTranspose2dInt", [x, Const(w)], scale_x=2.0, scale_w=4.0, scale_o=1.0,
               o_bits=16, **attrs)
    assert y.shape == acc.shape
    assert np.array_equal(y.astype(np.int64), qmath.rescale(acc, 3, 16))


@pytest.mark.parametrize(("lead", "k", "o"), [((5,), 16, 10), ((3, 7), 33, 4),
                                              ((1,), 512, 100), ((4,), 3000, 8)])
def test_linear_accumulator_and_requant_match_matmul_integer(lead, k, o):
    x = RNG.integers(-128, 128, (*lead, k), dtype=np.int8)
    w = RNG.integers(-128, 128, (o, k), dtype=np.int8)
    b = RNG.integers(-(2**20), 2**20, o, dtype=np.int32)
    m = model([helper.make_node("MatMulInteger", ["x", "wt"], ["y"])],
              [value_info("x", x)], [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
              {"wt": np.ascontiguousarray(w.T)})
    acc = run_ort(m, {"x": x})[0].astype(np.int64) + b
    for scale_o, shift in ((1.0, 6), (0.5, 7), (64.0, 0)):
        y = run_op("LinearInt", [x, Const(w), Const(b)], scale_x=8.0, scale_w=8.0,
                   scale_o=scale_o, o_bits=8)
        assert np.array_equal(y.astype(np.int64), qmath.rescale(acc, shift, 8))
    y32 = run_op("LinearInt", [x, Const(w), Const(b)], scale_x=1.0, scale_w=1.0,
                 scale_o=1.0, o_bits=32)
    assert y32.dtype == np.int32 and np.array_equal(y32.astype(np.int64), acc)


SHAPE_CASES = [
    ("Reshape", [Const(np.array([2, -1, 3], dtype=np.int64))], {}),
    ("Flatten", [], {"axis": 2}),
    ("Transpose", [], {"perm": [0, 2, 3, 1]}),
    ("Squeeze", [Const(np.array([1], dtype=np.int64))], {}),
    ("Unsqueeze", [Const(np.array([0, 3], dtype=np.int64))], {}),
    ("Slice", [Const(np.array([0, 1], dtype=np.int64)), Const(np.array([5, -1], dtype=np.int64)),
               Const(np.array([2, 3], dtype=np.int64)), Const(np.array([2, 1], dtype=np.int64))],
     {}),
    ("Slice", [Const(np.array([5], dtype=np.int64)), Const(np.array([-9], dtype=np.int64)),
               Const(np.array([3], dtype=np.int64)), Const(np.array([-2], dtype=np.int64))],
     {}),
    ("Concat", ["self"], {"axis": 2}),
    ("Pad", [Const(np.array([0, 0, 1, 2, 0, 0, 3, 0], dtype=np.int64)),
             Const(np.array(-7, dtype=np.int8))], {"mode": "constant"}),
    ("Pad", [Const(np.array([0, 0, 1, 2, 0, 0, 1, 1], dtype=np.int64))], {"mode": "reflect"}),
    ("Pad", [Const(np.array([0, 0, 2, 1, 0, 0, 1, 2], dtype=np.int64))], {"mode": "edge"}),
    ("Gather", [Const(np.array([[2, 0], [1, 1]], dtype=np.int64))], {"axis": 3}),
    ("MaxPool", [], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 2],
                     "ceil_mode": 1}),
    ("MaxPool", [], {"kernel_shape": [2, 2], "strides": [1, 1], "dilations": [2, 2]}),
    ("Split", [Const(np.array([2, 4], dtype=np.int64))], {"axis": 3}),
]


@pytest.mark.parametrize(("op", "extra", "attrs"), SHAPE_CASES,
                         ids=[f"{c[0]}{i}" for i, c in enumerate(SHAPE_CASES)])
def test_data_movement_ops_match_onnxruntime_on_int8(op, extra, attrs):
    x = RNG.integers(-128, 128, (1, 1, 6, 6), dtype=np.int8)
    x = np.concatenate([x, x + 1], axis=0) if op != "Squeeze" else x
    names, inits, inputs = ["x"], {}, [value_info("x", x)]
    for i, e in enumerate(extra):
        if isinstance(e, str):
            names.append("x")
        else:
            names.append(f"c{i}")
            inits[f"c{i}"] = e.value
    n_out = 2 if op == "Split" else 1
    outs = [f"y{i}" for i in range(n_out)]
    m = model([node(op, names, outs, **attrs)], inputs, outs, inits)
    expected = run_ort(m, {"x": x})
    got = thinker.load(import_model(m)).run({"x": x})
    for i, e in enumerate(expected):
        assert got[f"y{i}"].dtype == e.dtype
        assert np.array_equal(got[f"y{i}"], e)


@pytest.mark.parametrize(("k", "s", "p", "ceil"),
                         list(itertools.product([2, 3], [1, 2], [0, 1], [0, 1])))
def test_avgpool_divisor_matches_onnxruntime_count_include_pad(k, s, p, ceil):
    if p * 2 > k:
        pytest.skip("pad larger than half the kernel is invalid for ONNX AveragePool")
    x = RNG.integers(-128, 128, (2, 3, 7, 8), dtype=np.int8)
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, ceil_mode=ceil)
    # oracle: ORT's float average (count_include_pad=1, PyTorch's divisor rule). With integer
    # sums and divisors <= 9 a tie k + 1/2 is exact in float32 and any other value is at least
    # 1/18 away from one, so floor(avg + 1/2) is the exact half-up rounding.
    m = model([helper.make_node("AveragePool", ["x"], ["y"], count_include_pad=1, **attrs)],
              [value_info("x", np.float32, x.shape)], ["y"], opset=19)
    avg = run_ort(m, {"x": x.astype(np.float32)})[0].astype(np.float64)
    y = run_op("AvgPool2dInt", [x], scale_x=1.0, o_bits=16, **attrs)
    assert y.shape == avg.shape
    assert np.array_equal(y.astype(np.float64), np.floor(avg + 0.5))
