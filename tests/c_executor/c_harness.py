"""Helpers for the C executor tests: building executor/, packing ONNX models to model.bin,
running test_thinker next to the numpy executor."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXECUTOR = os.path.join(ROOT, "executor")


def make(*args: str) -> None:
    if shutil.which(os.environ.get("CC", "cc")) is None or shutil.which("make") is None:
        pytest.skip("no C compiler or make: the C executor cannot be built here")
    r = subprocess.run(["make", "-C", EXECUTOR, *args], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def pack(onnx_model, path: str, platform: str = "cortex-m", keep_quant: bool = False) -> str:
    """ONNX model -> model.bin through tpacker's pipeline."""
    import onnx

    from thinker.packer import Packer, PackOptions

    src = path[:-4] + ".onnx"
    onnx.save(onnx_model, src)
    workspace = os.path.join(os.path.dirname(path), "workspace")
    result = Packer(PackOptions(graph_path=src, output_path=path, platform=platform,
                                keep_quant=keep_quant, workspace=workspace)).run()
    with open(path, "wb") as f:
        f.write(result.model_bin)
    return path


def pack_result(onnx_model, root: str, platform: str = "cortex-m"):
    """tpacker's PackResult (graph, plan, bytes) for an ONNX model, packed under ``root``."""
    import onnx

    from thinker.packer import Packer, PackOptions

    src = os.path.join(root, "model.onnx")
    onnx.save(onnx_model, src)
    return Packer(PackOptions(graph_path=src, platform=platform,
                              workspace=os.path.join(root, "ws"))).run()


def with_gemm_tiles(result, tile_rows) -> tuple[bytes, dict[int, tuple[int, int, int]]]:
    """A PackResult's model.bin with every tiled-GEMM scratch region (conv / linear) replaced by
    one holding ``tile_rows(k, rows, least)`` patch rows (``least``: the least tile), placed
    after its arena; and, per such op, (K, patch rows, tile rows)."""
    from thinker.memory.scratch import gemm_scratch, gemm_shape, gemm_tile_in
    from thinker.resource.writer import PackInput, Placement, write_model

    graph, plan = result.graph, result.plan
    arenas, scratch, tiles = dict(plan.arena_sizes()), dict(plan.scratch), {}
    for op, p in plan.scratch.items():
        shape = gemm_shape(graph, graph.nodes[op])
        if shape is None:
            continue
        k, rows = shape
        tile = tile_rows(k, rows, gemm_tile_in(k, rows, gemm_scratch(k, rows)))
        size = gemm_scratch(k, rows, tile)
        end, align = arenas[p.kind]
        scratch[op] = Placement(p.kind, end, size)
        arenas[p.kind] = (end + -(-size // align) * align, align)
        tiles[op] = (k, rows, tile)
    return write_model(graph, PackInput(result.device.id, plan.placements, arenas,
                                        scratch=scratch)), tiles


def assert_m4_equals_host(runner: str, model_bin: bytes, exe, feeds) -> None:
    """The emulated Cortex-M4 build (m4_emu) gives the host executor ``exe``'s bytes for every
    output, and no op writes outside its planned outputs and scratch region."""
    import m4_emu

    (spec,) = exe.inputs
    host = exe.run(feeds)
    stray: list[tuple[int, int, int]] = []
    out, per_op = m4_emu.run(runner, model_bin, np.ascontiguousarray(feeds[spec.name]).tobytes(),
                             write_bounds=m4_emu.planned_writes(model_bin), stray_writes=stray)
    assert not stray, f"writes outside the plan (op, kind, offset): {stray[:8]}"
    assert sum(per_op) > 0
    assert out == b"".join(np.ascontiguousarray(host[o.name]).tobytes() for o in exe.outputs)


def random_feeds(executor, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Full-range integers (so saturation happens), floats around the quantization range,
    valid indices for integer index inputs without exponent."""
    feeds = {}
    for spec in executor.inputs:
        if spec.dtype == np.float32:
            feeds[spec.name] = (rng.standard_normal(spec.shape) * 3).astype(np.float32)
        elif spec.exponent is None:  # an index tensor (Gather)
            feeds[spec.name] = rng.integers(-3, 3, spec.shape).astype(spec.dtype)
        else:
            info = np.iinfo(spec.dtype)
            feeds[spec.name] = rng.integers(info.min, info.max + 1, spec.shape,
                                            dtype=spec.dtype)
    return feeds


@dataclass
class Reference:
    lines: list[str]
    outputs: dict[str, np.ndarray]


def numpy_kernels_only():
    """The numpy executors loaded inside run the numpy kernels, not the compiled ones the host
    C executor may share with them: an independent reference."""
    from thinker.runtime.c_backend import host_kernels

    return host_kernels(False)


def numpy_reference(model_bin: str, feeds) -> Reference:
    """Every CRC line and output of the numpy executor on its numpy kernels."""
    from thinker.runtime import DumpHook, load

    hook = DumpHook()
    with numpy_kernels_only():
        exe = load(model_bin)
    outputs = exe.run(feeds, hooks=[hook])
    return Reference(hook.lines, outputs)


def run_test_thinker(binary: str, model_bin: str, feeds, out_specs, workdir: str,
                     extra=("--crc",), kernels: str | None = None,
                     ) -> tuple[subprocess.CompletedProcess, dict]:
    """test_thinker on raw .bin files; returns the process and the outputs it wrote.
    ``kernels``: "compiled" or "portable" sets THINKER_HOST_KERNELS for it (None: inherited)."""
    env = dict(os.environ)
    if kernels is not None:
        env["THINKER_HOST_KERNELS"] = "1" if kernels == "compiled" else "0"
    ins = []
    for i, (name, value) in enumerate(feeds.items()):
        path = os.path.join(workdir, f"in{i}.bin")
        np.ascontiguousarray(value).tofile(path)
        ins.append((name, path))
    outs = [os.path.join(workdir, f"out{i}.bin") for i in range(len(out_specs))]
    for p in outs:
        if os.path.exists(p):
            os.unlink(p)
    r = subprocess.run([binary, *extra, model_bin, *[p for _, p in ins], *outs],
                       capture_output=True, text=True, check=False, timeout=120, env=env)
    values = {}
    if r.returncode == 0:
        for spec, p in zip(out_specs, outs, strict=True):
            values[spec.name] = np.fromfile(p, dtype=spec.dtype).reshape(spec.shape)
    return r, values


def ordered_feeds(executor, feeds):
    return {s.name: feeds[s.name] for s in executor.inputs}



def assert_c_equals_numpy(binary: str, model_bin: str, feeds, workdir,
                          kernels: str | None = None) -> None:
    """test_thinker prints the numpy executor's CRC lines and writes its outputs, silently
    (``kernels``: run_test_thinker's)."""
    import thinker

    exe = thinker.load(model_bin)
    feeds = ordered_feeds(exe, feeds)
    ref = numpy_reference(model_bin, feeds)
    r, outputs = run_test_thinker(binary, model_bin, feeds, exe.outputs, str(workdir),
                                  kernels=kernels)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.splitlines() == ref.lines
    for spec in exe.outputs:
        assert np.array_equal(outputs[spec.name], ref.outputs[spec.name]), spec.name


def rewrite_attrs(result, op_type: str, change) -> bytes:
    """The model.bin of a pack result with ``change(attrs)`` applied to its one ``op_type``
    node (bypassing tpacker's checks: what a damaged or foreign file may hold)."""
    from thinker.resource.writer import PackInput, write_model

    graph = result.graph.copy()
    (node,) = [n for n in graph.nodes if n.op_type == op_type]
    change(node.attrs)
    return write_model(graph, PackInput(result.device.id, result.plan.placements,
                                        result.plan.arena_sizes(), scratch=result.plan.scratch))


def assert_init_refuses(binary: str, result, op_type: str, change, message: str, workdir) -> None:
    """The C executor (``binary``, test_thinker) refuses at init, with ERR_MODEL naming the op
    and ``message``, the model.bin of ``result`` whose ``op_type`` attributes ``change`` altered."""
    path = os.path.join(str(workdir), "bad.bin")
    with open(path, "wb") as f:
        f.write(rewrite_attrs(result, op_type, change))
    r = subprocess.run([binary, "--zeros", path], capture_output=True, text=True, check=False,
                       timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ERR_MODEL" in r.stderr and op_type in r.stderr and message in r.stderr, r.stderr
