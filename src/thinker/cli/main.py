"""``thinker``: run, inspect and compare quantized models.

    thinker run MODEL IN... OUT... [--backend c] [--profile] [--dump DIR] [--crc]
    thinker validate REFERENCE.onnx CHECKED.bin
    thinker profile MODEL [-p DEVICE] [--csv F] [--speedscope F]
    thinker report MODEL.bin
    thinker prepare-input IMAGE.png|AUDIO.wav --model MODEL -o input.bin
    thinker convert QDQ.onnx -o OUT.onnx [--data X.npy] [--labels Y.npy]
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from thinker.cli.common import (
    check_folder,
    check_outputs,
    int_at_least,
    read_tensor_file,
    run_command,
    tensor_file_bytes,
    write_files,
)
from thinker.errors import ThinkerInputError, ThinkerOutputError, printable
from thinker.errors import name as shown
from thinker.outputs import same_file


def emit(text: str) -> None:
    """Print to stdout with every control character escaped but the line breaks (names from
    models may hold terminal escape codes)."""
    print("\n".join(printable(line) for line in text.split("\n")), flush=True)


def _check_dump_folder(folder: str, inputs: list[tuple[str, str]]) -> None:
    """--dump writes <index>_<name>.npy files: the folder must not hold an input so named."""
    check_folder("--dump", folder, inputs)
    for what, path in inputs:
        if same_file(os.path.dirname(os.path.abspath(path)), folder) \
                and re.fullmatch(r"\d{4}_.*\.npy", os.path.basename(path)):
            raise ThinkerOutputError(f"--dump {shown(folder)}: holds this command's {what} "
                                     f"{shown(path)}, which a dump file may replace; dump to "
                                     "another folder")


def cmd_run(args: argparse.Namespace) -> int:
    from thinker.runtime import DumpHook, ProfileHook, load

    model = load(args.model, backend=args.backend)
    if args.stream or args.chunk is not None:
        return _run_stream(args, model)
    n_in, n_out = len(model.inputs), len(model.outputs)
    if len(args.files) != n_in + n_out:
        names_in = ", ".join(shown(s.name) for s in model.inputs)
        names_out = ", ".join(shown(s.name) for s in model.outputs)
        raise ThinkerInputError(
            f"{shown(args.model)}: expects {n_in} input file(s) ({names_in}) then {n_out} "
            f"output file(s) ({names_out}); got {len(args.files)} path(s)"
        )
    inputs = [("model", args.model)] + [
        (f"input '{shown(s.name)}' file", path)
        for s, path in zip(model.inputs, args.files[:n_in], strict=True)]
    check_outputs([(f"output '{shown(s.name)}' file", path)
                   for s, path in zip(model.outputs, args.files[n_in:], strict=True)], inputs)
    if args.dump:
        _check_dump_folder(args.dump, inputs)
    feeds = {
        spec.name: read_tensor_file(path, spec.name, spec.dtype, spec.shape)
        for spec, path in zip(model.inputs, args.files[:n_in], strict=True)
    }
    hooks = []
    profile = ProfileHook(model) if args.profile else None
    dump = DumpHook(args.dump) if (args.dump or args.crc) else None
    hooks += [h for h in (profile, dump) if h is not None]
    outputs = model.run(feeds, hooks=hooks)
    write_files([(path, tensor_file_bytes(path, outputs[spec.name]))
                 for spec, path in zip(model.outputs, args.files[n_in:], strict=True)])
    if dump is not None and args.crc:
        emit("\n".join(dump.lines))
    if profile is not None:
        emit(profile.table())
    return 0


def _run_stream(args: argparse.Namespace, model) -> int:
    """``thinker run --stream``: the long input file fed chunk by chunk along the stream axis
    (states carried by the executor), the chunk outputs joined; per-chunk latency printed."""
    import time

    import numpy as np

    from thinker.resource.reader import read_model

    if not hasattr(model, "stream") or not getattr(model, "streams", None):
        raise ThinkerInputError(f"{shown(args.model)}: --stream needs a model.bin packed with "
                                "tpacker --isstream split_h|split_w")
    if args.profile or args.dump or args.crc:
        raise ThinkerInputError("--stream runs without --profile, --dump and --crc; run one "
                                "chunk without --stream to inspect it")
    packed = read_model(args.model)
    names = [t.name for t in packed.tensors]
    stream = model.stream()
    n_in, n_out = len(stream.inputs), len(stream.outputs)
    if len(args.files) != n_in + n_out:
        raise ThinkerInputError(
            f"{shown(args.model)}: --stream expects {n_in} input file(s) "
            f"({', '.join(shown(s.name) for s in stream.inputs)}) then {n_out} output file(s) "
            f"({', '.join(shown(s.name) for s in stream.outputs)}); got {len(args.files)} "
            "path(s)")
    inputs = [("model", args.model)] + [
        (f"input '{shown(s.name)}' file", p)
        for s, p in zip(stream.inputs, args.files[:n_in], strict=True)]
    check_outputs([(f"output '{shown(s.name)}' file", p)
                   for s, p in zip(stream.outputs, args.files[n_in:], strict=True)], inputs)
    dynamic = {names[t]: (axis, lo, hi, f) for t, axis, lo, hi, f in packed.dynamic_shapes}
    out_axes = {names[t]: axis for t, axis, *_ in packed.shape_rules}
    feeds, length = {}, None
    for spec, path in zip(stream.inputs, args.files[:n_in], strict=True):
        if spec.name not in dynamic:
            raise ThinkerInputError(f"{shown(args.model)}: input '{shown(spec.name)}' has no "
                                    "stream axis; repack with tpacker --isstream")
        axis, lo, hi, factor = dynamic[spec.name]
        frame = list(spec.shape)
        frame[axis] = 1
        value = _read_long(path, spec, frame, axis)
        if length not in (None, value.shape[axis]):
            raise ThinkerInputError(f"{shown(path)}: {value.shape[axis]} frames, the other "
                                    f"inputs {length}; give every input the same length")
        length = value.shape[axis]
        feeds[spec.name] = (value, axis)
    (axis, lo, hi, factor) = dynamic[stream.inputs[0].name]
    chunk = args.chunk if args.chunk is not None else hi
    if not (lo <= chunk <= hi and (chunk - lo) % factor == 0):
        raise ThinkerInputError(f"--chunk {chunk}: this model takes chunks of MIN:MAX:FACTOR = "
                                f"{lo}:{hi}:{factor} frames")
    pieces, seconds, start = [], [], 0
    while start < length:
        n = min(chunk, length - start)
        part = {k: np.take(v, range(start, start + n), axis=a) for k, (v, a) in feeds.items()}
        begin = time.perf_counter()
        pieces.append(stream.run(part))
        seconds.append(time.perf_counter() - begin)
        start += n
    outputs = {}
    for spec in stream.outputs:
        axis = out_axes.get(spec.name)
        if axis is None:  # a per-chunk summary: the last chunk's
            outputs[spec.name] = pieces[-1][spec.name]
        else:
            outputs[spec.name] = np.concatenate([p[spec.name] for p in pieces], axis=axis)
    write_files([(path, tensor_file_bytes(path, outputs[spec.name]))
                 for spec, path in zip(stream.outputs, args.files[n_in:], strict=True)])
    ms = sorted(1e3 * t for t in seconds)
    state = getattr(stream, "state_bytes", None)
    if state is None:
        state = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize
                    for s in stream.histories.values())
    emit(f"stream ({args.backend}): {length} frames in {len(pieces)} chunk(s) of up to {chunk}; "
         f"per chunk min {ms[0]:.3f} ms, median {ms[len(ms) // 2]:.3f} ms; state {state:,} B")
    return 0


def _read_long(path: str, spec, frame: list[int], axis: int):
    """A whole input sequence: .npy of any length on the stream axis, or raw .bin frames."""
    import numpy as np

    from thinker.cli.common import read_tensor_file

    if path.lower().endswith(".npy"):
        value = read_tensor_file(path, spec.name, spec.dtype, spec.shape)
        if value.dtype != spec.dtype or value.ndim != len(spec.shape) or any(
                value.shape[d] != spec.shape[d] for d in range(value.ndim) if d != axis):
            raise ThinkerInputError(f"{shown(path)}: {value.dtype}{list(value.shape)}, but "
                                    f"input '{shown(spec.name)}' takes {spec.dtype}{frame} "
                                    f"frames (any count on axis {axis})")
        return value
    if not os.path.isfile(path):
        raise ThinkerInputError(f"{shown(path)}: no such input file (for input "
                                f"'{shown(spec.name)}')")
    per = int(np.prod(frame)) * np.dtype(spec.dtype).itemsize
    size = os.path.getsize(path)
    if size == 0 or size % per:
        raise ThinkerInputError(f"{shown(path)}: {size:,} bytes is not a whole number of "
                                f"{spec.dtype}{frame} frames ({per:,} B each)")
    shape = list(frame)
    shape[axis] = size // per
    raw = np.fromfile(path, dtype=np.dtype(spec.dtype).newbyteorder("<")).astype(spec.dtype)
    return raw.reshape(shape)  # the whole sequence in C order


def _load_inputs(model, paths: list[str] | None) -> dict | None:
    if not paths:
        return None
    if len(paths) != len(model.inputs):
        raise ThinkerInputError(f"--inputs: the model has {len(model.inputs)} input(s) "
                                f"({', '.join(shown(s.name) for s in model.inputs)}); got "
                                f"{len(paths)}")
    return {s.name: read_tensor_file(p, s.name, s.dtype, s.shape)
            for s, p in zip(model.inputs, paths, strict=True)}


def cmd_validate(args: argparse.Namespace) -> int:
    from thinker.runtime import load
    from thinker.tools.validate import compare_runs, describe, random_inputs, reference_feeds

    reference = load(args.reference)
    checked = load(args.checked, backend=args.backend)
    chk_feeds = _load_inputs(checked, args.inputs)  # files are in the checked model's terms
    if chk_feeds is None:
        ref_feeds, chk_feeds = random_inputs(reference, checked, args.batch, args.seed)
    else:
        ref_feeds = reference_feeds(reference, checked, chk_feeds)
    result = compare_runs(reference, checked, ref_feeds, chk_feeds)
    emit(describe(result, "reference", "checked"))
    ok = result.identical
    if args.linger:
        from thinker.tools.validate import compare_values, linger_values, run_all

        captured = linger_values(args.linger, args.checkpoint, ref_feeds)
        versus = compare_values(captured, run_all(checked, chk_feeds), checked)
        emit(describe(versus, "linger", "checked"))
        ok = ok and versus.identical
    return 0 if ok else 1


def cmd_profile(args: argparse.Namespace) -> int:
    from thinker.devices import load_profile
    from thinker.tools import profile as prof
    from thinker.tools.inspect import platform_name

    check_outputs([(option, path) for option, path in (("--csv", args.csv),
                                                       ("--speedscope", args.speedscope)) if path],
                  [("model", args.model), ("--device-file", args.device_file)])
    memory_of = None
    if args.model.lower().endswith(".onnx"):
        from thinker.graph import load_onnx

        graph = load_onnx(args.model)
        device = load_profile(args.device_file or args.platform or "venus")
    else:
        from thinker.resource import read_model

        packed = read_model(args.model)
        graph = packed.to_graph()
        memory_of = prof.memory_kinds(packed)
        device = load_profile(args.device_file or args.platform
                              or platform_name(packed.platform_id))
    rows = prof.estimate(graph, device, memory_of)
    emit(prof.table(rows, device, args.top))
    files = []
    if args.csv:
        files.append((args.csv, prof.to_csv(rows, device).encode()))
    if args.speedscope:
        name = graph.name or args.model
        files.append((args.speedscope, prof.to_speedscope(rows, device, name).encode()))
    write_files(files)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from thinker.errors import ThinkerFormatError
    from thinker.tools.inspect import describe_model

    try:
        with open(args.model, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ThinkerFormatError(f"{shown(args.model)}: cannot read ({exc.strerror})") from None
    emit(describe_model(data, args.model))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from thinker.tools.convert import convert

    inputs = [("model", args.model)] + [(what, p) for what, p in (("--data file", args.data),
                                                                  ("--labels file", args.labels))
                                        if p]
    check_outputs([("output model", args.output)], inputs)
    result = convert(args.model, data=args.data, samples=args.samples, seed=args.seed,
                     labels=args.labels, measure_change=not args.no_measure)
    write_files([(args.output, result.model.SerializeToString())])
    emit(result.report())
    emit(f"wrote {shown(args.output)} (thinker dialect): tpacker -g {shown(args.output)}")
    return 0


def _subcommand(sub, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand that also accepts --debug after its name."""
    parser = sub.add_parser(name, help=help, description=description)
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thinker", description="Run and inspect quantized models (thinker dialect ONNX)."
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _subcommand(
        sub, "run", cmd_run, "run a model on input files and write its outputs", (
            "Run MODEL on input files and write its outputs. Give one path per model input, "
            "then one per model output, in the model's order. Raw .bin files hold exactly one "
            "sample (dtype and shape from the model, little-endian, C order); .npy files may "
            "hold a batch on axis 0."))
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
    run.add_argument("--stream", action="store_true",
                     help="a model packed with --isstream: feed the long input file chunk by "
                          "chunk (states carried), join the outputs, print per-chunk latency "
                          "(min/median) and state bytes; inputs are .npy or raw .bin (C order) "
                          "of any length on the stream axis")
    run.add_argument("--chunk", type=int_at_least(1), metavar="FRAMES",
                     help="frames per chunk with --stream (default: the model's largest)")

    val = _subcommand(
        sub, "validate", cmd_validate,
        "compare two executions tensor by tensor (e.g. ONNX vs model.bin)", (
            "Run the same inputs through REFERENCE (usually the exported .onnx) and CHECKED "
            "(usually the packed model.bin), compare every tensor both sides name, and report "
            "the first mismatching tensor in execution order (op, number of differing "
            "elements, first indices and values). Exit 0 when everything is identical, 1 on "
            "any mismatch. Inputs are random within range unless --inputs is given."))
    val.add_argument("reference", help="reference model (.onnx or model.bin)")
    val.add_argument("checked", help="model to check (model.bin or .onnx)")
    val.add_argument("--backend", choices=("numpy", "c"), default="numpy",
                     help="executor for the checked model")
    val.add_argument("--inputs", nargs="+", metavar="FILE",
                     help="input files for the checked model (.bin one sample, or .npy)")
    val.add_argument("--linger", metavar="MODULE:FUNCTION",
                     help="also compare with linger's eval forward: a function returning the "
                          "quantized model (given --checkpoint as its argument)")
    val.add_argument("--checkpoint", metavar="PATH", help="passed to the --linger function")
    val.add_argument("--batch", type=int_at_least(1), default=4,
                     help="random samples (default 4); large batches run in chunks")
    val.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")

    pro = _subcommand(
        sub, "profile", cmd_profile, "estimate per-op cycles and time on a device", (
            "Per op: MACs, parameter bytes, activation bytes, estimated cycles and "
            "milliseconds from the device profile's cost model ([cost] in its TOML), the "
            "totals and the most expensive ops. A model.bin uses its own memory placement "
            "and platform."))
    pro.add_argument("model", help="model.bin or .onnx")
    pro.add_argument("-p", "--platform", help="device profile (default: the model.bin's, or "
                     "venus for .onnx)")
    pro.add_argument("--device-file", dest="device_file", metavar="PATH",
                     help="your own device profile (TOML)")
    pro.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    pro.add_argument("--speedscope", metavar="FILE",
                     help="also write a speedscope JSON (flame view at speedscope.app)")
    pro.add_argument("--top", type=int_at_least(0), default=5,
                     help="how many expensive ops to list")

    con = _subcommand(
        sub, "convert", cmd_convert,
        "rewrite a standard ONNX quantized model (QDQ / QOperator) for a power-of-two chip", (
            "Read an ONNX model quantized by another tool (onnxruntime quantize_static, "
            "torch.ao: QuantizeLinear/DequantizeLinear, QLinearConv, QGemm, ...) and write it "
            "in the thinker dialect: power-of-two scales holding each tensor's range, zero "
            "points folded, weights requantized per tensor (a model with power-of-two scales "
            "and zero points 0 is imported exactly). Prints the output change measured "
            "against onnxruntime on --data (or random normal data)."))
    con.add_argument("model", help="the quantized ONNX model (QDQ or QOperator)")
    con.add_argument("-o", "--output", required=True, help="the thinker-dialect ONNX to write")
    con.add_argument("--data", metavar="NPY", help="float inputs, a batch on axis 0 (.npy)")
    con.add_argument("--labels", metavar="NPY", help="class labels of --data: print accuracy")
    con.add_argument("--samples", type=int_at_least(1), default=32,
                     help="random samples when no --data (default 32)")
    con.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    con.add_argument("--no-measure", dest="no_measure", action="store_true",
                     help="do not run onnxruntime")

    from thinker.cli.prepare import add_parser as add_prepare_input

    add_prepare_input(sub, _subcommand)

    rep = _subcommand(
        sub, "report", cmd_report, "what is inside a model.bin (without running it)",
        "Print a model.bin's format version, CRC status, platform, inputs and outputs, ops, "
        "and memory per kind.")
    rep.add_argument("model", help="model.bin")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
