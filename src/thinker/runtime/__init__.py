"""Execution of a Graph (or, later, a packed model.bin) with numpy kernels."""

from __future__ import annotations

import os

from thinker.errors import ThinkerModelError
from thinker.graph.ir import Graph
from thinker.runtime.executor import Executor, Hook, TensorSpec
from thinker.runtime.hooks import DumpHook, ProfileHook, crc_line, tensor_crc32


def load(model: str | os.PathLike | Graph, backend: str = "numpy",
         threads: int = 1) -> Executor:
    """Prepare a model for execution: a packed ``model.bin``, an ``.onnx`` file, or a Graph.

    A model.bin runs with its memory plan (every tensor at its planned arena offset).
    ``backend="c"`` runs a model.bin on the C executor (executor/, via ctypes) with the same
    interface. ``threads`` > 1 lets the numpy executor split batches across threads."""
    if backend == "c":
        from thinker.runtime.c_backend import load_c

        return load_c(os.fspath(model))
    if backend != "numpy":
        raise ThinkerModelError(f"unknown backend '{backend}'; use 'numpy' or 'c'")
    if isinstance(model, Graph):
        return Executor(model, threads)
    path = os.fspath(model)
    if path.lower().endswith(".onnx"):
        from thinker.graph.onnx_import import load_onnx

        return Executor(load_onnx(path), threads)
    if path.lower().endswith(".bin") or _has_magic(path):
        from thinker.runtime.packed import load_packed

        return load_packed(path)
    raise ThinkerModelError(f"{path}: unknown model file type; expected model.bin or .onnx")


def _has_magic(path: str) -> bool:
    from thinker.resource.format import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


__all__ = ["DumpHook", "Executor", "Hook", "ProfileHook", "TensorSpec", "crc_line", "load",
           "tensor_crc32"]
