"""fuse_activations: a Relu or Clip that is the only reader of a conv / linear / batchnorm
output, or of an iqAdd / iqSub / iqMul output (the residual add + ReLU of ResNets), becomes that
op's ``fused_clip = [lo, hi]`` (applied after rounding and saturation, which is exactly what the
separate op computed on the stored integers)."""

from __future__ import annotations

import math

import numpy as np

from thinker.graph.ir import Graph
from thinker.ops.activation import clip_bounds
from thinker.passes.edit import consumers_of

FUSABLE = {"Conv1dInt", "Conv2dInt", "ConvTranspose2dInt", "LinearInt", "BatchNorm2dInt"}
# integer element-wise ops whose kernels clamp their result by fused_clip (o_bits defaults to 8)
FUSABLE_ELEMENTWISE = {"iqAdd", "iqSub", "iqMul"}


def _bounds(graph: Graph, act) -> tuple[int, int] | None:
    if act.op_type == "Relu":
        return 0, 2**31 - 1
    ins = [graph.tensors[n] if n else None for n in act.inputs]
    lo, hi = clip_bounds(act, ins)
    lo = -(2**31) if lo == -math.inf else math.ceil(lo)
    hi = 2**31 - 1 if hi == math.inf else math.floor(hi)
    return lo, hi


def fuse_activations(graph: Graph) -> Graph:
    g = graph.copy()
    for node in list(g.nodes):
        if not (node.op_type in FUSABLE_ELEMENTWISE or
                (node.op_type in FUSABLE and node.attrs.get("o_bits") is not None)):
            continue
        out = node.outputs[0]
        users = consumers_of(g, out)
        if len(users) != 1 or out in g.outputs or users[0].op_type not in ("Relu", "Clip"):
            continue
        act = users[0]
        if not np.issubdtype(g.tensors[out].dtype, np.integer):
            continue
        lo, hi = _bounds(g, act)
        old = node.attrs.get("fused_clip")
        if old is not None:
            lo, hi = max(lo, int(old[0])), min(hi, int(old[1]))
        if int(node.attrs.get("act_type", 0) or 0) == 1:
            lo = max(lo, 0)
            node.attrs["act_type"] = 0
        node.attrs["fused_clip"] = [int(lo), int(hi)]
        node.outputs[0] = act.outputs[0]
        g.nodes.remove(act)
    g.remove_unused()
    return g
