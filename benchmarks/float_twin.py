"""Build a float32 ONNX "twin" of a quantized thinker Graph: same layers and shapes, weights
dequantized, so onnxruntime can run the same work in float as a speed peer."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from thinker import qmath
from thinker.graph.ir import Graph, Node

PASS_THROUGH = {"Quant", "Dequant", "Requant"}
SAME_NAME = {"Relu", "MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
             "Slice", "Split", "Concat", "Pad", "Gather", "Clip"}
GEOMETRY = ("kernel_shape", "strides", "pads", "dilations", "group", "output_padding")


def _dequantized(graph: Graph, node: Node, index: int, q: int) -> np.ndarray:
    data = graph.tensors[node.inputs[index]].data
    return (data.astype(np.float64) * qmath.scale_of_exponent(-q)).astype(np.float32)


def build_float_twin(graph: Graph) -> onnx.ModelProto:
    """The float32 twin; it runs any batch size (a Reshape to the static batch keeps the
    input's batch instead)."""
    nodes, inits = [], []
    first = graph.tensors[graph.inputs[0]].shape if graph.inputs else ()
    batch = first[0] if first else None

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    for node in graph.nodes:
        a, ins, outs = node.attrs, node.inputs, node.outputs
        op = node.op_type
        if op in PASS_THROUGH:
            nodes.append(helper.make_node("Identity", ins[:1], outs))
        elif op in SAME_NAME:
            keep = {k: v for k, v in a.items() if v is not None and k in
                    ("perm", "axis", "axes", "kernel_shape", "strides", "pads", "ceil_mode",
                     "mode", "split")}
            for i, name in enumerate(ins):
                t = graph.tensors.get(name)
                if i > 0 and t is not None and t.data is not None and name not in \
                        {x.name for x in inits}:
                    data = t.data
                    if op == "Reshape" and i == 1 and data.size and data[0] == batch:
                        data = data.copy()  # 0: keep the input's batch (any batch size)
                        data[0] = 0
                    const(name, data)
            nodes.append(helper.make_node(op, ins, outs, **keep))
        elif op in ("Conv2dInt", "Conv1dInt", "ConvTranspose2dInt", "LinearInt"):
            qx, qw = qmath.exponent_of_scale(a["scale_x"]), qmath.exponent_of_scale(a["scale_w"])
            w = const(ins[1] + "_f", _dequantized(graph, node, 1, qw))
            args = [ins[0], w]
            if len(ins) > 2 and ins[2]:
                args.append(const(ins[2] + "_f", _dequantized(graph, node, 2, qx + qw)))
            if op == "LinearInt":
                nodes.append(helper.make_node("Gemm", args, outs, transB=1))
            else:
                geo = {k: a[k] for k in GEOMETRY if a.get(k) is not None}
                kind = "ConvTranspose" if op == "ConvTranspose2dInt" else "Conv"
                nodes.append(helper.make_node(kind, args, outs, **geo))
        elif op in ("iqAdd", "iqSub", "iqMul"):
            nodes.append(helper.make_node({"iqAdd": "Add", "iqSub": "Sub", "iqMul": "Mul"}[op],
                                          ins, outs))
        elif op == "iqCat":
            axis = a.get("dim") if a.get("dim") is not None else a.get("axis", 1)
            nodes.append(helper.make_node("Concat", ins, outs, axis=int(axis)))
        elif op == "AvgPool2dInt":
            geo = {k: a[k] for k in ("kernel_shape", "strides", "pads", "ceil_mode")
                   if a.get(k) is not None}
            nodes.append(helper.make_node("AveragePool", ins, outs, count_include_pad=1, **geo))
        elif op == "BatchNorm2dInt":
            qx, qw = qmath.exponent_of_scale(a["scale_x"]), qmath.exponent_of_scale(a["scale_w"])
            shape = (-1,) + (1,) * (len(graph.tensors[ins[0]].shape) - 2)
            mul = const(ins[1] + "_f", _dequantized(graph, node, 1, qw).reshape(shape))
            add = const(ins[2] + "_f", _dequantized(graph, node, 2, qx + qw).reshape(shape))
            nodes.append(helper.make_node("Mul", [ins[0], mul], [outs[0] + "_m"]))
            nodes.append(helper.make_node("Add", [outs[0] + "_m", add], outs))
        else:
            raise NotImplementedError(f"float twin has no mapping for {op}")

    def value_info(name: str):
        t = graph.tensors[name]
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *t.shape[1:]])

    g = helper.make_graph(nodes, graph.name + "_float", [value_info(n) for n in graph.inputs],
                          [value_info(n) for n in graph.outputs], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
