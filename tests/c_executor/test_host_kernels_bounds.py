"""The numpy executor's compiled host kernels (executor/host/) on their own, through a
standalone C driver (host_bounds_driver.c): seeded random dense convs, linears (1x1 maps),
depthwise convs and whole-map depthwise convs (strides, dilations, asymmetric pads beyond the
kernel's span, channel and output-block tails, int8/int16 outputs and clamps, inputs large
enough to take several work chunks), and global average pooling rows.

What it checks that test_host_kernels.py cannot: memory safety. Through numpy a stray read
lands in the allocator's neighbouring memory and goes unnoticed; here every buffer (input,
packed weights, corr, the output with its 16-element front margin, work) sits in its own
mapping against a PROT_NONE guard page, once ending at it and once starting right after it,
so a read or write one byte outside any buffer faults (the driver names the job and the
guard hit). It also checks the integers against a plain int64 reference written from the
definition, on a first call (prepared = 0, garbage in ``work``) and a second call of the same
job (prepared = 1) on new inputs, and that the output's front margin is left alone.

``THINKER_HOST_BOUNDS_JOBS`` sets the jobs per run (default 100, three seeds). Skipped
without a C compiler, off x86-64, or where the CPU has no AVX-512 VNNI (exit code 77)."""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess

import pytest
from c_harness import EXECUTOR, HERE

JOBS = int(os.environ.get("THINKER_HOST_BOUNDS_JOBS", "100"))
SEEDS = (1, 2, 3)
SKIP = 77  # the driver's exit code when the CPU has neither AVX-512 VNNI nor AVX-VNNI
GLUE = "executor_kernels.c"  # the C executor's side (needs src/): not the kernels
AVXVNNI = "conv_avxvnni.c"  # compiled on its own, without AVX-512


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> str:
    """The driver built with the host kernels' sources and UBSan (-march=native: the kernels
    select their instructions per function, the driver itself needs nothing special)."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip("no C compiler")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the host kernels are x86-64 only")
    host = os.path.join(EXECUTOR, "host")
    binary = str(tmp_path_factory.mktemp("host_bounds") / "host_bounds_driver")
    # UBSan too: misaligned or overflowing accesses are errors, not warnings
    flags = [cc, "-O1", "-g", "-march=native", "-fsanitize=undefined",
             "-fno-sanitize-recover=undefined", "-I", host]
    # the 256-bit kernels as an AVX-VNNI-only core runs them (executor/Makefile)
    avxvnni = binary + "_avxvnni.o"
    r = subprocess.run([*flags, "-mno-avx512f", "-c", os.path.join(host, AVXVNNI), "-o",
                        avxvnni], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([*flags, *sorted(f for f in glob.glob(os.path.join(host, "*.c"))
                                        if not f.endswith((GLUE, AVXVNNI))),
                        avxvnni, os.path.join(HERE, "host_bounds_driver.c"), "-o", binary],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return binary


@pytest.mark.parametrize("seed", SEEDS)
def test_host_kernels_stay_in_bounds(driver: str, seed: int, host_isa: str) -> None:
    """No access outside any buffer and exact outputs on ``JOBS`` random jobs of one seed
    (with ``host_isa`` avxvnni: the dense and linear jobs on the 256-bit kernel)."""
    r = subprocess.run([driver, str(seed), str(JOBS)], capture_output=True, text=True,
                       check=False, timeout=600)
    if r.returncode == SKIP:
        pytest.skip(r.stdout.strip().splitlines()[-1])
    lines = r.stdout.strip().splitlines()
    # a crash leaves the run in progress (and the handler's CRASH line) at the end
    tail = "\n".join(lines[-5:] + [line for line in lines if line.startswith(
        ("MISMATCH", "MARGIN", "REFUSED", "CRASH"))][:10])
    assert r.returncode == 0, f"exit code {r.returncode}:\n{tail}\n{r.stderr}"
    assert lines and lines[-1].startswith("OK"), tail
