"""Numpy executor speed next to onnxruntime running a float32 twin of the same network (same
layers and shapes, dequantized weights), both measured in this run, model by model.

    python benchmarks/bench_executor.py [--data ../shared/data] [--repeat 7] [--batch 64]
                                        [--models ResNet-8,DS-CNN] [--no-rss]

Models: the MLPerf Tiny architectures (thinker twins of the .tflite files' layers, see
mlperf_models.py: ResNet-8, DS-CNN, MobileNetV1-0.25, the FC autoencoder and the streaming
wake-word model) and the real linger ResNet-18 (CIFAR-100). The thinker side runs the graph
tpacker would pack (its device-independent passes: fused activations, no edge Quant); the
float twin is built from the unfused graph and onnxruntime optimizes it as it likes.

Like for like: with T threads, onnxruntime runs ``intra_op_num_threads = T``; thinker runs
``threads = T`` (a batch split across T workers) with BLAS limited to one thread per worker,
and at batch 1 (nothing to split) BLAS with T threads. Every configuration is timed in rounds
that alternate the two peers, so both see the same machine noise; each prints the minimum and
the median over the rounds, and the ratios (onnxruntime time / thinker time: above 1 thinker
is faster), and both peers' GMAC/s. The ratios are read against numpy's own single-thread
sgemm rate, measured first: onnxruntime's time over "every MAC at the sgemm rate" bounds the
ratio a float-BLAS kernel can reach on this machine. Where the CPU has AVX-512 VNNI or
AVX-VNNI, convs and linears run on the compiled int8 kernels instead (docs/ops.md; the line
after the machine says which), which that bound does not limit; THINKER_HOST_KERNELS=0
measures the numpy kernels alone, THINKER_HOST_ISA=avxvnni the 256-bit kernels of CPUs without
AVX-512.
Last, the peak RSS of a fresh process running ResNet-18 at batch 64.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from threadpoolctl import threadpool_info, threadpool_limits

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import thinker  # noqa: E402
from float_twin import build_float_twin  # noqa: E402
from mlperf_models import twin_from_tflite  # noqa: E402
from thinker.graph import load_onnx  # noqa: E402
from thinker.ops import host_kernels  # noqa: E402
from thinker.passes import GRAPH_PASSES, run_pass  # noqa: E402

MODELS = [
    ("ResNet-8", "mlperf-tiny/pretrainedResnet_quant.tflite"),
    ("DS-CNN", "mlperf-tiny/kws_ref_model.tflite"),
    ("MobileNetV1-0.25", "mlperf-tiny/vww_96_int8.tflite"),
    ("FC autoencoder", "mlperf-tiny/ad01_int8.tflite"),
    ("streaming wake word", "mlperf-tiny/str_ww_ref_model.tflite"),
    ("ResNet-18 (linger)", "linger-resnet18/resnet18_cifar100_linger.onnx"),
]
RSS_GOAL_MB = 179  # ResNet-18 at batch 64 before the speed work (issue 14)


def default_data() -> str:
    for c in (os.environ.get("THINKER_SHARED_DATA", ""),
              os.path.join(HERE, "..", "..", "shared", "data"), "/work/shared/data"):
        if c and os.path.isdir(c):
            return c
    return os.path.join("..", "shared", "data")


def thinker_graph(path: str, workdir: str):
    """(graph thinker runs: tpacker's device-independent passes, unfused graph for the twin)."""
    if path.endswith(".tflite"):
        model, _ = twin_from_tflite(path)
        path = os.path.join(workdir, os.path.basename(path) + ".onnx")
        onnx.save(model, path)
    raw = load_onnx(path)
    graph = raw
    for p in GRAPH_PASSES:
        graph = run_pass(p, graph)
    return graph, raw


def ort_session(twin: bytes, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # its pool threads would otherwise spin after each run, taking a core from the thinker
    # run that alternates with it (measured: thinker's 2-thread batch-64 time 1.6x longer)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(twin, so, providers=["CPUExecutionProvider"])


def sample_input(spec, batch: int, rng) -> np.ndarray:
    shape = (batch, *spec.shape[1:])
    if np.issubdtype(spec.dtype, np.integer):
        info = np.iinfo(spec.dtype)
        return rng.integers(info.min, int(info.max) + 1, shape).astype(spec.dtype)
    return rng.normal(size=shape).astype(spec.dtype)


def rounds(fns, count: int) -> list[list[float]]:
    """Seconds of each fn per round, the fns alternating (first order reversed every other
    round) after one warm-up call each."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for r in range(count):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for k in order:
            start = time.perf_counter()
            fns[k]()
            samples[k].append(time.perf_counter() - start)
    return samples


def machine_line() -> str:
    blas = next((i for i in threadpool_info() if i.get("user_api") == "blas"), {})
    core = blas.get("architecture", "?")
    if os.environ.get("OPENBLAS_CORETYPE"):  # the environment picks OpenBLAS's kernels
        core = f"{core}, set by OPENBLAS_CORETYPE"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (f"machine: {os.cpu_count()} cores ({cpu}); numpy {np.__version__} with "
            f"{blas.get('internal_api', '?')} {blas.get('version', '?')} (kernels {core}); "
            f"onnxruntime {ort.__version__} CPU provider")


def sgemm_rate() -> float:
    """Single-thread float32 GEMM throughput of numpy's BLAS (MAC/s) on a conv-like shape
    (64 x 577 weights, 4096 columns): the ceiling of an executor that computes its MACs in
    sgemm, against which the ratios can be read."""
    rng = np.random.default_rng(0)
    a = rng.random((64, 577), dtype=np.float32)
    b = rng.random((577, 4096), dtype=np.float32)
    out = np.empty((64, 4096), dtype=np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        np.matmul(a, b, out=out)
        best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(20))
    return a.shape[0] * a.shape[1] * b.shape[1] / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_rss_mb(path: str, batch: int) -> float:
    """Peak RSS (MB, the kernel's VmHWM) of a fresh process that loads ``path`` and runs
    ``batch`` samples twice on one thread."""
    code = (
        "import sys, numpy as np, thinker\n"
        "from threadpoolctl import threadpool_limits\n"
        "m = thinker.load(sys.argv[1]); s = m.inputs[0]\n"
        "x = np.random.default_rng(0).normal(size=(int(sys.argv[2]), *s.shape[1:]))"
        ".astype(s.dtype)\n"
        "with threadpool_limits(1):\n"
        "    m.run({s.name: x}); m.run({s.name: x})\n"
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))\n")
    out = subprocess.run([sys.executable, "-c", code, path, str(batch)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[-2]) / 1024  # "VmHWM: <kB> kB" (not ru_maxrss: exec keeps it)


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--data", default=default_data())
    parser.add_argument("--repeat", type=int, default=7, help="rounds per batch-N configuration "
                        "(batch 1 runs 5x as many)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", default="1,2", help="thread counts to compare")
    parser.add_argument("--models", default="", help="comma-separated names (prefixes)")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--avxvnni", action="store_true",
                        help="the 256-bit AVX-VNNI kernels (THINKER_HOST_ISA=avxvnni), as CPUs "
                        "without AVX-512 run them; skipped unless this CPU has both")
    args = parser.parse_args()
    wanted = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    thread_counts = [int(t) for t in args.threads.split(",")]

    if args.avxvnni:
        lib = host_kernels._library()
        both = host_kernels.VNNI_FEATURE | host_kernels.VNNI256_FEATURE
        if lib is None or lib.thinker_host_features() & both != both:
            print("--avxvnni: skipped (this CPU does not have both AVX-512 VNNI and AVX-VNNI; "
                  "the run without it measures the kernels it has)")
            return 0
        os.environ["THINKER_HOST_ISA"] = "avxvnni"  # read whenever a model is loaded
    print(machine_line())
    lib = host_kernels._library()
    features = lib.thinker_host_features() if lib is not None else 0
    isa = "AVX-512 VNNI, executor/host/conv_vnni.c" if features & host_kernels.VNNI_FEATURE \
        else "256-bit AVX-VNNI, executor/host/conv_avxvnni.c"
    print("thinker conv/linear kernels: " + (
        f"compiled int8 ({isa}) where they apply, numpy + BLAS elsewhere" if lib is not None
        else "numpy + BLAS (no compiled int8 kernel: no AVX-512 VNNI or AVX-VNNI, no C "
        "compiler, or THINKER_HOST_KERNELS=0)"))
    rate = sgemm_rate()
    print(f"numpy sgemm, 1 thread: {rate / 1e9:.1f} GMAC/s (the float-BLAS ceiling: 'sgemm "
          "bound' below is the ratio a float-BLAS kernel running every MAC at that rate would "
          "reach; the compiled int8 kernels are not bound by it)")
    print(f"thinker T threads: batch split over T workers, BLAS 1 thread each (batch 1: BLAS T "
          f"threads); onnxruntime: intra_op_num_threads = T. min / median over {args.repeat} "
          f"rounds (batch 1: {args.repeat * 5}), peers alternating; ratio = onnxruntime time / "
          f"thinker time")
    head = (f"{'model':22s} {'M MACs':>7s} {'batch':>5s} {'thr':>3s} | {'thinker ms':>17s} | "
            f"{'onnxruntime ms':>17s} | {'ratio min':>9s} {'med':>6s} | {'GMAC/s':>11s}")
    print(head)
    print("-" * len(head))
    summary = []
    with tempfile.TemporaryDirectory() as work:
        for label, rel in MODELS:
            if wanted and not any(label.lower().startswith(w) for w in wanted):
                continue
            path = os.path.join(args.data, rel)
            if not os.path.exists(path):
                print(f"{label:22s} skipped: {path} not found")
                continue
            graph, raw = thinker_graph(path, work)
            twin = build_float_twin(raw).SerializeToString()
            models = {t: thinker.load(graph, threads=t) for t in thread_counts}
            spec = models[thread_counts[0]].inputs[0]
            ort_name = ort_session(twin, 1).get_inputs()[0].name
            macs = sum(s.macs for s in models[thread_counts[0]].steps) / \
                max(models[thread_counts[0]].static_batch, 1)
            rng = np.random.default_rng(0)
            for batch in (1, args.batch):
                x = sample_input(spec, batch, rng)
                xf = x.astype(np.float32) / np.float32(2.0 ** (spec.exponent or 0))
                scaling = {}
                for t in thread_counts:
                    session = ort_session(twin, t)
                    model = models[t]
                    blas = t if batch == 1 else 1
                    with threadpool_limits(limits=blas, user_api="blas"):
                        th, ox = rounds([lambda m=model, feed={spec.name: x}: m.run(feed),
                                         lambda s=session, feed={ort_name: xf}: s.run(None, feed)],
                                        args.repeat * (5 if batch == 1 else 1))
                    scaling[t] = (min(th), min(ox))
                    gmacs = macs * batch / 1e9
                    r_min, r_med = min(ox) / min(th), statistics.median(ox) / \
                        statistics.median(th)
                    print(f"{label:22s} {macs / 1e6:7.1f} {batch:5d} {t:3d} | "
                          f"{min(th) * 1e3:7.2f} / {statistics.median(th) * 1e3:7.2f} | "
                          f"{min(ox) * 1e3:7.2f} / {statistics.median(ox) * 1e3:7.2f} | "
                          f"{r_min:8.2f}x {r_med:5.2f}x | "
                          f"{gmacs / min(th):4.1f} / {gmacs / min(ox):4.1f}")
                    summary.append((label, batch, t, r_min, r_med, min(ox) * rate / (macs * batch)))
                if len(thread_counts) > 1:
                    t1, tn = thread_counts[0], thread_counts[-1]
                    print(f"{'':22s} {'':7s} {batch:5d} scaling {t1}->{tn} threads: thinker "
                          f"{scaling[t1][0] / scaling[tn][0]:.2f}x, onnxruntime "
                          f"{scaling[t1][1] / scaling[tn][1]:.2f}x")
        if not args.no_rss and (not wanted or any("resnet-18".startswith(w) for w in wanted)):
            path = os.path.join(args.data, MODELS[-1][1])
            if os.path.exists(path):
                rss = peak_rss_mb(path, args.batch)
                print(f"peak RSS, ResNet-18 (linger) batch {args.batch}, thinker numpy 1 thread "
                      f"(fresh process): {rss:.0f} MB (goal <= {RSS_GOAL_MB} MB)")
    one = [s for s in summary if s[2] == thread_counts[0]]
    if one:
        print(f"single thread: ratio (min) vs sgemm bound (onnxruntime time / MACs at "
              f"{rate / 1e9:.1f} GMAC/s):")
        for label, batch, _, r_min, _, bound in one:
            print(f"  {label:22s} batch {batch:3d}: {r_min:5.2f}x (float BLAS at most "
                  f"{bound:5.2f}x)")
        worst_b = min((s for s in one if s[1] != 1), key=lambda s: s[3], default=None)
        worst_1 = min((s for s in one if s[1] == 1), key=lambda s: s[3], default=None)
        # the goals are this machine's own kernels' (the --avxvnni pass shows other CPUs')
        goal_b, goal_1 = ("; goal >= 1.0x", "; goal >= 0.5x") if not args.avxvnni else ("", "")
        if worst_b:
            print(f"lowest single-thread ratio, batch {args.batch}: {worst_b[3]:.2f}x "
                  f"({worst_b[0]}{goal_b})")
        if worst_1:
            print(f"lowest single-thread ratio, batch 1: {worst_1[3]:.2f}x ({worst_1[0]}"
                  f"{goal_1})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
