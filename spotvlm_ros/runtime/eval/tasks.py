"""Evaluation items from a bag's ground truth, and the per-frame scoring of one run.

An item is one prompt asked on every frame: one VQA question id (``light``, ``cars``, ...), the caption
prompt, or one grounding query id. A frame the answerer skipped (latest wins) is scored with the answer
the user held at that frame's capture time: the newest answer available by then (or none).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...core.annotations import AnnotationIndex
from ...core.metrics import answer_part, bleu, exact_match, grounding_iou, iou_accuracy, mean, rouge_l
from ...core.types import NS_PER_S, EdgeAnswer
from ..events import FrameRecord

PRIMARY_METRIC = {"vqa": "exact_match", "caption": "rouge_l", "grounding": "acc_iou50"}


@dataclass(frozen=True)
class TaskItem:
    """One prompt evaluated on every frame that has ground truth for it."""

    task: str
    item_id: str
    prompt: str
    label: str = ""

    @property
    def key(self) -> str:
        return self.task if self.task == "caption" else f"{self.task}:{self.item_id}"


def task_items(
    annotations: AnnotationIndex, tasks: Sequence[str], caption_prompt: str, questions: Sequence[str] = ()
) -> list[TaskItem]:
    """The items of ``tasks`` the annotations support (``questions`` limits the VQA and grounding ids)."""
    vqa: dict[str, str] = {}
    grounding: dict[str, tuple[str, str]] = {}
    has_caption = False
    for stamp in sorted(annotations.items):
        frame = annotations.items[stamp]
        for q in frame.vqa:
            if not q.group:  # grouped (DriveLM) questions belong to one frame: see .drivelm
                vqa.setdefault(q.id, q.question)
        for g in frame.grounding:
            grounding.setdefault(g.id, (g.query, g.label))
        has_caption = has_caption or bool(frame.caption)
    wanted = set(questions)
    items: list[TaskItem] = []
    for task in tasks:
        if task == "vqa":
            items += [TaskItem("vqa", i, q) for i, q in sorted(vqa.items()) if not wanted or i in wanted]
        elif task == "caption" and has_caption:
            items.append(TaskItem("caption", "caption", caption_prompt))
        elif task == "grounding":
            items += [
                TaskItem("grounding", i, f"Where is {query}?", label)
                for i, (query, label) in sorted(grounding.items())
                if not wanted or i in wanted
            ]
    return items


def held_answers(
    frames: Sequence[int], records: Sequence[FrameRecord]
) -> list[tuple[int, EdgeAnswer | None]]:
    """For each frame stamp: its own answer when answered, else the newest answer available by then."""
    own = {r.stamp_ns: r.answer for r in records}
    by_time = sorted(records, key=lambda r: (r.stamp_ns + round(r.latency_s * NS_PER_S), r.stamp_ns))
    ready = [r.stamp_ns + round(r.latency_s * NS_PER_S) for r in by_time]
    held: list[tuple[int, EdgeAnswer | None]] = []
    for stamp in frames:
        if stamp in own:
            held.append((stamp, own[stamp]))
            continue
        index = bisect.bisect_right(ready, stamp) - 1
        held.append((stamp, by_time[index].answer if index >= 0 else None))
    return held


def vqa_answer_text(answer: EdgeAnswer | None) -> str:
    """The text a VQA answer is scored on: without the region JSON a model wrote after it when asked.

    With Visual Focus on, the LVLM is asked for regions and answers ``red`` then its boxes; the boxes
    (parsed into ``answer.regions``) are not part of the answer. Text without parsed regions is kept whole.
    """
    if answer is None:
        return ""
    if not answer.regions:
        return answer.text
    return answer_part(answer.text)


def score_item(
    item: TaskItem, annotations: AnnotationIndex, held: Sequence[tuple[int, EdgeAnswer | None]]
) -> dict[str, Any]:
    """Task metrics of one item over the frames that have ground truth for it."""
    if item.task == "vqa":
        scores = []
        for stamp, answer in held:
            truth = annotations.items.get(stamp)
            reference = truth.answer(item.item_id) if truth else None
            if reference is not None:
                scores.append(exact_match(vqa_answer_text(answer), reference))
        return {"frames_scored": len(scores), "exact_match": mean(scores)}
    if item.task == "caption":
        predictions, references = [], []
        for stamp, answer in held:
            truth = annotations.items.get(stamp)
            if truth and truth.caption:
                predictions.append(answer.text if answer else "")
                references.append(truth.caption)
        return {
            "frames_scored": len(predictions),
            "rouge_l": rouge_l(predictions, references),
            "bleu": bleu(predictions, references),
        }
    ious = []
    for stamp, answer in held:
        truth = annotations.items.get(stamp)
        gold = truth.box(item.item_id) if truth else None
        if gold is not None:
            ious.append(grounding_iou(answer.regions if answer else (), item.label or gold.label, gold.box))
    return {"frames_scored": len(ious), "acc_iou50": iou_accuracy(ious), "mean_iou": mean(ious)}


def primary_score(task: str, metrics: dict[str, Any]) -> float:
    """The headline number of a task (VQA exact match, caption ROUGE-L, grounding acc@IoU0.5)."""
    value = metrics.get(PRIMARY_METRIC[task], math.nan)
    return float(value)
