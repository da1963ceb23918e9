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
            steps = len(data.graph.nodes)
            peak = arena.peak_step
            peak_op = ("graph inputs" if peak < 0 else "graph outputs" if peak >= steps
                       else data.graph.nodes[peak].name)
            entry.update(lower_bound=arena.lower_bound, no_reuse=arena.no_reuse,
                         planner=arena.planner, planners=arena.by_planner,
                         peak_step=peak, peak_op=peak_op, at_peak=dict(arena.peak_breakdown),
                         largest_scratch=arena.largest_scratch)
        out[_kind(kind)] = entry
    return out


def scratch_rows(data: ReportData) -> list[dict]:
    """Every op's planned kernel scratch region."""
    return [{"op": data.graph.nodes[i].name, "type": data.graph.nodes[i].op_type, "step": i,
             "memory": _kind(p.kind), "offset": p.offset, "size": p.size}
            for i, p in sorted(data.plan.scratch.items())]


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
        "memory": usage(data), "tensors": tensor_rows(data), "scratch": scratch_rows(data),
        "scratch_policy": data.plan.scratch_policy,
        "scratch_free": [data.graph.nodes[i].name for i in data.plan.scratch_free],
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
    lines += ["", "planned arenas (everything the executor needs besides its own tables):"]
    for kind, u in usage(data).items():
        if "peak_op" in u:
            lines.append(f"  {kind}: planned {u['used']:,} B, lower bound "
                         f"{u['lower_bound']:,} B, peak at op '{u['peak_op']}' "
                         f"(step {u['peak_step']}): " + breakdown_text(u["at_peak"]))
    lines += ["", f"{'tensor':40s} {'memory':13s} {'offset':>10s} {'size':>10s}  lifetime"]
    for r in tensor_rows(data):
        lines.append(f"{r['name'][:40]:40s} {r['memory']:13s} {r['offset']:>10,} "
                     f"{r['size']:>10,}  [{r['first']}, {r['last']}]")
    if data.plan.scratch_free:
        names = ", ".join(data.graph.nodes[i].name for i in data.plan.scratch_free)
        lines.append(f"  scratch-free kernels (planned without scratch, policy "
                     f"{data.plan.scratch_policy}): {names}")
    rows = scratch_rows(data)
    if rows:
        lines += ["", f"{'kernel scratch of op':40s} {'memory':13s} {'offset':>10s} "
                  f"{'size':>10s}  step"]
        for r in rows:
            lines.append(f"{r['op'][:40]:40s} {r['memory']:13s} {r['offset']:>10,} "
                         f"{r['size']:>10,}  {r['step']}")
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
        offset = plan.buffer_offset(b)
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


def breakdown_text(parts: dict[str, int]) -> str:
    """``activations 1,024 + scratch 96 + state 0`` (constants only when present)."""
    keys = ["activations", "scratch", "state"] + (["constants"] if parts.get("constants") else [])
    return " + ".join(f"{k} {parts.get(k, 0):,}" for k in keys)


def packed_arena_usage(packed) -> dict[int, dict]:
    """Per arena of a model.bin (``thinker report``): planned size, lower bound, peak op and
    the bytes live there by role (activations, scratch, state, constants), recomputed from
    the records: at each step the union of the (alignment-rounded) byte ranges of the live
    tensors and the op's scratch region, so aliases and in-place outputs count once."""
    from thinker.resource import rules

    first, last, _ = rules.lifetimes(packed)
    steps = len(packed.ops)
    states = {t for pair in getattr(packed, "streams", []) for t in pair}
    out: dict[int, dict] = {}
    for kind, (size, align) in sorted(packed.arenas.items()):
        spans = []  # (first, last, start, end, role)
        for tid, r in enumerate(packed.tensors):
            if r.memory != kind or not r.nbytes or tid not in first:
                continue
            role_name = "constants" if r.is_constant else "state" if tid in states \
                else "activations"
            spans.append((first[tid], last[tid], r.offset,
                          r.offset + fmt.align_up(r.nbytes, align), role_name))
        for op, k, offset, nbytes in getattr(packed, "scratch", []):
            if k == kind:
                spans.append((op, op, offset, offset + fmt.align_up(nbytes, align), "scratch"))
        best, best_step, best_parts = 0, -1, {}
        for step in range(-1, steps + 1):
            parts = {}
            for role_name in ("activations", "scratch", "state", "constants"):
                ranges = sorted((s, e) for f, la, s, e, rn in spans
                                if rn == role_name and f <= step <= la)
                total, end = 0, -1
                for s, e in ranges:
                    if e > end:
                        total += e - max(s, end)
                        end = e
                parts[role_name] = total
            live = sum(parts.values())
            if live > best:
                best, best_step, best_parts = live, step, parts
        peak_op = ("graph inputs" if best_step < 0 else "graph outputs" if best_step >= steps
                   else packed.ops[best_step].name)
        out[kind] = {"planned": size, "lower_bound": best, "peak_step": best_step,
                     "peak_op": peak_op, "at_peak": best_parts}
    return out
