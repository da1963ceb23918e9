"""Nearest upsampling by integer factors (``nn.Upsample``, ``F.interpolate(mode="nearest")``):
ONNX ``Resize`` (asymmetric coordinates, floor), every output element a copy of input element
``floor(i / s)`` per axis, so values and exponent pass through unchanged."""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import recorder
from linger.functional.common import unsupported
from linger.location import current_location
from linger.qtensor import QTensor, handles

ALTERNATIVE = ("use nearest upsampling by an integer factor, e.g. "
               "nn.Upsample(scale_factor=2, mode='nearest')")


def _factors(x: QTensor, size, scale_factor) -> list[int]:
    spatial = list(x.shape[2:])
    n = len(spatial)
    if n == 0:
        raise unsupported(f"interpolating a {x.dim()}-D tensor (needs [N, C, ...])")
    if size is not None:
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * n
        if len(sizes) != n or any(int(s) % d for s, d in zip(sizes, spatial, strict=True)):
            raise unsupported(f"interpolate from {spatial} to size {list(sizes)} (not an integer "
                              f"multiple); {ALTERNATIVE}")
        return [int(s) // d for s, d in zip(sizes, spatial, strict=True)]
    if scale_factor is None:
        raise unsupported("interpolate without size or scale_factor")
    scales = list(scale_factor) if isinstance(scale_factor, (list, tuple)) else [scale_factor] * n
    if len(scales) != n or any(not math.isfinite(float(s)) or float(s) < 1
                               or float(s) != int(s) for s in scales):
        raise unsupported(f"interpolate with scale_factor {scale_factor} (not an integer >= 1); "
                          f"{ALTERNATIVE}")
    return [int(s) for s in scales]


@handles(F.interpolate, F.upsample, F.upsample_nearest)
def interpolate(x: QTensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners=None, recompute_scale_factor=None, antialias: bool = False,
                ) -> QTensor:
    if mode not in ("nearest", "nearest-exact") or align_corners or antialias:
        raise unsupported(f"interpolate with mode '{mode}'"
                          f"{' and align_corners' if align_corners else ''}; {ALTERNATIVE}")
    factors = _factors(x, size, scale_factor)
    values = x.plain
    for axis, f in enumerate(factors, start=2):  # element i copies floor(i / f): exact
        if f > 1:
            values = values.repeat_interleave(f, dim=axis)
    out = x.like(values)
    if recorder.active() is not None:
        scales = recorder.constant(f"{current_location()}.scales",
                                   np.array([1.0, 1.0, *factors], dtype=np.float32))
        recorder.record("Resize", [x, "", scales], out, mode="nearest",
                        coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return out

