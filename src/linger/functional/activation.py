"""ReLU, ReLU6 / hardtanh / clamp (-> Clip on the stored integers) and dropout: the exponent
passes through."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import recorder
from linger.functional.common import storage, unsupported
from linger.location import current_location
from linger.qtensor import QTensor, handles
from thinker import qmath

T = torch.Tensor


@handles(F.relu, torch.relu, T.relu, F.relu_, torch.relu_, T.relu_)
def relu(x: QTensor, inplace: bool = False) -> QTensor:
    out = x.like(torch.relu(x.plain))
    recorder.record("Relu", [x], out)
    return out


def clip(x: QTensor, low: float | None, high: float | None) -> QTensor:
    """Clamp to [low, high] (real values). The bounds become integers at x's exponent, as the
    Clip op compares stored integers: ceil(low * 2**q), floor(high * 2**q)."""
    lo_int, hi_int = qmath.int_range(x.bits)
    scale = 2.0 ** x.exponent
    if low is not None:
        lo_int = max(lo_int, math.ceil(low * scale))
    if high is not None:
        hi_int = min(hi_int, math.floor(high * scale))
    out = x.like(torch.clamp(x.plain, lo_int / scale, hi_int / scale))
    if recorder.active() is not None:
        where = current_location()
        bounds = [recorder.constant(f"{where}.{side}", np.array(v, dtype=storage(x.bits)))
                  for side, v in (("min", lo_int), ("max", hi_int))]
        recorder.record("Clip", [x, *bounds], out)
    return out


@handles(F.hardtanh, F.hardtanh_)
def hardtanh(x: QTensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    return clip(x, min_val, max_val)


@handles(F.relu6)
def relu6(x: QTensor, inplace: bool = False) -> QTensor:
    return clip(x, 0.0, 6.0)


@handles(torch.clamp, torch.clip, T.clamp, T.clip, T.clamp_, T.clip_, torch.clamp_)
def clamp(x: QTensor, min=None, max=None) -> QTensor:
    if isinstance(min, torch.Tensor) or isinstance(max, torch.Tensor):
        raise unsupported("clamp with tensor bounds")
    return clip(x, min, max)


@handles(F.dropout, F.dropout1d, F.dropout2d)
def dropout(x: QTensor, p: float = 0.5, training: bool = True, inplace: bool = False):
    if not training or p == 0:
        return x
    return QTensor.wrap(F.dropout(x.plain, p, True), x.exponent, x.bits, exact=False)
