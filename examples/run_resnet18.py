"""Run the real ResNet-18 exported by the original linger tool and print its top-5 classes.

    python examples/run_resnet18.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import thinker
from thinker.runtime import DumpHook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"),
                        help="folder holding linger-resnet18/")
    args = parser.parse_args()
    folder = os.path.join(args.data, "linger-resnet18")
    model_path = os.path.join(folder, "resnet18_cifar100_linger.onnx")
    image = np.fromfile(os.path.join(folder, "input_int8_3x32x32.bin"), dtype=np.int8)
    image = image.reshape(1, 3, 32, 32)

    start = time.perf_counter()
    model = thinker.load(model_path)
    print(f"loaded {model_path}: {len(model.steps)} ops in {time.perf_counter() - start:.2f} s")
    for s in model.inputs:
        print(f"  input  {s.name}: {s.dtype}{list(s.shape)}")
    for s in model.outputs:
        print(f"  output {s.name}: {s.dtype}{list(s.shape)}")

    # The file holds the image after the model's Quant node (scale 2**6): feed it dequantized.
    dump = DumpHook(keep=True)
    start = time.perf_counter()
    logits = model.run({"input": image.astype(np.float32) / 64}, hooks=[dump])["output"][0]
    elapsed = time.perf_counter() - start
    quantized = dump.values[model.steps[0].node.outputs[0]]
    same = np.array_equal(quantized, image)
    print(f"ran in {elapsed * 1e3:.1f} ms; Quant output equals the int8 file: {same}")
    top = np.argsort(-logits, kind="stable")[:5]
    print("top-5 classes (CIFAR-100 index: logit)")
    for rank, cls in enumerate(top, 1):
        print(f"  {rank}. class {cls:3d}: {logits[cls]:+.4f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
