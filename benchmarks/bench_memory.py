"""Activation memory: tpacker's planned share-memory arena next to the lower bound, every
planner, the no-reuse total, and tflite-micro's arena "head" for the same MLPerf Tiny
architecture, all measured in this run.

    python benchmarks/bench_memory.py [--data ../shared/data] [--device cortex-m]

The thinker side packs a thinker-dialect twin of each .tflite (same layers, shapes, strides
and pads; see mlperf_models.py) for a device with tflite-micro's 16-byte alignment. The
tflite-micro side loads the .tflite with its recording allocator and reads "Arena allocation
head" (the planned activation memory) from print_allocations().
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlperf_models import twin_from_tflite
from thinker.packer import Packer, PackOptions
from thinker.resource import format as fmt

MODELS = [
    ("ResNet-8 (MLPerf IC)", "mlperf-tiny/pretrainedResnet_quant.tflite"),
    ("DS-CNN (MLPerf KWS)", "mlperf-tiny/kws_ref_model.tflite"),
    ("MobileNetV1-0.25 (MLPerf VWW)", "mlperf-tiny/vww_96_int8.tflite"),
    ("FC autoencoder (MLPerf AD)", "mlperf-tiny/ad01_int8.tflite"),
]
LINGER_RESNET18 = ("ResNet-18 (linger, CIFAR-100)",
                   "linger-resnet18/resnet18_cifar100_linger.onnx")

TFLM_HEAD = r"Arena allocation head (\d+) bytes"
TFLM_SCRIPT = """
import sys
from tflite_micro.python.tflite_micro import runtime
runtime.Interpreter.from_file(sys.argv[1]).print_allocations()
"""


def tflm_head(path: str) -> int | None:
    """tflite-micro's planned arena head for a .tflite (printed by C code to stderr, so it
    runs in a subprocess)."""
    r = subprocess.run([sys.executable, "-c", TFLM_SCRIPT, path], capture_output=True,
                       text=True)
    m = re.search(TFLM_HEAD, r.stdout + r.stderr)
    return int(m.group(1)) if m else None


def pack_sram(model: onnx.ModelProto | str, device: str, workdir: str, name: str):
    path = model if isinstance(model, str) else os.path.join(workdir, f"{name}.onnx")
    if not isinstance(model, str):
        onnx.save(model, path)
    result = Packer(PackOptions(graph_path=path, platform=device,
                                output_path=os.path.join(workdir, f"{name}.bin"),
                                workspace=os.path.join(workdir, "ws"))).run()
    return result.plan.arenas[fmt.MEM_SRAM]


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
            arena = pack_sram(model, args.device, work, f"m{k}")
            rows.append((label, arena, tflm_head(tflite)))
        label, rel = LINGER_RESNET18
        rows.append((label, pack_sram(os.path.join(args.data, rel), "venus", work, "r18"),
                     None))

    planners = list(rows[0][1].by_planner)
    head = (f"{'model':32s} {'lower bound':>12s} {'thinker':>9s} "
            + " ".join(f"{p:>17s}" for p in planners)
            + f" {'no reuse':>10s} {'tflm head':>10s} {'vs tflm':>8s}")
    print(f"share-memory (activation) arena in bytes; thinker packs for {args.device} "
          "(ResNet-18: venus)")
    print(head)
    for label, arena, tflm in rows:
        ratio = f"{arena.size / tflm:.2f}x" if tflm else "-"
        print(f"{label:32s} {arena.lower_bound:>12,} {arena.size:>9,} "
              + " ".join(f"{arena.by_planner[p]:>17,}" for p in planners)
              + f" {arena.no_reuse:>10,} {tflm if tflm else '-':>10} {ratio:>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
