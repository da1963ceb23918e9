"""The C kernels of GRUInt and LSTMInt compute the numpy executor's integers (every CRC line,
every output byte) on every kernel family, batch_first 0/1, forward and backward, with and
without biases, h0 and c0, T from 1 to 20, H up to 64, B 1 and 3, o_bits 8/16/32, int16 data
and weights, scales 40 bits apart (numpy's saturating shifts and wrapping int64 products), and
as packed for each chip; cleanly under ASan + UBSan; bad attributes are named at init."""

from __future__ import annotations

import numpy as np
import pytest
from c_harness import (
    assert_c_equals_numpy,
    assert_init_refuses,
    pack,
    pack_result,
    random_feeds,
)
from c_rnn_models import RNN_MODELS, compact_model

import thinker
from thinker.runtime import DumpHook


@pytest.fixture(scope="module")
def rnn_bins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("rnn_models")
    return {name: pack(build(), str(root / f"{name}.bin"), device)
            for name, (build, device) in RNN_MODELS.items()}


def soft_feeds(model_bin: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs of a trained model's range: x and h0 within +-1.25 (real), c0 within +-2, so the
    gates move through their whole curve instead of saturating."""
    exe = thinker.load(model_bin)
    feeds = {}
    for spec in exe.inputs:
        limit = 1 << 16 if spec.dtype == np.int32 else 40
        feeds[spec.name] = rng.integers(-limit, limit + 1, spec.shape).astype(spec.dtype)
    return feeds


@pytest.mark.parametrize("name", sorted(RNN_MODELS))
def test_rnn_ops_match_numpy_crc_for_crc(name, rnn_bins, host_build, tmp_path):
    exe = thinker.load(rnn_bins[name])
    for seed in (1, 2):
        assert_c_equals_numpy(host_build, rnn_bins[name],
                              random_feeds(exe, np.random.default_rng(seed)), tmp_path)
    for seed in (3, 4):
        assert_c_equals_numpy(host_build, rnn_bins[name],
                              soft_feeds(rnn_bins[name], np.random.default_rng(seed)), tmp_path)
    zeros = {s.name: np.zeros(s.shape, s.dtype) for s in exe.inputs}
    assert_c_equals_numpy(host_build, rnn_bins[name], zeros, tmp_path)


@pytest.mark.parametrize("name", sorted(RNN_MODELS))
def test_rnn_ops_are_clean_under_asan_and_ubsan(name, rnn_bins, sanitize_build, tmp_path):
    exe = thinker.load(rnn_bins[name])
    assert_c_equals_numpy(sanitize_build, rnn_bins[name],
                          random_feeds(exe, np.random.default_rng(7)), tmp_path)
    assert_c_equals_numpy(sanitize_build, rnn_bins[name],
                          soft_feeds(rnn_bins[name], np.random.default_rng(8)), tmp_path)


def test_the_models_exercise_the_gates(rnn_bins):
    """Soft inputs give outputs spread over their range on every family (no degenerate test),
    and venusA's rounding of its Q58 table output differs from arcs' Q31 table somewhere."""
    outs = {}
    for family in ("venus", "arcs", "venusA"):
        path = rnn_bins[f"rnn_{family}"]
        exe = thinker.load(path)
        outs[family] = exe.run(soft_feeds(path, np.random.default_rng(5)))
        for spec in exe.outputs:
            assert len(np.unique(outs[family][spec.name])) > 4, (family, spec.name)
    assert any(not np.array_equal(outs["arcs"][k], outs["venusA"][k]) for k in outs["arcs"])
    assert any(not np.array_equal(outs["arcs"][k], outs["venus"][k]) for k in outs["arcs"])


def test_python_binding_runs_the_rnn_ops(rnn_bins):
    path = rnn_bins["rnn_venusA"]
    c_exe, np_exe = thinker.load(path, backend="c"), thinker.load(path)
    feeds = soft_feeds(path, np.random.default_rng(9))
    h_c, h_np = DumpHook(), DumpHook()
    out_c, out_np = c_exe.run(feeds, hooks=[h_c]), np_exe.run(feeds, hooks=[h_np])
    assert h_c.lines == h_np.lines
    for spec in np_exe.outputs:
        assert np.array_equal(out_c[spec.name], out_np[spec.name])


def test_scratch_is_the_documented_size(tmp_path):
    """docs/c_executor.md: 4 (4 H + F + B H (1 + LSTM)) bytes per op, planned in the arena as
    the op's own region (model.bin section 9); the LSTM's (H 8, F 8, B 2): 4 (32 + 8 + 2 * 16)
    = 288, and the C executor asks for no separate SCRATCH buffer."""
    from thinker.resource.reader import read_model

    path = pack(compact_model(), str(tmp_path / "compact.bin"))
    model = read_model(path)
    sizes = {model.ops[op].op_type: size for op, _kind, _off, size in model.scratch}
    assert sizes["LSTMInt"] == 288
    plan = {kind: size for kind, size, _ in thinker.load(path, backend="c").memory_plan}
    assert 9 not in plan  # THINKER_MEM_SCRATCH is never requested


# --- attribute validation at init ---------------------------------------------------------------


@pytest.fixture(scope="module")
def packed_compact(tmp_path_factory):
    return pack_result(compact_model(), str(tmp_path_factory.mktemp("rnn_bad")))


@pytest.mark.parametrize("op_type, change, message", [
    ("GRUInt", lambda a: a.update(platform="vexus"), "unknown platform"),
    ("GRUInt", lambda a: a.update(num_layers=2), "num_layers must be 1"),
    ("GRUInt", lambda a: a.update(hidden_size=5), "hidden_size"),
    ("GRUInt", lambda a: a.update(has_hidden=0), "has_hidden"),
    ("GRUInt", lambda a: a.update(o_bits=5), "o_bits and h_bits"),
    ("GRUInt", lambda a: a.update(h_bits=16), "recorded output"),
    ("GRUInt", lambda a: a.update(scale_h=2.0**60), "exceeds 40 bits"),
    ("GRUInt", lambda a: a.update(scale_iw=3.0), "powers of two"),
    ("GRUInt", lambda a: a.pop("scale_hw"), "powers of two"),
    ("LSTMInt", lambda a: a.update(scale_c=2.0**14), "scale_c must be 32768"),
    ("LSTMInt", lambda a: a.update(has_cell=0), "has_cell"),
    ("LSTMInt", lambda a: a.update(batch_first=1), "expects X int"),
    ("LSTMInt", lambda a: a.update(scale_o=2.0**-40), "exceeds 40 bits"),
])
def test_bad_attributes_are_named_at_init(packed_compact, sanitize_build, tmp_path, op_type,
                                          change, message):
    assert_init_refuses(sanitize_build, packed_compact, op_type, change, message, tmp_path)
