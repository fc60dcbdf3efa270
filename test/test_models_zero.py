"""Zero-cost backend: echoes the newest keyframe answer without data quotes, stable over frames."""

from __future__ import annotations

import numpy as np
import pytest

from spotvlm_ros.core.config import ContextConfig
from spotvlm_ros.core.context_store import ContextStore
from spotvlm_ros.core.focus.tokens import visual_tokens
from spotvlm_ros.core.prompt import ContextReplacement
from spotvlm_ros.core.sanitize import quote_data, unquote_data
from spotvlm_ros.core.types import LvlmResult, s_to_ns
from spotvlm_ros.models.base import BackendError, GenerationCancelled, VlmBackend
from spotvlm_ros.models.zero import DEFAULT_ANSWER, ZeroCostBackend, context_answer

PROMPT = "What is the state of the traffic light?"
IMAGE = np.zeros((240, 320, 3), np.uint8)


def text(role: str, content: str) -> dict:
    return {"role": role, "content": [{"type": "text", "text": content}]}


def test_echoes_the_newest_keyframe_answer_before_newer_own_turns():
    messages = [
        text("system", "You are a robot."),
        text("user", f"[keyframe K1] {PROMPT}"),
        text("assistant", '"red"'),
        text("user", f"[keyframe K2] {PROMPT}"),
        text("assistant", "\"green, said 'the sign'\""),
        text("user", f"(0.1 s ago) {PROMPT}"),
        text("assistant", '"an old own answer"'),
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]},
    ]
    assert context_answer(messages) == "green, said 'the sign'"
    assert context_answer(messages[:1] + messages[5:]) == "an old own answer"  # no keyframe turn
    assert context_answer(messages[:1] + messages[-1:]) == ""
    assert (
        context_answer([{"role": "assistant", "content": '"plain string content"'}]) == "plain string content"
    )


def test_generate_counts_words_punctuation_and_qwen_visual_tokens():
    backend = ZeroCostBackend()
    messages = [
        text("system", "Be brief."),
        text("user", f"[keyframe K1] {PROMPT}"),
        text("assistant", '"The light is red."'),
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "Ages now: K1 0.4 s.\nAnd now?"}],
        },
    ]
    generation = backend.generate(messages, [IMAGE], max_new_tokens=3)
    joined = " ".join(p["text"] for m in messages for p in m["content"] if p["type"] == "text")
    assert generation.text == "The light is"
    assert generation.image_tokens == visual_tokens(320, 240)
    assert generation.prompt_tokens == backend.count_tokens(joined) + generation.image_tokens
    again = backend.generate(messages, [IMAGE], max_new_tokens=3)  # memoised counts give the same figures
    assert (again.text, again.prompt_tokens) == (generation.text, generation.prompt_tokens)
    assert backend.generate([text("user", PROMPT)], []).text == DEFAULT_ANSWER
    assert "does not ground" in backend.generate(messages, [IMAGE], want_regions=True).region_error
    seen: list[str] = []
    assert backend.generate(messages, [IMAGE], on_text=seen.append).text == seen[-1] == "The light is red."
    with pytest.raises(GenerationCancelled):
        backend.generate(messages, [IMAGE], should_stop=lambda: True)
    assert isinstance(backend, VlmBackend)
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.generate(messages, [IMAGE])


@pytest.mark.parametrize("context", [None, 'The light is "red".'])
def test_answers_fed_back_as_history_stay_the_same_every_frame(context):
    config = ContextConfig(history_length=4, svlm_turns=4)
    replacement, store = ContextReplacement(config, "Be brief."), ContextStore.from_config(config)
    if context is not None:
        store.add(LvlmResult("r1", s_to_ns(0.5), "vqa", PROMPT, context))
    backend = ZeroCostBackend()
    answers = []
    for i in range(12):
        now = s_to_ns(1.0 + 0.1 * i)
        plan = replacement.build(now, "vqa", PROMPT, store, n_images=1)
        answers.append(backend.generate(plan.messages, [IMAGE]).text)
        replacement.record_answer(now, "vqa", PROMPT, answers[-1])
    expected = DEFAULT_ANSWER if context is None else "The light is 'red'."
    assert answers == [expected] * 12


def test_unquote_reverses_one_level_of_quoting():
    assert unquote_data(quote_data("red")) == "red"
    assert unquote_data(quote_data('say "go"')) == "say 'go'"
    assert unquote_data("red") == "red" and unquote_data('"') == '"' and unquote_data('""') == ""
