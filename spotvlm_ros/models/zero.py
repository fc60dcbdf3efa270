"""A backend that answers instantly without a model, for replay throughput benchmarks and plumbing tests.

It echoes the newest assistant turn of the messages (in SpotVLM the newest context answer, an LVLM
answer wherever one replaced the SVLM's own), else a fixed word. Token counts follow simple,
deterministic rules: words and punctuation marks for text, Qwen2.5-VL's resize rule for images.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import numpy as np

from ..core.focus.tokens import visual_tokens
from .base import BackendError, ChatMessage, Generation

DEFAULT_ANSWER = "unknown"
_TOKEN = re.compile(r"\w+|[^\w\s]")


def newest_assistant_text(messages: Sequence[ChatMessage]) -> str:
    """Text of the newest assistant turn in ``messages`` ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content.strip()
        texts = [p.get("text", "") for p in content or () if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(t.strip() for t in texts if t.strip())
    return ""


class ZeroCostBackend:
    """Instant answers: the newest context answer found in the messages, else :data:`DEFAULT_ANSWER`."""

    def __init__(self, name: str = "zero", answer: str = DEFAULT_ANSWER) -> None:
        self.name = name
        self.answer = answer
        self._closed = False

    def generate(
        self,
        messages: Sequence[ChatMessage],
        images: Sequence[np.ndarray],
        *,
        max_new_tokens: int | None = None,
        want_regions: bool = False,
    ) -> Generation:
        """Echo the newest assistant turn (cut to ``max_new_tokens`` tokens)."""
        if self._closed:
            raise BackendError(f"{self.name} is closed")
        start = time.perf_counter()
        text = newest_assistant_text(messages) or self.answer
        if max_new_tokens is not None:
            text = _first_tokens(text, max_new_tokens)
        prompt_text = " ".join(_message_texts(messages))
        image_tokens = sum(self.image_tokens(int(im.shape[1]), int(im.shape[0])) for im in images)
        return Generation(
            text=text,
            prompt_tokens=self.count_tokens(prompt_text) + image_tokens,
            image_tokens=image_tokens,
            seconds=time.perf_counter() - start,
            region_error="the zero-cost backend does not ground regions" if want_regions else "",
        )

    def count_tokens(self, text: str) -> int:
        """Words and punctuation marks in ``text``."""
        return len(_TOKEN.findall(text))

    def image_tokens(self, width: int, height: int) -> int:
        """Visual tokens of a ``width`` x ``height`` image under Qwen2.5-VL's resize rule."""
        return visual_tokens(width, height)

    def close(self) -> None:
        """Nothing to free; later calls raise BackendError."""
        self._closed = True


def _message_texts(messages: Sequence[ChatMessage]) -> list[str]:
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
    return texts


def _first_tokens(text: str, limit: int) -> str:
    """``text`` cut after its first ``limit`` tokens (words and punctuation marks)."""
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= limit:
        return text
    return text[: matches[limit - 1].end()] if limit > 0 else ""
