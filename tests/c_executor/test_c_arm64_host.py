"""The host build of the C executor on a 64-bit ARM host (Apple silicon, Graviton, Raspberry Pi
OS): built with the aarch64 Linux cross compiler, where executor/host's x86 kernels compile to
nothing and every op runs the portable kernels, and run under qemu-user, it prints the numpy
executor's CRC line for every tensor of every small model. Skipped without
aarch64-linux-gnu-gcc or qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from c_harness import EXECUTOR, numpy_reference, ordered_feeds, pack, random_feeds
from c_models import MODELS

import thinker

CC = "aarch64-linux-gnu-gcc"
SYSROOT = "/usr/aarch64-linux-gnu"


@pytest.fixture(scope="module")
def arm64_runner(tmp_path_factory) -> str:
    if shutil.which(CC) is None or shutil.which("qemu-aarch64") is None:
        pytest.skip(f"no {CC} or qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)")
    build = str(tmp_path_factory.mktemp("arm64"))
    r = subprocess.run(["make", "-C", EXECUTOR, f"CC={CC}", "AR=aarch64-linux-gnu-ar",
                        "HOST_ARCH=", f"BUILD={build}", f"{build}/test_thinker",
                        "EXTRA_CFLAGS=-Werror"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return os.path.join(build, "test_thinker")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_arm64_host_build_prints_the_numpy_crc_lines(name, arm64_runner, tmp_path):
    build, platform, keep_quant = MODELS[name]
    path = pack(build(), str(tmp_path / f"{name}.bin"), platform, keep_quant)
    exe = thinker.load(path)
    feeds = ordered_feeds(exe, random_feeds(exe, np.random.default_rng(1)))
    ref = numpy_reference(path, feeds)
    ins = []
    for i, value in enumerate(feeds.values()):
        ins.append(str(tmp_path / f"in{i}.bin"))
        np.ascontiguousarray(value).tofile(ins[-1])
    outs = [str(tmp_path / f"out{i}.bin") for i in range(len(exe.outputs))]
    r = subprocess.run(["qemu-aarch64", "-L", SYSROOT, arm64_runner, "--crc", path, *ins, *outs],
                       capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ref.lines
    for spec, out in zip(exe.outputs, outs, strict=True):
        got = np.fromfile(out, spec.dtype).reshape(spec.shape)
        assert np.array_equal(got, ref.outputs[spec.name]), spec.name
