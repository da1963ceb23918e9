"""thinker profile: estimated cycles per op from a device profile's cost model.

For each op: compute cycles = MACs / (MACs per cycle of its class), weight cycles = parameter
bytes / (DMA bytes per cycle of the memory the parameters live in), activation cycles =
bytes of inputs and outputs living outside share-memory / (DMA bytes per cycle of that
memory). Weights are prefetched while the previous op computes, so
``cycles = max(compute, weights) + activations``. Data-movement ops (no MACs) cost their bytes
at share-memory speed. The constants and their sources are in the device TOML ([cost]).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from thinker.devices import DeviceProfile
from thinker.errors import ThinkerDeviceError, printable
from thinker.graph.ir import Graph, Node
from thinker.ops import OPS
from thinker.resource import format as fmt

ELEMENTWISE = {"iqAdd", "iqSub", "iqMul", "iqDiv", "Relu", "Clip", "PRelu", "Quant", "Dequant",
               "Requant", "BatchNorm2dInt", "iqCat", "iqSigmoid", "iqTanh", "SoftmaxInt",
               "LogSoftmaxInt", "LayerNormInt", "GluInt", "iqSum", "iqVar"}
POOL = {"AvgPool2dInt", "MaxPool"}
LINEAR = {"LinearInt", "BmmInt", "GRUInt", "LSTMInt"}  # recurrent: the gate GEMMs dominate


@dataclass
class OpCost:
    index: int
    op_type: str
    name: str
    op_class: str
    macs: int
    param_bytes: int
    activation_bytes: int
    compute_cycles: int
    weight_cycles: int
    activation_cycles: int

    @property
    def cycles(self) -> int:
        return max(self.compute_cycles, self.weight_cycles) + self.activation_cycles


def op_class(node: Node, graph: Graph) -> str:
    if node.op_type in ("Conv1dInt", "Conv2dInt", "ConvTranspose2dInt"):
        w = graph.tensors[node.inputs[1]].shape
        group = int(node.attrs.get("group", 1) or 1)
        return "depthwise" if group > 1 and w[1] == 1 else "conv"
    if node.op_type in LINEAR:
        return "linear"
    if node.op_type in POOL:
        return "pool"
    if node.op_type in ELEMENTWISE:
        return "elementwise"
    return "move"


def _rate(table: dict, key: str, device: DeviceProfile, section: str) -> float:
    value = table.get(key)
    if not value:
        raise ThinkerDeviceError(f"{device.path}: [cost] {section} has no rate for '{key}'")
    return float(value)


def estimate(graph: Graph, device: DeviceProfile,
             memory_of: dict[str, int] | None = None) -> list[OpCost]:
    """Per-op costs. ``memory_of`` maps tensors to memory kinds (from a model.bin); without it
    constants use the device default and activations share-memory."""
    cost = device.cost
    if not cost:
        raise ThinkerDeviceError(f"{device.path}: no [cost] section; thinker profile needs "
                                 "clock_hz, macs_per_cycle and dma_bytes_per_cycle")
    macs_rate, dma = cost.get("macs_per_cycle", {}), cost.get("dma_bytes_per_cycle", {})
    memory_of = memory_of or {}
    rows = []
    for i, node in enumerate(graph.nodes):
        ins = [graph.tensors[n] if n else None for n in node.inputs]
        outs = [graph.tensors[n] for n in node.outputs]
        macs = OPS[node.op_type].macs(node, ins, outs)
        cls = op_class(node, graph)
        params = [t for t in ins if t is not None and t.is_constant]
        acts = [t for t in ins if t is not None and not t.is_constant] + outs
        param_bytes = sum(t.nbytes for t in params)
        act_bytes = sum(t.nbytes for t in acts)
        weight_cycles = 0
        for t in params:
            kind = fmt.MEMORY_KIND_NAMES[memory_of.get(t.name, device.constants_kind)]
            weight_cycles += math.ceil(t.nbytes / _rate(dma, kind, device, "dma_bytes_per_cycle"))
        act_cycles = 0
        for t in acts:
            kind = memory_of.get(t.name, fmt.MEM_SRAM)
            if kind != fmt.MEM_SRAM:
                name = fmt.MEMORY_KIND_NAMES[kind]
                act_cycles += math.ceil(t.nbytes / _rate(dma, name, device,
                                                         "dma_bytes_per_cycle"))
        if cls == "move":
            compute = math.ceil(act_bytes / _rate(dma, "share-memory", device,
                                                  "dma_bytes_per_cycle"))
        else:  # element-wise ops cost their declared work (non-linear ops: several units per
            # element, see their macs), at least one unit per output element
            work = max(macs, sum(int(np.prod(t.shape)) for t in outs))
            compute = math.ceil(work / _rate(macs_rate, cls, device, "macs_per_cycle"))
        rows.append(OpCost(i, node.op_type, node.name, cls, macs, param_bytes, act_bytes,
                           compute, weight_cycles, act_cycles))
    return rows


def milliseconds(cycles: int, device: DeviceProfile) -> float:
    return cycles / float(device.cost["clock_hz"]) * 1e3


def table(rows: list[OpCost], device: DeviceProfile, top: int = 5) -> str:
    head = ("#", "op", "name", "class", "MACs", "param B", "act B", "cycles", "ms")
    body = [(str(r.index), printable(r.op_type), printable(r.name)[:40], r.op_class, f"{r.macs:,}",
             f"{r.param_bytes:,}", f"{r.activation_bytes:,}", f"{r.cycles:,}",
             f"{milliseconds(r.cycles, device):.4f}") for r in rows]
    total_cycles = sum(r.cycles for r in rows)
    body.append(("", "total", f"{len(rows)} ops", "", f"{sum(r.macs for r in rows):,}",
                 f"{sum(r.param_bytes for r in rows):,}",
                 f"{sum(r.activation_bytes for r in rows):,}", f"{total_cycles:,}",
                 f"{milliseconds(total_cycles, device):.4f}"))
    widths = [max(len(row[c]) for row in [head, *body]) for c in range(len(head))]
    right = {0, 4, 5, 6, 7, 8}

    def fmt_row(row):
        return "  ".join(cell.rjust(w) if c in right else cell.ljust(w)
                         for c, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    lines = [fmt_row(head), *map(fmt_row, body), "",
             f"device {device.name}: {float(device.cost['clock_hz']) / 1e6:.0f} MHz; "
             f"top {top} ops by cycles:"]
    for r in sorted(rows, key=lambda r: -r.cycles)[:top]:
        share = 100 * r.cycles / max(total_cycles, 1)
        lines.append(f"  {printable(r.op_type)} '{printable(r.name, 120)}': {r.cycles:,} cycles "
                     f"({milliseconds(r.cycles, device):.4f} ms, {share:.1f}%)")
    return "\n".join(lines)


def to_csv(rows: list[OpCost], device: DeviceProfile) -> str:
    lines = ["index,op,name,class,macs,param_bytes,activation_bytes,compute_cycles,"
             "weight_cycles,activation_cycles,cycles,ms"]
    for r in rows:
        name = '"' + r.name.replace('"', '""') + '"'
        lines.append(f"{r.index},{r.op_type},{name},{r.op_class},{r.macs},{r.param_bytes},"
                     f"{r.activation_bytes},{r.compute_cycles},{r.weight_cycles},"
                     f"{r.activation_cycles},{r.cycles},{milliseconds(r.cycles, device):.6f}")
    return "\n".join(lines) + "\n"


def to_speedscope(rows: list[OpCost], device: DeviceProfile, model: str) -> str:
    """An evented profile (https://www.speedscope.app/file-format-schema.json): each op is a
    frame opened and closed back to back on one timeline, in milliseconds."""
    frames = [{"name": f"{r.op_type} {r.name}"} for r in rows]
    events, t = [], 0.0
    for i, r in enumerate(rows):
        events.append({"type": "O", "frame": i, "at": t})
        t += milliseconds(r.cycles, device)
        events.append({"type": "C", "frame": i, "at": t})
    return json.dumps({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [{"type": "evented", "name": f"{model} on {device.name} (estimated)",
                      "unit": "milliseconds", "startValue": 0, "endValue": t,
                      "events": events}],
        "name": model, "exporter": "thinker profile",
    })


def memory_kinds(packed) -> dict[str, int]:
    """Tensor -> memory kind from a PackedModel's records."""
    return {r.name: r.memory for r in packed.tensors}


__all__ = ["OpCost", "estimate", "memory_kinds", "milliseconds", "table", "to_csv",
           "to_speedscope"]
