"""GRUInt / LSTMInt on the deployment side: exports of the original linger 3.x (``linger::QLSTM``
with Quant-ed h0/c0 and float-typed state outputs, and the ``linger::QGRU`` form, whose h0
arrives unquantized) import and run unchanged with the op's integers (a hand-derived case and
the op applied directly); graphs with recurrent layouts run any batch (sample by sample, the
states keeping their batch on axis 1) on the ONNX graph and on model.bin, or say why not;
tpacker packs them for every device and thinker profile costs them."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import thinker
from thinker import qmath
from thinker.errors import ThinkerInputError, ThinkerModelError
from thinker.graph import import_model
from thinker.graph.ir import Node, Tensor
from thinker.nonlinear import pwl as pwl_kernels
from thinker.nonlinear.tables import pwl
from thinker.ops import get_op
from thinker.packer import Packer, PackOptions
from thinker.runtime import DumpHook

DEVICES = ["venus", "arcs", "mars", "venusA", "cortex-m"]


def linger3_rnn(kind, platform, T=3, B=1, F=4, H=2, has_hidden=True, bias=True, seed=0,
                scale_x=32.0, scale_h=128.0, scale_o=64.0, scale_iw=64.0, scale_hw=64.0,
                batch_first=0, go_forward=1, quantized_h0=True, weights=None):
    """One direction of a ``linger::QLSTM`` / ``linger::QGRU`` as linger 3.x's
    linger/onnx/export.py writes it: X -> linger::Quant; h0 -> Quant(x_bits, scale_h) and c0 ->
    Quant(32, scale_c) (the GRU symbolic passes h0 unquantized: ``quantized_h0=False``); int8
    W [G*H, F] in PyTorch's gate order, int32 biases; Y -> Dequant(scale_o); h_n / c_n are graph
    outputs typed float, without a Dequant."""
    rng = np.random.default_rng(seed)
    lstm = kind == "QLSTM"
    g = 4 if lstm else 3
    x_shape = [B, T, F] if batch_first else [T, B, F]
    nodes = [helper.make_node("Quant", ["input"], ["xq"], name="Quant_0", domain="linger",
                              data_bits=8, scale_x=scale_x, platform=platform, zero_point=0)]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)]
    rnn_inputs = ["xq"]
    if has_hidden:
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, B, H]))
        if quantized_h0:
            nodes.append(helper.make_node("Quant", ["h0"], ["h0q"], name="Quant_h",
                                          domain="linger", data_bits=8, scale_x=scale_h,
                                          platform=platform, zero_point=0))
        rnn_inputs.append("h0q" if quantized_h0 else "h0")
        if lstm:
            inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, B, H]))
            nodes.append(helper.make_node("Quant", ["c0"], ["c0q"], name="Quant_c",
                                          domain="linger", data_bits=32, scale_x=32768.0,
                                          platform=platform, zero_point=0))
            rnn_inputs.append("c0q")
    w = weights or {"W_ih": rng.integers(-127, 128, (g * H, F)).astype(np.int8),
                    "W_hh": rng.integers(-127, 128, (g * H, H)).astype(np.int8),
                    "b_ih": rng.integers(-3000, 3000, g * H).astype(np.int32),
                    "b_hh": rng.integers(-3000, 3000, g * H).astype(np.int32)}
    names = ["W_ih", "W_hh"] + (["b_ih", "b_hh"] if bias else [])
    rnn_inputs += names
    attrs = dict(platform=platform, x_bits=8, scale_x=scale_x, quant_mode="floor_add",
                 o_bits=8, scale_o=scale_o, input_size=F, hidden_size=H, num_layers=1,
                 batch_first=batch_first, go_forward=go_forward, scale_h=scale_h, w_bits=8,
                 scale_iw=scale_iw, scale_hw=scale_hw, has_hidden=int(has_hidden))
    outputs = ["yq", "h_n"]
    if lstm:
        attrs.update(scale_c=32768.0, has_cell=int(has_hidden))
        outputs.append("c_n")
    nodes.append(helper.make_node(kind, rnn_inputs, outputs, name=f"{kind}_1", domain="linger",
                                  **attrs))
    nodes.append(helper.make_node("Dequant", ["yq"], ["output"], name="Dequant_2",
                                  domain="linger", scale_o=scale_o))
    graph_outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)] + [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, B, H]) for n in outputs[1:]]
    graph = helper.make_graph(nodes, "linger3_rnn", inputs, graph_outputs,
                              [numpy_helper.from_array(w[n], n) for n in names])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("linger", 1)])


def apply_op(op_type, ints: list, weights: list, attrs: dict):
    """The op's kernel on integer arrays, without any graph."""
    tensors = [Tensor(f"in{i}", a.shape, a.dtype) for i, a in enumerate(ints)] + \
        [Tensor(f"w{i}", a.shape, a.dtype, None, a) for i, a in enumerate(weights)]
    node = Node(op_type, "direct", [t.name for t in tensors], ["y", "h", "c"][:2 + (
        op_type == "LSTMInt")], {k: v for k, v in attrs.items() if k not in ("x_bits", "w_bits")})
    op = get_op(op_type)
    outs = op.infer(node, tensors)
    return op.prepare(node, tensors, outs)(*ints, *weights)


def packed_feeds(packed, feeds: dict) -> dict:
    """The integers the file's input Quants make (tpacker moved them out of the model)."""
    ints = {"xq": qmath.quantize(feeds["input"], 5, 8).astype(np.int8),
            "h0q": qmath.quantize(feeds["h0"], 7, 8).astype(np.int8)}
    if "c0" in feeds:
        ints["c0q"] = qmath.quantize(feeds["c0"], 15, 32).astype(np.int32)
    return {s.name: ints[s.name] for s in packed.inputs}


def feeds_for(kind, T=3, B=1, F=4, H=2, seed=1, batch_first=0):
    rng = np.random.default_rng(seed)
    feeds = {"input": rng.normal(size=(B, T, F) if batch_first else (T, B, F))
             .astype(np.float32),
             "h0": (0.5 * rng.normal(size=(1, B, H))).astype(np.float32)}
    if kind == "QLSTM":
        feeds["c0"] = rng.normal(size=(1, B, H)).astype(np.float32)
    return feeds


@pytest.mark.parametrize("platform", ["venus", "arcs", "venusA"])
@pytest.mark.parametrize("kind,quantized_h0", [("QLSTM", True), ("QGRU", True),
                                               ("QGRU", False)],
                         ids=["qlstm", "qgru", "qgru-float-h0"])
def test_original_exports_import_and_run_with_the_ops_integers(kind, quantized_h0, platform):
    m = linger3_rnn(kind, platform, quantized_h0=quantized_h0)
    graph = import_model(m)
    op_type = "LSTMInt" if kind == "QLSTM" else "GRUInt"
    (node,) = [n for n in graph.nodes if n.op_type == op_type]
    assert node.attrs["data_bits"] == 8 and node.attrs["parameter_bits"] == 8  # renamed
    ex = thinker.load(graph)
    feeds = feeds_for(kind)
    out = ex.run(feeds)
    # the state outputs are declared float in the file: they come out as the integers at
    # scale_h (h_n) and 2**15 (c_n), with their exponents
    specs = {s.name: s for s in ex.outputs}
    assert specs["h_n"].dtype == np.int8 and specs["h_n"].exponent == 7
    if kind == "QLSTM":
        assert specs["c_n"].dtype == np.int32 and specs["c_n"].exponent == 15
    # the same integers as the op applied directly to the quantized inputs
    ints = [qmath.quantize(feeds["input"], 5, 8).astype(np.int8),
            qmath.quantize(feeds["h0"], 7, 8).astype(np.int8)]
    if kind == "QLSTM":
        ints.append(qmath.quantize(feeds["c0"], 15, 32).astype(np.int32))
    weights = [numpy_helper.to_array(i) for i in m.graph.initializer]
    attrs = {a.name: helper.get_attribute_value(a) for a in m.graph.node[-2].attribute}
    attrs["platform"] = attrs["platform"].decode()
    attrs["quant_mode"] = attrs["quant_mode"].decode()
    direct = apply_op(op_type, ints, weights, attrs)
    assert np.array_equal(out["output"], qmath.dequantize(direct[0], 6))
    assert np.array_equal(out["h_n"], direct[1])
    if kind == "QLSTM":
        assert np.array_equal(out["c_n"], direct[2])
    # one step: Y is the new hidden state rescaled from scale_h (2**7) to scale_o (2**6)
    one = linger3_rnn(kind, platform, T=1, quantized_h0=quantized_h0)
    res = thinker.load(import_model(one)).run(feeds_for(kind, T=1))
    y_ints = np.round(res["output"].astype(np.float64) * 64).astype(np.int64)
    assert np.array_equal(y_ints, qmath.rescale(res["h_n"].astype(np.int64), 1, 8))
    assert np.count_nonzero(res["h_n"]) > 0


def test_lstm_cell_update_by_hand():
    """arcs, all weights and biases 0: every gate input is 0, so i = f = o = sigmoid(0) = 0.5
    (Q31 2**30 -> Q15 16384) and g = tanh(0) = 0: c27 = rq(c * 16384, 3) and c' = rq(c27, 12)
    = rq(c, 1), ties toward +inf: c = 3 -> 2, c = -3 -> -1, c = 5 -> 3."""
    assert pwl_kernels.pwl_kernel(pwl("arcs", "sigmoid"), np.array([0]))[0] == 1 << 30
    assert pwl_kernels.pwl_kernel(pwl("arcs", "tanh"), np.array([0]))[0] == 0
    H = 3
    zeros = {"W_ih": np.zeros((4 * H, 1), np.int8), "W_hh": np.zeros((4 * H, H), np.int8),
             "b_ih": np.zeros(4 * H, np.int32), "b_hh": np.zeros(4 * H, np.int32)}
    m = linger3_rnn("QLSTM", "arcs", T=1, F=1, H=H, weights=zeros)
    c0 = np.array([[[3, -3, 5]]], np.int64)
    out = thinker.load(import_model(m)).run({
        "input": np.zeros((1, 1, 1), np.float32), "h0": np.zeros((1, 1, H), np.float32),
        "c0": (c0 / 32768.0).astype(np.float32)})
    assert out["c_n"].tolist() == [[[2, -1, 3]]]
    # h' = rq(o * t, 30 - 7) with t = rq(tanh(c27), 16) a few Q15 units: 0
    assert out["h_n"].tolist() == [[[0, 0, 0]]]


@pytest.mark.parametrize("batch_first", [0, 1])
def test_any_batch_runs_sample_by_sample_with_states_on_axis_1(batch_first, tmp_path):
    m = linger3_rnn("QLSTM", "mars", batch_first=batch_first)
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    ex = thinker.load(path)
    feeds = feeds_for("QLSTM", B=4, batch_first=batch_first)
    batch_axis = 0 if batch_first else 1
    whole = ex.run(feeds)
    for b in range(4):
        one = ex.run({k: np.take(v, [b], axis=batch_axis if k == "input" else 1)
                      for k, v in feeds.items()})
        assert np.array_equal(np.take(whole["output"], [b], axis=batch_axis), one["output"])
        for k in ("h_n", "c_n"):
            assert np.array_equal(whole[k][:, b:b + 1], one[k])
    # model.bin: the same, hooks see whole-batch tensors
    (tmp_path / "m.bin").write_bytes(Packer(PackOptions(
        graph_path=path, platform="mars", workspace=str(tmp_path / "ws"))).run().model_bin)
    packed = thinker.load(str(tmp_path / "m.bin"))
    renamed = packed_feeds(packed, feeds)
    dump = DumpHook(keep=True)
    out = packed.run(renamed, hooks=[dump])
    assert np.array_equal(out["h_n"], whole["h_n"]) and np.array_equal(out["c_n"], whole["c_n"])
    assert dump.values["h_n"].shape == (1, 4, 2)
    # a shape that is not the model's on the other axes names the batch axis
    with pytest.raises(ThinkerInputError, match=f"any batch size N on axis {batch_axis}"):
        bad = dict(renamed)
        bad["xq"] = np.concatenate([bad["xq"]] * 2, axis=1 - batch_axis)  # the time axis
        packed.run(bad)


def test_a_graph_that_mixes_the_batch_with_time_runs_only_its_batch():
    """Y [T, B, H] (batch on axis 1) flattened whole: the batch cannot be told apart."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("GRUInt", ["x", "W_ih", "W_hh"], ["y", "h"], name="gru",
                              domain="thinker", scale_x=1.0, scale_iw=64.0, scale_hw=64.0,
                              scale_h=128.0, scale_o=128.0, platform="arcs"),
             helper.make_node("Reshape", ["y", "shape"], ["flat"], name="flatten")]
    graph = helper.make_graph(
        nodes, "mix", [helper.make_tensor_value_info("x", TensorProto.INT8, [3, 1, 2])],
        [helper.make_tensor_value_info("flat", TensorProto.INT8, None)],
        [numpy_helper.from_array(rng.integers(-50, 50, (6, 2)).astype(np.int8), "W_ih"),
         numpy_helper.from_array(rng.integers(-50, 50, (6, 2)).astype(np.int8), "W_hh"),
         numpy_helper.from_array(np.array([6], np.int64), "shape")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid("thinker", 1)])
    ex = thinker.load(import_model(m))
    x = rng.integers(-20, 20, (3, 1, 2)).astype(np.int8)
    assert ex.run({"x": x})["flat"].shape == (6,)
    with pytest.raises(ThinkerModelError, match="'flatten' reshapes the batch axis together"):
        ex.run({"x": np.concatenate([x, x], axis=1)})


@pytest.mark.parametrize("kind", ["QLSTM", "QGRU"])
def test_tpacker_packs_every_device_and_profile_costs_the_layer(kind, tmp_path):
    for device in DEVICES:
        m = linger3_rnn(kind, "arcs" if device == "cortex-m" else device)
        path = str(tmp_path / f"{device}.onnx")
        onnx.save(m, path)
        bin_path = str(tmp_path / f"{device}.bin")
        with open(bin_path, "wb") as f:
            f.write(Packer(PackOptions(graph_path=path, platform=device,
                                       workspace=str(tmp_path / "ws"))).run().model_bin)
        packed = thinker.load(bin_path)
        feeds = packed_feeds(packed, feeds_for(kind))
        numpy_crc, c_crc = DumpHook(), DumpHook()
        expected = packed.run(feeds, hooks=[numpy_crc])
        got = thinker.load(bin_path, backend="c").run(feeds, hooks=[c_crc])
        assert c_crc.lines == numpy_crc.lines, device
        assert all(np.array_equal(got[k], expected[k]) for k in expected), device
    cli = os.path.join(os.path.dirname(sys.executable), "thinker")
    op_type = "LSTMInt" if kind == "QLSTM" else "GRUInt"
    result = subprocess.run([cli, "profile", bin_path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if f" {op_type} " in line)
    assert " linear " in row
