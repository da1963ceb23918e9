"""Stage 1: ``linger.constrain`` keeps weights and activations in ranges that quantize well.

Weights of Conv/ConvTranspose/Linear are clamped to ``clamp_factor_value * mean|w|``;
activations to ``±clamp_activation_value`` at the output of each such layer, or of the
BatchNorm that follows it. The constrained classes subclass the torch.nn ones and add no
state, so checkpoints move freely between float, constrained and quantized models.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import trace
from linger.config import Config, load_config
from linger.errors import LingerError
from linger.modules import float_type, type_name
from linger.modules.conv import clamp_weight


class Constrained:
    """Mixin: clamped weight, clamped output."""

    linger_weight_clamp: float | None = None
    linger_output_clamp: float | None = None

    def clamped_weight(self) -> torch.Tensor:
        return clamp_weight(self.weight, self.linger_weight_clamp)

    def clamp_output(self, y: torch.Tensor) -> torch.Tensor:
        v = self.linger_output_clamp
        return y if not v else torch.clamp(y, -v, v)


class CConv1d(Constrained, nn.Conv1d):
    def forward(self, x):
        return self.clamp_output(self._conv_forward(x, self.clamped_weight(), self.bias))


class CConv2d(Constrained, nn.Conv2d):
    def forward(self, x):
        return self.clamp_output(self._conv_forward(x, self.clamped_weight(), self.bias))


class CConvTranspose2d(Constrained, nn.ConvTranspose2d):
    def forward(self, x, output_size=None):
        output_padding = self._output_padding(x, output_size, self.stride, self.padding,
                                              self.kernel_size, 2, self.dilation)
        y = F.conv_transpose2d(x, self.clamped_weight(), self.bias, self.stride, self.padding,
                               output_padding, self.groups, self.dilation)
        return self.clamp_output(y)


class CLinear(Constrained, nn.Linear):
    def forward(self, x):
        return self.clamp_output(F.linear(x, self.clamped_weight(), self.bias))


class CBatchNorm1d(Constrained, nn.BatchNorm1d):
    def forward(self, x):
        return self.clamp_output(super().forward(x))


class CBatchNorm2d(Constrained, nn.BatchNorm2d):
    def forward(self, x):
        return self.clamp_output(super().forward(x))


CONSTRAINED = {
    nn.Conv1d: CConv1d, nn.Conv2d: CConv2d, nn.ConvTranspose2d: CConvTranspose2d,
    nn.Linear: CLinear, nn.BatchNorm1d: CBatchNorm1d, nn.BatchNorm2d: CBatchNorm2d,
}


def constrain(model: nn.Module, config: Config | Mapping | str | os.PathLike | None = None
              ) -> nn.Module:
    """Return a constrained copy of ``model`` (same class, same state dict keys) for float
    training; ``model`` itself is left unchanged."""
    cfg = load_config(config)
    model = copy.deepcopy(model)
    followed_by_bn = set(_bn_pairs(model, cfg))
    for path, module in model.named_modules():
        base = float_type(module)
        if base not in CONSTRAINED or cfg.is_disabled(path, type_name(module)):
            continue
        if isinstance(module, Constrained):
            raise LingerError(f"'{path}' is already constrained; constrain the float model")
        module.__class__ = CONSTRAINED[base]
        if not issubclass(base, nn.modules.batchnorm._BatchNorm):
            module.linger_weight_clamp = cfg.clamp_factor_value
        if path not in followed_by_bn:
            module.linger_output_clamp = cfg.clamp_activation_value
    return model


def _bn_pairs(model: nn.Module, cfg: Config) -> dict[str, str]:
    """Layers whose output goes straight into a BatchNorm: their clamp moves after it."""
    try:
        gm = trace.trace(model, trace.disabled_leaves(model, cfg))
    except LingerError as exc:
        warnings.warn(f"constrain: {exc}; clamping every layer output", stacklevel=3)
        return {}
    return trace.find_bn_pairs(gm, cfg)
