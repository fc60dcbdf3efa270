"""The runtime settings the demo models are trained for and benchmarked under (one place for both).

The SVLM's training prompts are recorded from the real runtime (:mod:`.context_data`) under these
settings, and ``spotvlm bench accuracy`` evaluates under the same ones, so what the SVLM learned is
what it is asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.config import SpotVlmConfig, load_config

DEMO_MODELS_DIR = Path(__file__).resolve().parent.parent / "demo_models"
SCENARIO_SETTINGS: dict[str, Any] = {
    "edge.step_time_s": 0.15,  # fixed SVLM step on the virtual clock (reproducible), slower than 10 Hz
    "edge.max_new_tokens": 48,  # a grounding answer (box JSON) is about 25 tokens
    "cloud.max_new_tokens": 96,  # a caption with its regions
    "context.history_length": 1,  # the newest LVLM keyframe only: older ones mostly describe a past scene
    # a longer history (--set context.history_length=4) holds one turn per change of answer: a speed limit
    # read once stays while later keyframes see no sign (with one turn this is the same as "recent")
    "context.history_keeps": "changes",
    "keyframes.max_in_flight": 4,  # a keyframe every ~delay/4: fresher context when the cloud is slow
}


def scenario_config(overrides: dict[str, Any] | None = None) -> SpotVlmConfig:
    """The default config with :data:`SCENARIO_SETTINGS` and ``overrides`` applied."""
    return load_config(None, {**SCENARIO_SETTINGS, **(overrides or {})})


def demo_model_dir(role: str) -> Path:
    """Where the shipped checkpoint of ``role`` (lvlm or svlm) lives."""
    return DEMO_MODELS_DIR / role


def demo_models_present() -> bool:
    """True when both shipped checkpoints are there."""
    return all((demo_model_dir(role) / "model.safetensors").is_file() for role in ("lvlm", "svlm"))


def trained_model_settings(lvlm: Path | None = None, svlm: Path | None = None) -> dict[str, Any] | None:
    """Config overrides that run the trained LVLM (cloud) and SVLM (edge) through the ``hf`` backend.

    ``lvlm``/``svlm`` default to the shipped models; None when either model directory is missing.
    """
    lvlm = lvlm or demo_model_dir("lvlm")
    svlm = svlm or demo_model_dir("svlm")
    if not ((lvlm / "config.json").is_file() and (svlm / "config.json").is_file()):
        return None
    return {"cloud.backend": "hf", "cloud.model": str(lvlm), "edge.backend": "hf", "edge.model": str(svlm)}
