"""nn.GRU, nn.LSTM, nn.GRUCell and nn.LSTMCell: init -> QAT -> eval -> export -> numpy on the
ONNX graph -> tpacker -> numpy on model.bin -> C, every tensor identical (uni- and bidirectional, 1
and 2 layers, with and without initial states, batch first or not, on every kernel family);
the training forward computes the eval integers; gradients reach every parameter; the export
is one GRUInt/LSTMInt node per layer and direction; what linger cannot do is refused by name."""

import collections
import math

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from rnn_models import Cells, Recurrent, assert_c_identical, assert_identical, run_flow

import linger

# (layers, bidirectional, initial state, batch_first, bias): every pair of values occurs
SHAPES = [(1, False, False, True, True), (2, False, True, False, True),
          (1, True, True, True, False), (2, True, False, False, True)]
SHAPE_IDS = ["1L-uni-nostate-bf", "2L-uni-state-tbf", "1L-bi-state-bf-nobias",
             "2L-bi-nostate-tbf"]


def ops_of(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(path).graph.node)


def nodes_of(path, op_type: str) -> list:
    return [n for n in onnx.load(path).graph.node if n.op_type == op_type]


def attrs(n) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def layer_flow(kind, shape, platform, folder):
    layers, bi, with_state, batch_first, bias = shape
    model = Recurrent(kind, layers, bi, batch_first, bias=bias)
    sizes = {"x": (5, 6), "state": (layers * (2 if bi else 1), 8)}
    return run_flow(model, sizes, {"platform": platform}, folder, with_state,
                    batch_axis=0 if batch_first else 1)


@pytest.mark.parametrize("platform", ["venus", "arcs", "mars"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_every_tensor_is_identical_in_linger_onnx_and_model_bin(kind, shape, platform,
                                                                 tmp_path):
    flow = layer_flow(kind, shape, platform, str(tmp_path))
    assert_identical(flow)
    assert_c_identical(flow)
    layers, bi, with_state, _, bias = shape
    op = "LSTMInt" if kind == "lstm" else "GRUInt"
    nodes = nodes_of(flow.onnx_path, op)
    assert len(nodes) == layers * (2 if bi else 1)  # one node per layer and direction
    for n in nodes:
        assert n.domain == "thinker"
        a = attrs(n)
        assert a["platform"] == platform.encode() and a["num_layers"] == 1
        assert a["scale_o"] == a["scale_h"]  # Y holds the hidden states exactly
        assert a["has_hidden"] == int(with_state)
        assert len(n.input) == 1 + with_state * (2 if kind == "lstm" else 1) + 2 + 2 * bias
        if kind == "lstm":
            assert a["scale_c"] == 32768.0 and a["has_cell"] == int(with_state)
    assert {attrs(n)["go_forward"] for n in nodes} == ({0, 1} if bi else {1})
    ops = ops_of(flow.onnx_path)
    assert "iqCat" not in ops  # both directions share scale_h: a plain Concat
    assert ops["Concat"] == (layers if bi else 0) + \
        ((2 if kind == "lstm" else 1) if layers * (2 if bi else 1) > 1 else 0)


def test_venusA_once(tmp_path):
    for kind in ("gru", "lstm"):
        folder = tmp_path / kind
        folder.mkdir()
        for shape in (SHAPES[3], SHAPES[1]):
            flow = layer_flow(kind, shape, "venusA", str(folder))
            assert_identical(flow)
            assert_c_identical(flow)


def test_initial_states_are_quantized_at_scale_h_and_q15(tmp_path):
    flow = layer_flow("lstm", SHAPES[1], "arcs", str(tmp_path))
    graph = onnx.load(flow.onnx_path).graph
    quants = {n.input[0]: attrs(n) for n in graph.node if n.op_type == "Quant"}
    lstm0, _ = nodes_of(flow.onnx_path, "LSTMInt")
    assert quants["h0"]["scale_x"] == attrs(lstm0)["scale_h"] and \
        quants["h0"]["data_bits"] == 8
    assert quants["c0"] == {"scale_x": 32768.0, "data_bits": 32}
    # each layer reads its row of the [L*D, B, H] states through a Slice
    assert ops_of(flow.onnx_path)["Slice"] == 4
    assert flow.linger_values["rnn.c0_quant"].dtype == np.int64
    c_n = flow.onnx_outputs["output_3"]
    assert c_n.shape == (2, 3, 8)
    # the state outputs stack every layer like PyTorch, batch on axis 1
    assert flow.onnx_outputs["output_2"].shape == (2, 3, 8)


@pytest.mark.parametrize("kind,platform,with_state", [("gru", "venus", True),
                                                       ("lstm", "arcs", True),
                                                       ("gru", "mars", False),
                                                       ("lstm", "venusA", False)])
def test_cells_run_as_one_step_ops(kind, platform, with_state, tmp_path):
    sizes = {"x": (2, 6), "state": (8,)}
    flow = run_flow(Cells(kind), sizes, {"platform": platform}, str(tmp_path), with_state)
    assert_identical(flow)
    assert_c_identical(flow)
    op = "LSTMInt" if kind == "lstm" else "GRUInt"
    nodes = nodes_of(flow.onnx_path, op)
    assert len(nodes) == 2 and all(attrs(n)["batch_first"] == 1 for n in nodes)
    assert [attrs(n)["has_hidden"] for n in nodes] == [int(with_state), 1]
    # [B, F] <-> [B, 1, F] and [B, H] <-> [1, B, H] with -1 on the batch axis
    shapes = {tuple(onnx.numpy_helper.to_array(i)) for i in onnx.load(flow.onnx_path).graph
              .initializer if i.name.endswith(".shape")}
    assert (-1, 1, 6) in shapes and (1, -1, 8) in shapes and (-1, 8) in shapes


def test_training_forward_is_the_integer_result():
    x = torch.randn(4, 5, 6)
    h0 = 0.5 * torch.randn(2, 4, 8)
    c0 = torch.randn(2, 4, 8)
    for kind, config in (("gru", {}), ("lstm", {"qat_method": "TQT", "platform": "arcs"}),
                         ("gru", {"activate_bits": 16, "platform": "venusA"}),
                         ("lstm", {"platform": "venus"})):
        model = linger.init(Recurrent(kind, 2, False, True), config)
        model.train()
        trained = model(x, h0, c0) if kind == "lstm" else model(x, h0)
        model.eval()
        with torch.no_grad():
            evaluated = model(x, h0, c0) if kind == "lstm" else model(x, h0)
        for t, e in zip(trained, evaluated, strict=True):
            assert torch.equal(t.detach().double(), e.double()), (kind, config)
        assert all(t.requires_grad for t in trained)


def test_gradients_reach_every_parameter_and_the_inputs():
    for kind in ("gru", "lstm"):
        model = linger.init(Recurrent(kind, 2, True, False), {"qat_method": "TQT"})
        model.train()
        x = torch.randn(5, 3, 6, requires_grad=True)
        h0 = torch.randn(4, 3, 8, requires_grad=True)
        c0 = torch.randn(4, 3, 8, requires_grad=True)
        outs = model(x, h0, c0) if kind == "lstm" else model(x, h0)
        sum(o.square().mean() for o in outs).backward()
        grads = {n: float(p.grad.abs().sum()) if p.grad is not None else 0.0
                 for n, p in model.named_parameters()
                 if not n.startswith("c0_quant")}  # the GRU model does not use its c0
        assert all(g > 0 for g in grads.values()), {n: g for n, g in grads.items() if not g > 0}
        assert "rnn.weight_hh_l1_reverse" in grads and "rnn.hidden_quantizer.log2_threshold" \
            in grads
        assert float(x.grad.abs().sum()) > 0 and float(h0.grad.abs().sum()) > 0
        for cell in ("gru", "lstm"):
            cells = linger.init(Cells(cell))
            cells.train()
            sum(o.square().mean() for o in cells(torch.randn(3, 2, 6))).backward()
            assert all(p.grad is not None and float(p.grad.abs().sum()) > 0
                       for p in cells.parameters())


def test_dropout_between_layers_trains_on_the_grid():
    model = linger.init(nn.Sequential(nn.GRU(6, 8, num_layers=2, dropout=0.5,
                                             batch_first=True)))
    model.train()
    y, h = model(torch.randn(4, 5, 6))
    q = model.get_submodule("0").hidden_quantizer.frozen_exponent()
    for t in (y, h):
        scaled = t.detach().double() * 2.0 ** q
        assert torch.equal(scaled, scaled.round())  # integers at the hidden exponent
    y.square().mean().backward()


def test_a_state_from_another_layer_is_requantized_to_this_layers_exponent(tmp_path):
    class EncoderDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = False
            self.encoder = nn.GRU(6, 8, batch_first=True)
            self.scale = nn.Linear(8, 8)
            self.decoder = nn.GRU(6, 8, batch_first=True)

        def forward(self, x):
            _, h = self.encoder(x)
            y, _ = self.decoder(x, 0.25 * self.scale(h))   # another range: another exponent
            return (y,)

    flow = run_flow(EncoderDecoder(), {"x": (5, 6)}, {"platform": "arcs"}, str(tmp_path),
                    False)
    assert_identical(flow)
    (requant,) = nodes_of(flow.onnx_path, "Requant")
    decoder = [n for n in nodes_of(flow.onnx_path, "GRUInt") if n.name.startswith("decoder")]
    assert attrs(requant)["scale_o"] == attrs(decoder[0])["scale_h"]
    assert attrs(requant)["scale_x"] != attrs(requant)["scale_o"]


# ---------------------------------------------------------------------------------------------
# checks and refusals


def test_the_pre_flight_check_accepts_recurrent_layers_and_names_nn_rnn():
    report = linger.check(Recurrent("lstm", 2, True, False), torch.randn(5, 2, 6), "venus")
    assert report.ok, str(report)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(6, 8)

        def forward(self, x):
            return self.rnn(x)[0]

    report = linger.check(Plain(), None, "venus")
    (problem,) = report.problems
    assert problem.what == "RNN 'rnn'" and "nn.GRU or nn.LSTM" in problem.fix


def test_unsupported_forms_are_refused_by_name():
    from torch.nn.utils.rnn import pack_padded_sequence

    model = linger.init(Recurrent("gru"))
    model.train()
    with pytest.raises(linger.LingerUnsupportedError, match="GRU 'rnn': input of shape"):
        model.rnn(model.x_quant(torch.randn(5, 6)))
    packed = pack_padded_sequence(torch.randn(2, 5, 6), [5, 3], batch_first=True)
    with pytest.raises(linger.LingerUnsupportedError, match="packed sequences"):
        model.rnn(packed)
    with pytest.raises(linger.LingerUnsupportedError, match="h0 has shape"):
        model(torch.randn(2, 5, 6), torch.randn(2, 2, 8))
    with pytest.raises(linger.LingerUnsupportedError, match="LSTM '0': proj_size"):
        linger.init(nn.Sequential(nn.LSTM(6, 8, proj_size=4)))


def test_weights_stay_8_bit_with_weight_bits_4_and_biases_are_int32(tmp_path):
    model = linger.init(Recurrent("gru"), {"weight_bits": 4})
    model.train()
    model(torch.randn(4, 5, 6))
    model.eval()
    path = tmp_path / "m.onnx"
    linger.onnx.export(model, torch.randn(1, 5, 6), str(path))
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    (node,) = nodes_of(path, "GRUInt")
    a = attrs(node)
    assert a["parameter_bits"] == 8 and weights["rnn.weight_ih_l0"].dtype == np.int8
    assert np.abs(weights["rnn.weight_ih_l0"]).max() > 8
    assert weights["rnn.bias_hh_l0"].dtype == np.int32
    assert math.log2(a["scale_iw"]).is_integer()
