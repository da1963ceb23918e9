"""Conventional check at init: layers that break the target chip's rules are reported with
the module path, the rule, the value and the allowed range."""

import warnings
from pathlib import Path

import pytest
import torch.nn as nn

import linger


class Net(nn.Module):
    def __init__(self, **conv):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.body.add_module("wide", nn.Conv2d(8, 8, **conv))

    def forward(self, x):
        return self.body(x)


def init(platform, mode="error", **conv):
    return linger.init(Net(**conv), {"platform": platform, "conventional_check": mode})


def test_a_kernel_tpacker_cannot_split_fails_on_venus_naming_path_rule_value_and_range():
    # 7 taps in blocks of at most 5 are 4 + 3, and 3 < stride 4 (venus needs kernel >= stride)
    with pytest.raises(linger.LingerDeviceError) as err:
        init("venus", kernel_size=7, stride=4)
    message = str(err.value)
    assert "Conv2d 'body.wide'" in message
    assert "kernel_size 7x7" in message and "1..5" in message and "venus" in message
    assert "tpacker splits a larger kernel exactly only when" in message


@pytest.mark.parametrize("conv", [
    {"kernel_size": 7},                              # split into 4 + 3 taps
    {"kernel_size": (10, 4), "stride": 2},           # the MLPerf DS-CNN stem: 5 + 5 taps
    {"kernel_size": 3, "padding": 5},                # the excess padding becomes a Pad
    {"kernel_size": 3, "dilation": 2},               # zero taps: a 5x5 undilated kernel
    {"kernel_size": 1, "stride": 2},                 # a strided Slice, then stride 1
])
def test_geometries_tpacker_rewrites_exactly_are_accepted_on_venus(conv):
    init("venus", **conv)


def test_venus_limits_the_stride():
    with pytest.raises(linger.LingerDeviceError, match=r"stride 3x3.*\{1, 2, 4\}"):
        init("venus", kernel_size=3, stride=3)


def test_arcs_rewrites_kernels_and_dilations_it_lacks_but_not_strides():
    init("arcs", kernel_size=9, dilation=2, padding=8)
    init("venusA", kernel_size=12, dilation=8)
    init("arcs", kernel_size=7)
    init("arcs", kernel_size=3, dilation=3)
    with pytest.raises(linger.LingerDeviceError, match=r"stride 3x3 .*\{1, 2, 4\}"):
        init("arcs", kernel_size=3, stride=3)


def test_every_violation_is_listed_at_once():
    class TwoBad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, stride=3)
            self.b = nn.Conv2d(4, 4, 7, stride=4)

        def forward(self, x):
            return self.b(self.a(x))

    with pytest.raises(linger.LingerDeviceError, match="2 layer"):
        linger.init(TwoBad(), {"platform": "venus"})


def test_warn_mode_only_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = init("venus", "warn", kernel_size=3, stride=3)
    assert model is not None
    assert any("body.wide" in str(w.message) for w in caught)


def test_no_platform_means_no_check():
    init(None, kernel_size=7)


def test_conv1d_and_transposed_convs_are_checked_too():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(2, 2, 9, stride=3)
            self.up = nn.ConvTranspose2d(2, 2, 6, stride=2)

        def forward(self, x, y):
            return self.c1(x), self.up(y)

    with pytest.raises(linger.LingerDeviceError) as err:
        linger.init(Mixed(), {"platform": "venus"})
    assert "Conv1d 'c1': stride 3" in str(err.value)
    # tpacker rewrites plain convs only: a transposed conv must fit as it is
    assert "ConvTranspose2d 'up': kernel_size 6x6" in str(err.value)


def test_bit_widths_the_device_does_not_run_are_reported():
    with pytest.raises(linger.LingerDeviceError) as err:
        linger.init(Net(kernel_size=3), {"platform": "venus", "weight_bits": 4})
    assert "Conv2d 'body.0': weight_bits 4 breaks the venus rule weight_bits in {8, 16}" \
        in str(err.value)
    with pytest.raises(linger.LingerDeviceError, match=r"activate_bits 16 .*arcs.*\{8, 32\}"):
        linger.init(Net(kernel_size=3), {"platform": "arcs", "activate_bits": 16})


def test_a_transposed_kernel_smaller_than_its_stride_is_reported_where_the_device_needs_it():
    class Up(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(3, 3, 1, stride=2)

        def forward(self, x):
            return self.up(x)

    with pytest.raises(linger.LingerDeviceError, match=r"'up': kernel_size >= stride"):
        linger.init(Up(), {"platform": "venus"})
    linger.init(Up(), {"platform": "cortex-m"})


def test_the_rules_come_from_the_device_profile_files(tmp_path):
    from thinker.devices import PROFILE_DIR

    text = (Path(PROFILE_DIR) / "venus.toml").read_text().replace("kernel = [1, 5]",
                                                                 "kernel = [1, 7]")
    custom = tmp_path / "bigger-kernels.toml"
    custom.write_text(text)
    with pytest.raises(linger.LingerDeviceError):
        linger.init(Net(kernel_size=7, stride=4), {"platform": "venus"})
    linger.init(Net(kernel_size=7, stride=4), {"platform": str(custom)})
    with pytest.raises(linger.LingerConfigError, match="no such device profile"):
        linger.init(Net(kernel_size=3), {"platform": str(tmp_path / "absent.toml")})
