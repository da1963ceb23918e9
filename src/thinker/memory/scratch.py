"""Kernel scratch: the bytes of workspace each op's C kernel needs while it runs.

These are the Python twins of the ``needs->scratch`` computed by the C executor's prepare
steps (``executor/src/ops/*.c``); each function names the C function it mirrors, and that C
function points back here. tpacker plans every op's scratch as a buffer live only during its
op (``thinker.memory.lifetimes``), records the region in model.bin (docs/format.md, section
9) and the C executor refuses a model whose prepare-computed need exceeds the recorded size.
Whoever changes a C scratch formula changes the twin here in the same commit;
``tests/test_memory_plan.py`` checks both agree on every zoo model.

Every function takes the graph and the node and returns a byte count (0: no scratch).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from thinker.graph.ir import Graph, Node

_MAGNITUDE = {np.dtype(np.int8): 1 << 7, np.dtype(np.uint8): 255, np.dtype(np.int16): 1 << 15,
              np.dtype(np.int32): 1 << 31}


def _magnitude(dtype: np.dtype) -> int:
    """``thk_magnitude`` (accumulate.c): the largest |value| of an integer dtype."""
    return _MAGNITUDE.get(np.dtype(dtype), 1 << 63)


def _acc32(graph: Graph, node: Node, weight_rows: np.ndarray) -> bool:
    """``thk_outstage_prepare``'s ``acc32``: |x| * max row sum of |w| < 2**31."""
    x = graph.tensors[node.inputs[0]]
    rows = np.abs(weight_rows.astype(np.int64)).sum(axis=1) if weight_rows.size else [0]
    return _magnitude(x.dtype) * int(np.max(rows)) < (1 << 31)


def _fast(graph: Graph, node: Node, weight_rows: np.ndarray) -> bool:
    """``p->fast`` of conv.c / linear.c: int8 input, 8- or 4-bit (int8-held) weights, int32
    accumulator proven safe."""
    x = graph.tensors[node.inputs[0]]
    w = graph.tensors[node.inputs[1]]
    return (np.dtype(x.dtype) == np.int8 and np.dtype(w.data.dtype) == np.int8
            and _acc32(graph, node, weight_rows))


def _kpad(k: int) -> int:
    """``thk_kpad`` (gemm_s8.h): K rounded up to a multiple of 4."""
    return (k + 3) & ~3


def _least_tile(kp: int, rows: int) -> int:
    """``thk_tile_rows``: about 4 KB of patch rows, a multiple of 4, at least 4, at most
    ``rows`` rounded up to 4."""
    return min(max((4096 // (2 * kp)) & ~3, 4), (rows + 3) & ~3)


def gemm_scratch(k: int, rows: int, tile: int | None = None) -> int:
    """``thk_gemm_scratch`` / ``thk_gemm_scratch_rows`` (executor/src/ops/gemm_s8.h): a tile of
    patch rows (2 bytes per value; ``tile`` rows, by default the least, ``_least_tile``), a
    gather row, two unpacked weight rows and two weight rows as int16 pairs."""
    kp = _kpad(k)
    return 2 * kp * (_least_tile(kp, rows) if tile is None else tile) + 7 * kp


def gemm_tile_in(k: int, rows: int, budget: int) -> int:
    """``thk_gemm_tile_in``: the tile rows a region of ``budget`` bytes holds (as many as fit,
    at least the least, at most ``rows`` rounded up to 4); 0 below ``gemm_scratch(k, rows)``."""
    kp = _kpad(k)
    if budget < gemm_scratch(k, rows):
        return 0
    least, most = _least_tile(kp, rows), (rows + 3) & ~3
    if not kp:
        return least
    fit = ((budget - 7 * kp) // (2 * kp)) & ~3
    return most if fit > most else max(fit, least)


# a tiled GEMM's region is grown into arena bytes free at its op up to this size (larger tiles
# prepare each weight row pair for more patch rows: docs/memory.md)
GROWN_TILE_BYTES = 65536


def gemm_shape(graph: Graph, node: Node) -> tuple[int, int] | None:
    """(K, patch rows) of a conv / linear whose C kernel runs the tiled GEMM, else None."""
    if node.op_type in ("Conv1dInt", "Conv2dInt"):
        w = graph.tensors[node.inputs[1]]
        out = graph.tensors[node.outputs[0]]
        if w.data is None:
            return None
        O, K = int(w.shape[0]), int(np.prod(w.shape[1:]))
        depthwise = int(w.shape[1]) == 1 and int(node.attrs.get("group") or 1) == O
        if depthwise or not _fast(graph, node, np.asarray(w.data).reshape(O, K)):
            return None
        return K, int(np.prod(out.shape[2:]))
    if node.op_type == "LinearInt":
        w = graph.tensors[node.inputs[1]]
        x = graph.tensors[node.inputs[0]]
        if w.data is None or len(w.shape) != 2:
            return None
        tb = node.attrs.get("transB")
        data = np.asarray(w.data)
        rows = data if (1 if tb is None else int(tb)) else data.T  # [out_f, in_f]
        in_f = int(rows.shape[1])
        if not _fast(graph, node, rows):
            return None
        count = int(np.prod(x.shape)) if x.shape is not None else 0
        return in_f, count // in_f if in_f else 0
    return None


def conv_scratch(graph: Graph, node: Node) -> int:
    """Conv1dInt / Conv2dInt: ``conv_scratch`` in executor/src/ops/conv.c: nothing on the
    generic path; depthwise (group = output channels = input channels): an int32 output row,
    the kernel columns' tap ranges, one int4 weight row and a zero-padded copy of the input
    rows one channel's outputs read (``dw_rows`` x ``dw_row_len``); otherwise the tiled GEMM's
    scratch."""
    w = graph.tensors[node.inputs[1]]
    out = graph.tensors[node.outputs[0]]
    if w.data is None:
        return 0
    spatial = len(w.shape) - 2
    O, cg = int(w.shape[0]), int(w.shape[1])
    kh, kw = (1, int(w.shape[2])) if spatial == 1 else (int(w.shape[2]), int(w.shape[3]))
    ho, wo = (1, int(out.shape[2])) if spatial == 1 else (int(out.shape[2]), int(out.shape[3]))
    shape = gemm_shape(graph, node)
    if shape is not None:
        return gemm_scratch(*shape)
    depthwise = cg == 1 and int(node.attrs.get("group") or 1) == O
    # gemm_shape answered for every other conv (no GEMM: the generic path, no scratch)
    if depthwise and _fast(graph, node, np.asarray(w.data).reshape(O, kh * kw)):
        strides = node.attrs.get("strides") or [1] * spatial
        dilations = node.attrs.get("dilations") or [1] * spatial
        sw, dw = int(strides[-1]), int(dilations[-1])
        sh = int(strides[0]) if spatial == 2 else 1
        dh = int(dilations[0]) if spatial == 2 else 1
        row = ((wo + 1) * sw + (kw - 1) * dw + 1 + 3) & ~3  # dw_row_len
        rows = (ho - 1) * sh + (kh - 1) * dh + 1  # dw_rows
        return 4 * wo + 8 * kw + _kpad(kh * kw) + rows * row
    return 0


def conv_transpose_scratch(graph: Graph, node: Node) -> int:
    """ConvTranspose2dInt: ``thk_conv_transpose2d_prepare`` in executor/src/ops/conv.c: one
    int64 sum per output, no scratch."""
    return 0


def linear_scratch(graph: Graph, node: Node) -> int:
    """LinearInt: ``thk_linear_prepare`` in executor/src/ops/linear.c: the tiled GEMM's
    scratch over the input rows on the fast path, else nothing."""
    shape = gemm_shape(graph, node)
    return 0 if shape is None else gemm_scratch(*shape)


def softmax_scratch(graph: Graph, node: Node) -> int:
    """SoftmaxInt / LogSoftmaxInt: ``softmax_like`` in executor/src/ops/nonlinear.c (one row
    of int32 numerators)."""
    x = graph.tensors[node.inputs[0]]
    axis = node.attrs.get("axis")
    if axis is None:
        axis = node.attrs.get("dim")
    axis = -1 if axis is None else int(axis)
    return 4 * int(x.shape[axis])


def rnn_scratch(graph: Graph, node: Node) -> int:
    """GRUInt / LSTMInt: ``thk_rnn_prepare`` in executor/src/ops/rnn.c:
    4 (4 H + F + B H (1 + LSTM)) bytes."""
    cell = node.op_type == "LSTMInt"
    has_h = bool(node.attrs.get("has_hidden") or 0)
    has_c = cell and bool(node.attrs.get("has_cell") or 0)
    w_index = 1 + has_h + has_c
    x = graph.tensors[node.inputs[0]]
    wh = graph.tensors[node.inputs[w_index + 1]]
    H = int(wh.shape[1])
    F = int(x.shape[2])
    B = int(x.shape[0 if node.attrs.get("batch_first") else 1])
    return 4 * (4 * H + F + B * H * (2 if cell else 1))


SCRATCH: dict[str, Callable[[Graph, Node], int]] = {
    "Conv1dInt": conv_scratch,
    "Conv2dInt": conv_scratch,
    "ConvTranspose2dInt": conv_transpose_scratch,
    "LinearInt": linear_scratch,
    "SoftmaxInt": softmax_scratch,
    "LogSoftmaxInt": softmax_scratch,
    "GRUInt": rnn_scratch,
    "LSTMInt": rnn_scratch,
}


# ops whose C kernel has a scratch-free path computing the same integers (int64 accumulators,
# generic loads: ``p->fast = 0`` in conv.c / linear.c), taken when the planned region (the
# op's budget in model.bin section 9) is smaller than its fast path's need
SCRATCH_FREE_PATH = frozenset({"Conv1dInt", "Conv2dInt", "LinearInt"})


def op_scratch(graph: Graph, node: Node, budget: int | None = None) -> int:
    """Bytes of C kernel scratch ``node`` needs while it runs (0 for most ops). ``budget``:
    the bytes planned for it (None: unlimited); a kernel with a scratch-free path takes it,
    needing 0, when its fast path needs more (the C prepare's ``needs->budget`` rule)."""
    fn = SCRATCH.get(node.op_type)
    need = fn(graph, node) if fn else 0
    if budget is not None and node.op_type in SCRATCH_FREE_PATH:
        if need > budget:
            return 0
        shape = gemm_shape(graph, node)
        if shape is not None:  # the tiled GEMM takes as large a tile as the region holds
            return gemm_scratch(shape[0], shape[1], gemm_tile_in(*shape, budget))
    return need
