"""A model.bin codec that trusts nothing and validates nothing, for building fuzzed files.

``decode`` splits a valid file into plain Python records (strings resolved), ``encode`` writes
any such records back, rebuilding the strings section and the CRC. Mutators in
``mutate.py`` edit the records (or the bytes) to make structurally plausible but broken files.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

HEADER = "<8sHHIIIII Q24x"
ATTR_INT, ATTR_FLOAT, ATTR_INTS, ATTR_FLOATS, ATTR_STRING = 1, 2, 3, 4, 5


@dataclass
class Tensor:
    name: str
    dtype: int
    ndim: int
    memory: int
    flags: int
    exponent: int
    dims: list[int]  # always 6 entries
    offset: int
    nbytes: int
    data_offset: int


@dataclass
class Attr:
    key: str
    kind: int
    values: list  # ints (int, ints), floats as raw u32 bits (float, floats), str (string)
    count: int | None = None  # written count; None: len(values)


@dataclass
class Op:
    op_type: str
    name: str
    inputs: list[int]
    outputs: list[int]
    attrs: list[Attr]
    reserved: int = 0


@dataclass
class Model:
    platform: int
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    params: bytes
    memory: list[tuple[int, int, int, int]]
    dynamic: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    debug: list[tuple[int, str]] = field(default_factory=list)
    extra_strings: list[str] = field(default_factory=list)


def _sections(data: bytes) -> dict[int, tuple[int, int, int]]:
    _, _, _, _, count, table, *_ = struct.unpack_from(HEADER, data, 0)
    out = {}
    for i in range(count):
        kind, off, size, n = struct.unpack_from("<IIII", data, table + 16 * i)
        out[kind] = (off, size, n)
    return out


def decode(data: bytes) -> Model:
    sec = _sections(data)
    s_off, s_size, _ = sec[1]
    strings = data[s_off:s_off + s_size]

    def string(off: int) -> str:
        return strings[off:strings.index(b"\0", off)].decode("utf-8")

    platform = struct.unpack_from("<I", data, 12)[0]
    t_off, _, t_count = sec[2]
    tensors = []
    for i in range(t_count):
        name, dtype, ndim, mem, flags, exp, *rest = struct.unpack_from(
            "<IBBBBi6IIII", data, t_off + 48 * i)
        tensors.append(Tensor(string(name), dtype, ndim, mem, flags, exp, list(rest[:6]),
                              rest[6], rest[7], rest[8]))
    o_off, _o_size, o_count = sec[3]
    pos, ops = o_off, []
    for _ in range(o_count):
        t, n, n_in, n_out, n_attrs, res = struct.unpack_from("<IIHHHH", data, pos)
        pos += 16
        ids = list(struct.unpack_from(f"<{n_in + n_out}I", data, pos))
        pos += 4 * (n_in + n_out)
        attrs = []
        for _ in range(n_attrs):
            key, kind, count = struct.unpack_from("<IBxH", data, pos)
            pos += 8
            raw = list(struct.unpack_from(f"<{count}I", data, pos))
            pos += 4 * count
            if kind in (ATTR_INT, ATTR_INTS):
                values = [v - (1 << 32) if v >= 1 << 31 else v for v in raw]
            elif kind == ATTR_STRING:
                values = [string(v) for v in raw]
            else:
                values = raw
            attrs.append(Attr(string(key), kind, values))
        ops.append(Op(string(t), string(n), ids[:n_in], ids[n_in:], attrs, res))
    i_off, _, _ = sec[4]
    n_in, n_out = struct.unpack_from("<II", data, i_off)
    io = list(struct.unpack_from(f"<{n_in + n_out}I", data, i_off + 8))
    p_off, p_size, _ = sec[5]
    m_off, _, m_count = sec[6]
    memory = [struct.unpack_from("<IIII", data, m_off + 16 * i) for i in range(m_count)]
    dynamic, debug = [], []
    if 7 in sec:
        d_off, _, d_count = sec[7]
        dynamic = [struct.unpack_from("<IIIII", data, d_off + 20 * i) for i in range(d_count)]
    if 8 in sec:
        g_off, _, g_count = sec[8]
        for i in range(g_count):
            tid, s = struct.unpack_from("<II", data, g_off + 8 * i)
            debug.append((tid, string(s)))
    return Model(platform, tensors, ops, io[:n_in], io[n_in:], data[p_off:p_off + p_size],
                 memory, dynamic, debug)


class _Strings:
    def __init__(self):
        self.data, self.index = bytearray(b"\0"), {"": 0}

    def add(self, s: str) -> int:
        if s not in self.index:
            self.index[s] = len(self.data)
            self.data += s.encode("utf-8", "surrogatepass") + b"\0"
        return self.index[s]


def _align(n: int) -> int:
    return (n + 15) // 16 * 16


def with_crc(data: bytes | bytearray) -> bytes:
    body = bytearray(data)
    if len(body) >= 64:
        struct.pack_into("<I", body, 24, zlib.crc32(bytes(body[64:])) & 0xFFFFFFFF)
    return bytes(body)


def encode(m: Model) -> bytes:
    strings = _Strings()
    for s in m.extra_strings:
        strings.add(s)
    tensors = b"".join(struct.pack("<IBBBBi6IIII", strings.add(t.name), t.dtype & 0xFF,
                                   t.ndim & 0xFF, t.memory & 0xFF, t.flags & 0xFF,
                                   _i32(t.exponent), *[d & 0xFFFFFFFF for d in t.dims[:6]],
                                   t.offset & 0xFFFFFFFF, t.nbytes & 0xFFFFFFFF,
                                   t.data_offset & 0xFFFFFFFF) for t in m.tensors)
    ops = bytearray()
    for op in m.ops:
        for a in op.attrs:  # the writer adds attribute strings before the op's type and name
            strings.add(a.key)
            if a.kind == ATTR_STRING:
                for v in a.values:
                    if isinstance(v, str):
                        strings.add(v)
        ops += struct.pack("<IIHHHH", strings.add(op.op_type), strings.add(op.name),
                           len(op.inputs) & 0xFFFF, len(op.outputs) & 0xFFFF,
                           len(op.attrs) & 0xFFFF, op.reserved & 0xFFFF)
        ops += struct.pack(f"<{len(op.inputs) + len(op.outputs)}I",
                           *[v & 0xFFFFFFFF for v in op.inputs + op.outputs])
        for a in op.attrs:
            if a.kind == ATTR_STRING or (a.values and isinstance(a.values[0], str)):
                raw = [strings.add(v) if isinstance(v, str) else v for v in a.values]
            else:
                raw = list(a.values)
            count = len(raw) if a.count is None else a.count
            ops += struct.pack("<IBxH", strings.add(a.key), a.kind & 0xFF, count & 0xFFFF)
            ops += struct.pack(f"<{len(raw)}I", *[int(v) & 0xFFFFFFFF for v in raw])
    io = struct.pack(f"<II{len(m.inputs) + len(m.outputs)}I", len(m.inputs), len(m.outputs),
                     *[v & 0xFFFFFFFF for v in m.inputs + m.outputs])
    memory = b"".join(struct.pack("<IIII", *[v & 0xFFFFFFFF for v in r]) for r in m.memory)
    dynamic = b"".join(struct.pack("<IIIII", *[v & 0xFFFFFFFF for v in r]) for r in m.dynamic)
    debug = b"".join(struct.pack("<II", t & 0xFFFFFFFF, strings.add(s)) for t, s in m.debug)
    sections = [(2, tensors, len(m.tensors)), (3, bytes(ops), len(m.ops)),
                (4, io, len(m.inputs) + len(m.outputs)), (5, bytes(m.params), 0),
                (6, memory, len(m.memory)), (7, dynamic, len(m.dynamic)),
                (8, debug, len(m.debug))]
    sections.insert(0, (1, bytes(strings.data), len(strings.index)))
    cursor = _align(64 + 16 * len(sections))
    table, body = bytearray(), bytearray()
    for kind, data, count in sections:
        table += struct.pack("<IIII", kind, cursor, len(data), count)
        padded = data + b"\0" * (_align(len(data)) - len(data))
        body += padded
        cursor += len(padded)
    after = bytes(table) + b"\0" * (_align(64 + len(table)) - 64 - len(table)) + bytes(body)
    total = 64 + len(after)
    header = struct.pack(HEADER, b"THINKER\0", 1, 64, m.platform, len(sections), 64,
                         zlib.crc32(after) & 0xFFFFFFFF, 0, total)
    return header + after


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def f32_bits(x: float) -> int:
    """The float32 bits of ``x``; beyond float32's range, those of the infinity of its sign
    (a mutated integer attribute turned float can be 2**62)."""
    try:
        return struct.unpack("<I", struct.pack("<f", x))[0]
    except OverflowError:
        return 0x7F800000 if x > 0 else 0xFF800000


def bits_f32(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b & 0xFFFFFFFF))[0]
