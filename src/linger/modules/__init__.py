"""Quantized modules and the tables that map float modules onto them."""

from __future__ import annotations

import torch.nn as nn

from linger.modules.arith import QAdd, QMul, QSub
from linger.modules.attention import QMultiheadAttention
from linger.modules.base import QuantizedLayer, WeightedLayer
from linger.modules.batchnorm import (
    FoldedBatchNorm1d,
    FoldedBatchNorm2d,
    QBatchNorm1d,
    QBatchNorm2d,
)
from linger.modules.composite import QGELU, QHardsigmoid, QHardswish, QSiLU
from linger.modules.conv import QConv1d, QConv2d, QConvTranspose2d
from linger.modules.embedding import QEmbedding
from linger.modules.io import FloatIsland, ModelOutputs, QInput, finish_outputs
from linger.modules.layernorm import QLayerNorm
from linger.modules.linear import QLinear
from linger.modules.nonlinear import (
    QGLU,
    QLogSoftmax,
    QSigmoid,
    QSoftmax,
    QTanh,
)
from linger.modules.prelu import QPReLU
from linger.modules.reduce import QSum  # noqa: F401 (registers sum/mean/var)
from linger.modules.rnn import QGRU, QLSTM, QGRUCell, QLSTMCell, RecurrentLayer

# float module type -> its quantized class (the quantized class subclasses the float one)
QUANTIZED = {
    nn.Conv1d: QConv1d,
    nn.Conv2d: QConv2d,
    nn.ConvTranspose2d: QConvTranspose2d,
    nn.Linear: QLinear,
    nn.BatchNorm1d: QBatchNorm1d,
    nn.BatchNorm2d: QBatchNorm2d,
    nn.Sigmoid: QSigmoid,
    nn.Tanh: QTanh,
    nn.Softmax: QSoftmax,
    nn.LogSoftmax: QLogSoftmax,
    nn.LayerNorm: QLayerNorm,
    nn.MultiheadAttention: QMultiheadAttention,
    nn.GLU: QGLU,
    nn.PReLU: QPReLU,
    nn.Embedding: QEmbedding,
    nn.Hardsigmoid: QHardsigmoid,
    nn.Hardswish: QHardswish,
    nn.SiLU: QSiLU,
    nn.GELU: QGELU,
    nn.GRU: QGRU,
    nn.LSTM: QLSTM,
    nn.GRUCell: QGRUCell,
    nn.LSTMCell: QLSTMCell,
}
FOLDED_BN = {nn.BatchNorm1d: FoldedBatchNorm1d, nn.BatchNorm2d: FoldedBatchNorm2d}
FOLDS_BN = (nn.Conv1d, nn.Conv2d, nn.Linear)
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)

# modules without state whose functional calls linger implements on quantized tensors
STATELESS = (
    nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Flatten, nn.Unflatten, nn.Identity, nn.ZeroPad1d, nn.ZeroPad2d, nn.ConstantPad1d,
    nn.ConstantPad2d, nn.Upsample, nn.UpsamplingNearest2d,
)


def is_linger_class(cls: type) -> bool:
    """A module class defined by linger itself (constrained or quantized)."""
    return cls.__module__.startswith(("linger.modules", "linger.constrain"))


def float_type(module: nn.Module) -> type | None:
    """The torch.nn class a module quantizes as: its own class, or the base class of a linger
    (constrained) module. Other subclasses may change forward(), so they do not count."""
    cls = type(module)
    for base in QUANTIZED:
        if cls is base or (issubclass(cls, base) and is_linger_class(cls)):
            return base
    return None


def type_name(module: nn.Module) -> str:
    base = float_type(module)
    return (base or type(module)).__name__


__all__ = [
    "CONVOLUTIONS", "FOLDED_BN", "FOLDS_BN", "QUANTIZED", "STATELESS", "FloatIsland",
    "FoldedBatchNorm1d", "FoldedBatchNorm2d", "ModelOutputs", "QAdd", "QBatchNorm1d",
    "QBatchNorm2d", "QConv1d", "QConv2d", "QConvTranspose2d", "QInput", "QLinear", "QMul", "QSub",
    "QuantizedLayer", "WeightedLayer", "finish_outputs", "float_type", "is_linger_class",
    "type_name",
]
__all__ += [
    "QGLU", "QGRU", "QLSTM", "QEmbedding", "QGRUCell", "QLSTMCell", "QLayerNorm", "QLogSoftmax",
    "QMultiheadAttention", "QPReLU", "QSigmoid", "QSoftmax", "QTanh", "RecurrentLayer",
]
