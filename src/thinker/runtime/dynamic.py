"""Dynamic axes: an input axis whose length may change from call to call (a streamed chunk, a
``--dynamic_shape`` time axis). The model is prepared once per distinct input shape: shapes are
re-inferred from the new input shapes through every op (``infer_shapes``), so each run uses the
exact kernels and shapes of a model exported at that length, and the results are those of that
model bit for bit. Prepared variants are cached (a few lengths is the usual case)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from thinker.errors import ThinkerInputError, ThinkerModelError
from thinker.errors import name as shown
from thinker.graph.ir import Graph


@dataclass(frozen=True)
class DynamicAxis:
    input: str
    axis: int
    minimum: int = 1
    maximum: int = 2**31 - 1
    factor: int = 1

    def check(self, length: int) -> None:
        if not self.minimum <= length <= self.maximum or (length - self.minimum) % self.factor:
            raise ThinkerInputError(
                f"input '{shown(self.input)}': length {length} on axis {self.axis} is not "
                f"allowed; this model takes MIN:MAX:FACTOR = {self.minimum}:{self.maximum}:"
                f"{self.factor} ({self.minimum}, {self.minimum + self.factor}, ... up to "
                f"{self.maximum})")


def reshaped(graph: Graph, shapes: dict[str, tuple[int, ...]]) -> Graph:
    """A copy of ``graph`` whose inputs have ``shapes``, every other shape re-inferred."""
    from thinker.graph.onnx_import import infer_shapes

    g = graph.copy()
    for name, shape in shapes.items():
        t = g.tensors[name]
        g.tensors[name] = type(t)(t.name, tuple(int(v) for v in shape), t.dtype, t.exponent)
    for node in g.nodes:  # outputs are re-derived
        for out in node.outputs:
            t = g.tensors[out]
            g.tensors[out] = type(t)(t.name, t.shape, t.dtype, t.exponent, None)
    try:
        infer_shapes(g)
    except ThinkerModelError as exc:
        raise ThinkerModelError(f"the model cannot run at input shapes {shapes}: {exc}") \
            from None
    return g


class Variants:
    """Executors of one graph at other input lengths, built on first use."""

    def __init__(self, graph: Graph, axes: list[DynamicAxis], build: Callable[[Graph], object]):
        self.graph, self.axes, self.build = graph, axes, build
        self._cache: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def key(self, feeds: dict[str, np.ndarray]) -> tuple | None:
        """The lengths of the dynamic axes in ``feeds``; None when they are the static ones."""
        lengths = []
        for a in self.axes:
            arr = feeds.get(a.input)
            static = self.graph.tensors[a.input].shape[a.axis]
            if arr is None or np.ndim(arr) <= a.axis:
                lengths.append(static)
                continue
            length = int(np.shape(arr)[a.axis])
            a.check(length)
            lengths.append(length)
        static = tuple(self.graph.tensors[a.input].shape[a.axis] for a in self.axes)
        return None if tuple(lengths) == static else tuple(lengths)

    def get(self, key: tuple):
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                shapes: dict[str, tuple[int, ...]] = {}
                for a, length in zip(self.axes, key, strict=True):
                    shape = list(shapes.get(a.input, self.graph.tensors[a.input].shape))
                    shape[a.axis] = length
                    shapes[a.input] = tuple(shape)
                found = self.build(reshaped(self.graph, shapes))
                self._cache[key] = found
            return found
