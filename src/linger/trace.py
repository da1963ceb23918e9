"""torch.fx tracing of the user's forward, and the rewrites that make the traced graph
quantized.

The trace finds what module swapping alone cannot: which BatchNorm directly follows which
conv/linear (to fold it), and the +, -, * between tensors written in forward() (each gets an
output quantizer module, placed under the module whose forward wrote it). The rewritten graph
also quantizes every model input, turns quantized outputs back into float tensors, and tells
each op where it was written (for ONNX names and error messages).
"""

from __future__ import annotations

import operator
from collections import Counter

import torch.fx as fx
import torch.nn as nn

from linger.calls import QUANTIZED_FUNCTIONS, QUANTIZED_METHODS
from linger.config import Config
from linger.errors import LingerUnsupportedError
from linger.location import LocationMarker
from linger.modules import (
    FOLDED_BN,
    FOLDS_BN,
    ModelOutputs,
    QInput,
    float_type,
    is_linger_class,
    type_name,
)
from linger.modules.io import FloatIsland, FloatReentry
from linger.modules.rnn import RecurrentLayer

SCALAR_METHODS = {"size", "dim", "numel", "nelement", "ndimension"}
SCALAR_ATTRIBUTES = {"shape", "ndim", "dtype", "device"}


class LingerTracer(fx.Tracer):
    """torch.nn modules, linger modules and the given paths stay single calls (leaves)."""

    def __init__(self, leaf_paths=frozenset()):
        super().__init__()
        self.leaf_paths = set(leaf_paths)
        self.record_stack_traces = True  # node.meta['stack_trace']: file:line for linger.check

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return (module_qualified_name in self.leaf_paths
                or is_linger_class(type(m))
                or super().is_leaf_module(m, module_qualified_name))


def disabled_leaves(model: nn.Module, config: Config) -> list[str]:
    """Outermost modules that the config keeps float."""
    found: list[str] = []
    for path, module in model.named_modules():
        if path and config.is_disabled(path, type_name(module)) and \
                not any(path.startswith(p + ".") for p in found):
            found.append(path)
    return found


def trace(model: nn.Module, leaf_paths=()) -> fx.GraphModule:
    tracer = LingerTracer(set(leaf_paths))
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types for untraceable Python
        raise LingerUnsupportedError(
            f"linger traces {type(model).__name__}.forward with torch.fx and could not "
            f"({type(exc).__name__}: {exc}); remove data-dependent Python control flow from "
            "forward, or keep that submodule float with disable_submodel") from exc
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    # GraphModule rebuilds the module tree from plain nn.Modules holding only what forward
    # calls; put the model's own children back, so containers keep their type (indexing a
    # Sequential works) and the state dict keeps every entry of the float model
    for name, child in model.named_children():
        setattr(gm, name, child)
    gm.train(model.training)
    return gm


def find_bn_pairs(gm: fx.GraphModule, config: Config) -> dict[str, str]:
    """{conv/linear path: BatchNorm path} for every BatchNorm that only normalizes the output
    of the conv/linear right before it (both called once, channel counts equal)."""
    modules = dict(gm.named_modules())
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    pairs = {}
    for node in gm.graph.nodes:
        if node.op != "call_module" or float_type(modules[node.target]) not in FOLDED_BN:
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, fx.Node) or source.op != "call_module":
            continue
        layer, bn = modules[source.target], modules[node.target]
        if float_type(layer) not in FOLDS_BN or len(source.users) != 1 or \
                calls[source.target] != 1 or calls[node.target] != 1:
            continue
        channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        disabled = any(config.is_disabled(p, type_name(modules[p]))
                       for p in (source.target, node.target))
        if bn.num_features == channels and not disabled:
            pairs[source.target] = node.target
    return pairs


# ---------------------------------------------------------------------------------------------
# rewrites


def scope_of(node: fx.Node) -> str:
    """Path of the module whose forward() holds this node ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""  # values: (path, module type)


def free_path(gm: fx.GraphModule, scope: str, name: str) -> str:
    """``scope.name`` (with a numeric suffix if taken) for a new submodule."""
    parent = gm.get_submodule(scope) if scope and _exists(gm, scope) else gm
    candidate, k = name, 1
    while hasattr(parent, candidate):
        candidate, k = f"{name}_{k}", k + 1
    return f"{scope}.{candidate}" if scope else candidate


def _exists(gm: fx.GraphModule, path: str) -> bool:
    try:
        gm.get_submodule(path)
        return True
    except AttributeError:
        return False


def _scalar_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes that compute Python numbers (shapes and arithmetic on them), not tensors."""
    found: set[fx.Node] = set()

    def is_scalar(n: fx.Node) -> bool:
        if n.op == "call_method":
            return n.target in SCALAR_METHODS
        if n.op != "call_function":
            return False
        if n.target is getattr:
            return n.args[1] in SCALAR_ATTRIBUTES
        return bool(n.all_input_nodes) and all(a in found for a in n.all_input_nodes)

    for n in graph.nodes:
        if is_scalar(n):
            found.add(n)
    return found


def _state_only(gm: fx.GraphModule, node: fx.Node) -> bool:
    """A model input used only as the initial state of GRU/LSTM layers (hx, or inside the
    (h0, c0) tuple): the layer quantizes it itself, at its hidden exponent (h0) or as the int32
    Q15 cell (c0)."""
    if not node.users:
        return False
    for user in node.users:
        if user.op != "call_module" or \
                not isinstance(gm.get_submodule(user.target), RecurrentLayer):
            return False
        if (user.args[0] if user.args else user.kwargs.get("input")) is node:
            return False
    return True


def quantize_inputs(gm: fx.GraphModule, config: Config) -> None:
    """A QInput (Quant) right after every model input (except initial RNN states, which the
    GRU/LSTM layer quantizes at its own exponents)."""
    for node in list(gm.graph.nodes):
        if node.op != "placeholder" or _state_only(gm, node):
            continue
        path = free_path(gm, "", f"{node.name}_quant")
        gm.add_submodule(path, QInput(path, config.layer(path, "input")))
        with gm.graph.inserting_after(node):
            quantized = gm.graph.call_module(path, (node,))
        node.replace_all_uses_with(quantized,
                                   delete_user_cb=lambda user, q=quantized: user is not q)


def quantize_calls(gm: fx.GraphModule, config: Config) -> None:
    """Every traced call registered with ``quantized_call`` (+, -, * between tensors, ...)
    becomes a call of its own quantizer module."""
    scalars = _scalar_nodes(gm.graph)
    for node in list(gm.graph.nodes):
        if node.op == "call_function":
            entry = QUANTIZED_FUNCTIONS.get(node.target)
        elif node.op == "call_method":
            entry = QUANTIZED_METHODS.get(node.target)
        else:
            entry = None
        if entry is None or node in scalars:
            continue
        cls, type_name = entry
        scope = scope_of(node)
        path = free_path(gm, scope, node.name)
        gm.add_submodule(path, cls(path, config.layer(path, type_name)))
        with gm.graph.inserting_before(node):
            replacement = gm.graph.call_module(path, node.args, node.kwargs)
        replacement.meta = dict(node.meta)
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)


def requantize_float_outputs(gm: fx.GraphModule) -> None:
    """What a float part (FloatIsland) returns re-enters the quantized part through its own
    FloatReentry quantizer, as a model input does: one per value the quantized part uses
    (indexing its tuple outputs stays float; graph outputs and other float parts need none)."""
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and _is_island(gm, node):
            _requantize_uses(gm, node, gm.get_submodule(node.target))


def _is_island(gm: fx.GraphModule, node: fx.Node) -> bool:
    return node.op == "call_module" and isinstance(gm.get_submodule(node.target), FloatIsland)


def _requantize_uses(gm: fx.GraphModule, value: fx.Node, island: FloatIsland) -> None:
    consumers = []
    for user in list(value.users):
        if user.op == "call_function" and user.target is operator.getitem and \
                user.args[0] is value:
            _requantize_uses(gm, user, island)
        elif user.op != "output" and not _is_island(gm, user):
            consumers.append(user)
    if not consumers:
        return
    scope, _, name = island.linger_path.rpartition(".")
    path = free_path(gm, scope, f"{name}_requant")
    gm.add_submodule(path, FloatReentry(path, island.linger_settings))
    with gm.graph.inserting_after(value):
        quantized = gm.graph.call_module(path, (value,))
    quantized.meta = dict(value.meta)
    for user in consumers:
        user.replace_input_with(value, quantized)


def announce_locations(gm: fx.GraphModule) -> None:
    """Before each op, record where it was written (module path, or scope.op_name)."""
    marker = free_path(gm, "", "linger_location")
    gm.add_submodule(marker, LocationMarker())
    for node in list(gm.graph.nodes):
        if node.op not in ("call_function", "call_method", "call_module"):
            continue
        if node.op == "call_module":
            label = node.target
        else:
            scope = scope_of(node)
            label = f"{scope}.{node.name}" if scope else node.name
        with gm.graph.inserting_before(node):
            gm.graph.call_module(marker, (label,))


def finish_graph_outputs(gm: fx.GraphModule) -> None:
    """Model outputs leave as float tensors (Dequant when exporting)."""
    path = free_path(gm, "", "linger_outputs")
    gm.add_submodule(path, ModelOutputs())
    output = next(n for n in gm.graph.nodes if n.op == "output")
    with gm.graph.inserting_before(output):
        finished = gm.graph.call_module(path, (output.args[0],))
    output.args = (finished,)
