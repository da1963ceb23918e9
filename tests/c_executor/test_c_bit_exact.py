"""The C executor computes the numpy executor's integers: every intermediate CRC line and every
output byte, on the linger ResNet-18 and on small models covering every op and edge case; the
same through the Python binding (thinker.load(..., backend="c")) and under ASan + UBSan."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from c_harness import (
    numpy_reference,
    ordered_feeds,
    pack,
    random_feeds,
    run_test_thinker,
)
from c_models import MODELS

import thinker
from thinker.runtime import DumpHook


@pytest.fixture(scope="module")
def packed_models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("c_models")
    paths = {}
    for name, (build, platform, keep_quant) in MODELS.items():
        paths[name] = pack(build(), str(root / f"{name}.bin"), platform, keep_quant)
    return paths


@pytest.fixture(scope="module")
def resnet18_bin(resnet18_path, tmp_path_factory) -> str:
    from thinker.packer import Packer, PackOptions

    root = tmp_path_factory.mktemp("r18")
    result = Packer(PackOptions(graph_path=resnet18_path, platform="venus",
                                workspace=str(root / "ws"))).run()
    path = str(root / "resnet18.bin")
    with open(path, "wb") as f:
        f.write(result.model_bin)
    return path


def assert_same_as_numpy(binary: str, model_bin: str, seed: int, workdir,
                         kernels: str | None = None) -> None:
    numpy_exe = thinker.load(model_bin)
    feeds = ordered_feeds(numpy_exe, random_feeds(numpy_exe, np.random.default_rng(seed)))
    ref = numpy_reference(model_bin, feeds)
    r, outputs = run_test_thinker(binary, model_bin, feeds, numpy_exe.outputs, str(workdir),
                                  kernels=kernels)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.splitlines() == ref.lines
    for spec in numpy_exe.outputs:
        assert np.array_equal(outputs[spec.name], ref.outputs[spec.name])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_op_matches_numpy_crc_for_crc(name, packed_models, host_build, c_kernels,
                                            tmp_path):
    for seed in (1, 2, 3):
        assert_same_as_numpy(host_build, packed_models[name], seed, tmp_path, c_kernels)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_op_is_clean_under_asan_and_ubsan(name, packed_models, sanitize_build, c_kernels,
                                                tmp_path):
    assert_same_as_numpy(sanitize_build, packed_models[name], 7, tmp_path, c_kernels)


def test_models_cover_every_op_the_numpy_executor_supports(packed_models):
    from thinker.ops import OPS
    from thinker.resource.reader import read_model

    used = {op.op_type for path in packed_models.values() for op in read_model(path).ops}
    # canonical_reshapes turns Flatten/Squeeze/Unsqueeze into Reshape before packing
    assert set(OPS) - used <= {"Flatten", "Squeeze", "Unsqueeze"}


def test_resnet18_every_intermediate_crc_matches_numpy(resnet18_bin, resnet18_path, host_build,
                                                       sanitize_build, tmp_path):
    shared_input = os.path.join(os.path.dirname(resnet18_path), "input_int8_3x32x32.bin")
    exe = thinker.load(resnet18_bin)
    name = exe.inputs[0].name
    inputs = [np.random.default_rng(s).integers(-128, 128, exe.inputs[0].shape, dtype=np.int8)
              for s in (11, 12)]
    if os.path.exists(shared_input):
        inputs.append(np.fromfile(shared_input, np.int8).reshape(exe.inputs[0].shape))
    for i, x in enumerate(inputs):
        ref = numpy_reference(resnet18_bin, {name: x})
        binary = sanitize_build if i == 0 else host_build
        r, outputs = run_test_thinker(binary, resnet18_bin, {name: x}, exe.outputs,
                                      str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ref.lines
        assert np.array_equal(outputs[exe.outputs[0].name], ref.outputs[exe.outputs[0].name])


def test_python_binding_has_the_numpy_interface_and_integers(resnet18_bin):
    c_exe = thinker.load(resnet18_bin, backend="c")
    np_exe = thinker.load(resnet18_bin)
    assert c_exe.inputs == np_exe.inputs
    assert c_exe.outputs == np_exe.outputs
    x = np.random.default_rng(5).integers(-128, 128, (3, *np_exe.inputs[0].shape[1:]),
                                          dtype=np.int8)  # a batch of 3 on a batch-1 model
    feeds = {np_exe.inputs[0].name: x}
    h_c, h_np = DumpHook(), DumpHook()
    out_c = c_exe.run(feeds, hooks=[h_c])
    out_np = np_exe.run(feeds, hooks=[h_np])
    assert h_c.lines == h_np.lines
    for spec in np_exe.outputs:
        assert out_c[spec.name].dtype == out_np[spec.name].dtype
        assert np.array_equal(out_c[spec.name], out_np[spec.name])


def test_python_binding_on_every_small_model(packed_models):
    for name, path in packed_models.items():
        c_exe, np_exe = thinker.load(path, backend="c"), thinker.load(path)
        feeds = random_feeds(np_exe, np.random.default_rng(9))
        h_c, h_np = DumpHook(), DumpHook()
        out_c, out_np = c_exe.run(feeds, hooks=[h_c]), np_exe.run(feeds, hooks=[h_np])
        assert h_c.lines == h_np.lines, name
        for spec in np_exe.outputs:
            assert np.array_equal(out_c[spec.name], out_np[spec.name]), name


def test_thinker_run_backend_c_prints_the_numpy_crc_lines(packed_models, tmp_path):
    import subprocess
    import sys

    cli = os.path.join(os.path.dirname(sys.executable), "thinker")
    if not os.path.exists(cli):
        pytest.skip("thinker console script not installed")
    path = packed_models["conv"]
    spec = thinker.load(path).inputs[0]
    x = np.random.default_rng(3).integers(-128, 128, spec.shape, dtype=np.int8)
    x.tofile(tmp_path / "in.bin")
    lines = []
    for backend in ("numpy", "c"):
        r = subprocess.run([cli, "run", path, str(tmp_path / "in.bin"),
                            str(tmp_path / f"{backend}.bin"), "--crc", "--backend", backend],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        lines.append(r.stdout)
    assert lines[0] == lines[1]
    assert (tmp_path / "numpy.bin").read_bytes() == (tmp_path / "c.bin").read_bytes()


def test_gather_index_out_of_range_is_a_runtime_error_not_a_crash(packed_models,
                                                                  sanitize_build, tmp_path):
    path = packed_models["shape"]
    exe = thinker.load(path)
    feeds = ordered_feeds(exe, random_feeds(exe, np.random.default_rng(1)))
    feeds["idx"] = np.array([0, 8, 1], dtype=np.int32)  # axis 3 has 8 entries
    r, _ = run_test_thinker(sanitize_build, path, feeds, exe.outputs, str(tmp_path))
    assert r.returncode == 1
    assert "ERR_RUNTIME" in r.stderr and "index out of range" in r.stderr
    with pytest.raises(thinker.ThinkerModelError, match="index out of range"):
        thinker.load(path, backend="c").run(feeds)


def test_arm_cross_build_compiles_freestanding(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    from c_harness import make

    make("CROSS=arm-none-eabi-", "CPU=cortex-m4", f"BUILD={tmp_path}/m4")
    assert (tmp_path / "m4" / "size_probe.elf").exists()
