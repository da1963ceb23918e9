"""The zoo models made of non-linear ops — MobileNetV2 with squeeze-excite and hard-swish, a
conv denoiser with Upsample and a sigmoid mask, a transformer encoder layer, a conformer block,
and the recurrent ones: a CRNN keyword spotter (conv front + GRU), a 2-layer LSTM voice activity
detector, a GRU noise suppressor with a sigmoid mask (their states keep PyTorch's
batch-on-axis-1 layout, so the executors run a batch sample by sample) — each trained briefly
and taken through all five stages on venus, arcs and mars: every tensor identical between
linger's eval forward, numpy on the ONNX graph, numpy on model.bin and the C executor (CRC of
every tensor)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "linger"))

pytest.importorskip("torch")

import torch
from linger_flow import train_steps

import linger
import thinker
from linger import zoo
from thinker.packer import Packer, PackOptions
from thinker.runtime import DumpHook

MODELS = ["mobilenet_v2_se", "conv_denoiser", "transformer_encoder", "conformer_block",
          "crnn_kws", "lstm_vad", "gru_denoiser"]
PLATFORMS = ["venus", "arcs", "mars"]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_is_identical_in_all_five_stages(name, platform, tmp_path):
    torch.manual_seed(0)
    config = {"platform": platform}
    train_x = zoo.example_input(name, 16, 1)
    constrained = linger.constrain(zoo.build(name), config)
    train_steps(constrained, train_x, 2)
    quantized = linger.init(constrained, config)
    train_steps(quantized, train_x, 3)
    quantized.eval()
    onnx_path = str(tmp_path / "model.onnx")
    linger.onnx.export(quantized, train_x[:1], onnx_path)

    # linger eval == numpy on the ONNX graph, every tensor
    x = zoo.example_input(name, 16, 2)
    linger_values = linger.onnx.capture(quantized, x)
    with torch.no_grad():
        linger_output = quantized(x).numpy()
    dump = DumpHook(keep=True)
    onnx_output = thinker.load(onnx_path).run({"input": x.numpy()}, hooks=[dump])["output"]
    assert set(linger_values) <= set(dump.values)
    for key, expected in linger_values.items():
        assert np.array_equal(dump.values[key].astype(np.int64), expected), key
    assert np.array_equal(onnx_output, linger_output)
    assert sum(np.count_nonzero(v) for v in linger_values.values()) > 0

    # tpacker for the platform; numpy on model.bin == ONNX on every tensor both name
    result = Packer(PackOptions(graph_path=onnx_path, platform=platform,
                                workspace=str(tmp_path / "ws"))).run()
    bin_path = tmp_path / "model.bin"
    bin_path.write_bytes(result.model_bin)
    packed = thinker.load(str(bin_path))
    (spec,) = packed.inputs
    # tpacker removed the input Quant: feed the integers linger quantized (token ids as they are)
    feed = (linger_values[spec.name] if spec.name in linger_values else x.numpy()
            ).astype(spec.dtype)
    packed_dump = DumpHook(keep=True)
    packed_out = packed.run({spec.name: feed}, hooks=[packed_dump])
    common = [k for k in packed_dump.values if k in dump.values]
    assert len(common) >= len(packed_dump.values) // 2
    for key in common:
        assert np.array_equal(packed_dump.values[key], dump.values[key]), key
    (out_name,) = packed_out

    # the C executor computes the same integers (CRC of every tensor, and the output)
    c_model = thinker.load(str(bin_path), backend="c")
    numpy_crc, c_crc = DumpHook(), DumpHook()
    expected = packed.run({spec.name: feed[:2]}, hooks=[numpy_crc])
    got = c_model.run({spec.name: feed[:2]}, hooks=[c_crc])
    assert c_crc.lines == numpy_crc.lines
    assert np.array_equal(got[out_name], expected[out_name])
