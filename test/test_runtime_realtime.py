"""The wall-clock runner: same components as the simulator, threads, a real transformers serve LVLM."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from spotvlm_ros.core.config import ModelConfig, load_config
from spotvlm_ros.core.types import Frame
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.make_bag import make_synthetic_bag
from spotvlm_ros.runtime.realtime import LatestFrameSlot
from spotvlm_ros.runtime.replay import replay_bag

ZERO = {"edge.backend": "zero", "cloud.backend": "zero"}


class SlowZeroBackend(ZeroCostBackend):
    """Test double: the zero-cost backend that takes ``seconds`` of wall time per answer."""

    def __init__(self, name: str, seconds: float, answer: str = "unknown"):
        super().__init__(name=name, answer=answer)
        self.seconds = seconds

    def generate(self, messages, images, **kwargs):
        time.sleep(self.seconds)
        return super().generate(messages, images, **kwargs)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "clip"
    make_synthetic_bag(path, frames=20, width=160, height=120, seed=5)
    return path


def test_latest_frame_slot_replaces_and_closes():
    slot = LatestFrameSlot()
    a, b = (Frame(i, np.zeros((2, 2, 3), np.uint8)) for i in (1, 2))
    assert slot.put(a) is None
    assert slot.put(b) is a  # a was never taken: replaced
    assert slot.take() is b
    taken = []
    consumer = threading.Thread(target=lambda: taken.append(slot.take()))
    consumer.start()
    slot.close()
    consumer.join(2.0)
    assert taken == [None]


def test_realtime_edge_keeps_its_pace_while_a_slow_cloud_works(bag):
    config = load_config(None, {**ZERO, "keyframes.timeout_s": 5.0})
    edge = SlowZeroBackend("slow:edge", 0.15)  # slower than the 10 Hz camera: latest frame wins
    cloud = SlowZeroBackend("slow:cloud", 0.4, answer="red")
    started = time.monotonic()
    summary = replay_bag(bag, config, clock="realtime", edge_backend=edge, cloud_backend=cloud)
    wall = time.monotonic() - started
    counts = summary.counts
    assert 1.8 < wall < 6.0  # 2 s of camera time played on the wall clock
    assert counts["answered"] + counts["skipped_latest_wins"] == 20
    assert counts["skipped_latest_wins"] >= 5 and counts["answered"] >= 8
    assert summary.cloud["accepted"] >= 2  # contexts arrived from the worker thread meanwhile
    assert summary.latency["p95_s"] < 0.4  # the edge never waited for the 0.4 s cloud
    assert summary.context_age["with_context"] >= 3


@pytest.fixture(scope="module")
def served_llava(tiny_model_factory):
    from spotvlm_ros.testing.serve import TransformersServe

    with TransformersServe(tiny_model_factory("llava")) as server:
        yield server


def test_realtime_replay_against_transformers_serve(bag, served_llava):
    from spotvlm_ros.models.openai_http import OpenAiHttpBackend

    config = load_config(None, {**ZERO, "cloud.max_new_tokens": 8, "keyframes.timeout_s": 20.0})
    cloud = OpenAiHttpBackend(
        ModelConfig(
            backend="openai", base_url=served_llava.base_url, model=served_llava.model, max_new_tokens=8
        )
    )
    try:
        summary = replay_bag(bag, config, clock="realtime", cloud_backend=cloud, max_frames=20)
    finally:
        cloud.close()
    assert summary.counts["answered"] == 20  # the zero-cost edge keeps up with every frame
    assert summary.cloud["requests"] >= 1 and summary.cloud["errors"] == 0
    assert summary.cloud["accepted"] >= 1  # real LVLM answers over HTTP landed in the store
    assert summary.latency["p95_s"] < 0.1  # the edge never waited on the server
    assert summary.wall_s < 60


def test_realtime_edge_answers_every_tick_alone_when_the_lvlm_always_times_out(bag):
    config = load_config(None, {**ZERO, "keyframes.timeout_s": 0.3})
    cloud = SlowZeroBackend("stuck:cloud", 1.0, answer="red")
    summary = replay_bag(bag, config, clock="realtime", rate=2.0, cloud_backend=cloud, max_frames=20)
    assert summary.counts["answered"] == 20  # the zero-cost edge answers every tick
    assert summary.cloud["results"] == 0 and summary.cloud["timeouts"] >= 1
    assert summary.context_age["with_context"] == 0
