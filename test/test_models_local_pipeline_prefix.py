"""Prefix-KV reuse in the real edge pipeline: EdgeRuntime + Context Replacement + the tiny Qwen2.5-VL model.

With the context store unchanged, [system + keyframe turns] is the same from frame to frame, so from the
second frame on the backend serves that prefix from its KV cache, and the answers equal a run without
reuse (greedy decoding, same model).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.context_store import ContextStore
from spotvlm_ros.core.types import Frame, LvlmResult, s_to_ns
from spotvlm_ros.models.base import Generation
from spotvlm_ros.models.hf_local import HfLocalBackend
from spotvlm_ros.runtime.edge import EdgeRuntime

torch.set_num_threads(1)

FRAMES = 6


class RecordingBackend:
    """The real backend, with every Generation it returned kept for inspection."""

    def __init__(self, backend: HfLocalBackend) -> None:
        self.backend = backend
        self.name = backend.name
        self.generations: list[Generation] = []
        self.prefix_tokens: list[int] = []

    def generate(self, messages, images, **kwargs) -> Generation:
        generation = self.backend.generate(messages, images, **kwargs)
        self.generations.append(generation)
        self.prefix_tokens.append(self.keyframe_prefix_tokens(messages))
        return generation

    def keyframe_prefix_tokens(self, messages) -> int:
        """Tokens of the rendered [system + keyframe turns] that open ``messages``."""
        end = max(
            i + 2 for i, m in enumerate(messages) if m["content"][0].get("text", "").startswith("[keyframe")
        )
        processor = self.backend.processor
        text = processor.apply_chat_template(messages[:end], tokenize=False)
        return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def image_tokens(self, width: int, height: int) -> int:
        return self.backend.image_tokens(width, height)

    def close(self) -> None:
        self.backend.close()


def run_pipeline(model_dir, prefix_cache: bool) -> tuple[list[str], RecordingBackend]:
    config = load_config(
        None,
        {"edge.max_new_tokens": 4, "context.history_length": 4, "context.svlm_turns": 2, "focus.mode": "off"},
    )
    store = ContextStore.from_config(config.context)  # fixed context: two LVLM keyframe answers
    store.add(LvlmResult("k1", s_to_ns(0.5), config.task, config.prompt, "The traffic light is red."))
    store.add(LvlmResult("k2", s_to_ns(1.0), config.task, config.prompt, "Still red; a car waits."))
    backend = RecordingBackend(HfLocalBackend(model_dir, max_new_tokens=4, prefix_cache=prefix_cache))
    runtime = EdgeRuntime(backend, config, store)
    rng = np.random.default_rng(0)
    answers = []
    try:
        for i in range(FRAMES):
            image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
            frame = Frame(s_to_ns(1.2 + 0.1 * i), image, seq=i)
            runtime.observe(frame)
            step = runtime.answer(frame)
            assert step.error == "" and step.answer.context_status == "used"
            answers.append(step.answer.text)
    finally:
        backend.close()
    return answers, backend


@pytest.mark.parametrize("family", ["qwen2_5_vl"])
def test_pipeline_reuses_the_keyframe_prefix_from_the_second_frame_on(tiny_model_factory, family):
    model_dir = tiny_model_factory(family)
    answers, reuse = run_pipeline(model_dir, prefix_cache=True)
    plain_answers, plain = run_pipeline(model_dir, prefix_cache=False)
    generations, plain_generations = reuse.generations, plain.generations
    cached = [g.cached_prefix_tokens for g in generations]
    assert cached[0] == 0 and all(c > 0 for c in cached[1:]), cached
    assert all(g.cached_prefix_tokens == 0 for g in plain_generations)
    assert answers == plain_answers
    assert [g.prompt_tokens for g in generations] == [g.prompt_tokens for g in plain_generations]
    # the reused part covers the system prompt and both keyframe turns
    assert all(c >= p for c, p in zip(cached[1:], reuse.prefix_tokens[1:], strict=True))
    assert min(reuse.prefix_tokens) > 60
