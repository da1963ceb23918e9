"""Stage 2: ``linger.init`` turns a float (or constrained) model into a quantized one."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

import torch
import torch.fx as fx
import torch.nn as nn

from linger import platforms, trace
from linger.config import Config, load_config
from linger.errors import LingerUnsupportedError
from linger.modules import (
    CONVOLUTIONS,
    FOLDED_BN,
    QUANTIZED,
    STATELESS,
    FloatIsland,
    QuantizedLayer,
    WeightedLayer,
    float_type,
    type_name,
)


def init(model: nn.Module, config: Config | Mapping | str | os.PathLike | None = None,
         checkpoint: Mapping[str, torch.Tensor] | str | os.PathLike | None = None,
         ) -> fx.GraphModule:
    """Return a quantized copy of ``model`` for quantization-aware training (``model`` itself
    is left unchanged).

    ``config``: dict, YAML path or Config (see ``linger.config``). ``checkpoint``: a float or
    constrained state dict (or a path to one), loaded into ``model`` with ``strict=True``
    first. The quantized model keeps every parameter at its float name (a BatchNorm folded into
    the conv before it keeps its own entries), so such a checkpoint also loads into it later,
    strictly.

    Conv1d/Conv2d/ConvTranspose2d/Linear/BatchNorm become their quantized classes (BatchNorm
    right after a conv/linear is folded into it), every model input gets a Quant, every +, -, *
    between tensors its own quantizer. With ``platform`` set, layers that break the device
    profile's rules raise LingerDeviceError (or warn) here.
    """
    cfg = load_config(config)
    model = copy.deepcopy(model)
    if checkpoint is not None:
        model.load_state_dict(_read_checkpoint(checkpoint), strict=True)
    already = [p for p, m in model.named_modules() if isinstance(m, QuantizedLayer)]
    if already:
        raise LingerUnsupportedError(f"the model is already quantized ('{already[0]}'); "
                                     "call linger.init on the float or constrained model")
    leaves = trace.disabled_leaves(model, cfg)
    gm = trace.trace(model, leaves)
    pairs = trace.find_bn_pairs(gm, cfg) if cfg.fold_bn else {}
    called = list(dict.fromkeys(n.target for n in gm.graph.nodes if n.op == "call_module"))
    _swap_modules(gm, called, cfg, pairs, set(leaves))
    trace.quantize_inputs(gm, cfg)
    trace.quantize_calls(gm, cfg)
    if cfg.platform:
        _check_platform(gm, cfg)
    trace.announce_locations(gm)
    trace.finish_graph_outputs(gm)
    gm.graph.lint()
    gm.recompile()
    return gm


def _read_checkpoint(checkpoint) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping):
        return checkpoint
    return torch.load(os.fspath(checkpoint), map_location="cpu", weights_only=True)


def _check_platform(gm: fx.GraphModule, cfg: Config) -> None:
    """The conventional check: every quantized layer against the device profile."""
    device = platforms.profile(cfg.platform)
    found = []
    for module in gm.modules():
        if not isinstance(module, QuantizedLayer) or isinstance(module, FloatIsland):
            continue
        path, settings = module.linger_path, module.linger_settings
        if isinstance(module, WeightedLayer):
            name = type_name(module)
            if float_type(module) in CONVOLUTIONS:
                found += platforms.check_conv(path, module, device, name)
            found += platforms.check_bits(path, name, device, settings.weight_bits,
                                          settings.activate_bits)
        else:
            name = getattr(module, "onnx_op", "Quant")
            found += platforms.check_bits(path, name, device, None, settings.activate_bits)
    platforms.enforce(found, device.name, cfg.conventional_check)


def _swap_modules(gm: fx.GraphModule, called: list[str], cfg: Config, pairs: dict[str, str],
                  leaves: set[str]) -> None:
    folded = {bn: layer for layer, bn in pairs.items()}
    unsupported = []
    for path in called:
        module = gm.get_submodule(path)
        base = float_type(module)
        settings = cfg.layer(path, type_name(module))
        if path in leaves:
            _keep_float(gm, path, module, settings)
        elif path in folded:
            module.__class__ = FOLDED_BN[base]
        elif base in QUANTIZED:
            module.__class__ = QUANTIZED[base]
            module.linger_setup(path, settings)
            if hasattr(module, "linger_check"):
                module.linger_check()
            if path in pairs:  # kept out of _modules: the BatchNorm stays at its own path
                module.__dict__["linger_folded_bn"] = gm.get_submodule(pairs[path])
        elif type(module) not in STATELESS:
            unsupported.append(f"{type(module).__name__} '{path}'")
    if unsupported:
        raise LingerUnsupportedError(
            f"linger cannot quantize {len(unsupported)} module(s): {', '.join(unsupported)}. "
            f"Supported: {', '.join(t.__name__ for t in (*QUANTIZED, *STATELESS))}. Keep them "
            "float with disable_module: [Type] or disable_submodel: [path] (not exportable)")


def _keep_float(gm: fx.GraphModule, path: str, module: nn.Module, settings) -> None:
    """Route calls of ``path`` through a FloatIsland; the module stays where it is, so its
    parameters keep their names."""
    scope, _, name = path.rpartition(".")
    island_path = trace.free_path(gm, scope, f"{name}_float")
    gm.add_submodule(island_path, FloatIsland(module, path, settings))
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target == path:
            node.target = island_path
