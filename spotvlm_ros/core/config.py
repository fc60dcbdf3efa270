"""The one configuration schema of SpotVLM, read by the CLI, the runtime and the ROS nodes.

A config file is YAML, either plain (``task: vqa ...``) or in ROS 2 parameter form
(``/**: {ros__parameters: {...}}``), so ``config/spotvlm.yaml`` serves ``ros2 launch`` and
``spotvlm replay`` alike. Every value is ROS-parameter representable (no nulls, no lists of dicts):
"off" is spelled ``0`` or ``""``. ROS parameter names are the dotted paths (``context.max_context_age_s``).
Errors name the bad key and value: ``context.max_context_age_s = -1.0: Input should be greater than 0``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .latency import validate_latency_profile

Backend = Literal["tiny", "hf", "openai", "zero"]


class ConfigError(ValueError):
    """A configuration problem; the message names every bad key and value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


MAX_CAMERAS = 16


class CameraConfig(_Section):
    topic: str = Field("", description="Image topic; empty = auto-detect the first image topic of a bag")
    topics: list[str] = Field(
        default_factory=list,
        description="Topics of several cameras, frames of one instant grouped by stamp; empty = [topic]",
    )
    sync_slop_s: float = Field(
        0.05, gt=0, le=10, description="Frames of the cameras at most this far apart form one group (s)"
    )
    transport: Literal["raw", "compressed"] = Field("raw", description="sensor_msgs/Image or CompressedImage")
    reliability: Literal["best_effort", "reliable"] = Field(
        "best_effort", description="Camera QoS reliability"
    )
    depth: int = Field(1, ge=1, le=100, description="Camera QoS history depth (1 = latest frame only)")
    no_frames_warn_s: float = Field(
        5.0, gt=0, le=3600, description="Warn when no frame arrives for this long"
    )

    @field_validator("topics")
    @classmethod
    def _check_topics(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_CAMERAS:
            raise ValueError(f"at most {MAX_CAMERAS} cameras, got {len(value)}")
        for index, topic in enumerate(value):
            if not topic.strip():
                raise ValueError(f"entry {index} is empty; name every camera's topic")
        repeated = sorted({t for t in value if value.count(t) > 1})
        if repeated:
            raise ValueError(f"topic(s) listed twice: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _one_way_to_name_cameras(self) -> CameraConfig:
        if self.topic and self.topics and self.topics != [self.topic]:
            raise ValueError(
                f"camera.topic = {self.topic!r} and camera.topics = {self.topics!r} disagree: "
                "list every camera in camera.topics and leave camera.topic empty"
            )
        return self

    @property
    def camera_topics(self) -> list[str]:
        """The camera topics: ``topics``, else ``[topic]`` (one camera; ``""`` = auto-detect in bags)."""
        return list(self.topics) if self.topics else [self.topic]


CoordFormat = Literal[
    "auto",
    "qwen25_abs",
    "qwen2_1000",
    "gemini_yxyx_1000",
    "florence_1000",
    "paligemma_1024",
    "normalized",
    "absolute",
]
"""How a model writes box coordinates (``models.grounding`` reads each)."""


class ModelConfig(_Section):
    backend: Backend = Field(
        "tiny",
        description="tiny: offline random model; hf: local transformers model; openai: OpenAI-compatible "
        "HTTP endpoint; zero: no model, echoes the newest keyframe answer instantly",
    )
    model: str = Field(
        "", description="Hugging Face id or local path (hf), model name (openai), family (tiny)"
    )
    device: str = Field("cpu", description="torch device (hf): cpu, cuda, cuda:1, ...")
    dtype: Literal["float32", "float16", "bfloat16", "auto"] = Field(
        "float32", description="torch dtype (hf)"
    )
    max_new_tokens: int = Field(32, ge=1, le=4096, description="Generated tokens per answer")
    image_max_side: int = Field(448, ge=16, le=8192, description="Longest image side fed to the model (px)")
    base_url: str = Field("", description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field(
        "", description="Name of the environment variable holding the API key (never the key itself)"
    )
    timeout_s: float = Field(
        30.0, gt=0, le=600, description="Time for a whole call, retries included (openai)"
    )
    retries: int = Field(2, ge=0, le=10, description="Retries with backoff on idempotent failures (openai)")
    verify_tls: bool = Field(True, description="Verify TLS certificates (turn off only for loopback tests)")
    max_request_bytes: int = Field(
        20_000_000, ge=1024, description="Larger request bodies are not sent (openai)"
    )
    max_response_bytes: int = Field(
        2_000_000, ge=1024, description="Responses are dropped past this size (openai)"
    )
    step_time_s: float = Field(0.0, ge=0, le=60, description="Simulated compute time per call; 0 = measured")
    prefix_cache: bool = Field(True, description="Reuse the KV cache of an unchanged prompt prefix (hf)")
    coord_format: CoordFormat = Field(
        "auto", description="How the model writes boxes; auto = its model family's convention"
    )


def _default_cloud_model() -> ModelConfig:
    return ModelConfig(max_new_tokens=128, image_max_side=896, step_time_s=0.0)


class KeyframeConfig(_Section):
    max_in_flight: int = Field(1, ge=1, le=64, description="LVLM requests in flight at most")
    min_interval_s: float = Field(0.0, ge=0, le=3600, description="Least time between two keyframes")
    scene_change_threshold: float = Field(
        0.0, ge=0, le=1, description="Scene distance that sends a keyframe before min_interval_s; 0 = off"
    )
    scene_change_metric: Literal["histogram", "difference"] = Field(
        "histogram", description="Gray-histogram Bhattacharyya distance or mean absolute frame difference"
    )
    timeout_s: float = Field(15.0, gt=0, le=3600, description="Give up on an LVLM request after this long")
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of keyframes sent to the cloud")
    max_image_side: int = Field(
        1024, ge=16, le=8192, description="Keyframes are downscaled to this longest side"
    )
    preempt_after_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="When every slot is busy, cancel a request this old for the newest keyframe; 0 = never",
    )


class ContextConfig(_Section):
    enabled: bool = Field(True, description="Use LVLM context at all (False = SVLM alone)")
    replacement: bool = Field(
        True, description="Context Replacement; False = raw newest LVLM text (ablation)"
    )
    history_length: int = Field(4, ge=0, le=64, description="Past turns kept in the SVLM prompt")
    svlm_turns: int = Field(
        4, ge=0, le=64, description="Of those turns, the SVLM's own answers at most (LVLM keyframes first)"
    )
    max_context_age_s: float = Field(10.0, gt=0, le=3600, description="Older context is ignored")
    history_keeps: Literal["recent", "changes"] = Field(
        "recent",
        description="Keyframe turns: the newest results, or one per run of equal answers (its newest), so "
        "an answer that changed long ago (a sign passed) stays while newer keyframes repeat another",
    )
    max_memory_age_s: float = Field(
        120.0,
        gt=0,
        le=86400,
        description="changes: how long an older keyframe turn stays (the newest obeys max_context_age_s)",
    )
    max_context_tokens: int = Field(256, ge=8, le=32768, description="Token budget of the history")
    max_lvlm_chars: int = Field(
        2000, ge=16, le=100_000, description="LVLM text is cut to this many characters"
    )


class FocusConfig(_Section):
    mode: Literal["crop", "mark", "mask", "off"] = Field(
        "crop", description="How regions steer the SVLM view"
    )
    multi_camera: Literal["images", "mosaic"] = Field(
        "images", description="Several cameras: each downscaled as its own image, or tiled in one mosaic"
    )
    propagation: Literal["static", "flow", "template"] = Field(
        "flow",
        description="How regions follow the scene to the current frame: keep the coordinates, track them "
        "with optical flow, or find the keyframe patch again by template matching",
    )
    max_regions: int = Field(4, ge=0, le=32, description="Regions used at most")
    crop_size: int = Field(224, ge=16, le=4096, description="Side of each region crop fed to the SVLM (px)")
    full_size: int = Field(224, ge=16, le=4096, description="Longest side of the downscaled full frame (px)")
    min_confidence: float = Field(0.2, ge=0, le=1, description="Propagated regions below this are dropped")
    keyframe_buffer: int = Field(32, ge=1, le=1024, description="Recent frames kept to find keyframe images")
    visual_token_budget: int = Field(
        0, ge=0, le=1_000_000, description="Visual tokens of the SVLM view at most; 0 = no budget"
    )
    crop_margin: float = Field(
        0.15, ge=0, le=2, description="Context around a region in its crop (fraction of its side, per side)"
    )
    mask_brightness: float = Field(0.3, ge=0, le=1, description="mask: brightness kept outside the regions")
    flow_max_side: int = Field(
        320, ge=32, le=4096, description="Propagation tracks on a grayscale copy this long at most (px)"
    )
    growth_per_s: float = Field(
        0.1, ge=0, le=10, description="Regions grow by this fraction per second of age (a quarter if tracked)"
    )
    confidence_half_life_s: float = Field(
        5.0, gt=0, le=3600, description="Region confidence halves with every this many seconds of age"
    )


class LatencyConfig(_Section):
    profile: str = Field(
        "lognormal:mean=1.5,sigma=0.8", description="Simulated cloud delay of a replay (name:key=value,...)"
    )
    profiles: list[str] = Field(
        default_factory=lambda: [
            "constant:delay=0.5",
            "lognormal:mean=1.5,sigma=0.8",
            "lognormal:mean=5.0,sigma=0.8",
        ],
        description="Delay models the evaluation sweeps",
    )

    @field_validator("profile")
    @classmethod
    def _check_profile(cls, value: str) -> str:
        return validate_latency_profile(value)

    @field_validator("profiles")
    @classmethod
    def _check_profiles(cls, value: list[str]) -> list[str]:
        return [validate_latency_profile(spec) for spec in value]


EVAL_MODES = (
    "svlm",
    "lvlm",
    "lvlm_blocking",
    "offload",
    "spotvlm",
    "spotvlm_no_focus",
    "spotvlm_no_replacement",
)
EvalMode = Literal[
    "svlm", "lvlm", "lvlm_blocking", "offload", "spotvlm", "spotvlm_no_focus", "spotvlm_no_replacement"
]


class ServerConfig(_Section):
    max_image_bytes: int = Field(
        10_000_000, ge=1024, le=1_000_000_000, description="LVLM server: larger goal images are rejected"
    )
    max_image_pixels: int = Field(
        16_777_216, ge=256, le=67_108_864, description="LVLM server: images claiming more pixels are rejected"
    )
    max_queued_goals: int = Field(
        4, ge=1, le=64, description="LVLM server: goals accepted and not finished at most; more are rejected"
    )


class EvalConfig(_Section):
    modes: list[EvalMode] = Field(
        default_factory=lambda: list(EVAL_MODES), description="Modes `spotvlm eval` compares"
    )
    tasks: list[Literal["vqa", "caption", "grounding"]] = Field(
        default_factory=lambda: ["vqa", "caption", "grounding"], description="Tasks `spotvlm eval` scores"
    )
    deadline_s: float = Field(0.5, gt=0, le=3600, description="Per-frame latency deadline (misses, offload)")
    max_frames: int = Field(0, ge=0, description="Frames evaluated from the bag's start; 0 = all")
    caption_prompt: str = Field(
        "Describe the scene in one sentence.", description="Prompt of the caption task"
    )
    offload_ewma_alpha: float = Field(
        0.3, gt=0, le=1, description="Weight of the newest observed delay in offload's prediction"
    )
    offload_probe_interval_s: float = Field(
        1.0, gt=0, le=3600, description="Offload pings the cloud this often to re-measure its delay"
    )


class SpotVlmConfig(_Section):
    """Root of the configuration."""

    task: Literal["vqa", "caption", "grounding"] = Field("vqa", description="Task the edge answers")
    prompt: str = Field(
        "What is the state of the traffic light?", description="Task prompt asked of every frame"
    )
    system_prompt: str = Field(
        "You are the perception assistant of a robot. Answer briefly.",
        description="System prompt of both models",
    )
    seed: int = Field(0, ge=0, description="Seed of every random choice (simulation, latency models)")
    camera: CameraConfig = Field(
        default_factory=CameraConfig, description="The camera input: topic, transport, QoS."
    )
    edge: ModelConfig = Field(
        default_factory=ModelConfig, description="The edge SVLM, answering every frame."
    )
    cloud: ModelConfig = Field(
        default_factory=_default_cloud_model, description="The cloud LVLM, answering keyframes late."
    )
    keyframes: KeyframeConfig = Field(
        default_factory=KeyframeConfig, description="Which frames go to the cloud, and how they are sent."
    )
    context: ContextConfig = Field(
        default_factory=ContextConfig, description="Context Replacement: late LVLM answers as SVLM history."
    )
    focus: FocusConfig = Field(
        default_factory=FocusConfig, description="Visual Focus: the LVLM's regions steer the SVLM's view."
    )
    latency: LatencyConfig = Field(
        default_factory=LatencyConfig, description="Simulated cloud delays (replay and evaluation)."
    )
    server: ServerConfig = Field(default_factory=ServerConfig, description="Limits of the LVLM server node.")
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="What `spotvlm eval` compares and scores."
    )

    @field_validator("cloud", mode="before")
    @classmethod
    def _cloud_defaults(cls, value: Any) -> Any:
        """A partial ``cloud`` section keeps the cloud's own defaults (128 tokens, 896 px), not the edge's."""
        if isinstance(value, Mapping):
            return {**_default_cloud_model().model_dump(), **value}
        return value


ROS_PARAMS_KEY = "ros__parameters"


def _unwrap_ros(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept ``/**: {ros__parameters: {...}}`` (or any single node name) as well as plain YAML."""
    if len(data) == 1:
        (only,) = data.values()
        if isinstance(only, Mapping) and ROS_PARAMS_KEY in only:
            params = only[ROS_PARAMS_KEY]
            if params is None:
                return {}
            if not isinstance(params, Mapping):
                raise ConfigError(
                    f"invalid config:\n  {ROS_PARAMS_KEY} = {params!r}: expected a mapping of parameters"
                )
            return params
    return data


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"{key} = {e['input']!r}: unknown key")
        else:
            lines.append(f"{key} = {e['input']!r}: {e['msg']}")
    return "invalid config:\n  " + "\n  ".join(lines)


def config_from_dict(data: Mapping[str, Any]) -> SpotVlmConfig:
    """Validate a nested dict (plain or ROS-wrapped); raises ConfigError naming bad keys and values."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid config: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return SpotVlmConfig.model_validate(dict(_unwrap_ros(data)), strict=True)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> SpotVlmConfig:
    """Load defaults, then the YAML file at ``path``, then dotted ``overrides`` (``{"a.b": 1}``)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config {path} is not valid YAML: {err}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"config {path}: expected a mapping at the top level")
        data = _nested_copy(_unwrap_ros(loaded))
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return config_from_dict(data)


def _nested_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _nested_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"invalid config:\n  {key} = {value!r}: '{part}' is not a section")
        node = child
    node[leaf] = value


def to_ros_params(config: SpotVlmConfig) -> dict[str, Any]:
    """Flatten to ROS parameter names (dotted paths) and values."""
    return dict(_flatten(config.model_dump()))


def from_ros_params(params: Mapping[str, Any]) -> SpotVlmConfig:
    """Build a config from dotted ROS parameter names, validated like a file."""
    data: dict[str, Any] = {}
    for key, value in params.items():
        _set_dotted(data, key, value)
    return config_from_dict(data)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


@dataclass(frozen=True)
class ParameterSpec:
    """What a ROS node needs to declare one parameter: name, default, description and range."""

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def parameter_specs(config: SpotVlmConfig | None = None) -> list[ParameterSpec]:
    """One spec per leaf field, defaults taken from ``config`` (or the schema defaults)."""
    config = config or SpotVlmConfig()
    return list(_specs(type(config), config, ""))


def _specs(model: type[BaseModel], value: BaseModel, prefix: str) -> Iterator[ParameterSpec]:
    for name, field in model.model_fields.items():
        current = getattr(value, name)
        if isinstance(current, BaseModel):
            yield from _specs(type(current), current, f"{prefix}{name}.")
            continue
        minimum = maximum = None
        for meta in field.metadata:
            for attr in ("ge", "gt"):
                if getattr(meta, attr, None) is not None:
                    minimum = float(getattr(meta, attr))
            for attr in ("le", "lt"):
                if getattr(meta, attr, None) is not None:
                    maximum = float(getattr(meta, attr))
        choices = tuple(getattr(field.annotation, "__args__", ())) if _is_literal(field.annotation) else ()
        yield ParameterSpec(
            name=f"{prefix}{name}",
            default=current,
            description=field.description or "",
            choices=tuple(str(c) for c in choices),
            minimum=minimum,
            maximum=maximum,
        )


def _is_literal(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is Literal
