"""Golden integer tests per op: every expected value below is derived by hand in a comment
(ties on both signs, saturation at both ends, odd/even and zero shifts)."""

import numpy as np
import pytest

from onnx_build import Const, run_op
from thinker.errors import ThinkerModelError

I8 = np.int8


def test_quant_rounds_half_up_and_saturates():
    x = np.array([[0.25, -0.25, 0.75, -0.75, 0.2, 70.0, -70.0]], dtype=np.float32)
    # scale 2: x*2 = .5 -.5 1.5 -1.5 .4 140 -140 ; floor(+.5) = 1 0 2 -1 0 sat 127 -128
    y = run_op("Quant", [x], scale_x=2.0, data_bits=8)
    assert y.dtype == np.int8
    assert y.tolist() == [[1, 0, 2, -1, 0, 127, -128]]


def test_quant_to_16_bits():
    x = np.array([[1000.0, -1000.0, 0.5]], dtype=np.float32)
    # scale 64: 64000 -> sat 32767; -64000 -> -32768; 32
    y = run_op("Quant", [x], scale_x=64.0, data_bits=16)
    assert y.dtype == np.int16 and y.tolist() == [[32767, -32768, 32]]


def test_dequant_divides_by_scale_o():
    y = run_op("Dequant", [np.array([[64, -1, 127]], dtype=I8)], scale_o=16.0)
    assert y.dtype == np.float32 and y.tolist() == [[4.0, -0.0625, 7.9375]]


def test_requant_narrows_with_rounding_and_widens_with_left_shift():
    x = np.array([[5, 6, -6, -7, 127, -128, 2]], dtype=I8)
    # q 6 -> 4 (shift 2): 1.25->1, 1.5->2, -1.5->-1, -1.75->-2, 31.75->32, -32, 0.5->1
    y = run_op("Requant", [x], scale_x=64.0, scale_o=16.0, o_bits=8)
    assert y.tolist() == [[1, 2, -1, -2, 32, -32, 1]]
    # q 6 -> 8 at 16 bits: times 4, no saturation
    y16 = run_op("Requant", [x], scale_x=64.0, scale_o=256.0, o_bits=16)
    assert y16.dtype == np.int16 and y16.tolist() == [[20, 24, -24, -28, 508, -512, 8]]
    # q 0 -> 2 at 8 bits saturates
    assert run_op("Requant", [x], scale_x=1.0, scale_o=4.0, o_bits=8).tolist() == \
        [[20, 24, -24, -28, 127, -128, 8]]


def conv_case():
    x = np.arange(1, 10, dtype=I8).reshape(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    w = Const(np.array([[[[1, 0], [0, -1]]]], dtype=I8))  # x[i,j] - x[i+1,j+1] = -4
    b = Const(np.array([1], dtype=np.int32))  # acc = -3 everywhere
    return x, w, b


def test_conv2d_requantizes_accumulator_plus_bias_with_rounding_shift():
    x, w, b = conv_case()
    # qx 0 + qw 0 - qo -1 = shift 1: rshift_round(-3, 1) = -1 (tie toward +inf)
    y = run_op("Conv2dInt", [x, w, b], scale_x=1.0, scale_w=1.0, scale_o=0.5, o_bits=8,
               kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    assert y.dtype == np.int8 and y.tolist() == [[[[-1, -1], [-1, -1]]]]


def test_conv2d_without_o_bits_outputs_float_accumulator():
    x, w, b = conv_case()
    # no o_bits: acc / 2**(qx+qw) = -3 / 2**(1+1)
    y = run_op("Conv2dInt", [x, w, b], scale_x=2.0, scale_w=2.0, kernel_shape=[2, 2])
    assert y.dtype == np.float32 and y.tolist() == [[[[-0.75, -0.75], [-0.75, -0.75]]]]


def test_conv2d_saturates_and_applies_padding_as_zero():
    x = np.full((1, 1, 2, 2), 127, dtype=I8)
    w = Const(np.full((1, 1, 3, 3), 127, dtype=I8))
    # pads 1: every 3x3 window covers all 4 inputs: 4*127*127 = 64516; shift 0 -> sat 127
    y = run_op("Conv2dInt", [x, w], scale_x=1.0, scale_w=1.0, scale_o=1.0, o_bits=8,
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert y.tolist() == [[[[127, 127], [127, 127]]]]
    neg = run_op("Conv2dInt", [-x, w], scale_x=1.0, scale_w=1.0, scale_o=1.0, o_bits=8,
                 kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert neg.tolist() == [[[[-128, -128], [-128, -128]]]]


def test_conv1d_on_a_sequence():
    x = np.array([[[1, 2, 3, 4]]], dtype=I8)
    w = Const(np.array([[[1, 1]]], dtype=I8))
    # pairwise sums 3 5 7, shift 1: 1.5->2, 2.5->3, 3.5->4
    y = run_op("Conv1dInt", [x, w], scale_x=1.0, scale_w=1.0, scale_o=0.5, o_bits=8,
               kernel_shape=[2], strides=[1], pads=[0, 0], dilations=[1])
    assert y.tolist() == [[[2, 3, 4]]]


def test_conv_transpose_scatters_each_input_through_the_kernel():
    x = np.array([[[[1, 2]]]], dtype=I8)  # 1x1x1x2
    w = Const(np.array([[[[1, 10]]]], dtype=I8))  # C=1, O=1, 1x2 kernel
    # stride 2: x0 -> [1, 10] at 0..1, x1 -> [2, 20] at 2..3 => [1, 10, 2, 20]
    y = run_op("ConvTranspose2dInt", [x, w], scale_x=1.0, scale_w=1.0, scale_o=1.0, o_bits=8,
               kernel_shape=[1, 2], strides=[1, 2])
    assert y.tolist() == [[[[1, 10, 2, 20]]]]
    # stride 1 overlaps: [1, 10+2, 20] = [1, 12, 20]
    y1 = run_op("ConvTranspose2dInt", [x, w], scale_x=1.0, scale_w=1.0, scale_o=1.0,
                o_bits=8, kernel_shape=[1, 2])
    assert y1.tolist() == [[[[1, 12, 20]]]]


def test_linear_int_rounds_ties_up_per_output():
    x = np.array([[1, 2]], dtype=I8)
    w = Const(np.array([[3, 4], [-5, 6]], dtype=I8))
    b = Const(np.array([1, -1], dtype=np.int32))
    # acc = [3+8+1, -5+12-1] = [12, 6]; shift 2 -> [3, 1.5 -> 2]
    y = run_op("LinearInt", [x, w, b], scale_x=2.0, scale_w=2.0, scale_o=1.0, o_bits=8)
    assert y.tolist() == [[3, 2]]


def test_linear_int_on_3d_input_and_negative_tie():
    x = np.array([[[1, -2], [0, 1]]], dtype=I8)  # [1, 2, 2]
    w = Const(np.array([[1, 2]], dtype=I8))
    # acc = [1-4, 0+2] = [-3, 2]; shift 1 -> [-1.5 -> -1, 1]
    y = run_op("LinearInt", [x, w], scale_x=1.0, scale_w=2.0, scale_o=1.0, o_bits=8)
    assert y.shape == (1, 2, 1) and y.tolist() == [[[-1], [1]]]


def test_batchnorm_int_scales_each_channel():
    x = np.array([[[[3, -3]], [[5, -5]]]], dtype=I8)  # [1, 2, 1, 2]
    alpha, beta = Const(np.array([3, 1], dtype=I8)), Const(np.array([1, 0], dtype=np.int32))
    # c0: 9+1=10 -> 5, -9+1=-8 -> -4 ; c1: 5 -> 2.5 -> 3, -5 -> -2.5 -> -2   (shift 1)
    y = run_op("BatchNorm2dInt", [x, alpha, beta], scale_x=1.0, scale_w=1.0, scale_o=0.5,
               o_bits=8)
    assert y.tolist() == [[[[5, -4]], [[3, -2]]]]


def test_avgpool_divides_with_half_up_rounding_and_ceil_mode_partial_window():
    x = np.array([[[[1, 2, 3, 4, 6]]]], dtype=I8)
    # windows of 2, stride 2, ceil: [1,2]=1.5->2, [3,4]=3.5->4, [6] alone /1 = 6
    y = run_op("AvgPool2dInt", [x], kernel_shape=[1, 2], strides=[1, 2], pads=[0, 0, 0, 0],
               ceil_mode=1, scale_x=4.0, scale_o=4.0, o_bits=8)
    assert y.tolist() == [[[[2, 4, 6]]]]
    # output at half the scale: 3/4=.75->1, 7/4=1.75->2, 6/2=3
    y2 = run_op("AvgPool2dInt", [x], kernel_shape=[1, 2], strides=[1, 2], ceil_mode=1,
                scale_x=4.0, scale_o=2.0, o_bits=8)
    assert y2.tolist() == [[[[1, 2, 3]]]]
    # negative tie: (-1-2)/2 = -1.5 -> -1
    y3 = run_op("AvgPool2dInt", [-x], kernel_shape=[1, 2], strides=[1, 2], scale_x=1.0)
    assert y3.tolist() == [[[[-1, -3]]]]


def test_avgpool_counts_padding_in_the_divisor():
    x = np.array([[[[4, 8]]]], dtype=I8)
    # pads 1 left/right, kernel 2 stride 2 -> windows [0,4]=2, [8,0]=4
    y = run_op("AvgPool2dInt", [x], kernel_shape=[1, 2], strides=[1, 2], pads=[0, 1, 0, 1],
               scale_x=1.0)
    assert y.tolist() == [[[[2, 4]]]]


def test_global_avgpool_with_a_window_that_is_not_a_power_of_two():
    x = np.array([[[[1, 1, 1], [2, 2, 2], [1, 1, 2]], [[-5, -5, -5], [-5, -5, -5],
                                                       [-5, -5, -1]]]], dtype=I8)
    # sums 13 and -41 over 9: 1.44 -> 1 ; -4.56 -> -5
    y = run_op("AvgPool2dInt", [x], kernel_shape=[3, 3], strides=[3, 3], scale_x=1.0)
    assert y.tolist() == [[[[1]], [[-5]]]]


def test_maxpool_padding_never_wins():
    x = np.array([[[[-100, -50], [-7, -128]]]], dtype=I8)
    y = run_op("MaxPool", [x], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0])
    # windows over padded grid: [-100], [-100,-50], [-100,-7], all four
    assert y.tolist() == [[[[-100, -50], [-7, -7]]]]


def test_iqadd_rescales_each_input_before_the_saturating_add():
    x = np.array([[64, 3, -3, 127]], dtype=I8)  # q 6
    y = np.array([[32, 1, -1, -128]], dtype=I8)  # q 5
    # x -> q5: 32, 1.5->2, -1.5->-1, 63.5->64 ; then + y = 64, 3, -2, -64
    z = run_op("iqAdd", [x, y], scale_x=64.0, scale_y=32.0, scale_o=32.0)
    assert z.tolist() == [[64, 3, -2, -64]]
    # rounding each input separately differs from rounding the exact sum:
    # x=1 (q1 -> 0.5 -> 1) + y=1 (q1 -> 1) = 2, while (1+1)/2 exact = 1
    assert run_op("iqAdd", [np.array([[1]], I8), np.array([[1]], I8)], scale_x=2.0,
                  scale_y=2.0, scale_o=1.0).tolist() == [[2]]
    # saturation at both ends
    big = np.array([[127, -128]], dtype=I8)
    assert run_op("iqAdd", [big, big], scale_x=1.0, scale_y=1.0, scale_o=1.0).tolist() == \
        [[127, -128]]


def test_iqsub_rescales_then_subtracts_with_saturation():
    x = np.array([[3, -128, 10]], dtype=I8)  # q 1
    y = np.array([[1, 127, 10]], dtype=I8)  # q 0
    # x -> q0: 1.5->2, -64, 5 ; minus y: 1, -191->-128, -5
    z = run_op("iqSub", [x, y], scale_x=2.0, scale_y=1.0, scale_o=1.0)
    assert z.tolist() == [[1, -128, -5]]


def test_iqmul_rescales_the_product():
    x = np.array([[16, 3, -3, 127]], dtype=I8)
    y = np.array([[16, 8, 8, 127]], dtype=I8)
    # q 4 * q 4 = q 8 -> q 4: 256/16=16, 24/16=1.5->2, -1.5->-1, 16129/16=1008 -> 127
    z = run_op("iqMul", [x, y], scale_x=16.0, scale_y=16.0, scale_o=16.0)
    assert z.tolist() == [[16, 2, -1, 127]]


def test_iqcat_rescales_each_input_to_the_output_scale():
    a = np.array([[3, -3]], dtype=I8)  # q 2 -> q 1: 1.5->2, -1.5->-1
    b = np.array([[100, -100]], dtype=I8)  # q 0 -> q 1: 200->127, -200->-128
    z = run_op("iqCat", [a, b], scale_x_0=4.0, scale_x_1=1.0, scale_o=2.0, dim=1)
    assert z.tolist() == [[2, -1, 127, -128]]


def test_relu_and_clip_compare_raw_integers():
    x = np.array([[-128, -1, 0, 5, 127]], dtype=I8)
    assert run_op("Relu", [x]).tolist() == [[0, 0, 0, 5, 127]]
    lo, hi = Const(np.array(0, dtype=I8)), Const(np.array(96, dtype=I8))
    assert run_op("Clip", [x, lo, hi]).tolist() == [[0, 0, 0, 5, 96]]
    assert run_op("Clip", [x], opset=6, min=-2.0, max=3.0).tolist() == [[-2, -1, 0, 3, 3]]


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32])
def test_relu_keeps_every_width_and_the_dtype(dtype):
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 2.0**100
    x = np.array([[-top, -1, 0, 5, top]], dtype=dtype)
    y = run_op("Relu", [x])
    assert y.dtype == dtype and y.tolist() == [[0, 0, 0, 5, top]]


def test_prelu_rescales_the_negative_side_by_the_slope():
    x = np.array([[[4, -4, -3]]], dtype=I8)  # [1, 1, 3]
    slope = Const(np.array([[1]], dtype=I8))  # q 2: 0.25
    # positives unchanged; -4*1 = -4 at q 2 -> q 0: -1 ; -3 -> -0.75 -> -1
    y = run_op("PRelu", [x, slope], scale_x=1.0, scale_w=4.0, scale_o=1.0)
    assert y.tolist() == [[[4, -1, -1]]]


def test_unsupported_scale_is_reported_with_node_and_value():
    x, w, b = conv_case()
    with pytest.raises(ThinkerModelError, match=r"Conv2dInt_node.*scale_w: scale 3.0"):
        run_op("Conv2dInt", [x, w, b], scale_x=1.0, scale_w=3.0, scale_o=1.0, o_bits=8)
