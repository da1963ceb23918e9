"""Conv1dInt, Conv2dInt and ConvTranspose2dInt.

Accumulator = integer convolution of int x and int w (+ int32 bias at qx + qw), then the
shared output stage (``thinker.ops.accumulate``). Computed in float BLAS where exact:
im2col by kernel-offset slices (a loop over kh*kw offsets, never over pixels or channels) and
one GEMM per group; depthwise convs as kh*kw fused multiply-adds.

Internally activations are laid out (C, N, H, W) so that im2col rows are contiguous and the GEMM
result needs no transpose; the returned tensor is an NCHW view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.accumulate import OutputStage, accumulator_output_spec
from thinker.ops.base import REQUIRED, Op, Scratch, const_input, register

CONV_ATTRS = {
    "scale_x": REQUIRED, "scale_w": REQUIRED, "scale_o": None, "o_bits": None,
    "data_bits": 8, "parameter_bits": 8, "kernel_shape": None, "strides": None,
    "pads": None, "dilations": None, "group": 1, "fused_clip": None, "act_type": 0,
}


@dataclass(frozen=True)
class Geometry2d:
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right (ONNX order)
    group: int
    output_padding: tuple[int, int] = (0, 0)

    def conv_out(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilations
        pt, pl, pb, pr = self.pads
        return ((h + pt + pb - dh * (kh - 1) - 1) // sh + 1,
                (w + pl + pr - dw * (kw - 1) - 1) // sw + 1)

    def transpose_out(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilations
        pt, pl, pb, pr = self.pads
        oh, ow = self.output_padding
        return ((h - 1) * sh + oh + dh * (kh - 1) + 1 - pt - pb,
                (w - 1) * sw + ow + dw * (kw - 1) + 1 - pl - pr)


def _ints(value, n: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * n
    return tuple(int(v) for v in value)


def geometry(node: Node, w_shape: tuple[int, ...], spatial: int) -> Geometry2d:
    """Read geometry attributes; a 1-D conv becomes a 2-D conv with height 1."""
    kernel = _ints(node.attrs.get("kernel_shape"), spatial, 0)
    if kernel != tuple(w_shape[2:]):
        if node.attrs.get("kernel_shape") is not None:
            raise ThinkerModelError(
                f"{node.label()}: kernel_shape {list(kernel)} does not match weight shape "
                f"{list(w_shape)}"
            )
        kernel = tuple(w_shape[2:])
    strides = _ints(node.attrs.get("strides"), spatial, 1)
    dilations = _ints(node.attrs.get("dilations"), spatial, 1)
    pads = _ints(node.attrs.get("pads"), 2 * spatial, 0)
    out_pad = _ints(node.attrs.get("output_padding"), spatial, 0)
    if len(pads) != 2 * spatial or len(strides) != spatial or len(dilations) != spatial:
        raise ThinkerModelError(
            f"{node.label()}: expected {spatial}-D geometry, got strides {list(strides)}, "
            f"dilations {list(dilations)}, pads {list(pads)}"
        )
    if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0:
        raise ThinkerModelError(
            f"{node.label()}: strides and dilations must be >= 1 and pads >= 0, got strides "
            f"{list(strides)}, dilations {list(dilations)}, pads {list(pads)}"
        )
    group = int(node.attrs.get("group", 1))
    if spatial == 1:
        return Geometry2d((1, kernel[0]), (1, strides[0]), (1, dilations[0]),
                          (0, pads[0], 0, pads[1]), group, (0, out_pad[0]))
    return Geometry2d(kernel, strides, dilations, pads, group, out_pad)  # type: ignore[arg-type]


def _padded_input(x: np.ndarray, g: Geometry2d, scratch: Scratch, dtype) -> np.ndarray:
    """NCHW int -> (C, N, Hp, Wp) float with zero borders (borders are never overwritten, so a
    reused buffer keeps them)."""
    n, c, h, w = x.shape
    pt, pl, pb, pr = g.pads
    xp, _ = scratch.zeros("padded", (c, n, h + pt + pb, w + pl + pr), dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x.transpose(1, 0, 2, 3)
    return xp


def _window(xp: np.ndarray, i: int, j: int, g: Geometry2d, ho: int, wo: int) -> np.ndarray:
    """The input values that kernel offset (i, j) multiplies, for every output pixel."""
    (sh, sw), (dh, dw) = g.strides, g.dilations
    return xp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]


def _columns(x: np.ndarray, g: Geometry2d, ho: int, wo: int, scratch: Scratch, dtype):
    """im2col with a trailing row of ones (it multiplies the folded bias column).

    Returns (cols [C*kh*kw + 1, P], out_grid): P output positions laid out as ``out_grid``
    (N, rows, cols), from which the kernel takes the valid [:ho, :wo] corner. For stride-1
    convs whose padding adds little, the columns are shifts of the flattened padded input:
    kh*kw contiguous copies instead of strided gathers, at the price of computing the few
    outputs that fall in the padding."""
    n, c, h, w = x.shape
    kh, kw = g.kernel
    k = c * kh * kw
    if (kh, kw) == (1, 1) and g.strides == (1, 1) and not any(g.pads):
        cols, new = scratch.zeros("cols", (k + 1, n * h * w), dtype)
        if new:
            cols[k] = 1
        cols[:k].reshape(c, n, h, w)[...] = x.transpose(1, 0, 2, 3)
        return cols, (n, h, w)
    xp = _padded_input(x, g, scratch, dtype)
    hp, wp = xp.shape[2:]
    if g.strides == (1, 1) and hp * wp <= 1.35 * ho * wo:
        flat = xp.reshape(c, n * hp * wp)
        (dh, dw) = g.dilations
        length = flat.shape[1] - ((kh - 1) * dh * wp + (kw - 1) * dw)
        cols, new = scratch.zeros("cols", (k + 1, n * hp * wp), dtype)
        if new:
            cols[k] = 1
        rows = cols[:k].reshape(c, kh * kw, n * hp * wp)
        for i in range(kh):
            for j in range(kw):
                off = i * dh * wp + j * dw
                rows[:, i * kw + j, :length] = flat[:, off: off + length]
        return cols, (n, hp, wp)
    cols, new = scratch.zeros("cols", (k + 1, n * ho * wo), dtype)
    if new:
        cols[k] = 1
    patches = cols[:k].reshape(c, kh, kw, n, ho, wo)
    for i in range(kh):
        for j in range(kw):
            patches[:, i, j] = _window(xp, i, j, g, ho, wo)
    return cols, (n, ho, wo)


def _gemm_conv_blocked(x: np.ndarray, g: Geometry2d, ho: int, wo: int, w: np.ndarray,
                      stage: OutputStage, scratch: Scratch) -> np.ndarray | None:
    """Group-1 conv as GEMMs over blocks of output positions: each block builds its columns
    (plus the ones row for the folded bias), multiplies and saturates while it is in cache.
    Works where columns are contiguous shifts: 1x1 stride-1 convs without padding, and
    stride-1 convs whose padding adds little (outputs are then computed on the padded grid and
    the valid corner returned, a view). Returns None elsewhere."""
    n, c, h, wd = x.shape
    kh, kw = g.kernel
    (dh, dw) = g.dilations
    fdt = w.dtype
    if (kh, kw) == (1, 1) and g.strides == (1, 1) and not any(g.pads):
        flat = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(c, n * h * wd)
        offsets, grid = [0], (n, h, wd)
    elif g.strides == (1, 1):
        hp, wp = h + g.pads[0] + g.pads[2], wd + g.pads[1] + g.pads[3]
        if hp * wp > 1.35 * ho * wo:
            return None
        flat = _padded_input(x, g, scratch, fdt).reshape(c, n * hp * wp)
        offsets = [i * dh * wp + j * dw for i in range(kh) for j in range(kw)]
        grid = (n, hp, wp)
    else:
        return None
    o, k = w.shape[0], c * kh * kw
    total = flat.shape[1]
    block = max(256, (1 << 18) // (k + 1))  # ~1 MiB of float32 columns per block
    cols, new = scratch.zeros("cols_block", (k + 1, block), fdt)
    if new:
        cols[k] = 1
    rows = cols[:k].reshape(c, len(offsets), block)
    acc, _ = scratch.zeros("acc_block", (o, block), fdt)
    out = np.empty((o, total), dtype=stage.out_dtype)
    for start in range(0, total, block):
        stop = min(start + block, total)
        m = stop - start
        for t, off in enumerate(offsets):
            have = min(stop + off, total) - (start + off)
            rows[:, t, :have] = flat[:, start + off: start + off + have]
            if have < m:  # past the end of the last image: outputs that are cut away later
                rows[:, t, have:m] = 0
        np.matmul(w, cols[:, :m], out=acc[:, :m])
        stage.finish_folded(acc[:, :m], out[:, start:stop])
    return out.reshape(o, *grid)[:, :, :ho, :wo]


def _depthwise(x: np.ndarray, w: np.ndarray, g: Geometry2d, ho: int, wo: int,
               scratch: Scratch) -> np.ndarray:
    """Depthwise conv; ``w`` is [C, 1, kh*kw + 1] with the folded bias last. Returns the
    accumulator as a (C, N, ho, wo) view.

    Large stride-1 maps: every kernel offset is one shift of the flattened (N, Hp, Wp) plane;
    column blocks of those shifts (plus a ones row) go through a per-channel GEMM so each
    block stays in cache, computing outputs on the padded grid. Small maps or strides:
    channels-last multiply-adds, whose innermost loop runs over the channels."""
    kh, kw = g.kernel
    taps = kh * kw
    (dh, dw) = g.dilations
    if g.strides != (1, 1) or ho * wo <= 128:
        return _depthwise_channels_last(x, w, g, ho, wo, scratch)
    xp = _padded_input(x, g, scratch, w.dtype)
    c, n, hp, wp = xp.shape
    flat = xp.reshape(c, n * hp * wp)
    length = flat.shape[1] - ((kh - 1) * dh * wp + (kw - 1) * dw)
    acc, _ = scratch.zeros("acc", (c, 1, flat.shape[1]), flat.dtype)
    block = max(1000, (1 << 18) // c)
    cols, new = scratch.zeros("cols", (c, taps + 1, block), flat.dtype)
    if new:
        cols[:, taps] = 1
    for start in range(0, length, block):
        stop = min(start + block, length)
        for i in range(kh):
            for j in range(kw):
                off = i * dh * wp + j * dw
                cols[:, i * kw + j, : stop - start] = flat[:, start + off: stop + off]
        np.matmul(w, cols[:, :, : stop - start], out=acc[:, :, start:stop])
    return acc.reshape(c, n, hp, wp)[:, :, :ho, :wo]


def _depthwise_channels_last(x: np.ndarray, w: np.ndarray, g: Geometry2d, ho: int, wo: int,
                             scratch: Scratch) -> np.ndarray:
    """Channels-last multiply-adds, a few images at a time so the operands stay in cache."""
    n, c, h, wd = x.shape
    kh, kw = g.kernel
    pt, pl, pb, pr = g.pads
    (sh, sw), (dh, dw) = g.strides, g.dilations
    xp, _ = scratch.zeros("padded_nhwc", (n, h + pt + pb, wd + pl + pr, c), w.dtype)
    xp[:, pt:pt + h, pl:pl + wd, :] = x.transpose(0, 2, 3, 1)
    taps = w[:, 0, :].T  # [kh*kw + 1, C]
    per_image = (xp[0].size + 2 * ho * wo * c) * w.dtype.itemsize
    chunk = max(1, (3 << 19) // per_image)  # ~1.5 MiB working set
    acc, _ = scratch.zeros("acc_nhwc", (n, ho, wo, c), w.dtype)
    tmp, _ = scratch.zeros("tmp_nhwc", (min(chunk, n), ho, wo, c), w.dtype)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        out, t, src = acc[start:stop], tmp[: stop - start], xp[start:stop]
        out[...] = taps[kh * kw]
        for i in range(kh):
            for j in range(kw):
                win = src[:, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                          j * dw: j * dw + sw * (wo - 1) + 1: sw]
                np.multiply(win, taps[i * kw + j], out=t)
                out += t
    return acc.transpose(3, 0, 1, 2)


def _weight_abs_sum(w: np.ndarray, out_axis: int) -> int:
    """Largest sum of |w| over everything that feeds one output channel."""
    a = np.abs(w.astype(np.int64))
    a = np.moveaxis(a, out_axis, 0).reshape(a.shape[out_axis], -1)
    return int(a.sum(axis=1).max(initial=0))


class _ConvBase(Op):
    attrs = CONV_ATTRS
    min_inputs, max_inputs = 2, 3
    spatial = 2

    def _check(self, node: Node, x: Tensor, w: Tensor) -> Geometry2d:
        rank = self.spatial + 2
        if len(x.shape) != rank or len(w.shape) != rank:
            raise ThinkerModelError(
                f"{node.label()}: expects {rank}-D input and weight, got input {x.describe()} "
                f"and weight {w.describe()}"
            )
        return geometry(node, w.shape, self.spatial)

    def _as_4d(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape if self.spatial == 2 else (shape[0], shape[1], 1, shape[2])


class _Conv(_ConvBase):
    def infer(self, node, ins):
        x, w = ins[0], ins[1]
        g = self._check(node, x, w)
        n, c, h, wd = self._as_4d(x.shape)
        if w.shape[1] * g.group != c or w.shape[0] % g.group:
            raise ThinkerModelError(
                f"{node.label()}: weight {list(w.shape)} with group {g.group} does not fit "
                f"input channels {c}; weight shape must be [O, C/group, k...] with O % group == 0"
            )
        ho, wo = g.conv_out(h, wd)
        if ho < 1 or wo < 1:
            raise ThinkerModelError(f"{node.label()}: output would be empty ({ho}x{wo})")
        shape = (n, w.shape[0], ho, wo) if self.spatial == 2 else (n, w.shape[0], wo)
        return [accumulator_output_spec(node, shape)]

    def macs(self, node, ins, outs):
        w = ins[1].shape
        return int(np.prod(outs[0].shape)) * int(np.prod(w[1:]))

    def prepare(self, node, ins, outs):
        x = ins[0]
        g = self._check(node, x, ins[1])
        w = const_input(node, ins, 1, "weight").astype(np.int64)
        w = w.reshape(self._as_4d(w.shape))
        bias = const_input(node, ins, 2, "bias") if len(ins) > 2 and ins[2] is not None else None
        o, cg, kh, kw = w.shape
        groups = g.group
        stage = OutputStage(node, x, _weight_abs_sum(w, 0), bias, outs[0])
        fdt = stage.float_dtype
        fbias = stage.folded_bias(o)
        depthwise = groups == o and cg == 1
        wdw = None
        if depthwise:  # [C, 1, kh*kw + 1]: taps, then the folded bias (times a ones row)
            wdw = np.concatenate([stage.fold_weights(w.reshape(o, 1, kh * kw)),
                                  fbias.reshape(o, 1, 1)], axis=2)
        # per group: [O/G, Cg*kh*kw + 1], the last column is the folded bias (times the ones row)
        wmat = np.concatenate(
            [stage.fold_weights(w.reshape(groups, o // groups, cg * kh * kw)),
             fbias.reshape(groups, o // groups, 1)], axis=2)
        scratch = Scratch()
        spatial2 = self.spatial == 2

        def run(xv, *_):
            x4 = xv if spatial2 else xv[:, :, None, :]
            h, wd = x4.shape[2:]
            ho, wo = g.conv_out(h, wd)
            if depthwise:
                y = _depthwise(x4, wdw, g, ho, wo, scratch)
            elif groups == 1:
                blocked = _gemm_conv_blocked(x4, g, ho, wo, wmat[0], stage, scratch)
                if blocked is not None:
                    out = blocked.transpose(1, 0, 2, 3)
                    return (out if spatial2 else out[:, :, 0, :],)
                cols, grid = _columns(x4, g, ho, wo, scratch, fdt)
                y = (wmat[0] @ cols).reshape(o, *grid)[:, :, :ho, :wo]
            else:
                cols, grid = _columns(x4, g, ho, wo, scratch, fdt)
                k = cols.shape[0] - 1
                per_group = cols[:k].reshape(groups, k // groups, -1)
                ones = np.broadcast_to(cols[k:], (groups, 1, cols.shape[1]))
                y = np.matmul(wmat, np.concatenate([per_group, ones], axis=1))
                y = y.reshape(o, *grid)[:, :, :ho, :wo]
            out = stage.finish_folded(y).transpose(1, 0, 2, 3)
            return (out if spatial2 else out[:, :, 0, :],)

        return run


@register
class Conv2dInt(_Conv):
    op_type = "Conv2dInt"


@register
class Conv1dInt(_Conv):
    op_type = "Conv1dInt"
    spatial = 1


@register
class ConvTranspose2dInt(_ConvBase):
    """Weight [C, O/group, kh, kw]; each input pixel scatters kernel * value into the output
    (col2im as kh*kw strided slice additions); ``pads`` crop, ``output_padding`` extends."""

    op_type = "ConvTranspose2dInt"
    attrs = {**CONV_ATTRS, "output_padding": None}

    def infer(self, node, ins):
        x, w = ins[0], ins[1]
        g = self._check(node, x, w)
        n, c, h, wd = x.shape
        if w.shape[0] != c or c % g.group:
            raise ThinkerModelError(
                f"{node.label()}: weight {list(w.shape)} does not fit input channels {c}; "
                "a transposed conv weight is [C, O/group, kh, kw]"
            )
        ho, wo = g.transpose_out(h, wd)
        if ho < 1 or wo < 1:
            raise ThinkerModelError(f"{node.label()}: output would be empty ({ho}x{wo})")
        return [accumulator_output_spec(node, (n, w.shape[1] * g.group, ho, wo))]

    def macs(self, node, ins, outs):
        return int(np.prod(ins[0].shape)) * int(np.prod(ins[1].shape[1:]))

    def prepare(self, node, ins, outs):
        x = ins[0]
        g = self._check(node, x, ins[1])
        w = const_input(node, ins, 1, "weight").astype(np.int64)
        bias = const_input(node, ins, 2, "bias") if len(ins) > 2 and ins[2] is not None else None
        c, og, kh, kw = w.shape
        groups = g.group
        o = og * groups
        wg = w.reshape(groups, c // groups, og, kh, kw)
        per_out = np.abs(wg).transpose(0, 2, 1, 3, 4).reshape(o, -1).sum(axis=1)
        stage = OutputStage(node, x, int(per_out.max(initial=0)), bias, outs[0])
        fdt = stage.float_dtype
        fbias = stage.folded_bias(o).reshape(o, 1, 1, 1)
        # (G, og*kh*kw, C/G): one GEMM per group turns input pixels into kernel-sized patches
        wmat = stage.fold_weights(wg.transpose(0, 2, 3, 4, 1).reshape(groups, og * kh * kw,
                                                                       c // groups))
        (sh, sw), (dh, dw) = g.strides, g.dilations
        pt, pl, _, _ = g.pads

        def run(xv, *_):
            n, _, h, wd = xv.shape
            ho, wo = g.transpose_out(h, wd)
            xc = xv.transpose(1, 0, 2, 3).astype(fdt).reshape(groups, c // groups, n * h * wd)
            patches = np.matmul(wmat, xc).reshape(o, kh, kw, n, h, wd)
            full_h = max((h - 1) * sh + dh * (kh - 1) + 1, pt + ho)
            full_w = max((wd - 1) * sw + dw * (kw - 1) + 1, pl + wo)
            full = np.zeros((o, n, full_h, full_w), dtype=fdt)
            for i in range(kh):
                for j in range(kw):
                    full[:, :, i * dh: i * dh + sh * (h - 1) + 1: sh,
                         j * dw: j * dw + sw * (wd - 1) + 1: sw] += patches[:, i, j]
            y = full[:, :, pt: pt + ho, pl: pl + wo] + fbias
            return (stage.finish_folded(y).transpose(1, 0, 2, 3),)

        return run
