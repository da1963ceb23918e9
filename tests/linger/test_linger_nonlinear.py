"""sigmoid, tanh, softmax, log_softmax, LayerNorm, matmul/bmm/@, MultiheadAttention, GLU, PReLU
and Embedding: init -> QAT -> eval -> export -> executor gives every tensor identical on every
kernel family; training computes exactly the integers eval does; gradients flow; the packed
model.bin runs identically; what linger cannot do is refused by name."""

import collections
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from nonlinear_models import (
    Activations,
    AllOps,
    Attention,
    assert_identical,
    float_input,
    flow,
    token_input,
)

import linger
import thinker
from thinker.packer import Packer, PackOptions
from thinker.runtime import DumpHook

PLATFORMS = ["venus", "arcs", "mars", "venusA"]


def config_for(platform: str | None, **extra) -> dict:
    config = dict(extra)
    if platform is not None:
        config["platform"] = platform
        # the pre-flight check does not know yet that tpacker rewrites GluInt for venus
        config["conventional_check"] = "warn"
    return config


def ops_of(path) -> collections.Counter:
    return collections.Counter((n.domain, n.op_type) for n in onnx.load(path).graph.node)


def attrs_of(path, op_type: str) -> list[dict]:
    return [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            for n in onnx.load(path).graph.node if n.op_type == op_type]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_activations_are_bit_exact_on_every_kernel_family(platform, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = flow(Activations(), float_input(6), config_for(platform), str(tmp_path))
    assert_identical(result)
    ops = ops_of(tmp_path / "model.onnx")
    for op, count in [("iqSigmoid", 4), ("iqTanh", 4), ("SoftmaxInt", 4), ("LogSoftmaxInt", 3),
                      ("GluInt", 3), ("PRelu", 2), ("LayerNormInt", 3)]:
        assert ops[("thinker", op)] == count, op
    for op in ("iqSigmoid", "iqTanh", "SoftmaxInt", "LogSoftmaxInt", "GluInt", "LayerNormInt"):
        assert {a["platform"] for a in attrs_of(tmp_path / "model.onnx", op)} == \
            {platform.encode()}
    # fixed output exponents: sigmoid, tanh and softmax at bits - 1
    for op in ("iqSigmoid", "iqTanh", "SoftmaxInt"):
        assert {a["scale_o"] for a in attrs_of(tmp_path / "model.onnx", op)} == {128.0}
    assert sorted(a["axis"] for a in attrs_of(tmp_path / "model.onnx", "SoftmaxInt")) == \
        [1, 1, 1, 2]
    assert sorted(a["dim"] for a in attrs_of(tmp_path / "model.onnx", "GluInt")) == [1, 1, 2]


@pytest.mark.parametrize("config", [{}, {"activate_bits": 16, "qat_method": "TQT"},
                                    {"weight_bits": 4, "platform": "cortex-m"}],
                         ids=["default", "a16-tqt", "w4-cortex-m"])
def test_activations_under_other_configs(config, tmp_path):
    result = flow(Activations(), float_input(6), config, str(tmp_path))
    assert_identical(result)
    platforms = {a["platform"] for a in attrs_of(tmp_path / "model.onnx", "iqSigmoid")}
    assert platforms == {config.get("platform", "venus").encode()}  # venus when unset
    bits = config.get("activate_bits", 8)
    assert {a["scale_o"] for a in attrs_of(tmp_path / "model.onnx", "SoftmaxInt")} == \
        {2.0 ** (bits - 1)}


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_attention_embedding_and_matmul_are_bit_exact(batch_first, platform, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = flow(Attention(batch_first), token_input(20), config_for(platform),
                      str(tmp_path), export_batch=1 if batch_first else None)
    assert_identical(result)
    path = tmp_path / "model.onnx"
    ops = ops_of(path)
    assert ops[("thinker", "LinearInt")] == 5  # q, k, v, out projections + fc
    assert ops[("thinker", "BmmInt")] == 2 + 4  # attention's two + @, bmm, matmul, .matmul
    assert ops[("thinker", "SoftmaxInt")] == 2
    assert ops[("thinker", "Gather")] == 1
    assert ("thinker", "Quant") not in ops  # the int64 token ids are not quantized
    graph = onnx.load(path).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    gather = attrs_of(path, "Gather")[0]
    assert gather["axis"] == 0 and gather["parameter_bits"] == 8
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    assert weights["embed.weight"].dtype == np.int8
    assert weights["attention.q_proj.weight"].shape == (8, 8)
    # the float parameters keep their names; the quantizers are added beside them
    keys = set(result.model.state_dict())
    assert {"attention.in_proj_weight", "attention.out_proj.weight", "embed.weight"} <= keys


def test_training_forward_is_the_integer_result(tmp_path):
    """On the same weights and exponents, the training forward (QAT) gives exactly the eval
    (executor) integers: sigmoid, softmax and LayerNorm run the integer kernel in training."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 12)
            self.norm = nn.LayerNorm(12)

        def forward(self, x):
            y = self.fc(x)
            return torch.cat([torch.sigmoid(y), y.softmax(-1), self.norm(y)], dim=1)

    x = torch.randn(32, 6)
    for config in ({}, {"qat_method": "TQT", "platform": "arcs"}, {"activate_bits": 16}):
        model = linger.init(Net(), config)
        model.train()
        trained = model(x)
        model.eval()
        with torch.no_grad():
            evaluated = model(x)
        assert torch.equal(trained.detach(), evaluated), config
        assert trained.requires_grad


def test_gradients_reach_every_parameter():
    def nonzero_grads(model, x):
        model.train()
        out = model(x)
        out.square().mean().backward()
        return {n: float(p.grad.abs().sum()) if p.grad is not None else 0.0
                for n, p in model.named_parameters()}

    grads = nonzero_grads(linger.init(Activations(), {"qat_method": "TQT"}), torch.randn(16, 6))
    grads.update(nonzero_grads(linger.init(Attention()), torch.randint(0, 20, (16, 6))))
    assert all(g > 0 for g in grads.values()), {n: g for n, g in grads.items() if not g > 0}
    assert "fc.weight" in grads and "attention.in_proj_weight" in grads


def test_packed_model_bin_runs_every_op_identically(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = flow(AllOps(), token_input(16), config_for("venus"), str(tmp_path))
    assert_identical(result)
    path = tmp_path / "model.onnx"
    expected = {"Gather", "LinearInt", "BmmInt", "SoftmaxInt", "LayerNormInt", "iqSigmoid",
                "iqTanh", "LogSoftmaxInt", "GluInt", "PRelu"}
    assert expected <= {op for _, op in ops_of(path)}
    tokens = result.inputs[:4]
    reference = DumpHook(keep=True)
    thinker.load(str(path)).run({"input": tokens}, hooks=[reference])
    for platform in ("venus", "cortex-m"):  # venus: GluInt decomposed, sigmoid input widened
        folder = tmp_path / platform
        options = PackOptions(graph_path=str(path), output_path=str(folder / "m.bin"),
                              workspace=str(folder / "workspace"), platform=platform)
        folder.mkdir()
        (folder / "m.bin").write_bytes(Packer(options).run().model_bin)
        packed = thinker.load(str(folder / "m.bin"))
        assert packed.inputs[0].dtype == np.int64
        dump = DumpHook(keep=True)
        out = packed.run({"input": tokens}, hooks=[dump])
        common = set(dump.values) & set(reference.values)
        assert len(common) > 20
        for name in common:
            assert np.array_equal(dump.values[name], reference.values[name]), name
        (name,) = out
        assert np.array_equal(out[name], reference.values[name])


# ---------------------------------------------------------------------------------------------
# what is refused, by name


def test_attention_masks_and_extras_are_refused_with_the_module():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(4, 1, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, attn_mask=torch.zeros(3, 3))[0]

    model = linger.init(Masked())
    with pytest.raises(linger.LingerUnsupportedError, match=r"'attention'.*attn_mask"):
        model(torch.randn(2, 3, 4))

    class Extra(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(4, 1, add_bias_kv=True)

        def forward(self, x):
            return self.attention(x, x, x)[0]

    with pytest.raises(linger.LingerUnsupportedError, match=r"add_bias_kv"):
        linger.init(Extra())


def test_matmul_needs_two_activations_of_matching_batch_axes():
    class Broadcast(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            y = self.fc(x)                       # [N, 3, 4]
            return y @ y[0].transpose(0, 1)      # [N, 3, 4] @ [4, 3]: broadcast

    model = linger.init(Broadcast())
    with pytest.raises(linger.LingerUnsupportedError, match=r"matmul at 'matmul'.*broadcast"):
        model(torch.randn(2, 3, 4))

    class WithParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return self.fc(x) @ self.w

    model = linger.init(WithParameter())
    with pytest.raises(linger.LingerUnsupportedError, match=r"not quantized"):
        model(torch.randn(2, 4))


def test_embedding_needs_integer_model_inputs(tmp_path):
    class Shifted(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(8, 4)

        def forward(self, tokens):
            return self.embed(tokens[:, 1:])

    model = linger.init(Shifted())
    model(torch.randint(0, 8, (2, 5)))  # trains
    model.eval()
    with pytest.raises(linger.LingerUnsupportedError, match=r"Embedding 'embed'.*model input"):
        linger.onnx.export(model, torch.randint(0, 8, (1, 5)), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
    with pytest.raises(linger.LingerUnsupportedError, match=r"integer indices"):
        linger.init(nn.Sequential(nn.Linear(4, 4), nn.Embedding(8, 4)))(torch.randn(2, 4))


def test_a_call_outside_the_traced_forward_is_explained():
    x = linger.QTensor.wrap(torch.zeros(2), 4, 8, exact=False)
    with pytest.raises(linger.LingerUnsupportedError, match=r"was not traced by linger\.init"):
        torch.sigmoid(x)
