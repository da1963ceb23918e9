"""``tpacker``: quantized ONNX -> checked, memory-planned model.bin (flags as in the original
LISTENAI tpacker, so its users feel at home)."""

from __future__ import annotations

import argparse
import os
import sys

from thinker.cli import original
from thinker.cli.common import (
    check_folder,
    check_outputs,
    int_at_least,
    run_command,
    write_files,
)
from thinker.devices import list_profiles
from thinker.errors import ThinkerInputError, ThinkerUsageError, printable
from thinker.errors import name as shown
from thinker.passes import DEVICE_PASSES, GRAPH_PASSES

COLOURS = {"ok": "32", "skipped": "33", "problem": "31"}


def _use_colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def stage_line(name: str, status: str, seconds: float, detail: str) -> None:
    tag = f"[{status:^7s}]"
    if _use_colour():
        tag = f"\033[{COLOURS[status]}m{tag}\033[0m"
    print(f"{tag} {name:22s} {seconds * 1e3:8.1f} ms  {printable(detail)}", flush=True)


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
    p.add_argument("-r", "--ramsize", type=int_at_least(0), metavar="BYTES",
                   help="share-memory (SRAM) bytes available (default: the device's; 0 means "
                        "none: every activation must then go to PSRAM)")
    p.add_argument("--psramsize", type=int_at_least(0), metavar="BYTES",
                   help="PSRAM bytes available (default: the device's; 0 means none)")
    p.add_argument("-m", "--memory", action="append", default=None, metavar="NAME:KIND",
                   help="place tensor NAME in KIND = share-memory | psram | flash (repeatable, "
                        "or comma-separated); NAME may be inputs[i], outputs[i] or params "
                        "(every constant); share-mem = share-memory")
    for k in (1, 2, 3):
        p.add_argument(f"--threshold{k}", type=int_at_least(0), metavar="BYTES",
                       help="accepted for compatibility with the original tpacker; no effect")
    p.add_argument("--threshold4", type=int_at_least(0), metavar="BYTES",
                   help="activations larger than this go to PSRAM (default: the device's "
                        "share-memory size)")
    p.add_argument("--patch", default=None, metavar="auto|off|min|RxC[@TENSOR]",
                   help="patch-based execution of the first CNN stage (tile by tile, halo "
                        "recomputed; same integers): auto (default: only when the model does "
                        "not fit the share-memory, the fewest extra MACs that fit), min (the "
                        "smallest peak), off, or an R x C tile grid (ending the chain at TENSOR)")
    p.add_argument("--scratch", default=None, choices=["auto", "fast", "fit"],
                   help="kernel scratch: fast (every conv/linear on its fast path, its scratch "
                        "planned), fit (no scratch where it would raise the memory peak: those "
                        "ops run their scratch-free path, same integers, slower), auto (fast "
                        "unless that does not fit the device; default); docs/memory.md")
    p.add_argument("--inputs", nargs="+", metavar="NAME", help="cut: these tensors become the "
                   "graph inputs (space- or comma-separated)")
    p.add_argument("--outputs", nargs="+", metavar="NAME", help="cut: these tensors become the "
                   "graph outputs (space- or comma-separated)")
    p.add_argument("-c", "--dynamic_shape", action="append", default=None,
                   metavar="NAME=MIN:MAX:FACTOR",
                   help="a dynamic axis: NAME is a graph input (its symbolic axis, else its "
                        "stream axis, else its last axis; NAME[AXIS] names one) or an ONNX "
                        "symbolic dimension; memory is planned at MAX and the executors take "
                        "any MIN + k*FACTOR <= MAX per call; comma-separated lists, NAME=MAX "
                        "and NAME=MIN:MAX as the original tpacker")
    p.add_argument("-s", "--strategy", action="append", default=None, metavar="METHOD",
                   type=original.strategy_passes,
                   help="the original tpacker's fusion methods to skip: "
                        f"{', '.join(original.STRATEGIES)} (comma-separated); "
                        "Remove_QuantDequant = --keep_quant")
    p.add_argument("--isstream", default=None, metavar="MODE", type=original.stream_mode,
                   help="streaming form: split_w streams the last axis, split_h the one before "
                        "it; causal convs' past frames and GRU/LSTM states become states the "
                        "executors carry between calls (docs/streaming.md)")
    p.add_argument("--dma_prefetch", default=None, type=original.parse_boolean,
                   metavar="BOOL", help="accepted for compatibility with the original; no "
                   "effect (a note says so)")
    p.add_argument("--keep_quant", action="store_true", default=None,
                   help="keep Quant/Dequant at the graph edges (float I/O)")
    p.add_argument("--skip", action="append", default=None, metavar="PASS",
                   help=f"skip a pass (repeatable): {passes}")
    p.add_argument("-d", "--dump", nargs="?", const=True, default=None,
                   type=original.parse_boolean, metavar="BOOL",
                   help="write the ONNX graph after every stage to workspace/<model>/ "
                        "(-d, or -d True / -d False as the original tpacker)")
    p.add_argument("--workspace", default=None, help="report folder root (default workspace)")
    p.add_argument("--config_file", metavar="JSON", help="read options from a JSON file "
                   "(command-line flags win)")
    p.add_argument("--export_config", metavar="JSON",
                   help="write the effective options to a JSON file")
    p.add_argument("--config-format", dest="config_format", default="thinker",
                   choices=["thinker", "original"],
                   help="--export_config layout: thinker (flat, our option names) or original "
                        "(the original tpacker's nested sections); --config_file reads both")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    return p


def options_from_args(args: argparse.Namespace):
    from thinker.packer import PackOptions

    options = PackOptions()
    notes: list[str] = []
    if args.config_file:
        where = shown(args.config_file)
        if not os.path.isfile(args.config_file):
            raise ThinkerInputError(f"{where}: no such config file")
        try:
            with open(args.config_file, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ThinkerInputError(f"{where}: cannot read ({printable(exc, 200)})") from None
        options = PackOptions.from_json(_flat_config(text, where, notes), where)
    if args.dma_prefetch is not None:
        notes.append(original.dma_prefetch_note(args.dma_prefetch))
    if args.strategy is not None:  # -s METHOD: the original's fusion methods to skip
        args.skip = (args.skip or []) + [p for passes in args.strategy for p in passes]
    for key in ("graph_path", "output_path", "platform", "device_file", "ramsize", "psramsize",
                "memory", "threshold1", "threshold2", "threshold3", "threshold4", "inputs",
                "outputs", "dynamic_shape", "isstream", "keep_quant", "skip", "dump", "workspace",
                "export_config", "scratch"):
        value = getattr(args, key)
        if value is not None:
            setattr(options, key, value)
    if args.patch is not None:
        options.patch = args.patch
    options.check(shown(args.config_file) if args.config_file else "tpacker options")
    # the original's spellings, from the command line or either config layout
    options.inputs = original.split_commas(options.inputs)
    options.outputs = original.split_commas(options.outputs)
    options.memory = original.split_commas(options.memory)
    options.dynamic_shape = original.canonical_dynamic_shapes(options.dynamic_shape)
    options.skip = list(dict.fromkeys(options.skip))
    options.platform = original.canonical_platform(options.platform, list_profiles())
    args.compat_notes = notes
    if not options.graph_path:
        raise ThinkerUsageError("no model given: use -g MODEL.onnx (or graph_path in "
                                "--config_file)")
    if os.path.isdir(options.graph_path):
        raise ThinkerInputError(f"{shown(options.graph_path)}: is a folder, not an ONNX model")
    if not os.path.isfile(options.graph_path):
        raise ThinkerInputError(f"{shown(options.graph_path)}: no such model file")
    return options


def _flat_config(text: str, where: str, notes: list[str]) -> str:
    """The config file's text in our flat layout (the original's nested one converted)."""
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text  # PackOptions.from_json reports it
    if not original.is_original_config(data):
        return text
    flat, more = original.original_to_options(data, where)
    notes += more
    return json.dumps(flat)


def check_pack_outputs(options, config_file: str | None) -> None:
    """Every file tpacker will write, checked before any work: model.bin, the exported config,
    the report folder and its files (and -d dumps); none may be an input."""
    from thinker.packer import report_files, report_folder

    inputs = [("model (-g)", options.graph_path), ("--config_file", config_file),
              ("--device-file", options.device_file)]
    inputs = [(what, path) for what, path in inputs if path]
    check_folder("--workspace", options.workspace, inputs)
    check_folder("report folder", report_folder(options), inputs)
    outputs = [("-o", options.output_path)]
    if options.export_config:
        outputs.append(("--export_config", options.export_config))
    outputs += [("report file", path) for path in report_files(options)]
    check_outputs(outputs, inputs)


def cmd_pack(args: argparse.Namespace) -> int:
    from thinker.packer import Packer, summary

    options = options_from_args(args)
    check_pack_outputs(options, args.config_file)
    if options.export_config and args.config_format == "original":  # expressible? (before work)
        from thinker.devices import load_profile

        original.options_to_original(options, load_profile(options.device_file or
                                                            options.platform))
    result = Packer(options, stage_line).run()
    files = [(options.output_path, result.model_bin)]
    if options.export_config:
        if args.config_format == "original":
            import json

            text = json.dumps(original.options_to_original(options, result.device), indent=4)
        else:
            text = options.to_json()
        files.append((options.export_config, text.encode()))
    write_files(files)  # both or neither
    stage_line("write", "ok", 0.0, f"{options.output_path} ({len(result.model_bin):,} B)")
    if options.export_config:
        stage_line("export config", "ok", 0.0, options.export_config)
    for notice in getattr(args, "compat_notes", []) + result.notices:
        print(f"note: {printable(notice)}")
    print(summary(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(cmd_pack, args)


if __name__ == "__main__":
    sys.exit(main())
