"""linger reads the original linger's YAML config (``clamp_info`` / ``quant_info`` / ``partX``
blocks, doc/tutorial/quant_advanced_guide.md) with the original's meaning, and refuses what has
no equivalent with a message naming the key."""

import pytest

pytest.importorskip("torch")

import torch
import torch.nn as nn

import linger
from linger.errors import LingerConfigError

# doc/tutorial/quant_advanced_guide.md of the original linger, verbatim
DOCUMENTED = """\
clamp_info: # 约束信息配置
    clamp_activation_value: 8   # 激活约束浮点值，8代表约束到[-8, 8]
    clamp_bias_value: null      # bias约束浮点值，默认值为None
    clamp_factor_value: 7       # weight动态约束参数，默认值为7，代表约束到weight.abs().mean() * 7
    clamp_weight_value: null    # weight静态约束值，默认值为None
device: cuda
dtype: torch.float32    # 默认浮点数据类型
open_quant: true
platform: venusA        # 平台设置，目前支持arcs, mars, venusA
quant_info: #量化信息配置
    a_calibrate_name: top_10    # 激活校准方法，默认top_10，一般不需要修改
    a_strategy: RANGE_MEAN      # 激活量化原理
    activate_bits: 8            # 激活数据位宽，默认8bit，支持8bit，16bit，32bit
    activation_type: none       # 激活类型，默认None
    bias_bits: 32               # bias数据位宽，默认32bit
    is_perchannel: false        # perchannel量化开关，暂不支持此功能
    is_symmetry: true           # 对称/非对称量化开关，目前只支持对称量化
    qat_method: MOM             # QAT量化方案，支持MOM和TQT
    round_mode: floor_add       # 舍入方式，默认支持floor+0.5
    w_calibrate_name: abs_max   # 权重校准原理，默认abs_max，一般不需要修改
    w_strategy: RANGE_MEAN      # 权重量化原理
    weight_bits: 8              # 权重位宽，默认8bit，支持4bit，8bit
quant_method: NATIVE            # 量化/伪量化方式，默认NATIVE，支持NATIVE、CUDA、ONNX
seed: 42
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_documented_original_config_loads(tmp_path):
    config = linger.load_config(write(tmp_path, DOCUMENTED))
    assert config.platform == "venusA"
    assert (config.weight_bits, config.activate_bits, config.bias_bits) == (8, 8, 32)
    assert config.qat_method == "MOM" and config.round_mode == "floor_add"
    assert (config.clamp_activation_value, config.clamp_factor_value) == (8.0, 7.0)


def test_parts_become_submodel_overrides_with_the_originals_rules(tmp_path):
    text = DOCUMENTED.replace("weight_bits: 8              # 权重位宽", "weight_bits: 4  # w") + """
part1:
    name: [features, classifier.0]
    quant_info:
        weight_bits: 8
        activate_bits: 16
part2:
    name: [features.3, head]
    quant_info:
        qat_method: TQT
        round_mode: floor
"""
    config = linger.load_config(write(tmp_path, text))
    assert config.weight_bits == 4
    # a part starts from the original's defaults (weight_bits 8), not the global block
    assert config.submodel_overrides["features"] == {
        "weight_bits": 8, "activate_bits": 16, "qat_method": "MOM", "round_mode": "floor_add"}
    assert config.submodel_overrides["head"] == {
        "weight_bits": 8, "activate_bits": 8, "qat_method": "TQT", "round_mode": "floor"}
    # the first part naming a module wins (the original's _match_part): features.3 stays part1
    assert "features.3" not in config.submodel_overrides
    assert config.layer("features.3.conv").activate_bits == 16
    assert config.layer("head").qat_method == "TQT"


def test_platform_in_the_originals_case(tmp_path):
    config = linger.load_config(write(tmp_path, "platform: venusa\nquant_info: {}\n"))
    assert config.platform == "venusA"


@pytest.mark.parametrize("line, key", [
    ("quant_info: {is_perchannel: true}", "is_perchannel"),
    ("quant_info: {is_symmetry: false}", "is_symmetry"),
    ("quant_info: {activation_type: Relu}", "activation_type"),
    ("clamp_info: {clamp_weight_value: 0.5}", "clamp_weight_value"),
    ("clamp_info: {clamp_bias_value: 1.0}", "clamp_bias_value"),
    ("open_quant: false", "open_quant"),
    ("dtype: torch.float16", "dtype"),
    ("part1: {name: [fc], quant_info: {output_bits: 16}}", "output_bits"),
    ("part1: {name: [fc], clamp_info: {clamp_activation_value: 4}}", "clamp values"),
])
def test_what_has_no_equivalent_is_refused_naming_the_key(tmp_path, line, key):
    with pytest.raises(LingerConfigError, match=f"{key}.*no equivalent in linger; "):
        linger.load_config(write(tmp_path, line + "\n"))


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(LingerConfigError, match="unknown key\\(s\\) 'weight_bitz'"):
        linger.load_config(write(tmp_path, "quant_info: {weight_bitz: 8}\n"))
    with pytest.raises(LingerConfigError, match="unknown key 'colour'"):
        linger.load_config(write(tmp_path, "quant_info: {}\ncolour: red\n"))


def test_init_applies_the_original_config(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    text = DOCUMENTED + """
part1:
    name: ['3']
    quant_info: {activate_bits: 16}
"""
    qmodel = linger.init(model, write(tmp_path, text))
    with linger.calibration(qmodel):
        qmodel(torch.randn(4, 1, 4, 4))
    assert qmodel.get_submodule("3").linger_settings.activate_bits == 16
    assert qmodel.get_submodule("0").linger_settings.activate_bits == 8
    assert qmodel.get_submodule("0").linger_settings.platform == "venusA"
