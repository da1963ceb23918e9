"""Standard ONNX quantized models made with onnxruntime's quantize_static (QDQ and QOperator)
from zoo networks exported float by torch.onnx.export, calibrated on random data; and the
power-of-two variant (every scale overridden to a power of two, zero points 0) that thinker
imports exactly."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper


def export_float(name: str, path: str) -> None:
    import torch

    from linger import zoo

    torch.manual_seed(0)  # the same weights every run
    model = zoo.build(name).eval()
    torch.onnx.export(model, zoo.example_input(name, 1), path, input_names=["input"],
                      output_names=["output"], dynamo=False, opset_version=17)


def calibration(name: str, n: int = 8, seed: int = 100) -> list[np.ndarray]:
    from linger import zoo

    return [zoo.example_input(name, 1, seed=seed + i).numpy() for i in range(n)]


def _reader(batches):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": b} for b in batches])

        def get_next(self):
            return next(self.it, None)

    return Reader()


def _pow2(scale: float) -> np.ndarray:
    return np.array(2.0 ** np.ceil(np.log2(scale)), np.float32)


def quantize(float_path: str, out_path: str, batches, fmt: str = "QDQ",
             power_of_two: bool = False) -> str:
    """onnxruntime quantize_static: default settings (asymmetric uint8 activations for
    QOperator, int8 for QDQ), or power-of-two scales with zero points 0 (symmetric int8,
    every activation and weight scale overridden to the next power of two)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quant_format = QuantFormat.QDQ if fmt == "QDQ" else QuantFormat.QOperator
    if not power_of_two:
        quantize_static(float_path, out_path, _reader(batches), quant_format=quant_format,
                        activation_type=QuantType.QInt8 if fmt == "QDQ" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        return out_path
    symmetric = {"ActivationSymmetric": True, "WeightSymmetric": True}
    first = out_path + ".first.onnx"
    quantize_static(float_path, first, _reader(batches), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options=symmetric)
    q = onnx.load(first)
    os.remove(first)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    overrides = {}
    for n in q.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
            tensor = n.input[0].removesuffix("_QuantizeLinear_Input")
            overrides[tensor] = [{"scale": _pow2(float(inits[n.input[1]])),
                                  "zero_point": np.array(0, np.int8)}]
    for init in onnx.load(float_path).graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim >= 2:
            overrides[init.name] = [{"scale": _pow2(float(np.abs(w).max()) / 127),
                                     "zero_point": np.array(0, np.int8)}]
    quantize_static(float_path, out_path, _reader(batches), quant_format=quant_format,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={**symmetric, "TensorQuantOverrides": overrides})
    return out_path


def ort_run(path: str, x: np.ndarray, optimized: bool = True) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]
