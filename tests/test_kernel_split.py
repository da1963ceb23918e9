"""Exact device rewrites of convolutions (thinker.passes.kernel_split): kernels over the
device's range split into blocks summed at 32 bits with one requantization, excess padding
moved to a Pad, dilations the device lacks turned into zero-tap kernels, kernels smaller than
the stride turned into a strided Slice. The packed model (numpy and C) equals the original
ONNX graph on every output, bit for bit; the report lists each rewrite."""

import json

import numpy as np
import onnx
import pytest

import thinker
from onnx_build import model, node, value_info
from packing_models import conv
from test_tpacker import assert_packed_equals_onnx, pack
from thinker.passes.kernel_split import kernel_blocks

RNG = np.random.default_rng(23)


def conv_model(k, hw, stride=1, pad=0, dilation=1, cin=3, cout=4, o_bits=8, act=None,
               conv1d=False, group=1, bias=True, **extra):
    n, inits = conv("conv", "x", "c" if act else "y", cout, cin, k, 4, 3, stride=stride,
                    pad=pad, dilation=dilation, o_bits=o_bits, group=group,
                    depthwise=group > 1 and group == cin, bias=bias, **extra)
    nodes = [n]
    if act == "relu":
        nodes.append(node("Relu", ["c"], ["y"], name="relu"))
    elif act == "clip":
        inits["lo"], inits["hi"] = np.array(0, np.int8), np.array(48, np.int8)
        nodes.append(node("Clip", ["c", "lo", "hi"], ["y"], name="clip"))
    shape = [1, cin, *((hw, hw) if isinstance(hw, int) else hw)]
    if conv1d:
        w = inits["conv.w"][:, :, 0, :]
        inits["conv.w"] = w
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        pads = attrs["pads"]
        nodes[0] = node("Conv1dInt", list(n.input), list(n.output), name="conv",
                        scale_x=attrs["scale_x"], scale_w=attrs["scale_w"],
                        scale_o=attrs["scale_o"], o_bits=o_bits,
                        kernel_shape=[w.shape[-1]], strides=[stride], pads=[pads[1], pads[3]],
                        dilations=[dilation])
        shape = [1, cin, shape[-1]]
    m = model(nodes, [value_info("x", np.int8, shape)], ["y"], inits)
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", "4"
    return m


def c_equals_numpy(bin_path):
    try:
        c_model = thinker.load(bin_path, backend="c")
    except thinker.ThinkerError as exc:  # no C compiler on this machine
        pytest.skip(f"C executor unavailable: {exc}")
    packed = thinker.load(bin_path)
    spec = packed.inputs[0]
    x = RNG.integers(-128, 128, (1, *spec.shape[1:])).astype(np.int8)
    expected = packed.run({spec.name: x})
    got = c_model.run({spec.name: x})
    for key, value in expected.items():
        assert np.array_equal(got[key], value), key


def test_kernel_blocks():
    assert kernel_blocks(10, 2, 5, True) == [(0, 5), (5, 10)]
    assert kernel_blocks(7, 1, 5, True) == [(0, 4), (4, 7)]
    assert kernel_blocks(11, 1, 5, True) == [(0, 4), (4, 8), (8, 11)]
    assert kernel_blocks(3, 1, 5, True) == [(0, 3)]
    assert kernel_blocks(7, 4, 5, True) == []      # a block of 3 taps < stride 4


@pytest.mark.parametrize("case", [
    dict(k=(10, 4), hw=(24, 10), stride=2, pad=(4, 1, 5, 1)),      # the DS-CNN first conv
    dict(k=7, hw=13, stride=1, pad=3, act="relu"),
    dict(k=(9, 3), hw=(20, 9), stride=2, pad=(0, 1, 4, 1), act="clip"),
    dict(k=12, hw=17, stride=4, pad=(2, 0, 1, 4)),                   # stride 4, 3 blocks
    dict(k=6, hw=12, stride=1, pad=(4, 4, 0, 0), o_bits=16),
    dict(k=7, hw=16, stride=1, pad=3, cin=4, cout=4, group=4),      # depthwise
    dict(k=(1, 9), hw=(1, 20), stride=1, pad=(0, 4, 0, 4), conv1d=True),
    dict(k=(7, 7), hw=10, stride=1, pad=0, bias=False),
    dict(k=(10, 4), hw=(24, 10), stride=2, pad=(4, 1, 5, 1), quant_mode="round"),
    dict(k=7, hw=13, stride=1, pad=3, act="relu", quant_mode="floor"),
])
def test_large_kernels_are_split_exactly(tmp_path, case):
    m = conv_model(**case)
    result, bin_path, onnx_path = pack(tmp_path, m, "m", platform="venus")
    rewrites = [n[len("rewrite: "):] for n in result.notices if n.startswith("rewrite: ")]
    assert any(r.startswith("split_large_kernels: ") for r in rewrites)
    ops = [n.op_type for n in result.graph.nodes]
    assert "Requant" in ops and ops.count("iqAdd") >= 1
    assert_packed_equals_onnx(bin_path, onnx_path, batch=3)
    c_equals_numpy(bin_path)


def test_dilation_padding_and_stride_rewrites_are_exact(tmp_path):
    cases = [
        (dict(k=3, hw=14, dilation=2, pad=2), "dilate_kernels"),        # venus: dilation 1 only
        (dict(k=3, hw=14, dilation=3, pad=3), "split_large_kernels"),   # 7x7 zero taps, split
        (dict(k=3, hw=12, pad=6), "pad_excess"),                        # venus pads 0..4
        (dict(k=1, hw=11, stride=2, pad=0), "stride_slices"),           # kernel 1 < stride 2
    ]
    for i, (case, rewrite) in enumerate(cases):
        folder = tmp_path / str(i)
        folder.mkdir()
        result, bin_path, onnx_path = pack(folder, conv_model(**case), "m", platform="venus")
        assert any(rewrite in n for n in result.notices), (rewrite, result.notices)
        assert_packed_equals_onnx(bin_path, onnx_path, batch=2)
        c_equals_numpy(bin_path)


def test_rewrites_are_in_the_report_and_skippable(tmp_path):
    m = conv_model(k=(10, 4), hw=(24, 10), stride=2, pad=(4, 1, 5, 1))
    result, _, _ = pack(tmp_path, m, "m", platform="venus")
    report = json.loads((tmp_path / "workspace" / "m" / "memory_report.json").read_text())
    assert report["rewrites"] == [n[len("rewrite: "):] for n in result.notices
                                  if n.startswith("rewrite: ")]
    assert "split_large_kernels: Conv2dInt 'conv' kernel 10x4 -> 2 convs (5x4, 5x4) summed " \
        "at 32 bits, one requantization (exact)" in report["rewrites"]
    text = (tmp_path / "workspace" / "m" / "memory_report.txt").read_text()
    assert "device rewrites (exact):" in text
    with pytest.raises(thinker.ThinkerDeviceError, match="kernel 10x4 is outside venus"):
        pack(tmp_path, m, "m2", platform="venus", skip=["split_large_kernels"])


def test_no_exact_split_is_still_reported(tmp_path):
    # 7 taps at stride 4: a block of 3 taps would be smaller than the stride
    with pytest.raises(thinker.ThinkerDeviceError, match="kernel 7x7 is outside venus"):
        pack(tmp_path, conv_model(k=7, hw=20, stride=4, pad=3), "m", platform="venus")


def test_zoo_ds_cnn_packs_for_venus_identical_linger_numpy_c(tmp_path):
    """The MLPerf Tiny DS-CNN (first conv 10x4, stride 2) trained with linger for venus (its
    pre-flight check accepts the kernel tpacker splits exactly) packs for venus
    (kernels 1..5) through split_large_kernels: every tensor linger computed equals the packed
    model's on numpy, and the C executor's every tensor equals numpy's."""
    import os
    import sys

    pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "linger"))
    from linger_flow import assert_identical, run_zoo_flow

    from thinker.runtime import DumpHook

    result = run_zoo_flow("ds_cnn", 8, str(tmp_path), platform="venus")
    assert_identical(result)  # linger == numpy on the ONNX graph
    packed_result, bin_path, _ = pack(tmp_path, onnx.load(tmp_path / "model.onnx"), "ds_cnn",
                                      platform="venus")
    assert any("kernel 10x4 -> 2 convs" in n for n in packed_result.notices)
    packed = thinker.load(bin_path)
    (spec,) = packed.inputs
    x = np.floor(result.inputs * 2.0**spec.exponent + 0.5).clip(-128, 127).astype(np.int8)
    hook = DumpHook(keep=True)
    out = packed.run({spec.name: x}, hooks=[hook])
    compared = 0
    for name, expected in result.linger_values.items():
        if name in hook.values:
            assert np.array_equal(hook.values[name].astype(np.int64), expected), name
            compared += 1
    assert compared >= 10
    (out_name,) = out
    assert np.array_equal(out[out_name].astype(np.float64) /
                          2.0**packed.outputs[0].exponent, result.linger_output)
    try:
        c_model = thinker.load(bin_path, backend="c")
    except thinker.ThinkerError as exc:
        pytest.skip(f"C executor unavailable: {exc}")
    numpy_dump, c_dump = DumpHook(), DumpHook()
    expected = packed.run({spec.name: x[:1]}, hooks=[numpy_dump])
    got = c_model.run({spec.name: x[:1]}, hooks=[c_dump])
    assert c_dump.lines == numpy_dump.lines
    assert np.array_equal(got[out_name], expected[out_name])
