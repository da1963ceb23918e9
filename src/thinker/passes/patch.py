"""Patch-based execution (MCUNetV2): run the high-resolution first stage of a CNN tile by tile.

A *chain* is a 4-D map ``cut`` (NCHW) with all the ops it depends on, every one a spatial op
this pass understands (convs incl. depthwise, pools, element-wise ops, channel concats), and
no tensor of it but ``cut`` read elsewhere. ``cut``'s H x W is divided into a grid of tiles;
for each tile the chain is copied, every copy computing exactly the region of its output that
the tile needs (the halo is recomputed, never shared). A tile reads a Slice of the chain's
input; a conv or pool gets the original padding only on sides that touch the image border and
none inside; a tensor computed over a larger region than one reader needs is cropped by a
Slice. Tiles of one grid row are joined by a Concat along W, the rows by a Concat along H
into ``cut`` (same name, so the rest of the graph is unchanged).

Every copied op computes the same integers at the same positions (its windows, padding and
rounding are the original's), so the patched graph's outputs equal the unpatched graph's with
the executors' existing kernels. The nodes run tile by tile: a tile's intermediates die before
the next tile starts, so the large maps of the first stage never exist whole. The price is the
recomputed halo, reported as extra MACs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from thinker.errors import ThinkerInputError
from thinker.graph.ir import Graph, Node, Tensor
from thinker.graph.onnx_import import infer_shapes

Region = tuple[int, int, int, int]  # rows [r0, r1), columns [c0, c1)

# ops whose output element (n, c, h, w) reads only inputs at (n, *, h, w)
POINTWISE = {"Relu", "Clip", "iqAdd", "iqSub", "iqMul", "Requant", "iqSigmoid", "iqTanh",
             "BatchNorm2dInt", "PRelu"}
CHANNEL_CATS = {"iqCat", "Concat"}
WINDOWED = {"Conv2dInt", "MaxPool", "AvgPool2dInt"}


@dataclass(frozen=True)
class Window:
    """A conv/pool's geometry along H and W."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right


@dataclass
class PatchChoice:
    """One patched chain: its cut tensor, the tile grid and what it costs / saves."""

    cut: str
    grid: tuple[int, int]
    chain: list[str]  # node names, in order
    macs_before: int = 0
    macs_after: int = 0
    peak_before: int = 0
    peak_after: int = 0

    @property
    def extra_macs_percent(self) -> float:
        return 100.0 * (self.macs_after - self.macs_before) / max(self.macs_before, 1)

    def describe(self) -> str:
        first, last = self.chain[0], self.chain[-1]
        return (f"{len(self.chain)} ops '{first}' .. '{last}' -> '{self.cut}' in "
                f"{self.grid[0]}x{self.grid[1]} tiles; extra MACs "
                f"{self.macs_after - self.macs_before:,} "
                f"(+{self.extra_macs_percent:.1f}%)")


def _ints(value, n: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if value is not None else (default,) * n


def _window(graph: Graph, node: Node) -> Window | None:
    """The node's 2-D window, or None when this pass cannot tile it exactly."""
    a = node.attrs
    x = graph.tensors[node.inputs[0]]
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", None, "", b"NOTSET"):
        return None
    if node.op_type == "Conv2dInt":
        if a.get("output_padding") is not None or len(node.inputs) < 2:
            return None
        k = a.get("kernel_shape")
        kernel = _ints(k, 2, 1) if k is not None else tuple(graph.tensors[node.inputs[1]].shape[2:])
    else:
        if int(a.get("ceil_mode", 0) or 0):
            return None
        kernel = _ints(a.get("kernel_shape"), 2, 1) if a.get("kernel_shape") is not None \
            else tuple(x.shape[2:])
    if len(kernel) != 2:
        return None
    strides = _ints(a.get("strides"), 2, 1)
    if node.op_type != "Conv2dInt" and a.get("strides") is None:
        strides = kernel
    window = Window(kernel, strides, _ints(a.get("dilations"), 2, 1),  # type: ignore[arg-type]
                    _ints(a.get("pads"), 4, 0))  # type: ignore[arg-type]
    if len(window.strides) != 2 or len(window.dilations) != 2 or len(window.pads) != 4:
        return None
    spans = [(k - 1) * d + 1 for k, d in zip(window.kernel, window.dilations, strict=True)]
    if any(p >= spans[i % 2] for i, p in enumerate(window.pads)):
        return None  # a window wholly inside the padding would give a tile no input rows
    return window


def _is_map(graph: Graph, name: str) -> bool:
    t = graph.tensors.get(name)
    return t is not None and not t.is_constant and len(t.shape) == 4


def _tileable(graph: Graph, node: Node) -> bool:
    """Whether ``node`` can be computed over any region of its output from regions of its
    inputs, with this pass's rules."""
    ins = [x for x in node.inputs if x and not graph.tensors[x].is_constant]
    if len(node.outputs) != 1 or not _is_map(graph, node.outputs[0]) or not ins:
        return False
    out = graph.tensors[node.outputs[0]].shape
    if not all(_is_map(graph, x) for x in ins):
        return False
    if node.op_type in WINDOWED:
        return len(ins) == 1 and node.inputs[0] == ins[0] and _window(graph, node) is not None
    if node.op_type in POINTWISE:  # no broadcasting over H, W, constants included
        consts = [graph.tensors[x].shape for x in node.inputs
                  if x and graph.tensors[x].is_constant]
        return all(graph.tensors[x].shape[2:] == out[2:] for x in ins) and \
            all(all(d == 1 for d in shape[-2:]) for shape in consts)
    if node.op_type in CHANNEL_CATS:
        axis = int(node.attrs.get("axis", 1 if node.op_type == "iqCat" else 0))
        return axis in (1, -3) and all(graph.tensors[x].shape[2:] == out[2:] for x in ins)
    return False


def _input_span(a: int, b: int, k: int, s: int, d: int, p0: int) -> tuple[int, int]:
    """Input rows (unclipped, may extend into the padding) read by output rows [a, b)."""
    return a * s - p0, (b - 1) * s - p0 + (k - 1) * d + 1


def _needs(graph: Graph, node: Node, out: Region) -> list[Region | None]:
    """The region of each input the node reads to compute ``out`` (None: a constant)."""
    regions: list[Region | None] = []
    for x in node.inputs:
        if not x or graph.tensors[x].is_constant:
            regions.append(None)
            continue
        if node.op_type in WINDOWED:
            t = graph.tensors[x]
            w = _window(graph, node)
            assert w is not None
            h0, h1 = _input_span(out[0], out[1], w.kernel[0], w.strides[0], w.dilations[0],
                                 w.pads[0])
            c0, c1 = _input_span(out[2], out[3], w.kernel[1], w.strides[1], w.dilations[1],
                                 w.pads[1])
            H, W = t.shape[2:]
            regions.append((max(h0, 0), min(h1, H), max(c0, 0), min(c1, W)))
        else:
            regions.append(out)
    return regions


def _tile_pads(graph: Graph, node: Node, out: Region) -> list[int]:
    """Per-tile pads: the part of the original padding this tile's windows reach (so zero
    padding only where the tile touches the image border)."""
    t = graph.tensors[node.inputs[0]]
    w = _window(graph, node)
    assert w is not None
    H, W = t.shape[2:]
    h0, h1 = _input_span(out[0], out[1], w.kernel[0], w.strides[0], w.dilations[0], w.pads[0])
    c0, c1 = _input_span(out[2], out[3], w.kernel[1], w.strides[1], w.dilations[1], w.pads[1])
    return [max(0, -h0), max(0, -c0), max(0, h1 - H), max(0, c1 - W)]


def chain_cuts(graph: Graph) -> Iterator[tuple[str, list[int]]]:
    """Every chain, as (cut tensor, indices of its nodes in execution order): the cut's
    producer and all its ancestors, every one tileable and reading only graph inputs,
    constants and each other, and no tensor of it but the cut read by any other node or
    being a graph output. Ordered by the cut's producer."""
    if graph.streams or graph.dynamic:
        return
    inputs, outputs = set(graph.inputs), set(graph.outputs)
    readers: dict[str, set[int]] = {}
    for i, node in enumerate(graph.nodes):
        for x in node.inputs:
            if x:
                readers.setdefault(x, set()).add(i)
    ancestors: dict[str, frozenset[int] | None] = {}  # tensor -> its chain, None: none
    for i, node in enumerate(graph.nodes):
        chain: set[int] | None = {i} if _tileable(graph, node) else None
        for x in node.inputs:
            if chain is None:
                break
            if not x or x in inputs or graph.tensors[x].is_constant:
                continue
            up = ancestors.get(x)
            chain = None if up is None else chain | up
        for o in node.outputs:
            ancestors[o] = None if chain is None else frozenset(chain)
        if chain is None:
            continue
        cut = node.outputs[0]
        inner = [o for k in chain for o in graph.nodes[k].outputs if o != cut]
        if all(o not in outputs and readers.get(o, set()) <= chain for o in inner):
            yield cut, sorted(chain)


def _splits(size: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` near-equal ranges covering [0, size)."""
    edges = [size * k // parts for k in range(parts + 1)]
    return [(edges[k], edges[k + 1]) for k in range(parts)]


def _union(a: Region | None, b: Region) -> Region:
    if a is None:
        return b
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))


def _fresh(g: Graph, base: str) -> str:
    """A name no tensor or node of ``g`` has (``g.unique_name`` rescans the graph per call,
    too slow for the thousands of names a tile grid creates)."""
    taken: set[str] | None = g.__dict__.get("_patch_names")
    if taken is None:
        taken = g.__dict__["_patch_names"] = set(g.tensors) | {n.name for n in g.nodes}
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def _slice(g: Graph, src: str, have: Region, want: Region,
           base: str) -> str:
    """A Slice taking region ``want`` out of tensor ``src`` that holds region ``have``."""
    if have == want:
        return src
    name = _fresh(g, base)
    t = g.tensors[src]
    g.tensors[name] = Tensor(name, _shape(t.shape, want), t.dtype, t.exponent)
    starts = [want[0] - have[0], want[2] - have[2]]
    ends = [want[1] - have[0], want[3] - have[2]]
    node = Node("Slice", _fresh(g, f"{base}/slice"), [src], [name],
                {"starts": starts, "ends": ends, "axes": [2, 3]})
    g.nodes.append(node)
    return name


def _shape(shape: tuple[int, ...], region: Region) -> tuple[int, ...]:
    return (*shape[:2], region[1] - region[0], region[3] - region[2])


def patch_graph(graph: Graph, cut: str, grid: tuple[int, int], infer: bool = True) -> Graph:
    """The graph with the chain ending at ``cut`` run as ``grid`` (rows, columns) tiles of
    ``cut``, before every other node; outputs are identical to ``graph``'s. Every new
    tensor's shape is set from its region; ``infer`` re-infers (and so checks) them (the
    search skips it)."""
    cuts = dict(chain_cuts(graph))
    if cut not in cuts:
        raise ThinkerInputError(f"patch: '{cut}' does not end a tileable chain")
    members = set(cuts[cut])
    chain = [graph.nodes[k] for k in cuts[cut]]
    rest = [x for k, x in enumerate(graph.nodes) if k not in members]
    H, W = graph.tensors[cut].shape[2:]
    gr, gc = grid
    if not (1 <= gr <= H and 1 <= gc <= W):
        raise ThinkerInputError(f"patch: a {gr}x{gc} grid does not fit '{cut}' "
                                f"({H}x{W})")
    g = graph.copy()
    g.nodes = []
    produced = {o for node in chain for o in node.outputs}
    row_outputs = []
    for r, (r0, r1) in enumerate(_splits(H, gr)):
        tile_outputs = [_emit_tile(graph, g, chain, produced, cut, (r0, r1, c0, c1),
                                   f"t{r}_{c}") for c, (c0, c1) in enumerate(_splits(W, gc))]
        # a row is joined as soon as it is done: its tiles' outputs die there
        row_outputs.append(_join(g, tile_outputs, 3, cut if gr == 1 else f"{cut}@row{r}",
                                 gr == 1, (*graph.tensors[cut].shape[:2], r1 - r0, W)))
    if gr > 1:
        _join(g, row_outputs, 2, cut, True, graph.tensors[cut].shape)
    g.nodes += [Node(x.op_type, x.name, list(x.inputs), list(x.outputs), dict(x.attrs),
                     x.source_op_type) for x in rest]
    g.__dict__.pop("_patch_names", None)
    g.remove_unused()
    if infer:
        infer_shapes(g)
    return g


def _join(g: Graph, parts: list[str], axis: int, name: str, is_cut: bool,
          shape: tuple[int, ...]) -> str:
    """Concat ``parts`` along ``axis`` into the cut tensor or a new tensor named from
    ``name``."""
    if len(parts) == 1 and not is_cut:
        return parts[0]
    t = g.tensors[parts[0]]
    out = name if is_cut else _fresh(g, name)
    if not is_cut:
        g.tensors[out] = Tensor(out, shape, t.dtype, t.exponent)
    g.nodes.append(Node("Concat", _fresh(g, f"{out}/join"), list(parts), [out],
                        {"axis": axis}))
    return out


def _emit_tile(graph: Graph, g: Graph, chain: list[Node], produced: set[str], cut: str,
               region: Region, tag: str) -> str:
    """Append one tile's copy of the chain to ``g``; returns the tile's part of ``cut``."""
    need: dict[str, Region] = {cut: region}
    reads: list[list[Region | None]] = [[] for _ in chain]
    for k in range(len(chain) - 1, -1, -1):
        node = chain[k]
        out = need.get(node.outputs[0])
        if out is None:
            continue
        reads[k] = _needs(graph, node, out)
        for x, reg in zip(node.inputs, reads[k], strict=True):
            if reg is not None and x in produced:
                need[x] = _union(need.get(x), reg)
    local: dict[str, str] = {}  # chain tensor -> this tile's copy
    # a reader needing less than was computed reads a crop, taken as soon as the tensor
    # exists: the larger tensor then dies with its last full reader, not with the crop's
    crops: dict[tuple[int, int], str] = {}
    readers: dict[str, list[tuple[int, int]]] = {}
    for k, node in enumerate(chain):
        for i, (x, reg) in enumerate(zip(node.inputs, reads[k], strict=True)):
            if reg is not None and x in produced:
                readers.setdefault(x, []).append((k, i))
    for k, node in enumerate(chain):
        out = node.outputs[0]
        if out not in need:
            continue
        inputs = []
        for i, (x, reg) in enumerate(zip(node.inputs, reads[k], strict=True)):
            if reg is None:
                inputs.append(x)
            elif x in produced:
                inputs.append(crops[(k, i)])
            else:  # the chain's input: this reader's region of the whole map
                h, w = graph.tensors[x].shape[2:]
                inputs.append(_slice(g, x, (0, h, 0, w), reg, f"{x}@{tag}"))
        attrs = dict(node.attrs)
        if node.op_type in WINDOWED:
            attrs["pads"] = _tile_pads(graph, node, need[out])
        name = _fresh(g, f"{out}@{tag}")
        t = graph.tensors[out]
        g.tensors[name] = Tensor(name, _shape(t.shape, need[out]), t.dtype, t.exponent)
        copy = Node(node.op_type, _fresh(g, f"{node.name}@{tag}"), inputs, [name], attrs,
                    node.source_op_type)
        g.nodes.append(copy)
        local[out] = name
        for k2, i in readers.get(out, []):
            crops[(k2, i)] = _slice(g, name, need[out], reads[k2][i], f"{out}@{tag}/crop")
    return local[cut]


def graph_macs(graph: Graph) -> int:
    from thinker.ops import OPS

    return sum(OPS[n.op_type].macs(n, [graph.tensors[x] if x else None for x in n.inputs],
                                   [graph.tensors[x] for x in n.outputs])
               for n in graph.nodes)


def estimate_peak(graph: Graph, alignment: int = 16, scratch_free: bool = False) -> int:
    """The lower bound of the activation + scratch arena (what the planners reach);
    ``scratch_free``: without the scratch of ops that have a scratch-free path (tpacker
    --scratch fit)."""
    from thinker.memory import scratch
    from thinker.memory.lifetimes import compute_lifetimes, lower_bound, scratch_buffers

    droppable = getattr(scratch, "SCRATCH_FREE_PATH", frozenset()) if scratch_free \
        else frozenset()
    life = compute_lifetimes(graph)
    buffers = life.buffers + [b for b in scratch_buffers(graph)
                              if graph.nodes[b.scratch_op].op_type not in droppable]
    for b in buffers:
        b.size = -(-b.nbytes // alignment) * alignment
    return lower_bound(buffers, life.steps)


GRID_RE = re.compile(r"^(\d+)x(\d+)(?:@(.+))?$")


def parse_patch(value: str) -> tuple[str, tuple[int, int] | None, str | None]:
    """``auto`` | ``off`` | ``min`` | ``RxC`` | ``RxC@TENSOR`` -> (mode, grid, cut)."""
    if value in ("auto", "off", "min"):
        return value, None, None
    m = GRID_RE.match(value)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ThinkerInputError(f"--patch {value}: expected auto, off, min, RxC or RxC@TENSOR "
                                "(R, C >= 1 tile rows and columns)")
    return "grid", (int(m.group(1)), int(m.group(2))), m.group(3)


def rank_patches(graph: Graph, alignment: int = 16, grid: tuple[int, int] | None = None,
                 cut: str | None = None, max_tiles: int = 12, budget: int | None = None,
                 scratch_free: bool = False) -> list[PatchChoice]:
    """Candidate chains and grids, best first: without ``budget`` by smallest peak (then
    fewest MACs); with it, those whose estimated peak fits by fewest MACs, then the rest by
    peak. Only candidates that lower the peak, unless ``grid`` forces one."""
    before_peak = estimate_peak(graph, alignment, scratch_free)
    before_macs = graph_macs(graph)
    candidates = list(chain_cuts(graph))
    if cut is not None:
        candidates = [(x, chain) for x, chain in candidates if x == cut]
        if not candidates:
            known = ", ".join(x for x, _ in chain_cuts(graph)) or "none"
            raise ThinkerInputError(f"--patch: '{cut}' does not end a tileable chain of the "
                                    f"first ops (tensors that do: {known})")
    else:  # per map size the earliest cut: a later one only recomputes more
        sizes: set[int] = set()
        kept = []
        for x, chain in candidates:
            t = graph.tensors[x]
            small = 2 * t.nbytes < before_peak if grid is None else \
                t.shape[2] >= grid[0] and t.shape[3] >= grid[1]
            if t.nbytes not in sizes and small and t.shape[2] * t.shape[3] >= 4:
                sizes.add(t.nbytes)
                kept.append((x, chain))
        candidates = kept
    ranked: list[tuple[tuple, PatchChoice]] = []
    for x, chain in candidates:
        names = [graph.nodes[k].name for k in chain]
        H, W = graph.tensors[x].shape[2:]
        rows = [grid[0]] if grid is not None else range(1, min(H, max_tiles) + 1)
        for r in rows:
            # more columns: smaller tiles, more MACs; stop once it fits (twice: the real
            # plan may miss the estimate) or the peak stops falling (it lies outside the tiles)
            cols = [grid[1]] if grid is not None else range(1, min(W, max_tiles) + 1)
            row_best, stale, fitting = None, 0, 0
            for c in cols:
                if (r, c) == (1, 1) or r > H or c > W:
                    continue
                patched = patch_graph(graph, x, (r, c), infer=False)
                peak = estimate_peak(patched, alignment, scratch_free)
                choice = PatchChoice(x, (r, c), names, before_macs, graph_macs(patched),
                                     before_peak, peak)
                fits = budget is not None and peak <= budget
                if grid is not None or peak < before_peak:
                    ranked.append(((0, choice.macs_after, peak) if fits else
                                   (1, peak, choice.macs_after), choice))
                fitting += fits
                stale = stale + 1 if row_best is not None and peak >= row_best else 0
                row_best = peak if row_best is None else min(row_best, peak)
                if fitting >= 2 or stale >= 2:
                    break
    if not ranked and grid is not None:
        raise ThinkerInputError(f"--patch {grid[0]}x{grid[1]}: no tileable chain from the "
                                "graph input has a map that large")
    return [c for _, c in sorted(ranked, key=lambda kc: kc[0])]


def search_patch(graph: Graph, alignment: int = 16, grid: tuple[int, int] | None = None,
                 cut: str | None = None, max_tiles: int = 12, budget: int | None = None,
                 scratch_free: bool = False) -> PatchChoice | None:
    """The best of ``rank_patches`` (None when no patching lowers the peak)."""
    ranked = rank_patches(graph, alignment, grid, cut, max_tiles, budget, scratch_free)
    return ranked[0] if ranked else None


def apply_patch(graph: Graph, choice: PatchChoice) -> Graph:
    return patch_graph(graph, choice.cut, choice.grid)


def patch_for_device(graph: Graph, mode: str, alignment: int, sram: int,
                     scratch: str = "fast", fits: Callable[[Graph], bool] | None = None,
                     ) -> tuple[Graph, PatchChoice | None, str]:
    """tpacker's patch stage: (graph, choice, detail). ``mode`` is --patch: off; auto
    (patch only when the model does not fit ``sram``: the fewest extra MACs whose real plan
    ``fits``, else the smallest peak); min (the smallest peak); RxC[@TENSOR] (that grid).
    ``scratch`` is --scratch: with auto, candidates that fit with the fast kernels' scratch
    are preferred to those that need the scratch-free (slower) kernels. ``fits`` plans a
    candidate for real (the estimate is the arena's lower bound, which a planner may miss
    by a little)."""
    kind, grid, cut = parse_patch(mode)
    if kind == "off":
        return graph, None, "--patch off"
    if graph.streams or graph.dynamic:
        if kind == "grid":
            raise ThinkerInputError("--patch: streaming and dynamic-shape models are not "
                                    "patched (their axes change per call)")
        return graph, None, "streaming / dynamic shapes: not patched"
    if kind != "auto":
        choice = search_patch(graph, alignment, grid, cut, scratch_free=scratch == "fit")
        if choice is None:
            return graph, None, "no tileable chain lowers the peak"
        return apply_patch(graph, choice), choice, _detail(choice)
    if fits(graph) if fits is not None else estimate_peak(graph, alignment) <= sram:
        return graph, None, f"fits share-memory {sram:,} B unpatched"
    ranked: list[PatchChoice] = []
    for scratch_free in {"fast": [False], "fit": [True]}.get(scratch, [False, True]):
        ranked = rank_patches(graph, alignment, None, cut, budget=sram,
                              scratch_free=scratch_free)
        # the cheapest candidates that fit by estimate, until one fits for real
        for c in [c for c in ranked if c.peak_after <= sram][:4]:
            patched = apply_patch(graph, c)
            if fits is None or fits(patched):
                return patched, c, _detail(c)
    if not ranked:
        return graph, None, "no tileable chain lowers the peak"
    # none fits: the smallest peak (the plan stage then says by how much it misses)
    smallest = min(ranked, key=lambda c: (c.peak_after, c.macs_after))
    return apply_patch(graph, smallest), smallest, _detail(smallest)


def _detail(choice: PatchChoice) -> str:
    return f"{choice.describe()}; peak {choice.peak_before:,} -> {choice.peak_after:,} B"


__all__ = ["PatchChoice", "apply_patch", "chain_cuts", "estimate_peak", "graph_macs",
           "parse_patch", "patch_for_device", "patch_graph", "rank_patches", "search_patch"]
