"""The digits example at CI size, the way a user runs it."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "digits", "train_digits.py")


def test_digits_example_runs_and_the_executor_matches_linger(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--fast", "--workspace", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("identical to linger eval") == 2
    for stage in ("float", "constrained", "QAT int8", "QAT int4"):
        assert f"{stage} " in r.stdout
    assert (tmp_path / "model.onnx").exists()
