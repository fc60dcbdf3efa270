"""Per-frame ground truth of the synthetic world for the three tasks, and label statistics.

Ground truth is read from the same projected geometry that is painted: a car or pedestrian counts when
at least ``MIN_VISIBLE_FRACTION`` of its box is inside the frame and not covered by the boxes of nearer
objects; boxes are clipped to the frame.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np

from ..core.annotations import FrameAnnotation, GroundingItem, VqaItem
from ..core.types import Box
from .render import FrameLayout, SceneObject
from .signal import LIGHT_STATES
from .signs import NO_LIMIT, SPEED_LIMITS, visible_box

QUESTIONS = {  # "light" is also the default ``prompt`` of config/spotvlm.yaml
    "light": "What is the state of the traffic light?",
    "cars": "How many cars are visible?",
    "pedestrian": "Is a pedestrian crossing the road?",
    "speed_limit": "What is the speed limit?",  # clips with signs only (ClipSpec.signs)
}
ANSWERS = {
    "light": LIGHT_STATES,
    "cars": ("0", "1", "2", "3"),
    "pedestrian": ("yes", "no"),
    "speed_limit": (*SPEED_LIMITS, NO_LIMIT),
}
GROUNDING = {  # id -> (query, label)
    "light": ("the traffic light", "traffic light"),
    "car": ("the nearest car", "car"),
    "pedestrian": ("the pedestrian", "pedestrian"),
    "sign": ("the speed limit sign", "speed limit sign"),  # while a posted sign is in view
}
SIGN_ITEMS = ("speed_limit", "sign")  # the VQA and grounding ids only clips with signs have
MIN_VISIBLE_FRACTION = 0.25  # of the object's box, unoccluded and inside the frame, to count it
MIN_VISIBLE_FRAME_SHARE = 0.01  # ... or this share of the frame: a near object half out of view counts
BOX_DECIMALS = 2


def _pixel_span(box: Box) -> tuple[int, int, int, int]:
    return (math.floor(box.x1), math.floor(box.y1), math.ceil(box.x2), math.ceil(box.y2))


def visible_objects(objects: Iterable[SceneObject], width: int, height: int) -> list[tuple[SceneObject, Box]]:
    """Objects that are visible enough, nearest first, each with its box clipped to the frame."""
    frame_share = MIN_VISIBLE_FRAME_SHARE * width * height
    ordered = sorted(objects, key=lambda o: o.depth)
    visible = []
    for index, obj in enumerate(ordered):
        clipped = obj.box.clip(width, height)
        if obj.box.area <= 0.0 or clipped.width < 1.0 or clipped.height < 1.0:
            continue
        x1, y1, x2, y2 = _pixel_span(clipped)
        free = np.ones((y2 - y1, x2 - x1), bool)
        for nearer in ordered[:index]:
            nx1, ny1, nx2, ny2 = _pixel_span(nearer.box.clip(width, height))
            free[max(ny1 - y1, 0) : max(ny2 - y1, 0), max(nx1 - x1, 0) : max(nx2 - x1, 0)] = False
        if np.count_nonzero(free) >= min(MIN_VISIBLE_FRACTION * obj.box.area, frame_share):
            visible.append((obj, clipped))
    return visible


def caption(light: str, cars: int, pedestrian: str) -> str:
    """The canonical scene description; ``pedestrian`` is crossing, waiting or none."""
    cars_text = "no cars" if cars == 0 else ("1 car" if cars == 1 else f"{cars} cars")
    pedestrian_text = {
        "crossing": "a pedestrian crossing",
        "waiting": "a pedestrian on the sidewalk",
        "none": "no pedestrians",
    }[pedestrian]
    return f"A road with {cars_text}, a {light} traffic light and {pedestrian_text}."


def _rounded(box: Box) -> Box:
    return Box(*(round(v, BOX_DECIMALS) for v in box.as_tuple()))


def _grounding(item_id: str, box: Box) -> GroundingItem:
    query, label = GROUNDING[item_id]
    return GroundingItem(item_id, query, label, _rounded(box))


def annotate(
    stamp_ns: int,
    light_state: str,
    layout: FrameLayout,
    width: int,
    height: int,
    speed_limit: str | None = None,
) -> FrameAnnotation:
    """Ground truth of one frame: VQA answers, the canonical caption and the boxes of referred objects.

    ``speed_limit`` (clips with signs) adds the speed-limit answer, the posted limit even after its sign
    has passed out of view, and the box of a posted sign while it is in view.
    """
    visible = visible_objects(layout.objects, width, height)
    cars = [(obj, box) for obj, box in visible if obj.kind == "car"]
    people = [(obj, box) for obj, box in visible if obj.kind == "pedestrian"]
    crossing = any(obj.crossing for obj, _ in people)
    vqa = (
        VqaItem("light", QUESTIONS["light"], light_state),
        VqaItem("cars", QUESTIONS["cars"], str(len(cars))),
        VqaItem("pedestrian", QUESTIONS["pedestrian"], "yes" if crossing else "no"),
    )
    if speed_limit is not None:
        vqa += (VqaItem("speed_limit", QUESTIONS["speed_limit"], speed_limit),)
    grounding = [_grounding("light", layout.light.box.clip(width, height))]
    if cars:
        grounding.append(_grounding("car", cars[0][1]))
    if people:
        _, box = min(people, key=lambda p: (not p[0].crossing, p[0].depth))
        grounding.append(_grounding("pedestrian", box))
    sign = visible_box(layout.sign, width, height) if speed_limit is not None else None
    if sign is not None:
        grounding.append(_grounding("sign", sign))
    state = "crossing" if crossing else ("waiting" if people else "none")
    text = caption(light_state, len(cars), state)
    return FrameAnnotation(stamp_ns, vqa, text, tuple(grounding))


def label_stats(annotations: Iterable[FrameAnnotation]) -> dict[str, dict[str, float]]:
    """Fraction of frames per answer of each VQA question, and per grounding id under ``"grounding"``.

    Known questions list every possible answer (0.0 when never seen), so a missing class shows up.
    """
    answers: dict[str, Counter[str]] = {}
    grounded: Counter[str] = Counter()
    frames = 0
    for annotation in annotations:
        frames += 1
        for item in annotation.vqa:
            answers.setdefault(item.id, Counter())[item.answer] += 1
        grounded.update({g.id for g in annotation.grounding})
    stats: dict[str, dict[str, float]] = {}
    for question_id, counts in sorted(answers.items()):
        keys = list(ANSWERS.get(question_id, ())) + sorted(set(counts) - set(ANSWERS.get(question_id, ())))
        stats[question_id] = {k: counts[k] / frames for k in keys}
    stats["grounding"] = {k: grounded[k] / frames for k in sorted(grounded)} if frames else {}
    return stats
