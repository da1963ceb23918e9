"""``thinker``: run, inspect and compare quantized models.

    thinker run MODEL IN... OUT... [--profile] [--dump DIR] [--crc]
"""

from __future__ import annotations

import argparse
import sys

from thinker.cli.common import (
    atomic_write,
    read_tensor_file,
    run_command,
    tensor_file_bytes,
)
from thinker.errors import ThinkerInputError


def cmd_run(args: argparse.Namespace) -> int:
    from thinker.runtime import DumpHook, ProfileHook, load

    model = load(args.model, backend=args.backend)
    n_in, n_out = len(model.inputs), len(model.outputs)
    if len(args.files) != n_in + n_out:
        names_in = ", ".join(s.name for s in model.inputs)
        names_out = ", ".join(s.name for s in model.outputs)
        raise ThinkerInputError(
            f"{args.model}: expects {n_in} input file(s) ({names_in}) then {n_out} output "
            f"file(s) ({names_out}); got {len(args.files)} path(s)"
        )
    feeds = {
        spec.name: read_tensor_file(path, spec.name, spec.dtype, spec.shape)
        for spec, path in zip(model.inputs, args.files[:n_in], strict=True)
    }
    hooks = []
    profile = ProfileHook(model) if args.profile else None
    dump = DumpHook(args.dump) if (args.dump or args.crc) else None
    hooks += [h for h in (profile, dump) if h is not None]
    outputs = model.run(feeds, hooks=hooks)
    for spec, path in zip(model.outputs, args.files[n_in:], strict=True):
        atomic_write(path, tensor_file_bytes(path, outputs[spec.name]))
    if dump is not None and args.crc:
        print("\n".join(dump.lines))
    if profile is not None:
        print(profile.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thinker", description="Run and inspect quantized models (thinker dialect ONNX)."
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a model on input files and write its outputs",
        description=(
            "Run MODEL on input files and write its outputs. Give one path per model input, "
            "then one per model output, in the model's order. Raw .bin files hold exactly one "
            "sample (dtype and shape from the model, little-endian, C order); .npy files may "
            "hold a batch on axis 0."
        ),
    )
    run.add_argument("model", help="model file (model.bin from tpacker, or .onnx)")
    run.add_argument("files", nargs="+", metavar="FILE", help="input files, then output files")
    run.add_argument("--backend", choices=("numpy", "c"), default="numpy",
                     help="executor: numpy (default) or c (the C executor; model.bin only)")
    run.add_argument("--profile", action="store_true",
                     help="print a per-op table: op, name, output shape, MACs, time")
    run.add_argument("--dump", metavar="DIR",
                     help="write every intermediate tensor to DIR/<index>_<name>.npy")
    run.add_argument("--crc", action="store_true",
                     help="print a CRC-32 line per tensor in execution order: "
                          "'<index> <crc32> <dtype> <dims> <name>'")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
