"""Device profiles are data: TOML files here (or a user's own file) + this loader.

No chip knowledge lives in code paths: checks and adaptations ask the profile for limits.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from thinker.errors import ThinkerDeviceError
from thinker.resource import format as fmt

PROFILE_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DEVICE = "venus"


@dataclass
class DeviceProfile:
    name: str
    id: int
    description: str
    sram: int
    psram: int
    flash: int
    alignment: int
    constants_kind: int
    sram_threshold: int
    activation_dtypes: list[str]
    weight_bits: list[int]
    supported_ops: set[str]
    conv: dict[str, Any] = field(default_factory=dict)
    linear: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    op_rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # [op_rules.<OpType>]
    path: str = ""

    def rules(self, op_type: str) -> dict[str, Any]:
        """The device's rules for one op type ({} when it has none)."""
        return self.op_rules.get(op_type, {})

    def memory_limit(self, kind: int) -> int:
        return {fmt.MEM_SRAM: self.sram, fmt.MEM_PSRAM: self.psram,
                fmt.MEM_FLASH: self.flash}[kind]


def list_profiles() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith(".toml"))


def _require(table: dict, key: str, where: str):
    if key not in table:
        raise ThinkerDeviceError(f"{where}: missing key '{key}'")
    return table[key]


def load_profile(name_or_path: str = DEFAULT_DEVICE) -> DeviceProfile:
    """A shipped profile by name (``venus``, ``arcs``, ...) or a TOML file path."""
    if os.path.sep in name_or_path or name_or_path.endswith(".toml"):
        path = name_or_path
    else:
        path = os.path.join(PROFILE_DIR, f"{name_or_path}.toml")
        if not os.path.exists(path):
            raise ThinkerDeviceError(
                f"unknown device '{name_or_path}'; shipped profiles: "
                f"{', '.join(list_profiles())} (or give a .toml file with --device-file)")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ThinkerDeviceError(f"{path}: no such device profile") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThinkerDeviceError(f"{path}: not valid TOML ({exc})") from None
    where = path
    mem = _require(data, "memory", where)
    constants = mem.get("constants", "flash")
    if constants not in ("flash", "psram", "share-memory"):
        raise ThinkerDeviceError(f"{where}: memory.constants must be flash, psram or "
                                 f"share-memory, not '{constants}'")
    alignment = int(mem.get("alignment", 16))
    if alignment < 1 or alignment & (alignment - 1):
        raise ThinkerDeviceError(f"{where}: memory.alignment {alignment} is not a power of two")
    return DeviceProfile(
        name=str(_require(data, "name", where)),
        id=int(data.get("id", 0)),
        description=str(data.get("description", "")),
        sram=int(_require(mem, "sram", where)),
        psram=int(mem.get("psram", 0)),
        flash=int(mem.get("flash", 0)),
        alignment=alignment,
        constants_kind=fmt.MEMORY_KIND_BY_NAME[constants],
        sram_threshold=int(mem.get("sram_threshold", mem["sram"])),
        activation_dtypes=list(data.get("dtypes", {}).get("activations", ["int8"])),
        weight_bits=[int(b) for b in data.get("dtypes", {}).get("weight_bits", [8])],
        supported_ops=set(data.get("ops", {}).get("supported", [])),
        conv=dict(data.get("conv", {})),
        linear=dict(data.get("linear", {})),
        pool=dict(data.get("pool", {})),
        cost=dict(data.get("cost", {})),
        op_rules={k: dict(v) for k, v in data.get("op_rules", {}).items()},
        path=path,
    )
