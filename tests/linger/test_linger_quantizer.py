"""MOM and TQT scale estimation, calibration, frozen exponents, checkpoints, and gradients
through a quantized model."""

import pytest
import torch
import torch.nn as nn

import linger
from linger import zoo
from linger.quantizer import ActivationQuantizer


def test_mom_tracks_an_exponential_moving_average_of_the_abs_max():
    q = ActivationQuantizer(8, "MOM", momentum=0.1)
    q.train()
    q(torch.tensor([0.5, -2.0]))               # first batch initialises the range
    assert q.running_range.item() == 2.0
    q(torch.tensor([1.0, -6.0]))
    assert q.running_range.item() == pytest.approx(0.9 * 2.0 + 0.1 * 6.0)
    assert int(q.exponent) == round(7 - torch.log2(torch.tensor(2.4)).item())


def test_exponents_are_powers_of_two_and_frozen_in_eval(tmp_path):
    model = linger.init(zoo.build("lenet5"))
    x = torch.randn(8, 1, 28, 28)
    model.train()
    model(x)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(10 * x)                            # very different data: nothing may move
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    attrs = [a for n in linger.onnx.export(model, x[:1], tmp_path / "m.onnx").graph.node
             for a in n.attribute if a.name.startswith("scale")]
    assert attrs and all(torch.log2(torch.tensor(a.f)).item().is_integer() for a in attrs)


def test_eval_before_any_data_names_the_quantizer_that_has_not_seen_any():
    model = linger.init(zoo.build("lenet5")).eval()
    with pytest.raises(linger.LingerStateError, match=r"x_quant.*has not seen any data"):
        model(torch.randn(1, 1, 28, 28))


@pytest.mark.parametrize("method", ["MOM", "TQT"])
def test_calibration_sets_every_quantizer_from_data_without_training(method):
    model = linger.init(zoo.build("lenet5"), {"qat_method": method}).eval()
    x = torch.randn(16, 1, 28, 28)
    weights = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("weight")}
    with linger.calibration(model):
        model(x)
        model(0.5 * x)
    quantizers = [m for m in model.modules() if isinstance(m, ActivationQuantizer)]
    assert quantizers and all(int(q.observed) for q in quantizers)
    assert all(torch.equal(weights[k], model.state_dict()[k]) for k in weights)
    if method == "TQT":  # threshold = largest |value| seen: the input's is max|x|
        threshold = model.x_quant.quantizer.log2_threshold.item()
        assert threshold == pytest.approx(torch.log2(x.abs().max()).item())
    with torch.no_grad():
        model(x)  # eval now works


def test_qat_gradients_reach_weights_folded_batchnorm_and_tqt_thresholds():
    model = linger.init(zoo.build("resnet8"), {"qat_method": "TQT"})
    model.train()
    out = model(torch.randn(4, 3, 32, 32))
    assert type(out) is torch.Tensor and out.requires_grad
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []
    names = dict(model.named_parameters())
    assert "bn.weight" in names and "stack1.add.output_quantizer.log2_threshold" in names


def test_a_float_checkpoint_loads_strictly_into_the_quantized_model():
    float_model = zoo.build("resnet8")
    quantized = linger.init(float_model)
    quantized.load_state_dict(float_model.state_dict(), strict=True)
    quantized.train()
    quantized(torch.randn(2, 3, 32, 32))
    # and a QAT checkpoint restores the quantizer state as well
    again = linger.init(zoo.build("resnet8"))
    again.load_state_dict(quantized.state_dict(), strict=True)
    assert int(again.stack1.add.output_quantizer.exponent) == \
        int(quantized.stack1.add.output_quantizer.exponent)
    with pytest.raises(RuntimeError, match="Missing key"):
        again.load_state_dict({k: v for k, v in float_model.state_dict().items()
                               if k != "conv.weight"}, strict=True)


def test_init_loads_a_checkpoint_with_strict_keys(tmp_path):
    float_model = zoo.build("lenet5")
    path = tmp_path / "float.pt"
    torch.save(float_model.state_dict(), path)
    quantized = linger.init(zoo.build("lenet5"), checkpoint=path)
    assert torch.equal(quantized.features[0].weight, float_model.features[0].weight)
    with pytest.raises(linger.LingerConfigError, match="unexpected keys extra"):
        linger.init(zoo.build("lenet5"), checkpoint={**float_model.state_dict(),
                                                     "extra": torch.zeros(1)})


def test_init_and_constrain_leave_the_given_model_unchanged():
    model = zoo.build("tiny_unet")
    constrained = linger.constrain(model)
    quantized = linger.init(constrained)
    assert type(model.stem[0]) is nn.Conv2d
    assert type(constrained.stem[0]).__name__ == "CConv2d"
    assert type(quantized.stem[0]).__name__ == "QConv2d"
    assert set(model.state_dict()) == set(constrained.state_dict())
    assert set(model.state_dict()) <= set(quantized.state_dict())


def test_a_quantized_model_survives_deepcopy_and_whole_model_pickling(tmp_path):
    import copy

    model = linger.init(zoo.build("resnet8"))
    model.train()
    model(torch.randn(4, 3, 32, 32))
    model.eval()
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        for other in (copy.deepcopy(model), torch.load(path, weights_only=False)):
            out = other(x)
            assert type(out) is torch.Tensor and torch.equal(out, expected)
