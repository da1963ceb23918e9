"""The executor API: I/O descriptions, batches, hooks and input validation."""

import numpy as np
import pytest

import thinker
from onnx_build import Const, model, node, single_op, value_info
from thinker.errors import ThinkerInputError
from thinker.graph import import_model
from thinker.runtime import DumpHook, ProfileHook, tensor_crc32

RNG = np.random.default_rng(7)


def small_cnn():
    w = RNG.integers(-20, 20, (4, 2, 3, 3), dtype=np.int8)
    fc = RNG.integers(-20, 20, (3, 4 * 4 * 4), dtype=np.int8)
    nodes = [
        node("Quant", ["x"], ["q"], scale_x=16.0),
        node("Conv2dInt", ["q", "w"], ["c"], scale_x=16.0, scale_w=64.0, scale_o=8.0, o_bits=8,
             kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["c"], ["r"]),
        node("Reshape", ["r", "shape"], ["f"]),
        node("LinearInt", ["f", "fc"], ["l"], scale_x=8.0, scale_w=64.0, scale_o=4.0, o_bits=8),
        node("Dequant", ["l"], ["y"], scale_o=4.0),
    ]
    m = model(nodes, [value_info("x", np.float32, [1, 2, 4, 4])], ["y"],
              {"w": w, "fc": fc, "shape": np.array([1, -1], dtype=np.int64)})
    return thinker.load(import_model(m))


def test_inputs_and_outputs_are_described():
    ex = small_cnn()
    (i,), (o,) = ex.inputs, ex.outputs
    assert (i.name, i.dtype, i.shape, i.exponent) == ("x", np.float32, (1, 2, 4, 4), None)
    assert (o.name, o.dtype, o.shape) == ("y", np.float32, (1, 3))


def test_a_batch_gives_the_same_rows_as_single_runs():
    ex = small_cnn()
    x = RNG.normal(size=(5, 2, 4, 4)).astype(np.float32)
    batch = ex.run({"x": x})["y"]
    assert batch.shape == (5, 3)
    for k in range(5):
        assert np.array_equal(ex.run({"x": x[k:k + 1]})["y"][0], batch[k])


def test_runs_are_deterministic_and_crc_lines_repeat():
    ex = small_cnn()
    x = RNG.normal(size=(2, 2, 4, 4)).astype(np.float32)
    a, b = DumpHook(), DumpHook()
    ex.run({"x": x}, hooks=[a])
    ex.run({"x": x}, hooks=[b])
    assert a.lines == b.lines
    assert [line.split()[-1] for line in a.lines] == ["x", "q", "c", "r", "f", "l", "y"]
    assert a.lines[1].split()[2:4] == ["int8", "2x2x4x4"]


def test_dump_writes_every_tensor_and_crc_matches_its_bytes(tmp_path):
    ex = small_cnn()
    x = RNG.normal(size=(1, 2, 4, 4)).astype(np.float32)
    hook = DumpHook(str(tmp_path), keep=True)
    ex.run({"x": x}, hooks=[hook])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["0000_x.npy", "0001_q.npy", "0002_c.npy", "0003_r.npy", "0004_f.npy",
                     "0005_l.npy", "0006_y.npy"]
    conv = np.load(tmp_path / "0002_c.npy")
    assert np.array_equal(conv, hook.values["c"])
    assert hook.lines[2].split()[1] == f"{tensor_crc32(conv):08x}"
    import zlib
    assert tensor_crc32(conv) == zlib.crc32(conv.tobytes())


def test_profile_hook_counts_macs_per_op():
    ex = small_cnn()
    hook = ProfileHook(ex)
    ex.run({"x": RNG.normal(size=(3, 2, 4, 4)).astype(np.float32)}, hooks=[hook])
    by_type = {r.op_type: r.macs for r in hook.records}
    # conv: 3 images * 4 out ch * 16 px * (2 * 9) ; linear: 3 * 3 * 64
    assert by_type["Conv2dInt"] == 3 * 4 * 16 * 18
    assert by_type["LinearInt"] == 3 * 3 * 64
    assert "total" in hook.table()


def test_wrong_dtype_shape_or_name_is_rejected_with_the_expected_shape():
    ex = small_cnn()
    with pytest.raises(ThinkerInputError, match=r"dtype float64 given, float32 expected"):
        ex.run({"x": np.zeros((1, 2, 4, 4))})
    with pytest.raises(ThinkerInputError, match=r"shape \[1, 2, 4, 5\] given, \[1, 2, 4, 4\]"):
        ex.run({"x": np.zeros((1, 2, 4, 5), np.float32)})
    with pytest.raises(ThinkerInputError, match=r"missing \['x'\]; unknown \['z'\]"):
        ex.run({"z": np.zeros((1, 2, 4, 4), np.float32)})


def test_batch_cannot_pass_a_reshape_that_drops_the_batch_axis():
    m = model([node("Reshape", ["x", "s"], ["y"], name="flat_all")],
              [value_info("x", np.int8, [1, 4])], ["y"], {"s": np.array([4], dtype=np.int64)})
    ex = thinker.load(import_model(m))
    assert ex.run({"x": np.zeros((1, 4), np.int8)})["y"].shape == (4,)
    with pytest.raises(thinker.ThinkerModelError,
                       match="Reshape 'flat_all': cannot run with batch 2"):
        ex.run({"x": np.zeros((2, 4), np.int8)})


def test_optional_inputs_keep_their_positions():
    x = np.array([[-5, 0, 5, 100]], dtype=np.int8)
    m, feeds = single_op("Clip", [x, None, Const(np.array(7, dtype=np.int8))])
    assert thinker.load(import_model(m)).run(feeds)["out0"].tolist() == [[-5, 0, 5, 7]]


def test_threads_split_the_batch_with_identical_results():
    single = small_cnn()
    multi = thinker.load(single.graph, threads=3)
    x = RNG.normal(size=(7, 2, 4, 4)).astype(np.float32)
    assert np.array_equal(multi.run({"x": x})["y"], single.run({"x": x})["y"])
