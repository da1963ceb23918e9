"""One loaded model called from 16 threads at once gives every thread exactly the results of a
single-threaded run: the numpy executor (ONNX graph and model.bin; its kernels keep scratch per
thread) and the C executor (the binding serialises calls on one model's arenas)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import thinker
from thinker.packer import Packer, PackOptions

THREADS = 16


@pytest.fixture(scope="module")
def resnet18_bin(resnet18_path, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("threads")
    result = Packer(PackOptions(graph_path=resnet18_path, platform="venus",
                                workspace=str(root / "ws"))).run()
    path = root / "resnet18.bin"
    path.write_bytes(result.model_bin)
    return str(path)


def _hammer(model, feeds_per_thread, rounds=3):
    def work(feeds):
        return [model.run(feeds) for _ in range(rounds)]

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(work, feeds_per_thread))


def _check(model, name_dtype_shape):
    name, dtype, shape = name_dtype_shape
    rng = np.random.default_rng(7)
    feeds = [{name: rng.integers(-128, 128, (1 + k % 3, *shape[1:])).astype(dtype)}
             for k in range(THREADS)]
    expected = [model.run(f) for f in feeds]
    for k, runs in enumerate(_hammer(model, feeds)):
        for out in runs:
            for key, value in expected[k].items():
                assert np.array_equal(out[key], value), (k, key)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_sixteen_threads_on_one_packed_model_get_single_thread_results(resnet18_bin, backend):
    model = thinker.load(resnet18_bin, backend=backend)
    spec = model.inputs[0]
    _check(model, (spec.name, spec.dtype, spec.shape))


def test_sixteen_threads_on_one_onnx_graph_get_single_thread_results(resnet18_path):
    model = thinker.load(resnet18_path)
    rng = np.random.default_rng(8)
    spec = model.inputs[0]
    feeds = [{spec.name: rng.normal(size=(1 + k % 3, *spec.shape[1:])).astype(np.float32)}
             for k in range(THREADS)]
    expected = [model.run(f) for f in feeds]
    for k, runs in enumerate(_hammer(model, feeds)):
        for out in runs:
            assert all(np.array_equal(out[n], v) for n, v in expected[k].items()), k
