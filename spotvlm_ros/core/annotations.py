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
class VqaItem:
    id: str
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class GroundingItem:
    id: str
    query: str
    label: str
    box: Box


@dataclass(frozen=True, slots=True)
class FrameAnnotation:
    """Ground truth of one frame for the three tasks."""

    stamp_ns: int
    vqa: tuple[VqaItem, ...] = ()
    caption: str = ""
    grounding: tuple[GroundingItem, ...] = ()
    sequence: str = ""

    def answer(self, question_id: str) -> str | None:
        return next((q.answer for q in self.vqa if q.id == question_id), None)

    def question(self, question_id: str) -> str | None:
        return next((q.question for q in self.vqa if q.id == question_id), None)

    def box(self, item_id: str) -> GroundingItem | None:
        return next((g for g in self.grounding if g.id == item_id), None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"stamp_ns": self.stamp_ns}
        if self.vqa:
            data["vqa"] = [{"id": q.id, "question": q.question, "answer": q.answer} for q in self.vqa]
        if self.caption:
            data["caption"] = self.caption
        if self.grounding:
            data["grounding"] = [
                {"id": g.id, "query": g.query, "label": g.label, "box": list(g.box.as_tuple())}
                for g in self.grounding
            ]
        if self.sequence:
            data["sequence"] = self.sequence
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FrameAnnotation:
        stamp = data["stamp_ns"]
        if not isinstance(stamp, int) or stamp < 0:
            raise ValueError(f"stamp_ns must be a non-negative integer, got {stamp!r}")
        vqa = tuple(VqaItem(str(q["id"]), str(q["question"]), str(q["answer"])) for q in data.get("vqa", []))
        grounding = []
        for g in data.get("grounding", []):
            coords = [float(v) for v in g["box"]]
            if len(coords) != 4:
                raise ValueError(f"box needs 4 numbers, got {g['box']!r}")
            box = Box(*coords)
            if not box.is_valid(min_size=0.0):
                raise ValueError(f"invalid box {g['box']!r}")
            grounding.append(GroundingItem(str(g["id"]), str(g["query"]), str(g.get("label", "")), box))
        return cls(stamp, vqa, str(data.get("caption", "")), tuple(grounding), str(data.get("sequence", "")))


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
