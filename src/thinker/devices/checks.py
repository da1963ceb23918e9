"""Conventional checks: every op against the device profile's rules.

All violations are collected (not just the first) and worded as: op, node, rule, value, limit,
what to change.
"""

from __future__ import annotations

import numpy as np

from thinker.devices import DeviceProfile
from thinker.graph.ir import Graph, Node
from thinker.ops.conv import geometry
from thinker.ops.pool import PoolGeometry
from thinker.passes.split import align, conv_input_slice_bytes, conv_weight_bytes, weight_bits

CONV_OPS = ("Conv1dInt", "Conv2dInt", "ConvTranspose2dInt")


def _range(values, bounds) -> list[int]:
    lo, hi = bounds
    return [v for v in values if not lo <= v <= hi]


def _fmt(values) -> str:
    return "x".join(str(v) for v in values)


def check_conv(node: Node, g: Graph, dev: DeviceProfile) -> list[str]:
    rules, out = dev.conv, []
    x, w = g.tensors[node.inputs[0]], g.tensors[node.inputs[1]]
    spatial = 1 if node.op_type == "Conv1dInt" else 2
    geo = geometry(node, w.shape, spatial)
    kernel = geo.kernel[2 - spatial:]
    strides, dilations = geo.strides[2 - spatial:], geo.dilations[2 - spatial:]
    pads = [p for i, p in enumerate(geo.pads) if spatial == 2 or i in (1, 3)]
    label, name = node.label(), dev.name
    dilated = any(d > 1 for d in dilations)
    krange = rules.get("kernel_dilated" if dilated else "kernel")
    if krange and _range(kernel, krange):
        out.append(f"{label}: kernel {_fmt(kernel)} is outside {name} conv kernel range "
                   f"{krange[0]}..{krange[1]}{' (dilated)' if dilated else ''}; use kernels of "
                   f"at most {krange[1]} (e.g. stack smaller convs)")
    if "strides" in rules and any(s not in rules["strides"] for s in strides):
        out.append(f"{label}: stride {_fmt(strides)} is not supported on {name} (allowed "
                   f"{rules['strides']}); change the stride or pool separately")
    if "pads" in rules and _range(pads, rules["pads"]):
        out.append(f"{label}: pads {pads} are outside {name} conv pad range "
                   f"{rules['pads'][0]}..{rules['pads'][1]}; pad with a separate Pad op or "
                   "use a smaller padding")
    if "dilations" in rules and any(d not in rules["dilations"] for d in dilations):
        out.append(f"{label}: dilation {_fmt(dilations)} is not supported on {name} (allowed "
                   f"{rules['dilations']}); use dilation 1 or a device that supports it")
    if rules.get("kernel_at_least_stride") and any(k < s for k, s in
                                                   zip(kernel, strides, strict=True)):
        out.append(f"{label}: kernel {_fmt(kernel)} is smaller than stride {_fmt(strides)}, "
                   f"which {name} cannot run; use a kernel at least as large as the stride")
    if node.op_type != "ConvTranspose2dInt":
        group = int(node.attrs.get("group", 1))
        depthwise = group == w.shape[0] and w.shape[1] == 1
        if group > 1 and not depthwise and not rules.get("grouped", True):
            out.append(f"{label}: group {group} (not depthwise) is not supported on {name}; "
                       "it should have been split per group (do not skip split_grouped_convs)")
        limit = rules.get("weight_bytes")
        size = conv_weight_bytes(node, w.shape, dev)
        if limit and size > limit:
            out.append(f"{label}: weight {size:,} B exceeds {name} conv weight limit "
                       f"{limit:,} B; reduce out_channels or kernel size (or do not skip "
                       "split_conv_outputs)")
        slice_limit = rules.get("input_slice_bytes")
        if slice_limit and spatial == 2:
            size = conv_input_slice_bytes(x.shape, geo.strides, dev)
            if size > slice_limit:
                out.append(f"{label}: input slice {size:,} B exceeds {name} conv input limit "
                           f"{slice_limit:,} B; reduce channels or resolution (or do not skip "
                           "split_conv_rows)")
    return out


def check_linear(node: Node, g: Graph, dev: DeviceProfile) -> list[str]:
    limit = dev.linear.get("weight_bytes")
    if not limit:
        return []
    w = g.tensors[node.inputs[1]]
    o, k = w.shape if int(node.attrs.get("transB", 1)) else w.shape[::-1]
    size = align(o, dev.linear.get("align_out", 1)) * align(k, dev.linear.get("align_in", 1)) \
        * weight_bits(node) // 8
    if size > limit:
        return [f"{node.label()}: weight {size:,} B exceeds {dev.name} linear weight limit "
                f"{limit:,} B; reduce in/out features (or do not skip split_linear_outputs)"]
    return []


def check_pool(node: Node, g: Graph, dev: DeviceProfile) -> list[str]:
    rules, out = dev.pool, []
    geo = PoolGeometry(node, g.tensors[node.inputs[0]])
    if "kernel" in rules and _range(geo.kernel, rules["kernel"]):
        lo, hi = rules["kernel"]
        out.append(f"{node.label()}: pooling kernel {_fmt(geo.kernel)} is outside {dev.name} "
                   f"range {lo}..{hi}; pool in several steps")
    if "strides" in rules and _range(geo.strides, rules["strides"]):
        lo, hi = rules["strides"]
        out.append(f"{node.label()}: pooling stride {_fmt(geo.strides)} is outside "
                   f"{dev.name} range {lo}..{hi}")
    return out


def check_op_rules(node: Node, g: Graph, dev: DeviceProfile) -> list[str]:
    """The device's [op_rules.<OpType>] table: dtypes, fixed output exponents, axis limits,
    BmmInt's shift direction and right-matrix size."""
    rules = dev.rules(node.op_type)
    if not rules:
        return []
    from thinker.ops.base import exponent, input_exponent
    from thinker.ops.nonlinear import axis_of

    out, label, name = [], node.label(), dev.name
    ins = [g.tensors[i] for i in node.inputs if i]
    y = g.tensors[node.outputs[0]]
    activations = [t for t in ins if not t.is_constant]
    allowed = rules.get("input_dtypes")
    for t in activations if allowed else []:
        if np.dtype(t.dtype).name not in allowed:
            out.append(f"{label}: input {t.describe()} is {np.dtype(t.dtype).name}; {name} "
                       f"{node.op_type} reads {allowed}; quantize its input to one of them")
    allowed = rules.get("output_dtypes")
    if allowed and np.dtype(y.dtype).name not in allowed:
        out.append(f"{label}: output is {np.dtype(y.dtype).name}; {name} {node.op_type} writes "
                   f"{allowed}; export it with o_bits {[int(d[3:]) for d in allowed]}")
    fixed = rules.get("output_exponent", {}).get(np.dtype(y.dtype).name)
    if fixed is not None and exponent(node, "scale_o") != fixed:
        out.append(f"{label}: scale_o 2**{exponent(node, 'scale_o')} but {name} "
                   f"{node.op_type} writes {np.dtype(y.dtype).name} at 2**{fixed}; export it with "
                   f"scale_o = {2.0 ** fixed:g} (linger does)")
    x = ins[0]
    if "axis_max" in rules or rules.get("axis_last"):
        axis = axis_of(node, len(x.shape))
        if x.shape[axis] > rules.get("axis_max", x.shape[axis]):
            out.append(f"{label}: axis {axis} of {x.describe()} has {x.shape[axis]} elements, "
                       f"over the {name} limit {rules['axis_max']}; split the axis")
        if rules.get("axis_last") and axis != len(x.shape) - 1:
            out.append(f"{label}: axis {axis} is not the last axis of {x.describe()}; {name} "
                       f"{node.op_type} works on the last axis: transpose before and after")
    if rules.get("no_left_shift") and len(ins) > 1:
        shift = (input_exponent(node, "scale_x", ins[0]) + input_exponent(node, "scale_y", ins[1])
                 - exponent(node, "scale_o"))
        if shift < 0:
            out.append(f"{label}: scale_o is finer than scale_x * scale_y (shift {shift}); "
                       f"{name} {node.op_type} only shifts right: lower scale_o")
    if "rhs_bytes" in rules and len(ins) > 1:
        k, n = ins[1].shape[-2], ins[1].shape[-1]
        ak, an = rules.get("rhs_align", [1, 1])
        size = align(k, ak) * align(n, an) * np.dtype(ins[1].dtype).itemsize
        if size > rules["rhs_bytes"]:
            out.append(f"{label}: right matrix {size:,} B exceeds the {name} limit "
                       f"{rules['rhs_bytes']:,} B; use fewer rows/columns per product")
    return out


def _index_only(graph: Graph) -> set[str]:
    """Integer tensors read only as Gather indices (an embedding's int64 token ids): indices,
    not activations, so the activation dtypes do not apply."""
    readers = graph.consumers()
    return {name for name, users in readers.items()
            if users and np.issubdtype(graph.tensors[name].dtype, np.integer)
            and all(n.op_type == "Gather" and n.inputs.index(name) == 1
                    and n.inputs.count(name) == 1 for n in users)}


def check_graph(graph: Graph, dev: DeviceProfile) -> list[str]:
    """Every rule violation in the graph for this device (empty list: it fits)."""
    problems: list[str] = []
    unsupported = [n for n in graph.nodes if dev.supported_ops and
                   n.op_type not in dev.supported_ops]
    for n in unsupported:
        problems.append(f"{n.label()}: op {n.op_type} is not supported on {dev.name}")
    indices = _index_only(graph)
    for name, t in graph.tensors.items():
        if t.is_constant or name in indices:
            continue
        if np.dtype(t.dtype).name not in dev.activation_dtypes:
            problems.append(f"tensor '{name}': dtype {np.dtype(t.dtype).name} is not supported "
                            f"on {dev.name} (allowed {dev.activation_dtypes})")
    for node in graph.nodes:
        if node in unsupported:
            continue
        if node.op_type in CONV_OPS or node.op_type == "LinearInt":
            bits = weight_bits(node)
            if bits not in dev.weight_bits:
                problems.append(f"{node.label()}: {bits}-bit weights are not supported on "
                                f"{dev.name} (allowed {dev.weight_bits} bits); re-export with "
                                f"parameter_bits in {dev.weight_bits}")
        if node.op_type in CONV_OPS:
            problems += check_conv(node, graph, dev)
        elif node.op_type == "LinearInt":
            problems += check_linear(node, graph, dev)
        elif node.op_type in ("AvgPool2dInt", "MaxPool"):
            problems += check_pool(node, graph, dev)
        problems += check_op_rules(node, graph, dev)
    return problems
