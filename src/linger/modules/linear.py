"""Quantized Linear (``LinearInt``, weight [out, in]), optionally with a folded BatchNorm1d."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger.modules.base import WeightedLayer
from linger.modules.batchnorm import bn_affine
from linger.modules.conv import clamp_weight


class QLinear(WeightedLayer, nn.Linear):
    onnx_op = "LinearInt"
    channel_axis = -1

    def float_params(self):
        w = clamp_weight(self.weight, getattr(self, "linger_weight_clamp", None))
        b = self.bias
        bn = self.__dict__.get("linger_folded_bn")
        if bn is not None:
            alpha, beta = bn_affine(bn)
            w = w * alpha.reshape(-1, 1)
            b = beta if b is None else b * alpha + beta
        return w, b

    def accumulate(self, x, w):
        return F.linear(x, w)
