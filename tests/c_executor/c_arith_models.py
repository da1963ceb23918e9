"""Small models of LogSoftmaxInt, GluInt, BmmInt, iqDiv, iqSum, iqVar and Resize for the C
executor tests: every kernel family for the platform-dependent ones, int8/int16/int32 inputs
where the op allows them, non-last axes, broadcasting, 3-D and 4-D products with K large enough
for numpy's float64 and int64 (wrapping) paths, means with non-power-of-two divisors, biased
and unbiased variances over several axes with and without keepdims, per-axis resize factors,
and scales at the limits the ops accept (where numpy's int64 shifts wrap)."""

from __future__ import annotations

import numpy as np
import onnx
from c_models import Builder, _ints

from onnx_build import value_info

# platform attribute as written in the model (names are case-insensitive) -> its family
FAMILIES = {"venus": "venus", "arcs": "ARCS", "mars": "Mars", "venusA": "venusA"}


def family_model(platform: str) -> onnx.ModelProto:
    """LogSoftmaxInt and GluInt with one `platform` on int8 `a` [1, 4, 6, 16] (q 4), int16 `s`
    [1, 2, 64] (q 10) and int32 `w` [1, 4, 40] (q 28)."""
    b, outs = Builder(), []

    def op(op_type, inputs, **attrs):
        outs.append(b.op(op_type, inputs, platform=platform, **attrs))

    op("LogSoftmaxInt", ["a"], scale_x=16.0, scale_o=8.0, o_bits=8)              # default axis
    op("LogSoftmaxInt", ["a"], scale_x=16.0, scale_o=2.0**10, o_bits=16, axis=1)  # not the last
    op("LogSoftmaxInt", ["a"], scale_x=2.0, scale_o=16.0, o_bits=8, dim=2)       # `dim` spelling
    op("LogSoftmaxInt", ["a"], scale_x=16.0, scale_o=2.0**20, o_bits=32, axis=0)  # rows of 1
    op("LogSoftmaxInt", ["a"], scale_x=2.0**9, scale_o=2.0**25, o_bits=32, axis=-3)
    op("LogSoftmaxInt", ["s"], scale_x=2.0**13, scale_o=2.0**11, o_bits=16)      # 64-long rows
    op("LogSoftmaxInt", ["s"], scale_x=2.0**14, scale_o=2.0**30, o_bits=32, axis=1)  # left shift
    op("LogSoftmaxInt", ["w"], scale_x=2.0**28, scale_o=2.0**3, o_bits=8)
    op("GluInt", ["a"], scale_x=16.0, scale_o=16.0, o_bits=8)                     # default axis
    op("GluInt", ["a"], scale_x=16.0, scale_o=2.0**10, o_bits=16, dim=1)          # not the last
    op("GluInt", ["a"], scale_x=2.0, scale_o=4.0, o_bits=8, axis=2)
    op("GluInt", ["a"], scale_x=2.0**9, scale_o=2.0**20, o_bits=32, axis=-3)
    op("GluInt", ["s"], scale_x=2.0**10, scale_o=2.0**10, o_bits=16)
    op("GluInt", ["s"], scale_x=2.0**14, scale_o=2.0**2, o_bits=4, axis=1)
    op("GluInt", ["w"], scale_x=2.0**28, scale_o=2.0**28, o_bits=32, dim=1)
    op("GluInt", ["w"], scale_x=2.0**28, scale_o=2.0**4, o_bits=8)
    return b.build([value_info("a", np.int8, [1, 4, 6, 16]),
                    value_info("s", np.int16, [1, 2, 64]),
                    value_info("w", np.int32, [1, 4, 40])], outs, {"a": 4, "s": 10, "w": 28})


def bmm_model() -> onnx.ModelProto:
    """BmmInt on 3-D and 4-D inputs: int8 (int32 accumulator), a computed left operand, a
    constant right one, mixed int8 x int16, int16 with K = 1024 (numpy: float64), int32 with
    K = 1024 x int16 (numpy: int64 einsum, bound 2**56), left and right output shifts and every
    o_bits."""
    b = Builder()
    outs = [
        b.op("BmmInt", ["x3", "y3"], scale_x=16.0, scale_y=16.0, scale_o=1.0, o_bits=8),
        b.op("BmmInt", ["x3", "y3"], scale_x=16.0, scale_y=16.0, scale_o=2.0**12,
             o_bits=32),                                               # left shift
        b.op("BmmInt", ["x4", "y4"], scale_x=16.0, scale_y=32.0, scale_o=2.0**6, o_bits=16),
        b.op("BmmInt", ["x4", "y4"], scale_x=16.0, scale_y=32.0, scale_o=2.0**12, o_bits=32),
        b.op("BmmInt", ["x3", b.const(_ints((1, 7, 9), -128, 128))], scale_x=16.0,
             scale_y=128.0, scale_o=8.0, o_bits=8),
        b.op("BmmInt", ["x4", "h4"], scale_x=16.0, scale_y=2.0**10, scale_o=2.0**-5, o_bits=8),
        b.op("BmmInt", ["hk", "hk2"], scale_x=2.0**10, scale_y=2.0**10, scale_o=2.0**-6,
             o_bits=16),
        b.op("BmmInt", ["hk", "hk2"], scale_x=2.0**10, scale_y=2.0**10, scale_o=2.0**-9,
             o_bits=4),
        b.op("BmmInt", ["ik", "ik2"], scale_x=2.0**20, scale_y=2.0**20, scale_o=2.0**-10,
             o_bits=32),
        b.op("BmmInt", ["ik", "ik2"], scale_x=2.0**20, scale_y=2.0**20, scale_o=2.0**-22,
             o_bits=8),                                                # shift 62
    ]
    t = b.op("Transpose", ["x3"], perm=[0, 2, 1])                      # [1, 7, 5]
    outs.append(b.op("BmmInt", ["x3", t], scale_x=16.0, scale_y=16.0, scale_o=0.25,
                     o_bits=8))                                        # x @ x^T
    return b.build([value_info("x3", np.int8, [1, 5, 7]), value_info("y3", np.int8, [1, 7, 3]),
                    value_info("x4", np.int8, [1, 2, 4, 6]),
                    value_info("y4", np.int8, [1, 2, 6, 5]),
                    value_info("h4", np.int16, [1, 2, 6, 3]),
                    value_info("hk", np.int16, [1, 3, 1024]),
                    value_info("hk2", np.int16, [1, 1024, 2]),
                    value_info("ik", np.int32, [1, 2, 3, 1024]),
                    value_info("ik2", np.int16, [1, 2, 1024, 4])], outs,
                   {"x3": 4, "y3": 4, "x4": 4, "y4": 5, "h4": 10, "hk": 10, "hk2": 10,
                    "ik": 20, "ik2": 20})


def div_model() -> onnx.ModelProto:
    """iqDiv: same shapes, broadcasting one way and both ways (x [1, 1, 6] / y [1, 5, 1]),
    rank-changing broadcast, a constant divisor with zeros and negative values, int16/int32,
    the shift on the numerator and on the divisor, every o_bits."""
    b = Builder()
    divisor = np.array([[[3], [0], [-7], [1], [-1]]], np.int8)        # [1, 5, 1]
    outs = [
        b.op("iqDiv", ["x", "y"], scale_x=16.0, scale_y=16.0, scale_o=16.0, o_bits=8),
        b.op("iqDiv", ["x", "c"], scale_x=16.0, scale_y=64.0, scale_o=2.0**10, o_bits=16),
        b.op("iqDiv", ["row", "col"], scale_x=8.0, scale_y=16.0, scale_o=4.0, o_bits=8),
        b.op("iqDiv", ["row", b.const(divisor)], scale_x=8.0, scale_y=1.0, scale_o=2.0,
             o_bits=8),
        b.op("iqDiv", ["c", "x"], scale_x=64.0, scale_y=16.0, scale_o=2.0**3, o_bits=4),
        b.op("iqDiv", ["h", "x"], scale_x=2.0**10, scale_y=16.0, scale_o=2.0**20, o_bits=32),
        b.op("iqDiv", ["i", "h"], scale_x=2.0**20, scale_y=2.0**10, scale_o=2.0**5,
             o_bits=16),                                               # 5 bits on y
        b.op("iqDiv", ["i", "j"], scale_x=2.0**20, scale_y=2.0**20, scale_o=2.0**30,
             o_bits=32),                                               # 30 bits on x
    ]
    return b.build([value_info("x", np.int8, [1, 4, 5, 6]), value_info("y", np.int8,
                                                                        [1, 4, 5, 6]),
                    value_info("c", np.int8, [1, 4, 1, 1]),
                    value_info("row", np.int8, [1, 1, 6]),
                    value_info("col", np.int8, [1, 5, 1]),
                    value_info("h", np.int16, [1, 4, 5, 6]),
                    value_info("i", np.int32, [1, 4, 5, 6]),
                    value_info("j", np.int32, [1, 4, 1, 6])], outs,
                   {"x": 4, "y": 4, "c": 6, "row": 3, "col": 4, "h": 10, "i": 20, "j": 20})


def reduce_model() -> onnx.ModelProto:
    """iqSum (sums and means with divisors 30, 6, 7, 2: ties) and iqVar (biased, unbiased) over
    one and several axes, with and without keepdims, every spelling of the axes, int8/int16/
    int32 inputs."""
    b = Builder()
    outs = [
        b.op("iqSum", ["x"], axes=[2, 3], scale_x=16.0, scale_o=16.0, divisor=30, o_bits=8),
        b.op("iqSum", ["x"], axes=[1], keepdims=0, scale_x=16.0, scale_o=16.0, o_bits=16),
        b.op("iqSum", ["x"], dims=[-1, 1], keepdims=0, scale_x=16.0, scale_o=8.0, divisor=7,
             o_bits=8),
        b.op("iqSum", ["x"], dim=2, scale_x=16.0, scale_o=16.0, divisor=2, o_bits=8),
        b.op("iqSum", ["x"], axis=[1, 2, 3], keepdims=0, scale_x=16.0, scale_o=2.0**6,
             divisor=120, o_bits=8),
        b.op("iqSum", ["x"], axes=[0, 2], scale_x=16.0, scale_o=2.0, divisor=6, o_bits=8),
        b.op("iqSum", ["x"], axes=[3], scale_x=16.0, scale_o=2.0**6, divisor=5, o_bits=16),
        b.op("iqSum", ["h"], axes=[2], keepdims=0, scale_x=2.0**10, scale_o=2.0**10,
             divisor=6, o_bits=16),
        b.op("iqSum", ["i"], axes=[1, 3], scale_x=2.0**20, scale_o=2.0**8, o_bits=32),
        b.op("iqSum", ["i"], axes=[3], scale_x=2.0**20, scale_o=2.0**19, divisor=3,
             o_bits=32),
        b.op("iqVar", ["x"], axes=[2, 3], scale_x=16.0, scale_o=0.5, o_bits=8),
        b.op("iqVar", ["x"], axes=[3], keepdims=0, unbiased=0, scale_x=16.0, scale_o=4.0,
             o_bits=8),
        b.op("iqVar", ["x"], dims=[1, 3], keepdims=0, scale_x=16.0, scale_o=4.0,
             o_bits=16),
        b.op("iqVar", ["x"], dim=1, unbiased=0, scale_x=16.0, scale_o=2.0**10, o_bits=32),
        b.op("iqVar", ["h"], axes=[2, 3], scale_x=2.0**10, scale_o=2.0**-2, o_bits=16),
        b.op("iqVar", ["h"], axes=[1], unbiased=0, keepdims=0, scale_x=2.0**10,
             scale_o=2.0**-6, o_bits=8),
    ]
    return b.build([value_info("x", np.int8, [1, 4, 5, 6]),
                    value_info("h", np.int16, [1, 3, 6, 4]),
                    value_info("i", np.int32, [1, 3, 5, 2])], outs,
                   {"x": 4, "h": 10, "i": 20})


def _resize(b: Builder, x: str, factors, use_sizes=False, opset10=False, shape=None,
            **attrs) -> str:
    if opset10:
        return b.op("Resize", [x, b.const(np.array(factors, np.float32))], **attrs)
    if use_sizes:
        sizes = np.array([d * f for d, f in zip(shape, factors, strict=True)], np.int64)
        return b.op("Resize", [x, "", "", b.const(sizes)], **attrs)
    return b.op("Resize", [x, "", b.const(np.array(factors, np.float32))], **attrs)


def resize_model() -> onnx.ModelProto:
    """Resize nearest with different factors per axis (scales, sizes, the opset-10 input
    layout, every accepted coordinate mode) on int8, int16, int32 and float32 tensors."""
    b = Builder()
    outs = [
        _resize(b, "x", [1, 1, 2, 3], coordinate_transformation_mode="asymmetric",
                nearest_mode="floor"),
        _resize(b, "x", [1, 3, 1, 2]),                                 # half_pixel defaults
        _resize(b, "x", [1, 2, 4, 1], use_sizes=True, shape=[1, 3, 4, 5],
                coordinate_transformation_mode="pytorch_half_pixel",
                nearest_mode="round_prefer_ceil"),
        _resize(b, "x", [1, 1, 1, 1]),
        _resize(b, "h", [1, 2, 3], mode="nearest"),
        _resize(b, "i", [1, 1, 5], use_sizes=True, shape=[1, 2, 3]),
        _resize(b, "f", [1, 2, 2, 2], coordinate_transformation_mode="half_pixel",
                nearest_mode="round_prefer_floor"),
    ]
    return b.build([value_info("x", np.int8, [1, 3, 4, 5]), value_info("h", np.int16, [1, 4, 6]),
                    value_info("i", np.int32, [1, 2, 3]),
                    value_info("f", np.float32, [1, 2, 3, 2])], outs,
                   {"x": 4, "h": 10, "i": 20})


def resize_opset10_model() -> onnx.ModelProto:
    """Resize(X, scales): the opset-10 input layout."""
    from onnx import helper

    b = Builder()
    y = _resize(b, "x", [1, 2, 1, 3], opset10=True, mode="nearest")
    m = b.build([value_info("x", np.int8, [1, 2, 3, 4])], [y], {"x": 4})
    del m.opset_import[:]
    m.opset_import.extend([helper.make_opsetid("", 10), helper.make_opsetid("thinker", 1)])
    return m


def extremes_model() -> onnx.ModelProto:
    """Scales at the limits the ops accept (int64 never wraps: larger shifts are refused, see
    test_c_arith): LogSoftmaxInt output shifts of +-62, GluInt input shifts of 48 and output
    shifts up to 62 - product bits, iqSum/iqVar numerators and divisors just below 2**62 after
    their shift, iqDiv at 62 - width bits; the default (venus) and cortex-m platforms."""
    b, outs = Builder(), []
    outs.append(b.op("LogSoftmaxInt", ["w"], scale_x=2.0**-23, scale_o=2.0**-37, o_bits=8))
    outs.append(b.op("LogSoftmaxInt", ["w"], scale_x=2.0**73, scale_o=2.0**87, o_bits=32,
                     platform="arcs"))
    outs.append(b.op("LogSoftmaxInt", ["a"], scale_x=2.0**0, scale_o=2.0**40, o_bits=16,
                     platform="venusA", axis=1))
    outs.append(b.op("GluInt", ["w"], scale_x=2.0**-37, scale_o=2.0**-42, o_bits=32))
    outs.append(b.op("GluInt", ["w"], scale_x=2.0**-21, scale_o=2.0**8, o_bits=32,
                     platform="cortex-m"))                             # a * gate << 14
    outs.append(b.op("GluInt", ["w"], scale_x=2.0**40, scale_o=2.0**15, o_bits=16,
                     platform="venusa", dim=1))
    outs.append(b.op("iqSum", ["w"], axes=[2], scale_x=2.0**-20, scale_o=2.0**5,
                     divisor=(1 << 31) - 1, o_bits=32))                # numerator << 25
    outs.append(b.op("iqSum", ["w"], axes=[1, 2], scale_x=2.0**20, scale_o=2.0**-20,
                     divisor=3, o_bits=8))                             # divisor << 40
    outs.append(b.op("iqSum", ["w"], axes=[2], scale_x=2.0**20, scale_o=2.0**-20,
                     divisor=(1 << 21) - 1, o_bits=32))                # divisor << 40 < 2**61
    outs.append(b.op("iqSum", ["w"], axes=[1], scale_x=2.0**20, scale_o=2.0**-20,
                     divisor=(3 << 19), o_bits=16))
    outs.append(b.op("iqVar", ["a"], axes=[2], scale_x=2.0**-5, scale_o=2.0**10, o_bits=32))
    outs.append(b.op("iqVar", ["a"], axes=[1, 2], unbiased=0, scale_x=2.0**20,
                     scale_o=2.0**0, o_bits=16))
    outs.append(b.op("iqDiv", ["a", "a"], scale_x=1.0, scale_y=1.0, scale_o=2.0**54,
                     o_bits=32))
    outs.append(b.op("iqDiv", ["w", "a"], scale_x=2.0**10, scale_y=1.0, scale_o=2.0**-20,
                     o_bits=16))
    return b.build([value_info("w", np.int32, [1, 4, 40]), value_info("a", np.int8, [1, 4, 40])],
                   outs, {"w": 0, "a": 0})


def device_model(platform: str) -> onnx.ModelProto:
    """The ops as a chip allows them (devices/<chip>.toml: int8 LogSoftmaxInt on the last axis,
    int8 GluInt and BmmInt without a left shift), packed for that chip: venus decomposes
    GluInt, the others Resize."""
    b = Builder()
    outs = [
        b.op("LogSoftmaxInt", ["x"], scale_x=16.0, scale_o=8.0, o_bits=8, platform=platform),
        b.op("GluInt", ["x"], scale_x=16.0, scale_o=16.0, o_bits=8, dim=2, platform=platform),
        b.op("BmmInt", ["x", "y"], scale_x=16.0, scale_y=16.0, scale_o=4.0, o_bits=8,
             platform=platform),
        b.op("iqDiv", ["x", "d"], scale_x=16.0, scale_y=16.0, scale_o=16.0, o_bits=8),
        b.op("iqSum", ["x"], axes=[2], scale_x=16.0, scale_o=16.0, divisor=24, o_bits=8),
        b.op("iqVar", ["x"], axes=[2], scale_x=16.0, scale_o=16.0, o_bits=8),
        _resize(b, "x", [1, 2, 2], coordinate_transformation_mode="asymmetric",
                nearest_mode="floor"),
    ]
    return b.build([value_info("x", np.int8, [1, 5, 24]), value_info("y", np.int8, [1, 24, 6]),
                    value_info("d", np.int8, [1, 5, 1])], outs, {"x": 4, "y": 4, "d": 4})


def compact_model() -> onnx.ModelProto:
    """The seven ops once each (for c_models.MODELS and the op-coverage test)."""
    b = Builder()
    g = b.op("GluInt", ["x"], scale_x=16.0, scale_o=16.0, o_bits=8, dim=1, platform="arcs")
    ls = b.op("LogSoftmaxInt", [g], scale_x=16.0, scale_o=16.0, o_bits=8, platform="venusA")
    mm = b.op("BmmInt", [ls, "y"], scale_x=16.0, scale_y=16.0, scale_o=8.0, o_bits=8)
    d = b.op("iqDiv", [mm, "z"], scale_x=8.0, scale_y=16.0, scale_o=16.0, o_bits=8)
    s = b.op("iqSum", [d], axes=[2], scale_x=16.0, scale_o=16.0, divisor=3, o_bits=8)
    v = b.op("iqVar", [d], axes=[1, 2], keepdims=0, scale_x=16.0, scale_o=16.0, o_bits=8)
    r = _resize(b, s, [1, 2, 3])
    return b.build([value_info("x", np.int8, [1, 6, 12]), value_info("y", np.int8, [1, 12, 4]),
                    value_info("z", np.int8, [1, 3, 1])], [r, v], {"x": 4, "y": 4, "z": 4})


# name -> (builder, device profile to pack for). The generic profile (cortex-m) leaves the
# ops' integers unrestricted; the chips' profiles limit dtypes and scales.
ARITH_MODELS = {
    **{f"ar_{name}": (lambda p=platform: family_model(p), "cortex-m")
       for name, platform in FAMILIES.items()},
    "ar_bmm": (bmm_model, "cortex-m"),
    "ar_div": (div_model, "cortex-m"),
    "ar_reduce": (reduce_model, "cortex-m"),
    "ar_resize": (resize_model, "cortex-m"),
    "ar_resize_opset10": (resize_opset10_model, "cortex-m"),
    "ar_extremes": (extremes_model, "cortex-m"),
    **{f"ar_on_{chip}": (lambda p=chip: device_model(p), chip)
       for chip in ("venus", "arcs", "mars", "venusA")},
}
