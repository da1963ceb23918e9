"""Graph -> ONNX (thinker dialect): for tpacker's intermediate dumps and subgraph cuts.

Integer graph inputs record their exponent in the model's metadata
(``thinker:exponent:<name>``) so the file re-imports with the same scales.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from thinker.graph.ir import Graph

STANDARD_OPS = {"Relu", "Clip", "MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze",
                "Unsqueeze", "Slice", "Split", "Concat", "Pad", "Gather", "PRelu", "Identity"}
EXPONENT_METADATA_PREFIX = "thinker:exponent:"


def to_onnx(graph: Graph) -> onnx.ModelProto:
    opset = max(int(graph.opset or 13), 11)
    nodes = []
    for n in graph.nodes:
        attrs = {}
        for k, v in n.attrs.items():
            if v is None or (k == "allowzero" and opset < 14):
                continue
            attrs[k] = v.tolist() if isinstance(v, np.ndarray) else v
        domain = "" if n.op_type in STANDARD_OPS else "thinker"
        nodes.append(helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name,
                                      domain=domain, **attrs))
    used = {x for n in graph.nodes for x in n.inputs if x} | set(graph.outputs)
    inits = [numpy_helper.from_array(np.asarray(t.data), name)
             for name, t in graph.tensors.items() if t.is_constant and name in used]

    def info(name: str) -> onnx.ValueInfoProto:
        t = graph.tensors[name]
        return helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), list(t.shape))

    g = helper.make_graph(nodes, graph.name, [info(n) for n in graph.inputs],
                          [info(n) for n in graph.outputs], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                                helper.make_opsetid("thinker", 1)],
                              producer_name="thinker")
    model.ir_version = min(model.ir_version, 8)
    for name in graph.inputs:
        exp = graph.tensors[name].exponent
        if exp is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = EXPONENT_METADATA_PREFIX + name, str(exp)
    return model
