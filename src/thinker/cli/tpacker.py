"""``tpacker``: quantized ONNX -> checked, memory-planned model.bin (flags as in the original
LISTENAI tpacker, so its users feel at home)."""

from __future__ import annotations

import argparse
import os
import sys

from thinker.cli.common import atomic_write, run_command
from thinker.devices import list_profiles
from thinker.errors import ThinkerInputError
from thinker.passes import DEVICE_PASSES, GRAPH_PASSES

COLOURS = {"ok": "32", "skipped": "33", "problem": "31"}


def _use_colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def stage_line(name: str, status: str, seconds: float, detail: str) -> None:
    tag = f"[{status:^7s}]"
    if _use_colour():
        tag = f"\033[{COLOURS[status]}m{tag}\033[0m"
    print(f"{tag} {name:22s} {seconds * 1e3:8.1f} ms  {detail}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    passes = ", ".join(p.name for p in GRAPH_PASSES + DEVICE_PASSES)
    p = argparse.ArgumentParser(
        prog="tpacker",
        description="Check a quantized ONNX model against a device, plan its memory and pack "
                    "it into model.bin. Nothing is written when the model does not fit.")
    p.add_argument("-g", "--graph_path", help="quantized ONNX model (thinker or linger dialect)")
    p.add_argument("-o", "--output_path", default=None, help="output file (default model.bin)")
    p.add_argument("-p", "--platform", default=None,
                   help=f"device profile: {', '.join(list_profiles())} (default venus)")
    p.add_argument("--device-file", dest="device_file", metavar="PATH",
                   help="your own device profile (TOML), instead of --platform")
    p.add_argument("-r", "--ramsize", type=int, help="share-memory (SRAM) bytes available "
                   "(default: the device's)")
    p.add_argument("--psramsize", type=int, help="PSRAM bytes available (default: the device's)")
    p.add_argument("-m", "--memory", action="append", default=None, metavar="NAME:KIND",
                   help="place tensor NAME in KIND = share-memory | psram | flash (repeatable)")
    for k in (1, 2, 3):
        p.add_argument(f"--threshold{k}", type=int, metavar="BYTES",
                       help="accepted for compatibility with the original tpacker; no effect")
    p.add_argument("--threshold4", type=int, metavar="BYTES",
                   help="activations larger than this go to PSRAM (default: the device's "
                        "share-memory size)")
    p.add_argument("--inputs", nargs="+", metavar="NAME", help="cut: these tensors become the "
                   "graph inputs")
    p.add_argument("--outputs", nargs="+", metavar="NAME", help="cut: these tensors become the "
                   "graph outputs")
    p.add_argument("--dynamic_shape", action="append", default=None,
                   metavar="NAME=MIN:MAX:FACTOR",
                   help="record a dynamic batch range for input NAME in model.bin "
                        "(the executors run the static shape for now)")
    p.add_argument("--keep_quant", action="store_true", default=None,
                   help="keep Quant/Dequant at the graph edges (float I/O)")
    p.add_argument("--skip", action="append", default=None, metavar="PASS",
                   help=f"skip a pass (repeatable): {passes}")
    p.add_argument("-d", "--dump", action="store_true", default=None,
                   help="write the ONNX graph after every stage to workspace/<model>/")
    p.add_argument("--workspace", default=None, help="report folder root (default workspace)")
    p.add_argument("--config_file", metavar="JSON", help="read options from a JSON file "
                   "(command-line flags win)")
    p.add_argument("--export_config", metavar="JSON",
                   help="write the effective options to a JSON file")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    return p


def options_from_args(args: argparse.Namespace):
    from thinker.packer import PackOptions

    options = PackOptions()
    if args.config_file:
        if not os.path.isfile(args.config_file):
            raise ThinkerInputError(f"{args.config_file}: no such config file")
        with open(args.config_file) as f:
            options = PackOptions.from_json(f.read(), args.config_file)
    for key in ("graph_path", "output_path", "platform", "device_file", "ramsize", "psramsize",
                "memory", "threshold1", "threshold2", "threshold3", "threshold4", "inputs",
                "outputs", "dynamic_shape", "keep_quant", "skip", "dump", "workspace",
                "export_config"):
        value = getattr(args, key)
        if value is not None:
            setattr(options, key, value)
    if not options.graph_path:
        raise ThinkerInputError("no model given: use -g MODEL.onnx (or graph_path in "
                                "--config_file)")
    if not os.path.isfile(options.graph_path):
        raise ThinkerInputError(f"{options.graph_path}: no such model file")
    return options


def cmd_pack(args: argparse.Namespace) -> int:
    from thinker.packer import Packer, summary

    options = options_from_args(args)
    result = Packer(options, stage_line).run()
    atomic_write(options.output_path, result.model_bin)
    stage_line("write", "ok", 0.0, f"{options.output_path} ({len(result.model_bin):,} B)")
    if options.export_config:
        atomic_write(options.export_config, options.to_json().encode())
        stage_line("export config", "ok", 0.0, options.export_config)
    for notice in result.notices:
        print(f"note: {notice}")
    print(summary(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(cmd_pack, args)


if __name__ == "__main__":
    sys.exit(main())
