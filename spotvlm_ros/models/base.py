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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..core.types import Region

ChatMessage = dict[str, Any]


class BackendError(RuntimeError):
    """A backend could not produce an answer (server down, HTTP error, malformed output, ...)."""


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
    ) -> Generation:
        """Answer the last user turn; raises BackendError on failure."""
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
