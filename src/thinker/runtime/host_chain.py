"""Chains of compiled kernels run by one C call (executor/host/chain.c).

At batch 1 a compiled conv's own work is a microsecond or two and Python's per-op cost (the
executor's loop, the kernel's call through ctypes) is as much again. Consecutive steps that
each run entirely on a compiled kernel (``run.host``, thinker.ops.host_kernels), or only
reshape (``run.view``), where each step reads nothing but the previous step's output and
nothing else reads that output, become one step: per thread it builds the kernels' jobs once
for the graph's shapes, each pointed at the previous job's output buffer, and a run then sets
the first input and the last output and calls ``thinker_host_run_chain``. Intermediate values
never reach Python: the executor uses chains only when no hook watches the run. A multiple of
the graph's batch runs a chain built for it (models whose batch is axis 0 everywhere, small
intermediates); any other input runs the steps one by one, as does everything with
``THINKER_HOST_KERNELS=0``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence

import numpy as np

from thinker.ops.host_kernels import OUT_MARGIN, address, output_buffer

# an executor fast-path entry: (kernel, args as (is_name, name or value), outputs, releases)
Entry = tuple[Callable, tuple, tuple, tuple]


class _Link(ctypes.Structure):  # thinker_host_link (executor/host/thinker_host.h)
    _fields_ = [("kind", ctypes.c_int32), ("job", ctypes.c_void_p)]


def _host(kernel) -> object | None:
    return getattr(kernel, "host", None)


def _view(kernel) -> bool:
    return bool(getattr(kernel, "view", False))


SCALED_BYTES = 4 << 20  # intermediates a chain may keep per thread at another batch
KEEP_BATCHES = 4  # batches a chain keeps jobs for per thread


class HostChain:
    """Steps ``entries`` (fast-path entries of consecutive steps) as one kernel. ``shapes``:
    each step's static input shape, then the last step's static output shape. ``scalable``:
    the batch is axis 0 of every tensor, so a multiple of the graph's batch runs the same
    chain on shapes scaled along axis 0 (while its intermediates stay under SCALED_BYTES;
    larger ones gain little, the Python per-op cost being small next to the work)."""

    def __init__(self, lib, entries: Sequence[Entry], shapes: Sequence[tuple[int, ...]],
                 scalable: bool = False):
        self._lib = lib
        self._entries = list(entries)
        self._shapes = list(shapes)
        self._scalable = scalable and all(len(s) > 0 and s[0] > 0 for s in shapes)
        self._local = threading.local()

    def _scale(self, x: np.ndarray) -> int:
        """How many times the graph's batch ``x`` holds, where the chain can run it (0: no)."""
        static = self._shapes[0]
        if x.shape == static:
            return 1
        if not self._scalable or x.shape[1:] != static[1:] or x.shape[0] % static[0]:
            return 0
        return x.shape[0] // static[0]

    def _built(self, scale: int) -> tuple | None:
        """This thread's jobs for ``scale`` times the graph's batch (None: not worth a chain),
        built once; at most KEEP_BATCHES kept."""
        kept = self._local.__dict__.setdefault("built", {})
        if scale not in kept:
            if len(kept) >= KEEP_BATCHES:
                del kept[next(iter(kept))]
            kept[scale] = self._build(scale)
        return kept[scale]

    def _build(self, scale: int = 1) -> tuple | None:
        """This thread's jobs for ``scale`` times the graph's shapes: (the links array's
        address, the number of links, the first job, the last job, the last ChainJob, the
        output's shape, what must stay alive); None where another batch's intermediates
        would exceed SCALED_BYTES."""
        shapes = [(s[0] * scale, *s[1:]) for s in self._shapes] if scale != 1 else self._shapes
        jobs, keep, previous, kept_bytes = [], [], None, 0
        count = sum(_host(e[0]) is not None for e in self._entries)
        for (kernel, _, _, _), shape in zip(self._entries, shapes, strict=False):
            host = _host(kernel)
            if host is None:  # a view: the next job reads the same bytes
                continue
            adapt = getattr(kernel, "host_shape", None)
            job = host.chain_job(adapt(shape) if adapt else shape)
            if previous is not None:
                job.job.x = previous
            jobs.append(job)
            if len(jobs) < count:  # an intermediate: a buffer of the chain's own
                kept_bytes += job.out_size * job.dtype.itemsize
                if scale != 1 and kept_bytes > SCALED_BYTES:
                    return None
                buffer = np.empty(job.out_size, job.dtype)
                keep.append(buffer)
                previous = address(buffer) + OUT_MARGIN * buffer.itemsize
                job.job.out = previous
            keep.append(job)
        links = (_Link * len(jobs))(*[_Link(j.kind, ctypes.addressof(j.job)) for j in jobs])
        keep.append(links)
        return (ctypes.addressof(links), len(jobs), jobs[0].job, jobs[-1].job, jobs[-1],
                shapes[-1], keep)

    def __call__(self, x: np.ndarray, *rest) -> tuple[np.ndarray]:
        scale = self._scale(x)
        built = self._built(scale) if scale else None
        if built is None:
            return self._one_by_one(x, rest)
        if not x.flags.c_contiguous:  # e.g. a numpy kernel's transposed result before it
            x = np.ascontiguousarray(x)
        links, count, first, last, last_job, out_shape, _ = built
        out = output_buffer(last_job.out_size, last_job.dtype)[OUT_MARGIN:]
        out = out.reshape(out_shape)
        first.x, last.out = address(x), address(out)
        if self._lib.thinker_host_run_chain(links, count) != 0:
            raise RuntimeError("thinker_host_run_chain refused jobs its kernels accepted")
        return (out,)

    def _one_by_one(self, x: np.ndarray, rest) -> tuple[np.ndarray]:
        """The steps themselves (another input shape): the first gets the chain's arguments,
        each later one the previous output in place of the value it named."""
        value = self._entries[0][0](x, *rest)[0]
        for kernel, args, _, _ in self._entries[1:]:
            value = kernel(*[value if named else v for named, v in args])[0]
        return (value,)


def fuse(entries: list[Entry], graph_outputs: Sequence[str], last_use: dict[str, int],
         shape_of: Callable[[str], tuple[int, ...]], lib, scalable: bool = False) -> list[Entry]:
    """``entries`` with every run of two or more compiled-kernel steps (views between them)
    that only feed each other replaced by one HostChain entry (``scalable``: see HostChain)."""
    outputs = set(graph_outputs)

    def feeds_only_next(i: int) -> bool:
        """Step i's single output is read by step i + 1 alone, which reads nothing else."""
        _, _, outs, _ = entries[i]
        kernel, args, _, _ = entries[i + 1]
        named = [v for is_name, v in args if is_name]
        return len(outs) == 1 and outs[0] not in outputs and last_use.get(outs[0]) == i + 1 \
            and named == [outs[0]] and args[0] == (True, outs[0]) \
            and (_host(kernel) is not None or _view(kernel))

    fused: list[Entry] = []
    i = 0
    while i < len(entries):
        j = i
        if _host(entries[i][0]) is not None and entries[i][1][:1] and entries[i][1][0][0]:
            while j + 1 < len(entries) and feeds_only_next(j):
                j += 1
            while j > i and _host(entries[j][0]) is None:  # no view at the end
                j -= 1
        members = entries[i:j + 1]
        if sum(_host(e[0]) is not None for e in members) < 2:
            fused.append(entries[i])
            i += 1
            continue
        shapes = [shape_of(e[1][0][1]) for e in members] + [shape_of(members[-1][2][0])]
        chain = HostChain(lib, members, shapes, scalable)
        fused.append((chain, members[0][1], members[-1][2], members[0][3]))
        i = j + 1
    return fused
