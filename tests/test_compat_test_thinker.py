"""The C demo ``test_thinker`` accepts the original thinker demo's argument order
(``test_thinker input.bin model.bin output.bin C H W Q [loops]``: the input's channels, height,
width and Q value, i.e. its exponent; README of the original, "./bin/test_thinker
demo/resnet18/input.bin demo/resnet18/model.bin demo/resnet18/output.bin 3 32 32 6") as well
as ours (``test_thinker model.bin in.bin ... out.bin ...``), with the same outputs."""

import os
import subprocess

import numpy as np
import onnx
import pytest

from c_executor.c_harness import EXECUTOR, make
from packing_models import small_cnn
from thinker.packer import Packer, PackOptions

TEST_THINKER = os.path.join(EXECUTOR, "build", "host", "test_thinker")


@pytest.fixture(scope="module")
def demo():
    make()
    return TEST_THINKER


def pack(onnx_path, out, tmp_path):
    result = Packer(PackOptions(graph_path=str(onnx_path), output_path=str(out),
                                workspace=str(tmp_path / "ws"))).run()
    out.write_bytes(result.model_bin)


def run(*args):
    return subprocess.run([TEST_THINKER, *map(str, args)], capture_output=True, text=True)


def test_original_argument_order_gives_our_outputs(demo, tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    pack(tmp_path / "cnn.onnx", tmp_path / "cnn.bin", tmp_path)  # int8 input 1x3x16x16, q=5
    x = np.random.default_rng(0).integers(-128, 128, (1, 3, 16, 16)).astype(np.int8)
    x.tofile(tmp_path / "x.bin")
    ours = run(tmp_path / "cnn.bin", tmp_path / "x.bin", tmp_path / "ours.bin")
    assert ours.returncode == 0, ours.stderr
    r = run(tmp_path / "x.bin", tmp_path / "cnn.bin", tmp_path / "orig.bin", 3, 16, 16, 5)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "orig.bin").read_bytes() == (tmp_path / "ours.bin").read_bytes()
    assert "Predicted category index:" in r.stdout
    # the optional loop count runs the model again: same output
    r = run(tmp_path / "x.bin", tmp_path / "cnn.bin", tmp_path / "loops.bin", 3, 16, 16, 5, 3)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "loops.bin").read_bytes() == (tmp_path / "ours.bin").read_bytes()


def test_original_order_checks_shape_and_q(demo, tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    pack(tmp_path / "cnn.onnx", tmp_path / "cnn.bin", tmp_path)
    np.zeros((1, 3, 16, 16), np.int8).tofile(tmp_path / "x.bin")
    r = run(tmp_path / "x.bin", tmp_path / "cnn.bin", tmp_path / "o.bin", 3, 16, 16, 6)
    assert r.returncode == 1 and "C H W Q = 3 16 16 6" in r.stderr and "exponent 5" in r.stderr
    r = run(tmp_path / "x.bin", tmp_path / "cnn.bin", tmp_path / "o.bin", 1, 16, 16, 5)
    assert r.returncode == 1 and "is 1x3x16x16" in r.stderr


def test_the_originals_readme_command_on_resnet18(demo, resnet18_path, tmp_path):
    data = os.path.dirname(resnet18_path)
    pack(resnet18_path, tmp_path / "model.bin", tmp_path)
    r = run(os.path.join(data, "input_int8_3x32x32.bin"), tmp_path / "model.bin",
            tmp_path / "output.bin", 3, 32, 32, 6)
    assert r.returncode == 0, r.stderr
    ours = run(tmp_path / "model.bin", os.path.join(data, "input_int8_3x32x32.bin"),
               tmp_path / "ours.bin")
    assert ours.returncode == 0, ours.stderr
    assert (tmp_path / "output.bin").read_bytes() == (tmp_path / "ours.bin").read_bytes()
