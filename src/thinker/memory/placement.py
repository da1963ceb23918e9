"""Memory placement: which memory each tensor lives in, then one planned arena per kind.

Activations go to SRAM ("share-memory") unless larger than ``threshold4`` (then PSRAM) or
overridden by ``-m name:kind``. Constants stay in flash (inside model.bin) or are copied to
PSRAM at load, by the device profile's default, unless overridden. Every planner runs on every
arena; the smallest result is kept and all results are reported next to the lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thinker.errors import ThinkerDeviceError, ThinkerInputError
from thinker.graph.ir import Graph
from thinker.memory.lifetimes import (
    Buffer,
    Lifetimes,
    compute_lifetimes,
    live_bytes,
    lower_bound,
    peak_step,
    scratch_buffers,
)
from thinker.memory.planners import PLANNERS, arena_size
from thinker.memory.scratch import (
    GROWN_TILE_BYTES,
    SCRATCH_FREE_PATH,
    gemm_scratch,
    gemm_shape,
    gemm_tile_in,
)
from thinker.resource import format as fmt
from thinker.resource.writer import Placement
from thinker.resource.writer import _int4_weights as int4_weights


@dataclass
class ArenaResult:
    kind: int
    size: int
    lower_bound: int
    no_reuse: int
    planner: str
    by_planner: dict[str, int]
    peak_step: int = -1  # the step where the lower bound is reached (-1: graph inputs)
    # bytes live at the peak step by role: activations, scratch, state, constants
    peak_breakdown: dict[str, int] = field(default_factory=dict)
    largest_scratch: int = 0  # the largest single op's (aligned) scratch in this arena


@dataclass
class MemoryPlan:
    placements: dict[str, Placement]
    arenas: dict[int, ArenaResult]
    alignment: int
    lifetimes: Lifetimes
    flash_bytes: int = 0  # constants left in flash (inside model.bin)
    constant_kind: dict[str, int] = field(default_factory=dict)
    # op index -> its kernel scratch region (kind, offset, exact bytes the kernel needs)
    scratch: dict[int, Placement] = field(default_factory=dict)
    scratch_policy: str = "fast"
    # ops planned without scratch (policy "fit"): their kernels take the scratch-free path
    scratch_free: list[int] = field(default_factory=list)

    def buffer_offset(self, b: Buffer) -> int:
        if b.scratch_op >= 0:
            return self.scratch[b.scratch_op].offset
        return self.placements[b.tensors[0]].offset

    def arena_sizes(self) -> dict[int, tuple[int, int]]:
        return {k: (a.size, self.alignment) for k, a in self.arenas.items()}


def parse_memory_overrides(items: list[str], graph: Graph) -> dict[str, int]:
    """``-m name:kind`` flags -> {tensor: memory kind}; unknown names or kinds are errors.
    The original tpacker's spellings (``inputs[0]``, ``params``, ``share-mem``) are resolved
    first (``memory/overrides.py``)."""
    from thinker.memory.overrides import expand_memory_items

    overrides = {}
    for item in expand_memory_items(items, graph):
        name, sep, kind = item.rpartition(":")
        if not sep or kind not in fmt.MEMORY_KIND_BY_NAME:
            raise ThinkerInputError(
                f"-m {item}: expected NAME:KIND with KIND one of "
                f"{', '.join(sorted(set(fmt.MEMORY_KIND_BY_NAME) - {'sram'}))}")
        if name not in graph.tensors:
            raise ThinkerInputError(f"-m {item}: the model has no tensor named '{name}'")
        overrides[name] = fmt.MEMORY_KIND_BY_NAME[kind]
    return overrides


def _aligned(nbytes: int, alignment: int) -> int:
    return max(alignment, (nbytes + alignment - 1) // alignment * alignment)


SCRATCH_POLICIES = ("fast", "fit")


def plan_memory(graph: Graph, alignment: int, constants_default: int,
                sram_threshold: int | None = None, overrides: dict[str, int] | None = None,
                planners: list[str] | None = None, scratch_policy: str = "fast") -> MemoryPlan:
    """``scratch_policy``: "fast" plans every kernel's fast-path scratch; "fit" gives none to a
    conv / linear whose scratch would raise its arena above the lower bound of everything
    else (it then runs its scratch-free path; docs/memory.md)."""
    if scratch_policy not in SCRATCH_POLICIES:
        raise ThinkerInputError(f"scratch policy '{scratch_policy}': expected one of "
                                f"{', '.join(SCRATCH_POLICIES)}")
    overrides = overrides or {}
    life = compute_lifetimes(graph)
    steps = life.steps
    stream_tensors = {t for pair in graph.streams for t in pair}
    for b in life.buffers:
        b.state = any(t in stream_tensors for t in b.tensors)
    for b in life.buffers:
        kinds = {overrides[t] for t in b.tensors if t in overrides}
        if len(kinds) > 1:
            raise ThinkerInputError(f"-m: tensors {b.tensors} share one buffer (aliases) but "
                                    "were given different memories")
        if kinds:
            b.kind = kinds.pop()
        elif sram_threshold is not None and b.nbytes > sram_threshold:
            b.kind = fmt.MEM_PSRAM
        else:
            b.kind = fmt.MEM_SRAM
        if b.kind == fmt.MEM_FLASH:
            raise ThinkerInputError(f"-m: activation '{b.tensors[0]}' cannot live in flash")
        b.size = _aligned(b.nbytes, alignment)

    constant_kind: dict[str, int] = {}
    flash_bytes = 0
    const_buffers: list[Buffer] = []
    int4 = int4_weights(graph)  # stored two per byte, in model.bin and in RAM alike
    for name, t in graph.tensors.items():
        if not t.is_constant or not any(name in n.inputs for n in graph.nodes):
            continue
        kind = overrides.get(name, constants_default)
        constant_kind[name] = kind
        count = int(np.prod(t.shape, dtype=np.int64))
        nbytes = (count + 1) // 2 if name in int4 else count * np.dtype(t.dtype).itemsize
        if kind == fmt.MEM_FLASH:
            flash_bytes += fmt.align_up(nbytes)
            continue
        b = Buffer(-1, [name], nbytes, -1, steps, kind, _aligned(nbytes, alignment), fixed=True)
        const_buffers.append(b)

    scratch_free = []
    for b in scratch_buffers(graph):  # kernel scratch: fast memory unless it is very large
        b.kind = fmt.MEM_PSRAM if sram_threshold is not None and b.nbytes > sram_threshold \
            else fmt.MEM_SRAM
        b.size = _aligned(b.nbytes, alignment)
        node = graph.nodes[b.scratch_op]
        if scratch_policy == "fit" and node.op_type in SCRATCH_FREE_PATH:
            others = [o for o in life.buffers + const_buffers if o.kind == b.kind]
            live = live_bytes(others, steps)
            if int(live[b.first + 1]) + b.size > int(live.max(initial=0)):
                scratch_free.append(b.scratch_op)  # planned without: the scratch-free path
                continue
        life.buffers.append(b)

    placements: dict[str, Placement] = {}
    scratch: dict[int, Placement] = {}
    arenas: dict[int, ArenaResult] = {}
    all_buffers = life.buffers + const_buffers
    for i, b in enumerate(all_buffers):
        b.id = i
    names = planners or list(PLANNERS)
    for kind in sorted({b.kind for b in all_buffers}):
        group = [b for b in all_buffers if b.kind == kind]
        results = {name: PLANNERS[name](group) for name in names}
        sizes = {name: arena_size(group, plan) for name, plan in results.items()}
        chosen = min(sizes, key=lambda n: (sizes[n], names.index(n)))
        plan = results[chosen]
        _verify(group, plan)
        for b in group:
            if b.scratch_op >= 0:
                scratch[b.scratch_op] = Placement(kind, *_grown(graph, group, plan, b,
                                                                sizes[chosen]))
                continue
            for t in b.tensors:
                placements[t] = Placement(kind, plan[b.id], b.size)
        peak = peak_step(group, steps)
        arenas[kind] = ArenaResult(
            kind, sizes[chosen], lower_bound(group, steps), sum(b.size for b in group), chosen,
            sizes, peak, _breakdown([b for b in group if b.first <= peak <= b.last]),
            max((b.size for b in group if b.scratch_op >= 0), default=0))
    return MemoryPlan(placements, arenas, alignment, life, flash_bytes, constant_kind, scratch,
                      scratch_policy, scratch_free)


def _grown(graph: Graph, group: list[Buffer], plan: dict[int, int], b: Buffer,
           arena: int) -> tuple[int, int]:
    """(offset, bytes) of scratch buffer ``b``'s region: a tiled GEMM's (conv / linear) moves to
    the largest run of arena bytes that nothing else uses during its op (its planned place is
    one) and takes up to GROWN_TILE_BYTES of it, so its kernel prepares each weight row pair
    once per more patch rows; the arena does not grow. Other kernels get exactly their need."""
    start = plan[b.id]
    shape = gemm_shape(graph, graph.nodes[b.scratch_op])
    if shape is None:
        return start, b.nbytes
    taken = sorted((plan[o.id], plan[o.id] + o.size) for o in group
                   if o is not b and o.overlaps(b))
    runs, at = [], 0  # free runs (start, end) at the op's step
    for lo, hi in [*taken, (arena, arena)]:
        if lo > at:
            runs.append((at, lo))
        at = max(at, hi)
    # the largest run (the planned place is free, so it holds at least b.size)
    low, high = max(runs, key=lambda r: (r[1] - r[0], r[0] == start))
    k, rows = shape
    most = gemm_scratch(k, rows, gemm_tile_in(k, rows, max(b.nbytes, GROWN_TILE_BYTES)))
    return low, gemm_scratch(k, rows, gemm_tile_in(k, rows, min(high - low, most)))


def role(b: Buffer) -> str:
    """What a planned buffer holds: activations, scratch, state or constants."""
    if b.scratch_op >= 0:
        return "scratch"
    if b.fixed:
        return "constants"
    return "state" if b.state else "activations"


def _breakdown(buffers: list[Buffer]) -> dict[str, int]:
    out = {"activations": 0, "scratch": 0, "state": 0, "constants": 0}
    for b in buffers:
        out[role(b)] += b.size
    return out


def _verify(group: list[Buffer], plan: dict[int, int]) -> None:
    """No two buffers that are live at the same time may share a byte (a planner bug guard)."""
    for i, a in enumerate(group):
        for b in group[i + 1:]:
            if a.overlaps(b) and plan[a.id] < plan[b.id] + b.size and \
                    plan[b.id] < plan[a.id] + a.size:
                raise ThinkerDeviceError(f"internal planner error: buffers {a.tensors} and "
                                         f"{b.tensors} overlap")
