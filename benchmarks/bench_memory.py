"""Memory: everything the C executor asks for, next to tflite-micro, measured in one run.

    python benchmarks/bench_memory.py [--data ../shared/data] [--device cortex-m]

Per MLPerf Tiny model (a thinker-dialect twin of each .tflite: same layers, shapes, strides
and pads; see mlperf_models.py) and the linger ResNet-18, packed for a device with
tflite-micro's 16-byte alignment:

* thinker: the bytes live at the arena's peak step by role (activations, kernel scratch,
  recurrent/stream state), the planned arenas (share-memory + PSRAM: activations and scratch
  share one plan), its lower bound, the C executor's own tables (its STATE request on this
  host build) and the total the C executor asks for (arenas + tables: there is no other
  buffer);
* tflite-micro: "Arena allocation head" (planned tensors and kernel scratch), "tail" (the
  interpreter's bookkeeping) and total, from its recording allocator on this host.

Ratios: thinker arenas / tflite-micro head and thinker total / tflite-micro total (< 1: less
memory than tflite-micro).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import thinker
from mlperf_models import twin_from_tflite
from thinker.packer import Packer, PackOptions
from thinker.resource import format as fmt
from thinker.runtime.c_backend import host_kernels

MODELS = [
    ("ResNet-8 (MLPerf IC)", "mlperf-tiny/pretrainedResnet_quant.tflite"),
    ("DS-CNN (MLPerf KWS)", "mlperf-tiny/kws_ref_model.tflite"),
    ("MobileNetV1-0.25 (MLPerf VWW)", "mlperf-tiny/vww_96_int8.tflite"),
    ("FC autoencoder (MLPerf AD)", "mlperf-tiny/ad01_int8.tflite"),
    ("DS-CNN 1-D (MLPerf streaming WW)", "mlperf-tiny/str_ww_ref_model.tflite"),
]
STATE_KIND = 8  # THINKER_MEM_STATE: the C executor's tables
POLICIES = ("fast", "fit")  # tpacker --scratch
LINGER_RESNET18 = ("ResNet-18 (linger, CIFAR-100)",
                   "linger-resnet18/resnet18_cifar100_linger.onnx")

TFLM_FIELDS = ("total", "head", "tail")
TFLM_SCRIPT = """
import sys
from tflite_micro.python.tflite_micro import runtime
runtime.Interpreter.from_file(sys.argv[1]).print_allocations()
"""


def tflm_arena(path: str) -> dict[str, int] | None:
    """tflite-micro's arena total / head / tail for a .tflite (printed by C code to stderr,
    so it runs in a subprocess)."""
    r = subprocess.run([sys.executable, "-c", TFLM_SCRIPT, path], capture_output=True,
                       text=True)
    out = {}
    for field in TFLM_FIELDS:
        m = re.search(rf"Arena allocation {field} (\d+) bytes", r.stdout + r.stderr)
        if m:
            out[field] = int(m.group(1))
    return out if len(out) == len(TFLM_FIELDS) else None


@dataclass
class Ours:
    activations: int  # live at the peak step of the share-memory arena
    scratch: int
    state: int
    arenas: int  # planned share-memory + PSRAM
    lower_bound: int
    tables: int  # the C executor's STATE request (its tables; this host build)
    scratch_free: int  # conv / linear ops planned without scratch (--scratch fit)
    c_ms: float  # the C executor's forward on this host (min of a few runs): the speed cost

    @property
    def total(self) -> int:
        return self.arenas + self.tables


def pack(model: onnx.ModelProto | str, device: str, workdir: str, name: str,
         scratch: str) -> Ours:
    path = model if isinstance(model, str) else os.path.join(workdir, f"{name}.onnx")
    if not isinstance(model, str):
        onnx.save(model, path)
    bin_path = os.path.join(workdir, f"{name}.bin")
    result = Packer(PackOptions(graph_path=path, platform=device, output_path=bin_path,
                                workspace=os.path.join(workdir, "ws"), scratch=scratch)).run()
    with open(bin_path, "wb") as f:
        f.write(result.model_bin)
    arenas = result.plan.arenas
    sram = arenas[fmt.MEM_SRAM]
    ms = 0.0
    try:
        with host_kernels(False):  # the device code: its STATE and speed
            c_exe = thinker.load(bin_path, backend="c")
        plan = dict((k, size) for k, size, _ in c_exe.memory_plan)
        ms = c_forward_ms(c_exe)
    except thinker.ThinkerError as exc:
        print(f"  ({name}: C executor unavailable: {exc})")
        plan = {}
    asked = sum(v for k, v in plan.items() if k in (fmt.MEM_PSRAM, fmt.MEM_SRAM))
    planned = sum(a.size for a in arenas.values())
    assert not plan or asked == planned, f"{name}: C asks {asked}, tpacker planned {planned}"
    part = sram.peak_breakdown
    return Ours(part["activations"], part["scratch"], part["state"], planned,
                sum(a.lower_bound for a in arenas.values()), plan.get(STATE_KIND, 0),
                len(result.plan.scratch_free), ms)


def c_forward_ms(c_exe, runs: int = 5) -> float:
    """Best of ``runs`` C forwards (batch 1) on this host, in milliseconds."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in c_exe.inputs:
        shape = (1, *spec.shape[1:])
        if np.issubdtype(spec.dtype, np.integer):
            info = np.iinfo(spec.dtype)
            feeds[spec.name] = rng.integers(info.min, info.max + 1, shape).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        c_exe.run(feeds)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def ratio(a: int, b: int | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--device", default="cortex-m",
                        help="device profile for packing (default cortex-m: 16-byte alignment "
                             "like tflite-micro)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for k, (label, rel) in enumerate(MODELS):
            tflite = os.path.join(args.data, rel)
            model, _ = twin_from_tflite(tflite)
            tflm = tflm_arena(tflite)
            for policy in POLICIES:
                rows.append((label, policy, pack(model, args.device, work, f"m{k}", policy),
                             tflm))
        label, rel = LINGER_RESNET18
        for policy in POLICIES:
            rows.append((label, policy, pack(os.path.join(args.data, rel), "venus", work, "r18",
                                             policy), None))

    print(f"bytes; thinker packs for {args.device} (ResNet-18: venus, whose weights are copied "
          "to PSRAM: in its arenas); the C executor's tables and tflite-micro's tail are this "
          "host's (64-bit) builds")
    print("--scratch fast: every conv/linear on its fast path with its scratch; fit: no scratch "
          "where it would raise the peak (those ops, counted under 'free', run scratch-free); "
          "C ms: one C forward on this host (the speed cost of fit)")
    print(f"{'':37s} {'------------------------- thinker -------------------------':>68s}  "
          f"{'------ tflite-micro ------':>26s}  {'--- ratios ---':>15s}")
    print(f"{'model':33s} {'scr.':>5s} {'activ.':>8s} {'scratch':>8s} {'state':>6s} "
          f"{'arenas':>9s} {'l.bound':>9s} {'tables':>7s} {'total':>9s} {'free':>4s} "
          f"{'C ms':>6s}  "
          f"{'head':>8s} {'tail':>7s} {'total':>8s}  {'ar/head':>7s} {'tot/tot':>7s}")
    goals = []
    for label, policy, o, t in rows:
        t = t or {}
        print(f"{label:33s} {policy:>5s} {o.activations:>8,} {o.scratch:>8,} {o.state:>6,} "
              f"{o.arenas:>9,} {o.lower_bound:>9,} {o.tables:>7,} {o.total:>9,} "
              f"{o.scratch_free:>4d} {o.c_ms:>6.2f}  {t.get('head', 0):>8,} {t.get('tail', 0):>7,} "
              f"{t.get('total', 0):>8,}  {ratio(o.arenas, t.get('head')):>7s} "
              f"{ratio(o.total, t.get('total')):>7s}")
        if t:
            goals.append((label, policy, o.arenas <= t["head"], o.total <= t["total"]))
    print("goals (MLPerf Tiny): arenas (activations + scratch) <= tflite-micro head, total <= "
          "tflite-micro total")
    for policy in POLICIES:
        met = [g for g in goals if g[1] == policy]
        print(f"  --scratch {policy}: arenas <= head on {sum(g[2] for g in met)}/{len(met)}, "
              f"total <= total on {sum(g[3] for g in met)}/{len(met)}"
              + "".join(f"; {g[0]}: {'ok' if g[2] else 'arenas > head'}, "
                        f"{'ok' if g[3] else 'total > total'}" for g in met
                        if not (g[2] and g[3])))
    print()
    from bench_patch import report as patch_report  # the peak with patch-based execution

    patch_report(args.data, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
