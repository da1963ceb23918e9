"""The five stages of thinker on real data, in one command (``make demo``):

  1. float training with range constraints   linger.constrain
  2. quantization-aware training + export     linger.init, linger.onnx.export
     (and post-training quantization for comparison: linger.ptq)
  3. checks, memory planning, packing         tpacker (venus)
  4. execution of model.bin                   numpy executor (and the C executor)
  5. validation                               every test image: executor logits == QAT logits

Data: scikit-learn's handwritten digits (8x8, upsampled to 28x28), LeNet-5. Artefacts go to
workspace/digits/. Prints a final table; exits non-zero if the executor's integers ever differ
from the QAT model's or (full run) QAT falls more than 1 pp below float.

    python examples/digits/demo.py          # full demo, about a minute on 2 cores
    python examples/digits/demo.py --fast   # CI size
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_digits as digits

import linger
import thinker
from linger import zoo
from thinker.cli.tpacker import stage_line
from thinker.packer import Packer, PackOptions, summary
from thinker.resource import format as fmt


def progress(done: int, total: int, label: str, width: int = 30) -> None:
    """One self-overwriting progress line on stderr."""
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r  {label:28s} [{'#' * filled}{'.' * (width - filled)}] "
                     f"{done}/{total}{end}")
    sys.stderr.flush()


def train_with_progress(model, data, epochs: int, lr: float, label: str) -> None:
    for epoch in range(epochs):
        digits.train(model, data, 1, lr, seed=epoch)
        progress(epoch + 1, epochs, label)


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="few epochs (CI size)")
    parser.add_argument("--workspace", default=os.path.join("workspace", "digits"))
    parser.add_argument("--platform", default="venus")
    args = parser.parse_args()
    os.makedirs(args.workspace, exist_ok=True)
    torch.manual_seed(0)
    float_epochs, tune_epochs = (3, 1) if args.fast else (20, 5)
    started = time.perf_counter()
    train_data, test_data = digits.load_data()
    print(f"digits: {len(train_data.y)} train / {len(test_data.y)} test images, 28x28, LeNet-5")

    heading("stage 1: float training, then range constraints (linger.constrain)")
    model = zoo.build("lenet5")
    train_with_progress(model, train_data, float_epochs, 2e-3, "float training")
    acc_float = digits.accuracy(model, test_data)
    constrained = linger.constrain(model)
    train_with_progress(constrained, train_data, tune_epochs, 5e-4, "constrained fine-tuning")
    acc_constrained = digits.accuracy(constrained, test_data)

    heading("stage 2: quantization-aware training + export (linger.init, linger.onnx.export)")
    quantized = linger.init(constrained, {"weight_bits": 8, "platform": args.platform})
    train_with_progress(quantized, train_data, tune_epochs, 5e-4, "QAT int8")
    acc_qat = digits.accuracy(quantized, test_data)
    # post-training quantization of the float model, no training (linger.ptq): for comparison
    calib = [train_data.x[i:i + 64] for i in range(0, min(len(train_data.x), 512), 64)]
    acc_ptq = {method: digits.accuracy(linger.ptq(model, calib, {"weight_bits": 8,
                                                                 "platform": args.platform},
                                                  method=method), test_data)
               for method in ("abs_max", "top_10", "mse")}
    print("  PTQ int8 (linger.ptq, 512 calibration images): " + ", ".join(
        f"{m} {a:.2f} %" for m, a in acc_ptq.items()))
    # tpacker writes its report to <workspace root>/<model name>/: name the model like its folder
    onnx_path = os.path.join(args.workspace, os.path.basename(args.workspace) + ".onnx")
    linger.onnx.export(quantized, test_data.x[:1], onnx_path)
    torch.save(quantized.state_dict(), os.path.join(args.workspace, "qat_int8.pt"))
    print(f"  exported {onnx_path}; QAT weights saved to qat_int8.pt")

    heading(f"stage 3: tpacker for {args.platform}")
    bin_path = os.path.join(args.workspace, "model.bin")
    result = Packer(PackOptions(graph_path=onnx_path, output_path=bin_path,
                                platform=args.platform,
                                workspace=os.path.dirname(args.workspace) or "."),
                    stage_line).run()
    with open(bin_path, "wb") as f:
        f.write(result.model_bin)
    print(summary(result))

    heading("stage 4: thinker run of model.bin over the whole test split")
    executor = thinker.load(bin_path)
    (spec_in,), (spec_out,) = executor.inputs, executor.outputs
    # the packed model takes int8 images: quantize exactly as the model's Quant node did
    x_int = thinker.qmath.quantize(test_data.x.numpy(), spec_in.exponent, 8).astype(np.int8)
    batch, outputs = 64, []
    start = time.perf_counter()
    for i in range(0, len(x_int), batch):
        outputs.append(executor.run({spec_in.name: x_int[i:i + batch]})[spec_out.name])
        progress(min(i + batch, len(x_int)), len(x_int), "numpy executor")
    seconds = time.perf_counter() - start
    logits_int = np.concatenate(outputs).astype(np.int64)
    acc_exec = float((logits_int.argmax(1) == test_data.y.numpy()).mean() * 100)
    c_rate = c_same = None
    try:
        c_exec = thinker.load(bin_path, backend="c")
        start = time.perf_counter()
        c_logits = c_exec.run({spec_in.name: x_int})[spec_out.name].astype(np.int64)
        c_rate = len(x_int) / (time.perf_counter() - start)
        c_same = int((c_logits == logits_int).all(axis=1).sum())
    except thinker.ThinkerError as exc:
        print(f"  C executor skipped: {exc}")

    heading("stage 5: validation against the QAT model (torch eval)")
    quantized.eval()
    with torch.no_grad():
        qat_logits = quantized(test_data.x).numpy().astype(np.float64)
    # the QAT output is exactly int / 2**q: compare integers
    qat_int = qat_logits * 2.0 ** spec_out.exponent
    assert np.array_equal(qat_int, np.round(qat_int))
    exact = int((qat_int.astype(np.int64) == logits_int).all(axis=1).sum())
    n = len(test_data.y)

    usage = {k: (a.size, result.report.limits.get(k, 0)) for k, a in result.plan.arenas.items()}
    flash = (len(result.model_bin), result.device.flash)
    elapsed = time.perf_counter() - started
    print(f"\n{'=' * 72}\nthinker digits demo ({args.platform}, {elapsed:.0f} s)\n{'-' * 72}")
    rows = [
        ("accuracy, float", f"{acc_float:.2f} %"),
        ("accuracy, constrained float", f"{acc_constrained:.2f} %"),
        ("accuracy, QAT int8 (torch eval)",
         f"{acc_qat:.2f} %  ({acc_qat - acc_float:+.2f} pp vs float)"),
        ("accuracy, PTQ int8 (no training)", "  ".join(
            f"{m} {a:.2f} %" for m, a in acc_ptq.items())),
        ("accuracy, executor (model.bin)", f"{acc_exec:.2f} %"),
        ("images with identical logits", f"{exact} / {n} (executor vs QAT)"),
    ]
    if c_same is not None:
        rows.append(("C executor vs numpy executor", f"{c_same} / {n} identical"))
    rows += [
        ("flash (model.bin)", f"{flash[0]:,} B of {flash[1]:,} B"),
        *[(f"{fmt.MEMORY_KIND_NAMES[k]} arena", f"{used:,} B of {limit:,} B "
           f"({100 * used / max(limit, 1):.1f} %)") for k, (used, limit) in sorted(usage.items())],
        ("MACs per inference", f"{result.macs:,}"),
        ("numpy executor", f"{n / seconds:,.0f} images/s"),
    ]
    if c_rate is not None:
        rows.append(("C executor", f"{c_rate:,.0f} images/s"))
    for label, value in rows:
        print(f"  {label:34s} {value}")
    print("=" * 72)
    ok = exact == n and (c_same is None or c_same == n)
    if not args.fast and acc_qat < acc_float - 1.0:
        print("QAT is more than 1 pp below float", file=sys.stderr)
        ok = False
    if not ok:
        print("the executor differs from the QAT model", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
