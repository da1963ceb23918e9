"""Small GRUInt / LSTMInt models for the C executor tests: every kernel family, batch_first 0
and 1, forward and backward, with and without biases, h0 and c0 (graph inputs: h0 int8 at
scale_h, c0 int32 at 2**15), T from 1 to 20, H up to 64, B 1 and 3, o_bits 8 and 16 with
scale_o equal to and different from scale_h, h_bits narrower than o_bits, int16 data and
weights (the int64 accumulator path), weights of trained-network magnitude (gates neither all
saturated nor all zero)."""

from __future__ import annotations

import numpy as np
import onnx
from c_models import Builder

from onnx_build import value_info

# platform attribute as written in the model (names are case-insensitive) -> its family
FAMILIES = {"venus": "venus", "arcs": "ARCS", "mars": "Mars", "venusA": "venusA"}

Q_X, Q_W, Q_H = 5, 6, 6  # scale_x = 2**5, scale_iw = scale_hw = 2**6, scale_h = 2**6
CELL_Q = 15


class RnnBuilder(Builder):
    """Builder with recurrent nodes: random weights of a trained layer's size (|w| ~ 2**q_w /
    sqrt(fan-in), so the gates see values of a few units) and int32 biases at q_x + q_w."""

    def __init__(self, seed: int):
        super().__init__()
        self.rng = np.random.default_rng(seed)
        self.graph_inputs, self.exponents, self.outputs = [], {}, []

    def weights(self, rows: int, cols: int, q: int, dtype=np.int8, full=False):
        info = np.iinfo(dtype)
        std = info.max if full else 2.0**q / np.sqrt(cols)
        w = np.clip(np.round(self.rng.standard_normal((rows, cols)) * std), info.min, info.max)
        return self.const(w.astype(dtype))

    def bias(self, n: int, q: int):
        q = min(max(q, 0), 30)
        return self.const(self.rng.integers(-(1 << q), 1 << q, n).astype(np.int32))

    def input(self, name: str, dtype, shape, q: int) -> str:
        if name not in self.exponents:
            self.graph_inputs.append(value_info(name, dtype, shape))
            self.exponents[name] = q
        return name

    def rnn(self, op_type: str, x: str, x_shape, hidden: int, *, platform: str,
            batch_first=0, go_forward=1, bias=True, h0=False, c0=False, o_bits=8, q_o=Q_H,
            h_bits=None, q_x=Q_X, q_iw=Q_W, q_h=Q_H, q_hw=Q_W, x_dtype=np.int8,
            w_dtype=np.int8, full=False):
        gates = 4 if op_type == "LSTMInt" else 3
        batch = x_shape[0] if batch_first else x_shape[1]
        ins = [x if x in self.outputs else self.input(x, x_dtype, x_shape, q_x)]
        if h0:
            ins.append(self.input(f"h0_{batch}x{hidden}_q{q_h}", np.int8, [1, batch, hidden], q_h))
        if c0:
            ins.append(self.input(f"c0_{batch}x{hidden}", np.int32, [1, batch, hidden], CELL_Q))
        ins += [self.weights(gates * hidden, x_shape[2], q_iw, w_dtype, full),
                self.weights(gates * hidden, hidden, q_hw, np.int8, full)]
        if bias:
            ins += [self.bias(gates * hidden, q_x + q_iw), self.bias(gates * hidden, q_h + q_hw)]
        attrs = dict(scale_x=2.0**q_x, scale_iw=2.0**q_iw, scale_hw=2.0**q_hw, scale_h=2.0**q_h,
                     scale_o=2.0**q_o, o_bits=o_bits, hidden_size=hidden, platform=platform,
                     batch_first=batch_first, go_forward=go_forward, has_hidden=int(h0))
        if op_type == "LSTMInt":
            attrs.update(has_cell=int(c0), scale_c=2.0**CELL_Q)
        if h_bits is not None:
            attrs["h_bits"] = h_bits
        outs = self.op(op_type, ins, n_out=gates - 1, **attrs)
        self.outputs += outs
        return outs

    def model(self) -> onnx.ModelProto:
        return self.build(self.graph_inputs, self.outputs, self.exponents)


def family_model(platform: str, seed: int = 1) -> onnx.ModelProto:
    """Both ops in every configuration on one `platform`."""
    b = RnnBuilder(seed)
    tb = ("x_tb", [7, 3, 10])          # [T, B, F]
    bt = ("x_bt", [1, 20, 12])         # [B, T, F], batch_first
    one = ("x_one", [1, 3, 6])         # T = 1
    wide = ("x_wide", [3, 3, 8])       # int16 data and weights: int64 accumulators
    for op in ("GRUInt", "LSTMInt"):
        cell = op == "LSTMInt"
        b.rnn(op, *tb, 16, platform=platform, h0=True, c0=cell)
        b.rnn(op, *tb, 8, platform=platform, go_forward=0, bias=False, o_bits=16, q_o=10)
        b.rnn(op, *bt, 64, platform=platform, batch_first=1, go_forward=0, h0=False,
              o_bits=16, q_o=9, h_bits=8)
        b.rnn(op, *bt, 24, platform=platform, batch_first=1, bias=False, q_o=4)
        b.rnn(op, *one, 32, platform=platform, h0=True, c0=False, q_o=7)
        b.rnn(op, *one, 5, platform=platform, batch_first=1, go_forward=0, h0=cell, c0=cell,
              o_bits=16, q_o=12)
        b.rnn(op, *wide, 12, platform=platform, h0=True, c0=cell, x_dtype=np.int16, q_x=10,
              w_dtype=np.int16, q_iw=12, o_bits=16, q_o=8)
        # a fine hidden scale keeps the gates' low bits (venusA's rounding differs from arcs'),
        # |h| up to 2**31: int64 sums of int8 weights
        b.rnn(op, *tb, 8, platform=platform, h0=True, c0=cell, q_h=28, o_bits=32, q_o=28)
        b.rnn(op, *tb, 8, platform=platform, q_h=20, o_bits=16, q_o=12, h_bits=32)
    return b.model()


def extremes_model(platform: str) -> onnx.ModelProto:
    """Every requantization shift at the 40 bits numpy accepts, both ways, with full-range
    weights: numpy's int64 wraps (an int64 sum moved 40 bits left, n_h = n << 40, o t << 41)
    and the C wraps the same way."""
    b = RnnBuilder(11)
    q_in, q_out = (11, 15) if platform == "venus" else (27, 31)
    x = ("x", [5, 3, 12])
    for op in ("GRUInt", "LSTMInt"):
        cell = op == "LSTMInt"
        q_h = q_out + 40  # n_h = n << 40; s_h = s_o = 40; s_x = -40
        b.rnn(op, *x, 8, platform=platform, h0=True, c0=cell, full=True, q_x=-5,
              q_iw=q_in - 40 + 5, q_h=q_h, q_hw=q_in + 40 - q_h, o_bits=32, q_o=q_h - 40)
        q_h = q_out - 40  # n_h = n >> 40; s_x = 40, s_h = -36, s_o = 40
        b.rnn(op, *x, 6, platform=platform, h0=True, c0=cell, full=True, q_x=5,
              q_iw=q_in + 40 - 5, q_h=q_h, q_hw=q_in - 36 - q_h, o_bits=8, q_o=q_h - 40)
    return b.model()


def device_model(platform: str) -> onnx.ModelProto:
    """A GRU and an LSTM layer as a speech model uses them (int8, batch 1), packed for the chip."""
    b = RnnBuilder(7)
    x = ("x", [12, 1, 20])
    y = b.rnn("GRUInt", *x, 32, platform=platform, h0=True)[0]
    b.rnn("LSTMInt", y, [12, 1, 32], 24, platform=platform, h0=True, c0=True, q_x=Q_H)
    b.rnn("LSTMInt", *x, 16, platform=platform, go_forward=0, bias=False)
    return b.model()


def compact_model() -> onnx.ModelProto:
    """Both ops once (for c_models.MODELS and the op-coverage test)."""
    b = RnnBuilder(3)
    y = b.rnn("GRUInt", "x", [4, 2, 6], 8, platform="arcs", h0=True)[0]
    b.rnn("LSTMInt", y, [4, 2, 8], 8, platform="venus", h0=True, c0=True, q_x=Q_H)
    return b.model()


# name -> (builder, device profile to pack for)
RNN_MODELS = {
    **{f"rnn_{name}": (lambda p=platform: family_model(p), "cortex-m")
       for name, platform in FAMILIES.items()},
    **{f"rnn_extremes_{name}": (lambda p=platform: extremes_model(p), "cortex-m")
       for name, platform in FAMILIES.items() if name in ("venus", "arcs", "venusA")},
    **{f"rnn_on_{chip}": (lambda p=chip: device_model(p), chip)
       for chip in ("venus", "arcs", "mars", "venusA")},
}
