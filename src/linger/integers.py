"""What every op that runs its integer kernel in training shares: the integers a quantized
tensor holds, their values, the platform attribute, and the straight-through join of an
integer result with a float surrogate's gradient (so QAT trains with exactly what the
executor computes)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from linger.errors import LingerConfigError
from linger.qtensor import QTensor
from thinker import qmath
from thinker.errors import ThinkerError
from thinker.nonlinear.tables import DEFAULT_PLATFORM, family_of


def grid_ints(x: QTensor) -> np.ndarray:
    """The integers of ``x`` at its exponent (int64), in eval and in training. Training values
    lie on the grid (every op quantizes its output); anything else (dropout's scaling) is
    rounded half up and saturated, the quantizer's rule."""
    if x.exact:
        return x.ints()
    scaled = x.plain.detach().double() * math.ldexp(1.0, x.exponent)
    return qmath.quantize(scaled.numpy(), 0, x.bits).astype(np.int64)


def values_of(ints: np.ndarray, q: int) -> torch.Tensor:
    """float32 ``ints / 2**q`` (exact for 8- and 16-bit integers)."""
    return torch.from_numpy(np.asarray(qmath.dequantize(ints, q)))


class _StraightThrough(torch.autograd.Function):
    """Forward: exactly ``values``. Backward: the gradient goes to ``surrogate``."""

    @staticmethod
    def forward(ctx, surrogate, values):
        return values.to(dtype=surrogate.dtype, copy=True)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def straight_through(surrogate: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` (bit for bit, unlike ``s + (v - s).detach()`` in float) with the gradient of
    ``surrogate``."""
    return _StraightThrough.apply(surrogate, values)


def platform_name(platform: str | None) -> str:
    """The ``platform`` attribute of platform-dependent nodes: the config's platform name (a
    device file gives its profile's name), ``venus`` when unset. Refuses platforms without
    non-linear kernels."""
    if platform is None:
        return DEFAULT_PLATFORM
    name = str(platform)
    if name.endswith(".toml") or os.path.sep in name:
        from linger.platforms import profile

        name = profile(name).name
    try:
        family_of(name)
    except ThinkerError as exc:
        raise LingerConfigError(f"platform: {exc}") from None
    return name
