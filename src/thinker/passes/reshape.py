"""Passes that remove data movement:

* canonical_reshapes: Flatten / Squeeze / Unsqueeze, and Transposes that only move size-1
  axes (same bytes, same order), become a Reshape to the static output shape;
* merge_reshapes: a Reshape of a Reshape (whose middle result nobody else reads) is one Reshape;
* drop_identity: Reshapes to the same shape and Slices that keep everything disappear.
"""

from __future__ import annotations

import numpy as np

from thinker.graph.ir import Graph, Node
from thinker.passes.edit import add_constant, consumers_of, rename_uses

RESHAPE_LIKE = {"Flatten", "Squeeze", "Unsqueeze"}


def _moves_only_unit_axes(shape: tuple[int, ...], perm: list[int]) -> bool:
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


def _to_reshape(g: Graph, node: Node) -> None:
    out = g.tensors[node.outputs[0]]
    shape = add_constant(g, f"{node.name}_shape", np.array(out.shape, dtype=np.int64))
    node.op_type, node.source_op_type = "Reshape", node.source_op_type or node.op_type
    node.inputs = [node.inputs[0], shape]
    node.attrs = {"allowzero": 0}


def canonical_reshapes(graph: Graph) -> Graph:
    g = graph.copy()
    for node in g.nodes:
        if node.op_type in RESHAPE_LIKE:
            _to_reshape(g, node)
        elif node.op_type == "Transpose":
            shape = g.tensors[node.inputs[0]].shape
            perm = node.attrs.get("perm") or list(range(len(shape)))[::-1]
            if _moves_only_unit_axes(shape, [int(p) for p in perm]):
                _to_reshape(g, node)
    g.remove_unused()
    return g


def merge_reshapes(graph: Graph) -> Graph:
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        for node in g.nodes:
            if node.op_type != "Reshape":
                continue
            src = node.inputs[0]
            producer = next((n for n in g.nodes if src in n.outputs), None)
            if producer is None or producer.op_type != "Reshape" or src in g.outputs \
                    or len(consumers_of(g, src)) != 1:
                continue
            node.inputs[0] = producer.inputs[0]
            g.nodes.remove(producer)
            changed = True
            break
    g.remove_unused()
    return g


def _is_identity(g: Graph, node: Node) -> bool:
    if node.op_type not in ("Reshape", "Slice", "Identity"):
        return False
    src, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    if src.shape != out.shape or src.is_constant:
        return False
    if node.op_type == "Slice":
        steps = g.tensors[node.inputs[4]].data if len(node.inputs) > 4 and node.inputs[4] \
            else None
        return steps is None or bool(np.all(steps == 1))
    return True


def drop_identity(graph: Graph) -> Graph:
    g = graph.copy()
    for node in list(g.nodes):
        if not _is_identity(g, node):
            continue
        src, out = node.inputs[0], node.outputs[0]
        if out in g.outputs and (src in g.inputs or src in g.outputs):
            continue  # the output name must survive and cannot take over its input's
        g.nodes.remove(node)
        if out in g.outputs:  # keep the graph output's name: the producer writes it directly
            producer = next(n for n in g.nodes if src in n.outputs)
            producer.outputs = [out if x == src else x for x in producer.outputs]
            rename_uses(g, src, out)
        else:
            rename_uses(g, out, src)
    g.remove_unused()
    return g
