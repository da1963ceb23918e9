"""Streaming CRNN keyword spotter (linger.zoo "crnn_kws", tpacker --isstream split_h): the C
executor's per-frame latency on this host (min and median over repeated passes of a whole
utterance, fed one frame per thinker_forward), the Cortex-M4 build's code size with only the
ops this model uses (bench_c.arm_text_size), and the memory one stream needs: carried state,
arenas, the executor's STATE tables.

    .venv/bin/python benchmarks/bench_stream.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import linger  # noqa: E402
import thinker  # noqa: E402
from bench_c import EXECUTOR, arm_text_size  # noqa: E402
from linger import zoo  # noqa: E402
from thinker.packer import Packer, PackOptions  # noqa: E402


def stream_model(folder: str, platform: str, frames: int = 49) -> str:
    """crnn_kws with a few QAT steps (weights and ranges as after training), exported and
    packed with --isstream split_h, chunks of up to `frames` frames (memory planned for that);
    returns the model.bin path."""
    from thinker.graph import load_onnx

    torch.manual_seed(0)
    x = torch.randn(16, 1, 49, 10)
    model = linger.init(zoo.build("crnn_kws"), {"platform": platform})
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    onnx_path = os.path.join(folder, "crnn_kws.onnx")
    linger.onnx.export(model, x[:1], onnx_path)
    out = os.path.join(folder, f"crnn_kws_stream{frames}.bin")
    name = load_onnx(onnx_path).inputs[0]
    result = Packer(PackOptions(graph_path=onnx_path, output_path=out, platform=platform,
                                isstream="split_h", dynamic_shape=[f"{name}=1:{frames}:1"],
                                workspace=os.path.join(folder, "ws"))).run()
    with open(out, "wb") as f:
        f.write(result.model_bin)
    return out


def c_latency(model_bin: str, folder: str, chunk: int, repeat: int) -> tuple[float, float]:
    """(min, median) ms per thinker_forward of `chunk` frames, from test_thinker --stream."""
    import numpy as np

    x = np.random.default_rng(0).integers(-128, 128, (1, 1, 49, 10)).astype(np.int8)
    x.tofile(os.path.join(folder, "utterance.bin"))
    binary = os.path.join(EXECUTOR, "build", "host", "test_thinker")
    out = subprocess.run([binary, "--stream", str(chunk), "--repeat", str(repeat), model_bin,
                          "utterance.bin", "scores.bin"], capture_output=True, text=True,
                         cwd=folder, check=True).stdout
    found = re.search(r"min ([\d.]+) ms, median ([\d.]+) ms", out)
    return float(found.group(1)), float(found.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="passes over the utterance")
    parser.add_argument("--platform", default="venus")
    args = parser.parse_args()
    # the device code's STATE and speed: no compiled host kernels (here and in test_thinker)
    os.environ["THINKER_HOST_KERNELS"] = "0"
    subprocess.run(["make", "-C", EXECUTOR], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_bin = stream_model(tmp, args.platform)
        c = thinker.load(model_bin, backend="c")
        stream = c.stream()
        arenas = sum(size for kind, size, _ in c.memory_plan if kind in (2, 3))
        sram = sum(size for kind, size, _ in c.memory_plan if kind == 3)
        tables = sum(size for kind, size, _ in c.memory_plan if kind == 8)
        frame = c_latency(model_bin, tmp, 1, args.repeat)
        per_frame = thinker.load(stream_model(tmp, args.platform, 1), backend="c")
        arenas1 = sum(size for kind, size, _ in per_frame.memory_plan if kind in (2, 3))
        sram1 = sum(size for kind, size, _ in per_frame.memory_plan if kind == 3)
        frame1 = c_latency(per_frame.path, tmp, 1, args.repeat)
        whole = c_latency(model_bin, tmp, 49, max(1, args.repeat // 10))
        text_model = arm_text_size(os.path.join(tmp, "m4-crnn"), f"OPS_FROM={model_bin}")
        text_all = arm_text_size(os.path.join(tmp, "m4-all"))

    print("CRNN keyword spotter (crnn_kws: 2 causal convs + GRU 32 + dense 12, 49 x 10 "
          f"frames), tpacker --isstream split_h, {args.platform}")
    rows = [
        ("C per frame, host (1 frame per forward)", f"min {frame[0] * 1e3:.1f} us, "
         f"median {frame[1] * 1e3:.1f} us ({args.repeat} x 49 frames)"),
        ("C per 49-frame chunk, host", f"min {whole[0] * 1e3:.1f} us, median "
         f"{whole[1] * 1e3:.1f} us"),
        ("Cortex-M4 text, this model's ops", "n/a (arm-none-eabi-gcc missing)"
         if text_model is None else f"{text_model:,} B"),
        ("Cortex-M4 text, all ops", "n/a" if text_all is None else f"{text_all:,} B"),
        ("state carried per stream", f"{stream.state_bytes:,} B"),
        ("state + arenas per stream (49-frame plan)", f"{arenas:,} B: share-memory "
         f"{sram:,} B (activations, scratch, state), PSRAM {arenas - sram:,} B (weights "
         "the device profile copies to RAM)"),
        ("state + arenas, packed for 1-frame chunks", f"{arenas1:,} B: share-memory "
         f"{sram1:,} B, PSRAM {arenas1 - sram1:,} B; C per frame min "
         f"{frame1[0] * 1e3:.1f} us, median {frame1[1] * 1e3:.1f} us"),
        ("executor tables (STATE buffer)", f"{tables:,} B"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:{width}s}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
