"""Quantized LayerNorm (``LayerNormInt``), affine or not, over one or more trailing axes.

The kernel (``thinker.nonlinear.layernorm``) normalises each row of integers to Q15, then
``rescale(sat32(normalized * w + b), 15 + qw - qo, bits)``: the weight is an integer at
``scale_w`` (``weight_bits``), the bias an int32 at ``2**(15 + qw)``; without affine
parameters the weight is the integer 1 at scale 1 and there is no bias. The output exponent is
learned. ``eps`` is exported as a float32 attribute, so linger uses that float32 value too.

Training: the kernel on the training values' integers (the forward value is the executor's);
gradients through ``F.layer_norm`` with fake-quantized weight and bias (straight-through).
"""

from __future__ import annotations

import numpy as np
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger.errors import LingerUnsupportedError
from linger.fakequant import fake_quantize_weight, weight_exponent
from linger.functional.nonlinear import Constant, compute
from linger.modules.nonlinear import NonlinearLayer
from linger.qtensor import require_qtensor
from thinker import qmath
from thinker.nonlinear.layernorm import OUTPUT_Q


class QLayerNorm(NonlinearLayer, nn.LayerNorm):
    onnx_op, learned = "LayerNormInt", True

    def forward(self, x):
        x = require_qtensor(x, f"LayerNorm '{self.linger_path}'")
        shape = tuple(self.normalized_shape)
        if tuple(x.shape[x.dim() - len(shape):]) != shape:
            raise LingerUnsupportedError(
                f"LayerNorm '{self.linger_path}': input {list(x.shape)} does not end with the "
                f"normalized shape {list(shape)}")
        s = self.linger_settings
        w, b = self.weight, self.bias
        if w is None:  # no affine parameters: the weight is the integer 1 at scale 1
            qw, w_int, w_train = 0, np.ones(shape, dtype=np.int8), None
        else:
            qw = weight_exponent(float(w.detach().abs().max()), s.weight_bits)
            w_int = qmath.quantize_weight(w.detach().numpy(), qw, s.weight_bits)
            w_train = fake_quantize_weight(w, qw, s.weight_bits)
        operands = [x, Constant(f"{self.linger_path}.weight",
                                w_int.astype(qmath.storage_dtype(s.weight_bits)))]
        b_train = None
        if b is not None:
            qb = OUTPUT_Q + qw
            b_int = qmath.quantize_weight(b.detach().numpy(), qb, s.bias_bits)
            operands.append(Constant(f"{self.linger_path}.bias", b_int.astype(np.int32)))
            b_train = fake_quantize_weight(b, qb, s.bias_bits)
        eps = float(np.float32(self.eps))  # the ONNX attribute is a float32
        attrs = {"scale_x": 2.0 ** x.exponent, "scale_w": 2.0 ** qw, "eps": eps,
                 "data_bits": x.bits, "parameter_bits": s.weight_bits,
                 "platform": self.linger_platform}
        return compute("LayerNormInt", operands, attrs, bits=self.bits, exact=self.exact_mode(),
                       reference=lambda: F.layer_norm(x.plain, shape, w_train, b_train, eps),
                       quantizer=self.output_quantizer, hint=self.linger_path)
