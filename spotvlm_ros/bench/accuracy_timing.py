"""SVLM compute per frame under two modes' prompts, timed side by side (for ``bench accuracy``).

The prompts of each mode are recorded from a short evaluation run (:class:`RecordingBackend`), then
replayed in their original order on one fresh backend per mode (each keeps its own prefix KV cache, as
a deployed edge would), alternating between the modes frame by frame so both see the same machine load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.config import SpotVlmConfig
from ..models.base import ChatMessage, Generation, VlmBackend


@dataclass(frozen=True)
class Call:
    """One recorded ``generate`` call."""

    messages: list[ChatMessage]
    images: list[np.ndarray]
    max_new_tokens: int | None
    want_regions: bool


class RecordingBackend:
    """Passes calls to ``backend`` and keeps a copy of each (a wrapper, not a test double)."""

    def __init__(self, backend: VlmBackend):
        self.backend = backend
        self.name = backend.name
        self.calls: list[Call] = []

    def generate(
        self,
        messages: Sequence[ChatMessage],
        images: Sequence[np.ndarray],
        *,
        max_new_tokens: int | None = None,
        want_regions: bool = False,
    ) -> Generation:
        self.calls.append(Call(list(messages), list(images), max_new_tokens, want_regions))
        return self.backend.generate(
            messages, images, max_new_tokens=max_new_tokens, want_regions=want_regions
        )

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def image_tokens(self, width: int, height: int) -> int:
        return self.backend.image_tokens(width, height)

    def close(self) -> None:
        self.backend.close()


def time_calls(config: SpotVlmConfig, recorded: dict[str, list[Call]]) -> dict[str, float]:
    """Mean seconds per call of each mode's recorded calls (the first call of each is a warm-up)."""
    from ..models.factory import create_backend

    count = min(len(calls) for calls in recorded.values())
    backends: dict[str, Any] = {mode: create_backend(config.edge, "edge") for mode in recorded}
    seconds: dict[str, list[float]] = {mode: [] for mode in recorded}
    try:
        for index in range(count):
            for mode, calls in recorded.items():
                call = calls[index]
                started = time.perf_counter()
                backends[mode].generate(
                    call.messages,
                    call.images,
                    max_new_tokens=call.max_new_tokens,
                    want_regions=call.want_regions,
                )
                if index > 0:
                    seconds[mode].append(time.perf_counter() - started)
    finally:
        for backend in backends.values():
            backend.close()
    return {mode: statistics.fmean(values) if values else float("nan") for mode, values in seconds.items()}
