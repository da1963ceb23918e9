"""Concatenation, padding and the shape ops (view, reshape, flatten, permute, transpose,
squeeze, unsqueeze, slicing, split, chunk): values and exponent unchanged, except that
``torch.cat`` rescales every input to the smallest exponent (so nothing saturates); with one
shared exponent it is a plain Concat, no requantization.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from linger import recorder
from linger.errors import LingerUnsupportedError
from linger.fakequant import fake_quantize
from linger.functional.common import unsupported
from linger.location import current_location
from linger.qtensor import QTensor, handles, require_qtensor
from thinker import qmath

T = torch.Tensor


@handles(torch.cat, torch.concat, torch.concatenate)
def cat(tensors, dim: int = 0, axis: int | None = None, out=None) -> QTensor:
    if out is not None:
        raise unsupported("torch.cat with out=")
    xs = [require_qtensor(t, "torch.cat") for t in tensors]
    dim = (axis if axis is not None else dim) % xs[0].dim()
    qo, bits = min(x.exponent for x in xs), max(x.bits for x in xs)
    exact = all(x.exact for x in xs)
    if exact:
        ints = [qmath.rescale(x.ints(), x.exponent - qo, bits) for x in xs]
        result = QTensor.from_ints(np.concatenate(ints, axis=dim), qo, bits)
    else:
        parts = [x.plain if x.exponent == qo else fake_quantize(x.plain, qo, bits) for x in xs]
        result = QTensor.wrap(torch.cat(parts, dim), qo, bits, exact=False)
    if all(x.exponent == qo and x.bits == bits for x in xs):
        recorder.record("Concat", xs, result, axis=dim)  # one scale: no requantization
    else:
        scales = {f"scale_x_{i}": 2.0 ** x.exponent for i, x in enumerate(xs)}
        recorder.record("iqCat", xs, result, dim=dim, scale_o=2.0 ** qo, o_bits=bits,
                        data_bits=bits, **scales)
    return result


@handles(F.pad)
def pad(x: QTensor, pad, mode: str = "constant", value=None) -> QTensor:
    if mode != "constant" or value not in (None, 0, 0.0):
        raise unsupported(f"padding with mode '{mode}' and value {value}")
    pads = [int(p) for p in pad]
    if min(pads, default=0) < 0:
        raise unsupported("negative padding (cropping)")
    out = x.like(F.pad(x.plain, pads))
    if recorder.active() is not None:
        rank, begin, end = x.dim(), [0] * x.dim(), [0] * x.dim()
        for i in range(len(pads) // 2):  # torch lists (begin, end) from the last axis backwards
            begin[rank - 1 - i], end[rank - 1 - i] = pads[2 * i], pads[2 * i + 1]
        name = recorder.constant(f"{current_location()}.pads", np.array(begin + end, np.int64))
        recorder.record("Pad", [x, name], out, mode="constant")
    return out


def _same(x: QTensor) -> QTensor:
    return x.like(x.plain, name=x.onnx_name)


def _reshape_to(x: QTensor, out_plain: torch.Tensor) -> QTensor:
    out = x.like(out_plain)
    if recorder.active() is not None:
        shape = recorder.constant(f"{current_location()}.shape",
                                  np.array(out_plain.shape, dtype=np.int64))
        recorder.record("Reshape", [x, shape], out)
    return out


@handles(T.view)
def view(x: QTensor, *shape) -> QTensor:
    return _reshape_to(x, x.plain.view(*shape))


@handles(T.reshape)
def reshape_method(x: QTensor, *shape) -> QTensor:
    return _reshape_to(x, x.plain.reshape(*shape))


@handles(torch.reshape)
def reshape(x: QTensor, shape) -> QTensor:
    return _reshape_to(x, x.plain.reshape(shape))


@handles(T.view_as, T.reshape_as)
def reshape_as(x: QTensor, other: torch.Tensor) -> QTensor:
    return _reshape_to(x, x.plain.reshape(other.shape))


@handles(T.unflatten, torch.unflatten)
def unflatten(x: QTensor, dim: int, sizes) -> QTensor:
    return _reshape_to(x, x.plain.unflatten(dim, sizes))


@handles(T.flatten, torch.flatten)
def flatten(x: QTensor, start_dim: int = 0, end_dim: int = -1) -> QTensor:
    rank = x.dim()
    start, end = start_dim % max(rank, 1), end_dim % max(rank, 1)
    out_plain = torch.flatten(x.plain, start_dim, end_dim)
    if start == 1 and end == rank - 1:
        out = x.like(out_plain)
        recorder.record("Flatten", [x], out, axis=1)
        return out
    return _reshape_to(x, out_plain)


@handles(T.permute, torch.permute)
def permute(x: QTensor, *dims) -> QTensor:
    perm = dims[0] if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims
    perm = [int(d) % x.dim() for d in perm]
    out = x.like(x.plain.permute(perm))
    recorder.record("Transpose", [x], out, perm=perm)
    return out


@handles(T.transpose, torch.transpose)
def transpose(x: QTensor, dim0: int, dim1: int) -> QTensor:
    perm = list(range(x.dim()))
    a, b = dim0 % x.dim(), dim1 % x.dim()
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


def _axes_op(op_type: str, x: QTensor, out_plain: torch.Tensor, axes: list[int]) -> QTensor:
    if not axes:
        return _same(x)
    out = x.like(out_plain)
    if recorder.active() is not None:
        name = recorder.constant(f"{current_location()}.axes", np.array(axes, np.int64))
        recorder.record(op_type, [x, name], out)
    return out


@handles(T.squeeze, torch.squeeze)
def squeeze(x: QTensor, dim=None) -> QTensor:
    dims = range(x.dim()) if dim is None else dim if isinstance(dim, (list, tuple)) else [dim]
    axes = sorted({int(d) % x.dim() for d in dims if x.shape[int(d)] == 1})
    out_plain = x.plain
    for a in reversed(axes):
        out_plain = out_plain.squeeze(a)
    return _axes_op("Squeeze", x, out_plain, axes)


@handles(T.unsqueeze, torch.unsqueeze)
def unsqueeze(x: QTensor, dim: int) -> QTensor:
    axis = int(dim) % (x.dim() + 1)
    return _axes_op("Unsqueeze", x, x.plain.unsqueeze(axis), [axis])


@handles(T.__getitem__)
def getitem(x: QTensor, index) -> QTensor:
    items = list(index) if isinstance(index, tuple) else [index]
    if any(i is None or isinstance(i, (torch.Tensor, list, bool)) for i in items):
        raise unsupported("indexing with None, tensors, lists or booleans")
    if items.count(Ellipsis) > 1:
        raise unsupported("indexing with more than one '...'")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = x.dim() - (len(items) - 1)
        items = items[:at] + [slice(None)] * fill + items[at + 1:]
    items += [slice(None)] * (x.dim() - len(items))
    starts, ends, axes, steps, dropped = [], [], [], [], []
    for axis, item in enumerate(items):
        size = x.shape[axis]
        if isinstance(item, slice):
            start, stop, step = item.indices(size)
            if step <= 0:
                raise unsupported("slicing with a non-positive step")
            if (start, stop, step) == (0, size, 1):
                continue
        else:
            i = operator.index(item)
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of range for axis {axis} of size {size}")
            start, stop, step = i % size, i % size + 1, 1
            dropped.append(axis)
        starts.append(start), ends.append(stop), axes.append(axis), steps.append(step)
    if not axes:
        return _same(x)
    sliced_plain = x.plain[tuple(slice(None) if a not in axes else
                                 slice(starts[axes.index(a)], ends[axes.index(a)],
                                       steps[axes.index(a)]) for a in range(x.dim()))]
    sliced = x.like(sliced_plain)
    if recorder.active() is not None:
        where = current_location()
        consts = [recorder.constant(f"{where}.{k}", np.array(v, np.int64))
                  for k, v in (("starts", starts), ("ends", ends), ("axes", axes),
                               ("steps", steps))]
        recorder.record("Slice", [x, *consts], sliced,
                        hint=f"{where}.slice" if dropped else None)
    if not dropped:
        return sliced
    out_plain = sliced_plain
    for a in reversed(dropped):
        out_plain = out_plain.squeeze(a)
    return _axes_op("Squeeze", sliced, out_plain, dropped)


def _split_record(x: QTensor, pieces, axis: int) -> tuple[QTensor, ...]:
    outs = tuple(x.like(p) for p in pieces)
    if recorder.active() is not None:
        lengths = np.array([p.shape[axis] for p in pieces], np.int64)
        name = recorder.constant(f"{current_location()}.split", lengths)
        recorder.record("Split", [x, name], list(outs), axis=axis)
    return outs


@handles(torch.split, T.split)
def split(x: QTensor, split_size_or_sections, dim: int = 0) -> tuple[QTensor, ...]:
    axis = dim % x.dim()
    return _split_record(x, torch.split(x.plain, split_size_or_sections, axis), axis)


@handles(torch.chunk, T.chunk)
def chunk(x: QTensor, chunks: int, dim: int = 0) -> tuple[QTensor, ...]:
    axis = dim % x.dim()
    return _split_record(x, torch.chunk(x.plain, chunks, axis), axis)


@handles(T.contiguous, T.clone, torch.clone)
def same_values(x: QTensor, *args, **kwargs) -> QTensor:
    return _same(x)


@handles(T.detach, torch.detach)
def detach(x: QTensor) -> QTensor:
    return x.like(x.plain.detach(), name=x.onnx_name)


def _moved(x: QTensor, moved: torch.Tensor) -> QTensor:
    if moved.dtype != torch.float32 or moved.device.type != "cpu":
        raise unsupported(f"converting a quantized tensor to {moved.dtype} on {moved.device}")
    return x.like(moved, name=x.onnx_name)


@handles(T.to)
def to(x: QTensor, *args, **kwargs) -> QTensor:
    args = [a.plain if isinstance(a, QTensor) else a for a in args]
    return _moved(x, x.plain.to(*args, **kwargs))


@handles(T.float, T.cpu)
def float_on_cpu(x: QTensor, *args, **kwargs) -> QTensor:
    return _moved(x, x.plain.float().cpu())


# ---------------------------------------------------------------------------------------------
# arithmetic needs the quantizer modules that linger.init inserts for every traced +, -, *

_ARITHMETIC = (T.__add__, T.__radd__, T.__iadd__, torch.add, T.add, T.add_,
               T.__sub__, T.__rsub__, T.__isub__, torch.sub, T.sub, T.sub_,
               T.__mul__, T.__rmul__, T.__imul__, torch.mul, T.mul, T.mul_,
               T.__truediv__, T.__rtruediv__, T.__itruediv__, torch.div, torch.true_divide,
               T.div, T.div_, T.true_divide, T.true_divide_)


@handles(*_ARITHMETIC)
def arithmetic_without_quantizer(*args, **kwargs):
    raise LingerUnsupportedError(
        f"arithmetic on a quantized tensor at '{current_location()}' has no output quantizer: "
        "linger.init gives one to every +, -, *, / (with tensors or Python numbers) that it "
        "traces in forward(); arithmetic inside modules it cannot trace is not supported")
