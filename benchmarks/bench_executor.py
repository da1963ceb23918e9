"""Numpy executor speed on the real linger ResNet-18 next to onnxruntime (single thread)
running a float32 twin of the same network (same layers and shapes, dequantized weights).

    python benchmarks/bench_executor.py [--data ../shared/data] [--repeat 5]

Prints batch-1 latency and batch-64 throughput for both, and the ratios against
onnxruntime with one thread. Like for like: thinker with one thread (BLAS limited to one);
also shown: both with every core (thinker splits the batch across threads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import thinker
from float_twin import build_float_twin
from thinker.graph import load_onnx


def timed(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    path = os.path.join(args.data, "linger-resnet18", "resnet18_cifar100_linger.onnx")

    graph = load_onnx(path)
    cores = os.cpu_count() or 1
    single = thinker.load(graph)
    multi = thinker.load(graph, threads=cores)
    twin = build_float_twin(graph).SerializeToString()
    sessions = {}
    for threads in (1, cores):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sessions[threads] = ort.InferenceSession(twin, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(1, 3, 32, 32)).astype(np.float32)
    xb = rng.normal(size=(args.batch, 3, 32, 32)).astype(np.float32)
    macs = sum(s.macs for s in single.steps)

    def run_thinker(model, x):
        return lambda: model.run({"input": x})

    def run_ort(session, x):
        return lambda: session.run(None, {"input": x})

    rows = []
    with threadpool_limits(limits=1):
        rows.append(("thinker numpy, 1 thread", timed(run_thinker(single, x1), args.repeat * 4),
                     timed(run_thinker(single, xb), args.repeat)))
        rows.append((f"thinker numpy, {cores} threads", timed(run_thinker(multi, x1),
                                                               args.repeat * 4),
                     timed(run_thinker(multi, xb), args.repeat)))
    for threads, session in sessions.items():
        rows.append((f"onnxruntime float32 twin, {threads} thread{'s' if threads > 1 else ''}",
                     timed(run_ort(session, x1), args.repeat * 4),
                     timed(run_ort(session, xb), args.repeat)))
    ort_b1, ort_bn = rows[2][1], rows[2][2]

    print(f"ResNet-18 (linger, CIFAR-100): {len(single.steps)} ops, {macs / 1e6:.1f} M MACs "
          f"per image; median of {args.repeat} runs")
    print(f"{'executor':40s} {'batch-1 ms':>11s} {f'batch-{args.batch} img/s':>15s} "
          f"{'b1 vs ort-1':>12s} {'img/s vs ort-1':>15s}")
    for label, b1, bn in rows:
        print(f"{label:40s} {b1 * 1e3:11.2f} {args.batch / bn:15.1f} {ort_b1 / b1:11.2f}x "
              f"{ort_bn / bn:14.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
