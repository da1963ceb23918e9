"""LinearInt (y = x @ W^T + b on the last axis) and BatchNorm2dInt (y = x * alpha + beta per
channel); both finish with the shared accumulator output stage."""

from __future__ import annotations

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.ops.accumulate import OutputStage, accumulator_output_spec
from thinker.ops.base import REQUIRED, Op, Scratch, const_input, register
from thinker.ops.host_kernels import host_linear


@register
class LinearInt(Op):
    """Weight [O, K] (``transB=1``, linger's layout) or [K, O] (``transB=0``); input [..., K]."""

    op_type = "LinearInt"
    attrs = {
        "scale_x": REQUIRED, "scale_w": REQUIRED, "scale_o": None, "o_bits": None,
        "data_bits": 8, "parameter_bits": 8, "transA": 0, "transB": 1, "fused_clip": None,
        "act_type": 0, "quant_mode": None,
    }
    min_inputs, max_inputs = 2, 3

    def _dims(self, node, ins) -> tuple[int, int]:
        x, w = ins[0], ins[1]
        if int(node.attrs.get("transA", 0)) != 0:
            raise ThinkerModelError(f"{node.label()}: transA=1 is not supported")
        if len(w.shape) != 2:
            raise ThinkerModelError(f"{node.label()}: weight must be 2-D, got {w.describe()}")
        out_f, in_f = w.shape if int(node.attrs.get("transB", 1)) else w.shape[::-1]
        if not x.shape or x.shape[-1] != in_f:
            raise ThinkerModelError(
                f"{node.label()}: input {x.describe()} last axis must be {in_f} to match "
                f"weight {list(w.shape)}"
            )
        return out_f, in_f

    def infer(self, node, ins):
        out_f, _ = self._dims(node, ins)
        return [accumulator_output_spec(node, (*ins[0].shape[:-1], out_f))]

    def macs(self, node, ins, outs):
        return int(np.prod(outs[0].shape)) * self._dims(node, ins)[1]

    def prepare(self, node, ins, outs):
        out_f, in_f = self._dims(node, ins)
        w = const_input(node, ins, 1, "weight").astype(np.int64)
        w = w if int(node.attrs.get("transB", 1)) else w.T  # -> [O, K]
        bias = const_input(node, ins, 2, "bias") if len(ins) > 2 and ins[2] is not None else None
        stage = OutputStage(node, ins[0], int(np.abs(w).sum(axis=1).max(initial=0)), bias, outs[0])
        # [K + 1, O]: folded weights, then the folded bias (times a ones column of the input)
        wt = np.ascontiguousarray(np.concatenate(
            [stage.fold_weights(w.T), stage.folded_bias(out_f)[None]]))
        scratch = Scratch()
        compiled = host_linear(w, stage, ins[0].dtype)

        def run(x, *_):
            if compiled is not None:
                return (compiled(x),)
            lead = x.shape[:-1]
            rows = x.reshape(-1, in_f)
            xf, new = scratch.zeros("x", (rows.shape[0], in_f + 1), stage.float_dtype)
            if new:
                xf[:, in_f] = 1
            np.copyto(xf[:, :in_f], rows, casting="unsafe")  # exact: integers below 2**24
            y, _ = scratch.zeros("y", (rows.shape[0], out_f), stage.float_dtype)
            np.matmul(xf, wt, out=y)
            return (stage.finish_folded(y).reshape(*lead, out_f),)

        run.host = compiled  # thinker.runtime.host_chain
        return run


@register
class BatchNorm2dInt(Op):
    """Inputs x [N, C, ...], alpha [C] (int, at scale_w), beta [C] (int32 at qx + qw); any
    further inputs (running mean/var kept by some exporters) are ignored."""

    op_type = "BatchNorm2dInt"
    attrs = {
        "scale_x": REQUIRED, "scale_w": REQUIRED, "scale_o": None, "o_bits": 8,
        "data_bits": 8, "parameter_bits": 8, "fused_clip": None, "act_type": 0,
        "quant_mode": None,
    }
    min_inputs, max_inputs = 3, 5

    def infer(self, node, ins):
        x, alpha = ins[0], ins[1]
        if len(x.shape) < 2 or int(np.prod(alpha.shape)) != x.shape[1]:
            raise ThinkerModelError(
                f"{node.label()}: alpha {alpha.describe()} must have one value per channel of "
                f"input {x.describe()}"
            )
        return [accumulator_output_spec(node, x.shape)]

    def macs(self, node, ins, outs):
        return int(np.prod(outs[0].shape))

    def prepare(self, node, ins, outs):
        x = ins[0]
        alpha = const_input(node, ins, 1, "alpha").astype(np.int64).reshape(-1)
        beta = const_input(node, ins, 2, "beta").astype(np.int64).reshape(-1)
        channel_shape = (-1,) + (1,) * (len(x.shape) - 2)
        stage = OutputStage(node, x, int(np.abs(alpha).max(initial=0)), beta, outs[0])
        a = stage.fold_weights(alpha).reshape(channel_shape)
        b = stage.folded_bias(alpha.size).reshape(channel_shape)

        def run(xv, *_):
            y = xv.astype(stage.float_dtype) * a
            y += b
            return (stage.finish_folded(y),)

        return run
