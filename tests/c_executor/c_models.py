"""Small thinker-dialect ONNX models that together use every op the executors support, with the
edge cases the C kernels special-case: depthwise (with multiplier), grouped and dilated convs,
asymmetric pads, strides 2 and 4, 1-D convs, transposed convs, ceil-mode pooling, fused
Relu/Clip, Split/Slice/Pad/Gather, int16 activations, 4-bit and 16-bit weights, float outputs."""

from __future__ import annotations

import numpy as np
import onnx

from onnx_build import model, node, value_info

RNG = np.random.default_rng(20261126)


def _ints(shape, lo=-60, hi=60, dtype=np.int8):
    return RNG.integers(lo, hi, shape, dtype=dtype)


def _with_exponents(m: onnx.ModelProto, exponents: dict[str, int]) -> onnx.ModelProto:
    for name, q in exponents.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = f"thinker:exponent:{name}", str(q)
    return m


class Builder:
    """Collects nodes and initializers; ``conv`` etc. return the output tensor name."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], {}, 0

    def _name(self, base):
        self.count += 1
        return f"{base}{self.count}"

    def op(self, op_type, inputs, n_out=1, **attrs):
        name = self._name(op_type.lower())
        outs = [f"{name}_out{i}" for i in range(n_out)]
        self.nodes.append(node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value):
        name = self._name("c")
        self.inits[name] = np.asarray(value)
        return name

    def conv(self, x, cin, cout, k, q_in, q_out, op_type="Conv2dInt", group=1, bias=True,
             w_lo=-60, w_hi=60, w_dtype=np.int8, **attrs):
        k = (k,) if op_type == "Conv1dInt" and isinstance(k, int) else \
            ((k, k) if isinstance(k, int) else k)
        if op_type == "ConvTranspose2dInt":
            shape = (cin, cout // group, *k)
        else:
            shape = (cout, cin // group, *k)
        ins = [x, self.const(_ints(shape, w_lo, w_hi, w_dtype))]
        if bias:
            ins.append(self.const(_ints(cout, -3000, 3000, np.int32)))
        attrs.setdefault("o_bits", 8)
        if attrs["o_bits"] is None:
            del attrs["o_bits"]
        else:
            attrs.setdefault("scale_o", 2.0**q_out)
        return self.op(op_type, ins, scale_x=2.0**q_in, scale_w=2.0**7,
                       kernel_shape=list(k), group=group, **attrs)

    def build(self, inputs, outputs, exponents) -> onnx.ModelProto:
        return _with_exponents(model(self.nodes, inputs, outputs, self.inits), exponents)


def conv_model() -> onnx.ModelProto:
    """Asymmetric pads + fused Relu, depthwise with multiplier 2, dilated stride-2 depthwise,
    grouped conv, 1x1 without bias + fused Clip, 5x5 stride 4, int4 weights."""
    b = Builder()
    y = b.conv("x", 4, 8, 3, 4, 4, pads=[2, 1, 0, 3], strides=[1, 1])
    y = b.op("Relu", [y])
    y = b.conv(y, 8, 16, 3, 4, 3, group=8, pads=[1, 1, 1, 1])  # depthwise, multiplier 2
    y = b.conv(y, 16, 16, 3, 3, 3, group=16, pads=[2, 2, 2, 2], dilations=[2, 2],
               strides=[2, 2])
    y = b.conv(y, 16, 8, 3, 3, 3, group=2, pads=[1, 0, 1, 0])  # grouped
    y = b.conv(y, 8, 12, 1, 3, 2, bias=False)
    y = b.op("Clip", [y, b.const(np.int8(-20)), b.const(np.int8(90))])
    y = b.conv(y, 12, 6, 3, 2, 3, parameter_bits=4, w_lo=-8, w_hi=8, pads=[1, 1, 1, 1])
    z = b.conv(y, 6, 5, 5, 3, 4, strides=[4, 4], pads=[2, 2, 2, 2])
    return b.build([value_info("x", np.int8, [1, 4, 19, 23])], [z], {"x": 4})


def conv_variants_model() -> onnx.ModelProto:
    """Conv1dInt (dilation, asymmetric pads, stride), ConvTranspose2dInt (stride, pads,
    output_padding, groups), a 16-bit-weight conv, and a float (no o_bits) output."""
    b = Builder()
    a = b.conv("x", 6, 8, 3, 5, 4, op_type="Conv1dInt", pads=[2, 1], dilations=[2],
               strides=[2])
    a = b.conv(a, 8, 4, 5, 4, 4, op_type="Conv1dInt", pads=[0, 3], parameter_bits=4,
               w_lo=-8, w_hi=8)
    t = b.conv("img", 4, 6, 3, 4, 4, op_type="ConvTranspose2dInt", group=2,
               strides=[2, 2], pads=[1, 0, 1, 1], output_padding=[1, 0])
    t = b.conv(t, 6, 4, (2, 3), 4, 3, w_lo=-3000, w_hi=3000, w_dtype=np.int16,
               parameter_bits=16, pads=[0, 1, 1, 0])
    f = b.conv(t, 4, 3, 3, 3, None, o_bits=None, pads=[1, 1, 1, 1])
    return b.build([value_info("x", np.int8, [1, 6, 17]), value_info("img", np.int8,
                                                                      [1, 4, 5, 6])],
                   [a, f], {"x": 5, "img": 4})


def pool_model() -> onnx.ModelProto:
    """MaxPool ceil mode + pads + dilation, AvgPool ceil mode without pad counting (divisor
    varies), non-power-of-two window, divisor_override, global average, 1-D pooling."""
    b = Builder()
    m = b.op("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
             ceil_mode=1)
    m2 = b.op("MaxPool", ["x"], kernel_shape=[2, 3], strides=[1, 2], dilations=[2, 1])
    a = b.op("AvgPool2dInt", [m], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0],
             ceil_mode=1, count_include_pad=0, scale_x=16.0, scale_o=32.0, o_bits=8)
    a2 = b.op("AvgPool2dInt", ["x"], kernel_shape=[3, 2], strides=[3, 2], scale_x=16.0,
              scale_o=8.0, divisor_override=5, o_bits=8)
    g = b.op("AvgPool2dInt", [m2], scale_x=16.0, scale_o=16.0, o_bits=8)  # global
    s = b.op("AvgPool2dInt", ["seq"], kernel_shape=[4], strides=[3], pads=[2, 1],
             scale_x=8.0, scale_o=16.0, o_bits=16, ceil_mode=1)
    m3 = b.op("MaxPool", ["seq"], kernel_shape=[3], strides=[2], pads=[1, 1])
    return b.build([value_info("x", np.int8, [1, 3, 13, 14]),
                    value_info("seq", np.int8, [1, 5, 22])], [a, a2, g, s, m3],
                   {"x": 4, "seq": 3})


def elementwise_model() -> onnx.ModelProto:
    """iqAdd/iqSub/iqMul with broadcasting, iqCat with different scales, PRelu, Requant
    (narrowing and widening to int16), BatchNorm2dInt, plain Concat, standalone Relu/Clip, a Relu
    fused into iqMul."""
    b = Builder()
    add = b.op("iqAdd", ["x", "y"], scale_x=16.0, scale_y=64.0, scale_o=8.0, o_bits=8)
    sub = b.op("iqSub", [add, "x"], scale_x=8.0, scale_y=16.0, scale_o=16.0, o_bits=8)
    ry = b.op("Relu", ["y"])  # standalone (nothing to fuse into)
    mul = b.op("iqMul", [sub, ry], scale_x=16.0, scale_y=64.0, scale_o=32.0, o_bits=8)
    r = b.op("Relu", [mul])  # fused into the iqMul (fused_clip)
    c = b.op("Clip", [add], min=-30.0, max=50.0)
    cat = b.op("iqCat", [r, c, "x"], scale_x_0=32.0, scale_x_1=8.0, scale_x_2=16.0,
               scale_o=16.0, dim=1, o_bits=8)
    p = b.op("PRelu", [cat, b.const(_ints((12, 1, 1), -100, 100))], scale_x=16.0,
             scale_w=128.0, scale_o=8.0, o_bits=8)
    narrow = b.op("Requant", [p], scale_x=8.0, scale_o=2.0, o_bits=8)
    wide = b.op("Requant", [p], scale_x=8.0, scale_o=512.0, o_bits=16)
    bn = b.op("BatchNorm2dInt", [p, b.const(_ints(12, -90, 90)),
                                 b.const(_ints(12, -2000, 2000, np.int32))],
              scale_x=8.0, scale_w=64.0, scale_o=16.0, o_bits=8)
    both = b.op("Concat", [bn, bn], axis=2)
    return b.build([value_info("x", np.int8, [1, 4, 5, 6]), value_info("y", np.int8,
                                                                        [1, 4, 1, 1])],
                   [narrow, wide, both], {"x": 4, "y": 6})


def int16_model() -> onnx.ModelProto:
    """int16 activations through conv (int64 accumulator path), 16-bit output, LinearInt with
    transB=0 and 4-bit weights, a float output, and a LinearInt on a 3-D input."""
    b = Builder()
    c = b.conv("x", 3, 4, 3, 10, 8, o_bits=16, pads=[1, 1, 1, 1], data_bits=16)
    f = b.op("Flatten", [c], axis=1)
    w = b.const(_ints((4 * 6 * 6, 10), -8, 8))
    lin = b.op("LinearInt", [f, w, b.const(_ints(10, -500, 500, np.int32))], scale_x=256.0,
               scale_w=128.0, scale_o=8.0, o_bits=8, transB=0, parameter_bits=4)
    flo = b.op("LinearInt", [lin, b.const(_ints((7, 10)))], scale_x=8.0, scale_w=128.0)
    seq = b.op("LinearInt", ["s", b.const(_ints((3, 8))), b.const(_ints(3, -99, 99, np.int32))],
               scale_x=16.0, scale_w=64.0, scale_o=4.0, o_bits=8, act_type=1)
    return b.build([value_info("x", np.int16, [1, 3, 6, 6]), value_info("s", np.int8,
                                                                         [1, 5, 8])],
                   [flo, seq], {"x": 10, "s": 4})


def shape_model() -> onnx.ModelProto:
    """Transpose, Slice (negative steps, axes), Split (equal and sized), Pad (constant, reflect,
    edge), iqPad, Gather (constant and computed indices), Squeeze/Unsqueeze/Flatten/Reshape."""
    b = Builder()
    t = b.op("Transpose", ["x"], perm=[0, 2, 3, 1])
    s = b.op("Slice", [t, b.const(np.array([5, 1], np.int64)), b.const(np.array([-7, 9], np.int64)),
                       b.const(np.array([1, 3], np.int64)), b.const(np.array([-2, 3], np.int64))])
    parts = b.op("Split", ["x"], n_out=3, axis=1, split=[1, 2, 3])
    halves = b.op("Split", ["x"], n_out=2, axis=3)
    p1 = b.op("Pad", [parts[2], b.const(np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64)),
                      b.const(np.int8(-7))], mode="constant")
    p2 = b.op("Pad", [parts[1], b.const(np.array([0, 0, 2, 5, 0, 0, 1, 4], np.int64))],
              mode="reflect")
    p3 = b.op("iqPad", [halves[1], b.const(np.array([1, 2, 0, 3], np.int64))], mode="edge")
    g = b.op("Gather", [parts[0], b.const(np.array([[0, -1], [3, 2]], np.int64))], axis=2)
    g2 = b.op("Gather", ["x", "idx"], axis=3)
    sq = b.op("Squeeze", [parts[0], b.const(np.array([1], np.int64))])
    un = b.op("Unsqueeze", [sq, b.const(np.array([3], np.int64))])
    r = b.op("Reshape", [un, b.const(np.array([1, -1], np.int64))])
    return b.build([value_info("x", np.int8, [1, 6, 7, 8]), value_info("idx", np.int32, [3])],
                   [s, p1, p2, p3, g, g2, r], {"x": 4})


def venus_split_model() -> onnx.ModelProto:
    """Packed for venus: a conv over the 32 KiB weight limit is split along output channels
    and a grouped conv into one conv per group (Slice + convs + Concat)."""
    b = Builder()
    y = b.conv("x", 64, 96, 3, 4, 4, pads=[1, 1, 1, 1], w_lo=-20, w_hi=20)
    y = b.op("Relu", [y])
    y = b.conv(y, 96, 32, 3, 4, 3, group=4, pads=[1, 1, 1, 1])
    return b.build([value_info("x", np.int8, [1, 64, 6, 6])], [y], {"x": 4})


def quant_model() -> onnx.ModelProto:
    """Float input -> Quant -> conv -> Dequant: packed with --keep_quant so both edge ops
    stay; the output is float32."""
    b = Builder()
    q = b.op("Quant", ["x"], scale_x=32.0, data_bits=8)
    c = b.conv(q, 3, 4, 3, 5, 4, pads=[1, 1, 1, 1])
    d = b.op("Dequant", [c], scale_o=16.0)
    q16 = b.op("Quant", ["x"], scale_x=1024.0, data_bits=16)
    d16 = b.op("Dequant", [q16], scale_x=1024.0)
    return b.build([value_info("x", np.float32, [1, 3, 8, 8])], [d, d16], {})


MODELS = {
    "conv": (conv_model, "cortex-m", False),
    "venus_splits": (venus_split_model, "venus", False),
    "conv_variants": (conv_variants_model, "cortex-m", False),
    "pool": (pool_model, "cortex-m", False),
    "elementwise": (elementwise_model, "cortex-m", False),
    "int16": (int16_model, "cortex-m", False),
    "shape": (shape_model, "cortex-m", False),
    "quant": (quant_model, "cortex-m", True),
}


def _nonlinear_model() -> onnx.ModelProto:
    from c_nonlinear_models import compact_model  # its own module: imports this one

    return compact_model()


MODELS["nonlinear"] = (_nonlinear_model, "cortex-m", False)  # more in test_c_nonlinear.py


def _arith_model() -> onnx.ModelProto:
    from c_arith_models import compact_model  # its own module: imports this one

    return compact_model()


MODELS["arith"] = (_arith_model, "cortex-m", False)  # more in test_c_arith.py


def _rnn_model() -> onnx.ModelProto:
    from c_rnn_models import compact_model  # its own module: imports this one

    return compact_model()


MODELS["rnn"] = (_rnn_model, "cortex-m", False)  # more in test_c_rnn.py
