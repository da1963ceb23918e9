"""Stage 1: constrained float training."""

import torch
import torch.nn as nn

import linger
from linger import zoo


def test_weights_are_clamped_to_factor_times_mean_abs():
    model = nn.Sequential(nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 9.0], [1.0, -1.0, 1.0, -1.0]]))
        model[0].bias.zero_()
    constrained = linger.constrain(model, {"clamp_factor_value": 2, "clamp_activation_value": None})
    mean_abs = model[0].weight.abs().mean().item()        # 2.0: bound 4
    out = constrained(torch.tensor([[0.0, 0.0, 0.0, 1.0]]))
    assert out.tolist() == [[2 * mean_abs, -1.0]]


def test_activations_are_clamped_after_the_batchnorm_that_follows_a_layer():
    model = zoo.build("tiny_unet")
    constrained = linger.constrain(model, {"clamp_activation_value": 0.5})
    stem_conv, stem_bn = constrained.stem[0], constrained.stem[1]
    assert stem_conv.linger_output_clamp is None and stem_bn.linger_output_clamp == 0.5
    assert constrained.head.linger_output_clamp == 0.5     # no BatchNorm after the head
    out = constrained(torch.randn(2, 3, 16, 16) * 100)
    assert out.abs().max() <= 0.5


def test_constrained_models_train_and_keep_the_float_state_dict():
    model = zoo.build("resnet8")
    constrained = linger.constrain(model)
    assert list(constrained.state_dict()) == list(model.state_dict())
    constrained.load_state_dict(model.state_dict(), strict=True)
    optimizer = torch.optim.SGD(constrained.parameters(), lr=0.1)
    loss = constrained(torch.randn(4, 3, 32, 32)).square().mean()
    loss.backward()
    optimizer.step()
    assert all(p.grad is not None for p in constrained.parameters())


def test_disabled_parts_are_not_constrained():
    model = zoo.build("lenet5")
    constrained = linger.constrain(model, {"disable_submodel": ["classifier"]})
    assert type(constrained.features[0]).__name__ == "CConv2d"
    assert type(constrained.classifier[1]) is nn.Linear


def test_quantized_layers_keep_the_weight_clamp_of_a_constrained_model():
    constrained = linger.constrain(zoo.build("lenet5"), {"clamp_factor_value": 3})
    quantized = linger.init(constrained)
    layer = quantized.features[0]
    w, _ = layer.float_params()
    assert w.abs().max() <= 3 * layer.weight.abs().mean() + 1e-6
