"""Device adaptation: rewrite ops the device cannot run as they are into several it can,
joined by Concat (same exponent, so no rescaling), all bit-exact by construction:

* split_grouped_convs: a grouped (not depthwise) conv on a device without grouped convs
  becomes one conv per group on a channel Slice of the input;
* split_conv_outputs: a conv whose aligned weight exceeds the device's limit is split along
  output channels (depthwise: along channels, slicing the input too);
* split_linear_outputs: the same for LinearInt along the output dimension;
* split_conv_rows: a conv whose input slice exceeds the limit is computed in horizontal bands,
  each reading its rows plus the halo the kernel needs.
"""

from __future__ import annotations

import math

import numpy as np

from thinker.devices import DeviceProfile
from thinker.errors import ThinkerDeviceError
from thinker.graph.ir import Graph, Node
from thinker.ops.conv import geometry
from thinker.passes.edit import add_constant, add_node, placeholder

CONVS = ("Conv1dInt", "Conv2dInt")


def align(v: int, a: int) -> int:
    a = max(int(a), 1)
    return (v + a - 1) // a * a


def weight_bits(node: Node) -> int:
    return int(node.attrs.get("parameter_bits") or 8)


def conv_weight_bytes(node: Node, w_shape, profile: DeviceProfile, out_channels=None) -> int:
    """Bytes of a conv's weight as the device stores it (channels aligned)."""
    o, cg = (out_channels or w_shape[0]), w_shape[1]
    k = int(np.prod(w_shape[2:]))
    bits = weight_bits(node)
    group = int(node.attrs.get("group", 1))
    if group > 1 and cg == 1 and group == w_shape[0]:  # depthwise
        return math.ceil(align(o, profile.conv.get("depthwise_align", 1)) * k * bits / 8)
    return math.ceil(align(o, profile.conv.get("align_out", 1))
                     * align(cg, profile.conv.get("align_in", 1)) * k * bits / 8)


def conv_input_slice_bytes(x_shape, strides, profile: DeviceProfile) -> int:
    """Bytes of one conv input as the device lays it out: ALIGN(C, align_in) * H *
    ALIGN(W, 8 * stride_w) (rows are processed in blocks of 8 outputs)."""
    c, h, w = x_shape[1], (x_shape[2] if len(x_shape) == 4 else 1), x_shape[-1]
    sw = strides[-1]
    return align(c, profile.conv.get("align_in", 1)) * h * align(w, 8 * sw)


def _concat(g: Graph, index: int, node: Node, parts: list[str], axis: int, out: str) -> int:
    add_node(g, index, "Concat", f"{node.name}_join", parts, [out], {"axis": axis})
    return index + 1


def _slice(g: Graph, index: int, base: str, src: str, axis: int, start: int, stop: int) -> str:
    t = g.tensors[src]
    shape = list(t.shape)
    shape[axis] = stop - start
    out = placeholder(g, base, t)
    consts = [add_constant(g, f"{base}_{k}", np.array(v, dtype=np.int64))
              for k, v in (("starts", [start]), ("ends", [stop]), ("axes", [axis]))]
    add_node(g, index, "Slice", base, [src, *consts], [out])
    return out


def _part(g: Graph, node: Node, index: int, k: int, inputs: list[str], attrs=None) -> str:
    out = placeholder(g, f"{node.outputs[0]}__part{k}", g.tensors[node.outputs[0]])
    add_node(g, index, node.op_type, f"{node.name}__part{k}", inputs, [out],
             {**node.attrs, **(attrs or {})})
    return out


def _weight_slices(g: Graph, node: Node, lo: int, hi: int, k: int) -> list[str]:
    w = g.tensors[node.inputs[1]].data
    names = [add_constant(g, f"{node.inputs[1]}__part{k}", w[lo:hi])]
    if len(node.inputs) > 2 and node.inputs[2]:
        names.append(add_constant(g, f"{node.inputs[2]}__part{k}",
                                  g.tensors[node.inputs[2]].data[lo:hi]))
    return names


def _replace_by_parts(g: Graph, node: Node, axis: int, parts: list[tuple]) -> None:
    """Replace ``node`` by one copy per part, joined by a Concat on ``axis`` that writes the
    original output name. A part is (input slice or None, weight range or None, attribute
    overrides); an input slice is (axis, start, stop), a weight range (lo, hi) over outputs."""
    index = g.nodes.index(node)
    g.nodes.remove(node)
    outputs = []
    for k, (in_slice, weight_range, attrs) in enumerate(parts):
        x = node.inputs[0]
        if in_slice is not None:
            x = _slice(g, index, f"{node.name}__in{k}", x, *in_slice)
            index += 1
        weights = _weight_slices(g, node, *weight_range, k) if weight_range else node.inputs[1:]
        outputs.append(_part(g, node, index, k, [x, *weights], attrs))
        index += 1
    _concat(g, index, node, outputs, axis, node.outputs[0])


def split_grouped_convs(graph: Graph, profile: DeviceProfile) -> Graph:
    if profile.conv.get("grouped", True):
        return graph
    g = graph.copy()
    for node in list(g.nodes):
        if node.op_type not in CONVS:
            continue
        groups = int(node.attrs.get("group", 1))
        w = g.tensors[node.inputs[1]]
        if groups == 1 or (w.shape[1] == 1 and w.shape[0] == groups):
            continue  # plain or depthwise: native
        og, cg = w.shape[0] // groups, w.shape[1]
        _replace_by_parts(g, node, 1, [((1, k * cg, (k + 1) * cg), (k * og, (k + 1) * og),
                                        {"group": 1}) for k in range(groups)])
    g.remove_unused()
    return g


def split_conv_outputs(graph: Graph, profile: DeviceProfile) -> Graph:
    limit = profile.conv.get("weight_bytes")
    if not limit:
        return graph
    g = graph.copy()
    for node in list(g.nodes):
        if node.op_type not in CONVS:
            continue
        w = g.tensors[node.inputs[1]]
        total = conv_weight_bytes(node, w.shape, profile)
        if total <= limit:
            continue
        o = w.shape[0]
        depthwise = int(node.attrs.get("group", 1)) == o and w.shape[1] == 1
        if int(node.attrs.get("group", 1)) > 1 and not depthwise:
            continue  # grouped convs are split per group first; the checks report the rest
        step = profile.conv.get("depthwise_align" if depthwise else "align_out", 1)
        per_part = max((limit // max(conv_weight_bytes(node, w.shape, profile, step), 1)) *
                       step, 0)
        if per_part < step:
            smallest = conv_weight_bytes(node, w.shape, profile, step)
            raise ThinkerDeviceError(
                f"{node.label()}: weight {total:,} B exceeds {profile.name} conv weight limit "
                f"{limit:,} B even after splitting into parts of {step} output channel(s) "
                f"({smallest:,} B each); reduce in_channels or kernel size")
        parts = []
        for lo in range(0, o, per_part):
            hi = min(lo + per_part, o)
            if depthwise:  # each part reads only its own channels
                parts.append(((1, lo, hi), (lo, hi), {"group": hi - lo}))
            else:
                parts.append((None, (lo, hi), {}))
        _replace_by_parts(g, node, 1, parts)
    g.remove_unused()
    return g


def split_linear_outputs(graph: Graph, profile: DeviceProfile) -> Graph:
    limit = profile.linear.get("weight_bytes")
    if not limit:
        return graph
    g = graph.copy()
    a_out, a_in = profile.linear.get("align_out", 1), profile.linear.get("align_in", 1)
    for node in list(g.nodes):
        if node.op_type != "LinearInt" or int(node.attrs.get("transB", 1)) != 1:
            continue
        o, k_in = g.tensors[node.inputs[1]].shape
        bits = weight_bits(node)
        row = math.ceil(align(k_in, a_in) * bits / 8)
        if align(o, a_out) * row <= limit:
            continue
        per_part = (limit // row) // a_out * a_out
        if per_part < 1:
            raise ThinkerDeviceError(
                f"{node.label()}: weight {align(o, a_out) * row:,} B exceeds {profile.name} "
                f"linear weight limit {limit:,} B even with {a_out} output(s) per part "
                f"({a_out * row:,} B); reduce in_features")
        rank = len(g.tensors[node.outputs[0]].shape)
        _replace_by_parts(g, node, rank - 1, [(None, (lo, min(lo + per_part, o)), {})
                                              for lo in range(0, o, per_part)])
    g.remove_unused()
    return g


def split_conv_rows(graph: Graph, profile: DeviceProfile) -> Graph:
    limit = profile.conv.get("input_slice_bytes")
    if not limit:
        return graph
    g = graph.copy()
    for node in list(g.nodes):
        if node.op_type != "Conv2dInt":
            continue
        x = g.tensors[node.inputs[0]]
        geo = geometry(node, g.tensors[node.inputs[1]].shape, 2)
        if conv_input_slice_bytes(x.shape, geo.strides, profile) <= limit:
            continue
        _, _, h, w = x.shape
        ho, _ = geo.conv_out(h, w)
        (kh, _), (sh, _), (dh, _) = geo.kernel, geo.strides, geo.dilations
        pt, pl, _, pr = geo.pads
        span = dh * (kh - 1) + 1

        def rows_needed(r0: int, r1: int, sh=sh, pt=pt, span=span, h=h) -> tuple[int, int]:
            """Input rows [a, b) that output rows [r0, r1) read (clipped to the input)."""
            return max(r0 * sh - pt, 0), min((r1 - 1) * sh - pt + span, h)

        row_bytes = conv_input_slice_bytes((1, x.shape[1], 1, w), geo.strides, profile)
        band = ho
        while band > 1:
            a, b = rows_needed(0, band)
            if (b - a) * row_bytes <= limit:
                break
            band -= 1
        a, b = rows_needed(0, band)
        if (b - a) * row_bytes > limit:
            raise ThinkerDeviceError(
                f"{node.label()}: input slice of one output row ({(b - a) * row_bytes:,} B) "
                f"exceeds {profile.name} conv input limit {limit:,} B; reduce channels or width")
        parts = []
        for r0 in range(0, ho, band):
            r1 = min(r0 + band, ho)
            a, b = rows_needed(r0, r1)
            top = max(pt - r0 * sh, 0)
            bottom = max((r1 - 1) * sh - pt + span - h, 0)
            parts.append(((2, a, b), None, {"pads": [top, pl, bottom, pr]}))
        _replace_by_parts(g, node, 2, parts)
    g.remove_unused()
    return g
