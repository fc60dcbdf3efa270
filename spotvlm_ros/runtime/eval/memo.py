"""Answer identical model calls from a cache across the runs of an evaluation.

The evaluation asks the same model the same thing many times: the LVLM sees the same keyframes in
``lvlm``, ``lvlm_blocking``, ``offload`` and the three SpotVLM modes, under every latency profile; the
SVLM-alone runs do not depend on the profile at all. Greedy decoding is deterministic, so a call with
the same messages, images and options returns the same generation; :class:`MemoBackend` keys calls by
exactly those (images by a digest of their pixels, computed once per frozen image: :mod:`..frozen`)
and runs the model only on a miss. ``on_text`` and
``should_stop`` go to the model on a miss; a hit reports its whole text to ``on_text`` once.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ...core.config import SpotVlmConfig
from ...models.base import ChatMessage, Generation, StopCheck, TextCallback, VlmBackend
from ..frozen import digest_once


class MemoBackend:
    """A :class:`VlmBackend` wrapper with an LRU cache of generations (errors are not cached)."""

    def __init__(self, backend: VlmBackend, max_entries: int = 8192):
        self.backend = backend
        self.name = backend.name
        self.max_entries = max_entries
        self._cache: OrderedDict[bytes, Generation] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(
        messages: Sequence[ChatMessage],
        images: Sequence[np.ndarray],
        max_new_tokens: int | None,
        want_regions: bool,
    ) -> bytes:
        digest = hashlib.blake2b(digest_size=20)
        digest.update(json.dumps([messages, max_new_tokens, want_regions], sort_keys=True).encode())
        for image in images:
            digest.update(digest_once(image))
        return digest.digest()

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
        key = self._key(messages, images, max_new_tokens, want_regions)
        cached = self._cache.get(key)
        if cached is not None:
            self.hits += 1
            self._cache.move_to_end(key)
            if on_text is not None and cached.text:
                on_text(cached.text)
            return cached
        self.misses += 1
        streaming = {"on_text": on_text, "should_stop": should_stop}
        generation = self.backend.generate(
            messages,
            images,
            max_new_tokens=max_new_tokens,
            want_regions=want_regions,
            **{name: value for name, value in streaming.items() if value is not None},
        )
        self._cache[key] = generation
        if len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return generation

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def image_tokens(self, width: int, height: int) -> int:
        return self.backend.image_tokens(width, height)

    def close(self) -> None:
        self._cache.clear()
        self.backend.close()


def worker_backends(config: SpotVlmConfig) -> tuple[MemoBackend, MemoBackend]:
    """Edge and cloud backends of an evaluation worker process, each behind its own cache.

    Tiny CPU models get one thread each, so that workers side by side do not oversubscribe the cores.
    """
    from ...models.factory import create_backend

    backends = {config.edge.backend, config.cloud.backend}
    if "tiny" in backends and backends <= {"tiny", "zero"}:
        import torch

        torch.set_num_threads(1)
    return MemoBackend(create_backend(config.edge, "edge")), MemoBackend(
        create_backend(config.cloud, "cloud")
    )
