"""linger's rounding modes (the original's ``round_mode``: floor_add, floor, round, ceil) through
the whole chain: QAT with the mode, export as the ``quant_mode`` attribute, and every tensor
identical between linger's eval forward, numpy on the ONNX graph, numpy on model.bin and the C
executor. The original's config spelling (``quant_info: {round_mode: floor}``) selects it."""

import os
import sys

import numpy as np
import onnx
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "linger"))

pytest.importorskip("torch")

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812
from linger_flow import train_steps

import linger
import thinker
from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph import import_model
from thinker.packer import Packer, PackOptions
from thinker.runtime import DumpHook

MODES = ["floor_add", "floor", "round", "ceil"]


class Small(nn.Module):
    """Conv + BatchNorm (folded) + ReLU, a residual add, a product, average pooling, a linear
    head: every op whose output rounding the mode changes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        z = self.conv2(y)
        y = y + z
        y = y * z
        y = F.avg_pool2d(y, 2)
        return self.fc(y.flatten(1))


def _trained(mode_config: dict, tmp_path) -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    x = torch.randn(16, 2, 6, 6, generator=torch.Generator().manual_seed(3))
    model = linger.constrain(Small(), mode_config)
    train_steps(model, x, 2)
    qmodel = linger.init(model, mode_config)
    train_steps(qmodel, x, 3)
    qmodel.eval()
    path = str(tmp_path / "model.onnx")
    linger.onnx.export(qmodel, x[:1], path)
    return qmodel, path


def _all_tensors_identical(qmodel, onnx_path: str, tmp_path) -> dict:
    x = torch.randn(8, 2, 6, 6, generator=torch.Generator().manual_seed(7)) * 2
    linger_values = linger.onnx.capture(qmodel, x)
    with torch.no_grad():
        linger_output = qmodel(x).numpy()
    # numpy on the ONNX graph
    dump = DumpHook(keep=True)
    out = thinker.load(onnx_path).run({"input": x.numpy()}, hooks=[dump])["output"]
    for key, expected in linger_values.items():
        assert np.array_equal(dump.values[key].astype(np.int64), expected), key
    assert np.array_equal(out, linger_output)
    # model.bin (Quant kept, so the executors round the input too), numpy and C
    result = Packer(PackOptions(graph_path=onnx_path, platform="venus", keep_quant=True,
                                workspace=str(tmp_path / "ws"))).run()
    bin_path = str(tmp_path / "model.bin")
    with open(bin_path, "wb") as f:
        f.write(result.model_bin)
    packed, c_model = thinker.load(bin_path), thinker.load(bin_path, backend="c")
    packed_dump, numpy_crc, c_crc = DumpHook(keep=True), DumpHook(), DumpHook()
    packed_out = packed.run({"input": x.numpy()}, hooks=[packed_dump])["output"]
    assert np.array_equal(packed_out, linger_output)
    for key in set(packed_dump.values) & set(dump.values):
        assert np.array_equal(packed_dump.values[key], dump.values[key]), key
    packed.run({"input": x.numpy()}, hooks=[numpy_crc])
    c_out = c_model.run({"input": x.numpy()}, hooks=[c_crc])["output"]
    assert c_crc.lines == numpy_crc.lines
    assert np.array_equal(c_out, linger_output)
    return linger_values


@pytest.mark.parametrize("mode", MODES)
def test_round_mode_is_bit_exact_linger_numpy_model_bin_and_c(mode, tmp_path):
    qmodel, path = _trained({"round_mode": mode}, tmp_path)
    nodes = onnx.load(path).graph.node
    modes = {n.op_type: [a.s.decode() for a in n.attribute if a.name == "quant_mode"]
             for n in nodes}
    for op in ("Quant", "Conv2dInt", "iqAdd", "iqMul", "LinearInt"):
        assert modes[op] == ([] if mode == "floor_add" else [mode]), op
    values = _all_tensors_identical(qmodel, path, tmp_path)
    assert sum(np.count_nonzero(v) for v in values.values()) > 0


def test_the_modes_round_differently(tmp_path):
    """The same trained weights and exponents with each mode on the first conv give different
    integers (floor <= floor_add <= ceil), so the test above is not vacuous."""
    _, path = _trained({"round_mode": "floor_add"}, tmp_path)
    x = np.random.default_rng(0).standard_normal((8, 2, 6, 6)).astype(np.float32) * 2
    outputs = {}
    for mode in MODES:
        model = onnx.load(path)
        conv = next(n for n in model.graph.node if n.op_type == "Conv2dInt")
        conv.attribute.append(onnx.helper.make_attribute("quant_mode", mode))
        dump = DumpHook(keep=True)
        thinker.load(import_model(model)).run({"input": x}, hooks=[dump])
        outputs[mode] = dump.values
    conv = next(n.output[0] for n in model.graph.node if n.op_type == "Conv2dInt")
    lo, mid, hi = (outputs[m][conv].astype(np.int64) for m in ("floor", "floor_add", "ceil"))
    assert (lo <= mid).all() and (mid <= hi).all() and (lo < hi).any()
    assert not np.array_equal(outputs["round"][conv], lo)


def test_original_yaml_round_mode_selects_the_mode(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("quant_info:\n  round_mode: ceil\n  qat_method: MOM\n")
    config = linger.load_config(str(cfg))
    assert config.round_mode == "ceil"


def test_quant_mode_on_an_op_that_cannot_honour_it_is_refused():
    from onnx import helper

    node = helper.make_node("iqSigmoid", ["x"], ["y"], name="sig", domain="thinker",
                            scale_x=16.0, scale_o=128.0, o_bits=8, quant_mode="floor")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", onnx.TensorProto.INT8, [1, 4])], [onnx.ValueInfoProto(name="y")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14),
                                                 helper.make_opsetid("thinker", 1)])
    with pytest.raises(ThinkerModelError, match=r"quant_mode 'floor' is not supported on "
                                                r"iqSigmoid.*round_mode floor_add"):
        import_model(m)


@pytest.mark.parametrize("mode", MODES)
def test_qmath_modes_match_their_definitions(mode):
    rng = np.random.default_rng(1)
    v = rng.integers(-(1 << 20), 1 << 20, 5000)
    ref = {"floor_add": lambda t: np.floor(t + 0.5), "floor": np.floor, "ceil": np.ceil,
           "round": np.rint}[mode]
    for s in (1, 2, 5, 13):
        assert np.array_equal(qmath.rshift_mode(v, s, mode), ref(v / 2.0**s))
    den = rng.integers(1, 50, 5000)
    assert np.array_equal(qmath.round_div_mode(v, den, mode), ref(v / den))
    x = rng.standard_normal(5000) * 100
    x[:4] = [0.5, -0.5, 1.5, -2.5]  # ties
    assert np.array_equal(qmath.quantize_mode(x, 0, 16, mode), ref(x))
    # nothing is rounded by a left shift or a shift of 0
    assert np.array_equal(qmath.rshift_mode(v, -3, mode), v << 3)
    assert np.array_equal(qmath.rshift_mode(v, 0, mode), v)
