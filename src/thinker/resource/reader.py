"""model.bin bytes -> PackedModel, validating everything before anything is trusted.

Every failure is a ThinkerFormatError naming the file and what is wrong (bad magic, unknown
version, CRC mismatch, truncation, an id or offset out of range); no other exception escapes.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from thinker.errors import ThinkerFormatError
from thinker.graph.ir import Graph, Node, Tensor
from thinker.resource import format as fmt
from thinker.resource import rules


@dataclass
class TensorRecord:
    name: str
    dtype_code: int
    shape: tuple[int, ...]
    memory: int
    flags: int
    exponent: int | None
    offset: int  # in its memory: arena offset (PSRAM/SRAM) or params offset (flash)
    nbytes: int
    data_offset: int  # params offset of a constant's data (copied to RAM at load if needed)

    @property
    def is_constant(self) -> bool:
        return bool(self.flags & fmt.FLAG_CONSTANT)


@dataclass
class OpRecord:
    op_type: str
    name: str
    inputs: list[int]  # fmt.NO_TENSOR for an omitted optional input
    outputs: list[int]
    attrs: dict


@dataclass
class PackedModel:
    path: str
    platform_id: int
    tensors: list[TensorRecord]
    ops: list[OpRecord]
    inputs: list[int]
    outputs: list[int]
    params: bytes
    arenas: dict[int, tuple[int, int]]  # memory kind -> (size, alignment)
    dynamic_shapes: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    source_names: dict[int, str] = field(default_factory=dict)
    file_size: int = 0
    streams: list[tuple[int, int]] = field(default_factory=list)  # (history id, state id)
    # (tensor id, axis, dynamic record index, mul, add, div): dim = (mul * L + add) // div
    shape_rules: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    # kernel scratch regions (section 9): (op index, memory kind, arena offset, bytes)
    scratch: list[tuple[int, int, int, int]] = field(default_factory=list)

    def constant(self, record: TensorRecord) -> np.ndarray:
        count = int(np.prod(record.shape, dtype=np.int64))
        blob = self.params[record.data_offset: record.data_offset + record.nbytes]
        if record.dtype_code == fmt.DTYPE_INT4:
            return fmt.unpack_int4(blob, count).reshape(record.shape)
        dtype = fmt.DTYPE_TO_NUMPY[record.dtype_code]
        return np.frombuffer(blob, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(
            record.shape)

    def to_graph(self) -> Graph:
        """The packed program as a Graph (shapes, exponents, constants, attributes)."""
        tensors = {}
        for r in self.tensors:
            data = self.constant(r) if r.is_constant else None
            tensors[r.name] = Tensor(r.name, r.shape, fmt.DTYPE_TO_NUMPY[r.dtype_code],
                                     r.exponent, data)
        names = [r.name for r in self.tensors]
        nodes = [Node(op.op_type, op.name,
                      [names[i] if i != fmt.NO_TENSOR else "" for i in op.inputs],
                      [names[i] for i in op.outputs], dict(op.attrs)) for op in self.ops]
        return Graph(os.path.splitext(os.path.basename(self.path))[0] or "model", nodes,
                     tensors, [names[i] for i in self.inputs], [names[i] for i in self.outputs],
                     source_path=self.path,
                     streams=[(names[h], names[s]) for h, s in self.streams],
                     dynamic=[(names[t], a, lo, hi, f) for t, a, lo, hi, f in self.dynamic_shapes])


class _Cursor:
    def __init__(self, data: bytes, start: int, end: int, what: str, where: str):
        self.data, self.pos, self.end, self.what, self.where = data, start, end, what, where

    def take(self, fmt_string: str) -> tuple:
        size = struct.calcsize(fmt_string)
        if self.pos + size > self.end:
            raise ThinkerFormatError(f"{self.where}: {self.what} section is truncated at byte "
                                     f"{self.pos}")
        values = struct.unpack_from(fmt_string, self.data, self.pos)
        self.pos += size
        return values


def read_model(path: str | os.PathLike) -> PackedModel:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ThinkerFormatError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_model(data, path)


def parse_model(data: bytes, where: str = "model.bin", check_crc: bool = True) -> PackedModel:
    """Validate and decode model.bin bytes. ``check_crc=False`` is for inspection tools that
    report a bad CRC instead of refusing the file."""
    try:
        return _parse(data, where, check_crc)
    except ThinkerFormatError:
        raise
    except (struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError,
            OverflowError, MemoryError) as exc:  # defence in depth: never a raw crash
        raise ThinkerFormatError(f"{where}: malformed model.bin ({exc})") from None


def _parse(data: bytes, where: str, check_crc: bool) -> PackedModel:
    if len(data) < fmt.HEADER_SIZE:
        raise ThinkerFormatError(f"{where}: {len(data)} bytes is too short for a model.bin "
                                 f"header ({fmt.HEADER_SIZE} bytes); the file is truncated")
    (magic, version, header_size, platform_id, n_sections, table_offset, crc, _reserved,
     file_size) = struct.unpack_from(fmt.HEADER_FORMAT, data, 0)
    if magic != fmt.MAGIC:
        raise ThinkerFormatError(f"{where}: not a thinker model.bin (bad magic {magic!r}); "
                                 "pack the model with tpacker")
    if version != fmt.FORMAT_VERSION:
        raise ThinkerFormatError(f"{where}: format version {version} is not supported (this "
                                 f"thinker reads version {fmt.FORMAT_VERSION}); repack the model")
    if header_size != fmt.HEADER_SIZE:
        raise ThinkerFormatError(f"{where}: header size {header_size} != {fmt.HEADER_SIZE}")
    if file_size != len(data):
        raise ThinkerFormatError(
            f"{where}: header says {file_size:,} bytes but the file has {len(data):,}; "
            "the file is truncated or has trailing data")
    actual = zlib.crc32(memoryview(data)[fmt.HEADER_SIZE:]) & 0xFFFFFFFF
    if check_crc and actual != crc:
        raise ThinkerFormatError(f"{where}: CRC mismatch (stored {crc:08x}, computed "
                                 f"{actual:08x}); the file is corrupt")
    if table_offset < fmt.HEADER_SIZE or n_sections > 64 or \
            table_offset + n_sections * fmt.SECTION_ENTRY_SIZE > len(data):
        raise ThinkerFormatError(f"{where}: section table ({n_sections} entries at "
                                 f"{table_offset}) is out of bounds")
    sections: dict[int, tuple[int, int, int]] = {}
    for i in range(n_sections):
        kind, offset, size, count = struct.unpack_from(
            "<IIII", data, table_offset + i * fmt.SECTION_ENTRY_SIZE)
        name = fmt.SECTION_NAMES.get(kind, f"kind {kind}")
        if offset % fmt.ALIGN or offset < fmt.HEADER_SIZE or offset + size > len(data):
            raise ThinkerFormatError(f"{where}: {name} section (offset {offset}, size {size}) "
                                     "is misaligned or out of bounds")
        if kind in sections:
            raise ThinkerFormatError(f"{where}: duplicate {name} section")
        sections[kind] = (offset, size, count)
    for kind in fmt.REQUIRED_SECTIONS:
        if kind not in sections:
            raise ThinkerFormatError(f"{where}: missing {fmt.SECTION_NAMES[kind]} section")

    s_off, s_size, _ = sections[fmt.SECTION_STRINGS]
    strings = data[s_off: s_off + s_size]

    def string(offset: int, what: str) -> str:
        if offset >= len(strings):
            raise ThinkerFormatError(f"{where}: {what}: string offset {offset} out of range "
                                     f"(strings section is {len(strings)} bytes)")
        end = strings.find(b"\x00", offset)
        if end < 0:
            raise ThinkerFormatError(f"{where}: {what}: string at {offset} is not terminated")
        return strings[offset:end].decode("utf-8")

    p_off, p_size, _ = sections[fmt.SECTION_PARAMS]
    params = data[p_off: p_off + p_size]

    m_off, m_size, m_count = sections[fmt.SECTION_MEMORY]
    cur = _Cursor(data, m_off, m_off + m_size, "memory", where)
    arenas = {}
    for _ in range(m_count):
        kind, size, align, _r = cur.take("<IIII")
        if kind not in (fmt.MEM_PSRAM, fmt.MEM_SRAM) or align == 0 or align & (align - 1):
            raise ThinkerFormatError(f"{where}: memory plan entry has kind {kind}, alignment "
                                     f"{align}")
        arenas[kind] = (size, align)

    t_off, t_size, t_count = sections[fmt.SECTION_TENSORS]
    if t_count * fmt.TENSOR_RECORD_SIZE > t_size:
        raise ThinkerFormatError(f"{where}: tensors section holds fewer than {t_count} records")
    tensors = []
    for i in range(t_count):
        (name_off, dtype_code, ndim, memory, flags, exponent, *rest) = struct.unpack_from(
            "<IBBBBi6IIII", data, t_off + i * fmt.TENSOR_RECORD_SIZE)
        dims, offset, nbytes, data_offset = rest[:6], rest[6], rest[7], rest[8]
        name = string(name_off, f"tensor {i}")
        what = f"tensor {i} '{name}'"
        if dtype_code not in fmt.DTYPE_TO_NUMPY:
            raise ThinkerFormatError(f"{where}: {what}: unknown dtype code {dtype_code}")
        if ndim > fmt.MAX_DIMS:
            raise ThinkerFormatError(f"{where}: {what}: {ndim} dims (at most {fmt.MAX_DIMS})")
        shape = tuple(int(d) for d in dims[:ndim])
        count = int(np.prod(shape, dtype=np.int64))
        if nbytes != fmt.packed_nbytes(dtype_code, count):
            raise ThinkerFormatError(f"{where}: {what}: {nbytes} bytes do not match shape "
                                     f"{list(shape)}")
        constant = bool(flags & fmt.FLAG_CONSTANT)
        if constant and (data_offset == fmt.NO_DATA or data_offset + nbytes > len(params)):
            raise ThinkerFormatError(f"{where}: {what}: constant data at {data_offset} "
                                     f"(+{nbytes} B) lies outside the params section "
                                     f"({len(params)} bytes)")
        if memory == fmt.MEM_FLASH:
            if not constant or offset != data_offset:
                raise ThinkerFormatError(f"{where}: {what}: only constants live in flash, at "
                                         "their data offset")
        elif memory in arenas:
            limit = arenas[memory][0]
            if offset + nbytes > limit:
                raise ThinkerFormatError(
                    f"{where}: {what}: [{offset}, {offset + nbytes}) lies outside the "
                    f"{fmt.MEMORY_KIND_NAMES[memory]} arena ({limit} bytes)")
        else:
            raise ThinkerFormatError(f"{where}: {what}: memory kind {memory} has no arena")
        tensors.append(TensorRecord(name, dtype_code, shape, memory, flags,
                                    exponent if flags & fmt.FLAG_HAS_EXPONENT else None,
                                    offset, nbytes, data_offset))

    def tensor_id(value: int, what: str, optional: bool = False) -> int:
        if optional and value == fmt.NO_TENSOR:
            return value
        if value >= len(tensors):
            raise ThinkerFormatError(f"{where}: {what}: tensor id {value} out of range "
                                     f"({len(tensors)} tensors)")
        return value

    o_off, o_size, o_count = sections[fmt.SECTION_OPS]
    cur = _Cursor(data, o_off, o_off + o_size, "ops", where)
    ops = []
    for i in range(o_count):
        type_off, name_off, n_in, n_out, n_attrs, _r = cur.take("<IIHHHH")
        op_type, name = string(type_off, f"op {i}"), string(name_off, f"op {i}")
        what = f"op {i} {op_type} '{name}'"
        ids = cur.take(f"<{n_in + n_out}I")
        inputs = [tensor_id(v, what, optional=True) for v in ids[:n_in]]
        outputs = [tensor_id(v, what) for v in ids[n_in:]]
        attrs = {}
        for _ in range(n_attrs):
            key_off, kind, count = cur.take("<IBxH")
            key = string(key_off, what)
            if key in attrs:
                raise ThinkerFormatError(f"{where}: {what}: attribute '{key}' is given twice")
            problem = rules.attr_type_problem(op_type, key, kind, count)
            if problem:
                raise ThinkerFormatError(f"{where}: {what}: {problem}")
            if kind == fmt.ATTR_INT and count == 1:
                attrs[key] = cur.take("<i")[0]
            elif kind == fmt.ATTR_FLOAT and count == 1:
                attrs[key] = cur.take("<f")[0]
            elif kind == fmt.ATTR_INTS:
                attrs[key] = list(cur.take(f"<{count}i"))
            elif kind == fmt.ATTR_FLOATS:
                attrs[key] = list(cur.take(f"<{count}f"))
            elif kind == fmt.ATTR_STRING and count == 1:
                attrs[key] = string(cur.take("<I")[0], f"{what} attribute {key}")
            else:
                raise ThinkerFormatError(f"{where}: {what}: attribute '{key}' has bad type "
                                         f"{kind} / count {count}")
        ops.append(OpRecord(op_type, name, inputs, outputs, attrs))

    i_off, i_size, _ = sections[fmt.SECTION_IO]
    cur = _Cursor(data, i_off, i_off + i_size, "io", where)
    n_inputs, n_outputs = cur.take("<II")
    io_ids = cur.take(f"<{n_inputs + n_outputs}I")
    inputs = [tensor_id(v, "graph input") for v in io_ids[:n_inputs]]
    outputs = [tensor_id(v, "graph output") for v in io_ids[n_inputs:]]

    dynamic = []
    if fmt.SECTION_DYNAMIC_SHAPES in sections:
        d_off, d_size, d_count = sections[fmt.SECTION_DYNAMIC_SHAPES]
        cur = _Cursor(data, d_off, d_off + d_size, "dynamic shapes", where)
        for _ in range(d_count):
            tid, axis, lo, hi, factor = cur.take("<IIIII")
            dynamic.append((tensor_id(tid, "dynamic shape"), axis, lo, hi, factor))
    source_names = {}
    if fmt.SECTION_DEBUG in sections:
        g_off, g_size, g_count = sections[fmt.SECTION_DEBUG]
        cur = _Cursor(data, g_off, g_off + g_size, "debug names", where)
        for _ in range(g_count):
            tid, name_off = cur.take("<II")
            source_names[tensor_id(tid, "debug name")] = string(name_off, "debug name")

    scratch = []
    if fmt.SECTION_SCRATCH in sections:
        k_off, k_size, k_count = sections[fmt.SECTION_SCRATCH]
        cur = _Cursor(data, k_off, k_off + k_size, "scratch", where)
        for i in range(k_count):
            op, kind, offset, size = cur.take("<IIII")
            what = f"scratch record {i}"
            if op >= len(ops) or (scratch and op <= scratch[-1][0]):
                raise ThinkerFormatError(f"{where}: {what}: op index {op} out of range or not "
                                         "increasing")
            if kind not in arenas or offset % 8 or size == 0 or \
                    offset + size > arenas[kind][0]:
                raise ThinkerFormatError(
                    f"{where}: {what}: [{offset}, {offset + size}) in memory kind {kind} is "
                    "empty, not 8-byte aligned or outside its arena")
            scratch.append((op, kind, offset, size))

    streams = []
    if fmt.SECTION_STREAMS in sections:
        d_off, d_size, d_count = sections[fmt.SECTION_STREAMS]
        cur = _Cursor(data, d_off, d_off + d_size, "streams", where)
        for _ in range(d_count):
            h, st = cur.take("<II")
            streams.append((tensor_id(h, "stream history"), tensor_id(st, "stream state")))
    shape_rules = []
    if fmt.SECTION_SHAPE_RULES in sections:
        d_off, d_size, d_count = sections[fmt.SECTION_SHAPE_RULES]
        cur = _Cursor(data, d_off, d_off + d_size, "shape rules", where)
        for _ in range(d_count):
            tid, axis, rule, mul, add, div = cur.take("<IIIiiI")
            shape_rules.append((tensor_id(tid, "shape rule"), axis, rule, mul, add, div))

    model = PackedModel(where, platform_id, tensors, ops, inputs, outputs, params, arenas,
                        dynamic, source_names, len(data), streams=streams,
                        shape_rules=shape_rules, scratch=scratch)
    problem = dynamic_problem(model)
    if problem is not None:
        raise ThinkerFormatError(f"{where}: {problem}")
    _check_rules(model, where)
    return model


def dynamic_problem(model: PackedModel) -> str | None:
    """The first broken rule of the dynamic shapes, streams and shape rules sections (mirrored
    by executor/src/model_reader.c, check_dynamic), or None."""
    t, inputs, outputs = model.tensors, set(model.inputs), set(model.outputs)
    seen = set()
    for i, (tid, axis, lo, hi, factor) in enumerate(model.dynamic_shapes):
        what = f"dynamic shape {i}"
        if tid not in inputs or t[tid].is_constant:
            return f"{what}: tensor {tid} is not a graph input"
        if axis >= len(t[tid].shape):
            return f"{what}: axis {axis} is beyond '{t[tid].name}' ({len(t[tid].shape)} dims)"
        if not 1 <= lo <= hi or factor < 1 or t[tid].shape[axis] != hi:
            return (f"{what}: '{t[tid].name}' range {lo}:{hi}:{factor} is not 1 <= MIN <= MAX "
                    f"= the planned length {t[tid].shape[axis]}, FACTOR >= 1")
        if (tid, axis) in seen:
            return f"{what}: '{t[tid].name}' axis {axis} is given twice"
        seen.add((tid, axis))
    histories, states = set(), set()
    for i, (h, st) in enumerate(model.streams):
        what = f"stream {i}"
        if h not in inputs or t[h].is_constant or st not in outputs or t[st].is_constant or \
                h in histories or st in states:
            return f"{what}: needs a graph input and a graph output, each in one pair"
        if t[h].dtype_code != t[st].dtype_code or t[h].shape != t[st].shape:
            return f"{what}: '{t[h].name}' and '{t[st].name}' differ in dtype or shape"
        histories.add(h)
        states.add(st)
        r = t[h]
        others = [(o.name, o.memory, o.offset, o.nbytes) for k, o in enumerate(t)
                  if k != h and not o.is_constant] + \
            [(f"scratch of op {op}", kind, off, size) for op, kind, off, size in model.scratch]
        for name, memory, offset, nbytes in others:
            if memory == r.memory and nbytes and r.nbytes and offset < r.offset + r.nbytes \
                    and r.offset < offset + nbytes:
                return (f"{what}: history '{r.name}' shares bytes with '{name}'; a stream's "
                        "history lives for the whole run")
    previous = None
    for i, (tid, axis, rule, mul, add, div) in enumerate(model.shape_rules):
        what = f"shape rule {i}"
        if previous is not None and (tid, axis) <= previous:
            return f"{what}: not in ascending (tensor, axis) order"
        previous = (tid, axis)
        if t[tid].is_constant or tid in histories or tid in states:
            return f"{what}: tensor {tid} is a constant or a stream state"
        if axis >= len(t[tid].shape) or rule >= len(model.dynamic_shapes):
            return f"{what}: axis {axis} or dynamic shape {rule} out of range"
        _, _, lo, hi, _ = model.dynamic_shapes[rule]
        if div < 1 or mul < 0 or mul * lo + add < div or \
                (mul * hi + add) // div != t[tid].shape[axis]:
            return (f"{what}: '{t[tid].name}' axis {axis} = ({mul} L + {add}) / {div} must be "
                    f">= 1 at L = {lo} and equal the planned {t[tid].shape[axis]} at L = {hi}")
    for i, (tid, axis, *_rest) in enumerate(model.dynamic_shapes):
        if (tid, axis, i, 1, 0, 1) not in model.shape_rules:
            return f"dynamic shape {i}: its own shape rule (L) is missing"
    return None


def _check_rules(model: PackedModel, where: str) -> None:
    """The model rules (thinker.resource.rules): records, then every op's attributes and
    the shapes and dtypes it computes."""
    from thinker.errors import ThinkerModelError

    problem = rules.record_problem(model)
    if problem is not None:
        raise ThinkerFormatError(f"{where}: {problem}")
    graph = model.to_graph()
    try:
        rules.check_consistent(graph, where)
    except ThinkerModelError as exc:
        raise ThinkerFormatError(f"{where}: {exc}") from None
    problem = rules.scratch_problem(model, graph)
    if problem is not None:
        raise ThinkerFormatError(f"{where}: {problem}")
