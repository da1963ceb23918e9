"""Quantized tensors carry their exponent forward: shape ops add no requantization."""

import collections

import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

import linger


class Shapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        y = F.relu(self.conv(x))
        y = F.max_pool2d(y, 2).permute(0, 2, 3, 1).contiguous().reshape(y.size(0), -1, 4)
        y = y.transpose(1, 2).clone().flatten(1)
        return self.fc(y)


def test_metadata_reads_work_and_computation_without_a_quantized_version_does_not():
    x = linger.QTensor.wrap(torch.zeros(2, 3, 4), exponent=5, bits=8, exact=False)
    assert x.shape == (2, 3, 4) and x.dim() == 3 and len(x) == 2 and x.numel() == 24
    assert x.dtype == torch.float32 and "exponent=5" in repr(x)
    assert x.reshape(6, 4).exponent == 5 and x[:, 1].exponent == 5
    with pytest.raises(linger.LingerUnsupportedError, match=r"torch\.exp"):
        torch.exp(x)


def test_shape_ops_keep_the_exponent(tmp_path):
    model = linger.init(Shapes())
    model.train()
    model(torch.randn(4, 2, 4, 4))
    model.eval()
    proto = linger.onnx.export(model, torch.randn(1, 2, 4, 4), tmp_path / "m.onnx")
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert "Requant" not in ops and ops["Transpose"] == 2 and ops["Reshape"] == 1
    conv = next(n for n in proto.graph.node if n.op_type == "Conv2dInt")
    fc = next(n for n in proto.graph.node if n.op_type == "LinearInt")
    attr = lambda n, k: next(a.f for a in n.attribute if a.name == k)  # noqa: E731
    assert attr(fc, "scale_x") == attr(conv, "scale_o")


def test_eval_values_are_the_integers_over_two_to_the_exponent():
    model = linger.init(nn.Sequential(nn.Conv2d(1, 2, 3))).eval()
    with linger.calibration(model):
        model(torch.randn(2, 1, 5, 5))
    conv_out = {}
    model.get_submodule("0").register_forward_hook(lambda m, i, o: conv_out.setdefault("o", o))
    with torch.no_grad():
        model(torch.randn(2, 1, 5, 5))
    out = conv_out["o"]
    assert isinstance(out, linger.QTensor) and out.exact
    ints = out.plain * 2.0 ** out.exponent
    assert torch.equal(ints, ints.round()) and ints.abs().max() <= 128


def test_exported_graph_outputs_keep_onnx_types_consistent(tmp_path):
    model = linger.init(Shapes()).eval()
    with linger.calibration(model):
        model(torch.randn(4, 2, 4, 4))
    proto = linger.onnx.export(model, torch.randn(1, 2, 4, 4), tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(5, 3)

    def forward(self, x, y):
        return torch.cat([self.a(x), self.b(y)], 1), self.a(x) + self.b(y)


def test_several_inputs_and_outputs_export_and_run_bit_exact(tmp_path):
    import numpy as np

    import thinker

    model = linger.init(TwoInputs())
    model.train()
    x, y = torch.randn(16, 4), torch.randn(16, 5) * 3
    model(x, y)
    model.eval()
    linger.onnx.export(model, (x[:1], y[:1]), tmp_path / "m.onnx", input_names=["x", "y"],
                       output_names=["joined", "summed"])
    got = thinker.load(str(tmp_path / "m.onnx")).run({"x": x.numpy(), "y": y.numpy()})
    with torch.no_grad():
        joined, summed = model(x, y)
    assert np.array_equal(got["joined"], joined.numpy())
    assert np.array_equal(got["summed"], summed.numpy())
