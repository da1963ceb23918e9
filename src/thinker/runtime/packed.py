"""Running a model.bin with numpy: every activation lives at its planned offset inside one
byte arena per memory kind, exactly as on the device, so a wrong plan corrupts results.

For a batch of N the arenas are N times larger and every offset is scaled by N: scaling all
intervals by the same factor keeps disjoint intervals disjoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from thinker.errors import ThinkerFormatError, ThinkerModelError
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
                not all(node.inputs[: op.min_inputs]):
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

    def _views(self, scale: int) -> dict[str, np.ndarray]:
        arenas = {kind: np.zeros(size * scale, dtype=np.uint8)
                  for kind, (size, _) in self.packed.arenas.items()}
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
        batch = next(iter(feeds.values())).shape[0] if feeds else self.static_batch
        static = self.static_batch
        if batch != static and static != 1:
            raise ThinkerModelError(f"{self.packed.path}: this model runs batch {static} only")
        views = self._views(batch // static)
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
