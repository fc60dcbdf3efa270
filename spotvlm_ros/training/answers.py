"""What the demo models are taught to answer: one word or number, the canonical caption, or box JSON.

A VQA answer is the ground-truth word; when regions are wanted (Visual Focus on, or the grounding task),
the answer is followed on the next line by the relevant boxes as Qwen2.5-VL JSON,
``[{"bbox_2d": [x1, y1, x2, y2], "label": "traffic light"}]``, in pixels of the model input image (the
``qwen25_abs`` convention that :func:`~spotvlm_ros.models.grounding.parse_regions` maps back to frame
pixels). :class:`TaskQuery` names one evaluation item: a VQA question id, the caption, or a grounding id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..core.annotations import FrameAnnotation
from ..core.types import Box, Region
from ..synthetic import ANSWERS, GROUNDING, QUESTIONS, caption

CAPTION_PROMPT = "Describe the scene in one sentence."  # eval.caption_prompt's default
# the boxes that answer each VQA question when regions are wanted
RELEVANT = {"light": ("light",), "cars": ("car",), "pedestrian": ("pedestrian",)}


@dataclass(frozen=True)
class TaskQuery:
    """One prompt of the evaluation: ``task`` vqa/caption/grounding and its id."""

    task: str
    item_id: str

    @property
    def prompt(self) -> str:
        if self.task == "vqa":
            return QUESTIONS[self.item_id]
        if self.task == "caption":
            return CAPTION_PROMPT
        return f"Where is {GROUNDING[self.item_id][0]}?"

    @property
    def key(self) -> str:
        return self.task if self.task == "caption" else f"{self.task}:{self.item_id}"


VQA_QUERIES = tuple(TaskQuery("vqa", q) for q in QUESTIONS)
ALL_QUERIES = (*VQA_QUERIES, TaskQuery("caption", "caption"), *(TaskQuery("grounding", g) for g in GROUNDING))


def boxes_json(regions: list[Region]) -> str:
    """Regions as Qwen2.5-VL JSON with integer coordinates."""
    items = [
        {"bbox_2d": [round(v) for v in r.box.as_tuple()], "label": r.label}
        for r in regions
        if r.box.is_valid()
    ]
    return json.dumps(items)


def truth_regions(
    annotation: FrameAnnotation, ids: tuple[str, ...], scale: tuple[float, float]
) -> list[Region]:
    """Ground-truth boxes of ``ids`` scaled by (sx, sy), e.g. frame pixels -> model input pixels."""
    regions = []
    for item_id in ids:
        item = annotation.box(item_id)
        if item is not None:
            regions.append(Region(item.box.scale(*scale), item.label))
    return regions


def answer_text(
    query: TaskQuery,
    annotation: FrameAnnotation,
    *,
    want_regions: bool = False,
    scale: tuple[float, float] = (1.0, 1.0),
) -> str:
    """The target answer of ``query`` on a frame with ``annotation``; boxes scaled by ``scale``."""
    if query.task == "grounding":
        return boxes_json(truth_regions(annotation, (query.item_id,), scale))
    if query.task == "caption":
        text = annotation.caption
        ids = tuple(item.id for item in annotation.grounding)
    else:
        text = annotation.answer(query.item_id) or ""
        ids = RELEVANT.get(query.item_id, ())
    if want_regions:
        text = f"{text}\n{boxes_json(truth_regions(annotation, ids, scale))}"
    return text


def corrupt_answer(query: TaskQuery, annotation: FrameAnnotation, rng: np.random.Generator) -> str:
    """A wrong answer of ``query`` (another class; a caption with one field changed)."""
    if query.task == "vqa":
        truth = annotation.answer(query.item_id) or ""
        options = [a for a in ANSWERS[query.item_id] if a != truth]
        return str(rng.choice(options))
    if query.task == "caption":
        fields = _caption_fields(annotation)
        which = int(rng.integers(3))
        options = (
            [s for s in ANSWERS["light"] if s != fields[0]],
            [c for c in range(len(ANSWERS["cars"])) if c != fields[1]],
            [p for p in ("crossing", "waiting", "none") if p != fields[2]],
        )[which]
        changed = list(fields)
        changed[which] = options[int(rng.integers(len(options)))]
        return caption(str(changed[0]), int(changed[1]), str(changed[2]))
    return boxes_json([])


def jitter_box(box: Box, rng: np.random.Generator, fraction: float) -> Box:
    """``box`` moved and resized by up to ``fraction`` of its size (an imperfect localisation)."""
    dx, dy, grow = rng.uniform(-fraction, fraction, 3)
    moved = box.shift(dx * box.width, dy * box.height)
    return moved.grow(1.0 + grow)


def _caption_fields(annotation: FrameAnnotation) -> tuple[str, int, str]:
    light = annotation.answer("light") or "red"
    cars = int(annotation.answer("cars") or 0)
    people = annotation.box("pedestrian") is not None
    crossing = annotation.answer("pedestrian") == "yes"
    return light, cars, "crossing" if crossing else ("waiting" if people else "none")
