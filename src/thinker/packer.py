"""tpacker's pipeline, stage by stage: quantized ONNX -> checked, planned model.bin.

    load -> cut -> passes -> device adaptation -> checks -> memory planning -> report
         -> MACs -> serialize -> export config

Each stage reports (name, status, seconds, detail) to a callback so the CLI can print one
status line per stage. A model that breaks a device rule or does not fit raises
ThinkerDeviceError listing every problem, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from thinker.devices import DeviceProfile, load_profile
from thinker.devices.checks import check_graph
from thinker.errors import (
    ThinkerDeviceError,
    ThinkerFormatError,
    ThinkerInputError,
    ThinkerModelError,
)
from thinker.errors import name as shown_name
from thinker.graph.ir import Graph, Node
from thinker.graph.onnx_export import to_onnx
from thinker.graph.onnx_import import infer_shapes, load_onnx
from thinker.memory.placement import MemoryPlan, parse_memory_overrides, plan_memory
from thinker.memory.report import ReportData, arena_svg, to_json, to_text, usage
from thinker.ops import OPS
from thinker.ops.base import REQUIRED
from thinker.outputs import write_files
from thinker.passes import DEVICE_PASSES, GRAPH_PASSES, run_pass
from thinker.resource import format as fmt
from thinker.resource.reader import parse_model
from thinker.resource.rules import graph_problems
from thinker.resource.writer import DynamicShape, PackInput, write_model

OK, SKIPPED, PROBLEM = "ok", "skipped", "problem"
Reporter = Callable[[str, str, float, str], None]


@dataclass
class PackOptions:
    """Every tpacker option; also the schema of --config_file / --export_config (JSON)."""

    graph_path: str = ""
    output_path: str = "model.bin"
    platform: str = "venus"
    device_file: str | None = None
    ramsize: int | None = None
    psramsize: int | None = None
    memory: list[str] = field(default_factory=list)  # name:kind
    threshold1: int | None = None
    threshold2: int | None = None
    threshold3: int | None = None
    threshold4: int | None = None
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    dynamic_shape: list[str] = field(default_factory=list)  # name=min:max:factor
    isstream: str | None = None  # split_h | split_w: the streaming form (thinker.passes.stream)
    keep_quant: bool = False
    skip: list[str] = field(default_factory=list)
    dump: bool = False
    workspace: str = "workspace"
    planners: list[str] | None = None
    export_config: str | None = None
    # patch-based execution: auto | off | min | RxC[@TENSOR] (thinker.passes.patch)
    patch: str = "auto"
    # kernel scratch: fast | fit | auto (fast unless that does not fit; docs/memory.md)
    scratch: str = "auto"

    @classmethod
    def from_json(cls, text: str, where: str) -> PackOptions:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ThinkerInputError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ThinkerInputError(f"{where}: expected a JSON object of tpacker options")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ThinkerInputError(f"{where}: unknown option(s) {unknown}; valid options: "
                                    f"{', '.join(sorted(known))}")
        options = cls(**data)
        options.check(where)
        return options

    def check(self, where: str = "tpacker options") -> None:
        """Every option has the right type and range (a config file may hold anything)."""
        def bad(key: str, expected: str):
            value = shown_name(repr(getattr(self, key)))
            return ThinkerInputError(f"{where}: {key} = {value}: expected {expected}")

        for key in ("ramsize", "psramsize", "threshold1", "threshold2", "threshold3",
                    "threshold4"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise bad(key, "a number of bytes >= 0 (or null for the device's default)")
        for key in ("graph_path", "output_path", "platform", "workspace"):
            if not isinstance(getattr(self, key), str):
                raise bad(key, "a string")
        if self.isstream is not None and self.isstream not in ("split_h", "split_w"):
            raise bad("isstream", "split_h or split_w (or null)")
        if self.scratch not in ("auto", "fast", "fit"):
            raise bad("scratch", "auto, fast or fit")
        if not isinstance(self.patch, str):
            raise bad("patch", "auto, off, min, RxC or RxC@TENSOR")
        from thinker.passes.patch import parse_patch

        parse_patch(self.patch)  # refuses a malformed --patch before any work
        for key in ("device_file", "export_config"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise bad(key, "a string (or null)")
        for key in ("memory", "dynamic_shape", "skip", "inputs", "outputs", "planners"):
            value = getattr(self, key)
            optional = key in ("inputs", "outputs", "planners")
            if (value is None and not optional) or (value is not None and not (
                    isinstance(value, list) and all(isinstance(v, str) for v in value))):
                raise bad(key, "a list of strings" + (" (or null)" if optional else ""))
        for key in ("keep_quant", "dump"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "true or false")
        if not self.output_path:
            raise bad("output_path", "a file name")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


@dataclass
class PackResult:
    graph: Graph
    device: DeviceProfile
    plan: MemoryPlan
    model_bin: bytes
    macs: int
    report: ReportData
    workspace: str
    notices: list[str] = field(default_factory=list)


@dataclass
class DynamicSpec:
    """One ``--dynamic_shape NAME[AXIS]=MIN:MAX:FACTOR`` as written."""

    item: str
    name: str
    axis: int | None
    minimum: int
    maximum: int
    factor: int


def dynamic_specs(items: list[str]) -> list[DynamicSpec]:
    specs = []
    for item in items:
        name, sep, spec = item.partition("=")
        parts = spec.split(":")
        if not sep or len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise ThinkerInputError(f"--dynamic_shape {item}: expected NAME=MIN:MAX:FACTOR "
                                    "with positive integers")
        lo, hi, factor = (int(p) for p in parts)
        if not 1 <= lo <= hi or factor < 1:
            raise ThinkerInputError(f"--dynamic_shape {item}: need 1 <= MIN <= MAX and "
                                    "FACTOR >= 1")
        axis = None
        if name.endswith("]") and "[" in name:
            name, _, text = name[:-1].rpartition("[")
            if not text.isdigit():
                raise ThinkerInputError(f"--dynamic_shape {item}: NAME[AXIS] takes an axis "
                                        "number")
            axis = int(text)
        specs.append(DynamicSpec(item, name, axis, lo, hi, factor))
    return specs


def onnx_symbols(model) -> dict[str, list[tuple[str, int]]]:
    """Symbolic (dim_param) axes after the batch of an ONNX model's graph inputs:
    symbol -> [(input, axis)]."""
    found: dict[str, list[tuple[str, int]]] = {}
    initializers = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        for axis, d in enumerate(vi.type.tensor_type.shape.dim):
            if axis and not d.HasField("dim_value") and d.dim_param:
                found.setdefault(d.dim_param, []).append((vi.name, axis))
    return found


def _own_symbolic_axis(symbols: dict[str, list[tuple[str, int]]], name: str) -> int | None:
    own = [a for n, a in (x for v in symbols.values() for x in v) if n == name]
    return own[0] if len(own) == 1 else None


def parse_dynamic_shapes(items: list[str], graph: Graph,
                         symbols: dict[str, list[tuple[str, int]]] | None = None,
                         time_axes: dict[str, int] | None = None) -> list[DynamicShape]:
    """The dynamic axes ``items`` name: NAME is a graph input (its axis AXIS with NAME[AXIS],
    else its symbolic axis, else its stream axis, else its last axis) or an ONNX symbolic
    dimension (every input axis carrying it)."""
    symbols, time_axes = symbols or {}, time_axes or {}
    shapes = []
    for spec in dynamic_specs(items):
        if spec.name in symbols and spec.axis is None:
            targets = [(n, a) for n, a in symbols[spec.name] if n in graph.inputs]
        elif spec.name in graph.inputs:
            rank = len(graph.tensors[spec.name].shape)
            own = _own_symbolic_axis(symbols, spec.name)
            axis = spec.axis if spec.axis is not None else own if own is not None else \
                time_axes.get(spec.name, rank - 1)
            if not 0 <= axis < rank:
                raise ThinkerInputError(f"--dynamic_shape {spec.item}: input '{spec.name}' has "
                                        f"{rank} axes")
            targets = [(spec.name, axis)]
        else:
            histories = {h for h, _ in graph.streams}
            known = ", ".join([n for n in graph.inputs if n not in histories] +
                              [f"{s} (symbolic)" for s in symbols])
            raise ThinkerInputError(f"--dynamic_shape {spec.item}: '{spec.name}' is not a graph "
                                    f"input or a symbolic dimension (known: {known})")
        for name, axis in targets:
            shapes.append(DynamicShape(name, spec.minimum, spec.maximum, spec.factor, axis,
                                       graph.inputs.index(name)))
    return shapes


def report_folder(options: PackOptions) -> str:
    """Where tpacker writes its report (and -d stage dumps): workspace/<model name>."""
    model_name = os.path.splitext(os.path.basename(options.graph_path))[0] or "model"
    return os.path.join(options.workspace, model_name)


def report_files(options: PackOptions) -> list[str]:
    """Every file tpacker writes into the report folder (the CLI checks them up front)."""
    folder = report_folder(options)
    files = [os.path.join(folder, f) for f in ("memory_report.txt", "memory_report.json",
                                               "share_memory_arena.svg")]
    if options.dump:
        stages = ["load", *(p.name for p in GRAPH_PASSES + DEVICE_PASSES)]
        files += [os.path.join(folder, f"{i:02d}_{stage}.onnx") for i, stage in enumerate(stages)]
    return files


def _require_ops(graph: Graph, where: str) -> None:
    if not graph.nodes:
        raise ThinkerModelError(f"{where}: the graph has no ops (outputs "
                                f"{[shown_name(o) for o in graph.outputs]} are inputs or "
                                "constants); nothing to pack")


def cut_subgraph(graph: Graph, inputs: list[str] | None, outputs: list[str] | None) -> Graph:
    """The part of the graph between ``inputs`` and ``outputs`` (tensor names)."""
    g = graph.copy()
    new_inputs = list(inputs or g.inputs)
    new_outputs = list(outputs or g.outputs)
    for name in new_inputs + new_outputs:
        if name not in g.tensors:
            raise ThinkerInputError(f"--inputs/--outputs: the model has no tensor '{name}'")
    producer = {o: n for n in g.nodes for o in n.outputs}
    needed, stack = set(), list(new_outputs)
    boundary = set(new_inputs)
    while stack:
        name = stack.pop()
        if name in boundary or g.tensors[name].is_constant:
            continue
        node = producer.get(name)
        if node is None:
            raise ThinkerInputError(
                f"--outputs: '{name}' depends on graph input '{name}', which is not among "
                f"--inputs ({', '.join(new_inputs)})")
        if node.name not in needed:
            needed.add(node.name)
            stack.extend(x for x in node.inputs if x)
    g.nodes = [n for n in g.nodes if n.name in needed]
    g.inputs, g.outputs = new_inputs, new_outputs
    g.remove_unused()
    infer_shapes(g)
    return g


class Packer:
    def __init__(self, options: PackOptions, reporter: Reporter | None = None):
        self.o = options
        self.report_stage = reporter or (lambda *a: None)
        self.notices: list[str] = []
        self.rewrites: list[str] = []

    def _stage(self, name: str, fn, *args):
        start = time.perf_counter()
        try:
            result, detail = fn(*args)
        except Exception:
            self.report_stage(name, PROBLEM, time.perf_counter() - start, "")
            raise
        self.report_stage(name, OK, time.perf_counter() - start, detail)
        return result

    def _dump(self, graph: Graph, index: int, stage: str) -> None:
        if self.o.dump:
            path = os.path.join(self.workspace, f"{index:02d}_{stage}.onnx")
            write_files([(path, to_onnx(graph).SerializeToString())])

    def run(self) -> PackResult:
        o = self.o
        o.check()
        device = load_profile(o.device_file or o.platform)
        model_name = os.path.splitext(os.path.basename(o.graph_path))[0] or "model"
        self.workspace = report_folder(o)
        unknown = sorted(set(o.skip) - {p.name for p in GRAPH_PASSES + DEVICE_PASSES})
        if unknown:
            raise ThinkerInputError(f"--skip: unknown pass(es) {unknown}; passes: " + ", ".join(
                p.name for p in GRAPH_PASSES + DEVICE_PASSES))
        for k in (1, 2, 3):
            if getattr(o, f"threshold{k}") is not None:
                self.notices.append(f"--threshold{k} is accepted for compatibility and has no "
                                    "effect; --threshold4 moves large activations to PSRAM")

        self.specs = dynamic_specs(o.dynamic_shape)
        graph = self._stage("load", self._load)
        self._dump(graph, 0, "load")
        if o.inputs or o.outputs:
            graph = self._stage("cut", self._cut, graph)
        else:
            self.report_stage("cut", SKIPPED, 0.0, "no --inputs/--outputs")
        if o.isstream:
            graph = self._stage("stream", self._stream, graph)
        else:
            self.report_stage("stream", SKIPPED, 0.0, "no --isstream")
        graph, dynamic = self._dynamic(graph)
        histories = [graph.inputs.index(h) for h, _ in graph.streams]
        states = [graph.outputs.index(s) for _, s in graph.streams]
        skip = set(o.skip) | ({"remove_edge_quant"} if o.keep_quant else set())
        for index, p in enumerate(GRAPH_PASSES + DEVICE_PASSES, start=1):
            if p.name in skip:
                why = "--skip" if p.name in o.skip else "--keep_quant"
                self.report_stage(p.name, SKIPPED, 0.0, why)
                continue
            graph = self._stage(p.name, self._pass, p, graph, device)
            self._dump(graph, index, p.name)
        # inputs may have been renamed (edge Quant removed): same positions
        for d in dynamic:
            d.tensor = graph.inputs[d.input_index]
        graph.streams = [(graph.inputs[h], graph.outputs[s]) for h, s in zip(histories, states,
                                                                              strict=True)]
        graph.dynamic = [(d.tensor, d.axis, d.minimum, d.maximum, d.factor) for d in dynamic]
        self._stage("checks", self._checks, graph, device)
        graph = self._stage("patch", self._patch, graph, device)
        if dynamic:
            rules = self._stage("shape rules", self._shape_rules, graph)
        else:
            rules = []
            self.report_stage("shape rules", SKIPPED, 0.0, "no dynamic axis")
        plan = self._stage("memory planning", self._plan_once, graph, device)
        macs = self._stage("MACs", self._count_macs, graph)
        pack = PackInput(device.id, plan.placements, plan.arena_sizes(), dynamic,
                         scratch=plan.scratch, streams=list(graph.streams), shape_rules=rules)
        data = self._stage("serialize", self._serialize, graph, pack)
        report = ReportData(model_name, device, self._limits(device), plan, graph, macs,
                            len(data), list(self.rewrites))
        self._stage("report", self._write_report, report)
        if device.flash and len(data) > device.flash:
            raise ThinkerDeviceError(f"model.bin is {len(data):,} B but {device.name} flash is "
                                     f"{device.flash:,} B; use 4-bit weights or a smaller model")
        return PackResult(graph, device, plan, data, macs, report, self.workspace, self.notices)

    def _limits(self, device: DeviceProfile) -> dict[int, int]:
        """Bytes available per memory kind: the device's, or --ramsize / --psramsize."""
        o = self.o
        return {fmt.MEM_SRAM: o.ramsize if o.ramsize is not None else device.sram,
                fmt.MEM_PSRAM: o.psramsize if o.psramsize is not None else device.psram,
                fmt.MEM_FLASH: device.flash}

    def _load(self):
        self.symbols: dict[str, list[tuple[str, int]]] = {}
        # symbolic dims named by --dynamic_shape are read at their MAX
        try:
            graph = self._load_symbolic() if self.specs else load_onnx(self.o.graph_path)
        except ThinkerModelError as exc:
            if "symbolic dimension" not in str(exc):
                raise
            raise ThinkerModelError(f"{exc}, unless --dynamic_shape names it "
                                    "(SYMBOL=MIN:MAX:FACTOR; memory is planned at MAX)") from None
        _require_ops(graph, shown_name(self.o.graph_path))
        return graph, f"{len(graph.nodes)} ops from {self.o.graph_path}"

    def _load_symbolic(self) -> Graph:
        import onnx

        from thinker.graph.onnx_import import import_model

        try:
            model = onnx.load(self.o.graph_path)
        except Exception:  # load_onnx's checks and messages for unreadable files
            return load_onnx(self.o.graph_path)
        self.symbols = onnx_symbols(model)
        dims = {vi.name: vi.type.tensor_type.shape.dim for vi in model.graph.input}
        for spec in self.specs:
            targets = self.symbols.get(spec.name, []) if spec.axis is None else []
            if spec.name in dims:
                own = _own_symbolic_axis(self.symbols, spec.name)
                axis = spec.axis if spec.axis is not None else own
                if axis is not None and axis < len(dims[spec.name]):
                    targets = [(spec.name, axis)]
            for name, axis in targets:
                dims[name][axis].dim_value = spec.maximum
        return import_model(model, source_path=self.o.graph_path)

    def _stream(self, graph: Graph):
        from thinker.passes.stream import streamify

        result = streamify(graph, self.o.isstream)
        return result, (f"{len(result.streams)} state(s) carried between calls "
                        f"({self.o.isstream})")

    def _dynamic(self, graph: Graph) -> tuple[Graph, list[DynamicShape]]:
        """The dynamic axes: --dynamic_shape's, and (streaming) every input's stream axis
        1..its length; the graph is reshaped so each is at its MAX (the plan's length)."""
        from thinker.runtime.dynamic import reshaped

        defaults = {name: axis for name, axis, *_ in graph.dynamic}
        given = parse_dynamic_shapes(self.o.dynamic_shape, graph, self.symbols, defaults)
        named = {(d.tensor, d.axis) for d in given}
        dynamic = [DynamicShape(n, lo, hi, f, a, graph.inputs.index(n))
                   for n, a, lo, hi, f in graph.dynamic if (n, a) not in named] + given
        shapes: dict[str, list[int]] = {}
        for d in dynamic:
            shape = shapes.setdefault(d.tensor, list(graph.tensors[d.tensor].shape))
            shape[d.axis] = d.maximum
        if any(tuple(v) != graph.tensors[k].shape for k, v in shapes.items()):
            graph = reshaped(graph, {k: tuple(v) for k, v in shapes.items()})
        for d in given:
            self.notices.append(f"dynamic axis: input '{shown_name(d.tensor)}' axis {d.axis} "
                                f"takes {d.minimum}..{d.maximum} in steps of {d.factor} "
                                f"(memory planned at {d.maximum})")
        return graph, dynamic

    def _shape_rules(self, graph: Graph):
        from thinker.passes.stream import dynamic_shape_rules

        rules = dynamic_shape_rules(graph, graph.dynamic)
        return rules, f"{len(rules)} dims follow {len(graph.dynamic)} dynamic axis(es)"

    def _cut(self, graph: Graph):
        cut = cut_subgraph(graph, self.o.inputs, self.o.outputs)
        _require_ops(cut, "--inputs/--outputs")
        return cut, f"{len(cut.nodes)} of {len(graph.nodes)} ops kept"

    def _pass(self, p, graph: Graph, device: DeviceProfile):
        result = run_pass(p, graph, device)
        rewrites = getattr(result, "rewrites", [])  # exact device rewrites (kernel_split)
        self.rewrites += rewrites
        self.notices += [f"rewrite: {r}" for r in rewrites]
        extra = f", {len(rewrites)} rewrite(s)" if rewrites else ""
        return result, f"{len(graph.nodes)} -> {len(result.nodes)} ops{extra}"

    def _patch(self, graph: Graph, device: DeviceProfile):
        from thinker.passes.patch import patch_for_device

        limit = self._limits(device)[fmt.MEM_SRAM]

        def fits(candidate: Graph) -> bool:
            """Planned for real: the unpatched graph by every planner (the plan is kept for
            the planning stage), a patched candidate by the quick by_order planner (if it
            fits, the planning stage's best of all planners does too)."""
            quick = candidate is not graph and self.o.planners is None
            notices, planners = list(self.notices), self.o.planners
            if quick:
                self.o.planners = ["by_order"]
            try:
                if candidate is not graph:  # the tiles' Slice / Concat / pads on this device
                    self._checks(candidate, device)
                planned = self._plan(candidate, device)
                if not quick:
                    self._fitted = (candidate, planned, self.notices[len(notices):])
                return True
            except (ThinkerDeviceError, ThinkerModelError):
                return False
            finally:
                self.notices, self.o.planners = notices, planners

        patched, choice, detail = patch_for_device(graph, self.o.patch, device.alignment,
                                                   limit, getattr(self.o, "scratch", "fast"),
                                                   fits)
        if choice is not None:
            self._checks(patched, device)  # the patched graph passes every check too
            self.rewrites.append(f"patch: {detail}")
            self.notices.append(f"patch-based execution: {detail}")
        return patched, detail

    def _plan_once(self, graph: Graph, device: DeviceProfile):
        """The plan the patch stage already made for this very graph, else a new one."""
        fitted = getattr(self, "_fitted", None)
        if fitted is not None and fitted[0] is graph:
            self.notices += fitted[2]  # what planning it noted
            return fitted[1]
        return self._plan(graph, device)

    def _count_macs(self, graph: Graph):
        macs = sum(OPS[n.op_type].macs(n, [graph.tensors[x] if x else None for x in n.inputs],
                                       [graph.tensors[x] for x in n.outputs])
                   for n in graph.nodes)
        return macs, f"{macs:,} per inference"

    def _serialize(self, graph: Graph, pack: PackInput):
        try:
            data = write_model(graph, pack)
        except struct.error as exc:  # a size, dim or offset beyond the format's 32-bit fields
            raise ThinkerModelError(
                f"{shown_name(self.o.graph_path)}: too large for model.bin ({exc}): a tensor "
                "dimension, size or arena offset exceeds the format's 32-bit fields; use "
                "smaller tensors") from None
        # what tpacker writes, both readers accept: the Python reader's model rules (names,
        # single assignment, the memory plan, every op) on the very bytes (a planner bug guard)
        try:
            parse_model(data, shown_name(self.o.output_path))
        except ThinkerFormatError as exc:
            raise ThinkerModelError(f"{shown_name(self.o.graph_path)}: the packed model would "
                                    f"break a model rule ({exc})") from None
        return data, f"{len(data):,} B"

    def _model_rules(self, graph: Graph) -> list[str]:
        """The model rules (thinker.resource.rules) and every op's prepare step: everything
        the executors would refuse at load is refused here, with the node named."""
        problems = graph_problems(graph)
        if problems:
            return problems
        for node in graph.nodes:
            op = OPS[node.op_type]
            ins = [graph.tensors[n] if n else None for n in node.inputs]
            attrs = {**{k: v for k, v in op.attrs.items() if v is not REQUIRED}, **node.attrs}
            as_read = Node(node.op_type, node.name, node.inputs, node.outputs, attrs,
                           node.source_op_type)  # with the defaults the readers fill in
            try:
                op.prepare(as_read, ins, [graph.tensors[n] for n in node.outputs])
            except ThinkerModelError as exc:
                problems.append(str(exc))
        return problems

    def _checks(self, graph: Graph, device: DeviceProfile):
        problems = self._model_rules(graph)
        if problems:
            raise ThinkerModelError(
                f"{shown_name(self.o.graph_path)}: {len(problems)} problem(s)",
                problems=problems)
        problems = check_graph(graph, device)
        if problems:
            raise ThinkerDeviceError(
                f"{shown_name(self.o.graph_path)}: {len(problems)} problem(s) for {device.name}",
                problems=[str(p) for p in problems])
        return None, f"{len(graph.nodes)} ops fit {device.name}"

    def _plan(self, graph: Graph, device: DeviceProfile):
        o = self.o
        overrides = parse_memory_overrides(o.memory, graph)
        threshold = o.threshold4 if o.threshold4 is not None else device.sram_threshold
        planned = graph
        if graph.streams:  # a stream's history is never reused: it lives across calls
            planned = graph.copy()
            planned.outputs += [h for h, _ in graph.streams]
        limits = self._limits(device)

        def planned_with(policy: str) -> MemoryPlan:
            return plan_memory(planned, device.alignment, device.constants_kind, threshold,
                               overrides, o.planners, policy)

        plan = planned_with("fit" if o.scratch == "fit" else "fast")
        if o.scratch == "auto" and any(a.size > limits.get(k, 0) for k, a in plan.arenas.items()):
            plan = planned_with("fit")  # scratch-free kernels where scratch raises the peak
            self.notices.append(f"--scratch auto: the fast kernels' scratch does not fit; "
                                f"{len(plan.scratch_free)} conv/linear op(s) run their "
                                "scratch-free path")
        problems = []
        for kind, arena in plan.arenas.items():
            limit = limits.get(kind, 0)
            if arena.size > limit:
                name = fmt.MEMORY_KIND_NAMES[kind]
                hint = ("lower --threshold4 or use -m NAME:psram to move large activations to "
                        "PSRAM" if kind == fmt.MEM_SRAM else "use a smaller model or 4-bit "
                        "weights")
                problems.append(f"{name} arena {arena.size:,} B exceeds {device.name} {name} "
                                f"{limit:,} B (lower bound {arena.lower_bound:,} B); {hint}")
        if problems:
            raise ThinkerDeviceError(f"{shown_name(self.o.graph_path)}: does not fit "
                                     f"{device.name}", problems=problems)
        sram = plan.arenas.get(fmt.MEM_SRAM)
        detail = (f"share-memory {sram.size:,} B (lower bound {sram.lower_bound:,} B, "
                  f"{sram.planner})" if sram else "no share-memory arena")
        if plan.scratch_free:
            detail += f"; {len(plan.scratch_free)} op(s) scratch-free"
        return plan, detail

    def _write_report(self, report: ReportData):
        base = os.path.join(self.workspace, "memory_report")
        write_files([(base + ".txt", to_text(report).encode()),
                      (base + ".json", to_json(report).encode()),
                      (os.path.join(self.workspace, "share_memory_arena.svg"),
                       arena_svg(report).encode())])
        return None, f"{base}.txt/.json, share_memory_arena.svg"


def summary(result: PackResult) -> str:
    """The one-screen summary tpacker prints."""
    lines = [f"{'memory':14s} {'used':>12s} {'limit':>12s} {'use':>7s}"]
    for kind, u in usage(result.report).items():
        pct = f"{100 * u['used'] / u['limit']:.1f}%" if u["limit"] else "-"
        extra = f"  lower bound {u['lower_bound']:,}" if "lower_bound" in u else ""
        lines.append(f"{kind:14s} {u['used']:>12,} {u['limit']:>12,} {pct:>7s}{extra}")
        if "peak_op" in u:
            from thinker.memory.report import breakdown_text

            lines.append(f"{'':14s} peak at '{u['peak_op']}': {breakdown_text(u['at_peak'])}")
    lines.append(f"{len(result.graph.nodes)} ops, {result.macs:,} MACs per inference, "
                 f"device {result.device.name}")
    return "\n".join(lines)
