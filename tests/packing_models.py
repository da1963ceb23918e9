"""Quantized thinker-dialect models built with onnx.helper for tpacker tests."""

from __future__ import annotations

import numpy as np
import onnx

from onnx_build import model, node, value_info

RNG = np.random.default_rng(11)


def conv_params(name, cout, cin, k, lo=-40, hi=40, bias=True, depthwise=False, group=1):
    cg = 1 if depthwise else cin // group
    shape = (cout, cg, *k) if isinstance(k, tuple) else (cout, cg, k, k)
    inits = {f"{name}.w": RNG.integers(lo, hi, shape, dtype=np.int8)}
    if bias:
        inits[f"{name}.b"] = RNG.integers(-3000, 3000, cout, dtype=np.int32)
    return inits


def conv(name, x, y, cout, cin, k, q_in, q_out, stride=1, pad=None, group=1, bias=True,
         dilation=1, o_bits=8, depthwise=False, **extra):
    k2 = (k, k) if isinstance(k, int) else k
    pad = (k2[0] // 2) * dilation if pad is None else pad
    pads = [pad] * 4 if isinstance(pad, int) else list(pad)
    inits = conv_params(name, cout, cin, k2, bias=bias, depthwise=depthwise, group=group)
    ins = [x, f"{name}.w"] + ([f"{name}.b"] if bias else [])
    n = node("Conv2dInt", ins, [y], name=name, scale_x=2.0**q_in, scale_w=2.0**7,
             scale_o=2.0**q_out, o_bits=o_bits, kernel_shape=list(k2), strides=[stride] * 2,
             pads=pads, dilations=[dilation] * 2, group=group, **extra)
    return n, inits


def small_cnn(hw: int = 16, channels: int = 8, classes: int = 10) -> onnx.ModelProto:
    """Quant -> conv/relu -> dw conv -> pw conv + residual add -> maxpool -> avgpool ->
    reshape -> linear -> dequant: every common op and both edge Quant/Dequant."""
    nodes, inits = [node("Quant", ["x"], ["q"], name="quant", scale_x=32.0)], {}

    def add(pair):
        nodes.append(pair[0])
        inits.update(pair[1])

    add(conv("conv1", "q", "c1", channels, 3, 3, 5, 4))
    nodes.append(node("Relu", ["c1"], ["r1"], name="relu1"))
    add(conv("dw", "r1", "d1", channels, channels, 3, 4, 4, group=channels, depthwise=True))
    nodes.append(node("Relu", ["d1"], ["r2"], name="relu2"))
    add(conv("pw", "r2", "p1", channels, channels, 1, 4, 4, pad=0))
    nodes.append(node("iqAdd", ["p1", "r1"], ["a1"], name="add1", scale_x=16.0, scale_y=16.0,
                      scale_o=8.0))
    nodes.append(node("MaxPool", ["a1"], ["m1"], name="pool1", kernel_shape=[2, 2],
                      strides=[2, 2]))
    half = hw // 2
    nodes.append(node("AvgPool2dInt", ["m1"], ["g1"], name="gap", kernel_shape=[half, half],
                      strides=[half, half], scale_x=8.0, scale_o=8.0, o_bits=8))
    inits["shape"] = np.array([1, channels], dtype=np.int64)
    nodes.append(node("Reshape", ["g1", "shape"], ["f1"], name="flat"))
    inits["fc.w"] = RNG.integers(-60, 60, (classes, channels), dtype=np.int8)
    inits["fc.b"] = RNG.integers(-500, 500, classes, dtype=np.int32)
    nodes.append(node("LinearInt", ["f1", "fc.w", "fc.b"], ["l1"], name="fc", scale_x=8.0,
                      scale_w=128.0, scale_o=4.0, o_bits=8))
    nodes.append(node("Dequant", ["l1"], ["y"], name="dequant", scale_o=4.0))
    return model(nodes, [value_info("x", np.float32, [1, 3, hw, hw])], ["y"], inits)


def single_conv_model(cout, cin, k, hw, q_in=4, q_out=3, **kw) -> onnx.ModelProto:
    """int8 input -> one Conv2dInt -> int8 output (no edge Quant/Dequant)."""
    n, inits = conv("conv", "x", "y", cout, cin, k, q_in, q_out, **kw)
    hw2 = (hw, hw) if isinstance(hw, int) else hw
    m = model([n], [value_info("x", np.int8, [1, cin, *hw2])], ["y"], inits)
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", str(q_in)
    return m


def linear_model(out_f, in_f, bits=8) -> onnx.ModelProto:
    w = RNG.integers(-7 if bits == 4 else -60, 8 if bits == 4 else 60, (out_f, in_f),
                     dtype=np.int8)
    n = node("LinearInt", ["x", "w"], ["y"], name="fc", scale_x=16.0, scale_w=128.0,
             scale_o=8.0, o_bits=8, parameter_bits=bits)
    m = model([n], [value_info("x", np.int8, [1, in_f])], ["y"], {"w": w})
    entry = m.metadata_props.add()
    entry.key, entry.value = "thinker:exponent:x", "4"
    return m
