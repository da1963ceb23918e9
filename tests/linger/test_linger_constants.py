"""Arithmetic with Python numbers (x * c, c * x, x / c, x + c, c - x, in-place forms) and
division between activations: bit-exact from linger's eval forward to the executor, training
forward == integer result, and hand-derived integers for the exact cases."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from linger_flow import run_flow, train_steps
from test_linger_zoo_bit_exact import assert_identical

import linger
import thinker
from linger.modules.arith import QAdd, QDiv, QMul, QSub
from thinker.runtime import DumpHook


class ScalarNet(nn.Module):
    """Every form of arithmetic with a Python number, plus a / b between activations."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.den = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        parts = [y * 0.25, 3 * y, torch.mul(y, -0.5), y.mul(0.3), y / 0.3, torch.div(y, 4),
                 y + 1.5, 2 - y, y - 0.7, 0.1 + y, torch.add(y, 1), torch.sub(y, 0.5)]
        z = self.den(x)
        parts += [y / z, torch.div(y, z), y.div(z), torch.true_divide(y, z), 1.0 / z]
        w = y.clone()
        w *= 0.5
        w += 1
        w /= 3
        w -= 0.25
        parts.append(w)
        parts.append(y * (x.size(1) / 2))  # a Python number computed from a shape
        return torch.cat(parts, 1)


CONFIGS = [{}, {"activate_bits": 16}, {"qat_method": "TQT"}]


@pytest.mark.parametrize("config", CONFIGS, ids=["w8", "a16", "tqt"])
def test_arithmetic_with_python_numbers_is_bit_exact(config, tmp_path):
    result = run_flow(ScalarNet(), (8,), config, str(tmp_path), n_inputs=32)
    assert_identical(result)
    ops = [n.op_type for n in onnx.load(tmp_path / "model.onnx").graph.node]
    assert ops.count("iqMul") == 9 and ops.count("iqDiv") == 5
    assert ops.count("iqAdd") == 4 and ops.count("iqSub") == 4


def test_shape_arithmetic_on_python_numbers_stays_python():
    class Shapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            y = self.fc(x).view(x.size(0), x.shape[1] // 2, -1)
            n = y.shape[-1] * 2 - 1 + 1   # mul / sub / add of Python numbers
            half = y.size(1) / 2          # truediv of Python numbers
            return y.reshape(y.size(0), n * 2) * half  # only this one is tensor arithmetic

    model = linger.init(Shapes())
    arithmetic = [m for m in model.modules() if isinstance(m, (QAdd, QSub, QMul, QDiv))]
    assert [m.linger_path for m in arithmetic] == ["mul_2"]
    model.train()
    assert model(torch.randn(4, 8)).shape == (4, 8)


def _freeze(model: nn.Module, exponents: dict[str, int]) -> None:
    """Set quantizer exponents by hand (module path -> exponent), as training would."""
    for path, q in exponents.items():
        module = model.get_submodule(path)
        quantizer = getattr(module, "output_quantizer", None) or module.quantizer
        quantizer.observed.fill_(1)
        quantizer.exponent.fill_(q)


def _export_and_run(model, inputs: dict[str, torch.Tensor], folder):
    args = tuple(inputs.values())
    path = folder / "model.onnx"
    linger.onnx.export(model.eval(), args, path, input_names=list(inputs))
    captured = linger.onnx.capture(model, args, input_names=list(inputs))
    dump = DumpHook(keep=True)
    thinker.load(str(path)).run({k: v.numpy() for k, v in inputs.items()}, hooks=[dump])
    for name, ints in captured.items():
        assert np.array_equal(dump.values[name].astype(np.int64), ints), name
    nodes = {n.name: n for n in onnx.load(path).graph.node}
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    return captured, nodes, consts


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Times(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x * self.c


def test_power_of_two_multiplier_keeps_the_integers_and_moves_the_exponent(tmp_path):
    ints = torch.tensor([[-128, -3, 0, 1, 77, 127]], dtype=torch.float32)
    model = linger.init(Times(0.25))
    _freeze(model, {"x_quant": 4})
    captured, nodes, consts = _export_and_run(model, {"x": ints / 16}, tmp_path)
    assert np.array_equal(captured["mul"], ints.numpy().astype(np.int64))  # unchanged
    attrs = _attrs(nodes["mul"])
    assert (attrs["scale_x"], attrs["scale_y"], attrs["scale_o"]) == (16.0, 4.0, 64.0)
    assert consts[nodes["mul"].input[1]] == 1 and consts[nodes["mul"].input[1]].dtype == np.int8
    with torch.no_grad():
        assert torch.equal(model(ints / 16), ints / 64)  # exact: 0.25 x

    negated = linger.init(Times(-2.0))
    _freeze(negated, {"x_quant": 4})
    captured, nodes, _ = _export_and_run(negated, {"x": ints / 16}, tmp_path / "neg")
    # int -1 at exponent -1: output exponent 4 - 1 = 3, -(-128) saturates to 127
    assert captured["mul"].tolist() == [[127, 3, 0, -1, -77, -127]]
    assert _attrs(nodes["mul"])["scale_o"] == 8.0


def test_other_multipliers_are_16_bit_constants_with_a_learned_output(tmp_path):
    ints = torch.tensor([[-100, -1, 0, 5, 100, 127]], dtype=torch.float32)
    model = linger.init(Times(0.3))
    _freeze(model, {"x_quant": 4, "mul": 4})
    captured, nodes, consts = _export_and_run(model, {"x": ints / 16}, tmp_path)
    # 0.3 at its finest 16-bit exponent: 0.3 * 2**16 = 19660.8 -> 19661 (scale_y 2**16);
    # out = rshift_round(x * 19661, 4 + 16 - 4): -100 -> -29.9997 -> -30, 5 -> 1.50002 -> 2,
    # 127 -> 38.100 -> 38
    const = consts[nodes["mul"].input[1]]
    assert const == 19661 and const.dtype == np.int16
    assert _attrs(nodes["mul"])["scale_y"] == 2.0 ** 16
    assert captured["mul"].tolist() == [[-30, 0, 0, 2, 30, 38]]


def test_constant_addends_are_quantized_at_the_output_exponent(tmp_path):
    class Shift(nn.Module):
        def forward(self, x):
            return 1.3 - x

    ints = torch.tensor([[-128, -3, 0, 1, 77, 127]], dtype=torch.float32)
    model = linger.init(Shift())
    _freeze(model, {"x_quant": 4, "sub": 3})
    captured, nodes, consts = _export_and_run(model, {"x": ints / 16}, tmp_path)
    # 1.3 at exponent 3: floor(10.4 + 0.5) = 10; x to exponent 3: rshift_round(x, 1)
    # = -64, -1, 0, 1, 39, 64; then 10 - that, saturated: 74 -> 74, 10 - 64 = -54
    assert consts[nodes["sub"].input[0]] == 10
    assert captured["sub"].tolist() == [[74, 11, 10, 9, -29, -54]]
    assert _attrs(nodes["sub"])["scale_x"] == 8.0  # the constant comes first: c - x


def test_division_rounds_the_exact_quotient_half_up(tmp_path):
    class Ratio(nn.Module):
        def forward(self, a, b):
            return a / b

    a = torch.tensor([[3, -3, 7, 5, -5, 0]], dtype=torch.float32)
    b = torch.tensor([[2, 2, 0, 0, 0, 0]], dtype=torch.float32)
    model = linger.init(Ratio())
    _freeze(model, {"a_quant": 0, "b_quant": 0, "truediv": 0})
    captured, nodes, _ = _export_and_run(model, {"a": a, "b": b}, tmp_path)
    # 1.5 -> 2, -1.5 -> -1 (half up); x / 0 saturates toward the sign of x, 0 / 0 = 0
    assert captured["truediv"].tolist() == [[2, -1, 127, 127, -128, 0]]
    assert nodes["truediv"].op_type == "iqDiv" and nodes["truediv"].domain == "thinker"


def test_training_forward_equals_the_integer_result_and_gradients_flow():
    torch.manual_seed(0)
    model = linger.init(ScalarNet(), {"qat_method": "TQT"})
    x = torch.randn(16, 8)
    train_steps(model, x, 2)
    model.train()
    xg = x.clone().requires_grad_(True)
    trained = model(xg)
    trained.square().sum().backward()
    assert xg.grad.abs().sum() > 0
    assert model.fc.weight.grad.abs().sum() > 0 and model.den.weight.grad.abs().sum() > 0
    thresholds = [m.output_quantizer.log2_threshold.grad for m in model.modules()
                  if isinstance(m, QDiv) and m.output_quantizer.log2_threshold.grad is not None]
    assert thresholds and any(float(g) != 0 for g in thresholds)
    model.eval()
    with torch.no_grad():
        assert torch.equal(trained.detach(), model(x))


def test_unsupported_division_forms_are_refused_with_their_place():
    class Floor(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            y = self.fc(x)
            return torch.div(y, y, rounding_mode="floor")

    class ByZero(Floor):
        def forward(self, x):
            return self.fc(x) / 0

    with pytest.raises(linger.LingerUnsupportedError, match=r"iqDiv 'div'.*rounding_mode"):
        linger.init(Floor())(torch.randn(2, 4))
    with pytest.raises(linger.LingerUnsupportedError, match=r"'truediv'.*constant 0"):
        linger.init(ByZero())(torch.randn(2, 4))
