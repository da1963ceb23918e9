"""Quantized nn.MultiheadAttention: LinearInt projections, shape ops, BmmInt, SoftmaxInt.

For query [N, L, E] (``batch_first``; [L, N, E] otherwise), H heads of d = E / H::

    q = LinearInt_q(query)   with 1/sqrt(d) folded into its weight and bias
    k = LinearInt_k(key),  v = LinearInt_v(value)
    q, k, v -> Reshape [.., H, d] -> Transpose: q [N, H, L, d], k [N, H, d, S], v [N, H, S, d]
    scores  = BmmInt(q, k)                 learned exponent
    weights = SoftmaxInt(scores, axis=-1)  exponent bits - 1
    context = BmmInt(weights, v)           learned exponent
    context -> Transpose -> Reshape [N, L, E] (or [L, N, E]) -> out_proj (LinearInt)

Each projection has its own output quantizer (``q_proj``, ``k_proj``, ``v_proj``,
``out_proj``), as do the two products (``scores_quantizer``, ``context_quantizer``); the float
parameters keep their names (``in_proj_weight``, ``out_proj.weight``, ...). Attention masks,
``add_bias_kv`` and ``add_zero_attn`` are refused; the attention weights are not returned
(the second result is None, whatever ``need_weights`` says).
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger.config import LayerSettings
from linger.errors import LingerUnsupportedError
from linger.fakequant import fake_quantize
from linger.functional import nonlinear as fn
from linger.location import set_location
from linger.modules.base import WeightedLayer
from linger.modules.linear import QLinear
from linger.modules.nonlinear import NonlinearLayer
from linger.qtensor import QTensor, require_qtensor
from linger.quantizer import ActivationQuantizer


class AttentionProjection(WeightedLayer, nn.Module):
    """One of the q/k/v projections: a LinearInt on (a slice of) the attention's in_proj
    parameters, which the attention passes in."""

    onnx_op = "LinearInt"
    channel_axis = -1

    def __init__(self, path: str, settings: LayerSettings):
        super().__init__()
        self.linger_setup(path, settings)

    def accumulate(self, x, w):
        return F.linear(x, w)

    def project(self, x: QTensor, w, b) -> QTensor:
        if self.exact_mode():
            return self._forward_exact(x, w, b)
        return self._forward_train(x, w, b)


class QMultiheadAttention(NonlinearLayer, nn.MultiheadAttention):
    # it exports LinearInt, Reshape, Transpose, BmmInt and SoftmaxInt; the pre-flight check
    # asks the device for this one op (the projections are checked as LinearInt layers)
    onnx_op = "BmmInt"

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        super().linger_setup(path, settings)
        for name in ("q_proj", "k_proj", "v_proj"):
            setattr(self, name, AttentionProjection(f"{path}.{name}", settings))
        self.out_proj.__class__ = QLinear
        self.out_proj.linger_setup(f"{path}.out_proj", settings)
        for name in ("scores", "context"):
            setattr(self, f"{name}_quantizer", ActivationQuantizer(
                settings.activate_bits, settings.qat_method, settings.momentum,
                f"{path}.{name}"))

    def linger_check(self) -> None:
        if self.bias_k is not None or self.bias_v is not None or self.add_zero_attn:
            raise LingerUnsupportedError(
                f"MultiheadAttention '{self.linger_path}': add_bias_kv and add_zero_attn are "
                "not supported by linger")

    def in_projections(self):
        """(weight, bias) of q, k, v; q's scaled by 1/sqrt(head_dim)."""
        if self._qkv_same_embed_dim:
            weights = self.in_proj_weight.chunk(3)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        biases = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
        scale = float(self.head_dim) ** -0.5
        (wq, wk, wv), (bq, bk, bv) = weights, biases
        return [(wq * scale, None if bq is None else bq * scale), (wk, bk), (wv, bv)]

    def _at(self, label: str) -> None:
        set_location(f"{self.linger_path}.{label}")

    def _heads(self, x: QTensor, name: str, perm: list[int]) -> QTensor:
        self._at(f"{name}_heads")
        y = x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim)
        self._at(f"{name}_transpose")
        return y.permute(perm)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        where = f"MultiheadAttention '{self.linger_path}'"
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise LingerUnsupportedError(
                f"{where}: attn_mask, key_padding_mask and is_causal are not supported by "
                "linger (attention over every position only)")
        q, k, v = (require_qtensor(t, where) for t in (query, key, value))
        if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
            raise LingerUnsupportedError(f"{where}: needs batched 3-D query, key and value")
        (wq, bq), (wk, bk), (wv, bv) = self.in_projections()
        q = self.q_proj.project(q, wq, bq)
        k = self.k_proj.project(k, wk, bk)
        v = self.v_proj.project(v, wv, bv)
        # [N, L, E] (batch first) or [L, N, E] -> [N, H, L, d]; k -> [N, H, d, S]
        order = [0, 2, 1, 3] if self.batch_first else [1, 2, 0, 3]
        k_order = [0, 2, 3, 1] if self.batch_first else [1, 2, 3, 0]
        q, k, v = self._heads(q, "q", order), self._heads(k, "k", k_order), \
            self._heads(v, "v", order)
        exact, bits, path = self.exact_mode(), self.bits, self.linger_path
        scores = fn.bmm(q, k, self.scores_quantizer, bits, exact, f"{path}.scores")
        weights = fn.softmax(scores, -1, bits, self.linger_platform, f"{path}.softmax", exact)
        if self.training and self.dropout > 0:
            dropped = F.dropout(weights.plain, self.dropout, True)
            weights = weights.like(fake_quantize(dropped, weights.exponent, weights.bits))
        context = fn.bmm(weights, v, self.context_quantizer, bits, exact, f"{path}.context")
        self._at("context_transpose")
        context = context.permute([0, 2, 1, 3] if self.batch_first else [2, 0, 1, 3])
        self._at("context_merge")
        context = context.reshape(context.shape[0], context.shape[1], self.embed_dim)
        set_location(f"{path}.out_proj")
        return self.out_proj(context), None
