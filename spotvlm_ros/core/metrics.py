"""Task metrics and latency statistics of the evaluation (pure functions, no ROS, no torch).

- ``vqa``: normalized exact match (lower case, punctuation, articles and extra spaces removed, number
  words to digits), as in the SQuAD / VQA evaluation scripts.
- ``caption``: ROUGE-L F-measure (``rouge-score``) and corpus BLEU (``sacrebleu``).
- ``grounding``: accuracy at IoU >= 0.5 and mean IoU of the predicted region chosen for the query.
- latency: percentiles (linear interpolation, like ``numpy.percentile``), deadline misses, means.

The caption libraries are imported inside the functions that use them, so importing this module is cheap.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .types import Box, Region

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT_TABLE = str.maketrans({c: " " for c in string.punctuation})
_NUMBER_WORDS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, map number words to digits, collapse spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT_TABLE))
    return " ".join(_NUMBER_WORDS.get(word, word) for word in text.split())


def answer_part(text: str) -> str:
    """The answer of a VQA/caption text without the region JSON a model may write after it."""
    return text.split("\n", 1)[0].split("[", 1)[0].strip()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalized answers are equal, else 0.0."""
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; NaN for an empty sequence (reported as missing, never as 0)."""
    return math.fsum(values) / len(values) if values else math.nan


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure in [0, 1] (``rouge-score``, Porter stemming)."""
    _check_pairs(predictions, references)
    if not predictions:
        return math.nan
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return mean(
        [
            scorer.score(ref, pred)["rougeL"].fmeasure
            for pred, ref in zip(predictions, references, strict=True)
        ]
    )


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU in [0, 100] (``sacrebleu`` defaults: 13a tokenizer, exponential smoothing)."""
    _check_pairs(predictions, references)
    if not predictions:
        return math.nan
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")


def pick_region(regions: Sequence[Region], label: str) -> Region | None:
    """The region answering a grounding query: the first whose label matches ``label``, else the first."""
    if not regions:
        return None
    wanted = normalize_answer(label)
    if wanted:
        for region in regions:
            got = normalize_answer(region.label)
            if got and (got == wanted or got in wanted or wanted in got):
                return region
    return regions[0]


def grounding_iou(regions: Sequence[Region], label: str, reference: Box) -> float:
    """IoU of the region :func:`pick_region` chooses with the reference box; 0.0 when there is none."""
    region = pick_region(regions, label)
    return region.box.iou(reference) if region is not None else 0.0


def iou_accuracy(ious: Sequence[float], threshold: float = 0.5) -> float:
    """Fraction of IoUs at or above ``threshold``."""
    return mean([1.0 if iou >= threshold else 0.0 for iou in ious])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Summary of per-frame latencies in seconds."""

    count: int
    mean_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float
    deadline_s: float
    deadline_misses: int

    @property
    def deadline_miss_rate(self) -> float:
        return self.deadline_misses / self.count if self.count else math.nan

    def to_json(self) -> dict[str, float | int]:
        return {**asdict(self), "deadline_miss_rate": self.deadline_miss_rate}


def latency_stats(latencies_s: Sequence[float], deadline_s: float) -> LatencyStats:
    """Percentiles, mean, max and the count of latencies above ``deadline_s``."""
    return LatencyStats(
        count=len(latencies_s),
        mean_s=mean(latencies_s),
        p50_s=percentile(latencies_s, 50),
        p95_s=percentile(latencies_s, 95),
        p99_s=percentile(latencies_s, 99),
        max_s=max(latencies_s) if latencies_s else math.nan,
        deadline_s=deadline_s,
        deadline_misses=sum(1 for v in latencies_s if v > deadline_s),
    )


@dataclass(frozen=True, slots=True)
class AgeStats:
    """Context age over the frames of a run; ages of frames without context are left out."""

    frames: int
    with_context: int
    mean_s: float
    p50_s: float
    p95_s: float
    max_s: float

    @property
    def coverage(self) -> float:
        """Fraction of frames answered with a context."""
        return self.with_context / self.frames if self.frames else math.nan

    def to_json(self) -> dict[str, float | int]:
        return {**asdict(self), "coverage": self.coverage}


def age_stats(ages_s: Sequence[float]) -> AgeStats:
    """Statistics of context ages; a negative age means "no context" (``EdgeAnswer`` convention)."""
    used = [a for a in ages_s if a >= 0.0]
    return AgeStats(
        frames=len(ages_s),
        with_context=len(used),
        mean_s=mean(used),
        p50_s=percentile(used, 50),
        p95_s=percentile(used, 95),
        max_s=max(used) if used else math.nan,
    )
