"""Depthwise convs (Conv1dInt / Conv2dInt with group == channels and one output channel per
group): one small banded GEMM per channel, or, where each channel has few outputs, per-tap
multiply-adds over the whole batch (``_tap_depthwise``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from thinker.ops.accumulate import OutputStage
from thinker.ops.base import Scratch

if TYPE_CHECKING:
    from thinker.ops.conv import Geometry2d

CACHE_BYTES = 1 << 20  # working set of one cache-blocked step: half of a 2 MiB L2
# Path choice, measured per layer (MLPerf Tiny and ResNet-18 depthwise shapes, batch 1 and
# 64, SkylakeX OpenBLAS): one einsum over all taps is fastest up to EINSUM_MAX_OUTPUTS outputs
# per channel (batch x rows x columns; few numpy calls where calls dominate), the banded GEMMs
# from 125 (e.g. DS-CNN at batch 1: 37 us vs 43 us einsum, 49 us taps). Einsum also wins by
# ~10-20% on 3x3 and 4x4 maps at batch 64, but its whole-batch scratch (kept per layer) raised
# ResNet-18's peak RSS by 16 MB, so those stay banded. Per-tap multiply-adds were never the
# fastest; TAP_MAX_OUTPUTS > 0 sends the layers between einsum and bands to them.
EINSUM_MAX_OUTPUTS = 100
TAP_MAX_OUTPUTS = 0
BAND_GEMM_COLUMNS = 16  # output columns per GEMM row; OpenBLAS runs these thin per-channel
                        # GEMMs fastest near 16 (measured on 4x4..32x32 maps, strides 1 and 2)


@dataclass(frozen=True)
class DepthwiseBands:
    """How a depthwise conv becomes one small GEMM per channel (see ``_depthwise``).

    The output is cut into ``strips`` vertical strips of ``width`` columns. Each strip keeps
    its own copy of the padded input columns it reads, row after row, ``row_len`` floats a
    row: those columns, then a 1 that multiplies the folded bias. One GEMM row computes
    ``rows`` consecutive output rows of a strip from the ``span`` input rows they read, a
    contiguous run of ``span * row_len`` floats, against a band matrix that holds each tap
    where its input sits in the run (zeros elsewhere). Runs of neighbouring GEMM rows overlap,
    which BLAS cannot take as one operand, so ``phases`` GEMMs each take every phases-th run
    (those tile without overlap) and write every phases-th block of output rows.
    """

    strips: int
    width: int  # output columns per strip
    rows: int  # output rows per GEMM row (> 1 only with a single strip)
    span: int  # input rows one GEMM row reads
    phases: int
    row_len: int
    image_rows: int  # padded input rows per image, a multiple of the row stride

    @classmethod
    def plan(cls, g: Geometry2d, h: int, w: int) -> DepthwiseBands:
        (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.strides, g.dilations
        pt, _, pb, _ = g.pads
        ho, wo = g.conv_out(h, w)
        strips = -(-wo // BAND_GEMM_COLUMNS)
        width = -(-wo // strips)
        rows = max(1, min(BAND_GEMM_COLUMNS // wo, ho)) if strips == 1 else 1
        span = (rows - 1) * sh + (kh - 1) * dh + 1
        return cls(strips=strips, width=width, rows=rows, span=span,
                   phases=-(-span // (rows * sh)),
                   row_len=(width - 1) * sw + (kw - 1) * dw + 2,
                   image_rows=-(-(h + pt + pb) // sh) * sh)

    def matrix(self, taps: np.ndarray, g: Geometry2d) -> np.ndarray:
        """[C, kh*kw + 1] folded taps then folded bias -> [C, span*row_len, rows*width]."""
        (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.strides, g.dilations
        c = taps.shape[0]
        band = np.zeros((c, self.span, self.row_len, self.rows, self.width), taps.dtype)
        col = np.arange(self.width)
        for r in range(self.rows):
            for i in range(kh):
                for j in range(kw):
                    band[:, r * sh + i * dh, col * sw + j * dw, r, col] = taps[:, i * kw + j, None]
        band[:, 0, -1] = taps[:, -1, None, None]  # the run's first 1 brings in the bias
        return band.reshape(c, self.span * self.row_len, self.rows * self.width)


def _depthwise(x: np.ndarray, band: np.ndarray, bands: DepthwiseBands, g: Geometry2d,
               ho: int, wo: int, stage: OutputStage, scratch: Scratch) -> np.ndarray:
    """Depthwise conv as per-channel banded GEMMs (``DepthwiseBands``); ``band`` comes from
    ``bands.matrix``. Returns the output as a (C, N, ho, wo) array.

    Channels go a few at a time so that a chunk's strips and accumulator stay in cache from
    the copy through the GEMMs to the saturation; chunking channels keeps each GEMM's size.
    Exact like any folded GEMM here: each product is a folded tap times its input, or an exact
    zero, so every partial sum is a sum of a subset of the accumulator's terms and stays below
    the OutputStage bound whatever order BLAS adds them in. Outputs are computed on a grid of
    ``image_rows / stride`` rows per image and every strip's columns; the rest is cut away."""
    n, c = x.shape[:2]
    b, sh = bands, g.strides[0]
    blocks = -(-(n * b.image_rows // sh) // (b.phases * b.rows))  # GEMM rows per phase
    # room for every phase's blocks of whole GEMM-row steps (see _ChunkViews)
    in_rows = (blocks + 1) * b.phases * b.rows * sh
    acc_shape = (blocks * b.phases * b.rows, b.strips * b.width)
    per_channel = (b.strips * in_rows * b.row_len + acc_shape[0] * acc_shape[1]) * band.itemsize
    chunk = min(c, max(1, CACHE_BYTES // per_channel))
    strips, new = scratch.zeros("band_input", (chunk, b.strips, in_rows, b.row_len), band.dtype)
    if new:
        strips[..., -1] = 1
    acc, _ = scratch.zeros("band_acc", (chunk, *acc_shape), band.dtype)
    out = np.empty((c, n, ho, wo), dtype=stage.out_dtype)
    full = scratch.derived("band_views", (x.shape, id(strips), id(acc)),
                           lambda: _ChunkViews(strips, acc, b, g, x.shape, ho, wo))
    for c0 in range(0, c, chunk):
        k = min(chunk, c - c0)
        views = full if k == chunk else _ChunkViews(strips[:k], acc[:k], b, g, x.shape, ho, wo)
        xt = x[:, c0:c0 + k].transpose(1, 0, 2, 3)
        for target, columns in views.fills:
            target[...] = xt[..., columns]
        taps = band[c0:c0 + k]
        for runs, rows in views.gemms:
            np.matmul(runs, taps, out=rows)
        stage.finish_folded(views.grid, out[c0:c0 + k])
    return out


class _ChunkViews:
    """Views of the depthwise scratch buffers for a chunk of channels, built once per run:
    ``fills`` pairs each strip's padded image rows with the x columns they copy (padding and
    the ones column are never written, so a reused buffer keeps them); ``gemms`` pairs each
    strip and phase's runs [C, blocks, span*row_len] with the accumulator rows they yield;
    ``grid`` is the accumulator's valid outputs [C, N, ho, wo]."""

    def __init__(self, strips: np.ndarray, acc: np.ndarray, b: DepthwiseBands, g: Geometry2d,
                 x_shape: tuple[int, ...], ho: int, wo: int):
        n, _, h, w = x_shape
        k, sh = strips.shape[0], g.strides[0]
        pt, pl = g.pads[:2]
        images = strips[:, :, : n * b.image_rows].reshape(k, b.strips, n, b.image_rows,
                                                          b.row_len)
        self.fills = []
        for s in range(b.strips):
            first = s * b.width * g.strides[1] - pl  # x column under the strip's first column
            lo, hi = max(first, 0), min(first + b.row_len - 1, w)
            self.fills.append((images[:, s, :, pt:pt + h, lo - first:hi - first], slice(lo, hi)))
        # GEMM row m of a phase reads the run starting `step` floats after row m - 1's, and a
        # run is at most a step long: the runs are the first `run` columns of [blocks, step].
        blocks = acc.shape[1] // (b.phases * b.rows)
        step, run = b.phases * b.rows * sh * b.row_len, b.span * b.row_len
        # one GEMM row's output: `rows` full rows of the grid (single strip) or one strip's
        # part of a row (rows == 1), either way a contiguous slice of the flattened grid rows
        out_rows = acc.reshape(k, blocks, b.phases, b.rows * b.strips * b.width)
        self.gemms = []
        for s in range(b.strips):
            flat = strips[:, s].reshape(k, -1)
            for phase in range(b.phases):
                start = phase * b.rows * sh * b.row_len
                runs = flat[:, start:start + blocks * step].reshape(k, blocks, step)[:, :, :run]
                self.gemms.append((runs, out_rows[:, :, phase,
                                                  s * b.width: s * b.width + b.rows * b.width]))
        grid_rows = n * b.image_rows // sh
        grid = acc[:, :grid_rows].reshape(k, n, b.image_rows // sh, b.strips * b.width)
        self.grid = grid[:, :, :ho, :wo]


def _tap_depthwise(x: np.ndarray, rows: np.ndarray, g: Geometry2d, ho: int, wo: int,
                   stage: OutputStage, scratch: Scratch) -> np.ndarray:
    """Depthwise conv as one multiply and one add per kernel tap over the whole batch, in
    channels-last layout so every pass runs over contiguous rows of ``wo * C`` values.
    ``rows`` [kh*kw + 1, wo*C]: each folded tap, then the folded bias, repeated along a row.
    Returns the output as a (C, N, ho, wo) view of an NHWC array.

    The input goes once into a zero-bordered float buffer split by column stride phase
    ([sw, N, Hp, Wq, C], plane b holding padded columns q*sw + b), so a tap's inputs are
    rows[i*dh::sh] x columns [(j*dw)//sw, + wo) of plane (j*dw) % sw. Exact like the GEMM
    paths: every partial sum is the folded bias plus a subset of the accumulator's terms,
    below the OutputStage bound whatever the order."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.strides, g.dilations
    pt, pl, pb, pr = g.pads
    hp, wq = h + pt + pb, -(-(w + pl + pr) // sw)
    planes, _ = scratch.zeros("tap_planes", (sw, n, hp, wq, c), rows.dtype)
    xt = x.transpose(0, 2, 3, 1)
    for b in range(sw):  # the borders are never written, so a reused buffer keeps its zeros
        first = max(0, -(-(pl - b) // sw))
        src = first * sw + b - pl
        count = max(0, -(-(w - src) // sw))
        planes[b, :, pt:pt + h, first:first + count] = xt[:, :, src:src + sw * count:sw]
    flat = planes.reshape(sw, n, hp, wq * c)
    out = np.empty((n, ho, wo * c), dtype=stage.out_dtype)
    per_image = ho * wo * c * rows.itemsize * 2
    images = max(1, min(n, CACHE_BYTES // per_image))  # accumulator + product in cache
    acc_all, _ = scratch.zeros("tap_acc", (images, ho, wo * c), rows.dtype)
    tmp_all, _ = scratch.zeros("tap_tmp", (images, ho, wo * c), rows.dtype)
    for n0 in range(0, n, images):
        n1 = min(n, n0 + images)
        acc, tmp = acc_all[:n1 - n0], tmp_all[:n1 - n0]
        for t in range(kh * kw):
            i, j = divmod(t, kw)
            col = (j * dw) // sw * c
            view = flat[(j * dw) % sw, n0:n1, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                        col: col + wo * c]
            if t == 0:
                np.multiply(view, rows[0], out=acc)
                np.add(acc, rows[-1], out=acc)
            else:
                np.multiply(view, rows[t], out=tmp)
                np.add(acc, tmp, out=acc)
        stage.finish_folded(acc, out[n0:n1])
    return out.reshape(n, ho, wo, c).transpose(3, 0, 1, 2)


def _einsum_depthwise(x: np.ndarray, rows: np.ndarray, g: Geometry2d, ho: int, wo: int,
                      stage: OutputStage, scratch: Scratch) -> np.ndarray:
    """Depthwise conv as one einsum over every tap (a strided view of the zero-bordered NHWC
    input holds each tap's inputs), then the bias and the output stage: a handful of numpy
    calls, where small maps with many channels are dominated by calls. Returns a (C, N, ho,
    wo) view of an NHWC array. Exact like ``_tap_depthwise``: whatever order einsum adds
    the products in, each partial sum is a subset of the accumulator's terms."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.strides, g.dilations
    pt, pl, pb, pr = g.pads
    hp, wp = h + pt + pb, w + pl + pr
    padded, _ = scratch.zeros("einsum_padded", (n, hp, wp, c), rows.dtype)
    padded[:, pt:pt + h, pl:pl + w] = x.transpose(0, 2, 3, 1)  # borders stay zero
    item = padded.itemsize
    view = np.ndarray((kh, kw, n, ho, wo, c), padded.dtype, buffer=padded,  # never written
                      strides=(dh * wp * c * item, dw * c * item, hp * wp * c * item,
                               sh * wp * c * item, sw * c * item, item))
    acc, _ = scratch.zeros("einsum_acc", (n, ho, wo, c), rows.dtype)
    np.einsum("ijnhqc,ijqc->nhqc", view, rows[:-1].reshape(kh, kw, wo, c), out=acc)
    np.add(acc, rows[-1].reshape(wo, c), out=acc)
    out = np.empty((n, ho, wo, c), dtype=stage.out_dtype)
    stage.finish_folded(acc, out)
    return out.transpose(3, 0, 1, 2)


class BandedDepthwise:
    """A prepared depthwise conv: folded taps and bias ([C, kh*kw + 1]) and, per input size,
    its band plan and matrix, or its per-tap rows for few outputs (built at first use)."""

    def __init__(self, taps: np.ndarray, g: Geometry2d, stage: OutputStage):
        self.taps, self.g, self.stage = taps, g, stage
        self.scratch = Scratch()
        self._bands: dict[tuple[int, int], tuple[DepthwiseBands, np.ndarray]] = {}
        self._rows: dict[int, np.ndarray] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """NCHW int input -> (C, N, ho, wo) output."""
        h, w = x.shape[2:]
        ho, wo = self.g.conv_out(h, w)
        outputs = x.shape[0] * ho * wo
        einsum = outputs <= EINSUM_MAX_OUTPUTS
        if einsum or outputs <= TAP_MAX_OUTPUTS:
            rows = self._rows.get(wo)
            if rows is None:  # [kh*kw + 1, wo*C]: tap t (then the bias) of every channel
                rows = np.ascontiguousarray(np.tile(self.taps.T, (1, wo)))
                self._rows[wo] = rows
            kernel = _einsum_depthwise if einsum else _tap_depthwise
            return kernel(x, rows, self.g, ho, wo, self.stage, self.scratch)
        if (h, w) not in self._bands:
            bands = DepthwiseBands.plan(self.g, h, w)
            self._bands[(h, w)] = bands, bands.matrix(self.taps, self.g)
        bands, band = self._bands[(h, w)]
        return _depthwise(x, band, bands, self.g, ho, wo, self.stage, self.scratch)
