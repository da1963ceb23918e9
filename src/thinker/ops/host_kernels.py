"""The numpy executor's compiled kernels (executor/host/): int8 convolution, depthwise
convolution and linear where the CPU has AVX-512 VNNI (exact int8 products summed in int32,
64 per instruction, instead of float BLAS; on 256-bit AVX-VNNI too, depthwise there where a
tap group fits 16 bytes), and global average pooling. Same integers as the
numpy kernels (tests compare the two on every path); an op they cannot take (a float or
32-bit output, a rounding mode other than the default, a left shift, an accumulator that
could leave int32, inputs wider than 8 bits, grouped convs other than depthwise) stays on
numpy, as does everything when ``THINKER_HOST_KERNELS=0`` or the library is missing.
"""

from __future__ import annotations

import ctypes
import math
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from thinker import qmath
from thinker.ops.accumulate import OutputStage

BLOCK = 16  # output channels per weight block (conv_vnni.c)
OUT_MARGIN = 16  # elements before each output (vnni.h grid_runs)
VNNI_FEATURE = 1  # thinker_host_features(): AVX-512 VNNI (conv_vnni.c)
DEPTHWISE_FEATURE = 2  # thinker_host_features(): AVX-512 VBMI/VBMI2 too (depthwise_vnni.c)
VNNI256_FEATURE = 4  # thinker_host_features(): AVX-VNNI, 256-bit (conv_avxvnni.c)
KEEP_SHAPES = 8  # jobs (each with its work) a kernel keeps per thread
INT32_LIMIT = 1 << 31


class _Job(ctypes.Structure):  # thinker_host_conv (executor/host/thinker_host.h)
    _fields_ = [("x", ctypes.c_void_p), ("w", ctypes.c_void_p), ("corr", ctypes.c_void_p),
                ("out", ctypes.c_void_p), ("work", ctypes.c_void_p),
                ("work_bytes", ctypes.c_int64)] + \
               [(name, ctypes.c_int32) for name in (
                   "n", "c", "h", "w_in", "o", "kh", "kw", "sh", "sw", "dh", "dw",
                   "pt", "pl", "pb", "pr", "ho", "wo", "shift", "lo", "hi", "out_bytes",
                   "prepared")]


def _any_library():
    from thinker.runtime.c_backend import host_library  # runtime imports ops: load lazily

    return host_library()


def _library():
    """The library when the CPU runs its dense VNNI kernels (512- or 256-bit), else None."""
    lib = _any_library()
    dense = VNNI_FEATURE | VNNI256_FEATURE
    return lib if lib is not None and lib.thinker_host_features() & dense else None


def address(a: np.ndarray) -> int:
    """The address of a C-contiguous array's data: through the buffer protocol where the array
    is writable (0.2 us; ``a.ctypes.data`` builds a helper object, 0.8 us, which a batch-1
    op pays twice), else numpy's way."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError):  # read-only, or no data to point at
        return a.ctypes.data


_RECYCLED = threading.local()
KEEP_PER_SIZE = 4  # buffers (in use or free) kept per size and thread
KEEP_BYTES = 256 << 20  # and at most this many bytes per thread: the sizes used least recently go


def output_buffer(size: int, dtype: np.dtype) -> np.ndarray:
    """A fresh-or-recycled 1-D array for a kernel's output. Large fresh allocations come from
    mmap and page-fault on first touch (measured: ResNet-8 at batch 64, 4.0 -> 5.6 ms), so
    each thread keeps the buffers it handed out and reuses one once nothing refers to it any
    more: no array, view or caller holds it (its reference count says so), so no value a run
    returned or still reads is ever overwritten. What a thread keeps is bounded (KEEP_BYTES,
    least recently used sizes dropped first), so a server seeing many batch sizes does not
    keep them all."""
    kept: OrderedDict = _RECYCLED.__dict__.setdefault("buffers", OrderedDict())
    key = (size, dtype)
    buffers = kept.get(key)
    if buffers is None:
        buffers = kept[key] = []
    kept.move_to_end(key)
    for i in range(len(buffers)):
        # references: the list and getrefcount's argument
        if sys.getrefcount(buffers[i]) == 2:
            return buffers[i]
    buf = np.empty(size, dtype)
    if len(buffers) < KEEP_PER_SIZE:
        buffers.append(buf)
        total = _RECYCLED.__dict__.get("bytes", 0) + buf.nbytes
        while total > KEEP_BYTES and len(kept) > 1:
            _, dropped = kept.popitem(last=False)
            total -= sum(b.nbytes for b in dropped)
        _RECYCLED.bytes = total
    return buf


class _Mean(ctypes.Structure):  # thinker_host_mean (executor/host/thinker_host.h)
    _fields_ = [("x", ctypes.c_void_p), ("out", ctypes.c_void_p), ("rows", ctypes.c_int64),
                ("length", ctypes.c_int64), ("den", ctypes.c_int64)] + \
               [(name, ctypes.c_int32) for name in ("shift", "lo", "hi", "out_bytes")]


CONV_KIND, DEPTHWISE_KIND, MEAN_KIND = 0, 1, 2  # thinker_host_link kinds (thinker_host.h)


@dataclass
class ChainJob:
    """One kernel's job in a chain (thinker.runtime.host_chain): its kind, the ctypes job (its
    ``x`` and ``out`` still to point), the work it owns, the output's shape as the kernel
    writes it, the output elements to allocate (margin included) and their dtype."""

    kind: int
    job: ctypes.Structure
    work: np.ndarray | None
    out_shape: tuple[int, ...]
    out_size: int
    dtype: np.dtype


class HostMean:
    """Global average pooling of int8 rows on the compiled kernel (``host_mean``)."""

    def __init__(self, lib, template: dict, out_dtype) -> None:
        self._lib, self._template, self._dtype = lib, template, np.dtype(out_dtype)

    def _mean_job(self, shape: tuple[int, ...]) -> _Mean:
        return _Mean(rows=shape[0] * shape[1], **self._template)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x)
        out = np.empty((*x.shape[:2], *(1,) * (x.ndim - 2)), self._dtype)
        job = self._mean_job(x.shape)
        job.x, job.out = address(x), address(out)
        if self._lib.thinker_host_mean_rows(ctypes.byref(job)) != 0:
            raise RuntimeError("thinker_host_mean_rows refused a pool host_mean accepted")
        return out

    def chain_job(self, shape: tuple[int, ...]) -> ChainJob:
        out = (*shape[:2], *(1,) * (len(shape) - 2))
        return ChainJob(MEAN_KIND, self._mean_job(shape), None, out,
                        math.prod(out) + OUT_MARGIN, self._dtype)


def host_mean(x_dtype, length: int, divisor: int, shift: int, bits: int,
              out_dtype) -> HostMean | None:
    """Global average pooling of int8 rows of ``length`` values on the compiled kernel
    (``saturate(round_half_up(sum * 2**-shift / divisor))``, thinker.qmath.rescale_div), or
    None where it does not apply. It maps [N, C, ...] to [N, C, 1, ...]."""
    lib = _any_library()
    den = divisor << max(shift, 0)
    if lib is None or np.dtype(x_dtype) != np.int8 or np.dtype(out_dtype).itemsize > 2 or \
            divisor <= 0 or den >= 1 << 61 or (128 * length) << max(-shift, 0) >= 1 << 61:
        return None
    lo, hi = qmath.int_range(bits)
    return HostMean(lib, dict(den=den, shift=shift, lo=lo, hi=hi,
                              out_bytes=np.dtype(out_dtype).itemsize, length=length), out_dtype)


def _half(stage: OutputStage) -> int:
    """The 2**(shift - 1) rshift_round adds (0 without a right shift)."""
    return int(qmath.folded_half(stage.shift, qmath.DEFAULT_ROUND_MODE))


def pack_weights(lib: ctypes.CDLL, w: np.ndarray) -> np.ndarray:
    """[O, C, kh, kw] int (within int8) -> the dense kernel's packed bytes, by the library's
    own packer (the C executor's host build packs with it too)."""
    o, c, kh, kw = w.shape
    w8 = np.ascontiguousarray(w, dtype=np.int8)
    packed = np.empty(lib.thinker_host_packed_weight_bytes(o, c, kh * kw), np.int8)
    lib.thinker_host_pack_conv_weights(w8.ctypes.data, o, c, kh * kw, packed.ctypes.data)
    return packed


class HostConv:
    """One conv node prepared for the compiled kernel; ``__call__(x)`` maps NCHW int8 to the
    NCHW output. Build with ``host_conv`` (None where the kernel does not apply)."""

    def __init__(self, lib, w: np.ndarray, stage: OutputStage, limits: tuple[int, int],
                 geometry) -> None:
        o = w.shape[0]
        self._lib, self._stage, self._g = lib, stage, geometry
        self._w = self._pack(lib, w)
        bias = np.zeros(o, np.int64) if stage.bias is None else \
            np.broadcast_to(stage.bias, (o,)).astype(np.int64)
        # |corr| <= 128 * sum|w| + |bias| + half < 2**31 (host_conv's bound): an int32
        corr = np.zeros(-(-o // BLOCK) * BLOCK, np.int64)
        corr[:o] = bias + _half(stage) - 128 * w.reshape(o, -1).sum(axis=1)
        self._corr = corr.astype(np.int32)
        self._shape = w.shape
        self._limits = limits
        self.linear = False  # a LinearInt's [..., K] -> [..., O] (host_linear)
        self._local = threading.local()
        self._dtype = np.dtype(stage.out_dtype)
        self._work_bytes, self._run = lib.thinker_host_conv_work_bytes, lib.thinker_host_conv_s8

    @staticmethod
    def _pack(lib, w: np.ndarray) -> np.ndarray:
        return pack_weights(lib, w)

    def _job(self, shape: tuple[int, ...]) -> tuple[_Job, tuple[int, ...], int, np.ndarray]:
        """The kernel's job for this input shape, with this thread's work buffer (built once
        per shape: filling a ctypes struct costs microseconds, a call's whole budget)."""
        g, (o, _, kh, kw) = self._g, self._shape
        n, c, h, wd = self._conv_input(shape)
        ho, wo = g.conv_out(h, wd)
        job = _Job(w=self._w.ctypes.data, corr=self._corr.ctypes.data, n=n, c=c, h=h,
                   w_in=wd, o=o, kh=kh, kw=kw, sh=g.strides[0], sw=g.strides[1],
                   dh=g.dilations[0], dw=g.dilations[1], pt=g.pads[0], pl=g.pads[1],
                   pb=g.pads[2], pr=g.pads[3], ho=ho, wo=wo, shift=self._stage.shift,
                   lo=self._limits[0], hi=self._limits[1], out_bytes=self._dtype.itemsize)
        size = int(self._work_bytes(ctypes.byref(job)))  # -1: not supported (supported())
        work = np.empty(max(size, 0), np.uint8)
        job.work, job.work_bytes = work.ctypes.data, size
        # the kernels' masked stores may address up to 15 elements before the output
        out = (*shape[:-1], o) if self.linear else (n, o, ho, wo)
        return job, out, math.prod((n, o, ho, wo)) + OUT_MARGIN, work

    def chain_job(self, shape: tuple[int, ...]) -> ChainJob:
        """A job of its own for an input of ``shape``, for a chain."""
        job, out, size, work = self._job(shape)
        kind = DEPTHWISE_KIND if isinstance(self, HostDepthwise) else CONV_KIND
        return ChainJob(kind, job, work, out, size, self._dtype)

    def supported(self) -> bool:
        """Whether the kernel takes this conv (geometry, output width, shift; the CPU), asked
        of the C side on the smallest input the kernel covers."""
        g, (o, c, kh, kw) = self._g, self._shape
        c = o if isinstance(self, HostDepthwise) else c  # depthwise weights are [C, 1, kh, kw]
        h, w = (kh - 1) * g.dilations[0] + 1, (kw - 1) * g.dilations[1] + 1
        # the map the kernel just covers (for depthwise a special case), and a larger one
        return all(self._job(shape)[0].work_bytes >= 0
                   for shape in ((1, c, h, w), (1, c, h + 1, w + 1)))

    def _conv_input(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The NCHW input the kernel sees for an input of ``shape``: itself, or for a linear's
        [..., K] its rows as samples of K channels of 1x1 (outputs come back as [..., O])."""
        return (math.prod(shape[:-1]), shape[-1], 1, 1) if self.linear else shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # this thread's job for this shape (a plain dict: a call's Python work is a large part
        # of a batch-1 conv's time)
        jobs = self._local.__dict__.setdefault("jobs", {})
        entry = jobs.get(x.shape)
        if entry is None:
            if len(jobs) >= KEEP_SHAPES:  # the oldest shape's job and work go
                del jobs[next(iter(jobs))]
            entry = jobs[x.shape] = self._job(x.shape)
        job, shape, size, _ = entry
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        out = output_buffer(size, self._dtype)[OUT_MARGIN:].reshape(shape)
        job.x, job.out = address(x), address(out)
        if self._run(ctypes.byref(job)) != 0:
            raise RuntimeError(f"{self._run.__name__} refused a conv host_conv accepted")
        return out


class HostDepthwise(HostConv):
    """A depthwise conv (one input channel per output channel) on the compiled kernel."""

    def __init__(self, lib, w: np.ndarray, stage: OutputStage, limits: tuple[int, int],
                 geometry) -> None:
        super().__init__(lib, w, stage, limits, geometry)
        self._work_bytes, self._run = lib.thinker_host_depthwise_work_bytes, \
            lib.thinker_host_depthwise_s8

    @staticmethod
    def _pack(lib, w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w.reshape(w.shape[0], -1).astype(np.int8))  # [C][kh*kw]


class ColumnDepthwise:
    """A depthwise kernel of one column (a 1-D conv along H, as streaming models have): on
    maps one pixel wide it runs transposed, as one row along W (the same memory), where the
    kernel gathers 4 taps of a row per instruction instead of 1 of a column."""

    def __init__(self, lib, w: np.ndarray, stage: OutputStage, limits: tuple[int, int],
                 geometry) -> None:
        from thinker.ops.conv import Geometry2d

        g = geometry
        self._maps = HostDepthwise(lib, w, stage, limits, g)
        self._row = HostDepthwise(lib, np.ascontiguousarray(w.transpose(0, 1, 3, 2)), stage,
                                  limits, Geometry2d(g.kernel[::-1], g.strides[::-1],
                                                     g.dilations[::-1], (0, g.pads[0], 0,
                                                                         g.pads[2]), g.group))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        if w != 1:
            return self._maps(x)
        out = self._row(x.reshape(n, c, 1, h))
        return out.reshape(n, c, out.shape[3], 1)

    def supported(self) -> bool:
        return self._maps.supported() and self._row.supported()

    def chain_job(self, shape: tuple[int, ...]) -> ChainJob:
        n, c, h, w = shape
        if w != 1:
            return self._maps.chain_job(shape)
        job = self._row.chain_job((n, c, 1, h))
        job.out_shape = (n, c, job.out_shape[3], 1)
        return job


class HostColumnConv(HostConv):
    """A conv with one input channel: its kernel's columns become channels (input copies
    shifted by one column each, padding included), so the kernel's 4-channel groups fill up;
    otherwise 3 of every 4 products would multiply padding channels."""

    def __init__(self, lib, w: np.ndarray, stage: OutputStage, limits: tuple[int, int],
                 geometry) -> None:
        from thinker.ops.conv import Geometry2d

        g = geometry
        self._original = g  # the conv's geometry; the kernel sees the columns'
        columns = Geometry2d((g.kernel[0], 1), g.strides, (g.dilations[0], 1),
                             (g.pads[0], 0, g.pads[2], 0), 1)
        super().__init__(lib, np.ascontiguousarray(w.transpose(0, 3, 2, 1)), stage, limits,
                         columns)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        g = self._original
        n, _, h, wd = x.shape
        kw, (_, sw), dw, (_, pl, _, pr) = g.kernel[1], g.strides, g.dilations[1], g.pads
        wo = g.conv_out(h, wd)[1]
        width = (wo - 1) * sw + 1  # the columns the strided kernel's first tap reads
        padded = np.zeros((n, h, wd + pl + pr), np.int8)
        padded[:, :, pl:pl + wd] = x[:, 0]
        shifted = np.stack([padded[:, :, t * dw:t * dw + width] for t in range(kw)], axis=1)
        return super().__call__(shifted)


def host_linear(w: np.ndarray, stage: OutputStage, x_dtype) -> HostConv | None:
    """The compiled kernel for a LinearInt with weight [O, K] (a 1x1 conv whose samples are the
    input's rows), or None; it maps [..., K] to [..., O] (``HostConv._conv_input``)."""
    from thinker.ops.conv import Geometry2d

    o, k = w.shape
    conv = host_conv(w.reshape(o, k, 1, 1), stage, x_dtype, 1,
                     Geometry2d((1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1))
    if conv is not None:
        conv.linear = True
    return conv


def host_conv(w: np.ndarray, stage: OutputStage, x_dtype, groups: int,
              geometry) -> HostConv | ColumnDepthwise | None:
    """The compiled kernel for this conv (group 1, or depthwise: weight [C, 1, kh, kw] with C
    groups), or None where it does not apply (module doc)."""
    limits = stage.integer_limits()
    depthwise = groups == w.shape[0] and w.shape[1] == 1
    if (groups != 1 and not depthwise) or np.dtype(x_dtype) != np.int8 or limits is None \
            or stage.shift is None or not 0 <= stage.shift <= 31 \
            or np.dtype(stage.out_dtype).itemsize > 2 \
            or w.size == 0 or w.min() < -128 or w.max() > 127:
        return None
    o = w.shape[0]
    bias = 0 if stage.bias is None else int(np.abs(stage.bias).max(initial=0))
    bound = 128 * int(np.abs(w.reshape(o, -1)).sum(axis=1).max()) + bias + _half(stage)
    if bound >= INT32_LIMIT:
        return None
    lib = _library()
    if lib is None:
        return None
    if depthwise and groups > 1:
        if w.shape[3] == 1 and w.shape[2] > 1 and geometry.pads[1] == geometry.pads[3] == 0:
            kernel = ColumnDepthwise(lib, w, stage, limits, geometry)
        else:
            kernel = HostDepthwise(lib, w, stage, limits, geometry)
    elif w.shape[1] == 1 and w.shape[3] > 1:
        kernel = HostColumnConv(lib, w, stage, limits, geometry)
    else:
        kernel = HostConv(lib, w, stage, limits, geometry)
    return kernel if kernel.supported() else None
