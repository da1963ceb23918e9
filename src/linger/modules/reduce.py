"""Reductions with a learned output exponent: ``x.sum`` / ``torch.sum`` and ``x.mean`` /
``torch.mean`` (iqSum, the mean with ``divisor`` = the number of averaged elements), ``x.var`` /
``torch.var`` (iqVar).

Each finishes with one exact rational rounding (round half up of the exact quotient,
``thinker.ops.reduce``), so a mean or a variance is never rounded twice. Training runs the same
integer kernel on the training values' integers; the gradient flows through the float
reduction (straight through), so QAT trains with what the executor computes.

Axes must be given (a whole-tensor reduction would mix the samples of a batch) and may not
include the batch axis 0.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from linger import recorder
from linger.calls import quantized_call
from linger.config import LayerSettings
from linger.errors import LingerUnsupportedError
from linger.integers import grid_ints, straight_through, values_of
from linger.modules.base import QuantizedLayer
from linger.qtensor import QTensor, require_qtensor
from linger.quantizer import ActivationQuantizer
from thinker.ops.reduce import reduce_sum, reduce_variance

MAX_SHIFT = 40  # the ops' limit on the requantization shift


class _QReduce(QuantizedLayer, nn.Module):
    onnx_op: ClassVar[str] = ""
    torch_name: ClassVar[str] = ""

    def __init__(self, path: str, settings: LayerSettings):
        super().__init__()
        self.linger_path, self.linger_settings = path, settings
        self.output_quantizer = ActivationQuantizer(settings.activate_bits, settings.qat_method,
                                                    settings.momentum, path)

    def refuse(self, why: str) -> LingerUnsupportedError:
        return LingerUnsupportedError(f"{self.torch_name} at '{self.linger_path}': {why}")

    def axes_of(self, x: QTensor, dim) -> tuple[int, ...]:
        if dim is None or (isinstance(dim, (list, tuple)) and not dim):
            raise self.refuse(
                "a reduction over the whole tensor (no dim) is not supported: it would mix the "
                "samples of a batch; give the axes, e.g. x.mean(dim=(1, 2, 3))")
        dims = list(dim) if isinstance(dim, (list, tuple)) else [dim]
        if any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
            raise self.refuse(f"dim={dim!r} must be an int or a tuple of ints")
        rank = x.dim()
        if any(not -rank <= d < rank for d in dims):
            raise self.refuse(f"dim={dim!r} is out of range for a {rank}-D tensor")
        axes = tuple(sorted({d % rank for d in dims}))
        if len(axes) != len(dims):
            raise self.refuse(f"dim={dim!r} repeats an axis")
        if 0 in axes:
            raise self.refuse(
                "reducing over the batch axis 0 is not supported (the executor runs each "
                "sample on its own); reduce over the other axes")
        return axes

    def reduce(self, x: QTensor, axes: tuple[int, ...], keepdim: bool, float_value,
               kernel, shift_of, attrs: dict) -> QTensor:
        """``kernel(ints, qo)`` on the integers; ``float_value`` the surrogate for gradients;
        ``shift_of(qo)`` the requantization shift the op checks."""
        bits, quantizer = self.linger_settings.activate_bits, self.output_quantizer
        if self.exact_mode():
            qo = quantizer.frozen_exponent()
            self.check_shift(shift_of(qo))
            out = QTensor.from_ints(kernel(x.ints(), qo), qo, bits)
        else:
            value = float_value()
            qo = quantizer.observe(value)
            self.check_shift(shift_of(qo))
            ints = kernel(grid_ints(x), qo)
            out = QTensor.wrap(straight_through(quantizer.quantize(value, qo),
                                                values_of(ints, qo)), qo, bits, exact=False)
        recorder.record(self.onnx_op, [x], out, hint=self.linger_path, axes=list(axes),
                        keepdims=int(keepdim), scale_x=2.0 ** x.exponent,
                        scale_o=2.0 ** out.exponent, o_bits=bits, data_bits=x.bits, **attrs)
        return out

    def check_shift(self, shift: int) -> None:
        if abs(shift) > MAX_SHIFT:
            raise self.refuse(f"the requantization shift {shift} exceeds {MAX_SHIFT} bits; the "
                              "input and output scales are too far apart")


class _QSumLike(_QReduce):
    def forward(self, x, dim=None, keepdim=False, *, dtype=None, axis=None):
        x = require_qtensor(x, f"{self.onnx_op} '{self.linger_path}'")
        if dtype is not None:
            raise self.refuse(f"dtype={dtype} is not supported")
        axes = self.axes_of(x, dim if axis is None else axis)
        keep = bool(keepdim)
        count = int(np.prod([x.shape[a] for a in axes]))
        divisor = count if self.torch_name.endswith("mean") else 1
        qx, bits = x.exponent, self.linger_settings.activate_bits

        def float_value():
            values = x.plain.sum(axes, keepdim=keep)
            return values / divisor if divisor > 1 else values

        def kernel(ints, qo):
            return reduce_sum(ints, axes, keep, qx - qo, divisor, bits)

        return self.reduce(x, axes, keep, float_value, kernel, lambda qo: qx - qo,
                           {"divisor": divisor})


@quantized_call("sum", (torch.sum,), ("sum",))
class QSum(_QSumLike):
    onnx_op, torch_name = "iqSum", "sum"


@quantized_call("mean", (torch.mean,), ("mean",))
class QMean(_QSumLike):
    onnx_op, torch_name = "iqSum", "mean"


@quantized_call("var", (torch.var,), ("var",))
class QVar(_QReduce):
    onnx_op, torch_name = "iqVar", "var"

    def forward(self, x, dim=None, unbiased=None, keepdim=False, *, correction=None,
                axis=None):
        x = require_qtensor(x, f"iqVar '{self.linger_path}'")
        if isinstance(dim, bool):  # var(unbiased) over the whole tensor
            dim = None
        axes = self.axes_of(x, dim if axis is None else axis)
        if correction is None:
            correction = 1 if unbiased is None else int(bool(unbiased))
        elif unbiased is not None:
            raise self.refuse("give unbiased or correction, not both")
        if correction not in (0, 1):
            raise self.refuse(f"correction={correction} is not supported (0 or 1)")
        keep, qx = bool(keepdim), x.exponent
        count = int(np.prod([x.shape[a] for a in axes]))
        if correction and count < 2:
            raise self.refuse(f"the unbiased variance of {count} element needs at least 2")
        magnitude = 1 << (x.bits - 1)
        if count * count * magnitude * magnitude >= 1 << 62:
            raise self.refuse(f"the variance of {count} {x.bits}-bit values would leave int64; "
                              "reduce fewer elements")
        bits = self.linger_settings.activate_bits

        def float_value():
            return torch.var(x.plain, axes, correction=correction, keepdim=keep)

        def kernel(ints, qo):
            return reduce_variance(ints, axes, keep, 2 * qx - qo, count, bool(correction), bits)

        return self.reduce(x, axes, keep, float_value, kernel, lambda qo: 2 * qx - qo,
                           {"unbiased": int(correction)})
