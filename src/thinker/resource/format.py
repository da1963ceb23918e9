"""model.bin layout constants (the byte-by-byte spec is docs/format.md; keep them in step).

Little-endian throughout. A 64-byte header, a section table, then sections, each starting at
a 16-byte aligned offset. CRC-32 (IEEE, as zlib.crc32) covers every byte after the header.
"""

from __future__ import annotations

import numpy as np

MAGIC = b"THINKER\x00"
FORMAT_VERSION = 1
HEADER_SIZE = 64
SECTION_ENTRY_SIZE = 16
TENSOR_RECORD_SIZE = 48
ALIGN = 16
MAX_DIMS = 6
NO_TENSOR = 0xFFFFFFFF  # an omitted optional op input
NO_DATA = 0xFFFFFFFF  # data offset of a tensor without initial data (activations)

# header: magic, version, header size, platform id, section count, section table offset, crc32,
# reserved, file size, 24 reserved bytes
HEADER_FORMAT = "<8sHHIIIII Q24x"

# section kinds
SECTION_STRINGS = 1
SECTION_TENSORS = 2
SECTION_OPS = 3
SECTION_IO = 4
SECTION_PARAMS = 5
SECTION_MEMORY = 6
SECTION_DYNAMIC_SHAPES = 7
SECTION_DEBUG = 8
SECTION_SCRATCH = 9  # per-op kernel scratch regions planned in an arena (issue 12)
SCRATCH_RECORD_SIZE = 16  # u32 op index, u32 memory kind, u32 offset, u32 size
SECTION_STREAMS = 10  # (history input, state output) pairs carried between calls (issue 10)
STREAM_RECORD_SIZE = 8  # u32 history input id, u32 state output id
SECTION_SHAPE_RULES = 11  # how tensor dims follow the dynamic axes (issue 10)
SHAPE_RULE_RECORD_SIZE = 24  # u32 tensor id, u32 axis, u32 rule, i32 mul, i32 add, u32 div
DYNAMIC_RECORD_SIZE = 20  # u32 input tensor id, axis, min, max, factor
SECTION_NAMES = {
    SECTION_STRINGS: "strings", SECTION_TENSORS: "tensors", SECTION_OPS: "ops",
    SECTION_IO: "io", SECTION_PARAMS: "params", SECTION_MEMORY: "memory",
    SECTION_DYNAMIC_SHAPES: "dynamic shapes", SECTION_DEBUG: "debug names",
    SECTION_SCRATCH: "scratch", SECTION_STREAMS: "streams", SECTION_SHAPE_RULES: "shape rules",
}
REQUIRED_SECTIONS = (SECTION_STRINGS, SECTION_TENSORS, SECTION_OPS, SECTION_IO, SECTION_PARAMS,
                     SECTION_MEMORY)

# tensor dtypes
DTYPE_INT8, DTYPE_UINT8, DTYPE_INT16, DTYPE_INT32, DTYPE_INT64, DTYPE_FLOAT32, DTYPE_INT4 = \
    1, 2, 3, 4, 5, 6, 7
DTYPE_TO_NUMPY = {
    DTYPE_INT8: np.dtype(np.int8), DTYPE_UINT8: np.dtype(np.uint8),
    DTYPE_INT16: np.dtype(np.int16), DTYPE_INT32: np.dtype(np.int32),
    DTYPE_INT64: np.dtype(np.int64), DTYPE_FLOAT32: np.dtype(np.float32),
    DTYPE_INT4: np.dtype(np.int8),  # unpacked to int8 on read
}
NUMPY_TO_DTYPE = {v: k for k, v in DTYPE_TO_NUMPY.items() if k != DTYPE_INT4}

# memory kinds
MEM_NONE, MEM_FLASH, MEM_PSRAM, MEM_SRAM = 0, 1, 2, 3
MEMORY_KIND_NAMES = {MEM_FLASH: "flash", MEM_PSRAM: "psram", MEM_SRAM: "share-memory"}
MEMORY_KIND_BY_NAME = {"flash": MEM_FLASH, "psram": MEM_PSRAM, "share-memory": MEM_SRAM,
                       "sram": MEM_SRAM}

# tensor flags
FLAG_CONSTANT, FLAG_INPUT, FLAG_OUTPUT, FLAG_HAS_EXPONENT = 1, 2, 4, 8

# attribute value types
ATTR_INT, ATTR_FLOAT, ATTR_INTS, ATTR_FLOATS, ATTR_STRING = 1, 2, 3, 4, 5


def align_up(value: int, alignment: int = ALIGN) -> int:
    return (value + alignment - 1) // alignment * alignment


def packed_nbytes(dtype_code: int, count: int) -> int:
    if dtype_code == DTYPE_INT4:
        return (count + 1) // 2
    return count * DTYPE_TO_NUMPY[dtype_code].itemsize


def pack_int4(values: np.ndarray) -> bytes:
    """Two signed 4-bit values per byte, the even-indexed one in the low nibble."""
    flat = values.astype(np.int8).reshape(-1)
    if flat.size % 2:
        flat = np.append(flat, np.int8(0))
    nibbles = (flat & 0x0F).astype(np.uint8)
    return (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()


def unpack_int4(data: bytes, count: int) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(raw.size * 2, dtype=np.int8)
    out[0::2] = (raw & 0x0F).astype(np.int8)
    out[1::2] = (raw >> 4).astype(np.int8)
    out = np.where(out >= 8, out - 16, out).astype(np.int8)
    return out[:count]
