"""thinker: quantized models from PyTorch training to bit-exact int8 execution.

Deployment side: numpy + onnx only (never imports torch).

    >>> import thinker
    >>> m = thinker.load("model.onnx")
    >>> outputs = m.run({"input": x})
"""

from thinker.errors import (
    ThinkerDeviceError,
    ThinkerError,
    ThinkerFormatError,
    ThinkerInputError,
    ThinkerModelError,
)
from thinker.runtime import Executor, TensorSpec, load

__version__ = "0.1.0"

__all__ = [
    "Executor",
    "TensorSpec",
    "ThinkerDeviceError",
    "ThinkerError",
    "ThinkerFormatError",
    "ThinkerInputError",
    "ThinkerModelError",
    "__version__",
    "load",
]
