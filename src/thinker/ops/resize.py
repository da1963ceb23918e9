"""Resize, nearest neighbour with integer upsampling factors (``nn.Upsample``,
``F.interpolate(mode="nearest")``): every output element copies input element
``floor(i / s)`` per axis, so values and exponent are unchanged.

Accepted coordinate modes are those for which nearest sampling at an integer factor is exactly
``floor(i / s)``: ``asymmetric`` with ``nearest_mode=floor`` (what PyTorch exports) and
``half_pixel`` / ``pytorch_half_pixel`` with ``round_prefer_floor`` or ``round_prefer_ceil``.
Inputs follow ONNX: X, roi, scales, sizes (opset >= 11) or X, scales (opset 10).
"""

from __future__ import annotations

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.ops.base import Op, register, spec

EXACT_MODES = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
               ("half_pixel", "round_prefer_ceil"), ("pytorch_half_pixel", "round_prefer_floor"),
               ("pytorch_half_pixel", "round_prefer_ceil")}


def _constant(ins, index):
    if index < len(ins) and ins[index] is not None and ins[index].data is not None \
            and ins[index].data.size:
        return ins[index].data
    return None


def resize_factors(node, ins) -> tuple[int, ...]:
    """Integer factor per axis (1 on axes that keep their size)."""
    x = ins[0]
    mode = str(node.attrs.get("mode", "nearest"))
    coord = str(node.attrs.get("coordinate_transformation_mode", "half_pixel"))
    nearest = str(node.attrs.get("nearest_mode", "round_prefer_floor"))
    if mode != "nearest" or (coord, nearest) not in EXACT_MODES:
        raise ThinkerModelError(
            f"{node.label()}: Resize mode={mode}, coordinate_transformation_mode={coord}, "
            f"nearest_mode={nearest} is not supported; use nearest upsampling by an integer factor "
            "(PyTorch: nn.Upsample(scale_factor=2, mode='nearest'))")
    scales, sizes = (_constant(ins, 1), _constant(ins, 2)) if len(ins) <= 2 else \
        (_constant(ins, 2), _constant(ins, 3))
    if 0 in x.shape:
        raise ThinkerModelError(f"{node.label()}: input {x.describe()} is empty")
    if sizes is not None:
        if len(sizes) != len(x.shape):
            raise ThinkerModelError(
                f"{node.label()}: sizes {list(sizes)} must give one size per axis of "
                f"{x.describe()}")
        ratios = [int(s) / d for s, d in zip(sizes, x.shape, strict=True)]
    elif scales is not None:
        ratios = [float(s) for s in scales]
    else:
        raise ThinkerModelError(f"{node.label()}: Resize needs constant scales or sizes")
    if len(ratios) != len(x.shape) or any(r < 1 or r != int(r) for r in ratios) or ratios[0] != 1:
        raise ThinkerModelError(
            f"{node.label()}: scales {ratios} must be integers >= 1, one per axis of "
            f"{x.describe()}, with 1 on the batch axis")
    return tuple(int(r) for r in ratios)


@register
class Resize(Op):
    op_type = "Resize"
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
             "nearest_mode": "round_prefer_floor", "cubic_coeff_a": -0.75,
             "exclude_outside": 0, "extrapolation_value": 0.0}
    min_inputs, max_inputs = 2, 4
    optional_inputs = frozenset({1})  # roi (opset >= 11), e.g. Resize(x, "", scales)

    def infer(self, node, ins):
        factors = resize_factors(node, ins)
        x = ins[0]
        return [spec([d * f for d, f in zip(x.shape, factors, strict=True)], x.dtype, x.exponent)]

    def prepare(self, node, ins, outs):
        factors = resize_factors(node, ins)

        def run(x, *_):
            for axis, f in enumerate(factors):
                if f > 1:
                    x = np.repeat(x, f, axis=axis)
            return (x,)

        return run
