"""Ground truth for evaluation: a JSONL sidecar keyed by frame stamp.

A bag directory may hold ``annotations.jsonl`` beside ``metadata.yaml``. Each line annotates one frame::

    {"stamp_ns": 1700000000100000000,
     "vqa": [{"id": "light", "question": "What is the state of the traffic light?", "answer": "red"}],
     "caption": "A two-lane road with one car ahead and a red traffic light.",
     "grounding": [{"id": "light", "query": "the traffic light", "label": "traffic light",
                    "box": [412.0, 80.0, 426.0, 112.0]}],
     "sequence": "drive-03"}

``stamp_ns`` is the header stamp of the camera frame; boxes are ``[x1, y1, x2, y2]`` frame pixels. Every
field but ``stamp_ns`` is optional. Question ids let an evaluation ask one question across all frames.
``sequence`` names the independent recording a frame belongs to, for bags made of several recordings back
to back (the synthetic bags' clips): an evaluation starts afresh where it changes, as a new drive would,
so a late answer about one recording is never context for the next. Without it the bag is one recording.

Multi-camera and DriveLM ground truth (``spotvlm import-drivelm``) adds optional fields::

    {"cameras": {"CAM_FRONT": 1533280036162460000, "CAM_BACK": 1533280036187525000},
     "vqa": [{"id": "planning-1", "group": "planning",
              "question": "What actions ... based on <c1,CAM_FRONT,714.3,503.6>?",
              "answer": "The action is to brake ...", "metrics": ["language"],
              "options": ["Stopped.", "Back up.", "Turn left.", "Going ahead."],
              "objects": [{"tag": "<c1,CAM_FRONT,714.3,503.6>", "id": "c1", "camera": "CAM_FRONT",
                           "center": [714.3, 503.6], "box": [624.3, 469.4, 814.8, 537.8]}]}],
     "grounding": [{"id": "c1", "query": "Red car.", "label": "Vehicle", "camera": "CAM_FRONT",
                    "box": [624.3, 469.4, 814.8, 537.8]}]}

``cameras`` gives each camera's stamp of the instant (the line's ``stamp_ns`` is one of them). A VQA item's
``group`` (DriveLM: perception, prediction, planning, behavior) marks it as a question of that one frame,
not one asked across frames; ``options`` are the choices of a multiple-choice question (letters A, B, ...
in order, the answer is a letter); ``metrics`` name how it is scored (accuracy, language, match, gpt);
``objects`` are the objects its answer refers to, each with its camera and 2D box (``box`` absent when
the source has no box for it). A grounding item's ``camera`` is the camera its box is in.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .types import Box

ANNOTATIONS_FILE = "annotations.jsonl"


class AnnotationError(ValueError):
    """A malformed annotation line; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object a text refers to: its tag as written, id, camera, centre and 2D box (when known)."""

    tag: str
    id: str
    camera: str
    center: tuple[float, float]
    box: Box | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tag": self.tag,
            "id": self.id,
            "camera": self.camera,
            "center": list(self.center),
        }
        if self.box is not None:
            data["box"] = list(self.box.as_tuple())
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObjectRef:
        x, y = (float(v) for v in data["center"])
        box = _box(data["box"]) if data.get("box") is not None else None
        return cls(str(data["tag"]), str(data["id"]), str(data["camera"]), (x, y), box)


@dataclass(frozen=True, slots=True)
class VqaItem:
    id: str
    question: str
    answer: str
    group: str = ""
    options: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    objects: tuple[ObjectRef, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "question": self.question, "answer": self.answer}
        if self.group:
            data["group"] = self.group
        if self.options:
            data["options"] = list(self.options)
        if self.metrics:
            data["metrics"] = list(self.metrics)
        if self.objects:
            data["objects"] = [o.to_json() for o in self.objects]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VqaItem:
        return cls(
            str(data["id"]),
            str(data["question"]),
            str(data["answer"]),
            str(data.get("group", "")),
            tuple(str(o) for o in data.get("options", ())),
            tuple(str(m) for m in data.get("metrics", ())),
            tuple(ObjectRef.from_json(o) for o in data.get("objects", ())),
        )


@dataclass(frozen=True, slots=True)
class GroundingItem:
    id: str
    query: str
    label: str
    box: Box
    camera: str = ""


@dataclass(frozen=True, slots=True)
class FrameAnnotation:
    """Ground truth of one frame for the three tasks."""

    stamp_ns: int
    vqa: tuple[VqaItem, ...] = ()
    caption: str = ""
    grounding: tuple[GroundingItem, ...] = ()
    sequence: str = ""
    cameras: tuple[tuple[str, int], ...] = ()

    def answer(self, question_id: str) -> str | None:
        return next((q.answer for q in self.vqa if q.id == question_id), None)

    def question(self, question_id: str) -> str | None:
        return next((q.question for q in self.vqa if q.id == question_id), None)

    def box(self, item_id: str) -> GroundingItem | None:
        return next((g for g in self.grounding if g.id == item_id), None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"stamp_ns": self.stamp_ns}
        if self.vqa:
            data["vqa"] = [q.to_json() for q in self.vqa]
        if self.caption:
            data["caption"] = self.caption
        if self.grounding:
            data["grounding"] = [
                {"id": g.id, "query": g.query, "label": g.label, "box": list(g.box.as_tuple())}
                | ({"camera": g.camera} if g.camera else {})
                for g in self.grounding
            ]
        if self.sequence:
            data["sequence"] = self.sequence
        if self.cameras:
            data["cameras"] = dict(self.cameras)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FrameAnnotation:
        stamp = data["stamp_ns"]
        if not isinstance(stamp, int) or stamp < 0:
            raise ValueError(f"stamp_ns must be a non-negative integer, got {stamp!r}")
        vqa = tuple(VqaItem.from_json(q) for q in data.get("vqa", []))
        grounding = tuple(
            GroundingItem(
                str(g["id"]),
                str(g["query"]),
                str(g.get("label", "")),
                _box(g["box"]),
                str(g.get("camera", "")),
            )
            for g in data.get("grounding", [])
        )
        cameras = tuple((str(name), int(value)) for name, value in dict(data.get("cameras", {})).items())
        return cls(
            stamp, vqa, str(data.get("caption", "")), grounding, str(data.get("sequence", "")), cameras
        )


def _box(value: Any) -> Box:
    """A ``[x1, y1, x2, y2]`` list as a valid :class:`Box` (ValueError otherwise)."""
    coords = [float(v) for v in value]
    if len(coords) != 4:
        raise ValueError(f"box needs 4 numbers, got {value!r}")
    box = Box(*coords)
    if not box.is_valid(min_size=0.0):
        raise ValueError(f"invalid box {value!r}")
    return box


@dataclass
class AnnotationIndex:
    """Annotations sorted by stamp, with exact and nearest (within a tolerance) lookup."""

    items: dict[int, FrameAnnotation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stamps = sorted(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, stamp_ns: int, tolerance_ns: int = 0) -> FrameAnnotation | None:
        """The annotation at ``stamp_ns``, or the nearest one within ``tolerance_ns``."""
        if stamp_ns in self.items or tolerance_ns <= 0:
            return self.items.get(stamp_ns)
        i = bisect.bisect_left(self._stamps, stamp_ns)
        near = [s for s in self._stamps[max(0, i - 1) : i + 1] if abs(s - stamp_ns) <= tolerance_ns]
        return self.items[min(near, key=lambda s: abs(s - stamp_ns))] if near else None

    def question_ids(self) -> list[str]:
        return sorted({q.id for a in self.items.values() for q in a.vqa})


def save_annotations(path: str | Path, annotations: Iterable[FrameAnnotation]) -> Path:
    """Write annotations as JSONL (one frame per line, sorted by stamp)."""
    path = Path(path)
    lines = [json.dumps(a.to_json(), sort_keys=True) for a in sorted(annotations, key=lambda a: a.stamp_ns)]
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def load_annotations(path: str | Path) -> AnnotationIndex:
    """Read a JSONL file (or the ``annotations.jsonl`` of a bag directory); errors name file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / ANNOTATIONS_FILE
    items: dict[int, FrameAnnotation] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            annotation = FrameAnnotation.from_json(json.loads(line))
        except (ValueError, KeyError, TypeError) as err:
            raise AnnotationError(f"{path}:{number}: {err}") from None
        items[annotation.stamp_ns] = annotation
    return AnnotationIndex(items)
