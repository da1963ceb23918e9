"""ONNX import: dialects, constants, topological order, and one error listing every problem."""

import numpy as np
import onnx
import pytest
from onnx import helper

import thinker
from onnx_build import model, node, value_info
from thinker.errors import ThinkerModelError
from thinker.graph import import_model, load_onnx

X = np.arange(-8, 8, dtype=np.int8).reshape(1, 1, 4, 4)


def test_every_unsupported_op_is_listed_with_its_node_name():
    m = model(
        [node("Quant", ["x"], ["q"], name="quant_in", scale_x=1.0),
         helper.make_node("FancyOp", ["q"], ["a"], name="fancy_1", domain="thinker"),
         helper.make_node("Softsign", ["a"], ["b"], name="softsign_7"),
         helper.make_node("FancyOp", ["b"], ["y"], name="fancy_2", domain="thinker")],
        [value_info("x", np.float32, [1, 4])], ["y"])
    with pytest.raises(ThinkerModelError) as info:
        import_model(m)
    message = str(info.value)
    assert "3 unsupported op(s)" in message
    # one line per op type, and one line saying what thinker reads
    assert "thinker reads quantized models: the thinker / linger dialects" in message
    for expected in ("FancyOp [domain 'thinker'] at 2 node(s): 'fancy_1', 'fancy_2'",
                     "Softsign at 1 node(s): 'softsign_7'"):
        assert expected in message
    assert len(info.value.problems) == 2


def test_all_attribute_problems_are_reported_together():
    m = model(
        [node("Quant", ["x"], ["q"], name="q1", scale_x=3.0),
         node("Requant", ["q"], ["y"], name="r1", scale_o=2.0)],
        [value_info("x", np.float32, [1, 4])], ["y"])
    with pytest.raises(ThinkerModelError) as info:
        import_model(m)
    assert "Quant 'q1' attribute scale_x: scale 3.0 is not an exact power of two" in str(info.value)
    assert "Requant 'r1': required attribute 'scale_x' is missing" in str(info.value)


def test_newer_linger_names_map_to_the_thinker_dialect():
    w = np.ones((2, 1, 1, 1), dtype=np.int8)
    nodes = [
        helper.make_node("Quant", ["x"], ["q"], domain="linger", data_bits=8, scale_x=4.0,
                         platform="venus", zero_point=0),
        helper.make_node("QConv2d", ["q", "w"], ["c"], name="conv", domain="linger", x_bits=8,
                         w_bits=8, o_bits=8, scale_x=4.0, scale_w=1.0, scale_o=2.0,
                         kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0],
                         dilations=[1, 1], group=1, quant_mode="floor_add"),
        helper.make_node("QAdd", ["c", "c"], ["y"], name="add", domain="linger", x_bits=8,
                         scale_x=2.0, scale_y=2.0, o_bits=8, scale_o=2.0),
    ]
    m = model(nodes, [value_info("x", np.float32, [1, 1, 2, 2])], ["y"], {"w": w})
    g = import_model(m)
    assert [n.op_type for n in g.nodes] == ["Quant", "Conv2dInt", "iqAdd"]
    conv = g.nodes[1]
    assert conv.source_op_type == "QConv2d" and conv.attrs["data_bits"] == 8
    assert conv.attrs["parameter_bits"] == 8
    x = np.array([[[[0.25, 0.5], [-0.25, 1.0]]]], dtype=np.float32)
    # quant q2: 1, 2, -1, 4 ; conv (w=1) shift 2+0-1 = 1: .5->1, 1, -.5->0, 2 ; add: 2, 2, 0, 4
    y = thinker.load(g).run({"x": x})["y"]
    assert y[:, 0].tolist() == [[[2, 2], [0, 4]]] and y[:, 1].tolist() == [[[2, 2], [0, 4]]]


def test_unknown_rounding_modes_are_rejected():
    m = model([helper.make_node("QConv2d", ["x", "w"], ["y"], name="c1", domain="linger",
                                scale_x=1.0, scale_w=1.0, scale_o=1.0, o_bits=8,
                                quant_mode="stochastic")],
              [value_info("x", np.int8, [1, 1, 2, 2])], ["y"],
              {"w": np.ones((1, 1, 1, 1), np.int8)})
    with pytest.raises(ThinkerModelError, match="QConv2d 'c1': quant_mode 'stochastic'"):
        import_model(m)


def test_constant_nodes_become_constants_and_constant_subgraphs_fold():
    shape = helper.make_node("Constant", [], ["s"], value=helper.make_tensor(
        "v", onnx.TensorProto.INT64, [2], [1, 16]))
    m = model([shape, node("Reshape", ["x", "s"], ["y"])],
              [value_info("x", X)], ["y"])
    g = import_model(m)
    assert [n.op_type for n in g.nodes] == ["Reshape"]
    assert g.tensors["s"].data.tolist() == [1, 16]
    assert thinker.load(g).run({"x": X})["y"].tolist() == [list(range(-8, 8))]


def test_nodes_out_of_order_are_sorted_topologically():
    m = model([node("Relu", ["a"], ["y"], name="second"), node("Relu", ["x"], ["a"], name="first")],
              [value_info("x", X)], ["y"])
    g = import_model(m)
    assert [n.name for n in g.nodes] == ["first", "second"]


def test_shapes_dtypes_and_exponents_are_inferred():
    m = model([node("Quant", ["x"], ["q"], scale_x=8.0, data_bits=16),
               node("Relu", ["q"], ["y"])],
              [value_info("x", np.float32, [1, 3])], ["y"])
    t = import_model(m).tensors["y"]
    assert (t.shape, t.dtype, t.exponent) == ((1, 3), np.dtype(np.int16), 3)


def test_a_missing_tensor_is_named():
    m = model([node("Relu", ["nowhere"], ["y"], name="r")], [value_info("x", X)], ["y"])
    with pytest.raises(ThinkerModelError, match="Relu 'r' reads tensor 'nowhere'"):
        import_model(m)


def test_unreadable_file_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf at all \x00\xff")
    with pytest.raises(ThinkerModelError, match=r"bad\.onnx: not a readable ONNX model"):
        load_onnx(bad)
    with pytest.raises(ThinkerModelError, match="no such model file"):
        load_onnx(tmp_path / "missing.onnx")
