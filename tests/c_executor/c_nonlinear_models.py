"""Small models of the non-linear ops (iqSigmoid, iqTanh, SoftmaxInt, LayerNormInt) for the C
executor tests: every kernel family, int8/int16/int32 inputs, coarse, fine and extreme scales
(numpy's int64 wrap-around included), softmax over every kind of axis (a 2048-long one too),
layernorm with and without bias over one and two trailing axes."""

from __future__ import annotations

import numpy as np
import onnx
from c_models import Builder, _ints

from onnx_build import value_info

# platform attribute as written in the model (names are case-insensitive) -> its family
FAMILIES = {"venus": "venus", "arcs": "ARCS", "mars": "Mars", "venusA": "venusA"}


def family_model(platform: str) -> onnx.ModelProto:
    """Every op on int8 `a` [1, 4, 6, 16] (q 4) and int16 `s` [1, 2, 2048] (q 10) with one
    `platform`."""
    b, outs = Builder(), []

    def op(op_type, inputs, **attrs):
        outs.append(b.op(op_type, inputs, platform=platform, **attrs))

    for fn in ("iqSigmoid", "iqTanh"):
        op(fn, ["a"], scale_x=16.0, scale_o=128.0, o_bits=8)
        op(fn, ["a"], scale_x=1.0, scale_o=2.0**15, o_bits=16)           # coarse: big values
        op(fn, ["a"], scale_x=2.0**12, scale_o=2.0**10, o_bits=16)       # fine input
        op(fn, ["s"], scale_x=2.0**10, scale_o=2.0**15, o_bits=16)
        op(fn, ["s"], scale_x=2.0**14, scale_o=2.0**3, o_bits=8)
        op(fn, ["s"], scale_x=2.0**10, scale_o=2.0**40, o_bits=32)       # output left shift
    op("SoftmaxInt", ["a"], scale_x=16.0, scale_o=128.0, o_bits=8)           # default axis -1
    op("SoftmaxInt", ["a"], scale_x=16.0, scale_o=2.0**15, o_bits=16, axis=1)  # not the last
    op("SoftmaxInt", ["a"], scale_x=2.0, scale_o=256.0, o_bits=8, dim=2)      # `dim` spelling
    op("SoftmaxInt", ["a"], scale_x=2.0**9, scale_o=64.0, o_bits=8, axis=-3)
    op("SoftmaxInt", ["a"], scale_x=16.0, scale_o=128.0, o_bits=8, axis=0)    # rows of 1
    op("SoftmaxInt", ["s"], scale_x=2.0**10, scale_o=2.0**15, o_bits=16)      # 2048-long rows
    op("SoftmaxInt", ["s"], scale_x=2.0**6, scale_o=2.0**20, o_bits=32, axis=1)
    w16, w96 = _ints(16, -100, 100), _ints((6, 16), -100, 100)
    op("LayerNormInt", ["a", b.const(w16), b.const(_ints(16, -5000, 5000, np.int32))],
       scale_x=16.0, scale_w=64.0, scale_o=16.0, o_bits=8)
    op("LayerNormInt", ["a", b.const(w96)], scale_x=16.0, scale_w=64.0, scale_o=2.0**10,
       o_bits=16, eps=1e-3)                                                   # 2 axes, no bias
    op("LayerNormInt", ["s", b.const(_ints(2048, -3000, 3000, np.int16)),
                        b.const(_ints(2048, -2**20, 2**20, np.int32))],
       scale_x=2.0**12, scale_w=2.0**12, scale_o=2.0**8, o_bits=16, parameter_bits=16,
       eps=1e-3)                                                              # eps_q > 2**32
    op("LayerNormInt", ["s", b.const(_ints((2, 2048), -8, 8))],
       scale_x=2.0**10, scale_w=4.0, scale_o=2.0**3, o_bits=8, parameter_bits=4)  # int4 w
    return b.build([value_info("a", np.int8, [1, 4, 6, 16]),
                    value_info("s", np.int16, [1, 2, 2048])], outs, {"a": 4, "s": 10})


def extremes_model() -> onnx.ModelProto:
    """Scales at the limits the ops accept, where numpy's int64 shifts wrap (int32 input moved
    48 bits left; outputs moved 62 bits left), the default platform (venus), platform_quant and
    the generic cortex-m platform, layernorm on a 3-D weight and int16 output saturation."""
    b, outs = Builder(), []
    for fn in ("iqSigmoid", "iqTanh"):
        outs.append(b.op(fn, ["w"], scale_x=2.0**-37, scale_o=2.0**77, o_bits=32))  # venus
        # venus, 32768 << 48 wraps to INT64_MIN: numpy's abs keeps it negative (segment 0)
        outs.append(b.op(fn, ["w"], scale_x=2.0**-37, scale_o=2.0**7, o_bits=8))
        outs.append(b.op(fn, ["w"], scale_x=2.0**-21, scale_o=2.0**89, o_bits=32,
                         platform="cortex-m"))
        outs.append(b.op(fn, ["w"], scale_x=2.0**-21, scale_o=2.0**-4, o_bits=8,
                         platform="venusa"))
        outs.append(b.op(fn, ["w"], scale_x=2.0**40, scale_o=2.0**2, o_bits=4,
                         platform_quant="luna_quant"))
    for platform in ("venus", "arcs", "venusA"):
        outs.append(b.op("SoftmaxInt", ["w"], scale_x=2.0**-23, scale_o=2.0**77, o_bits=32,
                         platform=platform))
        outs.append(b.op("SoftmaxInt", ["w"], scale_x=2.0**73, scale_o=2.0**-40, o_bits=8,
                         platform=platform, axis=-2))
        outs.append(b.op("SoftmaxInt", ["w"], scale_x=2.0**20, scale_o=2.0**30, o_bits=32,
                         platform=platform))
    outs.append(b.op("LayerNormInt", ["a", b.const(_ints((3, 5, 7), -128, 128))],
                     scale_x=2.0**-3, scale_w=2.0**-2, scale_o=2.0**-2, o_bits=16, eps=0.0))
    outs.append(b.op("LayerNormInt", ["a", b.const(_ints(7, -128, 128)),
                                      b.const(_ints(7, -2**31, 2**31 - 1, np.int32))],
                     scale_x=2.0**30, scale_w=2.0**0, scale_o=2.0**70, o_bits=32))  # eps_q ~2**49
    return b.build([value_info("w", np.int32, [1, 4, 40]),
                    value_info("a", np.int8, [1, 3, 5, 7])], outs, {"w": 0, "a": 0})


def device_model(platform: str) -> onnx.ModelProto:
    """The ops as the chips' own rules allow them (devices/<chip>.toml op_rules: int8 softmax
    and layernorm on the last axis, sigmoid/tanh at their fixed output scales), packed for
    that chip: tpacker's adaptations (venus widens sigmoid/tanh inputs to int16) included."""
    b = Builder()
    outs = [
        b.op("iqSigmoid", ["x"], scale_x=16.0, scale_o=128.0, o_bits=8, platform=platform),
        b.op("iqTanh", ["x"], scale_x=16.0, scale_o=128.0, o_bits=8, platform=platform),
        b.op("SoftmaxInt", ["x"], scale_x=16.0, scale_o=128.0, o_bits=8, platform=platform),
        b.op("SoftmaxInt", ["long"], scale_x=8.0, scale_o=128.0, o_bits=8, platform=platform),
        b.op("LayerNormInt", ["x", b.const(_ints(24, -100, 100)),
                              b.const(_ints(24, -900, 900, np.int32))],
             scale_x=16.0, scale_w=64.0, scale_o=16.0, o_bits=8, platform=platform),
    ]
    return b.build([value_info("x", np.int8, [1, 5, 24]),
                    value_info("long", np.int8, [1, 2048])], outs, {"x": 4, "long": 3})


def compact_model() -> onnx.ModelProto:
    """The four ops once each (for c_models.MODELS and the op-coverage test)."""
    b = Builder()
    s = b.op("iqSigmoid", ["x"], scale_x=16.0, scale_o=128.0, o_bits=8, platform="arcs")
    t = b.op("iqTanh", [s], scale_x=128.0, scale_o=128.0, o_bits=8)
    m = b.op("SoftmaxInt", [t], scale_x=128.0, scale_o=128.0, o_bits=8, axis=1,
             platform="venusA")
    n = b.op("LayerNormInt", [m, b.const(_ints(10, -100, 100)),
                              b.const(_ints(10, -900, 900, np.int32))],
             scale_x=128.0, scale_w=64.0, scale_o=16.0, o_bits=8)
    return b.build([value_info("x", np.int8, [1, 3, 10])], [n], {"x": 4})


# name -> (builder, device profile to pack for). The family models use the generic profile,
# which leaves the ops' integers unrestricted (the chips' profiles limit dtypes and scales).
NONLINEAR_MODELS = {
    **{f"nl_{name}": (lambda p=platform: family_model(p), "cortex-m")
       for name, platform in FAMILIES.items()},
    "nl_extremes": (extremes_model, "cortex-m"),
    **{f"nl_on_{chip}": (lambda p=chip: device_model(p), chip)
       for chip in ("venus", "arcs", "mars", "venusA")},
}
