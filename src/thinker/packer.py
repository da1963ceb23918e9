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
    keep_quant: bool = False
    skip: list[str] = field(default_factory=list)
    dump: bool = False
    workspace: str = "workspace"
    planners: list[str] | None = None
    export_config: str | None = None

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


def parse_dynamic_shapes(items: list[str], graph: Graph) -> list[DynamicShape]:
    shapes = []
    for item in items:
        name, sep, spec = item.partition("=")
        parts = spec.split(":")
        if not sep or len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise ThinkerInputError(f"--dynamic_shape {item}: expected NAME=MIN:MAX:FACTOR "
                                    "with positive integers")
        lo, hi, factor = (int(p) for p in parts)
        if name not in graph.inputs:
            raise ThinkerInputError(f"--dynamic_shape {item}: '{name}' is not a graph input "
                                    f"(inputs: {', '.join(graph.inputs)})")
        if not 1 <= lo <= hi or factor < 1:
            raise ThinkerInputError(f"--dynamic_shape {item}: need 1 <= MIN <= MAX and "
                                    "FACTOR >= 1")
        shapes.append(DynamicShape(name, lo, hi, factor, 0, graph.inputs.index(name)))
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

        graph = self._stage("load", self._load)
        self._dump(graph, 0, "load")
        if o.inputs or o.outputs:
            graph = self._stage("cut", self._cut, graph)
        else:
            self.report_stage("cut", SKIPPED, 0.0, "no --inputs/--outputs")
        dynamic = parse_dynamic_shapes(o.dynamic_shape, graph)
        if dynamic:
            self.notices.append("--dynamic_shape recorded in model.bin; the executors run the "
                                "static shape (dynamic execution is not implemented yet)")
        skip = set(o.skip) | ({"remove_edge_quant"} if o.keep_quant else set())
        for index, p in enumerate(GRAPH_PASSES + DEVICE_PASSES, start=1):
            if p.name in skip:
                why = "--skip" if p.name in o.skip else "--keep_quant"
                self.report_stage(p.name, SKIPPED, 0.0, why)
                continue
            graph = self._stage(p.name, self._pass, p, graph, device)
            self._dump(graph, index, p.name)
        self._stage("checks", self._checks, graph, device)
        plan = self._stage("memory planning", self._plan, graph, device)
        macs = self._stage("MACs", self._count_macs, graph)
        for d in dynamic:  # the input may have been renamed (edge Quant removed): same position
            d.tensor = graph.inputs[d.input_index]
        pack = PackInput(device.id, plan.placements, plan.arena_sizes(), dynamic,
                         scratch=plan.scratch)
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
        graph = load_onnx(self.o.graph_path)
        _require_ops(graph, shown_name(self.o.graph_path))
        return graph, f"{len(graph.nodes)} ops from {self.o.graph_path}"

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
        plan = plan_memory(graph, device.alignment, device.constants_kind, threshold, overrides,
                           o.planners)
        limits = self._limits(device)
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
