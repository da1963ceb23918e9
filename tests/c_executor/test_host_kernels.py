"""The numpy executor's compiled int8 conv/linear/depthwise kernels (executor/host/) against
the numpy kernels it replaces (``THINKER_HOST_KERNELS=0``), which the golden, onnxruntime and
C-executor tests check independently: equal integers on every tensor, on seeded random convs
and linears that cover what the kernel special-cases (row blocks and the flat grid across
samples, 64-pixel interleaving and its tail, strides 1-3 and their phases, dilation,
asymmetric pads (beyond the kernel's span too), channel and output-block tails, depthwise tap
groups, 4/8/16-bit outputs, shift 0, clamps, and accumulators at the int32 bound), and on the
inputs that saturate; the dense ones also on the 256-bit AVX-VNNI kernel (``host_isa``).
Skipped where the CPU has neither AVX-512 VNNI nor AVX-VNNI (the kernels then never run)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from c_harness import numpy_kernels_only
from c_models import Builder
from test_c_gemm_kernels import extreme_feeds
from test_c_m4_random_convs import out_len, random_activation

import thinker
from onnx_build import value_info
from thinker.graph.onnx_import import import_model
from thinker.ops import host_kernels
from thinker.runtime.hooks import DumpHook

MODELS = int(os.environ.get("THINKER_HOST_RANDOM_MODELS", "40"))

pytestmark = pytest.mark.skipif(host_kernels._library() is None,
                                reason="no AVX-512 VNNI or AVX-VNNI on this CPU (or no C compiler)")


def _numpy_executor(model):
    with numpy_kernels_only():
        return thinker.load(import_model(model))


def assert_same_tensors(model, feeds, monkeypatch) -> int:
    """Every tensor equal; returns how many ops ran on the compiled kernel."""
    calls = []
    original = host_kernels.HostConv.__call__
    monkeypatch.setattr(host_kernels.HostConv, "__call__",
                        lambda self, x: calls.append(1) or original(self, x))
    fast, slow = thinker.load(import_model(model)), _numpy_executor(model)
    # a first run on other values: the kernels keep each job's padding and tables
    fast.run({k: np.random.default_rng(99).permutation(v.reshape(-1)).reshape(v.shape)
              for k, v in feeds.items()})
    calls.clear()
    a, b = DumpHook(), DumpHook()
    fast.run(feeds, hooks=[a])
    compiled = len(calls)
    slow.run(feeds, hooks=[b])
    assert len(calls) == compiled  # the numpy executor's kernels ran there
    assert a.lines == b.lines
    return compiled


def random_conv(rng: np.random.Generator, b: Builder, x: str, c: int, h: int, w: int,
                q_in: int) -> str | None:
    kh, kw = [(1, 1), (3, 3), (3, 3), (1, 5), (5, 3), (7, 7)][rng.integers(6)]
    strides = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    dil = [int(rng.integers(1, 4)) if kh > 1 and rng.random() < 0.3 else 1,
           int(rng.integers(1, 4)) if kw > 1 and rng.random() < 0.3 else 1]
    pads = [int(rng.integers(0, 4)) for _ in range(4)]
    if min(out_len(h, pads[0], pads[2], kh, strides[0], dil[0]),
           out_len(w, pads[1], pads[3], kw, strides[1], dil[1])) < 1:
        return None
    attrs: dict = {"strides": strides, "pads": pads, "dilations": dil, **random_activation(rng)}
    bits = rng.random()
    if bits < 0.15:
        attrs["o_bits"] = 16
    elif bits < 0.25:
        attrs["o_bits"] = 4
        attrs.pop("fused_clip", None)  # a random clip may miss the 4-bit range (a model error)
    if rng.random() < 0.15:
        attrs.update(parameter_bits=4, w_lo=-8, w_hi=8)
    else:
        attrs.update(w_lo=-128, w_hi=128)
    if rng.random() < 0.4:
        group = cout = c  # depthwise
    else:
        group, cout = 1, int(rng.choice([1, 3, 8, 16, 17, 24, 33]))
    # q_out = q_in + 7 - shift: shifts 0 (no rounding) up to 12
    q_out = q_in + 7 - int(rng.integers(0, 13))
    return b.conv(x, c, cout, (kh, kw), q_in, q_out, group=group, bias=rng.random() < 0.8,
                  **attrs)


def random_model(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    c = int(rng.choice([1, 2, 3, 4, 5, 8, 13, 16, 30]))
    h, w = int(rng.integers(1, 12)), int(rng.choice([1, 2, 5, 8, 16, 31, 64, 70, 130]))
    b = Builder()
    outs = [o for o in (random_conv(rng, b, "x", c, h, w, 4) for _ in range(3)) if o is not None]
    return b.build([value_info("x", np.int8, [n, c, h, w])], outs or ["x"], {"x": 4})


@pytest.mark.parametrize("seed", range(MODELS))
def test_random_convs_equal_the_numpy_kernels(seed, host_isa, monkeypatch):
    model = random_model(seed)
    exe = thinker.load(import_model(model))
    feeds = extreme_feeds(exe, np.random.default_rng(seed))
    assert assert_same_tensors(model, feeds, monkeypatch) == expected_compiled(model)


def expected_compiled(model) -> int:
    """Every conv here qualifies for the AVX-512 kernels (depthwise ones need the CPU's VBMI
    too); on AVX-VNNI alone a depthwise conv qualifies where a tap group's bytes for 4 lanes
    fit in 16 (conv_avxvnni.c): 3 sw + (min(kw, 4) - 1) dw <= 15."""
    features = host_kernels._library().thinker_host_features()

    def takes(node) -> bool:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        if a["group"] == 1 or features & host_kernels.DEPTHWISE_FEATURE:
            return True
        kw, sw, dw = a["kernel_shape"][-1], a["strides"][-1], a["dilations"][-1]
        fits = 3 * sw + (min(kw, 4) - 1) * dw <= 15
        return bool(features & host_kernels.VNNI256_FEATURE) and fits

    return sum(takes(n) for n in model.graph.node)


def test_int32_bound_and_saturation(host_isa, monkeypatch):
    """Weights of +-127 over K = 3*3*64 with inputs at -128 put |acc| near 128 * 73,152 plus a
    bias at the int32 limit's edge: accepted only while it fits, and exact."""
    b = Builder()
    y1 = b.conv("x", 64, 16, 3, 0, 0, w_lo=127, w_hi=128, pads=[1, 1, 1, 1])
    y2 = b.conv("x", 64, 16, 3, 0, 7, w_lo=-128, w_hi=-127, o_bits=16)
    model = b.build([value_info("x", np.int8, [2, 64, 5, 19])], [y1, y2], {"x": 0})
    exe = thinker.load(import_model(model))
    for fill in (-128, 127):
        feeds = {"x": np.full(exe.inputs[0].shape, fill, np.int8)}
        assert assert_same_tensors(model, feeds, monkeypatch) == 2
    assert assert_same_tensors(model, extreme_feeds(exe, np.random.default_rng(3)),
                               monkeypatch) == 2


@pytest.mark.parametrize("rows", [1, 5, 16, 17, 64, (3, 2, 2)])
def test_linear_rows_equal_the_numpy_kernels(rows, host_isa, monkeypatch):
    b = Builder()
    y = b.op("LinearInt", ["x", b.const(np.random.default_rng(7).integers(
        -128, 128, (37, 72), dtype=np.int8)), b.const(np.arange(37, dtype=np.int32) * 999)],
        scale_x=2.0**4, scale_w=2.0**7, scale_o=2.0**5, o_bits=8, act_type=1)
    y = b.op("LinearInt", [y, b.const(np.random.default_rng(8).integers(
        -128, 128, (5, 37), dtype=np.int8))], scale_x=2.0**5, scale_w=2.0**7, scale_o=2.0**2,
        o_bits=16)
    lead = list(rows) if isinstance(rows, tuple) else [rows]  # [3, 2, 2]: 4-D, 12 rows
    model = b.build([value_info("x", np.int8, [*lead, 72])], [y], {"x": 4})
    exe = thinker.load(import_model(model))
    assert assert_same_tensors(model, extreme_feeds(exe, np.random.default_rng(len(lead))),
                               monkeypatch) == 2


@pytest.mark.parametrize("seed", range(8))
def test_global_average_pool_equals_the_numpy_kernel(seed):
    """Global average pools (the compiled row sums + exact rounding division): divisors that
    are and are not powers of two, shifts both ways, 4/8/16-bit outputs, saturating inputs."""
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 5)), int(rng.integers(1, 40))
    h, w = [(5, 5), (25, 5), (8, 8), (1, 7), (3, 1), (70, 70)][seed % 6]
    bits = [4, 8, 16][seed % 3]
    q_in, q_out = 4, 4 + int(rng.integers(-3, 4))
    b = Builder()
    y = b.op("AvgPool2dInt", ["x"], kernel_shape=[h, w], strides=[h, w], scale_x=2.0**q_in,
             scale_o=2.0**q_out, o_bits=bits)
    model = b.build([value_info("x", np.int8, [n, c, h, w])], [y], {"x": q_in})
    exe = thinker.load(import_model(model))
    for feeds in (extreme_feeds(exe, rng), {"x": np.full((n, c, h, w), -128, np.int8)},
                  {"x": np.full((n, c, h, w), 127, np.int8)}):
        fast, slow = exe.run(feeds), _numpy_executor(model).run(feeds)
        assert all(np.array_equal(fast[k], slow[k]) for k in fast)


def test_what_the_kernels_refuse_runs_on_numpy(monkeypatch):
    """A depthwise tap group wider than one load can gather (taps 11 columns apart), a 32-bit
    output, a rounding mode other than the default: the numpy kernels take them."""
    b = Builder()
    wide = b.conv("x", 4, 4, (1, 5), 4, 3, group=4, dilations=[1, 11], pads=[0, 2, 0, 2])
    out32 = b.conv("x", 4, 3, 3, 4, 3, o_bits=32)
    rounded = b.conv("x", 4, 3, 3, 4, 3, quant_mode="round")
    model = b.build([value_info("x", np.int8, [2, 4, 3, 60])], [wide, out32, rounded], {"x": 4})
    exe = thinker.load(import_model(model))
    assert assert_same_tensors(model, extreme_feeds(exe, np.random.default_rng(5)),
                               monkeypatch) == 0


@pytest.mark.parametrize("shape", [(2, 128, 15, 1), (3, 17, 3, 3), (2, 5, 1, 4), (1, 40, 1, 5),
                                   (2, 16, 8, 8)])
def test_whole_map_depthwise_equals_the_numpy_kernel(shape, monkeypatch):
    """Depthwise kernels as large as their unpadded map (a streaming model's global temporal
    filter): channels as lanes, the last 4-byte group ending at the map's end."""
    _, c, h, w = shape
    b = Builder()
    y = b.conv("x", c, c, (h, w), 4, 3, group=c, w_lo=-128, w_hi=128)
    model = b.build([value_info("x", np.int8, list(shape))], [y], {"x": 4})
    exe = thinker.load(import_model(model))
    assert assert_same_tensors(model, extreme_feeds(exe, np.random.default_rng(c)),
                               monkeypatch) == 1


def chain_model(seed: int):
    """A chain of convs, each reading the previous one's output (the executor runs such
    chains in one C call at the graph's batch): dense and depthwise, 1x1 and 3x3, strides 1
    and 2, activations; for odd seeds then a global pool, a reshape and a linear."""
    rng = np.random.default_rng(seed)
    n, c, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 20)), int(rng.integers(3, 12)), \
        int(rng.integers(3, 40))
    b, x, q = Builder(), "x", 4
    shape = [n, c, h, w]
    for _ in range(int(rng.integers(2, 6))):
        k, stride = int(rng.choice([1, 3])), int(rng.integers(1, 3))
        pad = (k - 1) // 2
        depthwise = rng.random() < 0.4 and c > 1
        cout = c if depthwise else int(rng.choice([3, 8, 16, 24]))
        q_out = q + 7 - int(rng.integers(4, 10))
        x = b.conv(x, c, cout, k, q, q_out, group=c if depthwise else 1, pads=[pad] * 4,
                   strides=[stride, stride], w_lo=-128, w_hi=128, **random_activation(rng))
        c, q = cout, q_out
        h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    if seed % 2 == 0:  # the last conv's whole map is the output
        return b.build([value_info("x", np.int8, shape)], [x], {"x": 4})
    x = b.op("AvgPool2dInt", [x], kernel_shape=[h, w], strides=[h, w], scale_x=2.0**q,
             scale_o=2.0**q, o_bits=8)
    x = b.op("Reshape", [x, b.const(np.array([n, c], np.int64))])
    x = b.op("LinearInt", [x, b.const(rng.integers(-128, 128, (5, c), dtype=np.int8))],
             scale_x=2.0**q, scale_w=2.0**7, scale_o=2.0**(q + 2), o_bits=8)
    return b.build([value_info("x", np.int8, shape)], [x], {"x": 4})


@pytest.mark.parametrize("seed", range(12))
def test_chains_equal_the_numpy_kernels(seed, host_isa, monkeypatch):
    """Runs without hooks go through HostChain (one C call for the chain): at the graph's
    batch, at three times it (a chain built for that batch), and, where a batch's
    intermediates would be too large for a chain, step by step; all equal the numpy kernels."""
    from thinker.runtime import host_chain

    model = chain_model(seed)
    fast, slow = thinker.load(import_model(model)), _numpy_executor(model)
    chains = [e[0] for e in fast._fast if isinstance(e[0], host_chain.HostChain)]
    if not chains:  # on AVX-VNNI depthwise steps stay on numpy: maybe no two compiled in a row
        assert host_isa == "avxvnni"
        feeds = extreme_feeds(fast, np.random.default_rng(seed))
        got, want = fast.run(feeds), slow.run(feeds)
        assert all(np.array_equal(got[k], want[k]) for k in want)
        return
    # natively the whole model is one chain of compiled kernels
    assert host_isa == "avxvnni" or len(chains) == 1
    builds = []
    original = host_chain.HostChain._build
    monkeypatch.setattr(host_chain.HostChain, "_build",
                        lambda self, scale=1: builds.append(scale) or original(self, scale))
    spec = fast.inputs[0]
    n = spec.shape[0]
    for batch, limit in ((n, None), (n, None), (3 * n, None), (5 * n, 0)):
        if limit is not None:  # no chain at this batch: the steps one by one
            monkeypatch.setattr(host_chain, "SCALED_BYTES", limit)
        feeds = extreme_feeds(fast, np.random.default_rng(seed + batch)) if batch == n else \
            {"x": np.random.default_rng(batch).integers(-128, 128, (batch, *spec.shape[1:]),
                                                        dtype=np.int8)}
        got, want = fast.run(feeds), slow.run(feeds)
        assert all(np.array_equal(got[k], want[k]) for k in want)
    # built once per batch (the second run reused the first's jobs)
    assert builds == [1] * len(chains) + [3] * len(chains) + [5] * len(chains)


def test_outputs_held_by_the_caller_are_never_recycled():
    """Kernel outputs come from per-thread recycled buffers: a result the caller still holds
    (or a view of it) keeps its values through later runs."""
    model = chain_model(0)
    exe = thinker.load(import_model(model))
    spec = exe.inputs[0]
    rng = np.random.default_rng(7)
    held, copies = [], []
    for _ in range(6):
        x = rng.integers(-128, 128, spec.shape, dtype=np.int8)
        y = next(iter(exe.run({"x": x}).values()))
        held.append(y[..., :2] if len(held) % 2 else y)  # some only through a view
        copies.append(np.array(held[-1]))
    assert all(np.array_equal(h, c) for h, c in zip(held, copies, strict=True))
    assert len({id(np.asarray(h).base) for h in held if h.base is not None}) == len(held)


def test_recycled_outputs_stay_within_their_byte_budget(monkeypatch):
    """A thread keeps at most KEEP_BYTES of recycled outputs however many batch sizes it sees
    (the sizes used least recently go first)."""
    monkeypatch.setattr(host_kernels, "KEEP_BYTES", 1 << 14)  # unbounded, it would keep 129 KB
    model = chain_model(2)
    exe = thinker.load(import_model(model))
    shape = exe.inputs[0].shape
    for batch in range(1, 40):
        exe.run({"x": np.zeros((batch, *shape[1:]), np.int8)})
    kept = host_kernels._RECYCLED.__dict__["buffers"]
    total = sum(b.nbytes for buffers in kept.values() for b in buffers)
    largest = max(b.nbytes for buffers in kept.values() for b in buffers)
    assert total <= max(1 << 14, largest)
