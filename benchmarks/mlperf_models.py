"""Thinker-dialect twins of the MLPerf Tiny int8 models, for "same work" speed comparisons.

``twin_from_tflite(path)`` walks the .tflite operators in order and builds the same layers as a
quantized ONNX graph (NCHW): CONV_2D -> Conv2dInt, DEPTHWISE_CONV_2D -> Conv2dInt with
group = channels, ADD -> iqAdd, AVERAGE_POOL_2D -> AvgPool2dInt, RESHAPE -> Reshape,
FULLY_CONNECTED -> LinearInt; fused ReLU/ReLU6 become Relu/Clip nodes (tpacker fuses them).
TF's SAME padding becomes explicit (possibly asymmetric) pads. The final SOFTMAX is left out
(thinker's dialect has no integer softmax yet): both sides are timed without it... except
tflite-micro, whose graph keeps it (a few hundred operations, noise next to the convs).

Weights are random int8 (speed does not depend on their values) with power-of-two scales
chosen so activations stay in range; layer shapes, strides and pads are the file's.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tflite_reader import nchw, read_ops

Q_ACT, Q_W = 4, 7  # exponents of every activation and weight


def _same_pads(size: tuple[int, int], out: tuple[int, int], k: tuple[int, int],
               s: tuple[int, int]) -> list[int]:
    """TF SAME: total = max((out-1)*s + k - in, 0), the extra pixel at the bottom/right."""
    total = [max((o - 1) * st + kk - i, 0) for i, o, kk, st in zip(size, out, k, s, strict=True)]
    return [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]


def twin_from_tflite(path: str, seed: int = 0) -> tuple[onnx.ModelProto, dict]:
    """(thinker-dialect ONNX model with an int8 input, layer summary)."""
    rng = np.random.default_rng(seed)
    ops, input_id, input_shape = read_ops(path)
    nodes, inits = [], {}
    names = {input_id: "input"}
    shapes = {input_id: nchw(input_shape)}
    counts: dict[str, int] = {}

    def fresh(kind: str) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind]}"

    def thinker_node(op_type, inputs, out, **attrs):
        nodes.append(helper.make_node(op_type, inputs, [out], name=out, domain="thinker", **attrs))

    def activation(x: str, act: int) -> str:
        if act == 0:
            return x
        out = fresh("act")
        if act == 1:
            nodes.append(helper.make_node("Relu", [x], [out], name=out))
        else:  # ReLU6 at exponent Q_ACT
            lo, hi = fresh("lo"), fresh("hi")
            inits[lo], inits[hi] = np.int8(0), np.int8(min(127, 6 << Q_ACT))
            nodes.append(helper.make_node("Clip", [x, lo, hi], [out], name=out))
        return out

    for name, ins, ids, out_id, out_shape, opts in ops:
        if name == "SOFTMAX":
            names[out_id] = names[ids[0]]  # left out: see the module docstring
            shapes[out_id] = shapes[ids[0]]
            continue
        x = names[ids[0]]
        out = fresh(name.lower())
        o_shape = nchw(out_shape)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = ins[1]
            if name == "CONV_2D":
                weight = rng.integers(-20, 21, (w[0], w[3], w[1], w[2]), dtype=np.int8)
                group = 1
            else:
                weight = rng.integers(-20, 21, (w[3], 1, w[1], w[2]), dtype=np.int8)
                group = shapes[ids[0]][1]
            k = (w[1], w[2])
            pads = _same_pads(shapes[ids[0]][2:], o_shape[2:], k, opts["stride"]) \
                if opts["same"] else [0, 0, 0, 0]
            inits[out + ".w"] = weight
            inits[out + ".b"] = rng.integers(-2000, 2000, weight.shape[0], dtype=np.int32)
            thinker_node("Conv2dInt", [x, out + ".w", out + ".b"], out,
                         scale_x=2.0**Q_ACT, scale_w=2.0**Q_W, scale_o=2.0**Q_ACT, o_bits=8,
                         kernel_shape=list(k), strides=list(opts["stride"]), pads=pads,
                         dilations=[1, 1], group=group, data_bits=8, parameter_bits=8)
            out = activation(out, opts["act"])
        elif name == "ADD":
            thinker_node("iqAdd", [x, names[ids[1]]], out, scale_x=2.0**Q_ACT,
                         scale_y=2.0**Q_ACT, scale_o=2.0**Q_ACT, o_bits=8)
            out = activation(out, opts["act"])
        elif name == "AVERAGE_POOL_2D":
            pads = _same_pads(shapes[ids[0]][2:], o_shape[2:], opts["kernel"], opts["stride"]) \
                if opts["same"] else [0, 0, 0, 0]
            thinker_node("AvgPool2dInt", [x], out, kernel_shape=list(opts["kernel"]),
                         strides=list(opts["stride"]), pads=pads, scale_x=2.0**Q_ACT,
                         scale_o=2.0**Q_ACT, o_bits=8)
        elif name == "RESHAPE":
            inits[out + ".shape"] = np.array(o_shape, dtype=np.int64)
            nodes.append(helper.make_node("Reshape", [x, out + ".shape"], [out], name=out))
        elif name == "FULLY_CONNECTED":
            w = ins[1]
            inits[out + ".w"] = rng.integers(-20, 21, w, dtype=np.int8)
            inits[out + ".b"] = rng.integers(-2000, 2000, w[0], dtype=np.int32)
            thinker_node("LinearInt", [x, out + ".w", out + ".b"], out, scale_x=2.0**Q_ACT,
                         scale_w=2.0**Q_W, scale_o=2.0**Q_ACT, o_bits=8)
        else:
            raise ValueError(f"{path}: operator {name} has no thinker twin")
        names[out_id] = out
        shapes[out_id] = o_shape
    final = names[ops[-1][3]]
    graph = helper.make_graph(
        nodes, "twin", [helper.make_tensor_value_info("input", onnx.TensorProto.INT8,
                                                      list(nchw(input_shape)))],
        [onnx.ValueInfoProto(name=final)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("thinker", 1)])
    entry = model.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:input", str(Q_ACT)
    summary = {"ops": [o[0] for o in ops], "input": nchw(input_shape)}
    return model, summary


MLPERF = {
    "ResNet-8": "pretrainedResnet_quant.tflite",
    "DS-CNN": "kws_ref_model.tflite",
    "MobileNetV1-0.25": "vww_96_int8.tflite",
}
