"""Stage 2: ``linger.init`` turns a float (or constrained) model into a quantized one."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

import torch
import torch.fx as fx
import torch.nn as nn

from linger import trace
from linger.config import Config, load_config
from linger.errors import LingerConfigError, LingerError, LingerUnsupportedError
from linger.modules import (
    FOLDED_BN,
    QUANTIZED,
    FloatIsland,
    QuantizedLayer,
    float_type,
    type_name,
)


def init(model: nn.Module, config: Config | Mapping | str | os.PathLike | None = None,
         checkpoint: Mapping[str, torch.Tensor] | str | os.PathLike | None = None,
         example_input=None) -> fx.GraphModule:
    """Return a quantized copy of ``model`` for quantization-aware training (``model`` itself
    is left unchanged).

    ``config``: dict, YAML path or Config (see ``linger.config``). ``checkpoint``: a float or
    constrained state dict (or a path to one), loaded into ``model`` with ``strict=True``
    first. The quantized model keeps every parameter at its float name (a BatchNorm folded into
    the conv before it keeps its own entries), so such a checkpoint also loads into it later,
    strictly.

    Conv1d/Conv2d/ConvTranspose2d/Linear/BatchNorm become their quantized classes (BatchNorm
    right after a conv/linear is folded into it), every model input gets a Quant, every +, -, *
    between tensors its own quantizer.

    The pre-flight check (``linger.check``) runs first: modules and calls linger cannot
    quantize and, with ``platform`` set, device-rule violations; with ``example_input`` (a
    tensor or tuple) also everything that only fails on data. Every problem is raised in ONE
    error (LingerUnsupportedError / LingerDeviceError); ``conventional_check: warn`` only warns
    about device rules.
    """
    from linger.check import preflight

    cfg = load_config(config)
    model = copy.deepcopy(model)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    refuse_quantized(model)
    gm, report = preflight(model, cfg, example_input)
    report.enforce(cfg.conventional_check, "linger.init")
    return gm


def refuse_quantized(model: nn.Module) -> None:
    already = [p for p, m in model.named_modules() if isinstance(m, QuantizedLayer)]
    if already:
        raise LingerUnsupportedError(f"the model is already quantized ('{already[0]}'); "
                                     "call linger.init on the float or constrained model")


def build(model: nn.Module, cfg: Config, module_errors: dict[str, Exception]
          ) -> fx.GraphModule:
    """The quantized GraphModule of ``model`` (modified in place: pass a copy), without
    checks: modules linger does not know stay as they are, and the errors of quantized
    modules' own checks go to ``module_errors`` (path -> error); ``linger.check`` reports both.
    """
    leaves = trace.disabled_leaves(model, cfg)
    gm = trace.trace(model, leaves)
    pairs = trace.find_bn_pairs(gm, cfg) if cfg.fold_bn else {}
    called = list(dict.fromkeys(n.target for n in gm.graph.nodes if n.op == "call_module"))
    _swap_modules(gm, called, cfg, pairs, set(leaves), module_errors)
    trace.requantize_float_outputs(gm)
    trace.quantize_inputs(gm, cfg)
    trace.quantize_calls(gm, cfg)
    trace.announce_locations(gm)
    trace.finish_graph_outputs(gm)
    gm.graph.lint()
    gm.recompile()
    return gm


def _read_checkpoint(checkpoint) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping):
        return checkpoint
    path = os.fspath(checkpoint)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise LingerConfigError(f"checkpoint {path}: cannot be read ({exc})") from None


def load_checkpoint(model: nn.Module, checkpoint, limit: int = 8) -> None:
    """``model.load_state_dict(checkpoint, strict=True)``, refusing a checkpoint of another
    model in one line that names its missing and unexpected keys (and shape mismatches)."""
    state = _read_checkpoint(checkpoint)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}" for k in own
                  if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]

    def listed(keys):
        more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
        return ", ".join(keys[:limit]) + more

    problems = [f"{label} {listed(keys)}" for label, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatches (checkpoint vs model)", mismatched)) if keys]
    if problems:
        raise LingerConfigError(
            "checkpoint does not match the model: " + "; ".join(problems)
            + ". Load the checkpoint saved from this model (float or constrained)")
    model.load_state_dict(state, strict=True)


def _swap_modules(gm: fx.GraphModule, called: list[str], cfg: Config, pairs: dict[str, str],
                  leaves: set[str], module_errors: dict[str, Exception]) -> None:
    folded = {bn: layer for layer, bn in pairs.items()}
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
                try:
                    module.linger_check()
                except LingerError as exc:
                    module_errors[path] = exc
            if path in pairs:  # kept out of _modules: the BatchNorm stays at its own path
                module.__dict__["linger_folded_bn"] = gm.get_submodule(pairs[path])


def _keep_float(gm: fx.GraphModule, path: str, module: nn.Module, settings) -> None:
    """Route calls of ``path`` through a FloatIsland; the module stays where it is, so its
    parameters keep their names."""
    scope, _, name = path.rpartition(".")
    island_path = trace.free_path(gm, scope, f"{name}_float")
    gm.add_submodule(island_path, FloatIsland(module, path, settings))
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target == path:
            node.target = island_path
