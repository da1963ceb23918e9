"""Random int8 convolutions on the emulated Cortex-M4 (the DSP kernels: tile filler, edge words,
SMLAD GEMM, depthwise rows): for each seeded model of a few convs on one input, the numpy
executor, the host C executor and the emulated Cortex-M4 build give the same bytes, and no op
writes outside its planned outputs and scratch (arenas start as noise). Shapes span what the
kernels special-case: maps from 1x1 up, odd widths, 1x1 / 3x3 / 2x5 / 5x5 kernels, strides 1-2
per axis, pads up to the kernel's span, dilation, depthwise (multiplier 1 and 2), groups, 4-bit
weights, ReLU and other clips; half the models run with every GEMM cut to its least tile.

``THINKER_M4_RANDOM_MODELS`` (default 16) sets how many models; a longer run, e.g. 2000, is the
stress run behind the kernels (skipped without unicorn or arm-none-eabi-gcc)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from c_harness import assert_m4_equals_host, pack_result, with_gemm_tiles
from c_models import Builder
from test_c_gemm_kernels import extreme_feeds

import thinker
from onnx_build import value_info

MODELS = int(os.environ.get("THINKER_M4_RANDOM_MODELS", "16"))
KERNELS = [(1, 1), (3, 3), (3, 3), (3, 3), (2, 5), (5, 5)]


def out_len(size: int, p0: int, p1: int, k: int, s: int, d: int) -> int:
    return (size + p0 + p1 - (k - 1) * d - 1) // s + 1


def random_activation(rng: np.random.Generator) -> dict:
    """A fused activation for a conv's attributes: ReLU (30%), a random clip (15%) or none."""
    act = rng.random()
    if act < 0.3:
        return {"act_type": 1}
    if act < 0.45:
        lo = int(rng.integers(-128, 1))
        return {"fused_clip": [lo, int(rng.integers(lo + 1, 128))]}
    return {}


def random_conv(rng: np.random.Generator, b: Builder, c: int, h: int, w: int) -> str | None:
    """One random conv reading "x" ([N, c, h, w], exponent 4), or None when the draw has no
    output pixel."""
    kh, kw = KERNELS[rng.integers(len(KERNELS))]
    strides = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    dil = [2 if kh > 1 and rng.random() < 0.2 else 1, 2 if kw > 1 and rng.random() < 0.2 else 1]
    span = [(kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1]
    pads = [int(rng.integers(0, min(2, span[i % 2] - 1) + 1)) for i in range(4)]  # t l b r
    if min(out_len(h, pads[0], pads[2], kh, strides[0], dil[0]),
           out_len(w, pads[1], pads[3], kw, strides[1], dil[1])) < 1:
        return None
    kind = rng.random()
    if kind < 0.35:
        group, cout = c, c  # depthwise
    elif kind < 0.45:
        group, cout = c, 2 * c  # depthwise, multiplier 2
    elif kind < 0.6:
        group = int(rng.choice([g for g in range(1, c + 1) if c % g == 0]))
        cout = group * int(rng.integers(1, 4))
    else:
        group, cout = 1, int(rng.integers(1, 10))
    attrs: dict = {"group": group, "strides": strides, "pads": pads, "dilations": dil}
    attrs.update(random_activation(rng))
    if rng.random() < 0.15:
        attrs.update(parameter_bits=4, w_lo=-8, w_hi=8)
    return b.conv("x", c, cout, (kh, kw), 4, int(rng.integers(2, 6)), bias=rng.random() < 0.8,
                  **attrs)


def random_model(seed: int):
    rng = np.random.default_rng(seed)
    n, c, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 10)), int(rng.integers(1, 14)), \
        int(rng.integers(1, 14))
    b = Builder()
    outs = [o for o in (random_conv(rng, b, c, h, w) for _ in range(4)) if o is not None]
    if not outs:
        outs = [b.conv("x", c, 2, 1, 4, 3)]
    return b.build([value_info("x", np.int8, [n, c, h, w])], outs, {"x": 4})


@pytest.mark.parametrize("seed", range(MODELS))
def test_random_convs_agree_on_numpy_host_and_emulated_cortex_m4(seed, m4_runner, tmp_path):
    result = pack_result(random_model(seed), str(tmp_path))
    # odd seeds: every GEMM with its least tile, placed after the arena
    data = with_gemm_tiles(result, lambda k, rows, least: least)[0] if seed % 2 else \
        result.model_bin
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    exe, ref = thinker.load(str(path), backend="c"), thinker.load(str(path))
    feeds = extreme_feeds(exe, np.random.default_rng(seed))
    host, expected = exe.run(feeds), ref.run(feeds)
    for o in exe.outputs:
        assert np.array_equal(host[o.name], expected[o.name]), o.name
    assert_m4_equals_host(m4_runner, data, exe, feeds)
