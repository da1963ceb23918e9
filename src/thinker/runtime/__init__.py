"""Execution of a Graph (or, later, a packed model.bin) with numpy kernels."""

from __future__ import annotations

import os

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Graph
from thinker.runtime.executor import Executor, Hook, TensorSpec
from thinker.runtime.hooks import DumpHook, ProfileHook, crc_line, tensor_crc32


def load(model: str | os.PathLike | Graph) -> Executor:
    """Prepare a model for execution: a path to an ``.onnx`` file, or a Graph."""
    if isinstance(model, Graph):
        return Executor(model)
    path = os.fspath(model)
    if path.lower().endswith(".onnx"):
        from thinker.graph.onnx_import import load_onnx

        return Executor(load_onnx(path))
    raise ThinkerModelError(f"{path}: unknown model file type; expected an .onnx file")


__all__ = ["DumpHook", "Executor", "Hook", "ProfileHook", "TensorSpec", "crc_line", "load",
           "tensor_crc32"]
