"""Ready-made hooks: per-op profile, and a dump of every tensor (.npy + CRC-32 lines).

The CRC line format is shared with the C executor's ``--crc`` printout so two executors (or
two runs) can be compared with ``diff``:  ``<index> <crc32 hex> <dtype> <dims> <name>``.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass

import numpy as np

from thinker.errors import printable
from thinker.runtime.executor import Executor, Hook


def tensor_crc32(value: np.ndarray) -> int:
    """CRC-32 of the tensor's little-endian bytes in C order."""
    arr = np.ascontiguousarray(value)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return zlib.crc32(arr.tobytes()) & 0xFFFFFFFF


def crc_line(index: int, name: str, value: np.ndarray) -> str:
    dims = "x".join(str(d) for d in value.shape) or "scalar"
    return f"{index} {tensor_crc32(value):08x} {value.dtype} {dims} {name}"


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


class DumpHook(Hook):
    """Keeps a CRC line for every graph input and node output in execution order; with
    ``directory`` also writes each tensor to ``<index>_<name>.npy`` there."""

    def __init__(self, directory: str | None = None, keep: bool = False):
        self.directory = directory
        self.keep = keep
        self.lines: list[str] = []
        self.values: dict[str, np.ndarray] = {}
        if directory:
            os.makedirs(directory, exist_ok=True)

    def on_value(self, name, value):
        index = len(self.lines)
        self.lines.append(crc_line(index, name, value))
        if self.keep:
            self.values[name] = np.array(value)
        if self.directory:
            np.save(os.path.join(self.directory, f"{index:04d}_{safe_filename(name)}.npy"),
                    np.ascontiguousarray(value))


@dataclass
class OpRecord:
    op_type: str
    name: str
    shape: tuple[int, ...]
    macs: int
    seconds: float


class ProfileHook(Hook):
    """Per-op wall time and MACs (MACs scaled to the run's batch size)."""

    def __init__(self, executor: Executor):
        self._macs = {s.node.name: s.macs for s in executor.steps}
        self._batch = executor.static_batch
        self.records: list[OpRecord] = []

    def on_node(self, node, inputs, outputs, seconds):
        out = outputs[0]
        batch = out.shape[0] if out.ndim else 1
        macs = self._macs.get(node.name, 0) * batch // max(self._batch, 1)
        self.records.append(OpRecord(node.source_op_type or node.op_type, node.name,
                                     tuple(out.shape), macs, seconds))

    def table(self) -> str:
        rows = [("#", "op", "name", "output shape", "MACs", "ms")]
        for i, r in enumerate(self.records):
            rows.append((str(i), printable(r.op_type), printable(r.name, 60),
                         "x".join(map(str, r.shape)),
                         f"{r.macs:,}", f"{r.seconds * 1e3:.3f}"))
        total_macs = sum(r.macs for r in self.records)
        total_s = sum(r.seconds for r in self.records)
        rows.append(("", "total", f"{len(self.records)} ops", "", f"{total_macs:,}",
                     f"{total_s * 1e3:.3f}"))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        right = {0, 4, 5}
        return "\n".join(
            "  ".join(cell.rjust(w) if c in right else cell.ljust(w)
                      for c, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows
        )
