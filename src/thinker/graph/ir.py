"""The intermediate representation: a Graph of Nodes over named Tensors.

Tensors carry static shape (with the model's batch size on axis 0 for activations), dtype, and
the power-of-two exponent ``q`` of quantized values (``None`` for float tensors). Constants
carry their data. Nodes carry the canonical op type (see ``thinker.graph.dialect``) and parsed
attributes. ``Graph.nodes`` is always in a valid execution (topological) order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thinker.errors import name as printable_name


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    exponent: int | None = None  # real value = int / 2**exponent; None: float tensor
    data: np.ndarray | None = None  # set for constants (initializers, folded values)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        q = "" if self.exponent is None else f" q={self.exponent}"
        return f"'{printable_name(self.name)}' {np.dtype(self.dtype).name}{list(self.shape)}{q}"


@dataclass
class Node:
    op_type: str  # canonical name, e.g. "Conv2dInt"
    name: str
    inputs: list[str]  # "" marks an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    source_op_type: str = ""  # the name in the file, e.g. "QConv2d", for messages

    def label(self) -> str:
        shown = printable_name(self.source_op_type or self.op_type)
        return f"{shown} '{printable_name(self.name)}'"


@dataclass
class Graph:
    name: str
    nodes: list[Node]
    tensors: dict[str, Tensor]
    inputs: list[str]
    outputs: list[str]
    opset: int = 11
    source_path: str = ""
    # streaming (tpacker --isstream): (history input, state output) pairs the executors carry
    streams: list[tuple[str, str]] = field(default_factory=list)
    # input axes whose length changes per call: (input, axis, min, max, factor)
    dynamic: list[tuple[str, int, int, int, int]] = field(default_factory=list)

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        table: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    table.setdefault(name, []).append(node)
        return table

    def constants(self) -> dict[str, Tensor]:
        return {n: t for n, t in self.tensors.items() if t.is_constant}

    def copy(self) -> Graph:
        """A copy that passes may edit freely (constant arrays are shared, never mutated)."""
        return Graph(
            self.name,
            [Node(n.op_type, n.name, list(n.inputs), list(n.outputs), dict(n.attrs),
                  n.source_op_type) for n in self.nodes],
            {k: Tensor(t.name, t.shape, t.dtype, t.exponent, t.data)
             for k, t in self.tensors.items()},
            list(self.inputs), list(self.outputs), self.opset, self.source_path,
            list(self.streams), list(self.dynamic),
        )

    def unique_name(self, base: str) -> str:
        """A tensor/node name not used yet, derived from ``base``."""
        taken = set(self.tensors) | {n.name for n in self.nodes}
        if base not in taken:
            return base
        k = 1
        while f"{base}_{k}" in taken:
            k += 1
        return f"{base}_{k}"

    def remove_unused(self) -> None:
        """Drop tensors no node or graph input/output refers to."""
        used = set(self.inputs) | set(self.outputs)
        for n in self.nodes:
            used.update(x for x in n.inputs if x)
            used.update(n.outputs)
        self.tensors = {k: t for k, t in self.tensors.items() if k in used}
