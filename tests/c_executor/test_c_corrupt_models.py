"""Damaged model.bin files make the C executor return an error status, never crash or read out
of bounds: the ASan + UBSan build of test_thinker runs truncated, corrupted, bit-flipped (with
the CRC patched so validation goes deeper than the checksum) and random files."""

from __future__ import annotations

import struct
import subprocess
import zlib

import numpy as np
import pytest
from c_harness import pack
from c_models import MODELS

import thinker
from thinker.errors import ThinkerFormatError
from thinker.resource.reader import parse_model

SANITIZER_MARKS = ("AddressSanitizer", "runtime error", "LeakSanitizer", "SEGV")


@pytest.fixture(scope="module")
def model_bins(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("corrupt")
    out = {}
    for name in ("conv", "elementwise", "shape", "pool", "conv_variants"):
        build, platform, keep_quant = MODELS[name]
        with open(pack(build(), str(root / f"{name}.bin"), platform, keep_quant), "rb") as f:
            out[name] = f.read()
    return out


def run_bytes(binary: str, data: bytes, tmp_path, name: str = "m.bin"):
    path = tmp_path / name
    path.write_bytes(data)
    r = subprocess.run([binary, "--zeros", "--crc", str(path)], capture_output=True, text=True,
                       check=False, timeout=60)
    assert not any(mark in r.stderr for mark in SANITIZER_MARKS), r.stderr[-3000:]
    assert r.returncode in (0, 1), (r.returncode, r.stderr[-3000:])
    if r.returncode == 1:
        assert r.stderr.startswith("error: "), r.stderr
    return r


def with_crc(data: bytearray) -> bytes:
    struct.pack_into("<I", data, 24, zlib.crc32(bytes(data[64:])) & 0xFFFFFFFF)
    return bytes(data)


def test_truncated_files_are_rejected(model_bins, sanitize_build, tmp_path):
    data = model_bins["conv"]
    for size in (0, 1, 8, 63, 64, 65, 100, len(data) // 2, len(data) - 16, len(data) - 1):
        r = run_bytes(sanitize_build, data[:size], tmp_path)
        assert r.returncode == 1
        assert "ERR_TRUNCATED" in r.stderr or "ERR_SIZE" in r.stderr


def test_header_damage_names_the_problem(model_bins, sanitize_build, tmp_path):
    data = bytearray(model_bins["conv"])
    cases = {
        "ERR_MAGIC": lambda d: d.__setitem__(slice(0, 1), b"X"),
        "ERR_VERSION": lambda d: struct.pack_into("<H", d, 8, 2),
        "ERR_SIZE": lambda d: struct.pack_into("<Q", d, 32, len(d) + 1),
        "ERR_CRC": lambda d: d.__setitem__(len(d) - 1, d[-1] ^ 0x40),
    }
    for status, damage in cases.items():
        copy = bytearray(data)
        damage(copy)
        r = run_bytes(sanitize_build, bytes(copy), tmp_path)
        assert r.returncode == 1 and status in r.stderr, (status, r.stderr)
    r = run_bytes(sanitize_build, bytes(data) + b"\0" * 16, tmp_path)  # trailing data
    assert r.returncode == 1 and "ERR_SIZE" in r.stderr


def test_random_files_are_rejected(sanitize_build, tmp_path):
    rng = np.random.default_rng(4)
    for size in (16, 64, 200, 5000):
        r = run_bytes(sanitize_build, rng.integers(0, 256, size, dtype=np.uint8).tobytes(),
                      tmp_path)
        assert r.returncode == 1
    # a valid header in front of random sections
    body = bytearray(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    header = struct.pack("<8sHHIIIII Q24x", b"THINKER\0", 1, 64, 5, 7, 64, 0, 0, 64 + 4096)
    r = run_bytes(sanitize_build, with_crc(bytearray(header) + body), tmp_path)
    assert r.returncode == 1


def _metadata_end(data: bytes) -> int:
    """Offset where the params section starts (everything before it is tables and records)."""
    n, table = struct.unpack_from("<II", data, 16)
    for i in range(n):
        kind, offset, _, _ = struct.unpack_from("<IIII", data, table + 16 * i)
        if kind == 5:
            return offset
    return len(data)


@pytest.mark.parametrize("name", ["conv", "elementwise", "shape", "pool", "conv_variants"])
def test_bit_flips_with_a_valid_crc_never_crash(name, model_bins, sanitize_build, tmp_path):
    """Flip bytes in the header, section table, strings, tensor and op records (the CRC is
    recomputed so every deeper check is exercised); whatever the executor accepts must also
    run cleanly, and what the reference reader rejects as malformed the C reader rejects."""
    data = model_bins[name]
    end = _metadata_end(data)
    rng = np.random.default_rng(sum(map(ord, name)))
    for trial in range(80):
        copy = bytearray(data)
        for _ in range(1 + trial % 3):
            at = int(rng.integers(8, end))
            if trial % 2:
                copy[at] ^= 1 << int(rng.integers(0, 8))
            else:
                copy[at] = int(rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, 0x10]))
        mutated = with_crc(copy)
        r = run_bytes(sanitize_build, mutated, tmp_path)
        try:
            parse_model(mutated)
        except ThinkerFormatError as exc:
            assert r.returncode == 1, f"numpy reader rejects ({exc}) but C accepted"


def test_python_binding_reports_corruption_as_a_format_error(model_bins, tmp_path):
    data = bytearray(model_bins["conv"])
    data[-1] ^= 1
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(ThinkerFormatError, match="ERR_CRC"):
        thinker.load(str(path), backend="c")
