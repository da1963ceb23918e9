"""Quantized Embedding (``Gather``): the table is an integer initializer at ``scale_w``
(``weight_bits``, round half to even), indexed by an integer model input. Integer model inputs
get no Quant node: the graph input keeps its dtype (int64 for token ids). The output is at the
table's exponent; nothing is learned.

Training: ``F.embedding`` on the fake-quantized table (exactly the integers / 2**qw), so the
gradient reaches the table (straight-through)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import recorder
from linger.config import LayerSettings
from linger.errors import LingerUnsupportedError
from linger.fakequant import fake_quantize_weight, weight_exponent
from linger.functional.nonlinear import Constant, ModelInput, compute
from linger.modules.base import QuantizedLayer
from linger.qtensor import QTensor
from thinker import qmath


class QEmbedding(QuantizedLayer, nn.Embedding):
    onnx_op = "Gather"

    def linger_setup(self, path: str, settings: LayerSettings) -> None:
        self.linger_path, self.linger_settings = path, settings

    def linger_check(self) -> None:
        if self.max_norm is not None:
            raise LingerUnsupportedError(
                f"Embedding '{self.linger_path}': max_norm renormalises the table while it "
                "runs, which an integer table cannot do; use max_norm=None")

    def forward(self, indices):
        where = f"Embedding '{self.linger_path}'"
        if isinstance(indices, QTensor) or not isinstance(indices, torch.Tensor) or \
                indices.is_floating_point() or indices.is_complex():
            raise LingerUnsupportedError(
                f"{where} needs integer indices (a torch.long model input), got "
                f"{getattr(indices, 'dtype', type(indices).__name__)}")
        rec = recorder.active()
        if rec is not None:
            try:
                rec.float_input_name(indices)
            except LingerUnsupportedError:
                raise LingerUnsupportedError(
                    f"{where}: the indices must be a model input given straight to the "
                    "embedding (the executor reads them from the graph input)") from None
        bits = self.linger_settings.weight_bits
        w = self.weight
        qw = weight_exponent(float(w.detach().abs().max()), bits)
        table = qmath.quantize_weight(w.detach().numpy(), qw, bits).astype(
            qmath.storage_dtype(bits))

        def reference():
            return F.embedding(indices, fake_quantize_weight(w, qw, bits), self.padding_idx,
                               None, 2.0, self.scale_grad_by_freq, self.sparse)

        out_bits = qmath.storage_dtype(bits).itemsize * 8
        return compute("Gather", [Constant(f"{self.linger_path}.weight", table),
                                  ModelInput(indices)],
                       {"axis": 0, "scale_w": 2.0 ** qw, "parameter_bits": bits},
                       bits=out_bits, exact=self.exact_mode(), reference=reference,
                       exponent=qw, hint=self.linger_path, output_attrs=False)
