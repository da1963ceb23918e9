"""Running a model.bin with numpy: every activation lives at its planned offset inside one
byte arena per memory kind, exactly as on the device, so a wrong plan corrupts results.

For a batch of N the arenas are N times larger and every offset is scaled by N: scaling all
intervals by the same factor keeps disjoint intervals disjoint. A large batch runs in chunks
whose arenas fit ``PackedExecutor.max_arena_bytes`` (streaming: memory stays bounded whatever
the batch); with hooks, which see whole-batch tensors, it runs at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from thinker.errors import ThinkerFormatError, ThinkerInputError, ThinkerModelError
from thinker.errors import name as shown
from thinker.graph.ir import Graph
from thinker.ops import OPS
from thinker.ops.base import REQUIRED
from thinker.resource import format as fmt
from thinker.resource.reader import PackedModel, read_model
from thinker.runtime.executor import Executor, Hook


def _check_consistent(graph: Graph, where: str) -> None:
    """Re-derive every node's outputs from its inputs; a model.bin whose records disagree is
    rejected before any kernel runs."""
    for node in graph.nodes:
        op = OPS.get(node.op_type)
        if op is None:
            raise ThinkerFormatError(f"{where}: op {node.label()} has unknown type "
                                     f"'{node.op_type}'")
        if not op.min_inputs <= len(node.inputs) <= op.max_inputs or \
                not all(name or i in op.optional_inputs
                        for i, name in enumerate(node.inputs[: op.min_inputs])):
            raise ThinkerFormatError(f"{where}: op {node.label()} has inputs {node.inputs}; "
                                     f"it needs {op.min_inputs}..{op.max_inputs}")
        missing = [k for k, v in op.attrs.items() if v is REQUIRED and k not in node.attrs]
        if missing:
            raise ThinkerFormatError(f"{where}: op {node.label()} lacks attributes {missing}")
        for key, default in op.attrs.items():
            node.attrs.setdefault(key, default)
        ins = [graph.tensors[n] if n else None for n in node.inputs]
        try:
            outs = op.infer(node, ins)
        except ThinkerModelError:
            raise
        except Exception as exc:  # a CRC-valid but inconsistent file must not crash us
            raise ThinkerFormatError(f"{where}: op {node.label()} is malformed ({exc})") \
                from None
        if len(outs) != len(node.outputs):
            raise ThinkerFormatError(f"{where}: op {node.label()} lists {len(node.outputs)} "
                                     f"outputs, computes {len(outs)}")
        for name, spec in zip(node.outputs, outs, strict=True):
            t = graph.tensors[name]
            if tuple(t.shape) != tuple(spec.shape) or np.dtype(t.dtype) != spec.dtype:
                raise ThinkerFormatError(
                    f"{where}: {node.label()} output '{name}' is recorded as "
                    f"{np.dtype(t.dtype).name}{list(t.shape)} but computes "
                    f"{spec.dtype.name}{list(spec.shape)}")


class PackedExecutor(Executor):
    """Executes a PackedModel with its memory plan."""

    max_arena_bytes = 64 << 20  # per chunk of a batch run without hooks

    def __init__(self, packed: PackedModel):
        self.packed = packed
        graph = packed.to_graph()
        try:
            _check_consistent(graph, packed.path)
            super().__init__(graph)
        except ThinkerModelError as exc:
            raise ThinkerFormatError(f"{packed.path}: {exc}") from None
        except ThinkerFormatError:
            raise
        except Exception as exc:  # prepare() on inconsistent records: still a format error
            raise ThinkerFormatError(f"{packed.path}: inconsistent model ({exc})") from None
        self.placement = {r.name: (r.memory, r.offset, r.nbytes) for r in packed.tensors
                          if not r.is_constant}

    @property
    def arena_bytes(self) -> int:
        """Bytes of all arenas for the model's static batch."""
        return sum(size for size, _ in self.packed.arenas.values())

    def _views(self, scale: int, hooks: bool = False) -> dict[str, np.ndarray]:
        try:
            arenas = {kind: np.zeros(size * scale, dtype=np.uint8)
                      for kind, (size, _) in self.packed.arenas.items()}
        except (MemoryError, ValueError):
            why = " (hooks such as --dump, --crc and --profile see the whole batch at once)" \
                if hooks else ""
            raise ThinkerInputError(
                f"{shown(self.packed.path)}: not enough memory for the arenas of "
                f"{scale * self.static_batch} samples ({self.arena_bytes * scale:,} B){why}; "
                "use a smaller batch") from None
        views = {}
        for name, (kind, offset, nbytes) in self.placement.items():
            t = self.graph.tensors[name]
            start = offset * scale
            raw = arenas[kind][start: start + nbytes * scale]
            shape = (t.shape[0] * scale, *t.shape[1:]) if t.shape else t.shape
            views[name] = raw.view(t.dtype).reshape(shape)
        return views

    def run(self, feeds: dict[str, np.ndarray],
            hooks: Sequence[Hook] = ()) -> dict[str, np.ndarray]:
        feeds = self.check_inputs(feeds)
        scale = self._batch_scale(feeds, shown(self.packed.path))
        static = self.static_batch
        if scale != 1 and static != 1:
            raise ThinkerModelError(f"{shown(self.packed.path)}: this model runs batch {static} "
                                    "only")
        chunk = max(1, self.max_arena_bytes // max(self.arena_bytes, 1))
        if hooks or scale <= chunk:
            return self._run_scaled(feeds, hooks, scale)
        parts = [self._run_scaled({k: v[i:i + chunk] for k, v in feeds.items()}, (),
                                  min(chunk, scale - i))
                 for i in range(0, scale, chunk)]
        return {name: np.concatenate([p[name] for p in parts]) if name in self.placement
                else parts[0][name] for name in parts[0]}  # a constant output: once

    def _run_scaled(self, feeds: dict[str, np.ndarray], hooks: Sequence[Hook],
                    scale: int) -> dict[str, np.ndarray]:
        views = self._views(scale, bool(hooks))
        for name, arr in feeds.items():
            np.copyto(views[name], arr)
            for h in hooks:
                h.on_value(name, views[name])
        constants = self._constants
        for step in self.steps:
            node = step.node
            args = [None if not n else constants[n] if n in constants else views[n]
                    for n in node.inputs]
            start = time.perf_counter()
            results = step.kernel(*args)
            seconds = time.perf_counter() - start
            for name, value in zip(node.outputs, results, strict=True):
                np.copyto(views[name], value)
            for h in hooks:
                for name in node.outputs:
                    h.on_value(name, views[name])
                h.on_node(node, args, [views[n] for n in node.outputs], seconds)
        return {name: np.array(views[name]) if name in views else np.array(constants[name])
                for name in self.graph.outputs}


def load_packed(path: str) -> PackedExecutor:
    return PackedExecutor(read_model(path))


__all__ = ["PackedExecutor", "fmt", "load_packed"]
