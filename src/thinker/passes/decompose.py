"""Device adaptation by exact rewrites: ops the device lacks, or takes only in another form,
become ops it has, with the same integers by construction.

* widen_inputs: an int8 input of iqSigmoid / iqTanh where the device reads int16 (venus) gets a
  Requant to int16 at exponent + 8 (exact: a left shift by 8). Both ops start by converting the
  input's real value to their kernel format with one exact rational rounding, so the finer
  representation of the same value gives the same result.
* decompose_glu: GluInt on a device without it -> Split + iqSigmoid (scale_o 2**15, o_bits 32)
  + iqMul, which is GluInt's definition (thinker.ops.nonlinear.glu).
* decompose_resize: nearest Resize by integer factors on a device without it -> per upsampled
  axis Unsqueeze + Concat of copies + Reshape (pure data movement).
"""

from __future__ import annotations

import numpy as np

from thinker.devices import DeviceProfile
from thinker.graph.ir import Graph
from thinker.ops.base import exponent, input_exponent
from thinker.ops.nonlinear import GLU_SIGMOID_Q, axis_of
from thinker.ops.resize import resize_factors
from thinker.passes.edit import add_constant, add_node, placeholder

WIDENABLE = ("iqSigmoid", "iqTanh")
WIDER = {"int8": ("int16", 8)}


def widen_inputs(graph: Graph, device: DeviceProfile) -> Graph:
    g = graph.copy()
    for node in list(g.nodes):
        allowed = device.rules(node.op_type).get("input_dtypes")
        if node.op_type not in WIDENABLE or not allowed:
            continue
        x = g.tensors[node.inputs[0]]
        dtype = np.dtype(x.dtype).name
        wider = WIDER.get(dtype)
        if dtype in allowed or wider is None or wider[0] not in allowed:
            continue
        q = input_exponent(node, "scale_x", x)
        widened = placeholder(g, f"{node.inputs[0]}_{wider[0]}", x)
        add_node(g, g.nodes.index(node), "Requant", f"{node.name}_widen", [node.inputs[0]],
                 [widened], {"scale_x": 2.0 ** q, "scale_o": 2.0 ** (q + wider[1]),
                             "data_bits": 8, "o_bits": int(wider[0][3:])})
        node.inputs[0] = widened
        node.attrs["scale_x"] = 2.0 ** (q + wider[1])
        node.attrs["data_bits"] = int(wider[0][3:])
    return g


def decompose_glu(graph: Graph, device: DeviceProfile) -> Graph:
    if not device.supported_ops or "GluInt" in device.supported_ops:
        return graph
    g = graph.copy()
    for node in [n for n in g.nodes if n.op_type == "GluInt"]:
        x = g.tensors[node.inputs[0]]
        axis = axis_of(node, len(x.shape))
        qx = input_exponent(node, "scale_x", x)
        index = g.nodes.index(node)
        g.nodes.remove(node)
        half = x.shape[axis] // 2
        sizes = add_constant(g, f"{node.name}_halves", np.array([half, half], dtype=np.int64))
        a, b = placeholder(g, f"{node.name}_a", x), placeholder(g, f"{node.name}_b", x)
        gate = placeholder(g, f"{node.name}_gate", x)
        platform = {k: node.attrs[k] for k in ("platform", "platform_quant")
                    if node.attrs.get(k) is not None}
        add_node(g, index, "Split", f"{node.name}_split", [node.inputs[0], sizes], [a, b],
                 {"axis": axis})
        add_node(g, index + 1, "iqSigmoid", f"{node.name}_sigmoid", [b], [gate],
                 {"scale_x": 2.0 ** qx, "scale_o": 2.0 ** GLU_SIGMOID_Q, "o_bits": 32,
                  **platform})
        add_node(g, index + 2, "iqMul", f"{node.name}_mul", [a, gate], list(node.outputs),
                 {"scale_x": 2.0 ** qx, "scale_y": 2.0 ** GLU_SIGMOID_Q,
                  "scale_o": 2.0 ** exponent(node, "scale_o"),
                  "o_bits": int(node.attrs.get("o_bits", 8))})
    return g


def decompose_resize(graph: Graph, device: DeviceProfile) -> Graph:
    if not device.supported_ops or "Resize" in device.supported_ops:
        return graph
    g = graph.copy()
    for node in [n for n in g.nodes if n.op_type == "Resize"]:
        ins = [g.tensors[i] if i else None for i in node.inputs]
        factors = resize_factors(node, ins)
        index = g.nodes.index(node)
        g.nodes.remove(node)
        current, shape = node.inputs[0], list(ins[0].shape)
        steps = [(axis, f) for axis, f in enumerate(factors) if f > 1]
        for k, (axis, f) in enumerate(steps):
            like = g.tensors[node.inputs[0]]
            expanded = placeholder(g, f"{node.name}_axis{axis}_unsqueezed", like)
            copies = placeholder(g, f"{node.name}_axis{axis}_copies", like)
            last = k == len(steps) - 1
            merged = node.outputs[0] if last else placeholder(g, f"{node.name}_axis{axis}", like)
            axes = add_constant(g, f"{node.name}_axis{axis}_axes",
                                np.array([axis + 1], dtype=np.int64))
            shape[axis] *= f
            target = add_constant(g, f"{node.name}_axis{axis}_shape",
                                  np.array(shape, dtype=np.int64))
            add_node(g, index, "Unsqueeze", f"{node.name}_unsqueeze{axis}", [current, axes],
                     [expanded])
            add_node(g, index + 1, "Concat", f"{node.name}_repeat{axis}", [expanded] * f,
                     [copies], {"axis": axis + 1})
            add_node(g, index + 2, "Reshape", f"{node.name}_merge{axis}", [copies, target],
                     [merged])
            index, current = index + 3, merged
        if not steps:
            add_node(g, index, "Reshape", f"{node.name}_same", [current, add_constant(
                g, f"{node.name}_shape", np.array(shape, dtype=np.int64))], list(node.outputs))
    return g
