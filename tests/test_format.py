"""model.bin: write -> read round trip, and fuzzed files never escape as anything but
ThinkerFormatError."""

import contextlib
import struct
import zlib

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packing_models import small_cnn
from thinker.errors import ThinkerFormatError
from thinker.packer import Packer, PackOptions
from thinker.resource import format as fmt
from thinker.resource import parse_model
from thinker.runtime.packed import PackedExecutor


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fmt")
    onnx.save(small_cnn(), tmp / "cnn.onnx")
    result = Packer(PackOptions(graph_path=str(tmp / "cnn.onnx"),
                                workspace=str(tmp / "ws"))).run()
    return result


def test_round_trip_keeps_every_tensor_op_and_attribute(packed):
    model = parse_model(packed.model_bin)
    graph = model.to_graph()
    src = packed.graph
    assert graph.inputs == src.inputs and graph.outputs == src.outputs
    assert [n.op_type for n in graph.nodes] == [n.op_type for n in src.nodes]
    assert [n.name for n in graph.nodes] == [n.name for n in src.nodes]
    for a, b in zip(graph.nodes, src.nodes, strict=True):
        assert a.inputs == b.inputs and a.outputs == b.outputs
        for key, value in b.attrs.items():
            if value is not None:
                assert a.attrs[key] == (list(value) if isinstance(value, tuple) else value), key
    for name, t in src.tensors.items():
        r = graph.tensors[name]
        assert (r.shape, np.dtype(r.dtype), r.exponent) == (t.shape, np.dtype(t.dtype),
                                                            t.exponent)
        if t.is_constant:
            assert np.array_equal(r.data, t.data)
    assert model.platform_id == packed.device.id
    for kind, arena in packed.plan.arenas.items():
        assert model.arenas[kind] == (arena.size, packed.plan.alignment)


def test_header_and_sections_follow_the_documented_layout(packed):
    data = packed.model_bin
    magic, version, header, _platform, count, table, crc, _, size = struct.unpack_from(
        fmt.HEADER_FORMAT, data, 0)
    assert magic == b"THINKER\x00" and version == 1 and header == 64 and table == 64
    assert size == len(data) and crc == zlib.crc32(data[64:])
    kinds = []
    for i in range(count):
        kind, offset, length, _ = struct.unpack_from("<IIII", data, 64 + 16 * i)
        assert offset % 16 == 0 and offset + length <= len(data)
        kinds.append(kind)
    assert kinds[:8] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert kinds[8:] == sorted(set(kinds[8:])) and all(k > 8 for k in kinds[8:])
    assert (fmt.SECTION_SCRATCH in kinds) == bool(packed.plan.scratch)


def _error(data: bytes) -> str:
    with pytest.raises(ThinkerFormatError) as info:
        parse_model(data, "fuzz.bin")
    return str(info.value)


def test_specific_corruptions_have_clear_messages(packed):
    data = packed.model_bin
    assert "bad magic" in _error(b"XXXXXXXX" + data[8:])
    assert "format version 7 is not supported" in _error(
        data[:8] + struct.pack("<H", 7) + data[10:])
    assert "truncated" in _error(data[:-5])
    assert "too short for a model.bin header" in _error(data[:20])
    flipped = bytearray(data)
    flipped[200] ^= 0x10
    assert "CRC mismatch" in _error(bytes(flipped))


def _with_crc(body: bytearray) -> bytes:
    struct.pack_into("<I", body, 24, zlib.crc32(bytes(body[64:])) & 0xFFFFFFFF)
    return bytes(body)


def test_out_of_range_ids_are_reported_even_with_a_valid_crc(packed):
    model = parse_model(packed.model_bin)
    data = bytearray(packed.model_bin)
    # first op record: its first input id -> 10**6
    _, o_off, _, _ = next(struct.unpack_from("<IIII", data, 64 + 16 * i) for i in range(8)
                          if struct.unpack_from("<I", data, 64 + 16 * i)[0] == fmt.SECTION_OPS)
    struct.pack_into("<I", data, o_off + 16, 10**6)
    assert f"tensor id 1000000 out of range ({len(model.tensors)} tensors)" in \
        _error(_with_crc(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_files_raise_only_format_errors(packed, data):
    original = packed.model_bin
    how = data.draw(st.sampled_from(["truncate", "flip", "flip_fix_crc", "random", "splice"]))
    if how == "truncate":
        blob = original[: data.draw(st.integers(0, len(original) - 1))]
    elif how in ("flip", "flip_fix_crc"):
        body = bytearray(original)
        for _ in range(data.draw(st.integers(1, 8))):
            pos = data.draw(st.integers(0, len(body) - 1))
            body[pos] ^= 1 << data.draw(st.integers(0, 7))
        blob = _with_crc(body) if how == "flip_fix_crc" and len(body) >= 64 else bytes(body)
    elif how == "random":
        blob = data.draw(st.binary(min_size=0, max_size=512))
    else:  # a valid header glued to garbage, CRC made to match
        garbage = data.draw(st.binary(min_size=0, max_size=2048))
        body = bytearray(original[:64] + garbage)
        struct.pack_into("<Q", body, 32, len(body))
        blob = _with_crc(body)
    try:
        model = parse_model(blob, "fuzz.bin")
    except ThinkerFormatError:
        return
    # a file that parses must also either load into an executor or fail with a format error
    with contextlib.suppress(ThinkerFormatError):
        PackedExecutor(model)
