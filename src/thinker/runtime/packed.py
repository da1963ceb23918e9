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
from thinker.resource import format as fmt
from thinker.resource.reader import PackedModel, read_model
from thinker.runtime.batch import run_in_samples
from thinker.runtime.dynamic import DynamicAxis, Variants
from thinker.runtime.executor import Executor, Hook
from thinker.runtime.stream import Stream


def _check_consistent(graph: Graph, where: str) -> None:
    """The ops' records against what they compute (thinker.resource.rules.check_consistent);
    fills in the attribute defaults the kernels read."""
    from thinker.resource.rules import check_consistent

    check_consistent(graph, where)


class PackedExecutor(Executor):
    """Executes a PackedModel with its memory plan."""

    max_arena_bytes = 64 << 20  # per chunk of a batch run without hooks

    def __init__(self, packed: PackedModel, graph: Graph | None = None):
        """``graph``: the packed graph at other lengths of its dynamic axes (a variant; same
        placements, each tensor a prefix of its planned bytes)."""
        self.packed = packed
        variant = graph is not None
        graph = graph if variant else packed.to_graph()
        try:
            _check_consistent(graph, packed.path)
            super().__init__(graph)
        except ThinkerModelError as exc:
            raise ThinkerFormatError(f"{packed.path}: {exc}") from None
        except ThinkerFormatError:
            raise
        except Exception as exc:  # prepare() on inconsistent records: still a format error
            raise ThinkerFormatError(f"{packed.path}: inconsistent model ({exc})") from None
        self.placement = {r.name: (r.memory, r.offset, graph.tensors[r.name].nbytes)
                          for r in packed.tensors if not r.is_constant}
        self._variants = None
        if graph.dynamic and not variant:
            self._variants = Variants(graph, [DynamicAxis(*d) for d in graph.dynamic],
                                      self._variant)

    def _variant(self, graph: Graph) -> PackedExecutor:
        """This model at other dynamic lengths: shapes re-inferred (what a model exported at
        those lengths computes), checked against the file's shape rules (what the C executor
        uses)."""
        graph.dynamic = []
        names = [r.name for r in self.packed.tensors]
        lengths = {i: graph.tensors[names[t]].shape[a]
                   for i, (t, a, *_r) in enumerate(self.packed.dynamic_shapes)}
        for tid, axis, rule, mul, add, div in self.packed.shape_rules:
            if graph.tensors[names[tid]].shape[axis] != (mul * lengths[rule] + add) // div:
                raise ThinkerFormatError(
                    f"{self.packed.path}: shape rule of '{shown(names[tid])}' axis {axis} "
                    f"disagrees with its op's shape at lengths {list(lengths.values())}; "
                    "repack the model")
        return PackedExecutor(self.packed, graph)

    def stream(self) -> Stream:
        """A stream over this model (``tpacker --isstream``): ``run`` chunks, states carried,
        ``reset()`` starts over (thinker.runtime.stream.Stream)."""
        return Stream(self)

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
        key = self._variants.key(feeds) if self._variants and isinstance(feeds, dict) else None
        if key is not None:  # another length on a dynamic axis: planned bytes, shorter tensors
            return self._variants.get(key).run(feeds, hooks)
        if self.batch_layout is not None:  # recurrent layouts: by groups of the static batch
            return run_in_samples(feeds, hooks, self.inputs, self.batch_layout,
                                  lambda f, h: self._run_scaled(self.check_inputs(f), h, 1),
                                  self._constants, shown(self.packed.path))
        feeds = self.check_inputs(feeds)
        static = self.static_batch
        given = {v.shape[0] for v in feeds.values() if v.ndim}
        if static > 1 and len(given) == 1 and given != {static}:  # any batch (any_batch.py)
            (n,) = given
            self.check_any_batch(n, shown(self.packed.path))
            if n % static:
                from thinker.runtime.any_batch import run_padded

                return run_padded(feeds, hooks, static, self.run)
        scale = self._batch_scale(feeds, shown(self.packed.path))
        chunk = max(1, self.max_arena_bytes // max(self.arena_bytes, 1))
        if hooks or scale <= chunk:
            return self._run_scaled(feeds, hooks, scale)
        parts = [self._run_scaled({k: v[i * static:(i + chunk) * static]
                                   for k, v in feeds.items()}, (), min(chunk, scale - i))
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
