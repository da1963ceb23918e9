"""The demo's quantized LeNet-5, rebuilt from its QAT checkpoint (for thinker validate):

    thinker validate workspace/digits/digits.onnx workspace/digits/model.bin \\
        --linger factory:lenet5_qat --checkpoint workspace/digits/qat_int8.pt
"""

from __future__ import annotations

import torch

import linger
from linger import zoo


def lenet5_qat(checkpoint: str, platform: str = "venus") -> torch.nn.Module:
    model = linger.init(linger.constrain(zoo.build("lenet5")),
                        {"weight_bits": 8, "platform": platform})
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    return model.eval()
