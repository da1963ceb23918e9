"""The original LISTENAI tpacker's spellings, read with the original's meaning (docs/cli.md,
"Coming from the original tpacker").

* ``-d True`` / ``-d False`` (a boolean value; ``-d`` alone still means true);
* ``-c NAME=MIN:MAX:FACTOR`` = ``--dynamic_shape``, comma-separated lists, ``NAME=MAX`` and
  ``NAME=MIN:MAX`` (factor 1, min 1) as the original's ``parse_shape_config``;
* ``-s Remove_QuantDequant`` (and ``CR_fusion``, ``Remove_Slice``, ``Transpose_to_Reshape``):
  the original's fusion methods to *not* apply, i.e. our passes to skip;
* ``--inputs a,b`` / ``--outputs a,b`` comma-separated;
* ``-p venusa`` (any case);
* ``-m inputs[0]:psram`` / ``params:flash`` / ``share-mem`` (comma-separated; ``memory/
  overrides.py`` resolves the names);
* ``--dma_prefetch True|False``: accepted, a note says what thinker does;
* ``--isstream split_h|split_w``: the streaming form (thinker.passes.stream);
* the original's nested JSON ``--config_file`` ({"Basic Configuration": {"graph_path":
  {"value": ..., "comment": ...}}, ...}) read, and written by ``--config-format original``.
"""

from __future__ import annotations

import argparse
from typing import Any

from thinker.errors import ThinkerInputError
from thinker.errors import name as shown

# original fusion method -> our pass doing the same
STRATEGIES = {
    "Remove_QuantDequant": "remove_edge_quant",
    "CR_fusion": "fuse_activations",
    "Remove_Slice": "drop_identity",
    "Transpose_to_Reshape": "canonical_reshapes",
}
PASS_STRATEGIES = {v: k for k, v in STRATEGIES.items()}

# the original's argparse defaults (tools/tpacker/argument_parser.py)
ORIGINAL_DEFAULTS = {"ramsize": 655360, "psramsize": 8388608, "threshold1": 655360,
                     "threshold2": 655360, "threshold3": 655360, "threshold4": 655360}

SECTIONS = {
    "Basic Configuration": ("graph_path", "output_path", "dump"),
    "Model Configuration": ("inputs", "outputs", "strategy", "dynamic_shape", "isstream"),
    "Device Configuration": ("platform", "ramsize", "psramsize"),
    "Memory Preallocate Configuration": ("dma_prefetch", "memory", "threshold1", "threshold2",
                                         "threshold3", "threshold4"),
}
COMMENTS = {  # the original's help texts, written next to each value as it does
    "graph_path": "Path of ONNX graph file",
    "output_path": "Output file path",
    "dump": "Switch for print intermediate information",
    "inputs": "Comma-separated list of input node names",
    "outputs": "Comma-separated list of output node names",
    "strategy": "ignore methods of op fusion",
    "dynamic_shape": "Dynamic shape configuration (e.g. name1=min:max:factor)",
    "isstream": "Enable stream processing",
    "platform": "Target platform",
    "ramsize": "Maximum valid Share-Memory size",
    "psramsize": "Maximum valid PSRAM size",
    "dma_prefetch": "DMA prefetching function switch",
    "memory": "Specify the storage location of node data as either PSRAM or shared memory."
              "(e.g. inputs[0]:share-memory)",
    "threshold1": "Set the maximum weight size for convolutional operators.",
    "threshold2": "Set the maximum output size for convolutional operators.",
    "threshold3": "Set the maximum output size for linearint operators.",
    "threshold4": "Set the maximum size for nodes in shared memory.",
}


# ---- argparse value types ------------------------------------------------------------------


def parse_boolean(value) -> bool:
    """The original's ``parse_boolean``: yes/true/t/y/1 and no/false/f/n/0, any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "t", "y", "1"):
        return True
    if text in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"'{shown(str(value))}' is not a boolean; use True or False")


parse_boolean.__name__ = "boolean"


def strategy_passes(value: str) -> list[str]:
    """``-s`` value(s) (comma-separated original method names, any case) -> passes to skip."""
    passes = []
    for item in (v.strip() for v in str(value).split(",")):
        if not item:
            continue
        match = next((k for k in STRATEGIES if k.lower() == item.lower()), None)
        if match is None:
            raise argparse.ArgumentTypeError(
                f"'{shown(item)}' is not one of the original's fusion methods "
                f"({', '.join(STRATEGIES)}); to skip any of our passes use --skip PASS")
        passes.append(STRATEGIES[match])
    return passes


strategy_passes.__name__ = "fusion method"


# ---- value normalisation (command line and config files alike) -----------------------------


def split_commas(items: list[str] | None) -> list[str] | None:
    """``--inputs a,b c`` -> ['a', 'b', 'c'] (the original takes one comma-separated list)."""
    if items is None:
        return None
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def canonical_dynamic_shapes(items: list[str]) -> list[str]:
    """``a=1:10:2,b=8`` -> ['a=1:10:2', 'b=1:8:1']: the original's ``parse_shape_config``
    (one number is the maximum, two are min:max; the factor defaults to 1)."""
    result = []
    for item in items:
        for part in (p.strip() for p in str(item).split(",")):
            if not part:
                continue
            name, sep, spec = part.partition("=")
            numbers = spec.split(":")
            if sep and all(n.strip().isdigit() for n in numbers):
                if len(numbers) == 1:
                    numbers = ["1", numbers[0], "1"]
                elif len(numbers) == 2:
                    numbers = [*numbers, "1"]
            result.append(f"{name}={':'.join(n.strip() for n in numbers)}" if sep else part)
    return result


def canonical_platform(name: str, profiles: list[str]) -> str:
    """``venusa`` / ``VENUSA`` -> ``venusA``: the original accepts any case."""
    if name in profiles:
        return name
    for profile in profiles:
        if profile.lower() == str(name).lower():
            return profile
    return name


def stream_mode(value) -> str | None:
    """``--isstream split_h|split_w`` (None, "None", "" and False: not streaming)."""
    if value in (None, "", "None", "none", False):
        return None
    if value not in ("split_h", "split_w"):
        raise argparse.ArgumentTypeError(f"{shown(str(value))}: use split_h or split_w")
    return str(value)


stream_mode.__name__ = "stream mode"


def dma_prefetch_note(value: bool) -> str:
    state = "True" if value else "False"
    return (f"--dma_prefetch {state} is accepted for compatibility and changes nothing: "
            "thinker's plan reserves no prefetch buffers (weights are read in place; "
            "`thinker profile` models their transfer overlapping the previous op)")


# ---- the original's nested JSON config ------------------------------------------------------


def is_original_config(data: Any) -> bool:
    """A JSON object whose values are all objects (sections) is the original's layout."""
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict)
                                                         for v in data.values())


def original_to_options(data: dict, where: str) -> tuple[dict[str, Any], list[str]]:
    """The original's nested config -> our flat PackOptions keys, and notes to print."""
    known = {k for keys in SECTIONS.values() for k in keys}
    flat: dict[str, Any] = {}
    for section, entries in data.items():
        for key, entry in entries.items():
            if key not in known:
                raise ThinkerInputError(
                    f"{where}: [{shown(section)}] unknown option '{shown(key)}'; the original "
                    f"tpacker's options are {', '.join(sorted(known))}")
            flat[key] = entry["value"] if isinstance(entry, dict) and "value" in entry \
                else entry
    options: dict[str, Any] = {}
    notes: list[str] = []
    for key in ("graph_path", "output_path", "platform"):
        if flat.get(key) not in (None, ""):
            options[key] = flat[key]
    if "dump" in flat:
        options["dump"] = _boolean(flat["dump"], "dump", where)
    for key in ("inputs", "outputs"):
        value = flat.get(key)
        if value not in (None, ""):
            options[key] = split_commas(value if isinstance(value, list) else [value])
    if flat.get("dynamic_shape") not in (None, ""):
        value = flat["dynamic_shape"]
        options["dynamic_shape"] = canonical_dynamic_shapes(
            value if isinstance(value, list) else [value])
    if flat.get("memory") not in (None, ""):
        value = flat["memory"]
        options["memory"] = split_commas(value if isinstance(value, list) else [value])
    if flat.get("strategy") not in (None, ""):
        value = flat["strategy"]
        try:
            options["skip"] = [p for v in (value if isinstance(value, list) else [value])
                               for p in strategy_passes(v)]
        except argparse.ArgumentTypeError as exc:
            raise ThinkerInputError(f"{where}: strategy: {exc}") from None
    try:
        mode = stream_mode(flat.get("isstream"))
    except argparse.ArgumentTypeError as exc:
        raise ThinkerInputError(f"{where}: isstream: {exc}") from None
    if mode:
        options["isstream"] = mode
    if flat.get("dma_prefetch") is not None:
        notes.append(dma_prefetch_note(_boolean(flat["dma_prefetch"], "dma_prefetch", where)))
    for key in ("ramsize", "psramsize", "threshold1", "threshold2", "threshold3", "threshold4"):
        if flat.get(key) is not None:
            options[key] = flat[key]
    return options, notes


def _boolean(value, key: str, where: str) -> bool:
    try:
        return parse_boolean(value)
    except argparse.ArgumentTypeError as exc:
        raise ThinkerInputError(f"{where}: {key}: {exc}") from None


def options_to_original(options, device) -> dict[str, Any]:
    """PackOptions (and its device profile) -> the original's nested config, with the
    effective values it would have used. Options the original cannot express are refused."""
    inexpressible = []
    if options.device_file:
        inexpressible.append("--device-file (a custom device profile)")
    skipped = [p for p in options.skip if p not in PASS_STRATEGIES]
    if skipped:
        inexpressible.append(f"--skip {', '.join(skipped)}")
    if options.workspace != "workspace":
        inexpressible.append("--workspace")
    if options.planners:
        inexpressible.append("planners")
    if inexpressible:
        raise ThinkerInputError(
            f"--config-format original: {'; '.join(inexpressible)} cannot be written in the "
            "original tpacker's config; use --config-format thinker")
    strategies = [PASS_STRATEGIES[p] for p in options.skip]
    if options.keep_quant and "Remove_QuantDequant" not in strategies:
        strategies.append("Remove_QuantDequant")
    values = {
        "graph_path": options.graph_path,
        "output_path": options.output_path,
        "dump": bool(options.dump),
        "inputs": ",".join(options.inputs or []),
        "outputs": ",".join(options.outputs or []),
        "strategy": ",".join(strategies),
        "dynamic_shape": ",".join(options.dynamic_shape),
        "isstream": options.isstream,
        "platform": options.platform,
        "ramsize": options.ramsize if options.ramsize is not None else device.sram,
        "psramsize": options.psramsize if options.psramsize is not None else device.psram,
        "dma_prefetch": True,
        "memory": ",".join(options.memory),
        "threshold4": options.threshold4 if options.threshold4 is not None
        else device.sram_threshold,
    }
    for k in (1, 2, 3):
        value = getattr(options, f"threshold{k}")
        values[f"threshold{k}"] = value if value is not None else ORIGINAL_DEFAULTS[
            f"threshold{k}"]
    return {section: {key: {"value": values[key], "comment": COMMENTS[key]} for key in keys}
            for section, keys in SECTIONS.items()}
