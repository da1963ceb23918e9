"""The model zoo: names, factory, and the MLPerf Tiny layer shapes read from the reference
TFLite files."""

import os

import pytest
import tflite_layers
import torch
import torch.nn as nn

from linger import zoo
from shared_data import SHARED_DATA

MLPERF = os.path.join(SHARED_DATA, "mlperf-tiny")


def test_every_name_builds_a_plain_torch_model_that_runs_its_input_shape():
    assert set(zoo.NAMES) == {"lenet5", "resnet8", "ds_cnn", "mobilenet_v1_025",
                              "fc_autoencoder", "tiny_unet", "mobilenet_v2_se", "conv_denoiser",
                              "transformer_encoder", "conformer_block", "crnn_kws", "lstm_vad",
                              "gru_denoiser"}
    for name in zoo.NAMES:
        model = zoo.build(name).eval()
        assert all(type(m).__module__.startswith(("torch.nn", "linger.zoo"))
                   for m in model.modules())
        with torch.no_grad():
            out = model(zoo.example_input(name, 2))
        assert out.shape[0] == 2


def test_the_factory_takes_options_and_names_the_choices_on_a_typo():
    assert zoo.input_shape("mobilenet_v1_025", input_size=48) == (3, 48, 48)
    assert zoo.build("lenet5", num_classes=3).classifier[-1].out_features == 3
    with pytest.raises(KeyError, match="resnet8"):
        zoo.build("resnet9")


def torch_layers(model: nn.Module, shape) -> list:
    seen = []

    def record(module, inputs, output):
        kind = "dense" if isinstance(module, nn.Linear) else (
            "depthwise" if module.groups > 1 else "conv")
        seen.append((kind, tuple(module.weight.shape), tuple(output.shape)))

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(record)
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return seen


@pytest.mark.parametrize("name", [n for n in zoo.NAMES if zoo.ZOO[n].reference])
def test_mlperf_models_match_the_reference_tflite_layer_for_layer(name):
    pytest.importorskip("tflite")
    path = os.path.join(MLPERF, zoo.ZOO[name].reference)
    if not os.path.exists(path):
        pytest.skip(f"shared data not found: {path}")
    reference = tflite_layers.weighted_layers(path)
    assert torch_layers(zoo.build(name), zoo.input_shape(name)) == reference
