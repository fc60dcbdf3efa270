"""Prefix-KV reuse: same greedy output as without it, and the unchanged prefix really comes from the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import DynamicCache

from spotvlm_ros.models.base import BackendError
from spotvlm_ros.models.hf_local import HfLocalBackend
from spotvlm_ros.models.prefix_cache import PrefixKvCache, common_prefix_length, reusable_prefix_length
from spotvlm_ros.models.tiny import TINY_FAMILIES

torch.set_num_threads(1)


def history(answer: str = "red") -> list[dict]:
    system = "You are the perception assistant of a robot. Answer briefly. " * 6
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "(2.0 s ago) What is the state of the traffic light?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


def turn(n_images: int, question: str = "And now?") -> list[dict]:
    return [
        {"role": "user", "content": [*([{"type": "image"}] * n_images), {"type": "text", "text": question}]}
    ]


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)


# families whose cache cannot be cut back to a prefix (test_families_rules.py shows why): Qwen3.5 (linear
# attention) and Gemma 4 (sliding-window layers); they reuse a snapshot of the prefix run alone
SNAPSHOT_FAMILIES = ("qwen3_5", "gemma4")
REUSE_FAMILIES = tuple(f for f in TINY_FAMILIES if f not in SNAPSHOT_FAMILIES)


@pytest.fixture(scope="module", params=REUSE_FAMILIES)
def pair(request, tiny_model_factory):
    path = tiny_model_factory(request.param)
    with_reuse = HfLocalBackend(path, max_new_tokens=6)
    without = HfLocalBackend(path, max_new_tokens=6, prefix_cache=False)
    yield with_reuse, without
    with_reuse.close()
    without.close()


def test_reuse_gives_the_same_answers_and_caches_the_unchanged_prefix(pair) -> None:
    reuse, plain = pair
    reuse._prefix.clear()
    steps = [
        (history(), turn(1), [frame(1)]),
        (history(), turn(1), [frame(2)]),
        (history(), turn(2), [frame(3), frame(4)]),
        (history("green"), turn(1), [frame(5)]),  # the context changed: only the part before it is reused
        (history("green"), turn(0, "Any pedestrian?"), []),  # text-only turn
        (history("green"), turn(1), [frame(6)]),
    ]
    cached = []
    for past, current, images in steps:
        got = reuse.generate(past + current, images)
        expected = plain.generate(past + current, images)
        assert got.text == expected.text
        assert got.prompt_tokens == expected.prompt_tokens and got.image_tokens == expected.image_tokens
        assert expected.cached_prefix_tokens == 0
        assert got.cached_prefix_tokens < got.prompt_tokens - got.image_tokens
        cached.append(got.cached_prefix_tokens)
    assert cached[0] == 0
    history_tokens = reuse.count_tokens(history()[0]["content"][0]["text"])
    assert cached[1] > history_tokens and cached[2] == cached[1]
    assert 0 < cached[3] < cached[1]
    assert cached[4] > cached[3] and cached[5] > cached[3]


@pytest.mark.parametrize("family", SNAPSHOT_FAMILIES)
def test_snapshot_reuse_gives_the_same_answers(family, tiny_model_factory) -> None:
    path = tiny_model_factory(family)
    reuse = HfLocalBackend(path, max_new_tokens=6)
    plain = HfLocalBackend(path, max_new_tokens=6, prefix_cache=False)
    assert reuse.prefix_reuse_mode == "snapshot"
    steps = [
        (history(), turn(1), [frame(1)]),
        (history(), turn(1), [frame(2)]),
        (history(), turn(2), [frame(3), frame(4)]),
        (history("green"), turn(1), [frame(5)]),  # the context changed: its prefix is run anew
        (history("green"), turn(0, "Any pedestrian?"), []),
        (history("green"), turn(1), [frame(6)]),
    ]
    cached = []
    window = getattr(plain.model.config.get_text_config(), "sliding_window", None)
    try:
        for past, current, images in steps:
            got = reuse.generate(past + current, images)
            expected = plain.generate(past + current, images)
            assert got.text == expected.text
            assert got.prompt_tokens == expected.prompt_tokens
            cached.append(got.cached_prefix_tokens)
    finally:
        reuse.close()
        plain.close()
    history_tokens = reuse.count_tokens(history()[0]["content"][0]["text"])
    assert cached[0] == 0 and cached[1] > history_tokens and cached[2] == cached[1]
    assert cached[3] == 0 and cached[5] == 0  # a text-only turn in between had another prefix
    if family == "gemma4":  # the prefix is longer than the tiny model's sliding window
        assert cached[1] > window


def test_a_failed_generation_drops_the_cache(tiny_model_factory, monkeypatch) -> None:
    backend = HfLocalBackend(tiny_model_factory("qwen2_5_vl"), max_new_tokens=4)
    try:
        backend.generate(history() + turn(1), [frame(1)])
        assert backend._prefix.cached_tokens > 0

        def failing_generate(**kwargs):  # test double: a device error in the middle of generate
            raise RuntimeError("simulated CUDA error")

        monkeypatch.setattr(backend.model, "generate", failing_generate)
        with pytest.raises(BackendError, match="generation failed: simulated CUDA error"):
            backend.generate(history() + turn(1), [frame(2)])
        assert backend._prefix.cached_tokens == 0
        monkeypatch.undo()
        assert backend.generate(history() + turn(1), [frame(3)]).cached_prefix_tokens == 0
    finally:
        backend.close()


def test_prefix_lengths() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert reusable_prefix_length([5, 6, 7, 8, 9], [3, 4]) == 3
    assert reusable_prefix_length([5, 6, 7], []) == 2  # the last token is always computed
    assert reusable_prefix_length([], []) == 0


def _filled_cache(length: int) -> DynamicCache:
    cache = DynamicCache()
    for layer in range(2):
        keys = torch.arange(length, dtype=torch.float32).view(1, 1, length, 1).expand(1, 2, length, 4)
        cache.update(keys.clone(), keys.clone(), layer)
    return cache


def test_prefix_cache_keeps_crops_and_hands_over() -> None:
    prefix = PrefixKvCache()
    assert prefix.take([1, 2, 3], 2) == (None, 0)
    prefix.keep(_filled_cache(10), list(range(10)), 6)
    assert prefix.cached_tokens == 6
    cache, shared = prefix.take([0, 1, 2, 3, 99, 5, 6], 6)
    assert shared == 4 and cache.get_seq_length() == 4
    assert torch.equal(cache.layers[0].keys[0, 0, :, 0], torch.arange(4, dtype=torch.float32))
    assert prefix.cached_tokens == 0  # handed over: the caller owns it now
    prefix.keep(_filled_cache(5), list(range(5)), 8)  # shorter than asked: nothing usable is kept
    assert prefix.cached_tokens == 0
    prefix.keep(_filled_cache(5), list(range(5)), 3)
    assert prefix.take([7, 8, 9], 2) == (None, 0)
