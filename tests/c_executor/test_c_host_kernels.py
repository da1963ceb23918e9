"""The host C executor on the compiled x86 kernels (host/executor_kernels.c): int8 convs,
depthwise convs and linears take them where the CPU has AVX-512 VNNI, with their jobs in the
STATE buffer the plan asks for; a smaller STATE (or THINKER_HOST_KERNELS=0) leaves ops on the
portable kernels. Either way every output equals the numpy executor on its numpy kernels (an
implementation that shares no code with the compiled kernels).

``THINKER_C_HOST_RANDOM_MODELS`` (default 24) sets how many seeded random conv models run."""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest
from c_harness import numpy_kernels_only, ordered_feeds, pack, pack_result
from c_models import MODELS as SMALL_MODELS
from test_c_gemm_kernels import extreme_feeds
from test_c_m4_random_convs import random_model

import thinker
from thinker.ops import host_kernels
from thinker.runtime import c_backend

RANDOM_MODELS = int(os.environ.get("THINKER_C_HOST_RANDOM_MODELS", "24"))
STATE = 8  # THINKER_MEM_STATE (thinker.h)


needs_vnni = pytest.mark.skipif(host_kernels._library() is None,
                                reason="this CPU has neither AVX-512 VNNI nor AVX-VNNI (or no "
                                "host library)")


def state_bytes(path: str, kernels: str, monkeypatch) -> int:
    monkeypatch.setenv("THINKER_HOST_KERNELS", "1" if kernels == "compiled" else "0")
    plan = thinker.load(path, backend="c").memory_plan
    return next(size for kind, size, _ in plan if kind == STATE)


def numpy_outputs(path: str, feeds) -> dict[str, np.ndarray]:
    with numpy_kernels_only():
        exe = thinker.load(path)
    return exe.run(feeds)


@pytest.fixture(scope="module")
def small_bins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("c_host_kernels")
    return {name: pack(build(), str(root / f"{name}.bin"), platform, keep_quant)
            for name, (build, platform, keep_quant) in SMALL_MODELS.items()
            if name in ("conv", "conv_variants", "venus_splits", "int16")}


@needs_vnni
def test_the_plan_asks_for_the_jobs_of_the_convs_the_kernels_take(small_bins, monkeypatch):
    """Models with int8 convs plan a larger STATE with the compiled kernels (their jobs:
    constants, packed weights, work) than without; int16 activations stay portable."""
    for name in ("conv", "conv_variants", "venus_splits"):
        portable = state_bytes(small_bins[name], "portable", monkeypatch)
        compiled = state_bytes(small_bins[name], "compiled", monkeypatch)
        assert compiled > portable + 64, name


@needs_vnni
@pytest.mark.parametrize("seed", range(RANDOM_MODELS))
def test_random_convs_on_the_compiled_kernels_equal_numpy(seed, host_isa, tmp_path,
                                                          monkeypatch):
    """Seeded random convs (dense, depthwise, grouped, dilated, strided, padded, 4-bit weights,
    fused clips; 1-2 samples) with saturating inputs: the C executor on its compiled kernels
    gives the numpy kernels' bytes."""
    result = pack_result(random_model(seed), str(tmp_path))
    path = tmp_path / "model.bin"
    path.write_bytes(result.model_bin)
    monkeypatch.setenv("THINKER_HOST_KERNELS", "1")
    exe = thinker.load(str(path), backend="c")
    feeds = extreme_feeds(exe, np.random.default_rng(seed))
    expected = numpy_outputs(str(path), feeds)
    for _ in range(2):  # the second run reuses each job's prepared work
        got = exe.run(feeds)
        for o in exe.outputs:
            assert np.array_equal(got[o.name], expected[o.name]), o.name


def _run_with_state(path: str, feeds: dict, state_size: int) -> list[bytes]:
    """Every output's bytes from the raw C API with the plan's buffers, STATE cut to
    ``state_size`` bytes."""
    lib = c_backend._library()
    with open(path, "rb") as f:
        data = f.read()
    block, address = c_backend._aligned(len(data), 16)
    ctypes.memmove(address, data, len(data))
    plan, message = c_backend._Plan(), c_backend._Message()
    assert lib.thinker_get_memory_plan(address, len(data), ctypes.byref(plan),
                                       ctypes.byref(message)) == 0, message.text
    memories = (c_backend._Memory * c_backend.MAX_MEMORY)()
    blocks = []
    for i, r in enumerate(plan.request[:plan.count]):
        size = state_size if r.kind == STATE else r.size
        buf, at = c_backend._aligned(size, r.alignment)
        blocks.append(buf)
        memories[i] = c_backend._Memory(r.kind, at, size)
    model, exe = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.thinker_model_init(ctypes.byref(model), address, len(data), memories, plan.count,
                                  ctypes.byref(message)) == 0, message.text
    assert lib.thinker_executor_create(ctypes.byref(exe), model) == 0
    for i, x in enumerate(feeds.values()):  # in the model's input order (ordered_feeds)
        x = np.ascontiguousarray(x)
        assert lib.thinker_set_input(exe, i, x.ctypes.data, x.nbytes) == 0
    assert lib.thinker_forward(exe) == 0
    result = []
    count = ctypes.c_uint32()
    lib.thinker_get_output_count(exe, ctypes.byref(count))
    for i in range(count.value):
        out, nbytes = ctypes.c_void_p(), ctypes.c_size_t()
        assert lib.thinker_get_output(exe, i, ctypes.byref(out), ctypes.byref(nbytes)) == 0
        result.append(ctypes.string_at(out, nbytes.value))
    lib.thinker_executor_release(exe)
    lib.thinker_model_release(model)
    del blocks, block
    return result


@needs_vnni
def test_a_smaller_state_leaves_ops_on_the_portable_kernels(small_bins, monkeypatch):
    """STATE as a portable plan sizes it (no job fits), with room for some jobs only, and in
    full: the same output bytes, equal to numpy's."""
    path = small_bins["conv_variants"]
    exe = thinker.load(path)
    feeds = ordered_feeds(exe, extreme_feeds(exe, np.random.default_rng(4)))
    ref = numpy_outputs(path, feeds)
    expected = [np.ascontiguousarray(ref[o.name]).tobytes() for o in exe.outputs]
    portable = state_bytes(path, "portable", monkeypatch)
    compiled = state_bytes(path, "compiled", monkeypatch)
    for size in (portable, (portable + compiled) // 2, compiled):
        assert _run_with_state(path, feeds, size) == expected, size
