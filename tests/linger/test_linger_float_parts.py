"""Keeping a part float (disable_module / disable_submodel): it trains inside the quantized
model, what it returns re-enters through its own input quantizer, and export refuses the model
naming every float part."""

import math

import pytest
import torch
import torch.nn as nn

import linger
from linger.modules.io import FloatReentry


class Middle(nn.Module):
    """Quantized conv and linear around a float Linear ('mid') and a float LSTM, whose output
    is a tuple (the case that used to crash in the quantizer)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.mid = nn.Linear(8, 8)
        self.rnn = nn.LSTM(8, 8, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        y = torch.relu(self.conv(x)).transpose(1, 2)
        y = torch.relu(self.mid(y))
        y, (h, _) = self.rnn(y)
        return self.out(y + h.transpose(0, 1))


CONFIG = {"disable_submodel": ["mid"], "disable_module": ["LSTM"]}


def quantized(**extra):
    torch.manual_seed(0)
    return linger.init(Middle(), {**CONFIG, **extra})


@pytest.mark.parametrize("method", ["MOM", "TQT"])
def test_a_model_with_float_parts_trains(method):
    model = quantized(qat_method=method).train()
    float_weight = model.mid.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, target = torch.randn(8, 4, 6), torch.randn(8, 6, 3)
    for _ in range(3):
        loss = nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert math.isfinite(float(loss.detach()))
    assert not torch.equal(model.mid.weight, float_weight)  # the float part trains too
    reentries = [m for m in model.modules() if isinstance(m, FloatReentry)]
    assert len(reentries) == 3  # mid's output, the LSTM's y and its h (c is unused)
    assert all(int(m.quantizer.observed) for m in reentries)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (8, 6, 3)


def test_export_refuses_naming_every_float_part_and_writes_nothing(tmp_path):
    model = quantized()
    model(torch.randn(2, 4, 6))
    path = tmp_path / "model.onnx"
    with pytest.raises(linger.LingerUnsupportedError) as err:
        linger.onnx.export(model.eval(), torch.randn(1, 4, 6), path)
    message = str(err.value)
    assert "2 part(s) of the model are kept float" in message
    assert "Linear 'mid' is kept float" in message and "LSTM 'rnn' is kept float" in message
    assert "cannot run on the device" in message
    assert "Keep the whole model quantized" in message and "cut the model before" in message
    assert not list(tmp_path.iterdir())
    with pytest.raises(linger.LingerUnsupportedError, match="kept float"):
        linger.onnx.capture(model, torch.randn(1, 4, 6))


def test_the_check_lists_float_parts_apart_from_the_problems():
    report = linger.check(Middle(), torch.randn(2, 4, 6), CONFIG)
    assert report.ok
    assert [p.split(" (")[0] for p in report.float_parts] == ["Linear 'mid'", "LSTM 'rnn'"]
    assert "kept float (trains; cannot export)" in str(report)


def test_float_outputs_used_as_one_container_are_refused_with_their_place():
    class Whole(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 4, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            state = self.rnn(x)[1]  # (h, c) enters the quantized part as one tuple
            return self.fc(torch.cat(state, -1))

    report = linger.check(Whole(), torch.randn(2, 5, 4), {"disable_module": ["LSTM"]})
    (problem,) = report.problems
    assert problem.code == "state = self.rnn(x)[1]  # (h, c) enters the quantized part as one tuple"
    assert "take them apart in forward" in problem.fix
