"""The whole linger flow on one model, as a user runs it: constrain, a few float steps, init,
a few QAT steps, eval, export, then the executor on the exported file."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

import linger
import thinker
from linger import zoo
from thinker.runtime import DumpHook


def train_steps(model: nn.Module, x: torch.Tensor, steps: int, lr: float = 0.01) -> None:
    """A few SGD steps towards a fixed random target (enough to move weights and ranges)."""
    model.train()
    target = None
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        out = model(x)
        if target is None:
            target = torch.randn_like(out, generator=torch.Generator().manual_seed(1))
        loss = (out - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@dataclass
class Result:
    model: nn.Module            # quantized, eval mode
    inputs: np.ndarray          # the comparison inputs
    linger_values: dict         # every tensor linger computed, by ONNX name
    linger_output: np.ndarray   # the eval forward's float output
    executor_values: dict       # every tensor the executor computed
    executor_output: np.ndarray


def run_flow(model: nn.Module, input_shape: tuple[int, ...], config: dict, folder: str,
             n_inputs: int = 64, seed: int = 0, make_input=None) -> Result:
    """``make_input(batch, seed)``: the model's inputs (default: normal floats)."""
    if make_input is None:
        def make_input(batch, s):
            return torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(s))
    torch.manual_seed(seed)
    train_x = make_input(16, seed + 3)
    constrained = linger.constrain(model, config)
    train_steps(constrained, train_x, 2)
    quantized = linger.init(constrained, config)
    train_steps(quantized, train_x, 3)
    quantized.eval()
    path = os.path.join(folder, "model.onnx")
    linger.onnx.export(quantized, train_x[:1], path)
    x = make_input(n_inputs, seed + 7)
    values = linger.onnx.capture(quantized, x)
    with torch.no_grad():
        output = quantized(x).numpy()
    executor = thinker.load(path)
    dump = DumpHook(keep=True)
    executed = executor.run({"input": x.numpy()}, hooks=[dump])
    return Result(quantized, x.numpy(), values, output, dump.values, executed["output"])


def run_zoo_flow(name: str, weight_bits: int, folder: str, platform: str | None = None,
                 **kw) -> Result:
    config = {"weight_bits": weight_bits, "platform": platform}
    return run_flow(zoo.build(name, **kw), zoo.input_shape(name, **kw), config, folder,
                    make_input=lambda batch, seed: zoo.example_input(name, batch, seed, **kw))


def assert_identical(result: Result) -> None:
    """Every tensor the executor computed equals linger's, integer for integer."""
    linger, executor = result.linger_values, result.executor_values
    intermediates = set(executor) - {"input", "output"}
    assert intermediates == set(linger), "every executor tensor must have a linger twin"
    for name, expected in linger.items():
        got = executor[name]
        assert np.issubdtype(got.dtype, np.integer), name
        assert got.shape == expected.shape, name
        assert np.array_equal(got.astype(np.int64), expected), f"tensor '{name}' differs"
    assert np.array_equal(result.executor_output, result.linger_output)
