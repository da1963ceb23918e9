"""Issue 11 in Python: printable names, error lists, atomic all-or-nothing writes, float <->
int helpers on loaded models, and batches that stream through model.bin in chunks."""

import os

import numpy as np
import onnx
import pytest

import thinker
from onnx_build import model, node, value_info
from packing_models import small_cnn
from thinker import qmath
from thinker.errors import ThinkerError, ThinkerInputError, ThinkerOutputError, printable
from thinker.graph.ir import Node, Tensor
from thinker.outputs import check_outputs, write_files
from thinker.packer import Packer, PackOptions

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def cnn_bin(tmp_path_factory):
    d = tmp_path_factory.mktemp("io")
    onnx.save(small_cnn(), d / "cnn.onnx")
    result = Packer(PackOptions(graph_path=str(d / "cnn.onnx"), output_path=str(d / "cnn.bin"),
                                workspace=str(d / "ws"))).run()
    (d / "cnn.bin").write_bytes(result.model_bin)
    return str(d / "cnn.bin")


# ---- names and messages ------------------------------------------------------------------


def test_printable_escapes_control_characters_and_is_idempotent():
    raw = "a\nb\x1b[31mc\td\u202ee\x00"
    shown = printable(raw)
    assert shown == "a\\nb\\x1b[31mc\\td\\u202ee\\x00"
    assert printable(shown) == shown and printable("plain name_1.w") == "plain name_1.w"
    long = printable("x" * 1000, 60)
    assert len(long) < 70 and "(1,000 chars)" in long


def test_labels_and_descriptions_show_names_safely():
    n = Node("Relu", "r\n\x1b[2J", ["x"], ["y"])
    assert n.label() == "Relu 'r\\n\\x1b[2J'"
    t = Tensor("t\r", (1, 4), np.dtype(np.int8), 3)
    assert t.describe() == "'t\\r' int8[1, 4] q=3"


def test_an_error_with_several_problems_has_a_self_contained_first_line():
    one = ThinkerError("m.onnx: cannot import model", problems=["op X at node 'a'"])
    assert str(one) == "m.onnx: cannot import model: op X at node 'a'" and one.summary == str(one)
    two = ThinkerError("m.onnx: 2 problem(s)", problems=["first", "second"])
    assert two.summary == "m.onnx: 2 problem(s); first: first"
    assert str(two).splitlines()[1:] == ["  - first", "  - second"]
    assert two.problems == ["first", "second"] and two.exit_code == 1


# ---- files -------------------------------------------------------------------------------


def test_write_files_is_all_or_nothing(tmp_path, monkeypatch):
    import thinker.outputs as outputs

    (tmp_path / "a.bin").write_bytes(b"old a")
    real = outputs._temp_for
    calls = []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(outputs, "_temp_for", failing)
    with pytest.raises(ThinkerOutputError, match=r"No space left on device.*no output file was "
                                                 "changed"):
        write_files([(str(tmp_path / "a.bin"), b"new a"), (str(tmp_path / "b.bin"), b"new b")])
    assert (tmp_path / "a.bin").read_bytes() == b"old a"
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]  # no temporary file left
    monkeypatch.setattr(outputs, "_temp_for", real)
    write_files([(str(tmp_path / "a.bin"), b"new a"), (str(tmp_path / "sub" / "b.bin"), b"b")])
    assert (tmp_path / "a.bin").read_bytes() == b"new a"
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"b"


def test_check_outputs_compares_real_paths(tmp_path):
    (tmp_path / "in.bin").write_bytes(b"x")
    os.symlink(tmp_path / "in.bin", tmp_path / "alias.bin")
    with pytest.raises(ThinkerOutputError, match="is also this command's input"):
        check_outputs([("out", str(tmp_path / "alias.bin"))], [("input", str(tmp_path / "in.bin"))])
    with pytest.raises(ThinkerOutputError, match="is also first"):
        check_outputs([("first", str(tmp_path / "o.bin")),
                       ("second", str(tmp_path / "." / "o.bin"))])
    check_outputs([("out", str(tmp_path / "new" / "deeper" / "o.bin"))])  # created on write


# ---- float <-> int helpers ---------------------------------------------------------------


def check_helpers(m):
    (spec,) = m.inputs
    (out_spec,) = m.outputs
    x = RNG.normal(size=(3, *spec.shape[1:])).astype(np.float32) * 2
    q = m.quantize_inputs({spec.name: x})
    assert q[spec.name].dtype == spec.dtype
    assert np.array_equal(q[spec.name], qmath.quantize(x, spec.exponent, 8).astype(spec.dtype))
    out = m.run(q)
    real = m.dequantize_outputs(out)
    assert real[out_spec.name].dtype == np.float32
    assert np.array_equal(real[out_spec.name], qmath.dequantize(out[out_spec.name],
                                                                out_spec.exponent))
    with pytest.raises(ThinkerInputError, match="'nope' is not an input"):
        m.quantize_inputs({"nope": x})
    with pytest.raises(ThinkerInputError, match="NaN or inf"):
        m.quantize_inputs({spec.name: np.full_like(x, np.nan)})
    with pytest.raises(ThinkerInputError, match=rf"quantized with exponent {spec.exponent}.*"
                                                r"model.quantize_inputs"):
        m.run({spec.name: x})


def test_quantize_and_dequantize_helpers_numpy(cnn_bin):
    check_helpers(thinker.load(cnn_bin))
    # a float-I/O model (.onnx with its Quant/Dequant) passes floats through unchanged
    onnx_model = thinker.load(cnn_bin.replace(".bin", ".onnx"))
    x = RNG.normal(size=(1, 3, 16, 16)).astype(np.float64)
    assert onnx_model.quantize_inputs({"x": x})["x"].dtype == np.float32


def test_quantize_and_dequantize_helpers_c(cnn_bin):
    try:
        m = thinker.load(cnn_bin, backend="c")
    except ThinkerError as exc:  # no C compiler here
        pytest.skip(str(exc))
    check_helpers(m)


# ---- streaming ---------------------------------------------------------------------------


def test_large_batches_run_in_bounded_chunks_with_identical_results(cnn_bin, monkeypatch):
    from thinker.runtime.packed import PackedExecutor

    m = thinker.load(cnn_bin)
    (spec,) = m.inputs
    x = RNG.integers(-128, 128, (23, *spec.shape[1:])).astype(np.int8)
    whole = m.run({spec.name: x})
    scales = []
    real_views = PackedExecutor._views

    def spy(self, scale, hooks=False):
        scales.append(scale)
        return real_views(self, scale, hooks)

    monkeypatch.setattr(PackedExecutor, "_views", spy)
    monkeypatch.setattr(PackedExecutor, "max_arena_bytes", m.arena_bytes * 5)
    chunked = m.run({spec.name: x})
    assert scales == [5, 5, 5, 5, 3]
    for name, value in whole.items():
        assert np.array_equal(value, chunked[name]), name


def test_validate_compares_large_batches_in_chunks(tmp_path, monkeypatch):
    from thinker.tools import validate

    x = value_info("x", np.int8, [1, 6])
    onnx.save(model([node("Relu", ["x"], ["y"], name="act")], [x], ["y"]), tmp_path / "a.onnx")
    clip = node("Clip", ["x", "lo", "hi"], ["y"], name="act")
    onnx.save(model([clip], [x], ["y"], {"lo": np.int8(0), "hi": np.int8(100)}),
              tmp_path / "b.onnx")
    ref, chk = thinker.load(tmp_path / "a.onnx"), thinker.load(tmp_path / "b.onnx")
    feeds = {"x": RNG.integers(-128, 128, (40, 6)).astype(np.int8)}
    whole = validate.compare_runs(ref, chk, feeds, feeds)
    monkeypatch.setattr(validate, "CHUNK_BYTES", 30)  # a few samples per chunk
    chunked = validate.compare_runs(ref, chk, feeds, feeds)
    assert not whole.identical and whole.first_mismatch.tensor == "y"
    assert chunked.first_mismatch == whole.first_mismatch
    assert chunked.first_mismatch.total == 240 and chunked.mismatches == whole.mismatches
    assert chunked.compared == whole.compared
