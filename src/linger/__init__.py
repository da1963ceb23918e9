"""linger: the training side (PyTorch). Constrained float training, quantization-aware
training and export to the thinker ONNX dialect, bit-exact with the executor.

    model = linger.constrain(model, config)      # stage 1: float training with range limits
    model = linger.init(model, config)           # stage 2: quantization-aware training
    model = linger.ptq(model, batches, config)   # ... or post-training quantization
    ...train...
    linger.onnx.export(model.eval(), dummy, "model.onnx")

It imports thinker (``qmath`` for its arithmetic, the device profiles for the conventional
check); thinker never imports linger.
"""

from linger import functional as _functional  # noqa: F401  (registers QTensor handlers)
from linger import onnx, zoo
from linger.check import CheckReport, Problem, check
from linger.config import Config, LayerSettings, load_config
from linger.constrain import constrain
from linger.errors import (
    LingerCheckError,
    LingerConfigError,
    LingerDataError,
    LingerDeviceError,
    LingerError,
    LingerStateError,
    LingerUnsupportedError,
)
from linger.ptq import ptq
from linger.qtensor import QTensor
from linger.quantize import init
from linger.quantizer import ActivationQuantizer, calibration

__all__ = [
    "ActivationQuantizer",
    "CheckReport",
    "Config",
    "LayerSettings",
    "LingerCheckError",
    "LingerConfigError",
    "LingerDataError",
    "LingerDeviceError",
    "LingerError",
    "LingerStateError",
    "LingerUnsupportedError",
    "Problem",
    "QTensor",
    "calibration",
    "check",
    "constrain",
    "init",
    "load_config",
    "onnx",
    "ptq",
    "zoo",
]
