"""Data-movement ops (ONNX semantics) on quantized tensors; the exponent passes through.

Reshape-like ops (Reshape, Flatten, Squeeze, Unsqueeze) are one reshape of the input to the
static output shape, with the run-time batch on axis 0. Constant operands (shape, axes, pads,
starts/ends, indices) come from initializers or from ONNX attributes in older opsets.
"""

from __future__ import annotations

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.ops.base import Op, batch_shape, const_input, exponent, register, spec
from thinker.ops.elementwise import concat_shape


def _axis(node: Node, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ThinkerModelError(f"{node.label()}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def _ints_from(node: Node, ins: list[Tensor], index: int, attr: str, what: str):
    """Integers given as input ``index`` (newer opsets) or attribute ``attr`` (older)."""
    if len(ins) > index and ins[index] is not None:
        return [int(v) for v in const_input(node, ins, index, what).reshape(-1)]
    value = node.attrs.get(attr)
    return None if value is None else [int(v) for v in value]


class _ReshapeLike(Op):
    """Output = input reshaped to ``out_shape`` (a view; the planner may alias it)."""

    def out_shape(self, node: Node, ins: list[Tensor]) -> tuple[int, ...]:
        raise NotImplementedError

    def infer(self, node, ins):
        shape = self.out_shape(node, ins)
        if int(np.prod(shape)) != int(np.prod(ins[0].shape)):
            raise ThinkerModelError(
                f"{node.label()}: cannot reshape {ins[0].describe()} to {list(shape)}"
            )
        return [spec(shape, ins[0].dtype, ins[0].exponent)]

    def prepare(self, node, ins, outs):
        static_in, static_out, label = ins[0].shape, outs[0].shape, node.label()
        b0 = static_in[0] if static_in else 1

        def run(x, *_):
            if x.shape == static_in:
                return (x.reshape(static_out),)
            return (x.reshape(batch_shape(static_out, b0, x.shape[0], label)),)

        run.view = True  # thinker.runtime.host_chain: the same bytes, another shape
        return run


@register
class Reshape(_ReshapeLike):
    op_type = "Reshape"
    attrs = {"allowzero": 0, "shape": None}
    max_inputs = 2

    def out_shape(self, node, ins):
        target = _ints_from(node, ins, 1, "shape", "shape")
        if target is None:
            raise ThinkerModelError(f"{node.label()}: needs a constant shape")
        src = ins[0].shape
        if not int(node.attrs.get("allowzero", 0)):
            target = [src[i] if v == 0 else v for i, v in enumerate(target)]
        if target.count(-1) > 1:
            raise ThinkerModelError(f"{node.label()}: shape {target} has more than one -1")
        if -1 in target:
            known = int(np.prod([v for v in target if v != -1]))
            total = int(np.prod(src))
            if known == 0 or total % known:
                raise ThinkerModelError(
                    f"{node.label()}: cannot reshape {ins[0].describe()} to {target}"
                )
            target[target.index(-1)] = total // known
        return tuple(target)


@register
class Flatten(_ReshapeLike):
    op_type = "Flatten"
    attrs = {"axis": 1}

    def out_shape(self, node, ins):
        shape = ins[0].shape
        axis = int(node.attrs.get("axis", 1))
        axis = axis % len(shape) if axis < 0 else axis
        return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))


@register
class Squeeze(_ReshapeLike):
    op_type = "Squeeze"
    attrs = {"axes": None}
    max_inputs = 2

    def out_shape(self, node, ins):
        shape = ins[0].shape
        axes = _ints_from(node, ins, 1, "axes", "axes")
        if axes is None:
            return tuple(d for d in shape if d != 1)
        axes = {_axis(node, a, len(shape)) for a in axes}
        for a in axes:
            if shape[a] != 1:
                raise ThinkerModelError(
                    f"{node.label()}: cannot squeeze axis {a} of size {shape[a]} in "
                    f"{ins[0].describe()}"
                )
        return tuple(d for i, d in enumerate(shape) if i not in axes)


@register
class Unsqueeze(_ReshapeLike):
    op_type = "Unsqueeze"
    attrs = {"axes": None}
    max_inputs = 2

    def out_shape(self, node, ins):
        axes = _ints_from(node, ins, 1, "axes", "axes")
        if axes is None:
            raise ThinkerModelError(f"{node.label()}: needs axes")
        rank = len(ins[0].shape) + len(axes)
        axes = sorted(_axis(node, a, rank) for a in axes)
        shape = list(ins[0].shape)
        for a in axes:
            shape.insert(a, 1)
        return tuple(shape)


@register
class Transpose(Op):
    op_type = "Transpose"
    attrs = {"perm": None}

    def _perm(self, node, ins) -> list[int]:
        rank = len(ins[0].shape)
        perm = node.attrs.get("perm")
        perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(rank)):
            raise ThinkerModelError(
                f"{node.label()}: perm {perm} is not a permutation of {rank} axes"
            )
        return perm

    def infer(self, node, ins):
        perm = self._perm(node, ins)
        return [spec(tuple(ins[0].shape[p] for p in perm), ins[0].dtype, ins[0].exponent)]

    def prepare(self, node, ins, outs):
        perm = self._perm(node, ins)

        def run(x, *_):
            return (x.transpose(perm),)

        return run


def slice_params(node: Node, ins: list[Tensor]):
    """(axes, starts, ends, steps) normalised to the static input shape."""
    shape = ins[0].shape
    starts = _ints_from(node, ins, 1, "starts", "starts")
    ends = _ints_from(node, ins, 2, "ends", "ends")
    if starts is None or ends is None or len(starts) != len(ends):
        raise ThinkerModelError(f"{node.label()}: needs constant starts and ends of equal length")
    axes = _ints_from(node, ins, 3, "axes", "axes") or list(range(len(starts)))
    steps = _ints_from(node, ins, 4, "steps", "steps") or [1] * len(starts)
    axes = [_axis(node, a, len(shape)) for a in axes]
    return axes, starts, ends, steps


@register
class Slice(Op):
    op_type = "Slice"
    attrs = {"starts": None, "ends": None, "axes": None}
    max_inputs = 5

    def _index(self, node, ins) -> tuple[slice, ...]:
        shape = ins[0].shape
        index = [slice(None)] * len(shape)
        for a, s, e, st in zip(*slice_params(node, ins), strict=True):
            if st == 0:
                raise ThinkerModelError(f"{node.label()}: slice step must not be 0")
            # numpy clamps start/stop like ONNX does; slice.indices() would turn a clamped
            # negative-step stop into -1, which numpy reads as "the last element"
            index[a] = slice(s, e, st)
        return tuple(index)

    def infer(self, node, ins):
        probe = np.empty(ins[0].shape, dtype=np.uint8)[self._index(node, ins)]
        return [spec(probe.shape, ins[0].dtype, ins[0].exponent)]

    def prepare(self, node, ins, outs):
        index = self._index(node, ins)
        b0, label = (ins[0].shape[0] if ins[0].shape else 1), node.label()
        if index and index[0] not in (slice(None), slice(0, b0, 1)):
            batch_index = index

            def run(x, *_):
                if x.shape[0] != b0:
                    raise ThinkerModelError(f"{label}: slices the batch axis; run with batch {b0}")
                return (x[batch_index],)

            return run
        rest = (slice(None), *index[1:])

        def run_batched(x, *_):
            return (x[rest],)

        return run_batched


@register
class Split(Op):
    op_type = "Split"
    attrs = {"axis": 0, "split": None, "num_outputs": None}
    max_inputs = 2

    def _sizes(self, node, ins) -> tuple[int, list[int]]:
        shape = ins[0].shape
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(shape))
        sizes = _ints_from(node, ins, 1, "split", "split")
        if sizes is None:
            parts = len(node.outputs)
            chunk = -(-shape[axis] // parts)
            sizes = [min(chunk, shape[axis] - i * chunk) for i in range(parts)]
        if sum(sizes) != shape[axis] or len(sizes) != len(node.outputs) or min(sizes) < 0:
            raise ThinkerModelError(
                f"{node.label()}: split sizes {sizes} do not divide axis {axis} of "
                f"{ins[0].describe()} into {len(node.outputs)} outputs"
            )
        return axis, sizes

    def infer(self, node, ins):
        axis, sizes = self._sizes(node, ins)
        shape = ins[0].shape
        return [spec((*shape[:axis], n, *shape[axis + 1:]), ins[0].dtype, ins[0].exponent)
                for n in sizes]

    def prepare(self, node, ins, outs):
        axis, sizes = self._sizes(node, ins)
        cuts = list(np.cumsum(sizes)[:-1])

        def run(x, *_):
            return tuple(np.split(x, cuts, axis=axis))

        return run


@register
class Concat(Op):
    """Plain ONNX Concat: every input must already share one exponent (else use iqCat)."""

    op_type = "Concat"
    attrs = {"axis": 0}
    min_inputs, max_inputs = 1, 1 << 16

    def infer(self, node, ins):
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(ins[0].shape))
        exps = {t.exponent for t in ins if t.exponent is not None}
        if len(exps) > 1:
            raise ThinkerModelError(
                f"{node.label()}: inputs have different exponents {sorted(exps)}; "
                "concatenating them needs rescaling (iqCat)"
            )
        dtypes = {np.dtype(t.dtype) for t in ins}
        if len(dtypes) > 1:
            raise ThinkerModelError(f"{node.label()}: inputs mix dtypes {sorted(map(str, dtypes))}")
        return [spec(concat_shape(node, ins, axis), ins[0].dtype, exps.pop() if exps else None)]

    def prepare(self, node, ins, outs):
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(ins[0].shape))

        def run(*xs):
            return (np.concatenate(xs, axis=axis),)

        return run


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "replicate": "edge"}


class _PadBase(Op):
    attrs = {"mode": "constant", "pads": None, "value": 0.0}
    max_inputs = 4

    def _params(self, node, ins):
        rank = len(ins[0].shape)
        pads = _ints_from(node, ins, 1, "pads", "pads")
        if pads is None or len(pads) % 2 or len(pads) > 2 * rank:
            raise ThinkerModelError(
                f"{node.label()}: pads {pads} must list begin and end pads for up to {rank} axes"
            )
        half = len(pads) // 2
        first = rank - half  # shorter pads apply to the trailing axes
        widths = [(0, 0)] * first + [(pads[i], pads[i + half]) for i in range(half)]
        if len(ins) > 3 and ins[3] is not None:
            raise ThinkerModelError(f"{node.label()}: the axes input of Pad is not supported")
        if min(min(w) for w in widths) < 0:
            raise ThinkerModelError(f"{node.label()}: negative pads {pads} are not supported")
        mode = node.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in PAD_MODES:
            raise ThinkerModelError(
                f"{node.label()}: pad mode '{mode}' is not supported; "
                f"use one of {sorted(PAD_MODES)}"
            )
        value = node.attrs.get("value", 0)
        if len(ins) > 2 and ins[2] is not None:
            value = const_input(node, ins, 2, "constant_value").item()
        return widths, PAD_MODES[mode], value

    def infer(self, node, ins):
        widths, _, _ = self._params(node, ins)
        shape = tuple(d + a + b for d, (a, b) in zip(ins[0].shape, widths, strict=True))
        return [spec(shape, ins[0].dtype, ins[0].exponent)]

    def prepare(self, node, ins, outs):
        widths, mode, value = self._params(node, ins)
        if widths[0] != (0, 0):
            raise ThinkerModelError(f"{node.label()}: padding the batch axis is not supported")
        dtype = ins[0].dtype

        def run(x, *_):
            if mode == "constant":
                return (np.pad(x, widths, mode="constant", constant_values=dtype.type(value)),)
            return (np.pad(x, widths, mode=mode),)

        return run


@register
class Pad(_PadBase):
    op_type = "Pad"


@register
class IqPad(_PadBase):
    op_type = "iqPad"


@register
class Gather(Op):
    """Also nn.Embedding: an integer table (constant) indexed by the model's int64 input; the
    original linger names the table's exponent ``scale_w`` (``scale_o`` also accepted)."""

    op_type = "Gather"
    attrs = {"axis": 0, "scale_w": None, "scale_o": None, "parameter_bits": None,
             "platform": None}
    min_inputs = max_inputs = 2

    def infer(self, node, ins):
        data, indices = ins
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(data.shape))
        idx_shape = indices.shape
        q = data.exponent
        for key in ("scale_o", "scale_w"):
            if node.attrs.get(key) is not None:
                q = exponent(node, key)
                break
        return [spec((*data.shape[:axis], *idx_shape, *data.shape[axis + 1:]), data.dtype, q)]

    def prepare(self, node, ins, outs):
        data = ins[0]
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(data.shape))
        size, label = data.shape[axis], node.label()
        batch_axis = axis == 0 and not data.is_constant
        b0 = data.shape[0]

        def run(x, idx):
            idx = idx.astype(np.int64)
            if idx.size and (idx.min() < -size or idx.max() >= size):
                raise ThinkerModelError(
                    f"{label}: indices outside [-{size}, {size}) on axis {axis}"
                )
            if batch_axis and x.shape[0] != b0:
                raise ThinkerModelError(
                    f"{label}: gathers along the batch axis; run with batch {b0}"
                )
            return (np.take(x, np.where(idx < 0, idx + size, idx), axis=axis),)

        return run
