"""Handwritten digits end to end: float -> constrained -> quantization-aware training (int8 and
int4 weights) -> ONNX export -> the thinker executor, which must reproduce linger's eval
forward integer for integer on the whole test split.

    python examples/digits/train_digits.py            # full run (about a minute on 2 cores)
    python examples/digits/train_digits.py --fast     # CI-size run

Data: scikit-learn's ``load_digits`` (1797 8x8 images), upsampled to 28x28 for LeNet-5.
Exits non-zero when the executor and linger disagree, or (full run) when int8 QAT ends more
than 1 percentage point below the float model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

import linger
import thinker
from linger import zoo
from thinker.runtime import DumpHook


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor


def load_data(seed: int = 0) -> tuple[Split, Split]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    images = (images - 0.5) / 0.5  # roughly [-1, 1]
    labels = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=0.25,
                                           random_state=seed, stratify=digits.target)
    return Split(images[train_idx], labels[train_idx]), Split(images[test_idx], labels[test_idx])


def train(model: nn.Module, data: Split, epochs: int, lr: float, seed: int = 0) -> None:
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(data.y), generator=generator)
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()  # augmentation
            x = torch.roll(data.x[batch], shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(model(x), data.y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()


def accuracy(model: nn.Module, data: Split) -> float:
    model.eval()
    with torch.no_grad():
        return (model(data.x).argmax(1) == data.y).float().mean().item() * 100


def check_executor(model: nn.Module, data: Split, path: str) -> tuple[bool, float]:
    """Executor on the exported file vs linger's eval forward: every tensor, every image."""
    expected = linger.onnx.capture(model, data.x)
    executor = thinker.load(path)
    dump = DumpHook(keep=True)
    logits = executor.run({"input": data.x.numpy()}, hooks=[dump])["output"]
    same = all(np.array_equal(dump.values[name].astype(np.int64), ints)
               for name, ints in expected.items())
    with torch.no_grad():
        same = same and np.array_equal(logits, model(data.x).numpy())
    return same, (logits.argmax(1) == data.y.numpy()).mean() * 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="few epochs (CI size)")
    parser.add_argument("--workspace", default=os.path.join("workspace", "digits"),
                        help="where model.onnx is written")
    args = parser.parse_args()
    torch.manual_seed(0)
    float_epochs, tune_epochs = (3, 1) if args.fast else (20, 5)
    train_data, test_data = load_data()
    started = time.perf_counter()

    model = zoo.build("lenet5")
    train(model, train_data, float_epochs, 2e-3)
    results = {"float": accuracy(model, test_data)}

    constrained = linger.constrain(model)
    train(constrained, train_data, tune_epochs, 5e-4)
    results["constrained"] = accuracy(constrained, test_data)

    exported = {}
    for bits in (8, 4):
        quantized = linger.init(constrained, {"weight_bits": bits})
        train(quantized, train_data, tune_epochs, 5e-4)
        results[f"QAT int{bits}"] = accuracy(quantized, test_data)
        name = "model.onnx" if bits == 8 else "model_int4.onnx"
        path = os.path.join(args.workspace, name)
        linger.onnx.export(quantized, test_data.x[:1], path)
        exported[bits] = (path, *check_executor(quantized, test_data, path))

    print(f"digits: {len(train_data.y)} train / {len(test_data.y)} test images, 28x28, "
          f"LeNet-5, {time.perf_counter() - started:.0f} s")
    for stage, acc in results.items():
        print(f"  {stage:12s} test accuracy {acc:6.2f} %")
    ok = True
    for path, same, acc in exported.values():
        verdict = "identical to linger eval" if same else "DIFFERS from linger eval"
        print(f"  executor on {path}: {verdict} (every tensor, {len(test_data.y)} images), "
              f"accuracy {acc:.2f} %")
        ok = ok and same
    change = results["QAT int8"] - results["float"]
    print(f"  QAT int8 vs float: {change:+.2f} pp")
    if not args.fast and change < -1.0:
        print("  int8 QAT is more than 1 pp below float", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
