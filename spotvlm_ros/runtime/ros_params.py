"""ROS parameters of the SpotVLM nodes, derived from the one config schema; no ROS import here.

Every node declares every schema parameter (so one ``/**: ros__parameters:`` file serves all three) plus
the node-only ones in :data:`NODE_PARAMETERS`. :func:`parameter_declarations` says how to declare each:
ROS type, description, integer/float range, textual constraints (choices, open bounds) and whether it
is read-only (needs a restart: models, camera and QoS). A change at runtime is validated as a whole
config through :func:`apply_changes`, which raises :class:`~spotvlm_ros.core.config.ConfigError` with
the schema's message (the node rejects the change with it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.config import ConfigError, ParameterSpec, SpotVlmConfig, from_ros_params, parameter_specs

DYNAMIC_PREFIXES = ("task", "prompt", "system_prompt", "keyframes.", "context.", "focus.")
"""Parameters a running node applies at once; the others are read-only (declared, set at start)."""

SELF_ACTIVATE = "self_activate"
NODE_PARAMETERS = (
    ParameterSpec(
        SELF_ACTIVATE,
        True,
        "Configure and activate the lifecycle node at start (false: wait for `ros2 lifecycle set`)",
    ),
)

ROS_TYPES = ("bool", "integer", "double", "string", "string_array")


@dataclass(frozen=True)
class ParamDeclaration:
    """Everything a node passes to ``declare_parameter`` for one parameter."""

    name: str
    default: Any
    ros_type: str
    description: str
    additional_constraints: str = ""
    integer_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    read_only: bool = True


def ros_type(value: Any) -> str:
    """ROS parameter type name of a schema value (bool before int: bool is an int in Python)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "string_array"
    raise TypeError(f"no ROS parameter type for {type(value).__name__} value {value!r}")


def is_dynamic(name: str) -> bool:
    """True when a running node applies a change of ``name`` without a restart."""
    return any(name == p or (p.endswith(".") and name.startswith(p)) for p in DYNAMIC_PREFIXES)


def _constraints(spec: ParameterSpec, ranged: bool) -> str:
    parts = []
    if spec.choices:
        parts.append("one of: " + ", ".join(spec.choices))
    if not ranged:
        if spec.minimum is not None:
            parts.append(f">= {spec.minimum:g}")
        if spec.maximum is not None:
            parts.append(f"<= {spec.maximum:g}")
    return "; ".join(parts)


def declaration(spec: ParameterSpec, read_only: bool) -> ParamDeclaration:
    """The declaration of one parameter; ranges only where both bounds are known and finite."""
    kind = ros_type(spec.default)
    bounded = (
        spec.minimum is not None
        and spec.maximum is not None
        and math.isfinite(spec.minimum)
        and math.isfinite(spec.maximum)
    )
    int_range = float_range = None
    if bounded and kind == "integer":
        int_range = (int(spec.minimum), int(spec.maximum))
    elif bounded and kind == "double":
        float_range = (float(spec.minimum), float(spec.maximum))
    ranged = int_range is not None or float_range is not None
    return ParamDeclaration(
        name=spec.name,
        default=list(spec.default) if kind == "string_array" else spec.default,
        ros_type=kind,
        description=spec.description,
        additional_constraints=_constraints(spec, ranged),
        integer_range=int_range,
        float_range=float_range,
        read_only=read_only,
    )


def parameter_declarations(config: SpotVlmConfig | None = None) -> list[ParamDeclaration]:
    """Declarations of every schema parameter (defaults from ``config``) and the node-only ones."""
    schema = [declaration(s, read_only=not is_dynamic(s.name)) for s in parameter_specs(config)]
    return schema + [declaration(s, read_only=True) for s in NODE_PARAMETERS]


def schema_names() -> set[str]:
    """Dotted names of the schema parameters."""
    return {s.name for s in parameter_specs()}


def config_from_parameters(values: Mapping[str, Any]) -> SpotVlmConfig:
    """Validate the schema parameters among ``values`` (node-only ones are ignored)."""
    names = schema_names()
    return from_ros_params({k: _plain(v) for k, v in values.items() if k in names})


def apply_changes(current: Mapping[str, Any], changes: Mapping[str, Any]) -> SpotVlmConfig:
    """The config after ``changes`` (dotted name -> value) to ``current``; raises ConfigError."""
    unknown = sorted(set(changes) - schema_names() - {s.name for s in NODE_PARAMETERS})
    if unknown:
        raise ConfigError("invalid config:\n  " + "\n  ".join(f"{k}: unknown key" for k in unknown))
    return config_from_parameters({**current, **changes})


def changed_keys(old: SpotVlmConfig, new: SpotVlmConfig) -> set[str]:
    """Dotted names whose values differ between two configs."""
    before = {s.name: s.default for s in parameter_specs(old)}
    after = {s.name: s.default for s in parameter_specs(new)}
    return {k for k in after if before.get(k) != after[k]}


def touches(keys: Iterable[str], *prefixes: str) -> bool:
    """True when a key equals a prefix or lies under one (``"focus."``)."""
    return any(k == p or k.startswith(p if p.endswith(".") else p + ".") for k in keys for p in prefixes)


def _plain(value: Any) -> Any:
    """ROS hands string arrays over as array-like objects; the schema wants lists."""
    if isinstance(value, (str, bytes, bool, int, float)):
        return value
    if isinstance(value, Iterable):
        return list(value)
    return value
