"""Issue 12 item 4: patch-based execution (thinker.passes.patch).

A patched model computes the same integers as the unpatched one: on the numpy executor and the
C executor (np.array_equal, never a tolerance), for the MLPerf Tiny ResNet-8 and
MobileNetV1-0.25 twins, zoo CNNs and random small conv chains with random tile grids
(hypothesis). tpacker patches on its own when the model does not fit the share-memory, and the
patched peak meets the issue's goal (<= half of tflite-micro's arena head).
"""

import os
import sys

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

import thinker  # noqa: E402
from onnx_build import model, node, value_info  # noqa: E402
from packing_models import conv, small_cnn  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402
from test_tpacker import pack  # noqa: E402
from thinker.errors import ThinkerInputError  # noqa: E402
from thinker.graph import import_model  # noqa: E402
from thinker.passes.patch import chain_cuts, parse_patch, patch_graph  # noqa: E402
from thinker.resource import format as fmt  # noqa: E402

RNG = np.random.default_rng(12)
# tflite-micro's arena head on these models (benchmarks/bench_memory.py measures it)
TFLM_HEAD = {"pretrainedResnet_quant.tflite": 49_152, "vww_96_int8.tflite": 73_728}


def c_available() -> bool:
    from thinker.runtime import c_backend

    try:
        c_backend._library()
        return True
    except thinker.ThinkerError:
        return False


def outputs(bin_path: str, feeds: dict, backend: str) -> list[dict]:
    """One run per sample (the C executor runs batch 1 models sample by sample)."""
    exe = thinker.load(bin_path, backend=backend)
    n = len(next(iter(feeds.values())))
    return [exe.run({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k


def int8_feeds(bin_path: str, batch: int) -> dict:
    exe = thinker.load(bin_path)
    return {s.name: RNG.integers(-128, 128, (batch, *s.shape[1:])).astype(s.dtype)
            for s in exe.inputs}


def assert_patched_equal(tmp_path, m: onnx.ModelProto, patch: str, batch: int = 3, **opts):
    """Pack unpatched and patched; both executors give identical integers everywhere."""
    base, base_bin, _ = pack(tmp_path, m, "off", patch="off", **opts)
    patched, patched_bin, _ = pack(tmp_path, m, "patched", patch=patch, **opts)
    assert len(patched.graph.nodes) > len(base.graph.nodes)  # it was patched
    feeds = int8_feeds(base_bin, batch)
    want = outputs(base_bin, feeds, "numpy")
    assert_same(want, outputs(patched_bin, feeds, "numpy"))
    if c_available():
        assert_same(want, outputs(base_bin, feeds, "c"))
        assert_same(want, outputs(patched_bin, feeds, "c"))
    return base, patched


def mlperf_twin(name: str) -> onnx.ModelProto:
    path = os.path.join(SHARED_DATA, "mlperf-tiny", name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not available")
    from mlperf_models import twin_from_tflite

    return twin_from_tflite(path)[0]


def sram(result) -> int:
    return result.plan.arenas[fmt.MEM_SRAM].size


@pytest.mark.parametrize("name, patch", [("pretrainedResnet_quant.tflite", "3x3@act5"),
                                         ("vww_96_int8.tflite", "4x4@act8")])
def test_mlperf_twins_patched_equal(tmp_path, name, patch):
    assert_patched_equal(tmp_path, mlperf_twin(name), patch, platform="cortex-m")


@pytest.mark.parametrize("name", sorted(TFLM_HEAD))
def test_auto_patch_fits_half_tflm_head(tmp_path, name):
    """With share-memory of half tflite-micro's head, tpacker patches by itself (--patch auto,
    the default), the plan fits, the report names the patch, and the outputs are unchanged."""
    m = mlperf_twin(name)
    budget = TFLM_HEAD[name] // 2
    base, base_bin, _ = pack(tmp_path, m, "off", platform="cortex-m", patch="off")
    assert sram(base) > budget
    result, bin_path, _ = pack(tmp_path, m, "auto", platform="cortex-m", ramsize=budget)
    assert sram(result) <= budget
    assert any(r.startswith("patch: ") and "extra MACs" in r for r in result.report.rewrites)
    assert result.macs > base.macs
    feeds = int8_feeds(base_bin, 2)
    want = outputs(base_bin, feeds, "numpy")
    assert_same(want, outputs(bin_path, feeds, "numpy"))
    if c_available():
        assert_same(want, outputs(bin_path, feeds, "c"))
        # the C executor asks for exactly the plan and writes no byte outside it
        pytest.importorskip("torch")  # test_memory_plan's module needs it
        from test_memory_plan import _run_with_canaries, c_memory_plan

        status, message, asked = c_memory_plan(result.model_bin)
        assert status == 0, message
        assert asked[fmt.MEM_SRAM] == sram(result)
        _run_with_canaries(result.model_bin, np.random.default_rng(5))


def test_small_cnn_patched_equal(tmp_path):
    """conv + ReLU, depthwise, pointwise, residual iqAdd, MaxPool in the chain; the edge Quant
    is removed first so the chain starts at the int8 input."""
    assert_patched_equal(tmp_path, small_cnn(hw=16), "3x2", platform="cortex-m")


@pytest.mark.parametrize("name, kw, patch", [
    ("mobilenet_v1_025", {"input_size": 32}, "min"),
    # the hard-swish stem (iqAdd / iqMul with constants); the SE's global pool in the first
    # block ends the tileable chain there
    ("mobilenet_v2_se", {}, "2x2@stem.2")])
def test_zoo_cnns_patched_equal(tmp_path, name, kw, patch):
    """linger-exported zoo CNNs (QAT -> ONNX -> tpacker)."""
    pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(HERE, "linger"))
    from linger_flow import run_zoo_flow

    run_zoo_flow(name, 8, str(tmp_path), **kw)
    m = onnx.load(tmp_path / "model.onnx")
    assert_patched_equal(tmp_path, m, patch, batch=2, platform="cortex-m")


def test_auto_leaves_a_fitting_model_alone(tmp_path):
    result, _, _ = pack(tmp_path, small_cnn(hw=16), platform="cortex-m")
    assert not any(r.startswith("patch") for r in result.report.rewrites)


def test_bad_patch_values(tmp_path):
    for bad in ("2x", "0x2", "axb", "big"):
        with pytest.raises(ThinkerInputError, match="--patch"):
            parse_patch(bad)
    assert parse_patch("3x2@act5") == ("grid", (3, 2), "act5")
    with pytest.raises(ThinkerInputError, match="does not end a tileable chain"):
        pack(tmp_path, small_cnn(hw=16), platform="cortex-m", patch="2x2@nothing")


# ---- random conv chains -----------------------------------------------------------------


@st.composite
def conv_chains(draw):
    """A random int8 chain: convs (any kernel, stride, dilation, asymmetric pads, grouped or
    depthwise, fused ReLU), pools (max, average with or without counting the padding), and
    residual adds; then a tile grid of its output."""
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(5, 18)), draw(st.integers(5, 18))
    nodes, inits, x, q = [], {}, "x", 4
    shapes = {"x": (c, h, w, q)}
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "dw", "max", "avg", "res"]))
        y = f"t{i}"
        if kind == "res":  # a shape-keeping conv (maybe depthwise) + iqAdd of its input
            k = draw(st.sampled_from([1, 3]))
            dw = draw(st.booleans())
            n, params = conv(f"res{i}", x, f"{y}r", c, c, k, q, 2, group=c if dw else 1,
                             depthwise=dw)
            nodes += [n, node("iqAdd", [f"{y}r", x], [y], name=f"add{i}", scale_x=4.0,
                              scale_y=2.0**q, scale_o=8.0)]
            inits.update(params)
            x, q = y, 3
            shapes[y] = (c, h, w, q)
            continue
        k = draw(st.integers(1, 3)) if kind != "conv" else draw(st.integers(1, 5))
        s, d = draw(st.integers(1, 2)), draw(st.integers(1, 2)) if kind != "avg" else 1
        if kind in ("max", "avg"):
            d = 1
        span = (k - 1) * d + 1
        pads = [draw(st.integers(0, min(span - 1, 2))) for _ in range(4)]
        if kind in ("max", "avg"):  # pads beyond half the window are invalid for pools
            pads = [min(p, k // 2) for p in pads]
        oh = (h + pads[0] + pads[2] - span) // s + 1
        ow = (w + pads[1] + pads[3] - span) // s + 1
        if oh < 2 or ow < 2:
            continue
        if kind in ("conv", "dw"):
            cout = c if kind == "dw" else draw(st.integers(1, 6))
            group = c if kind == "dw" else 1
            relu = draw(st.booleans())
            n, params = conv(f"conv{i}", x, y, cout, c, k, q, 3, stride=s, pad=pads,
                             group=group, dilation=d, depthwise=kind == "dw",
                             **({"act_type": 1} if relu else {}))
            nodes.append(n)
            inits.update(params)
            c, q = cout, 3
        elif kind == "max":
            nodes.append(node("MaxPool", [x], [y], name=f"max{i}", kernel_shape=[k, k],
                              strides=[s, s], pads=pads))
        else:
            nodes.append(node("AvgPool2dInt", [x], [y], name=f"avg{i}", kernel_shape=[k, k],
                              strides=[s, s], pads=pads, scale_x=2.0**q, scale_o=2.0**q,
                              o_bits=8, count_include_pad=int(draw(st.booleans()))))
        x, h, w = y, oh, ow
        shapes[y] = (c, h, w, q)
    if not nodes:
        return None
    outputs = [x]
    if draw(st.booleans()):  # ops after the chain: on the cut, and on the graph input again
        n, params = conv("tail", x, "tail", 2, c, 1, q, 3, pad=0)
        nodes += [n, node("MaxPool", ["x"], ["xp"], name="xpool", kernel_shape=[2, 2],
                          strides=[2, 2])]
        inits.update(params)
        outputs = ["tail", "xp"]
    m = model(nodes, [value_info("x", np.int8, [1, shapes["x"][0], *shapes["x"][1:3]])],
              outputs, inits)
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", "4"
    grid = (draw(st.integers(1, min(h, 4))), draw(st.integers(1, min(w, 4))))
    return m, x, grid


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_chains(), st.integers(0, 2**31 - 1))
def test_random_chains_numpy(case, seed):
    """patch_graph on the imported graph: the numpy executor's outputs are identical; the
    shapes the search sets from the regions equal the inferred ones."""
    if case is None:
        return
    m, out, grid = case
    g = import_model(m)
    assert out in dict(chain_cuts(g))
    patched = patch_graph(g, out, grid)
    quick = patch_graph(g, out, grid, infer=False)
    assert {k: t.shape for k, t in quick.tensors.items()} == \
        {k: t.shape for k, t in patched.tensors.items()}
    shape = g.tensors["x"].shape
    x = np.random.default_rng(seed).integers(-128, 128, (2, *shape[1:])).astype(np.int8)
    want, got = thinker.load(g).run({"x": x}), thinker.load(patched).run({"x": x})
    assert want.keys() == got.keys()
    for k in want:
        assert np.array_equal(want[k], got[k]), k


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(conv_chains())
def test_random_chains_packed_c(tmp_path, case):
    """The same through tpacker (--patch RxC@output) on both executors."""
    if case is None or case[2] == (1, 1):
        return
    m, out, (r, c) = case
    assert_patched_equal(tmp_path, m, f"{r}x{c}@{out}", batch=2, platform="cortex-m")


def test_cli_patch_flag(tmp_path):
    """--patch as a user types it: the stage line and the report name the chain, grid and
    extra MACs; a malformed value is refused with the accepted forms and no model.bin."""
    from test_tpacker import tpacker

    onnx.save(small_cnn(hw=16), tmp_path / "cnn.onnx")
    r = tpacker("-g", "cnn.onnx", "-o", "cnn.bin", "-p", "cortex-m", "--patch", "2x2",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if " patch " in x)
    assert "2x2 tiles" in line and "extra MACs" in line
    text = (tmp_path / "workspace" / "cnn" / "memory_report.txt").read_text()
    assert "patch: " in text and "2x2 tiles" in text
    r = tpacker("-g", "cnn.onnx", "-o", "bad.bin", "--patch", "2by2", cwd=tmp_path)
    assert r.returncode != 0 and "--patch 2by2" in r.stderr and "RxC" in r.stderr
    assert not (tmp_path / "bad.bin").exists()


def test_ops_that_cannot_be_tiled_end_the_chain():
    """A constant that varies over H, W (it would need cropping per tile) and a window wholly
    inside the padding are not tiled: the chain ends before them."""
    c1, p1 = conv("c1", "x", "a", 2, 1, 3, 4, 3)
    c2, p2 = conv("c2", "b", "y", 2, 2, 1, 3, 3, pad=1)  # 1x1 with pad 1: border rows all pad
    add = node("iqAdd", ["a", "bias"], ["b"], name="add", scale_x=8.0, scale_y=8.0,
               scale_o=8.0)
    bias = RNG.integers(-9, 9, (1, 2, 8, 8)).astype(np.int8)
    m = model([c1, add, c2], [value_info("x", np.int8, [1, 1, 8, 8])], ["y"],
              {**p1, **p2, "bias": bias})
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", "4"
    g = import_model(m)
    assert [cut for cut, _ in chain_cuts(g)] == ["a"]
    c2, _ = conv("c2", "a", "y", 2, 2, 1, 3, 3, pad=1)
    m = model([c1, c2], [value_info("x", np.int8, [1, 1, 8, 8])], ["y"], {**p1, **p2})
    m.metadata_props.add().CopyFrom(entry)
    assert [cut for cut, _ in chain_cuts(import_model(m))] == ["a"]
