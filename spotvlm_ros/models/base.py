"""The one small interface every VLM backend implements, for the edge SVLM and the cloud LVLM alike.

Messages use the Hugging Face chat format that core produces::

    [{"role": "system", "content": [{"type": "text", "text": "..."}]},
     {"role": "user", "content": [{"type": "text", "text": "(2.4 s ago) What is ...?"}]},
     {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
     {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "..."}]}]

``images`` holds one RGB uint8 HxWx3 array per ``{"type": "image"}`` part, in order. Regions in a
:class:`Generation` are in pixels of the FIRST image (the frame), whatever the model resized it to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..core.types import Region

ChatMessage = dict[str, Any]


class BackendError(RuntimeError):
    """A backend could not produce an answer (server down, HTTP error, malformed output, ...)."""


class GenerationCancelled(BackendError):  # noqa: N818 - reads as the event it reports
    """Generation stopped early because the caller's ``should_stop`` (or a cancel) asked for it."""


TextCallback = Callable[[str], None]
"""``on_text``: receives the answer generated so far (a growing prefix of the final text)."""
StopCheck = Callable[[], bool]
"""``should_stop``: polled while generating; True stops it with :class:`GenerationCancelled`."""


@dataclass(frozen=True, slots=True)
class Generation:
    """One model answer with what it cost."""

    text: str
    regions: tuple[Region, ...] = ()
    prompt_tokens: int = 0
    image_tokens: int = 0
    seconds: float = 0.0
    region_error: str = ""  # why no regions were parsed when they were wanted ("" = fine)
    cached_prefix_tokens: int = 0  # prompt tokens served from a reused KV cache


@runtime_checkable
class VlmBackend(Protocol):
    """A vision-language model that answers a chat with images."""

    name: str

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
        """Answer the last user turn; raises BackendError on failure.

        ``on_text`` (when given) is called on the calling thread with the text so far as it grows, at
        most every few tokens or chunks, and last with the final text; it must not call back into this
        backend's ``generate``. ``should_stop`` is polled between tokens or chunks: once it returns True
        the backend stops and raises :class:`GenerationCancelled`. Both cost nothing when ``None``.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs in this model's prompt (for the context budget)."""
        ...

    def image_tokens(self, width: int, height: int) -> int:
        """Visual tokens an image of this size costs after the model's own resize."""
        ...

    def close(self) -> None:
        """Free the model (and GPU memory) or the connection pool."""
        ...
