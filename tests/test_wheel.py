"""Packaging: a wheel built from this tree, installed (not editable) into a fresh venv, gives
working `tpacker` and `thinker` commands and the C backend, without torch.

Offline: the wheel is built with the current environment's setuptools (no build isolation),
and the fresh venv sees only numpy and onnx (and what onnx imports) from the current venv,
through a .pth file pointing at a folder of links to exactly those packages."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import numpy as np
import onnx
import pytest

from packing_models import small_cnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what the installed thinker needs at run time: numpy, onnx and onnx's own imports
RUNTIME = ("numpy", "numpy.libs", "onnx", "google", "typing_extensions.py", "ml_dtypes")


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _source_copy(dest):
    """The files a wheel is built from, copied so the build leaves nothing in the checkout."""
    for name in ("setup.py", "MANIFEST.in", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so")
    shutil.copytree(os.path.join(ROOT, "src"), dest / "src", ignore=ignore)
    for part in ("src", "include", "host"):
        shutil.copytree(os.path.join(ROOT, "executor", part), dest / "executor" / part,
                        ignore=ignore)


def build_wheel(tmp_path):
    src = tmp_path / "source"
    src.mkdir()
    _source_copy(src)
    dist = tmp_path / "dist"
    if importlib.util.find_spec("build") is not None:
        _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
              str(src)])
    else:  # the same PEP 517 build through pip
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--no-index", "-w", str(dist), str(src)])
    (wheel,) = dist.glob("thinker-*.whl")
    return wheel


def fresh_venv(tmp_path):
    """A new venv with pip, seeing numpy and onnx only (never torch)."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    links = tmp_path / "runtime_deps"
    links.mkdir()
    ours = sysconfig.get_paths()["purelib"]
    for name in RUNTIME:
        if os.path.exists(os.path.join(ours, name)):
            os.symlink(os.path.join(ours, name), links / name)
    with open(os.path.join(site.stdout.strip(), "runtime_deps.pth"), "w") as f:
        f.write(str(links) + "\n")
    return env_dir


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout of POSIX systems")
def test_wheel_installs_into_a_fresh_venv_with_working_commands_and_c_backend(tmp_path):
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler: the wheel would carry no C library")
    wheel = build_wheel(tmp_path)
    assert "linux" in wheel.name or "macosx" in wheel.name  # a platform wheel: it has C code
    env_dir = fresh_venv(tmp_path)
    bin_dir = env_dir / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
          str(wheel)])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "THINKER_C_LIBRARY")}
    work = tmp_path / "work"
    work.mkdir()
    onnx.save(small_cnn(), work / "cnn.onnx")
    _run([str(bin_dir / "tpacker"), "-g", "cnn.onnx", "-o", "cnn.bin"], cwd=work, env=env)
    x = np.random.default_rng(0).integers(-128, 128, (1, 3, 16, 16)).astype(np.int8)
    x.tofile(work / "in.bin")
    for backend in ("c", "numpy"):
        _run([str(bin_dir / "thinker"), "run", "cnn.bin", "in.bin", f"out_{backend}.bin",
              "--backend", backend], cwd=work, env=env)
    assert (work / "out_c.bin").read_bytes() == (work / "out_numpy.bin").read_bytes()
    # the C library is the wheel's, not this checkout's; torch is not importable
    probe = _run([str(bin_dir / "python"), "-c",
                  "import importlib.util, thinker.runtime.c_backend as c; "
                  "print(c.library_path()); print(importlib.util.find_spec('torch'))"],
                 cwd=work, env=env)
    lib, torch_spec = probe.stdout.split()
    assert str(env_dir) in lib and "_libthinker" in lib
    assert torch_spec == "None"
    # the wheel's library carries the numpy executor's compiled kernels, which run where this
    # CPU runs them in the checkout
    from thinker.ops import host_kernels

    kernels = _run([str(bin_dir / "python"), "-c",
                    "from thinker.ops import host_kernels; "
                    "print(host_kernels._library() is not None)"], cwd=work, env=env)
    assert kernels.stdout.strip() == str(host_kernels._library() is not None)
