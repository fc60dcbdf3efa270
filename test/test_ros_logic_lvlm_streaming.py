"""The LVLM service streams partial answers to feedback and stops a generation when the goal is cancelled.

A real tiny random Qwen2.5-VL generates locally (through ``HfLocalBackend``); the HTTP path uses the
scripted fault server (a test double) sending a slow stream.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from time_scale import scaled

from spotvlm_ros.core.config import ModelConfig, config_from_dict
from spotvlm_ros.core.messages import lvlm_result_from_msg, query_goal
from spotvlm_ros.core.types import NS_PER_S
from spotvlm_ros.models.hf_local import HfLocalBackend
from spotvlm_ros.models.openai_http import OpenAiHttpBackend
from spotvlm_ros.runtime import lvlm_service
from spotvlm_ros.runtime.image_codec import encode_jpeg
from spotvlm_ros.runtime.lvlm_service import ABORTED, CANCELED, SUCCEEDED, LvlmService, ThrottledFeedback
from spotvlm_ros.testing.fault_server import FaultyOpenAiServer, Reply

JPEG = encode_jpeg(np.random.default_rng(2).integers(0, 255, (96, 128, 3), dtype=np.uint8), quality=80)
LONG = 2000  # max_new_tokens no test waits for


def goal(request_id: str, max_new_tokens: int) -> dict:
    return query_goal(
        JPEG,
        1_700_000_000 * NS_PER_S,
        "cam",
        request_id=request_id,
        task="vqa",
        prompt="Describe the scene.",
        want_regions=False,
        max_new_tokens=max_new_tokens,
    )


@pytest.fixture(scope="module")
def local(tiny_model_factory):
    torch.set_num_threads(1)
    backend = HfLocalBackend(tiny_model_factory("qwen2_5_vl"), image_max_side=64)
    yield backend
    backend.close()


def local_service(backend) -> LvlmService:
    return LvlmService(backend, config_from_dict({"cloud": {"backend": "hf"}, "system_prompt": "be brief"}))


def run_in_thread(svc: LvlmService, g: dict, cancelled, feedback):
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("outcome", svc.run(g, cancelled, feedback)))
    thread.start()
    return thread, box


def test_feedback_streams_partial_answers_before_the_result(local, monkeypatch):
    monkeypatch.setattr(lvlm_service, "FEEDBACK_INTERVAL_S", 0.02)  # several partials on a fast machine too
    svc = local_service(local)
    timed: list[tuple[float, str]] = []
    outcome = svc.run(goal("stream", 300), feedback=lambda text: timed.append((time.monotonic(), text)))
    assert outcome.status == SUCCEEDED, outcome.error
    final = lvlm_result_from_msg(outcome.result["context"]).text
    texts = [text for _, text in timed]
    assert len(texts) >= 3 and texts[-1] == final
    assert all(final.startswith(text) for text in texts) and len(texts[0]) < len(final)
    gaps = [b - a for (a, _), (b, _) in zip(timed[:-2], timed[1:-1], strict=True)]
    assert min(gaps) >= 0.019  # throttled to FEEDBACK_INTERVAL_S (the final answer comes at once)


def test_cancel_stops_a_local_generation_at_once(local):
    """The generation ends at the first stop check after the cancel: between two tokens."""
    svc = local_service(local)
    cancel = threading.Event()
    seen: list[str] = []
    checks_after_cancel = 0

    def feedback(text: str) -> None:
        seen.append(text)
        cancel.set()  # the client cancels as soon as the first partial answer arrives

    def should_stop() -> bool:
        nonlocal checks_after_cancel
        if cancel.is_set():
            checks_after_cancel += 1
        return cancel.is_set()

    thread, box = run_in_thread(svc, goal("cancel-me", LONG), should_stop, feedback)
    thread.join(scaled(60))
    assert not thread.is_alive()
    assert box["outcome"].status == CANCELED and box["outcome"].error == "canceled during generation"
    assert checks_after_cancel == 1 and len(seen) == 1
    again = svc.run(goal("after", 8))  # the model serves the next goal
    assert again.status == SUCCEEDED


def test_close_stops_the_running_generation(local):
    svc = local_service(local)
    started = threading.Event()
    thread, box = run_in_thread(svc, goal("shutdown", LONG), lambda: False, lambda text: started.set())
    assert started.wait(scaled(30))
    svc.close()
    thread.join(scaled(30))
    assert not thread.is_alive() and box["outcome"].status == ABORTED
    assert box["outcome"].error == "server shutting down"


def test_http_stream_feeds_back_and_cancel_closes_it():
    with FaultyOpenAiServer() as server:
        server.script(
            Reply.sse(("red ", "light ", "ahead"), part_delay_s=0.15),
            Reply.sse(tuple(f"w{i} " for i in range(600)), part_delay_s=0.1),  # a minute long
        )
        config = config_from_dict({"cloud": {"backend": "openai", "base_url": server.base_url}})
        backend = OpenAiHttpBackend(ModelConfig(backend="openai", base_url=server.base_url, timeout_s=20.0))
        try:
            svc = LvlmService(backend, config)
            seen: list[str] = []
            outcome = svc.run(goal("http", 16), feedback=seen.append)
            assert outcome.status == SUCCEEDED and seen[-1] == "red light ahead" and len(seen) >= 3
            cancel = threading.Event()
            start = time.monotonic()
            thread, box = run_in_thread(
                svc, goal("http-cancel", 64), cancel.is_set, lambda text: cancel.set()
            )
            thread.join(scaled(30))
            assert box["outcome"].status == CANCELED and time.monotonic() - start < scaled(10.0)
        finally:
            backend.close()


def test_throttled_feedback_sends_the_first_text_then_at_most_every_interval():
    sent: list[str] = []
    throttled = ThrottledFeedback(sent.append, 10.0)
    for text in ("a", "ab", "abc"):
        throttled(text)
    assert sent == ["a"] and throttled.last_sent == "a"
