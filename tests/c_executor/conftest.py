"""Fixtures for the C executor tests: the host and sanitizer builds of executor/ and the Cortex-M4
emulator runner (built once per session with make; skipped with a reason where no C compiler,
cross compiler or unicorn exists)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "benchmarks"))

from c_harness import EXECUTOR, make


@pytest.fixture(scope="session")
def host_build() -> str:
    make()
    return os.path.join(EXECUTOR, "build", "host", "test_thinker")


@pytest.fixture(scope="session")
def sanitize_build() -> str:
    make("sanitize")
    return os.path.join(EXECUTOR, "build", "sanitize", "test_thinker")


@pytest.fixture(scope="session")
def m4_runner(tmp_path_factory) -> str:
    """m4_runner.elf: the Cortex-M4 build of the library driven by probe/m4_runner.c."""
    import m4_emu

    why = m4_emu.available()
    if why:
        pytest.skip(why)
    return m4_emu.build_runner(str(tmp_path_factory.mktemp("m4")))


@pytest.fixture(params=["compiled", "portable"])
def c_kernels(request) -> str:
    """Run a host C executor test on both of its kernel sets: the compiled x86 kernels where
    the CPU has them (host/executor_kernels.c, the default) and the portable C kernels every
    device without a DSP extension runs (THINKER_HOST_KERNELS=0): pass it to
    run_test_thinker(kernels=...)."""
    return request.param


@pytest.fixture(params=["native", "avxvnni"])
def host_isa(request, monkeypatch) -> str:
    """Run a compiled-kernel test with the kernels this CPU picks and again with its 256-bit
    AVX-VNNI kernels (THINKER_HOST_ISA=avxvnni: dense convs and linears only, the kernels of
    CPUs without AVX-512), skipped where the CPU has no AVX-VNNI."""
    if request.param == "avxvnni":
        from thinker.ops.host_kernels import VNNI256_FEATURE
        from thinker.runtime.c_backend import host_library

        monkeypatch.setenv("THINKER_HOST_ISA", "avxvnni")
        lib = host_library()
        if lib is None or not lib.thinker_host_features() & VNNI256_FEATURE:
            pytest.skip("this CPU has no AVX-VNNI")
    return request.param
