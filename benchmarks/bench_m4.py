"""The C executor's Cortex-M4 build on an emulated core: executed instructions per MAC.

Builds the executor for Cortex-M4 (-Os -mthumb, the DSP extension's SMLAD kernels) with the
bare-metal runner of executor/probe/m4_runner.c, runs the MLPerf Tiny twins (ResNet-8, DS-CNN,
MobileNetV1-0.25, the FC autoencoder; benchmarks/mlperf_models.py) in the unicorn engine
(benchmarks/m4_emu.py), counts the instructions executed per op and prints instructions per
MAC per op class next to the physical floor (one SMLAD = 2 MACs: 0.5 instruction per MAC).
Goals: <= 1.0 on pointwise/standard convolutions and linear layers, <= 2.0 on depthwise
convolutions. Checks that the emulated outputs equal the host executor's, and prints the
Cortex-M4 text sizes, and that no op changed arena bytes outside its outputs and its planned
scratch. ``--functions N``: the N functions that executed most, per model.

    python benchmarks/bench_m4.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import m4_emu  # noqa: E402
from bench_c import SIZE_GOALS, arm_text_size, default_data, pack_twin, table  # noqa: E402

MODELS = {
    "ResNet-8": "pretrainedResnet_quant.tflite",
    "DS-CNN": "kws_ref_model.tflite",
    "MobileNetV1-0.25": "vww_96_int8.tflite",
    "FC autoencoder": "ad01_int8.tflite",
}
GOALS = {"conv (pointwise/standard)": 1.0, "depthwise conv": 2.0, "linear": 1.0}
FLOOR = 0.5  # SMLAD: two 16-bit MACs per instruction


def op_classes(model_bin: str) -> list[tuple[str, int]]:
    """(class, MACs) per op of a model.bin; class None for ops without MACs."""
    from thinker.resource.reader import read_model

    model = read_model(model_bin)
    out = []
    for op in model.ops:
        if op.op_type in ("Conv2dInt", "Conv1dInt"):
            w = model.tensors[op.inputs[1]].shape
            y = model.tensors[op.outputs[0]].shape
            x = model.tensors[op.inputs[0]].shape
            group = int(op.attrs.get("group", 1) or 1)
            macs = int(np.prod(y)) * int(np.prod(w[1:]))
            depthwise = w[1] == 1 and group == x[1] == w[0]
            out.append(("depthwise conv" if depthwise else "conv (pointwise/standard)", macs))
        elif op.op_type == "LinearInt":
            x = model.tensors[op.inputs[0]].shape
            y = model.tensors[op.outputs[0]].shape
            out.append(("linear", int(np.prod(x)) * int(y[-1])))
        else:
            out.append((None, 0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=default_data(), help="shared data folder")
    parser.add_argument("--functions", type=int, default=0, metavar="N",
                        help="also print the N functions that executed most, per model")
    args = parser.parse_args()
    why = m4_emu.available()
    if why:
        print(f"bench_m4: skipped ({why})")
        return 0
    import thinker

    mlperf = os.path.join(args.data, "mlperf-tiny")
    with tempfile.TemporaryDirectory() as tmp:
        elf = m4_emu.build_runner(os.path.join(tmp, "m4"))
        bins = {name: pack_twin(os.path.join(mlperf, f), tmp, name.replace(" ", "_"))
                for name, f in MODELS.items()}

        print("Cortex-M4 (emulated, unicorn): executed instructions per MAC by op class; "
              f"floor {FLOOR} (SMLAD = 2 MACs)")
        rows = [["model", "op class", "MACs", "instructions", "instr/MAC", "goal", "meets goal"]]
        summary, profiles = [], []
        for name, path in bins.items():
            exe = thinker.load(path, backend="c")
            spec = exe.inputs[0]
            x = np.random.default_rng(0).integers(-128, 128, spec.shape).astype(spec.dtype)
            host = next(iter(exe.run({spec.name: x}).values()))
            by_block: dict[int, int] = {}
            stray: list[tuple[int, int, int]] = []
            with open(path, "rb") as f:
                data = f.read()
            out, per_op = m4_emu.run(elf, data, x.tobytes(), by_block=by_block,
                                     write_bounds=m4_emu.planned_writes(data), stray_writes=stray)
            if args.functions:
                top = m4_emu.functions(elf, by_block)[:args.functions]
                profiles.append(f"{name}: " + ", ".join(f"{fn} {n:,}" for fn, n in top))
            equal = out == np.ascontiguousarray(host).tobytes()
            totals: dict[str, list[int]] = {}
            other = 0
            for (cls, macs), n in zip(op_classes(path), per_op, strict=True):
                if cls is None:
                    other += n
                    continue
                t = totals.setdefault(cls, [0, 0])
                t[0] += macs
                t[1] += n
            for cls, (macs, n) in totals.items():
                ratio = n / macs
                rows.append([name, cls, f"{macs:,}", f"{n:,}", f"{ratio:.3f}", f"{GOALS[cls]}",
                             "yes" if ratio <= GOALS[cls] else "NO"])
            rows.append([name, "other ops", "-", f"{other:,}", "-", "-", "-"])
            summary.append(f"{name}: {sum(per_op):,} instructions in all; emulated output "
                           f"{'equals' if equal else 'DIFFERS FROM'} the host executor's; "
                           + (f"{len(stray)} bytes WRITTEN OUTSIDE the plan, first (op, kind, "
                              f"offset): {stray[0]}" if stray else
                              "every op wrote only its outputs and scratch"))
        print(table(rows))
        print("\n".join(summary))
        if profiles:
            print("instructions by function (most first):\n" + "\n".join(profiles))
        print()

        print("Code size, Cortex-M4 (-Os -mthumb), executor + libc/libgcc helpers it links")
        sizes = {"all ops": arm_text_size(os.path.join(tmp, "m4-all")),
                 "ResNet-8 ops": arm_text_size(os.path.join(tmp, "m4-r8"),
                                               f"OPS_FROM={bins['ResNet-8']}")}
        rows = [["build", "text (B)", "goal (B)", "meets goal"]]
        for build, size in sizes.items():
            rows.append([build, f"{size:,}" if size else "n/a", f"{SIZE_GOALS[build]:,}",
                         "yes" if size and size <= SIZE_GOALS[build] else "NO"])
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
