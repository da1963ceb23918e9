"""+, -, * and / on quantized tensors, each call with its own output quantizer.

``linger.init`` replaces every traced ``a + b``, ``torch.add(a, b)``, ``a += b`` (and the same
for -, * and /) by a call of one of these modules. Integer semantics (design §3):

* iqAdd / iqSub: each input rescaled to the output exponent and saturated on its own, then the
  saturating add (sub);
* iqMul: the exact product at qa + qb, rescaled to the output exponent;
* iqDiv: the exact quotient rounded half up (``thinker.ops.elementwise.divide``).

One operand may be a Python number ``c``:

* ``x + c``, ``c + x``, ``x - c``, ``c - x``: iqAdd / iqSub with ``c`` quantized at the
  (learned) output exponent, at the layer's bits;
* ``x * c``, ``c * x``, ``x / c``: with ``|c| = 2**k`` an iqMul by the integer ±1 at exponent
  ``-k``: the integers are unchanged (negated for c < 0), the output exponent is
  ``qx - k``, nothing is learned; any other ``c`` (``1 / c`` for a division) is quantized to
  16 bits at its finest exponent and the product gets a learned output exponent;
* ``c / x``: iqDiv with ``c`` as a 16-bit constant.
"""

from __future__ import annotations

import operator
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from linger import recorder
from linger.calls import quantized_call
from linger.config import LayerSettings
from linger.errors import LingerUnsupportedError
from linger.fakequant import fake_quantize
from linger.functional.common import storage
from linger.integers import grid_ints, straight_through, values_of
from linger.modules.base import QuantizedLayer, mode_attrs, round_mode_of
from linger.modules.integer import (
    CONSTANT_BITS,
    constant_16bit,
    is_number,
    power_of_two,
    quantize_number,
)
from linger.qtensor import QTensor, require_qtensor
from linger.quantizer import ActivationQuantizer
from thinker import qmath
from thinker.ops.elementwise import divide


class _QArithmetic(QuantizedLayer, nn.Module):
    onnx_op: ClassVar[str] = ""
    python_op: ClassVar = None

    def __init__(self, path: str, settings: LayerSettings):
        super().__init__()
        self.linger_path, self.linger_settings = path, settings
        # iqDiv rounds inside its own kernel (half up): only add, sub and mul take round_mode
        mode = round_mode_of(settings) if self.onnx_op != "iqDiv" else "floor_add"
        self.round_mode = mode
        self.output_quantizer = ActivationQuantizer(settings.activate_bits, settings.qat_method,
                                                    settings.momentum, path, round_mode=mode)

    def forward(self, a, b, alpha=1):
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return type(self).python_op(a, b)  # shape arithmetic on Python numbers
        if alpha != 1:
            raise LingerUnsupportedError(f"'{self.linger_path}': alpha={alpha} is not supported")
        where = f"{self.onnx_op} '{self.linger_path}'"
        if is_number(a) or is_number(b):
            x = require_qtensor(b if is_number(a) else a, where)
            return self.with_constant(x, float(a if is_number(a) else b), is_number(a))
        a, b = require_qtensor(a, where), require_qtensor(b, where)
        bits = self.linger_settings.activate_bits
        if self.exact_mode():
            qo = self.output_quantizer.frozen_exponent()
            out = QTensor.from_ints(self.combine(a.ints(), b.ints(), a.exponent, b.exponent, qo,
                                                 bits, self.round_mode), qo, bits)
        else:
            values, q = self.train_values(a, b, bits)
            out = QTensor.wrap(values, q, bits, exact=False)
        self.record(a, b, out)
        return out

    def record(self, a, b, out: QTensor, qa: int | None = None, qb: int | None = None,
               op: str | None = None) -> None:
        """``op`` (default: this module's) node; a constant operand is given by its name
        and exponent."""
        qa = a.exponent if qa is None else qa
        qb = b.exponent if qb is None else qb
        recorder.record(op or self.onnx_op, [a, b], out, hint=self.linger_path,
                        scale_x=2.0 ** qa, scale_y=2.0 ** qb, scale_o=2.0 ** out.exponent,
                        o_bits=out.bits, **mode_attrs(self.round_mode))

    def constant_name(self, value: int, bits: int) -> str | None:
        if recorder.active() is None:
            return None
        return recorder.constant(f"{self.linger_path}.constant",
                                 np.array(value, dtype=storage(bits)))

    def with_constant(self, x: QTensor, c: float, constant_first: bool) -> QTensor:
        raise NotImplementedError


class _QAddSub(_QArithmetic):
    def train_values(self, a: QTensor, b: QTensor, bits: int) -> tuple[torch.Tensor, int]:
        op, quantizer = type(self).python_op, self.output_quantizer
        exact_sum = op(a.plain, b.plain)
        q = quantizer.observe(exact_sum)
        # the integer op's values: each input rounded to the output exponent on its own
        pa, pb = (fake_quantize(t.plain, q, bits, self.round_mode) for t in (a, b))
        values = fake_quantize(op(pa, pb), q, bits)
        if quantizer.method == "TQT":  # the threshold learns from the rounding of the sum
            surrogate = quantizer.quantize(exact_sum, q)
            values = surrogate + (values - surrogate).detach()
        return values, q

    def with_constant(self, x: QTensor, c: float, constant_first: bool) -> QTensor:
        """x + c, c + x, x - c, c - x: ``c`` quantized at the output exponent."""
        op, quantizer = type(self).python_op, self.output_quantizer
        bits = self.linger_settings.activate_bits
        ordered = (lambda u, v: op(v, u)) if constant_first else op
        if self.exact_mode():
            qo = quantizer.frozen_exponent()
            c_int = quantize_number(c, qo, bits)
            pair = (np.int64(c_int), x.ints()) if constant_first else (x.ints(), np.int64(c_int))
            qs = (qo, x.exponent) if constant_first else (x.exponent, qo)
            out = QTensor.from_ints(self.combine(pair[0], pair[1], qs[0], qs[1], qo, bits,
                                                 self.round_mode), qo, bits)
        else:
            exact_sum = ordered(x.plain, c)
            qo = quantizer.observe(exact_sum)
            c_int = quantize_number(c, qo, bits)
            values = fake_quantize(ordered(fake_quantize(x.plain, qo, bits, self.round_mode),
                                           c_int * 2.0 ** -qo), qo, bits)
            if quantizer.method == "TQT":
                surrogate = quantizer.quantize(exact_sum, qo)
                values = surrogate + (values - surrogate).detach()
            out = QTensor.wrap(values, qo, bits, exact=False)
        name = self.constant_name(c_int, bits)
        if name is not None:
            if constant_first:
                self.record(name, x, out, qa=qo)
            else:
                self.record(x, name, out, qb=qo)
        return out


@quantized_call("add", (operator.add, operator.iadd, torch.add), ("add", "add_"))
class QAdd(_QAddSub):
    onnx_op, python_op = "iqAdd", operator.add

    @staticmethod
    def combine(a, b, qa, qb, qo, bits, mode="floor_add"):
        if mode != "floor_add":
            return _moded_sum(a, qa, b, qb, qo, bits, mode, subtract=False)
        return qmath.rescaled_sum(a, qa, b, qb, qo, bits)


@quantized_call("sub", (operator.sub, operator.isub, torch.sub), ("sub", "sub_"))
class QSub(_QAddSub):
    onnx_op, python_op = "iqSub", operator.sub

    @staticmethod
    def combine(a, b, qa, qb, qo, bits, mode="floor_add"):
        if mode != "floor_add":
            return _moded_sum(a, qa, b, qb, qo, bits, mode, subtract=True)
        return qmath.rescaled_sum(a, qa, b, qb, qo, bits, subtract=True)


def _moded_sum(a, qa, b, qb, qo, bits, mode, subtract):
    """iqAdd / iqSub with another rounding mode (thinker.ops.elementwise does the same)."""
    x = np.asarray(qmath.rescale_mode(np.asarray(a, np.int64), qa - qo, bits, mode), np.int64)
    y = np.asarray(qmath.rescale_mode(np.asarray(b, np.int64), qb - qo, bits, mode), np.int64)
    return qmath.saturate(x - y if subtract else x + y, bits)


def _product(a, qa, b, qb, qo, bits, mode="floor_add"):
    """iqMul: the exact product rescaled with the rounding ``mode``."""
    if mode == "floor_add":
        return qmath.rescaled_product(a, qa, b, qb, qo, bits)
    product = np.multiply(np.asarray(a, np.int64), np.asarray(b, np.int64))
    return qmath.saturate(qmath.rshift_mode(product, qa + qb - qo, mode), bits)


class _ScalesByConstant:
    """x * c for a Python number c (iqMul with a constant)."""

    def scale_by(self, x: QTensor, c: float) -> QTensor:
        k = power_of_two(c)
        if k is not None:  # exact: integers unchanged (negated), exponent moved by k
            c_int, qc, bits = (1 if c > 0 else -1), -k, x.bits
            qo = x.exponent - k
            if self.exact_mode():  # shift 0: no rounding, whatever the mode
                out = QTensor.from_ints(qmath.rescaled_product(x.ints(), x.exponent, c_int, qc,
                                                               qo, bits), qo, bits)
            else:
                out = QTensor.wrap(fake_quantize(x.plain * c, qo, bits), qo, bits, exact=False)
            name = self.constant_name(c_int, 8)
        else:
            c_int, qc = constant_16bit(c)
            bits, quantizer = self.linger_settings.activate_bits, self.output_quantizer
            if self.exact_mode():
                qo = quantizer.frozen_exponent()
                out = QTensor.from_ints(_product(x.ints(), x.exponent, c_int, qc, qo, bits,
                                                 self.round_mode), qo, bits)
            else:  # float64: the product of 16-bit integers is exact
                values, qo = quantizer(x.plain.double() * (c_int * 2.0 ** -qc))
                out = QTensor.wrap(values.float(), qo, bits, exact=False)
            name = self.constant_name(c_int, 16)
        if name is not None:
            self.record(x, name, out, qb=qc, op="iqMul")
        return out


@quantized_call("mul", (operator.mul, operator.imul, torch.mul), ("mul", "mul_"))
class QMul(_ScalesByConstant, _QArithmetic):
    onnx_op, python_op = "iqMul", operator.mul

    def train_values(self, a: QTensor, b: QTensor, bits: int) -> tuple[torch.Tensor, int]:
        # float64: products of 16-bit integers are exact there, not in float32
        values, q = self.output_quantizer(a.plain.double() * b.plain.double())
        return values.float(), q

    @staticmethod
    def combine(a, b, qa, qb, qo, bits, mode="floor_add"):
        return _product(a, qa, b, qb, qo, bits, mode)

    def with_constant(self, x: QTensor, c: float, constant_first: bool) -> QTensor:
        return self.scale_by(x, c)


@quantized_call("div", (operator.truediv, operator.itruediv, torch.div, torch.true_divide),
                ("div", "div_", "true_divide", "true_divide_"))
class QDiv(_ScalesByConstant, _QArithmetic):
    """a / b between activations: iqDiv (exact quotient rounded half up, learned output
    exponent); x / c is x * (1 / c); c / x is iqDiv with c a 16-bit constant."""

    onnx_op, python_op = "iqDiv", operator.truediv

    def forward(self, a, b, rounding_mode=None):
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return operator.truediv(a, b)  # shape arithmetic on Python numbers
        if rounding_mode is not None:
            raise LingerUnsupportedError(
                f"iqDiv '{self.linger_path}': rounding_mode={rounding_mode!r} is not supported; "
                "linger divides with the exact quotient rounded to the output scale")
        where = f"iqDiv '{self.linger_path}'"
        if is_number(b):
            if float(b) == 0:
                raise LingerUnsupportedError(f"{where}: division by the constant 0")
            return self.scale_by(require_qtensor(a, where), 1.0 / float(b))
        y = require_qtensor(b, where)
        if is_number(a):
            c_int, qc = constant_16bit(float(a))
            out = self.quotient(np.int64(c_int), qc, None, y)
            name = self.constant_name(c_int, 16)
            if name is not None:
                self.record(name, y, out, qa=qc)
            return out
        x = require_qtensor(a, where)
        out = self.quotient(None, x.exponent, x, y)
        self.record(x, y, out)
        return out

    def check_shift(self, shift: int, x: QTensor | None, y: QTensor) -> None:
        """iqDiv's int64 bound (the executor refuses the same)."""
        widest = max(CONSTANT_BITS if x is None else x.bits, y.bits)
        if widest + abs(shift) > 62:
            raise LingerUnsupportedError(
                f"iqDiv '{self.linger_path}': the division shift {shift} on {widest}-bit inputs "
                "would leave int64; the output scale is too far from scale_x / scale_y")

    def quotient(self, x_int, qx: int, x: QTensor | None, y: QTensor) -> QTensor:
        """x / y: integers from ``divide``; ``x`` None means the constant ``x_int``."""
        bits, quantizer = self.linger_settings.activate_bits, self.output_quantizer
        xi = grid_ints(x) if x is not None else x_int
        yi = grid_ints(y)
        if self.exact_mode():
            qo = quantizer.frozen_exponent()
            self.check_shift(qo - qx + y.exponent, x, y)
            return QTensor.from_ints(divide(xi, qx, yi, y.exponent, qo, bits), qo, bits)
        num = x.plain if x is not None else values_of(xi, qx)
        den = y.plain
        by_zero = den == 0
        safe = torch.where(by_zero, torch.zeros_like(num * den),
                           num / torch.where(by_zero, torch.ones_like(den), den))
        qo = quantizer.observe(safe)
        self.check_shift(qo - qx + y.exponent, x, y)
        ints = divide(xi, qx, yi, y.exponent, qo, bits)
        values = straight_through(quantizer.quantize(safe, qo), values_of(ints, qo))
        return QTensor.wrap(values, qo, bits, exact=False)
