"""The pre-flight check: everything that keeps a model from quantizing for its chip, in ONE
list, before any training step.

    report = linger.check(model, example_input, "venus")
    print(report)              # a numbered list: where (file:line), what, the rule, the fix
    report.ok, report.problems

It traces ``forward`` with torch.fx (stack traces on, so every call knows the line of the user's
code that makes it) and reports:

* every module linger has no quantized version of (module path, type, the line calling it);
* every traced function or method call without a quantized version;
* every device-rule violation of ``linger.platforms`` (conv geometry, bit widths);
* with an example input: everything that only fails on data (shapes, arguments, float tensors
  entering quantized ops, ...), found by running the quantized model in calibration mode on
  the example (failing calls are computed in float so the run goes on and finds the rest),
  then the integer forward as export records it.

Which ops a device runs, and in which form, stays tpacker's check: it rewrites some ops for
some devices (GluInt, Resize), so the op lists of the profiles are not rules here.

What linger supports is read from its registries when the check runs (``qtensor.HANDLERS``,
``calls.QUANTIZED_FUNCTIONS`` / ``QUANTIZED_METHODS``, ``modules.QUANTIZED`` / ``STATELESS``,
the shape-only methods), so new ops are picked up without touching this file. ``linger.init``
runs the same check and raises one error listing every problem.
"""

from __future__ import annotations

import copy
import inspect
import operator
import os
import re
import traceback
import warnings
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch.utils._pytree import tree_map

import linger.modules as registry
import thinker
from linger import calls, platforms, qtensor, recorder, trace
from linger.config import Config, load_config
from linger.errors import (
    LingerCheckError,
    LingerDeviceError,
    LingerError,
    LingerUnsupportedError,
)
from linger.fakequant import range_exponent
from linger.modules.io import FloatIsland, FloatReentry, QInput
from linger.quantizer import calibration
from thinker.devices import DeviceProfile, list_profiles

T = torch.Tensor

# ---------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True)
class Problem:
    """One thing to change: where (``location``: file:line of the user's code), what (the call
    or the module), the rule it breaks, and the fix."""

    location: str
    what: str
    rule: str
    fix: str
    kind: str = "call"  # module | call | device | run | trace
    path: str = ""      # module path (module problems) or the scope making the call
    file: str | None = None
    line: int | None = None
    code: str = ""      # the source line
    node: str = field(default="", repr=False, compare=False)  # the traced node it is at

    def __str__(self) -> str:
        return f"{self.location}  {self.what}: {self.rule}; fix: {self.fix}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    platform: str | None = None
    example: str | None = None          # the example input's shapes, when one was run
    float_parts: list[str] = field(default_factory=list)  # kept float: trains, no export
    not_checked: list[str] = field(default_factory=list)  # what could not be run, and why

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem) -> None:
        key = (problem.location, problem.what, problem.rule)
        if all((p.location, p.what, p.rule) != key for p in self.problems):
            self.problems.append(problem)

    def _scope(self) -> str:
        parts = [f"platform {self.platform}" if self.platform else "no platform"]
        parts.append(f"example input {self.example}" if self.example else "no example input")
        return "; ".join(parts)

    def summary(self, problems: list[Problem] | None = None) -> str:
        problems = self.problems if problems is None else problems
        counts = {k: sum(p.kind == k for p in problems)
                  for k in ("module", "call", "device", "run", "trace")}
        parts = []
        if counts["trace"]:
            parts.append("a forward torch.fx cannot trace")
        if counts["module"]:
            parts.append(_plural(counts["module"], "module") + " linger cannot quantize")
        if counts["call"]:
            parts.append(_plural(counts["call"], "call") + " linger cannot quantize")
        if counts["device"]:
            parts.append(_plural(counts["device"], "layer") +
                         f" breaking the {self.platform} rules")
        if counts["run"]:
            parts.append(_plural(counts["run"], "failure") + " on the example input")
        return ", ".join(parts)

    def render(self, problems: list[Problem] | None = None, title: str = "linger.check") -> str:
        problems = self.problems if problems is None else problems
        lines = [f"{title} ({self._scope()}): "
                 + (f"{_plural(len(problems), 'problem')}: {self.summary(problems)}"
                    if problems else "no problems")]
        for i, p in enumerate(problems, 1):
            lines.append(f"  {i}. {p}")
            if p.code:
                lines.append(f"  {' ' * len(str(i))}     | {p.code}")
        if self.float_parts:
            lines.append("kept float (trains; cannot export): " + ", ".join(self.float_parts))
        for note in self.not_checked:
            lines.append(f"not checked: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()

    def enforce(self, mode: str = "error", title: str = "linger.init") -> None:
        """Raise ONE error listing every problem (device rules only warn in ``warn`` mode)."""
        device = [p for p in self.problems if p.kind == "device"]
        others = [p for p in self.problems if p.kind != "device"]
        if mode == "warn":
            for p in device:
                warnings.warn(f"{p} ({self.platform})", stacklevel=3)
            device = []
        listed = [p for p in self.problems if p in others or p in device]
        if not listed:
            return
        text = self.render(listed, title)
        if device:
            text += "\n(set conventional_check: warn to only warn about the device rules)"
        cls = LingerCheckError if others and device else \
            LingerUnsupportedError if others else LingerDeviceError
        raise cls(text)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------------------------
# entry points


def check(model: nn.Module, example_input=None,
          config_or_platform: Config | dict | str | os.PathLike | None = None) -> CheckReport:
    """Every problem that would stop ``model`` from quantizing (and exporting) for its chip.

    ``example_input``: a tensor or a tuple of them (None: only the static part runs);
    ``config_or_platform``: a config (dict, YAML path, Config) or a platform name / device
    ``.toml``. ``model`` is not changed."""
    from linger.quantize import refuse_quantized

    cfg = _config(config_or_platform)
    model = copy.deepcopy(model)
    refuse_quantized(model)
    return preflight(model, cfg, example_input, keep=False)[1]


def _config(source) -> Config:
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text in list_profiles() or text.endswith(".toml"):
            return load_config({"platform": text})
    return load_config(source)


def preflight(model: nn.Module, cfg: Config, example_input=None, keep: bool = True
              ) -> tuple[fx.GraphModule | None, CheckReport]:
    """(the quantized model, its report). ``model`` is a private copy (it becomes the
    quantized model's modules). ``keep``: the returned model stays untouched by the runs on
    the example input (they use a copy)."""
    from linger.quantize import build

    device = platforms.profile(cfg.platform) if cfg.platform else None
    inputs = None if example_input is None else (
        tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,))
    report = CheckReport(platform=device.name if device else None,
                         example=None if inputs is None else ", ".join(
                             "x".join(map(str, t.shape)) if isinstance(t, torch.Tensor)
                             else type(t).__name__ for t in inputs))
    module_errors: dict[str, Exception] = {}
    try:
        gm = build(model, cfg, module_errors)
    except LingerUnsupportedError as exc:
        if exc.__cause__ is None:  # not a tracing failure
            raise
        report.add(_trace_problem(model, exc.__cause__))
        return None, report
    flagged = _static(gm, device, module_errors, report)
    if inputs is not None:
        probe = copy.deepcopy(gm) if keep else gm
        _run_example(probe, inputs, flagged, report)
    order = {n.name: i for i, n in enumerate(gm.graph.nodes)}
    report.problems.sort(key=lambda p: order.get(p.node, -1))  # forward order
    return gm, report


# ---------------------------------------------------------------------------------------------
# where in the user's code

# frames of these packages are not the user's code (linger.zoo's models are)
_LINGER_DIR = os.path.dirname(os.path.abspath(__file__))
_PACKAGE_DIRS = tuple(os.path.join(d, "") for d in (
    os.path.dirname(os.path.abspath(torch.__file__)), _LINGER_DIR,
    os.path.dirname(os.path.abspath(thinker.__file__))))
_USER_MODULES = (os.path.join(_LINGER_DIR, "zoo.py"),)
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in [^\n]*'
                    r'(?:\n {4}(?P<code>[^\n]*))?')


def _is_user_file(path: str) -> bool:
    if path.startswith("<"):
        return False
    path = os.path.abspath(path)
    return path in _USER_MODULES or not path.startswith(_PACKAGE_DIRS)


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _node_frame(node: fx.Node) -> tuple[str, int, str] | None:
    """(file, line, source) of the innermost user frame of the call that made ``node``."""
    frames = [(m["file"], int(m["line"]), (m["code"] or "").strip())
              for m in _FRAME.finditer(node.meta.get("stack_trace") or "")
              if _is_user_file(m["file"])]
    return frames[-1] if frames else None


def _where(node: fx.Node, gm: fx.GraphModule | None = None) -> dict:
    frame = _node_frame(node)
    if frame:
        file, line, code = frame
        return {"location": f"{_shown(file)}:{line}", "file": file, "line": line, "code": code,
                "node": node.name}
    module = _module_of(gm, node) if gm is not None else None
    if isinstance(module, QInput) and not isinstance(module, FloatReentry):
        return {"location": f"model input '{node.args[0]}'", "node": node.name}
    if module is not None and type(module).__name__ == "ModelOutputs":
        return {"location": "model output", "node": node.name}
    return {"location": "model", "node": node.name}


def _trace_problem(model: nn.Module, exc: BaseException) -> Problem:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_file(f.filename)]
    where = {"location": "model"}
    if frames:
        f = frames[-1]
        where = {"location": f"{_shown(f.filename)}:{f.lineno}", "file": f.filename,
                 "line": f.lineno, "code": (f.line or "").strip()}
    return Problem(what=f"{type(model).__name__}.forward",
                   rule=f"torch.fx cannot trace it ({type(exc).__name__}: {exc})",
                   fix="remove Python control flow that depends on tensor values from "
                       "forward (or move it into a submodule kept float with disable_submodel)",
                   kind="trace", **where)


def _module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    try:
        return gm.get_submodule(node.target)
    except AttributeError:
        return None


# ---------------------------------------------------------------------------------------------
# what a call looks like

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%",
            "matmul": "@", "pow": "**", "and_": "&", "or_": "|", "xor": "^", "lshift": "<<",
            "rshift": ">>", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==",
            "ne": "!="}
_UNARY = {"neg": "-", "pos": "+", "invert": "~"}
# operator -> the Tensor methods its runtime call may dispatch to
_OPERATOR_METHODS = {"truediv": ("div", "__rdiv__", "__rtruediv__"), "itruediv": ("div_",),
                     "floordiv": ("floor_divide", "__rfloordiv__"), "pow": ("pow", "__rpow__"),
                     "matmul": ("matmul", "__rmatmul__"), "neg": ("neg",), "abs": ("abs",),
                     "mod": ("remainder", "__rmod__")}


def _is_operator(target) -> bool:
    return getattr(target, "__module__", None) in ("_operator", "operator")


def _op_key(node: fx.Node) -> str:
    """The call's bare name: 'mean', 'exp', 'truediv', 'interpolate'."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    name = str(name)
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    return name[1:] if name.startswith("i") and name[1:] in _SYMBOLS else name


def _qualified(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if _is_operator(node.target):
        name = node.target.__name__
        key = name[1:] if name.startswith("i") and name[1:] in _SYMBOLS else name
        symbol = _SYMBOLS.get(key) or _UNARY.get(name)
        return f"operator {symbol}{'=' if key != name else ''}" if symbol else f"operator.{name}"
    return qtensor.op_name(node.target).replace("torch.nn.functional.", "F.")


def _defaults(func) -> dict:
    try:
        return {k: p.default for k, p in inspect.signature(func).parameters.items()
                if p.default is not inspect.Parameter.empty}
    except (TypeError, ValueError):
        return {}


def _render(node: fx.Node) -> str:
    """The call as code, tensors named x, y, z in order: ``x.mean(1)``, ``torch.exp(x)``."""
    names: dict[fx.Node, str] = {}

    def show(a) -> str:
        if isinstance(a, fx.Node):
            if a not in names:
                names[a] = "xyzuvw"[len(names)] if len(names) < 6 else f"t{len(names)}"
            return names[a]
        if isinstance(a, (list, tuple)):
            inner = ", ".join(show(v) for v in a)
            return f"[{inner}]" if isinstance(a, list) else \
                f"({inner}{',' if len(a) == 1 else ''})"
        if isinstance(a, slice):
            return ":".join("" if v is None else show(v) for v in (a.start, a.stop, a.step)
                            ).rstrip(":") or ":"
        if a is Ellipsis:
            return "..."
        if isinstance(a, torch.dtype):
            return str(a)
        return repr(a)

    defaults = _defaults(node.target) if node.op == "call_function" else {}
    args = [show(a) for a in node.args]
    args += [f"{k}={show(v)}" for k, v in node.kwargs.items()
             if not (k in defaults and not isinstance(v, (fx.Node, torch.Tensor))
                     and type(v) is type(defaults[k]) and v == defaults[k])]
    if node.op == "call_method":
        return f"{args[0]}.{node.target}({', '.join(args[1:])})" if args else node.target
    if _is_operator(node.target):
        name = node.target.__name__
        key = name[1:] if name.startswith("i") and name[1:] in _SYMBOLS else name
        if key in _SYMBOLS and len(args) == 2:
            return f"{args[0]} {_SYMBOLS[key]}{'=' if key != name else ''} {args[1]}"
        if name in _UNARY and len(args) == 1:
            return f"{_UNARY[name]}{args[0]}"
        if name == "getitem" and len(args) == 2:
            return f"{args[0]}[{args[1]}]"
    return f"{_qualified(node)}({', '.join(args)})"


# ---------------------------------------------------------------------------------------------
# what linger supports, read from its registries at call time


def _handled(func) -> bool:
    return func is not None and (func in qtensor.HANDLERS or func in calls.QUANTIZED_FUNCTIONS)


def _module_supported(cls: type) -> bool:
    return cls in registry.QUANTIZED or cls in registry.STATELESS


def _call_supported(node: fx.Node) -> bool:
    target = node.target
    if node.op == "call_method":
        return (target in calls.QUANTIZED_METHODS or target in trace.SCALAR_METHODS
                or target in qtensor.METADATA_FUNCTIONS or _handled(getattr(T, target, None)))
    if _handled(target) or target in (getattr, operator.getitem):
        return True
    if _is_operator(target):
        name = target.__name__
        candidates = [f"__{name}__", name, *_OPERATOR_METHODS.get(name, ())]
        if name.startswith("i"):  # in-place: a += b may run as __iadd__ or add_
            candidates += [f"__{name}__", f"{name[1:]}_"]
        return any(_handled(getattr(T, c, None)) for c in candidates)
    return getattr(target, "__name__", "") in qtensor.METADATA_FUNCTIONS


def _supported(thing) -> bool:
    """Whether a suggested alternative is supported right now."""
    if isinstance(thing, type):
        return _module_supported(thing)
    if isinstance(thing, str):
        return thing in calls.QUANTIZED_METHODS or _handled(getattr(T, thing, None))
    return _handled(thing)


def _first_supported(options) -> list[str]:
    return [label for label, thing in options if _supported(thing)]


# ---------------------------------------------------------------------------------------------
# suggested rewrites: shown only when what they suggest is supported when the check runs

_ACTIVATION_MODULES = [("nn.ReLU", nn.ReLU), ("nn.ReLU6", nn.ReLU6), ("nn.Hardtanh", nn.Hardtanh),
                       ("nn.PReLU", nn.PReLU), ("nn.Sigmoid", nn.Sigmoid), ("nn.Tanh", nn.Tanh),
                       ("nn.Hardswish", nn.Hardswish), ("nn.SiLU", nn.SiLU),
                       ("nn.GELU", nn.GELU)]
_ACTIVATION_CALLS = [("F.relu", F.relu), ("F.relu6", F.relu6), ("torch.clamp", torch.clamp),
                     ("torch.sigmoid", torch.sigmoid), ("torch.tanh", torch.tanh),
                     ("F.hardswish", F.hardswish), ("F.silu", F.silu), ("F.gelu", F.gelu)]
_NORM_MODULES = [("nn.BatchNorm1d/2d (statistics frozen, folded into the layer before)",
                  nn.BatchNorm2d), ("nn.LayerNorm", nn.LayerNorm)]
_RNN_FIX = ("nn.RNN has no integer kernel: use nn.GRU or nn.LSTM (GRUInt / LSTMInt; "
            "nn.GRUCell / nn.LSTMCell for single steps)")
_FLOAT_MATH = ("float math with no integer kernel on the device: if it does not depend on the "
               "input, compute it once in __init__ (a constant or weight); otherwise keep the "
               "module that calls it float (disable_submodel)")

CALL_FIXES: dict[str, tuple[str, tuple]] = {
    "exp": ("use torch.softmax (SoftmaxInt) where the exponentials are normalized",
            ((F.softmax, torch.softmax, "softmax"),)),
    "log": ("use F.log_softmax (LogSoftmaxInt) where the log follows a softmax",
            ((F.log_softmax, torch.log_softmax, "log_softmax"),)),
    "max": ("to reduce an axis, move it last and max-pool it: "
            "F.max_pool1d(x.transpose(dim, -1), x.size(dim)) (MaxPool); the indices that "
            "max(dim) returns have no integer version; elementwise max(a, b) is relu(a - b) + b",
            ((F.max_pool1d, F.max_pool2d),)),
    "mean": ("average with pooling (AvgPool2dInt): nn.AdaptiveAvgPool1d/2d(1) for a global "
             "mean, or move the axis last and use F.avg_pool1d(x, x.size(-1))",
             ((F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.avg_pool1d),)),
    "sum": ("average with pooling (nn.AdaptiveAvgPool1d/2d) and fold the element count into "
            "the next layer's weights", ((F.adaptive_avg_pool1d, F.adaptive_avg_pool2d),)),
    "var": ("normalize with a module: {norms}", ()),
    "truediv": ("multiply by the reciprocal (x * (1 / c) with a constant c), or fold the scale "
                "into the weights of the layer before", ()),
    "matmul": ("use nn.Linear when one operand is a weight matrix (LinearInt)", ((nn.Linear,),)),
    "sigmoid": ("use an activation linger quantizes: {activations}", ()),
    "interpolate": ("upsample with nn.ConvTranspose2d (stride = the scale factor; "
                    "ConvTranspose2dInt)", ((nn.ConvTranspose2d,),)),
    "zeros_like": ("build constant tensors in __init__ (register_buffer), not from quantized "
                   "tensors", ()),
    "where": ("data-dependent selection has no integer version: slice with fixed indices "
              "(x[:, a:b]) or multiply by a mask", ()),
    "argmax": ("indices have no integer version on the device: output the scores and take "
               "argmax/topk on the host, after the model", ()),
    "repeat": ("repeat by concatenating the tensor with itself (torch.cat, iqCat)",
               ((torch.cat,),)),
    "conv2d": ("use the nn.Conv1d/nn.Conv2d/nn.Linear module (its weight is quantized with it)",
               ()),
    "to_dtype": ("remove the dtype conversion: quantized tensors hold their integers' real "
                 "values in float32", ()),
    "exp_float": (_FLOAT_MATH, ()),
    "neg": ("fold the sign into the weights of the layer before, or subtract from a quantized "
            "tensor", ()),
    "3d": ("the device runs 1-D and 2-D kernels: fold the extra axis into batch or channels "
           "and use the 2-D op", ()),
    "pad": ("pad with zeros: F.pad(x, pads) (mode 'constant', value 0) or nn.ZeroPad2d",
            ((F.pad,),)),
    "adaptive_avg_pool2d": ("choose an output size that divides the input size (e.g. 1), or "
                            "use nn.AvgPool2d with an explicit kernel and stride",
                            ((F.avg_pool2d,),)),
}
_CALL_ALIASES = {
    "amax": "max", "min": "max", "amin": "max", "std": "var", "div": "truediv",
    "floordiv": "truediv", "reciprocal": "truediv", "floor_divide": "truediv", "bmm": "matmul",
    "mm": "matmul", "einsum": "matmul", "baddbmm": "matmul", "rdiv": "truediv",
    "rtruediv": "truediv", "log_softmax": "sigmoid", "softmax": "sigmoid",
    "tanh": "sigmoid", "gelu": "sigmoid", "silu": "sigmoid", "hardswish": "sigmoid",
    "hardsigmoid": "sigmoid", "elu": "sigmoid", "leaky_relu": "sigmoid", "softplus": "sigmoid",
    "mish": "sigmoid", "selu": "sigmoid", "celu": "sigmoid", "logsigmoid": "sigmoid",
    "softsign": "sigmoid", "glu": "sigmoid", "prelu": "sigmoid", "upsample": "interpolate",
    "upsample_nearest": "interpolate", "upsample_bilinear": "interpolate",
    "ones_like": "zeros_like", "full_like": "zeros_like", "rand_like": "zeros_like",
    "randn_like": "zeros_like", "new_zeros": "zeros_like", "new_ones": "zeros_like",
    "new_full": "zeros_like", "new_tensor": "zeros_like", "new_empty": "zeros_like",
    "masked_fill": "where", "masked_select": "where", "nonzero": "where",
    "index_select": "where", "gather": "where", "scatter": "where", "take": "where",
    "argmin": "argmax", "topk": "argmax", "sort": "argmax", "argsort": "argmax",
    "expand": "repeat", "expand_as": "repeat", "tile": "repeat", "repeat_interleave": "repeat",
    "conv1d": "conv2d", "linear": "conv2d", "layer_norm": "var", "group_norm": "var",
    "instance_norm": "var", "batch_norm": "var", "norm": "var",
    "int": "to_dtype", "long": "to_dtype", "half": "to_dtype", "double": "to_dtype",
    "bool": "to_dtype", "type": "to_dtype",
    "exp2": "exp_float", "expm1": "exp_float", "log2": "exp_float", "log10": "exp_float",
    "log1p": "exp_float", "sqrt": "exp_float", "rsqrt": "exp_float", "pow": "exp_float",
    "square": "exp_float", "sin": "exp_float", "cos": "exp_float", "tan": "exp_float",
    "atan": "exp_float", "atan2": "exp_float", "erf": "exp_float", "float_power": "exp_float",
    "abs": "exp_float", "sign": "exp_float", "floor": "exp_float", "ceil": "exp_float",
    "round": "exp_float", "conv3d": "3d", "max_pool3d": "3d", "avg_pool3d": "3d",
    "adaptive_avg_pool1d": "adaptive_avg_pool2d",
}

MODULE_FIXES: dict[str, tuple[str, tuple]] = {
    "RNN": (_RNN_FIX, ((nn.GRU,), (nn.LSTM,))),
    "RNNCell": (_RNN_FIX, ((nn.GRUCell,), (nn.LSTMCell,))),
    "LayerNorm": ("normalize with one of: {norms}", ()),
    "Sigmoid": ("use an activation linger quantizes: {activation_modules}", ()),
    "MultiheadAttention": ("write the attention out of nn.Linear, torch.bmm/matmul and softmax "
                           "(where linger supports them), or keep it float with "
                           "disable_module: [{name}]", ()),
    "Upsample": ("upsample with nn.ConvTranspose2d (stride = the scale factor)",
                 ((nn.ConvTranspose2d,),)),
    "Embedding": ("feed one-hot vectors to nn.Linear(bias=False) (LinearInt), or keep it float "
                  "with disable_module: [{name}]", ((nn.Linear,),)),
    "Conv3d": ("the device runs 1-D and 2-D kernels: fold the extra axis into batch or channels "
               "and use the 2-D module", ()),
    "ConvTranspose1d": ("use nn.ConvTranspose2d on x.unsqueeze(2) with kernel (1, k)",
                        ((nn.ConvTranspose2d,),)),
    "AdaptiveMaxPool2d": ("use nn.MaxPool2d with the input size as kernel (MaxPool)",
                          ((nn.MaxPool2d,),)),
    "ReflectionPad2d": ("pad with zeros (nn.ZeroPad2d) or let the conv pad",
                        ((nn.ZeroPad2d,),)),
    "AdaptiveAvgPool2d": ("choose an output size that divides the input size (e.g. 1), or "
                          "use nn.AvgPool2d with an explicit kernel and stride",
                          ((nn.AvgPool2d,),)),
}
_MODULE_ALIASES = {
    "GroupNorm": "LayerNorm", "InstanceNorm1d": "LayerNorm", "InstanceNorm2d": "LayerNorm",
    "LocalResponseNorm": "LayerNorm", "RMSNorm": "LayerNorm",
    **{n: "Sigmoid" for n in ("Tanh", "Softmax", "LogSoftmax", "GELU", "SiLU", "Hardswish",
                              "Hardsigmoid", "ELU", "LeakyReLU", "Softplus", "Mish", "SELU",
                              "CELU", "PReLU", "LogSigmoid", "Softsign", "Tanhshrink", "GLU",
                              "Softmax2d", "Threshold", "RReLU")},
    "TransformerEncoderLayer": "MultiheadAttention", "TransformerDecoderLayer":
        "MultiheadAttention", "TransformerEncoder": "MultiheadAttention",
    "TransformerDecoder": "MultiheadAttention", "Transformer": "MultiheadAttention",
    "UpsamplingNearest2d": "Upsample", "UpsamplingBilinear2d": "Upsample",
    "PixelShuffle": "Upsample", "EmbeddingBag": "Embedding", "ConvTranspose3d": "Conv3d",
    "MaxPool3d": "Conv3d", "AvgPool3d": "Conv3d", "BatchNorm3d": "Conv3d",
    "AdaptiveMaxPool1d": "AdaptiveMaxPool2d", "ReflectionPad1d": "ReflectionPad2d",
    "AdaptiveAvgPool1d": "AdaptiveAvgPool2d",
    "ReplicationPad1d": "ReflectionPad2d", "ReplicationPad2d": "ReflectionPad2d",
    "CircularPad1d": "ReflectionPad2d", "CircularPad2d": "ReflectionPad2d",
}


def _listing(options) -> str:
    found = _first_supported(options)
    return ", ".join(found) if found else "none yet in this linger version"


def _suggestion(table: dict, aliases: dict, key: str, **names) -> str | None:
    entry = table.get(aliases.get(key, key))
    if entry is None:
        return None
    text, needs = entry
    if not all(any(_supported(t) for t in alternatives) for alternatives in needs):
        return None
    return text.format(activations=_listing(_ACTIVATION_CALLS),
                       activation_modules=_listing(_ACTIVATION_MODULES),
                       norms=_listing(_NORM_MODULES), **names)


def _call_fix(node: fx.Node, scope: str) -> str:
    keep = (f"keep '{scope}' float with disable_submodel: [{scope}] (it trains; the model does "
            "not export)" if scope else "move it into a submodule and keep that float with "
            "disable_submodel (it trains; the model does not export)")
    text = _suggestion(CALL_FIXES, _CALL_ALIASES, _op_key(node))
    if text:
        return f"{text}; or {keep}"
    return f"rewrite it with ops linger quantizes (docs/linger.md, 'Module -> ONNX'), or {keep}"


def _module_fix(module: nn.Module, path: str) -> str:
    name = type(module).__name__
    keep = (f"keep it float with disable_module: [{name}] or disable_submodel: [{path}] "
            "(it trains; the model does not export)")
    text = _suggestion(MODULE_FIXES, _MODULE_ALIASES, name, name=name)
    if text:
        return text if "disable_module" in text else f"{text}; or {keep}"
    return f"replace it with modules linger quantizes, or {keep}"


# ---------------------------------------------------------------------------------------------
# the static part: modules, calls and device rules, from the traced graph


def _infrastructure(module: nn.Module) -> bool:
    """linger's own bookkeeping modules (locations, outputs, folded BatchNorms)."""
    return type(module).__module__.startswith(("linger.location", "linger.modules")) and \
        not isinstance(module, registry.QuantizedLayer)


def _data_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes computed from the model inputs (not only from parameters or constants)."""
    found: set[fx.Node] = set()
    for n in graph.nodes:
        if n.op in ("placeholder", "call_module") or \
                any(a in found for a in n.all_input_nodes):
            found.add(n)
    return found


def _static(gm: fx.GraphModule, device: DeviceProfile | None,
            module_errors: dict[str, Exception], report: CheckReport) -> set[str]:
    """Adds the static problems to ``report``; returns the names of the nodes they are at."""
    flagged: set[str] = set()
    scalars = trace._scalar_nodes(gm.graph)
    data = _data_nodes(gm.graph)
    seen: set[str] = set()
    flagged_modules: set[str] = set()
    for node in gm.graph.nodes:
        if node.op == "call_module":
            if node.target in seen:  # checked at its first call; every call runs in float
                if node.target in flagged_modules:
                    flagged.add(node.name)
                continue
            seen.add(node.target)
            module = gm.get_submodule(node.target)
            if _infrastructure(module) or isinstance(module, FloatReentry):
                continue
            where = _where(node, gm)
            if isinstance(module, FloatIsland):
                report.float_parts.append(f"{module.describe()} ({where['location']})")
                continue
            if isinstance(module, registry.QuantizedLayer):
                error = module_errors.get(node.target)
                if error is not None:
                    flagged.add(node.name)
                    flagged_modules.add(node.target)
                    rule, _, fix = str(error).partition("; ")
                    report.add(Problem(what=f"{registry.type_name(module)} '{node.target}'",
                                       rule=rule, fix=fix or "change its arguments",
                                       kind="module", path=node.target, **where))
                for v in _device_violations(module, device) if device is not None else ():
                    what, rule, fix = v.describe(device.name)
                    report.add(Problem(what=what, rule=rule, fix=fix, kind="device",
                                       path=v.path, **where))
                continue
            if type(module) in registry.STATELESS:
                continue
            flagged.add(node.name)
            flagged_modules.add(node.target)
            cls = type(module)
            qual = f"nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") else \
                cls.__qualname__
            report.add(Problem(what=f"{cls.__name__} '{node.target}'",
                               rule=f"linger has no quantized version of {qual}",
                               fix=_module_fix(module, node.target), kind="module",
                               path=node.target, **where))
        elif node.op in ("call_function", "call_method"):
            if node in scalars or node not in data or _call_supported(node):
                continue
            flagged.add(node.name)
            scope = trace.scope_of(node)
            rule = f"{_qualified(node)} has no quantized version in linger"
            report.add(Problem(what=f"`{_render(node)}`" + (f" in '{scope}'" if scope else ""),
                               rule=rule, fix=_call_fix(node, scope), kind="call", path=scope,
                               **_where(node, gm)))
    return flagged


def _device_violations(module: nn.Module, device: DeviceProfile) -> list[platforms.Violation]:
    """linger.platforms' rules for one quantized layer: conv geometry and bit widths."""
    path, settings = module.linger_path, getattr(module, "linger_settings", None)
    if settings is None:
        return []
    if isinstance(module, registry.WeightedLayer):
        name = registry.type_name(module)
        found = []
        if registry.float_type(module) in registry.CONVOLUTIONS:
            found += platforms.check_conv(path, module, device, name)
        return found + platforms.check_bits(path, name, device, settings.weight_bits,
                                            settings.activate_bits)
    name = getattr(module, "onnx_op", "") or "Quant"
    return platforms.check_bits(path, name, device, None, settings.activate_bits)


# ---------------------------------------------------------------------------------------------
# the example input: the training path (calibration), then the integer path export records


class _StopError(Exception):
    def __init__(self, node: fx.Node, error: BaseException):
        super().__init__(str(error))
        self.node, self.error = node, error


def _plain(v):
    return v.plain if isinstance(v, qtensor.QTensor) else v


def _requantized(v):
    """A float result carried on as a quantized tensor, so the rest of the model can run."""
    if isinstance(v, torch.Tensor) and not isinstance(v, qtensor.QTensor) and \
            v.is_floating_point():
        peak = float(v.detach().abs().max()) if v.numel() else 0.0
        return qtensor.QTensor.wrap(v.detach().float(), range_exponent(peak, 8), 8, exact=False)
    return v


def _float_call(interpreter: fx.Interpreter, node: fx.Node, args, kwargs):
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    module = interpreter.fetch_attr(node.target)
    if isinstance(module, FloatIsland):
        return module.module(*args, **kwargs)
    python_op = getattr(type(module), "python_op", None)
    if python_op is not None:
        return python_op(*args[:2])
    for base in type(module).__mro__:  # the torch.nn class a quantized module extends
        if base.__module__.startswith("torch.nn.modules") and base is not nn.Module:
            return base.forward(module, *args, **kwargs)
    return module(*args, **kwargs)


class _Probe(fx.Interpreter):
    """Runs the graph node by node; a node that fails (or was reported statically) is computed
    in float and its result quantized again, so the run goes on to find every problem."""

    def __init__(self, gm: fx.GraphModule, flagged: set[str], fallback: bool):
        super().__init__(gm)
        self.flagged, self.fallback = flagged, fallback
        self.failures: list[tuple[fx.Node, BaseException]] = []

    def run_node(self, n: fx.Node):
        if n.name in self.flagged:
            return self._float(n)
        try:
            return super().run_node(n)
        except _StopError:
            raise
        except Exception as exc:
            if not self.fallback:
                raise _StopError(n, exc) from exc
            self.failures.append((n, exc))
            return self._float(n)

    def _float(self, n: fx.Node):
        try:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            out = _float_call(self, n, tree_map(_plain, args), tree_map(_plain, kwargs))
        except Exception as exc:
            raise _StopError(n, exc) from exc
        return tree_map(_requantized, out)


def _run_problem(gm: fx.GraphModule, node: fx.Node, exc: BaseException, stage: str) -> Problem:
    module = _module_of(gm, node)
    if module is not None and not _infrastructure(module) and \
            not isinstance(module, (QInput, FloatIsland)):
        onnx_op = getattr(type(module), "onnx_op", "")
        path = getattr(module, "linger_path", "") or node.target
        what = f"{onnx_op or registry.type_name(module)} '{path}'"
    elif node.op in ("call_function", "call_method"):
        what = f"`{_render(node)}`"
    else:
        what = str(node.target) if node.op == "call_module" else node.name
    message = " ".join(str(exc).split())
    if isinstance(exc, LingerError):
        rule, _, fix = message.partition("; ")
        if not fix and node.op in ("call_function", "call_method"):
            fix = _suggestion(CALL_FIXES, _CALL_ALIASES, _op_key(node)) or ""
        elif not fix and module is not None:
            name = type(module).__name__
            fix = _suggestion(MODULE_FIXES, _MODULE_ALIASES, name, name=name) or ""
        fix = fix or "change the call so that linger can quantize it"
    else:
        rule = f"{type(exc).__name__}: {message}"
        fix = "the model must run on example_input: check its shape (batch first) and dtype"
    return Problem(what=what, rule=f"{stage}: {rule}", fix=fix, kind="run",
                   path=trace.scope_of(node), **_where(node, gm))


def _run_example(gm: fx.GraphModule, inputs: tuple, flagged: set[str],
                 report: CheckReport) -> None:
    was_training = gm.training
    gm.eval()
    try:
        probe = _Probe(gm, flagged, fallback=True)
        stopped = None
        with calibration(gm):
            try:
                probe.run(*inputs)
            except _StopError as stop:
                stopped = stop
        for node, exc in probe.failures:
            report.add(_run_problem(gm, node, exc, "fails on the example input"))
        if stopped is not None:
            report.add(_run_problem(gm, stopped.node, stopped.error,
                                    "fails on the example input"))
            report.not_checked.append("the ops after the failure above (the model could not "
                                      "run past it, even in float)")
            return
        if flagged or report.float_parts or any(p.kind != "device" for p in report.problems):
            report.not_checked.append(
                "export (the integer forward): the model keeps float parts"
                if report.float_parts else "export (the integer forward): it runs once the "
                "ops above are fixed")
            return
        _rehearse_export(gm, inputs, report)
    finally:
        gm.train(was_training)


def _rehearse_export(gm: fx.GraphModule, inputs: tuple, report: CheckReport) -> None:
    """The integer forward exactly as ``linger.onnx.export`` records it (which ops the device
    runs, and in which form, is tpacker's check: it rewrites some ops for some devices)."""
    probe = _Probe(gm, set(), fallback=False)
    rec = recorder.GraphRecorder(None, capture=False)
    names = ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]
    try:
        with recorder.recording(rec), torch.no_grad():
            for name, x in zip(names, inputs, strict=True):
                if isinstance(x, torch.Tensor):
                    rec.register_input(name, x)
            probe.run(*inputs)
    except _StopError as stop:
        report.add(_run_problem(gm, stop.node, stop.error, "export fails"))


__all__ = ["CALL_FIXES", "MODULE_FIXES", "CheckReport", "Problem", "check", "preflight"]
