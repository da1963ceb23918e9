"""The C kernels of LogSoftmaxInt, GluInt, BmmInt, iqDiv, iqSum, iqVar and Resize compute the
numpy executor's integers: every kernel family, int8/int16/int32 inputs, broadcasting, division
by zero and by negative values, products on numpy's float64 and (wrapping) int64 paths, means
with ties, biased and unbiased variances, per-axis resize factors, scales at the ops' limits
(numpy's int64 wrap-around included), cleanly under ASan + UBSan; bad attributes are named at
init."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from c_arith_models import ARITH_MODELS, compact_model
from c_harness import (
    assert_c_equals_numpy,
    assert_init_refuses,
    pack,
    pack_result,
    random_feeds,
    rewrite_attrs,
)

import thinker
from onnx_build import value_info
from thinker.runtime import DumpHook


@pytest.fixture(scope="module")
def ar_bins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ar_models")
    return {name: pack(build(), str(root / f"{name}.bin"), device)
            for name, (build, device) in ARITH_MODELS.items()}


def special_feeds(model_bin: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random feeds with zeros (division by zero, 0 / 0), -1, the dtype's extremes, and a
    constant leading block (ties in sums and means, zero variances, equal softmax inputs)."""
    exe = thinker.load(model_bin)
    feeds = random_feeds(exe, rng)
    for spec in exe.inputs:
        x = feeds[spec.name].reshape(-1)
        if spec.dtype == np.float32:
            continue
        info = np.iinfo(spec.dtype)
        x[: len(x) // 4] = rng.integers(info.min, info.max + 1, dtype=spec.dtype)
        x[1::7], x[2::11], x[3::13], x[4::17] = 0, -1, info.min, info.max
    return feeds


@pytest.mark.parametrize("name", sorted(ARITH_MODELS))
def test_arith_ops_match_numpy_crc_for_crc(name, ar_bins, host_build, tmp_path):
    exe = thinker.load(ar_bins[name])
    for seed in (1, 2, 3):
        assert_c_equals_numpy(host_build, ar_bins[name],
                              random_feeds(exe, np.random.default_rng(seed)), tmp_path)
    assert_c_equals_numpy(host_build, ar_bins[name],
                          special_feeds(ar_bins[name], np.random.default_rng(4)), tmp_path)
    zeros = {s.name: np.zeros(s.shape, s.dtype) for s in exe.inputs}
    assert_c_equals_numpy(host_build, ar_bins[name], zeros, tmp_path)


@pytest.mark.parametrize("name", sorted(ARITH_MODELS))
def test_arith_ops_are_clean_under_asan_and_ubsan(name, ar_bins, sanitize_build, tmp_path):
    exe = thinker.load(ar_bins[name])
    assert_c_equals_numpy(sanitize_build, ar_bins[name],
                          random_feeds(exe, np.random.default_rng(7)), tmp_path)
    assert_c_equals_numpy(sanitize_build, ar_bins[name],
                          special_feeds(ar_bins[name], np.random.default_rng(8)), tmp_path)


def test_python_binding_runs_the_arith_ops(ar_bins):
    for name in ("ar_bmm", "ar_reduce", "ar_on_arcs"):
        path = ar_bins[name]
        c_exe, np_exe = thinker.load(path, backend="c"), thinker.load(path)
        feeds = random_feeds(np_exe, np.random.default_rng(9))
        h_c, h_np = DumpHook(), DumpHook()
        out_c, out_np = c_exe.run(feeds, hooks=[h_c]), np_exe.run(feeds, hooks=[h_np])
        assert h_c.lines == h_np.lines, name
        for spec in np_exe.outputs:
            assert np.array_equal(out_c[spec.name], out_np[spec.name]), name


def test_division_by_zero_and_negative_divisors(host_build, sanitize_build, tmp_path):
    """Every int8 numerator against every int8 divisor (zero and negative ones included) with
    the shift on the numerator, no shift and the shift on the divisor: the exact quotient
    rounded half up and saturated, x / 0 the saturation value of x's sign, 0 / 0 = 0."""
    import math
    from fractions import Fraction

    from c_models import Builder

    shifts = (4, 0, -7)  # q_o - q_x + q_y
    b = Builder()
    outs = [b.op("iqDiv", ["x", "y"], scale_x=16.0, scale_y=16.0, scale_o=2.0**q, o_bits=8)
            for q in shifts]
    path = pack(b.build([value_info("x", np.int8, [1, 256, 1]),
                         value_info("y", np.int8, [1, 1, 256])], outs, {"x": 4, "y": 4}),
                str(tmp_path / "div.bin"))
    v = np.arange(-128, 128, dtype=np.int8)
    feeds = {"x": v.reshape(1, 256, 1), "y": v.reshape(1, 1, 256)}
    result = thinker.load(path).run(feeds)

    def expected(x: int, y: int, shift: int) -> int:
        if y == 0:
            return 127 if x > 0 else (-128 if x < 0 else 0)
        quotient = Fraction(x) * Fraction(2)**shift / y
        return min(127, max(-128, math.floor(quotient + Fraction(1, 2))))

    for out, shift in zip(outs, shifts, strict=True):
        want = [[expected(x, y, shift) for y in range(-128, 128)] for x in range(-128, 128)]
        assert np.array_equal(result[out][0], np.array(want))
    for binary in (host_build, sanitize_build):
        assert_c_equals_numpy(binary, path, feeds, tmp_path)


def test_log_of_a_dense_sweep_of_q15_probabilities(host_build, tmp_path):
    """Two-element softmax rows (0, d) with d swept over the int16 range at two input scales
    give most Q15 probabilities from 0 to 32768: the C logarithm equals numpy's on them, per
    family (outputs in Q25, every bit visible)."""
    from c_models import Builder

    b = Builder()
    outs = [b.op("LogSoftmaxInt", ["x"], scale_x=2.0**q, scale_o=2.0**25, o_bits=32,
                 platform=p) for p in ("venus", "arcs", "venusA") for q in (11, 15)]
    path = pack(b.build([value_info("x", np.int16, [1, 4096, 2])], outs, {"x": 11}),
                str(tmp_path / "ln.bin"))
    x = np.zeros((1, 4096, 2), np.int16)
    x[0, :, 1] = np.arange(-32768, 32768, 16)
    assert_c_equals_numpy(host_build, path, {"x": x}, tmp_path)


# --- attribute validation at init ---------------------------------------------------------------


@pytest.fixture(scope="module")
def packed_compact(tmp_path_factory):
    return pack_result(compact_model(), str(tmp_path_factory.mktemp("ar_bad")))


@pytest.mark.parametrize("op_type, change, message", [
    ("LogSoftmaxInt", lambda a: a.update(platform="vexus"), "unknown platform"),
    ("LogSoftmaxInt", lambda a: a.update(scale_o=2.0**90), "output requantization"),
    ("GluInt", lambda a: a.update(dim=0), "odd size"),
    ("GluInt", lambda a: a.update(dim=5), "axis out of range"),
    ("GluInt", lambda a: a.update(scale_o=2.0**-60), "output requantization"),
    ("BmmInt", lambda a: a.update(scale_o=2.0**80), "requantization shift"),
    ("BmmInt", lambda a: a.update(scale_o=2.0**60), "requantization shift"),  # left, bound
    ("iqDiv", lambda a: a.update(scale_o=2.0**60), "division shift"),
    ("iqSum", lambda a: a.update(divisor=0), "divisor must be >= 1"),
    ("iqSum", lambda a: a.update(axes=[2, -1]), "distinct"),
    ("iqSum", lambda a: a.update(axes=[3]), "axis out of range"),
    ("iqSum", lambda a: a.update(axes=[]), "must not be empty"),
    ("iqSum", lambda a: (a.pop("axes"), a.update(dims="x")), "attribute 'dims'"),
    ("iqSum", lambda a: a.pop("axes"), "'axes' (or 'dims') is required"),
    ("iqSum", lambda a: a.update(scale_o=2.0**60), "would leave int64"),
    ("iqVar", lambda a: a.update(axes=[0, 1]), "batch axis"),
    ("iqVar", lambda a: a.update(axes=[0], keepdims=1), "recorded output shape"),
    ("iqVar", lambda a: a.update(scale_o=2.0**-60), "would leave int64"),
    ("Resize", lambda a: a.update(mode="linear"), "only nearest"),
    ("Resize", lambda a: a.update(coordinate_transformation_mode="align_corners"),
     "only nearest"),
    ("Resize", lambda a: a.update(nearest_mode="ceil"), "only nearest"),
])
def test_bad_attributes_are_named_at_init(packed_compact, sanitize_build, tmp_path, op_type,
                                          change, message):
    assert_init_refuses(sanitize_build, packed_compact, op_type, change, message, tmp_path)


@pytest.mark.parametrize("factors, message", [
    ([1, 1.5, 3], "integers >= 1"),
    ([2, 2, 3], "1 on the batch axis"),
    ([1, 0, 3], "integers >= 1"),
    ([1, 2, 2], "recorded output shape"),
])
def test_bad_resize_scales_are_named_at_init(packed_compact, sanitize_build, tmp_path, factors,
                                             message):
    """The scales constant of the compact model's Resize ([1, 2, 3]) replaced in model.bin."""
    result = packed_compact
    graph = result.graph
    (node,) = [n for n in graph.nodes if n.op_type == "Resize"]
    name = [n for n in node.inputs if n and graph.tensors[n].data is not None][-1]
    original = graph.tensors[name].data
    graph.tensors[name].data = np.array(factors, np.float32)
    try:
        data = rewrite_attrs(result, "Resize", lambda a: None)
    finally:
        graph.tensors[name].data = original
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    r = subprocess.run([sanitize_build, "--zeros", str(path)], capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ERR_MODEL" in r.stderr and "Resize" in r.stderr and message in r.stderr, r.stderr
