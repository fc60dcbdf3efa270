"""ROS parameter declarations from the config schema, and validation of parameter changes (no ROS)."""

from __future__ import annotations

import math

import pytest

from spotvlm_ros.core.config import ConfigError, SpotVlmConfig, load_config, parameter_specs, to_ros_params
from spotvlm_ros.runtime.ros_params import (
    NODE_PARAMETERS,
    SELF_ACTIVATE,
    apply_changes,
    changed_keys,
    config_from_parameters,
    is_dynamic,
    parameter_declarations,
    ros_type,
    touches,
)


def _by_name():
    return {d.name: d for d in parameter_declarations()}


def test_every_schema_parameter_and_the_node_ones_are_declared():
    names = set(_by_name())
    assert names == {s.name for s in parameter_specs()} | {s.name for s in NODE_PARAMETERS}
    assert SELF_ACTIVATE in names and _by_name()[SELF_ACTIVATE].default is True


def test_declarations_carry_types_descriptions_and_ranges():
    decls = _by_name()
    assert all(d.description for d in decls.values()), [n for n, d in decls.items() if not d.description]
    depth = decls["camera.depth"]
    assert (depth.ros_type, depth.integer_range, depth.float_range) == ("integer", (1, 100), None)
    conf = decls["focus.min_confidence"]
    assert (conf.ros_type, conf.float_range) == ("double", (0.0, 1.0))
    assert (
        decls["task"].ros_type == "string"
        and "vqa, caption, grounding" in decls["task"].additional_constraints
    )
    assert decls["latency.profiles"].ros_type == "string_array"
    assert decls["edge.verify_tls"].ros_type == "bool"
    # a bound on one side only is spelled out instead of a range
    seed = decls["seed"]
    assert seed.integer_range is None and seed.additional_constraints == ">= 0"
    for decl in decls.values():
        for rng in (decl.integer_range, decl.float_range):
            assert rng is None or (math.isfinite(rng[0]) and rng[0] <= rng[1])


def test_defaults_follow_a_given_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("/**:\n  ros__parameters:\n    task: caption\n    camera: {depth: 3}\n")
    decls = {d.name: d for d in parameter_declarations(load_config(path))}
    assert decls["task"].default == "caption" and decls["camera.depth"].default == 3


def test_models_camera_and_qos_are_read_only_prompts_and_thresholds_dynamic():
    decls = _by_name()
    for name in (
        "edge.backend",
        "cloud.model",
        "camera.topic",
        "camera.reliability",
        "server.max_image_bytes",
    ):
        assert decls[name].read_only, name
    for name in (
        "prompt",
        "task",
        "context.max_context_age_s",
        "focus.min_confidence",
        "keyframes.min_interval_s",
    ):
        assert not decls[name].read_only and is_dynamic(name), name
    assert not is_dynamic("prompts") and not is_dynamic("edge.model")


def test_ros_types():
    assert [ros_type(v) for v in (True, 3, 2.5, "x", ["a"])] == [
        "bool",
        "integer",
        "double",
        "string",
        "string_array",
    ]
    with pytest.raises(TypeError):
        ros_type({"a": 1})


def test_changes_are_validated_as_a_whole_config():
    current = to_ros_params(SpotVlmConfig())
    config = apply_changes(current, {"prompt": "Any pedestrians?", "context.max_context_age_s": 3.0})
    assert config.prompt == "Any pedestrians?" and config.context.max_context_age_s == 3.0
    with pytest.raises(
        ConfigError, match=r"context.max_context_age_s = -1.0: Input should be greater than 0"
    ):
        apply_changes(current, {"context.max_context_age_s": -1.0})
    with pytest.raises(ConfigError, match="task = 'poetry'"):
        apply_changes(current, {"task": "poetry"})
    with pytest.raises(ConfigError, match="nonsense.key: unknown key"):
        apply_changes(current, {"nonsense.key": 1})
    # node-only parameters pass through without touching the schema
    assert apply_changes({**current, SELF_ACTIVATE: True}, {SELF_ACTIVATE: False}) == SpotVlmConfig()


def test_string_arrays_from_ros_become_lists():
    current = to_ros_params(SpotVlmConfig())
    current["latency.profiles"] = ("constant:delay=1.0",)  # rclpy hands arrays over as sequences
    assert config_from_parameters(current).latency.profiles == ["constant:delay=1.0"]


def test_changed_keys_and_touches():
    old = SpotVlmConfig()
    new = apply_changes(to_ros_params(old), {"focus.mode": "mark", "prompt": "x"})
    keys = changed_keys(old, new)
    assert keys == {"focus.mode", "prompt"}
    assert touches(keys, "focus.") and touches(keys, "prompt") and not touches(keys, "context.")
    assert not touches({"prompts"}, "prompt")
