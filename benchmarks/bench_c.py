"""The C executor against the numpy executor and TensorFlow Lite Micro, in one run.

1. Code size: ``arm-none-eabi-size`` of the executor built for Cortex-M4 (-Os -mthumb), linked
   with --gc-sections behind a probe that calls the whole API: with every op, and with only the
   ops of the ResNet-8 twin (make OPS_FROM=model.bin). Goals: <= 64 KiB and <= 24 KiB of text.
2. Host latency at batch 1 of the MLPerf Tiny architectures (ResNet-8, DS-CNN,
   MobileNetV1-0.25): the C executor and the numpy executor run thinker twins built from the
   .tflite files' layer shapes (benchmarks/mlperf_models.py); tflite-micro (reference kernels)
   runs the .tflite files themselves. All single-threaded.

    python benchmarks/bench_c.py [--data ../shared/data] [--repeat 30]
"""

from __future__ import annotations

import argparse
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


def median_ms(fn, repeat: int) -> float:
    fn()  # warm up (page faults, lazy preparation)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def tflm_ms(path: str, repeat: int) -> float:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(path)
    detail = interp.get_input_details(0)
    x = np.random.default_rng(0).integers(-128, 128, detail["shape"]).astype(detail["dtype"])

    def once():
        interp.set_input(x, 0)
        interp.invoke()
        interp.get_output(0)

    return median_ms(once, repeat)


def thinker_ms(model_bin: str, backend: str, repeat: int) -> float:
    import thinker

    exe = thinker.load(model_bin, backend=backend)
    spec = exe.inputs[0]
    feeds = {spec.name: np.random.default_rng(0).integers(-128, 128, spec.shape).astype(spec.dtype)}
    return median_ms(lambda: exe.run(feeds), repeat)


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=default_data(), help="shared data folder")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per model")
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
                for name, f in MLPERF.items()}

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

        print(f"Host latency, batch 1, median of {args.repeat} runs (ms); ratios = other / C")
        rows = [["model", "C executor", "numpy executor", "tflite-micro (ref)", "numpy/C",
                 "tflm/C"]]
        for name, f in MLPERF.items():
            c = thinker_ms(bins[name], "c", args.repeat)
            npy = thinker_ms(bins[name], "numpy", args.repeat)
            try:
                tf = tflm_ms(os.path.join(mlperf, f), args.repeat)
                tf_cells = [f"{tf:.3f}", f"{tf / c:.2f}x"]
            except ImportError:
                tf_cells = ["n/a (pip install tflite-micro)", "-"]
            rows.append([name, f"{c:.3f}", f"{npy:.3f}", tf_cells[0], f"{npy / c:.2f}x",
                         tf_cells[1]])
        print(table(rows))
        print("\nthinker twins: same layer shapes/strides/pads as the .tflite files, random int8 "
              "weights; the final SOFTMAX runs only in tflite-micro.")
    if limits is not None:
        limits.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
