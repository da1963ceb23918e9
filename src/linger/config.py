"""linger configuration: a YAML file or a dict, validated once, then asked per layer.

Keys (defaults in ``DEFAULTS``)::

    weight_bits: 8            # 8 | 4 (int4 values stored in int8, parameter_bits=4)
    activate_bits: 8          # 8 | 16
    bias_bits: 32             # 32
    qat_method: MOM           # MOM (EMA of abs-max) | TQT (learned log2 threshold)
    momentum: 0.1             # MOM: weight of the newest batch in the EMA
    platform: null            # venus | arcs | venusA | ... or a device .toml: checked at init
    conventional_check: error # error | warn
    clamp_factor_value: 7     # constrain: |w| <= factor * mean|w|   (null: no weight clamp)
    clamp_activation_value: 8 # constrain: |activation| <= value     (null: no clamp)
    round_mode: floor_add     # floor_add | floor | round | ceil: how outputs round
                              # (docs/linger.md, "Rounding modes")
    fold_bn: true             # fold BatchNorm into the conv/linear before it
    disable_module: []        # module types kept float, e.g. [LayerNorm]
    disable_submodel: []      # module-name prefixes kept float, e.g. [head]
    module_overrides: {}      # per type:   {Linear: {weight_bits: 8}}
    submodel_overrides: {}    # per prefix: {features.0: {weight_bits: 8, activate_bits: 16}}

A prefix ``p`` matches the module ``p`` and everything under ``p.``; the longest matching
prefix wins and a prefix override beats a type override.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from linger.errors import LingerConfigError

QAT_METHODS = ("MOM", "TQT")
CHECK_MODES = ("error", "warn")
OVERRIDABLE_KEYS = ("weight_bits", "activate_bits", "qat_method", "momentum", "round_mode")
ROUND_MODES = ("floor_add", "floor", "round", "ceil")


@dataclass(frozen=True)
class LayerSettings:
    """What one quantized layer uses."""

    weight_bits: int = 8
    activate_bits: int = 8
    qat_method: str = "MOM"
    momentum: float = 0.1
    bias_bits: int = 32
    platform: str | None = None  # the config's platform (for platform-dependent kernels)
    round_mode: str = "floor_add"  # how the layer's output activation rounds (ROUND_MODES)


@dataclass(frozen=True)
class Config:
    weight_bits: int = 8
    activate_bits: int = 8
    bias_bits: int = 32
    qat_method: str = "MOM"
    momentum: float = 0.1
    platform: str | None = None
    conventional_check: str = "error"
    clamp_factor_value: float | None = 7.0
    clamp_activation_value: float | None = 8.0
    fold_bn: bool = True
    disable_module: tuple[str, ...] = ()
    disable_submodel: tuple[str, ...] = ()
    module_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    submodel_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    round_mode: str = "floor_add"

    # -- per layer ---------------------------------------------------------------------------

    def is_disabled(self, path: str, type_name: str) -> bool:
        return type_name in self.disable_module or any(
            _prefix_matches(p, path) for p in self.disable_submodel)

    def layer(self, path: str, type_name: str = "") -> LayerSettings:
        settings = LayerSettings(self.weight_bits, self.activate_bits, self.qat_method,
                                 self.momentum, self.bias_bits, self.platform, self.round_mode)
        if type_name in self.module_overrides:
            settings = replace(settings, **self.module_overrides[type_name])
        matches = [p for p in self.submodel_overrides if _prefix_matches(p, path)]
        if matches:
            settings = replace(settings, **self.submodel_overrides[max(matches, key=len)])
        return settings


DEFAULTS: dict[str, Any] = {f.name: getattr(Config(), f.name) for f in fields(Config)}


def _prefix_matches(prefix: str, path: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + ".")


def load_config(source: Config | Mapping[str, Any] | str | os.PathLike | None = None) -> Config:
    """A validated Config from a Config, a dict, a YAML file path, or None (defaults)."""
    if source is None:
        return Config()
    if isinstance(source, Config):
        return source
    where = "config"
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        source = _read_yaml(where)
    if not isinstance(source, Mapping):
        raise LingerConfigError(
            f"config must be a dict, a YAML file path or None, got {type(source).__name__}")
    from linger.original_config import from_original, is_original

    if is_original(source):  # the original linger's layout (quant_info, clamp_info, parts)
        source = from_original(source, where)
    _reject_unknown(source, DEFAULTS, "config")
    values = {k: _validate(k, v, "config") for k, v in source.items()}
    return Config(**values)


def _read_yaml(path: str) -> Mapping[str, Any]:
    import yaml

    if not os.path.exists(path):
        raise LingerConfigError(f"{path}: no such config file")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise LingerConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise LingerConfigError(f"{path}: the file must hold a mapping of config keys")
    return data


def _reject_unknown(given: Mapping[str, Any], valid, where: str) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise LingerConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys are: {', '.join(sorted(valid))}")


def _choice(key: str, value, allowed, where: str):
    if value not in allowed:
        raise LingerConfigError(
            f"{where}: {key} = {value!r} is not allowed; use one of {list(allowed)}")
    return value


def _validate(key: str, value, where: str):
    if key == "weight_bits":
        return _choice(key, value, (4, 8), where)
    if key == "activate_bits":
        return _choice(key, value, (8, 16), where)
    if key == "bias_bits":
        return _choice(key, value, (32,), where)
    if key == "qat_method":
        return _choice(key, str(value).upper(), QAT_METHODS, where)
    if key == "momentum":
        if not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise LingerConfigError(f"{where}: momentum = {value!r} must be in (0, 1]")
        return float(value)
    if key == "platform":
        from linger.platforms import validate_platform

        return None if value is None else validate_platform(str(value))
    if key == "conventional_check":
        return _choice(key, value, CHECK_MODES, where)
    if key == "round_mode":
        return _choice(key, value, ROUND_MODES, where)
    if key in ("clamp_factor_value", "clamp_activation_value"):
        if value is None:
            return None
        if not isinstance(value, (int, float)) or value <= 0:
            raise LingerConfigError(f"{where}: {key} = {value!r} must be a positive number "
                                    "or null")
        return float(value)
    if key == "fold_bn":
        return _choice(key, value, (True, False), where)
    if key in ("disable_module", "disable_submodel"):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise LingerConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
        return tuple(value)
    if key in ("module_overrides", "submodel_overrides"):
        return _validate_overrides(key, value, where)
    raise AssertionError(key)


def _validate_overrides(key: str, value, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise LingerConfigError(f"{where}: {key} must map names to settings, got {value!r}")
    checked = {}
    for name, settings in value.items():
        inner = f"{where}.{key}[{name!r}]"
        if not isinstance(settings, Mapping):
            raise LingerConfigError(f"{inner}: must be a mapping of settings, got {settings!r}")
        _reject_unknown(settings, OVERRIDABLE_KEYS, inner)
        checked[str(name)] = {k: _validate(k, v, inner) for k, v in settings.items()}
    return checked
