"""QAT under DistributedDataParallel (2 CPU processes, gloo): every quantizer statistic, hence
every exponent, is identical on both ranks although each rank saw different data."""

import os
import socket
import subprocess
import sys

import pytest
import torch
from linger_ddp_worker import STEPS, rank_batch

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "linger_ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(method: str, folder) -> list[dict]:
    port = free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, str(r), "2", str(port), method,
                               str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(2)]
    for p in procs:
        try:
            _, err = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("method", ["MOM", "TQT"])
def test_quantizer_statistics_are_identical_on_every_rank(method, tmp_path):
    rank0, rank1 = run_two_ranks(method, tmp_path)
    assert rank0.keys() == rank1.keys()
    quantizer_keys = [k for k in rank0 if "quantizer." in k]
    assert len(quantizer_keys) > 20
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    if method == "MOM":  # the input range is the EMA of the maximum over both ranks
        expected = None
        for step in range(STEPS):
            batch_max = max(rank_batch(r, step).abs().max() for r in range(2))
            expected = batch_max if expected is None else 0.9 * expected + 0.1 * batch_max
        assert rank0["x_quant.quantizer.running_range"].item() == pytest.approx(
            expected.item(), rel=1e-6)
