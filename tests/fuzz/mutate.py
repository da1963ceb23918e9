"""Structure-aware model.bin mutations (seeded): records, ids, offsets, dims, attribute
values/types/counts, strings, constants, sections; every mutant has a valid CRC so the readers'
deeper checks run."""

from __future__ import annotations

import copy
import math
import random
import struct

from mbin import (
    ATTR_FLOAT,
    ATTR_FLOATS,
    ATTR_INT,
    ATTR_INTS,
    ATTR_STRING,
    Attr,
    Model,
    decode,
    encode,
    f32_bits,
    with_crc,
)

OP_TYPES = [
    "Quant", "Dequant", "Requant", "Conv1dInt", "Conv2dInt", "ConvTranspose2dInt", "LinearInt",
    "BatchNorm2dInt", "AvgPool2dInt", "MaxPool", "Relu", "Clip", "PRelu", "iqAdd", "iqSub",
    "iqMul", "iqDiv", "iqCat", "iqPad", "Pad", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
    "Transpose", "Slice", "Split", "Concat", "Gather", "Resize", "iqSigmoid", "iqTanh", "GluInt",
    "SoftmaxInt", "LogSoftmaxInt", "LayerNormInt", "BmmInt", "iqSum", "iqVar", "Identity", "",
]
INTS = [0, 1, -1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 62, 63, 64, 65, 127, 128, 255, 256, 65535,
        65536, 0x7FFFFFFF, -0x80000000, -2, -7, -63, -64, 100000]
U32 = [0, 1, 2, 3, 4, 8, 16, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 65536, 100, 64,
       48, 12]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.0, 2.0**-60, 2.0**60, 2.0**100, 2.0**-100,
          2.0**-149, 2.0**127, 2.0**-126, 1.5, float("nan"), float("inf"), float("-inf"),
          128.0, 2.0**-7, 2.0**15, 2.0**31, 2.0**62, 2.0**-62, 1e-5, 32768.0, 3.4e38]
STRINGS = ["", "constant", "reflect", "edge", "wrap", "NOTSET", "SAME_UPPER", "venus", "arcs",
           "venusA", "VENUS", "mars", "cortex-m", "luna_quant", "nearest", "linear",
           "asymmetric", "floor", "half_pixel", "round_prefer_ceil", "a\nb", "\u00e9t\u00e9",
           "floor_add", "round", "ceil"]
KEYS = ["scale_x", "scale_y", "scale_w", "scale_o", "scale_x_0", "scale_x_1", "o_bits",
        "data_bits", "parameter_bits", "kernel_shape", "strides", "pads", "dilations", "group",
        "output_padding", "fused_clip", "act_type", "transA", "transB", "axis", "dim", "dims",
        "axes", "keepdims", "divisor", "unbiased", "perm", "starts", "ends", "steps", "split",
        "shape", "allowzero", "mode", "value", "min", "max", "ceil_mode", "count_include_pad",
        "divisor_override", "auto_pad", "platform", "platform_quant", "eps", "eps_q",
        "scale_y_normal", "coordinate_transformation_mode", "nearest_mode", "num_outputs",
        "storage_order", "scale_i", "quant_mode", "quant_mode", "hidden_size", "has_hidden",
        "go_forward", "batch_first", "h_bits", "scale_h", "scale_c"]


def _attr_value(rng: random.Random, kind: int) -> Attr:
    n = rng.choice([0, 1, 1, 2, 2, 3, 4, 7])
    if kind == ATTR_INT:
        return Attr("", kind, [rng.choice(INTS)])
    if kind == ATTR_FLOAT:
        return Attr("", kind, [f32_bits(rng.choice(FLOATS))])
    if kind == ATTR_INTS:
        return Attr("", kind, [rng.choice(INTS) for _ in range(n)])
    if kind == ATTR_FLOATS:
        return Attr("", kind, [f32_bits(rng.choice(FLOATS)) for _ in range(n)])
    return Attr("", ATTR_STRING, [rng.choice(STRINGS)])


def _convert(rng: random.Random, a: Attr) -> None:
    """Change the attribute's type, keeping a related value where there is one."""
    kind = rng.choice([k for k in (ATTR_INT, ATTR_FLOAT, ATTR_INTS, ATTR_FLOATS, ATTR_STRING,
                                   0, 6) if k != a.kind])
    nums = [v for v in a.values if isinstance(v, int)]
    if a.kind in (ATTR_FLOAT, ATTR_FLOATS):
        nums = [_f(v) for v in a.values]
    if kind == ATTR_INT:
        a.values = [int(nums[0]) if nums and math.isfinite(nums[0]) else rng.choice(INTS)]
    elif kind == ATTR_FLOAT:
        a.values = [f32_bits(float(nums[0]) if nums else rng.choice(FLOATS))]
    elif kind == ATTR_INTS:
        a.values = [int(v) for v in nums if math.isfinite(v)] or [rng.choice(INTS)]
    elif kind == ATTR_FLOATS:
        a.values = [f32_bits(float(v)) for v in nums] or [f32_bits(rng.choice(FLOATS))]
    elif kind == ATTR_STRING:
        a.values = [rng.choice(STRINGS)]
    else:
        a.values = [rng.randrange(1 << 32)]
    a.kind = kind


def _f(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def _mutate_attr(rng: random.Random, m: Model) -> None:
    ops = [op for op in m.ops]
    if not ops:
        return
    op = rng.choice(ops)
    what = rng.randrange(10)
    if what == 0 or not op.attrs:  # add an attribute
        kind = rng.choice([ATTR_INT, ATTR_FLOAT, ATTR_INTS, ATTR_FLOATS, ATTR_STRING])
        a = _attr_value(rng, kind)
        a.key = rng.choice(KEYS)
        op.attrs.insert(rng.randrange(len(op.attrs) + 1), a)
        return
    a = rng.choice(op.attrs)
    if what == 1:
        op.attrs.remove(a)
    elif what == 2:  # duplicate key with another value
        b = copy.deepcopy(a)
        if b.values and b.kind in (ATTR_INT, ATTR_INTS):
            b.values[rng.randrange(len(b.values))] = rng.choice(INTS)
        elif b.values and b.kind in (ATTR_FLOAT, ATTR_FLOATS):
            b.values[rng.randrange(len(b.values))] = f32_bits(rng.choice(FLOATS))
        op.attrs.insert(rng.randrange(len(op.attrs) + 1), b)
    elif what == 3:
        _convert(rng, a)
    elif what == 4:  # declared count differs from the values
        a.count = rng.choice([0, 1, 2, len(a.values) + 1, max(len(a.values) - 1, 0), 0xFFFF])
    elif what == 5:
        a.key = rng.choice(KEYS)
    elif what in (6, 7, 8, 9) and a.values:  # change one value
        i = rng.randrange(len(a.values))
        if a.kind in (ATTR_INT, ATTR_INTS):
            v = a.values[i]
            a.values[i] = rng.choice([*INTS, v + 1, v - 1, -v, v * 2, v + 2])
        elif a.kind in (ATTR_FLOAT, ATTR_FLOATS):
            v = _f(a.values[i])
            choices = FLOATS + ([v * 2, v / 2, -v, v * 2**20, v * 2**-20] if math.isfinite(v)
                                else [])
            a.values[i] = f32_bits(rng.choice(choices)) if rng.random() < 0.9 else \
                rng.randrange(1 << 32)
        elif a.kind == ATTR_STRING:
            a.values[i] = rng.choice(STRINGS)
        elif what == 9 and a.kind in (ATTR_INTS, ATTR_FLOATS):
            del a.values[i]


def _mutate_tensor(rng: random.Random, m: Model) -> None:
    if not m.tensors:
        return
    t = rng.choice(m.tensors)
    other = rng.choice(m.tensors)
    what = rng.randrange(14)
    if what == 0:
        t.dtype = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 255])
    elif what == 1:
        t.ndim = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, t.ndim + 1, max(t.ndim - 1, 0)])
    elif what == 2:
        t.memory = rng.choice([0, 1, 2, 3, 4])
    elif what == 3:
        t.flags ^= 1 << rng.randrange(8)
    elif what == 4:
        t.exponent = rng.choice([*INTS, t.exponent + 1, t.exponent - 40, t.exponent + 60])
    elif what in (5, 6):  # a dim, with nbytes recomputed half the time
        k = rng.randrange(6)
        t.dims[k] = rng.choice([0, 1, 2, 3, t.dims[k] + 1, max(t.dims[k] - 1, 0), t.dims[k] * 2,
                                65536, 0xFFFFFFFF, 0x10000001])
        if what == 6:
            _fix_nbytes(t)
    elif what == 7:
        t.offset = rng.choice([*U32, other.offset, t.offset + 1, t.offset + 16, t.offset - 16])
    elif what == 8:
        t.nbytes = rng.choice([*U32, t.nbytes + 1, t.nbytes * 2])
    elif what == 9:
        t.data_offset = rng.choice([*U32, other.data_offset, t.data_offset + 16])
        if t.memory == 1:
            t.offset = t.data_offset
    elif what == 10:
        t.name = rng.choice([other.name, "", t.name + "\n", "x" * 300, "\u202e"])
    elif what == 11:  # move an activation onto another's bytes (aliasing, overlap)
        if t.memory in (2, 3) and other.memory == t.memory:
            t.offset = other.offset + rng.choice([0, 0, 0, 1, 2, 4, -4, other.nbytes // 2])
    elif what == 12:  # shape swap with another tensor (keeps nbytes consistent)
        t.ndim, t.dims = other.ndim, list(other.dims)
        _fix_nbytes(t)
    else:
        t.flags = rng.choice([0, 1, 2, 4, 8, 9, 10, 12, 15, 16, 255])


def _fix_nbytes(t) -> None:
    size = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 4, 7: 0.5}.get(t.dtype, 1)
    count = 1
    for d in t.dims[:min(t.ndim, 6)]:
        count *= d
    t.nbytes = math.ceil(count * size) & 0xFFFFFFFF


def _mutate_op(rng: random.Random, m: Model) -> None:
    if not m.ops:
        return
    i = rng.randrange(len(m.ops))
    op = m.ops[i]
    n = len(m.tensors)
    what = rng.randrange(12)
    if what == 0:
        op.op_type = rng.choice(OP_TYPES + [o.op_type for o in m.ops])
    elif what == 1:
        op.name = rng.choice([o.name for o in m.ops] + ["", "x\ny"])
    elif what in (2, 3) and op.inputs:
        k = rng.randrange(len(op.inputs))
        op.inputs[k] = rng.choice([rng.randrange(n), rng.randrange(n), 0xFFFFFFFF, n, n + 5,
                                   op.outputs[0] if op.outputs else 0])
    elif what == 4 and op.outputs:
        k = rng.randrange(len(op.outputs))
        op.outputs[k] = rng.choice([rng.randrange(n), n, 0xFFFFFFFF] +
                                   [x for x in op.inputs if x < n])
    elif what == 5:
        if op.inputs and rng.random() < 0.5:
            op.inputs.pop(rng.randrange(len(op.inputs)))
        else:
            op.inputs.insert(rng.randrange(len(op.inputs) + 1),
                             rng.choice([rng.randrange(n), 0xFFFFFFFF]))
    elif what == 6:
        if op.outputs and rng.random() < 0.5:
            op.outputs.pop()
        else:
            op.outputs.append(rng.randrange(n))
    elif what == 7 and len(m.ops) > 1:  # swap with a neighbour (order)
        j = min(i + 1, len(m.ops) - 1) if i + 1 < len(m.ops) else i - 1
        m.ops[i], m.ops[j] = m.ops[j], m.ops[i]
    elif what == 8:
        m.ops.insert(i, copy.deepcopy(op))
    elif what == 9 and len(m.ops) > 1:
        del m.ops[i]
    elif what == 10:
        op.reserved = rng.choice([1, 0xFFFF])
    else:
        for _ in range(3):
            _mutate_attr(rng, m)


def _mutate_io(rng: random.Random, m: Model) -> None:
    n = len(m.tensors)
    lst = m.inputs if rng.random() < 0.5 else m.outputs
    what = rng.randrange(4)
    if what == 0 and lst:
        lst[rng.randrange(len(lst))] = rng.choice([rng.randrange(n), n, 0xFFFFFFFF])
    elif what == 1 and lst:
        lst.pop(rng.randrange(len(lst)))
    elif what == 2 and lst:
        lst.append(rng.choice(lst))
    else:
        lst.append(rng.randrange(n))


def _mutate_memory(rng: random.Random, m: Model) -> None:
    if not m.memory or rng.random() < 0.1:
        m.memory.append((rng.choice([1, 2, 3, 4]), rng.choice(U32), rng.choice([0, 1, 3, 16, 64]),
                         0))
        return
    i = rng.randrange(len(m.memory))
    kind, size, align, res = m.memory[i]
    what = rng.randrange(5)
    if what == 0:
        kind = rng.choice([0, 1, 2, 3, 4, 8])
    elif what == 1:
        size = rng.choice([*U32, size - 1, size - 16, size // 2, size + 16])
    elif what == 2:
        align = rng.choice([0, 1, 2, 3, 16, 64, 4096, 0x80000000])
    elif what == 3:
        res = rng.choice([1, 0xFFFFFFFF])
    else:
        del m.memory[i]
        return
    m.memory[i] = (kind, size & 0xFFFFFFFF, align, res)


def _mutate_param(rng: random.Random, m: Model) -> None:
    """Change one element of a constant (weights, biases, shape / axes / pads operands)."""
    consts = [t for t in m.tensors if t.flags & 1 and t.data_offset + t.nbytes <= len(m.params)
              and t.nbytes]
    if not consts:
        return
    t = rng.choice(consts)
    size = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 4, 7: 1}.get(t.dtype, 1)
    count = max(t.nbytes // size, 1)
    at = t.data_offset + rng.randrange(count) * size
    params = bytearray(m.params)
    if t.dtype == 6:
        raw = struct.pack("<f", rng.choice(FLOATS))
    else:
        v = rng.choice([*INTS, -(1 << 62), 1 << 62, -(1 << 63), (1 << 63) - 1, 2147483647])
        raw = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    params[at:at + size] = raw
    m.params = bytes(params)


def _mutate_strings(rng: random.Random, m: Model) -> None:
    things = [t for t in m.tensors] + [op for op in m.ops]
    if not things:
        return
    x = rng.choice(things)
    x.name = rng.choice(["", x.name + x.name, x.name[:-1], "\udcff" if False else "\x00",
                         "\u00e9", "a" * 1000, rng.choice(things).name])


def _mutate_optional(rng: random.Random, m: Model) -> None:
    n = len(m.tensors)
    if rng.random() < 0.5:
        m.dynamic.append((rng.choice([0, n - 1, n, 0xFFFFFFFF]), rng.choice([0, 1, 7]), 1,
                          rng.choice([0, 5, 0xFFFFFFFF]), rng.choice([0, 1])))
    else:
        m.debug.append((rng.choice([0, n - 1, n, 0xFFFFFFFF]), rng.choice(["", "src", "\n"])))


RECORD_MUTATORS = [
    (_mutate_attr, 8), (_mutate_tensor, 7), (_mutate_op, 6), (_mutate_io, 2),
    (_mutate_memory, 2), (_mutate_param, 5), (_mutate_strings, 1), (_mutate_optional, 1),
]


def _bytes_mutant(rng: random.Random, data: bytes) -> bytes:
    """Byte-level damage after the header (CRC recomputed): flips, boundary values."""
    body = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(16, len(body))
        if rng.random() < 0.5:
            body[at] ^= 1 << rng.randrange(8)
        else:
            body[at] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, 0x10])
    return with_crc(body)


def mutants(seed_file: bytes, rng: random.Random, count: int):
    """``count`` mutants of one valid model.bin: (label, bytes)."""
    base = decode(seed_file)
    for k in range(count):
        if rng.random() < 0.15:
            yield f"bytes#{k}", _bytes_mutant(rng, seed_file)
            continue
        m = copy.deepcopy(base)
        names = []
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            fn = rng.choices([f for f, _ in RECORD_MUTATORS],
                             weights=[w for _, w in RECORD_MUTATORS])[0]
            fn(rng, m)
            names.append(fn.__name__[8:])
        try:
            data = encode(m)
        except (struct.error, OverflowError, UnicodeEncodeError, ValueError):
            continue
        yield "+".join(names) + f"#{k}", data
