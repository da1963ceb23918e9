"""Models from other quantizers: standard ONNX QDQ / QOperator models.

* the onnx package's own backend node tests for the quantization ops, where they fit the
  integer contract (scales and zero points bound as the constants they are in real models;
  the rest skipped with the reason thinker gives);
* onnxruntime quantize_static models (QDQ and QOperator) of two zoo networks: with
  power-of-two scales and zero points 0 thinker's output equals onnxruntime's bit for bit;
  with the default settings `thinker convert` rewrites them and reports the change;
* a torch.ao eager-mode export, converted;
* every imported / converted model packs for venus and runs identically on numpy and C.
"""

import os
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest

import thinker
from thinker.errors import ThinkerModelError
from thinker.graph import import_model
from thinker.graph.qdq_import import to_thinker
from thinker.runtime.executor import Executor

ort = pytest.importorskip("onnxruntime")

# --------------------------------------------------------------------------------------------
# the ONNX backend node tests (generated from the onnx package's test case definitions)

NODE_TEST = re.compile(r"test_(quantizelinear|dequantizelinear|qlinearconv|qlinearmatmul|"
                       r"convinteger|matmulinteger)")
OUT_OF_CONTRACT_TYPES = re.compile(r"e4m3|e5m2|float4|float16|int4|int2|uint4|uint2")


def node_cases():
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases(None) if NODE_TEST.match(c.name)}


CASES = node_cases()


def bind_parameters(case):
    """Every input but the first (the data) becomes an initializer: scales, zero points and
    weights are constants in quantized models, and thinker needs them so."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, outputs = case.data_sets[0]
    graph = model.graph
    data_inputs = [graph.input[0]]
    for vi, value in zip(list(graph.input)[1:], inputs[1:], strict=True):
        graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), vi.name))
    del graph.input[:]
    graph.input.extend(data_inputs)
    return model, inputs[0], outputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_backend_node_tests_that_fit_the_contract(name):
    if OUT_OF_CONTRACT_TYPES.search(name):
        pytest.skip("float8 / float4 / float16 / 2- and 4-bit types are outside thinker's "
                    "integer contract (int8, int16, int32 tensors, float32 at the edges)")
    model, x, expected = bind_parameters(CASES[name])
    try:
        converted = to_thinker(model, name, "exact")
    except ThinkerModelError as exc:
        pytest.skip(f"not exact under the contract: {exc.problems[0]}")
    executor = Executor(import_model(converted, source_path=name))
    got = executor.run({executor.inputs[0].name: x})
    for spec, want in zip(executor.outputs, expected, strict=True):
        value = got[spec.name]
        assert value.shape == want.shape
        assert np.array_equal(value.astype(np.float64), want.astype(np.float64)), name


def test_the_node_tests_that_fit_are_asserted():
    """Zero points of integer inputs and outputs are folded exactly: these must import (and
    the parametrized test above asserts their values)."""
    fitting = []
    for name in ("test_dequantizelinear", "test_dequantizelinear_int16",
                 "test_quantizelinear_int16",
                 "test_convinteger_without_padding", "test_convinteger_with_padding",
                 "test_matmulinteger"):
        model, _, _ = bind_parameters(CASES[name])
        to_thinker(model, name, "exact")
        fitting.append(name)
    assert len(fitting) == 6


# --------------------------------------------------------------------------------------------
# onnxruntime quantize_static models of zoo networks


@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory):
    pytest.importorskip("torch")
    from qdq_models import calibration, export_float, quantize

    folder = tmp_path_factory.mktemp("qdq")
    paths = {}
    for name in ("lenet5", "resnet8"):
        float_path = str(folder / f"{name}.onnx")
        export_float(name, float_path)
        paths[name, "float"] = float_path
        for fmt in ("QDQ", "QOperator"):
            for pow2 in (True, False):
                key = (name, fmt, "pow2" if pow2 else "default")
                paths[key] = quantize(float_path, str(folder / f"{name}_{fmt}_{key[2]}.onnx"),
                                      calibration(name), fmt, pow2)
    return paths


def inputs_with_ties(name, n=12):
    from linger import zoo

    x = zoo.example_input(name, n, seed=5).numpy()
    return np.concatenate([x, np.round(x * 64) / 64]).astype(np.float32)  # exact ties


@pytest.mark.parametrize("name", ["lenet5", "resnet8"])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_power_of_two_models_equal_onnxruntime_bit_for_bit(zoo_models, name, fmt, tmp_path):
    from qdq_models import ort_run

    path = zoo_models[name, fmt, "pow2"]
    x = inputs_with_ties(name)
    expected = np.concatenate([ort_run(path, x[i:i + 1]) for i in range(len(x))])
    model = thinker.load(path)  # imported as it is: no conversion
    got = model.run({model.inputs[0].name: x})[model.outputs[0].name]
    assert np.array_equal(got, expected)
    # packed for venus: numpy and C identical (the edge Quant removed: integer input)
    from test_tpacker import pack

    _, bin_path, _ = pack(tmp_path, onnx.load(path), "m", platform="venus")
    assert_c_equals_numpy(bin_path)


def assert_c_equals_numpy(bin_path):
    packed = thinker.load(bin_path)
    spec = packed.inputs[0]
    x = np.random.default_rng(0).integers(-128, 128, (2, *spec.shape[1:])).astype(spec.dtype)
    expected = packed.run({spec.name: x})
    try:
        c_model = thinker.load(bin_path, backend="c")
    except thinker.ThinkerError as exc:
        pytest.skip(f"C executor unavailable: {exc}")
    got = c_model.run({spec.name: x})
    for key, value in expected.items():
        assert np.array_equal(got[key], value), key


@pytest.mark.parametrize("name", ["lenet5", "resnet8"])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_default_models_are_refused_then_converted_with_the_change_printed(zoo_models, name,
                                                                          fmt, tmp_path):
    from thinker.tools.convert import convert

    path = zoo_models[name, fmt, "default"]
    with pytest.raises(ThinkerModelError, match="thinker convert") as info:
        thinker.load(path)
    assert any("not a power of two" in p or "zero point" in p for p in info.value.problems)
    result = convert(path, samples=16)
    assert not result.exact
    (change,) = result.changes
    print(f"{name} {fmt}: {change.line()}")
    assert change.top1_agreement >= 0.8 and change.snr_db > 15
    out = tmp_path / "converted.onnx"
    out.write_bytes(result.model.SerializeToString())
    from test_tpacker import pack

    _, bin_path, _ = pack(tmp_path, result.model, "conv", platform="venus")
    assert_c_equals_numpy(bin_path)


def test_a_torch_ao_export_converts(tmp_path):
    torch = pytest.importorskip("torch")
    import torch.nn as nn
    from torch.ao.quantization import (
        DeQuantStub,
        MinMaxObserver,
        QConfig,
        QuantStub,
        convert,
        fuse_modules,
        prepare,
    )

    from thinker.tools.convert import convert as thinker_convert

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.dq = QuantStub(), DeQuantStub()
            self.c1, self.r1 = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()
            self.c2, self.r2 = nn.Conv2d(4, 8, 3, stride=2), nn.ReLU()
            self.fc = nn.Linear(8 * 3 * 3, 10)

        def forward(self, x):
            x = self.r2(self.c2(self.r1(self.c1(self.q(x)))))
            return self.dq(self.fc(torch.flatten(x, 1)))

    torch.manual_seed(0)
    net = fuse_modules(Net().eval(), [["c1", "r1"], ["c2", "r2"]])
    net.qconfig = QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8),
                          weight=MinMaxObserver.with_args(
                              dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))
    prepared = prepare(net)
    for _ in range(8):
        prepared(torch.randn(4, 1, 8, 8))
    path = str(tmp_path / "tao.onnx")
    torch.onnx.export(convert(prepared), torch.randn(1, 1, 8, 8), path, input_names=["input"],
                      output_names=["output"], dynamo=False, opset_version=17)
    result = thinker_convert(path, samples=16)
    (change,) = result.changes
    print(f"torch.ao: {change.line()}")
    assert change.top1_agreement >= 0.8 and change.snr_db > 15


def test_convert_command_line(zoo_models, tmp_path):
    from linger import zoo

    data = tmp_path / "x.npy"
    np.save(data, zoo.example_input("lenet5", 8, seed=9).numpy())
    labels = tmp_path / "y.npy"
    np.save(labels, np.arange(8) % 10)
    exe = os.path.join(os.path.dirname(sys.executable), "thinker")
    out = tmp_path / "out.onnx"
    r = subprocess.run([exe, "convert", zoo_models["lenet5", "QDQ", "default"], "-o", str(out),
                        "--data", str(data), "--labels", str(labels)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "converted to power-of-two scales; measured on 8 sample(s)" in r.stdout
    assert "top-1 agreement" in r.stdout and "accuracy onnxruntime" in r.stdout
    import_model(onnx.load(out))
    r = subprocess.run([exe, "convert", zoo_models["lenet5", "QDQ", "pow2"], "-o",
                        str(tmp_path / "exact.onnx"), "--samples", "4"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "exact import" in r.stdout and "max |diff| 0 " in r.stdout


def test_a_float_model_is_refused_in_a_few_lines_saying_what_is_accepted(zoo_models):
    with pytest.raises(ThinkerModelError) as info:
        thinker.load(zoo_models["resnet8", "float"])
    first = str(info.value).splitlines()[0]
    assert "thinker reads quantized models: the thinker / linger dialects" in first
    assert "QDQ / QOperator" in first
    assert len(info.value.problems) <= 8  # one line per op type, not per node
    assert any(p.startswith("unsupported op Conv at 9 node(s)") for p in info.value.problems)
