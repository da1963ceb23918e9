"""Issue 12: the memory plan in model.bin is everything the C executor needs.

For every zoo model (linger QAT -> ONNX -> tpacker, as tests/test_zoo_pipeline.py builds them):
the C executor asks for exactly the arenas tpacker planned (no separate SCRATCH buffer), each
op's kernel scratch need equals its planned region (thinker.memory.scratch is the C prepare's
twin), and running the model touches no byte outside the planned buffers (canaries around each
buffer, and an ASan build on exactly sized buffers). Plus the validator's alias rules (sibling
reshapes) and the reports.
"""

import ctypes
import os
import sys

import numpy as np
import onnx
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "linger"))
sys.path.insert(0, os.path.join(HERE, "c_executor"))

pytest.importorskip("torch")

from c_harness import EXECUTOR, make, numpy_reference, run_test_thinker, with_gemm_tiles  # noqa: E402
from linger_flow import run_zoo_flow  # noqa: E402

import thinker  # noqa: E402
from linger import zoo  # noqa: E402
from onnx_build import model as onnx_model  # noqa: E402
from onnx_build import node, value_info  # noqa: E402
from test_tpacker import pack  # noqa: E402
from thinker.memory.report import packed_arena_usage, usage  # noqa: E402
from thinker.memory.scratch import (  # noqa: E402
    GROWN_TILE_BYTES,
    SCRATCH_FREE_PATH,
    gemm_scratch,
    gemm_shape,
    gemm_tile_in,
    op_scratch,
)
from thinker.resource import format as fmt  # noqa: E402
from thinker.resource.reader import parse_model  # noqa: E402
from thinker.resource.writer import PackInput, Placement, write_model  # noqa: E402

SIZES = {"mobilenet_v1_025": {"input_size": 32}}
STATE, SCRATCH = 8, 9  # THINKER_MEM_STATE / THINKER_MEM_SCRATCH
CANARY = 0xA5
MARGIN = 64


@pytest.fixture(scope="module")
def zoo_packed(tmp_path_factory):
    """name -> (PackResult, model.bin path) for every zoo model, packed for cortex-m."""
    out = {}
    for name in zoo.NAMES:
        folder = tmp_path_factory.mktemp(name)
        run_zoo_flow(name, 8, str(folder), **SIZES.get(name, {}))
        result, bin_path, _ = pack(folder, onnx.load(folder / "model.onnx"), name,
                                   platform="cortex-m")
        out[name] = (result, bin_path)
    return out


def fast_onnx(zoo_packed, name: str) -> str:
    """The exported ONNX model a zoo entry was packed from."""
    return os.path.join(os.path.dirname(zoo_packed[name][1]), "model.onnx")


def _lib():
    from thinker.runtime import c_backend

    try:
        return c_backend, c_backend._library()
    except thinker.ThinkerError as exc:  # no C compiler on this machine
        pytest.skip(f"C executor unavailable: {exc}")


def _aligned_copy(data: bytes) -> tuple[np.ndarray, int]:
    raw = np.zeros(len(data) + 16, dtype=np.uint8)
    start = (-raw.ctypes.data) % 16
    raw[start:start + len(data)] = np.frombuffer(data, dtype=np.uint8)
    return raw, raw.ctypes.data + start


def c_memory_plan(data: bytes) -> tuple[int, str, dict[int, int]]:
    """(status, message, {kind: size}) of thinker_get_memory_plan on model.bin bytes."""
    cb, lib = _lib()
    _raw, address = _aligned_copy(data)  # kept alive while the C code reads it
    plan, message = cb._Plan(), cb._Message()
    status = lib.thinker_get_memory_plan(address, len(data), ctypes.byref(plan),
                                         ctypes.byref(message))
    sizes = {r.kind: r.size for r in plan.request[:plan.count]}
    return status, message.text.decode(errors="replace"), sizes


@pytest.mark.parametrize("name", zoo.NAMES)
def test_the_c_executor_asks_for_exactly_the_plan(name, zoo_packed):
    result, _ = zoo_packed[name]
    status, message, asked = c_memory_plan(result.model_bin)
    assert status == 0, message
    planned = {kind: arena.size for kind, arena in result.plan.arenas.items()}
    assert SCRATCH not in asked  # kernel scratch lives inside the planned arenas
    assert {k: v for k, v in asked.items() if k != STATE} == planned
    # the reported total (what tpacker prints and writes to memory_report.json) is that sum
    reported = usage(result.report)
    assert sum(reported[fmt.MEMORY_KIND_NAMES[k]]["used"] for k in planned) == \
        sum(planned.values())
    # every op whose C kernel needs scratch has its planned region (else the plan would fail)
    for op, p in result.plan.scratch.items():
        assert p.size > 0 and p.kind in planned and p.offset + p.size <= planned[p.kind], op


@pytest.mark.parametrize("name", zoo.NAMES)
def test_each_kernel_needs_exactly_its_planned_scratch(name, zoo_packed):
    """The C prepare's need equals thinker.memory.scratch: with one byte less a conv / linear
    takes its scratch-free path (both readers accept), any other op is refused, naming the op
    and both sizes (both readers refuse)."""
    result, _ = zoo_packed[name]
    graph = result.graph
    for op, p in sorted(result.plan.scratch.items()):
        smaller = dict(result.plan.scratch)
        smaller[op] = Placement(p.kind, p.offset, p.size - 1)
        data = write_model(graph, PackInput(result.device.id, result.plan.placements,
                                            result.plan.arena_sizes(), scratch=smaller))
        status, message, _ = c_memory_plan(data)
        node_ = graph.nodes[op]
        if node_.op_type in SCRATCH_FREE_PATH:
            assert status == 0, (node_.name, message)
            parse_model(data, "smaller.bin")
        else:
            assert status == 10, (node_.name, message)  # THINKER_ERR_MEMORY
            assert node_.name in message and f"{p.size} B" in message
            with pytest.raises(thinker.ThinkerFormatError, match="scratch"):
                parse_model(data, "smaller.bin")


@pytest.mark.parametrize("name", ["resnet8", "ds_cnn", "fc_autoencoder", "mobilenet_v2_se",
                                  "crnn_kws"])
def test_without_their_scratch_regions_convs_and_linears_run_scratch_free(name, zoo_packed,
                                                                           tmp_path):
    """Dropping every conv / linear region (budget 0): both readers accept, the C kernels take
    their scratch-free paths and compute numpy's integers."""
    result, _ = zoo_packed[name]
    graph = result.graph
    kept = {op: p for op, p in result.plan.scratch.items()
            if graph.nodes[op].op_type not in SCRATCH_FREE_PATH}
    data = write_model(graph, PackInput(result.device.id, result.plan.placements,
                                        result.plan.arena_sizes(), scratch=kept))
    path = tmp_path / "free.bin"
    path.write_bytes(data)
    _assert_c_equals_numpy(str(path), np.random.default_rng(4))
    _run_with_canaries(data, np.random.default_rng(4))


@pytest.mark.parametrize("name,grows", [("resnet8", True), ("ds_cnn", True),
                                        ("mobilenet_v1_025", False)])
def test_gemm_regions_grow_only_into_free_bytes(name, grows, zoo_packed):
    """tpacker moves a tiled-GEMM region (conv / linear) to the largest run of arena bytes no
    buffer uses during its op and grows it there past its least need, up to GROWN_TILE_BYTES,
    never beyond the arena (the arena keeps its size); every other region is exactly its need;
    both readers accept the plan. (Convs at the arena's peak keep their least tile: the small
    MobileNet's one conv whose tile does not already hold every row is there.)"""
    result, _ = zoo_packed[name]
    graph, plan = result.graph, result.plan
    grown = full = gemms = 0
    for op, p in plan.scratch.items():
        node_ = graph.nodes[op]
        shape = gemm_shape(graph, node_)
        least = op_scratch(graph, node_)
        if shape is None:
            assert p.size == least, node_.name
            continue
        assert least <= p.size <= max(least, GROWN_TILE_BYTES), node_.name
        assert p.offset + p.size <= plan.arenas[p.kind].size
        # the region holds whole tile rows: exactly what the C kernel takes from it
        assert p.size == gemm_scratch(*shape, gemm_tile_in(*shape, p.size))
        grown += p.size > least
        full += gemm_tile_in(*shape, p.size) == (shape[1] + 3) & ~3
        gemms += 1
    assert (grown > 0) == grows and full < gemms
    status, message, _ = c_memory_plan(result.model_bin)
    assert status == 0, message
    parse_model(result.model_bin, "model.bin")


@pytest.mark.parametrize("name", ["resnet8", "ds_cnn"])
def test_any_tile_size_gives_the_same_integers(name, zoo_packed, tmp_path):
    """A tiled GEMM computes numpy's integers whatever rows its region holds: the least tile,
    one block of 4 rows more, and every patch row at once (regions placed after the arena)."""
    result, _ = zoo_packed[name]
    for extra_rows in (0, 4, None):
        def tile_rows(k: int, rows: int, least: int, extra: int | None = extra_rows) -> int:
            full = (rows + 3) & ~3
            return full if extra is None else min(least + extra, full)

        data, tiles = with_gemm_tiles(result, tile_rows)
        assert tiles
        path = tmp_path / f"tiles_{extra_rows}.bin"
        path.write_bytes(data)
        _assert_c_equals_numpy(str(path), np.random.default_rng(7))


def _assert_c_equals_numpy(bin_path: str, rng: np.random.Generator) -> None:
    exe, c_exe = thinker.load(bin_path), thinker.load(bin_path, backend="c")
    feeds = {}
    for s in exe.inputs:
        if s.exponent is None and np.issubdtype(s.dtype, np.integer):  # token ids
            feeds[s.name] = rng.integers(0, 3, s.shape).astype(s.dtype)
        elif np.issubdtype(s.dtype, np.integer):
            info = np.iinfo(s.dtype)
            feeds[s.name] = rng.integers(info.min, info.max + 1, s.shape).astype(s.dtype)
        else:
            feeds[s.name] = rng.standard_normal(s.shape).astype(s.dtype)
    want, got = exe.run(feeds), c_exe.run(feeds)
    for key, value in want.items():
        assert np.array_equal(got[key], value), key


@pytest.mark.parametrize("name", ["resnet8", "ds_cnn", "fc_autoencoder", "lstm_vad"])
def test_scratch_policy_fit_plans_the_activations_lower_bound(name, zoo_packed, tmp_path):
    """--scratch fit: a conv / linear whose scratch would raise the peak gets none (and runs
    scratch-free): the arena is the lower bound of everything else (activations, recurrent
    ops' scratch), the C executor asks for exactly it and computes numpy's integers."""
    from thinker.memory.lifetimes import lower_bound

    fast, _ = zoo_packed[name]
    result, bin_path, _ = pack(tmp_path, onnx.load(fast_onnx(zoo_packed, name)), name,
                               platform="cortex-m", scratch="fit")
    sram = result.plan.arenas[fmt.MEM_SRAM]
    # everything but the scratch of kernels with a scratch-free path (recurrent ops keep theirs)
    others = [b for b in result.plan.lifetimes.buffers if b.kind == fmt.MEM_SRAM and (
        b.scratch_op < 0 or result.graph.nodes[b.scratch_op].op_type not in SCRATCH_FREE_PATH)]
    assert sram.size == sram.lower_bound == lower_bound(others, len(result.graph.nodes))
    assert sram.size <= fast.plan.arenas[fmt.MEM_SRAM].size
    assert all(result.graph.nodes[i].op_type in SCRATCH_FREE_PATH
               for i in result.plan.scratch_free)
    assert not set(result.plan.scratch_free) & set(result.plan.scratch)
    status, message, asked = c_memory_plan(result.model_bin)
    assert status == 0, message
    assert asked[fmt.MEM_SRAM] == sram.size
    _assert_c_equals_numpy(bin_path, np.random.default_rng(9))
    _run_with_canaries(result.model_bin, np.random.default_rng(9))


def _run_with_canaries(data: bytes, rng: np.random.Generator) -> None:
    cb, lib = _lib()
    raw, address = _aligned_copy(data)
    plan, message = cb._Plan(), cb._Message()
    assert lib.thinker_get_memory_plan(address, len(data), ctypes.byref(plan),
                                       ctypes.byref(message)) == 0, message.text
    memories = (cb._Memory * cb.MAX_MEMORY)()
    blocks = []
    for i, r in enumerate(plan.request[:plan.count]):
        align = max(int(r.alignment), 16)
        block = np.full(r.size + 2 * MARGIN + align, CANARY, dtype=np.uint8)
        start = MARGIN + (-(block.ctypes.data + MARGIN)) % align
        blocks.append((block, start, r.size))
        memories[i] = cb._Memory(r.kind, block.ctypes.data + start, r.size)
    model, exe = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.thinker_model_init(ctypes.byref(model), address, len(data), memories,
                                  plan.count, ctypes.byref(message)) == 0, message.text
    assert lib.thinker_executor_create(ctypes.byref(exe), model) == 0
    n_in = ctypes.c_uint32()
    lib.thinker_get_input_count(exe, ctypes.byref(n_in))
    feeds = []
    for i in range(n_in.value):
        info = cb._TensorInfo()
        lib.thinker_get_input_info(exe, i, ctypes.byref(info))
        value = rng.integers(0, 256, info.nbytes, dtype=np.uint8)
        if info.dtype == 6:  # float32 inputs: finite values
            value = rng.standard_normal(info.nbytes // 4).astype(np.float32).view(np.uint8)
        elif not info.has_exponent:  # token ids: valid indices
            dtype = cb.NUMPY_DTYPES[info.dtype]
            count = info.nbytes // np.dtype(dtype).itemsize
            value = rng.integers(0, 3, count).astype(dtype).view(np.uint8)
        feeds.append(value)
        assert lib.thinker_set_input(exe, i, value.ctypes.data, info.nbytes) == 0
    assert lib.thinker_forward(exe) == 0, lib.thinker_executor_message(exe)
    for block, start, size in blocks:
        assert np.all(block[:start] == CANARY), "bytes before a planned buffer were written"
        assert np.all(block[start + size:] == CANARY), "bytes after a planned buffer were written"
    assert bytes(raw[(address - raw.ctypes.data):][:len(data)]) == data  # model.bin read-only
    lib.thinker_executor_release(exe)
    lib.thinker_model_release(model)


@pytest.mark.parametrize("name", zoo.NAMES)
def test_the_c_executor_touches_no_byte_outside_the_plan(name, zoo_packed):
    result, _ = zoo_packed[name]
    _run_with_canaries(result.model_bin, np.random.default_rng(12))


def test_zoo_models_are_clean_under_asan_on_exactly_sized_buffers(zoo_packed, tmp_path):
    """test_thinker (ASan + UBSan build) allocates each planned buffer with exactly its size,
    so any byte read or written beyond the plan aborts; outputs equal numpy's."""
    make("sanitize")
    binary = os.path.join(EXECUTOR, "build", "sanitize", "test_thinker")
    rng = np.random.default_rng(3)
    for name, (_, bin_path) in zoo_packed.items():
        exe = thinker.load(bin_path)
        feeds = {}
        for s in exe.inputs:
            if np.issubdtype(s.dtype, np.integer):
                info = np.iinfo(s.dtype)
                feeds[s.name] = rng.integers(info.min, info.max + 1, s.shape).astype(s.dtype)
            else:
                feeds[s.name] = rng.standard_normal(s.shape).astype(s.dtype)
        if name in ("transformer_encoder", "conformer_block") and exe.inputs[0].exponent is None:
            feeds = {exe.inputs[0].name: zoo.example_input(name, 1).numpy()}
        ref = numpy_reference(bin_path, feeds)
        r, outputs = run_test_thinker(binary, bin_path, feeds, exe.outputs, str(tmp_path))
        assert r.returncode == 0, (name, r.stderr[-2000:])
        assert "ERROR: AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr
        assert r.stdout.splitlines() == ref.lines, name
        for spec in exe.outputs:
            assert np.array_equal(outputs[spec.name], ref.outputs[spec.name]), name


@pytest.mark.parametrize("name", ["resnet8", "lstm_vad"])
def test_reports_show_planned_lower_bound_peak_op_and_breakdown(name, zoo_packed):
    result, bin_path = zoo_packed[name]
    sram = usage(result.report)["share-memory"]
    assert sram["lower_bound"] <= sram["used"]
    assert sram["peak_op"] in {n.name for n in result.graph.nodes} | {"graph inputs",
                                                                       "graph outputs"}
    assert sum(sram["at_peak"].values()) == sram["lower_bound"]
    assert set(sram["at_peak"]) == {"activations", "scratch", "state", "constants"}
    # thinker report recomputes the same numbers from the model.bin records alone
    packed = parse_model(result.model_bin, bin_path)
    again = packed_arena_usage(packed)[fmt.MEM_SRAM]
    assert (again["planned"], again["lower_bound"], again["at_peak"]) == \
        (sram["used"], sram["lower_bound"], sram["at_peak"])
    from thinker.tools.inspect import describe_model

    text = describe_model(result.model_bin, bin_path)
    assert f"lower bound {sram['lower_bound']:,} B" in text and "scratch" in text


def _sibling_reshapes_model() -> onnx.ModelProto:
    """x -> Relu -> a; a -> Reshape r1 -> Relu; a -> Reshape r2 -> Relu: r1 and r2 are two
    views of a's bytes, both live while the first Relu runs."""
    nodes = [node("Relu", ["x"], ["a"], "relu0"),
             node("Reshape", ["a", "shape"], ["r1"], "reshape1"),
             node("Reshape", ["a", "shape"], ["r2"], "reshape2"),
             node("Relu", ["r1"], ["y1"], "relu1"),
             node("Relu", ["r2"], ["y2"], "relu2")]
    inputs = [value_info("x", np.int8, [1, 4, 4, 4])]
    outputs = [value_info("y1", np.int8, [1, 64]), value_info("y2", np.int8, [1, 64])]
    return onnx_model(nodes, inputs, outputs, {"shape": np.array([1, 64], dtype=np.int64)})


def test_two_reshapes_of_one_tensor_are_accepted_by_both_readers(tmp_path):
    """Regression: sibling aliases (two Reshapes of the same tensor) share its bytes and were
    refused as 'share share-memory bytes while both are live'."""
    result, bin_path, _ = pack(tmp_path, _sibling_reshapes_model(), "siblings",
                               platform="cortex-m")
    packed = parse_model(result.model_bin, bin_path)
    ids = {r.name: i for i, r in enumerate(packed.tensors)}
    r1, r2 = packed.tensors[ids["r1"]], packed.tensors[ids["r2"]]
    assert (r1.memory, r1.offset) == (r2.memory, r2.offset)  # the same bytes
    status, message, _ = c_memory_plan(result.model_bin)
    assert status == 0, message
    x = np.arange(-32, 32, dtype=np.int8).reshape(1, 4, 4, 4)
    c_out = thinker.load(bin_path, backend="c").run({packed.tensors[packed.inputs[0]].name: x})
    np_out = thinker.load(bin_path).run({packed.tensors[packed.inputs[0]].name: x})
    for key, value in np_out.items():
        assert np.array_equal(c_out[key], value)


def test_a_scratch_region_over_a_live_tensor_is_refused_by_both_readers(zoo_packed):
    result, _ = zoo_packed["resnet8"]
    op, p = next(iter(sorted(result.plan.scratch.items())))
    node_ = result.graph.nodes[op]
    live = result.plan.placements[node_.inputs[0]]  # the op's own input is live at its step
    bad = dict(result.plan.scratch)
    bad[op] = Placement(live.kind, live.offset, p.size)
    data = write_model(result.graph, PackInput(result.device.id, result.plan.placements,
                                               result.plan.arena_sizes(), scratch=bad))
    with pytest.raises(thinker.ThinkerFormatError, match="scratch"):
        parse_model(data, "bad.bin")
    status, message, _ = c_memory_plan(data)
    assert status == 7 and "scratch" in message  # THINKER_ERR_FORMAT


def _in_place_model() -> onnx.ModelProto:
    """A chain of element-wise ops, each over an input that dies there: Requant, iqSigmoid,
    iqTanh, Relu, Clip, iqMul (x * x), iqAdd with a broadcast operand, PRelu, iqSub."""
    from c_models import Builder

    b = Builder()
    r = b.op("Requant", ["a"], scale_x=16.0, scale_o=8.0, o_bits=8)
    s = b.op("iqSigmoid", [r], scale_x=8.0, scale_o=128.0, o_bits=8, platform="venus")
    t = b.op("iqTanh", [s], scale_x=128.0, scale_o=128.0, o_bits=8, platform="venus")
    u = b.op("Relu", [t])
    v = b.op("Clip", [u, b.const(np.int8(3)), b.const(np.int8(100))])
    w = b.op("iqMul", [v, v], scale_x=128.0, scale_y=128.0, scale_o=64.0, o_bits=8)
    bias = b.const(np.arange(-8, 8, dtype=np.int8).reshape(1, 1, 1, 16))
    x = b.op("iqAdd", [w, bias], scale_x=64.0, scale_y=16.0, scale_o=32.0, o_bits=8)
    slope = b.const(np.array([3, -5, 7, 1], dtype=np.int8).reshape(1, 4, 1, 1))
    y = b.op("PRelu", [x, slope], scale_x=32.0, scale_w=8.0, scale_o=32.0, o_bits=8)
    z = b.op("iqSub", [y, "a"], scale_x=32.0, scale_y=16.0, scale_o=16.0, o_bits=8)
    return b.build([value_info("a", np.int8, [1, 4, 6, 16])], [z], {"a": 4})


def test_element_wise_ops_run_in_place_bit_exactly(tmp_path):
    """Each element-wise op writes over its dying input: one buffer for the whole chain (the
    arena is two tensors: the pinned graph input and the chain), accepted by both readers, and
    the C executor computes numpy's integers."""
    result, bin_path, _ = pack(tmp_path, _in_place_model(), "inplace", platform="cortex-m")
    ops = [n.op_type for n in result.graph.nodes]
    assert ops == ["Requant", "iqSigmoid", "iqTanh", "Relu", "Clip", "iqMul", "iqAdd", "PRelu",
                   "iqSub"]
    offsets = {result.plan.placements[n.outputs[0]].offset for n in result.graph.nodes}
    assert len(offsets) == 1  # every output over the previous one
    sram = result.plan.arenas[fmt.MEM_SRAM]
    assert sram.size == sram.lower_bound == 2 * 384
    status, message, _ = c_memory_plan(result.model_bin)
    assert status == 0, message
    _run_with_canaries(result.model_bin, np.random.default_rng(5))
    rng = np.random.default_rng(6)
    for _ in range(3):
        feeds = {"a": rng.integers(-128, 128, (1, 4, 6, 16)).astype(np.int8)}
        want = thinker.load(bin_path).run(feeds)
        got = thinker.load(bin_path, backend="c").run(feeds)
        for key, value in want.items():
            assert np.array_equal(got[key], value)


def test_the_in_place_and_alias_op_lists_agree_everywhere():
    """The planner, the Python rules and executor/src/rules.c name the same in-place ops."""
    import re

    from thinker.memory import lifetimes
    from thinker.resource import rules

    with open(os.path.join(EXECUTOR, "src", "rules.c"), encoding="utf-8") as f:
        source = f.read()
    body = source[source.index("static int is_in_place("):]
    body = body[:body.index("}")]
    assert set(re.findall(r'"(\w+)"', body)) == set(rules.IN_PLACE_OPS) == \
        set(lifetimes.IN_PLACE_OPS)
    body = source[source.index("static int is_aliasing("):]
    body = body[:body.index("}")]
    assert set(re.findall(r'"(\w+)"', body)) == set(rules.ALIASING_OPS)


def _add_act_model() -> onnx.ModelProto:
    """iqAdd + Relu, iqAdd + Clip, iqSub + Clip, iqMul + Relu, on saturating scales."""
    from c_models import Builder

    b = Builder()
    s = b.op("iqAdd", ["a", "c"], scale_x=16.0, scale_y=4.0, scale_o=32.0, o_bits=8)
    s = b.op("Relu", [s])
    t = b.op("iqAdd", [s, "c"], scale_x=32.0, scale_y=4.0, scale_o=8.0, o_bits=8)
    t = b.op("Clip", [t, b.const(np.int8(-40)), b.const(np.int8(50))])
    u = b.op("iqSub", [t, "a"], scale_x=8.0, scale_y=16.0, scale_o=16.0, o_bits=16)
    u = b.op("Clip", [u, b.const(np.int16(-300)), b.const(np.int16(2000))])
    v = b.op("iqMul", [u, "c"], scale_x=16.0, scale_y=4.0, scale_o=8.0, o_bits=8)
    v = b.op("Relu", [v])
    return b.build([value_info("a", np.int8, [1, 4, 6, 16]),
                    value_info("c", np.int8, [1, 4, 6, 16])], [v], {"a": 4, "c": 2})


def test_iqadd_relu_clip_fuse_and_stay_bit_exact(tmp_path):
    result, bin_path, onnx_path = pack(tmp_path, _add_act_model(), "addact",
                                       platform="cortex-m")
    ops = [(n.op_type, n.attrs.get("fused_clip")) for n in result.graph.nodes]
    assert ops == [("iqAdd", [0, 2**31 - 1]), ("iqAdd", [-40, 50]), ("iqSub", [-300, 2000]),
                   ("iqMul", [0, 2**31 - 1])]
    rng = np.random.default_rng(8)
    onnx_exe, packed, c_exe = (thinker.load(onnx_path), thinker.load(bin_path),
                               thinker.load(bin_path, backend="c"))
    for _ in range(4):
        feeds = {k: rng.integers(-128, 128, (1, 4, 6, 16)).astype(np.int8) for k in "ac"}
        ref = onnx_exe.run(feeds)
        for got in (packed.run(feeds), c_exe.run(feeds)):
            assert set(got) == set(ref)
            for key, value in ref.items():
                assert np.array_equal(got[key], value), key


def test_packed_resnet8_keeps_no_relu_after_its_residual_adds(zoo_packed):
    result, _ = zoo_packed["resnet8"]
    producers = result.graph.producers()
    for n in result.graph.nodes:
        if n.op_type in ("Relu", "Clip"):
            assert producers[n.inputs[0]].op_type != "iqAdd", n.name
    adds = [n for n in result.graph.nodes if n.op_type == "iqAdd"]
    assert adds and all(n.attrs.get("fused_clip") for n in adds)


def _int4_model() -> onnx.ModelProto:
    from c_models import Builder

    b = Builder()
    y = b.conv("x", 16, 32, 3, 4, 4, parameter_bits=4, w_lo=-8, w_hi=8, pads=[1, 1, 1, 1])
    y = b.conv(y, 32, 32, 3, 4, 4, pads=[1, 1, 1, 1])  # 8-bit weights, for comparison
    return b.build([value_info("x", np.int8, [1, 16, 8, 8])], [y], {"x": 4})


def test_4bit_weights_take_half_in_the_psram_plan(tmp_path):
    """Weights copied to PSRAM at init (arcs' default) are reserved packed, two per byte."""
    result, bin_path, _ = pack(tmp_path, _int4_model(), "int4", platform="arcs")
    convs = [n for n in result.graph.nodes if n.op_type == "Conv2dInt"]
    w4, w8 = convs[0].inputs[1], convs[1].inputs[1]
    p4, p8 = result.plan.placements[w4], result.plan.placements[w8]
    assert (p4.kind, p8.kind) == (fmt.MEM_PSRAM, fmt.MEM_PSRAM)
    n4, n8 = (int(np.prod(result.graph.tensors[w].shape)) for w in (w4, w8))
    align = result.plan.alignment
    assert p4.size == fmt.align_up((n4 + 1) // 2, align) and p8.size == fmt.align_up(n8, align)
    packed = parse_model(result.model_bin, bin_path)
    record = next(r for r in packed.tensors if r.name == w4)
    assert record.dtype_code == fmt.DTYPE_INT4 and record.nbytes == 32 * 16 * 9 // 2
    x = np.random.default_rng(2).integers(-128, 128, (1, 16, 8, 8)).astype(np.int8)
    want = thinker.load(bin_path).run({"x": x})
    got = thinker.load(bin_path, backend="c").run({"x": x})
    for key, value in want.items():
        assert np.array_equal(got[key], value)


@pytest.mark.parametrize("model", ["conv", "conv_variants", "int16", "venus_splits"])
def test_scratch_free_conv_and_linear_paths_on_every_geometry(model, tmp_path):
    """The C executor's c_models (pads, strides, dilations, groups, depthwise, 1-D, int4 and
    int16 weights, split convs) with every conv / linear region dropped: the int8 ones take
    the scratch-free direct loops, the others the generic path; C == numpy."""
    from c_models import MODELS

    build, platform, keep_quant = MODELS[model]
    result, _, _ = pack(tmp_path, build(), model, platform=platform, keep_quant=keep_quant)
    graph = result.graph
    kept = {op: p for op, p in result.plan.scratch.items()
            if graph.nodes[op].op_type not in SCRATCH_FREE_PATH}
    assert len(kept) < len(result.plan.scratch)  # some conv / linear had a region
    data = write_model(graph, PackInput(result.device.id, result.plan.placements,
                                        result.plan.arena_sizes(), scratch=kept))
    path = tmp_path / "free.bin"
    path.write_bytes(data)
    for seed in range(3):
        _assert_c_equals_numpy(str(path), np.random.default_rng(seed))
    _run_with_canaries(data, np.random.default_rng(1))
    make("sanitize")  # and under ASan + UBSan on exactly sized buffers
    exe = thinker.load(str(path))
    rng = np.random.default_rng(5)
    feeds = {s.name: rng.integers(np.iinfo(s.dtype).min, np.iinfo(s.dtype).max + 1,
                                  s.shape).astype(s.dtype) for s in exe.inputs}
    ref = numpy_reference(str(path), feeds)
    r, outputs = run_test_thinker(os.path.join(EXECUTOR, "build", "sanitize", "test_thinker"),
                                  str(path), feeds, exe.outputs, str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ref.lines
    for spec in exe.outputs:
        assert np.array_equal(outputs[spec.name], ref.outputs[spec.name])
