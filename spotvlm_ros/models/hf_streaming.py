"""Partial text and early stop for a local transformers ``generate`` call.

:class:`TextProgress` is a ``streamer``: it decodes the new tokens every few tokens and hands the text
so far to the caller's ``on_text``. :class:`StopWhen` is a stopping criterion that ends generation once
the caller's ``should_stop`` returns True (polled after every token).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from .base import StopCheck, TextCallback

REPORT_EVERY_TOKENS = 4
_INCOMPLETE = "\ufffd"  # a multi-byte character cut between tokens decodes to the replacement mark


class TextProgress(BaseStreamer):
    """Reports the decoded answer so far to ``on_text`` every ``every_tokens`` new tokens and at the end."""

    def __init__(
        self,
        decode: Callable[[list[int]], str],
        on_text: TextCallback,
        every_tokens: int = REPORT_EVERY_TOKENS,
    ) -> None:
        self._decode = decode
        self._on_text = on_text
        self._every = max(1, every_tokens)
        self._prompt_seen = False
        self._ids: list[int] = []
        self._reported_at = 0
        self._last = ""

    @property
    def new_tokens(self) -> int:
        """Tokens generated so far."""
        return len(self._ids)

    def put(self, value: torch.Tensor) -> None:
        """Take the prompt (first call, skipped) or the next generated token(s)."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._ids.extend(value.reshape(-1).tolist())
        if len(self._ids) - self._reported_at >= self._every:
            self._report(final=False)

    def end(self) -> None:
        """Report the complete answer."""
        self._report(final=True)

    def _report(self, *, final: bool) -> None:
        self._reported_at = len(self._ids)
        text = self._decode(self._ids)
        if text == self._last or (not final and text.endswith(_INCOMPLETE)):
            return
        self._last = text
        self._on_text(text)


class StopWhen(StoppingCriteria):
    """Stops generation once ``should_stop()`` is True; ``fired`` tells whether it did."""

    def __init__(self, should_stop: StopCheck) -> None:
        self._should_stop = should_stop
        self.fired = False

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object
    ) -> torch.BoolTensor:
        if not self.fired and self._should_stop():
            self.fired = True
        return torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool, device=input_ids.device)
