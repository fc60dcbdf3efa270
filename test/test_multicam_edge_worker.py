"""The edge node's logic on camera groups, without ROS: the SVLM thread answers groups, the answer and
its detections name each region's camera, each camera's focus image shows only its own regions."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from spotvlm_ros.core.camera_groups import group_frame
from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.context_store import ContextStore
from spotvlm_ros.core.messages import edge_answer_to_msg, regions_to_detection_array
from spotvlm_ros.core.types import Box, Frame, LvlmResult, Region
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.edge_worker import EdgeWorker, build_edge_runtime, camera_wait_note
from spotvlm_ros.runtime.overlay import annotate, answer_detections, answer_markers, camera_answer

TIMEOUT_S = 30.0 * float(os.environ.get("SPOTVLM_TEST_TIME_SCALE", "1"))
NS = 1_000_000_000


def group(stamp: int) -> Frame:
    front = Frame(stamp, np.full((120, 160, 3), 60, np.uint8), "front")
    back = Frame(stamp + 4_000_000, np.full((60, 80, 3), 120, np.uint8), "back")
    return group_frame([front, back])


def test_the_svlm_thread_answers_groups_with_regions_in_their_camera():
    config = load_config(overrides={"focus.propagation": "static"})
    store = ContextStore.from_config(config.context)
    store.add(
        LvlmResult(
            "bridge-1",
            NS,
            config.task,
            config.prompt,
            "red light",
            regions=(
                Region(Box(10, 10, 30, 30), "car", 0.9, "back"),
                Region(Box(5, 5, 50, 40), "light", 0.8),
            ),
            image_size=(160, 120),
            frame_id="front",
            camera_sizes=(("front", 160, 120), ("back", 80, 60)),
        )
    )
    steps = []
    answered = [threading.Event(), threading.Event()]

    def on_step(frame, step):
        steps.append((frame, step))
        answered[min(len(steps), 2) - 1].set()

    worker = EdgeWorker(build_edge_runtime(ZeroCostBackend("zero:edge"), config, store), on_step)
    worker.start()
    try:
        worker.submit(group(NS))
        assert answered[0].wait(TIMEOUT_S), "the SVLM thread answered no group"
        worker.submit(group(NS + NS // 10))
        assert answered[1].wait(TIMEOUT_S), "the SVLM thread answered one group only"
    finally:
        assert worker.stop()
    frame, step = steps[-1]
    answer = step.answer
    assert answer.frame_id == "front" and answer.context_id == "bridge-1"
    assert {r.frame_id for r in answer.focus_regions} == {"back", "front"}
    car = next(r for r in answer.focus_regions if r.label == "car")
    assert car.box.center == pytest.approx((20, 20)) and abs(car.box.width - 20) < 1  # back camera pixels
    msg = edge_answer_to_msg(answer)
    assert {d["header"]["frame_id"] for d in msg["focus_regions"]["detections"]} == {"front", "back"}
    detections = regions_to_detection_array(answer_detections(answer), answer.stamp_ns, answer.frame_id)
    assert detections["header"]["frame_id"] == "front"
    markers = answer_markers(answer)["focus"]
    assert {m["header"]["frame_id"] for m in markers} == {"front", "back"}
    back = camera_answer(answer, "back", frame.frame_id)
    assert [r.label for r in back.focus_regions] == ["car"] and back.frame_id == "back"
    drawn = annotate(frame.cameras[1].image, back)
    plain = annotate(frame.cameras[1].image, camera_answer(answer, "side", frame.frame_id))
    assert drawn.shape == (60, 80, 3) and not np.array_equal(drawn, plain)  # the car box is drawn
    assert worker.failure is None


def test_a_silent_camera_of_a_group_is_explained():
    assert camera_wait_note(1) == ""
    note = camera_wait_note(6)
    assert "6 cameras" in note and "no group is answered until this camera publishes again" in note
