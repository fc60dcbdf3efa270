"""The bridge's state machine without ROS: keyframes, goals, rejection, timeout, preemption, reconnect."""

from __future__ import annotations

import numpy as np
import pytest

from spotvlm_ros.core.config import config_from_dict
from spotvlm_ros.core.messages import lvlm_result_from_msg, lvlm_result_to_msg
from spotvlm_ros.core.types import NS_PER_S, Box, Frame, LvlmResult, Region
from spotvlm_ros.runtime.bridge import (
    GOAL_ABORTED,
    GOAL_CANCELED,
    GOAL_SUCCEEDED,
    BridgeLogic,
    CancelGoal,
    SendGoal,
)
from spotvlm_ros.runtime.image_codec import decode_compressed
from spotvlm_ros.runtime.typestore import build_message, spotvlm_typestore

T0 = 1_700_000_000 * NS_PER_S
RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 255, (240, 320, 3), dtype=np.uint8)


def frame(i: int, dt_s: float = 0.1) -> Frame:
    return Frame(T0 + int(i * dt_s * NS_PER_S), IMAGE, frame_id="cam")


def at(i: int, dt_s: float = 0.1) -> int:
    return T0 + int(i * dt_s * NS_PER_S)


class Log:
    def __init__(self):
        self.info: list[str] = []
        self.warn: list[str] = []


def make(**keyframes) -> tuple[BridgeLogic, Log]:
    log = Log()
    config = config_from_dict({"task": "grounding", "keyframes": {"max_image_side": 160, **keyframes}})
    bridge = BridgeLogic(config, info=log.info.append, warn=log.warn.append)
    bridge.tick(at(0), server_up=True)
    return bridge, log


def success(goal: dict, text: str = "red light", regions=()) -> dict:
    image = goal["image"]
    stamp = image["header"]["stamp"]
    result = LvlmResult(
        request_id=goal["request_id"],
        stamp_ns=stamp["sec"] * NS_PER_S + stamp["nanosec"],
        task=goal["task"],
        prompt=goal["prompt"],
        text=text,
        regions=tuple(regions),
        image_size=(160, 120),
        model="big",
        round_trip_s=0.2,
        frame_id=image["header"]["frame_id"],
    )
    return {"context": lvlm_result_to_msg(result), "success": True, "error": ""}


def test_first_frame_becomes_a_goal_with_the_keyframe_jpeg():
    bridge, log = make()
    (send,) = bridge.on_frame(frame(0), at(0))
    assert isinstance(send, SendGoal) and send.request_id == "bridge-1"
    goal = send.goal
    assert goal["task"] == "grounding" and goal["want_regions"] is True and goal["request_id"] == "bridge-1"
    assert goal["image"]["header"] == {"stamp": {"sec": 1_700_000_000, "nanosec": 0}, "frame_id": "cam"}
    assert decode_compressed(goal["image"]["data"]).shape == (120, 160, 3)  # max_image_side
    assert send.jpeg_bytes == len(goal["image"]["data"])
    # the dict is exactly the ROS goal layout
    built = build_message(spotvlm_typestore(), "spotvlm_msgs/action/QueryLVLM_Goal", goal)
    assert built.request_id == "bridge-1"
    assert log.info == ["LVLM server available"]
    assert bridge.on_frame(frame(1), at(1)) == []  # one in flight at most


def test_result_is_published_with_measured_round_trip_and_frees_the_slot():
    bridge, _ = make()
    (send,) = bridge.on_frame(frame(0), at(0))
    region = Region(Box(10, 20, 50, 60), "light", 0.9)
    context = bridge.on_result(send.request_id, GOAL_SUCCEEDED, success(send.goal, regions=[region]), at(7))
    assert context is not None
    result = lvlm_result_from_msg(context)
    assert result.request_id == "bridge-1" and result.stamp_ns == T0 and result.text == "red light"
    assert result.round_trip_s == pytest.approx(0.7) and result.regions == (region,)
    assert bridge.monitor.counts["results"] == 1 and bridge.in_flight == 0
    (send2,) = bridge.on_frame(frame(8), at(8))
    assert send2.request_id == "bridge-2"


def test_rejection_frees_the_slot_and_is_counted():
    bridge, log = make()
    (send,) = bridge.on_frame(frame(0), at(0))
    bridge.on_goal_response(send.request_id, accepted=True)
    assert bridge.in_flight == 1 and bridge.is_pending(send.request_id)
    bridge.on_goal_response(send.request_id, accepted=False)
    assert bridge.in_flight == 0 and bridge.monitor.counts["rejected"] == 1 and "rejected" in log.warn[-1]
    assert bridge.on_frame(frame(1), at(1)) == []  # backing off after the refusal
    assert isinstance(bridge.on_frame(frame(40), at(40))[0], SendGoal)  # 4 s later: the slot is used again


def test_refusals_back_off_with_jitter_and_log_once_per_streak():
    bridge, log = make()
    now, waits = 0, []
    for _ in range(6):  # a saturated server refuses every goal
        sends = [c for c in bridge.on_frame(frame(now, 0.01), at(now, 0.01)) if isinstance(c, SendGoal)]
        while not sends:
            now += 1
            sends = [c for c in bridge.on_frame(frame(now, 0.01), at(now, 0.01)) if isinstance(c, SendGoal)]
        waits.append(now)
        bridge.on_goal_response(sends[0].request_id, accepted=False)
        now += 1
    gaps = [b - a for a, b in zip(waits, waits[1:], strict=False)]
    # waits grow from 0.2 s to 2 s (jitter x0.5..1.5); frames every 10 ms
    assert gaps[0] >= 10 and 100 <= gaps[-1] <= 301, gaps
    assert len([w for w in log.warn if "rejected" in w]) == 1 and bridge.monitor.counts["rejected"] == 6
    assert bridge.on_frame(frame(now, 0.01), at(now, 0.01)) == []  # starts the last back-off
    later = now + 400  # 4 s: past the longest back-off
    (send,) = [c for c in bridge.on_frame(frame(later, 0.01), at(later, 0.01)) if isinstance(c, SendGoal)]
    bridge.on_goal_response(send.request_id, accepted=True)
    assert "accepts requests again after 6 refusal(s)" in log.info[-1]


def test_timeout_cancels_and_a_late_result_is_ignored():
    bridge, log = make(timeout_s=1.0)
    (send,) = bridge.on_frame(frame(0), at(0))
    assert bridge.tick(at(5), server_up=True) == []
    commands = bridge.on_frame(frame(10), at(10))
    assert commands[0] == CancelGoal(send.request_id, "timeout")
    assert isinstance(commands[1], SendGoal)
    assert bridge.on_result(send.request_id, GOAL_SUCCEEDED, success(send.goal), at(11)) is None
    assert bridge.monitor.counts["stale"] == 1 and bridge.monitor.counts["timeouts"] == 1
    assert "timed out" in log.warn[0]


def test_tick_expires_requests_without_frames():
    bridge, _ = make(timeout_s=1.0)
    (send,) = bridge.on_frame(frame(0), at(0))
    assert bridge.tick(at(10), server_up=True) == [CancelGoal(send.request_id, "timeout")]
    assert bridge.in_flight == 0


def test_preemption_sends_the_newest_frame_instead_of_waiting():
    bridge, _ = make(preempt_after_s=0.5, timeout_s=10.0)
    (first,) = bridge.on_frame(frame(0), at(0))
    assert bridge.on_frame(frame(3), at(3)) == []  # in flight for 0.3 s: keep waiting
    cancel, send = bridge.on_frame(frame(6), at(6))
    assert cancel == CancelGoal(first.request_id, "preempted")
    assert isinstance(send, SendGoal) and send.stamp_ns == at(6)
    assert bridge.monitor.counts["preempted"] == 1 and bridge.in_flight == 1


def test_without_preemption_the_request_in_flight_is_kept():
    bridge, _ = make(timeout_s=10.0)
    bridge.on_frame(frame(0), at(0))
    assert bridge.on_frame(frame(60), at(60)) == []


def test_failures_and_mismatched_results_publish_nothing():
    bridge, log = make()
    (send,) = bridge.on_frame(frame(0), at(0))
    aborted = {"success": False, "error": "backend error: CUDA out of memory"}
    assert bridge.on_result(send.request_id, GOAL_ABORTED, aborted, at(2)) is None
    assert "CUDA out of memory" in log.warn[-1]
    (send,) = bridge.on_frame(frame(3), at(3))
    assert bridge.on_result(send.request_id, GOAL_CANCELED, None, at(4)) is None
    assert "canceled" in log.warn[-1]
    (send,) = bridge.on_frame(frame(5), at(5))
    wrong = success(send.goal)
    wrong["context"]["header"]["stamp"]["sec"] += 1
    assert bridge.on_result(send.request_id, GOAL_SUCCEEDED, wrong, at(6)) is None
    (send,) = bridge.on_frame(frame(7), at(7))
    assert bridge.on_result(send.request_id, GOAL_SUCCEEDED, {"success": True, "context": {}}, at(8)) is None
    assert "malformed" in log.warn[-1]
    assert bridge.monitor.counts["failed"] == 4 and bridge.in_flight == 0


def test_server_loss_drops_requests_and_reconnect_resumes():
    bridge, log = make()
    (send,) = bridge.on_frame(frame(0), at(0))
    bridge.tick(at(1), server_up=False)
    assert bridge.in_flight == 0 and bridge.monitor.counts["lost"] == 1 and "gone" in log.warn[-1]
    assert bridge.on_frame(frame(2), at(2)) == []  # nothing is sent while the server is away
    bridge.tick(at(3), server_up=True)
    assert log.info[-1] == "LVLM server reconnected"
    (resend,) = bridge.on_frame(frame(4), at(4))
    assert resend.request_id == "bridge-2"
    assert bridge.on_result(send.request_id, GOAL_SUCCEEDED, success(send.goal), at(5)) is None


def test_send_failure_and_shutdown():
    bridge, _ = make(max_in_flight=2)
    (a,) = bridge.on_frame(frame(0), at(0))
    (b,) = bridge.on_frame(frame(1), at(1))
    bridge.on_send_failed(a.request_id, "server vanished")
    assert bridge.in_flight == 1 and bridge.monitor.counts["lost"] == 1
    assert bridge.shutdown() == [CancelGoal(b.request_id, "shutdown")] and bridge.in_flight == 0


def test_reconfigure_keeps_requests_in_flight():
    bridge, _ = make(timeout_s=10.0)
    (send,) = bridge.on_frame(frame(0), at(0))
    config = config_from_dict(
        {"task": "vqa", "prompt": "Any cars?", "keyframes": {"max_in_flight": 1}, "focus": {"mode": "off"}}
    )
    bridge.reconfigure(config)
    assert bridge.on_frame(frame(1), at(1)) == []  # the slot is still taken
    bridge.on_result(send.request_id, GOAL_SUCCEEDED, success(send.goal), at(2))
    (new,) = bridge.on_frame(frame(3), at(3))
    assert new.goal["prompt"] == "Any cars?" and new.goal["want_regions"] is False


def test_regions_are_wanted_whenever_visual_focus_is_on():
    """Visual Focus steers the SVLM with the LVLM's regions, so a vqa keyframe asks for them too."""
    for mode, wanted in (("crop", True), ("mark", True), ("off", False)):
        bridge = BridgeLogic(config_from_dict({"task": "vqa", "focus": {"mode": mode}}))
        bridge.tick(at(0), server_up=True)
        (send,) = bridge.on_frame(frame(0), at(0))
        assert send.goal["want_regions"] is wanted, mode
