"""Streaming keyword spotting, end to end: train the CRNN keyword spotter (linger.zoo
"crnn_kws": causal convs + GRU, per-frame scores) on synthetic MFCC-like features, quantize
it (QAT), export, pack with ``tpacker --isstream split_h`` and run it frame by frame through
the C executor, which carries the conv histories and the GRU state between calls.

Printed: accuracy (float, int8), per-frame C latency (min / median), state and arena bytes,
and the check that matters: every utterance streamed frame by frame gives exactly (bit for
bit) the scores of the whole utterance run at once.

    make demo-stream                 (or: .venv/bin/python examples/kws_stream/demo.py)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn

import linger
import thinker
from linger import zoo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
FRAMES, COEFFS, CLASSES = 49, 10, 12


def synthetic_features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Utterances of FRAMES x COEFFS features: silence-like noise, then a class-specific
    pattern ("the keyword") from a random onset on; the label of every frame is the keyword's
    class once it has started, else class 0 ("silence")."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.randn(CLASSES, 12, COEFFS, generator=g)
    rng = torch.Generator().manual_seed(seed)
    y = torch.randint(1, CLASSES, (n,), generator=rng)
    onset = torch.randint(4, FRAMES - 14, (n,), generator=rng)
    x = 0.3 * torch.randn(n, 1, FRAMES, COEFFS, generator=rng)
    labels = torch.zeros(n, FRAMES, dtype=torch.long)
    for i in range(n):
        s = int(onset[i])
        x[i, 0, s:s + 12] += templates[y[i]]
        labels[i, s + 2:] = y[i]  # the keyword is recognised two frames after its onset
    return x, labels


def train(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, steps: int,
          lr: float) -> None:
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        out = model(x[idx])
        loss = nn.functional.cross_entropy(out.reshape(-1, CLASSES), labels[idx].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Per-utterance decision: the last frame's class."""
    return 100.0 * float(np.mean(scores[:, -1].argmax(-1) == labels[:, -1]))


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(cmd: list[str], cwd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer steps and utterances (CI)")
    parser.add_argument("--workspace", default=os.path.join("workspace", "kws_stream"))
    parser.add_argument("--platform", default="venus")
    args = parser.parse_args()
    os.makedirs(args.workspace, exist_ok=True)
    work = os.path.abspath(args.workspace)
    torch.manual_seed(0)
    steps, qat_steps, n_test = (30, 10, 16) if args.fast else (100, 30, 64)
    started = time.perf_counter()

    heading("stage 1-2: float training, QAT, export (linger)")
    x_train, y_train = synthetic_features(2048, seed=1)
    x_test, y_test = synthetic_features(n_test, seed=2)
    model = zoo.build("crnn_kws")
    train(model, x_train, y_train, steps, 3e-3)
    with torch.no_grad():
        acc_float = accuracy(model(x_test).numpy(), y_test.numpy())
    quantized = linger.init(model, {"platform": args.platform})
    train(quantized, x_train, y_train, qat_steps, 1e-3)
    onnx_path = os.path.join(work, "kws_stream.onnx")
    linger.onnx.export(quantized, x_test[:1], onnx_path)
    print(f"  {len(x_train)} synthetic utterances of {FRAMES} frames x {COEFFS} coefficients, "
          f"{CLASSES} classes; float accuracy {acc_float:.1f} %; exported {onnx_path}")

    heading("stage 3: tpacker --isstream split_h (and the whole-utterance model)")
    tpacker = os.path.join(BIN, "tpacker")
    out = run([tpacker, "-g", onnx_path, "-o", "stream.bin", "-p", args.platform,
               "--isstream", "split_h"], work)
    print("  " + next(line for line in out.splitlines() if " stream " in line).strip())
    run([tpacker, "-g", onnx_path, "-o", "whole.bin", "-p", args.platform], work)

    heading("stage 4: frame by frame through the C executor")
    stream_bin, whole_bin = os.path.join(work, "stream.bin"), os.path.join(work, "whole.bin")
    whole = thinker.load(whole_bin, backend="c")
    stream = thinker.load(stream_bin, backend="c").stream()
    (spec,) = whole.inputs
    (chunk,) = stream.inputs
    xq = whole.quantize_inputs({spec.name: x_test.numpy()})[spec.name]
    (out_spec,) = whole.outputs
    (stream_out,) = stream.outputs
    identical, scores = 0, []
    for i in range(len(xq)):
        ref = whole.run({spec.name: xq[i:i + 1]})[out_spec.name]
        stream.reset()
        frames = [stream.run({chunk.name: xq[i:i + 1, :, t:t + 1]})[stream_out.name]
                  for t in range(FRAMES)]
        got = np.concatenate(frames, axis=1)
        identical += int(got.dtype == ref.dtype and np.array_equal(got, ref))
        scores.append(whole.dequantize_outputs({out_spec.name: ref})[out_spec.name])
    acc_int8 = accuracy(np.concatenate(scores), y_test.numpy())
    xq[:1].tofile(os.path.join(work, "utterance.bin"))
    timing = run([os.path.join(ROOT, "executor", "build", "host", "test_thinker"), "--stream",
                  "1", "--repeat", "50", "stream.bin", "utterance.bin", "scores.bin"], work)
    frame = np.fromfile(os.path.join(work, "scores.bin"), dtype=out_spec.dtype)
    same_cli = np.array_equal(frame, whole.run({spec.name: xq[:1]})[out_spec.name].reshape(-1))
    print("  test_thinker --stream 1: " + timing.strip().split(": ", 1)[1])

    heading("summary")
    print(f"  accuracy float / int8 (last frame)   {acc_float:.1f} % / {acc_int8:.1f} %")
    print(f"  state carried between frames          {stream.state_bytes:,} B")
    verdict = "identical" if same_cli else "DIFFERENT"
    print(f"  streamed == whole utterance           {identical} / {len(xq)} utterances "
          f"bit-identical (Python ctypes); test_thinker: {verdict}")
    print(f"  total time                            {time.perf_counter() - started:.1f} s")
    return 0 if identical == len(xq) and same_cli else 1


if __name__ == "__main__":
    sys.exit(main())
