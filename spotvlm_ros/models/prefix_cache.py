"""Reuse of the KV cache of an unchanged prompt prefix across frames.

The edge prompt of consecutive frames starts with the same system prompt and context history, and only
the current turn (images + question) changes. :class:`PrefixKvCache` keeps the KV cache of the longest
token prefix that precedes the first image of the last prompt; the next prompt that starts with the same
tokens gets that cache (cropped to the shared length) and only its new tokens are computed. Image tokens
are never part of a kept prefix: their placeholder ids are equal for different pictures.

Models whose cache cannot be cropped back (linear-attention layers keep one recurrent state, sliding-window
layers drop old tokens) use :class:`PrefixSnapshot` instead: the prefix is run in a pass of its own, and
every prompt that starts with exactly that prefix gets a copy of its cache.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from transformers import DynamicCache


def reusable_prefix_length(input_ids: Sequence[int], image_positions: Sequence[int]) -> int:
    """Tokens of a prompt whose KV may be reused: everything before its first image, minus the last token.

    The last prompt token is always computed anew, since its logits start the answer.
    """
    limit = len(input_ids) - 1
    if image_positions:
        limit = min(limit, min(image_positions))
    return max(0, limit)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixKvCache:
    """The KV cache of one prompt prefix, cropped and handed to the next prompt that shares it.

    Use :meth:`take` before a generate call (it returns the cache to pass as ``past_key_values``, or
    ``None``, and how many prompt tokens it covers), then :meth:`keep` with the cache generate filled.
    A failed call must be followed by :meth:`clear`. Not thread-safe: the backend serialises calls.
    """

    def __init__(self, min_tokens: int = 1) -> None:
        self._ids: tuple[int, ...] = ()
        self._cache: DynamicCache | None = None
        self._min_tokens = max(1, min_tokens)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens currently held."""
        return len(self._ids)

    def take(self, input_ids: Sequence[int], reusable: int) -> tuple[DynamicCache | None, int]:
        """The cache for a prompt whose first ``reusable`` tokens may come from a cache, and its length."""
        cache, self._cache = self._cache, None
        shared = common_prefix_length(self._ids, input_ids[:reusable])
        self._ids = ()
        if cache is None or shared < self._min_tokens:
            return None, 0
        cache.crop(shared - cache.get_seq_length())
        return cache, shared

    def keep(self, cache: DynamicCache | None, input_ids: Sequence[int], reusable: int) -> None:
        """Hold ``cache`` (filled by generate for ``input_ids``) cropped to the first ``reusable`` tokens."""
        if cache is None or reusable < self._min_tokens or cache.get_seq_length() < reusable:
            self.clear()
            return
        cache.crop(reusable - cache.get_seq_length())
        self._cache = cache
        self._ids = tuple(input_ids[:reusable])

    def clear(self) -> None:
        """Drop the held cache (after an error, a model change or on close)."""
        self._cache = None
        self._ids = ()


class PrefixSnapshot:
    """The cache of one prompt prefix computed alone, handed out as a copy to prompts that start with it.

    Same calls as :class:`PrefixKvCache`. ``prefill(ids)`` runs the model on the prefix tokens alone and
    returns its cache. A prompt whose reusable prefix differs from the held one gets the new prefix
    computed in its own pass (reported as 0 cached tokens: nothing was reused); the next prompt with the
    same prefix gets a copy of it. Not thread-safe: the backend serialises calls.
    """

    def __init__(self, prefill: Callable[[Sequence[int]], DynamicCache], min_tokens: int = 1) -> None:
        self._prefill = prefill
        self._ids: tuple[int, ...] = ()
        self._cache: DynamicCache | None = None
        self._min_tokens = max(1, min_tokens)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens currently held."""
        return len(self._ids)

    def take(self, input_ids: Sequence[int], reusable: int) -> tuple[DynamicCache | None, int]:
        """A copy of the cache of the prompt's first ``reusable`` tokens, and how many were reused."""
        if reusable < self._min_tokens:
            return None, 0
        prefix = tuple(input_ids[:reusable])
        if self._cache is not None and prefix == self._ids:
            return copy.deepcopy(self._cache), reusable
        self.clear()
        self._cache = self._prefill(prefix)
        self._ids = prefix
        return copy.deepcopy(self._cache), 0

    def keep(self, cache: DynamicCache | None, input_ids: Sequence[int], reusable: int) -> None:
        """Nothing to keep: the held snapshot is never touched by generate (it gets copies)."""

    def clear(self) -> None:
        """Drop the held snapshot (after an error, a model change or on close)."""
        self._cache = None
        self._ids = ()
