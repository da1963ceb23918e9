"""Quantized PReLU (``PRelu``): x >= 0 keeps its integer, x < 0 becomes
``rshift_round(x * slope, qw)``; the output stays at the input's exponent and bits.

The slope (1 or C values) is an integer at ``scale_w`` (``weight_bits``, round half to even),
shaped to broadcast on the channel axis (axis 1, or 0 for a 1-D input). Training runs the same
kernel on the training values' integers; the gradient flows through ``F.prelu`` with the
fake-quantized slope (straight-through)."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger.config import LayerSettings
from linger.fakequant import fake_quantize_weight, weight_exponent
from linger.functional.nonlinear import Constant, compute
from linger.modules.base import QuantizedLayer
from linger.qtensor import require_qtensor
from thinker import qmath


class QPReLU(QuantizedLayer, nn.PReLU):
    onnx_op = "PRelu"

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        self.linger_path, self.linger_settings = path, settings

    def slope_shape(self, rank: int) -> tuple[int, ...]:
        channels = self.weight.numel()
        if channels == 1 or rank < 2:
            return (channels,)
        return (channels,) + (1,) * (rank - 2)

    def forward(self, x):
        x = require_qtensor(x, f"PReLU '{self.linger_path}'")
        bits = self.linger_settings.weight_bits
        w = self.weight
        qw = weight_exponent(float(w.detach().abs().max()), bits)
        w_int = qmath.quantize_weight(w.detach().numpy(), qw, bits).reshape(
            self.slope_shape(x.dim())).astype(qmath.storage_dtype(bits))
        slope = Constant(f"{self.linger_path}.weight", w_int)
        return compute("PRelu", [x, slope], {"scale_x": 2.0 ** x.exponent, "scale_w": 2.0 ** qw},
                       bits=x.bits, exact=self.exact_mode(), exponent=x.exponent,
                       reference=lambda: F.prelu(x.plain, fake_quantize_weight(w, qw, bits)),
                       hint=self.linger_path)
