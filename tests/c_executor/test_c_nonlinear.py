"""The C kernels of iqSigmoid, iqTanh, SoftmaxInt and LayerNormInt compute the numpy executor's
integers on every kernel family, dtype, axis and scale (numpy's int64 wrap-around at extreme
scales included), cleanly under ASan + UBSan; executor/src/nonlinear_tables.h is exactly the
generator's rendering of tables.toml; LayerNormInt's integer eps is stored in model.bin so the
ONNX graph, the model.bin and the C executor agree; bad attributes are named at init."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from c_harness import (
    EXECUTOR,
    assert_c_equals_numpy,
    assert_init_refuses,
    pack,
    pack_result,
    random_feeds,
)
from c_harness import rewrite_attrs as rewrite
from c_models import Builder, _ints
from c_nonlinear_models import NONLINEAR_MODELS

import thinker
from onnx_build import value_info
from thinker.errors import ThinkerFormatError
from thinker.nonlinear import c_tables, softmax
from thinker.runtime import DumpHook

HEADER = os.path.join(EXECUTOR, "src", "nonlinear_tables.h")


@pytest.fixture(scope="module")
def nl_bins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("nl_models")
    return {name: pack(build(), str(root / f"{name}.bin"), device)
            for name, (build, device) in NONLINEAR_MODELS.items()}


def special_feeds(model_bin: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random feeds with edge rows: constant rows (ties, zero variance), the dtype's extremes,
    and for int32 inputs the values whose 48-bit left shift wraps to 0 or INT64_MIN."""
    exe = thinker.load(model_bin)
    feeds = random_feeds(exe, rng)
    for spec in exe.inputs:
        x = feeds[spec.name].reshape(-1, spec.shape[-1])
        info = np.iinfo(spec.dtype)
        x[0] = info.min
        if len(x) > 1:
            x[1] = -1
        if len(x) > 2:
            x[2, ::2], x[2, 1::2] = info.max, info.min
        if spec.dtype == np.int32 and len(x) > 3:
            special = [0, 1 << 15, -(1 << 15), 3 << 15, 1 << 16, -(5 << 16), 1, -1, 7]
            x[3, :len(special)] = special
    return feeds


@pytest.mark.parametrize("name", sorted(NONLINEAR_MODELS))
def test_nonlinear_ops_match_numpy_crc_for_crc(name, nl_bins, host_build, tmp_path):
    exe = thinker.load(nl_bins[name])
    for seed in (1, 2, 3):
        assert_c_equals_numpy(host_build, nl_bins[name],
                              random_feeds(exe, np.random.default_rng(seed)), tmp_path)
    assert_c_equals_numpy(host_build, nl_bins[name],
                          special_feeds(nl_bins[name], np.random.default_rng(4)), tmp_path)
    zeros = {s.name: np.zeros(s.shape, s.dtype) for s in exe.inputs}
    assert_c_equals_numpy(host_build, nl_bins[name], zeros, tmp_path)


@pytest.mark.parametrize("name", sorted(NONLINEAR_MODELS))
def test_nonlinear_ops_are_clean_under_asan_and_ubsan(name, nl_bins, sanitize_build, tmp_path):
    exe = thinker.load(nl_bins[name])
    assert_c_equals_numpy(sanitize_build, nl_bins[name],
                          random_feeds(exe, np.random.default_rng(7)), tmp_path)
    assert_c_equals_numpy(sanitize_build, nl_bins[name],
                          special_feeds(nl_bins[name], np.random.default_rng(8)), tmp_path)


def test_python_binding_runs_the_nonlinear_ops(nl_bins):
    path = nl_bins["nl_venusA"]
    c_exe, np_exe = thinker.load(path, backend="c"), thinker.load(path)
    feeds = random_feeds(np_exe, np.random.default_rng(9))
    h_c, h_np = DumpHook(), DumpHook()
    out_c, out_np = c_exe.run(feeds, hooks=[h_c]), np_exe.run(feeds, hooks=[h_np])
    assert h_c.lines == h_np.lines
    for spec in np_exe.outputs:
        assert np.array_equal(out_c[spec.name], out_np[spec.name])


# --- the integer eps of LayerNormInt ----------------------------------------------------------


def test_layernorm_eps_q_is_stored_so_graph_bin_and_c_agree(host_build, tmp_path):
    """The C executor has no floats: tpacker writes the integer eps (eps_q) into model.bin, and
    the ONNX graph, the model.bin (numpy) and the C executor all run with it. Rows of zeros
    and one 1 make the denominators small, so eps_q changes the outputs."""
    from thinker.nonlinear import layernorm as ln
    from thinker.resource.reader import read_model

    b = Builder()
    y = b.op("LayerNormInt", ["x", b.const(_ints(125, -100, 100))], scale_x=4.0,
             scale_w=64.0, scale_o=4.0, o_bits=8)
    onnx_model = b.build([value_info("x", np.int8, [1, 4, 125])], [y], {"x": 2})
    path = pack(onnx_model, str(tmp_path / "ln.bin"))
    (op,) = read_model(path).ops
    assert op.attrs["eps_q"] == ln.eps_q_words(ln.eps_q(1e-5, 2, 125)) == [3, 0]
    x = np.zeros((1, 4, 125), np.int8)
    x[0, :, -1] = 1  # denominators 124 + eps_q
    x[0, 2:, :3] = [[5, -3, 2], [127, -128, 0]]
    graph_out = thinker.load(str(tmp_path / "ln.onnx")).run({"x": x})
    bin_out = thinker.load(path).run({"x": x})
    assert np.array_equal(graph_out[y], bin_out[y])
    assert_c_equals_numpy(host_build, path, {"x": x}, tmp_path)


def test_eps_q_words_round_trip():
    from thinker.nonlinear import layernorm as ln

    for value in (0, 1, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, 123456789012345,
                  (1 << 58) - 1, 1 << 62):
        words = ln.eps_q_words(value)
        assert all(-(1 << 31) <= w < (1 << 31) for w in words)
        assert ln.packed_eps_q(words, 0.0, 0, 1, "t") == value
    with pytest.raises(thinker.ThinkerModelError, match="eps_q"):
        ln.packed_eps_q([1], 0.0, 0, 1, "t")


# --- attribute validation at init ---------------------------------------------------------------


@pytest.fixture(scope="module")
def packed_compact(tmp_path_factory):
    from c_nonlinear_models import compact_model

    return pack_result(compact_model(), str(tmp_path_factory.mktemp("nl_bad")))


@pytest.mark.parametrize("op_type, change, message", [
    ("iqSigmoid", lambda a: a.update(platform="vexus"), "unknown platform"),
    ("iqTanh", lambda a: a.update(platform=3), "attribute 'platform'"),
    ("SoftmaxInt", lambda a: a.update(axis=3), "axis out of range"),
    ("SoftmaxInt", lambda a: a.update(axis="x"), "attribute 'axis'"),
    ("SoftmaxInt", lambda a: a.update(scale_x=2.0**-40), "kernel input conversion"),
    ("iqTanh", lambda a: a.update(scale_o=2.0**90), "output requantization"),
    ("LayerNormInt", lambda a: a.update(eps_q=[0, -1]), "eps_q"),
    ("LayerNormInt", lambda a: a.update(eps_q=[5]), "eps_q"),
    ("LayerNormInt", lambda a: a.update(eps=-1.0), "eps must be"),
    ("LayerNormInt", lambda a: a.update(eps_q=[0, 1 << 26]), "below 2**58"),
    ("LayerNormInt", lambda a: a.update(scale_y_normal=1.0), "scale_y_normal"),
    ("LayerNormInt", lambda a: a.pop("scale_w"), "scale_w"),
])
def test_bad_attributes_are_named_at_init(packed_compact, sanitize_build, tmp_path, op_type,
                                          change, message):
    assert_init_refuses(sanitize_build, packed_compact, op_type, change, message, tmp_path)


def test_a_model_bin_without_eps_q_is_refused_by_c(packed_compact, sanitize_build, tmp_path,
                                                    monkeypatch):
    from thinker.resource import writer

    monkeypatch.setattr(writer, "derived_attrs", lambda graph, node: {})
    path = tmp_path / "old.bin"
    path.write_bytes(rewrite(packed_compact, "LayerNormInt", lambda a: None))
    r = subprocess.run([sanitize_build, "--zeros", str(path)], capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.returncode == 1 and "eps_q" in r.stderr and "re-pack" in r.stderr, r.stderr
    with pytest.raises(ThinkerFormatError, match=r"eps_q.*re-pack"):  # the same model rule
        thinker.load(str(path))


# --- the generated tables and the C kernel's bounds --------------------------------------------


def test_checked_in_header_is_the_generators_output():
    with open(HEADER, encoding="utf-8") as f:
        assert f.read() == c_tables.render(), \
            "regenerate: python -m thinker.nonlinear.c_tables > executor/src/nonlinear_tables.h"
    assert c_tables.main(["--check", HEADER]) == 0


def test_check_flags_a_stale_header(tmp_path, capsys):
    stale = tmp_path / "nonlinear_tables.h"
    stale.write_text(c_tables.render().replace("32316", "32317", 1))
    assert c_tables.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert c_tables.main(["--check", str(tmp_path / "missing.h")]) == 1


def test_module_prints_the_header():
    r = subprocess.run([sys.executable, "-m", "thinker.nonlinear.c_tables"], capture_output=True,
                       text=True, check=True)
    assert r.stdout == c_tables.render()


def test_softmax_polynomial_stays_in_the_bounds_the_c_kernel_relies_on():
    """ops/nonlinear.c keeps the numerators in int32 scratch and multiplies in int64 on these
    bounds, for every fraction in [-2**23, 0)."""
    frac = np.arange(-(1 << 23), 0, dtype=np.int64)
    poly = softmax.softmax()["poly_q23"]
    y = np.full_like(frac, poly[0])
    for c in poly[1:]:  # venus / arcs
        y = softmax.wrap32(softmax.round_shift(y * frac, 23)) + c
        assert np.abs(y).max() < 1 << 24
    assert np.array_equal(y, softmax._horner(frac))
    assert y.min() >= 1 << 22 and y.max() < 1 << 23
    y = np.full_like(frac, poly[0])
    for c in poly[1:]:
        t = ((y * frac) << 7) + (c << 30)
        assert np.abs(t).max() < 1 << 54
        y = softmax.round_shift(t, 30)
        assert np.abs(y).max() < 1 << 24
