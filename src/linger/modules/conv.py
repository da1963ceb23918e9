"""Quantized Conv1d, Conv2d (groups, depthwise, dilation) and ConvTranspose2d; Conv1d/Conv2d
may carry a folded BatchNorm."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger.errors import LingerUnsupportedError
from linger.modules.base import WeightedLayer
from linger.modules.batchnorm import bn_affine


def conv_pads(module: nn.Module) -> list[int]:
    """ONNX pads [begin..., end...] of a conv module (``padding='same'`` included: torch puts
    the odd pixel at the end)."""
    n = len(module.kernel_size)
    if module.padding == "valid":
        return [0] * (2 * n)
    if module.padding == "same":
        totals = [d * (k - 1) for k, d in zip(module.kernel_size, module.dilation, strict=True)]
        return [t // 2 for t in totals] + [t - t // 2 for t in totals]
    return list(module.padding) * 2


def clamp_weight(w: torch.Tensor, factor: float | None) -> torch.Tensor:
    """constrain's weight clamp: |w| <= factor * mean|w| (the bound is not trained)."""
    if not factor:
        return w
    bound = factor * w.detach().abs().mean()
    return torch.clamp(w, -bound, bound)


class _QConv(WeightedLayer):
    def linger_check(self) -> None:
        if self.padding_mode != "zeros":
            raise LingerUnsupportedError(
                f"{type(self).__name__} '{self.linger_path}': padding_mode "
                f"'{self.padding_mode}' is not supported; use 'zeros'")

    def float_params(self):
        w = clamp_weight(self.weight, getattr(self, "linger_weight_clamp", None))
        b = self.bias
        bn = self.__dict__.get("linger_folded_bn")
        if bn is not None:
            alpha, beta = bn_affine(bn)
            w = w * alpha.reshape((-1,) + (1,) * (w.dim() - 1))
            b = beta if b is None else b * alpha + beta
        return w, b

    def onnx_attrs(self) -> dict:
        return {"kernel_shape": list(self.kernel_size), "strides": list(self.stride),
                "pads": conv_pads(self), "dilations": list(self.dilation),
                "group": self.groups}


class QConv1d(_QConv, nn.Conv1d):
    onnx_op = "Conv1dInt"

    def accumulate(self, x, w):
        return F.conv1d(x, w, None, self.stride, self.padding, self.dilation, self.groups)


class QConv2d(_QConv, nn.Conv2d):
    onnx_op = "Conv2dInt"

    def accumulate(self, x, w):
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)


class QConvTranspose2d(_QConv, nn.ConvTranspose2d):
    onnx_op = "ConvTranspose2dInt"

    def float_params(self):
        return clamp_weight(self.weight, getattr(self, "linger_weight_clamp", None)), self.bias

    def accumulate(self, x, w):
        return F.conv_transpose2d(x, w, None, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)

    def onnx_attrs(self) -> dict:
        return {**super().onnx_attrs(), "output_padding": list(self.output_padding)}
