"""The edge node's SVLM thread without ROS: never blocks the camera, latest frame wins, errors reported."""

from __future__ import annotations

import threading
import time

import numpy as np

from spotvlm_ros.core.config import SpotVlmConfig, config_from_dict
from spotvlm_ros.core.context_store import ContextStore
from spotvlm_ros.core.types import NS_PER_S, EdgeAnswer, Frame, LvlmResult
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.edge import Step
from spotvlm_ros.runtime.edge_worker import EdgeWorker, build_edge_runtime, carry_store

T0 = 1_700_000_000 * NS_PER_S
IMAGE = np.zeros((48, 64, 3), np.uint8)


def frame(i: int) -> Frame:
    return Frame(T0 + i * NS_PER_S // 10, IMAGE, frame_id="cam", seq=i)


class SlowAnswerer:
    """Test double of an SVLM that takes ``delay_s`` per frame and records what it answered."""

    def __init__(self, delay_s: float = 0.0, fail_on: int = -1):
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.observed: list[int] = []
        self.answered: list[tuple[int, int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def observe(self, frame):
        self.observed.append(frame.seq)

    def answer(self, frame, skipped=0):
        self.gate.wait(5)
        time.sleep(self.delay_s)
        if frame.seq == self.fail_on:
            raise RuntimeError("boom")
        self.answered.append((frame.seq, skipped))
        answer = EdgeAnswer(
            frame.stamp_ns, "vqa", f"answer {frame.seq}", frame_id=frame.frame_id, context_age_s=-1.0
        )
        return Step(answer, busy_s=self.delay_s, latency_s=self.delay_s)


def test_submit_never_blocks_and_the_newest_frame_wins():
    answerer = SlowAnswerer()
    answerer.gate.clear()  # the SVLM is stuck on the first frame
    steps = []
    worker = EdgeWorker(answerer, lambda f, s: steps.append(f.seq))
    worker.start()
    worker.submit(frame(0))
    time.sleep(0.05)
    started = time.perf_counter()
    for i in range(1, 6):
        worker.submit(frame(i))
    assert time.perf_counter() - started < 0.05  # the camera callback returns at once
    answerer.gate.set()
    assert worker.stop(5.0)
    assert answerer.observed == [0, 1, 2, 3, 4, 5]  # every frame reaches the keyframe buffer
    assert steps == [0, 5] and answerer.answered == [(0, 0), (5, 4)]  # 1-4 replaced while the SVLM was busy
    assert worker.monitor.dropped == 4 and worker.monitor.answers == 2 and worker.monitor.frames == 6


def test_a_failing_step_is_reported_and_the_loop_goes_on():
    answerer = SlowAnswerer(fail_on=0)
    steps = []
    worker = EdgeWorker(answerer, lambda f, s: steps.append(f.seq))
    worker.start()
    worker.submit(frame(0))
    time.sleep(0.1)
    worker.submit(frame(1))
    assert worker.stop(5.0)
    assert steps == [1] and isinstance(worker.failure, RuntimeError)
    assert worker.monitor.errors == 1


def test_answerer_swap_applies_to_the_next_frame():
    first, second = SlowAnswerer(), SlowAnswerer()
    worker = EdgeWorker(first, lambda f, s: None)
    worker.start()
    worker.submit(frame(0))
    time.sleep(0.1)
    worker.replace_answerer(second)
    worker.submit(frame(1))
    assert worker.stop(5.0)
    assert [s for s, _ in first.answered] == [0] and [s for s, _ in second.answered] == [1]


def test_real_edge_runtime_with_context_and_a_carried_store():
    config = SpotVlmConfig()
    store = ContextStore.from_config(config.context)
    store.add(LvlmResult("bridge-1", T0, "vqa", config.prompt, "red", image_size=(64, 48)))
    runtime = build_edge_runtime(ZeroCostBackend(), config, store)
    steps: list[Step] = []
    worker = EdgeWorker(runtime, lambda f, s: steps.append(s))
    worker.start()
    worker.submit(frame(3))
    assert worker.stop(5.0)
    (step,) = steps
    assert step.answer.context_id == "bridge-1" and abs(step.answer.context_age_s - 0.3) < 1e-9
    assert "red" in step.answer.text  # the zero backend echoes the newest context answer (quoted)
    smaller = config_from_dict({"context": {"history_length": 1, "max_context_age_s": 2.0}})
    store.add(LvlmResult("bridge-2", T0 + NS_PER_S, "vqa", config.prompt, "green"))
    carried = carry_store(store, smaller)
    assert carried.max_context_age_s == 2.0 and [r.request_id for r in carried.history("vqa")] == ["bridge-2"]
    assert carry_store(None, config).tasks() == []
    no_history = config_from_dict({"context": {"history_length": 0}})
    assert carry_store(store, no_history).newest("vqa").request_id == "bridge-2"
