"""+, - and * between quantized tensors, each with its own output quantizer.

``linger.init`` replaces every traced ``a + b``, ``torch.add(a, b)``, ``a += b`` (and the same
for - and *) between tensors by a call of one of these modules. Integer semantics (design §3):

* iqAdd / iqSub: each input rescaled to the output exponent and saturated on its own, then the
  saturating add (sub);
* iqMul: the exact product at qa + qb, rescaled to the output exponent.
"""

from __future__ import annotations

import operator
from typing import ClassVar

import torch
import torch.nn as nn

from linger import recorder
from linger.calls import quantized_call
from linger.config import LayerSettings
from linger.errors import LingerUnsupportedError
from linger.fakequant import fake_quantize
from linger.modules.base import QuantizedLayer
from linger.qtensor import QTensor, require_qtensor
from linger.quantizer import ActivationQuantizer
from thinker import qmath


class _QArithmetic(QuantizedLayer, nn.Module):
    onnx_op: ClassVar[str] = ""
    python_op: ClassVar = None

    def __init__(self, path: str, settings: LayerSettings):
        super().__init__()
        self.linger_path, self.linger_settings = path, settings
        self.output_quantizer = ActivationQuantizer(settings.activate_bits, settings.qat_method,
                                                    settings.momentum, path)

    def forward(self, a, b, alpha=1):
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return type(self).python_op(a, b)  # shape arithmetic on Python numbers
        if alpha != 1:
            raise LingerUnsupportedError(f"'{self.linger_path}': alpha={alpha} is not supported")
        where = f"{self.onnx_op} '{self.linger_path}'"
        a, b = require_qtensor(a, where), require_qtensor(b, where)
        bits = self.linger_settings.activate_bits
        if self.exact_mode():
            qo = self.output_quantizer.frozen_exponent()
            out = QTensor.from_ints(self.combine(a.ints(), b.ints(), a.exponent, b.exponent, qo,
                                                 bits), qo, bits)
        else:
            values, q = self.train_values(a, b, bits)
            out = QTensor.wrap(values, q, bits, exact=False)
        recorder.record(self.onnx_op, [a, b], out, hint=self.linger_path,
                        scale_x=2.0 ** a.exponent, scale_y=2.0 ** b.exponent,
                        scale_o=2.0 ** out.exponent, o_bits=bits)
        return out


class _QAddSub(_QArithmetic):
    def train_values(self, a: QTensor, b: QTensor, bits: int) -> tuple[torch.Tensor, int]:
        op, quantizer = type(self).python_op, self.output_quantizer
        exact_sum = op(a.plain, b.plain)
        q = quantizer.observe(exact_sum)
        # the integer op's values: each input rounded to the output exponent on its own
        pa, pb = (fake_quantize(t.plain, q, bits) for t in (a, b))
        values = fake_quantize(op(pa, pb), q, bits)
        if quantizer.method == "TQT":  # the threshold learns from the rounding of the sum
            surrogate = quantizer.quantize(exact_sum, q)
            values = surrogate + (values - surrogate).detach()
        return values, q


@quantized_call("add", (operator.add, operator.iadd, torch.add), ("add", "add_"))
class QAdd(_QAddSub):
    onnx_op, python_op = "iqAdd", operator.add

    @staticmethod
    def combine(a, b, qa, qb, qo, bits):
        return qmath.rescaled_sum(a, qa, b, qb, qo, bits)


@quantized_call("sub", (operator.sub, operator.isub, torch.sub), ("sub", "sub_"))
class QSub(_QAddSub):
    onnx_op, python_op = "iqSub", operator.sub

    @staticmethod
    def combine(a, b, qa, qb, qo, bits):
        return qmath.rescaled_sum(a, qa, b, qb, qo, bits, subtract=True)


@quantized_call("mul", (operator.mul, operator.imul, torch.mul), ("mul", "mul_"))
class QMul(_QArithmetic):
    onnx_op, python_op = "iqMul", operator.mul

    def train_values(self, a: QTensor, b: QTensor, bits: int) -> tuple[torch.Tensor, int]:
        return self.output_quantizer(a.plain * b.plain)

    @staticmethod
    def combine(a, b, qa, qb, qo, bits):
        return qmath.rescaled_product(a, qa, b, qb, qo, bits)
