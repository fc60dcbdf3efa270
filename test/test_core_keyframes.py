"""Keyframe policy: slots in flight, newest frame, minimum interval, scene-change trigger, timeouts."""

from __future__ import annotations

import numpy as np
import pytest

from spotvlm_ros.core.config import KeyframeConfig
from spotvlm_ros.core.keyframes import KeyframePolicy, scene_distance, scene_signature
from spotvlm_ros.core.types import s_to_ns

GRAY = np.full((48, 64, 3), 100, np.uint8)
BRIGHT = np.full((48, 64, 3), 230, np.uint8)


def ns(seconds: float) -> int:
    return s_to_ns(seconds)


def offer(policy: KeyframePolicy, t: float, image=GRAY, now: float | None = None) -> bool:
    return policy.should_send(ns(t), image, ns(t if now is None else now))


def test_one_in_flight_by_default_and_the_newest_frame_goes_when_the_slot_frees():
    policy = KeyframePolicy(KeyframeConfig())
    assert offer(policy, 0.0)
    policy.on_sent("a", ns(0.0))
    assert policy.in_flight == 1
    assert not any(offer(policy, t / 10) for t in range(1, 10))  # slot busy
    assert policy.on_done("a") and policy.in_flight == 0
    assert offer(policy, 1.0)  # the next (newest) frame offered goes out
    policy.on_sent("b", ns(1.0))
    assert policy.last_keyframe_ns == ns(1.0) and policy.sent == 2 and policy.completed == 1


def test_several_slots():
    policy = KeyframePolicy(KeyframeConfig(max_in_flight=3))
    for i in range(3):
        assert offer(policy, i * 0.1)
        policy.on_sent(f"r{i}", ns(i * 0.1))
    assert not offer(policy, 0.3) and policy.in_flight == 3


def test_frames_not_newer_than_the_last_keyframe_are_refused():
    policy = KeyframePolicy(KeyframeConfig(max_in_flight=4))
    assert offer(policy, 2.0)
    policy.on_sent("a", ns(2.0))
    assert not offer(policy, 2.0) and not offer(policy, 1.5)


def test_minimum_interval_uses_frame_stamps():
    policy = KeyframePolicy(KeyframeConfig(max_in_flight=4, min_interval_s=1.0))
    assert offer(policy, 0.0)
    policy.on_sent("a", ns(0.0))
    assert not offer(policy, 0.5, now=5.0)  # wall time does not matter, frame stamps do
    assert offer(policy, 1.0)


def test_approval_without_sending_commits_nothing():
    policy = KeyframePolicy(KeyframeConfig(min_interval_s=1.0))
    assert offer(policy, 0.0)  # approved but the caller did not send it
    assert offer(policy, 0.5)
    policy.on_sent("a", ns(0.5))
    assert policy.last_keyframe_ns == ns(0.5)


@pytest.mark.parametrize("metric", ["histogram", "difference"])
def test_scene_change_sends_before_the_interval(metric):
    config = KeyframeConfig(
        max_in_flight=2, min_interval_s=10.0, scene_change_threshold=0.3, scene_change_metric=metric
    )
    policy = KeyframePolicy(config)
    assert offer(policy, 0.0, GRAY)
    policy.on_sent("a", ns(0.0))
    assert not offer(policy, 1.0, GRAY)  # same scene, interval not over
    assert offer(policy, 1.1, BRIGHT)  # scene changed
    policy.on_sent("b", ns(1.1))
    assert policy.scene_triggers == 1
    assert not offer(policy, 1.2, BRIGHT)  # compared with the new keyframe now
    policy.on_done("a")
    assert offer(policy, 1.3, GRAY)  # changed back, and a slot is free again


def test_scene_change_never_exceeds_the_slots():
    policy = KeyframePolicy(KeyframeConfig(scene_change_threshold=0.1, min_interval_s=5.0))
    assert offer(policy, 0.0, GRAY)
    policy.on_sent("a", ns(0.0))
    assert not offer(policy, 0.5, BRIGHT)


def test_scene_distances_are_in_range_and_zero_for_equal_frames():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for metric in ("histogram", "difference"):
        sa, sb = scene_signature(a, metric), scene_signature(BRIGHT, metric)
        assert scene_distance(sa, sa, metric) == pytest.approx(0.0, abs=1e-6)
        assert 0.3 < scene_distance(sa, sb, metric) <= 1.0
    with pytest.raises(ValueError):
        scene_signature(a, "edges")


def test_timeouts_free_slots_and_late_answers_are_recognised():
    policy = KeyframePolicy(KeyframeConfig(max_in_flight=2, timeout_s=2.0))
    for rid, t in (("a", 0.0), ("b", 1.0)):
        assert offer(policy, t)
        policy.on_sent(rid, ns(t))
    assert policy.expired(ns(1.9)) == []
    assert policy.expired(ns(2.5)) == ["a"] and policy.in_flight == 1
    assert policy.expired(ns(10.0)) == ["b"] and policy.in_flight == 0
    assert not policy.on_done("a")  # answered after it was given up
    assert policy.timed_out == 2 and policy.completed == 0
    assert offer(policy, 10.0)


def test_duplicate_request_ids_are_an_error():
    policy = KeyframePolicy(KeyframeConfig(max_in_flight=2))
    policy.on_sent("a", 0)
    with pytest.raises(ValueError, match="already in flight"):
        policy.on_sent("a", 1)


def test_a_simulated_stream_respects_the_limits():
    """10 fps for 60 s, 2 slots, 1.5 s round trips: never over the limit, the newest frame each time."""
    policy = KeyframePolicy(KeyframeConfig(max_in_flight=2, min_interval_s=0.5))
    pending: list[tuple[float, str]] = []
    sent_stamps = []
    for i in range(600):
        now = i / 10
        for done_at, rid in list(pending):
            if done_at <= now:
                policy.on_done(rid)
                pending.remove((done_at, rid))
        if offer(policy, now):
            rid = f"r{i}"
            policy.on_sent(rid, ns(now))
            pending.append((now + 1.5, rid))
            sent_stamps.append(now)
        assert policy.in_flight <= 2
    gaps = np.diff(sent_stamps)
    assert gaps.min() >= 0.5 - 1e-9
    assert 70 <= len(sent_stamps) <= 82  # two 1.5 s pipelines, a new keyframe every ~0.75 s
