"""Quantized nn.GRU, nn.LSTM, nn.GRUCell and nn.LSTMCell (``GRUInt`` / ``LSTMInt``).

Every layer and direction is one ``GRUInt`` / ``LSTMInt`` node (``thinker.ops.rnn``, whose
docstring is the integer algorithm); linger runs that op's kernel, so its integers *are* the
executor's. Per module:

* the hidden state has ONE exponent ``q_h`` (``scale_h``) for every layer and direction,
  learned by the module's ``hidden_quantizer`` (MOM / TQT as configured) on the float
  surrogate's hidden states; the output exponent is the same (``scale_o = scale_h``, ``o_bits =
  activate_bits``), so Y holds the hidden states exactly (no requantization), the two directions
  of a bidirectional layer join by a plain ``Concat``, and layer ``l + 1`` reads layer ``l``'s
  Y at ``q_h``;
* the LSTM cell state is int32 at 2**15 (``scale_c = 32768``) on every platform;
* weights per tensor, round half to even, at ``weight_bits`` (at least 8: ``scale_iw``,
  ``scale_hw``); biases int32 at ``q_x + q_iw`` (``b_ih``) and ``q_h + q_hw`` (``b_hh``).

Initial states (``h0`` / ``(h0, c0)`` given to forward, PyTorch's [L*D, B, H]): a model input
used only as a state is quantized by the layer itself (``Quant``: h0 at ``scale_h`` with
``activate_bits``, c0 int32 at 2**15; ``linger.trace`` leaves such inputs to the layer); a
quantized tensor (a previous layer's state) is used as it is, or ``Requant``-ed when its
exponent differs. Several layers/directions read their rows through ``Slice``; the final states
of all of them are joined on axis 0 (``Concat``), as PyTorch stacks them.

Cells run as the op with one time step: ``[B, F] -> Reshape [B, 1, F]`` (``batch_first``),
h0 ``[B, H] -> Reshape [1, B, H]``; h' is Y reshaped back to [B, H] and the LSTM's c' is c_n
reshaped to [B, H] (Reshapes written with -1 on the batch axis).

Training: the forward value is exactly the integer result (the op's kernel on the integers the
training tensors hold); gradients flow straight through PyTorch's own GRU/LSTM run on the
fake-quantized weights (the float surrogate), whose hidden states also feed the quantizer.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence

from linger import recorder
from linger.config import LayerSettings
from linger.errors import LingerUnsupportedError
from linger.fakequant import fake_quantize, fake_quantize_weight, weight_exponent
from linger.functional.nonlinear import Constant, _record_name, run_kernel_outputs
from linger.integers import grid_ints, straight_through
from linger.location import set_location
from linger.modules.nonlinear import NonlinearLayer
from linger.qtensor import QTensor, require_qtensor
from linger.quantizer import ActivationQuantizer
from thinker import qmath
from thinker.ops.rnn import CELL_Q

CELL_BITS = 32


def _qtensor(ints: np.ndarray, q: int, bits: int, exact: bool) -> QTensor:
    """A QTensor of integers; 32-bit ones (the cell state) are held in float64, exact."""
    if bits > 16:
        values = torch.from_numpy(np.asarray(ints, np.float64) * 2.0 ** -q)
        if not exact:
            values = values.float()
        return QTensor.wrap(values, q, bits, exact)
    values = torch.from_numpy(qmath.dequantize(ints, q))
    return QTensor.wrap(values, q, bits, exact)


def _ints(x: QTensor) -> np.ndarray:
    return x.ints() if x.exact else grid_ints(x)


def _concat(parts: list[QTensor], axis: int, hint: str) -> QTensor:
    """Concat of tensors sharing one exponent and width (no requantization)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    ints = np.concatenate([_ints(p) for p in parts], axis=axis)
    out = _qtensor(ints, first.exponent, first.bits, first.exact)
    recorder.record("Concat", parts, out, hint=hint, axis=axis)
    return out


def _reshape(x: QTensor, shape: list[int], hint: str) -> QTensor:
    """Reshape to ``shape`` (one -1, on the batch axis), recorded with that -1 so the node
    keeps meaning for any batch."""
    out = x.like(x.plain.reshape(shape))
    if recorder.active() is not None:
        name = recorder.constant(f"{hint}.shape", np.array(shape, np.int64))
        recorder.record("Reshape", [x, name], out, hint=hint)
    return out


def _plain(v) -> torch.Tensor | None:
    if v is None:
        return None
    return v.plain if isinstance(v, QTensor) else v


class RecurrentLayer(NonlinearLayer):
    """What quantized GRU/LSTM modules and cells share (see the module docstring)."""

    lstm = False
    is_cell = False

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        super().linger_setup(path, settings)
        self.hidden_quantizer = ActivationQuantizer(settings.activate_bits, settings.qat_method,
                                                    settings.momentum, f"{path}.hidden")

    def linger_check(self) -> None:
        if getattr(self, "proj_size", 0):
            raise LingerUnsupportedError(
                "proj_size is not supported by linger (LSTMInt has no projection); add an "
                "nn.Linear after the LSTM instead")

    # -- geometry ----------------------------------------------------------------------------

    @property
    def where(self) -> str:
        base = next(b for b in type(self).__mro__ if b.__module__.startswith("torch.nn.modules"))
        return f"{base.__name__} '{self.linger_path}'"

    def _shape(self) -> tuple[int, int]:
        """(layers, directions)."""
        if self.is_cell:
            return 1, 1
        return self.num_layers, 2 if self.bidirectional else 1

    def _params(self, layer: int, direction: int):
        if self.is_cell:
            return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        sfx = f"l{layer}" + ("_reverse" if direction else "")
        if self.bias:
            return (getattr(self, f"weight_ih_{sfx}"), getattr(self, f"weight_hh_{sfx}"),
                    getattr(self, f"bias_ih_{sfx}"), getattr(self, f"bias_hh_{sfx}"))
        return getattr(self, f"weight_ih_{sfx}"), getattr(self, f"weight_hh_{sfx}"), None, None

    def _param_name(self, kind: str, layer: int, direction: int) -> str:
        if self.is_cell:
            return f"{self.linger_path}.{kind}"
        return f"{self.linger_path}.{kind}_l{layer}" + ("_reverse" if direction else "")

    @property
    def weight_bits(self) -> int:
        return max(8, self.linger_settings.weight_bits)

    # -- the float surrogate (training) ------------------------------------------------------

    def _surrogate(self, x: torch.Tensor, h0, c0, masks):
        """PyTorch's GRU/LSTM on the fake-quantized weights, layer by layer ([T, B, F] in,
        the same dropout masks as the integer path). Returns (every layer's output, h_n,
        c_n)."""
        layers, dirs = self._shape()
        seqs, hs, cs = [], [], []
        inp = x
        batch, hidden = x.shape[1], self.hidden_size
        for layer in range(layers):
            flat = []
            for d in range(dirs):
                w_ih, w_hh, b_ih, b_hh = self._params(layer, d)
                bits = self.weight_bits
                flat += [fake_quantize_weight(w, weight_exponent(float(w.detach().abs().max()),
                                                                 bits), bits)
                         for w in (w_ih, w_hh)]
                if b_ih is not None:
                    flat += [b_ih, b_hh]
            rows = slice(layer * dirs, (layer + 1) * dirs)
            h = h0[rows] if h0 is not None else x.new_zeros(dirs, batch, hidden)
            if self.lstm:
                c = c0[rows] if c0 is not None else x.new_zeros(dirs, batch, hidden)
                out, h_n, c_n = torch._VF.lstm(inp, (h, c), flat, b_ih is not None, 1, 0.0,
                                                True, dirs == 2, False)
                cs.append(c_n)
            else:
                out, h_n = torch._VF.gru(inp, h, flat, b_ih is not None, 1, 0.0, True,
                                         dirs == 2, False)
            seqs.append(out)
            hs.append(h_n)
            inp = out * masks[layer] if masks and layer < layers - 1 else out
        return seqs, torch.cat(hs), torch.cat(cs) if cs else None

    # -- initial states ----------------------------------------------------------------------

    def _state(self, value, name: str, q: int, bits: int, shape: tuple, exact: bool,
               ) -> QTensor | None:
        """h0 / c0 as a quantized tensor at exponent ``q``: a model input is quantized here
        (Quant), a quantized tensor at another exponent is requantized (Requant)."""
        if value is None:
            return None
        if tuple(value.shape) != tuple(shape):
            raise LingerUnsupportedError(
                f"{self.where}: {name} has shape {list(value.shape)}, expected {list(shape)}")
        hint = f"{self.linger_path}.{name}"
        if isinstance(value, QTensor):
            if value.exponent == q and value.bits == bits:
                return value
            if value.exact:
                out = _qtensor(qmath.rescale(value.ints(), value.exponent - q, bits), q, bits,
                               True)
            else:
                out = QTensor.wrap(fake_quantize(value.plain, q, bits), q, bits, False)
            recorder.record("Requant", [value], out, hint=f"{hint}_requant",
                            scale_x=2.0 ** value.exponent, scale_o=2.0 ** q,
                            data_bits=value.bits, o_bits=bits)
            return out
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise LingerUnsupportedError(
                f"{self.where}: {name} must be a float model input or a quantized tensor (a "
                f"previous layer's state), got {type(value).__name__}")
        if not exact:
            return QTensor.wrap(fake_quantize(value, q, bits), q, bits, False)
        out = _qtensor(qmath.quantize(value.detach().double().numpy(), q, bits), q, bits, True)
        rec = recorder.active()
        if rec is not None:
            rec.add_node("Quant", [rec.float_input_name(value)], [out],
                         {"scale_x": 2.0 ** q, "data_bits": bits}, f"{hint}_quant")
        return out

    # -- one node ----------------------------------------------------------------------------

    def _node(self, layer: int, direction: int, x: QTensor, h0: QTensor | None,
              c0: QTensor | None, q_h: int, batch_first: bool, exact: bool):
        s, bits, wbits = self.linger_settings, self.bits, self.weight_bits
        layers, dirs = self._shape()
        w_ih, w_hh, b_ih, b_hh = self._params(layer, direction)
        q_iw = weight_exponent(float(w_ih.detach().abs().max()), wbits)
        q_hw = weight_exponent(float(w_hh.detach().abs().max()), wbits)
        wdtype = qmath.storage_dtype(wbits)
        operands = [x] + [t for t in (h0, c0) if t is not None] + [
            Constant(self._param_name("weight_ih", layer, direction),
                     qmath.quantize_weight(w_ih.detach().numpy(), q_iw, wbits).astype(wdtype)),
            Constant(self._param_name("weight_hh", layer, direction),
                     qmath.quantize_weight(w_hh.detach().numpy(), q_hw, wbits).astype(wdtype))]
        if b_ih is not None:
            operands += [
                Constant(self._param_name("bias_ih", layer, direction),
                         qmath.quantize_weight(b_ih.detach().numpy(), x.exponent + q_iw,
                                               s.bias_bits).astype(np.int32)),
                Constant(self._param_name("bias_hh", layer, direction),
                         qmath.quantize_weight(b_hh.detach().numpy(), q_h + q_hw,
                                               s.bias_bits).astype(np.int32))]
        attrs = {
            "input_size": int(x.shape[2]), "hidden_size": self.hidden_size, "num_layers": 1,
            "batch_first": int(batch_first), "go_forward": int(direction == 0),
            "has_hidden": int(h0 is not None), "has_cell": int(c0 is not None),
            "scale_x": 2.0 ** x.exponent, "scale_iw": 2.0 ** q_iw, "scale_hw": 2.0 ** q_hw,
            "scale_h": 2.0 ** q_h, "scale_o": 2.0 ** q_h, "o_bits": bits,
            "data_bits": x.bits, "parameter_bits": wbits, "platform": self.linger_platform}
        if self.lstm:
            attrs["scale_c"] = float(2 ** CELL_Q)
        hint = self.linger_path if layers * dirs == 1 else \
            f"{self.linger_path}.l{layer}" + ("_reverse" if direction else "")
        results = run_kernel_outputs(self.onnx_op, operands, attrs, hint)
        outs = [_qtensor(results[0], q_h, bits, exact), _qtensor(results[1], q_h, bits, exact)]
        if self.lstm:
            outs.append(_qtensor(results[2], CELL_Q, CELL_BITS, exact))
        if recorder.active() is not None:
            recorder.record(self.onnx_op, [_record_name(o) for o in operands], outs, hint=hint,
                            **attrs)
        return outs[0], outs[1], outs[2] if self.lstm else None

    # -- the sequence ------------------------------------------------------------------------

    def _sequence(self, x: QTensor, h_in, c_in, batch_first: bool):
        """x in the op's layout; h_in / c_in: [L*D, B, H] ([B, H] for cells) or None.
        Returns Y (x's layout), h_n, c_n ([L*D, B, H]) as quantized tensors."""
        layers, dirs = self._shape()
        path, bits, exact = self.linger_path, self.bits, self.exact_mode()
        batch = x.shape[0] if batch_first else x.shape[1]
        hidden = self.hidden_size
        rows = layers * dirs
        state_shape = (batch, hidden) if self.is_cell else (rows, batch, hidden)

        def as_rows(v):  # a cell's [B, H] state as the op's [1, B, H]
            return None if v is None else v.unsqueeze(0) if self.is_cell else v

        masks = None
        if self.training and not self.is_cell and self.dropout > 0 and layers > 1:
            keep = 1.0 - self.dropout
            seq_len = x.shape[1] if batch_first else x.shape[0]
            masks = [torch.bernoulli(torch.full((seq_len, batch, dirs * hidden), keep)) / keep
                     for _ in range(layers - 1)]
        if exact:
            q_h, surrogate = self.hidden_quantizer.frozen_exponent(), None
        else:
            seq_first = x.plain.transpose(0, 1) if batch_first else x.plain
            h_float, c_float = as_rows(_plain(h_in)), as_rows(_plain(c_in))
            surrogate = self._surrogate(seq_first, h_float, c_float, masks)
            seen = [s.detach().reshape(-1) for s in surrogate[0]]
            if h_float is not None:
                seen.append(h_float.detach().reshape(-1))
            q_h = self.hidden_quantizer.observe(torch.cat(seen))
        h0 = self._state(h_in, "h0", q_h, bits, state_shape, exact)
        c0 = self._state(c_in, "c0", CELL_Q, CELL_BITS, state_shape, exact) if self.lstm \
            else None
        if self.is_cell:
            h0 = None if h0 is None else _reshape(h0, [1, -1, hidden], f"{path}.h0_steps")
            c0 = None if c0 is None else _reshape(c0, [1, -1, hidden], f"{path}.c0_steps")

        def row(state, k, name):
            if state is None or rows == 1:
                return state
            set_location(f"{path}.{name}_l{k // dirs}" + ("_reverse" if k % dirs else ""))
            return state[k:k + 1]

        layer_in, hs, cs = x, [], []
        for layer in range(layers):
            ys = []
            for d in range(dirs):
                k = layer * dirs + d
                y, h, c = self._node(layer, d, layer_in, row(h0, k, "h0"), row(c0, k, "c0"),
                                     q_h, batch_first, exact)
                ys.append(y), hs.append(h), cs.append(c)
            y = _concat(ys, 2, f"{path}.l{layer}_output")
            if masks and layer < layers - 1:
                mask = masks[layer].transpose(0, 1) if batch_first else masks[layer]
                y = y.like(fake_quantize(y.plain * mask, y.exponent, y.bits))
            layer_in = y
        h_n = _concat(hs, 0, f"{path}.h_n")
        c_n = _concat(cs, 0, f"{path}.c_n") if self.lstm else None
        if surrogate is not None:
            seqs, h_sur, c_sur = surrogate
            y_sur = seqs[-1].transpose(0, 1) if batch_first else seqs[-1]
            quantizer = self.hidden_quantizer

            def joined(sur, value: QTensor) -> QTensor:
                return QTensor.wrap(straight_through(sur, value.plain), value.exponent,
                                    value.bits, exact=False)

            layer_in = joined(quantizer.quantize(y_sur, q_h), layer_in)
            h_n = joined(quantizer.quantize(h_sur, q_h), h_n)
            if c_n is not None:
                c_n = joined(c_sur, c_n)
        return layer_in, h_n, c_n

    def _input(self, value, rank: int) -> QTensor:
        if isinstance(value, PackedSequence):
            raise LingerUnsupportedError(
                f"{self.where}: packed sequences are not supported by linger; pad the batch to "
                "one length (the device runs fixed shapes)")
        x = require_qtensor(value, self.where)
        if x.dim() != rank:
            raise LingerUnsupportedError(
                f"{self.where}: input of shape {list(x.shape)}; linger needs the batched "
                f"{rank}-D form (add the batch axis with unsqueeze)")
        return x


def _split_hx(where: str, hx, lstm: bool):
    if hx is None:
        return None, None
    if lstm:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise LingerUnsupportedError(f"{where}: hx must be the tuple (h0, c0)")
        return hx[0], hx[1]
    return hx, None


class QGRU(RecurrentLayer, nn.GRU):
    onnx_op = "GRUInt"

    def forward(self, input, hx=None):
        x = self._input(input, 3)
        y, h_n, _unused = self._sequence(x, hx, None, self.batch_first)
        return y, h_n


class QLSTM(RecurrentLayer, nn.LSTM):
    onnx_op, lstm = "LSTMInt", True

    def forward(self, input, hx=None):
        x = self._input(input, 3)
        h0, c0 = _split_hx(self.where, hx, True)
        y, h_n, c_n = self._sequence(x, h0, c0, self.batch_first)
        return y, (h_n, c_n)


class _Cell(RecurrentLayer):
    is_cell = True

    def _step(self, input, h0, c0):
        x = self._input(input, 2)
        path = self.linger_path
        steps = _reshape(x, [-1, 1, x.shape[1]], f"{path}.input_steps")
        y, _, c_n = self._sequence(steps, h0, c0, batch_first=True)
        h = _reshape(y, [-1, self.hidden_size], f"{path}.h")
        c = None if c_n is None else _reshape(c_n, [-1, self.hidden_size], f"{path}.c")
        return h, c


class QGRUCell(_Cell, nn.GRUCell):
    onnx_op = "GRUInt"

    def forward(self, input, hx=None):
        return self._step(input, hx, None)[0]


class QLSTMCell(_Cell, nn.LSTMCell):
    onnx_op, lstm = "LSTMInt", True

    def forward(self, input, hx=None):
        h0, c0 = _split_hx(self.where, hx, True)
        return self._step(input, h0, c0)


__all__ = ["QGRU", "QLSTM", "QGRUCell", "QLSTMCell", "RecurrentLayer"]
