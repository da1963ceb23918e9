"""Conventional check at init: does each layer follow the target chip's rules?

The rules are the device profiles' data (``src/thinker/devices/*.toml``, the same files
tpacker checks against), so training and packing agree: conv kernel, stride, padding and
dilation limits, kernel >= stride where the chip needs it, and the weight and activation bit
widths it runs. Memory limits (weight bytes, input slices) are tpacker's: it splits layers to
fit them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch.nn as nn

from linger.errors import LingerConfigError, LingerDeviceError
from thinker.devices import DeviceProfile, list_profiles, load_profile
from thinker.errors import ThinkerDeviceError

HINTS = {
    "kernel_size": "use a smaller kernel (e.g. stack 3x3 convolutions); tpacker splits a larger "
                   "kernel exactly only when every block within the limit is at least as large "
                   "as the stride",
    "stride": "use an allowed stride, or a stride-1 convolution followed by pooling",
    "padding": "reduce the padding, or pad with a separate nn.ZeroPad2d",
    "dilation": "use an allowed dilation",
    "kernel_size >= stride": "use a kernel at least as large as the stride",
    "weight_bits": "set weight_bits (or an override for this layer) to an allowed width",
    "activate_bits": "set activate_bits (or an override for this layer) to an allowed width",
}


@dataclass(frozen=True)
class Violation:
    path: str
    module_type: str
    rule: str
    value: tuple[int, ...]
    allowed: str

    def describe(self, platform: str) -> tuple[str, str, str]:
        """(what, rule broken, fix): the parts of ``message``."""
        shown = "x".join(str(v) for v in self.value)
        return (f"{self.module_type} '{self.path}'",
                f"{self.rule} {shown} breaks the {platform} rule {self.rule} in {self.allowed}",
                HINTS[self.rule])

    def message(self, platform: str) -> str:
        what, rule, fix = self.describe(platform)
        return f"{what}: {rule}; {fix}"


def profile(platform: str) -> DeviceProfile:
    """The device profile of a platform name (``venus``, ``arcs``, ...) or a TOML path."""
    try:
        return load_profile(platform)
    except ThinkerDeviceError as exc:
        raise LingerConfigError(f"platform: {exc}") from None


def validate_platform(platform: str) -> str:
    if platform.endswith(".toml") or os.path.sep in platform or platform in list_profiles():
        profile(platform)
        return platform
    raise LingerConfigError(f"platform = {platform!r} is not allowed; use one of "
                            f"{list_profiles()} or a device profile .toml file")


def _values(values) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def conv_geometry(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """kernel_size, stride, padding (every side) and dilation of a conv module."""
    from linger.modules.conv import conv_pads

    return {
        "kernel_size": tuple(module.kernel_size),
        "stride": tuple(module.stride),
        "padding": tuple(conv_pads(module)),
        "dilation": tuple(module.dilation),
    }


def check_conv(path: str, module: nn.Module, device: DeviceProfile,
               type_name: str) -> list[Violation]:
    """Every geometry rule of ``device`` that the conv ``module`` at ``path`` breaks and tpacker
    cannot rewrite exactly. tpacker splits an oversized kernel into blocks within range, turns a
    dilation the device lacks into zero taps, pads beyond the pad range with a separate Pad and
    reads a kernel smaller than its stride through a strided Slice (thinker.passes.kernel_split,
    each bit-identical): those geometries are accepted here."""
    from thinker.passes.kernel_split import splittable

    rules, geo = device.conv, conv_geometry(module)
    kernel, stride, dilation = geo["kernel_size"], geo["stride"], geo["dilation"]
    rewritable = not isinstance(module, nn.ConvTranspose2d)  # the rewrites handle Conv1d/2d
    found = []

    def broken(rule: str, value, allowed: str) -> None:
        found.append(Violation(path, type_name, rule, value, allowed))

    dilated = any(d > 1 for d in dilation)
    dilation_ok = "dilations" not in rules or all(d in rules["dilations"] for d in dilation)
    if not rewritable:
        return _strict_conv_violations(path, type_name, rules, geo)
    # a dilation the device lacks becomes an undilated kernel of d (k - 1) + 1 taps
    effective = kernel if dilation_ok else tuple(d * (k - 1) + 1
                                                 for k, d in zip(kernel, dilation, strict=True))
    effective_dilation = dilation if dilation_ok else (1,) * len(kernel)
    kernel_range = rules.get("kernel_dilated" if dilated and dilation_ok else "kernel")
    if kernel_range and not all(kernel_range[0] <= k <= kernel_range[1] for k in effective) \
            and not splittable(effective, stride, effective_dilation, rules):
        suffix = " (dilated)" if dilated else ""
        if not dilated and rules.get("kernel_dilated", kernel_range) != kernel_range:
            suffix = f" (dilated: {rules['kernel_dilated'][0]}..{rules['kernel_dilated'][1]})"
        broken("kernel_size", kernel, f"{kernel_range[0]}..{kernel_range[1]}{suffix}")
    if "strides" in rules and any(s not in rules["strides"] for s in stride):
        broken("stride", stride, _values(rules["strides"]))
    return found


def _strict_conv_violations(path: str, type_name: str, rules: dict, geo: dict
                            ) -> list[Violation]:
    """Every geometry rule broken, for convs tpacker does not rewrite (transposed convs)."""
    found = []

    def broken(rule: str, value, allowed: str) -> None:
        found.append(Violation(path, type_name, rule, value, allowed))

    dilated = any(d > 1 for d in geo["dilation"])
    kernel_range = rules.get("kernel_dilated" if dilated else "kernel")
    if kernel_range and not all(kernel_range[0] <= k <= kernel_range[1]
                                for k in geo["kernel_size"]):
        broken("kernel_size", geo["kernel_size"], f"{kernel_range[0]}..{kernel_range[1]}")
    if "strides" in rules and any(s not in rules["strides"] for s in geo["stride"]):
        broken("stride", geo["stride"], _values(rules["strides"]))
    if "pads" in rules and not all(rules["pads"][0] <= p <= rules["pads"][1]
                                   for p in geo["padding"]):
        broken("padding", geo["padding"], f"{rules['pads'][0]}..{rules['pads'][1]}")
    if "dilations" in rules and any(d not in rules["dilations"] for d in geo["dilation"]):
        broken("dilation", geo["dilation"], _values(rules["dilations"]))
    if rules.get("kernel_at_least_stride") and any(
            k < s for k, s in zip(geo["kernel_size"], geo["stride"], strict=True)):
        broken("kernel_size >= stride", geo["kernel_size"] + geo["stride"],
               "kernel >= stride on every axis (value: kernel x stride)")
    return found


def check_bits(path: str, type_name: str, device: DeviceProfile, weight_bits: int | None,
               activate_bits: int) -> list[Violation]:
    """Bit widths the device does not run."""
    found = []
    if weight_bits is not None and weight_bits not in device.weight_bits:
        found.append(Violation(path, type_name, "weight_bits", (weight_bits,),
                               _values(device.weight_bits)))
    allowed = sorted(int(d[3:]) for d in device.activation_dtypes if d.startswith("int"))
    if activate_bits not in allowed:
        found.append(Violation(path, type_name, "activate_bits", (activate_bits,),
                               _values(allowed)))
    return found


def enforce(violations: list[Violation], platform: str, mode: str) -> None:
    """Raise one error listing every violation (``mode='error'``) or warn about each."""
    if not violations:
        return
    messages = [v.message(platform) for v in violations]
    if mode == "warn":
        for m in messages:
            warnings.warn(m, stacklevel=3)
        return
    raise LingerDeviceError(
        f"{len(messages)} layer(s) break the {platform} rules:\n  " + "\n  ".join(messages)
        + "\n(set conventional_check: warn to only warn)")
