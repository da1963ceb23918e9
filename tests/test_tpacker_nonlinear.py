"""tpacker with the non-linear ops: the exact rewrites for devices that lack an op or read
another width (venus sigmoid reads int16, venus has no GluInt, arcs no Resize) keep every
integer, and the per-op device rules are reported with the op, the value and the fix."""

import numpy as np
import pytest

from onnx_build import model, node, value_info
from test_tpacker import assert_packed_equals_onnx, pack
from thinker.errors import ThinkerDeviceError


def _unary(op_type, out_bits=8, shape=(1, 4, 6, 8), **attrs):
    attrs.setdefault("scale_x", 16.0)
    attrs.setdefault("o_bits", out_bits)
    nodes = [node(op_type, ["x"], ["y"], name="op", **attrs)]
    return model(nodes, [value_info("x", np.int8, list(shape))], ["y"])


def _ops(bin_path):
    import thinker
    return [op.op_type for op in thinker.load(bin_path).graph.nodes]


@pytest.mark.parametrize("op_type", ["iqSigmoid", "iqTanh"])
def test_venus_sigmoid_tanh_get_an_exact_int16_input(tmp_path, op_type):
    m = _unary(op_type, scale_o=128.0, platform="venus")
    _, bin_path, onnx_path = pack(tmp_path, m, platform="venus")
    ops = _ops(bin_path)
    assert ops.count("Requant") == 1 and op_type in ops
    assert_packed_equals_onnx(bin_path, onnx_path, batch=4)


def test_glu_becomes_split_sigmoid_mul_on_venus_with_the_same_integers(tmp_path):
    m = _unary("GluInt", scale_o=8.0, dim=1, platform="venus")
    _, bin_path, onnx_path = pack(tmp_path, m, platform="venus")
    ops = _ops(bin_path)
    assert "GluInt" not in ops and {"Split", "iqSigmoid", "iqMul"} <= set(ops)
    assert_packed_equals_onnx(bin_path, onnx_path, batch=4)
    _, arcs_bin, _ = pack(tmp_path, _unary("GluInt", scale_o=8.0, dim=1, platform="arcs"),
                          "arcs", platform="arcs")
    assert "GluInt" in _ops(arcs_bin)


def test_resize_becomes_data_movement_on_arcs_with_the_same_integers(tmp_path):
    import onnx
    from onnx import helper, numpy_helper

    scales = numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "scales")
    roi = numpy_helper.from_array(np.array([], np.float32), "roi")
    n = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    g = helper.make_graph([n], "g", [value_info("x", np.int8, [1, 2, 3, 4])],
                          [onnx.ValueInfoProto(name="y")], [scales, roi])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    _, bin_path, onnx_path = pack(tmp_path, m, platform="arcs")
    assert "Resize" not in _ops(bin_path)
    packed = assert_packed_equals_onnx(bin_path, onnx_path, batch=2)
    x = np.arange(24, dtype=np.int8).reshape(1, 2, 3, 4)
    y = packed.run({"x": x})["y"]
    assert np.array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 3, axis=3))
    _, venus_bin, _ = pack(tmp_path, m, "venus", platform="venus")
    assert "Resize" in _ops(venus_bin)


def _problems(tmp_path, m, platform):
    with pytest.raises(ThinkerDeviceError) as info:
        pack(tmp_path, m, platform=platform)
    return str(info.value)


def test_fixed_output_scale_of_the_device_sigmoid_is_enforced(tmp_path):
    text = _problems(tmp_path, _unary("iqSigmoid", scale_o=64.0, platform="arcs"), "arcs")
    assert "iqSigmoid 'op': scale_o 2**6 but arcs iqSigmoid writes int8 at 2**7; export it " \
           "with scale_o = 128" in text


def test_softmax_must_work_on_the_last_axis_within_2048_on_venus(tmp_path):
    text = _problems(tmp_path, _unary("SoftmaxInt", scale_o=128.0, axis=1, platform="venus"),
                     "venus")
    assert "SoftmaxInt 'op': axis 1 is not the last axis of 'x' int8[1, 4, 6, 8] q=4; venus " \
           "SoftmaxInt works on the last axis: transpose before and after" in text
    long = _unary("SoftmaxInt", scale_o=128.0, axis=-1, platform="venus", shape=(1, 2, 4096))
    assert "has 4096 elements, over the venus limit 2048" in _problems(tmp_path, long, "venus")


def test_bmm_left_shift_and_right_matrix_size_are_venus_rules(tmp_path):
    nodes = [node("BmmInt", ["a", "b"], ["y"], name="mm", scale_x=2.0, scale_y=2.0,
                  scale_o=16.0, o_bits=8)]
    m = model(nodes, [value_info("a", np.int8, [1, 4, 300]),
                      value_info("b", np.int8, [1, 300, 120])], ["y"])
    text = _problems(tmp_path, m, "venus")
    assert "BmmInt 'mm': scale_o is finer than scale_x * scale_y (shift -2)" in text
    assert "BmmInt 'mm': right matrix 36,480 B exceeds the venus limit 32,768 B" in text
