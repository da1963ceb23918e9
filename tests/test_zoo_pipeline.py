"""Every zoo model through the whole toolchain: linger QAT + export -> tpacker -> model.bin on
the numpy and C executors. Packed run == ONNX run on every output and every tensor both name;
C == numpy on every tensor's CRC line."""

import os
import sys

import numpy as np
import onnx
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "linger"))

pytest.importorskip("torch")

import torch
from linger_flow import run_zoo_flow

import thinker
from linger import zoo
from test_tpacker import assert_packed_equals_onnx, pack, random_feed
from thinker.runtime import DumpHook

SIZES = {"mobilenet_v1_025": {"input_size": 32}}


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model_packs_and_runs_identically_on_numpy_and_c(name, tmp_path):
    run_zoo_flow(name, 8, str(tmp_path), **SIZES.get(name, {}))
    _, bin_path, onnx_path = pack(tmp_path, onnx.load(tmp_path / "model.onnx"), name,
                                  platform="cortex-m")
    tokens = zoo.ZOO[name].input_dtype == torch.long  # ids must index the embedding
    feeds = {"input": zoo.example_input(name, 4).numpy()} if tokens else None
    packed = assert_packed_equals_onnx(bin_path, onnx_path, batch=4, feeds=feeds)
    try:
        c_model = thinker.load(bin_path, backend="c")
    except thinker.ThinkerError as exc:  # no C compiler on this machine
        pytest.skip(f"C executor unavailable: {exc}")
    feeds = {"input": feeds["input"][:1]} if tokens else \
        {s.name: random_feed(s, 1) for s in packed.inputs}
    numpy_dump, c_dump = DumpHook(), DumpHook()
    expected = packed.run(feeds, hooks=[numpy_dump])
    got = c_model.run(feeds, hooks=[c_dump])
    assert c_dump.lines == numpy_dump.lines
    for key, value in expected.items():
        assert np.array_equal(got[key], value)
