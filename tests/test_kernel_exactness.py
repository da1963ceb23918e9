"""The float GEMM paths at their exactness boundary (design §3, §8): a layer whose folded
accumulator bound is just below 2**24 runs in float32, one just above in float64, and both give
the integers of an int64 reference, including the inputs that reach the bound, saturation at
both ends, fused activations, 4/8/16-bit outputs and odd shapes."""

import numpy as np
import pytest

import thinker
from onnx_build import Const, run_op, single_op
from test_oracle_onnxruntime import (
    DEPTHWISE_GRID,
    conv_attrs,
    conv_integer_oracle,
    depthwise_data,
)
from thinker import qmath
from thinker.graph import import_model
from thinker.ops.accumulate import OutputStage

# every test here twice: compiled kernels (where they apply) and numpy kernels (conftest)
pytestmark = pytest.mark.usefixtures("kernel_set")

RNG = np.random.default_rng(20261127)


def prepared(op_type, inputs, **attrs):
    """(executor, feeds, the op's OutputStage) for a one-node model."""
    m, feeds = single_op(op_type, inputs, **attrs)
    ex = thinker.load(import_model(m))
    for cell in ex.steps[0].kernel.__closure__ or ():
        try:
            if isinstance(cell.cell_contents, OutputStage):
                return ex, feeds, cell.cell_contents
        except ValueError:  # a cell not filled yet
            pass
    raise AssertionError("no OutputStage in the kernel")


DEPTHWISE_PATHS = ["einsum", "taps", "bands"]


def depthwise_path(monkeypatch, path: str) -> None:
    """Make every depthwise conv take one kernel (ops.depthwise), whatever its size."""
    from thinker.ops import depthwise

    big = 1 << 30
    monkeypatch.setattr(depthwise, "TAP_MAX_OUTPUTS", big if path == "taps" else 0)
    monkeypatch.setattr(depthwise, "EINSUM_MAX_OUTPUTS", big if path == "einsum" else -1)


def row_with_abs_sum(total: int, k: int, positive: bool = False) -> np.ndarray:
    """k int8 weights whose |w| sum to ``total`` (127s, then the rest), random signs unless
    ``positive`` (then an all -128 input reaches |acc| = 128 * total, the bound itself)."""
    mags = np.zeros(k, dtype=np.int64)
    full, rest = divmod(total, 127)
    assert full + (rest > 0) <= k
    mags[:full] = 127
    if rest:
        mags[full] = rest
    RNG.shuffle(mags)
    return (mags * (1 if positive else RNG.choice([-1, 1], k))).astype(np.int8)


def extreme_inputs(w_row: np.ndarray, rows: int, lo: int, hi: int) -> np.ndarray:
    """Rows of inputs that line up with ``w_row``'s signs at growing densities, both signs,
    so the accumulator sweeps the whole range up to the bound (``lo`` at full density)."""
    k = w_row.size
    x = np.zeros((rows, k), dtype=np.int64)
    sign = np.sign(w_row.astype(np.int64))
    for r in range(rows):
        keep = RNG.random(k) < r / (rows - 1)
        x[r] = np.where(keep, np.where(r % 2, sign * lo, sign * hi), 0)
    x[-1] = np.where(sign > 0, lo, hi)  # every term at the largest magnitude: |acc| = bound
    return x


def reference(acc: np.ndarray, shift: int, bits: int, clamp=None) -> np.ndarray:
    y = qmath.rescale(acc, shift, bits)
    return y if clamp is None else np.clip(y, *clamp)


@pytest.mark.parametrize("above", [False, True], ids=["float32", "float64"])
def test_linear_at_the_float32_bound_equals_int64(above):
    # shift 16, 8 bits: folded bound = 128 * S + max|b| + 2**15 + (128 << 16); with S = 65279
    # and max|b| = 127 it is 2**24 - 1 (float32), with 128 exactly 2**24 (float64)
    k, o, shift = 515, 7, 16
    w = np.stack([row_with_abs_sum(65279, k, positive=True)] +
                 [RNG.integers(-127, 128, k).astype(np.int8) // 4 for _ in range(o - 1)])
    b = RNG.integers(-100, 101, o).astype(np.int32)
    b[0] = 128 if above else 127
    x = extreme_inputs(w[0], 41, -128, 127).astype(np.int8)
    ex, feeds, stage = prepared("LinearInt", [x, Const(w), Const(b)], scale_x=2.0**3,
                                scale_w=2.0**13, scale_o=2.0**0, o_bits=8)
    assert stage.float_dtype == (np.float64 if above else np.float32)
    acc = x.astype(np.int64) @ w.T.astype(np.int64) + b
    y = ex.run(feeds)["out0"]
    expected = reference(acc, shift, 8)
    assert y.dtype == np.int8 and np.array_equal(y, expected)
    # the last row reaches the bound: acc + b = -128 * 65279 + b, i.e. -127.5 rounded up
    assert acc[-1, 0] == -128 * 65279 + b[0] and expected[-1, 0] == -127


@pytest.mark.parametrize("above", [False, True], ids=["float32", "float64"])
def test_conv_at_the_float32_bound_equals_int64(above):
    # 103 channels x (1, 5) kernel = 515 terms per output, odd map with pads; same bound as above
    c, o, shift = 103, 5, 16
    w = np.stack([row_with_abs_sum(65279, c * 5, positive=True)] +
                 [RNG.integers(-127, 128, c * 5).astype(np.int8) // 4 for _ in range(o - 1)])
    w = w.reshape(o, c, 1, 5)
    b = RNG.integers(-100, 101, o).astype(np.int32)
    b[0] = 128 if above else 127
    # every image's middle column window sees the extreme inputs of one density
    lines = extreme_inputs(w[0].reshape(-1), 9, -128, 127).reshape(9, c, 1, 5)
    x = RNG.integers(-128, 128, (9, c, 3, 7)).astype(np.int64)
    x[:, :, 1:2, 1:6] = lines
    x = x.astype(np.int8)
    ex, feeds, stage = prepared("Conv2dInt", [x, Const(w), Const(b)], scale_x=2.0**3,
                                scale_w=2.0**13, scale_o=1.0, o_bits=8, kernel_shape=[1, 5],
                                pads=[1, 2, 0, 2], fused_clip=[-100, 127])
    assert stage.float_dtype == (np.float64 if above else np.float32)
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (1, 0), (2, 2)))
    acc = np.zeros((9, o, 4, 7), dtype=np.int64)
    for j in range(5):
        acc += np.einsum("nchw,oc->nohw", xp[:, :, :, j:j + 7], w[:, :, 0, j].astype(np.int64))
    acc += b[None, :, None, None]
    expected = reference(acc, shift, 8, (-100, 127))
    y = ex.run(feeds)["out0"]
    assert np.array_equal(y, expected)
    # the last image's middle column reaches the bound, clamped at -100 by the fused clip
    assert acc[-1, 0, 2, 3] == -128 * 65279 + b[0] and expected[-1, 0, 2, 3] == -100


@pytest.mark.parametrize("path", DEPTHWISE_PATHS)
@pytest.mark.parametrize("above", [False, True], ids=["float32", "float64"])
def test_depthwise_16bit_input_at_the_float32_bound_equals_int64(above, path, monkeypatch):
    depthwise_path(monkeypatch, path)
    # int16 input, shift 0, 16 bits: folded bound = 32768 * S + max|b| + 32768; S = 510 and
    # max|b| = 32767 give 2**24 - 1, 32768 gives 2**24
    ch = 3
    w = np.stack([row_with_abs_sum(510, 9)] + [RNG.integers(-60, 61, 9).astype(np.int8)
                                               for _ in range(ch - 1)]).reshape(ch, 1, 3, 3)
    b = RNG.integers(-1000, 1001, ch).astype(np.int32)
    b[0] = 32768 if above else 32767
    x = RNG.integers(-300, 301, (5, ch, 6, 5)).astype(np.int64)
    sign = np.sign(w[0, 0].astype(np.int64))
    x[0, 0, 1:4, 1:4] = np.where(sign > 0, -32768, 32767)  # |acc| = 32768 * 510 at (2, 2)
    x[1, 0, 1:4, 1:4] = np.where(sign > 0, 32767, -32768)
    x = x.astype(np.int16)
    ex, feeds, stage = prepared("Conv2dInt", [x, Const(w), Const(b)], scale_x=1.0, scale_w=1.0,
                                scale_o=1.0, o_bits=16, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                group=ch)
    assert stage.float_dtype == (np.float64 if above else np.float32)
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    acc = sum(xp[:, :, i:i + 6, j:j + 5] * w[None, :, 0, i, j, None, None].astype(np.int64)
              for i in range(3) for j in range(3)) + b[None, :, None, None]
    y = ex.run(feeds)["out0"]
    expected = reference(acc, 0, 16)
    assert y.dtype == np.int16 and np.array_equal(y, expected)
    assert expected[0, 0, 2, 2] == -32768 and expected[1, 0, 2, 2] == 32767


@pytest.mark.parametrize("bits", [4, 8, 16])
@pytest.mark.parametrize("act", [None, "relu", "clip"])
def test_output_stage_saturates_and_clamps_like_qmath(bits, act):
    # accumulators over the whole output range and past it, odd shifts with exact ties
    k, o, shift = 13, 6, 5
    w = RNG.integers(-128, 128, (o, k)).astype(np.int8)
    b = RNG.integers(-40000, 40000, o).astype(np.int32)
    x = RNG.integers(-128, 128, (37, k)).astype(np.int8)
    attrs = {"act_type": 1} if act == "relu" else {}
    clamp = (0, 2**31 - 1) if act == "relu" else None
    if act == "clip":
        attrs["fused_clip"] = clamp = [-3, 5]
    ex, feeds, _ = prepared("LinearInt", [x, Const(w), Const(b)], scale_x=2.0**2,
                                scale_w=2.0**7, scale_o=2.0**4, o_bits=bits, **attrs)
    acc = x.astype(np.int64) @ w.T.astype(np.int64) + b
    y = ex.run(feeds)["out0"]
    expected = reference(acc, shift, bits, clamp)
    assert y.dtype == qmath.storage_dtype(bits) and np.array_equal(y, expected)
    lo, hi = qmath.int_range(bits)
    if act is None and bits < 16:
        assert expected.min() == lo and expected.max() == hi


@pytest.mark.parametrize("path", DEPTHWISE_PATHS)
@pytest.mark.parametrize("case", [
    *DEPTHWISE_GRID,
    (7, (10, 1), (1, 1), (0, 0, 0, 0), (1, 1), (24, 1)),  # the wake-word model's kernels
    (3, (15, 1), (1, 1), (0, 0, 0, 0), (1, 1), (15, 1)),
    (5, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1), (7, 6)),  # stride 2, odd map, pads on 2 sides
    (4, (2, 3), (3, 2), (1, 2, 0, 1), (2, 1), (10, 9)),  # strides 3 x 2, dilated rows
], ids=lambda c: f"c{c[0]}k{c[1]}s{c[2]}p{c[3]}d{c[4]}x{c[5]}")
def test_depthwise_taps_and_bands_equal_onnxruntime(case, path, monkeypatch):
    """Every depthwise kernel on every geometry, whichever the sizes would pick."""
    depthwise_path(monkeypatch, path)
    conv, x, w, b, acc = depthwise_data(case)
    for scale_o, bits, clip in ((None, None, None), (8.0, 8, None), (8.0, 8, [-7, 100]),
                                (2.0**4, 16, None)):
        attrs = conv_attrs(conv) | ({} if clip is None else {"fused_clip": clip})
        y = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=32.0, scale_w=128.0,
                   **({} if bits is None else {"scale_o": scale_o, "o_bits": bits}), **attrs)
        if bits is None:  # the float accumulator / 2**12
            assert np.array_equal(y.astype(np.float64) * 2**12, acc)
            continue
        expected = qmath.rescale(acc, 12 - int(np.log2(scale_o)), bits)
        if clip is not None:
            expected = np.clip(expected, *clip)
        assert y.dtype == qmath.storage_dtype(bits) and np.array_equal(y, expected)


@pytest.mark.parametrize("case", [
    (5, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # stride 1: one strided copy per block
    (3, 4, (3, 2), (1, 1), (2, 0, 1, 1), (2, 1), 1),  # dilated rows, asymmetric pads
    (4, 6, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),  # phase planes, a copy per offset
], ids=["s1", "s1-dilated", "s2"])
@pytest.mark.parametrize("block", [1, 700, 1 << 18], ids=["min-block", "partial", "one-block"])
def test_blocked_conv_gemm_equals_onnxruntime(case, block, monkeypatch):
    """Group-1 convs as GEMMs over blocks of output positions, with the last block partial
    and reads running past a channel's row (into the next row or the zero tail)."""
    from thinker.ops import conv as conv_module

    monkeypatch.setattr(conv_module, "GEMM_BLOCK_FLOATS", block)
    blocked, used = conv_module._gemm_conv_blocked, []

    def spy(*args):
        used.append(blocked(*args))
        return used[-1]

    monkeypatch.setattr(conv_module, "_gemm_conv_blocked", spy)
    cin, cout, kernel, *_ = case
    x = RNG.integers(-128, 128, (3, cin, 21, 19), dtype=np.int8)
    w = RNG.integers(-128, 128, (cout, cin, *kernel), dtype=np.int8)
    b = RNG.integers(-5000, 5000, cout, dtype=np.int32)
    acc = conv_integer_oracle(x, w, case) + b[None, :, None, None]
    y = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=32.0, scale_w=128.0, scale_o=8.0,
               o_bits=8, **conv_attrs(case))
    assert np.array_equal(y, qmath.rescale(acc, 9, 8))
    y_float = run_op("Conv2dInt", [x, Const(w), Const(b)], scale_x=1.0, scale_w=1.0,
                     **conv_attrs(case))
    assert np.array_equal(y_float.astype(np.int64), acc)
    assert used and all(u is not None for u in used)  # the blocked path ran


@pytest.mark.parametrize("min_macs", [0, 1 << 40], ids=["split", "too-little-work"])
def test_thread_split_gives_the_same_integers_split_or_not(min_macs, monkeypatch):
    """threads > 1 splits the batch only where each part gets SPLIT_MIN_MACS of work; the
    integers are the same either way (odd batch, uneven parts)."""
    from thinker.runtime import executor

    monkeypatch.setattr(executor, "SPLIT_MIN_MACS", min_macs)
    w = RNG.integers(-128, 128, (6, 5, 3, 3), dtype=np.int8)
    x = RNG.integers(-128, 128, (7, 5, 9, 8), dtype=np.int8)
    m, feeds = single_op("Conv2dInt", [x[:1], Const(w)], scale_x=8.0, scale_w=64.0,
                         scale_o=4.0, o_bits=8, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = import_model(m)
    single, multi = thinker.load(graph), thinker.load(graph, threads=3)
    split = []
    monkeypatch.setattr(multi, "_run_split", lambda f, parts: split.append(parts) or
                        type(multi)._run_split(multi, f, parts))
    name = next(iter(feeds))
    assert np.array_equal(multi.run({name: x})["out0"], single.run({name: x})["out0"])
    assert split == ([3] if min_macs == 0 else [])


@pytest.mark.parametrize("group", [1, 6], ids=["conv", "depthwise"])
def test_scratch_buffers_survive_batch_changes(group):
    """Kernels keep zero-bordered buffers between runs: batches 5, 2, 5, 1 in a row give
    the integers of a fresh model each time."""
    w = RNG.integers(-128, 128, (6, 6 // group, 3, 3), dtype=np.int8)
    attrs = dict(scale_x=8.0, scale_w=64.0, scale_o=4.0, o_bits=8, kernel_shape=[3, 3],
                 pads=[1, 1, 1, 1], group=group)
    m, feeds = single_op("Conv2dInt", [RNG.integers(-128, 128, (1, 6, 7, 9), dtype=np.int8),
                                       Const(w)], **attrs)
    graph, name = import_model(m), next(iter(feeds))
    reused = thinker.load(graph)
    for batch in (5, 2, 5, 1):
        x = RNG.integers(-128, 128, (batch, 6, 7, 9), dtype=np.int8)
        fresh = thinker.load(graph).run({name: x})["out0"]
        assert np.array_equal(reused.run({name: x})["out0"], fresh)


def _rescaled_reference(v: np.ndarray, s: int, bits: int) -> np.ndarray:
    """rshift_round then saturate, in Python-width integers (design §3)."""
    v = v.astype(np.int64)
    v = (v + (1 << (s - 1))) >> s if s > 0 else v << -s
    lo, hi = qmath.int_range(bits)
    return np.clip(v, lo, hi)


@pytest.mark.parametrize("op", ["iqAdd", "iqSub"])
@pytest.mark.parametrize("qs", [(4, 4, 4), (5, 3, 4), (2, 6, 4), (7, 7, 3), (0, 9, 2)])
@pytest.mark.parametrize("clip", [None, (0, 2**31 - 1), (-20, 50)], ids=["none", "relu", "clip"])
@pytest.mark.parametrize("kind", ["int8", "int16", "int8-transposed-view"])
def test_iq_add_sub_fast_path_equals_int64(op, qs, clip, kind):
    """The same-shape iqAdd / iqSub kernel (each input rescaled and saturated, the sum
    saturated, the fused clip merged into that saturation, computed in the inputs' memory
    order) equals the int64 reference at both saturation ends, on odd shapes and on the
    transposed views convs return."""
    qx, qy, qo = qs
    dtype = np.int16 if kind == "int16" else np.int8
    bits = 16 if kind == "int16" else 8
    info = np.iinfo(dtype)
    shape = (3, 5, 7, 11)
    x = RNG.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    y = RNG.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    x.flat[:4] = [info.min, info.max, info.max, info.min]  # both saturation ends
    y.flat[:4] = [info.min, info.max, info.min, info.max]
    if kind.endswith("view"):  # (C, N, H, W) memory seen as NCHW, as conv outputs are
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
        y = np.ascontiguousarray(y.transpose(1, 0, 2, 3))[:, :, :, :].transpose(1, 0, 2, 3)
    attrs = {"scale_x": 2.0 ** qx, "scale_y": 2.0 ** qy, "scale_o": 2.0 ** qo, "o_bits": bits}
    if clip is not None:
        attrs["fused_clip"] = list(clip)
    m, _ = single_op(op, [x, y], **attrs)
    got = thinker.load(import_model(m)).run({"in0": x, "in1": y})["out0"]
    a, b = _rescaled_reference(x, qx - qo, bits), _rescaled_reference(y, qy - qo, bits)
    want = _rescaled_reference(a - b if op == "iqSub" else a + b, 0, bits)
    if clip is not None:
        want = np.clip(want, *clip)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype,hw", [(np.int8, (25, 5)), (np.int8, (3, 3)), (np.int16, (7, 73)),
                                      (np.int16, (8, 64))], ids=["int8", "int8-3x3",
                                                                 "int16-511-float32",
                                                                 "int16-512-int64"])
@pytest.mark.parametrize("layout", ["nchw", "cnhw-view"])
@pytest.mark.parametrize("qs", [(4, 4), (6, 3), (3, 5)], ids=["same", "down", "up"])
def test_global_avgpool_sum_equals_int64(dtype, hw, layout, qs):
    """Global AvgPool2dInt sums in float32 (one GEMV) while |sum| < 2**24: at 511 int16 pixels
    (just below: 511 * 32768 < 2**24) and 512 (the integer path) it equals the exact rational
    rounding of the int64 sum, with all-min / all-max rows reaching the bound, saturation and
    the transposed views convs return."""
    qx, qo = qs
    info = np.iinfo(dtype)
    bits = info.bits
    x = RNG.integers(info.min, int(info.max) + 1, (3, 5, *hw)).astype(dtype)
    x[0, 0], x[1, 0], x[2, 4] = info.min, info.max, info.max
    if layout == "cnhw-view":
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    m, _ = single_op("AvgPool2dInt", [x], kernel_shape=list(hw), strides=list(hw),
                     pads=[0, 0, 0, 0], scale_x=2.0 ** qx, scale_o=2.0 ** qo, o_bits=bits)
    got = thinker.load(import_model(m)).run({"in0": x})["out0"]
    total = x.astype(np.int64).sum(axis=(2, 3), keepdims=True)
    shift, den = qo - qx, hw[0] * hw[1]  # round_half_up(total * 2**shift / den)
    num, den = (total << shift, den) if shift >= 0 else (total, den << -shift)
    want = np.clip((2 * num + den) // (2 * den), info.min, info.max)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
