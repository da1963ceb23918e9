"""The C executor against the numpy executor and TensorFlow Lite Micro, in one run.

1. Code size: ``arm-none-eabi-size`` of the executor built for Cortex-M4 (-Os -mthumb), linked
   with --gc-sections behind a probe that calls the whole API: with every op, and with only the
   ops of the ResNet-8 twin (make OPS_FROM=model.bin). Goals: <= 64 KiB and <= 24 KiB of text.
2. Host latency at batch 1 of the MLPerf Tiny architectures (ResNet-8, DS-CNN,
   MobileNetV1-0.25, the FC autoencoder): the C executor (on the compiled host kernels where
   the CPU has them, and on its portable kernels) and the numpy executor run thinker
   twins built from the .tflite files' layer shapes (benchmarks/mlperf_models.py); tflite-micro
   (reference kernels) runs the .tflite files themselves. All single-threaded, the runners in
   alternating rounds; min and median of the repeated runs (the machines are noisy). The host
   library is built for the machine's own CPU (executor/Makefile HOST_ARCH=-march=native).

    python benchmarks/bench_c.py [--data ../shared/data] [--repeat 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXECUTOR = os.path.join(ROOT, "executor")
sys.path.insert(0, HERE)

from mlperf_models import MLPERF, twin_from_tflite  # noqa: E402

MODELS = {**MLPERF, "FC autoencoder": "ad01_int8.tflite"}

SIZE_GOALS = {"all ops": 64 * 1024, "ResNet-8 ops": 24 * 1024}


def default_data() -> str:
    for c in (os.environ.get("THINKER_SHARED_DATA", ""), os.path.join(ROOT, "..", "shared", "data"),
              "/work/shared/data"):
        if c and os.path.isdir(c):
            return c
    return os.path.join(ROOT, "..", "shared", "data")


def pack_twin(tflite_path: str, out_dir: str, name: str) -> str:
    import onnx

    from thinker.packer import Packer, PackOptions

    model, _ = twin_from_tflite(tflite_path)
    src = os.path.join(out_dir, f"{name}.onnx")
    onnx.save(model, src)
    dst = os.path.join(out_dir, f"{name}.bin")
    result = Packer(PackOptions(graph_path=src, output_path=dst, platform="cortex-m",
                                ramsize=4 << 20, workspace=os.path.join(out_dir, "ws"))).run()
    with open(dst, "wb") as f:
        f.write(result.model_bin)
    return dst


def arm_text_size(build_dir: str, *make_args: str) -> int | None:
    """text bytes of size_probe.elf for a Cortex-M4 build, or None without the toolchain."""
    if shutil.which("arm-none-eabi-gcc") is None:
        return None
    subprocess.run(["make", "-C", EXECUTOR, "CROSS=arm-none-eabi-", "CPU=cortex-m4",
                    f"BUILD={build_dir}", *make_args], check=True, capture_output=True)
    out = subprocess.run(["arm-none-eabi-size", os.path.join(build_dir, "size_probe.elf")],
                         check=True, capture_output=True, text=True).stdout
    return int(out.splitlines()[1].split()[0])


def timed(fn, repeat: int) -> list[float]:
    """Milliseconds of `repeat` calls after a warm-up call (page faults, lazy preparation)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def tflm_runner(path: str):
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(path)
    detail = interp.get_input_details(0)
    x = np.random.default_rng(0).integers(-128, 128, detail["shape"]).astype(detail["dtype"])

    def once():
        interp.set_input(x, 0)
        interp.invoke()
        interp.get_output(0)

    return once


def thinker_runner(model_bin: str, backend: str, compiled: bool = True):
    import thinker
    from thinker.runtime.c_backend import host_kernels

    with host_kernels(compiled):
        exe = thinker.load(model_bin, backend=backend)
    spec = exe.inputs[0]
    feeds = {spec.name: np.random.default_rng(0).integers(-128, 128, spec.shape).astype(spec.dtype)}
    return lambda: exe.run(feeds)


def latencies(runners: dict, repeat: int, rounds: int = 5) -> dict[str, tuple[float, float]]:
    """(min, median) ms per runner, the runners taking turns in `rounds` rounds."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    per_round = max(1, repeat // rounds)
    for _ in range(rounds):
        for name, fn in runners.items():
            times[name] += timed(fn, per_round)
    return {name: (float(np.min(t)), float(np.median(t))) for name, t in times.items()}


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=default_data(), help="shared data folder")
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per model and runner")
    args = parser.parse_args()
    mlperf = os.path.join(args.data, "mlperf-tiny")
    subprocess.run(["make", "-C", EXECUTOR], check=True, capture_output=True)

    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)  # batch-1 latency, one core for everybody
    except ImportError:
        limits = None

    with tempfile.TemporaryDirectory() as tmp:
        bins = {name: pack_twin(os.path.join(mlperf, f), tmp, name.replace(" ", "_"))
                for name, f in MODELS.items()}

        print("Code size, Cortex-M4 (-Os -mthumb), executor + libc/libgcc helpers it links")
        sizes = {"all ops": arm_text_size(os.path.join(tmp, "m4-all")),
                 "ResNet-8 ops": arm_text_size(os.path.join(tmp, "m4-r8"),
                                               f"OPS_FROM={bins['ResNet-8']}")}
        rows = [["build", "text (B)", "text (KiB)", "goal (KiB)", "meets goal"]]
        for name, size in sizes.items():
            goal = SIZE_GOALS[name]
            if size is None:
                rows.append([name, "n/a", "n/a", f"{goal // 1024}", "arm-none-eabi-gcc missing"])
            else:
                rows.append([name, f"{size:,}", f"{size / 1024:.1f}", f"{goal // 1024}",
                             "yes" if size <= goal else "NO"])
        print(table(rows))
        print()

        print(f"Host latency, batch 1, {args.repeat} runs each (ms, min / median); ratios = "
              f"other / C on medians; {os.cpu_count()} cores, one thread used")
        rows = [["model", "C executor", "C, portable kernels", "numpy executor",
                 "tflite-micro (ref)", "numpy/C", "tflm/C"]]
        meets = []
        for name, f in MODELS.items():
            runners = {"c": thinker_runner(bins[name], "c"),
                       "c_portable": thinker_runner(bins[name], "c", compiled=False),
                       "numpy": thinker_runner(bins[name], "numpy")}
            with contextlib.suppress(ImportError):
                runners["tflm"] = tflm_runner(os.path.join(mlperf, f))
            t = latencies(runners, args.repeat)
            c, npy = t["c"], t["numpy"]
            if "tflm" in t:
                tf = t["tflm"]
                tf_cells = [f"{tf[0]:.3f} / {tf[1]:.3f}", f"{tf[1] / c[1]:.2f}x"]
            else:
                tf_cells = ["n/a (pip install tflite-micro)", "-"]
            port = t["c_portable"]
            meets.append(c[1] <= npy[1])
            rows.append([name, f"{c[0]:.3f} / {c[1]:.3f}", f"{port[0]:.3f} / {port[1]:.3f}",
                         f"{npy[0]:.3f} / {npy[1]:.3f}", tf_cells[0], f"{npy[1] / c[1]:.2f}x",
                         tf_cells[1]])
        print(table(rows))
        print(f"goal, C executor median <= numpy executor median at batch 1 on every model: "
              f"{'met' if all(meets) else 'NOT met'}")
        print("C executor: int8 convs/linears on the compiled host kernels where this CPU has "
              "them (host/executor_kernels.c); portable kernels: THINKER_HOST_KERNELS=0, the "
              "device code every core without a DSP extension runs.")
        print("\nthinker twins: same layer shapes/strides/pads as the .tflite files, random int8 "
              "weights; the final SOFTMAX runs only in tflite-micro.")
    if limits is not None:
        limits.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
