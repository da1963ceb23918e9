"""linger.check: one pre-flight report of everything the platform cannot quantize, each with
the line of the user's code, the rule and the fix; linger.init raises it as one error."""

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

import linger
from linger import qtensor, zoo

SOURCE = Path(__file__).read_text().splitlines()


def line_of(tag: str) -> int:
    """The line of this file marked ``# line: tag``."""
    return next(i for i, text in enumerate(SOURCE, 1) if text.endswith(f"# line: {tag}"))


def at(tag: str) -> str:
    return f"test_linger_check.py:{line_of(tag)}"


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        z = torch.exp(y)  # line: exp
        return z + y.max(1, keepdim=True)[0]  # line: max


class Troubled(nn.Module):
    """An RNN (nn.RNN: no integer kernel), torch.exp, x.max(dim), a 7x4 conv with stride 4
    (venus: kernels 1..5, and tpacker cannot split 7 taps into blocks of at least the stride)
    and an adaptive pool whose sizes only fail on data."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, (7, 4), stride=(4, 1))
        self.pool = nn.AdaptiveAvgPool2d((1, 3))
        self.rnn = nn.RNN(8, 8, batch_first=True)
        self.head = Head()

    def forward(self, x):
        y = F.relu(self.conv1(x))  # line: conv1
        y = self.pool(y).flatten(2)  # line: pool
        y, _ = self.rnn(y.transpose(1, 2))  # line: rnn
        return self.head(y)


EXAMPLE = torch.randn(2, 1, 20, 13)  # conv1: 4x10, and 10 columns do not pool to 3


def expected():
    """(kind, what, location) of every problem of Troubled on venus, in forward order."""
    return [
        ("device", "Conv2d 'conv1'", at("conv1")),
        ("run", "AdaptiveAvgPool2d 'pool'", at("pool")),
        ("module", "RNN 'rnn'", at("rnn")),
        ("call", "`torch.exp(x)` in 'head'", at("exp")),
        ("call", "`x.max(1, keepdim=True)` in 'head'", at("max")),
    ]


def test_one_report_lists_every_problem_with_its_line_rule_and_fix():
    report = linger.check(Troubled(), EXAMPLE, "venus")
    assert not report.ok
    found = [(p.kind, p.what, p.location.replace("\\", "/").rsplit("/", 1)[-1])
             for p in report.problems]
    assert found == expected()
    for p in report.problems:
        assert p.rule and p.fix and p.file == __file__ and p.line == int(p.location.split(":")[-1])
    by_what = {p.what: p for p in report.problems}
    conv = by_what["Conv2d 'conv1'"]
    assert "kernel_size 7x4 breaks the venus rule kernel_size in 1..5" in conv.rule
    assert "smaller kernel" in conv.fix
    assert "nn.GRU or nn.LSTM" in by_what["RNN 'rnn'"].fix
    assert "softmax" in by_what["`torch.exp(x)` in 'head'"].fix
    assert "max_pool" in by_what["`x.max(1, keepdim=True)` in 'head'"].fix
    assert "sizes must divide" in by_what["AdaptiveAvgPool2d 'pool'"].rule
    assert by_what["`torch.exp(x)` in 'head'"].code == "z = torch.exp(y)  # line: exp"
    text = str(report)
    assert text.startswith("linger.check (platform venus; example input 2x1x20x13): 5 problems")
    for i, (_, what, location) in enumerate(expected(), 1):
        assert f"  {i}. " in text and location in text and what in text


def test_without_an_example_input_the_static_problems_are_reported():
    report = linger.check(Troubled(), None, {"platform": "venus"})
    assert [(k, w) for k, w, _ in expected() if k != "run"] == \
        [(p.kind, p.what) for p in report.problems]
    assert "no example input" in str(report)


def test_without_a_platform_there_are_no_device_rules():
    report = linger.check(Troubled(), EXAMPLE)
    assert [p.kind for p in report.problems] == ["run", "module", "call", "call"]


@pytest.mark.parametrize("name", ["lenet5", "fc_autoencoder", "tiny_unet"])
def test_a_fully_supported_model_gives_an_empty_report(name):
    model = zoo.build(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = linger.check(model, torch.randn(2, *zoo.input_shape(name)), "venus")
    assert report.ok and report.problems == [] and not report.not_checked
    assert str(report).endswith("no problems")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_init_raises_one_error_listing_every_problem():
    with pytest.raises(linger.LingerCheckError) as err:
        linger.init(Troubled(), {"platform": "venus"}, example_input=EXAMPLE)
    assert isinstance(err.value, linger.LingerUnsupportedError)
    assert isinstance(err.value, linger.LingerDeviceError)
    message = str(err.value)
    assert message.startswith("linger.init (platform venus; example input 2x1x20x13): "
                              "5 problems")
    for i, (_, what, location) in enumerate(expected(), 1):
        assert f"{location}  {what}" in message.replace("\\", "/").split(f"  {i}. ")[1]
    assert "conventional_check: warn" in message


def test_init_without_example_input_raises_the_static_problems_at_once():
    with pytest.raises(linger.LingerCheckError, match="4 problems") as err:
        linger.init(Troubled(), {"platform": "venus"})
    assert "AdaptiveAvgPool2d" not in str(err.value)


def test_warn_mode_warns_about_device_rules_and_raises_the_rest():
    with warnings.catch_warnings(record=True) as caught, \
            pytest.raises(linger.LingerUnsupportedError) as err:
        warnings.simplefilter("always")
        linger.init(Troubled(), {"platform": "venus", "conventional_check": "warn"},
                    example_input=EXAMPLE)
    assert not isinstance(err.value, linger.LingerDeviceError)
    assert "4 problems" in str(err.value) and "conv1" not in str(err.value)
    assert any("Conv2d 'conv1': kernel_size 7x4" in str(w.message) for w in caught)


class Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(4)

    def forward(self, x):
        return self.pool(self.conv(x))  # line: pooled


def test_a_problem_that_only_data_shows_is_found_by_init_with_an_example_input():
    x = torch.randn(2, 1, 8, 8)  # conv: 6x6, which does not pool to 4x4
    model = linger.init(Pooled())  # static check only: passes
    with pytest.raises(linger.LingerUnsupportedError, match="sizes must divide"):
        model(x)  # ... and the first training step would fail
    with pytest.raises(linger.LingerUnsupportedError) as err:
        linger.init(Pooled(), example_input=x)
    assert f"{at('pooled')}  AdaptiveAvgPool2d 'pool'" in str(err.value).replace("\\", "/")
    assert "1 failure on the example input" in str(err.value)
    model = linger.init(Pooled(), example_input=torch.randn(2, 1, 10, 10))  # 8x8: fine
    for q in model.modules():
        if isinstance(q, linger.ActivationQuantizer):
            assert int(q.observed) == 0  # the check ran on a copy: training starts fresh


def test_what_is_supported_is_read_from_the_registries_when_the_check_runs(monkeypatch):
    monkeypatch.setitem(qtensor.HANDLERS, torch.exp, lambda x: x)
    monkeypatch.setitem(qtensor.HANDLERS, torch.Tensor.max, lambda x, *a, **k: (x, x))
    report = linger.check(Troubled(), None, "venus")
    assert [p.what for p in report.problems] == ["Conv2d 'conv1'", "RNN 'rnn'"]


def test_a_forward_torch_fx_cannot_trace_is_one_problem_with_its_line():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x  # line: branch

    report = linger.check(Branchy(), torch.randn(1, 1, 4, 4))
    (problem,) = report.problems
    assert problem.kind == "trace" and problem.location.endswith(at("branch"))
    assert "torch.fx" in problem.rule and "control flow" in problem.fix
    with pytest.raises(linger.LingerUnsupportedError, match=r"torch\.fx"):
        linger.init(Branchy())


def test_what_fails_only_when_exporting_is_found_by_rehearsing_the_export():
    class Extra(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.conv(x), torch.zeros(2)  # line: extra

    model = linger.init(Extra(), example_input=None)
    model(torch.randn(1, 1, 6, 6))  # trains: the constant output is just returned
    report = linger.check(Extra(), torch.randn(1, 1, 6, 6))
    (problem,) = report.problems
    assert problem.kind == "run" and problem.location == "model output"
    assert problem.rule.startswith("export fails: a model output is a float tensor")


def test_arithmetic_with_a_tensor_that_is_not_quantized_is_found_on_the_example():
    class Offset(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) + torch.ones(4)  # line: offset

    report = linger.check(Offset(), torch.randn(2, 4))
    (problem,) = report.problems
    assert problem.kind == "run" and problem.location.endswith(at("offset"))
    assert "not quantized" in problem.rule
