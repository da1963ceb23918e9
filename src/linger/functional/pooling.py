"""Max and average pooling (adaptive ones included) at the input's exponent.

Average pooling is exact in eval: integer window sums, divided with round-half-up
(``qmath.rescale_div``), the divisor following PyTorch's rule, exactly as AvgPool2dInt.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import recorder
from linger.fakequant import fake_quantize
from linger.functional.common import ints_of, unsupported
from linger.qtensor import QTensor, handles
from thinker import qmath


@handles(F.max_pool1d, F.max_pool2d, torch.max_pool1d, torch.max_pool2d)
def max_pool(x: QTensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False) -> QTensor:
    if return_indices:
        raise unsupported("max pooling with return_indices")
    n = x.dim() - 2
    kernel = ints_of(kernel_size, n)
    strides = kernel if stride is None or stride == [] else ints_of(stride, n)
    pads, dilations = ints_of(padding, n), ints_of(dilation, n)
    pool = F.max_pool1d if n == 1 else F.max_pool2d
    out = x.like(pool(x.plain, kernel, strides, pads, dilations, ceil_mode=ceil_mode))
    recorder.record("MaxPool", [x], out, kernel_shape=list(kernel), strides=list(strides),
                    pads=list(pads) * 2, dilations=list(dilations), ceil_mode=int(ceil_mode))
    return out


def avg_pool(x: QTensor, kernel: tuple[int, ...], strides: tuple[int, ...],
             pads: tuple[int, ...], ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None) -> QTensor:
    """Average pooling at the input's exponent: integer window sums divided with
    round-half-up (``qmath.rescale_div``), the divisor following PyTorch's rule."""
    n = len(kernel)
    if x.dim() != n + 2 or n not in (1, 2):
        raise unsupported(f"{n}-D average pooling of a {x.dim()}-D tensor")
    as2d = (lambda t: t.unsqueeze(2)) if n == 1 else (lambda t: t)
    k2, s2, p2 = ((1, *kernel), (1, *strides), (0, *pads)) if n == 1 else (kernel, strides, pads)

    def pool(t, divisor=None):
        y = F.avg_pool2d(as2d(t), k2, s2, p2, ceil_mode, count_include_pad, divisor)
        return y.squeeze(2) if n == 1 else y

    if x.exact:
        sums = pool(torch.from_numpy(x.ints()).double(), 1)  # exact: small-integer sums
        if divisor_override:
            divisors = np.int64(divisor_override)
        else:
            ones = torch.ones((1, 1, *x.shape[2:]), dtype=torch.float64)
            divisors = torch.round(pool(ones, 1) / pool(ones)).numpy().astype(np.int64)
        ints = qmath.rescale_div(sums.numpy().astype(np.int64), 0, divisors, x.bits)
        out = QTensor.from_ints(ints, x.exponent, x.bits)
    else:
        out = x.like(fake_quantize(pool(x.plain, divisor_override), x.exponent, x.bits))
    recorder.record("AvgPool2dInt", [x], out, kernel_shape=list(kernel), strides=list(strides),
                    pads=list(pads) * 2, ceil_mode=int(ceil_mode),
                    count_include_pad=int(count_include_pad), divisor_override=divisor_override,
                    scale_x=2.0 ** x.exponent, scale_o=2.0 ** x.exponent, data_bits=x.bits,
                    o_bits=x.bits)
    return out


@handles(F.avg_pool1d, F.avg_pool2d)
def avg_pool_nd(x: QTensor, kernel_size, stride=None, padding=0, ceil_mode=False,
                count_include_pad=True, divisor_override=None) -> QTensor:
    n = x.dim() - 2
    kernel = ints_of(kernel_size, n)
    strides = kernel if stride is None or stride == [] else ints_of(stride, n)
    return avg_pool(x, kernel, strides, ints_of(padding, n), bool(ceil_mode),
                    bool(count_include_pad), divisor_override)


@handles(F.adaptive_avg_pool1d, F.adaptive_avg_pool2d)
def adaptive_avg_pool(x: QTensor, output_size) -> QTensor:
    n = x.dim() - 2
    sizes = x.shape[2:]
    wanted = ints_of(output_size, n) if output_size is not None else tuple(sizes)
    wanted = tuple(s if w is None else w for s, w in zip(sizes, wanted, strict=True))
    if any(s % w for s, w in zip(sizes, wanted, strict=True)):
        raise unsupported(f"adaptive average pooling from {list(sizes)} to {list(wanted)} "
                           "(sizes must divide)")
    kernel = tuple(s // w for s, w in zip(sizes, wanted, strict=True))
    return avg_pool(x, kernel, kernel, (0,) * n)
