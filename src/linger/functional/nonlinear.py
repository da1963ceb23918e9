"""Non-linear ops and products of activations, computed by the thinker kernels themselves.

iqSigmoid, iqTanh, SoftmaxInt, LogSoftmaxInt, GluInt, BmmInt, LayerNormInt, PRelu and Gather:
linger never re-implements their integers. ``run_kernel`` builds the one-node graph the
executor would run (same op class, same attributes as the exported node) and calls its numpy
kernel, so the eval forward, the ONNX graph and the executor cannot drift.

Training runs the same kernel on the integers the (fake-quantized) training inputs hold: the
forward value *is* the integer result, and the gradient flows through a float surrogate
(``straight_through``): the float function for fixed output exponents, the output quantizer's
fake-quantization of it for learned ones.

The functions below are the API for modules (and composites) that need these ops:

* ``activation('iqSigmoid' | 'iqTanh', x, bits, platform)``: output exponent ``bits - 1``;
* ``softmax(x, dim, bits, platform)``: output exponent ``bits - 1``;
* ``log_softmax(x, dim, quantizer, bits, platform, exact)``, ``glu(...)``, ``bmm(a, b, ...)``:
  output exponent learned by ``quantizer`` (an ``ActivationQuantizer``);
* ``compute(...)``: any kernel, for ops with constants (LayerNormInt, PRelu).

``platform`` is the name written into the node (``platform_name`` resolves the config's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import recorder
from linger.errors import LingerUnsupportedError
from linger.integers import grid_ints, straight_through
from linger.location import current_location
from linger.qtensor import QTensor, handles, require_qtensor
from thinker import qmath
from thinker.errors import ThinkerError
from thinker.graph.ir import Node, Tensor
from thinker.ops.base import REQUIRED, get_op

T = torch.Tensor


# ---------------------------------------------------------------------------------------------
# platform


# ---------------------------------------------------------------------------------------------
# integers in, integers out


@dataclass(frozen=True)
class Constant:
    """An integer initializer operand (weights, slopes, tables): ``name`` in the graph."""

    name: str
    value: np.ndarray


@dataclass(frozen=True)
class ModelInput:
    """A model input passed straight to an op (the int64 indices of an embedding)."""

    tensor: torch.Tensor


Operand = QTensor | Constant | ModelInput | None


def _array_of(operand: Operand) -> np.ndarray | None:
    if operand is None:
        return None
    if isinstance(operand, QTensor):
        return grid_ints(operand).astype(qmath.storage_dtype(operand.bits))
    if isinstance(operand, Constant):
        return operand.value
    return operand.tensor.detach().numpy()


def run_kernel(op_type: str, operands: list[Operand], attrs: dict,
               where: str | None = None) -> np.ndarray:
    """The thinker executor's kernel of ``op_type`` on these operands, with these attributes
    (exactly those of the exported node); its first output as int64."""
    return run_kernel_outputs(op_type, operands, attrs, where)[0]


def run_kernel_outputs(op_type: str, operands: list[Operand], attrs: dict,
                       where: str | None = None) -> list[np.ndarray]:
    """``run_kernel`` for ops with several outputs (GRUInt/LSTMInt: Y, h_n, c_n): every output
    as int64."""
    where = where or current_location()
    op = get_op(op_type)
    node_attrs = {k: v for k, v in attrs.items() if v is not None}
    for key, default in op.attrs.items():
        if key not in node_attrs:
            if default is REQUIRED:
                raise AssertionError(f"{op_type} needs attribute {key}")
            node_attrs[key] = default
    arrays = [_array_of(o) for o in operands]
    tensors = [None if a is None else
               Tensor(f"in{i}", tuple(a.shape), a.dtype, None,
                      a if isinstance(o, Constant) else None)
               for i, (o, a) in enumerate(zip(operands, arrays, strict=True))]
    node = Node(op_type, where, [f"in{i}" if a is not None else "" for i, a in enumerate(arrays)],
                ["out"], node_attrs)
    try:
        outs = op.infer(node, tensors)
        node.outputs = [f"out{i}" for i in range(len(outs))]
        kernel = op.prepare(node, tensors, outs)
        results = kernel(*arrays)
    except ThinkerError as exc:
        raise LingerUnsupportedError(f"{op_type} at '{where}': {exc}") from None
    return [np.asarray(r).astype(np.int64) for r in results]


def _record_name(operand: Operand) -> str | QTensor:
    if isinstance(operand, Constant):
        return recorder.constant(operand.name, operand.value)
    if isinstance(operand, ModelInput):
        rec = recorder.active()
        return rec.float_input_name(operand.tensor)
    return operand


def compute(op_type: str, operands: list[Operand], attrs: dict, *, bits: int, exact: bool,
            reference: Callable[[], torch.Tensor], quantizer=None, exponent: int | None = None,
            hint: str | None = None, output_attrs: bool = True) -> QTensor:
    """Run ``op_type``'s kernel and return its result as a QTensor at ``bits``, recording the
    node when exporting.

    The output exponent is ``exponent`` (fixed) or ``quantizer``'s (frozen in eval, observed
    from ``reference()`` in training). ``reference`` is the float function of the op on the
    training values (called in training only): the gradient's path."""
    hint = hint or current_location()
    surrogate = None
    if exact:
        q = exponent if quantizer is None else quantizer.frozen_exponent()
    else:
        value = reference()
        if quantizer is None:
            q, surrogate = exponent, value
        else:
            q = quantizer.observe(value)
            surrogate = quantizer.quantize(value, q)
    attrs = dict(attrs)
    if output_attrs:
        attrs.update(scale_o=2.0 ** q, o_bits=bits)
    ints = run_kernel(op_type, operands, attrs, hint)
    if exact:
        out = QTensor.from_ints(ints, q, bits)
    else:
        values = torch.from_numpy(qmath.dequantize(ints, q))
        out = QTensor.wrap(straight_through(surrogate, values), q, bits, exact=False)
    if recorder.active() is not None:
        recorder.record(op_type, [_record_name(o) for o in operands if o is not None], out,
                        hint=hint, **attrs)
    return out


def _is_exact(x: QTensor, exact: bool | None) -> bool:
    return x.exact if exact is None else exact


# ---------------------------------------------------------------------------------------------
# the ops

FIXED_ACTIVATIONS = {"iqSigmoid": torch.sigmoid, "iqTanh": torch.tanh}


def activation(op_type: str, x: QTensor, bits: int, platform: str, hint: str | None = None,
               exact: bool | None = None) -> QTensor:
    """iqSigmoid / iqTanh: output at the fixed exponent ``bits - 1`` (range [-1, 1])."""
    x = require_qtensor(x, f"{op_type} '{hint or current_location()}'")
    function = FIXED_ACTIVATIONS[op_type]
    return compute(op_type, [x], {"scale_x": 2.0 ** x.exponent, "data_bits": x.bits,
                                  "platform": platform},
                   bits=bits, exact=_is_exact(x, exact), reference=lambda: function(x.plain),
                   exponent=bits - 1, hint=hint)


def softmax_dim(x: torch.Tensor, dim, name: str = "softmax") -> int:
    """The axis a softmax normalises (``None``: PyTorch's legacy implicit choice)."""
    if dim is None:
        dim = F._get_softmax_dim(name, x.dim(), 5)
    return int(dim) % max(x.dim(), 1)


def softmax(x: QTensor, dim: int, bits: int, platform: str, hint: str | None = None,
            exact: bool | None = None) -> QTensor:
    """SoftmaxInt over ``dim``: output at the fixed exponent ``bits - 1``."""
    x = require_qtensor(x, f"SoftmaxInt '{hint or current_location()}'")
    axis = softmax_dim(x, dim)
    return compute("SoftmaxInt", [x], {"axis": axis, "scale_x": 2.0 ** x.exponent,
                                       "data_bits": x.bits, "platform": platform},
                   bits=bits, exact=_is_exact(x, exact),
                   reference=lambda: torch.softmax(x.plain, axis), exponent=bits - 1, hint=hint)


def log_softmax(x: QTensor, dim: int, quantizer, bits: int, platform: str, exact: bool,
                hint: str | None = None) -> QTensor:
    """LogSoftmaxInt over ``dim``: output exponent learned by ``quantizer``."""
    x = require_qtensor(x, f"LogSoftmaxInt '{hint or current_location()}'")
    axis = softmax_dim(x, dim, "log_softmax")
    return compute("LogSoftmaxInt", [x], {"axis": axis, "scale_x": 2.0 ** x.exponent,
                                          "data_bits": x.bits, "platform": platform},
                   bits=bits, exact=exact, reference=lambda: torch.log_softmax(x.plain, axis),
                   quantizer=quantizer, hint=hint)


def glu(x: QTensor, dim: int, quantizer, bits: int, platform: str, exact: bool,
        hint: str | None = None) -> QTensor:
    """GluInt: ``a * sigmoid(b)`` for the halves of ``dim``; output exponent learned."""
    x = require_qtensor(x, f"GluInt '{hint or current_location()}'")
    axis = int(dim) % x.dim()
    if x.shape[axis] % 2:
        raise LingerUnsupportedError(
            f"GLU at '{hint or current_location()}': dimension {axis} of size "
            f"{x.shape[axis]} cannot be halved")
    return compute("GluInt", [x], {"dim": axis, "scale_x": 2.0 ** x.exponent,
                                   "data_bits": x.bits, "platform": platform},
                   bits=bits, exact=exact, reference=lambda: F.glu(x.plain, axis),
                   quantizer=quantizer, hint=hint)


def bmm(a: QTensor, b: QTensor, quantizer, bits: int, exact: bool,
        hint: str | None = None) -> QTensor:
    """BmmInt: ``a @ b`` for [..., M, K] and [..., K, N] with equal leading axes; output
    exponent learned."""
    where = hint or current_location()
    a = require_qtensor(a, f"matmul '{where}'")
    b = require_qtensor(b, f"matmul '{where}'")
    if a.dim() < 2 or a.dim() != b.dim() or a.shape[:-2] != b.shape[:-2] or \
            a.shape[-1] != b.shape[-2]:
        raise LingerUnsupportedError(
            f"matmul at '{where}' of shapes {list(a.shape)} and {list(b.shape)}: linger "
            "multiplies [..., M, K] by [..., K, N] with the same leading axes (no broadcasting, "
            "no vectors); reshape or expand the operands first")
    return compute("BmmInt", [a, b], {"scale_x": 2.0 ** a.exponent,
                                      "scale_y": 2.0 ** b.exponent, "data_bits": a.bits},
                   bits=bits, exact=exact, reference=lambda: torch.matmul(a.plain, b.plain),
                   quantizer=quantizer, hint=hint)


# ---------------------------------------------------------------------------------------------
# a call that linger.init did not give its module

NEEDS_MODULE = (torch.sigmoid, T.sigmoid, F.sigmoid, torch.tanh, T.tanh, F.tanh, torch.softmax,
                T.softmax, F.softmax, torch.log_softmax, T.log_softmax, F.log_softmax,
                torch.bmm, T.bmm, torch.matmul, T.matmul, T.__matmul__, T.__rmatmul__, F.glu)


@handles(*NEEDS_MODULE)
def call_without_module(*args, **kwargs):
    raise LingerUnsupportedError(
        f"sigmoid/tanh/softmax/log_softmax/matmul/glu on a quantized tensor at "
        f"'{current_location()}' was not traced by linger.init, which gives each such call in "
        "forward() its own module (platform, bits, output quantizer); call it in a forward "
        "that linger.init traces, or use the torch.nn module (nn.Sigmoid, nn.Softmax, ...)")
