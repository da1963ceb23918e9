"""The CLI as a user types it: help, one-line errors with exit code 1, no partial outputs."""

import os
import subprocess
import sys

import numpy as np
import onnx

from onnx_build import model, node, value_info

THINKER = os.path.join(os.path.dirname(sys.executable), "thinker")


def thinker_cli(*args):
    return subprocess.run([THINKER, *map(str, args)], capture_output=True, text=True)


def relu_model(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(model([node("Relu", ["x"], ["y"])], [value_info("x", np.int8, [1, 4])], ["y"]),
              path)
    return path


def test_help_documents_every_flag():
    out = thinker_cli("run", "--help").stdout
    for flag in ("--profile", "--dump", "--crc", "MODEL".lower()):
        assert flag in out


def test_runs_raw_bin_files(tmp_path):
    m = relu_model(tmp_path)
    np.array([-3, 4, -128, 127], dtype=np.int8).tofile(tmp_path / "x.bin")
    r = thinker_cli("run", m, tmp_path / "x.bin", tmp_path / "y.bin")
    assert r.returncode == 0, r.stderr
    assert np.fromfile(tmp_path / "y.bin", dtype=np.int8).tolist() == [0, 4, 0, 127]


def test_wrong_input_size_names_the_expected_size_and_writes_nothing(tmp_path):
    m = relu_model(tmp_path)
    np.zeros(5, dtype=np.int8).tofile(tmp_path / "x.bin")
    r = thinker_cli("run", m, tmp_path / "x.bin", tmp_path / "y.bin")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "5 bytes, but input 'x' is int8[1, 4] = 4 bytes" in r.stderr
    assert not (tmp_path / "y.bin").exists()


def test_missing_model_and_input_files_are_one_line_errors(tmp_path):
    r = thinker_cli("run", tmp_path / "none.onnx", "a.bin", "b.bin")
    assert r.returncode == 1 and "none.onnx: no such model file" in r.stderr
    m = relu_model(tmp_path)
    r = thinker_cli("run", m, tmp_path / "nope.bin", tmp_path / "y.bin")
    assert r.returncode == 1 and "nope.bin: no such input file (for input 'x')" in r.stderr


def test_wrong_number_of_files_lists_the_model_io(tmp_path):
    r = thinker_cli("run", relu_model(tmp_path), "only_one.bin")
    assert r.returncode == 1
    assert "expects 1 input file(s) (x) then 1 output file(s) (y); got 1 path(s)" in r.stderr


def test_non_quantized_onnx_is_rejected_in_one_line(tmp_path):
    path = tmp_path / "float.onnx"
    onnx.save(model([onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")],
                    [value_info("x", np.float32, [1, 1, 3, 3])], ["y"],
                    {"w": np.ones((1, 1, 1, 1), np.float32)}), path)
    np.zeros(9, np.float32).tofile(tmp_path / "x.bin")
    r = thinker_cli("run", path, tmp_path / "x.bin", tmp_path / "y.bin")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "Conv at 1 node(s): 'conv0'" in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    r = thinker_cli("--debug", "run", tmp_path / "none.onnx", "a", "b")
    assert r.returncode != 0 and "Traceback" in r.stderr
