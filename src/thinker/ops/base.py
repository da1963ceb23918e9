"""How an op is defined: one class per op, registered by its canonical name.

An op declares its attributes with defaults (``REQUIRED`` when the file must give it), a shape
rule (``infer``), a cost (``macs``) and a ``prepare`` step that does everything static once
(weight layout, shifts, exactness bounds) and returns the kernel: a function from all input
arrays (constants included, None for omitted optional inputs)
to a tuple of output arrays. Kernels are numpy, vectorized, integer-exact (design §3, §8).

Activations carry the batch on axis 0. Static shapes hold the model's batch size there; at run
time the kernels accept any batch size on that axis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor

REQUIRED = object()

Kernel = Callable[..., tuple[np.ndarray, ...]]


class Op:
    """Base of every op definition. Subclasses set ``op_type`` and ``attrs``."""

    op_type: ClassVar[str] = ""
    attrs: ClassVar[dict[str, Any]] = {}
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    # positions among the first min_inputs that ONNX lets a file leave empty ("")
    optional_inputs: ClassVar[frozenset[int]] = frozenset()

    def infer(self, node: Node, ins: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def macs(self, node: Node, ins: list[Tensor], outs: list[Tensor]) -> int:
        return 0

    def prepare(self, node: Node, ins: list[Tensor], outs: list[Tensor]) -> Kernel:
        raise NotImplementedError

    def batch_axes(self, node: Node, ins: list[Tensor]
                   ) -> tuple[list[int | None], list[int]] | None:
        """Where the batch is on each input (None: not an activation) and output, for ops that
        do not keep it on axis 0; None (the default) means axis 0 everywhere. The executors
        run graphs with such tensors sample group by sample group (thinker.runtime.batch)."""
        return None

    def packed_attrs(self, node: Node, ins: list[Tensor]) -> dict[str, Any]:
        """Attributes model.bin carries besides the node's own, derived once by tpacker so
        the C executor needs no float math (docs/format.md, "Derived attributes")."""
        return {}


OPS: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    OPS[cls.op_type] = cls()
    return cls


def get_op(op_type: str) -> Op:
    return OPS[op_type]


# ---------------------------------------------------------------------------------------------
# helpers shared by op definitions


def spec(shape: Sequence[int], dtype, exponent: int | None = None) -> Tensor:
    """An output description (the importer fills in the name)."""
    return Tensor("", tuple(int(d) for d in shape), np.dtype(dtype), exponent)


def exponent(node: Node, key: str) -> int:
    """The exponent q of a ``scale_*`` attribute (validated at import)."""
    value = node.attrs.get(key)
    if value is None:
        raise ThinkerModelError(f"{node.label()}: attribute '{key}' is required")
    return qmath.exponent_of_scale(value, f"{node.label()} attribute {key}")


def out_bits(node: Node, key: str = "o_bits", default: int | None = 8) -> int | None:
    bits = node.attrs.get(key, default)
    return None if bits is None else int(bits)


def int_dtype(node: Node, bits: int) -> np.dtype:
    try:
        return qmath.storage_dtype(bits)
    except ThinkerModelError as exc:
        raise ThinkerModelError(f"{node.label()}: {exc}") from None


def magnitude_bound(dtype: np.dtype) -> int:
    """Largest |value| an integer tensor of ``dtype`` can hold."""
    info = np.iinfo(dtype)
    return max(abs(int(info.min)), abs(int(info.max)))


def const_input(node: Node, ins: list[Tensor], index: int, what: str) -> np.ndarray:
    """The data of a constant input, or a clear error when it is computed at run time."""
    if index >= len(ins) or ins[index] is None or ins[index].data is None:
        raise ThinkerModelError(
            f"{node.label()}: input {index} ({what}) must be a constant (initializer); "
            "computed values are not supported here"
        )
    return ins[index].data


def batch_shape(static: Sequence[int], static_batch: int, actual_batch: int, where: str):
    """Replace the batch on axis 0 of a static shape by the run-time batch size."""
    static = tuple(static)
    if actual_batch == static_batch:
        return static
    if not static or static[0] != static_batch:
        raise ThinkerModelError(
            f"{where}: cannot run with batch {actual_batch}: this op's output shape "
            f"{list(static)} does not keep the batch on axis 0; run with batch {static_batch}"
        )
    return (actual_batch, *static[1:])


def input_exponent(node: Node, key: str, tensor: Tensor) -> int:
    """Exponent of an input: the node's ``scale_*`` attribute when present (the file's word),
    else the exponent inferred for the tensor."""
    if node.attrs.get(key) is not None:
        return exponent(node, key)
    if tensor.exponent is None:
        raise ThinkerModelError(
            f"{node.label()}: input {tensor.describe()} has no known scale; "
            f"give attribute '{key}' or quantize the input first"
        )
    return tensor.exponent


class Scratch:
    """A kernel's reusable work buffers (TFLM calls them scratch). Reusing them across runs
    avoids paying for fresh large allocations and page faults on every call. Buffers never
    leave the kernel, so results stay independent. Each thread has its own set, so one loaded
    model may run in many threads at once."""

    def __init__(self) -> None:
        self._local = threading.local()

    def zeros(self, key: str, shape: tuple[int, ...], dtype) -> tuple[np.ndarray, bool]:
        """A zero-initialised buffer at first use (per thread); returns (buffer, is_new)."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        buf = buffers.get(key)
        if buf is not None and buf.shape == tuple(shape) and buf.dtype == dtype:
            return buf, False
        buf = np.zeros(shape, dtype=dtype)
        buffers[key] = buf
        return buf, True

    def derived(self, name: str, deps: tuple, make):
        """An object built from this thread's buffers (views of them, say), kept under
        ``name`` while ``deps`` (everything it depends on, e.g. shapes and the buffers' ids)
        stay the same; other deps replace it (one kept per name, like the buffers)."""
        kept = self._local.__dict__.setdefault("derived", {})
        entry = kept.get(name)
        if entry is None or entry[0] != deps:
            entry = kept[name] = (deps, make())
        return entry[1]
