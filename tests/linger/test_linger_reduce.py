"""sum / mean / var (iqSum, iqSum with divisor, iqVar) and nearest upsampling (Resize): bit-exact
from linger's eval forward to the executor (ONNX and packed model.bin), training forward ==
integer result, hand-derived integers for a mean with ties, clear refusals."""

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
from linger.modules.reduce import QMean, QSum, QVar
from thinker.packer import Packer, PackOptions


class ReduceNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        parts = [
            y.mean(dim=(2, 3), keepdim=True),
            torch.mean(y, -1),
            y.sum(1, keepdim=True),
            torch.sum(y, dim=(1, 3)),
            y.var(dim=(2, 3), keepdim=True),
            torch.var(y, 3, unbiased=False, keepdim=True),
            y.var(2, correction=0),
            self.up(y),
            F.interpolate(y, size=(12, 27), mode="nearest"),
            self.head(F.interpolate(y, scale_factor=(1, 2))),
        ]
        return torch.cat([p.flatten(1) for p in parts], 1)


SHAPE = (2, 6, 9)
CONFIGS = [{}, {"activate_bits": 16}, {"qat_method": "TQT"}]


@pytest.mark.parametrize("config", CONFIGS, ids=["w8", "a16", "tqt"])
def test_reductions_and_upsampling_are_bit_exact(config, tmp_path):
    result = run_flow(ReduceNet(), SHAPE, config, str(tmp_path), n_inputs=32)
    assert_identical(result)
    nodes = [n for n in onnx.load(tmp_path / "model.onnx").graph.node]
    ops = [n.op_type for n in nodes]
    assert ops.count("iqSum") == 4 and ops.count("iqVar") == 3 and ops.count("Resize") == 3
    divisors = sorted(_attrs(n)["divisor"] for n in nodes if n.op_type == "iqSum")
    assert divisors == [1, 1, 9, 54]  # sums, mean over W, mean over H x W
    assert {n.domain for n in nodes if n.op_type in ("iqSum", "iqVar")} == {"thinker"}
    assert {n.domain for n in nodes if n.op_type == "Resize"} == {""}


def test_packed_model_equals_the_onnx_executor(tmp_path):
    result = run_flow(ReduceNet(), SHAPE, {"platform": "venus"}, str(tmp_path), n_inputs=8)
    for device in ("venus", "arcs"):  # arcs has no Resize: tpacker decomposes it
        out = tmp_path / f"{device}.bin"
        packed = Packer(PackOptions(graph_path=str(tmp_path / "model.onnx"),
                                    output_path=str(out), platform=device, keep_quant=True,
                                    workspace=str(tmp_path / "ws"))).run()
        out.write_bytes(packed.model_bin)
        got = thinker.load(str(out)).run({"input": result.inputs})["output"]
        assert np.array_equal(got, result.executor_output)
        assert np.array_equal(got, result.linger_output)


def test_mean_of_three_rounds_the_exact_quotient_half_up(tmp_path):
    class Mean(nn.Module):
        def forward(self, x):
            return x.mean(-1)

    x = torch.tensor([[[1., 1, 1], [-1, -1, -1], [2, 0, 1], [1, 2, 2], [-2, -2, -1]]])
    model = linger.init(Mean())
    _freeze(model, {"x_quant": 0, "mean": -1})
    captured, nodes, _ = _export_and_run(model, {"x": x}, tmp_path)
    # mean at exponent -1 = sum / 6: 3/6 = 0.5 -> 1, -3/6 = -0.5 -> 0 (ties go up),
    # 3/6 -> 1, 5/6 -> 1, -5/6 -> -1: one rounding of the exact quotient
    assert captured["mean"].tolist() == [[1, 0, 1, 1, -1]]
    attrs = _attrs(nodes["mean"])
    assert (attrs["axes"], attrs["keepdims"], attrs["divisor"]) == ([2], 0, 3)
    with torch.no_grad():
        assert model(x).tolist() == [[2.0, 0.0, 2.0, 2.0, -2.0]]


def test_variance_integers_by_hand(tmp_path):
    class Var(nn.Module):
        def forward(self, x):
            return torch.cat([x.var(-1), x.var(-1, unbiased=False)], 1)

    x = torch.tensor([[[1., 2, 4], [0, 1, 0], [-3, -3, -3]]])
    model = linger.init(Var())
    _freeze(model, {"x_quant": 0, "var": 2, "var_1": 2})
    captured, nodes, _ = _export_and_run(model, {"x": x}, tmp_path)
    # [1, 2, 4]: n S2 - S1**2 = 3 * 21 - 49 = 14; unbiased 14 / 6 = 2.33 -> * 4 = 9.33 -> 9,
    # biased 14 / 9 * 4 = 6.22 -> 6; [0, 1, 0]: 3 - 1 = 2: 2 / 6 * 4 = 1.33 -> 1,
    # 2 / 9 * 4 = 0.89 -> 1; constant rows give 0
    assert captured["var"].tolist() == [[9, 1, 0]]
    assert captured["var_1"].tolist() == [[6, 1, 0]]
    assert (_attrs(nodes["var"])["unbiased"], _attrs(nodes["var_1"])["unbiased"]) == (1, 0)
    assert nodes["var"].op_type == "iqVar"


def test_training_forward_equals_the_integer_result_and_gradients_flow():
    torch.manual_seed(0)
    model = linger.init(ReduceNet(), {"qat_method": "TQT"})
    x = torch.randn(8, *SHAPE)
    train_steps(model, x, 2)
    model.train()
    xg = x.clone().requires_grad_(True)
    trained = model(xg)
    trained.square().sum().backward()
    assert xg.grad.abs().sum() > 0 and model.conv.weight.grad.abs().sum() > 0
    reducers = [m for m in model.modules() if isinstance(m, (QMean, QSum, QVar))]
    assert len(reducers) == 7
    grads = [m.output_quantizer.log2_threshold.grad for m in reducers]
    assert all(g is not None for g in grads) and any(float(g) != 0 for g in grads)
    model.eval()
    with torch.no_grad():
        assert torch.equal(trained.detach(), model(x))


class Reduce(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 1)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x))


@pytest.mark.parametrize("fn, message", [
    (lambda y: y.sum(), r"sum at 'sum_1'.*whole tensor"),
    (lambda y: torch.mean(y), r"mean at 'mean'.*whole tensor"),
    (lambda y: y.mean(0), r"batch axis 0"),
    (lambda y: y.var(-1, correction=2), r"correction=2"),
    (lambda y: y.var(1).unsqueeze(1).var(1), r"at least 2"),
    (lambda y: y.sum(-1, dtype=torch.float64), r"dtype"),
    (lambda y: F.interpolate(y.unsqueeze(2), scale_factor=1.5), r"scale_factor 1\.5.*Upsample"),
    (lambda y: F.interpolate(y.unsqueeze(2), size=(1, 6)), r"integer multiple"),
    (lambda y: F.interpolate(y, scale_factor=2, mode="linear"), r"mode 'linear'.*nearest"),
], ids=["sum-all", "mean-all", "batch", "correction", "count", "dtype", "factor", "size",
        "mode"])
def test_unsupported_forms_are_refused_with_the_alternative(fn, message):
    model = linger.init(Reduce(fn))
    with pytest.raises(linger.LingerUnsupportedError, match=message):
        model(torch.randn(2, 2, 4))
