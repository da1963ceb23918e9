"""The model rules (thinker.resource.rules, executor/src/rules.c) hold in all three places:
tpacker refuses a model that breaks one with a one-line error naming the node and the rule,
the Python reader raises ThinkerFormatError and the C reader returns an error status for the
same model written without tpacker's checks; and at extreme but legal exponents numpy and C
compute the same saturated integers (docs/ops.md, "Limits")."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import onnx
import pytest
from c_harness import assert_c_equals_numpy, pack, rewrite_attrs
from c_models import Builder, _ints

from onnx_build import value_info
from thinker import qmath
from thinker.errors import ThinkerFormatError, ThinkerModelError
from thinker.packer import Packer, PackOptions
from thinker.resource.reader import parse_model

X = value_info("x", np.int8, [1, 4, 6, 6])


def _single(op_type, inputs=("x",), outs=1, consts=(), ins=(X,), **attrs):
    b = Builder()
    names = list(inputs) + [b.const(c) for c in consts]
    y = b.op(op_type, names, n_out=outs, **attrs)
    return b.build(list(ins), [y] if outs == 1 else list(y), {"x": 4})


def _w(shape, dtype=np.int8):
    return _ints(shape, -20, 20, dtype)


BROKEN = {  # name -> (ONNX model, text of the rule in the message)
    "pool stride 0": (_single("AvgPool2dInt", kernel_shape=[2, 2], strides=[0, 1],
                              scale_x=16.0, scale_o=16.0), "strides [0, 1] must be in 1..65535"),
    "pool negative pad": (_single("MaxPool", kernel_shape=[3, 3], pads=[-1, 0, 0, 0]),
                          "pads [-1, 0, 0, 0] must be in 0..65535"),
    "pool kernel 0": (_single("AvgPool2dInt", kernel_shape=[0, 2], scale_x=16.0),
                      "kernel_shape [0, 2] must be in 1..65535"),
    "pool dilation 0": (_single("MaxPool", kernel_shape=[2, 2], dilations=[1, 0]),
                        "dilations [1, 0] must be in 1..65535"),
    "transposed conv output_padding": (
        _single("ConvTranspose2dInt", consts=[_w((4, 2, 3, 3))], scale_x=16.0, scale_w=128.0,
                scale_o=16.0, o_bits=8, strides=[2, 2], output_padding=[-1, 0]),
        "output_padding [-1, 0] must be in 0..65535"),
    "NaN clip bound": (_single("Clip", consts=[np.float32(np.nan), np.float32(3.0)]),
                       "Clip min is nan"),
    "float conv weights": (
        _single("Conv2dInt", consts=[_w((4, 4, 3, 3)).astype(np.float32)], scale_x=16.0,
                scale_w=128.0, scale_o=16.0, o_bits=8, kernel_shape=[3, 3]),
        "must be an integer constant"),
    "huge Pad": (_single("Pad", consts=[np.array([0, 0, 0, 1, 0, 0, 0, 2**40])]),
                 "must be in 0..2147483647"),
    "AvgPool scale_o 2**-60": (_single("AvgPool2dInt", kernel_shape=[3, 3], scale_x=16.0,
                                       scale_o=2.0**-60),
                               "use a scale_o closer to scale_x"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_tpacker_refuses_a_broken_rule_naming_the_node(case, tmp_path):
    model, rule = BROKEN[case]
    src = str(tmp_path / "m.onnx")
    onnx.save(model, src)
    with pytest.raises(ThinkerModelError) as info:
        Packer(PackOptions(graph_path=src, platform="cortex-m",
                           workspace=str(tmp_path / "ws"))).run()
    first = info.value.summary
    assert rule in first and "'" in first, first  # the node is named
    assert not os.path.exists(tmp_path / "model.bin")


def test_the_cli_prints_one_line_and_exits_1(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(BROKEN["pool stride 0"][0], src)
    r = subprocess.run([sys.executable, "-m", "thinker.cli.tpacker", "-g", str(src), "-o",
                        str(tmp_path / "m.bin"), "-p", "cortex-m", "--workspace",
                        str(tmp_path / "ws")], capture_output=True, text=True, check=False)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert r.returncode == 1 and len(errors) == 1, r.stderr
    assert "AvgPool2dInt" in errors[0] and "strides" in errors[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "m.bin").exists()


# --- the readers refuse the same models written without tpacker's checks ---------------------


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A valid pack of every op family whose rules are bent below."""
    b = Builder()
    p = b.op("AvgPool2dInt", ["x"], kernel_shape=[3, 3], strides=[1, 1], scale_x=16.0,
             scale_o=16.0, o_bits=8)
    c = b.op("Clip", [p], min=-20.0, max=30.0)
    t = b.conv(c, 4, 4, 3, 4, 4, op_type="ConvTranspose2dInt", strides=[2, 2])
    m = b.build([X], [t], {"x": 4})
    root = tmp_path_factory.mktemp("rules")
    src = str(root / "m.onnx")
    onnx.save(m, src)
    return Packer(PackOptions(graph_path=src, platform="cortex-m",
                              workspace=str(root / "ws"))).run()


BENT = [
    ("AvgPool2dInt", lambda a: a.update(strides=[0, 1]), "strides"),
    ("AvgPool2dInt", lambda a: a.update(pads=[-1, 0, 0, 0]), "pads"),
    ("AvgPool2dInt", lambda a: a.update(scale_o=2.0**-60), "scale_o"),
    ("Clip", lambda a: a.update(min=float("nan")), "Clip"),
    ("ConvTranspose2dInt", lambda a: a.update(output_padding=[-1, 0]), "output_padding"),
    ("ConvTranspose2dInt", lambda a: a.update(group=0), "group"),
    ("ConvTranspose2dInt", lambda a: a.update(o_bits=8.0), "o_bits"),
]


@pytest.mark.parametrize("op_type, change, word", BENT)
def test_both_readers_refuse_what_tpacker_refuses(packed, sanitize_build, tmp_path, op_type,
                                                  change, word):
    data = rewrite_attrs(packed, op_type, change)
    with pytest.raises(ThinkerFormatError, match=word):
        parse_model(data, "bent.bin")
    path = tmp_path / "bent.bin"
    path.write_bytes(data)
    r = subprocess.run([sanitize_build, "--zeros", str(path)], capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.returncode == 1 and "ERR_MODEL" in r.stderr and op_type in r.stderr, r.stderr


def _with_crc(data: bytearray) -> bytes:
    struct.pack_into("<I", data, 24, zlib.crc32(bytes(data[64:])) & 0xFFFFFFFF)
    return bytes(data)


def test_a_duplicate_attribute_key_is_refused_by_both(packed, sanitize_build, tmp_path):
    """C used to take the first of two equal keys and Python the last."""
    data = bytearray(packed.model_bin)
    o_bits = data.index(b"o_bits\0")
    scale_o = data.index(b"scale_o\0")
    strings = struct.unpack_from("<I", data, 64 + 4)[0]  # the strings section's offset
    keys = struct.pack("<I", o_bits - strings)
    at = data.index(struct.pack("<I", scale_o - strings) + b"\x02\x00\x01\x00")
    data[at:at + 4] = keys  # the scale_o record now says o_bits (an int read as a float)
    data = _with_crc(data)
    with pytest.raises(ThinkerFormatError, match=r"given twice|wrong type|must be"):
        parse_model(data, "dup.bin")
    path = tmp_path / "dup.bin"
    path.write_bytes(data)
    r = subprocess.run([sanitize_build, "--zeros", str(path)], capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.returncode == 1 and "o_bits" in r.stderr, r.stderr


# --- saturation at extreme but legal exponents: numpy == C -------------------------------------


def extremes_model() -> onnx.ModelProto:
    """Requant to 2**100 and from 2**-100, shifts of +-62/63/64 on int32 inputs, iqAdd/iqSub/
    iqMul/iqCat/PRelu with left shifts far beyond int64, AvgPool2dInt at the edges of its
    limit (the window sum or divisor times 2**|shift| just below 2**61), a power-of-two window
    shifted 60 bits."""
    b, outs = Builder(), []
    w, a = "w", "a"
    for q_o, bits in ((100, 8), (-100, 8), (62, 32), (63, 32), (64, 32), (-62, 32), (-63, 16),
                      (-64, 32), (31, 32), (-31, 32)):
        outs.append(b.op("Requant", [w], scale_x=1.0, scale_o=2.0**q_o, o_bits=bits))
    outs.append(b.op("iqAdd", [w, a], scale_x=1.0, scale_y=2.0**-3, scale_o=2.0**70,
                     o_bits=32))
    outs.append(b.op("iqSub", [a, w], scale_x=2.0**-3, scale_y=1.0, scale_o=2.0**-70,
                     o_bits=8))
    outs.append(b.op("iqMul", [w, w], scale_x=2.0**5, scale_y=2.0**5, scale_o=2.0**90,
                     o_bits=32))
    outs.append(b.op("iqMul", [w, a], scale_x=2.0**-40, scale_y=2.0**-40, scale_o=1.0,
                     o_bits=16))
    outs.append(b.op("iqCat", [w, a], scale_x_0=1.0, scale_x_1=2.0**-3, scale_o=2.0**64,
                     dim=1, o_bits=32))
    outs.append(b.op("PRelu", [w, b.const(_ints((1, 4, 1), -3, 3))], scale_x=1.0,
                     scale_w=2.0**-30, scale_o=2.0**40, o_bits=16))
    pool_in = b.op("Reshape", [a, b.const(np.array([1, 4, 5, 8]))])
    outs.append(b.op("AvgPool2dInt", [pool_in], kernel_shape=[3, 3], strides=[1, 1],
                     scale_x=1.0, scale_o=2.0**49, o_bits=32))        # 9 * 128 << 49 < 2**61
    outs.append(b.op("AvgPool2dInt", [pool_in], kernel_shape=[3, 3], strides=[1, 1],
                     scale_x=2.0**57, scale_o=1.0, o_bits=8))          # divisor 9 << 57
    outs.append(b.op("AvgPool2dInt", [pool_in], kernel_shape=[2, 2], strides=[2, 2],
                     scale_x=2.0**58, scale_o=1.0, o_bits=8))          # window 4: a 60-bit shift
    return b.build([value_info("w", np.int32, [1, 4, 40]), value_info("a", np.int8, [1, 4, 40])],
                   outs, {"w": 0, "a": 0})


def test_extreme_exponents_saturate_identically_in_numpy_and_c(host_build, tmp_path):
    path = pack(extremes_model(), str(tmp_path / "ext.bin"))
    rng = np.random.default_rng(11)
    w = rng.integers(-2**31, 2**31, (1, 4, 40)).astype(np.int32)
    w.reshape(-1)[:8] = [0, 1, -1, 2**31 - 1, -2**31, 5, -5, 2**30]
    a = rng.integers(-128, 128, (1, 4, 40)).astype(np.int8)
    a.reshape(-1)[:4] = [0, 127, -128, 1]
    assert_c_equals_numpy(host_build, path, {"w": w, "a": a}, tmp_path)
    import thinker

    out = thinker.load(path).run({"w": w, "a": a})
    requant_100 = next(v for k, v in out.items() if k.startswith("requant") and v.dtype == np.int8)
    assert set(np.unique(requant_100)) <= {-128, 0, 127}  # saturated, never wrapped to 0
    assert requant_100.reshape(-1)[1] == 127 and requant_100.reshape(-1)[2] == -128


def test_qmath_shifts_saturate_and_never_wrap():
    v = np.array([-2**31, -5, -1, 0, 1, 5, 2**31 - 1], dtype=np.int32)
    for s in (-31, -40, -62, -63, -64, -100):
        assert qmath.rescale(v, s, 32).tolist() == [-2**31, -2**31, -2**31, 0, 2**31 - 1,
                                                    2**31 - 1, 2**31 - 1]
    for s in (33, 62, 63, 64, 100):
        assert not qmath.rescale(v, s, 32).any()
    big = np.array([3, -3, 2**40], dtype=np.int64)
    assert qmath.rshift_round(big, -61).tolist() == [2**62, -2**62, 2**62]  # saturation point
    assert qmath.rshift_round(big, -20).tolist() == [3 << 20, -3 << 20, 2**60]  # exact below
    out = np.empty(3, dtype=np.int64)
    assert qmath.rescale_into(np.array([1, -1, 0], np.int8), -70, 8, out).tolist() == \
        [127, -128, 0]


def test_tpacker_refuses_two_nodes_with_one_name(tmp_path):
    from onnx_build import model, node

    m = model([node("Relu", ["x"], ["y"], name="same"), node("Relu", ["y"], ["z"], name="same")],
              [X], ["z"])
    src = str(tmp_path / "m.onnx")
    onnx.save(m, src)
    with pytest.raises(ThinkerModelError, match="node name 'same' is used by 2 nodes"):
        Packer(PackOptions(graph_path=src, platform="cortex-m",
                           workspace=str(tmp_path / "ws"))).run()


def test_tpacker_refuses_a_reshape_with_a_computed_shape(tmp_path):
    from onnx_build import model, node

    shape = value_info("s", np.int64, [4])
    m = model([node("Reshape", ["x", "s"], ["y"], name="rs")], [X, shape], ["y"])
    src = str(tmp_path / "m.onnx")
    onnx.save(m, src)
    with pytest.raises(ThinkerModelError, match=r"rs.*must be a constant integer tensor"):
        Packer(PackOptions(graph_path=src, platform="cortex-m",
                           workspace=str(tmp_path / "ws"))).run()
