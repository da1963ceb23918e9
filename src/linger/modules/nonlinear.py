"""Sigmoid, tanh, softmax, log-softmax, GLU and the product of two activations.

Each exists twice: as the quantized subclass of its torch.nn module (``nn.Sigmoid`` ->
``QSigmoid``, swapped in place by ``linger.init``), and as a call module that ``linger.init``
puts at every traced ``torch.sigmoid(x)`` / ``x.softmax(-1)`` / ``a @ b`` / ``F.glu(x)`` ...
(``linger.calls``), so every call site has its settings (bits, platform) and, where the output
exponent is learned, its own quantizer. The integers are the thinker kernels'
(``linger.functional.nonlinear``).

| op | exported as | output exponent |
|---|---|---|
| sigmoid / tanh | iqSigmoid / iqTanh | bits - 1 |
| softmax | SoftmaxInt | bits - 1 |
| log_softmax | LogSoftmaxInt | learned |
| glu | GluInt | learned |
| matmul, bmm, @ | BmmInt | learned |
"""

from __future__ import annotations

import operator
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger.calls import quantized_call
from linger.config import LayerSettings
from linger.errors import LingerConfigError, LingerUnsupportedError
from linger.functional import nonlinear as fn
from linger.integers import platform_name
from linger.modules.base import QuantizedLayer
from linger.quantizer import ActivationQuantizer
from thinker.nonlinear.tables import DEFAULT_PLATFORM


class NonlinearLayer(QuantizedLayer):
    """Mixin: path, settings, the platform name for the kernels and, for learned output
    exponents, the output quantizer."""

    onnx_op: ClassVar[str] = ""
    learned: ClassVar[bool] = False
    uses_platform: ClassVar[bool] = True
    linger_platform: str = DEFAULT_PLATFORM

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        self.linger_path, self.linger_settings = path, settings
        if self.uses_platform:
            try:
                self.linger_platform = platform_name(settings.platform)
            except LingerConfigError as exc:
                raise LingerConfigError(f"{self.onnx_op} '{path}': {exc}") from None
        if self.learned:
            self.output_quantizer = ActivationQuantizer(
                settings.activate_bits, settings.qat_method, settings.momentum, path)

    @property
    def bits(self) -> int:
        return self.linger_settings.activate_bits


class _Call(nn.Module):
    """A traced call's module: built by ``linger.init`` as ``cls(path, settings)``."""

    def __init__(self, path: str, settings: LayerSettings):
        super().__init__()
        self.linger_setup(path, settings)


def _float32_only(op: str, args, kwargs) -> None:
    """softmax(..., dtype=...): only float32 (the quantized values' dtype) is accepted."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.dtype) and value != torch.float32:
            raise LingerUnsupportedError(f"{op} with dtype={value} is not supported by linger")


# -- sigmoid, tanh -----------------------------------------------------------------------------


class _Activation(NonlinearLayer):
    def forward(self, x):
        return fn.activation(self.onnx_op, x, self.bits, self.linger_platform, self.linger_path,
                             self.exact_mode())


@quantized_call("sigmoid", (torch.sigmoid, F.sigmoid), ("sigmoid",))
class SigmoidCall(_Activation, _Call):
    onnx_op = "iqSigmoid"


@quantized_call("tanh", (torch.tanh, F.tanh), ("tanh",))
class TanhCall(_Activation, _Call):
    onnx_op = "iqTanh"


class QSigmoid(_Activation, nn.Sigmoid):
    onnx_op = "iqSigmoid"


class QTanh(_Activation, nn.Tanh):
    onnx_op = "iqTanh"


# -- softmax, log_softmax ----------------------------------------------------------------------


class _Softmax(NonlinearLayer):
    onnx_op = "SoftmaxInt"

    def apply(self, x, dim):
        return fn.softmax(x, dim, self.bits, self.linger_platform, self.linger_path,
                          self.exact_mode())


class _LogSoftmax(NonlinearLayer):
    onnx_op, learned = "LogSoftmaxInt", True

    def apply(self, x, dim):
        return fn.log_softmax(x, dim, self.output_quantizer, self.bits, self.linger_platform,
                              self.exact_mode(), self.linger_path)


class _DimCall(_Call):
    """softmax(x, dim, [_stacklevel | dtype], dtype=None) in its F / torch / Tensor forms."""

    def forward(self, x, dim=None, *args, **kwargs):
        _float32_only(self.onnx_op, args, kwargs)
        return self.apply(x, dim)


@quantized_call("softmax", (F.softmax, torch.softmax), ("softmax",))
class SoftmaxCall(_Softmax, _DimCall):
    pass


@quantized_call("log_softmax", (F.log_softmax, torch.log_softmax), ("log_softmax",))
class LogSoftmaxCall(_LogSoftmax, _DimCall):
    pass


class QSoftmax(_Softmax, nn.Softmax):
    def forward(self, x):
        return self.apply(x, self.dim)


class QLogSoftmax(_LogSoftmax, nn.LogSoftmax):
    def forward(self, x):
        return self.apply(x, self.dim)


# -- GLU ---------------------------------------------------------------------------------------


class _Glu(NonlinearLayer):
    onnx_op, learned = "GluInt", True

    def apply(self, x, dim):
        return fn.glu(x, dim, self.output_quantizer, self.bits, self.linger_platform,
                      self.exact_mode(), self.linger_path)


@quantized_call("glu", (F.glu,), ())
class GluCall(_Glu, _Call):
    def forward(self, x, dim=-1):
        return self.apply(x, dim)


class QGLU(_Glu, nn.GLU):
    def forward(self, x):
        return self.apply(x, self.dim)


# -- products of activations -------------------------------------------------------------------


@quantized_call("matmul", (torch.matmul, torch.bmm, operator.matmul), ("matmul", "bmm"))
class MatmulCall(NonlinearLayer, _Call):
    """``a @ b``, ``torch.matmul``, ``torch.bmm``, ``Tensor.matmul`` between two activations."""

    onnx_op, learned, uses_platform = "BmmInt", True, False

    def forward(self, a, b, out=None):
        if out is not None:
            raise LingerUnsupportedError(f"matmul at '{self.linger_path}' with out= is not "
                                         "supported by linger")
        return fn.bmm(a, b, self.output_quantizer, self.bits, self.exact_mode(),
                      self.linger_path)
