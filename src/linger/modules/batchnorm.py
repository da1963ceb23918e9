"""BatchNorm: folded into the conv/linear before it, or standalone as ``BatchNorm2dInt``.

Both use the running statistics (frozen at init: the float model's), while gamma and beta
keep training: ``y = x * alpha + beta'`` with ``alpha = gamma / sqrt(var + eps)`` and
``beta' = beta - mean * alpha``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from linger.errors import LingerUnsupportedError
from linger.modules.base import WeightedLayer


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, beta') of a BatchNorm in eval form."""
    if bn.running_var is None or bn.running_mean is None:
        raise LingerUnsupportedError(
            f"BatchNorm '{getattr(bn, 'linger_path', '')}' has no running statistics "
            "(track_running_stats=False); linger needs them to quantize it")
    inv_std = torch.rsqrt(bn.running_var + bn.eps)
    alpha = inv_std if bn.weight is None else bn.weight * inv_std
    shift = -bn.running_mean * alpha
    beta = shift if bn.bias is None else bn.bias + shift
    return alpha, beta


class _QBatchNorm(WeightedLayer):
    onnx_op = "BatchNorm2dInt"

    def float_params(self):
        return bn_affine(self)

    def accumulate(self, x, w):
        return x * w.reshape((1, -1) + (1,) * (x.dim() - 2))


class QBatchNorm1d(_QBatchNorm, nn.BatchNorm1d):
    pass


class QBatchNorm2d(_QBatchNorm, nn.BatchNorm2d):
    pass


class _FoldedBatchNorm:
    """A BatchNorm folded into the layer before it: that layer reads these parameters; this
    module only keeps them at their place in the state dict and passes its input through."""

    def forward(self, x):
        return x


class FoldedBatchNorm1d(_FoldedBatchNorm, nn.BatchNorm1d):
    pass


class FoldedBatchNorm2d(_FoldedBatchNorm, nn.BatchNorm2d):
    pass
