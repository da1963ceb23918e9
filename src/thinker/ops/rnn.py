"""GRUInt and LSTMInt: one recurrent layer in one direction, integer gates per kernel family.

Inputs: X [T, B, F] (``batch_first=0``) or [B, T, F]; optional h0 [1, B, H] (int, exponent
``scale_h``, when ``has_hidden``) and, for LSTMInt, c0 [1, B, H] (int32 at 2**15, when
``has_cell``); W_ih [G*H, F] and W_hh [G*H, H] (PyTorch layout, rows in PyTorch's gate order:
GRU r, z, n; LSTM i, f, g, o; ints at ``scale_iw`` / ``scale_hw``); optional b_ih, b_hh (int32 at
exponents q_x + q_iw and q_h + q_hw). Outputs: Y (every step's hidden state rescaled to
``scale_o`` / ``o_bits``), h_n [1, B, H] at ``scale_h``, and for LSTMInt c_n [1, B, H] int32 at
2**15. ``go_forward=0`` runs the sequence backwards (Y stays in input order). Stacked and
bidirectional layers are several nodes (joined by iqCat), as the original exports them.

Per step (exact integers; ``rq`` = rshift_round, ``K`` = the family's sigmoid/tanh with input
Q_in and output Q_out: venus Q11 -> Q15, arcs/mars Q27 -> Q31, venusA Q27 -> Q31 via its raw Q58
rounded by 27; thinker.nonlinear):

* gates: ``gi = x W_ih^T + b_ih``, ``gh = h W_hh^T + b_hh`` (exact int64), each moved to Q_in
  and saturated to int32, summed with int32 saturation;
* LSTM as the original linger computes it (linger/quant/ops/qmodule/qlstm.py, exact paths):
  venus: i, f, o = sigmoid, g = tanh of the int16-clamped Q11 sums (Q15);
  S = f c + i g (Q30), c' = sat32(rq(S, 15)), h' = sat(rq(o tanh(clamp16(rq(S, 19))), 30 - q_h));
  arcs/mars/venusA: gates Q31 -> rq(., 16) = Q15; c27 = rq(sat32(c f) + sat32(i g), 3),
  h' = sat(rq(o rq(tanh(c27), 16), 30 - q_h)), c' = rq(c27, 12);
* GRU in PyTorch's form (the original linger cannot export its GRU and implements three
  variants, see docs/ops.md): r, z = sigmoid(gi + gh), n = tanh(gi_n + rq(r gh_n, Q_out)),
  n_h = rq(n, Q_out - q_h), h' = sat(n_h + rq(z (h - n_h), Q_out)) = (1 - z) n + z h.

h is saturated to ``h_bits`` (default ``o_bits``); Y_t = rescale(h_t, q_h - q_o, o_bits).
"""

from __future__ import annotations

import numpy as np

from thinker import qmath
from thinker.errors import ThinkerModelError
from thinker.graph.ir import Node, Tensor
from thinker.nonlinear import pwl as pwl_kernels
from thinker.nonlinear.tables import pwl
from thinker.ops.base import (
    REQUIRED,
    Op,
    const_input,
    exponent,
    input_exponent,
    int_dtype,
    out_bits,
    register,
    spec,
)
from thinker.ops.nonlinear import platform_of

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
CELL_Q = 15  # the LSTM cell state is int32 at 2**15 on every platform (scale_c = 32768)


def sat32(v):
    return np.clip(v, INT32_MIN, INT32_MAX)


class Activation:
    """sigmoid/tanh of one kernel family on Q_in int64 values, giving Q_out."""

    def __init__(self, family: str):
        self.family = family
        self.q_in, self.q_out = (11, 15) if family == "venus" else (27, 31)
        self.tables = {f: pwl(family, f) for f in ("sigmoid", "tanh")}

    def __call__(self, function: str, v: np.ndarray, clamp16: bool = False) -> np.ndarray:
        v = np.clip(v, -(1 << 15), (1 << 15) - 1) if clamp16 else sat32(v)
        raw = pwl_kernels.pwl_kernel(self.tables[function], v)
        if self.family == "venusA":  # raw Q58: the original rounds it to Q31 first
            raw = qmath.rshift_round(raw, 27)
        return sat32(raw) if self.family != "venus" else raw


class _Recurrent(Op):
    gates = 0
    cell = False
    attrs = {
        "scale_x": None, "scale_iw": REQUIRED, "scale_hw": REQUIRED, "scale_h": REQUIRED,
        "scale_o": REQUIRED, "o_bits": 8, "h_bits": None, "data_bits": 8, "parameter_bits": 8,
        "w_bits": None, "hidden_size": None, "input_size": None, "num_layers": 1,
        "batch_first": 0, "go_forward": 1, "has_hidden": 0, "has_cell": 0, "platform": None,
        "platform_quant": None, "quant_mode": None, "scale_c": None,
    }
    min_inputs, max_inputs = 3, 7

    # -- geometry ----------------------------------------------------------------------------

    def _layout(self, node: Node, ins: list[Tensor]) -> dict:
        """Positions of the optional inputs and the sizes, checked."""
        has_h = bool(int(node.attrs.get("has_hidden") or 0))
        has_c = self.cell and bool(int(node.attrs.get("has_cell") or 0))
        w = 1 + has_h + has_c
        if len(ins) not in (w + 2, w + 4) or any(t is None for t in ins):
            raise ThinkerModelError(
                f"{node.label()}: expects X, {'h0, ' if has_h else ''}{'c0, ' if has_c else ''}"
                f"W_ih, W_hh and optionally b_ih, b_hh ({w + 2} or {w + 4} inputs), got "
                f"{len(ins)}; check has_hidden / has_cell")
        x, w_ih, w_hh = ins[0], ins[w], ins[w + 1]
        if int(node.attrs.get("num_layers") or 1) != 1:
            raise ThinkerModelError(f"{node.label()}: num_layers must be 1 (one node per layer "
                                    "and direction)")
        if len(x.shape) != 3 or len(w_ih.shape) != 2 or len(w_hh.shape) != 2:
            raise ThinkerModelError(f"{node.label()}: X must be 3-D and the weights 2-D, got "
                                    f"{x.describe()}, {w_ih.describe()}, {w_hh.describe()}")
        g = self.gates
        hidden = w_hh.shape[1]
        if w_ih.shape[0] != g * hidden or w_hh.shape[0] != g * hidden or \
                w_ih.shape[1] != x.shape[2]:
            raise ThinkerModelError(
                f"{node.label()}: W_ih {list(w_ih.shape)} and W_hh {list(w_hh.shape)} must be "
                f"[{g}*H, {x.shape[2]}] and [{g}*H, H] for input {x.describe()}")
        declared = node.attrs.get("hidden_size")
        if declared is not None and int(declared) != hidden:
            raise ThinkerModelError(f"{node.label()}: hidden_size {declared} but the weights "
                                    f"have H = {hidden}")
        batch_first = bool(int(node.attrs.get("batch_first") or 0))
        batch = x.shape[0] if batch_first else x.shape[1]
        for t, name in ((ins[1] if has_h else None, "h0"), (ins[2] if has_c else None, "c0")):
            if t is not None and tuple(t.shape) != (1, batch, hidden):
                raise ThinkerModelError(f"{node.label()}: {name} {t.describe()} must be "
                                        f"[1, {batch}, {hidden}]")
        for t in ins[:1] + ins[1:w]:
            if not np.issubdtype(t.dtype, np.integer):
                raise ThinkerModelError(f"{node.label()}: {t.describe()} must be an integer "
                                        "tensor")
        if self.cell and node.attrs.get("scale_c") not in (None, 2.0 ** CELL_Q):
            raise ThinkerModelError(f"{node.label()}: scale_c must be 32768 (the cell is Q15)")
        return {"has_h": has_h, "has_c": has_c, "w": w, "H": hidden, "batch_first": batch_first,
                "bias": len(ins) == w + 4}

    def infer(self, node, ins):
        lay = self._layout(node, ins)
        x, hidden = ins[0], lay["H"]
        input_exponent(node, "scale_x", x)
        exponent(node, "scale_h")
        h_bits = int(node.attrs.get("h_bits") or out_bits(node))
        state_shape = (1, x.shape[0] if lay["batch_first"] else x.shape[1], hidden)
        outs = [spec((*x.shape[:2], hidden), int_dtype(node, out_bits(node)),
                     exponent(node, "scale_o")),
                spec(state_shape, int_dtype(node, h_bits), exponent(node, "scale_h"))]
        if self.cell:
            outs.append(spec(state_shape, np.int32, CELL_Q))
        platform_of(node)
        return outs

    def batch_axes(self, node, ins):
        """PyTorch's layouts: X and Y [T, B, .] (batch on axis 1) or [B, T, .] with
        ``batch_first``; the states h0, c0, h_n, c_n [1, B, H] (axis 1)."""
        lay = self._layout(node, ins)
        seq = 0 if lay["batch_first"] else 1
        states = 1 + lay["has_h"] + lay["has_c"]
        ins_axes = [seq] + [1] * (states - 1) + [None] * (len(ins) - states)
        return ins_axes, [seq, 1] + ([1] if self.cell else [])

    def macs(self, node, ins, outs):
        x, w = ins[0], self._layout(node, ins)["w"]
        steps_batch = x.shape[0] * x.shape[1]
        return steps_batch * (int(np.prod(ins[w].shape)) + int(np.prod(ins[w + 1].shape)))

    # -- kernel ------------------------------------------------------------------------------

    def prepare(self, node, ins, outs):
        lay = self._layout(node, ins)
        w = lay["w"]
        qx = input_exponent(node, "scale_x", ins[0])
        qh, qo = exponent(node, "scale_h"), exponent(node, "scale_o")
        q_ib, q_hb = qx + exponent(node, "scale_iw"), qh + exponent(node, "scale_hw")
        o_bits = out_bits(node)
        h_bits = int(node.attrs.get("h_bits") or o_bits)
        act = Activation(platform_of(node))
        for gap in (q_ib - act.q_in, q_hb - act.q_in, act.q_out - qh, qh - qo):
            if abs(gap) > 40:
                raise ThinkerModelError(f"{node.label()}: a requantization shift of {gap} "
                                        "bits is out of range; check the scales")
        w_ih = const_input(node, ins, w, "W_ih").astype(np.int64)
        w_hh = const_input(node, ins, w + 1, "W_hh").astype(np.int64)
        g_h = w_hh.shape[0]
        b_ih = const_input(node, ins, w + 2, "b_ih").astype(np.int64).reshape(-1) \
            if lay["bias"] else np.zeros(g_h, np.int64)
        b_hh = const_input(node, ins, w + 3, "b_hh").astype(np.int64).reshape(-1) \
            if lay["bias"] else np.zeros(g_h, np.int64)
        # products stay exact in float64 while |x| |W| F < 2**53 (8/16-bit data)
        bound_i = np.abs(w_ih).sum(axis=1).max(initial=0) * (1 << 31)
        if bound_i >= qmath.FLOAT64_EXACT_LIMIT:
            raise ThinkerModelError(f"{node.label()}: input products can exceed 2**53")
        w_ih_t, w_hh_t = w_ih.T.astype(np.float64), w_hh.T.astype(np.float64)
        forward = bool(int(node.attrs.get("go_forward", 1)))
        step = self.step
        dtypes = [t.dtype for t in outs]

        def project(v, wt, b):
            return (v.astype(np.float64) @ wt).astype(np.int64) + b

        def run(x, *rest):
            xs = x if not lay["batch_first"] else np.swapaxes(x, 0, 1)  # [T, B, F]
            steps, batch = xs.shape[0], xs.shape[1]
            h = rest[0][0].astype(np.int64) if lay["has_h"] else \
                np.zeros((batch, lay["H"]), np.int64)
            c = rest[lay["has_h"]][0].astype(np.int64) if lay["has_c"] else \
                np.zeros((batch, lay["H"]), np.int64)
            gi_all = sat32(qmath.rshift_round(project(xs, w_ih_t, b_ih), q_ib - act.q_in))
            ys = np.empty((steps, batch, lay["H"]), np.int64)
            order = range(steps) if forward else range(steps - 1, -1, -1)
            for t in order:
                gh = sat32(qmath.rshift_round(project(h, w_hh_t, b_hh), q_hb - act.q_in))
                h, c = step(act, gi_all[t], gh, h, c, qh, h_bits, w_hh_t, b_hh, q_hb)
                ys[t] = h
            y = qmath.rescale(ys, qh - qo, o_bits)
            if lay["batch_first"]:
                y = np.swapaxes(y, 0, 1)
            results = [np.ascontiguousarray(y).astype(dtypes[0]), h[None].astype(dtypes[1])]
            if self.cell:
                results.append(c[None].astype(np.int32))
            return tuple(results)

        return run


@register
class GRUInt(_Recurrent):
    op_type = "GRUInt"
    gates = 3

    @staticmethod
    def step(act, gi, gh, h, c, qh, h_bits, w_hh_t, b_hh, q_hb):
        hidden = h.shape[1]
        ri, zi, ni = gi[:, :hidden], gi[:, hidden:2 * hidden], gi[:, 2 * hidden:]
        rh, zh, nh = gh[:, :hidden], gh[:, hidden:2 * hidden], gh[:, 2 * hidden:]
        r = act("sigmoid", sat32(ri + rh))
        z = act("sigmoid", sat32(zi + zh))
        n = act("tanh", sat32(ni + qmath.rshift_round(r * nh, act.q_out)))
        n_h = qmath.rshift_round(n, act.q_out - qh)
        h_new = qmath.saturate(n_h + qmath.rshift_round(z * (h - n_h), act.q_out), h_bits)
        return h_new, c


@register
class LSTMInt(_Recurrent):
    op_type = "LSTMInt"
    gates = 4
    cell = True

    @staticmethod
    def step(act, gi, gh, h, c, qh, h_bits, w_hh_t, b_hh, q_hb):
        hidden = h.shape[1]
        g = sat32(gi + gh)
        gi_, gf, gg, go = (g[:, k * hidden:(k + 1) * hidden] for k in range(4))
        rq = qmath.rshift_round
        if act.family == "venus":  # Q11 -> Q15, int16-clamped activation inputs
            i, f, o = (act("sigmoid", v, clamp16=True) for v in (gi_, gf, go))
            gc = act("tanh", gg, clamp16=True)
            s = f * c + i * gc  # Q30
            c_new = sat32(rq(s, 15))
            t = act("tanh", sat32(rq(s, 19)), clamp16=True)
        else:  # Q27 -> Q31 -> Q15
            i, f, o = (rq(act("sigmoid", v), 16) for v in (gi_, gf, go))
            gc = rq(act("tanh", gg), 16)
            c27 = rq(sat32(c * f) + sat32(i * gc), 3)
            t = rq(act("tanh", sat32(c27)), 16)
            c_new = rq(c27, 12)
        h_new = qmath.saturate(rq(o * t, 30 - qh), h_bits)
        return h_new, c_new
