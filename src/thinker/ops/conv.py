"""Conv1dInt, Conv2dInt and ConvTranspose2dInt.

Accumulator = integer convolution of int x and int w (+ int32 bias at qx + qw), then the
shared output stage (``thinker.ops.accumulate``). Computed in float BLAS where exact:
im2col by kernel-offset slices (a loop over kh*kw offsets, never over pixels or channels) and
one GEMM per group, strided convs as stride-1 convs over the input's phase planes; depthwise
convs as one banded GEMM per channel (``DepthwiseBands``), or per-tap multiply-adds / one
einsum where each channel has few outputs (``ops.depthwise``).

Internally activations are laid out (C, N, H, W) so that im2col rows are contiguous and the GEMM
result needs no transpose; the returned tensor is an NCHW view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.accumulate import OutputStage, accumulator_output_spec
from thinker.ops.base import REQUIRED, Op, Scratch, const_input, register
from thinker.ops.depthwise import BandedDepthwise
from thinker.ops.host_kernels import HostColumnConv, host_conv

CONV_ATTRS = {
    "scale_x": REQUIRED, "scale_w": REQUIRED, "scale_o": None, "o_bits": None,
    "data_bits": 8, "parameter_bits": 8, "kernel_shape": None, "strides": None,
    "pads": None, "dilations": None, "group": 1, "fused_clip": None, "act_type": 0,
    "quant_mode": None,
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


GEMM_BLOCK_FLOATS = 1 << 18  # im2col floats per blocked GEMM step (~1 MiB of float32)
MAX_GRID_WASTE = 1.35  # largest grid / valid outputs ratio worth computing to get shifted im2col


def _phase_span(phase: int, stride: int, pad: int, size: int) -> tuple[int, int, int]:
    """Along one axis, phase plane ``phase`` holds padded positions r*stride + phase; returns
    (first plane index holding input, that input index, how many input indices it holds)."""
    first = max(0, -(-(pad - phase) // stride))
    src = first * stride + phase - pad
    return first, src, max(0, -(-(size - src) // stride))


def _phase_planes(x: np.ndarray, g: Geometry2d, scratch: Scratch,
                  tail: bool = False) -> np.ndarray:
    """The padded input split by stride phase: [C, sh*sw, N, Hq, Wq], plane (a, b) holding the
    padded pixels (r*sh + a, c*sw + b), in x's dtype. With stride 1 it is the padded input.
    Borders are never written, so a reused buffer keeps its zeros (the buffer's shape names
    the layout: another input size gets a new buffer). ``tail``: the planes are the start of
    a buffer with one more, all-zero channel (reads past the last row stay inside it)."""
    n, c, h, w = x.shape
    (sh, sw), (pt, pl, pb, pr) = g.strides, g.pads
    hq, wq = -(-(h + pt + pb) // sh), -(-(w + pl + pr) // sw)
    buf, _ = scratch.zeros("phase_planes", (c + int(tail), sh * sw, n, hq, wq), x.dtype)
    planes = buf[:c]
    xt = x.transpose(1, 0, 2, 3)
    for a in range(sh):
        r0, src_r, nr = _phase_span(a, sh, pt, h)
        for b in range(sw):
            c0, src_c, nc = _phase_span(b, sw, pl, w)
            planes[:, a * sw + b, :, r0:r0 + nr, c0:c0 + nc] = \
                xt[:, :, src_r:src_r + sh * nr:sh, src_c:src_c + sw * nc:sw]
    return planes


@dataclass(frozen=True)
class _Shifts:
    """im2col rows as contiguous shifts (``_shifted_taps``)."""

    flat: np.ndarray  # [C, L]
    offsets: list[int]  # per kernel offset t = i*kw + j
    grid: tuple[int, int, int]  # (N, rows, cols) of computed output positions
    # stride 1: (kh, kw, row step, column step) with offsets[i*kw + j] = i*row + j*col, and
    # ``buffer``: flat's memory (flat at its start) followed by max(offsets) more zeros
    steps: tuple[int, int, int, int] | None = None
    buffer: np.ndarray | None = None


def _shifted_taps(x: np.ndarray, g: Geometry2d, ho: int, wo: int,
                  scratch: Scratch) -> _Shifts | None:
    """im2col rows as contiguous shifts: the im2col row of channel c and kernel offset t,
    over the output positions of ``grid`` (N, rows, cols), is
    ``flat[c, offsets[t]:][:N*rows*cols]``; the valid outputs are the grid's [:ho, :wo]
    corner. A strided conv is a stride-1 conv over the input's phase planes
    (``_phase_planes``). Returns None where the grid's extra outputs (those falling in the
    padding) would cost more than strided gathers save."""
    n, c, h, w = x.shape
    kh, kw = g.kernel
    (sh, sw), (dh, dw) = g.strides, g.dilations
    if (kh, kw) == (1, 1) and g.strides == (1, 1) and not any(g.pads):
        flat = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(c, -1)
        return _Shifts(flat, [0], (n, h, w))
    hq = -(-(h + g.pads[0] + g.pads[2]) // sh)
    wq = -(-(w + g.pads[1] + g.pads[3]) // sw)
    if hq * wq > MAX_GRID_WASTE * ho * wo:
        return None
    plane = n * hq * wq
    offsets = [((i * dh) % sh * sw + (j * dw) % sw) * plane + (i * dh // sh) * wq + j * dw // sw
               for i in range(kh) for j in range(kw)]
    if (sh, sw) == (1, 1):
        # the zero channel after the planes is longer than any offset (< hq * wq)
        planes = _phase_planes(x, g, scratch, tail=True)
        return _Shifts(planes.reshape(c, -1), offsets, (n, hq, wq), (kh, kw, dh * wq, dw),
                       planes.base)  # the scratch buffer planes start
    return _Shifts(_phase_planes(x, g, scratch).reshape(c, -1), offsets, (n, hq, wq))


def _copy_shifts(rows: np.ndarray, shifts: _Shifts, start: int, count: int,
                 slab: np.ndarray | None = None) -> None:
    """rows[:, t, :count] = flat[:, start + offsets[t]:][:count]. Past a row's end come the
    next row's values or zeros: either only feeds outputs outside the valid corner, which are
    cut away. With ``steps`` one copy takes every offset (a strided view of overlapping rows),
    saving a numpy call per kernel offset. ``slab`` ([C, >= count + max(offsets)], rows'
    dtype): the block's span of the integer planes is converted into it once, so the kh*kw
    overlapping copies move floats (about half the time of converting each one)."""
    flat, offsets = shifts.flat, shifts.offsets
    if shifts.steps is not None and len(offsets) > 1:
        c, (kh, kw, row, col), item = flat.shape[0], shifts.steps, flat.itemsize
        # np.ndarray over the buffer, not as_strided: same view, a few us less per call
        if slab is not None:
            span = count + offsets[-1]  # the buffer's zero tail holds the last channel's reads
            slab[:, :span] = np.ndarray((c, span), flat.dtype, buffer=shifts.buffer,
                                        offset=start * item, strides=(flat.strides[0], item))
            src, item, at = slab, slab.itemsize, 0
        else:
            src, at = shifts.buffer, start * item
        view = np.ndarray((c, kh, kw, count), src.dtype, buffer=src, offset=at,
                          strides=(src.strides[0] if slab is not None else flat.strides[0],
                                   row * item, col * item, item))
        rows[:, :, :count].reshape(c, kh, kw, count)[...] = view
        return
    end = flat.shape[1]
    for t, off in enumerate(offsets):
        have = max(0, min(count, end - start - off))
        rows[:, t, :have] = flat[:, start + off: start + off + have]
        if have < count:
            rows[:, t, have:count] = 0


def _columns(x: np.ndarray, g: Geometry2d, ho: int, wo: int, scratch: Scratch, dtype):
    """im2col with a trailing row of ones (it multiplies the folded bias column).

    Returns (cols [C*kh*kw + 1, P], out_grid): P output positions laid out as ``out_grid``
    (N, rows, cols), from which the kernel takes the valid [:ho, :wo] corner. Columns are
    contiguous shifts (``_shifted_taps``) where the padding adds little, else strided
    gathers of the padded input."""
    n, c = x.shape[:2]
    kh, kw = g.kernel
    k = c * kh * kw
    shifted = _shifted_taps(x, g, ho, wo, scratch)
    if shifted is not None:
        total = math.prod(shifted.grid)
        cols, new = scratch.zeros("cols", (k + 1, total), dtype)
        if new:
            cols[k] = 1
        _copy_shifts(cols[:k].reshape(c, len(shifted.offsets), total), shifted, 0, total)
        return cols, shifted.grid
    xp = _padded_input(x, g, scratch, dtype)
    cols, new = scratch.zeros("cols", (k + 1, n * ho * wo), dtype)
    if new:
        cols[k] = 1
    # the input values every kernel offset multiplies, for every output pixel: one strided
    # view of the padded input, one copy
    (sh, sw), (dh, dw) = g.strides, g.dilations
    s0, s1, s2, s3 = xp.strides
    windows = np.lib.stride_tricks.as_strided(
        xp, (c, kh, kw, n, ho, wo), (s0, dh * s2, dw * s3, s1, sh * s2, sw * s3), writeable=False)
    cols[:k].reshape(c, kh, kw, n, ho, wo)[...] = windows
    return cols, (n, ho, wo)


def _gemm_conv_blocked(x: np.ndarray, g: Geometry2d, ho: int, wo: int, w: np.ndarray,
                      stage: OutputStage, scratch: Scratch) -> np.ndarray | None:
    """Group-1 conv as GEMMs over blocks of output positions: each block builds its columns
    (plus the ones row for the folded bias), multiplies and saturates while it is in cache.
    Works where columns are contiguous shifts (``_shifted_taps``): outputs are then computed
    on its grid and the valid corner returned, a view. Returns None elsewhere."""
    shifted = _shifted_taps(x, g, ho, wo, scratch)
    if shifted is None:
        return None
    offsets, grid = shifted.offsets, shifted.grid
    fdt = w.dtype
    c = x.shape[1]
    o, k = w.shape[0], c * len(offsets)
    total = math.prod(grid)
    block = max(256, GEMM_BLOCK_FLOATS // (k + 1))
    cols, new = scratch.zeros("cols_block", (k + 1, block), fdt)
    if new:
        cols[k] = 1
    rows = cols[:k].reshape(c, len(offsets), block)
    acc, _ = scratch.zeros("acc_block", (o, block), fdt)
    slab = None
    if shifted.steps is not None and len(offsets) > 1:
        slab, _ = scratch.zeros("slab_block", (c, block + offsets[-1]), fdt)
    out = np.empty((o, total), dtype=stage.out_dtype)
    for start in range(0, total, block):
        m = min(block, total - start)
        _copy_shifts(rows, shifted, start, m, slab)
        np.matmul(w, cols[:, :m], out=acc[:, :m])
        stage.finish_folded(acc[:, :m], out[:, start:start + m])
    return out.reshape(o, *grid)[:, :, :ho, :wo]


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
        # the banded depthwise kernel covers pads up to the kernel's span (PyTorch's range);
        # larger pads (a padded border wider than the window) take the grouped GEMM path
        depthwise = groups == o and cg == 1 and \
            max(g.pads) <= max((kh - 1) * g.dilations[0], (kw - 1) * g.dilations[1])
        if depthwise:  # [C, kh*kw + 1]: taps, then the folded bias (times a ones column)
            depthwise_conv = BandedDepthwise(
                np.concatenate([stage.fold_weights(w.reshape(o, kh * kw)), fbias.reshape(o, 1)],
                               axis=1), g, stage)
        # per group: [O/G, Cg*kh*kw + 1], the last column is the folded bias (times the ones row)
        wmat = np.concatenate(
            [stage.fold_weights(w.reshape(groups, o // groups, cg * kh * kw)),
             fbias.reshape(groups, o // groups, 1)], axis=2)
        scratch = Scratch()
        spatial2 = self.spatial == 2
        compiled = host_conv(w, stage, x.dtype, groups, g)

        def run(xv, *_):
            x4 = xv if spatial2 else xv[:, :, None, :]
            if compiled is not None:
                out = compiled(x4)
                return (out if spatial2 else out[:, :, 0, :],)
            h, wd = x4.shape[2:]
            ho, wo = g.conv_out(h, wd)
            if depthwise:
                out = depthwise_conv(x4).transpose(1, 0, 2, 3)
                return (out if spatial2 else out[:, :, 0, :],)
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

        # for thinker.runtime.host_chain: the compiled kernel that does all of this op's work
        # (not the one-channel conv's, which prepares its input in numpy), and the NCHW shape
        # it sees for an input shape
        run.host = None if isinstance(compiled, HostColumnConv) else compiled
        run.host_shape = None if spatial2 else lambda s: (s[0], s[1], 1, s[2])
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
