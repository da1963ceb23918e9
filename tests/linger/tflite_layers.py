"""The conv / depthwise / dense layers of a TFLite flatbuffer in execution order, with weight
and output shapes in PyTorch's layout, to compare zoo models with the MLPerf Tiny files."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "benchmarks"))

from tflite_reader import nchw, read_ops

WEIGHTED = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense"}


def weighted_layers(path: str) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """[(kind, weight shape, output shape)] with kind in conv / depthwise / dense."""
    layers = []
    for name, ins, _ids, _out_id, out_shape, _opts in read_ops(path)[0]:
        kind = WEIGHTED.get(name)
        if kind is None:
            continue
        weight = ins[1]
        if kind == "conv":  # [O, kh, kw, I] -> [O, I, kh, kw]
            weight = (weight[0], weight[3], weight[1], weight[2])
        elif kind == "depthwise":  # [1, kh, kw, C] -> [C, 1, kh, kw]
            weight = (weight[3], 1, weight[1], weight[2])
        layers.append((kind, weight, nchw(out_shape)))
    return layers
