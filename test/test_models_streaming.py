"""Streaming and early stop of a local model: on_text partial answers, should_stop mid-generation.

A real tiny random Qwen2.5-VL from the offline factory runs through ``HfLocalBackend``; the eval memo
wrapper passes both callbacks through on a miss and reports a hit's text once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spotvlm_ros.models.base import GenerationCancelled
from spotvlm_ros.models.hf_local import HfLocalBackend
from spotvlm_ros.runtime.eval.memo import MemoBackend

IMAGE = np.random.default_rng(3).integers(0, 256, (64, 80, 3), dtype=np.uint8)


def chat(question: str = "What is ahead?") -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
    ]


@pytest.fixture(scope="module")
def backend(tiny_model_factory):
    torch.set_num_threads(1)
    model = HfLocalBackend(tiny_model_factory("qwen2_5_vl"), max_new_tokens=48, image_max_side=64)
    yield model
    model.close()


def test_on_text_reports_growing_prefixes_ending_in_the_answer(backend):
    plain = backend.generate(chat(), [IMAGE])
    seen: list[str] = []
    streamed = backend.generate(chat(), [IMAGE], on_text=seen.append)
    assert streamed.text == plain.text and len(plain.text) > 10
    assert len(seen) >= 3 and seen[-1] == plain.text
    assert all(plain.text.startswith(text) for text in seen)
    assert all(len(a) < len(b) for a, b in zip(seen, seen[1:], strict=False))


def test_should_stop_ends_generation_early_and_the_backend_stays_usable(backend):
    plain = backend.generate(chat(), [IMAGE])
    seen: list[str] = []
    with pytest.raises(GenerationCancelled, match=r"stopped after (\d) new token"):
        backend.generate(
            chat("Describe everything."),
            [IMAGE],
            max_new_tokens=600,
            on_text=seen.append,
            should_stop=lambda: bool(seen),  # stop once the first partial text arrived
        )
    assert len(seen) <= 2  # the first report, then the end-of-stream one; a single-digit token count above
    again = backend.generate(chat(), [IMAGE])  # prefix cache and model still consistent
    assert again.text == plain.text and again.cached_prefix_tokens > 0


def test_should_stop_already_set_generates_nothing(backend):
    with pytest.raises(GenerationCancelled, match="before generating"):
        backend.generate(chat(), [IMAGE], should_stop=lambda: True)
    assert backend.generate(chat(), [IMAGE]).text


def test_memo_passes_callbacks_through_on_a_miss_and_reports_a_hit_once(backend):
    memo = MemoBackend(backend)
    seen: list[str] = []
    first = memo.generate(chat("Which way?"), [IMAGE], on_text=seen.append)
    assert len(seen) >= 2 and seen[-1] == first.text
    hit: list[str] = []
    assert memo.generate(chat("Which way?"), [IMAGE], on_text=hit.append) is first
    assert hit == [first.text] and (memo.hits, memo.misses) == (1, 1)
    with pytest.raises(GenerationCancelled):
        memo.generate(chat("Other?"), [IMAGE], should_stop=lambda: True)
    memo.generate(chat("Other?"), [IMAGE])
    assert (memo.hits, memo.misses) == (1, 3)  # a stopped generation was not cached
