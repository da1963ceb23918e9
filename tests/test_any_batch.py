"""A model exported with batch B > 1 runs any batch (numpy on the ONNX graph, numpy on
model.bin, the C executor) when no op mixes its samples; otherwise the error names the op and
says to export with batch 1."""

import numpy as np
import onnx
import pytest

import thinker
from c_executor.c_harness import make, pack
from onnx_build import model, node, value_info
from thinker.errors import ThinkerModelError
from thinker.graph import import_model
from thinker.runtime import DumpHook
from thinker.runtime.any_batch import mixing_problem

RNG = np.random.default_rng(5)


def cnn(batch: int) -> onnx.ModelProto:
    """Quant -> conv + relu -> residual add -> avgpool -> reshape [B, -1] -> linear -> dequant,
    exported with ``batch`` (the same weights whatever the batch)."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.integers(-40, 40, (4, 3, 3, 3)).astype(np.int8),
             "b": rng.integers(-300, 300, 4).astype(np.int32),
             "shape": np.array([batch, 16], np.int64),
             "fw": rng.integers(-60, 60, (5, 16)).astype(np.int8)}
    nodes = [
        node("Quant", ["x"], ["q"], name="quant", scale_x=16.0),
        node("Conv2dInt", ["q", "w", "b"], ["c"], name="conv", scale_x=16.0, scale_w=32.0,
             scale_o=8.0, o_bits=8, kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
             dilations=[1, 1], group=1),
        node("Relu", ["c"], ["r"], name="relu"),
        node("iqAdd", ["r", "c"], ["a"], name="add", scale_x=8.0, scale_y=8.0, scale_o=4.0),
        node("AvgPool2dInt", ["a"], ["p"], name="pool", kernel_shape=[4, 4], strides=[4, 4],
             scale_x=4.0, scale_o=4.0, o_bits=8),
        node("Reshape", ["p", "shape"], ["f"], name="flat"),
        node("LinearInt", ["f", "fw"], ["l"], name="fc", scale_x=4.0, scale_w=64.0,
             scale_o=2.0, o_bits=8),
        node("Dequant", ["l"], ["y"], name="dequant", scale_o=2.0),
    ]
    return model(nodes, [value_info("x", np.float32, [batch, 3, 8, 8])], ["y"], inits)


def per_sample(x: np.ndarray) -> np.ndarray:
    """The reference: each sample on its own through the batch-1 export."""
    one = thinker.load(import_model(cnn(1)))
    return np.concatenate([one.run({"x": x[i:i + 1]})["y"] for i in range(len(x))])


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("any_batch")
    return pack(cnn(4), str(folder / "b4.bin"))


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 9])
def test_a_batch_4_export_runs_any_batch_on_every_executor(packed, n):
    make()
    x = (RNG.standard_normal((n, 3, 8, 8)) * 2).astype(np.float32)
    expected = per_sample(x)
    graph = thinker.load(import_model(cnn(4)))
    assert np.array_equal(graph.run({"x": x})["y"], expected)
    bin_model = thinker.load(packed)
    c_model = thinker.load(packed, backend="c")
    (spec,) = bin_model.inputs
    assert spec.shape[0] == 4
    ints = bin_model.quantize_inputs({spec.name: x})[spec.name]
    numpy_out = bin_model.run({spec.name: ints})
    c_out = c_model.run({spec.name: ints})
    (name,) = numpy_out
    assert numpy_out[name].shape[0] == n
    assert np.array_equal(numpy_out[name], c_out[name])
    assert np.array_equal(bin_model.dequantize_outputs(numpy_out)[name], expected)


def test_hooks_see_the_samples_given_not_the_padding(packed):
    make()
    x = RNG.integers(-128, 128, (3, 3, 8, 8)).astype(np.int8)
    numpy_dump, c_dump = DumpHook(keep=True), DumpHook(keep=True)
    thinker.load(packed).run({thinker.load(packed).inputs[0].name: x}, hooks=[numpy_dump])
    c = thinker.load(packed, backend="c")
    c.run({c.inputs[0].name: x}, hooks=[c_dump])
    assert numpy_dump.values.keys() == c_dump.values.keys()
    for key, value in numpy_dump.values.items():
        assert value.shape[0] == 3, key
        assert np.array_equal(value, c_dump.values[key]), key


def mixing(batch: int) -> onnx.ModelProto:
    """Transpose moves the batch: [B, 6] -> [6, B] -> iqMul -> back: samples meet."""
    nodes = [node("Transpose", ["x"], ["t"], name="swap", perm=[1, 0]),
             node("iqMul", ["t", "t"], ["m"], name="square", scale_x=4.0, scale_y=4.0,
                  scale_o=4.0),
             node("Reshape", ["m", "shape"], ["y"], name="mix")]
    m = model(nodes, [value_info("x", np.int8, [batch, 6])], ["y"],
              {"shape": np.array([batch, 6], np.int64)})
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", "2"
    return m


def test_an_op_that_mixes_samples_is_named(tmp_path):
    g = import_model(mixing(4))
    assert "Transpose 'swap' moves the batch axis (perm [1, 0])" in mixing_problem(g)
    x = RNG.integers(-10, 10, (4, 6)).astype(np.int8)
    thinker.load(g).run({"x": x})  # the exported batch runs
    for loaded in (thinker.load(g), thinker.load(pack(mixing(4), str(tmp_path / "m.bin")))):
        spec = loaded.inputs[0]
        with pytest.raises(ThinkerModelError, match=r"cannot run batch 3: Transpose 'swap' "
                                                    r"moves the batch axis.*export it with "
                                                    r"batch 1"):
            loaded.run({spec.name: x[:3].astype(spec.dtype)})
    make()
    c = thinker.load(str(tmp_path / "m.bin"), backend="c")
    with pytest.raises(ThinkerModelError, match="Transpose 'swap'"):
        c.run({c.inputs[0].name: np.zeros((8, 6), np.int8)})


@pytest.mark.parametrize("op, attrs, why", [
    ("SoftmaxInt", {"axis": 0}, "works along the batch axis 0"),
    ("Slice", {}, "slices the batch axis"),
])
def test_other_sample_mixing_ops_are_named(op, attrs, why):
    if op == "Slice":
        nodes = [node("Slice", ["x", "s", "e", "a"], ["y"], name="cut")]
        inits = {"s": np.array([1]), "e": np.array([3]), "a": np.array([0])}
    else:
        nodes = [node(op, ["x"], ["y"], name="cut", scale_x=16.0, scale_o=128.0, o_bits=8,
                      **attrs)]
        nodes[0].domain = "thinker"
        inits = {}
    m = model(nodes, [value_info("x", np.int8, [4, 6])], ["y"], inits)
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", "4"
    assert why in mixing_problem(import_model(m))


def test_linger_export_with_batch_4_runs_any_batch(tmp_path):
    torch = pytest.importorskip("torch")
    import linger
    from linger import zoo

    torch.manual_seed(0)
    qmodel = linger.init(zoo.build("lenet5"))
    x = zoo.example_input("lenet5", 8, 1)
    with linger.calibration(qmodel):
        qmodel(x)
    qmodel.eval()
    path = str(tmp_path / "lenet_b4.onnx")
    linger.onnx.export(qmodel, x[:4], path)
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    with torch.no_grad():
        expected = qmodel(x[:5]).numpy()
    from thinker.packer import Packer, PackOptions

    result = Packer(PackOptions(graph_path=path, workspace=str(tmp_path / "ws"))).run()
    (tmp_path / "lenet.bin").write_bytes(result.model_bin)
    make()
    for backend in ("numpy", "c"):
        m = thinker.load(str(tmp_path / "lenet.bin"), backend=backend)
        feeds = m.quantize_inputs({m.inputs[0].name: x[:5].numpy()})
        out = m.dequantize_outputs(m.run(feeds))
        assert np.array_equal(next(iter(out.values())), expected), backend
