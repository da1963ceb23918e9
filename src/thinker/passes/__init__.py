"""Graph rewrites, each a pure function Graph -> Graph, run as listed pipelines.

``GRAPH_PASSES`` are device independent; ``DEVICE_PASSES`` adapt the graph to a device
profile. Every pass can be skipped by name (``tpacker --skip NAME``). After each pass shapes
are re-inferred and constant subgraphs folded (``fold_constants``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from thinker.devices import DeviceProfile
from thinker.graph.ir import Graph
from thinker.graph.onnx_import import infer_shapes
from thinker.passes.decompose import decompose_glu, decompose_resize, widen_inputs
from thinker.passes.edges import remove_edge_quant
from thinker.passes.fuse import fuse_activations
from thinker.passes.kernel_split import (
    dilate_kernels,
    pad_excess,
    split_large_kernels,
    stride_slices,
)
from thinker.passes.reshape import canonical_reshapes, drop_identity, merge_reshapes
from thinker.passes.split import (
    split_conv_outputs,
    split_conv_rows,
    split_grouped_convs,
    split_linear_outputs,
)


def fold_constants(graph: Graph) -> Graph:
    """Evaluate every node whose inputs are all constants, once, into a constant."""
    g = graph.copy()
    infer_shapes(g)
    g.remove_unused()
    return g


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[..., Graph]
    description: str
    needs_device: bool = False


GRAPH_PASSES = [
    Pass("fold_constants", fold_constants, "evaluate constant subgraphs once"),
    Pass("remove_edge_quant", remove_edge_quant,
         "drop Quant/Dequant at graph inputs/outputs so I/O is integer"),
    Pass("fuse_activations", fuse_activations,
         "fold Relu/Clip into the conv/linear/iqAdd before it"),
    Pass("canonical_reshapes", canonical_reshapes,
         "Flatten/Squeeze/Unsqueeze and size-1 Transposes -> Reshape"),
    Pass("merge_reshapes", merge_reshapes, "a Reshape of a Reshape -> one Reshape"),
    Pass("drop_identity", drop_identity, "remove Reshapes/Slices that change nothing"),
]

DEVICE_PASSES = [
    Pass("decompose_glu", decompose_glu,
         "GluInt -> Split + iqSigmoid + iqMul (devices without GluInt)", True),
    Pass("decompose_resize", decompose_resize,
         "nearest Resize -> Unsqueeze + Concat + Reshape (devices without Resize)", True),
    Pass("widen_inputs", widen_inputs,
         "int8 inputs -> int16 (exact) where the device's sigmoid/tanh read int16", True),
    Pass("dilate_kernels", dilate_kernels,
         "dilations the device lacks -> undilated kernels with zero taps (exact)", True),
    Pass("stride_slices", stride_slices,
         "kernel smaller than the stride -> strided Slice + stride-1 conv (exact)", True),
    Pass("split_large_kernels", split_large_kernels,
         "kernels over the device's range -> blocks summed at 32 bits, one requant", True),
    Pass("pad_excess", pad_excess,
         "conv padding over the device's range -> zero Pad + conv (exact)", True),
    Pass("split_grouped_convs", split_grouped_convs,
         "grouped convs -> one conv per group (devices without grouped convs)", True),
    Pass("split_conv_outputs", split_conv_outputs,
         "convs over the weight limit -> parts along output channels", True),
    Pass("split_linear_outputs", split_linear_outputs,
         "linears over the weight limit -> parts along outputs", True),
    Pass("split_conv_rows", split_conv_rows,
         "convs over the input-slice limit -> horizontal bands", True),
]

ALL_PASSES = {p.name: p for p in GRAPH_PASSES + DEVICE_PASSES}


def run_pass(p: Pass, graph: Graph, device: DeviceProfile | None = None) -> Graph:
    g = p.run(graph, device) if p.needs_device else p.run(graph)
    infer_shapes(g)
    return g


__all__ = ["ALL_PASSES", "DEVICE_PASSES", "GRAPH_PASSES", "Pass", "fold_constants",
           "run_pass"]
