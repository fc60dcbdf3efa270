"""Synthetic driving world: seeded, rendered driving clips with per-frame ground truth (numpy + OpenCV).

A camera creeps down a two-lane road towards a junction whose traffic light cycles green -> yellow -> red;
0-3 cars drive, turn and cross; in half the clips pedestrians cross. Each frame comes with VQA answers
(light state, number of cars, is a pedestrian crossing), a canonical caption and boxes of the light, the
nearest car and the pedestrian (``core.annotations.FrameAnnotation``).
"""

from .scene import ClipSpec
from .truth import ANSWERS, GROUNDING, QUESTIONS, caption, label_stats
from .world import (
    DEFAULT_START_NS,
    clip_spec,
    dataset_clips,
    generate_annotations,
    generate_clip,
    generate_dataset,
    generate_sign_variants,
)

__all__ = [
    "ANSWERS",
    "DEFAULT_START_NS",
    "GROUNDING",
    "QUESTIONS",
    "ClipSpec",
    "caption",
    "clip_spec",
    "dataset_clips",
    "generate_annotations",
    "generate_clip",
    "generate_dataset",
    "generate_sign_variants",
    "label_stats",
]
