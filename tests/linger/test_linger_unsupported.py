"""What linger cannot quantize is reported naming the op and the module, never exported as a
broken graph."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

import linger
import thinker
from linger import qtensor, zoo
from linger.quantizer import ActivationQuantizer


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return x * torch.exp(self.conv(x))


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.block = Gate()

    def forward(self, x):
        return self.block(self.stem(x))


def test_an_op_without_quantized_version_is_named_with_its_module():
    with pytest.raises(linger.LingerUnsupportedError,  # found at init (linger.check)
                       match=r"`torch\.exp\(x\)` in 'block': torch\.exp has no quantized"):
        linger.init(Gated())


def init_unchecked(model, monkeypatch):
    """linger.init as if the check had let torch.exp through: what runs later still refuses."""
    with monkeypatch.context() as patch:
        patch.setitem(qtensor.HANDLERS, torch.exp, torch.exp)
        return linger.init(model)


def test_at_run_time_such_an_op_is_named_with_its_module(monkeypatch):
    model = init_unchecked(Gated(), monkeypatch)
    with pytest.raises(linger.LingerUnsupportedError, match=r"torch\.exp at 'block\.exp'"):
        model(torch.randn(2, 1, 4, 4))


def test_export_of_such_an_op_names_it_and_its_module_and_writes_nothing(tmp_path, monkeypatch):
    model = init_unchecked(Gated(), monkeypatch).eval()
    for q in model.modules():  # as if trained: every exponent frozen
        if isinstance(q, ActivationQuantizer):
            q.observed.fill_(1)
            q.exponent.fill_(5)
    path = tmp_path / "gated.onnx"
    with pytest.raises(linger.LingerUnsupportedError, match=r"torch\.exp at 'block\.exp'"):
        linger.onnx.export(model, torch.randn(1, 1, 4, 4), path)
    assert not list(tmp_path.iterdir())


class WithELUModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.act = nn.ELU()

    def forward(self, x):
        return self.act(self.conv(x))


def test_a_module_linger_does_not_know_fails_at_init_with_its_path():
    with pytest.raises(linger.LingerUnsupportedError, match=r"ELU 'act'.*disable_module"):
        linger.init(WithELUModule())


def test_a_disabled_module_trains_but_export_names_it_and_writes_nothing(tmp_path):
    model = linger.init(WithELUModule(), {"disable_module": ["ELU"]})
    model.train()
    x = torch.randn(4, 1, 6, 6)
    model(x).sum().backward()
    model.eval()
    with torch.no_grad():
        model(x)  # eval works, with the float island inside
    path = tmp_path / "model.onnx"
    with pytest.raises(linger.LingerUnsupportedError, match=r"ELU 'act' is kept float"):
        linger.onnx.export(model, x[:1], path)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_unknown_module_types_are_listed_together():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.GroupNorm(1, 4)
            self.rnn = nn.RNN(4, 4)

        def forward(self, x):
            return self.rnn(self.norm(x))

    with pytest.raises(linger.LingerUnsupportedError, match=r"2 modules linger cannot quantize"
                                                            r"(.|\n)*1\. .*GroupNorm 'norm'"
                                                            r"(.|\n)*2\. .*RNN 'rnn'"):
        linger.init(Net())


def test_a_forward_torch_fx_cannot_trace_is_reported_at_init():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(linger.LingerUnsupportedError, match=r"torch\.fx"):
        linger.init(Branchy())


def test_arithmetic_with_a_float_tensor_is_refused_with_its_place():
    class Scaled(nn.Module):  # (Python numbers are supported: test_linger_constants.py)
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.register_buffer("gain", torch.full((4,), 0.5))

        def forward(self, x):
            return self.fc(x) * self.gain

    model = linger.init(Scaled())
    with pytest.raises(linger.LingerUnsupportedError, match=r"iqMul 'mul'.*not quantized"):
        model(torch.randn(2, 4))


def test_exporting_a_model_that_linger_did_not_prepare_is_refused(tmp_path):
    with pytest.raises(linger.LingerError, match=r"linger\.init"):
        linger.onnx.export(zoo.build("fc_autoencoder").eval(), torch.randn(1, 640),
                           tmp_path / "m.onnx")


def test_export_before_training_or_calibration_is_refused(tmp_path):
    model = linger.init(zoo.build("lenet5"))
    with pytest.raises(linger.LingerStateError, match="calibrat"):
        linger.onnx.export(model, torch.randn(1, 1, 28, 28), tmp_path / "m.onnx")


def calibrated(name: str):
    model = linger.init(zoo.build(name)).eval()
    with linger.calibration(model):
        model(torch.randn(8, *zoo.input_shape(name)))
    return model


def test_opset_versions_below_14_are_refused(tmp_path):
    with pytest.raises(linger.LingerError, match="opset_version 11"):
        linger.onnx.export(calibrated("lenet5"), torch.randn(1, 1, 28, 28), tmp_path / "m.onnx",
                           opset_version=11)


def test_the_exported_file_is_a_checked_thinker_dialect_graph_with_the_given_names(tmp_path):
    model = calibrated("ds_cnn")
    x = torch.randn(3, 1, 49, 10)
    path = tmp_path / "kws.onnx"
    linger.onnx.export(model, x[:1], path, input_names=["mfcc"], output_names=["logits"],
                       opset_version=17)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", 17), ("thinker", 1)}
    assert [i.name for i in proto.graph.input] == ["mfcc"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    kinds = {i.name: onnx.numpy_helper.to_array(i).dtype for i in proto.graph.initializer}
    assert kinds["features.1.weight"] == np.int8 and kinds["features.1.bias"] == np.int32
    thinker_ops = [n for n in proto.graph.node if n.domain == "thinker"]
    assert {n.op_type for n in thinker_ops} >= {"Quant", "Conv2dInt", "LinearInt", "Dequant"}
    executor = thinker.load(str(path))
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.array_equal(executor.run({"mfcc": x.numpy()})["logits"], expected)
