"""The C executor's conv / linear kernels (ops/gemm_s8.c, ops/conv.c: im2col tiles + GEMM
micro-kernel, host direct vector segments, depthwise on padded rows, the int32 output stage)
compute the numpy executor's integers on the shapes each path special-cases: channel counts
not a multiple of 4, K odd and not a multiple of 4, 1x1, strides 2, asymmetric padding, groups
with an odd channel count per group, depthwise 3x3 (stride 1 and 2, dilated) and 5x5, rows wide
enough for the host's vector segments and narrow ones, 4-bit weights, int16 inputs, saturating
outputs, accumulators too large for the int32 output stage, fused Relu/Clip, float outputs,
linear layers on 1, 5 and 8 rows. Every variant reads the graph input and is a graph output, so
each one's integers are compared. The same models run on the Cortex-M4 build in an emulator
(the SMLAD kernels) and must give the host executor's bytes (skipped without unicorn or
arm-none-eabi-gcc)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from c_harness import (
    assert_c_equals_numpy,
    assert_m4_equals_host,
    pack,
    pack_result,
    random_feeds,
    with_gemm_tiles,
)
from c_models import Builder, _ints

import thinker
from onnx_build import value_info

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "benchmarks"))


def conv_kernels_model():
    """Conv variants on one 5-channel 9x30 input (rows wide enough for host segments)."""
    b = Builder()
    outs = [
        b.conv("x", 5, 7, 3, 4, 3, pads=[1, 1, 1, 1]),                      # K = 45, O odd
        b.conv("x", 5, 6, 3, 4, 4, strides=[2, 2], pads=[0, 1, 2, 0]),      # stride 2, asym
        b.conv("x", 5, 9, 1, 4, 2, bias=False),                             # 1x1, K = 5
        b.conv("x", 5, 3, (2, 5), 4, 2, pads=[1, 2, 0, 2], dilations=[2, 1]),
        b.conv("x", 5, 4, 3, 4, 1, w_lo=-127, w_hi=128, pads=[1, 1, 1, 1]),  # saturates
        b.conv("x", 5, 5, 3, 4, 3, pads=[1, 1, 1, 1], fused_clip=[-5, 70]),  # GEMM clamp
        b.conv("x", 5, 6, 3, 4, 4, parameter_bits=4, w_lo=-8, w_hi=8, pads=[1, 1, 1, 1],
               act_type=1),                                                 # int4 + relu
        b.conv("x", 5, 5, 3, 4, 3, group=5, pads=[1, 1, 1, 1]),             # depthwise s1
        b.conv("x", 5, 5, 3, 4, 3, group=5, strides=[2, 2], pads=[1, 1, 1, 1]),  # dw s2
        b.conv("x", 5, 5, 3, 4, 3, group=5, dilations=[2, 2], pads=[2, 2, 2, 2]),
        b.conv("x", 5, 5, 5, 4, 3, group=5, pads=[2, 1, 2, 3]),             # dw 5x5
        b.conv("x", 5, 5, 3, 4, 3, group=5, parameter_bits=4, w_lo=-8, w_hi=8,
               fused_clip=[-5, 70]),
        b.conv("x", 5, 5, 3, 4, None, group=5, o_bits=None, pads=[1, 1, 1, 1]),  # float out
        b.conv("x", 5, 10, 3, 4, 3, group=5, pads=[1, 1, 1, 1]),            # multiplier 2
    ]
    g = b.conv("x", 5, 6, 3, 4, 3)  # 6 x 28 map, then a grouped conv: 3 per group, odd
    outs.append(b.conv(g, 6, 6, 3, 3, 3, group=2, pads=[1, 0, 1, 0]))
    # accumulators above the int32 output stage's bound: 16-bit output, large shift
    outs.append(b.conv("x", 5, 4, 3, 4, 8, o_bits=16, w_lo=-127, w_hi=128, pads=[1, 1, 1, 1]))
    return b.build([value_info("x", np.int8, [1, 5, 9, 30])], outs, {"x": 4})


def narrow_kernels_model():
    """Narrow maps (im2col + GEMM on hosts too), stride 2, K = 9 x 13 = 117 (odd)."""
    b = Builder()
    outs = [
        b.conv("x", 13, 11, 3, 4, 3, pads=[1, 1, 1, 1]),
        b.conv("x", 13, 8, 3, 4, 4, strides=[2, 2], pads=[1, 1, 1, 1]),
        b.conv("x", 13, 5, 1, 4, 3),
        b.conv("x", 13, 13, 3, 4, 3, group=13, pads=[1, 1, 1, 1], act_type=1),
        b.conv("x", 13, 13, 3, 4, 3, group=13, strides=[2, 2], pads=[0, 0, 1, 1]),
    ]
    return b.build([value_info("x", np.int8, [1, 13, 7, 5])], outs, {"x": 4})


def pointwise_kernels_model():
    """The DSP tile filler's cases on a 14-channel 9x30 input: 1x1 convs reading 14, 7 and 2
    channels per group (not whole groups of 4: the edge gatherer), and, on a 16-channel map,
    16 and 8 (straight into the tile), stride 2 without padding (rows skipped), a ReLU; 3x3
    convs with 4 channels per group (K = 36 = Kp) and dilated rows (dh 2) through the window
    copier and the edge path. And the DSP depthwise kernel's variants: stride 2 with a ReLU
    (odd width 15), dilated rows with a ReLU, stride 2 rows only."""
    b = Builder()
    y = b.conv("x", 14, 16, 1, 4, 3)
    outs = [
        y,
        b.conv("x", 14, 6, 1, 4, 3, group=2, act_type=1),
        b.conv("x", 14, 14, 1, 4, 3, group=7),
        b.conv(y, 16, 6, 1, 3, 3),
        b.conv(y, 16, 6, 1, 3, 3, group=2, act_type=1),
        b.conv(y, 16, 5, 1, 3, 3, strides=[2, 2]),
        b.conv("x", 14, 7, 3, 4, 3, group=7, pads=[1, 1, 1, 1]),
        b.conv("x", 14, 6, 3, 4, 4, pads=[2, 1, 2, 1], dilations=[2, 1]),
        b.conv("x", 14, 14, 3, 4, 3, group=14, strides=[2, 2], pads=[1, 1, 1, 1], act_type=1),
        b.conv("x", 14, 14, 3, 4, 3, group=14, pads=[2, 1, 2, 1], dilations=[2, 1], act_type=1),
        b.conv("x", 14, 14, 3, 4, 3, group=14, strides=[2, 1], pads=[0, 1, 0, 1]),
    ]
    return b.build([value_info("x", np.int8, [1, 14, 9, 30])], outs, {"x": 4})


def linear_kernels_model(rows: int, k: int = 37):
    """LinearInt on `rows` rows, K = `k`, transB 0, int4 weights, saturation, fused Relu."""
    b = Builder()

    def linear(k, o, **attrs):
        attrs.setdefault("o_bits", 8)
        attrs.setdefault("scale_o", 8.0)
        w = _ints((o, k)) if attrs.get("transB", 1) else _ints((k, o))
        return b.op("LinearInt", ["r", b.const(w), b.const(_ints(o, -900, 900, np.int32))],
                    scale_x=16.0, scale_w=128.0, **attrs)

    outs = [linear(k, 9), linear(k, 6, transB=0), linear(k, 5, parameter_bits=4),
            linear(k, 3, scale_o=256.0), linear(k, 4, act_type=1)]
    return b.build([value_info("r", np.int8, [rows, k])], outs, {"r": 4})


def int16_kernels_model():
    """int16 inputs: the generic (int64 accumulator) conv and linear paths."""
    b = Builder()
    c = b.conv("x", 3, 5, 3, 10, 8, o_bits=16, pads=[1, 1, 1, 1], data_bits=16)
    d = b.conv("x", 3, 3, 3, 10, 8, group=3, strides=[2, 2], data_bits=16)
    lin = b.op("LinearInt", ["v", b.const(_ints((6, 11))), b.const(_ints(6, -99, 99, np.int32))],
               scale_x=512.0, scale_w=128.0, scale_o=4.0, o_bits=8)
    return b.build([value_info("x", np.int16, [1, 3, 6, 26]), value_info("v", np.int16, [3, 11])],
                   [c, d, lin], {"x": 10, "v": 9})


def add_kernels_model():
    """Same-shape int8 iqAdd / iqSub (the DSP cores' SSAT path): right, zero and left input
    shifts, a fused Relu, and a fused clip that is not one (the generic loop)."""
    b = Builder()
    c = b.conv("x", 5, 5, 1, 4, 2)  # exponent 2 next to x's 4

    def add(op_type, scale_o, **attrs):
        return b.op(op_type, ["x", c], scale_x=16.0, scale_y=4.0, scale_o=scale_o, o_bits=8,
                    **attrs)

    outs = [c, add("iqAdd", 4.0), add("iqAdd", 16.0), add("iqSub", 64.0), add("iqAdd", 1.0),
            add("iqAdd", 8.0, fused_clip=[0, 127]), add("iqSub", 4.0, fused_clip=[-5, 70])]
    return b.build([value_info("x", np.int8, [1, 5, 9, 30])], outs, {"x": 4})


MODELS = {"conv": conv_kernels_model, "narrow": narrow_kernels_model, "add": add_kernels_model,
          "pointwise": pointwise_kernels_model,
          "linear1": lambda: linear_kernels_model(1), "linear5": lambda: linear_kernels_model(5),
          # K a multiple of 4 on one row: the DSP single-row kernel (weights read in place)
          "linear1_k40": lambda: linear_kernels_model(1, 40),
          "int16": int16_kernels_model}


@pytest.fixture(scope="module")
def kernel_bins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("gemm_kernels")
    return {name: pack(build(), str(root / f"{name}.bin")) for name, build in MODELS.items()}


def extreme_feeds(exe, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random feeds with runs of the dtype's extremes (saturating accumulators)."""
    feeds = random_feeds(exe, rng)
    for spec in exe.inputs:
        info = np.iinfo(spec.dtype)
        x = feeds[spec.name].reshape(-1)
        x[::3] = info.max
        x[1::5] = info.min
    return feeds


@pytest.mark.parametrize("name", sorted(MODELS))
def test_kernels_match_numpy(name, kernel_bins, host_build, c_kernels, tmp_path):
    exe = thinker.load(kernel_bins[name])
    for seed in (1, 2):
        assert_c_equals_numpy(host_build, kernel_bins[name],
                              random_feeds(exe, np.random.default_rng(seed)), tmp_path,
                              c_kernels)
    assert_c_equals_numpy(host_build, kernel_bins[name],
                          extreme_feeds(exe, np.random.default_rng(3)), tmp_path, c_kernels)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_kernels_clean_under_asan_and_ubsan(name, kernel_bins, sanitize_build, c_kernels,
                                            tmp_path):
    exe = thinker.load(kernel_bins[name])
    assert_c_equals_numpy(sanitize_build, kernel_bins[name],
                          extreme_feeds(exe, np.random.default_rng(7)), tmp_path, c_kernels)


@pytest.mark.parametrize("name", ["conv", "narrow", "pointwise", "linear1", "linear5",
                                  "linear1_k40", "add"])
def test_cortex_m4_build_in_an_emulator_equals_the_host(name, kernel_bins, m4_runner):
    """The DSP kernels (SMLAD) on an emulated Cortex-M4 give the host executor's bytes for every
    output, and no op writes into the arenas outside its outputs and its scratch region."""
    exe = thinker.load(kernel_bins[name], backend="c")
    feeds = extreme_feeds(exe, np.random.default_rng(5))
    with open(kernel_bins[name], "rb") as f:
        assert_m4_equals_host(m4_runner, f.read(), exe, feeds)


@pytest.mark.parametrize("name", ["conv", "pointwise"])
def test_cortex_m4_with_least_tiles_equals_the_host(name, m4_runner, tmp_path):
    """With every tiled GEMM's region cut to its least tile (tiles then start part way along
    an output row), the emulated Cortex-M4 still gives the host executor's bytes."""
    result = pack_result(MODELS[name](), str(tmp_path))
    data, tiles = with_gemm_tiles(result, lambda k, rows, least: least)
    graph = result.graph
    # some image is cut inside an output row
    assert any(tile < rows and tile % graph.tensors[graph.nodes[op].outputs[0]].shape[-1]
               for op, (_, rows, tile) in tiles.items())
    path = tmp_path / "least.bin"
    path.write_bytes(data)
    exe = thinker.load(str(path), backend="c")
    assert_m4_equals_host(m4_runner, data, exe, extreme_feeds(exe, np.random.default_rng(11)))
