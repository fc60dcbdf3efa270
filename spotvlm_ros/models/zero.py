"""A backend that answers instantly without a model, for replay throughput benchmarks and plumbing tests.

It echoes the context answer of the messages: in a SpotVLM prompt the newest keyframe turn's answer (the
newest LVLM answer), else the newest assistant turn, else a fixed word, with the data quoting of
:func:`~spotvlm_ros.core.sanitize.quote_data` removed, so an answer fed back as history stays the same
from frame to frame. Token counts follow simple, deterministic rules: words and punctuation marks for
text, Qwen2.5-VL's resize rule for images.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..core.focus.tokens import visual_tokens
from ..core.prompt import KEYFRAME_TAG_PREFIX
from ..core.sanitize import unquote_data
from .base import BackendError, ChatMessage, Generation, GenerationCancelled, StopCheck, TextCallback

DEFAULT_ANSWER = "unknown"
_TOKEN = re.compile(r"\w+|[^\w\s]")
_COUNT_CACHE_SIZE = 512


def _text_parts(content: object) -> list[str]:
    """The text parts of one message's content."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return []


def _scan(messages: Sequence[ChatMessage], count: Callable[[str], int]) -> tuple[str, int]:
    """The context answer (see :func:`context_answer`) and the tokens of every text part, in one pass."""
    tokens = 0
    newest = keyframe = None
    after_keyframe_tag = False
    for message in messages:
        parts = _text_parts(message.get("content"))
        for part in parts:
            tokens += count(part)
        role = message.get("role")
        if role == "assistant":
            newest = parts
            if after_keyframe_tag:
                keyframe = parts
            after_keyframe_tag = False
        else:
            after_keyframe_tag = role == "user" and bool(parts) and parts[0].startswith(KEYFRAME_TAG_PREFIX)
    chosen = keyframe if keyframe is not None else newest
    if not chosen:
        return "", tokens
    return unquote_data(" ".join(t.strip() for t in chosen if t.strip())).strip(), tokens


def context_answer(messages: Sequence[ChatMessage]) -> str:
    """The answer of the newest keyframe turn, else of the newest assistant turn, unquoted ("" if none)."""
    return _scan(messages, len)[0]


class ZeroCostBackend:
    """Instant answers: the context answer found in the messages, else :data:`DEFAULT_ANSWER`."""

    def __init__(self, name: str = "zero", answer: str = DEFAULT_ANSWER) -> None:
        self.name = name
        self.answer = answer
        self._closed = False
        self._counts: dict[str, int] = {}
        self._image_counts: dict[tuple[int, int], int] = {}

    def generate(
        self,
        messages: Sequence[ChatMessage],
        images: Sequence[np.ndarray],
        *,
        max_new_tokens: int | None = None,
        want_regions: bool = False,
        on_text: TextCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> Generation:
        """Echo the context answer (cut to ``max_new_tokens`` tokens); ``on_text`` gets it whole, once."""
        if self._closed:
            raise BackendError(f"{self.name} is closed")
        if should_stop is not None and should_stop():
            raise GenerationCancelled(f"{self.name}: stopped before answering")
        start = time.perf_counter()
        answer, text_tokens = _scan(messages, self.count_tokens)
        text = answer or self.answer
        if max_new_tokens is not None:
            text = _first_tokens(text, max_new_tokens)
        image_tokens = sum(self.image_tokens(int(im.shape[1]), int(im.shape[0])) for im in images)
        if on_text is not None:
            on_text(text)
        return Generation(
            text=text,
            prompt_tokens=text_tokens + image_tokens,
            image_tokens=image_tokens,
            seconds=time.perf_counter() - start,
            region_error="the zero-cost backend does not ground regions" if want_regions else "",
        )

    def count_tokens(self, text: str) -> int:
        """Words and punctuation marks in ``text`` (memoised: prompt parts repeat from frame to frame).

        Tokens never span whitespace, so a text's count is the sum of its lines' counts.
        """
        counts = self._counts
        cached = counts.get(text)
        if cached is None:
            if "\n" in text:
                cached = sum([self.count_tokens(line) for line in text.split("\n")])
            else:
                cached = len(_TOKEN.findall(text))
            if len(counts) >= _COUNT_CACHE_SIZE:
                counts.clear()
            counts[text] = cached
        return cached

    def image_tokens(self, width: int, height: int) -> int:
        """Visual tokens of a ``width`` x ``height`` image under Qwen2.5-VL's resize rule (memoised)."""
        key = (width, height)
        cached = self._image_counts.get(key)
        if cached is None:
            if len(self._image_counts) >= _COUNT_CACHE_SIZE:
                self._image_counts.clear()
            cached = self._image_counts[key] = visual_tokens(width, height)
        return cached

    def close(self) -> None:
        """Nothing to free; later calls raise BackendError."""
        self._closed = True


def _first_tokens(text: str, limit: int) -> str:
    """``text`` cut after its first ``limit`` tokens (words and punctuation marks)."""
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= limit:
        return text
    return text[: matches[limit - 1].end()] if limit > 0 else ""
