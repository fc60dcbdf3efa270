"""The accuracy targets of a trained demo pair, measured on clips of a seed no training run has seen.

The unseen set is many short clips (new scenes: light mounts, backdrops, colours) rather than a few
long ones, the same clips for both models, built by the training-time held-out code (renderer, JPEG
round trip, the runtime's prompts). Each model answers through the normal backend (``hf``), as in use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.config import ModelConfig, SpotVlmConfig
from .data import Processors, build_heldout
from .export import read_training_info
from .recipe import DataRecipe, TrainRecipe, recipe_for
from .samples import Sample

UNSEEN_SEED = 424_242  # not a training or training-time held-out seed of any recipe
UNSEEN_CLIPS = 12
UNSEEN_PER_GROUP = 100  # 40 per group moved a figure by 0.1 between two draws of the same clips
UNSEEN_FRAMES = {"frames_per_clip": 60, "frame_stride": 3}
ROLES = ("lvlm", "svlm")
Accuracy = dict[str, dict[str, float]]  # role -> held-out group -> accuracy


@dataclass(frozen=True)
class Target:
    """One target: a figure measured from both models' accuracy (its threshold: ``bench.TARGETS``)."""

    figure: str
    description: str
    measure: Callable[[Accuracy], float]


TARGETS = (
    Target("lvlm_vqa_light", "LVLM, traffic light state", lambda a: a["lvlm"]["vqa:light"]),
    Target("lvlm_vqa_cars", "LVLM, number of cars", lambda a: a["lvlm"]["vqa:cars"]),
    Target("lvlm_vqa_pedestrian", "LVLM, pedestrian crossing", lambda a: a["lvlm"]["vqa:pedestrian"]),
    Target(
        "svlm_focus_light",
        "SVLM with a focus crop of the light and a fresh contradicting context",
        lambda a: a["svlm"]["light:focus_ctx_wrong"],
    ),
)


def recorded_recipe(model_dir: Path) -> TrainRecipe:
    """The recipe an exported model was trained with: role, seed and data recipe from its training_info."""
    info = read_training_info(model_dir)
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in info["recipe"]["data"].items()}
    return replace(recipe_for(info["role"], seed=info["seed"]), data=DataRecipe(**data))


def model_accuracy(
    model_dir: Path, role: str, samples: list[Sample], config: SpotVlmConfig
) -> dict[str, float]:
    """Accuracy per group of the model in ``model_dir`` through the ``hf`` backend (as the runtime)."""
    from ..models.factory import create_backend
    from .evaluate import evaluate

    side = config.cloud.image_max_side if role == "lvlm" else config.edge.image_max_side
    backend = create_backend(
        ModelConfig(backend="hf", model=str(model_dir), image_max_side=side),
        "cloud" if role == "lvlm" else "edge",
    )
    try:
        return evaluate(backend, samples, max_new_tokens=recipe_for(role).max_new_tokens)
    finally:
        backend.close()


def _heldout_sets(
    model_dirs: dict[str, Path], build: Callable[[TrainRecipe, Processors], list[Sample]]
) -> dict[str, list[Sample]]:
    """``build(recorded recipe, processors)`` for each role's model."""
    from .modeling import load_model_dir

    processors = {role: load_model_dir(model_dirs[role])[1] for role in ROLES}
    return {
        role: build(recorded_recipe(model_dirs[role]), Processors(processors[role], processors["lvlm"]))
        for role in ROLES
    }


def recorded_sets(model_dirs: dict[str, Path], config: SpotVlmConfig) -> dict[str, list[Sample]]:
    """Each model's training-time held-out set, generated afresh from its recorded seed and recipe."""
    return _heldout_sets(
        model_dirs,
        lambda recipe, both: build_heldout(
            recipe, config, both, recipe.seed + recipe.data.heldout_seed_offset
        ),
    )


def unseen_sets(
    model_dirs: dict[str, Path],
    config: SpotVlmConfig,
    clips: int = UNSEEN_CLIPS,
    per_group: int = UNSEEN_PER_GROUP,
) -> dict[str, list[Sample]]:
    """The unseen held-out samples of each role: the same ``clips`` short clips of :data:`UNSEEN_SEED`."""

    def build(recipe: TrainRecipe, both: Processors) -> list[Sample]:
        short = replace(recipe, data=replace(recipe.data, **UNSEEN_FRAMES))
        return build_heldout(short, config, both, UNSEEN_SEED, clips, per_group)

    return _heldout_sets(model_dirs, build)


def target_figures(accuracy: Accuracy) -> dict[str, float | None]:
    """Each target's figure (None when a group it needs was not measured)."""
    figures: dict[str, float | None] = {}
    for target in TARGETS:
        try:
            value = target.measure(accuracy)
        except KeyError:
            value = math.nan
        figures[target.figure] = round(value, 4) if math.isfinite(value) else None
    return figures
