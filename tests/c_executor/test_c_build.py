"""How the C executor is built: freestanding headers only, no mutable globals, ops selected at
build time with a clear error for an op left out."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from c_harness import EXECUTOR, make, pack, run_test_thinker
from c_models import MODELS

import thinker


def test_library_includes_only_stdint_stddef_and_string():
    """Besides the three freestanding headers, only the compiler's ACLE intrinsics header,
    and only in the kernels that have DSP forms (GEMM, element-wise), under the DSP-extension
    guard."""
    sources = glob.glob(os.path.join(EXECUTOR, "src", "**", "*.[ch]"), recursive=True)
    sources += glob.glob(os.path.join(EXECUTOR, "include", "*.h"))
    system = set()
    for path in sources:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found = set(re.findall(r"#include\s*<([^>]+)>", text))
        if "arm_acle.h" in found:
            assert os.path.basename(path) in ("gemm_s8.c", "elementwise.c")
            assert re.search(r"#if THK_GEMM_DSP\s*\n#include <arm_acle.h>", text)
            found.discard("arm_acle.h")
        system.update(found)
    assert system == {"stdint.h", "stddef.h", "string.h"}


def test_library_has_no_mutable_global_state(host_build):
    """No object in .data/.bss (const tables of pointers sit in .data.rel.ro under -fPIC,
    read-only after relocation)."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump not available")
    lib = os.path.join(EXECUTOR, "build", "host", "libthinker.a")
    out = subprocess.run(["objdump", "-t", lib], capture_output=True, text=True,
                         check=True).stdout
    writable = [line for line in out.splitlines()
                if re.search(r"\s\.(data|bss)(\.\S*)?\s", line) and "rel.ro" not in line
                and re.search(r"\sO\s", line)]
    assert writable == []


def test_an_op_left_out_of_the_build_is_named_at_init(tmp_path):
    build = tmp_path / "only_conv"
    make(f"BUILD={build}", "OPS=Conv2dInt Relu", f"{build}/test_thinker")
    model_bin = pack(MODELS["shape"][0](), str(tmp_path / "shape.bin"))
    exe = thinker.load(model_bin)
    feeds = {s.name: np.zeros(s.shape, s.dtype) for s in exe.inputs}
    r, _ = run_test_thinker(str(build / "test_thinker"), model_bin, feeds, exe.outputs,
                            str(tmp_path))
    assert r.returncode == 1
    assert "ERR_UNSUPPORTED_OP" in r.stderr and "'Transpose'" in r.stderr


def test_ops_from_a_model_bin_builds_exactly_its_ops(tmp_path):
    model_bin = pack(MODELS["pool"][0](), str(tmp_path / "pool.bin"))
    build = tmp_path / "pool_ops"
    make(f"BUILD={build}", f"OPS_FROM={model_bin}", f"{build}/test_thinker")
    header = (build / "thinker_op_select.h").read_text()
    assert set(re.findall(r"THINKER_OP_(\w+)", header)) == {"MaxPool", "AvgPool2dInt"}
    exe = thinker.load(model_bin)
    feeds = {s.name: np.ones(s.shape, s.dtype) for s in exe.inputs}
    r, _ = run_test_thinker(str(build / "test_thinker"), model_bin, feeds, exe.outputs,
                            str(tmp_path))
    assert r.returncode == 0, r.stderr
