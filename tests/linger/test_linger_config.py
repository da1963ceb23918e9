"""Configuration: YAML or dict, validated, asked per layer."""

import pytest

import linger
from linger.config import DEFAULTS, Config, load_config


def test_defaults_are_the_documented_ones():
    c = load_config(None)
    assert (c.weight_bits, c.activate_bits, c.bias_bits, c.qat_method) == (8, 8, 32, "MOM")
    assert (c.clamp_factor_value, c.clamp_activation_value, c.momentum) == (7.0, 8.0, 0.1)
    assert c.platform is None and c.conventional_check == "error"


def test_an_unknown_key_is_an_error_that_lists_the_valid_keys():
    with pytest.raises(linger.LingerConfigError) as err:
        load_config({"weight_bit": 4})
    message = str(err.value)
    assert "'weight_bit'" in message
    assert all(key in message for key in DEFAULTS)


def test_an_unknown_key_inside_an_override_lists_the_keys_an_override_takes():
    with pytest.raises(linger.LingerConfigError, match=r"platform.*valid keys are: "
                       r"activate_bits, momentum, qat_method, round_mode, weight_bits"):
        load_config({"submodel_overrides": {"head": {"platform": "venus"}}})


@pytest.mark.parametrize("key, value, allowed", [
    ("weight_bits", 2, r"\[4, 8\]"), ("activate_bits", 4, r"\[8, 16\]"),
    ("bias_bits", 16, r"\[32\]"), ("qat_method", "LSQ", "MOM', 'TQT"),
    ("platform", "jupiter", "venus"), ("conventional_check", "ignore", "warn"),
])
def test_values_out_of_range_name_key_value_and_choices(key, value, allowed):
    with pytest.raises(linger.LingerConfigError, match=f"{key} = {value!r}.*{allowed}"):
        load_config({key: value})


def test_yaml_files_are_read(tmp_path):
    path = tmp_path / "linger.yaml"
    path.write_text("weight_bits: 4\nqat_method: tqt\nplatform: venus\n"
                    "disable_submodel: [head]\n"
                    "module_overrides: {Linear: {weight_bits: 8}}\n")
    c = load_config(str(path))
    assert (c.weight_bits, c.qat_method, c.platform) == (4, "TQT", "venus")
    assert c.is_disabled("head.fc", "Linear") and not c.is_disabled("header", "Linear")


def test_a_broken_or_missing_yaml_file_is_a_config_error(tmp_path):
    with pytest.raises(linger.LingerConfigError, match="no such config file"):
        load_config(str(tmp_path / "absent.yaml"))
    path = tmp_path / "bad.yaml"
    path.write_text("weight_bits: [4\n")
    with pytest.raises(linger.LingerConfigError, match="not valid YAML"):
        load_config(str(path))
    path.write_text("- 4\n")
    with pytest.raises(linger.LingerConfigError, match="mapping"):
        load_config(str(path))


def test_overrides_apply_by_type_then_by_longest_prefix():
    c = load_config({
        "weight_bits": 4,
        "module_overrides": {"Linear": {"weight_bits": 8}},
        "submodel_overrides": {"features": {"activate_bits": 16},
                               "features.3": {"activate_bits": 8, "qat_method": "TQT"}},
    })
    assert c.layer("classifier.1", "Linear").weight_bits == 8
    assert c.layer("features.0", "Conv2d").activate_bits == 16
    layer = c.layer("features.3", "Conv2d")
    assert (layer.weight_bits, layer.activate_bits, layer.qat_method) == (4, 8, "TQT")
    assert c.layer("features.30", "Conv2d").activate_bits == 16  # prefix means a path part


def test_a_config_object_passes_through_and_a_wrong_type_is_refused():
    c = Config(weight_bits=4)
    assert load_config(c) is c
    with pytest.raises(linger.LingerConfigError, match="dict, a YAML file path or None"):
        load_config(42)
