"""Small builders for ONNX test models (thinker dialect and standard ops)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import thinker
from thinker.graph import import_model

THINKER_OPS = {
    "Quant", "Dequant", "Requant", "Conv1dInt", "Conv2dInt", "ConvTranspose2dInt", "LinearInt",
    "BatchNorm2dInt", "AvgPool2dInt", "iqAdd", "iqSub", "iqMul", "iqCat", "iqPad",
}


class Const:
    """Marks a node input that becomes an initializer."""

    def __init__(self, value):
        self.value = np.asarray(value)


def node(op_type: str, inputs, outputs, name: str = "", **attrs) -> onnx.NodeProto:
    domain = "thinker" if op_type in THINKER_OPS or op_type.startswith("Q") else ""
    return helper.make_node(op_type, inputs, outputs, name=name or f"{op_type}_node",
                            domain=domain, **attrs)


def value_info(name: str, array_or_dtype, shape=None) -> onnx.ValueInfoProto:
    if shape is None:
        arr = np.asarray(array_or_dtype)
        dtype, shape = arr.dtype, arr.shape
    else:
        dtype = np.dtype(array_or_dtype)
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), shape)


def model(nodes, inputs, outputs, initializers=None, opset: int = 13) -> onnx.ModelProto:
    """``inputs``/``outputs``: lists of ValueInfoProto (or names for outputs with no type)."""
    outs = [o if isinstance(o, onnx.ValueInfoProto) else onnx.ValueInfoProto(name=o)
            for o in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()]
    g = helper.make_graph(nodes, "test", inputs, outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                               helper.make_opsetid("thinker", 1)])


def single_op(op_type: str, inputs, n_outputs: int = 1, opset: int = 13, **attrs):
    """A model of one node; plain arrays become graph inputs, ``Const`` values initializers.
    Returns (model, feeds)."""
    names, feeds, graph_inputs, inits = [], {}, [], {}
    for i, value in enumerate(inputs):
        if value is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if isinstance(value, Const):
            inits[name] = value.value
        else:
            arr = np.asarray(value)
            feeds[name] = arr
            graph_inputs.append(value_info(name, arr))
    outs = [f"out{i}" for i in range(n_outputs)]
    m = model([node(op_type, names, outs, **attrs)], graph_inputs, outs, inits, opset)
    return m, feeds


def run_op(op_type: str, inputs, n_outputs: int = 1, opset: int = 13, **attrs):
    """Run one op through ONNX import and the numpy executor; a single output is returned
    bare, several as a list."""
    m, feeds = single_op(op_type, inputs, n_outputs, opset, **attrs)
    ex = thinker.load(import_model(m))
    out = ex.run(feeds)
    values = [out[f"out{i}"] for i in range(n_outputs)]
    return values[0] if n_outputs == 1 else values


def run_ort(m: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)
