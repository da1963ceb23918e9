"""The model rules (design §9): what a valid model is, in one place.

Three consumers enforce them identically:

* ``tpacker`` checks every node at import, before its shape inference (``node_problems``),
  its final graph before it writes a model.bin (``graph_problems`` plus every op's prepare
  step) and re-reads what it wrote with the Python reader;
* the Python reader (``thinker.resource.reader.parse_model``) checks every model.bin it
  reads (``attr_type_problem`` while parsing, then ``record_problem`` and
  ``check_consistent``: ``node_problems`` + each op's shape inference), raising
  ``ThinkerFormatError``;
* the C reader mirrors every rule: ``executor/src/rules.c`` (attribute types, the op rules,
  names, ids, the memory plan) and each op's prepare step, returning an error status.

Op rules (``node_problems``, before any shape inference) cover what the ops' own code would
otherwise compute differently in numpy and C or not at all: attribute types and counts,
duplicate attribute keys, integer weights of integer ops, constant (integer) shape operands,
finite Clip bounds, geometry ranges of pooling and convolutions, Pad sizes and values, and
AvgPool2dInt's exponent range (docs/ops.md, "Limits"; the other ops define a saturated result
for every exponent or check their own ranges).

Record rules (``record_problem``, model.bin only) cover names (non-empty, unique), tensor
flags, int4 activations, graph inputs and outputs, single assignment (every op input exists
when the op runs, every tensor is produced once) and the memory plan: two tensors whose bytes
overlap in an arena must not be live at the same time, except the planner's two aliases: a
reshape-like op's output over its input (same bytes) and an element-wise op writing over an
input that dies there (same offset and size).
"""

from __future__ import annotations

import math

import numpy as np

from thinker.graph.ir import Graph, Node, Tensor
from thinker.resource import format as fmt

INT, FLOAT, INTS, FLOATS, STRING = (fmt.ATTR_INT, fmt.ATTR_FLOAT, fmt.ATTR_INTS,
                                    fmt.ATTR_FLOATS, fmt.ATTR_STRING)
KIND_NAMES = {INT: "int", FLOAT: "float", INTS: "ints", FLOATS: "floats", STRING: "string"}

# attribute key -> (allowed value types, exact count or None). Keys not listed are ignored by
# both executors and may hold anything; keys starting with "scale" are numbers (scale_x_0, ...).
_NUMBER = frozenset({INT, FLOAT})
ATTR_TYPES: dict[str, tuple[frozenset[int], int | None]] = {
    **{k: (frozenset({INT}), None) for k in (
        "o_bits", "data_bits", "parameter_bits", "h_bits", "group", "ceil_mode",
        "count_include_pad", "divisor_override", "storage_order", "transA", "transB",
        "act_type", "allowzero", "keepdims", "unbiased", "divisor", "num_outputs", "axis",
        "dim", "exclude_outside", "hidden_size", "batch_first", "go_forward", "has_hidden",
        "has_cell", "num_layers", "input_size", "w_bits")},
    **{k: (frozenset({INTS}), None) for k in (
        "kernel_shape", "strides", "pads", "dilations", "output_padding", "perm", "starts",
        "ends", "steps", "split", "shape", "axes", "dims")},
    "fused_clip": (frozenset({INTS}), 2),
    "eps_q": (frozenset({INTS}), 2),
    **{k: (_NUMBER, None) for k in ("eps", "min", "max", "value", "cubic_coeff_a",
                                    "extrapolation_value")},
    **{k: (frozenset({STRING}), None) for k in (
        "mode", "auto_pad", "platform", "platform_quant", "coordinate_transformation_mode",
        "nearest_mode", "quant_mode")},
}
# the reductions name their axes in several ways, each an int or a list
REDUCE_OPS = ("iqSum", "iqVar")
REDUCE_AXIS_KEYS = ("axes", "dims", "dim", "axis")

# ops whose output 0 is input 0's bytes reinterpreted, and ops that may write their output over
# a same-sized input that dies there (thinker.memory.lifetimes)
ALIASING_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
IN_PLACE_OPS = frozenset({"Relu", "Clip", "iqAdd", "iqSub", "iqMul", "Requant", "PRelu",
                          "iqSigmoid", "iqTanh"})

MAX_ELEMENTS = (1 << 31) - 1  # per tensor
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)  # weights and biases (int64 constants included)
# accumulating ops without o_bits output float32 acc * 2**-(qx + qw): the float32 GEMM holds
# every partial sum exactly (no overflow, no step below 2**-149) for qx + qw in this range
FLOAT_OUTPUT_OPS = ("Conv1dInt", "Conv2dInt", "ConvTranspose2dInt", "LinearInt")
FLOAT_OUTPUT_Q = (-100, 149)
GEOMETRY_LIMIT = 65535  # kernel, stride, dilation, pad and output_padding values
PAD_LIMIT = (1 << 31) - 1  # Pad sizes
WINDOW_SHIFT_LIMIT = 61  # AvgPool2dInt: |window sum| or divisor times 2**|qo - qx| < 2**61

# op -> input slots that must be constant integer operands (shapes, axes, pads, sizes)
INTEGER_OPERANDS = {
    "Reshape": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Slice": (1, 2, 3, 4),
    "Split": (1,), "Pad": (1,), "iqPad": (1,),
}
# ops on quantized activations: their activation inputs (slots, None: all) must be int8, uint8,
# int16 or int32 (never float, never int64)
INTEGER_ACTIVATIONS = {
    "Requant": (0,), "AvgPool2dInt": (0,), "PRelu": (0,), "iqAdd": (0, 1), "iqSub": (0, 1),
    "iqMul": (0, 1), "iqDiv": (0, 1), "iqCat": None, "iqSigmoid": (0,), "iqTanh": (0,),
    "SoftmaxInt": (0,), "LogSoftmaxInt": (0,), "GluInt": (0,), "LayerNormInt": (0,),
}
RECURRENT_OPS = ("GRUInt", "LSTMInt")
ACTIVATION_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16),
                     np.dtype(np.int32))
# op -> input slots that must be constant integer weights / biases
INTEGER_WEIGHTS = {
    "Conv1dInt": (1, 2), "Conv2dInt": (1, 2), "ConvTranspose2dInt": (1, 2), "LinearInt": (1, 2),
    "BatchNorm2dInt": (1, 2), "PRelu": (1,), "LayerNormInt": (1, 2),
}


def attr_kind(value) -> int | None:
    """The model.bin attribute type a Python attribute value is written as (None: omitted),
    exactly as the writer decides; ValueError when it cannot be written."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bool | np.bool_ | int | np.integer):
        return INT
    if isinstance(value, float | np.floating):
        return FLOAT
    if isinstance(value, str):
        return STRING
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | np.integer | bool) for v in value):
            return INTS
        if all(isinstance(v, int | float | np.floating | np.integer) for v in value):
            return FLOATS
    raise ValueError(f"a value that cannot be written: {value!r}")


def attr_type_problem(op_type: str, key: str, kind: int, count: int) -> str | None:
    """Why attribute ``key`` of type ``kind`` with ``count`` values is invalid, or None."""
    if op_type in REDUCE_OPS and key in REDUCE_AXIS_KEYS:
        allowed, exact = frozenset({INT, INTS}), None
    elif key.startswith("scale"):
        allowed, exact = _NUMBER, None
    elif key in ATTR_TYPES:
        allowed, exact = ATTR_TYPES[key]
    else:
        return None
    if kind not in allowed:
        names = " or ".join(KIND_NAMES[k] for k in sorted(allowed))
        return f"attribute '{key}' is {KIND_NAMES.get(kind, f'type {kind}')}, must be {names}"
    if exact is not None and count != exact:
        return f"attribute '{key}' has {count} values, must have {exact}"
    return None


def _count(value) -> int:
    if isinstance(value, np.ndarray):
        return int(value.size)
    return len(value) if isinstance(value, list | tuple) else 1


def _ints(value) -> list[int]:
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return [int(v) for v in (value if isinstance(value, list | tuple) else [value])]


def _exponent(node: Node, key: str) -> int | None:
    """The exponent of a scale attribute, or None when absent or not a power of two (the ops
    report those themselves)."""
    from thinker.qmath import exponent_of_scale

    value = node.attrs.get(key)
    if value is None:
        return None
    try:
        return exponent_of_scale(value)
    except Exception:
        return None


def _input_exponent(node: Node, key: str, t: Tensor | None) -> int | None:
    if node.attrs.get(key) is not None:
        return _exponent(node, key)
    return None if t is None else t.exponent


def _bits_of(dtype) -> int:
    """Magnitude bits of an integer dtype (|v| <= 2**(bits - 1)), 64 for anything else."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return 8 * dtype.itemsize if np.issubdtype(dtype, np.signedinteger) else \
            8 * dtype.itemsize + 1
    return 64


# ---------------------------------------------------------------------------------------------
# op rules


def node_problems(node: Node, ins: list[Tensor | None]) -> list[str]:
    """Every op rule ``node`` breaks (attributes as the file gives them: before defaults)."""
    label = node.label()
    problems = []
    for key, value in node.attrs.items():
        try:
            kind = attr_kind(value)
        except ValueError as exc:
            problems.append(f"{label}: attribute '{key}': {exc}")
            continue
        if kind is None:
            continue
        problem = attr_type_problem(node.op_type, key, kind, _count(value))
        if problem:
            problems.append(f"{label}: {problem}")
    if problems:
        return problems  # the value checks below assume the right types
    for key, value in node.attrs.items():  # every scale is an exact power of two
        if key.startswith("scale") and value is not None and _exponent(node, key) is None:
            problems.append(f"{label}: attribute '{key}' = {value!r} is not an exact positive "
                            "power of two; re-export with power-of-two scales")
    from thinker.ops.rounding import mode_problem

    mode = mode_problem(node)
    if mode:
        problems.append(mode)
    if problems:
        return problems

    op = node.op_type
    for slot in INTEGER_WEIGHTS.get(op, ()):
        t = ins[slot] if slot < len(ins) else None
        if t is not None and (t.data is None or not np.issubdtype(t.data.dtype, np.integer)
                              or (op == "LayerNormInt" and t.data.dtype == np.int64)):
            what = "weight" if slot == 1 else "bias"
            problems.append(f"{label}: {what} {t.describe()} must be an integer constant "
                            f"({'int4..int32' if op == 'LayerNormInt' else 'int4..int64'}); "
                            "export the layer with quantized (integer) parameters")
        elif t is not None and t.data.dtype == np.int64 and t.data.size and \
                not INT32_RANGE[0] <= int(t.data.min()) <= int(t.data.max()) <= INT32_RANGE[1]:
            problems.append(f"{label}: {t.describe()} holds values beyond int32; weights and "
                            "biases are at most 32-bit integers")
    if op in INTEGER_ACTIVATIONS:
        slots = INTEGER_ACTIVATIONS[op]
        for slot, t in enumerate(ins):
            if t is not None and (slots is None or slot in slots) and \
                    np.dtype(t.dtype) not in ACTIVATION_DTYPES:
                problems.append(f"{label}: input {t.describe()} must be int8, uint8, int16 or "
                                "int32; insert a Quant (or Requant) before it")
    if op in RECURRENT_OPS:  # activations int8..int32, every constant an integer
        for t in ins:
            if t is not None and (np.dtype(t.dtype) not in ACTIVATION_DTYPES if t.data is None
                                  else not np.issubdtype(t.data.dtype, np.integer)):
                problems.append(f"{label}: input {t.describe()} must be an int8..int32 "
                                "activation or an integer constant (weights, biases)")
            elif t is not None and t.data is not None and t.data.dtype == np.int64 and \
                    t.data.size and not INT32_RANGE[0] <= int(t.data.min()) <= \
                    int(t.data.max()) <= INT32_RANGE[1]:
                problems.append(f"{label}: {t.describe()} holds values beyond int32; weights "
                                "and biases are at most 32-bit integers")
    if op in RECURRENT_OPS and not problems:
        problems += _recurrent_bias_problems(node, ins)
    clip = node.attrs.get("fused_clip")
    if clip is not None:
        lo, hi = (int(v) for v in clip)
        bits = node.attrs.get("o_bits")
        out_lo, out_hi = (-(1 << (int(bits) - 1)), (1 << (int(bits) - 1)) - 1) \
            if bits in (4, 8, 16, 32) else (lo, hi)
        if lo > hi or lo > out_hi or hi < out_lo:
            problems.append(f"{label}: fused_clip {[lo, hi]} must be an interval that meets the "
                            f"o_bits range [{out_lo}, {out_hi}]")
    if op in FLOAT_OUTPUT_OPS and node.attrs.get("o_bits") is None:
        qx, qw = _exponent(node, "scale_x"), _exponent(node, "scale_w")
        if qx is not None and qw is not None and not FLOAT_OUTPUT_Q[0] <= qx + qw <= \
                FLOAT_OUTPUT_Q[1]:
            problems.append(f"{label}: a float output (no o_bits) at exponent {qx + qw} (scale_x "
                            f"* scale_w) leaves float32's exact range "
                            f"{FLOAT_OUTPUT_Q[0]}..{FLOAT_OUTPUT_Q[1]}; give o_bits or "
                            "ordinary scales")
    if op == "Gather" and len(ins) > 1 and ins[1] is not None and \
            not np.issubdtype(ins[1].dtype, np.integer):
        problems.append(f"{label}: indices {ins[1].describe()} must be integers")
    bias_problem = _bias_problem(node, ins)
    if bias_problem:
        problems.append(f"{label}: {bias_problem}")
    if op == "Resize":
        scales = ins[1] if len(ins) == 2 else (ins[2] if len(ins) > 2 else None)
        if scales is not None and scales.data is not None and \
                np.issubdtype(scales.data.dtype, np.floating) and \
                not np.all(np.isfinite(scales.data)):
            problems.append(f"{label}: scales {scales.data.tolist()} must be finite")
    if op == "MaxPool" and ins and ins[0] is not None and np.dtype(ins[0].dtype) == np.int64:
        problems.append(f"{label}: input {ins[0].describe()} is int64; pool int8..int32 values")
    if op == "PRelu" and len(ins) > 1 and ins[0] is not None and ins[1] is not None:
        try:
            fits = np.broadcast_shapes(ins[0].shape, ins[1].shape) == tuple(ins[0].shape)
        except ValueError:
            fits = False
        if not fits:
            problems.append(f"{label}: slope {ins[1].describe()} does not broadcast to input "
                            f"{ins[0].describe()}")
    for slot in INTEGER_OPERANDS.get(op, ()):
        t = ins[slot] if slot < len(ins) else None
        if t is not None and (t.data is None or not np.issubdtype(t.data.dtype, np.integer)):
            problems.append(f"{label}: input {slot} {t.describe()} must be a constant integer "
                            "tensor (an initializer)")
    if op == "Clip":
        problems += _clip_problems(node, ins)
    elif op in ("AvgPool2dInt", "MaxPool"):
        problems += _geometry_problems(node, ("kernel_shape", "strides", "dilations"),
                                       ("pads",))
        if op == "AvgPool2dInt" and not problems:
            problems += _avgpool_problems(node, ins)
    elif op in ("Conv1dInt", "Conv2dInt", "ConvTranspose2dInt"):
        problems += _geometry_problems(node, ("kernel_shape", "strides", "dilations"),
                                       ("pads", "output_padding"))
        group = node.attrs.get("group")
        if group is not None and not 1 <= int(group) <= 0x7FFFFFFF:
            problems.append(f"{label}: group {group} must be >= 1")
    elif op in ("Pad", "iqPad"):
        problems += _pad_problems(node, ins)
    return problems


def _recurrent_bias_problems(node: Node, ins) -> list[str]:
    """GRUInt / LSTMInt biases hold one value per gate row (G * H) or one for all."""
    try:
        has_h = bool(int(node.attrs.get("has_hidden") or 0))
        has_c = node.op_type == "LSTMInt" and bool(int(node.attrs.get("has_cell") or 0))
    except (TypeError, ValueError):
        return []  # the op names it
    w = 1 + has_h + has_c
    gates = 4 if node.op_type == "LSTMInt" else 3
    if len(ins) <= w + 1 or ins[w + 1] is None or len(ins[w + 1].shape) != 2:
        return []
    rows = gates * ins[w + 1].shape[1]
    for t in ins[w + 2:]:
        if t is not None and int(np.prod(t.shape, dtype=np.int64)) not in (1, rows):
            return [f"{node.label()}: bias {t.describe()} must hold 1 or {rows} values"]
    return []


def _bias_problem(node: Node, ins) -> str | None:
    """The bias of an accumulating op holds one value per output channel (or one for all)."""
    op = node.op_type
    if op not in ("Conv1dInt", "Conv2dInt", "ConvTranspose2dInt", "LinearInt",
                  "BatchNorm2dInt") or len(ins) < 3 or None in ins[:3]:
        return None
    w = ins[1].shape
    if op == "BatchNorm2dInt":
        if len(ins[0].shape) < 2:
            return None  # the op names the input's rank
        channels = ins[0].shape[1]
    elif op == "LinearInt":
        if len(w) != 2:
            return None  # the op names the weight's rank
        channels = w[0] if int(node.attrs.get("transB", 1) or 0) else w[1]
    elif op == "ConvTranspose2dInt":
        channels = (w[1] if len(w) > 1 else 0) * int(node.attrs.get("group", 1) or 1)
    else:
        channels = w[0] if w else 0
    size = int(np.prod(ins[2].shape, dtype=np.int64))
    if size not in (1, channels):
        return f"bias {ins[2].describe()} must hold 1 or {channels} values (one per output channel)"
    return None


def _clip_problems(node: Node, ins) -> list[str]:
    bounds = [("min", node.attrs.get("min")), ("max", node.attrs.get("max"))]
    for slot, name in ((1, "min"), (2, "max")):
        t = ins[slot] if slot < len(ins) else None
        if t is not None:
            if t.data is None or t.data.size != 1:
                return [f"{node.label()}: {name} {t.describe()} must be a single constant value"]
            bounds.append((name, t.data.reshape(-1)[0]))
    for name, value in bounds:
        if value is not None and not math.isfinite(float(value)):
            return [f"{node.label()}: Clip {name} is {float(value)}; give finite bounds (omit a "
                    "bound to leave that side open)"]
    return []


def _geometry_problems(node: Node, positive: tuple[str, ...],
                       non_negative: tuple[str, ...]) -> list[str]:
    for key in positive + non_negative:
        values = _ints(node.attrs.get(key))
        low = 1 if key in positive else 0
        if any(not low <= v <= GEOMETRY_LIMIT for v in values):
            return [f"{node.label()}: {key} {values} must be in {low}..{GEOMETRY_LIMIT}"]
    return []


def _avgpool_problems(node: Node, ins) -> list[str]:
    """The exact rounding division round(sum * 2**(qo - qx) / d) moves the power of two into
    the numerator (qo > qx) or the divisor (qo < qx): the window sum, or the largest divisor,
    times it must stay below 2**61 (int64 holds 2 * num + den)."""
    x = ins[0] if ins else None
    qx = _exponent(node, "scale_x")
    qo = _exponent(node, "scale_o") if node.attrs.get("scale_o") is not None else qx
    if x is None or qx is None or qo is None or qo == qx or len(x.shape) < 3:
        return []
    kernel = _ints(node.attrs.get("kernel_shape")) or list(x.shape[2:])
    window = int(np.prod(kernel, dtype=object)) if kernel else 1
    if qo > qx:
        bound, what = window << (_bits_of(x.dtype) - 1), f"a window sum of {window} values"
    else:
        override = int(node.attrs.get("divisor_override", -1) or -1)
        bound = override if override > 0 else window
        what = f"the divisor {bound}"
    if bound.bit_length() + abs(qo - qx) > WINDOW_SHIFT_LIMIT:
        return [f"{node.label()}: scale_o 2**{qo} is {abs(qo - qx)} bits from scale_x 2**{qx}: "
                f"{what} times 2**{abs(qo - qx)} leaves 2**{WINDOW_SHIFT_LIMIT}; use a scale_o "
                "closer to scale_x"]
    return []


def _pad_problems(node: Node, ins) -> list[str]:
    if len(ins) > 1 and ins[1] is not None and ins[1].data is not None:
        pads = [int(v) for v in np.asarray(ins[1].data).reshape(-1)]
    else:
        pads = _ints(node.attrs.get("pads"))
    if any(not 0 <= p <= PAD_LIMIT for p in pads):
        return [f"{node.label()}: pads {pads} must be in 0..{PAD_LIMIT}"]
    value = node.attrs.get("value")
    if len(ins) > 2 and ins[2] is not None:
        t = ins[2]
        if t.data is None or t.data.size != 1:
            return [f"{node.label()}: constant_value {t.describe()} must be a single constant"]
        value = t.data.reshape(-1)[0]
    x = ins[0] if ins else None
    if value is not None and x is not None and np.issubdtype(x.dtype, np.integer):
        v = float(value)
        info = np.iinfo(x.dtype)
        if not math.isfinite(v) or not info.min <= math.trunc(v) <= info.max:
            return [f"{node.label()}: pad value {v} is not a {np.dtype(x.dtype).name} value"]
    return []


def duplicate_names(names: list[str]) -> str | None:
    seen = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


def graph_problems(graph: Graph) -> list[str]:
    """tpacker's view: the op rules of every node, unique node names."""
    from thinker.errors import name as shown

    problems = []
    dup = duplicate_names([n.name for n in graph.nodes])
    if dup is not None:
        problems.append(f"node name '{shown(dup)}' is used by "
                        f"{sum(n.name == dup for n in graph.nodes)} nodes; give every node a "
                        "unique name")
    for node in graph.nodes:
        ins = [graph.tensors.get(n) if n else None for n in node.inputs]
        problems += node_problems(node, ins)
    return problems


# ---------------------------------------------------------------------------------------------
# record rules (model.bin)


def lifetimes(model) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """(first, last, producer): the step each tensor is born (-1: graph inputs and constants)
    and last needed (len(ops): graph outputs and arena constants), and the op producing it."""
    steps = len(model.ops)
    first, last, producer = {}, {}, {}
    for tid, r in enumerate(model.tensors):
        if r.is_constant or tid in model.inputs:
            first[tid] = -1
            last[tid] = steps if r.is_constant else -1
    for i, op in enumerate(model.ops):
        for tid in op.inputs:
            if tid != fmt.NO_TENSOR and tid in first:
                last[tid] = max(last[tid], i)
        for tid in op.outputs:
            producer[tid] = i
            first[tid] = last[tid] = i
    for tid in model.outputs:
        if tid in first:
            last[tid] = steps
    return first, last, producer


def record_problem(model) -> str | None:
    """The first record rule a parsed model.bin breaks, or None (ids, offsets and string
    references are already checked by the reader)."""
    from thinker.errors import name as shown

    tensors = model.tensors
    names = [r.name for r in tensors]
    if "" in names:
        return f"tensor {names.index('')} has an empty name"
    dup = duplicate_names(names)
    if dup is not None:
        return f"tensor name '{shown(dup)}' is used by two tensors"
    op_names = [op.name for op in model.ops]
    if "" in op_names:
        return f"op {op_names.index('')} has an empty name"
    dup = duplicate_names(op_names)
    if dup is not None:
        return f"op name '{shown(dup)}' is used by two ops"
    inputs, outputs = set(model.inputs), set(model.outputs)
    if len(inputs) != len(model.inputs) or len(outputs) != len(model.outputs):
        return "a tensor is listed twice as a graph input or twice as a graph output"
    for tid, r in enumerate(tensors):
        what = f"tensor {tid} '{shown(r.name)}'"
        if r.flags & ~0xF:
            return f"{what}: unknown flag bits {r.flags:#x}"
        if bool(r.flags & fmt.FLAG_CONSTANT) != (r.data_offset != fmt.NO_DATA):
            return f"{what}: the constant flag and the data offset disagree"
        if bool(r.flags & fmt.FLAG_INPUT) != (tid in inputs) or \
                bool(r.flags & fmt.FLAG_OUTPUT) != (tid in outputs):
            return f"{what}: its input/output flags disagree with the io section"
        if int(np.prod(r.shape, dtype=object)) > MAX_ELEMENTS:
            return f"{what}: more than {MAX_ELEMENTS:,} elements"
        if r.dtype_code == fmt.DTYPE_INT4 and not r.is_constant:
            return f"{what}: int4 is only for constants"
        if tid in inputs and r.is_constant:
            return f"{what}: a constant listed as a graph input"
        size = min(fmt.packed_nbytes(r.dtype_code, 1), 8) if r.dtype_code != fmt.DTYPE_INT4 \
            else 1
        if size > 1 and ((r.data_offset if r.is_constant else 0) % size or
                         (r.memory != fmt.MEM_FLASH and r.offset % size)):
            return f"{what}: offset not aligned to its {size}-byte elements"
    for i, op in enumerate(model.ops):
        if op.op_type == "LayerNormInt" and "eps_q" not in op.attrs:
            return (f"op {i} LayerNormInt '{shown(op.name)}': no attribute eps_q (the integer eps "
                    "tpacker writes); re-pack the model")
    produced: set[int] = set()
    available = {tid for tid, r in enumerate(tensors) if r.is_constant or tid in inputs}
    for i, op in enumerate(model.ops):
        what = f"op {i} {shown(op.op_type)} '{shown(op.name)}'"
        for tid in op.inputs:
            if tid != fmt.NO_TENSOR and tid not in available:
                return f"{what}: reads tensor {tid} '{shown(tensors[tid].name)}' before any op " \
                       "writes it"
        for tid in op.outputs:
            if tid in produced or tid in inputs or tensors[tid].is_constant:
                return f"{what}: writes tensor {tid} '{shown(tensors[tid].name)}', which is a " \
                       "graph input, a constant or written by another op"
            produced.add(tid)
        available.update(op.outputs)
    for tid in model.outputs:
        if tid not in available:
            return f"graph output {tid} '{shown(tensors[tid].name)}' is never written"
    return _overlap_problem(model)


def _alias_root(model, producer: dict[int, int], t: int) -> int:
    """The tensor whose bytes ``t`` holds through a chain of reshape-like ops (each link the
    same memory, offset and size), or ``t`` itself. Two tensors with the same root are views
    of the same bytes (a reshape of a reshape, or two reshapes of one tensor)."""
    seen = 0
    while t in producer and seen <= len(model.ops):
        op = model.ops[producer[t]]
        if op.op_type not in ALIASING_OPS or not op.inputs or op.outputs[0] != t:
            break
        src = op.inputs[0]
        if src == fmt.NO_TENSOR:
            break
        rs, rt = model.tensors[src], model.tensors[t]
        if (rs.memory, rs.offset, rs.nbytes) != (rt.memory, rt.offset, rt.nbytes):
            break
        t, seen = src, seen + 1
    return t


def _pair_problem(model, first, last, producer, a: int, b: int) -> bool:
    """Whether arena tensors ``a`` and ``b`` (overlapping bytes) conflict."""
    if first[a] > first[b] or (first[a] == first[b] and a > b):
        a, b = b, a
    if last[a] < first[b]:
        return False  # never live together
    ra, rb = model.tensors[a], model.tensors[b]
    if first[b] < 0 or (ra.offset, ra.nbytes) != (rb.offset, rb.nbytes):
        return True
    root = _alias_root(model, producer, a)
    if _alias_root(model, producer, b) == root:
        return False  # views of the same bytes
    op = model.ops[first[b]]
    # in place: b is the one output of an element-wise op over an input holding a's bytes
    # (a itself or a view of them), and a dies at that op
    return not (op.op_type in IN_PLACE_OPS and last[a] == first[b] and op.outputs == [b]
                and any(c != fmt.NO_TENSOR and _alias_root(model, producer, c) == root
                        and model.tensors[c].shape == rb.shape for c in op.inputs))


def _overlap_problem(model) -> str | None:
    from thinker.errors import name as shown

    first, last, producer = lifetimes(model)
    by_kind: dict[int, list[int]] = {}
    for tid, r in enumerate(model.tensors):
        if r.memory != fmt.MEM_FLASH and r.nbytes and tid in first:
            by_kind.setdefault(r.memory, []).append(tid)
    for kind, tids in by_kind.items():
        tids.sort(key=lambda t: model.tensors[t].offset)
        for i, a in enumerate(tids):
            end = model.tensors[a].offset + model.tensors[a].nbytes
            for b in tids[i + 1:]:
                if model.tensors[b].offset >= end:
                    break
                if _pair_problem(model, first, last, producer, a, b):
                    ra, rb = model.tensors[a], model.tensors[b]
                    return (f"tensors '{shown(ra.name)}' [{ra.offset}, {ra.offset + ra.nbytes}) "
                            f"and '{shown(rb.name)}' [{rb.offset}, {rb.offset + rb.nbytes}) "
                            f"share {fmt.MEMORY_KIND_NAMES.get(kind, kind)} bytes while both "
                            "are live")
    # a kernel's scratch is live only during its op: no tensor live then may share its bytes
    for op, kind, offset, size in getattr(model, "scratch", []):
        for t in by_kind.get(kind, []):
            r = model.tensors[t]
            if r.offset < offset + size and offset < r.offset + r.nbytes and \
                    first[t] <= op <= last[t]:
                return (f"the kernel scratch of op {op} '{shown(model.ops[op].name)}' "
                        f"[{offset}, {offset + size}) and tensor '{shown(r.name)}' "
                        f"[{r.offset}, {r.offset + r.nbytes}) share "
                        f"{fmt.MEMORY_KIND_NAMES.get(kind, kind)} bytes while both are live")
    return None


def scratch_problem(model, graph: Graph) -> str | None:
    """Every op whose C kernel needs scratch (``thinker.memory.scratch``, the twins of the C
    prepare steps) has a planned region at least that large (section 9), as the C executor
    checks at init (a conv / linear planned with less takes its scratch-free path); None when
    all fit."""
    from thinker.errors import name as shown
    from thinker.memory.scratch import op_scratch

    recorded = {op: size for op, _kind, _offset, size in getattr(model, "scratch", [])}
    for i, node in enumerate(graph.nodes):
        need = op_scratch(graph, node, budget=recorded.get(i, 0))
        if need > recorded.get(i, 0):
            return (f"op {i} {shown(node.op_type)} '{shown(node.name)}': its kernel needs "
                    f"{need} B of scratch; model.bin plans {recorded.get(i, 0)} B (re-pack the "
                    "model with this version's tpacker)")
    return None


def check_consistent(graph: Graph, where: str) -> None:
    """Every op of a model.bin: known type, input count, required attributes, the op rules,
    then its outputs re-derived from its inputs (shape inference) must equal the records.
    Fills in the ops' attribute defaults. Raises ThinkerFormatError."""
    from thinker.errors import ThinkerFormatError, ThinkerModelError
    from thinker.ops import OPS
    from thinker.ops.base import REQUIRED

    for node in graph.nodes:
        op = OPS.get(node.op_type)
        if op is None:
            raise ThinkerFormatError(f"{where}: op {node.label()} has unknown type "
                                     f"'{node.op_type}'")
        if not op.min_inputs <= len(node.inputs) <= op.max_inputs or \
                not all(name or i in op.optional_inputs
                        for i, name in enumerate(node.inputs[: op.min_inputs])):
            raise ThinkerFormatError(f"{where}: op {node.label()} has inputs {node.inputs}; "
                                     f"it needs {op.min_inputs}..{op.max_inputs}")
        ins = [graph.tensors[n] if n else None for n in node.inputs]
        problems = node_problems(node, ins)
        if problems:
            raise ThinkerFormatError(f"{where}: {problems[0]}")
        missing = [k for k, v in op.attrs.items() if v is REQUIRED and k not in node.attrs]
        if missing:
            raise ThinkerFormatError(f"{where}: op {node.label()} lacks attributes {missing}")
        for key, default in op.attrs.items():
            node.attrs.setdefault(key, default)
        try:
            outs = op.infer(node, ins)
        except ThinkerModelError:
            raise
        except Exception as exc:  # a CRC-valid but inconsistent file must not crash us
            raise ThinkerFormatError(f"{where}: op {node.label()} is malformed ({exc})") \
                from None
        if len(outs) != len(node.outputs):
            raise ThinkerFormatError(f"{where}: op {node.label()} lists {len(node.outputs)} "
                                     f"outputs, computes {len(outs)}")
        for name, spec in zip(node.outputs, outs, strict=True):
            t = graph.tensors[name]
            if tuple(t.shape) != tuple(spec.shape) or np.dtype(t.dtype) != spec.dtype:
                raise ThinkerFormatError(
                    f"{where}: {node.label()} output '{name}' is recorded as "
                    f"{np.dtype(t.dtype).name}{list(t.shape)} but computes "
                    f"{spec.dtype.name}{list(spec.shape)}")
