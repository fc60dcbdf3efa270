"""Per-frame records of an evaluation: one row per (profile, draw, item, mode, scored frame).

A row holds the frame's stamp and recording, the answer the user held at its capture time (its own answer
or the newest one before it), whether that answer was right, the context the answer used (request id,
age, the LVLM's answer) and the focus regions. Only frames with ground truth for the item are recorded,
so the mean of ``correct`` over a run is the run's reported score (VQA exact match, grounding
acc@IoU0.5; caption rows carry no ``correct``). Rows are kept as one Arrow table per run and written as
Parquet beside ``results.json`` (``frames.parquet``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ...core.annotations import AnnotationIndex
from ...core.metrics import exact_match, grounding_iou
from ...core.types import EdgeAnswer, LvlmResult
from .tasks import TaskItem, vqa_answer_text

FRAMES_FILE = "frames.parquet"
IOU_THRESHOLD = 0.5
SCHEMA = pa.schema(
    [
        ("profile", pa.dictionary(pa.int32(), pa.string())),
        ("profile_mean_s", pa.float64()),
        ("draw", pa.int32()),
        ("mode", pa.dictionary(pa.int32(), pa.string())),
        ("item", pa.dictionary(pa.int32(), pa.string())),
        ("sequence", pa.dictionary(pa.int32(), pa.string())),
        ("stamp_ns", pa.int64()),
        ("own_answer", pa.bool_()),
        ("answer", pa.dictionary(pa.int32(), pa.string())),
        ("reference", pa.dictionary(pa.int32(), pa.string())),
        ("correct", pa.float64()),
        ("context_id", pa.string()),
        ("context_age_s", pa.float64()),
        ("context_answer", pa.dictionary(pa.int32(), pa.string())),
        ("focus_regions", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def _regions_json(answer: EdgeAnswer | None) -> str:
    if answer is None or not answer.focus_regions:
        return ""
    return json.dumps([[*(round(v, 1) for v in r.box.as_tuple()), r.label] for r in answer.focus_regions])


def _scored(
    item: TaskItem, annotations: AnnotationIndex, stamp: int, answer: EdgeAnswer | None
) -> tuple[str, str, float] | None:
    """(answer text, reference, correct) of one frame; None when the frame has no ground truth for it."""
    truth = annotations.items.get(stamp)
    if truth is None:
        return None
    if item.task == "vqa":
        reference = truth.answer(item.item_id)
        if reference is None:
            return None
        text = vqa_answer_text(answer)
        return text, reference, exact_match(text, reference)
    if item.task == "caption":
        if not truth.caption:
            return None
        return (answer.text if answer else ""), truth.caption, math.nan
    gold = truth.box(item.item_id)
    if gold is None:
        return None
    iou = grounding_iou(answer.regions if answer else (), item.label or gold.label, gold.box)
    box = json.dumps([round(v, 1) for v in gold.box.as_tuple()])
    return (answer.text if answer else ""), box, 1.0 if iou >= IOU_THRESHOLD else 0.0


def frame_table(
    *,
    profile: str,
    profile_mean_s: float,
    draw: int,
    mode: str,
    item: TaskItem,
    annotations: AnnotationIndex,
    held: Sequence[tuple[int, EdgeAnswer | None]],
    own: Iterable[int],
    contexts: Iterable[LvlmResult],
) -> pa.Table:
    """The rows of one run: ``held`` answers scored against ``annotations``; ``own``: frames answered."""
    answered = set(own)
    texts = {c.request_id: vqa_answer_text_of(c) for c in contexts}
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for stamp, answer in held:
        scored = _scored(item, annotations, stamp, answer)
        if scored is None:
            continue
        text, reference, correct = scored
        truth = annotations.items[stamp]
        context_id = answer.context_id if answer is not None else ""
        columns["stamp_ns"].append(stamp)
        columns["sequence"].append(truth.sequence)
        columns["own_answer"].append(stamp in answered)
        columns["answer"].append(text)
        columns["reference"].append(reference)
        columns["correct"].append(correct)
        columns["context_id"].append(context_id)
        columns["context_age_s"].append(answer.context_age_s if context_id and answer else math.nan)
        columns["context_answer"].append(texts.get(context_id, ""))
        columns["focus_regions"].append(_regions_json(answer))
    rows = len(columns["stamp_ns"])
    columns["profile"] = [profile] * rows
    columns["profile_mean_s"] = [profile_mean_s] * rows
    columns["draw"] = [draw] * rows
    columns["mode"] = [mode] * rows
    columns["item"] = [item.key] * rows
    return pa.table(columns, schema=SCHEMA)


def vqa_answer_text_of(result: LvlmResult) -> str:
    """An LVLM result's answer without the region JSON written after it."""
    answer = EdgeAnswer(result.stamp_ns, result.task, result.text, regions=result.regions)
    return vqa_answer_text(answer)


def concat(tables: Iterable[pa.Table | None]) -> pa.Table:
    """One table of many runs' rows (the dictionaries unified)."""
    present = [t for t in tables if t is not None]
    if not present:
        return SCHEMA.empty_table()
    return pa.concat_tables(present).unify_dictionaries().combine_chunks()


def write_frames(table: pa.Table, out_dir: Path) -> Path:
    """Write the rows as ``frames.parquet`` in ``out_dir`` (zstd-compressed)."""
    path = Path(out_dir) / FRAMES_FILE
    pq.write_table(table, path, compression="zstd")
    return path


def read_frames(path: Path) -> pa.Table:
    """Read ``frames.parquet`` (a file, or the folder that holds it)."""
    path = Path(path)
    return pq.read_table(path / FRAMES_FILE if path.is_dir() else path)
