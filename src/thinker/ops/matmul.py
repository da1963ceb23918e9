"""BmmInt: the integer product of two activations, x [..., M, K] @ y [..., K, N] (the leading
axes equal), rescaled once: ``rescale(x @ y, qx + qy - qo, o_bits)``. No bias. Attention
(``q @ k^T``, ``attn @ v``) and ``torch.matmul`` / ``@`` between activations export to it.

The accumulator is exact: float32 BLAS while K * max|x| * max|y| < 2**24, float64 below 2**53,
int64 otherwise.
"""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.ops.base import (
    REQUIRED,
    Op,
    exponent,
    input_exponent,
    int_dtype,
    magnitude_bound,
    out_bits,
    register,
    spec,
)
from thinker.ops.rounding import node_round_mode


@register
class BmmInt(Op):
    op_type = "BmmInt"
    attrs = {"scale_x": None, "scale_y": None, "scale_o": REQUIRED, "o_bits": 8,
             "data_bits": 8, "platform": None, "platform_quant": None, "quant_mode": None}
    min_inputs = max_inputs = 2

    def _dims(self, node, ins) -> tuple[int, int, int]:
        x, y = ins
        for t in (x, y):
            if not np.issubdtype(t.dtype, np.integer):
                raise ThinkerModelError(
                    f"{node.label()}: input {t.describe()} must be an integer tensor")
        if len(x.shape) < 2 or len(x.shape) != len(y.shape) or x.shape[:-2] != y.shape[:-2] \
                or x.shape[-1] != y.shape[-2]:
            raise ThinkerModelError(
                f"{node.label()}: inputs {x.describe()} and {y.describe()} must be [..., M, K] "
                "and [..., K, N] with the same leading axes")
        return x.shape[-2], x.shape[-1], y.shape[-1]

    def infer(self, node, ins):
        m, _, n = self._dims(node, ins)
        input_exponent(node, "scale_x", ins[0])
        input_exponent(node, "scale_y", ins[1])
        return [spec((*ins[0].shape[:-2], m, n), int_dtype(node, out_bits(node)),
                     exponent(node, "scale_o"))]

    def macs(self, node, ins, outs):
        m, k, n = self._dims(node, ins)
        return int(np.prod(ins[0].shape[:-2], dtype=np.int64)) * m * k * n

    def prepare(self, node, ins, outs):
        _, k, _ = self._dims(node, ins)
        shift = (input_exponent(node, "scale_x", ins[0]) + input_exponent(node, "scale_y", ins[1])
                 - exponent(node, "scale_o"))
        bits, dtype = out_bits(node), outs[0].dtype
        bound = k * magnitude_bound(ins[0].dtype) * magnitude_bound(ins[1].dtype)
        if bound >= 1 << 62 or abs(shift) > 62 or (shift < 0 and bound << -shift >= 1 << 62):
            raise ThinkerModelError(
                f"{node.label()}: K={k} products of {ins[0].dtype} x {ins[1].dtype} with "
                f"requantization shift {shift} would leave int64; re-export with narrower "
                "inputs or an output scale closer to the inputs'")
        if bound < qmath.FLOAT64_EXACT_LIMIT:
            work = qmath.float_dtype_for_bound(bound)

            def product(x, y):
                return np.matmul(x.astype(work), y.astype(work)).astype(np.int64)
        else:
            def product(x, y):
                return np.einsum("...mk,...kn->...mn", x.astype(np.int64), y.astype(np.int64))

        mode = node_round_mode(node)

        def run(x, y):
            return (qmath.rescale_mode(product(x, y), shift, bits, mode).astype(dtype),)

        return run
