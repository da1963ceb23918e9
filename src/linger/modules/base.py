"""What every quantized layer with weights shares (Conv, Linear, BatchNorm).

Training: weights fake-quantized (round half to even, straight-through), bias at exponent
qx + qw, float accumulation, output fake-quantized by the layer's activation quantizer.

Eval (exact): integer weights and bias from ``qmath.quantize_weight``, the accumulator
computed in float64 on integers (exact: every partial sum of 8/16-bit products stays far below
2**53), then ``qmath.rescale`` to the frozen output exponent, the executor's output stage.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from linger import recorder
from linger.config import LayerSettings
from linger.fakequant import fake_quantize_weight, weight_exponent
from linger.qtensor import QTensor, require_qtensor
from linger.quantizer import ActivationQuantizer, calibrating
from thinker import qmath


def round_mode_of(settings: LayerSettings) -> str:
    """The layer's rounding mode (``floor_add`` for settings made before the key existed)."""
    return getattr(settings, "round_mode", "floor_add")


def mode_attrs(mode: str) -> dict:
    """The ``quant_mode`` attribute a node carries for a rounding mode other than the
    default (absent means floor_add, as in the original linger's files)."""
    return {} if mode == "floor_add" else {"quant_mode": mode}


class QuantizedLayer:
    """Mixin: the layer's place in the model and its settings."""

    linger_path: str = ""
    linger_settings: LayerSettings

    def exact_mode(self) -> bool:
        return not self.training and not calibrating()


class WeightedLayer(QuantizedLayer):
    """Mixin for layers computing ``accumulate(x, weight) + bias`` per output channel."""

    onnx_op: ClassVar[str] = ""
    channel_axis: ClassVar[int] = 1  # where the output channels (and the bias) are

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        self.linger_path, self.linger_settings = path, settings
        self.output_quantizer = ActivationQuantizer(settings.activate_bits, settings.qat_method,
                                                    settings.momentum, path,
                                                    round_mode=settings.round_mode)

    # -- what each layer defines -------------------------------------------------------------

    def float_params(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The float weight and bias this layer quantizes (after clamping and BN folding)."""
        raise NotImplementedError

    def accumulate(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The layer's op without bias, in the dtype of its inputs."""
        raise NotImplementedError

    def onnx_attrs(self) -> dict:
        return {}

    # -- shared ------------------------------------------------------------------------------

    def forward(self, x):
        x = require_qtensor(x, f"{type(self).__name__} '{self.linger_path}'")
        w, b = self.float_params()
        if self.exact_mode():
            return self._forward_exact(x, w, b)
        return self._forward_train(x, w, b)

    def _bias_shape(self, ndim: int, channels: int) -> tuple[int, ...]:
        if self.channel_axis == -1:
            return (channels,)
        return (1, channels) + (1,) * (ndim - 2)

    def weight_exponent(self, w: torch.Tensor) -> int:
        return weight_exponent(float(w.detach().abs().max()), self.linger_settings.weight_bits)

    def _forward_train(self, x: QTensor, w: torch.Tensor, b: torch.Tensor | None) -> QTensor:
        s = self.linger_settings
        qw = self.weight_exponent(w)
        acc = self.accumulate(x.plain, fake_quantize_weight(w, qw, s.weight_bits))
        if b is not None:
            bq = fake_quantize_weight(b, x.exponent + qw, s.bias_bits)
            acc = acc + bq.reshape(self._bias_shape(acc.dim(), bq.numel()))
        out, qo = self.output_quantizer(acc)
        return QTensor.wrap(out, qo, s.activate_bits, exact=False)

    def integer_params(self, qx: int, w: torch.Tensor, b: torch.Tensor | None):
        """(int weight, int32 bias or None, qw): the constants the executor gets."""
        s = self.linger_settings
        qw = self.weight_exponent(w)
        w_int = qmath.quantize_weight(w.detach().numpy(), qw, s.weight_bits)
        b_int = None if b is None else qmath.quantize_weight(b.detach().numpy(), qx + qw,
                                                             s.bias_bits)
        return w_int, b_int, qw

    def _forward_exact(self, x: QTensor, w: torch.Tensor, b: torch.Tensor | None) -> QTensor:
        s = self.linger_settings
        qx = x.exponent
        w_int, b_int, qw = self.integer_params(qx, w, b)
        with torch.no_grad():
            acc = self.accumulate(torch.from_numpy(x.ints()).double(),
                                  torch.from_numpy(w_int).double())
        acc = acc.numpy().astype(np.int64)
        if b_int is not None:
            acc = acc + b_int.reshape(self._bias_shape(acc.ndim, b_int.size))
        qo = self.output_quantizer.frozen_exponent()
        out = QTensor.from_ints(qmath.rescale_mode(acc, qx + qw - qo, s.activate_bits,
                                                   round_mode_of(s)), qo, s.activate_bits)
        if recorder.active() is not None:
            self._record(x, out, w_int, b_int, qw)
        return out

    def _record(self, x: QTensor, out: QTensor, w_int, b_int, qw: int) -> None:
        s, path = self.linger_settings, self.linger_path
        inputs = [x, recorder.constant(f"{path}.weight",
                                       w_int.astype(qmath.storage_dtype(s.weight_bits)))]
        if b_int is not None:
            inputs.append(recorder.constant(f"{path}.bias", b_int.astype(np.int32)))
        recorder.record(self.onnx_op, inputs, out, hint=path, scale_x=2.0 ** x.exponent,
                        scale_w=2.0 ** qw, scale_o=2.0 ** out.exponent, o_bits=out.bits,
                        data_bits=x.bits, parameter_bits=s.weight_bits,
                        **mode_attrs(round_mode_of(s)), **self.onnx_attrs())
