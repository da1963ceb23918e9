"""Small GRU / LSTM models and the flow that takes one through init -> QAT -> eval -> export ->
numpy on the ONNX graph -> tpacker -> numpy on model.bin, keeping every tensor of each stage."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

import linger
import thinker
from thinker.packer import Packer, PackOptions
from thinker.runtime import DumpHook


class Recurrent(nn.Module):
    """x -> GRU/LSTM (optionally from initial states given as model inputs) -> dense; returns
    the dense output, the layer's output sequence and its final states."""

    def __init__(self, kind: str, layers: int = 1, bidirectional: bool = False,
                 batch_first: bool = True, features: int = 6, hidden: int = 8,
                 bias: bool = True):
        super().__init__()
        self.lstm = kind == "lstm"
        cls = nn.LSTM if self.lstm else nn.GRU
        self.rnn = cls(features, hidden, num_layers=layers, bidirectional=bidirectional,
                       batch_first=batch_first, bias=bias)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), 3)

    def forward(self, x, h0=None, c0=None):
        if self.lstm:
            y, (h, c) = self.rnn(x, None if h0 is None else (h0, c0))
            return self.fc(y), y, h, c
        y, h = self.rnn(x, h0)
        return self.fc(y), y, h


class Cells(nn.Module):
    """Two steps of a GRUCell / LSTMCell: the first from the given state (a model input) or
    from zeros, the second from the first's state."""

    def __init__(self, kind: str, features: int = 6, hidden: int = 8):
        super().__init__()
        self.lstm = kind == "lstm"
        self.cell = nn.LSTMCell(features, hidden) if self.lstm else nn.GRUCell(features, hidden)
        self.fc = nn.Linear(hidden, 3)

    def forward(self, x, h0=None, c0=None):
        first, second = x[:, 0], x[:, 1]
        if self.lstm:
            h, c = self.cell(first, None if h0 is None else (h0, c0))
            h, c = self.cell(second, (h, c))
            return self.fc(h), h, c
        h = self.cell(first, h0)
        h = self.cell(second, h)
        return self.fc(h), h


def train(model: nn.Module, args: tuple, steps: int, lr: float = 0.01) -> None:
    """A few SGD steps of every output towards a fixed random target."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    targets = None
    for _ in range(steps):
        outs = model(*args)
        if targets is None:
            g = torch.Generator().manual_seed(1)
            targets = [torch.randn(o.shape, generator=g) for o in outs]
        loss = sum((o - t).square().mean() for o, t in zip(outs, targets, strict=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@dataclass
class Flow:
    model: nn.Module
    args: tuple             # the comparison inputs (batch 3)
    names: list[str]
    linger_values: dict     # every tensor linger's eval forward computed
    linger_outputs: tuple
    onnx_values: dict       # every tensor numpy computed on the ONNX graph
    onnx_outputs: dict
    packed_values: dict     # every tensor numpy computed on model.bin
    packed_outputs: dict
    onnx_path: str
    bin_path: str
    packed_feeds: dict      # the integer inputs of model.bin


def make_args(sizes: dict, batch: int, batch_axis: int, seed: int, with_state: bool,
              lstm: bool) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x_shape = list(sizes["x"])
    x_shape.insert(batch_axis, batch)
    args = [torch.randn(*x_shape, generator=g)]
    if with_state:
        state = list(sizes["state"])
        state.insert(1 if len(state) == 2 else 0, batch)
        args.append(0.5 * torch.randn(*state, generator=g))
        if lstm:
            args.append(torch.randn(*state, generator=g))
    return tuple(args)


def run_flow(model: nn.Module, sizes: dict, config: dict, folder: str, with_state: bool,
             batch_axis: int = 0, batch: int = 3) -> Flow:
    """``sizes``: x without the batch, and the state's shape without the batch ([L*D, H] for
    layers: the batch goes on axis 1; [H] for cells: axis 0)."""
    lstm = model.lstm
    torch.manual_seed(0)
    quantized = linger.init(model, config)
    train(quantized, make_args(sizes, 8, batch_axis, 1, with_state, lstm), 2)
    quantized.eval()
    args = make_args(sizes, batch, batch_axis, 7, with_state, lstm)
    names = ["x", "h0", "c0"][:len(args)]
    one = tuple(a.narrow(batch_axis if i == 0 else (1 if a.dim() == 3 else 0), 0, 1)
                for i, a in enumerate(args))
    onnx_path = os.path.join(folder, "model.onnx")
    linger.onnx.export(quantized, one, onnx_path, input_names=names)
    values = linger.onnx.capture(quantized, args, input_names=names)
    with torch.no_grad():
        outputs = quantized(*args)
    dump = DumpHook(keep=True)
    executed = thinker.load(onnx_path).run({n: a.numpy() for n, a in zip(names, args,
                                                                         strict=True)},
                                           hooks=[dump])
    platform = config.get("platform", "venus")
    bin_path = os.path.join(folder, "model.bin")
    result = Packer(PackOptions(graph_path=onnx_path, platform=platform,
                                workspace=os.path.join(folder, "ws"))).run()
    with open(bin_path, "wb") as f:
        f.write(result.model_bin)
    packed = thinker.load(bin_path)
    # tpacker removed the input Quants: feed the integers linger quantized
    feeds = {s.name: values[s.name].astype(s.dtype) for s in packed.inputs}
    packed_dump = DumpHook(keep=True)
    packed_out = packed.run(feeds, hooks=[packed_dump])
    return Flow(quantized, args, names, values, outputs, dump.values, executed,
                packed_dump.values, packed_out, onnx_path, bin_path, feeds)


def assert_identical(flow: Flow) -> None:
    """linger eval == numpy on ONNX (every tensor, and the float outputs) == numpy on model.bin
    (every tensor both name)."""
    for name, expected in flow.linger_values.items():
        got = flow.onnx_values[name]
        assert np.issubdtype(got.dtype, np.integer), name
        assert got.shape == expected.shape, name
        assert np.array_equal(got.astype(np.int64), expected), f"tensor '{name}' differs"
    assert set(flow.linger_values) >= set(flow.onnx_values) - set(flow.names) - \
        {k for k in flow.onnx_outputs}
    for i, value in enumerate(flow.linger_outputs):
        key = "output" if i == 0 else f"output_{i}"
        assert np.array_equal(flow.onnx_outputs[key], value.numpy().astype(np.float32)), key
    common = [k for k in flow.packed_values if k in flow.onnx_values]
    assert len(common) >= len(flow.packed_values) // 2
    for key in common:
        assert np.array_equal(flow.packed_values[key], flow.onnx_values[key]), key
    assert sum(np.count_nonzero(v) for v in flow.linger_values.values()) > 0


def assert_c_identical(flow: Flow) -> None:
    """The C executor on model.bin: the CRC of every tensor and the outputs equal numpy's."""
    numpy_crc, c_crc = DumpHook(), DumpHook()
    expected = thinker.load(flow.bin_path).run(flow.packed_feeds, hooks=[numpy_crc])
    got = thinker.load(flow.bin_path, backend="c").run(flow.packed_feeds, hooks=[c_crc])
    assert c_crc.lines == numpy_crc.lines
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
