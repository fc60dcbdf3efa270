"""DriveLM's metric families on answers against imported ground truth (pure functions, no ROS, no torch).

- ``accuracy`` (multiple-choice and yes/no items): a multiple-choice answer is right when the option letter
  it gives (``D``, ``D.``, ``(D)``, ``The answer is D``, or the text of an option) is the truth's letter;
  other accuracy items use the project's normalized exact match. DriveLM itself compares raw strings.
- ``language``: corpus BLEU-4 (``sacrebleu``, 0-100) and mean ROUGE-L F (``rouge-score``, 0-1) of the
  answers against the truth's, as :mod:`.metrics` computes them. CIDEr is not computed: the library DriveLM
  uses (``pycocoevalcap`` through ``language_evaluation``) has had no release since 2020 and its tokenizer
  runs Java; no maintained Python library gives it.
- ``match``: object references. DriveLM's ``match_result`` pairs the centres written in the answer with the
  truth's (greedy, nearest unmatched by L1 pixel distance, a pair counts below 16 px) and scores the F1;
  here the c tags of the answer are paired the same way but only with truth tags of the same camera
  (DriveLM ignores the camera). An answer that names no object scores 0.
- DriveLM's GPT score (a chat model grading the answer) is not computed: items tagged for it are counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .metrics import bleu, exact_match, mean, normalize_answer, rouge_l

C_TAG = re.compile(r"<(c\d+),([A-Za-z_]+),(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)>")
"""A DriveLM object reference ``<c1,CAM_FRONT,714.3,503.6>``: id, camera, centre x and y in pixels."""
MATCH_DISTANCE_PX = 16.0
"""DriveLM's threshold on the L1 distance between two centres for a match."""
GPT_NOT_COMPUTED = "DriveLM's GPT score is not computed (it needs a chat model as grader)"
_LETTER_START = re.compile(r"^\(?([A-H])(?:[.):]|$)")
_LETTER_SAID = re.compile(r"\b(?:answer|option)\s+(?:is\s+)?\(?([A-H])\b")


@dataclass(frozen=True)
class TagRef:
    """An object reference written in a text: camera and centre."""

    id: str
    camera: str
    x: float
    y: float


def parse_tags(text: str) -> list[TagRef]:
    """The c tags of a text, in order."""
    return [TagRef(m[1], m[2], float(m[3]), float(m[4])) for m in C_TAG.finditer(text)]


def option_letter(text: str, options: Sequence[str]) -> str:
    """The option letter an answer gives ("" when it gives none)."""
    letters = "ABCDEFGH"[: len(options)]
    text = text.strip()
    for pattern in (_LETTER_START, _LETTER_SAID):
        found = pattern.search(text)
        if found and found.group(1) in letters:
            return found.group(1)
    said = normalize_answer(text)
    return next((letters[i] for i, option in enumerate(options) if normalize_answer(option) == said), "")


def accuracy(prediction: str, reference: str, options: Sequence[str] = ()) -> float:
    """1.0 when right: the same option letter for multiple choice, else normalized exact match."""
    if options:
        return 1.0 if option_letter(prediction, options) == reference.strip() else 0.0
    return exact_match(prediction, reference)


def match_f1(prediction: str, truth: Sequence[TagRef], max_distance: float = MATCH_DISTANCE_PX) -> float:
    """F1 of the answer's c tags against the truth's: same camera, centres closer than ``max_distance``.

    Each predicted tag in order takes the nearest unmatched truth tag of its camera (L1 distance), as
    DriveLM's ``match_result`` does without the camera.
    """
    predicted = parse_tags(prediction)
    left = list(truth)
    hits = 0
    for pred in predicted:
        candidates = [
            (abs(pred.x - t.x) + abs(pred.y - t.y), i) for i, t in enumerate(left) if t.camera == pred.camera
        ]
        if candidates:
            distance, index = min(candidates)
            if distance < max_distance:
                hits += 1
                left.pop(index)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class ScoredItem:
    """One question's truth and the answer given (None: no answer held at its frame)."""

    group: str
    question: str
    reference: str
    answer: str | None
    metrics: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    truth_tags: tuple[TagRef, ...] = ()


def family_of(item: ScoredItem) -> set[str]:
    """The metric families an item is scored by: its tags, and ``match`` wherever the truth names objects."""
    families = set(item.metrics)
    if item.truth_tags and not item.options:
        families.add("match")
    return families


def score_items(items: Sequence[ScoredItem]) -> dict[str, Any]:
    """DriveLM metric families over ``items`` (one group, or all); absent families are NaN with n = 0."""
    answers = [item.answer or "" for item in items]
    acc = [
        accuracy(a, i.reference, i.options)
        for i, a in zip(items, answers, strict=True)
        if "accuracy" in family_of(i)
    ]
    language = [(a, i.reference) for i, a in zip(items, answers, strict=True) if "language" in family_of(i)]
    match = [
        match_f1(a, i.truth_tags) for i, a in zip(items, answers, strict=True) if "match" in family_of(i)
    ]
    return {
        "questions": len(items),
        "answered": sum(item.answer is not None for item in items),
        "skipped": sum(item.answer is None for item in items),
        "accuracy": mean(acc),
        "accuracy_n": len(acc),
        "bleu": bleu([a for a, _ in language], [r for _, r in language]),
        "rouge_l": rouge_l([a for a, _ in language], [r for _, r in language]),
        "language_n": len(language),
        "match_f1": mean(match),
        "match_n": len(match),
        "gpt_n": sum("gpt" in family_of(item) for item in items),
        "gpt_score": None,
    }


def score_by_group(items: Sequence[ScoredItem], groups: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`score_items` per group (every group of ``groups`` listed, empty ones included) and ``all``."""
    table = {group: score_items([i for i in items if i.group == group]) for group in groups}
    table["all"] = score_items(items)
    return table
