"""``tpacker --isstream split_h|split_w``: a model trained on whole sequences becomes one that
consumes a chunk per call and carries its state between calls.

The stream (time) axis of every graph input is its last axis (``split_w``) or the one before
(``split_h``): [B, C, T] and [B, C, F, T] stream on W, [B, T, F] on H. The pass follows that
axis through the graph and rewrites every op whose output at time t reads earlier inputs:

* a conv with ``k`` taps (dilation ``d``) along time reads ``d (k - 1)`` past frames: they
  become a state input ``<node>_history`` concatenated before the chunk (the conv loses its
  time padding), and the last ``d (k - 1)`` frames of that concatenation become the state
  output ``<node>_state``. Only causal convs stream (time padding ``d (k - 1)`` before, 0
  after, stride 1 along time); any other is refused, naming it;
* a GRUInt / LSTMInt gets its hidden (and cell) state as ``<node>_history`` /
  ``<node>_cell_history`` inputs and ``<node>_state`` / ``<node>_cell_state`` outputs.

Every other op must treat time frame by frame (element-wise ops, pointwise convs, linears over
features, softmax/layernorm/reductions over other axes, shape ops that keep the time axis
whole); an op that mixes frames is refused with its name and what to change. Concatenating the
chunk outputs gives the whole-sequence output of the unconverted model, bit for bit.

The states are listed in ``graph.streams`` as (history input, state output) pairs: the
executors feed each state output back into its history input on the next call (zeros at the
start of a stream, and after ``reset()``).
"""

from __future__ import annotations

import math

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Graph, Node, Tensor
from thinker.ops.base import exponent
from thinker.passes.edit import add_constant, add_node, placeholder, rename_uses
from thinker.resource.writer import ShapeRule

MODES = ("split_h", "split_w")
SAME_AXES = {"Quant", "Dequant", "Requant", "Relu", "Clip", "PRelu", "iqSigmoid", "iqTanh",
             "iqAdd", "iqSub", "iqMul", "iqDiv", "BatchNorm2dInt", "Identity"}
CONVS = ("Conv1dInt", "Conv2dInt")
RNNS = ("GRUInt", "LSTMInt")
RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


class StreamError(ThinkerModelError):
    pass


def _refuse(node: Node, why: str, fix: str) -> None:
    raise StreamError(f"{node.label()}: {why}, so the model cannot run on a stream; {fix}")


def _axis_attr(node: Node, rank: int, keys=("axis", "dim"), default: int = -1) -> int:
    value = next((node.attrs[k] for k in keys if node.attrs.get(k) is not None), default)
    return int(value) % max(rank, 1)


def _reshape_axis(src: tuple, dst: tuple, axis: int) -> int | None:
    """The axis of ``dst`` that holds ``src``'s axis whole (same size, same elements before);
    the last such axis when size-1 axes surround it, None when it is merged or split."""
    before = math.prod(src[:axis])
    found = [b for b in range(len(dst)) if dst[b] == src[axis] and math.prod(dst[:b]) == before]
    return found[-1] if found else None


class _Stream:
    def __init__(self, graph: Graph, mode: str):
        if mode not in MODES:
            raise ThinkerModelError(f"--isstream {mode!r}: use one of {', '.join(MODES)}")
        self.g, self.mode = graph, mode
        self.time: dict[str, int] = {}
        self.streams: list[tuple[str, str]] = []

    def t(self, name: str) -> int | None:
        return self.time.get(name) if name else None

    def run(self) -> Graph:
        g = self.g
        for name in g.inputs:
            rank = len(g.tensors[name].shape)
            axis = rank - 1 if self.mode == "split_w" else rank - 2
            if axis < 1:
                raise StreamError(
                    f"input {g.tensors[name].describe()}: no {self.mode} axis after the batch; "
                    "use split_w (the last axis) or give the input a time axis")
            self.time[name] = axis
        for node in list(g.nodes):
            self.visit(node)
        for name in g.outputs:
            if self.t(name) is None and name not in [s for _, s in self.streams]:
                raise StreamError(f"graph output {g.tensors[name].describe()} has no time axis "
                                  "left (it summarises the whole sequence): it cannot be "
                                  "produced chunk by chunk; output per-frame values instead")
        g.streams = list(self.streams)
        # a chunk may be 1..(the exported length) frames: memory is planned for the longest
        known = {d[0] for d in g.dynamic}
        g.dynamic += [(name, self.time[name], 1, g.tensors[name].shape[self.time[name]], 1)
                      for name in g.inputs if name in self.time and name not in known]
        return g

    # -- one node -------------------------------------------------------------------------

    def visit(self, node: Node) -> None:
        g = self.g
        timed = [(i, self.t(n)) for i, n in enumerate(node.inputs) if self.t(n) is not None]
        if not timed:
            return  # constants and states only: the same for every frame
        kind = node.op_type
        x = g.tensors[node.inputs[timed[0][0]]]
        t = timed[0][1]
        rank = len(x.shape)
        if kind in SAME_AXES:
            out_rank = len(g.tensors[node.outputs[0]].shape)
            for name in node.inputs:
                if not name:
                    continue
                tin = g.tensors[name]
                shift = out_rank - len(tin.shape)
                axis = self.t(name)
                if axis is not None and axis + shift != t + out_rank - rank:
                    _refuse(node, "its inputs stream along different axes",
                            "transpose one of them")
                if axis is None and 0 <= t + out_rank - rank - shift < len(tin.shape) \
                        and tin.shape[t + out_rank - rank - shift] != 1:
                    _refuse(node, f"it combines the stream with '{name}', which varies along "
                            "the time axis", "make that operand constant over time")
            self.out(node, t + out_rank - rank)
        elif kind in CONVS:
            self.conv(node, t, rank)
        elif kind in RNNS:
            self.rnn(node, t)
        elif kind == "Transpose":
            perm = node.attrs.get("perm") or list(range(rank))[::-1]
            self.out(node, [int(p) for p in perm].index(t))
        elif kind in RESHAPES:
            axis = _reshape_axis(tuple(x.shape), tuple(g.tensors[node.outputs[0]].shape), t)
            if axis is None:
                _refuse(node, "it merges the time axis with others",
                        "keep time as its own axis")
            if kind == "Reshape":
                self.free_length(node, t, axis)
            self.out(node, axis)
        elif kind == "LinearInt":
            if t == rank - 1:
                _refuse(node, "it mixes the frames of the time axis (its last axis)",
                        "apply it over features, with time on another axis")
            self.out(node, t)
        elif kind in ("SoftmaxInt", "LogSoftmaxInt", "GluInt", "Concat", "iqCat", "Split",
                      "Gather"):
            default = {"Concat": 0, "Split": 0, "Gather": 0, "iqCat": 1}.get(kind, -1)
            keys = ("dim", "axis") if kind in ("GluInt", "iqCat") else ("axis", "dim")
            if _axis_attr(node, rank, keys, default) == t:
                _refuse(node, "it works along the time axis", "use another axis")
            if kind in ("Concat", "iqCat") and len({self.t(n) for n in node.inputs}) != 1:
                _refuse(node, "it joins streamed and non-streamed tensors", "stream all")
            self.out(node, t)
        elif kind in ("iqSum", "iqVar", "LayerNormInt"):
            self.reduce(node, t, rank)
        elif kind in ("MaxPool", "AvgPool2dInt"):
            self.pool(node, t, rank)
        elif kind in ("Pad", "iqPad", "Slice", "Resize"):
            self.reshaping(node, t, rank)
        elif kind == "BmmInt":
            if t >= rank - 2:
                _refuse(node, "its matrix product runs along the time axis",
                        "keep time in the leading axes")
            self.out(node, t)
        else:
            _refuse(node, f"{kind} has no streaming form", "run it after the stream")

    def free_length(self, node: Node, t: int, axis: int) -> None:
        """A Reshape's target shape names the exported time length: make it follow the chunk
        (-1 infers it; 0, copying the input's length, only when -1 is taken: passes may
        rewrite what feeds the Reshape, e.g. a Transpose of size-1 axes at a 1-frame chunk)."""
        g = self.g
        target = np.array(g.tensors[node.inputs[1]].data, dtype=np.int64).reshape(-1)
        if axis == t and -1 in target:  # 0: the input's length (while the axis keeps its index)
            target[axis] = 0
        elif -1 in target:
            _refuse(node, "its target shape leaves two lengths open",
                    "give every axis but time a fixed length")
        else:
            target[axis] = -1
        node.inputs[1] = add_constant(g, f"{node.name}_chunk_shape", target)

    def out(self, node: Node, axis: int, outputs=None) -> None:
        for name in (outputs or node.outputs):
            self.time[name] = axis

    def reduce(self, node: Node, t: int, rank: int) -> None:
        if node.op_type == "LayerNormInt":
            n = int(np.prod(self.g.tensors[node.inputs[1]].shape))
            k = next(k for k in range(1, rank + 1)
                     if int(np.prod(self.g.tensors[node.inputs[0]].shape[-k:])) == n)
            if t >= rank - k:
                _refuse(node, "it normalises over the time axis", "normalise per frame")
            self.out(node, t)
            return
        from thinker.ops.reduce import reduce_axes

        axes = reduce_axes(node, rank)
        if t in axes:
            _refuse(node, "it reduces over the time axis (e.g. a mean over time)",
                    "reduce per frame, or run the reduction after the stream")
        keep = bool(int(node.attrs.get("keepdims", 1)))
        self.out(node, t if keep else t - sum(a < t for a in axes))

    def pool(self, node: Node, t: int, rank: int) -> None:
        from thinker.ops.pool import PoolGeometry

        geo = PoolGeometry(node, self.g.tensors[node.inputs[0]])
        i = t - 2
        n = len(geo.kernel)
        if not 0 <= i < n or geo.kernel[i] != 1 or geo.strides[i] != 1 or geo.pads[i] or \
                geo.pads[i + n]:
            _refuse(node, "it pools across frames of the time axis",
                    "pool over other axes only (kernel 1 along time)")
        self.out(node, t)

    def reshaping(self, node: Node, t: int, rank: int) -> None:
        g, kind = self.g, node.op_type
        x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        if kind == "Slice":
            from thinker.ops.shape import slice_params

            ins = [g.tensors[n] if n else None for n in node.inputs]
            axes, _, _, steps = slice_params(node, ins)
            if t in axes and (x.shape[t] != y.shape[t] or steps[axes.index(t)] != 1):
                _refuse(node, "it slices the time axis", "slice other axes only")
        elif x.shape[t] != y.shape[t]:
            _refuse(node, f"{kind} changes the length of the time axis",
                    "pad or resize other axes only")
        self.out(node, t)

    # -- the rewrites ----------------------------------------------------------------------

    def conv(self, node: Node, t: int, rank: int) -> None:
        from thinker.ops.conv import geometry

        g = self.g
        x = g.tensors[node.inputs[0]]
        spatial = 1 if node.op_type == "Conv1dInt" else 2
        if t < 2:
            _refuse(node, f"it mixes the channels of the streamed axis {t}",
                    "stream along a spatial axis (split_w or split_h)")
        geo = geometry(node, g.tensors[node.inputs[1]].shape, spatial)
        i = t - 2 + (2 - spatial)  # index into the 2-D geometry (a 1-D conv is height 1)
        k, s, d = geo.kernel[i], geo.strides[i], geo.dilations[i]
        before, after = geo.pads[i], geo.pads[i + 2]
        history = d * (k - 1)
        if s != 1 and k > 1:
            _refuse(node, f"its stride along time is {s}", "stream a stride-1 conv")
        if after != 0 or before != history:
            _refuse(node, f"it is not causal along time (pads {before} before, {after} after; "
                    f"{k} taps with dilation {d} need {history} before and 0 after)",
                    "pad only the past (a causal conv) to stream it")
        if history == 0:
            self.out(node, t)
            return
        hist = self._state_input(f"{node.name}_history", x, t, history)
        index = g.nodes.index(node)
        joined = placeholder(g, f"{node.name}_context", x)
        add_node(g, index, "Concat", f"{node.name}_join", [hist, node.inputs[0]], [joined],
                 {"axis": t})
        node.inputs[0] = joined
        pads = list(node.attrs.get("pads") or [0] * (2 * spatial))
        pads[t - 2] = 0
        pads[t - 2 + spatial] = 0
        node.attrs["pads"] = pads
        state = f"{node.name}_state"
        add_node(g, index + 1, "Slice", f"{node.name}_keep", [
            joined, add_constant(g, f"{node.name}_keep_starts", np.array([-history], np.int64)),
            add_constant(g, f"{node.name}_keep_ends", np.array([2**62], np.int64)),
            add_constant(g, f"{node.name}_keep_axes", np.array([t], np.int64))], [state])
        g.tensors[state] = Tensor(state, tuple(g.tensors[hist].shape), x.dtype, x.exponent)
        g.outputs.append(state)
        self.streams.append((hist, state))
        self.time[joined] = t
        self.out(node, t)

    def _state_input(self, name: str, like: Tensor, axis: int, length: int) -> str:
        shape = list(like.shape)
        shape[axis] = length
        return self._input(name, tuple(shape), like.dtype, like.exponent)

    def _input(self, name: str, shape, dtype, exp) -> str:
        g = self.g
        if name in g.tensors:
            raise StreamError(f"tensor name '{name}' is taken; rename the node")
        g.tensors[name] = Tensor(name, tuple(int(v) for v in shape), np.dtype(dtype), exp)
        g.inputs.append(name)
        return name

    def rnn(self, node: Node, t: int) -> None:
        g = self.g
        batch_first = bool(int(node.attrs.get("batch_first") or 0))
        if t != (1 if batch_first else 0):
            _refuse(node, f"its sequence axis is {1 if batch_first else 0}, the stream's {t}",
                    "stream along the recurrent layer's sequence axis")
        if not int(node.attrs.get("go_forward", 1)):
            _refuse(node, "it runs backwards in time (a bidirectional layer)",
                    "stream unidirectional layers only")
        if int(node.attrs.get("has_hidden") or 0) or int(node.attrs.get("has_cell") or 0):
            _refuse(node, "it takes an initial state from the graph",
                    "export it without h0/c0: the stream carries the state")
        outs = [g.tensors[n] for n in node.outputs]
        x = g.tensors[node.inputs[0]]
        batch = x.shape[0] if batch_first else x.shape[1]
        hidden = outs[1].shape[-1]
        h = self._input(f"{node.name}_history", (1, batch, hidden), outs[1].dtype,
                        exponent(node, "scale_h"))
        inputs = [node.inputs[0], h]
        node.attrs["has_hidden"] = 1
        pairs = [(h, 1, f"{node.name}_state")]
        if node.op_type == "LSTMInt":
            c = self._input(f"{node.name}_cell_history", (1, batch, hidden), np.int32, 15)
            inputs.append(c)
            node.attrs["has_cell"] = 1
            pairs.append((c, 2, f"{node.name}_cell_state"))
        node.inputs = inputs + node.inputs[1:]
        for history, slot, state in pairs:
            old = node.outputs[slot]
            if state in g.tensors:
                raise StreamError(f"tensor name '{state}' is taken; rename the node")
            g.tensors[state] = Tensor(state, outs[slot].shape, outs[slot].dtype,
                                      outs[slot].exponent)
            rename_uses(g, old, state)
            node.outputs[slot] = state
            g.tensors.pop(old, None)
            if state not in g.outputs:
                g.outputs.append(state)
            self.streams.append((history, state))
        self.out(node, t, [node.outputs[0]])


def fold_zero_pads(graph: Graph) -> Graph:
    """A constant-zero Pad read only by convs is folded into their ``pads`` (the same zeros):
    a causal conv written as ``ZeroPad1d((k - 1, 0))`` + ``Conv1d`` then streams like one
    with causal padding. Edits ``graph`` in place."""
    from thinker.ops.shape import Pad

    consumers = graph.consumers()
    for node in list(graph.nodes):
        if node.op_type not in ("Pad", "iqPad") or node.outputs[0] in graph.outputs:
            continue
        readers = consumers.get(node.outputs[0], [])
        ins = [graph.tensors[n] if n else None for n in node.inputs]
        widths, mode, value = Pad()._params(node, ins)
        if not readers or mode != "constant" or value != 0 or widths[0] != (0, 0) or \
                widths[1] != (0, 0) or any(r.op_type not in CONVS or r.inputs[0] !=
                                           node.outputs[0] for r in readers):
            continue
        for conv in readers:
            spatial = 1 if conv.op_type == "Conv1dInt" else 2
            if len(widths) != 2 + spatial:
                break
            pads = list(conv.attrs.get("pads") or [0] * (2 * spatial))
            for k in range(spatial):
                pads[k] += widths[2 + k][0]
                pads[k + spatial] += widths[2 + k][1]
            conv.attrs["pads"] = pads
            conv.inputs[0] = node.inputs[0]
        else:
            graph.nodes.remove(node)
    graph.remove_unused()
    return graph


def streamify(graph: Graph, mode: str) -> Graph:
    """The streaming form of ``graph`` (a copy); ``result.streams`` lists the states."""
    return _Stream(fold_zero_pads(graph.copy()), mode).run()


# -- dynamic axes: how every tensor's dims follow the lengths (model.bin section 10) -----------

MAX_CHECKED_LENGTHS = 64  # lengths whose shapes are inferred when fitting the rules


def allowed_lengths(minimum: int, maximum: int, factor: int) -> list[int]:
    """MIN, MIN + FACTOR, ... <= MAX; more than MAX_CHECKED_LENGTHS are sampled evenly (with
    both ends): the C executor re-checks every op's shapes at the lengths it is given."""
    count = (maximum - minimum) // factor + 1
    if count <= MAX_CHECKED_LENGTHS:
        return [minimum + k * factor for k in range(count)]
    picks = {round(k * (count - 1) / (MAX_CHECKED_LENGTHS - 1)) for k in
             range(MAX_CHECKED_LENGTHS)}
    return sorted({minimum + k * factor for k in picks} | {maximum - (maximum - minimum) % factor})


def _fit(points: list[tuple[int, int]]) -> tuple[int, int, int] | None:
    """(mul, add, div) with ``(mul * L + add) // div == d`` for every (L, d), mul >= 0, div in
    1..64, smallest div first; None when no such rule exists."""
    (l0, d0), (l1, d1) = points[0], points[-1]
    for div in range(1, 65):
        slope = (d1 - d0) * div / max(l1 - l0, 1)
        for mul in sorted({max(0, int(slope) + k) for k in (-1, 0, 1, 2)}):
            lo = max(div * d - mul * length for length, d in points)
            hi = min(div * d - mul * length + div - 1 for length, d in points)
            if lo <= hi:
                return mul, lo, div
    return None


def dynamic_shape_rules(graph: Graph,
                        dynamic: list[tuple[str, int, int, int, int]]) -> list[ShapeRule]:
    """For each dynamic axis (input, axis, min, max, factor) of ``graph`` (shaped at MAX), the
    rule of every activation dim that follows its length, checked by shape inference at the
    allowed lengths. A dim that follows two dynamic axes, or no ``floor((mul L + add) / div)``,
    is refused naming the tensor."""
    from thinker.runtime.dynamic import reshaped

    rules: list[ShapeRule] = []
    owner: dict[tuple[str, int], int] = {}
    for index, (name, axis, lo, hi, factor) in enumerate(dynamic):
        lengths = allowed_lengths(lo, hi, factor)
        if hi not in lengths:
            lengths.append(hi)
        seen: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for length in lengths:
            shape = list(graph.tensors[name].shape)
            shape[axis] = length
            g = graph if length == hi else reshaped(graph, {name: tuple(shape)})
            for t in g.tensors.values():
                if t.is_constant:
                    continue
                for a, d in enumerate(t.shape):
                    seen.setdefault((t.name, a), []).append((length, int(d)))
        for (tensor, a), points in seen.items():
            if len({d for _, d in points}) == 1 and (tensor, a) != (name, axis):
                continue
            if (tensor, a) in owner:
                raise StreamError(f"tensor '{tensor}' axis {a} follows two dynamic axes; give "
                                  "the model one dynamic axis per dimension")
            fitted = (1, 0, 1) if (tensor, a) == (name, axis) else _fit(sorted(points))
            if fitted is None:
                raise StreamError(f"tensor '{tensor}' axis {a} takes lengths "
                                  f"{[d for _, d in points]} for input lengths "
                                  f"{[x for x, _ in points]}: no rule floor((m L + a) / d) "
                                  "gives them; choose another MIN:MAX:FACTOR")
            owner[(tensor, a)] = index
            rules.append(ShapeRule(tensor, a, index, *fitted))
    return rules
