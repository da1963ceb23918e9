"""Any batch on a model exported with batch B > 1 (docs/cli.md, "Batches").

A graph whose samples never meet computes sample ``i`` of every tensor from sample ``i`` of
the inputs alone, so any number of samples can run: a multiple of B as B-sample groups (or
arenas scaled by the multiple), any other count padded with zero samples to the next multiple,
the padding cut from the outputs and from what hooks see.

``mixing_problem`` proves that structurally, op by op, for graphs that keep the batch on axis
0 (recurrent layouts are ``thinker.runtime.batch``'s): the batch enters at axis 0 of every
input and must stay there, whole, on every tensor computed from an input. An op that moves,
reshapes, reduces, slices, pads, concatenates, gathers or softmaxes along the batch axis, or
combines it with a constant of the same extent, mixes samples: its name and why are reported,
and the remedy is to export the model with batch 1 (then every batch runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.errors import name as shown
from thinker.graph.ir import Graph, Node

AXIS_ATTRS = {"SoftmaxInt": ("axis", "dim", -1), "LogSoftmaxInt": ("axis", "dim", -1),
              "GluInt": ("dim", "axis", -1), "iqCat": ("dim", "axis", 1),
              "Concat": ("axis", None, 0), "Split": ("axis", None, 0)}
BROADCASTING = {"iqAdd", "iqSub", "iqMul", "iqDiv", "PRelu", "Concat", "iqCat"}


def static_batch(graph: Graph) -> int:
    shapes = [graph.tensors[n].shape for n in graph.inputs if graph.tensors[n].shape]
    return int(shapes[0][0]) if shapes else 1


def mixing_problem(graph: Graph) -> str | None:
    """Why samples of the static batch would mix (naming the op), or None when every tensor
    computed from the inputs keeps its samples apart on axis 0."""
    batch = static_batch(graph)
    batched: set[str] = set()
    for name in graph.inputs:
        t = graph.tensors[name]
        if not t.shape or t.shape[0] != batch:
            return f"input {t.describe()} does not hold the batch ({batch}) on axis 0"
        batched.add(name)
    for node in graph.nodes:
        if not any(n in batched for n in node.inputs if n):
            continue  # computed from constants only: the same for every sample
        why = _why(node, graph, batched, batch)
        if why:
            return f"{node.label()} {why}"
        for out in node.outputs:
            t = graph.tensors[out]
            if not t.shape or t.shape[0] != batch:
                return f"{node.label()} gives {t.describe()}, which does not keep the batch " \
                       "on axis 0"
            batched.add(out)
    return None


def _axes_of(node: Node, rank: int) -> list[int]:
    """The axes an axis-taking op works along (normalised); [] when it has none."""
    kind = node.op_type
    if kind in AXIS_ATTRS:
        key, other, default = AXIS_ATTRS[kind]
        value = node.attrs.get(key)
        if value is None and other:
            value = node.attrs.get(other)
        return [int(default if value is None else value) % max(rank, 1)]
    if kind in ("iqSum", "iqVar"):
        from thinker.ops.reduce import reduce_axes

        return list(reduce_axes(node, rank))
    return []


def _why(node: Node, graph: Graph, batched: set[str], batch: int) -> str | None:
    kind = node.op_type
    ins = [graph.tensors[n] if n else None for n in node.inputs]
    x = ins[0]
    rank = len(x.shape) if x is not None else 0
    if kind == "Transpose":
        perm = node.attrs.get("perm")
        perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
        if perm and perm[0] != 0:
            return f"moves the batch axis (perm {perm})"
    if 0 in _axes_of(node, rank):
        return "works along the batch axis 0"
    if kind == "Slice":
        from thinker.ops.shape import slice_params

        for a, s, e, st in zip(*slice_params(node, ins), strict=True):
            if a == 0 and not (st == 1 and s in (0, -batch) and e >= batch):
                return "slices the batch axis"
    if kind in ("Pad", "iqPad"):
        from thinker.ops.shape import Pad

        widths, _, _ = Pad()._params(node, ins)
        if widths[0] != (0, 0):
            return "pads the batch axis"
    if kind == "Gather" and node.inputs[0] in batched and \
            int(node.attrs.get("axis", 0) or 0) % max(rank, 1) == 0:
        return "gathers along the batch axis"
    if kind in ("LinearInt", "LayerNormInt") and rank < 2:
        return "works along the batch axis 0"
    if kind == "BmmInt":
        if rank == 2 and node.inputs[1] in batched:
            return "multiplies along the batch axis"
        for name, t in zip(node.inputs, ins, strict=True):
            if name not in batched and t is not None and rank > 2 and t.shape[0] == batch:
                return f"multiplies by '{shown(name)}', which has one value per sample"
    if kind in BROADCASTING:
        out_rank = len(graph.tensors[node.outputs[0]].shape)
        for name, t in zip(node.inputs, ins, strict=True):
            if name and name not in batched and t is not None and len(t.shape) == out_rank \
                    and t.shape[0] == batch and batch > 1:
                return f"combines the batch with '{shown(name)}', which has one value per sample"
    return None


# ---- running a batch that is not a multiple of the static one -------------------------------


class _Trim:
    """A hook wrapper showing the wrapped hook the first ``n`` samples of every batched
    tensor (the padding cut)."""

    def __init__(self, hook, n: int, padded: int):
        self.hook, self.n, self.padded = hook, n, padded

    def _cut(self, value):
        if value is not None and getattr(value, "ndim", 0) and value.shape[0] == self.padded:
            return value[: self.n]
        return value

    def on_value(self, name, value):
        self.hook.on_value(name, self._cut(value))

    def on_node(self, node, inputs, outputs, seconds):
        self.hook.on_node(node, [self._cut(v) for v in inputs],
                          [self._cut(v) for v in outputs], seconds)


def run_padded(feeds: dict[str, np.ndarray], hooks: Sequence, static: int,
               run: Callable[[dict, Sequence], dict]) -> dict[str, np.ndarray]:
    """Run ``n`` samples (not a multiple of ``static``) as the next multiple: zero samples
    appended on axis 0, cut again from the outputs and from what hooks see."""
    n = next(v.shape[0] for v in feeds.values() if np.ndim(v))
    padded = -(-n // static) * static
    fed = {}
    for name, value in feeds.items():
        arr = np.asarray(value)
        if arr.ndim:
            extra = np.zeros((padded - n, *arr.shape[1:]), dtype=arr.dtype)
            arr = np.concatenate([arr, extra])
        fed[name] = arr
    outputs = run(fed, [_Trim(h, n, padded) for h in hooks])
    return {k: v[:n] if np.ndim(v) and v.shape[0] == padded else v for k, v in outputs.items()}


def check_any_batch(graph: Graph, given: int, where: str, problem: str | None) -> None:
    """Refuse ``given`` samples on a model exported with batch B > 1 whose samples mix."""
    static = static_batch(graph)
    if static <= 1 or given == static or problem is None:
        return
    raise ThinkerModelError(
        f"{where}: cannot run batch {given}: {problem}, so its samples mix; this model runs "
        f"batch {static} only: export it with batch 1 (a one-sample example input) to run any "
        "batch")


__all__ = ["check_any_batch", "mixing_problem", "run_padded", "static_batch"]
