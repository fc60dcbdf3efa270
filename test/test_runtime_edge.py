"""EdgeRuntime: a failing SVLM never stops the edge, and failures are logged per streak, not per frame."""

from __future__ import annotations

import logging

import numpy as np

from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.context_store import ContextStore
from spotvlm_ros.core.types import NS_PER_S, Frame
from spotvlm_ros.models.base import BackendError
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.edge import EdgeRuntime


class FlakyBackend(ZeroCostBackend):
    """Test double: the zero-cost backend failing on the frames it is told to (a GPU error, say)."""

    def __init__(self, failing: set[int]):
        super().__init__("flaky")
        self.failing, self.calls = failing, 0

    def generate(self, messages, images, **kwargs):
        self.calls += 1
        if self.calls in self.failing:
            raise BackendError("CUDA error: out of memory")
        return super().generate(messages, images, **kwargs)


def test_failures_answer_empty_and_log_once_per_streak(log_records):
    backend = FlakyBackend(failing=set(range(3, 23)) | {30})
    config = load_config(overrides={"focus.mode": "off"})
    edge = EdgeRuntime(backend, config, ContextStore(), step_time_s=0.1)
    image = np.zeros((48, 64, 3), np.uint8)
    with log_records.at_level(logging.INFO, logger="spotvlm.edge"):
        steps = [edge.answer(Frame(i * NS_PER_S // 10, image)) for i in range(1, 36)]
    assert len(steps) == 35 and edge.errors == 21
    failed = [i for i, s in enumerate(steps, start=1) if s.error]
    assert failed == [*range(3, 23), 30] and all(steps[i - 1].answer.text == "" for i in failed)
    assert all(s.answer.stamp_ns == i * NS_PER_S // 10 for i, s in enumerate(steps, start=1))
    warnings = [r.getMessage() for r in log_records.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in log_records.records if r.levelno == logging.INFO]
    assert len(warnings) == 2 and "out of memory" in warnings[0]
    assert infos == [
        "SVLM answering again after 20 failed frame(s)",
        "SVLM answering again after 1 failed frame(s)",
    ]
