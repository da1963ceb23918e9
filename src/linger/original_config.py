"""The original linger's YAML configuration (``linger.config.QuantConfig``), read into ours.

The original file has top-level settings (``platform``, ``open_quant``, ``quant_method``,
``device``, ``dtype``, ``seed``, ``calibration``), a ``clamp_info`` block, a ``quant_info``
block, and mixed-precision parts: any other mapping with a ``name`` list, e.g. ::

    platform: venusA
    clamp_info: {clamp_activation_value: 8, clamp_factor_value: 7}
    quant_info: {weight_bits: 8, activate_bits: 8, qat_method: MOM, round_mode: floor_add}
    part1:
      name: [features.0, classifier]
      quant_info: {weight_bits: 8, activate_bits: 16}

Each key maps onto ours (docs/linger.md, "The original linger's YAML"); a value with no
equivalent is refused with a message naming the key and what to do instead, never silently
dropped. Settings that only choose how the original computed on the host (``quant_method``,
``device``, ``seed``) do not change any integer and are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linger.errors import LingerConfigError

TOP_LEVEL = {"open_quant", "quant_method", "device", "dtype", "seed", "calibration",
             "platform", "clamp_info", "quant_info", "mix_parts"}
QUANT_METHODS = ("NATIVE", "CUDA", "CUDA_GS", "COMPILE", "TRITON", "ONNX")
# the original's QuantInfo / ClampInfo defaults (linger/config.py)
QUANT_INFO_DEFAULTS = {
    "weight_bits": 8, "activate_bits": 8, "bias_bits": 32, "a_strategy": "RANGE_MEAN",
    "w_strategy": "RANGE_MEAN", "is_symmetry": True, "is_perchannel": False,
    "round_mode": "floor_add", "activation_type": "none", "qat_method": "MOM",
    "w_calibrate_name": "abs_max", "a_calibrate_name": "top_10",
}
CLAMP_INFO_DEFAULTS = {"clamp_weight_value": None, "clamp_bias_value": None,
                       "clamp_activation_value": 8, "clamp_factor_value": 7}
PLATFORMS = {"venus": "venus", "mars": "mars", "arcs": "arcs", "venusa": "venusA"}


def is_original(data: Mapping[str, Any]) -> bool:
    """Whether a config mapping is in the original linger's layout."""
    if any(k in data for k in ("quant_info", "clamp_info", "open_quant", "quant_method",
                               "dtype", "device", "seed", "calibration", "mix_parts")):
        return True
    return any(isinstance(v, Mapping) and "name" in v for v in data.values())


def _bad(where: str, key: str, value, fix: str) -> LingerConfigError:
    return LingerConfigError(f"{where}: {key} = {value!r} has no equivalent in linger; {fix}")


def _quant_info(block, where: str) -> dict[str, Any]:
    """An original ``quant_info`` block (with the original's defaults for missing keys) ->
    our keys."""
    if block is None:
        block = {}
    if not isinstance(block, Mapping):
        raise LingerConfigError(f"{where}: must be a mapping, got {block!r}")
    unknown = sorted(set(block) - set(QUANT_INFO_DEFAULTS) - {"input_bits", "output_bits"})
    if unknown:
        raise LingerConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; the "
                                f"original quant_info keys are {', '.join(QUANT_INFO_DEFAULTS)}")
    info = {**QUANT_INFO_DEFAULTS, **block}
    checks = [
        ("a_strategy", ("RANGE_MEAN",), "activations are quantized with power-of-two ranges "
         "(qat_method MOM or TQT); remove it"),
        ("w_strategy", ("RANGE_MEAN",), "weights are quantized per tensor to their abs-max "
         "range; remove it"),
        ("is_symmetry", (True,), "thinker quantization is symmetric (zero point 0); use "
         "is_symmetry: true"),
        ("is_perchannel", (False,), "weights are quantized per tensor (the dialect's scale_w is "
         "a scalar); use is_perchannel: false"),
        ("activation_type", ("none", None), "calibration sees the values the layer produces; "
         "use activation_type: none"),
        ("w_calibrate_name", ("abs_max",), "weights use their abs-max range; use abs_max"),
        ("a_calibrate_name", ("top_10", "abs_max"), "use top_10 or abs_max (linger.calibration "
         "starts activation ranges from the largest values seen)"),
        ("bias_bits", (32,), "biases are int32; use bias_bits: 32"),
    ]
    for key, allowed, fix in checks:
        if info[key] not in allowed:
            raise _bad(where, key, info[key], fix)
    for key in ("input_bits", "output_bits"):
        if block.get(key) is not None:
            raise _bad(where, key, block[key], "a part's inputs and outputs use its "
                       "activate_bits; split the part or set activate_bits")
    return {"weight_bits": info["weight_bits"], "activate_bits": info["activate_bits"],
            "qat_method": info["qat_method"], "round_mode": info["round_mode"]}


def _clamp_info(block, where: str) -> dict[str, Any]:
    if block is None:
        block = {}
    if not isinstance(block, Mapping):
        raise LingerConfigError(f"{where}: must be a mapping, got {block!r}")
    unknown = sorted(set(block) - set(CLAMP_INFO_DEFAULTS))
    if unknown:
        raise LingerConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; the "
                                f"original clamp_info keys are {', '.join(CLAMP_INFO_DEFAULTS)}")
    info = {**CLAMP_INFO_DEFAULTS, **block}
    if info["clamp_weight_value"] is not None:
        raise _bad(where, "clamp_weight_value", info["clamp_weight_value"],
                   "weights are clamped relative to their mean: use clamp_factor_value")
    if info["clamp_bias_value"] is not None:
        raise _bad(where, "clamp_bias_value", info["clamp_bias_value"],
                   "biases are not clamped; remove it (null)")
    return {"clamp_activation_value": info["clamp_activation_value"],
            "clamp_factor_value": info["clamp_factor_value"]}


def _platform(value, where: str) -> str | None:
    if value is None:
        return None
    name = str(value)
    return PLATFORMS.get(name.lower(), name)


def from_original(data: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """Our config dict for an original linger config mapping."""
    out: dict[str, Any] = {}
    if data.get("open_quant", True) is not True:
        raise _bad(where, "open_quant", data["open_quant"],
                   "linger.init always quantizes: train the float model without calling it")
    method = data.get("quant_method", "NATIVE")
    if str(method).upper() not in QUANT_METHODS:
        raise LingerConfigError(f"{where}: quant_method = {method!r} is not one of the "
                                f"original's {', '.join(QUANT_METHODS)}")
    dtype = data.get("dtype", "torch.float32")
    if dtype not in ("torch.float32", "float32"):
        raise _bad(where, "dtype", dtype, "linger trains in float32 (its exact steps run in "
                   "float64 internally); use torch.float32")
    if data.get("calibration", False) not in (False, None):
        raise _bad(where, "calibration", data["calibration"],
                   "calibrate with `with linger.calibration(model): model(x)`")
    if data.get("mix_parts"):
        raise _bad(where, "mix_parts", data["mix_parts"], "write each part as its own block "
                   "(part1: {name: [...], quant_info: {...}})")
    if "platform" in data:
        out["platform"] = _platform(data["platform"], f"{where}: platform")
    out.update(_clamp_info(data.get("clamp_info"), f"{where}: clamp_info"))
    quant = _quant_info(data.get("quant_info"), f"{where}: quant_info")
    out["weight_bits"], out["activate_bits"] = quant["weight_bits"], quant["activate_bits"]
    out["qat_method"], out["round_mode"] = quant["qat_method"], quant["round_mode"]

    # mixed-precision parts: the first part naming a module wins (the original's
    # _match_part); a part's quant_info starts from the original's defaults, not the global
    # block, so every overridable key is given
    overrides: dict[str, dict[str, Any]] = {}
    claimed: list[str] = []
    for key, value in data.items():
        if key in TOP_LEVEL:
            continue
        if not isinstance(value, Mapping) or "name" not in value:
            raise LingerConfigError(
                f"{where}: unknown key {key!r}; the original's keys are "
                f"{', '.join(sorted(TOP_LEVEL - {'mix_parts'}))} and parts (a mapping with a "
                "'name' list)")
        part_where = f"{where}: {key}"
        unknown = sorted(set(value) - {"name", "quant_info", "clamp_info"})
        if unknown:
            raise LingerConfigError(f"{part_where}: unknown key(s) "
                                    f"{', '.join(map(repr, unknown))}; a part has name, "
                                    "quant_info and clamp_info")
        names = value["name"]
        names = [names] if isinstance(names, str) else list(names or [])
        if not all(isinstance(n, str) for n in names):
            raise LingerConfigError(f"{part_where}: name must be a list of module names")
        settings = _quant_info(value.get("quant_info"), f"{part_where}.quant_info")
        clamp = _clamp_info(value.get("clamp_info"), f"{part_where}.clamp_info")
        global_clamp = {k: out[k] for k in clamp}
        if "clamp_info" in value and clamp != global_clamp:
            raise _bad(f"{part_where}.clamp_info", "clamp values", clamp,
                       f"linger.constrain clamps every layer alike ({global_clamp}); set them in "
                       "the top-level clamp_info")
        for name in names:
            if any(name == c or name.startswith(c + ".") for c in claimed):
                continue  # an earlier part already covers it
            claimed.append(name)
            overrides[name] = dict(settings)
    if overrides:
        out["submodel_overrides"] = overrides
    return out
