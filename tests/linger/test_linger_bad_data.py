"""Bad data and mismatched files are refused with one clear message naming the layer or the
keys: NaN/inf during calibration or QAT, an example input of the wrong shape at export, a
checkpoint of another model."""

import pytest
import torch
import torch.nn as nn

import linger


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_during_calibration_names_the_quantizer(bad):
    model = linger.init(Net())
    x = torch.randn(2, 1, 8, 8)
    x[0, 0, 0, 0] = bad
    with pytest.raises(linger.LingerDataError) as info, linger.calibration(model):
        model(x)
    message = str(info.value)
    assert message.startswith("quantizer of 'x_quant': NaN or infinite values reached it "
                              "during calibration;")


def test_nan_during_training_names_the_layer_it_reached_first():
    model = linger.init(Net())
    model.train()
    with torch.no_grad():
        model.conv.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(linger.LingerDataError, match="quantizer of 'conv': NaN or infinite values "
                       "reached it during training"):
        model(torch.randn(2, 1, 8, 8))


def test_export_with_a_wrongly_shaped_example_names_the_layer_and_the_input(tmp_path):
    model = linger.init(Net())
    with linger.calibration(model):
        model(torch.randn(4, 1, 8, 8))
    with pytest.raises(linger.LingerDataError) as info:
        linger.onnx.export(model.eval(), torch.randn(1, 1, 6, 6), tmp_path / "m.onnx")
    message = str(info.value)
    assert message.startswith("export: layer 'fc' failed on the example input(s) 'input' "
                              "float32[1, 1, 6, 6]:")
    assert "\n" not in message and not (tmp_path / "m.onnx").exists()


def test_a_checkpoint_of_another_model_lists_missing_unexpected_and_mismatched_keys():
    other = {"conv.weight": torch.zeros(8, 1, 3, 3), "conv.bias": torch.zeros(8),
             "head.weight": torch.zeros(3, 3)}
    with pytest.raises(linger.LingerConfigError) as info:
        linger.init(Net(), checkpoint=other)
    message = str(info.value)
    assert "missing keys fc.weight, fc.bias" in message
    assert "unexpected keys head.weight" in message
    assert "conv.weight [8, 1, 3, 3] vs [4, 1, 3, 3]" in message
    assert linger.init(Net(), checkpoint=Net().state_dict()) is not None
