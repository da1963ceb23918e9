"""Every quantized op beyond the zoo (1-D convs, dilation, groups, standalone BatchNorm,
pooling variants, shape ops, -, *, clamp, concatenation with and without rescaling) under
8/4-bit weights, 16-bit activations and TQT: executor == linger eval, tensor by tensor."""

import collections

import numpy as np
import onnx
import pytest
from linger_flow import run_flow
from linger_models import ImageNet, SignalNet
from test_linger_zoo_bit_exact import assert_identical

CONFIGS = [
    {"weight_bits": 8},
    {"weight_bits": 4, "activate_bits": 16},
    {"qat_method": "TQT"},
    {"weight_bits": 4, "submodel_overrides": {"proj": {"weight_bits": 8},
                                              "stem": {"activate_bits": 16}}},
]


@pytest.mark.parametrize("config", CONFIGS, ids=["w8", "w4-a16", "tqt", "mixed"])
@pytest.mark.parametrize("model, shape", [(SignalNet, (4, 16)), (ImageNet, (3, 12, 12))],
                         ids=["signal", "image"])
def test_every_op_is_bit_exact(model, shape, config, tmp_path):
    assert_identical(run_flow(model(), shape, config, str(tmp_path)))


def ops_of(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(path).graph.node)


def test_the_coverage_models_reach_every_op(tmp_path):
    seen = collections.Counter()
    for i, (model, shape) in enumerate([(SignalNet, (4, 16)), (ImageNet, (3, 12, 12))]):
        folder = tmp_path / str(i)
        run_flow(model(), shape, {}, str(folder), n_inputs=2)
        seen += ops_of(folder / "model.onnx")
    expected = {"Quant", "Dequant", "Conv1dInt", "Conv2dInt", "ConvTranspose2dInt",
                "LinearInt", "BatchNorm2dInt", "AvgPool2dInt", "MaxPool", "Relu", "Clip",
                "iqAdd", "iqSub", "iqMul", "iqCat", "Concat", "Reshape", "Flatten",
                "Transpose", "Squeeze", "Unsqueeze", "Slice", "Split", "Pad"}
    assert expected <= set(seen)


def test_mixed_precision_parts_get_their_own_bits(tmp_path):
    config = {"weight_bits": 4, "submodel_overrides": {"proj": {"weight_bits": 8}}}
    run_flow(SignalNet(), (4, 16), config, str(tmp_path), n_inputs=2)
    bits = {n.name: {a.name: a.i for a in n.attribute if a.name == "parameter_bits"}
            for n in onnx.load(tmp_path / "model.onnx").graph.node}
    assert bits["proj"]["parameter_bits"] == 8
    assert bits["conv"]["parameter_bits"] == 4
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in
               onnx.load(tmp_path / "model.onnx").graph.initializer}
    assert weights["conv.weight"].dtype == np.int8
    assert weights["conv.weight"].min() >= -8 and weights["conv.weight"].max() <= 7
    assert weights["conv.bias"].dtype == np.int32
