"""Streaming and dynamic axes on model.bin (tpacker --isstream / --dynamic_shape), numpy and C.

* For any split of a sequence into chunks, the chunk outputs of the packed stream model (numpy
  ``.stream()`` and the C executor carrying its own states) concatenated equal the
  whole-sequence output of the unconverted ONNX model, bit for bit: conv-only, GRU, LSTM, CRNN.
* A dynamic axis: for every length MIN..MAX in FACTOR steps, the dynamic model.bin (numpy and C)
  equals a static model.bin exported at that length; a symbolic ONNX dimension packs the same.
* The C executor at every length and streamed under ASan + UBSan (buffers of exactly the plan's
  sizes): no access beyond the MAX plan.
* Bad lengths are refused in one line naming the input and MIN:MAX:FACTOR.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "linger"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_executor"))
pytest.importorskip("torch")

import linger_flow
import onnx
import torch
import torch.nn as nn
from c_harness import EXECUTOR, make

import linger
import thinker
from test_stream import CASES, export_case
from thinker.graph import load_onnx
from thinker.packer import Packer, PackOptions

BIN = os.path.dirname(sys.executable)


def pack(onnx_path: str, out: str, **options) -> str:
    workspace = os.path.join(os.path.dirname(out), "ws")
    result = Packer(PackOptions(graph_path=onnx_path, output_path=out, workspace=workspace,
                                **options)).run()
    with open(out, "wb") as f:
        f.write(result.model_bin)
    return out


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """Each streaming case of test_stream trained briefly (venus), exported whole, packed with
    --isstream; the whole-sequence reference, and the numpy and C stream executors."""
    root = tmp_path_factory.mktemp("stream_packed")
    cases = {}
    for name, (_, _, mode) in CASES.items():
        path = export_case(name, root)
        model_bin = pack(path, str(root / f"{name}.bin"), isstream=mode)
        packed = thinker.load(model_bin)
        cases[name] = (thinker.load(path), packed, packed.stream(),
                       thinker.load(model_bin, backend="c").stream(), mode, model_bin)
    return cases


def _axis(shape: tuple, mode: str) -> int:
    return len(shape) - 1 if mode == "split_w" else len(shape) - 2


def _same(packed, key: str, got: np.ndarray, expected: np.ndarray) -> bool:
    if got.dtype != expected.dtype:  # edge Dequant removed: compare the real values exactly
        got = packed.dequantize_outputs({key: got})[key]
    return got.dtype == expected.dtype and np.array_equal(got, expected)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=10), st.sampled_from(sorted(CASES)),
       st.integers(0, 2**16))
def test_streamed_model_bin_equals_the_whole_sequence_numpy_and_c(streams, cuts, name, seed):
    whole, packed, np_stream, c_stream, mode, _ = streams[name]
    (spec,) = whole.inputs
    axis = _axis(spec.shape, mode)
    length = spec.shape[axis]
    x = np.random.default_rng(seed).normal(size=spec.shape).astype(np.float32)
    expected = whole.run({spec.name: x})
    (chunk_spec,) = np_stream.inputs
    xq = packed.quantize_inputs({chunk_spec.name: x})[chunk_spec.name]
    np_stream.reset()
    c_stream.reset()
    pieces_np, pieces_c, start = [], [], 0
    for c in [*cuts, length]:
        c = min(c, length - start)
        if c <= 0:
            break
        part = {chunk_spec.name: np.take(xq, range(start, start + c), axis=axis)}
        pieces_np.append(np_stream.run(part))
        pieces_c.append(c_stream.run(part))
        start += c
    (out,) = np_stream.outputs
    (value,) = expected.values()
    out_axis = value.ndim - 2 if value.ndim >= 3 and name != "conv" else value.ndim - 1
    for pieces in (pieces_np, pieces_c):
        got = np.concatenate([p[out.name] for p in pieces], axis=out_axis)
        assert _same(packed, out.name, got, value), (name, cuts)


def test_c_reset_and_state_bytes(streams):
    _, _, np_stream, c_stream, _, _ = streams["gru"]
    (spec,) = c_stream.inputs
    chunk = np.random.default_rng(1).integers(-100, 100, (1, 5, 6)).astype(spec.dtype)
    c_stream.reset()
    first = c_stream.run({spec.name: chunk})
    second = c_stream.run({spec.name: chunk})
    c_stream.reset()
    (out,) = c_stream.outputs
    assert np.array_equal(c_stream.run({spec.name: chunk})[out.name], first[out.name])
    assert not np.array_equal(second[out.name], first[out.name])
    assert c_stream.state_bytes == sum(int(np.prod(s.shape)) * s.dtype.itemsize
                                       for s in np_stream.histories.values()) > 0


class TimeConvs(nn.Module):
    """Non-causal convs over [N, C, T]: any length runs (a dynamic axis needs no causality)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.c2 = nn.Conv1d(8, 3, 3, padding=2, dilation=2)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x)))


LO, HI, FACTOR = 8, 24, 4


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    """TimeConvs exported at HI (dynamic LO:HI:FACTOR on the time axis) and at every allowed
    length (static models, the independent reference)."""
    root = tmp_path_factory.mktemp("dynamic")
    torch.manual_seed(0)
    x = torch.randn(8, 4, HI)
    q = linger.init(TimeConvs(), {"platform": "venus"})
    linger_flow.train_steps(q, x, 2)
    q.eval()
    path = str(root / "dyn.onnx")
    linger.onnx.export(q, x[:1], path)
    name = load_onnx(path).inputs[0]
    model_bin = pack(path, str(root / "dyn.bin"), dynamic_shape=[f"{name}={LO}:{HI}:{FACTOR}"])
    static = {}
    for length in range(LO, HI + 1, FACTOR):
        p = str(root / f"static{length}.onnx")
        linger.onnx.export(q, x[:1, :, :length], p)
        static[length] = thinker.load(pack(p, str(root / f"static{length}.bin")))
    return root, path, model_bin, static


def test_dynamic_model_equals_the_static_model_of_each_length(dynamic):
    _, _, model_bin, static = dynamic
    models = [thinker.load(model_bin), thinker.load(model_bin, backend="c")]
    rng = np.random.default_rng(0)
    for length in [*range(LO, HI + 1, FACTOR), LO, HI, 12]:  # and back to shorter ones
        ref = static[length]
        (spec,) = ref.inputs
        x = rng.integers(-128, 128, spec.shape).astype(spec.dtype)
        expected = ref.run({spec.name: x})
        for m in models:
            got = m.run({m.inputs[0].name: x})
            for key, value in expected.items():
                assert got[key].shape == value.shape and np.array_equal(got[key], value), \
                    (length, type(m).__name__)


def test_a_symbolic_onnx_dimension_packs_like_the_named_input(dynamic, tmp_path):
    _, path, model_bin, _ = dynamic
    model = onnx.load(path)
    dim = model.graph.input[0].type.tensor_type.shape.dim[2]
    dim.dim_param = "T"
    onnx.save(model, tmp_path / "sym.onnx")
    out = pack(str(tmp_path / "sym.onnx"), str(tmp_path / "sym.bin"),
               dynamic_shape=[f"T={LO}:{HI}:{FACTOR}"])
    with open(out, "rb") as a, open(model_bin, "rb") as b:
        assert a.read() == b.read()
    r = subprocess.run([os.path.join(BIN, "tpacker"), "-g", "sym.onnx", "-o", "x.bin"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "symbolic dimension 2 ('T')" in r.stderr


def test_a_length_outside_the_range_is_one_line_naming_the_input(dynamic, tmp_path):
    _, _, model_bin, static = dynamic
    (spec,) = static[LO].inputs
    for backend in ("numpy", "c"):
        m = thinker.load(model_bin, backend=backend)
        with pytest.raises(thinker.ThinkerInputError) as err:
            m.run({spec.name: np.zeros((1, 4, LO + 1), spec.dtype)})
        assert f"MIN:MAX:FACTOR = {LO}:{HI}:{FACTOR}" in str(err.value)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, HI + FACTOR), spec.dtype))
    for backend in ("numpy", "c"):
        r = subprocess.run([os.path.join(BIN, "thinker"), "run", "--backend", backend,
                            model_bin, "x.npy", "y.npy"], capture_output=True, text=True,
                           cwd=tmp_path)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"{LO}:{HI}:{FACTOR}" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "y.npy").exists()


def test_c_under_asan_stays_within_the_max_plan(dynamic, streams, tmp_path):
    """The sanitizer build of test_thinker, its buffers exactly the plan's sizes: every length
    of the dynamic model (--shape) and a stream fed 3 frames per call (--stream)."""
    make("sanitize")
    binary = os.path.join(EXECUTOR, "build", "sanitize", "test_thinker")
    _, _, model_bin, static = dynamic
    rng = np.random.default_rng(2)
    for length in range(LO, HI + 1, FACTOR):
        (spec,) = static[length].inputs
        x = rng.integers(-128, 128, spec.shape).astype(spec.dtype)
        x.tofile(tmp_path / "x.bin")
        r = subprocess.run([binary, "--shape", f"0:2:{length}", model_bin, "x.bin", "y.bin"],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0 and "Sanitizer" not in r.stderr, r.stderr
        (value,) = static[length].run({spec.name: x}).values()
        got = np.fromfile(tmp_path / "y.bin", dtype=value.dtype)
        assert np.array_equal(got, value.reshape(-1)), length
    np_stream, crnn_bin = streams["crnn"][2], streams["crnn"][5]
    (chunk_spec,) = np_stream.inputs
    x = rng.integers(-128, 128, (1, 1, 20, 10)).astype(chunk_spec.dtype)
    x.tofile(tmp_path / "seq.bin")
    r = subprocess.run([binary, "--stream", "3", crnn_bin, "seq.bin", "out.bin"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "Sanitizer" not in r.stderr, r.stderr
    assert "state 132 B in 3 tensor(s)" in r.stdout
    np_stream.reset()
    (out,) = np_stream.outputs
    expected = np.concatenate([np_stream.run({chunk_spec.name: x[:, :, s:s + 3]})[out.name]
                               for s in range(0, 20, 3)], axis=1)
    assert np.array_equal(np.fromfile(tmp_path / "out.bin", dtype=expected.dtype),
                          expected.reshape(-1))


def test_cli_packs_a_stream_and_runs_it_chunk_by_chunk(streams, tmp_path):
    whole, packed, np_stream, _, mode, _ = streams["crnn"]
    onnx_path = os.path.join(os.path.dirname(streams["crnn"][5]), "crnn.onnx")
    r = subprocess.run([os.path.join(BIN, "tpacker"), "-g", onnx_path, "-o", "s.bin",
                        "--isstream", mode, "--workspace", "ws"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3 state(s) carried between calls (split_h)" in r.stdout
    (spec,) = whole.inputs
    x = np.random.default_rng(3).normal(size=spec.shape).astype(np.float32)
    (chunk_spec,) = np_stream.inputs
    np.save(tmp_path / "x.npy", packed.quantize_inputs({chunk_spec.name: x})[chunk_spec.name])
    (expected,) = whole.run({spec.name: x}).values()
    for backend, chunk in (("numpy", "7"), ("c", "1")):
        r = subprocess.run([os.path.join(BIN, "thinker"), "run", "--stream", "--chunk", chunk,
                            "--backend", backend, "s.bin", "x.npy", f"y_{backend}.npy"],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "per chunk min" in r.stdout and "state 132 B" in r.stdout
        (out,) = np_stream.outputs
        assert _same(packed, out.name, np.load(tmp_path / f"y_{backend}.npy"), expected)


def _sections(data: bytes) -> dict[int, tuple[int, int, int]]:
    import struct

    count, table = struct.unpack_from("<II", data, 16)
    return {k: (off, size, n) for k, off, size, n in
            (struct.unpack_from("<IIII", data, table + 16 * i) for i in range(count))}


def _with_crc(data: bytearray) -> bytes:
    import struct
    import zlib

    struct.pack_into("<I", data, 24, zlib.crc32(bytes(data[64:])) & 0xFFFFFFFF)
    return bytes(data)


def _verdict(path: str, backend: str) -> bool:
    try:
        thinker.load(path, backend=backend)
    except thinker.ThinkerError:
        return False
    return True


def test_both_readers_agree_on_damaged_stream_and_shape_records(streams, tmp_path):
    """Every u32 field of the dynamic-shape, stream and shape-rule records set to boundary
    values (CRC recomputed): the numpy and the C reader accept or refuse alike."""
    import struct

    from thinker.resource import format as fmt

    model_bin = streams["crnn"][5]
    with open(model_bin, "rb") as f:
        data = f.read()
    sections = _sections(data)
    n_tensors = sections[fmt.SECTION_TENSORS][2]
    fields = []
    for kind, record in ((fmt.SECTION_DYNAMIC_SHAPES, 20), (fmt.SECTION_STREAMS, 8),
                         (fmt.SECTION_SHAPE_RULES, 24)):
        off, _, count = sections[kind]
        fields += [off + record * r + 4 * k for r in (0, count - 1) for k in range(record // 4)]
    refused = 0
    for at in sorted(set(fields)):
        old = struct.unpack_from("<I", data, at)[0]
        for value in {0, 1, 2, old - 1, old + 1, n_tensors - 1, n_tensors, 0xFFFFFFFF} - {old}:
            mutant = bytearray(data)
            struct.pack_into("<I", mutant, at, value & 0xFFFFFFFF)
            path = tmp_path / "m.bin"
            path.write_bytes(_with_crc(mutant))
            np_ok, c_ok = _verdict(str(path), "numpy"), _verdict(str(path), "c")
            assert np_ok == c_ok, (at, old, value, np_ok, c_ok)
            refused += not np_ok
    assert refused > 20
