"""Graph + memory plan -> model.bin bytes (layout in docs/format.md)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Graph
from thinker.resource import format as fmt


@dataclass
class DynamicShape:
    """``--dynamic_shape name=min:max:factor``: axis ``axis`` of input ``tensor`` takes the
    lengths ``min, min + factor, ... <= max`` (planned at ``max``)."""

    tensor: str
    minimum: int
    maximum: int
    factor: int
    axis: int = 0
    input_index: int = 0  # position among the graph inputs (survives input renames)


@dataclass
class ShapeRule:
    """Axis ``axis`` of ``tensor`` is ``floor((mul * L + add) / div)`` where L is the length of
    dynamic shape number ``rule`` (docs/format.md, section 10)."""

    tensor: str
    axis: int
    rule: int
    mul: int
    add: int
    div: int

    def dim(self, length: int) -> int:
        return (self.mul * length + self.add) // self.div


@dataclass
class Placement:
    kind: int  # fmt.MEM_*
    offset: int
    size: int


@dataclass
class PackInput:
    """Everything the writer needs besides the graph."""

    platform_id: int
    placements: dict[str, Placement]  # every non-constant tensor, and constants not in flash
    arenas: dict[int, tuple[int, int]]  # memory kind -> (size, alignment)
    dynamic_shapes: list[DynamicShape] = field(default_factory=list)
    source_names: dict[str, str] = field(default_factory=dict)  # tensor -> original ONNX name
    streams: list[tuple[str, str]] = field(default_factory=list)  # (history input, state output)
    shape_rules: list[ShapeRule] = field(default_factory=list)
    # op index -> its planned kernel scratch region (thinker.memory.scratch; section 9)
    scratch: dict[int, Placement] = field(default_factory=dict)


class _Strings:
    def __init__(self) -> None:
        self.data = bytearray(b"\x00")
        self.index: dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.data)
            self.data += text.encode("utf-8") + b"\x00"
        return self.index[text]


def _int4_weights(graph: Graph) -> set[str]:
    """Constants that are 4-bit weights (input 1 of a node with parameter_bits = 4)."""
    names = set()
    for node in graph.nodes:
        if int(node.attrs.get("parameter_bits") or 8) == 4 and len(node.inputs) > 1:
            t = graph.tensors.get(node.inputs[1])
            if t is not None and t.is_constant and t.data.dtype == np.int8 \
                    and t.data.size and t.data.min() >= -8 and t.data.max() <= 7:
                names.add(t.name)
    return names


def _attr_record(strings: _Strings, key: str, value, where: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bool | np.bool_):
        value = int(value)
    if isinstance(value, int | np.integer):
        return struct.pack("<IBxHi", strings.add(key), fmt.ATTR_INT, 1, int(value))
    if isinstance(value, float | np.floating):
        return struct.pack("<IBxHf", strings.add(key), fmt.ATTR_FLOAT, 1, float(value))
    if isinstance(value, str):
        return struct.pack("<IBxHI", strings.add(key), fmt.ATTR_STRING, 1, strings.add(value))
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | np.integer | bool) for v in value):
            return struct.pack(f"<IBxH{len(value)}i", strings.add(key), fmt.ATTR_INTS,
                               len(value), *map(int, value))
        if all(isinstance(v, int | float | np.floating | np.integer) for v in value):
            return struct.pack(f"<IBxH{len(value)}f", strings.add(key), fmt.ATTR_FLOATS,
                               len(value), *map(float, value))
    raise ThinkerModelError(f"{where}: attribute '{key}' has a value that cannot be packed: "
                            f"{value!r}")


def derived_attrs(graph: Graph, node) -> dict:
    """The op's derived attributes (``Op.packed_attrs``), unless the node already has them."""
    from thinker.ops import OPS

    ins = [graph.tensors.get(n) if n else None for n in node.inputs]
    return {k: v for k, v in OPS[node.op_type].packed_attrs(node, ins).items()
            if k not in node.attrs}


def tensor_order(graph: Graph) -> list[str]:
    """Tensor ids: graph inputs, then constants by first use, then outputs in execution order."""
    order: list[str] = list(graph.inputs)
    seen = set(order)
    for node in graph.nodes:
        for name in [*node.inputs, *node.outputs]:
            if name and name not in seen:
                seen.add(name)
                order.append(name)
    for name in graph.outputs:
        if name not in seen:
            seen.add(name)
            order.append(name)
    return order


def write_model(graph: Graph, pack: PackInput) -> bytes:
    strings = _Strings()
    order = tensor_order(graph)
    ids = {name: i for i, name in enumerate(order)}
    int4 = _int4_weights(graph)
    inputs, outputs = set(graph.inputs), set(graph.outputs)

    params = bytearray()
    tensor_records = bytearray()
    for name in order:
        t = graph.tensors[name]
        if len(t.shape) > fmt.MAX_DIMS:
            raise ThinkerModelError(f"tensor '{name}' has {len(t.shape)} dims; at most "
                                    f"{fmt.MAX_DIMS} are supported")
        dtype_code = fmt.DTYPE_INT4 if name in int4 else fmt.NUMPY_TO_DTYPE.get(np.dtype(t.dtype))
        if dtype_code is None:
            raise ThinkerModelError(f"tensor '{name}' has dtype {t.dtype}, which model.bin "
                                    "cannot hold")
        count = int(np.prod(t.shape, dtype=np.int64))
        nbytes = fmt.packed_nbytes(dtype_code, count)
        flags = ((fmt.FLAG_CONSTANT if t.is_constant else 0)
                 | (fmt.FLAG_INPUT if name in inputs else 0)
                 | (fmt.FLAG_OUTPUT if name in outputs else 0)
                 | (fmt.FLAG_HAS_EXPONENT if t.exponent is not None else 0))
        data_offset = fmt.NO_DATA
        if t.is_constant:
            data = np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<"))
            blob = fmt.pack_int4(data) if dtype_code == fmt.DTYPE_INT4 else data.tobytes()
            params += b"\x00" * (fmt.align_up(len(params)) - len(params))
            data_offset = len(params)
            params += blob
        placement = pack.placements.get(name)
        if placement is not None:
            kind, offset = placement.kind, placement.offset
        elif t.is_constant:
            kind, offset = fmt.MEM_FLASH, data_offset
        else:
            raise ThinkerModelError(f"tensor '{name}' has no memory placement")
        dims = list(t.shape) + [0] * (fmt.MAX_DIMS - len(t.shape))
        tensor_records += struct.pack(
            "<IBBBBi6IIII", strings.add(name), dtype_code, len(t.shape), kind, flags,
            int(t.exponent or 0), *dims, offset, nbytes, data_offset)

    op_records = bytearray()
    for node in graph.nodes:
        attrs = [r for r in (_attr_record(strings, k, v, node.label())
                             for k, v in sorted({**node.attrs,
                                                 **derived_attrs(graph, node)}.items()))
                 if r is not None]
        ins = [ids[n] if n else fmt.NO_TENSOR for n in node.inputs]
        outs = [ids[n] for n in node.outputs]
        op_records += struct.pack("<IIHHHH", strings.add(node.op_type), strings.add(node.name),
                                  len(ins), len(outs), len(attrs), 0)
        op_records += struct.pack(f"<{len(ins) + len(outs)}I", *ins, *outs)
        for record in attrs:
            op_records += record

    io = struct.pack(f"<II{len(graph.inputs) + len(graph.outputs)}I", len(graph.inputs),
                     len(graph.outputs), *[ids[n] for n in graph.inputs],
                     *[ids[n] for n in graph.outputs])
    memory = b"".join(struct.pack("<IIII", kind, size, align, 0)
                      for kind, (size, align) in sorted(pack.arenas.items()))
    dynamic = b"".join(struct.pack("<IIIII", ids[d.tensor], d.axis, d.minimum, d.maximum,
                                   d.factor) for d in pack.dynamic_shapes)
    debug = b"".join(struct.pack("<II", ids[t], strings.add(src))
                     for t, src in sorted(pack.source_names.items()) if t in ids)

    scratch = b"".join(struct.pack("<IIII", op, p.kind, p.offset, p.size)
                       for op, p in sorted(pack.scratch.items()))

    sections = [
        (fmt.SECTION_TENSORS, bytes(tensor_records), len(order)),
        (fmt.SECTION_OPS, bytes(op_records), len(graph.nodes)),
        (fmt.SECTION_IO, io, len(graph.inputs) + len(graph.outputs)),
        (fmt.SECTION_PARAMS, bytes(params), 0),
        (fmt.SECTION_MEMORY, memory, len(pack.arenas)),
        (fmt.SECTION_DYNAMIC_SHAPES, dynamic, len(pack.dynamic_shapes)),
        (fmt.SECTION_DEBUG, debug, len(debug) // 8),
    ]
    if pack.streams:
        sections.append((fmt.SECTION_STREAMS, b"".join(
            struct.pack("<II", ids[h], ids[s]) for h, s in pack.streams), len(pack.streams)))
    if pack.shape_rules:
        rules = sorted(pack.shape_rules, key=lambda r: (ids[r.tensor], r.axis))
        sections.append((fmt.SECTION_SHAPE_RULES, b"".join(
            struct.pack("<IIIiiI", ids[r.tensor], r.axis, r.rule, r.mul, r.add, r.div)
            for r in rules), len(rules)))
    if pack.scratch:
        sections.append((fmt.SECTION_SCRATCH, scratch, len(pack.scratch)))
    sections.insert(0, (fmt.SECTION_STRINGS, bytes(strings.data), len(strings.index)))

    table_offset = fmt.HEADER_SIZE
    cursor = fmt.align_up(table_offset + fmt.SECTION_ENTRY_SIZE * len(sections))
    table, body = bytearray(), bytearray()
    for kind, data, count in sections:
        table += struct.pack("<IIII", kind, cursor, len(data), count)
        padded = data + b"\x00" * (fmt.align_up(len(data)) - len(data))
        body += padded
        cursor += len(padded)
    after_header = bytes(table) + b"\x00" * (
        fmt.align_up(table_offset + len(table)) - table_offset - len(table)) + bytes(body)
    total = fmt.HEADER_SIZE + len(after_header)
    crc = zlib.crc32(after_header) & 0xFFFFFFFF
    header = struct.pack(fmt.HEADER_FORMAT, fmt.MAGIC, fmt.FORMAT_VERSION, fmt.HEADER_SIZE,
                         pack.platform_id, len(sections), table_offset, crc, 0, total)
    assert len(header) == fmt.HEADER_SIZE
    return header + after_header
