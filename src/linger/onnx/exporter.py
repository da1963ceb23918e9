"""Export a model prepared by ``linger.init`` to ONNX (thinker dialect), by recording its eval
forward: the graph holds exactly the integer arithmetic linger computed."""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch
import torch.nn as nn

from linger.errors import LingerDataError, LingerError, LingerUnsupportedError
from linger.location import current_location
from linger.recorder import GraphRecorder, recording

MIN_OPSET = 14  # Relu on int8 tensors needs opset 14


def export(model: nn.Module, args, f: str | os.PathLike, input_names: list[str] | None = None,
           output_names: list[str] | None = None, opset_version: int = MIN_OPSET,
           ) -> onnx.ModelProto:
    """Write the quantized ``model`` (from ``linger.init``, trained or calibrated) to ``f``.

    ``args``: an example input tensor or tuple of them (float32; its batch size becomes the
    graph's, the executor runs any batch). Float inputs get a ``Quant`` node, outputs a
    ``Dequant``. The file passes ``onnx.checker`` and is written only when complete."""
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset_version <= max_opset:
        raise LingerError(f"opset_version {opset_version} is not supported; use "
                          f"{MIN_OPSET}..{max_opset}")
    recorder = _record(model, args, input_names, output_names, capture=False)
    proto = recorder.model(opset_version, type(_unwrap(model)).__name__)
    onnx.checker.check_model(proto)
    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = path + ".partial"
    onnx.save(proto, temporary)
    os.replace(temporary, path)
    return proto


def capture(model: nn.Module, args, input_names: list[str] | None = None
            ) -> dict[str, np.ndarray]:
    """Run linger's eval forward on ``args`` and return every tensor it computed, as int64
    arrays keyed by the ONNX tensor names ``export`` gives them."""
    return _record(model, args, input_names, None, capture=True).values


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def refuse_float_parts(model: nn.Module) -> None:
    """One error naming every part kept float (disable_module / disable_submodel): the device
    runs integers only, so such a model cannot be exported."""
    from linger.modules.io import FloatIsland

    parts = [m for m in model.modules() if isinstance(m, FloatIsland)]
    if parts:
        listed = "\n".join(f"  {i}. {p.describe()} is kept float" for i, p in enumerate(parts, 1))
        raise LingerUnsupportedError(
            f"cannot export: {len(parts)} part(s) of the model are kept float "
            f"(disable_module / disable_submodel) and cannot run on the device:\n{listed}\n"
            "Keep the whole model quantized to export it (remove them from disable_module / "
            "disable_submodel and train again), or cut the model before them and export the "
            "quantized part only")


def _record(model, args, input_names, output_names, capture: bool) -> GraphRecorder:
    model = _unwrap(model)
    refuse_float_parts(model)
    inputs = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    names = list(input_names) if input_names else (
        ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))])
    if len(names) != len(inputs):
        raise LingerError(f"{len(names)} input names for {len(inputs)} inputs")
    recorder = GraphRecorder(output_names, capture)
    was_training = model.training
    model.eval()
    try:
        with recording(recorder), torch.no_grad():
            for name, x in zip(names, inputs, strict=True):
                recorder.register_input(name, x)
            try:
                model(*inputs)
            except (RuntimeError, ValueError, IndexError) as exc:
                raise _input_error(exc, names, inputs) from None
    finally:
        model.train(was_training)
    if not recorder.outputs:
        raise LingerError("the model produced no quantized output; export needs a model "
                          "prepared by linger.init")
    return recorder


def _input_error(exc: Exception, names, inputs) -> LingerDataError:
    """A torch error inside the export forward, almost always an example input of the wrong
    shape or dtype: name the layer that failed and what was given."""
    given = ", ".join(f"'{n}' {str(x.dtype).replace('torch.', '')}{list(x.shape)}"
                      for n, x in zip(names, inputs, strict=True) if hasattr(x, "shape"))
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return LingerDataError(
        f"export: layer '{current_location()}' failed on the example input(s) {given}: "
        f"{first_line}. Pass an example shaped like the training data (same sizes except the "
        "batch)")


__all__ = ["capture", "export"]
