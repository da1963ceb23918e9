"""Hardsigmoid, Hardswish, SiLU and GELU (modules and F.* functions) as chains of thinker ops:
bit-exact on venus and arcs kernels, from linger's eval forward to the executor (ONNX and
packed model.bin); training forward == integer result; straight-through gradients."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812
from linger_flow import run_flow, train_steps
from test_linger_constants import _attrs, _export_and_run, _freeze
from test_linger_zoo_bit_exact import assert_identical

import linger
import thinker
from linger.modules.composite import QGELU, QHardsigmoid, QHardswish, QSiLU
from thinker import qmath
from thinker.nonlinear import pwl
from thinker.packer import Packer, PackOptions


class CompositeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.hsig, self.hswish = nn.Hardsigmoid(), nn.Hardswish()
        self.silu, self.gelu = nn.SiLU(), nn.GELU(approximate="tanh")

    def forward(self, x):
        y = self.fc(x)
        parts = [self.hsig(y), self.hswish(y), self.silu(y), self.gelu(y), F.hardsigmoid(y),
                 F.hardswish(y), F.silu(y), F.gelu(y)]
        return torch.cat(parts, 1)


CONFIGS = {
    "venus": {},  # no platform: venus kernels
    "arcs": {"platform": "arcs"},
    "venus-a16": {"platform": "venus", "activate_bits": 16},
    "arcs-tqt": {"platform": "arcs", "qat_method": "TQT"},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_composites_are_bit_exact(name, tmp_path):
    config = CONFIGS[name]
    result = run_flow(CompositeNet(), (8,), config, str(tmp_path), n_inputs=64)
    assert_identical(result)
    nodes = onnx.load(tmp_path / "model.onnx").graph.node
    ops = [n.op_type for n in nodes]
    # 2 hardsigmoid, 2 hardswish (each iqAdd, Clip, iqMul [, iqMul]), 2 silu, 2 gelu
    assert ops.count("iqAdd") == 4 and ops.count("Clip") == 4 and ops.count("iqSigmoid") == 4
    assert ops.count("iqMul") == 4 + 2 + 2 + 4
    platforms = {_attrs(n)["platform"] for n in nodes if n.op_type == "iqSigmoid"}
    assert platforms == {config.get("platform", "venus").encode()}


def test_packed_composites_equal_the_onnx_executor(tmp_path):
    for device in ("venus", "arcs"):
        folder = tmp_path / device
        result = run_flow(CompositeNet(), (8,), {"platform": device}, str(folder), n_inputs=16)
        out = folder / "model.bin"
        packed = Packer(PackOptions(graph_path=str(folder / "model.onnx"), output_path=str(out),
                                    platform=device, keep_quant=True,
                                    workspace=str(folder / "ws"))).run()
        out.write_bytes(packed.model_bin)
        got = thinker.load(str(out)).run({"input": result.inputs})["output"]
        assert np.array_equal(got, result.executor_output)


class Single(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, x):
        return self.act(x)


def test_hardsigmoid_integers_by_hand(tmp_path):
    model = linger.init(Single(nn.Hardsigmoid()))
    _freeze(model, {"x_quant": 4})
    x = torch.tensor([[-4.0, -3.0, 0.0, 1.0, 3.0, 7.0]])
    captured, nodes, consts = _export_and_run(model, {"x": x}, tmp_path)
    # x + 3 at exponent 4 (3 -> 48), clip to [0, 96], times 1/6 = 21845 / 2**17, rounded
    # to exponent 7: 0 -> 0, 48 * 21845 >> 14 -> 64 (0.5), 64 -> 85.33 -> 85, 96 -> 128 -> 127
    assert captured["act"].tolist() == [[0, 0, 64, 85, 127, 127]]
    assert _attrs(nodes["act"])["scale_o"] == 128.0
    assert consts[nodes["act"].input[1]] == 21845
    assert consts[nodes["act.add"].input[1]] == 48


def test_gelu_is_x_times_sigmoid_of_1_702_x_in_both_modes(tmp_path):
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.exact, self.tanh = nn.GELU(), nn.GELU(approximate="tanh")

        def forward(self, x):
            return torch.cat([self.exact(x), self.tanh(x)], 1)

    model = linger.init(Both(), {"platform": "arcs"})
    _freeze(model, {"x_quant": 5, "exact": 4, "tanh": 4})
    for gelu in (model.exact, model.tanh):
        gelu.scale_quantizer.observed.fill_(1)
        gelu.scale_quantizer.exponent.fill_(4)
    x = torch.arange(-128, 128, dtype=torch.float32).reshape(1, -1) / 32
    captured, _, _ = _export_and_run(model, {"x": x}, tmp_path)
    xi = np.arange(-128, 128).reshape(1, -1)
    factor = qmath.quantize_weight(1.702, 14, 16)  # 27886 at 2**14
    scaled = qmath.rescaled_product(xi, 5, factor, 14, 4, 8)
    gate = pwl.activation("sigmoid", scaled, 4, 7, 8, "arcs")
    expected = qmath.rescaled_product(xi, 5, gate, 7, 4, 8)
    assert np.array_equal(captured["exact"], expected)
    assert np.array_equal(captured["tanh"], expected)


@pytest.mark.parametrize("platform", ["venus", "arcs"])
def test_training_forward_equals_the_integer_result_and_gradients_flow(platform):
    torch.manual_seed(0)
    model = linger.init(CompositeNet(), {"qat_method": "TQT", "platform": platform})
    x = torch.randn(16, 8)
    train_steps(model, x, 2)
    model.train()
    xg = x.clone().requires_grad_(True)
    trained = model(xg)
    trained.square().sum().backward()
    assert xg.grad.abs().sum() > 0 and model.fc.weight.grad.abs().sum() > 0
    learned = [m for m in model.modules() if isinstance(m, (QHardswish, QSiLU, QGELU))]
    assert len(learned) == 6 and not any(isinstance(m, QHardsigmoid) and
                                         hasattr(m, "output_quantizer") for m in model.modules())
    assert all(m.output_quantizer.log2_threshold.grad is not None for m in learned)
    model.eval()
    with torch.no_grad():
        assert torch.equal(trained.detach(), model(x))


def test_gradients_are_those_of_the_float_functions():
    model = linger.init(Single(nn.Hardsigmoid()))
    model.train()
    x = torch.tensor([[-4.0, -1.0, 0.5, 2.0, 4.0]], requires_grad=True)
    model(x).sum().backward()
    # straight through the quantizing input (inside its range) and hardsigmoid's slope
    assert torch.allclose(x.grad, torch.tensor([[0.0, 1 / 6, 1 / 6, 1 / 6, 0.0]]))
