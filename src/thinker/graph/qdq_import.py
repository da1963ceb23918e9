"""Standard ONNX quantized models (QDQ and QOperator formats) -> the thinker dialect.

onnxruntime's ``quantize_static``, torch.ao and other quantizers write a quantized network
either as float ops between ``QuantizeLinear`` / ``DequantizeLinear`` pairs (QDQ) or with
integer operators (``QLinearConv``, ``QLinearMatMul``, ``QGemm``, ``QLinearAdd``,
``QLinearMul``, ``QLinearAveragePool``, ``QLinearGlobalAveragePool``, ``QLinearConcat``,
``ConvInteger``, ``MatMulInteger``). Both are read the same way: QOperator nodes are first
expanded into their QDQ meaning, then every float op between quantization points becomes the
thinker op that computes its quantized output directly.

Two modes:

* ``exact`` (``import_model`` does this by itself): every scale a power of two, every zero
  point 0 (zero points of integer graph inputs and outputs are folded exactly with an
  iqSub / iqAdd at a wider width), weights per tensor. The thinker ops then compute what
  onnxruntime computes, bit for bit: they round half to even (``quant_mode = "round"``, as
  onnxruntime's requantization and ``QuantizeLinear`` do), an ``Add`` whose inputs need
  rounding sums exactly at 32 bits then rounds once (``Requant``), as ``QLinearAdd`` does.
  Anything else raises a ``ThinkerModelError`` listing every reason, pointing at
  ``thinker convert``.
* ``convert`` (``thinker convert``): every quantized tensor gets the power-of-two exponent
  whose int8 (int16/int32 for wider types) range holds the tensor's whole quantized range;
  asymmetric ranges (zero points) become symmetric ones with the original range's clamp
  fused into the producing op (so a ReLU folded into a zero point stays a ReLU); weights are
  dequantized (per channel too) and requantized per tensor, biases at ``qx + qw``. The model
  then runs on a power-of-two chip with the contract's rounding; ``thinker convert`` measures
  the output change against onnxruntime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from thinker.errors import ThinkerModelError
from thinker.errors import name as shown

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger",
                 "QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool",
                 "QLinearConcat", "DynamicQuantizeLinear", "QLinearSigmoid",
                 "QLinearLeakyRelu", "QLinearSoftmax"}
STANDARD_QUANT_OPS = QDQ_OPS | QOPERATOR_OPS

# one line: what thinker imports (used in every "cannot import" message)
ACCEPTED_FORMATS = (
    "thinker reads quantized models: the thinker / linger dialects (linger.onnx.export, the "
    "original linger) and standard ONNX QDQ / QOperator models (onnxruntime quantize_static, "
    "torch.ao) with power-of-two scales and zero points 0 (others: thinker convert)")

# float ops between quantization points that keep their input's scale
SHAPE_OPS = {"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "MaxPool",
             "Relu", "Clip", "Pad", "Slice"}
ACCUMULATING = {"Conv", "Gemm", "MatMul"}
LOWERED = SHAPE_OPS | ACCUMULATING | {"Add", "Mul", "AveragePool", "GlobalAveragePool",
                                      "Concat"}
THINKER_DOMAIN_OPS = {"Quant", "Dequant", "Requant", "Conv1dInt", "Conv2dInt", "LinearInt",
                      "BmmInt", "AvgPool2dInt", "iqAdd", "iqSub", "iqMul", "iqCat"}


def is_standard_quantized(model: onnx.ModelProto) -> bool:
    """Whether the model uses standard ONNX quantization ops (QDQ or QOperator)."""
    return any(n.op_type in STANDARD_QUANT_OPS and n.domain in ("", "ai.onnx", "com.microsoft")
               for n in model.graph.node)


@dataclass
class QParam:
    scale: np.ndarray
    zero_point: np.ndarray
    dtype: np.dtype
    axis: int = 1

    @property
    def per_tensor(self) -> bool:
        return (self.scale.size == 1 or bool(np.all(self.scale == self.scale.flat[0]))) and \
            (self.zero_point.size == 1 or bool(np.all(self.zero_point == self.zero_point.flat[0])))

    @property
    def s(self) -> float:
        return float(self.scale.flat[0])

    @property
    def zp(self) -> int:
        return int(self.zero_point.flat[0])

    def pow2(self, ignore_zero_points: bool = False) -> int | None:
        """q with scale == 2**-q exactly (one scale), else None."""
        one_scale = self.scale.size == 1 or bool(np.all(self.scale == self.scale.flat[0]))
        if not (one_scale if ignore_zero_points else self.per_tensor) or not self.s > 0:
            return None
        m, e = math.frexp(self.s)
        return None if m != 0.5 else -(e - 1)

    def int_range(self) -> tuple[int, int]:
        info = np.iinfo(self.dtype)
        return int(info.min), int(info.max)

    def real_range(self) -> tuple[float, float]:
        lo, hi = self.int_range()
        return (lo - self.zp) * self.s, (hi - self.zp) * self.s


@dataclass
class Rep:
    """How a quantized tensor lives in the thinker graph."""

    name: str
    q: int
    bits: int
    clamp: tuple[int, int] | None = None  # the original range (convert mode)


@dataclass
class FNode:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict
    name: str


def _bits_of(dtype: np.dtype) -> int:
    return {1: 8, 2: 16, 4: 32}.get(np.dtype(dtype).itemsize, 32)


def _scale(q: int) -> float:
    return math.ldexp(1.0, int(q))


class Lowering:
    def __init__(self, model: onnx.ModelProto, mode: str, where: str):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # expand() rewrites node inputs
        model = copy
        self.model, self.mode, self.where = model, mode, where
        self.exact = mode == "exact"
        g = model.graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i)
                                              for i in g.initializer}
        self.input_types = {vi.name: vi for vi in g.input if vi.name not in self.consts}
        self.outputs = [o.name for o in g.output]
        self.problems: list[str] = []
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.fnodes: list[FNode] = []
        self.qparams: dict[str, QParam] = {}    # quantized tensor -> its parameters
        self.alias: dict[str, str] = {}         # float tensor -> quantized tensor it carries
        self.const_q: dict[str, tuple[np.ndarray, QParam]] = {}  # DQ of a constant
        self.rep: dict[str, Rep] = {}           # quantized tensor -> thinker tensor
        self.input_exponents: dict[str, int] = {}
        self.counter = 0
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.opset = max(opset, 13)

    # -- helpers -------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}__t{self.counter}"

    def const(self, base: str, value) -> str:
        name = self.fresh(base)
        self.inits[name] = np.asarray(value)
        return name

    def emit(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        attrs = {k: v for k, v in attrs.items() if v is not None}
        domain = "thinker" if op in THINKER_DOMAIN_OPS else ""
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain,
                                           **attrs))

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def round_mode(self) -> dict:
        return {"quant_mode": "round"} if self.exact else {}

    def value(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def qparam_from(self, node: FNode, scale: str, zp: str | None, dtype=None,
                    axis: int = 1) -> QParam | None:
        s = self.value(scale)
        if s is None:
            self.problem(f"{node.name}: scale '{shown(scale)}' is computed at run time; thinker "
                         "needs constant scales (quantize statically)")
            return None
        z = self.value(zp) if zp else None
        if zp and z is None:
            self.problem(f"{node.name}: zero point '{shown(zp)}' is computed at run time")
            return None
        if z is None:
            z = np.zeros((), dtype=dtype or np.uint8)
        return QParam(np.asarray(s, np.float64).reshape(-1), np.asarray(z).reshape(-1),
                      np.dtype(z.dtype if dtype is None else dtype), axis)

    # -- 1. QOperator -> QDQ ---------------------------------------------------------------

    def fold(self, n: onnx.NodeProto) -> bool:
        """Evaluate a node whose inputs are all constants (shape arithmetic, Cast,
        ConstantOfShape, ...) with onnx's reference evaluator."""
        if n.op_type in STANDARD_QUANT_OPS or n.op_type == "Constant" or n.domain not in (
                "", "ai.onnx") or not all(x in self.consts for x in n.input if x):
            return False
        from onnx.reference import ReferenceEvaluator

        try:
            node = helper.make_node(n.op_type, list(n.input), list(n.output), **{
                a.name: helper.get_attribute_value(a) for a in n.attribute})
            ins = [helper.make_tensor_value_info(x, helper.np_dtype_to_tensor_dtype(
                self.consts[x].dtype), self.consts[x].shape) for x in n.input if x]
            outs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
                    for o in n.output]
            m = helper.make_model(helper.make_graph([node], "fold", ins, outs),
                                  opset_imports=[helper.make_opsetid("", self.opset)])
            values = ReferenceEvaluator(m).run(None, {x: self.consts[x] for x in n.input if x})
        except Exception:  # not evaluable: lowered (or reported) as an op
            return False
        for o, v in zip(n.output, values, strict=True):
            self.consts[o] = np.asarray(v)
        return True

    def expand(self) -> None:
        renamed: dict[str, str] = {}  # Cast between integer types: the same values
        integer = {name for name, vi in self.input_types.items()
                   if helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).kind in "iu"}
        for i, n in enumerate(self.model.graph.node):
            name = n.name or f"{n.op_type}_{i}"
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            ins, outs = [renamed.get(x, x) for x in n.input], list(n.output)
            del n.input[:]
            n.input.extend(ins)
            op = n.op_type
            if self.fold(n):
                continue
            if op == "Cast" and ins[0] in integer and helper.tensor_dtype_to_np_dtype(
                    int(attrs.get("to", 0)) or onnx.TensorProto.FLOAT).kind in "iu":
                renamed[outs[0]] = ins[0]  # torch.ao: quint8 -> uint8, the same integers
                continue
            if op in STANDARD_QUANT_OPS and op != "DequantizeLinear":
                integer.update(outs)
            if op == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.consts[outs[0]] = numpy_helper.to_array(a.t)
                    elif a.name in ("value_float", "value_floats", "value_int", "value_ints"):
                        self.consts[outs[0]] = np.asarray(helper.get_attribute_value(a))
                continue
            if op in ("QLinearConv", "QLinearMatMul"):
                x, sx, zx, w, sw, zw, sy, zy = (ins + [""] * 9)[:8]
                xf, wf, yf = self.fresh(x), self.fresh(w), self.fresh(outs[0])
                self.dq(name, x, sx, zx, xf)
                self.dq(name, w, sw, zw, wf, axis=0 if op == "QLinearConv" else 1)
                float_ins = [xf, wf]
                if op == "QLinearConv" and len(ins) > 8 and ins[8]:
                    bf = self.fresh(ins[8])
                    self.bias_dq(name, ins[8], sx, sw, bf)
                    float_ins.append(bf)
                self.fnodes.append(FNode("Conv" if op == "QLinearConv" else "MatMul", float_ins,
                                         [yf], attrs, name))
                self.fnodes.append(FNode("QuantizeLinear", [yf, sy, zy], outs, {}, name + "_q"))
            elif op == "QGemm":
                a, sa, za, b, sb, zb = ins[:6]
                c = ins[6] if len(ins) > 6 else ""
                sy = ins[7] if len(ins) > 7 else ""
                zy = ins[8] if len(ins) > 8 else ""
                af, bf, yf = self.fresh(a), self.fresh(b), self.fresh(outs[0])
                self.dq(name, a, sa, za, af)
                self.dq(name, b, sb, zb, bf, axis=0 if attrs.get("transB", 0) else 1)
                float_ins = [af, bf]
                if c:
                    cf = self.fresh(c)
                    self.bias_dq(name, c, sa, sb, cf)
                    float_ins.append(cf)
                gemm = {k: v for k, v in attrs.items() if k in ("alpha", "transA", "transB")}
                if sy:
                    self.fnodes.append(FNode("Gemm", float_ins, [yf], gemm, name))
                    self.fnodes.append(FNode("QuantizeLinear", [yf, sy, zy], outs, {},
                                             name + "_q"))
                else:
                    self.fnodes.append(FNode("Gemm", float_ins, outs, gemm, name))
            elif op in ("ConvInteger", "MatMulInteger"):
                x, w = ins[0], ins[1]
                zx = ins[2] if len(ins) > 2 else ""
                zw = ins[3] if len(ins) > 3 else ""
                one = self.fresh("one")
                self.consts[one] = np.array(1.0, np.float32)
                xf, wf, yf = self.fresh(x), self.fresh(w), self.fresh(outs[0])
                self.dq(name, x, one, zx, xf)
                self.dq(name, w, one, zw, wf, axis=0 if op == "ConvInteger" else 1)
                self.fnodes.append(FNode("Conv" if op == "ConvInteger" else "MatMul", [xf, wf],
                                         [yf], attrs, name))
                zero = self.fresh("zero32")
                self.consts[zero] = np.array(0, np.int32)
                self.fnodes.append(FNode("QuantizeLinear", [yf, one, zero], outs, {},
                                         name + "_acc"))
            elif op in ("QLinearAdd", "QLinearMul"):
                a, sa, za, b, sb, zb, sy, zy = (ins + [""] * 8)[:8]
                af, bf, yf = self.fresh(a), self.fresh(b), self.fresh(outs[0])
                self.dq(name, a, sa, za, af)
                self.dq(name, b, sb, zb, bf)
                self.fnodes.append(FNode(op[7:], [af, bf], [yf], {}, name))
                self.fnodes.append(FNode("QuantizeLinear", [yf, sy, zy], outs, {}, name + "_q"))
            elif op in ("QLinearAveragePool", "QLinearGlobalAveragePool"):
                x, sx, zx, sy, zy = (ins + [""] * 5)[:5]
                if attrs.pop("channels_last", 0):
                    self.problem(f"{name}: channels_last pooling is not supported")
                xf, yf = self.fresh(x), self.fresh(outs[0])
                self.dq(name, x, sx, zx, xf)
                self.fnodes.append(FNode("AveragePool" if op == "QLinearAveragePool"
                                         else "GlobalAveragePool", [xf], [yf], attrs, name))
                self.fnodes.append(FNode("QuantizeLinear", [yf, sy, zy], outs, {}, name + "_q"))
            elif op == "QLinearConcat":
                sy, zy = ins[0], ins[1]
                float_ins = []
                for k in range(2, len(ins), 3):
                    xf = self.fresh(ins[k])
                    self.dq(name, ins[k], ins[k + 1], ins[k + 2], xf)
                    float_ins.append(xf)
                yf = self.fresh(outs[0])
                self.fnodes.append(FNode("Concat", float_ins, [yf], attrs, name))
                self.fnodes.append(FNode("QuantizeLinear", [yf, sy, zy], outs, {}, name + "_q"))
            elif op == "DynamicQuantizeLinear":
                self.problem(f"{name}: DynamicQuantizeLinear (dynamic quantization: scales "
                             "computed at run time); quantize statically (quantize_static)")
            else:
                self.fnodes.append(FNode(op, ins, outs, attrs, name))

    def dq(self, name: str, x: str, s: str, z: str, out: str, axis: int = 1) -> None:
        self.fnodes.append(FNode("DequantizeLinear", [x, s, z], [out], {"axis": axis},
                                 name + "_dq"))

    def bias_dq(self, name: str, b: str, sx: str, sw: str, out: str) -> None:
        """An int32 bias of a QOperator node: scale sx * sw (per channel with sw)."""
        s1, s2 = self.value(sx), self.value(sw)
        if s1 is None or s2 is None:
            self.problem(f"{name}: bias scales are computed at run time")
            return
        scale = self.fresh(b + "_scale")
        self.consts[scale] = (np.asarray(s1, np.float64) * np.asarray(s2, np.float64)
                              ).astype(np.float64)
        zero = self.fresh(b + "_zero")
        self.consts[zero] = np.zeros((), np.int32)
        self.dq(name, b, scale, zero, out, axis=0)

    # -- 2. quantization points ------------------------------------------------------------

    def collect(self) -> None:
        keep = []
        for n in self.fnodes:
            if n.op == "QuantizeLinear":
                if len(n.inputs) < 2:
                    self.problem(f"{n.name}: QuantizeLinear without a scale")
                    continue
                dtype = None
                if len(n.inputs) < 3 or not n.inputs[2]:
                    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(
                        n.attrs.get("output_dtype", onnx.TensorProto.UINT8)))
                p = self.qparam_from(n, n.inputs[1], n.inputs[2] if len(n.inputs) > 2 else None,
                                     dtype, int(n.attrs.get("axis", 1)))
                if p is not None:
                    self.qparams[n.outputs[0]] = p
                    if n.inputs[0] in self.consts:  # a weight quantized in the graph
                        data = self.consts[n.inputs[0]]
                        q = np.rint(data / p.scale.reshape(self._bshape(data, p))) + \
                            p.zero_point.reshape(self._bshape(data, p, p.zero_point.size))
                        lo, hi = p.int_range()
                        self.consts[n.outputs[0]] = np.clip(q, lo, hi).astype(p.dtype)
                        continue
                keep.append(n)
            elif n.op == "DequantizeLinear":
                x = n.inputs[0]
                dtype = self.consts[x].dtype if x in self.consts else self._dtype_of(x)
                p = self.qparam_from(n, n.inputs[1], n.inputs[2] if len(n.inputs) > 2 else None,
                                     dtype, int(n.attrs.get("axis", 1)))
                if p is None:
                    continue
                if x in self.consts:
                    self.const_q[n.outputs[0]] = (self.consts[x], p)
                else:
                    self.qparams.setdefault(x, p)
                    keep.append(n)
            else:
                keep.append(n)
        self.fnodes = keep

    def _dtype_of(self, name: str) -> np.dtype:
        if name in self.qparams:
            return self.qparams[name].dtype
        vi = self.input_types.get(name)
        if vi is not None:
            return np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
        return np.dtype(np.int8)

    @staticmethod
    def _bshape(data: np.ndarray, p: QParam, size: int | None = None) -> tuple[int, ...]:
        """The shape that broadcasts a per-axis parameter of ``size`` entries over data."""
        size = p.scale.size if size is None else size
        if size == 1:
            return (1,) * data.ndim
        shape = [1] * data.ndim
        shape[p.axis % data.ndim] = size
        return tuple(shape)

    # -- 3. representation of each quantized tensor -----------------------------------------

    def represent(self, tensor: str, node_name: str) -> Rep | None:
        if tensor in self.rep:
            return self.rep[tensor]
        p = self.qparams.get(tensor)
        if p is None:
            self.problem(f"{node_name}: tensor '{shown(tensor)}' has no quantization parameters")
            return None
        if not p.per_tensor:
            self.problem(f"{node_name}: activation '{shown(tensor)}' is quantized per channel; "
                         "thinker activations have one scale")
            return None
        bits = _bits_of(p.dtype)
        lo_i, hi_i = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if self.exact:
            q = p.pow2()
            if q is None:
                self.problem(f"{node_name}: scale {p.s:.6g} of '{shown(tensor)}' is not a power "
                             "of two")
                return None
            if p.zp != 0 or np.dtype(p.dtype).kind == "u":
                self.problem(f"{node_name}: '{shown(tensor)}' has zero point {p.zp} "
                             f"({np.dtype(p.dtype).name}); thinker activations are symmetric "
                             "signed integers")
                return None
            rep = Rep(tensor, q, bits)
        else:
            rmin, rmax = p.real_range()
            q = self._fit_exponent(rmin, rmax, bits)
            lo = max(math.ceil(rmin * _scale(q) - 1e-9), lo_i)
            hi = min(math.floor(rmax * _scale(q) + 1e-9), hi_i)
            clamp = None if (lo <= lo_i and hi >= hi_i) else (lo, hi)
            rep = Rep(tensor, q, bits, clamp)
        self.rep[tensor] = rep
        return rep

    @staticmethod
    def _fit_exponent(rmin: float, rmax: float, bits: int) -> int:
        """The largest q whose ``bits``-wide range holds [rmin, rmax] at scale 2**-q."""
        hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
        q = 40
        while q > -40 and (rmax * _scale(q) > hi + 1e-9 or rmin * _scale(q) < lo - 1e-9):
            q -= 1
        return q

    # -- 4. lowering -------------------------------------------------------------------------

    def run(self) -> onnx.ModelProto:
        self.expand()
        self.collect()
        consumers: dict[str, list[FNode]] = {}
        for n in self.fnodes:
            for x in n.inputs:
                if x:
                    consumers.setdefault(x, []).append(n)
        self.consumers = consumers
        self.done: set[int] = set()
        self.float_out: dict[str, tuple[str, Rep]] = {}  # float tensor -> (int tensor, rep)
        for n in self.fnodes:
            if id(n) in self.done:
                continue
            try:
                self.lower(n)
            except ThinkerModelError as exc:
                self.problem(str(exc))
        self.finish_outputs()
        if self.problems:
            raise self.error()
        return self.build()

    def error(self) -> ThinkerModelError:
        if self.exact:
            head = (f"{self.where}: a standard ONNX quantized model that thinker cannot run "
                    f"exactly ({len(self.problems)} reason(s)); `thinker convert "
                    f"{self.where} -o converted.onnx` rewrites it for a power-of-two chip and "
                    "measures the change")
        else:
            head = f"{self.where}: cannot convert ({len(self.problems)} problem(s))"
        return ThinkerModelError(head, problems=list(self.problems))

    def int_input(self, tensor: str, node: FNode) -> tuple[str, Rep] | None:
        """The thinker tensor behind a float input (a DQ'd activation or a lowered output)."""
        if tensor in self.float_out:
            return self.float_out[tensor]
        q = tensor if tensor in self.qparams else None  # QOperator: an integer tensor
        if q is None:
            dq = next((m for m in self.fnodes if m.op == "DequantizeLinear"
                       and m.outputs[0] == tensor), None)
            if dq is None:
                self.problem(f"{node.name}: {node.op} reads the float tensor '{shown(tensor)}', "
                             "which no DequantizeLinear provides (float ops between quantized "
                             "ones are not supported)")
                return None
            q = dq.inputs[0]
            if q in self.float_out:  # the integer output of a shape op (QOperator)
                return self.float_out[q]
        rep = self.graph_input_rep(q, node) if q in self.input_types else \
            self.represent(q, node.name)
        if rep is None:
            return None
        return rep.name, rep

    def graph_input_rep(self, tensor: str, node: FNode) -> Rep | None:
        """An integer graph input read through DequantizeLinear; a zero point (or unsigned
        type) is folded exactly: x - zp at a wider width."""
        if tensor in self.rep:
            return self.rep[tensor]
        p = self.qparams.get(tensor)
        dtype = self._dtype_of(tensor)
        if p is None:
            self.problem(f"{node.name}: integer input '{shown(tensor)}' has no scale")
            return None
        if np.dtype(dtype).name not in ("int8", "uint8", "int16", "int32"):
            self.problem(f"{node.name}: input '{shown(tensor)}' is {np.dtype(dtype).name}; "
                         "thinker reads int8, uint8, int16 or int32 inputs")
            return None
        q = p.pow2() if p.per_tensor else None
        if q is None:
            if self.exact:
                self.problem(f"{node.name}: scale of input '{shown(tensor)}' is not a single "
                             "power of two")
                return None
            rmin, rmax = p.real_range()
            q = self._fit_exponent(rmin, rmax, _bits_of(dtype))
        self.input_exponents[tensor] = q
        if p.zp == 0 and np.dtype(dtype).kind == "i":
            rep = Rep(tensor, q, _bits_of(dtype))
        else:
            bits = 16 if np.dtype(dtype).itemsize == 1 else 32
            out = self.fresh(tensor + "_centered")
            zp = self.const(tensor + "_zp", np.array(p.zp, dtype=np.int32))
            self.emit("iqSub", [tensor, zp], [out], f"{tensor}_zero_point", scale_x=_scale(q),
                      scale_y=_scale(q), scale_o=_scale(q), o_bits=bits)
            rep = Rep(out, q, bits)
        self.rep[tensor] = rep
        return rep

    def quantized_target(self, tensor: str) -> tuple[str | None, tuple[float, float] | None,
                                                      list[FNode]]:
        """Follow a float output through single-consumer Relu/Clip to its QuantizeLinear:
        (quantized tensor or None, real clamp or None, nodes absorbed)."""
        lo, hi = -math.inf, math.inf
        absorbed: list[FNode] = []
        while True:
            users = self.consumers.get(tensor, [])
            if tensor in self.outputs or len(users) != 1:
                return None, None, []
            u = users[0]
            if u.op == "QuantizeLinear":
                absorbed.append(u)
                clamp = None if (lo, hi) == (-math.inf, math.inf) else (lo, hi)
                return u.outputs[0], clamp, absorbed
            if u.op == "Relu":
                lo = max(lo, 0.0)
            elif u.op == "Clip":
                a = self._clip_bounds(u)
                if a is None:
                    return None, None, []
                lo, hi = max(lo, a[0]), min(hi, a[1])
            else:
                return None, None, []
            absorbed.append(u)
            tensor = u.outputs[0]

    def _clip_bounds(self, n: FNode) -> tuple[float, float] | None:
        lo, hi = n.attrs.get("min", -math.inf), n.attrs.get("max", math.inf)
        for k, attr in ((1, "min"), (2, "max")):
            if len(n.inputs) > k and n.inputs[k]:
                v = self.value(n.inputs[k])
                if v is None:
                    return None
                if attr == "min":
                    lo = float(v)
                else:
                    hi = float(v)
        return float(lo), float(hi)

    def int_clamp(self, real: tuple[float, float] | None, out: Rep) -> tuple[int, int] | None:
        """The clamp of an output in its integers: a fused activation and the range."""
        lo_i, hi_i = -(1 << (out.bits - 1)), (1 << (out.bits - 1)) - 1
        lo, hi = lo_i, hi_i
        if real is not None:
            a, b = real[0] * _scale(out.q), real[1] * _scale(out.q)
            if self.exact and ((math.isfinite(a) and a != math.floor(a)) or
                               (math.isfinite(b) and b != math.floor(b))):
                self.problem(f"clip bounds {real} of '{shown(out.name)}' are not integers at "
                             f"its scale 2**-{out.q}")
            if math.isfinite(a):
                lo = max(lo, math.ceil(a))
            if math.isfinite(b):
                hi = min(hi, math.floor(b))
        if out.clamp is not None:
            lo, hi = max(lo, out.clamp[0]), min(hi, out.clamp[1])
        return None if (lo, hi) == (lo_i, hi_i) else (int(lo), int(hi))

    def lower(self, n: FNode) -> None:
        op = n.op
        if op == "QuantizeLinear":
            self.lower_quantize(n)
        elif op == "DequantizeLinear":
            self.lower_dequantize(n)
        elif op in ACCUMULATING:
            self.lower_accumulating(n)
        elif op in ("Add", "Mul"):
            self.lower_binary(n)
        elif op in ("AveragePool", "GlobalAveragePool"):
            self.lower_pool(n)
        elif op == "Concat":
            self.lower_concat(n)
        elif op in SHAPE_OPS:
            self.lower_shape(n)
        else:
            self.problem(f"{n.name}: {op} is not supported between quantized tensors "
                         f"(supported: {', '.join(sorted(LOWERED))})")

    def lower_quantize(self, n: FNode) -> None:
        x, out = n.inputs[0], n.outputs[0]
        p = self.qparams[out]
        if x in self.input_types:  # float -> int at a graph input
            if self.exact and out in self.outputs and (p.zp != 0 or p.dtype.kind == "u"):
                return self.quantize_with_zero_point(n, x, out, p)
            rep = self.represent(out, n.name)
            if rep is None:
                return
            target = rep.name if rep.clamp is None else self.fresh(out)
            self.emit("Quant", [x], [target], n.name, scale_x=_scale(rep.q), data_bits=rep.bits,
                      **self.round_mode())
            if rep.clamp is not None:
                self.clip(target, rep.name, rep.clamp, rep.bits, n.name + "_range")
            return
        src, rep_in = self.int_input(x, n) or (None, None)
        if src is None:
            return
        rep = self.represent(out, n.name)
        if rep is None:
            return
        self.requant(src, rep_in, rep, n.name)

    def quantize_with_zero_point(self, n: FNode, x: str, out: str, p: QParam) -> None:
        """A graph output quantized with a zero point: Quant (half to even) at 32 bits, then
        + zero point saturating to the output type (exact)."""
        q = p.pow2()
        if q is None:
            self.problem(f"{n.name}: output '{shown(out)}' has several scales or zero points "
                         "(per axis)" if not p.per_tensor else
                         f"{n.name}: scale {p.s:.6g} is not a power of two")
            return
        if p.dtype.kind == "u":
            self.problem(f"{n.name}: output '{shown(out)}' is {p.dtype.name}; thinker tensors "
                         "are signed")
            return
        wide = self.fresh(out + "_wide")
        self.emit("Quant", [x], [wide], n.name, scale_x=_scale(q), data_bits=32,
                  quant_mode="round")
        zp = self.const(out + "_zp", np.array(p.zp, dtype=np.int32))
        shifted = self.fresh(out + "_shifted")
        self.emit("iqAdd", [wide, zp], [shifted], n.name + "_zero_point", scale_x=_scale(q),
                  scale_y=_scale(q), scale_o=_scale(q), o_bits=32)
        self.emit("Requant", [shifted], [out], n.name + "_saturate", scale_x=_scale(q),
                  scale_o=_scale(q), data_bits=32, o_bits=_bits_of(p.dtype))
        self.rep[out] = Rep(out, q, _bits_of(p.dtype))

    def lower_dequantize(self, n: FNode) -> None:
        x, out = n.inputs[0], n.outputs[0]
        if out in self.outputs:
            pair = self.int_input(out, n)
            if pair is not None:
                self.emit("Dequant", [pair[0]], [out], n.name, scale_o=_scale(pair[1].q))
        # otherwise a DQ read by float ops: int_input resolves it there
        del x

    def requant(self, src: str, rep_in: Rep, rep: Rep, name: str) -> None:
        """src (at rep_in) -> rep.name at rep, clamped to rep's range."""
        if rep_in.q == rep.q and rep_in.bits <= rep.bits and rep.clamp is None:
            if src != rep.name:
                self.rename(src, rep.name, name)
            return
        target = rep.name if rep.clamp is None else self.fresh(rep.name)
        self.emit("Requant", [src], [target], name, scale_x=_scale(rep_in.q),
                  scale_o=_scale(rep.q), data_bits=rep_in.bits, o_bits=rep.bits,
                  **self.round_mode())
        if rep.clamp is not None:
            self.clip(target, rep.name, rep.clamp, rep.bits, name + "_range")

    def rename(self, src: str, dst: str, name: str) -> None:
        """Make tensor ``dst`` the same as ``src``: rename src everywhere (a graph input is
        copied by a shift-0 Requant instead)."""
        if src in self.input_types:
            rep = self.rep.get(src) or Rep(src, self.input_exponents.get(src, 0), 8)
            self.emit("Requant", [src], [dst], name, scale_x=_scale(rep.q),
                      scale_o=_scale(rep.q), data_bits=rep.bits, o_bits=rep.bits)
            return
        for node in self.nodes:
            node.input[:] = [dst if t == src else t for t in node.input]
            node.output[:] = [dst if t == src else t for t in node.output]
        for key, (t, r) in list(self.float_out.items()):
            if t == src:
                self.float_out[key] = (dst, r)
        for r in self.rep.values():
            if r.name == src:
                r.name = dst

    def clip(self, src: str, out: str, clamp: tuple[int, int], bits: int, name: str) -> None:
        dtype = np.dtype(f"int{max(bits, 8)}")
        lo = self.const(name + "_min", np.array(clamp[0], dtype))
        hi = self.const(name + "_max", np.array(clamp[1], dtype))
        self.emit("Clip", [src, lo, hi], [out], name)

    # weights ------------------------------------------------------------------------------

    def weight(self, n: FNode, name: str, transpose_axis: int = 0) -> tuple[np.ndarray, int,
                                                                             np.ndarray]:
        """(integer weight, qw, float weight) of a DQ'd constant."""
        if name in self.const_q:
            data, p = self.const_q[name]
            data = np.asarray(data)
            zp = p.zero_point.reshape(self._bshape(data, p, p.zero_point.size)).astype(np.int64)
            wf = (data.astype(np.float64) - zp) * p.scale.reshape(self._bshape(data, p))
            if self.exact:
                q = p.pow2(ignore_zero_points=True)  # zero points fold into the weights
                if q is None:
                    self.problem(f"{n.name}: weight scale of '{shown(name)}' is not a single "
                                 "power of two (per-channel or non-power-of-two)")
                    return np.zeros(0), 0, wf
                w = data.astype(np.int64) - zp
                return w, q, wf
        elif name in self.consts and np.issubdtype(self.consts[name].dtype, np.floating):
            wf = self.consts[name].astype(np.float64)
            if self.exact:
                self.problem(f"{n.name}: weight '{shown(name)}' is float (not quantized)")
                return np.zeros(0), 0, wf
        else:
            raise ThinkerModelError(f"{n.name}: {n.op} weight '{shown(name)}' must be a "
                                    "constant (initializer)")
        peak = float(np.abs(wf).max(initial=0.0))
        q = self._fit_exponent(-peak, peak, 8) if peak > 0 else 0
        w = np.clip(np.rint(wf * _scale(q)), -127, 127).astype(np.int64)
        return w, q, wf

    def bias(self, n: FNode, name: str, q_acc: int) -> np.ndarray | None:
        if not name:
            return None
        if name in self.const_q:
            data, p = self.const_q[name]
            bf = (np.asarray(data, np.float64) - p.zero_point.astype(np.float64)) * p.scale
            if self.exact:
                q = p.pow2()
                if q != q_acc or p.zp != 0:
                    self.problem(f"{n.name}: bias scale of '{shown(name)}' is not the input "
                                 "scale times the weight scale")
                return np.asarray(data).astype(np.int64).reshape(-1)
        elif name in self.consts:
            bf = self.consts[name].astype(np.float64)
        else:
            raise ThinkerModelError(f"{n.name}: bias '{shown(name)}' must be a constant")
        b = np.rint(bf * _scale(q_acc))
        if self.exact and not np.array_equal(b, bf * _scale(q_acc)):
            self.problem(f"{n.name}: bias '{shown(name)}' is not exact at 2**-{q_acc}")
        return np.clip(b, -(2**31), 2**31 - 1).astype(np.int64).reshape(-1)

    @staticmethod
    def _int_weight(w: np.ndarray) -> tuple[np.ndarray, int]:
        if w.size and (w.min() < -128 or w.max() > 127):
            return w.astype(np.int16), 16
        return w.astype(np.int8), 8

    def lower_accumulating(self, n: FNode) -> None:
        pair = self.int_input(n.inputs[0], n)
        if pair is None:
            return
        x, rx = pair
        out_q, real_clamp, absorbed = self.quantized_target(n.outputs[0])
        out_float = n.outputs[0] in self.outputs
        if out_q is None and not out_float:
            self.problem(f"{n.name}: the output of {n.op} is not quantized (no QuantizeLinear "
                         "follows it)")
            return
        if n.op == "MatMul" and n.inputs[1] not in self.const_q and \
                n.inputs[1] not in self.consts:
            return self.lower_bmm(n, x, rx, out_q, real_clamp, absorbed)
        transpose_b = 0
        alpha = float(n.attrs.get("alpha", 1.0))
        if n.op == "Gemm":
            if int(n.attrs.get("transA", 0)):
                self.problem(f"{n.name}: Gemm with transA is not supported")
                return
            transpose_b = int(n.attrs.get("transB", 0))
            if float(n.attrs.get("beta", 1.0)) != 1.0:
                self.problem(f"{n.name}: Gemm beta {n.attrs['beta']} (only 1 is supported)")
        w, qw, _ = self.weight(n, n.inputs[1])
        if w.size == 0:
            return
        if alpha != 1.0:
            m, e = math.frexp(alpha)
            if m == 0.5:
                qw -= e - 1
            elif self.exact:
                self.problem(f"{n.name}: Gemm alpha {alpha} is not a power of two")
                return
            else:
                wf = w.astype(np.float64) * alpha / _scale(qw)
                peak = float(np.abs(wf).max(initial=0.0))
                qw = self._fit_exponent(-peak, peak, 8) if peak > 0 else 0
                w = np.clip(np.rint(wf * _scale(qw)), -127, 127).astype(np.int64)
        b = self.bias(n, n.inputs[2] if len(n.inputs) > 2 else "", rx.q + qw)
        w_int, wbits = self._int_weight(w)
        ins = [x, self.const(n.inputs[1], w_int)]
        if b is not None:
            ins.append(self.const((n.inputs[2] or "bias"), b.astype(np.int32)))
        common = {"scale_x": _scale(rx.q), "scale_w": _scale(qw), "data_bits": rx.bits,
                  "parameter_bits": wbits}
        if out_q is not None:
            rep = self.represent(out_q, n.name)
            if rep is None:
                return
            clamp = self.int_clamp(real_clamp, rep)
            common.update(scale_o=_scale(rep.q), o_bits=rep.bits,
                          fused_clip=list(clamp) if clamp else None, **self.round_mode())
            target = rep.name
            for a in absorbed:
                self.done.add(id(a))
        else:
            target = n.outputs[0]  # float output: acc / 2**(qx + qw)
        if n.op == "Conv":
            spatial = w.ndim - 2
            if n.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
                self.problem(f"{n.name}: Conv auto_pad is not supported (give pads)")
                return
            geo = {k: n.attrs[k] for k in ("strides", "pads", "dilations", "group")
                   if k in n.attrs}
            self.emit("Conv2dInt" if spatial == 2 else "Conv1dInt", ins, [target], n.name,
                      kernel_shape=list(w.shape[2:]), **geo, **common)
        else:
            self.emit("LinearInt", ins, [target], n.name, transB=transpose_b, **common)
        if out_q is not None:
            self.float_out[n.outputs[0]] = (target, self.rep[out_q])

    def lower_bmm(self, n, x, rx, out_q, real_clamp, absorbed) -> None:
        pair = self.int_input(n.inputs[1], n)
        if pair is None or out_q is None:
            if out_q is None:
                self.problem(f"{n.name}: MatMul of two activations needs a quantized output")
            return
        y, ry = pair
        rep = self.represent(out_q, n.name)
        if rep is None:
            return
        for a in absorbed:
            self.done.add(id(a))
        clamp = self.int_clamp(real_clamp, rep)
        target = rep.name if clamp is None else self.fresh(rep.name)
        self.emit("BmmInt", [x, y], [target], n.name, scale_x=_scale(rx.q),
                  scale_y=_scale(ry.q), scale_o=_scale(rep.q), o_bits=rep.bits,
                  **self.round_mode())
        if clamp is not None:
            self.clip(target, rep.name, clamp, rep.bits, n.name + "_clamp")

    def integer_output(self, n: FNode):
        """(representation, integer clamp or None, tensor the op writes) of ``n``'s quantized
        output, the QuantizeLinear and Relu/Clip it absorbs marked done; None (problem noted)
        when the output is not quantized or cannot be represented."""
        out_q, real_clamp, absorbed = self.quantized_target(n.outputs[0])
        if out_q is None:
            self.problem(f"{n.name}: the output of {n.op} is not quantized")
            return None
        rep = self.represent(out_q, n.name)
        if rep is None:
            return None
        for a in absorbed:
            self.done.add(id(a))
        clamp = self.int_clamp(real_clamp, rep)
        return rep, clamp, rep.name if clamp is None else self.fresh(rep.name)

    def finish_output(self, n: FNode, rep, clamp, final: str) -> None:
        """The absorbed clamp as a Clip into the representation's tensor; record the output."""
        if clamp is not None:
            self.clip(final, rep.name, clamp, rep.bits, n.name + "_clamp")
        self.float_out[n.outputs[0]] = (rep.name, rep)

    def lower_binary(self, n: FNode) -> None:
        pairs = [self.int_input(t, n) for t in n.inputs[:2]]
        if any(p is None for p in pairs):
            return
        (a, ra), (b, rb) = pairs
        target = self.integer_output(n)
        if target is None:
            return
        rep, clamp, final = target
        scales = {"scale_x": _scale(ra.q), "scale_y": _scale(rb.q)}
        if n.op == "Mul":
            self.emit("iqMul", [a, b], [final], n.name, scale_o=_scale(rep.q), o_bits=rep.bits,
                      **scales, **self.round_mode())
        elif self.exact and (ra.q > rep.q or rb.q > rep.q):
            # QLinearAdd rounds the exact sum once: sum at the finer exponent, then round
            qm = max(ra.q, rb.q)
            wide = self.fresh(rep.name + "_sum")
            self.emit("iqAdd", [a, b], [wide], n.name, scale_o=_scale(qm), o_bits=32, **scales)
            self.emit("Requant", [wide], [final], n.name + "_round", scale_x=_scale(qm),
                      scale_o=_scale(rep.q), data_bits=32, o_bits=rep.bits, quant_mode="round")
        else:
            self.emit("iqAdd", [a, b], [final], n.name, scale_o=_scale(rep.q), o_bits=rep.bits,
                      **scales)
        self.finish_output(n, rep, clamp, final)

    def lower_pool(self, n: FNode) -> None:
        pair = self.int_input(n.inputs[0], n)
        if pair is None:
            return
        x, rx = pair
        target = self.integer_output(n)
        if target is None:
            return
        rep, clamp, final = target
        attrs = {}
        if n.op == "AveragePool":
            if n.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
                self.problem(f"{n.name}: AveragePool auto_pad is not supported (give pads)")
                return
            attrs = {k: n.attrs[k] for k in ("kernel_shape", "strides", "pads", "ceil_mode")
                     if k in n.attrs}
            attrs["count_include_pad"] = int(n.attrs.get("count_include_pad", 0))
        self.emit("AvgPool2dInt", [x], [final], n.name, scale_x=_scale(rx.q),
                  scale_o=_scale(rep.q), o_bits=rep.bits, data_bits=rx.bits, **attrs,
                  **self.round_mode())
        self.finish_output(n, rep, clamp, final)

    def lower_concat(self, n: FNode) -> None:
        pairs = [self.int_input(t, n) for t in n.inputs]
        if any(p is None for p in pairs):
            return
        target = self.integer_output(n)
        if target is None:
            return
        rep, clamp, final = target
        scales = {f"scale_x_{i}": _scale(r.q) for i, (_, r) in enumerate(pairs)}
        self.emit("iqCat", [t for t, _ in pairs], [final], n.name, scale_o=_scale(rep.q),
                  o_bits=rep.bits, dim=int(n.attrs.get("axis", 1)), **scales,
                  **self.round_mode())
        self.finish_output(n, rep, clamp, final)

    def lower_shape(self, n: FNode) -> None:
        pair = self.int_input(n.inputs[0], n)
        if pair is None:
            return
        x, rx = pair
        if n.op == "Identity":
            self.float_out[n.outputs[0]] = (x, rx)
            return
        ins = [x]
        for extra in n.inputs[1:]:
            if not extra:
                ins.append("")
                continue
            v = self.value(extra)
            if v is None:
                self.problem(f"{n.name}: {n.op} input '{shown(extra)}' must be a constant")
                return
            if n.op == "Clip":  # float bounds -> integers at the input's scale
                scaled = float(v) * _scale(rx.q)
                bound = math.ceil(scaled) if extra == n.inputs[1] else math.floor(scaled)
                v = np.array(bound, dtype=np.dtype(f"int{max(rx.bits, 8)}"))
            elif n.op == "Pad" and extra == (n.inputs[2] if len(n.inputs) > 2 else None):
                if float(v) != 0.0:
                    self.problem(f"{n.name}: Pad with a non-zero value")
                v = np.zeros((), dtype=np.dtype(f"int{max(rx.bits, 8)}"))
            ins.append(self.const(extra, v))
        attrs = dict(n.attrs)
        if n.op == "Clip" and ("min" in attrs or "max" in attrs):
            self.problem(f"{n.name}: Clip with min/max attributes (opset < 11)")
            return
        out = self.fresh(n.outputs[0])
        self.emit(n.op, ins, [out], n.name, **attrs)
        self.float_out[n.outputs[0]] = (out, rx)

    def finish_outputs(self) -> None:
        """Graph outputs written by a lowered op keep their names."""
        produced = {o for node in self.nodes for o in node.output}
        for name in self.outputs:
            if name in produced:
                continue
            if name in self.float_out:  # an integer or float result under another name
                self.rename(self.float_out[name][0], name, name + "_out")
            elif name in self.rep and self.rep[name].name != name:
                self.rename(self.rep[name].name, name, name + "_out")

    def build(self) -> onnx.ModelProto:
        g = self.model.graph
        inputs = [vi for vi in g.input if vi.name not in self.consts]
        outputs = []
        produced = {o: node for node in self.nodes for o in node.output}
        for o in g.output:
            node = produced.get(o.name)
            if node is not None and node.op_type == "Dequant":
                elem = onnx.TensorProto.FLOAT
            elif o.name in self.rep:
                elem = helper.np_dtype_to_tensor_dtype(np.dtype(f"int{self.rep[o.name].bits}"))
            else:
                elem = o.type.tensor_type.elem_type
            outputs.append(helper.make_tensor_value_info(o.name, elem, None))
        used = {x for node in self.nodes for x in node.input}
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.inits.items()
                 if k in used]
        graph = helper.make_graph(self.nodes, g.name or "model", inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset),
                                                        helper.make_opsetid("thinker", 1)],
                                  producer_name="thinker")
        for name, q in self.input_exponents.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = f"thinker:exponent:{name}", str(q)
        return model


def to_thinker(model: onnx.ModelProto, where: str = "model", mode: str = "exact"
               ) -> onnx.ModelProto:
    """A standard ONNX quantized model as a thinker-dialect model (see the module doc)."""
    if mode not in ("exact", "convert"):
        raise ValueError(f"mode must be 'exact' or 'convert', not {mode!r}")
    return Lowering(model, mode, where).run()
