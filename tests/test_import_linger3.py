"""Exports of the original linger 3.x (domain ``linger``, its op and attribute names, as its
linger/onnx/export.py writes them: ``Quant`` before the op, ``Dequant`` at the output) import
and run unchanged, and give the original's own integers (sweep.npz, made by its kernels)."""

import os

import numpy as np
import pytest
from onnx import helper, numpy_helper

import thinker
from shared_data import SHARED_DATA

SWEEP = os.path.join(SHARED_DATA, "orig-linger-kernels", "sweep.npz")
PLATFORMS = ["venus", "arcs", "venusA"]


@pytest.fixture(scope="module")
def sweep():
    if not os.path.exists(SWEEP):
        pytest.skip(f"shared data not found at {SWEEP}")
    return np.load(SWEEP)


def linger_model(op_type, x_shape, k, platform, extra_inputs=(), inits=(), o_bits=8,
                 scale_o=128.0, **attrs):
    """float input -> linger::Quant -> linger::<op_type> -> linger::Dequant -> float output."""
    nodes = [
        helper.make_node("Quant", ["input"], ["xq"], name="Quant_0", domain="linger",
                         data_bits=8, scale_x=2.0 ** k, platform=platform, zero_point=0),
        helper.make_node(op_type, ["xq", *extra_inputs], ["yq"], name=f"{op_type}_1",
                         domain="linger", platform=platform, x_bits=8, scale_x=2.0 ** k,
                         quant_mode="floor_add", o_bits=o_bits, scale_o=scale_o, **attrs),
        helper.make_node("Dequant", ["yq"], ["output"], name="Dequant_2", domain="linger",
                         scale_o=scale_o),
    ]
    graph = helper.make_graph(
        nodes, "linger3", [helper.make_tensor_value_info("input", 1, list(x_shape))],
        [helper.make_tensor_value_info("output", 1, None)],
        [numpy_helper.from_array(v, n) for n, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("linger", 1)])


def run_ints(model, x_int, k, scale_o=128.0):
    ex = thinker.load(thinker.graph.import_model(model))
    y = ex.run({"input": (x_int.astype(np.float64) / 2.0 ** k).astype(np.float32)})["output"]
    return np.round(y.astype(np.float64) * scale_o).astype(np.int64)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("op_type,key", [("QSigmoid", "sigmoid"), ("QTanh", "tanh")])
def test_original_qsigmoid_qtanh_exports_give_the_originals_integers(sweep, platform, op_type,
                                                                     key):
    x = np.arange(-128, 128).reshape(1, 256)
    for k in range(11):
        got = run_ints(linger_model(op_type, (1, 256), k, platform), x, k)
        assert np.array_equal(got[0], sweep[f"op/{platform}/{key}/x8_s{k}"]), (op_type, k)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_original_qsoftmax_export_gives_the_originals_integers(sweep, platform):
    rows = sweep["softmax_int8_rows"].astype(np.int64)
    for k in (0, 4, 7):
        m = linger_model("QSoftmax", rows.shape, k, platform, axis=-1)
        assert np.array_equal(run_ints(m, rows, k), sweep[f"op/{platform}/softmax/x8_s{k}"])


def test_original_qlayernorm_export_runs_with_its_q15_normalisation(sweep):
    """weight int8 at 2**6, bias int32 at 2**(15 + 6), scale_y_normal 32768 (linger 3.0.9):
    y = rescale(sat32(z * w + b), 15 + 6 - q_o) with z the original kernel's Q15 output."""
    rows = sweep["layernorm_int8_rows"].astype(np.int64)
    z = sweep["raw/qlayernorm_kernel_forward/q5"].astype(np.int64)
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, 32).astype(np.int8)
    b = rng.integers(-2**24, 2**24, 32).astype(np.int32)
    m = linger_model("QLayerNorm", rows.shape, 5, "venus", ["w", "b"],
                     [("w", w), ("b", b)], scale_o=16.0, w_bits=8, scale_w=64.0,
                     scale_y_normal=32768.0)
    acc = z * w.astype(np.int64) + b
    expected = np.clip((acc + (1 << 16)) >> 17, -128, 127)
    assert np.array_equal(run_ints(m, rows, 5, scale_o=16.0), expected)


def test_original_qbmm_qmatmul_and_embedding_gather_import(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (2, 3, 5)).astype(np.int64)
    bmat = rng.integers(-128, 128, (2, 5, 4)).astype(np.int8)
    for op_type in ("QBmm", "QMatmul"):
        m = linger_model(op_type, a.shape, 4, "arcs", ["bmat"], [("bmat", bmat)],
                         scale_o=8.0, y_bits=8, scale_y=16.0)
        acc = np.matmul(a, bmat.astype(np.int64))  # q = 4 + 4, to q_o = 3: shift 5
        assert np.array_equal(run_ints(m, a, 4, scale_o=8.0), np.clip((acc + 16) >> 5, -128, 127))
    table = rng.integers(-128, 128, (10, 6)).astype(np.int8)
    g = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["e"], name="Gather_0", domain="linger",
                          platform="venus", w_bits=8, scale_w=32.0),
         helper.make_node("Dequant", ["e"], ["output"], name="Dequant_1", domain="linger",
                          scale_o=32.0)],
        "emb", [helper.make_tensor_value_info("ids", 7, [1, 4])],
        [helper.make_tensor_value_info("output", 1, None)], [numpy_helper.from_array(table,
                                                                                    "table")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("linger", 1)])
    ids = np.array([[3, 0, 9, 3]], np.int64)
    out = thinker.load(thinker.graph.import_model(m)).run({"ids": ids})["output"]
    assert np.array_equal(out, table[ids].astype(np.float32) / 32)


def test_original_qglu_export_imports_as_gluint(sweep):
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 6, 8)).astype(np.int64)
    m = linger_model("QGLU", x.shape, 4, "venus", scale_o=16.0, dim=1)
    got = run_ints(m, x, 4, scale_o=16.0)
    sig = sweep["raw/venus_qsigmoid_forward"]  # every int16 at Q11 -> Q15
    gate = sig[(x[:, 3:] << 7) + 32768]        # q 4 -> Q11: a left shift by 7
    expected = np.clip((x[:, :3] * gate + (1 << 14)) >> 15, -128, 127)  # 4 + 15 - 4
    assert np.array_equal(got, expected)
