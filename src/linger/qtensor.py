"""QTensor: a torch tensor of quantized values that carries its exponent forward.

It holds the real values ``int / 2**exponent`` as float32 (exact for |int| < 2**24, i.e. every
8- and 16-bit value), plus:

* ``bits``: the integer width (8 or 16);
* ``exact``: True when produced by the integer (eval) path, whose values are exactly the
  integers the executor computes; False in training, where values carry gradients;
* ``onnx_name``: the tensor's name in the graph being exported (None otherwise).

Torch functions called on a QTensor are dispatched to linger's quantized implementations
(``linger.functional``); a function without one raises an error naming the op and the place.
"""

from __future__ import annotations

import numpy as np
import torch

from linger.errors import LingerError, LingerUnsupportedError
from linger.location import current_location
from thinker import qmath

# torch functions with a quantized implementation: func -> handler(*args, **kwargs)
HANDLERS: dict = {}

# functions that only read metadata (shape, dtype, ...) and are safe on any tensor
METADATA_FUNCTIONS = {
    "__get__", "size", "dim", "ndimension", "numel", "nelement", "__len__", "is_floating_point",
    "is_contiguous", "element_size", "stride", "__repr__", "__format__", "__str__", "__hash__",
    "get_device", "data_ptr", "storage_offset", "is_complex", "has_names", "__reduce_ex__",
    "_is_view", "is_sparse", "untyped_storage", "_typed_storage", "__dlpack_device__",
}


def handles(*funcs):
    """Register a quantized implementation for the given torch functions."""

    def register(handler):
        for f in funcs:
            HANDLERS[f] = handler
        return handler

    return register


class QTensor(torch.Tensor):
    exponent: int
    bits: int
    exact: bool
    onnx_name: str | None

    @staticmethod
    def wrap(values: torch.Tensor, exponent: int, bits: int, exact: bool,
             name: str | None = None) -> QTensor:
        out = values.as_subclass(QTensor)
        out.exponent, out.bits, out.exact, out.onnx_name = int(exponent), int(bits), exact, name
        return out

    @staticmethod
    def from_ints(ints: np.ndarray, exponent: int, bits: int) -> QTensor:
        """An exact QTensor from integers (float32 holds them exactly: |ints| < 2**24)."""
        return QTensor.wrap(torch.from_numpy(qmath.dequantize(ints, exponent)), exponent, bits,
                            exact=True)

    @property
    def plain(self) -> torch.Tensor:
        """The same values as an ordinary tensor (gradients still flow)."""
        return self.as_subclass(torch.Tensor)

    def ints(self) -> np.ndarray:
        """The integers (int64) of an exact QTensor."""
        values = self.plain.detach().double() * (2.0 ** self.exponent)
        ints = values.numpy()
        if not self.exact or not np.array_equal(ints, np.round(ints)):
            raise LingerError(
                f"internal: tensor at {current_location()} does not hold exact integers")
        return ints.astype(np.int64)

    def like(self, values: torch.Tensor, exponent: int | None = None,
             name: str | None = None) -> QTensor:
        """A QTensor with this one's bits and mode, new values (and exponent)."""
        return QTensor.wrap(values, self.exponent if exponent is None else exponent, self.bits,
                            self.exact, name)

    def __repr__(self, *, tensor_contents=None) -> str:
        return (f"QTensor(exponent={self.exponent}, bits={self.bits}, exact={self.exact}, "
                f"{self.plain!r})")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = HANDLERS.get(func)
        if handler is not None:
            return handler(*args, **kwargs)
        if getattr(func, "__name__", "") in METADATA_FUNCTIONS:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        raise LingerUnsupportedError(
            f"{op_name(func)} at '{current_location()}' has no quantized implementation; "
            "linger supports conv/linear/batchnorm/layernorm/embedding/multi-head attention "
            "modules, relu, relu6/hardtanh/clamp, prelu, sigmoid, tanh, softmax, log_softmax, "
            "glu, hardsigmoid, hardswish, silu, gelu, max and average pooling, nearest "
            "upsampling, dropout, +, -, *, / (tensors and Python numbers), matmul/bmm/@ between "
            "activations, sum/mean/var, torch.cat and shape ops (view, reshape, flatten, "
            "permute, transpose, squeeze, unsqueeze, slicing, split, chunk, pad). Keep this part "
            "float with disable_submodel (it will not export), or rewrite it with supported ops")


def op_name(func) -> str:
    name = getattr(func, "__name__", repr(func))
    module = getattr(func, "__module__", None) or ""
    if module.startswith("torch.nn.functional"):
        return f"torch.nn.functional.{name}"
    if "TensorBase" in repr(func) or "Tensor" in getattr(func, "__qualname__", ""):
        return f"Tensor.{name}"
    return f"torch.{name}"


def require_qtensor(x, what: str) -> QTensor:
    if not isinstance(x, QTensor):
        raise LingerUnsupportedError(
            f"{what} at '{current_location()}' got a {type(x).__name__} that is not quantized; "
            "every operand must come from a quantized layer or a model input")
    return x
