"""The memory report: text, JSON and an SVG picture of an arena over execution steps."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from thinker.devices import DeviceProfile
from thinker.graph.ir import Graph
from thinker.memory.placement import MemoryPlan
from thinker.resource import format as fmt


@dataclass
class ReportData:
    model: str
    device: DeviceProfile
    limits: dict[int, int]  # memory kind -> bytes available
    plan: MemoryPlan
    graph: Graph
    macs: int
    model_bin_bytes: int = 0
    rewrites: list[str] | None = None  # exact device rewrites tpacker made (kernel splits...)


def _kind(kind: int) -> str:
    return fmt.MEMORY_KIND_NAMES.get(kind, str(kind))


def usage(data: ReportData) -> dict[str, dict]:
    """Per memory kind: used, limit, lower bound, and every planner's arena."""
    plan = data.plan
    out = {}
    for kind in (fmt.MEM_FLASH, fmt.MEM_PSRAM, fmt.MEM_SRAM):
        arena = plan.arenas.get(kind)
        used = arena.size if arena else 0
        if kind == fmt.MEM_FLASH:
            used = data.model_bin_bytes or plan.flash_bytes
        entry = {"used": used, "limit": data.limits.get(kind, 0)}
        if arena:
            entry.update(lower_bound=arena.lower_bound, no_reuse=arena.no_reuse,
                         planner=arena.planner, planners=arena.by_planner)
        out[_kind(kind)] = entry
    return out


def parameters_per_op(graph: Graph) -> list[dict]:
    rows = []
    for n in graph.nodes:
        size = sum(graph.tensors[x].nbytes for x in n.inputs if x and graph.tensors[x].is_constant)
        if size:
            rows.append({"op": n.op_type, "name": n.name, "bytes": size})
    return rows


def tensor_rows(data: ReportData) -> list[dict]:
    plan, life = data.plan, data.plan.lifetimes
    rows = []
    for name, p in sorted(plan.placements.items(), key=lambda kv: (kv[1].kind, kv[1].offset)):
        b = life.buffers[life.buffer_of[name]] if name in life.buffer_of else None
        rows.append({"name": name, "memory": _kind(p.kind), "offset": p.offset,
                     "size": data.graph.tensors[name].nbytes if name in data.graph.tensors
                     else p.size, "reserved": p.size,
                     "first": b.first if b else -1, "last": b.last if b else life.steps})
    return rows


def to_json(data: ReportData) -> str:
    return json.dumps({
        "model": data.model, "device": data.device.name, "macs": data.macs,
        "ops": len(data.graph.nodes), "alignment": data.plan.alignment,
        "memory": usage(data), "tensors": tensor_rows(data),
        "parameters": parameters_per_op(data.graph),
        "rewrites": list(data.rewrites or []),
    }, indent=1)


def to_text(data: ReportData) -> str:
    lines = [f"memory report: {data.model} on {data.device.name} "
             f"({data.device.description})", ""]
    lines.append(f"{'memory':14s} {'used':>12s} {'limit':>12s} {'use':>6s} {'lower bound':>12s}"
                 "  planners")
    for kind, u in usage(data).items():
        pct = f"{100 * u['used'] / u['limit']:.1f}%" if u["limit"] else "-"
        planners = ", ".join(f"{k}={v:,}" for k, v in u.get("planners", {}).items())
        lb = f"{u['lower_bound']:,}" if "lower_bound" in u else "-"
        lines.append(f"{kind:14s} {u['used']:>12,} {u['limit']:>12,} {pct:>6s} {lb:>12s}  "
                     f"{planners}")
    lines += ["", f"{'tensor':40s} {'memory':13s} {'offset':>10s} {'size':>10s}  lifetime"]
    for r in tensor_rows(data):
        lines.append(f"{r['name'][:40]:40s} {r['memory']:13s} {r['offset']:>10,} "
                     f"{r['size']:>10,}  [{r['first']}, {r['last']}]")
    if data.rewrites:
        lines += ["", "device rewrites (exact):"] + [f"  {r}" for r in data.rewrites]
    lines += ["", "parameters per op:"]
    for r in parameters_per_op(data.graph):
        lines.append(f"  {r['op']:20s} {r['name'][:40]:40s} {r['bytes']:>10,} B")
    return "\n".join(lines) + "\n"


def arena_svg(data: ReportData, kind: int = fmt.MEM_SRAM, width: int = 900,
              height: int = 500) -> str:
    """Each buffer as a rectangle: x = its lifetime in steps, y = its offset in the arena."""
    plan, life = data.plan, data.plan.lifetimes
    arena = plan.arenas.get(kind)
    size = max(arena.size if arena else 1, 1)
    steps = life.steps + 2
    left, top, w, h = 70, 30, width - 90, height - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18">{html.escape(_kind(kind))} arena of '
             f'{html.escape(data.model)}'
             f' on {html.escape(data.device.name)}: {size:,} B '
             f'(lower bound {arena.lower_bound if arena else 0:,} B)</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>']
    palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
               "#ff9da7", "#9c755f", "#bab0ac"]
    for b in life.buffers:
        if b.kind != kind:
            continue
        offset = plan.placements[b.tensors[0]].offset
        x = left + w * (b.first + 1) / steps
        bw = max(w * (b.last - b.first + 1) / steps, 1)
        y = top + h * offset / size
        bh = max(h * b.size / size, 1)
        label = html.escape(", ".join(b.tensors))
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
                     f'fill="{palette[b.id % len(palette)]}" fill-opacity="0.75" stroke="#333" '
                     f'stroke-width="0.3"><title>{label}: {b.size:,} B at {offset:,}, steps '
                     f'{b.first}..{b.last}</title></rect>')
    parts.append(f'<text x="{left}" y="{top + h + 16}">execution step -></text>')
    parts.append(f'<text x="5" y="{top + 12}">offset 0</text>')
    parts.append(f'<text x="5" y="{top + h}">{size:,}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
