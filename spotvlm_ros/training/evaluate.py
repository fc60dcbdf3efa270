"""Accuracy on the held-out set, per group, through a real backend (``VlmBackend.generate``).

Each held-out sample holds the messages and images the runtime would pass, so the model answers exactly
as it will in use (greedy decoding, the real processor and chat template). Scoring:

- VQA and crop groups: normalized exact match of the answer (region JSON after it ignored);
- caption: normalized exact match with the canonical sentence;
- grounding: the parsed box (``qwen25_abs``, mapped back to frame pixels) at IoU >= 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core.metrics import answer_part, exact_match, mean
from ..core.types import Box
from ..models.base import BackendError, VlmBackend
from ..models.grounding import parse_regions
from ..models.hf_local import fit_image
from .modeling import model_input_size
from .samples import Sample

IOU_THRESHOLD = 0.5
MAX_SIDE = 8192  # images are not shrunk before the processor when a backend names no image_max_side


@dataclass(frozen=True)
class Prediction:
    """A model's answer to one held-out sample."""

    sample: Sample
    text: str
    model_input_size: tuple[int, int] | None = None  # (w, h) of the first image as the model saw it


def score(prediction: Prediction) -> float:
    """1.0 when the prediction is right for its group (see the module docstring), else 0.0."""
    sample = prediction.sample
    if sample.group.startswith("grounding:"):
        box = sample.meta.get("box")
        width, height = sample.meta.get("size", (sample.images[0].shape[1], sample.images[0].shape[0]))
        parsed = parse_regions(prediction.text, (width, height), prediction.model_input_size, "qwen25_abs")
        if box is None:
            return 1.0 if not parsed.regions else 0.0
        if not parsed.regions:
            return 0.0
        return 1.0 if parsed.regions[0].box.iou(Box(*box)) >= IOU_THRESHOLD else 0.0
    if sample.group.startswith("caption"):
        return exact_match(prediction.text.split("\n", 1)[0], sample.truth)
    return exact_match(answer_part(prediction.text), sample.truth)


def accuracy_by_group(predictions: Iterable[Prediction]) -> dict[str, float]:
    """Mean score per group, groups sorted by name."""
    scores: dict[str, list[float]] = {}
    for prediction in predictions:
        scores.setdefault(prediction.sample.group, []).append(score(prediction))
    return {group: mean(values) for group, values in sorted(scores.items())}


def predict(backend: VlmBackend, samples: Sequence[Sample], max_new_tokens: int) -> list[Prediction]:
    """The backend's answer to every sample (an empty answer when the backend fails on one)."""
    predictions = []
    for sample in samples:
        try:
            generation = backend.generate(sample.messages, sample.images, max_new_tokens=max_new_tokens)
            text = generation.text
        except BackendError:
            text = ""
        predictions.append(Prediction(sample, text, _input_size(backend, sample)))
    return predictions


def evaluate(backend: VlmBackend, samples: Sequence[Sample], max_new_tokens: int) -> dict[str, float]:
    """Accuracy per held-out group of ``backend`` (see :func:`score`)."""
    return accuracy_by_group(predict(backend, samples, max_new_tokens))


def _input_size(backend: VlmBackend, sample: Sample) -> tuple[int, int] | None:
    """The model input size of the first image, for backends that expose their processor."""
    processor = getattr(backend, "processor", None)
    if processor is None or not sample.images:
        return None
    fitted = fit_image(sample.images[0], getattr(backend, "image_max_side", MAX_SIDE))
    return model_input_size(processor, fitted.shape[1], fitted.shape[0])


def class_prior(samples: Sequence[Sample]) -> dict[str, float]:
    """Accuracy per group of always answering the group's most frequent truth (the plateau to beat).

    Grounding groups have no such prior (every box differs) and are left out.
    """
    truths: dict[str, dict[str, int]] = {}
    for sample in samples:
        if sample.group.startswith("grounding:"):
            continue
        counts = truths.setdefault(sample.group, {})
        counts[sample.truth] = counts.get(sample.truth, 0) + 1
    return {
        group: (max(counts.values()) / sum(counts.values()) if counts else math.nan)
        for group, counts in sorted(truths.items())
    }
