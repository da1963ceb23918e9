"""Buffers and their lifetimes over the execution order.

A buffer is the storage of one or more tensors: reshape-like ops alias their input (same bytes,
no copy), and element-wise ops may write their output over an input that dies at that op
(in-place). Step ``i`` is the i-th node; graph inputs are born at step -1 and graph outputs
live until step ``len(nodes)``. Intervals are inclusive: an op needs its inputs and outputs at
the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thinker.graph.ir import Graph

# ops whose output is the input's bytes reinterpreted (C order is unchanged)
ALIASING_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
# ops that may write their output over a same-sized input dying at that op: each output
# element depends only on the input elements at the same index
IN_PLACE_OPS = {"Relu", "Clip", "iqAdd", "iqSub", "iqMul", "Requant", "PRelu", "iqSigmoid",
                "iqTanh"}


@dataclass
class Buffer:
    id: int
    tensors: list[str]
    nbytes: int  # largest tensor stored in it
    first: int
    last: int
    kind: int = 0  # memory kind, set by placement
    size: int = 0  # aligned size, set by placement
    fixed: bool = False  # lives for the whole program (e.g. constants copied to RAM)
    scratch_op: int = -1  # kernel scratch of that op (live only during it), else -1
    state: bool = False  # a stream's history input / state output (carried between calls)

    def overlaps(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class Lifetimes:
    buffers: list[Buffer]
    buffer_of: dict[str, int] = field(default_factory=dict)  # tensor -> buffer id
    steps: int = 0


def tensor_nbytes(graph: Graph, name: str) -> int:
    t = graph.tensors[name]
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize


def compute_lifetimes(graph: Graph, in_place: bool = True) -> Lifetimes:
    """Buffers for every non-constant tensor, with aliasing and (optionally) in-place reuse."""
    steps = len(graph.nodes)
    outputs = set(graph.outputs)
    inputs = set(graph.inputs)
    buffers: list[Buffer] = []
    owner: dict[str, int] = {}

    def new_buffer(name: str, first: int) -> None:
        owner[name] = len(buffers)
        buffers.append(Buffer(len(buffers), [name], tensor_nbytes(graph, name), first, first))

    for name in graph.inputs:
        new_buffer(name, -1)
    for i, node in enumerate(graph.nodes):
        live_inputs = [n for n in node.inputs if n and n in owner]
        for n in live_inputs:
            b = buffers[owner[n]]
            b.last = max(b.last, i)
        for k, out in enumerate(node.outputs):
            src = node.inputs[0] if node.inputs and node.inputs[0] in owner else None
            if k == 0 and node.op_type in ALIASING_OPS and src is not None:
                owner[out] = owner[src]
                buffers[owner[src]].tensors.append(out)
                continue
            new_buffer(out, i)
    for name in outputs:
        if name in owner:
            buffers[owner[name]].last = steps
    for b in buffers:
        if any(t in inputs for t in b.tensors):
            b.first = -1

    if in_place:  # graph inputs are never written over (the caller's data, stream histories)
        _merge_in_place(graph, buffers, owner, inputs)
    live = [b for b in buffers if b.id >= 0]
    remap = {b.id: i for i, b in enumerate(live)}
    for b in live:
        b.id = remap[b.id]
    return Lifetimes(live, {t: remap[b] for t, b in owner.items() if b in remap}, steps)


def _merge_in_place(graph: Graph, buffers: list[Buffer], owner: dict[str, int],
                    pinned: set[str]) -> None:
    """Let an in-place op's output take over an input buffer that dies at that op."""
    for i, node in enumerate(graph.nodes):
        if node.op_type not in IN_PLACE_OPS or len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        ob = buffers[owner[out]]
        if ob.first != i or any(t in pinned for t in ob.tensors):
            continue
        for n in node.inputs:
            if not n or n not in owner:
                continue
            ib = buffers[owner[n]]
            if ib.last != i or ib.nbytes != ob.nbytes or ib is ob \
                    or graph.tensors[n].shape != graph.tensors[out].shape \
                    or any(t in pinned for t in ib.tensors):
                continue
            ib.tensors += ob.tensors
            ib.last = ob.last
            for t in ob.tensors:
                owner[t] = ib.id
            ob.id = -1  # dropped
            break


def scratch_buffers(graph: Graph) -> list[Buffer]:
    """One buffer per op whose C kernel needs scratch (``thinker.memory.scratch``), live only
    during that op, so it reuses the bytes of activations dead at that step."""
    from thinker.memory.scratch import op_scratch

    out = []
    for i, node in enumerate(graph.nodes):
        need = op_scratch(graph, node)
        if need > 0:
            out.append(Buffer(-1, [f"<scratch of {node.name}>"], need, i, i, scratch_op=i))
    return out


def live_bytes(buffers: list[Buffer], steps: int) -> np.ndarray:
    """Live (aligned) bytes per step: entry ``k`` is step ``k - 1`` (-1 .. steps)."""
    delta = np.zeros(steps + 3, dtype=np.int64)
    for b in buffers:
        delta[b.first + 1] += b.size
        delta[b.last + 2] -= b.size
    return np.cumsum(delta)[:-1]


def lower_bound(buffers: list[Buffer], steps: int) -> int:
    """Largest sum of simultaneously live (aligned) sizes: no arena can be smaller."""
    if not buffers:
        return 0
    return int(live_bytes(buffers, steps).max(initial=0))


def peak_step(buffers: list[Buffer], steps: int) -> int:
    """The step (-1 .. steps) where the most bytes are live (the first such step)."""
    if not buffers:
        return -1
    return int(np.argmax(live_bytes(buffers, steps))) - 1
