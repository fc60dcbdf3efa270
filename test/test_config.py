"""The shared config schema: defaults, the shipped file, ROS parameter mapping and clear errors."""

from __future__ import annotations

import pytest
import yaml

from spotvlm_ros.core.config import (
    ConfigError,
    SpotVlmConfig,
    config_from_dict,
    from_ros_params,
    load_config,
    parameter_specs,
    to_ros_params,
)


def test_defaults_load():
    config = load_config()
    assert config.task == "vqa"
    assert config.keyframes.max_in_flight == 1
    assert config.camera.reliability == "best_effort" and config.camera.depth == 1


def test_shipped_config_is_valid_and_lists_every_parameter(repo_root):
    path = repo_root / "config" / "spotvlm.yaml"
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == {"/**"} and "ros__parameters" in raw["/**"]
    assert load_config(path) == SpotVlmConfig()
    shipped = to_ros_params(config_from_dict(raw))
    nested = raw["/**"]["ros__parameters"]

    def leaves(d, prefix=""):
        for k, v in d.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]

    # ROS parameter files cannot hold an empty list (rcl's YAML parser finds no type): such keys are
    # shown as a comment, and the shipped file must not set them.
    empty_lists = {k for k, v in shipped.items() if v == []}
    assert empty_lists == {"camera.topics"}
    for key in empty_lists:
        assert f"# {key.split('.')[-1]}: [" in path.read_text(), f"config/spotvlm.yaml must show {key}"
    listed = set(shipped) - empty_lists
    assert set(leaves(nested)) == listed, "config/spotvlm.yaml must spell out every parameter"


def test_plain_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: caption\ncontext:\n  history_length: 2\n")
    config = load_config(path, overrides={"context.enabled": False, "focus.mode": "mark"})
    assert (config.task, config.context.history_length, config.context.enabled, config.focus.mode) == (
        "caption",
        2,
        False,
        "mark",
    )


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"context": {"max_context_age_s": "ten"}}, ["context.max_context_age_s", "'ten'"]),
        ({"keyframes": {"max_in_flight": 1.5}}, ["keyframes.max_in_flight", "1.5"]),
        ({"context": {"enabled": "yes"}}, ["context.enabled", "'yes'"]),
        ({"task": 3}, ["task", "3"]),
        ({"focus": {"bogus_key": 1}}, ["focus.bogus_key", "unknown key"]),
        ({"nonsense": {}}, ["nonsense", "unknown key"]),
        ({"keyframes": {"max_in_flight": 0}}, ["keyframes.max_in_flight", "0", "greater than or equal to 1"]),
        (
            {"keyframes": {"jpeg_quality": 101}},
            ["keyframes.jpeg_quality", "101", "less than or equal to 100"],
        ),
        ({"context": {"max_context_age_s": -1.0}}, ["context.max_context_age_s", "-1.0", "greater than 0"]),
        ({"focus": {"mode": "zoom"}}, ["focus.mode", "'zoom'", "'crop'"]),
        ({"edge": {"backend": "onnx"}}, ["edge.backend", "'onnx'"]),
        ({"latency": {"profiles": "constant:delay=1"}}, ["latency.profiles"]),
    ],
)
def test_bad_values_are_named(data, names):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    for name in names:
        assert name in str(info.value)


def test_several_errors_are_all_reported():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"seed": -1, "focus": {"crop_size": 1}})
    assert "seed = -1" in str(info.value) and "focus.crop_size = 1" in str(info.value)


def test_file_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)
    with pytest.raises(ConfigError, match="not a section"):
        load_config(None, overrides={"task": "vqa", "task.sub": 1})


def test_ros_params_roundtrip_and_are_ros_types():
    config = load_config(overrides={"context.max_context_age_s": 3.0, "camera.topic": "/cam/image"})
    params = to_ros_params(config)
    assert params["context.max_context_age_s"] == 3.0
    assert params["camera.topic"] == "/cam/image"
    for name, value in params.items():
        ok = isinstance(value, (bool, int, float, str)) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        assert ok, f"{name} = {value!r} is not a ROS parameter type"
    assert from_ros_params(params) == config
    with pytest.raises(ConfigError, match="focus.max_regions"):
        from_ros_params({**params, "focus.max_regions": -3})


def test_parameter_specs_carry_descriptions_ranges_and_choices():
    specs = {s.name: s for s in parameter_specs()}
    assert set(specs) == set(to_ros_params(SpotVlmConfig()))
    assert all(s.description for s in specs.values())
    jpeg = specs["keyframes.jpeg_quality"]
    assert (jpeg.minimum, jpeg.maximum, jpeg.default) == (10.0, 100.0, 90)
    assert specs["focus.mode"].choices == ("crop", "mark", "mask", "off")


@pytest.mark.parametrize("params", [True, 3, "x", ["a"]])
def test_ros_parameters_that_are_not_a_mapping_are_named(params, tmp_path):
    with pytest.raises(ConfigError, match="ros__parameters"):
        config_from_dict({"/**": {"ros__parameters": params}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    with pytest.raises(ConfigError, match="ros__parameters"):
        load_config(path)
    assert config_from_dict({"/**": {"ros__parameters": None}}) == SpotVlmConfig()
