"""``thinker convert``: a standard ONNX quantized model (QDQ / QOperator, any scales and zero
points) -> a thinker-dialect model for a power-of-two chip, and what that costs.

The rewrite is ``thinker.graph.qdq_import`` in ``convert`` mode (nearest power-of-two
exponents holding each tensor's quantized range, zero points folded into symmetric integers
plus the range's clamp, weights requantized per tensor). A model that already fits exactly
(power-of-two scales, zero points 0) is imported exactly instead, and says so.

The change is measured against onnxruntime running the original file on the same float
inputs: the user's data (``.npy``, a batch on axis 0) or random normal data; per output the
largest and mean absolute difference relative to the output's range, the signal-to-error
ratio, and for classifier outputs (2-D) the top-1 agreement, and with labels the accuracy of
both.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import onnx

from thinker.errors import ThinkerInputError, ThinkerModelError
from thinker.errors import name as shown


@dataclass
class OutputChange:
    name: str
    max_abs: float
    mean_abs: float
    reference_range: float
    snr_db: float
    top1_agreement: float | None = None
    accuracy_reference: float | None = None
    accuracy_converted: float | None = None

    def line(self) -> str:
        rel = self.max_abs / self.reference_range if self.reference_range else 0.0
        text = (f"output '{shown(self.name)}': max |diff| {self.max_abs:.4g} ({100 * rel:.2f}% "
                f"of its range), mean |diff| {self.mean_abs:.4g}, SNR {self.snr_db:.1f} dB")
        if self.top1_agreement is not None:
            text += f", top-1 agreement {100 * self.top1_agreement:.1f}%"
        if self.accuracy_reference is not None:
            text += (f", accuracy onnxruntime {100 * self.accuracy_reference:.1f}% -> thinker "
                     f"{100 * self.accuracy_converted:.1f}%")
        return text


@dataclass
class ConvertResult:
    model: onnx.ModelProto
    exact: bool
    samples: int
    data_source: str
    changes: list[OutputChange] = field(default_factory=list)
    note: str = ""

    def report(self) -> str:
        how = ("exact import (power-of-two scales, zero points 0): identical to onnxruntime"
               if self.exact else "converted to power-of-two scales")
        lines = [f"{how}; measured on {self.samples} sample(s) of {self.data_source} against "
                 "onnxruntime"]
        lines += [f"  {c.line()}" for c in self.changes]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def convert_model(model: onnx.ModelProto, where: str) -> tuple[onnx.ModelProto, bool]:
    """(thinker-dialect model, exact?) for a standard quantized model."""
    from thinker.graph import qdq_import
    from thinker.graph.onnx_export import to_onnx
    from thinker.graph.onnx_import import import_model

    if not qdq_import.is_standard_quantized(model):
        raise ThinkerModelError(f"{where}: not a standard ONNX quantized model (no "
                                "QuantizeLinear / DequantizeLinear / QLinear* ops); "
                                f"{qdq_import.ACCEPTED_FORMATS}")
    try:
        converted, exact = qdq_import.to_thinker(model, where, "exact"), True
    except ThinkerModelError:
        converted, exact = qdq_import.to_thinker(model, where, "convert"), False
    graph = import_model(converted, source_path=where)  # checks it and infers every shape
    return to_onnx(graph), exact


def _inputs(model: onnx.ModelProto, data: str | None, samples: int, seed: int
            ) -> tuple[dict[str, np.ndarray], str]:
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    if data:
        try:
            arr = np.load(data, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ThinkerInputError(f"--data {shown(data)}: cannot read as .npy ({exc})") \
                from None
        if len(graph_inputs) != 1:
            raise ThinkerInputError(f"--data: the model has {len(graph_inputs)} inputs; give "
                                    "a model with one input")
        return {graph_inputs[0].name: np.asarray(arr, np.float32)}, shown(data)
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in graph_inputs:
        dims = [d.dim_value if d.HasField("dim_value") else 1
                for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal((samples, *dims[1:])).astype(np.float32)
    return feeds, "random normal data"


def _run_ort(path_or_bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    batch = len(next(iter(feeds.values())))
    outs = []
    for i in range(batch):  # exported with a fixed batch: sample by sample
        outs.append(session.run(None, {k: v[i:i + 1] for k, v in feeds.items()}))
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def measure(original: str, converted: onnx.ModelProto, feeds: dict[str, np.ndarray],
            labels: np.ndarray | None = None) -> list[OutputChange]:
    from thinker.graph.onnx_import import import_model
    from thinker.runtime.executor import Executor

    reference = _run_ort(original, feeds)
    executor = Executor(import_model(converted, source_path="converted"))
    ours = executor.run(feeds)
    changes = []
    for ref, spec in zip(reference, executor.outputs, strict=True):
        got = np.asarray(ours[spec.name], np.float64)
        ref = np.asarray(ref, np.float64).reshape(got.shape)
        diff = np.abs(got - ref)
        power, noise = float(np.mean(ref ** 2)), float(np.mean(diff ** 2))
        snr = math.inf if noise == 0 else 10 * math.log10(max(power, 1e-30) / noise)
        change = OutputChange(spec.name, float(diff.max(initial=0)), float(diff.mean()),
                              float(ref.max() - ref.min()) if ref.size else 0.0, snr)
        if ref.ndim == 2 and ref.shape[1] > 1:
            change.top1_agreement = float(np.mean(ref.argmax(1) == got.argmax(1)))
            if labels is not None and len(labels) == len(ref):
                change.accuracy_reference = float(np.mean(ref.argmax(1) == labels))
                change.accuracy_converted = float(np.mean(got.argmax(1) == labels))
        changes.append(change)
    return changes


def convert(path: str, data: str | None = None, samples: int = 32, seed: int = 0,
            labels: str | None = None, measure_change: bool = True) -> ConvertResult:
    where = shown(path)
    if not os.path.exists(path):
        raise ThinkerModelError(f"{where}: no such model file")
    try:
        model = onnx.load(path)
    except Exception as exc:
        raise ThinkerModelError(f"{where}: not a readable ONNX model ({shown(exc)})") from None
    converted, exact = convert_model(model, where)
    feeds, source = _inputs(model, data, samples, seed)
    result = ConvertResult(converted, exact, len(next(iter(feeds.values()))), source)
    if not measure_change:
        return result
    label_array = None
    if labels:
        try:
            label_array = np.load(labels, allow_pickle=False).reshape(-1)
        except (OSError, ValueError) as exc:
            raise ThinkerInputError(f"--labels {shown(labels)}: cannot read as .npy ({exc})") \
                from None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        result.note = "note: onnxruntime is not installed: the change was not measured"
        return result
    result.changes = measure(path, converted, feeds, label_array)
    return result
