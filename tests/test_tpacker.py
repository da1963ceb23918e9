"""tpacker: the pipeline, bit-exactness of packed models, device rules, splits, CLI flags."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

import thinker
from onnx_build import model, node, value_info
from packing_models import linear_model, single_conv_model, small_cnn
from thinker.errors import ThinkerDeviceError
from thinker.graph import import_model
from thinker.packer import Packer, PackOptions
from thinker.runtime import DumpHook

TPACKER = os.path.join(os.path.dirname(sys.executable), "tpacker")
RNG = np.random.default_rng(5)


def pack(tmp_path, m: onnx.ModelProto, name="m", **opts):
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, path)
    options = PackOptions(graph_path=str(path), output_path=str(tmp_path / f"{name}.bin"),
                          workspace=str(tmp_path / "workspace"), **opts)
    result = Packer(options).run()
    (tmp_path / f"{name}.bin").write_bytes(result.model_bin)
    return result, str(tmp_path / f"{name}.bin"), str(path)


def random_feed(spec, batch=3):
    shape = (batch, *spec.shape[1:])
    if np.issubdtype(spec.dtype, np.integer):
        info = np.iinfo(spec.dtype)
        return RNG.integers(info.min, info.max + 1, shape).astype(spec.dtype)
    return RNG.normal(size=shape).astype(spec.dtype)


def assert_packed_equals_onnx(bin_path, onnx_path, batch=3, feeds=None):
    """Run both on the same (integer) inputs (random unless given); every tensor both sides
    name is identical."""
    packed, ref = thinker.load(bin_path), thinker.load(onnx_path)
    feeds = feeds or {s.name: random_feed(s, batch) for s in packed.inputs}
    ref_feeds = {}
    for s in ref.inputs:
        if s.name in feeds:
            ref_feeds[s.name] = feeds[s.name]
        else:  # the packed input is the ONNX Quant output: feed exactly those integers
            (pi,) = packed.inputs
            ref_feeds[s.name] = (feeds[pi.name].astype(np.float64) / 2.0**pi.exponent
                                 ).astype(np.float32)
    hp, hr = DumpHook(keep=True), DumpHook(keep=True)
    out = packed.run(feeds, hooks=[hp])
    ref.run(ref_feeds, hooks=[hr])
    for name, value in out.items():
        assert np.array_equal(value, hr.values[name]), name
    common = [k for k in hp.values if k in hr.values]
    assert len(common) >= len(out)
    for k in common:
        assert np.array_equal(hp.values[k], hr.values[k]), k
    return packed


def test_resnet18_packs_for_venus_and_runs_identically(resnet18_path, tmp_path):
    start = time.perf_counter()
    _, bin_path, _ = pack(tmp_path, onnx.load(resnet18_path), "resnet18")
    seconds = time.perf_counter() - start
    assert seconds < 10
    packed = assert_packed_equals_onnx(bin_path, resnet18_path, batch=2)
    assert packed.inputs[0].dtype == np.int8 and packed.inputs[0].exponent == 6
    report = (tmp_path / "workspace" / "resnet18" / "memory_report.txt").read_text()
    assert "share-memory" in report and "655,360" in report
    data = json.loads((tmp_path / "workspace" / "resnet18" / "memory_report.json").read_text())
    sram = data["memory"]["share-memory"]
    assert sram["limit"] == 640 * 1024 and 0 < sram["used"] <= sram["limit"]
    assert sram["used"] >= sram["lower_bound"]
    assert (tmp_path / "workspace" / "resnet18" / "share_memory_arena.svg").read_text() \
        .startswith("<svg")


@pytest.mark.parametrize("platform", ["venus", "arcs", "venusA", "mars", "cortex-m"])
def test_small_cnn_packs_identically_for_every_device(tmp_path, platform):
    result, bin_path, onnx_path = pack(tmp_path, small_cnn(), platform=platform)
    assert result.device.name == platform
    assert_packed_equals_onnx(bin_path, onnx_path)


def test_relu_is_fused_and_edge_quant_removed(tmp_path):
    result, _, _ = pack(tmp_path, small_cnn())
    types = [n.op_type for n in result.graph.nodes]
    assert "Relu" not in types and "Quant" not in types and "Dequant" not in types
    conv1 = next(n for n in result.graph.nodes if n.name == "conv1")
    assert conv1.attrs["fused_clip"] == [0, 2**31 - 1] and conv1.outputs == ["r1"]


def test_keep_quant_keeps_float_io(tmp_path):
    _, bin_path, onnx_path = pack(tmp_path, small_cnn(), keep_quant=True)
    packed = thinker.load(bin_path)
    assert packed.inputs[0].dtype == np.float32 and packed.outputs[0].dtype == np.float32
    x = RNG.normal(size=(2, 3, 16, 16)).astype(np.float32)
    assert np.array_equal(packed.run({"x": x})["y"], thinker.load(onnx_path).run({"x": x})["y"])


def test_memory_plan_never_overlaps_live_tensors_and_meets_the_lower_bound(tmp_path):
    result, _, _ = pack(tmp_path, small_cnn(hw=32, channels=16))
    plan = result.plan
    for kind, arena in plan.arenas.items():
        buffers = [b for b in plan.lifetimes.buffers if b.kind == kind]
        for i, a in enumerate(buffers):  # tensors and kernel scratch alike
            pa = plan.buffer_offset(a)
            for b in buffers[i + 1:]:
                pb = plan.buffer_offset(b)
                if a.overlaps(b):
                    assert pa + a.size <= pb or pb + b.size <= pa
        assert arena.size >= arena.lower_bound
        assert arena.size == min(arena.by_planner.values())
    assert plan.arenas[3].size == plan.arenas[3].lower_bound


def test_a_too_large_conv_is_split_along_outputs_and_stays_exact(tmp_path):
    # 64 x 64 x 3 x 3 = 36,864 B > venus 32 KiB -> two parts
    result, bin_path, onnx_path = pack(tmp_path, single_conv_model(64, 64, 3, 8))
    parts = [n for n in result.graph.nodes if n.op_type == "Conv2dInt"]
    assert len(parts) == 2 and [n.op_type for n in result.graph.nodes][-1] == "Concat"
    assert_packed_equals_onnx(bin_path, onnx_path)


def test_a_large_depthwise_conv_is_split_by_channel_groups(tmp_path):
    # arcs: depthwise weight limit 8 KiB; 1024 channels x 3x3 = 9,216 B -> two parts
    m = single_conv_model(1024, 1024, 3, 4, group=1024, depthwise=True)
    result, bin_path, onnx_path = pack(tmp_path, m, platform="arcs")
    assert sum(n.op_type == "Conv2dInt" for n in result.graph.nodes) == 2
    assert_packed_equals_onnx(bin_path, onnx_path)


def test_grouped_convs_are_split_per_group_on_venus(tmp_path):
    result, bin_path, onnx_path = pack(tmp_path, single_conv_model(8, 8, 3, 6, group=4))
    convs = [n for n in result.graph.nodes if n.op_type == "Conv2dInt"]
    assert len(convs) == 4 and all(n.attrs["group"] == 1 for n in convs)
    assert_packed_equals_onnx(bin_path, onnx_path)


def test_a_conv_with_a_too_large_input_is_computed_in_row_bands(tmp_path):
    # 16 channels x 64 x 80 = 81,920 B > venus 64 KiB input slice
    m = single_conv_model(8, 16, 3, (64, 80), stride=2, pad=(1, 1, 0, 1))
    result, bin_path, onnx_path = pack(tmp_path, m)
    assert sum(n.op_type == "Conv2dInt" for n in result.graph.nodes) >= 2
    assert_packed_equals_onnx(bin_path, onnx_path)


def test_a_too_large_linear_is_split_along_outputs(tmp_path):
    # ALIGN4(200) * ALIGN8(500) = 100,800 B > venus 64 KiB
    result, bin_path, onnx_path = pack(tmp_path, linear_model(200, 500))
    assert sum(n.op_type == "LinearInt" for n in result.graph.nodes) == 2
    assert_packed_equals_onnx(bin_path, onnx_path)


def test_4bit_weights_are_packed_two_per_byte_and_run_identically(tmp_path):
    _, bin_path, onnx_path = pack(tmp_path, linear_model(16, 64, bits=4), platform="arcs")
    from thinker.resource import format as fmt
    from thinker.resource import read_model
    rec = next(r for r in read_model(bin_path).tensors if r.name == "w")
    assert rec.dtype_code == fmt.DTYPE_INT4 and rec.nbytes == 16 * 64 // 2
    assert_packed_equals_onnx(bin_path, onnx_path)


# ---- one test per device rule: the exact message -------------------------------------------


def venus_profile_text() -> str:
    with open(thinker.devices.load_profile("venus").path) as f:
        return f.read()


def rule_error(tmp_path, m, **opts) -> str:
    with pytest.raises(ThinkerDeviceError) as info:
        pack(tmp_path, m, **opts)
    assert not (tmp_path / "m.bin").exists()
    return str(info.value)


def test_rule_kernel_range(tmp_path):
    msg = rule_error(tmp_path, single_conv_model(4, 4, 7, 12), skip=["split_large_kernels"])
    assert "Conv2dInt 'conv': kernel 7x7 is outside venus conv kernel range 1..5; use kernels " \
        "of at most 5 (e.g. stack smaller convs)" in msg


def test_rule_stride(tmp_path):
    msg = rule_error(tmp_path, single_conv_model(4, 4, 3, 12, stride=3))
    assert "Conv2dInt 'conv': stride 3x3 is not supported on venus (allowed [1, 2, 4]); " \
        "change the stride or pool separately" in msg


def test_rule_pads(tmp_path):
    msg = rule_error(tmp_path, single_conv_model(4, 4, 5, 12, pad=5), skip=["pad_excess"])
    assert "Conv2dInt 'conv': pads [5, 5, 5, 5] are outside venus conv pad range 0..4" in msg


def test_rule_dilation(tmp_path):
    msg = rule_error(tmp_path, single_conv_model(4, 4, 3, 12, dilation=2),
                     skip=["dilate_kernels"])
    assert "Conv2dInt 'conv': dilation 2x2 is not supported on venus (allowed [1])" in msg
    # the same conv is fine on venusA (dilations 1, 2, 4, 8)
    pack(tmp_path, single_conv_model(4, 4, 3, 12, dilation=2), name="ok", platform="venusA")


def test_rule_kernel_at_least_stride(tmp_path):
    msg = rule_error(tmp_path, single_conv_model(4, 4, 1, 12, stride=2, pad=0),
                     skip=["stride_slices"])
    assert "Conv2dInt 'conv': kernel 1x1 is smaller than stride 2x2, which venus cannot run" \
        in msg


def test_rule_conv_weight_even_after_splitting(tmp_path):
    # one pair of output channels: 2 x ALIGN8(2048) x 3 x 3 = 36,864 B > 32,768 B
    msg = rule_error(tmp_path, single_conv_model(4, 2048, 3, 2))
    assert "Conv2dInt 'conv': weight 73,728 B exceeds venus conv weight limit 32,768 B even " \
        "after splitting into parts of 2 output channel(s) (36,864 B each); reduce " \
        "in_channels or kernel size" in msg


def test_rule_conv_weight_when_the_split_is_skipped(tmp_path):
    msg = rule_error(tmp_path, single_conv_model(64, 64, 3, 8), skip=["split_conv_outputs"])
    assert "Conv2dInt 'conv': weight 36,864 B exceeds venus conv weight limit 32,768 B" in msg


def test_rule_linear_weight_even_after_splitting(tmp_path):
    msg = rule_error(tmp_path, linear_model(8, 20000))
    assert "LinearInt 'fc': weight 160,000 B exceeds venus linear weight limit 65,536 B even " \
        "with 4 output(s) per part (80,000 B); reduce in_features" in msg


def test_rule_weight_bits(tmp_path):
    msg = rule_error(tmp_path, linear_model(8, 16, bits=4))
    assert "LinearInt 'fc': 4-bit weights are not supported on venus (allowed [8, 16] bits)" \
        in msg


def test_rule_unsupported_op_and_all_problems_at_once(tmp_path):
    m = single_conv_model(4, 4, 7, 12, stride=3)
    prof = tmp_path / "tiny.toml"
    prof.write_text(venus_profile_text()
                    .replace('name = "venus"', 'name = "tiny"')
                    .replace('"Conv2dInt", ', ''))
    msg = rule_error(tmp_path, m, device_file=str(prof))
    assert "Conv2dInt 'conv': op Conv2dInt is not supported on tiny" in msg
    msg = rule_error(tmp_path, m, skip=["split_large_kernels"])
    assert "2 problem(s) for venus" in msg and "kernel 7x7" in msg and "stride 3x3" in msg


def test_rule_activation_dtype(tmp_path):
    m = single_conv_model(4, 4, 3, 8, o_bits=16)
    msg = rule_error(tmp_path, m, platform="arcs")
    assert "tensor 'y': dtype int16 is not supported on arcs (allowed ['int8', 'int32', " \
        "'float32'])" in msg


def test_rule_pool_kernel(tmp_path):
    n = node("MaxPool", ["x"], ["y"], name="bigpool", kernel_shape=[20, 20], strides=[20, 20])
    m = model([n], [value_info("x", np.int8, [1, 4, 40, 40])], ["y"])
    prof = tmp_path / "small_pool.toml"
    prof.write_text(venus_profile_text()
                    .replace('name = "venus"', 'name = "smallpool"')
                    .replace("[pool]", "[pool]\nkernel = [1, 16]"))
    msg = rule_error(tmp_path, m, device_file=str(prof))
    assert "MaxPool 'bigpool': pooling kernel 20x20 is outside smallpool range 1..16; pool in " \
        "several steps" in msg


def test_rule_share_memory_capacity(tmp_path):
    msg = rule_error(tmp_path, small_cnn(hw=64, channels=16), ramsize=32768)
    assert "share-memory arena" in msg and "exceeds venus share-memory 32,768 B (lower bound" \
        in msg and "lower --threshold4" in msg


def test_threshold4_moves_large_activations_to_psram(tmp_path):
    result, bin_path, onnx_path = pack(tmp_path, small_cnn(hw=64, channels=16),
                                       ramsize=32768, threshold4=16384)
    from thinker.resource import format as fmt
    assert result.plan.arenas[fmt.MEM_PSRAM].size > 0
    assert result.plan.arenas[fmt.MEM_SRAM].size <= 32768
    assert_packed_equals_onnx(bin_path, onnx_path)


# ---- CLI -----------------------------------------------------------------------------------


def tpacker(*args, cwd=None):
    return subprocess.run([TPACKER, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_packs_with_stage_lines_and_summary(tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    r = tpacker("-g", "cnn.onnx", "-o", "cnn.bin", "-d", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for stage in ("load", "fuse_activations", "checks", "memory planning", "serialize",
                  "report"):
        assert stage in r.stdout
    assert "share-memory" in r.stdout and "MACs per inference" in r.stdout
    dumps = sorted(os.listdir(tmp_path / "workspace" / "cnn"))
    assert "00_load.onnx" in dumps and "03_fuse_activations.onnx" in dumps
    fused = import_model(onnx.load(tmp_path / "workspace" / "cnn" / "03_fuse_activations.onnx"))
    assert "Relu" not in [n.op_type for n in fused.nodes]
    assert (tmp_path / "cnn.bin").exists()


def test_cli_failure_writes_nothing_and_exits_1(tmp_path):
    # 7 taps at stride 4 cannot be split exactly (a block of 3 taps < stride 4)
    onnx.save(single_conv_model(4, 4, 7, 12, stride=4), tmp_path / "bad.onnx")
    r = tpacker("-g", "bad.onnx", "-o", "bad.bin", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "kernel 7x7 is outside venus conv kernel range" in r.stderr
    assert not (tmp_path / "bad.bin").exists()


def test_cli_config_round_trip(tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    r = tpacker("-g", "cnn.onnx", "-o", "a.bin", "-p", "arcs", "--threshold4", "4096",
                "--export_config", "cfg.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["platform"] == "arcs" and cfg["threshold4"] == 4096
    cfg["output_path"] = "b.bin"
    (tmp_path / "cfg2.json").write_text(json.dumps(cfg))
    r = tpacker("--config_file", "cfg2.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    (tmp_path / "cfg3.json").write_text(json.dumps({"graph_path": "cnn.onnx", "colour": 1}))
    r = tpacker("--config_file", "cfg3.json", cwd=tmp_path)
    assert r.returncode == 1 and "unknown option(s) ['colour']" in r.stderr


def test_cli_cut_subgraph(tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    r = tpacker("-g", "cnn.onnx", "-o", "cut.bin", "--inputs", "r1", "--outputs", "a1",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    packed = thinker.load(tmp_path / "cut.bin")
    assert [s.name for s in packed.inputs] == ["r1"] and [s.name for s in packed.outputs] == \
        ["a1"]
    full = thinker.load(tmp_path / "cnn.onnx")
    x = RNG.normal(size=(1, 3, 16, 16)).astype(np.float32)
    hook = DumpHook(keep=True)
    full.run({"x": x}, hooks=[hook])
    assert np.array_equal(packed.run({"r1": hook.values["r1"]})["a1"], hook.values["a1"])
    r = tpacker("-g", "cnn.onnx", "--outputs", "nope", cwd=tmp_path)
    assert r.returncode == 1 and "the model has no tensor 'nope'" in r.stderr


def test_cli_dynamic_shape_is_executed_or_refused(tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    r = tpacker("-g", "cnn.onnx", "-o", "d.bin", "--dynamic_shape", "x[3]=16:16:1",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: dynamic axis: input 'x' axis 3 takes 16..16" in r.stdout
    from thinker.resource import read_model
    packed = read_model(tmp_path / "d.bin")
    assert [(packed.tensors[t].name, a, lo, hi, f) for t, a, lo, hi, f in
            packed.dynamic_shapes] == [("q", 3, 16, 16, 1)]
    # a length the model cannot take (its pooling and reshape fix the width): refused
    r = tpacker("-g", "cnn.onnx", "-o", "e.bin", "--dynamic_shape", "x=1:8:1", cwd=tmp_path)
    assert r.returncode == 1 and "cannot run at input shapes" in r.stderr
    assert not (tmp_path / "e.bin").exists()
    r = tpacker("-g", "cnn.onnx", "--dynamic_shape", "x=1:8:1:2", cwd=tmp_path)
    assert r.returncode == 1 and "expected NAME=MIN:MAX:FACTOR" in r.stderr


def test_cli_memory_override_places_a_tensor(tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    r = tpacker("-g", "cnn.onnx", "-o", "m.bin", "-m", "a1:psram", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from thinker.resource import format as fmt
    from thinker.resource import read_model
    rec = next(t for t in read_model(tmp_path / "m.bin").tensors if t.name == "a1")
    assert rec.memory == fmt.MEM_PSRAM
    r = tpacker("-g", "cnn.onnx", "-m", "a1:rom", cwd=tmp_path)
    assert r.returncode == 1 and "expected NAME:KIND" in r.stderr


def test_cli_help_lists_the_original_flags():
    out = tpacker("--help").stdout
    for flag in ("--graph_path", "--output_path", "--dump", "--platform", "--ramsize",
                 "--psramsize", "--memory", "--threshold1", "--threshold4", "--inputs",
                 "--outputs", "--dynamic_shape", "--config_file", "--export_config",
                 "--device-file", "--skip", "--keep_quant"):
        assert flag in out


def test_thinker_run_executes_model_bin(tmp_path):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    assert tpacker("-g", "cnn.onnx", "-o", "cnn.bin", cwd=tmp_path).returncode == 0
    x = RNG.integers(-128, 128, (1, 3, 16, 16)).astype(np.int8)
    x.tofile(tmp_path / "x.bin")
    thinker_bin = os.path.join(os.path.dirname(sys.executable), "thinker")
    r = subprocess.run([thinker_bin, "run", "cnn.bin", "x.bin", "y.bin", "--crc"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    expected = thinker.load(tmp_path / "cnn.bin").run({"q": x})["l1"]
    assert np.array_equal(np.fromfile(tmp_path / "y.bin", np.int8).reshape(1, 10), expected)
    assert r.stdout.splitlines()[0].endswith(" int8 1x3x16x16 q")
