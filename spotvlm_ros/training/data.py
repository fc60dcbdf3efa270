"""The data sets of a run: training samples per curriculum kind and a freshly generated held-out set.

Training clips come from ``recipe.seed``, held-out clips from ``seed + heldout_seed_offset`` (the
synthetic world deals balanced clip contents under any seed). Built data is cached in the run
directory (``data/``): token ids and answer spans in a pickle, model-input images in one memory-mapped
array, so a resumed run does not rebuild it.

Held-out groups (accuracy per group is what training-time evaluation reports):

- both roles: ``vqa:light``, ``vqa:cars``, ``vqa:pedestrian`` (full frame, no context), ``crop:light``
  (stage-1: the light enlarged), ``grounding:light`` (IoU >= 0.5);
- LVLM: ``caption`` (exact canonical sentence); on clips with signs ``vqa:speed_limit`` (frames that
  show no posted sign: ``none``) and ``vqa:speed_limit@sign_in_view`` (reading the sign in view);
- SVLM (prompts from the real runtime): ``light:ctx_right`` and ``light:ctx_wrong`` (an LVLM-style
  context turn that agrees, or a fresh one that contradicts the frame; no focus crop),
  ``light:focus`` and ``light:focus_ctx_wrong`` (the same with a focus crop of the light).

The SVLM's training data has the two focus-crop light prompts on its own clips at every
``light_context_stride``-th frame (groups ``vqa:light@focus`` and ``vqa:light@focus_ctx_wrong``, drawn with
the light question's context prompts), beside the prompts recorded from simulated runs.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.annotations import FrameAnnotation
from ..core.config import SpotVlmConfig
from .answers import SIGN_QUERIES, TaskQuery, answer_text, has_signs, queries_for, vqa_queries_for
from .context_data import ScriptedBackend, context_samples, light_context, single_call, wrong_light
from .encoding import Encoded, Encoder, ImageStore
from .modeling import model_input_size
from .recipe import FRAME_SIZE, SAMPLE_KINDS, TrainRecipe
from .samples import (
    Clip,
    Sample,
    crop_samples,
    full_frame_samples,
    iter_clips,
    keyframe_image,
    lvlm_messages,
    object_crop_samples,
)

DATA_VERSION = 3  # bump when the samples change (layout or draws), so cached data is rebuilt
Log = Callable[[str], None]


@dataclass
class TrainingData:
    """Encoded training items (indices per sample kind), their images, and the held-out samples."""

    items: list[Encoded]
    store: ImageStore
    heldout: list[Sample]
    by_kind: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.by_kind:
            for index, item in enumerate(self.items):
                self.by_kind.setdefault(item.kind, []).append(index)

    def summary(self) -> dict[str, Any]:
        groups: dict[str, int] = {}
        for item in self.items:
            groups[item.group.split("@")[0]] = groups.get(item.group.split("@")[0], 0) + 1
        held: dict[str, int] = {}
        for sample in self.heldout:
            held[sample.group] = held.get(sample.group, 0) + 1
        return {
            "train_items": len(self.items),
            "train_kinds": {k: len(v) for k, v in sorted(self.by_kind.items())},
            "train_groups": dict(sorted(groups.items())),
            "heldout_groups": dict(sorted(held.items())),
        }


@dataclass
class Processors:
    """The processor of the model being trained and the LVLM's (for box coordinates of context)."""

    model: Any
    lvlm: Any


def _input_scale(processor: Any) -> tuple[float, float]:
    width, height = FRAME_SIZE
    in_w, in_h = model_input_size(processor, width, height)
    return in_w / width, in_h / height


def _image_max_side(recipe: TrainRecipe, config: SpotVlmConfig) -> int:
    return config.cloud.image_max_side if recipe.role == "lvlm" else config.edge.image_max_side


def sign_variant_samples(
    clip: Clip, config: SpotVlmConfig, scale: tuple[float, float], rng: np.random.Generator, stride: int
) -> list[Sample]:
    """Speed-limit samples (full frame, crop of the sign) of every ``stride``-th frame with a repainted sign.

    Each such frame comes with its repaintings with the other limits, so the frames of one question differ
    only in the plate's digits: only reading them tells the answers apart.
    """
    samples: list[Sample] = []
    for index in sorted(clip.sign_variants)[::stride]:
        versions = [(clip.frames[index], clip.annotations[index]), *clip.sign_variants[index]]
        for frame, annotation in versions:
            samples += full_frame_samples(config, frame, annotation, scale, rng, queries=SIGN_QUERIES[:1])
            samples += object_crop_samples(config, frame, annotation, rng, items=("sign",))
    return samples


def train_samples(
    clip: Clip,
    recipe: TrainRecipe,
    config: SpotVlmConfig,
    processors: Processors,
    rng: np.random.Generator,
) -> list[Sample]:
    """The training samples of one clip for ``recipe.role``."""
    data = recipe.data
    scale = _input_scale(processors.model)
    samples: list[Sample] = []
    svlm = _scripted_svlm(recipe, config, processors, rng)
    if recipe.role == "lvlm" and data.sign_variant_stride > 0:
        samples += sign_variant_samples(clip, config, scale, rng, data.sign_variant_stride)
    for index, (frame, annotation) in enumerate(zip(clip.frames, clip.annotations, strict=True)):
        if index % data.crop_stride == 0:
            samples += crop_samples(config, frame, annotation, scale, rng)
        if index % data.frame_stride != 0:
            continue
        if recipe.role == "lvlm":
            samples += full_frame_samples(config, frame, annotation, scale, rng)
            continue
        for query in queries_for(annotation):
            if query.task == "grounding" and annotation.box(query.item_id) is None:
                continue
            sample = single_call(svlm, config, "svlm", query, frame, annotation)
            samples.append(
                Sample("full", query.key, sample.messages, sample.images, sample.target, sample.truth)
            )
    if recipe.role == "svlm" and data.context_runs_per_clip > 0:
        svlm.keep = data.context_keep
        lvlm = ScriptedBackend(
            "scripted-lvlm",
            processors.lvlm,
            config.cloud.image_max_side,
            rng,
            error_rate=data.lvlm_error,
            region_drop=data.region_drop,
            region_miss=data.region_miss,
            sees=True,
        )
        queries = queries_for(clip.annotations[0])
        if has_signs(clip.annotations[0]):  # the speed limit in a third of the runs
            queries = (*queries, *[SIGN_QUERIES[0]] * (len(queries) // 2))
        runs, delays = data.context_runs_per_clip, data.mean_delay_s
        samples += context_samples(clip, config, svlm, lvlm, rng, runs, delays, queries, data.history_lengths)
    if recipe.role == "svlm" and data.light_context_stride > 0:
        for index in range(0, len(clip.frames), data.light_context_stride):
            frame, annotation = clip.frames[index], clip.annotations[index]
            samples += _light_context_samples(
                frame, annotation, config, svlm, processors, rng, LIGHT_CONTEXT_TRAIN_GROUPS
            )
    return samples


def _scripted_svlm(
    recipe: TrainRecipe,
    config: SpotVlmConfig,
    processors: Processors,
    rng: np.random.Generator,
    keep: float = 0.0,
) -> ScriptedBackend:
    return ScriptedBackend(
        "scripted-svlm",
        processors.model,
        config.edge.image_max_side,
        rng,
        error_rate=recipe.data.own_error,
        keep=keep,
    )


def heldout_samples(
    clip: Clip,
    recipe: TrainRecipe,
    config: SpotVlmConfig,
    processors: Processors,
    rng: np.random.Generator,
) -> list[Sample]:
    """Candidate held-out samples of one clip (every group, at the frame stride)."""
    scale = _input_scale(processors.model)
    samples: list[Sample] = []
    svlm = _scripted_svlm(recipe, config, processors, rng)
    for index, (frame, annotation) in enumerate(zip(clip.frames, clip.annotations, strict=True)):
        if index % recipe.data.frame_stride != 0:
            continue
        samples += [s for s in crop_samples(config, frame, annotation, scale, rng) if s.group == "crop:light"]
        light = annotation.box("light")
        grounding = TaskQuery("grounding", "light")
        meta = {"box": light.box.as_tuple() if light else None, "size": (frame.width, frame.height)}
        if recipe.role == "lvlm":
            image = keyframe_image(config, frame)
            for query in (*vqa_queries_for(annotation), TaskQuery("caption", "caption")):
                messages = lvlm_messages(config, query, want_regions=False)
                target = answer_text(query, annotation, seen=True)
                samples.append(Sample("full", _heldout_group(query, annotation), messages, [image], target))
            target = answer_text(grounding, annotation, scale=scale)
            messages = lvlm_messages(config, grounding, want_regions=True)
            samples.append(Sample("full", grounding.key, messages, [image], target, meta=meta))
            continue
        for query in vqa_queries_for(annotation):
            samples.append(single_call(svlm, config, "svlm", query, frame, annotation, group=query.key))
        ground = single_call(svlm, config, "svlm", grounding, frame, annotation, group=grounding.key)
        ground.meta = meta
        samples.append(ground)
        samples += _light_context_samples(frame, annotation, config, svlm, processors, rng)
    return samples


def _heldout_group(query: TaskQuery, annotation: FrameAnnotation) -> str:
    """The held-out group of an LVLM question; the speed limit on frames with a posted sign in view apart.

    Most frames of a clip with signs show none (answer ``none``), so the speed-limit group alone says
    little about reading the signs; ``vqa:speed_limit@sign_in_view`` does.
    """
    if query.item_id == "speed_limit" and annotation.box("sign") is not None:
        return f"{query.key}@sign_in_view"
    return query.key


# (focus crop, context right) -> sample group, in the order they are drawn
LIGHT_CONTEXT_HELDOUT_GROUPS = {
    (False, True): "light:ctx_right",
    (False, False): "light:ctx_wrong",
    (True, True): "light:focus",
    (True, False): "light:focus_ctx_wrong",
}
# Training keeps the two prompts with the light's crop (pooled with the light question's runtime prompts).
# Without a crop, half of these contexts contradict the frame and every contradicting one is the fresher:
# taught that, the SVLM would learn to distrust fresh context, which in use is the most often right.
LIGHT_CONTEXT_TRAIN_GROUPS = {(True, True): "vqa:light@focus", (True, False): "vqa:light@focus_ctx_wrong"}


def _light_context_samples(
    frame: Any,
    annotation: Any,
    config: SpotVlmConfig,
    svlm: ScriptedBackend,
    processors: Processors,
    rng: np.random.Generator,
    groups: dict[tuple[bool, bool], str] = LIGHT_CONTEXT_HELDOUT_GROUPS,
) -> list[Sample]:
    """The SVLM's light question with a context turn that agrees or freshly contradicts, +/- focus crop.

    ``groups`` names the prompts made, by (focus crop, context right); all four held-out ones by default.
    """
    truth = annotation.answer("light") or ""
    query = TaskQuery("vqa", "light")
    out = []
    for (focus, right), group in groups.items():
        mode = "spotvlm" if focus else "spotvlm_no_focus"
        age = float(rng.uniform(0.5, 3.0)) if right else float(rng.uniform(0.0, 1.0))
        answer = truth if right else wrong_light(annotation, rng)
        context = light_context(frame, annotation, focus, age, answer, rng, processors.lvlm)
        out.append(single_call(svlm, config, mode, query, frame, annotation, context, group))
    return out


def _limit_groups(samples: list[Sample], per_group: int, rng: np.random.Generator) -> list[Sample]:
    """At most ``per_group`` samples of each group, drawn at random."""
    order = rng.permutation(len(samples))
    counts: dict[str, int] = {}
    kept = []
    for index in order:
        sample = samples[int(index)]
        if counts.get(sample.group, 0) < per_group:
            counts[sample.group] = counts.get(sample.group, 0) + 1
            kept.append(sample)
    return sorted(kept, key=lambda s: s.group)


def build_heldout(
    recipe: TrainRecipe,
    config: SpotVlmConfig,
    processors: Processors,
    seed: int,
    clips: int = 0,
    per_group: int = 0,
) -> list[Sample]:
    """A held-out set of ``clips`` fresh clips under ``seed`` (0: the recipe's counts)."""
    data = recipe.data
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
    samples: list[Sample] = []
    for clip in iter_clips(seed, clips or data.heldout_clips, data.frames_per_clip, data.speed_signs):
        samples += heldout_samples(clip, recipe, config, processors, rng)
    return _limit_groups(samples, per_group or data.heldout_per_group, rng)


def build_data(recipe: TrainRecipe, config: SpotVlmConfig, processors: Processors, log: Log) -> TrainingData:
    """Generate, render and encode the training and held-out data of ``recipe``."""
    data = recipe.data
    rng = np.random.default_rng(np.random.SeedSequence([recipe.seed, 7]))
    encoder = Encoder(processors.model, _image_max_side(recipe, config))
    store = ImageStore()
    items: list[Encoded] = []
    for clip in iter_clips(
        recipe.seed, data.train_clips, data.frames_per_clip, data.speed_signs, data.sign_variant_stride > 0
    ):
        for sample in train_samples(clip, recipe, config, processors, rng):
            items.append(encoder.encode(sample, store))
        log(f"data: clip {clip.index + 1}/{data.train_clips}: {len(items)} training items")
    heldout = build_heldout(recipe, config, processors, recipe.seed + data.heldout_seed_offset)
    expected = [k for k in SAMPLE_KINDS if k != "context" or recipe.role == "svlm"]
    training = TrainingData(items, store, heldout)
    absent = [k for k in expected if k not in training.by_kind]
    if absent:
        raise ValueError(f"the data recipe produced no {absent} samples; use more clips or frames")
    return training


def data_key(recipe: TrainRecipe, config: SpotVlmConfig) -> dict[str, Any]:
    """What the cached data depends on (a different key rebuilds it)."""
    return {
        "version": DATA_VERSION,
        "role": recipe.role,
        "seed": recipe.seed,
        "data": json.loads(json.dumps(recipe.to_json()["data"])),
        "model_input": [recipe.model.input_width, recipe.model.input_height],
        "config": config.model_dump(mode="json"),
    }


def load_or_build(
    data_dir: Path, recipe: TrainRecipe, config: SpotVlmConfig, processors: Processors, log: Log
) -> TrainingData:
    """The cached data of ``data_dir`` when it was built for the same key, else build and cache it."""
    key = data_key(recipe, config)
    key_path = data_dir / "key.json"
    if key_path.is_file() and json.loads(key_path.read_text()) == key:
        items, heldout = pickle.loads((data_dir / "samples.pkl").read_bytes())
        log(f"data: loaded {len(items)} training items from {data_dir}")
        return TrainingData(items, ImageStore.load(data_dir / "images"), heldout)
    training = build_data(recipe, config, processors, log)
    data_dir.mkdir(parents=True, exist_ok=True)
    training.store.save(data_dir / "images")
    (data_dir / "samples.pkl").write_bytes(pickle.dumps((training.items, training.heldout)))
    key_path.write_text(json.dumps(key, indent=1))
    return TrainingData(training.items, ImageStore.load(data_dir / "images"), training.heldout)
