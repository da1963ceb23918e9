"""The real ResNet-18 exported by the original linger tool runs unmodified."""

import os
import subprocess
import sys

import numpy as np
import pytest

import thinker
from shared_data import RESNET18_INPUT
from thinker.runtime import DumpHook

THINKER = os.path.join(os.path.dirname(sys.executable), "thinker")


@pytest.fixture(scope="module")
def resnet(resnet18_path):
    return thinker.load(resnet18_path)


@pytest.fixture(scope="module")
def image():
    return np.fromfile(RESNET18_INPUT, dtype=np.int8).reshape(1, 3, 32, 32)


def test_model_imports_with_its_layers(resnet):
    types = [s.node.op_type for s in resnet.steps]
    assert types.count("Conv2dInt") == 36 and types.count("iqAdd") == 8
    assert types.count("Relu") == 17 and types[0] == "Quant" and types[-1] == "Dequant"
    assert [(s.name, s.dtype, s.shape) for s in resnet.outputs] == \
        [("output", np.float32, (1, 100))]


def test_quant_node_reproduces_the_int8_input_file(resnet, image):
    dump = DumpHook(keep=True)
    resnet.run({"input": image.astype(np.float32) / 64}, hooks=[dump])
    quant_out = resnet.steps[0].node.outputs[0]
    assert dump.values[quant_out].dtype == np.int8
    assert np.array_equal(dump.values[quant_out], image)


def test_runs_are_deterministic_and_batches_agree(resnet, image):
    x = image.astype(np.float32) / 64
    a, b = DumpHook(), DumpHook()
    out1 = resnet.run({"input": x}, hooks=[a])["output"]
    out2 = resnet.run({"input": x}, hooks=[b])["output"]
    assert a.lines == b.lines and np.array_equal(out1, out2)
    noise = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    batch = np.concatenate([x, noise])
    out_batch = resnet.run({"input": batch})["output"]
    assert np.array_equal(out_batch[0], out1[0])
    for k in range(1, 4):
        assert np.array_equal(out_batch[k], resnet.run({"input": batch[k:k + 1]})["output"][0])


def test_outputs_are_multiples_of_the_output_scale(resnet, image):
    out = resnet.run({"input": image.astype(np.float32) / 64})["output"]
    assert np.array_equal(out * 16, np.round(out * 16))  # Dequant scale_o = 16
    assert np.isfinite(out).all() and np.abs(out).max() <= 128 / 16


def test_cli_runs_the_model_and_prints_crc_lines(resnet18_path, image, tmp_path, resnet):
    inp, out = tmp_path / "in.bin", tmp_path / "out.bin"
    (image.astype(np.float32) / 64).tofile(inp)
    proc = subprocess.run([THINKER, "run", resnet18_path, str(inp), str(out), "--crc"],
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.strip().splitlines()
    dump = DumpHook()
    expected = resnet.run({"input": image.astype(np.float32) / 64}, hooks=[dump])["output"]
    assert lines == dump.lines
    assert np.array_equal(np.fromfile(out, dtype=np.float32).reshape(1, 100), expected)


def test_cli_profile_lists_every_op(resnet18_path, image, tmp_path):
    inp = tmp_path / "in.npy"
    np.save(inp, image.astype(np.float32) / 64)
    proc = subprocess.run([THINKER, "run", resnet18_path, str(inp), str(tmp_path / "o.npy"),
                           "--profile"], capture_output=True, text=True, check=True)
    rows = [r for r in proc.stdout.splitlines() if r.split() and r.split()[0].isdigit()]
    assert len(rows) == 66
    assert "Conv2dInt_1Conv2dInt_322" in proc.stdout and "total" in proc.stdout
    assert np.load(tmp_path / "o.npy").shape == (1, 100)
