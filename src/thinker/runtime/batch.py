"""Where the batch is, for graphs that do not keep it on axis 0 everywhere.

Almost every op carries the batch on axis 0, and the executors run any batch by growing that
axis. GRUInt/LSTMInt keep PyTorch's recurrent layouts instead: their states are [1, B, H] and
a sequence without ``batch_first`` is [T, B, F], so the batch sits on axis 1 (``Op.batch_axes``
declares it). For a graph with such tensors, ``batch_layout`` finds the batch axis of every
tensor: from the declaring ops, carried through the ops that keep positions (element-wise,
Quant/Requant/Dequant, Slice/Split/Concat/iqCat on other axes, LinearInt, Transpose, Reshape
when the batch axis survives whole); every other op holds it on axis 0. ``run_in_samples``
then runs a batch other than the exported one sample group by sample group (each run has the
model's static shapes, so every kernel and every memory plan is the exported one) and joins
the outputs, and what hooks saw, on each tensor's batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from thinker.errors import ThinkerInputError, ThinkerModelError
from thinker.errors import name as shown
from thinker.graph.ir import Graph, Node
from thinker.ops import OPS

# output positions = input positions (every non-constant input of the output's rank)
SAME = {"Quant", "Dequant", "Requant", "Relu", "Clip", "PRelu", "iqAdd", "iqSub", "iqMul",
        "iqDiv", "iqSigmoid", "iqTanh", "Identity"}
# the same, as long as the op's own axis is not the batch axis
ALONG_AXIS = {"Concat", "iqCat", "Split", "Slice", "SoftmaxInt", "LogSoftmaxInt", "GluInt",
              "LinearInt"}
RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


@dataclass
class BatchLayout:
    axes: dict[str, int]  # every activation tensor -> its batch axis
    problem: str | None = None  # why another batch cannot run (None: it can)

    def axis(self, name: str) -> int:
        return self.axes.get(name, 0)


def _op_axes(node: Node, graph: Graph) -> list[int]:
    """The axes an ALONG_AXIS node works along (normalised)."""
    rank = len(graph.tensors[node.inputs[0]].shape)
    if node.op_type == "Slice":
        from thinker.ops.shape import slice_params

        ins = [graph.tensors[n] if n else None for n in node.inputs]
        return list(slice_params(node, ins)[0])
    if node.op_type == "LinearInt":
        return [rank - 1]
    key = {"iqCat": "dim", "GluInt": "dim"}.get(node.op_type, "axis")
    value = node.attrs.get(key)
    if value is None:
        value = node.attrs.get("axis" if key == "dim" else "dim")
    if value is None:
        value = {"Concat": 0, "Split": 0, "iqCat": 1}.get(node.op_type, -1)
    return [int(value) % max(rank, 1)]


def _reshape_map(src: tuple, dst: tuple, axis: int) -> list[int]:
    """The axes of ``dst`` that can hold ``src``'s axis whole (same size, same elements before
    it); several when size-1 axes surround it."""
    before = math.prod(src[:axis])
    return [b for b in range(len(dst)) if dst[b] == src[axis] and math.prod(dst[:b]) == before]


def batch_layout(graph: Graph) -> BatchLayout | None:
    """None when every op keeps the batch on axis 0 (the executors' ordinary path)."""
    declared = []
    for node in graph.nodes:
        ins = [graph.tensors[n] if n else None for n in node.inputs]
        decl = OPS[node.op_type].batch_axes(node, ins)
        if decl is not None:
            declared.append((node, decl))
    if not declared:
        return None
    axes: dict[str, int] = {}
    problems: list[str] = []

    def active(name: str) -> bool:
        return bool(name) and not graph.tensors[name].is_constant

    edges = set(graph.inputs) | set(graph.outputs)

    def put(name: str, axis: int, node: Node) -> bool:
        old = axes.get(name)
        if old is None:
            axes[name] = axis
            return True
        # two readings of a tensor inside the graph are harmless (each group runs the static
        # shapes, e.g. tpacker dropped a Reshape between two size-1 axes); at the edges they
        # decide how inputs are cut and outputs joined
        if old != axis and name in edges:
            problems.append(f"{node.label()} sees the batch of '{shown(name)}' on axis {axis}, "
                            f"another op on axis {old}")
        return False

    for node, (in_axes, out_axes) in declared:
        for name, axis in zip(node.inputs, in_axes, strict=False):
            if axis is not None and active(name):
                put(name, axis, node)
        for name, axis in zip(node.outputs, out_axes, strict=True):
            put(name, axis, node)
    declaring = {id(node) for node, _ in declared}
    for node in graph.nodes:  # ops without layout rules hold the batch on axis 0
        kind = node.op_type
        if id(node) in declaring or kind in SAME or kind in ALONG_AXIS or \
                kind in RESHAPES or kind == "Transpose":
            continue
        for name in [*node.inputs, *node.outputs]:
            if active(name):
                put(name, 0, node)
    changed = True
    while changed and not problems:
        changed = False
        for node in graph.nodes:
            changed |= _carry(graph, node, axes, put, problems, active)
    layout = BatchLayout(axes)
    if problems:
        layout.problem = problems[0]
    return layout


def _carry(graph, node, axes, put, problems, active) -> bool:
    kind, changed = node.op_type, False
    if kind in SAME or kind in ALONG_AXIS:
        rank = len(graph.tensors[node.outputs[0]].shape)
        names = [n for n in [*node.inputs, *node.outputs]
                 if active(n) and len(graph.tensors[n].shape) == rank]
        known = [axes[n] for n in names if n in axes]
        if not known:
            return False
        if kind in ALONG_AXIS and known[0] in _op_axes(node, graph):
            problems.append(f"{node.label()} works along the batch axis {known[0]}")
            return False
        for n in names:
            changed |= put(n, known[0], node)
        return changed
    if kind == "Transpose":
        src, dst = node.inputs[0], node.outputs[0]
        rank = len(graph.tensors[src].shape)
        perm = node.attrs.get("perm") or list(range(rank))[::-1]
        perm = [int(p) for p in perm]
        if src in axes:
            changed |= put(dst, perm.index(axes[src]), node)
        if dst in axes:
            changed |= put(src, perm[axes[dst]], node)
        return changed
    if kind in RESHAPES:
        src, dst = node.inputs[0], node.outputs[0]
        s, d = tuple(graph.tensors[src].shape), tuple(graph.tensors[dst].shape)
        for a, b, x, y in ((src, dst, s, d), (dst, src, d, s)):
            if a not in axes:
                continue
            found = _reshape_map(x, y, axes[a])
            if not found or (b in axes and axes[b] not in found):
                problems.append(f"{node.label()} reshapes the batch axis together with "
                                "others")
                return False
            if len(found) == 1:  # several: size-1 axes around it; the other side decides
                changed |= put(b, found[0], node)
        return changed
    return False


class _Collect:
    """Keeps what one sample group's run shows to hooks, in order."""

    def __init__(self):
        self.events: list[tuple] = []

    def on_value(self, name, value):
        self.events.append(("value", name, np.array(value)))

    def on_node(self, node, inputs, outputs, seconds):
        self.events.append(("node", node, seconds))


def split_feeds(feeds: dict, specs: Sequence, layout: BatchLayout, where: str,
                ) -> tuple[int, int]:
    """(samples per group = the static batch, number of groups) of checked feeds."""
    if not isinstance(feeds, dict):
        raise ThinkerInputError(f"{where}: inputs must be a dict {{name: array}}")
    groups, static = None, 1
    for s in specs:
        if s.name not in feeds or not s.shape:
            continue
        arr = np.asarray(feeds[s.name])
        axis = layout.axis(s.name)
        expected = [d if i != axis else "N" for i, d in enumerate(s.shape)]
        shape_ok = arr.ndim == len(s.shape) and all(
            g == d for i, (g, d) in enumerate(zip(arr.shape, s.shape, strict=True))
            if i != axis)
        if not shape_ok:
            raise ThinkerInputError(
                f"{where}: input '{shown(s.name)}': shape {list(arr.shape)} given, "
                f"{list(s.shape)} expected (any batch size N on axis {axis}: "
                f"{expected})".replace("'N'", "N"))
        static = s.shape[axis]
        given = arr.shape[axis]
        if static == 0 or given % static:
            raise ThinkerInputError(f"{where}: input '{shown(s.name)}' has batch {given} on "
                                    f"axis {axis}; this model runs multiples of batch {static}")
        if groups is None:
            groups = given // static
        elif given // static != groups:
            raise ThinkerInputError(f"{where}: input '{shown(s.name)}' has another batch size "
                                    "than the other inputs; give every input the same number "
                                    "of samples")
    return static, groups or 1


def run_in_samples(feeds: dict, hooks: Sequence, specs: Sequence, layout: BatchLayout,
                   run_one: Callable[[dict, Sequence], dict], constants: dict, where: str,
                   ) -> dict:
    """Run ``run_one`` (checked feeds of the static batch, hooks -> outputs) once per group of
    ``static batch`` samples, taken on each input's batch axis; outputs and hook values are
    joined on each tensor's batch axis."""
    static, groups = split_feeds(feeds, specs, layout, where)
    if groups == 1:
        return run_one(feeds, hooks)
    if layout.problem:
        raise ThinkerModelError(
            f"{where}: cannot run {groups * static} samples: {layout.problem}; run with the "
            f"batch the model was exported with ({static}), or export it for this batch")
    results, collected = [], []
    for g in range(groups):
        part = {}
        for name, value in feeds.items():
            arr = np.asarray(value)
            axis = layout.axis(name)
            part[name] = np.take(arr, range(g * static, (g + 1) * static), axis=axis) \
                if arr.ndim else arr
        collector = _Collect()
        results.append(run_one(part, [collector] if hooks else ()))
        collected.append(collector)
    joined = {name: results[0][name] if name in constants else  # a constant output: once
              np.concatenate([r[name] for r in results], axis=layout.axis(name))
              for name in results[0]}
    if hooks:
        _replay(collected, hooks, layout, constants)
    return joined


def _replay(collected: list[_Collect], hooks: Sequence, layout: BatchLayout,
            constants: dict) -> None:
    """Show the hooks the whole batch: each value joined over the groups, each node once with
    the summed time."""
    values: dict[str, np.ndarray] = {}
    for events in zip(*(c.events for c in collected), strict=True):
        kind, key = events[0][0], events[0][1]
        if kind == "value":
            parts = [e[2] for e in events]
            value = np.concatenate(parts, axis=layout.axis(key)) if parts[0].ndim \
                else parts[0]
            values[key] = value
            for h in hooks:
                h.on_value(key, value)
        else:
            args = [None if not n else values.get(n, constants.get(n)) for n in key.inputs]
            outs = [values[n] for n in key.outputs]
            seconds = sum(e[2] for e in events)
            for h in hooks:
                h.on_node(key, args, outs, seconds)


__all__ = ["BatchLayout", "batch_layout", "run_in_samples", "split_feeds"]
