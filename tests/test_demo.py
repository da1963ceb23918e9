"""The demo the README's `make demo` runs, at CI size, and validation against linger."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "digits"
    r = subprocess.run([sys.executable, os.path.join(DIGITS, "demo.py"), "--fast",
                        "--workspace", str(work)], capture_output=True, text=True)
    return r, work


def test_demo_runs_the_five_stages_and_prints_the_table(demo):
    r, work = demo
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for stage in ("stage 1", "stage 2", "stage 3", "stage 4", "stage 5"):
        assert stage in r.stdout
    assert "images with identical logits       450 / 450" in r.stdout
    assert "accuracy, executor (model.bin)" in r.stdout and "MACs per inference" in r.stdout
    assert "accuracy, PTQ int8 (no training)   abs_max " in r.stdout  # next to QAT's
    assert "top_10" in r.stdout and "mse" in r.stdout
    assert "share-memory arena" in r.stdout and "images/s" in r.stdout
    for name in ("digits.onnx", "model.bin", "qat_int8.pt", "memory_report.txt"):
        assert (work / name).exists()


def test_validate_against_linger_checkpoint(demo):
    _, work = demo
    r = subprocess.run([os.path.join(BIN, "thinker"), "validate", str(work / "digits.onnx"),
                        str(work / "model.bin"), "--linger", "factory:lenet5_qat",
                        "--checkpoint", str(work / "qat_int8.pt")],
                       capture_output=True, text=True, cwd=DIGITS)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].endswith("tensors identical (reference vs checked)")
    assert lines[1].endswith("tensors identical (linger vs checked)")
