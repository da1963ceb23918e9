"""AvgPool2dInt and MaxPool over NCHW (or NCL) integer tensors.

AvgPool2dInt: integer window sum, then ``round_half_up(sum * 2**(qo - qx) / divisor)`` as an
exact rational rounding (qmath.rescale_div), saturated to ``o_bits``. The divisor follows
PyTorch's avg_pool2d: with ``count_include_pad`` (default) padding counts, but a ceil_mode window
reaching past the padded input is clipped; ``divisor_override`` > 0 replaces it.
"""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.base import Op, exponent, int_dtype, magnitude_bound, register, spec
from thinker.ops.host_kernels import host_mean
from thinker.ops.rounding import node_round_mode

POOL_ATTRS = {
    "kernel_shape": None, "strides": None, "pads": None, "ceil_mode": 0, "dilations": None,
}


def pool_out_len(size: int, k: int, s: int, p0: int, p1: int, d: int, ceil: bool) -> int:
    """PyTorch/ONNX pooled length; in ceil mode the last window must start inside the input or
    its left padding."""
    span = size + p0 + p1 - d * (k - 1) - 1
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p0:
        out -= 1
    return out


class PoolGeometry:
    def __init__(self, node: Node, x: Tensor):
        if len(x.shape) not in (3, 4):
            raise ThinkerModelError(
                f"{node.label()}: expects a 3-D or 4-D input, got {x.describe()}"
            )
        spatial = x.shape[2:]
        n = len(spatial)
        k = node.attrs.get("kernel_shape")
        self.kernel = tuple(spatial) if k is None else tuple(int(v) for v in k)
        s = node.attrs.get("strides")
        self.strides = self.kernel if s is None else tuple(int(v) for v in s)
        p = node.attrs.get("pads")
        self.pads = (0,) * (2 * n) if p is None else tuple(int(v) for v in p)
        dil = node.attrs.get("dilations")
        self.dilations = (1,) * n if dil is None else tuple(int(v) for v in dil)
        self.ceil = bool(int(node.attrs.get("ceil_mode", 0)))
        if not (len(self.kernel) == len(self.strides) == len(self.dilations) == n
                and len(self.pads) == 2 * n):
            raise ThinkerModelError(
                f"{node.label()}: pooling geometry (kernel {list(self.kernel)}, strides "
                f"{list(self.strides)}, pads {list(self.pads)}) does not match a {n}-D input"
            )
        self.out = tuple(
            pool_out_len(spatial[i], self.kernel[i], self.strides[i], self.pads[i],
                         self.pads[i + n], self.dilations[i], self.ceil)
            for i in range(n)
        )
        if min(self.out) < 1:
            raise ThinkerModelError(f"{node.label()}: pooled output would be empty {self.out}")

    def padded(self, x: np.ndarray, fill) -> np.ndarray:
        """Pad so every (possibly ceil-mode) window is inside the array."""
        n = len(self.kernel)
        widths = [(0, 0), (0, 0)]
        for i in range(n):
            span = self.dilations[i] * (self.kernel[i] - 1) + 1
            need = (self.out[i] - 1) * self.strides[i] + span
            before = self.pads[i]
            after = max(need - x.shape[2 + i] - before, 0)
            widths.append((before, after))
        return np.pad(x, widths, constant_values=fill)

    def windows(self, xp: np.ndarray):
        """Yield, for each kernel offset, the strided view of the values it covers."""
        if len(self.kernel) == 1:
            (k,), (s,), (d,), (o,) = self.kernel, self.strides, self.dilations, self.out
            for j in range(k):
                yield xp[:, :, j * d: j * d + s * (o - 1) + 1: s]
            return
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = (self.kernel, self.strides, self.dilations,
                                                  self.out)
        for i in range(kh):
            for j in range(kw):
                yield xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                         j * dw: j * dw + sw * (ow - 1) + 1: sw]

    def divisor(self, in_spatial, count_include_pad: bool) -> np.ndarray:
        """Per-output-position divisor, PyTorch's avg_pool rule."""
        n = len(self.kernel)
        per_axis = []
        for i in range(n):
            start = np.arange(self.out[i]) * self.strides[i] - self.pads[i]
            end = np.minimum(start + self.kernel[i], in_spatial[i] + self.pads[i + n])
            if count_include_pad:
                per_axis.append(end - start)
            else:
                per_axis.append(np.minimum(end, in_spatial[i]) - np.maximum(start, 0))
        div = per_axis[0] if n == 1 else np.multiply.outer(per_axis[0], per_axis[1])
        return div.astype(np.int64)


@register
class AvgPool2dInt(Op):
    op_type = "AvgPool2dInt"
    attrs = {
        **POOL_ATTRS, "scale_x": None, "scale_o": None, "data_bits": 8, "o_bits": None,
        "count_include_pad": 1, "divisor_override": -1, "quant_mode": None,
    }

    def _exponents(self, node: Node) -> tuple[int, int]:
        qx = exponent(node, "scale_x")
        qo = exponent(node, "scale_o") if node.attrs.get("scale_o") is not None else qx
        return qx, qo

    def _bits(self, node: Node) -> int:
        bits = node.attrs.get("o_bits")
        return int(node.attrs.get("data_bits", 8) if bits is None else bits)

    def infer(self, node, ins):
        g = PoolGeometry(node, ins[0])
        _, qo = self._exponents(node)
        return [spec((*ins[0].shape[:2], *g.out), int_dtype(node, self._bits(node)), qo)]

    def macs(self, node, ins, outs):
        g = PoolGeometry(node, ins[0])
        return int(np.prod(outs[0].shape)) * int(np.prod(g.kernel))

    def prepare(self, node, ins, outs):
        x = ins[0]
        g = PoolGeometry(node, x)
        qx, qo = self._exponents(node)
        bits, dtype = self._bits(node), outs[0].dtype
        override = int(node.attrs.get("divisor_override", -1) or -1)
        if override > 0:
            divisor = np.full(g.out, override, dtype=np.int64)
        else:
            divisor = g.divisor(x.shape[2:], bool(int(node.attrs.get("count_include_pad", 1))))
        shift = qx - qo
        uniform = int(divisor.flat[0]) if np.all(divisor == divisor.flat[0]) else None
        pow2 = uniform is not None and uniform & (uniform - 1) == 0
        global_pool = tuple(g.kernel) == tuple(x.shape[2:]) and not any(g.pads)
        mode = node_round_mode(node)

        spatial = int(np.prod(x.shape[2:]))
        # a global sum in float32 is exact while every partial sum stays below 2**24
        float_sum = global_pool and np.issubdtype(x.dtype, np.integer) and \
            magnitude_bound(x.dtype) * spatial < 1 << 24
        ones = np.ones(spatial, np.float32)
        compiled = host_mean(x.dtype, spatial, uniform, shift, bits, dtype) \
            if global_pool and uniform is not None and mode == qmath.DEFAULT_ROUND_MODE else None

        def run(xv, *_):
            if compiled is not None:
                return (compiled(xv),)
            if float_sum:  # one GEMV over (rows, pixels) in the input's memory order: numpy's
                # integer reductions over short rows cost ~20 ns a row (3-6x slower)
                lead = xv.shape[:2]
                swap = xv.strides[0] < xv.strides[1]  # (C, N, ...) memory: conv outputs
                rows = (xv.swapaxes(0, 1) if swap else xv).reshape(-1, spatial)
                total = np.matmul(rows.astype(np.float32), ones)
                total = total.reshape(lead[::-1] if swap else lead)
                total = (total.T if swap else total).astype(np.int64)
                total = total.reshape(*lead, *(1,) * (xv.ndim - 2))
            elif global_pool:
                total = xv.sum(axis=tuple(range(2, xv.ndim)), dtype=np.int64, keepdims=True)
            else:
                total = None
                for win in g.windows(g.padded(xv.astype(np.int32), 0)):
                    total = win.astype(np.int64) if total is None else total + win
            if pow2:  # window of 2**k: the same rounding as one rshift_round by k more bits
                y = qmath.rescale_mode(total, shift + uniform.bit_length() - 1, bits, mode)
            else:
                y = qmath.rescale_div_mode(total, shift, divisor, bits, mode)
            return (y.astype(dtype),)

        run.host = compiled  # thinker.runtime.host_chain
        return run


@register
class MaxPool(Op):
    """ONNX MaxPool on integers (padding never wins: it is the dtype's minimum)."""

    op_type = "MaxPool"
    attrs = {**POOL_ATTRS, "storage_order": 0, "auto_pad": "NOTSET"}

    def infer(self, node, ins):
        if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
            raise ThinkerModelError(
                f"{node.label()}: auto_pad is not supported; give explicit pads"
            )
        g = PoolGeometry(node, ins[0])
        return [spec((*ins[0].shape[:2], *g.out), ins[0].dtype, ins[0].exponent)]

    def prepare(self, node, ins, outs):
        g = PoolGeometry(node, ins[0])
        dtype = ins[0].dtype
        low = np.iinfo(dtype).min if np.issubdtype(dtype, np.integer) else -np.inf

        def run(xv, *_):
            out = None
            for win in g.windows(g.padded(xv, low)):
                out = win.copy() if out is None else np.maximum(out, win, out=out)
            return (out,)

        return run
