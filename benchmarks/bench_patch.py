"""Patch-based execution: peak memory, extra MACs and exactness, next to tflite-micro's head.

    python benchmarks/bench_patch.py [--data ../shared/data] [--device cortex-m]

Per MLPerf Tiny CNN twin (mlperf_models.py), packed three ways:

* unpatched (``--patch off``);
* ``--patch auto`` with share-memory set to half of tflite-micro's arena head: tpacker patches
  because the model does not fit, choosing the chain and tile grid with the fewest extra MACs
  whose plan fits;
* ``--patch min --scratch fit``: the smallest peak the search finds (no kernel scratch where
  it would raise the peak).

Printed: the planned share-memory arena (activations + kernel scratch, what the C executor
asks for besides its tables), its ratio to tflite-micro's head, the chain and grid, the MACs
and their overhead, one C forward (this host) and whether the outputs are bit-identical to the
unpatched model's on the numpy and the C executor (random int8 inputs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import thinker
from bench_memory import c_forward_ms, tflm_arena
from mlperf_models import twin_from_tflite
from thinker.errors import ThinkerDeviceError
from thinker.packer import Packer, PackOptions
from thinker.resource import format as fmt
from thinker.runtime.c_backend import host_kernels

# (label, file, held to issue 12's goal: patched arena <= 0.5x tflite-micro's head)
MODELS = [
    ("ResNet-8 (MLPerf IC)", "mlperf-tiny/pretrainedResnet_quant.tflite", True),
    ("MobileNetV1-0.25 (MLPerf VWW)", "mlperf-tiny/vww_96_int8.tflite", True),
    # low resolution from the start (49x10): little for tiles to save
    ("DS-CNN (MLPerf KWS)", "mlperf-tiny/kws_ref_model.tflite", False),
]


@dataclass
class Packed:
    arena: int
    macs: int
    patch: str
    seconds: float
    bin_path: str


def pack(path: str, device: str, work: str, tag: str, **opts) -> Packed | str:
    bin_path = os.path.join(work, f"{tag}.bin")
    start = time.perf_counter()
    try:
        result = Packer(PackOptions(graph_path=path, platform=device, output_path=bin_path,
                                    workspace=os.path.join(work, "ws"), **opts)).run()
    except ThinkerDeviceError as exc:
        return str(exc.problems[0] if getattr(exc, "problems", None) else exc)
    seconds = time.perf_counter() - start
    with open(bin_path, "wb") as f:
        f.write(result.model_bin)
    patch = next((r[len("patch: "):] for r in result.report.rewrites
                  if r.startswith("patch: ")), "-")
    return Packed(result.plan.arenas[fmt.MEM_SRAM].size, result.macs, patch, seconds,
                  bin_path)


def feeds_for(bin_path: str, n: int = 4) -> list[dict]:
    rng = np.random.default_rng(0)
    specs = thinker.load(bin_path).inputs
    return [{s.name: rng.integers(-128, 128, (1, *s.shape[1:])).astype(s.dtype) for s in specs}
            for _ in range(n)]


def run_all(bin_path: str, backend: str, feeds: list[dict]) -> list[dict]:
    exe = thinker.load(bin_path, backend=backend)
    return [exe.run(f) for f in feeds]


def identical(a: list[dict], b: list[dict]) -> bool:
    return all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
               for x, y in zip(a, b, strict=True))


def c_ms(bin_path: str) -> float:
    """Best C forward (batch 1) in ms, or NaN without the C executor."""
    try:
        with host_kernels(False):  # the device code: its STATE and speed
            return c_forward_ms(thinker.load(bin_path, backend="c"))
    except thinker.ThinkerError:
        return float("nan")


def report(data: str, device: str) -> list[tuple[str, bool]]:
    """Pack, check and print every model's rows; returns (model, goal met) for the goal
    models. benchmarks/bench_memory.py prints this section too."""
    print(f"patch-based execution: bytes of the planned share-memory arena (activations + "
          f"kernel scratch); device {device}; head = tflite-micro's arena head; exact = "
          "outputs identical to the unpatched model's, numpy and C")
    print(f"{'model':30s} {'mode':12s} {'arena':>8s} {'head':>7s} {'/head':>6s} "
          f"{'MACs':>11s} {'extra':>7s} {'C ms':>6s} {'pack s':>6s} {'exact':>5s}  patch")
    goals = []
    with tempfile.TemporaryDirectory() as work:
        for k, (label, rel, goal) in enumerate(MODELS):
            tflite = os.path.join(data, rel)
            model, _ = twin_from_tflite(tflite)
            path = os.path.join(work, f"m{k}.onnx")
            onnx.save(model, path)
            head = (tflm_arena(tflite) or {}).get("head")
            base = pack(path, device, work, f"m{k}off", patch="off")
            assert isinstance(base, Packed), base
            feeds = feeds_for(base.bin_path)
            want = run_all(base.bin_path, "numpy", feeds)
            modes = [("off", {"patch": "off"})]
            if head:
                modes.append((f"auto {head // 2:,}", {"patch": "auto", "ramsize": head // 2}))
            modes.append(("min, fit", {"patch": "min", "scratch": "fit"}))
            for mode, opts in modes:
                p = base if mode == "off" else pack(path, device, work, f"m{k}{mode[:3]}",
                                                    **opts)
                if not isinstance(p, Packed):
                    print(f"{label:30s} {mode:12s} does not fit: {p}")
                    if mode.startswith("auto") and goal:
                        goals.append((label, False))
                    continue
                exact = identical(want, run_all(p.bin_path, "numpy", feeds))
                with contextlib.suppress(thinker.ThinkerError):  # no C compiler here
                    exact = exact and identical(want, run_all(p.bin_path, "c", feeds))
                extra = 100.0 * (p.macs - base.macs) / base.macs
                share = f"{p.arena / head:.2f}x" if head else "-"
                print(f"{label:30s} {mode:12s} {p.arena:>8,} {head or 0:>7,} {share:>6s} "
                      f"{p.macs:>11,} {extra:>6.1f}% {c_ms(p.bin_path):>6.2f} "
                      f"{p.seconds:>6.1f} {'yes' if exact else 'NO':>5s}  {p.patch}")
                if mode.startswith("auto") and goal:
                    goals.append((label, exact and p.arena <= head // 2))
    print("goal: with patch-based execution, arena <= 0.5x tflite-micro's head, bit-identical")
    for label, ok in goals:
        print(f"  {label:30s} {'yes' if ok else 'NO'}")
    return goals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--device", default="cortex-m")
    args = parser.parse_args()
    report(args.data, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
