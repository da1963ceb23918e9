"""Post-training quantization (linger.ptq): calibration methods, the exported model runs
bit-exactly on the executor like a QAT model, and the command line."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import linger
import thinker
from linger import zoo
from linger.ptq import _exponent, _Stats
from linger.quantizer import ActivationQuantizer
from thinker.runtime import DumpHook


def batches(name, n=4, batch=8):
    return [zoo.example_input(name, batch, seed=10 + i) for i in range(n)]


def test_methods_on_values_with_outliers():
    torch.manual_seed(0)
    stats = _Stats(0)
    x = torch.randn(100_000)
    x[:5] = 1000.0  # five outliers
    stats.add(x)
    abs_max = _exponent(stats, 8, "abs_max", 99.99)
    top_10 = _exponent(stats, 8, "top_10", 99.99)
    pct = _exponent(stats, 8, "percentile", 99.9)
    mse = _exponent(stats, 8, "mse", 99.99)
    assert abs_max == round(7 - np.log2(1000.0))  # the outliers set the range
    assert top_10 > abs_max  # the 10th largest ignores five outliers
    assert pct > abs_max and mse >= abs_max
    heavy = _Stats(1)  # a heavy tail: the MSE exponent has the smallest error of all
    heavy.add(torch.distributions.Laplace(0.0, 1.0).sample((100_000,)))
    v = heavy.sample.astype(np.float64)

    def error(q):
        return np.mean((np.clip(np.floor(v * 2.0**q + 0.5), -128, 127) / 2.0**q - v) ** 2)

    best = _exponent(heavy, 8, "mse", 99.99)
    assert all(error(best) <= error(_exponent(heavy, 8, m, 99.9))
               for m in ("abs_max", "top_10", "percentile"))


@pytest.mark.parametrize("method", ["abs_max", "top_10", "percentile", "mse"])
def test_ptq_model_exports_and_runs_identically_on_the_executor(method, tmp_path):
    model = zoo.build("lenet5").eval()
    qmodel = linger.ptq(model, batches("lenet5"), {"weight_bits": 8}, method=method)
    assert not qmodel.training
    for q in qmodel.modules():
        if isinstance(q, ActivationQuantizer):
            assert int(q.observed) == 1
    x = zoo.example_input("lenet5", 6, seed=99)
    path = str(tmp_path / "ptq.onnx")
    linger.onnx.export(qmodel, x[:1], path)
    values = linger.onnx.capture(qmodel, x)
    dump = DumpHook(keep=True)
    out = thinker.load(path).run({"input": x.numpy()}, hooks=[dump])
    with torch.no_grad():
        expected = qmodel(x).numpy()
    assert np.array_equal(out["output"], expected)
    for name, value in values.items():
        assert np.array_equal(dump.values[name].astype(np.int64), value), name


def test_ptq_leaves_the_float_model_alone_and_checks_arguments():
    model = zoo.build("lenet5").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(linger.LingerConfigError, match="calibration method"):
        linger.ptq(model, batches("lenet5", 1), method="kl")
    with pytest.raises(linger.LingerConfigError, match="no calibration batches"):
        linger.ptq(model, [])
    linger.ptq(model, batches("lenet5", 1))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_ptq_command_line(tmp_path):
    (tmp_path / "mymodel.py").write_text(
        "from linger import zoo\n\ndef build():\n    return zoo.build('lenet5').eval()\n")
    np.save(tmp_path / "calib.npy", zoo.example_input("lenet5", 16, seed=3).numpy())
    r = subprocess.run([sys.executable, "-m", "linger.ptq", "mymodel:build", "--data",
                        "calib.npy", "-o", "ptq.onnx", "--method", "top_10"],
                       cwd=tmp_path, capture_output=True, text=True, check=False,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    assert "wrote ptq.onnx (top_10 calibration on 16 samples)" in r.stdout
    thinker.load(str(tmp_path / "ptq.onnx"))
    r = subprocess.run([sys.executable, "-m", "linger.ptq", "nowhere:build", "--data",
                        "calib.npy", "-o", "x.onnx"], cwd=tmp_path, capture_output=True,
                       text=True, check=False)
    assert r.returncode == 1 and "cannot import" in r.stderr
