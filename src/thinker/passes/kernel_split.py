"""Exact rewrites of convolutions that break a device's geometry rules.

* ``split_large_kernels``: a Conv1dInt / Conv2dInt whose kernel exceeds the device's kernel
  range (e.g. the 10x4 first conv of the MLPerf Tiny DS-CNN on venus, kernels 1..5) becomes
  one conv per kernel block, each within the range. The blocks keep the conv's stride,
  dilation and group; each reads the input rows/columns its kernel block multiplies (a Slice
  plus the part of the original padding that falls on its side), so every block computes the
  integer partial sum of the original accumulator over its taps. The blocks write their raw
  accumulators (``o_bits`` 32 at exponent ``qx + qw``, no rounding); the bias is added once
  (first block); ``iqAdd`` at that exponent and 32 bits sums them exactly; a single
  ``Requant`` to the conv's ``scale_o`` / ``o_bits`` rounds once, and the conv's fused
  activation follows as ``Clip`` / ``Relu``. Bit-identical to the original conv: every
  partial and total accumulator is bounded below 2**31 (checked from the actual weights; a
  conv whose bound is larger is left alone and reported by the checks).
* ``pad_excess``: a conv whose padding exceeds the device's pad range gets an explicit zero
  ``Pad`` for the excess (zero padding either way).
* ``dilate_kernels``: a dilated conv on a device without that dilation becomes an undilated
  conv whose kernel holds zeros between the taps (same integers; the kernel grows to
  ``d (k - 1) + 1``, then ``split_large_kernels`` brings it within range when needed).
* ``stride_slices``: a conv whose kernel is smaller than its stride on a device that needs
  kernel >= stride reads a strided Slice of its input (the only rows/columns the kernel ever
  touches) at stride 1.

Each rewrite is recorded in the graph's ``rewrites`` list (tpacker prints and reports them).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from thinker import qmath
from thinker.devices import DeviceProfile
from thinker.graph.ir import Graph, Node
from thinker.ops.base import exponent
from thinker.ops.conv import geometry
from thinker.passes.edit import add_constant, add_node, placeholder

CONVS = ("Conv1dInt", "Conv2dInt")
ACC_LIMIT = 2**31 - 1


def record(graph: Graph, text: str) -> None:
    """Remember a rewrite so tpacker can list it (stage line, notes and report)."""
    rewrites = getattr(graph, "rewrites", None)
    if rewrites is None:
        rewrites = []
        graph.rewrites = rewrites  # type: ignore[attr-defined]
    rewrites.append(text)


def kernel_blocks(k: int, stride: int, hi: int, at_least_stride: bool) -> list[tuple[int, int]]:
    """Split ``k`` kernel taps into the fewest contiguous blocks of at most ``hi`` taps, as
    equal as possible; [] when a block would be smaller than the stride and the device needs
    kernel >= stride."""
    if k <= hi:
        return [(0, k)]
    n = -(-k // hi)
    base, extra = divmod(k, n)
    sizes = [base + 1] * extra + [base] * (n - extra)
    if at_least_stride and min(sizes) < stride:
        return []
    starts = list(itertools.accumulate([0, *sizes[:-1]]))
    return [(s, s + size) for s, size in zip(starts, sizes, strict=True)]


def splittable(kernel, strides, dilations, rules: dict) -> bool:
    """Whether ``split_large_kernels`` brings this conv geometry within ``rules`` (used by
    linger's pre-flight check too)."""
    dilated = any(d > 1 for d in dilations)
    krange = rules.get("kernel_dilated" if dilated else "kernel")
    if not krange:
        return False
    at_least = bool(rules.get("kernel_at_least_stride"))
    return all(kernel_blocks(int(k), int(s), int(krange[1]), at_least)
               for k, s in zip(kernel, strides, strict=True))


def _acc_bound(g: Graph, node: Node) -> int:
    x, w = g.tensors[node.inputs[0]], g.tensors[node.inputs[1]].data.astype(np.int64)
    info = np.iinfo(x.dtype)
    xmax = max(abs(int(info.min)), int(info.max))
    wsum = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0))
    bias = 0
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = int(np.abs(g.tensors[node.inputs[2]].data.astype(np.int64)).max(initial=0))
    return xmax * wsum + bias


def _slice(g: Graph, index: int, base: str, src: str, ranges: list[tuple[int, int, int]],
           steps: list[int] | None = None) -> str:
    """Slice ``src`` on several axes: ranges = [(axis, start, stop)]."""
    out = placeholder(g, base, g.tensors[src])
    axes = [a for a, _, _ in ranges]
    consts = [add_constant(g, f"{base}_{k}", np.array(v, dtype=np.int64)) for k, v in (
        ("starts", [s for _, s, _ in ranges]), ("ends", [e for _, _, e in ranges]),
        ("axes", axes), *((("steps", steps),) if steps else ()))]
    add_node(g, index, "Slice", base, [src, *consts], [out])
    return out


def _geometry_lists(node: Node, g: Graph):
    """Per spatial axis (H, W for 2-D; L for 1-D): kernel, stride, dilation, pad begin, pad
    end, input size; and the tensor axis of each."""
    spatial = 1 if node.op_type == "Conv1dInt" else 2
    w = g.tensors[node.inputs[1]]
    geo = geometry(node, w.shape, spatial)
    x = g.tensors[node.inputs[0]]
    pt, pl, pb, pr = geo.pads
    rows = [(geo.kernel[0], geo.strides[0], geo.dilations[0], pt, pb, x.shape[2] if spatial == 2
             else 1), (geo.kernel[1], geo.strides[1], geo.dilations[1], pl, pr, x.shape[-1])]
    rows = rows[2 - spatial:]
    axes = [2, 3][2 - spatial:] if spatial == 2 else [2]
    return spatial, rows, axes


def _pads_attr(spatial: int, begin: list[int], end: list[int]) -> list[int]:
    return [*begin, *end]


def _split_one(g: Graph, node: Node, blocks_per_axis, rows, axes, spatial) -> bool:
    x_name, w_name = node.inputs[0], node.inputs[1]
    w = g.tensors[w_name].data
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    qx, qw = exponent(node, "scale_x"), exponent(node, "scale_w")
    qin = qx + qw
    out_name = node.outputs[0]
    out_t = g.tensors[out_name]
    outs_per_axis = []
    for k, s, d, pb, pe, size in rows:
        outs_per_axis.append((size + pb + pe - d * (k - 1) - 1) // s + 1)
    parts = []  # (weight block, slice ranges, pads begin, pads end)
    for combo in itertools.product(*blocks_per_axis):
        ranges, begin, end, empty = [], [], [], False
        for (r0, r1), (_, s, d, pb, _, size), axis, n_out in zip(
                combo, rows, axes, outs_per_axis, strict=True):
            a = r0 * d - pb                       # first input index the block reads
            b = (n_out - 1) * s + (r1 - 1) * d - pb + 1  # one past the last
            lo, hi = max(a, 0), min(b, size)
            if lo >= hi:
                empty = True  # the block only ever multiplies padding: contributes 0
                break
            if (lo, hi) != (0, size):
                ranges.append((axis, lo, hi))
            begin.append(max(-a, 0))
            end.append(max(b - size, 0))
        if empty:
            continue
        index = tuple(slice(None) for _ in range(2)) + tuple(slice(r0, r1) for r0, r1 in combo)
        parts.append((w[index], ranges, begin, end, [r1 - r0 for r0, r1 in combo]))
    if not parts:
        return False
    at = g.nodes.index(node)
    g.nodes.remove(node)
    acc_scale = qmath.scale_of_exponent(qin)
    sums: list[str] = []
    for i, (wb, ranges, begin, end, kshape) in enumerate(parts):
        x = x_name
        if ranges:
            x = _slice(g, at, f"{node.name}__kin{i}", x_name, ranges)
            at += 1
        inputs = [x, add_constant(g, f"{w_name}__k{i}", np.ascontiguousarray(wb))]
        if has_bias and i == 0:
            inputs.append(node.inputs[2])
        attrs = {k: v for k, v in node.attrs.items() if k not in ("fused_clip", "act_type")}
        attrs.update(kernel_shape=kshape, pads=_pads_attr(spatial, begin, end), o_bits=32,
                     scale_o=acc_scale)
        part = placeholder(g, f"{out_name}__k{i}", out_t)
        add_node(g, at, node.op_type, f"{node.name}__k{i}", inputs, [part], attrs)
        at += 1
        if sums:
            total = placeholder(g, f"{out_name}__ksum{i}", out_t)
            add_node(g, at, "iqAdd", f"{node.name}__ksum{i}", [sums[-1], part], [total],
                     {"scale_x": acc_scale, "scale_y": acc_scale, "scale_o": acc_scale,
                      "o_bits": 32})
            at += 1
            sums.append(total)
        else:
            sums.append(part)
    from thinker.ops.accumulate import fused_clamp

    bits = node.attrs.get("o_bits")
    clamp = fused_clamp(node)
    if bits is None:
        add_node(g, at, "Dequant", f"{node.name}__kout", [sums[-1]], [out_name],
                 {"scale_o": acc_scale})
        return True
    rq = out_name if clamp is None else placeholder(g, f"{out_name}__kreq", out_t)
    mode = {"quant_mode": node.attrs["quant_mode"]} if node.attrs.get("quant_mode") else {}
    add_node(g, at, "Requant", f"{node.name}__krequant", [sums[-1]], [rq],
             {"scale_x": acc_scale, "scale_o": node.attrs["scale_o"], "o_bits": int(bits),
              "data_bits": 32, **mode})  # the conv's one rounding, in its rounding mode
    at += 1
    if clamp is not None:
        lo_b, hi_b = qmath.int_range(int(bits))
        lo, hi = max(clamp[0], lo_b), min(clamp[1], hi_b)
        if lo == 0 and hi == hi_b:
            add_node(g, at, "Relu", f"{node.name}__krelu", [rq], [out_name])
        else:
            dtype = qmath.storage_dtype(int(bits))
            add_node(g, at, "Clip", f"{node.name}__kclip",
                     [rq, add_constant(g, f"{node.name}__kclip_min", np.array(lo, dtype)),
                      add_constant(g, f"{node.name}__kclip_max", np.array(hi, dtype))],
                     [out_name])
    return True


def split_large_kernels(graph: Graph, profile: DeviceProfile) -> Graph:
    rules = profile.conv
    if not rules.get("kernel") and not rules.get("kernel_dilated"):
        return graph
    supported = set(profile.supported_ops or ())
    if supported and not {"iqAdd", "Requant", "Slice"} <= supported:
        return graph  # the device cannot run the sum: the checks report the kernel
    g = graph.copy()
    at_least = bool(rules.get("kernel_at_least_stride"))
    for node in list(g.nodes):
        if supported and node.op_type not in supported:
            continue
        if node.op_type not in CONVS or not np.issubdtype(g.tensors[node.inputs[0]].dtype,
                                                          np.integer):
            continue
        spatial, rows, axes = _geometry_lists(node, g)
        dilated = any(d > 1 for _, _, d, *_ in rows)
        krange = rules.get("kernel_dilated" if dilated else "kernel")
        if not krange or all(k <= krange[1] for k, *_ in rows):
            continue
        blocks = [kernel_blocks(k, s, int(krange[1]), at_least) for k, s, *_ in rows]
        if not all(blocks) or _acc_bound(g, node) > ACC_LIMIT:
            continue  # no exact split: the checks report the kernel
        kernel = "x".join(str(k) for k, *_ in rows)
        if _split_one(g, node, blocks, rows, axes, spatial):
            shapes = ", ".join("x".join(str(r1 - r0) for r0, r1 in c)
                               for c in itertools.product(*blocks))
            record(g, f"split_large_kernels: {node.label()} kernel {kernel} -> "
                      f"{math.prod(len(b) for b in blocks)} convs ({shapes}) summed at 32 bits, "
                      "one requantization (exact)")
    g.remove_unused()
    return g


def pad_excess(graph: Graph, profile: DeviceProfile) -> Graph:
    """Padding beyond the device's pad range moves into an explicit zero Pad op."""
    prange = profile.conv.get("pads")
    if not prange:
        return graph
    g = graph.copy()
    hi = int(prange[1])
    for node in list(g.nodes):
        if node.op_type not in CONVS:
            continue
        _, rows, axes = _geometry_lists(node, g)
        begin = [pb for _, _, _, pb, _, _ in rows]
        end = [pe for _, _, _, _, pe, _ in rows]
        if all(p <= hi for p in begin + end):
            continue
        x = g.tensors[node.inputs[0]]
        rank = len(x.shape)
        pads = [0] * (2 * rank)
        for axis, b, e in zip(axes, begin, end, strict=True):
            pads[axis], pads[rank + axis] = max(b - hi, 0), max(e - hi, 0)
        padded = placeholder(g, f"{node.inputs[0]}__pad", x)
        at = g.nodes.index(node)
        add_node(g, at, "Pad", f"{node.name}__pad",
                 [node.inputs[0], add_constant(g, f"{node.name}__pads",
                                               np.array(pads, dtype=np.int64))], [padded])
        node.inputs[0] = padded
        node.attrs["pads"] = [min(p, hi) for p in begin] + [min(p, hi) for p in end]
        record(g, f"pad_excess: {node.label()} pads {begin + end} -> zero Pad "
                  f"{[pads[a] for a in axes] + [pads[rank + a] for a in axes]} + conv pads "
                  f"{node.attrs['pads']} (exact)")
    g.remove_unused()
    return g


def dilate_kernels(graph: Graph, profile: DeviceProfile) -> Graph:
    """A dilation the device lacks -> the equivalent undilated kernel with zeros between taps."""
    allowed = profile.conv.get("dilations")
    if not allowed:
        return graph
    g = graph.copy()
    for node in list(g.nodes):
        if node.op_type not in CONVS:
            continue
        spatial, rows, _ = _geometry_lists(node, g)
        dil = [d for _, _, d, *_ in rows]
        if all(d in allowed for d in dil) or 1 not in allowed:
            continue
        w = g.tensors[node.inputs[1]].data
        kernel = [k for k, *_ in rows]
        big = [d * (k - 1) + 1 for k, d in zip(kernel, dil, strict=True)]
        wide = np.zeros((*w.shape[:2], *big), dtype=w.dtype)
        wide[(slice(None), slice(None), *(slice(None, None, d) for d in dil))] = w
        node.inputs[1] = add_constant(g, f"{node.inputs[1]}__undilated", wide)
        node.attrs.update(kernel_shape=big, dilations=[1] * spatial)
        record(g, f"dilate_kernels: {node.label()} kernel {'x'.join(map(str, kernel))} "
                  f"dilation {'x'.join(map(str, dil))} -> kernel {'x'.join(map(str, big))} "
                  "with zero taps, dilation 1 (exact)")
    g.remove_unused()
    return g


def stride_slices(graph: Graph, profile: DeviceProfile) -> Graph:
    """kernel < stride where the device needs kernel >= stride: a 1-tap-wide kernel only ever
    reads every stride-th row/column, so read a strided Slice at stride 1 instead."""
    if not profile.conv.get("kernel_at_least_stride"):
        return graph
    g = graph.copy()
    for node in list(g.nodes):
        if node.op_type not in CONVS:
            continue
        _, rows, axes = _geometry_lists(node, g)
        if all(k >= s for k, s, *_ in rows):
            continue
        # only kernel-1 axes without padding are rewritten this simply; others stay reported
        if any(k < s and (k != 1 or pb or pe) for k, s, _, pb, pe, _ in rows):
            continue
        ranges, steps, strides = [], [], []
        for (k, s, _, _, _, size), axis in zip(rows, axes, strict=True):
            if k < s:
                n_out = (size - 1) // s + 1
                ranges.append((axis, 0, (n_out - 1) * s + 1))
                steps.append(s)
                strides.append(1)
            else:
                strides.append(s)
        at = g.nodes.index(node)
        node.inputs[0] = _slice(g, at, f"{node.name}__stride", node.inputs[0], ranges, steps)
        node.attrs["strides"] = strides
        record(g, f"stride_slices: {node.label()} kernel smaller than its stride -> strided "
                  f"Slice (steps {steps}) + stride {'x'.join(map(str, strides))} conv (exact)")
    g.remove_unused()
    return g
