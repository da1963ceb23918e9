"""Activations exported as short chains of thinker ops (``nn.Hardsigmoid``, ``nn.Hardswish``,
``nn.SiLU``, ``nn.GELU`` and their ``F.*`` functions).

With ``b`` = the layer's activate_bits and ``x`` at exponent ``qx``:

* hardsigmoid(x) = iqAdd(x, 3) at the fixed exponent ``b - 4`` (the finest holding 6) ->
  Clip [0, 6] -> iqMul by 1/6 (a 16-bit constant) at the fixed exponent ``b - 1``;
* hardswish(x) = iqMul(x, hardsigmoid(x)), learned output exponent;
* silu(x) = iqMul(x, iqSigmoid(x)), the sigmoid at the fixed exponent ``b - 1``, learned output;
* gelu(x) = x * sigmoid(1.702 x), for both ``approximate`` modes: iqMul(x, 1.702 as a 16-bit
  constant) at a learned exponent -> iqSigmoid -> iqMul(x, sigmoid), learned output.

iqSigmoid is the platform's fixed-point kernel (``thinker.nonlinear.pwl``); the node carries
the ``platform`` attribute (the config's platform, ``venus`` when unset).

Training computes the same integers from the training values' integers (so the forward value is
what the executor computes) and lets the gradient through the float function (straight
through).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import recorder
from linger.calls import quantized_call
from linger.config import LayerSettings
from linger.functional.common import storage
from linger.integers import grid_ints, platform_name, straight_through, values_of
from linger.modules.base import QuantizedLayer
from linger.modules.integer import constant_16bit, quantize_number
from linger.qtensor import QTensor, require_qtensor
from linger.quantizer import ActivationQuantizer
from thinker import qmath
from thinker.nonlinear import pwl
from thinker.nonlinear.tables import family_of

GELU_FACTOR = 1.702  # gelu(x) ~ x * sigmoid(1.702 x)


class _Chain:
    """One forward of a composite: integers step by step; in eval each step is a QTensor and,
    when exporting, an ONNX node."""

    def __init__(self, module: _Composite, x: QTensor):
        self.module, self.exact = module, module.exact_mode()
        self.path = module.linger_path
        self.x = x
        self.x_ints = x.ints() if self.exact else grid_ints(x)

    def constant(self, suffix: str, value: int, bits: int) -> str | None:
        if recorder.active() is None:
            return None
        return recorder.constant(f"{self.path}.{suffix}", np.array(value, dtype=storage(bits)))

    def step(self, op: str, suffix: str | None, inputs: list, ints: np.ndarray, q: int,
             bits: int, **attrs) -> tuple[np.ndarray, QTensor | None]:
        """The integers of one node (and their QTensor in eval, recorded when exporting)."""
        if not self.exact:
            return ints, None
        out = QTensor.from_ints(ints, q, bits)
        hint = self.path if suffix is None else f"{self.path}.{suffix}"
        recorder.record(op, inputs, out, hint=hint, **attrs)
        return ints, out


class _Composite(QuantizedLayer):
    """Mixin for the quantized activation modules (also built for ``F.*`` calls)."""

    learned_output: ClassVar[bool] = True

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        self.linger_path, self.linger_settings = path, settings
        self.linger_platform = platform_name(settings.platform)
        if self.learned_output:
            self.output_quantizer = self._quantizer(path)

    def _quantizer(self, path: str) -> ActivationQuantizer:
        s = self.linger_settings
        return ActivationQuantizer(s.activate_bits, s.qat_method, s.momentum, path)

    def forward(self, x, *args, **kwargs):
        x = require_qtensor(x, f"{type(self).__name__[1:]} '{self.linger_path}'")
        chain = _Chain(self, x)
        bits = self.linger_settings.activate_bits
        ints, q, tensor = self.integers(chain, bits)
        if chain.exact:
            return tensor
        return QTensor.wrap(self.train_values(x.plain, ints, q), q, bits, exact=False)

    # -- pieces ------------------------------------------------------------------------------

    def sigmoid(self, chain: _Chain, ints, q: int, tensor, bits: int):
        """iqSigmoid at the fixed exponent bits - 1 (the platform's kernel)."""
        qo = bits - 1
        out = pwl.activation("sigmoid", ints, q, qo, bits, family_of(self.linger_platform))
        return chain.step("iqSigmoid", "sigmoid", [tensor], out, qo, bits, scale_x=2.0 ** q,
                          scale_o=2.0 ** qo, o_bits=bits, data_bits=bits,
                          platform=self.linger_platform)

    def product(self, chain: _Chain, quantizer: ActivationQuantizer, suffix: str | None,
                a, qa: int, ta, b, qb: int, tb, bits: int, b_name: str | None = None):
        """iqMul(a, b) at the exponent ``quantizer`` learned (observing the exact product)."""
        if chain.exact:
            qo = quantizer.frozen_exponent()
        else:
            qo = quantizer.observe(values_of(np.asarray(a, dtype=np.int64) * b, qa + qb))
        out = qmath.rescaled_product(a, qa, b, qb, qo, bits)
        ints, tensor = chain.step("iqMul", suffix, [ta, tb if b_name is None else b_name], out,
                                  qo, bits, scale_x=2.0 ** qa, scale_y=2.0 ** qb,
                                  scale_o=2.0 ** qo, o_bits=bits)
        return ints, qo, tensor

    def hardsigmoid(self, chain: _Chain, bits: int):
        """iqAdd(x, 3) at bits - 4 -> Clip [0, 6] -> iqMul(., 1/6) at bits - 1."""
        x, qx = chain.x, chain.x.exponent
        q_add = bits - 4  # the finest exponent that holds 6
        three = quantize_number(3.0, q_add, bits)
        shifted = qmath.rescaled_sum(chain.x_ints, qx, np.int64(three), q_add, q_add, bits)
        shifted, t_shifted = chain.step("iqAdd", "add", [x, chain.constant("three", three, bits)],
                                        shifted, q_add, bits, scale_x=2.0 ** qx,
                                        scale_y=2.0 ** q_add, scale_o=2.0 ** q_add, o_bits=bits)
        six = 6 << q_add
        clipped = np.clip(shifted, 0, six)
        lo, hi = chain.constant("min", 0, bits), chain.constant("max", six, bits)
        clipped, t_clipped = chain.step("Clip", "clip", [t_shifted, lo, hi], clipped, q_add, bits)
        sixth, q_sixth = constant_16bit(1.0 / 6.0)
        q_out = bits - 1
        out = qmath.rescaled_product(clipped, q_add, np.int64(sixth), q_sixth, q_out, bits)
        ints, tensor = chain.step("iqMul", "hardsigmoid" if self.learned_output else None,
                                  [t_clipped, chain.constant("sixth", sixth, 16)], out, q_out,
                                  bits, scale_x=2.0 ** q_add, scale_y=2.0 ** q_sixth,
                                  scale_o=2.0 ** q_out, o_bits=bits)
        return ints, q_out, tensor

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def train_values(self, x: torch.Tensor, ints: np.ndarray, q: int) -> torch.Tensor:
        value = self.surrogate(x)
        if self.learned_output:
            value = self.output_quantizer.quantize(value, q)
        return straight_through(value, values_of(ints, q))


@quantized_call("Hardsigmoid", (F.hardsigmoid,))
class QHardsigmoid(_Composite, nn.Hardsigmoid):
    learned_output = False

    def __init__(self, path: str, settings: LayerSettings):
        nn.Hardsigmoid.__init__(self)
        self.linger_setup(path, settings)

    def integers(self, chain: _Chain, bits: int):
        return self.hardsigmoid(chain, bits)

    def surrogate(self, x):
        return F.hardsigmoid(x)


@quantized_call("Hardswish", (F.hardswish,))
class QHardswish(_Composite, nn.Hardswish):
    def __init__(self, path: str, settings: LayerSettings):
        nn.Hardswish.__init__(self)
        self.linger_setup(path, settings)

    def integers(self, chain: _Chain, bits: int):
        gate, q_gate, t_gate = self.hardsigmoid(chain, bits)
        return self.product(chain, self.output_quantizer, None, chain.x_ints, chain.x.exponent,
                            chain.x, gate, q_gate, t_gate, bits)

    def surrogate(self, x):
        return F.hardswish(x)


@quantized_call("SiLU", (F.silu,))
class QSiLU(_Composite, nn.SiLU):
    def __init__(self, path: str, settings: LayerSettings):
        nn.SiLU.__init__(self)
        self.linger_setup(path, settings)

    def integers(self, chain: _Chain, bits: int):
        qx = chain.x.exponent
        gate, t_gate = self.sigmoid(chain, chain.x_ints, qx, chain.x, bits)
        return self.product(chain, self.output_quantizer, None, chain.x_ints, qx, chain.x, gate,
                            bits - 1, t_gate, bits)

    def surrogate(self, x):
        return F.silu(x)


@quantized_call("GELU", (F.gelu,))
class QGELU(_Composite, nn.GELU):
    """Both approximate modes: x * sigmoid(1.702 x), exactly as exported."""

    def __init__(self, path: str, settings: LayerSettings):
        nn.GELU.__init__(self)
        self.linger_setup(path, settings)

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        super().linger_setup(path, settings)
        self.scale_quantizer = self._quantizer(f"{path}.scale")

    def integers(self, chain: _Chain, bits: int):
        qx = chain.x.exponent
        factor, q_factor = constant_16bit(GELU_FACTOR)
        scaled, q_scaled, t_scaled = self.product(
            chain, self.scale_quantizer, "scale", chain.x_ints, qx, chain.x, np.int64(factor),
            q_factor, None, bits, b_name=chain.constant("factor", factor, 16))
        gate, t_gate = self.sigmoid(chain, scaled, q_scaled, t_scaled, bits)
        return self.product(chain, self.output_quantizer, None, chain.x_ints, qx, chain.x, gate,
                            bits - 1, t_gate, bits)

    def surrogate(self, x):
        scaled = self.scale_quantizer.quantize(GELU_FACTOR * x, int(self.scale_quantizer.exponent))
        return x * torch.sigmoid(scaled)
