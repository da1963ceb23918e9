"""Small graph-editing helpers shared by the passes."""

from __future__ import annotations

import numpy as np

from thinker.graph.ir import Graph, Node, Tensor


def consumers_of(graph: Graph, name: str) -> list[Node]:
    return [n for n in graph.nodes if name in n.inputs]


def rename_uses(graph: Graph, old: str, new: str) -> None:
    """Every reader of tensor ``old`` (nodes and graph outputs) reads ``new`` instead."""
    for n in graph.nodes:
        n.inputs = [new if x == old else x for x in n.inputs]
    graph.outputs = [new if x == old else x for x in graph.outputs]


def add_constant(graph: Graph, base: str, value: np.ndarray) -> str:
    name = graph.unique_name(base)
    arr = np.asarray(value)
    graph.tensors[name] = Tensor(name, tuple(arr.shape), arr.dtype, None, arr)
    return name


def add_node(graph: Graph, index: int, op_type: str, base: str, inputs: list[str],
             outputs: list[str], attrs: dict | None = None) -> Node:
    node = Node(op_type, graph.unique_name(base), inputs, outputs, dict(attrs or {}))
    graph.nodes.insert(index, node)
    return node


def placeholder(graph: Graph, base: str, like: Tensor) -> str:
    """Reserve a tensor name; shape inference fills in the real description."""
    name = graph.unique_name(base)
    graph.tensors[name] = Tensor(name, like.shape, like.dtype, like.exponent)
    return name
