"""Streaming (tpacker --isstream): for any split of a sequence into chunks, the concatenated
chunk outputs of the converted model equal the whole-sequence output of the unconverted model,
bit for bit — conv-only, GRU, LSTM and the CRNN keyword spotter; non-causal models are refused
naming the op."""

import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "linger"))
pytest.importorskip("torch")

import linger_flow
import torch
import torch.nn as nn

import linger
import thinker
from linger import zoo
from thinker.graph import load_onnx
from thinker.passes.stream import StreamError, streamify
from thinker.runtime.stream import Stream

T = 24


class CausalConvs(nn.Module):
    """Causal dilated Conv1d stack over [N, C, T] (time last: split_w)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, dilation=2)
        self.c2 = nn.Conv1d(8, 8, 2)
        self.head = nn.Conv1d(8, 3, 1)

    def forward(self, x):
        y = torch.relu(self.c1(nn.functional.pad(x, (4, 0))))
        y = torch.relu(self.c2(nn.functional.pad(y, (1, 0))))
        return self.head(y)


class Recurrent(nn.Module):
    """[N, T, F] (time on H: split_h) through a GRU or a 2-layer LSTM, per-frame outputs."""

    def __init__(self, kind: str):
        super().__init__()
        self.rnn = nn.GRU(6, 8, batch_first=True) if kind == "gru" else \
            nn.LSTM(6, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(torch.tanh(y))


CASES = {
    "conv": (CausalConvs, (4, T), "split_w"),
    "gru": (lambda: Recurrent("gru"), (T, 6), "split_h"),
    "lstm": (lambda: Recurrent("lstm"), (T, 6), "split_h"),
    "crnn": (lambda: zoo.build("crnn_kws"), (1, 49, 10), "split_h"),
}


def export_case(name: str, root) -> str:
    """Case ``name`` trained briefly with linger (venus), exported at its whole length."""
    build, shape, _ = CASES[name]
    torch.manual_seed(0)
    x = torch.randn(8, *shape)
    q = linger.init(build(), {"platform": "venus"})
    linger_flow.train_steps(q, x, 2)
    q.eval()
    path = str(root / f"{name}.onnx")
    linger.onnx.export(q, x[:1], path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    return {name: (load_onnx(export_case(name, root)), mode, shape)
            for name, (_, shape, mode) in CASES.items()}


def _time_axis(shape, mode):
    rank = len(shape) + 1
    return rank - 1 if mode == "split_w" else rank - 2


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.sampled_from(sorted(CASES)),
       st.integers(0, 2**16))
def test_streamed_chunks_equal_the_whole_sequence(exported, cuts, name, seed):
    graph, mode, shape = exported[name]
    whole = thinker.load(graph)
    (spec,) = whole.inputs
    axis = _time_axis(shape, mode)
    length = spec.shape[axis]
    x = np.random.default_rng(seed).normal(size=spec.shape).astype(np.float32)
    expected = whole.run({spec.name: x})
    stream = Stream(thinker.load(streamify(graph, mode)))
    pieces, start = [], 0
    for c in [*cuts, length]:
        c = min(c, length - start)
        if c <= 0:
            break
        pieces.append(stream.run({spec.name: np.take(x, range(start, start + c), axis=axis)}))
        start += c
    for key, value in expected.items():
        out_axis = value.ndim - 2 if value.ndim >= 3 and name != "conv" else value.ndim - 1
        got = np.concatenate([p[key] for p in pieces], axis=out_axis)
        assert np.array_equal(got, value), (name, cuts)


def test_reset_starts_a_new_stream(exported):
    graph, mode, _ = exported["gru"]
    stream = Stream(thinker.load(streamify(graph, mode)))
    chunk = np.random.default_rng(1).normal(size=(1, 5, 6)).astype(np.float32)
    first = stream.run({"input": chunk})
    second = stream.run({"input": chunk})
    stream.reset()
    assert np.array_equal(stream.run({"input": chunk})["output"], first["output"])
    assert not np.array_equal(second["output"], first["output"])


def test_non_causal_and_time_mixing_ops_are_refused_by_name(tmp_path):
    class Symmetric(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(4, 4, batch_first=True)

        def forward(self, x):
            y, _ = self.rnn(x)
            return y.mean(1)

    for model, shape, mode, message in [
            (Symmetric(), (2, 10), "split_w", "Conv1dInt 'conv': it is not causal along time "
             "(pads 1 before, 1 after; 3 taps with dilation 1 need 2 before and 0 after)"),
            (Pooled(), (10, 4), "split_h", "it reduces over the time axis")]:
        q = linger.init(model)
        linger_flow.train_steps(q, torch.randn(4, *shape), 1)
        path = tmp_path / "m.onnx"
        linger.onnx.export(q.eval(), torch.randn(1, *shape), path)
        with pytest.raises(StreamError) as err:
            streamify(load_onnx(str(path)), mode)
        assert message in str(err.value) and "cannot run on a stream" in str(err.value)
