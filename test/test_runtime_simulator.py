"""The simulated loop: latest frame wins at the step time, fresh and absent contexts, out-of-order answers."""

from __future__ import annotations

import numpy as np
import pytest

from spotvlm_ros.core.config import load_config
from spotvlm_ros.core.latency import parse_latency_profile
from spotvlm_ros.core.metrics import normalize_answer
from spotvlm_ros.core.types import CONTEXT_NONE, CONTEXT_USED, NS_PER_S, Frame
from spotvlm_ros.models.zero import ZeroCostBackend
from spotvlm_ros.runtime.clock import SimulatedClock
from spotvlm_ros.runtime.eval.modes import MODES, build_mode
from spotvlm_ros.runtime.events import RunLog
from spotvlm_ros.runtime.simulator import Simulator

START = 1_700_000_000 * NS_PER_S
PERIOD = NS_PER_S // 10


def _frames(count: int) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [
        Frame(START + i * PERIOD, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), seq=i)
        for i in range(count)
    ]


def _run(mode: str, frames: list[Frame], profile: str, **overrides):
    config = load_config(None, {"edge.backend": "zero", "cloud.backend": "zero", **overrides})
    clock = SimulatedClock(frames[0].stamp_ns)
    log = RunLog()
    run = build_mode(
        MODES[mode],
        config,
        task="vqa",
        prompt=config.prompt,
        edge_backend=ZeroCostBackend("zero:edge"),
        cloud_backend=ZeroCostBackend("zero:cloud", answer="red"),
        latency=parse_latency_profile(profile, seed=config.seed),
        clock=clock,
        origin_ns=frames[0].stamp_ns,
        on_result=log.on_context,
    )
    Simulator(run.answerer, clock, log, run.cloud).run(frames)
    return log, run


def test_latest_frame_wins_at_the_configured_step_time():
    frames = _frames(20)  # 10 Hz for 2 s
    log, _ = _run("svlm", frames, "constant:delay=0.5", **{"edge.step_time_s": 0.25})
    # The edge is busy back to back: it starts at 0, 0.25, 0.5, ... on the newest frame that has arrived
    # (a frame arriving exactly when the edge frees up comes after that instant's events).
    expected = [0, 2, 4, 7, 9, 12, 14, 17, 19]
    assert [(r.stamp_ns - START) // PERIOD for r in log.answered] == expected
    assert [r.start_ns - START for r in log.answered] == [i * NS_PER_S // 4 for i in range(9)]
    assert all(r.answer.inference_s == 0.25 for r in log.answered)
    assert [round(r.latency_s, 9) for r in log.answered] == [0.25, 0.3, 0.35, 0.3, 0.35, 0.3, 0.35, 0.3, 0.35]
    assert len(log.skipped) == 20 - 9 and sorted(log.skipped + [r.stamp_ns for r in log.answered]) == [
        f.stamp_ns for f in frames
    ]
    assert sum(r.answer.skipped_frames for r in log.answered) == len(log.skipped)
    assert all(r.answer.context_status == "disabled" for r in log.answered)


def test_every_frame_is_answered_when_the_step_fits_the_frame_period():
    log, _ = _run("svlm", _frames(15), "constant:delay=0.5", **{"edge.step_time_s": 0.1})
    assert len(log.answered) == 15 and not log.skipped
    assert all(r.latency_s == pytest.approx(0.1) for r in log.answered)


def test_zero_delay_lvlm_gives_fresh_context():
    log, run = _run("spotvlm", _frames(12), "constant:delay=0", **{"edge.step_time_s": 0.1})
    assert len(log.answered) == 12
    assert all(r.answer.context_status == CONTEXT_USED for r in log.answered)
    assert all(r.answer.context_age_s == 0.0 for r in log.answered)
    assert all(normalize_answer(r.answer.text) == "red" for r in log.answered)  # SVLM echoes the context
    assert run.cloud.stats.accepted == 12 and run.cloud.stats.timeouts == 0


def test_always_timing_out_lvlm_leaves_the_edge_answering_every_tick_alone():
    frames = _frames(30)
    log, run = _run(
        "spotvlm", frames, "constant:delay=100", **{"edge.step_time_s": 0.1, "keyframes.timeout_s": 0.45}
    )
    assert len(log.answered) == 30 and not log.skipped
    assert all(r.answer.context_status == CONTEXT_NONE and not r.answer.context_id for r in log.answered)
    assert normalize_answer(log.answered[0].answer.text) == "unknown"  # the SVLM's own answer
    assert not any("red" in r.answer.text for r in log.answered)  # the LVLM's answer never arrived
    stats = run.cloud.stats
    assert stats.results == 0 and stats.requests >= 5
    assert stats.timeouts + stats.cancelled == stats.requests  # each timed out (or was cut at the end)
    assert not log.contexts


def test_out_of_order_lvlm_answers_never_replace_newer_ones(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,delay_s\n0,2.0\n0.2,0.3\n0.5,50\n")  # 1st request slow, 2nd fast, then stuck
    log, run = _run(
        "spotvlm",
        _frames(30),
        f"trace:path={trace}",
        **{"edge.step_time_s": 0.1, "keyframes.max_in_flight": 2, "keyframes.min_interval_s": 0.3},
    )
    stats = run.cloud.stats
    assert stats.results == 2 and stats.accepted == 1 and stats.out_of_order == 1
    arrivals = [(c.result.request_id, c.receive_ns - START, c.accepted) for c in log.contexts]
    assert arrivals == [("vqa-2", 600_000_000, True), ("vqa-1", 2 * NS_PER_S, False)]
    for record in log.answered:
        if record.stamp_ns >= START + 600_000_000:
            assert record.answer.context_id == "vqa-2"  # never the older vqa-1, even after it arrived
        else:
            assert record.answer.context_status == CONTEXT_NONE


def test_preemption_sends_the_newest_frame_instead_of_waiting_for_a_stuck_request():
    log, run = _run(
        "spotvlm",
        _frames(30),
        "constant:delay=100",
        **{"edge.step_time_s": 0.1, "keyframes.timeout_s": 60.0, "keyframes.preempt_after_s": 0.5},
    )
    stats = run.cloud.stats
    assert stats.timeouts == 0 and stats.results == 0
    assert stats.preempted == stats.requests - 1 and stats.requests == 6  # one new keyframe every 0.5 s
    assert len(log.answered) == 30
