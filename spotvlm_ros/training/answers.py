"""What the demo models are taught to answer: one word or number, the canonical caption, or box JSON.

A VQA answer is the ground-truth word; when regions are wanted (Visual Focus on, or the grounding task),
the answer is followed on the next line by the relevant boxes as Qwen2.5-VL JSON,
``[{"bbox_2d": [x1, y1, x2, y2], "label": "traffic light"}]``, in pixels of the model input image (the
``qwen25_abs`` convention that :func:`~spotvlm_ros.models.grounding.parse_regions` maps back to frame
pixels). :class:`TaskQuery` names one evaluation item: a VQA question id, the caption, or a grounding id.

The speed-limit question (clips with signs) has two answers: the posted limit (the ground truth, which
holds after the sign has passed out of view) and what a camera shows now (``seen``): the sign's value
while a posted sign is in view, else ``none``. The LVLM is taught what it sees; the SVLM the limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..core.annotations import FrameAnnotation
from ..core.types import Box, Region
from ..synthetic import ANSWERS, GROUNDING, QUESTIONS, caption
from ..synthetic.signs import NO_LIMIT
from ..synthetic.truth import SIGN_ITEMS

CAPTION_PROMPT = "Describe the scene in one sentence."  # eval.caption_prompt's default
# the boxes that answer each VQA question when regions are wanted
RELEVANT = {"light": ("light",), "cars": ("car",), "pedestrian": ("pedestrian",), "speed_limit": ("sign",)}


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


VQA_QUERIES = tuple(TaskQuery("vqa", q) for q in QUESTIONS if q not in SIGN_ITEMS)
ALL_QUERIES = (
    *VQA_QUERIES,
    TaskQuery("caption", "caption"),
    *(TaskQuery("grounding", g) for g in GROUNDING if g not in SIGN_ITEMS),
)
SIGN_QUERIES = (TaskQuery("vqa", "speed_limit"), TaskQuery("grounding", "sign"))


def has_signs(annotation: FrameAnnotation) -> bool:
    """Whether the frame is from a clip with speed-limit signs."""
    return annotation.answer("speed_limit") is not None


def vqa_queries_for(annotation: FrameAnnotation) -> tuple[TaskQuery, ...]:
    """The VQA questions a frame has answers for."""
    return (*VQA_QUERIES, SIGN_QUERIES[0]) if has_signs(annotation) else VQA_QUERIES


def queries_for(annotation: FrameAnnotation) -> tuple[TaskQuery, ...]:
    """Every query a frame has ground truth for (the sign queries in clips with signs only)."""
    return (*ALL_QUERIES, *SIGN_QUERIES) if has_signs(annotation) else ALL_QUERIES


def seen_limit(annotation: FrameAnnotation) -> str:
    """The speed limit a camera shows now: the posted sign's value while it is in view, else ``none``."""
    if annotation.box("sign") is None:
        return NO_LIMIT
    return annotation.answer("speed_limit") or NO_LIMIT


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
    seen: bool = False,
) -> str:
    """The target answer of ``query`` on a frame with ``annotation``; boxes scaled by ``scale``.

    ``seen``: the speed limit as the frame shows it (:func:`seen_limit`), not the posted one.
    """
    if query.task == "grounding":
        return boxes_json(truth_regions(annotation, (query.item_id,), scale))
    if query.task == "caption":
        text = annotation.caption
        ids = tuple(item.id for item in annotation.grounding)
    elif seen and query.item_id == "speed_limit":
        text, ids = seen_limit(annotation), RELEVANT["speed_limit"]
    else:
        text = annotation.answer(query.item_id) or ""
        ids = RELEVANT.get(query.item_id, ())
    if want_regions:
        text = f"{text}\n{boxes_json(truth_regions(annotation, ids, scale))}"
    return text


def corrupt_answer(
    query: TaskQuery, annotation: FrameAnnotation, rng: np.random.Generator, seen: bool = False
) -> str:
    """A wrong answer of ``query`` (another class; a caption with one field changed)."""
    if query.task == "vqa":
        truth = answer_text(query, annotation, seen=seen)
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
