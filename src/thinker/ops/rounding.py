"""Which ops honour a node's rounding mode (``quant_mode``: floor_add, floor, round, ceil).

The mode chooses how an op rounds its *output activation* onto the output exponent, as the
original linger's output quantizer did (docs/ops.md, "Rounding modes"):

* ``Quant``: ``round(x * 2**q)``;
* ``Requant`` and the output stage of ``Conv1dInt``, ``Conv2dInt``, ``ConvTranspose2dInt``,
  ``LinearInt``, ``BatchNorm2dInt``, ``BmmInt``: the right shift of the accumulator
  ``acc / 2**(qx + qw - qo)``;
* ``iqAdd`` / ``iqSub`` / ``iqCat``: the rescale of each input to the output exponent;
  ``iqMul``: the rescale of the exact product;
* ``AvgPool2dInt``: the exact quotient ``sum * 2**(qo - qx) / divisor``.

Left shifts and shifts by 0 round nothing, so every mode gives the same integers there.
Every other op (the fixed-point kernels of sigmoid, tanh, softmax, layernorm, ..., iqDiv, the
reductions, PRelu) rounds inside its own algorithm and accepts only ``floor_add``.
"""

from __future__ import annotations

from thinker import qmath
from thinker.graph.ir import Node

MODE_OPS = frozenset({
    "Quant", "Requant", "Conv1dInt", "Conv2dInt", "ConvTranspose2dInt", "LinearInt",
    "BatchNorm2dInt", "BmmInt", "iqAdd", "iqSub", "iqMul", "iqCat", "AvgPool2dInt",
})


def node_round_mode(node: Node) -> str:
    """The node's rounding mode (``floor_add`` when it has no ``quant_mode``)."""
    return qmath.check_round_mode(node.attrs.get("quant_mode"),
                                  f"{node.label()} attribute quant_mode")


def mode_problem(node: Node) -> str | None:
    """Why the node's ``quant_mode`` cannot be honoured, or None."""
    mode = node.attrs.get("quant_mode")
    if isinstance(mode, bytes):
        mode = mode.decode("utf-8", "replace")
    if mode is None or mode == qmath.DEFAULT_ROUND_MODE:
        return None
    if mode not in qmath.ROUND_MODES:
        return (f"{node.label()}: quant_mode '{mode}' is not a rounding mode; use one of "
                f"{', '.join(qmath.ROUND_MODES)}")
    if node.op_type not in MODE_OPS:
        return (f"{node.label()}: quant_mode '{mode}' is not supported on {node.op_type}, which "
                "rounds inside its own fixed-point kernel (floor_add); rounding modes apply to "
                f"{', '.join(sorted(MODE_OPS))}: re-export this layer with round_mode "
                "floor_add")
    return None
