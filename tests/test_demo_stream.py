"""`make demo-stream` at CI size: the CRNN keyword spotter trained briefly, packed with
--isstream, run frame by frame on the C executor, identical to whole utterances."""

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_stream_runs_frame_by_frame_bit_identical(tmp_path):
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler: the C executor cannot be built here")
    subprocess.run(["make", "-C", os.path.join(ROOT, "executor")], capture_output=True,
                   check=True)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "kws_stream", "demo.py"),
                        "--fast", "--workspace", str(tmp_path / "kws_stream")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "3 state(s) carried between calls (split_h)" in r.stdout
    assert "per chunk min" in r.stdout and "state 132 B in 3 tensor(s)" in r.stdout
    assert "16 / 16 utterances bit-identical" in r.stdout and "test_thinker: identical" in \
        r.stdout
